/* GPU test of values at the edges of the formats, through the public calls (small shapes):
 *  - an int8 cache written by fai_kv_append from BF16 rows beyond FP16's range (a V element
 *    of 70000, 140000 with BF16X2 scales, in the row of the key every query of its group
 *    favours): fai_decode with BF16 queries on both decode kernels (forced plans). The
 *    CUDA-core kernel computes in FP32 and must match the double reference on the
 *    dequantized cache; the tensor-core kernel packs each key's weight times its row's
 *    max|v| (max|v| / 2 with BF16X2 scales) as FP16, which saturates there (docs/api.md),
 *    and must give finite outputs (it gave infinities and NaN before) that match the
 *    reference on the KV head whose values stay in range;
 *  - BF16 rows of magnitudes 1e-18 .. 1e-40 appended to an int8 cache: scales under 2^-64
 *    and down to subnormal (whose reciprocal overflows FP32); codes and scales bit for bit
 *    those of the host codec (src/kv_codec.h), and each code round(x / scale) in double.
 * Both with FP32 scales and with FAI_SCALES_BF16X2 (scales rounded to BF16; up to 2^-134 they
 * round to 0 and code their rows as zeros). Outputs are poisoned (NaN) before each call. Exits 77 without a GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "decode_args.h"
#include "decode_plan.h"
#include "fai.h"
#include "gpu_test_util.h"
#include "reference.h"

enum { HQ = 8, HK = 2, D = 128, LEN = 64, BIG_KEY = 37 };

static int g_failures;
static int g_pairs; /* the scales are FAI_SCALES_BF16X2 words at ks (vs unused) */
#define EXPECT(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__);                     \
            printf(__VA_ARGS__);                                              \
            printf("\n");                                                     \
            g_failures++;                                                     \
        }                                                                     \
    } while (0)

static void *upload(const void *host, size_t bytes)
{
    void *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, bytes));
    CUDA_CHECK(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* BF16 rows [tokens, heads, D], packed. */
static fai_tensor bf16_rows(void *data, int heads) { return (fai_tensor){data, FAI_DTYPE_BF16, (int64_t)heads * D, D}; }

/* The int8 cache [1, LEN, HK, D] with scales [1, LEN, HK] both calls use. */
static fai_kv_cache int8_cache(int8_t *kc, int8_t *vc, float *ks, float *vs, int32_t *lens_dev)
{
    fai_kv_cache c;
    memset(&c, 0, sizeof c);
    c.dtype = FAI_DTYPE_INT8;
    c.k = kc;
    c.v = vc;
    c.scale_format = g_pairs ? FAI_SCALES_BF16X2 : FAI_SCALES_FP32;
    c.k_scale = ks;
    c.v_scale = g_pairs ? NULL : vs;
    c.capacity = LEN;
    c.seq_stride = (int64_t)LEN * HK * D;
    c.token_stride = HK * D;
    c.head_stride = D;
    c.scale_seq_stride = LEN * HK;
    c.scale_token_stride = HK;
    c.scale_head_stride = 1;
    c.seq_lens = lens_dev;
    return c;
}

/* BF16 rows [LEN, HK, D] (bits) into an int8 cache [1, LEN, HK, D] with scales [1, LEN, HK]
 * through fai_kv_append: both K and V from the same rows when v_bits is NULL. */
static void append_int8(const uint16_t *k_bits, const uint16_t *v_bits, int8_t *kc, int8_t *vc, float *ks, float *vs,
                        int32_t *lens_dev)
{
    const size_t n = (size_t)LEN * HK * D;
    void *kn = upload(k_bits, n * 2), *vn = upload(v_bits ? v_bits : k_bits, n * 2);
    int64_t slots[LEN];
    for (int t = 0; t < LEN; t++)
        slots[t] = t;
    void *slots_dev = upload(slots, sizeof slots);
    fai_kv_append_params a = fai_kv_append_params_default();
    a.num_kv_heads = HK;
    a.head_dim = D;
    a.num_tokens = LEN;
    a.k_new = bf16_rows(kn, HK);
    a.v_new = bf16_rows(vn, HK);
    a.slots = slots_dev;
    a.cache_batch = 1;
    a.cache = int8_cache(kc, vc, ks, vs, lens_dev);
    const fai_status st = fai_kv_append(&a, 0);
    if (st != FAI_SUCCESS) {
        printf("fai_kv_append: %s\n", fai_last_error());
        exit(1);
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaFree(kn);
    cudaFree(vn);
    cudaFree(slots_dev);
}

/* The int8 cache after fai_kv_append of BF16 rows `bits` ([LEN * HK, D]) against the host
 * codec (host_encode_row), codes and scales bit for bit, and each code against round(x /
 * scale) in double away from near-ties (where FP32's x * (1 / scale) may round the other
 * way). deq: where not NULL, the values the cache stands for. */
static void check_codes(const char *what, const uint16_t *bits, const int8_t *kc_dev, const float *ks_dev, int is_v,
                        float *deq)
{
    const size_t n = (size_t)LEN * HK * D;
    int8_t *codes = malloc(n), *want = malloc(n);
    float *scales = malloc(sizeof(float) * LEN * HK), *row_deq = malloc(sizeof(float) * D);
    CUDA_CHECK(cudaMemcpy(codes, kc_dev, n, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(scales, ks_dev, sizeof(float) * LEN * HK, cudaMemcpyDeviceToHost));
    int64_t bad_host = 0, bad_def = 0, bad_scale = 0;
    for (int r = 0; r < LEN * HK; r++) {
        float x[D], scale;
        for (int i = 0; i < D; i++)
            x[i] = host_bf16_to_float(bits[(size_t)r * D + i]);
        host_encode_row(FAI_DTYPE_INT8, g_pairs, x, D, (uint8_t *)want + (size_t)r * D, &scale,
                        deq ? deq + (size_t)r * D : row_deq);
        if (g_pairs) { /* the word's K (low) or V (high) BF16 half */
            const uint32_t w = fai_float_bits(scales[r]);
            bad_scale += fai_scale_pair_half(w, is_v) != (uint16_t)(fai_float_bits(scale) >> 16);
        } else {
            bad_scale += memcmp(&scale, &scales[r], sizeof scale) != 0;
        }
        for (int i = 0; i < D; i++) {
            const int8_t got = codes[(size_t)r * D + i];
            bad_host += got != want[(size_t)r * D + i];
            double q = scale > 0.0f ? (double)x[i] / (double)scale : 0.0;
            q = q > 127.0 ? 127.0 : q < -127.0 ? -127.0 : q;
            if (fabs(fabs(q - floor(q)) - 0.5) > 1e-3)
                bad_def += got != (int8_t)lrint(q);
        }
    }
    printf("  %-44s codes != host codec %lld, != round(x / scale) %lld, scales != host %lld\n", what,
           (long long)bad_host, (long long)bad_def, (long long)bad_scale);
    EXPECT(bad_host == 0 && bad_def == 0 && bad_scale == 0, "%s", what);
    free(codes);
    free(want);
    free(scales);
    free(row_deq);
}

int main(void)
{
    gpu_require_device("test_extremes");
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, 20261127);
    const size_t kvn = (size_t)LEN * HK * D, qn = (size_t)HQ * D;

    int8_t *kc, *vc;
    float *ks, *vs;
    int32_t *lens_dev;
    const int32_t len = LEN;
    CUDA_CHECK(cudaMalloc((void **)&kc, kvn));
    CUDA_CHECK(cudaMalloc((void **)&vc, kvn));
    CUDA_CHECK(cudaMalloc((void **)&ks, sizeof(float) * LEN * HK));
    CUDA_CHECK(cudaMalloc((void **)&vs, sizeof(float) * LEN * HK));
    lens_dev = upload(&len, sizeof len);
    for (g_pairs = 0; g_pairs < 2; g_pairs++) {
        printf("  int8 scales %s\n", g_pairs ? "FAI_SCALES_BF16X2" : "FAI_SCALES_FP32");

        /* 1. Tiny BF16 rows: row r of magnitude 10^-(18 + r % 23), random signs and spread. */
        {
            float *x = malloc(sizeof(float) * kvn);
            uint16_t *bits = malloc(sizeof(uint16_t) * kvn);
            fai_ref_fill_normal(&rng, x, (int64_t)kvn, 1.0);
            for (size_t i = 0; i < kvn; i++) {
                const int r = (int)(i / D);
                bits[i] = host_float_to_bf16(x[i] * powf(10.0f, -18.0f - (float)(r % 23)));
            }
            append_int8(bits, NULL, kc, vc, ks, vs, lens_dev);
            check_codes("int8 from BF16 rows of 1e-18 .. 1e-40", bits, kc, ks, 0, NULL);
            if (g_pairs) /* (the same rows as V: the words' high halves) */
                check_codes("  ... as V", bits, vc, ks, 1, NULL);
            free(x);
            free(bits);
        }

        /* 2. V beyond FP16's range. q, K, V ~ N(0, 1) in BF16; key BIG_KEY of KV head 0 is
         * each of its group's queries' mean direction (logits ~ 2-5 above the rest) and its V
         * row has 70000 in dim 0 (max|v| / 127 * 127 = 70000 > 65504); with BF16X2 scales, whose
         * weights carry scale * 64 (about max|v| / 2), 140000 (about 70500 > 65504). */
        float *q = malloc(sizeof(float) * qn), *k = malloc(sizeof(float) * kvn), *v = malloc(sizeof(float) * kvn);
        uint16_t *qb = malloc(sizeof(uint16_t) * qn), *kb = malloc(sizeof(uint16_t) * kvn), *vb = malloc(sizeof(uint16_t) * kvn);
        fai_ref_fill_normal(&rng, q, (int64_t)qn, 1.0);
        fai_ref_fill_normal(&rng, k, (int64_t)kvn, 1.0);
        fai_ref_fill_normal(&rng, v, (int64_t)kvn, 1.0);
        for (int i = 0; i < D; i++) {
            float m = 0.0f;
            for (int h = 0; h < HQ / HK; h++)
                m += q[h * D + i];
            k[((size_t)BIG_KEY * HK + 0) * D + i] = 0.5f * m;
        }
        const float big = g_pairs ? 140000.0f : 70000.0f;
        v[((size_t)BIG_KEY * HK + 0) * D + 0] = big;
        for (size_t i = 0; i < qn; i++) {
            qb[i] = host_float_to_bf16(q[i]);
            q[i] = host_bf16_to_float(qb[i]);
        }
        for (size_t i = 0; i < kvn; i++) {
            kb[i] = host_float_to_bf16(k[i]);
            vb[i] = host_float_to_bf16(v[i]);
        }
        append_int8(kb, vb, kc, vc, ks, vs, lens_dev);
        /* k and v become the values the cache stands for */
        check_codes("int8 from BF16 K rows (q's directions)", kb, kc, ks, 0, k);
        check_codes(g_pairs ? "int8 from BF16 V rows with 140000 in one" : "int8 from BF16 V rows with 70000 in one", vb,
                    vc, g_pairs ? ks : vs, 1, v);
        fai_ref_problem rp;
        memset(&rp, 0, sizeof rp);
        rp.num_q_heads = HQ;
        rp.num_kv_heads = HK;
        rp.head_dim = D;
        rp.seq_q = 1;
        rp.seq_k = LEN;
        rp.softmax_scale = 1.0 / sqrt((double)D);
        double *ref = malloc(sizeof(double) * qn);
        if (fai_ref_attention(&rp, q, k, v, ref, NULL) != 0) {
            printf("reference failed\n");
            return 1;
        }

        void *q_dev = upload(qb, qn * 2), *o_dev;
        CUDA_CHECK(cudaMalloc(&o_dev, qn * 2));
        fai_decode_params p = fai_decode_params_default();
        p.attn.num_q_heads = HQ;
        p.attn.num_kv_heads = HK;
        p.attn.head_dim = D;
        p.attn.softmax_scale = (float)rp.softmax_scale;
        p.batch = 1;
        p.q = bf16_rows(q_dev, HQ);
        p.o = bf16_rows(o_dev, HQ);
        p.cache = int8_cache(kc, vc, ks, vs, lens_dev);
        fai_device_info dev;
        if (fai_current_device("test_extremes", &dev) != FAI_SUCCESS) {
            printf("%s\n", fai_last_error());
            return 1;
        }
        uint16_t *ob = malloc(sizeof(uint16_t) * qn);
        float *of = malloc(sizeof(float) * qn);
        const int kernels[2] = {FAI_DECODE_SIMT, FAI_DECODE_MMA};
        for (int ki = 0; ki < 2; ki++) {
            fai_decode_plan plan;
            memset(&plan, 0, sizeof plan);
            if (fai_decode_make_plan_kv("test_extremes", FAI_DTYPE_INT8, 0, 1, HQ, HK, D, LEN, dev, kernels[ki], 1, 0, 0,
                                        &plan) != FAI_SUCCESS ||
                plan.kernel != kernels[ki]) {
                printf("  no plan for kernel %d: %s\n", kernels[ki], fai_last_error());
                g_failures++;
                continue;
            }
            CUDA_CHECK(cudaMemset(o_dev, 0xff, qn * 2)); /* NaN */
            const fai_status st = fai_decode_run_plan("test_extremes", &p, &plan, NULL, 0, 0);
            CUDA_CHECK(cudaDeviceSynchronize());
            EXPECT(st == FAI_SUCCESS, "fai_decode: %s", fai_last_error());
            CUDA_CHECK(cudaMemcpy(ob, o_dev, qn * 2, cudaMemcpyDeviceToHost));
            int nonfinite = 0;
            for (size_t i = 0; i < qn; i++) {
                of[i] = host_bf16_to_float(ob[i]);
                nonfinite += !isfinite(of[i]);
            }
            /* KV head 0's query heads (the big value) and KV head 1's, apart */
            const size_t half = qn / 2;
            const double rel0 = fai_ref_rel_l2(of, ref, (int64_t)half), rel1 = fai_ref_rel_l2(of + half, ref + half, (int64_t)half);
            const char *name = kernels[ki] == FAI_DECODE_MMA ? "tensor-core" : "CUDA-core";
            printf("  decode, V of %.0f, %-12s non-finite outputs %d, rel L2 head 0's group %.3g, head 1's %.3g "
                   "(out[0] %.6g, ref %.6g)\n",
                   (double)big, name, nonfinite, rel0, rel1, (double)of[0], ref[0]);
            EXPECT(nonfinite == 0, "%s kernel: %d non-finite outputs", name, nonfinite);
            EXPECT(rel1 <= 1.6e-2, "%s kernel: KV head 1's group rel L2 %.3g", name, rel1);
            if (kernels[ki] == FAI_DECODE_SIMT) /* FP32 throughout: exact up to BF16 rounding */
                EXPECT(rel0 <= 1.6e-2, "CUDA-core kernel: rel L2 %.3g", rel0);
        }
        free(q); free(k); free(v); free(qb); free(kb); free(vb); free(ref); free(ob); free(of);
        cudaFree(q_dev); cudaFree(o_dev);
    }
    printf("test_extremes: %s\n", g_failures ? "FAILED" : "passed");
    return g_failures ? 1 : 0;
}
