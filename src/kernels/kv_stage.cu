/* Staging a KV cache into a contiguous copy in q's dtype for fai_prefill (src/kv_stage_args.h):
 * an int8 or FP8 cache dequantized, or a paged FP16/BF16 cache gathered (its pages cost the
 * prefill kernel's inner loop more than the copy costs, on long chunks: prefill_plan.c).
 *
 * Memory-bound and short beside the prefill that follows (a 16K-token chunk's keys and values
 * at 8 heads of 128 are ~100 MB of traffic, ~35 us, against milliseconds of attention). A
 * thread takes 8 values of one (token, head) row with one load (8 bytes of codes, or 16 of
 * FP16/BF16), K and V alike; codes become floats with the decode kernels' conversions (exact;
 * int8 codes times the row's scale, the FP32 product fai_int8_dequantize makes) and are
 * rounded to FP16 or BF16 (nearest even); FP16/BF16 values are copied as they are. 16 bytes
 * are stored. Rows past a sequence's length are not written (the prefill kernel does not
 * read them). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../error.h"
#include "../kv_stage_args.h"
#include "kv_dequant.cuh"

#define STAGE_THREADS 256
#define STAGE_MAX_BLOCKS_X 4096 /* per sequence; the loop strides over the rest */

/* Eight floats as FP16 or BF16 (round to nearest even), packed in a uint4. FP16 saturates at
 * +-65504: an int8 code times its scale can pass FP16's range where the cache was written
 * from BF16 rows (a staged infinity would turn the prefill's outputs into NaN). */
__device__ __forceinline__ uint4 pack8(const float *f, int bf16)
{
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (bf16) {
            const __nv_bfloat162 h = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
            w[i] = *reinterpret_cast<const uint32_t *>(&h);
        } else {
            w[i] = ptx_cvt_f16x2_f32_satfinite(f[2 * i], f[2 * i + 1]);
        }
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

template <int KT>
__global__ void __launch_bounds__(STAGE_THREADS) kv_stage_kernel(const __grid_constant__ fai_kv_stage_args a)
{
    const fai_kv_cache *c = &a.cache;
    const int chunks = a.head_dim / 8;                      /* 8 codes per thread */
    const int64_t per_token = (int64_t)a.num_kv_heads * chunks;
    const int64_t row_mask = ((int64_t)1 << a.page_shift) - 1;
    for (int i = blockIdx.y; i < a.count; i += gridDim.y) {
        const int b = a.first + i;
        const int len = min(max(c->seq_lens[b], 0), a.keys);
        const int64_t items = (int64_t)len * per_token;
        const int64_t out_seq = (int64_t)i * a.keys * per_token * 8; /* elements */
        for (int64_t it = (int64_t)blockIdx.x * STAGE_THREADS + threadIdx.x; it < items;
             it += (int64_t)gridDim.x * STAGE_THREADS) {
            const int64_t t = it / per_token;
            const int rem = (int)(it - t * per_token), h = rem / chunks, ch = rem - h * chunks;
            int64_t src, sc; /* element offsets of the codes and of the row's scale */
            if (c->page_table) {
                int pg = c->page_table[(int64_t)b * c->page_table_stride + (t >> a.page_shift)];
                pg = min(max(pg, 0), c->num_pages - 1); /* as the decode kernels clamp it */
                const int64_t row = t & row_mask;
                src = (int64_t)pg * c->seq_stride + row * c->token_stride;
                sc = (int64_t)pg * c->scale_seq_stride + row * c->scale_token_stride;
            } else {
                src = (int64_t)b * c->seq_stride + t * c->token_stride;
                sc = (int64_t)b * c->scale_seq_stride + t * c->scale_token_stride;
            }
            src += (int64_t)h * c->head_stride + ch * 8;
            sc += (int64_t)h * c->scale_head_stride;
            const int64_t dst = out_seq + it * 8; /* [i][t][h][ch * 8] */
#pragma unroll
            for (int kv = 0; kv < 2; kv++) {
                const char *at = (const char *)(kv ? c->v : c->k) + src * FAI_KV_BYTES(KT);
                if (KT == FAI_KV_FP16 || KT == FAI_KV_BF16) { /* q's dtype already: a copy */
                    ptx_st_v4((uint16_t *)(kv ? a.v_out : a.k_out) + dst, ptx_ld_stream_v4(at));
                    continue;
                }
                float f[8];
                kv_to_float<KT>(kv_load<KT>(at), f);
                if (KT == FAI_KV_INT8) {
                    float s;
                    if (c->scale_format == FAI_SCALES_BF16X2) {
                        const uint32_t w = reinterpret_cast<const uint32_t *>(c->k_scale)[sc];
                        s = kv ? scale_pair_v(w) : scale_pair_k(w);
                    } else {
                        s = (kv ? c->v_scale : c->k_scale)[sc];
                    }
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        f[e] = f[e] * s;
                }
                ptx_st_v4((uint16_t *)(kv ? a.v_out : a.k_out) + dst, pack8(f, a.out_bf16));
            }
        }
    }
}

extern "C" fai_status fai_kv_stage_launch(const fai_kv_stage_args *args, cudaStream_t stream)
{
    void (*kernel)(const fai_kv_stage_args) = NULL;
    switch (args->cache.dtype) {
    case FAI_DTYPE_INT8: kernel = kv_stage_kernel<FAI_KV_INT8>; break;
    case FAI_DTYPE_FP8_E4M3: kernel = kv_stage_kernel<FAI_KV_E4M3>; break;
    case FAI_DTYPE_FP8_E5M2: kernel = kv_stage_kernel<FAI_KV_E5M2>; break;
    case FAI_DTYPE_FP16: kernel = kv_stage_kernel<FAI_KV_FP16>; break;
    case FAI_DTYPE_BF16: kernel = kv_stage_kernel<FAI_KV_BF16>; break;
    default:
        return fai_error(FAI_ERROR_INTERNAL, "fai_prefill: no staging kernel for cache dtype %d",
                         (int)args->cache.dtype);
    }
    if (args->count <= 0 || args->keys <= 0)
        return FAI_SUCCESS;
    const int64_t per_seq = (int64_t)args->keys * args->num_kv_heads * (args->head_dim / 8);
    int64_t bx = (per_seq + STAGE_THREADS - 1) / STAGE_THREADS;
    bx = bx < STAGE_MAX_BLOCKS_X ? bx : STAGE_MAX_BLOCKS_X;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)bx, (unsigned)(args->count < 65535 ? args->count : 65535));
    cfg.blockDim = dim3(STAGE_THREADS);
    cfg.stream = stream;
    const cudaError_t err = cudaLaunchKernelEx(&cfg, kernel, *args);
    if (err == cudaSuccess)
        return FAI_SUCCESS;
    return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err, "fai_prefill: launching the cache staging kernel failed");
}
