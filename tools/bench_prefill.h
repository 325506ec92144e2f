/* fai-bench's shared pieces: the row descriptor, the options, the timer and arena that
 * fai_bench.c owns, the variants of --dtype/--window/--softcap/--sinks, the prefill / hybrid
 * rows that bench_prefill.c times and the chunked suite of bench_chunked.c. */
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
    int bf16;         /* --dtype bf16: decode, prefill and hybrid rows in BF16 (else FP16) */
    int window;       /* --window L: sliding window of L keys left of the diagonal; -1: off */
    float softcap;    /* --softcap C: logit soft-cap, 0: off */
    int sinks;        /* --sinks: a sink logit per query head, random N(0, 1) */
    int chunked;      /* --suite chunked (or all): bench_chunked.c's rows after the others */
} options;

/* fai_bench.c: median time in ms of fn(ctx) over `reps` runs, each after an L2 flush, CUDA
 * events around fn alone, `warmup` untimed runs first; -1 when fn returned nonzero. */
typedef int (*timed_fn)(void *ctx, cudaStream_t s);
/* fai_bench.c: the L2 flush before each timed run (--flush: a memset, or a streaming read). */
void bench_l2_flush(cudaStream_t s);
float time_median(timed_fn fn, void *ctx, int warmup, int reps, cudaStream_t s);
/* fai_bench.c: time_median's warm-up: at least `warmup` runs of fn, each after the flush, and
 * 20 ms of them (none when warmup is 0); nonzero when fn returned nonzero. */
int bench_warm_up(timed_fn fn, void *ctx, int warmup, cudaStream_t s);
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

/* bench_prefill.c: the variants. Sets a's window / softcap / sinks from --window, --softcap and
 * --sinks (off when not given): window_left L, window_right 0 for causal rows (decode rows are
 * causal: their one query is the last position) and -1 (unbounded) otherwise; sinks point at
 * a device array of random N(0, 1) logits, the same value for head h in every row. */
void bench_set_variants(fai_attention *a, const options *o, int causal);
/* The host copy (double) of the sinks bench_set_variants last pointed at; NULL without --sinks. */
const double *bench_sinks_host(void);
/* The words the CSV's note gets for the variants: "window 4096/0 softcap 30 sinks" ("" if none). */
void bench_variant_note(char *buf, size_t size, const options *o, const fai_attention *a);
/* "fp16" or "bf16". */
const char *bench_dtype_name(const options *o);
/* Query-key pairs of one sequence of sq queries over sk keys that the mask and a's window
 * leave (as guides/benchmarks.md counts them: sq * sk, halved for causal sq == sk, exact for
 * causal sq != sk and whenever a window is on). a may be NULL. */
double bench_pairs(int sq, int sk, int causal, const fai_attention *a);
/* Appends a word to a space-separated note. */
void bench_note_add(char *buf, size_t size, const char *word);

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

/* bench_chunked.c: the 'chunked' suite (one 16K prompt as one prefill from packed K/V, in 4
 * chunks through a paged cache, and as one chunk through the cache); prints its table and
 * writes its rows. */
void bench_chunked(const options *o, cudaStream_t s);
/* Its rows for --list (suite,b,sq,sk,hq,hk,d,causal,prefill_frac). */
void bench_chunked_list(const options *o);

#endif
