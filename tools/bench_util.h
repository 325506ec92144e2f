/* fai-bench's GPU helpers (bench_util.cu): filling inputs with random values on the device,
 * the streaming-read kernel that measures the read ceiling, and the NaN/Inf count of --check. */
#ifndef FAI_BENCH_UTIL_H
#define FAI_BENCH_UTIL_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* n FP16 values, roughly normal(0, stddev) (a sum of four uniforms), never all zero. */
cudaError_t bench_fill_fp16(void *dst, int64_t n, uint64_t seed, float stddev, cudaStream_t s);
/* The same for a 16-bit type: FP16 (bf16 = 0) or BF16 (bf16 = 1), the same values before
 * rounding for the same seed. */
cudaError_t bench_fill_16(void *dst, int64_t n, int bf16, uint64_t seed, float stddev, cudaStream_t s);
/* n int32 values all equal to `value`. */
cudaError_t bench_fill_i32(int32_t *dst, int64_t n, int32_t value, cudaStream_t s);
/* Reads `bytes` (a multiple of 16) with 16-byte loads, grid-stride, and writes one word
 * per block to sink (so the loads are not removed). */
cudaError_t bench_read(const void *src, int64_t bytes, int blocks, uint32_t *sink, cudaStream_t s);
/* The L2 flush buffer's size, and its read-only flush: all BENCH_FLUSH_BYTES of buf read by
 * bench_read (fai-bench --flush read, fai-bw-probe --flush). */
#define BENCH_FLUSH_BYTES ((size_t)256 << 20)
cudaError_t bench_read_flush(const void *buf, uint32_t *sink, cudaStream_t s);

/* A paged cache's page table for fai-bench: batch rows of pages_per_seq entries, a random
 * permutation of the pool's batch * pages_per_seq pages (scrambled, as pages come from a
 * serving engine's free list), copied to dst (device). */
cudaError_t bench_page_table(int32_t *dst, int batch, int pages_per_seq, uint64_t seed);
/* --page-order sequential: bench_page_table gives each sequence its pages in order (page
 * i of sequence b is b * pages_per_seq + i), to tell the page table's cost from that of
 * scattered pages. */
void bench_set_page_order_sequential(int on);

/* Sets *count (device memory) to the number of NaN or Inf among n FP16 values. */
cudaError_t bench_count_nonfinite_fp16(const void *src, int64_t n, unsigned long long *count, cudaStream_t s);
/* The same among n FP16 (bf16 = 0) or BF16 (bf16 = 1) values. */
cudaError_t bench_count_nonfinite_16(const void *src, int64_t n, int bf16, unsigned long long *count, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
