/* reference.c: the CPU reference of attention in double. Written for clarity, not speed. */
#include "reference.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>

/* A pointer may be NULL only when its tensor has no elements. */
static int data_ok(const void *ptr, int64_t elems) { return ptr != NULL || elems == 0; }

/* One attention problem split into (query row, head) items over threads (items are
   independent; each range has its own score scratch). */
typedef struct attention_job {
    const fai_ref_problem *p;
    const float *q, *k, *v;
    double *o, *lse;
    const double *slopes;
    atomic_int failed; /* a range could not get its scratch */
} attention_job;

static void attention_range(int64_t first, int64_t end, void *ctx)
{
    attention_job *job = ctx;
    const fai_ref_problem *p = job->p;
    const int hq = p->num_q_heads, hk = p->num_kv_heads, d = p->head_dim;
    const int sq = p->seq_q, sk = p->seq_k, group = hq / hk;
    const float *k = job->k, *v = job->v;
    /* Scratch: one row's scores (never 0 bytes). */
    double *s = malloc(((size_t)sk + 1) * sizeof(double));
    if (s == NULL) {
        job->failed = 1;
        return;
    }
    for (int64_t item = first; item < end; item++) {
        const int i = (int)(item / hq), h = (int)(item % hq);
        /* Row i's diagonal is key i + sk - sq (bottom-right alignment); causal rows see keys
           0..diag, which is none when diag < 0. */
        const int64_t diag = (int64_t)i + sk - sq;
        /* Visible keys lo .. hi - 1: the causal and window limits around the diagonal. */
        int64_t lo = 0, hi = sk;
        if (p->causal && diag + 1 < hi)
            hi = diag + 1;
        if (p->window && p->window_right >= 0 && diag + p->window_right + 1 < hi)
            hi = diag + p->window_right + 1;
        if (p->window && p->window_left >= 0 && diag - p->window_left > lo)
            lo = diag - p->window_left;
        if (hi < lo)
            hi = lo;
        const float *qr = job->q + ((int64_t)i * hq + h) * d;
        double *orow = job->o + ((int64_t)i * hq + h) * d;
        const int kvh = h / group;

        double m = p->sinks ? p->sinks[h] : -INFINITY;
        for (int64_t j = lo; j < hi; j++) {
            const float *kr = k + (j * hk + kvh) * d;
            double dot = 0.0;
            for (int c = 0; c < d; c++)
                dot += (double)qr[c] * (double)kr[c];
            s[j] = p->softmax_scale * dot;
            if (p->softcap > 0.0)
                s[j] = p->softcap * tanh(s[j] / p->softcap);
            if (p->alibi)
                s[j] -= job->slopes[h] * fabs((double)(diag - j));
            if (s[j] > m)
                m = s[j];
        }

        for (int c = 0; c < d; c++)
            orow[c] = 0.0;
        if (hi == lo) { /* no visible key: zeros, and the log of the sink or of an empty sum */
            if (job->lse != NULL)
                job->lse[(int64_t)i * hq + h] = p->sinks ? p->sinks[h] : -INFINITY;
            continue;
        }
        /* Subtracting the max keeps every exp() in (0, 1], so no logit overflows. */
        double sum = p->sinks ? exp(p->sinks[h] - m) : 0.0;
        for (int64_t j = lo; j < hi; j++) {
            const double w = exp(s[j] - m);
            const float *vr = v + (j * hk + kvh) * d;
            sum += w;
            for (int c = 0; c < d; c++)
                orow[c] += w * (double)vr[c];
        }
        for (int c = 0; c < d; c++)
            orow[c] /= sum; /* sum >= 1: the max term is exp(0) */
        if (job->lse != NULL)
            job->lse[(int64_t)i * hq + h] = m + log(sum);
    }
    free(s);
}

int fai_ref_attention(const fai_ref_problem *p, const float *q, const float *k, const float *v,
                      double *o, double *lse)
{
    if (p == NULL || p->num_q_heads <= 0 || p->num_kv_heads <= 0 ||
        p->num_q_heads % p->num_kv_heads != 0 || p->head_dim < 0 || p->seq_q < 0 ||
        p->seq_k < 0 || !isfinite(p->softmax_scale) || !(p->softcap >= 0.0) || !isfinite(p->softcap))
        return -1;
    const int hq = p->num_q_heads, hk = p->num_kv_heads, d = p->head_dim;
    const int64_t q_elems = (int64_t)p->seq_q * hq * d, kv_elems = (int64_t)p->seq_k * hk * d;
    if (!data_ok(q, q_elems) || !data_ok(o, q_elems) || !data_ok(k, kv_elems) ||
        !data_ok(v, kv_elems))
        return -1;

    double *slopes = NULL; /* the standard ALiBi slopes when none are given */
    if (p->alibi && p->alibi_slopes == NULL) {
        slopes = malloc((size_t)hq * sizeof(double));
        if (slopes == NULL)
            return -1;
        fai_ref_alibi_slopes(hq, slopes);
    }
    attention_job job = {p, q, k, v, o, lse, slopes ? slopes : p->alibi_slopes, 0};
    /* Chunks of at least ~2^22 multiply-adds, so small problems stay on this thread. */
    const int64_t grain = fai_ref_grain((int64_t)p->seq_k * d + 1, (int64_t)1 << 22);
    fai_ref_parallel_for((int64_t)p->seq_q * hq, grain, attention_range, &job);
    free(slopes);
    return job.failed ? -1 : 0;
}

void fai_ref_alibi_slopes(int n, double *slopes)
{
    if (n <= 0 || slopes == NULL)
        return;
    int m = 1; /* the largest power of two <= n (written to avoid overflow near INT_MAX) */
    while (m <= n / 2)
        m *= 2;
    for (int h = 0; h < m; h++)
        slopes[h] = exp2(-8.0 * (h + 1) / m);
    /* The remaining n - m heads take the odd-numbered slopes of 2m heads, which fall between
       the ones above: 2^(-8(2k+1)/(2m)) is index 2k of the 2m-head list. */
    for (int h = m; h < n; h++)
        slopes[h] = exp2(-8.0 * (2 * (h - m) + 1) / (2.0 * m));
}

double fai_ref_rel_l2(const float *out, const double *ref, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        /* A NaN must fail any "err <= tol" and also any "err > tol": INFINITY, not NaN. */
        if (!isfinite(out[i]) || !isfinite(ref[i]))
            return INFINITY;
        const double e = (double)out[i] - ref[i];
        num += e * e;
        den += ref[i] * ref[i];
    }
    if (num == 0.0)
        return 0.0; /* identical, including both zero */
    return den == 0.0 ? INFINITY : sqrt(num / den);
}

double fai_ref_max_abs(const float *out, const double *ref, int64_t n)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(out[i]) || !isfinite(ref[i]))
            return INFINITY;
        const double e = fabs((double)out[i] - ref[i]);
        if (e > worst)
            worst = e;
    }
    return worst;
}

void fai_ref_rng_seed(fai_ref_rng *r, uint64_t seed) { r->state = seed; }

/* splitmix64 (Steele, Lea, Flood 2014): one add and a strong mix, so every seed works. The
   state after n draws is the seed plus n * GOLDEN_GAMMA, so a generator can jump ahead. */
#define GOLDEN_GAMMA 0x9E3779B97F4A7C15ull
static uint64_t rng_next(fai_ref_rng *r)
{
    uint64_t z = (r->state += GOLDEN_GAMMA);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double fai_ref_rng_uniform(fai_ref_rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53; /* the top 53 bits: exact in a double */
}

int fai_ref_rng_below(fai_ref_rng *r, int n)
{
    return (int)(fai_ref_rng_uniform(r) * n) % n; /* (the % guards n * (1 - 2^-53) rounding to n) */
}

int fai_ref_rng_chance(fai_ref_rng *r, double p) { return fai_ref_rng_uniform(r) < p; }

/* Box-Muller pairs [first, end) of a fill that started at state `start`: pair p takes draws
   2p and 2p + 1 and writes x[2p] and x[2p + 1] (when below n). */
typedef struct normal_fill {
    uint64_t start;
    float *x;
    int64_t n;
    double stddev;
} normal_fill;

static void fill_pairs(int64_t first, int64_t end, void *ctx)
{
    const normal_fill *f = ctx;
    const double two_pi = 6.283185307179586476925286766559;
    fai_ref_rng r = {f->start + 2u * (uint64_t)first * GOLDEN_GAMMA};
    for (int64_t p = first; p < end; p++) {
        /* 1 - u lies in (0, 1], so the log stays finite. */
        const double radius = f->stddev * sqrt(-2.0 * log(1.0 - fai_ref_rng_uniform(&r)));
        const double angle = two_pi * fai_ref_rng_uniform(&r);
        f->x[2 * p] = (float)(radius * cos(angle));
        if (2 * p + 1 < f->n)
            f->x[2 * p + 1] = (float)(radius * sin(angle));
    }
}

void fai_ref_fill_normal(fai_ref_rng *r, float *x, int64_t n, double stddev)
{
    if (n <= 0)
        return;
    const int64_t pairs = (n + 1) / 2;
    normal_fill f = {r->state, x, n, stddev};
    fai_ref_parallel_for(pairs, (int64_t)1 << 18, fill_pairs, &f); /* small fills: this thread alone */
    r->state += 2u * (uint64_t)pairs * GOLDEN_GAMMA;
}
