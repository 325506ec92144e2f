/* kv-quant-accuracy: how much each KV-cache quantization scheme changes decode attention,
 * computed on the CPU with the double-precision reference (src/reference) and the codecs the
 * kernels use (src/kv_codec.h). For every scheme, K/V distribution and length it quantizes
 * K and V, dequantizes them, and compares the attention output against the output on the
 * original FP16 values: relative L2, max abs error, cosine similarity (worst over queries).
 * Schemes: FP8 E4M3 and E5M2 (plain casts, no scale) and int8 with one FP32 scale per
 * tensor, per token (all heads), per token and head (fai's choice; also with the scale
 * rounded to BF16, FAI_SCALES_BF16X2), and per group of 32 dims. Prints markdown tables (docs/kv-quant.md holds a run). With --check it exits 1 if
 * the per-head int8 or FP8 E4M3 error on plain random data exceeds what the docs promise
 * (a CI guard against a codec regression). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_codec.h"
#include "reference.h"

enum scheme { FP16, E4M3, E5M2, INT8_TENSOR, INT8_TOKEN, INT8_HEAD, INT8_HEAD_BF16, INT8_GROUP32, NSCHEMES };
static const char *scheme_name[NSCHEMES] = {"fp16",           "fp8 e4m3",      "fp8 e5m2",
                                            "int8 per tensor", "int8 per token", "int8 per head",
                                            "int8 per head, BF16 scales", "int8 per group of 32"};

/* Bytes per token per KV head for K (V is the same), head dim d: codes plus scales. */
static double bytes_per_token_head(int s, int d, int heads)
{
    switch (s) {
    case FP16: return 2.0 * d;
    case E4M3:
    case E5M2: return d;
    case INT8_TENSOR: return d; /* one scale for the whole cache */
    case INT8_TOKEN: return d + 4.0 / heads;
    case INT8_HEAD: return d + 4.0;
    case INT8_HEAD_BF16: return d + 2.0; /* FAI_SCALES_BF16X2: a 4-byte word holds K's and V's */
    case INT8_GROUP32: return d + 4.0 * d / 32;
    }
    return 0;
}

/* Round to FP16 (round to nearest even) on the host: the values the GPU would hold. */
static float to_half(float x)
{
    if (x == 0.0f || !isfinite(x))
        return x;
    int e;
    frexpf(x, &e); /* x = m 2^e, 0.5 <= |m| < 1 */
    int q = e - 11; /* ulp exponent for normals: 10 mantissa bits */
    if (q < -24)
        q = -24; /* subnormals */
    const float ulp = ldexpf(1.0f, q);
    float r = rintf(x / ulp) * ulp;
    if (fabsf(r) > 65504.0f)
        r = copysignf(INFINITY, r);
    return r;
}

/* Quantizes and dequantizes x ([n tokens, h heads, d dims]) in place. */
static void quantize(int s, float *x, int n, int h, int d)
{
    const int64_t total = (int64_t)n * h * d;
    if (s == E4M3 || s == E5M2) {
        for (int64_t i = 0; i < total; i++)
            x[i] = s == E4M3 ? fai_fp8_e4m3_to_float(fai_fp8_e4m3_from_float(x[i]))
                             : fai_fp8_e5m2_to_float(fai_fp8_e5m2_from_float(x[i]));
        return;
    }
    if (s == FP16)
        return;
    /* int8: a group is a run of `len` consecutive values sharing one scale. */
    int64_t len = s == INT8_TENSOR            ? total
                  : s == INT8_TOKEN           ? (int64_t)h * d
                  : s == INT8_HEAD || s == INT8_HEAD_BF16 ? d
                                              : 32;
    for (int64_t g = 0; g < total; g += len) {
        float amax = 0.0f;
        for (int64_t i = g; i < g + len; i++)
            amax = fmaxf(amax, fabsf(x[i]));
        const float scale = fai_int8_row_scale(amax, s == INT8_HEAD_BF16); /* (as fai_kv_append) */
        for (int64_t i = g; i < g + len; i++)
            x[i] = fai_int8_dequantize(fai_int8_quantize(x[i], scale), scale);
    }
}

typedef struct errors {
    double rel_l2, max_abs, min_cos;
} errors;

/* Decode attention of `nq` random queries against K/V (one sequence); errors of `test`
 * against `base` outputs. */
static errors compare(const double *base, const double *test, int nq, int hq, int d)
{
    errors e = {0, 0, 1};
    double num = 0, den = 0;
    for (int r = 0; r < nq * hq; r++) {
        double dot = 0, nb = 0, nt = 0;
        for (int i = 0; i < d; i++) {
            const double b = base[(int64_t)r * d + i], t = test[(int64_t)r * d + i];
            num += (t - b) * (t - b);
            den += b * b;
            e.max_abs = fmax(e.max_abs, fabs(t - b));
            dot += b * t;
            nb += b * b;
            nt += t * t;
        }
        e.min_cos = fmin(e.min_cos, dot / sqrt(nb * nt));
    }
    e.rel_l2 = sqrt(num / den);
    return e;
}

int main(int argc, char **argv)
{
    const int check = argc > 1 && !strcmp(argv[1], "--check");
    const int hq = 8, hk = 8, d = 128, nq = 4;
    const int lens_full[] = {128, 1024, 8192}, lens_check[] = {1024};
    const int *lens = check ? lens_check : lens_full;
    const int nlens = check ? 1 : 3;
    const double scale = 1.0 / sqrt((double)d);
    int fail = 0;

    printf("Bytes per token per KV head (K; V the same), head dim %d, %d KV heads:\n\n", d, hk);
    printf("| scheme | bytes | vs fp16 |\n|---|---|---|\n");
    for (int s = 0; s < NSCHEMES; s++)
        printf("| %s | %.2f | %.3f |\n", scheme_name[s], bytes_per_token_head(s, d, hk),
               bytes_per_token_head(s, d, hk) / bytes_per_token_head(FP16, d, hk));

    for (int dist = 0; dist < 2; dist++) {
        printf("\n%s: decode attention error against the same attention on the FP16 cache "
               "(%d query heads, %d queries, worst cosine over rows)\n\n",
               dist == 0 ? "Random K/V, N(0, 1)" : "K with outlier channels (4 of 128 channels x10 to x50), V N(0, 1)",
               hq, nq);
        printf("| scheme | seq_k | rel L2 | max abs | min cosine |\n|---|---|---|---|---|\n");
        for (int li = 0; li < nlens; li++) {
            const int n = lens[li];
            const int64_t kv = (int64_t)n * hk * d;
            float *k = malloc(sizeof(float) * kv), *v = malloc(sizeof(float) * kv);
            float *kq = malloc(sizeof(float) * kv), *vq = malloc(sizeof(float) * kv);
            float *q = malloc(sizeof(float) * (size_t)nq * hq * d);
            double *o_base = malloc(sizeof(double) * (size_t)nq * hq * d);
            double *o_test = malloc(sizeof(double) * (size_t)nq * hq * d);
            fai_ref_rng rng;
            fai_ref_rng_seed(&rng, 1234u + (uint64_t)n * 7u + (uint64_t)dist);
            fai_ref_fill_normal(&rng, k, kv, 1.0);
            fai_ref_fill_normal(&rng, v, kv, 1.0);
            fai_ref_fill_normal(&rng, q, (int64_t)nq * hq * d, 1.0);
            if (dist == 1) {
                const int outlier[4] = {3, 17, 64, 100};
                const float gain[4] = {10.0f, 20.0f, 35.0f, 50.0f};
                for (int64_t t = 0; t < (int64_t)n * hk; t++)
                    for (int c = 0; c < 4; c++)
                        k[t * d + outlier[c]] *= gain[c];
            }
            for (int64_t i = 0; i < kv; i++) {
                k[i] = to_half(k[i]);
                v[i] = to_half(v[i]);
            }
            for (int64_t i = 0; i < (int64_t)nq * hq * d; i++)
                q[i] = to_half(q[i]);
            /* nq independent decode queries: seq_q = nq without a causal mask is exactly nq
             * decode rows against the same keys. */
            fai_ref_problem p = {hq, hk, d, nq, n, scale, 0, 0, NULL, 0, 0, 0, 0.0, NULL};
            if (fai_ref_attention(&p, q, k, v, o_base, NULL) != 0) {
                fprintf(stderr, "kv-quant-accuracy: the reference failed\n");
                return 2;
            }
            for (int s = 1; s < NSCHEMES; s++) {
                memcpy(kq, k, sizeof(float) * kv);
                memcpy(vq, v, sizeof(float) * kv);
                quantize(s, kq, n, hk, d);
                quantize(s, vq, n, hk, d);
                if (fai_ref_attention(&p, q, kq, vq, o_test, NULL) != 0) {
                    fprintf(stderr, "kv-quant-accuracy: the reference failed\n");
                    return 2;
                }
                const errors e = compare(o_base, o_test, nq, hq, d);
                printf("| %s | %d | %.2e | %.2e | %.6f |\n", scheme_name[s], n, e.rel_l2, e.max_abs, e.min_cos);
                /* Bounded above by the documented figures, and below: a "quantizer" that left
                 * the values alone would show no error at all. Written as what must hold, so
                 * that a NaN (every comparison false) fails too. */
                const double bound = s == INT8_HEAD || s == INT8_HEAD_BF16 ? 2e-2 : s == E4M3 ? 6e-2 : INFINITY;
                if (check && dist == 0 && !(e.rel_l2 >= 1e-3 && e.rel_l2 <= bound)) {
                    fprintf(stderr, "kv-quant-accuracy: %s rel L2 %.3g is outside the documented bounds\n",
                            scheme_name[s], e.rel_l2);
                    fail = 1;
                }
            }
            free(k);
            free(v);
            free(kq);
            free(vq);
            free(q);
            free(o_base);
            free(o_test);
        }
    }
    return fail;
}
