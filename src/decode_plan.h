/* Internal: how a decode call is cut into blocks. Shared by the host planner (C) and the
 * kernels (CUDA), so the geometry constants live here as macros usable in both. */
#ifndef FAI_DECODE_PLAN_H
#define FAI_DECODE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "fai.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Lanes of a warp that share one key row, 8 FP16 (16 bytes) each; a power of two, so
 * head dim 96 uses 16 lanes of which 12 hold data. */
#define FAI_DECODE_LANES_PER_KEY(d) ((d) <= 64 ? 8 : (d) <= 128 ? 16 : 32)
/* Keys each lane loads before using any (more bytes in flight); fewer for 8 heads per block,
 * whose accumulators take the registers. (2 and 8 measured no better: docs/perf/.) */
#define FAI_DECODE_UNROLL(hb) ((hb) >= 8 ? 2 : 4)
/* Keys one warp covers per step. */
#define FAI_DECODE_KEYS_PER_STEP(d, hb) ((32 / FAI_DECODE_LANES_PER_KEY(d)) * FAI_DECODE_UNROLL(hb))
/* With one-byte cache elements (eb = 1) a lane's load is 8 bytes, so it loads twice the keys
 * for the same bytes in flight (except at 8 heads per block, for the registers). */
#define FAI_DECODE_UNROLL_KV(hb, eb) ((eb) == 1 && (hb) < 8 ? 2 * FAI_DECODE_UNROLL(hb) : FAI_DECODE_UNROLL(hb))
#define FAI_DECODE_KEYS_PER_STEP_KV(d, hb, eb) ((32 / FAI_DECODE_LANES_PER_KEY(d)) * FAI_DECODE_UNROLL_KV(hb, eb))
#define FAI_DECODE_MAX_WARPS 8
#define FAI_DECODE_MAX_SPLITS 1024
/* Static shared memory of a block is at most 48 KB: W warps x HB heads x (D + 2) floats. */
#define FAI_DECODE_SMEM_LIMIT 49152

/* The tensor-core kernel (GQA groups): each warp streams tiles of 16 keys through its own
 * ring of shared-memory stages; the group's query heads are the rows of an m16n8k16 tile. */
#define FAI_DECODE_MMA_WARPS 4
/* int8 caches: how the tensor-core kernel groups its shared-memory loads of codes before
 * converting them (convert_code_tile in decode_mma.cu: 1 a K or V tile, 2 both). */
#ifndef FAI_DECODE_MMA_INT8_HOIST
#define FAI_DECODE_MMA_INT8_HOIST 2
#endif
#define FAI_DECODE_MMA_KEYS 16
#define FAI_DECODE_MMA_ROWS 16
#define FAI_DECODE_MMA_STAGES(d) 4 /* the default; 2, 3, 4 and 6 are compiled */
/* Shared-memory row in elements: a multiple of 64 so the 16-byte chunks can be swizzled. */
#define FAI_DECODE_MMA_ROW(d) ((d) == 96 ? 128 : (d))
/* Each warp's shared memory: a front tile, then its ring of stages. The front tile of 2-byte
 * caches receives the warp's copy of the block's query rows (16 rows of FP16); that of one-byte
 * caches is the FP16 K and V tile their codes are converted into (below). */
#define FAI_DECODE_MMA_Q_BYTES(d) ((size_t)FAI_DECODE_MMA_ROWS * FAI_DECODE_MMA_ROW(d) * 2)
#define FAI_DECODE_MMA_SMEM(d, stages)                                                                \
    ((size_t)FAI_DECODE_MMA_WARPS * ((stages) * 2 * FAI_DECODE_MMA_KEYS * FAI_DECODE_MMA_ROW(d) * 2 + \
                                     FAI_DECODE_MMA_Q_BYTES(d)))
/* One-byte caches (eb = 1): each warp's ring holds codes (K and V rows of d bytes, then 16 K
 * and 16 V scales of 4 bytes) and the warp converts the tile it is on into one FP16 tile of
 * the layout above (its ldmatrix source). Stages: 3 or 6 (twice the FP16 ring's tiles for
 * the same bytes in flight). */
#define FAI_DECODE_MMA_CODE_STAGE(d) (2 * FAI_DECODE_MMA_KEYS * (d) + 2 * FAI_DECODE_MMA_KEYS * 4)
#define FAI_DECODE_MMA_SMEM_KV(d, stages, eb)                                                             \
    ((eb) == 2 ? FAI_DECODE_MMA_SMEM(d, stages)                                                            \
               : (size_t)FAI_DECODE_MMA_WARPS * (2 * FAI_DECODE_MMA_KEYS * FAI_DECODE_MMA_ROW(d) * 2 +        \
                                                 (size_t)(stages) * FAI_DECODE_MMA_CODE_STAGE(d)))

typedef enum fai_decode_kernel {
    FAI_DECODE_AUTO = -1,
    FAI_DECODE_SIMT = 0, /* CUDA cores: MHA, small groups, head dim 256 */
    FAI_DECODE_MMA = 1   /* tensor cores: GQA/MQA groups, head dims up to 128 */
} fai_decode_kernel;

/* What the planner needs to know of the device. */
typedef struct fai_device_info {
    int num_sms;
    int smem_per_sm; /* bytes of shared memory a multiprocessor can give its blocks */
    int cc_major;    /* compute capability; 9+ allows programmatic dependent launch */
    int smem_per_block; /* the most dynamic shared memory one block may opt in to */
} fai_device_info;

typedef struct fai_decode_plan {
    int32_t kernel;          /* FAI_DECODE_SIMT or FAI_DECODE_MMA */
    int32_t head_dim;
    int32_t heads_per_block; /* SIMT: heads each warp holds, 1, 2, 4 or 8; MMA: up to 16 rows */
    int32_t head_blocks;     /* blocks per KV head: ceil(group / heads_per_block) */
    int32_t warps_per_block; /* 1 .. FAI_DECODE_MAX_WARPS */
    int32_t num_splits;      /* blocks per (sequence, KV head, head block) along the KV */
    /* A split tail (fai_decode_plan_tail): items before split_from run whole, those from it on
     * in num_splits blocks each, on a one-dimensional grid; 0: every item takes num_splits
     * blocks (grid y). split_row0: the first query row (b * num_q_heads + h) of a split item;
     * partials are kept for rows from it on. */
    int32_t split_from;
    int32_t split_row0;
    int32_t stages;          /* MMA: shared-memory stages of each warp's ring */
    size_t smem_bytes;       /* dynamic shared memory of the decode kernel */
    size_t workspace_bytes;  /* partial outputs and LSEs when num_splits > 1, else 0 */
    int32_t dependent_launch; /* launch the merge kernel as a programmatic dependent (sm_90+) */
} fai_decode_plan;

/* Workspace layout when split: part_o [splits][rows][head_dim] floats, then part_lse
 * [splits][rows] floats (log2 domain), each 256-byte aligned, for the rows batch *
 * num_q_heads - split_row0 of the split items (row r's partials at r - split_row0). */
size_t fai_decode_part_lse_offset(const fai_decode_plan *plan, int32_t batch, int32_t num_q_heads);

/* Splits only the items from split_from on (the grid's last ones) `splits` ways, the others
 * whole (split_from 0: all of them; split_from past the last item or splits 1: none), and
 * sizes the workspace: a grid whose last wave would be part empty evens out its end without
 * paying a split's start and merge on every item. Only the tensor-core kernel over one-byte
 * caches (kv_dtype int8 or FP8) takes split tails: for any other plan it returns 0 and leaves
 * the plan as it was, else 1. The planner sets them; fai-bench and the tests force them. */
int fai_decode_plan_tail(fai_decode_plan *plan, fai_dtype kv_dtype, int32_t batch, int32_t num_q_heads,
                         int32_t num_kv_heads, int32_t split_from, int32_t splits);

/* The plan for a validated problem on a device. A pure function of its arguments (tested on
 * the CPU). max_seq_len: the host-side bound on the lengths. `kernel` picks the kernel
 * (FAI_DECODE_AUTO: the heuristic); `splits`, `warps` or `stages` > 0 force those (benchmark
 * tuning; stages: 2, 3, 4 or 6, tensor-core kernel only; fewer when shared memory is short).
 * Returns FAI_ERROR_BAD_PARAM_SHAPE (with a message) when the grid would exceed CUDA's
 * limits. */
fai_status fai_decode_make_plan(const char *fn, int32_t batch, int32_t num_q_heads,
                                int32_t num_kv_heads, int32_t head_dim, int32_t max_seq_len,
                                fai_device_info dev, int kernel, int splits, int warps, int stages,
                                fai_decode_plan *plan);

/* The same for a cache of kv_dtype (a BF16 cache plans as an FP16 one: same bytes; one-byte
 * caches have their own rings and unrolls), paged with pages of page_size tokens (read
 * through a page table) or contiguous (page_size 0). */
fai_status fai_decode_make_plan_kv(const char *fn, fai_dtype kv_dtype, int page_size, int32_t batch,
                                   int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim, int32_t max_seq_len,
                                   fai_device_info dev, int kernel, int splits, int warps, int stages,
                                   fai_decode_plan *plan);

/* The keys a decode row's KV split is planned for: max_len, or a window's keys (window_left
 * + 1) when fewer, the only ones a decode row reads (fai_decode, a hybrid batch's decode rows). */
int32_t fai_decode_planned_keys(const fai_attention *attn, int32_t max_len);

/* The host half of fai_decode, without a device (tests, fuzzer): the argument checks, and
 * the plan of validated parameters with batch > 0 on the given device. */
fai_status fai_decode_validate(const char *fn, const fai_decode_params *p);
fai_status fai_decode_plan_params(const char *fn, const fai_decode_params *p, fai_device_info dev,
                                  fai_decode_plan *plan);

#ifdef __cplusplus
}
#endif

#endif
