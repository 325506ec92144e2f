/* Internal: the decode kernels' parameters, one plain struct passed by value as a
 * __grid_constant__ kernel argument, and the launcher the host code calls. */
#ifndef FAI_DECODE_ARGS_H
#define FAI_DECODE_ARGS_H

#include <cuda_runtime_api.h>

#include "decode_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fai_decode_args {
    const void *q;
    void *o;
    const void *k;
    const void *v;
    const int32_t *seq_lens;
    const int32_t *cu_q, *cu_k; /* varlen mode (fai_prefill's decode rows): sequence b's query
                                   is row cu_q[b] of q/o/lse and its keys rows cu_k[b] ..
                                   cu_k[b + 1] - 1 of k/v, or with seq_lens set (a prefill call
                                   over a kv_cache) those of the cache; sequences with
                                   cu_q[b + 1] - cu_q[b] != 1 are skipped. cu_q NULL: fai_decode's
                                   one query row per sequence, over the cache. */
    int32_t total_q, total_k;   /* varlen mode: the clamping bounds of cu_q and cu_k */
    int32_t batch_offset;       /* varlen mode: grid sequence b is sequence batch_offset + b
                                   of cu_q/cu_k (the grid spans only the decode rows' range) */
    const float *alibi_slopes; /* NULL: standard slopes (when alibi) */
    float *lse;                /* NULL: not written */
    float *part_o;             /* workspace, when num_splits > 1 */
    float *part_lse;
    int64_t q_token_stride, q_head_stride;
    int64_t o_token_stride, o_head_stride;
    int64_t kv_seq_stride, kv_token_stride, kv_head_stride; /* K's (and V's in cache mode) */
    int64_t v_token_stride, v_head_stride;                   /* V's */
    int32_t capacity, head_dim;
    int32_t batch, num_q_heads, num_kv_heads, group, head_blocks, num_splits;
    int32_t alibi;
    float scale_log2; /* softmax_scale * log2(e): scores live in the exp2 domain */
    int32_t window_left; /* sliding window: keys len - 1 - window_left .. len - 1 (-1: all) */
    float softcap2;      /* logit soft-cap in the exp2 domain (softcap * log2 e), 0: off */
    float inv_softcap2;
    const float *sinks;  /* [num_q_heads] natural-log sink logits, or NULL */
    int32_t kv_dtype;  /* fai_dtype of k and v (cache mode), or of the packed K/V (varlen mode: q's) */
    int32_t q_bf16;    /* q and o are BF16 (else FP16): read once and written once per block, so a
                          run-time flag, not a template parameter. An FP16 or BF16 cache (and
                          varlen K/V) must have q's dtype: the kernels may take it from kv_dtype */
    const int32_t *page_table; /* paged cache (cache mode), or NULL */
    int64_t page_table_stride;
    int32_t page_shift, num_pages; /* log2(page_size); pages in the pool */
    int32_t len_hint;                /* the planned length (max_seq_len, else capacity): where a
                                        paged block's first keys are guessed to start */
    int32_t scale_pairs;             /* int8, FAI_SCALES_BF16X2: k_scale's words hold both scales as
                                        BF16 (K low, V high) and v_scale is unused (in the padding
                                        before k_scale: no other field moves) */
    const float *k_scale, *v_scale;  /* int8 cache: per (sequence, token, KV head) */
    int64_t scale_seq_stride, scale_token_stride, scale_head_stride;
    int32_t split_from, split_row0; /* a split tail (fai_decode_plan's fields of those names) */
} fai_decode_args;

/* Launches the decode kernel (and the merge kernel when split) as planned; a failure's
 * message names `fn`, the public call (fai_decode, or fai_prefill for its decode rows). */
fai_status fai_decode_launch(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                             cudaStream_t stream);


/* The decode kernels' arguments that do not depend on where K and V come from (a cache for
 * fai_decode, packed varlen K/V or a kv_cache for fai_prefill's decode rows): the caller
 * adds those. */
fai_decode_args fai_decode_args_common(const fai_attention *a, const fai_decode_plan *plan, int32_t batch,
                                       const fai_tensor *q, const fai_tensor *o, float *lse, void *workspace);

/* The fields that address a KV cache (fai_decode's, or a prefill call's kv_cache). */
void fai_decode_args_set_cache(fai_decode_args *args, const fai_kv_cache *c);

/* Runs a validated problem with a given plan (fai_decode() plans, then calls this; fai-bench
 * calls it directly to compare plans). Checks the workspace against the plan. */
fai_status fai_decode_run_plan(const char *fn, const fai_decode_params *p, const fai_decode_plan *plan,
                               void *workspace, size_t workspace_bytes, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
