/* Merging attention states (fai_merge_states, fai_merge_state).
 *
 * Memory-bound: each (row, head) is served by a group of L lanes (L = head_dim / 8 rounded up
 * to a power of two, at least 4, so a warp serves 32 / L of them), lane c owning the 8-value
 * chunk c of the row: one 16-byte load per part, one 16-byte store. With m the largest of
 * the parts' LSEs, part p's weight is w_p = 2^((LSE_p - m) log2 e), computed as a difference
 * first (exact for close values, however large they are), and
 *   O = sum_p w_p O_p / sum_p w_p,   LSE = m + ln 2 * log2(sum_p w_p).
 * A part whose weight is 0 (LSE -inf, or so far below m that it underflows) is not read;
 * when every part is -inf, m is taken as 0, every weight is 0, and the row gets zeros and
 * -inf. Each lane reads its chunk of every part before it writes the same chunk of o, so o
 * may be one of the parts (in place); the group's lanes meet (__syncwarp) before one of them
 * writes the LSE, so lse may be one of the parts' LSEs. */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "../error.h"
#include "../merge_args.h"
#include "ptx.cuh"

#define MERGE_THREADS 256
/* Parts whose rows are loaded before any is used (loads in flight per lane). */
#define MERGE_UNROLL 4
#define MERGE_LOG2E 1.4426950408889634f
#define MERGE_LN2 0.6931471805599453f

/* The 8 values of a 16-byte chunk as floats, and two floats as 2 values (round to nearest). */
template <bool BF16>
__device__ __forceinline__ void unpack8(uint4 x, float f[8])
{
    const uint32_t w[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 p = BF16 ? __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&w[i]))
                              : __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
        f[2 * i] = p.x;
        f[2 * i + 1] = p.y;
    }
}

template <bool BF16>
__device__ __forceinline__ uint32_t pack2(float lo, float hi)
{
    uint32_t r;
    if (BF16) {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        r = *reinterpret_cast<const uint32_t *>(&h);
    } else {
        const __half2 h = __floats2half2_rn(lo, hi);
        r = *reinterpret_cast<const uint32_t *>(&h);
    }
    return r;
}

template <int L, bool BF16>
__global__ void __launch_bounds__(MERGE_THREADS) merge_kernel(const __grid_constant__ fai_merge_args a)
{
    const int lane = threadIdx.x & 31, c = lane % L; /* c: this lane's 8-value chunk */
    const bool has_data = c * 8 < a.head_dim;
    const unsigned group_mask = (L == 32 ? 0xffffffffu : ((1u << L) - 1u)) << (lane / L * L);
    const int64_t items = (int64_t)a.num_rows * a.num_heads;
    const int64_t per_block = MERGE_THREADS / L, step = (int64_t)gridDim.x * per_block;
    const int n = a.num_parts;
    /* Every lane of a group has the same item, so the same trip count (the __syncwarp). */
    for (int64_t item = (int64_t)blockIdx.x * per_block + threadIdx.x / L; item < items; item += step) {
        const int64_t r = item / a.num_heads;
        const int h = (int)(item % a.num_heads);
        float m = -INFINITY;
        for (int p = 0; p < n; p++)
            m = fmaxf(m, a.part_lse[p][item]);
        const float base = m == -INFINITY ? 0.0f : m; /* every part empty: all weights 0 */
        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        float sum = 0.0f;
        for (int p0 = 0; p0 < n; p0 += MERGE_UNROLL) {
            uint4 x[MERGE_UNROLL];
            float w[MERGE_UNROLL];
#pragma unroll
            for (int j = 0; j < MERGE_UNROLL; j++) {
                const int p = p0 + j;
                w[j] = 0.0f;
                x[j] = make_uint4(0, 0, 0, 0);
                if (p < n) {
                    w[j] = ptx_exp2((a.part_lse[p][item] - base) * MERGE_LOG2E);
                    if (has_data && w[j] > 0.0f) {
                        const uint16_t *src = (const uint16_t *)a.part_o[p] + r * a.part_token_stride[p] +
                                              (int64_t)h * a.part_head_stride[p] + c * 8;
                        x[j] = __ldcs(reinterpret_cast<const uint4 *>(src)); /* read once: evict first */
                    }
                }
            }
#pragma unroll
            for (int j = 0; j < MERGE_UNROLL; j++) {
                if (!(w[j] > 0.0f))
                    continue;
                sum += w[j];
                float f[8];
                unpack8<BF16>(x[j], f);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[e] = fmaf(w[j], f[e], acc[e]);
            }
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        if (has_data) {
            uint16_t *dst = (uint16_t *)a.o + r * a.o_token_stride + (int64_t)h * a.o_head_stride + c * 8;
            ptx_st_v4(dst, make_uint4(pack2<BF16>(acc[0] * inv, acc[1] * inv), pack2<BF16>(acc[2] * inv, acc[3] * inv),
                                      pack2<BF16>(acc[4] * inv, acc[5] * inv), pack2<BF16>(acc[6] * inv, acc[7] * inv)));
        }
        if (a.lse) {
            __syncwarp(group_mask); /* every lane of the group has read the parts' LSEs */
            if (c == 0)
                a.lse[item] = sum > 0.0f ? m + __log2f(sum) * MERGE_LN2 : -INFINITY;
        }
    }
}

typedef void (*merge_kernel_fn)(const fai_merge_args);

template <bool BF16>
static merge_kernel_fn pick_lanes(int lanes)
{
    switch (lanes) {
    case 4: return merge_kernel<4, BF16>;
    case 8: return merge_kernel<8, BF16>;
    case 16: return merge_kernel<16, BF16>;
    case 32: return merge_kernel<32, BF16>;
    }
    return NULL;
}

extern "C" fai_status fai_merge_launch(const char *fn, const fai_merge_args *args, cudaStream_t stream)
{
    int lanes = 4;
    while (lanes * 8 < args->head_dim)
        lanes *= 2;
    const merge_kernel_fn kernel = args->dtype == FAI_DTYPE_BF16 ? pick_lanes<true>(lanes) : pick_lanes<false>(lanes);
    if (!kernel || args->num_parts < 1 || args->num_parts > FAI_MERGE_MAX_PARTS)
        return fai_error(FAI_ERROR_INTERNAL, "%s: no merge kernel for head_dim %d, %d parts", fn,
                         (int)args->head_dim, (int)args->num_parts);
    const int64_t items = (int64_t)args->num_rows * args->num_heads;
    const int64_t per_block = MERGE_THREADS / lanes;
    int64_t blocks = (items + per_block - 1) / per_block;
    if (blocks > 65535 * 32)
        blocks = 65535 * 32; /* the grid-stride loop covers the rest */
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3(MERGE_THREADS);
    cfg.stream = stream;
    /* cudaLaunchKernelEx returns this launch's own error (cudaGetLastError could report an
     * earlier, unrelated one). */
    const cudaError_t err = cudaLaunchKernelEx(&cfg, kernel, *args);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err, "%s: launching the merge kernel failed", fn);
    return FAI_SUCCESS;
}
