/* Internal: the host half of fai_prefill (validation and planning), separate from the launch
 * so that it can be tested and fuzzed without a GPU. */
#ifndef FAI_PREFILL_PLAN_H
#define FAI_PREFILL_PLAN_H

#include "decode_plan.h"
#include "fai.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a call launches: each kernel's grid spans a range of the batch (the whole batch
 * without host lengths; with them, from the first to the last sequence of its kind, so a
 * batch that keeps its decode rows together launches no idle blocks). */
typedef struct fai_prefill_plan {
    int32_t run_prefill, run_decode;
    int32_t prefill_first, prefill_count; /* the prefill kernel's range of sequences */
    int32_t m_tiles;                      /* query tiles per (sequence, head) in its grid */
    int32_t mt;                           /* m16 tiles per warp of the kernel that runs */
    int32_t fill_ring;                    /* mma.sync kernel: every ring stage copied before
                                             the key loop (grids of more than one wave) */
    int32_t one_wave;                     /* fai_prefill_args.one_wave */
    int32_t sm90;                         /* fai_prefill_args.sm90 */
    int32_t num_sms;                      /* the device's multiprocessors */
    int32_t decode_first, decode_count;   /* the decode kernels' range */
    fai_decode_plan decode;               /* their plan, for decode_count sequences */
    /* A quantized kv_cache: the prefill rows' keys and values are staged in q's dtype,
     * stage_keys tokens per sequence (0: no staging), K at workspace + stage_offset and V
     * stage_bytes after it; the decode rows' part of the workspace comes first. */
    int32_t stage_keys;
    size_t stage_offset, stage_bytes;
    /* A Hopper GPU (sm90 > 0): the wgmma kernel's blocks take their work items from a
     * counter of FAI_PREFILL_COUNTER_BYTES at this offset, after everything else (256-byte
     * aligned); 0 and no counter otherwise. */
    size_t counter_offset;
    /* sm90 > 0: (sequence, query head) pairs whose items go out heaviest query tile first
     * across all of them, a section after another (fai_prefill_args.section): as many as
     * have FAI_PREFILL_SECTION_BYTES of keys and values, at least one KV head's group. */
    int32_t section;
    size_t workspace_bytes;
} fai_prefill_plan;

/* Every check that needs no device: shapes, pointers, strides, alignment, and the host copy
 * of cu_seqlens_q when given. */
fai_status fai_prefill_validate(const char *fn, const fai_prefill_params *p);

/* Whether the decode kernels can take this call's decode rows (seq_q == 1): FP16 or BF16,
 * packed K/V or a kv_cache. Otherwise the plan runs every row on the prefill kernel. */
int fai_prefill_decode_kernels_serve(const fai_prefill_params *p);

/* The plan of validated parameters on a device (nothing to launch for an empty batch). */
fai_status fai_prefill_make_plan(const char *fn, const fai_prefill_params *p, fai_device_info dev,
                                 fai_prefill_plan *plan);

#ifdef __cplusplus
}
#endif

#endif
