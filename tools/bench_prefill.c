/* fai-bench's prefill and hybrid rows (the prefill-seq, prefill-batch, prefill-gqa, head-dims
 * and hybrid sweeps of shared/guides/benchmarks.md, rows exactly as shared/tools/sdpa_peers.py's
 * SUITES), timed like the decode rows: L2 flushed before every run, CUDA events around the
 * calls alone, warm-up first, median.
 *
 * Inputs are packed varlen tensors [tokens, heads, head_dim] (FlashAttention's layout), Q, K
 * and V random normal (FP16, or BF16 with --dtype bf16), cu_seqlens on the device and a host
 * copy of cu_seqlens_q. --window, --softcap and --sinks set those fields of fai_attention for
 * every call of a row (bench_set_variants).
 *
 * A hybrid row is a batch of b sequences of which round(b * frac) are prefill (seq_q = sq,
 * seq_k = sk, causal) and the rest decode steps (seq_q = 1, seq_k = sk), prefill sequences
 * first. Three ways of running it are timed:
 *   fai          one fai_prefill call on the mixed batch, cu_seqlens_q_host set
 *   fai-nohost   the same call with cu_seqlens_q_host = NULL (both kernels launched)
 *   fai-separate fai_prefill on the prefill sequences, then fai_decode on the decode ones
 *                (their K/V read in place as a KV cache of one slot of sk tokens per
 *                sequence), both launches inside one timed region. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "bench_prefill.h"
#include "bench_report.h"
#include "bench_util.h"
#include "reference.h"

#define PF(suite, b, s, hq, hk, d) {suite, ROW_PREFILL, b, s, s, hq, hk, d, 1, 0.0}
#define HY(f) {"hybrid", ROW_HYBRID, 100, 128, 128, 32, 32, 128, 1, f}

/* sdpa_peers.py: b = min(128, 131072 // s) for s in 128 .. 8192 */
static const shape prefill_seq[] = {
    PF("prefill-seq", 128, 128, 32, 32, 128),  PF("prefill-seq", 128, 256, 32, 32, 128),
    PF("prefill-seq", 128, 512, 32, 32, 128),  PF("prefill-seq", 128, 1024, 32, 32, 128),
    PF("prefill-seq", 64, 2048, 32, 32, 128),  PF("prefill-seq", 32, 4096, 32, 32, 128),
    PF("prefill-seq", 16, 8192, 32, 32, 128),
};
static const shape prefill_batch[] = {
    PF("prefill-batch", 1, 128, 32, 32, 128),   PF("prefill-batch", 8, 128, 32, 32, 128),
    PF("prefill-batch", 32, 128, 32, 32, 128),  PF("prefill-batch", 128, 128, 32, 32, 128),
    PF("prefill-batch", 512, 128, 32, 32, 128), PF("prefill-batch", 2048, 128, 32, 32, 128),
};
/* b = 32768 // s */
static const shape prefill_gqa[] = {
    PF("prefill-gqa", 16, 2048, 32, 8, 128),
    PF("prefill-gqa", 8, 4096, 32, 8, 128),
    PF("prefill-gqa", 4, 8192, 32, 8, 128),
    PF("prefill-gqa", 2, 16384, 32, 8, 128),
};
/* for s in (4096, 16384) for (d, h) in ((64, 32), (256, 16)) */
static const shape head_dims[] = {
    PF("head-dims", 8, 4096, 32, 32, 64),
    PF("head-dims", 8, 4096, 16, 16, 256),
    PF("head-dims", 2, 16384, 32, 32, 64),
    PF("head-dims", 2, 16384, 16, 16, 256),
};
static const shape hybrid[] = {HY(0.0), HY(0.1), HY(0.2), HY(0.4), HY(0.6), HY(0.8), HY(0.9), HY(1.0)};

const shape *prefill_suite(const char *name, int *count)
{
#define SUITE_(n, rows)                                                                       \
    if (!strcmp(name, n)) {                                                                   \
        *count = (int)(sizeof rows / sizeof *rows);                                           \
        return rows;                                                                          \
    }
    SUITE_("prefill-seq", prefill_seq)
    SUITE_("prefill-batch", prefill_batch)
    SUITE_("prefill-gqa", prefill_gqa)
    SUITE_("head-dims", head_dims)
    SUITE_("hybrid", hybrid)
#undef SUITE_
    *count = 0;
    return NULL;
}

void format_frac(char *buf, size_t size, double frac)
{
    /* Python's repr: the shortest digits that read back as the same double. */
    if (!buf || size == 0)
        return;
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, size, "%.*g", p, frac);
        if (strtod(buf, NULL) == frac)
            break;
    }
    if (!strpbrk(buf, ".eni") && strlen(buf) + 3 <= size)
        strcat(buf, ".0");
}

/* The sinks: one device array of random N(0, 1) logits (grown when a row has more heads; head
 * h gets the same value in every row) and its host copy for --check. */
static float *g_sinks_dev;
static double *g_sinks_host;
static int g_sinks_n;

static void sinks_ensure(int hq)
{
    if (hq <= g_sinks_n)
        return;
    const int n = hq > 256 ? hq : 256;
    float *f = malloc(sizeof(float) * (size_t)n);
    double *h = malloc(sizeof(double) * (size_t)n);
    if (!f || !h) {
        fprintf(stderr, "fai-bench: out of host memory\n");
        exit(1);
    }
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, 4242);
    fai_ref_fill_normal(&rng, f, n, 1.0);
    for (int i = 0; i < n; i++)
        h[i] = f[i];
    cudaFree(g_sinks_dev);
    free(g_sinks_host);
    CK(cudaMalloc((void **)&g_sinks_dev, sizeof(float) * (size_t)n));
    CK(cudaMemcpy(g_sinks_dev, f, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
    free(f);
    g_sinks_host = h;
    g_sinks_n = n;
}

void bench_set_variants(fai_attention *a, const options *o, int causal)
{
    if (o->window >= 0) {
        a->window = 1;
        a->window_left = o->window;
        a->window_right = causal ? 0 : -1;
    }
    a->softcap = o->softcap;
    if (o->sinks) {
        sinks_ensure(a->num_q_heads);
        a->sinks = g_sinks_dev;
    }
}

const double *bench_sinks_host(void)
{
    return g_sinks_host;
}

const char *bench_dtype_name(const options *o)
{
    return o->bf16 ? "bf16" : "fp16";
}

void bench_note_add(char *buf, size_t size, const char *word)
{
    size_t len = strlen(buf);
    if (!*word || len + 1 >= size)
        return;
    if (len)
        buf[len++] = ' ';
    const size_t room = size - 1 - len, w = strlen(word), m = w < room ? w : room;
    memcpy(buf + len, word, m);
    buf[len + m] = '\0';
}

void bench_variant_note(char *buf, size_t size, const options *o, const fai_attention *a)
{
    char w[64];
    if (a->window) {
        snprintf(w, sizeof w, "window %d/%d", (int)a->window_left, (int)a->window_right);
        bench_note_add(buf, size, w);
    }
    if (a->softcap > 0) {
        snprintf(w, sizeof w, "softcap %g", (double)a->softcap);
        bench_note_add(buf, size, w);
    }
    if (a->sinks)
        bench_note_add(buf, size, "sinks");
    (void)o;
}

/* Sequences and rows of a prefill or hybrid row. */
typedef struct row_sizes {
    int npre, ndec;          /* prefill (sq x sk) and decode (1 x sk) sequences */
    int64_t total_q, total_k; /* packed rows of Q/O and of K/V */
} row_sizes;

static row_sizes sizes_of(const shape *sh)
{
    row_sizes r;
    /* rint: half to even, as Python's round() in sdpa_peers.py */
    r.npre = sh->kind == ROW_HYBRID ? (int)rint(sh->b * sh->frac) : sh->b;
    if (r.npre < 0)
        r.npre = 0;
    if (r.npre > sh->b)
        r.npre = sh->b;
    r.ndec = sh->b - r.npre;
    r.total_q = (int64_t)r.npre * sh->sq + r.ndec;
    r.total_k = (int64_t)sh->b * sh->sk;
    return r;
}

size_t prefill_row_bytes(const shape *sh)
{
    const row_sizes r = sizes_of(sh);
    const size_t q = (size_t)r.total_q * sh->hq * sh->d * 2, kv = (size_t)r.total_k * sh->hk * sh->d * 2;
    return 2 * q + 2 * kv + sizeof(int32_t) * (3 * (size_t)sh->b + 3) + 8 * 256;
}

/* Query-key pairs of one sequence as guides/benchmarks.md counts them: sq * sk, halved when
 * causal with sq == sk (as sdpa_peers.py does), and for causal with sq != sk the unmasked
 * pairs exactly (bottom-right aligned: query row i sees keys j <= i + sk - sq). */
static double pairs(int sq, int sk, int causal)
{
    if (!causal)
        return (double)sq * sk;
    if (sq == sk)
        return (double)sq * sk / 2;
    double n = 0;
    for (int i = 0; i < sq; i++) {
        const int64_t seen = (int64_t)i + sk - sq + 1;
        n += seen < 0 ? 0.0 : seen > sk ? (double)sk : (double)seen;
    }
    return n;
}

/* With a window, the pairs inside it, counted exactly, except for causal rows with sq == sk:
 * there the plain count's convention (n^2 / 2, not the n (n + 1) / 2 pairs on and below the
 * diagonal) is kept by taking half the diagonal off (n / 2), so a window that covers every key
 * gives the plain row's count and windowed TFLOP/s compare with plain ones. */
double bench_pairs(int sq, int sk, int causal, const fai_attention *a)
{
    if (!a || !a->window)
        return pairs(sq, sk, causal);
    double n = causal && sq == sk ? -0.5 * sq : 0.0;
    for (int i = 0; i < sq; i++) {
        const int64_t diag = (int64_t)i + sk - sq;
        int64_t lo = 0, hi = (int64_t)sk - 1;
        if (causal && diag < hi)
            hi = diag;
        if (a->window_left >= 0 && diag - a->window_left > lo)
            lo = diag - a->window_left;
        if (a->window_right >= 0 && diag + a->window_right < hi)
            hi = diag + a->window_right;
        if (hi >= lo)
            n += (double)(hi - lo + 1);
    }
    return n;
}

/* FLOPs and bytes of a row. For hybrid rows this is sdpa_peers.py's sum of its two calls:
 *   flops = 4 * hq * d * (npre * sq * sk / 2 + ndec * 1 * sk)     (prefill part causal)
 *   bytes = 2 * (2 * (npre * sq + ndec) * hq * d + 2 * b * sk * hk * d)   (Q, O, K, V once)
 * so fai's rows and the peers' have the same TFLOP/s and GB/s for the same time. With a
 * sliding window the FLOPs count only the pairs inside it (bench_pairs); the prefill
 * sequences' K/V bytes are unchanged (every key is inside some query's window), and a decode
 * sequence's count only the keys its one query sees (window_left + 1), as plain decode rows do. */
static void work_of(const shape *sh, const row_sizes *r, const fai_attention *a, double *flops, double *bytes)
{
    *flops = 4.0 * sh->hq * sh->d *
             (r->npre * bench_pairs(sh->sq, sh->sk, sh->causal, a) + r->ndec * bench_pairs(1, sh->sk, 0, a));
    const int dec_keys = a && a->window && a->window_left >= 0 && a->window_left < sh->sk ? a->window_left + 1 : sh->sk;
    const double kv_rows = (double)r->npre * sh->sk + (double)r->ndec * dec_keys;
    *bytes = 2.0 * (2.0 * (double)r->total_q * sh->hq * sh->d + 2.0 * kv_rows * sh->hk * sh->d);
}

enum { VAR_HOST = 0, VAR_NOHOST = 1, VAR_SEPARATE = 2, VARS = 3 };
static const char *const var_backend[VARS] = {"fai", "fai-nohost", "fai-separate"};

typedef struct prefill_ctx {
    fai_prefill_params p[2]; /* VAR_HOST, VAR_NOHOST: the whole batch */
    fai_prefill_params pre;  /* VAR_SEPARATE: the prefill sequences only */
    fai_decode_params dec;   /* VAR_SEPARATE: the decode sequences only */
    int var;
    void *ws;
    size_t ws_bytes;
} prefill_ctx;

/* One run of the variant c->var. */
static fai_status call_variant(const prefill_ctx *c, cudaStream_t s)
{
    if (c->var != VAR_SEPARATE)
        return fai_prefill(&c->p[c->var], c->ws, c->ws_bytes, s);
    fai_status st = FAI_SUCCESS;
    if (c->pre.batch > 0)
        st = fai_prefill(&c->pre, c->ws, c->ws_bytes, s);
    if (st == FAI_SUCCESS && c->dec.batch > 0)
        st = fai_decode(&c->dec, c->ws, c->ws_bytes, s);
    return st;
}

static int run_prefill(void *ctx, cudaStream_t s)
{
    const fai_status st = call_variant(ctx, s);
    if (st == FAI_SUCCESS)
        return 0;
    fprintf(stderr, "fai-bench: %s: %s\n", fai_status_string(st), fai_last_error());
    return 1;
}

/* The CSV's last column takes messages: no commas or line breaks. */
static void csv_safe(char *t)
{
    for (; *t; t++)
        if (*t == ',' || *t == '\n' || *t == '\r')
            *t = ';';
}

/* Workspace bytes of one variant; a status other than success leaves its message in `why`
 * (a BF16 fai_decode this build refuses: "skipped: BF16 decode not available" first). */
static fai_status validate(const prefill_ctx *c, int var, size_t *bytes, char *why, size_t why_size)
{
    int decode_refused = 0;
    fai_status st = FAI_SUCCESS;
    size_t b1 = 0, b2 = 0;
    if (var != VAR_SEPARATE) {
        st = fai_prefill_workspace_size(&c->p[var], &b1);
    } else {
        if (c->pre.batch > 0)
            st = fai_prefill_workspace_size(&c->pre, &b1);
        if (st == FAI_SUCCESS && c->dec.batch > 0) {
            st = fai_decode_workspace_size(&c->dec, &b2);
            decode_refused = c->dec.q.dtype == FAI_DTYPE_BF16 && FAI_STATUS_CATEGORY(st) == FAI_ERROR_NOT_SUPPORTED;
        }
    }
    *bytes = b1 > b2 ? b1 : b2;
    if (st != FAI_SUCCESS) {
        /* The message goes into the CSV's last column: no commas or line breaks. */
        snprintf(why, why_size, "%s%s: %s", decode_refused ? "skipped: BF16 decode not available: " : "",
                 fai_status_string(st), fai_last_error());
        csv_safe(why);
    }
    return st;
}

/* Timed runs of one variant of one row: the warm-up and 3 probe runs first; when the probe
 * says `reps` runs would take over ROW_BUDGET_MS, fewer (at least MIN_REPS), so a slow
 * build cannot run away with the device time (at H100 speeds no standard row is cut). */
#define ROW_BUDGET_MS 3000.0f
#define MIN_REPS 10
static float time_row(prefill_ctx *c, int var, const options *o, int report, int *reps_used, cudaStream_t s)
{
    c->var = var;
    const float probe = time_median(run_prefill, c, o->warmup, 3, s);
    if (probe < 0)
        return -1.0f;
    /* The unreported first pass (see main) needs no more than MIN_REPS. */
    int reps = report || o->reps < MIN_REPS ? o->reps : MIN_REPS;
    if (probe * (float)reps > ROW_BUDGET_MS) {
        int fit = (int)(ROW_BUDGET_MS / probe);
        if (fit < MIN_REPS)
            fit = MIN_REPS;
        if (fit < reps)
            reps = fit;
    }
    *reps_used = reps;
    return time_median(run_prefill, c, 0, reps, s);
}

static void csv_row(const shape *sh, const char *backend, const char *dtype, const char *frac, float ms, double flops,
                    double bytes, const char *note, const char *check, int reps)
{
    const int timed = ms >= 0;
    const report_row row = {sh->suite,
                            backend,
                            dtype,
                            sh->b,
                            sh->sq,
                            sh->sk,
                            sh->hq,
                            sh->hk,
                            sh->d,
                            sh->causal,
                            frac,
                            timed ? ms : -1.0,
                            timed ? flops / (ms * 1e-3) / 1e12 : -1.0,
                            timed ? bytes / (ms * 1e-3) / 1e9 : -1.0,
                            note,
                            check,
                            reps};
    report_row_write(&row);
}

void prefill_print_header(int kind, int check)
{
    if (kind == ROW_HYBRID)
        printf("%-13s %5s %6s %6s %5s %7s  %9s  %9s  %9s  %7s  %8s  %7s%s\n", "suite", "b", "sq", "sk", "frac",
               "pre/dec", "fai us", "nohost us", "sep us", "fai/sep", "TFLOP/s", "GB/s", check ? "  check" : "");
    else
        printf("%-13s %5s %6s %6s %7s %4s %2s  %9s  %8s  %7s  %6s%s\n", "suite", "b", "sq", "sk", "hq/hk", "d", "c",
               "ms", "TFLOP/s", "GB/s", "%gemm", check ? "  check" : "");
}

void bench_prefill(const shape *sh, const options *o, int index, int total, cudaStream_t s, int report)
{
    const int hyb = sh->kind == ROW_HYBRID;
    const row_sizes r = sizes_of(sh);
    if (r.total_q > INT32_MAX || r.total_k > INT32_MAX) {
        fprintf(stderr, "fai-bench: %s b=%d sq=%d sk=%d: more than 2^31 tokens\n", sh->suite, sh->b, sh->sq, sh->sk);
        exit(2);
    }
    /* cu_seqlens: prefill sequences first, then the decode ones; every seq_k is sk. */
    int32_t *cu_q = malloc(sizeof(int32_t) * ((size_t)sh->b + 1)), *cu_k = malloc(sizeof(int32_t) * ((size_t)sh->b + 1));
    if (!cu_q || !cu_k) {
        fprintf(stderr, "fai-bench: out of host memory\n");
        exit(1);
    }
    cu_q[0] = cu_k[0] = 0;
    for (int i = 0; i < sh->b; i++) {
        cu_q[i + 1] = cu_q[i] + (i < r.npre ? sh->sq : 1);
        cu_k[i + 1] = cu_k[i] + sh->sk;
    }

    const int64_t qrow = (int64_t)sh->hq * sh->d, krow = (int64_t)sh->hk * sh->d;
    const int64_t q_elems = r.total_q * qrow, kv_elems = r.total_k * krow;
    arena_reset();
    char *q = arena_take((size_t)q_elems * 2), *out = arena_take((size_t)q_elems * 2);
    char *k = arena_take((size_t)kv_elems * 2), *v = arena_take((size_t)kv_elems * 2);
    int32_t *dcu_q = arena_take(sizeof(int32_t) * ((size_t)sh->b + 1));
    int32_t *dcu_k = arena_take(sizeof(int32_t) * ((size_t)sh->b + 1));
    int32_t *lens = arena_take(sizeof(int32_t) * ((size_t)sh->b + 1));
    CK(bench_fill_16(q, q_elems, o->bf16, 1 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_16(k, kv_elems, o->bf16, 1000 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_16(v, kv_elems, o->bf16, 2000 + (uint64_t)index, 1.0f, s));
    CK(bench_fill_i32(lens, sh->b + 1, sh->sk, s));
    CK(cudaMemcpyAsync(dcu_q, cu_q, sizeof(int32_t) * ((size_t)sh->b + 1), cudaMemcpyHostToDevice, s));
    CK(cudaMemcpyAsync(dcu_k, cu_k, sizeof(int32_t) * ((size_t)sh->b + 1), cudaMemcpyHostToDevice, s));
    CK(cudaStreamSynchronize(s));

    prefill_ctx c;
    memset(&c, 0, sizeof c);
    fai_attention attn = fai_attention_default();
    attn.num_q_heads = sh->hq;
    attn.num_kv_heads = sh->hk;
    attn.head_dim = sh->d;
    attn.softmax_scale = 1.0f / sqrtf((float)sh->d);
    attn.alibi = o->alibi;
    bench_set_variants(&attn, o, sh->causal);
    const fai_dtype dt = o->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;

    fai_prefill_params *p = &c.p[VAR_HOST];
    *p = fai_prefill_params_default();
    p->attn = attn;
    p->batch = sh->b;
    p->causal = sh->causal;
    p->q = (fai_tensor){q, dt, qrow, sh->d};
    p->k = (fai_tensor){k, dt, krow, sh->d};
    p->v = (fai_tensor){v, dt, krow, sh->d};
    p->o = (fai_tensor){out, dt, qrow, sh->d};
    p->cu_seqlens_q = dcu_q;
    p->cu_seqlens_k = dcu_k;
    p->total_q = (int32_t)r.total_q;
    p->total_k = (int32_t)r.total_k;
    p->max_seq_q = r.npre > 0 ? sh->sq : 1;
    p->max_seq_k = sh->sk;
    p->cu_seqlens_q_host = cu_q;
    c.p[VAR_NOHOST] = *p;
    c.p[VAR_NOHOST].cu_seqlens_q_host = NULL;

    /* Separate: the first npre sequences through fai_prefill (prefixes of the same cu_seqlens),
     * the decode ones through fai_decode reading their K/V in place: packed K of sequences
     * that all have sk keys is a cache [b, sk, hk, d], one slot of sk tokens per sequence. */
    c.pre = *p;
    c.pre.batch = r.npre;
    c.pre.total_q = r.npre * sh->sq;
    c.pre.total_k = r.npre * sh->sk;
    c.pre.max_seq_q = sh->sq;
    fai_decode_params *dp = &c.dec;
    *dp = fai_decode_params_default();
    dp->attn = attn;
    dp->batch = r.ndec;
    const size_t q_off = (size_t)r.npre * sh->sq * (size_t)qrow * 2, kv_off = (size_t)r.npre * sh->sk * (size_t)krow * 2;
    dp->q = (fai_tensor){q + q_off, dt, qrow, sh->d};
    dp->o = (fai_tensor){out + q_off, dt, qrow, sh->d};
    dp->cache.dtype = dt;
    dp->cache.k = k + kv_off;
    dp->cache.v = v + kv_off;
    dp->cache.seq_stride = (int64_t)sh->sk * krow; /* capacity * token_stride */
    dp->cache.token_stride = krow;
    dp->cache.head_stride = sh->d;
    dp->cache.capacity = sh->sk;
    dp->cache.seq_lens = lens;
    dp->cache.max_seq_len = sh->sk;

    /* fai's own checks first. A shape this build does not support (a head dim, say) is
     * reported as n/a and the sweep goes on; any other refusal is fai-bench's bug. */
    const int nvar = hyb ? VARS : 1;
    fai_status st[VARS] = {FAI_SUCCESS, FAI_SUCCESS, FAI_SUCCESS};
    char why[VARS][256] = {"", "", ""};
    for (int i = 0; i < nvar; i++) {
        size_t bytes = 0;
        st[i] = validate(&c, i, &bytes, why[i], sizeof why[i]);
        if (st[i] != FAI_SUCCESS && FAI_STATUS_CATEGORY(st[i]) != FAI_ERROR_NOT_SUPPORTED) {
            fprintf(stderr, "fai-bench: %s b=%d sq=%d sk=%d (%s): %s\n", sh->suite, sh->b, sh->sq, sh->sk,
                    var_backend[i], why[i]);
            exit(2);
        }
        if (bytes > c.ws_bytes)
            c.ws_bytes = bytes;
    }
    if (c.ws_bytes)
        CK(cudaMalloc(&c.ws, c.ws_bytes));

    /* One untimed call of each variant: a kernel this build lacks may only say so at launch. */
    for (int i = 0; i < nvar; i++) {
        if (st[i] != FAI_SUCCESS)
            continue;
        c.var = i;
        st[i] = call_variant(&c, s);
        if (st[i] != FAI_SUCCESS) {
            snprintf(why[i], sizeof why[i], "%s: %s", fai_status_string(st[i]), fai_last_error());
            csv_safe(why[i]);
            if (FAI_STATUS_CATEGORY(st[i]) != FAI_ERROR_NOT_SUPPORTED) {
                fprintf(stderr, "fai-bench: %s b=%d sq=%d sk=%d (%s): %s\n", sh->suite, sh->b, sh->sq, sh->sk,
                        var_backend[i], why[i]);
                exit(1);
            }
        }
    }
    CK(cudaStreamSynchronize(s));

    float ms[VARS] = {-1.0f, -1.0f, -1.0f};
    int reps[VARS] = {0, 0, 0};
    for (int i = 0; i < nvar; i++)
        if (st[i] == FAI_SUCCESS && (ms[i] = time_row(&c, i, o, report, &reps[i], s)) < 0)
            exit(1);

    /* --check: every variant that ran, against one reference of the sampled rows. */
    char check[VARS][300] = {"", "", ""}, verdict[VARS][8] = {"", "", ""};
    int all_pass = 1;
    if (o->check && report) {
        int64_t *q_start = malloc(sizeof(int64_t) * (size_t)sh->b), *k_start = malloc(sizeof(int64_t) * (size_t)sh->b);
        int *seq_q = malloc(sizeof(int) * (size_t)sh->b), *seq_k = malloc(sizeof(int) * (size_t)sh->b);
        for (int b = 0; b < sh->b; b++) {
            q_start[b] = cu_q[b];
            seq_q[b] = cu_q[b + 1] - cu_q[b];
            k_start[b] = (int64_t)cu_k[b] * krow;
            seq_k[b] = cu_k[b + 1] - cu_k[b];
        }
        check_problem cp;
        memset(&cp, 0, sizeof cp);
        cp.batch = sh->b;
        cp.hq = sh->hq;
        cp.hk = sh->hk;
        cp.d = sh->d;
        cp.causal = sh->causal;
        cp.alibi = o->alibi;
        cp.scale = attn.softmax_scale;
        cp.q = q;
        cp.k = k;
        cp.v = v;
        cp.o = out;
        cp.q_token_stride = qrow;
        cp.k_token_stride = krow;
        cp.k_head_stride = sh->d;
        cp.q_start = q_start;
        cp.k_start = k_start;
        cp.seq_q = seq_q;
        cp.seq_k = seq_k;
        cp.total_q = r.total_q;
        cp.bf16 = o->bf16;
        check_set_variants(&cp, &attn, bench_sinks_host());
        fprintf(stderr, "[%d/%d] computing the reference (%.1f s)\n", index + 1, total, bench_elapsed());
        check_ref *ref = check_prepare(&cp, s);
        for (int i = 0; i < nvar; i++) {
            if (st[i] != FAI_SUCCESS) {
                snprintf(verdict[i], sizeof verdict[i], "n/a");
                continue;
            }
            c.var = i;
            all_pass &= check_call(ref, &cp, run_prefill, &c, s, check[i], sizeof check[i], verdict[i]);
            fprintf(stderr, "[%d/%d] check %s: %s\n", index + 1, total, var_backend[i], check[i]);
        }
        check_free(ref);
        free(q_start);
        free(k_start);
        free(seq_q);
        free(seq_k);
    }
    cudaFree(c.ws);
    free(cu_q);
    free(cu_k);
    if (!report)
        return;

    double flops, bytes;
    work_of(sh, &r, &attn, &flops, &bytes);
    char frac[32] = "", note[VARS][300];
    if (hyb)
        format_frac(frac, sizeof frac, sh->frac);
    for (int i = 0; i < nvar; i++) {
        const char *what = !hyb ? ""
                           : i == VAR_SEPARATE ? (r.npre && r.ndec ? "two calls" : r.npre ? "prefill call" : "decode call")
                                               : "one call";
        note[i][0] = '\0';
        if (st[i] != FAI_SUCCESS) {
            bench_note_add(note[i], sizeof note[i], why[i]);
        } else {
            bench_note_add(note[i], sizeof note[i], what);
            if (o->alibi)
                bench_note_add(note[i], sizeof note[i], "alibi");
            bench_variant_note(note[i], sizeof note[i], o, &attn);
        }
        /* (the timed runs, fewer than --reps where they would take over ROW_BUDGET_MS, end the
         * note with the flush: bench_report.c) */
        csv_row(sh, var_backend[i], bench_dtype_name(o), frac, ms[i], flops, bytes, note[i], verdict[i], reps[i]);
    }
    /* The table's check column: the one call's summary, and which variants failed if any. */
    char check_col[400] = "";
    if (o->check) {
        snprintf(check_col, sizeof check_col, "  %s", *check[0] ? check[0] : "n/a");
        if (hyb && !all_pass)
            for (int i = 1; i < nvar; i++)
                if (!strcmp(verdict[i], "FAIL"))
                    bench_note_add(check_col, sizeof check_col, i == VAR_NOHOST ? "(nohost FAIL)" : "(sep FAIL)");
    }
    if (hyb) {
        char t[VARS][16];
        for (int i = 0; i < VARS; i++) {
            if (ms[i] >= 0)
                snprintf(t[i], sizeof t[i], "%9.1f", 1000.0 * ms[i]);
            else
                snprintf(t[i], sizeof t[i], "%9s", "n/a");
        }
        printf("%-13s %5d %6d %6d %5s %3d/%-3d  %s  %s  %s  ", sh->suite, sh->b, sh->sq, sh->sk, frac, r.npre, r.ndec,
               t[0], t[1], t[2]);
        if (ms[VAR_HOST] >= 0 && ms[VAR_SEPARATE] > 0)
            printf("%7.3f", ms[VAR_HOST] / ms[VAR_SEPARATE]);
        else
            printf("%7s", "n/a");
        if (ms[VAR_HOST] >= 0)
            printf("  %8.1f  %7.0f%s\n", flops / (ms[0] * 1e-3) / 1e12, bytes / (ms[0] * 1e-3) / 1e9, check_col);
        else
            printf("  %8s  %7s  %s%s\n", "", "", why[VAR_HOST], check_col);
    } else if (ms[0] >= 0) {
        const double tflops = flops / (ms[0] * 1e-3) / 1e12;
        char gemm[16];
        if (g_gemm_tflops > 0)
            snprintf(gemm, sizeof gemm, "%5.1f%%", 100.0 * tflops / g_gemm_tflops);
        else
            snprintf(gemm, sizeof gemm, "%6s", "n/a");
        printf("%-13s %5d %6d %6d %3d/%-3d %4d %2d  %9.4f  %8.1f  %7.0f  %s", sh->suite, sh->b, sh->sq, sh->sk,
               sh->hq, sh->hk, sh->d, sh->causal, ms[0], tflops, bytes / (ms[0] * 1e-3) / 1e9, gemm);
        if (reps[0] < o->reps)
            printf("  (%d reps)", reps[0]);
        printf("%s\n", check_col);
    } else {
        printf("%-13s %5d %6d %6d %3d/%-3d %4d %2d  n/a: %s\n", sh->suite, sh->b, sh->sq, sh->sk, sh->hq, sh->hk, sh->d,
               sh->causal, why[0]);
    }
    fflush(stdout);
    fprintf(stderr, "[%d/%d] %s b=%d sq=%d sk=%d%s%s done (%.1f s)\n", index + 1, total, sh->suite, sh->b, sh->sq,
            sh->sk, hyb ? " frac=" : "", frac, bench_elapsed());
}
