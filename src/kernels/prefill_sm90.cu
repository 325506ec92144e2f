/* Prefill attention on Hopper (sm_90a): warpgroup MMAs (wgmma) fed by the tensor memory
 * accelerator (TMA). It serves head dims 64, 128 and 256, FP16 and BF16, every mask and
 * variant of the mma.sync kernel (causal or none, ALiBi, sliding window, sinks, soft-cap),
 * packed varlen Q/K/V (GQA and strided views included), contiguous KV caches and paged ones
 * with pages of 16 keys or more (read in place), with optional LSE. Smaller pages, head dim
 * 96, other GPUs and builds without sm_90a code run the mma.sync kernel
 * (prefill_kernel.cuh); prefill.cu asks this file first.
 *
 * A block owns BM query rows of one (sequence, query head) at a time: 128 with two consumer
 * warpgroups, or 192 with three (head dim 64, plain mode), and a producer warpgroup:
 *   producer  (the last four warps, 24 registers a thread) one thread issues the TMA copies:
 *             the Q tile, then the K and V tiles of BN keys (128; 64 at head dim 256) into
 *             a ring of STAGES stages, each K and each V tile's arrival counted on its own
 *             `full` barrier; it refills a K or V slot once its `empty` barrier says every
 *             consumer warp is done with it;
 *   consumers (warps 0-7 or 0-11, 240 or 160 registers a thread) 64 query rows each: S =
 *             Q K^T by wgmma from shared memory (m64nBNk16, K-major), the online softmax on
 *             S's accumulators, then O += P V with P from registers and V read MN-major
 *             (m64n128k16 over both 64-value halves at head dims 128 and 256, m64n64k16 at
 *             64). The S of a key tile is issued with the P V of the tile before it, and its
 *             softmax runs while that P V is on the tensor cores.
 * The grid has one block per SM (or one per work item, FAI_PREFILL_SM90_PERSISTENT=0), each
 * taking work items from a counter in the workspace (sm90_item_of, sm90_take_item): the
 * producer loads the next item's tiles while the consumers finish the last. Tiles are blocks
 * of rows in 64-value column halves, each 128-byte swizzled as TMA writes it and wgmma reads
 * it (chunk c of row r at c ^ r % 8). Key tiles run from the last to the first, as in the
 * mma.sync kernel (the masked tiles first); tiles wholly above the causal diagonal or
 * outside the window are not loaded. Keys past the sequence's end in its last tile are rows
 * of the next sequence, free cache slots or zeros past the tensor: masked in S, and their V
 * rows zeroed in shared memory before P V (0 x NaN would be NaN). */
#include <cuda.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"
#include "prefill_kernel.cuh"
#include "prefill_sm90.h"
#include "ptx_tma.cuh"
#include "ptx_wgmma.cuh"

enum {
    SM90_PRODUCER_REGS = 24, /* registers per producer thread after the split (setmaxnreg's least) */
    SM90_MAX_STAGES = 4
};

/* Per head dim and mode: BM query rows a work item, 64 for each of NC consumer warpgroups
 * (three at head dim 64 in the plain mode, where a tile's softmax takes as long as its
 * products and more warps hide its latency, as in FlashAttention-3; the variants' modes
 * would spill ~500 bytes in the 160 registers that leaves; two otherwise), and THREADS with
 * the producer warpgroup;
 * NH 64-value column halves per row; key tiles of BN keys (64 at head dim 256, whose O
 * accumulators take 128 registers); Q tiles of QTILE bytes and K or V tiles of KVTILE, each
 * half of a tile (QHALF, KVHALF bytes) one 128-byte-swizzled block of rows; STAGES K/V
 * stages (head dim 64 has room for four). */
template <int D, int MODE = FAI_PREFILL_WINDOW> /* (the K/V constants do not depend on MODE) */
struct sm90_shape {
    static constexpr int NC = D == 64 && MODE == FAI_PREFILL_PLAIN ? 3 : 2;
    static constexpr int BM = 64 * NC, CONSUMER_THREADS = 128 * NC, THREADS = CONSUMER_THREADS + 128;
    /* setmaxnreg only moves registers inside the block's pool, which __launch_bounds__
     * (THREADS, 1) makes 65536 / THREADS a thread, rounded down to 8: a split that asks for
     * more leaves a consumer warp spinning in setmaxnreg.inc forever (32/240 would at 384). */
    static constexpr int POOL = (65536 / THREADS) & ~7;
    static constexpr int CONSUMER_REGS = ((POOL * THREADS - 128 * SM90_PRODUCER_REGS) / CONSUMER_THREADS) & ~7;
    static_assert(CONSUMER_REGS <= 240, "setmaxnreg's ceiling is 256; 240 measured at two warpgroups");
    static_assert(128 * SM90_PRODUCER_REGS + CONSUMER_THREADS * CONSUMER_REGS <= THREADS * POOL, "register split");
    static constexpr int NH = D / 64;
    static constexpr int BN = D == 256 ? 64 : 128;
    static constexpr int QHALF = BM * 128, KVHALF = BN * 128;
    static constexpr int QTILE = NH * QHALF, KVTILE = NH * KVHALF;
    static constexpr int STAGES = D == 64 ? 4 : 2;
    static constexpr int MAXP = BN / 16; /* pages a key tile may span (pages of 16+ keys) */
    static constexpr int SMEM = QTILE + 2 * STAGES * KVTILE + 1024; /* Q, the K/V stages, alignment */
    static_assert((STAGES & (STAGES - 1)) == 0, "the consumers' PST wraps stages by a mask");
};

/* The kernel's parameter: the tensor maps of Q, K and V (the TMA reads them from the
 * parameter space), then the common arguments. K and V's maps are rank 3 ([rows, heads, D])
 * for packed K/V, rank 4 ([slots, capacity, heads, D]) for a contiguous cache. */
typedef struct sm90_params {
    CUtensorMap tq, tk, tv;
    fai_prefill_args a;
    int32_t pingpong; /* the consumers take turns issuing their wgmmas (sm90_turn) */
} sm90_params;

/* Ping-pong between the consumer warpgroups (FlashAttention-3's schedule, off unless
 * FAI_PREFILL_SM90_PINGPONG=1 while it is measured): warpgroup c issues its wgmmas only after
 * the other has issued its own (named barrier 2 + c, both warpgroups counted), so one's
 * softmax runs while the other's products keep the tensor cores busy. Warpgroup 1 lets
 * warpgroup 0 go first. */
__device__ __forceinline__ void sm90_turn_wait(bool on, int c)
{
    if (on) { /* (barrier numbers as immediates: ptxas then reserves only those) */
        if (c == 0)
            named_barrier_sync_n<2>(256);
        else
            named_barrier_sync_n<3>(256);
    }
}

__device__ __forceinline__ void sm90_turn_pass(bool on, int c)
{
    if (on) {
        if (c == 0)
            named_barrier_arrive_n<3>(256);
        else
            named_barrier_arrive_n<2>(256);
    }
}

/* What differs between FP16 and BF16 here: the wgmma instructions. qk: S (64 x N) = Q K^T
 * for N = 128 or 64 keys; pv: O (64 x 64) += P V. */
template <typename T>
struct sm90_elem;

template <>
struct sm90_elem<__half> {
    template <int N>
    static __device__ __forceinline__ void qk(float *s, uint64_t da, uint64_t db, int acc)
    {
        if constexpr (N == 128)
            wgmma_m64n128k16_f16(s, da, db, acc);
        else
            wgmma_m64n64k16_f16(s, da, db, acc);
    }
    static __device__ __forceinline__ void pv(float o[32], const uint32_t p[4], uint64_t db)
    {
        wgmma_m64n64k16_f16_rs_tb(o, p, db, 1);
    }
    static __device__ __forceinline__ void pv128(float o0[32], float o1[32], const uint32_t p[4], uint64_t db)
    {
        wgmma_m64n128k16_f16_rs_tb(o0, o1, p, db, 1);
    }
};

template <>
struct sm90_elem<__nv_bfloat16> {
    template <int N>
    static __device__ __forceinline__ void qk(float *s, uint64_t da, uint64_t db, int acc)
    {
        if constexpr (N == 128)
            wgmma_m64n128k16_bf16(s, da, db, acc);
        else
            wgmma_m64n64k16_bf16(s, da, db, acc);
    }
    static __device__ __forceinline__ void pv(float o[32], const uint32_t p[4], uint64_t db)
    {
        wgmma_m64n64k16_bf16_rs_tb(o, p, db, 1);
    }
    static __device__ __forceinline__ void pv128(float o0[32], float o1[32], const uint32_t p[4], uint64_t db)
    {
        wgmma_m64n128k16_bf16_rs_tb(o0, o1, p, db, 1);
    }
};

/* Descriptor of a 128-byte-swizzled K-major or MN-major operand at p (8-row groups 1024 bytes
 * apart). */
__device__ __forceinline__ uint64_t sm90_desc(const char *p) { return wgmma_desc(p, 16, 1024, FAI_SWIZZLE_128B); }

/* Descriptor of V for a 128-column P V (head dims 128 and 256): two 64-column halves, each a
 * 128-byte-swizzled block of rows, `half` bytes apart (the leading byte offset). */
__device__ __forceinline__ uint64_t sm90_desc_v128(const char *p, int half)
{
    return wgmma_desc(p, (uint32_t)half, 1024, FAI_SWIZZLE_128B);
}

/* The descriptor of an operand `bytes` further on: only the start address field (address / 16,
 * bits 0-13) moves, and shared addresses stay below 2^18, so the sum never carries out of it.
 * (One add a wgmma instead of rebuilding the descriptor from the address.) */
__device__ __forceinline__ uint64_t sm90_desc_plus(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

/* A K or V tile at key row0 of sequence b (KV head kvh) into dst, counted on bar: one box
 * per 64-value half, or with a page table one per page the tile spans (boxes of min(BN, page
 * size) rows: a tile of BN keys starts on a multiple of BN, so it lies in one page or covers
 * whole pages). sm90_tile_pages reads the tile's page numbers first, all together (one
 * memory latency a tile, not one a page), for both of its K and V loads. Pages of keys at or
 * past seq_k are not looked up (the table row may end there): page 0 stands in, its rows
 * masked like any key past the end; page numbers are clamped into the pool as in
 * decode. */
template <int D>
__device__ __forceinline__ void sm90_tile_pages(int (&pg)[sm90_shape<D>::MAXP], const fai_prefill_args &a, int b,
                                                int row0, int seq_k)
{
    constexpr int BN = sm90_shape<D>::BN, MAXP = sm90_shape<D>::MAXP;
#pragma unroll
    for (int j = 0; j < MAXP; j++)
        pg[j] = 0;
    if (!a.page_table)
        return;
    const int psize = 1 << a.page_shift, rows = psize < BN ? psize : BN; /* (pages of 16+) */
#pragma unroll
    for (int j = 0; j < MAXP; j++) {
        const int key = row0 + j * rows;
        if (j * rows < BN && key < seq_k)
            pg[j] = a.page_table[(int64_t)b * a.page_table_stride + (key >> a.page_shift)];
    }
}

template <int D>
__device__ __forceinline__ void sm90_load_tile(char *dst, const CUtensorMap *map, uint64_t *bar,
                                               const fai_prefill_args &a, const int (&pg)[sm90_shape<D>::MAXP], int b,
                                               int kvh, int row0)
{
    constexpr int BN = sm90_shape<D>::BN, KVHALF = sm90_shape<D>::KVHALF, MAXP = sm90_shape<D>::MAXP;
    if (a.page_table) {
        const int psize = 1 << a.page_shift, rows = psize < BN ? psize : BN;
#pragma unroll
        for (int j = 0; j < MAXP; j++) {
            if (j * rows >= BN)
                break;
            const int page = min(max(pg[j], 0), a.num_pages - 1), r = (row0 + j * rows) & (psize - 1);
#pragma unroll
            for (int hb = 0; hb < D / 64; hb++)
                tma_load_4d(dst + hb * KVHALF + j * rows * 128, map, bar, 64 * hb, kvh, r, page);
        }
        return;
    }
#pragma unroll
    for (int hb = 0; hb < D / 64; hb++) {
        if (a.seq_lens)
            tma_load_4d(dst + hb * KVHALF, map, bar, 64 * hb, kvh, row0, b - a.kv_slot_offset);
        else
            tma_load_3d(dst + hb * KVHALF, map, bar, 64 * hb, kvh, row0);
    }
}

/* Work item i of the grid: the (sequence, query head) pairs in sections of a.section (the
 * last one may be short), whose keys and values fit the L2 together; in each, query tile
 * T - 1 first for every pair, then T - 2, ...: the heaviest causal tiles start first and the
 * light ones come last, so the blocks end together. A block also takes tiles t + T, t + 2 T,
 * ... of a longer sequence. Block c takes item c first, then whichever item the work counter
 * gives it next (sm90_take_item): blocks that finish early take more, where fixed rounds of
 * gridDim.x items left the busiest block 1-3 % over the mean (causal tiles of unequal
 * length; 21 % at head dim 64, 16K keys) and every block at the pace of its SM. */
struct sm90_item {
    int b, h, t0;
};

__device__ __forceinline__ sm90_item sm90_item_of(const fai_prefill_args &a, uint32_t i)
{
    const uint32_t T = (uint32_t)a.m_tiles, S = (uint32_t)a.section, span = S * T;
    const uint32_t first = i / span * S, pairs = (uint32_t)a.batch * (uint32_t)a.num_q_heads;
    const uint32_t n = pairs - first < S ? pairs - first : S; /* pairs in this section */
    const uint32_t j = i % span, bh = first + j % n;
    sm90_item it;
    it.h = (int)(bh % (uint32_t)a.num_q_heads);
    it.b = a.batch_offset + (int)(bh / (uint32_t)a.num_q_heads);
    it.t0 = (int)(T - 1 - j / n);
    return it;
}

/* The next item for the producer's one thread: gridDim.x + the counter's old value. (ptxas
 * makes the atom a warp-aggregated one, whose shuffle waits for the value here; redux.sync
 * puts the value in a uniform register, where what the producer derives from the item then
 * stays: in plain registers it would not fit the producer's 24.) */
__device__ __forceinline__ uint32_t sm90_take_item(uint32_t *counter)
{
    uint32_t t;
    asm volatile("atom.global.add.u32 %0, [%1], 1;" : "=r"(t) : "l"(counter));
    return gridDim.x + __reduce_max_sync(1u, t);
}

/* Zeroes the work counter before the kernel, which is its programmatic dependent: the
 * kernel's blocks start at once (barriers, setmaxnreg, tensor-map prefetches) and the
 * producer waits for this (griddepcontrol.wait) before its first item. */
__global__ void sm90_reset_counter(uint32_t *counter)
{
    *counter = 0;
    ptx_griddep_launch_dependents();
}

/* The work items' count, worked out where it is compared (see prefill_sm90_kernel's FRESH). */
__device__ __forceinline__ uint32_t sm90_item_count(const fai_prefill_args &a)
{
    int batch = a.batch;
    asm volatile("" : "+r"(batch));
    return (uint32_t)batch * (uint32_t)a.num_q_heads * (uint32_t)a.m_tiles;
}

/* The lane: with FRESH from %laneid at each use, else the register the kernel holds. */
template <bool FRESH>
__device__ __forceinline__ int sm90_lane(int lane)
{
    return FRESH ? ptx_laneid() : lane;
}

/* One query tile's work, published by the producer in shared memory with the tile's Q (the
 * arrival on q_full releases it): the consumers follow this schedule and never read the
 * sequence lengths themselves, so the two sides cannot disagree on it (lengths rewritten by
 * another stream mid-kernel would give wrong numbers, not a hang). done: no more tiles. */
struct sm90_work {
    int h, m0, seq_q, seq_k, q0, n_first, n_last, done;
};

/* The online softmax of one key tile's S (s: row wr0 + lane / 4 + 8 ((j / 2) % 2), key n0 +
 * 8 (j / 4) + 2 (lane % 4) + j % 2): soft-cap, scale, ALiBi bias and masks as in the mma.sync
 * kernel, the rows' running maxima m and sums l, s turned into the unnormalized weights, and
 * alpha, the rescale O needs; returns whether any row of the warp has a new maximum (O is
 * rescaled only then). Only the ragged end, the tiles on the causal diagonal or the window's
 * edges, and ALiBi take the masked path. */
template <int BN, int MODE>
__device__ __forceinline__ bool sm90_softmax(float (&s)[BN / 2], float (&m)[2], float (&l)[2], float (&alpha)[2],
                                             const fai_prefill_args &a, int n0, int seq_q, int seq_k, int wr0,
                                             float slope, int lane)
{
    constexpr int NS = BN / 2;
    constexpr bool VARIANTS = MODE >= FAI_PREFILL_WINDOW, SOFTCAP = MODE == FAI_PREFILL_SOFTCAP;
    /* The soft-cap's scores as nr = (tanh - 1) / 2 = -1 / (1 + e^2x), one instruction short of
     * tanh: the 1 + 2 nr goes into the exponent's FFMA (unmasked tiles) or the scaling
     * (masked ones), and the max over nr is the max over tanh, both increasing. */
    constexpr bool NR = SOFTCAP && !FAI_PREFILL_FAST_TANH;
    const int quad = lane & 3, off = seq_k - seq_q;
    const bool causal = a.win_right == 0;
    const int2 mb = VARIANTS ? mask_bounds(a, seq_q, seq_k) : make_int2(0, 0);
    const bool need_mask = n0 + BN > seq_k ||
                           (VARIANTS ? n0 + BN - 1 - wr0 > mb.y || n0 - (wr0 + 15) < mb.x
                                     : causal && n0 + BN - 1 > wr0 + off);
    if (SOFTCAP) {
        const float k = a.softcap_scale * (2.0f * FAI_LOG2E); /* (the tanh's factor folded in) */
#pragma unroll
        for (int j = 0; j < NS; j++)
            s[j] = NR ? ptx_rcp(-1.0f - ptx_exp2(s[j] * k)) : softcap_tanh_log2(s[j] * k);
    }
    float sc = a.scale_log2;
    bool raw_nr = NR; /* s still holds nr (not yet scaled into the exp2 domain) */
    if (need_mask || (VARIANTS && a.alibi)) {
        sc = 1.0f;
        raw_nr = false;
        /* key - row of s[0], and of s[j] that plus a constant: kept in one register
         * (a row and a key per element held 64 of them and spilled) */
        const int dk0 = n0 + 2 * quad - (wr0 + (lane >> 2));
#pragma unroll
        for (int j = 0; j < NS; j++) {
            const int dj = 8 * (j >> 2) + (j & 1) - 8 * ((j >> 1) & 1), dk = dk0 + dj;
            const bool past = 8 * (j >> 2) + (j & 1) >= seq_k - n0 - 2 * quad; /* key >= seq_k */
            const bool out = VARIANTS ? past || dk > mb.y || dk < mb.x : past || (causal && dk > off);
            s[j] = out ? -INFINITY
                       : VARIANTS ? (NR ? fmaf(s[j], 2.0f * a.scale_log2, a.scale_log2) : s[j] * a.scale_log2) -
                                        slope * fabsf((float)(off - dk))
                                  : s[j] * a.scale_log2;
        }
    }
    /* Each row's max and sum as four partial chains per row half, both halves side by side
     * (one chain of NS / 2 dependent steps left a lone warp waiting on every step). */
    static_assert(NS >= 16, "four partial chains per row half");
    float mx[2], part[2][4];
#pragma unroll
    for (int j = 0; j < NS; j += 4)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const float v = fmaxf(s[j + 2 * hr], s[j + 2 * hr + 1]);
            part[hr][(j >> 2) & 3] = j < 16 ? v : fmaxf(part[hr][(j >> 2) & 3], v);
        }
#pragma unroll
    for (int hr = 0; hr < 2; hr++)
        mx[hr] = fmaxf(fmaxf(part[hr][0], part[hr][1]), fmaxf(part[hr][2], part[hr][3]));
    float base[2];
    bool grew = false;
#pragma unroll
    for (int hr = 0; hr < 2; hr++)
        base[hr] = online_max_step(m[hr], raw_nr ? fmaf(2.0f, mx[hr], 1.0f) : mx[hr], sc, alpha[hr], grew);
    if constexpr (NR) { /* sc tanh - base = 2 sc nr + (sc - base) on raw tiles */
        const float mul = raw_nr ? 2.0f * sc : sc;
        float add[2];
#pragma unroll
        for (int hr = 0; hr < 2; hr++)
            add[hr] = raw_nr ? sc - base[hr] : -base[hr];
#pragma unroll
        for (int j = 0; j < NS; j += 4)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                s[j + 2 * hr] = ptx_exp2(fmaf(s[j + 2 * hr], mul, add[hr]));
                s[j + 2 * hr + 1] = ptx_exp2(fmaf(s[j + 2 * hr + 1], mul, add[hr]));
            }
    } else {
#pragma unroll
        for (int j = 0; j < NS; j += 4)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                s[j + 2 * hr] = ptx_exp2(fmaf(s[j + 2 * hr], sc, -base[hr]));
                s[j + 2 * hr + 1] = ptx_exp2(fmaf(s[j + 2 * hr + 1], sc, -base[hr]));
            }
    }
#pragma unroll
    for (int j = 0; j < NS; j += 4)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const float v = s[j + 2 * hr] + s[j + 2 * hr + 1];
            part[hr][(j >> 2) & 3] = j < 16 ? v : part[hr][(j >> 2) & 3] + v;
        }
#pragma unroll
    for (int hr = 0; hr < 2; hr++)
        l[hr] = l[hr] * alpha[hr] + ((part[hr][0] + part[hr][1]) + (part[hr][2] + part[hr][3]));
    return __any_sync(0xffffffffu, grew);
}

/* Zero the V rows of the key tile at n0 (stage vs) past the sequence's end, when that tile is
 * the ragged one, before P V reads them (every consumer warpgroup reads them: 0 x NaN is NaN),
 * then make the zeros visible to wgmma before any goes on. */
template <int D, int MODE>
__device__ __forceinline__ void sm90_zero_v_tail(char *vs, int n0, int seq_k)
{
    using S = sm90_shape<D, MODE>;
    if (n0 + S::BN <= seq_k)
        return;
    const int valid = seq_k - n0;
    for (int e = threadIdx.x; e < (S::BN - valid) * (D / 8); e += S::CONSUMER_THREADS) {
        const int r = valid + e / (D / 8), ch = e % (D / 8);
        *reinterpret_cast<uint4 *>(vs + (ch >> 3) * S::KVHALF + r * 128 + (ch & 7) * 16) = make_uint4(0, 0, 0, 0);
    }
    fence_proxy_async_smem();
    named_barrier_sync(1, S::CONSUMER_THREADS);
}

/* The consumers' place in the K/V ring: the stage of the key tile whose S is issued next, and
 * its phase. The tile before it, whose P V is in flight beside that S, is one stage back. */
struct sm90_ring {
    uint32_t st, ph;
};

template <int STAGES>
__device__ __forceinline__ uint32_t sm90_prev_stage(const sm90_ring &r)
{
    static_assert((STAGES & (STAGES - 1)) == 0, "the previous stage wraps by a mask");
    return (r.st - 1) & (STAGES - 1);
}

__device__ __forceinline__ uint32_t sm90_prev_phase(const sm90_ring &r) { return r.st == 0 ? r.ph ^ 1 : r.ph; }

template <int STAGES>
__device__ __forceinline__ void sm90_advance(sm90_ring &r)
{
    if (++r.st == STAGES) {
        r.st = 0;
        r.ph ^= 1;
    }
}

/* S's accumulators zeroed, each fenced so that the write stays before the wgmmas. */
template <int NS>
__device__ __forceinline__ void sm90_s_fences(float (&s)[NS])
{
#pragma unroll
    for (int j = 0; j < NS; j++) {
        s[j] = 0.0f;
        wgmma_fence_acc(s[j]);
    }
}

/* S = Q K^T over the K tile at kstage, one commit group: k-steps of 16 dims, 32 bytes apart
 * in a swizzled row, four per 64-value column half; each descriptor one add from its base. */
template <typename Elem, int D>
__device__ __forceinline__ void sm90_issue_qk(float (&s)[sm90_shape<D>::BN / 2], const char *kstage, uint64_t dq)
{
    using S = sm90_shape<D>;
    const uint64_t dk = sm90_desc(kstage);
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
        sm90_elem<Elem>::template qk<S::BN>(s, sm90_desc_plus(dq, (ks >> 2) * S::QHALF + (ks & 3) * 32),
                                           sm90_desc_plus(dk, (ks >> 2) * S::KVHALF + (ks & 3) * 32), ks > 0);
    wgmma_commit();
}

/* O's accumulators and P's registers fenced: kept until the P V that reads them is done. */
template <int D>
__device__ __forceinline__ void sm90_pv_fences(float (&acc)[sm90_shape<D>::NH][32],
                                               uint32_t (&pf)[sm90_shape<D>::BN / 16][4])
{
#pragma unroll
    for (int hb = 0; hb < sm90_shape<D>::NH; hb++)
#pragma unroll
        for (int j = 0; j < 32; j++)
            wgmma_fence_acc(acc[hb][j]);
#pragma unroll
    for (int ks = 0; ks < sm90_shape<D>::BN / 16; ks++)
#pragma unroll
        for (int r = 0; r < 4; r++)
            wgmma_fence_reg(pf[ks][r]);
}

/* O += P V over the V tile at vstage, one commit group: 128 columns a wgmma (both 64-value
 * halves, KVHALF apart) at head dims 128 and 256, 64 at 64. */
template <typename Elem, int D>
__device__ __forceinline__ void sm90_issue_pv(float (&acc)[sm90_shape<D>::NH][32],
                                              const uint32_t (&pf)[sm90_shape<D>::BN / 16][4], const char *vstage)
{
    using S = sm90_shape<D>;
    using E = sm90_elem<Elem>;
    if constexpr (S::NH >= 2) {
        const uint64_t dv = sm90_desc_v128(vstage, S::KVHALF);
#pragma unroll
        for (int hp = 0; hp < S::NH; hp += 2)
#pragma unroll
            for (int ks = 0; ks < S::BN / 16; ks++)
                E::pv128(acc[hp], acc[hp + 1], pf[ks], sm90_desc_plus(dv, hp * S::KVHALF + ks * 2048));
    } else {
        const uint64_t dv = sm90_desc(vstage);
#pragma unroll
        for (int ks = 0; ks < S::BN / 16; ks++)
            E::pv(acc[0], pf[ks], sm90_desc_plus(dv, ks * 2048));
    }
    wgmma_commit();
}

/* S of the key tile at n0 is done: its registers are final, K's slot goes back to the
 * producer, and so does Q after the item's last S (no tile below n0 from `first` on). */
template <int NS>
__device__ __forceinline__ void sm90_s_done(float (&s)[NS], uint64_t *k_empty, uint64_t *q_empty, int n0, int first,
                                            int lane)
{
#pragma unroll
    for (int j = 0; j < NS; j++)
        wgmma_fence_acc(s[j]);
    if (lane == 0)
        mbar_arrive(k_empty);
    if (n0 - 2 * NS < first) /* (2 NS = BN keys a tile) */
        mbar_arrive(q_empty);
}

/* P V is done (its fences kept pf until now): V's slot goes back to the producer. */
template <int D>
__device__ __forceinline__ void sm90_pv_done(float (&acc)[sm90_shape<D>::NH][32],
                                             uint32_t (&pf)[sm90_shape<D>::BN / 16][4], uint64_t *v_empty, int lane)
{
    sm90_pv_fences<D>(acc, pf);
    if (lane == 0)
        mbar_arrive(v_empty);
}

/* O to this tile's row maxima (only when one grew), and this tile's P packed into pf for its
 * P V (s and a second P would not fit the registers together, so only now). */
template <typename Elem, int D>
__device__ __forceinline__ void sm90_rescale_pack(float (&acc)[sm90_shape<D>::NH][32],
                                                  uint32_t (&pf)[sm90_shape<D>::BN / 16][4],
                                                  const float (&s)[sm90_shape<D>::BN / 2], const float (&alpha)[2],
                                                  bool rescale)
{
    using P = prefill_elem<Elem>;
    if (rescale) {
#pragma unroll
        for (int hb = 0; hb < sm90_shape<D>::NH; hb++)
#pragma unroll
            for (int j = 0; j < 32; j++)
                acc[hb][j] *= alpha[(j >> 1) & 1];
    }
#pragma unroll
    for (int ks = 0; ks < sm90_shape<D>::BN / 16; ks++) {
        pf[ks][0] = P::pack(s[8 * ks + 0], s[8 * ks + 1]);
        pf[ks][1] = P::pack(s[8 * ks + 2], s[8 * ks + 3]);
        pf[ks][2] = P::pack(s[8 * ks + 4], s[8 * ks + 5]);
        pf[ks][3] = P::pack(s[8 * ks + 6], s[8 * ks + 7]);
    }
}

template <typename Elem, int D, int MODE>
__global__ void __launch_bounds__(sm90_shape<D, MODE>::THREADS, 1)
    prefill_sm90_kernel(const __grid_constant__ sm90_params p)
{
#if FAI_HAS_WGMMA
    using E = sm90_elem<Elem>;
    using P = prefill_elem<Elem>;
    using S = sm90_shape<D, MODE>;
    constexpr int BN = S::BN, NS = BN / 2; /* S values per thread */
    constexpr bool VARIANTS = MODE >= FAI_PREFILL_WINDOW;
    const fai_prefill_args &a = p.a;
    extern __shared__ char smem_raw[];
    char *sq = smem_raw + ((1024 - (ptx_smem_addr(smem_raw) & 1023)) & 1023); /* swizzle atoms: 1024-aligned */
    char *stages = sq + S::QTILE; /* stage s: K at stages + 2 s KVTILE, V one tile after it */
    /* K and V of a stage have barriers of their own: K is released after S = Q K^T, V only
     * after the next tile's S (its P V runs beside it), and the producer refills each as
     * soon as it is free. */
    __shared__ uint64_t kfull[SM90_MAX_STAGES], kempty[SM90_MAX_STAGES], vfull[SM90_MAX_STAGES],
        vempty[SM90_MAX_STAGES], q_full, q_empty;
    __shared__ sm90_work work;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (threadIdx.x == 0) {
        for (int s = 0; s < S::STAGES; s++) {
            mbar_init(&kfull[s], 1); /* the producer's arrive_expect_tx (and the bytes) */
            mbar_init(&vfull[s], 1);
            mbar_init(&kempty[s], 4 * S::NC); /* one arrival per consumer warp */
            mbar_init(&vempty[s], 4 * S::NC);
        }
        mbar_init(&q_full, 1);
        /* every consumer thread arrives: each releases its own read of the work record (a
         * lane-0 arrival would not order the other lanes' reads before the producer's rewrite) */
        mbar_init(&q_empty, S::CONSUMER_THREADS);
        mbar_fence_init();
    }
    __syncthreads();
    const int T = a.m_tiles;
    const uint32_t items = (uint32_t)a.batch * (uint32_t)a.num_q_heads * (uint32_t)T; /* < 2^31: the launch's check */
    /* FRESH: the d128 window and soft-cap kernels sit at the register ceiling (240 a
     * consumer thread, 24 the producer's), where ptxas spilled the lane (consumers), the
     * CTA id and the item count (producer) that the loops hold: those kernels rebuild them
     * at each use instead (no local memory; the others keep their registers). */
    constexpr bool FRESH = D == 128 && VARIANTS;

    if (warp >= S::CONSUMER_THREADS / 32) { /* the producer warpgroup: one thread works */
        setmaxnreg_dec<SM90_PRODUCER_REGS>();
        if (warp != S::CONSUMER_THREADS / 32 || lane != 0)
            return;
        tma_prefetch_map(&p.tq);
        tma_prefetch_map(&p.tk);
        tma_prefetch_map(&p.tv);
        uint32_t st = 0, ph = 0, qph = 0;
        /* The next item is taken just before this one's last K/V tile waits for its stage, a
         * tile ahead of the item's end, so its number is in hand when the item is done
         * (taking it a whole item ahead evened out the blocks' ends less well: up to 5 %
         * slower at head dim 256); the counter's zero, from the kernel before, is waited for
         * first. (FRESH kernels take it after the item: the early value would spill.) */
        uint32_t i = blockIdx.x, next = 0;
        if (FRESH)
            asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(i));
        ptx_griddep_wait();
        for (bool taken = false; i < (FRESH ? sm90_item_count(a) : items);
             i = taken ? next : sm90_take_item(a.next_item), taken = false) {
            const sm90_item it = sm90_item_of(a, i);
            const int kvh = it.h / a.group;
            const int2 qr = cu_range(a.cu_q, it.b, a.total_q), kr = key_range(a, it.b);
            const int seq_q = qr.y - qr.x, seq_k = kr.y - kr.x;
            if (a.skip_decode_rows && seq_q == 1)
                continue; /* a decode row: the decode kernel of the same call writes it */
            for (int t = it.t0; (int64_t)t * S::BM < seq_q; t += T) {
                const int m0 = t * S::BM;
                const int2 tiles = prefill_key_tiles<(MODE >= FAI_PREFILL_WINDOW), S::BM, BN>(a, m0, seq_q, seq_k);
                /* The tile's K/V go into the ring as stages free up (the last item's tiles
                 * still in use); its Q and work record once the consumers are past their last
                 * S = Q K^T (q_empty), after the first K/V tile is on its way. */
                bool q_sent = false;
                for (int n0 = tiles.y; n0 >= tiles.x || !q_sent; n0 -= BN) {
                    if (n0 >= tiles.x) {
                        if (!FRESH && n0 - BN < tiles.x && (int64_t)(t + T) * S::BM >= seq_q) {
                            next = sm90_take_item(a.next_item); /* the item's last tile */
                            taken = true;
                        }
                        char *sk = stages + 2 * st * S::KVTILE;
                        int pg[S::MAXP];
                        sm90_tile_pages<D>(pg, a, it.b, kr.x + n0, seq_k); /* (paged: while K's stage frees) */
                        mbar_wait(&kempty[st], ph ^ 1);
                        mbar_arrive_expect_tx(&kfull[st], S::KVTILE);
                        sm90_load_tile<D>(sk, &p.tk, &kfull[st], a, pg, it.b, kvh, kr.x + n0);
                        mbar_wait(&vempty[st], ph ^ 1);
                        mbar_arrive_expect_tx(&vfull[st], S::KVTILE);
                        sm90_load_tile<D>(sk + S::KVTILE, &p.tv, &vfull[st], a, pg, it.b, kvh, kr.x + n0);
                        if (++st == S::STAGES) {
                            st = 0;
                            ph ^= 1;
                        }
                    }
                    if (!q_sent) {
                        mbar_wait(&q_empty, qph ^ 1);
                        qph ^= 1;
                        work.h = it.h;
                        work.m0 = m0;
                        work.seq_q = seq_q;
                        work.seq_k = seq_k;
                        work.q0 = qr.x;
                        work.n_first = tiles.x;
                        work.n_last = tiles.y;
                        work.done = 0;
                        mbar_arrive_expect_tx(&q_full, S::QTILE);
#pragma unroll
                        for (int hb = 0; hb < S::NH; hb++)
                            tma_load_3d(sq + hb * S::QHALF, &p.tq, &q_full, 64 * hb, it.h, qr.x + m0);
                        q_sent = true;
                    }
                }
            }
        }
        mbar_wait(&q_empty, qph ^ 1); /* the consumers have read the last record */
        work.done = 1;
        mbar_arrive(&q_full);
        return;
    }

    /* The consumers: warpgroup c, warp w of it, rows 16 w + lane / 4 (+ 8) of its 64. */
    setmaxnreg_inc<S::CONSUMER_REGS>();
    const int c = warp >> 2, w = warp & 3, quad = lane & 3;
    const char *sqc = sq + c * 64 * 128; /* the warpgroup's 64 rows of each Q half */
    const uint64_t dq = sm90_desc(sqc);
    const bool pp = p.pingpong != 0 && S::NC == 2; /* (ping-pong pairs two warpgroups) */
    if (c == 1)
        sm90_turn_pass(pp, 1); /* warpgroup 0 first */
    sm90_ring ring = {0, 0};
    uint32_t qph = 0;
    for (;;) {
        mbar_wait(&q_full, qph);
        qph ^= 1;
        const sm90_work wk = work;
        if (wk.done)
            break;
        {
            const int h = wk.h, m0 = wk.m0, seq_q = wk.seq_q, seq_k = wk.seq_k;
            const int2 tiles = make_int2(wk.n_first, wk.n_last);
            float slope = 0.0f; /* ALiBi slope in the exp2 domain (calls with ALiBi run a variants kernel) */
            if (VARIANTS && a.alibi)
                slope = FAI_LOG2E * (a.alibi_slopes ? a.alibi_slopes[h] : fai_alibi_standard_slope(h, a.num_q_heads));
            const int wr0 = m0 + c * 64 + 16 * w; /* the warp's first row */
            float acc[S::NH][32], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
            for (int hb = 0; hb < S::NH; hb++)
#pragma unroll
                for (int j = 0; j < 32; j++)
                    acc[hb][j] = 0.0f;
            if (tiles.x > tiles.y) /* no key tile: done with Q (and the record) at once */
                mbar_arrive(&q_empty);
            /* From the last key tile down, S = Q K^T of a tile is issued together with O += P V
             * of the tile before it, and the softmax of this S runs while that P V is on the
             * tensor cores (FlashAttention-3's intra-warpgroup overlap): the first tile's S
             * alone, then both, then the last tile's P V alone (no wgmma under a condition
             * inside one: ptxas would serialize them all). pf holds the previous tile's P (in
             * flight), pst its stage; once that P V is done O takes this tile's rescale and pf
             * this tile's P. */
            uint32_t pf[BN / 16][4];
            float alpha[2];
            bool rescale;
            int n0 = tiles.y;
            if (n0 >= tiles.x) {
                float s[NS];
                mbar_wait(&kfull[ring.st], ring.ph);
                sm90_s_fences(s);
                sm90_turn_wait(pp, c);
                wgmma_fence();
                sm90_issue_qk<Elem, D>(s, stages + 2 * ring.st * S::KVTILE, dq);
                sm90_turn_pass(pp, c);
                wgmma_wait<0>();
                sm90_s_done(s, &kempty[ring.st], &q_empty, n0, tiles.x, sm90_lane<FRESH>(lane));
                rescale = sm90_softmax<BN, MODE>(s, m, l, alpha, a, n0, seq_q, seq_k, wr0, slope,
                                                 sm90_lane<FRESH>(lane));
                sm90_rescale_pack<Elem, D>(acc, pf, s, alpha, rescale);
                sm90_advance<S::STAGES>(ring);
                for (n0 -= BN; n0 >= tiles.x; n0 -= BN) {
                    const uint32_t pst = sm90_prev_stage<S::STAGES>(ring);
                    mbar_wait(&vfull[pst], sm90_prev_phase(ring));
                    sm90_zero_v_tail<D, MODE>(stages + (2 * pst + 1) * S::KVTILE, n0 + BN, seq_k);
                    mbar_wait(&kfull[ring.st], ring.ph);
                    sm90_s_fences(s);
                    sm90_pv_fences<D>(acc, pf);
                    sm90_turn_wait(pp, c);
                    wgmma_fence();
                    sm90_issue_qk<Elem, D>(s, stages + 2 * ring.st * S::KVTILE, dq);
                    sm90_issue_pv<Elem, D>(acc, pf, stages + (2 * pst + 1) * S::KVTILE);
                    sm90_turn_pass(pp, c);
                    wgmma_wait<1>(); /* S (committed first) is done; P V may run on */
                    sm90_s_done(s, &kempty[ring.st], &q_empty, n0, tiles.x, sm90_lane<FRESH>(lane));
                    rescale = sm90_softmax<BN, MODE>(s, m, l, alpha, a, n0, seq_q, seq_k, wr0, slope,
                                                 sm90_lane<FRESH>(lane));
                    wgmma_wait<0>();
                    sm90_pv_done<D>(acc, pf, &vempty[pst], sm90_lane<FRESH>(lane));
                    sm90_rescale_pack<Elem, D>(acc, pf, s, alpha, rescale);
                    sm90_advance<S::STAGES>(ring);
                }
                const uint32_t pst = sm90_prev_stage<S::STAGES>(ring); /* the last tile's P V */
                mbar_wait(&vfull[pst], sm90_prev_phase(ring));
                sm90_zero_v_tail<D, MODE>(stages + (2 * pst + 1) * S::KVTILE, n0 + BN, seq_k);
                sm90_pv_fences<D>(acc, pf);
                sm90_turn_wait(pp, c);
                wgmma_fence();
                sm90_issue_pv<Elem, D>(acc, pf, stages + (2 * pst + 1) * S::KVTILE);
                sm90_turn_pass(pp, c);
                wgmma_wait<0>();
                sm90_pv_done<D>(acc, pf, &vempty[pst], sm90_lane<FRESH>(lane));
            }

            /* Epilogue: the sink joins each row's sum (its max moves up to the sink if that is
             * larger), normalize, LSE from the quad leader, 4-byte stores of column pairs. */
            const float *sinks = VARIANTS ? a.sinks : NULL;
            const float sink = sinks ? sinks[h] * FAI_LOG2E : -INFINITY;
            Elem *og = (Elem *)a.o + (int64_t)wk.q0 * a.o_token_stride + (int64_t)h * a.o_head_stride;
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                float sum = l[hr];
                sum += __shfl_xor_sync(0xffffffffu, sum, 1);
                sum += __shfl_xor_sync(0xffffffffu, sum, 2);
                float mx = m[hr];
                const float keep = sinks ? sink_fold(sink, mx, sum) : 1.0f; /* the accumulators' share */
                const float inv = sum > 0.0f ? keep / sum : 0.0f;
                const int ln = sm90_lane<FRESH>(lane), qd = FRESH ? ln & 3 : quad, row = wr0 + (ln >> 2) + 8 * hr;
                if (row >= seq_q)
                    continue;
                if (a.lse && qd == 0)
                    a.lse[((int64_t)wk.q0 + row) * a.num_q_heads + h] =
                        sum > 0.0f ? (safe_max(mx) + __log2f(sum)) * FAI_LN2 : -INFINITY;
#pragma unroll
                for (int hb = 0; hb < S::NH; hb++)
#pragma unroll
                    for (int j = 2 * hr; j < 32; j += 4)
                        ptx_st_u32(og + (int64_t)row * a.o_token_stride + 64 * hb + 8 * (j >> 2) + 2 * qd,
                                   P::pack(acc[hb][j] * inv, acc[hb][j + 1] * inv));
            }
        }
    }
    if (c == 0)
        sm90_turn_wait(pp, 0); /* warpgroup 1's last pass: no barrier is left half-arrived */
#else
    (void)p;
    __trap(); /* never launched without sm_90a code (the launcher checks): fail loudly if it is */
#endif
}

#ifdef FAI_HAVE_SM90A /* (the host helpers are used only where the kernel can launch) */
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

/* The map of a [rows, heads, d] view (element strides), or with slots > 0 of a
 * [slots, rows, heads, d] cache (slot_stride), read in boxes of box_rows rows x 64 values,
 * 128-byte swizzled; false when the TMA cannot describe it (alignment, strides). */
static bool sm90_map(sm90_encode_fn encode, CUtensorMap *map, const void *base, int dtype, int d, int rows,
                     int heads, int64_t token_stride, int64_t head_stride, int slots, int64_t slot_stride,
                     int box_rows)
{
    const int64_t limit = (int64_t)1 << 39; /* strides in bytes must stay under 2^40 */
    if (((uintptr_t)base & 15) || (token_stride & 7) || (head_stride & 7) || rows <= 0 || heads <= 0 ||
        token_stride <= 0 || head_stride <= 0 || token_stride >= limit || head_stride >= limit ||
        (slots > 0 && ((slot_stride & 7) || slot_stride <= 0 || slot_stride >= limit)))
        return false;
    const cuuint64_t dims[4] = {(cuuint64_t)d, (cuuint64_t)heads, (cuuint64_t)rows, (cuuint64_t)slots};
    const cuuint64_t strides[3] = {(cuuint64_t)head_stride * 2, (cuuint64_t)token_stride * 2,
                                   (cuuint64_t)slot_stride * 2};
    const cuuint32_t box[4] = {64, 1, (cuuint32_t)box_rows, 1}, unit[4] = {1, 1, 1, 1};
    return encode(map, dtype == FAI_DTYPE_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                  slots > 0 ? 4 : 3, (void *)base, dims, strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

#endif

typedef void (*sm90_kernel_fn)(const sm90_params);

template <typename T, int D>
static sm90_kernel_fn sm90_pick_mode(int mode)
{
    switch (mode) {
    case FAI_PREFILL_PLAIN: return prefill_sm90_kernel<T, D, FAI_PREFILL_PLAIN>;
    case FAI_PREFILL_WINDOW: return prefill_sm90_kernel<T, D, FAI_PREFILL_WINDOW>;
    case FAI_PREFILL_SOFTCAP: return prefill_sm90_kernel<T, D, FAI_PREFILL_SOFTCAP>;
    }
    return NULL;
}

template <typename T>
static sm90_kernel_fn sm90_pick(int d, int mode)
{
    return d == 64 ? sm90_pick_mode<T, 64>(mode) : d == 128 ? sm90_pick_mode<T, 128>(mode)
                   : d == 256 ? sm90_pick_mode<T, 256>(mode) : NULL;
}

/* The block shape of a (head dim, mode): query rows a work item, threads, shared memory. Only
 * head dim 64's plain mode differs from the rest (sm90_shape). */
template <int D, int MODE>
static void sm90_block_of(int *bm, int *threads, int *smem, int *pool)
{
    static_assert(MODE == FAI_PREFILL_PLAIN || sm90_shape<D, MODE>::NC == sm90_shape<D, FAI_PREFILL_SOFTCAP>::NC,
                  "the variants' modes share a shape");
    *bm = sm90_shape<D, MODE>::BM;
    *threads = sm90_shape<D, MODE>::THREADS;
    *smem = sm90_shape<D, MODE>::SMEM;
    *pool = sm90_shape<D, MODE>::POOL;
}

#ifdef FAI_HAVE_SM90A
/* Whether environment variable `name` starts with `c`. */
static bool sm90_env_is(const char *name, char c)
{
    const char *v = getenv(name);
    return v && v[0] == c;
}

/* What FAI_PREFILL_SM90 asks of args->sm90 (the planner's 1 or 2): 0 never (3), 1 every call
 * (1), unset from FAI_PREFILL_SM90_MIN_KEYS keys on (2). */
static int sm90_env_need(void)
{
    return sm90_env_is("FAI_PREFILL_SM90", '0') ? 3 : sm90_env_is("FAI_PREFILL_SM90", '1') ? 1 : 2;
}

/* setmaxnreg only moves registers inside the block's pool: a build whose ptxas gave the
 * kernel fewer registers a thread than the split assumes (say, with -maxrregcount) would
 * leave consumer warps spinning in setmaxnreg.inc forever, so such a kernel is not launched
 * (the mma.sync kernel takes the call). */
static bool sm90_pool_ok(sm90_kernel_fn kernel, int pool)
{
    cudaFuncAttributes attr;
    if (cudaFuncGetAttributes(&attr, kernel) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return attr.numRegs >= pool;
}
#endif

extern "C" fai_status fai_prefill_sm90_launch(const fai_prefill_args *args, int mode, int paged, cudaStream_t stream,
                                              int *launched)
{
    *launched = 0;
#ifdef FAI_HAVE_SM90A
    /* FAI_PREFILL_SM90=0: never; =1: on every Hopper call it serves, short sequences too
     * (the tests); unset: from FAI_PREFILL_SM90_MIN_KEYS keys a sequence on. The switches
     * are read once (getenv on every call could race another thread's setenv). */
    static const int need = sm90_env_need();
    const int d = args->head_dim;
    /* Head dims 64 and 128 where the planner chose 128-row tiles (its small-grid 64-row
     * kernel keeps small grids); 256 always (its mma.sync kernel has 64-row tiles: the tile
     * count is halved, rounding up). A contiguous cache or packed K/V. */
    const int bm = FAI_PREFILL_BM_OF(args->mt);
    /* (a paged cache: pages of 16+ keys, each read as TMA boxes of up to BN rows; smaller
     * pages would take too many boxes a tile) */
    if (args->sm90 < need || (paged && args->page_shift < 4) || (d != 64 && d != 128 && d != 256) ||
        (d != 256 && bm != 128) ||
        ((uintptr_t)args->o & 3) || (args->o_token_stride & 1) || (args->o_head_stride & 1) ||
        (args->dtype != FAI_DTYPE_FP16 && args->dtype != FAI_DTYPE_BF16))
        return FAI_SUCCESS;
    /* looked up once, on the first call the kernel could serve (no other GPU pays for it) */
    static const sm90_encode_fn encode = sm90_lookup_encode();
    if (!encode)
        return FAI_SUCCESS;
    sm90_params p;
    memset(&p, 0, sizeof p);
    p.a = *args;
    /* ALiBi runs in the variants' kernel (the plain one leaves its bias out: registers) */
    if (mode == FAI_PREFILL_PLAIN && args->alibi)
        mode = FAI_PREFILL_WINDOW;
    /* the block's shape (three consumer warpgroups at head dim 64 in the plain mode), and the
     * planner's tiles of bm rows as this kernel's of BM */
    int BM, threads, smem, pool;
    if (d == 64 && mode == FAI_PREFILL_PLAIN)
        sm90_block_of<64, FAI_PREFILL_PLAIN>(&BM, &threads, &smem, &pool);
    else if (d == 64)
        sm90_block_of<64, FAI_PREFILL_WINDOW>(&BM, &threads, &smem, &pool);
    else if (d == 128)
        sm90_block_of<128, FAI_PREFILL_WINDOW>(&BM, &threads, &smem, &pool);
    else
        sm90_block_of<256, FAI_PREFILL_WINDOW>(&BM, &threads, &smem, &pool);
    p.a.m_tiles = (int32_t)(((int64_t)args->m_tiles * bm + BM - 1) / BM);
    const int bn = d == 256 ? sm90_shape<256>::BN : sm90_shape<128>::BN;
    /* a contiguous cache: sequence b in slot b - kv_slot_offset, `capacity` rows each */
    /* K/V as the TMA sees them: packed [total_k, heads, d]; a contiguous cache's slots (sequence
     * b in slot b - kv_slot_offset, capacity rows each); a paged cache's pages (page_size rows
     * each, read in boxes of up to bn rows) */
    const int page_size = paged ? 1 << args->page_shift : 0;
    const int slots = paged ? args->num_pages
                            : args->seq_lens ? args->batch_offset + args->batch - args->kv_slot_offset : 0;
    const int krows = paged ? page_size : args->seq_lens ? args->capacity : args->total_k;
    const int kbox = paged && page_size < bn ? page_size : bn;
    if ((args->seq_lens && slots <= 0) ||
        !sm90_map(encode, &p.tq, args->q, args->dtype, d, args->total_q, args->num_q_heads, args->q_token_stride,
                  args->q_head_stride, 0, 0, BM) ||
        !sm90_map(encode, &p.tk, args->k, args->dtype, d, krows, args->num_kv_heads, args->k_token_stride,
                  args->k_head_stride, slots, args->kv_seq_stride, kbox) ||
        !sm90_map(encode, &p.tv, args->v, args->dtype, d, krows, args->num_kv_heads, args->v_token_stride,
                  args->v_head_stride, slots, args->kv_seq_stride, kbox))
        return FAI_SUCCESS; /* the mma.sync kernel takes it */
    sm90_kernel_fn kernel = args->dtype == FAI_DTYPE_BF16 ? sm90_pick<__nv_bfloat16>(d, mode)
                                                          : sm90_pick<__half>(d, mode);
    /* (the items are numbered in 32 bits, with room for the grid's last tickets) */
    const int64_t items = (int64_t)args->batch * args->num_q_heads * p.a.m_tiles;
    if (!kernel || !sm90_pool_ok(kernel, pool) || !args->next_item || items > INT32_MAX)
        return FAI_SUCCESS;
    if (p.a.section < 1 || p.a.section > (int64_t)args->batch * args->num_q_heads)
        p.a.section = 1; /* (the planner's is in range) */
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED, err, "fai_prefill: cudaFuncSetAttribute (%d bytes of shared memory)",
                              smem);
    /* One block per SM walking the work items (its producer loads the next item's tiles while
     * the consumers finish this one), or with FAI_PREFILL_SM90_PERSISTENT=0 one block per item. */
    static const bool one_per_item = sm90_env_is("FAI_PREFILL_SM90_PERSISTENT", '0');
    static const bool pingpong = sm90_env_is("FAI_PREFILL_SM90_PINGPONG", '1');
    const int64_t sms = args->num_sms > 0 ? args->num_sms : items;
    const int64_t blocks = one_per_item ? items : items < sms ? items : sms;
    p.pingpong = pingpong;
    *launched = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(1);
    cfg.blockDim = dim3(1);
    cfg.stream = stream;
    err = cudaLaunchKernelEx(&cfg, sm90_reset_counter, args->next_item);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err,
                              "fai_prefill: launching the Hopper prefill kernel's counter reset failed");
    /* a programmatic dependent of the reset: its blocks start while the reset runs */
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3((unsigned)threads);
    cfg.dynamicSmemBytes = (size_t)smem;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    err = cudaLaunchKernelEx(&cfg, kernel, p);
    if (err == cudaSuccess)
        return FAI_SUCCESS;
    return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err, "fai_prefill: launching the Hopper prefill kernel failed");
#else
    (void)args;
    (void)mode;
    (void)paged;
    (void)stream;
    return FAI_SUCCESS;
#endif
}
