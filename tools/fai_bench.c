/* fai-bench: the benchmark driver. Measures the device's ceilings first (device-to-device
 * copy, streaming read), then times fai on the standard decode sweeps of
 * shared/guides/benchmarks.md or on one shape, the way triton.testing.do_bench times the
 * peers: L2 flushed (a 256 MB memset) before every run, CUDA events around the call alone,
 * warm-up first, median of many runs. Prints a table (progress on stderr) and optionally a
 * CSV whose columns match shared/tools/sdpa_peers.py, so the two can be joined. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "decode_args.h"
#include "fai.h"

#define CK(call)                                                                              \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            fprintf(stderr, "fai-bench: %s: %s\n", #call, cudaGetErrorString(e_));            \
            exit(1);                                                                          \
        }                                                                                     \
    } while (0)

typedef struct shape {
    const char *suite;
    int b, sk, hq, hk, d;
} shape;

typedef struct options {
    int reps, warmup, splits, warps, kernel, alibi, tune, nhd;
    const char *csv;
} options;

static const shape decode_seq[] = {
    {"decode-seq", 128, 128, 32, 32, 128},  {"decode-seq", 128, 256, 32, 32, 128},
    {"decode-seq", 128, 512, 32, 32, 128},  {"decode-seq", 128, 1024, 32, 32, 128},
    {"decode-seq", 128, 2048, 32, 32, 128}, {"decode-seq", 128, 4096, 32, 32, 128},
    {"decode-seq", 128, 8192, 32, 32, 128},
};
static const shape decode_batch[] = {
    {"decode-batch", 1, 128, 32, 32, 128},    {"decode-batch", 8, 128, 32, 32, 128},
    {"decode-batch", 16, 128, 32, 32, 128},   {"decode-batch", 32, 128, 32, 32, 128},
    {"decode-batch", 64, 128, 32, 32, 128},   {"decode-batch", 128, 128, 32, 32, 128},
    {"decode-batch", 256, 128, 32, 32, 128},  {"decode-batch", 512, 128, 32, 32, 128},
    {"decode-batch", 1024, 128, 32, 32, 128}, {"decode-batch", 2048, 128, 32, 32, 128},
};
static const shape decode_gqa[] = {
    {"decode-gqa", 1, 32768, 32, 8, 128},
    {"decode-gqa", 1, 131072, 32, 8, 128},
    {"decode-gqa", 16, 8192, 32, 8, 128},
    {"decode-gqa", 64, 4096, 32, 8, 128},
};

#define FLUSH_BYTES ((size_t)256 << 20)
static void *g_flush;
static double g_copy_gbps, g_read_gbps;

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median time in ms of fn(ctx) over `reps` runs, each after an L2 flush. */
typedef int (*timed_fn)(void *ctx, cudaStream_t s);
static float time_median(timed_fn fn, void *ctx, int warmup, int reps, cudaStream_t s)
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
    const size_t q = (size_t)sh->b * sh->hq * sh->d * 2, kv = (size_t)sh->b * sh->sk * sh->hk * sh->d * 2;
    return 2 * q + 2 * kv + sizeof(int32_t) * (size_t)sh->b + 5 * 256;
}

static void *arena_take(size_t bytes)
{
    const size_t off = (g_arena_used + 255) & ~(size_t)255;
    if (off + bytes > g_arena_size) {
        fprintf(stderr, "fai-bench: arena of %zu bytes too small\n", g_arena_size);
        exit(1);
    }
    g_arena_used = off + bytes;
    return g_arena + off;
}

static FILE *g_csv;
static char g_device[256];

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
    g_arena_used = 0;
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

static void usage(void)
{
    printf("usage: fai-bench [options]\n"
           "  --suite LIST    comma-separated: decode-seq, decode-batch, decode-gqa, decode (all three)\n"
           "  --shape SPEC    one decode shape, b=..,sk=..,hq=..,hk=..,d=.. (defaults 1,128,32,32,128);\n"
           "                  may be repeated\n"
           "  --alibi         add the ALiBi bias (standard slopes)\n"
           "  --layout L      KV cache layout: hnd [batch, heads, seq, dim] (default, as the peers)\n"
           "                  or nhd [batch, seq, heads, dim]\n"
           "  --reps N        timed runs per row, median reported (default 50)\n"
           "  --warmup N      untimed runs first (default 5)\n"
           "  --csv FILE      also write the rows as CSV (columns of shared/tools/sdpa_peers.py)\n"
           "  --splits N      force N split-KV parts (default: fai's plan)\n"
           "  --warps N       force N warps per block (default: fai's plan)\n"
           "  --kernel K      force the decode kernel: simt (CUDA cores) or mma (tensor cores)\n"
           "  --tune          also time a grid of other plans per row (marked 'tune')\n"
           "  --help          this text\n"
           "Timing: 256 MB L2 flush before each run, CUDA events around the call, median.\n"
           "GB/s counts Q, K, V and O once; %%copy and %%read are fractions of the measured\n"
           "device-to-device copy (read + write bytes) and streaming-read ceilings.\n");
}

int main(int argc, char **argv)
{
    options o = {50, 5, 0, 0, FAI_DECODE_AUTO, 0, 0, 0, NULL};
    shape rows[256];
    int n = 0;
    static shape custom[64];
    int ncustom = 0;
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
                int all = !strcmp(t, "decode");
                if (all || !strcmp(t, "decode-seq"))
                    for (size_t j = 0; j < sizeof decode_seq / sizeof *decode_seq; j++)
                        rows[n++] = decode_seq[j];
                if (all || !strcmp(t, "decode-batch"))
                    for (size_t j = 0; j < sizeof decode_batch / sizeof *decode_batch; j++)
                        rows[n++] = decode_batch[j];
                if (all || !strcmp(t, "decode-gqa"))
                    for (size_t j = 0; j < sizeof decode_gqa / sizeof *decode_gqa; j++)
                        rows[n++] = decode_gqa[j];
                if (!all && strcmp(t, "decode-seq") && strcmp(t, "decode-batch") && strcmp(t, "decode-gqa")) {
                    fprintf(stderr, "fai-bench: unknown suite '%s' (see --help)\n", t);
                    return 2;
                }
            }
        } else if (!strcmp(a, "--shape") && next && ncustom < 64) {
            shape sh = {"shape", 1, 128, 32, 32, 128};
            char buf[256];
            snprintf(buf, sizeof buf, "%s", next);
            i++;
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                int val = 0;
                char key[16];
                if (sscanf(t, "%15[a-z]=%d", key, &val) != 2) {
                    fprintf(stderr, "fai-bench: bad --shape item '%s'\n", t);
                    return 2;
                }
                if (!strcmp(key, "b")) sh.b = val;
                else if (!strcmp(key, "sk")) sh.sk = val;
                else if (!strcmp(key, "hq")) sh.hq = val;
                else if (!strcmp(key, "hk")) sh.hk = val;
                else if (!strcmp(key, "d")) sh.d = val;
                else {
                    fprintf(stderr, "fai-bench: unknown --shape key '%s'\n", key);
                    return 2;
                }
            }
            custom[ncustom] = sh;
            rows[n++] = custom[ncustom++];
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
        } else {
            fprintf(stderr, "fai-bench: unknown or incomplete option '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (o.reps < 1)
        o.reps = 1;
    if (n == 0)
        for (size_t j = 0; j < sizeof decode_seq / sizeof *decode_seq; j++)
            rows[n++] = decode_seq[j];

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
    printf("%-13s %5s %7s %7s %4s  %-16s  %9s  %8s  %6s  %6s\n", "suite", "b", "sk", "hq/hk", "d", "plan", "ms",
           "GB/s", "%copy", "%read");
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
        bench_decode(&rows[0], &o, 0, n, s, dev, 0);
    for (int i = 0; i < n; i++)
        bench_decode(&rows[i], &o, i, n, s, dev, 1);
    if (g_csv)
        fclose(g_csv);
    cudaFree(g_flush);
    cudaFree(g_arena);
    return 0;
}
