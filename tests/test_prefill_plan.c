/* CPU test of fai_prefill's planner (fai_prefill_make_plan): which kernels run over which
 * range of the batch. Decode rows (seq_q == 1) go to the decode kernels and the other rows to
 * the prefill kernel, in FP16 and BF16, with every variant and over a kv_cache alike. */
#include <stdio.h>
#include <string.h>

#include "prefill_args.h"
#include "prefill_plan.h"

#include "cpu_check.h"

/* An H100: 132 SMs, 228 KB of shared memory each. */
static const fai_device_info h100 = {132, 233472, 9, 232448};

/* A hybrid batch in 1000 query rows: prefill 100, decode, empty, prefill 499, decode,
 * decode, prefill 398 (32/8 heads of 128, 2000 key rows). */
static const int32_t hybrid_cu[8] = {0, 100, 101, 101, 600, 601, 602, 1000};

static fai_prefill_params params(int32_t batch, const int32_t *cu_host)
{
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = 32;
    p.attn.num_kv_heads = 8;
    p.batch = batch;
    p.causal = 1;
    p.total_q = 1000;
    p.total_k = 2000;
    p.max_seq_q = 499;
    p.cu_seqlens_q_host = cu_host;
    return p;
}

static void set_dtype(fai_prefill_params *p, fai_dtype t)
{
    p->q.dtype = p->k.dtype = p->v.dtype = p->o.dtype = t;
}

static fai_prefill_plan plan_of(int line, const fai_prefill_params *p, fai_device_info dev)
{
    fai_prefill_plan plan;
    memset(&plan, 0x5a, sizeof plan);
    const fai_status s = fai_prefill_make_plan("test", p, dev, &plan);
    CHECK(s == FAI_SUCCESS, "line %d: make_plan gave %s", line, fai_status_string(s));
    return plan;
}
#define PLAN(p) plan_of(__LINE__, &(p), h100)

/* The variants, BF16 and a kv_cache one at a time: none changes who runs the decode rows. */
enum { V_NONE, V_BF16, V_WINDOW, V_WINDOW_UNBOUNDED, V_SOFTCAP, V_SINKS, V_ALL, V_CACHE, V_COUNT };
static const char *const variant_names[V_COUNT] = {"none", "bf16", "window", "window -1/-1", "softcap",
                                                   "sinks", "all", "kv_cache"};

static void set_variant(fai_prefill_params *p, int v)
{
    static const float sinks[32];
    if (v == V_BF16 || v == V_ALL)
        set_dtype(p, FAI_DTYPE_BF16);
    if (v == V_WINDOW || v == V_ALL) {
        p->attn.window = 1;
        p->attn.window_left = 127;
        p->attn.window_right = 0;
    }
    if (v == V_WINDOW_UNBOUNDED) { /* a no-op window still counts as one: not for decode yet */
        p->attn.window = 1;
        p->attn.window_left = -1;
        p->attn.window_right = -1;
    }
    if (v == V_SOFTCAP || v == V_ALL)
        p->attn.softcap = 50.0f;
    if (v == V_SINKS || v == V_ALL)
        p->attn.sinks = sinks;
    if (v == V_CACHE) { /* the planner reads only its capacity and max_seq_len */
        static fai_kv_cache cache;
        cache.capacity = 100000;
        p->kv_cache = &cache;
    }
}

static void test_decode_kernels_serve(void)
{
    for (int v = 0; v < V_COUNT; v++) {
        fai_prefill_params p = params(7, hybrid_cu);
        set_variant(&p, v);
        CHECK(fai_prefill_decode_kernels_serve(&p), "variant %s", variant_names[v]);
    }
}

/* With the host lengths the batch is split between the kernels (FP16 or BF16, any variant,
 * over a kv_cache or not). */
static void test_hybrid_host_plan(void)
{
    fai_prefill_params p = params(7, hybrid_cu);
    fai_prefill_plan plan = PLAN(p);
    CHECK(plan.run_prefill && plan.run_decode, "FP16 hybrid: prefill %d, decode %d", plan.run_prefill,
          plan.run_decode);
    CHECK(plan.prefill_first == 0 && plan.prefill_count == 7, "prefill range %d + %d", plan.prefill_first,
          plan.prefill_count);
    CHECK(plan.decode_first == 1 && plan.decode_count == 5, "decode range %d + %d", plan.decode_first,
          plan.decode_count);
    CHECK(plan.mt == FAI_PREFILL_MT(128) && plan.m_tiles * FAI_PREFILL_BM_OF(plan.mt) >= 499, "mt %d, m_tiles %d",
          plan.mt, plan.m_tiles);
    for (int v = 1; v < V_COUNT; v++) { /* split as in FP16 */
        p = params(7, hybrid_cu);
        set_variant(&p, v);
        plan = PLAN(p);
        CHECK(plan.run_prefill && plan.run_decode && plan.prefill_first == 0 && plan.prefill_count == 7 &&
                  plan.decode_first == 1 && plan.decode_count == 5,
              "%s: prefill %d (%d + %d), decode %d (%d + %d)", variant_names[v], plan.run_prefill,
              plan.prefill_first, plan.prefill_count, plan.run_decode, plan.decode_first, plan.decode_count);
    }
}

/* Decode rows only (and empty sequences): the decode kernels alone, over the range that has
 * rows. */
static void test_decode_rows_only(void)
{
    static const int32_t cu[6] = {10, 10, 11, 12, 12, 13}; /* empty, 1, 1, empty, 1 */
    fai_prefill_params p = params(5, cu);
    p.total_q = 13;
    p.max_seq_k = 100000; /* long keys: the decode rows' plan splits them */
    fai_prefill_plan plan = PLAN(p);
    CHECK(!plan.run_prefill && plan.run_decode, "FP16: prefill %d, decode %d", plan.run_prefill, plan.run_decode);
    CHECK(plan.decode_first == 1 && plan.decode_count == 4, "decode range %d + %d", plan.decode_first,
          plan.decode_count);
    CHECK(plan.workspace_bytes == plan.decode.workspace_bytes, "workspace %zu", plan.workspace_bytes);
    for (int v = 1; v < V_COUNT; v++) {
        p = params(5, cu);
        p.total_q = 13;
        p.max_seq_k = v == V_CACHE ? 0 : 100000;
        set_variant(&p, v);
        plan = PLAN(p);
        CHECK(!plan.run_prefill && plan.run_decode && plan.decode_first == 1 && plan.decode_count == 4 &&
                  plan.workspace_bytes == plan.decode.workspace_bytes,
              "%s: prefill %d, decode %d (%d + %d), workspace %zu", variant_names[v], plan.run_prefill,
              plan.run_decode, plan.decode_first, plan.decode_count, plan.workspace_bytes);
    }
}

/* Without the host lengths both kernels run over the whole batch (each skips the other's
 * sequences). */
static void test_no_host_plan(void)
{
    fai_prefill_params p = params(7, NULL);
    fai_prefill_plan plan = PLAN(p);
    CHECK(plan.run_prefill && plan.run_decode, "FP16: prefill %d, decode %d", plan.run_prefill, plan.run_decode);
    CHECK(plan.prefill_count == 7 && plan.decode_count == 7, "ranges %d, %d", plan.prefill_count, plan.decode_count);
    for (int v = 1; v < V_COUNT; v++) {
        p = params(7, NULL);
        set_variant(&p, v);
        plan = PLAN(p);
        CHECK(plan.run_prefill && plan.run_decode && plan.prefill_count == 7 && plan.decode_count == 7,
              "%s: prefill %d, decode %d, ranges %d, %d", variant_names[v], plan.run_prefill, plan.run_decode,
              plan.prefill_count, plan.decode_count);
    }
}

/* Over a cache the decode rows' split is planned for max_seq_len keys when it is in
 * [1, capacity], else for capacity (max_seq_k must be 0 there). */
static void test_cache_split_bound(void)
{
    static const int32_t cu[3] = {0, 1, 2}; /* two decode rows */
    fai_kv_cache cache = {0};
    fai_prefill_params p = params(2, cu);
    p.total_q = 2;
    p.kv_cache = &cache;
    const int32_t bounds[][3] = {/* capacity, max_seq_len, split expected */
                                 {100000, 0, 1},
                                 {100000, 64, 0},
                                 {100000, 200000, 1},
                                 {64, 0, 0}};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        cache.capacity = bounds[i][0];
        cache.max_seq_len = bounds[i][1];
        const fai_prefill_plan plan = PLAN(p);
        CHECK(plan.run_decode && !plan.run_prefill && (plan.decode.num_splits > 1) == bounds[i][2] &&
                  (plan.workspace_bytes > 0) == bounds[i][2],
              "capacity %d, max_seq_len %d: decode %d, %d splits, workspace %zu", (int)bounds[i][0],
              (int)bounds[i][1], plan.run_decode, (int)plan.decode.num_splits, plan.workspace_bytes);
    }
    /* A window: the decode rows read only its keys, and split for those (64 keys: no split),
     * as fai_decode plans. */
    cache.capacity = 100000;
    cache.max_seq_len = 0;
    p.attn.window = 1;
    p.attn.window_left = 63;
    p.attn.window_right = 0;
    const fai_prefill_plan wplan = PLAN(p);
    CHECK(wplan.run_decode && wplan.decode.num_splits == 1 && wplan.workspace_bytes == 0,
          "window 63 over 100000 keys: %d splits, workspace %zu", (int)wplan.decode.num_splits, wplan.workspace_bytes);
}

/* A quantized kv_cache: the prefill rows' keys and values are staged in q's dtype after the
 * decode rows' part of the workspace (256-byte aligned), for max_seq_len keys when that is in
 * [1, capacity], else capacity; only the prefill range is staged; an unquantized cache and a
 * call without prefill rows stage nothing; a staging past 2^60 bytes is refused. */
static void test_quantized_cache_staging(void)
{
    static const int32_t cu[5] = {0, 1, 101, 102, 103}; /* decode, prefill 100, decode, decode */
    const fai_dtype dts[] = {FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2, FAI_DTYPE_FP16};
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++)
        for (int hint = 0; hint < 3; hint++) {
            fai_kv_cache cache = {0};
            cache.dtype = dts[di];
            cache.capacity = 100000;
            cache.max_seq_len = hint == 0 ? 0 : hint == 1 ? 5000 : 200000; /* none, a bound, over capacity */
            fai_prefill_params p = params(4, cu);
            p.total_q = 103;
            p.kv_cache = &cache;
            const fai_prefill_plan plan = PLAN(p);
            const int32_t keys = hint == 1 ? 5000 : 100000;
            const size_t bytes = (size_t)1 * keys * 8 * 128 * 2; /* one prefill sequence, 8 heads of 128 */
            /* (then the Hopper kernel's counter, last: test_counter_place) */
            const size_t before_counter = plan.counter_offset;
            CHECK(plan.workspace_bytes == before_counter + FAI_PREFILL_COUNTER_BYTES, "dtype %d hint %d: workspace %zu",
                  (int)dts[di], hint, plan.workspace_bytes);
            if (dts[di] == FAI_DTYPE_FP16) {
                CHECK(plan.stage_keys == 0 && before_counter == (plan.decode.workspace_bytes + 255) / 256 * 256,
                      "FP16 cache: staged %d keys, counter at %zu", (int)plan.stage_keys, before_counter);
                continue;
            }
            CHECK(plan.run_prefill && plan.prefill_first == 1 && plan.prefill_count == 1 && plan.run_decode,
                  "dtype %d: prefill %d (%d, %d), decode %d", (int)dts[di], plan.run_prefill,
                  (int)plan.prefill_first, (int)plan.prefill_count, plan.run_decode);
            CHECK(plan.stage_keys == keys && plan.stage_bytes == bytes, "dtype %d hint %d: %d keys, %zu bytes",
                  (int)dts[di], hint, (int)plan.stage_keys, plan.stage_bytes);
            CHECK(plan.stage_offset % 256 == 0 && plan.stage_offset >= plan.decode.workspace_bytes &&
                      plan.stage_offset < plan.decode.workspace_bytes + 256 &&
                      before_counter == (plan.stage_offset + 2 * bytes + 255) / 256 * 256,
                  "dtype %d hint %d: offset %zu after %zu, workspace %zu", (int)dts[di], hint, plan.stage_offset,
                  plan.decode.workspace_bytes, plan.workspace_bytes);
        }
    /* Decode rows only: nothing staged. */
    static const int32_t dec[3] = {0, 1, 2};
    fai_kv_cache cache = {0};
    cache.dtype = FAI_DTYPE_INT8;
    cache.capacity = 4096;
    fai_prefill_params p = params(2, dec);
    p.total_q = 2;
    p.kv_cache = &cache;
    fai_prefill_plan plan = PLAN(p);
    CHECK(!plan.run_prefill && plan.stage_keys == 0 && plan.workspace_bytes == plan.decode.workspace_bytes,
          "decode rows only: staged %d keys", (int)plan.stage_keys);
    /* Without a host plan the whole batch is staged; an absurd one is refused. */
    p = params(3, NULL);
    p.kv_cache = &cache;
    plan = PLAN(p);
    CHECK(plan.stage_keys == 4096 && plan.stage_bytes == (size_t)3 * 4096 * 8 * 128 * 2, "no host plan: %d keys, %zu",
          (int)plan.stage_keys, plan.stage_bytes);
    cache.capacity = 2000000000;
    p = params(1 << 20, NULL);
    p.kv_cache = &cache;
    memset(&plan, 0, sizeof plan);
    const fai_status st = fai_prefill_make_plan("test", &p, h100, &plan);
    CHECK(st == FAI_ERROR_BAD_PARAM_SHAPE && strstr(fai_last_error(), "max_seq_len") != NULL,
          "a 2^20 x 2e9-key staging: %s (%s)", fai_status_string(st), fai_last_error());
}

/* The decode rows of a call over a kv_cache are planned for what they read: a one-byte cache
 * gets a ring its kernels have (3 or 6 stages; an FP16 plan's 4 would find no kernel), and a
 * paged cache the page-size rules of fai_decode. */
static void test_decode_rows_cache_plan(void)
{
    static int32_t cu[18];
    for (int i = 0; i <= 16; i++)
        cu[i] = i; /* 16 decode rows */
    const fai_dtype dts[] = {FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2};
    for (size_t di = 0; di < sizeof dts / sizeof dts[0]; di++)
        for (int paged = 0; paged < 2; paged++) {
            fai_kv_cache cache = {0};
            cache.dtype = dts[di];
            cache.capacity = 8192;
            static int32_t table[1];
            if (paged) {
                cache.page_table = table;
                cache.page_size = 16;
            }
            fai_prefill_params p = params(16, cu);
            p.total_q = 16;
            p.kv_cache = &cache;
            const fai_prefill_plan plan = PLAN(p);
            CHECK(plan.run_decode && plan.decode.kernel == FAI_DECODE_MMA &&
                      (plan.decode.stages == 3 || plan.decode.stages == 6),
                  "dtype %d paged %d: 16 x 8K GQA decode rows on kernel %d with %d stages", (int)dts[di], paged,
                  plan.decode.kernel, plan.decode.stages);
        }
    fai_kv_cache cache = {0};
    cache.dtype = FAI_DTYPE_FP16;
    cache.capacity = 2048;
    static int32_t table[1];
    cache.page_table = table;
    cache.page_size = 16;
    static int32_t cu128[129];
    for (int i = 0; i <= 128; i++)
        cu128[i] = i;
    fai_prefill_params p = params(128, cu128);
    p.attn.num_kv_heads = 32;
    p.total_q = 128;
    p.kv_cache = &cache;
    fai_prefill_plan plan = PLAN(p);
    CHECK(plan.run_decode && plan.decode.kernel == FAI_DECODE_SIMT,
          "paged FP16 MHA, 128 x 2K decode rows: kernel %d (fai_decode's plan: CUDA cores)", plan.decode.kernel);
    cache.page_table = NULL;
    cache.page_size = 0;
    plan = PLAN(p);
    CHECK(plan.run_decode && plan.decode.kernel == FAI_DECODE_MMA,
          "contiguous FP16 MHA, 128 x 2K decode rows: kernel %d (tensor cores)", plan.decode.kernel);
}

/* A paged FP16/BF16 cache is gathered into the workspace when the prefill range's rows x
 * q heads / kv heads per sequence reach FAI_PREFILL_STAGE_PAGED_ROWS and the copy (capacity
 * keys) fits FAI_PREFILL_STAGE_PAGED_MAX_BYTES; a contiguous one never is. */
static void test_paged_staging(void)
{
    static const int32_t cu[3] = {0, 1, 2049}; /* a decode row, then a 2048-row chunk */
    fai_kv_cache cache = {0};
    cache.dtype = FAI_DTYPE_FP16;
    cache.capacity = 16384;
    cache.page_table = (const int32_t *)cu; /* (not read by the planner) */
    cache.page_size = 16;
    fai_prefill_params p = params(2, cu);
    p.total_q = 2049;
    p.kv_cache = &cache;
    fai_prefill_plan plan = PLAN(p); /* 2048 rows x 32 / 8 heads = 8192 per key */
    const size_t bytes = (size_t)16384 * 8 * 128 * 2;
    CHECK(FAI_PREFILL_STAGE_PAGED_ROWS == 0 || (plan.stage_keys == 16384 && plan.stage_bytes == bytes &&
                                                plan.counter_offset == plan.stage_offset + 2 * bytes &&
                                                plan.workspace_bytes == plan.counter_offset + FAI_PREFILL_COUNTER_BYTES),
          "paged FP16, 2048 rows: %d keys, %zu bytes, workspace %zu", (int)plan.stage_keys, plan.stage_bytes,
          plan.workspace_bytes);
    static const int32_t short_cu[3] = {0, 1, 1001}; /* 1000 rows x 4: 4000 per key */
    p.cu_seqlens_q_host = short_cu;
    p.total_q = 1001;
    plan = PLAN(p);
    CHECK(plan.stage_keys == 0 && plan.counter_offset == (plan.decode.workspace_bytes + 255) / 256 * 256 &&
              plan.workspace_bytes == plan.counter_offset + FAI_PREFILL_COUNTER_BYTES,
          "paged FP16, 1000 rows: staged %d keys", (int)plan.stage_keys);
    p.cu_seqlens_q_host = cu;
    p.total_q = 2049;
    cache.capacity = 1 << 20; /* the copy would pass the cap */
    plan = PLAN(p);
    CHECK(plan.stage_keys == 0, "paged FP16 over the byte cap: staged %d keys", (int)plan.stage_keys);
    cache.capacity = 16384;
    cache.page_table = NULL; /* contiguous: read in place */
    plan = PLAN(p);
    CHECK(plan.stage_keys == 0, "contiguous FP16: staged %d keys", (int)plan.stage_keys);
}

/* Which prefill kernel a Hopper may run (fai_prefill_args.sm90): 0 on other GPUs; on a
 * Hopper 2 (the wgmma kernel) from FAI_PREFILL_SM90_MIN_KEYS keys a sequence on, measured by
 * max_seq_k, else the mean of packed K/V, or a cache's bound; 1 below. */
static void test_hopper_choice(void)
{
    static const int32_t cu[3] = {0, 600, 1200};
    fai_prefill_params p = params(2, cu);
    p.total_q = 1200;
    p.total_k = 2 * FAI_PREFILL_SM90_MIN_KEYS; /* the mean: the threshold */
    fai_prefill_plan plan = PLAN(p);
    CHECK(plan.run_prefill && plan.sm90 == 2, "mean %d keys: sm90 %d", (int)FAI_PREFILL_SM90_MIN_KEYS,
          (int)plan.sm90);
    p.total_k = 2 * FAI_PREFILL_SM90_MIN_KEYS - 2;
    plan = PLAN(p);
    CHECK(plan.sm90 == 1, "mean %d keys: sm90 %d", (int)FAI_PREFILL_SM90_MIN_KEYS - 1, (int)plan.sm90);
    p.max_seq_k = FAI_PREFILL_SM90_MIN_KEYS; /* one long sequence among short ones */
    plan = PLAN(p);
    CHECK(plan.sm90 == 2, "max_seq_k at the threshold: sm90 %d", (int)plan.sm90);
    p.max_seq_k = 128;
    p.total_k = 1 << 20; /* the bound wins over the mean */
    plan = PLAN(p);
    CHECK(plan.sm90 == 1, "max_seq_k 128: sm90 %d", (int)plan.sm90);
    fai_kv_cache cache = {0};
    cache.dtype = FAI_DTYPE_FP16;
    cache.capacity = 16384;
    cache.max_seq_len = FAI_PREFILL_SM90_MIN_KEYS - 1;
    p.max_seq_k = 0;
    p.total_k = 0;
    p.kv_cache = &cache;
    plan = PLAN(p);
    CHECK(plan.sm90 == 1, "cache of max_seq_len %d: sm90 %d", (int)cache.max_seq_len, (int)plan.sm90);
    cache.max_seq_len = 0; /* no hint: its capacity */
    plan = PLAN(p);
    CHECK(plan.sm90 == 2, "cache of capacity 16384: sm90 %d", (int)plan.sm90);
    fai_device_info a100 = h100;
    a100.cc_major = 8;
    memset(&plan, 0x5a, sizeof plan);
    CHECK(fai_prefill_make_plan("test", &p, a100, &plan) == FAI_SUCCESS && plan.run_prefill && plan.sm90 == 0,
          "compute capability 8: sm90 %d", (int)plan.sm90);
    CHECK(plan.counter_offset == 0 && plan.workspace_bytes == 0, "compute capability 8: counter at %zu, workspace %zu",
          plan.counter_offset, plan.workspace_bytes);
}

/* On a Hopper GPU a call with prefill rows (either kernel may take them: FAI_PREFILL_SM90)
 * has the wgmma kernel's work counter last in its workspace, 256-byte aligned after the
 * decode rows' partials and a staged copy; a call of decode rows alone has none. */
static void test_counter_place(void)
{
    static const int32_t cu[5] = {0, 1, 101, 102, 103}; /* decode, prefill 100, decode, decode */
    for (int quantized = 0; quantized < 2; quantized++)
        for (int long_keys = 0; long_keys < 2; long_keys++) {
            fai_kv_cache cache = {0};
            cache.dtype = quantized ? FAI_DTYPE_INT8 : FAI_DTYPE_FP16;
            cache.capacity = long_keys ? 100000 : 200;
            fai_prefill_params p = params(4, cu);
            p.total_q = 103;
            p.kv_cache = &cache;
            const fai_prefill_plan plan = PLAN(p);
            const size_t before = quantized ? plan.stage_offset + 2 * plan.stage_bytes : plan.decode.workspace_bytes;
            CHECK(plan.run_prefill && plan.sm90 > 0 && plan.counter_offset % 256 == 0 &&
                      plan.counter_offset >= before && plan.counter_offset < before + 256 &&
                      plan.workspace_bytes == plan.counter_offset + FAI_PREFILL_COUNTER_BYTES,
                  "quantized %d, %d keys: counter at %zu after %zu, workspace %zu", quantized, (int)cache.capacity,
                  plan.counter_offset, before, plan.workspace_bytes);
            CHECK(!long_keys || plan.decode.num_splits > 1, "100000 keys: decode rows split %d ways",
                  (int)plan.decode.num_splits);
        }
    static const int32_t dec[3] = {0, 1, 2};
    fai_prefill_params p = params(2, dec);
    p.total_q = 2;
    const fai_prefill_plan plan = PLAN(p);
    CHECK(!plan.run_prefill && plan.counter_offset == 0 && plan.workspace_bytes == plan.decode.workspace_bytes,
          "decode rows only: counter at %zu, workspace %zu", plan.counter_offset, plan.workspace_bytes);
}

/* The Hopper kernel's sections: the (sequence, query head) pairs whose keys and values fit
 * FAI_PREFILL_SECTION_BYTES (16 MB), whole GQA groups, at least one group, at most the
 * prefill range's pairs. */
static void test_sections(void)
{
    static const int32_t cu[3] = {0, 600, 1200};
    const struct {
        int hq, hk, d, keys, section;
    } cases[] = {
        {32, 8, 128, 16384, 8},    /* 8 MB a KV head: two KV heads of four query heads */
        {32, 32, 64, 16384, 4},    /* 4 MB a head */
        {16, 16, 256, 16384, 1},   /* 16 MB: one */
        {16, 16, 256, 65536, 1},   /* 64 MB: still one */
        {32, 8, 128, 1024, 64},    /* 0.5 MB: 32 KV heads' worth, capped at 2 x 32 pairs */
        {28, 4, 128, 100000, 7},   /* a group of 7 even where its KV head passes 16 MB */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fai_prefill_params p = params(2, cu);
        p.attn.num_q_heads = cases[i].hq;
        p.attn.num_kv_heads = cases[i].hk;
        p.attn.head_dim = cases[i].d;
        p.total_q = 1200;
        p.max_seq_k = cases[i].keys;
        p.total_k = 2 * cases[i].keys;
        fai_prefill_plan plan = PLAN(p);
        CHECK(plan.sm90 == 2 && plan.section == cases[i].section, "case %zu: %d/%d heads of %d, %d keys: section %d",
              i, cases[i].hq, cases[i].hk, cases[i].d, cases[i].keys, (int)plan.section);
    }
}

/* An empty batch or no query rows: nothing runs, whatever the variants. */
static void test_nothing_to_run(void)
{
    static const int32_t empty_cu[3] = {0, 0, 0};
    for (int v = 0; v < V_COUNT; v++) {
        fai_prefill_params p = params(2, empty_cu);
        set_variant(&p, v);
        fai_prefill_plan plan = PLAN(p);
        CHECK(!plan.run_prefill && !plan.run_decode && plan.workspace_bytes == 0, "%s: empty sequences run",
              variant_names[v]);
        p.total_q = 0;
        p.cu_seqlens_q_host = NULL;
        plan = PLAN(p);
        CHECK(!plan.run_prefill && !plan.run_decode, "%s: total_q 0 runs", variant_names[v]);
    }
}

/* The mma.sync kernel fills its whole ring before the key loop only on grids of more than
 * one wave (two blocks an SM on an H100: both kernels' 96 KB fit twice in its 228 KB; one
 * on an A100: 164 KB), and on one wave with host lengths and short keys takes the one-wave
 * kernel. 128 rows of 8 heads a sequence: 33 sequences are 264 blocks (one wave
 * on 132 SMs), 34 are 272; with 32 heads and 640 rows (5 tiles), 2 sequences are 320. */
static void test_fill_ring(void)
{
    static const fai_device_info a100 = {108, 167936, 8, 166912};
    static const fai_device_info roomy = {132, 4 * 233472, 9, 232448}; /* (no such GPU) */
    static int32_t cu[35]; /* (sized for the largest batch below) */
    static const struct {
        int batch, heads, rows, dev, fill; /* dev: 0 H100, 1 A100, 2 roomy */
    } cases[] = {
        {33, 8, 128, 0, 0}, {34, 8, 128, 0, 1}, {8, 32, 128, 0, 0}, {32, 32, 128, 0, 1},
        {2, 32, 640, 0, 1}, {1, 32, 640, 0, 0}, /* 5 tiles x 32 = 160 blocks */
        {27, 4, 128, 1, 0}, {28, 4, 128, 1, 1}, /* A100: 108 blocks are one wave, 112 more */
        {34, 8, 128, 2, 1}, /* room for 4 blocks an SM: registers still hold 2 (272 > 264) */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int batch = cases[i].batch, rows = cases[i].rows;
        for (int b = 0; b <= batch; b++)
            cu[b] = rows * b;
        fai_prefill_params p = params(batch, cu);
        p.attn.num_q_heads = p.attn.num_kv_heads = cases[i].heads;
        p.total_q = p.total_k = rows * batch;
        p.max_seq_q = p.max_seq_k = rows;
        const fai_prefill_plan plan =
            plan_of(__LINE__, &p, cases[i].dev == 1 ? a100 : cases[i].dev == 2 ? roomy : h100);
        CHECK(plan.run_prefill && plan.mt == FAI_PREFILL_MT(128), "case %zu: prefill %d, mt %d", i, plan.run_prefill,
              plan.mt);
        CHECK(plan.fill_ring == cases[i].fill, "case %zu: batch %d x %d heads x %d rows (%s): fill_ring %d", i, batch,
              cases[i].heads, rows, cases[i].dev == 1 ? "A100" : cases[i].dev == 2 ? "roomy" : "H100", plan.fill_ring);
        /* One wave takes the one-wave kernel (one query tile a block) when the keys fit the
         * ring (128 at head dim 128) and only with host lengths: without them max_seq_q may
         * understate the longest sequence. */
        CHECK(plan.one_wave == (!cases[i].fill && rows <= 128), "case %zu: one_wave %d with host lengths", i,
              plan.one_wave);
        p.cu_seqlens_q_host = NULL;
        const fai_prefill_plan blind =
            plan_of(__LINE__, &p, cases[i].dev == 1 ? a100 : cases[i].dev == 2 ? roomy : h100);
        CHECK(blind.fill_ring == cases[i].fill && !blind.one_wave, "case %zu: no host lengths: fill_ring %d, one_wave %d",
              i, blind.fill_ring, blind.one_wave);
    }
}

int main(void)
{
    test_decode_kernels_serve();
    test_hybrid_host_plan();
    test_decode_rows_only();
    test_no_host_plan();
    test_cache_split_bound();
    test_quantized_cache_staging();
    test_decode_rows_cache_plan();
    test_paged_staging();
    test_hopper_choice();
    test_counter_place();
    test_sections();
    test_nothing_to_run();
    test_fill_ring();
    if (failures) {
        printf("test_prefill_plan: %d checks failed\n", failures);
        return 1;
    }
    printf("test_prefill_plan: all checks passed\n");
    return 0;
}
