/* The host half of fai_prefill: argument checks and the plan (which kernels run, over which
 * range of the batch, with which tiles, and the decode rows' split). Pure functions of
 * their arguments, so the CPU tests and the fuzzer run them without a GPU. */
#include <limits.h>
#include <string.h>

#include "check.h"
#include "prefill_args.h"
#include "prefill_plan.h"

static fai_status check_cu(const char *fn, const char *name, const int32_t *cu)
{
    if (!cu)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: %s is NULL", fn, name);
    if ((uintptr_t)cu % sizeof(int32_t) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: %s (%p) is not 4-byte aligned", fn, name,
                         (const void *)cu);
    return FAI_SUCCESS;
}

/* A failed cache check of fai_check_kv_cache names its fields "cache.<field>" (fai_decode's
 * argument); here the argument is kv_cache, so the message is rewritten to name it. */
static fai_status name_kv_cache(fai_status s)
{
    if (s == FAI_SUCCESS)
        return s;
    char msg[512];
    const char *src = fai_last_error();
    size_t n = 0;
    while (*src && n + 11 < sizeof msg) {
        if (strncmp(src, "cache.", 6) == 0) {
            memcpy(msg + n, "kv_cache->", 10);
            n += 10;
            src += 6;
        } else {
            msg[n++] = *src++;
        }
    }
    msg[n] = '\0';
    return fai_error(s, "%s", msg);
}

/* The cache source of fai_prefill (params.kv_cache): FP16 or BF16 as q, or int8 / FP8 (staged
 * in q's dtype), the packed-key fields unused, and the cache itself through the checks
 * fai_decode runs. */
static fai_status check_prefill_cache(const char *fn, const fai_prefill_params *p)
{
    const fai_kv_cache *c = p->kv_cache;
    const fai_attention *a = &p->attn;
    /* (an unknown dtype is refused by fai_check_kv_cache below) */
    FAI_TRY(name_kv_cache(fai_check_cache_holds(fn, "cache", c->dtype, "q", p->q.dtype)));
    if (p->k.data || p->v.data)
        return fai_error(FAI_ERROR_BAD_PARAM, "%s: k.data (%p) and v.data (%p) must be NULL with kv_cache "
                         "(the keys and values come from the cache)", fn, p->k.data, p->v.data);
    if (p->cu_seqlens_k)
        return fai_error(FAI_ERROR_BAD_PARAM, "%s: cu_seqlens_k (%p) must be NULL with kv_cache "
                         "(sequence b's keys are kv_cache->seq_lens[b] tokens of the cache)", fn,
                         (const void *)p->cu_seqlens_k);
    if (p->total_k != 0 || p->max_seq_k != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: total_k (%d) and max_seq_k (%d) must be 0 with kv_cache", fn,
                         (int)p->total_k, (int)p->max_seq_k);
    fai_kv_cache layout = *c;
    layout.max_seq_len = 0; /* only a planning hint here (fai.h): any value passes */
    return name_kv_cache(fai_check_kv_cache(fn, &layout, p->batch, a->num_kv_heads, a->head_dim));
}

fai_status fai_prefill_validate(const char *fn, const fai_prefill_params *p)
{
    if (!p)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: params is NULL", fn);
    const fai_attention *a = &p->attn;
    FAI_TRY(fai_check_attention(fn, a));
    if (p->batch < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: batch (%d) is negative", fn, (int)p->batch);
    if (p->total_q < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: total_q (%d) is negative", fn, (int)p->total_q);
    if (p->total_k < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: total_k (%d) is negative", fn, (int)p->total_k);
    /* The kernels index queries and keys with int, a few tiles past a sequence's end: the
     * same bound as a cache's capacity (a longer sequence would wrap its tile count). */
    if (p->total_q > FAI_MAX_CACHE_CAPACITY || p->total_k > FAI_MAX_CACHE_CAPACITY)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: total_q (%d) and total_k (%d) must be at most %d", fn,
                         (int)p->total_q, (int)p->total_k, (int)FAI_MAX_CACHE_CAPACITY);
    if (p->max_seq_k < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: max_seq_k (%d) is negative", fn, (int)p->max_seq_k);
    if (p->batch > 0 && p->max_seq_q < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: max_seq_q (%d) must be >= 1 when batch (%d) > 0", fn,
                         (int)p->max_seq_q, (int)p->batch);
    /* FP16 or BF16, one type for all four (q's). */
    const fai_dtype dt = p->q.dtype;
    FAI_TRY(fai_check_io_tensor(fn, "q", &p->q, p->total_q, a->num_q_heads, a->head_dim, 0, dt, "q"));
    if (p->kv_cache) { /* keys and values from the cache: k and v are not read */
        FAI_TRY(check_prefill_cache(fn, p));
    } else {
        FAI_TRY(fai_check_io_tensor(fn, "k", &p->k, p->total_k, a->num_kv_heads, a->head_dim, 0, dt, "q"));
        FAI_TRY(fai_check_io_tensor(fn, "v", &p->v, p->total_k, a->num_kv_heads, a->head_dim, 0, dt, "q"));
    }
    FAI_TRY(fai_check_io_tensor(fn, "o", &p->o, p->total_q, a->num_q_heads, a->head_dim, 1, dt, "q"));
    if (p->lse && ((uintptr_t)p->lse % sizeof(float)) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: lse (%p) is not 4-byte aligned", fn, (void *)p->lse);
    if (p->batch == 0)
        return FAI_SUCCESS;
    FAI_TRY(check_cu(fn, "cu_seqlens_q", p->cu_seqlens_q));
    if (!p->kv_cache)
        FAI_TRY(check_cu(fn, "cu_seqlens_k", p->cu_seqlens_k));
    const int32_t *cu = p->cu_seqlens_q_host;
    if (cu) {
        if (cu[0] < 0)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cu_seqlens_q_host[0] (%d) is negative", fn, (int)cu[0]);
        for (int32_t b = 0; b < p->batch; b++)
            if (cu[b + 1] < cu[b])
                return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cu_seqlens_q_host[%d] (%d) is less than "
                                 "cu_seqlens_q_host[%d] (%d)", fn, (int)b + 1, (int)cu[b + 1], (int)b, (int)cu[b]);
        if (cu[p->batch] > p->total_q)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cu_seqlens_q_host[%d] (%d) is more than total_q (%d)",
                             fn, (int)p->batch, (int)cu[p->batch], (int)p->total_q);
    }
    return FAI_SUCCESS;
}

int fai_prefill_decode_kernels_serve(const fai_prefill_params *p)
{
    /* (the decode kernels have the variants, BF16 and both kinds of cache) */
    return p->q.dtype == FAI_DTYPE_FP16 || p->q.dtype == FAI_DTYPE_BF16;
}

/* The keys a cache read is planned for: kv_cache->max_seq_len when it is in [1, capacity],
 * else capacity (the decode rows' split, and a quantized cache's staged copy). */
static int32_t cache_keys(const fai_kv_cache *c)
{
    return c->max_seq_len >= 1 && c->max_seq_len <= c->capacity ? c->max_seq_len : c->capacity;
}

/* The staged copy's place in the workspace: after the decode rows' part, 256-byte aligned. */
static void set_staging(fai_prefill_plan *plan, int32_t keys, const fai_attention *a)
{
    plan->stage_keys = keys;
    plan->stage_bytes = (size_t)plan->prefill_count * (size_t)keys * (size_t)a->num_kv_heads * (size_t)a->head_dim * 2;
    plan->stage_offset = (plan->workspace_bytes + 255) / 256 * 256;
    plan->workspace_bytes = plan->stage_offset + 2 * plan->stage_bytes;
}

fai_status fai_prefill_make_plan(const char *fn, const fai_prefill_params *p, fai_device_info dev,
                                 fai_prefill_plan *plan)
{
    const fai_prefill_plan empty = {0};
    *plan = empty;
    if (p->batch == 0 || p->total_q == 0)
        return FAI_SUCCESS; /* no query row: nothing to launch */
    /* Decode rows (seq_q == 1) go to the decode kernels, which move them at memory speed
     * (from packed K/V or from the kv_cache alike). */
    const int decode_kernels = fai_prefill_decode_kernels_serve(p);
    const int32_t min_prefill_q = decode_kernels ? 2 : 1;
    int32_t p_first = 0, p_last = p->batch - 1, d_first = 0, d_last = p->batch - 1;
    int32_t decode_rows = decode_kernels ? p->batch : 0, max_q = p->max_seq_q;
    if (p->cu_seqlens_q_host) {
        p_first = d_first = p->batch;
        p_last = d_last = -1;
        decode_rows = 0;
        max_q = 1;
        for (int32_t b = 0; b < p->batch; b++) {
            const int32_t n = p->cu_seqlens_q_host[b + 1] - p->cu_seqlens_q_host[b];
            if (n >= min_prefill_q) {
                p_first = p_first < b ? p_first : b;
                p_last = b;
                max_q = max_q > n ? max_q : n;
            } else if (n == 1) {
                d_first = d_first < b ? d_first : b;
                d_last = b;
                decode_rows++;
            }
        }
    }
    const fai_attention *a = &p->attn;
    if (p_last >= p_first) {
        const int64_t per_tile = (int64_t)(p_last - p_first + 1) * a->num_q_heads;
        /* Too few 128-row blocks to fill the GPU once: 64-row blocks (FAI_PREFILL_SMALL_GRID;
         * measured on H100: batch 1 x seq 128 takes 11.0 us instead of 14.2; from 256 blocks
         * on, 128 rows win). */
        int32_t mt = FAI_PREFILL_MT(a->head_dim);
        int64_t tiles = ((int64_t)max_q + FAI_PREFILL_BM_OF(mt) - 1) / FAI_PREFILL_BM_OF(mt);
        /* (per_tile first: the product can pass 2^63 for absurd sizes that are refused below) */
        if (FAI_PREFILL_SMALL_GRID && mt > 1 && per_tile < dev.num_sms && per_tile * tiles < dev.num_sms) {
            mt = 1;
            tiles = ((int64_t)max_q + FAI_PREFILL_BM_OF(mt) - 1) / FAI_PREFILL_BM_OF(mt);
        }
        if (per_tile > INT_MAX)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: batch (%d) x num_q_heads (%d) exceeds the grid limit",
                             fn, (int)p->batch, (int)a->num_q_heads);
        if (tiles * per_tile > INT_MAX) /* fewer blocks, each looping over more tiles */
            tiles = INT_MAX / per_tile;
        plan->run_prefill = 1;
        plan->prefill_first = p_first;
        plan->prefill_count = p_last - p_first + 1;
        plan->m_tiles = (int32_t)tiles;
        plan->mt = mt;
        /* The mma.sync kernel copies every ring stage before its key loop on grids of more
         * than one wave of blocks: there it took 1.5-5 % off (H100, session 14: prefill batch
         * 32-2048 x 128 keys, the hybrid rows); on one wave every block's first wait took in
         * its second tile's bytes too (batch 8 x 128 keys, 256 blocks: 5 % slower). A wave:
         * the blocks an SM's shared memory holds (1 KB each reserved), at most
         * FAI_PREFILL_FILL_WAVE_BLOCKS (their registers), times the SMs. */
        int64_t per_sm = dev.smem_per_sm / ((int64_t)FAI_PREFILL_SMEM(a->head_dim, mt) + 1024);
        per_sm = per_sm < 1 ? 1 : per_sm > FAI_PREFILL_FILL_WAVE_BLOCKS ? FAI_PREFILL_FILL_WAVE_BLOCKS : per_sm;
        plan->fill_ring = tiles * per_tile > per_sm * dev.num_sms;
        /* The Hopper kernel (one 164 KB block per SM, persistent) wins from ~256 keys a
         * sequence on; at 128 the mma.sync kernel's several blocks per SM hide its load
         * latency as well or better (H100, session 9, Hopper kernel time / mma.sync's: 128
         * keys 0.92-1.08, 256 0.68 (d256 0.94), 512 0.77, 4096 0.59). Keys a sequence:
         * max_seq_k, else the mean of packed K/V, or the cache's bound. */
        int64_t keys = p->max_seq_k > 0 ? p->max_seq_k : p->total_k / (p->batch > 0 ? p->batch : 1);
        if (p->kv_cache)
            keys = cache_keys(p->kv_cache);
        plan->sm90 = dev.cc_major != 9 ? 0 : keys >= FAI_PREFILL_SM90_MIN_KEYS ? 2 : 1;
        if (plan->sm90) {
            /* Handing each head's tiles out heaviest first, a head after another, left the
             * last head's heavy tiles to the end of the grid (a simulated 4K chunk over 16K
             * cached keys: the busiest block 5-14 % over the mean); across a section of heads
             * that fit the L2 the light tiles come last (1-2 %). */
            const int64_t kv_head = (keys > 0 ? keys : 1) * (int64_t)a->head_dim * 4; /* K and V, 2 bytes each */
            int64_t kv_heads = FAI_PREFILL_SECTION_BYTES / kv_head;
            kv_heads = kv_heads < 1 ? 1 : kv_heads;
            const int64_t pairs = (int64_t)plan->prefill_count * a->num_q_heads;
            const int64_t section = kv_heads * (a->num_q_heads / a->num_kv_heads);
            plan->section = (int32_t)(section < pairs ? section : pairs);
        }
        /* On one wave, plain attention with keys that fit the ring copies keys and values one
         * group at a time (H100, session 17: batch 8 x 128 keys 0.945x the time; longer keys
         * were not measured). That kernel takes one query tile a block, so the longest
         * sequence must be known: max_seq_q may be too small. */
        plan->one_wave = !plan->fill_ring && p->cu_seqlens_q_host != NULL &&
                         keys <= (int64_t)FAI_PREFILL_STAGES(a->head_dim) * FAI_PREFILL_BN(a->head_dim);
        plan->num_sms = dev.num_sms;
    }
    if (decode_rows > 0) {
        /* The kernel, split and warps suit the decode rows there are; the grid spans their
         * range (other sequences' blocks exit at once), so plan it again for the range with
         * those choices (a split tail's items are not the range's: there, none split). */
        const int32_t max_k = fai_decode_planned_keys(
            a, p->kv_cache ? cache_keys(p->kv_cache) : p->max_seq_k > 0 ? p->max_seq_k : p->total_k);
        const int32_t count = d_last - d_first + 1;
        /* The decode rows read the cache itself (quantized or paged) or the packed K/V: plan
         * for what they read (a one-byte cache has its own rings: an FP16 plan's 4-stage ring
         * has no int8 or FP8 kernel). */
        const fai_kv_cache *kc = p->kv_cache;
        const fai_dtype kv_dtype = kc ? kc->dtype : p->k.dtype;
        const int page_size = kc && kc->page_table ? kc->page_size : 0;
        fai_decode_plan rows;
        FAI_TRY(fai_decode_make_plan_kv(fn, kv_dtype, page_size, decode_rows, a->num_q_heads, a->num_kv_heads,
                                        a->head_dim, max_k, dev, FAI_DECODE_AUTO, 0, 0, 0, &rows));
        FAI_TRY(fai_decode_make_plan_kv(fn, kv_dtype, page_size, count, a->num_q_heads, a->num_kv_heads, a->head_dim,
                                        max_k, dev, rows.kernel, rows.split_from ? 1 : rows.num_splits,
                                        rows.warps_per_block,
                                        rows.kernel == FAI_DECODE_MMA ? rows.stages : 0, &plan->decode));
        plan->run_decode = 1;
        plan->decode_first = d_first;
        plan->decode_count = count;
        plan->workspace_bytes = plan->decode.workspace_bytes;
    }
    const fai_kv_cache *c = p->kv_cache;
    const int quantized = c && fai_dtype_bytes(c->dtype) == 1; /* int8 or FP8 */
    if (plan->run_prefill && quantized) {
        /* The prefill rows read a copy of their keys and values in q's dtype, staged in the
         * workspace after the decode rows' part: [prefill_count, keys, kv_heads, head_dim]
         * for K, then V. */
        const int32_t keys = cache_keys(c);
        const double bytes = 2.0 * plan->prefill_count * keys * a->num_kv_heads * a->head_dim * 2;
        if (bytes > 0x1p60)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                             "%s: staging %d sequences x %d keys of the quantized kv_cache needs %.3g bytes of "
                             "workspace (set kv_cache->max_seq_len to the longest sequence)",
                             fn, (int)plan->prefill_count, (int)keys, bytes);
        if (keys > 0) /* (a cache of capacity 0 has no key to stage) */
            set_staging(plan, keys, a);
    } else if (plan->run_prefill && c && c->page_table && FAI_PREFILL_STAGE_PAGED_ROWS > 0 && c->capacity > 0) {
        /* A paged FP16/BF16 cache costs the prefill kernel ~15 % in its inner loop (page
         * lookups and per-row addresses); gathering it into a contiguous copy costs ~4 bytes
         * moved per key element, which long chunks amortize: per staged key, the prefill does
         * (query rows x q heads / kv heads) dot products and weighted sums. Staged when that
         * ratio, averaged over the prefill range, reaches FAI_PREFILL_STAGE_PAGED_ROWS and the
         * copy (capacity keys a sequence: max_seq_len is only a hint here) fits
         * FAI_PREFILL_STAGE_PAGED_MAX_BYTES. */
        int64_t rows = p->total_q;
        if (p->cu_seqlens_q_host) {
            rows = 0;
            for (int32_t b = plan->prefill_first; b < plan->prefill_first + plan->prefill_count; b++)
                rows += p->cu_seqlens_q_host[b + 1] - p->cu_seqlens_q_host[b];
        }
        const double per_key = (double)rows * a->num_q_heads / ((double)plan->prefill_count * a->num_kv_heads);
        const double bytes = 2.0 * plan->prefill_count * c->capacity * a->num_kv_heads * a->head_dim * 2;
        if (per_key >= FAI_PREFILL_STAGE_PAGED_ROWS && bytes <= FAI_PREFILL_STAGE_PAGED_MAX_BYTES)
            set_staging(plan, c->capacity, a);
    }
    if (plan->run_prefill && plan->sm90 > 0) { /* the Hopper kernel's work counter, last */
        plan->counter_offset = (plan->workspace_bytes + 255) / 256 * 256;
        plan->workspace_bytes = plan->counter_offset + FAI_PREFILL_COUNTER_BYTES;
    }
    return FAI_SUCCESS;
}

