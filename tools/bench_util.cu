#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "bench_util.h"

#include <stdlib.h>

/* A counter-based hash: every element gets its own random bits, no state. */
__device__ __forceinline__ uint32_t hash32(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

__global__ void fill_fp16_kernel(__half *dst, int64_t n, uint64_t seed, float stddev)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const uint64_t base = (seed * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)i * 4);
        float sum = 0.0f;
        for (int k = 0; k < 4; k++)
            sum += (float)hash32(base + k) * (1.0f / 4294967296.0f);
        /* Four uniforms: mean 2, variance 1/3. */
        dst[i] = __float2half((sum - 2.0f) * 1.7320508f * stddev);
    }
}

/* The same values as fill_fp16_kernel for the same seed, rounded to BF16 instead. */
__global__ void fill_bf16_kernel(__nv_bfloat16 *dst, int64_t n, uint64_t seed, float stddev)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const uint64_t base = (seed * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)i * 4);
        float sum = 0.0f;
        for (int k = 0; k < 4; k++)
            sum += (float)hash32(base + k) * (1.0f / 4294967296.0f);
        dst[i] = __float2bfloat16_rn((sum - 2.0f) * 1.7320508f * stddev);
    }
}

__global__ void fill_i32_kernel(int32_t *dst, int64_t n, int32_t value)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = value;
}

__global__ void read_kernel(const uint4 *src, int64_t n, uint32_t *sink)
{
    uint32_t acc = 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    /* Four independent loads in flight per thread. */
    for (; i + 3 * stride < n; i += 4 * stride) {
        uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
        acc ^= a.x ^ a.w ^ b.y ^ b.z ^ c.x ^ c.w ^ d.y ^ d.z;
    }
    for (; i < n; i += stride)
        acc ^= src[i].x;
    if (acc == 0x12345678u)
        sink[blockIdx.x] = acc;
}

/* A 16-bit float is NaN or Inf when its exponent bits are all ones: mask 0x7c00 for FP16 (five
 * bits), 0x7f80 for BF16 (eight). */
__device__ __forceinline__ unsigned nonfinite_halves(uint32_t w, uint32_t m)
{
    return ((w & m) == m) + ((w & (m << 16)) == (m << 16));
}

__global__ void count_nonfinite_kernel(const uint16_t *src, int64_t n, uint32_t m, unsigned long long *count)
{
    unsigned long long c = 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x, start = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    /* 16-byte loads over the aligned part, single halves around it. */
    const int64_t head = (int64_t)((16 - ((uintptr_t)src & 15)) & 15) / 2;
    const int64_t lead = head < n ? head : n, vecs = (n - lead) / 8;
    const uint4 *v = (const uint4 *)(src + lead);
    for (int64_t i = start; i < vecs; i += stride) {
        const uint4 x = v[i];
        c += nonfinite_halves(x.x, m) + nonfinite_halves(x.y, m) + nonfinite_halves(x.z, m) + nonfinite_halves(x.w, m);
    }
    for (int64_t i = start; i < lead; i += stride)
        c += (src[i] & m) == m;
    for (int64_t i = lead + vecs * 8 + start; i < n; i += stride)
        c += (src[i] & m) == m;
    for (int off = 16; off > 0; off /= 2)
        c += __shfl_down_sync(0xffffffffu, c, off);
    if ((threadIdx.x & 31) == 0 && c)
        atomicAdd(count, c);
}

extern "C" cudaError_t bench_fill_fp16(void *dst, int64_t n, uint64_t seed, float stddev, cudaStream_t s)
{
    fill_fp16_kernel<<<4096, 256, 0, s>>>((__half *)dst, n, seed, stddev);
    return cudaGetLastError();
}

extern "C" cudaError_t bench_fill_16(void *dst, int64_t n, int bf16, uint64_t seed, float stddev, cudaStream_t s)
{
    if (!bf16)
        return bench_fill_fp16(dst, n, seed, stddev, s);
    fill_bf16_kernel<<<4096, 256, 0, s>>>((__nv_bfloat16 *)dst, n, seed, stddev);
    return cudaGetLastError();
}

extern "C" cudaError_t bench_fill_i32(int32_t *dst, int64_t n, int32_t value, cudaStream_t s)
{
    fill_i32_kernel<<<256, 256, 0, s>>>(dst, n, value);
    return cudaGetLastError();
}

extern "C" cudaError_t bench_read(const void *src, int64_t bytes, int blocks, uint32_t *sink, cudaStream_t s)
{
    read_kernel<<<blocks, 512, 0, s>>>((const uint4 *)src, bytes / 16, sink);
    return cudaGetLastError();
}

extern "C" cudaError_t bench_read_flush(const void *buf, uint32_t *sink, cudaStream_t s)
{
    return bench_read(buf, (int64_t)BENCH_FLUSH_BYTES, 1024, sink, s);
}

extern "C" cudaError_t bench_count_nonfinite_16(const void *src, int64_t n, int bf16, unsigned long long *count,
                                                cudaStream_t s)
{
    cudaError_t e = cudaMemsetAsync(count, 0, sizeof *count, s);
    if (e != cudaSuccess || n <= 0)
        return e;
    count_nonfinite_kernel<<<1024, 256, 0, s>>>((const uint16_t *)src, n, bf16 ? 0x7f80u : 0x7c00u, count);
    return cudaGetLastError();
}

extern "C" cudaError_t bench_count_nonfinite_fp16(const void *src, int64_t n, unsigned long long *count, cudaStream_t s)
{
    return bench_count_nonfinite_16(src, n, 0, count, s);
}

static int g_pages_sequential;
extern "C" void bench_set_page_order_sequential(int on) { g_pages_sequential = on; }

extern "C" cudaError_t bench_page_table(int32_t *dst, int batch, int pages_per_seq, uint64_t seed)
{
    const int64_t n = (int64_t)batch * pages_per_seq;
    int32_t *t = (int32_t *)malloc(sizeof(int32_t) * (size_t)n);
    if (!t)
        return cudaErrorMemoryAllocation;
    for (int64_t i = 0; i < n; i++)
        t[i] = (int32_t)i;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = g_pages_sequential ? 0 : n - 1; i > 0; i--) { /* Fisher-Yates with xorshift64 */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const int64_t j = (int64_t)(x % (uint64_t)(i + 1));
        const int32_t tmp = t[i];
        t[i] = t[j];
        t[j] = tmp;
    }
    const cudaError_t e = cudaMemcpy(dst, t, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice);
    free(t);
    return e;
}
