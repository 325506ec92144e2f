/* Internal: how a decode call is cut into blocks. Shared by the host planner (C) and the
 * kernels (CUDA), so the geometry constants live here as macros usable in both. */
#ifndef FAI_DECODE_PLAN_H
#define FAI_DECODE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "fai.h"

/* Lanes of a warp that share one key row, 8 FP16 (16 bytes) each; a power of two, so
 * head dim 96 uses 16 lanes of which 12 hold data. */
#define FAI_DECODE_LANES_PER_KEY(d) ((d) <= 64 ? 8 : (d) <= 128 ? 16 : 32)
/* Keys each lane loads before using any (more bytes in flight); fewer for more heads per
 * block, whose accumulators take the registers. Overridable at build time for tuning. */
#ifndef FAI_DECODE_UNROLL_HB1
#define FAI_DECODE_UNROLL_HB1 4
#endif
#ifndef FAI_DECODE_UNROLL_HB4
#define FAI_DECODE_UNROLL_HB4 4
#endif
#define FAI_DECODE_UNROLL(hb) ((hb) >= 8 ? 2 : (hb) >= 4 ? FAI_DECODE_UNROLL_HB4 : FAI_DECODE_UNROLL_HB1)
/* Keys one warp covers per step. */
#define FAI_DECODE_KEYS_PER_STEP(d, hb) ((32 / FAI_DECODE_LANES_PER_KEY(d)) * FAI_DECODE_UNROLL(hb))
#define FAI_DECODE_MAX_WARPS 8
#define FAI_DECODE_MAX_SPLITS 1024
/* Static shared memory of a block is at most 48 KB: W warps x HB heads x (D + 2) floats. */
#define FAI_DECODE_SMEM_LIMIT 49152

typedef struct fai_decode_plan {
    int32_t head_dim;
    int32_t heads_per_block; /* query heads one block serves: 1, 2, 4 or 8 */
    int32_t head_blocks;     /* blocks per KV head: ceil(group / heads_per_block) */
    int32_t warps_per_block; /* 1 .. FAI_DECODE_MAX_WARPS */
    int32_t num_splits;      /* blocks per (sequence, KV head, head block) along the KV */
    size_t smem_bytes;       /* dynamic shared memory of the decode kernel */
    size_t workspace_bytes;  /* partial outputs and LSEs when num_splits > 1, else 0 */
} fai_decode_plan;

/* Workspace layout when split: part_o [splits][batch * num_q_heads][head_dim] floats, then
 * part_lse [splits][batch * num_q_heads] floats (log2 domain), each 256-byte aligned. */
size_t fai_decode_part_lse_offset(const fai_decode_plan *plan, int32_t batch, int32_t num_q_heads);

/* The plan for a validated problem on a GPU with `num_sms` multiprocessors. A pure function
 * of its arguments (tested on the CPU). max_seq_len: the host-side bound on the lengths.
 * `splits` > 0 forces that many splits (benchmark tuning), 0 lets the heuristic choose;
 * likewise `warps`. Returns FAI_ERROR_BAD_PARAM_SHAPE (with a message) when the grid would
 * exceed CUDA's limits. */
fai_status fai_decode_make_plan(const char *fn, int32_t batch, int32_t num_q_heads,
                                int32_t num_kv_heads, int32_t head_dim, int32_t max_seq_len,
                                int num_sms, int splits, int warps, fai_decode_plan *plan);

#endif
