#include "gpu_test_util.h"

#include <glob.h>
#include <math.h>
#include <string.h>

#include "prefill_args.h"

void gpu_require_device(const char *test_name)
{
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err == cudaSuccess && n > 0)
        return;
    /* Skipped only where there is no GPU: a machine with an NVIDIA device node whose CUDA
     * cannot be used (a driver too old for the runtime, a failed initialization) fails, so
     * that a broken setup is not reported as tests skipped. */
    glob_t gpus; /* (a GPU's node: /dev/nvidiactl alone comes with the driver, GPU or not) */
    const int rc = glob("/dev/nvidia[0-9]*", 0, NULL, &gpus), found = rc == 0 && gpus.gl_pathc > 0;
    if (rc == 0)
        globfree(&gpus);
    if (found) {
        printf("%s: an NVIDIA device is present but CUDA is unusable: %s (%d devices)\n", test_name,
               cudaGetErrorString(err), n);
        exit(1);
    }
    printf("%s: no CUDA device, skipping\n", test_name);
    exit(GPU_TEST_SKIP);
}

uint16_t host_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* Inf or NaN */
        return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) /* rounds past 65504 */
        return (uint16_t)(sign | 0x7c00u);
    if (absx < 0x38800000u) { /* subnormal or zero in FP16: scale by 2^24 and round */
        float a;
        memcpy(&a, &absx, 4);
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    }
    /* Normal: rebias the exponent, round the 13 dropped bits to nearest even. */
    uint32_t h = ((absx - 0x38000000u) >> 13);
    const uint32_t rest = absx & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

float host_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    float f;
    if (exp == 0) {
        f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    uint32_t x = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112u) << 23) | (man << 13));
    memcpy(&f, &x, 4);
    return f;
}

void round_to_half(float *x, uint16_t *bits, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = host_float_to_half(x[i]);
        if (bits)
            bits[i] = h;
        x[i] = host_half_to_float(h);
    }
}

uint16_t host_float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) /* NaN: keep the sign, make it quiet */
        return (uint16_t)((x >> 16) | 0x40u);
    const uint32_t rest = x & 0xffffu, keep = x >> 16;
    /* round to nearest even on the 16 dropped bits; a carry into the exponent is right,
       and past the largest finite value it gives infinity */
    return (uint16_t)(keep + (rest > 0x8000u || (rest == 0x8000u && (keep & 1u))));
}

float host_bf16_to_float(uint16_t b)
{
    const uint32_t x = (uint32_t)b << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

void host_encode_row(fai_dtype dtype, int bf16_scale, const float *x, int d, uint8_t *out, float *scale, float *deq)
{
    *scale = 0.0f;
    if (dtype == FAI_DTYPE_FP16) {
        for (int e = 0; e < d; e++) {
            const uint16_t h = host_float_to_half(x[e]);
            memcpy(out + 2 * e, &h, 2);
            deq[e] = host_half_to_float(h);
        }
    } else if (dtype == FAI_DTYPE_INT8) {
        float amax = 0.0f;
        for (int e = 0; e < d; e++)
            amax = fmaxf(amax, fabsf(x[e]));
        *scale = fai_int8_row_scale(amax, bf16_scale); /* (as fai_kv_append) */
        for (int e = 0; e < d; e++) {
            const int8_t q = fai_int8_quantize(x[e], *scale);
            out[e] = (uint8_t)q;
            deq[e] = fai_int8_dequantize(q, *scale);
        }
    } else {
        const int e4m3 = dtype == FAI_DTYPE_FP8_E4M3;
        for (int e = 0; e < d; e++) {
            out[e] = e4m3 ? fai_fp8_e4m3_from_float(x[e]) : fai_fp8_e5m2_from_float(x[e]);
            deq[e] = e4m3 ? fai_fp8_e4m3_to_float(out[e]) : fai_fp8_e5m2_to_float(out[e]);
        }
    }
}

const char *dtype_short(fai_dtype dtype)
{
    switch (dtype) {
    case FAI_DTYPE_FP16: return "fp16";
    case FAI_DTYPE_BF16: return "bf16";
    case FAI_DTYPE_INT8: return "int8";
    case FAI_DTYPE_FP8_E4M3: return "e4m3";
    case FAI_DTYPE_FP8_E5M2: return "e5m2";
    }
    return "?";
}

int prefill_window_margin(int d, int seq_q)
{
    const char *e = getenv("FAI_PREFILL_SM90");
    return seq_q > 1 && e && strcmp(e, "0") == 0 ? FAI_PREFILL_BN(d) : 128;
}

int rel_l2_within(double se2, double sr2, int64_t n, double tol, double *rel)
{
    *rel = sr2 > 0 ? sqrt(se2 / sr2) : sqrt(se2);
    return n == 0 || *rel <= tol || sqrt(se2 / (double)n) <= 1e-6;
}
