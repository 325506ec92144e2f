/* Internal: the Hopper prefill path (prefill_sm90.cu), which prefill.cu tries before the
 * mma.sync kernel. */
#ifndef FAI_PREFILL_SM90_H
#define FAI_PREFILL_SM90_H

#include "../prefill_args.h"

/* Launches the wgmma/TMA kernel when the call is one it serves (a Hopper GPU, a build with
 * sm_90a code, head dim 128, FP16 or BF16, plain mode without ALiBi, packed K/V, views the TMA
 * can describe) and sets *launched; otherwise returns FAI_SUCCESS with *launched 0 and
 * launches nothing. FAI_PREFILL_SM90=0 in the environment turns the path off (A/B timing). */
extern "C" fai_status fai_prefill_sm90_launch(const fai_prefill_args *args, int mode, int paged, cudaStream_t stream,
                                              int *launched);

#endif
