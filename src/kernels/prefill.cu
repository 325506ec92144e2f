/* Prefill attention: the launcher. It picks the kernel of the call's element type, head dim
 * and rows per warp, with the variants' machinery only when a variant is on and the page
 * table only for a paged cache (prefill_kernel.cuh), and launches it over
 * batch * num_q_heads * m_tiles blocks. */
#include "../error.h"
#include "prefill_kernel.cuh"
#include "prefill_sm90.h"

extern "C" fai_status fai_prefill_launch(const fai_prefill_args *args, cudaStream_t stream)
{
    /* Plain attention (causal or no mask, with or without ALiBi) leaves the variants'
     * machinery out, and only soft-capped calls take the soft-cap's code. */
    int mode = FAI_PREFILL_PLAIN;
    if (args->softcap_scale != 0.0f)
        mode = FAI_PREFILL_SOFTCAP;
    else if (args->win_left != -1 || args->win_right > 0 || args->sinks)
        mode = FAI_PREFILL_WINDOW;
    const bool paged = args->seq_lens && args->page_table;
    int launched = 0; /* the Hopper kernel, when it serves the call */
    const fai_status hopper = fai_prefill_sm90_launch(args, mode, paged, stream, &launched);
    if (launched || hopper != FAI_SUCCESS)
        return hopper;
    const int d = args->head_dim, mt = args->mt;
    prefill_kernel_fn kernel = NULL;
    /* One wave of blocks, one query tile each (the plan's one_wave): plain attention asks for
     * the one-wave copy schedule, which the pickers give where it is built (else the plain
     * kernel; prefill_kernel.cuh). */
    if (args->one_wave && mode == FAI_PREFILL_PLAIN && !paged)
        mode = FAI_PREFILL_PLAIN_WAVE;
    if (args->dtype == FAI_DTYPE_FP16)
        kernel = fai_prefill_pick_fp16(d, mt, mode, paged);
    else if (args->dtype == FAI_DTYPE_BF16)
        kernel = fai_prefill_pick_bf16(d, mt, mode, paged);
    const size_t smem = kernel ? FAI_PREFILL_SMEM(d, mt) : 0;
    if (!kernel)
        return fai_error(FAI_ERROR_INTERNAL,
                         "fai_prefill: no prefill kernel for head_dim %d, %d m-tiles per warp, dtype %d",
                         (int)args->head_dim, (int)args->mt, (int)args->dtype);
    /* Over 48 KB of dynamic shared memory must be asked for (host-only, capture-safe). */
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess)
        return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED, err, "fai_prefill: cudaFuncSetAttribute (%zu bytes of shared memory)",
                              smem);
    const int64_t blocks = (int64_t)args->batch * args->num_q_heads * args->m_tiles;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3(FAI_PREFILL_WARPS * 32);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    err = cudaLaunchKernelEx(&cfg, kernel, *args);
    if (err == cudaSuccess)
        return FAI_SUCCESS;
    return fai_cuda_error(FAI_ERROR_EXECUTION_FAILED_LAUNCH, err, "fai_prefill: launching the prefill kernel failed");
}
