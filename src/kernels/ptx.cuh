/* Inline-PTX wrappers: one instruction per function, so each memory movement in a kernel is
 * one named line and the cache policy is visible where it is used. */
#ifndef FAI_PTX_CUH
#define FAI_PTX_CUH

#include <stdint.h>

/* 16-byte read of data used once (a KV cache streamed by decode): read-only path, no L1
 * allocation, and a 256-byte L2 prefetch so DRAM serves whole rows. */
__device__ __forceinline__ uint4 ptx_ld_stream_v4(const void *p)
{
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* 8-byte streaming read (a quantized cache: 8 one-byte codes), same policy as above. */
__device__ __forceinline__ uint2 ptx_ld_stream_v2(const void *p)
{
    uint2 r;
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v2.u32 {%0, %1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
    return r;
}

/* 4-byte streaming read of a float (the int8 cache's scales). */
__device__ __forceinline__ float ptx_ld_stream_f32(const void *p)
{
    float r;
    asm volatile("ld.global.nc.L1::no_allocate.f32 %0, [%1];" : "=f"(r) : "l"(p));
    return r;
}

/* 16-byte read-only load through the non-coherent cache (small inputs read by many). */
__device__ __forceinline__ uint4 ptx_ld_nc_v4(const void *p)
{
    uint4 r;
    asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* 16-byte store. */
__device__ __forceinline__ void ptx_st_v4(void *p, uint4 v)
{
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(p), "r"(v.x), "r"(v.y), "r"(v.z),
                 "r"(v.w)
                 : "memory");
}

/* 8-byte and 4-byte stores. */
__device__ __forceinline__ void ptx_st_v2(void *p, uint2 v)
{
    asm volatile("st.global.v2.u32 [%0], {%1, %2};" ::"l"(p), "r"(v.x), "r"(v.y) : "memory");
}

__device__ __forceinline__ void ptx_st_u32(void *p, uint32_t v)
{
    asm volatile("st.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}

/* 16-byte store of four floats. */
__device__ __forceinline__ void ptx_st_v4_f32(void *p, float a, float b, float c, float d)
{
    asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(p), "f"(a), "f"(b), "f"(c), "f"(d)
                 : "memory");
}

/* 2^x on the special-function unit (ex2.approx: relative error ~2^-22, -inf -> +0). */
__device__ __forceinline__ float ptx_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* ---- Programmatic dependent launch (sm_90+; no-ops when compiled for older targets) ---- */

/* In a kernel launched as a programmatic dependent: waits until the preceding kernel has
 * finished and its writes are visible. */
__device__ __forceinline__ void ptx_griddep_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

/* Lets the dependent kernel start launching (its blocks then wait in ptx_griddep_wait). */
__device__ __forceinline__ void ptx_griddep_launch_dependents()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Fetches the line holding `p` into the L1 (and L2) without waiting for it: a later load of
 * it then hits there. No fault for any address; callers keep it in bounds all the same. */
__device__ __forceinline__ void ptx_prefetch_l1(const void *p)
{
    asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}

/* ---- Asynchronous global -> shared copies (sm_80+) ---- */

/* The lane from %laneid, read anew at every use (volatile): a value a kernel can rebuild
 * anywhere instead of holding a register for it across a loop. */
__device__ __forceinline__ int ptx_laneid()
{
    int id;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(id));
    return id;
}

__device__ __forceinline__ uint32_t ptx_smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Copies 16 bytes to shared memory without passing through registers; with `valid` false
 * it reads nothing and writes 16 zero bytes (masked rows must hold finite values). The
 * 256-byte L2 prefetch measured best against none, 128 bytes and evict-first (docs/perf/). */
__device__ __forceinline__ void ptx_cp_async_16(void *smem_dst, const void *gmem_src, bool valid)
{
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;" ::"r"(ptx_smem_addr(smem_dst)),
                 "l"(gmem_src), "r"(valid ? 16 : 0)
                 : "memory");
}

/* 4-byte asynchronous copy (the int8 cache's scales), zero-filled when !valid. */
__device__ __forceinline__ void ptx_cp_async_4(void *smem_dst, const void *gmem_src, bool valid)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(ptx_smem_addr(smem_dst)), "l"(gmem_src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}

__device__ __forceinline__ void ptx_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

/* Waits until at most N of this thread's committed copy groups are still in flight. */
template <int N>
__device__ __forceinline__ void ptx_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* ---- Tensor cores: fragments of m16n8k16 (FP16 in, FP32 accumulate) ---- */

/* Four 8x8 FP16 matrices from shared memory; lane l gives the address of row l % 8 of
 * matrix l / 8, and register i receives matrix i (lane t: row t / 4, columns 2(t % 4), +1). */
__device__ __forceinline__ void ptx_ldmatrix_x4(uint32_t r[4], const void *smem_row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ptx_smem_addr(smem_row)));
}

/* The same, transposed: lane t receives column t / 4, rows 2(t % 4), +1. */
__device__ __forceinline__ void ptx_ldmatrix_x4_trans(uint32_t r[4], const void *smem_row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ptx_smem_addr(smem_row)));
}

/* D = A (16x16, row-major) * B (16x8, column-major) + D, FP16 inputs, FP32 accumulators. */
__device__ __forceinline__ void ptx_mma_16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}


/* ---- FP8 conversions (sm_89+; FAI_HAS_FP8_CVT says whether this compilation has them) ----
 * Round to nearest even, saturating to the largest finite value (.satfinite), NaN to 0x7F:
 * the policy of src/kv_codec.h, whose software versions serve older targets. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define FAI_HAS_FP8_CVT 1

/* Two floats to two E4M3 / E5M2 codes: hi in the upper byte, lo in the lower. */
__device__ __forceinline__ uint16_t ptx_cvt_e4m3x2_f32(float hi, float lo)
{
    uint16_t d;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
    return d;
}

__device__ __forceinline__ uint16_t ptx_cvt_e5m2x2_f32(float hi, float lo)
{
    uint16_t d;
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
    return d;
}

/* Two FP16 (a half2's bits, upper half to the upper byte) to two E4M3 / E5M2 codes. */
__device__ __forceinline__ uint16_t ptx_cvt_e4m3x2_f16x2(uint32_t h2)
{
    uint16_t d;
    asm("cvt.rn.satfinite.e4m3x2.f16x2 %0, %1;" : "=h"(d) : "r"(h2));
    return d;
}

__device__ __forceinline__ uint16_t ptx_cvt_e5m2x2_f16x2(uint32_t h2)
{
    uint16_t d;
    asm("cvt.rn.satfinite.e5m2x2.f16x2 %0, %1;" : "=h"(d) : "r"(h2));
    return d;
}

/* Two E4M3 / E5M2 codes to a half2 (exact). */
__device__ __forceinline__ uint32_t ptx_cvt_f16x2_e4m3x2(uint16_t c2)
{
    uint32_t d;
    asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(d) : "h"(c2));
    return d;
}

__device__ __forceinline__ uint32_t ptx_cvt_f16x2_e5m2x2(uint16_t c2)
{
    uint32_t d;
    asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(d) : "h"(c2));
    return d;
}
#else
#define FAI_HAS_FP8_CVT 0
#endif

/* ---- BF16 tensor cores and conversions, fast tanh and reciprocal (the prefill variants) ---- */

/* D = A (16x16, row-major) * B (16x8, column-major) + D, BF16 inputs, FP32 accumulators; the
 * fragments are laid out as ptx_mma_16816's (ldmatrix reads BF16 rows as it reads FP16). */
__device__ __forceinline__ void ptx_mma_16816_bf16(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                 "{%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Two floats to two BF16 (lo in the lower half, as __floats2bfloat162_rn(lo, hi)), rounded to
 * nearest even. */
__device__ __forceinline__ uint32_t ptx_cvt_bf16x2_f32(float lo, float hi)
{
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}

/* Two floats to FP16 (lo in the low half), nearest even, magnitudes past FP16's largest finite
 * value saturated to +-65504 instead of rounded to infinity (NaN stays NaN): where a value
 * from a quantized cache (an int8 code times its FP32 scale) can exceed FP16's range. One
 * F2FP instruction, as the plain conversion. */
__device__ __forceinline__ uint32_t ptx_cvt_f16x2_f32_satfinite(float lo, float hi)
{
    uint32_t d;
    asm("cvt.rn.satfinite.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}

/* tanh on the special-function unit (sm_75+): one instruction, relative error about 2^-11. */
__device__ __forceinline__ float ptx_tanh(float x)
{
    float y;
    asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* 1/x on the special-function unit (rcp.approx: about 1 ulp; 1/inf = +0, 1/0 = inf). */
__device__ __forceinline__ float ptx_rcp(float x)
{
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

#endif
