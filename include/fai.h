/*
 * fai.h: the one public header of libfai, attention for LLM inference on NVIDIA GPUs.
 *
 * Conventions shared by every entry point (docs/api.md has the long form):
 *  - All tensor pointers are device pointers. Every call takes a stream (fai_stream_t), returns a
 *    fai_status, never synchronizes the device, never allocates device memory, and can be
 *    captured in a CUDA graph. Scratch memory comes from the caller: ask for its size
 *    with the matching *_workspace_size() function, which runs the same planning code.
 *  - Activations are [tokens, heads, head_dim] with explicit strides in elements
 *    (fai_tensor), so Q/K/V can be views into a fused QKV buffer. head_dim is contiguous.
 *  - GQA/MQA follow from the head counts: query head h reads KV head
 *    h / (num_q_heads / num_kv_heads); num_q_heads must be a multiple of num_kv_heads.
 *  - Softmax is computed in FP32 with FP32 accumulation. A query row that sees no key
 *    (an empty sequence) gets an output of zeros and a log-sum-exp of -infinity, never NaN.
 *  - On failure the call returns a non-zero status and fai_last_error() names the offending
 *    argument and value (per thread). A call whose arguments are rejected launches nothing;
 *    a call that launches several kernels and fails at a later one (a 3xxx status, or 4000) leaves
 *    the earlier ones enqueued, and its outputs are not valid.
 *
 * This header is C99 and C++ (extern "C") and includes no CUDA header: streams are passed as
 * fai_stream_t, which is the very type of cudaStream_t (struct CUstream_st *), so callers pass
 * their cudaStream_t (or 0 for the legacy default stream) as they are.
 */
#ifndef FAI_H
#define FAI_H

#include <stddef.h>
#include <stdint.h>

#define FAI_VERSION_MAJOR 0
#define FAI_VERSION_MINOR 1
#define FAI_VERSION_PATCH 1
/* MAJOR * 10000 + MINOR * 100 + PATCH, comparable with fai_version(). */
#define FAI_VERSION (FAI_VERSION_MAJOR * 10000 + FAI_VERSION_MINOR * 100 + FAI_VERSION_PATCH)

#if defined(_WIN32) && defined(FAI_SHARED_BUILD)
#define FAI_API __declspec(dllexport)
#elif defined(__GNUC__) && defined(FAI_SHARED_BUILD)
#define FAI_API __attribute__((visibility("default")))
#else
#define FAI_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* cudaStream_t itself, declared without the CUDA headers (they are not C99 -pedantic clean). */
struct CUstream_st;
typedef struct CUstream_st *fai_stream_t;

/* ---------------------------------------------------------------------------------------
 * Status codes. Values are pinned and grouped by category (value / 1000):
 *   0 success, 1xxx bad parameter (the caller's input is wrong), 2xxx not supported (valid
 *   input this build or device does not handle), 3xxx execution failed (a CUDA call failed),
 *   4xxx internal (a bug in fai: please report it).
 * One X-macro list generates the enum and fai_status_string(), so they never drift apart.
 * ------------------------------------------------------------------------------------- */
#define FAI_STATUS_LIST(X)                                                                  \
    X(FAI_SUCCESS, 0, "success")                                                            \
    X(FAI_ERROR_BAD_PARAM, 1000, "bad parameter: a value out of its valid range")           \
    X(FAI_ERROR_BAD_PARAM_NULL_POINTER, 1001, "bad parameter: a required pointer is NULL")  \
    X(FAI_ERROR_BAD_PARAM_SHAPE, 1002, "bad parameter: a size is negative or sizes disagree") \
    X(FAI_ERROR_BAD_PARAM_STRIDE, 1003, "bad parameter: a stride is negative, unaligned or overlapping") \
    X(FAI_ERROR_BAD_PARAM_MISALIGNED, 1004, "bad parameter: a pointer is not aligned as required")  \
    X(FAI_ERROR_BAD_PARAM_WORKSPACE, 1005, "bad parameter: the workspace is missing or too small") \
    X(FAI_ERROR_NOT_SUPPORTED, 2000, "not supported")                                       \
    X(FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, 2001, "not supported: head dimension")              \
    X(FAI_ERROR_NOT_SUPPORTED_DTYPE, 2002, "not supported: data type")                      \
    X(FAI_ERROR_NOT_SUPPORTED_DEVICE, 2003, "not supported: device (needs compute capability 8.0 or newer)") \
    X(FAI_ERROR_EXECUTION_FAILED, 3000, "execution failed: a CUDA runtime call failed")     \
    X(FAI_ERROR_EXECUTION_FAILED_LAUNCH, 3001, "execution failed: a kernel launch failed")  \
    X(FAI_ERROR_INTERNAL, 4000, "internal error in fai")

typedef enum fai_status {
#define FAI_STATUS_ENUM_(name, value, text) name = value,
    FAI_STATUS_LIST(FAI_STATUS_ENUM_)
#undef FAI_STATUS_ENUM_
    FAI_STATUS_FORCE_INT_ = 0x7fffffff
} fai_status;

/* The category of a status: FAI_SUCCESS, FAI_ERROR_BAD_PARAM, FAI_ERROR_NOT_SUPPORTED,
 * FAI_ERROR_EXECUTION_FAILED or FAI_ERROR_INTERNAL. */
#define FAI_STATUS_CATEGORY(s) ((fai_status)(((int)(s) / 1000) * 1000))

/* "FAI_ERROR_BAD_PARAM_SHAPE: bad parameter: ..."; a fixed string for unknown values. */
FAI_API const char *fai_status_string(fai_status status);

/* The message of this thread's most recent failed fai call, naming the argument and its
 * value, e.g. "fai_decode: attn.num_q_heads (12) is not a multiple of attn.num_kv_heads (8)".
 * Every fai call that returns a fai_status clears it on entry, so it is "" after a call that
 * succeeded. The pointer stays valid until this thread's next such call. */
FAI_API const char *fai_last_error(void);

/* FAI_VERSION of the library actually linked. */
FAI_API int fai_version(void);

/* ---------------------------------------------------------------------------------------
 * Data types and tensor descriptors
 * ------------------------------------------------------------------------------------- */
typedef enum fai_dtype {
    FAI_DTYPE_FP16 = 0,     /* IEEE binary16 */
    FAI_DTYPE_BF16 = 1,     /* bfloat16 (8-bit exponent, 8-bit significand): fai_prefill's q, k, v
                               and o, all four of one type (FP16 or BF16, not mixed);
                               fai_decode's q and o; fai_kv_append's k_new and v_new; a KV
                               cache's dtype (with BF16 queries, as FP16 with FP16 ones) */
    /* Quantized KV-cache element types (fai_kv_cache.dtype; queries and outputs FP16 or
     * BF16). The cache layout is the same as for FP16 with one-byte elements (docs/api.md,
     * "Quantized KV caches"); the codecs round to nearest even and saturate (docs/kv-quant.md). */
    FAI_DTYPE_INT8 = 2,     /* int8 codes, one scale per (token, KV head) (FP32 or BF16): x = code * scale */
    FAI_DTYPE_FP8_E4M3 = 3, /* OCP FP8 E4M3 ("e4m3fn": max 448, no infinities), no scale */
    FAI_DTYPE_FP8_E5M2 = 4  /* OCP FP8 E5M2 (max 57344), no scale */
} fai_dtype;

/* A [tokens, heads, head_dim] view: element (t, h, d) lives at
 *   data + t * token_stride + h * head_stride + d     (strides in elements, not bytes).
 * data must be 16-byte aligned and both strides multiples of 8 elements (16 bytes), so the
 * kernels can use 16-byte loads. Strides must be >= 0; outputs must not overlap themselves. */
typedef struct fai_tensor {
    void *data;
    fai_dtype dtype;
    int64_t token_stride;
    int64_t head_stride;
} fai_tensor;

/* How an int8 cache keeps its scales (fai_kv_cache.scale_format; below). */
typedef enum fai_scale_format {
    FAI_SCALES_FP32 = 0,  /* k_scale and v_scale: one float each per (token, KV head) */
    FAI_SCALES_BF16X2 = 1 /* k_scale: one word per (token, KV head), BF16 K scale low, V high */
} fai_scale_format;

/* A KV cache of one contiguous slot per sequence: token t of sequence b, KV head h is at
 *   k + b * seq_stride + t * token_stride + h * head_stride      (and the same for v).
 * A slot holds up to `capacity` tokens (seq_stride is usually capacity * token_stride, but
 * any non-overlapping strides work: [batch, capacity, heads, dim] and
 * [batch, heads, capacity, dim] are both fine). seq_lens[b] tokens of slot b are valid.
 * Alignment: k and v 16-byte aligned, all three strides multiples of 16 bytes (8 FP16 or
 * BF16 elements, 16 one-byte elements). Strides count elements of `dtype`.
 * An int8 cache (FAI_DTYPE_INT8) also has a scale per token and KV head, for K and for V,
 * in one of two formats (scale_format):
 * - FAI_SCALES_FP32 (0, the default): two float arrays, k_scale and v_scale, with
 *     k_scale[b * scale_seq_stride + t * scale_token_stride + h * scale_head_stride]
 *   (the natural layout is [batch, capacity, kv_heads]: 8 bytes of scales per token and head);
 * - FAI_SCALES_BF16X2: one array of 32-bit words at k_scale (cast to float *), addressed as
 *   above (strides in words), each holding the token's K scale as BF16 in its low half and its
 *   V scale in its high half (a __nv_bfloat162 {k, v}); v_scale NULL. Half the bytes of FP32
 *   scales; fai_kv_append rounds each scale to BF16 before coding the row with it, so the
 *   codes fit the scale the kernels read (attention error 1-5 % above FP32 scales' where it
 *   differs: docs/kv-quant.md).
 * FP8, FP16 and BF16 caches have no scales (leave the pointers NULL).
 * Zero the struct before filling it (memset, "= {0}", or take the one in a
 * fai_*_params_default()): fields added in its padding, as scale_format was, then read 0
 * (code filled field by field under an older header leaves scale_format undefined, and an
 * int8 cache is then refused unless it happens to hold 0). */
typedef struct fai_kv_cache {
    fai_dtype dtype;          /* element type of k and v */
    void *k;                  /* device */
    void *v;                  /* device */
    int64_t seq_stride;       /* elements between consecutive sequences' slots */
    int64_t token_stride;     /* elements between consecutive tokens */
    int64_t head_stride;      /* elements between consecutive KV heads */
    int32_t capacity;         /* tokens per slot, 0 .. 2^31 - 2^20 - 1 */
    const int32_t *seq_lens;  /* device, [batch], 4-byte aligned: valid tokens per sequence.
                                 Read on the device only: a value < 0 counts as 0 and a value
                                 over capacity as capacity (a guard, not a feature). */
    int32_t max_seq_len;      /* host-side upper bound of seq_lens used to plan the work
                                 (split-KV). 0 means capacity. fai_decode requires 0 ..
                                 capacity; fai_prefill takes any value and plans for capacity
                                 when it is outside 1 .. capacity. A larger seq_len is still
                                 computed correctly, only less evenly spread (except in
                                 fai_prefill over an int8/FP8 cache, which stages only this
                                 many keys per sequence: there it must be a true bound). */
    /* int8 caches only (pointers NULL otherwise; scale_format is then ignored); strides in
       4-byte elements (floats or BF16X2 words), >= 0. */
    fai_scale_format scale_format; /* FAI_SCALES_FP32 (0) or FAI_SCALES_BF16X2; int8 only */
    float *k_scale;           /* device, 4-byte aligned (written by fai_kv_append) */
    float *v_scale;           /* device, 4-byte aligned, same strides as k_scale; NULL with
                                 FAI_SCALES_BF16X2 */
    int64_t scale_seq_stride;
    int64_t scale_token_stride;
    int64_t scale_head_stride;
    /* Paged caches (vLLM's block tables; docs/api.md "Paged caches"). With a page table, k
     * and v (and the int8 scales) are a pool of num_pages pages of page_size tokens: token t
     * of page p, KV head h is at k + p * seq_stride + t * token_stride + h * head_stride
     * (seq_stride is the page stride), and token j of sequence b lives in page
     * page_table[b * page_table_stride + j / page_size], slot j % page_size. capacity is the
     * tokens a sequence can hold (at most page_table_stride * page_size). NULL: the
     * contiguous slots above. */
    const int32_t *page_table;  /* device, 4-byte aligned, or NULL */
    int64_t page_table_stride;  /* entries per sequence's row, >= ceil(capacity / page_size) */
    int32_t page_size;          /* a power of two, 1 .. 256 */
    int32_t num_pages;          /* pages in the pool, >= 1; a page number outside [0, num_pages)
                                   is clamped into it on the device (a guard, not a feature) */
} fai_kv_cache;

/* What every attention call shares: the head layout, the scale, the score bias, and the
 * variants of today's models (sliding window, logit soft-cap, attention sinks), each off when
 * zero. Row i of a sequence with seq_q queries and seq_k keys has its diagonal at key
 * d = i + seq_k - seq_q (the causal mask and ALiBi are aligned to it). The logit of key j is
 *   s = softmax_scale * q.k;  s = softcap * tanh(s / softcap) (softcap > 0);  s += ALiBi bias;
 * then keys outside the mask and the window are dropped, and the softmax runs over the rest
 * and the sink: O = sum_j e^(s_j - m) v_j / (e^(sink - m) + sum_j e^(s_j - m)).
 * Every entry point honors them (fai_prefill, fai_decode, hybrid batches; FP16 and quantized
 * caches, contiguous and paged). */
typedef struct fai_attention {
    int32_t num_q_heads;       /* 1 .. 65536, a multiple of num_kv_heads */
    int32_t num_kv_heads;      /* >= 1 */
    int32_t head_dim;          /* 64, 96, 128 or 256 */
    float softmax_scale;       /* multiplies q.k; > 0 and at most FLT_MAX / log2(e) (the kernels
                                  scale by softmax_scale * log2(e), which must be finite),
                                  usually 1/sqrt(head_dim) */
    int32_t alibi;             /* nonzero: add the ALiBi bias -slope_h * |distance to the
                                  bottom-right diagonal| (FlashAttention-2's convention) */
    const float *alibi_slopes; /* device, [num_q_heads] FP32, or NULL for the standard
                                  geometric slopes of the ALiBi paper for num_q_heads heads */
    int32_t window;            /* nonzero: sliding window; row i sees only the keys j with
                                  d - window_left <= j <= d + window_right. Combines with
                                  causal (which is the same as window_right = 0) */
    int32_t window_left;       /* >= 0, or -1: unbounded on that side */
    int32_t window_right;      /* >= 0, or -1: unbounded on that side */
    float softcap;             /* >= FLT_MIN (finite): logit soft-cap s = softcap * tanh(s / softcap),
                                  before the ALiBi bias and the mask; 0: off */
    const float *sinks;        /* device, [num_q_heads] FP32 (natural-log units, finite), or NULL:
                                  a logit per query head that joins the softmax denominator
                                  with no value (gpt-oss). A row with no visible key then gets
                                  zeros and an LSE of sinks[h] */
} fai_attention;

/* Default values: 32 heads of 128, scale 1/sqrt(128), no ALiBi, no variant, everything else
 * zero/NULL.
 * Start from it so that fields added in later versions get their defaults. */
FAI_API fai_attention fai_attention_default(void);

/* ---------------------------------------------------------------------------------------
 * Decoding attention: one query token per sequence against that sequence's KV cache.
 *
 *   O[b, h] = softmax_j(scale * Q[b, h] . K[b, j, h / g] + bias) . V[b, j, h / g]
 *   for j < seq_lens[b], g = num_q_heads / num_kv_heads.
 *
 * Runs at memory speed (CUDA cores, or tensor cores for GQA groups and long caches, picked
 * on the host); one pass over each KV head serves every query head of its group. When
 * batch * num_kv_heads cannot fill the GPU, each sequence's KV is split across blocks and
 * the parts merged by their log-sum-exp; the split is planned on the host from batch, heads
 * and cache.max_seq_len (never from device values) and needs a workspace of
 * fai_decode_workspace_size() bytes on the current device.
 * ------------------------------------------------------------------------------------- */
typedef struct fai_decode_params {
    fai_attention attn;
    int32_t batch;     /* sequences, >= 0 (0 launches nothing) */
    fai_tensor q;      /* [batch, num_q_heads, head_dim]: token b is sequence b's query; FP16
                          or BF16 */
    fai_tensor o;      /* [batch, num_q_heads, head_dim], written; q's dtype */
    fai_kv_cache cache; /* FP16 with FP16 q, BF16 with BF16 q; int8 and FP8 with either (a
                           BF16 q beyond FP16's range saturates to +-65504 on the tensor-core
                           path of a quantized cache, as do int8 values written from BF16 rows
                           beyond it: docs/api.md) */
    float *lse;        /* optional device [batch, num_q_heads] FP32, 4-byte aligned, written
                          with the natural log-sum-exp of the scaled, soft-capped, biased
                          scores, a sink included (-inf for an empty sequence, sinks[h] with
                          sinks); NULL to skip */
} fai_decode_params;

/* Defaults: fai_attention_default(), batch 0, FP16 tensors, NULL pointers, zero strides. */
FAI_API fai_decode_params fai_decode_params_default(void);

/* Bytes of workspace fai_decode() needs for these parameters on the current device (0 when
 * no split is planned). Validates the parameters like fai_decode() does. */
FAI_API fai_status fai_decode_workspace_size(const fai_decode_params *params, size_t *bytes);

/* Launches decoding attention on `stream`. workspace: device memory of at least
 * fai_decode_workspace_size() bytes (else FAI_ERROR_BAD_PARAM_WORKSPACE), 16-byte aligned
 * (else FAI_ERROR_BAD_PARAM_MISALIGNED); it may be NULL when that size is 0.
 * Its contents need no clearing and are not kept between calls; calls running at the same
 * time need separate workspaces. */
FAI_API fai_status fai_decode(const fai_decode_params *params, void *workspace,
                              size_t workspace_bytes, fai_stream_t stream);

/* ---------------------------------------------------------------------------------------
 * Attention over a variable-length batch: prefill, chunked prefill and hybrid batches.
 *
 * Sequences are packed (FlashAttention's varlen layout): sequence b owns query rows
 * cu_seqlens_q[b] .. cu_seqlens_q[b + 1] - 1 of q and o (seq_q of them) and key rows
 * cu_seqlens_k[b] .. cu_seqlens_k[b + 1] - 1 of k and v (seq_k of them):
 *
 *   O[i, h] = softmax_j(scale * Q[i, h] . K[j, h / g] + bias) . V[j, h / g]
 *
 * over keys j < seq_k, and with `causal` only j <= i + seq_k - seq_q (the mask aligned to
 * the bottom-right corner, so seq_q < seq_k serves chunked prefill and prefix caching), and
 * with attn.window only the keys inside the window (KV tiles wholly outside it are never
 * read, so the cost follows the window, not seq_k). Q, K, V and O are FP16 or BF16 (one type
 * for all four). Query rows that see no key (seq_k = 0, rows above the causal diagonal when
 * seq_q > seq_k, rows whose window holds no key) get zeros and an LSE of -inf (sinks[h] with
 * attn.sinks).
 *
 * Prefill sequences (seq_q > 1) run on the tensor cores (FlashAttention-2 tiling). A
 * sequence with seq_q = 1 is a decode step: in a hybrid batch it runs on the decoding
 * kernels instead of as a one-row tile (FP16 or BF16, K/V packed or from kv_cache).
 * Where those go is planned on the host: pass a host copy of cu_seqlens_q
 * (cu_seqlens_q_host) and only the kernels needed are launched; without it both are
 * launched and each takes its own sequences (correct either way).
 * Everything read on the device is read only by the kernels, so calls are graph-capturable
 * (a captured graph keeps the plan of the host values it was captured with).
 * ------------------------------------------------------------------------------------- */
typedef struct fai_prefill_params {
    fai_attention attn;
    int32_t batch;       /* sequences, >= 0 (0 launches nothing) */
    int32_t causal;      /* nonzero: bottom-right aligned causal mask */
    fai_tensor q;        /* [total_q, num_q_heads, head_dim] */
    fai_tensor k;        /* [total_k, num_kv_heads, head_dim] */
    fai_tensor v;        /* [total_k, num_kv_heads, head_dim] */
    fai_tensor o;        /* [total_q, num_q_heads, head_dim], written */
    const int32_t *cu_seqlens_q; /* device, [batch + 1], 4-byte aligned, non-decreasing,
                                    last <= total_q */
    const int32_t *cu_seqlens_k; /* device, [batch + 1], 4-byte aligned, non-decreasing,
                                    last <= total_k */
    int32_t total_q;     /* rows of q and o, 0 .. 2^31 - 2^20 - 1 */
    int32_t total_k;     /* rows of k and v, 0 .. 2^31 - 2^20 - 1 */
    int32_t max_seq_q;   /* host-side bound of seq_q, >= 1 when batch > 0: sizes the grid.
                            A longer sequence is still computed in full, less evenly. */
    int32_t max_seq_k;   /* host-side bound of seq_k (packed K/V), >= 0: plans the decode
                            rows' split (0: total_k) and picks the prefill kernel (on
                            Hopper, the wgmma one from 256 keys; 0: total_k / batch). A
                            longer sequence is still computed in full. */
    const int32_t *cu_seqlens_q_host; /* optional host copy of cu_seqlens_q ([batch + 1]):
                            plans which kernels run over which sequences, so it must
                            equal the device values when the work runs (a mismatch can
                            leave rows unwritten, never out of bounds); NULL: launch
                            both kinds over the whole batch */
    float *lse;          /* optional device [total_q, num_q_heads] FP32, 4-byte aligned:
                            natural log-sum-exp of each row's scaled, capped, biased scores
                            (and its sink); NULL to skip */
    const fai_kv_cache *kv_cache; /* optional (chunked prefill, prefix caching; docs/api.md
                            "Chunked prefill and prefix caching from a KV cache"): keys and
                            values come from this cache, contiguous or paged, instead of k
                            and v. Sequence b's keys are tokens 0 .. seq_lens[b] - 1 of cache
                            sequence b (slot b, or row b of the page table), so seq_k =
                            kv_cache->seq_lens[b] (device, clamped into [0, capacity]), and
                            its seq_q query rows (cu_seqlens_q) are the last seq_q of those
                            positions (the bottom-right-aligned causal mask): append the
                            chunk's K/V to the cache first (fai_kv_append), then call this.
                            kv_cache->dtype is q's (FP16 or BF16), or int8 / FP8 with FP16
                            or BF16 q: the prefill rows then read a copy of their keys and
                            values dequantized and rounded to q's dtype, staged in the
                            workspace (2 x prefill sequences x K x num_kv_heads x head_dim x
                            2 bytes, K = kv_cache->max_seq_len when in [1, capacity], else
                            capacity: with max_seq_len set, no sequence may be longer, as
                            only that many keys are staged; a longer one's prefill rows see
                            only its first K keys, tested by test_guards). A paged FP16/BF16 cache may be
                            gathered the same way (capacity keys a sequence) when the chunks
                            are long enough to repay the copy: ask fai_prefill_workspace_size
                            for every shape. k.data, v.data and
                            cu_seqlens_k must then be NULL and total_k and max_seq_k 0 (the
                            other fields of k and v are not read). Decode rows (seq_q = 1)
                            run on the decoding kernels as in any call, reading the cache as
                            fai_decode does; their split is planned for kv_cache->max_seq_len
                            keys when it is in [1, capacity], else for capacity (a workspace
                            when split: fai_prefill_workspace_size), and the same count picks
                            the prefill kernel as max_seq_k does for packed K/V. NULL: keys
                            and values from k and v. */
} fai_prefill_params;

/* Defaults: fai_attention_default(), batch 0, not causal, FP16 tensors, NULL pointers. */
FAI_API fai_prefill_params fai_prefill_params_default(void);

/* Bytes of workspace fai_prefill() needs on the current device (for the decode rows' KV
 * split, the staged copy of a quantized or gathered paged kv_cache, and on a Hopper GPU the
 * prefill kernel's work counter; 0 when none is planned). Validates the parameters like
 * fai_prefill() does. */
FAI_API fai_status fai_prefill_workspace_size(const fai_prefill_params *params, size_t *bytes);

/* Launches attention over the batch on `stream`; workspace as for fai_decode(). The values
 * of cu_seqlens_q/k are not seen by the host: the kernels clamp them into [0, total_q] and
 * [0, total_k] and treat a decreasing pair as an empty sequence (a guard against reading or
 * writing out of bounds, not a feature: such a batch gets no meaningful output). */
FAI_API fai_status fai_prefill(const fai_prefill_params *params, void *workspace,
                              size_t workspace_bytes, fai_stream_t stream);

/* ---------------------------------------------------------------------------------------
 * Writing new tokens into a KV cache, quantizing on the way.
 *
 * Row i of k_new and v_new ([num_tokens, num_kv_heads, head_dim], FP16 or BF16) goes to cache slot
 * slots[i]: sequence b = slots[i] / cache.capacity, position t = slots[i] % cache.capacity
 * (vLLM's slot mapping), for every KV head; in a paged cache page slots[i] / page_size,
 * position slots[i] % page_size. The cache is checked as fai_decode checks a cache of
 * cache_batch sequences, so a paged one still needs cache_batch >= 1 (it addresses nothing
 * there), a non-NULL page_table (it marks the cache as paged; the append does not read it)
 * and page_table_stride >= ceil(capacity / page_size). One call serves a whole prompt
 * (consecutive slots) and a decode step (one token per sequence) alike. Rows are written in the cache's
 * dtype: FP16 and BF16 copied (the cache must have the rows' dtype), FP8 (from FP16 or BF16
 * rows, via their exact FP32 values) rounded to nearest even with saturation, int8 quantized per
 * (token, KV head) with scale = max|x| / 127, written to cache.k_scale / v_scale (with
 * FAI_SCALES_BF16X2 rounded to the nearest BF16 first, the row coded with that value, and both
 * halves of the token's word at k_scale written). A negative
 * slot skips its row (padding); a slot >= cache_batch * cache.capacity is skipped as well (a
 * device-side guard: the host never sees the slots; paged: >= num_pages * page_size). The
 * sequence lengths are the caller's to update (cache.seq_lens and cache.max_seq_len are not
 * used). Slots of one call must be distinct. Needs no workspace.
 * ------------------------------------------------------------------------------------- */
typedef struct fai_kv_append_params {
    int32_t num_kv_heads;  /* 1 .. 65536 */
    int32_t head_dim;      /* 64, 96, 128 or 256 */
    int32_t num_tokens;    /* rows of k_new/v_new, >= 0 (0 launches nothing) */
    fai_tensor k_new;      /* [num_tokens, num_kv_heads, head_dim] FP16 or BF16 */
    fai_tensor v_new;      /* [num_tokens, num_kv_heads, head_dim], k_new's dtype */
    const int64_t *slots;  /* device, [num_tokens], 8-byte aligned */
    int32_t cache_batch;   /* sequence slots the cache holds (its first dimension), >= 1
                              (paged caches too, where it addresses nothing) */
    fai_kv_cache cache;    /* destination: dtype, k, v, strides, capacity, scales */
} fai_kv_append_params;

/* Defaults: 32 KV heads of 128, 0 tokens, FP16 tensors and cache, NULL pointers. */
FAI_API fai_kv_append_params fai_kv_append_params_default(void);

/* Launches the append on `stream` (memory-bound; graph-capturable). */
FAI_API fai_status fai_kv_append(const fai_kv_append_params *params, fai_stream_t stream);

/* ---------------------------------------------------------------------------------------
 * Merging attention states: attention over a union of key sets from the attention over each
 * set (cascade / shared-prefix attention, one sequence's KV split across calls or GPUs).
 *
 * Part p holds, for every (row, head), the output O_p of attention over its own keys and
 * the natural log-sum-exp LSE_p of their scores, as fai_decode and fai_prefill write them
 * (o and lse). With the parts' key sets disjoint, the attention over their union is
 *
 *   LSE = log sum_p e^(LSE_p),   O = sum_p e^(LSE_p - LSE) O_p
 *
 * computed in FP32 (exp2 domain) and written to o (and lse). A part whose LSE is -inf (it saw
 * no key) contributes nothing and its O row is not read (it may hold anything, NaN
 * included); a (row, head) where every part is -inf gets zeros and an LSE of -inf, never
 * NaN. LSEs must otherwise be finite (they are not checked on the device): a part with a NaN
 * LSE is dropped like an empty one, and a +inf LSE makes that (row, head) zeros with an LSE
 * of -inf. (Attention sinks: give the sink to exactly one of the parts, as one call with
 * attn.sinks does; the merge itself adds none.)
 * o may be one of the parts exactly (same data and strides: merging in place) or overlap
 * none of them; lse may be one of parts_lse or overlap none. Needs no workspace; one launch,
 * graph-capturable (the host arrays are read during the call only).
 * ------------------------------------------------------------------------------------- */
#define FAI_MERGE_MAX_PARTS 16 /* parts of one call; merge more in a tree of calls */

typedef struct fai_merge_params {
    int32_t num_parts;              /* 1 .. FAI_MERGE_MAX_PARTS (more: FAI_ERROR_NOT_SUPPORTED) */
    int32_t num_rows;               /* tokens, >= 0 (0 launches nothing) */
    int32_t num_heads;              /* >= 1 */
    int32_t head_dim;               /* a multiple of 8 in [8, 256] (the head dim of V) */
    const fai_tensor *parts;        /* host array [num_parts]: part p's output, a
                                       [num_rows, num_heads, head_dim] view (FP16 or BF16,
                                       every part and o of one dtype) */
    const float *const *parts_lse;  /* host array [num_parts] of device pointers: part p's
                                       LSE, FP32 [num_rows, num_heads] row-major (element
                                       r * num_heads + h), 4-byte aligned */
    fai_tensor o;                   /* [num_rows, num_heads, head_dim], written */
    float *lse;                     /* optional device FP32 [num_rows, num_heads], written with
                                       the merged natural LSE; NULL to skip */
} fai_merge_params;

/* Defaults: 2 parts, 0 rows, 32 heads of 128, FP16 o, NULL pointers. */
FAI_API fai_merge_params fai_merge_params_default(void);

/* Launches the merge of params->num_parts parts on `stream`. */
FAI_API fai_status fai_merge_states(const fai_merge_params *params, fai_stream_t stream);

/* The same for two parts (FlashInfer's merge_state): a and b merged into o (which may be
 * o_a or o_b: in place), lse optional (NULL to skip; may be lse_a or lse_b). Messages name
 * the arguments o_a, lse_a, o_b, lse_b, o and lse. */
FAI_API fai_status fai_merge_state(int32_t num_rows, int32_t num_heads, int32_t head_dim, fai_tensor o_a,
                                   const float *lse_a, fai_tensor o_b, const float *lse_b, fai_tensor o,
                                   float *lse, fai_stream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* FAI_H */
