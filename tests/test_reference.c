/* test_reference.c: CPU tests of the double-precision reference (src/reference). Hand-worked
   cases first, then properties on random data. Exits non-zero on any failure. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "reference.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            printf("FAIL %s:%d: ", __func__, __LINE__);                       \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
        }                                                                     \
    } while (0)

/* |got - want| <= tol * max(1, |want|); infinities must match exactly. */
static int near(double got, double want, double tol)
{
    if (isinf(want) || isinf(got))
        return got == want;
    return fabs(got - want) <= tol * fmax(1.0, fabs(want));
}

#define CHECK_NEAR(what, got, want, tol)                                           \
    CHECK(near((got), (want), (tol)), "%s: got %.17g, want %.17g (tol %g)", (what), \
          (double)(got), (double)(want), (double)(tol))

static void *xcalloc(int64_t n, size_t size)
{
    void *p = calloc(n > 0 ? (size_t)n : 1, size); /* never 0 bytes: NULL means failure */
    if (p == NULL) {
        printf("out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- hand-worked cases ------------------------------------------------------------- */

static void test_hand_two_keys(void)
{
    /* q = 1, k = [0, 1], scale ln 3: scores 0 and ln 3, exp 1 and 3, weights 1/4 and 3/4.
       v = [2, 6]: o = 2/4 + 18/4 = 5; lse = ln(1 + 3) = ln 4. */
    const float q[] = {1}, k[] = {0, 1}, v[] = {2, 6};
    double o[1], lse[1];
    fai_ref_problem p = {1, 1, 1, 1, 2, log(3.0), 0, 0, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("o", o[0], 5.0, 1e-15);
    CHECK_NEAR("lse", lse[0], log(4.0), 1e-15);
}

static void test_hand_three_keys_dim2(void)
{
    /* q = (1, 1); k = (0,0), (2,-1), (1,1): dots 0, 1, 2; scale ln 2: exp 1, 2, 4, weights
       1/7, 2/7, 4/7. v = (7,0), (0,7), (7,14): o = (1 + 0 + 4, 0 + 2 + 8) = (5, 10); lse = ln 7. */
    const float q[] = {1, 1}, k[] = {0, 0, 2, -1, 1, 1}, v[] = {7, 0, 0, 7, 7, 14};
    double o[2], lse[1];
    fai_ref_problem p = {1, 1, 2, 1, 3, log(2.0), 0, 0, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("o[0]", o[0], 5.0, 1e-14);
    CHECK_NEAR("o[1]", o[1], 10.0, 1e-14);
    CHECK_NEAR("lse", lse[0], log(7.0), 1e-15);
}

static void test_hand_causal_bottom_right(void)
{
    /* seq_q 2, seq_k 3: row 0 sees keys j <= 0 + 1, row 1 sees all three. q = 1, k = 0, 1, 2,
       scale ln 2: exp 1, 2, 4. v = 3, 6, 12.
       Row 0: weights 1/3, 2/3: o = 1 + 4 = 5, lse = ln 3.
       Row 1: weights 1/7, 2/7, 4/7: o = (3 + 12 + 48) / 7 = 9, lse = ln 7. */
    const float q[] = {1, 1}, k[] = {0, 1, 2}, v[] = {3, 6, 12};
    double o[2], lse[2];
    fai_ref_problem p = {1, 1, 1, 2, 3, log(2.0), 1, 0, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("o row 0", o[0], 5.0, 1e-14);
    CHECK_NEAR("lse row 0", lse[0], log(3.0), 1e-15);
    CHECK_NEAR("o row 1", o[1], 9.0, 1e-14);
    CHECK_NEAR("lse row 1", lse[1], log(7.0), 1e-15);
}

static void test_hand_causal_fully_masked(void)
{
    /* seq_q 3 > seq_k 1: row i sees j <= i - 2, so rows 0 and 1 see nothing (zeros, -inf)
       and row 2 sees key 0: o = v0 = 5, lse = 0.5 * 2 * 3 = 3. */
    const float q[] = {1, 1, 2}, k[] = {3}, v[] = {5};
    double o[3] = {NAN, NAN, NAN}, lse[3] = {NAN, NAN, NAN};
    fai_ref_problem p = {1, 1, 1, 3, 1, 0.5, 1, 0, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    for (int i = 0; i < 2; i++) {
        CHECK(o[i] == 0.0, "row %d sees no key: o = %g, want 0", i, o[i]);
        CHECK(isinf(lse[i]) && lse[i] < 0, "row %d sees no key: lse = %g, want -inf", i, lse[i]);
    }
    CHECK_NEAR("o row 2", o[2], 5.0, 1e-15);
    CHECK_NEAR("lse row 2", lse[2], 3.0, 1e-15);
}

static void test_hand_alibi(void)
{
    /* Scores are the bias alone (q = 0), slope ln 2, seq_q = seq_k = 3, v = 7, 14, 21.
       bias = -ln2 * |i - j|, so exp(bias) = 2^-|i-j|.
       Row 0: 1, 1/2, 1/4 -> weights 4/7, 2/7, 1/7: o = 4 + 4 + 3 = 11, lse = ln(7/4).
       Row 1: 1/2, 1, 1/2 -> weights 1/4, 1/2, 1/4: o = 7/4 + 7 + 21/4 = 14, lse = ln 2.
       Row 2: 1/4, 1/2, 1 -> weights 1/7, 2/7, 4/7: o = 1 + 4 + 12 = 17, lse = ln(7/4).
       Causal keeps the left side only:
       Row 0: key 0: o = 7, lse = 0.  Row 1: 1/2, 1 -> o = (3.5 + 14) / 1.5 = 35/3, lse = ln 1.5.
       Row 2: as before, 17 and ln(7/4). */
    const float q[] = {0, 0, 0}, k[] = {1, 2, 3}, v[] = {7, 14, 21};
    const double slope[] = {log(2.0)};
    double o[3], lse[3];
    fai_ref_problem p = {1, 1, 1, 3, 3, 1.0, 0, 1, slope, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    const double want_o[] = {11, 14, 17}, want_lse[] = {log(1.75), log(2.0), log(1.75)};
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR("alibi o", o[i], want_o[i], 1e-14);
        CHECK_NEAR("alibi lse", lse[i], want_lse[i], 1e-14);
    }
    p.causal = 1;
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    const double want_oc[] = {7, 35.0 / 3.0, 17}, want_lsec[] = {0, log(1.5), log(1.75)};
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR("alibi causal o", o[i], want_oc[i], 1e-14);
        CHECK_NEAR("alibi causal lse", lse[i], want_lsec[i], 1e-14);
    }
    /* Bottom-right alignment of the bias: seq_q 1, seq_k 3 gives row 0 the diagonal key 2,
       so its distances are 2, 1, 0, the same as row 2 above: 17 and ln(7/4). */
    p.seq_q = 1;
    p.causal = 0;
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("alibi seq_q 1 o", o[0], 17.0, 1e-14);
    CHECK_NEAR("alibi seq_q 1 lse", lse[0], log(1.75), 1e-14);
}

static void test_hand_alibi_standard_slopes(void)
{
    /* Two query heads share one KV head; NULL slopes means 2^-4 and 2^-8 for 2 heads.
       q = 0, seq_k 2, v = 0, 1: key 0 is at distance 1, key 1 on the diagonal, so head h
       gives o = 1 / (1 + e^-slope_h) and lse = ln(1 + e^-slope_h):
       head 0: 1 / (1 + e^-0.0625) = 0.515619..., head 1: 1 / (1 + e^-0.00390625) = 0.500976... */
    const float q[] = {0, 0}, k[] = {1, 1}, v[] = {0, 1};
    double o[2], lse[2];
    fai_ref_problem p = {2, 1, 1, 1, 2, 1.0, 0, 1, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    const double slopes[] = {0.0625, 0.00390625};
    for (int h = 0; h < 2; h++) {
        CHECK_NEAR("standard-slope o", o[h], 1.0 / (1.0 + exp(-slopes[h])), 1e-15);
        CHECK_NEAR("standard-slope lse", lse[h], log1p(exp(-slopes[h])), 1e-15);
    }
    CHECK(fabs(o[0] - 0.515619) < 1e-6 && fabs(o[1] - 0.500976) < 1e-6,
          "o = %.9f, %.9f, want about 0.515619, 0.500976", o[0], o[1]);
}

static void test_hand_gqa(void)
{
    /* 4 query heads on 2 KV heads: heads 0, 1 read KV head 0 and heads 2, 3 read KV head 1
       (h / 2, not h % 2). Scale ln 3, head_dim 1, q per head = 0, 1, 0, 1.
       KV head 0: k = 0, 1, v = 2, 6.   KV head 1: k = 1, 0, v = 10, 20.
       head 0: scores 0, 0 -> o = 4, lse ln 2.   head 1: 0, ln3 -> o = 2/4 + 18/4 = 5, lse ln 4.
       head 2: 0, 0 -> o = 15, lse ln 2.         head 3: ln3, 0 -> o = 30/4 + 20/4 = 12.5, ln 4. */
    const float q[] = {0, 1, 0, 1};
    const float k[] = {0, 1, /* key 1: */ 1, 0}, v[] = {2, 10, /* key 1: */ 6, 20};
    double o[4], lse[4];
    fai_ref_problem p = {4, 2, 1, 1, 2, log(3.0), 0, 0, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    const double want_o[] = {4, 5, 15, 12.5}, want_lse[] = {log(2.0), log(4.0), log(2.0), log(4.0)};
    for (int h = 0; h < 4; h++) {
        CHECK_NEAR("gqa o", o[h], want_o[h], 1e-14);
        CHECK_NEAR("gqa lse", lse[h], want_lse[h], 1e-15);
    }
}

static void test_standard_slopes(void)
{
    double s[16];
    fai_ref_alibi_slopes(8, s); /* 2^-1 .. 2^-8 */
    for (int h = 0; h < 8; h++)
        CHECK_NEAR("slopes n=8", s[h], ldexp(1.0, -(h + 1)), 0);
    /* n = 12: m = 8 gives 2^-1 .. 2^-8, then 16 heads' slopes 2^-(k+1)/2 at k = 0, 2, 4, 6:
       2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5. */
    const double want12[12] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125,
                               0.00390625, 0.70710678118654752, 0.35355339059327376,
                               0.17677669529663688, 0.088388347648318440};
    fai_ref_alibi_slopes(12, s);
    for (int h = 0; h < 12; h++)
        CHECK_NEAR("slopes n=12", s[h], want12[h], 1e-15);
    /* n = 3: m = 2 gives 2^-4, 2^-8; then 4 heads' slope at index 0: 2^-2. */
    const double want3[3] = {0.0625, 0.00390625, 0.25};
    fai_ref_alibi_slopes(3, s);
    for (int h = 0; h < 3; h++)
        CHECK_NEAR("slopes n=3", s[h], want3[h], 0);
    fai_ref_alibi_slopes(1, s);
    CHECK_NEAR("slopes n=1", s[0], 0.00390625, 0);
    s[0] = 42;
    fai_ref_alibi_slopes(0, s);
    CHECK(s[0] == 42, "n = 0 must write nothing, wrote %g", s[0]);
}

/* ---- random problems ----------------------------------------------------------------- */

typedef struct problem_data {
    fai_ref_problem p;
    float *q, *k, *v;
    double *o, *lse;
    int64_t nq, nkv, nlse; /* element counts: q and o, k and v, lse */
} problem_data;

static problem_data make_problem(fai_ref_problem p, fai_ref_rng *rng)
{
    problem_data d;
    d.p = p;
    d.nq = (int64_t)p.seq_q * p.num_q_heads * p.head_dim;
    d.nkv = (int64_t)p.seq_k * p.num_kv_heads * p.head_dim;
    d.nlse = (int64_t)p.seq_q * p.num_q_heads;
    d.q = xcalloc(d.nq, sizeof(float));
    d.k = xcalloc(d.nkv, sizeof(float));
    d.v = xcalloc(d.nkv, sizeof(float));
    d.o = xcalloc(d.nq, sizeof(double));
    d.lse = xcalloc(d.nlse, sizeof(double));
    fai_ref_fill_normal(rng, d.q, d.nq, 1.0);
    fai_ref_fill_normal(rng, d.k, d.nkv, 1.0);
    fai_ref_fill_normal(rng, d.v, d.nkv, 1.0);
    return d;
}

static void free_problem(problem_data *d)
{
    free(d->q), free(d->k), free(d->v), free(d->o), free(d->lse);
}

/* Runs the reference with o and lse poisoned with NaN first, so an unwritten element shows. */
static int run(problem_data *d)
{
    for (int64_t i = 0; i < d->nq; i++)
        d->o[i] = NAN;
    for (int64_t i = 0; i < d->nlse; i++)
        d->lse[i] = NAN;
    return fai_ref_attention(&d->p, d->q, d->k, d->v, d->o, d->lse);
}

/* Score of (row i, head h, key j) written straight from the definition; -INFINITY if masked. */
static double def_score(const problem_data *d, const double *slopes, int i, int h, int j)
{
    const fai_ref_problem *p = &d->p;
    const int64_t diag = (int64_t)i + p->seq_k - p->seq_q;
    if (p->causal && j > diag)
        return -INFINITY;
    const int kvh = h / (p->num_q_heads / p->num_kv_heads);
    const float *qr = d->q + ((int64_t)i * p->num_q_heads + h) * p->head_dim;
    const float *kr = d->k + ((int64_t)j * p->num_kv_heads + kvh) * p->head_dim;
    double dot = 0;
    for (int c = 0; c < p->head_dim; c++)
        dot += (double)qr[c] * kr[c];
    double s = p->softmax_scale * dot;
    if (p->alibi)
        s -= slopes[h] * fabs((double)(diag - j));
    return s;
}

/* Checks o and lse against the max-subtracted softmax computed here from def_score, and
   checks that lse is consistent: o = sum_j exp(s_j - lse) v_j. Returns the number of bad
   elements (printing the first). */
static int check_definition(const char *label, const problem_data *d, double tol)
{
    const fai_ref_problem *p = &d->p;
    const int hq = p->num_q_heads, dim = p->head_dim, group = hq / p->num_kv_heads;
    double *slopes = xcalloc(hq, sizeof(double)), *s = xcalloc(p->seq_k, sizeof(double));
    double *want = xcalloc(dim, sizeof(double)), *via_lse = xcalloc(dim, sizeof(double));
    if (p->alibi_slopes)
        memcpy(slopes, p->alibi_slopes, (size_t)hq * sizeof(double));
    else
        fai_ref_alibi_slopes(hq, slopes);
    int bad = 0;
    for (int i = 0; i < p->seq_q; i++) {
        for (int h = 0; h < hq; h++) {
            const double *o = d->o + ((int64_t)i * hq + h) * dim;
            const double lse = d->lse[(int64_t)i * hq + h];
            double m = -INFINITY, sum = 0;
            for (int j = 0; j < p->seq_k; j++) {
                s[j] = def_score(d, slopes, i, h, j);
                m = fmax(m, s[j]);
            }
            for (int c = 0; c < dim; c++)
                want[c] = via_lse[c] = 0;
            double want_lse = -INFINITY;
            if (m > -INFINITY) {
                for (int j = 0; j < p->seq_k; j++) {
                    const float *vr = d->v + ((int64_t)j * p->num_kv_heads + h / group) * dim;
                    const double w = exp(s[j] - m), w_lse = exp(s[j] - lse);
                    sum += w;
                    for (int c = 0; c < dim; c++) {
                        want[c] += w * vr[c];
                        via_lse[c] += w_lse * vr[c];
                    }
                }
                for (int c = 0; c < dim; c++)
                    want[c] /= sum;
                want_lse = m + log(sum);
            }
            int row_bad = !near(lse, want_lse, tol);
            for (int c = 0; c < dim; c++)
                row_bad |= !isfinite(o[c]) || !near(o[c], want[c], tol) ||
                           !near(o[c], via_lse[c], tol);
            if (row_bad && bad++ == 0) {
                failures++;
                printf("FAIL %s: row %d head %d: lse %.17g want %.17g; o[0] %.17g want %.17g "
                       "(via lse %.17g), tol %g\n",
                       label, i, h, lse, want_lse, dim ? o[0] : 0.0, dim ? want[0] : 0.0,
                       dim ? via_lse[0] : 0.0, tol);
            }
        }
    }
    free(slopes), free(s), free(want), free(via_lse);
    return bad;
}

static void test_random_against_definition(fai_ref_rng *rng)
{
    /* GQA, causal, ALiBi, both seq_q < seq_k and seq_q > seq_k. */
    const fai_ref_problem cases[] = {
        {4, 4, 16, 7, 13, 0.25, 0, 0, NULL, 0, 0, 0, 0.0, NULL}, {8, 2, 8, 13, 7, 0.35, 1, 0, NULL, 0, 0, 0, 0.0, NULL},
        {7, 1, 5, 9, 20, 0.45, 1, 1, NULL, 0, 0, 0, 0.0, NULL},  {12, 3, 4, 20, 9, 0.5, 0, 1, NULL, 0, 0, 0, 0.0, NULL},
        {6, 3, 3, 11, 11, 0.6, 1, 1, NULL, 0, 0, 0, 0.0, NULL},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        problem_data d = make_problem(cases[t], rng);
        CHECK(run(&d) == 0, "case %zu returned non-zero", t);
        check_definition("random vs definition", &d, 1e-12);
        free_problem(&d);
    }
}

static void test_weights_sum_to_one(fai_ref_rng *rng)
{
    /* V = 1 everywhere: every row that sees a key averages ones, so o = 1 exactly up to
       rounding; rows that see no key (causal, seq_q > seq_k) stay 0. */
    const fai_ref_problem cases[] = {
        {4, 2, 8, 9, 23, 0.3, 0, 0, NULL, 0, 0, 0, 0.0, NULL}, {4, 2, 8, 23, 9, 0.3, 1, 1, NULL, 0, 0, 0, 0.0, NULL},
        {3, 1, 5, 6, 6, 2.0, 1, 0, NULL, 0, 0, 0, 0.0, NULL},  {5, 5, 7, 17, 4, 0.5, 0, 1, NULL, 0, 0, 0, 0.0, NULL},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        problem_data d = make_problem(cases[t], rng);
        for (int64_t x = 0; x < d.nkv; x++)
            d.v[x] = 1.0f;
        CHECK(run(&d) == 0, "case %zu returned non-zero", t);
        const fai_ref_problem *p = &d.p;
        for (int i = 0; i < p->seq_q; i++) {
            const int sees = !p->causal || i + p->seq_k - p->seq_q >= 0;
            for (int64_t x = 0; x < (int64_t)p->num_q_heads * p->head_dim; x++) {
                const double got = d.o[(int64_t)i * p->num_q_heads * p->head_dim + x];
                CHECK(fabs(got - (sees ? 1.0 : 0.0)) <= 1e-13,
                      "case %zu row %d: o = %.17g, want %d", t, i, got, sees);
            }
        }
        free_problem(&d);
    }
}

static void test_key_permutation(fai_ref_rng *rng)
{
    /* Without causal masking and ALiBi the keys form a set: permuting keys together with
       their values changes nothing but rounding. */
    problem_data a = make_problem((fai_ref_problem){6, 2, 16, 5, 31, 0.25, 0, 0, NULL, 0, 0, 0, 0.0, NULL}, rng);
    problem_data b = make_problem(a.p, rng);
    const int64_t row = (int64_t)a.p.num_kv_heads * a.p.head_dim;
    int perm[31];
    for (int j = 0; j < a.p.seq_k; j++)
        perm[j] = j;
    for (int j = a.p.seq_k - 1; j > 0; j--) { /* Fisher-Yates */
        const int r = (int)(fai_ref_rng_uniform(rng) * (j + 1)), t = perm[j];
        perm[j] = perm[r], perm[r] = t;
    }
    memcpy(b.q, a.q, (size_t)a.nq * sizeof(float));
    for (int j = 0; j < a.p.seq_k; j++) {
        memcpy(b.k + j * row, a.k + perm[j] * row, (size_t)row * sizeof(float));
        memcpy(b.v + j * row, a.v + perm[j] * row, (size_t)row * sizeof(float));
    }
    CHECK(run(&a) == 0 && run(&b) == 0, "returned non-zero");
    for (int64_t x = 0; x < a.nq; x++)
        CHECK(near(b.o[x], a.o[x], 1e-13), "o[%lld]: %.17g permuted vs %.17g", (long long)x,
              b.o[x], a.o[x]);
    for (int64_t x = 0; x < a.nlse; x++)
        CHECK(near(b.lse[x], a.lse[x], 1e-13), "lse[%lld]: %.17g permuted vs %.17g",
              (long long)x, b.lse[x], a.lse[x]);
    free_problem(&a), free_problem(&b);
}

static void test_gqa_equals_repeated_mha(fai_ref_rng *rng)
{
    /* GQA with ratio g equals MHA whose KV head h holds a copy of GQA KV head h / g. */
    const int ratios[] = {4, 7, 8}, kv_heads[] = {2, 3, 1}; /* the last one is MQA */
    for (int t = 0; t < 3; t++) {
        for (int variant = 0; variant < 2; variant++) { /* plain, then causal + ALiBi */
            const int hk = kv_heads[t], hq = hk * ratios[t], dim = 8;
            fai_ref_problem p = {hq, hk, dim, 11, 17, 0.4, variant, variant, NULL, 0, 0, 0, 0.0, NULL};
            problem_data g = make_problem(p, rng);
            p.num_kv_heads = hq;
            problem_data m = make_problem(p, rng);
            memcpy(m.q, g.q, (size_t)g.nq * sizeof(float));
            for (int j = 0; j < p.seq_k; j++)
                for (int h = 0; h < hq; h++) {
                    const int64_t to = ((int64_t)j * hq + h) * dim;
                    const int64_t from = ((int64_t)j * hk + h / ratios[t]) * dim;
                    memcpy(m.k + to, g.k + from, dim * sizeof(float));
                    memcpy(m.v + to, g.v + from, dim * sizeof(float));
                }
            CHECK(run(&g) == 0 && run(&m) == 0, "returned non-zero");
            for (int64_t x = 0; x < g.nq; x++)
                CHECK(near(g.o[x], m.o[x], 1e-14),
                      "ratio %d variant %d o[%lld]: %.17g vs MHA %.17g",
                      ratios[t], variant, (long long)x, g.o[x], m.o[x]);
            for (int64_t x = 0; x < g.nlse; x++)
                CHECK(near(g.lse[x], m.lse[x], 1e-14),
                      "ratio %d variant %d lse: %.17g vs MHA %.17g",
                      ratios[t], variant, g.lse[x], m.lse[x]);
            free_problem(&g), free_problem(&m);
        }
    }
}

static void test_causal_row_equals_its_prefix(fai_ref_rng *rng)
{
    /* Causal row i with diagonal d = i + seq_k - seq_q is a single query over keys 0..d (its
       ALiBi distances d - j are the same). Keys after the first few get 30x larger norms, so
       a masked key leaking into an early row would show. */
    const int shapes[][2] = {{5, 9}, {9, 5}, {6, 6}};
    for (int t = 0; t < 3; t++) {
        fai_ref_problem p = {4, 2, 8, shapes[t][0], shapes[t][1], 0.35, 1, 1, NULL, 0, 0, 0, 0.0, NULL};
        problem_data d = make_problem(p, rng);
        const int64_t krow = (int64_t)p.num_kv_heads * p.head_dim;
        for (int64_t x = 3 * krow; x < d.nkv; x++)
            d.k[x] *= 30.0f;
        CHECK(run(&d) == 0, "returned non-zero");
        for (int i = 0; i < p.seq_q; i++) {
            const int diag = i + p.seq_k - p.seq_q;
            if (diag < 0)
                continue; /* checked by the masked-row tests */
            fai_ref_problem one = p;
            one.seq_q = 1;
            one.seq_k = diag + 1;
            one.causal = 0;
            const int64_t qrow = (int64_t)p.num_q_heads * p.head_dim;
            double *o = xcalloc(qrow, sizeof(double));
            double *lse = xcalloc(p.num_q_heads, sizeof(double));
            CHECK(fai_ref_attention(&one, d.q + i * qrow, d.k, d.v, o, lse) == 0,
                  "prefix run failed");
            for (int64_t x = 0; x < qrow; x++)
                CHECK(near(d.o[i * qrow + x], o[x], 1e-13),
                      "shape %d row %d: o %.17g vs prefix %.17g", t, i, d.o[i * qrow + x], o[x]);
            for (int h = 0; h < p.num_q_heads; h++)
                CHECK(near(d.lse[(int64_t)i * p.num_q_heads + h], lse[h], 1e-13),
                      "shape %d row %d: lse %.17g vs prefix %.17g", t, i,
                      d.lse[(int64_t)i * p.num_q_heads + h], lse[h]);
            free(o), free(lse);
        }
        free_problem(&d);
    }
}

static void test_empty_sequences(fai_ref_rng *rng)
{
    /* seq_k = 0: every row sees nothing -> zeros and -inf (also with causal + ALiBi, and
       with k = v = NULL since they hold no elements). */
    for (int variant = 0; variant < 2; variant++) {
        const fai_ref_problem p = {4, 2, 8, 3, 0, 0.3, variant, variant, NULL, 0, 0, 0, 0.0, NULL};
        problem_data d = make_problem(p, rng);
        CHECK(fai_ref_attention(&d.p, d.q, NULL, NULL, d.o, d.lse) == 0, "NULL k, v for seq_k 0");
        CHECK(run(&d) == 0, "returned non-zero");
        for (int64_t x = 0; x < d.nq; x++)
            CHECK(d.o[x] == 0.0, "seq_k 0, variant %d: o[%lld] = %g", variant, (long long)x,
                  d.o[x]);
        for (int64_t x = 0; x < d.nlse; x++)
            CHECK(isinf(d.lse[x]) && d.lse[x] < 0, "seq_k 0: lse[%lld] = %g", (long long)x,
                  d.lse[x]);
        free_problem(&d);
    }
    /* seq_q = 0 is fine, with or without buffers. */
    problem_data d = make_problem((fai_ref_problem){4, 2, 8, 0, 5, 0.3, 1, 1, NULL, 0, 0, 0, 0.0, NULL}, rng);
    CHECK(run(&d) == 0, "seq_q 0 returned non-zero");
    CHECK(fai_ref_attention(&d.p, NULL, d.k, d.v, NULL, NULL) == 0, "seq_q 0 with NULL q, o");
    d.p.seq_k = 0;
    CHECK(fai_ref_attention(&d.p, NULL, NULL, NULL, NULL, NULL) == 0, "both empty");
    free_problem(&d);
}

static void test_fully_masked_rows(fai_ref_rng *rng)
{
    /* Causal with seq_q 12 > seq_k 5: rows 0..6 see no key (zeros, -inf); row 7 sees key 0. */
    problem_data d = make_problem((fai_ref_problem){2, 1, 4, 12, 5, 0.5, 1, 0, NULL, 0, 0, 0, 0.0, NULL}, rng);
    CHECK(run(&d) == 0, "returned non-zero");
    const int64_t qrow = 2 * 4;
    for (int i = 0; i < 7; i++) {
        for (int64_t x = 0; x < qrow; x++)
            CHECK(d.o[i * qrow + x] == 0.0, "masked row %d: o = %g", i, d.o[i * qrow + x]);
        for (int h = 0; h < 2; h++)
            CHECK(isinf(d.lse[i * 2 + h]) && d.lse[i * 2 + h] < 0, "masked row %d: lse = %g", i,
                  d.lse[i * 2 + h]);
    }
    for (int64_t x = 0; x < qrow; x++) /* row 7: its only key, so o = v0 of KV head 0 */
        CHECK(d.o[7 * qrow + x] == d.v[x % 4], "row 7: o = %g, want v = %g", d.o[7 * qrow + x],
              (double)d.v[x % 4]);
    check_definition("fully masked rows", &d, 1e-12);
    free_problem(&d);
}

static void test_large_logits(fai_ref_rng *rng)
{
    /* Scale so the largest |logit| is exactly 50, 1000 and 1e4: no NaN/Inf, and o and lse
       match the max-subtracted definition. Then rows whose logits are all very negative
       (-1e4 .. -5e3) must still average their values, not collapse to zero. */
    const double targets[] = {50, 1000, 1e4};
    for (int t = 0; t < 3; t++) {
        for (int variant = 0; variant < 2; variant++) {
            /* Measure max |q.k| over all pairs with scale 1, no mask and no bias... */
            const fai_ref_problem p = {4, 2, 16, 13, 29, 1.0, 0, 0, NULL, 0, 0, 0, 0.0, NULL};
            problem_data d = make_problem(p, rng);
            double max_dot = 0;
            for (int i = 0; i < d.p.seq_q; i++)
                for (int h = 0; h < 4; h++)
                    for (int j = 0; j < d.p.seq_k; j++)
                        max_dot = fmax(max_dot, fabs(def_score(&d, NULL, i, h, j)));
            /* ...then run the variant: plain, or causal + ALiBi. */
            d.p.causal = d.p.alibi = variant;
            d.p.softmax_scale = targets[t] / max_dot;
            CHECK(run(&d) == 0, "returned non-zero");
            int finite = 1;
            for (int64_t x = 0; x < d.nq; x++)
                finite &= isfinite(d.o[x]);
            for (int64_t x = 0; x < d.nlse; x++)
                finite &= isfinite(d.lse[x]);
            CHECK(finite, "logits to +-%g (variant %d): non-finite output", targets[t], variant);
            /* Relative to lse ~ 1e4, double rounding in s - lse is ~1e-12 of it. */
            check_definition("large logits", &d, 1e-10);
            free_problem(&d);
        }
    }
    /* All-negative logits: q = 1s, k = -(1 + u) * 1s, so every dot is in [-2d, -d]. */
    problem_data d = make_problem((fai_ref_problem){2, 1, 8, 3, 40, 0.0, 0, 0, NULL, 0, 0, 0, 0.0, NULL}, rng);
    for (int64_t x = 0; x < d.nq; x++)
        d.q[x] = 1.0f;
    for (int j = 0; j < d.p.seq_k; j++) {
        const float kj = -(float)(1.0 + fai_ref_rng_uniform(rng));
        for (int c = 0; c < 8; c++)
            d.k[j * 8 + c] = kj;
    }
    d.p.softmax_scale = 5e3 / 8.0; /* logits in [-1e4, -5e3] */
    CHECK(run(&d) == 0, "returned non-zero");
    double norm = 0;
    for (int64_t x = 0; x < d.nq; x++)
        norm += fabs(d.o[x]);
    CHECK(norm > 0 && isfinite(norm), "all-negative logits: |o|_1 = %g", norm);
    for (int64_t x = 0; x < d.nlse; x++)
        CHECK(d.lse[x] <= -5e3 && d.lse[x] >= -1e4, "all-negative logits: lse = %g", d.lse[x]);
    check_definition("all-negative logits", &d, 1e-10);
    free_problem(&d);
}

static void test_error_measures(void)
{
    /* out - ref = (0, 1, 0): ||e|| = 1, ||ref|| = sqrt(1 + 1 + 4) = sqrt 6, max abs 1. */
    const float out[] = {1, 2, 2};
    const double ref[] = {1, 1, 2};
    CHECK_NEAR("rel_l2", fai_ref_rel_l2(out, ref, 3), 1.0 / sqrt(6.0), 1e-15);
    CHECK_NEAR("max_abs", fai_ref_max_abs(out, ref, 3), 1.0, 0);
    const float zeros[] = {0, 0};
    const double dzeros[] = {0, 0};
    CHECK(fai_ref_rel_l2(zeros, dzeros, 2) == 0.0, "both zero: rel_l2 must be 0");
    CHECK(fai_ref_max_abs(zeros, dzeros, 2) == 0.0, "both zero: max_abs must be 0");
    CHECK(isinf(fai_ref_rel_l2(out, dzeros, 2)), "ref zero, out not: rel_l2 must be inf");
    CHECK(fai_ref_rel_l2(out, ref, 0) == 0.0 && fai_ref_max_abs(out, ref, 0) == 0.0, "n = 0");
    const float bad[][3] = {{1, NAN, 2}, {1, INFINITY, 2}, {-INFINITY, 1, 2}};
    for (int t = 0; t < 3; t++) {
        const double r = fai_ref_rel_l2(bad[t], ref, 3), m = fai_ref_max_abs(bad[t], ref, 3);
        CHECK(isinf(r) && r > 0, "non-finite out %d: rel_l2 = %g, want +inf", t, r);
        CHECK(isinf(m) && m > 0, "non-finite out %d: max_abs = %g, want +inf", t, m);
    }
}

static void test_bad_arguments(void)
{
    const float x[8] = {0};
    double o[8], lse[8];
    const fai_ref_problem good = {2, 1, 2, 2, 2, 1.0, 0, 0, NULL, 0, 0, 0, 0.0, NULL};
    CHECK(fai_ref_attention(&good, x, x, x, o, lse) == 0, "good problem rejected");
    CHECK(fai_ref_attention(NULL, x, x, x, o, lse) == -1, "NULL problem accepted");
    fai_ref_problem p;
    p = good, p.num_q_heads = 3; /* not a multiple of 2 */
    p.num_kv_heads = 2;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "3 q heads on 2 kv heads accepted");
    p = good, p.num_q_heads = 0;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "0 q heads accepted");
    p = good, p.num_kv_heads = 0;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "0 kv heads accepted");
    p = good, p.seq_q = -1;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "negative seq_q accepted");
    p = good, p.seq_k = -1;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "negative seq_k accepted");
    p = good, p.head_dim = -1;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "negative head_dim accepted");
    p = good, p.softmax_scale = NAN;
    CHECK(fai_ref_attention(&p, x, x, x, o, lse) == -1, "NaN scale accepted");
    CHECK(fai_ref_attention(&good, NULL, x, x, o, lse) == -1, "NULL q accepted");
    CHECK(fai_ref_attention(&good, x, NULL, x, o, lse) == -1, "NULL k accepted");
    CHECK(fai_ref_attention(&good, x, x, NULL, o, lse) == -1, "NULL v accepted");
    CHECK(fai_ref_attention(&good, x, x, x, NULL, lse) == -1, "NULL o accepted");
    CHECK(fai_ref_attention(&good, x, x, x, o, NULL) == 0, "NULL lse (optional) rejected");
}

static void test_rng(void)
{
    fai_ref_rng a, b;
    fai_ref_rng_seed(&a, 0), fai_ref_rng_seed(&b, 0);
    int same = 1, in_range = 1;
    for (int i = 0; i < 1000; i++) {
        const double u = fai_ref_rng_uniform(&a);
        same &= u == fai_ref_rng_uniform(&b);
        in_range &= u >= 0.0 && u < 1.0;
    }
    CHECK(same, "the same seed gave different sequences");
    CHECK(in_range, "uniform left [0, 1)");
    fai_ref_rng_seed(&a, 0);
    fai_ref_rng_seed(&b, 1);
    CHECK(fai_ref_rng_uniform(&a) != fai_ref_rng_uniform(&b), "seeds 0 and 1 agree");

    /* below(n): every value of [0, n) and nothing else; chance(p): about p of the draws */
    const int ns[] = {1, 2, 7};
    for (int k = 0; k < 3; k++) {
        int seen[7] = {0}, outside = 0;
        for (int i = 0; i < 1000; i++) {
            const int v = fai_ref_rng_below(&a, ns[k]);
            if (v < 0 || v >= ns[k])
                outside++;
            else
                seen[v]++;
        }
        CHECK(outside == 0, "below(%d) left [0, %d) %d times", ns[k], ns[k], outside);
        for (int v = 0; v < ns[k]; v++)
            CHECK(seen[v] > 1000 / ns[k] / 2, "below(%d) gave %d only %d times in 1000", ns[k], v, seen[v]);
    }
    int heads = 0, never = 0, always = 0;
    for (int i = 0; i < 10000; i++) {
        heads += fai_ref_rng_chance(&a, 0.3);
        never += fai_ref_rng_chance(&a, 0.0);
        always += fai_ref_rng_chance(&a, 1.0);
    }
    CHECK(never == 0 && always == 10000, "chance(0) %d, chance(1) %d of 10000", never, always);
    CHECK(heads > 2800 && heads < 3200, "chance(0.3) %d of 10000", heads); /* 0.3 +- 4.4 sigma */

    /* normal(0, 2) over 100001 samples (odd n: the last pair is cut): mean and stddev within
       a few standard errors (2 / sqrt(n) ~ 0.006 for the mean). */
    enum { N = 100001 };
    float *x = xcalloc(N, sizeof(float));
    fai_ref_rng_seed(&a, 42);
    fai_ref_fill_normal(&a, x, N, 2.0);
    double sum = 0, sum2 = 0;
    for (int i = 0; i < N; i++)
        sum += x[i], sum2 += (double)x[i] * x[i];
    const double mean = sum / N, sd = sqrt(sum2 / N - mean * mean);
    CHECK(fabs(mean) < 0.03, "normal mean %g, want 0", mean);
    CHECK(fabs(sd - 2.0) < 0.03, "normal stddev %g, want 2", sd);
    free(x);

    /* A fill large enough to be split over threads (an odd length across several chunks)
       gives the values, and leaves the state, of one thread's Box-Muller over the same draws. */
    const int64_t big = 3 * ((int64_t)1 << 19) + 7;
    x = xcalloc((size_t)big, sizeof(float));
    fai_ref_rng_seed(&a, 7);
    fai_ref_fill_normal(&a, x, big, 1.5);
    fai_ref_rng_seed(&b, 7);
    int64_t differ = 0;
    for (int64_t i = 0; i < big; i += 2) {
        const double radius = 1.5 * sqrt(-2.0 * log(1.0 - fai_ref_rng_uniform(&b)));
        const double angle = 6.283185307179586476925286766559 * fai_ref_rng_uniform(&b);
        differ += x[i] != (float)(radius * cos(angle));
        if (i + 1 < big)
            differ += x[i + 1] != (float)(radius * sin(angle));
    }
    CHECK(differ == 0, "a threaded fill differs from one thread's in %lld values", (long long)differ);
    CHECK(fai_ref_rng_uniform(&a) == fai_ref_rng_uniform(&b), "a threaded fill left another state");
    free(x);
}

/* fai_ref_parallel_for visits every item once, with uneven and single-item chunks. */
static void count_items(int64_t first, int64_t end, void *ctx)
{
    int *seen = ctx;
    for (int64_t i = first; i < end; i++)
        seen[i]++;
}

static void test_parallel_for(void)
{
    enum { N = 1001 };
    static const int64_t grains[] = {1, 7, 1000, 5000};
    for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
        int *seen = xcalloc(N, sizeof(int));
        fai_ref_parallel_for(N, grains[g], count_items, seen);
        int bad = 0;
        for (int i = 0; i < N; i++)
            bad += seen[i] != 1;
        CHECK(bad == 0, "grain %lld: %d items not visited exactly once", (long long)grains[g], bad);
        free(seen);
    }
    fai_ref_parallel_for(0, 1, count_items, NULL); /* nothing to do: fn is never called */
    /* grains: items making up a chunk's work, at least one */
    CHECK(fai_ref_grain(1000, 1 << 20) == 1048, "grain of 1000-unit items: %lld", (long long)fai_ref_grain(1000, 1 << 20));
    CHECK(fai_ref_grain(1 << 20, 1 << 20) == 1 && fai_ref_grain((int64_t)1 << 30, 1 << 20) == 1,
          "items as large as a chunk or larger get a grain of 1");

    /* A reference large enough to be split over threads gives one thread's result bit for
       bit (causal, ALiBi, GQA, sinks). */
    const int sq = 3, hq = 4, hk = 2, sk = 40000, d = 32;
    const double sinks[4] = {0.5, -1.0, 2.0, 0.0};
    fai_ref_problem p = {hq, hk, d, sq, sk, 0.2, 1, 1, NULL, 0, 0, 0, 0.0, sinks};
    float *q = xcalloc((int64_t)sq * hq * d, sizeof(float));
    float *k = xcalloc((int64_t)sk * hk * d, sizeof(float)), *v = xcalloc((int64_t)sk * hk * d, sizeof(float));
    double *o[2], *lse[2];
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, 11);
    fai_ref_fill_normal(&rng, q, (int64_t)sq * hq * d, 1.0);
    fai_ref_fill_normal(&rng, k, (int64_t)sk * hk * d, 1.0);
    fai_ref_fill_normal(&rng, v, (int64_t)sk * hk * d, 1.0);
    const char *threads = getenv("FAI_REF_THREADS");
    char *saved = threads ? strdup(threads) : NULL;
    for (int run = 0; run < 2; run++) { /* 4 threads (even on a one-core machine), then 1 */
        o[run] = xcalloc((int64_t)sq * hq * d, sizeof(double));
        lse[run] = xcalloc((int64_t)sq * hq, sizeof(double));
        setenv("FAI_REF_THREADS", run == 0 ? "4" : "1", 1);
        CHECK(fai_ref_attention(&p, q, k, v, o[run], lse[run]) == 0, "returned non-zero");
    }
    if (saved)
        setenv("FAI_REF_THREADS", saved, 1);
    else
        unsetenv("FAI_REF_THREADS");
    free(saved);
    CHECK(memcmp(o[0], o[1], sizeof(double) * (size_t)(sq * hq * d)) == 0 &&
              memcmp(lse[0], lse[1], sizeof(double) * (size_t)(sq * hq)) == 0,
          "a reference split over threads differs from one thread's");
    for (int run = 0; run < 2; run++)
        free(o[run]), free(lse[run]);
    free(q), free(k), free(v);
}

/* ---- the variants: sliding window, logit soft-cap, attention sinks ------------------- */

static void test_hand_window(void)
{
    /* One query, 5 keys: diagonal 4, window left 1 keeps keys 3 and 4 (the huge scores of
       keys 0..2 must not leak). Keys 3, 4 give scores 0 and ln 3 as in test_hand_two_keys. */
    const float q[] = {1}, k[] = {5, 5, 5, 0, 1}, v[] = {100, 100, 100, 2, 6};
    double o[1], lse[1];
    fai_ref_problem p = {1, 1, 1, 1, 5, log(3.0), 0, 0, NULL, 1, 1, -1, 0.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("o", o[0], 5.0, 1e-15);
    CHECK_NEAR("lse", lse[0], log(4.0), 1e-15);
    /* left 0, right 0: the diagonal key alone. */
    p.window_left = 0;
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("diagonal only", o[0], 6.0, 1e-15);
    /* A window wholly before the keys (seq_q > seq_k, right 0): no key, zeros, -inf. */
    fai_ref_problem none = {1, 1, 1, 3, 1, 1.0, 0, 0, NULL, 1, 0, 0, 0.0, NULL};
    const float q3[] = {1, 1, 1};
    double o3[3], lse3[3];
    CHECK(fai_ref_attention(&none, q3, k, v, o3, lse3) == 0, "returned non-zero");
    CHECK(o3[0] == 0.0 && isinf(lse3[0]) && lse3[0] < 0, "row 0 sees no key: o %g lse %g", o3[0], lse3[0]);
    CHECK_NEAR("row 2 sees key 0", o3[2], 100.0, 1e-15);
}

static void test_hand_softcap(void)
{
    /* Scores 0 and 10 capped at 5: 5 tanh(2); weights 1 : e^(5 tanh 2). */
    const float q[] = {1}, k[] = {0, 1}, v[] = {2, 6};
    double o[1], lse[1];
    fai_ref_problem p = {1, 1, 1, 1, 2, 10.0, 0, 0, NULL, 0, 0, 0, 5.0, NULL};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    const double e = exp(5.0 * tanh(2.0));
    CHECK_NEAR("o", o[0], (2.0 + 6.0 * e) / (1.0 + e), 1e-14);
    CHECK_NEAR("lse", lse[0], log(1.0 + e), 1e-14);
    p.softcap = -1.0;
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == -1, "a negative softcap must be rejected");
}

static void test_hand_sinks(void)
{
    /* One key with score ln 3 and a sink of 0: weight 3 / (1 + 3) on v = 4, o = 3; lse ln 4. */
    const float q[] = {1}, k[] = {1}, v[] = {4};
    const double sink[] = {0.0};
    double o[2], lse[2];
    fai_ref_problem p = {1, 1, 1, 1, 1, log(3.0), 0, 0, NULL, 0, 0, 0, 0.0, sink};
    CHECK(fai_ref_attention(&p, q, k, v, o, lse) == 0, "returned non-zero");
    CHECK_NEAR("o", o[0], 3.0, 1e-15);
    CHECK_NEAR("lse", lse[0], log(4.0), 1e-15);
    /* Causal, seq_q 2 > seq_k 1: row 0 sees nothing: zeros and the sink as its LSE. */
    const float q2[] = {1, 1};
    fai_ref_problem c = {1, 1, 1, 2, 1, log(3.0), 1, 0, NULL, 0, 0, 0, 0.0, sink};
    CHECK(fai_ref_attention(&c, q2, k, v, o, lse) == 0, "returned non-zero");
    CHECK(o[0] == 0.0 && lse[0] == 0.0, "row 0: o %g, lse %g (want 0, the sink)", o[0], lse[0]);
    CHECK_NEAR("row 1", o[1], 3.0, 1e-15);
}

/* Variants that must reduce to the plain function, on random GQA problems. */
static void test_variant_identities(fai_ref_rng *rng)
{
    const fai_ref_problem base = {6, 2, 8, 9, 21, 0.4, 0, 1, NULL, 0, 0, 0, 0.0, NULL};
    problem_data a = make_problem(base, rng), b = make_problem(base, rng);
    memcpy(b.q, a.q, sizeof(float) * (size_t)a.nq);
    memcpy(b.k, a.k, sizeof(float) * (size_t)a.nkv);
    memcpy(b.v, a.v, sizeof(float) * (size_t)a.nkv);
    double sinks[6];
    for (int h = 0; h < 6; h++)
        sinks[h] = -1e300; /* exp(sink - m) is exactly 0 */
    struct {
        const char *name;
        int causal_a, window, left, right;
        double cap;
        const double *sinks;
    } cases[] = {
        {"window (-1, -1) = none", 0, 1, -1, -1, 0.0, NULL},
        {"window (-1, 0) = causal", 1, 1, -1, 0, 0.0, NULL},
        {"window (big, big) = none", 0, 1, 1000, 1000, 0.0, NULL},
        {"causal + window (-1, 5) = causal", 1, 1, -1, 5, 0.0, NULL},
        {"softcap 1e12 = none", 0, 0, 0, 0, 1e12, NULL},
        {"sinks of -1e300 = none", 0, 0, 0, 0, 0.0, sinks},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        a.p.causal = cases[t].causal_a;
        b.p.causal = t == 3 ? 1 : 0;
        b.p.window = cases[t].window;
        b.p.window_left = cases[t].left;
        b.p.window_right = cases[t].right;
        b.p.softcap = cases[t].cap;
        b.p.sinks = cases[t].sinks;
        CHECK(run(&a) == 0 && run(&b) == 0, "%s: returned non-zero", cases[t].name);
        double worst = 0.0; /* NaN-aware: a NaN anywhere makes it NaN, which fails the check */
        for (int64_t i = 0; i < a.nq; i++) {
            const double e = fabs(a.o[i] - b.o[i]);
            if (!(e <= worst))
                worst = e;
        }
        for (int64_t i = 0; i < a.nlse; i++) {
            if (isinf(a.lse[i]) && a.lse[i] == b.lse[i])
                continue;
            const double e = fabs(a.lse[i] - b.lse[i]);
            if (!(e <= worst))
                worst = e;
        }
        CHECK(worst <= 1e-12, "%s: differs by %g", cases[t].name, worst);
    }
    /* A window of left 2, right 1 against the definition: each row's visible keys by hand. */
    b.p.causal = 0, b.p.window = 1, b.p.window_left = 2, b.p.window_right = 1, b.p.softcap = 0.0, b.p.sinks = NULL;
    b.p.alibi = 0;
    CHECK(run(&b) == 0, "returned non-zero");
    const int diag0 = b.p.seq_k - b.p.seq_q;
    for (int i = 0; i < b.p.seq_q; i++)
        for (int h = 0; h < b.p.num_q_heads; h++) {
            const int kvh = h / (b.p.num_q_heads / b.p.num_kv_heads), dg = i + diag0;
            double m = -INFINITY, sc[32];
            for (int j = dg - 2; j <= dg + 1; j++) {
                if (j < 0 || j >= b.p.seq_k)
                    continue;
                double dot = 0;
                for (int c = 0; c < b.p.head_dim; c++)
                    dot += (double)b.q[((int64_t)i * b.p.num_q_heads + h) * b.p.head_dim + c] *
                           (double)b.k[((int64_t)j * b.p.num_kv_heads + kvh) * b.p.head_dim + c];
                sc[j - dg + 2] = b.p.softmax_scale * dot;
                m = fmax(m, sc[j - dg + 2]);
            }
            double sum = 0, out0 = 0;
            for (int j = dg - 2; j <= dg + 1; j++) {
                if (j < 0 || j >= b.p.seq_k)
                    continue;
                const double w = exp(sc[j - dg + 2] - m);
                sum += w;
                out0 += w * (double)b.v[((int64_t)j * b.p.num_kv_heads + kvh) * b.p.head_dim];
            }
            const double got = b.o[((int64_t)i * b.p.num_q_heads + h) * b.p.head_dim];
            CHECK(near(got, sum > 0 ? out0 / sum : 0.0, 1e-12), "window row %d head %d: %g vs %g", i, h, got,
                  sum > 0 ? out0 / sum : 0.0);
        }
    free_problem(&a);
    free_problem(&b);
}

/* Every variant at once (GQA, caller ALiBi slopes, soft-cap, window, distinct sinks per query
 * head, causal) against the definition written out per row: catches a sink read per KV head,
 * a cap applied after the bias, or a window off by one. */
static void test_all_variants_against_definition(fai_ref_rng *rng)
{
    const double slopes[6] = {0.5, 0.25, 0.125, 0.3, 0.05, 0.9};
    const double sinks[6] = {-1.0, 0.5, 2.0, -3.0, 1.0, 0.0};
    fai_ref_problem p = {6, 2, 8, 13, 29, 0.7, 1, 1, slopes, 1, 9, 0, 1.5, sinks};
    problem_data d = make_problem(p, rng);
    CHECK(run(&d) == 0, "returned non-zero");
    const int group = 3, diag0 = p.seq_k - p.seq_q;
    double worst = 0.0;
    for (int i = 0; i < p.seq_q; i++)
        for (int h = 0; h < p.num_q_heads; h++) {
            const int dg = i + diag0, kvh = h / group;
            double sc[64], m = sinks[h];
            for (int j = 0; j < p.seq_k; j++) {
                sc[j] = -INFINITY;
                if (j > dg || j < dg - 9) /* causal (right 0) and window left 9 */
                    continue;
                double dot = 0;
                for (int c = 0; c < p.head_dim; c++)
                    dot += (double)d.q[((int64_t)i * p.num_q_heads + h) * p.head_dim + c] *
                           (double)d.k[((int64_t)j * p.num_kv_heads + kvh) * p.head_dim + c];
                const double s = p.softmax_scale * dot;
                sc[j] = 1.5 * tanh(s / 1.5) - slopes[h] * fabs((double)(dg - j));
                m = fmax(m, sc[j]);
            }
            double sum = exp(sinks[h] - m);
            for (int j = 0; j < p.seq_k; j++)
                sum += exp(sc[j] - m);
            for (int c = 0; c < p.head_dim; c++) {
                double o = 0;
                for (int j = 0; j < p.seq_k; j++)
                    o += exp(sc[j] - m) * (double)d.v[((int64_t)j * p.num_kv_heads + kvh) * p.head_dim + c];
                const double e = fabs(o / sum - d.o[((int64_t)i * p.num_q_heads + h) * p.head_dim + c]);
                if (!(e <= worst))
                    worst = e;
            }
            const double e = fabs(m + log(sum) - d.lse[(int64_t)i * p.num_q_heads + h]);
            if (!(e <= worst))
                worst = e;
        }
    CHECK(worst <= 1e-12, "all variants: differs from the definition by %g", worst);
    free_problem(&d);
}

int main(void)
{
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, 20240611);
    test_hand_two_keys();
    test_hand_three_keys_dim2();
    test_hand_causal_bottom_right();
    test_hand_causal_fully_masked();
    test_hand_alibi();
    test_hand_alibi_standard_slopes();
    test_hand_gqa();
    test_standard_slopes();
    test_random_against_definition(&rng);
    test_weights_sum_to_one(&rng);
    test_key_permutation(&rng);
    test_gqa_equals_repeated_mha(&rng);
    test_causal_row_equals_its_prefix(&rng);
    test_empty_sequences(&rng);
    test_fully_masked_rows(&rng);
    test_large_logits(&rng);
    test_error_measures();
    test_bad_arguments();
    test_rng();
    test_parallel_for();
    test_hand_window();
    test_hand_softcap();
    test_hand_sinks();
    test_variant_identities(&rng);
    test_all_variants_against_definition(&rng);
    if (failures) {
        printf("test_reference: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_reference: all checks passed\n");
    return 0;
}
