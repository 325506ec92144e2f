/* CPU test of the API surface: status strings, version, the per-thread last error, and
 * every argument check of the decode and prefill entry points (each bad input gives its
 * status and a message naming the argument). Runs without a GPU: checks come before any device query,
 * and no call here reaches a launch. */
#include <float.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "fai.h"

#include "cpu_check.h"
#include "kv_append_args.h" /* fai_kv_append_validate: the checks alone, never a launch */

/* (FAKE addresses are never dereferenced: every call below fails its checks first.) */

static int32_t fake_lens[4];

/* A valid decode problem: 4 sequences, 32/8 heads of 128, a [batch, 1024, 8, 128] cache. */
static fai_decode_params valid_params(void)
{
    fai_decode_params p = fai_decode_params_default();
    p.attn.num_q_heads = 32;
    p.attn.num_kv_heads = 8;
    p.batch = 4;
    p.q.data = FAKE(1);
    p.q.token_stride = 32 * 128;
    p.q.head_stride = 128;
    p.o = p.q;
    p.o.data = FAKE(2);
    p.cache.k = FAKE(3);
    p.cache.v = FAKE(4);
    p.cache.token_stride = 8 * 128;
    p.cache.head_stride = 128;
    p.cache.capacity = 1024;
    p.cache.seq_stride = 1024 * 8 * 128;
    p.cache.seq_lens = fake_lens;
    return p;
}

/* Runs fai_decode and fai_decode_workspace_size on p; both must fail with `want` and a
 * message containing `needle`. */
static void expect_reject(int line, const fai_decode_params *p, fai_status want, const char *needle)
{
    size_t bytes = 123;
    fai_status s = fai_decode_workspace_size(p, &bytes);
    CHECK(s == want, "line %d: workspace_size gave %s, want %s (%s)", line, fai_status_string(s),
          fai_status_string(want), fai_last_error());
    CHECK(strstr(fai_last_error(), needle) != NULL, "line %d: message '%s' lacks '%s'", line,
          fai_last_error(), needle);
    CHECK(strstr(fai_last_error(), "fai_decode_workspace_size") != NULL, "line %d: '%s'", line, fai_last_error());
    CHECK(bytes == 0, "line %d: bytes %zu left set on failure", line, bytes);
    s = fai_decode(p, NULL, 0, 0);
    CHECK(s == want, "line %d: fai_decode gave %s, want %s (%s)", line, fai_status_string(s),
          fai_status_string(want), fai_last_error());
    CHECK(strstr(fai_last_error(), needle) != NULL, "line %d: message '%s' lacks '%s'", line,
          fai_last_error(), needle);
}
#define REJECT(p, want, needle) expect_reject(__LINE__, &(p), want, needle)

static void test_status_strings(void)
{
    CHECK(strcmp(fai_status_string(FAI_SUCCESS), "FAI_SUCCESS: success") == 0, "%s",
          fai_status_string(FAI_SUCCESS));
    CHECK(strncmp(fai_status_string(FAI_ERROR_BAD_PARAM_SHAPE), "FAI_ERROR_BAD_PARAM_SHAPE:", 26) == 0, "%s",
          fai_status_string(FAI_ERROR_BAD_PARAM_SHAPE));
    CHECK(strncmp(fai_status_string((fai_status)12345), "FAI_UNKNOWN_STATUS", 18) == 0, "%s",
          fai_status_string((fai_status)12345));
    /* Pinned values and categories. */
    CHECK(FAI_ERROR_BAD_PARAM == 1000 && FAI_ERROR_NOT_SUPPORTED == 2000 && FAI_ERROR_EXECUTION_FAILED == 3000 &&
              FAI_ERROR_INTERNAL == 4000,
          "category values moved");
    CHECK(FAI_STATUS_CATEGORY(FAI_ERROR_BAD_PARAM_WORKSPACE) == FAI_ERROR_BAD_PARAM, "category");
    CHECK(FAI_STATUS_CATEGORY(FAI_ERROR_NOT_SUPPORTED_HEAD_DIM) == FAI_ERROR_NOT_SUPPORTED, "category");
    CHECK(FAI_STATUS_CATEGORY(FAI_ERROR_EXECUTION_FAILED_LAUNCH) == FAI_ERROR_EXECUTION_FAILED, "category");
    CHECK(FAI_STATUS_CATEGORY(FAI_SUCCESS) == FAI_SUCCESS, "category");
    CHECK(fai_version() == FAI_VERSION, "fai_version %d vs %d", fai_version(), FAI_VERSION);
}

static void test_decode_rejects(void)
{
    fai_decode_params p;
    CHECK(fai_decode(NULL, NULL, 0, 0) == FAI_ERROR_BAD_PARAM_NULL_POINTER, "NULL params");
    CHECK(strstr(fai_last_error(), "params is NULL") != NULL, "%s", fai_last_error());
    p = valid_params();
    CHECK(fai_decode_workspace_size(&p, NULL) == FAI_ERROR_BAD_PARAM_NULL_POINTER, "NULL bytes");
    CHECK(strstr(fai_last_error(), "bytes is NULL") != NULL, "%s", fai_last_error());

    /* Heads and head dim. */
    p = valid_params(); p.attn.num_q_heads = 12;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "attn.num_q_heads (12) is not a multiple of attn.num_kv_heads (8)");
    p = valid_params(); p.attn.num_q_heads = 0;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "attn.num_q_heads (0)");
    p = valid_params(); p.attn.num_kv_heads = -1;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "attn.num_kv_heads (-1)");
    p = valid_params(); p.attn.num_q_heads = p.attn.num_kv_heads = 65537; /* the kernels' int products */
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "attn.num_q_heads (65537) is more than 65536");
    p = valid_params(); p.attn.head_dim = 80;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "attn.head_dim (80)");
    p = valid_params(); p.attn.head_dim = 0;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "attn.head_dim (0)");
    p = valid_params(); p.attn.softmax_scale = 0.0f;
    REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softmax_scale (0)");
    p = valid_params(); p.attn.softmax_scale = -1.0f / 0.0f;
    REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softmax_scale (-inf)");
    /* Finite but too large: the kernels' scale * log2(e) would overflow. */
    p = valid_params(); p.attn.softmax_scale = FLT_MAX;
    REJECT(p, FAI_ERROR_BAD_PARAM, "must be > 0 and at most FLT_MAX / log2(e) (2.35866e+38)");
    p = valid_params(); p.attn.alibi = 1; p.attn.alibi_slopes = (const float *)((char *)FAKE(5) + 2);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "attn.alibi_slopes");

    /* Sizes. */
    p = valid_params(); p.batch = -3;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "batch (-3) is negative");
    p = valid_params(); p.cache.capacity = -1;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.capacity (-1)");
    p = valid_params(); p.cache.max_seq_len = 2000;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.max_seq_len (2000)");
    p = valid_params(); p.cache.max_seq_len = -5;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.max_seq_len (-5)");

    /* Data types. */
    p = valid_params(); p.q.dtype = (fai_dtype)7;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "q.dtype (7)");
    p = valid_params(); p.o.dtype = (fai_dtype)1;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "o.dtype (1)");
    p = valid_params(); p.cache.dtype = (fai_dtype)1;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (1)");
    p = valid_params(); p.cache.dtype = (fai_dtype)9;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (9)");
    p = valid_params(); p.q.dtype = FAI_DTYPE_INT8; /* quantized types are for caches only */
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "q.dtype (2)");

    /* Quantized caches: int8 needs its scales; FP8 takes none; one-byte strides. */
    p = valid_params(); p.cache.dtype = FAI_DTYPE_INT8;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.k_scale is NULL");
    p.cache.k_scale = (float *)FAKE(7);
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.v_scale is NULL");
    p.cache.v_scale = (float *)((char *)FAKE(8) + 2);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cache.v_scale");
    p.cache.v_scale = (float *)FAKE(8);
    p.cache.scale_token_stride = -8;
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE,
           "cache.scale_seq_stride (0), cache.scale_token_stride (-8) and cache.scale_head_stride (0) must be >= 0");
    p.cache.scale_token_stride = 8;
    p.cache.scale_seq_stride = (int64_t)1 << 62;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.k_scale and cache.v_scale span more than 2^63");
    /* FAI_SCALES_BF16X2: both scales in k_scale's words, v_scale NULL; other formats refused;
     * the format of a cache without scales is not looked at. */
    p = valid_params(); p.cache.dtype = FAI_DTYPE_INT8; p.cache.k_scale = (float *)FAKE(7);
    p.cache.scale_format = (fai_scale_format)2;
    REJECT(p, FAI_ERROR_BAD_PARAM, "cache.scale_format (2) is not FAI_SCALES_FP32 (0) or FAI_SCALES_BF16X2 (1)");
    p.cache.scale_format = (fai_scale_format)-1;
    REJECT(p, FAI_ERROR_BAD_PARAM, "cache.scale_format (-1)");
    p.cache.scale_format = FAI_SCALES_BF16X2; p.cache.v_scale = (float *)FAKE(8);
    REJECT(p, FAI_ERROR_BAD_PARAM, "cache.v_scale is set, but FAI_SCALES_BF16X2 keeps both scales");
    p.cache.v_scale = NULL; p.cache.k_scale = NULL;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.k_scale is NULL");
    p.cache.k_scale = (float *)((char *)FAKE(7) + 2);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cache.k_scale");
    p.cache.k_scale = (float *)FAKE(7);
    { /* (accepted: past the checks, failing at most at the device query without a GPU) */
        size_t bytes = 1;
        fai_status s = fai_decode_workspace_size(&p, &bytes);
        CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "int8 FAI_SCALES_BF16X2, v_scale NULL: %s",
              fai_last_error());
        p.cache.scale_seq_stride = (int64_t)1 << 62;
        REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.k_scale's BF16X2 words span more than 2^63");
        p = valid_params(); p.cache.scale_format = (fai_scale_format)77;
        s = fai_decode_workspace_size(&p, &bytes);
        CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "FP16 cache, scale_format 77: %s", fai_last_error());
    }
    p = valid_params(); p.cache.dtype = FAI_DTYPE_FP8_E4M3; p.cache.k_scale = (float *)FAKE(7);
    REJECT(p, FAI_ERROR_BAD_PARAM, "a FAI_DTYPE_FP8_E4M3 cache has no scales");
    p = valid_params(); p.cache.dtype = FAI_DTYPE_FP8_E5M2; p.cache.token_stride = 8 * 128 + 8;
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "must be >= 0 and a multiple of 16 elements");

    /* Paged caches: page size, pool, table alignment and width. */
    static const int32_t table[4 * 65];
    p = valid_params(); p.cache.page_table = table; p.cache.page_table_stride = 64; p.cache.num_pages = 256;
    p.cache.seq_stride = 16 * 8 * 128;
    p.cache.page_size = 12;
    REJECT(p, FAI_ERROR_BAD_PARAM, "cache.page_size (12) must be a power of two in [1, 256]");
    p.cache.page_size = 512;
    REJECT(p, FAI_ERROR_BAD_PARAM, "cache.page_size (512)");
    p.cache.page_size = 16;
    p.cache.num_pages = 0;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.num_pages (0) must be >= 1");
    p.cache.num_pages = 256;
    p.cache.page_table_stride = 63; /* capacity 1024 needs 64 pages of 16 */
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.page_table_stride (63) is less than the 64 pages");
    p.cache.page_table_stride = 64;
    p.cache.page_table = (const int32_t *)((const char *)table + 2);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cache.page_table");
    p.cache.page_table = table;
    p.cache.seq_stride = (int64_t)1 << 56;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.k and cache.v span more than 2^63 elements");

    /* Null pointers. */
    p = valid_params(); p.q.data = NULL;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "q.data is NULL");
    p = valid_params(); p.o.data = NULL;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "o.data is NULL");
    p = valid_params(); p.cache.k = NULL;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.k is NULL");
    p = valid_params(); p.cache.v = NULL;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.v is NULL");
    p = valid_params(); p.cache.seq_lens = NULL;
    REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.seq_lens is NULL");

    /* Alignment for 16-byte loads. */
    p = valid_params(); p.q.data = (char *)FAKE(1) + 8;
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "q.data");
    p = valid_params(); p.o.data = (char *)FAKE(2) + 2;
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "o.data");
    p = valid_params(); p.cache.v = (char *)FAKE(4) + 4;
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cache.v");
    p = valid_params(); p.cache.seq_lens = (const int32_t *)((char *)fake_lens + 1);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cache.seq_lens");
    p = valid_params(); p.lse = (float *)((char *)FAKE(6) + 2);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "lse");

    /* Strides: negative, not a multiple of 8 elements, overlapping outputs, overflow. */
    p = valid_params(); p.q.token_stride = -4096;
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "q.token_stride (-4096)");
    p = valid_params(); p.q.head_stride = 100;
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "q.head_stride (100)");
    p = valid_params(); p.cache.token_stride = 1028;
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "cache.token_stride (1028)");
    p = valid_params(); p.cache.seq_stride = 12;
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "cache.seq_stride (12)");
    p = valid_params(); p.o.head_stride = 64; /* heads of 128 dims overlap */
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "o strides");
    p = valid_params(); p.o.token_stride = 128; /* tokens land on the next token's heads */
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "o strides");
    p = valid_params(); p.cache.seq_stride = (int64_t)1 << 62;
    REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.k and cache.v span more than 2^63 elements");

    /* The workspace check comes last; with no GPU it is never reached here. */
}

/* Valid layouts the checks must accept (they then fail only at the device query on a
 * machine without a GPU, or pass on one: so only the status category is compared). */
static void test_decode_accepts(void)
{
    size_t bytes = 0;
    fai_decode_params p = valid_params();
    /* Head-major output [heads, batch, dim] and a fused-QKV Q view. */
    p.o.head_stride = 4 * 128;
    p.o.token_stride = 128;
    p.q.token_stride = (32 + 2 * 8) * 128;
    fai_status s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "valid layout rejected: %s", fai_last_error());
    /* The largest scales below FLT_MAX / log2(e) pass. */
    p = valid_params();
    p.attn.softmax_scale = 2.3e38f;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "softmax_scale 2.3e38 rejected: %s", fai_last_error());
    /* batch 0 needs no pointers at all. */
    p = fai_decode_params_default();
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "batch 0 rejected: %s", fai_last_error());
    /* A cache of capacity 0 is never read: k and v may be NULL. */
    p = valid_params();
    p.cache.capacity = 0;
    p.cache.k = p.cache.v = NULL;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "capacity 0 rejected: %s", fai_last_error());
    if (s == FAI_SUCCESS)
        CHECK(strcmp(fai_last_error(), "") == 0, "success leaves message '%s'", fai_last_error());
    /* Quantized caches with their own strides: an int8 [batch, heads, capacity, dim] cache
     * with scales [batch, heads, capacity]; an FP8 cache with a 16-byte token stride. */
    p = valid_params();
    p.cache.dtype = FAI_DTYPE_INT8;
    p.cache.token_stride = 128;
    p.cache.head_stride = 1024 * 128;
    p.cache.k_scale = (float *)FAKE(7);
    p.cache.v_scale = (float *)FAKE(8);
    p.cache.scale_seq_stride = 8 * 1024;
    p.cache.scale_token_stride = 1;
    p.cache.scale_head_stride = 1024;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "int8 cache rejected: %s", fai_last_error());
    p = valid_params();
    p.cache.dtype = FAI_DTYPE_FP8_E4M3;
    p.cache.token_stride = 8 * 128 + 16;
    p.cache.seq_stride = 1024 * (8 * 128 + 16);
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "fp8 cache rejected: %s", fai_last_error());
    /* A paged int8 cache: 300 pages of 16 tokens (the pool spans pages, not sequences), a
     * table row of 64 pages plus padding. */
    static const int32_t table2[4 * 70];
    p = valid_params();
    p.cache.dtype = FAI_DTYPE_INT8;
    p.cache.page_table = table2;
    p.cache.page_table_stride = 70;
    p.cache.page_size = 16;
    p.cache.num_pages = 300;
    p.cache.seq_stride = 16 * 8 * 128;
    p.cache.k_scale = (float *)FAKE(7);
    p.cache.v_scale = (float *)FAKE(8);
    p.cache.scale_seq_stride = 16 * 8;
    p.cache.scale_token_stride = 8;
    p.cache.scale_head_stride = 1;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "paged cache rejected: %s", fai_last_error());
}

/* A valid append: 10 new tokens of 8 heads of 128 into an int8 cache of 4 x 1024 slots. */
static fai_kv_append_params valid_append(void)
{
    fai_kv_append_params p = fai_kv_append_params_default();
    p.num_kv_heads = 8;
    p.head_dim = 128;
    p.num_tokens = 10;
    p.k_new.data = FAKE(1);
    p.k_new.token_stride = 8 * 128;
    p.k_new.head_stride = 128;
    p.v_new = p.k_new;
    p.v_new.data = FAKE(2);
    p.slots = (const int64_t *)FAKE(3);
    p.cache_batch = 4;
    p.cache.dtype = FAI_DTYPE_INT8;
    p.cache.k = FAKE(4);
    p.cache.v = FAKE(5);
    p.cache.token_stride = 8 * 128;
    p.cache.head_stride = 128;
    p.cache.capacity = 1024;
    p.cache.seq_stride = 1024 * 8 * 128;
    p.cache.k_scale = (float *)FAKE(6);
    p.cache.v_scale = (float *)FAKE(7);
    p.cache.scale_seq_stride = 1024 * 8;
    p.cache.scale_token_stride = 8;
    p.cache.scale_head_stride = 1;
    return p;
}

static void expect_append_reject(int line, const fai_kv_append_params *p, fai_status want, const char *needle)
{
    const fai_status s = fai_kv_append(p, 0);
    CHECK(s == want, "line %d: fai_kv_append gave %s, want %s (%s)", line, fai_status_string(s),
          fai_status_string(want), fai_last_error());
    CHECK(strstr(fai_last_error(), needle) != NULL, "line %d: message '%s' lacks '%s'", line, fai_last_error(),
          needle);
    CHECK(strstr(fai_last_error(), "fai_kv_append") != NULL, "line %d: '%s'", line, fai_last_error());
}
#define REJECT_APPEND(p, want, needle) expect_append_reject(__LINE__, &(p), want, needle)

static void test_append_checks(void)
{
    fai_kv_append_params p;
    CHECK(fai_kv_append(NULL, 0) == FAI_ERROR_BAD_PARAM_NULL_POINTER, "NULL params");
    p = valid_append(); p.num_kv_heads = 0;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_SHAPE, "num_kv_heads (0)");
    p = valid_append(); p.num_kv_heads = 1073709057; /* its head loop's 2 x heads wrapped */
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_SHAPE, "num_kv_heads (1073709057) must be in [1, 65536]");
    p = valid_append(); p.head_dim = 80;
    REJECT_APPEND(p, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "head_dim (80)");
    p = valid_append(); p.num_tokens = -1;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_SHAPE, "num_tokens (-1)");
    p = valid_append(); p.cache_batch = 0;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache_batch (0)");
    p = valid_append(); p.k_new.data = NULL;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "k_new.data is NULL");
    p = valid_append(); p.v_new.dtype = FAI_DTYPE_INT8;
    REJECT_APPEND(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "v_new.dtype (2)");
    p = valid_append(); p.v_new.head_stride = 100;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_STRIDE, "v_new.head_stride (100)");
    p = valid_append(); p.slots = NULL;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "slots is NULL");
    p = valid_append(); p.slots = (const int64_t *)((char *)FAKE(3) + 4);
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "slots");
    p = valid_append(); p.cache.k_scale = NULL;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.k_scale is NULL");
    p = valid_append(); p.cache.scale_format = FAI_SCALES_BF16X2;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM, "cache.v_scale is set, but FAI_SCALES_BF16X2");
    p = valid_append(); p.cache.scale_format = (fai_scale_format)3;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM, "cache.scale_format (3)");
    p = valid_append(); p.cache.dtype = FAI_DTYPE_FP8_E5M2;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM, "has no scales");
    p = valid_append(); p.cache.dtype = (fai_dtype)11;
    REJECT_APPEND(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (11)");
    p = valid_append(); p.cache.k = NULL;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cache.k is NULL");
    p = valid_append(); p.cache.head_stride = 120;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_STRIDE, "cache.head_stride (120)");
    /* A paged cache is checked as a cache of cache_batch sequences (docs/api.md, "Paged
     * caches"): cache_batch >= 1 though it addresses nothing (the default 0 is refused), a
     * page_table (not read by the append) and a table row wide enough for capacity. */
    static const int32_t append_table[4 * 64];
    p = valid_append();
    p.cache.page_table = append_table;
    p.cache.page_table_stride = 64; /* capacity 1024 in pages of 16 */
    p.cache.page_size = 16;
    p.cache.num_pages = 300;
    p.cache.seq_stride = 16 * 8 * 128;
    p.cache.scale_seq_stride = 16 * 8;
    CHECK(fai_kv_append_validate("fai_kv_append", &p) == FAI_SUCCESS, "paged append rejected: %s", fai_last_error());
    p.cache_batch = 1;
    CHECK(fai_kv_append_validate("fai_kv_append", &p) == FAI_SUCCESS, "paged append, cache_batch 1: %s",
          fai_last_error());
    p.cache_batch = fai_kv_append_params_default().cache_batch;
    CHECK(p.cache_batch == 0, "default cache_batch %d", (int)p.cache_batch);
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_SHAPE, "fai_kv_append: cache_batch (0) must be >= 1");
    p.cache_batch = 4;
    p.cache.page_table_stride = 63;
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_SHAPE, "cache.page_table_stride (63) is less than the 64 pages");
    p.cache.page_table_stride = 64;
    p.cache.page_table = (const int32_t *)((const char *)append_table + 2);
    REJECT_APPEND(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cache.page_table");
    /* Nothing to write: succeeds without a device. */
    p = valid_append(); p.num_tokens = 0;
    CHECK(fai_kv_append(&p, 0) == FAI_SUCCESS, "0 tokens: %s", fai_last_error());
    p = valid_append(); p.cache.capacity = 0; p.slots = NULL;
    CHECK(fai_kv_append(&p, 0) == FAI_SUCCESS, "capacity 0: %s", fai_last_error());
}

/* A valid varlen problem: 4 sequences in 1000 query and 2000 key rows, 32/8 heads of 128,
 * compact [tokens, heads, dim] tensors. */
static int32_t fake_cu_q[8], fake_cu_k[8];
static const int32_t host_cu_q[5] = {0, 100, 101, 600, 1000};

static fai_prefill_params valid_prefill(void)
{
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = 32;
    p.attn.num_kv_heads = 8;
    p.batch = 4;
    p.causal = 1;
    p.total_q = 1000;
    p.total_k = 2000;
    p.max_seq_q = 500;
    p.q.data = FAKE(1);
    p.q.token_stride = 32 * 128;
    p.q.head_stride = 128;
    p.o = p.q;
    p.o.data = FAKE(2);
    p.k.data = FAKE(3);
    p.k.token_stride = 8 * 128;
    p.k.head_stride = 128;
    p.v = p.k;
    p.v.data = FAKE(4);
    p.cu_seqlens_q = fake_cu_q;
    p.cu_seqlens_k = fake_cu_k;
    return p;
}

/* Runs fai_prefill_workspace_size and fai_prefill on p; both must fail with `want` and a
 * message that starts with the function's name and contains `needle`. */
static void expect_prefill_reject(int line, const fai_prefill_params *p, fai_status want, const char *needle)
{
    static const char ws_fn[] = "fai_prefill_workspace_size: ", fn[] = "fai_prefill: ";
    size_t bytes = 123;
    fai_status s = fai_prefill_workspace_size(p, &bytes);
    CHECK(s == want, "line %d: workspace_size gave %s, want %s (%s)", line, fai_status_string(s),
          fai_status_string(want), fai_last_error());
    CHECK(strstr(fai_last_error(), needle) != NULL, "line %d: message '%s' lacks '%s'", line,
          fai_last_error(), needle);
    CHECK(strncmp(fai_last_error(), ws_fn, strlen(ws_fn)) == 0, "line %d: '%s'", line, fai_last_error());
    CHECK(bytes == 0, "line %d: bytes %zu left set on failure", line, bytes);
    s = fai_prefill(p, NULL, 0, 0);
    CHECK(s == want, "line %d: fai_prefill gave %s, want %s (%s)", line, fai_status_string(s),
          fai_status_string(want), fai_last_error());
    CHECK(strstr(fai_last_error(), needle) != NULL, "line %d: message '%s' lacks '%s'", line,
          fai_last_error(), needle);
    CHECK(strncmp(fai_last_error(), fn, strlen(fn)) == 0, "line %d: '%s'", line, fai_last_error());
}
#define PREFILL_REJECT(p, want, needle) expect_prefill_reject(__LINE__, &(p), want, needle)

static void test_prefill_rejects(void)
{
    fai_prefill_params p;
    size_t bytes = 123;
    CHECK(fai_prefill(NULL, NULL, 0, 0) == FAI_ERROR_BAD_PARAM_NULL_POINTER, "NULL params");
    CHECK(strstr(fai_last_error(), "fai_prefill: params is NULL") != NULL, "%s", fai_last_error());
    CHECK(fai_prefill_workspace_size(NULL, &bytes) == FAI_ERROR_BAD_PARAM_NULL_POINTER, "NULL params");
    CHECK(strstr(fai_last_error(), "fai_prefill_workspace_size: params is NULL") != NULL, "%s", fai_last_error());
    CHECK(bytes == 0, "bytes %zu left set on failure", bytes);
    p = valid_prefill();
    CHECK(fai_prefill_workspace_size(&p, NULL) == FAI_ERROR_BAD_PARAM_NULL_POINTER, "NULL bytes");
    CHECK(strstr(fai_last_error(), "fai_prefill_workspace_size: bytes is NULL") != NULL, "%s", fai_last_error());

    /* The attention descriptor: checked as fai_decode checks it. */
    p = valid_prefill(); p.attn.num_q_heads = 12;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "attn.num_q_heads (12) is not a multiple of attn.num_kv_heads (8)");
    p = valid_prefill(); p.attn.num_kv_heads = 0;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "attn.num_kv_heads (0)");
    p = valid_prefill(); p.attn.head_dim = 80;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "attn.head_dim (80)");
    p = valid_prefill(); p.attn.head_dim = 512;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "attn.head_dim (512)");
    p = valid_prefill(); p.attn.softmax_scale = -0.125f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softmax_scale (-0.125)");
    p = valid_prefill(); p.attn.softmax_scale = 0.0f / 0.0f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softmax_scale");
    p = valid_prefill(); p.attn.alibi = 1; p.attn.alibi_slopes = (const float *)((char *)FAKE(5) + 2);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "attn.alibi_slopes");
    /* batch 0 launches nothing but its descriptor is still validated. */
    p = fai_prefill_params_default(); p.attn.head_dim = 80;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "attn.head_dim (80)");

    /* Sizes. */
    p = valid_prefill(); p.batch = -1;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "batch (-1)");
    p = valid_prefill(); p.total_q = -1;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "total_q (-1)");
    p = valid_prefill(); p.total_k = -7;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "total_k (-7)");
    /* Past a cache's capacity bound the kernels' int tile counts would wrap (2^31 - 1 keys
     * visited no tile): refused like cache.capacity. */
    p = valid_prefill(); p.total_k = INT32_MAX;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "total_q (1000) and total_k (2147483647) must be at most 2146435071");
    p = valid_prefill(); p.total_q = INT32_MAX - (1 << 20) + 1;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "total_q (2146435072) and total_k");
    p = valid_prefill(); p.max_seq_k = -1;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "max_seq_k (-1)");
    p = valid_prefill(); p.max_seq_q = 0;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "max_seq_q (0)");
    p = valid_prefill(); p.max_seq_q = -5;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "max_seq_q (-5)");

    /* The offsets: required (device, 4-byte aligned) when batch > 0. */
    p = valid_prefill(); p.cu_seqlens_q = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cu_seqlens_q is NULL");
    p = valid_prefill(); p.cu_seqlens_k = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "cu_seqlens_k is NULL");
    p = valid_prefill(); p.cu_seqlens_q = (const int32_t *)((char *)fake_cu_q + 2);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cu_seqlens_q");
    p = valid_prefill(); p.cu_seqlens_k = (const int32_t *)((char *)fake_cu_k + 1);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "cu_seqlens_k");

    /* Data types. */
    p = valid_prefill(); p.q.dtype = (fai_dtype)7;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "q.dtype (7)");
    p = valid_prefill(); p.k.dtype = (fai_dtype)1;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "k.dtype (1)");
    p = valid_prefill(); p.v.dtype = (fai_dtype)2;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "v.dtype (2)");
    p = valid_prefill(); p.o.dtype = (fai_dtype)3;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "o.dtype (3)");

    /* Null and misaligned tensor pointers. */
    p = valid_prefill(); p.q.data = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "q.data is NULL");
    p = valid_prefill(); p.k.data = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "k.data is NULL");
    p = valid_prefill(); p.v.data = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "v.data is NULL");
    p = valid_prefill(); p.o.data = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "o.data is NULL");
    p = valid_prefill(); p.q.data = (char *)FAKE(1) + 8;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "q.data");
    p = valid_prefill(); p.k.data = (char *)FAKE(3) + 2;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "k.data");
    p = valid_prefill(); p.v.data = (char *)FAKE(4) + 4;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "v.data");
    p = valid_prefill(); p.o.data = (char *)FAKE(2) + 2;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "o.data");
    p = valid_prefill(); p.lse = (float *)((char *)FAKE(6) + 2);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "lse");

    /* Strides: negative, not a multiple of 8 elements, overlapping outputs, overflow. */
    p = valid_prefill(); p.q.token_stride = -4096;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "q.token_stride (-4096)");
    p = valid_prefill(); p.k.head_stride = 100;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "k.head_stride (100)");
    p = valid_prefill(); p.v.token_stride = 1028;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "v.token_stride (1028)");
    p = valid_prefill(); p.o.head_stride = -128;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "o.head_stride (-128)");
    p = valid_prefill(); p.o.head_stride = 64; /* heads of 128 dims overlap */
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "o strides");
    p = valid_prefill(); p.o.token_stride = 128; /* tokens land on the next token's heads */
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "overlap");
    p = valid_prefill(); p.o.head_stride = 128 * 1000; p.o.token_stride = 256; /* head-major, rows overlap */
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "overlap");
    p = valid_prefill(); p.k.token_stride = (int64_t)1 << 62;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "k spans more than 2^63 elements");

    /* The host copy of cu_seqlens_q, when given, is checked: from >= 0, non-decreasing, to
     * <= total_q. */
    static const int32_t neg[5] = {-1, 100, 101, 600, 1000}, dec[5] = {0, 100, 99, 600, 1000},
                         over[5] = {0, 100, 101, 600, 1001};
    p = valid_prefill(); p.cu_seqlens_q_host = neg;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cu_seqlens_q_host");
    p = valid_prefill(); p.cu_seqlens_q_host = dec;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cu_seqlens_q_host");
    p = valid_prefill(); p.cu_seqlens_q_host = over;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "cu_seqlens_q_host");

    /* The workspace check comes last; with no GPU it is never reached here. */
}

/* Valid inputs the checks must accept (they then fail only at the device query on a
 * machine without a GPU, or pass on one: so only the status category is compared; only
 * the size query runs, since the pointers are fake). */
static void expect_prefill_accept(int line, const fai_prefill_params *p)
{
    size_t bytes = 0;
    const fai_status s = fai_prefill_workspace_size(p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM, "line %d: valid parameters rejected: %s", line,
          fai_last_error());
    if (s == FAI_SUCCESS)
        CHECK(strcmp(fai_last_error(), "") == 0, "line %d: success leaves message '%s'", line, fai_last_error());
}
#define PREFILL_ACCEPT(p) expect_prefill_accept(__LINE__, &(p))

static void test_prefill_accepts(void)
{
    fai_prefill_params p = valid_prefill();
    PREFILL_ACCEPT(p);
    /* Q/K/V as views into a fused [tokens, 32 + 2 x 8 heads, 128] buffer (k = v = total_q
     * tokens), O head-major [heads, tokens, dim]. */
    p = valid_prefill();
    p.total_k = p.total_q;
    p.q.token_stride = p.k.token_stride = p.v.token_stride = (32 + 2 * 8) * 128;
    p.k.data = (uint16_t *)FAKE(1) + 32 * 128;
    p.v.data = (uint16_t *)FAKE(1) + 40 * 128;
    p.o.token_stride = 128;
    p.o.head_stride = 1000 * 128;
    PREFILL_ACCEPT(p);
    /* Non-causal, standard ALiBi slopes (NULL), no LSE, max_seq_k given. */
    p = valid_prefill();
    p.causal = 0;
    p.attn.alibi = 1;
    p.max_seq_k = 1500;
    PREFILL_ACCEPT(p);
    /* The LSE and the offsets need only 4-byte alignment. */
    p = valid_prefill();
    p.lse = (float *)((char *)FAKE(6) + 4);
    p.cu_seqlens_q = fake_cu_q + 1;
    p.cu_seqlens_k = fake_cu_k + 3;
    PREFILL_ACCEPT(p);
    /* A host copy of cu_seqlens_q: equal neighbours (empty sequences), a first offset past
     * 0, a last one below total_q. */
    static const int32_t host_cu_gaps[5] = {3, 3, 101, 101, 990};
    p = valid_prefill();
    p.cu_seqlens_q_host = host_cu_q;
    PREFILL_ACCEPT(p);
    p.cu_seqlens_q_host = host_cu_gaps;
    PREFILL_ACCEPT(p);
    /* A tensor of 0 rows is never read or written: its pointer may be NULL. */
    p = valid_prefill();
    p.total_k = 0;
    p.k.data = p.v.data = NULL;
    PREFILL_ACCEPT(p);
    p = valid_prefill();
    p.total_q = 0;
    p.q.data = p.o.data = NULL;
    PREFILL_ACCEPT(p);
    /* Spans count each tensor's own rows and heads: K/V over total_k rows of num_kv_heads,
     * Q/O over total_q rows (either limit is just under 2^63 elements here). */
    p = valid_prefill();
    p.k.head_stride = (int64_t)1 << 59; /* 7 x 2^59 fits, 31 x 2^59 would not */
    PREFILL_ACCEPT(p);
    p = valid_prefill();
    p.q.token_stride = (INT64_MAX / 1500) & ~(int64_t)7; /* 999 rows fit, 1999 would not */
    PREFILL_ACCEPT(p);
    /* A max_seq_q below the longest sequence is allowed (only a grid-sizing hint). */
    p = valid_prefill();
    p.max_seq_q = 1;
    p.cu_seqlens_q_host = host_cu_q;
    PREFILL_ACCEPT(p);

    /* batch 0 needs no pointer and no device: success, no workspace. */
    size_t bytes = 123;
    p = fai_prefill_params_default();
    fai_status s = fai_prefill_workspace_size(&p, &bytes);
    CHECK(s == FAI_SUCCESS && bytes == 0, "batch 0: %s, %zu bytes (%s)", fai_status_string(s), bytes,
          fai_last_error());
    CHECK(strcmp(fai_last_error(), "") == 0, "batch 0 leaves message '%s'", fai_last_error());
    s = fai_prefill(&p, NULL, 0, 0);
    CHECK(s == FAI_SUCCESS, "batch 0: fai_prefill gave %s (%s)", fai_status_string(s), fai_last_error());
    /* ... with tensors, and a max_seq_q of 0 (only required when batch > 0). */
    p = valid_prefill();
    p.batch = 0;
    p.max_seq_q = 0;
    p.cu_seqlens_q = p.cu_seqlens_k = NULL;
    bytes = 123;
    s = fai_prefill_workspace_size(&p, &bytes);
    CHECK(s == FAI_SUCCESS && bytes == 0, "batch 0 with tensors: %s, %zu bytes (%s)", fai_status_string(s), bytes,
          fai_last_error());
    /* The previous failure's message is cleared by a successful call. */
    p = valid_prefill();
    p.batch = -1;
    fai_prefill(&p, NULL, 0, 0);
    p = fai_prefill_params_default();
    CHECK(fai_prefill(&p, NULL, 0, 0) == FAI_SUCCESS && strcmp(fai_last_error(), "") == 0,
          "message '%s' kept after a successful call", fai_last_error());
}

/* The variants' fields (attn.window, window_left, window_right, softcap, sinks) and BF16
 * tensors in fai_prefill: bad values give their statuses and messages naming the field, and
 * valid settings (BF16 alone, each variant, gpt-oss's and Gemma 2's) are accepted. */
static void test_variant_checks(void)
{
    fai_prefill_params p;
    /* Window sides: -1 (unbounded) or >= 0, checked even while attn.window is 0. */
    p = valid_prefill(); p.attn.window = 1; p.attn.window_left = -2;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.window_left (-2) must be -1 (unbounded) or >= 0");
    p = valid_prefill(); p.attn.window = 1; p.attn.window_right = -100;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.window_right (-100)");
    p = valid_prefill(); p.attn.window_left = INT32_MIN;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.window_left (-2147483648)");
    /* Soft-cap: 0 (off) or finite and at least FLT_MIN, and within range of the scale. */
    p = valid_prefill(); p.attn.softcap = -1.0f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (-1) must be 0 (off), or finite and at least FLT_MIN");
    p = valid_prefill(); p.attn.softcap = 1.0f / 0.0f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (inf)");
    p = valid_prefill(); p.attn.softcap = 0.0f / 0.0f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (");
    p = valid_prefill(); p.attn.softcap = 2e-38f; p.attn.softmax_scale = 100.0f; /* softmax_scale / softcap overflows */
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (2e-38) is out of range for attn.softmax_scale (100)");
    /* softmax_scale / softcap is finite (1.7e38) but the Hopper kernel's factor, twice log2(e)
     * times that, is not: a zero logit would be 0 * inf = NaN there */
    p = valid_prefill(); p.attn.softcap = FLT_MIN; p.attn.softmax_scale = 2.0f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "is out of range for attn.softmax_scale (2)");
    p = valid_prefill(); p.attn.softcap = 3e38f; /* softcap * log2(e) overflows */
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "is out of range for attn.softmax_scale");
    p = valid_prefill(); p.attn.softcap = 1.5e38f; /* softcap * 2 log2(e) overflows (the Hopper kernel's) */
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "softcap * 2 log2(e) must be finite");
    /* Below FLT_MIN 1 / (softcap log2(e)), a decode kernel's factor, overflows (0 * inf = NaN). */
    p = valid_prefill(); p.attn.softcap = 1e-40f;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (9.99995e-41) must be 0 (off), or finite and at least FLT_MIN");
    p = valid_prefill(); p.attn.softcap = FLT_MIN; p.attn.softmax_scale = 1e-30f; /* the smallest cap passes */
    PREFILL_ACCEPT(p);
    /* Sinks: a device [num_q_heads] FP32 array, 4-byte aligned. */
    p = valid_prefill(); p.attn.sinks = (const float *)((char *)FAKE(9) + 2);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "attn.sinks");
    /* BF16: q, k, v and o of one type (FP16 or BF16), no mixing, nothing else. */
    p = valid_prefill(); p.k.dtype = FAI_DTYPE_BF16;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "k.dtype (1) is FAI_DTYPE_BF16 but q.dtype is FAI_DTYPE_FP16");
    p = valid_prefill(); p.q.dtype = p.k.dtype = p.v.dtype = FAI_DTYPE_BF16;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "o.dtype (0) is FAI_DTYPE_FP16 but q.dtype is FAI_DTYPE_BF16");
    p = valid_prefill(); p.q.dtype = p.k.dtype = p.o.dtype = FAI_DTYPE_BF16;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "v.dtype (0) is FAI_DTYPE_FP16 but q.dtype is FAI_DTYPE_BF16");
    p = valid_prefill(); p.q.dtype = FAI_DTYPE_BF16; p.k.dtype = p.v.dtype = p.o.dtype = FAI_DTYPE_INT8;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "k.dtype (2) is not supported (FAI_DTYPE_FP16 or FAI_DTYPE_BF16)");
    p = valid_prefill(); p.q.dtype = p.k.dtype = p.v.dtype = p.o.dtype = FAI_DTYPE_FP8_E4M3;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "q.dtype (3) is not supported");
    /* Valid: BF16; BF16 with gpt-oss's window 128 and sinks; Gemma 2's window and soft-cap;
     * a window unbounded on both sides; windows wider than any sequence. */
    p = valid_prefill(); p.q.dtype = p.k.dtype = p.v.dtype = p.o.dtype = FAI_DTYPE_BF16;
    PREFILL_ACCEPT(p);
    p.attn.window = 1; p.attn.window_left = 127; p.attn.window_right = 0;
    p.attn.sinks = (const float *)((char *)FAKE(9) + 4);
    PREFILL_ACCEPT(p);
    p = valid_prefill(); p.attn.window = 1; p.attn.window_left = 4095; p.attn.window_right = -1; p.attn.softcap = 50.0f;
    PREFILL_ACCEPT(p);
    p = valid_prefill(); p.causal = 0; p.attn.window = 1; p.attn.window_left = -1; p.attn.window_right = -1;
    PREFILL_ACCEPT(p);
    p.attn.window_left = INT32_MAX; p.attn.window_right = INT32_MAX; p.attn.softcap = 1e-3f;
    PREFILL_ACCEPT(p);
}

/* fai_decode checks the variants' fields as fai_prefill does and runs them (window, soft-cap,
 * sinks); BF16 it refuses (the decode kernels do not have it yet). */
static void test_decode_variants(void)
{
    fai_decode_params p;
    p = valid_params(); p.attn.window_left = -3;
    REJECT(p, FAI_ERROR_BAD_PARAM, "attn.window_left (-3)");
    p = valid_params(); p.attn.softcap = -2.0f;
    REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (-2)");
    p = valid_params(); p.attn.softcap = 1e-39f;
    REJECT(p, FAI_ERROR_BAD_PARAM, "attn.softcap (1e-39) must be 0 (off), or finite and at least FLT_MIN");
    p = valid_params(); p.attn.sinks = (const float *)((char *)FAKE(9) + 1);
    REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "attn.sinks");
    size_t bytes = 0;
    p = valid_params(); p.attn.window = 1; p.attn.window_left = 128;
    p.attn.softcap = 30.0f;
    p.attn.sinks = (const float *)FAKE(9);
    const fai_status s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED,
          "decode variants rejected: %s", fai_last_error());
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_BF16; /* BF16 q over an FP16 cache */
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (0) is FAI_DTYPE_FP16 but q.dtype is FAI_DTYPE_BF16");
}

/* fai_last_error() is per thread: threads failing differently at once keep their own. */
static void *thread_main(void *arg)
{
    const int id = (int)(intptr_t)arg;
    for (int i = 0; i < 2000; i++) {
        fai_decode_params p = valid_params();
        p.batch = -(id + 1);
        fai_decode(&p, NULL, 0, 0);
        char want[64];
        snprintf(want, sizeof want, "batch (%d) is negative", -(id + 1));
        if (strstr(fai_last_error(), want) == NULL)
            return (void *)1;
    }
    return NULL;
}

static void test_thread_local_errors(void)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        CHECK(r == NULL, "thread %d saw another thread's message", i);
    }
}

/* fai_prefill with kv_cache (chunked prefill from a contiguous or paged cache): the packed-key
 * fields must be unset, an unquantized cache holds q's dtype (int8 and FP8 take either), and the
 * cache itself is checked as fai_decode checks it, with messages naming kv_cache. */
static void test_prefill_cache_checks(void)
{
    static fai_kv_cache c;
    const fai_kv_cache base = {.dtype = FAI_DTYPE_FP16, .k = FAKE(3), .v = FAKE(4), .seq_stride = 1024 * 8 * 128,
                               .token_stride = 8 * 128, .head_stride = 128, .capacity = 1024, .seq_lens = fake_lens};
    fai_prefill_params p;
#define CACHE_PARAMS()                                                                                          \
    (c = base, p = valid_prefill(), p.k.data = p.v.data = NULL, p.cu_seqlens_k = NULL, p.total_k = 0,           \
     p.kv_cache = &c)
    CHECK(fai_prefill_params_default().kv_cache == NULL, "the default has no cache");
    CACHE_PARAMS();
    PREFILL_ACCEPT(p); /* contiguous FP16 */
    CACHE_PARAMS(); c.page_table = fake_cu_q; c.page_table_stride = 64; c.page_size = 16; c.num_pages = 100;
    PREFILL_ACCEPT(p); /* paged */
    /* max_seq_len: any value (outside [1, capacity] it means capacity), where fai_decode
     * refuses one outside [0, capacity]. */
    CACHE_PARAMS(); c.max_seq_len = 5000;
    PREFILL_ACCEPT(p);
    CACHE_PARAMS(); c.max_seq_len = -7;
    PREFILL_ACCEPT(p);
    CACHE_PARAMS(); c.dtype = FAI_DTYPE_BF16; p.q.dtype = p.o.dtype = FAI_DTYPE_BF16;
    PREFILL_ACCEPT(p); /* BF16 cache and q (k/v's dtype fields are not read) */
    CACHE_PARAMS(); c.capacity = 0; c.k = c.v = NULL;
    PREFILL_ACCEPT(p); /* every sequence empty */
    /* The packed-key fields must be unset. */
    CACHE_PARAMS(); p.k.data = FAKE(3);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "must be NULL with kv_cache");
    CACHE_PARAMS(); p.v.data = FAKE(4);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "v.data");
    CACHE_PARAMS(); p.cu_seqlens_k = fake_cu_k;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "cu_seqlens_k");
    CACHE_PARAMS(); p.total_k = 10;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "total_k (10) and max_seq_k (0) must be 0 with kv_cache");
    CACHE_PARAMS(); p.max_seq_k = 10;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "max_seq_k (10)");
    /* Dtypes: a quantized cache (staged in q's dtype) takes FP16 or BF16 queries, with its
     * scales for int8; an unquantized one must hold q's dtype. */
    static float scales[4];
    CACHE_PARAMS(); c.dtype = FAI_DTYPE_INT8; c.k_scale = scales; c.v_scale = scales + 2;
    c.scale_seq_stride = 1024 * 8; c.scale_token_stride = 8; c.scale_head_stride = 1;
    PREFILL_ACCEPT(p); /* int8 */
    c.scale_format = FAI_SCALES_BF16X2;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "kv_cache->v_scale is set, but FAI_SCALES_BF16X2");
    c.v_scale = NULL;
    PREFILL_ACCEPT(p); /* int8 with BF16 scale pairs */
    c.k_scale = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "kv_cache->k_scale is NULL");
    CACHE_PARAMS(); c.dtype = FAI_DTYPE_FP8_E4M3;
    PREFILL_ACCEPT(p); /* FP8 with FP16 queries */
    CACHE_PARAMS(); c.dtype = FAI_DTYPE_FP8_E5M2; p.q.dtype = p.o.dtype = FAI_DTYPE_BF16;
    c.page_table = fake_cu_q; c.page_table_stride = 64; c.page_size = 16; c.num_pages = 100;
    PREFILL_ACCEPT(p); /* paged FP8 with BF16 queries */
    CACHE_PARAMS(); c.dtype = FAI_DTYPE_BF16;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "kv_cache->dtype (1) is FAI_DTYPE_BF16 but q.dtype is FAI_DTYPE_FP16");
    CACHE_PARAMS(); c.dtype = (fai_dtype)77;
    PREFILL_REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "kv_cache->dtype (77)");
    CACHE_PARAMS(); c.k_scale = (float *)FAKE(5);
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "kv_cache->k_scale/v_scale");
    /* The cache's own checks (those of fai_decode), naming kv_cache. */
    CACHE_PARAMS(); c.seq_lens = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "kv_cache->seq_lens is NULL");
    CACHE_PARAMS(); c.k = NULL;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_NULL_POINTER, "kv_cache->k is NULL");
    CACHE_PARAMS(); c.v = (char *)FAKE(4) + 8;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_MISALIGNED, "kv_cache->v");
    CACHE_PARAMS(); c.token_stride = 100;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "kv_cache->token_stride (100)");
    CACHE_PARAMS(); c.capacity = -1;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "kv_cache->capacity (-1)");
    /* every field a cache check names is named kv_cache->... here */
    CACHE_PARAMS(); c.seq_stride = (int64_t)1 << 62;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "kv_cache->k and kv_cache->v span more than 2^63 elements");
    CACHE_PARAMS(); c.page_table = fake_cu_q; c.page_table_stride = 64; c.page_size = 24; c.num_pages = 100;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM, "kv_cache->page_size (24)");
    CACHE_PARAMS(); c.page_table = fake_cu_q; c.page_table_stride = 3; c.page_size = 16; c.num_pages = 100;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "kv_cache->page_table_stride (3)");
    CACHE_PARAMS(); c.page_table = fake_cu_q; c.page_table_stride = 64; c.page_size = 16; c.num_pages = 0;
    PREFILL_REJECT(p, FAI_ERROR_BAD_PARAM_SHAPE, "kv_cache->num_pages (0)");
#undef CACHE_PARAMS
}

/* BF16 on the decode side: fai_decode with BF16 q/o over a BF16 cache or a quantized one
 * (never an FP16 cache, nor an FP16 q over a BF16 cache), and fai_kv_append from BF16 rows
 * into BF16 and quantized caches (an unquantized cache takes rows of its own dtype). */
static void test_decode_bf16_checks(void)
{
    size_t bytes = 0;
    fai_status s;
    fai_decode_params p;
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_BF16; p.cache.dtype = FAI_DTYPE_BF16;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 q over a BF16 cache rejected: %s", fai_last_error());
    p.o.head_stride = 4 * 128; /* head-major o, fused QKV q: the FP16 layouts hold for BF16 */
    p.o.token_stride = 128;
    p.q.token_stride = (32 + 2 * 8) * 128;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 views rejected: %s", fai_last_error());
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_BF16; p.cache.dtype = FAI_DTYPE_FP8_E5M2;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 q over an FP8 cache rejected: %s", fai_last_error());
    p.cache.dtype = FAI_DTYPE_INT8;
    p.cache.k_scale = (float *)FAKE(7);
    p.cache.v_scale = (float *)FAKE(8);
    p.cache.scale_seq_stride = 1024 * 8;
    p.cache.scale_token_stride = 8;
    p.cache.scale_head_stride = 1;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 q over an int8 cache rejected: %s", fai_last_error());
    /* A BF16 cache with 2-byte strides (8 elements), paged. */
    static const int32_t table[4 * 64];
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_BF16; p.cache.dtype = FAI_DTYPE_BF16;
    p.cache.page_table = table;
    p.cache.page_table_stride = 64;
    p.cache.page_size = 16;
    p.cache.num_pages = 256;
    p.cache.seq_stride = 16 * 8 * 128;
    s = fai_decode_workspace_size(&p, &bytes);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "paged BF16 cache rejected: %s", fai_last_error());

    p = valid_params(); p.cache.dtype = FAI_DTYPE_BF16; /* FP16 q over a BF16 cache */
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (1) is FAI_DTYPE_BF16 but q.dtype is FAI_DTYPE_FP16");
    p = valid_params(); p.q.dtype = FAI_DTYPE_BF16; p.cache.dtype = FAI_DTYPE_BF16; /* o stays FP16 */
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "o.dtype (0) is FAI_DTYPE_FP16 but q.dtype is FAI_DTYPE_BF16");
    p = valid_params(); p.o.dtype = FAI_DTYPE_BF16;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "o.dtype (1) is FAI_DTYPE_BF16 but q.dtype is FAI_DTYPE_FP16");
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_FP8_E4M3;
    REJECT(p, FAI_ERROR_NOT_SUPPORTED_DTYPE, "q.dtype (3) is not supported (FAI_DTYPE_FP16 or FAI_DTYPE_BF16)");
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_BF16; p.cache.dtype = FAI_DTYPE_BF16;
    p.cache.token_stride = 8 * 128 + 4; /* BF16 strides: multiples of 8 elements */
    REJECT(p, FAI_ERROR_BAD_PARAM_STRIDE, "cache.token_stride (1028)");
    p = valid_params(); p.q.dtype = p.o.dtype = FAI_DTYPE_BF16; p.cache.dtype = FAI_DTYPE_BF16;
    p.cache.k_scale = (float *)FAKE(7);
    REJECT(p, FAI_ERROR_BAD_PARAM, "has no scales");

    /* fai_kv_append: BF16 rows into int8, FP8 and BF16 caches. */
    fai_kv_append_params a;
    a = valid_append(); a.k_new.dtype = a.v_new.dtype = FAI_DTYPE_BF16;
    s = fai_kv_append(&a, 0);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 rows into an int8 cache rejected: %s", fai_last_error());
    a.cache.dtype = FAI_DTYPE_FP8_E4M3;
    a.cache.k_scale = a.cache.v_scale = NULL;
    s = fai_kv_append(&a, 0);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 rows into an FP8 cache rejected: %s", fai_last_error());
    a.cache.dtype = FAI_DTYPE_BF16;
    s = fai_kv_append(&a, 0);
    CHECK(FAI_STATUS_CATEGORY(s) != FAI_ERROR_BAD_PARAM && s != FAI_ERROR_NOT_SUPPORTED_DTYPE,
          "BF16 rows into a BF16 cache rejected: %s", fai_last_error());
    a.k_new.dtype = a.v_new.dtype = FAI_DTYPE_FP16; /* FP16 rows into a BF16 cache */
    REJECT_APPEND(a, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (1) is FAI_DTYPE_BF16 but k_new.dtype is FAI_DTYPE_FP16");
    a.k_new.dtype = a.v_new.dtype = FAI_DTYPE_BF16; a.cache.dtype = FAI_DTYPE_FP16; /* and the other way */
    REJECT_APPEND(a, FAI_ERROR_NOT_SUPPORTED_DTYPE, "cache.dtype (0) is FAI_DTYPE_FP16 but k_new.dtype is FAI_DTYPE_BF16");
    a = valid_append(); a.k_new.dtype = FAI_DTYPE_BF16; /* v_new stays FP16 */
    REJECT_APPEND(a, FAI_ERROR_NOT_SUPPORTED_DTYPE, "v_new.dtype (0) is FAI_DTYPE_FP16 but k_new.dtype is FAI_DTYPE_BF16");
    a = valid_append(); a.k_new.dtype = a.v_new.dtype = FAI_DTYPE_INT8;
    REJECT_APPEND(a, FAI_ERROR_NOT_SUPPORTED_DTYPE, "k_new.dtype (2) is not supported (FAI_DTYPE_FP16 or FAI_DTYPE_BF16)");
    a = valid_append(); a.k_new.dtype = a.v_new.dtype = FAI_DTYPE_BF16; a.k_new.token_stride = 8 * 128 + 2;
    REJECT_APPEND(a, FAI_ERROR_BAD_PARAM_STRIDE, "k_new.token_stride (1026)");
    a = valid_append(); a.k_new.dtype = a.v_new.dtype = FAI_DTYPE_BF16; a.num_tokens = 0;
    CHECK(fai_kv_append(&a, 0) == FAI_SUCCESS, "BF16, 0 tokens: %s", fai_last_error());
}

/* A CUDA call that fails inside fai ends fai's message with CUDA's error text and name:
 * where the device query fails (CI's machines have no GPU) the status is 3000. (That the
 * runtime's last-error slot is cleared is not checked here: an initialization error such as
 * these machines' stays in the slot whatever clears it.) A machine with a GPU passes the
 * query and checks nothing here (fai_decode_workspace_size launches nothing). */
static void test_cuda_error_message(void)
{
    fai_decode_params p = valid_params();
    size_t bytes = 0;
    const fai_status s = fai_decode_workspace_size(&p, &bytes);
    if (s != FAI_ERROR_EXECUTION_FAILED)
        return;
    CHECK(strstr(fai_last_error(), "fai_decode_workspace_size: querying the current CUDA device failed: ") != NULL &&
              strstr(fai_last_error(), " (cuda") != NULL,
          "message '%s'", fai_last_error());
}

int main(void)
{
    test_status_strings();
    test_cuda_error_message();
    test_decode_rejects();
    test_decode_accepts();
    test_append_checks();
    test_prefill_rejects();
    test_prefill_accepts();
    test_variant_checks();
    test_decode_variants();
    test_thread_local_errors();
    test_prefill_cache_checks();
    test_decode_bf16_checks();
    if (failures) {
        printf("test_api: %d checks failed\n", failures);
        return 1;
    }
    printf("test_api: all checks passed\n");
    return 0;
}
