/* Prefill attention on tensor cores (FlashAttention-2 tiling), for packed varlen batches and
 * for queries over a KV cache: the kernel template. prefill_fp16.cu and prefill_bf16.cu
 * instantiate it, prefill.cu launches it.
 *
 * A block owns BM query rows of one (sequence, query head): its 4 warps hold 16 * MT rows
 * each. Q is copied to shared memory once; K and V tiles of BN keys stream through a ring of
 * STAGES stages with cp.async, STAGES - 1 tiles in flight ahead of the one in use (on grids
 * of several waves, all STAGES tiles go out together at the start). Per tile,
 * in registers:
 *   S = Q K^T        A fragments of Q and B fragments of K by ldmatrix, mma.sync m16n8k16;
 *   online softmax   scores scaled into the exp2 domain, ALiBi bias and masks added, each
 *                    row's max over the quad that holds it;
 *   O += P V         P re-packed from S's accumulators as the A operand (no shared memory),
 *                    V by ldmatrix.trans.
 * Key tiles run from the last to the first, so the tiles that need masking (the causal
 * diagonal, the ragged end) come first; tiles wholly above the causal diagonal or wholly
 * outside the sliding window are never visited (the loop's bounds, not the mask, leave them
 * out). Rows are swizzled in 16-byte chunks (chunk ^ row % 8): ldmatrix and the copies are
 * free of bank conflicts. The output goes through the warp's own Q rows in shared memory so
 * that it leaves in 16-byte stores.
 *
 * Template parameters, each a measured cost when it was a run-time branch:
 *   Elem      FP16 or BF16 (the MMA and the packing of P and O differ);
 *   MODE      FAI_PREFILL_PLAIN (causal or no mask), FAI_PREFILL_WINDOW (sliding window and
 *             sinks as run-time values: the loop's bounds, the mask of the edge tiles, the
 *             sinks in the epilogue) or FAI_PREFILL_SOFTCAP (those and the soft-cap: its
 *             run-time branch in the tile loop cost every variant 8-14 % on the H100, as did
 *             the window's mask bounds held in shared memory: they are recomputed where used);
 *             or FAI_PREFILL_PLAIN_WAVE, plain attention on one wave of blocks with short
 *             sequences, whose keys and values are copied one group at a time (below: as a
 *             run-time branch it cost the other grids 0.5-1 %);
 *   PAGED     K/V rows from a paged cache through the page table; a contiguous cache is a
 *             run-time case of the unpaged kernel (only the base pointer and length differ).
 * Paged tiles: a tile's page numbers come into a shared-memory ring by cp.async in the copy
 * group of the tile STAGES tiles before it; one iteration before its copies are issued, each
 * of its rows' offsets is worked out once (page_row_offsets) rather than by each of the
 * row's copies, which read it from shared memory.
 *
 * Work order: block L takes query tile m_tiles - 1 - L % m_tiles of (sequence, head)
 * L / m_tiles, so the heaviest causal tiles start first while the blocks of one head run
 * side by side and share its K/V in L2. */
#ifndef FAI_PREFILL_KERNEL_CUH
#define FAI_PREFILL_KERNEL_CUH

#include <cuda_bf16.h>
#include <limits.h>

#include "../alibi.h"
#include "../prefill_args.h"
#include "decode_common.cuh"

typedef void (*prefill_kernel_fn)(const fai_prefill_args);

/* The kernel of one element type for head dim d, mt m16 tiles per warp, with or without the
 * variants and the page table (NULL when there is none: mt not built for d). Defined in
 * prefill_fp16.cu and prefill_bf16.cu, each of which instantiates its type's kernels. */
prefill_kernel_fn fai_prefill_pick_fp16(int d, int mt, int mode, bool paged);
prefill_kernel_fn fai_prefill_pick_bf16(int d, int mt, int mode, bool paged);

/* The kernels' modes: plain attention (causal or no mask, ALiBi or not); with the sliding
 * window and sinks; with those and the soft-cap; plain attention with the one-wave copy
 * schedule (built for head dim 128, two m16 tiles a warp, unpaged: prefill_pick gives the
 * plain kernel for the others). */
enum { FAI_PREFILL_PLAIN = 0, FAI_PREFILL_WINDOW = 1, FAI_PREFILL_SOFTCAP = 2, FAI_PREFILL_PLAIN_WAVE = 3 };

/* What differs between FP16 and BF16: the MMA and the packing of two floats. */
template <typename T>
struct prefill_elem;

template <>
struct prefill_elem<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) { return pack_half2(lo, hi); }
    static __device__ __forceinline__ void mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
    {
        ptx_mma_16816(d, a, b0, b1);
    }
};

template <>
struct prefill_elem<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi) { return ptx_cvt_bf16x2_f32(lo, hi); }
    static __device__ __forceinline__ void mma(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
    {
        ptx_mma_16816_bf16(d, a, b0, b1);
    }
};

/* The soft-cap's tanh: 1 - 2 / (1 + e^(2x)), which gives 1 for e^(2x) = inf and -1 for 0, or
 * tanh.approx.f32 (FAI_PREFILL_FAST_TANH in prefill_args.h). softcap_tanh_log2 takes
 * y = 2 log2(e) x, so that a caller folds that factor into its own scaling of the score
 * (one multiply a score fewer: the Hopper kernel's soft-cap is bound by its instruction
 * count on the softmax's path, docs/perf session 11). */
__device__ __forceinline__ float softcap_tanh_log2(float y)
{
#if FAI_PREFILL_FAST_TANH
    return ptx_tanh(y * (0.5f / FAI_LOG2E));
#else
    return fmaf(-2.0f, ptx_rcp(1.0f + ptx_exp2(y)), 1.0f);
#endif
}

__device__ __forceinline__ float softcap_tanh(float x)
{
#if FAI_PREFILL_FAST_TANH
    return ptx_tanh(x);
#else
    return softcap_tanh_log2(x * (2.0f * FAI_LOG2E));
#endif
}

/* Byte offset of 16-byte chunk `chunk` of row `row` in a tile of rows of ROW 2-byte elements. */
template <int ROW>
__device__ __forceinline__ int tile_offset(int row, int chunk)
{
    return row * ROW * 2 + ((chunk ^ (row & 7)) << 4);
}

/* Copies rows row0 .. row0 + ROWS - 1 of a [rows, D] view into a swizzled tile; rows at or
 * past `nrows` are zero-filled (finite values: masked keys must not turn into NaN). Thread
 * t copies chunk t % (ROW / 8) of rows t / (ROW / 8) + k * RSTEP, so its addresses advance
 * by constants (head dim 96 leaves the padding chunks' threads idle). */
template <int D, int ROW, int ROWS, int THREADS, typename T>
__device__ __forceinline__ void load_rows(char *tile, const T *src, int64_t stride, int row0, int nrows)
{
    constexpr int CPR = ROW / 8, RSTEP = THREADS / CPR;
    static_assert(THREADS % CPR == 0 && ROWS % RSTEP == 0, "tile rows must split evenly over the threads");
    const int c = threadIdx.x % CPR, r = threadIdx.x / CPR;
    if (c >= D / 8)
        return;
    const T *p = src + (int64_t)(row0 + r) * stride + c * 8;
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

/* Starts the copy of the page numbers of the key tile that begins at key n0 (a multiple of
 * BN) into `slot`: entry j holds the page of keys n0 + j * page_size on (one entry when a
 * page holds the whole tile). Pages past the sequence's nrows keys are zero-filled, never
 * read: the table row may end there. */
template <int BN>
__device__ __forceinline__ void load_pages(int32_t *slot, const fai_prefill_args &a, int b, int n0, int nrows)
{
    const int j = threadIdx.x;
    if (j <= (BN - 1) >> a.page_shift) {
        const int key = n0 + (j << a.page_shift);
        const bool valid = key < nrows;
        const int32_t *src = a.page_table + (int64_t)b * a.page_table_stride + (key >> a.page_shift);
        ptx_cp_async_4(slot + j, valid ? src : a.page_table, valid);
    }
}

/* The element offsets in the pool (less the head's and the chunk's) of the K rows (offs[0])
 * and V rows (offs[1]) of the tile that begins at key n0, from its page numbers (`pages`,
 * load_pages) clamped into the pool as in decode's kv_locate: thread j < BN the K row j,
 * thread BN + j the V row j, so each row is worked out once, not by each of its copies. Rows
 * at or past `nrows` get 0 (their copies read nothing). */
template <int BN>
__device__ __forceinline__ void page_row_offsets(int64_t (*offs)[BN], const int32_t *pages, const fai_prefill_args &a,
                                                 int n0, int nrows)
{
    const int j = threadIdx.x % BN, kv = threadIdx.x / BN, key = n0 + j;
    if (kv < 2) {
        const int64_t pg = min(max(pages[j >> a.page_shift], 0), a.num_pages - 1);
        const int64_t row = key & ((1 << a.page_shift) - 1);
        offs[kv][j] = key < nrows ? pg * a.kv_seq_stride + row * (kv ? a.v_token_stride : a.k_token_stride) : 0;
    }
}

/* load_rows for the K or V tile (`pool`: the cache's k or v) that begins at key row0 of a
 * paged cache, row j at element offs[j] (page_row_offsets) of the KV head's pool. */
template <int D, int ROW, int ROWS, int THREADS, typename T>
__device__ __forceinline__ void load_rows_paged(char *tile, const void *pool, int64_t head_stride, int kvh,
                                                const int64_t *offs, int row0, int nrows)
{
    constexpr int CPR = ROW / 8, RSTEP = THREADS / CPR;
    static_assert(THREADS % CPR == 0 && ROWS % RSTEP == 0, "tile rows must split evenly over the threads");
    const int c = threadIdx.x % CPR, r = threadIdx.x / CPR;
    if (c >= D / 8)
        return;
    const T *src = (const T *)pool + (int64_t)kvh * head_stride + c * 8;
    /* Every offset is read before the first copy: a copy is an asm statement with a memory
     * clobber, which no shared-memory load moves across, so reading each offset just before
     * its copy would wait out one load latency per copy. */
    int64_t off[ROWS / RSTEP];
#pragma unroll
    for (int k = 0; k < ROWS / RSTEP; k++)
        off[k] = offs[r + k * RSTEP];
#pragma unroll
    for (int k = 0; k < ROWS / RSTEP; k++) {
        const int j = r + k * RSTEP;
        ptx_cp_async_16(tile + tile_offset<ROW>(j, c), src + off[k], row0 + j < nrows);
    }
}

/* Sequence b's keys: [lo, hi) of packed K/V (cu_k), or from a cache, 0 .. seq_lens[b]
 * clamped into [0, capacity]. */
__device__ __forceinline__ int2 key_range(const fai_prefill_args &a, int b)
{
    if (a.seq_lens)
        return make_int2(0, max(0, min(a.seq_lens[b], a.capacity)));
    return cu_range(a.cu_k, b, a.total_k);
}

/* The mask relative to the row: row i sees key j when dl <= j - i <= dr (causal: dr = off;
 * the window: dl = off - left, dr = off + right; off = seq_k - seq_q), as (dl, dr). Clamped to
 * [-seq_q, seq_k], past which nothing changes (j - i lies in (-seq_q, seq_k)), so sums with
 * them cannot overflow. A few instructions, recomputed where used: at head dim 128 no
 * register is left to hold them across the tile loop. */
__device__ __forceinline__ int2 mask_bounds(const fai_prefill_args &a, int seq_q, int seq_k)
{
    const int64_t off = (int64_t)seq_k - seq_q;
    int dl = -seq_q, dr = seq_k;
    if (a.win_left >= 0)
        dl = (int)max((int64_t)-seq_q, min((int64_t)seq_k, off - a.win_left));
    if (a.win_right >= 0)
        dr = (int)max((int64_t)-seq_q, min((int64_t)seq_k, off + a.win_right));
    return make_int2(dl, dr);
}

/* The key tiles a query tile (rows m0 .. m0 + BM - 1) visits, as the first keys of the first
 * and the last (x, y: multiples of BN; none when x > y). Keys any row of the tile sees: up to
 * the right bound of its last valid row (rl), from the left bound of its first; with a window,
 * about (window + BM) / BN tiles whatever seq_k is. Both prefill kernels walk y down to x. */
template <bool VARIANTS, int BM, int BN>
__device__ __forceinline__ int2 prefill_key_tiles(const fai_prefill_args &a, int m0, int seq_q, int seq_k)
{
    int nkeys = seq_k, n_first = 0;
    if (VARIANTS) {
        const int2 mb = mask_bounds(a, seq_q, seq_k);
        const int rl = min(seq_q, m0 + BM) - 1;
        nkeys = mb.y >= seq_k - 1 - rl ? seq_k : max(0, rl + 1 + mb.y);
        const int64_t first_key = max((int64_t)0, (int64_t)m0 + mb.x);
        n_first = first_key >= nkeys ? INT_MAX : (int)(first_key / BN) * BN;
    } else if (a.win_right == 0) {
        nkeys = max(0, min(seq_k, min(seq_q, m0 + BM) + seq_k - seq_q));
    }
    return make_int2(n_first, ((nkeys + BN - 1) / BN - 1) * BN);
}

/* One row's step of the online softmax: mx, this thread's max of the row's scores in the
 * tile, becomes the row's (over the quad holding it), times sc into the exp2 domain; the
 * running max m moves up to it. Returns the exp2 base of the tile's weights; alpha is the
 * factor of the weights so far, grew set when m moved. */
__device__ __forceinline__ float online_max_step(float &m, float mx, float sc, float &alpha, bool &grew)
{
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float mnew = fmaxf(m, mx * sc);
    const float base = safe_max(mnew);
    alpha = ptx_exp2(m - base);
    grew |= mnew != m;
    m = mnew;
    return base;
}

/* A row's sink (exp2 domain) joins its softmax sum: the row's max mx moves up to the sink if
 * that is larger, so that neither term overflows. Returns the share of the accumulators left
 * (0 for a row that saw no key); sum and mx are updated. */
__device__ __forceinline__ float sink_fold(float sink, float &mx, float &sum)
{
    const float mnew = fmaxf(mx, sink), base = safe_max(mnew);
    const float keep = ptx_exp2(mx - base);
    sum = sum * keep + ptx_exp2(sink - base);
    mx = mnew;
    return keep;
}

template <typename Elem, int D, int MT, int MODE, bool PAGED>
__global__ void __launch_bounds__(FAI_PREFILL_WARPS * 32, FAI_PREFILL_MINB(D))
    prefill_kernel(const __grid_constant__ fai_prefill_args a)
{
    using E = prefill_elem<Elem>;
    constexpr bool VARIANTS = MODE == FAI_PREFILL_WINDOW || MODE == FAI_PREFILL_SOFTCAP;
    constexpr bool SOFTCAP = MODE == FAI_PREFILL_SOFTCAP, WAVE = MODE == FAI_PREFILL_PLAIN_WAVE;
    constexpr int W = FAI_PREFILL_WARPS, THREADS = W * 32;
    constexpr int BM = FAI_PREFILL_BM_OF(MT), BN = FAI_PREFILL_BN(D);
    constexpr int ROW = FAI_PREFILL_ROW(D);
    constexpr int KS = D / 16;  /* k-steps of Q K^T */
    constexpr int NS = BN / 8;  /* n-tiles of S */
    constexpr int NT = D / 8;   /* n-tiles of O */
    constexpr int CH = D / 8;   /* 16-byte chunks per row */
    static_assert(BN % 16 == 0 && BN >= 16 && BN <= THREADS && MT >= 1, "K/V tiles are whole k-steps of 16 keys");

    constexpr int STAGES = FAI_PREFILL_STAGES(D);
    static_assert(STAGES >= 2, "the ring needs a stage in use and one in flight");
    constexpr int STAGE_BYTES = 2 * BN * ROW * 2; /* a K tile, then a V tile */
    /* Paged: a tile's page numbers come by cp.async in the copy group of the tile STAGES
     * tiles before it; once they are in, its rows' offsets are worked out (page_row_offsets),
     * one tile before its copies are issued. The tile at key n keeps both in slot
     * (n / BN) % PRING; 2 STAGES slots let a slot be rewritten only after a barrier has passed
     * its last reader. */
    constexpr int PRING = 2 * STAGES, PBN = PAGED ? BN : 1;
    /* Every ring stage's tile copied before the loop (a.fill_ring: grids past one wave of
     * blocks; not over a paged cache, whose sm_80 build then spilled). */
    const bool fill = !PAGED && a.fill_ring;
    static_assert((STAGES & (STAGES - 1)) == 0, "stage and page-slot indices are taken modulo powers of two");
    __shared__ int32_t page_ring[PAGED ? PRING : 1][PBN];
    __shared__ int64_t offs_ring[PAGED ? PRING : 1][2][PBN];

    extern __shared__ uint4 smem_raw[];
    char *sq = reinterpret_cast<char *>(smem_raw);
    char *stages = sq + BM * ROW * 2;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5; /* (lane: the prologue's; see the epilogue) */
    const int T = a.m_tiles;
    const int bh = blockIdx.x / T;
    const int h = bh % a.num_q_heads, b = a.batch_offset + bh / a.num_q_heads, kvh = h / a.group;
    const int2 qr = cu_range(a.cu_q, b, a.total_q), kr = key_range(a, b);
    const int seq_q = qr.y - qr.x, seq_k = kr.y - kr.x;
    if (a.skip_decode_rows && seq_q == 1)
        return; /* a decode row: the decode kernel of the same call writes it */
    const int off = seq_k - seq_q; /* row i's diagonal key is i + off */
    /* What the paged loads and the epilogue need of the block wait in shared memory, read
     * where they are used (registers are short at head dim 128). */
    __shared__ int blk[PAGED ? 3 : 2];
    if (threadIdx.x == 0) {
        blk[0] = b; /* a paged cache's page-table row and KV head, read where tiles are loaded */
        blk[1] = kvh;
        if (PAGED)
            blk[PAGED ? 2 : 0] = h; /* the head (the index keeps the unpaged array's bounds) */
    }
    /* The paged head-dim-128 two-tile kernel is at 255 registers. Its epilogue reads the head
     * from blk, and each query tile works Q's address out again (from qr.x and h, not the
     * 64-bit qg held across the key loop): so ptxas fits every mode without a spill, but
     * sm_80's plain mode, which fits as it was and spills this way (CUDA 13, nvcc -Xptxas -v;
     * ctest's spill_check fails on any kernel's spill). */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    constexpr bool HEAD_IN_SMEM = PAGED && D == 128 && MT == 2 && MODE != FAI_PREFILL_PLAIN;
#else
    constexpr bool HEAD_IN_SMEM = PAGED && D == 128 && MT == 2;
#endif

    float slope = 0.0f; /* ALiBi slope in the exp2 domain */
    if (a.alibi)
        slope = FAI_LOG2E * (a.alibi_slopes ? a.alibi_slopes[h] : fai_alibi_standard_slope(h, a.num_q_heads));
    const Elem *qg = (const Elem *)a.q + (int64_t)qr.x * a.q_token_stride + (int64_t)h * a.q_head_stride;
    /* The sequence's key 0: row kr.x of packed K/V, or slot b of a contiguous cache; a paged
     * cache adds each row's page in load_rows_paged. */
    const int64_t kv_first = !a.seq_lens || PAGED ? 0 : (int64_t)(b - a.kv_slot_offset) * a.kv_seq_stride;
    const Elem *kg = (const Elem *)a.k + kv_first + (int64_t)kr.x * a.k_token_stride + (int64_t)kvh * a.k_head_stride;
    const Elem *vg = (const Elem *)a.v + kv_first + (int64_t)kr.x * a.v_token_stride + (int64_t)kvh * a.v_head_stride;

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
        __syncthreads(); /* blk is written; the previous tile's output staging is read out */
        const int2 kt = prefill_key_tiles<VARIANTS, BM, BN>(a, m0, seq_q, seq_k);
        const int n_first = kt.x, n_last = kt.y;

        /* The copies of the tile at key n (stage (n / BN) % STAGES), and (paged) the page
         * numbers of the tile STAGES tiles after it. */
#define FAI_PREFILL_LOAD_TILE(n)                                                                          \
    do {                                                                                                  \
        const int n_ = (n);                                                                               \
        char *st_ = stages + ((unsigned)n_ / BN % STAGES) * STAGE_BYTES;                                  \
        if (PAGED) {                                                                                      \
            const unsigned slot_ = (unsigned)n_ / BN % PRING;                                             \
            load_rows_paged<D, ROW, BN, THREADS, Elem>(st_, a.k, a.k_head_stride, blk[1], offs_ring[slot_][0], \
                                                       n_, seq_k);                                        \
            load_rows_paged<D, ROW, BN, THREADS, Elem>(st_ + BN * ROW * 2, a.v, a.v_head_stride, blk[1],   \
                                                       offs_ring[slot_][1], n_, seq_k);                   \
            const int nn_ = n_ - STAGES * BN;                                                             \
            if (nn_ >= n_first)                                                                           \
                load_pages<BN>(page_ring[(unsigned)nn_ / BN % PRING], a, blk[0], nn_, seq_k);             \
        } else {                                                                                          \
            load_rows<D, ROW, BN, THREADS>(st_, kg, a.k_token_stride, n_, seq_k);                         \
            load_rows<D, ROW, BN, THREADS>(st_ + BN * ROW * 2, vg, a.v_token_stride, n_, seq_k);          \
        }                                                                                                 \
    } while (0)

        if (PAGED) { /* the first STAGES tiles' page numbers and row offsets, before any copy;
                      * Q's copies go with the page numbers (waited for together, and Q's
                      * address then holds no register through this setup: it spilled) */
            const Elem *qt = HEAD_IN_SMEM ? (const Elem *)a.q + (int64_t)qr.x * a.q_token_stride +
                                                (int64_t)h * a.q_head_stride
                                          : qg; /* (= qg: see HEAD_IN_SMEM) */
            load_rows<D, ROW, BM, THREADS>(sq, qt, a.q_token_stride, m0, seq_q);
#pragma unroll
            for (int i = 0; i < STAGES; i++) {
                const int n = n_last - i * BN;
                if (n >= n_first)
                    load_pages<BN>(page_ring[(unsigned)n / BN % PRING], a, blk[0], n, seq_k);
            }
            ptx_cp_async_commit();
            ptx_cp_async_wait<0>();
            __syncthreads();
#pragma unroll
            for (int i = 0; i < STAGES; i++) {
                const int n = n_last - i * BN;
                if (n >= n_first)
                    page_row_offsets(offs_ring[(unsigned)n / BN % PRING], page_ring[(unsigned)n / BN % PRING], a,
                                         n, seq_k);
            }
            __syncthreads();
        }
        /* Unpaged, Q travels in the first tile's copy group (paged: with the page numbers,
         * above); STAGES - 1 tiles go out before the loop,
         * or with `fill` all STAGES (every stage is free yet): a sequence of STAGES tiles or
         * fewer then waits for its keys once, and the loop's refills start at its second
         * tile. Measured on H100 (session 14): 1.5-6 % off grids of several waves (prefill
         * batch 32-128 x 128 keys, the hybrid rows), 5 % slower on one wave of blocks (batch 8
         * x 128: the first tile's wait then takes in the second's bytes too). */
        /* WAVE (one wave of blocks): each tile's keys and its values are copy groups of their
         * own, one in flight at a time (Q and the first keys, then the values while Q K^T
         * runs, then the next keys while P V runs), so that the DRAM, which every block of
         * the wave shares, brings each block what it needs next first. Two stages serve:
         * tile n's copies go out once tile n + BN's products have passed a barrier. Measured
         * on H100 (session 17, graph replays): prefill batch 8 x 128 keys 0.945x the time
         * (22.1-22.4 against 23.5-23.6 us); the whole ring copied up front, keys and values
         * in groups apart, was 1.03x. */
        if (!PAGED)
            load_rows<D, ROW, BM, THREADS>(sq, qg, a.q_token_stride, m0, seq_q);
        if (WAVE) {
            if (n_last >= n_first)
                load_rows<D, ROW, BN, THREADS>(stages + ((unsigned)n_last / BN % STAGES) * STAGE_BYTES, kg,
                                               a.k_token_stride, n_last, seq_k);
            ptx_cp_async_commit();
        } else {
#pragma unroll
            for (int i = 0; i < STAGES; i++) {
                const int n = n_last - i * BN;
                if (i < STAGES - 1 || fill) {
                    if (n >= n_first)
                        FAI_PREFILL_LOAD_TILE(n);
                    ptx_cp_async_commit();
                }
            }
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

        for (int n0 = n_last; n0 >= n_first; n0 -= BN) {
            /* Tile n0's copy group is the n-th from the loop's start (n = (n_last - n0) / BN):
             * with `fill` the first pass refills nothing and commits no group. */
            const bool filled = fill && n0 == n_last;
            if (WAVE) /* (tile n0's keys are the one group in flight) */
                ptx_cp_async_wait<0>();
            else if (filled)
                ptx_cp_async_wait<STAGES - 1>();
            else
                ptx_cp_async_wait<STAGES - 2>();
            __syncthreads(); /* tile n0 is in; every warp is done with tile n0 + BN's stage */
            if (WAVE) {
                load_rows<D, ROW, BN, THREADS>(stages + ((unsigned)n0 / BN % STAGES) * STAGE_BYTES + BN * ROW * 2, vg,
                                               a.v_token_stride, n0, seq_k);
                ptx_cp_async_commit();
            } else if (!filled) {
                if (n0 - (STAGES - 1) * BN >= n_first)
                    FAI_PREFILL_LOAD_TILE(n0 - (STAGES - 1) * BN);
                ptx_cp_async_commit();
            }
            /* Paged: the page numbers of the tile STAGES tiles on came with tile n0's copies;
             * its row offsets are ready for the next iteration's copies. */
            if (PAGED && n0 - STAGES * BN >= n_first) {
                const unsigned slot = (unsigned)(n0 - STAGES * BN) / BN % PRING;
                page_row_offsets(offs_ring[slot], page_ring[slot], a, n0 - STAGES * BN, seq_k);
            }
            const char *sk = stages + ((unsigned)n0 / BN % STAGES) * STAGE_BYTES;
            const char *sv = sk + BN * ROW * 2;

            /* A warp whose rows all lie left of this tile's right mask bound (above the causal
             * diagonal) has nothing to add (the diagonal tiles of short sequences are mostly
             * such work). */
#if FAI_PREFILL_WARP_SKIP
            if (!WAVE && /* (the one-wave kernel's copies and barriers below need every warp) */
                n0 - (m0 + wrow + 16 * MT - 1) > (VARIANTS ? mask_bounds(a, seq_q, seq_k).y : a.win_right == 0 ? off : seq_k))
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
                            E::mma(s[mt][2 * np], qa[mt], kb[0], kb[1]);
                            E::mma(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
                        }
                    }
                }
            }

            /* Scale, bias, mask. s[mt][n][e] is row r0 (e < 2) or r0 + 8 (e >= 2) and key
             * n0 + 8 n + 2 quad + e % 2. Only the tiles on the causal diagonal or the window's
             * edges and the ragged end need the mask, and of those only the warps whose rows do
             * not all see the whole tile: the first row sees its last key, the last its first. */
            const int wr0 = m0 + wrow; /* the warp's first row */
            const int2 mb = VARIANTS ? mask_bounds(a, seq_q, seq_k) : make_int2(0, 0);
            const int tdl = mb.x, tdr = mb.y;
            const bool need_mask = n0 + BN > seq_k ||
                                   (VARIANTS ? n0 + BN - 1 - wr0 > tdr || n0 - (wr0 + 16 * MT - 1) < tdl
                                             : a.win_right == 0 && n0 + BN - 1 > wr0 + off);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                const int lq = ptx_laneid(); /* (read here: see the epilogue) */
                const int r0 = m0 + wrow + mt * 16 + (lq >> 2);
                /* Soft-cap: s = tanh(q.k * scale / cap); scale_log2 is then cap * log2(e). (Here
                 * per m-tile rather than over all of S at once: that spilled at head dim 128.) */
                if (SOFTCAP) {
#pragma unroll
                    for (int n = 0; n < NS; n++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            s[mt][n][e] = softcap_tanh(s[mt][n][e] * a.softcap_scale);
                }
                /* The masked or biased path scales first (sc = 1 after); the plain path folds
                 * the scale into the exponent's FFMA (the max commutes with a positive scale). */
                float sc = a.scale_log2;
                if (need_mask || a.alibi) {
                    sc = 1.0f;
#pragma unroll
                    for (int n = 0; n < NS; n++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int row = r0 + (e >> 1) * 8, key = n0 + n * 8 + (lq & 3) * 2 + (e & 1);
                            float x = s[mt][n][e] * a.scale_log2 - slope * fabsf((float)(row + off - key));
                            const bool out = VARIANTS ? key >= seq_k || key - row > tdr || key - row < tdl
                                                      : key >= seq_k || (a.win_right == 0 && key > row + off);
                            if (out)
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
                    const float base = online_max_step(m[mt][hr], mx, sc, alpha[hr], grew);
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

            /* P as A fragments of the k-steps of P V (FP16 or BF16, as V), so the FP32 scores
             * die here. */
            uint32_t pa[MT][BN / 16][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kk = 0; kk < BN / 16; kk++) {
                    pa[mt][kk][0] = E::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                    pa[mt][kk][1] = E::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                    pa[mt][kk][2] = E::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                    pa[mt][kk][3] = E::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                }

            if (WAVE) { /* tile n0's values, copied by every thread; then the next tile's keys */
                ptx_cp_async_wait<0>();
                __syncthreads();
                if (n0 - BN >= n_first)
                    load_rows<D, ROW, BN, THREADS>(stages + ((unsigned)(n0 - BN) / BN % STAGES) * STAGE_BYTES, kg,
                                                   a.k_token_stride, n0 - BN, seq_k);
                ptx_cp_async_commit();
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
                        E::mma(acc[mt][2 * jd], pa[mt][kk], vb[0], vb[1]);
                        E::mma(acc[mt][2 * jd + 1], pa[mt][kk], vb[2], vb[3]);
                    }
                }
            }
        }
#undef FAI_PREFILL_LOAD_TILE

        /* Epilogue: normalize, stage the warp's rows in its own Q rows, store 16 bytes at a
         * time; LSE from the quad leader. Every copy has landed and every warp is past its
         * last ldmatrix of Q before any row is overwritten. */
        ptx_cp_async_wait<0>();
        __syncthreads();
        /* The sink (exp2 domain) joins each row's sum; the row's max moves up to it if it is
         * larger, so that neither term overflows. Read here so that it holds no register in
         * the loop above; -inf without sinks. */
        const float *sinks = VARIANTS ? a.sinks : NULL;
        const int hd = HEAD_IN_SMEM ? blk[PAGED ? 2 : 0] : h; /* the head */
        const float sink = sinks ? sinks[hd] * FAI_LOG2E : -INFINITY;
        const int q0 = qr.x, rows = seq_q;
        /* The lane from %laneid (volatile) here and in the masks above, not one register
         * held across the key loop: at head dim 128 with two m16 tiles the loop peaks at 255
         * registers, and that one made ptxas spill the Q tile's address in some builds. */
        const int lane = ptx_laneid(), quad = lane & 3;
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                float sum = l[mt][hr];
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                float mx = m[mt][hr];
                const float keep = sinks ? sink_fold(sink, mx, sum) : 1.0f; /* the accumulators' share */
                const float inv = sum > 0.0f ? keep / sum : 0.0f;
                const int lrow = wrow + mt * 16 + (lane >> 2) + hr * 8;
#pragma unroll
                for (int n = 0; n < NT; n++)
                    *reinterpret_cast<uint32_t *>(sq + tile_offset<ROW>(lrow, n) + quad * 4) =
                        E::pack(acc[mt][n][2 * hr] * inv, acc[mt][n][2 * hr + 1] * inv);
                const int row = m0 + lrow;
                if (a.lse && quad == 0 && row < rows)
                    a.lse[((int64_t)q0 + row) * a.num_q_heads + hd] =
                        sum > 0.0f ? (safe_max(mx) + __log2f(sum)) * FAI_LN2 : -INFINITY;
            }
        __syncwarp();
        Elem *og = (Elem *)a.o + (int64_t)q0 * a.o_token_stride + (int64_t)hd * a.o_head_stride;
        for (int i = lane; i < 16 * MT * CH; i += 32) {
            const int lrow = wrow + i / CH, c = i % CH, row = m0 + lrow;
            if (row < rows)
                ptx_st_v4(og + (int64_t)row * a.o_token_stride + c * 8,
                          *reinterpret_cast<const uint4 *>(sq + tile_offset<ROW>(lrow, c)));
        }
        if (WAVE) /* a block has one query tile (fai_prefill_args.one_wave), so no register need
                     outlive it (held across tiles, some spilled) */
            break;
    }
}

/* The kernel of head dim D for mt m16 tiles per warp (the default, or 1 for small grids). */
template <typename T, int D, int MODE, bool PAGED>
static prefill_kernel_fn prefill_pick_mt(int mt)
{
    if (mt == FAI_PREFILL_MT(D))
        return prefill_kernel<T, D, FAI_PREFILL_MT(D), MODE, PAGED>;
    if (FAI_PREFILL_SMALL_GRID && mt == 1)
        return prefill_kernel<T, D, FAI_PREFILL_SMALL_GRID ? 1 : FAI_PREFILL_MT(D), MODE, PAGED>;
    return NULL;
}

template <typename T, int D, int MODE>
static prefill_kernel_fn prefill_pick_paged(int mt, bool paged)
{
    return paged ? prefill_pick_mt<T, D, MODE, true>(mt) : prefill_pick_mt<T, D, MODE, false>(mt);
}

template <typename T, int D>
static prefill_kernel_fn prefill_pick_dim(int mt, int mode, bool paged)
{
    /* The one-wave mode's single instance (head dim 128, MT 2, unpaged); elsewhere it is the
     * plain kernel. (D != 128 names the plain instance here, never the one-wave one.) */
    constexpr int WAVE = D == 128 && FAI_PREFILL_MT(D) == 2 ? FAI_PREFILL_PLAIN_WAVE : FAI_PREFILL_PLAIN;
    switch (mode) {
    case FAI_PREFILL_PLAIN_WAVE:
        if (WAVE == FAI_PREFILL_PLAIN_WAVE && mt == FAI_PREFILL_MT(D) && !paged)
            return prefill_kernel<T, D, FAI_PREFILL_MT(D), WAVE, false>;
        return prefill_pick_paged<T, D, FAI_PREFILL_PLAIN>(mt, paged);
    case FAI_PREFILL_PLAIN: return prefill_pick_paged<T, D, FAI_PREFILL_PLAIN>(mt, paged);
    case FAI_PREFILL_WINDOW: return prefill_pick_paged<T, D, FAI_PREFILL_WINDOW>(mt, paged);
    case FAI_PREFILL_SOFTCAP: return prefill_pick_paged<T, D, FAI_PREFILL_SOFTCAP>(mt, paged);
    }
    return NULL;
}

/* Every kernel of element type T (prefill_fp16.cu, prefill_bf16.cu). */
template <typename T>
static prefill_kernel_fn prefill_pick(int d, int mt, int mode, bool paged)
{
    switch (d) {
    case 64: return prefill_pick_dim<T, 64>(mt, mode, paged);
    case 96: return prefill_pick_dim<T, 96>(mt, mode, paged);
    case 128: return prefill_pick_dim<T, 128>(mt, mode, paged);
    case 256: return prefill_pick_dim<T, 256>(mt, mode, paged);
    }
    return NULL;
}

#endif
