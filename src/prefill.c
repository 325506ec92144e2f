/* Public varlen (prefill / hybrid) entry points: validate, plan which kernels run, launch.
 *
 * A call launches two kinds of kernel on the caller's stream: the tensor-core prefill kernel
 * for sequences with seq_q > 1 (after the staging kernel of a quantized or gathered paged
 * cache, and on Hopper after the one-thread reset of its work counter), and the decoding
 * kernels (decode.cu, decode_mma.cu, in their varlen mode; a split's merge kernel after
 * them) for sequences with seq_q == 1, so that decode rows of a hybrid batch move at
 * memory speed instead of filling 1/128 of a tensor-core tile. With a host copy of
 * cu_seqlens_q the plan launches only the kernels that have work; without one both run
 * and each skips the other's sequences. FP16 and BF16, the variants (window, soft-cap,
 * sinks) and K/V from a kv_cache (chunked prefill over a contiguous or paged cache) run on
 * both kinds. */
#include "check.h"
#include "decode_args.h"
#include "error.h"
#include "kv_stage_args.h"
#include "prefill_args.h"
#include "prefill_plan.h"

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

/* Validates, then plans on the current device (which is only queried when there is work). */
static fai_status plan_for(const char *fn, const fai_prefill_params *p, fai_prefill_plan *plan)
{
    const fai_prefill_plan empty = {0};
    *plan = empty;
    FAI_TRY(fai_prefill_validate(fn, p));
    if (p->batch == 0 || p->total_q == 0)
        return FAI_SUCCESS;
    fai_device_info dev;
    FAI_TRY(fai_current_device(fn, &dev));
    return fai_prefill_make_plan(fn, p, dev, plan);
}

fai_status fai_prefill_workspace_size(const fai_prefill_params *params, size_t *bytes)
{
    static const char fn[] = "fai_prefill_workspace_size";
    fai_error_clear();
    if (!bytes)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: bytes is NULL", fn);
    *bytes = 0;
    fai_prefill_plan plan;
    FAI_TRY(plan_for(fn, params, &plan));
    *bytes = plan.workspace_bytes;
    return FAI_SUCCESS;
}

/* The decode rows (seq_q == 1) through the decode kernels' varlen mode. */
static fai_status launch_decode_rows(const char *fn, const fai_prefill_params *p, const fai_prefill_plan *pp,
                                     void *workspace, cudaStream_t stream)
{
    fai_decode_args args =
        fai_decode_args_common(&p->attn, &pp->decode, pp->decode_count, &p->q, &p->o, p->lse, workspace);
    args.batch_offset = pp->decode_first;
    args.k = p->k.data;
    args.v = p->v.data;
    args.cu_q = p->cu_seqlens_q;
    args.cu_k = p->cu_seqlens_k;
    args.total_q = p->total_q;
    args.total_k = p->total_k;
    args.kv_dtype = p->k.dtype; /* FP16 or BF16, as q */
    args.kv_token_stride = p->k.token_stride;
    args.kv_head_stride = p->k.head_stride;
    args.v_token_stride = p->v.token_stride;
    args.v_head_stride = p->v.head_stride;
    if (p->kv_cache) /* keys and values from the cache, as fai_decode reads them */
        fai_decode_args_set_cache(&args, p->kv_cache);
    return fai_decode_launch(fn, &args, &pp->decode, stream);
}

fai_status fai_prefill(const fai_prefill_params *params, void *workspace, size_t workspace_bytes,
                       cudaStream_t stream)
{
    static const char fn[] = "fai_prefill";
    fai_error_clear();
    fai_prefill_plan plan;
    FAI_TRY(plan_for(fn, params, &plan));
    const fai_prefill_params *p = params;
    const fai_attention *a = &p->attn;
    /* before anything launches: a failed call launches nothing */
    FAI_TRY(fai_check_workspace(fn, "fai_prefill_workspace_size", plan.workspace_bytes, workspace, workspace_bytes));
    if (plan.run_prefill) {
        fai_prefill_args args = {0};
        args.q = p->q.data;
        args.k = p->k.data;
        args.v = p->v.data;
        args.o = p->o.data;
        args.cu_q = p->cu_seqlens_q;
        args.cu_k = p->cu_seqlens_k;
        args.alibi_slopes = a->alibi ? a->alibi_slopes : NULL;
        args.sinks = a->sinks;
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
        args.dtype = p->q.dtype;
        args.alibi = a->alibi != 0;
        /* The causal mask is a window bounded by the diagonal on the right: with both, the
         * right side stays 0 (window_right is >= 0 or unbounded). */
        args.win_left = a->window ? a->window_left : -1;
        args.win_right = p->causal ? 0 : a->window ? a->window_right : -1;
        args.skip_decode_rows = plan.run_decode;
        args.m_tiles = plan.m_tiles;
        args.mt = plan.mt;
        args.fill_ring = plan.fill_ring;
        args.one_wave = plan.one_wave;
        args.sm90 = plan.sm90;
        args.num_sms = plan.num_sms;
        if (plan.sm90 > 0) {
            args.next_item = (uint32_t *)((char *)workspace + plan.counter_offset);
            args.section = plan.section;
        }
        if (p->kv_cache && plan.stage_keys > 0) { /* a quantized cache, read through its copy */
            const fai_kv_cache *c = p->kv_cache;
            fai_kv_stage_args st = {0};
            st.cache = *c;
            st.k_out = (char *)workspace + plan.stage_offset;
            st.v_out = (char *)workspace + plan.stage_offset + plan.stage_bytes;
            st.first = plan.prefill_first;
            st.count = plan.prefill_count;
            st.keys = plan.stage_keys;
            st.num_kv_heads = a->num_kv_heads;
            st.head_dim = a->head_dim;
            st.page_shift = c->page_table ? fai_page_shift(c->page_size) : 0;
            st.out_bf16 = p->q.dtype == FAI_DTYPE_BF16;
            FAI_TRY(fai_kv_stage_launch(&st, stream));
            args.k = st.k_out;
            args.v = st.v_out;
            args.cu_k = NULL;
            args.total_k = 0;
            args.k_head_stride = args.v_head_stride = a->head_dim;
            args.k_token_stride = args.v_token_stride = (int64_t)a->num_kv_heads * a->head_dim;
            args.seq_lens = c->seq_lens;
            args.kv_seq_stride = (int64_t)plan.stage_keys * a->num_kv_heads * a->head_dim;
            args.kv_slot_offset = plan.prefill_first;
            args.capacity = plan.stage_keys;
        } else if (p->kv_cache) { /* keys and values from the cache (contiguous slots or pages) */
            const fai_kv_cache *c = p->kv_cache;
            args.k = c->k;
            args.v = c->v;
            args.cu_k = NULL;
            args.total_k = 0;
            args.k_token_stride = args.v_token_stride = c->token_stride;
            args.k_head_stride = args.v_head_stride = c->head_stride;
            args.seq_lens = c->seq_lens;
            args.kv_seq_stride = c->seq_stride;
            args.capacity = c->capacity;
            if (c->page_table) {
                args.page_table = c->page_table;
                args.page_table_stride = c->page_table_stride;
                args.num_pages = c->num_pages;
                args.page_shift = fai_page_shift(c->page_size);
            }
        }
        args.scale_log2 = a->softmax_scale * 1.4426950408889634f;
        if (a->softcap > 0.0f) { /* s = cap tanh(scale q.k / cap): tanh(q.k * scale / cap) * cap log2(e) */
            args.scale_log2 = a->softcap * 1.4426950408889634f;
            args.softcap_scale = a->softmax_scale / a->softcap;
        }
        FAI_TRY(fai_prefill_launch(&args, stream));
    }
    if (plan.run_decode)
        FAI_TRY(launch_decode_rows(fn, p, &plan, workspace, stream));
    return FAI_SUCCESS;
}
