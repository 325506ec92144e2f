/* Internal: argument checks shared by the entry points. Each returns FAI_SUCCESS or sets
 * the last-error message (naming the function, the argument and its value) and returns the
 * failing status, so callers chain them with FAI_TRY (error.h). */
#ifndef FAI_CHECK_H
#define FAI_CHECK_H

#include "decode_plan.h"
#include "error.h"

/* The most tokens a cache may hold (cache.capacity), and rows of fai_prefill's q and packed
 * k/v: 2^31 - 2^20 - 1, so that the key indices a kernel forms a few tiles past the end stay
 * within int. */
#define FAI_MAX_CACHE_CAPACITY (INT32_MAX - (1 << 20))
/* The most query heads (and KV heads) a call may have: far past any model, and small enough
 * that the kernels' int products of heads, head_dim and their grid strides cannot wrap (an
 * append of ~2^30 heads or a staging row of ~2^31 16-byte chunks did). */
#define FAI_MAX_HEADS 65536

#ifdef __cplusplus
extern "C" {
#endif

/* Head counts, head dim, softmax scale, ALiBi slopes pointer, and the variants' fields
 * (window sides, soft-cap, sinks pointer). */
fai_status fai_check_attention(const char *fn, const fai_attention *attn);

/* Whether any variant (sliding window, soft-cap, sinks) is on. */
int fai_attention_has_variant(const fai_attention *a);

/* A [tokens, heads, head_dim] attention input or output, FP16 or BF16: dtype (`dtype` is the
 * call's element type, that of the tensor named `ref`, which t must share: pass t's own dtype
 * and its own name when checking the reference itself), NULL
 * (when tokens > 0), 16-byte alignment, strides (>= 0, multiples of 8 elements), offsets
 * that fit in int64, and for outputs that no two elements share an address. */
fai_status fai_check_io_tensor(const char *fn, const char *name, const fai_tensor *t, int64_t tokens,
                               int32_t heads, int32_t head_dim, int is_output, fai_dtype dtype, const char *ref);

/* An unquantized (FP16/BF16) cache must hold the dtype of `ref` (q's, or the appended rows');
 * a quantized one takes either. cache_name: "cache" as the caller's argument is named. */
fai_status fai_check_cache_holds(const char *fn, const char *cache_name, fai_dtype cache_dtype, const char *ref,
                                 fai_dtype ref_dtype);

/* A call's workspace: none needed, or at least `needed` bytes, 16-byte aligned; size_fn names
 * the size query the message points to. */
fai_status fai_check_workspace(const char *fn, const char *size_fn, size_t needed, const void *workspace,
                               size_t workspace_bytes);

/* log2 of a page size that fai_check_kv_cache accepted (a power of two). */
static inline int32_t fai_page_shift(int32_t page_size)
{
    int32_t shift = 0;
    while ((1 << shift) < page_size)
        shift++;
    return shift;
}

/* A contiguous-slot KV cache read by `batch` sequences of `heads` KV heads. */
fai_status fai_check_kv_cache(const char *fn, const fai_kv_cache *c, int32_t batch,
                              int32_t heads, int32_t head_dim);

/* "FAI_DTYPE_FP16", ...; whether a dtype can be a KV cache's; bytes per element. */
const char *fai_dtype_name(fai_dtype t);
int fai_is_cache_dtype(fai_dtype t);
int fai_dtype_bytes(fai_dtype t);
/* An int8 cache whose scales are FAI_SCALES_BF16X2 words (the kernels' scale_pairs flag). */
int fai_cache_scale_pairs(const fai_kv_cache *c);

/* The current device: compute capability 8.0 or newer; returns what the planners need. */
fai_status fai_current_device(const char *fn, fai_device_info *info);

#ifdef __cplusplus
}
#endif

#endif
