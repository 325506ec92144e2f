/* Writing new K/V rows into a cache, quantizing on the way (fai_kv_append).
 *
 * Memory-bound: a row of head_dim FP16 or BF16 values (one token, one KV head, K or V) is
 * read by a group of L lanes with two 16-byte loads each (L = head_dim / 16 rounded up to a
 * power of two, so a warp holds 32 / L rows) and written as FP16 or BF16 (copied: the cache
 * has the rows' dtype), FP8 or int8 codes with one store per load. int8 rows first find
 * max|x| by shuffles within the group and write the scale. The rows' dtype is a run-time
 * flag; every encoder starts from the rows' exact FP32 values. The encoders are the ones the
 * CPU tests check exhaustively (src/kv_codec.h); on sm_89+ FP8 uses the cvt instructions
 * (from f16x2 for FP16 rows, from FP32 for BF16 rows), bit-identical to them
 * (tests/test_codec_device.cu). */
#include <cuda_fp16.h>

#include "../error.h"
#include "../kv_append_args.h"
#include "../kv_codec.h"
#include "kv_dequant.cuh"
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

/* Rows a lane loads before it converts any (more loads in flight per thread). */
#define APPEND_UNROLL 2

/* Lanes per row: head_dim / 16 rounded up to a power of two (each lane holds 16 values,
 * chunks c and c + lanes of 8), so a lane group never straddles a warp (the shuffles). */
__host__ __device__ static inline int append_lanes(int head_dim) { return head_dim <= 64 ? 4 : head_dim <= 128 ? 8 : 16; }

/* Four values to int8 codes (fai_int8_code_by_add: no float-to-int conversion), packed;
 * pre and inv: fai_int8_pre and fai_int8_inv of the row's scale. */
__device__ __forceinline__ uint32_t int8x4_from_float(const float *f, float pre, float inv)
{
    const uint32_t b0 = fai_int8_code_by_add(f[0], pre, inv), b1 = fai_int8_code_by_add(f[1], pre, inv);
    const uint32_t b2 = fai_int8_code_by_add(f[2], pre, inv), b3 = fai_int8_code_by_add(f[3], pre, inv);
    return b0 | b1 << 8 | b2 << 16 | b3 << 24;
}

/* Eight values of a 16-byte load (FP16 or BF16 bits) as floats (exact): the decode kernels'
 * conversions. */
__device__ __forceinline__ void row8_to_float(uint4 x, int bf16, float *f)
{
    if (bf16)
        kv_to_float<FAI_KV_BF16>(x, f);
    else
        kv_to_float<FAI_KV_FP16>(x, f);
}

/* One block row of the grid is one (KV head, K or V) pair; its blocks stride over tokens, a
 * group of `lanes` lanes per token. No index needs a division but the slot's, and that one
 * in 32 bits when the cache has fewer than 2^31 slots. Consecutive groups take consecutive
 * tokens, so int8 scales ([batch, heads, capacity] or any strides) go out close together. */
__global__ void __launch_bounds__(APPEND_THREADS) kv_append_kernel(const __grid_constant__ fai_kv_append_args a)
{
    const int lanes = append_lanes(a.head_dim);
    const int c = threadIdx.x % lanes, chunks = a.head_dim / 8;
    const bool has[2] = {c < chunks, lanes + c < chunks};
    const int tokens_per_step = APPEND_THREADS / lanes;
    const int64_t step = (int64_t)gridDim.x * tokens_per_step * APPEND_UNROLL;
    const bool narrow = a.num_slots <= INT32_MAX;
    const bool int8 = a.dtype == FAI_DTYPE_INT8;
    for (int y = blockIdx.y; y < 2 * a.num_kv_heads; y += gridDim.y) {
        const int kv = y & 1, h = y >> 1; /* 0: K, 1: V */
        const uint16_t *src = (const uint16_t *)(kv ? a.v_new : a.k_new) + (int64_t)h * a.new_head_stride[kv];
        const int64_t src_stride = a.new_token_stride[kv];
        char *dst = (char *)(kv ? a.v : a.k);
        float *scale_out = kv ? a.v_scale : a.k_scale;
        /* All lanes of a warp take the same trip count (the shuffles). */
        for (int64_t base = (int64_t)blockIdx.x * tokens_per_step * APPEND_UNROLL; base < a.num_tokens; base += step) {
            uint4 x[APPEND_UNROLL][2];
            int64_t slot[APPEND_UNROLL];
#pragma unroll
            for (int u = 0; u < APPEND_UNROLL; u++) {
                const int64_t t = base + u * tokens_per_step + threadIdx.x / lanes;
                x[u][0] = x[u][1] = make_uint4(0, 0, 0, 0);
                slot[u] = -1;
                if (t < a.num_tokens) {
                    slot[u] = a.slots[t];
#pragma unroll
                    for (int j = 0; j < 2; j++)
                        if (has[j])
                            x[u][j] = ptx_ld_stream_v4(src + t * src_stride + (c + j * lanes) * 8);
                }
            }
#pragma unroll
            for (int u = 0; u < APPEND_UNROLL; u++) {
                float f[2][8];
                float scale = 0.0f;
                if (int8) {
                    row8_to_float(x[u][0], a.new_bf16, f[0]);
                    row8_to_float(x[u][1], a.new_bf16, f[1]);
                    float amax = 0.0f;
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        amax = fmaxf(amax, fabsf(f[i / 8][i % 8]));
                    for (int off = lanes / 2; off >= 1; off /= 2)
                        amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
                    scale = fai_int8_row_scale(amax, a.scale_pairs); /* (BF16X2: the BF16 its readers see) */
                }
                if (slot[u] < 0 || slot[u] >= a.num_slots)
                    continue; /* padding, or a slot outside the cache (device-side guard) */
                int64_t b, pos;
                if (narrow) {
                    const uint32_t s = (uint32_t)slot[u], q = s / (uint32_t)a.capacity;
                    b = q, pos = s - q * (uint32_t)a.capacity;
                } else {
                    b = slot[u] / a.capacity, pos = slot[u] % a.capacity;
                }
                const int64_t off = b * a.seq_stride + pos * a.token_stride + (int64_t)h * a.head_stride;
                if (int8 && c == 0) {
                    const int64_t so = b * a.scale_seq_stride + pos * a.scale_token_stride + (int64_t)h * a.scale_head_stride;
                    if (a.scale_pairs) /* K's half and V's half of the word, stored by their own threads */
                        reinterpret_cast<uint16_t *>(a.k_scale)[2 * so + kv] = (uint16_t)(fai_float_bits(scale) >> 16);
                    else
                        scale_out[so] = scale;
                }
                const float pre = fai_int8_pre(scale), inv = fai_int8_inv(scale);
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    if (!has[j])
                        continue;
                    const int64_t e = off + (c + j * lanes) * 8; /* element of the chunk */
                    if (a.dtype == FAI_DTYPE_FP16 || a.dtype == FAI_DTYPE_BF16) { /* the rows' own dtype */
                        ptx_st_v4(dst + e * 2, x[u][j]);
                    } else if (int8) {
                        ptx_st_v2(dst + e, make_uint2(int8x4_from_float(f[j], pre, inv), int8x4_from_float(f[j] + 4, pre, inv)));
                    } else {
                        const int e4m3 = a.dtype == FAI_DTYPE_FP8_E4M3;
                        const uint4 w = x[u][j];
                        uint32_t c01, c23, c45, c67;
                        if (a.new_bf16) {
                            c01 = fp8x2_from_bf162(w.x, e4m3), c23 = fp8x2_from_bf162(w.y, e4m3);
                            c45 = fp8x2_from_bf162(w.z, e4m3), c67 = fp8x2_from_bf162(w.w, e4m3);
                        } else {
                            c01 = fp8x2_from_half2(w.x, e4m3), c23 = fp8x2_from_half2(w.y, e4m3);
                            c45 = fp8x2_from_half2(w.z, e4m3), c67 = fp8x2_from_half2(w.w, e4m3);
                        }
                        ptx_st_v2(dst + e, make_uint2(c01 | c23 << 16, c45 | c67 << 16));
                    }
                }
            }
        }
    }
}

extern "C" fai_status fai_kv_append_launch(const fai_kv_append_args *args, cudaStream_t stream)
{
    const int64_t tokens_per_block = APPEND_THREADS / append_lanes(args->head_dim) * APPEND_UNROLL;
    int64_t bx = (args->num_tokens + tokens_per_block - 1) / tokens_per_block;
    if (bx > 65535 * 32)
        bx = 65535 * 32; /* the grid-stride loops cover the rest */
    const int64_t by = 2 * (int64_t)args->num_kv_heads;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)(bx > 0 ? bx : 1), (unsigned)(by < 65535 ? by : 65535));
    cfg.blockDim = dim3(APPEND_THREADS);
    cfg.stream = stream;
    /* cudaLaunchKernelEx returns this launch's own error (cudaGetLastError could report an
     * earlier, unrelated one) */
    const cudaError_t err = cudaLaunchKernelEx(&cfg, kv_append_kernel, *args);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err, "fai_kv_append: launching the append kernel failed");
    return FAI_SUCCESS;
}
