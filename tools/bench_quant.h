/* fai-bench's kv-quant suite (bench_quant.c). */
#ifndef FAI_BENCH_QUANT_H
#define FAI_BENCH_QUANT_H

#include <cuda_runtime_api.h>

#include "fai.h"

/* Times decode over each cache dtype and the append of a prompt; prints a table and writes
 * rows (suites kv-quant and kv-append) through bench_report.h. copy_gbps: the measured copy
 * ceiling; page_size: decode over paged caches of that page size (0: contiguous); tune: also
 * time a grid of other plans per row (kernel x stages or warps x splits), marked 'tune'. */
void bench_quant(double copy_gbps, int reps, int page_size, int tune, cudaStream_t s);

#endif
