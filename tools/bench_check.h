/* fai-bench --check: compares the output of a benchmarked call with the double-precision CPU
 * reference (src/reference), on up to CHECK_ROWS query rows of the row spread over the whole
 * batch (first and last included) and, where the reference work would be large, on a subset of
 * the KV heads (rotating between sequences, so that all heads are seen across a big batch).
 * Tolerances are those of shared/guides/correctness.md and tests/test_prefill.c: relative L2
 * error <= 2e-3 (BF16: 1.6e-2) over the checked elements, max abs error <= 2x that of a plain
 * FP32 reference with an output rounded to the element type (+1e-5), and no NaN or Inf anywhere
 * in the output: the output is filled with NaN before the checked call, so every element the
 * call leaves unwritten fails. The variants of fai_attention (sliding window, soft-cap, sinks)
 * go to the reference as they went to the call (check_set_variants). */
#ifndef FAI_BENCH_CHECK_H
#define FAI_BENCH_CHECK_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#include "fai.h"

#define CHECK_ROWS 64
/* Multiply-adds of the double reference per row (about a second on one core), which sets how
 * many KV heads each checked query row covers. */
#define CHECK_MACS 3.0e8

/* One benchmarked call's problem: FP16 or BF16 device tensors and host lengths. Sequence b's query rows
 * are tokens q_start[b] .. q_start[b] + seq_q[b] - 1 of Q and O (ascending in b); its key j of
 * KV head g is at k + k_start[b] + j * k_token_stride + g * k_head_stride (V the same). */
typedef struct check_problem {
    int batch, hq, hk, d, causal, alibi; /* alibi: the standard slopes */
    float scale;
    const void *q, *k, *v, *o;
    int64_t q_token_stride; /* elements between tokens of Q and of O; O is [total_q, hq, d] */
    int64_t k_token_stride, k_head_stride;
    const int64_t *q_start, *k_start;
    const int *seq_q, *seq_k;
    int64_t total_q;
    int bf16; /* Q, K, V and O are BF16 (else FP16) */
    /* The variants, as fai_attention has them (zero: off); sinks: host [hq] or NULL. */
    int window, window_left, window_right;
    double softcap;
    const double *sinks;
} check_problem;

/* Copies the variants of `a` (window, window_left, window_right, softcap) into p, and the host
 * copy of a->sinks (`sinks_host`, [hq] in double) when a->sinks is set. */
void check_set_variants(check_problem *p, const fai_attention *a, const double *sinks_host);

typedef struct check_ref check_ref;

/* Samples the rows and heads, copies their inputs from the device and computes the references
 * (synchronizes s). NULL, with a message on stderr, on failure. */
check_ref *check_prepare(const check_problem *p, cudaStream_t s);
/* Fills O (total_q rows) with NaN (0xffff: FP16 and BF16 alike) on s. */
cudaError_t check_poison(const check_problem *p, cudaStream_t s);
/* After the checked call was enqueued on s: synchronizes, compares. 1 = pass, 0 = fail; a
 * one-line summary goes to msg. */
int check_compare(const check_ref *r, const check_problem *p, cudaStream_t s, char *msg, size_t size);
/* The whole check of one timed call: poisons O, runs run(ctx, s) once more and compares with
 * r (NULL: fails with "no reference"); counts the result in g_check_passed/g_check_failed and
 * writes "pass"/"FAIL" to verdict (8 bytes). Exits when run fails. 1 = pass. */
int check_call(const check_ref *r, const check_problem *p, int (*run)(void *ctx, cudaStream_t s), void *ctx,
               cudaStream_t s, char *msg, size_t size, char *verdict);
void check_free(check_ref *r);

#endif
