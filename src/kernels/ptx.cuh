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

#endif
