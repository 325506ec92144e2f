/* fai-bench's kv-quant suite: decoding attention over FP16, int8 and FP8 caches on the same
 * shapes (tokens per second and the ratio to FP16; GB/s of each dtype's own bytes against
 * the copy ceiling), and fai_kv_append writing a prompt into each cache dtype (GB/s of the
 * FP16 rows read plus the codes and scales written).
 * The caches are written by fai_kv_append from random FP16 rows, so the codes are those an
 * engine would hold. Timing as in fai_bench.c: 256 MB L2 flush before every run, CUDA
 * events around the call, median. */
#define _POSIX_C_SOURCE 200809L /* nanosleep under -std=c11 */
#include "bench_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_prefill.h" /* g_check_passed, g_check_failed */
#include "bench_report.h"
#include "bench_util.h"
#include "decode_args.h"
#include "kv_codec.h"
#include "reference.h"

#define QCK(call)                                                                              \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "fai-bench: %s: %s\n", #call, cudaGetErrorString(e_));             \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static const fai_dtype k_dtypes[] = {FAI_DTYPE_FP16, FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2,
                                     FAI_DTYPE_INT8};
/* int8_bf16x2: int8 codes with FAI_SCALES_BF16X2 scales (one word of two BF16 a token and head) */
static const fai_scale_format k_scales[] = {FAI_SCALES_FP32, FAI_SCALES_FP32, FAI_SCALES_FP32, FAI_SCALES_FP32,
                                            FAI_SCALES_BF16X2};
const char *const bench_quant_dtypes[BENCH_QUANT_DTYPES] = {"fp16", "int8", "fp8_e4m3", "fp8_e5m2", "int8_bf16x2"};

/* An idle pause before each pass of a kv-quant row (--pause): the int8 kernels are bound by
 * their execution, and after about a second of the suite's heavy passes their times stepped
 * up within a row (int8_bf16x2 at MHA 128 x 8K from 2900 to 3280-3340 us, FP8 and FP16 flat;
 * session 31), so that a row's figure depended on its place in the run. */
static int g_pause_ms = 500;

void bench_quant_set_pause(int ms) { g_pause_ms = ms < 0 ? 0 : ms; }

static void pause_before_pass(cudaStream_t s)
{
    if (g_pause_ms <= 0)
        return;
    QCK(cudaStreamSynchronize(s));
    const struct timespec t = {g_pause_ms / 1000, (long)(g_pause_ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef fai_status (*quant_fn)(void *ctx, cudaStream_t s);

/* A quant_fn call as a timed_fn (for bench_warm_up). */
typedef struct quant_call {
    quant_fn fn;
    void *ctx;
} quant_call;

static int run_quant_call(void *p, cudaStream_t s)
{
    const quant_call *c = (const quant_call *)p;
    return c->fn(c->ctx, s) != FAI_SUCCESS;
}

static float median_ms(quant_fn fn, void *ctx, int reps, cudaStream_t s)
{
    cudaEvent_t e0, e1;
    QCK(cudaEventCreate(&e0));
    QCK(cudaEventCreate(&e1));
    float *t = malloc(sizeof(float) * (size_t)reps);
    /* Untimed runs first, at least 10 and 20 ms of them with their flushes (as time_median):
     * with 3, the first row timed after a cache was written measured up to 15% slow in some
     * device calls (FP16 GQA 1 x 128K: 222 us against 192 us for the same plan a moment
     * later), and a count alone left short calls' first plan slow (session 20). */
    quant_call call = {fn, ctx};
    if (bench_warm_up(run_quant_call, &call, 10, s)) {
        fprintf(stderr, "fai-bench: kv-quant: %s\n", fai_last_error());
        exit(1);
    }
    for (int i = 0; i < reps; i++) {
        bench_l2_flush(s);
        QCK(cudaEventRecord(e0, s));
        fn(ctx, s);
        QCK(cudaEventRecord(e1, s));
        QCK(cudaEventSynchronize(e1));
        QCK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    qsort(t, (size_t)reps, sizeof(float), cmp_float);
    const float m = t[reps / 2];
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return m;
}

typedef struct decode_ctx {
    fai_decode_params p;
    const fai_decode_plan *plan; /* NULL: fai_decode's own */
    void *ws;
    size_t ws_bytes;
} decode_ctx;

static fai_status run_decode(void *ctx, cudaStream_t s)
{
    decode_ctx *c = ctx;
    if (c->plan)
        return fai_decode_run_plan("fai-bench", &c->p, c->plan, c->ws, c->ws_bytes, s);
    return fai_decode(&c->p, c->ws, c->ws_bytes, s);
}

static fai_status run_append(void *ctx, cudaStream_t s) { return fai_kv_append((fai_kv_append_params *)ctx, s); }

/* Values of one element type as floats on the host: FP16 bits, int8 codes times their row's
 * scale, FP8 codes (src/kv_codec.h: the codecs fai_kv_append and the kernels match). */
static float dequantized(fai_dtype dtype, const uint8_t *e, float scale)
{
    switch (dtype) {
    case FAI_DTYPE_INT8: return fai_int8_dequantize((int8_t)e[0], scale);
    case FAI_DTYPE_FP8_E4M3: return fai_fp8_e4m3_to_float(e[0]);
    case FAI_DTYPE_FP8_E5M2: return fai_fp8_e5m2_to_float(e[0]);
    default: return fai_half_bits_to_float((uint16_t)(e[0] | e[1] << 8));
    }
}

/* One sequence's keys (kv 0) or values (kv 1) of KV head g from a contiguous cache, dequantized
 * into out [seq_k, d]. */
static void download_rows(const fai_kv_cache *c, int kv, int b, int g, int seq_k, int d, float *out)
{
    const int eb = c->dtype == FAI_DTYPE_FP16 ? 2 : 1;
    uint8_t *raw = malloc((size_t)seq_k * d * eb);
    float *scales = calloc((size_t)seq_k, sizeof(float)); /* (read for int8 caches only) */
    const char *src = (const char *)(kv ? c->v : c->k) + ((int64_t)b * c->seq_stride + (int64_t)g * c->head_stride) * eb;
    QCK(cudaMemcpy2D(raw, (size_t)d * eb, src, (size_t)c->token_stride * eb, (size_t)d * eb, (size_t)seq_k,
                     cudaMemcpyDeviceToHost));
    if (c->dtype == FAI_DTYPE_INT8) {
        const int pairs = c->scale_format == FAI_SCALES_BF16X2;
        const float *sp = (kv && !pairs ? c->v_scale : c->k_scale) + (int64_t)b * c->scale_seq_stride +
                          (int64_t)g * c->scale_head_stride;
        QCK(cudaMemcpy2D(scales, sizeof(float), sp, sizeof(float) * (size_t)c->scale_token_stride, sizeof(float),
                         (size_t)seq_k, cudaMemcpyDeviceToHost));
        for (int t = 0; pairs && t < seq_k; t++) { /* the word's K (low) or V (high) BF16 half */
            uint32_t w;
            memcpy(&w, &scales[t], sizeof w);
            scales[t] = fai_bf16_bits_to_float(fai_scale_pair_half(w, kv));
        }
    }
    for (int t = 0; t < seq_k; t++)
        for (int e = 0; e < d; e++)
            out[(int64_t)t * d + e] = dequantized(c->dtype, raw + ((int64_t)t * d + e) * eb, scales[t]);
    free(raw);
    free(scales);
}

/* --check of a kv-quant decode call over a contiguous cache: O poisoned (NaN), the call run
 * once more, then sequences 0, b / 2 and b - 1 (every query head of KV heads 0 and hk - 1)
 * against the double-precision reference on the cache as the kernels read it (codes decoded
 * on the host); pass = relative L2 <= 2e-3 over those rows and no NaN or Inf in them. Paged
 * caches: "n/a". Returns "pass", "FAIL" or "n/a" and counts the first two. */
static const char *check_decode(decode_ctx *c, int b, int seq_k, int hq, int hk, int d, cudaStream_t s, char *msg,
                                size_t size)
{
    if (c->p.cache.page_table) {
        snprintf(msg, size, "check n/a: paged cache");
        return "n/a";
    }
    const int group = hq / hk;
    const int64_t o_elems = (int64_t)b * hq * d;
    QCK(cudaMemsetAsync(c->p.o.data, 0xff, 2 * (size_t)o_elems, s));
    if (run_decode(c, s) != FAI_SUCCESS) {
        fprintf(stderr, "fai-bench: --check: fai_decode: %s\n", fai_last_error());
        exit(1);
    }
    QCK(cudaStreamSynchronize(s));
    uint16_t *ob = malloc(2 * (size_t)o_elems), *qb = malloc(2 * (size_t)o_elems);
    QCK(cudaMemcpy(ob, c->p.o.data, 2 * (size_t)o_elems, cudaMemcpyDeviceToHost));
    QCK(cudaMemcpy(qb, c->p.q.data, 2 * (size_t)o_elems, cudaMemcpyDeviceToHost));
    float *kf = malloc(sizeof(float) * (size_t)seq_k * d), *vf = malloc(sizeof(float) * (size_t)seq_k * d);
    float *qf = malloc(sizeof(float) * (size_t)group * d);
    double *ref = malloc(sizeof(double) * (size_t)group * d), err2 = 0, ref2 = 0;
    int64_t bad = 0;
    const int seqs[3] = {0, b / 2, b - 1}, heads[2] = {0, hk - 1};
    for (int si = 0; si < 3; si++)
        for (int hi = 0; hi < 2; hi++) {
            const int bs = seqs[si], g = heads[hi];
            if ((si > 0 && bs == seqs[si - 1]) || (hi > 0 && g == heads[0]))
                continue;
            download_rows(&c->p.cache, 0, bs, g, seq_k, d, kf);
            download_rows(&c->p.cache, 1, bs, g, seq_k, d, vf);
            const int64_t row = (int64_t)bs * hq * d + (int64_t)g * group * d; /* q and o: [b, hq, d] */
            for (int64_t i = 0; i < (int64_t)group * d; i++)
                qf[i] = fai_half_bits_to_float(qb[row + i]);
            fai_ref_problem rp;
            memset(&rp, 0, sizeof rp);
            rp.num_q_heads = group;
            rp.num_kv_heads = 1;
            rp.head_dim = d;
            rp.seq_q = 1;
            rp.seq_k = seq_k;
            rp.softmax_scale = c->p.attn.softmax_scale;
            if (fai_ref_attention(&rp, qf, kf, vf, ref, NULL) != 0)
                exit(2);
            for (int64_t i = 0; i < (int64_t)group * d; i++) {
                const double x = fai_half_bits_to_float(ob[row + i]);
                bad += !isfinite(x);
                err2 += (x - ref[i]) * (x - ref[i]);
                ref2 += ref[i] * ref[i];
            }
        }
    const double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    const int ok = bad == 0 && rel <= 2e-3;
    snprintf(msg, size, "check rel_l2 %.2e, non-finite %lld", rel, (long long)bad);
    free(ob);
    free(qb);
    free(kf);
    free(vf);
    free(qf);
    free(ref);
    if (ok)
        g_check_passed++;
    else
        g_check_failed++;
    return ok ? "pass" : "FAIL";
}

/* A [batch, hk, capacity, d] cache (HND; nhd: [batch, capacity, hk, d]) of `dtype` (scales
 * [batch, hk, capacity]) filled through fai_kv_append from random FP16 rows, `chunk` tokens
 * at a time. page_size > 0: a pool of batch * ceil(capacity / page_size) pages [hk,
 * page_size, d] (nhd: [page_size, hk, d]; scales [page, hk, page_size]) with a scrambled page
 * table. */
static void make_cache(fai_kv_cache *c, fai_dtype dtype, fai_scale_format scales, int batch, int capacity, int hk,
                       int d, int page_size, int nhd, uint64_t seed)
{
    const int eb = dtype == FAI_DTYPE_FP16 ? 2 : 1;
    const int pps = page_size ? (capacity + page_size - 1) / page_size : 0;
    const int slot_tokens = page_size ? pps * page_size : capacity; /* tokens per sequence's share */
    const int64_t elems = (int64_t)batch * slot_tokens * hk * d;
    memset(c, 0, sizeof *c);
    c->dtype = dtype;
    QCK(cudaMalloc(&c->k, (size_t)(elems * eb)));
    QCK(cudaMalloc(&c->v, (size_t)(elems * eb)));
    c->capacity = capacity;
    c->seq_stride = (int64_t)(page_size ? page_size : capacity) * hk * d;
    c->token_stride = nhd ? (int64_t)hk * d : d;
    c->head_stride = nhd ? d : (int64_t)(page_size ? page_size : capacity) * d;
    if (dtype == FAI_DTYPE_INT8) {
        /* Scales [batch, hk, capacity]: a decode block (one sequence and KV head) reads its
         * scales contiguously ([batch, capacity, hk] puts them hk floats apart, a 32-byte
         * sector for every 4 bytes used); in pages the same, page by page. */
        const int unit = page_size ? page_size : capacity;
        c->scale_format = scales;
        QCK(cudaMalloc((void **)&c->k_scale, sizeof(float) * (size_t)batch * slot_tokens * hk));
        if (scales == FAI_SCALES_FP32)
            QCK(cudaMalloc((void **)&c->v_scale, sizeof(float) * (size_t)batch * slot_tokens * hk));
        c->scale_seq_stride = (int64_t)unit * hk;
        c->scale_token_stride = 1;
        c->scale_head_stride = unit;
    }
    if (page_size) {
        int32_t *table;
        QCK(cudaMalloc((void **)&table, sizeof(int32_t) * (size_t)batch * pps));
        QCK(bench_page_table(table, batch, pps, seed));
        c->page_table = table;
        c->page_table_stride = pps;
        c->page_size = page_size;
        c->num_pages = batch * pps;
    }
    /* Every slot of the pool is written: slot i of sequence b (contiguous) or of the pool (paged). */
    const int64_t total = (int64_t)batch * slot_tokens;
    const int chunk = (int)(total < 65536 ? total : 65536);
    void *rows;
    int64_t *slots_dev;
    QCK(cudaMalloc(&rows, (size_t)chunk * hk * d * 2 * 2));
    QCK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)chunk));
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)chunk);
    fai_kv_append_params a = fai_kv_append_params_default();
    a.num_kv_heads = hk;
    a.head_dim = d;
    a.k_new.data = rows;
    a.k_new.token_stride = (int64_t)hk * d;
    a.k_new.head_stride = d;
    a.v_new = a.k_new;
    a.v_new.data = (char *)rows + (size_t)chunk * hk * d * 2;
    a.slots = slots_dev;
    a.cache_batch = batch;
    a.cache = *c;
    for (int64_t first = 0; first < total; first += chunk) {
        const int n = (int)(total - first < chunk ? total - first : chunk);
        QCK(bench_fill_fp16(rows, (int64_t)2 * chunk * hk * d, seed + (uint64_t)first, 1.0f, 0));
        for (int i = 0; i < n; i++)
            slots[i] = first + i;
        QCK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)n, cudaMemcpyHostToDevice));
        a.num_tokens = n;
        if (fai_kv_append(&a, 0) != FAI_SUCCESS) {
            fprintf(stderr, "fai-bench: kv-quant: filling the cache: %s\n", fai_last_error());
            exit(1);
        }
    }
    QCK(cudaDeviceSynchronize());
    free(slots);
    cudaFree(rows);
    cudaFree(slots_dev);
}

static void free_cache(fai_kv_cache *c)
{
    cudaFree((void *)c->page_table);
    cudaFree(c->k);
    cudaFree(c->v);
    cudaFree(c->k_scale);
    cudaFree(c->v_scale);
}

static double cache_bytes(int t, int64_t tokens, int hk, int d)
{
    const fai_dtype dtype = k_dtypes[t];
    const double scale = k_scales[t] == FAI_SCALES_BF16X2 ? 2.0 : 4.0; /* a token and head's K (or V) scale */
    const double per_row = dtype == FAI_DTYPE_FP16 ? 2.0 * d : dtype == FAI_DTYPE_INT8 ? d + scale : (double)d;
    return 2.0 * (double)tokens * hk * per_row; /* K and V */
}

static void write_row(const char *suite, const char *dtype, int b, int sq, int sk, int hq, int hk, int d, double ms,
                      double gbps, const char *note, const char *check, int reps)
{
    const report_row r = {suite, "fai", dtype, b, sq, sk, hq, hk, d, 0, "", ms, -1, gbps, note, check, reps};
    report_row_write(&r);
}

/* The kv-quant suite's shapes: the two decode rows (MHA batch 128 x 8K, GQA 32/8 batch
 * 1 x 128K), and GQA at batch 16 x 8K and MHA at batch 32 x 2K, over every dtype. */
const quant_shape bench_quant_suite[BENCH_QUANT_SUITE_ROWS] = {{128, 8192, 32, 32, 128, 0x1F},
                                                               {1, 131072, 32, 8, 128, 0x1F},
                                                               {16, 8192, 32, 8, 128, 0x1F},
                                                               {32, 2048, 32, 32, 128, 0x1F}};

/* What one timing pass of a shape over one cache dtype measured. */
typedef struct quant_pass {
    float ms, other_ms; /* the planned call; the other kernel's (-1: the planner has one kernel) */
    int mma;            /* the plan's kernel is the tensor-core one */
    char check_msg[96];
    const char *verdict;
} quant_pass;

/* The median time of the call under plan p, the workspace grown to what p needs (a tuning
 * grid's plans; c->plan is left pointing at p). */
static float time_plan(decode_ctx *c, const fai_decode_plan *p, int reps, cudaStream_t s)
{
    if (p->workspace_bytes > c->ws_bytes) {
        cudaFree(c->ws);
        c->ws_bytes = p->workspace_bytes;
        QCK(cudaMalloc(&c->ws, c->ws_bytes));
    }
    c->plan = p;
    return median_ms(run_decode, c, reps, s);
}

/* One pass: a fresh cache of dtype k_dtypes[t] written by fai_kv_append, the planned call and
 * the other kernel timed (median_ms), with tune the grid of plans printed, with check the
 * planned call checked (check_decode). */
static void time_pass(quant_pass *out, const quant_shape *sh, int t, int reps, int page_size, int nhd, int tune,
                      int check, fai_device_info dev, cudaStream_t s)
{
    const int b = sh->b, sk = sh->sk, hq = sh->hq, hk = sh->hk, d = sh->d;
    decode_ctx c;
    memset(&c, 0, sizeof c);
    c.p = fai_decode_params_default();
    c.p.attn.num_q_heads = hq;
    c.p.attn.num_kv_heads = hk;
    c.p.attn.head_dim = d;
    c.p.batch = b;
    void *qo;
    int32_t *lens;
    QCK(cudaMalloc(&qo, (size_t)b * hq * d * 2 * 2));
    QCK(cudaMalloc((void **)&lens, sizeof(int32_t) * (size_t)b));
    QCK(bench_fill_fp16(qo, (int64_t)b * hq * d, 7, 1.0f, 0));
    QCK(bench_fill_i32(lens, b, sk, 0));
    c.p.q.data = qo;
    c.p.q.token_stride = (int64_t)hq * d;
    c.p.q.head_stride = d;
    c.p.o = c.p.q;
    c.p.o.data = (char *)qo + (size_t)b * hq * d * 2;
    make_cache(&c.p.cache, k_dtypes[t], k_scales[t], b, sk, hk, d, page_size, nhd, 1234);
    c.p.cache.seq_lens = lens;
    fai_decode_plan plan, other;
    fai_decode_make_plan_kv("fai-bench", k_dtypes[t], page_size, b, hq, hk, d, sk, dev, FAI_DECODE_AUTO, 0, 0, 0,
                            &plan);
    fai_decode_make_plan_kv("fai-bench", k_dtypes[t], page_size, b, hq, hk, d, sk, dev,
                            plan.kernel == FAI_DECODE_MMA ? FAI_DECODE_SIMT : FAI_DECODE_MMA, 0, 0, 0, &other);
    c.ws_bytes = plan.workspace_bytes > other.workspace_bytes ? plan.workspace_bytes : other.workspace_bytes;
    if (c.ws_bytes)
        QCK(cudaMalloc(&c.ws, c.ws_bytes));
    out->ms = median_ms(run_decode, &c, reps, s);
    c.plan = &other;
    out->other_ms = other.kernel != plan.kernel ? median_ms(run_decode, &c, reps, s) : -1.0f;
    out->mma = plan.kernel == FAI_DECODE_MMA;
    if (tune) { /* the grid the planner chooses from, a line per plan */
        const int xs[2][3] = {{2, 4, 8}, {3, 6, 0}}, mult[] = {1, 2, 4, 8};
        for (int kind = 0; kind < 2; kind++)
            for (int i = 0; i < 3 && xs[kind][i]; i++)
                for (int j = 0; j < 4; j++) {
                    fai_decode_plan base, tp;
                    const int x = xs[kind][i], mma = kind == FAI_DECODE_MMA;
                    if (fai_decode_make_plan_kv("fai-bench", k_dtypes[t], page_size, b, hq, hk, d, sk, dev, kind, 0,
                                                mma ? 0 : x, mma ? x : 0, &base) != FAI_SUCCESS ||
                        base.kernel != kind)
                        continue;
                    const int sp = mult[j] * base.num_splits;
                    if (sp > FAI_DECODE_MAX_SPLITS ||
                        fai_decode_make_plan_kv("fai-bench", k_dtypes[t], page_size, b, hq, hk, d, sk, dev, kind, sp,
                                                mma ? 0 : x, mma ? x : 0, &tp) != FAI_SUCCESS)
                        continue;
                    const float tms = time_plan(&c, &tp, reps, s);
                    printf("%-10s %5d %7d %3d/%-2d %4d %5s %9.1f  (tune: %s %d, %d splits)\n", bench_quant_dtypes[t], b,
                           sk, hq, hk, d, mma ? "mma" : "simt", tms * 1e3, mma ? "stages" : "warps", x, sp);
                }
    }
    if (tune && plan.split_from > 0) { /* the planner's split tail: off, and other ways to split it */
        const int ways[] = {1, 2, 3, 4, 6};
        for (int j = 0; j < 5; j++) {
            fai_decode_plan tp = plan;
            fai_decode_plan_tail(&tp, k_dtypes[t], b, hq, hk, ways[j] == 1 ? INT32_MAX : plan.split_from, ways[j]);
            const float tms = time_plan(&c, &tp, reps, s);
            printf("%-10s %5d %7d %3d/%-2d %4d %5s %9.1f  (tune: items from %d in %d splits%s)\n", bench_quant_dtypes[t],
                   b, sk, hq, hk, d, "mma", tms * 1e3, plan.split_from, ways[j],
                   ways[j] == plan.num_splits ? ", planned" : ways[j] == 1 ? ": no split tail" : "");
        }
    }
    out->check_msg[0] = '\0';
    out->verdict = "";
    if (check) {
        c.plan = NULL; /* the planned call, as timed */
        out->verdict = check_decode(&c, b, sk, hq, hk, d, s, out->check_msg, sizeof out->check_msg);
    }
    free_cache(&c.p.cache);
    cudaFree(qo);
    cudaFree(lens);
    cudaFree(c.ws);
}

void bench_quant(const quant_shape *shapes, int count, int append, double copy_gbps, int reps, int page_size,
                 int nhd, int tune, int check, cudaStream_t s)
{
    if (!shapes) {
        shapes = bench_quant_suite;
        count = BENCH_QUANT_SUITE_ROWS;
    }
    struct cudaDeviceProp prop;
    int dev_id = 0;
    QCK(cudaGetDevice(&dev_id));
    QCK(cudaGetDeviceProperties(&prop, dev_id));
    const fai_device_info dev = {prop.multiProcessorCount, (int)prop.sharedMemPerMultiprocessor, prop.major,
                                 (int)prop.sharedMemPerBlockOptin};
    printf("\nkv-quant: decoding attention over each cache dtype (copy ceiling %.0f GB/s, %s, %s); 'other' =\n"
           "the other kernel's time (tensor cores vs CUDA cores) for the same call; FP16 is timed before\n"
           "and after the quantized dtypes of each shape, and x fp16 divides the lower of the two\n"
           "(FP16's line shows that time and both passes)\n", copy_gbps, page_size ? "paged" : "contiguous caches",
           nhd ? "NHD" : "HND");
    printf("%-10s %5s %7s %6s %4s %5s %9s %9s %7s %8s %9s\n", "dtype", "b", "sk", "hq/hk", "d", "plan", "us", "GB/s",
           "%copy", "x fp16", "other us");
    for (int r = 0; r < count; r++) {
        const int b = shapes[r].b, sk = shapes[r].sk, hq = shapes[r].hq, hk = shapes[r].hk, d = shapes[r].d;
        /* FP16 first (tuned and checked there), then the quantized dtypes, then FP16 again: the
         * baseline timed first ran slow in some processes (the first timed row, or the first
         * after a cache was written), and a slow baseline inflates every x fp16 of the shape. */
        quant_pass pass[BENCH_QUANT_DTYPES], fp16_after;
        int quantized = 0;
        for (int t = 0; t < BENCH_QUANT_DTYPES; t++) {
            if (t > 0 && !(shapes[r].dtypes & (1u << t)))
                continue;
            pause_before_pass(s);
            time_pass(&pass[t], &shapes[r], t, reps, page_size, nhd, tune, check, dev, s);
            quantized += t > 0;
        }
        fp16_after.ms = -1.0f;
        if (quantized) {
            pause_before_pass(s);
            time_pass(&fp16_after, &shapes[r], 0, reps, page_size, nhd, 0, 0, dev, s);
        }
        const float fp16_before = pass[0].ms;
        const float fp16_ms = fp16_after.ms > 0 && fp16_after.ms < fp16_before ? fp16_after.ms : fp16_before;
        for (int t = 0; t < BENCH_QUANT_DTYPES; t++) {
            if (t > 0 && !(shapes[r].dtypes & (1u << t)))
                continue;
            const quant_pass *q = &pass[t];
            const float ms = t == 0 ? fp16_ms : q->ms; /* FP16's row: the baseline the ratios use */
            const double bytes = cache_bytes(t, (int64_t)b * sk, hk, d) + 2.0 * b * hq * d * 2;
            const double gbps = bytes / (ms * 1e-3) / 1e9;
            const char *kname = q->mma ? "mma" : "simt";
            char both[96] = "";
            if (t == 0 && fp16_after.ms > 0)
                snprintf(both, sizeof both, "  (before %.1f, after %.1f us)", fp16_before * 1e3, fp16_after.ms * 1e3);
            printf("%-10s %5d %7d %3d/%-2d %4d %5s %9.1f %9.0f %7.1f %8.2f %9.1f%s\n", bench_quant_dtypes[t], b, sk, hq,
                   hk, d, kname, ms * 1e3, gbps, 100.0 * gbps / copy_gbps, fp16_ms / ms, q->other_ms * 1e3, both);
            if (check)
                printf("%-10s %5d %7d %3d/%-2d %4d  %s: %s\n", bench_quant_dtypes[t], b, sk, hq, hk, d, q->check_msg,
                       q->verdict);
            char note[768], fp16_note[96] = "";
            if (t == 0 && fp16_after.ms > 0)
                snprintf(fp16_note, sizeof fp16_note, "; fp16 before %.5f ms after %.5f ms (the lower reported)",
                         fp16_before, fp16_after.ms);
            snprintf(note, sizeof note, "plan %s; x_fp16 %.3f; other kernel %.5f ms; page %d; %s; pause %d ms%s%s%s",
                     kname, fp16_ms / ms, q->other_ms, page_size, nhd ? "nhd" : "hnd", g_pause_ms, fp16_note,
                     check ? "; " : "", q->check_msg);
            write_row("kv-quant", bench_quant_dtypes[t], b, 1, sk, hq, hk, d, ms, gbps, note, q->verdict, reps);
        }
    }

    if (!append) {
        return;
    }
    /* Append: a prompt of 16384 tokens (8 KV heads of 128) into a cache of 4 x 16384 slots. */
    const int tokens = 16384, hk = 8, d = 128;
    printf("\nkv-quant: fai_kv_append of a %d-token prompt, %d KV heads of %d (GB/s of rows read + written)\n",
           tokens, hk, d);
    printf("%-14s %9s %9s %7s\n", "dtype", "us", "GB/s", "%copy");
    for (int t = 0; t < BENCH_QUANT_DTYPES; t++) {
        fai_kv_append_params a = fai_kv_append_params_default();
        fai_kv_cache c;
        make_cache(&c, k_dtypes[t], k_scales[t], 4, tokens, hk, d, 0, 1, 99); /* (NHD: a prompt's rows side by side) */
        void *rows;
        int64_t *slots_dev;
        QCK(cudaMalloc(&rows, (size_t)tokens * hk * d * 2 * 2));
        QCK(bench_fill_fp16(rows, (int64_t)2 * tokens * hk * d, 5, 1.0f, 0));
        QCK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)tokens));
        int64_t *slots = malloc(sizeof(int64_t) * (size_t)tokens);
        for (int i = 0; i < tokens; i++)
            slots[i] = (int64_t)2 * tokens + i; /* sequence 2's slot */
        QCK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)tokens, cudaMemcpyHostToDevice));
        free(slots);
        a.num_kv_heads = hk;
        a.head_dim = d;
        a.num_tokens = tokens;
        a.k_new.data = rows;
        a.k_new.token_stride = (int64_t)hk * d;
        a.k_new.head_stride = d;
        a.v_new = a.k_new;
        a.v_new.data = (char *)rows + (size_t)tokens * hk * d * 2;
        a.slots = slots_dev;
        a.cache_batch = 4;
        a.cache = c;
        const float ms = median_ms(run_append, &a, reps, s);
        const double bytes = 2.0 * tokens * hk * d * 2 + cache_bytes(t, tokens, hk, d) + 8.0 * tokens;
        const double gbps = bytes / (ms * 1e-3) / 1e9;
        printf("%-14s %9.1f %9.0f %7.1f\n", bench_quant_dtypes[t], ms * 1e3, gbps, 100.0 * gbps / copy_gbps);
        write_row("kv-append", bench_quant_dtypes[t], 1, tokens, tokens, 0, hk, d, ms, gbps,
                  "rows read + codes/scales written", "", reps);
        free_cache(&c);
        cudaFree(rows);
        cudaFree(slots_dev);
    }
}

