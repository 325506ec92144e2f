/* Writing new K/V rows into a cache, quantizing on the way (fai_kv_append).
 *
 * Memory-bound: a row of head_dim FP16 or BF16 values (one token, one KV head, K or V) is
 * read by a group of L lanes with one 16-byte load each (L = head_dim / 8 rounded up to a
 * power of two, so a warp holds 32 / L rows) and written as FP16 or BF16 (copied: the cache
 * has the rows' dtype), FP8 or int8 codes with one store per lane. int8 rows first find
 * max|x| by shuffles within the group and write the scale. The rows' dtype is a run-time
 * flag; every encoder starts from the rows' exact FP32 values. The encoders are the ones the
 * CPU tests check exhaustively (src/kv_codec.h); on sm_89+ FP8 uses the cvt instructions
 * (from f16x2 for FP16 rows, from FP32 for BF16 rows), bit-identical to them
 * (tests/test_codec_device.cu). */
#include <cuda_fp16.h>

#include "../error.h"
#include "../kv_append_args.h"
#include "../kv_codec.h"
#include "ptx.cuh"

#define APPEND_THREADS 256

/* Two BF16 rows' values (a bfloat162's bits) to FP8 codes, from their FP32 values (exact). */
__device__ __forceinline__ uint32_t fp8x2_from_bf162(uint32_t w, int e4m3)
{
    const float lo = __uint_as_float(w << 16), hi = __uint_as_float(w & 0xFFFF0000u);
#if FAI_HAS_FP8_CVT
    return e4m3 ? ptx_cvt_e4m3x2_f32(hi, lo) : ptx_cvt_e5m2x2_f32(hi, lo);
#else
    const uint32_t clo = e4m3 ? fai_fp8_e4m3_from_float(lo) : fai_fp8_e5m2_from_float(lo);
    const uint32_t chi = e4m3 ? fai_fp8_e4m3_from_float(hi) : fai_fp8_e5m2_from_float(hi);
    return clo | chi << 8;
#endif
}

__device__ __forceinline__ uint32_t fp8x2_from_half2(uint32_t h2, int e4m3)
{
#if FAI_HAS_FP8_CVT
    return e4m3 ? ptx_cvt_e4m3x2_f16x2(h2) : ptx_cvt_e5m2x2_f16x2(h2);
#else
    const float2 f = __half22float2(*reinterpret_cast<const __half2 *>(&h2));
    const uint32_t lo = e4m3 ? fai_fp8_e4m3_from_float(f.x) : fai_fp8_e5m2_from_float(f.x);
    const uint32_t hi = e4m3 ? fai_fp8_e4m3_from_float(f.y) : fai_fp8_e5m2_from_float(f.y);
    return lo | hi << 8;
#endif
}

/* Rows a lane group loads before it converts any (more loads in flight per thread). */
#define APPEND_UNROLL 4

__global__ void __launch_bounds__(APPEND_THREADS) kv_append_kernel(const __grid_constant__ fai_kv_append_args a)
{
    const int lanes = a.head_dim <= 64 ? 8 : a.head_dim <= 128 ? 16 : 32; /* per row */
    const int lane = threadIdx.x & 31, c = lane % lanes;                    /* c: 8-value chunk */
    const bool has_data = c * 8 < a.head_dim;
    const int64_t rows = (int64_t)a.num_tokens * a.num_kv_heads * 2;
    const int64_t rows_per_block = APPEND_THREADS / lanes;
    const int64_t step = (int64_t)gridDim.x * rows_per_block * APPEND_UNROLL;
    /* Grid-stride over groups of APPEND_UNROLL rows; all lanes of a warp take the same trip
     * count (the shuffles). */
    for (int64_t base = (int64_t)blockIdx.x * rows_per_block * APPEND_UNROLL; base < rows; base += step) {
        uint4 x[APPEND_UNROLL];
        int64_t slot[APPEND_UNROLL];
#pragma unroll
        for (int r = 0; r < APPEND_UNROLL; r++) {
            const int64_t row = base + r * rows_per_block + threadIdx.x / lanes;
            x[r] = make_uint4(0, 0, 0, 0);
            slot[r] = -1;
            if (row < rows) {
                const int kv = (int)(row & 1); /* 0: K, 1: V */
                const int64_t th = row >> 1;
                const int h = (int)(th % a.num_kv_heads);
                const int64_t t = th / a.num_kv_heads;
                slot[r] = a.slots[t];
                if (has_data) {
                    const uint16_t *src = (const uint16_t *)(kv ? a.v_new : a.k_new) + t * a.new_token_stride[kv] +
                                        (int64_t)h * a.new_head_stride[kv] + c * 8;
                    x[r] = ptx_ld_stream_v4(src);
                }
            }
        }
#pragma unroll
        for (int r = 0; r < APPEND_UNROLL; r++) {
            const int64_t row = base + r * rows_per_block + threadIdx.x / lanes;
            float f[8];
            {
                const uint32_t w[4] = {x[r].x, x[r].y, x[r].z, x[r].w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    if (a.new_bf16) {
                        f[2 * i] = __uint_as_float(w[i] << 16);
                        f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
                    } else {
                        const float2 p = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
                        f[2 * i] = p.x;
                        f[2 * i + 1] = p.y;
                    }
                }
            }
            float scale = 0.0f;
            if (a.dtype == FAI_DTYPE_INT8) {
                float amax = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    amax = fmaxf(amax, fabsf(f[i]));
                for (int off = lanes / 2; off >= 1; off /= 2)
                    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
                scale = fai_int8_scale(amax);
            }
            if (row >= rows || slot[r] < 0 || slot[r] >= a.num_slots)
                continue; /* padding, or a slot outside the cache (device-side guard) */
            const int kv = (int)(row & 1);
            const int h = (int)((row >> 1) % a.num_kv_heads);
            const int64_t b = slot[r] / a.capacity, pos = slot[r] % a.capacity;
            const int64_t off = b * a.seq_stride + pos * a.token_stride + (int64_t)h * a.head_stride + c * 8;
            char *dst = (char *)(kv ? a.v : a.k);
            if (a.dtype == FAI_DTYPE_INT8 && c == 0) {
                float *sp = kv ? a.v_scale : a.k_scale;
                sp[b * a.scale_seq_stride + pos * a.scale_token_stride + (int64_t)h * a.scale_head_stride] = scale;
            }
            if (!has_data)
                continue;
            if (a.dtype == FAI_DTYPE_FP16 || a.dtype == FAI_DTYPE_BF16) { /* the rows' own dtype */
                ptx_st_v4(dst + off * 2, x[r]);
            } else if (a.dtype == FAI_DTYPE_INT8) {
                uint32_t w[2] = {0, 0};
#pragma unroll
                for (int i = 0; i < 8; i++)
                    w[i / 4] |= (uint32_t)(uint8_t)fai_int8_quantize(f[i], scale) << (8 * (i % 4));
                ptx_st_v2(dst + off, make_uint2(w[0], w[1]));
            } else {
                const int e4m3 = a.dtype == FAI_DTYPE_FP8_E4M3;
                uint32_t c01, c23, c45, c67;
                if (a.new_bf16) {
                    c01 = fp8x2_from_bf162(x[r].x, e4m3), c23 = fp8x2_from_bf162(x[r].y, e4m3);
                    c45 = fp8x2_from_bf162(x[r].z, e4m3), c67 = fp8x2_from_bf162(x[r].w, e4m3);
                } else {
                    c01 = fp8x2_from_half2(x[r].x, e4m3), c23 = fp8x2_from_half2(x[r].y, e4m3);
                    c45 = fp8x2_from_half2(x[r].z, e4m3), c67 = fp8x2_from_half2(x[r].w, e4m3);
                }
                ptx_st_v2(dst + off, make_uint2(c01 | c23 << 16, c45 | c67 << 16));
            }
        }
    }
}

extern "C" fai_status fai_kv_append_launch(const fai_kv_append_args *args, cudaStream_t stream)
{
    const int lanes = args->head_dim <= 64 ? 8 : args->head_dim <= 128 ? 16 : 32;
    const int64_t rows = (int64_t)args->num_tokens * args->num_kv_heads * 2;
    const int64_t rows_per_block = APPEND_THREADS / lanes * APPEND_UNROLL;
    int64_t blocks = (rows + rows_per_block - 1) / rows_per_block;
    if (blocks > 65535 * 32)
        blocks = 65535 * 32; /* the grid-stride loop covers the rest */
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3(APPEND_THREADS);
    cfg.stream = stream;
    /* cudaLaunchKernelEx returns this launch's own error (cudaGetLastError could report an
     * earlier, unrelated one) */
    const cudaError_t err = cudaLaunchKernelEx(&cfg, kv_append_kernel, *args);
    if (err != cudaSuccess && (cudaGetLastError(), 1))
        return fai_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, "fai_kv_append: launching the append kernel failed: %s (%s)",
                         cudaGetErrorString(err), cudaGetErrorName(err));
    return FAI_SUCCESS;
}
