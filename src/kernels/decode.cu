/* Decoding attention on CUDA cores: one query token per sequence against its KV cache.
 *
 * Work split: a block serves one (sequence, KV head, group of up to HB query heads) item
 * and one split of that sequence's keys; so every K/V byte is read once per item and
 * serves all the query heads of its GQA group. Inside a block each warp walks the split in
 * steps of KS keys (interleaved with the other warps); LPK lanes share a key row, each
 * holding 8 dims (one 16-byte load), and a lane loads U keys of K and of V for the next
 * step before it computes the current one, so several 16-byte loads per lane are in flight.
 *
 * Softmax runs online in the exp2 domain (q is pre-multiplied by scale * log2 e): every
 * LPK-lane key group keeps its own running max m, sum l and accumulator; groups are merged
 * by shuffles, warps through shared memory, and splits by decode_merge_kernel using the
 * partial log-sum-exps, exactly like FlashAttention's split-KV. This file also holds the
 * merge kernel and the launcher that picks between this kernel and the tensor-core one
 * (decode_mma.cu). */
#include "../alibi.h"
#include "../error.h"
#include "decode_common.cuh"
#include "kv_dequant.cuh"

/* The U keys of one warp step for this lane: key0 + u * KPW (zeros past kend), and with an
 * int8 cache their K and V scales. kp/vp point at this lane's 8 values of key 0; strides in
 * bytes. */
template <int KT, int U, int KPW, bool PAGED>
__device__ __forceinline__ void load_step(typename kv_vec<KT>::type kr[U], typename kv_vec<KT>::type vr[U],
                                          float ks[U], float vs[U], const char *kp, const char *vp,
                                          const float *ksp, const float *vsp, const fai_decode_args &a,
                                          const int32_t *pt, int step0, int sub, int kend, bool has_dims)
{
    constexpr int EB = FAI_KV_BYTES(KT);
    /* paged: the step's KPW * U keys share a page when aligned (one lookup; looking it up a
     * step ahead measured slower on short sequences) */
    const int64_t page = PAGED ? run_page(a, pt, step0, KPW * U, kend) : -1;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int key = step0 + sub + u * KPW;
        if (has_dims && key < kend) {
            const kv_pos p = PAGED && page >= 0 ? kv_in_page(a, page, step0, sub + u * KPW)
                                                : kv_locate<PAGED>(a, pt, key); /* (paged: the page) */
            kr[u] = kv_load<KT>(kp + (p.page * a.kv_seq_stride + p.row * a.kv_token_stride) * EB);
            vr[u] = kv_load<KT>(vp + (p.page * a.kv_seq_stride + p.row * a.v_token_stride) * EB);
            if (KT == FAI_KV_INT8) {
                const int64_t so = p.page * a.scale_seq_stride + p.row * a.scale_token_stride;
                if (a.scale_pairs) { /* one word: BF16 K scale low, V high */
                    const uint32_t w = __float_as_uint(ptx_ld_stream_f32(ksp + so));
                    ks[u] = scale_pair_k(w);
                    vs[u] = scale_pair_v(w);
                } else {
                    ks[u] = ptx_ld_stream_f32(ksp + so);
                    vs[u] = ptx_ld_stream_f32(vsp + so);
                }
            }
        } else {
            kr[u] = kv_zero<KT>();
            vr[u] = kv_zero<KT>();
            if (KT == FAI_KV_INT8)
                ks[u] = vs[u] = 0.0f;
        }
    }
}

/* KT: the cache's element type (FAI_KV_FP16 ... kv_dequant.cuh). FP16 and BF16 caches come
 * with queries of their own dtype, the one-byte ones with FP16 or BF16 queries: q and o are
 * read and written once per block, so their dtype is a run-time flag (a.q_bf16). ptxas holds
 * the head dim 256, 2-head FP8 instantiations at 128 registers (two blocks per SM) and spills
 * a few bytes there; a minimum of one block lets them take what they need (0: no constraint). */
#define DECODE_MIN_BLOCKS(D, HB, KT) ((D) == 256 && (HB) == 2 && FAI_KV_BYTES(KT) == 1 ? 1 : 0)
template <int D, int HB, int KT, bool PAGED>
__global__ void __launch_bounds__(FAI_DECODE_MAX_WARPS * 32, DECODE_MIN_BLOCKS(D, HB, KT))
    decode_kernel(const __grid_constant__ fai_decode_args a)
{
    typedef typename kv_vec<KT>::type vec_t;
    constexpr int EB = FAI_KV_BYTES(KT); /* bytes per element */
    constexpr int LPK = FAI_DECODE_LANES_PER_KEY(D);
    constexpr int KPW = 32 / LPK;
    constexpr int U = FAI_DECODE_UNROLL_KV(HB, EB);
    constexpr int KS = FAI_DECODE_KEYS_PER_STEP_KV(D, HB, EB);
    constexpr int VEC = D / 8; /* 8-value vectors per row */

    extern __shared__ float smem[]; /* acc [W][HB][D], then m [W][HB], then l [W][HB] */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const int tx = lane % LPK, sub = lane / LPK;
    const bool has_dims = tx < VEC;

    const decode_block blk = decode_block_of<false, false>(a, KS); /* (no split tails) */
    if (blk.skip)
        return;
    const int b = blk.b, kvh = blk.kvh, hblk = blk.hblk, split = blk.split;
    const int len = blk.len, kbeg = blk.kbeg, kend = blk.kend;

    const int h0 = kvh * a.group + hblk * HB; /* first query head of this block */
    const int nh = min(HB, a.group - hblk * HB);

    float q[HB][8], slope[HB];
#pragma unroll
    for (int hh = 0; hh < HB; hh++) {
#pragma unroll
        for (int e = 0; e < 8; e++)
            q[hh][e] = 0.0f;
        slope[hh] = 0.0f;
        if (hh < nh) {
            if (has_dims) {
                const uint16_t *qp = (const uint16_t *)a.q + blk.qrow * a.q_token_stride + (int64_t)(h0 + hh) * a.q_head_stride;
                /* (an FP16 or BF16 cache comes with q of its dtype: known at compile time) */
                const bool q_bf16 = KT == FAI_KV_BF16 || (KT != FAI_KV_FP16 && a.q_bf16 != 0);
                q8_to_float(ptx_ld_nc_v4(qp + tx * 8), q_bf16, q[hh]);
#pragma unroll
                for (int e = 0; e < 8; e++)
                    q[hh][e] *= a.scale_log2;
            }
            if (a.alibi)
                slope[hh] = FAI_LOG2E * (a.alibi_slopes ? a.alibi_slopes[h0 + hh]
                                                    : fai_alibi_standard_slope(h0 + hh, a.num_q_heads));
        }
    }

    const char *kp = (const char *)a.k + (blk.k_off + kvh * a.kv_head_stride + tx * 8) * EB;
    const char *vp = (const char *)a.v + (blk.v_off + kvh * a.v_head_stride + tx * 8) * EB;
    /* int8: the scales of this sequence and KV head (unused otherwise; paged: of the pool) */
    const int64_t s_off = (blk.pt ? 0 : (int64_t)blk.seq * a.scale_seq_stride) + (int64_t)kvh * a.scale_head_stride;
    const float *ksp = a.k_scale + s_off, *vsp = a.v_scale + s_off;

    float m[HB], l[HB], acc[HB][8];
#pragma unroll
    for (int hh = 0; hh < HB; hh++) {
        m[hh] = -INFINITY;
        l[hh] = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; e++)
            acc[hh][e] = 0.0f;
    }

    vec_t kc[U], vc[U];
    float ksc[U], vsc[U];
    int key0 = kbeg + warp * KS;
    load_step<KT, U, KPW, PAGED>(kc, vc, ksc, vsc, kp, vp, ksp, vsp, a, blk.pt, key0, sub, kend, has_dims);
    for (; key0 < kend; key0 += nwarps * KS) {
        vec_t kn[U], vn[U];
        float ksn[U], vsn[U];
        load_step<KT, U, KPW, PAGED>(kn, vn, ksn, vsn, kp, vp, ksp, vsp, a, blk.pt, key0 + nwarps * KS, sub, kend,
                                     has_dims);

        /* Scores of this lane's U keys: partial dot products, summed over the LPK lanes. */
        float s[HB][U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float kf[8];
            kv_to_float<KT>(kc[u], kf);
#pragma unroll
            for (int hh = 0; hh < HB; hh++) {
                float dot = 0.0f;
#pragma unroll
                for (int e = 0; e < 8; e++)
                    dot = fmaf(q[hh][e], kf[e], dot);
                s[hh][u] = dot;
            }
        }
#pragma unroll
        for (int off = LPK / 2; off >= 1; off /= 2)
#pragma unroll
            for (int hh = 0; hh < HB; hh++)
#pragma unroll
                for (int u = 0; u < U; u++)
                    s[hh][u] += __shfl_xor_sync(0xffffffffu, s[hh][u], off);
        if (KT == FAI_KV_INT8) /* the dot products were of codes: scale them once per key */
#pragma unroll
            for (int hh = 0; hh < HB; hh++)
#pragma unroll
                for (int u = 0; u < U; u++)
                    s[hh][u] *= ksc[u];

        if (a.softcap2 > 0.0f) /* one uniform branch per step, not one per logit */
#pragma unroll
            for (int hh = 0; hh < HB; hh++)
#pragma unroll
                for (int u = 0; u < U; u++)
                    s[hh][u] = softcap_exp2(s[hh][u], a.softcap2, a.inv_softcap2);
        /* Bias, mask, online softmax: s becomes the weight p of each key. */
#pragma unroll
        for (int hh = 0; hh < HB; hh++) {
            float mx = -INFINITY;
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int key = key0 + u * KPW + sub;
                s[hh][u] = key < kend ? s[hh][u] - slope[hh] * (float)(len - 1 - key) : -INFINITY;
                mx = fmaxf(mx, s[hh][u]);
            }
            const float m_new = fmaxf(m[hh], mx);
            const float alpha = ptx_exp2(m[hh] - safe_max(m_new));
            float sum = 0.0f;
#pragma unroll
            for (int u = 0; u < U; u++) {
                s[hh][u] = ptx_exp2(s[hh][u] - safe_max(m_new));
                sum += s[hh][u];
            }
            l[hh] = l[hh] * alpha + sum;
            m[hh] = m_new;
#pragma unroll
            for (int e = 0; e < 8; e++)
                acc[hh][e] *= alpha;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            float vf[8];
            kv_to_float<KT>(vc[u], vf);
#pragma unroll
            for (int hh = 0; hh < HB; hh++) {
                const float p = KT == FAI_KV_INT8 ? s[hh][u] * vsc[u] : s[hh][u]; /* V's scale with the weight */
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[hh][e] = fmaf(p, vf[e], acc[hh][e]);
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            kc[u] = kn[u];
            vc[u] = vn[u];
            ksc[u] = ksn[u];
            vsc[u] = vsn[u];
        }
    }

    ptx_griddep_launch_dependents(); /* only the epilogue is left: let the merge kernel launch */
    /* Merge the key groups of the warp (lanes LPK apart), then the warps via shared memory. */
#pragma unroll
    for (int off = LPK; off < 32; off *= 2)
#pragma unroll
        for (int hh = 0; hh < HB; hh++) {
            const float mo = __shfl_xor_sync(0xffffffffu, m[hh], off);
            const float lo = __shfl_xor_sync(0xffffffffu, l[hh], off);
            const float mn = fmaxf(m[hh], mo);
            const float a1 = ptx_exp2(m[hh] - safe_max(mn)), a2 = ptx_exp2(mo - safe_max(mn));
            l[hh] = l[hh] * a1 + lo * a2;
            m[hh] = mn;
#pragma unroll
            for (int e = 0; e < 8; e++)
                acc[hh][e] = acc[hh][e] * a1 + __shfl_xor_sync(0xffffffffu, acc[hh][e], off) * a2;
        }
    float *sm_acc = smem;
    float *sm_m = smem + nwarps * HB * D;
    float *sm_l = sm_m + nwarps * HB;
    if (sub == 0 && has_dims) {
#pragma unroll
        for (int hh = 0; hh < HB; hh++) {
            float4 *dst = reinterpret_cast<float4 *>(sm_acc + (warp * HB + hh) * D + tx * 8);
            dst[0] = make_float4(acc[hh][0], acc[hh][1], acc[hh][2], acc[hh][3]);
            dst[1] = make_float4(acc[hh][4], acc[hh][5], acc[hh][6], acc[hh][7]);
            if (tx == 0) {
                sm_m[warp * HB + hh] = m[hh];
                sm_l[warp * HB + hh] = l[hh];
            }
        }
    }
    __syncthreads();
    combine_warps_and_store<D, false>(a, smem, nwarps, HB, max(nh, 0), b, blk.qrow, h0, split);
}

/* Combines the splits of one (sequence, query head) row by their log-sum-exps:
 * O = sum_s 2^(lse_s - lse) O_s with lse = log2 sum_s 2^lse_s. The eight warps of the block
 * take every eighth split, so that many partial rows are read at once (one thread looping
 * over the splits would wait for each load in turn), then add up through shared memory. */
#define MERGE_THREADS 256
#define MERGE_GROUPS (MERGE_THREADS / 32)
#define MERGE_COLS 2 /* float4 columns a lane holds: head dims up to 256 */
#define MERGE_PRE 4  /* partial rows a group loads before the weights (MERGE_PRE x MERGE_GROUPS = 32 splits) */
static_assert(MERGE_COLS * 32 * 4 >= 256, "a warp's lanes cover the widest head dim's row (256 values)");
__global__ void __launch_bounds__(MERGE_THREADS)
    decode_merge_kernel(const __grid_constant__ fai_decode_args a)
{
    const int head_dim = a.head_dim;
    __shared__ float weight[FAI_DECODE_MAX_SPLITS];
    __shared__ float4 part[MERGE_GROUPS][256 / 4];
    ptx_griddep_wait(); /* the partials of the decode kernel */
    const int64_t rows = (int64_t)a.batch * a.num_q_heads - a.split_row0; /* rows with partials */
    const int64_t row = a.split_row0 + (int64_t)blockIdx.x, prow = blockIdx.x; /* prow: in the partials */
    const int b = (int)(row / a.num_q_heads), h = (int)(row % a.num_q_heads);
    int64_t qrow = b; /* the query's row in o and lse */
    if (a.cu_q) {
        const int2 qr = cu_range(a.cu_q, a.batch_offset + b, a.total_q);
        if (qr.y - qr.x != 1)
            return; /* not a decode row: no partials were written for it */
        qrow = qr.x;
    }
    const int splits = a.num_splits, lane = threadIdx.x & 31, group = threadIdx.x >> 5;
    /* The first MERGE_PRE partial rows of each group are loaded with the log-sum-exps, not
     * after them: they do not depend on the weights, and one memory latency is most of this
     * kernel's time. */
    float4 pre[MERGE_COLS][MERGE_PRE];
    const float4 *po = reinterpret_cast<const float4 *>(a.part_o);
    const int64_t split_stride = rows * (head_dim / 4); /* float4s between two splits' rows */
#pragma unroll
    for (int ci = 0; ci < MERGE_COLS; ci++)
#pragma unroll
        for (int i = 0; i < MERGE_PRE; i++) {
            const int c = lane + 32 * ci, s = group + i * MERGE_GROUPS;
            pre[ci][i] = c < head_dim / 4 && s < splits ? po[s * split_stride + prow * (head_dim / 4) + c]
                                                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    for (int s = threadIdx.x; s < splits; s += blockDim.x)
        weight[s] = a.part_lse[s * rows + prow];
    __syncthreads();
    float mx = -INFINITY;
    for (int s = 0; s < splits; s++)
        mx = fmaxf(mx, weight[s]);
    __syncthreads();
    for (int s = threadIdx.x; s < splits; s += blockDim.x)
        weight[s] = ptx_exp2(weight[s] - safe_max(mx));
    __syncthreads();
    float sum = 0.0f;
    for (int s = 0; s < splits; s++)
        sum += weight[s];
    float sink_scale = 1.0f; /* the sink joins the denominator once, here */
    if (a.sinks) {
        const float sink2 = a.sinks[h] * FAI_LOG2E, mn = fmaxf(mx, sink2);
        sink_scale = ptx_exp2(mx - safe_max(mn));
        sum = sum * sink_scale + ptx_exp2(sink2 - mn);
        mx = mn;
    }
    const float inv = sum > 0.0f ? sink_scale / sum : 0.0f;

#pragma unroll
    for (int ci = 0; ci < MERGE_COLS; ci++) {
        const int c = lane + 32 * ci;
        if (c >= head_dim / 4)
            break;
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int i = 0; i < MERGE_PRE; i++) {
            const int s = group + i * MERGE_GROUPS;
            const float w = s < splits ? weight[s] : 0.0f;
            const float4 x = pre[ci][i];
            o.x += w * x.x; o.y += w * x.y; o.z += w * x.z; o.w += w * x.w;
        }
#pragma unroll 4
        for (int s = group + MERGE_PRE * MERGE_GROUPS; s < splits; s += MERGE_GROUPS) {
            const float w = weight[s];
            const float4 x = po[s * split_stride + prow * (head_dim / 4) + c];
            o.x += w * x.x; o.y += w * x.y; o.z += w * x.z; o.w += w * x.w;
        }
        part[group][c] = o;
    }
    __syncthreads();
    uint16_t *op = (uint16_t *)a.o + qrow * a.o_token_stride + (int64_t)h * a.o_head_stride; /* FP16 or BF16 */
    const bool bf = a.q_bf16 != 0;
    for (int c = threadIdx.x; c < head_dim / 4; c += blockDim.x) {
        float4 o = part[0][c];
        for (int g = 1; g < MERGE_GROUPS; g++) {
            const float4 x = part[g][c];
            o.x += x.x; o.y += x.y; o.z += x.z; o.w += x.w;
        }
        const uint2 packed = make_uint2(pack_out2(o.x * inv, o.y * inv, bf), pack_out2(o.z * inv, o.w * inv, bf));
        *reinterpret_cast<uint2 *>(op + c * 4) = packed;
    }
    if (threadIdx.x == 0 && a.lse)
        a.lse[qrow * a.num_q_heads + h] = sum > 0.0f ? (mx + __log2f(sum)) * FAI_LN2 : -INFINITY;
}


template <int D, int KT, bool PAGED>
static decode_kernel_fn pick_heads(int heads_per_block)
{
    switch (heads_per_block) {
    case 1: return decode_kernel<D, 1, KT, PAGED>;
    case 2: return decode_kernel<D, 2, KT, PAGED>;
    case 4: return decode_kernel<D, 4, KT, PAGED>;
    case 8: return decode_kernel<D, 8, KT, PAGED>;
    }
    return NULL;
}

template <int KT, bool PAGED>
static decode_kernel_fn pick_dim(int head_dim, int heads_per_block)
{
    switch (head_dim) {
    case 64: return pick_heads<64, KT, PAGED>(heads_per_block);
    case 96: return pick_heads<96, KT, PAGED>(heads_per_block);
    case 128: return pick_heads<128, KT, PAGED>(heads_per_block);
    case 256: return pick_heads<256, KT, PAGED>(heads_per_block);
    }
    return NULL;
}

template <bool PAGED>
static decode_kernel_fn pick_kernel(int kv_dtype, int head_dim, int heads_per_block)
{
    switch (kv_dtype) {
    case FAI_DTYPE_FP16: return pick_dim<FAI_KV_FP16, PAGED>(head_dim, heads_per_block);
    case FAI_DTYPE_BF16: return pick_dim<FAI_KV_BF16, PAGED>(head_dim, heads_per_block);
    case FAI_DTYPE_INT8: return pick_dim<FAI_KV_INT8, PAGED>(head_dim, heads_per_block);
    case FAI_DTYPE_FP8_E4M3: return pick_dim<FAI_KV_E4M3, PAGED>(head_dim, heads_per_block);
    case FAI_DTYPE_FP8_E5M2: return pick_dim<FAI_KV_E5M2, PAGED>(head_dim, heads_per_block);
    }
    return NULL;
}

fai_status fai_decode_launch_kernel(const char *fn, const char *what, decode_kernel_fn kernel, dim3 grid, dim3 block,
                                    size_t smem, cudaStream_t stream, int dependent, const fai_decode_args *args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr = {};
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = &attr;
    cfg.numAttrs = dependent ? 1 : 0;
    const cudaError_t err = cudaLaunchKernelEx(&cfg, kernel, *args);
    if (err == cudaSuccess)
        return FAI_SUCCESS;
    return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err, "%s: launching the %s failed", fn, what);
}

fai_status fai_decode_launch_simt(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                                  cudaStream_t stream)
{
    const decode_kernel_fn kernel = args->page_table
                                        ? pick_kernel<true>(args->kv_dtype, plan->head_dim, plan->heads_per_block)
                                        : pick_kernel<false>(args->kv_dtype, plan->head_dim, plan->heads_per_block);
    if (!kernel || plan->split_from > 0) /* (no split tails here: fai_decode_plan_tail) */
        return fai_error(FAI_ERROR_INTERNAL,
                         "%s: no CUDA-core kernel for cache dtype %d, head_dim %d, %d heads per block, split tail %d", fn,
                         (int)args->kv_dtype, (int)plan->head_dim, (int)plan->heads_per_block, (int)plan->split_from);
    return fai_decode_launch_kernel(fn, "decode kernel", kernel, fai_decode_grid(args, plan),
                                    dim3(plan->warps_per_block * 32),
                                    plan->smem_bytes, stream, 0, args);
}

extern "C" fai_status fai_decode_launch(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                                        cudaStream_t stream)
{
    if (plan->kernel == FAI_DECODE_MMA)
        FAI_TRY(fai_decode_launch_mma(fn, args, plan, stream));
    else
        FAI_TRY(fai_decode_launch_simt(fn, args, plan, stream));
    if (plan->num_splits <= 1)
        return FAI_SUCCESS;
    /* As a programmatic dependent on sm_90+, the merge kernel's launch overlaps the decode
     * kernel's tail instead of waiting for it to drain; only when the merge kernel that runs
     * was compiled for sm_90+ (from PTX 9.0+), so that its ptx_griddep_wait() does wait: code
     * JIT-compiled from compute_80 PTX launches the plain way. */
    struct cudaFuncAttributes fattr;
    int dependent = 0;
    if (plan->dependent_launch) {
        if (cudaFuncGetAttributes(&fattr, decode_merge_kernel) == cudaSuccess)
            dependent = fattr.ptxVersion >= 90;
        else
            cudaGetLastError(); /* (the plain launch then; its own error, if any, is reported) */
    }
    return fai_decode_launch_kernel(fn, "split-KV merge kernel", decode_merge_kernel,
                                    dim3((unsigned)(args->batch * args->num_q_heads - plan->split_row0)),
                                    dim3(MERGE_THREADS), 0, stream,
                                    dependent, args);
}
