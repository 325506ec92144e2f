// CPU test: fai's FP8 codecs (src/kv_codec.h) against CUDA's own host emulation of the
// conversions in <cuda_fp8.h> (__nv_cvt_*_to_fp8 with __NV_SATFINITE, which mirrors
// cvt.rn.satfinite), an implementation independent of ours: every 97th of the 2^32 float
// bit patterns, all 65536 FP16 values, and all 256 codes decoded. C++ only because that
// header is; no GPU needed.
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "gpu_test_util.h"
#include "kv_codec.h"

static uint64_t failures;

static void expect(bool ok, const char *what, uint32_t input, unsigned ours, unsigned cuda)
{
    if (!ok && failures++ < 20)
        std::printf("%s: input 0x%08x: fai 0x%02x, CUDA 0x%02x\n", what, input, ours, cuda);
}

static bool same_float(float a, float b)
{
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    return ua == ub || (a != a && b != b);
}

int main()
{
    uint64_t n = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 97, n++) {
        const uint32_t bits = (uint32_t)u;
        float x;
        std::memcpy(&x, &bits, 4);
        const unsigned c43 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
        const unsigned c52 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2);
        expect(fai_fp8_e4m3_from_float(x) == c43, "e4m3 from float", bits, fai_fp8_e4m3_from_float(x), c43);
        expect(fai_fp8_e5m2_from_float(x) == c52, "e5m2 from float", bits, fai_fp8_e5m2_from_float(x), c52);
    }
    for (uint32_t h = 0; h < 65536; h++, n++) {
        __half_raw raw;
        raw.x = (unsigned short)h;
        const float x = fai_half_bits_to_float((uint16_t)h);
        const unsigned c43 = __nv_cvt_halfraw_to_fp8(raw, __NV_SATFINITE, __NV_E4M3);
        const unsigned c52 = __nv_cvt_halfraw_to_fp8(raw, __NV_SATFINITE, __NV_E5M2);
        expect(fai_fp8_e4m3_from_float(x) == c43, "e4m3 from fp16", h, fai_fp8_e4m3_from_float(x), c43);
        expect(fai_fp8_e5m2_from_float(x) == c52, "e5m2 from fp16", h, fai_fp8_e5m2_from_float(x), c52);
    }
    for (uint32_t c = 0; c < 256; c++) {
        const __half_raw h43 = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)c, __NV_E4M3);
        const __half_raw h52 = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)c, __NV_E5M2);
        expect(same_float(fai_half_bits_to_float(h43.x), fai_fp8_e4m3_to_float((uint8_t)c)), "e4m3 decode", c, c, c);
        expect(same_float(fai_half_bits_to_float(h52.x), fai_fp8_e5m2_to_float((uint8_t)c)), "e5m2 decode", c, c, c);
    }
    /* The tests' BF16 conversion (the inputs of BF16 GPU tests) against cuda_bf16.h's. */
    for (uint64_t u = 0; u < (1ull << 32); u += 89, n++) {
        const uint32_t bits = (uint32_t)u;
        float x;
        std::memcpy(&x, &bits, 4);
        const __nv_bfloat16_raw r = __float2bfloat16_rn(x);
        const unsigned cuda = r.x, ours = host_float_to_bf16(x);
        const bool nan = x != x;
        expect(nan ? ((cuda & 0x7f80u) == 0x7f80u && (cuda & 0x7fu) && (ours & 0x7f80u) == 0x7f80u && (ours & 0x7fu))
                   : ours == cuda,
               "bf16 from float", bits, ours, cuda);
    }
    for (uint32_t b = 0; b < 65536; b++, n++) {
        __nv_bfloat16_raw r;
        r.x = (unsigned short)b;
        expect(same_float(__bfloat162float(r), host_bf16_to_float((uint16_t)b)), "bf16 decode", b, b, b);
    }
    std::printf("test_codec_emulation: %llu inputs, %llu mismatches with CUDA's emulation\n", (unsigned long long)n,
                (unsigned long long)failures);
    return failures ? 1 : 0;
}
