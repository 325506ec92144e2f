/*
 * reference.h: the CPU reference of fai's attention, computed in double, plus the error
 * measures and the deterministic test data every GPU test uses. Host only, C11.
 * docs: /work/shared/guides/correctness.md defines the function this computes.
 */
#ifndef FAI_REFERENCE_H
#define FAI_REFERENCE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One sequence of attention, computed in double. Q is [seq_q, num_q_heads, head_dim],
   K and V are [seq_k, num_kv_heads, head_dim], O is [seq_q, num_q_heads, head_dim], all
   contiguous row-major float arrays (the tests convert FP16 values to float exactly). */
typedef struct fai_ref_problem {
    int num_q_heads, num_kv_heads, head_dim;
    int seq_q, seq_k;          /* either may be 0 */
    double softmax_scale;      /* any finite value */
    int causal;                /* bottom-right aligned: row i sees keys j <= i + seq_k - seq_q */
    int alibi;                 /* nonzero: bias = -slope_h * |i + seq_k - seq_q - j| */
    const double *alibi_slopes;/* [num_q_heads], or NULL for the standard slopes */
    /* The variants of shared/guides/correctness.md; zero-initialized means off. */
    int window;                /* nonzero: sliding window; with d = i + seq_k - seq_q, row i
                                  sees keys d - window_left <= j <= d + window_right (-1:
                                  unbounded on that side); combines with causal */
    int window_left, window_right;
    double softcap;            /* > 0: s = softcap * tanh(s / softcap) on the scaled logit,
                                  before the ALiBi bias and the mask */
    const double *sinks;       /* [num_q_heads] or NULL: a logit per query head that joins the
                                  softmax denominator with no value; a row with no visible
                                  key then gives zeros and an LSE of sinks[h] */
} fai_ref_problem;

/* Writes o (double, [seq_q, num_q_heads, head_dim]) and, if lse != NULL, lse[seq_q * num_q_heads]
   ([seq_q, num_q_heads] order) = natural log of sum_j exp(score_ij) over visible keys (plus
   exp(sinks[h]) with sinks), -INFINITY for a row that sees no key without a sink (its o row
   is all zeros). A softcap that is not finite and >= 0 is an error (-1). Returns 0, or -1 on bad
   arguments (num_q_heads not a positive multiple of num_kv_heads, negative sizes, a
   non-finite softmax_scale, NULL p, or a NULL q/k/v/o whose tensor has elements) or when
   the scratch allocation fails. Numerically stable (subtract the row max), any logits up to
   +-1e4 ok. Query head h reads KV head h / (num_q_heads / num_kv_heads). */
int fai_ref_attention(const fai_ref_problem *p, const float *q, const float *k, const float *v,
                      double *o, double *lse);

/* The standard ALiBi slopes for n heads (the ALiBi paper's rule: for n a power of two,
   slope_h = 2^(-8(h+1)/n); otherwise with m the largest power of two below n, the m slopes of m
   heads followed by the slopes of 2m heads at even indices 0,2,4.. (i.e. 2^(-8(2k+1)/(2m))),
   the first n-m of them). Writes nothing for n <= 0. */
void fai_ref_alibi_slopes(int n, double *slopes);

/* Error measures used by every GPU test: relative L2 ||out-ref||/||ref|| (0 if both are zero;
   +INFINITY if any out or ref value is NaN/Inf, or if ref is zero and out is not), and max abs
   error (+INFINITY on NaN/Inf). Both are 0 for n == 0. */
double fai_ref_rel_l2(const float *out, const double *ref, int64_t n);
double fai_ref_max_abs(const float *out, const double *ref, int64_t n);

/* Deterministic test data: a splitmix64 RNG (any seed, 0 included) and a normal(0, stddev)
   fill by Box-Muller. The same seed gives the same values on every run. */
typedef struct fai_ref_rng { uint64_t state; } fai_ref_rng;
void fai_ref_rng_seed(fai_ref_rng *r, uint64_t seed);
double fai_ref_rng_uniform(fai_ref_rng *r);             /* [0,1), 53 random bits */
int fai_ref_rng_below(fai_ref_rng *r, int n);           /* uniform in [0, n), n >= 1 */
int fai_ref_rng_chance(fai_ref_rng *r, double p);       /* 1 with probability p */
/* x[i] for i < n; the values (and r's state after) do not depend on the number of threads
   a large fill is split over. */
void fai_ref_fill_normal(fai_ref_rng *r, float *x, int64_t n, double stddev);

/* fn(first, end, ctx) over [0, count) in chunks of `grain` items (first is a multiple of
   grain; only the last chunk is shorter) on up to fai_ref_threads() threads (the caller's
   among them); returns when every chunk is done. fn must be safe to run on disjoint ranges
   at once. A loop called from inside a chunk runs on its caller's thread. */
typedef void (*fai_ref_range_fn)(int64_t first, int64_t end, void *ctx);
void fai_ref_parallel_for(int64_t count, int64_t grain, fai_ref_range_fn fn, void *ctx);
/* A grain for items of `item_work` units each: as many items as make `chunk_work` units (at
   least 1), so that small problems stay on one thread. */
int64_t fai_ref_grain(int64_t item_work, int64_t chunk_work);
/* The host's online cores, or FAI_REF_THREADS when set; 1 to 64. */
int fai_ref_threads(void);

#ifdef __cplusplus
}
#endif

#endif /* FAI_REFERENCE_H */
