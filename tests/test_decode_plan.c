/* CPU test of the decode planner: the split-KV and block-shape heuristics on the shapes of
 * the benchmark suites, and the invariants every plan must keep. */
#include <stdio.h>

#include "decode_plan.h"

#include "cpu_check.h"

/* An H100: 132 SMs, 228 KB of shared memory each. */
static const fai_device_info h100 = {132, 233472, 9, 232448};
/* Devices of other sizes the invariants must hold on: an A100 and an RTX 3090-like sm_86. */
static const fai_device_info devices[] = {{132, 233472, 9, 232448}, {108, 167936, 8, 166912}, {82, 102400, 8, 101376}};

static fai_decode_plan plan_on(fai_device_info dev, int batch, int hq, int hk, int d, int len, int kernel)
{
    fai_decode_plan p;
    fai_status s = fai_decode_make_plan("test", batch, hq, hk, d, len, dev, kernel, 0, 0, 0, &p);
    CHECK(s == FAI_SUCCESS, "make_plan(%d,%d,%d,%d,%d) failed", batch, hq, hk, d, len);
    return p;
}

static fai_decode_plan plan_kernel(int batch, int hq, int hk, int d, int len, int kernel)
{
    return plan_on(h100, batch, hq, hk, d, len, kernel);
}

static fai_decode_plan plan(int batch, int hq, int hk, int d, int len)
{
    return plan_kernel(batch, hq, hk, d, len, FAI_DECODE_AUTO);
}

/* Invariants: sizes in range, workspace exactly when split, shared memory within 48 KB. */
static void check_invariants(fai_device_info dev, int batch, int hq, int hk, int d, int len, int kernel)
{
    const fai_decode_plan p = plan_on(dev, batch, hq, hk, d, len, kernel);
    const int group = hq / hk;
    CHECK(p.kernel == FAI_DECODE_SIMT || p.kernel == FAI_DECODE_MMA, "kernel %d", p.kernel);
    CHECK(p.kernel == FAI_DECODE_SIMT || d <= 128, "tensor cores for head dim %d", d);
    if (p.kernel == FAI_DECODE_SIMT) {
        CHECK(p.heads_per_block == 1 || p.heads_per_block == 2 || p.heads_per_block == 4 || p.heads_per_block == 8,
              "hb %d", p.heads_per_block);
        CHECK(p.smem_bytes <= FAI_DECODE_SMEM_LIMIT, "smem %zu", p.smem_bytes);
        CHECK(p.smem_bytes == (size_t)p.warps_per_block * p.heads_per_block * (d + 2) * sizeof(float), "smem %zu",
              p.smem_bytes);
    } else {
        CHECK(p.heads_per_block >= 1 && p.heads_per_block <= FAI_DECODE_MMA_ROWS, "rows %d", p.heads_per_block);
        CHECK(p.warps_per_block == FAI_DECODE_MMA_WARPS, "warps %d", p.warps_per_block);
        /* The epilogue reuses the ring's shared memory; the ring fits the device; the
         * launcher has kernels for 2, 3, 4 and 6 stages. */
        CHECK(p.smem_bytes >= (size_t)FAI_DECODE_MMA_WARPS * FAI_DECODE_MMA_ROWS * (d + 2) * sizeof(float),
              "smem %zu", p.smem_bytes);
        CHECK(p.smem_bytes <= (size_t)dev.smem_per_block && p.smem_bytes + 1024 <= (size_t)dev.smem_per_sm,
              "smem %zu on a device of %d per block", p.smem_bytes, dev.smem_per_block);
        CHECK(p.stages == 2 || p.stages == 3 || p.stages == 4 || p.stages == 6, "stages %d", p.stages);
    }
    CHECK(p.head_blocks * p.heads_per_block >= group && (p.head_blocks - 1) * p.heads_per_block < group,
          "head blocks %d x %d for group %d", p.head_blocks, p.heads_per_block, group);
    CHECK(p.warps_per_block >= 1 && p.warps_per_block <= FAI_DECODE_MAX_WARPS, "warps %d", p.warps_per_block);
    CHECK(p.num_splits >= 1 && p.num_splits <= FAI_DECODE_MAX_SPLITS, "splits %d", p.num_splits);
    CHECK((p.num_splits > 1) == (p.workspace_bytes > 0), "splits %d workspace %zu", p.num_splits,
          p.workspace_bytes);
    CHECK(p.split_from == 0 || (p.kernel == FAI_DECODE_MMA && p.num_splits > 1), "split tail from %d, %d splits",
          p.split_from, p.num_splits);
    if (p.num_splits > 1) {
        const size_t need = (size_t)p.num_splits * ((size_t)batch * hq - p.split_row0) * (d + 1) * sizeof(float);
        CHECK(p.workspace_bytes >= need, "workspace %zu < %zu", p.workspace_bytes, need);
        CHECK(fai_decode_part_lse_offset(&p, batch, hq) % 256 == 0, "lse offset unaligned");
        /* A split is never shorter than the minimum chunk when the heuristic chose it. */
        CHECK((int64_t)p.num_splits * 256 <= (int64_t)len + 255, "splits %d for len %d", p.num_splits, len);
    }
    /* A forced split tail from the middle item (one-byte caches on tensor cores only): its
     * first query row, and partials for the rows from there on only. */
    fai_decode_plan t;
    CHECK(fai_decode_make_plan_kv("test", FAI_DTYPE_INT8, 0, batch, hq, hk, d, len, dev, kernel, 0, 0, 0, &t) ==
              FAI_SUCCESS,
          "int8 plan");
    const int64_t items = (int64_t)batch * hk * t.head_blocks;
    fai_decode_plan same = p;
    CHECK(!fai_decode_plan_tail(&same, FAI_DTYPE_FP16, batch, hq, hk, 0, 3) && same.num_splits == p.num_splits &&
              same.workspace_bytes == p.workspace_bytes,
          "a split tail on an FP16 plan");
    CHECK(t.kernel == FAI_DECODE_MMA || !fai_decode_plan_tail(&t, FAI_DTYPE_INT8, batch, hq, hk, 0, 3),
          "a split tail on a CUDA-core plan");
    if (t.kernel == FAI_DECODE_MMA && items >= 2 && items * 3 < INT32_MAX && (int64_t)batch * hq < INT32_MAX) {
        const int32_t from = (int32_t)(items / 2);
        CHECK(fai_decode_plan_tail(&t, FAI_DTYPE_INT8, batch, hq, hk, from, 3), "tail refused");
        const int64_t item = from / t.head_blocks;
        const int64_t row0 = (item / hk) * hq + (item % hk) * group + (from % t.head_blocks) * t.heads_per_block;
        CHECK(t.split_from == from && t.num_splits == 3 && t.split_row0 == row0, "tail from %d: %d, row %d, %d splits",
              from, t.split_from, t.split_row0, t.num_splits);
        const size_t rows = (size_t)batch * hq - (size_t)row0;
        CHECK(t.workspace_bytes >= 3 * rows * (d + 1) * sizeof(float) &&
                  t.workspace_bytes < 3 * rows * (d + 1) * sizeof(float) + 512,
              "tail workspace %zu for %zu rows", t.workspace_bytes, rows);
    }
}

int main(void)
{
    /* MHA, many items of short sequences: CUDA cores, no split, small blocks; long
     * sequences: the tensor-core kernel's cp.async ring (measured faster, docs/perf/). */
    fai_decode_plan p = plan(128, 32, 32, 128, 128);
    CHECK(p.kernel == FAI_DECODE_SIMT && p.num_splits == 1 && p.warps_per_block == 4,
          "b128 sk128 MHA: kernel %d splits %d warps %d", p.kernel, p.num_splits, p.warps_per_block);
    CHECK(plan(128, 32, 32, 128, 8192).kernel == FAI_DECODE_MMA, "b128 sk8192 MHA");
    CHECK(plan(1, 32, 32, 128, 128).kernel == FAI_DECODE_MMA, "b1 sk128 MHA (few items)");
    CHECK(plan(8, 32, 32, 128, 128).kernel == FAI_DECODE_SIMT, "b8 sk128 MHA");
    CHECK(plan(2048, 32, 32, 128, 128).kernel == FAI_DECODE_MMA, "b2048 sk128 MHA (512K tiles in all)");
    /* The ring's depth follows the work per warp: under 8 tiles -> 3 stages, 8+ -> 4, split
     * or not. */
    CHECK(plan(2048, 32, 32, 128, 128).stages == 3, "b2048 sk128: %d stages", plan(2048, 32, 32, 128, 128).stages);
    CHECK(plan(128, 32, 32, 128, 256).stages == 3, "b128 sk256: %d stages", plan(128, 32, 32, 128, 256).stages);
    CHECK(plan(128, 32, 32, 128, 512).stages == 4, "b128 sk512: %d stages", plan(128, 32, 32, 128, 512).stages);
    /* A 3-stage ring, with each warp's tile of Q (session 19), still lets two blocks share an
     * H100 SM: the short rows were measured so (112 KB a block at head dim 128). */
    CHECK(2 * (plan(2048, 32, 32, 128, 128).smem_bytes + 1024) <= (size_t)h100.smem_per_sm,
          "3 stages, d128: %zu bytes a block", plan(2048, 32, 32, 128, 128).smem_bytes);
    /* Groups of 4+ on tensor cores at every length (measured faster at batch 1 x 4K-16K too);
     * groups of 2 with short splits stay on CUDA cores. */
    CHECK(plan(1, 32, 8, 128, 8192).kernel == FAI_DECODE_MMA, "GQA 32/8 b1 8K");
    CHECK(plan(1, 32, 8, 128, 4096).kernel == FAI_DECODE_MMA && plan(1, 32, 8, 128, 4096).stages == 3 &&
              plan(1, 32, 8, 128, 4096).num_splits == 16,
          "GQA 32/8 b1 4K: tensor cores, 3 stages, 16 splits");
    CHECK(plan(1, 32, 16, 128, 8192).kernel == FAI_DECODE_SIMT, "GQA 32/16 b1 8K");
    CHECK(plan(1, 32, 8, 128, 32768).kernel == FAI_DECODE_MMA, "GQA b1 32K");
    /* GQA 32/8 at batch 1 x 128K: tensor cores, and 8 items for 132 SMs must split to about one
     * full wave of resident blocks (the seed's kernel did not split at all). */
    p = plan(1, 32, 8, 128, 131072);
    CHECK(p.kernel == FAI_DECODE_MMA && p.heads_per_block == 4 && p.head_blocks == 1, "GQA: kernel %d, %d x %d",
          p.kernel, p.heads_per_block, p.head_blocks);
    CHECK(p.stages == 4 && p.num_splits == 16, "GQA b1 128K: %d stages, %d splits (1 block per SM x 132 SMs / 8 items = 16)",
          p.stages, p.num_splits);
    p = plan(1, 32, 8, 128, 32768);
    CHECK(p.stages == 4 && p.num_splits == 16, "GQA b1 32K: %d stages, %d splits (split, still 4 stages)", p.stages,
          p.num_splits);
    CHECK(plan(16, 32, 8, 128, 8192).stages == 4, "GQA b16 8K: unsplit, 4 stages");
    /* A few waves of unsplit blocks: 3 stages, two blocks a SM (GQA 64 x 4K: 512 blocks); from
     * 8 waves on (MHA 128 x 8K: 4096) 4 stages again. */
    CHECK(plan(64, 32, 8, 128, 4096).stages == 3 && plan(64, 32, 8, 128, 4096).num_splits == 1,
          "GQA b64 4K: %d stages", plan(64, 32, 8, 128, 4096).stages);
    CHECK(plan(128, 32, 32, 128, 8192).stages == 4, "MHA b128 8K: %d stages", plan(128, 32, 32, 128, 8192).stages);
    /* One-byte caches: 3-stage rings, two blocks per SM, twice the splits (measured faster). */
    fai_decode_plan q8;
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP8_E4M3, 0, 1, 32, 8, 128, 131072, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA && q8.stages == 3 && q8.num_splits == 33,
          "FP8 GQA b1 128K: kernel %d, %d stages, %d splits (2 blocks per SM x 132 / 8 items)", q8.kernel, q8.stages,
          q8.num_splits);
    fai_decode_make_plan_kv("test", FAI_DTYPE_INT8, 0, 16, 32, 8, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA && q8.stages == 3 && q8.num_splits == 2, "int8 GQA b16 8K: %d stages, %d splits",
          q8.stages, q8.num_splits);
    /* MHA: FP8 and int8 caches on tensor cores, as measured. */
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP8_E5M2, 0, 128, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA && q8.stages == 3, "FP8 MHA b128 8K: kernel %d, %d stages", q8.kernel, q8.stages);
    fai_decode_make_plan_kv("test", FAI_DTYPE_INT8, 0, 128, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA && q8.stages == 3, "int8 MHA b128 8K: kernel %d", q8.kernel);
    /* ... whose 4096 blocks fill 15 waves of 264 and leave 136: those items alone split in
     * thirds (408 blocks, two waves of a third's length); their rows' partials only. */
    CHECK(q8.split_from == 3960 && q8.num_splits == 3 && q8.split_row0 == 3960 &&
              q8.workspace_bytes == 3 * 136 * 128 * 4 + 1792,
          "int8 MHA b128 8K: tail from %d, %d splits, row %d, %zu bytes", q8.split_from, q8.num_splits, q8.split_row0,
          q8.workspace_bytes);
    fai_decode_make_plan_kv("test", FAI_DTYPE_INT8, 16, 124, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.split_from == 3960 && q8.num_splits == 4, "paged int8 MHA b124 8K: tail from %d, %d splits",
          q8.split_from, q8.num_splits); /* 8 items past 15 waves: in quarters */
    fai_decode_make_plan_kv("test", FAI_DTYPE_INT8, 0, 132, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.split_from == 0 && q8.num_splits == 1, "int8 MHA b132 8K (16 full waves): %d splits", q8.num_splits);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 128, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.split_from == 0 && q8.num_splits == 1, "paged FP16 MHA b128 8K: no tail (%d splits)", q8.num_splits);
    /* Over a paged cache int8 MHA keeps tensor cores, FP8 MHA too from 4096 keys and CUDA cores
     * below (measured faster); FP8 GQA and FP16 MHA keep tensor cores. */
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP8_E4M3, 16, 128, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0,
                            &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA, "paged FP8 MHA b128 8K: kernel %d", q8.kernel);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP8_E4M3, 16, 32, 32, 32, 128, 2048, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_SIMT, "paged FP8 MHA b32 2K: kernel %d", q8.kernel);
    fai_decode_make_plan_kv("test", FAI_DTYPE_INT8, 16, 32, 32, 32, 128, 2048, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA, "paged int8 MHA b32 2K: kernel %d", q8.kernel);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP8_E4M3, 16, 1, 32, 8, 128, 131072, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA, "paged FP8 GQA b1 128K: kernel %d", q8.kernel);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 128, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA, "paged FP16 MHA b128 8K: kernel %d", q8.kernel);
    /* Paged 2-byte MHA up to 2048 keys: CUDA cores (its page-table waits overlap better there),
     * 2 warps a block for many short items, 8 for few; a single sequence keeps tensor cores. */
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 128, 32, 32, 128, 2048, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_SIMT && q8.warps_per_block == 4, "paged FP16 MHA b128 2K: kernel %d, %d warps",
          q8.kernel, q8.warps_per_block);
    fai_decode_make_plan_kv("test", FAI_DTYPE_BF16, 16, 1024, 32, 32, 128, 128, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_SIMT && q8.warps_per_block == 2, "paged BF16 MHA b1024 128: kernel %d, %d warps",
          q8.kernel, q8.warps_per_block);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 8, 32, 32, 128, 128, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_SIMT && q8.warps_per_block == 8, "paged FP16 MHA b8 128: kernel %d, %d warps",
          q8.kernel, q8.warps_per_block);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 1, 32, 32, 128, 128, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA, "paged FP16 MHA b1 128: kernel %d", q8.kernel);
    /* A paged cache never takes the tensor-core kernel where a contiguous one would not (few
     * items of 4K keys: CUDA cores with splits either way). */
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 0, 4, 32, 32, 128, 4096, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    fai_decode_plan q16;
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 4, 32, 32, 128, 4096, h100, FAI_DECODE_AUTO, 0, 0, 0, &q16);
    CHECK(q8.kernel == FAI_DECODE_SIMT && q16.kernel == FAI_DECODE_SIMT && q16.num_splits > 1,
          "FP16 MHA b4 4K: contiguous kernel %d, paged kernel %d with %d splits", q8.kernel, q16.kernel,
          q16.num_splits);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 16, 128, 32, 32, 128, 3072, h100, FAI_DECODE_AUTO, 0, 0, 0, &q16);
    CHECK(q16.kernel == FAI_DECODE_SIMT, "paged FP16 MHA b128 3K: kernel %d (CUDA cores below 4096 keys)",
          q16.kernel);
    /* Pages under 16 keys: MHA on CUDA cores at every length, GQA on 3-stage rings with twice
     * the splits (as one-byte caches). */
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 1, 128, 32, 32, 128, 8192, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_SIMT, "page-1 FP16 MHA b128 8K: kernel %d", q8.kernel);
    fai_decode_make_plan_kv("test", FAI_DTYPE_FP16, 8, 1, 32, 8, 128, 32768, h100, FAI_DECODE_AUTO, 0, 0, 0, &q8);
    CHECK(q8.kernel == FAI_DECODE_MMA && q8.stages == 3 && q8.num_splits == 33,
          "page-8 FP16 GQA b1 32K: kernel %d, %d stages, %d splits", q8.kernel, q8.stages, q8.num_splits);
    /* An A100's 164 KB per SM takes the 128 KB ring, not a 192 KB one. */
    const fai_device_info a100 = devices[1];
    fai_decode_plan deep;
    fai_decode_make_plan("test", 1, 32, 8, 128, 131072, a100, FAI_DECODE_MMA, 0, 0, 6, &deep);
    CHECK(deep.stages == 4 && deep.smem_bytes + 1024 <= 167936 && deep.dependent_launch == 0, "A100 ring: %d stages",
          deep.stages);
    /* Head dim 256 stays on CUDA cores even for GQA (the accumulators would not fit). */
    CHECK(plan(1, 32, 8, 256, 4096).kernel == FAI_DECODE_SIMT, "d256 GQA");
    /* Short sequences are not split below the minimum chunk: batch 1 x 128 keys. */
    p = plan_kernel(1, 32, 32, 128, 128, FAI_DECODE_SIMT);
    CHECK(p.num_splits == 1 && p.workspace_bytes == 0, "b1 sk128 split %d", p.num_splits);
    CHECK(p.warps_per_block == 8, "b1 sk128 should spread over 8 warps, got %d", p.warps_per_block);
    /* A sequence of one key needs one warp. */
    p = plan_kernel(4, 8, 8, 64, 1, FAI_DECODE_SIMT);
    CHECK(p.warps_per_block == 1 && p.num_splits == 1, "len 1: warps %d splits %d", p.warps_per_block,
          p.num_splits);
    /* Group sizes on CUDA cores: 7 -> one block of 8 heads, 32 (MQA) -> 4 blocks of 8, 2 -> 2;
     * on tensor cores 32 (MQA) -> 2 blocks of 16 rows, 7 -> one block of 7 rows. */
    CHECK(plan_kernel(1, 7, 1, 128, 100, FAI_DECODE_SIMT).heads_per_block == 8, "group 7");
    CHECK(plan_kernel(1, 32, 1, 128, 100, FAI_DECODE_SIMT).head_blocks == 4, "MQA 32");
    CHECK(plan_kernel(1, 4, 2, 128, 100, FAI_DECODE_SIMT).heads_per_block == 2, "group 2");
    CHECK(plan(1, 32, 1, 128, 100).head_blocks == 2, "MQA 32 on tensor cores");
    CHECK(plan(1, 7, 1, 128, 100).heads_per_block == 7, "group 7 on tensor cores");
    /* Head dim 256 with 8 heads per block stays within 48 KB of shared memory. */
    CHECK(plan(1, 64, 8, 256, 100000).smem_bytes <= FAI_DECODE_SMEM_LIMIT, "smem d256");
    /* The grid limit is reported, not overflowed. */
    fai_decode_plan big;
    CHECK(fai_decode_make_plan("test", 1 << 30, 64, 8, 128, 1, h100, FAI_DECODE_AUTO, 0, 0, 0, &big) ==
              FAI_ERROR_BAD_PARAM_SHAPE,
          "grid overflow accepted");
    /* Forced plans (benchmark tuning) are honoured within limits. */
    fai_decode_plan forced;
    fai_decode_make_plan("test", 2, 8, 8, 128, 4096, h100, FAI_DECODE_SIMT, 7, 3, 0, &forced);
    CHECK(forced.num_splits == 7 && forced.warps_per_block == 3 && forced.workspace_bytes > 0, "forced plan");

    const int dims[] = {64, 96, 128, 256};
    const int heads[][2] = {{32, 32}, {32, 8}, {28, 4}, {64, 8}, {32, 1}, {7, 1}, {4, 2}, {24, 1}, {12, 1}};
    const int lens[] = {0, 1, 17, 129, 1000, 65536, 131072};
    const int batches[] = {1, 3, 64, 2048};
    const int kernels[] = {FAI_DECODE_AUTO, FAI_DECODE_SIMT, FAI_DECODE_MMA};
    for (int di = 0; di < 4; di++)
        for (int hi = 0; hi < 9; hi++)
            for (int li = 0; li < 7; li++)
                for (int bi = 0; bi < 4; bi++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int vi = 0; vi < 3; vi++)
                            check_invariants(devices[vi], batches[bi], heads[hi][0], heads[hi][1], dims[di], lens[li],
                                             kernels[ki]);
    if (failures) {
        printf("test_decode_plan: %d checks failed\n", failures);
        return 1;
    }
    printf("test_decode_plan: all checks passed\n");
    return 0;
}
