/* Internal: the staging kernel's parameters. fai_prefill over an int8 or FP8 cache first
 * dequantizes the prefill rows' keys and values into q's dtype in the workspace (a contiguous
 * cache [count, keys, kv_heads, head_dim] for K, then one for V), and the prefill kernel reads
 * that copy; the decode rows read the quantized cache directly. */
#ifndef FAI_KV_STAGE_ARGS_H
#define FAI_KV_STAGE_ARGS_H

#include <cuda_runtime_api.h>

#include "fai.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fai_kv_stage_args {
    fai_kv_cache cache;   /* the source: int8, E4M3 or E5M2, contiguous or paged */
    void *k_out, *v_out;  /* [count, keys, kv_heads, head_dim] of FP16 or BF16 (out_bf16) */
    int32_t first, count; /* cache sequences first .. first + count - 1 */
    int32_t keys;         /* tokens per staged sequence (<= capacity): seq_lens[b] is clamped
                             into [0, keys], as the prefill kernel clamps it */
    int32_t num_kv_heads, head_dim, page_shift, out_bf16;
} fai_kv_stage_args;

/* Launches the staging kernel on `stream`. */
fai_status fai_kv_stage_launch(const fai_kv_stage_args *args, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
