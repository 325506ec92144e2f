/* Planning a decode call: how many query heads a block serves, how many warps it has and
 * how many ways each sequence's KV is split. Decode is memory-bound, so the plan's one goal
 * is to keep enough loads in flight on every SM: about 16 warps per SM (see
 * docs/design/decode.md), spread first inside a block (no merge needed), then across splits. */
#include "decode_plan.h"

#include "error.h"

/* Warps per SM that keep the read ceiling: 16 warps x 4 KB steps = 64 KB in flight. */
#define TARGET_WARPS_PER_SM 16
/* A split shorter than this starts and stops more than it streams. */
#define MIN_KEYS_PER_SPLIT 256

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

static int32_t heads_per_block(int32_t group)
{
    return group <= 1 ? 1 : group == 2 ? 2 : group <= 4 ? 4 : 8;
}

static int32_t keys_per_step(int32_t d, int32_t hb)
{
    switch (hb) {
    case 1: return FAI_DECODE_KEYS_PER_STEP(d, 1);
    case 2: return FAI_DECODE_KEYS_PER_STEP(d, 2);
    case 4: return FAI_DECODE_KEYS_PER_STEP(d, 4);
    default: return FAI_DECODE_KEYS_PER_STEP(d, 8);
    }
}

size_t fai_decode_part_lse_offset(const fai_decode_plan *plan, int32_t batch, int32_t num_q_heads)
{
    return align256((size_t)plan->num_splits * (size_t)batch * (size_t)num_q_heads *
                    (size_t)plan->head_dim * sizeof(float));
}

fai_status fai_decode_make_plan(const char *fn, int32_t batch, int32_t num_q_heads,
                                int32_t num_kv_heads, int32_t head_dim, int32_t max_seq_len,
                                int num_sms, int splits, int warps, fai_decode_plan *plan)
{
    const int32_t group = num_q_heads / num_kv_heads;
    fai_decode_plan p = {0};
    p.head_dim = head_dim;
    p.heads_per_block = heads_per_block(group);
    p.head_blocks = (int32_t)ceil_div(group, p.heads_per_block);

    const int64_t items = (int64_t)batch * num_kv_heads * p.head_blocks;
    if (items > INT32_MAX)
        return fai_error(FAI_ERROR_BAD_PARAM_SHAPE,
                         "%s: batch (%d) x num_kv_heads (%d) x head blocks (%d) exceeds the grid limit",
                         fn, (int)batch, (int)num_kv_heads, (int)p.head_blocks);

    const int64_t smem_per_warp = (int64_t)p.heads_per_block * (head_dim + 2) * (int64_t)sizeof(float);
    int64_t max_warps = FAI_DECODE_SMEM_LIMIT / smem_per_warp;
    if (max_warps > FAI_DECODE_MAX_WARPS)
        max_warps = FAI_DECODE_MAX_WARPS;

    /* Warps each (sequence, KV head, head block) item should get to fill the GPU. */
    const int64_t steps = max_seq_len > 0 ? ceil_div(max_seq_len, keys_per_step(head_dim, p.heads_per_block)) : 1;
    const int64_t per_item = items > 0 ? ceil_div((int64_t)num_sms * TARGET_WARPS_PER_SM, items) : 1;
    int64_t w = per_item < 4 ? 4 : per_item;
    if (w > max_warps)
        w = max_warps;
    if (w > steps)
        w = steps; /* a warp with no step would only idle */
    int64_t s = 1;
    if (per_item > w) {
        s = ceil_div(per_item, w);
        const int64_t by_length = ceil_div(max_seq_len, MIN_KEYS_PER_SPLIT);
        if (s > by_length)
            s = by_length;
    }
    if (warps > 0)
        w = warps < max_warps ? warps : max_warps;
    if (splits > 0)
        s = splits;
    if (s < 1)
        s = 1;
    if (s > FAI_DECODE_MAX_SPLITS)
        s = FAI_DECODE_MAX_SPLITS;
    p.warps_per_block = (int32_t)w;
    p.num_splits = (int32_t)s;
    p.smem_bytes = (size_t)(w * smem_per_warp);
    if (p.num_splits > 1) {
        size_t lse_bytes = (size_t)p.num_splits * (size_t)batch * (size_t)num_q_heads * sizeof(float);
        p.workspace_bytes = fai_decode_part_lse_offset(&p, batch, num_q_heads) + align256(lse_bytes);
    }
    *plan = p;
    return FAI_SUCCESS;
}
