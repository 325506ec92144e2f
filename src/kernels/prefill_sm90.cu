/* Prefill attention on Hopper (sm_90a): warpgroup MMAs (wgmma) fed by the tensor memory
 * accelerator (TMA), for the calls that need nothing but the plain kernel's features: head dim
 * 128, FP16 or BF16, causal or no mask, packed varlen Q/K/V (GQA and strided views included),
 * optional LSE. Every other call, and every call on other GPUs or in builds without sm_90a,
 * runs the mma.sync kernel (prefill_kernel.cuh); prefill.cu asks this file first.
 *
 * A block owns 128 query rows of one (sequence, query head) and has three roles:
 *   producer  one thread of warp 8 issues the TMA copies: the Q tile, then the K and V tiles
 *             of 128 keys into a ring of STAGES stages, each stage's arrival counted on its
 *             `full` barrier; it refills a stage once its `empty` barrier says both consumers
 *             are done with it;
 *   consumers warpgroups 0 and 1 (warps 0-7), 64 query rows each: S = Q K^T by wgmma from
 *             shared memory (m64n128k16, K-major), the online softmax on S's accumulators,
 *             then O += P V with P from registers and V read MN-major (m64n64k16, two halves
 *             of the head dim).
 * Tiles are 128 rows x 128 values in two 64-value column halves of 16 KB, each half 128-byte
 * swizzled as TMA writes it and wgmma reads it (chunk c of row r at c ^ r % 8). Key tiles run
 * from the last to the first, as in the mma.sync kernel (the masked tiles first); tiles wholly
 * above the causal diagonal are not loaded. Keys past the sequence's end in the last tile are
 * rows of the next sequence (or zeros past the tensor): masked in S, and their V rows zeroed in
 * shared memory before P V (0 x NaN would be NaN). The work order over blocks is the mma.sync
 * kernel's (fai_prefill_args.m_tiles). */
#include <cuda.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "prefill_kernel.cuh"
#include "prefill_sm90.h"
#include "ptx_tma.cuh"
#include "ptx_wgmma.cuh"

enum {
    SM90_D = 128,
    SM90_BM = 128,
    SM90_BN = 128,
    SM90_STAGES = 2,
    SM90_CONSUMER_THREADS = 256,
    SM90_THREADS = SM90_CONSUMER_THREADS + 32,
    SM90_HALF = 128 * 128, /* bytes of one 64-value column half of a 128-row tile */
    SM90_TILE = 2 * SM90_HALF,
    SM90_SMEM = SM90_TILE * (1 + 2 * SM90_STAGES) + 1024 /* Q, the K/V stages, alignment */
};

/* The kernel's parameter: the tensor maps of Q, K and V (the TMA reads them from the
 * parameter space), then the common arguments. */
typedef struct sm90_params {
    CUtensorMap tq, tk, tv;
    fai_prefill_args a;
} sm90_params;

/* What differs between FP16 and BF16 here: the two wgmma instructions. */
template <typename T>
struct sm90_elem;

template <>
struct sm90_elem<__half> {
    static __device__ __forceinline__ void qk(float s[64], uint64_t da, uint64_t db, int acc)
    {
        wgmma_m64n128k16_f16(s, da, db, acc);
    }
    static __device__ __forceinline__ void pv(float o[32], const uint32_t p[4], uint64_t db)
    {
        wgmma_m64n64k16_f16_rs_tb(o, p, db, 1);
    }
};

template <>
struct sm90_elem<__nv_bfloat16> {
    static __device__ __forceinline__ void qk(float s[64], uint64_t da, uint64_t db, int acc)
    {
        wgmma_m64n128k16_bf16(s, da, db, acc);
    }
    static __device__ __forceinline__ void pv(float o[32], const uint32_t p[4], uint64_t db)
    {
        wgmma_m64n64k16_bf16_rs_tb(o, p, db, 1);
    }
};

/* Descriptor of a 128-byte-swizzled K-major or MN-major operand at p (8-row groups 1024 bytes
 * apart). */
__device__ __forceinline__ uint64_t sm90_desc(const char *p) { return wgmma_desc(p, 16, 1024, FAI_SWIZZLE_128B); }

/* Keys the rows of query tile m0 see: all of them, or up to the causal diagonal of its last
 * row (bottom-right aligned: row i sees keys up to i + seq_k - seq_q). */
__device__ __forceinline__ int sm90_keys(const fai_prefill_args &a, int m0, int seq_q, int seq_k)
{
    if (a.win_right != 0)
        return seq_k;
    return max(0, min(seq_k, min(seq_q, m0 + SM90_BM) + seq_k - seq_q));
}

template <typename Elem>
__global__ void __launch_bounds__(SM90_THREADS, 1) prefill_sm90_kernel(const __grid_constant__ sm90_params p)
{
#if FAI_HAS_WGMMA
    using E = sm90_elem<Elem>;
    using P = prefill_elem<Elem>;
    const fai_prefill_args &a = p.a;
    extern __shared__ char smem_raw[];
    char *sq = smem_raw + ((1024 - (ptx_smem_addr(smem_raw) & 1023)) & 1023); /* swizzle atoms: 1024-aligned */
    /* stage s: K at sq + SM90_TILE (1 + 2 s), V one tile after it */
    __shared__ uint64_t full[SM90_STAGES], empty[SM90_STAGES], q_full, q_empty;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < SM90_STAGES; s++) {
            mbar_init(&full[s], 1);  /* the producer's arrive_expect_tx (and the bytes) */
            mbar_init(&empty[s], 8); /* one arrival per consumer warp */
        }
        mbar_init(&q_full, 1);
        mbar_init(&q_empty, 8);
        mbar_fence_init();
    }
    __syncthreads();

    const int T = a.m_tiles;
    const int bh = blockIdx.x / T;
    const int h = bh % a.num_q_heads, b = a.batch_offset + bh / a.num_q_heads, kvh = h / a.group;
    const int2 qr = cu_range(a.cu_q, b, a.total_q), kr = cu_range(a.cu_k, b, a.total_k);
    const int seq_q = qr.y - qr.x, seq_k = kr.y - kr.x;
    if (a.skip_decode_rows && seq_q == 1)
        return; /* a decode row: the decode kernel of the same call writes it */

    if (warp == SM90_CONSUMER_THREADS / 32) { /* the producer */
        if (lane != 0)
            return;
        tma_prefetch_map(&p.tq);
        tma_prefetch_map(&p.tk);
        tma_prefetch_map(&p.tv);
        uint32_t st = 0, ph = 0, qph = 0;
        for (int t = T - 1 - (int)(blockIdx.x % T); (int64_t)t * SM90_BM < seq_q; t += T) {
            const int m0 = t * SM90_BM, nkeys = sm90_keys(a, m0, seq_q, seq_k);
            mbar_wait(&q_empty, qph ^ 1); /* the consumers are done with the last tile's Q */
            qph ^= 1;
            mbar_arrive_expect_tx(&q_full, SM90_TILE);
            tma_load_3d(sq, &p.tq, &q_full, 0, h, qr.x + m0);
            tma_load_3d(sq + SM90_HALF, &p.tq, &q_full, 64, h, qr.x + m0);
            for (int n0 = ((nkeys + SM90_BN - 1) / SM90_BN - 1) * SM90_BN; n0 >= 0; n0 -= SM90_BN) {
                mbar_wait(&empty[st], ph ^ 1);
                char *sk = sq + SM90_TILE * (1 + 2 * st), *sv = sk + SM90_TILE;
                mbar_arrive_expect_tx(&full[st], 2 * SM90_TILE);
                tma_load_3d(sk, &p.tk, &full[st], 0, kvh, kr.x + n0);
                tma_load_3d(sk + SM90_HALF, &p.tk, &full[st], 64, kvh, kr.x + n0);
                tma_load_3d(sv, &p.tv, &full[st], 0, kvh, kr.x + n0);
                tma_load_3d(sv + SM90_HALF, &p.tv, &full[st], 64, kvh, kr.x + n0);
                if (++st == SM90_STAGES) {
                    st = 0;
                    ph ^= 1;
                }
            }
        }
        return;
    }

    /* The consumers: warpgroup c, warp w of it, rows 16 w + lane / 4 (+ 8) of its 64. */
    const int c = warp >> 2, w = warp & 3, quad = lane & 3;
    const int off = seq_k - seq_q; /* row i's diagonal key is i + off */
    const bool causal = a.win_right == 0;
    const char *sqc = sq + c * 64 * 128; /* the warpgroup's 64 rows of each Q half */
    uint32_t st = 0, ph = 0, qph = 0;
    for (int t = T - 1 - (int)(blockIdx.x % T); (int64_t)t * SM90_BM < seq_q; t += T) {
        const int m0 = t * SM90_BM, nkeys = sm90_keys(a, m0, seq_q, seq_k);
        const int wr0 = m0 + c * 64 + 16 * w; /* the warp's first row */
        float acc[2][32], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
        for (int hb = 0; hb < 2; hb++)
#pragma unroll
            for (int j = 0; j < 32; j++)
                acc[hb][j] = 0.0f;
        mbar_wait(&q_full, qph);
        qph ^= 1;
        for (int n0 = ((nkeys + SM90_BN - 1) / SM90_BN - 1) * SM90_BN; n0 >= 0; n0 -= SM90_BN) {
            mbar_wait(&full[st], ph);
            const char *sk = sq + SM90_TILE * (1 + 2 * st);
            char *sv = sq + SM90_TILE * (2 + 2 * st);
            if (n0 + SM90_BN > seq_k) {
                /* The ragged end: zero the V rows past the sequence (both warpgroups read
                 * them), then make the zeros visible to wgmma before either goes on. */
                const int valid = seq_k - n0;
                for (int i = threadIdx.x; i < (SM90_BN - valid) * 16; i += SM90_CONSUMER_THREADS) {
                    const int r = valid + (i >> 4), ch = i & 15;
                    *reinterpret_cast<uint4 *>(sv + (ch >> 3) * SM90_HALF + r * 128 + (ch & 7) * 16) =
                        make_uint4(0, 0, 0, 0);
                }
                fence_proxy_async_smem();
                named_barrier_sync(1, SM90_CONSUMER_THREADS);
            }

            /* S = Q K^T: eight k-steps of 16 dims, 32 bytes apart in a swizzled row, four per
             * column half. */
            float s[64];
#pragma unroll
            for (int j = 0; j < 64; j++)
                s[j] = 0.0f;
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < SM90_D / 16; ks++) {
                const int o = (ks >> 2) * SM90_HALF + (ks & 3) * 32;
                E::qk(s, sm90_desc(sqc + o), sm90_desc(sk + o), ks > 0);
            }
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int j = 0; j < 64; j++)
                wgmma_fence_acc(s[j]);

            /* Online softmax. s[j] is row wr0 + lane / 4 + 8 ((j / 2) % 2), key
             * n0 + 8 (j / 4) + 2 (lane % 4) + j % 2. Only the ragged end and the tiles on the
             * causal diagonal are masked. */
            const bool need_mask = n0 + SM90_BN > seq_k || (causal && n0 + SM90_BN - 1 > wr0 + off);
            float sc = a.scale_log2;
            if (need_mask) {
                sc = 1.0f;
#pragma unroll
                for (int j = 0; j < 64; j++) {
                    const int row = wr0 + (lane >> 2) + 8 * ((j >> 1) & 1);
                    const int key = n0 + 8 * (j >> 2) + 2 * quad + (j & 1);
                    s[j] = key >= seq_k || (causal && key > row + off) ? -INFINITY : s[j] * a.scale_log2;
                }
            }
            float alpha[2];
            bool grew = false;
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                float mx = -INFINITY;
#pragma unroll
                for (int j = 0; j < 64; j += 4)
                    mx = fmaxf(mx, fmaxf(s[j + 2 * hr], s[j + 2 * hr + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mnew = fmaxf(m[hr], mx * sc);
                const float base = safe_max(mnew);
                alpha[hr] = ptx_exp2(m[hr] - base);
                grew |= mnew != m[hr];
                m[hr] = mnew;
                float sum = 0.0f;
#pragma unroll
                for (int j = 0; j < 64; j += 4) {
                    s[j + 2 * hr] = ptx_exp2(fmaf(s[j + 2 * hr], sc, -base));
                    s[j + 2 * hr + 1] = ptx_exp2(fmaf(s[j + 2 * hr + 1], sc, -base));
                    sum += s[j + 2 * hr] + s[j + 2 * hr + 1];
                }
                l[hr] = l[hr] * alpha[hr] + sum;
            }
            if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
                for (int hb = 0; hb < 2; hb++)
#pragma unroll
                    for (int j = 0; j < 32; j++)
                        acc[hb][j] *= alpha[(j >> 1) & 1];
            }

            /* P as the A fragments of the eight 16-key k-steps of P V: keys 16 ks .. 16 ks + 15
             * are s[8 ks .. 8 ks + 7]. */
            uint32_t pf[SM90_BN / 16][4];
#pragma unroll
            for (int ks = 0; ks < SM90_BN / 16; ks++) {
                pf[ks][0] = P::pack(s[8 * ks + 0], s[8 * ks + 1]);
                pf[ks][1] = P::pack(s[8 * ks + 2], s[8 * ks + 3]);
                pf[ks][2] = P::pack(s[8 * ks + 4], s[8 * ks + 5]);
                pf[ks][3] = P::pack(s[8 * ks + 6], s[8 * ks + 7]);
            }
            /* O += P V: V's rows are keys (MN-major for the head-dim columns), 16 keys =
             * 2048 bytes per k-step, one 64-column half per accumulator half. */
            wgmma_fence();
#pragma unroll
            for (int hb = 0; hb < 2; hb++)
#pragma unroll
                for (int ks = 0; ks < SM90_BN / 16; ks++)
                    E::pv(acc[hb], pf[ks], sm90_desc(sv + hb * SM90_HALF + ks * 2048));
            wgmma_commit();
            wgmma_wait<0>();
#pragma unroll
            for (int hb = 0; hb < 2; hb++)
#pragma unroll
                for (int j = 0; j < 32; j++)
                    wgmma_fence_acc(acc[hb][j]);
            if (lane == 0)
                mbar_arrive(&empty[st]); /* this warp is done with the stage */
            if (++st == SM90_STAGES) {
                st = 0;
                ph ^= 1;
            }
        }
        if (lane == 0)
            mbar_arrive(&q_empty); /* and with Q */

        /* Epilogue: normalize, LSE from the quad leader, 4-byte stores of column pairs. */
        Elem *og = (Elem *)a.o + (int64_t)qr.x * a.o_token_stride + (int64_t)h * a.o_head_stride;
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            float sum = l[hr];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            const int row = wr0 + (lane >> 2) + 8 * hr;
            if (row >= seq_q)
                continue;
            if (a.lse && quad == 0)
                a.lse[((int64_t)qr.x + row) * a.num_q_heads + h] =
                    sum > 0.0f ? (safe_max(m[hr]) + __log2f(sum)) * FAI_LN2 : -INFINITY;
#pragma unroll
            for (int hb = 0; hb < 2; hb++)
#pragma unroll
                for (int j = 2 * hr; j < 32; j += 4)
                    ptx_st_u32(og + (int64_t)row * a.o_token_stride + 64 * hb + 8 * (j >> 2) + 2 * quad,
                               P::pack(acc[hb][j] * inv, acc[hb][j + 1] * inv));
        }
    }
#else
    (void)p;
#endif
}

/* cuTensorMapEncodeTiled, looked up once through the runtime (fai links no driver library). */
typedef CUresult (*sm90_encode_fn)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                   const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

static sm90_encode_fn sm90_lookup_encode(void)
{
    void *fn = NULL;
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
        cudaGetLastError();
        return NULL;
    }
    return (sm90_encode_fn)fn;
}

/* The map of a [rows, heads, 128] view (element strides) read in boxes of 128 rows x 64
 * values, 128-byte swizzled; false when the TMA cannot describe it (alignment, strides). */
static bool sm90_map(sm90_encode_fn encode, CUtensorMap *map, const void *base, int dtype, int rows, int heads,
                     int64_t token_stride, int64_t head_stride)
{
    if (((uintptr_t)base & 15) || (token_stride & 7) || (head_stride & 7) || rows <= 0 || token_stride <= 0 ||
        head_stride <= 0 || token_stride >= ((int64_t)1 << 39) || head_stride >= ((int64_t)1 << 39))
        return false;
    const cuuint64_t dims[3] = {SM90_D, (cuuint64_t)heads, (cuuint64_t)rows};
    const cuuint64_t strides[2] = {(cuuint64_t)head_stride * 2, (cuuint64_t)token_stride * 2};
    const cuuint32_t box[3] = {64, 1, SM90_BN}, unit[3] = {1, 1, 1};
    return encode(map, dtype == FAI_DTYPE_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                  3, (void *)base, dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

extern "C" fai_status fai_prefill_sm90_launch(const fai_prefill_args *args, int mode, int paged, cudaStream_t stream,
                                              int *launched)
{
    *launched = 0;
#ifdef FAI_HAVE_SM90A
    static const sm90_encode_fn encode = sm90_lookup_encode();
    const char *off = getenv("FAI_PREFILL_SM90");
    if (!args->sm90 || !encode || (off && off[0] == '0') || mode != FAI_PREFILL_PLAIN || paged || args->alibi ||
        args->seq_lens || args->head_dim != SM90_D || args->mt != FAI_PREFILL_MT(SM90_D) ||
        FAI_PREFILL_BM(SM90_D) != SM90_BM || ((uintptr_t)args->o & 3) || (args->o_token_stride & 1) ||
        (args->o_head_stride & 1) || (args->dtype != FAI_DTYPE_FP16 && args->dtype != FAI_DTYPE_BF16))
        return FAI_SUCCESS;
    sm90_params p;
    memset(&p, 0, sizeof p);
    p.a = *args;
    if (!sm90_map(encode, &p.tq, args->q, args->dtype, args->total_q, args->num_q_heads, args->q_token_stride,
                  args->q_head_stride) ||
        !sm90_map(encode, &p.tk, args->k, args->dtype, args->total_k, args->num_kv_heads, args->k_token_stride,
                  args->k_head_stride) ||
        !sm90_map(encode, &p.tv, args->v, args->dtype, args->total_k, args->num_kv_heads, args->v_token_stride,
                  args->v_head_stride))
        return FAI_SUCCESS; /* the mma.sync kernel takes it */
    void (*kernel)(const sm90_params) = args->dtype == FAI_DTYPE_BF16 ? prefill_sm90_kernel<__nv_bfloat16>
                                                                      : prefill_sm90_kernel<__half>;
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SM90_SMEM);
    if (err != cudaSuccess)
        return fai_error(FAI_ERROR_EXECUTION_FAILED, "fai_prefill: cudaFuncSetAttribute (%d bytes of shared memory): %s",
                         (int)SM90_SMEM, cudaGetErrorString(err));
    const int64_t blocks = (int64_t)args->batch * args->num_q_heads * args->m_tiles;
    *launched = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3(SM90_THREADS);
    cfg.dynamicSmemBytes = SM90_SMEM;
    cfg.stream = stream;
    err = cudaLaunchKernelEx(&cfg, kernel, p);
    if (err == cudaSuccess)
        return FAI_SUCCESS;
    cudaGetLastError(); /* reported here, not left for the caller's next check */
    return fai_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, "fai_prefill: launching the Hopper prefill kernel failed: %s (%s)",
                     cudaGetErrorString(err), cudaGetErrorName(err));
#else
    (void)args;
    (void)mode;
    (void)paged;
    (void)stream;
    return FAI_SUCCESS;
#endif
}
