/* fai-bench's kv-quant suite (bench_quant.c). */
#ifndef FAI_BENCH_QUANT_H
#define FAI_BENCH_QUANT_H

#include <cuda_runtime_api.h>

#include "fai.h"

/* The cache dtypes of the kv-quant rows, by index (0: FP16, the baseline of every row). */
#define BENCH_QUANT_DTYPES 5
/* fp16, int8, fp8_e4m3, fp8_e5m2, int8_bf16x2 (int8 with FAI_SCALES_BF16X2 scales) */
extern const char *const bench_quant_dtypes[BENCH_QUANT_DTYPES];

/* One decode shape of the kv-quant rows and the cache dtypes to time it over (bit t:
 * bench_quant_dtypes[t]; FP16 is always timed too, for the x fp16 column). */
typedef struct quant_shape {
    int b, sk, hq, hk, d;
    unsigned dtypes;
} quant_shape;

/* Milliseconds of idle before each pass of a kv-quant row (each dtype, and FP16 before and
 * after), so that every pass starts from an idle GPU (default 500; 0: none). */
void bench_quant_set_pause(int ms);

/* The kv-quant suite's shapes (every dtype), in the order they are timed. */
#define BENCH_QUANT_SUITE_ROWS 4
extern const quant_shape bench_quant_suite[BENCH_QUANT_SUITE_ROWS];

/* Times decode over the caches of each shape (the kv-quant suite's four shapes over every
 * dtype when shapes is NULL) and, with append, fai_kv_append of a prompt into each dtype;
 * prints a table and writes rows (suites kv-quant and kv-append) through bench_report.h.
 * FP16 is timed before and after the quantized dtypes of each shape; its row and x fp16 use
 * the lower time (its note holds both).
 * copy_gbps: the measured copy ceiling; page_size: decode over paged caches of that page size
 * (0: contiguous); nhd: decode caches [.., token, head, dim] instead of HND [.., head, token,
 * dim] (the append rows write NHD caches either way); tune: also time a grid of other plans per row (kernel x stages or warps x
 * splits), marked 'tune'; check: fai-bench --check for each decode call (contiguous caches: the
 * output against the double reference on the dequantized cache; paged: n/a). */
void bench_quant(const quant_shape *shapes, int count, int append, double copy_gbps, int reps, int page_size,
                 int nhd, int tune, int check, cudaStream_t s);

#endif
