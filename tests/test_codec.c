/* CPU test of the KV-cache codecs (src/kv_codec.h), exhaustive where the domain allows:
 *  - every FP8 code of both formats decodes to the value an independent double-precision
 *    formula gives (and NaN / infinity where the format has them);
 *  - every one of the 65536 FP16 values and of the 65536 BF16 values (fai_kv_append's BF16
 *    rows), and every midpoint between adjacent FP8 values
 *    (with its neighbours one float ulp away), encodes to the code a brute-force search in
 *    double picks: the nearest finite value, ties to the even code, saturation to the
 *    largest finite value, NaN to 0x7F;
 *  - int8 per-head: codes within [-127, 127], every value within half a step of its
 *    original (plus the FP32 rounding of x / scale and q * scale), the row maximum at
 *    +-127, ties to even, zero rows guarded;
 *  - int8 scales kept as BF16 (FAI_SCALES_BF16X2): every FP32 scale bit pattern from 0 to
 *    +inf in steps of 61 (and every pattern near ties) rounds to the nearest BF16 a search in
 *    double picks, ties to even; rows coded with the rounded scale keep the bounds above,
 *    their maximum at +-127 even where the scale rounded down; the helpers built on it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test_util.h"
#include "kv_codec.h"

static int failures;

#define EXPECT(cond, ...)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            if (failures < 20) {                                                            \
                fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                             \
                fprintf(stderr, __VA_ARGS__);                                               \
                fputc('\n', stderr);                                                        \
            }                                                                               \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

typedef struct fp8_format {
    const char *name;
    int mant, bias;
    int has_inf;       /* E5M2: exponent all ones is inf (mantissa 0) or NaN */
    uint8_t (*encode)(float);
    float (*decode)(uint8_t);
    double value[256]; /* independent decoding, NAN for NaN codes */
    double max;
    int max_code;
} fp8_format;

static uint8_t enc43(float x) { return fai_fp8_e4m3_from_float(x); }
static uint8_t enc52(float x) { return fai_fp8_e5m2_from_float(x); }
static float dec43(uint8_t c) { return fai_fp8_e4m3_to_float(c); }
static float dec52(uint8_t c) { return fai_fp8_e5m2_to_float(c); }

/* The value of each code by the textbook formula, in double. */
static void tabulate(fp8_format *f)
{
    const int emax_field = (1 << (7 - f->mant)) - 1;
    f->max = 0.0;
    for (int c = 0; c < 256; c++) {
        const int s = c >> 7, e = (c >> f->mant) & emax_field, m = c & ((1 << f->mant) - 1);
        double v;
        if (e == emax_field && (f->has_inf || m == (1 << f->mant) - 1))
            v = f->has_inf ? (m == 0 ? INFINITY : NAN) : NAN;
        else if (e == 0)
            v = pow(2.0, 1 - f->bias) * ((double)m / (1 << f->mant));
        else
            v = pow(2.0, e - f->bias) * (1.0 + (double)m / (1 << f->mant));
        f->value[c] = s ? -v : v;
        if (!s && isfinite(v) && v > f->max) {
            f->max = v;
            f->max_code = c;
        }
    }
}

/* The code a correctly rounded, saturating conversion gives for x (double search). */
static int reference_encode(const fp8_format *f, double x)
{
    if (isnan(x))
        return 0x7F;
    const int sign = signbit(x) ? 0x80 : 0;
    const double a = fabs(x);
    if (a >= f->max)
        return sign | f->max_code;
    int best = -1;
    double best_err = INFINITY;
    for (int c = 0; c < 128; c++) { /* non-negative codes */
        const double v = f->value[c];
        if (!isfinite(v))
            continue;
        const double err = fabs(v - a);
        if (err < best_err || (err == best_err && (c & 1) == 0)) {
            best = c;
            best_err = err;
        }
    }
    return sign | best;
}

static int same_value(double a, float b)
{
    if (isnan(a))
        return isnan(b);
    return a == (double)b && !signbit(a) == !signbit(b);
}

static void test_format(fp8_format *f)
{
    tabulate(f);
    /* Every code decodes. */
    for (int c = 0; c < 256; c++)
        EXPECT(same_value(f->value[c], f->decode((uint8_t)c)), "%s: code 0x%02x decodes to %.9g, expected %.9g",
               f->name, c, (double)f->decode((uint8_t)c), f->value[c]);
    /* Every decodable finite value re-encodes to its own code (codes are unique values). */
    for (int c = 0; c < 256; c++)
        if (isfinite(f->value[c]))
            EXPECT(f->encode((float)f->value[c]) == c, "%s: %.9g re-encodes to 0x%02x, not 0x%02x", f->name,
                   f->value[c], f->encode((float)f->value[c]), c);
    /* Every FP16 value. */
    for (uint32_t h = 0; h < 65536; h++) {
        const float x = host_half_to_float((uint16_t)h);
        const int want = reference_encode(f, (double)x);
        const int got = f->encode(x);
        EXPECT(got == want, "%s: fp16 0x%04x (%.9g) encodes to 0x%02x, expected 0x%02x", f->name, h, (double)x, got,
               want);
        EXPECT(fai_half_bits_to_float((uint16_t)h) == x || (isnan(x) && isnan(fai_half_bits_to_float((uint16_t)h))),
               "fai_half_bits_to_float(0x%04x) differs from the test's conversion", h);
    }
    /* Every BF16 value (as FP32, exact: what fai_kv_append encodes from BF16 rows), NaNs,
     * infinities, huge and subnormal values included. */
    for (uint32_t b = 0; b < 65536; b++) {
        const float x = fai_bf16_bits_to_float((uint16_t)b);
        EXPECT(x == host_bf16_to_float((uint16_t)b) || (isnan(x) && isnan(host_bf16_to_float((uint16_t)b))),
               "fai_bf16_bits_to_float(0x%04x) differs from the test's conversion", b);
        const int want = reference_encode(f, (double)x);
        EXPECT(f->encode(x) == want, "%s: bf16 0x%04x (%.9g) encodes to 0x%02x, expected 0x%02x", f->name, b,
               (double)x, f->encode(x), want);
    }
    /* Midpoints between adjacent non-negative finite values, and one float ulp either side;
     * also past the largest value, and huge / infinite / NaN inputs. */
    for (int c = 0; c + 1 < 128; c++) {
        if (!isfinite(f->value[c + 1]))
            break;
        const float mid = (float)((f->value[c] + f->value[c + 1]) / 2); /* exact in float */
        const float xs[3] = {nextafterf(mid, 0.0f), mid, nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++)
            for (int s = 0; s < 2; s++) {
                const float x = s ? -xs[i] : xs[i];
                EXPECT(f->encode(x) == reference_encode(f, (double)x), "%s: %.9g encodes to 0x%02x, expected 0x%02x",
                       f->name, (double)x, f->encode(x), reference_encode(f, (double)x));
            }
    }
    const float edge[] = {(float)f->max, nextafterf((float)f->max, INFINITY), (float)(f->max * 1.0625),
                          (float)(f->max * 1.5), 1e30f, INFINITY, 1e-30f, 1e-45f, 0.0f};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
        for (int s = 0; s < 2; s++) {
            const float x = s ? -edge[i] : edge[i];
            EXPECT(f->encode(x) == reference_encode(f, (double)x), "%s: %.9g encodes to 0x%02x, expected 0x%02x",
                   f->name, (double)x, f->encode(x), reference_encode(f, (double)x));
        }
    EXPECT(f->encode(NAN) == 0x7F && f->encode(-NAN) == 0x7F, "%s: NaN must encode to 0x7F", f->name);
    EXPECT(f->encode(-0.0f) == 0x80 && f->encode(0.0f) == 0x00, "%s: signed zeros", f->name);
    EXPECT(f->encode(INFINITY) == f->max_code && f->encode(-INFINITY) == (0x80 | f->max_code),
           "%s: infinities saturate", f->name);
}

static void test_int8(void)
{
    /* NaN never reaches the float-to-int conversion; a NaN from inf / inf neither. */
    EXPECT(fai_int8_quantize(NAN, 1.0f) == 0 && fai_int8_quantize(INFINITY, INFINITY) == 0 &&
               fai_int8_quantize(INFINITY, 1.0f) == 127 && fai_int8_quantize(-INFINITY, 1.0f) == -127,
           "int8: NaN and infinities");
    /* A zero row: scale 0, codes 0, dequantized 0. */
    EXPECT(fai_int8_scale(0.0f) == 0.0f && fai_int8_quantize(0.0f, 0.0f) == 0 && fai_int8_quantize(1.0f, 0.0f) == 0,
           "int8: zero row");
    /* Ties go to even: with scale 1/8 (amax 127/8), x = (k + 1/2) / 8 is an exact tie. */
    const float sc = fai_int8_scale(127.0f / 8.0f);
    EXPECT(sc == 0.125f, "int8: scale of 127/8 is %.9g", (double)sc);
    for (int k = -127; k < 127; k++) {
        const float x = ((float)k + 0.5f) * 0.125f;
        const int want = (k % 2 == 0) ? k : k + 1;
        EXPECT(fai_int8_quantize(x, sc) == want, "int8: tie %.9g -> %d, expected %d", (double)x,
               fai_int8_quantize(x, sc), want);
    }
    /* The append kernel's rounding by addition equals fai_int8_quantize: every FP16 value
     * (and the infinities and NaN among them) under scales from 0 and subnormal through
     * 1 and up to infinity, and the ties of scale 1/8 above. */
    {
        const float scales[] = {0.0f, 1e-45f, 1e-40f, 1.17549435e-38f, 3e-30f, 1e-8f, 6.1e-5f, 0.0078125f, 0.125f,
                                0.3f, 1.0f, 1.0f / 127.0f, 3.14159f, 257.0f, 65504.0f / 127.0f, 1e30f, INFINITY};
        for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
            const float scale = scales[si], pre = fai_int8_pre(scale), inv = fai_int8_inv(scale);
            for (uint32_t h = 0; h < 65536; h++) {
                const float x = fai_half_bits_to_float((uint16_t)h);
                const int8_t want = fai_int8_quantize(x, scale), got = (int8_t)fai_int8_code_by_add(x, pre, inv);
                EXPECT(want == got, "int8 by addition: x %.9g scale %.9g -> %d, expected %d", (double)x, (double)scale,
                       got, want);
            }
        }
        for (int k = -127; k < 127; k++) {
            const float x = ((float)k + 0.5f) * 0.125f;
            EXPECT((int8_t)fai_int8_code_by_add(x, 1.0f, 8.0f) == fai_int8_quantize(x, 0.125f), "int8 by addition: tie %.9g",
                   (double)x);
        }
    }
    /* A BF16 row far below FP16's range: its scale (3e-37 / 127) is under 2^-128, whose
     * reciprocal overflows FP32; the codes are still round(x / scale). */
    {
        const float x[3] = {3e-37f, 1e-38f, 1e-40f};
        const float scale = fai_int8_scale(x[0]);
        const int want[3] = {127, 4, 0};
        EXPECT(scale < 0x1p-128f, "int8: the tiny row's scale %.9g is not under 2^-128", (double)scale);
        for (int i = 0; i < 3; i++) {
            EXPECT(fai_int8_quantize(x[i], scale) == want[i], "int8: tiny %.9g -> %d, expected %d", (double)x[i],
                   fai_int8_quantize(x[i], scale), want[i]);
            EXPECT((int8_t)fai_int8_code_by_add(x[i], fai_int8_pre(scale), fai_int8_inv(scale)) == want[i],
                   "int8 by addition: tiny %.9g", (double)x[i]);
        }
    }
    /* Random rows: the row maximum maps to +-127, every value within half a step. Ranges
     * 1e-6 .. 1e6, and BF16 rows of 1e-18 .. 1e-38 (scales under 2^-64, down to subnormal). */
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int row = 0; row < 30000; row++) {
        float x[128], amax = 0.0f;
        const int tiny = row >= 20000;
        const float range = tiny ? powf(10.0f, -18.0f - (float)(row % 21)) : powf(10.0f, (float)(row % 13) - 6.0f);
        for (int i = 0; i < 128; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = range * ((float)(state >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
            if (tiny) { /* rounded to BF16 (nearest even), the rows fai_kv_append takes */
                uint32_t u;
                memcpy(&u, &x[i], sizeof u);
                u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
                memcpy(&x[i], &u, sizeof u);
            }
            amax = fmaxf(amax, fabsf(x[i]));
        }
        const float scale = fai_int8_scale(amax);
        for (int i = 0; i < 128; i++) {
            const int8_t q = fai_int8_quantize(x[i], scale);
            EXPECT(q != -128, "int8: code %d out of range", q);
            const double err = fabs((double)fai_int8_dequantize(q, scale) - (double)x[i]);
            /* Half a step, plus what the FP32 quotient x / scale (up to 127, so within
             * 127 * 2^-24 of exact) and the FP32 product q * scale can add. */
            const double bound = (0.5 + 127.0 * 0x1p-24) * scale + fabs((double)x[i]) * 0x1p-24 +
                                 128.0 * 0x1p-149; /* (a subnormal scale and product: absolute steps) */
            EXPECT(err <= bound, "int8: %.9g -> %d * %.9g, error %.3g over half a step",
                   (double)x[i], q, (double)scale, err);
            if (fabsf(x[i]) == amax)
                EXPECT(q == (x[i] > 0 ? 127 : -127), "int8: row max %.9g -> %d", (double)x[i], q);
        }
    }
}

/* The BF16 a scale rounds to, by search in double: the nearer of the two BF16 values around
 * it (its upper 16 bits and the next pattern), the even one on a tie. */
static uint16_t bf16_nearest(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint32_t lo = u >> 16, hi = lo + 1;
    if (lo == 0x7F7Fu) /* above BF16's largest finite value: to +inf from half an ulp on (a tie: inf is even) */
        return (uint16_t)((u & 0xFFFFu) >= 0x8000u ? 0x7F80u : lo);
    if (lo == 0x7F80u) /* +inf */
        return (uint16_t)lo;
    const double dlo = fabs((double)x - (double)fai_bf16_bits_to_float((uint16_t)lo));
    const double dhi = fabs((double)fai_bf16_bits_to_float((uint16_t)hi) - (double)x);
    if (dlo < dhi)
        return (uint16_t)lo;
    if (dhi < dlo)
        return (uint16_t)hi;
    return (uint16_t)((lo & 1u) ? hi : lo);
}

static void test_int8_bf16_scale(void)
{
    /* every 61st pattern from 0 to +inf, and the patterns at and beside every 257th tie */
    for (uint64_t b = 0; b <= 0x7F800000u; b += 61) {
        float x;
        const uint32_t u = (uint32_t)b;
        memcpy(&x, &u, sizeof x);
        EXPECT(fai_int8_scale_bf16(x) == bf16_nearest(x), "bf16 scale: bits 0x%08x -> 0x%04x, expected 0x%04x", u,
               fai_int8_scale_bf16(x), bf16_nearest(x));
    }
    for (uint32_t hi = 0; hi < 0x7F80u; hi += 257)
        for (int dt = -1; dt <= 1; dt++) {
            const uint32_t u = (hi << 16 | 0x8000u) + (uint32_t)dt;
            float x;
            memcpy(&x, &u, sizeof x);
            EXPECT(fai_int8_scale_bf16(x) == bf16_nearest(x), "bf16 scale: tie bits 0x%08x -> 0x%04x, expected 0x%04x",
                   u, fai_int8_scale_bf16(x), bf16_nearest(x));
        }
    EXPECT(fai_int8_scale_bf16(INFINITY) == 0x7F80u && fai_int8_scale_bf16(0.0f) == 0 &&
               fai_int8_scale_bf16(0x1p-135f) == 0 && fai_int8_scale_bf16(0x1p-133f) == 0x0001u,
           "bf16 scale: inf, zero, and the smallest subnormals");

    /* Rows coded with the rounded scale: codes in range, the maximum at +-127 (the scale may
     * have rounded down: its quotient up to 127 (1 + 2^-8) clamps), every value within half a
     * step of the BF16 scale, plus the FP32 rounding, plus what the clamp cuts (2^-8 of a
     * maximum's step). */
    uint64_t state = 0x2545F4914F6CDD1Dull;
    int rounded_down = 0;
    for (int row = 0; row < 30000; row++) {
        float x[128], amax = 0.0f;
        const float range = powf(10.0f, (float)(row % 17) - 8.0f);
        for (int i = 0; i < 128; i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = range * ((float)(state >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
            amax = fmaxf(amax, fabsf(x[i]));
        }
        const float exact = fai_int8_scale(amax), scale = fai_bf16_bits_to_float(fai_int8_scale_bf16(exact));
        rounded_down += scale < exact;
        for (int i = 0; i < 128; i++) {
            const int8_t q = fai_int8_quantize(x[i], scale);
            EXPECT(q != -128, "int8 bf16 scale: code %d out of range", q);
            const double err = fabs((double)fai_int8_dequantize(q, scale) - (double)x[i]);
            const double bound = (0.5 + 127.0 * 0x1p-24) * scale + fabs((double)x[i]) * 0x1p-24 +
                                 (double)amax * 0x1p-8 + 128.0 * 0x1p-149;
            EXPECT(err <= bound, "int8 bf16 scale: %.9g -> %d * %.9g, error %.3g", (double)x[i], q, (double)scale, err);
            if (fabsf(x[i]) == amax)
                EXPECT(q == (x[i] > 0 ? 127 : -127), "int8 bf16 scale: row max %.9g -> %d", (double)x[i], q);
        }
    }
    EXPECT(rounded_down > 1000, "int8 bf16 scale: only %d of 30000 scales rounded down", rounded_down);

    /* The helpers the append kernel, the tests and the tools share: the row's scale in either
     * format, a word of two BF16 scales, and its K (low) and V (high) halves. */
    const float amax = 3.0f; /* 3 / 127 is not a BF16 value: the two formats differ */
    EXPECT(fai_int8_row_scale(amax, 0) == fai_int8_scale(amax) &&
               fai_int8_row_scale(amax, 1) == fai_bf16_bits_to_float(fai_int8_scale_bf16(fai_int8_scale(amax))) &&
               fai_int8_row_scale(amax, 1) != fai_int8_row_scale(amax, 0),
           "fai_int8_row_scale");
    EXPECT(fai_scale_pair_half(0x12345678u, 0) == 0x5678u && fai_scale_pair_half(0x12345678u, 1) == 0x1234u,
           "fai_scale_pair_half");
    const float ks = fai_int8_row_scale(3.0f, 1), vs = fai_int8_row_scale(250.0f, 1);
    const uint32_t word = fai_scale_pair_word(ks, vs);
    EXPECT(fai_bf16_bits_to_float(fai_scale_pair_half(word, 0)) == ks &&
               fai_bf16_bits_to_float(fai_scale_pair_half(word, 1)) == vs && ks != vs,
           "fai_scale_pair_word");
}

int main(void)
{
    fp8_format e4m3 = {"e4m3", 3, 7, 0, enc43, dec43, {0}, 0, 0};
    fp8_format e5m2 = {"e5m2", 2, 15, 1, enc52, dec52, {0}, 0, 0};
    test_format(&e4m3);
    EXPECT(e4m3.max == 448.0 && e4m3.max_code == 0x7E, "e4m3: max %.9g code 0x%02x", e4m3.max, e4m3.max_code);
    test_format(&e5m2);
    EXPECT(e5m2.max == 57344.0 && e5m2.max_code == 0x7B, "e5m2: max %.9g code 0x%02x", e5m2.max, e5m2.max_code);
    test_int8();
    test_int8_bf16_scale();
    printf("test_codec: %d failures\n", failures);
    return failures ? 1 : 0;
}
