/* Internal: the merge kernel's parameters (one plain struct, passed by value, so the call
 * needs no device copy of the host arrays) and the host-side checks, shared by
 * fai_merge_states(), fai_merge_state() and the fuzzer. */
#ifndef FAI_MERGE_ARGS_H
#define FAI_MERGE_ARGS_H

#include <cuda_runtime_api.h>

#include "fai.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fai_merge_args {
    const void *part_o[FAI_MERGE_MAX_PARTS];
    const float *part_lse[FAI_MERGE_MAX_PARTS];
    int64_t part_token_stride[FAI_MERGE_MAX_PARTS], part_head_stride[FAI_MERGE_MAX_PARTS]; /* elements */
    void *o;
    int64_t o_token_stride, o_head_stride;
    float *lse; /* or NULL */
    int32_t num_parts, num_rows, num_heads, head_dim, dtype;
} fai_merge_args;

/* Every check that needs no device. `pair` nonzero: the two-part call, whose messages name
 * o_a, lse_a, o_b and lse_b instead of parts[i] and parts_lse[i]. */
fai_status fai_merge_validate(const char *fn, const fai_merge_params *p, int pair);

/* Launches the merge kernel on `stream` (args->num_rows > 0); a failure's message names
 * `fn`, the public call. */
fai_status fai_merge_launch(const char *fn, const fai_merge_args *args, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
