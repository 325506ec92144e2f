/* Internal: the KV-cache number formats, one set of inline functions for host and device, so
 * the CPU tests (exhaustive, tests/test_codec.c) check the very code the kernels run.
 *
 * FP8 E4M3 (OCP "E4M3FN": bias 7, no infinities, NaN = S.1111.111, max finite 448) and FP8
 * E5M2 (bias 15, IEEE-like with infinities, max finite 57344).
 * Encoding policy, both formats, matching PTX cvt.rn.satfinite (sm_89+):
 *  - round to nearest, ties to even, from the exact input value;
 *  - saturate: any finite or infinite input whose magnitude rounds above the largest finite
 *    value gives that value with the input's sign (so E5M2 never produces infinity);
 *  - NaN gives the canonical NaN 0x7F;
 *  - -0 gives 0x80.
 * Decoding is exact (every FP8 value is an FP16 and an FP32 value).
 * Inputs are FP32 values: FP16 and BF16 rows (fai_kv_append takes either) convert to FP32
 * exactly first (fai_half_bits_to_float, fai_bf16_bits_to_float), so one rounding happens,
 * from the exact value, whatever the rows' dtype (BF16's range reaches past FP16's: huge and
 * infinite values saturate, tiny ones round to 0 or a subnormal code like any float).
 *
 * int8 per head: for one (token, KV head) row of d values, scale = max|x| / 127 (FP32) and
 * q = round-half-even(x * (1 / scale)) clamped to [-127, 127]; a row of zeros gets scale 0
 * and q = 0. Dequantized value: q * scale. The reciprocal and the product are IEEE
 * (correctly rounded) FP32 operations on both sides, so host and device agree bit for bit;
 * the reciprocal is one per row (the compiler hoists it), where a division per value made the
 * append kernel compute-bound. A scale below 2^-64 (max|x| under ~6.9e-18: only BF16 rows get
 * there) is taken with x times 2^64 and 1 / (scale 2^64): both exact rescalings, so q is the
 * same x * (1 / scale) wherever that reciprocal is finite, and stays so where it is not
 * (scale under 2^-128, whose reciprocal overflowed and turned every nonzero code into +-127). */
#ifndef FAI_KV_CODEC_H
#define FAI_KV_CODEC_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define FAI_CODEC_FN __host__ __device__ __forceinline__
#else
#define FAI_CODEC_FN static inline
#endif

#define FAI_FP8_E4M3_MAX 448.0f
#define FAI_FP8_E5M2_MAX 57344.0f
#define FAI_FP8_NAN 0x7Fu

FAI_CODEC_FN uint32_t fai_float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

/* Round to nearest integer, ties to even (the default rounding mode on the host; rintf
 * compiles to cvt.rni on the device). */
FAI_CODEC_FN float fai_rne(float x) { return rintf(x); }

/* Shared by both FP8 formats: M mantissa bits, exponent bias B, the largest finite value
 * `max` and its code `max_code`. */
FAI_CODEC_FN uint8_t fai_fp8_encode(float x, int M, int B, float max, uint32_t max_code)
{
    const uint32_t sign = (fai_float_bits(x) >> 24) & 0x80u;
    if (x != x)
        return (uint8_t)FAI_FP8_NAN;
    const float a = fabsf(x);
    if (a >= max)
        return (uint8_t)(sign | max_code);
    const int emin = 1 - B; /* exponent of the smallest normal */
    const float min_normal = ldexpf(1.0f, emin);
    if (a < min_normal) {
        /* Subnormal: a multiple of 2^(emin - M); a quotient of 2^M is the smallest normal,
         * whose code is exactly 2^M too. */
        const float q = fai_rne(ldexpf(a, M - emin));
        return (uint8_t)(sign | (uint32_t)q);
    }
    int e = (int)((fai_float_bits(a) >> 23) & 0xFFu) - 127; /* a is a normal float here */
    const float frac = ldexpf(a, -e) - 1.0f;                  /* exact, in [0, 1) */
    uint32_t q = (uint32_t)fai_rne(ldexpf(frac, M));
    if (q == (1u << M)) { /* rounded up to the next power of two */
        q = 0;
        e += 1;
    }
    return (uint8_t)(sign | ((uint32_t)(e + B) << M) | q);
}

FAI_CODEC_FN uint8_t fai_fp8_e4m3_from_float(float x) { return fai_fp8_encode(x, 3, 7, FAI_FP8_E4M3_MAX, 0x7Eu); }
FAI_CODEC_FN uint8_t fai_fp8_e5m2_from_float(float x) { return fai_fp8_encode(x, 2, 15, FAI_FP8_E5M2_MAX, 0x7Bu); }

FAI_CODEC_FN float fai_fp8_e4m3_to_float(uint8_t c)
{
    const uint32_t e = (c >> 3) & 0xFu, m = c & 7u;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = ldexpf((float)m, -9);
    else
        v = ldexpf((float)(8u + m), (int)e - 10); /* (1 + m/8) 2^(e-7) */
    return (c & 0x80u) ? -v : v;
}

FAI_CODEC_FN float fai_fp8_e5m2_to_float(uint8_t c)
{
    const uint32_t e = (c >> 2) & 0x1Fu, m = c & 3u;
    float v;
    if (e == 31)
        v = m == 0 ? INFINITY : NAN;
    else if (e == 0)
        v = ldexpf((float)m, -16);
    else
        v = ldexpf((float)(4u + m), (int)e - 17); /* (1 + m/4) 2^(e-15) */
    return (c & 0x80u) ? -v : v;
}

/* FP16 (IEEE binary16 bits) to float, exactly; FP16 inputs encode through it (one rounding,
 * from the exact value). */
FAI_CODEC_FN float fai_half_bits_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    float v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexpf((float)m, -24);
    else
        v = ldexpf((float)(1024u + m), (int)e - 25);
    return sign ? -v : v;
}

/* BF16 bits to float, exactly: a BF16 value is the upper half of its FP32 value. */
FAI_CODEC_FN float fai_bf16_bits_to_float(uint16_t b)
{
    const uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* int8 per-head quantization of one value, given the row's scale (see above). Inputs are
 * meant to be finite; a NaN quantizes to 0 rather than reaching an undefined float-to-int
 * conversion (an infinite value gives an infinite scale, and the row dequantizes to NaN). A
 * row whose max|x| is below 127 times the smallest float (about 1.8e-43) gets scale 0 and
 * codes 0. */
/* The factor x is multiplied by before the reciprocal (see the int8 paragraph above): 2^64
 * for scales below 2^-64, 1 otherwise (decimal literals of the two powers of two, exact). */
FAI_CODEC_FN float fai_int8_pre(float scale)
{
    return scale < 5.42101086242752217e-20f ? 18446744073709551616.0f : 1.0f;
}

/* The reciprocal a row's values are multiplied by once pre-multiplied: 1 / (scale * pre),
 * finite for every scale > 0; 0 for a scale that is not > 0 (codes 0). */
FAI_CODEC_FN float fai_int8_inv(float scale)
{
    return scale > 0.0f ? 1.0f / (scale * fai_int8_pre(scale)) : 0.0f;
}

FAI_CODEC_FN int8_t fai_int8_quantize(float x, float scale)
{
    if (!(scale > 0.0f))
        return 0;
    float q = fai_rne((x * fai_int8_pre(scale)) * fai_int8_inv(scale));
    if (q != q)
        return 0;
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    return (int8_t)q;
}

/* fai_int8_quantize(x, scale) without a float-to-int conversion (the append kernel's form; a
 * quarter-rate instruction on the GPU), given the row's pre = fai_int8_pre(scale) and inv =
 * fai_int8_inv(scale): q = (x * pre) * inv, as fai_int8_quantize, NaN -> 0, clamped to +-127
 * (clamping before rounding is the same, +-127 being integers), then adding 1.5 * 2^23 rounds
 * q to nearest even into the low mantissa bits (the ulp there is 1), whose low byte is the
 * two's-complement code. CPU-tested to equal fai_int8_quantize on every FP16 value under a
 * spread of scales. */
FAI_CODEC_FN uint8_t fai_int8_code_by_add(float x, float pre, float inv)
{
    float q = (x * pre) * inv;
    q = q != q ? 0.0f : fminf(fmaxf(q, -127.0f), 127.0f);
    return (uint8_t)(fai_float_bits(q + 12582912.0f) & 0xFFu);
}

/* The scale of a row whose largest magnitude is amax. */
FAI_CODEC_FN float fai_int8_scale(float amax) { return amax / 127.0f; }

FAI_CODEC_FN float fai_int8_dequantize(int8_t q, float scale) { return (float)q * scale; }

/* A scale kept as BF16 (FAI_SCALES_BF16X2): the FP32 scale rounded to the nearest BF16, ties
 * to even, as its bits. The row is then coded with that BF16 value (fai_bf16_bits_to_float),
 * so the codes fit the scale the readers see; a scale rounded down codes the row's largest
 * value as 127 all the same (BF16 keeps 8 significant bits, so the scale moves by at most
 * 2^-8 of itself and that value's quotient is at most 127 (1 + 2^-8) < 127.5). Scales
 * are never NaN (fai_int8_scale of a max|x|); +inf stays +inf, and a scale of at most 2^-134
 * (rows with max|x| up to about 5.8e-39) rounds to 0, which codes its row as zeros. */
FAI_CODEC_FN uint16_t fai_int8_scale_bf16(float scale)
{
    const uint32_t b = fai_float_bits(scale);
    return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

/* The scale a row of largest magnitude amax is coded with: fai_int8_scale(amax), rounded to
 * BF16 where the cache keeps its scales as FAI_SCALES_BF16X2 words (bf16 != 0). */
FAI_CODEC_FN float fai_int8_row_scale(float amax, int bf16)
{
    const float s = fai_int8_scale(amax);
    return bf16 ? fai_bf16_bits_to_float(fai_int8_scale_bf16(s)) : s;
}

/* The FAI_SCALES_BF16X2 word of a token and head whose scales k and v are BF16 values already
 * (fai_int8_row_scale with bf16, or a BF16 NaN): K's bits in the low half, V's in the high. */
FAI_CODEC_FN uint32_t fai_scale_pair_word(float k, float v)
{
    return fai_float_bits(k) >> 16 | (fai_float_bits(v) & 0xFFFF0000u);
}

/* A FAI_SCALES_BF16X2 word's BF16 bits: the K scale (is_v 0, the low half) or the V scale. */
FAI_CODEC_FN uint16_t fai_scale_pair_half(uint32_t word, int is_v)
{
    return (uint16_t)(is_v ? word >> 16 : word & 0xFFFFu);
}

#endif
