/* GPU test of the device-side guards: values only the device sees, out of their valid range,
 * must neither make a kernel read or write out of bounds nor fail the call, and give the
 * result include/fai.h documents:
 *  - fai_decode, seq_lens out of [0, capacity] (-5, capacity + 100, INT_MAX, INT_MIN): a
 *    length is clamped into [0, capacity]; page-table entries out of [0, num_pages) (-3,
 *    num_pages, num_pages + 1000, INT_MAX, INT_MIN) inside the pages a sequence uses: clamped
 *    into the pool. Contiguous and paged caches, FP16, int8 (FP32 and BF16X2 scales), FP8
 *    E4M3 and E5M2, both decode kernels, split and not (forced plans), a planning hint below
 *    the lengths. The outputs must match the double-precision reference of the clamped
 *    problem.
 *  - fai_prefill, cu_seqlens_q / cu_seqlens_k out of [0, total] (negative, INT_MAX, INT_MIN,
 *    2^30) and decreasing: offsets are clamped into [0, total_q] / [0, total_k] and a
 *    decreasing pair is an empty sequence. A hybrid batch (prefill sequences on the
 *    tensor-core kernel, decode rows on the decode kernels, each kernel's own clamp), plain
 *    and with the variants (window + sinks: the other prefill kernel); every query row owned
 *    by one clamped sequence must match the reference of the clamped sequence (rows with no
 *    key: zeros, LSE -inf or the sink). With a host copy of cu_seqlens_q equal to the clamped
 *    offsets the result is the same; with one that disagrees with the device values rows may
 *    be left unwritten (documented) but every row written must still be right.
 *  - fai_prefill over a kv_cache (chunked prefill), seq_lens out of [0, capacity] (-5,
 *    capacity + 100, INT_MAX, INT_MIN) and page-table entries out of the pool (-3, -1,
 *    num_pages, num_pages + 1000, INT_MAX, INT_MIN) inside the pages a sequence uses: clamped
 *    as in decode. FP16 caches contiguous and paged (pages of 16 and 1), int8 (pages of 16;
 *    FP32 and BF16X2 scales) and FP8 E4M3 (pages of 32, contiguous) ones, which are staged in
 *    the workspace (the prefill rows then see at most the K keys staged: K = max_seq_len when
 *    set, else capacity; decode rows read the cache), causal and not; a hybrid batch (chunks of 3 to
 *    150 rows, rows with no key, decode rows on the decode kernels), planned for capacity and
 *    for a hint, with and without a host copy of cu_seqlens_q. Every query row must match the
 *    reference of its clamped sequence (rows with no key: zeros, LSE -inf); rows of no
 *    sequence keep their poison; the workspace sits between guard bands too.
 *  - fai_kv_append, slots out of range (-1, INT64_MIN, the first slot past the cache and
 *    beyond, INT64_MAX, 2^32 + 3 which a 32-bit truncation would turn into slot 3): skipped;
 *    the in-range rows are written (bit for bit the host codec's; int8 scales FP32 or BF16X2
 *    words), nothing else changes.
 * Every buffer a kernel reads or writes sits between guard bands of poison (NaN for inputs,
 * so a stray read shows in the outputs; compared byte for byte for outputs and caches, so a
 * stray write fails); compute-sanitizer memcheck catches stray accesses past the bands.
 * Small shapes. Exits 77 without a GPU. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode_args.h"
#include "check.h"
#include "fai.h"
#include "gpu_test_util.h"
#include "reference.h"

#define GUARD 4096 /* bytes of poison before and after each guarded buffer */

static fai_ref_rng g_rng;
static fai_device_info g_dev;

/* A device buffer between two guard bands, all of it filled with `fill`. */
typedef struct gbuf {
    uint8_t *base;
    void *p; /* base + GUARD, 16-byte aligned */
    size_t bytes;
    uint8_t fill;
} gbuf;

static gbuf galloc(size_t bytes, uint8_t fill)
{
    gbuf g;
    g.bytes = bytes;
    g.fill = fill;
    CUDA_CHECK(cudaMalloc((void **)&g.base, bytes + 2 * GUARD));
    CUDA_CHECK(cudaMemset(g.base, fill, bytes + 2 * GUARD));
    g.p = g.base + GUARD;
    return g;
}

static void gpoison(const gbuf *g) { CUDA_CHECK(cudaMemset(g->base, g->fill, g->bytes + 2 * GUARD)); }

/* Bytes of the guard bands that changed. */
static int64_t guard_damage(const gbuf *g)
{
    uint8_t *h = malloc(g->bytes + 2 * GUARD);
    CUDA_CHECK(cudaMemcpy(h, g->base, g->bytes + 2 * GUARD, cudaMemcpyDeviceToHost));
    int64_t bad = 0;
    for (size_t i = 0; i < GUARD; i++)
        bad += (h[i] != g->fill) + (h[GUARD + g->bytes + i] != g->fill);
    free(h);
    return bad;
}

static void gfree(gbuf *g) { cudaFree(g->base); }

/* A cache's K and V (bytes each) and, for int8, its n scales, uploaded between guard bands
 * (NaN scales in the bands). With pairs (FAI_SCALES_BF16X2; the scales already rounded to
 * BF16) the n words go to gks, K's BF16 in the low half and V's in the high; gvs stays empty. */
static void upload_cache(fai_dtype dt, int pairs, const uint8_t *kimg, const uint8_t *vimg, size_t bytes,
                         const float *ksc, const float *vsc, int64_t n, gbuf *gk, gbuf *gv, gbuf *gks, gbuf *gvs)
{
    *gk = galloc(bytes, 0xff);
    *gv = galloc(bytes, 0xff);
    CUDA_CHECK(cudaMemcpy(gk->p, kimg, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(gv->p, vimg, bytes, cudaMemcpyHostToDevice));
    memset(gks, 0, sizeof *gks);
    memset(gvs, 0, sizeof *gvs);
    if (dt == FAI_DTYPE_INT8 && pairs) {
        uint32_t *words = malloc(sizeof(uint32_t) * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            words[i] = fai_scale_pair_word(ksc[i], vsc[i]);
        *gks = galloc(sizeof(uint32_t) * (size_t)n, 0xff);
        CUDA_CHECK(cudaMemcpy(gks->p, words, sizeof(uint32_t) * (size_t)n, cudaMemcpyHostToDevice));
        free(words);
    } else if (dt == FAI_DTYPE_INT8) {
        *gks = galloc(sizeof(float) * (size_t)n, 0xff);
        *gvs = galloc(sizeof(float) * (size_t)n, 0xff);
        CUDA_CHECK(cudaMemcpy(gks->p, ksc, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(gvs->p, vsc, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
    }
}

/* A page table of `entries` distinct pages of a pool of num_pages, in scrambled order. */
static int32_t *scrambled_table(int num_pages, int entries)
{
    int32_t *table = malloc(sizeof(int32_t) * (size_t)entries);
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)num_pages);
    for (int i = 0; i < num_pages; i++)
        perm[i] = i;
    for (int i = num_pages - 1; i > 0; i--) {
        const int j = (int)(fai_ref_rng_uniform(&g_rng) * (i + 1)) % (i + 1);
        const int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < entries; i++)
        table[i] = perm[i];
    free(perm);
    return table;
}

/* FP16-exact normal values and their bits. */
static void rand_rows(float *x, uint16_t *bits, int64_t n)
{
    fai_ref_fill_normal(&g_rng, x, n, 1.0);
    round_to_half(x, bits, n);
}

static double g_worst_rel, g_worst_abs;

/* Compares n outputs with the reference; accumulates squared errors. */
typedef struct errs {
    double e2, r2, max_abs, max_lse;
    int64_t bad; /* values that must be exact (zeros of empty rows, -inf LSEs) and are not */
} errs;

static void add_row(errs *e, const uint16_t *got, const double *ref, int d)
{
    for (int i = 0; i < d; i++) {
        const double g = host_half_to_float(got[i]), err = fabs(g - ref[i]);
        e->e2 += err * err;
        e->r2 += ref[i] * ref[i];
        if (!(err <= e->max_abs) && !isnan(e->max_abs))
            e->max_abs = err; /* NaN sticks (a later finite error must not replace it) */
    }
}

/* An LSE against the reference: -inf (or exactly the sink's value when the row saw no key)
 * must match; otherwise within 1e-3 + 1e-4 |lse|. */
static void add_lse(errs *e, float got, double want)
{
    if (isinf(want)) {
        e->bad += !(isinf(got) && got < 0);
        return;
    }
    const double err = fabs((double)got - want);
    if (!(err <= e->max_lse) && !isnan(e->max_lse))
        e->max_lse = err;
    e->bad += !(err <= 1e-3 + 1e-4 * fabs(want));
}

/* The verdict: rel L2 <= 2e-3 and max error <= 5e-3 (outputs are averages of N(0, 1) values;
 * test_decode and test_prefill hold the tight bounds, here the point is the guard), no
 * inexact zero or LSE. */
static int errs_ok(const errs *e)
{
    const double rel = e->r2 > 0 ? sqrt(e->e2 / e->r2) : sqrt(e->e2);
    if (rel > g_worst_rel || isnan(rel))
        g_worst_rel = rel;
    if (e->max_abs > g_worst_abs || isnan(e->max_abs))
        g_worst_abs = e->max_abs;
    return rel <= 2e-3 && e->max_abs <= 5e-3 && e->bad == 0;
}

/* Folds one sequence's errors into a run's; returns whether the sequence's own rel L2 is
 * within the bound (in a batch, one sequence's error is diluted in the pooled rel L2; an RMS
 * floor of 1e-6 where its reference is ~0). */
static int fold_seq(errs *run, const errs *s, int64_t n)
{
    run->e2 += s->e2;
    run->r2 += s->r2;
    if (!(s->max_abs <= run->max_abs) && !isnan(run->max_abs))
        run->max_abs = s->max_abs;
    if (!(s->max_lse <= run->max_lse) && !isnan(run->max_lse))
        run->max_lse = s->max_lse;
    run->bad += s->bad;
    const double rel = s->r2 > 0 ? sqrt(s->e2 / s->r2) : sqrt(s->e2);
    return n == 0 || rel <= 2e-3 || sqrt(s->e2 / (double)n) <= 1e-6;
}

static void print_errs(const errs *e)
{
    const double rel = e->r2 > 0 ? sqrt(e->e2 / e->r2) : sqrt(e->e2);
    printf("rel_l2 %.2e max_err %.2e lse_err %.1e inexact %lld", rel, e->max_abs, e->max_lse, (long long)e->bad);
}

/* ===================================================================================== */
/* fai_decode: lengths and page numbers out of range. */

enum { DB = 6, DCAP = 200 };
static const int32_t g_raw_lens[DB] = {-5, DCAP + 100, INT_MAX, INT_MIN, 7, DCAP}; /* -> 0 200 200 0 7 200 */

typedef struct dg_case {
    const char *name;
    fai_dtype dt;
    int page_size, hq, hk, d, sinks;
    int pairs; /* int8: FAI_SCALES_BF16X2 */
} dg_case;

static int clampi(int64_t v, int64_t lo, int64_t hi) { return (int)(v < lo ? lo : v > hi ? hi : v); }

static int run_decode_guard(const dg_case *c)
{
    const int hq = c->hq, hk = c->hk, d = c->d, eb = c->dt == FAI_DTYPE_FP16 ? 2 : 1;
    const int ps = c->page_size;
    const int pps = ps ? (DCAP + ps - 1) / ps : 0, num_pages = ps ? DB * pps + 2 : 0;
    const int64_t rows = ps ? (int64_t)num_pages * ps : (int64_t)DB * DCAP;
    const int64_t n = rows * hk;
    printf("decode guard: %s [%s%s]\n", c->name, dtype_short(c->dt), c->pairs ? ", BF16X2 scales" : "");

    /* The cache: every row holds finite values (a clamped page or length reads real rows). */
    float *kf = malloc(sizeof(float) * (size_t)(n * d)), *vf = malloc(sizeof(float) * (size_t)(n * d));
    uint8_t *kimg = malloc((size_t)(n * d * eb)), *vimg = malloc((size_t)(n * d * eb));
    float *ksc = malloc(sizeof(float) * (size_t)n), *vsc = malloc(sizeof(float) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)d);
    for (int w = 0; w < 2; w++)
        for (int64_t r = 0; r < n; r++) {
            rand_rows(x, NULL, d);
            host_encode_row(c->dt, c->pairs, x, d, (w ? vimg : kimg) + r * d * eb, (w ? vsc : ksc) + r,
                            (w ? vf : kf) + r * d);
        }
    gbuf gk, gv, gks, gvs;
    upload_cache(c->dt, c->pairs, kimg, vimg, (size_t)(n * d * eb), ksc, vsc, n, &gk, &gv, &gks, &gvs);

    /* The page table: a scrambled pool, then entries out of range inside the used pages. */
    int32_t *table = NULL;
    gbuf gt = {0};
    if (ps) {
        table = scrambled_table(num_pages, DB * pps);
        table[1 * pps + (pps > 3 ? 3 : pps - 1)] = -3;
        table[2 * pps + 0] = num_pages;
        table[2 * pps + pps - 1] = INT_MAX;
        table[4 * pps + 0] = num_pages + 1000;
        table[5 * pps + pps / 2] = INT_MIN;
        for (int i = 0; i < pps; i++) /* empty sequences: rows never read */
            table[0 * pps + i] = table[3 * pps + i] = 123456789;
        gt = galloc(sizeof(int32_t) * (size_t)(DB * pps), 0xff);
        CUDA_CHECK(cudaMemcpy(gt.p, table, sizeof(int32_t) * (size_t)(DB * pps), cudaMemcpyHostToDevice));
    }

    /* Q, O, LSE, lengths, sinks. */
    const int64_t qn = (int64_t)DB * hq * d;
    float *qf = malloc(sizeof(float) * (size_t)qn);
    uint16_t *qb = malloc(sizeof(uint16_t) * (size_t)qn);
    rand_rows(qf, qb, qn);
    gbuf gq = galloc((size_t)qn * 2, 0xff), go = galloc((size_t)qn * 2, 0xff);
    gbuf gl = galloc(sizeof(float) * (size_t)DB * hq, 0xff);
    CUDA_CHECK(cudaMemcpy(gq.p, qb, (size_t)qn * 2, cudaMemcpyHostToDevice));
    gbuf glen = galloc(sizeof(g_raw_lens), 0xff);
    CUDA_CHECK(cudaMemcpy(glen.p, g_raw_lens, sizeof(g_raw_lens), cudaMemcpyHostToDevice));
    double *sinks = NULL;
    gbuf gs = {0};
    if (c->sinks) {
        sinks = malloc(sizeof(double) * (size_t)hq);
        float *fs = malloc(sizeof(float) * (size_t)hq);
        for (int h = 0; h < hq; h++)
            sinks[h] = fs[h] = (float)(4.0 * fai_ref_rng_uniform(&g_rng) - 2.0);
        gs = galloc(sizeof(float) * (size_t)hq, 0xff);
        CUDA_CHECK(cudaMemcpy(gs.p, fs, sizeof(float) * (size_t)hq, cudaMemcpyHostToDevice));
        free(fs);
    }

    fai_decode_params p = fai_decode_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)d);
    p.attn.sinks = c->sinks ? gs.p : NULL;
    p.batch = DB;
    p.q = (fai_tensor){gq.p, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.o = (fai_tensor){go.p, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.lse = gl.p;
    fai_kv_cache *kc = &p.cache;
    kc->dtype = c->dt;
    kc->k = gk.p;
    kc->v = gv.p;
    const int rps = ps ? ps : DCAP; /* rows per slot or page */
    kc->seq_stride = (int64_t)rps * hk * d;
    kc->token_stride = (int64_t)hk * d;
    kc->head_stride = d;
    kc->capacity = DCAP;
    kc->seq_lens = glen.p;
    if (c->dt == FAI_DTYPE_INT8) {
        kc->scale_format = c->pairs ? FAI_SCALES_BF16X2 : FAI_SCALES_FP32;
        kc->k_scale = gks.p;
        kc->v_scale = c->pairs ? NULL : gvs.p;
        kc->scale_seq_stride = (int64_t)rps * hk;
        kc->scale_token_stride = hk;
        kc->scale_head_stride = 1;
    }
    if (ps) {
        kc->page_table = gt.p;
        kc->page_table_stride = pps;
        kc->page_size = ps;
        kc->num_pages = num_pages;
    }

    /* The reference of the clamped problem. */
    double *ref = calloc((size_t)qn, sizeof(double)), *ref_lse = calloc((size_t)DB * hq, sizeof(double));
    float *ks = malloc(sizeof(float) * (size_t)DCAP * hk * d), *vs = malloc(sizeof(float) * (size_t)DCAP * hk * d);
    int lens[DB];
    for (int b = 0; b < DB; b++) {
        const int len = clampi(g_raw_lens[b], 0, DCAP);
        lens[b] = len;
        for (int j = 0; j < len; j++) {
            const int64_t row = ps ? (int64_t)clampi(table[b * pps + j / ps], 0, num_pages - 1) * ps + j % ps
                                   : (int64_t)b * DCAP + j;
            memcpy(ks + (int64_t)j * hk * d, kf + row * hk * d, sizeof(float) * (size_t)hk * d);
            memcpy(vs + (int64_t)j * hk * d, vf + row * hk * d, sizeof(float) * (size_t)hk * d);
        }
        fai_ref_problem rp = {0};
        rp.num_q_heads = hq;
        rp.num_kv_heads = hk;
        rp.head_dim = d;
        rp.seq_q = 1;
        rp.seq_k = len;
        rp.softmax_scale = p.attn.softmax_scale;
        rp.sinks = sinks;
        if (fai_ref_attention(&rp, qf + (int64_t)b * hq * d, ks, vs, ref + (int64_t)b * hq * d, ref_lse + b * hq)) {
            printf("  reference failed\n");
            exit(2);
        }
    }

    /* The runs: the public call (planned for capacity, then for a hint far below the
     * lengths), then forced plans of each kernel, split and not. */
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const int forced[][3] = {{FAI_DECODE_SIMT, 1, 1}, {FAI_DECODE_SIMT, 4, 3}, {FAI_DECODE_MMA, 0, 1},
                             {FAI_DECODE_MMA, 0, 4}}; /* kernel, warps, splits */
    int fails = 0;
    uint16_t *ob = malloc(sizeof(uint16_t) * (size_t)qn);
    float *lb = malloc(sizeof(float) * (size_t)DB * hq);
    for (int run = 0; run < 6; run++) {
        char label[32];
        fai_decode_plan plan;
        void *ws = NULL;
        size_t ws_bytes = 0;
        fai_status st;
        gpoison(&go);
        gpoison(&gl);
        if (run < 2) {
            kc->max_seq_len = run == 0 ? 0 : 16;
            snprintf(label, sizeof label, "fai_decode, hint %d", run == 0 ? DCAP : 16);
            if (fai_decode_workspace_size(&p, &ws_bytes) != FAI_SUCCESS) {
                printf("  %s: %s  FAIL\n", label, fai_last_error());
                fails++;
                continue;
            }
            if (ws_bytes) {
                CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
                CUDA_CHECK(cudaMemset(ws, 0xff, ws_bytes));
            }
            /* the legacy-stream memsets and uploads must land before work on the non-blocking stream */
            CUDA_CHECK(cudaDeviceSynchronize());
            st = fai_decode(&p, ws, ws_bytes, stream);
        } else {
            kc->max_seq_len = 0;
            const int *f = forced[run - 2];
            memset(&plan, 0, sizeof plan);
            if (fai_decode_make_plan_kv("test_guards", c->dt, 0, DB, hq, hk, d, DCAP, g_dev, f[0], f[2], f[1], 0,
                                        &plan) != FAI_SUCCESS || plan.kernel != f[0])
                continue; /* no such kernel for this shape */
            snprintf(label, sizeof label, "%s %d splits", plan.kernel == FAI_DECODE_MMA ? "mma" : "simt",
                     plan.num_splits);
            ws_bytes = plan.workspace_bytes;
            if (ws_bytes) {
                CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
                CUDA_CHECK(cudaMemset(ws, 0xff, ws_bytes));
            }
            CUDA_CHECK(cudaDeviceSynchronize());
            st = fai_decode_run_plan("test_guards", &p, &plan, ws, ws_bytes, stream);
        }
        const cudaError_t e = cudaStreamSynchronize(stream);
        cudaFree(ws);
        if (st != FAI_SUCCESS || e != cudaSuccess) {
            printf("  %-20s status %s (%s), sync %s  FAIL\n", label, fai_status_string(st), fai_last_error(),
                   cudaGetErrorString(e));
            if (e != cudaSuccess)
                exit(1); /* the context is gone */
            fails++;
            continue;
        }
        CUDA_CHECK(cudaMemcpy(ob, go.p, (size_t)qn * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lb, gl.p, sizeof(float) * (size_t)DB * hq, cudaMemcpyDeviceToHost));
        errs er = {0};
        for (int b = 0; b < DB; b++)
            for (int h = 0; h < hq; h++) {
                const int64_t r = (int64_t)b * hq + h;
                add_row(&er, ob + r * d, ref + r * d, d);
                if (lens[b] == 0) /* an empty sequence: exact zeros */
                    for (int i = 0; i < d; i++)
                        er.bad += ob[r * d + i] != 0 && ob[r * d + i] != 0x8000;
                add_lse(&er, lb[r], ref_lse[r]);
            }
        const int64_t dmg = guard_damage(&go) + guard_damage(&gl);
        const int ok = errs_ok(&er) && dmg == 0;
        printf("  %-20s ", label);
        print_errs(&er);
        printf(" guard bytes changed %lld  %s\n", (long long)dmg, ok ? "ok" : "FAIL");
        fails += !ok;
    }
    CUDA_CHECK(cudaStreamDestroy(stream));
    free(kf); free(vf); free(kimg); free(vimg); free(ksc); free(vsc); free(x); free(table); free(qf); free(qb);
    free(sinks); free(ref); free(ref_lse); free(ks); free(vs); free(ob); free(lb);
    gfree(&gk); gfree(&gv); gfree(&gq); gfree(&go); gfree(&gl); gfree(&glen);
    if (gks.base) gfree(&gks);
    if (gvs.base) gfree(&gvs);
    if (gt.base) gfree(&gt);
    if (gs.base) gfree(&gs);
    return fails;
}

/* ===================================================================================== */
/* fai_prefill: cu_seqlens out of range and decreasing. */

enum { PB = 7, TQ = 64, TK = 160 };
/* Clamped (the documented rule): q [0,20) [20,21) [21,22) [22,40) [40,64) empty empty;
 * k [0,50) empty [30,160) empty [10,90) empty [5,160). So: a prefill sequence, a decode
 * row with no key, a decode row of 130 keys, 18 rows with no key, 24 rows of 80 keys, and
 * two empty sequences; every query row owned once. */
static const int32_t g_cu_q[PB + 1] = {-30, 20, 21, 22, 40, INT_MAX, -5, INT_MIN};
static const int32_t g_cu_k[PB + 1] = {-1000, 50, 30, 1 << 30, 10, 90, 5, 170};

typedef struct range {
    int lo, hi;
} range;

static range clamp_range(const int32_t *cu, int b, int total)
{
    range r;
    r.lo = clampi(cu[b], 0, total);
    r.hi = clampi(cu[b + 1], 0, total);
    if (r.hi < r.lo)
        r.hi = r.lo;
    return r;
}

typedef struct pg_case {
    const char *name;
    int variants; /* window_left 30 + sinks: the variant kernels */
    int host;     /* 0: no host copy; 1: the clamped offsets; 2: a copy that disagrees */
} pg_case;

static int run_prefill_guard(const pg_case *c)
{
    const int hq = 4, hk = 2, d = 64;
    printf("prefill guard: %s\n", c->name);
    float *qf = malloc(sizeof(float) * TQ * hq * d), *kf = malloc(sizeof(float) * TK * hk * d);
    float *vf = malloc(sizeof(float) * TK * hk * d);
    uint16_t *bits = malloc(sizeof(uint16_t) * TK * hk * d * 2);
    gbuf gq = galloc(sizeof(uint16_t) * TQ * hq * d, 0xff), gk = galloc(sizeof(uint16_t) * TK * hk * d, 0xff);
    gbuf gv = galloc(sizeof(uint16_t) * TK * hk * d, 0xff), go = galloc(sizeof(uint16_t) * TQ * hq * d, 0xff);
    gbuf gl = galloc(sizeof(float) * TQ * hq, 0xff);
    rand_rows(qf, bits, TQ * hq * d);
    CUDA_CHECK(cudaMemcpy(gq.p, bits, sizeof(uint16_t) * TQ * hq * d, cudaMemcpyHostToDevice));
    rand_rows(kf, bits, TK * hk * d);
    CUDA_CHECK(cudaMemcpy(gk.p, bits, sizeof(uint16_t) * TK * hk * d, cudaMemcpyHostToDevice));
    rand_rows(vf, bits, TK * hk * d);
    CUDA_CHECK(cudaMemcpy(gv.p, bits, sizeof(uint16_t) * TK * hk * d, cudaMemcpyHostToDevice));
    gbuf gcq = galloc(sizeof g_cu_q, 0xff), gck = galloc(sizeof g_cu_k, 0xff);
    CUDA_CHECK(cudaMemcpy(gcq.p, g_cu_q, sizeof g_cu_q, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(gck.p, g_cu_k, sizeof g_cu_k, cudaMemcpyHostToDevice));
    double sinks[4];
    float fsinks[4];
    gbuf gs = galloc(sizeof fsinks, 0xff);
    for (int h = 0; h < hq; h++)
        sinks[h] = fsinks[h] = (float)(4.0 * fai_ref_rng_uniform(&g_rng) - 2.0);
    CUDA_CHECK(cudaMemcpy(gs.p, fsinks, sizeof fsinks, cudaMemcpyHostToDevice));

    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 0.125f;
    if (c->variants) {
        p.attn.window = 1;
        p.attn.window_left = 30;
        p.attn.window_right = -1;
        p.attn.sinks = gs.p;
    }
    p.batch = PB;
    p.causal = 1;
    p.q = (fai_tensor){gq.p, FAI_DTYPE_FP16, hq * d, d};
    p.k = (fai_tensor){gk.p, FAI_DTYPE_FP16, hk * d, d};
    p.v = (fai_tensor){gv.p, FAI_DTYPE_FP16, hk * d, d};
    p.o = (fai_tensor){go.p, FAI_DTYPE_FP16, hq * d, d};
    p.lse = gl.p;
    p.cu_seqlens_q = gcq.p;
    p.cu_seqlens_k = gck.p;
    p.total_q = TQ;
    p.total_k = TK;
    p.max_seq_q = 24; /* the longest clamped sequence */
    int32_t host_cu[PB + 1];
    range rq[PB], rk[PB];
    for (int b = 0; b < PB; b++) {
        rq[b] = clamp_range(g_cu_q, b, TQ);
        rk[b] = clamp_range(g_cu_k, b, TK);
    }
    if (c->host == 1) { /* the clamped lengths (the clamped ranges themselves can decrease, which
                           a host copy may not: the host checks refuse it) */
        host_cu[0] = 0;
        for (int b = 0; b < PB; b++)
            host_cu[b + 1] = host_cu[b] + (rq[b].hi - rq[b].lo);
        p.cu_seqlens_q_host = host_cu;
    } else if (c->host == 2) { /* every sequence a decode row but the last */
        for (int b = 0; b < PB; b++)
            host_cu[b] = b;
        host_cu[PB] = TQ;
        p.cu_seqlens_q_host = host_cu;
    }

    /* The reference of each clamped sequence, and which rows each owns. */
    double *ref = calloc((size_t)TQ * hq * d, sizeof(double)), *ref_lse = calloc((size_t)TQ * hq, sizeof(double));
    int owners[TQ] = {0}, nokey[TQ] = {0};
    for (int b = 0; b < PB; b++) {
        for (int r = rq[b].lo; r < rq[b].hi; r++) { /* row i's diagonal key: i + seq_k - seq_q */
            owners[r]++;
            nokey[r] = !(rk[b].hi > rk[b].lo && r - rq[b].lo + (rk[b].hi - rk[b].lo) - (rq[b].hi - rq[b].lo) >= 0);
        }
        fai_ref_problem rp = {0};
        rp.num_q_heads = hq;
        rp.num_kv_heads = hk;
        rp.head_dim = d;
        rp.seq_q = rq[b].hi - rq[b].lo;
        rp.seq_k = rk[b].hi - rk[b].lo;
        rp.softmax_scale = p.attn.softmax_scale;
        rp.causal = 1;
        if (c->variants) {
            rp.window = 1;
            rp.window_left = 30;
            rp.window_right = -1;
            rp.sinks = sinks;
        }
        if (rp.seq_q == 0)
            continue;
        if (fai_ref_attention(&rp, qf + (int64_t)rq[b].lo * hq * d, kf + (int64_t)rk[b].lo * hk * d,
                              vf + (int64_t)rk[b].lo * hk * d, ref + (int64_t)rq[b].lo * hq * d,
                              ref_lse + (int64_t)rq[b].lo * hq)) {
            printf("  reference failed\n");
            exit(2);
        }
    }

    int fails = 0;
    size_t ws_bytes = 0;
    fai_status st = fai_prefill_workspace_size(&p, &ws_bytes);
    void *ws = NULL;
    if (st == FAI_SUCCESS && ws_bytes) {
        CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
        CUDA_CHECK(cudaMemset(ws, 0xff, ws_bytes));
    }
    if (st == FAI_SUCCESS)
        st = fai_prefill(&p, ws, ws_bytes, 0);
    const cudaError_t e = cudaDeviceSynchronize();
    if (st != FAI_SUCCESS || e != cudaSuccess) {
        printf("  status %s (%s), sync %s  FAIL\n", fai_status_string(st), fai_last_error(), cudaGetErrorString(e));
        if (e != cudaSuccess)
            exit(1);
        fails++;
    } else {
        uint16_t *ob = malloc(sizeof(uint16_t) * TQ * hq * d);
        float *lb = malloc(sizeof(float) * TQ * hq);
        CUDA_CHECK(cudaMemcpy(ob, go.p, sizeof(uint16_t) * TQ * hq * d, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lb, gl.p, sizeof(float) * TQ * hq, cudaMemcpyDeviceToHost));
        errs er = {0};
        int64_t unwritten = 0, unexpected = 0;
        for (int r = 0; r < TQ; r++)
            for (int h = 0; h < hq; h++) {
                const int64_t i = (int64_t)r * hq + h;
                int poisoned = 1;
                for (int x = 0; x < d; x++)
                    poisoned &= ob[i * d + x] == 0xffff;
                uint32_t lbits;
                memcpy(&lbits, &lb[i], 4);
                poisoned &= lbits == 0xffffffffu;
                if (owners[r] != 1) {
                    unexpected += owners[r] == 0 && !poisoned; /* (not in this batch) */
                    continue;
                }
                if (poisoned && c->host == 2) { /* a host plan that disagrees may skip rows */
                    unwritten++;
                    continue;
                }
                add_row(&er, ob + i * d, ref + i * d, d);
                if (nokey[r]) {
                    /* no visible key: exact zeros (the LSE is -inf or the sink, checked below) */
                    int nonzero = 0;
                    for (int x = 0; x < d; x++)
                        nonzero |= ob[i * d + x] != 0 && ob[i * d + x] != 0x8000;
                    er.bad += nonzero;
                }
                add_lse(&er, lb[i], ref_lse[i]);
            }
        const int64_t dmg = guard_damage(&go) + guard_damage(&gl);
        const int ok = errs_ok(&er) && dmg == 0 && unexpected == 0 && (c->host == 2 || unwritten == 0);
        printf("  ");
        print_errs(&er);
        printf(" rows unwritten %lld, guard bytes changed %lld  %s\n", (long long)unwritten, (long long)dmg,
               ok ? "ok" : "FAIL");
        fails += !ok;
        free(ob);
        free(lb);
    }
    cudaFree(ws);
    free(qf); free(kf); free(vf); free(bits); free(ref); free(ref_lse);
    gfree(&gq); gfree(&gk); gfree(&gv); gfree(&go); gfree(&gl); gfree(&gcq); gfree(&gck); gfree(&gs);
    return fails;
}

/* ===================================================================================== */
/* fai_prefill over a kv_cache: lengths and page numbers out of range. */

enum { CB = 9, CCAP = 300, CTAIL = 2 };
/* Per sequence, the raw length (clamped into [0, CCAP]: 0 0 300 300 40 123 300 300 77) and
 * the query rows: a decode row with no key (first, so that a host plan's prefill range and a
 * staged copy's slots start at sequence 1), 3 prefill rows with no key, a 150-row chunk (the
 * Hopper kernel's 128-row tiles where it runs), a decode row of the whole capacity, 70 rows
 * over 40 keys (causal: the first 30 see none), chunks of 17 and 5 rows, an empty chunk of a
 * full cache, a decode row; CTAIL query rows after the last sequence belong to none. */
static const int32_t g_cg_lens[CB] = {INT_MIN, -5, CCAP + 100, INT_MAX, 40, 123, CCAP, INT_MAX, 77};
static const int g_cg_sq[CB] = {1, 3, 150, 1, 70, 17, 5, 0, 1};

typedef struct cg_case {
    const char *name;
    fai_dtype dt; /* the cache's: FP16, or int8 / FP8 (staged) */
    int page_size, hq, hk, d, causal;
    int hint;     /* kv_cache->max_seq_len of the second pair of runs (the first: 0) */
    int pairs;    /* int8: FAI_SCALES_BF16X2 */
} cg_case;

/* The keys sequence b's rows see: its length clamped into [0, capacity]. The prefill rows of
 * an int8 / FP8 cache read a staged copy of K keys a sequence (max_seq_len when in
 * [1, capacity], else capacity), so they see at most K (docs/api.md: "a longer sequence sees
 * only its first K keys"); decode rows read the cache itself, as fai_decode does. */
static int cg_seq_k(const cg_case *c, int b, int hint)
{
    const int n = clampi(g_cg_lens[b], 0, CCAP), keys = hint >= 1 && hint <= CCAP ? hint : CCAP;
    return c->dt != FAI_DTYPE_FP16 && g_cg_sq[b] != 1 && n > keys ? keys : n;
}

static int run_cache_guard(const cg_case *c)
{
    const int hq = c->hq, hk = c->hk, d = c->d, eb = c->dt == FAI_DTYPE_FP16 ? 2 : 1;
    const int staged = c->dt != FAI_DTYPE_FP16, ps = c->page_size;
    const int pps = ps ? (CCAP + ps - 1) / ps : 0, num_pages = ps ? CB * pps + 2 : 0;
    const int64_t rows = ps ? (int64_t)num_pages * ps : (int64_t)CB * CCAP;
    const int64_t n = rows * hk;
    const size_t nd = (size_t)(n * d);
    printf("prefill cache guard: %s [%s%s], %scausal\n", c->name, dtype_short(c->dt), c->pairs ? ", BF16X2 scales" : "",
           c->causal ? "" : "non-");

    /* The cache, every row finite (a clamped page or length reads real rows): kf/vf the values
     * it stands for (what the decode kernels read), kh/vh those rounded to FP16 (an int8
     * cache's staged copy; the same values for FP16 and FP8). */
    float *kf = malloc(sizeof(float) * nd), *vf = malloc(sizeof(float) * nd);
    float *kh = malloc(sizeof(float) * nd), *vh = malloc(sizeof(float) * nd);
    uint8_t *kimg = malloc(nd * (size_t)eb), *vimg = malloc(nd * (size_t)eb);
    float *ksc = malloc(sizeof(float) * (size_t)n), *vsc = malloc(sizeof(float) * (size_t)n);
    float *x = malloc(sizeof(float) * (size_t)d);
    for (int w = 0; w < 2; w++)
        for (int64_t r = 0; r < n; r++) {
            rand_rows(x, NULL, d);
            host_encode_row(c->dt, c->pairs, x, d, (w ? vimg : kimg) + r * d * eb, (w ? vsc : ksc) + r,
                            (w ? vf : kf) + r * d);
        }
    memcpy(kh, kf, sizeof(float) * nd);
    memcpy(vh, vf, sizeof(float) * nd);
    round_to_half(kh, NULL, (int64_t)nd);
    round_to_half(vh, NULL, (int64_t)nd);
    gbuf gk, gv, gks, gvs;
    upload_cache(c->dt, c->pairs, kimg, vimg, nd * (size_t)eb, ksc, vsc, n, &gk, &gv, &gks, &gvs);

    /* The page table: a scrambled pool; entries past the pages a sequence's clamped length
     * uses are never read (garbage); entries out of range inside the used pages. */
    int32_t *table = NULL;
    gbuf gt = {0};
    if (ps) {
        table = scrambled_table(num_pages, CB * pps);
        for (int b = 0; b < CB; b++)
            for (int i = (clampi(g_cg_lens[b], 0, CCAP) + ps - 1) / ps; i < pps; i++)
                table[b * pps + i] = 123456789;
        table[2 * pps + 0] = num_pages;
        table[2 * pps + pps - 1] = INT_MAX;
        table[3 * pps + 1] = -3;
        table[3 * pps + pps / 2] = INT_MIN;
        table[4 * pps + 39 / ps] = num_pages + 1000; /* the last page of its 40 keys */
        table[5 * pps + 0] = -1;
        table[5 * pps + 122 / ps] = INT_MIN;
        table[6 * pps + pps - 1] = num_pages; /* the page of the 5 query rows' own keys */
        table[7 * pps + 1] = INT_MIN;          /* (no query row: only a staged copy reads it) */
        table[8 * pps + 0] = INT_MAX;
        gt = galloc(sizeof(int32_t) * (size_t)(CB * pps), 0xff);
        CUDA_CHECK(cudaMemcpy(gt.p, table, sizeof(int32_t) * (size_t)(CB * pps), cudaMemcpyHostToDevice));
    }

    /* Queries (the rows past the last sequence keep the band's NaN), O, LSE, offsets, lengths. */
    int32_t cu[CB + 1];
    cu[0] = 0;
    int longest = 1;
    for (int b = 0; b < CB; b++) {
        cu[b + 1] = cu[b] + g_cg_sq[b];
        longest = g_cg_sq[b] > longest ? g_cg_sq[b] : longest;
    }
    const int tq = cu[CB] + CTAIL;
    const int64_t qn = (int64_t)tq * hq * d, owned = (int64_t)cu[CB] * hq * d;
    float *qf = malloc(sizeof(float) * (size_t)owned);
    uint16_t *qb = malloc(sizeof(uint16_t) * (size_t)owned);
    rand_rows(qf, qb, owned);
    gbuf gq = galloc((size_t)qn * 2, 0xff), go = galloc((size_t)qn * 2, 0xff);
    gbuf gl = galloc(sizeof(float) * (size_t)tq * hq, 0xff);
    CUDA_CHECK(cudaMemcpy(gq.p, qb, (size_t)owned * 2, cudaMemcpyHostToDevice));
    gbuf gcq = galloc(sizeof cu, 0xff), glen = galloc(sizeof g_cg_lens, 0xff);
    CUDA_CHECK(cudaMemcpy(gcq.p, cu, sizeof cu, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(glen.p, g_cg_lens, sizeof g_cg_lens, cudaMemcpyHostToDevice));

    fai_kv_cache kc;
    memset(&kc, 0, sizeof kc);
    kc.dtype = c->dt;
    kc.k = gk.p;
    kc.v = gv.p;
    const int rps = ps ? ps : CCAP; /* rows per slot or page */
    kc.seq_stride = (int64_t)rps * hk * d;
    kc.token_stride = (int64_t)hk * d;
    kc.head_stride = d;
    kc.capacity = CCAP;
    kc.seq_lens = glen.p;
    if (c->dt == FAI_DTYPE_INT8) {
        kc.scale_format = c->pairs ? FAI_SCALES_BF16X2 : FAI_SCALES_FP32;
        kc.k_scale = gks.p;
        kc.v_scale = c->pairs ? NULL : gvs.p;
        kc.scale_seq_stride = (int64_t)rps * hk;
        kc.scale_token_stride = hk;
        kc.scale_head_stride = 1;
    }
    if (ps) {
        kc.page_table = gt.p;
        kc.page_table_stride = pps;
        kc.page_size = ps;
        kc.num_pages = num_pages;
    }
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)d);
    p.batch = CB;
    p.causal = c->causal;
    p.q = (fai_tensor){gq.p, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.o = (fai_tensor){go.p, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.lse = gl.p;
    p.cu_seqlens_q = gcq.p;
    p.total_q = tq;
    p.max_seq_q = longest;
    p.kv_cache = &kc;

    /* The runs: planned for capacity (max_seq_len 0), then for c->hint (an FP16 cache: a
     * planning hint below most lengths; a staged cache: the keys staged), each without and
     * with a host copy of cu_seqlens_q (equal to the device's). */
    double *ref = calloc((size_t)qn, sizeof(double)), *ref_lse = calloc((size_t)tq * hq, sizeof(double));
    float *ks = malloc(sizeof(float) * (size_t)CCAP * hk * d), *vs = malloc(sizeof(float) * (size_t)CCAP * hk * d);
    int *nokey = calloc((size_t)tq, sizeof(int));
    uint16_t *ob = malloc(sizeof(uint16_t) * (size_t)qn);
    float *lb = malloc(sizeof(float) * (size_t)tq * hq);
    int fails = 0, ref_hint = -1;
    for (int run = 0; run < 4; run++) {
        const int hint = run < 2 ? 0 : c->hint, host = run & 1;
        /* The reference of the clamped problem (the hint changes it for a staged cache only). */
        if (ref_hint < 0 || (staged && hint != ref_hint)) {
            ref_hint = hint;
            for (int b = 0; b < CB; b++) {
                const int sq = g_cg_sq[b], sk = cg_seq_k(c, b, hint);
                const float *kfrom = sq == 1 ? kf : kh, *vfrom = sq == 1 ? vf : vh;
                for (int j = 0; j < sk; j++) {
                    const int64_t row = ps ? (int64_t)clampi(table[b * pps + j / ps], 0, num_pages - 1) * ps + j % ps
                                           : (int64_t)b * CCAP + j;
                    memcpy(ks + (int64_t)j * hk * d, kfrom + row * hk * d, sizeof(float) * (size_t)hk * d);
                    memcpy(vs + (int64_t)j * hk * d, vfrom + row * hk * d, sizeof(float) * (size_t)hk * d);
                }
                for (int i = 0; i < sq; i++) /* row i's diagonal key: i + sk - sq */
                    nokey[cu[b] + i] = sk == 0 || (c->causal && i + sk - sq < 0);
                if (sq == 0)
                    continue;
                fai_ref_problem rp = {0};
                rp.num_q_heads = hq;
                rp.num_kv_heads = hk;
                rp.head_dim = d;
                rp.seq_q = sq;
                rp.seq_k = sk;
                rp.softmax_scale = p.attn.softmax_scale;
                rp.causal = c->causal;
                if (fai_ref_attention(&rp, qf + (int64_t)cu[b] * hq * d, ks, vs, ref + (int64_t)cu[b] * hq * d,
                                      ref_lse + (int64_t)cu[b] * hq)) {
                    printf("  reference failed\n");
                    exit(2);
                }
            }
        }
        char label[48];
        snprintf(label, sizeof label, "hint %d, %s", hint, host ? "host plan" : "no host plan");
        kc.max_seq_len = hint;
        p.cu_seqlens_q_host = host ? cu : NULL;
        gpoison(&go);
        gpoison(&gl);
        size_t ws_bytes = 0;
        fai_status st = fai_prefill_workspace_size(&p, &ws_bytes);
        gbuf gw = {0}; /* the workspace between bands too: a staged copy must stay inside it */
        if (st == FAI_SUCCESS && ws_bytes)
            gw = galloc(ws_bytes, 0xff);
        if (st == FAI_SUCCESS)
            st = fai_prefill(&p, ws_bytes ? gw.p : NULL, ws_bytes, 0);
        const cudaError_t e = cudaDeviceSynchronize();
        if (st != FAI_SUCCESS || e != cudaSuccess) {
            printf("  %-24s status %s (%s), sync %s  FAIL\n", label, fai_status_string(st), fai_last_error(),
                   cudaGetErrorString(e));
            if (e != cudaSuccess)
                exit(1); /* the context is gone */
            fails++;
            if (gw.base)
                gfree(&gw);
            continue;
        }
        CUDA_CHECK(cudaMemcpy(ob, go.p, (size_t)qn * 2, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lb, gl.p, sizeof(float) * (size_t)tq * hq, cudaMemcpyDeviceToHost));
        errs er = {0};
        int seqs_over = 0;
        for (int b = 0; b < CB; b++) {
            errs es = {0};
            for (int r = cu[b]; r < cu[b + 1]; r++)
                for (int h = 0; h < hq; h++) {
                    const int64_t i = (int64_t)r * hq + h;
                    add_row(&es, ob + i * d, ref + i * d, d);
                    if (nokey[r]) /* no visible key: exact zeros (the LSE -inf, checked below) */
                        for (int y = 0; y < d; y++)
                            es.bad += ob[i * d + y] != 0 && ob[i * d + y] != 0x8000;
                    add_lse(&es, lb[i], ref_lse[i]);
                }
            seqs_over += !fold_seq(&er, &es, (int64_t)(cu[b + 1] - cu[b]) * hq * d);
        }
        int64_t unexpected = 0; /* rows of no sequence: still poisoned */
        for (int64_t i = (int64_t)cu[CB] * hq; i < (int64_t)tq * hq; i++) {
            uint32_t lbits;
            memcpy(&lbits, &lb[i], 4);
            for (int y = 0; y < d; y++)
                unexpected += ob[i * d + y] != 0xffff;
            unexpected += lbits != 0xffffffffu;
        }
        const int64_t dmg = guard_damage(&go) + guard_damage(&gl) + (gw.base ? guard_damage(&gw) : 0);
        const int ok = errs_ok(&er) && seqs_over == 0 && dmg == 0 && unexpected == 0;
        printf("  %-24s ", label);
        print_errs(&er);
        printf(" seqs over %d, other rows changed %lld, guard bytes changed %lld  %s\n", seqs_over,
               (long long)unexpected, (long long)dmg, ok ? "ok" : "FAIL");
        fails += !ok;
        if (gw.base)
            gfree(&gw);
    }
    free(kf); free(vf); free(kh); free(vh); free(kimg); free(vimg); free(ksc); free(vsc); free(x); free(table);
    free(qf); free(qb); free(ref); free(ref_lse); free(ks); free(vs); free(nokey); free(ob); free(lb);
    gfree(&gk); gfree(&gv); gfree(&gq); gfree(&go); gfree(&gl); gfree(&gcq); gfree(&glen);
    if (gks.base) gfree(&gks);
    if (gvs.base) gfree(&gvs);
    if (gt.base) gfree(&gt);
    return fails;
}

/* ===================================================================================== */
/* fai_kv_append: slots out of range. */

typedef struct ag_case {
    const char *name;
    fai_dtype dt;
    int page_size, hk, d, cache_batch, cap, num_pages;
    int pairs; /* int8: FAI_SCALES_BF16X2 (one word per row at k_scale) */
} ag_case;

static int run_append_guard(const ag_case *c)
{
    const int hk = c->hk, d = c->d, eb = c->dt == FAI_DTYPE_FP16 ? 2 : 1, rb = d * eb;
    const int64_t num_slots = c->page_size ? (int64_t)c->num_pages * c->page_size : (int64_t)c->cache_batch * c->cap;
    const int rps = c->page_size ? c->page_size : c->cap;
    printf("kv_append guard: %s [%s%s], %lld slots\n", c->name, dtype_short(c->dt), c->pairs ? ", BF16X2 scales" : "",
           (long long)num_slots);
    enum { T = 12 };
    const int64_t slots[T] = {5, -1, INT64_MIN, num_slots, num_slots + 7, INT64_MAX, (1LL << 32) + 3,
                              -(1LL << 32) + 3, num_slots - 1, 0, (1LL << 31) + 1, 1};
    const int64_t cn = num_slots * hk; /* rows of the pool x heads */
    const uint8_t fill = 0x5a;
    gbuf gk = galloc((size_t)(cn * rb), fill), gv = galloc((size_t)(cn * rb), fill);
    gbuf gks = {0}, gvs = {0};
    if (c->dt == FAI_DTYPE_INT8) {
        gks = galloc(sizeof(float) * (size_t)cn, fill); /* (pairs: a 4-byte word a row as well) */
        if (!c->pairs)
            gvs = galloc(sizeof(float) * (size_t)cn, fill);
    }
    gbuf gt = {0};
    const int pps = c->page_size ? (c->cap + c->page_size - 1) / c->page_size : 0;
    if (c->page_size) { /* not read by the append; the descriptor needs one */
        gt = galloc(sizeof(int32_t) * (size_t)(c->cache_batch * pps), 0);
    }
    const int64_t nn = (int64_t)T * hk * d;
    float *kf = malloc(sizeof(float) * (size_t)nn), *vf = malloc(sizeof(float) * (size_t)nn);
    uint16_t *kb = malloc(sizeof(uint16_t) * (size_t)nn), *vb = malloc(sizeof(uint16_t) * (size_t)nn);
    rand_rows(kf, kb, nn);
    rand_rows(vf, vb, nn);
    gbuf gnk = galloc((size_t)nn * 2, 0xff), gnv = galloc((size_t)nn * 2, 0xff), gsl = galloc(sizeof slots, 0xff);
    CUDA_CHECK(cudaMemcpy(gnk.p, kb, (size_t)nn * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(gnv.p, vb, (size_t)nn * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(gsl.p, slots, sizeof slots, cudaMemcpyHostToDevice));

    fai_kv_append_params a = fai_kv_append_params_default();
    a.num_kv_heads = hk;
    a.head_dim = d;
    a.num_tokens = T;
    a.k_new = (fai_tensor){gnk.p, FAI_DTYPE_FP16, (int64_t)hk * d, d};
    a.v_new = (fai_tensor){gnv.p, FAI_DTYPE_FP16, (int64_t)hk * d, d};
    a.slots = gsl.p;
    a.cache_batch = c->cache_batch;
    a.cache.dtype = c->dt;
    a.cache.k = gk.p;
    a.cache.v = gv.p;
    a.cache.seq_stride = (int64_t)rps * hk * d;
    a.cache.token_stride = (int64_t)hk * d;
    a.cache.head_stride = d;
    a.cache.capacity = c->cap;
    if (c->dt == FAI_DTYPE_INT8) {
        a.cache.scale_format = c->pairs ? FAI_SCALES_BF16X2 : FAI_SCALES_FP32;
        a.cache.k_scale = gks.p;
        a.cache.v_scale = c->pairs ? NULL : gvs.p;
        a.cache.scale_seq_stride = (int64_t)rps * hk;
        a.cache.scale_token_stride = hk;
        a.cache.scale_head_stride = 1;
    }
    if (c->page_size) {
        a.cache.page_table = gt.p;
        a.cache.page_table_stride = pps;
        a.cache.page_size = c->page_size;
        a.cache.num_pages = c->num_pages;
    }
    const fai_status st = fai_kv_append(&a, 0);
    const cudaError_t e = cudaDeviceSynchronize();
    int fails = 0;
    if (st != FAI_SUCCESS || e != cudaSuccess) {
        printf("  status %s (%s), sync %s  FAIL\n", fai_status_string(st), fai_last_error(), cudaGetErrorString(e));
        if (e != cudaSuccess)
            exit(1);
        fails++;
    } else {
        /* The expected image, bands included: the fill everywhere but the in-range slots. */
        const size_t cb = (size_t)(cn * rb) + 2 * GUARD, sb = sizeof(float) * (size_t)cn + 2 * GUARD;
        uint8_t *want[2], *got = malloc(cb > sb ? cb : sb);
        uint8_t *want_s[2];
        for (int w = 0; w < 2; w++) {
            want[w] = malloc(cb);
            memset(want[w], fill, cb);
            want_s[w] = malloc(sb);
            memset(want_s[w], fill, sb);
        }
        float *deq = malloc(sizeof(float) * (size_t)d);
        int written = 0;
        for (int t = 0; t < T; t++) {
            if (slots[t] < 0 || slots[t] >= num_slots)
                continue;
            written++;
            for (int h = 0; h < hk; h++)
                for (int w = 0; w < 2; w++) {
                    const int64_t row = slots[t] * hk + h; /* natural strides: the slot is the pool row */
                    float scale;
                    host_encode_row(c->dt, c->pairs, (w ? vf : kf) + ((int64_t)t * hk + h) * d, d,
                                    want[w] + GUARD + row * rb, &scale, deq);
                    if (c->dt == FAI_DTYPE_INT8 && c->pairs) { /* the word's low (K) or high (V) half */
                        const uint16_t half = (uint16_t)(fai_float_bits(scale) >> 16);
                        memcpy(want_s[0] + GUARD + row * 4 + 2 * w, &half, 2);
                    } else if (c->dt == FAI_DTYPE_INT8) {
                        memcpy(want_s[w] + GUARD + row * 4, &scale, 4);
                    }
                }
        }
        int64_t bad = 0;
        for (int w = 0; w < 2; w++) {
            CUDA_CHECK(cudaMemcpy(got, (w ? gv : gk).base, cb, cudaMemcpyDeviceToHost));
            for (size_t i = 0; i < cb; i++)
                bad += got[i] != want[w][i];
            if (c->dt == FAI_DTYPE_INT8 && !(c->pairs && w)) {
                CUDA_CHECK(cudaMemcpy(got, (w ? gvs : gks).base, sb, cudaMemcpyDeviceToHost));
                for (size_t i = 0; i < sb; i++)
                    bad += got[i] != want_s[w][i];
            }
        }
        printf("  %d of %d slots in range written, bytes differing from the expected cache %lld  %s\n", written, T,
               (long long)bad, bad ? "FAIL" : "ok");
        fails += bad != 0;
        for (int w = 0; w < 2; w++) {
            free(want[w]);
            free(want_s[w]);
        }
        free(got);
        free(deq);
    }
    free(kf); free(vf); free(kb); free(vb);
    gfree(&gk); gfree(&gv); gfree(&gnk); gfree(&gnv); gfree(&gsl);
    if (gks.base) gfree(&gks);
    if (gvs.base) gfree(&gvs);
    if (gt.base) gfree(&gt);
    return fails;
}

int main(int argc, char **argv)
{
    gpu_require_device("test_guards");
    (void)argc; /* (--small is accepted: the shapes are small already) */
    (void)argv;
    fai_ref_rng_seed(&g_rng, 7007);
    if (fai_current_device("test_guards", &g_dev) != FAI_SUCCESS) { /* what the planner sees */
        fprintf(stderr, "%s\n", fai_last_error());
        return 2;
    }
    int fails = 0, ran = 0;
    static const dg_case dg[] = {
        {"contiguous, GQA 16/4 d128", FAI_DTYPE_FP16, 0, 16, 4, 128, 0, 0},
        {"contiguous, MHA 8/8 d64, sinks", FAI_DTYPE_FP16, 0, 8, 8, 64, 1, 0},
        {"contiguous int8, 8/2 d128", FAI_DTYPE_INT8, 0, 8, 2, 128, 0, 0},
        {"paged 16, GQA 16/4 d128", FAI_DTYPE_FP16, 16, 16, 4, 128, 0, 0},
        {"paged 1, 8/8 d96", FAI_DTYPE_FP16, 1, 8, 8, 96, 0, 0},
        {"paged 16 int8, 8/2 d64, sinks", FAI_DTYPE_INT8, 16, 8, 2, 64, 1, 0},
        {"contiguous int8, 8/2 d128", FAI_DTYPE_INT8, 0, 8, 2, 128, 0, 1},
        {"paged 1 int8, 16/4 d96, sinks", FAI_DTYPE_INT8, 1, 16, 4, 96, 1, 1},
        {"paged 32 e4m3, 16/4 d128", FAI_DTYPE_FP8_E4M3, 32, 16, 4, 128, 0, 0},
        {"paged 256 e5m2, 4/4 d256", FAI_DTYPE_FP8_E5M2, 256, 4, 4, 256, 0, 0},
    };
    for (size_t i = 0; i < sizeof dg / sizeof dg[0]; i++, ran++)
        fails += run_decode_guard(&dg[i]) != 0;
    static const pg_case pg[] = {
        {"hybrid, no host plan", 0, 0},
        {"hybrid, window + sinks, no host plan", 1, 0},
        {"hybrid, host copy of the clamped lengths", 0, 1},
        {"hybrid, window + sinks, host copy of the clamped lengths", 1, 1},
        {"hybrid, host copy disagreeing with the device", 0, 2},
    };
    for (size_t i = 0; i < sizeof pg / sizeof pg[0]; i++, ran++)
        fails += run_prefill_guard(&pg[i]) != 0;
    /* Capacity 300 >= FAI_PREFILL_SM90_MIN_KEYS: planned for it (hint 0), an H100 runs the
     * prefill rows on the Hopper kernel wherever the planner picks 128-row tiles (d256:
     * always): in place over pages of 16, over the contiguous cache, over a staged copy. The
     * hint runs (hints < 256) take the mma.sync kernel (d128 contiguous with a host plan: its
     * one-wave schedule), as pages of 1 always do. A staged cache's hint is below its capacity
     * and below the 150-row chunk. */
    static const cg_case cg[] = {
        {"contiguous, GQA 16/4 d128", FAI_DTYPE_FP16, 0, 16, 4, 128, 1, 16, 0},
        {"contiguous, 8/8 d64", FAI_DTYPE_FP16, 0, 8, 8, 64, 0, 16, 0},
        {"paged 16, GQA 32/8 d128", FAI_DTYPE_FP16, 16, 32, 8, 128, 1, 16, 0},
        {"paged 16, GQA 32/8 d128", FAI_DTYPE_FP16, 16, 32, 8, 128, 0, 16, 0},
        {"paged 1, GQA 8/2 d96", FAI_DTYPE_FP16, 1, 8, 2, 96, 1, 16, 0},
        {"paged 16 int8, 8/2 d128", FAI_DTYPE_INT8, 16, 8, 2, 128, 1, 130, 0},
        {"paged 16 int8, 8/2 d128", FAI_DTYPE_INT8, 16, 8, 2, 128, 0, 130, 1},
        {"paged 32 e4m3, 16/4 d64", FAI_DTYPE_FP8_E4M3, 32, 16, 4, 64, 0, 64, 0},
        {"contiguous e4m3, 8/2 d256", FAI_DTYPE_FP8_E4M3, 0, 8, 2, 256, 1, 130, 0},
    };
    for (size_t i = 0; i < sizeof cg / sizeof cg[0]; i++, ran++)
        fails += run_cache_guard(&cg[i]) != 0;
    static const ag_case ag[] = {
        {"contiguous, d64", FAI_DTYPE_FP16, 0, 2, 64, 3, 40, 0, 0},
        {"contiguous, d128", FAI_DTYPE_INT8, 0, 2, 128, 3, 40, 0, 0},
        {"contiguous, d96", FAI_DTYPE_FP8_E4M3, 0, 1, 96, 2, 64, 0, 0},
        {"paged 8, d64", FAI_DTYPE_FP16, 8, 2, 64, 2, 40, 10, 0},
        {"paged 16, d256", FAI_DTYPE_INT8, 16, 2, 256, 2, 32, 5, 0},
        {"contiguous, d64", FAI_DTYPE_INT8, 0, 3, 64, 2, 40, 0, 1},
        {"paged 4, d128", FAI_DTYPE_INT8, 4, 2, 128, 2, 40, 30, 1},
        {"paged 1, d64", FAI_DTYPE_FP8_E5M2, 1, 2, 64, 2, 30, 50, 0},
    };
    for (size_t i = 0; i < sizeof ag / sizeof ag[0]; i++, ran++)
        fails += run_append_guard(&ag[i]) != 0;
    printf("test_guards: %d cases, %d failed (worst rel_l2 %.2e, max_err %.2e)\n", ran, fails, g_worst_rel,
           g_worst_abs);
    return fails ? 1 : 0;
}
