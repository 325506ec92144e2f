/* Decoding attention on tensor cores, for GQA/MQA groups.
 *
 * When a KV row serves g query heads, CUDA cores would do g dot products per row; here the
 * g heads are the rows of an m16n8k16 tile (padded to 16), so the arithmetic goes to the
 * tensor cores, which have it to spare, and the kernel stays memory-bound (see
 * shared/guides/decode-notes.md). The work split is the CUDA-core kernel's: a block per
 * (sequence, KV head, up to 16 heads) item and split; its warps take interleaved tiles of
 * 16 keys. Each warp streams its own tiles through a private ring of shared-memory stages
 * with cp.async (no block-wide barrier in the loop), then per tile:
 *   S = Q K^T      Q fragments held in registers, K by ldmatrix (rows = keys);
 *   online softmax in the exp2 domain on the accumulators (each row's max over a quad);
 *   O += P V       P re-packed from the S accumulators as the A operand, V by
 *                  ldmatrix.trans.
 * Rows of a tile are swizzled in 16-byte chunks (chunk ^ row % 8) so that ldmatrix reads
 * are free of bank conflicts. Keys past the split's end are zero-filled by cp.async and
 * masked to -inf, so they add exactly nothing.
 *
 * BF16: a BF16 cache (with BF16 queries) is its own instantiation (CT = FAI_KV_BF16): its tiles
 * have the FP16 tiles' layout (same copies, same ldmatrix), the MMAs are the BF16 ones and P
 * is packed to BF16. Quantized caches keep the FP16 path for either query dtype: a BF16
 * query is converted to FP16 fragments once per block, exact in FP16's normal range and
 * saturating to +-65504 beyond it (codes decode exactly to FP16, and FP16's 11-bit P keeps
 * more of the weights than BF16's 8). */
#include "../alibi.h"
#include "../check.h"
#include "../error.h"
#include "decode_common.cuh"
#include "kv_dequant.cuh"

#define KT FAI_DECODE_MMA_KEYS /* keys per tile */

/* Byte offset of 16-byte chunk `chunk` of row `row` in a tile of rows of `row_elems` FP16. */
__device__ __forceinline__ int swizzle(int row, int chunk, int row_elems)
{
    return row * row_elems * 2 + ((chunk ^ (row & 7)) << 4);
}

/* Issues the copies of one tile (keys key0 .. key0 + 15 of K and V) into a stage. */
/* Where row `row` of the tile at key0 lives. Paged tiles that span pages: `page` is the page
 * of row (lane & 15), which each lane looked up (row_page), and a row's page comes from its
 * lane by a shuffle (one page-table load per lane and tile, not one per copy). Every lane of
 * the warp must call it with the same row pattern (the copy loops do). */
template <bool PAGED>
__device__ __forceinline__ kv_pos locate_row(const fai_decode_args &a, int64_t page, int key0, int row, int kend)
{
    if (!PAGED)
        return kv_locate<false>(a, NULL, key0 + row);
    kv_pos p;
    p.page = __shfl_sync(0xffffffffu, (long long)page, row);
    p.row = (key0 + row < kend ? key0 + row : 0) & ((1 << a.page_shift) - 1);
    return p;
}

/* The page of row (lane & 15) of the tile at key0 (row 0's page past kend: never copied). */
__device__ __forceinline__ int64_t row_page(const fai_decode_args &a, const int32_t *pt, int key0, int kend, int lane)
{
    const int key = key0 + (lane & 15);
    return kv_locate<true>(a, pt, key < kend ? key : 0).page;
}

/* The first tiles of a 2-byte paged block whose rows may lie in different pages (pages under
 * 16 keys, or a window's unaligned start), head dims 64 and 128: groups of 8 lanes copy a
 * row's 128 bytes at a time (the lines a copy instruction spans, as the stepped copies), each
 * lane looking up its own rows' pages (r0, r0 + 4, ...), so that no copy waits on a shuffle.
 * Only before the loop, where a short call's latency is these copies' issue (batch 1 x 128
 * keys at page 1: 0.92-0.97x the time): in the loop the same copies ran GQA page 1 3 % slower
 * (session 20, branch rows3). Rows past kend copy zeros from key 0's row, a valid address. */
template <int D, int ROW>
__device__ __forceinline__ void load_first_tile_rows(char *stage, const char *kp, const char *vp,
                                                     const fai_decode_args &a, const int32_t *pt, int key0,
                                                     int kend, int lane)
{
    constexpr int CHUNKS = D / 8, LPR = 8, RSTEP = 32 / LPR, NR = KT / RSTEP, NC = CHUNKS / LPR;
    static_assert(CHUNKS % LPR == 0, "whole 128-byte pieces of a row");
    char *ks = stage, *vs = stage + KT * ROW * 2;
    const int r0 = lane / LPR, c0 = lane % LPR;
#pragma unroll
    for (int i = 0; i < NR; i++) {
        const int row = r0 + i * RSTEP;
        const bool valid = key0 + row < kend;
        const kv_pos p = kv_locate<true>(a, pt, valid ? key0 + row : 0);
        const char *kq = kp + (p.page * a.kv_seq_stride + p.row * a.kv_token_stride) * 2 + c0 * 16;
        const char *vq = vp + (p.page * a.kv_seq_stride + p.row * a.v_token_stride) * 2 + c0 * 16;
#pragma unroll
        for (int j = 0; j < NC; j++) {
            ptx_cp_async_16(ks + swizzle(row, c0 + j * LPR, ROW), kq + j * LPR * 16, valid);
            ptx_cp_async_16(vs + swizzle(row, c0 + j * LPR, ROW), vq + j * LPR * 16, valid);
        }
    }
}

/* ONE_PAGE: the tile lies in page `page` (run_page), looked up once. */
template <int D, int ROW, bool PAGED, bool ONE_PAGE>
__device__ __forceinline__ void load_tile(char *stage, const __half *kp, const __half *vp, const fai_decode_args &a,
                                          int64_t page, int key0, int kend, int lane)
{
    constexpr int CHUNKS = D / 8;
    char *ks = stage, *vs = stage + KT * ROW * 2;
    if constexpr (32 % CHUNKS == 0 && (!PAGED || ONE_PAGE)) {
        /* The tile's rows lie token_stride apart (a contiguous cache, or one page): each
         * lane's first row is worked out once and the next ones are a pointer step away (the
         * 64-bit multiplies per row were most of the copy loop's instructions). */
        constexpr int RSTEP = 32 / CHUNKS;
        static_assert(KT % RSTEP == 0, "a lane steps through whole tiles");
        const int r0 = lane / CHUNKS, chunk = lane % CHUNKS;
        const int64_t row0 = ONE_PAGE ? (int64_t)((key0 & ((1 << a.page_shift) - 1)) + r0) : (int64_t)key0 + r0;
        const int64_t base = ONE_PAGE ? page * a.kv_seq_stride : 0;
        const __half *kq = kp + base + row0 * a.kv_token_stride + chunk * 8;
        const __half *vq = vp + base + row0 * a.v_token_stride + chunk * 8;
        const int64_t kstep = RSTEP * a.kv_token_stride, vstep = RSTEP * a.v_token_stride;
#pragma unroll
        for (int j = 0; j < KT / RSTEP; j++) {
            const int row = r0 + j * RSTEP;
            const bool valid = key0 + row < kend; /* (a row past kend copies zeros from the base) */
            ptx_cp_async_16(ks + swizzle(row, chunk, ROW), valid ? kq : kp, valid);
            ptx_cp_async_16(vs + swizzle(row, chunk, ROW), valid ? vq : vp, valid);
            kq += kstep;
            vq += vstep;
        }
    } else {
#pragma unroll
        for (int i = lane; i < KT * CHUNKS; i += 32) {
            const int row = i / CHUNKS, chunk = i % CHUNKS, key = key0 + row;
            const bool valid = key < kend;
            const kv_pos p = ONE_PAGE ? kv_in_page(a, page, key0, row) : locate_row<PAGED>(a, page, key0, row, kend);
            const int64_t ko = p.page * a.kv_seq_stride + p.row * a.kv_token_stride + chunk * 8;
            const int64_t vo = p.page * a.kv_seq_stride + p.row * a.v_token_stride + chunk * 8;
            ptx_cp_async_16(ks + swizzle(row, chunk, ROW), kp + (valid ? ko : 0), valid);
            ptx_cp_async_16(vs + swizzle(row, chunk, ROW), vp + (valid ? vo : 0), valid);
        }
    }
}

/* One-byte caches: the copies of a tile's codes (16 rows of D bytes for K, then for V) and,
 * for int8, its 16 K and 16 V scales (zeros past kend, so masked keys add nothing). */
template <int D, int CT, bool PAGED, bool ONE_PAGE>
__device__ __forceinline__ void load_code_tile(char *stage, const char *kp, const char *vp, const float *ksp,
                                               const float *vsp, const fai_decode_args &a, int64_t page, int key0,
                                               int kend, int lane)
{
    constexpr int CHUNKS = D / 16; /* 16-byte chunks per row */
    char *ks = stage, *vs = stage + KT * D;
#pragma unroll
    for (int i = lane; i < KT * CHUNKS; i += 32) {
        const int row = i / CHUNKS, chunk = i % CHUNKS, key = key0 + row;
        const bool valid = key < kend;
        const kv_pos p = ONE_PAGE ? kv_in_page(a, page, key0, row) : locate_row<PAGED>(a, page, key0, row, kend);
        const int64_t ko = p.page * a.kv_seq_stride + p.row * a.kv_token_stride + chunk * 16;
        const int64_t vo = p.page * a.kv_seq_stride + p.row * a.v_token_stride + chunk * 16;
        ptx_cp_async_16(ks + row * D + chunk * 16, kp + (valid ? ko : 0), valid);
        ptx_cp_async_16(vs + row * D + chunk * 16, vp + (valid ? vo : 0), valid);
    }
    if (CT == FAI_KV_INT8 && a.scale_pairs) {
        /* FAI_SCALES_BF16X2: one word a key holds both scales, [16 words]. (Apart from the
         * FP32 branch below on purpose: one branch for both, the number of 16-value arrays
         * chosen at run time, made the paged int8 d96 kernels spill 12 bytes; session 31.) */
        float *sc = reinterpret_cast<float *>(stage + 2 * KT * D);
        const int64_t so0 = PAGED ? 0 : (int64_t)key0 * a.scale_token_stride;
        const bool packed = !PAGED && a.scale_token_stride == 1 && key0 + KT <= kend &&
                            (reinterpret_cast<uintptr_t>(ksp + so0) & 15) == 0;
        if (packed) {
            if (lane < 4)
                ptx_cp_async_16(sc + lane * 4, ksp + so0 + lane * 4, true);
        } else {
            /* (every lane looks its row up: locate_row shuffles across the whole warp) */
            const int r = lane & 15, key = key0 + r;
            const bool valid = key < kend;
            const kv_pos p = ONE_PAGE ? kv_in_page(a, page, key0, r) : locate_row<PAGED>(a, page, key0, r, kend);
            const int64_t so = p.page * a.scale_seq_stride + p.row * a.scale_token_stride;
            if (lane < KT)
                ptx_cp_async_4(sc + lane, ksp + (valid ? so : 0), valid);
        }
    } else if (CT == FAI_KV_INT8) {
        float *sc = reinterpret_cast<float *>(stage + 2 * KT * D); /* [K 16][V 16] */
        /* A whole tile of a contiguous cache whose 16 scales lie side by side (one float
         * apart, 16-byte aligned): four 16-byte copies each for K and V through L2 only, as the
         * codes come, instead of 32 four-byte copies through L1. ncu at MHA 128 x 8K (session
         * 13): DRAM reads 8884 MB against 9093 (codes and scales: 8861), kernel 2975 against
         * 3082 us. Not for paged caches: their instantiations were 3 % slower with the test. */
        const int64_t so0 = PAGED ? 0 : (int64_t)key0 * a.scale_token_stride;
        const uintptr_t at = reinterpret_cast<uintptr_t>(ksp + so0) | reinterpret_cast<uintptr_t>(vsp + so0);
        const bool packed = !PAGED && a.scale_token_stride == 1 && key0 + KT <= kend && (at & 15) == 0;
        if (packed) {
            if (lane < 8)
                ptx_cp_async_16(sc + lane * 4, (lane < 4 ? ksp : vsp) + so0 + (lane & 3) * 4, true);
        } else {
            const int r = lane & 15, key = key0 + r;
            const bool valid = key < kend;
            const kv_pos p = ONE_PAGE ? kv_in_page(a, page, key0, r) : locate_row<PAGED>(a, page, key0, r, kend);
            const int64_t so = p.page * a.scale_seq_stride + p.row * a.scale_token_stride;
            ptx_cp_async_4(sc + lane, (lane < 16 ? ksp : vsp) + (valid ? so : 0), valid);
        }
    }
}

/* Issues the copies of the tile at key0 into a stage: codes (one-byte caches) or FP16 / BF16
 * rows (the same layout).
 * page: run_page's answer for the tile (paged caches; -1: a page lookup per row). */
template <int D, int ROW, int CT, bool PAGED>
__device__ __forceinline__ void load_any_tile(char *stage, const char *kp, const char *vp, const float *ksp,
                                              const float *vsp, const fai_decode_args &a, const int32_t *pt,
                                              int64_t page, int key0, int kend, int lane)
{
    constexpr bool CODES = FAI_KV_BYTES(CT) == 1;
    if (PAGED && page >= 0) {
        if (CODES)
            load_code_tile<D, CT, PAGED, true>(stage, kp, vp, ksp, vsp, a, page, key0, kend, lane);
        else
            load_tile<D, ROW, PAGED, true>(stage, (const __half *)kp, (const __half *)vp, a, page, key0, kend, lane);
    } else {
        const int64_t row_pg = PAGED ? row_page(a, pt, key0, kend, lane) : -1;
        if (CODES)
            load_code_tile<D, CT, PAGED, false>(stage, kp, vp, ksp, vsp, a, row_pg, key0, kend, lane);
        else
            load_tile<D, ROW, PAGED, false>(stage, (const __half *)kp, (const __half *)vp, a, row_pg, key0, kend, lane);
    }
}

/* The page of the tile a warp issues at loop iteration `iter` (its copies go out STAGES - 1
 * iterations before it is used; tiles in whole pages), -1 past kend. */
template <int STAGES>
__device__ __forceinline__ int issue_page(const fai_decode_args &a, const int32_t *pt, int kbeg, int kend, int warp,
                                          int iter)
{
    const int64_t key0 = kbeg + (int64_t)(warp + (int64_t)(iter + STAGES - 1) * FAI_DECODE_MMA_WARPS) * KT;
    return key0 < kend ? (int)run_page(a, pt, (int)key0, KT, kend) : -1;
}

/* Converts a stage's codes into the warp's FP16 tile (the swizzled layout load_tile writes).
 * HOIST 0: each 8-code chunk loaded from shared memory, converted and stored in turn; 1: all
 * of the K (then the V) tile's loads first; 2: all loads of both first. ncu (session 12):
 * with 0 the first instruction after each load took 25-30 % of the stall samples. Hoisted
 * loads measured faster for int8 (MHA 128 x 8K: 7-9 % with 2, 6-7 % with 1) and for paged FP8
 * (10-13 %), and slower for contiguous FP8 MHA (1-2 %), which keeps 0 (session 12). Paged
 * int8 took 1 until session 29: with HND pages [heads, page, dim] 2 is 1-3 % faster (MHA 128 x
 * 8K 1.864-1.869x paged FP16 against 1.834-1.860x; GQA 1 x 128K level), with NHD pages level
 * (docs/perf/). */
template <int D, int ROW, int CT, int HOIST>
__device__ __forceinline__ void convert_code_tile(char *conv, const char *stage, int lane)
{
    constexpr int C8 = D / 8;        /* 8-code chunks per row */
    constexpr int N = KT * C8 / 32;  /* chunks per lane of a K or V tile */
    static_assert(KT * C8 % 32 == 0, "a tile's chunks are whole rounds of the warp");
    if constexpr (HOIST == 0) {
#pragma unroll
        for (int t = 0; t < 2; t++) /* K, then V */
#pragma unroll
            for (int i = lane; i < KT * C8; i += 32) {
                const int row = i / C8, c8 = i % C8;
                const uint2 c = *reinterpret_cast<const uint2 *>(stage + t * KT * D + row * D + c8 * 8);
                *reinterpret_cast<uint4 *>(conv + t * KT * ROW * 2 + swizzle(row, c8, ROW)) = codes8_to_half8<CT>(c);
            }
    } else {
        constexpr int G = HOIST == 2 ? 2 : 1; /* K and V tiles a group of loads */
#pragma unroll
        for (int t0 = 0; t0 < 2; t0 += G) {
            uint2 c[G][N];
#pragma unroll
            for (int t = 0; t < G; t++)
#pragma unroll
                for (int j = 0; j < N; j++) {
                    const int i = lane + 32 * j, row = i / C8, c8 = i % C8;
                    c[t][j] = *reinterpret_cast<const uint2 *>(stage + (t0 + t) * KT * D + row * D + c8 * 8);
                }
#pragma unroll
            for (int t = 0; t < G; t++)
#pragma unroll
                for (int j = 0; j < N; j++) {
                    const int i = lane + 32 * j, row = i / C8, c8 = i % C8;
                    *reinterpret_cast<uint4 *>(conv + (t0 + t) * KT * ROW * 2 + swizzle(row, c8, ROW)) =
                        codes8_to_half8<CT>(c[t][j]);
                }
        }
    }
}

/* The MMA and the packing of P by the cache's element type: BF16 for a BF16 cache, FP16 for
 * the others (one-byte caches are converted to FP16 tiles). */
template <int CT>
__device__ __forceinline__ void mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    if constexpr (CT == FAI_KV_BF16)
        ptx_mma_16816_bf16(d, a, b0, b1);
    else
        ptx_mma_16816(d, a, b0, b1);
}

/* int8's weights carry their key's 127 * v_scale = max|v| (64 * v_scale with BF16X2 scales;
 * below), which passes FP16's range only for a cache written from BF16 rows beyond it:
 * saturated there, as a BF16 q is, rather than an infinity that would make the output NaN (the
 * same F2FP instruction). */
template <int CT> __device__ __forceinline__ uint32_t pack_p(float lo, float hi)
{
    if constexpr (CT == FAI_KV_BF16)
        return ptx_cvt_bf16x2_f32(lo, hi);
    else if constexpr (CT == FAI_KV_INT8)
        return ptx_cvt_f16x2_f32_satfinite(lo, hi);
    else
        return pack_half2(lo, hi);
}

/* Two BF16 query values as FP16 (a quantized cache's FP16 path): exact in FP16's normal range,
 * rounded to nearest even below it, saturated to +-65504 above (not to infinity); NaN stays NaN. */
__device__ __forceinline__ uint32_t bf162_to_half2_sat(uint32_t w)
{
    float f[2];
    bf162_bits_to_float(w, f);
#pragma unroll
    for (int i = 0; i < 2; i++)
        if (!isnan(f[i]))
            f[i] = fminf(fmaxf(f[i], -65504.0f), 65504.0f);
    return pack_half2(f[0], f[1]);
}

/* Q of 2-byte caches: each warp copies the block's nrows query rows (row stride `stride`
 * bytes) into its front tile, swizzled as the K and V tiles are, with its first tile's
 * copies (one cp.async group: no register waits on them), and takes its A fragments from
 * there once that group has landed (load_q_fragments, in the loop's first iteration). As 32
 * register loads a thread before the first copies, Q delayed those at small batches (a
 * block's wait for its first bytes is most of such a call: batch 1 x 128 keys 1-2 % faster
 * this way); read after them, its latency showed at large ones (docs/design/decode.md). */
template <int D, int ROW>
__device__ __forceinline__ void copy_q_rows(char *qs, const char *q, int64_t stride, int nrows, int lane)
{
    constexpr int QC = D / 8; /* 16-byte chunks of a row */
#pragma unroll 1
    for (int i = lane; i < nrows * QC; i += 32) {
        const int r = i / QC, c = i % QC;
        ptx_cp_async_16(qs + swizzle(r, c, ROW), q + r * stride + c * 16, true);
    }
}

/* The A fragments of Q from the warp's copy of its rows (swizzled as the tiles are):
 * ldmatrix matrix lane / 8 covers rows ((lane / 8) % 2) * 8 .. + 7 and dims 16 kk + (lane / 16) * 8
 * .. + 7, so register j is fragment register j. Rows past the group's (never copied) are
 * zeros. */
template <int KSTEPS, int ROW>
__device__ __forceinline__ void load_q_fragments(uint32_t qa[KSTEPS][4], const char *qs, int lane, bool row0_valid,
                                                 bool row1_valid)
{
    const int qrow = (lane & 7) + ((lane >> 3) & 1) * 8, half = lane >> 4;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++) {
        uint32_t r[4];
        ptx_ldmatrix_x4(r, qs + swizzle(qrow, kk * 2 + half, ROW));
        qa[kk][0] = row0_valid ? r[0] : 0u;
        qa[kk][1] = row1_valid ? r[1] : 0u;
        qa[kk][2] = row0_valid ? r[2] : 0u;
        qa[kk][3] = row1_valid ? r[3] : 0u;
    }
}

/* One-byte caches: Q's A fragments straight from global memory, converted to FP16 from a BF16
 * q (a run-time branch, once per block). Their blocks stream long runs of tiles, and Q through
 * shared memory (copy_q_rows) measured 1-3 % slower at GQA 16 x 8K. */
template <int KSTEPS>
__device__ __forceinline__ void load_q_registers(uint32_t qa[KSTEPS][4], const uint16_t *q0, const uint16_t *q1,
                                                 int quad, bool row0_valid, bool row1_valid, bool q_bf16)
{
#pragma unroll
    for (int kk = 0; kk < KSTEPS; kk++) {
        const int c = kk * 16 + quad * 2;
        qa[kk][0] = row0_valid ? *reinterpret_cast<const uint32_t *>(q0 + c) : 0u;
        qa[kk][1] = row1_valid ? *reinterpret_cast<const uint32_t *>(q1 + c) : 0u;
        qa[kk][2] = row0_valid ? *reinterpret_cast<const uint32_t *>(q0 + c + 8) : 0u;
        qa[kk][3] = row1_valid ? *reinterpret_cast<const uint32_t *>(q1 + c + 8) : 0u;
    }
    if (q_bf16)
#pragma unroll
        for (int kk = 0; kk < KSTEPS; kk++)
#pragma unroll
            for (int r = 0; r < 4; r++)
                qa[kk][r] = bf162_to_half2_sat(qa[kk][r]);
}

/* CT: the cache's element type (FAI_KV_FP16 ... kv_dequant.cuh); PAGED: a paged cache. */
template <int D, int STAGES, int CT, bool PAGED>
__global__ void __launch_bounds__(FAI_DECODE_MMA_WARPS * 32)
    decode_mma_kernel(const __grid_constant__ fai_decode_args a)
{
    constexpr int ROW = FAI_DECODE_MMA_ROW(D);
    constexpr int KSTEPS = D / 16; /* k-steps of Q K^T */
    constexpr int NT = D / 8;      /* n-tiles of the output */
    constexpr bool CODES = FAI_KV_BYTES(CT) == 1;
    constexpr int EB = CODES ? 1 : 2;
    constexpr int TILE_BYTES = 2 * KT * ROW * 2; /* an FP16 K and V tile */
    constexpr int STAGE_BYTES = CODES ? FAI_DECODE_MMA_CODE_STAGE(D) : TILE_BYTES;
    /* each warp's front tile: its copy of Q (2-byte caches) or each converted tile (one-byte) */
    constexpr int FRONT_BYTES = CODES ? TILE_BYTES : (int)FAI_DECODE_MMA_Q_BYTES(D);
    constexpr int W = FAI_DECODE_MMA_WARPS;

    extern __shared__ uint4 smem_raw[];
    char *smem = reinterpret_cast<char *>(smem_raw);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int quad = lane & 3, row0 = lane >> 2, row1 = row0 + 8; /* this thread's tile rows */

    const decode_block blk = decode_block_of<!CODES, CODES>(a, KT); /* (split tails: one-byte caches) */
    if (blk.skip)
        return;
    const int b = blk.b, kvh = blk.kvh, hblk = blk.hblk, split = blk.split;
    const int len = blk.len, kbeg = blk.kbeg, kend = blk.kend;

    const int hb0 = hblk * FAI_DECODE_MMA_ROWS;                  /* first head of the block in its group */
    const int nrows = min(FAI_DECODE_MMA_ROWS, a.group - hb0);   /* valid rows */
    const int h_first = kvh * a.group + hb0;

    /* (Each kernel's pointers to its front tile and ring are set where its SASS was measured:
     * ptxas's schedule, and one-byte kernels' registers, move with the place.) */
    char *front, *ring;
    if constexpr (!CODES) {
        front = smem + warp * (FRONT_BYTES + STAGES * STAGE_BYTES);
        ring = front + FRONT_BYTES;
    }
    uint32_t qa[KSTEPS][4]; /* Q as A fragments (row = head, 16 dims per k-step); padding rows zeros */
    if constexpr (CODES) {
        const uint16_t *q = (const uint16_t *)a.q + blk.qrow * a.q_token_stride;
        load_q_registers<KSTEPS>(qa, q + (int64_t)(h_first + row0) * a.q_head_stride,
                                 q + (int64_t)(h_first + row1) * a.q_head_stride, quad, row0 < nrows, row1 < nrows,
                                 a.q_bf16 != 0);
    }
    float slope0 = 0.0f, slope1 = 0.0f; /* ALiBi slopes of the two rows, exp2 domain */
    if (a.alibi) {
        if (row0 < nrows)
            slope0 = FAI_LOG2E * (a.alibi_slopes ? a.alibi_slopes[h_first + row0]
                                                 : fai_alibi_standard_slope(h_first + row0, a.num_q_heads));
        if (row1 < nrows)
            slope1 = FAI_LOG2E * (a.alibi_slopes ? a.alibi_slopes[h_first + row1]
                                                 : fai_alibi_standard_slope(h_first + row1, a.num_q_heads));
    }

    const char *kcp = (const char *)a.k + (blk.k_off + kvh * a.kv_head_stride) * EB; /* this KV head's rows */
    const char *vcp = (const char *)a.v + (blk.v_off + kvh * a.v_head_stride) * EB;
    const int64_t s_off = (blk.pt ? 0 : (int64_t)blk.seq * a.scale_seq_stride) + (int64_t)kvh * a.scale_head_stride;
    const float *ksp = a.k_scale + s_off, *vsp = a.v_scale + s_off; /* int8 only */
    const float v_mul = a.scale_pairs ? 64.0f : 127.0f; /* int8: the V weights' factor (below) */
    if constexpr (CODES) {
        front = smem + warp * (FRONT_BYTES + STAGES * STAGE_BYTES);
        ring = front + FRONT_BYTES;
    }

    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* l: this thread's partial sums */
    float acc[NT][4];
#pragma unroll
    for (int n = 0; n < NT; n++)
        acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

    /* This warp's tiles: t = warp, warp + W, ...; the ring runs STAGES - 1 tiles ahead. */
    const int ntiles = (kend - kbeg + KT - 1) / KT;
    /* paged: the pages of the first tiles all at once. Then, when every tile lies in one page
     * (pages of 16 keys or more, tiles aligned to them), lane j holds the page of the tile
     * issued at iteration 32 q + j, for this batch of 32 iterations (pg_cur) and the next
     * (pg_next, read a batch ahead): no copy waits on a page-table read (looked up one tile
     * ahead, the reads took 38 % of the stall samples at GQA 1 x 32K, ncu, session 12).
     * Other paged caches look each row's page up as the tile's copies are issued. */
    int64_t pages[STAGES - 1];
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++)
        pages[s] = PAGED ? run_page(a, blk.pt, kbeg + (warp + s * W) * KT, KT, kend) : -1;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        const int t = warp + s * W;
        if (t < ntiles) {
            if constexpr (PAGED && !CODES && D % 64 == 0) {
                if (pages[s] < 0)
                    load_first_tile_rows<D, ROW>(ring + s * STAGE_BYTES, kcp, vcp, a, blk.pt, kbeg + t * KT, kend,
                                                 lane);
                else
                    load_any_tile<D, ROW, CT, PAGED>(ring + s * STAGE_BYTES, kcp, vcp, ksp, vsp, a, blk.pt,
                                                     pages[s], kbeg + t * KT, kend, lane);
            } else {
                load_any_tile<D, ROW, CT, PAGED>(ring + s * STAGE_BYTES, kcp, vcp, ksp, vsp, a, blk.pt, pages[s],
                                                 kbeg + t * KT, kend, lane);
            }
        }
        if (!CODES && s == 0) { /* Q: see copy_q_rows */
            const int64_t q_off = blk.qrow * a.q_token_stride + (int64_t)h_first * a.q_head_stride;
            copy_q_rows<D, ROW>(front, (const char *)a.q + q_off * 2, a.q_head_stride * 2, nrows, lane);
        }
        ptx_cp_async_commit();
    }
    /* (after the first copies, which do not need them: between the length's arrival and the
     * first copy, every instruction counts at small batches) */
    const bool in_page = PAGED && (1 << a.page_shift) >= KT && (kbeg & (KT - 1)) == 0;
    int pg_cur = -1, pg_next = -1;
    if (in_page) {
        pg_cur = issue_page<STAGES>(a, blk.pt, kbeg, kend, warp, lane);
        pg_next = issue_page<STAGES>(a, blk.pt, kbeg, kend, warp, 32 + lane);
    }
    for (int i = 0; warp + i * W < ntiles; i++) {
        {
            const int t = warp + (i + STAGES - 1) * W;
            int64_t page = -1;
            if (in_page) {
                if ((i & 31) == 0 && i > 0) {
                    pg_cur = pg_next; /* (read 32 iterations ago) */
                    pg_next = issue_page<STAGES>(a, blk.pt, kbeg, kend, warp, i + 32 + lane);
                }
                page = __shfl_sync(0xffffffffu, pg_cur, i & 31);
            }
            __syncwarp(); /* every lane is done reading the stage about to be refilled */
            if (t < ntiles) {
                char *stage = ring + ((i + STAGES - 1) % STAGES) * STAGE_BYTES;
                load_any_tile<D, ROW, CT, PAGED>(stage, kcp, vcp, ksp, vsp, a, blk.pt, page, kbeg + t * KT, kend, lane);
            }
            ptx_cp_async_commit();
        }
        ptx_cp_async_wait<STAGES - 1>();
        __syncwarp(); /* the tile's copies by every lane are visible to the warp */
        if (!CODES && i == 0) /* (Q came with the first tile) */
            load_q_fragments<KSTEPS, ROW>(qa, front, lane, row0 < nrows, row1 < nrows);
        const char *stage = ring + (i % STAGES) * STAGE_BYTES;
        const char *ks = stage;
        if constexpr (CODES) { /* codes to the FP16 tile (the warp finished reading the last one above) */
            convert_code_tile<D, ROW, CT, CT == FAI_KV_INT8 ? FAI_DECODE_MMA_INT8_HOIST : PAGED ? 1 : 0>(
                front, stage, lane);
            __syncwarp();
            ks = front;
        }
        const char *vs = ks + KT * ROW * 2;
        const int key0 = kbeg + (warp + i * W) * KT;

        /* S = Q K^T: two n-tiles of 8 keys. ldmatrix matrix mi = lane / 8 covers keys
         * (mi / 2) * 8 .. + 7 and dims 16 kk + (mi % 2) * 8 .. + 7. */
        float s[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        {
            const int mi = lane >> 3, krow = (mi >> 1) * 8 + (lane & 7);
#pragma unroll
            for (int kk = 0; kk < KSTEPS; kk++) {
                uint32_t kb[4];
                ptx_ldmatrix_x4(kb, ks + swizzle(krow, kk * 2 + (mi & 1), ROW));
                mma_16816<CT>(s[0], qa[kk], kb[0], kb[1]);
                mma_16816<CT>(s[1], qa[kk], kb[2], kb[3]);
            }
        }
        /* int8: the dot products were of codes; each key's scale multiplies its column. */
        float2 vsc[2] = {make_float2(1.0f, 1.0f), make_float2(1.0f, 1.0f)};
        if (CT == FAI_KV_INT8) {
            const float *sc = reinterpret_cast<const float *>(stage + 2 * KT * D);
#pragma unroll
            for (int n = 0; n < 2; n++) {
                float2 k2;
                if (a.scale_pairs) { /* [16 words]: BF16 K scale low, V high */
                    const uint2 w = *reinterpret_cast<const uint2 *>(sc + n * 8 + quad * 2);
                    k2 = make_float2(scale_pair_k(w.x), scale_pair_k(w.y));
                    vsc[n] = make_float2(scale_pair_v(w.x), scale_pair_v(w.y));
                } else {
                    k2 = *reinterpret_cast<const float2 *>(sc + n * 8 + quad * 2);
                    vsc[n] = *reinterpret_cast<const float2 *>(sc + KT + n * 8 + quad * 2);
                }
                s[n][0] *= k2.x;
                s[n][1] *= k2.y;
                s[n][2] *= k2.x;
                s[n][3] *= k2.y;
            }
        }
        /* Scale, bias, mask; elements [n][0..1] are row0, keys n * 8 + 2 quad + 0..1, and
         * [n][2..3] the same keys of row1. */
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                s[n][e] *= a.scale_log2;
        if (a.softcap2 > 0.0f) /* one uniform branch per tile, not one per logit */
#pragma unroll
            for (int n = 0; n < 2; n++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    s[n][e] = softcap_exp2(s[n][e], a.softcap2, a.inv_softcap2);
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int key = key0 + n * 8 + quad * 2 + e;
                const float dist = (float)(len - 1 - key);
                const bool valid = key < kend;
                s[n][e] = valid ? s[n][e] - slope0 * dist : -INFINITY;
                s[n][2 + e] = valid ? s[n][2 + e] - slope1 * dist : -INFINITY;
                mx0 = fmaxf(mx0, s[n][e]);
                mx1 = fmaxf(mx1, s[n][2 + e]);
            }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        const float alpha0 = ptx_exp2(m0 - safe_max(mn0)), alpha1 = ptx_exp2(m1 - safe_max(mn1));
        m0 = mn0;
        m1 = mn1;
#pragma unroll
        for (int n = 0; n < 2; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                s[n][e] = ptx_exp2(s[n][e] - safe_max(mn0));
                s[n][2 + e] = ptx_exp2(s[n][2 + e] - safe_max(mn1));
            }
        l0 = l0 * alpha0 + s[0][0] + s[0][1] + s[1][0] + s[1][1];
        l1 = l1 * alpha1 + s[0][2] + s[0][3] + s[1][2] + s[1][3];
#pragma unroll
        for (int n = 0; n < NT; n++) {
            acc[n][0] *= alpha0;
            acc[n][1] *= alpha0;
            acc[n][2] *= alpha1;
            acc[n][3] *= alpha1;
        }
        /* O += P V: P's accumulators are the A fragment of one 16-key k-step. ldmatrix.trans
         * matrix mi covers keys (mi % 2) * 8 .. + 7 and dims 16 j + (mi / 2) * 8 .. + 7. */
        /* int8: each key's V scale joins its weight here (after the sums l took the weights),
         * times v_mul so that the FP16 weight stays as far from FP16's subnormals as FP16 caches'
         * p does (p * scale alone lost precision there); the output is divided by v_mul at the
         * end. FP32 scales: 127, p * scale * 127 = p * max|v|, FP16-exact for the row's top key
         * (p = 1). BF16 scales: 64, a power of two, so that scale * 64 (8 significant bits) is
         * FP16-exact too; with 127 it was not, and the top key's weight rounded (test_decode's
         * max_err 1.4x the FP32 scales' over 40 seeds). */
        if (CT == FAI_KV_INT8)
#pragma unroll
            for (int n = 0; n < 2; n++) {
                vsc[n].x *= v_mul;
                vsc[n].y *= v_mul;
            }
        const uint32_t pa[4] = {pack_p<CT>(s[0][0] * vsc[0].x, s[0][1] * vsc[0].y),
                                pack_p<CT>(s[0][2] * vsc[0].x, s[0][3] * vsc[0].y),
                                pack_p<CT>(s[1][0] * vsc[1].x, s[1][1] * vsc[1].y),
                                pack_p<CT>(s[1][2] * vsc[1].x, s[1][3] * vsc[1].y)};
        {
            const int mi = lane >> 3, vrow = (mi & 1) * 8 + (lane & 7);
#pragma unroll
            for (int j = 0; j < NT / 2; j++) {
                uint32_t vb[4];
                ptx_ldmatrix_x4_trans(vb, vs + swizzle(vrow, j * 2 + (mi >> 1), ROW));
                mma_16816<CT>(acc[2 * j], pa, vb[0], vb[1]);
                mma_16816<CT>(acc[2 * j + 1], pa, vb[2], vb[3]);
            }
        }
    }
    ptx_cp_async_wait<0>();
    ptx_griddep_launch_dependents(); /* only the epilogue is left: let the merge kernel launch */
    /* int8: the weights carried a factor of v_mul (above). (Its inverse chosen here as a
     * constant: hoisted beside v_mul it changed one kernel's SASS, session 31.) */
    if (CT == FAI_KV_INT8)
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[n][e] *= a.scale_pairs ? 1.0f / 64.0f : 1.0f / 127.0f;

    /* Row sums over the quad, then the warps' states into shared memory (the ring is free
     * once every warp is past its loop) for the common epilogue. */
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    __syncthreads();
    constexpr int SLOTS = FAI_DECODE_MMA_ROWS;
    float *sm_acc = reinterpret_cast<float *>(smem);
    float *sm_m = sm_acc + W * SLOTS * D;
    float *sm_l = sm_m + W * SLOTS;
    /* (only the group's rows: the combine reads no other; MHA has 1 of 16) */
    const bool keep0 = row0 < nrows, keep1 = row1 < nrows;
#pragma unroll
    for (int n = 0; n < NT; n++) {
        const int col = n * 8 + quad * 2;
        if (keep0)
            *reinterpret_cast<float2 *>(sm_acc + (warp * SLOTS + row0) * D + col) = make_float2(acc[n][0], acc[n][1]);
        if (keep1)
            *reinterpret_cast<float2 *>(sm_acc + (warp * SLOTS + row1) * D + col) = make_float2(acc[n][2], acc[n][3]);
    }
    if (quad == 0) {
        sm_m[warp * SLOTS + row0] = m0;
        sm_m[warp * SLOTS + row1] = m1;
        sm_l[warp * SLOTS + row0] = l0;
        sm_l[warp * SLOTS + row1] = l1;
    }
    __syncthreads();
    combine_warps_and_store<D, CODES>(a, reinterpret_cast<const float *>(smem), W, SLOTS, nrows, b, blk.qrow,
                                      h_first, split);
}

/* The instantiation for a cache dtype, head dim and ring depth: FP16 and BF16 caches have rings
 * of 2, 3, 4 or 6 stages, one-byte caches of 3 or 6. */
template <int D, bool PAGED>
static decode_kernel_fn pick_mma(int kv_dtype, int st)
{
#define FAI_MMA_CODES(ct) (st == 3 ? decode_mma_kernel<D, 3, ct, PAGED> : st == 6 ? decode_mma_kernel<D, 6, ct, PAGED> : NULL)
#define FAI_MMA_HALVES(ct)                                                                      \
    (st == 2 ? decode_mma_kernel<D, 2, ct, PAGED> : st == 4 ? decode_mma_kernel<D, 4, ct, PAGED> \
                                                           : FAI_MMA_CODES(ct))
    switch (kv_dtype) {
    case FAI_DTYPE_FP16: return FAI_MMA_HALVES(FAI_KV_FP16);
    case FAI_DTYPE_BF16: return FAI_MMA_HALVES(FAI_KV_BF16);
    case FAI_DTYPE_INT8: return FAI_MMA_CODES(FAI_KV_INT8);
    case FAI_DTYPE_FP8_E4M3: return FAI_MMA_CODES(FAI_KV_E4M3);
    case FAI_DTYPE_FP8_E5M2: return FAI_MMA_CODES(FAI_KV_E5M2);
    }
#undef FAI_MMA_HALVES
#undef FAI_MMA_CODES
    return NULL;
}

template <bool PAGED>
static decode_kernel_fn pick_mma_dim(int head_dim, int kv_dtype, int st)
{
    switch (head_dim) {
    case 64: return pick_mma<64, PAGED>(kv_dtype, st);
    case 96: return pick_mma<96, PAGED>(kv_dtype, st);
    case 128: return pick_mma<128, PAGED>(kv_dtype, st);
    }
    return NULL;
}

fai_status fai_decode_launch_mma(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                                 cudaStream_t stream)
{
    const int st = plan->stages;
    decode_kernel_fn kernel = args->page_table ? pick_mma_dim<true>(plan->head_dim, args->kv_dtype, st)
                                               : pick_mma_dim<false>(plan->head_dim, args->kv_dtype, st);
    if (!kernel || plan->warps_per_block != FAI_DECODE_MMA_WARPS ||
        (fai_dtype_bytes((fai_dtype)args->kv_dtype) == 2 && plan->split_from > 0))
        return fai_error(FAI_ERROR_INTERNAL,
                         "%s: no tensor-core kernel for cache dtype %d, head_dim %d, %d stages, %d warps, split tail %d",
                         fn, (int)args->kv_dtype, (int)plan->head_dim, st, (int)plan->warps_per_block,
                         (int)plan->split_from);
    /* More than 48 KB of dynamic shared memory must be asked for; the call is cheap, host-only
     * and allowed during stream capture. */
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)plan->smem_bytes);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED, err, "%s: cudaFuncSetAttribute (%zu bytes of shared memory)",
                              fn, plan->smem_bytes);
    return fai_decode_launch_kernel(fn, "tensor-core decode kernel", kernel, fai_decode_grid(args, plan),
                                    dim3(FAI_DECODE_MMA_WARPS * 32),
                                    plan->smem_bytes, stream, 0, args);
}
