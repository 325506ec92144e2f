/* fai-bench: the benchmark driver. Measures the device's ceilings first (device-to-device
 * copy, streaming read), then times fai on the standard decode, prefill and hybrid sweeps of
 * shared/guides/benchmarks.md or on given shapes, the way triton.testing.do_bench times the
 * peers: L2 flushed (a 256 MB memset) before every run, CUDA events around the call alone,
 * warm-up first, median of many runs. Prints a table (progress on stderr) and optionally a
 * CSV whose columns match shared/tools/sdpa_peers.py, so the two can be joined. The decode
 * rows live here, the prefill and hybrid rows in bench_prefill.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_prefill.h"
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

#define FLUSH_BYTES ((size_t)256 << 20)
static void *g_flush;
static double g_copy_gbps, g_read_gbps;

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median time in ms of fn(ctx) over `reps` runs, each after an L2 flush. */
float time_median(timed_fn fn, void *ctx, int warmup, int reps, cudaStream_t s)
{
    for (int i = 0; i < warmup; i++)
        if (fn(ctx, s))
            return -1.0f;
    cudaEvent_t *ev = malloc(sizeof(cudaEvent_t) * 2 * (size_t)reps);
    float *ms = malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < 2 * reps; i++)
        CK(cudaEventCreate(&ev[i]));
    for (int i = 0; i < reps; i++) {
        CK(cudaMemsetAsync(g_flush, 0, FLUSH_BYTES, s));
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
    const size_t q = (size_t)sh->b * sh->hq * sh->d * 2, kv = (size_t)sh->b * sh->sk * sh->hk * sh->d * 2;
    return 2 * q + 2 * kv + sizeof(int32_t) * (size_t)sh->b + 5 * 256;
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

FILE *g_csv;
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
    p->batch = sh->b;
    const int64_t q_elems = (int64_t)sh->b * sh->hq * sh->d;
    const int64_t kv_elems = (int64_t)sh->b * sh->sk * sh->hk * sh->d;
    void *q, *out, *k, *v;
    int32_t *lens;
    arena_reset();
    q = arena_take((size_t)q_elems * 2);
    out = arena_take((size_t)q_elems * 2);
    k = arena_take((size_t)kv_elems * 2);
    v = arena_take((size_t)kv_elems * 2);
    lens = arena_take(sizeof(int32_t) * (size_t)sh->b);
    CK(bench_fill_fp16(q, q_elems, 1 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_fp16(k, kv_elems, 1000 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_fp16(v, kv_elems, 2000 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_i32(lens, sh->b, sh->sk, s));
    p->q = (fai_tensor){q, FAI_DTYPE_FP16, (int64_t)sh->hq * sh->d, sh->d};
    p->o = (fai_tensor){out, FAI_DTYPE_FP16, (int64_t)sh->hq * sh->d, sh->d};
    p->cache.k = k;
    p->cache.v = v;
    p->cache.capacity = sh->sk;
    /* HND [batch, heads, seq, dim] by default: the layout SDPA's peers read (per-head rows
     * contiguous); --layout nhd for [batch, seq, heads, dim]. */
    p->cache.seq_stride = (int64_t)sh->sk * sh->hk * sh->d;
    p->cache.token_stride = o->nhd ? (int64_t)sh->hk * sh->d : sh->d;
    p->cache.head_stride = o->nhd ? sh->d : (int64_t)sh->sk * sh->d;
    p->cache.seq_lens = lens;

    /* fai's own checks first: forced plans below skip them. */
    size_t ws_check = 0;
    const fai_status valid = fai_decode_workspace_size(p, &ws_check);
    if (valid != FAI_SUCCESS) {
        fprintf(stderr, "fai-bench: %s: %s\n", fai_status_string(valid), fai_last_error());
        exit(2);
    }
    const double bytes = 2.0 * (2.0 * q_elems + 2.0 * kv_elems);
    /* Candidate plans: the heuristic's (or the forced one), and with --tune a grid of kernels x
     * warps (CUDA cores) or ring stages (tensor cores) x splits. */
    int cand_k[64], cand_x[64], cand_s[64], nc = 0;
    fai_decode_make_plan("fai-bench", sh->b, sh->hq, sh->hk, sh->d, sh->sk, dev, o->kernel, o->splits, o->warps, 0,
                         &c.plan);
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
                    fai_decode_make_plan("fai-bench", sh->b, sh->hq, sh->hk, sh->d, sh->sk, dev, kind, 0,
                                         kind == FAI_DECODE_MMA ? 0 : x, kind == FAI_DECODE_MMA ? x : 0, &base);
                    const int sp = ss[j] * base.num_splits;
                    if (base.kernel != kind || (kind == cand_k[0] && x == cand_x[0] && sp == cand_s[0]))
                        continue;
                    cand_k[nc] = kind;
                    cand_x[nc] = x;
                    cand_s[nc++] = sp;
                }
    }
    for (int ci = 0; ci < nc; ci++) {
        c.use_plan = o->tune || o->splits || o->warps || o->kernel != FAI_DECODE_AUTO;
        const int mma = cand_k[ci] == FAI_DECODE_MMA;
        fai_decode_make_plan("fai-bench", sh->b, sh->hq, sh->hk, sh->d, sh->sk, dev, cand_k[ci], cand_s[ci],
                             mma ? 0 : cand_x[ci], mma ? cand_x[ci] : 0, &c.plan);
        if (c.plan.workspace_bytes > c.ws_bytes) {
            cudaFree(c.ws);
            c.ws_bytes = c.plan.workspace_bytes;
            CK(cudaMalloc(&c.ws, c.ws_bytes));
        }
        const float ms = time_median(run_decode, &c, o->warmup, ci ? 10 : o->reps, s);
        if (ms < 0)
            exit(1);
        if (!report)
            break;
        const double gbps = bytes / (ms * 1e-3) / 1e9;
        const double tflops = 4.0 * sh->b * (double)sh->sk * sh->hq * sh->d / (ms * 1e-3) / 1e12;
        printf("%-13s %5d %7d %3d/%-3d %4d  %-4s %dw%s %4ds  %9.4f  %8.1f  %5.1f%%  %5.1f%%%s\n", sh->suite, sh->b,
               sh->sk, sh->hq, sh->hk, sh->d, c.plan.kernel == FAI_DECODE_MMA ? "mma" : "simt", c.plan.warps_per_block,
               c.plan.kernel == FAI_DECODE_MMA ? (c.plan.stages == 2   ? "/2st"
                                                : c.plan.stages == 3 ? "/3st"
                                                : c.plan.stages == 4 ? "/4st"
                                                                     : "/6st")
                                               : "",
               c.plan.num_splits, ms, gbps, 100.0 * gbps / g_copy_gbps, 100.0 * gbps / g_read_gbps,
               ci ? "  (tune)" : "");
        fflush(stdout);
        if (g_csv && ci == 0)
            fprintf(g_csv, "%s,%s,fai,fp16,%d,1,%d,%d,%d,%d,0,,%.5f,%.2f,%.1f,%s %dw %ds %s%s\n", g_device,
                    sh->suite, sh->b, sh->sk, sh->hq, sh->hk, sh->d, ms, tflops, gbps,
                    c.plan.kernel == FAI_DECODE_MMA ? "mma" : "simt", c.plan.warps_per_block, c.plan.num_splits,
                    o->nhd ? "nhd" : "hnd", o->alibi ? " alibi" : "");
    }
    if (report)
        fprintf(stderr, "[%d/%d] %s b=%d sk=%d done\n", index + 1, total, sh->suite, sh->b, sh->sk);
    cudaFree(c.ws);
}

static void bench_row(const shape *sh, const options *o, int index, int total, cudaStream_t s, fai_device_info dev,
                      int report)
{
    if (sh->kind == ROW_DECODE)
        bench_decode(sh, o, index, total, s, dev, report);
    else
        bench_prefill(sh, o, index, total, s, report);
}

/* A table header whenever the kind of row changes (decode, prefill, hybrid). */
static void table_header(int kind)
{
    static int last = -1;
    if (kind == last)
        return;
    if (last >= 0)
        printf("\n");
    last = kind;
    if (kind == ROW_DECODE)
        printf("%-13s %5s %7s %7s %4s  %-16s  %9s  %8s  %6s  %6s\n", "suite", "b", "sk", "hq/hk", "d", "plan", "ms",
               "GB/s", "%copy", "%read");
    else
        prefill_print_header(kind);
}

/* Whether --suite's word `t` names suite `name`: itself, its group, or all. */
static int suite_selected(const char *t, const char *name)
{
    if (!strcmp(t, name) || !strcmp(t, "all"))
        return 1;
    const int decode = !strncmp(name, "decode-", 7), hybrid = !strcmp(name, "hybrid");
    return (!strcmp(t, "decode") && decode) || (!strcmp(t, "prefill") && !decode && !hybrid);
}

/* --shape b=..,sq=..,sk=..,hq=..,hk=..,d=..,causal=..[,prefill_frac=..]; 0 on success. */
static int parse_shape(const char *spec, shape *sh)
{
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
           "                  prefill-batch, prefill-gqa, head-dims, hybrid; or decode (the three\n"
           "                  decode suites), prefill (the four prefill suites), all (every suite)\n"
           "  --shape SPEC    one shape, b=..,sq=..,sk=..,hq=..,hk=..,d=..,causal=0|1 (defaults\n"
           "                  1,1,128,32,32,128,0); may be repeated. sq=1: a decode row (fai_decode);\n"
           "                  sq>1: a prefill row (fai_prefill on b packed sequences of sq x sk);\n"
           "                  prefill_frac=F: a hybrid row (round(b*F) sequences sq x sk, the rest\n"
           "                  1 x sk, always causal)\n"
           "  --list          print the rows as CSV (suite,b,sq,sk,hq,hk,d,causal,prefill_frac), exit\n"
           "  --alibi         add the ALiBi bias (standard slopes)\n"
           "  --layout L      decode KV cache layout: hnd [batch, heads, seq, dim] (default, as the\n"
           "                  peers) or nhd [batch, seq, heads, dim]\n"
           "  --reps N        timed runs per row, median reported (default 50; prefill rows run\n"
           "                  fewer, at least 10, where N would take over 3 s)\n"
           "  --warmup N      untimed runs first (default 5)\n"
           "  --csv FILE      also write the rows as CSV (columns of shared/tools/sdpa_peers.py)\n"
           "  --splits N      decode: force N split-KV parts (default: fai's plan)\n"
           "  --warps N       decode: force N warps per block (default: fai's plan)\n"
           "  --kernel K      decode: force the kernel, simt (CUDA cores) or mma (tensor cores)\n"
           "  --tune          decode: also time a grid of other plans per row (marked 'tune')\n"
           "  --help          this text\n"
           "Timing: 256 MB L2 flush before each run, CUDA events around the call(s), median.\n"
           "GB/s counts Q, K, V and O once; %%copy and %%read are fractions of the measured\n"
           "device-to-device copy (read + write bytes) and streaming-read ceilings.\n"
           "Prefill: TFLOP/s = 4*b*sq*sk*hq*d, halved for causal with sq == sk (causal sq != sk:\n"
           "the unmasked pairs); Q/K/V packed [tokens, heads, dim], cu_seqlens on the device and\n"
           "cu_seqlens_q_host set.\n"
           "Hybrid: 'fai us' one fai_prefill call on the mixed batch (CSV backend fai), 'nohost us'\n"
           "the same without cu_seqlens_q_host (fai-nohost), 'sep us' fai_prefill on the prefill\n"
           "sequences plus fai_decode on the decode ones, one timed region (fai-separate);\n"
           "fai/sep is the time ratio; TFLOP/s and GB/s are fai's, counted as sdpa_peers.py does.\n");
}

#define MAX_ROWS 256

int main(int argc, char **argv)
{
    options o = {50, 5, 0, 0, FAI_DECODE_AUTO, 0, 0, 0, NULL};
    shape rows[MAX_ROWS];
    int n = 0, list = 0;
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
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                int matched = 0;
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
            if (parse_shape(next, &rows[n]))
                return 2;
            n++;
            i++;
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
        } else if (!strcmp(a, "--layout") && next) {
            o.nhd = !strcmp(next, "nhd");
            if (!o.nhd && strcmp(next, "hnd")) {
                fprintf(stderr, "fai-bench: --layout takes hnd or nhd\n");
                return 2;
            }
            i++;
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
    if (n == 0)
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
        return 0;
    }

    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        fprintf(stderr, "fai-bench: no CUDA device found; fai-bench needs an NVIDIA GPU\n");
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    snprintf(g_device, sizeof g_device, "%s", prop.name);
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CK(cudaMalloc(&g_flush, FLUSH_BYTES));
    /* Half a second of memsets first, so clocks have ramped up before anything is timed. */
    for (int i = 0; i < 2000; i++)
        CK(cudaMemsetAsync(g_flush, i & 0xff, FLUSH_BYTES, s));
    measure_ceilings(s, o.reps);
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("# fai-bench %d, %s (%d SMs), driver %d, runtime %d, %s\n", fai_version(), prop.name,
           prop.multiProcessorCount, driver, runtime, date);
    printf("# ceilings: device-to-device copy %.0f GB/s (read + write), streaming read %.0f GB/s\n", g_copy_gbps,
           g_read_gbps);
    if (o.csv) {
        g_csv = fopen(o.csv, "w");
        if (!g_csv) {
            fprintf(stderr, "fai-bench: cannot write %s\n", o.csv);
            return 1;
        }
        fprintf(g_csv, "device,suite,backend,dtype,b,sq,sk,hq,hk,d,causal,prefill_frac,ms,tflops,gbps,note\n");
        fprintf(g_csv, "%s,ceiling,copy,,0,0,0,0,0,0,0,,,,%.1f,device-to-device copy read+write\n", g_device,
                g_copy_gbps);
        fprintf(g_csv, "%s,ceiling,read,,0,0,0,0,0,0,0,,,,%.1f,streaming read 4 GiB\n", g_device, g_read_gbps);
    }
    const fai_device_info dev = {prop.multiProcessorCount, (int)prop.sharedMemPerMultiprocessor, prop.major,
                                 (int)prop.sharedMemPerBlockOptin};
    for (int i = 0; i < n; i++)
        if (row_bytes(&rows[i]) > g_arena_size)
            g_arena_size = row_bytes(&rows[i]);
    CK(cudaMalloc((void **)&g_arena, g_arena_size));
    /* The first row timed in a process ran ~10% slow in every run (docs/perf/): run it once
     * unreported first. */
    if (n > 0)
        bench_row(&rows[0], &o, 0, n, s, dev, 0);
    for (int i = 0; i < n; i++) {
        table_header(rows[i].kind);
        bench_row(&rows[i], &o, i, n, s, dev, 1);
    }
    if (g_csv)
        fclose(g_csv);
    cudaFree(g_flush);
    cudaFree(g_arena);
    return 0;
}
