/* Prints the size and field offsets of every public struct as JSON, so the Python package's
 * ctypes mirrors (python/fai/_lib.py) can be checked against the C compiler's layout. */
#include <stddef.h>
#include <stdio.h>

#include "fai.h"

#define FIELD(s, f, last) printf("\"%s\": %zu%s", #f, offsetof(s, f), (last) ? "" : ", ")
#define BEGIN(s) printf("\"%s\": {\"size\": %zu, \"fields\": {", #s, sizeof(s))
#define END(last) printf("}}%s\n", (last) ? "" : ",")

int main(void)
{
    printf("{\n");
    BEGIN(fai_tensor);
    FIELD(fai_tensor, data, 0), FIELD(fai_tensor, dtype, 0), FIELD(fai_tensor, token_stride, 0);
    FIELD(fai_tensor, head_stride, 1);
    END(0);
    BEGIN(fai_kv_cache);
    FIELD(fai_kv_cache, dtype, 0), FIELD(fai_kv_cache, k, 0), FIELD(fai_kv_cache, v, 0);
    FIELD(fai_kv_cache, seq_stride, 0), FIELD(fai_kv_cache, token_stride, 0), FIELD(fai_kv_cache, head_stride, 0);
    FIELD(fai_kv_cache, capacity, 0), FIELD(fai_kv_cache, seq_lens, 0), FIELD(fai_kv_cache, max_seq_len, 0);
    FIELD(fai_kv_cache, scale_format, 0);
    FIELD(fai_kv_cache, k_scale, 0), FIELD(fai_kv_cache, v_scale, 0), FIELD(fai_kv_cache, scale_seq_stride, 0);
    FIELD(fai_kv_cache, scale_token_stride, 0), FIELD(fai_kv_cache, scale_head_stride, 0);
    FIELD(fai_kv_cache, page_table, 0), FIELD(fai_kv_cache, page_table_stride, 0);
    FIELD(fai_kv_cache, page_size, 0), FIELD(fai_kv_cache, num_pages, 1);
    END(0);
    BEGIN(fai_kv_append_params);
    FIELD(fai_kv_append_params, num_kv_heads, 0), FIELD(fai_kv_append_params, head_dim, 0);
    FIELD(fai_kv_append_params, num_tokens, 0), FIELD(fai_kv_append_params, k_new, 0);
    FIELD(fai_kv_append_params, v_new, 0), FIELD(fai_kv_append_params, slots, 0);
    FIELD(fai_kv_append_params, cache_batch, 0), FIELD(fai_kv_append_params, cache, 1);
    END(0);
    BEGIN(fai_attention);
    FIELD(fai_attention, num_q_heads, 0), FIELD(fai_attention, num_kv_heads, 0), FIELD(fai_attention, head_dim, 0);
    FIELD(fai_attention, softmax_scale, 0), FIELD(fai_attention, alibi, 0), FIELD(fai_attention, alibi_slopes, 0);
    FIELD(fai_attention, window, 0), FIELD(fai_attention, window_left, 0), FIELD(fai_attention, window_right, 0);
    FIELD(fai_attention, softcap, 0), FIELD(fai_attention, sinks, 1);
    END(0);
    BEGIN(fai_decode_params);
    FIELD(fai_decode_params, attn, 0), FIELD(fai_decode_params, batch, 0), FIELD(fai_decode_params, q, 0);
    FIELD(fai_decode_params, o, 0), FIELD(fai_decode_params, cache, 0), FIELD(fai_decode_params, lse, 1);
    END(0);
    BEGIN(fai_prefill_params);
    FIELD(fai_prefill_params, attn, 0), FIELD(fai_prefill_params, batch, 0), FIELD(fai_prefill_params, causal, 0);
    FIELD(fai_prefill_params, q, 0), FIELD(fai_prefill_params, k, 0), FIELD(fai_prefill_params, v, 0);
    FIELD(fai_prefill_params, o, 0), FIELD(fai_prefill_params, cu_seqlens_q, 0);
    FIELD(fai_prefill_params, cu_seqlens_k, 0), FIELD(fai_prefill_params, total_q, 0);
    FIELD(fai_prefill_params, total_k, 0), FIELD(fai_prefill_params, max_seq_q, 0);
    FIELD(fai_prefill_params, max_seq_k, 0), FIELD(fai_prefill_params, cu_seqlens_q_host, 0);
    FIELD(fai_prefill_params, lse, 0), FIELD(fai_prefill_params, kv_cache, 1);
    END(0);
    BEGIN(fai_merge_params);
    FIELD(fai_merge_params, num_parts, 0), FIELD(fai_merge_params, num_rows, 0), FIELD(fai_merge_params, num_heads, 0);
    FIELD(fai_merge_params, head_dim, 0), FIELD(fai_merge_params, parts, 0), FIELD(fai_merge_params, parts_lse, 0);
    FIELD(fai_merge_params, o, 0), FIELD(fai_merge_params, lse, 1);
    END(1);
    printf("}\n");
    return 0;
}
