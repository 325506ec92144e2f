/* fai-bench's kv-quant suite (bench_quant.c). */
#ifndef FAI_BENCH_QUANT_H
#define FAI_BENCH_QUANT_H

#include <stdio.h>

#include "fai.h"

/* Times decode over each cache dtype and the append of a prompt; prints a table and, with
 * csv, rows in fai-bench's CSV columns (suites kv-quant and kv-append). copy_gbps: the
 * measured copy ceiling. */
void bench_quant(const char *device, double copy_gbps, int reps, FILE *csv);

#endif
