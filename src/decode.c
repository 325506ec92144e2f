/* Public decode entry points: validate, plan, launch. */
#include <math.h>

#include "check.h"
#include "decode_args.h"
#include "error.h"

fai_attention fai_attention_default(void)
{
    fai_attention a = {0};
    a.num_q_heads = 32;
    a.num_kv_heads = 32;
    a.head_dim = 128;
    a.softmax_scale = 0.08838834764831845f; /* 1/sqrt(128) */
    return a;
}

fai_decode_params fai_decode_params_default(void)
{
    fai_decode_params p = {0};
    p.attn = fai_attention_default();
    p.q.dtype = FAI_DTYPE_FP16;
    p.o.dtype = FAI_DTYPE_FP16;
    p.cache.dtype = FAI_DTYPE_FP16;
    return p;
}

/* Every check that needs no device: shapes, pointers, strides, alignment. */
fai_status fai_decode_validate(const char *fn, const fai_decode_params *p)
{
    if (!p)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: params is NULL", fn);
    const fai_attention *a = &p->attn;
    FAI_TRY(fai_check_attention(fn, a));
    if (p->batch < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: batch (%d) is negative", fn, (int)p->batch);
    /* q and o: FP16 or BF16, one dtype; an unquantized cache holds q's dtype, a quantized one
     * serves either. */
    FAI_TRY(fai_check_io_tensor(fn, "q", &p->q, p->batch, a->num_q_heads, a->head_dim, 0, p->q.dtype, "q"));
    FAI_TRY(fai_check_io_tensor(fn, "o", &p->o, p->batch, a->num_q_heads, a->head_dim, 1, p->q.dtype, "q"));
    FAI_TRY(fai_check_kv_cache(fn, &p->cache, p->batch, a->num_kv_heads, a->head_dim));
    FAI_TRY(fai_check_cache_holds(fn, "cache", p->cache.dtype, "q", p->q.dtype));
    if (p->lse && ((uintptr_t)p->lse % sizeof(float)) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: lse (%p) is not 4-byte aligned", fn,
                         (void *)p->lse);
    return FAI_SUCCESS;
}

fai_status fai_decode_plan_params(const char *fn, const fai_decode_params *p, fai_device_info dev,
                                  fai_decode_plan *plan)
{
    const int32_t max_len =
        fai_decode_planned_keys(&p->attn, p->cache.max_seq_len > 0 ? p->cache.max_seq_len : p->cache.capacity);
    const int page_size = p->cache.page_table ? p->cache.page_size : 0;
    return fai_decode_make_plan_kv(fn, p->cache.dtype, page_size, p->batch, p->attn.num_q_heads,
                                   p->attn.num_kv_heads, p->attn.head_dim, max_len, dev, FAI_DECODE_AUTO, 0, 0, 0,
                                   plan);
}

static fai_status plan_for(const char *fn, const fai_decode_params *p, fai_decode_plan *plan)
{
    FAI_TRY(fai_decode_validate(fn, p));
    if (p->batch == 0) { /* nothing to launch: no device needed */
        const fai_decode_plan empty = {0};
        *plan = empty;
        return FAI_SUCCESS;
    }
    fai_device_info dev;
    FAI_TRY(fai_current_device(fn, &dev));
    return fai_decode_plan_params(fn, p, dev, plan);
}

fai_status fai_decode_workspace_size(const fai_decode_params *params, size_t *bytes)
{
    static const char fn[] = "fai_decode_workspace_size";
    fai_error_clear();
    if (!bytes)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: bytes is NULL", fn);
    *bytes = 0;
    fai_decode_plan plan;
    FAI_TRY(plan_for(fn, params, &plan));
    *bytes = params->batch > 0 ? plan.workspace_bytes : 0;
    return FAI_SUCCESS;
}

fai_decode_args fai_decode_args_common(const fai_attention *a, const fai_decode_plan *plan, int32_t batch,
                                       const fai_tensor *q, const fai_tensor *o, float *lse, void *workspace)
{
    fai_decode_args args = {0};
    args.q = q->data;
    args.o = o->data;
    args.q_bf16 = q->dtype == FAI_DTYPE_BF16; /* o has q's dtype (validated) */
    args.alibi_slopes = a->alibi ? a->alibi_slopes : NULL;
    args.lse = lse;
    if (plan->num_splits > 1) {
        args.part_o = (float *)workspace;
        args.part_lse = (float *)((char *)workspace + fai_decode_part_lse_offset(plan, batch, a->num_q_heads));
    }
    args.q_token_stride = q->token_stride;
    args.q_head_stride = q->head_stride;
    args.o_token_stride = o->token_stride;
    args.o_head_stride = o->head_stride;
    args.head_dim = a->head_dim;
    args.batch = batch;
    args.num_q_heads = a->num_q_heads;
    args.num_kv_heads = a->num_kv_heads;
    args.group = a->num_q_heads / a->num_kv_heads;
    args.head_blocks = plan->head_blocks;
    args.num_splits = plan->num_splits;
    args.split_from = plan->split_from;
    args.split_row0 = plan->split_row0;
    args.alibi = a->alibi != 0;
    args.scale_log2 = a->softmax_scale * 1.4426950408889634f;
    /* The variants. A decode row's diagonal is its last key, so only the window's left side
     * matters (keys past the diagonal do not exist). */
    args.window_left = a->window && a->window_left >= 0 ? a->window_left : -1;
    if (a->softcap > 0.0f) {
        args.softcap2 = a->softcap * 1.4426950408889634f;
        args.inv_softcap2 = 1.0f / args.softcap2;
    }
    args.sinks = a->sinks;
    return args;
}

void fai_decode_args_set_cache(fai_decode_args *args, const fai_kv_cache *c)
{
    args->k = c->k;
    args->v = c->v;
    args->cu_k = NULL;
    args->total_k = 0;
    args->seq_lens = c->seq_lens;
    args->capacity = c->capacity;
    args->kv_seq_stride = c->seq_stride;
    args->kv_token_stride = args->v_token_stride = c->token_stride;
    args->kv_head_stride = args->v_head_stride = c->head_stride;
    args->kv_dtype = c->dtype;
    args->k_scale = c->k_scale;
    args->v_scale = c->v_scale;
    args->scale_pairs = fai_cache_scale_pairs(c);
    args->scale_seq_stride = c->scale_seq_stride;
    args->scale_token_stride = c->scale_token_stride;
    args->scale_head_stride = c->scale_head_stride;
    if (c->page_table) {
        args->page_table = c->page_table;
        args->page_table_stride = c->page_table_stride;
        args->num_pages = c->num_pages;
        args->page_shift = fai_page_shift(c->page_size);
        args->len_hint = c->max_seq_len > 0 && c->max_seq_len <= c->capacity ? c->max_seq_len : c->capacity;
    }
}

/* Runs a validated problem with a given plan; fai-bench calls it to try other plans. */
fai_status fai_decode_run_plan(const char *fn, const fai_decode_params *p, const fai_decode_plan *plan,
                               void *workspace, size_t workspace_bytes, cudaStream_t stream)
{
    if (p->batch == 0)
        return FAI_SUCCESS;
    FAI_TRY(fai_check_workspace(fn, "fai_decode_workspace_size", plan->workspace_bytes, workspace, workspace_bytes));
    fai_decode_args args = fai_decode_args_common(&p->attn, plan, p->batch, &p->q, &p->o, p->lse, workspace);
    fai_decode_args_set_cache(&args, &p->cache);
    return fai_decode_launch(fn, &args, plan, stream);
}

fai_status fai_decode(const fai_decode_params *params, void *workspace, size_t workspace_bytes,
                      cudaStream_t stream)
{
    static const char fn[] = "fai_decode";
    fai_error_clear();
    fai_decode_plan plan;
    FAI_TRY(plan_for(fn, params, &plan));
    return fai_decode_run_plan(fn, params, &plan, workspace, workspace_bytes, stream);
}
