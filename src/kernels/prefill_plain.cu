/* Prefill attention on tensor cores (FlashAttention-2 tiling), for packed varlen batches:
 * the plain kernel, FP16 without the variants (no window, soft-cap or sinks; causal or not).
 * It is the kernel of commit 16ab3fc, kept apart from prefill.cu's (which has BF16 and the
 * variants as run-time parameters) because those cost the plain case 6-17 % on the H100
 * (docs/perf/README.md); prefill.cu's launcher sends plain FP16 calls here. Only change: the
 * causal flag reads as win_right == 0 (fai_prefill_args' mask bounds). A copy on purpose
 * and a debt: once measured, prefill.cu should take the variants as a compile-time flag and
 * this file go away.
 *
 * A block owns BM query rows of one (sequence, query head): its 4 warps hold 16 * MT rows
 * each. Q is copied to shared memory once; K and V tiles of BN keys stream through one
 * buffer each with cp.async, so the copy of V_j overlaps S = Q K_j^T and the copy of
 * K_(j-1) overlaps O += P V_j. Per tile, in registers:
 *   S = Q K^T        A fragments of Q and B fragments of K by ldmatrix, mma.sync m16n8k16;
 *   online softmax   scores scaled into the exp2 domain, ALiBi bias and masks added, each
 *                    row's max over the quad that holds it;
 *   O += P V         P re-packed from S's accumulators as the A operand (no shared memory),
 *                    V by ldmatrix.trans.
 * Key tiles run from the last to the first, so the tiles that need masking (the causal
 * diagonal, the ragged end) come first; tiles wholly above the causal diagonal are never
 * visited. Rows are swizzled in 16-byte chunks (chunk ^ row % 8): ldmatrix and the copies
 * are free of bank conflicts. The output goes through the warp's own Q rows in shared
 * memory so that it leaves in 16-byte stores.
 *
 * Work order: block L takes query tile m_tiles - 1 - L % m_tiles of (sequence, head)
 * L / m_tiles, so the heaviest causal tiles start first while the blocks of one head run
 * side by side and share its K/V in L2. */
#include "../alibi.h"
#include "../error.h"
#include "../prefill_args.h"
#include "decode_common.cuh"

namespace { /* internal linkage: prefill.cu has kernels and helpers of the same names */

/* Byte offset of 16-byte chunk `chunk` of row `row` in a tile of rows of ROW FP16. */
template <int ROW>
__device__ __forceinline__ int tile_offset(int row, int chunk)
{
    return row * ROW * 2 + ((chunk ^ (row & 7)) << 4);
}

/* Copies rows row0 .. row0 + ROWS - 1 of a [rows, D] view into a swizzled tile; rows at or
 * past `nrows` are zero-filled (finite values: masked keys must not turn into NaN). Thread
 * t copies chunk t % (ROW / 8) of rows t / (ROW / 8) + k * RSTEP, so its addresses advance
 * by constants (head dim 96 leaves the padding chunks' threads idle). */
template <int D, int ROW, int ROWS, int THREADS>
__device__ __forceinline__ void load_rows(char *tile, const __half *src, int64_t stride, int row0, int nrows)
{
    constexpr int CPR = ROW / 8, RSTEP = THREADS / CPR;
    static_assert(THREADS % CPR == 0 && ROWS % RSTEP == 0, "tile rows must split evenly over the threads");
    const int c = threadIdx.x % CPR, r = threadIdx.x / CPR;
    if (c >= D / 8)
        return;
    const __half *p = src + (int64_t)(row0 + r) * stride + c * 8;
    char *dst = tile + tile_offset<ROW>(r, c);
#pragma unroll
    for (int k = 0; k < ROWS / RSTEP; k++) {
        const bool valid = row0 + r + k * RSTEP < nrows;
        /* rows r + k RSTEP share r's swizzle when RSTEP is a multiple of 8 */
        char *d = RSTEP % 8 == 0 ? dst + k * RSTEP * ROW * 2 : tile + tile_offset<ROW>(r + k * RSTEP, c);
        ptx_cp_async_16(d, valid ? p : src, valid);
        p += RSTEP * stride;
    }
}

template <int D, int MT>
__global__ void __launch_bounds__(FAI_PREFILL_WARPS * 32, FAI_PREFILL_MINB(D))
    prefill_kernel(const __grid_constant__ fai_prefill_args a)
{
    constexpr int W = FAI_PREFILL_WARPS, THREADS = W * 32;
    constexpr int BM = FAI_PREFILL_BM_OF(MT), BN = FAI_PREFILL_BN(D);
    constexpr int ROW = FAI_PREFILL_ROW(D);
    constexpr int KS = D / 16;  /* k-steps of Q K^T */
    constexpr int NS = BN / 8;  /* n-tiles of S */
    constexpr int NT = D / 8;   /* n-tiles of O */
    constexpr int CH = D / 8;   /* 16-byte chunks per row */
    static_assert(BN % 16 == 0 && BN >= 16 && MT >= 1, "K/V tiles are whole k-steps of 16 keys");

    constexpr int STAGES = FAI_PREFILL_STAGES(D);
    static_assert(STAGES >= 2, "the ring needs a stage in use and one in flight");
    constexpr int STAGE_BYTES = 2 * BN * ROW * 2; /* a K tile, then a V tile */

    extern __shared__ uint4 smem_raw[];
    char *sq = reinterpret_cast<char *>(smem_raw);
    char *stages = sq + BM * ROW * 2;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, quad = lane & 3;
    const int T = a.m_tiles;
    const int bh = blockIdx.x / T;
    const int h = bh % a.num_q_heads, b = a.batch_offset + bh / a.num_q_heads, kvh = h / a.group;
    const int2 qr = cu_range(a.cu_q, b, a.total_q), kr = cu_range(a.cu_k, b, a.total_k);
    const int seq_q = qr.y - qr.x, seq_k = kr.y - kr.x;
    if (a.skip_decode_rows && seq_q == 1)
        return; /* a decode row: the decode kernel of the same call writes it */
    const int off = seq_k - seq_q; /* row i's diagonal key is i + off */

    float slope = 0.0f; /* ALiBi slope in the exp2 domain */
    if (a.alibi)
        slope = FAI_LOG2E * (a.alibi_slopes ? a.alibi_slopes[h] : fai_alibi_standard_slope(h, a.num_q_heads));
    const __half *qg = (const __half *)a.q + (int64_t)qr.x * a.q_token_stride + (int64_t)h * a.q_head_stride;
    const __half *kg = (const __half *)a.k + (int64_t)kr.x * a.k_token_stride + (int64_t)kvh * a.k_head_stride;
    const __half *vg = (const __half *)a.v + (int64_t)kr.x * a.v_token_stride + (int64_t)kvh * a.v_head_stride;
    __half *og = (__half *)a.o + (int64_t)qr.x * a.o_token_stride + (int64_t)h * a.o_head_stride;

    const int wrow = warp * 16 * MT; /* this warp's first row in the tile */

    /* ldmatrix addresses. Lane l reads row l % 8 of matrix mi = l / 8: for Q (A operand)
     * rows (mi % 2) * 8 and dims + (mi / 2) * 8; for K (B of Q K^T) keys (mi / 2) * 8 and
     * dims + (mi % 2) * 8, so kb[0..1] and kb[2..3] are two n-tiles; for V (B of P V,
     * transposed) keys (mi % 2) * 8 and dims + (mi / 2) * 8. With chunk 2 kk + x of a
     * row r, the swizzled offset is (r * ROW * 2 | ((x ^ r % 8) << 4)) ^ (kk << 5): one
     * per-thread base per operand, and an XOR per k-step (no per-step address registers). */
    const int mi = lane >> 3, r8 = lane & 7;
    const int q_frag = (wrow + (mi & 1) * 8 + r8) * ROW * 2 + ((((mi >> 1) ^ r8)) << 4);
    const int k_frag = ((mi >> 1) * 8 + r8) * ROW * 2 + (((mi & 1) ^ r8) << 4);
    const int v_frag = ((mi & 1) * 8 + r8) * ROW * 2 + ((((mi >> 1) ^ r8)) << 4);

    for (int t = T - 1 - (int)(blockIdx.x % T); (int64_t)t * BM < seq_q; t += T) {
        const int m0 = t * BM;
        /* Keys any row of the tile sees: the causal limit of its last valid row. */
        int nkeys = seq_k;
        if ((a.win_right == 0))
            nkeys = max(0, min(seq_k, min(seq_q, m0 + BM) + off));
        const int ntiles = (nkeys + BN - 1) / BN;

        /* Key tiles are visited from the last (j = ntiles - 1, i = 0) to the first; tile i
         * sits in stage i % STAGES, and STAGES - 1 tiles are in flight ahead of the one in
         * use. Q travels in the first tile's copy group. */
        __syncthreads(); /* the previous tile's output staging is read out */
        load_rows<D, ROW, BM, THREADS>(sq, qg, a.q_token_stride, m0, seq_q);
#pragma unroll
        for (int i = 0; i < STAGES - 1; i++) {
            if (i < ntiles) {
                char *st = stages + i * STAGE_BYTES;
                load_rows<D, ROW, BN, THREADS>(st, kg, a.k_token_stride, (ntiles - 1 - i) * BN, seq_k);
                load_rows<D, ROW, BN, THREADS>(st + BN * ROW * 2, vg, a.v_token_stride, (ntiles - 1 - i) * BN, seq_k);
            }
            ptx_cp_async_commit();
        }

        float acc[MT][NT][4];
        float m[MT][2], l[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int n = 0; n < NT; n++)
                acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.0f;
            m[mt][0] = m[mt][1] = -INFINITY;
            l[mt][0] = l[mt][1] = 0.0f;
        }

#if FAI_PREFILL_WARP_SKIP
        /* Tiles before i_first lie wholly above this warp's causal diagonal: it skips them. */
        const int i_first = (a.win_right == 0) ? max(0, ntiles - 1 - (m0 + wrow + 16 * MT - 1 + off) / BN) : 0;
#endif
        for (int i = 0; i < ntiles; i++) {
            const int n0 = (ntiles - 1 - i) * BN;
            ptx_cp_async_wait<STAGES - 2>();
            __syncthreads(); /* tile i is in; every warp is done with tile i - 1's stage */
            {
                const int ip = i + STAGES - 1;
                if (ip < ntiles) {
                    char *st = stages + (ip % STAGES) * STAGE_BYTES;
                    load_rows<D, ROW, BN, THREADS>(st, kg, a.k_token_stride, (ntiles - 1 - ip) * BN, seq_k);
                    load_rows<D, ROW, BN, THREADS>(st + BN * ROW * 2, vg, a.v_token_stride, (ntiles - 1 - ip) * BN,
                                                   seq_k);
                }
                ptx_cp_async_commit();
            }
            const char *sk = stages + (i % STAGES) * STAGE_BYTES;
            const char *sv = sk + BN * ROW * 2;

            /* A warp whose rows all lie above this tile's causal diagonal has nothing to add
             * (the diagonal tiles of short sequences are mostly such work). */
#if FAI_PREFILL_WARP_SKIP
            if (i < i_first)
                continue;
#endif

            /* S = Q K^T over k-steps of 16 dims. */
            float s[MT][NS][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int n = 0; n < NS; n++)
                    s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.0f;
            {
#pragma unroll
                for (int kk = 0; kk < KS; kk++) {
                    uint32_t qa[MT][4];
#pragma unroll
                    for (int mt = 0; mt < MT; mt++)
                        ptx_ldmatrix_x4(qa[mt], sq + ((q_frag + mt * 16 * ROW * 2) ^ (kk << 5)));
#pragma unroll
                    for (int np = 0; np < NS / 2; np++) {
                        uint32_t kb[4];
                        ptx_ldmatrix_x4(kb, sk + ((k_frag + np * 16 * ROW * 2) ^ (kk << 5)));
#pragma unroll
                        for (int mt = 0; mt < MT; mt++) {
                            ptx_mma_16816(s[mt][2 * np], qa[mt], kb[0], kb[1]);
                            ptx_mma_16816(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
                        }
                    }
                }
            }

            /* Scale, bias, mask. s[mt][n][e] is row r0 (e < 2) or r0 + 8 (e >= 2) and key
             * n0 + 8 n + 2 quad + e % 2. Only the diagonal and ragged tiles need the mask (and
             * of the diagonal, only the warps whose first row does not see the whole tile). */
            const bool need_mask = n0 + BN > seq_k || ((a.win_right == 0) && n0 + BN - 1 > m0 + wrow + off);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                const int r0 = m0 + wrow + mt * 16 + (lane >> 2);
                /* The masked or biased path scales first (sc = 1 after); the plain path folds
                 * the scale into the exponent's FFMA (the max commutes with a positive scale). */
                float sc = a.scale_log2;
                if (need_mask || a.alibi) {
                    sc = 1.0f;
#pragma unroll
                    for (int n = 0; n < NS; n++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int row = r0 + (e >> 1) * 8, key = n0 + n * 8 + quad * 2 + (e & 1);
                            float x = s[mt][n][e] * a.scale_log2 - slope * fabsf((float)(row + off - key));
                            if (key >= seq_k || ((a.win_right == 0) && key > row + off))
                                x = -INFINITY;
                            s[mt][n][e] = x;
                        }
                }
                /* Online softmax per row (two rows per thread per m-tile). */
                float alpha[2];
                bool grew = false;
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int n = 0; n < NS; n++)
                        mx = fmaxf(mx, fmaxf(s[mt][n][2 * hr], s[mt][n][2 * hr + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    const float mnew = fmaxf(m[mt][hr], mx * sc);
                    const float base = safe_max(mnew);
                    alpha[hr] = ptx_exp2(m[mt][hr] - base);
                    grew |= mnew != m[mt][hr];
                    m[mt][hr] = mnew;
                    float sum = 0.0f;
#pragma unroll
                    for (int n = 0; n < NS; n++) {
                        s[mt][n][2 * hr] = ptx_exp2(fmaf(s[mt][n][2 * hr], sc, -base));
                        s[mt][n][2 * hr + 1] = ptx_exp2(fmaf(s[mt][n][2 * hr + 1], sc, -base));
                        sum += s[mt][n][2 * hr] + s[mt][n][2 * hr + 1];
                    }
                    l[mt][hr] = l[mt][hr] * alpha[hr] + sum;
                }
                /* Rescale the accumulators only when some row of the warp has a new max (past
                 * the first tiles, most tiles leave every max where it was). */
                if (__any_sync(0xffffffffu, grew)) {
#pragma unroll
                    for (int n = 0; n < NT; n++) {
                        acc[mt][n][0] *= alpha[0];
                        acc[mt][n][1] *= alpha[0];
                        acc[mt][n][2] *= alpha[1];
                        acc[mt][n][3] *= alpha[1];
                    }
                }
            }

            /* P as A fragments of the k-steps of P V (FP16), so the FP32 scores die here. */
            uint32_t pa[MT][BN / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++) {
                    pa[mt][kk][0] = pack_half2(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                    pa[mt][kk][1] = pack_half2(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                    pa[mt][kk][2] = pack_half2(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                    pa[mt][kk][3] = pack_half2(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                }

            /* O += P V: k-steps of 16 keys, pairs of output n-tiles (16 dims) per ldmatrix. */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
                for (int jd = 0; jd < D / 16; jd++) {
                    uint32_t vb[4];
                    ptx_ldmatrix_x4_trans(vb, sv + ((v_frag + kk * 16 * ROW * 2) ^ (jd << 5)));
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        ptx_mma_16816(acc[mt][2 * jd], pa[mt][kk], vb[0], vb[1]);
                        ptx_mma_16816(acc[mt][2 * jd + 1], pa[mt][kk], vb[2], vb[3]);
                    }
                }
            }
        }

        /* Epilogue: normalize, stage the warp's rows in its own Q rows, store 16 bytes at a
         * time; LSE from the quad leader. Every copy has landed and every warp is past its
         * last ldmatrix of Q before any row is overwritten. */
        ptx_cp_async_wait<0>();
        __syncthreads();
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                float sum = l[mt][hr];
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
                const int lrow = wrow + mt * 16 + (lane >> 2) + hr * 8;
#pragma unroll
                for (int n = 0; n < NT; n++)
                    *reinterpret_cast<uint32_t *>(sq + tile_offset<ROW>(lrow, n) + quad * 4) =
                        pack_half2(acc[mt][n][2 * hr] * inv, acc[mt][n][2 * hr + 1] * inv);
                const int row = m0 + lrow;
                if (a.lse && quad == 0 && row < seq_q)
                    a.lse[((int64_t)qr.x + row) * a.num_q_heads + h] =
                        sum > 0.0f ? (safe_max(m[mt][hr]) + __log2f(sum)) * FAI_LN2 : -INFINITY;
            }
        __syncwarp();
        for (int i = lane; i < 16 * MT * CH; i += 32) {
            const int lrow = wrow + i / CH, c = i % CH, row = m0 + lrow;
            if (row < seq_q)
                ptx_st_v4(og + (int64_t)row * a.o_token_stride + c * 8,
                          *reinterpret_cast<const uint4 *>(sq + tile_offset<ROW>(lrow, c)));
        }
    }
}

typedef void (*prefill_kernel_fn)(const fai_prefill_args);

} /* namespace */

extern "C" fai_status fai_prefill_launch_plain(const fai_prefill_args *args, cudaStream_t stream)
{
    prefill_kernel_fn kernel = NULL;
    size_t smem = 0;
#define FAI_PREFILL_CASE(d)                                                                 \
    case d:                                                                                 \
        if (args->mt == FAI_PREFILL_MT(d))                                                  \
            kernel = prefill_kernel<d, FAI_PREFILL_MT(d)>;                                  \
        else if (FAI_PREFILL_SMALL_GRID && args->mt == 1)                                   \
            kernel = prefill_kernel<d, FAI_PREFILL_SMALL_GRID ? 1 : FAI_PREFILL_MT(d)>;        \
        smem = FAI_PREFILL_SMEM(d, args->mt);                                               \
        break;
    switch (args->head_dim) {
        FAI_PREFILL_CASE(64)
        FAI_PREFILL_CASE(96)
        FAI_PREFILL_CASE(128)
        FAI_PREFILL_CASE(256)
    }
#undef FAI_PREFILL_CASE
    if (!kernel)
        return fai_error(FAI_ERROR_INTERNAL, "fai_prefill: no prefill kernel for head_dim %d, %d m-tiles per warp",
                         (int)args->head_dim, (int)args->mt);
    /* Over 48 KB of dynamic shared memory must be asked for (host-only, capture-safe). */
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess)
        return fai_error(FAI_ERROR_EXECUTION_FAILED, "fai_prefill: cudaFuncSetAttribute (%zu bytes of shared memory): %s",
                         smem, cudaGetErrorString(err));
    const int64_t blocks = (int64_t)args->batch * args->num_q_heads * args->m_tiles;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3(FAI_PREFILL_WARPS * 32);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    err = cudaLaunchKernelEx(&cfg, kernel, *args);
    if (err == cudaSuccess)
        return FAI_SUCCESS;
    cudaGetLastError(); /* reported here, not left for the caller's next check */
    return fai_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, "fai_prefill: launching the prefill kernel failed: %s (%s)",
                     cudaGetErrorString(err), cudaGetErrorName(err));
}
