/* Internal: the prefill kernel's parameters (one plain struct passed by value as a
 * __grid_constant__ argument), its tile shapes, and the launcher the host code calls. */
#ifndef FAI_PREFILL_ARGS_H
#define FAI_PREFILL_ARGS_H

#include <cuda_runtime_api.h>

#include "fai.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tile shape per head dim: each of FAI_PREFILL_WARPS warps owns 16 * MT query rows, so a
 * block owns BM = 64 * MT rows and streams K/V tiles of BN keys through a ring of STAGES
 * shared-memory stages. Two m16 tiles per warp let every K/V fragment loaded from shared
 * memory feed two MMAs (one tile per warp would make the kernel shared-memory bound on
 * Hopper); head dim 256 keeps one for its registers. MINB is the blocks per multiprocessor
 * the register budget is cut for. The per-dim values can be overridden at build time
 * (-DFAI_PREFILL_BN_128=64 ...) to try other shapes: scripts/prefill-tune.sh. */
#define FAI_PREFILL_WARPS 4
#ifndef FAI_PREFILL_MT_64
#define FAI_PREFILL_MT_64 2
#endif
#ifndef FAI_PREFILL_MT_96
#define FAI_PREFILL_MT_96 2
#endif
#ifndef FAI_PREFILL_MT_128
#define FAI_PREFILL_MT_128 2
#endif
#ifndef FAI_PREFILL_MT_256
#define FAI_PREFILL_MT_256 1
#endif
#ifndef FAI_PREFILL_BN_64
#define FAI_PREFILL_BN_64 64
#endif
#ifndef FAI_PREFILL_BN_96
#define FAI_PREFILL_BN_96 32
#endif
#ifndef FAI_PREFILL_BN_128
#define FAI_PREFILL_BN_128 64
#endif
#ifndef FAI_PREFILL_BN_256
#define FAI_PREFILL_BN_256 32
#endif
#ifndef FAI_PREFILL_STAGES_64
#define FAI_PREFILL_STAGES_64 4
#endif
#ifndef FAI_PREFILL_STAGES_96
#define FAI_PREFILL_STAGES_96 4
#endif
#ifndef FAI_PREFILL_STAGES_128
#define FAI_PREFILL_STAGES_128 2
#endif
#ifndef FAI_PREFILL_STAGES_256
#define FAI_PREFILL_STAGES_256 2
#endif
#ifndef FAI_PREFILL_MINB_64
#define FAI_PREFILL_MINB_64 1
#endif
#ifndef FAI_PREFILL_MINB_96
#define FAI_PREFILL_MINB_96 1
#endif
#ifndef FAI_PREFILL_MINB_128
#define FAI_PREFILL_MINB_128 1
#endif
#ifndef FAI_PREFILL_MINB_256
#define FAI_PREFILL_MINB_256 1
#endif
/* 64-row blocks (one m16 tile per warp) for grids that 128-row blocks cannot fill once.
 * Measured on H100: batch 1 x seq 128 in 10.7 us instead of 14.2 (docs/perf/README.md). The
 * flag must reach both the C (planner) and the CUDA (launcher) compiles: scripts/prefill-tune.sh
 * passes a variant's flags to both. */
/* The most mma.sync prefill blocks an SM holds (their registers: 4 warps of up to 255), for
 * the planner's fill_ring rule; shared memory may allow fewer (one on an A100 at d 128). */
#define FAI_PREFILL_FILL_WAVE_BLOCKS 2
#ifndef FAI_PREFILL_SMALL_GRID
#define FAI_PREFILL_SMALL_GRID 1
#endif
/* A paged FP16/BF16 kv_cache is gathered into a contiguous copy in the workspace (the unpaged
 * kernel then reads it) when the prefill range's query rows x q heads / kv heads per
 * sequence reach this (0: never) and the copy fits FAI_PREFILL_STAGE_PAGED_MAX_BYTES.
 * Estimate on an H100: the copy costs ~466 x kv heads / (rows x q heads) of the prefill's
 * time against paging's ~15 %; 8192 puts it under 6 %. */
#ifndef FAI_PREFILL_STAGE_PAGED_ROWS
#define FAI_PREFILL_STAGE_PAGED_ROWS 8192
#endif
#ifndef FAI_PREFILL_STAGE_PAGED_MAX_BYTES
#define FAI_PREFILL_STAGE_PAGED_MAX_BYTES (256.0 * 1024 * 1024)
#endif
/* Warps skip the K/V tiles wholly above their rows' causal diagonal (0: they compute and
 * mask them like the rest of the block). */
#ifndef FAI_PREFILL_WARP_SKIP
#define FAI_PREFILL_WARP_SKIP 0
#endif
/* The soft-cap's tanh: 0 computes it as 1 - 2 / (1 + e^2x) (two special-function ops,
 * absolute error about 1e-6, so the capped logit is off by about cap * 1e-6); 1 takes
 * tanh.approx.f32 (one op, relative error about 2^-11: up to cap * 2^-11 on the logit). */
#ifndef FAI_PREFILL_FAST_TANH
#define FAI_PREFILL_FAST_TANH 0
#endif
/* Keys a sequence (max_seq_k, the mean, or a cache's bound) from which a Hopper GPU runs the
 * wgmma kernel (prefill_sm90.cu) rather than the mma.sync one. */
#ifndef FAI_PREFILL_SM90_MIN_KEYS
#define FAI_PREFILL_SM90_MIN_KEYS 256
#endif
/* The Hopper kernel's work counter in the workspace (fai_prefill_plan.counter_offset). */
#define FAI_PREFILL_COUNTER_BYTES 4
/* Keys and values (bytes) of the query heads whose items the Hopper kernel hands out together
 * (fai_prefill_plan.section): a third of an H100's L2, so that they stay there meanwhile. */
#define FAI_PREFILL_SECTION_BYTES (16 << 20)
#define FAI_PREFILL_PICK_(what, d) \
    ((d) == 64 ? what##_64 : (d) == 96 ? what##_96 : (d) == 128 ? what##_128 : what##_256)
#define FAI_PREFILL_MT(d) FAI_PREFILL_PICK_(FAI_PREFILL_MT, d)
#define FAI_PREFILL_BN(d) FAI_PREFILL_PICK_(FAI_PREFILL_BN, d)
#define FAI_PREFILL_STAGES(d) FAI_PREFILL_PICK_(FAI_PREFILL_STAGES, d)
#define FAI_PREFILL_MINB(d) FAI_PREFILL_PICK_(FAI_PREFILL_MINB, d)
/* Query rows of a block with mt m16 tiles per warp. Head dims up to 128 also have a
 * one-tile (64-row) kernel, for grids too small to fill the GPU with 128-row blocks
 * (twice the blocks, each with half the latency to wait out). */
#define FAI_PREFILL_BM_OF(mt) (FAI_PREFILL_WARPS * 16 * (mt))
#define FAI_PREFILL_BM(d) FAI_PREFILL_BM_OF(FAI_PREFILL_MT(d))
/* Shared-memory row in elements: a multiple of 64 so 16-byte chunks can be swizzled. */
#define FAI_PREFILL_ROW(d) ((d) == 96 ? 128 : (d))
/* The Q tile, then the ring of (K tile, V tile) stages. */
#define FAI_PREFILL_SMEM(d, mt) \
    ((size_t)(FAI_PREFILL_BM_OF(mt) + 2 * FAI_PREFILL_BN(d) * FAI_PREFILL_STAGES(d)) * FAI_PREFILL_ROW(d) * 2)

typedef struct fai_prefill_args {
    const void *q, *k, *v;     /* FP16 or BF16 (dtype), as o */
    void *o;
    const int32_t *cu_q, *cu_k;
    const float *alibi_slopes; /* NULL: standard slopes (when alibi) */
    const float *sinks;        /* NULL: no sinks; else one natural-log logit per query head */
    float *lse;                /* NULL: not written */
    int64_t q_token_stride, q_head_stride;
    int64_t k_token_stride, k_head_stride;
    int64_t v_token_stride, v_head_stride;
    int64_t o_token_stride, o_head_stride;
    int32_t total_q, total_k;
    int32_t batch;            /* sequences in the grid: batch_offset .. batch_offset + batch - 1 */
    int32_t batch_offset;
    int32_t num_q_heads, num_kv_heads, group, head_dim;
    int32_t dtype;            /* FAI_DTYPE_FP16 or FAI_DTYPE_BF16: picks the kernel */
    int32_t alibi;
    /* The mask: row i of a sequence sees key j when
     *   i + off - win_left <= j <= i + off + win_right,   off = seq_k - seq_q,
     * each side -1 for unbounded. The causal mask is win_right = 0 (and a causal window keeps
     * win_right 0); no mask and no window is -1, -1. */
    int32_t win_left, win_right;
    int32_t skip_decode_rows; /* sequences with seq_q == 1 are left to the decode kernels */
    int32_t sm90;             /* 0: not a Hopper GPU; 1: a Hopper, sequences shorter than
                                 FAI_PREFILL_SM90_MIN_KEYS; 2: a Hopper, sequences as long (the
                                 wgmma kernel of prefill_sm90.cu takes what it serves) */
    int32_t num_sms;          /* the device's multiprocessors (the Hopper kernel's grid) */
    uint32_t *next_item;      /* sm90 > 0: the Hopper kernel's work counter in the workspace,
                                 zeroed by its launch before the kernel (NULL: none) */
    int32_t section;          /* the Hopper kernel hands its items out in sections of this
                                 many (sequence, query head) pairs, heaviest tile first
                                 across each (fai_prefill_plan.section) */
    int32_t mt;               /* m16 tiles per warp: FAI_PREFILL_MT(head_dim), or 1 */
    int32_t m_tiles;          /* query tiles per (sequence, head) in the grid; a block also
                                 takes tile t + m_tiles, t + 2 m_tiles, ... of longer ones */
    int32_t fill_ring;        /* mma.sync kernel: copy every ring stage's tile before the key
                                 loop (fai_prefill_plan.fill_ring) */
    float scale_log2;         /* q.k (or its soft-capped tanh) into the exp2 domain:
                                 softmax_scale * log2(e), or softcap * log2(e) with a soft-cap */
    float softcap_scale;      /* softmax_scale / softcap: q.k into tanh's argument; 0: no cap */
    /* Keys and values from a KV cache (fai_prefill_params.kv_cache), when seq_lens is set:
     * cu_k and total_k are then not used, k/v are the cache's pools and k_ and v_token_stride /
     * head_stride its strides. Sequence b's keys are tokens 0 .. seq_lens[b] - 1 (clamped
     * into [0, capacity]) of slot b, at k + b * kv_seq_stride, or with a page table, of pages
     * page_table[b * page_table_stride + (key >> page_shift)] (clamped into [0, num_pages)) at
     * k + page * kv_seq_stride, row key & (2^page_shift - 1). */
    const int32_t *seq_lens;  /* NULL: packed k/v through cu_k */
    const int32_t *page_table; /* NULL: contiguous slots */
    int64_t kv_seq_stride;    /* slot stride, or page stride with a page table */
    int64_t page_table_stride;
    int32_t capacity;         /* tokens a sequence can hold */
    int32_t kv_slot_offset;   /* contiguous cache: sequence b's slot is b - kv_slot_offset (a
                                 quantized cache's staged copy holds the prefill rows' range) */
    int32_t page_shift;       /* log2(page_size) */
    int32_t num_pages;
    int32_t one_wave;         /* mma.sync kernel: one wave of blocks, each one query tile (the
                                 longest sequence known from host lengths): plain attention
                                 takes the one-wave copy schedule (FAI_PREFILL_PLAIN_WAVE) */
} fai_prefill_args;

/* Launches the prefill kernel over batch * num_q_heads * m_tiles blocks. */
fai_status fai_prefill_launch(const fai_prefill_args *args, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
