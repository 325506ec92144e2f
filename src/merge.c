/* Public entry points for merging attention states: validate, then one launch of the merge
 * kernel (src/kernels/merge.cu) with the parts' pointers and strides passed by value. */
#include <stdio.h>

#include "check.h"
#include "error.h"
#include "merge_args.h"

fai_merge_params fai_merge_params_default(void)
{
    fai_merge_params p = {0};
    p.num_parts = 2;
    p.num_heads = 32;
    p.head_dim = 128;
    p.o.dtype = FAI_DTYPE_FP16;
    return p;
}

/* The name of part i's output and LSE in messages. */
static void part_names(int pair, int i, char *o_name, char *lse_name, size_t n)
{
    if (pair) {
        snprintf(o_name, n, "%s", i == 0 ? "o_a" : "o_b");
        snprintf(lse_name, n, "%s", i == 0 ? "lse_a" : "lse_b");
    } else {
        snprintf(o_name, n, "parts[%d]", i);
        snprintf(lse_name, n, "parts_lse[%d]", i);
    }
}

fai_status fai_merge_validate(const char *fn, const fai_merge_params *p, int pair)
{
    if (!p)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: params is NULL", fn);
    if (p->num_parts < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: num_parts (%d) must be >= 1", fn, (int)p->num_parts);
    if (p->num_parts > FAI_MERGE_MAX_PARTS)
        return fai_error(FAI_ERROR_NOT_SUPPORTED,
                         "%s: num_parts (%d) is more than FAI_MERGE_MAX_PARTS (%d): merge in a tree of calls", fn,
                         (int)p->num_parts, FAI_MERGE_MAX_PARTS);
    if (p->num_rows < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: num_rows (%d) is negative", fn, (int)p->num_rows);
    if (p->num_heads < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: num_heads (%d) must be >= 1", fn, (int)p->num_heads);
    if (p->head_dim < 8 || p->head_dim > 256 || p->head_dim % 8 != 0)
        return fai_error(FAI_ERROR_NOT_SUPPORTED_HEAD_DIM,
                         "%s: head_dim (%d) is not supported (a multiple of 8 in [8, 256])", fn, (int)p->head_dim);
    if (!p->parts)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: parts (the host array of part outputs) is NULL", fn);
    if (!p->parts_lse)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: parts_lse (the host array of part LSEs) is NULL",
                         fn);
    const int64_t rows = p->num_rows, heads = p->num_heads;
    FAI_TRY(fai_check_io_tensor(fn, "o", &p->o, rows, p->num_heads, p->head_dim, 1, p->o.dtype, "o"));
    if (p->lse && ((uintptr_t)p->lse % sizeof(float)) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: lse (%p) is not 4-byte aligned", fn, (void *)p->lse);
    const int64_t lse_elems = rows * heads; /* < 2^62: no overflow */
    for (int i = 0; i < p->num_parts; i++) {
        char o_name[32], lse_name[32];
        part_names(pair, i, o_name, lse_name, sizeof o_name);
        const fai_tensor *t = &p->parts[i];
        FAI_TRY(fai_check_io_tensor(fn, o_name, t, rows, p->num_heads, p->head_dim, 0, p->o.dtype, "o"));
        if (rows == 0)
            continue;
        /* In place means o is the part itself; the same address with other strides would
         * have one (row, head) write what another still has to read. */
        if (t->data == p->o.data && ((rows > 1 && t->token_stride != p->o.token_stride) ||
                                     (heads > 1 && t->head_stride != p->o.head_stride)))
            return fai_error(FAI_ERROR_BAD_PARAM_STRIDE,
                             "%s: o aliases %s (data %p) with other strides (token_stride %lld vs %lld, head_stride "
                             "%lld vs %lld): merging in place needs o to be the part exactly",
                             fn, o_name, t->data, (long long)p->o.token_stride, (long long)t->token_stride,
                             (long long)p->o.head_stride, (long long)t->head_stride);
        const float *l = p->parts_lse[i];
        if (!l)
            return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: %s is NULL", fn, lse_name);
        if (((uintptr_t)l % sizeof(float)) != 0)
            return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: %s (%p) is not 4-byte aligned", fn, lse_name,
                             (const void *)l);
        /* The LSE arrays are contiguous, so a partial overlap with the output is visible here. */
        if (p->lse && p->lse != l) {
            const uintptr_t a = (uintptr_t)p->lse, b = (uintptr_t)l, n = (uintptr_t)lse_elems * sizeof(float);
            if (a < b + n && b < a + n)
                return fai_error(FAI_ERROR_BAD_PARAM_STRIDE,
                                 "%s: lse (%p) overlaps %s (%p) without being it: the output LSE must be one of "
                                 "the parts' LSEs exactly or overlap none",
                                 fn, (void *)p->lse, lse_name, (const void *)l);
        }
    }
    return FAI_SUCCESS;
}

static fai_status merge_run(const char *fn, const fai_merge_params *p, int pair, cudaStream_t stream)
{
    FAI_TRY(fai_merge_validate(fn, p, pair));
    if (p->num_rows == 0)
        return FAI_SUCCESS;
    fai_device_info dev;
    FAI_TRY(fai_current_device(fn, &dev));
    fai_merge_args a = {0};
    for (int i = 0; i < p->num_parts; i++) {
        a.part_o[i] = p->parts[i].data;
        a.part_lse[i] = p->parts_lse[i];
        a.part_token_stride[i] = p->parts[i].token_stride;
        a.part_head_stride[i] = p->parts[i].head_stride;
    }
    a.o = p->o.data;
    a.o_token_stride = p->o.token_stride;
    a.o_head_stride = p->o.head_stride;
    a.lse = p->lse;
    a.num_parts = p->num_parts;
    a.num_rows = p->num_rows;
    a.num_heads = p->num_heads;
    a.head_dim = p->head_dim;
    a.dtype = p->o.dtype;
    return fai_merge_launch(fn, &a, stream);
}

fai_status fai_merge_states(const fai_merge_params *params, cudaStream_t stream)
{
    fai_error_clear();
    return merge_run("fai_merge_states", params, 0, stream);
}

fai_status fai_merge_state(int32_t num_rows, int32_t num_heads, int32_t head_dim, fai_tensor o_a, const float *lse_a,
                           fai_tensor o_b, const float *lse_b, fai_tensor o, float *lse, cudaStream_t stream)
{
    fai_error_clear();
    const fai_tensor parts[2] = {o_a, o_b};
    const float *const lses[2] = {lse_a, lse_b};
    fai_merge_params p = fai_merge_params_default();
    p.num_parts = 2;
    p.num_rows = num_rows;
    p.num_heads = num_heads;
    p.head_dim = head_dim;
    p.parts = parts;
    p.parts_lse = lses;
    p.o = o;
    p.lse = lse;
    return merge_run("fai_merge_state", &p, 1, stream);
}
