/* Device code for KV caches: the element types a decode kernel streams (FP16, BF16 and the
 * quantized ones), and the conversion of 8 one-byte codes (one 8-byte load) to floats, in a few integer and half2
 * instructions per pair rather than one conversion instruction per value (conversions issue
 * at a quarter of the FMA rate, and a quantized cache doubles the values per byte). The
 * conversions are exact: every int8 and FP8 value is an FP16 and an FP32 value. */
#ifndef FAI_KV_DEQUANT_CUH
#define FAI_KV_DEQUANT_CUH

#include <cuda_fp16.h>
#include <stdint.h>

#include "ptx.cuh"

/* Cache element types as template constants of the decode kernel. */
#define FAI_KV_FP16 0
#define FAI_KV_INT8 1
#define FAI_KV_E4M3 2
#define FAI_KV_E5M2 3
#define FAI_KV_BF16 4 /* unquantized BF16 (with BF16 queries) */

/* Bytes per cache element: 2 for FP16 and BF16, 1 for the codes. */
#define FAI_KV_BYTES(kt) ((kt) == FAI_KV_FP16 || (kt) == FAI_KV_BF16 ? 2 : 1)

/* What one lane loads per key: 8 values, 16 bytes of FP16 or 8 bytes of codes. */
template <int KT> struct kv_vec { typedef uint2 type; };
template <> struct kv_vec<FAI_KV_FP16> { typedef uint4 type; };
template <> struct kv_vec<FAI_KV_BF16> { typedef uint4 type; };

template <int KT> __device__ __forceinline__ typename kv_vec<KT>::type kv_load(const char *p);
template <> __device__ __forceinline__ uint4 kv_load<FAI_KV_FP16>(const char *p) { return ptx_ld_stream_v4(p); }
template <> __device__ __forceinline__ uint4 kv_load<FAI_KV_BF16>(const char *p) { return ptx_ld_stream_v4(p); }
template <> __device__ __forceinline__ uint2 kv_load<FAI_KV_INT8>(const char *p) { return ptx_ld_stream_v2(p); }
template <> __device__ __forceinline__ uint2 kv_load<FAI_KV_E4M3>(const char *p) { return ptx_ld_stream_v2(p); }
template <> __device__ __forceinline__ uint2 kv_load<FAI_KV_E5M2>(const char *p) { return ptx_ld_stream_v2(p); }

template <int KT> __device__ __forceinline__ typename kv_vec<KT>::type kv_zero();
template <> __device__ __forceinline__ uint4 kv_zero<FAI_KV_FP16>() { return make_uint4(0, 0, 0, 0); }
template <> __device__ __forceinline__ uint4 kv_zero<FAI_KV_BF16>() { return make_uint4(0, 0, 0, 0); }
template <> __device__ __forceinline__ uint2 kv_zero<FAI_KV_INT8>() { return make_uint2(0, 0); }
template <> __device__ __forceinline__ uint2 kv_zero<FAI_KV_E4M3>() { return make_uint2(0, 0); }
template <> __device__ __forceinline__ uint2 kv_zero<FAI_KV_E5M2>() { return make_uint2(0, 0); }

__device__ __forceinline__ void half2_bits_to_float(uint32_t h, float *f)
{
    const float2 t = __half22float2(*reinterpret_cast<const __half2 *>(&h));
    f[0] = t.x;
    f[1] = t.y;
}

/* Two BF16 (a bfloat162's bits, element 0 in the low half) to floats: a BF16 value is the
 * high half of its FP32 value, so each is one shift or mask (exact). */
__device__ __forceinline__ void bf162_bits_to_float(uint32_t w, float *f)
{
    f[0] = __uint_as_float(w << 16);
    f[1] = __uint_as_float(w & 0xFFFF0000u);
}

/* Eight BF16 values of one 16-byte load, as floats. */
__device__ __forceinline__ void bf16x8_to_float(uint4 u, float f[8])
{
    bf162_bits_to_float(u.x, f);
    bf162_bits_to_float(u.y, f + 2);
    bf162_bits_to_float(u.z, f + 4);
    bf162_bits_to_float(u.w, f + 6);
}

/* Four int8 codes to floats: each byte, offset by 128 (x ^ 0x80), becomes the low mantissa
 * byte of 2^23 (one byte permute), so the float is 2^23 + 128 + x exactly; one subtraction
 * leaves x. */
__device__ __forceinline__ void int8x4_to_float(uint32_t w, float *f)
{
    const uint32_t u = w ^ 0x80808080u;
#pragma unroll
    for (int i = 0; i < 4; i++)
        f[i] = __uint_as_float(__byte_perm(u, 0x4B000000u, 0x7540u + i)) - 8388736.0f;
}

/* Two FP8 codes (bytes lo, lo + 1 of w) moved into the high bytes of a half2's halves. */
__device__ __forceinline__ uint32_t fp8x2_high_bytes(uint32_t w, int pair)
{
    return __byte_perm(w, 0u, pair == 0 ? 0x1404u : 0x3424u);
}

/* E5M2 is FP16 with the low 8 bits cut: the code in the high byte is the FP16 value. */
__device__ __forceinline__ void e5m2x4_to_float(uint32_t w, float *f)
{
    half2_bits_to_float(fp8x2_high_bytes(w, 0), f);
    half2_bits_to_float(fp8x2_high_bytes(w, 1), f + 2);
}

/* E4M3: the cvt instruction on sm_89+; before, shift the exponent and mantissa one bit down
 * into FP16's fields (exponent bias 15 instead of 7) and multiply by 2^8, which is exact for
 * every finite code, subnormals included (the NaN code 0x7F reads as 480 there, but the
 * encoder writes it only for NaN inputs). */
__device__ __forceinline__ uint32_t e4m3x2_to_half2_bits(uint32_t w, int pair)
{
#if FAI_HAS_FP8_CVT
    return ptx_cvt_f16x2_e4m3x2((uint16_t)(pair == 0 ? w : w >> 16));
#else
    const uint32_t h = fp8x2_high_bytes(w, pair);
    const uint32_t bits = ((h >> 1) & 0x3F803F80u) | (h & 0x80008000u);
    const __half2 x = __hmul2(*reinterpret_cast<const __half2 *>(&bits), __float2half2_rn(256.0f));
    return *reinterpret_cast<const uint32_t *>(&x);
#endif
}

__device__ __forceinline__ void e4m3x4_to_float(uint32_t w, float *f)
{
    half2_bits_to_float(e4m3x2_to_half2_bits(w, 0), f);
    half2_bits_to_float(e4m3x2_to_half2_bits(w, 1), f + 2);
}

/* An int8 cache's FAI_SCALES_BF16X2 word: the K scale is its low BF16 half, V's its high one. */
__device__ __forceinline__ float scale_pair_k(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float scale_pair_v(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

/* Eight values of one lane's load as floats (int8: the codes, to be multiplied by the scale). */
template <int KT> __device__ __forceinline__ void kv_to_float(typename kv_vec<KT>::type v, float f[8]);
template <> __device__ __forceinline__ void kv_to_float<FAI_KV_FP16>(uint4 u, float f[8])
{
    half2_bits_to_float(u.x, f);
    half2_bits_to_float(u.y, f + 2);
    half2_bits_to_float(u.z, f + 4);
    half2_bits_to_float(u.w, f + 6);
}
template <> __device__ __forceinline__ void kv_to_float<FAI_KV_BF16>(uint4 u, float f[8]) { bf16x8_to_float(u, f); }
template <> __device__ __forceinline__ void kv_to_float<FAI_KV_INT8>(uint2 u, float f[8])
{
    int8x4_to_float(u.x, f);
    int8x4_to_float(u.y, f + 4);
}
template <> __device__ __forceinline__ void kv_to_float<FAI_KV_E4M3>(uint2 u, float f[8])
{
    e4m3x4_to_float(u.x, f);
    e4m3x4_to_float(u.y, f + 4);
}
template <> __device__ __forceinline__ void kv_to_float<FAI_KV_E5M2>(uint2 u, float f[8])
{
    e5m2x4_to_float(u.x, f);
    e5m2x4_to_float(u.y, f + 4);
}

/* Eight codes (one 8-byte load) as eight FP16 values (16 bytes, element i in half i), for
 * the tensor-core kernel, which converts a tile in shared memory before its ldmatrix reads.
 * int8: the code, offset by 128, becomes the low byte of FP16 1024 (0x6400), and 1152 is
 * subtracted: exact, as FP16 holds every integer up to 2048. */
__device__ __forceinline__ uint32_t int8x2_to_half2_bits(uint32_t u, int pair)
{
    const uint32_t h = __byte_perm(u, 0x64646464u, pair == 0 ? 0x4140u : 0x4342u);
    const __half2 x = __hsub2(*reinterpret_cast<const __half2 *>(&h), __float2half2_rn(1152.0f));
    return *reinterpret_cast<const uint32_t *>(&x);
}

template <int KT> __device__ __forceinline__ uint4 codes8_to_half8(uint2 c);
template <> __device__ __forceinline__ uint4 codes8_to_half8<FAI_KV_INT8>(uint2 c)
{
    const uint32_t x = c.x ^ 0x80808080u, y = c.y ^ 0x80808080u;
    return make_uint4(int8x2_to_half2_bits(x, 0), int8x2_to_half2_bits(x, 1), int8x2_to_half2_bits(y, 0),
                      int8x2_to_half2_bits(y, 1));
}
template <> __device__ __forceinline__ uint4 codes8_to_half8<FAI_KV_E4M3>(uint2 c)
{
    return make_uint4(e4m3x2_to_half2_bits(c.x, 0), e4m3x2_to_half2_bits(c.x, 1), e4m3x2_to_half2_bits(c.y, 0),
                      e4m3x2_to_half2_bits(c.y, 1));
}
template <> __device__ __forceinline__ uint4 codes8_to_half8<FAI_KV_E5M2>(uint2 c)
{
    return make_uint4(fp8x2_high_bytes(c.x, 0), fp8x2_high_bytes(c.x, 1), fp8x2_high_bytes(c.y, 0),
                      fp8x2_high_bytes(c.y, 1));
}

#endif
