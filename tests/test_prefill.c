/* GPU test of attention over variable-length batches (fai_prefill: prefill, chunked prefill,
 * hybrid prefill + decode batches) against the double-precision CPU reference, on fresh
 * random inputs (seed printed; FAI_TEST_SEED reproduces a run).
 *
 * Rows of Q/K/V outside the batch's sequences (before cu_seqlens[0] and after
 * cu_seqlens[batch]) hold NaN, so a read outside a sequence shows in the output; O and LSE
 * are poisoned with NaN before every call, so an unwritten element fails, and their rows
 * outside every sequence must keep the poison. In the window cases the keys more than a
 * margin left of all of a sequence's windows hold NaN as well, so that reading them instead
 * of skipping their tiles fails (poison_unseen_keys). Every case runs twice against one
 * reference: planned from a host copy of cu_seqlens_q, and without one (both kernels
 * launched). Tolerances are those of shared/guides/correctness.md: rel L2 <= 2e-3, max error
 * at most twice that of a plain FP32 reference with FP16 output, LSE within
 * 1e-3 + 1e-4 |lse|, and rows that see no key exactly zero with an LSE of -inf (the sink's
 * logit with attention sinks).
 *
 * BF16 cases follow the same rules at BF16's precision. The reference runs on the BF16 values
 * the GPU sees (the inputs are rounded to BF16 first and taken exactly), so what is measured
 * is the kernel's own error, whose sources scale with the unit roundoff: the weights P packed
 * to BF16 for the P V product and the BF16 output, 2^-8 against FP16's 2^-11. Hence rel L2
 * <= 1.6e-2 (2e-3 x 8) and a max error at most twice that of the plain FP32 reference on the
 * same BF16 inputs with a BF16-rounded output; the LSE (FP32 scores) keeps FP16's bound.
 *
 * The variants (sliding window, soft-cap, sinks) are checked the same way, alone and combined
 * (window + sinks + GQA is gpt-oss's attention, window + soft-cap Gemma 2's), in FP16 and BF16:
 * windows smaller than, equal to and larger than the sequence, windows that leave rows with
 * no visible key, soft-caps far below the logits, sinks far above and below every logit
 * (a sink 1000 above makes every output exactly 0 and every LSE 1000: nothing may overflow).
 *
 * --small: the small shapes only, and no NaN rows after the last sequence, so that
 * compute-sanitizer sees a read or write past the end (every buffer is allocated at its
 * exact size). FAI_TEST_NAME=text runs only the cases whose name contains text. Exits 77
 * without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "random_case.h"
#include "reference.h"

#define MAX_BATCH 80
#define MAX_BLOCKS 64
#define TABLE_CASES 160 /* the most cases a run holds */
#define PAD_LEAD 3  /* default NaN rows before the first sequence */
#define PAD_TAIL 5  /* NaN rows after the last sequence (none with --small) */
#define PAD_CHECK 16 /* rows of O / LSE next to the sequences checked to keep their poison */


typedef struct seq_len {
    int q, k; /* seq_q and seq_k */
} seq_len;

enum layout {
    LAYOUT_COMPACT = 0, /* q, k, v, o each [tokens, heads, d] */
    LAYOUT_FUSED = 1,   /* Q/K/V views into one [tokens, hq + 2 hk, d] buffer, O head-major [hq, tokens, d] */
    LAYOUT_KV_HND = 2,  /* K and V head-major [hk, tokens, d], Q and O compact */
    LAYOUT_FUSED_O = 3  /* fused QKV as LAYOUT_FUSED, O compact */
};

typedef struct prefill_case {
    const char *name;
    int hq, hk, d;
    int batch;
    const seq_len *seqs; /* [batch] */
    int causal;
    int alibi;       /* 0 off, 1 standard slopes (alibi_slopes NULL), 2 caller slopes in [0.01, 1],
                        3 caller slopes of 8 */
    float q_std;     /* standard deviation of Q (0: 1); K and V are N(0, 1) */
    int layout;      /* enum layout */
    int lead;        /* NaN rows before the first sequence: 0 PAD_LEAD, -1 none (and none after) */
    int max_seq_q;   /* 0: the longest seq_q (at least 1); else passed as is (may be too small) */
    int max_seq_k;   /* passed as is (0: total_k) */
    int block, stride; /* 0: reference for every row; else for `block` rows around every multiple
                          of `stride` plus the first and last `block` rows of each sequence (all
                          rows are still checked written, finite, zero where they see no key) */
    int graph;       /* capture in a CUDA graph; replay; replay on new values (and, without a host
                        plan, on the sequences in reverse order) */
    int no_lse;      /* lse = NULL: the LSE buffer must keep its poison */
    int huge_future; /* the second half of each sequence's keys scaled by 30: a leaky causal mask
                        shows */
    int bf16;        /* BF16 Q/K/V/O (FP16 otherwise) */
    int window;      /* attn.window, with attn.window_left = wl and attn.window_right = wr */
    int wl, wr;
    float softcap;   /* attn.softcap (0: off) */
    int sinks;       /* enum sinks */
} prefill_case;

enum sinks {
    SINKS_NONE = 0,
    SINKS_RANDOM = 1, /* uniform in [-2, 4] per head: about the logits' size */
    SINKS_HIGH = 2,   /* 8 per head: above every logit (of N(0, 1) data), the weights shrink ~e^-8 */
    SINKS_HUGE = 3,   /* 1000: every output is exactly 0 and every LSE 1000 */
    SINKS_TINY = 4    /* -1000: changes nothing */
};

/* SEQS({q0, k0}, {q1, k1}, ...): the sequences of a case and their count. */
#define SEQS(...)                                                                                  \
    .seqs = (const seq_len[]){__VA_ARGS__},                                                       \
    .batch = (int)(sizeof((const seq_len[]){__VA_ARGS__}) / sizeof(seq_len))

static uint64_t g_seed;
static int g_bf16; /* the running case's element type: BF16 (1) or FP16 (0) */
static int g_small;
static double g_work; /* multiply-adds spent by the CPU references */

/* The running case's element type on the host: bits and values, round to nearest even. */
static uint16_t to_elem(float x) { return g_bf16 ? host_float_to_bf16(x) : host_float_to_half(x); }
static float from_elem(uint16_t bits) { return g_bf16 ? host_bf16_to_float(bits) : host_half_to_float(bits); }

/* Rounds x through the element type in place (what the GPU will see), bits too. */
static void round_to_elem(float *x, uint16_t *bits, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        bits[i] = to_elem(x[i]);
        x[i] = from_elem(bits[i]);
    }
}

/* One problem on the device and its host copies, rounded to the element type. */
typedef struct problem {
    const prefill_case *c;
    int batch, hq, hk, d;
    seq_len seqs[MAX_BATCH];             /* current lengths (reversed by a graph case) */
    int32_t cu_q[MAX_BATCH + 1], cu_k[MAX_BATCH + 1];
    int total_q, total_k;
    float *q, *k, *v;                    /* rows cu[0] .. cu[batch] - 1, compact [rows, heads, d] */
    double *slopes;                      /* [hq] the slopes the kernel must use */
    double *sinks;                       /* [hq] the sinks' logits (NULL: none) */
    float *sinks_dev;
    void *bufs[4];                       /* q (or fused qkv), k, v, o; NULL when empty or fused */
    size_t buf_bytes[4];
    float *lse_dev, *slopes_dev;
    size_t lse_bytes;
    int32_t *cu_q_dev, *cu_k_dev;
    fai_prefill_params p;
} problem;

/* The reference for the checked rows. */
typedef struct reference {
    int *slot;          /* [cu_q[batch] - cu_q[0]]: the row's index among the checked rows, or -1 */
    double *o, *lse;    /* [checked, hq, d], [checked, hq] */
    double max_err32;   /* max error of the plain FP32 reference with FP16 output */
    double logit_max;   /* largest |scale * q.k| met */
} reference;

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Keys that row i of a (seq_q, seq_k) sequence sees: *lo .. *hi - 1 (the causal mask and the
 * window around diagonal *diag); returns their count. */
static int visible_range(const prefill_case *c, int i, int seq_q, int seq_k, int *lo, int *hi, int *diag)
{
    *diag = i + seq_k - seq_q;
    int64_t l = 0, h = seq_k;
    if (c->causal)
        h = *diag + 1 < h ? *diag + 1 : h;
    if (c->window && c->wr >= 0)
        h = (int64_t)*diag + c->wr + 1 < h ? (int64_t)*diag + c->wr + 1 : h;
    if (c->window && c->wl >= 0)
        l = (int64_t)*diag - c->wl > l ? (int64_t)*diag - c->wl : l;
    if (h < l)
        h = l;
    *lo = (int)l;
    *hi = (int)h;
    return (int)(h - l);
}

/* The row blocks of a sequence of seq_q rows that the reference computes (r0 <= r < r1):
 * all rows, or the first `block` rows, `block` rows centred on each multiple of `stride`
 * (so they straddle tile boundaries) and the last `block` rows. */
static int row_blocks(const prefill_case *c, int seq_q, int *r0, int *r1)
{
    if (seq_q == 0)
        return 0;
    if (c->block <= 0 || seq_q <= 3 * c->block) {
        r0[0] = 0;
        r1[0] = seq_q;
        return 1;
    }
    int n = 0;
    r0[n] = 0;
    r1[n++] = c->block;
    for (int m = c->stride; n < MAX_BLOCKS - 1; m += c->stride) {
        const int s = m - c->block / 2;
        if (s + c->block > seq_q - c->block)
            break;
        if (s >= r1[n - 1]) {
            r0[n] = s;
            r1[n++] = s + c->block;
        }
    }
    r0[n] = seq_q - c->block;
    r1[n++] = seq_q;
    return n;
}

/* Multiply-adds of the reference and the FP32 yardstick for the checked rows. */
static double reference_work(const prefill_case *c, const seq_len *seqs)
{
    double w = 0;
    int r0[MAX_BLOCKS], r1[MAX_BLOCKS];
    for (int b = 0; b < c->batch; b++) {
        const int nb = row_blocks(c, seqs[b].q, r0, r1);
        for (int j = 0; j < nb; j++)
            for (int i = r0[j]; i < r1[j]; i++) {
                int lo, hi, diag;
                w += 4.0 * visible_range(c, i, seqs[b].q, seqs[b].k, &lo, &hi, &diag) * c->hq * c->d;
            }
    }
    return w;
}

/* Plain FP32 attention of one query row over keys lo .. hi - 1 (row stride kv_stride; k and v
 * point at key 0), soft-capped when softcap > 0, with a sink when sink is not NaN, and with an
 * output rounded to the element type: the yardstick of the reference-relative bound. */
static void ref32_row(const float *q, const float *k, const float *v, int lo, int hi, int diag, int64_t kv_stride,
                      int d, float scale, float slope, float softcap, float sink, float *out, double *logit_max)
{
    const int n_vis = hi - lo;
    float *s = malloc(sizeof(float) * (size_t)(n_vis > 0 ? n_vis : 1));
    float mx = isnan(sink) ? -INFINITY : sink;
    for (int j = lo; j < hi; j++) {
        float dot = 0.0f;
        for (int e = 0; e < d; e++)
            dot += q[e] * k[(int64_t)j * kv_stride + e];
        float x = dot * scale;
        *logit_max = fmax(*logit_max, fabs((double)x));
        if (softcap > 0.0f)
            x = softcap * tanhf(x / softcap);
        x -= slope * (float)abs(diag - j);
        s[j - lo] = x;
        mx = fmaxf(mx, x);
    }
    float sum = isnan(sink) ? 0.0f : expf(sink - mx);
    for (int j = 0; j < n_vis; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    for (int e = 0; e < d; e++) {
        float acc = 0.0f;
        for (int j = 0; j < n_vis; j++)
            acc += s[j] * v[(int64_t)(lo + j) * kv_stride + e];
        out[e] = from_elem(to_elem(n_vis > 0 ? acc / sum : 0.0f));
    }
    free(s);
}

static int64_t span_elems(int64_t rows, int heads, int d, int64_t ts, int64_t hs)
{
    return rows == 0 ? 0 : (rows - 1) * ts + (int64_t)(heads - 1) * hs + d;
}

/* Copies compact [rows, heads, d] FP16 rows to rows r0 .. r0 + rows - 1 of a strided view. */
static void upload_view(const fai_tensor *t, const uint16_t *src, int64_t r0, int64_t rows, int heads, int d)
{
    if (rows == 0)
        return;
    uint16_t *dst = (uint16_t *)t->data;
    const size_t row_bytes = (size_t)heads * d * 2;
    if (t->head_stride == d) { /* token-major: each row's heads contiguous */
        CUDA_CHECK(cudaMemcpy2D(dst + r0 * t->token_stride, (size_t)t->token_stride * 2, src, row_bytes, row_bytes,
                                (size_t)rows, cudaMemcpyHostToDevice));
    } else if (t->token_stride == d) { /* head-major: each head's rows contiguous */
        uint16_t *tmp = malloc((size_t)rows * row_bytes);
        for (int h = 0; h < heads; h++)
            for (int64_t r = 0; r < rows; r++)
                memcpy(tmp + ((int64_t)h * rows + r) * d, src + (r * heads + h) * d, (size_t)d * 2);
        CUDA_CHECK(cudaMemcpy2D(dst + r0 * d, (size_t)t->head_stride * 2, tmp, (size_t)(rows * d * 2),
                                (size_t)(rows * d * 2), (size_t)heads, cudaMemcpyHostToDevice));
        free(tmp);
    } else {
        for (int64_t r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
                CUDA_CHECK(cudaMemcpy(dst + (r0 + r) * t->token_stride + h * t->head_stride,
                                      src + (r * heads + h) * d, (size_t)d * 2, cudaMemcpyHostToDevice));
    }
}

/* The reverse: rows r0 .. r0 + rows - 1 of a strided view into compact [rows, heads, d]. */
static void download_view(const fai_tensor *t, uint16_t *dst, int64_t r0, int64_t rows, int heads, int d)
{
    if (rows == 0)
        return;
    const uint16_t *src = (const uint16_t *)t->data;
    const size_t row_bytes = (size_t)heads * d * 2;
    if (t->head_stride == d) {
        CUDA_CHECK(cudaMemcpy2D(dst, row_bytes, src + r0 * t->token_stride, (size_t)t->token_stride * 2, row_bytes,
                                (size_t)rows, cudaMemcpyDeviceToHost));
    } else if (t->token_stride == d) {
        uint16_t *tmp = malloc((size_t)rows * row_bytes);
        CUDA_CHECK(cudaMemcpy2D(tmp, (size_t)(rows * d * 2), src + r0 * d, (size_t)t->head_stride * 2,
                                (size_t)(rows * d * 2), (size_t)heads, cudaMemcpyDeviceToHost));
        for (int h = 0; h < heads; h++)
            for (int64_t r = 0; r < rows; r++)
                memcpy(dst + (r * heads + h) * d, tmp + ((int64_t)h * rows + r) * d, (size_t)d * 2);
        free(tmp);
    } else {
        for (int64_t r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
                CUDA_CHECK(cudaMemcpy(dst + (r * heads + h) * d, src + (r0 + r) * t->token_stride + h * t->head_stride,
                                      (size_t)d * 2, cudaMemcpyDeviceToHost));
    }
}

/* cu_seqlens from the current lengths; totals include the NaN rows around the sequences. */
static void set_offsets(problem *pb)
{
    const prefill_case *c = pb->c;
    const int lead = c->lead == 0 ? PAD_LEAD : c->lead < 0 ? 0 : c->lead;
    const int tail = c->lead < 0 || g_small ? 0 : PAD_TAIL;
    pb->cu_q[0] = pb->cu_k[0] = lead;
    for (int b = 0; b < pb->batch; b++) {
        pb->cu_q[b + 1] = pb->cu_q[b] + pb->seqs[b].q;
        pb->cu_k[b + 1] = pb->cu_k[b] + pb->seqs[b].k;
    }
    pb->total_q = pb->cu_q[pb->batch] + tail;
    pb->total_k = pb->cu_k[pb->batch] + tail;
}

static void poison_inputs(problem *pb)
{
    for (int i = 0; i < 3; i++)
        if (pb->bufs[i])
            CUDA_CHECK(cudaMemset(pb->bufs[i], 0xff, pb->buf_bytes[i])); /* 0xffff: FP16 and BF16 NaN */
}

static void poison_outputs(problem *pb)
{
    if (pb->bufs[3])
        CUDA_CHECK(cudaMemset(pb->bufs[3], 0xff, pb->buf_bytes[3]));
    CUDA_CHECK(cudaMemset(pb->lse_dev, 0xff, pb->lse_bytes)); /* FP32 NaN */
    /* The memsets run on the legacy default stream, which the test's non-blocking stream
     * does not wait for: without this, a late memset can overwrite what fai_prefill wrote. */
    CUDA_CHECK(cudaDeviceSynchronize());
}

/* Sets to NaN, in the rows about to be uploaded (compact [rows, hk, d] from cu_k[0] on: K's
 * or V's), the keys of each sequence that lie more than prefill_window_margin() left of its first
 * row's window: no row sees them (row i's window starts at i + seq_k - seq_q - window_left,
 * growing with i), so a kernel that read and masked them instead of skipping their tiles
 * would turn 0 x NaN into NaN in P V (issue 6: tiles outside the window are skipped, not
 * masked). The host copies stay finite; the reference reads only each row's visible keys.
 *
 * The margin: both prefill kernels start query tile m0 (0, BM, 2 BM, ...) at the key tile
 * holding key max(0, m0 + seq_k - seq_q - window_left), rounded down to a multiple of BN
 * (prefill_key_tiles), and mask that tile's keys left of each row's window. The tile of
 * m0 = 0 starts lowest, so no key below L - (BN - 1) is read, L being row 0's window start,
 * whatever the query tile's height (64-192 rows). BN is at most 128: the mma.sync kernel's
 * 32 or 64 by head dim (at most its 128 threads in any build: a static_assert), the Hopper
 * kernel's 128 (64 at head dim 256): 128 for every kernel, the mma.sync kernel's own BN when
 * it runs every prefill row (gpu_test_util.c). The decode kernels (a hybrid batch's decode rows)
 * start at L itself. The right side needs nothing: the last row's diagonal is key
 * seq_k - 1 (bottom-right alignment), so any window leaves no key right of it unseen. */
static void poison_unseen_keys(const problem *pb, uint16_t *bits)
{
    const prefill_case *c = pb->c;
    if (!c->window || c->wl < 0)
        return;
    const int64_t row = (int64_t)pb->hk * pb->d;
    for (int b = 0; b < pb->batch; b++) {
        if (pb->seqs[b].q == 0) /* (no row, no window: left as they are) */
            continue;
        int lo, hi, diag;
        visible_range(c, 0, pb->seqs[b].q, pb->seqs[b].k, &lo, &hi, &diag);
        const int64_t first = pb->cu_k[b] - pb->cu_k[0], unseen = lo - prefill_window_margin(pb->d, pb->seqs[b].q);
        for (int64_t e = first * row; e < (first + unseen) * row; e++)
            bits[e] = HALF_NAN; /* (0x7fff: a BF16 NaN too) */
    }
}

/* Fresh random rows for every sequence (NaN elsewhere; window cases: NaN keys left of the
 * windows too, see poison_unseen_keys), and the offsets, on the device. */
static void upload_inputs(problem *pb, fai_ref_rng *rng)
{
    const prefill_case *c = pb->c;
    poison_inputs(pb);
    const int64_t rows_q = pb->cu_q[pb->batch] - pb->cu_q[0], rows_k = pb->cu_k[pb->batch] - pb->cu_k[0];
    const int64_t nq = rows_q * pb->hq * pb->d, nk = rows_k * pb->hk * pb->d;
    free(pb->q);
    free(pb->k);
    free(pb->v);
    pb->q = malloc(sizeof(float) * (size_t)(nq + 1));
    pb->k = malloc(sizeof(float) * (size_t)(nk + 1));
    pb->v = malloc(sizeof(float) * (size_t)(nk + 1));
    uint16_t *bits = malloc(sizeof(uint16_t) * (size_t)((nq > nk ? nq : nk) + 1));

    fai_ref_fill_normal(rng, pb->q, nq, c->q_std > 0 ? c->q_std : 1.0);
    round_to_elem(pb->q, bits, nq);
    upload_view(&pb->p.q, bits, pb->cu_q[0], rows_q, pb->hq, pb->d);

    fai_ref_fill_normal(rng, pb->k, nk, 1.0);
    if (c->huge_future)
        for (int b = 0; b < pb->batch; b++)
            for (int j = pb->seqs[b].k / 2; j < pb->seqs[b].k; j++)
                for (int e = 0; e < pb->hk * pb->d; e++)
                    pb->k[((int64_t)(pb->cu_k[b] - pb->cu_k[0]) + j) * pb->hk * pb->d + e] *= 30.0f;
    round_to_elem(pb->k, bits, nk);
    poison_unseen_keys(pb, bits);
    upload_view(&pb->p.k, bits, pb->cu_k[0], rows_k, pb->hk, pb->d);

    fai_ref_fill_normal(rng, pb->v, nk, 1.0);
    round_to_elem(pb->v, bits, nk);
    poison_unseen_keys(pb, bits);
    upload_view(&pb->p.v, bits, pb->cu_k[0], rows_k, pb->hk, pb->d);
    free(bits);

    CUDA_CHECK(cudaMemcpy(pb->cu_q_dev, pb->cu_q, sizeof(int32_t) * (size_t)(pb->batch + 1), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pb->cu_k_dev, pb->cu_k, sizeof(int32_t) * (size_t)(pb->batch + 1), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize()); /* (legacy-stream copies: see poison_outputs) */
}

/* Buffers, views and parameters for case c (its lengths already in pb->seqs). */
static void setup_problem(problem *pb, const prefill_case *c, fai_ref_rng *rng)
{
    pb->c = c;
    pb->batch = c->batch;
    pb->hq = c->hq;
    pb->hk = c->hk;
    pb->d = c->d;
    memcpy(pb->seqs, c->seqs, sizeof(seq_len) * (size_t)c->batch);
    set_offsets(pb);
    const int hq = c->hq, hk = c->hk, d = c->d, tq = pb->total_q, tk = pb->total_k;
    const int fused = c->layout == LAYOUT_FUSED || c->layout == LAYOUT_FUSED_O;

    fai_prefill_params *p = &pb->p;
    *p = fai_prefill_params_default();
    p->attn.num_q_heads = hq;
    p->attn.num_kv_heads = hk;
    p->attn.head_dim = d;
    p->attn.softmax_scale = 1.0f / sqrtf((float)d);
    p->attn.alibi = c->alibi != 0;
    p->attn.window = c->window;
    p->attn.window_left = c->wl;
    p->attn.window_right = c->wr;
    p->attn.softcap = c->softcap;
    p->batch = c->batch;
    p->causal = c->causal;
    p->total_q = tq;
    p->total_k = tk;
    p->max_seq_k = c->max_seq_k;
    int longest = 1;
    for (int b = 0; b < c->batch; b++)
        longest = imax(longest, c->seqs[b].q);
    p->max_seq_q = c->max_seq_q > 0 ? c->max_seq_q : longest;

    /* Views: element (t, h, e) at data + t * token_stride + h * head_stride + e. */
    p->q.token_stride = p->o.token_stride = (int64_t)hq * d;
    p->k.token_stride = p->v.token_stride = (int64_t)hk * d;
    p->q.head_stride = p->k.head_stride = p->v.head_stride = p->o.head_stride = d;
    p->q.dtype = p->k.dtype = p->v.dtype = p->o.dtype = c->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    if (fused)
        p->q.token_stride = p->k.token_stride = p->v.token_stride = (int64_t)(hq + 2 * hk) * d;
    if (c->layout == LAYOUT_FUSED) {
        p->o.token_stride = d;
        p->o.head_stride = (int64_t)tq * d;
    }
    if (c->layout == LAYOUT_KV_HND) {
        p->k.token_stride = p->v.token_stride = d;
        p->k.head_stride = p->v.head_stride = (int64_t)tk * d;
    }
    fai_tensor *views[4] = {&p->q, &p->k, &p->v, &p->o};
    const int rows[4] = {tq, tk, tk, tq}, heads[4] = {hq, hk, hk, hq};
    for (int i = 0; i < 4; i++) {
        if (fused && (i == 1 || i == 2))
            continue;
        const int h = fused && i == 0 ? hq + 2 * hk : heads[i];
        pb->buf_bytes[i] = (size_t)span_elems(rows[i], h, d, views[i]->token_stride, views[i]->head_stride) * 2;
        if (pb->buf_bytes[i]) /* exact sizes: compute-sanitizer sees any access past the end */
            CUDA_CHECK(cudaMalloc(&pb->bufs[i], pb->buf_bytes[i]));
        views[i]->data = pb->bufs[i]; /* NULL for a tensor of 0 rows */
    }
    if (fused) {
        for (int b = 0; b < c->batch; b++)
            if (c->seqs[b].q != c->seqs[b].k) {
                printf("test bug: %s: a fused layout needs seq_q == seq_k\n", c->name);
                exit(2);
            }
        p->k.data = pb->bufs[0] ? (uint16_t *)pb->bufs[0] + (int64_t)hq * d : NULL;
        p->v.data = pb->bufs[0] ? (uint16_t *)pb->bufs[0] + (int64_t)(hq + hk) * d : NULL;
    }
    pb->lse_bytes = sizeof(float) * (size_t)(tq > 0 ? (int64_t)tq * hq : 1);
    CUDA_CHECK(cudaMalloc((void **)&pb->lse_dev, pb->lse_bytes));
    p->lse = c->no_lse ? NULL : pb->lse_dev;
    CUDA_CHECK(cudaMalloc((void **)&pb->cu_q_dev, sizeof(int32_t) * (size_t)(c->batch + 1)));
    CUDA_CHECK(cudaMalloc((void **)&pb->cu_k_dev, sizeof(int32_t) * (size_t)(c->batch + 1)));
    p->cu_seqlens_q = pb->cu_q_dev;
    p->cu_seqlens_k = pb->cu_k_dev;

    pb->slopes = malloc(sizeof(double) * (size_t)hq);
    fai_ref_alibi_slopes(hq, pb->slopes);
    if (c->alibi >= 2) {
        float *fs = malloc(sizeof(float) * (size_t)hq);
        for (int h = 0; h < hq; h++) {
            fs[h] = c->alibi == 3 ? 8.0f : (float)(0.01 + 0.99 * fai_ref_rng_uniform(rng));
            pb->slopes[h] = fs[h];
        }
        CUDA_CHECK(cudaMalloc((void **)&pb->slopes_dev, sizeof(float) * (size_t)hq));
        CUDA_CHECK(cudaMemcpy(pb->slopes_dev, fs, sizeof(float) * (size_t)hq, cudaMemcpyHostToDevice));
        p->attn.alibi_slopes = pb->slopes_dev;
        free(fs);
    }
    if (c->sinks != SINKS_NONE) {
        float *fs = malloc(sizeof(float) * (size_t)hq);
        pb->sinks = malloc(sizeof(double) * (size_t)hq);
        for (int h = 0; h < hq; h++) {
            fs[h] = c->sinks == SINKS_RANDOM ? (float)(-2.0 + 6.0 * fai_ref_rng_uniform(rng))
                    : c->sinks == SINKS_HIGH ? 8.0f
                    : c->sinks == SINKS_HUGE ? 1000.0f
                                             : -1000.0f;
            pb->sinks[h] = fs[h];
        }
        CUDA_CHECK(cudaMalloc((void **)&pb->sinks_dev, sizeof(float) * (size_t)hq));
        CUDA_CHECK(cudaMemcpy(pb->sinks_dev, fs, sizeof(float) * (size_t)hq, cudaMemcpyHostToDevice));
        p->attn.sinks = pb->sinks_dev;
        free(fs);
    }
}

static void free_problem(problem *pb)
{
    for (int i = 0; i < 4; i++)
        cudaFree(pb->bufs[i]);
    cudaFree(pb->lse_dev);
    cudaFree(pb->slopes_dev);
    cudaFree(pb->sinks_dev);
    cudaFree(pb->cu_q_dev);
    cudaFree(pb->cu_k_dev);
    free(pb->q);
    free(pb->k);
    free(pb->v);
    free(pb->slopes);
    free(pb->sinks);
}

static void free_reference(reference *ref)
{
    free(ref->slot);
    free(ref->o);
    free(ref->lse);
    memset(ref, 0, sizeof *ref);
}

/* The FP32 yardstick of rows r0 .. of one sequence, split over host threads: item (row,
 * head) keeps its own error against the double reference and its largest logit, reduced by
 * the caller. */
typedef struct ref32_job {
    const prefill_case *c;
    const problem *pb;
    const float *qs, *ks, *vs; /* the sequence's rows */
    const double *o;           /* the double reference of row r0 */
    int r0, sq, sk;
    double *err, *logit_max;   /* [items] */
} ref32_job;

static void ref32_range(int64_t first, int64_t end, void *ctx)
{
    const ref32_job *jb = ctx;
    const problem *pb = jb->pb;
    const int hq = pb->hq, hk = pb->hk, d = pb->d, group = hq / hk;
    const int64_t row_elems = (int64_t)hq * d;
    float *o32 = malloc(sizeof(float) * (size_t)d);
    for (int64_t it = first; it < end; it++) {
        const int i = jb->r0 + (int)(it / hq), h = (int)(it % hq);
        int lo, hi, diag;
        visible_range(jb->c, i, jb->sq, jb->sk, &lo, &hi, &diag);
        const float slope = jb->c->alibi ? (float)pb->slopes[h] : 0.0f;
        const float sink = pb->sinks ? (float)pb->sinks[h] : NAN;
        double logit_max = 0.0, err = 0.0;
        ref32_row(jb->qs + (int64_t)i * row_elems + (int64_t)h * d, jb->ks + (int64_t)(h / group) * d,
                  jb->vs + (int64_t)(h / group) * d, lo, hi, diag, (int64_t)hk * d, d, pb->p.attn.softmax_scale, slope,
                  jb->c->softcap, sink, o32, &logit_max);
        const double *want = jb->o + (it / hq) * row_elems + (int64_t)h * d;
        for (int e = 0; e < d; e++)
            err = fmax(err, fabs((double)o32[e] - want[e]));
        jb->err[it] = err;
        jb->logit_max[it] = logit_max;
    }
    free(o32);
}

/* The double reference of the checked rows (blocks of rows are exact sub-problems: see
 * below) and the error of the plain FP32 reference on them. */
static int compute_reference(const problem *pb, reference *ref)
{
    const prefill_case *c = pb->c;
    const int hq = pb->hq, hk = pb->hk, d = pb->d;
    const int64_t rows_q = pb->cu_q[pb->batch] - pb->cu_q[0], row_elems = (int64_t)hq * d;
    int r0[MAX_BLOCKS], r1[MAX_BLOCKS];
    free_reference(ref);
    ref->slot = malloc(sizeof(int) * (size_t)(rows_q + 1));
    for (int64_t r = 0; r < rows_q; r++)
        ref->slot[r] = -1;
    int64_t checked = 0;
    for (int b = 0; b < pb->batch; b++) {
        const int nb = row_blocks(c, pb->seqs[b].q, r0, r1);
        for (int j = 0; j < nb; j++)
            checked += r1[j] - r0[j];
    }
    ref->o = malloc(sizeof(double) * (size_t)(checked * row_elems + 1));
    ref->lse = malloc(sizeof(double) * (size_t)(checked * hq + 1));
    const float scale = pb->p.attn.softmax_scale;
    int64_t idx = 0;
    for (int b = 0; b < pb->batch; b++) {
        const int sq = pb->seqs[b].q, sk = pb->seqs[b].k;
        const float *qs = pb->q + (int64_t)(pb->cu_q[b] - pb->cu_q[0]) * row_elems;
        const float *ks = pb->k + (int64_t)(pb->cu_k[b] - pb->cu_k[0]) * hk * d;
        const float *vs = pb->v + (int64_t)(pb->cu_k[b] - pb->cu_k[0]) * hk * d;
        const int nb = row_blocks(c, sq, r0, r1);
        for (int j = 0; j < nb; j++) {
            /* Rows r0..r1-1 alone: with the causal mask, the keys up to the last row's
             * diagonal (sk - sq + r1) keep every row's diagonal, window and ALiBi distances;
             * without it every key stays (row_blocks is only asked for blocks when there is
             * no ALiBi and no window, which would move with the diagonal). */
            const int sub_k = c->causal ? imax(0, imin(sk, sk - sq + r1[j])) : sk;
            fai_ref_problem rp = {hq, hk, d, r1[j] - r0[j], sub_k, scale, c->causal, c->alibi != 0,
                                  c->alibi >= 2 ? pb->slopes : NULL, c->window, c->wl, c->wr, c->softcap, pb->sinks};
            if (fai_ref_attention(&rp, qs + (int64_t)r0[j] * row_elems, ks, vs, ref->o + idx * row_elems,
                                  ref->lse + idx * hq) != 0) {
                printf("  %s: reference failed\n", c->name);
                return -1;
            }
            const int64_t items = (int64_t)(r1[j] - r0[j]) * hq;
            ref32_job jb = {c, pb, qs, ks, vs, ref->o + idx * row_elems, r0[j], sq, sk,
                            malloc(sizeof(double) * (size_t)(items + 1)), malloc(sizeof(double) * (size_t)(items + 1))};
            for (int i = r0[j]; i < r1[j]; i++, idx++)
                ref->slot[pb->cu_q[b] - pb->cu_q[0] + i] = (int)idx;
            /* chunks of ~2^20 multiply-adds */
            fai_ref_parallel_for(items, fai_ref_grain((int64_t)sub_k * d + 1, (int64_t)1 << 20), ref32_range, &jb);
            for (int64_t it = 0; it < items; it++) {
                ref->max_err32 = fmax(ref->max_err32, jb.err[it]);
                ref->logit_max = fmax(ref->logit_max, jb.logit_max[it]);
            }
            free(jb.err);
            free(jb.logit_max);
        }
    }
    g_work += reference_work(c, pb->seqs);
    return 0;
}

static const uint32_t LSE_POISON = 0xffffffffu;

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Downloads rows lo .. hi - 1 of O (compact [rows, hq, d]) and of the LSE buffer: the
 * sequences' rows and up to PAD_CHECK rows either side. */
static void download_outputs(const problem *pb, int *lo, int *hi, uint16_t **o, float **lse)
{
    *lo = imax(0, pb->cu_q[0] - PAD_CHECK);
    *hi = imin(pb->total_q, pb->cu_q[pb->batch] + PAD_CHECK);
    const int64_t n = *hi > *lo ? *hi - *lo : 0;
    *o = malloc(sizeof(uint16_t) * (size_t)(n * pb->hq * pb->d + 1));
    *lse = malloc(sizeof(float) * (size_t)(n * pb->hq + 1));
    download_view(&pb->p.o, *o, *lo, n, pb->hq, pb->d);
    if (n)
        CUDA_CHECK(cudaMemcpy(*lse, pb->lse_dev + (int64_t)*lo * pb->hq, sizeof(float) * (size_t)(n * pb->hq),
                              cudaMemcpyDeviceToHost));
}

/* 1 when O and LSE still hold their poison (nothing was written). */
static int outputs_untouched(const problem *pb)
{
    int lo, hi, ok = 1;
    uint16_t *o;
    float *lse;
    download_outputs(pb, &lo, &hi, &o, &lse);
    const int64_t n = hi > lo ? hi - lo : 0;
    for (int64_t i = 0; i < n * pb->hq * pb->d; i++)
        ok &= o[i] == 0xffffu;
    for (int64_t i = 0; i < n * pb->hq; i++)
        ok &= float_bits(lse[i]) == LSE_POISON;
    free(o);
    free(lse);
    return ok;
}

/* Compares the GPU's O and LSE with the reference; returns 1 on failure. */
static int check_outputs(const problem *pb, const reference *ref, const char *label)
{
    const prefill_case *c = pb->c;
    const int hq = pb->hq, d = pb->d, want_lse = !c->no_lse;
    const int64_t row_elems = (int64_t)hq * d;
    int lo, hi;
    uint16_t *ob;
    float *lse;
    download_outputs(pb, &lo, &hi, &ob, &lse);

    int64_t pad_written = 0, nonfinite = 0, not_zero = 0, lse_bad = 0;
    double err2 = 0, ref2 = 0, max_err = 0, max_lse_err = 0, worst_seq_rel = 0;
    const double rel_tol = c->bf16 ? 1.6e-2 : 2e-3; /* see the top of the file */
    int seq_bad = 0, worst_seq = -1;
    for (int t = lo; t < hi; t++) {
        const uint16_t *orow = ob + (int64_t)(t - lo) * row_elems;
        const float *lrow = lse + (int64_t)(t - lo) * hq;
        if (t < pb->cu_q[0] || t >= pb->cu_q[pb->batch]) { /* outside every sequence */
            for (int64_t e = 0; e < row_elems; e++)
                pad_written += orow[e] != 0xffffu;
            for (int h = 0; h < hq; h++)
                pad_written += float_bits(lrow[h]) != LSE_POISON;
        }
    }
    for (int b = 0; b < pb->batch; b++) {
        const int sq = pb->seqs[b].q, sk = pb->seqs[b].k;
        double se2 = 0, sr2 = 0; /* the sequence's checked rows */
        int64_t sn = 0;
        for (int i = 0; i < sq; i++) {
            const int t = pb->cu_q[b] + i;
            const uint16_t *orow = ob + (int64_t)(t - lo) * row_elems;
            const float *lrow = lse + (int64_t)(t - lo) * hq;
            int lo_key, hi_key, diag;
            const int n_vis = visible_range(c, i, sq, sk, &lo_key, &hi_key, &diag);
            for (int64_t e = 0; e < row_elems; e++) {
                const float x = from_elem(orow[e]);
                nonfinite += !isfinite(x);
                not_zero += n_vis == 0 && x != 0.0f;
            }
            for (int h = 0; h < hq; h++) {
                if (!want_lse)
                    lse_bad += float_bits(lrow[h]) != LSE_POISON; /* not requested: untouched */
                else if (n_vis == 0 && pb->sinks) /* no key: the sink's logit alone */
                    lse_bad += !(fabs((double)lrow[h] - pb->sinks[h]) <= 1e-3 + 1e-4 * fabs(pb->sinks[h]));
                else if (n_vis == 0)
                    lse_bad += !(isinf(lrow[h]) && lrow[h] < 0);
                else
                    lse_bad += !isfinite(lrow[h]);
            }
            const int s = ref->slot[t - pb->cu_q[0]];
            if (s < 0)
                continue;
            const double *want = ref->o + (int64_t)s * row_elems;
            for (int64_t e = 0; e < row_elems; e++) {
                const double err = fabs((double)from_elem(orow[e]) - want[e]);
                se2 += err * err;
                sr2 += want[e] * want[e];
                if (!(err <= max_err))
                    max_err = err; /* NaN sticks */
            }
            for (int h = 0; h < hq && want_lse; h++) {
                const double w = ref->lse[(int64_t)s * hq + h];
                if (isinf(w)) {
                    lse_bad += !(isinf(lrow[h]) && lrow[h] < 0);
                } else {
                    const double le = fabs((double)lrow[h] - w);
                    if (!(le <= max_lse_err))
                        max_lse_err = le;
                    lse_bad += !(le <= 1e-3 + 1e-4 * fabs(w));
                }
            }
            sn += row_elems;
        }
        err2 += se2;
        ref2 += sr2;
        /* Each sequence on its own too: in a long varlen batch one sequence's error is
         * diluted in the pooled rel L2 (an RMS floor of 1e-6 where the reference is ~0). */
        double srel;
        if (!rel_l2_within(se2, sr2, sn, rel_tol, &srel)) {
            seq_bad++;
            if (!(srel <= worst_seq_rel)) {
                worst_seq_rel = srel;
                worst_seq = b;
            }
        }
    }
    const double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    const double bound = 2.0 * ref->max_err32 + 1e-5;
    const int ok = nonfinite == 0 && not_zero == 0 && lse_bad == 0 && pad_written == 0 && rel <= rel_tol &&
                   seq_bad == 0 && max_err <= bound;
    if (!ok || !g_small)
        printf("  %-10s %-52s rel_l2 %.2e  max_err %.2e (bound %.2e)  lse_err %.1e  %s\n", label, c->name, rel,
               max_err, bound, max_lse_err, ok ? "ok" : "FAIL");
    if (!ok)
        printf("  %-10s FAIL details: non-finite %lld, non-zero where no key %lld, bad lse %lld, "
               "poison overwritten outside the sequences %lld, sequences over the rel L2 bound %d (worst %d, %.2e)\n",
               label, (long long)nonfinite, (long long)not_zero, (long long)lse_bad, (long long)pad_written, seq_bad,
               worst_seq, worst_seq_rel);
    free(ob);
    free(lse);
    return !ok;
}

static int report_status(const problem *pb, const char *what, fai_status s)
{
    printf("  %-10s %-52s %s: %s: %s  FAIL\n", "call", pb->c->name, what, fai_status_string(s), fai_last_error());
    return 1;
}

/* One call (or graph) of case c, planned with (host_plan) or without a host copy of
 * cu_seqlens_q. Returns the number of failed checks. */
static int run_variant(problem *pb, reference *ref, fai_ref_rng *rng, int host_plan, void **ws, size_t *ws_cap,
                       cudaStream_t stream)
{
    const prefill_case *c = pb->c;
    fai_prefill_params p = pb->p;
    p.cu_seqlens_q_host = host_plan ? pb->cu_q : NULL;
    size_t bytes = 1;
    fai_status s = fai_prefill_workspace_size(&p, &bytes);
    if (s != FAI_SUCCESS)
        return report_status(pb, "fai_prefill_workspace_size", s);
    if (bytes > *ws_cap) { /* one workspace, poisoned once, reused dirty across calls */
        cudaFree(*ws);
        CUDA_CHECK(cudaMalloc(ws, bytes));
        CUDA_CHECK(cudaMemset(*ws, 0xff, bytes));
        CUDA_CHECK(cudaDeviceSynchronize()); /* (legacy stream: see poison_outputs) */
        *ws_cap = bytes;
    }
    const char *plan = host_plan ? "host plan" : "no plan";
    int fails = 0;
    if (!c->graph) {
        poison_outputs(pb);
        if (bytes > 0) { /* a workspace too small is refused and launches nothing */
            s = fai_prefill(&p, *ws, bytes - 1, stream);
            CUDA_CHECK(cudaStreamSynchronize(stream));
            if (s != FAI_ERROR_BAD_PARAM_WORKSPACE || !outputs_untouched(pb)) {
                printf("  %-10s %-52s workspace of %zu < %zu bytes: %s, outputs %s  FAIL\n", plan, c->name,
                       bytes - 1, bytes, fai_status_string(s), outputs_untouched(pb) ? "untouched" : "written");
                fails++;
            }
        }
        s = fai_prefill(&p, *ws, *ws_cap, stream);
        if (s != FAI_SUCCESS)
            return fails + report_status(pb, "fai_prefill", s);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaGetLastError());
        return fails + check_outputs(pb, ref, plan);
    }
    /* Global capture mode fails on any synchronization or allocation inside the call. */
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    s = fai_prefill(&p, *ws, *ws_cap, stream);
    CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    if (s != FAI_SUCCESS)
        return report_status(pb, "fai_prefill under capture", s);
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    poison_outputs(pb);
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    char label[32];
    snprintf(label, sizeof label, "graph %s", host_plan ? "host" : "none");
    fails += check_outputs(pb, ref, label);
    /* Replay on new values; without a host plan also on the sequences in reverse order
     * (same totals and bounds: only device values change). */
    if (!host_plan) {
        for (int b = 0; b < pb->batch / 2; b++) {
            const seq_len t = pb->seqs[b];
            pb->seqs[b] = pb->seqs[pb->batch - 1 - b];
            pb->seqs[pb->batch - 1 - b] = t;
        }
        set_offsets(pb);
    }
    upload_inputs(pb, rng);
    if (compute_reference(pb, ref) != 0)
        return fails + 1;
    poison_outputs(pb);
    CUDA_CHECK(cudaGraphLaunch(exec, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    snprintf(label, sizeof label, "graph2 %s", host_plan ? "host" : "rev");
    fails += check_outputs(pb, ref, label);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    return fails;
}

static int run_case(const prefill_case *c, int index)
{
    if (c->batch > MAX_BATCH || (c->block > 0 && !c->causal && (c->alibi || c->window))) {
        printf("test bug: %s: batch over %d, or row blocks without a causal mask but with ALiBi or a window\n",
               c->name, MAX_BATCH);
        exit(2);
    }
    g_bf16 = c->bf16;
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, g_seed * 1000003u + (uint64_t)index);
    problem pb;
    memset(&pb, 0, sizeof pb);
    reference ref;
    memset(&ref, 0, sizeof ref);
    setup_problem(&pb, c, &rng);
    printf("%s: batch %d, heads %d/%d, d %d, %s, %scausal, alibi %d, window %d (%d, %d), softcap %g, sinks %d, "
           "total_q %d, total_k %d, max_seq_q %d\n",
           c->name, c->batch, c->hq, c->hk, c->d, c->bf16 ? "bf16" : "fp16", c->causal ? "" : "non-", c->alibi,
           c->window, c->wl, c->wr, (double)c->softcap, c->sinks, pb.total_q, pb.total_k, pb.p.max_seq_q);

    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    void *ws = NULL;
    size_t ws_cap = 0;
    int fails = 0;
    for (int host_plan = 1; host_plan >= 0; host_plan--) {
        if (host_plan == 1 || c->graph) { /* a graph case starts each variant on fresh values */
            upload_inputs(&pb, &rng);
            if (compute_reference(&pb, &ref) != 0) {
                fails++;
                break;
            }
        }
        fails += run_variant(&pb, &ref, &rng, host_plan, &ws, &ws_cap, stream);
    }
    if (!g_small)
        printf("  workspace %zu bytes, logits up to %.1f\n", ws_cap, ref.logit_max);
    CUDA_CHECK(cudaStreamDestroy(stream));
    cudaFree(ws);
    free_reference(&ref);
    free_problem(&pb);
    return fails;
}

/* --random N: N cases drawn from the seed with the options combined at random, the ones the
 * tables pair only by hand: any head dim and ratio, varlen batches mixing whole prompts, chunks
 * (seq_q < seq_k), decode rows, seq_q > seq_k and empty sides, with causal, ALiBi, windows,
 * soft-cap, sinks, BF16, strided layouts, graphs and huge future keys. Sizes are held so
 * that a case's reference takes seconds. */
static prefill_case random_case(fai_ref_rng *r, int index, char *name, size_t name_size, seq_len *seqs)
{
    static const float caps[] = {5.0f, 20.0f, 30.0f, 50.0f};
    static const float stds[] = {1.0f, 1.0f, 1.0f, 3.0f, 11.0f};
    prefill_case c = {0};
    random_heads(r, 8, &c.d, &c.hq, &c.hk);
    c.batch = fai_ref_rng_chance(r, 0.9) ? 1 + fai_ref_rng_below(r, 8) : 9 + fai_ref_rng_below(r, 40);
    const int longest = fai_ref_rng_chance(r, 0.85) ? 700 : 3000;
    for (int b = 0; b < c.batch; b++) {
        const double v = fai_ref_rng_uniform(r);
        const int n = 1 + fai_ref_rng_below(r, longest), m = 1 + fai_ref_rng_below(r, longest);
        seqs[b] = v < 0.4   ? (seq_len){n, n}                       /* a whole prompt */
                  : v < 0.55 ? (seq_len){1, m}                      /* a decode row */
                  : v < 0.7  ? (seq_len){n < m ? n : m, n < m ? m : n} /* a chunk */
                  : v < 0.8  ? (seq_len){n, m}
                  : v < 0.85 ? (seq_len){0, m}
                  : v < 0.9  ? (seq_len){n, 0}
                  : v < 0.95 ? (seq_len){1, 1}
                             : (seq_len){1 + fai_ref_rng_below(r, 140), 1 + fai_ref_rng_below(r, 140)}; /* tile sizes */
    }
    c.seqs = seqs;
    c.causal = fai_ref_rng_chance(r, 0.5);
    c.alibi = fai_ref_rng_chance(r, 0.6) ? 0 : 1 + fai_ref_rng_below(r, 3);
    c.q_std = stds[fai_ref_rng_below(r, 5)];
    int square = 1; /* the fused QKV layouts need seq_q == seq_k */
    for (int b = 0; b < c.batch; b++)
        square &= seqs[b].q == seqs[b].k;
    c.layout = square ? fai_ref_rng_below(r, 4) : fai_ref_rng_chance(r, 0.5) ? LAYOUT_COMPACT : LAYOUT_KV_HND;
    c.graph = fai_ref_rng_chance(r, 0.08);
    c.no_lse = fai_ref_rng_chance(r, 0.1);
    c.lead = fai_ref_rng_chance(r, 0.2) ? -1 : 0;
    /* hints below the lengths: a longer sequence is still computed in full */
    c.max_seq_q = fai_ref_rng_chance(r, 0.1) ? 1 + fai_ref_rng_below(r, longest) : 0;
    c.max_seq_k = fai_ref_rng_chance(r, 0.1) ? 1 + fai_ref_rng_below(r, longest) : 0;
    c.huge_future = c.causal && fai_ref_rng_chance(r, 0.15);
    c.bf16 = fai_ref_rng_chance(r, 0.5);
    if (fai_ref_rng_chance(r, 0.3)) {
        c.window = 1;
        c.wl = fai_ref_rng_chance(r, 0.15)  ? -1
               : fai_ref_rng_chance(r, 0.5) ? fai_ref_rng_below(r, 64)
                                            : fai_ref_rng_below(r, 2 * longest);
        c.wr = fai_ref_rng_chance(r, 0.4) ? -1 : fai_ref_rng_chance(r, 0.5) ? 0 : fai_ref_rng_below(r, 100);
    }
    if (fai_ref_rng_chance(r, 0.25))
        c.softcap = caps[fai_ref_rng_below(r, 4)];
    c.sinks = fai_ref_rng_chance(r, 0.75) ? SINKS_NONE : 1 + fai_ref_rng_below(r, 4);
    /* a case's reference within about 2e9 multiply-adds: fewer heads, then shorter sequences */
    while (reference_work(&c, seqs) > 8e9 && c.hq > c.hk)
        c.hq -= c.hk;
    while (reference_work(&c, seqs) > 8e9)
        for (int b = 0; b < c.batch; b++)
            seqs[b] = (seq_len){seqs[b].q / 2, seqs[b].k / 2};
    snprintf(name, name_size,
             "random %d: b%d h%d/%d d%d %s%s layout %d alibi %d window %d (%d, %d) softcap %g sinks %d q_std %g"
             "%s%s%s%s%s",
             index, c.batch, c.hq, c.hk, c.d, c.bf16 ? "bf16" : "fp16", c.causal ? " causal" : "", c.layout, c.alibi,
             c.window, c.wl, c.wr, (double)c.softcap, c.sinks, (double)c.q_std, c.graph ? " graph" : "",
             c.no_lse ? " no-lse" : "", c.huge_future ? " huge-future" : "", c.lead < 0 ? " no-pad" : "",
             c.max_seq_q || c.max_seq_k ? " hints" : "");
    c.name = name;
    return c;
}

/* --small keeps shapes compute-sanitizer runs through quickly. */
static int is_small(const prefill_case *c)
{
    int rows_q = 0, rows_k = 0;
    for (int b = 0; b < c->batch; b++) {
        rows_q += c->seqs[b].q;
        rows_k += c->seqs[b].k;
    }
    return c->lead <= PAD_LEAD && rows_q <= 1200 && rows_k <= 1200 && reference_work(c, c->seqs) <= 4e8;
}

int main(int argc, char **argv)
{
    gpu_require_device("test_prefill");
    const char *env = getenv("FAI_TEST_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    g_small = argc > 1 && strcmp(argv[1], "--small") == 0; /* for compute-sanitizer */
    printf("test_prefill: seed %llu (FAI_TEST_SEED=%llu reproduces)%s\n", (unsigned long long)g_seed,
           (unsigned long long)g_seed, g_small ? ", small shapes" : argc > 2 ? ", random cases" : "");

    /* The tables' cases (built in main, not in a function of their own: their SEQS are
     * compound literals, which live as long as the block they are written in). */
    static prefill_case cases[TABLE_CASES];
    static char names[160][64];
    int n = 0;
    /* Every head dim x GQA ratio (1, 4, 7, 8, MQA); causal and ALiBi (off, standard, caller)
     * alternate so that each dim and each ratio sees both masks and all six pairs occur. One
     * varlen batch of tile-straddling lengths, an empty query side, an empty key side, a
     * chunk (40 x 300), seq_q > seq_k (64 x 20) and two decode rows (1 x 1, 1 x 200). */
    static const seq_len grid_seqs[] = {{17, 17}, {0, 30}, {127, 127}, {1, 1}, {129, 129},
                                        {50, 0},  {40, 300}, {64, 20}, {1, 200}};
    const int dims[] = {64, 96, 128, 256};
    const int heads[][2] = {{8, 8}, {16, 4}, {14, 2}, {16, 2}, {8, 1}};
    for (int di = 0; di < 4; di++)
        for (int hi = 0; hi < 5; hi++) {
            prefill_case c = {0};
            c.causal = (di + hi) % 2 == 0;
            c.alibi = (di + hi) % 3;
            snprintf(names[n], sizeof names[n], "d%d h%d/%d varlen%s%s", dims[di], heads[hi][0], heads[hi][1],
                     c.causal ? " causal" : "", c.alibi == 1 ? " alibi" : c.alibi == 2 ? " alibi slopes" : "");
            c.name = names[n];
            c.hq = heads[hi][0];
            c.hk = heads[hi][1];
            c.d = dims[di];
            c.seqs = grid_seqs;
            c.batch = (int)(sizeof grid_seqs / sizeof grid_seqs[0]);
            cases[n++] = c;
        }
    /* A large varlen batch: 72 sequences of mixed lengths (empty ones, single rows, chunks over
     * longer keys, ragged tile edges), deterministic. */
    static seq_len many_seqs[72];
    for (int b = 0; b < 72; b++) {
        static const int qs[] = {0, 1, 7, 64, 65, 129, 200, 1};
        const int q = qs[b % 8], k = q + (b * 37) % 300 - (b % 5 == 0 ? q : 0);
        many_seqs[b] = (seq_len){q, k};
    }
    const prefill_case extra[] = {
        /* Packed K/V past 64K keys on the prefill kernels: a chunk of 128 queries at the end of
         * 70000 keys (rows around every 64th and each end against the reference). */
        {.name = "packed 70000 keys: chunk 128x70000, d128 8/2 causal", .hq = 8, .hk = 2, .d = 128,
         SEQS({128, 70000}), .causal = 1, .block = 16, .stride = 64},
        {.name = "varlen batch of 72, d64 16/4 causal", .hq = 16, .hk = 4, .d = 64, .seqs = many_seqs, .batch = 72,
         .causal = 1},
        /* Length 1000 on every head dim; 16 rows around each multiple of 256 checked. With
         * 28-32 query heads the grid has over 132 blocks of 128 rows, so these keep the
         * two-tiles-per-warp kernels even in a FAI_PREFILL_SMALL_GRID build (where the small
         * cases take the 64-row ones). */
        {.name = "seq 1000, d64 32/32 causal", .hq = 32, .hk = 32, .d = 64, SEQS({1000, 1000}), .causal = 1,
         .block = 16, .stride = 256},
        {.name = "seq 1000, d96 28/4", .hq = 28, .hk = 4, .d = 96, SEQS({1000, 1000}), .block = 16, .stride = 256},
        {.name = "seq 1000, d128 32/8 causal alibi", .hq = 32, .hk = 8, .d = 128, SEQS({1000, 1000}), .causal = 1,
         .alibi = 1, .block = 16, .stride = 256},
        {.name = "seq 1000, d256 8/1 (MQA)", .hq = 8, .hk = 1, .d = 256, SEQS({1000, 1000}), .block = 16,
         .stride = 256},
        /* Chunked prefill and prefix caching: seq_q < seq_k under the bottom-right mask. */
        {.name = "chunked: 100x1000, 1x500, 300x700, alibi slopes", .hq = 16, .hk = 4, .d = 128,
         SEQS({100, 1000}, {1, 500}, {300, 700}), .causal = 1, .alibi = 2, .block = 16, .stride = 64},
        /* seq_q > seq_k: the first seq_q - seq_k rows see nothing (zeros, LSE -inf). */
        {.name = "seq_q > seq_k causal: 100x30, 64x1, 129x0, 17x16", .hq = 8, .hk = 2, .d = 64,
         SEQS({100, 30}, {64, 1}, {129, 0}, {17, 16}, {5, 5}), .causal = 1, .alibi = 2},
        {.name = "empty sequences among others", .hq = 8, .hk = 8, .d = 128,
         SEQS({0, 0}, {0, 50}, {40, 0}, {0, 0}, {33, 33}, {0, 7}, {1, 0}, {0, 0}), .causal = 1},
        {.name = "no query rows at all: total_q 0, q/o NULL", .hq = 4, .hk = 4, .d = 64,
         SEQS({0, 10}, {0, 0}, {0, 5}), .lead = -1},
        {.name = "no key rows at all: total_k 0, k/v NULL", .hq = 8, .hk = 2, .d = 96,
         SEQS({5, 0}, {1, 0}, {130, 0}), .lead = -1},
        /* Hybrid batches: decode steps (1 x seq_k) among prefill sequences. */
        {.name = "hybrid 4 x 128x128 + 4 x 1x128", .hq = 32, .hk = 8, .d = 128,
         SEQS({128, 128}, {1, 128}, {128, 128}, {1, 128}, {1, 128}, {128, 128}, {128, 128}, {1, 128}),
         .causal = 1},
        {.name = "hybrid, long decode rows (split KV)", .hq = 32, .hk = 8, .d = 128,
         SEQS({1, 20000}, {64, 64}, {1, 3000}, {1, 0}, {17, 17}), .causal = 1, .max_seq_k = 20000},
        {.name = "decode rows only, MQA 8/1 d64 alibi", .hq = 8, .hk = 1, .d = 64,
         SEQS({1, 0}, {1, 1}, {1, 7}, {1, 64}, {1, 65}, {1, 127}, {1, 128}, {1, 129}, {1, 255}, {1, 256},
              {1, 300}, {1, 511}, {1, 512}, {1, 513}, {1, 600}, {1, 1000}),
         .alibi = 1},
        {.name = "decode rows only, d256 14/2, lse NULL", .hq = 14, .hk = 2, .d = 256,
         SEQS({1, 300}, {1, 1}, {1, 2000}, {1, 129}), .causal = 1, .no_lse = 1},
        /* Softmax stability. */
        {.name = "logits to +-50, causal", .hq = 8, .hk = 8, .d = 128, SEQS({257, 257}, {31, 31}, {1, 100}),
         .causal = 1, .q_std = 11.0f},
        {.name = "logits to +-50, d256 MQA", .hq = 4, .hk = 1, .d = 256, SEQS({200, 150}, {1, 77}, {65, 65}),
         .q_std = 11.0f},
        {.name = "very negative logits: slope 8, 1000x100", .hq = 4, .hk = 4, .d = 64,
         SEQS({1000, 100}, {64, 64}), .alibi = 3},
        {.name = "huge keys above the causal diagonal", .hq = 8, .hk = 2, .d = 128,
         SEQS({200, 200}, {50, 300}, {129, 129}), .causal = 1, .huge_future = 1},
        /* Strided views. */
        {.name = "fused QKV view, head-major O, causal", .hq = 16, .hk = 4, .d = 128,
         SEQS({129, 129}, {1, 1}, {300, 300}, {0, 0}, {64, 64}), .causal = 1, .layout = LAYOUT_FUSED},
        {.name = "fused QKV view, head-major O, 14/2 alibi", .hq = 14, .hk = 2, .d = 64,
         SEQS({17, 17}, {100, 100}, {1, 1}, {33, 33}), .alibi = 1, .layout = LAYOUT_FUSED},
        {.name = "head-major K/V, d96, alibi slopes", .hq = 8, .hk = 8, .d = 96,
         SEQS({77, 200}, {1, 90}, {150, 150}), .causal = 1, .alibi = 2, .layout = LAYOUT_KV_HND},
        {.name = "lse NULL, d256", .hq = 8, .hk = 4, .d = 256, SEQS({100, 100}, {1, 60}, {33, 80}), .causal = 1,
         .no_lse = 1},
        /* Long sequences: 16 rows around every multiple of 1024 / 512 checked. */
        {.name = "seq 4096 causal, d128 32/8", .hq = 32, .hk = 8, .d = 128, SEQS({4096, 4096}), .causal = 1,
         .block = 16, .stride = 1024},
        {.name = "seq 2048, d256 4/4", .hq = 4, .hk = 4, .d = 256, SEQS({2048, 2048}), .block = 16, .stride = 512},
        /* max_seq_q below the longest sequence: still computed in full. */
        {.name = "max_seq_q 64 < longest 1000", .hq = 8, .hk = 2, .d = 64,
         SEQS({1000, 1000}, {5, 5}, {300, 300}), .causal = 1, .max_seq_q = 64, .block = 16, .stride = 256},
        {.name = "max_seq_q 1 < longest 130 (hybrid)", .hq = 8, .hk = 8, .d = 128,
         SEQS({130, 130}, {1, 50}, {2, 2}), .max_seq_q = 1},
        /* 288 blocks (past one wave of two an SM on 132 SMs: the mma.sync kernel fills its
         * whole ring first) whose first blocks each loop over three query tiles. */
        {.name = "max_seq_q 64 < longest 300, 9 x 32 heads (ring fill, tiles loop)", .hq = 32, .hk = 8, .d = 64,
         SEQS({300, 300}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}),
         .causal = 1, .max_seq_q = 64},
        /* One wave of 128-row blocks (132-264 on an H100 or H200) and keys a sequence (the
         * mean: max_seq_k 0) within the ring: plain attention takes the one-wave kernel on the
         * mma.sync path (test_prefill_mma_sync runs these: small shapes), which copies keys
         * and values one group at a time, over a short item's tiles and, for the 250-key
         * sequence, through its two-stage ring again. */
        {.name = "one wave: 8 x up to 128 rows, 20/4 causal alibi", .hq = 20, .hk = 4, .d = 128,
         SEQS({128, 128}, {77, 77}, {128, 90}, {64, 128}, {128, 128}, {5, 5}, {0, 40}, {128, 128}), .causal = 1,
         .alibi = 1},
        {.name = "one wave: keys to 250, 24/8 alibi slopes", .hq = 24, .hk = 8, .d = 128,
         SEQS({32, 250}, {16, 40}, {32, 60}, {8, 64}, {20, 100}, {24, 30}), .alibi = 2},
        {.name = "one wave, bf16: keys to 160, 48/16 causal", .hq = 48, .hk = 16, .d = 128,
         SEQS({48, 160}, {64, 64}, {33, 120}), .causal = 1, .bf16 = 1},
        /* Without host lengths the grid is sized by a max_seq_q that is too small: one wave
         * whose first blocks loop over two query tiles (not the one-wave kernel's work). */
        {.name = "one wave?: max_seq_q 64 < longest 160, 24/8", .hq = 24, .hk = 8, .d = 128,
         SEQS({160, 160}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}, {64, 64}), .causal = 1,
         .max_seq_q = 64},
        /* CUDA graphs: device values are read at replay. */
        {.name = "CUDA graph, hybrid", .hq = 16, .hk = 4, .d = 128,
         SEQS({128, 128}, {1, 300}, {77, 77}, {1, 1}), .causal = 1, .graph = 1},
        {.name = "CUDA graph, varlen with empty, d64 alibi", .hq = 8, .hk = 2, .d = 64,
         SEQS({100, 100}, {1, 500}, {40, 60}, {0, 20}), .causal = 1, .alibi = 1, .graph = 1},
        /* Element offsets past 2^31: 540000 NaN rows before the batch in a fused QKV buffer
         * (6144 elements a row) and a compact O (4096 elements a row). */
        {.name = "offsets past 2^31 (fused QKV, 540000 rows first)", .hq = 32, .hk = 8, .d = 128,
         SEQS({300, 300}, {1, 1}, {128, 128}), .causal = 1, .layout = LAYOUT_FUSED_O, .lead = 540000},
        /* The Hopper (wgmma) kernel's calls: head dim 128 without ALiBi on grids of 132+
         * 128-row blocks (smaller grids take the 64-row mma.sync kernel). Ragged key tiles
         * whose rows past the sequence are the next sequence's or NaN padding, keys shorter
         * than a tile, seq_q < seq_k and seq_q > seq_k under the causal mask, GQA 7. */
        {.name = "wgmma path: varlen 28/4 non-causal", .hq = 28, .hk = 4, .d = 128,
         SEQS({1000, 1000}, {1, 300}, {0, 50}, {129, 77}, {300, 300}, {70, 5}, {256, 256}), .block = 16,
         .stride = 128},
        {.name = "wgmma path: causal chunks 32/8", .hq = 32, .hk = 8, .d = 128,
         SEQS({100, 1000}, {300, 700}, {200, 130}, {640, 640}, {5, 0}), .causal = 1, .block = 16, .stride = 64},
        {.name = "wgmma path: logits to +-50, causal, max_seq_q 64", .hq = 48, .hk = 48, .d = 128,
         SEQS({600, 600}, {257, 257}, {31, 31}), .causal = 1, .q_std = 11.0f, .max_seq_q = 64},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        cases[n++] = extra[i];

    /* BF16 on every head dim, two GQA ratios each, on the varlen grid's shapes (decode rows
     * included: a BF16 call runs them on the decoding kernels, as FP16 does). */
    for (int di = 0; di < 4; di++)
        for (int hi = 0; hi < 5; hi += 2) {
            prefill_case c = {0};
            c.bf16 = 1;
            c.causal = (di + hi / 2) % 2 == 0;
            c.alibi = (di + hi) % 3;
            snprintf(names[n], sizeof names[n], "bf16 d%d h%d/%d varlen%s%s", dims[di], heads[hi][0], heads[hi][1],
                     c.causal ? " causal" : "", c.alibi == 1 ? " alibi" : c.alibi == 2 ? " alibi slopes" : "");
            c.name = names[n];
            c.hq = heads[hi][0];
            c.hk = heads[hi][1];
            c.d = dims[di];
            c.seqs = grid_seqs;
            c.batch = (int)(sizeof grid_seqs / sizeof grid_seqs[0]);
            cases[n++] = c;
        }
    /* The variants: sliding window, soft-cap, sinks, alone and combined, FP16 and BF16. */
    const prefill_case variants[] = {
        /* Causal windows (Mistral, gpt-oss, Gemma's local layers) smaller than, equal to and
         * larger than the sequence; rows checked around the tile boundaries. */
        {.name = "window 100 causal, 1000x1000, d128 32/8", .hq = 32, .hk = 8, .d = 128, SEQS({1000, 1000}),
         .causal = 1, .window = 1, .wl = 100, .wr = -1, .block = 16, .stride = 256},
        {.name = "window 999 causal (the whole sequence), d64 16/4", .hq = 16, .hk = 4, .d = 64, SEQS({1000, 1000}),
         .causal = 1, .window = 1, .wl = 999, .wr = 0, .block = 16, .stride = 256},
        {.name = "window 5000/5000 (larger than seq), d96 8/2", .hq = 8, .hk = 2, .d = 96,
         SEQS({300, 300}, {1, 77}, {129, 500}, {0, 9}), .window = 1, .wl = 5000, .wr = 5000},
        /* Two-sided windows without the causal mask over the varlen shapes. */
        {.name = "window 37/45 non-causal varlen, d128 16/4", .hq = 16, .hk = 4, .d = 128,
         SEQS({17, 17}, {0, 30}, {127, 127}, {1, 1}, {129, 129}, {50, 0}, {40, 300}, {64, 20}, {1, 200}),
         .window = 1, .wl = 37, .wr = 45},
        {.name = "window 0/0: the diagonal key only, d64 8/8", .hq = 8, .hk = 8, .d = 64,
         SEQS({64, 64}, {50, 80}, {1, 10}, {200, 200}), .window = 1, .wl = 0, .wr = 0},
        {.name = "window 20/7 with causal (right stays 0), d256 4/2", .hq = 4, .hk = 2, .d = 256,
         SEQS({200, 200}, {33, 100}, {1, 40}), .causal = 1, .window = 1, .wl = 20, .wr = 7},
        {.name = "window -1/-1 (no bound at all), alibi", .hq = 8, .hk = 4, .d = 128,
         SEQS({150, 150}, {1, 90}), .window = 1, .wl = -1, .wr = -1, .alibi = 1},
        {.name = "window 64/-1 non-causal, alibi slopes, d128 8/4", .hq = 8, .hk = 4, .d = 128,
         SEQS({150, 150}, {1, 90}, {20, 300}), .window = 1, .wl = 64, .wr = -1, .alibi = 2},
        /* Rows with no visible key (seq_q > seq_k and a bounded right side): zeros, LSE -inf;
         * with sinks the sink alone: zeros, LSE sinks[h]. */
        {.name = "window 3/2, seq_q > seq_k: rows see no key, d64 8/2", .hq = 8, .hk = 2, .d = 64,
         SEQS({100, 30}, {64, 1}, {20, 0}, {17, 16}), .window = 1, .wl = 3, .wr = 2},
        {.name = "the same with sinks (rows of the sink alone)", .hq = 8, .hk = 2, .d = 64,
         SEQS({100, 30}, {64, 1}, {20, 0}, {17, 16}), .window = 1, .wl = 3, .wr = 2, .sinks = SINKS_RANDOM},
        /* Masked keys with huge scores must not leak: outside a two-sided window, and above the
         * causal diagonal of a BF16 window. */
        {.name = "huge keys outside a 20/20 window", .hq = 8, .hk = 2, .d = 128, SEQS({200, 200}, {129, 129}),
         .window = 1, .wl = 20, .wr = 20, .huge_future = 1},
        {.name = "bf16 huge keys above the diagonal, window 30", .hq = 8, .hk = 2, .d = 128,
         SEQS({200, 200}, {50, 300}, {129, 129}), .causal = 1, .window = 1, .wl = 30, .wr = -1, .huge_future = 1,
         .bf16 = 1},
        /* Long keys: the tiles left of the window are never visited (the loop bounds). */
        {.name = "window 256 causal, chunk 100x5000 + 4096x4096", .hq = 32, .hk = 8, .d = 128,
         SEQS({100, 5000}, {4096, 4096}), .causal = 1, .window = 1, .wl = 256, .wr = -1, .block = 16,
         .stride = 1024},
        {.name = "window 512, max_seq_q 64 < 3000 (tiles loop)", .hq = 8, .hk = 2, .d = 64, SEQS({3000, 3000}, {5, 5}),
         .causal = 1, .window = 1, .wl = 512, .wr = -1, .max_seq_q = 64, .block = 16, .stride = 512},
        /* Chunks far right in their keys, whose keys left of the windows are NaN (see
         * poison_unseen_keys), small enough for test_prefill_mma_sync: head dim 96 (mma.sync
         * only, 32-key tiles) in BF16, and head dim 256 with Gemma 2's soft-cap (Hopper's
         * 64-key tiles on an H100, mma.sync's 32 with FAI_PREFILL_SM90=0); decode rows too. */
        {.name = "bf16 window 100 causal, chunk 100x900, d96 16/4", .hq = 16, .hk = 4, .d = 96,
         SEQS({100, 900}, {1, 250}), .causal = 1, .window = 1, .wl = 100, .wr = -1, .bf16 = 1},
        {.name = "Gemma 2 chunk 64x1100: window 256 + softcap 50, d256", .hq = 8, .hk = 4, .d = 256,
         SEQS({64, 1100}, {1, 60}), .causal = 1, .window = 1, .wl = 255, .wr = -1, .softcap = 50.0f,
         .q_std = 4.0f},
        /* Soft-cap: 5 under logits to +-50 (far beyond it), 30 with ALiBi. */
        {.name = "softcap 5, logits to +-50, causal, d128 8/8", .hq = 8, .hk = 8, .d = 128,
         SEQS({257, 257}, {31, 31}, {1, 100}), .causal = 1, .q_std = 11.0f, .softcap = 5.0f},
        {.name = "bf16 softcap 5, logits to +-50, d256 4/1", .hq = 4, .hk = 1, .d = 256,
         SEQS({200, 150}, {1, 77}, {65, 65}), .q_std = 11.0f, .softcap = 5.0f, .bf16 = 1},
        {.name = "softcap 30 + alibi slopes, d96 8/4", .hq = 8, .hk = 4, .d = 96,
         SEQS({129, 129}, {40, 300}, {1, 50}), .softcap = 30.0f, .alibi = 2, .q_std = 4.0f},
        {.name = "softcap 50, seq 1000 causal, d64 32/32", .hq = 32, .hk = 32, .d = 64, SEQS({1000, 1000}),
         .causal = 1, .softcap = 50.0f, .q_std = 8.0f, .block = 16, .stride = 256},
        /* Sinks: about the logits' size, far above and far below every logit. */
        {.name = "sinks random, varlen with empty sides, d128 16/4", .hq = 16, .hk = 4, .d = 128,
         SEQS({17, 17}, {0, 30}, {127, 127}, {1, 1}, {50, 0}, {40, 300}, {64, 20}, {1, 200}), .causal = 1,
         .sinks = SINKS_RANDOM},
        {.name = "sinks 8 (above every logit), d64 8/8", .hq = 8, .hk = 8, .d = 64,
         SEQS({129, 129}, {1, 300}, {77, 200}), .sinks = SINKS_HIGH},
        {.name = "bf16 sinks 8 (above every logit), d96 8/2", .hq = 8, .hk = 2, .d = 96,
         SEQS({129, 129}, {1, 300}, {77, 200}), .causal = 1, .sinks = SINKS_HIGH, .bf16 = 1},
        {.name = "sinks 1000: every output 0, LSE 1000, d128 8/2", .hq = 8, .hk = 2, .d = 128,
         SEQS({129, 129}, {1, 300}, {30, 0}, {77, 200}), .causal = 1, .sinks = SINKS_HUGE},
        {.name = "bf16 sinks 1000, d64 4/4", .hq = 4, .hk = 4, .d = 64, SEQS({100, 100}, {1, 50}, {64, 20}),
         .sinks = SINKS_HUGE, .bf16 = 1},
        {.name = "sinks -1000: no effect, d256 8/8", .hq = 8, .hk = 8, .d = 256,
         SEQS({100, 100}, {1, 50}, {64, 20}, {0, 5}), .causal = 1, .sinks = SINKS_TINY},
        /* The adversarial cases above on grids the planner gives 128-row tiles (32+ query
         * heads), which on an H100 take the Hopper kernel (head dims 64 and 128; the cases
         * above, of 8 or fewer heads, plan 64-row tiles: mma.sync). */
        {.name = "hopper: huge keys above the diagonal, d128 32/8", .hq = 32, .hk = 8, .d = 128,
         SEQS({700, 700}, {129, 300}, {300, 300}), .causal = 1, .huge_future = 1},
        {.name = "hopper: bf16 huge keys outside a 20/20 window, d64 48/8", .hq = 48, .hk = 8, .d = 64,
         SEQS({400, 400}, {300, 300}), .window = 1, .wl = 20, .wr = 20, .huge_future = 1, .bf16 = 1},
        {.name = "hopper: window 3/2 rows with no key, sinks, d128 32/8", .hq = 32, .hk = 8, .d = 128,
         SEQS({300, 100}, {200, 1}, {129, 0}, {150, 149}), .window = 1, .wl = 3, .wr = 2, .sinks = SINKS_RANDOM},
        {.name = "hopper: sinks 8 (above every logit), d128 32/8", .hq = 32, .hk = 8, .d = 128,
         SEQS({300, 300}, {129, 500}), .sinks = SINKS_HIGH},
        {.name = "hopper: sinks 1000, causal, d64 48/8", .hq = 48, .hk = 8, .d = 64,
         SEQS({300, 300}, {129, 500}, {40, 0}), .causal = 1, .sinks = SINKS_HUGE},
        {.name = "hopper: alibi slope 8 (logits to -8000), d64 32/32", .hq = 32, .hk = 32, .d = 64,
         SEQS({1000, 100}, {64, 64}), .alibi = 3},
        {.name = "hopper: window 5000/5000 (larger than seq), d128 32/8", .hq = 32, .hk = 8, .d = 128,
         SEQS({300, 300}, {1, 77}, {129, 500}, {0, 9}), .window = 1, .wl = 5000, .wr = 5000},
        /* The combinations of today's models: gpt-oss (window 128 + sinks, 64/8 heads of 64)
         * and Gemma 2 (window + soft-cap 50, heads of 256), FP16 and BF16; then everything. */
        {.name = "gpt-oss: window 128 + sinks, 64/8 d64", .hq = 64, .hk = 8, .d = 64,
         SEQS({400, 400}, {1, 400}, {130, 700}), .causal = 1, .window = 1, .wl = 127, .wr = 0,
         .sinks = SINKS_RANDOM},
        {.name = "bf16 gpt-oss: window 128 + sinks, 64/8 d64", .hq = 64, .hk = 8, .d = 64,
         SEQS({400, 400}, {1, 400}, {130, 700}), .causal = 1, .window = 1, .wl = 127, .wr = 0,
         .sinks = SINKS_RANDOM, .bf16 = 1},
        {.name = "Gemma 2: window 256 + softcap 50, 8/4 d256", .hq = 8, .hk = 4, .d = 256,
         SEQS({400, 400}, {1, 400}, {129, 129}), .causal = 1, .window = 1, .wl = 255, .wr = -1, .softcap = 50.0f,
         .q_std = 4.0f},
        {.name = "bf16 Gemma 2: window 256 + softcap 50, 8/4 d256", .hq = 8, .hk = 4, .d = 256,
         SEQS({400, 400}, {1, 400}, {129, 129}), .causal = 1, .window = 1, .wl = 255, .wr = -1, .softcap = 50.0f,
         .q_std = 4.0f, .bf16 = 1},
        {.name = "bf16 window 40/10 + softcap 8 + sinks + alibi, 14/2", .hq = 14, .hk = 2, .d = 128,
         SEQS({100, 100}, {1, 60}, {70, 200}, {50, 20}), .window = 1, .wl = 40, .wr = 10, .softcap = 8.0f,
         .sinks = SINKS_RANDOM, .alibi = 1, .q_std = 3.0f, .bf16 = 1},
        /* Hybrid batches with a variant or BF16: decode rows on the decoding kernels' varlen
         * mode (with and without the host plan, as every case). */
        {.name = "hybrid + window 64 + sinks", .hq = 32, .hk = 8, .d = 128,
         SEQS({128, 128}, {1, 128}, {128, 128}, {1, 128}, {1, 2000}), .causal = 1, .window = 1, .wl = 64, .wr = -1,
         .sinks = SINKS_RANDOM},
        {.name = "bf16 hybrid, decode row 1x20000, window 1024", .hq = 16, .hk = 4, .d = 128,
         SEQS({1, 20000}, {64, 64}, {1, 3000}, {1, 0}, {17, 17}), .causal = 1, .window = 1, .wl = 1024, .wr = -1,
         .max_seq_k = 20000, .bf16 = 1},
        {.name = "decode rows only, softcap 20, bf16 d64 MQA", .hq = 8, .hk = 1, .d = 64,
         SEQS({1, 0}, {1, 1}, {1, 7}, {1, 64}, {1, 65}, {1, 127}, {1, 513}, {1, 1000}), .softcap = 20.0f,
         .q_std = 3.0f, .bf16 = 1},
        /* BF16 on the other paths: long sequence, logits to +-50, strided views, graphs. */
        {.name = "bf16 seq 1000, d128 32/8 causal alibi", .hq = 32, .hk = 8, .d = 128, SEQS({1000, 1000}),
         .causal = 1, .alibi = 1, .block = 16, .stride = 256, .bf16 = 1},
        {.name = "bf16 logits to +-50, causal, d128 8/8", .hq = 8, .hk = 8, .d = 128,
         SEQS({257, 257}, {31, 31}, {1, 100}), .causal = 1, .q_std = 11.0f, .bf16 = 1},
        {.name = "wgmma path: softcap 30 + sinks, d128 32/8 causal", .hq = 32, .hk = 8, .d = 128,
         SEQS({700, 700}, {1, 50}, {129, 300}, {300, 300}, {0, 9}), .causal = 1, .softcap = 30.0f, .q_std = 4.0f,
         .sinks = SINKS_RANDOM},
        {.name = "wgmma path: alibi slopes + window 200, d64 32/4", .hq = 32, .hk = 4, .d = 64,
         SEQS({1000, 1000}, {1, 77}, {130, 400}, {260, 260}), .causal = 1, .alibi = 2, .window = 1, .wl = 200,
         .wr = -1, .block = 16, .stride = 128},
        {.name = "wgmma path: d64 window 90 + sinks + softcap 20, max_seq_q 64", .hq = 48, .hk = 8, .d = 64,
         SEQS({700, 700}, {300, 300}, {129, 500}), .causal = 1, .window = 1, .wl = 90, .wr = -1,
         .softcap = 20.0f, .sinks = SINKS_RANDOM, .max_seq_q = 64, .q_std = 3.0f},
        {.name = "wgmma path: alibi, d128 32/8 non-causal", .hq = 32, .hk = 8, .d = 128,
         SEQS({500, 500}, {64, 700}, {129, 5}), .alibi = 1},
        {.name = "bf16 wgmma path: window 100/50 non-causal, d128 16/16", .hq = 16, .hk = 16, .d = 128,
         SEQS({900, 900}, {300, 500}, {1, 1}, {129, 129}), .window = 1, .wl = 100, .wr = 50, .bf16 = 1},
        {.name = "bf16 wgmma path: d64 varlen 48/8 causal", .hq = 48, .hk = 8, .d = 64,
         SEQS({333, 333}, {1, 10}, {128, 128}, {0, 40}, {90, 600}), .causal = 1, .bf16 = 1},
        {.name = "bf16 wgmma path: varlen 32/8 causal, fused QKV", .hq = 32, .hk = 8, .d = 128,
         SEQS({700, 700}, {1, 1}, {129, 129}, {300, 300}, {50, 50}), .causal = 1, .layout = LAYOUT_FUSED_O,
         .q_std = 4.0f, .bf16 = 1},
        {.name = "bf16 fused QKV view, head-major O, causal", .hq = 16, .hk = 4, .d = 128,
         SEQS({129, 129}, {1, 1}, {300, 300}, {0, 0}, {64, 64}), .causal = 1, .layout = LAYOUT_FUSED, .bf16 = 1},
        {.name = "bf16 head-major K/V, d96, window 50", .hq = 8, .hk = 8, .d = 96, SEQS({77, 200}, {1, 90}, {150, 150}),
         .causal = 1, .window = 1, .wl = 50, .wr = -1, .layout = LAYOUT_KV_HND, .bf16 = 1},
        {.name = "bf16 CUDA graph, hybrid + sinks + window", .hq = 16, .hk = 4, .d = 128,
         SEQS({128, 128}, {1, 300}, {77, 77}, {1, 1}), .causal = 1, .window = 1, .wl = 100, .wr = -1,
         .sinks = SINKS_RANDOM, .graph = 1, .bf16 = 1},
    };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        if (n == (int)(sizeof cases / sizeof cases[0])) {
            printf("test bug: more than %d cases\n", n);
            exit(2);
        }
        cases[n++] = variants[i];
    }

    /* --random N: the drawn cases instead */
    const int random = random_count(argc, argv, TABLE_CASES);
    if (random > 0) {
        static char rnames[TABLE_CASES][200];
        static seq_len rseqs[TABLE_CASES][MAX_BATCH];
        fai_ref_rng r;
        fai_ref_rng_seed(&r, g_seed ^ 0x5eed5eedull);
        for (n = 0; n < random; n++)
            cases[n] = random_case(&r, n, rnames[n], sizeof rnames[n], rseqs[n]);
    }

    int failed = 0, ran = 0;
    const char *only = getenv("FAI_TEST_NAME"); /* run only the cases whose name contains it */
    for (int i = 0; i < n; i++) {
        if ((g_small && !is_small(&cases[i])) || (only && !strstr(cases[i].name, only)))
            continue;
        failed += run_case(&cases[i], i) > 0;
        ran++;
    }

    /* batch 0 launches nothing, needs no workspace and succeeds. */
    fai_prefill_params p0 = fai_prefill_params_default();
    size_t ws = 1;
    fai_status s0 = fai_prefill_workspace_size(&p0, &ws), s1 = fai_prefill(&p0, NULL, 0, 0);
    if (s0 != FAI_SUCCESS || ws != 0 || s1 != FAI_SUCCESS) {
        printf("batch 0: %s, %zu bytes, %s: FAIL (%s)\n", fai_status_string(s0), ws, fai_status_string(s1),
               fai_last_error());
        failed++;
    }
    ran++;
    printf("test_prefill: reference work %.2g multiply-adds\n", g_work);
    printf("test_prefill: %d cases, %d failed\n", ran, failed);
    return failed ? 1 : 0;
}
