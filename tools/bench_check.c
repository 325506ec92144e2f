/* fai-bench --check (see bench_check.h).
 *
 * Sampling: n = min(total_q, CHECK_ROWS) query tokens at evenly spaced positions of the packed
 * batch (so the first and last sequences, and in a hybrid batch both the prefill and the
 * decode rows, are in it). For each token and each chosen KV head g, the reference computes the
 * group of query heads g * group .. g * group + group - 1 as a problem of its own:
 *   causal            seq_q 1 against the token's visible keys 0 .. diag (diag = i + sk - sq):
 *                     the same diagonal, so the same mask and ALiBi distances;
 *   not causal        seq_q 1 against all sk keys (no position enters without ALiBi);
 *   not causal, ALiBi or sliding window
 *                     rows i .. sq - 1 against all keys, row 0 kept (the ALiBi distances and
 *                     the window need the real diagonal), with the token moved into the last 4
 *                     rows of its sequence to keep that small.
 * The window, soft-cap and sinks go into every such problem as they are (the sinks of the
 * group's query heads), so the reference applies the variants the call did.
 * KV heads: all of them when the reference work fits CHECK_MACS, else an evenly spaced subset
 * whose offset moves with each sequence. */
#include "bench_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_prefill.h" /* g_check_passed, g_check_failed */
#include "bench_util.h"
#include "reference.h"

/* One checked (token, KV head): the reference output of its query-head group. */
typedef struct check_unit {
    int64_t token;
    int kv_head;
    double *ref; /* [group * d] */
} check_unit;

struct check_ref {
    check_unit *units;
    int n_units, n_tokens, heads_per_token;
    double max_err32; /* max |plain FP32 reference rounded to the element type - double reference| */
    unsigned long long *count_dev;
};

static float half_to_float(uint16_t h)
{
    const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f;
    if (exp == 0)
        f = ldexpf((float)man, -24);
    else if (exp == 31)
        f = man ? NAN : INFINITY;
    else
        f = ldexpf((float)(1024 + man), exp - 25);
    return (h & 0x8000) ? -f : f;
}

static float bf16_to_float(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float elem_to_float(uint16_t h, int bf16)
{
    return bf16 ? bf16_to_float(h) : half_to_float(h);
}

/* f rounded to the nearest BF16 value (ties to even), returned as a float. */
static float round_to_bf16(float f)
{
    if (!isfinite(f))
        return f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u); /* to nearest even on the low 16 bits (overflow: Inf) */
    u &= 0xffff0000u;
    float r;
    memcpy(&r, &u, sizeof r);
    return r;
}

/* f rounded to the nearest FP16 value (ties to even), returned as a float. */
static float round_to_fp16(float f)
{
    if (!isfinite(f) || f == 0.0f)
        return f;
    const float a = fabsf(f);
    int e;
    frexpf(a, &e); /* a = m * 2^e, m in [0.5, 1): the leading bit is 2^(e-1) */
    const int lead = e - 1 < -14 ? -14 : e - 1;
    const float quantum = ldexpf(1.0f, lead - 10);
    float r = nearbyintf(a / quantum) * quantum; /* exact scaling; nearbyint rounds to even */
    if (r > 65504.0f)
        r = INFINITY;
    return copysignf(r, f);
}

static int imin(int a, int b)
{
    return a < b ? a : b;
}

static int imax(int a, int b)
{
    return a > b ? a : b;
}

/* The sequence that holds token t (q_start ascending). */
static int sequence_of(const check_problem *p, int64_t t)
{
    int lo = 0, hi = p->batch - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (p->q_start[mid] <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Copies rows x cols FP16 or BF16 values (row pitch `pitch` elements) from the device into floats. */
static int download(float *dst, const void *src, int64_t pitch, int64_t cols, int64_t rows, uint16_t *stage, int bf16)
{
    if (rows <= 0 || cols <= 0)
        return 0;
    const cudaError_t e = cudaMemcpy2D(stage, (size_t)cols * 2, src, (size_t)pitch * 2, (size_t)cols * 2,
                                       (size_t)rows, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        fprintf(stderr, "fai-bench: --check: copying inputs: %s\n", cudaGetErrorString(e));
        return -1;
    }
    for (int64_t i = 0; i < rows * cols; i++)
        dst[i] = elem_to_float(stage[i], bf16);
    return 0;
}

/* Whether key j is inside the sliding window of a row whose diagonal is diag. */
static int in_window(const check_problem *p, int64_t j, int64_t diag)
{
    if (!p->window)
        return 1;
    return (p->window_left < 0 || j >= diag - p->window_left) && (p->window_right < 0 || j <= diag + p->window_right);
}

/* The plain FP32 reference of one query head's row (scores, soft-cap, max, exp, sums in FP32,
 * keys in order, the window and the sink applied), output rounded to the element type: what
 * the tolerance's second bound is relative to. sink: NAN when there is none. */
static void ref32_row(const check_problem *p, const float *q, const float *k, const float *v, int n_keys, int64_t diag,
                      float slope, float sink, float *scores, float *out)
{
    const int d = p->d;
    const float cap = (float)p->softcap;
    float mx = isnan(sink) ? -INFINITY : sink;
    int seen = 0;
    for (int j = 0; j < n_keys; j++) {
        if (!in_window(p, j, diag)) {
            scores[j] = -INFINITY;
            continue;
        }
        float dot = 0.0f;
        for (int e = 0; e < d; e++)
            dot += q[e] * k[(int64_t)j * d + e];
        float x = dot * p->scale;
        if (cap > 0.0f)
            x = cap * tanhf(x / cap);
        scores[j] = x - slope * (float)fabs((double)(diag - j));
        mx = fmaxf(mx, scores[j]);
        seen++;
    }
    float sum = isnan(sink) ? 0.0f : expf(sink - mx);
    for (int j = 0; j < n_keys; j++) {
        scores[j] = scores[j] == -INFINITY ? 0.0f : expf(scores[j] - mx);
        sum += scores[j];
    }
    for (int e = 0; e < d; e++) {
        float acc = 0.0f;
        for (int j = 0; j < n_keys; j++)
            acc += scores[j] * v[(int64_t)j * d + e];
        const float x = seen > 0 ? acc / sum : 0.0f;
        out[e] = p->bf16 ? round_to_bf16(x) : round_to_fp16(x);
    }
}

void check_set_variants(check_problem *p, const fai_attention *a, const double *sinks_host)
{
    p->window = a->window != 0;
    p->window_left = a->window_left;
    p->window_right = a->window_right;
    p->softcap = a->softcap;
    p->sinks = a->sinks ? sinks_host : NULL;
}

void check_free(check_ref *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n_units; i++)
        free(r->units[i].ref);
    free(r->units);
    cudaFree(r->count_dev);
    free(r);
}

typedef struct token_plan {
    int64_t t;       /* token of Q/O */
    int b, i;        /* sequence, row in it */
    int keys, rows;  /* reference problem: keys 0 .. keys-1, query rows i .. i + rows - 1 */
} token_plan;

static int cmp_unit(const void *a, const void *b)
{
    const check_unit *x = a, *y = b;
    if (x->token != y->token)
        return (x->token > y->token) - (x->token < y->token);
    return (x->kv_head > y->kv_head) - (x->kv_head < y->kv_head);
}

static int cmp_token(const void *a, const void *b)
{
    const int64_t x = ((const token_plan *)a)->t, y = ((const token_plan *)b)->t;
    return (x > y) - (x < y);
}

check_ref *check_prepare(const check_problem *p, cudaStream_t s)
{
    if (p->total_q <= 0 || p->batch <= 0)
        return NULL;
    const int group = p->hq / p->hk, d = p->d;
    const int block_rows = !p->causal && (p->alibi || p->window); /* see the top of the file */
    const int n = p->total_q < CHECK_ROWS ? (int)p->total_q : CHECK_ROWS;
    token_plan *tp = calloc((size_t)n, sizeof *tp);
    int nt = 0;
    for (int k = 0; k < n; k++) {
        int64_t t = n > 1 ? (int64_t)((double)k * (double)(p->total_q - 1) / (double)(n - 1) + 0.5) : 0;
        const int b = sequence_of(p, t);
        const int sq = p->seq_q[b], sk = p->seq_k[b];
        if (sq <= 0)
            continue;
        int i = (int)(t - p->q_start[b]);
        if (i >= sq)
            i = sq - 1;
        if (block_rows && sq > 1)
            i = sq - 1 - k % imin(sq, 4);
        tp[nt].t = p->q_start[b] + i;
        tp[nt].b = b;
        tp[nt].i = i;
        if (p->causal) {
            const int64_t vis = (int64_t)i + sk - sq + 1;
            tp[nt].keys = vis < 0 ? 0 : vis > sk ? sk : (int)vis;
        } else {
            tp[nt].keys = sk;
        }
        tp[nt].rows = block_rows ? sq - i : 1;
        nt++;
    }
    qsort(tp, (size_t)nt, sizeof *tp, cmp_token);
    int m = 0; /* unique tokens */
    for (int k = 0; k < nt; k++)
        if (m == 0 || tp[k].t != tp[m - 1].t)
            tp[m++] = tp[k];
    nt = m;

    /* KV heads per token from the work budget. */
    double work = 0;
    for (int k = 0; k < nt; k++)
        work += 2.0 * tp[k].rows * (double)tp[k].keys * group * d;
    int nh = work > 0 ? (int)(CHECK_MACS / work) : p->hk;
    nh = imax(1, imin(p->hk, nh));

    check_ref *r = calloc(1, sizeof *r);
    r->units = calloc((size_t)nt * (size_t)nh, sizeof *r->units);
    r->n_tokens = nt;
    r->heads_per_token = nh;
    if (cudaMalloc((void **)&r->count_dev, sizeof(unsigned long long)) != cudaSuccess) {
        fprintf(stderr, "fai-bench: --check: cudaMalloc failed\n");
        free(tp);
        check_free(r);
        return NULL;
    }
    double *slopes = malloc(sizeof(double) * (size_t)p->hq);
    fai_ref_alibi_slopes(p->hq, slopes);
    if (cudaStreamSynchronize(s) != cudaSuccess) {
        fprintf(stderr, "fai-bench: --check: the inputs' stream failed\n");
        free(tp);
        free(slopes);
        check_free(r);
        return NULL;
    }

    int max_keys = 1, max_rows = 1;
    for (int k = 0; k < nt; k++) {
        max_keys = imax(max_keys, tp[k].keys);
        max_rows = imax(max_rows, tp[k].rows);
    }
    const size_t kv_n = (size_t)max_keys * (size_t)d, q_n = (size_t)max_rows * (size_t)group * (size_t)d;
    float *kf = malloc(sizeof(float) * kv_n), *vf = malloc(sizeof(float) * kv_n);
    float *qf = malloc(sizeof(float) * q_n), *scores = malloc(sizeof(float) * (size_t)max_keys);
    float *o32 = malloc(sizeof(float) * (size_t)d);
    double *oref = malloc(sizeof(double) * q_n);
    uint16_t *stage = malloc(sizeof(uint16_t) * (kv_n > q_n ? kv_n : q_n));
    int ok = kf && vf && qf && scores && o32 && oref && stage && r->units && tp;
    if (!ok)
        fprintf(stderr, "fai-bench: --check: out of host memory\n");

    /* Tokens of one sequence share its K/V copies: for each run of tokens in one sequence and
     * each of its heads, keys 0 .. the run's largest `keys` are copied once. */
    int seq_index = 0;
    for (int k0 = 0; ok && k0 < nt; seq_index++) {
        int k1 = k0;
        int keys = 0;
        while (k1 < nt && tp[k1].b == tp[k0].b)
            keys = imax(keys, tp[k1++].keys);
        const int b = tp[k0].b, sq = p->seq_q[b], sk = p->seq_k[b];
        for (int j = 0; ok && j < nh; j++) {
            const int g = (seq_index + (int)((int64_t)j * p->hk / nh)) % p->hk;
            const char *kp = (const char *)p->k + 2 * (p->k_start[b] + g * p->k_head_stride);
            const char *vp = (const char *)p->v + 2 * (p->k_start[b] + g * p->k_head_stride);
            if (download(kf, kp, p->k_token_stride, d, keys, stage, p->bf16) ||
                download(vf, vp, p->k_token_stride, d, keys, stage, p->bf16)) {
                ok = 0;
                break;
            }
            for (int k = k0; k < k1; k++) {
                const token_plan *t = &tp[k];
                const char *qp = (const char *)p->q + 2 * (t->t * p->q_token_stride + (int64_t)g * group * d);
                if (download(qf, qp, p->q_token_stride, (int64_t)group * d, t->rows, stage, p->bf16)) {
                    ok = 0;
                    break;
                }
                /* Its own problem: the token's row first (see the top of the file). */
                fai_ref_problem rp;
                memset(&rp, 0, sizeof rp);
                rp.num_q_heads = group;
                rp.num_kv_heads = 1;
                rp.head_dim = d;
                rp.seq_q = t->rows;
                rp.seq_k = t->keys;
                rp.softmax_scale = p->scale;
                rp.causal = p->causal;
                rp.alibi = p->alibi;
                rp.alibi_slopes = slopes + (int64_t)g * group;
                rp.window = p->window;
                rp.window_left = p->window_left;
                rp.window_right = p->window_right;
                rp.softcap = p->softcap;
                rp.sinks = p->sinks ? p->sinks + (int64_t)g * group : NULL;
                if (fai_ref_attention(&rp, qf, kf, vf, oref, NULL) != 0) {
                    fprintf(stderr, "fai-bench: --check: the reference failed\n");
                    ok = 0;
                    break;
                }
                check_unit *u = &r->units[r->n_units++];
                u->token = t->t;
                u->kv_head = g;
                u->ref = malloc(sizeof(double) * (size_t)group * (size_t)d);
                memcpy(u->ref, oref, sizeof(double) * (size_t)group * (size_t)d);
                const int64_t diag = (int64_t)t->i + sk - sq;
                for (int h = 0; h < group; h++) {
                    const float slope = p->alibi ? (float)slopes[g * group + h] : 0.0f;
                    const float sink = p->sinks ? (float)p->sinks[g * group + h] : NAN;
                    ref32_row(p, qf + (int64_t)h * d, kf, vf, t->keys, diag, slope, sink, scores, o32);
                    for (int e = 0; e < d; e++) {
                        const double err = fabs((double)o32[e] - u->ref[(int64_t)h * d + e]);
                        if (err > r->max_err32)
                            r->max_err32 = err;
                    }
                }
            }
        }
        k0 = k1;
    }
    free(tp);
    free(slopes);
    free(kf);
    free(vf);
    free(qf);
    free(scores);
    free(o32);
    free(oref);
    free(stage);
    if (!ok) {
        check_free(r);
        return NULL;
    }
    /* By token, so that check_compare copies each output row once. */
    qsort(r->units, (size_t)r->n_units, sizeof *r->units, cmp_unit);
    return r;
}

cudaError_t check_poison(const check_problem *p, cudaStream_t s)
{
    return cudaMemsetAsync((void *)p->o, 0xff, (size_t)p->total_q * (size_t)p->q_token_stride * 2, s);
}

int check_compare(const check_ref *r, const check_problem *p, cudaStream_t s, char *msg, size_t size)
{
    const int group = p->hq / p->hk, d = p->d;
    const int64_t row = (int64_t)p->hq * d;
    unsigned long long nonfinite = 0;
    cudaError_t e = bench_count_nonfinite_16(p->o, p->total_q * p->q_token_stride, p->bf16, r->count_dev, s);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(&nonfinite, r->count_dev, sizeof nonfinite, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) {
        snprintf(msg, size, "CUDA error: %s", cudaGetErrorString(e));
        return 0;
    }
    uint16_t *ob = malloc(sizeof(uint16_t) * (size_t)row);
    double err2 = 0, ref2 = 0, max_err = 0;
    int64_t last = -1;
    for (int i = 0; i < r->n_units; i++) {
        const check_unit *u = &r->units[i];
        if (u->token != last) {
            e = cudaMemcpy(ob, (const char *)p->o + 2 * u->token * p->q_token_stride, sizeof(uint16_t) * (size_t)row,
                           cudaMemcpyDeviceToHost);
            if (e != cudaSuccess) {
                snprintf(msg, size, "CUDA error: %s", cudaGetErrorString(e));
                free(ob);
                return 0;
            }
            last = u->token;
        }
        const uint16_t *o = ob + (int64_t)u->kv_head * group * d;
        for (int64_t x = 0; x < (int64_t)group * d; x++) {
            const double want = u->ref[x], err = fabs((double)elem_to_float(o[x], p->bf16) - want);
            err2 += err * err;
            ref2 += want * want;
            if (!(err <= max_err))
                max_err = err; /* NaN sticks */
        }
    }
    free(ob);
    const double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    const double bound = 2.0 * r->max_err32 + 1e-5;
    const double rel_bound = p->bf16 ? 1.6e-2 : 2e-3; /* shared/guides/correctness.md */
    const int pass = nonfinite == 0 && rel <= rel_bound && max_err <= bound;
    char extra[64] = "";
    if (nonfinite)
        snprintf(extra, sizeof extra, ", %llu NaN/Inf in the output", nonfinite);
    snprintf(msg, size, "%s: rel_l2 %.1e, max_err %.1e (bound %.1e), %d rows x %d/%d KV heads%s",
             pass ? "pass" : "FAIL", rel, max_err, bound, r->n_tokens, r->heads_per_token, p->hk, extra);
    return pass;
}

int check_call(const check_ref *r, const check_problem *p, int (*run)(void *ctx, cudaStream_t s), void *ctx,
               cudaStream_t s, char *msg, size_t size, char *verdict)
{
    int pass = 0;
    if (!r) {
        snprintf(msg, size, "FAIL: no reference");
    } else {
        if (check_poison(p, s) != cudaSuccess || run(ctx, s))
            exit(1);
        pass = check_compare(r, p, s, msg, size);
    }
    g_check_failed += !pass;
    g_check_passed += pass;
    snprintf(verdict, 8, "%s", pass ? "pass" : "FAIL");
    return pass;
}
