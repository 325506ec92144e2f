/* The fuzzer links the host sources only (clang, sanitizers); the kernel launchers live in
 * the CUDA sources, so they are stubbed. The fuzzer never calls an entry point that
 * launches (only validation, planning and the workspace-size queries). */
#include <stdlib.h>

#include "decode_args.h"
#include "kv_append_args.h"
#include "kv_stage_args.h"
#include "merge_args.h"
#include "prefill_args.h"

fai_status fai_decode_launch(const char *fn, const fai_decode_args *args, const fai_decode_plan *plan,
                             cudaStream_t stream)
{
    (void)fn;
    (void)args;
    (void)plan;
    (void)stream;
    abort();
}

fai_status fai_prefill_launch(const fai_prefill_args *args, cudaStream_t stream)
{
    (void)args;
    (void)stream;
    abort();
}

fai_status fai_kv_append_launch(const fai_kv_append_args *args, cudaStream_t stream)
{
    (void)args;
    (void)stream;
    abort();
}

fai_status fai_merge_launch(const char *fn, const fai_merge_args *args, cudaStream_t stream)
{
    (void)fn;
    (void)args;
    (void)stream;
    abort();
}

fai_status fai_kv_stage_launch(const fai_kv_stage_args *args, cudaStream_t stream)
{
    (void)args;
    (void)stream;
    abort();
}
