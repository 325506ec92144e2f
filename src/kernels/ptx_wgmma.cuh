/* Hopper warpgroup matrix multiply (wgmma, sm_90a only): the first pieces of a Hopper prefill
 * path, checked on their own by tests/test_wgmma.cu before any kernel relies on them.
 *
 * A warpgroup (4 consecutive warps, the first of them a multiple of 4) issues one
 * wgmma.mma_async: D (64 x N, FP32, in registers) += A (64 x 16) x B (16 x N), A and B read
 * from shared memory through 64-bit matrix descriptors. Both operands here are K-major (a row
 * of A, and a column of B, holds 16 consecutive k): Q and K of attention as they are stored.
 *
 * Descriptor (PTX ISA, "matrix descriptor" of the asynchronous warpgroup operations): bits
 * 0-13 start address >> 4, 16-29 leading byte offset >> 4 (between core matrices adjacent in
 * K), 32-45 stride byte offset >> 4 (adjacent in M or N), 49-51 base offset (0 for the
 * layouts used here), 62-63 swizzle (0 none, 1 128-byte, 2 64-byte, 3 32-byte). A core matrix
 * is 8 rows of 16 bytes.
 *
 * Accumulators: thread t of the warpgroup (warp w = t / 32, lane l) holds N / 2 floats; float
 * j is row 16 w + l / 4 + 8 ((j % 4) / 2), column 8 (j / 4) + 2 (l % 4) + j % 2, the mma.sync
 * m16n8 accumulator layout repeated over N / 8 column blocks. */
#ifndef FAI_PTX_WGMMA_CUH
#define FAI_PTX_WGMMA_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FAI_HAS_WGMMA 1
#else
#define FAI_HAS_WGMMA 0
#endif

enum { FAI_SWIZZLE_NONE = 0, FAI_SWIZZLE_128B = 1, FAI_SWIZZLE_64B = 2, FAI_SWIZZLE_32B = 3 };

__device__ __forceinline__ uint64_t wgmma_desc(const void *smem, uint32_t lead_bytes, uint32_t stride_bytes,
                                               int swizzle)
{
    const uint32_t addr = (uint32_t)__cvta_generic_to_shared(smem);
    return (uint64_t)((addr >> 4) & 0x3FFF) | (uint64_t)((lead_bytes >> 4) & 0x3FFF) << 16 |
           (uint64_t)((stride_bytes >> 4) & 0x3FFF) << 32 | (uint64_t)(swizzle & 3) << 62;
}

/* Shared memory written by ordinary stores, read next by wgmma (the async proxy): each
 * writing thread fences before the barrier. */
__device__ __forceinline__ void fence_proxy_async_smem()
{
#if FAI_HAS_WGMMA
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

/* Before the first wgmma of a batch that reads or writes accumulator registers. */
__device__ __forceinline__ void wgmma_fence()
{
#if FAI_HAS_WGMMA
    asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit()
{
#if FAI_HAS_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
#endif
}

/* Waits until at most N committed groups are pending. */
template <int N> __device__ __forceinline__ void wgmma_wait()
{
#if FAI_HAS_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
#endif
}

/* The 32 accumulator operands of an m64n64 FP32 wgmma (%0 .. %31), read and written. */
#define FAI_WGMMA_ACC32(d)                                                                                  \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),    \
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),     \
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),    \
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])

/* d (64 x 64, FP32, 32 per thread) = A x B + (accumulate ? d : 0), operands from shared memory,
 * both K-major (the transpose immediates 0); TYPE f16 or bf16. */
#define FAI_WGMMA_SS_N64(name, TYPE)                                                                       \
    __device__ __forceinline__ void name(float d[32], uint64_t desc_a, uint64_t desc_b, int accumulate)         \
    {                                                                                                       \
        FAI_WGMMA_SS_N64_BODY(TYPE)                                                                         \
    }
#if FAI_HAS_WGMMA
#define FAI_WGMMA_SS_N64_BODY(TYPE)                                                                         \
    asm volatile("{\n"                                                                                      \
                 ".reg .pred p;\n"                                                                          \
                 "setp.ne.b32 p, %34, 0;\n"                                                                 \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TYPE "." #TYPE " "                         \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                  \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "        \
                 "%32, %33, p, 1, 1, 0, 0;\n"                                                               \
                 "}\n"                                                                                      \
                 : FAI_WGMMA_ACC32(d)                                                                       \
                 : "l"(desc_a), "l"(desc_b), "r"(accumulate)                                                \
                 : "memory");
#else
#define FAI_WGMMA_SS_N64_BODY(TYPE)                                                                         \
    (void)d;                                                                                                \
    (void)desc_a;                                                                                           \
    (void)desc_b;                                                                                           \
    (void)accumulate;
#endif
FAI_WGMMA_SS_N64(wgmma_m64n64k16_f16, f16)
FAI_WGMMA_SS_N64(wgmma_m64n64k16_bf16, bf16)

/* d (64 x 64, FP32) = A x B + (accumulate ? d : 0) with A (64 x 16; TYPE f16 or bf16) from
 * registers and B (16 x 64) from shared memory stored MN-major (row k holds the 64 values of
 * n: V of attention as it is stored), hence the transpose immediate 1 for B. A's fragment: thread t
 * (warp w, lane l) holds rows r = 16 w + l / 4 and r + 8, columns c = 2 (l % 4) and c + 8:
 * a[0] = A[r][c, c+1], a[1] = A[r+8][c, c+1], a[2] = A[r][c+8, c+9], a[3] = A[r+8][c+8, c+9]
 * (mma.sync's m16n8k16 A fragment, one per warp), low half first. */
#define FAI_WGMMA_RS_N64(name, TYPE)                                                                       \
    __device__ __forceinline__ void name(float d[32], const uint32_t a[4], uint64_t desc_b, int accumulate)     \
    {                                                                                                       \
        FAI_WGMMA_RS_N64_BODY(TYPE)                                                                         \
    }
#if FAI_HAS_WGMMA
#define FAI_WGMMA_RS_N64_BODY(TYPE)                                                                         \
    asm volatile("{\n"                                                                                      \
                 ".reg .pred p;\n"                                                                          \
                 "setp.ne.b32 p, %37, 0;\n"                                                                 \
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." #TYPE "." #TYPE " "                         \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                  \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "        \
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n"                                                 \
                 "}\n"                                                                                      \
                 : FAI_WGMMA_ACC32(d)                                                                       \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate)                 \
                 : "memory");
#else
#define FAI_WGMMA_RS_N64_BODY(TYPE)                                                                         \
    (void)d;                                                                                                \
    (void)a;                                                                                                \
    (void)desc_b;                                                                                           \
    (void)accumulate;
#endif
FAI_WGMMA_RS_N64(wgmma_m64n64k16_f16_rs_tb, f16)
FAI_WGMMA_RS_N64(wgmma_m64n64k16_bf16_rs_tb, bf16)

/* The 64 accumulator operands of an m64n128 FP32 wgmma (%0 .. %63). */
#define FAI_WGMMA_ACC64(d)                                                                                  \
    FAI_WGMMA_ACC32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]),           \
        "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),    \
        "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),    \
        "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]),    \
        "+f"(d[62]), "+f"(d[63])

/* Keeps the compiler from moving reads or writes of accumulator registers across this point
 * (a wgmma writes them asynchronously, until wgmma_wait). */
__device__ __forceinline__ void wgmma_fence_acc(float &x) { asm volatile("" : "+f"(x)::"memory"); }

/* The same for an A fragment register: its value is settled before wgmma_fence (the ISA asks
 * for the fence between any register write and the wgmma that reads it). */
__device__ __forceinline__ void wgmma_fence_reg(uint32_t &x) { asm volatile("" : "+r"(x)::"memory"); }

/* d (64 x 128, FP32, 64 per thread) = A x B + (accumulate ? d : 0), both operands from shared
 * memory, K-major (S = Q K^T of the Hopper prefill kernel: a 128-key tile at once); TYPE is
 * f16 or bf16. */
#define FAI_WGMMA_SS_N128(name, TYPE)                                                                      \
    __device__ __forceinline__ void name(float d[64], uint64_t desc_a, uint64_t desc_b, int accumulate)         \
    {                                                                                                       \
        FAI_WGMMA_SS_N128_BODY(TYPE)                                                                        \
    }
#if FAI_HAS_WGMMA
#define FAI_WGMMA_SS_N128_BODY(TYPE)                                                                        \
    asm volatile("{\n"                                                                                      \
                 ".reg .pred p;\n"                                                                          \
                 "setp.ne.b32 p, %66, 0;\n"                                                                 \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." #TYPE "." #TYPE " "                        \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                  \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "        \
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "         \
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "        \
                 "%64, %65, p, 1, 1, 0, 0;\n"                                                               \
                 "}\n"                                                                                      \
                 : FAI_WGMMA_ACC64(d)                                                                       \
                 : "l"(desc_a), "l"(desc_b), "r"(accumulate)                                                \
                 : "memory");
#else
#define FAI_WGMMA_SS_N128_BODY(TYPE)                                                                        \
    (void)d;                                                                                                \
    (void)desc_a;                                                                                           \
    (void)desc_b;                                                                                           \
    (void)accumulate;
#endif
FAI_WGMMA_SS_N128(wgmma_m64n128k16_f16, f16)
FAI_WGMMA_SS_N128(wgmma_m64n128k16_bf16, bf16)

/* d (64 x 128, FP32) += A x B with A from registers (the A fragment, as for the m64n64 form
 * above) and B (16 x 128) MN-major with the 128-byte swizzle: O += P V over 128 head-dim
 * columns at once. The accumulators of columns 0-63 are d0, of 64-127 d1 (each laid out as
 * the m64n64 form's d). B's two 64-column halves are swizzle atoms of their own; the
 * descriptor's leading byte offset is the distance between them, its stride offset that
 * between 8-row groups along K (1024 bytes in a 128-byte-row layout). */
#define FAI_WGMMA_RS_N128(name, TYPE)                                                                      \
    __device__ __forceinline__ void name(float d0[32], float d1[32], const uint32_t a[4], uint64_t desc_b,     \
                                         int accumulate)                                                    \
    {                                                                                                       \
        FAI_WGMMA_RS_N128_BODY(TYPE)                                                                        \
    }
#if FAI_HAS_WGMMA
#define FAI_WGMMA_RS_N128_BODY(TYPE)                                                                        \
    asm volatile("{\n"                                                                                      \
                 ".reg .pred p;\n"                                                                          \
                 "setp.ne.b32 p, %69, 0;\n"                                                                 \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." #TYPE "." #TYPE " "                        \
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                  \
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "        \
                 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "         \
                 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "        \
                 "{%64, %65, %66, %67}, %68, p, 1, 1, 1;\n"                                                 \
                 "}\n"                                                                                      \
                 : FAI_WGMMA_ACC32(d0), FAI_WGMMA_ACC32(d1)                                                 \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(accumulate)                 \
                 : "memory");
#else
#define FAI_WGMMA_RS_N128_BODY(TYPE)                                                                        \
    (void)d0;                                                                                               \
    (void)d1;                                                                                               \
    (void)a;                                                                                                \
    (void)desc_b;                                                                                           \
    (void)accumulate;
#endif
FAI_WGMMA_RS_N128(wgmma_m64n128k16_f16_rs_tb, f16)
FAI_WGMMA_RS_N128(wgmma_m64n128k16_bf16_rs_tb, bf16)

#endif
