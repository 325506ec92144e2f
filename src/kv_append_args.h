/* Internal: the append kernel's parameters (one plain struct, passed by value) and the
 * host-side checks, shared by fai_kv_append() and the fuzzer. */
#ifndef FAI_KV_APPEND_ARGS_H
#define FAI_KV_APPEND_ARGS_H

#include <cuda_runtime_api.h>

#include "fai.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fai_kv_append_args {
    const void *k_new, *v_new;
    int64_t new_token_stride[2], new_head_stride[2]; /* [0] k_new, [1] v_new, elements */
    const int64_t *slots;
    void *k, *v;
    int64_t seq_stride, token_stride, head_stride; /* cache, elements of its dtype */
    float *k_scale, *v_scale;
    int32_t scale_pairs; /* FAI_SCALES_BF16X2: BF16 K scale in the low half of k_scale's word, V's high */
    int64_t scale_seq_stride, scale_token_stride, scale_head_stride;
    int64_t num_slots; /* cache_batch * capacity: larger slots are skipped */
    int32_t capacity, num_tokens, num_kv_heads, head_dim, dtype;
    int32_t new_bf16; /* k_new and v_new are BF16 (else FP16) */
} fai_kv_append_args;

/* Every check that needs no device. */
fai_status fai_kv_append_validate(const char *fn, const fai_kv_append_params *p);

/* Launches the append kernel on `stream`. */
fai_status fai_kv_append_launch(const fai_kv_append_args *args, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
