/* GPU test of fai_prefill reading K/V from a KV cache (fai_prefill_params.kv_cache: chunked
 * prefill and prefix caching), contiguous and paged, against the double-precision CPU
 * reference, on fresh random inputs (seed printed; FAI_TEST_SEED reproduces a run).
 *
 * Every cache slot or page row that a sequence does not own holds NaN (so do the unused pages
 * of the pool and the unused page-table entries point at such pages), as do the query rows
 * outside the batch; O and LSE are poisoned with NaN before every call. A read of a wrong row
 * or page, or an unwritten output, thus fails. With a window, a sequence's keys more than a
 * margin left of all its rows' windows hold NaN too (their tiles must be skipped, not read
 * and masked). Pages are handed out in scrambled order, and sequences can share the pages of
 * a common prefix. Tolerances are those of test_prefill.c
 * (shared/guides/correctness.md): rel L2 <= 2e-3 (BF16: 1.6e-2), max error at most twice that
 * of a plain FP32 reference with an output rounded to the element type, LSE within
 * 1e-3 + 1e-4 |lse|, rows that see no key exactly zero with an LSE of -inf. Each case runs
 * planned from a host copy of cu_seqlens_q and without one.
 *
 * Quantized caches (int8, FP8 E4M3 and E5M2): the codes and int8 scales are the host codec's
 * (src/kv_codec.h, which fai_kv_append matches bit for bit), unused rows hold NaN codes (FP8)
 * or NaN scales (int8), and the reference runs on the dequantized values rounded to q's
 * dtype: what fai_prefill's staged copy holds; a decode row's (seq_q 1) on them unrounded, as
 * the decoding kernels that take it read the codes.
 *
 * The chunked-prefill cases process one prompt in 1, 3 and 7 chunks: each chunk's K/V is
 * written into a paged cache by fai_kv_append (FP16 or BF16 rows into a cache of their
 * dtype, or quantized), then fai_prefill runs that chunk's queries over the cache; the
 * outputs of all chunks must match one whole-prompt prefill from packed K/V (quantized: the
 * one-chunk run) and the reference.
 *
 * --small: the small cases only. FAI_TEST_NAME=text runs only the cases whose name contains
 * text. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "kv_codec.h"
#include "random_case.h"
#include "reference.h"

#define MAX_BATCH 24 /* the most sequences a case may hold (run_case checks) */
#define LEAD 2 /* NaN query rows before the first sequence */

typedef struct cache_case {
    const char *name;
    int hq, hk, d;
    int batch;
    const int *sq, *sk; /* [batch]: query rows (the last sq of the sk cached keys) and cache lengths */
    int page_size;      /* 0: contiguous slots; else a paged cache */
    int shared;         /* paged: sequence 1 starts with sequence 0's first `shared` pages (a common prefix) */
    int hnd;            /* pages (or slots) head-major [hk, tokens, d] instead of [tokens, hk, d] */
    int causal;
    int bf16;
    int window_left;    /* > 0: causal sliding window of window_left + 1 keys */
    int sinks;          /* random sinks in [-2, 4] */
    float softcap;      /* > 0: logit soft-cap */
    int alibi;          /* ALiBi with the standard slopes */
    fai_dtype quant;    /* FAI_DTYPE_INT8 / FP8_E4M3 / FP8_E5M2: a quantized cache (0: q's dtype) */
    int scale_pairs;    /* int8: FAI_SCALES_BF16X2 (both scales of a token and head as BF16 in one word) */
} cache_case;

#define LENS(...) (const int[]){__VA_ARGS__}

static uint64_t g_seed;
static int g_bf16, g_small;
static int g_scale_pairs; /* the running case's int8 scales are FAI_SCALES_BF16X2 */

static uint16_t to_elem(float x) { return g_bf16 ? host_float_to_bf16(x) : host_float_to_half(x); }
static float from_elem(uint16_t b) { return g_bf16 ? host_bf16_to_float(b) : host_half_to_float(b); }

static void round_elems(float *x, uint16_t *bits, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        bits[i] = to_elem(x[i]);
        x[i] = from_elem(bits[i]);
    }
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Keys lo .. hi - 1 that row i of a (sq, sk) sequence sees. */
static int visible(const cache_case *c, int i, int sq, int sk, int *lo, int *hi)
{
    const int diag = i + sk - sq;
    int l = 0, h = sk;
    if (c->causal)
        h = imin(h, diag + 1);
    if (c->window_left > 0)
        l = imax(l, diag - c->window_left);
    if (h < l)
        h = l;
    *lo = l;
    *hi = h;
    return h - l;
}

/* Plain FP32 attention of one row with an output rounded to the element type (the yardstick):
 * logits scaled, soft-capped (softcap > 0), biased by -slope |diag - j|. */
static void ref32_row(const float *q, const float *k, const float *v, int lo, int hi, int64_t kv_stride, int d,
                      float scale, float softcap, float slope, int diag, float sink, float *out)
{
    float *s = malloc(sizeof(float) * (size_t)(hi > lo ? hi - lo : 1));
    float mx = isnan(sink) ? -INFINITY : sink;
    for (int j = lo; j < hi; j++) {
        float dot = 0.0f;
        for (int e = 0; e < d; e++)
            dot += q[e] * k[(int64_t)j * kv_stride + e];
        float x = dot * scale;
        if (softcap > 0.0f)
            x = softcap * tanhf(x / softcap);
        s[j - lo] = x - slope * (float)abs(diag - j);
        mx = fmaxf(mx, s[j - lo]);
    }
    float sum = isnan(sink) ? 0.0f : expf(sink - mx);
    for (int j = 0; j < hi - lo; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    for (int e = 0; e < d; e++) {
        float acc = 0.0f;
        for (int j = 0; j < hi - lo; j++)
            acc += s[j] * v[(int64_t)(lo + j) * kv_stride + e];
        out[e] = from_elem(to_elem(hi > lo ? acc / sum : 0.0f));
    }
    free(s);
}

/* The FP32 yardstick over every (row, head) of one sequence (q [sq, hq, d], k and v
 * [sk, hk, d], the double reference [sq, hq, d]), split over host threads: its largest error. */
typedef struct yardstick {
    const cache_case *c;
    const float *q, *k, *v;
    const double *ref, *sinks; /* sinks: [hq] or NULL */
    const double *slopes;      /* [hq] (ALiBi) or NULL */
    int sq, sk, hq, hk, d;
    float scale;
    double *err; /* [sq * hq] */
} yardstick;

static void yardstick_range(int64_t first, int64_t end, void *ctx)
{
    const yardstick *y = ctx;
    const int d = y->d;
    const int64_t qrow = (int64_t)y->hq * d;
    float *o32 = malloc(sizeof(float) * (size_t)d);
    for (int64_t it = first; it < end; it++) {
        const int i = (int)(it / y->hq), h = (int)(it % y->hq), kvh = h / (y->hq / y->hk);
        int lo, hi;
        visible(y->c, i, y->sq, y->sk, &lo, &hi);
        ref32_row(y->q + i * qrow + h * d, y->k + kvh * d, y->v + kvh * d, lo, hi, (int64_t)y->hk * d, d, y->scale,
                  y->c->softcap, y->slopes ? (float)y->slopes[h] : 0.0f, i + y->sk - y->sq,
                  y->sinks ? (float)y->sinks[h] : NAN, o32);
        double err = 0.0;
        for (int e = 0; e < d; e++)
            err = fmax(err, fabs((double)o32[e] - y->ref[i * qrow + h * d + e]));
        y->err[it] = err;
    }
    free(o32);
}

static double yardstick_error(const cache_case *c, const float *q, const float *k, const float *v, const double *ref,
                              int sq, int sk, int hq, int hk, int d, float scale, const double *sinks,
                              const double *slopes)
{
    const int64_t items = (int64_t)sq * hq;
    yardstick y = {c,  q,  k,  v, ref,   sinks,
                   slopes, sq, sk, hq, hk, d, scale, malloc(sizeof(double) * (size_t)(items + 1))};
    fai_ref_parallel_for(items, fai_ref_grain((int64_t)sk * d + 1, (int64_t)1 << 20), yardstick_range, &y);
    double worst = 0.0;
    for (int64_t it = 0; it < items; it++)
        worst = fmax(worst, y.err[it]);
    free(y.err);
    return worst;
}

/* fai_prefill with the workspace it asks for: decode rows (seq_q = 1), packed or over a
 * cache, run on the decoding kernels, whose split needs one. One buffer, grown as needed and
 * kept (the calls on one stream, or synchronized, never overlap). */
static void *g_ws;
static size_t g_ws_bytes;

static fai_status run_prefill(const fai_prefill_params *p, cudaStream_t stream)
{
    size_t ws = 0;
    const fai_status s = fai_prefill_workspace_size(p, &ws);
    if (s != FAI_SUCCESS)
        return s;
    if (ws > g_ws_bytes) {
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaFree(g_ws));
        CUDA_CHECK(cudaMalloc(&g_ws, ws));
        CUDA_CHECK(cudaMemset(g_ws, 0xff, ws)); /* the workspace needs no clearing */
        CUDA_CHECK(cudaDeviceSynchronize());      /* (legacy stream: see run_case) */
        g_ws_bytes = ws;
    }
    return fai_prefill(p, ws ? g_ws : NULL, ws, stream);
}

/* The cache on the host (a pool of pages, or slots) with its page table. */
typedef struct host_cache {
    int slots, rows;        /* pages x page_size, or batch x capacity */
    int capacity, table_stride;
    int32_t *table;         /* [batch][table_stride], NULL when contiguous */
    uint16_t *k, *v;        /* [slots][rows][hk][d] or head-major [slots][hk][rows][d] */
    int64_t seq_stride, token_stride, head_stride;
    fai_dtype quant;        /* a quantized cache: codes in k8/v8 (same strides), int8 scales */
    uint8_t *k8, *v8;
    float *k_scale, *v_scale; /* [slots][rows][hk] */
} host_cache;

static int is_quantized(fai_dtype t)
{
    return t == FAI_DTYPE_INT8 || t == FAI_DTYPE_FP8_E4M3 || t == FAI_DTYPE_FP8_E5M2;
}

static const char *quant_name(fai_dtype t)
{
    return t == FAI_DTYPE_INT8 ? "int8" : t == FAI_DTYPE_FP8_E4M3 ? "e4m3" : t == FAI_DTYPE_FP8_E5M2 ? "e5m2" : "";
}

/* The scale index of (slot, row, head): [slots][rows][hk]. */
static int64_t scale_index(const host_cache *hc, int64_t slot, int64_t row, int h, int hk)
{
    return (slot * hc->rows + row) * hk + h;
}

/* One row of d values (q's dtype) encoded as fai_kv_append encodes it: the codes into `codes`
 * (when not NULL), the int8 scale returned; x then becomes the dequantized values, rounded to
 * q's dtype when `staged` (what fai_prefill's staged copy holds), as they are otherwise (what
 * the decoding kernels read for a decode row: with BF16 q, the rounding moved a decode row's
 * logits by about 1e-3, and its LSE past the 1e-3 bound once in 80 random cases, session 33). */
static float encode_row(fai_dtype quant, float *x, int d, uint8_t *codes, int staged)
{
    float scale = 0.0f;
    if (quant == FAI_DTYPE_INT8) {
        float amax = 0.0f;
        for (int e = 0; e < d; e++)
            amax = fmaxf(amax, fabsf(x[e]));
        scale = fai_int8_row_scale(amax, g_scale_pairs); /* (as fai_kv_append) */
    }
    for (int e = 0; e < d; e++) {
        uint8_t code;
        float y;
        if (quant == FAI_DTYPE_INT8) {
            const int8_t q = fai_int8_quantize(x[e], scale);
            code = (uint8_t)q;
            y = fai_int8_dequantize(q, scale);
        } else if (quant == FAI_DTYPE_FP8_E4M3) {
            code = fai_fp8_e4m3_from_float(x[e]);
            y = fai_fp8_e4m3_to_float(code);
        } else {
            code = fai_fp8_e5m2_from_float(x[e]);
            y = fai_fp8_e5m2_to_float(code);
        }
        if (codes)
            codes[e] = code;
        x[e] = staged ? from_elem(to_elem(y)) : y;
    }
    return scale;
}

/* Token t of sequence b, head h: its d values `x` (q's dtype) encoded into the host cache's
 * codes (and scale), as fai_kv_append encodes them; x then becomes what the kernel that reads
 * them sees (encode_row's `staged`). */
static void quantize_row(host_cache *hc, int b, int t, int h, int hk, int d, int is_v, float *x, int staged)
{
    int64_t slot = b, row = t;
    if (hc->table) {
        slot = hc->table[(int64_t)b * hc->table_stride + t / hc->rows];
        row = t % hc->rows;
    }
    const int64_t at = slot * hc->seq_stride + row * hc->token_stride + (int64_t)h * hc->head_stride;
    const float scale = encode_row(hc->quant, x, d, (is_v ? hc->v8 : hc->k8) + at, staged);
    if (hc->quant == FAI_DTYPE_INT8)
        (is_v ? hc->v_scale : hc->k_scale)[scale_index(hc, slot, row, h, hk)] = scale;
}

/* Where token t of sequence b, head h lives in the host pool (element index). */
static int64_t cache_index(const host_cache *hc, int b, int t, int h)
{
    int64_t slot = b, row = t;
    if (hc->table) {
        const int ps = hc->rows;
        slot = hc->table[(int64_t)b * hc->table_stride + t / ps];
        row = t % ps;
    }
    return slot * hc->seq_stride + row * hc->token_stride + (int64_t)h * hc->head_stride;
}

/* Token t of sequence b, head h, as NaN in what the device gets: its K and V values, or its
 * codes (FP8: 0x7f, NaN in both formats) or int8 scales. */
static void poison_row(host_cache *hc, int b, int t, int h, int hk, int d)
{
    int64_t slot = b, row = t;
    if (hc->table) {
        slot = hc->table[(int64_t)b * hc->table_stride + t / hc->rows];
        row = t % hc->rows;
    }
    const int64_t at = slot * hc->seq_stride + row * hc->token_stride + (int64_t)h * hc->head_stride;
    for (int e = 0; e < d; e++)
        hc->k[at + e] = hc->v[at + e] = HALF_NAN; /* (0x7fff: a BF16 NaN too) */
    if (hc->quant == FAI_DTYPE_INT8)
        hc->k_scale[scale_index(hc, slot, row, h, hk)] = hc->v_scale[scale_index(hc, slot, row, h, hk)] = NAN;
    else if (hc->k8) {
        memset(hc->k8 + at, 0x7f, (size_t)d);
        memset(hc->v8 + at, 0x7f, (size_t)d);
    }
}

/* Lays out the cache of a case: pages handed out in scrambled order (sequence 1 reusing the
 * first `shared` pages of sequence 0, as many as sequence 0 holds), a few spare pages, NaN
 * everywhere. */
static void make_cache(const cache_case *c, const int *sk, int capacity, fai_ref_rng *rng, host_cache *hc)
{
    memset(hc, 0, sizeof *hc);
    hc->capacity = capacity;
    const int d = c->d, hk = c->hk;
    if (c->page_size) {
        const int ps = c->page_size;
        hc->rows = ps;
        hc->table_stride = (capacity + ps - 1) / ps + 1;
        int need = 0;
        for (int b = 0; b < c->batch; b++)
            need += (sk[b] + ps - 1) / ps;
        hc->slots = need + 3; /* spare pages: never read */
        int *order = malloc(sizeof(int) * (size_t)hc->slots);
        for (int i = 0; i < hc->slots; i++)
            order[i] = i;
        for (int i = hc->slots - 1; i > 0; i--) {
            const int j = (int)(fai_ref_rng_uniform(rng) * (i + 1));
            const int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        hc->table = malloc(sizeof(int32_t) * (size_t)(c->batch * hc->table_stride));
        const int spare = order[hc->slots - 1];
        for (int i = 0; i < c->batch * hc->table_stride; i++)
            hc->table[i] = spare; /* unused entries: a page of NaN */
        int next = 0;
        for (int b = 0; b < c->batch; b++)
            for (int p = 0; p < (sk[b] + ps - 1) / ps; p++)
                hc->table[(int64_t)b * hc->table_stride + p] =
                    b == 1 && p < c->shared && p < (sk[0] + ps - 1) / ps ? hc->table[p] : order[next++];
        free(order);
    } else {
        hc->slots = c->batch;
        hc->rows = capacity;
    }
    if (c->hnd) {
        hc->token_stride = d;
        hc->head_stride = (int64_t)hc->rows * d;
    } else {
        hc->token_stride = (int64_t)hk * d;
        hc->head_stride = d;
    }
    hc->seq_stride = (int64_t)hc->rows * hk * d;
    const size_t n = (size_t)hc->slots * (size_t)hc->seq_stride + 1;
    hc->k = malloc(n * 2);
    hc->v = malloc(n * 2);
    memset(hc->k, 0xff, n * 2); /* 0xffff: FP16 and BF16 NaN */
    memset(hc->v, 0xff, n * 2);
    hc->quant = c->quant;
    if (is_quantized(c->quant)) {
        hc->k8 = malloc(n);
        hc->v8 = malloc(n);
        /* FP8: 0x7f is NaN in both formats; int8: codes 0 under NaN scales */
        memset(hc->k8, c->quant == FAI_DTYPE_INT8 ? 0 : 0x7f, n);
        memset(hc->v8, c->quant == FAI_DTYPE_INT8 ? 0 : 0x7f, n);
        if (c->quant == FAI_DTYPE_INT8) {
            const size_t ns = (size_t)hc->slots * (size_t)hc->rows * (size_t)hk + 1;
            hc->k_scale = malloc(ns * sizeof(float));
            hc->v_scale = malloc(ns * sizeof(float));
            for (size_t i = 0; i < ns; i++)
                hc->k_scale[i] = hc->v_scale[i] = NAN;
        }
    }
}

static void free_cache(host_cache *hc)
{
    free(hc->table);
    free(hc->k);
    free(hc->v);
    free(hc->k8);
    free(hc->v8);
    free(hc->k_scale);
    free(hc->v_scale);
}

/* The device copy of a host cache as a fai_kv_cache (seq_lens set by the caller). */
typedef struct dev_cache {
    void *k, *v;
    int32_t *table, *lens;
    float *k_scale, *v_scale;
    fai_kv_cache c;
} dev_cache;

static void upload_cache(const host_cache *hc, const cache_case *c, dev_cache *dc, int alloc)
{
    const size_t bytes = (size_t)hc->slots * (size_t)hc->seq_stride * 2;
    if (alloc) {
        memset(dc, 0, sizeof *dc);
        CUDA_CHECK(cudaMalloc(&dc->k, bytes));
        CUDA_CHECK(cudaMalloc(&dc->v, bytes));
        CUDA_CHECK(cudaMalloc((void **)&dc->lens, sizeof(int32_t) * MAX_BATCH));
        if (hc->table) {
            CUDA_CHECK(cudaMalloc((void **)&dc->table, sizeof(int32_t) * (size_t)(c->batch * hc->table_stride)));
            CUDA_CHECK(cudaMemcpy(dc->table, hc->table, sizeof(int32_t) * (size_t)(c->batch * hc->table_stride),
                                  cudaMemcpyHostToDevice));
        }
    }
    const size_t nscale = (size_t)hc->slots * (size_t)hc->rows * (size_t)c->hk * sizeof(float);
    if (alloc && hc->k_scale) {
        CUDA_CHECK(cudaMalloc((void **)&dc->k_scale, nscale));
        if (!c->scale_pairs)
            CUDA_CHECK(cudaMalloc((void **)&dc->v_scale, nscale));
    }
    if (hc->k8) { /* codes: one byte per element (the buffers have room for two) */
        CUDA_CHECK(cudaMemcpy(dc->k, hc->k8, bytes / 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dc->v, hc->v8, bytes / 2, cudaMemcpyHostToDevice));
    } else {
        CUDA_CHECK(cudaMemcpy(dc->k, hc->k, bytes, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dc->v, hc->v, bytes, cudaMemcpyHostToDevice));
    }
    if (hc->k_scale && c->scale_pairs) { /* one word per (token, head): K's BF16 bits low, V's high */
        const size_t ns = nscale / sizeof(float);
        uint32_t *w = malloc(nscale);
        for (size_t i = 0; i < ns; i++) /* (the scales are BF16 values already, or NaN: a BF16 NaN) */
            w[i] = fai_scale_pair_word(hc->k_scale[i], hc->v_scale[i]);
        CUDA_CHECK(cudaMemcpy(dc->k_scale, w, nscale, cudaMemcpyHostToDevice));
        free(w);
    } else if (hc->k_scale) {
        CUDA_CHECK(cudaMemcpy(dc->k_scale, hc->k_scale, nscale, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dc->v_scale, hc->v_scale, nscale, cudaMemcpyHostToDevice));
    }
    fai_kv_cache *k = &dc->c;
    memset(k, 0, sizeof *k);
    k->dtype = is_quantized(c->quant) ? c->quant : c->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    if (hc->k_scale) {
        k->scale_format = c->scale_pairs ? FAI_SCALES_BF16X2 : FAI_SCALES_FP32;
        k->k_scale = dc->k_scale;
        k->v_scale = dc->v_scale; /* (NULL with pairs) */
        k->scale_seq_stride = (int64_t)hc->rows * c->hk;
        k->scale_token_stride = c->hk;
        k->scale_head_stride = 1;
    }
    k->k = dc->k;
    k->v = dc->v;
    k->seq_stride = hc->seq_stride;
    k->token_stride = hc->token_stride;
    k->head_stride = hc->head_stride;
    k->capacity = hc->capacity;
    k->seq_lens = dc->lens;
    if (hc->table) {
        k->page_table = dc->table;
        k->page_table_stride = hc->table_stride;
        k->page_size = hc->rows;
        k->num_pages = hc->slots;
    }
}

static void free_dev_cache(dev_cache *dc)
{
    cudaFree(dc->k);
    cudaFree(dc->v);
    cudaFree(dc->k_scale);
    cudaFree(dc->v_scale);
    cudaFree(dc->table);
    cudaFree(dc->lens);
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Error tallies of one comparison. */
typedef struct tally {
    double err2, ref2, max_err, max_err32, max_lse_err;
    int64_t bad; /* non-finite, non-zero where no key, bad LSE, poison overwritten */
    int seq_bad; /* sequences over the rel L2 bound on their own (tally_sequence) */
} tally;

static double rel_tol(int bf16) { return bf16 ? 1.6e-2 : 2e-3; }

/* One sequence's squared errors into the tally, and its own rel L2 against the bound: in a
 * batch, one sequence's error is diluted in the pooled rel L2 (an RMS floor of 1e-6 where
 * the reference is ~0, as under a sink far above every logit). */
static void tally_sequence(tally *t, double se2, double sr2, int64_t n, int bf16)
{
    t->err2 += se2;
    t->ref2 += sr2;
    double srel;
    t->seq_bad += !rel_l2_within(se2, sr2, n, rel_tol(bf16), &srel);
}

static int report(const char *label, const char *name, const tally *t, int bf16)
{
    const double rel = t->ref2 > 0 ? sqrt(t->err2 / t->ref2) : sqrt(t->err2);
    const double bound = 2.0 * t->max_err32 + 1e-5;
    const int ok = t->bad == 0 && t->seq_bad == 0 && rel <= rel_tol(bf16) && t->max_err <= bound;
    if (!ok || !g_small)
        printf("  %-9s %-56s rel_l2 %.2e  max_err %.2e (bound %.2e)  lse_err %.1e  bad %lld  seqs over %d  %s\n", label,
               name, rel, t->max_err, bound, t->max_lse_err, (long long)t->bad, t->seq_bad, ok ? "ok" : "FAIL");
    return !ok;
}

static int run_case(const cache_case *c, int index)
{
    g_bf16 = c->bf16;
    g_scale_pairs = c->scale_pairs;
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, g_seed * 1000003u + (uint64_t)index);
    const int hq = c->hq, hk = c->hk, d = c->d, batch = c->batch;
    const int64_t qrow = (int64_t)hq * d, krow = (int64_t)hk * d;
    if (batch < 1 || batch > MAX_BATCH) {
        printf("FAIL %s: batch %d is outside 1..%d (raise MAX_BATCH)\n", c->name, batch, MAX_BATCH);
        return 1;
    }
    int capacity = 1, sk[MAX_BATCH];
    for (int b = 0; b < batch; b++) {
        sk[b] = c->sk[b];
        capacity = imax(capacity, sk[b] + 3); /* room past every length: NaN, never read */
    }
    host_cache hc;
    make_cache(c, sk, capacity, &rng, &hc);

    /* Keys and values per sequence (compact [sk, hk, d], rounded), written into the pool;
     * sequence 1's shared prefix takes sequence 0's values. */
    float *ks[MAX_BATCH], *vs[MAX_BATCH];
    for (int b = 0; b < batch; b++) {
        const int64_t n = (int64_t)sk[b] * krow;
        ks[b] = malloc(sizeof(float) * (size_t)(n + 1));
        vs[b] = malloc(sizeof(float) * (size_t)(n + 1));
        uint16_t *bits = malloc(sizeof(uint16_t) * (size_t)(n + 1));
        fai_ref_fill_normal(&rng, ks[b], n, 1.0);
        round_elems(ks[b], bits, n);
        fai_ref_fill_normal(&rng, vs[b], n, 1.0);
        round_elems(vs[b], bits, n);
        free(bits);
        if (b == 1 && c->shared) {
            const int64_t m = (int64_t)imin(sk[1], imin(sk[0], c->shared * c->page_size)) * krow;
            memcpy(ks[1], ks[0], sizeof(float) * (size_t)m);
            memcpy(vs[1], vs[0], sizeof(float) * (size_t)m);
        }
        for (int t = 0; t < sk[b]; t++)
            for (int h = 0; h < hk; h++) {
                const int64_t at = cache_index(&hc, b, t, h);
                for (int e = 0; e < d; e++) {
                    hc.k[at + e] = to_elem(ks[b][t * krow + h * d + e]);
                    hc.v[at + e] = to_elem(vs[b][t * krow + h * d + e]);
                }
            }
    }
    /* A quantized cache: each row's codes from its values (a shared prefix's rows are the same
     * values, so the same codes), then the values become what the staged copy holds. */
    if (is_quantized(c->quant))
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < sk[b]; t++)
                for (int h = 0; h < hk; h++) {
                    quantize_row(&hc, b, t, h, hk, d, 0, ks[b] + t * krow + h * d, c->sq[b] != 1);
                    quantize_row(&hc, b, t, h, hk, d, 1, vs[b] + t * krow + h * d, c->sq[b] != 1);
                }
    /* A window's keys more than prefill_window_margin() left of the first row's window (the leftmost)
     * are NaN in the cache: no row sees them, and a kernel must skip their tiles rather than
     * read and mask them (test_prefill.c's poison_unseen_keys derives the margin). ks and vs,
     * which the reference reads within each row's window, stay finite. A shared prefix is
     * left alone (its pages are another sequence's keys too). */
    for (int b = 0; b < batch && c->window_left > 0; b++) {
        int lo, hi;
        if (c->sq[b] == 0 || (c->shared && b <= 1))
            continue;
        visible(c, 0, c->sq[b], sk[b], &lo, &hi);
        for (int t = 0; t < lo - prefill_window_margin(d, c->sq[b]); t++)
            for (int h = 0; h < hk; h++)
                poison_row(&hc, b, t, h, hk, d);
    }
    dev_cache dc;
    upload_cache(&hc, c, &dc, 1);
    CUDA_CHECK(cudaMemcpy(dc.lens, sk, sizeof(int32_t) * (size_t)batch, cudaMemcpyHostToDevice));

    /* Queries: LEAD NaN rows, then the sequences' rows. */
    int32_t cu[MAX_BATCH + 1];
    cu[0] = LEAD;
    int longest = 1;
    for (int b = 0; b < batch; b++) {
        cu[b + 1] = cu[b] + c->sq[b];
        longest = imax(longest, c->sq[b]);
    }
    const int total_q = cu[batch], rows = total_q - LEAD;
    float *q = malloc(sizeof(float) * (size_t)(rows * qrow + 1));
    uint16_t *qbits = malloc(sizeof(uint16_t) * (size_t)(total_q * qrow + 1));
    memset(qbits, 0xff, sizeof(uint16_t) * (size_t)(LEAD * qrow));
    fai_ref_fill_normal(&rng, q, rows * qrow, 1.0);
    round_elems(q, qbits + LEAD * qrow, rows * qrow);
    void *q_dev, *o_dev;
    float *lse_dev, *sinks_dev = NULL;
    int32_t *cu_dev;
    const size_t obytes = (size_t)(total_q * qrow) * 2;
    CUDA_CHECK(cudaMalloc(&q_dev, obytes));
    CUDA_CHECK(cudaMalloc(&o_dev, obytes));
    CUDA_CHECK(cudaMalloc((void **)&lse_dev, sizeof(float) * (size_t)(total_q * hq)));
    CUDA_CHECK(cudaMalloc((void **)&cu_dev, sizeof(int32_t) * (size_t)(batch + 1)));
    CUDA_CHECK(cudaMemcpy(q_dev, qbits, obytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(cu_dev, cu, sizeof(int32_t) * (size_t)(batch + 1), cudaMemcpyHostToDevice));
    double *sinks = NULL;
    if (c->sinks) {
        float fs[256];
        sinks = malloc(sizeof(double) * (size_t)hq);
        for (int h = 0; h < hq; h++)
            sinks[h] = fs[h] = (float)(-2.0 + 6.0 * fai_ref_rng_uniform(&rng));
        CUDA_CHECK(cudaMalloc((void **)&sinks_dev, sizeof(float) * (size_t)hq));
        CUDA_CHECK(cudaMemcpy(sinks_dev, fs, sizeof(float) * (size_t)hq, cudaMemcpyHostToDevice));
    }

    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)d);
    if (c->window_left > 0) {
        p.attn.window = 1;
        p.attn.window_left = c->window_left;
        p.attn.window_right = -1;
    }
    p.attn.sinks = sinks_dev;
    p.attn.softcap = c->softcap;
    p.attn.alibi = c->alibi; /* (slopes NULL: the standard ones) */
    double *slopes = NULL;
    if (c->alibi) {
        slopes = malloc(sizeof(double) * (size_t)hq);
        fai_ref_alibi_slopes(hq, slopes);
    }
    p.batch = batch;
    p.causal = c->causal;
    const fai_dtype dt = c->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    p.q = (fai_tensor){q_dev, dt, qrow, d};
    p.o = (fai_tensor){o_dev, dt, qrow, d};
    p.k.dtype = p.v.dtype = dt;
    p.cu_seqlens_q = cu_dev;
    p.total_q = total_q;
    p.max_seq_q = longest;
    p.lse = lse_dev;
    p.kv_cache = &dc.c;

    /* The reference, per sequence. */
    double *ref = malloc(sizeof(double) * (size_t)(rows * qrow + 1));
    double *ref_lse = malloc(sizeof(double) * (size_t)(rows * hq + 1));
    double max_err32 = 0;
    for (int b = 0; b < batch; b++) {
        const int64_t r0 = cu[b] - LEAD;
        fai_ref_problem rp = {0};
        rp.num_q_heads = hq;
        rp.num_kv_heads = hk;
        rp.head_dim = d;
        rp.seq_q = c->sq[b];
        rp.seq_k = sk[b];
        rp.softmax_scale = p.attn.softmax_scale;
        rp.causal = c->causal;
        rp.window = c->window_left > 0;
        rp.window_left = c->window_left;
        rp.window_right = -1;
        rp.sinks = sinks;
        rp.softcap = c->softcap;
        rp.alibi = c->alibi;
        if (fai_ref_attention(&rp, q + r0 * qrow, ks[b], vs[b], ref + r0 * qrow, ref_lse + r0 * hq) != 0) {
            printf("%s: reference failed\n", c->name);
            exit(2);
        }
        max_err32 = fmax(max_err32, yardstick_error(c, q + r0 * qrow, ks[b], vs[b], ref + r0 * qrow, c->sq[b], sk[b],
                                                    hq, hk, d, p.attn.softmax_scale, sinks, slopes));
    }

    printf("%s: batch %d, heads %d/%d, d %d, %s%s%s, %s, %scausal, window %d, sinks %d, softcap %g, alibi %d, "
           "total_q %d\n", c->name, batch,
           hq, hk, d, c->bf16 ? "bf16" : "fp16", is_quantized(c->quant) ? " over " : "",
           is_quantized(c->quant) ? quant_name(c->quant) : "",
           c->page_size ? (c->page_size == 1 ? "paged 1" : c->page_size == 16 ? "paged 16" : "paged") : "contiguous",
           c->causal ? "" : "non-", c->window_left, c->sinks, (double)c->softcap, c->alibi, total_q);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    uint16_t *ob = malloc(obytes);
    float *lse = malloc(sizeof(float) * (size_t)(total_q * hq));
    int fails = 0;
    for (int host_plan = 1; host_plan >= 0; host_plan--) {
        p.cu_seqlens_q_host = host_plan ? cu : NULL;
        CUDA_CHECK(cudaMemset(o_dev, 0xff, obytes));
        CUDA_CHECK(cudaMemset(lse_dev, 0xff, sizeof(float) * (size_t)(total_q * hq)));
        /* The memsets (and the uploads before) run on the legacy default stream, which the
         * non-blocking stream does not wait for: a late memset would overwrite the outputs. */
        CUDA_CHECK(cudaDeviceSynchronize());
        fai_status s = run_prefill(&p, stream);
        if (s != FAI_SUCCESS) {
            printf("  fai_prefill: %s: %s  FAIL\n", fai_status_string(s), fai_last_error());
            fails++;
            continue;
        }
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaGetLastError());
        CUDA_CHECK(cudaMemcpy(ob, o_dev, obytes, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lse, lse_dev, sizeof(float) * (size_t)(total_q * hq), cudaMemcpyDeviceToHost));
        tally t = {0};
        t.max_err32 = max_err32;
        for (int64_t e = 0; e < LEAD * qrow; e++)
            t.bad += ob[e] != 0xffffu; /* rows outside every sequence keep their poison */
        for (int64_t e = 0; e < LEAD * hq; e++)
            t.bad += float_bits(lse[e]) != 0xffffffffu;
        for (int b = 0; b < batch; b++) {
            double se2 = 0, sr2 = 0;
            for (int i = 0; i < c->sq[b]; i++) {
                const int64_t r = cu[b] + i, rr = r - LEAD;
                int lo, hi;
                const int nv = visible(c, i, c->sq[b], sk[b], &lo, &hi);
                for (int64_t e = 0; e < qrow; e++) {
                    const float x = from_elem(ob[r * qrow + e]);
                    t.bad += !isfinite(x) || (nv == 0 && x != 0.0f);
                    const double err = fabs((double)x - ref[rr * qrow + e]);
                    se2 += err * err;
                    sr2 += ref[rr * qrow + e] * ref[rr * qrow + e];
                    if (!(err <= t.max_err))
                        t.max_err = err;
                }
                for (int h = 0; h < hq; h++) {
                    const double w = ref_lse[rr * hq + h], g = lse[r * hq + h];
                    if (isinf(w)) {
                        t.bad += !(isinf(g) && g < 0);
                    } else {
                        const double le = fabs(g - w);
                        t.max_lse_err = le > t.max_lse_err || isnan(le) ? le : t.max_lse_err;
                        t.bad += !(le <= 1e-3 + 1e-4 * fabs(w));
                    }
                }
            }
            tally_sequence(&t, se2, sr2, (int64_t)c->sq[b] * qrow, c->bf16);
        }
        fails += report(host_plan ? "host plan" : "no plan", c->name, &t, c->bf16);
    }
    CUDA_CHECK(cudaStreamDestroy(stream));
    for (int b = 0; b < batch; b++) {
        free(ks[b]);
        free(vs[b]);
    }
    free(ob);
    free(lse);
    free(q);
    free(qbits);
    free(ref);
    free(ref_lse);
    free(sinks);
    free(slopes);
    cudaFree(q_dev);
    cudaFree(o_dev);
    cudaFree(lse_dev);
    cudaFree(cu_dev);
    cudaFree(sinks_dev);
    free_dev_cache(&dc);
    free_cache(&hc);
    return fails;
}

/* One prompt of `len` tokens in `chunks` chunks through a paged cache (page size ps, pages
 * scrambled) against one whole-prompt prefill from packed K/V; both against the reference. */
static int run_chunked(const char *name, int hq, int hk, int d, int len, int ps, int bf16, fai_dtype quant, int index)
{
    g_bf16 = bf16;
    g_scale_pairs = 0; /* (fai_kv_append writes this cache with FP32 scales) */
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, g_seed * 1000003u + 7919u * (uint64_t)index);
    const int64_t qrow = (int64_t)hq * d, krow = (int64_t)hk * d, nq = len * qrow, nk = len * krow;
    const fai_dtype dt = bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    float *q = malloc(sizeof(float) * (size_t)nq), *k = malloc(sizeof(float) * (size_t)nk),
          *v = malloc(sizeof(float) * (size_t)nk);
    uint16_t *qb = malloc(2 * (size_t)nq), *kb = malloc(2 * (size_t)nk), *vb = malloc(2 * (size_t)nk);
    fai_ref_fill_normal(&rng, q, nq, 1.0);
    fai_ref_fill_normal(&rng, k, nk, 1.0);
    fai_ref_fill_normal(&rng, v, nk, 1.0);
    round_elems(q, qb, nq);
    round_elems(k, kb, nk);
    round_elems(v, vb, nk);
    void *q_dev, *k_dev, *v_dev, *o_whole, *o_chunk;
    float *lse_whole, *lse_chunk;
    int32_t *cu_dev;
    int64_t *slots_dev;
    CUDA_CHECK(cudaMalloc(&q_dev, 2 * (size_t)nq));
    CUDA_CHECK(cudaMalloc(&o_whole, 2 * (size_t)nq));
    CUDA_CHECK(cudaMalloc(&o_chunk, 2 * (size_t)nq));
    CUDA_CHECK(cudaMalloc(&k_dev, 2 * (size_t)nk));
    CUDA_CHECK(cudaMalloc(&v_dev, 2 * (size_t)nk));
    CUDA_CHECK(cudaMalloc((void **)&lse_whole, sizeof(float) * (size_t)(len * hq)));
    CUDA_CHECK(cudaMalloc((void **)&lse_chunk, sizeof(float) * (size_t)(len * hq)));
    CUDA_CHECK(cudaMalloc((void **)&cu_dev, sizeof(int32_t) * 4));
    CUDA_CHECK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)len));
    CUDA_CHECK(cudaMemcpy(q_dev, qb, 2 * (size_t)nq, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(k_dev, kb, 2 * (size_t)nk, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(v_dev, vb, 2 * (size_t)nk, cudaMemcpyHostToDevice));
    /* A quantized cache: the reference sees what the staged copy will hold. */
    if (is_quantized(quant))
        for (int64_t r = 0; r < (int64_t)len * hk; r++) {
            encode_row(quant, k + r * d, d, NULL, 1);
            encode_row(quant, v + r * d, d, NULL, 1);
        }

    /* The reference and its FP32 yardstick. */
    double *ref = malloc(sizeof(double) * (size_t)nq), *ref_lse = malloc(sizeof(double) * (size_t)(len * hq));
    fai_ref_problem rp = {0};
    rp.num_q_heads = hq;
    rp.num_kv_heads = hk;
    rp.head_dim = d;
    rp.seq_q = rp.seq_k = len;
    rp.softmax_scale = 1.0 / sqrt((double)d);
    rp.causal = 1;
    if (fai_ref_attention(&rp, q, k, v, ref, ref_lse) != 0)
        exit(2);
    const cache_case yard = {.causal = 1};
    /* every row: the GPU error is the max over all of them */
    const double max_err32 = yardstick_error(&yard, q, k, v, ref, len, len, hq, hk, d, 1.0f / sqrtf((float)d), NULL, NULL);

    /* The whole prompt from packed K/V. */
    fai_prefill_params w = fai_prefill_params_default();
    w.attn.num_q_heads = hq;
    w.attn.num_kv_heads = hk;
    w.attn.head_dim = d;
    w.attn.softmax_scale = 1.0f / sqrtf((float)d);
    w.batch = 1;
    w.causal = 1;
    w.q = (fai_tensor){q_dev, dt, qrow, d};
    w.k = (fai_tensor){k_dev, dt, krow, d};
    w.v = (fai_tensor){v_dev, dt, krow, d};
    w.o = (fai_tensor){o_whole, dt, qrow, d};
    const int32_t cu_whole[2] = {0, len};
    CUDA_CHECK(cudaMemcpy(cu_dev, cu_whole, sizeof cu_whole, cudaMemcpyHostToDevice));
    w.cu_seqlens_q = w.cu_seqlens_k = cu_dev;
    w.total_q = w.total_k = w.max_seq_q = len;
    w.lse = lse_whole;
    CUDA_CHECK(cudaMemset(o_whole, 0xff, 2 * (size_t)nq)); /* poisoned: NaN where unwritten */
    CUDA_CHECK(cudaMemset(lse_whole, 0xff, sizeof(float) * (size_t)(len * hq)));
    fai_status s = run_prefill(&w, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    if (s != FAI_SUCCESS) {
        printf("  whole prompt: %s: %s  FAIL\n", fai_status_string(s), fai_last_error());
        return 1;
    }
    uint16_t *whole = malloc(2 * (size_t)nq), *chunked = malloc(2 * (size_t)nq);
    float *lw = malloc(sizeof(float) * (size_t)(len * hq)), *lc = malloc(sizeof(float) * (size_t)(len * hq));
    CUDA_CHECK(cudaMemcpy(whole, o_whole, 2 * (size_t)nq, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(lw, lse_whole, sizeof(float) * (size_t)(len * hq), cudaMemcpyDeviceToHost));

    /* The paged cache: one sequence of up to len tokens, pages scrambled, NaN until written. */
    cache_case cc = {.hq = hq, .hk = hk, .d = d, .batch = 1, .page_size = ps, .bf16 = bf16, .quant = quant};
    const int one[1] = {len};
    int fails = 0;
    printf("%s: prompt %d, heads %d/%d, d %d, %s%s%s, page size %d\n", name, len, hq, hk, d, bf16 ? "bf16" : "fp16",
           is_quantized(quant) ? " over " : "", quant_name(quant), ps);
    /* A quantized cache holds other values than the packed K/V: its runs are compared with
     * its one-chunk run instead of the whole-prompt prefill. */
    const int nchunks[] = {1, 3, 7};
    for (int ci = 0; ci < 3; ci++) {
        host_cache hc;
        make_cache(&cc, one, len, &rng, &hc);
        dev_cache dc;
        upload_cache(&hc, &cc, &dc, 1); /* all NaN */
        CUDA_CHECK(cudaMemset(o_chunk, 0xff, 2 * (size_t)nq));
        CUDA_CHECK(cudaMemset(lse_chunk, 0xff, sizeof(float) * (size_t)(len * hq)));
        /* Uneven chunk ends: chunk j ends at about len * (j + 1)^2 / n^2 (short first chunks). */
        int start = 0;
        for (int j = 0; j < nchunks[ci] && s == FAI_SUCCESS; j++) {
            const int n = nchunks[ci];
            const int end = j == n - 1 ? len : imax(start + 1, (int)((int64_t)len * (j + 1) * (j + 1) / (n * n)));
            const int m = end - start;
            /* 1. The chunk's K/V into the cache. */
            {
                int64_t *slots = malloc(sizeof(int64_t) * (size_t)m);
                for (int t = 0; t < m; t++)
                    slots[t] = (int64_t)hc.table[(start + t) / ps] * ps + (start + t) % ps;
                CUDA_CHECK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)m, cudaMemcpyHostToDevice));
                free(slots);
                fai_kv_append_params a = fai_kv_append_params_default();
                a.num_kv_heads = hk;
                a.head_dim = d;
                a.num_tokens = m;
                a.k_new = (fai_tensor){(uint16_t *)k_dev + start * krow, dt, krow, d}; /* FP16 or BF16 rows */
                a.v_new = (fai_tensor){(uint16_t *)v_dev + start * krow, dt, krow, d};
                a.slots = slots_dev;
                a.cache_batch = 1;
                a.cache = dc.c;
                s = fai_kv_append(&a, 0);
            }
            /* 2. The chunk's queries over the cache's first `end` tokens. */
            CUDA_CHECK(cudaMemcpy(dc.lens, &end, sizeof(int32_t), cudaMemcpyHostToDevice));
            const int32_t cu_chunk[2] = {0, m};
            CUDA_CHECK(cudaMemcpy(cu_dev + 2, cu_chunk, sizeof cu_chunk, cudaMemcpyHostToDevice));
            fai_prefill_params p = fai_prefill_params_default();
            p.attn = w.attn;
            p.batch = 1;
            p.causal = 1;
            p.q = (fai_tensor){(uint16_t *)q_dev + start * qrow, dt, qrow, d};
            p.o = (fai_tensor){(uint16_t *)o_chunk + start * qrow, dt, qrow, d};
            p.k.dtype = p.v.dtype = dt;
            p.cu_seqlens_q = cu_dev + 2;
            p.cu_seqlens_q_host = cu_chunk;
            p.total_q = p.max_seq_q = m;
            p.lse = lse_chunk + start * hq;
            dc.c.max_seq_len = end;
            p.kv_cache = &dc.c;
            if (s == FAI_SUCCESS)
                s = run_prefill(&p, 0);
            start = end;
        }
        CUDA_CHECK(cudaDeviceSynchronize());
        CUDA_CHECK(cudaGetLastError());
        if (s != FAI_SUCCESS) {
            printf("  %d chunks: %s: %s  FAIL\n", nchunks[ci], fai_status_string(s), fai_last_error());
            fails++;
            s = FAI_SUCCESS;
        } else {
            CUDA_CHECK(cudaMemcpy(chunked, o_chunk, 2 * (size_t)nq, cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(lc, lse_chunk, sizeof(float) * (size_t)(len * hq), cudaMemcpyDeviceToHost));
            if (is_quantized(quant) && ci == 0) { /* the one-chunk run: the others' yardstick */
                memcpy(whole, chunked, 2 * (size_t)nq);
                memcpy(lw, lc, sizeof(float) * (size_t)(len * hq));
            }
            tally tr = {0}, tw = {0}; /* chunked against the reference; chunked against whole */
            tr.max_err32 = tw.max_err32 = max_err32;
            for (int64_t e = 0; e < nq; e++) {
                const double x = from_elem(chunked[e]), y = from_elem(whole[e]);
                tr.bad += !isfinite(x);
                const double er = fabs(x - ref[e]), ew = fabs(x - y);
                tr.err2 += er * er;
                tr.ref2 += ref[e] * ref[e];
                tw.err2 += ew * ew;
                tw.ref2 += y * y;
                tr.max_err = er <= tr.max_err ? tr.max_err : er;
                tw.max_err = ew <= tw.max_err ? tw.max_err : ew;
            }
            for (int64_t e = 0; e < (int64_t)len * hq; e++) {
                const double er = fabs((double)lc[e] - ref_lse[e]), ew = fabs((double)lc[e] - lw[e]);
                tr.max_lse_err = er <= tr.max_lse_err ? tr.max_lse_err : er;
                tw.max_lse_err = ew <= tw.max_lse_err ? tw.max_lse_err : ew;
                tr.bad += !(er <= 1e-3 + 1e-4 * fabs(ref_lse[e]));
                tw.bad += !(ew <= 2e-3 + 2e-4 * fabs(ref_lse[e]));
            }
            tw.max_err32 = 2.0 * max_err32; /* two kernels' errors: twice the reference's bound */
            char label[32];
            snprintf(label, sizeof label, "%d ch ref", nchunks[ci]);
            fails += report(label, name, &tr, bf16);
            snprintf(label, sizeof label, is_quantized(quant) ? "%d ch vs 1" : "%d ch whole", nchunks[ci]);
            if (!is_quantized(quant) || ci > 0)
                fails += report(label, name, &tw, bf16);
        }
        free_dev_cache(&dc);
        free_cache(&hc);
    }
    free(q);
    free(k);
    free(v);
    free(qb);
    free(kb);
    free(vb);
    free(ref);
    free(ref_lse);
    free(whole);
    free(chunked);
    free(lw);
    free(lc);
    cudaFree(q_dev);
    cudaFree(k_dev);
    cudaFree(v_dev);
    cudaFree(o_whole);
    cudaFree(o_chunk);
    cudaFree(lse_whole);
    cudaFree(lse_chunk);
    cudaFree(cu_dev);
    cudaFree(slots_dev);
    return fails;
}

static int case_small(const cache_case *c)
{
    double work = 0;
    for (int b = 0; b < c->batch; b++)
        work += (double)c->sq[b] * c->sk[b] * c->hq * c->d;
    return work <= 2e8;
}

/* --random N: N cases drawn from the seed with the options combined at random (page size,
 * shared prefix, head layout, cache dtype and scale format, window, soft-cap, sinks, ALiBi,
 * BF16, causal or not) over batches mixing chunks, decode rows, empty sequences and rows past
 * the cached keys. Sizes are held so that a case's reference takes seconds. */
static cache_case random_case(fai_ref_rng *r, int index, char *name, size_t name_size, int *sq, int *sk)
{
    static const int pages[] = {1, 2, 4, 8, 16, 16, 32, 64, 128, 256};
    static const fai_dtype quants[] = {FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2};
    static const float caps[] = {5.0f, 20.0f, 30.0f, 50.0f};
    cache_case c = {0};
    random_heads(r, 8, &c.d, &c.hq, &c.hk);
    c.batch = 1 + fai_ref_rng_below(r, 8);
    const int longest = fai_ref_rng_chance(r, 0.85) ? 1500 : 9000;
    double work = 0;
    for (int b = 0; b < c.batch; b++) {
        const double v = fai_ref_rng_uniform(r);
        sk[b] = v < 0.08 ? 0 : 1 + fai_ref_rng_below(r, longest);
        const double w = fai_ref_rng_uniform(r);
        sq[b] = w < 0.1    ? 0
                : w < 0.3  ? 1 /* a decode row */
                : w < 0.4  ? sk[b]
                : w < 0.45 ? sk[b] + 1 + fai_ref_rng_below(r, 60) /* rows past the cached keys */
                           : fai_ref_rng_below(r, sk[b] + 1);
        if (sq[b] > 1000) /* a chunk's rows: the reference's work, not the cache, is what a case pays */
            sq[b] = 1000;
        work += (double)sq[b] * sk[b] * c.hq * c.d;
    }
    while (work > 2e9 && c.hq > c.hk) {
        work = work / c.hq * (c.hq - c.hk);
        c.hq -= c.hk;
    }
    while (work > 2e9) { /* then fewer query rows */
        work = 0;
        for (int b = 0; b < c.batch; b++) {
            sq[b] /= 2;
            work += (double)sq[b] * sk[b] * c.hq * c.d;
        }
    }
    c.sq = sq;
    c.sk = sk;
    c.page_size = fai_ref_rng_chance(r, 0.25) ? 0 : pages[fai_ref_rng_below(r, 10)];
    c.shared = c.page_size && c.batch >= 2 && fai_ref_rng_chance(r, 0.3) ? 1 + fai_ref_rng_below(r, 5) : 0;
    c.hnd = fai_ref_rng_chance(r, 0.5);
    c.causal = fai_ref_rng_chance(r, 0.7);
    c.bf16 = fai_ref_rng_chance(r, 0.5);
    if (c.causal && fai_ref_rng_chance(r, 0.3))
        c.window_left = fai_ref_rng_chance(r, 0.5) ? 1 + fai_ref_rng_below(r, 64) : 1 + fai_ref_rng_below(r, longest);
    c.sinks = fai_ref_rng_chance(r, 0.25);
    if (fai_ref_rng_chance(r, 0.25))
        c.softcap = caps[fai_ref_rng_below(r, 4)];
    c.alibi = fai_ref_rng_chance(r, 0.3);
    c.quant = fai_ref_rng_chance(r, 0.5) ? 0 : quants[fai_ref_rng_below(r, 3)];
    c.scale_pairs = c.quant == FAI_DTYPE_INT8 && fai_ref_rng_chance(r, 0.5);
    snprintf(name, name_size, "random %d: b%d h%d/%d d%d %s%s%s%s page %d shared %d%s window %d softcap %g%s%s",
             index, c.batch, c.hq, c.hk, c.d, c.bf16 ? "bf16" : "fp16", c.quant ? " " : "",
             c.quant ? dtype_short(c.quant) : "", c.scale_pairs ? " bf16x2" : "", c.page_size, c.shared,
             c.hnd ? " HND" : "", c.window_left, (double)c.softcap, c.sinks ? " sinks" : "",
             c.causal ? " causal" : " non-causal");
    c.name = name;
    return c;
}

int main(int argc, char **argv)
{
    gpu_require_device("test_prefill_cache");
    const char *env = getenv("FAI_TEST_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    g_small = argc > 1 && strcmp(argv[1], "--small") == 0;
    printf("test_prefill_cache: seed %llu (FAI_TEST_SEED=%llu reproduces)%s\n", (unsigned long long)g_seed,
           (unsigned long long)g_seed, g_small ? ", small shapes" : argc > 2 ? ", random cases" : "");
    const int random = random_count(argc, argv, 100000);
    if (random > 0) {
        fai_ref_rng r;
        fai_ref_rng_seed(&r, g_seed ^ 0x5eed5eedull);
        int failed = 0;
        for (int i = 0; i < random; i++) {
            char name[200];
            int sq[MAX_BATCH], sk[MAX_BATCH];
            const cache_case c = random_case(&r, i, name, sizeof name, sq, sk);
            failed += run_case(&c, i) > 0;
        }
        printf("test_prefill_cache: %d random cases, %d failed\n", random, failed);
        return failed ? 1 : 0;
    }
    /* Lengths: chunks (seq_q < seq_k), a decode row (1 x k), an empty sequence (0 x 0), rows
     * with no cached key (40 x 0), seq_q > seq_k (64 x 20), ends mid-page and on page ends. */
    const int *gq = LENS(100, 1, 300, 0, 40, 64, 17), *gk = LENS(1000, 500, 700, 0, 0, 20, 33);
    const cache_case cases[] = {
        {.name = "contiguous, chunks, d128 32/8", .hq = 32, .hk = 8, .d = 128, .batch = 7, .sq = gq, .sk = gk,
         .causal = 1},
        {.name = "paged 16 scrambled, d128 16/4", .hq = 16, .hk = 4, .d = 128, .batch = 7, .sq = gq, .sk = gk,
         .page_size = 16, .causal = 1},
        {.name = "paged 1, d64 8/8", .hq = 8, .hk = 8, .d = 64, .batch = 4, .sq = LENS(17, 1, 5, 33),
         .sk = LENS(40, 1, 5, 100), .page_size = 1, .causal = 1},
        {.name = "paged 256, GQA 7 (14/2), d256", .hq = 14, .hk = 2, .d = 256, .batch = 4, .sq = LENS(100, 1, 64, 0),
         .sk = LENS(700, 300, 257, 0), .page_size = 256, .causal = 1},
        {.name = "paged 16, shared prefix of 5 pages, GQA 7 d128", .hq = 14, .hk = 2, .d = 128, .batch = 3,
         .sq = LENS(50, 70, 9), .sk = LENS(200, 150, 80), .page_size = 16, .shared = 5, .causal = 1},
        {.name = "paged 64, ends mid-page and on page ends, GQA 7 d64", .hq = 7, .hk = 1, .d = 64, .batch = 5,
         .sq = LENS(63, 64, 65, 1, 129), .sk = LENS(63, 128, 65, 64, 129), .page_size = 64, .causal = 1},
        {.name = "paged 16 head-major pages, non-causal, d96 8/2", .hq = 8, .hk = 2, .d = 96, .batch = 4,
         .sq = LENS(77, 1, 30, 129), .sk = LENS(200, 90, 30, 129), .page_size = 16, .hnd = 1},
        {.name = "contiguous head-major, d64 16/2", .hq = 16, .hk = 2, .d = 64, .batch = 3, .sq = LENS(40, 1, 129),
         .sk = LENS(300, 10, 129), .hnd = 1, .causal = 1},
        {.name = "paged 16, window 64 + sinks, d128 8/2", .hq = 8, .hk = 2, .d = 128, .batch = 3,
         .sq = LENS(100, 1, 200), .sk = LENS(400, 300, 200), .page_size = 16, .causal = 1, .window_left = 64,
         .sinks = 1},
        /* Grids of 132+ 128-row blocks: on a Hopper GPU the wgmma kernel reads these pages in
         * place (TMA boxes of up to a tile's rows per page). */
        {.name = "paged 16 head-major, window 64 + sinks, d128 32/8", .hq = 32, .hk = 8, .d = 128, .batch = 5,
         .sq = LENS(100, 1, 200, 64, 129), .sk = LENS(400, 300, 200, 1000, 129), .page_size = 16, .hnd = 1,
         .causal = 1, .window_left = 64, .sinks = 1},
        /* Soft-cap and ALiBi over a cache (Gemma 2's chunked prefill): the Hopper kernel's
         * variants mode reading pages (32/8), the mma.sync kernel over pages of 1, and a
         * staged FP8 cache with a window. */
        {.name = "paged 16 head-major, softcap 1.5 + alibi, d128 32/8", .hq = 32, .hk = 8, .d = 128, .batch = 5,
         .sq = LENS(100, 1, 200, 64, 129), .sk = LENS(400, 300, 200, 1000, 129), .page_size = 16, .hnd = 1,
         .causal = 1, .softcap = 1.5f, .alibi = 1},
        {.name = "paged 1, softcap 2 + alibi, d64 8/8", .hq = 8, .hk = 8, .d = 64, .batch = 4, .sq = LENS(17, 1, 5, 33),
         .sk = LENS(40, 1, 5, 100), .page_size = 1, .causal = 1, .softcap = 2.0f, .alibi = 1},
        {.name = "e4m3 paged 16, window 255 + softcap 3, d256 8/4", .hq = 8, .hk = 4, .d = 256, .batch = 3,
         .sq = LENS(100, 1, 300), .sk = LENS(700, 90, 300), .page_size = 16, .causal = 1, .window_left = 255,
         .softcap = 3.0f, .quant = FAI_DTYPE_FP8_E4M3},
        {.name = "bf16 paged 64 scrambled, d64 48/8", .hq = 48, .hk = 8, .d = 64, .batch = 3, .sq = LENS(300, 1, 129),
         .sk = LENS(900, 50, 129), .page_size = 64, .causal = 1, .bf16 = 1},
        {.name = "bf16 contiguous, d64 8/1", .hq = 8, .hk = 1, .d = 64, .batch = 7, .sq = gq, .sk = gk, .causal = 1,
         .bf16 = 1},
        {.name = "bf16 paged 16 scrambled, d128 16/4", .hq = 16, .hk = 4, .d = 128, .batch = 7, .sq = gq, .sk = gk,
         .page_size = 16, .causal = 1, .bf16 = 1},
        {.name = "bf16 paged 1, GQA 7 d128", .hq = 14, .hk = 2, .d = 128, .batch = 3, .sq = LENS(17, 1, 40),
         .sk = LENS(40, 7, 40), .page_size = 1, .causal = 1, .bf16 = 1},
        {.name = "bf16 paged 256, shared prefix, d256 8/2", .hq = 8, .hk = 2, .d = 256, .batch = 2,
         .sq = LENS(100, 60), .sk = LENS(600, 520), .page_size = 256, .shared = 2, .causal = 1, .bf16 = 1},
        {.name = "int8 paged 16 scrambled, d128 16/4", .hq = 16, .hk = 4, .d = 128, .batch = 7, .sq = gq, .sk = gk,
         .page_size = 16, .causal = 1, .quant = FAI_DTYPE_INT8},
        /* int8 with FAI_SCALES_BF16X2 scales: paged (staged for the prefill rows, decode rows
         * on the decode kernels) and contiguous beside 8K-key decode rows */
        {.name = "int8 bf16x2 scales, paged 16 scrambled, d128 16/4", .hq = 16, .hk = 4, .d = 128, .batch = 7,
         .sq = gq, .sk = gk, .page_size = 16, .causal = 1, .quant = FAI_DTYPE_INT8, .scale_pairs = 1},
        /* (FP16 q: chosen when a decode row's reference held the codes rounded to q's dtype,
         * which put a BF16 row's LSE past its tolerance; it holds them unrounded since) */
        {.name = "int8 bf16x2 scales, paged 1, GQA 7 d64, window 50", .hq = 14, .hk = 2, .d = 64, .batch = 3,
         .sq = LENS(17, 1, 40), .sk = LENS(40, 7, 40), .page_size = 1, .causal = 1, .window_left = 50,
         .quant = FAI_DTYPE_INT8, .scale_pairs = 1},
        {.name = "bf16 int8 bf16x2 scales, paged 256, shared prefix, d256 8/2", .hq = 8, .hk = 2, .d = 256,
         .batch = 2, .sq = LENS(100, 60), .sk = LENS(600, 520), .page_size = 256, .shared = 2, .causal = 1,
         .bf16 = 1, .quant = FAI_DTYPE_INT8, .scale_pairs = 1},
        {.name = "e4m3 contiguous, d64 8/1", .hq = 8, .hk = 1, .d = 64, .batch = 7, .sq = gq, .sk = gk, .causal = 1,
         .quant = FAI_DTYPE_FP8_E4M3},
        {.name = "e5m2 contiguous head-major, non-causal, d96 8/2", .hq = 8, .hk = 2, .d = 96, .batch = 4,
         .sq = LENS(77, 1, 30, 129), .sk = LENS(200, 90, 30, 129), .hnd = 1, .quant = FAI_DTYPE_FP8_E5M2},
        {.name = "bf16 e5m2 paged 1, GQA 7 d128", .hq = 14, .hk = 2, .d = 128, .batch = 3, .sq = LENS(17, 1, 40),
         .sk = LENS(40, 7, 40), .page_size = 1, .causal = 1, .bf16 = 1, .quant = FAI_DTYPE_FP8_E5M2},
        {.name = "bf16 int8 paged 256, shared prefix, d256 8/2", .hq = 8, .hk = 2, .d = 256, .batch = 2,
         .sq = LENS(100, 60), .sk = LENS(600, 520), .page_size = 256, .shared = 2, .causal = 1, .bf16 = 1,
         .quant = FAI_DTYPE_INT8},
        {.name = "e4m3 paged 16 head-major, window 64 + sinks, d128 8/2", .hq = 8, .hk = 2, .d = 128, .batch = 3,
         .sq = LENS(100, 1, 200), .sk = LENS(400, 300, 200), .page_size = 16, .hnd = 1, .causal = 1,
         .window_left = 64, .sinks = 1, .quant = FAI_DTYPE_FP8_E4M3},
        /* Long enough chunks (rows x q heads / kv heads >= FAI_PREFILL_STAGE_PAGED_ROWS, 8192) have
         * a paged FP16/BF16 cache gathered into the workspace first; with no host plan the
         * first case's range takes its decode row too and stays under the bar (paged read). */
        {.name = "paged 16, MQA 16/1 d64, 512-row chunk (gathered)", .hq = 16, .hk = 1, .d = 64, .batch = 2,
         .sq = LENS(512, 1), .sk = LENS(1024, 300), .page_size = 16, .causal = 1},
        {.name = "bf16 paged 256, MQA 16/1 d128, 600-row chunk (gathered)", .hq = 16, .hk = 1, .d = 128,
         .batch = 1, .sq = LENS(600), .sk = LENS(900), .page_size = 256, .causal = 1, .bf16 = 1},
        {.name = "long: paged 16, 512 x 4096, d128 8/8", .hq = 8, .hk = 8, .d = 128, .batch = 1, .sq = LENS(512),
         .sk = LENS(4096), .page_size = 16, .causal = 1},
        /* 16 decode rows of 8K keys beside a chunk: their plan is an int8 cache's (a plan made
         * as for FP16 took a 4-stage ring that no one-byte kernel has) */
        {.name = "long: int8 contiguous, a chunk and 16 decode rows of 8K, d128 32/8", .hq = 32, .hk = 8, .d = 128,
         .batch = 17, .sq = LENS(64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
         .sk = LENS(200, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192, 8192,
                    8192),
         .causal = 1, .quant = FAI_DTYPE_INT8},
        {.name = "long: int8 bf16x2 scales contiguous, a chunk and 4 decode rows of 8K, d128 32/8", .hq = 32,
         .hk = 8, .d = 128, .batch = 5, .sq = LENS(64, 1, 1, 1, 1), .sk = LENS(200, 8192, 8192, 8192, 8192),
         .causal = 1, .quant = FAI_DTYPE_INT8, .scale_pairs = 1},
    };
    const char *only = getenv("FAI_TEST_NAME");
    int failed = 0, ran = 0;
    const int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        if ((g_small && !case_small(&cases[i])) || (only && !strstr(cases[i].name, only)))
            continue;
        failed += run_case(&cases[i], i) > 0;
        ran++;
    }
    /* The chunked-prefill property: 1, 3 and 7 chunks through a paged cache = one prefill. */
    struct {
        const char *name;
        int hq, hk, d, len, ps, bf16;
        fai_dtype quant;
    } chunked[] = {
        {"chunked prefill, page 16, d128 32/8", 32, 8, 128, 1000, 16, 0, 0},
        {"chunked prefill, page 1, GQA 7 d64", 14, 2, 64, 300, 1, 0, 0},
        {"chunked prefill, page 256, d256 8/2", 8, 2, 256, 700, 256, 0, 0},
        {"bf16 chunked prefill, page 16, d128 16/4", 16, 4, 128, 600, 16, 1, 0},
        {"int8 chunked prefill, page 16, d128 32/8", 32, 8, 128, 1000, 16, 0, FAI_DTYPE_INT8},
        {"e4m3 chunked prefill, page 1, GQA 7 d64", 14, 2, 64, 300, 1, 0, FAI_DTYPE_FP8_E4M3},
        {"bf16 e5m2 chunked prefill, page 256, d256 8/2", 8, 2, 256, 700, 256, 1, FAI_DTYPE_FP8_E5M2},
        {"bf16 int8 chunked prefill, page 16, d96 16/4", 16, 4, 96, 600, 16, 1, FAI_DTYPE_INT8},
        /* chunks of 1500, 500 and 834 rows x 16: gathered and paged reads in one prompt */
        {"chunked prefill, page 16, MQA 16/1 d64 (gathered chunks)", 16, 1, 64, 1500, 16, 0, 0},
    };
    for (int i = 0; i < (int)(sizeof chunked / sizeof chunked[0]); i++) {
        if (only && !strstr(chunked[i].name, only))
            continue;
        const int len = g_small ? chunked[i].len / 4 : chunked[i].len;
        failed += run_chunked(chunked[i].name, chunked[i].hq, chunked[i].hk, chunked[i].d, len, chunked[i].ps,
                              chunked[i].bf16, chunked[i].quant, n + i) > 0;
        ran++;
    }
    printf("test_prefill_cache: %d cases, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}
