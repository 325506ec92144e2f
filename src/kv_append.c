/* Public cache-write entry point: validate, then one launch of the append kernel
 * (src/kernels/kv_append.cu). */
#include "check.h"
#include "error.h"
#include "kv_append_args.h"

fai_kv_append_params fai_kv_append_params_default(void)
{
    fai_kv_append_params p = {0};
    p.num_kv_heads = 32;
    p.head_dim = 128;
    p.k_new.dtype = FAI_DTYPE_FP16;
    p.v_new.dtype = FAI_DTYPE_FP16;
    p.cache.dtype = FAI_DTYPE_FP16;
    return p;
}

fai_status fai_kv_append_validate(const char *fn, const fai_kv_append_params *p)
{
    if (!p)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: params is NULL", fn);
    if (p->num_kv_heads < 1 || p->num_kv_heads > FAI_MAX_HEADS)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: num_kv_heads (%d) must be in [1, %d]", fn,
                         (int)p->num_kv_heads, FAI_MAX_HEADS);
    if (p->head_dim != 64 && p->head_dim != 96 && p->head_dim != 128 && p->head_dim != 256)
        return fai_error(FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "%s: head_dim (%d) is not supported (64, 96, 128 or 256)",
                         fn, (int)p->head_dim);
    if (p->num_tokens < 0)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: num_tokens (%d) is negative", fn, (int)p->num_tokens);
    if (p->cache_batch < 1)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: cache_batch (%d) must be >= 1", fn, (int)p->cache_batch);
    /* The new rows: FP16 or BF16, both of one dtype. */
    FAI_TRY(fai_check_io_tensor(fn, "k_new", &p->k_new, p->num_tokens, p->num_kv_heads, p->head_dim, 0,
                                p->k_new.dtype, "k_new"));
    FAI_TRY(fai_check_io_tensor(fn, "v_new", &p->v_new, p->num_tokens, p->num_kv_heads, p->head_dim, 0,
                                p->k_new.dtype, "k_new"));
    /* The cache as fai_decode would read it with cache_batch sequences (its seq_lens are
     * not used here, so a placeholder stands in for the check). */
    fai_kv_cache c = p->cache;
    c.seq_lens = (const int32_t *)&p->cache_batch;
    c.max_seq_len = 0;
    FAI_TRY(fai_check_kv_cache(fn, &c, p->cache_batch, p->num_kv_heads, p->head_dim));
    /* An unquantized cache is written as it comes (FP16 rows to FP16, BF16 to BF16); the
     * quantized ones encode either from the rows' FP32 values. */
    FAI_TRY(fai_check_cache_holds(fn, "cache", c.dtype, "k_new", p->k_new.dtype));
    if (p->num_tokens > 0 && (p->cache.capacity > 0 || p->cache.page_table) && !p->slots)
        return fai_error(FAI_ERROR_BAD_PARAM_NULL_POINTER, "%s: slots is NULL", fn);
    if (p->slots && ((uintptr_t)p->slots % sizeof(int64_t)) != 0)
        return fai_error(FAI_ERROR_BAD_PARAM_MISALIGNED, "%s: slots (%p) is not 8-byte aligned", fn,
                         (const void *)p->slots);
    return FAI_SUCCESS;
}

fai_status fai_kv_append(const fai_kv_append_params *params, cudaStream_t stream)
{
    static const char fn[] = "fai_kv_append";
    fai_error_clear();
    FAI_TRY(fai_kv_append_validate(fn, params));
    const fai_kv_append_params *p = params;
    if (p->num_tokens == 0 || (p->cache.capacity == 0 && !p->cache.page_table))
        return FAI_SUCCESS; /* nothing to write (a zero-capacity cache has no slot) */
    fai_device_info dev;
    FAI_TRY(fai_current_device(fn, &dev));
    fai_kv_append_args a = {0};
    a.k_new = p->k_new.data;
    a.v_new = p->v_new.data;
    a.new_token_stride[0] = p->k_new.token_stride;
    a.new_head_stride[0] = p->k_new.head_stride;
    a.new_token_stride[1] = p->v_new.token_stride;
    a.new_head_stride[1] = p->v_new.head_stride;
    a.slots = p->slots;
    a.k = p->cache.k;
    a.v = p->cache.v;
    a.seq_stride = p->cache.seq_stride;
    a.token_stride = p->cache.token_stride;
    a.head_stride = p->cache.head_stride;
    a.k_scale = p->cache.k_scale;
    a.v_scale = p->cache.v_scale;
    a.scale_pairs = fai_cache_scale_pairs(&p->cache);
    a.scale_seq_stride = p->cache.scale_seq_stride;
    a.scale_token_stride = p->cache.scale_token_stride;
    a.scale_head_stride = p->cache.scale_head_stride;
    a.num_slots = (int64_t)p->cache_batch * p->cache.capacity;
    a.capacity = p->cache.capacity;
    if (p->cache.page_table) { /* slots address the page pool directly: page * page_size + row */
        a.num_slots = (int64_t)p->cache.num_pages * p->cache.page_size;
        a.capacity = p->cache.page_size;
    }
    a.num_tokens = p->num_tokens;
    a.num_kv_heads = p->num_kv_heads;
    a.head_dim = p->head_dim;
    a.dtype = p->cache.dtype;
    a.new_bf16 = p->k_new.dtype == FAI_DTYPE_BF16;
    return fai_kv_append_launch(&a, stream);
}
