/* fai-bench: the benchmark driver. Measures the device's ceilings first (device-to-device
 * copy, streaming read, and an FP16 matrix product through cuBLAS for the tensor cores), then
 * times fai on the standard decode, prefill and hybrid sweeps of shared/guides/benchmarks.md or
 * on given shapes, the way triton.testing.do_bench times the peers: L2 flushed (a 256 MB
 * memset) before every run, CUDA events around the call alone, warm-up first, median of many
 * runs. Prints a table (progress on stderr) and optionally a CSV whose columns match
 * shared/tools/sdpa_peers.py (so the two can be joined) and a JSON file of the same rows.
 * With --check every row's output is also compared with the CPU reference (bench_check.c).
 * --dtype bf16 runs the decode, prefill and hybrid rows in BF16; --window, --softcap and --sinks
 * turn on those variants of fai_attention in every call (bench_set_variants).
 * The decode rows live here, the prefill and hybrid rows in bench_prefill.c, the chunked-prefill
 * suite in bench_chunked.c and the kv-quant suite in bench_quant.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_check.h"
#include "bench_prefill.h"
#include "bench_quant.h"
#include "bench_report.h"
#include "bench_util.h"
#include "decode_args.h"
#include "fai.h"

#define DEC(suite, b, sk, hq, hk, d) {suite, ROW_DECODE, b, 1, sk, hq, hk, d, 0, 0.0}
static const shape decode_seq[] = {
    DEC("decode-seq", 128, 128, 32, 32, 128),  DEC("decode-seq", 128, 256, 32, 32, 128),
    DEC("decode-seq", 128, 512, 32, 32, 128),  DEC("decode-seq", 128, 1024, 32, 32, 128),
    DEC("decode-seq", 128, 2048, 32, 32, 128), DEC("decode-seq", 128, 4096, 32, 32, 128),
    DEC("decode-seq", 128, 8192, 32, 32, 128),
};
static const shape decode_batch[] = {
    DEC("decode-batch", 1, 128, 32, 32, 128),    DEC("decode-batch", 8, 128, 32, 32, 128),
    DEC("decode-batch", 16, 128, 32, 32, 128),   DEC("decode-batch", 32, 128, 32, 32, 128),
    DEC("decode-batch", 64, 128, 32, 32, 128),   DEC("decode-batch", 128, 128, 32, 32, 128),
    DEC("decode-batch", 256, 128, 32, 32, 128),  DEC("decode-batch", 512, 128, 32, 32, 128),
    DEC("decode-batch", 1024, 128, 32, 32, 128), DEC("decode-batch", 2048, 128, 32, 32, 128),
};
static const shape decode_gqa[] = {
    DEC("decode-gqa", 1, 32768, 32, 8, 128),
    DEC("decode-gqa", 1, 131072, 32, 8, 128),
    DEC("decode-gqa", 16, 8192, 32, 8, 128),
    DEC("decode-gqa", 64, 4096, 32, 8, 128),
};

/* What --suite names, in this order: a group name stands for its members. */
static const char *const suite_names[] = {"decode-seq",  "decode-batch", "decode-gqa", "prefill-seq",
                                          "prefill-batch", "prefill-gqa", "head-dims",  "hybrid"};
#define N_SUITES (int)(sizeof suite_names / sizeof *suite_names)
static const shape *suite_rows(const char *name, int *count)
{
#define SUITE_(n, rows)                                                                       \
    if (!strcmp(name, n)) {                                                                   \
        *count = (int)(sizeof rows / sizeof *rows);                                           \
        return rows;                                                                          \
    }
    SUITE_("decode-seq", decode_seq)
    SUITE_("decode-batch", decode_batch)
    SUITE_("decode-gqa", decode_gqa)
#undef SUITE_
    return prefill_suite(name, count);
}

#ifndef FAI_BENCH_GIT
#define FAI_BENCH_GIT "unknown"
#endif

#define GEMM_N 8192
static void *g_flush;
static uint32_t *g_flush_sink;
static int g_flush_read; /* --flush read */
static int g_flush_none; /* --flush none: no flush (warm caches, a diagnostic) */
static double g_copy_gbps, g_read_gbps, g_gemm_ms = -1.0;
double g_gemm_tflops = -1.0;
int g_check_failed, g_check_passed;
static struct timespec g_t0;

double bench_elapsed(void)
{
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)(t.tv_sec - g_t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - g_t0.tv_nsec);
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Pushes the inputs of the last run out of the L2 before the next, in the untimed region.
 * write (default): a 256 MB memset, as triton.testing.do_bench zeroes its cache buffer (so
 * the peers in bench/compare.py are timed alike); the L2 is then full of dirty lines, which
 * the timed call must write back as it evicts them (up to the L2's 50 MB of extra DRAM
 * writes, a large share of a call that moves tens of MB). read: a 256 MB streaming read, so
 * the L2 holds clean lines of data the call never touches, as with inputs rotated past it. */
void bench_l2_flush(cudaStream_t s)
{
    if (g_flush_none)
        return;
    if (g_flush_read)
        CK(bench_read_flush(g_flush, g_flush_sink, s));
    else
        CK(cudaMemsetAsync(g_flush, 0, BENCH_FLUSH_BYTES, s));
}

/* Untimed runs, each after an L2 flush as the timed ones are: at least `warmup` of them and
 * WARMUP_MS of GPU time (none when warmup is 0). Five back-to-back runs of a 5 us call left
 * the first plan timed after a row's setup 5-15 % slower than the same plan timed later
 * (fai-bench --tune, batch 1 x 128 keys, session 20); triton's do_bench warms up for 25 ms. */
#define WARMUP_MS 20.0f
int bench_warm_up(timed_fn fn, void *ctx, int warmup, cudaStream_t s)
{
    if (warmup <= 0)
        return 0;
    cudaEvent_t t0, t1;
    CK(cudaEventCreate(&t0));
    CK(cudaEventCreate(&t1));
    float total = 0.0f;
    int runs = 0, err = 0;
    while (!err && (runs < warmup || total < WARMUP_MS) && runs < 4096) {
        CK(cudaEventRecord(t0, s));
        for (int i = 0; i < 8 && !err; i++, runs++) {
            bench_l2_flush(s);
            err = fn(ctx, s);
        }
        CK(cudaEventRecord(t1, s));
        CK(cudaEventSynchronize(t1));
        float ms = 0.0f;
        CK(cudaEventElapsedTime(&ms, t0, t1));
        total += ms;
    }
    cudaEventDestroy(t0);
    cudaEventDestroy(t1);
    return err;
}

/* Median time in ms of fn(ctx) over `reps` runs, each after an L2 flush. */
float time_median(timed_fn fn, void *ctx, int warmup, int reps, cudaStream_t s)
{
    if (bench_warm_up(fn, ctx, warmup, s))
        return -1.0f;
    cudaEvent_t *ev = malloc(sizeof(cudaEvent_t) * 2 * (size_t)reps);
    float *ms = malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < 2 * reps; i++)
        CK(cudaEventCreate(&ev[i]));
    for (int i = 0; i < reps; i++) {
        bench_l2_flush(s);
        CK(cudaEventRecord(ev[2 * i], s));
        if (fn(ctx, s))
            return -1.0f;
        CK(cudaEventRecord(ev[2 * i + 1], s));
    }
    CK(cudaStreamSynchronize(s));
    for (int i = 0; i < reps; i++)
        CK(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    for (int i = 0; i < 2 * reps; i++)
        cudaEventDestroy(ev[i]);
    qsort(ms, (size_t)reps, sizeof(float), cmp_float);
    const float med = ms[reps / 2];
    free(ev);
    free(ms);
    return med;
}

typedef struct copy_ctx {
    void *dst, *src;
    size_t bytes;
    uint32_t *sink;
    int read_only;
} copy_ctx;

static int run_copy(void *ctx, cudaStream_t s)
{
    copy_ctx *c = ctx;
    if (c->read_only)
        return bench_read(c->src, (int64_t)c->bytes, 132 * 8, c->sink, s) != cudaSuccess;
    return cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, s) != cudaSuccess;
}

static void measure_ceilings(cudaStream_t s, int reps)
{
    copy_ctx c = {0};
    c.bytes = (size_t)1 << 30;
    CK(cudaMalloc(&c.src, c.bytes * 4));
    CK(cudaMalloc(&c.dst, c.bytes));
    CK(cudaMalloc((void **)&c.sink, 4096 * sizeof(uint32_t)));
    CK(bench_fill_fp16(c.src, (int64_t)(c.bytes * 4 / 2), 7, 1.0f, s));
    const float copy_ms = time_median(run_copy, &c, 3, reps, s);
    g_copy_gbps = 2.0 * (double)c.bytes / (copy_ms * 1e-3) / 1e9;
    c.read_only = 1;
    c.bytes *= 4;
    const float read_ms = time_median(run_copy, &c, 3, reps, s);
    g_read_gbps = (double)c.bytes / (read_ms * 1e-3) / 1e9;
    cudaFree(c.src);
    cudaFree(c.dst);
    cudaFree(c.sink);
}

typedef struct decode_ctx {
    fai_decode_params p;
    fai_decode_plan plan;
    int use_plan;
    void *ws;
    size_t ws_bytes;
} decode_ctx;

static int run_decode(void *ctx, cudaStream_t s)
{
    decode_ctx *c = ctx;
    fai_status st = c->use_plan ? fai_decode_run_plan("fai-bench", &c->p, &c->plan, c->ws, c->ws_bytes, s)
                                : fai_decode(&c->p, c->ws, c->ws_bytes, s);
    if (st != FAI_SUCCESS) {
        fprintf(stderr, "fai-bench: %s: %s\n", fai_status_string(st), fai_last_error());
        return 1;
    }
    return 0;
}

/* Inputs of every row come from one arena allocated once for the largest row (as PyTorch's
 * caching allocator serves the peers): a cudaMalloc/cudaFree per row made the rows after the
 * 17 GB one measurably slower. */
static char *g_arena;
static size_t g_arena_size, g_arena_used;

static size_t row_bytes(const shape *sh)
{
    if (sh->kind != ROW_DECODE)
        return prefill_row_bytes(sh);
    /* (rounded up to whole pages of the largest page size: a paged cache's last page) */
    const size_t q = (size_t)sh->b * sh->hq * sh->d * 2, kv = (size_t)sh->b * (sh->sk + 255) * sh->hk * sh->d * 2;
    return 2 * q + 2 * kv + sizeof(int32_t) * (size_t)sh->b * (sh->sk + 2) + 6 * 256;
}

void arena_reset(void)
{
    g_arena_used = 0;
}

void *arena_take(size_t bytes)
{
    const size_t off = (g_arena_used + 255) & ~(size_t)255;
    if (off + bytes > g_arena_size) {
        fprintf(stderr, "fai-bench: arena of %zu bytes too small\n", g_arena_size);
        exit(1);
    }
    g_arena_used = off + bytes;
    return g_arena + off;
}

char g_device[256];

static void bench_decode(const shape *sh, const options *o, int index, int total, cudaStream_t s, fai_device_info dev,
                         int report)
{
    decode_ctx c;
    memset(&c, 0, sizeof c);
    fai_decode_params *p = &c.p;
    *p = fai_decode_params_default();
    p->attn.num_q_heads = sh->hq;
    p->attn.num_kv_heads = sh->hk;
    p->attn.head_dim = sh->d;
    p->attn.softmax_scale = 1.0f / sqrtf((float)sh->d);
    p->attn.alibi = o->alibi;
    bench_set_variants(&p->attn, o, 1); /* (the one query is the last position: causal) */
    const fai_dtype dt = o->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    p->batch = sh->b;
    const int64_t q_elems = (int64_t)sh->b * sh->hq * sh->d;
    /* --page-size P: the same bytes as a pool of b * ceil(sk / P) pages and a scrambled page
     * table (the cache's layout inside a page as --layout says). */
    const int P = o->page_size, pps = P ? (sh->sk + P - 1) / P : 0;
    const int64_t kv_elems = (int64_t)sh->b * (P ? (int64_t)pps * P : sh->sk) * sh->hk * sh->d;
    void *q, *out, *k, *v;
    int32_t *lens;
    arena_reset();
    q = arena_take((size_t)q_elems * 2);
    out = arena_take((size_t)q_elems * 2);
    k = arena_take((size_t)kv_elems * 2);
    v = arena_take((size_t)kv_elems * 2);
    lens = arena_take(sizeof(int32_t) * (size_t)sh->b);
    CK(bench_fill_16(q, q_elems, o->bf16, 1 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_16(k, kv_elems, o->bf16, 1000 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_16(v, kv_elems, o->bf16, 2000 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_i32(lens, sh->b, sh->sk, s));
    p->q = (fai_tensor){q, dt, (int64_t)sh->hq * sh->d, sh->d};
    p->o = (fai_tensor){out, dt, (int64_t)sh->hq * sh->d, sh->d};
    p->cache.dtype = dt;
    p->cache.k = k;
    p->cache.v = v;
    p->cache.capacity = sh->sk;
    /* HND [batch, heads, seq, dim] by default: the layout SDPA's peers read (per-head rows
     * contiguous); --layout nhd for [batch, seq, heads, dim]. */
    p->cache.seq_stride = (int64_t)sh->sk * sh->hk * sh->d;
    p->cache.token_stride = o->nhd ? (int64_t)sh->hk * sh->d : sh->d;
    p->cache.head_stride = o->nhd ? sh->d : (int64_t)sh->sk * sh->d;
    p->cache.seq_lens = lens;
    if (P) {
        int32_t *table = arena_take(sizeof(int32_t) * (size_t)sh->b * pps);
        CK(bench_page_table(table, sh->b, pps, 77 + (uint64_t)index));
        p->cache.page_table = table;
        p->cache.page_table_stride = pps;
        p->cache.page_size = P;
        p->cache.num_pages = sh->b * pps;
        p->cache.seq_stride = (int64_t)P * sh->hk * sh->d;
        p->cache.head_stride = o->nhd ? sh->d : (int64_t)P * sh->d;
    }

    /* fai's own checks first: forced plans below skip them. */
    size_t ws_check = 0;
    const fai_status valid = fai_decode_workspace_size(p, &ws_check);
    if (valid != FAI_SUCCESS && o->bf16 && FAI_STATUS_CATEGORY(valid) == FAI_ERROR_NOT_SUPPORTED) {
        /* BF16 decode is newer than this tool: a build without it skips the row. */
        char why[300];
        snprintf(why, sizeof why, "skipped: BF16 decode not available (%s: %s)", fai_status_string(valid),
                 fai_last_error());
        for (char *t = why; *t; t++)
            if (*t == ',' || *t == '\n')
                *t = ';';
        if (report) {
            printf("%-13s %5d %7d %3d/%-3d %4d  %s\n", sh->suite, sh->b, sh->sk, sh->hq, sh->hk, sh->d, why);
            fflush(stdout);
            const report_row row = {sh->suite, "fai", bench_dtype_name(o), sh->b, 1, sh->sk, sh->hq, sh->hk, sh->d,
                                    0, "", -1, -1, -1, why, o->check ? "n/a" : "", 0};
            report_row_write(&row);
            fprintf(stderr, "[%d/%d] %s b=%d sk=%d %s\n", index + 1, total, sh->suite, sh->b, sh->sk, why);
        }
        return;
    }
    if (valid != FAI_SUCCESS) {
        fprintf(stderr, "fai-bench: %s: %s\n", fai_status_string(valid), fai_last_error());
        exit(2);
    }
    /* Keys a query sees: all sk, or the window's (the plan and the GB/s count only those). */
    const int seen = p->attn.window && p->attn.window_left >= 0 && p->attn.window_left < sh->sk
                         ? p->attn.window_left + 1
                         : sh->sk;
    /* (the keys that exist: a pool's padding past sk in its last pages is not counted) */
    const double seen_kv = (double)sh->b * sh->hk * sh->d * seen;
    const double bytes = 2.0 * (2.0 * q_elems + 2.0 * seen_kv);
    /* Candidate plans: the heuristic's (or the forced one), and with --tune a grid of kernels x
     * warps (CUDA cores) or ring stages (tensor cores) x splits. */
    int cand_k[64], cand_x[64], cand_s[64], nc = 0;
    fai_decode_make_plan_kv("fai-bench", dt, o->page_size, sh->b, sh->hq, sh->hk, sh->d, seen, dev, o->kernel,
                            o->splits, o->warps, 0, &c.plan);
    cand_k[nc] = c.plan.kernel;
    cand_x[nc] = c.plan.kernel == FAI_DECODE_MMA ? c.plan.stages : c.plan.warps_per_block;
    cand_s[nc++] = c.plan.num_splits;
    if (o->tune) {
        const int xs[2][3] = {{2, 4, 8}, {3, 4, 6}}, ss[] = {1, 2, 4};
        for (int kind = 0; kind < 2; kind++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++) {
                    fai_decode_plan base;
                    const int x = xs[kind][i];
                    fai_decode_make_plan_kv("fai-bench", dt, o->page_size, sh->b, sh->hq, sh->hk, sh->d, seen, dev,
                                            kind, 0, kind == FAI_DECODE_MMA ? 0 : x, kind == FAI_DECODE_MMA ? x : 0,
                                            &base);
                    const int sp = ss[j] * base.num_splits;
                    if (base.kernel != kind || (kind == cand_k[0] && x == cand_x[0] && sp == cand_s[0]))
                        continue;
                    cand_k[nc] = kind;
                    cand_x[nc] = x;
                    cand_s[nc++] = sp;
                }
    }
    /* --check: the reference of the sampled rows once, then every candidate's output. */
    check_ref *ref = NULL;
    check_problem cp;
    int64_t *q_start = NULL, *k_start = NULL;
    int *seq_q = NULL, *seq_k = NULL;
    if (o->check && report && !P) { /* (the reference reads contiguous caches: paged rows n/a) */
        q_start = malloc(sizeof(int64_t) * (size_t)sh->b);
        k_start = malloc(sizeof(int64_t) * (size_t)sh->b);
        seq_q = malloc(sizeof(int) * (size_t)sh->b);
        seq_k = malloc(sizeof(int) * (size_t)sh->b);
        for (int b = 0; b < sh->b; b++) {
            q_start[b] = b;
            k_start[b] = (int64_t)b * p->cache.seq_stride;
            seq_q[b] = 1;
            seq_k[b] = sh->sk;
        }
        memset(&cp, 0, sizeof cp);
        cp.batch = sh->b;
        cp.hq = sh->hq;
        cp.hk = sh->hk;
        cp.d = sh->d;
        cp.alibi = o->alibi;
        cp.scale = p->attn.softmax_scale;
        cp.q = q;
        cp.k = k;
        cp.v = v;
        cp.o = out;
        cp.q_token_stride = (int64_t)sh->hq * sh->d;
        cp.k_token_stride = p->cache.token_stride;
        cp.k_head_stride = p->cache.head_stride;
        cp.q_start = q_start;
        cp.k_start = k_start;
        cp.seq_q = seq_q;
        cp.seq_k = seq_k;
        cp.total_q = sh->b;
        cp.bf16 = o->bf16;
        check_set_variants(&cp, &p->attn, bench_sinks_host());
        fprintf(stderr, "[%d/%d] computing the reference (%.1f s)\n", index + 1, total, bench_elapsed());
        ref = check_prepare(&cp, s);
    }
    for (int ci = 0; ci < nc; ci++) {
        c.use_plan = o->tune || o->splits || o->warps || o->kernel != FAI_DECODE_AUTO;
        const int mma = cand_k[ci] == FAI_DECODE_MMA;
        fai_decode_make_plan_kv("fai-bench", dt, o->page_size, sh->b, sh->hq, sh->hk, sh->d, seen, dev, cand_k[ci],
                                cand_s[ci], mma ? 0 : cand_x[ci], mma ? cand_x[ci] : 0, &c.plan);
        if (c.plan.workspace_bytes > c.ws_bytes) {
            cudaFree(c.ws);
            c.ws_bytes = c.plan.workspace_bytes;
            CK(cudaMalloc(&c.ws, c.ws_bytes));
        }
        const float ms = time_median(run_decode, &c, o->warmup, o->reps, s);
        if (ms < 0)
            exit(1);
        if (!report)
            break;
        char check[300] = "", verdict[8] = "";
        if (o->check) {
            if (P) {
                snprintf(check, sizeof check, "n/a (paged cache)");
                snprintf(verdict, sizeof verdict, "n/a");
            } else {
                check_call(ref, &cp, run_decode, &c, s, check, sizeof check, verdict);
            }
            fprintf(stderr, "[%d/%d] check %s\n", index + 1, total, check);
        }
        const double gbps = bytes / (ms * 1e-3) / 1e9;
        const double tflops = 4.0 * sh->b * (double)seen * sh->hq * sh->d / (ms * 1e-3) / 1e12;
        const int is_mma = c.plan.kernel == FAI_DECODE_MMA;
        char plan[32];
        snprintf(plan, sizeof plan, "%-4s %dw%s %4ds", is_mma ? "mma" : "simt", c.plan.warps_per_block,
                 !is_mma ? "" : c.plan.stages == 2 ? "/2st" : c.plan.stages == 3 ? "/3st" : c.plan.stages == 4 ? "/4st" : "/6st",
                 c.plan.num_splits);
        printf("%-13s %5d %7d %3d/%-3d %4d  %s  %9.4f  %8.1f  %5.1f%%  %5.1f%%%s%s%s\n", sh->suite, sh->b, sh->sk,
               sh->hq, sh->hk, sh->d, plan, ms, gbps, 100.0 * gbps / g_copy_gbps, 100.0 * gbps / g_read_gbps,
               ci ? "  (tune)" : "", *check ? "  " : "", check);
        fflush(stdout);
        if (ci == 0) {
            char note[200];
            char paged[24] = "";
            if (P)
                snprintf(paged, sizeof paged, " page %d", P);
            snprintf(note, sizeof note, "%s %dw %ds %s%s%s", is_mma ? "mma" : "simt", c.plan.warps_per_block,
                     c.plan.num_splits, o->nhd ? "nhd" : "hnd", o->alibi ? " alibi" : "", paged);
            bench_variant_note(note, sizeof note, o, &p->attn);
            const report_row row = {sh->suite, "fai", bench_dtype_name(o), sh->b, 1, sh->sk, sh->hq, sh->hk, sh->d,
                                    0, "", ms, tflops, gbps, note, verdict, o->reps};
            report_row_write(&row);
        }
    }
    check_free(ref);
    free(q_start);
    free(k_start);
    free(seq_q);
    free(seq_k);
    if (report)
        fprintf(stderr, "[%d/%d] %s b=%d sk=%d done (%.1f s)\n", index + 1, total, sh->suite, sh->b, sh->sk,
                bench_elapsed());
    cudaFree(c.ws);
}

static void bench_row(const shape *sh, const options *o, int index, int total, cudaStream_t s, fai_device_info dev,
                      int report)
{
    char frac[32] = "";
    if (sh->kind == ROW_HYBRID)
        format_frac(frac, sizeof frac, sh->frac);
    fprintf(stderr, "[%d/%d] %s%s b=%d sq=%d sk=%d hq=%d hk=%d d=%d%s%s (%.1f s)\n", index + 1, total,
            report ? "" : "warm-up run of ", sh->suite, sh->b, sh->sq, sh->sk, sh->hq, sh->hk, sh->d,
            *frac ? " frac=" : "", frac, bench_elapsed());
    if (sh->kind == ROW_DECODE)
        bench_decode(sh, o, index, total, s, dev, report);
    else
        bench_prefill(sh, o, index, total, s, report);
}

/* A table header whenever the kind of row changes (decode, prefill, hybrid). */
static void table_header(int kind, int check)
{
    static int last = -1;
    if (kind == last)
        return;
    if (last >= 0)
        printf("\n");
    last = kind;
    if (kind == ROW_DECODE)
        printf("%-13s %5s %7s %7s %4s  %-16s  %9s  %8s  %6s  %6s%s\n", "suite", "b", "sk", "hq/hk", "d", "plan", "ms",
               "GB/s", "%copy", "%read", check ? "  check" : "");
    else
        prefill_print_header(kind, check);
}

/* Whether --suite's word `t` names suite `name`: itself, its group, or all. */
static int suite_selected(const char *t, const char *name)
{
    if (!strcmp(t, name) || !strcmp(t, "all"))
        return 1;
    const int decode = !strncmp(name, "decode-", 7), hybrid = !strcmp(name, "hybrid");
    return (!strcmp(t, "decode") && decode) || (!strcmp(t, "prefill") && !decode && !hybrid);
}

/* --shape b=..,sq=..,sk=..,hq=..,hk=..,d=..,causal=..[,prefill_frac=..][,kv=..]; 0 on success.
 * kv: the cache dtype's index in bench_quant_dtypes (0: FP16). */
static int parse_shape(const char *spec, shape *sh, int *kv)
{
    *kv = 0;
    const shape def = {"shape", ROW_DECODE, 1, 1, 128, 32, 32, 128, 0, 0.0};
    *sh = def;
    int hybrid = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        char *eq = strchr(t, '='), *end = NULL;
        if (!eq || eq == t || !eq[1]) {
            fprintf(stderr, "fai-bench: bad --shape item '%s' (want key=value)\n", t);
            return -1;
        }
        *eq = '\0';
        const char *key = t, *val = eq + 1;
        if (!strcmp(key, "prefill_frac")) {
            sh->frac = strtod(val, &end);
            if (*end || !(sh->frac >= 0.0 && sh->frac <= 1.0)) {
                fprintf(stderr, "fai-bench: --shape prefill_frac=%s is not in [0, 1]\n", val);
                return -1;
            }
            hybrid = 1;
            continue;
        }
        if (!strcmp(key, "kv")) { /* the cache dtype of a decode row */
            *kv = -1;
            for (int k = 0; k < BENCH_QUANT_DTYPES; k++)
                if (!strcmp(val, bench_quant_dtypes[k]))
                    *kv = k;
            if (*kv < 0) {
                fprintf(stderr, "fai-bench: --shape kv=%s: want fp16, int8, fp8_e4m3, fp8_e5m2 or int8_bf16x2\n", val);
                return -1;
            }
            continue;
        }
        const long x = strtol(val, &end, 10);
        if (*end || x < 0 || x > INT32_MAX) {
            fprintf(stderr, "fai-bench: bad --shape value %s=%s\n", key, val);
            return -1;
        }
        int *field = !strcmp(key, "b")        ? &sh->b
                     : !strcmp(key, "sq")     ? &sh->sq
                     : !strcmp(key, "sk")     ? &sh->sk
                     : !strcmp(key, "hq")     ? &sh->hq
                     : !strcmp(key, "hk")     ? &sh->hk
                     : !strcmp(key, "d")      ? &sh->d
                     : !strcmp(key, "causal") ? &sh->causal
                                              : NULL;
        if (!field) {
            fprintf(stderr, "fai-bench: unknown --shape key '%s'\n", key);
            return -1;
        }
        *field = (int)x;
    }
    if (sh->b < 1 || sh->sq < 1 || sh->sk < 1 || sh->hq < 1 || sh->hk < 1 || sh->d < 1) {
        fprintf(stderr, "fai-bench: --shape %s: b, sq, sk, hq, hk and d must be >= 1\n", spec);
        return -1;
    }
    sh->causal = sh->causal != 0;
    if (*kv > 0 && (hybrid || sh->sq != 1)) {
        fprintf(stderr, "fai-bench: --shape %s: kv= is for decode rows (sq=1, no prefill_frac)\n", spec);
        return -1;
    }
    /* Hybrid rows are causal, as sdpa_peers.py's: its prefill part always is. */
    sh->kind = hybrid ? ROW_HYBRID : sh->sq > 1 ? ROW_PREFILL : ROW_DECODE;
    if (hybrid)
        sh->causal = 1;
    return 0;
}

static void usage(void)
{
    printf("usage: fai-bench [options]\n"
           "  --suite LIST    comma-separated: decode-seq, decode-batch, decode-gqa, prefill-seq,\n"
           "                  prefill-batch, prefill-gqa, head-dims, hybrid, kv-quant (decode over\n"
           "                  FP16/int8/FP8 caches and fai_kv_append), chunked (one 16384-token\n"
           "                  prompt, 32/8 heads, d 128, causal: whole-prompt fai_prefill from packed\n"
           "                  K/V against 4 chunks of fai_kv_append + fai_prefill over a paged cache,\n"
           "                  and the prompt as one chunk through the paged cache; see below); or\n"
           "                  decode (the three decode suites), prefill (the four prefill suites),\n"
           "                  all (every suite) (default, with no --suite or --shape: decode-seq)\n"
           "  --shape SPEC    one shape, b=..,sq=..,sk=..,hq=..,hk=..,d=..,causal=0|1 (defaults\n"
           "                  1,1,128,32,32,128,0), and kv=int8|fp8_e4m3|fp8_e5m2|int8_bf16x2 for a decode row\n"
           "                  over a quantized cache (timed as the kv-quant rows are, beside FP16,\n"
           "                  after the other rows); may be repeated. sq=1: a decode row (fai_decode);\n"
           "                  sq>1: a prefill row (fai_prefill on b packed sequences of sq x sk);\n"
           "                  prefill_frac=F: a hybrid row (round(b*F) sequences sq x sk, the rest\n"
           "                  1 x sk, always causal)\n");
    printf("  --list          print the rows as CSV (suite,b,sq,sk,hq,hk,d,causal,prefill_frac), exit\n"
           "                  (needs no GPU; the chunked suite's rows included, kv-quant's not)\n"
           "  --dtype T       fp16 (default) or bf16: Q, K, V, O (and the KV cache) of every decode,\n"
           "                  prefill, hybrid and chunked row in that type; the CSV's dtype column\n"
           "                  says which. A build whose fai_decode refuses BF16 prints 'skipped: BF16\n"
           "                  decode not available' for decode rows (and n/a for hybrid rows'\n"
           "                  fai-separate); one whose fai_kv_append refuses BF16 rows gives n/a for\n"
           "                  the chunked rows that need it. kv-quant rows stay FP16\n"
           "  --window L      sliding window (fai_attention.window): a query sees the L keys left of\n"
           "                  its diagonal and the diagonal (window_left L; window_right 0 on causal\n"
           "                  and decode rows, -1 = unbounded on non-causal rows); -1: off (default)\n"
           "  --softcap C     logit soft-cap C * tanh(s / C) (fai_attention.softcap); 0: off (default)\n"
           "  --sinks         attention sinks (fai_attention.sinks): one logit per query head, random\n"
           "                  N(0,1), the same for head h in every row\n"
           "                  (--window, --softcap and --sinks apply to decode, prefill, hybrid and\n"
           "                  chunked rows, not kv-quant; the CSV's note lists them, e.g. 'window\n"
           "                  4096/0 softcap 30 sinks', and --check gives them to the reference. With\n"
           "                  a window, TFLOP/s and decode GB/s count only the keys inside it)\n"
           "  --alibi         add the ALiBi bias (standard slopes)\n"
           "  --layout L      decode and kv-quant KV cache layout: hnd [batch, heads, seq, dim]\n"
           "                  (default, as the peers; pages [heads, page, dim]) or nhd [batch, seq,\n"
           "                  heads, dim] (pages [page, heads, dim])\n"
           "  --page-size P   decode and kv-quant rows over a paged cache: pages of P tokens (a\n"
           "                  power of two, 1-256) in a scrambled page table (default: contiguous);\n"
           "                  also the chunked suite's page size (default 16)\n"
           "  --page-order O  scrambled (default) or sequential: each sequence's pages in order\n"
           "  --pause MS      kv-quant rows: MS ms of idle before each pass (each dtype, FP16 before\n"
           "                  and after; default 500, 0: none), so that each starts from an idle\n"
           "                  GPU (the int8 kernels' times stepped up after a second of the suite's\n"
           "                  heavy passes without it)\n"
           "  --reps N        timed runs per row, median reported (default 50; prefill rows run\n"
           "                  fewer, at least 10, where N would take over 3 s); also the runs of\n"
           "                  each ceiling\n"
           "  --warmup N      untimed runs first, each after a flush, and at least 20 ms of them\n"
           "                  (default 5; 0: none)\n"
           "  --csv FILE      also write the rows as CSV: the columns of shared/tools/sdpa_peers.py\n"
           "                  (device,suite,backend,dtype,b,sq,sk,hq,hk,d,causal,prefill_frac,ms,\n"
           "                  tflops,gbps,note), then check (pass/FAIL/n/a with --check, else\n"
           "                  empty) and commit; the ceilings are rows of suite 'ceiling' (backends\n"
           "                  copy, read: gbps; cublas: ms, tflops, and gbps of A, B, C once); every\n"
           "                  measured row's note ends in 'flush F; reps N' (--flush, its timed runs)\n"
           "  --json FILE     also write the same rows as JSON, under a header object (device,\n"
           "                  SMs, compute capability, driver and runtime versions, git commit,\n"
           "                  UTC date, the command line, the ceilings); \"complete\": false if the\n"
           "                  run stopped early\n");
    printf("  --check         after timing each row, fill its output with NaN, run it once more\n"
           "                  and compare with the double-precision CPU reference (src/reference)\n"
           "                  on up to %d query rows spread over the batch (first and last\n"
           "                  included) and as many KV heads as ~%.0f million multiply-adds allow\n"
           "                  per row (at least one; they rotate between sequences); pass = rel L2\n"
           "                  <= 2e-3 (BF16: 1.6e-2), max error <= 2x a plain FP32 reference's\n"
           "                  with its output rounded to the element type (+1e-5), no NaN or Inf\n"
           "                  anywhere in the output. The reference gets the same window,\n"
           "                  soft-cap and sinks. Every timed variant is checked (hybrid: all\n"
           "                  three; --tune: every plan). kv-quant decode rows (and kv= shapes):\n"
           "                  sequences 0, b/2 and b-1, KV heads 0 and hk-1, against the reference\n"
           "                  on the cache's codes decoded on the host; rel L2 <= 2e-3, no NaN\n"
           "                  (paged caches: n/a). Exit status 3 if any fails\n",
           CHECK_ROWS, CHECK_MACS / 1e6);
    printf("  --splits N      decode: force N split-KV parts (default: fai's plan)\n"
           "  --warps N       decode: force N warps per block (default: fai's plan)\n"
           "  --kernel K      decode: force the kernel, simt (CUDA cores) or mma (tensor cores)\n"
           "  --tune          decode: also time a grid of other plans per row (marked 'tune'), each\n"
           "                  as the row's own plan is (its --reps, after the same warm-up)\n"
           "  --help, -h      this text\n");
    printf("Ceilings, measured first: device-to-device copy of 1 GiB (read + write bytes),\n"
           "streaming read of 4 GiB, and an FP16 %d^3 matrix product with FP32 accumulation through\n"
           "cuBLAS (cublasGemmEx: the tensor-core rate a vendor kernel reaches on this card).\n",
           GEMM_N);
    printf("Timing: a 256 MB L2 flush before each run (--flush), CUDA events around the call(s), median.\n"
           "  --flush F      write (default: a memset, as triton.testing.do_bench flushes, leaving\n"
           "                 the L2 dirty: the timed call pays for writing it back), read (a\n"
           "                 streaming read: the L2 left holding clean, unrelated lines) or none\n"
           "                 (no flush: the call's own data and code stay in the L2 from its last\n"
           "                 run; a diagnostic of what cold caches cost, not a number to report)\n"
           "GB/s counts Q, K, V and O once; %%copy and %%read are fractions of the copy and\n"
           "streaming-read ceilings, %%gemm (prefill) of the cuBLAS one.\n"
           "Prefill: TFLOP/s = 4*b*sq*sk*hq*d, halved for causal with sq == sk (causal sq != sk:\n"
           "the unmasked pairs); Q/K/V packed [tokens, heads, dim], cu_seqlens on the device and\n"
           "cu_seqlens_q_host set.\n"
           "Hybrid: 'fai us' one fai_prefill call on the mixed batch (CSV backend fai), 'nohost us'\n"
           "the same without cu_seqlens_q_host (fai-nohost), 'sep us' fai_prefill on the prefill\n"
           "sequences plus fai_decode on the decode ones, one timed region (fai-separate);\n"
           "fai/sep is the time ratio; TFLOP/s and GB/s are fai's, counted as sdpa_peers.py does.\n");
    printf("Chunked (suite chunked, CSV rows of suite 'chunked', b 1, sq = sk = 16384, causal):\n"
           "  fai            the whole prompt, one fai_prefill from packed K/V (cu_seqlens_q_host set)\n"
           "  fai-chunked    4 chunks of 4096: per chunk fai_kv_append of its K/V rows into a paged\n"
           "                 cache (page size 16 or --page-size, scrambled page table), then\n"
           "                 fai_prefill of its queries with kv_cache (seq_lens = the chunk's end);\n"
           "                 all 8 calls in one timed region (one L2 flush before it)\n"
           "  fai-chunked-noappend  the 4 fai_prefill calls alone (cache already filled)\n"
           "  fai-append     the 4 fai_kv_append calls alone (GB/s: rows read + written)\n"
           "  fai-paged      the whole prompt as one chunk: one fai_prefill over the paged cache\n"
           "  fai-cache      the same over a contiguous cache (the packed K/V read as one slot)\n"
           "TFLOP/s counts the causal pairs (16384^2/2 for the whole prompt, the exact unmasked pairs\n"
           "of each chunk for the chunked rows); the note holds each row's time ratio to 'fai'\n"
           "(x whole) and fai-paged's to fai-cache (x cache). --check compares every attention row (all\n"
           "chunks' outputs) with the CPU reference of the whole prompt.\n");
    printf("Output: the table on stdout ('#' header lines: version, device, driver, runtime, git\n"
           "commit, date; the ceilings; the dtype and variants when not FP16 and plain), progress\n"
           "on stderr (row i/n, seconds since start).\n"
           "The commit is `git describe --always --dirty` when CMake configured the build.\n"
           "Exit status: 0 done, 1 no GPU or a CUDA/fai failure, 2 bad arguments, 3 a --check\n"
           "failed.\n");
}

#define MAX_ROWS 256

int main(int argc, char **argv)
{
    options o;
    memset(&o, 0, sizeof o);
    o.reps = 50;
    o.warmup = 5;
    o.kernel = FAI_DECODE_AUTO;
    o.window = -1;
    timespec_get(&g_t0, TIME_UTC);
    shape rows[MAX_ROWS];
    quant_shape quant_rows[MAX_ROWS]; /* --shape ...,kv=: decode rows over a quantized cache */
    int n = 0, nq = 0, list = 0, picked = 0; /* picked: a --suite or --shape was given */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--suite") && next) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", next);
            i++;
            picked = 1;
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                int matched = 0;
                if (!strcmp(t, "kv-quant") || !strcmp(t, "all")) {
                    o.kv_quant = 1; /* its own rows (bench_quant.c), after the others */
                    matched = 1;
                    if (!strcmp(t, "kv-quant"))
                        continue;
                }
                if (!strcmp(t, "chunked") || !strcmp(t, "all")) {
                    o.chunked = 1; /* its own rows (bench_chunked.c), after the others */
                    matched = 1;
                    if (!strcmp(t, "chunked"))
                        continue;
                }
                for (int j = 0; j < N_SUITES; j++) {
                    if (!suite_selected(t, suite_names[j]))
                        continue;
                    int count = 0;
                    const shape *r = suite_rows(suite_names[j], &count);
                    if (n + count > MAX_ROWS) {
                        fprintf(stderr, "fai-bench: more than %d rows\n", MAX_ROWS);
                        return 2;
                    }
                    for (int k = 0; k < count; k++)
                        rows[n++] = r[k];
                    matched = 1;
                }
                if (!matched) {
                    fprintf(stderr, "fai-bench: unknown suite '%s' (see --help)\n", t);
                    return 2;
                }
            }
        } else if (!strcmp(a, "--shape") && next) {
            if (n >= MAX_ROWS) {
                fprintf(stderr, "fai-bench: more than %d rows\n", MAX_ROWS);
                return 2;
            }
            int kv = 0;
            if (parse_shape(next, &rows[n], &kv))
                return 2;
            if (kv > 0) { /* a quantized cache: a kv-quant row (bench_quant.c), after the others */
                if (nq == MAX_ROWS) {
                    fprintf(stderr, "fai-bench: more than %d kv= shapes\n", MAX_ROWS);
                    return 2;
                }
                const shape *r = &rows[n];
                quant_rows[nq++] = (quant_shape){r->b, r->sk, r->hq, r->hk, r->d, 1u << kv};
            } else {
                n++;
            }
            i++;
            picked = 1;
        } else if (!strcmp(a, "--reps") && next) {
            o.reps = atoi(argv[++i]);
        } else if (!strcmp(a, "--warmup") && next) {
            o.warmup = atoi(argv[++i]);
        } else if (!strcmp(a, "--splits") && next) {
            o.splits = atoi(argv[++i]);
        } else if (!strcmp(a, "--kernel") && next) {
            o.kernel = !strcmp(next, "simt") ? FAI_DECODE_SIMT : !strcmp(next, "mma") ? FAI_DECODE_MMA : -2;
            if (o.kernel == -2) {
                fprintf(stderr, "fai-bench: --kernel takes simt or mma\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--warps") && next) {
            o.warps = atoi(argv[++i]);
        } else if (!strcmp(a, "--csv") && next) {
            o.csv = argv[++i];
        } else if (!strcmp(a, "--json") && next) {
            o.json = argv[++i];
        } else if (!strcmp(a, "--check")) {
            o.check = 1;
        } else if (!strcmp(a, "--layout") && next) {
            o.nhd = !strcmp(next, "nhd");
            if (!o.nhd && strcmp(next, "hnd")) {
                fprintf(stderr, "fai-bench: --layout takes hnd or nhd\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--page-size") && next) {
            o.page_size = atoi(argv[++i]);
            if (o.page_size < 1 || o.page_size > 256 || (o.page_size & (o.page_size - 1))) {
                fprintf(stderr, "fai-bench: --page-size takes a power of two from 1 to 256\n");
                return 2;
            }
        } else if (!strcmp(a, "--pause") && next) {
            char *end;
            const long ms = strtol(next, &end, 10);
            if (*next == '\0' || *end != '\0' || ms < 0 || ms > 60000) {
                fprintf(stderr, "fai-bench: --pause takes milliseconds from 0 to 60000\n");
                return 2;
            }
            bench_quant_set_pause((int)ms);
            i++;
        } else if (!strcmp(a, "--page-order") && next) {
            if (strcmp(next, "sequential") && strcmp(next, "scrambled")) {
                fprintf(stderr, "fai-bench: --page-order takes scrambled or sequential\n");
                return 2;
            }
            bench_set_page_order_sequential(!strcmp(next, "sequential"));
            i++;
        } else if (!strcmp(a, "--dtype") && next) {
            o.bf16 = !strcmp(next, "bf16");
            if (!o.bf16 && strcmp(next, "fp16")) {
                fprintf(stderr, "fai-bench: --dtype takes fp16 or bf16\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--window") && next) {
            char *end = NULL;
            const long w = strtol(next, &end, 10);
            if (!*next || *end || w < -1 || w > INT32_MAX) {
                fprintf(stderr, "fai-bench: --window takes a left size >= 0 (or -1: off)\n");
                return 2;
            }
            o.window = (int)w;
            i++;
        } else if (!strcmp(a, "--softcap") && next) {
            char *end = NULL;
            const double c = strtod(next, &end);
            if (!*next || *end || !(c >= 0.0 && c <= 1e30)) {
                fprintf(stderr, "fai-bench: --softcap takes a finite value >= 0 (0: off)\n");
                return 2;
            }
            o.softcap = (float)c;
            i++;
        } else if (!strcmp(a, "--flush") && next) {
            g_flush_read = !strcmp(next, "read");
            g_flush_none = !strcmp(next, "none");
            if (!g_flush_read && !g_flush_none && strcmp(next, "write")) {
                fprintf(stderr, "fai-bench: --flush takes write, read or none\n");
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--sinks")) {
            o.sinks = 1;
        } else if (!strcmp(a, "--alibi")) {
            o.alibi = 1;
        } else if (!strcmp(a, "--tune")) {
            o.tune = 1;
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else {
            fprintf(stderr, "fai-bench: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (o.reps < 1)
        o.reps = 1;
    if (o.warmup < 0)
        o.warmup = 0;
    /* The default suite only when neither --suite nor --shape said what to run (so --suite
     * kv-quant or --suite chunked runs just that). */
    if (n == 0 && !picked)
        for (size_t j = 0; j < sizeof decode_seq / sizeof *decode_seq; j++)
            rows[n++] = decode_seq[j];
    if (list) {
        printf("suite,b,sq,sk,hq,hk,d,causal,prefill_frac\n");
        for (int i = 0; i < n; i++) {
            char frac[32] = "";
            if (rows[i].kind == ROW_HYBRID)
                format_frac(frac, sizeof frac, rows[i].frac);
            printf("%s,%d,%d,%d,%d,%d,%d,%d,%s\n", rows[i].suite, rows[i].b, rows[i].sq, rows[i].sk, rows[i].hq,
                   rows[i].hk, rows[i].d, rows[i].causal, frac);
        }
        if (o.chunked)
            bench_chunked_list(&o);
        return 0;
    }

    int count = 0;
    const cudaError_t no_dev = cudaGetDeviceCount(&count);
    if (no_dev != cudaSuccess || count == 0) {
        fprintf(stderr, "fai-bench: no usable CUDA device (CUDA runtime: %s); fai-bench needs an NVIDIA GPU of "
                        "compute capability 8.0 or newer (--help and --list run without one)\n",
                no_dev != cudaSuccess ? cudaGetErrorString(no_dev) : "no device");
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major < 8) {
        fprintf(stderr, "fai-bench: %s is compute capability %d.%d; fai needs 8.0 or newer\n", prop.name, prop.major,
                prop.minor);
        return 1;
    }
    snprintf(g_device, sizeof g_device, "%s", prop.name);
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CK(cudaMalloc(&g_flush, BENCH_FLUSH_BYTES));
    CK(cudaMalloc((void **)&g_flush_sink, 1024 * sizeof(uint32_t)));
    fprintf(stderr, "fai-bench: measuring the ceilings (%.1f s)\n", bench_elapsed());
    /* Half a second of memsets first, so clocks have ramped up before anything is timed. */
    for (int i = 0; i < 2000; i++)
        CK(cudaMemsetAsync(g_flush, i & 0xff, BENCH_FLUSH_BYTES, s));
    measure_ceilings(s, o.reps);
    bench_gemm_ceiling(GEMM_N, o.warmup, o.reps, s, &g_gemm_tflops, &g_gemm_ms);
    const time_t now = time(NULL);
    char date[32], iso[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    printf("# fai-bench %d, %s (%d SMs), driver %d, runtime %d, git %s, %s\n", fai_version(), prop.name,
           prop.multiProcessorCount, driver, runtime, FAI_BENCH_GIT, date);
    printf("# ceilings: device-to-device copy %.0f GB/s (read + write), streaming read %.0f GB/s, ", g_copy_gbps,
           g_read_gbps);
    if (g_gemm_tflops > 0)
        printf("cuBLAS FP16 GEMM %d^3 %.0f TFLOP/s\n", GEMM_N, g_gemm_tflops);
    else
        printf("cuBLAS FP16 GEMM n/a\n");
    printf("# L2 flush before each timed run: %s\n",
           g_flush_none   ? "none (--flush none: warm caches, a diagnostic)"
           : g_flush_read ? "streaming read of 256 MB (--flush read)"
                          : "memset of 256 MB (as triton.testing.do_bench)");
    if (o.bf16 || o.window >= 0 || o.softcap > 0 || o.sinks) {
        printf("# every decode, prefill, hybrid and chunked row: %s", o.bf16 ? "BF16" : "FP16");
        if (o.window >= 0)
            printf(", sliding window %d left (right: 0 causal, unbounded otherwise)", o.window);
        if (o.softcap > 0)
            printf(", soft-cap %g", (double)o.softcap);
        if (o.sinks)
            printf(", attention sinks (random N(0,1) per query head)");
        printf("\n");
    }
    fflush(stdout);
    const report_info info = {prop.name, prop.multiProcessorCount, prop.major, prop.minor, driver, runtime,
                              fai_version(), FAI_BENCH_GIT, iso, g_copy_gbps, g_read_gbps, g_gemm_tflops, g_gemm_ms,
                              GEMM_N, o.check, o.reps, o.warmup, argc, argv,
                              g_flush_none ? "none" : g_flush_read ? "read" : "write"};
    if (report_open(o.csv, o.json, &info))
        return 1;
    {
        const report_row copy = {"ceiling", "copy", "", 0, 0, 0, 0, 0, 0, 0, "", -1, -1, g_copy_gbps,
                                 "device-to-device copy read+write", "", o.reps};
        const report_row read = {"ceiling", "read", "", 0, 0, 0, 0, 0, 0, 0, "", -1, -1, g_read_gbps,
                                 "streaming read 4 GiB", "", o.reps};
        report_row_write(&copy);
        report_row_write(&read);
        if (g_gemm_tflops > 0) {
            char note[96];
            snprintf(note, sizeof note, "cublasGemmEx FP16 %d^3 FP32 accumulate; gbps = A+B+C once", GEMM_N);
            const report_row gemm = {"ceiling", "cublas", "fp16", 0, 0, 0, 0, 0, 0, 0, "", g_gemm_ms, g_gemm_tflops,
                                     3.0 * 2.0 * GEMM_N * GEMM_N / (g_gemm_ms * 1e-3) / 1e9, note, "", o.reps};
            report_row_write(&gemm);
        }
    }
    const fai_device_info dev = {prop.multiProcessorCount, (int)prop.sharedMemPerMultiprocessor, prop.major,
                                 (int)prop.sharedMemPerBlockOptin};
    /* The first row timed in a process ran ~10% slow in every run (docs/perf/): run it once
     * unreported first. With no decode, prefill or hybrid rows (--suite kv-quant, or kv= shapes,
     * alone) that row is FP16 decode over the first kv-quant shape, its cache laid out as the
     * kv-quant suite's ([batch, seq, heads, dim], --page-size's pages), no variants: the
     * kv-quant rows' first timed call was otherwise the FP16 baseline of their x fp16. */
    const shape *warm = n > 0 ? &rows[0] : NULL;
    options warm_o = o;
    shape quant_warm;
    if (!warm && (nq > 0 || o.kv_quant)) {
        const quant_shape *q = nq > 0 ? &quant_rows[0] : &bench_quant_suite[0];
        quant_warm = (shape){"kv-quant", ROW_DECODE, q->b, 1, q->sk, q->hq, q->hk, q->d, 0, 0.0};
        warm = &quant_warm;
        warm_o.bf16 = warm_o.alibi = warm_o.sinks = warm_o.tune = warm_o.splits = warm_o.warps = 0;
        warm_o.window = -1;
        warm_o.softcap = 0.0f;
        warm_o.kernel = FAI_DECODE_AUTO;
        warm_o.nhd = 1;
    }
    for (int i = 0; i < n; i++)
        if (row_bytes(&rows[i]) > g_arena_size)
            g_arena_size = row_bytes(&rows[i]);
    if (warm && row_bytes(warm) > g_arena_size)
        g_arena_size = row_bytes(warm);
    CK(cudaMalloc((void **)&g_arena, g_arena_size));
    if (warm)
        bench_row(warm, &warm_o, 0, n > 0 ? n : 1, s, dev, 0);
    if (n == 0) { /* (the kv-quant rows allocate their own caches) */
        cudaFree(g_arena);
        g_arena = NULL;
        g_arena_size = 0;
    }
    for (int i = 0; i < n; i++) {
        table_header(rows[i].kind, o.check);
        bench_row(&rows[i], &o, i, n, s, dev, 1);
    }
    if (nq > 0)
        bench_quant(quant_rows, nq, 0, g_copy_gbps, o.reps, o.page_size, o.nhd, o.tune, o.check, s);
    if (o.kv_quant)
        bench_quant(NULL, 0, 1, g_copy_gbps, o.reps, o.page_size, o.nhd, o.tune, o.check, s);
    if (o.chunked)
        bench_chunked(&o, s);
    report_close();
    cudaFree(g_flush);
    cudaFree(g_flush_sink);
    cudaFree(g_arena);
    fprintf(stderr, "fai-bench: %d rows in %.1f s\n", n, bench_elapsed());
    if (o.check) {
        if (g_check_failed) {
            fprintf(stderr, "fai-bench: --check: %d of %d checked calls FAILED\n", g_check_failed,
                    g_check_failed + g_check_passed);
            return 3;
        }
        fprintf(stderr, "fai-bench: --check: all %d checked calls pass\n", g_check_passed);
    }
    return 0;
}
