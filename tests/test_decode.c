/* GPU test of decoding attention against the double-precision CPU reference, on fresh
 * random inputs (seed printed; FAI_TEST_SEED reproduces a run), with outputs poisoned with
 * NaN before every call and cache slots past each sequence's length filled with NaN (or
 * with huge values, in the adversarial cases), so an unwritten output or a read past the
 * length fails. Tolerances are those of shared/guides/correctness.md: rel L2 <= 2e-3, and
 * max error at most twice that of a plain FP32 reference with FP16 output. Exits 77
 * without a GPU.
 *
 * BF16 cases (names starting with "bf16": FAI_TEST_NAME=bf16 runs them alone) have BF16 q
 * and o over a BF16 cache or a quantized one written by fai_kv_append from BF16 rows (its
 * codes checked bit for bit against the host codecs, as for FP16 rows). They follow
 * tests/test_prefill.c's BF16 rule: the reference runs on the BF16-rounded inputs, rel L2
 * <= 1.6e-2 (2e-3 x 8, BF16's unit roundoff against FP16's), max error at most twice that of
 * the plain FP32 reference with BF16-rounded softmax weights and output (ref32_row); the LSE
 * keeps FP16's bound. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode_args.h"
#include "check.h"
#include "fai.h"
#include "gpu_test_util.h"
#include "random_case.h"
#include "reference.h"

/* Keys left of a window that stay finite in the cache (see upload_inputs): the first tile or
 * step of a window may start before it, and reads them masked. */
#define WINDOW_MARGIN 256

typedef struct decode_case {
    const char *name;
    int batch, hq, hk, d, capacity;
    const int *lens;   /* [batch], or NULL: random in [0, capacity] */
    int hnd;           /* cache as [batch, heads, capacity, dim] instead of [batch, capacity, heads, dim] */
    int fused;         /* Q a view into a fused QKV buffer, O head-major [heads, batch, dim] */
    int alibi;         /* 0 off, 1 standard slopes, 2 caller slopes in [0.01, 1], 3 caller slopes of 8 */
    float q_std;       /* standard deviation of Q (logit scale); K and V are N(0, 1) */
    int huge_tail;     /* slots past the length hold huge values instead of NaN */
    int max_seq_len;   /* planning hint (0: capacity) */
    int check_every;   /* reference for every k-th sequence (all outputs are still checked finite) */
    int graph;         /* capture into a CUDA graph, replay, then replay again on new Q and lengths */
    int no_lse;        /* pass lse = NULL (the LSE buffer stays poisoned and is not checked) */
    fai_dtype kv_dtype; /* cache element type: FP16, or quantized (written by fai_kv_append,
                           its codes checked bit for bit against the host codecs) */
    int window_left;   /* > 0: sliding window of window_left + 1 keys (-1 with window: all) */
    float softcap;     /* logit soft-cap, 0: off */
    int sinks;         /* 0 none, 1 random in [-2, 2], 2 +30 (far above every logit), 3 -30 */
    int page_size;     /* > 0: a paged cache (pages in scrambled order, written by fai_kv_append) */
    int shared_pages;  /* paged: sequence 1 starts with sequence 0's first pages (a common prefix) */
    int bf16;          /* BF16 q and o (kv_dtype BF16 or quantized, written from BF16 rows) */
    int scale_pairs;   /* int8: FAI_SCALES_BF16X2 (both scales of a token and head in one word) */
} decode_case;

static uint64_t g_seed;
static fai_device_info g_dev;
static int g_bf16; /* the running case's q/o (and row) dtype: BF16 (1) or FP16 (0) */

static int unquantized(fai_dtype t) { return t == FAI_DTYPE_FP16 || t == FAI_DTYPE_BF16; }
static uint16_t to_elem(float x) { return g_bf16 ? host_float_to_bf16(x) : host_float_to_half(x); }
static float from_elem(uint16_t bits) { return g_bf16 ? host_bf16_to_float(bits) : host_half_to_float(bits); }

/* Rounds x through the running case's element type (FP16 or BF16) in place and returns the
 * bits (split over threads: the 2^31-offset cases round 2.4e9 values a tensor). */
typedef struct rounding {
    float *x;
    uint16_t *bits;
} rounding;

static void round_range(int64_t first, int64_t end, void *ctx)
{
    const rounding *r = ctx;
    for (int64_t i = first; i < end; i++) {
        const uint16_t h = to_elem(r->x[i]);
        if (r->bits)
            r->bits[i] = h;
        r->x[i] = from_elem(h);
    }
}

static void round_to_elem(float *x, uint16_t *bits, int64_t n)
{
    rounding r = {x, bits};
    fai_ref_parallel_for(n, (int64_t)1 << 20, round_range, &r);
}

/* Wall-clock seconds (the host costs below run on several threads, so CPU time overstates them). */
static double wall_seconds(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Plain FP32 attention of one query row with an FP16-rounded (BF16 cases: BF16-rounded)
 * output: the yardstick of the reference-relative bound. BF16 cases also round the weights
 * exp(s - max) (at most 1) to BF16 before P.V, as the BF16 tensor-core kernel multiplies
 * them (and FlashAttention-2's plain reference casts P to the input type): that rounding
 * (2^-9) is as large as the output's, and a yardstick without it put the bound under the
 * kernel's error for some seeds (bf16 d64 h8/8, seed 1795724723: 4.38e-3 against
 * 2 x 1.94e-3). One yardstick serves every plan, so the CUDA-core kernel (FP32 weights) is
 * held to the same, looser bound. FP16's weights stay FP32: their rounding is under the
 * output's, and the FP16 bound stays as tight as it was. */
/* (the variants: keys from `first` on, soft-cap cap (0: off), a sink logit (NAN: none)) */
static void ref32_row(const float *q, const float *k, const float *v, int len, int kv_stride, int d,
                      float scale, float slope, int first, float cap, float sink, float *out)
{
    float *s = malloc(sizeof(float) * (size_t)(len > 0 ? len : 1));
    float mx = isnan(sink) ? -INFINITY : sink;
    for (int j = first; j < len; j++) {
        float dot = 0.0f;
        for (int e = 0; e < d; e++)
            dot += q[e] * k[(int64_t)j * kv_stride + e];
        s[j] = dot * scale;
        if (cap > 0.0f)
            s[j] = cap * tanhf(s[j] / cap);
        s[j] -= slope * (float)(len - 1 - j);
        mx = fmaxf(mx, s[j]);
    }
    float sum = isnan(sink) ? 0.0f : expf(sink - mx);
    for (int j = first; j < len; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    if (g_bf16)
        for (int j = first; j < len; j++)
            s[j] = host_bf16_to_float(host_float_to_bf16(s[j]));
    for (int e = 0; e < d; e++) {
        float acc = 0.0f;
        for (int j = first; j < len; j++)
            acc += s[j] * v[(int64_t)j * kv_stride + e];
        out[e] = from_elem(to_elem(len > first ? acc / sum : 0.0f));
    }
    free(s);
}

typedef struct device_problem {
    fai_decode_params p;
    int32_t *table_host; /* paged: the page table, [batch][pages_per_seq + 1] */
    int table_stride;
    void *q_buf, *o_buf, *k, *v, *ws;
    int32_t *lens_dev;
    float *lse_dev, *slopes_dev;
    size_t ws_bytes;
    int64_t kv_elems;
} device_problem;

/* Host copies of what the GPU holds, FP16-rounded (BF16 cases: BF16), compact per sequence: k[b] is
 * [len_b, hk, d]. */
typedef struct host_problem {
    float *q;      /* [batch, hq, d] */
    float **k, **v; /* what the cache holds (dequantized values for a quantized cache) */
    float **k16, **v16; /* quantized caches: the FP16 (BF16) rows they were written from */
    int *lens;     /* clamped to [0, capacity] */
    double *slopes;
    double *sinks; /* [hq], the variant's sink logits */
    double *ref, *ref_lse, *ref16; /* compute_references(), valid while ref_valid */
    double max_err32;
    int ref_valid;
} host_problem;

static int clamp_len(int len, int cap) { return len < 0 ? 0 : len > cap ? cap : len; }

/* Copies compact [rows, heads, d] FP16 data to a strided [rows, heads, d] device view: one
 * copy when the view is compact, else one per head of a contiguous row run, else per row. */
static void upload_rows(void *dst, const uint16_t *src, int64_t rows, int heads, int d, int64_t row_stride,
                        int64_t head_stride)
{
    if (rows == 0)
        return;
    uint16_t *out = dst;
    if (row_stride == (int64_t)heads * d && head_stride == d) {
        CUDA_CHECK(cudaMemcpy(out, src, (size_t)(rows * heads * d) * 2, cudaMemcpyHostToDevice));
        return;
    }
    if (row_stride == d) { /* head-major: each head's rows are contiguous */
        uint16_t *tmp = malloc((size_t)(rows * d) * 2);
        for (int h = 0; h < heads; h++) {
            for (int64_t t = 0; t < rows; t++)
                memcpy(tmp + t * d, src + (t * heads + h) * d, (size_t)d * 2);
            CUDA_CHECK(cudaMemcpy(out + h * head_stride, tmp, (size_t)(rows * d) * 2, cudaMemcpyHostToDevice));
        }
        free(tmp);
        return;
    }
    for (int64_t t = 0; t < rows; t++)
        for (int h = 0; h < heads; h++)
            CUDA_CHECK(cudaMemcpy(out + t * row_stride + h * head_stride, src + (t * heads + h) * d, (size_t)d * 2,
                                  cudaMemcpyHostToDevice));
}

static int64_t g_append_mismatches;

/* Rows [0, len) of sequence b of a strided [batch][capacity][hk] array of `row` elements
 * of eb bytes, downloaded in one copy of the span they cover, as compact [len, hk, row]. */
static void download_rows(const void *base, int64_t seq_stride, int64_t token_stride, int64_t head_stride, int b,
                          int len, int hk, int row, int eb, uint8_t *out)
{
    const int64_t span = (int64_t)(len - 1) * token_stride + (int64_t)(hk - 1) * head_stride + row;
    uint8_t *tmp = malloc((size_t)(span * eb));
    CUDA_CHECK(cudaMemcpy(tmp, (const char *)base + b * seq_stride * eb, (size_t)(span * eb), cudaMemcpyDeviceToHost));
    for (int t = 0; t < len; t++)
        for (int h = 0; h < hk; h++)
            memcpy(out + ((int64_t)t * hk + h) * row * eb, tmp + (t * token_stride + h * head_stride) * eb,
                   (size_t)(row * eb));
    free(tmp);
}

/* Writes sequence b's FP16 rows kb/vb into the quantized cache through fai_kv_append (slots
 * b * capacity + t), checks the codes and scales it wrote against the host codecs bit for
 * bit, and turns hp->k[b]/v[b] into the values the cache now stands for (the FP16 rows are
 * kept in k16/v16). Returns the number of mismatching codes and scales. */
/* The host codec over rows [first, end) of one tensor: the values the cache stands for into
 * deq, and against the kernel's codes and scales where given, mismatches into bad[chunk]. */
enum { ENCODE_GRAIN = 1 << 14 };
typedef struct encoding {
    fai_dtype dtype;
    int d;
    const float *src;
    float *deq;
    const uint8_t *got;     /* the kernel's codes, or NULL */
    const float *got_scale; /* the kernel's int8 scales (FAI_SCALES_BF16X2: words), or NULL */
    int64_t *bad;           /* [chunks] */
    int pairs, is_v;        /* FAI_SCALES_BF16X2: compare the word's V (high) or K (low) half */
} encoding;

static void encode_range(int64_t first, int64_t end, void *ctx)
{
    const encoding *e = ctx;
    const int d = e->d;
    uint8_t want[2 * 256];
    int64_t bad = 0;
    for (int64_t r = first; r < end; r++) {
        float scale;
        host_encode_row(e->dtype, e->pairs, e->src + r * d, d, want, &scale, e->deq + r * d);
        bad += e->got && memcmp(want, e->got + r * d, (size_t)d) != 0;
        if (e->got_scale && e->pairs) {
            const uint32_t w = fai_float_bits(e->got_scale[r]);
            bad += fai_scale_pair_half(w, e->is_v) != (uint16_t)(fai_float_bits(scale) >> 16);
        } else if (e->got_scale) {
            bad += memcmp(&scale, e->got_scale + r, sizeof(float)) != 0;
        }
    }
    e->bad[first / ENCODE_GRAIN] = bad;
}

static int64_t append_quantized(const decode_case *c, device_problem *dp, host_problem *hp, int b, int len,
                                const uint16_t *kb, const uint16_t *vb)
{
    if (len == 0)
        return 0;
    const int d = c->d, hk = c->hk;
    const int64_t n = (int64_t)len * hk * d;
    fai_kv_cache *kc = &dp->p.cache;
    void *new_k, *new_v;
    int64_t *slots_dev;
    CUDA_CHECK(cudaMalloc(&new_k, (size_t)n * 2));
    CUDA_CHECK(cudaMalloc(&new_v, (size_t)n * 2));
    CUDA_CHECK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)len));
    CUDA_CHECK(cudaMemcpy(new_k, kb, (size_t)n * 2, cudaMemcpyHostToDevice)); /* FP16 or BF16 rows */
    CUDA_CHECK(cudaMemcpy(new_v, vb, (size_t)n * 2, cudaMemcpyHostToDevice));
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)len);
    for (int t = 0; t < len; t++)
        slots[t] = c->page_size ? (int64_t)dp->table_host[(int64_t)b * dp->table_stride + t / c->page_size] *
                                          c->page_size + t % c->page_size
                                : (int64_t)b * c->capacity + t;
    CUDA_CHECK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)len, cudaMemcpyHostToDevice));
    fai_kv_append_params ap = fai_kv_append_params_default();
    ap.num_kv_heads = hk;
    ap.head_dim = d;
    ap.num_tokens = len;
    ap.k_new.data = new_k;
    ap.k_new.token_stride = (int64_t)hk * d;
    ap.k_new.head_stride = d;
    ap.k_new.dtype = g_bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    ap.v_new = ap.k_new;
    ap.v_new.data = new_v;
    ap.slots = slots_dev;
    ap.cache_batch = c->batch;
    ap.cache = *kc;
    const fai_status st = fai_kv_append(&ap, 0);
    if (st != FAI_SUCCESS) {
        printf("  fai_kv_append: %s: %s\n", fai_status_string(st), fai_last_error());
        exit(1);
    }
    CUDA_CHECK(cudaDeviceSynchronize());

    if (c->kv_dtype == FAI_DTYPE_BF16 && !c->page_size) { /* a contiguous BF16 cache: copied bit for bit */
        uint8_t *got = malloc((size_t)n * 2);
        int64_t bad = 0;
        for (int which = 0; which < 2; which++) {
            download_rows(which ? kc->v : kc->k, kc->seq_stride, kc->token_stride, kc->head_stride, b, len, hk, d, 2,
                          got);
            bad += memcmp(got, which ? vb : kb, (size_t)n * 2) != 0;
        }
        free(got); free(slots);
        cudaFree(new_k); cudaFree(new_v); cudaFree(slots_dev);
        return bad;
    }
    if (unquantized(c->kv_dtype)) { /* (paged FP16/BF16: the rows are what the cache holds) */
        free(slots);
        cudaFree(new_k); cudaFree(new_v); cudaFree(slots_dev);
        return 0;
    }
    /* What the host codecs make of the same rows, against what the kernel wrote (compared
     * for contiguous caches; a paged one's rows were compared in the contiguous cases). */
    free(hp->k16[b]);
    free(hp->v16[b]);
    hp->k16[b] = hp->k[b];
    hp->v16[b] = hp->v[b];
    hp->k[b] = malloc(sizeof(float) * (size_t)n);
    hp->v[b] = malloc(sizeof(float) * (size_t)n);
    uint8_t *got = malloc((size_t)n);
    float *got_scale = malloc(sizeof(float) * (size_t)len * hk);
    int64_t bad = 0;
    for (int which = 0; which < 2; which++) {
        const float *src = which ? hp->v16[b] : hp->k16[b];
        float *deq = which ? hp->v[b] : hp->k[b];
        const int compare = !c->page_size;
        if (compare)
            download_rows(which ? kc->v : kc->k, kc->seq_stride, kc->token_stride, kc->head_stride, b, len, hk, d, 1,
                          got);
        const float *sc = compare ? (which && !c->scale_pairs ? kc->v_scale : kc->k_scale) : NULL;
        if (sc)
            download_rows(sc, kc->scale_seq_stride, kc->scale_token_stride, kc->scale_head_stride, b, len, hk, 1, 4,
                          (uint8_t *)got_scale);
        encoding job = {c->kv_dtype, d, src, deq, compare ? got : NULL, sc ? got_scale : NULL, NULL, c->scale_pairs,
                        which};
        const int64_t rows = (int64_t)len * hk, chunks = (rows - 1) / ENCODE_GRAIN + 1;
        job.bad = calloc((size_t)chunks, sizeof(int64_t));
        fai_ref_parallel_for(rows, ENCODE_GRAIN, encode_range, &job);
        for (int64_t i = 0; i < chunks; i++)
            bad += job.bad[i];
        free(job.bad);
    }
    free(got); free(got_scale); free(slots);
    cudaFree(new_k); cudaFree(new_v); cudaFree(slots_dev);
    return bad;
}

/* Fills q and the valid cache rows with fresh random values, uploads them, and writes the
 * raw (unclamped) lengths. */
static void upload_inputs(const decode_case *c, fai_ref_rng *rng, device_problem *dp, host_problem *hp,
                          const int *raw_lens)
{
    const int64_t qn = (int64_t)c->batch * c->hq * c->d;
    uint16_t *bits = malloc(sizeof(uint16_t) * (size_t)(qn > 0 ? qn : 1));
    fai_ref_fill_normal(rng, hp->q, qn, c->q_std);
    round_to_elem(hp->q, bits, qn);
    const fai_tensor *qt = &dp->p.q;
    upload_rows(qt->data, bits, c->batch, c->hq, c->d, qt->token_stride, qt->head_stride);
    free(bits);

    const fai_kv_cache *kc = &dp->p.cache;
    for (int b = 0; b < c->batch; b++) {
        const int len = clamp_len(raw_lens[b], c->capacity);
        hp->lens[b] = len;
        const int64_t n = (int64_t)len * c->hk * c->d;
        free(hp->k[b]);
        free(hp->v[b]);
        hp->k[b] = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        hp->v[b] = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        uint16_t *kb = malloc(sizeof(uint16_t) * (size_t)(n > 0 ? n : 1));
        uint16_t *vb = malloc(sizeof(uint16_t) * (size_t)(n > 0 ? n : 1));
        fai_ref_fill_normal(rng, hp->k[b], n, 1.0);
        fai_ref_fill_normal(rng, hp->v[b], n, 1.0);
        if (c->shared_pages && b == 1) { /* a common prefix: sequence 0's first pages hold it */
            const int64_t m = (int64_t)(len < hp->lens[0] ? len : hp->lens[0]);
            const int64_t shared = (int64_t)c->shared_pages * c->page_size < m ? (int64_t)c->shared_pages * c->page_size : m;
            const float *k0 = unquantized(c->kv_dtype) ? hp->k[0] : hp->k16[0];
            const float *v0 = unquantized(c->kv_dtype) ? hp->v[0] : hp->v16[0];
            memcpy(hp->k[b], k0, sizeof(float) * (size_t)(shared * c->hk * c->d));
            memcpy(hp->v[b], v0, sizeof(float) * (size_t)(shared * c->hk * c->d));
        }
        round_to_elem(hp->k[b], kb, n); /* the rows: FP16, or BF16 in the BF16 cases */
        round_to_elem(hp->v[b], vb, n);
        if (c->kv_dtype == FAI_DTYPE_FP16 && !c->page_size) {
            /* A window's keys more than WINDOW_MARGIN left of it are NaN in the cache (the
             * reference reads the finite host rows): a kernel that read them and masked them
             * (0 x NaN = NaN in P V) instead of skipping them fails (issue 6: skipped, not
             * masked). The margin leaves a partial first tile or step its finite rows. */
            const int64_t skipped = c->window_left > 0 ? (int64_t)len - 1 - c->window_left - WINDOW_MARGIN : 0;
            for (int64_t e = 0; e < skipped * c->hk * c->d; e++)
                kb[e] = vb[e] = HALF_NAN;
            upload_rows((uint16_t *)kc->k + b * kc->seq_stride, kb, len, c->hk, c->d, kc->token_stride,
                        kc->head_stride);
            upload_rows((uint16_t *)kc->v + b * kc->seq_stride, vb, len, c->hk, c->d, kc->token_stride,
                        kc->head_stride);
        } else {
            g_append_mismatches += append_quantized(c, dp, hp, b, len, kb, vb);
        }
        free(kb);
        free(vb);
    }
    CUDA_CHECK(cudaMemcpy(dp->lens_dev, raw_lens, sizeof(int32_t) * (size_t)c->batch, cudaMemcpyHostToDevice));
    hp->ref_valid = 0; /* new inputs: new references */
}

static void poison_outputs(const decode_case *c, device_problem *dp)
{
    const int64_t o_elems = (int64_t)c->batch * c->hq * c->d;
    CUDA_CHECK(cudaMemset(dp->o_buf, 0xff, (size_t)o_elems * 2)); /* 0xffff: FP16 NaN */
    CUDA_CHECK(cudaMemset(dp->lse_dev, 0xff, sizeof(float) * (size_t)c->batch * c->hq)); /* FP32 NaN */
    /* the legacy-stream memsets (and the uploads and workspace poison before them) must land before work on the
     * non-blocking stream: every launch follows this call */
    CUDA_CHECK(cudaDeviceSynchronize());
}

/* Compares the GPU's O and LSE with the references; returns the number of failures. */
/* The references of the current inputs, computed once and kept for every plan checked:
 * the double reference (and LSE) of each checked sequence, the FP32 yardstick's max error,
 * and for quantized caches the reference on the FP16 rows. */
static double g_start, g_ref_seconds, g_input_seconds; /* wall time in compute_references and in
                                                 * upload_inputs (the test's host costs) */
typedef struct ref_job {
    const decode_case *c;
    const device_problem *dp;
    host_problem *hp;
    double *max_err32; /* [batch]: each sequence's FP32 yardstick error, reduced after */
    atomic_int failed; /* a reference call failed (reported once the loop is done) */
} ref_job;

/* The references of sequences [first, end) (each writes only its own rows). */
static void reference_range(int64_t first, int64_t end, void *ctx)
{
    ref_job *job = ctx;
    const decode_case *c = job->c;
    host_problem *hp = job->hp;
    const int d = c->d, group = c->hq / c->hk;
    const int64_t row_elems = (int64_t)c->hq * d;
    const int every = c->check_every > 0 ? c->check_every : 1;
    double *scratch_lse = malloc(sizeof(double) * (size_t)c->hq);
    float *o32 = malloc(sizeof(float) * (size_t)d);
    for (int b = (int)first; b < (int)end; b++) {
        if (b % every != 0 && b != c->batch - 1)
            continue;
        fai_ref_problem rp = {c->hq, c->hk, d, 1, hp->lens[b], job->dp->p.attn.softmax_scale, 0,
                              c->alibi != 0, c->alibi >= 2 ? hp->slopes : NULL, 0, 0, 0, 0.0, NULL};
        rp.window = c->window_left != 0;
        rp.window_left = c->window_left;
        rp.window_right = -1;
        rp.softcap = c->softcap;
        rp.sinks = c->sinks ? hp->sinks : NULL;
        double *ref = hp->ref + b * row_elems;
        if (fai_ref_attention(&rp, hp->q + b * row_elems, hp->k[b], hp->v[b], ref, hp->ref_lse + (int64_t)b * c->hq)) {
            job->failed = 1;
            continue;
        }
        double err32 = 0;
        for (int h = 0; h < c->hq; h++) {
            const float slope = c->alibi ? (float)hp->slopes[h] : 0.0f;
            const int first_key = c->window_left > 0 && hp->lens[b] - 1 - c->window_left > 0
                                      ? hp->lens[b] - 1 - c->window_left : 0;
            ref32_row(hp->q + b * row_elems + (int64_t)h * d, hp->k[b] + (int64_t)(h / group) * d,
                      hp->v[b] + (int64_t)(h / group) * d, hp->lens[b], c->hk * d, d,
                      job->dp->p.attn.softmax_scale, slope, first_key, c->softcap,
                      c->sinks ? (float)hp->sinks[h] : NAN, o32);
            for (int e = 0; e < d; e++)
                err32 = fmax(err32, fabs((double)o32[e] - ref[(int64_t)h * d + e]));
        }
        job->max_err32[b] = err32;
        if (hp->ref16 && hp->lens[b] > 0)
            fai_ref_attention(&rp, hp->q + b * row_elems, hp->k16[b], hp->v16[b], hp->ref16 + b * row_elems,
                              scratch_lse);
    }
    free(scratch_lse);
    free(o32);
}

static void compute_references(const decode_case *c, const device_problem *dp, host_problem *hp)
{
    const double t0 = wall_seconds();
    const int64_t row_elems = (int64_t)c->hq * c->d;
    const size_t n = (size_t)(c->batch * row_elems + 1);
    free(hp->ref);
    free(hp->ref_lse);
    free(hp->ref16);
    hp->ref = calloc(n, sizeof(double));
    hp->ref_lse = calloc((size_t)c->batch * c->hq + 1, sizeof(double));
    hp->ref16 = !unquantized(c->kv_dtype) ? calloc(n, sizeof(double)) : NULL;
    ref_job job = {c, dp, hp, calloc((size_t)c->batch + 1, sizeof(double)), 0};
    fai_ref_parallel_for(c->batch, 1, reference_range, &job);
    if (job.failed) {
        printf("  reference failed\n");
        exit(1);
    }
    hp->max_err32 = 0;
    for (int b = 0; b < c->batch; b++)
        hp->max_err32 = fmax(hp->max_err32, job.max_err32[b]);
    free(job.max_err32);
    hp->ref_valid = 1;
    g_ref_seconds += wall_seconds() - t0;
}

/* Compares the GPU's O and LSE with the references; returns the number of failures. */
static int check_outputs(const decode_case *c, const char *round, device_problem *dp, host_problem *hp)
{
    const int d = c->d;
    const int64_t row_elems = (int64_t)c->hq * d;
    float *o = malloc(sizeof(float) * (size_t)(c->batch * row_elems + 1));
    uint16_t *ob = malloc(sizeof(uint16_t) * (size_t)(c->batch * row_elems + 1));
    float *lse = malloc(sizeof(float) * (size_t)(c->batch * c->hq + 1));
    const fai_tensor *ot = &dp->p.o;
    if (ot->token_stride == row_elems && ot->head_stride == d)
        CUDA_CHECK(cudaMemcpy(ob, ot->data, (size_t)(c->batch * row_elems) * 2, cudaMemcpyDeviceToHost));
    else
        for (int b = 0; b < c->batch; b++)
            for (int h = 0; h < c->hq; h++)
                CUDA_CHECK(cudaMemcpy(ob + ((int64_t)b * c->hq + h) * d,
                                      (uint16_t *)ot->data + b * ot->token_stride + h * ot->head_stride,
                                      (size_t)d * 2, cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < c->batch * row_elems; i++)
        o[i] = from_elem(ob[i]);
    CUDA_CHECK(cudaMemcpy(lse, dp->lse_dev, sizeof(float) * (size_t)c->batch * c->hq, cudaMemcpyDeviceToHost));
    if (!hp->ref_valid)
        compute_references(c, dp, hp);

    int fails = 0;
    int64_t nonfinite = 0;
    for (int64_t i = 0; i < c->batch * row_elems; i++)
        nonfinite += !isfinite(o[i]);
    double err2 = 0, ref2 = 0, max_err = 0, max_lse_err = 0, e2_16 = 0, r2_16 = 0, n16 = 0, worst_seq_rel = 0;
    int lse_bad = 0, seq_bad = 0, worst_seq = -1;
    const double rel_tol = c->bf16 ? 1.6e-2 : 2e-3;
    const int every = c->check_every > 0 ? c->check_every : 1;
    for (int b = 0; b < c->batch; b++) {
        if (b % every != 0 && b != c->batch - 1)
            continue;
        const double *ref = hp->ref + b * row_elems, *ref_lse = hp->ref_lse + (int64_t)b * c->hq;
        const float *ob_row = o + b * row_elems;
        double se2 = 0, sr2 = 0;
        for (int64_t i = 0; i < row_elems; i++) {
            const double e = fabs((double)ob_row[i] - ref[i]);
            se2 += e * e;
            sr2 += ref[i] * ref[i];
            if (!(e <= max_err))
                max_err = e; /* NaN sticks */
        }
        err2 += se2;
        ref2 += sr2;
        /* Each sequence on its own too: in a batch of hundreds, one sequence's error is
         * diluted in the pooled rel L2 (the same RMS floor as below for a near-zero norm). */
        double srel;
        if (!rel_l2_within(se2, sr2, row_elems, rel_tol, &srel)) {
            seq_bad++;
            if (!(srel <= worst_seq_rel)) {
                worst_seq_rel = srel;
                worst_seq = b;
            }
        }
        if (hp->ref16 && hp->lens[b] > 0)
            for (int64_t i = 0; i < row_elems; i++) {
                const double e = (double)ob_row[i] - hp->ref16[b * row_elems + i];
                e2_16 += e * e;
                r2_16 += hp->ref16[b * row_elems + i] * hp->ref16[b * row_elems + i];
                n16++;
            }
        for (int h = 0; h < c->hq; h++) {
            const double got = lse[(int64_t)b * c->hq + h], want = ref_lse[h];
            if (c->no_lse) {
                /* not requested: must stay untouched (still the NaN poison) */
                lse_bad += !isnan(got);
            } else if (isinf(want)) {
                lse_bad += !(isinf(got) && got < 0);
            } else {
                const double le = fabs(got - want);
                if (!(le <= max_lse_err))
                    max_lse_err = le;
                lse_bad += !(le <= 1e-3 + 1e-4 * fabs(want));
            }
        }
    }
    const double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    const double bound = 2.0 * hp->max_err32 + 1e-5;
    /* A quantized cache: the tight check above is against the values the cache holds; the
     * error against the FP16 rows it was written from is the quantization's own
     * (docs/kv-quant.md), bounded loosely where the logits are moderate. */
    double rel16 = 0.0;
    int loose_ok = 1;
    if (hp->ref16) {
        rel16 = r2_16 > 0 ? sqrt(e2_16 / r2_16) : 0.0;
        const double loose = c->kv_dtype == FAI_DTYPE_INT8 ? 0.03 : c->kv_dtype == FAI_DTYPE_FP8_E4M3 ? 0.08 : 0.16;
        /* (the same RMS floor as rel_ok below where the reference's norm is near zero) */
        loose_ok = c->q_std > 1.0f || rel16 <= loose || sqrt(e2_16 / n16) <= 1e-6;
    }
    /* (a reference of near-zero norm, e.g. under a sink far above every logit, makes the
     * relative error meaningless: there an RMS error under 1e-6 passes) */
    const double n_checked = ref2 > 0 ? (double)row_elems : 1.0;
    const int rel_ok = rel <= rel_tol || sqrt(err2 / n_checked) <= 1e-6;
    const int ok = nonfinite == 0 && rel_ok && seq_bad == 0 && max_err <= bound && lse_bad == 0 && loose_ok;
    printf("  %-9s %-40s rel_l2 %.2e  max_err %.2e (bound %.2e)  lse_err %.1e", round, c->name, rel, max_err, bound,
           max_lse_err);
    if (!unquantized(c->kv_dtype))
        printf("  vs %s %.2e", c->bf16 ? "bf16" : "fp16", rel16);
    printf("  %s\n", ok ? "ok" : "FAIL");
    if (!ok) {
        printf("        non-finite outputs %lld, bad lse %d, sequences over the rel L2 bound %d", (long long)nonfinite,
               lse_bad, seq_bad);
        if (seq_bad)
            printf(" (worst: sequence %d of length %d, rel L2 %.2e)", worst_seq, hp->lens[worst_seq], worst_seq_rel);
        printf("\n");
        fails++;
    }
    free(o); free(ob); free(lse);
    return fails;
}

static void random_lens(fai_ref_rng *rng, const decode_case *c, int *lens)
{
    for (int b = 0; b < c->batch; b++)
        lens[b] = c->lens ? c->lens[b] : (int)(fai_ref_rng_uniform(rng) * (c->capacity + 1));
}

static int run_case(const decode_case *c, int index)
{
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, g_seed * 1000003u + (uint64_t)index);
    device_problem dp;
    memset(&dp, 0, sizeof dp);
    host_problem hp;
    memset(&hp, 0, sizeof hp);
    const int d = c->d;

    /* Q (and O) buffers: plain [batch, hq, d], or a fused [batch, hq + 2 hk, d] QKV buffer
     * with O head-major. */
    fai_decode_params *p = &dp.p;
    *p = fai_decode_params_default();
    p->attn.num_q_heads = c->hq;
    p->attn.num_kv_heads = c->hk;
    p->attn.head_dim = d;
    p->attn.softmax_scale = 1.0f / sqrtf((float)d);
    p->attn.alibi = c->alibi != 0;
    p->batch = c->batch;
    const int64_t q_row = c->fused ? (int64_t)(c->hq + 2 * c->hk) * d : (int64_t)c->hq * d;
    CUDA_CHECK(cudaMalloc(&dp.q_buf, (size_t)(c->batch * q_row * 2 + 16)));
    CUDA_CHECK(cudaMalloc(&dp.o_buf, (size_t)((int64_t)c->batch * c->hq * d * 2 + 16)));
    g_bf16 = c->bf16;
    p->q.dtype = p->o.dtype = c->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    p->q.data = dp.q_buf;
    p->q.token_stride = q_row;
    p->q.head_stride = d;
    p->o.data = dp.o_buf;
    p->o.token_stride = c->fused ? d : (int64_t)c->hq * d;
    p->o.head_stride = c->fused ? (int64_t)c->batch * d : d;

    /* The cache, NaN (or huge) everywhere but the valid rows: FP16 0xffff is NaN, 0x5a5a is
     * 203.25; as codes 0xff is int8 -1 with a NaN scale (0xffffffff), FP8 NaN; 0x5a is int8
     * 90 with a scale of 1.5e16, E4M3 20, E5M2 192. */
    fai_kv_cache *kc = &p->cache;
    kc->dtype = c->kv_dtype;
    const int eb = unquantized(c->kv_dtype) ? 2 : 1;
    /* A paged cache: a pool of pages (3 spare, never referenced: still poisoned) in scrambled
     * order; table entries past a sequence's pages hold page numbers out of range, which the
     * kernels must never use. */
    const int pages_per_seq = c->page_size ? (c->capacity + c->page_size - 1) / c->page_size : 0;
    const int num_pages = c->batch * pages_per_seq + 3;
    int32_t *table_dev = NULL;
    if (c->page_size) {
        dp.table_stride = pages_per_seq + 1;
        dp.table_host = malloc(sizeof(int32_t) * (size_t)c->batch * dp.table_stride);
        int32_t *perm = malloc(sizeof(int32_t) * (size_t)num_pages);
        for (int i = 0; i < num_pages; i++)
            perm[i] = i;
        for (int i = num_pages - 1; i > 0; i--) {
            const int j = (int)(fai_ref_rng_uniform(&rng) * (i + 1)) % (i + 1);
            const int32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int b = 0; b < c->batch; b++) {
            for (int i = 0; i < pages_per_seq; i++)
                dp.table_host[(int64_t)b * dp.table_stride + i] =
                    b == 1 && i < c->shared_pages ? perm[i] : perm[b * pages_per_seq + i];
            dp.table_host[(int64_t)b * dp.table_stride + pages_per_seq] = b % 2 ? -7 : num_pages + 100;
        }
        free(perm);
        CUDA_CHECK(cudaMalloc((void **)&table_dev, sizeof(int32_t) * (size_t)c->batch * dp.table_stride));
        CUDA_CHECK(cudaMemcpy(table_dev, dp.table_host, sizeof(int32_t) * (size_t)c->batch * dp.table_stride,
                              cudaMemcpyHostToDevice));
        kc->page_table = table_dev;
        kc->page_table_stride = dp.table_stride;
        kc->page_size = c->page_size;
        kc->num_pages = num_pages;
    }
    dp.kv_elems = c->page_size ? (int64_t)num_pages * c->page_size * c->hk * d
                               : (int64_t)c->batch * c->capacity * c->hk * d;
    CUDA_CHECK(cudaMalloc(&dp.k, (size_t)(dp.kv_elems * eb + 16)));
    CUDA_CHECK(cudaMalloc(&dp.v, (size_t)(dp.kv_elems * eb + 16)));
    CUDA_CHECK(cudaMemset(dp.k, c->huge_tail ? 0x5a : 0xff, (size_t)dp.kv_elems * eb));
    CUDA_CHECK(cudaMemset(dp.v, c->huge_tail ? 0x5a : 0xff, (size_t)dp.kv_elems * eb));
    const int slots = c->page_size ? num_pages : c->batch, rows = c->page_size ? c->page_size : c->capacity;
    if (c->kv_dtype == FAI_DTYPE_INT8) {
        const int64_t ns = (int64_t)slots * rows * c->hk;
        /* FAI_SCALES_BF16X2: one word per (token, head) at k_scale, the same poison (BF16 NaN
         * 0xffff, or 0x5a5a: 1.5e16) */
        kc->scale_format = c->scale_pairs ? FAI_SCALES_BF16X2 : FAI_SCALES_FP32;
        CUDA_CHECK(cudaMalloc((void **)&kc->k_scale, sizeof(float) * (size_t)(ns + 1)));
        CUDA_CHECK(cudaMemset(kc->k_scale, c->huge_tail ? 0x5a : 0xff, sizeof(float) * (size_t)ns));
        if (!c->scale_pairs) {
            CUDA_CHECK(cudaMalloc((void **)&kc->v_scale, sizeof(float) * (size_t)(ns + 1)));
            CUDA_CHECK(cudaMemset(kc->v_scale, c->huge_tail ? 0x5a : 0xff, sizeof(float) * (size_t)ns));
        }
        /* the scales in the cache's own order: [batch, capacity, hk] or [batch, hk, capacity] */
        kc->scale_seq_stride = (int64_t)rows * c->hk;
        kc->scale_token_stride = c->hnd ? 1 : c->hk;
        kc->scale_head_stride = c->hnd ? rows : 1;
    }
    kc->k = dp.k;
    kc->v = dp.v;
    kc->capacity = c->capacity;
    kc->max_seq_len = c->max_seq_len;
    kc->seq_stride = (int64_t)rows * c->hk * d; /* a sequence's slot, or a page */
    kc->token_stride = c->hnd ? d : (int64_t)c->hk * d;
    kc->head_stride = c->hnd ? (int64_t)rows * d : d;
    CUDA_CHECK(cudaMalloc((void **)&dp.lens_dev, sizeof(int32_t) * (size_t)(c->batch + 1)));
    kc->seq_lens = dp.lens_dev;
    CUDA_CHECK(cudaMalloc((void **)&dp.lse_dev, sizeof(float) * (size_t)(c->batch * c->hq + 1)));
    p->lse = c->no_lse ? NULL : dp.lse_dev;

    hp.slopes = malloc(sizeof(double) * (size_t)c->hq);
    fai_ref_alibi_slopes(c->hq, hp.slopes);
    if (c->alibi >= 2) {
        float *fs = malloc(sizeof(float) * (size_t)c->hq);
        for (int h = 0; h < c->hq; h++) {
            fs[h] = c->alibi == 3 ? 8.0f : (float)(0.01 + 0.99 * fai_ref_rng_uniform(&rng));
            hp.slopes[h] = fs[h];
        }
        CUDA_CHECK(cudaMalloc((void **)&dp.slopes_dev, sizeof(float) * (size_t)c->hq));
        CUDA_CHECK(cudaMemcpy(dp.slopes_dev, fs, sizeof(float) * (size_t)c->hq, cudaMemcpyHostToDevice));
        p->attn.alibi_slopes = dp.slopes_dev;
        free(fs);
    }

    /* The variants. */
    p->attn.window = c->window_left != 0;
    p->attn.window_left = c->window_left;
    p->attn.window_right = -1;
    p->attn.softcap = c->softcap;
    hp.sinks = malloc(sizeof(double) * (size_t)c->hq);
    float *sinks_dev = NULL;
    if (c->sinks) {
        float *fs = malloc(sizeof(float) * (size_t)c->hq);
        for (int h = 0; h < c->hq; h++) {
            fs[h] = c->sinks == 2 ? 30.0f : c->sinks == 3 ? -30.0f : (float)(4.0 * fai_ref_rng_uniform(&rng) - 2.0);
            hp.sinks[h] = fs[h];
        }
        CUDA_CHECK(cudaMalloc((void **)&sinks_dev, sizeof(float) * (size_t)c->hq));
        CUDA_CHECK(cudaMemcpy(sinks_dev, fs, sizeof(float) * (size_t)c->hq, cudaMemcpyHostToDevice));
        p->attn.sinks = sinks_dev;
        free(fs);
    }

    hp.q = malloc(sizeof(float) * (size_t)((int64_t)c->batch * c->hq * d + 1));
    hp.k = calloc((size_t)c->batch + 1, sizeof(float *));
    hp.v = calloc((size_t)c->batch + 1, sizeof(float *));
    hp.k16 = calloc((size_t)c->batch + 1, sizeof(float *));
    hp.v16 = calloc((size_t)c->batch + 1, sizeof(float *));
    g_append_mismatches = 0;
    hp.lens = calloc((size_t)c->batch + 1, sizeof(int));
    int *raw = calloc((size_t)c->batch + 1, sizeof(int));
    random_lens(&rng, c, raw);
    const double t_inputs = wall_seconds();
    upload_inputs(c, &rng, &dp, &hp, raw);
    g_input_seconds += wall_seconds() - t_inputs;

    int fails = 0;
    fai_status s = fai_decode_workspace_size(p, &dp.ws_bytes);
    if (s != FAI_SUCCESS) {
        printf("  %s: workspace_size: %s: %s\n", c->name, fai_status_string(s), fai_last_error());
        return 1;
    }
    if (dp.ws_bytes) { /* poisoned: the workspace needs no clearing */
        CUDA_CHECK(cudaMalloc(&dp.ws, dp.ws_bytes));
        CUDA_CHECK(cudaMemset(dp.ws, 0xff, dp.ws_bytes));
    }
    fai_decode_plan plan = {0};
    const int planned_len = c->max_seq_len > 0 ? c->max_seq_len : c->capacity;
    fai_decode_make_plan_kv("test", c->kv_dtype, c->page_size, c->batch, c->hq, c->hk, d, planned_len, g_dev,
                            FAI_DECODE_AUTO, 0, 0, 0, &plan);
    printf("%s [%s]: batch %d, heads %d/%d, d %d, capacity %d; plan: %s, %d heads/block, %d warps, %d splits%s\n",
           c->name, dtype_short(c->kv_dtype), c->batch, c->hq, c->hk, d, c->capacity,
           plan.kernel == FAI_DECODE_MMA ? "tensor cores" : "CUDA cores", plan.heads_per_block, plan.warps_per_block,
           plan.num_splits, plan.split_from ? " (a split tail)" : "");
    if (g_append_mismatches) {
        printf("  fai_kv_append: %lld rows or scales differ from the host codec: FAIL\n",
               (long long)g_append_mismatches);
        fails++;
    }

    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    poison_outputs(c, &dp);
    if (!c->graph) {
        if (dp.ws_bytes) { /* a workspace a byte short: refused, with a message naming it */
            s = fai_decode(p, dp.ws, dp.ws_bytes - 1, stream);
            CUDA_CHECK(cudaStreamSynchronize(stream));
            if (s != FAI_ERROR_BAD_PARAM_WORKSPACE || !strstr(fai_last_error(), "workspace")) {
                printf("  fai_decode with a workspace a byte short: %s (%s): FAIL\n", fai_status_string(s),
                       fai_last_error());
                fails++;
            }
        }
        s = fai_decode(p, dp.ws, dp.ws_bytes, stream);
        if (s != FAI_SUCCESS) {
            printf("  fai_decode: %s: %s\n", fai_status_string(s), fai_last_error());
            return 1;
        }
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaGetLastError());
        fails += check_outputs(c, "call", &dp, &hp);
        /* The same problem under other plans than the heuristic's: the other kernel, more or
         * fewer warps, forced splits, a split tail (one-byte caches on tensor cores: the items
         * from a third of the grid on split, those before whole; one item alone is split).
         * Every plan must compute the same function. */
        const int forced[][5] = {{FAI_DECODE_SIMT, 8, 1, 0, 0}, {FAI_DECODE_SIMT, 1, 3, 0, 0},
                                 {FAI_DECODE_MMA, 0, 1, 2, 0},
                                 {FAI_DECODE_MMA, 0, 5, 6, 3}}; /* kernel, warps, splits, stages, tail_div */
        for (int f = 0; f < 4; f++) {
            fai_decode_plan alt;
            fai_decode_make_plan_kv("test", c->kv_dtype, c->page_size, c->batch, c->hq, c->hk, d, planned_len,
                                    g_dev, forced[f][0], forced[f][2], forced[f][1], forced[f][3], &alt);
            if (alt.kernel != forced[f][0])
                continue; /* no tensor-core kernel for head dim 256 */
            if (forced[f][4]) {
                const int items = c->batch * c->hk * alt.head_blocks;
                fai_decode_plan_tail(&alt, c->kv_dtype, c->batch, c->hq, c->hk, items / forced[f][4], alt.num_splits);
            }
            void *ws = NULL;
            if (alt.workspace_bytes) {
                CUDA_CHECK(cudaMalloc(&ws, alt.workspace_bytes));
                CUDA_CHECK(cudaMemset(ws, 0xff, alt.workspace_bytes));
            }
            poison_outputs(c, &dp);
            s = fai_decode_run_plan("test", p, &alt, ws, alt.workspace_bytes, stream);
            if (s != FAI_SUCCESS) {
                printf("  fai_decode_run_plan: %s: %s\n", fai_status_string(s), fai_last_error());
                return 1;
            }
            CUDA_CHECK(cudaStreamSynchronize(stream));
            CUDA_CHECK(cudaGetLastError());
            char label[48];
            int at = snprintf(label, sizeof label, "%s%dw%ds", alt.kernel == FAI_DECODE_MMA ? "mma" : "simt",
                              alt.kernel == FAI_DECODE_MMA ? alt.stages : alt.warps_per_block, alt.num_splits);
            if (alt.split_from) /* the split tail's first item */
                snprintf(label + at, sizeof label - (size_t)at, "t%d", alt.split_from);
            fails += check_outputs(c, label, &dp, &hp);
            cudaFree(ws);
        }
    } else {
        /* Global capture mode fails on any device sync or allocation inside the call. */
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
        s = fai_decode(p, dp.ws, dp.ws_bytes, stream);
        CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
        if (s != FAI_SUCCESS) {
            printf("  fai_decode under capture: %s: %s\n", fai_status_string(s), fai_last_error());
            return 1;
        }
        CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        fails += check_outputs(c, "graph", &dp, &hp);
        /* New Q, K, V values and new lengths (within the planned maximum), same graph. */
        for (int b = 0; b < c->batch; b++)
            raw[b] = (int)(fai_ref_rng_uniform(&rng) * (planned_len + 1));
        upload_inputs(c, &rng, &dp, &hp, raw);
        if (g_append_mismatches) {
            printf("  fai_kv_append (new values): %lld rows or scales differ: FAIL\n", (long long)g_append_mismatches);
            fails++;
        }
        poison_outputs(c, &dp);
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        fails += check_outputs(c, "graph2", &dp, &hp);
        CUDA_CHECK(cudaGraphExecDestroy(exec));
        CUDA_CHECK(cudaGraphDestroy(graph));
    }
    CUDA_CHECK(cudaStreamDestroy(stream));
    for (int b = 0; b < c->batch; b++) {
        free(hp.k[b]);
        free(hp.v[b]);
        free(hp.k16[b]);
        free(hp.v16[b]);
    }
    free(hp.k); free(hp.v); free(hp.k16); free(hp.v16); free(hp.q); free(hp.lens); free(hp.slopes); free(raw);
    free(hp.sinks);
    free(hp.ref); free(hp.ref_lse); free(hp.ref16);
    cudaFree(sinks_dev);
    cudaFree(dp.q_buf); cudaFree(dp.o_buf); cudaFree(dp.k); cudaFree(dp.v); cudaFree(dp.ws);
    cudaFree(kc->k_scale); cudaFree(kc->v_scale); cudaFree(table_dev);
    free(dp.table_host);
    cudaFree(dp.lens_dev); cudaFree(dp.lse_dev); cudaFree(dp.slopes_dev);
    return fails;
}

static const int lens_mixed[] = {1, 17, 127, 129, 1000, 0};
static const int lens_guard[] = {-5, 300, 7, 0}; /* capacity 200: -5 -> 0, 300 -> 200 */
static const int lens_long[] = {70000};
static const int lens_split_var[] = {0, 5000, 1, 100000};
static const int lens_empty[] = {0, 0, 0};

/* A row of the variant tables (window, soft-cap, sinks; over any cache dtype, contiguous or
 * paged): every case checks every call (check_every 1); "HND" and "shared prefix" in the name
 * ask for HND pages and a prefix of 3 shared pages. */
typedef struct variant_row {
    const char *name;
    int b, hq, hk, d, cap, wl;
    float softcap, q_std;
    int sinks, alibi, ps;
    fai_dtype dt;
    const int *lens;
} variant_row;

static decode_case variant_case(const variant_row *r)
{
    decode_case c = {0};
    c.name = r->name;
    c.batch = r->b; c.hq = r->hq; c.hk = r->hk; c.d = r->d; c.capacity = r->cap;
    c.lens = r->lens; c.alibi = r->alibi; c.q_std = r->q_std; c.check_every = 1;
    c.window_left = r->wl; c.softcap = r->softcap; c.sinks = r->sinks; c.page_size = r->ps;
    c.hnd = strstr(c.name, "HND") != NULL;
    c.shared_pages = strstr(c.name, "shared prefix") ? 3 : 0;
    c.kv_dtype = r->dt;
    c.bf16 = r->dt == FAI_DTYPE_BF16;
    return c;
}

/* --random N: N cases drawn from the seed with every option combined at random, the ones the
 * tables above pair only by hand: any cache dtype with any page size, head layout, window,
 * soft-cap, sinks, ALiBi, q dtype, scale format, graph capture, length guard and planning hint
 * (each case still runs the heuristic's plan and the forced ones). Sizes are held so that a
 * case takes seconds: long caches come with few sequences and heads. */
static decode_case random_case(fai_ref_rng *r, int index, char *name, size_t name_size, int *lens)
{
    static const fai_dtype dts[] = {FAI_DTYPE_FP16, FAI_DTYPE_BF16, FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3,
                                    FAI_DTYPE_FP8_E5M2};
    static const int pages[] = {1, 2, 4, 8, 16, 16, 32, 64, 128, 256};
    static const float caps[] = {5.0f, 20.0f, 30.0f, 50.0f};
    static const float stds[] = {1.0f, 1.0f, 1.0f, 3.0f, 15.0f};
    decode_case c = {0};
    random_heads(r, 16, &c.d, &c.hq, &c.hk);
    const double u = fai_ref_rng_uniform(r);
    if (u < 0.6) { /* short caches, up to 24 sequences */
        c.capacity = 1 + fai_ref_rng_below(r, 1200);
        c.batch = 1 + fai_ref_rng_below(r, 24);
    } else if (u < 0.85) {
        c.capacity = 1200 + fai_ref_rng_below(r, 8000);
        c.batch = 1 + fai_ref_rng_below(r, 6);
    } else if (u < 0.95) { /* past 64K keys: splits */
        c.capacity = 9000 + fai_ref_rng_below(r, 61000);
        c.batch = 1 + fai_ref_rng_below(r, 2);
        if (c.hq > 32)
            c.hq = c.hk;
    } else { /* many short sequences */
        c.capacity = 1 + fai_ref_rng_below(r, 300);
        c.batch = 100 + fai_ref_rng_below(r, 200);
    }
    for (int b = 0; b < c.batch; b++) {
        const double v = fai_ref_rng_uniform(r);
        lens[b] = v < 0.12  ? 0
                  : v < 0.2  ? 1
                  : v < 0.3  ? c.capacity
                  : v < 0.33 ? -5 /* the device-side guard clamps these */
                  : v < 0.35 ? c.capacity + 77
                             : fai_ref_rng_below(r, c.capacity + 1);
    }
    c.lens = lens;
    c.hnd = fai_ref_rng_chance(r, 0.5);
    c.fused = fai_ref_rng_chance(r, 0.2);
    c.alibi = fai_ref_rng_chance(r, 0.6) ? 0 : 1 + fai_ref_rng_below(r, 3);
    c.q_std = stds[fai_ref_rng_below(r, 5)];
    c.huge_tail = fai_ref_rng_chance(r, 0.15);
    c.max_seq_len = fai_ref_rng_chance(r, 0.1) ? 1 + fai_ref_rng_below(r, c.capacity) : 0;
    c.check_every = 1;
    c.graph = fai_ref_rng_chance(r, 0.1);
    c.no_lse = fai_ref_rng_chance(r, 0.1);
    c.kv_dtype = dts[fai_ref_rng_below(r, 5)];
    c.bf16 = c.kv_dtype == FAI_DTYPE_BF16 || (!unquantized(c.kv_dtype) && fai_ref_rng_chance(r, 0.5));
    if (fai_ref_rng_chance(r, 0.3))
        c.window_left = fai_ref_rng_chance(r, 0.1)   ? -1
                        : fai_ref_rng_chance(r, 0.5) ? 1 + fai_ref_rng_below(r, 64)
                                                     : 1 + fai_ref_rng_below(r, c.capacity + 10);
    if (fai_ref_rng_chance(r, 0.25))
        c.softcap = caps[fai_ref_rng_below(r, 4)];
    c.sinks = fai_ref_rng_chance(r, 0.75) ? 0 : 1 + fai_ref_rng_below(r, 3);
    c.page_size = fai_ref_rng_chance(r, 0.4) ? 0 : pages[fai_ref_rng_below(r, 10)];
    c.shared_pages = c.page_size && c.batch >= 2 && fai_ref_rng_chance(r, 0.3) ? 1 + fai_ref_rng_below(r, 3) : 0;
    c.scale_pairs = c.kv_dtype == FAI_DTYPE_INT8 && fai_ref_rng_chance(r, 0.5);
    snprintf(name, name_size,
             "random %d: b%d h%d/%d d%d cap %d %s%s%s%s%s page %d%s%s alibi %d window %d softcap %g sinks %d%s%s%s",
             index, c.batch, c.hq, c.hk, c.d, c.capacity, dtype_short(c.kv_dtype), c.bf16 ? " bf16q" : "",
             c.scale_pairs ? " bf16x2" : "", c.hnd ? " HND" : "", c.fused ? " fused" : "", c.page_size,
             c.shared_pages ? " shared" : "", c.huge_tail ? " huge-tail" : "", c.alibi, c.window_left,
             (double)c.softcap, c.sinks, c.graph ? " graph" : "", c.no_lse ? " no-lse" : "",
             c.max_seq_len ? " hint" : "");
    c.name = name;
    return c;
}

/* The cases of the tables: every head dim, ratio and cache dtype, the shapes that stress the
 * cache walk, the variants, paged caches, BF16 and the BF16X2 scales. */
static int table_cases(decode_case *cases, int small)
{
    int n = 0;
    static char names[128][64];
    /* Every head dim x GQA ratio (1, 4, 7, 8, MQA 8 and 32), odd lengths, ALiBi alternating. */
    const int dims[] = {64, 96, 128, 256};
    const int heads[][2] = {{8, 8}, {16, 4}, {14, 2}, {16, 2}, {8, 1}, {32, 1}};
    for (int di = 0; di < 4; di++)
        for (int hi = 0; hi < 6; hi++) {
            decode_case c = {0};
            snprintf(names[n], sizeof names[n], "d%d h%d/%d mixed lens%s", dims[di], heads[hi][0], heads[hi][1],
                     (di + hi) % 2 ? " alibi" : "");
            c.name = names[n];
            c.batch = 6; c.hq = heads[hi][0]; c.hk = heads[hi][1]; c.d = dims[di]; c.capacity = 1000;
            c.lens = lens_mixed; c.alibi = (di + hi) % 2; c.q_std = 1.0f;
            cases[n++] = c;
        }
    decode_case extra[] = {
        {"HND cache, fused QKV view, head-major O", 5, 32, 8, 128, 700, NULL, 1, 1, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"ALiBi standard slopes, 12 heads", 4, 12, 4, 128, 900, NULL, 0, 0, 1, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"ALiBi caller slopes", 4, 16, 16, 64, 900, NULL, 0, 0, 2, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"very negative logits (slope 8)", 3, 8, 2, 128, 1000, NULL, 0, 0, 3, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"logits to +-50", 4, 16, 4, 128, 1000, NULL, 0, 0, 0, 15.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"huge keys past the length", 6, 8, 8, 128, 1000, lens_mixed, 0, 0, 0, 1.0f, 1, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"length guard (-5, > capacity)", 4, 8, 4, 64, 200, lens_guard, 0, 0, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"all sequences empty", 3, 8, 8, 128, 64, lens_empty, 0, 0, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"split-KV GQA 32/8, 70000 keys", 1, 32, 8, 128, 70000, lens_long, 0, 0, 1, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"split-KV varlen, d256", 4, 4, 4, 256, 100000, lens_split_var, 1, 0, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"planning hint below the lengths", 4, 4, 4, 256, 100000, lens_split_var, 0, 0, 0, 1.0f, 0, 300, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"batch 2048, short lengths", 2048, 8, 8, 64, 64, NULL, 0, 0, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"CUDA graph, split, new values and lengths", 2, 32, 8, 128, 20000, NULL, 0, 0, 1, 1.0f, 0, 0, 1, 1, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"CUDA graph, no split", 64, 8, 8, 128, 300, NULL, 0, 0, 0, 1.0f, 0, 0, 1, 1, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        /* Partial trailing head blocks: 24 = 16 + 8 rows on tensor cores, 12 = 8 + 4 heads on
         * CUDA cores (its forced plans); and no LSE requested, split and not. */
        {"MQA 24/1, partial head block", 3, 24, 1, 128, 3000, NULL, 0, 0, 1, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"MQA 12/1, partial head block, d256", 3, 12, 1, 256, 3000, NULL, 0, 0, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
        {"lse NULL, split", 1, 16, 4, 64, 40000, lens_long, 0, 0, 0, 1.0f, 0, 0, 1, 0, 1, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        cases[n++] = extra[i];
    /* Quantized caches, written by fai_kv_append: every head dim with a rotating head layout,
     * and the cases above that stress the cache walk (HND order, the guard on lengths, NaN
     * and huge values past the length, > 64K keys with splits, graphs, partial head blocks). */
    static char qnames[64][80];
    int nq = 0;
    const fai_dtype qtypes[] = {FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2};
    const int qextra[] = {0, 2, 4, 5, 6, 8, 9, 12, 14}; /* indexes into extra[] */
    for (int ti = 0; ti < 3; ti++) {
        for (int di = 0; di < 4; di++) {
            const int hi = (di + 2 * ti) % 6;
            decode_case c = {0};
            snprintf(qnames[nq], sizeof qnames[nq], "d%d h%d/%d mixed lens%s", dims[di], heads[hi][0], heads[hi][1],
                     (di + ti) % 2 ? " alibi" : "");
            c.name = qnames[nq++];
            c.batch = 6; c.hq = heads[hi][0]; c.hk = heads[hi][1]; c.d = dims[di]; c.capacity = 1000;
            c.lens = lens_mixed; c.alibi = (di + ti) % 2; c.q_std = 1.0f;
            c.kv_dtype = qtypes[ti];
            cases[n++] = c;
        }
        for (size_t i = 0; i < sizeof qextra / sizeof qextra[0]; i++) {
            decode_case c = extra[qextra[i]];
            c.kv_dtype = qtypes[ti];
            cases[n++] = c;
        }
    }
    /* The variants (shared/guides/correctness.md): sliding windows smaller than, equal to and
     * larger than the lengths (with splits: 20000 and 70000 keys), soft-cap with logits far
     * beyond the cap, sinks far above and below every logit, the combinations of gpt-oss
     * (window + sinks + GQA) and Gemma 2 (window + soft-cap), on FP16 and quantized caches. */
    {
        static const variant_row v[] = {
            {"window 64 (lengths 1..1000)", 6, 16, 4, 128, 1000, 64, 0, 1, 0, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"window_left 1 (two keys)", 6, 8, 8, 64, 1000, 1, 0, 1, 0, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"window = length 1000", 6, 8, 2, 128, 1000, 999, 0, 1, 0, 1, 0, FAI_DTYPE_FP16, lens_mixed},
            {"window 4096 of 70000 keys, split", 1, 32, 8, 128, 70000, 4096, 0, 1, 0, 0, 0, FAI_DTYPE_FP16, lens_long},
            {"soft-cap 30, logits to +-100", 4, 16, 4, 128, 1000, 0, 30.0f, 30, 0, 0, 0, FAI_DTYPE_FP16, NULL},
            {"soft-cap 5, MHA d256", 4, 8, 8, 256, 900, 0, 5.0f, 3, 0, 1, 0, FAI_DTYPE_FP16, NULL},
            {"sinks random", 6, 16, 4, 96, 1000, 0, 0, 1, 1, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"sinks +30 (above every logit)", 6, 8, 8, 128, 1000, 0, 0, 1, 2, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"sinks -30, empty sequences", 3, 8, 2, 64, 64, 0, 0, 1, 3, 0, 0, FAI_DTYPE_FP16, lens_empty},
            {"sinks, split 70000 keys", 1, 32, 8, 128, 70000, 0, 0, 1, 1, 1, 0, FAI_DTYPE_FP16, lens_long},
            {"gpt-oss: window 128 + sinks, GQA 64/8", 4, 64, 8, 64, 3000, 128, 0, 1, 1, 0, 0, FAI_DTYPE_FP16, NULL},
            {"Gemma 2: window 4096 + soft-cap 50", 3, 16, 8, 256, 9000, 4096, 50.0f, 20, 0, 0, 0, FAI_DTYPE_FP16, NULL},
            {"gpt-oss on int8", 4, 64, 8, 64, 3000, 128, 0, 1, 1, 0, 0, FAI_DTYPE_INT8, NULL},
            {"Gemma 2 on FP8 E4M3, split", 1, 16, 8, 128, 20000, 4096, 50.0f, 20, 0, 0, 0, FAI_DTYPE_FP8_E4M3, NULL},
            {"window + sinks on E5M2, MHA", 6, 8, 8, 128, 1000, 100, 0, 1, 1, 1, 0, FAI_DTYPE_FP8_E5M2, lens_mixed},
        };
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            cases[n++] = variant_case(&v[i]);
    }
    /* Paged caches: page sizes 1, 16 and 256, scrambled pages, sequences ending mid-page and
     * empty ones, a shared prefix, every cache dtype, both kernels, splits. */
    {
        static const struct { const char *name; int b, hq, hk, d, cap, ps, shared, hnd; fai_dtype dt;
                               const int *lens; } pg[] = {
            {"paged 16, mixed lens", 6, 16, 4, 128, 1000, 16, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"paged 1, MHA", 6, 8, 8, 64, 1000, 1, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"paged 256, HND pages, d256", 6, 8, 8, 256, 1000, 256, 0, 1, FAI_DTYPE_FP16, lens_mixed},
            {"paged 16, shared prefix of 3 pages", 4, 32, 8, 128, 700, 16, 3, 0, FAI_DTYPE_FP16, NULL},
            {"paged 16, split 70000 keys", 1, 32, 8, 128, 70000, 16, 0, 0, FAI_DTYPE_FP16, lens_long},
            {"paged 16 int8", 6, 16, 4, 128, 1000, 16, 0, 0, FAI_DTYPE_INT8, lens_mixed},
            /* HND pages: a head's scales of a page side by side (token stride 1) */
            {"paged 16 int8, MHA, HND", 6, 8, 8, 128, 1000, 16, 0, 1, FAI_DTYPE_INT8, lens_mixed},
            {"paged 1 int8, MHA, HND", 6, 8, 8, 64, 1000, 1, 0, 1, FAI_DTYPE_INT8, lens_mixed},
            {"paged 256 E4M3, shared prefix", 4, 16, 2, 128, 2000, 256, 1, 0, FAI_DTYPE_FP8_E4M3, NULL},
            {"paged 16 E5M2, MHA", 6, 8, 8, 96, 1000, 16, 0, 0, FAI_DTYPE_FP8_E5M2, lens_mixed},
            /* pages smaller than a tile or a warp's step (one page lookup per key), and
             * windows whose first key is not run-aligned (runs mixing both lookups) */
            {"paged 8, GQA, window 333", 6, 16, 4, 128, 1000, 8, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"paged 4 E4M3, MHA, window 77", 6, 8, 8, 128, 1000, 4, 0, 0, FAI_DTYPE_FP8_E4M3, lens_mixed},
            {"paged 32 int8, GQA, window 1001", 3, 32, 8, 64, 3000, 32, 0, 1, FAI_DTYPE_INT8, lens_mixed},
            /* tiles across pages (a page lookup per row) at head dim 96, and int8 GQA */
            {"paged 2, GQA, d96", 5, 16, 4, 96, 1000, 2, 0, 0, FAI_DTYPE_FP16, lens_mixed},
            {"paged 1 E5M2, MQA, d96, HND", 5, 8, 1, 96, 1000, 1, 0, 1, FAI_DTYPE_FP8_E5M2, lens_mixed},
            {"paged 1 int8, GQA", 3, 32, 8, 128, 1000, 1, 0, 0, FAI_DTYPE_INT8, lens_mixed},
            /* large batches over a paged pool (random lengths 0..300, scrambled pages) */
            {"paged 16, batch 512, GQA", 512, 32, 8, 128, 300, 16, 0, 0, FAI_DTYPE_FP16, NULL},
            {"paged 16 int8, batch 512, MHA, HND", 512, 16, 16, 64, 300, 16, 0, 1, FAI_DTYPE_INT8, NULL},
            /* one-byte caches on tensor cores over more than a wave of blocks, the last one
             * part empty: planned with a split tail on an H100 (132 SMs) */
            {"paged 16 int8, MHA, 288 items (split tail)", 9, 32, 32, 128, 3000, 16, 0, 0, FAI_DTYPE_INT8, NULL},
            {"int8 GQA 32/8, 320 items (split tail)", 40, 32, 8, 128, 1500, 0, 0, 0, FAI_DTYPE_INT8, NULL},
            {"E5M2 MHA d64, 704 items (split tail)", 22, 32, 32, 64, 1200, 0, 0, 1, FAI_DTYPE_FP8_E5M2, NULL},
        };
        for (size_t i = 0; i < sizeof pg / sizeof pg[0]; i++) {
            decode_case c = {0};
            c.name = pg[i].name;
            c.batch = pg[i].b; c.hq = pg[i].hq; c.hk = pg[i].hk; c.d = pg[i].d; c.capacity = pg[i].cap;
            c.lens = pg[i].lens; c.q_std = 1.0f; c.page_size = pg[i].ps; c.shared_pages = pg[i].shared;
            c.hnd = pg[i].hnd; c.kv_dtype = pg[i].dt; c.alibi = (int)(i % 2);
            const char *w = strstr(c.name, "window ");
            c.window_left = w ? atoi(w + 7) : 0;
            cases[n++] = c;
        }
    }
    /* Soft-cap over int8 caches: the cap's tanh on scores from codes and per-row scales, on
     * both kernels (every case runs the forced plans: CUDA cores and tensor cores, split and
     * not), contiguous and paged, GQA; logits far beyond the cap; with a window and sinks. */
    {
        static const variant_row sc[] = {
            {"int8 soft-cap 30, logits to +-40, GQA 32/8", 4, 32, 8, 128, 1000, 0, 30.0f, 10, 0, 0, 0, FAI_DTYPE_INT8, NULL},
            {"paged 16 int8, soft-cap 30, GQA 16/4", 6, 16, 4, 128, 1000, 0, 30.0f, 10, 0, 1, 16, FAI_DTYPE_INT8, lens_mixed},
            {"int8 soft-cap 5, logits to +-100, GQA 16/2 d64", 4, 16, 2, 64, 1000, 0, 5.0f, 30, 0, 0, 0, FAI_DTYPE_INT8, NULL},
            {"int8 window 200 + sinks + soft-cap 20, GQA 16/4 d96", 6, 16, 4, 96, 1000, 200, 20.0f, 4, 1, 1, 0, FAI_DTYPE_INT8,
             lens_mixed},
            {"paged 8 int8, window 333 + sinks + soft-cap 30, 32/8", 6, 32, 8, 64, 1000, 333, 30.0f, 8, 1, 0, 8, FAI_DTYPE_INT8,
             lens_mixed},
        };
        for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++)
            cases[n++] = variant_case(&sc[i]);
    }
    {
        decode_case c = extra[11]; /* batch 2048 */
        c.kv_dtype = FAI_DTYPE_INT8;
        cases[n++] = c;
    }
    /* BF16 (names start with "bf16"): q and o BF16 over a BF16 cache, on every head dim with
     * MHA, GQA and MQA (each case also runs the forced plans: both kernels, split and not),
     * the cache walks of extra[], the variants, paged caches; then BF16 q over int8 and FP8
     * caches written by fai_kv_append from BF16 rows. */
    {
        static char bnames[96][96];
        int nb = 0;
        const int bheads[][2] = {{8, 8}, {32, 8}, {8, 1}};
        for (int di = 0; di < 4; di++)
            for (int hi = 0; hi < 3; hi++) {
                decode_case c = {0};
                snprintf(bnames[nb], sizeof bnames[nb], "bf16 d%d h%d/%d mixed lens%s", dims[di], bheads[hi][0],
                         bheads[hi][1], (di + hi) % 2 ? " alibi" : "");
                c.name = bnames[nb++];
                c.batch = 6; c.hq = bheads[hi][0]; c.hk = bheads[hi][1]; c.d = dims[di]; c.capacity = 1000;
                c.lens = lens_mixed; c.alibi = (di + hi) % 2; c.q_std = 1.0f;
                c.kv_dtype = FAI_DTYPE_BF16; c.bf16 = 1;
                cases[n++] = c;
            }
        /* HND + fused QKV, very negative and large logits, huge keys and the length guard,
         * > 64K keys split, d256 split, graphs (split and not), partial head blocks, no LSE */
        const int bextra[] = {0, 3, 4, 5, 6, 8, 9, 12, 13, 14, 15, 16};
        for (size_t i = 0; i < sizeof bextra / sizeof bextra[0]; i++) {
            decode_case c = extra[bextra[i]];
            snprintf(bnames[nb], sizeof bnames[nb], "bf16 %s", c.name);
            c.name = bnames[nb++];
            c.kv_dtype = FAI_DTYPE_BF16; c.bf16 = 1;
            cases[n++] = c;
        }
        static const variant_row bv[] = {
            {"bf16 window 64 (lengths 1..1000)", 6, 16, 4, 128, 1000, 64, 0, 1, 0, 0, 0, FAI_DTYPE_BF16, lens_mixed},
            {"bf16 soft-cap 30, logits to +-100", 4, 16, 4, 128, 1000, 0, 30.0f, 30, 0, 0, 0, FAI_DTYPE_BF16, NULL},
            {"bf16 sinks +30, MHA", 6, 8, 8, 128, 1000, 0, 0, 1, 2, 0, 0, FAI_DTYPE_BF16, lens_mixed},
            {"bf16 sinks -30, empty sequences", 3, 8, 2, 64, 64, 0, 0, 1, 3, 0, 0, FAI_DTYPE_BF16, lens_empty},
            {"bf16 gpt-oss: window 128 + sinks, GQA 64/8", 4, 64, 8, 64, 3000, 128, 0, 1, 1, 0, 0, FAI_DTYPE_BF16, NULL},
            {"bf16 Gemma 2: window 4096 + soft-cap 50, d256", 3, 16, 8, 256, 9000, 4096, 50.0f, 20, 0, 0, 0, FAI_DTYPE_BF16, NULL},
            {"bf16 window + sinks + soft-cap, split 70000", 1, 32, 8, 128, 70000, 4096, 20.0f, 5, 1, 1, 0, FAI_DTYPE_BF16, lens_long},
            {"bf16 window 100 + sinks + soft-cap 10, MHA", 6, 8, 8, 96, 1000, 100, 10.0f, 4, 1, 1, 0, FAI_DTYPE_BF16, lens_mixed},
            /* paged: page sizes 1, 8, 16, 256, HND pages, a shared prefix, splits, a window */
            {"bf16 paged 16, mixed lens", 6, 16, 4, 128, 1000, 0, 0, 1, 0, 1, 16, FAI_DTYPE_BF16, lens_mixed},
            {"bf16 paged 1, MHA", 6, 8, 8, 64, 1000, 0, 0, 1, 0, 0, 1, FAI_DTYPE_BF16, lens_mixed},
            {"bf16 paged 256, HND pages, d256", 6, 8, 8, 256, 1000, 0, 0, 1, 0, 1, 256, FAI_DTYPE_BF16, lens_mixed},
            {"bf16 paged 16, shared prefix of 3 pages", 4, 32, 8, 128, 700, 0, 0, 1, 0, 0, 16, FAI_DTYPE_BF16, NULL},
            {"bf16 paged 16, split 70000 keys", 1, 32, 8, 128, 70000, 0, 0, 1, 0, 1, 16, FAI_DTYPE_BF16, lens_long},
            {"bf16 paged 8, GQA, window 333 + sinks + soft-cap", 6, 16, 4, 128, 1000, 333, 30.0f, 3, 1, 0, 8, FAI_DTYPE_BF16,
             lens_mixed},
        };
        for (size_t i = 0; i < sizeof bv / sizeof bv[0]; i++)
            cases[n++] = variant_case(&bv[i]);
        /* BF16 q over quantized caches (BF16 rows through fai_kv_append): every head dim with a
         * rotating head layout, HND + fused QKV, > 64K keys split, a graph, a partial head
         * block, a paged cache and gpt-oss's variants. */
        const int bqextra[] = {0, 8, 12, 14};
        for (int ti = 0; ti < 3; ti++) {
            for (int di = 0; di < 4; di++) {
                const int hi = (di + 2 * ti) % 6;
                decode_case c = {0};
                snprintf(bnames[nb], sizeof bnames[nb], "bf16 %s d%d h%d/%d mixed lens%s", dtype_short(qtypes[ti]),
                         dims[di], heads[hi][0], heads[hi][1], (di + ti) % 2 ? " alibi" : "");
                c.name = bnames[nb++];
                c.batch = 6; c.hq = heads[hi][0]; c.hk = heads[hi][1]; c.d = dims[di]; c.capacity = 1000;
                c.lens = lens_mixed; c.alibi = (di + ti) % 2; c.q_std = 1.0f;
                c.kv_dtype = qtypes[ti]; c.bf16 = 1;
                cases[n++] = c;
            }
            for (size_t i = 0; i < sizeof bqextra / sizeof bqextra[0]; i++) {
                decode_case c = extra[bqextra[i]];
                snprintf(bnames[nb], sizeof bnames[nb], "bf16 %s %s", dtype_short(qtypes[ti]), c.name);
                c.name = bnames[nb++];
                c.kv_dtype = qtypes[ti]; c.bf16 = 1;
                cases[n++] = c;
            }
            decode_case c = {0};
            snprintf(bnames[nb], sizeof bnames[nb], "bf16 %s paged 16, gpt-oss: window 128 + sinks, GQA 64/8",
                     dtype_short(qtypes[ti]));
            c.name = bnames[nb++];
            c.batch = 4; c.hq = 64; c.hk = 8; c.d = 64; c.capacity = 3000; c.q_std = 1.0f; c.check_every = 1;
            c.window_left = 128; c.sinks = 1; c.page_size = 16; c.kv_dtype = qtypes[ti]; c.bf16 = 1;
            cases[n++] = c;
        }
    }
    /* int8 with FAI_SCALES_BF16X2 scales (names start with "int8 bf16x2 scales"): every other
     * int8 case above again, and every head-dim-96 and gpt-oss one (contiguous and paged, NHD
     * and HND, every head dim, both kernels and their split and split-tail plans, graphs, the
     * variants, BF16 q), with both scales of a token and head as BF16 in one word. */
    {
        static char snames[64][128];
        int ns = 0;
        const int upto = n;
        for (int i = 0, k = 0; i < upto && ns < 64; i++)
            if (cases[i].kv_dtype == FAI_DTYPE_INT8 &&
                (k++ % 2 == 0 || cases[i].d == 96 || strstr(cases[i].name, "gpt-oss"))) {
                decode_case c = cases[i];
                snprintf(snames[ns], sizeof snames[ns], "int8 bf16x2 scales: %s", c.name);
                c.name = snames[ns++];
                c.scale_pairs = 1;
                cases[n++] = c;
            }
    }
    if (!small) {
        /* Offsets past 2^31 elements: 36 x 66000 x 8 x 128 = 2.43e9 elements per cache tensor. */
        static int lens_big[36];
        for (int b = 0; b < 36; b++)
            lens_big[b] = (b * 37) % 61;
        lens_big[34] = 3000;
        lens_big[35] = 66000;
        decode_case big = {"offsets past 2^31, 66000 keys", 36, 32, 8, 128, 66000, lens_big, 0, 0, 0, 1.0f, 0, 0, 1, 0, 0, FAI_DTYPE_FP16, 0, 0, 0, 0, 0, 0, 0};
        cases[n++] = big;
        big.kv_dtype = FAI_DTYPE_INT8; /* 2.4e9 bytes per cache tensor: byte offsets past 2^31 */
        cases[n++] = big;
    }

    return n;
}

int main(int argc, char **argv)
{
    gpu_require_device("test_decode");
    const char *env = getenv("FAI_TEST_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    const int small = argc > 1 && strcmp(argv[1], "--small") == 0; /* for compute-sanitizer */
    g_start = wall_seconds();
    printf("test_decode: seed %llu (FAI_TEST_SEED=%llu reproduces)%s\n", (unsigned long long)g_seed,
           (unsigned long long)g_seed, small ? ", small shapes" : argc > 2 ? ", random cases" : "");
    if (fai_current_device("test_decode", &g_dev) != FAI_SUCCESS) { /* what the planner sees */
        fprintf(stderr, "%s\n", fai_last_error());
        return 2;
    }

    static decode_case cases[400];
    int n = 0;
    const int random = random_count(argc, argv, 400);
    if (random > 0) {
        static char rnames[400][200];
        static int rlens[400][300];
        fai_ref_rng r;
        fai_ref_rng_seed(&r, g_seed ^ 0x5eed5eedull);
        for (n = 0; n < random; n++)
            cases[n] = random_case(&r, n, rnames[n], sizeof rnames[n], rlens[n]);
    } else {
        n = table_cases(cases, small);
    }
    /* FAI_TEST_DTYPES=int8,e4m3 runs only the cases of those cache dtypes, FAI_TEST_NAME=text
     * only those whose name contains text (quick rounds). */
    const char *dtypes = getenv("FAI_TEST_DTYPES"), *name = getenv("FAI_TEST_NAME");
    int fails = 0, ran = 0;
    for (int i = 0; i < n; i++) {
        if (small && (cases[i].capacity > 2000 || cases[i].batch > 64))
            continue;
        if (small && cases[i].bf16) { /* a few BF16 cases: both cache kinds, both kernels, variants, paged */
            static const char *const bf16_small[] = {"bf16 d64 h8/8", "bf16 d128 h32/8", "bf16 d256 h8/1",
                                                     "bf16 window 100", "bf16 paged 16, mixed", "bf16 int8 d64",
                                                     "bf16 e4m3 d128", "bf16 e5m2 d96"};
            int keep = 0;
            for (size_t k = 0; k < sizeof bf16_small / sizeof bf16_small[0]; k++)
                keep |= strncmp(cases[i].name, bf16_small[k], strlen(bf16_small[k])) == 0;
            if (!keep)
                continue;
        }
        if ((dtypes && !strstr(dtypes, dtype_short(cases[i].kv_dtype))) || (name && !strstr(cases[i].name, name)))
            continue;
        const double t0 = wall_seconds();
        fails += run_case(&cases[i], i);
        printf("  (%.1f s)\n", wall_seconds() - t0);
        ran++;
    }

    /* batch 0 launches nothing and succeeds. */
    fai_decode_params p0 = fai_decode_params_default();
    size_t ws = 1;
    if (fai_decode_workspace_size(&p0, &ws) != FAI_SUCCESS || ws != 0 || fai_decode(&p0, NULL, 0, 0) != FAI_SUCCESS) {
        printf("batch 0: FAIL (%s)\n", fai_last_error());
        fails++;
    }
    printf("test_decode: %d cases, %d failed (wall time: references %.1f s, inputs %.1f s, whole test %.1f s on %d "
           "host threads)\n",
           ran, fails, g_ref_seconds, g_input_seconds, wall_seconds() - g_start, fai_ref_threads());
    return fails ? 1 : 0;
}
