/* GPU test of the KV-cache codecs: on the device, the software codecs of src/kv_codec.h and
 * (on sm_89+ code) the hardware conversions (cvt.rn.satfinite to E4M3/E5M2, from FP32 and
 * from FP16, and back to FP16) must agree bit for bit with the host functions, which
 * test_codec checks exhaustively against double-precision rounding. Inputs: all 65536 FP16
 * values, all 256 codes, FP32 values at and around every midpoint between FP8 values plus
 * huge, tiny, infinite and NaN ones, and all 65536 BF16 values as FP32 (fai_kv_append's BF16
 * rows encode through them: software on sm_80, cvt from f32 on sm_89+). Exits 77 without a
 * GPU. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test_util.h"
#include "kernels/ptx.cuh"
#include "kv_codec.h"

enum { NH = 65536, NC = 256 };

typedef struct results {
    uint8_t sw43[NH], sw52[NH];     /* software, FP16 inputs */
    uint8_t hw43[NH], hw52[NH];     /* hardware from f16x2 */
    uint8_t hwf43[NH], hwf52[NH];   /* hardware from f32 (the FP16 value as a float) */
    float swdec43[NC], swdec52[NC]; /* software decoding */
    uint16_t hwdec43[NC], hwdec52[NC]; /* hardware decoding, FP16 bits */
    int has_hw;
} results;

__global__ void codec_halves(results *r)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= NH)
        return;
    const float x = fai_half_bits_to_float((uint16_t)i);
    r->sw43[i] = fai_fp8_e4m3_from_float(x);
    r->sw52[i] = fai_fp8_e5m2_from_float(x);
#if FAI_HAS_FP8_CVT
    r->hw43[i] = (uint8_t)ptx_cvt_e4m3x2_f16x2((uint32_t)i);
    r->hw52[i] = (uint8_t)ptx_cvt_e5m2x2_f16x2((uint32_t)i);
    r->hwf43[i] = (uint8_t)(ptx_cvt_e4m3x2_f32(x, 0.0f) >> 8);
    r->hwf52[i] = (uint8_t)(ptx_cvt_e5m2x2_f32(x, 0.0f) >> 8);
    if (i < NC) {
        r->hwdec43[i] = (uint16_t)ptx_cvt_f16x2_e4m3x2((uint16_t)i);
        r->hwdec52[i] = (uint16_t)ptx_cvt_f16x2_e5m2x2((uint16_t)i);
    }
    if (i == 0)
        r->has_hw = 1;
#endif
    if (i < NC) {
        r->swdec43[i] = fai_fp8_e4m3_to_float((uint8_t)i);
        r->swdec52[i] = fai_fp8_e5m2_to_float((uint8_t)i);
    }
}

/* FP32 inputs: software and (sm_89+) hardware codes, packed sw43 | sw52 << 8 | hw43 << 16 |
 * hw52 << 24. */
__global__ void codec_floats(const float *x, uint32_t *out, int n, int *has_hw)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    uint32_t v = fai_fp8_e4m3_from_float(x[i]) | (uint32_t)fai_fp8_e5m2_from_float(x[i]) << 8;
#if FAI_HAS_FP8_CVT
    v |= (uint32_t)(ptx_cvt_e4m3x2_f32(0.0f, x[i]) & 0xFFu) << 16;
    v |= (uint32_t)(ptx_cvt_e5m2x2_f32(0.0f, x[i]) & 0xFFu) << 24;
    if (i == 0)
        *has_hw = 1;
#endif
    out[i] = v;
}

static int failures;
#define EXPECT(cond, ...)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            if (failures < 20) {                                                            \
                fprintf(stderr, __VA_ARGS__);                                               \
                fputc('\n', stderr);                                                        \
            }                                                                               \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

static int same_float(float a, float b)
{
    uint32_t ua, ub;
    memcpy(&ua, &a, 4);
    memcpy(&ub, &b, 4);
    return ua == ub || (isnan(a) && isnan(b));
}

int main(void)
{
    gpu_require_device("test_codec_device");
    results *r_dev, *r = (results *)calloc(1, sizeof(results));
    CUDA_CHECK(cudaMalloc(&r_dev, sizeof(results)));
    /* Poisoned (0xA5: a code no small positive input has, a float no decoding gives) so that an
     * element the kernel did not write fails; has_hw alone starts at 0. */
    CUDA_CHECK(cudaMemset(r_dev, 0xA5, sizeof(results)));
    CUDA_CHECK(cudaMemset((char *)r_dev + offsetof(results, has_hw), 0, sizeof(int)));
    codec_halves<<<NH / 256, 256>>>(r_dev);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(r, r_dev, sizeof(results), cudaMemcpyDeviceToHost));

    for (int i = 0; i < NH; i++) {
        const float x = fai_half_bits_to_float((uint16_t)i);
        const uint8_t h43 = fai_fp8_e4m3_from_float(x), h52 = fai_fp8_e5m2_from_float(x);
        EXPECT(r->sw43[i] == h43, "e4m3: fp16 0x%04x: device software 0x%02x, host 0x%02x", i, r->sw43[i], h43);
        EXPECT(r->sw52[i] == h52, "e5m2: fp16 0x%04x: device software 0x%02x, host 0x%02x", i, r->sw52[i], h52);
        if (r->has_hw) {
            EXPECT(r->hw43[i] == h43, "e4m3: fp16 0x%04x: cvt from f16x2 0x%02x, host 0x%02x", i, r->hw43[i], h43);
            EXPECT(r->hw52[i] == h52, "e5m2: fp16 0x%04x: cvt from f16x2 0x%02x, host 0x%02x", i, r->hw52[i], h52);
            EXPECT(r->hwf43[i] == h43, "e4m3: fp16 0x%04x: cvt from f32 0x%02x, host 0x%02x", i, r->hwf43[i], h43);
            EXPECT(r->hwf52[i] == h52, "e5m2: fp16 0x%04x: cvt from f32 0x%02x, host 0x%02x", i, r->hwf52[i], h52);
        }
    }
    for (int c = 0; c < NC; c++) {
        const float d43 = fai_fp8_e4m3_to_float((uint8_t)c), d52 = fai_fp8_e5m2_to_float((uint8_t)c);
        EXPECT(same_float(r->swdec43[c], d43), "e4m3: code 0x%02x: device software %.9g, host %.9g", c,
               (double)r->swdec43[c], (double)d43);
        EXPECT(same_float(r->swdec52[c], d52), "e5m2: code 0x%02x: device software %.9g, host %.9g", c,
               (double)r->swdec52[c], (double)d52);
        if (r->has_hw) {
            EXPECT(same_float(host_half_to_float(r->hwdec43[c]), d43), "e4m3: code 0x%02x: cvt to f16 %.9g, host %.9g",
                   c, (double)host_half_to_float(r->hwdec43[c]), (double)d43);
            EXPECT(same_float(host_half_to_float(r->hwdec52[c]), d52), "e5m2: code 0x%02x: cvt to f16 %.9g, host %.9g",
                   c, (double)host_half_to_float(r->hwdec52[c]), (double)d52);
        }
    }

    /* FP32 inputs around every midpoint of both formats, and the edges. */
    enum { MAXF = 4096 + 65536 };
    float *xs = (float *)malloc(MAXF * sizeof(float));
    int n = 0;
    for (int f = 0; f < 2; f++)
        for (int c = 0; c + 1 < 128; c++) {
            const float a = f ? fai_fp8_e5m2_to_float((uint8_t)c) : fai_fp8_e4m3_to_float((uint8_t)c);
            const float b = f ? fai_fp8_e5m2_to_float((uint8_t)(c + 1)) : fai_fp8_e4m3_to_float((uint8_t)(c + 1));
            if (!isfinite(a) || !isfinite(b))
                break;
            const float mid = (a + b) / 2;
            const float around[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
            for (int k = 0; k < 3; k++) {
                xs[n++] = around[k];
                xs[n++] = -around[k];
            }
        }
    const float edge[] = {448.0f, 464.0f, 480.0f, 57344.0f, 61440.0f, 65504.0f, 1e30f, INFINITY, -INFINITY,
                          NAN, 1e-30f, 1e-45f, 0.0f, -0.0f};
    for (size_t k = 0; k < sizeof edge / sizeof edge[0]; k++)
        xs[n++] = edge[k];
    const int n_mid = n;
    for (int b = 0; b < 65536; b++) /* every BF16 value (NaNs, infinities, subnormals included) */
        xs[n++] = fai_bf16_bits_to_float((uint16_t)b);
    float *x_dev;
    uint32_t *out_dev, *out = (uint32_t *)malloc((size_t)n * sizeof(uint32_t));
    int *hw_dev, has_hw_f = 0;
    CUDA_CHECK(cudaMalloc(&x_dev, (size_t)n * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&out_dev, (size_t)n * sizeof(uint32_t)));
    CUDA_CHECK(cudaMemset(out_dev, 0xA5, (size_t)n * sizeof(uint32_t))); /* poisoned, as above */
    CUDA_CHECK(cudaMalloc(&hw_dev, sizeof(int)));
    CUDA_CHECK(cudaMemset(hw_dev, 0, sizeof(int)));
    CUDA_CHECK(cudaMemcpy(x_dev, xs, (size_t)n * sizeof(float), cudaMemcpyHostToDevice));
    codec_floats<<<(n + 255) / 256, 256>>>(x_dev, out_dev, n, hw_dev);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(out, out_dev, (size_t)n * sizeof(uint32_t), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(&has_hw_f, hw_dev, sizeof(int), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        const uint8_t h43 = fai_fp8_e4m3_from_float(xs[i]), h52 = fai_fp8_e5m2_from_float(xs[i]);
        EXPECT((out[i] & 0xFF) == h43, "e4m3: %.9g: device software 0x%02x, host 0x%02x", (double)xs[i],
               out[i] & 0xFF, h43);
        EXPECT(((out[i] >> 8) & 0xFF) == h52, "e5m2: %.9g: device software 0x%02x, host 0x%02x", (double)xs[i],
               (out[i] >> 8) & 0xFF, h52);
        if (has_hw_f) {
            EXPECT(((out[i] >> 16) & 0xFF) == h43, "e4m3: %.9g: cvt 0x%02x, host 0x%02x", (double)xs[i],
                   (out[i] >> 16) & 0xFF, h43);
            EXPECT((out[i] >> 24) == h52, "e5m2: %.9g: cvt 0x%02x, host 0x%02x", (double)xs[i], out[i] >> 24, h52);
        }
    }
    printf("test_codec_device: %d fp16 values, %d codes, %d fp32 values, %d bf16 values; hardware cvt %s; "
           "%d failures\n", NH, NC, n_mid, n - n_mid,
           r->has_hw && has_hw_f ? "compared" : "not in this build (sm_80 code): software only", failures);
    cudaFree(r_dev);
    cudaFree(x_dev);
    cudaFree(out_dev);
    cudaFree(hw_dev);
    free(r);
    free(xs);
    free(out);
    return failures ? 1 : 0;
}
