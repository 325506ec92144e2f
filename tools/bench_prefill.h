/* fai-bench's shared pieces: the row descriptor, the timer and arena that fai_bench.c owns,
 * and the prefill / hybrid rows that bench_prefill.c times. */
#ifndef FAI_BENCH_PREFILL_H
#define FAI_BENCH_PREFILL_H

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "fai.h"

#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            fprintf(stderr, "fai-bench: %s: %s\n", #call, cudaGetErrorString(e_));            \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

typedef enum row_kind {
    ROW_DECODE = 0,  /* fai_decode, one query token per sequence */
    ROW_PREFILL = 1, /* fai_prefill, every sequence seq_q x seq_k */
    ROW_HYBRID = 2   /* fai_prefill on a mix of prefill (sq x sk) and decode (1 x sk) sequences */
} row_kind;

/* One row of a table: the columns of shared/tools/sdpa_peers.py. */
typedef struct shape {
    const char *suite;
    int kind; /* row_kind */
    int b, sq, sk, hq, hk, d, causal;
    double frac; /* ROW_HYBRID: fraction of the b sequences that are prefill */
} shape;

typedef struct options {
    int reps, warmup, splits, warps, kernel, alibi, tune, nhd;
    const char *csv;
    int check;        /* --check: compare every row's output with the CPU reference */
    const char *json; /* --json FILE */
    int kv_quant;     /* --suite kv-quant (or all): bench_quant.c's rows after the others */
    int page_size;    /* --page-size P: decode (and kv-quant) over a paged cache, 0: contiguous */
} options;

/* fai_bench.c: median time in ms of fn(ctx) over `reps` runs, each after an L2 flush, CUDA
 * events around fn alone, `warmup` untimed runs first; -1 when fn returned nonzero. */
typedef int (*timed_fn)(void *ctx, cudaStream_t s);
float time_median(timed_fn fn, void *ctx, int warmup, int reps, cudaStream_t s);
/* fai_bench.c: the one input arena, sized for the largest row; reset before every row. */
void arena_reset(void);
void *arena_take(size_t bytes);
extern char g_device[256];
/* fai_bench.c: the cuBLAS FP16 GEMM rate in TFLOP/s (<= 0: not measured), the count of rows
 * whose --check failed, and seconds since the start (for the progress lines). */
extern double g_gemm_tflops;
extern int g_check_failed, g_check_passed;
double bench_elapsed(void);

/* bench_gemm.c: median TFLOP/s (and ms) of an n x n x n FP16 GEMM with FP32 accumulation
 * through cuBLAS; 0, or -1 with a message on stderr. */
int bench_gemm_ceiling(int n, int warmup, int reps, cudaStream_t s, double *tflops, double *ms);

/* bench_prefill.c */
/* The rows of a prefill suite (prefill-seq, prefill-batch, prefill-gqa, head-dims, hybrid);
 * NULL for an unknown name. */
const shape *prefill_suite(const char *name, int *count);
/* Arena bytes a prefill or hybrid row takes. */
size_t prefill_row_bytes(const shape *sh);
/* The table header of prefill or hybrid rows (with a check column under --check). */
void prefill_print_header(int kind, int check);
/* Times one prefill or hybrid row; prints it (table, CSV) when `report`. */
void bench_prefill(const shape *sh, const options *o, int index, int total, cudaStream_t s, int report);
/* prefill_frac as Python's repr() writes it ("0.0", "0.1", "0.25"), so CSVs join. */
void format_frac(char *buf, size_t size, double frac);

#endif
