/* Planning a decode call: how many query heads a block serves, how many warps it has and
 * how many ways each sequence's KV is split. Decode is memory-bound, so the plan's one goal
 * is to keep enough loads in flight on every SM: about 16 warps per SM (see
 * docs/design/decode.md), spread first inside a block (no merge needed), then across splits. */
#include "decode_plan.h"

#include "check.h"
#include "error.h"

/* Warps per SM that keep the read ceiling: 16 warps x 4 KB steps = 64 KB in flight. */
#define TARGET_WARPS_PER_SM 16
/* A split shorter than this starts and stops more than it streams. */
#define MIN_KEYS_PER_SPLIT 256

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static int32_t heads_per_block(int32_t group)
{
    return group <= 1 ? 1 : group == 2 ? 2 : group <= 4 ? 4 : 8;
}

static int32_t keys_per_step(int32_t d, int32_t hb, int eb)
{
    switch (hb) {
    case 1: return FAI_DECODE_KEYS_PER_STEP_KV(d, 1, eb);
    case 2: return FAI_DECODE_KEYS_PER_STEP_KV(d, 2, eb);
    case 4: return FAI_DECODE_KEYS_PER_STEP_KV(d, 4, eb);
    default: return FAI_DECODE_KEYS_PER_STEP_KV(d, 8, eb);
    }
}

int32_t fai_decode_planned_keys(const fai_attention *attn, int32_t max_len)
{
    return attn->window && attn->window_left >= 0 && attn->window_left < max_len ? attn->window_left + 1 : max_len;
}

/* Query rows with partials: those of the split items (all rows, or from split_row0 on). */
static size_t split_rows(const fai_decode_plan *plan, int32_t batch, int32_t num_q_heads)
{
    return (size_t)batch * (size_t)num_q_heads - (size_t)plan->split_row0;
}

size_t fai_decode_part_lse_offset(const fai_decode_plan *plan, int32_t batch, int32_t num_q_heads)
{
    return align256((size_t)plan->num_splits * split_rows(plan, batch, num_q_heads) * (size_t)plan->head_dim *
                    sizeof(float));
}

static void size_workspace(fai_decode_plan *p, int32_t batch, int32_t num_q_heads)
{
    p->workspace_bytes = 0;
    if (p->num_splits > 1) {
        const size_t lse_bytes = (size_t)p->num_splits * split_rows(p, batch, num_q_heads) * sizeof(float);
        p->workspace_bytes = fai_decode_part_lse_offset(p, batch, num_q_heads) + align256(lse_bytes);
    }
}

int fai_decode_plan_tail(fai_decode_plan *p, fai_dtype kv_dtype, int32_t batch, int32_t num_q_heads,
                         int32_t num_kv_heads, int32_t split_from, int32_t splits)
{
    if (p->kernel != FAI_DECODE_MMA || fai_dtype_bytes(kv_dtype) != 1)
        return 0; /* (the kernels compiled without split tails) */
    const int64_t items = (int64_t)batch * num_kv_heads * p->head_blocks;
    const int32_t group = num_q_heads / num_kv_heads;
    p->num_splits = splits < 1 ? 1 : splits > FAI_DECODE_MAX_SPLITS ? FAI_DECODE_MAX_SPLITS : splits;
    p->split_from = p->split_row0 = 0;
    if (split_from >= items || (int64_t)batch * num_q_heads > INT32_MAX ||
        split_from + (items - split_from) * p->num_splits > INT32_MAX) /* (the grid's limits) */
        p->num_splits = 1;
    else if (split_from > 0 && p->num_splits > 1) {
        const int64_t hblk = split_from % p->head_blocks, rest = split_from / p->head_blocks;
        p->split_from = split_from;
        p->split_row0 = (int32_t)((rest / num_kv_heads) * num_q_heads + (rest % num_kv_heads) * group +
                                  hblk * p->heads_per_block);
    }
    size_workspace(p, batch, num_q_heads);
    return 1;
}

/* The one-byte tensor-core kernel is bound by its own issue on each SM, so a last wave that
 * leaves SMs idle costs it most of a whole one (int8 MHA b x 8K, session 26: batch 132's 16
 * full waves took no longer than batch 128's 15.5). The ways to split only the `tail` items
 * of that wave: their parts fill ceil(tail x ways / resident) waves of 1 / ways the length;
 * the number of ways that ends soonest (2 to 4; the fewest of equals) when it saves at least
 * a quarter of a block's time, else 1. Measured (H100, session 27, docs/perf/): batch 128's
 * 136 tail items in thirds 0.973-1.014x the unsplit grid's time over pages of 16 (mean
 * 0.991), 0.975-0.987x contiguous, FP8 0.979-1.003x; in halves and quarters no better, in
 * sixths 1.13x. */
static int32_t tail_splits(int64_t tail, int64_t resident, int32_t max_seq_len)
{
    int32_t best = 1;
    double best_cost = 0.75; /* in blocks' times: at least a quarter saved */
    for (int32_t s = 2; s <= 4; s++) {
        const double cost = (double)ceil_div(tail * s, resident) / s;
        if (cost < best_cost && (int64_t)max_seq_len >= (int64_t)s * MIN_KEYS_PER_SPLIT) {
            best = s;
            best_cost = cost;
        }
    }
    return best;
}

/* Splits so that items x splits blocks fill about one wave of `resident` blocks (rounding
 * down, so the last wave is full), no split shorter than MIN_KEYS_PER_SPLIT. */
static int64_t wave_splits(int64_t items, int64_t resident, int32_t max_seq_len)
{
    int64_t s = items > 0 ? resident / items : 1;
    const int64_t by_length = ceil_div(max_seq_len, MIN_KEYS_PER_SPLIT);
    if (s > by_length)
        s = by_length;
    return s < 1 ? 1 : s;
}

/* Tensor-core blocks of p->smem_bytes that the device holds at once (1 KB of shared memory
 * reserved per block, at least one an SM): a wave. */
static int64_t mma_resident(const fai_decode_plan *p, fai_device_info dev)
{
    const int64_t per_sm = dev.smem_per_sm / (int64_t)(p->smem_bytes + 1024);
    return (int64_t)dev.num_sms * (per_sm < 1 ? 1 : per_sm);
}

/* Splits for a ring of p->stages stages (shrunk to what the SM's shared memory holds). eb:
 * bytes per cache element (one-byte caches have rings of 3 or 6 stages). */
static void plan_mma_ring(fai_decode_plan *p, int64_t items, int32_t max_seq_len, fai_device_info dev, int eb)
{
    const int min_stages = eb == 1 ? 3 : 2;
    while (p->stages > min_stages &&
           (FAI_DECODE_MMA_SMEM_KV(p->head_dim, p->stages, eb) + 1024 > (size_t)dev.smem_per_sm ||
            FAI_DECODE_MMA_SMEM_KV(p->head_dim, p->stages, eb) > (size_t)dev.smem_per_block))
        p->stages = eb == 1 ? 3 : p->stages == 6 ? 4 : p->stages - 1;
    p->smem_bytes = FAI_DECODE_MMA_SMEM_KV(p->head_dim, p->stages, eb);
    p->num_splits = (int32_t)wave_splits(items, mma_resident(p, dev), max_seq_len);
}

/* Pages smaller than the tensor-core kernel's tile of keys: it then looks each row's page up
 * (decode_mma.cu's in_page is false), which wants the 3-stage ring (plan_mma). */
static int under_tile_pages(int page_size) { return page_size > 0 && page_size < FAI_DECODE_MMA_KEYS; }

/* The ring's depth, measured (fai-bench --tune, docs/perf/): 4 stages (128 KB at head dim 128,
 * one block per SM) when each warp streams 8 tiles or more, split or not (6 stages for a
 * split sequence were no faster: GQA 32/8 1 x 32K and 1 x 128K 0.99x with 4 as CUDA graph
 * replays after do_bench's flush, equal after a read-only flush, 0.98-0.99x over 16-key
 * pages; session 16); for shorter work, and for one to eight waves of unsplit blocks, 3
 * stages let 2 or 3 blocks share an SM and overlap their starts and ends. */
static void plan_mma(fai_decode_plan *p, int64_t items, int32_t max_seq_len, fai_device_info dev, int eb,
                     int small_pages)
{
    p->warps_per_block = FAI_DECODE_MMA_WARPS;
    if (eb == 1 && p->stages > 0) /* forced: one-byte caches have 3 or 6 */
        p->stages = p->stages <= 3 ? 3 : 6;
    if (p->stages == 2 || p->stages == 3 || p->stages == 4 || p->stages == 6) {
        plan_mma_ring(p, items, max_seq_len, dev, eb);
        return;
    }
    /* One-byte caches: 3 stages, so that two blocks share an SM and the splits double (their
     * per-warp conversion of each tile leaves a block's own loads too few to hide the
     * latency: at GQA 32/8 batch 1 x 128K, FP8 111 us with 3 stages and 33 splits, 154 us with
     * 6 and 16; batch 16 x 8K 114 vs 152 us; fai-bench --suite kv-quant --tune, H100). */
    /* Pages under a tile of keys (each row's page looked up as its copies are issued): the
     * same, 3 stages and twice the splits (GQA 32/8 over page 1, fai-bench --tune, session 12,
     * H100: 1.02-1.09x the contiguous cache's time against 1.11-1.15x with 4 or 6 stages). */
    p->stages = eb == 1 || small_pages ? 3 : FAI_DECODE_MMA_STAGES(p->head_dim);
    plan_mma_ring(p, items, max_seq_len, dev, eb);
    if (eb == 1 || small_pages)
        return;
    const int64_t warp_tiles =
        ceil_div(ceil_div(max_seq_len, p->num_splits), (int64_t)FAI_DECODE_MMA_KEYS * FAI_DECODE_MMA_WARPS);
    if (warp_tiles < 8 || (p->num_splits == 1 && items > dev.num_sms && items <= 8 * (int64_t)dev.num_sms)) {
        /* (a few waves of one block per SM: two a SM overlap one's start with the other's
         * stream; GQA 32/8 64 x 4K: 355 against 361 us, fai-bench --tune, session 12; at 31
         * waves, MHA 128 x 8K, 4 stages stay 0.4-0.7 % ahead) */
        p->stages = 3;
        plan_mma_ring(p, items, max_seq_len, dev, eb);
    }
}

static void plan_simt(fai_decode_plan *p, int64_t items, int32_t max_seq_len, fai_device_info dev, int eb,
                      int page_size)
{
    const int64_t smem_per_warp = (int64_t)p->heads_per_block * (p->head_dim + 2) * (int64_t)sizeof(float);
    int64_t max_warps = FAI_DECODE_SMEM_LIMIT / smem_per_warp;
    if (max_warps > FAI_DECODE_MAX_WARPS)
        max_warps = FAI_DECODE_MAX_WARPS;
    /* 4 warps per block measured best (fai-bench --tune, docs/perf/), 8 when there are too few
     * items to fill the SMs otherwise; never more warps than steps of keys. Blocks of 4+
     * heads hold ~175 registers a thread: 8 warps per SM is all they get, so they target that. */
    const int64_t target = p->heads_per_block >= 4 ? 8 : TARGET_WARPS_PER_SM;
    const int64_t steps = max_seq_len > 0 ? ceil_div(max_seq_len, keys_per_step(p->head_dim, p->heads_per_block, eb)) : 1;
    const int64_t per_item = items > 0 ? ceil_div((int64_t)dev.num_sms * target, items) : 1;
    int64_t w = items <= dev.num_sms / 2 && p->heads_per_block < 4 ? 8 : 4;
    /* A paged 2-byte MHA cache (fai-bench --tune, session 12, H100, page 16 and page 1): its
     * blocks wait on a page-table read before their first copies; 2 warps a block (more
     * blocks an SM to overlap those waits) when short sequences come in many items, 8 when
     * few items leave SMs to spare (batch 128 x 128 keys 96.4 against 97.5 us with 4, batch
     * 1024 704.8 against 710; batch 8 12.6 against 13.2). */
    if (page_size > 0 && eb == 2 && p->heads_per_block == 1) {
        if (items <= 2 * (int64_t)dev.num_sms)
            w = 8;
        else if (items >= 4 * (int64_t)dev.num_sms && max_seq_len <= 512)
            w = 2;
    }
    if (w > max_warps)
        w = max_warps;
    if (w > steps)
        w = steps; /* a warp with no step would only idle */
    int64_t s = 1;
    if (per_item > w) {
        s = ceil_div(per_item, w);
        const int64_t by_length = ceil_div(max_seq_len, MIN_KEYS_PER_SPLIT);
        if (s > by_length)
            s = by_length;
    }
    p->warps_per_block = (int32_t)w;
    p->num_splits = (int32_t)(s < 1 ? 1 : s);
}

static int32_t mma_rows(int32_t group) { return group < FAI_DECODE_MMA_ROWS ? group : FAI_DECODE_MMA_ROWS; }

/* Which kernel streams a shape faster, from fai-bench --tune on an H100 (docs/perf/): the
 * tensor-core kernel's cp.async ring wins once there is enough to stream (MHA with at least
 * ~48K tiles of 16 keys in all, or so few items that one latency dominates) and for groups
 * of 4+ query heads at every length (session 4, 32/8 at batch 1 x 4K/8K/16K: 17.6/25.6/39.4
 * us against 23.6/28.8/43.2 on CUDA cores; batch 4 x 4K 39.9 against 57.9), for groups of 2-3
 * unless the splits it needs are short (< 2048 keys: its ring's ramp then costs more than
 * the CUDA-core kernel's register prefetch, measured in session 2). */
static int prefer_mma(fai_dtype kv_dtype, int page_size, int32_t batch, int32_t num_kv_heads, int32_t group,
                      int32_t head_dim, int32_t max_seq_len, fai_device_info dev, int eb)
{
    const int64_t tiles = ceil_div(max_seq_len, FAI_DECODE_MMA_KEYS);
    /* One-byte MHA: the tensor-core kernel since its conversion of a tile issues its shared-
     * memory loads together (session 12, docs/perf/: int8 at 128 x 8K 3.07-3.08 ms against the
     * CUDA cores' 3.27, paged 3.16 against 3.45; paged FP8 2.95-2.96 against 3.04-3.06), but
     * paged FP8 under 4096 keys stays on CUDA cores (32 x 2K: 192-193 against 200-201 us). */
    if (group == 1 && eb == 1 && kv_dtype != FAI_DTYPE_INT8 && page_size > 0 && tiles < 256)
        return 0;
    if (group == 1) {
        const int64_t items = (int64_t)batch * num_kv_heads;
        if (items <= dev.num_sms / 2)
            return 1;
        /* 2-byte MHA (fai-bench --tune, session 12, H100). Over a paged cache, CUDA cores
         * below 4096 keys (128 x 128 to 2048 keys within 1.7-3.5 % of the contiguous cache's time,
         * the tensor-core kernel 2.7-6.9 %; batch 256-2048 x 128 keys 2.8-4.1 % against
         * 7.5-8.3 %), and at every length over pages under 16 keys (128 x 4K-8K 2.4-3.3 %
         * against 12-13 %). (Over a contiguous cache the CUDA-core kernel was 1.4-3.0 % faster
         * on 128 x 256 and 256-2048 x 128 keys after a clean L2 and as much slower after a
         * dirty one: unchanged.) */
        if (eb == 2 && page_size > 0) /* (and never on tensor cores where a contiguous cache is not) */
            return page_size >= FAI_DECODE_MMA_KEYS && tiles >= 256 && tiles >= ceil_div(49152, items);
        /* items * tiles >= 49152, without the product (it can pass 2^63 for absurd sizes) */
        return items > 0 && tiles >= ceil_div(49152, items);
    }
    if (group >= 4)
        return 1;
    fai_decode_plan p = {0};
    p.head_dim = head_dim;
    plan_mma(&p, (int64_t)batch * num_kv_heads * ceil_div(group, mma_rows(group)), max_seq_len, dev, eb,
             under_tile_pages(page_size));
    return p.num_splits == 1 || ceil_div(max_seq_len, p.num_splits) >= 2048;
}

fai_status fai_decode_make_plan(const char *fn, int32_t batch, int32_t num_q_heads,
                                int32_t num_kv_heads, int32_t head_dim, int32_t max_seq_len,
                                fai_device_info dev, int kernel, int splits, int warps, int stages,
                                fai_decode_plan *plan)
{
    return fai_decode_make_plan_kv(fn, FAI_DTYPE_FP16, 0, batch, num_q_heads, num_kv_heads, head_dim, max_seq_len,
                                   dev, kernel, splits, warps, stages, plan);
}

fai_status fai_decode_make_plan_kv(const char *fn, fai_dtype kv_dtype, int page_size, int32_t batch,
                                   int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim, int32_t max_seq_len,
                                   fai_device_info dev, int kernel, int splits, int warps, int stages,
                                   fai_decode_plan *plan)
{
    const int32_t group = num_q_heads / num_kv_heads;
    const int eb = fai_dtype_bytes(kv_dtype); /* (BF16 plans as FP16: the same bytes) */
    fai_decode_plan p = {0};
    p.head_dim = head_dim;
    /* Tensor cores pay off once a KV row serves several query heads; they hold up to 128
     * dims of output per warp in registers. */
    /* The tensor-core kernel holds at most 128 dims of output per warp, and its ring needs
     * at least 2 stages of shared memory. */
    const size_t min_smem = FAI_DECODE_MMA_SMEM_KV(head_dim, eb == 1 ? 3 : 2, eb);
    if (kernel == FAI_DECODE_MMA &&
        (head_dim > 128 || min_smem > (size_t)dev.smem_per_block || min_smem + 1024 > (size_t)dev.smem_per_sm))
        kernel = FAI_DECODE_SIMT;
    if (kernel == FAI_DECODE_AUTO)
        kernel = head_dim <= 128 && min_smem <= (size_t)dev.smem_per_block &&
                         min_smem + 1024 <= (size_t)dev.smem_per_sm &&
                         prefer_mma(kv_dtype, page_size, batch, num_kv_heads, group, head_dim, max_seq_len, dev, eb)
                     ? FAI_DECODE_MMA
                     : FAI_DECODE_SIMT;
    p.kernel = kernel;
    p.heads_per_block = kernel == FAI_DECODE_MMA ? mma_rows(group) : heads_per_block(group);
    p.head_blocks = (int32_t)ceil_div(group, p.heads_per_block);
    p.dependent_launch = dev.cc_major >= 9;

    const int64_t items = (int64_t)batch * num_kv_heads * p.head_blocks;
    if (items > INT32_MAX)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                         "%s: batch (%d) x num_kv_heads (%d) x head blocks (%d) exceeds the grid limit",
                         fn, (int)batch, (int)num_kv_heads, (int)p.head_blocks);
    if (kernel == FAI_DECODE_MMA) {
        p.stages = stages;
        plan_mma(&p, items, max_seq_len, dev, eb, under_tile_pages(page_size));
    } else {
        plan_simt(&p, items, max_seq_len, dev, eb, page_size);
        if (warps > 0) {
            const int64_t smem_per_warp = (int64_t)p.heads_per_block * (head_dim + 2) * (int64_t)sizeof(float);
            const int64_t max_warps = FAI_DECODE_SMEM_LIMIT / smem_per_warp;
            p.warps_per_block = warps < max_warps ? warps : (int32_t)max_warps;
            if (p.warps_per_block > FAI_DECODE_MAX_WARPS)
                p.warps_per_block = FAI_DECODE_MAX_WARPS;
        }
        p.smem_bytes = (size_t)p.warps_per_block * p.heads_per_block * (size_t)(head_dim + 2) * sizeof(float);
    }
    if (splits > 0)
        p.num_splits = splits;
    if (p.num_splits > FAI_DECODE_MAX_SPLITS)
        p.num_splits = FAI_DECODE_MAX_SPLITS;
    if (p.num_splits > 1 && (int64_t)batch * num_q_heads > INT32_MAX)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                         "%s: batch (%d) x num_q_heads (%d) exceeds the grid limit of the split merge", fn,
                         (int)batch, (int)num_q_heads);
    size_workspace(&p, batch, num_q_heads);
    if (kernel == FAI_DECODE_MMA && eb == 1 && splits == 0 && p.num_splits == 1) {
        /* more than a wave of unsplit blocks, the last part empty: split its items only */
        const int64_t resident = mma_resident(&p, dev);
        const int64_t tail = items % resident;
        if (items > resident && tail > 0)
            fai_decode_plan_tail(&p, kv_dtype, batch, num_q_heads, num_kv_heads, (int32_t)(items - tail),
                                 tail_splits(tail, resident, max_seq_len));
    }
    *plan = p;
    return FAI_SUCCESS;
}
