/* GPU test of merging attention states (fai_merge_states, fai_merge_state), on fresh random
 * inputs (seed printed; FAI_TEST_SEED reproduces a run, FAI_TEST_NAME=text runs only the
 * cases whose name contains text). Exits 77 without a GPU.
 *
 * Two kinds of case:
 *  - "union": the keys are split into parts (some of them empty), the CPU reference
 *    (double) gives each part's output and LSE on its own keys, rounded to FP16/BF16 and
 *    FP32 as fai_decode/fai_prefill would write them; the merge must equal the reference
 *    over the union of the keys (rel L2 <= 2e-3 FP16, 1.6e-2 BF16; LSE within
 *    1e-5 + 1e-6 |lse|);
 *  - "synthetic": random parts and LSEs (spreads up to hundreds, offsets up to 1e4), for the
 *    large shapes (rows x heads over several waves of blocks).
 * Every case also checks each element against the merge of the very inputs computed in
 * double: within one unit in the last place of the output type plus 1e-5 of the row's
 * largest contributing value (the FP32 weights' error). Some rows mark parts as empty (LSE
 * -inf) with their O rows filled with NaN, which must not be read; some rows have every part
 * empty and must give exact zeros and an LSE of -inf. Outputs are poisoned with NaN before
 * the call (out of place) and every element is checked. */
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
    for (int64_t i = 0; i < nl; i++) {
        double m = -INFINITY;
        for (int p = 0; p < P; p++)
            m = fmax(m, (double)plse[p][i]);
        double s = 0.0, big = 0.0;
        for (int e = 0; e < d; e++)
            x[i * d + e] = 0.0;
        if (m != -INFINITY)
            for (int p = 0; p < P; p++) {
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
    fai_status s;
    if (c->pair) {
        s = fai_merge_state(rows, H, d, parts[0], lses[0], parts[1], lses[1], o, dlse, stream);
    } else {
        fai_merge_params mp = fai_merge_params_default();
        mp.num_parts = P;
        mp.num_rows = rows;
        mp.num_heads = H;
        mp.head_dim = d;
        mp.parts = parts;
        mp.parts_lse = lses;
        mp.o = o;
        mp.lse = dlse;
        s = fai_merge_states(&mp, stream);
    }
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

    /* Against the merge of these inputs: every element. */
    int bad = 0;
    double worst = 0.0, worst_lse = 0.0;
    for (int64_t i = 0; i < nl && bad < 5; i++) {
        for (int e = 0; e < d; e++) {
            const double want = x[i * d + e], got = out[i * d + e];
            const double bound = ulp_of(c->dtype, want) + 1e-5 * rowmax[i];
            const double err = fabs(got - want);
            if (!(err <= bound) || (rowmax[i] == 0.0 && !(got == 0.0))) {
                if (bad++ < 5)
                    printf("    row %lld head %lld dim %d: got %.8g, want %.8g (bound %.3g)\n",
                           (long long)(i / H), (long long)(i % H), e, got, want, bound);
            }
            worst = fmax(worst, err / (ulp_of(c->dtype, want) + 1e-5 * rowmax[i]));
        }
        if (dlse) {
            const double want = xl[i], got = out_lse[i];
            const int ok = want == -INFINITY ? got == -INFINITY : fabs(got - want) <= 1e-5 + 1e-6 * fabs(want);
            if (!ok && bad++ < 5)
                printf("    row %lld head %lld: lse %.9g, want %.9g\n", (long long)(i / H), (long long)(i % H), got,
                       want);
            if (want != -INFINITY)
                worst_lse = fmax(worst_lse, fabs(got - want) / (1e-5 + 1e-6 * fabs(want)));
        }
    }
    /* Against the reference over the union of the keys. */
    double rel = 0.0, lse_err = 0.0;
    const double rel_bound = c->dtype == FAI_DTYPE_BF16 ? 1.6e-2 : 2e-3;
    if (ref_o) {
        rel = fai_ref_rel_l2(out, ref_o, n);
        if (!(rel <= rel_bound)) {
            printf("    rel L2 against the union reference %.3g > %.3g\n", rel, rel_bound);
            bad++;
        }
        for (int64_t i = 0; i < nl && dlse; i++) {
            const double want = ref_lse[i], got = out_lse[i];
            const int ok = want == -INFINITY ? got == -INFINITY : fabs(got - want) <= 1e-5 + 1e-6 * fabs(want);
            if (!ok) {
                if (bad++ < 5)
                    printf("    row %lld head %lld: lse %.9g, union reference %.9g\n", (long long)(i / H),
                           (long long)(i % H), got, want);
            } else if (want != -INFINITY) {
                lse_err = fmax(lse_err, fabs(got - want));
            }
        }
    }
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
