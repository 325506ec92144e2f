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

/* ---- Asynchronous global -> shared copies (sm_80+) ---- */

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

#endif
