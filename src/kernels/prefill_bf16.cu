/* The BF16 prefill kernels (prefill_kernel.cuh): one translation unit per element type,
 * so that the two compile side by side. */
#include "prefill_kernel.cuh"

prefill_kernel_fn fai_prefill_pick_bf16(int d, int mt, int mode, bool paged)
{
    return prefill_pick<__nv_bfloat16>(d, mt, mode, paged);
}
