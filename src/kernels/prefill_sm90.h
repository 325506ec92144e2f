/* Internal: the Hopper prefill path (prefill_sm90.cu), which prefill.cu tries before the
 * mma.sync kernel. */
#ifndef FAI_PREFILL_SM90_H
#define FAI_PREFILL_SM90_H

#include "../prefill_args.h"

/* Launches the wgmma/TMA kernel when the call is one it serves (a Hopper GPU, a build with
 * sm_90a code; head dim 64 or 128 with 128-row tiles planned, or 256; FP16 or BF16; packed
 * K/V, a contiguous cache or a paged one with pages of 16+ keys; views the TMA can describe)
 * and sets *launched; otherwise returns FAI_SUCCESS with *launched 0 and launches nothing. In
 * the environment, FAI_PREFILL_SM90=0 turns the path off (A/B timing) and FAI_PREFILL_SM90=1
 * takes it for short sequences too (the tests); FAI_PREFILL_SM90_PERSISTENT=0 launches a
 * block per work item instead of one per SM, and FAI_PREFILL_SM90_PINGPONG=1 has the
 * consumers take turns at the tensor cores (both measured, neither the default). */
extern "C" fai_status fai_prefill_sm90_launch(const fai_prefill_args *args, int mode, int paged, cudaStream_t stream,
                                              int *launched);

#endif
