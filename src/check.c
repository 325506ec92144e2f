/* Argument checks shared by the entry points (see check.h). */
#include "check.h"

#include <cuda_runtime_api.h>
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "error.h"

static int is_supported_head_dim(int32_t d) { return d == 64 || d == 96 || d == 128 || d == 256; }

const char *fai_dtype_name(fai_dtype t)
{
    switch (t) {
    case FAI_DTYPE_FP16:
        return "FAI_DTYPE_FP16";
    case FAI_DTYPE_BF16:
        return "FAI_DTYPE_BF16";
    case FAI_DTYPE_INT8:
        return "FAI_DTYPE_INT8";
    case FAI_DTYPE_FP8_E4M3:
        return "FAI_DTYPE_FP8_E4M3";
    case FAI_DTYPE_FP8_E5M2:
        return "FAI_DTYPE_FP8_E5M2";
    }
    return "unknown";
}

int fai_is_cache_dtype(fai_dtype t)
{
    return t == FAI_DTYPE_FP16 || t == FAI_DTYPE_BF16 || t == FAI_DTYPE_INT8 || t == FAI_DTYPE_FP8_E4M3 ||
           t == FAI_DTYPE_FP8_E5M2;
}

int fai_dtype_bytes(fai_dtype t) { return t == FAI_DTYPE_FP16 || t == FAI_DTYPE_BF16 ? 2 : 1; }

int fai_cache_scale_pairs(const fai_kv_cache *c)
{
    return c->dtype == FAI_DTYPE_INT8 && c->scale_format == FAI_SCALES_BF16X2;
}

int fai_attention_has_variant(const fai_attention *a)
{
    return a->window != 0 || a->softcap != 0.0f || a->sinks != NULL;
}

static int misaligned(const void *p, uintptr_t bytes) { return ((uintptr_t)p % bytes) != 0; }

/* a * b + c without overflow for non-negative operands; returns 0 on overflow. */
static int mul_add_fits(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t prod;
    if (__builtin_mul_overflow(a, b, &prod) || __builtin_add_overflow(prod, c, out))
        return 0;
    return 1;
}

fai_status fai_check_attention(const char *fn, const fai_attention *attn)
{
    if (attn->num_kv_heads < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: attn.num_kv_heads (%d) must be >= 1", fn,
                         (int)attn->num_kv_heads);
    if (attn->num_q_heads < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: attn.num_q_heads (%d) must be >= 1", fn,
                         (int)attn->num_q_heads);
    if (attn->num_q_heads > FAI_MAX_HEADS)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: attn.num_q_heads (%d) is more than %d", fn,
                         (int)attn->num_q_heads, FAI_MAX_HEADS);
    if (attn->num_q_heads % attn->num_kv_heads != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                         "%s: attn.num_q_heads (%d) is not a multiple of attn.num_kv_heads (%d)", fn,
                         (int)attn->num_q_heads, (int)attn->num_kv_heads);
    if (!is_supported_head_dim(attn->head_dim))
        return fai_error(FAI_ERROR_NOT_SUPPORTED_HEAD_DIM,
                         "%s: attn.head_dim (%d) is not supported (64, 96, 128 or 256)", fn,
                         (int)attn->head_dim);
    /* The kernels work in the exp2 domain: scale * log2(e) must stay finite too. */
    if (!isfinite(attn->softmax_scale * 1.4426950408889634f) || !(attn->softmax_scale > 0.0f))
        return fai_error(FAI_ERROR_BAD_PARAM,
                         "%s: attn.softmax_scale (%g) must be > 0 and at most FLT_MAX / log2(e) (%g)", fn,
                         (double)attn->softmax_scale, (double)FLT_MAX / 1.4426950408889634);
    if (attn->alibi && attn->alibi_slopes && misaligned(attn->alibi_slopes, sizeof(float)))
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED,
                         "%s: attn.alibi_slopes (%p) is not 4-byte aligned", fn,
                         (const void *)attn->alibi_slopes);
    /* The variants. The window's sides are checked even while attn.window is 0 (a side below
     * -1 is a mistake either way). */
    if (attn->window_left < -1)
        return fai_error(FAI_ERROR_BAD_PARAM, "%s: attn.window_left (%d) must be -1 (unbounded) or >= 0", fn,
                         (int)attn->window_left);
    if (attn->window_right < -1)
        return fai_error(FAI_ERROR_BAD_PARAM, "%s: attn.window_right (%d) must be -1 (unbounded) or >= 0", fn,
                         (int)attn->window_right);
    if (attn->softcap != 0.0f) {
        /* The kernels take tanh of q.k * (softmax_scale / softcap) and scale the result by
         * softcap * log2(e), the Hopper kernel also by twice that: all must be finite. */
        /* At least FLT_MIN: the decode kernels also divide the logit by softcap * log2(e),
         * whose reciprocal is infinite below ~2e-39 (a zero logit would give 0 * inf = NaN).
         * (Tested as a bound, not as isfinite(1 / ...): gcc 13's range propagation took
         * 1 / x = inf to mean x = 0 and printed the smallest float as the cap.) */
        if (!isfinite(attn->softcap) || !(attn->softcap >= FLT_MIN))
            return fai_error(FAI_ERROR_BAD_PARAM,
                             "%s: attn.softcap (%g) must be 0 (off), or finite and at least FLT_MIN (%g)", fn,
                             (double)attn->softcap, (double)FLT_MIN);
        /* (the Hopper kernel multiplies each logit by softmax_scale / softcap * 2 log2(e) in one
         * factor: an infinite one turns a zero logit into NaN) */
        if (!isfinite(attn->softmax_scale / attn->softcap * 2.8853900817779268f) ||
            !isfinite(attn->softcap * 2.8853900817779268f))
            return fai_error(FAI_ERROR_BAD_PARAM,
                             "%s: attn.softcap (%g) is out of range for attn.softmax_scale (%g): "
                             "softmax_scale / softcap * 2 log2(e) and softcap * 2 log2(e) must be finite",
                             fn, (double)attn->softcap, (double)attn->softmax_scale);
    }
    if (attn->sinks && misaligned(attn->sinks, sizeof(float)))
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: attn.sinks (%p) is not 4-byte aligned", fn,
                         (const void *)attn->sinks);
    return FAI_SUCCESS;
}

/* Strides in elements of `elem_bytes` bytes: >= 0 and whole multiples of 16 bytes. */
static fai_status check_stride_of(const char *fn, const char *name, const char *field, int64_t stride,
                                  int elem_bytes)
{
    const int unit = 16 / elem_bytes;
    if (stride < 0 || stride % unit != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_STRIDE,
                         "%s: %s.%s (%lld) must be >= 0 and a multiple of %d elements (16 bytes)", fn,
                         name, field, (long long)stride, unit);
    return FAI_SUCCESS;
}

static fai_status check_stride(const char *fn, const char *name, const char *field, int64_t stride)
{
    return check_stride_of(fn, name, field, stride, 2);
}

static fai_status check_pointer(const char *fn, const char *name, const void *p)
{
    if (!p)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: %s is NULL", fn, name);
    if (misaligned(p, 16))
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: %s (%p) is not 16-byte aligned", fn,
                         name, p);
    return FAI_SUCCESS;
}

/* True when dimension A (n_a, s_a) nested inside B (n_b, s_b) over `d` contiguous elements
 * never maps two indices to one address: A steps past a row, B steps past all of A. */
static int nested(int64_t n_a, int64_t s_a, int64_t n_b, int64_t s_b, int64_t d)
{
    if (n_a > 1 && s_a < d)
        return 0;
    return n_b == 1 || s_b >= (n_a - 1) * s_a + d;
}

/* Everything but the dtype: pointer, strides, span, and for outputs no overlap. */
static fai_status check_tensor_layout(const char *fn, const char *name, const fai_tensor *t, int64_t tokens,
                                      int32_t heads, int32_t head_dim, int is_output);

fai_status fai_check_io_tensor(const char *fn, const char *name, const fai_tensor *t, int64_t tokens,
                               int32_t heads, int32_t head_dim, int is_output, fai_dtype dtype, const char *ref)
{
    if (t->dtype != FAI_DTYPE_FP16 && t->dtype != FAI_DTYPE_BF16)
        return fai_error(FAI_ERROR_NOT_SUPPORTED_DTYPE, "%s: %s.dtype (%d) is not supported (%s or %s)", fn, name,
                         (int)t->dtype, fai_dtype_name(FAI_DTYPE_FP16), fai_dtype_name(FAI_DTYPE_BF16));
    if (t->dtype != dtype)
        return fai_error(FAI_ERROR_NOT_SUPPORTED_DTYPE, "%s: %s.dtype (%d) is %s but %s.dtype is %s: %s must have %s's dtype",
                         fn, name, (int)t->dtype, fai_dtype_name(t->dtype), ref, fai_dtype_name(dtype), name, ref);
    return check_tensor_layout(fn, name, t, tokens, heads, head_dim, is_output);
}

fai_status fai_check_cache_holds(const char *fn, const char *cache_name, fai_dtype cache_dtype, const char *ref,
                                 fai_dtype ref_dtype)
{
    if ((cache_dtype == FAI_DTYPE_FP16 || cache_dtype == FAI_DTYPE_BF16) && cache_dtype != ref_dtype)
        return fai_error(FAI_ERROR_NOT_SUPPORTED_DTYPE,
                         "%s: %s.dtype (%d) is %s but %s.dtype is %s: an unquantized cache holds %s's dtype (a "
                         "quantized one takes FP16 or BF16)",
                         fn, cache_name, (int)cache_dtype, fai_dtype_name(cache_dtype), ref, fai_dtype_name(ref_dtype),
                         ref);
    return FAI_SUCCESS;
}

static fai_status check_tensor_layout(const char *fn, const char *name, const fai_tensor *t, int64_t tokens,
                                      int32_t heads, int32_t head_dim, int is_output)
{
    if (tokens == 0)
        return FAI_SUCCESS;
    char field[64];
    snprintf(field, sizeof field, "%s.data", name);
    FAI_TRY(check_pointer(fn, field, t->data));
    FAI_TRY(check_stride(fn, name, "token_stride", t->token_stride));
    FAI_TRY(check_stride(fn, name, "head_stride", t->head_stride));
    int64_t last;
    if (!mul_add_fits(tokens - 1, t->token_stride, head_dim, &last) ||
        !mul_add_fits(heads - 1, t->head_stride, last, &last))
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: %s spans more than 2^63 elements", fn, name);
    if (is_output && !nested(heads, t->head_stride, tokens, t->token_stride, head_dim) &&
        !nested(tokens, t->token_stride, heads, t->head_stride, head_dim))
        return fai_error(FAI_ERROR_BAD_PARAM_STRIDE,
                         "%s: %s strides (token_stride %lld, head_stride %lld) make elements "
                         "overlap for %lld tokens x %d heads x %d dims",
                         fn, name, (long long)t->token_stride, (long long)t->head_stride,
                         (long long)tokens, (int)heads, (int)head_dim);
    return FAI_SUCCESS;
}

/* The int8 cache's scales (or their absence for the other dtypes). */
static fai_status check_scales(const char *fn, const fai_kv_cache *c, int32_t batch, int32_t capacity, int32_t heads)
{
    if (c->dtype != FAI_DTYPE_INT8) {
        if (c->k_scale || c->v_scale)
            return fai_error(FAI_ERROR_BAD_PARAM,
                             "%s: cache.k_scale/v_scale are set, but a %s cache has no scales (leave them NULL)",
                             fn, fai_dtype_name(c->dtype));
        return FAI_SUCCESS;
    }
    if (c->scale_format != FAI_SCALES_FP32 && c->scale_format != FAI_SCALES_BF16X2)
        return fai_error(FAI_ERROR_BAD_PARAM,
                         "%s: cache.scale_format (%d) is not FAI_SCALES_FP32 (0) or FAI_SCALES_BF16X2 (1)", fn,
                         (int)c->scale_format);
    const int pairs = fai_cache_scale_pairs(c);
    if (pairs && c->v_scale)
        return fai_error(FAI_ERROR_BAD_PARAM,
                         "%s: cache.v_scale is set, but FAI_SCALES_BF16X2 keeps both scales in cache.k_scale's "
                         "words (leave v_scale NULL)",
                         fn);
    if (batch == 0 || capacity == 0)
        return FAI_SUCCESS;
    const float *ptrs[2] = {c->k_scale, c->v_scale};
    const char *names[2] = {"cache.k_scale", "cache.v_scale"};
    for (int i = 0; i < 2 - pairs; i++) {
        if (!ptrs[i])
            return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: %s is NULL (an int8 cache needs its scales)",
                             fn, names[i]);
        if (misaligned(ptrs[i], sizeof(float)))
            return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: %s (%p) is not 4-byte aligned", fn, names[i],
                             (const void *)ptrs[i]);
    }
    if (c->scale_seq_stride < 0 || c->scale_token_stride < 0 || c->scale_head_stride < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_STRIDE,
                         "%s: cache.scale_seq_stride (%lld), cache.scale_token_stride (%lld) and "
                         "cache.scale_head_stride (%lld) must be >= 0", fn,
                         (long long)c->scale_seq_stride, (long long)c->scale_token_stride,
                         (long long)c->scale_head_stride);
    int64_t last;
    if (!mul_add_fits(batch - 1, c->scale_seq_stride, 1, &last) ||
        !mul_add_fits(capacity - 1, c->scale_token_stride, last, &last) ||
        !mul_add_fits(heads - 1, c->scale_head_stride, last, &last))
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: %s span more than 2^63 elements", fn,
                         pairs ? "cache.k_scale's BF16X2 words" : "cache.k_scale and cache.v_scale");
    return FAI_SUCCESS;
}

fai_status fai_check_kv_cache(const char *fn, const fai_kv_cache *c, int32_t batch, int32_t heads,
                              int32_t head_dim)
{
    if (!fai_is_cache_dtype(c->dtype))
        return fai_error(FAI_ERROR_NOT_SUPPORTED_DTYPE,
                         "%s: cache.dtype (%d) is not supported (FAI_DTYPE_FP16, FAI_DTYPE_BF16, FAI_DTYPE_INT8, "
                         "FAI_DTYPE_FP8_E4M3 or FAI_DTYPE_FP8_E5M2)",
                         fn, (int)c->dtype);
    const int eb = fai_dtype_bytes(c->dtype);
    if (c->dtype != FAI_DTYPE_INT8)
        FAI_TRY(check_scales(fn, c, 0, 0, heads));
    if (c->capacity < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cache.capacity (%d) is negative", fn,
                         (int)c->capacity);
    /* The kernels index keys with int, looking a few thousand keys past the end ahead. */
    if (c->capacity > FAI_MAX_CACHE_CAPACITY)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cache.capacity (%d) is more than %d tokens", fn,
                         (int)c->capacity, (int)FAI_MAX_CACHE_CAPACITY);
    if (c->max_seq_len < 0 || c->max_seq_len > c->capacity)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                         "%s: cache.max_seq_len (%d) must be in [0, cache.capacity (%d)]", fn,
                         (int)c->max_seq_len, (int)c->capacity);
    if (batch == 0)
        return FAI_SUCCESS;
    if (!c->seq_lens)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: cache.seq_lens is NULL", fn);
    if (misaligned(c->seq_lens, sizeof(int32_t)))
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: cache.seq_lens (%p) is not 4-byte aligned",
                         fn, (const void *)c->seq_lens);
    if (c->capacity == 0 && !c->page_table)
        return FAI_SUCCESS; /* every sequence is empty: k and v are never read */
    FAI_TRY(check_pointer(fn, "cache.k", c->k));
    FAI_TRY(check_pointer(fn, "cache.v", c->v));
    FAI_TRY(check_stride_of(fn, "cache", "seq_stride", c->seq_stride, eb));
    FAI_TRY(check_stride_of(fn, "cache", "token_stride", c->token_stride, eb));
    FAI_TRY(check_stride_of(fn, "cache", "head_stride", c->head_stride, eb));
    /* What the strides span: batch slots of capacity tokens, or num_pages pages of page_size. */
    int32_t slots = batch, rows = c->capacity;
    if (c->page_table) {
        if (c->page_size < 1 || c->page_size > 256 || (c->page_size & (c->page_size - 1)))
            return fai_error(FAI_ERROR_BAD_PARAM, "%s: cache.page_size (%d) must be a power of two in [1, 256]", fn,
                             (int)c->page_size);
        if (c->num_pages < 1)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cache.num_pages (%d) must be >= 1 with a page table",
                             fn, (int)c->num_pages);
        if (misaligned(c->page_table, sizeof(int32_t)))
            return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: cache.page_table (%p) is not 4-byte aligned", fn,
                             (const void *)c->page_table);
        const int64_t pages_per_seq = ((int64_t)c->capacity + c->page_size - 1) / c->page_size;
        if (c->page_table_stride < pages_per_seq)
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                             "%s: cache.page_table_stride (%lld) is less than the %lld pages cache.capacity (%d) "
                             "needs at cache.page_size %d",
                             fn, (long long)c->page_table_stride, (long long)pages_per_seq, (int)c->capacity,
                             (int)c->page_size);
        int64_t table_last;
        if (!mul_add_fits(batch - 1, c->page_table_stride, pages_per_seq, &table_last))
            return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cache.page_table spans more than 2^63 entries", fn);
        slots = c->num_pages;
        rows = c->page_size;
    }
    int64_t last;
    if (!mul_add_fits(slots - 1, c->seq_stride, head_dim, &last) ||
        !mul_add_fits(rows - 1, c->token_stride, last, &last) ||
        !mul_add_fits(heads - 1, c->head_stride, last, &last))
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cache.k and cache.v span more than 2^63 elements", fn);
    return check_scales(fn, c, slots, rows, heads);
}

fai_status fai_current_device(const char *fn, fai_device_info *info)
{
    int dev = 0, major = 0;
    cudaError_t err = cudaGetDevice(&dev);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&info->num_sms, cudaDevAttrMultiProcessorCount, dev);
    info->cc_major = major;
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&info->smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev);
    if (err == cudaSuccess)
        err = cudaDeviceGetAttribute(&info->smem_per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED, err, "%s: querying the current CUDA device failed", fn);
    if (major < 8)
        return fai_error(FAI_ERROR_NOT_SUPPORTED_DEVICE,
                         "%s: device %d has compute capability %d.x; fai needs 8.0 or newer", fn, dev,
                         major);
    return FAI_SUCCESS;
}

fai_status fai_check_workspace(const char *fn, const char *size_fn, size_t needed, const void *workspace,
                               size_t workspace_bytes)
{
    if (needed == 0)
        return FAI_SUCCESS;
    if (!workspace || workspace_bytes < needed)
        return fai_error(FAI_ERROR_BAD_PARAM_WORKSPACE,
                         "%s: workspace (%p, %zu bytes) is smaller than the %zu bytes needed (see %s)", fn, workspace,
                         workspace_bytes, needed, size_fn);
    if ((uintptr_t)workspace % 16 != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: workspace (%p) is not 16-byte aligned", fn, workspace);
    return FAI_SUCCESS;
}
