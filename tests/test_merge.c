/* GPU test of merging attention states (fai_merge_states, fai_merge_state), on fresh random
 * inputs (seed printed; FAI_TEST_SEED reproduces a run, FAI_TEST_NAME=text runs only the
 * cases whose name contains text). Exits 77 without a GPU.
 *
 * Three kinds of case:
 *  - "union": the keys are split into parts (some of them empty), the CPU reference
 *    (double) gives each part's output and LSE on its own keys, rounded to FP16/BF16 and
 *    FP32 as fai_decode/fai_prefill would write them; the merge must equal the reference
 *    over the union of the keys (rel L2 <= 2e-3 FP16, 1.6e-2 BF16; LSE within
 *    1e-5 + 1e-6 |lse|);
 *  - "synthetic": random parts and LSEs (spreads up to hundreds, offsets up to 1e4), for the
 *    large shapes (rows x heads over several waves of blocks);
 *  - "cascade": end to end, the parts come from fai's own kernels with their lse outputs.
 *    Prefill: a batch sharing a prefix of P keys; part 1 is one fai_prefill of every query
 *    of the batch over the prefix (not causal), part 2 a fai_prefill of each sequence's
 *    queries over its own suffix keys (causal, bottom-right), and the merge must equal causal
 *    attention over prefix + suffix. Decode: fai_decode over a paged prefix cache whose page
 *    table rows all list the same pages, and over per-sequence suffix caches (some empty,
 *    some sequences sharing none or only part of the prefix). Attention sinks go to exactly
 *    one part (docs/api.md: the merge adds none) and the reference has them once; soft-caps
 *    are in both parts. Each case is merged out of place and then in place into the suffix
 *    part; the union bounds are those above, but the LSE's is test_prefill's
 *    1e-3 + 1e-4 |lse| (the parts' LSEs carry the kernels' error). A part's row that sees no
 *    key must be zeros with an LSE of -inf, or the sink's logit in the part with sinks.
 *    (No sliding window: measured from the prefix part's own diagonal, a window of W keys
 *    would start W - suffix keys back, different for each sequence, and in the packed
 *    prefill part that diagonal is not the sequence's at all; attn.window_left is one value
 *    per call.)
 * Every case also checks each element against the merge of the very inputs computed in
 * double: within one unit in the last place of the output type plus 1e-5 of the row's
 * largest contributing value (the FP32 weights' error). Some rows mark parts as empty (LSE
 * -inf) with their O rows filled with NaN, which must not be read; some rows have every part
 * empty and must give exact zeros and an LSE of -inf. Outputs are poisoned with NaN before
 * every call (out of place) and every element is checked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "reference.h"

typedef struct merge_case {
    const char *name;
    int rows, heads, d, parts;
    fai_dtype dtype;
    const int *split;  /* union cases: keys of each part ([parts], 0: an empty part); NULL: synthetic */
    int in_place;      /* o is parts[0] and lse is parts_lse[0] */
    int strided;       /* o head-major [heads, rows, d], parts with padded rows */
    int masked;        /* some rows mark parts empty (LSE -inf, O NaN), some every part */
    int no_lse;        /* lse = NULL */
    int pair;          /* through fai_merge_state (two parts) */
    float spread;      /* synthetic: LSEs uniform in offset +- spread */
    float offset;
} merge_case;

static uint64_t g_seed;

static uint16_t to_bits(fai_dtype t, float x) { return t == FAI_DTYPE_BF16 ? host_float_to_bf16(x) : host_float_to_half(x); }
static float from_bits(fai_dtype t, uint16_t b) { return t == FAI_DTYPE_BF16 ? host_bf16_to_float(b) : host_half_to_float(b); }
static float round_to(fai_dtype t, float x) { return from_bits(t, to_bits(t, x)); }

/* One unit in the last place of the output type at |x|. */
static double ulp_of(fai_dtype t, double x)
{
    const int mant = t == FAI_DTYPE_BF16 ? 7 : 10, emin = t == FAI_DTYPE_BF16 ? -126 : -14;
    int e = x == 0.0 ? emin : (int)floor(log2(fabs(x)));
    if (e < emin)
        e = emin;
    return ldexp(1.0, e - mant);
}

/* Whether part p is marked empty in row r (masked cases): every 11th row all parts, every
 * 13th all but the last, every 5th one part in turn. */
static int masked_part(const merge_case *c, int r, int p)
{
    if (!c->masked)
        return 0;
    if (r % 11 == 3)
        return 1;
    if (r % 13 == 7)
        return p != c->parts - 1;
    if (r % 5 == 1)
        return p == (r / 5) % c->parts;
    return 0;
}

/* A [rows, heads, d] tensor of `dtype` on the device at the given strides, every element of
 * its allocation outside the view NaN. Returns the device pointer. */
static void *upload(fai_dtype t, const float *x, int rows, int heads, int d, int64_t ts, int64_t hs, size_t *bytes_out)
{
    const int64_t span = (int64_t)(rows - 1) * ts + (int64_t)(heads - 1) * hs + d;
    uint16_t *h = malloc((size_t)span * 2);
    const uint16_t nan_bits = t == FAI_DTYPE_BF16 ? 0x7fc0u : HALF_NAN;
    for (int64_t i = 0; i < span; i++)
        h[i] = nan_bits;
    if (x)
        for (int r = 0; r < rows; r++)
            for (int hh = 0; hh < heads; hh++)
                for (int e = 0; e < d; e++) {
                    const float v = x[((int64_t)r * heads + hh) * d + e];
                    h[r * ts + hh * hs + e] = isnan(v) ? nan_bits : to_bits(t, v);
                }
    void *dev;
    CUDA_CHECK(cudaMalloc(&dev, (size_t)span * 2));
    CUDA_CHECK(cudaMemcpy(dev, h, (size_t)span * 2, cudaMemcpyHostToDevice));
    free(h);
    if (bytes_out)
        *bytes_out = (size_t)span * 2;
    return dev;
}

static void download(fai_dtype t, float *x, const void *dev, int rows, int heads, int d, int64_t ts, int64_t hs)
{
    const int64_t span = (int64_t)(rows - 1) * ts + (int64_t)(heads - 1) * hs + d;
    uint16_t *h = malloc((size_t)span * 2);
    CUDA_CHECK(cudaMemcpy(h, dev, (size_t)span * 2, cudaMemcpyDeviceToHost));
    for (int r = 0; r < rows; r++)
        for (int hh = 0; hh < heads; hh++)
            for (int e = 0; e < d; e++)
                x[((int64_t)r * heads + hh) * d + e] = from_bits(t, h[r * ts + hh * hs + e]);
    free(h);
}

/* The parts of a union case: each part's reference output and LSE over its keys, rounded as
 * the kernels write them; and the reference over the union of the parts not marked empty,
 * per row (rows grouped by their mask). */
static void make_union_parts(const merge_case *c, fai_ref_rng *rng, float **po, float **plse, double *ref_o,
                             double *ref_lse)
{
    const int rows = c->rows, H = c->heads, d = c->d, P = c->parts;
    int keys = 0, off[FAI_MERGE_MAX_PARTS + 1];
    for (int p = 0; p < P; p++) {
        off[p] = keys;
        keys += c->split[p];
    }
    off[P] = keys;
    const int64_t qn = (int64_t)rows * H * d, kn = (int64_t)(keys > 0 ? keys : 1) * H * d;
    float *q = malloc(sizeof(float) * (size_t)qn), *k = malloc(sizeof(float) * (size_t)kn);
    float *v = malloc(sizeof(float) * (size_t)kn);
    fai_ref_fill_normal(rng, q, qn, 3.0); /* logits of standard deviation 3: parts' LSEs differ */
    fai_ref_fill_normal(rng, k, kn, 1.0);
    fai_ref_fill_normal(rng, v, kn, 1.0);
    for (int64_t i = 0; i < qn; i++)
        q[i] = round_to(c->dtype, q[i]);
    for (int64_t i = 0; i < kn; i++)
        k[i] = round_to(c->dtype, k[i]), v[i] = round_to(c->dtype, v[i]);
    fai_ref_problem pr;
    memset(&pr, 0, sizeof pr);
    pr.num_q_heads = pr.num_kv_heads = H;
    pr.head_dim = d;
    pr.softmax_scale = 1.0 / sqrt((double)d);
    double *o = malloc(sizeof(double) * (size_t)qn), *l = malloc(sizeof(double) * (size_t)rows * H);
    for (int p = 0; p < P; p++) {
        pr.seq_q = rows;
        pr.seq_k = c->split[p];
        if (fai_ref_attention(&pr, q, k + (int64_t)off[p] * H * d, v + (int64_t)off[p] * H * d, o, l) != 0) {
            fprintf(stderr, "reference failed\n");
            exit(2);
        }
        for (int64_t i = 0; i < qn; i++)
            po[p][i] = (float)o[i];
        for (int64_t i = 0; i < (int64_t)rows * H; i++)
            plse[p][i] = (float)l[i];
    }
    /* The union per distinct mask (a few: mask 0, one part, all, all but the last). */
    int *mask = malloc(sizeof(int) * (size_t)rows), *done = calloc((size_t)rows, sizeof(int));
    for (int r = 0; r < rows; r++) {
        mask[r] = 0;
        for (int p = 0; p < P; p++)
            mask[r] |= masked_part(c, r, p) << p;
    }
    float *qs = malloc(sizeof(float) * (size_t)qn), *ku = malloc(sizeof(float) * (size_t)kn);
    float *vu = malloc(sizeof(float) * (size_t)kn);
    int *which = malloc(sizeof(int) * (size_t)rows);
    for (int r0 = 0; r0 < rows; r0++) {
        if (done[r0])
            continue;
        int n = 0, nk = 0;
        for (int r = r0; r < rows; r++)
            if (!done[r] && mask[r] == mask[r0]) {
                done[r] = 1;
                memcpy(qs + (int64_t)n * H * d, q + (int64_t)r * H * d, sizeof(float) * (size_t)H * d);
                which[n++] = r;
            }
        for (int p = 0; p < P; p++) {
            if (mask[r0] >> p & 1)
                continue;
            memcpy(ku + (int64_t)nk * H * d, k + (int64_t)off[p] * H * d, sizeof(float) * (size_t)c->split[p] * H * d);
            memcpy(vu + (int64_t)nk * H * d, v + (int64_t)off[p] * H * d, sizeof(float) * (size_t)c->split[p] * H * d);
            nk += c->split[p];
        }
        pr.seq_q = n;
        pr.seq_k = nk;
        if (fai_ref_attention(&pr, qs, ku, vu, o, l) != 0) {
            fprintf(stderr, "reference failed\n");
            exit(2);
        }
        for (int i = 0; i < n; i++) {
            memcpy(ref_o + (int64_t)which[i] * H * d, o + (int64_t)i * H * d, sizeof(double) * (size_t)H * d);
            memcpy(ref_lse + (int64_t)which[i] * H, l + (int64_t)i * H, sizeof(double) * (size_t)H);
        }
    }
    free(q), free(k), free(v), free(o), free(l), free(mask), free(done), free(qs), free(ku), free(vu), free(which);
}

static void make_synthetic_parts(const merge_case *c, fai_ref_rng *rng, float **po, float **plse)
{
    const int64_t n = (int64_t)c->rows * c->heads * c->d, nl = (int64_t)c->rows * c->heads;
    for (int p = 0; p < c->parts; p++) {
        fai_ref_fill_normal(rng, po[p], n, 1.0);
        for (int64_t i = 0; i < nl; i++)
            plse[p][i] = (float)(c->offset + c->spread * (2.0 * fai_ref_rng_uniform(rng) - 1.0));
    }
}

/* The merge of exactly these parts, in double (x, xl), and each (row, head)'s largest
 * contributing |O| (rowmax). */
static void merge_in_double(int parts, int64_t nl, int d, float *const *po, float *const *plse, double *x,
                            double *xl, double *rowmax)
{
    for (int64_t i = 0; i < nl; i++) {
        double m = -INFINITY;
        for (int p = 0; p < parts; p++)
            m = fmax(m, (double)plse[p][i]);
        double s = 0.0, big = 0.0;
        for (int e = 0; e < d; e++)
            x[i * d + e] = 0.0;
        if (m != -INFINITY)
            for (int p = 0; p < parts; p++) {
                const double w = exp((double)plse[p][i] - m);
                if (w == 0.0)
                    continue;
                s += w;
                for (int e = 0; e < d; e++) {
                    x[i * d + e] += w * po[p][i * d + e];
                    big = fmax(big, fabs(po[p][i * d + e]));
                }
            }
        for (int e = 0; e < d && s > 0.0; e++)
            x[i * d + e] /= s;
        xl[i] = s > 0.0 ? m + log(s) : -INFINITY;
        rowmax[i] = big;
    }
}

/* The merge's output against merge_in_double's, every element: within one unit in the last
 * place plus 1e-5 of the row's largest contributing value, exact zeros where nothing
 * contributes; the LSE (out_lse NULL: not checked) within 1e-5 + 1e-6 |lse|. Prints the
 * first failures; returns their number and the worst error / bound ratios. */
static int check_merge(fai_dtype t, int64_t nl, int H, int d, const float *out, const float *out_lse,
                       const double *x, const double *xl, const double *rowmax, double *worst, double *worst_lse)
{
    int bad = 0;
    *worst = 0.0, *worst_lse = 0.0;
    for (int64_t i = 0; i < nl && bad < 5; i++) {
        for (int e = 0; e < d; e++) {
            const double want = x[i * d + e], got = out[i * d + e];
            const double bound = ulp_of(t, want) + 1e-5 * rowmax[i];
            const double err = fabs(got - want);
            if (!(err <= bound) || (rowmax[i] == 0.0 && !(got == 0.0))) {
                if (bad++ < 5)
                    printf("    row %lld head %lld dim %d: got %.8g, want %.8g (bound %.3g)\n",
                           (long long)(i / H), (long long)(i % H), e, got, want, bound);
            }
            *worst = fmax(*worst, err / bound);
        }
        if (out_lse) {
            const double want = xl[i], got = out_lse[i];
            const int ok = want == -INFINITY ? got == -INFINITY : fabs(got - want) <= 1e-5 + 1e-6 * fabs(want);
            if (!ok && bad++ < 5)
                printf("    row %lld head %lld: lse %.9g, want %.9g\n", (long long)(i / H), (long long)(i % H), got,
                       want);
            if (want != -INFINITY)
                *worst_lse = fmax(*worst_lse, fabs(got - want) / (1e-5 + 1e-6 * fabs(want)));
        }
    }
    return bad;
}

/* The output against the reference over the union of the keys: rel L2 within the dtype's
 * bound, the LSE (out_lse NULL: not checked) within lse_abs + lse_rel |lse| and -inf exactly
 * where the reference's is. Returns the number of failures; *rel and *lse_err get the
 * measures. */
static int check_union(fai_dtype t, int64_t nl, int H, int d, const float *out, const float *out_lse,
                       const double *ref_o, const double *ref_lse, double lse_abs, double lse_rel, double *rel,
                       double *lse_err)
{
    int bad = 0;
    const double rel_bound = t == FAI_DTYPE_BF16 ? 1.6e-2 : 2e-3;
    *rel = fai_ref_rel_l2(out, ref_o, nl * d);
    *lse_err = 0.0;
    if (!(*rel <= rel_bound)) {
        printf("    rel L2 against the union reference %.3g > %.3g\n", *rel, rel_bound);
        bad++;
    }
    for (int64_t i = 0; i < nl && out_lse; i++) {
        const double want = ref_lse[i], got = out_lse[i];
        const int ok = want == -INFINITY ? got == -INFINITY : fabs(got - want) <= lse_abs + lse_rel * fabs(want);
        if (!ok) {
            if (bad++ < 5)
                printf("    row %lld head %lld: lse %.9g, union reference %.9g\n", (long long)(i / H),
                       (long long)(i % H), got, want);
        } else if (want != -INFINITY) {
            *lse_err = fmax(*lse_err, fabs(got - want));
        }
    }
    return bad;
}

/* The merge of nparts parts into o (and lse) through either public entry point: the pair
 * form (fai_merge_state, nparts == 2) or fai_merge_states. */
static fai_status merge_parts(int pair, int nparts, int rows, int heads, int d, const fai_tensor *parts,
                              const float *const *lses, fai_tensor o, float *lse, cudaStream_t stream)
{
    if (pair)
        return fai_merge_state(rows, heads, d, parts[0], lses[0], parts[1], lses[1], o, lse, stream);
    fai_merge_params mp = fai_merge_params_default();
    mp.num_parts = nparts;
    mp.num_rows = rows;
    mp.num_heads = heads;
    mp.head_dim = d;
    mp.parts = parts;
    mp.parts_lse = lses;
    mp.o = o;
    mp.lse = lse;
    return fai_merge_states(&mp, stream);
}

static int run_case(const merge_case *c, int index)
{
    const int rows = c->rows, H = c->heads, d = c->d, P = c->parts;
    const int64_t n = (int64_t)rows * H * d, nl = (int64_t)rows * H;
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, g_seed * 1000003u + (uint64_t)index);
    float *po[FAI_MERGE_MAX_PARTS], *plse[FAI_MERGE_MAX_PARTS];
    for (int p = 0; p < P; p++) {
        po[p] = malloc(sizeof(float) * (size_t)n);
        plse[p] = malloc(sizeof(float) * (size_t)nl);
    }
    double *ref_o = NULL, *ref_lse = NULL;
    if (c->split) {
        ref_o = malloc(sizeof(double) * (size_t)n);
        ref_lse = malloc(sizeof(double) * (size_t)nl);
        make_union_parts(c, &rng, po, plse, ref_o, ref_lse);
    } else {
        make_synthetic_parts(c, &rng, po, plse);
    }
    /* What the GPU sees: parts rounded to the dtype; marked parts -inf with NaN rows. */
    for (int p = 0; p < P; p++)
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < H; h++) {
                float *row = po[p] + ((int64_t)r * H + h) * d;
                const int gone = masked_part(c, r, p);
                if (gone)
                    plse[p][(int64_t)r * H + h] = -INFINITY;
                for (int e = 0; e < d; e++)
                    row[e] = gone ? NAN : round_to(c->dtype, row[e]);
            }

    /* The merge of exactly these inputs, in double, and each row's largest contributing |O|. */
    double *x = malloc(sizeof(double) * (size_t)n), *xl = malloc(sizeof(double) * (size_t)nl);
    double *rowmax = malloc(sizeof(double) * (size_t)nl);
    merge_in_double(P, nl, d, po, plse, x, xl, rowmax);

    /* Device buffers. */
    int64_t pts = (int64_t)H * d, phs = d, ots = (int64_t)H * d, ohs = d;
    if (c->strided) {
        pts = (int64_t)H * (d + 8), phs = d + 8; /* padded rows */
        ots = d, ohs = (int64_t)rows * d;        /* head-major output */
    }
    void *dpo[FAI_MERGE_MAX_PARTS];
    float *dpl[FAI_MERGE_MAX_PARTS];
    fai_tensor parts[FAI_MERGE_MAX_PARTS];
    const float *lses[FAI_MERGE_MAX_PARTS];
    for (int p = 0; p < P; p++) {
        /* the in-place part has o's layout */
        const int64_t ts = c->in_place && p == 0 ? ots : pts, hs = c->in_place && p == 0 ? ohs : phs;
        dpo[p] = upload(c->dtype, po[p], rows, H, d, ts, hs, NULL);
        parts[p] = (fai_tensor){dpo[p], c->dtype, ts, hs};
        CUDA_CHECK(cudaMalloc((void **)&dpl[p], sizeof(float) * (size_t)nl));
        CUDA_CHECK(cudaMemcpy(dpl[p], plse[p], sizeof(float) * (size_t)nl, cudaMemcpyHostToDevice));
        lses[p] = dpl[p];
    }
    void *dout = c->in_place ? dpo[0] : upload(c->dtype, NULL, rows, H, d, ots, ohs, NULL); /* NaN-poisoned */
    float *dlse = NULL;
    if (!c->no_lse) {
        if (c->in_place) {
            dlse = dpl[0];
        } else {
            CUDA_CHECK(cudaMalloc((void **)&dlse, sizeof(float) * (size_t)nl));
            CUDA_CHECK(cudaMemset(dlse, 0xff, sizeof(float) * (size_t)nl)); /* NaN */
        }
    }
    const fai_tensor o = {dout, c->dtype, ots, ohs};
    /* the legacy-stream memsets and uploads must land before work on the non-blocking stream */
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const fai_status s = merge_parts(c->pair, P, rows, H, d, parts, lses, o, dlse, stream);
    if (s != FAI_SUCCESS) {
        printf("%-58s FAIL: %s: %s\n", c->name, fai_status_string(s), fai_last_error());
        return 1;
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaStreamDestroy(stream));

    float *out = malloc(sizeof(float) * (size_t)n), *out_lse = malloc(sizeof(float) * (size_t)nl);
    download(c->dtype, out, dout, rows, H, d, ots, ohs);
    if (dlse)
        CUDA_CHECK(cudaMemcpy(out_lse, dlse, sizeof(float) * (size_t)nl, cudaMemcpyDeviceToHost));

    const float *got_lse = dlse ? out_lse : NULL;
    double worst, worst_lse, rel = 0.0, lse_err = 0.0;
    int bad = check_merge(c->dtype, nl, H, d, out, got_lse, x, xl, rowmax, &worst, &worst_lse);
    if (ref_o)
        bad += check_union(c->dtype, nl, H, d, out, got_lse, ref_o, ref_lse, 1e-5, 1e-6, &rel, &lse_err);
    printf("%-58s %s  err/bound %.3f, lse err/bound %.3f", c->name, bad ? "FAIL" : "ok", worst, worst_lse);
    if (ref_o)
        printf(", union rel L2 %.2e, lse err %.2e", rel, lse_err);
    printf("\n");

    for (int p = 0; p < P; p++) {
        free(po[p]), free(plse[p]);
        CUDA_CHECK(cudaFree(dpo[p]));
        CUDA_CHECK(cudaFree(dpl[p]));
    }
    if (!c->in_place) {
        CUDA_CHECK(cudaFree(dout));
        if (dlse)
            CUDA_CHECK(cudaFree(dlse));
    }
    free(ref_o), free(ref_lse), free(x), free(xl), free(rowmax), free(out), free(out_lse);
    return bad ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * End-to-end cascades: the parts come from fai_prefill / fai_decode on the GPU.
 * ------------------------------------------------------------------------------------- */
enum { SINK_NONE = 0, SINK_PREFIX = 1, SINK_SUFFIX = 2 };
#define CASCADE_MAX_BATCH 8

typedef struct cascade_case {
    const char *name;
    int decode;             /* 0: the parts from fai_prefill, 1: from fai_decode */
    int batch, hq, hk, d;
    fai_dtype dtype;
    int prefix;             /* keys of the shared prefix (> 0) */
    const int *q_lens;      /* prefill: queries of each sequence, at most its suffix keys (the
                               queries are its last tokens, so every row sees the whole prefix) */
    const int *suffix;      /* keys of each sequence's own suffix (0: none) */
    const int *prefix_lens; /* decode: the prefix keys each sequence shares, its first ones (0:
                               none, its prefix part sees no key); NULL: all of them */
    int page_size;          /* decode: the prefix cache's page size; every sequence's page table
                               row lists the same pages */
    int sinks;              /* SINK_*: the one part computed with attn.sinks */
    float softcap;          /* in both parts and the reference; 0: off */
    float q_std;            /* standard deviation of Q (logit scale); K and V are N(0, 1) */
    int pair;               /* merge through fai_merge_state instead of fai_merge_states */
} cascade_case;

/* Normal values rounded to the dtype (what the GPU sees and the reference takes exactly). */
static float *fill_rounded(fai_ref_rng *rng, fai_dtype t, int64_t n, double stddev)
{
    float *x = malloc(sizeof(float) * (size_t)(n + 1));
    fai_ref_fill_normal(rng, x, n, stddev);
    for (int64_t i = 0; i < n; i++)
        x[i] = round_to(t, x[i]);
    return x;
}

/* Keys a part's row sees: the prefix part's (decode: the sequence's share of the prefix),
 * or the suffix part's under the bottom-right causal mask (decode: all of the suffix). */
static int part_keys(const cascade_case *c, int part, int b, int i)
{
    if (part == 0)
        return c->decode && c->prefix_lens ? c->prefix_lens[b] : c->prefix;
    if (c->decode)
        return c->suffix[b];
    const int n = i + c->suffix[b] - c->q_lens[b] + 1;
    return n < 0 ? 0 : n > c->suffix[b] ? c->suffix[b] : n;
}

/* Launches the two parts (prefix, suffix) of case c on the stream; returns the status of the
 * first failing call (*what names it). */
static fai_status run_parts(const cascade_case *c, const fai_attention *attn, void *dq, void *const *dout,
                            float *const *dlse, void *const *dk, void *const *dv, const int32_t *cu,
                            const int32_t *dcu, const int32_t *dlens, const int32_t *dtable, int rows, int keys,
                            int cap, void **ws, cudaStream_t stream, const char **what)
{
    const int B = c->batch, hq = c->hq, hk = c->hk, d = c->d;
    const fai_dtype t = c->dtype;
    const int64_t qrow = (int64_t)hq * d, krow = (int64_t)hk * d;
    fai_prefill_params pp[2];
    fai_decode_params dp[2];
    size_t bytes[2] = {0, 0};
    fai_status s = FAI_SUCCESS;
    for (int p = 0; p < 2 && s == FAI_SUCCESS; p++) {
        if (!c->decode) {
            /* Prefix: every query of the batch as one sequence over the P prefix keys, not
             * causal. Suffix: each sequence's queries over its own keys, causal. */
            fai_prefill_params *x = &pp[p];
            *x = fai_prefill_params_default();
            x->attn = attn[p];
            x->batch = p == 0 ? 1 : B;
            x->causal = p == 1;
            x->q = (fai_tensor){dq, t, qrow, d};
            x->k = (fai_tensor){dk[p], t, krow, d};
            x->v = (fai_tensor){dv[p], t, krow, d};
            x->o = (fai_tensor){dout[p], t, qrow, d};
            x->cu_seqlens_q = p == 0 ? dcu : dcu + 4;
            x->cu_seqlens_k = p == 0 ? dcu + 2 : dcu + 5 + B;
            x->cu_seqlens_q_host = p == 0 ? cu : cu + 4;
            x->total_q = rows;
            x->total_k = p == 0 ? c->prefix : keys;
            x->max_seq_q = p == 0 ? rows : 1;
            for (int b = 0; p == 1 && b < B; b++)
                x->max_seq_q = c->q_lens[b] > x->max_seq_q ? c->q_lens[b] : x->max_seq_q;
            x->lse = dlse[p];
            s = fai_prefill_workspace_size(x, &bytes[p]);
        } else {
            /* Prefix: a paged cache whose table rows all list the same pages. Suffix: a
             * contiguous cache of one slot per sequence. */
            fai_decode_params *x = &dp[p];
            *x = fai_decode_params_default();
            x->attn = attn[p];
            x->batch = B;
            x->q = (fai_tensor){dq, t, qrow, d};
            x->o = (fai_tensor){dout[p], t, qrow, d};
            x->lse = dlse[p];
            fai_kv_cache *kc = &x->cache;
            kc->dtype = t;
            kc->k = dk[p];
            kc->v = dv[p];
            kc->token_stride = krow;
            kc->head_stride = d;
            kc->seq_lens = dlens + p * B;
            if (p == 0) {
                const int pages = (c->prefix + c->page_size - 1) / c->page_size;
                kc->seq_stride = (int64_t)c->page_size * krow;
                kc->capacity = c->prefix;
                kc->max_seq_len = c->prefix;
                kc->page_table = dtable;
                kc->page_table_stride = pages;
                kc->page_size = c->page_size;
                kc->num_pages = pages + 1; /* and a spare page, never listed */
            } else {
                kc->seq_stride = (int64_t)cap * krow;
                kc->capacity = cap;
            }
            s = fai_decode_workspace_size(x, &bytes[p]);
        }
        *what = c->decode ? "fai_decode_workspace_size" : "fai_prefill_workspace_size";
    }
    if (s != FAI_SUCCESS)
        return s;
    /* One workspace for both calls (they run one after the other), poisoned, reused dirty. */
    const size_t need = bytes[0] > bytes[1] ? bytes[0] : bytes[1];
    if (need > 0) {
        CUDA_CHECK(cudaMalloc(ws, need));
        CUDA_CHECK(cudaMemset(*ws, 0xff, need));
    }
    CUDA_CHECK(cudaDeviceSynchronize()); /* legacy-stream poison and uploads before the stream's work */
    for (int p = 0; p < 2 && s == FAI_SUCCESS; p++) {
        *what = c->decode ? (p ? "fai_decode (suffix)" : "fai_decode (prefix)")
                          : (p ? "fai_prefill (suffix)" : "fai_prefill (prefix)");
        s = c->decode ? fai_decode(&dp[p], *ws, need, stream) : fai_prefill(&pp[p], *ws, need, stream);
    }
    return s;
}

/* The parts as written, row by row: a row that sees no key in its part must be exact zeros
 * with an LSE of -inf, or of the sink's logit where that part carries the sink (fai.h); every
 * other row finite. Returns the number of failures (the first few printed). */
static int check_parts(const cascade_case *c, const int *row_seq, const int *row_i, int rows, float *const *po,
                       float *const *plse, const double *sinks)
{
    const int hq = c->hq, d = c->d;
    int bad = 0;
    for (int p = 0; p < 2; p++) {
        const int sunk = c->sinks == (p == 0 ? SINK_PREFIX : SINK_SUFFIX);
        for (int r = 0; r < rows; r++) {
            const int empty = part_keys(c, p, row_seq[r], row_i[r]) == 0;
            for (int h = 0; h < hq; h++) {
                const float *o = po[p] + ((int64_t)r * hq + h) * d;
                const float l = plse[p][(int64_t)r * hq + h];
                int ok = empty ? (sunk ? fabs((double)l - sinks[h]) <= 1e-3 + 1e-4 * fabs(sinks[h])
                                       : isinf(l) && l < 0)
                               : isfinite(l);
                for (int e = 0; e < d; e++)
                    ok &= empty ? o[e] == 0.0f : isfinite(o[e]);
                if (!ok && bad++ < 5)
                    printf("    %s part, row %d head %d (%s): lse %.9g%s, o[0] %.8g\n", p ? "suffix" : "prefix", r,
                           h, empty ? "no key" : "keys", l, empty && sunk ? " (want the sink)" : "", o[0]);
            }
        }
    }
    return bad;
}

/* One cascade: the parts on the GPU, then merged out of place and in place (into the suffix
 * part), each merge checked against the merge of the parts in double and against the
 * reference over the union of the keys. Returns the number of failed merges. */
static int run_cascade(const cascade_case *c, int index)
{
    const int B = c->batch, hq = c->hq, hk = c->hk, d = c->d, P = c->prefix;
    const fai_dtype t = c->dtype;
    const int64_t qrow = (int64_t)hq * d, krow = (int64_t)hk * d;
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, g_seed * 1000003u + (uint64_t)index);

    /* Rows: prefill packs every sequence's queries (cu[4 ..]), decode has one per sequence;
     * the suffix keys are packed the same way (cu[5 + B ..]). cu[0 .. 3]: the prefix part's
     * one sequence, all rows over P keys. */
    int32_t cu[2 * CASCADE_MAX_BATCH + 6];
    int rows = 0, keys = 0, longest = 0, plen[CASCADE_MAX_BATCH];
    if (B < 1 || B > CASCADE_MAX_BATCH) {
        printf("test bug: %s: batch %d not in [1, %d]\n", c->name, B, CASCADE_MAX_BATCH);
        exit(2);
    }
    for (int b = 0; b < B; b++) {
        cu[4 + b] = rows, cu[5 + B + b] = keys;
        rows += c->decode ? 1 : c->q_lens[b];
        keys += c->suffix[b];
        longest = c->suffix[b] > longest ? c->suffix[b] : longest;
        plen[b] = part_keys(c, 0, b, 0);
        if (!c->decode && c->q_lens[b] > c->suffix[b]) {
            printf("test bug: %s: sequence %d has more queries than suffix keys\n", c->name, b);
            exit(2);
        }
    }
    cu[4 + B] = rows, cu[5 + 2 * B] = keys;
    cu[0] = 0, cu[1] = rows, cu[2] = 0, cu[3] = P;
    if (rows == 0 || P <= 0 || keys == 0) {
        printf("test bug: %s: no rows, no prefix or no suffix keys\n", c->name);
        exit(2);
    }
    int *row_seq = malloc(sizeof(int) * (size_t)rows), *row_i = malloc(sizeof(int) * (size_t)rows);
    for (int b = 0; b < B; b++)
        for (int r = cu[4 + b]; r < cu[5 + b]; r++)
            row_seq[r] = b, row_i[r] = r - cu[4 + b];

    /* Fresh inputs, rounded to the dtype; sinks in [0, 10], around the parts' LSEs (about the
     * log of their keys), so that a sink counted twice or not at all moves every row. */
    const int64_t n = rows * qrow, nl = (int64_t)rows * hq;
    float *q = fill_rounded(&rng, t, n, c->q_std > 0.0f ? c->q_std : 1.0);
    float *pk = fill_rounded(&rng, t, P * krow, 1.0), *pv = fill_rounded(&rng, t, P * krow, 1.0);
    float *sk = fill_rounded(&rng, t, keys * krow, 1.0), *sv = fill_rounded(&rng, t, keys * krow, 1.0);
    double *sinks = malloc(sizeof(double) * (size_t)hq);
    float *fsinks = malloc(sizeof(float) * (size_t)hq);
    for (int h = 0; h < hq; h++)
        sinks[h] = fsinks[h] = (float)(10.0 * fai_ref_rng_uniform(&rng));

    /* Device inputs. Prefill: K/V as packed rows. Decode: the prefix in pages of a pool in
     * shuffled order (one spare), the suffixes in slots of `cap` tokens; every cache element
     * past the valid keys NaN. */
    void *dq = upload(t, q, rows, hq, d, qrow, d, NULL), *dk[2], *dv[2];
    int32_t *dcu = NULL, *dlens = NULL, *dtable = NULL;
    const int cap = longest + 3;
    if (!c->decode) {
        dk[0] = upload(t, pk, P, hk, d, krow, d, NULL), dv[0] = upload(t, pv, P, hk, d, krow, d, NULL);
        dk[1] = upload(t, sk, keys, hk, d, krow, d, NULL), dv[1] = upload(t, sv, keys, hk, d, krow, d, NULL);
        CUDA_CHECK(cudaMalloc((void **)&dcu, sizeof cu));
        CUDA_CHECK(cudaMemcpy(dcu, cu, sizeof cu, cudaMemcpyHostToDevice));
    } else {
        const int ps = c->page_size, pages = (P + ps - 1) / ps;
        int32_t *table = malloc(sizeof(int32_t) * (size_t)(B * pages + pages + 1)), *perm = table + B * pages;
        for (int i = 0; i <= pages; i++)
            perm[i] = i;
        for (int i = pages; i > 0; i--) {
            const int j = (int)(fai_ref_rng_uniform(&rng) * (i + 1)) % (i + 1);
            const int32_t x = perm[i];
            perm[i] = perm[j], perm[j] = x;
        }
        for (int b = 0; b < B; b++)
            memcpy(table + b * pages, perm, sizeof(int32_t) * (size_t)pages);
        const int64_t pool = (int64_t)(pages + 1) * ps * krow, slots = (int64_t)B * cap * krow;
        float *ck = malloc(sizeof(float) * (size_t)(pool > slots ? pool : slots));
        float *cv = malloc(sizeof(float) * (size_t)(pool > slots ? pool : slots));
        for (int kv = 0; kv < 2; kv++) {
            float *x = kv ? cv : ck;
            for (int64_t i = 0; i < pool; i++)
                x[i] = NAN;
            for (int j = 0; j < P; j++)
                memcpy(x + ((int64_t)perm[j / ps] * ps + j % ps) * krow, (kv ? pv : pk) + j * krow,
                       sizeof(float) * (size_t)krow);
        }
        dk[0] = upload(t, ck, (pages + 1) * ps, hk, d, krow, d, NULL);
        dv[0] = upload(t, cv, (pages + 1) * ps, hk, d, krow, d, NULL);
        for (int kv = 0; kv < 2; kv++) {
            float *x = kv ? cv : ck;
            for (int64_t i = 0; i < slots; i++)
                x[i] = NAN;
            for (int b = 0; b < B; b++)
                memcpy(x + (int64_t)b * cap * krow, (kv ? sv : sk) + (int64_t)cu[5 + B + b] * krow,
                       sizeof(float) * (size_t)(c->suffix[b] * krow));
        }
        dk[1] = upload(t, ck, B * cap, hk, d, krow, d, NULL);
        dv[1] = upload(t, cv, B * cap, hk, d, krow, d, NULL);
        free(ck), free(cv);
        int32_t lens[2 * CASCADE_MAX_BATCH];
        for (int b = 0; b < B; b++)
            lens[b] = plen[b], lens[B + b] = c->suffix[b];
        CUDA_CHECK(cudaMalloc((void **)&dlens, sizeof(int32_t) * (size_t)(2 * B)));
        CUDA_CHECK(cudaMemcpy(dlens, lens, sizeof(int32_t) * (size_t)(2 * B), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMalloc((void **)&dtable, sizeof(int32_t) * (size_t)(B * pages)));
        CUDA_CHECK(cudaMemcpy(dtable, table, sizeof(int32_t) * (size_t)(B * pages), cudaMemcpyHostToDevice));
        free(table);
    }
    float *dsinks = NULL;
    CUDA_CHECK(cudaMalloc((void **)&dsinks, sizeof(float) * (size_t)hq));
    CUDA_CHECK(cudaMemcpy(dsinks, fsinks, sizeof(float) * (size_t)hq, cudaMemcpyHostToDevice));
    fai_attention attn[2];
    for (int p = 0; p < 2; p++) {
        attn[p] = fai_attention_default();
        attn[p].num_q_heads = hq;
        attn[p].num_kv_heads = hk;
        attn[p].head_dim = d;
        attn[p].softmax_scale = 1.0f / sqrtf((float)d);
        attn[p].softcap = c->softcap;
        attn[p].sinks = c->sinks == (p == 0 ? SINK_PREFIX : SINK_SUFFIX) ? dsinks : NULL;
    }
    /* The parts' outputs, NaN before the calls. */
    void *dout[2];
    float *dlse[2];
    for (int p = 0; p < 2; p++) {
        dout[p] = upload(t, NULL, rows, hq, d, qrow, d, NULL);
        CUDA_CHECK(cudaMalloc((void **)&dlse[p], sizeof(float) * (size_t)nl));
        CUDA_CHECK(cudaMemset(dlse[p], 0xff, sizeof(float) * (size_t)nl));
    }
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    void *ws = NULL;
    const char *what = "";
    fai_status s = run_parts(c, attn, dq, dout, dlse, dk, dv, cu, dcu, dlens, dtable, rows, keys, cap, &ws, stream,
                             &what);
    if (s != FAI_SUCCESS) {
        printf("%-58s FAIL: %s: %s: %s\n", c->name, what, fai_status_string(s), fai_last_error());
        return 2;
    }
    CUDA_CHECK(cudaStreamSynchronize(stream));
    CUDA_CHECK(cudaGetLastError());

    /* The parts as the kernels wrote them (before the in-place merge overwrites one). */
    float *po[2], *plse[2];
    for (int p = 0; p < 2; p++) {
        po[p] = malloc(sizeof(float) * (size_t)n);
        plse[p] = malloc(sizeof(float) * (size_t)nl);
        download(t, po[p], dout[p], rows, hq, d, qrow, d);
        CUDA_CHECK(cudaMemcpy(plse[p], dlse[p], sizeof(float) * (size_t)nl, cudaMemcpyDeviceToHost));
    }
    const int parts_bad = check_parts(c, row_seq, row_i, rows, po, plse, sinks);
    double *x = malloc(sizeof(double) * (size_t)n), *xl = malloc(sizeof(double) * (size_t)nl);
    double *rowmax = malloc(sizeof(double) * (size_t)nl);
    merge_in_double(2, nl, d, po, plse, x, xl, rowmax);

    /* The reference over the union: each sequence's share of the prefix, then its suffix,
     * causal (bottom-right: the queries are the last tokens), the sink once. */
    double *ref_o = malloc(sizeof(double) * (size_t)n), *ref_lse = malloc(sizeof(double) * (size_t)nl);
    float *ku = malloc(sizeof(float) * (size_t)((P + longest) * krow + 1));
    float *vu = malloc(sizeof(float) * (size_t)((P + longest) * krow + 1));
    fai_ref_problem pr;
    memset(&pr, 0, sizeof pr);
    pr.num_q_heads = hq;
    pr.num_kv_heads = hk;
    pr.head_dim = d;
    pr.softmax_scale = 1.0f / sqrtf((float)d); /* the very scale the kernels get */
    pr.causal = 1;
    pr.softcap = c->softcap;
    pr.sinks = c->sinks ? sinks : NULL;
    for (int b = 0; b < B; b++) {
        const int nk = plen[b] + c->suffix[b], r0 = cu[4 + b];
        memcpy(ku, pk, sizeof(float) * (size_t)(plen[b] * krow));
        memcpy(vu, pv, sizeof(float) * (size_t)(plen[b] * krow));
        memcpy(ku + plen[b] * krow, sk + (int64_t)cu[5 + B + b] * krow, sizeof(float) * (size_t)(c->suffix[b] * krow));
        memcpy(vu + plen[b] * krow, sv + (int64_t)cu[5 + B + b] * krow, sizeof(float) * (size_t)(c->suffix[b] * krow));
        pr.seq_q = cu[5 + b] - r0;
        pr.seq_k = nk;
        if (fai_ref_attention(&pr, q + r0 * qrow, ku, vu, ref_o + r0 * qrow, ref_lse + (int64_t)r0 * hq) != 0) {
            fprintf(stderr, "reference failed\n");
            exit(2);
        }
    }

    /* Out of place into a NaN-poisoned o and lse, then in place into the suffix part. */
    int fails = 0;
    float *out = malloc(sizeof(float) * (size_t)n), *out_lse = malloc(sizeof(float) * (size_t)nl);
    for (int in_place = 0; in_place < 2; in_place++) {
        const fai_tensor parts[2] = {{dout[0], t, qrow, d}, {dout[1], t, qrow, d}};
        const float *lses[2] = {dlse[0], dlse[1]};
        void *mo = dout[1];
        float *ml = dlse[1];
        if (!in_place) {
            mo = upload(t, NULL, rows, hq, d, qrow, d, NULL);
            CUDA_CHECK(cudaMalloc((void **)&ml, sizeof(float) * (size_t)nl));
            CUDA_CHECK(cudaMemset(ml, 0xff, sizeof(float) * (size_t)nl));
            CUDA_CHECK(cudaDeviceSynchronize());
        }
        const fai_tensor o = {mo, t, qrow, d};
        s = merge_parts(c->pair, 2, rows, hq, d, parts, lses, o, ml, stream);
        char label[160];
        snprintf(label, sizeof label, "%s, %s", c->name, in_place ? "in place" : "out of place");
        if (s != FAI_SUCCESS) {
            printf("%-58s FAIL: %s: %s\n", label, fai_status_string(s), fai_last_error());
            fails++;
            continue;
        }
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaGetLastError());
        download(t, out, mo, rows, hq, d, qrow, d);
        CUDA_CHECK(cudaMemcpy(out_lse, ml, sizeof(float) * (size_t)nl, cudaMemcpyDeviceToHost));
        /* The union's LSE carries the parts' kernel error: test_prefill's LSE bound. */
        double worst, worst_lse, rel, lse_err;
        int bad = in_place ? 0 : parts_bad;
        bad += check_merge(t, nl, hq, d, out, out_lse, x, xl, rowmax, &worst, &worst_lse);
        bad += check_union(t, nl, hq, d, out, out_lse, ref_o, ref_lse, 1e-3, 1e-4, &rel, &lse_err);
        printf("%-58s %s  err/bound %.3f, lse err/bound %.3f, union rel L2 %.2e, lse err %.2e\n", label,
               bad ? "FAIL" : "ok", worst, worst_lse, rel, lse_err);
        fails += bad != 0;
        if (!in_place) {
            CUDA_CHECK(cudaFree(mo));
            CUDA_CHECK(cudaFree(ml));
        }
    }
    CUDA_CHECK(cudaStreamDestroy(stream));

    for (int p = 0; p < 2; p++) {
        CUDA_CHECK(cudaFree(dk[p]));
        CUDA_CHECK(cudaFree(dv[p]));
        CUDA_CHECK(cudaFree(dout[p]));
        CUDA_CHECK(cudaFree(dlse[p]));
        free(po[p]), free(plse[p]);
    }
    CUDA_CHECK(cudaFree(dq));
    CUDA_CHECK(cudaFree(dsinks));
    free(sinks), free(fsinks);
    cudaFree(dcu), cudaFree(dlens), cudaFree(dtable), cudaFree(ws);
    free(q), free(pk), free(pv), free(sk), free(sv), free(row_seq), free(row_i), free(x), free(xl), free(rowmax);
    free(ref_o), free(ref_lse), free(ku), free(vu), free(out), free(out_lse);
    return fails;
}

/* Lengths off the tiles; sequences of one query (decode rows of a hybrid prefill batch) and
 * of none. Decode: suffixes of no key and of one, a sequence sharing no prefix and one
 * sharing only its first keys (a partial page). */
static const int cq_a[] = {37, 1, 0, 130}, cs_a[] = {50, 1, 0, 200};
static const int cq_b[] = {65, 17, 129}, cs_b[] = {65, 100, 300};
static const int cq_c[] = {3, 64, 200, 1, 16}, cs_c[] = {3, 127, 201, 1000, 17};
static const int cq_d[] = {100, 33}, cs_d[] = {100, 40};
static const int ds_a[] = {0, 1, 77, 300, 1025, 0}, dp_a[] = {1531, 1531, 1531, 1531, 1531, 0};
static const int ds_b[] = {5, 0, 129, 64, 1}, dp_b[] = {700, 700, 0, 333, 700};
static const int ds_c[] = {0, 17, 0, 250}, dp_c[] = {0, 1000, 1000, 1000};

static const cascade_case cascades[] = {
    {.name = "cascade prefill, prefix 333, GQA 28/4 d=128 fp16", .batch = 4, .hq = 28, .hk = 4, .d = 128,
     .dtype = FAI_DTYPE_FP16, .prefix = 333, .q_lens = cq_a, .suffix = cs_a},
    {.name = "cascade prefill, prefix 1000, GQA 8/2 d=64 bf16, pair API", .batch = 3, .hq = 8, .hk = 2, .d = 64,
     .dtype = FAI_DTYPE_BF16, .prefix = 1000, .q_lens = cq_b, .suffix = cs_b, .pair = 1},
    {.name = "cascade prefill, prefix 129, sinks in the prefix part, GQA 16/4 d=96 fp16", .batch = 5, .hq = 16,
     .hk = 4, .d = 96, .dtype = FAI_DTYPE_FP16, .prefix = 129, .q_lens = cq_c, .suffix = cs_c,
     .sinks = SINK_PREFIX},
    {.name = "cascade prefill, prefix 77, sinks in the suffix part, soft-cap 5, GQA 14/2 d=256 bf16", .batch = 4,
     .hq = 14, .hk = 2, .d = 256, .dtype = FAI_DTYPE_BF16, .prefix = 77, .q_lens = cq_a, .suffix = cs_a,
     .sinks = SINK_SUFFIX, .softcap = 5.0f, .q_std = 2.0f},
    {.name = "cascade prefill, prefix 2049, soft-cap 20, MQA 8/1 d=64 fp16", .batch = 2, .hq = 8, .hk = 1, .d = 64,
     .dtype = FAI_DTYPE_FP16, .prefix = 2049, .q_lens = cq_d, .suffix = cs_d, .softcap = 20.0f, .q_std = 6.0f},
    {.name = "cascade decode, prefix 1531 in pages of 16, GQA 32/8 d=128 fp16", .decode = 1, .batch = 6, .hq = 32,
     .hk = 8, .d = 128, .dtype = FAI_DTYPE_FP16, .prefix = 1531, .suffix = ds_a, .prefix_lens = dp_a,
     .page_size = 16},
    {.name = "cascade decode, prefix 700 in pages of 64, GQA 14/2 d=64 bf16, pair API", .decode = 1, .batch = 5,
     .hq = 14, .hk = 2, .d = 64, .dtype = FAI_DTYPE_BF16, .prefix = 700, .suffix = ds_b, .prefix_lens = dp_b,
     .page_size = 64, .pair = 1},
    {.name = "cascade decode, prefix 1531, sinks in the prefix part, GQA 28/4 d=128 fp16", .decode = 1, .batch = 6,
     .hq = 28, .hk = 4, .d = 128, .dtype = FAI_DTYPE_FP16, .prefix = 1531, .suffix = ds_a, .prefix_lens = dp_a,
     .page_size = 16, .sinks = SINK_PREFIX},
    {.name = "cascade decode, prefix 1000, sinks in the suffix part, soft-cap 6, MQA 8/1 d=256 bf16", .decode = 1,
     .batch = 4, .hq = 8, .hk = 1, .d = 256, .dtype = FAI_DTYPE_BF16, .prefix = 1000, .suffix = ds_c,
     .prefix_lens = dp_c, .page_size = 256, .sinks = SINK_SUFFIX, .softcap = 6.0f, .q_std = 3.0f},
    {.name = "cascade decode, prefix 700 in pages of 1, sinks in the suffix part, MHA 8/8 d=96 fp16, pair API",
     .decode = 1, .batch = 5, .hq = 8, .hk = 8, .d = 96, .dtype = FAI_DTYPE_FP16, .prefix = 700, .suffix = ds_b,
     .prefix_lens = dp_b, .page_size = 1, .sinks = SINK_SUFFIX, .pair = 1},
};

static const int split2[] = {70, 45};
static const int split2_empty[] = {0, 64};
static const int split3[] = {33, 1, 90};
static const int split3_empty[] = {40, 0, 57};
static const int split7[] = {16, 0, 31, 5, 64, 0, 9};
static const int split16[] = {3, 7, 0, 12, 1, 5, 9, 2, 0, 4, 6, 8, 10, 11, 13, 1};
static const int split_all_empty[] = {0, 0, 0};

int main(void)
{
    gpu_require_device("test_merge");
    const char *env = getenv("FAI_TEST_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("test_merge: seed %llu (FAI_TEST_SEED=%llu reproduces)\n", (unsigned long long)g_seed,
           (unsigned long long)g_seed);

    /* name, rows, heads, d, parts, dtype, split, in_place, strided, masked, no_lse, pair, spread, offset */
    static merge_case cases[96];
    int n = 0;
    static const int dims[] = {64, 128, 256};
    static char labels[96][96];
    for (int di = 0; di < 3; di++)
        for (int bf = 0; bf < 2; bf++) {
            const int d = dims[di];
            const fai_dtype t = bf ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
            const char *tn = bf ? "bf16" : "fp16";
            const merge_case base = {NULL, 37, 4, d, 2, t, split2, 0, 0, 0, 0, 0, 0.0f, 0.0f};
            merge_case m;
#define ADD(label_fmt, ...)                                                                      \
    do {                                                                                         \
        snprintf(labels[n], sizeof labels[n], "union " label_fmt " d=%d %s", __VA_ARGS__, d, tn); \
        m.name = labels[n];                                                                      \
        cases[n++] = m;                                                                          \
    } while (0)
            m = base;
            ADD("%d parts, %d rows, out of place", 2, 37);
            m = base, m.split = split2_empty, m.in_place = 1, m.rows = 21;
            ADD("%d parts (one empty), %d rows, in place", 2, 21);
            m = base, m.parts = 3, m.split = split3, m.rows = 29, m.heads = 3, m.masked = 1, m.strided = 1;
            ADD("%d parts, %d rows, masked rows, strided", 3, 29);
            m = base, m.parts = 3, m.split = split3_empty, m.rows = 15, m.in_place = 1, m.masked = 1;
            ADD("%d parts (one empty), %d rows, masked rows, in place", 3, 15);
            m = base, m.parts = 7, m.split = split7, m.rows = 19, m.heads = 5, m.masked = 1;
            ADD("%d parts (two empty), %d rows, masked rows", 7, 19);
            m = base, m.parts = 7, m.split = split7, m.rows = 9, m.strided = 1, m.no_lse = 1;
            ADD("%d parts, %d rows, strided, no lse", 7, 9);
        }
    {
        merge_case m = {"union 16 parts, 23 rows, masked rows d=128 fp16", 23, 2, 128, 16, FAI_DTYPE_FP16, split16,
                        0, 0, 1, 0, 0, 0.0f, 0.0f};
        cases[n++] = m;
        m.name = "union 3 empty parts, 7 rows (all -inf) d=64 fp16";
        m.rows = 7, m.d = 64, m.parts = 3, m.split = split_all_empty, m.masked = 0;
        cases[n++] = m;
        m.name = "union 1 part, 13 rows d=96 bf16 (a copy)";
        m.rows = 13, m.d = 96, m.parts = 1, m.split = split2, m.dtype = FAI_DTYPE_BF16;
        cases[n++] = m;
        m.name = "union pair API, 31 rows, in place d=128 fp16";
        m.rows = 31, m.d = 128, m.parts = 2, m.split = split2, m.dtype = FAI_DTYPE_FP16, m.in_place = 1, m.pair = 1;
        cases[n++] = m;
        m.name = "union pair API, 31 rows, masked, out of place d=256 bf16";
        m.d = 256, m.dtype = FAI_DTYPE_BF16, m.in_place = 0, m.masked = 1;
        cases[n++] = m;
    }
    /* Large: rows x heads over several waves of blocks (at 48 registers an SM holds 5 blocks
     * of 256 threads: 660 on an H100, each serving 8 (d 256) to 64 (d <= 32) (row, head)
     * pairs, so a wave is 5280 to 42240 pairs; these have 16K to 164K). */
    {
        const merge_case big[] = {
            {"synthetic 2 parts, 4099 rows x 40 heads d=64 fp16", 4099, 40, 64, 2, FAI_DTYPE_FP16, NULL, 0, 0, 1, 0, 0, 8.0f, 0.0f},
            {"synthetic 2 parts, 3001 rows x 32 heads d=128 bf16, in place", 3001, 32, 128, 2, FAI_DTYPE_BF16, NULL, 1, 0, 1, 0, 0, 8.0f, 0.0f},
            {"synthetic 3 parts, 2053 rows x 16 heads d=256 fp16, strided", 2053, 16, 256, 3, FAI_DTYPE_FP16, NULL, 0, 1, 1, 0, 0, 30.0f, 1e4f},
            {"synthetic 7 parts, 1031 rows x 32 heads d=128 fp16, spread 200", 1031, 32, 128, 7, FAI_DTYPE_FP16, NULL, 0, 0, 1, 0, 0, 200.0f, -50.0f},
            {"synthetic 5 parts, 777 rows x 8 heads d=40 bf16", 777, 8, 40, 5, FAI_DTYPE_BF16, NULL, 0, 0, 1, 0, 0, 3.0f, 0.0f},
            {"synthetic 16 parts, 511 rows x 32 heads d=256 bf16, in place", 511, 32, 256, 16, FAI_DTYPE_BF16, NULL, 1, 0, 1, 0, 0, 5.0f, 2.0f},
            {"synthetic pair, 1 row x 1 head d=8 fp16", 1, 1, 8, 2, FAI_DTYPE_FP16, NULL, 0, 0, 0, 0, 1, 1.0f, 0.0f},
        };
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
            cases[n++] = big[i];
    }

    const char *only = getenv("FAI_TEST_NAME");
    int fails = 0, ran = 0;
    for (int i = 0; i < n; i++) {
        if (only && !strstr(cases[i].name, only))
            continue;
        fails += run_case(&cases[i], i);
        ran++;
    }
    for (size_t i = 0; i < sizeof cascades / sizeof cascades[0]; i++) {
        if (only && !strstr(cascades[i].name, only))
            continue;
        fails += run_cascade(&cascades[i], 1000 + (int)i);
        ran += 2; /* merged out of place and in place */
    }
    /* Zero rows launch nothing and succeed. */
    fai_merge_params p0 = fai_merge_params_default();
    const fai_tensor none[2] = {{NULL, FAI_DTYPE_FP16, 0, 0}, {NULL, FAI_DTYPE_FP16, 0, 0}};
    const float *no_lse[2] = {NULL, NULL};
    p0.parts = none;
    p0.parts_lse = no_lse;
    if (fai_merge_states(&p0, 0) != FAI_SUCCESS) {
        printf("zero rows: FAIL (%s)\n", fai_last_error());
        fails++;
    }
    printf("test_merge: %d cases, %d failed\n", ran, fails);
    return fails ? 1 : 0;
}
