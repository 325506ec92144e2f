/* Hopper's tensor memory accelerator (TMA) and the shared-memory barriers it signals (sm_90a
 * only; empty bodies elsewhere, like ptx_wgmma.cuh, so that the sm_80 pass compiles).
 *
 * A TMA copy moves a box of a tensor (described on the host by a CUtensorMap) from global into
 * shared memory, swizzled as the map says, and counts its bytes on an mbarrier; rows outside
 * the tensor arrive as zeros. An mbarrier completes a phase when its expected arrivals have
 * come and the bytes it was told to expect (arrive_expect_tx) have landed; waiters name the
 * phase by its parity. */
#ifndef FAI_PTX_TMA_CUH
#define FAI_PTX_TMA_CUH

#include <stdint.h>

#include "ptx_wgmma.cuh" /* FAI_HAS_WGMMA: the same targets have TMA */

__device__ __forceinline__ void mbar_init(uint64_t *bar, uint32_t arrivals)
{
#if FAI_HAS_WGMMA
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"((uint32_t)__cvta_generic_to_shared(bar)),
                 "r"(arrivals)
                 : "memory");
#else
    (void)bar;
    (void)arrivals;
#endif
}

/* Makes barriers just initialized visible to the async proxy (the TMA's byte counts); a
 * __syncthreads follows before any thread uses them. */
__device__ __forceinline__ void mbar_fence_init()
{
#if FAI_HAS_WGMMA
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
#endif
}

/* One arrival that also tells the barrier to expect `bytes` more bytes in this phase. */
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t *bar, uint32_t bytes)
{
#if FAI_HAS_WGMMA
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(
                     (uint32_t)__cvta_generic_to_shared(bar)),
                 "r"(bytes)
                 : "memory");
#else
    (void)bar;
    (void)bytes;
#endif
}

__device__ __forceinline__ void mbar_arrive(uint64_t *bar)
{
#if FAI_HAS_WGMMA
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"((uint32_t)__cvta_generic_to_shared(bar))
                 : "memory");
#else
    (void)bar;
#endif
}

/* Waits until the phase of the given parity has completed (a fresh barrier is in phase 0,
 * so waiting for parity 1 returns at once: the "previous" phase counts as complete). */
__device__ __forceinline__ void mbar_wait(uint64_t *bar, uint32_t parity)
{
#if FAI_HAS_WGMMA
    asm volatile("{\n"
                 ".reg .pred done;\n"
                 "wait_%=:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra wait_%=;\n"
                 "}\n" ::"r"((uint32_t)__cvta_generic_to_shared(bar)),
                 "r"(parity)
                 : "memory");
#else
    (void)bar;
    (void)parity;
#endif
}

/* Brings a tensor map (a __grid_constant__ kernel parameter) into the descriptor cache. */
__device__ __forceinline__ void tma_prefetch_map(const void *map)
{
#if FAI_HAS_WGMMA
    asm volatile("prefetch.tensormap [%0];" ::"l"(map) : "memory");
#else
    (void)map;
#endif
}

/* The box of a rank-3 tensor map at coordinates (c0 innermost, c1, c2) into shared memory at
 * dst (1024-byte aligned for the 128-byte swizzle), its bytes counted on bar. */
__device__ __forceinline__ void tma_load_3d(void *dst, const void *map, uint64_t *bar, int c0, int c1, int c2)
{
#if FAI_HAS_WGMMA
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
                 "%5}], [%2];" ::"r"((uint32_t)__cvta_generic_to_shared(dst)),
                 "l"(map), "r"((uint32_t)__cvta_generic_to_shared(bar)), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
#else
    (void)dst;
    (void)map;
    (void)bar;
    (void)c0;
    (void)c1;
    (void)c2;
#endif
}

/* The same for a rank-4 map (coordinates c0 innermost .. c3). */
__device__ __forceinline__ void tma_load_4d(void *dst, const void *map, uint64_t *bar, int c0, int c1, int c2, int c3)
{
#if FAI_HAS_WGMMA
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, "
                 "%5, %6}], [%2];" ::"r"((uint32_t)__cvta_generic_to_shared(dst)),
                 "l"(map), "r"((uint32_t)__cvta_generic_to_shared(bar)), "r"(c0), "r"(c1), "r"(c2), "r"(c3)
                 : "memory");
#else
    (void)dst;
    (void)map;
    (void)bar;
    (void)c0;
    (void)c1;
    (void)c2;
    (void)c3;
#endif
}

/* A contiguous run of `bytes` (a multiple of 16, 16-byte aligned at both ends) from global
 * into shared memory by the TMA without a tensor map (cp.async.bulk), counted on bar. */
__device__ __forceinline__ void bulk_load(void *dst, const void *src, uint32_t bytes, uint64_t *bar)
{
#if FAI_HAS_WGMMA
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     (uint32_t)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(bytes), "r"((uint32_t)__cvta_generic_to_shared(bar))
                 : "memory");
#else
    (void)dst;
    (void)src;
    (void)bytes;
    (void)bar;
#endif
}

/* Warp specialization's register split: a warpgroup gives registers back (dec) or waits for
 * and takes more (inc), N per thread (a multiple of 8, 24 to 256); every thread of the
 * warpgroup executes it. */
template <int N> __device__ __forceinline__ void setmaxnreg_dec()
{
#if FAI_HAS_WGMMA
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
#endif
}

template <int N> __device__ __forceinline__ void setmaxnreg_inc()
{
#if FAI_HAS_WGMMA
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
#endif
}

/* Barrier `id` (1-15; 0 is __syncthreads) over `threads` threads of the block, a multiple of
 * 32: lets some warps meet without the others. */
__device__ __forceinline__ void named_barrier_sync(int id, int threads)
{
    asm volatile("bar.sync %0, %1;" ::"r"(id), "r"(threads) : "memory");
}

/* The same with the barrier number an immediate (ptxas reserves barriers by the numbers it
 * can see: a run-time number reserves all 16), and an arrival that does not wait (the
 * signalling side of a handoff: `threads` counts the arriving and the waiting together). */
template <int ID> __device__ __forceinline__ void named_barrier_sync_n(int threads)
{
    asm volatile("bar.sync %0, %1;" ::"n"(ID), "r"(threads) : "memory");
}

template <int ID> __device__ __forceinline__ void named_barrier_arrive_n(int threads)
{
    asm volatile("bar.arrive %0, %1;" ::"n"(ID), "r"(threads) : "memory");
}

#endif
