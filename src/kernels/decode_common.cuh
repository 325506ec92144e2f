/* Device code shared by the decode kernels: FP16/BF16 packing, the online-softmax guard, and the
 * epilogue that merges the warps of a block and writes the output (or the split's partial). */
#ifndef FAI_DECODE_COMMON_CUH
#define FAI_DECODE_COMMON_CUH

#include <cuda_fp16.h>
#include <math.h>

#include "../decode_args.h"
#include "kv_dequant.cuh"
#include "ptx.cuh"

#define FAI_LOG2E 1.4426950408889634f
#define FAI_LN2 0.6931471805599453f

/* Eight FP16 values of one 16-byte load, as floats. */
__device__ __forceinline__ void fp16x8_to_float(uint4 u, float f[8])
{
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

__device__ __forceinline__ uint32_t pack_half2(float a, float b)
{
    const __half2 h = __floats2half2_rn(a, b);
    return *reinterpret_cast<const uint32_t *>(&h);
}

/* Eight query values of one 16-byte load, FP16 or BF16, as floats. Both conversions and a
 * select rather than a branch: the branch moved ptxas's register allocation of the FP16 and
 * quantized CUDA-core kernels (up to +15 registers), the selects leave it as it was. */
__device__ __forceinline__ void q8_to_float(uint4 u, bool bf16, float f[8])
{
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __half22float2(*reinterpret_cast<const __half2 *>(&w[i]));
        f[2 * i] = bf16 ? __uint_as_float(w[i] << 16) : t.x;
        f[2 * i + 1] = bf16 ? __uint_as_float(w[i] & 0xFFFF0000u) : t.y;
    }
}

/* Two output values packed as the output's dtype (a in the low half), rounded to nearest even. */
__device__ __forceinline__ uint32_t pack_out2(float a, float b, bool bf16)
{
    return bf16 ? ptx_cvt_bf16x2_f32(a, b) : pack_half2(a, b);
}

/* The logit soft-cap in the exp2 domain: s = cap2 * tanh(s / cap2) (cap2 = softcap * log2 e),
 * applied to the scaled logit before the ALiBi bias; 0 turns it off. tanh(y) = sign(y) (1 - e) /
 * (1 + e) with e = 2^(-2 |y| log2 e): a few instructions (tanhf's code made a kernel spill),
 * and an absolute error of a few ulps of 1, so cap2 * tanh is off by ~cap2 * 2^-22 (the
 * approximate tanh instruction's 2^-11, times a cap of 30 or 50, would move weights by
 * percents). */
__device__ __forceinline__ float softcap_exp2(float s, float cap2, float inv_cap2)
{
    if (!(cap2 > 0.0f))
        return s;
    const float y = s * inv_cap2;
    const float e = ptx_exp2(-2.8853900817779268f * fabsf(y)); /* 2 log2(e) */
    return copysignf(cap2 * __fdividef(1.0f - e, 1.0f + e), y);
}

/* The running max as the exp2 offset, with an all-masked max of -inf standing for 0, so that
 * empty rows give weights of 0 rather than NaN. */
__device__ __forceinline__ float safe_max(float m) { return m == -INFINITY ? 0.0f : m; }

/* A block's item, split and the item's number of splits (see decode_block), from the block
 * index. TAIL: the kernel takes split tails (a.split_from > 0: the one-byte tensor-core
 * kernels, the only ones the planner gives them; fai_decode_plan_tail refuses the others, so
 * that their code stays as measured before the tails). Their epilogue calls it again (REREAD)
 * rather than keep the split in registers across the loop, reading the block index anew
 * (volatile) so that the compiler recomputes it there (kept live, it moved ptxas's register
 * allocation of the paged int8 kernel: 1.5 % slower, session 27). */
typedef struct block_split {
    int item, split, nsplits;
} block_split;

template <bool TAIL, bool REREAD>
__device__ __forceinline__ block_split block_split_of(const fai_decode_args &a)
{
    unsigned x = blockIdx.x, y = blockIdx.y;
    if (TAIL && REREAD) {
        asm volatile("mov.u32 %0, %%ctaid.x;" : "=r"(x));
        asm volatile("mov.u32 %0, %%ctaid.y;" : "=r"(y));
    }
    block_split s;
    s.item = (int)x;
    s.split = (int)y;
    s.nsplits = a.num_splits;
    if (TAIL && a.split_from > 0) { /* a split tail: one-dimensional grid */
        if (s.item < a.split_from) {
            s.nsplits = 1;
        } else {
            const unsigned r = x - (unsigned)a.split_from;
            s.item = a.split_from + (int)(r / (unsigned)a.num_splits);
            s.split = (int)(r % (unsigned)a.num_splits);
        }
    }
    return s;
}

/* The epilogue of a decode block. Shared memory holds, for each of `nwarps` warps and each
 * of `slots` head slots, an unnormalized accumulator (acc [nwarps][slots][D]), a running max
 * m [nwarps][slots] and a sum l [nwarps][slots], all in the exp2 domain. Heads h_first ..
 * h_first + nheads - 1 (slot j = head h_first + j) are merged over the warps and written:
 * as output (FP16 or BF16, q's dtype) and LSE (at query row qrow) when the sequence is not split, else as this
 * split's normalized partial output and log2-sum-exp for decode_merge_kernel (at sequence
 * b). Call after __syncthreads(). */
template <int D, bool TAIL>
__device__ __forceinline__ void combine_warps_and_store(const fai_decode_args &a, const float *smem, int nwarps,
                                                        int slots, int nheads, int b, int64_t qrow, int h_first,
                                                        int block_split_index)
{
    int split = block_split_index, nsplits = a.num_splits;
    if constexpr (TAIL) { /* recomputed (block_split_of), block_split_index unused */
        const block_split bs = block_split_of<true, true>(a);
        split = bs.split;
        nsplits = bs.nsplits;
    }
    constexpr int VEC = D / 8;
    const float *sm_acc = smem;
    const float *sm_m = smem + nwarps * slots * D;
    const float *sm_l = sm_m + nwarps * slots;
    for (int idx = threadIdx.x; idx < nheads * VEC; idx += blockDim.x) {
        const int j = idx / VEC, c = idx % VEC;
        float mx = -INFINITY;
        for (int w = 0; w < nwarps; w++)
            mx = fmaxf(mx, sm_m[w * slots + j]);
        float sum = 0.0f, o[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int w = 0; w < nwarps; w++) {
            const float sc = ptx_exp2(sm_m[w * slots + j] - safe_max(mx));
            sum += sm_l[w * slots + j] * sc;
            const float4 *src = reinterpret_cast<const float4 *>(sm_acc + (w * slots + j) * D + c * 8);
            const float4 x0 = src[0], x1 = src[1];
            o[0] += x0.x * sc; o[1] += x0.y * sc; o[2] += x0.z * sc; o[3] += x0.w * sc;
            o[4] += x1.x * sc; o[5] += x1.y * sc; o[6] += x1.z * sc; o[7] += x1.w * sc;
        }
        const int h = h_first + j;
        if (a.sinks && nsplits == 1) { /* the sink joins the denominator (split: in the merge) */
            const float sink2 = a.sinks[h] * FAI_LOG2E;
            const float mn = fmaxf(mx, sink2), c = ptx_exp2(mx - safe_max(mn));
            sum = sum * c + ptx_exp2(sink2 - mn);
#pragma unroll
            for (int e = 0; e < 8; e++)
                o[e] *= c;
            mx = mn;
        }
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        const float lse2 = sum > 0.0f ? mx + __log2f(sum) : -INFINITY;
        if (nsplits == 1) {
            uint16_t *op = (uint16_t *)a.o + qrow * a.o_token_stride + (int64_t)h * a.o_head_stride + c * 8;
            const bool bf = a.q_bf16 != 0; /* o has q's dtype */
            ptx_st_v4(op, make_uint4(pack_out2(o[0] * inv, o[1] * inv, bf), pack_out2(o[2] * inv, o[3] * inv, bf),
                                     pack_out2(o[4] * inv, o[5] * inv, bf), pack_out2(o[6] * inv, o[7] * inv, bf)));
            if (c == 0 && a.lse)
                a.lse[qrow * a.num_q_heads + h] = lse2 * FAI_LN2;
        } else {
            int64_t part = ((int64_t)split * a.batch + b) * a.num_q_heads + h;
            if constexpr (TAIL) { /* partials from row split_row0 on */
                const int64_t rows = (int64_t)a.batch * a.num_q_heads - a.split_row0;
                part = (int64_t)split * rows + (int64_t)b * a.num_q_heads + h - a.split_row0;
            }
            float *po = a.part_o + part * D + c * 8;
            ptx_st_v4_f32(po, o[0] * inv, o[1] * inv, o[2] * inv, o[3] * inv);
            ptx_st_v4_f32(po + 4, o[4] * inv, o[5] * inv, o[6] * inv, o[7] * inv);
            if (c == 0)
                a.part_lse[part] = lse2;
        }
    }
}

/* [lo, hi) of sequence b in a cumulative-offset array, clamped into [0, total]; a
 * decreasing pair reads as an empty sequence. */
__device__ __forceinline__ int2 cu_range(const int32_t *cu, int b, int total)
{
    const int lo = min(max(cu[b], 0), total);
    const int hi = max(lo, min(cu[b + 1], total));
    return make_int2(lo, hi);
}

/* What a decode block works on: grid x enumerates (sequence b, KV head, head block) items,
 * grid y the split; with a split tail (a.split_from > 0) the grid is one-dimensional: items
 * before split_from whole, then a.num_splits blocks for each later item (block_split_of). len is the sequence length (device-side guard: clamped to [0, capacity], or to
 * the cumulative offsets' bounds in varlen mode) and [kbeg, kend) the split's keys, whole
 * multiples of `granule`, trailing splits maybe empty. qrow is the query's row in q, o and
 * lse; k_off and v_off the element offsets of the sequence's first key; skip is set for a
 * varlen sequence that is not a decode row (the prefill kernel owns it). */
typedef struct decode_block {
    int b, kvh, hblk, split, len, kbeg, kend, skip;
    int seq; /* the sequence's index in the cache (b, or batch_offset + b in varlen mode) */
    int64_t qrow, k_off, v_off;
    const int32_t *pt; /* paged cache: this sequence's page-table row (k_off = v_off = 0) */
} decode_block;

/* Where key `key` of a sequence lives: page (0 for contiguous slots, whose sequence offset is
 * in k_off/v_off) and row within it. Page numbers are clamped into the pool. PAGED is a
 * compile-time flag: the page lookup is per key (or tile row) in the inner loops, and the
 * contiguous kernels without it ran up to 1.4x faster on quantized GQA caches (issue-bound
 * there), so each kernel is compiled both ways. */
typedef struct kv_pos {
    int64_t page;
    int row;
} kv_pos;

template <bool PAGED>
__device__ __forceinline__ kv_pos kv_locate(const fai_decode_args &a, const int32_t *pt, int key)
{
    kv_pos p;
    if (PAGED) {
        p.page = min(max(__ldg(pt + (key >> a.page_shift)), 0), a.num_pages - 1);
        p.row = key & ((1 << a.page_shift) - 1);
    } else {
        p.page = 0;
        p.row = key;
    }
    return p;
}

/* The page of a run of keys key0 .. key0 + n - 1 (n a power of two) when one page holds them
 * all (page_size >= n and key0 a multiple of n), else -1 (and for a run at or past kend):
 * such runs (a tile, a warp's step) look their page up once instead of once per key. The
 * tensor-core kernel looks it up a tile ahead of the tile's copies (the CUDA-core kernel in
 * the step itself: ahead measured slower there). */
__device__ __forceinline__ int64_t run_page(const fai_decode_args &a, const int32_t *pt, int key0, int n, int kend)
{
    if (key0 >= kend || key0 < 0 || (1 << a.page_shift) < n || (key0 & (n - 1)) != 0)
        return -1;
    return min(max(__ldg(pt + (key0 >> a.page_shift)), 0), a.num_pages - 1);
}

/* kv_locate for key0 + offset where `page` is run_page's answer for the run (>= 0). */
__device__ __forceinline__ kv_pos kv_in_page(const fai_decode_args &a, int64_t page, int key0, int offset)
{
    kv_pos p;
    p.page = page;
    p.row = (key0 & ((1 << a.page_shift) - 1)) + offset;
    return p;
}

/* The keys of each split of `keys` keys over `splits` splits: ceil(keys / splits), rounded up
 * to a multiple of `granule`. In 32-bit unsigned arithmetic (keys and splits are below 2^31,
 * so no sum wraps): in decode_block_of this lies between the length's arrival and the first
 * copy, where a 64-bit division was a call of some hundred instructions. */
__device__ __forceinline__ unsigned split_keys(int keys, int splits, int granule)
{
    const unsigned chunk = ((unsigned)keys + (unsigned)splits - 1u) / (unsigned)splits;
    return (chunk + (unsigned)granule - 1u) / (unsigned)granule * (unsigned)granule;
}

/* Paged cache: starts fetching the page-table entries of a block's first keys before its
 * sequence's length has come, so that the two reads overlap instead of taking one memory
 * latency each before the first K/V copy (the first keys depend on the length only through
 * the split's start: taken here at the planned length a.len_hint, exact for sequences of
 * that length; a wrong guess costs one wasted prefetch). Threads 0 and 1 fetch the two
 * 128-byte lines from the first key's entry on (32 entries each), inside the table row. */
template <bool TAIL>
__device__ __forceinline__ void prefetch_first_pages(const fai_decode_args &a, int seq, int split, int nsplits,
                                                     int granule)
{
    if (threadIdx.x >= 2 || a.window_left >= 0)
        return;
    const int64_t first = (int64_t)split * split_keys(a.len_hint, TAIL ? nsplits : a.num_splits, granule);
    const int64_t entry = (first >> a.page_shift) + 32 * threadIdx.x;
    if (a.capacity > 0 && entry <= ((int64_t)a.capacity - 1) >> a.page_shift)
        ptx_prefetch_l1(a.page_table + (int64_t)seq * a.page_table_stride + entry);
}

/* ONE_SPLIT_BRANCH: an unsplit sequence skips the split's division behind a uniform branch.
 * Taken by the 2-byte tensor-core kernels (with their Q through shared memory: batch 1 x 128
 * keys 1-2 % faster); the branch reshuffled ptxas's register allocation of the one-byte
 * kernels (+-1-2 % by shape), which keep the division, as the CUDA-core kernels do. TAIL:
 * the kernel takes split tails (block_split_of). */
template <bool ONE_SPLIT_BRANCH, bool TAIL>
__device__ __forceinline__ decode_block decode_block_of(const fai_decode_args &a, int granule)
{
    decode_block w;
    int item = blockIdx.x, nsplits = 0; /* nsplits: the item's splits, with TAIL (else a.num_splits) */
    if constexpr (TAIL) {
        const block_split bs = block_split_of<true, false>(a);
        item = bs.item;
        w.split = bs.split;
        nsplits = bs.nsplits;
    }
    w.hblk = item % a.head_blocks;
    item /= a.head_blocks;
    w.kvh = item % a.num_kv_heads;
    w.b = item / a.num_kv_heads;
    if constexpr (!TAIL) /* (in this order, as the kernels were measured before split tails) */
        w.split = blockIdx.y;
    int n;
    /* The sequence's index in cu_q / cu_k, seq_lens and the page table. */
    const int bg = a.cu_q ? a.batch_offset + w.b : w.b;
    w.seq = bg;
    if (a.cu_q) {
        const int2 qr = cu_range(a.cu_q, bg, a.total_q);
        w.skip = qr.y - qr.x != 1;
        w.qrow = qr.x;
    } else {
        w.skip = 0;
        w.qrow = w.b;
    }
    if (a.seq_lens) { /* a cache: fai_decode's, or a prefill call's over a kv_cache */
        if (a.page_table)
            prefetch_first_pages<TAIL>(a, bg, w.split, nsplits, granule);
        n = max(0, min(a.seq_lens[bg], a.capacity));
        w.k_off = w.v_off = a.page_table ? 0 : (int64_t)bg * a.kv_seq_stride;
    } else { /* packed K/V of a varlen batch */
        const int2 kr = cu_range(a.cu_k, bg, a.total_k);
        n = kr.y - kr.x;
        w.k_off = (int64_t)kr.x * a.kv_token_stride;
        w.v_off = (int64_t)kr.x * a.v_token_stride;
    }
    w.pt = a.page_table ? a.page_table + (int64_t)bg * a.page_table_stride : NULL;
    /* A sliding window: only keys n - 1 - window_left .. n - 1 are visible; the splits share
     * those out, so the keys outside are never read. */
    const int first = a.window_left >= 0 ? max(0, n - 1 - a.window_left) : 0;
    if constexpr (ONE_SPLIT_BRANCH) { /* (both forms as measured: ptxas's output moves with the order) */
        w.len = n;
        if ((TAIL ? nsplits : a.num_splits) == 1) { /* (no division between the length and the first copies) */
            w.kbeg = first;
            w.kend = n;
        } else {
            const unsigned rounded = split_keys(n - first, TAIL ? nsplits : a.num_splits, granule);
            w.kbeg = (int)min((int64_t)n, (int64_t)first + (int64_t)w.split * rounded);
            w.kend = (int)min((int64_t)n, (int64_t)w.kbeg + rounded);
        }
    } else {
        const unsigned rounded = split_keys(n - first, TAIL ? nsplits : a.num_splits, granule);
        w.len = n;
        w.kbeg = (int)min((int64_t)n, (int64_t)first + (int64_t)w.split * rounded);
        w.kend = (int)min((int64_t)n, (int64_t)w.kbeg + rounded);
    }
    return w;
}

/* The decode kernels' grid: items x splits, or with a split tail split_from whole items and
 * then num_splits blocks for each later one, in one dimension (decode_block_of). */
static inline dim3 fai_decode_grid(const fai_decode_args *args, const fai_decode_plan *plan)
{
    const int64_t items = (int64_t)args->batch * args->num_kv_heads * plan->head_blocks;
    if (plan->split_from > 0)
        return dim3((unsigned)(plan->split_from + (items - plan->split_from) * plan->num_splits));
    return dim3((unsigned)items, (unsigned)plan->num_splits);
}

/* Launches of the two decode kernels (decode.cu, decode_mma.cu). */
fai_status fai_decode_launch_simt(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                                  cudaStream_t stream);
fai_status fai_decode_launch_mma(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                                 cudaStream_t stream);

/* Every decode kernel takes the one argument struct. */
typedef void (*decode_kernel_fn)(const fai_decode_args);

/* Launches `kernel` (optionally as a programmatic dependent of the previous one) and
 * reports its own launch error as a status naming `fn` (the public call) and `what`;
 * cudaLaunchKernelEx returns this launch's error, where cudaGetLastError after <<<>>> could
 * also pick up an unrelated one. */
fai_status fai_decode_launch_kernel(const char *fn, const char *what, decode_kernel_fn kernel, dim3 grid, dim3 block,
                                    size_t smem, cudaStream_t stream, int dependent, const fai_decode_args *args);

#endif
