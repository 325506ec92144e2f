/* Public varlen (prefill / hybrid) entry points: validate, plan which kernels run, launch.
 *
 * A call launches up to two kernels on the caller's stream: the tensor-core prefill kernel
 * for sequences with seq_q > 1, and the decoding kernels (decode.cu, decode_mma.cu, in their
 * varlen mode) for sequences with seq_q == 1, so that decode rows of a hybrid batch move at
 * memory speed instead of filling 1/128 of a tensor-core tile. With a host copy of
 * cu_seqlens_q the plan launches only the kernels that have work; without one both run
 * and each skips the other's sequences. */
#include <limits.h>

#include "check.h"
#include "decode_args.h"
#include "error.h"
#include "prefill_args.h"

fai_prefill_params fai_prefill_params_default(void)
{
    fai_prefill_params p = {0};
    p.attn = fai_attention_default();
    p.q.dtype = FAI_DTYPE_FP16;
    p.k.dtype = FAI_DTYPE_FP16;
    p.v.dtype = FAI_DTYPE_FP16;
    p.o.dtype = FAI_DTYPE_FP16;
    return p;
}

static fai_status check_cu(const char *fn, const char *name, const int32_t *cu)
{
    if (!cu)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: %s is NULL", fn, name);
    if ((uintptr_t)cu % sizeof(int32_t) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: %s (%p) is not 4-byte aligned", fn, name,
                         (const void *)cu);
    return FAI_SUCCESS;
}

/* Every check that needs no device. */
static fai_status validate(const char *fn, const fai_prefill_params *p)
{
    if (!p)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: params is NULL", fn);
    const fai_attention *a = &p->attn;
    FAI_TRY(fai_check_attention(fn, a));
    if (p->batch < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: batch (%d) is negative", fn, (int)p->batch);
    if (p->total_q < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: total_q (%d) is negative", fn, (int)p->total_q);
    if (p->total_k < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: total_k (%d) is negative", fn, (int)p->total_k);
    if (p->max_seq_k < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: max_seq_k (%d) is negative", fn, (int)p->max_seq_k);
    if (p->batch > 0 && p->max_seq_q < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: max_seq_q (%d) must be >= 1 when batch (%d) > 0", fn,
                         (int)p->max_seq_q, (int)p->batch);
    FAI_TRY(fai_check_tensor(fn, "q", &p->q, p->total_q, a->num_q_heads, a->head_dim, 0));
    FAI_TRY(fai_check_tensor(fn, "k", &p->k, p->total_k, a->num_kv_heads, a->head_dim, 0));
    FAI_TRY(fai_check_tensor(fn, "v", &p->v, p->total_k, a->num_kv_heads, a->head_dim, 0));
    FAI_TRY(fai_check_tensor(fn, "o", &p->o, p->total_q, a->num_q_heads, a->head_dim, 1));
    if (p->lse && ((uintptr_t)p->lse % sizeof(float)) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: lse (%p) is not 4-byte aligned", fn, (void *)p->lse);
    if (p->batch == 0)
        return FAI_SUCCESS;
    FAI_TRY(check_cu(fn, "cu_seqlens_q", p->cu_seqlens_q));
    FAI_TRY(check_cu(fn, "cu_seqlens_k", p->cu_seqlens_k));
    const int32_t *cu = p->cu_seqlens_q_host;
    if (cu) {
        if (cu[0] < 0)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cu_seqlens_q_host[0] (%d) is negative", fn, (int)cu[0]);
        for (int32_t b = 0; b < p->batch; b++)
            if (cu[b + 1] < cu[b])
                return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cu_seqlens_q_host[%d] (%d) is less than "
                                 "cu_seqlens_q_host[%d] (%d)", fn, (int)b + 1, (int)cu[b + 1], (int)b, (int)cu[b]);
        if (cu[p->batch] > p->total_q)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cu_seqlens_q_host[%d] (%d) is more than total_q (%d)",
                             fn, (int)p->batch, (int)cu[p->batch], (int)p->total_q);
    }
    return FAI_SUCCESS;
}

/* What a call launches: each kernel's grid spans a range of the batch (the whole batch
 * without host lengths; with them, from the first to the last sequence of its kind, so a
 * batch that keeps its decode rows together launches no idle blocks). */
typedef struct prefill_plan {
    int run_prefill, run_decode;
    int32_t prefill_first, prefill_count, m_tiles, mt;
    int32_t decode_first, decode_count;
    fai_decode_plan decode;
} prefill_plan;

static fai_status plan_for(const char *fn, const fai_prefill_params *p, prefill_plan *plan)
{
    const prefill_plan empty = {0};
    *plan = empty;
    FAI_TRY(validate(fn, p));
    if (p->batch == 0 || p->total_q == 0)
        return FAI_SUCCESS; /* no query row: nothing to write, no device needed */
    int32_t p_first = 0, p_last = p->batch - 1, d_first = 0, d_last = p->batch - 1;
    int32_t decode_rows = p->batch, max_q = p->max_seq_q;
    if (p->cu_seqlens_q_host) {
        p_first = d_first = p->batch;
        p_last = d_last = -1;
        decode_rows = 0;
        max_q = 1;
        for (int32_t b = 0; b < p->batch; b++) {
            const int32_t n = p->cu_seqlens_q_host[b + 1] - p->cu_seqlens_q_host[b];
            if (n > 1) {
                p_first = p_first < b ? p_first : b;
                p_last = b;
                max_q = max_q > n ? max_q : n;
            } else if (n == 1) {
                d_first = d_first < b ? d_first : b;
                d_last = b;
                decode_rows++;
            }
        }
    }
    fai_device_info dev;
    FAI_TRY(fai_current_device(fn, &dev));
    const fai_attention *a = &p->attn;
    if (p_last >= p_first) {
        const int64_t per_tile = (int64_t)(p_last - p_first + 1) * a->num_q_heads;
        /* Too few 128-row blocks to fill the GPU once: 64-row blocks (FAI_PREFILL_SMALL_GRID;
         * measured on H100: batch 1 x seq 128 takes 11.0 us instead of 14.2; from 256 blocks
         * on, 128 rows win). */
        int32_t mt = FAI_PREFILL_MT(a->head_dim);
        if (FAI_PREFILL_SMALL_GRID && mt > 1 && per_tile * ((max_q + FAI_PREFILL_BM_OF(mt) - 1) / FAI_PREFILL_BM_OF(mt)) < dev.num_sms)
            mt = 1;
        int64_t tiles = ((int64_t)max_q + FAI_PREFILL_BM_OF(mt) - 1) / FAI_PREFILL_BM_OF(mt);
        if (per_tile > INT_MAX)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: batch (%d) x num_q_heads (%d) exceeds the grid limit",
                             fn, (int)p->batch, (int)a->num_q_heads);
        if (tiles * per_tile > INT_MAX) /* fewer blocks, each looping over more tiles */
            tiles = INT_MAX / per_tile;
        plan->run_prefill = 1;
        plan->prefill_first = p_first;
        plan->prefill_count = p_last - p_first + 1;
        plan->m_tiles = (int32_t)tiles;
        plan->mt = mt;
    }
    if (decode_rows > 0) {
        /* The kernel, split and warps suit the decode rows there are; the grid spans their
         * range (other sequences' blocks exit at once), so plan it again for the range with
         * those choices. */
        const int32_t max_k = p->max_seq_k > 0 ? p->max_seq_k : p->total_k;
        const int32_t count = d_last - d_first + 1;
        fai_decode_plan rows;
        FAI_TRY(fai_decode_make_plan(fn, decode_rows, a->num_q_heads, a->num_kv_heads, a->head_dim, max_k, dev,
                                     FAI_DECODE_AUTO, 0, 0, 0, &rows));
        FAI_TRY(fai_decode_make_plan(fn, count, a->num_q_heads, a->num_kv_heads, a->head_dim, max_k, dev,
                                     rows.kernel, rows.num_splits, rows.warps_per_block,
                                     rows.kernel == FAI_DECODE_MMA ? rows.stages : 0, &plan->decode));
        plan->run_decode = 1;
        plan->decode_first = d_first;
        plan->decode_count = count;
    }
    return FAI_SUCCESS;
}

fai_status fai_prefill_workspace_size(const fai_prefill_params *params, size_t *bytes)
{
    static const char fn[] = "fai_prefill_workspace_size";
    fai_error_clear();
    if (!bytes)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: bytes is NULL", fn);
    *bytes = 0;
    prefill_plan plan;
    FAI_TRY(plan_for(fn, params, &plan));
    *bytes = plan.run_decode ? plan.decode.workspace_bytes : 0;
    return FAI_SUCCESS;
}

static fai_status check_workspace(const char *fn, const fai_decode_plan *plan, const void *workspace,
                                  size_t workspace_bytes)
{
    if (plan->workspace_bytes > 0) {
        if (!workspace || workspace_bytes < plan->workspace_bytes)
            return fai_error(FAI_ERROR_BAD_PARAM_WORKSPACE,
                             "%s: workspace (%p, %zu bytes) is smaller than the %zu bytes needed "
                             "(see fai_prefill_workspace_size)",
                             fn, workspace, workspace_bytes, plan->workspace_bytes);
        if ((uintptr_t)workspace % 16 != 0)
            return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: workspace (%p) is not 16-byte aligned", fn,
                             workspace);
    }
    return FAI_SUCCESS;
}

/* The decode rows (seq_q == 1) through the decode kernels' varlen mode. */
static fai_status launch_decode_rows(const fai_prefill_params *p, const prefill_plan *pp, void *workspace,
                                     cudaStream_t stream)
{
    const fai_decode_plan *plan = &pp->decode;
    const fai_attention *a = &p->attn;
    fai_decode_args args = {0};
    args.q = p->q.data;
    args.o = p->o.data;
    args.k = p->k.data;
    args.v = p->v.data;
    args.cu_q = p->cu_seqlens_q;
    args.cu_k = p->cu_seqlens_k;
    args.total_q = p->total_q;
    args.total_k = p->total_k;
    args.alibi_slopes = a->alibi ? a->alibi_slopes : NULL;
    args.lse = p->lse;
    if (plan->num_splits > 1) {
        args.part_o = (float *)workspace;
        args.part_lse = (float *)((char *)workspace + fai_decode_part_lse_offset(plan, pp->decode_count, a->num_q_heads));
    }
    args.q_token_stride = p->q.token_stride;
    args.q_head_stride = p->q.head_stride;
    args.o_token_stride = p->o.token_stride;
    args.o_head_stride = p->o.head_stride;
    args.kv_token_stride = p->k.token_stride;
    args.kv_head_stride = p->k.head_stride;
    args.v_token_stride = p->v.token_stride;
    args.v_head_stride = p->v.head_stride;
    args.head_dim = a->head_dim;
    args.batch = pp->decode_count;
    args.batch_offset = pp->decode_first;
    args.num_q_heads = a->num_q_heads;
    args.num_kv_heads = a->num_kv_heads;
    args.group = a->num_q_heads / a->num_kv_heads;
    args.head_blocks = plan->head_blocks;
    args.num_splits = plan->num_splits;
    args.alibi = a->alibi != 0;
    args.scale_log2 = a->softmax_scale * 1.4426950408889634f;
    return fai_decode_launch(&args, plan, stream);
}

fai_status fai_prefill(const fai_prefill_params *params, void *workspace, size_t workspace_bytes,
                       cudaStream_t stream)
{
    static const char fn[] = "fai_prefill";
    fai_error_clear();
    prefill_plan plan;
    FAI_TRY(plan_for(fn, params, &plan));
    const fai_prefill_params *p = params;
    const fai_attention *a = &p->attn;
    if (plan.run_decode) /* before anything launches: a failed call launches nothing */
        FAI_TRY(check_workspace(fn, &plan.decode, workspace, workspace_bytes));
    if (plan.run_prefill) {
        fai_prefill_args args = {0};
        args.q = p->q.data;
        args.k = p->k.data;
        args.v = p->v.data;
        args.o = p->o.data;
        args.cu_q = p->cu_seqlens_q;
        args.cu_k = p->cu_seqlens_k;
        args.alibi_slopes = a->alibi ? a->alibi_slopes : NULL;
        args.lse = p->lse;
        args.q_token_stride = p->q.token_stride;
        args.q_head_stride = p->q.head_stride;
        args.k_token_stride = p->k.token_stride;
        args.k_head_stride = p->k.head_stride;
        args.v_token_stride = p->v.token_stride;
        args.v_head_stride = p->v.head_stride;
        args.o_token_stride = p->o.token_stride;
        args.o_head_stride = p->o.head_stride;
        args.total_q = p->total_q;
        args.total_k = p->total_k;
        args.batch = plan.prefill_count;
        args.batch_offset = plan.prefill_first;
        args.num_q_heads = a->num_q_heads;
        args.num_kv_heads = a->num_kv_heads;
        args.group = a->num_q_heads / a->num_kv_heads;
        args.head_dim = a->head_dim;
        args.causal = p->causal != 0;
        args.alibi = a->alibi != 0;
        args.skip_decode_rows = plan.run_decode;
        args.m_tiles = plan.m_tiles;
        args.mt = plan.mt;
        args.scale_log2 = a->softmax_scale * 1.4426950408889634f;
        FAI_TRY(fai_prefill_launch(&args, stream));
    }
    if (plan.run_decode)
        FAI_TRY(launch_decode_rows(p, &plan, workspace, stream));
    return FAI_SUCCESS;
}
