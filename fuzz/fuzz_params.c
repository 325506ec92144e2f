/* libFuzzer target: the host-side validation and planning of every entry point (fai_decode,
 * fai_prefill and their workspace-size queries) on random parameters: shapes, strides, head
 * counts, lengths, flags, NULL and misaligned pointers, host cu_seqlens arrays. Pointers are
 * never dereferenced by these functions (except the host cu_seqlens copy, which the target
 * allocates for real), so fake device addresses are fine.
 *
 * Properties checked (abort on violation):
 *  - every call returns a known status; every rejection leaves a non-empty message that
 *    names the function; the public size queries agree with the internal validation;
 *  - every accepted problem plans on three devices (H100, A100, an sm_86 card) or is
 *    rejected as a grid-limit shape; every plan keeps its invariants: splits, warps and
 *    shared memory within bounds, grids within CUDA's limits, the workspace large enough for
 *    the partial outputs and LSEs the kernels will write, prefill/decode ranges inside the
 *    batch; on a Hopper the prefill kernel's work counter last in the workspace;
 *  - fai_prefill sends its decode rows to the decode kernels whenever they take them (FP16 or
 *    BF16, any variant, packed K/V or a kv_cache): where they do not, it plans every sequence
 *    that has rows on the prefill kernel (no decode launch, no decode workspace); an accepted call
 *    has one activation dtype (FP16 or BF16) and sane variant fields;
 *  - fai_prefill with a kv_cache (chunked prefill from a contiguous or paged cache) is accepted
 *    only with the packed-key fields unset and a cache of q's dtype or an int8/FP8 one; a
 *    quantized cache's staged copy (prefill range x keys x heads x dim, K and V, 2 bytes)
 *    lies in the workspace after the decode rows' part, 256-byte aligned; an unquantized
 *    cache is staged (gathered) only when paged, for capacity keys, within the byte cap;
 *    nothing is staged for a call without prefill rows.
 * The variants' fields and the shared BF16 dtype are read from bytes after all the others,
 * so the inputs of the corpus keep their meaning for the rest.
 * Build: fuzz/CMakeLists.txt (clang, -fsanitize=fuzzer,address,undefined). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_plan.h"
#include "error.h"
#include "fai.h"
#include "kv_append_args.h"
#include "merge_args.h"
#include "prefill_args.h"
#include "prefill_plan.h"

#define REQUIRE(cond)                                                                             \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "fuzz_params: %s:%d: property violated: %s (last error: \"%s\")\n",    \
                    __FILE__, __LINE__, #cond, fai_last_error());                                 \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint64_t take(reader *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | (r->n ? *r->p : 0);
        if (r->n) {
            r->p++;
            r->n--;
        }
    }
    return v;
}

static int64_t pick_i64(reader *r)
{
    switch (take(r, 1) % 12) {
    case 0: return 0;
    case 1: return 1;
    case 2: return -1;
    case 3: return (int64_t)(take(r, 1));               /* small */
    case 4: return (int64_t)(take(r, 2));               /* up to 64K */
    case 5: return (int64_t)(take(r, 2)) * 8;           /* stride-like */
    case 6: return INT32_MAX;
    case 7: return INT64_MAX / (int64_t)(1 + take(r, 1));
    case 8: return INT64_MIN;
    case 9: return (int64_t)take(r, 8);
    case 10: return (int64_t)take(r, 3) * 128;
    default: return -(int64_t)take(r, 2);
    }
}

static int32_t pick_i32(reader *r)
{
    switch (take(r, 1) % 10) {
    case 0: return 0;
    case 1: return 1;
    case 2: return -1;
    case 3: return (int32_t)take(r, 1);
    case 4: return (int32_t)take(r, 2);
    case 5: return INT32_MAX;
    case 6: return INT32_MIN;
    case 7: return (int32_t)take(r, 4);
    case 8: return (int32_t)take(r, 3);
    default: return 1 << (take(r, 1) % 31);
    }
}

static int32_t pick_head_dim(reader *r)
{
    static const int32_t dims[] = {64, 96, 128, 256, 0, 32, 80, 512, -128};
    return dims[take(r, 1) % (sizeof dims / sizeof dims[0])];
}

static float pick_scale(reader *r)
{
    switch (take(r, 1) % 8) {
    case 0: return 0.08838834764831845f;
    case 1: return 0.0f;
    case 2: return -1.0f;
    case 3: return 1e30f;
    case 4: return 3e38f;
    case 5: {
        const uint32_t bits = (uint32_t)take(r, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return f;
    }
    default: return 1.0f / (float)(1 + take(r, 1));
    }
}

/* A fake device address: NULL, 16-byte aligned, 4-byte aligned, or odd. */
static void *pick_ptr(reader *r)
{
    switch (take(r, 1) % 6) {
    case 0: return NULL;
    case 1: return (void *)(uintptr_t)0x10004;
    case 2: return (void *)(uintptr_t)0x10001;
    default: return (void *)(uintptr_t)(0x100000 + 16 * take(r, 1));
    }
}

static fai_dtype pick_dtype(reader *r) { return (take(r, 1) % 8) ? FAI_DTYPE_FP16 : (fai_dtype)(int)take(r, 1); }

/* Mostly FP16, sometimes one of the quantized cache types, sometimes anything. */
static fai_dtype pick_cache_dtype(reader *r)
{
    const uint64_t k = take(r, 1) % 8;
    return k < 4 ? FAI_DTYPE_FP16 : k < 7 ? (fai_dtype)(int)(2 + k - 4) : (fai_dtype)(int)take(r, 1);
}

/* A page table (sizes mostly powers of two, sometimes anything). */
static void pick_pages(reader *r, fai_kv_cache *c)
{
    c->page_table = (const int32_t *)pick_ptr(r);
    c->page_table_stride = (take(r, 1) % 2) ? (int64_t)take(r, 2) : pick_i64(r);
    c->page_size = (take(r, 1) % 4) ? (int32_t)1 << (take(r, 1) % 10) : pick_i32(r);
    c->num_pages = (take(r, 1) % 2) ? (int32_t)take(r, 2) : pick_i32(r);
}

/* The int8 scales (or stray ones on other dtypes). */
static void pick_scales(reader *r, fai_kv_cache *c)
{
    c->k_scale = (float *)pick_ptr(r);
    c->v_scale = (float *)pick_ptr(r);
    c->scale_seq_stride = pick_i64(r);
    c->scale_token_stride = pick_i64(r);
    c->scale_head_stride = pick_i64(r);
}

static fai_tensor pick_tensor(reader *r)
{
    fai_tensor t;
    t.data = pick_ptr(r);
    t.dtype = pick_dtype(r);
    t.token_stride = pick_i64(r);
    t.head_stride = pick_i64(r);
    return t;
}

static fai_attention pick_attention(reader *r)
{
    fai_attention a = fai_attention_default();
    a.num_kv_heads = (take(r, 1) % 4) ? (int32_t)(1 + take(r, 1) % 16) : pick_i32(r);
    const int64_t hq = (int64_t)a.num_kv_heads * (int64_t)(1 + take(r, 1) % 9);
    a.num_q_heads = (take(r, 1) % 4 && hq >= INT32_MIN && hq <= INT32_MAX) ? (int32_t)hq : pick_i32(r);
    a.head_dim = pick_head_dim(r);
    a.softmax_scale = pick_scale(r);
    a.alibi = (int32_t)(take(r, 1) % 3 == 0);
    a.alibi_slopes = (const float *)pick_ptr(r);
    return a;
}

/* The variants and the activations' dtype, from the input's last bytes (none left: off). */
static void pick_variants(reader *r, fai_attention *a)
{
    static const int32_t sides[] = {0, -1, 1, 127, 4095, INT32_MAX, -2, INT32_MIN};
    static const float caps[] = {0.0f, 50.0f, 30.0f, 1e-3f, -1.0f, 1e-40f, 3e38f, 1e-39f};
    const uint64_t k = take(r, 1);
    a->window = (int32_t)(k & 1);
    a->window_left = (k & 2) ? pick_i32(r) : sides[take(r, 1) % 8];
    a->window_right = (k & 4) ? pick_i32(r) : sides[take(r, 1) % 8];
    a->softcap = (k & 8) ? caps[take(r, 1) % 8] : (k & 16) ? pick_scale(r) : 0.0f;
    a->sinks = (k & 32) ? (const float *)pick_ptr(r) : NULL;
}

static fai_dtype pick_io_dtype(reader *r)
{
    const uint64_t k = take(r, 1) % 8;
    return k == 0 ? FAI_DTYPE_BF16 : k == 1 ? (fai_dtype)(int)take(r, 1) : FAI_DTYPE_FP16;
}

static const fai_device_info devices[] = {{132, 233472, 9, 232448}, {108, 167936, 8, 166912}, {82, 102400, 8, 101376}};

static int known_status(fai_status s) { return strncmp(fai_status_string(s), "FAI_UNKNOWN", 11) != 0; }

/* A rejection: a known, non-success status and a message naming the function. */
static void check_rejection(fai_status s, const char *fn)
{
    REQUIRE(known_status(s) && s != FAI_SUCCESS);
    REQUIRE(strncmp(fai_last_error(), fn, strlen(fn)) == 0);
}

static void check_decode_plan(const fai_decode_plan *p, int32_t batch, const fai_attention *a, fai_device_info dev,
                              fai_dtype kv_dtype)
{
    if (p->kernel == FAI_DECODE_MMA && kv_dtype != FAI_DTYPE_FP16 && kv_dtype != FAI_DTYPE_BF16) /* one-byte: 3 or 6 */
        REQUIRE(p->stages == 3 || p->stages == 6);
    const int32_t group = a->num_q_heads / a->num_kv_heads;
    REQUIRE(a->num_q_heads <= FAI_MAX_HEADS);
    REQUIRE(p->kernel == FAI_DECODE_SIMT || p->kernel == FAI_DECODE_MMA);
    REQUIRE(p->num_splits >= 1 && p->num_splits <= FAI_DECODE_MAX_SPLITS);
    REQUIRE(p->warps_per_block >= 1 && p->warps_per_block <= FAI_DECODE_MAX_WARPS);
    REQUIRE(p->heads_per_block >= 1 && (int64_t)p->head_blocks * p->heads_per_block >= group);
    REQUIRE((int64_t)batch * a->num_kv_heads * p->head_blocks <= INT32_MAX);
    if (p->kernel == FAI_DECODE_MMA) {
        REQUIRE(a->head_dim <= 128);
        REQUIRE(p->smem_bytes <= (size_t)dev.smem_per_block);
    } else {
        REQUIRE(p->smem_bytes <= FAI_DECODE_SMEM_LIMIT);
    }
    const int64_t items = (int64_t)batch * a->num_kv_heads * p->head_blocks;
    if (p->split_from > 0) { /* a split tail: one-byte caches on tensor cores, the grid in range */
        REQUIRE(p->kernel == FAI_DECODE_MMA && kv_dtype != FAI_DTYPE_FP16 && kv_dtype != FAI_DTYPE_BF16);
        REQUIRE(p->num_splits > 1 && p->split_from < items);
        REQUIRE(p->split_from + (items - p->split_from) * p->num_splits <= INT32_MAX);
        const int64_t item = p->split_from / p->head_blocks;
        REQUIRE(p->split_row0 == (item / a->num_kv_heads) * a->num_q_heads + (item % a->num_kv_heads) * group +
                                     (p->split_from % p->head_blocks) * p->heads_per_block);
    } else {
        REQUIRE(p->split_row0 == 0);
    }
    if (p->num_splits > 1) {
        /* partials for the split items' rows (all rows, or from split_row0 on) */
        const size_t rows = ((size_t)batch * (size_t)a->num_q_heads - (size_t)p->split_row0) * (size_t)p->num_splits;
        const size_t lse_off = fai_decode_part_lse_offset(p, batch, a->num_q_heads);
        REQUIRE((int64_t)batch * a->num_q_heads <= INT32_MAX);
        REQUIRE(lse_off >= rows * (size_t)a->head_dim * sizeof(float));
        REQUIRE(p->workspace_bytes >= lse_off + rows * sizeof(float));
    } else {
        REQUIRE(p->workspace_bytes == 0);
    }
}

static void fuzz_decode(reader *r)
{
    static const char fn[] = "fuzz_decode";
    fai_decode_params p = fai_decode_params_default();
    p.attn = pick_attention(r);
    p.batch = (take(r, 1) % 3) ? (int32_t)(take(r, 1) % 64) : pick_i32(r);
    p.q = pick_tensor(r);
    p.o = pick_tensor(r);
    p.cache.dtype = pick_dtype(r);
    p.cache.k = pick_ptr(r);
    p.cache.v = pick_ptr(r);
    p.cache.seq_stride = pick_i64(r);
    p.cache.token_stride = pick_i64(r);
    p.cache.head_stride = pick_i64(r);
    p.cache.capacity = pick_i32(r);
    p.cache.seq_lens = (const int32_t *)pick_ptr(r);
    p.cache.max_seq_len = pick_i32(r);
    p.lse = (float *)pick_ptr(r);
    const int null_params = take(r, 1) % 32 == 0;
    if (take(r, 1) % 2) { /* a quantized cache (appended picks: older corpus inputs keep their meaning) */
        p.cache.dtype = pick_cache_dtype(r);
        pick_scales(r, &p.cache);
        if (take(r, 1) % 2)
            pick_pages(r, &p.cache);
    }
    pick_variants(r, &p.attn);
    const fai_dtype io = pick_io_dtype(r);
    if (io != FAI_DTYPE_FP16)
        p.q.dtype = p.o.dtype = io;

    fai_error_clear();
    const fai_status v = fai_decode_validate(fn, null_params ? NULL : &p);
    if (v != FAI_SUCCESS)
        check_rejection(v, fn);
    size_t bytes = 12345;
    const fai_status pub = fai_decode_workspace_size(null_params ? NULL : &p, &bytes);
    REQUIRE(known_status(pub));
    if (v != FAI_SUCCESS) { /* the public call rejects it the same way */
        REQUIRE(pub == v && bytes == 0);
        check_rejection(pub, "fai_decode_workspace_size");
        return;
    }
    if (pub != FAI_SUCCESS) /* no GPU here: only the device query may fail */
        REQUIRE(pub == FAI_ERROR_EXECUTION_FAILED || pub == FAI_ERROR_NOT_SUPPORTED_DEVICE);
    if (p.batch == 0)
        return;
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        fai_decode_plan plan;
        fai_error_clear();
        const fai_status s = fai_decode_plan_params(fn, &p, devices[i], &plan);
        if (s != FAI_SUCCESS) {
            REQUIRE(s == FAI_ERROR_BAD_PARAM_SHAPE);
            check_rejection(s, fn);
            continue;
        }
        check_decode_plan(&plan, p.batch, &p.attn, devices[i], p.cache.dtype);
    }
}

static void fuzz_prefill(reader *r)
{
    static const char fn[] = "fuzz_prefill";
    fai_prefill_params p = fai_prefill_params_default();
    p.attn = pick_attention(r);
    p.batch = (take(r, 1) % 3) ? (int32_t)(take(r, 1) % 64) : pick_i32(r);
    p.causal = (int32_t)(take(r, 1) % 2);
    p.q = pick_tensor(r);
    p.k = pick_tensor(r);
    p.v = pick_tensor(r);
    p.o = pick_tensor(r);
    p.cu_seqlens_q = (const int32_t *)pick_ptr(r);
    p.cu_seqlens_k = (const int32_t *)pick_ptr(r);
    p.total_q = (take(r, 1) % 2) ? (int32_t)take(r, 2) : pick_i32(r);
    p.total_k = (take(r, 1) % 2) ? (int32_t)take(r, 2) : pick_i32(r);
    p.max_seq_q = (take(r, 1) % 2) ? (int32_t)take(r, 2) : pick_i32(r);
    p.max_seq_k = (take(r, 1) % 2) ? (int32_t)take(r, 2) : pick_i32(r);
    p.lse = (float *)pick_ptr(r);
    int32_t *host = NULL;
    if (take(r, 1) % 2 && p.batch >= 0 && p.batch <= 4096) {
        /* Mostly valid offsets (steps of 0, 1 or a few), sometimes not. */
        host = malloc(sizeof(int32_t) * ((size_t)p.batch + 1));
        host[0] = (take(r, 1) % 8) ? 0 : (int32_t)take(r, 1) - 8;
        for (int32_t b = 0; b < p.batch; b++) {
            const uint64_t kind = take(r, 1) % 16;
            const int32_t step = kind < 4 ? 1 : kind < 6 ? 0 : kind < 15 ? (int32_t)(take(r, 1) % 200) : -1;
            host[b + 1] = host[b] + step;
        }
        p.cu_seqlens_q_host = host;
    }
    const int null_params = take(r, 1) % 32 == 0;
    pick_variants(r, &p.attn);
    const fai_dtype io = pick_io_dtype(r);
    if (io != FAI_DTYPE_FP16) /* mostly all four, sometimes q alone (mixed: refused) */
        p.q.dtype = p.k.dtype = p.v.dtype = p.o.dtype = io;
    if (take(r, 1) % 16 == 1)
        p.q.dtype = p.q.dtype == FAI_DTYPE_BF16 ? FAI_DTYPE_FP16 : FAI_DTYPE_BF16;
    static fai_kv_cache kv_cache; /* keys and values from a KV cache (picked last: older inputs keep their meaning) */
    if (take(r, 1) % 4 == 1) {
        memset(&kv_cache, 0, sizeof kv_cache);
        kv_cache.dtype = (take(r, 1) % 4) ? p.q.dtype : pick_cache_dtype(r);
        kv_cache.k = pick_ptr(r);
        kv_cache.v = pick_ptr(r);
        kv_cache.seq_stride = pick_i64(r);
        kv_cache.token_stride = pick_i64(r);
        kv_cache.head_stride = pick_i64(r);
        kv_cache.capacity = (take(r, 1) % 2) ? (int32_t)take(r, 2) : pick_i32(r);
        kv_cache.seq_lens = (const int32_t *)pick_ptr(r);
        kv_cache.max_seq_len = (take(r, 1) % 2) ? 0 : pick_i32(r);
        if (take(r, 1) % 4 == 0)
            pick_scales(r, &kv_cache);
        if (take(r, 1) % 2)
            pick_pages(r, &kv_cache);
        if (take(r, 1) % 4) { /* mostly the packed-key fields unset, as they must be */
            p.k.data = p.v.data = NULL;
            p.cu_seqlens_k = NULL;
            p.total_k = p.max_seq_k = 0;
        }
        p.kv_cache = &kv_cache;
    }

    fai_error_clear();
    const fai_status v = fai_prefill_validate(fn, null_params ? NULL : &p);
    if (!null_params && v == FAI_SUCCESS) { /* one activation dtype, FP16 or BF16; sane variants */
        REQUIRE(p.q.dtype == FAI_DTYPE_FP16 || p.q.dtype == FAI_DTYPE_BF16);
        REQUIRE(p.kv_cache || (p.k.dtype == p.q.dtype && p.v.dtype == p.q.dtype));
        REQUIRE(p.o.dtype == p.q.dtype);
        if (p.kv_cache) { /* q's dtype (FP16 or BF16) or quantized; the packed-key fields are unset */
            const fai_dtype cd = p.kv_cache->dtype;
            REQUIRE(cd == p.q.dtype || cd == FAI_DTYPE_INT8 || cd == FAI_DTYPE_FP8_E4M3 || cd == FAI_DTYPE_FP8_E5M2);
            REQUIRE(!p.k.data && !p.v.data && !p.cu_seqlens_k && p.total_k == 0 && p.max_seq_k == 0);
            if (cd != FAI_DTYPE_INT8) /* (an int8 cache may leave them NULL where it holds no token) */
                REQUIRE(!p.kv_cache->k_scale && !p.kv_cache->v_scale);
        }
        REQUIRE(p.attn.window_left >= -1 && p.attn.window_right >= -1);
        REQUIRE(p.attn.num_q_heads <= FAI_MAX_HEADS);
        REQUIRE(p.attn.softcap == 0.0f || (p.attn.softcap >= FLT_MIN && isfinite(p.attn.softcap * 1.4426950408889634f) &&
                                              isfinite(1.0f / (p.attn.softcap * 1.4426950408889634f))));
        REQUIRE(p.total_q <= FAI_MAX_CACHE_CAPACITY && p.total_k <= FAI_MAX_CACHE_CAPACITY);
    }
    /* The decode kernels take the decode rows only in FP16 without the variants. */
    const int decode_kernels = !null_params && fai_prefill_decode_kernels_serve(&p);
    if (v != FAI_SUCCESS)
        check_rejection(v, fn);
    size_t bytes = 12345;
    const fai_status pub = fai_prefill_workspace_size(null_params ? NULL : &p, &bytes);
    REQUIRE(known_status(pub));
    if (v != FAI_SUCCESS) {
        REQUIRE(pub == v && bytes == 0);
        check_rejection(pub, "fai_prefill_workspace_size");
        free(host);
        return;
    }
    if (pub != FAI_SUCCESS)
        REQUIRE(pub == FAI_ERROR_EXECUTION_FAILED || pub == FAI_ERROR_NOT_SUPPORTED_DEVICE);
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        fai_prefill_plan plan;
        fai_error_clear();
        const fai_status s = fai_prefill_make_plan(fn, &p, devices[i], &plan);
        if (s != FAI_SUCCESS) {
            REQUIRE(s == FAI_ERROR_BAD_PARAM_SHAPE);
            check_rejection(s, fn);
            continue;
        }
        if (p.batch == 0 || p.total_q == 0) {
            REQUIRE(!plan.run_prefill && !plan.run_decode && plan.workspace_bytes == 0);
            continue;
        }
        REQUIRE(plan.run_prefill || plan.run_decode || host); /* without host lengths both run */
        if (!host) /* (the decode kernels only when they can take the decode rows) */
            REQUIRE(plan.run_prefill && plan.run_decode == decode_kernels);
        if (!decode_kernels) /* the decode kernels do not take these rows: no decode launch (nor their workspace) */
            REQUIRE(!plan.run_decode);
        if (plan.run_prefill) {
            REQUIRE(plan.prefill_first >= 0 && plan.prefill_count >= 1);
            REQUIRE((int64_t)plan.prefill_first + plan.prefill_count <= p.batch);
            REQUIRE(plan.m_tiles >= 1);
            REQUIRE(plan.mt == FAI_PREFILL_MT(p.attn.head_dim) || plan.mt == 1);
            const int64_t grid = (int64_t)plan.prefill_count * p.attn.num_q_heads * plan.m_tiles;
            REQUIRE(grid <= INT_MAX);
            /* The grid covers the longest sequence's tiles, unless capped by the grid limit
             * (blocks then loop over the rest). */
            int64_t max_q = p.max_seq_q;
            if (host) {
                max_q = 1;
                for (int32_t b = 0; b < p.batch; b++)
                    max_q = host[b + 1] - host[b] > max_q ? host[b + 1] - host[b] : max_q;
            }
            REQUIRE((int64_t)plan.m_tiles * FAI_PREFILL_BM_OF(plan.mt) >= max_q ||
                    grid + (int64_t)plan.prefill_count * p.attn.num_q_heads > INT_MAX);
        }
        if (host) { /* every sequence lies in the range of the kernel that serves its kind */
            for (int32_t b = 0; b < p.batch; b++) {
                const int32_t n = host[b + 1] - host[b];
                if (n > 1 || (n == 1 && !decode_kernels))
                    REQUIRE(plan.run_prefill && b >= plan.prefill_first && b < plan.prefill_first + plan.prefill_count);
                else if (n == 1)
                    REQUIRE(plan.run_decode && b >= plan.decode_first && b < plan.decode_first + plan.decode_count);
            }
        }
        const size_t decode_bytes = plan.run_decode ? plan.decode.workspace_bytes : 0;
        if (plan.run_decode) {
            REQUIRE(plan.decode_first >= 0 && plan.decode_count >= 1);
            REQUIRE((int64_t)plan.decode_first + plan.decode_count <= p.batch);
            check_decode_plan(&plan.decode, plan.decode_count, &p.attn, devices[i], FAI_DTYPE_FP16);
        }
        const int quantized = p.kv_cache && (p.kv_cache->dtype == FAI_DTYPE_INT8 ||
                                             p.kv_cache->dtype == FAI_DTYPE_FP8_E4M3 ||
                                             p.kv_cache->dtype == FAI_DTYPE_FP8_E5M2);
        if (quantized && plan.run_prefill && plan.stage_keys > 0) {
            const fai_kv_cache *c = p.kv_cache;
            REQUIRE(plan.stage_keys <= c->capacity &&
                    (c->max_seq_len < 1 || c->max_seq_len > c->capacity || plan.stage_keys == c->max_seq_len));
            /* the staged elements, each 2 bytes, with no overflow on the way */
            const size_t row = (size_t)2 * (size_t)p.attn.num_kv_heads * (size_t)p.attn.head_dim;
            REQUIRE(plan.stage_bytes % row == 0 &&
                    plan.stage_bytes / row == (size_t)plan.prefill_count * (size_t)plan.stage_keys);
            REQUIRE(plan.stage_offset % 256 == 0 && plan.stage_offset >= decode_bytes &&
                    plan.stage_offset < decode_bytes + 256 && plan.stage_bytes > 0);
        } else if (plan.stage_keys > 0) { /* a paged FP16/BF16 cache gathered: capacity keys, within the cap */
            REQUIRE(plan.run_prefill && p.kv_cache && p.kv_cache->page_table && !quantized &&
                    plan.stage_keys == p.kv_cache->capacity);
            REQUIRE((double)plan.stage_bytes * 2 <= FAI_PREFILL_STAGE_PAGED_MAX_BYTES);
            REQUIRE(plan.stage_offset % 256 == 0 && plan.stage_offset >= decode_bytes &&
                    plan.stage_offset < decode_bytes + 256);
        }
        /* The decode rows' partials, a staged copy, then on a Hopper GPU with prefill rows the
         * wgmma kernel's work counter, 256-byte aligned, last. */
        const size_t rest = plan.stage_keys > 0 ? plan.stage_offset + 2 * plan.stage_bytes : decode_bytes;
        REQUIRE(plan.sm90 == 0 || devices[i].cc_major == 9);
        if (plan.run_prefill && plan.sm90 > 0) /* the Hopper kernel's sections: within the range's pairs */
            REQUIRE(plan.section >= 1 && (int64_t)plan.section <= (int64_t)plan.prefill_count * p.attn.num_q_heads);
        if (plan.run_prefill && devices[i].cc_major == 9)
            REQUIRE(plan.sm90 > 0 && plan.counter_offset % 256 == 0 && plan.counter_offset >= rest &&
                    plan.counter_offset < rest + 256 &&
                    plan.workspace_bytes == plan.counter_offset + FAI_PREFILL_COUNTER_BYTES);
        else
            REQUIRE(plan.counter_offset == 0 && plan.workspace_bytes == rest);
    }
    free(host);
}

/* fai_kv_append's checks: the same properties (a known status and a message naming the
 * function on rejection; the public call agrees). Accepted calls are not made (they would
 * launch on a machine with a GPU), except those with nothing to write. */
static void fuzz_append(reader *r)
{
    static const char fn[] = "fuzz_append";
    fai_kv_append_params p = fai_kv_append_params_default();
    p.num_kv_heads = (take(r, 1) % 4) ? (int32_t)(1 + take(r, 1) % 16) : pick_i32(r);
    p.head_dim = pick_head_dim(r);
    p.num_tokens = (take(r, 1) % 3) ? (int32_t)(take(r, 1) % 64) : pick_i32(r);
    p.k_new = pick_tensor(r);
    p.v_new = pick_tensor(r);
    p.slots = (const int64_t *)pick_ptr(r);
    p.cache_batch = (take(r, 1) % 3) ? (int32_t)(take(r, 1) % 64) : pick_i32(r);
    p.cache.dtype = pick_cache_dtype(r);
    p.cache.k = pick_ptr(r);
    p.cache.v = pick_ptr(r);
    p.cache.seq_stride = pick_i64(r);
    p.cache.token_stride = pick_i64(r);
    p.cache.head_stride = pick_i64(r);
    p.cache.capacity = (take(r, 1) % 3) ? (int32_t)take(r, 2) : pick_i32(r);
    if (take(r, 1) % 2)
        pick_scales(r, &p.cache);
    if (take(r, 1) % 2)
        pick_pages(r, &p.cache);
    const int null_params = take(r, 1) % 32 == 0;

    fai_error_clear();
    const fai_status v = fai_kv_append_validate(fn, null_params ? NULL : &p);
    if (v != FAI_SUCCESS) {
        check_rejection(v, fn);
        const fai_status pub = fai_kv_append(null_params ? NULL : &p, 0);
        REQUIRE(pub == v);
        check_rejection(pub, "fai_kv_append");
        return;
    }
    /* Accepted: the views it will touch fit in int64 offsets (the checks promise it). */
    REQUIRE(p.num_tokens >= 0 && p.cache_batch >= 1 && p.cache.capacity >= 0);
    REQUIRE(p.num_kv_heads >= 1 && p.num_kv_heads <= FAI_MAX_HEADS);
    if (p.num_tokens == 0 || (p.cache.capacity == 0 && !p.cache.page_table))
        REQUIRE(fai_kv_append(&p, 0) == FAI_SUCCESS);
    if (p.cache.page_table && p.num_tokens > 0) /* a valid pool */
        REQUIRE(p.cache.page_size >= 1 && p.cache.page_size <= 256 && p.cache.num_pages >= 1);
}

/* fai_merge_states' and fai_merge_state's checks: a known status and a message naming the
 * function on rejection, the public calls agree with the internal validation (the pair call
 * with the two-part one), and an accepted merge has 1..FAI_MERGE_MAX_PARTS parts of one
 * FP16/BF16 dtype and a head_dim the kernel takes. Accepted calls are made only with zero
 * rows (nothing to launch). Outputs sometimes alias a part (in place) or sit next to one. */
static void fuzz_merge(reader *r)
{
    static const char fn[] = "fuzz_merge";
    fai_tensor parts[FAI_MERGE_MAX_PARTS + 2];
    const float *lses[FAI_MERGE_MAX_PARTS + 2];
    fai_merge_params p = fai_merge_params_default();
    p.num_parts = (take(r, 1) % 4) ? (int32_t)(1 + take(r, 1) % (FAI_MERGE_MAX_PARTS + 2)) : pick_i32(r);
    p.num_rows = (take(r, 1) % 3) ? (int32_t)(take(r, 1) % 3 ? take(r, 1) % 4 : take(r, 2)) : pick_i32(r);
    p.num_heads = (take(r, 1) % 4) ? (int32_t)(1 + take(r, 1) % 64) : pick_i32(r);
    p.head_dim = (take(r, 1) % 2) ? pick_head_dim(r) : (int32_t)(take(r, 1) * 2);
    const fai_dtype dt = pick_io_dtype(r);
    for (int i = 0; i < FAI_MERGE_MAX_PARTS + 2; i++) {
        parts[i] = pick_tensor(r);
        parts[i].dtype = (take(r, 1) % 8) ? dt : pick_dtype(r);
        lses[i] = (const float *)pick_ptr(r);
    }
    p.o = pick_tensor(r);
    p.o.dtype = (take(r, 1) % 8) ? dt : pick_dtype(r);
    p.lse = (float *)pick_ptr(r);
    const uint64_t alias = take(r, 1);
    const int j = (int)(take(r, 1) % (FAI_MERGE_MAX_PARTS + 2));
    if (alias & 1) /* in place, sometimes with other strides */
        p.o = parts[j], p.o.token_stride = (alias & 2) ? pick_i64(r) : p.o.token_stride;
    if (alias & 4) /* the output LSE at or near a part's */
        p.lse = (float *)(uintptr_t)((uintptr_t)lses[j] + 4 * (take(r, 1) % 3 ? 0 : take(r, 1)));
    p.parts = (take(r, 1) % 32) ? parts : NULL;
    p.parts_lse = (take(r, 1) % 32) ? lses : NULL;
    const int null_params = take(r, 1) % 32 == 0;

    fai_error_clear();
    const fai_status v = fai_merge_validate(fn, null_params ? NULL : &p, 0);
    if (v != FAI_SUCCESS) {
        check_rejection(v, fn);
        const fai_status pub = fai_merge_states(null_params ? NULL : &p, 0);
        REQUIRE(pub == v);
        check_rejection(pub, "fai_merge_states");
    } else {
        REQUIRE(p.num_parts >= 1 && p.num_parts <= FAI_MERGE_MAX_PARTS && p.num_rows >= 0 && p.num_heads >= 1);
        REQUIRE(p.head_dim >= 8 && p.head_dim <= 256 && p.head_dim % 8 == 0);
        REQUIRE(p.o.dtype == FAI_DTYPE_FP16 || p.o.dtype == FAI_DTYPE_BF16);
        for (int i = 0; i < p.num_parts; i++)
            REQUIRE(p.parts[i].dtype == p.o.dtype);
        if (p.num_rows == 0)
            REQUIRE(fai_merge_states(&p, 0) == FAI_SUCCESS && fai_last_error()[0] == '\0');
    }
    /* The two-part call: the same checks (its names differ). */
    if (null_params || !p.parts || !p.parts_lse || p.num_parts != 2)
        return;
    fai_error_clear();
    const fai_status vp = fai_merge_validate("fuzz_pair", &p, 1);
    REQUIRE(vp == v);
    if (vp != FAI_SUCCESS || p.num_rows == 0) {
        const fai_status pub = fai_merge_state(p.num_rows, p.num_heads, p.head_dim, parts[0], lses[0], parts[1],
                                               lses[1], p.o, p.lse, 0);
        REQUIRE(pub == vp);
        if (vp != FAI_SUCCESS)
            check_rejection(pub, "fai_merge_state");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = {data, size};
    const uint64_t which = take(&r, 1);
    if (which % 2)
        fuzz_decode(&r);
    else if (which % 8 != 6)
        fuzz_prefill(&r);
    else if (which % 32 == 30)
        fuzz_merge(&r);
    else
        fuzz_append(&r);
    return 0;
}
