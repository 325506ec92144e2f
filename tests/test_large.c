/* Offsets past 2^31 elements and sequences past 64K tokens in the kernel families that
 * test_decode and test_prefill do not cover that way (issue 7): fai_kv_append into a
 * contiguous cache and into a page pool whose last rows lie past 2^31 elements, fai_prefill
 * of a chunk over a paged cache of 70000 tokens whose pages lie past 2^31 elements (a short
 * chunk on the mma.sync kernel, and a 640-query GQA chunk that a Hopper GPU runs on the
 * wgmma/TMA kernel, its tensor maps spanning the pool),
 * fai_prefill over an int8 cache whose last sequence is staged (kv_stage.cu) past 2^31
 * elements of the workspace, fai_decode over paged caches (FP16 pages of 16 tokens, int8
 * pages of 8, FP8 E4M3 pages of 16; GQA 32/8) whose sequences read pages on both sides of
 * element 2^31 (byte 2^31 for one-byte codes) and past byte 2^32, scrambled, with the public
 * plan and forced plans of both decode kernels, split and not, and fai_merge_states over
 * parts of 540000 rows x 32 heads x 128 (2.2e9 elements each).
 * Only the rows near the far end (the pages read) are written and checked (the rest of each
 * buffer is poison or filler), so that the test stays a few seconds and ~20 GB of device
 * memory.
 * Outputs are poisoned (NaN) first; inputs are fresh random values (seed printed).
 * Exits 77 without a GPU; FAI_TEST_SEED=N reproduces a run. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode_args.h"
#include "check.h"
#include "fai.h"
#include "gpu_test_util.h"
#include "kv_codec.h"
#include "reference.h"

#define BIG ((int64_t)1 << 31)

static fai_ref_rng g_rng;
static fai_device_info g_dev; /* for the decode plans */

/* One normal(0, 1) value (through the reference's generator). */
static double normal(void)
{
    float x;
    fai_ref_fill_normal(&g_rng, &x, 1, 1.0);
    return x;
}

static int check_status(const char *what, fai_status s)
{
    if (s == FAI_SUCCESS)
        return 0;
    printf("  %s: %s: %s  FAIL\n", what, fai_status_string(s), fai_last_error());
    return 1;
}

/* n random FP16 values ~ N(0, 1) (host bits and the floats they stand for). */
static void random_half(uint16_t *bits, float *vals, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        bits[i] = host_float_to_half((float)normal());
        vals[i] = host_half_to_float(bits[i]);
    }
}

/* fai_kv_append of `tokens` rows into the last slots of a cache whose element offsets pass
 * 2^31: contiguous (sequence `batch - 1`, its last rows) or paged (the pool's last pages, in
 * reverse order). The written rows must equal the host codec's bit for bit. */
static int append_case(int paged)
{
    const int hk = 8, d = 128, tokens = 300, ps = 16;
    const int batch = 36, capacity = 66000;              /* contiguous: 2.43e9 elements */
    const int pages = 140000;                             /* paged: 2.29e9 elements */
    const int64_t row = (int64_t)hk * d;
    const int64_t elems = paged ? (int64_t)pages * ps * row : (int64_t)batch * capacity * row;
    printf("kv_append, %s FP16 cache of %.2e elements, %d rows at the end\n", paged ? "paged 16" : "contiguous",
           (double)elems, tokens);
    uint16_t *kh = malloc(2 * (size_t)(tokens * row)), *vh = malloc(2 * (size_t)(tokens * row));
    float *tmp = malloc(sizeof(float) * (size_t)(tokens * row));
    random_half(kh, tmp, tokens * row);
    random_half(vh, tmp, tokens * row);
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)tokens);
    for (int t = 0; t < tokens; t++)
        slots[t] = paged ? (int64_t)(pages - 1 - t / ps) * ps + t % ps /* the last pages */
                         : (int64_t)(batch - 1) * capacity + (capacity - tokens + t);
    void *k, *v, *kn, *vn;
    int64_t *slots_dev;
    int32_t *table = NULL;
    CUDA_CHECK(cudaMalloc(&k, 2 * (size_t)elems));
    CUDA_CHECK(cudaMalloc(&v, 2 * (size_t)elems));
    CUDA_CHECK(cudaMemset(k, 0xff, 2 * (size_t)elems));
    CUDA_CHECK(cudaMemset(v, 0xff, 2 * (size_t)elems));
    CUDA_CHECK(cudaMalloc(&kn, 2 * (size_t)(tokens * row)));
    CUDA_CHECK(cudaMalloc(&vn, 2 * (size_t)(tokens * row)));
    CUDA_CHECK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)tokens));
    CUDA_CHECK(cudaMemcpy(kn, kh, 2 * (size_t)(tokens * row), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(vn, vh, 2 * (size_t)(tokens * row), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)tokens, cudaMemcpyHostToDevice));
    fai_kv_append_params a = fai_kv_append_params_default();
    a.num_kv_heads = hk;
    a.head_dim = d;
    a.num_tokens = tokens;
    a.k_new = (fai_tensor){kn, FAI_DTYPE_FP16, row, d};
    a.v_new = (fai_tensor){vn, FAI_DTYPE_FP16, row, d};
    a.slots = slots_dev;
    a.cache.dtype = FAI_DTYPE_FP16;
    a.cache.k = k;
    a.cache.v = v;
    a.cache.token_stride = row;
    a.cache.head_stride = d;
    if (paged) {
        const int per_seq = pages; /* one sequence may address the whole pool */
        CUDA_CHECK(cudaMalloc((void **)&table, sizeof(int32_t) * (size_t)per_seq));
        int32_t *t = malloc(sizeof(int32_t) * (size_t)per_seq);
        for (int i = 0; i < per_seq; i++)
            t[i] = i;
        CUDA_CHECK(cudaMemcpy(table, t, sizeof(int32_t) * (size_t)per_seq, cudaMemcpyHostToDevice));
        free(t);
        a.cache_batch = 1;
        a.cache.seq_stride = (int64_t)ps * row;
        a.cache.capacity = pages * ps;
        a.cache.page_table = table;
        a.cache.page_table_stride = per_seq;
        a.cache.page_size = ps;
        a.cache.num_pages = pages;
    } else {
        a.cache_batch = batch;
        a.cache.seq_stride = (int64_t)capacity * row;
        a.cache.capacity = capacity;
    }
    int fails = check_status("fai_kv_append", fai_kv_append(&a, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    uint16_t *got = malloc(2 * (size_t)row);
    int64_t wrong = 0;
    for (int t = 0; t < tokens && !fails; t++)
        for (int kvi = 0; kvi < 2; kvi++) {
            const int64_t at = slots[t] * row; /* slot s is at s * token_stride in both layouts here */
            CUDA_CHECK(cudaMemcpy(got, (uint16_t *)(kvi ? v : k) + at, 2 * (size_t)row, cudaMemcpyDeviceToHost));
            wrong += memcmp(got, (kvi ? vh : kh) + t * row, 2 * (size_t)row) != 0;
        }
    printf("  last slot at element %.3e (past 2^31: %s), rows differing %lld  %s\n", (double)(slots[tokens - 1] * row),
           slots[tokens - 1] * row > BIG ? "yes" : "no", (long long)wrong, !fails && !wrong ? "ok" : "FAIL");
    fails += wrong != 0;
    free(got);
    free(kh);
    free(vh);
    free(tmp);
    free(slots);
    cudaFree(k);
    cudaFree(v);
    cudaFree(kn);
    cudaFree(vn);
    cudaFree(slots_dev);
    cudaFree(table);
    return fails;
}

/* The worst of n log-sum-exps' errors against the reference, in units of the bound 1e-3 +
 * 1e-4 |lse|; infinite when one is NaN (fmax would drop it: an unwritten, poisoned LSE). */
static double lse_error(const float *lse, const double *ref_lse, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)lse[i] - ref_lse[i]) / (1e-3 + 1e-4 * fabs(ref_lse[i]));
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

/* One causal sequence's output (FP16 [seq_q, hq, d], downloaded) and LSE against the
 * double-precision reference on the given inputs; prints a line, returns 1 on failure. */
static int check_sequence(const char *label, const float *qf, const float *kf, const float *vf, int hq, int hk, int d,
                          int seq_q, int seq_k, const uint16_t *ob, const float *lse)
{
    const int64_t n = (int64_t)seq_q * hq * d;
    double *ref = malloc(sizeof(double) * (size_t)n), *ref_lse = malloc(sizeof(double) * (size_t)(seq_q * hq));
    float *of = malloc(sizeof(float) * (size_t)n);
    fai_ref_problem rp = {0};
    rp.num_q_heads = hq;
    rp.num_kv_heads = hk;
    rp.head_dim = d;
    rp.seq_q = seq_q;
    rp.seq_k = seq_k;
    rp.softmax_scale = 1.0 / sqrt((double)d);
    rp.causal = 1;
    if (fai_ref_attention(&rp, qf, kf, vf, ref, ref_lse) != 0)
        exit(2);
    for (int64_t i = 0; i < n; i++)
        of[i] = host_half_to_float(ob[i]);
    const double rel = fai_ref_rel_l2(of, ref, n), lse_err = lse_error(lse, ref_lse, (int64_t)seq_q * hq);
    const int ok = rel <= 2e-3 && lse_err <= 1.0; /* (a NaN is infinite in both) */
    printf("  %srel_l2 %.2e, lse error %.2f of its bound  %s\n", label, rel, lse_err, ok ? "ok" : "FAIL");
    free(ref);
    free(ref_lse);
    free(of);
    return !ok;
}

/* Rows `rows` of one causal sequence's output and LSE (FP16 [seq_q, hq, d], downloaded)
 * against the double-precision reference, each row as a one-query problem over the keys it
 * sees (its causal prefix), where the whole sequence is too long to check; the other rows are
 * checked for poison left in them: every value finite and inside the range of V's values (a
 * convex combination of them). Prints a line, returns 1 on failure. */
static int check_rows(const float *qf, const float *kf, const float *vf, int hq, int hk, int d, int seq_q, int seq_k,
                      const uint16_t *ob, const float *lse, const int *rows, int nrows)
{
    const int64_t rn = (int64_t)hq * d;
    double *ref = malloc(sizeof(double) * (size_t)(nrows * rn)), *ref_lse = malloc(sizeof(double) * (size_t)hq);
    float *of = malloc(sizeof(float) * (size_t)(nrows * rn));
    double lse_err = 0;
    for (int i = 0; i < nrows; i++) {
        fai_ref_problem rp = {0};
        rp.num_q_heads = hq;
        rp.num_kv_heads = hk;
        rp.head_dim = d;
        rp.seq_q = 1;
        rp.seq_k = seq_k - seq_q + rows[i] + 1; /* row r's diagonal key is r + seq_k - seq_q */
        rp.softmax_scale = 1.0 / sqrt((double)d);
        rp.causal = 1;
        if (fai_ref_attention(&rp, qf + rows[i] * rn, kf, vf, ref + i * rn, ref_lse) != 0)
            exit(2);
        for (int64_t j = 0; j < rn; j++)
            of[i * rn + j] = host_half_to_float(ob[rows[i] * rn + j]);
        lse_err = fmax(lse_err, lse_error(lse + rows[i] * hq, ref_lse, hq));
    }
    const double rel = fai_ref_rel_l2(of, ref, nrows * rn);
    float vmax = 0.0f;
    for (int64_t j = 0; j < (int64_t)seq_k * hk * d; j++)
        vmax = fmaxf(vmax, fabsf(vf[j]));
    int64_t bad = 0, bad_lse = 0;
    for (int64_t j = 0; j < (int64_t)seq_q * rn; j++) {
        const float x = host_half_to_float(ob[j]);
        bad += !(fabsf(x) <= vmax * 1.001f);
    }
    for (int64_t j = 0; j < (int64_t)seq_q * hq; j++) /* (poisoned with NaN before the call) */
        bad_lse += !isfinite(lse[j]);
    const int ok = rel <= 2e-3 && lse_err <= 1.0 && bad == 0 && bad_lse == 0; /* (NaN fails all four) */
    printf("  %d rows: rel_l2 %.2e, lse error %.2f of its bound; all %d rows: %lld values not finite or out of V's "
           "range, %lld log-sum-exps not finite  %s\n",
           nrows, rel, lse_err, seq_q, (long long)bad, (long long)bad_lse, ok ? "ok" : "FAIL");
    free(ref);
    free(ref_lse);
    free(of);
    return !ok;
}

/* A chunk of seq_q queries at the end of a 70000-token sequence, its K/V in the last 4375
 * pages of a pool of 140000 pages of 16 tokens (hk KV heads of 128: 2.29e9 elements at hk 8),
 * scrambled. 16 queries x 8 heads: a small grid, the mma.sync kernel's 64-row tiles, checked
 * whole. 640 queries x 32 heads (GQA 4): 160 tiles of 128 rows, which a Hopper GPU runs on the
 * wgmma/TMA kernel reading the pages in place through a tensor map over the whole pool;
 * `rows` (nrows of them, one in each 128-row tile and the tiles' edges) are checked against
 * the reference, the rest for poison (check_rows). */
static int prefill_case(int hq, int hk, int seq_q, const int *rows, int nrows)
{
    const int d = 128, ps = 16, seq_k = 70000, pages = 140000;
    const int used = seq_k / ps; /* 4375 */
    const int64_t row = (int64_t)hk * d, page_elems = (int64_t)ps * row;
    printf("prefill of %d queries x %d/%d heads over a paged cache: %d keys, pages %d..%d of %d (%.2e elements)\n",
           seq_q, hq, hk, seq_k, pages - used, pages - 1, pages, (double)pages * page_elems);
    float *kf = malloc(sizeof(float) * (size_t)(seq_k * row)), *vf = malloc(sizeof(float) * (size_t)(seq_k * row));
    float *qf = malloc(sizeof(float) * (size_t)(seq_q * hq * d));
    uint16_t *kb = malloc(2 * (size_t)(seq_k * row)), *vb = malloc(2 * (size_t)(seq_k * row));
    uint16_t *qb = malloc(2 * (size_t)(seq_q * hq * d));
    random_half(kb, kf, seq_k * row);
    random_half(vb, vf, seq_k * row);
    random_half(qb, qf, (int64_t)seq_q * hq * d);
    int32_t *table = malloc(sizeof(int32_t) * (size_t)used);
    for (int i = 0; i < used; i++)
        table[i] = pages - used + i;
    for (int i = used - 1; i > 0; i--) { /* scrambled */
        const int j = (int)(fai_ref_rng_uniform(&g_rng) * (i + 1));
        const int32_t t = table[i];
        table[i] = table[j];
        table[j] = t;
    }
    void *k, *v, *q, *o;
    int32_t *table_dev, *lens_dev, *cu_dev;
    float *lse_dev;
    CUDA_CHECK(cudaMalloc(&k, 2 * (size_t)(pages * page_elems)));
    CUDA_CHECK(cudaMalloc(&v, 2 * (size_t)(pages * page_elems)));
    CUDA_CHECK(cudaMemset(k, 0xff, 2 * (size_t)(pages * page_elems))); /* NaN where no key lives */
    CUDA_CHECK(cudaMemset(v, 0xff, 2 * (size_t)(pages * page_elems)));
    for (int i = 0; i < used; i++) {
        CUDA_CHECK(cudaMemcpy((uint16_t *)k + table[i] * page_elems, kb + i * page_elems, 2 * (size_t)page_elems,
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy((uint16_t *)v + table[i] * page_elems, vb + i * page_elems, 2 * (size_t)page_elems,
                              cudaMemcpyHostToDevice));
    }
    CUDA_CHECK(cudaMalloc(&q, 2 * (size_t)(seq_q * hq * d)));
    CUDA_CHECK(cudaMalloc(&o, 2 * (size_t)(seq_q * hq * d)));
    CUDA_CHECK(cudaMemset(o, 0xff, 2 * (size_t)(seq_q * hq * d)));
    CUDA_CHECK(cudaMemcpy(q, qb, 2 * (size_t)(seq_q * hq * d), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&table_dev, sizeof(int32_t) * (size_t)used));
    CUDA_CHECK(cudaMemcpy(table_dev, table, sizeof(int32_t) * (size_t)used, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&lens_dev, sizeof(int32_t)));
    CUDA_CHECK(cudaMemcpy(lens_dev, &seq_k, sizeof(int32_t), cudaMemcpyHostToDevice));
    const int32_t cu[2] = {0, seq_q};
    CUDA_CHECK(cudaMalloc((void **)&cu_dev, sizeof cu));
    CUDA_CHECK(cudaMemcpy(cu_dev, cu, sizeof cu, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&lse_dev, sizeof(float) * (size_t)(seq_q * hq)));
    CUDA_CHECK(cudaMemset(lse_dev, 0xff, sizeof(float) * (size_t)(seq_q * hq))); /* NaN poison */

    fai_kv_cache c;
    memset(&c, 0, sizeof c);
    c.dtype = FAI_DTYPE_FP16;
    c.k = k;
    c.v = v;
    c.seq_stride = page_elems;
    c.token_stride = row;
    c.head_stride = d;
    c.capacity = seq_k;
    c.seq_lens = lens_dev;
    c.page_table = table_dev;
    c.page_table_stride = used;
    c.page_size = ps;
    c.num_pages = pages;
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)d);
    p.batch = 1;
    p.causal = 1;
    p.q = (fai_tensor){q, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.o = (fai_tensor){o, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.k.dtype = p.v.dtype = FAI_DTYPE_FP16;
    p.cu_seqlens_q = cu_dev;
    p.cu_seqlens_q_host = cu;
    p.total_q = p.max_seq_q = seq_q;
    p.lse = lse_dev;
    p.kv_cache = &c;
    size_t ws = 0;
    void *ws_dev = NULL; /* (a decode row would need one for its split) */
    int fails = check_status("fai_prefill_workspace_size", fai_prefill_workspace_size(&p, &ws));
    if (!fails && ws)
        CUDA_CHECK(cudaMalloc(&ws_dev, ws));
    if (!fails)
        fails = check_status("fai_prefill", fai_prefill(&p, ws_dev, ws, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaFree(ws_dev);
    if (!fails) {
        uint16_t *ob = malloc(2 * (size_t)(seq_q * hq * d));
        float *lse = malloc(sizeof(float) * (size_t)(seq_q * hq));
        CUDA_CHECK(cudaMemcpy(ob, o, 2 * (size_t)(seq_q * hq * d), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lse, lse_dev, sizeof(float) * (size_t)(seq_q * hq), cudaMemcpyDeviceToHost));
        fails += nrows ? check_rows(qf, kf, vf, hq, hk, d, seq_q, seq_k, ob, lse, rows, nrows)
                       : check_sequence("", qf, kf, vf, hq, hk, d, seq_q, seq_k, ob, lse);
        free(ob);
        free(lse);
    }
    free(kf);
    free(vf);
    free(qf);
    free(kb);
    free(vb);
    free(qb);
    free(table);
    cudaFree(k);
    cudaFree(v);
    cudaFree(q);
    cudaFree(o);
    cudaFree(table_dev);
    cudaFree(lens_dev);
    cudaFree(cu_dev);
    cudaFree(lse_dev);
    return fails;
}

/* fai_prefill over an int8 cache of 300 slots x 8192 tokens x 8 heads x 128 (2.5e9 codes):
 * sequences 0 and 299 hold 2048 keys and 16 query rows each, the 298 between are empty, so
 * the prefill range spans all 300 and sequence 299's keys are dequantized into the workspace
 * at element 299 x 8192 x 1024 = 2.5e9 (past 2^31) and read there by the prefill kernel. */
static int staged_prefill_case(void)
{
    const int slots = 300, cap = 8192, hk = 8, hq = 8, d = 128, seq_k = 2048, seq_q = 16;
    const int64_t row = (int64_t)hk * d, slot_elems = (int64_t)cap * row;
    const int64_t keys = (int64_t)seq_k * row, queries = (int64_t)seq_q * hq * d;
    const int filled[2] = {0, slots - 1};
    printf("prefill over an int8 cache of %.2e codes, sequence %d staged at element %.3e of the workspace "
           "(past 2^31: %s)\n", (double)slots * slot_elems, slots - 1, (double)(slots - 1) * slot_elems,
           (slots - 1) * slot_elems > BIG ? "yes" : "no");
    int8_t *k, *v;
    float *ks, *vs, *lse_dev;
    void *q, *o;
    int32_t *lens_dev, *cu_dev;
    CUDA_CHECK(cudaMalloc((void **)&k, (size_t)(slots * slot_elems)));
    CUDA_CHECK(cudaMalloc((void **)&v, (size_t)(slots * slot_elems)));
    CUDA_CHECK(cudaMemset(k, 0x7f, (size_t)(slots * slot_elems))); /* rows no sequence uses */
    CUDA_CHECK(cudaMemset(v, 0x7f, (size_t)(slots * slot_elems)));
    CUDA_CHECK(cudaMalloc((void **)&ks, sizeof(float) * (size_t)(slots * cap * hk)));
    CUDA_CHECK(cudaMalloc((void **)&vs, sizeof(float) * (size_t)(slots * cap * hk)));
    CUDA_CHECK(cudaMemset(ks, 0xff, sizeof(float) * (size_t)(slots * cap * hk))); /* NaN where unused */
    CUDA_CHECK(cudaMemset(vs, 0xff, sizeof(float) * (size_t)(slots * cap * hk)));
    CUDA_CHECK(cudaMalloc(&q, 2 * (size_t)(2 * queries)));
    CUDA_CHECK(cudaMalloc(&o, 2 * (size_t)(2 * queries)));
    CUDA_CHECK(cudaMemset(o, 0xff, 2 * (size_t)(2 * queries)));
    CUDA_CHECK(cudaMalloc((void **)&lse_dev, sizeof(float) * (size_t)(2 * seq_q * hq)));
    CUDA_CHECK(cudaMemset(lse_dev, 0xff, sizeof(float) * (size_t)(2 * seq_q * hq))); /* NaN poison */
    int32_t *lens = calloc((size_t)slots, sizeof(int32_t)), *cu = malloc(sizeof(int32_t) * (size_t)(slots + 1));
    cu[0] = 0;
    for (int b = 0; b < slots; b++)
        cu[b + 1] = cu[b] + (b == filled[0] || b == filled[1] ? seq_q : 0);
    lens[filled[0]] = lens[filled[1]] = seq_k;
    CUDA_CHECK(cudaMalloc((void **)&lens_dev, sizeof(int32_t) * (size_t)slots));
    CUDA_CHECK(cudaMemcpy(lens_dev, lens, sizeof(int32_t) * (size_t)slots, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&cu_dev, sizeof(int32_t) * (size_t)(slots + 1)));
    CUDA_CHECK(cudaMemcpy(cu_dev, cu, sizeof(int32_t) * (size_t)(slots + 1), cudaMemcpyHostToDevice));

    /* Per filled sequence: random K, V quantized per (token, head) row on the host (the
     * codec fai_kv_append matches bit for bit), the reference's K and V the staged values
     * (code x scale rounded to FP16, as the staging kernel writes them), random queries. */
    float *kf[2], *vf[2], *qf[2];
    int8_t *codes = malloc((size_t)keys);
    float *scales = malloc(sizeof(float) * (size_t)(seq_k * hk)), *x = malloc(sizeof(float) * (size_t)keys);
    uint16_t *qb = malloc(2 * (size_t)queries);
    for (int f = 0; f < 2; f++) {
        for (int kv = 0; kv < 2; kv++) {
            float *deq = malloc(sizeof(float) * (size_t)keys);
            for (int64_t i = 0; i < keys; i++)
                x[i] = (float)normal();
            for (int64_t r = 0; r < (int64_t)seq_k * hk; r++) {
                float amax = 0.0f;
                for (int e = 0; e < d; e++)
                    amax = fmaxf(amax, fabsf(x[r * d + e]));
                scales[r] = fai_int8_scale(amax);
                for (int e = 0; e < d; e++) {
                    codes[r * d + e] = fai_int8_quantize(x[r * d + e], scales[r]);
                    deq[r * d + e] = host_half_to_float(host_float_to_half(fai_int8_dequantize(codes[r * d + e], scales[r])));
                }
            }
            const int64_t at = (int64_t)filled[f] * slot_elems;
            CUDA_CHECK(cudaMemcpy((kv ? v : k) + at, codes, (size_t)keys, cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy((kv ? vs : ks) + (int64_t)filled[f] * cap * hk, scales,
                                  sizeof(float) * (size_t)(seq_k * hk), cudaMemcpyHostToDevice));
            (kv ? vf : kf)[f] = deq;
        }
        qf[f] = malloc(sizeof(float) * (size_t)queries);
        random_half(qb, qf[f], queries);
        CUDA_CHECK(cudaMemcpy((uint16_t *)q + f * queries, qb, 2 * (size_t)queries, cudaMemcpyHostToDevice));
    }
    CUDA_CHECK(cudaDeviceSynchronize());

    fai_kv_cache c;
    memset(&c, 0, sizeof c);
    c.dtype = FAI_DTYPE_INT8;
    c.k = k;
    c.v = v;
    c.seq_stride = slot_elems;
    c.token_stride = row;
    c.head_stride = d;
    c.capacity = cap;
    c.seq_lens = lens_dev;
    c.k_scale = ks;
    c.v_scale = vs;
    c.scale_seq_stride = (int64_t)cap * hk;
    c.scale_token_stride = hk;
    c.scale_head_stride = 1;
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)d);
    p.batch = slots;
    p.causal = 1;
    p.q = (fai_tensor){q, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.o = (fai_tensor){o, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.k.dtype = p.v.dtype = FAI_DTYPE_FP16;
    p.cu_seqlens_q = cu_dev;
    p.cu_seqlens_q_host = cu;
    p.total_q = 2 * seq_q;
    p.max_seq_q = seq_q;
    p.lse = lse_dev;
    p.kv_cache = &c;
    size_t ws = 0;
    void *ws_dev = NULL;
    int fails = check_status("fai_prefill_workspace_size", fai_prefill_workspace_size(&p, &ws));
    if (!fails && ws < 2 * (size_t)(slots * slot_elems) * 2) {
        printf("  workspace %zu bytes: not the staged copy of %d slots  FAIL\n", ws, slots);
        fails++;
    }
    if (!fails)
        CUDA_CHECK(cudaMalloc(&ws_dev, ws));
    if (!fails)
        fails = check_status("fai_prefill", fai_prefill(&p, ws_dev, ws, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    cudaFree(ws_dev);
    if (!fails) {
        uint16_t *ob = malloc(2 * (size_t)(2 * queries));
        float *lse = malloc(sizeof(float) * (size_t)(2 * seq_q * hq));
        CUDA_CHECK(cudaMemcpy(ob, o, 2 * (size_t)(2 * queries), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lse, lse_dev, sizeof(float) * (size_t)(2 * seq_q * hq), cudaMemcpyDeviceToHost));
        for (int f = 0; f < 2; f++) {
            char label[32];
            snprintf(label, sizeof label, "sequence %d: ", filled[f]);
            fails += check_sequence(label, qf[f], kf[f], vf[f], hq, hk, d, seq_q, seq_k, ob + f * queries,
                                    lse + f * seq_q * hq);
        }
        free(ob);
        free(lse);
    }
    for (int f = 0; f < 2; f++) {
        free(kf[f]);
        free(vf[f]);
        free(qf[f]);
    }
    free(codes);
    free(scales);
    free(x);
    free(qb);
    free(lens);
    free(cu);
    cudaFree(k);
    cudaFree(v);
    cudaFree(ks);
    cudaFree(vs);
    cudaFree(q);
    cudaFree(o);
    cudaFree(lse_dev);
    cudaFree(lens_dev);
    cudaFree(cu_dev);
    return fails;
}

/* fai_decode over a paged cache of `dt` (pages of ps tokens, GQA 32/8, head dim 128) whose
 * pool passes 2^32 bytes: 4 sequences of 1, 45, 700 and 5001 keys (none a whole number of
 * pages) read pages drawn from just below element 2^31 (FP16) or byte 2^31 (one-byte codes),
 * from it on, and from the pool's end, in scrambled order. Only their valid rows hold values;
 * the rest of the pool (the tails of the last pages, the spare table entries' page 0, the
 * int8 scales around them) is NaN, so a read of anything else fails. Runs the public
 * fai_decode (its own plan: split on an H100), then forced plans of the CUDA-core and the
 * tensor-core kernel, split and not (13 splits: the short sequences' later ones are empty). */
static int decode_case(fai_dtype dt, int ps)
{
    enum { batch = 4, hq = 32, hk = 8, d = 128 };
    static const int32_t lens[batch] = {1, 45, 700, 5001};
    const int eb = dt == FAI_DTYPE_FP16 ? 2 : 1;
    const int64_t row = (int64_t)hk * d, page_elems = ps * row, page_bytes = page_elems * eb;
    const int first_big = (int)(BIG / page_elems);             /* the page at element 2^31 */
    const int pages = (int)(2 * BIG / page_bytes) + 1024;       /* past byte 2^32 */
    const int pps = (lens[batch - 1] + ps - 1) / ps, stride = pps + 3; /* (a stride beyond the pages) */
    int used = 0, at[batch + 1];                                /* sequence b's pages: pg[at[b]..] */
    for (int b = 0; b < batch; b++) {
        at[b] = used;
        used += (lens[b] + ps - 1) / ps;
    }
    at[batch] = used;
    const int n1 = used / 3, n2 = used / 3, n3 = used - n1 - n2;
    printf("decode over a paged %s cache, page %d, GQA %d/%d d%d, %d sequences of %d..%d keys: %d pages of %d, "
           "%d below element 2^31 (%d..%d), %d from it (%d..%d, element %.3e), %d at the end (to byte %.3e)\n",
           dtype_short(dt), ps, hq, hk, d, batch, lens[0], lens[batch - 1], used, pages, n1, first_big - n1,
           first_big - 1, n2, first_big, first_big + n2 - 1, (double)first_big * page_elems, n3,
           (double)pages * page_bytes);
    int32_t *pg = malloc(sizeof(int32_t) * (size_t)used);
    for (int i = 0; i < used; i++)
        pg[i] = i < n1 ? first_big - n1 + i : i < n1 + n2 ? first_big + i - n1 : pages - n3 + (i - n1 - n2);
    for (int i = used - 1; i > 0; i--) { /* scrambled */
        const int j = (int)(fai_ref_rng_uniform(&g_rng) * (i + 1));
        const int32_t t = pg[i];
        pg[i] = pg[j];
        pg[j] = t;
    }
    int32_t *table = calloc((size_t)(batch * stride), sizeof(int32_t)); /* spare entries: page 0, all NaN */
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < at[b + 1] - at[b]; i++)
            table[b * stride + i] = pg[at[b] + i];

    /* The used pages on the host, NaN past each sequence's length (0xff: FP16 and FP8 NaN,
     * int8 code -1 with a NaN scale), and each sequence's K and V as the cache holds them. */
    uint8_t *kimg = malloc((size_t)(used * page_bytes)), *vimg = malloc((size_t)(used * page_bytes));
    float *ksc = malloc(sizeof(float) * (size_t)used * ps * hk), *vsc = malloc(sizeof(float) * (size_t)used * ps * hk);
    memset(kimg, 0xff, (size_t)(used * page_bytes));
    memset(vimg, 0xff, (size_t)(used * page_bytes));
    memset(ksc, 0xff, sizeof(float) * (size_t)used * ps * hk);
    memset(vsc, 0xff, sizeof(float) * (size_t)used * ps * hk);
    float *kf[batch], *vf[batch], x[d];
    for (int b = 0; b < batch; b++) {
        kf[b] = malloc(sizeof(float) * (size_t)(lens[b] * row));
        vf[b] = malloc(sizeof(float) * (size_t)(lens[b] * row));
        for (int j = 0; j < lens[b]; j++)
            for (int h = 0; h < hk; h++) {
                const int64_t slot = (int64_t)(at[b] + j / ps) * ps + j % ps; /* token of the used pages */
                for (int kv = 0; kv < 2; kv++) {
                    fai_ref_fill_normal(&g_rng, x, d, 1.0);
                    round_to_half(x, NULL, d); /* rows as fai_kv_append takes them */
                    host_encode_row(dt, 0, x, d, (kv ? vimg : kimg) + (slot * row + h * d) * eb,
                                    (kv ? vsc : ksc) + slot * hk + h, (kv ? vf : kf)[b] + j * row + h * d);
                }
            }
    }
    float *qf = malloc(sizeof(float) * (size_t)(batch * hq * d));
    uint16_t *qb = malloc(2 * (size_t)(batch * hq * d));
    random_half(qb, qf, batch * hq * d);
    double *ref = malloc(sizeof(double) * (size_t)(batch * hq * d)), *ref_lse = malloc(sizeof(double) * batch * hq);
    for (int b = 0; b < batch; b++) {
        fai_ref_problem rp = {0};
        rp.num_q_heads = hq;
        rp.num_kv_heads = hk;
        rp.head_dim = d;
        rp.seq_q = 1;
        rp.seq_k = lens[b];
        rp.softmax_scale = 1.0 / sqrt((double)d);
        if (fai_ref_attention(&rp, qf + b * hq * d, kf[b], vf[b], ref + b * hq * d, ref_lse + b * hq) != 0)
            exit(2);
    }

    uint8_t *k, *v;
    float *ks = NULL, *vs = NULL, *lse_dev;
    void *q, *o;
    int32_t *table_dev, *lens_dev;
    CUDA_CHECK(cudaMalloc((void **)&k, (size_t)(pages * page_bytes)));
    CUDA_CHECK(cudaMalloc((void **)&v, (size_t)(pages * page_bytes)));
    CUDA_CHECK(cudaMemset(k, 0xff, (size_t)(pages * page_bytes))); /* NaN where no key lives */
    CUDA_CHECK(cudaMemset(v, 0xff, (size_t)(pages * page_bytes)));
    for (int i = 0; i < used; i++) {
        CUDA_CHECK(cudaMemcpy(k + pg[i] * page_bytes, kimg + i * page_bytes, (size_t)page_bytes,
                              cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(v + pg[i] * page_bytes, vimg + i * page_bytes, (size_t)page_bytes,
                              cudaMemcpyHostToDevice));
    }
    if (dt == FAI_DTYPE_INT8) {
        const int64_t per_page = (int64_t)ps * hk, n = pages * per_page;
        CUDA_CHECK(cudaMalloc((void **)&ks, sizeof(float) * (size_t)n));
        CUDA_CHECK(cudaMalloc((void **)&vs, sizeof(float) * (size_t)n));
        CUDA_CHECK(cudaMemset(ks, 0xff, sizeof(float) * (size_t)n));
        CUDA_CHECK(cudaMemset(vs, 0xff, sizeof(float) * (size_t)n));
        for (int i = 0; i < used; i++) {
            CUDA_CHECK(cudaMemcpy(ks + pg[i] * per_page, ksc + i * per_page, sizeof(float) * (size_t)per_page,
                                  cudaMemcpyHostToDevice));
            CUDA_CHECK(cudaMemcpy(vs + pg[i] * per_page, vsc + i * per_page, sizeof(float) * (size_t)per_page,
                                  cudaMemcpyHostToDevice));
        }
    }
    CUDA_CHECK(cudaMalloc(&q, 2 * (size_t)(batch * hq * d)));
    CUDA_CHECK(cudaMalloc(&o, 2 * (size_t)(batch * hq * d)));
    CUDA_CHECK(cudaMalloc((void **)&lse_dev, sizeof(float) * batch * hq));
    CUDA_CHECK(cudaMemcpy(q, qb, 2 * (size_t)(batch * hq * d), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&table_dev, sizeof(int32_t) * (size_t)(batch * stride)));
    CUDA_CHECK(cudaMemcpy(table_dev, table, sizeof(int32_t) * (size_t)(batch * stride), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&lens_dev, sizeof lens));
    CUDA_CHECK(cudaMemcpy(lens_dev, lens, sizeof lens, cudaMemcpyHostToDevice));

    fai_decode_params p = fai_decode_params_default();
    p.attn.num_q_heads = hq;
    p.attn.num_kv_heads = hk;
    p.attn.head_dim = d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)d);
    p.batch = batch;
    p.q = (fai_tensor){q, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.o = (fai_tensor){o, FAI_DTYPE_FP16, (int64_t)hq * d, d};
    p.lse = lse_dev;
    fai_kv_cache *c = &p.cache;
    c->dtype = dt;
    c->k = k;
    c->v = v;
    c->seq_stride = page_elems;
    c->token_stride = row;
    c->head_stride = d;
    c->capacity = pps * ps;
    c->seq_lens = lens_dev;
    c->page_table = table_dev;
    c->page_table_stride = stride;
    c->page_size = ps;
    c->num_pages = pages;
    if (dt == FAI_DTYPE_INT8) {
        c->k_scale = ks;
        c->v_scale = vs;
        c->scale_seq_stride = (int64_t)ps * hk;
        c->scale_token_stride = hk;
        c->scale_head_stride = 1;
    }

    /* The runs: fai_decode, then forced plans {kernel, warps (0: planned), splits}. */
    static const int forced[4][3] = {
        {FAI_DECODE_SIMT, 0, 1}, {FAI_DECODE_SIMT, 8, 5}, {FAI_DECODE_MMA, 0, 1}, {FAI_DECODE_MMA, 0, 13}};
    uint16_t *ob = malloc(2 * (size_t)(batch * hq * d));
    float *of = malloc(sizeof(float) * (size_t)(batch * hq * d)), *lse = malloc(sizeof(float) * batch * hq);
    int fails = 0;
    for (int run = 0; run < 5; run++) {
        fai_decode_plan plan = {0};
        size_t ws_bytes = 0;
        void *ws = NULL;
        fai_status st;
        if (run == 0) {
            if (check_status("fai_decode_workspace_size", fai_decode_workspace_size(&p, &ws_bytes))) {
                fails++;
                continue;
            }
            if (fai_decode_plan_params("test_large", &p, g_dev, &plan) != FAI_SUCCESS) /* (its label) */
                plan.kernel = -1;
        } else {
            const int *f = forced[run - 1];
            if (fai_decode_make_plan_kv("test_large", dt, ps, batch, hq, hk, d, c->capacity, g_dev, f[0], f[2], f[1], 0,
                                        &plan) != FAI_SUCCESS || plan.kernel != f[0]) {
                printf("  forced plan %d: %s  FAIL\n", run, fai_last_error());
                fails++;
                continue;
            }
            ws_bytes = plan.workspace_bytes;
        }
        char label[48];
        snprintf(label, sizeof label, "%s%s, %d split%s", run ? "" : "fai_decode: ",
                 plan.kernel == FAI_DECODE_MMA ? "mma" : plan.kernel == FAI_DECODE_SIMT ? "simt" : "?",
                 plan.num_splits, plan.num_splits > 1 ? "s" : "");
        if (ws_bytes) {
            CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
            CUDA_CHECK(cudaMemset(ws, 0xff, ws_bytes)); /* it needs no clearing */
        }
        CUDA_CHECK(cudaMemset(o, 0xff, 2 * (size_t)(batch * hq * d))); /* NaN poison */
        CUDA_CHECK(cudaMemset(lse_dev, 0xff, sizeof(float) * batch * hq));
        st = run ? fai_decode_run_plan("test_large", &p, &plan, ws, ws_bytes, 0) : fai_decode(&p, ws, ws_bytes, 0);
        CUDA_CHECK(cudaDeviceSynchronize());
        cudaFree(ws);
        if (check_status(label, st)) {
            fails++;
            continue;
        }
        CUDA_CHECK(cudaMemcpy(ob, o, 2 * (size_t)(batch * hq * d), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(lse, lse_dev, sizeof(float) * batch * hq, cudaMemcpyDeviceToHost));
        for (int i = 0; i < batch * hq * d; i++)
            of[i] = host_half_to_float(ob[i]);
        /* Each sequence on its own: a long one's output is an average of many rows and small,
         * so one norm over the batch would let its errors hide behind the short ones'. */
        double rel = 0, lse_err = 0;
        for (int b = 0; b < batch; b++) {
            const double r = fai_ref_rel_l2(of + b * hq * d, ref + b * hq * d, hq * d); /* inf on NaN */
            rel = fmax(rel, r);
            lse_err = fmax(lse_err, lse_error(lse + b * hq, ref_lse + b * hq, hq));
        }
        const int ok = rel <= 2e-3 && lse_err <= 1.0;
        printf("  %-26s worst rel_l2 of the sequences %.2e, lse error %.2f of its bound  %s\n", label, rel, lse_err,
               ok ? "ok" : "FAIL");
        fails += !ok;
    }
    for (int b = 0; b < batch; b++) {
        free(kf[b]);
        free(vf[b]);
    }
    free(pg);
    free(table);
    free(kimg);
    free(vimg);
    free(ksc);
    free(vsc);
    free(qf);
    free(qb);
    free(ref);
    free(ref_lse);
    free(ob);
    free(of);
    free(lse);
    cudaFree(k);
    cudaFree(v);
    cudaFree(ks);
    cudaFree(vs);
    cudaFree(q);
    cudaFree(o);
    cudaFree(lse_dev);
    cudaFree(table_dev);
    cudaFree(lens_dev);
    return fails;
}

/* fai_merge_states of two parts [540000, 32, 128] (2.2e9 elements each), in place into part
 * 0; only the last 512 rows hold random values and are checked (the rest hold 1s and an LSE
 * of 0, which merge to 1). */
static int merge_case(void)
{
    const int rows = 540000, heads = 32, d = 128, checked = 512;
    const int64_t row = (int64_t)heads * d, elems = (int64_t)rows * row, first = rows - checked;
    printf("merge_states in place, 2 parts of %.2e elements, the last %d rows checked\n", (double)elems, checked);
    void *p0, *p1;
    float *l0, *l1, *lo;
    CUDA_CHECK(cudaMalloc(&p0, 2 * (size_t)elems));
    CUDA_CHECK(cudaMalloc(&p1, 2 * (size_t)elems));
    CUDA_CHECK(cudaMemset(p0, 0x3c, 2 * (size_t)elems)); /* 0x3c3c: 1.06 in FP16 */
    CUDA_CHECK(cudaMemset(p1, 0x3c, 2 * (size_t)elems));
    CUDA_CHECK(cudaMalloc((void **)&l0, sizeof(float) * (size_t)rows * heads));
    CUDA_CHECK(cudaMalloc((void **)&l1, sizeof(float) * (size_t)rows * heads));
    CUDA_CHECK(cudaMalloc((void **)&lo, sizeof(float) * (size_t)rows * heads));
    CUDA_CHECK(cudaMemset(l0, 0, sizeof(float) * (size_t)rows * heads));
    CUDA_CHECK(cudaMemset(l1, 0, sizeof(float) * (size_t)rows * heads));
    CUDA_CHECK(cudaMemset(lo, 0xff, sizeof(float) * (size_t)rows * heads));
    const int64_t n = (int64_t)checked * row;
    uint16_t *b0 = malloc(2 * (size_t)n), *b1 = malloc(2 * (size_t)n), *got = malloc(2 * (size_t)n);
    float *f0 = malloc(sizeof(float) * (size_t)n), *f1 = malloc(sizeof(float) * (size_t)n);
    float *s0 = malloc(sizeof(float) * (size_t)checked * heads), *s1 = malloc(sizeof(float) * (size_t)checked * heads);
    float *sl = malloc(sizeof(float) * (size_t)checked * heads);
    random_half(b0, f0, n);
    random_half(b1, f1, n);
    for (int64_t i = 0; i < (int64_t)checked * heads; i++) {
        s0[i] = (float)(3.0 * normal());
        s1[i] = i % 97 == 0 ? -INFINITY : (float)(3.0 * normal()); /* some empty parts */
    }
    CUDA_CHECK(cudaMemcpy((uint16_t *)p0 + first * row, b0, 2 * (size_t)n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy((uint16_t *)p1 + first * row, b1, 2 * (size_t)n, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(l0 + first * heads, s0, sizeof(float) * (size_t)checked * heads, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(l1 + first * heads, s1, sizeof(float) * (size_t)checked * heads, cudaMemcpyHostToDevice));
    fai_tensor parts[2] = {{p0, FAI_DTYPE_FP16, row, d}, {p1, FAI_DTYPE_FP16, row, d}};
    const float *lses[2] = {l0, l1};
    fai_merge_params m = fai_merge_params_default();
    m.num_parts = 2;
    m.num_rows = rows;
    m.num_heads = heads;
    m.head_dim = d;
    m.parts = parts;
    m.parts_lse = lses;
    m.o = parts[0];
    m.lse = lo;
    int fails = check_status("fai_merge_states", fai_merge_states(&m, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    if (!fails) {
        CUDA_CHECK(cudaMemcpy(got, (uint16_t *)p0 + first * row, 2 * (size_t)n, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(sl, lo + first * heads, sizeof(float) * (size_t)checked * heads, cudaMemcpyDeviceToHost));
        int64_t bad = 0;
        double worst = 0;
        for (int64_t r = 0; r < (int64_t)checked * heads; r++) {
            const double a = s0[r], b = s1[r], mx = a > b ? a : b;
            const double wa = exp(a - mx), wb = isinf(b) ? 0.0 : exp(b - mx), lse = mx + log(wa + wb);
            bad += !(fabs(sl[r] - lse) <= 1e-5 + 1e-6 * fabs(lse));
            for (int e = 0; e < d; e++) {
                const double want = (wa * f0[r * d + e] + wb * f1[r * d + e]) / (wa + wb);
                const double x = host_half_to_float(got[r * d + e]), err = fabs(x - want);
                worst = fmax(worst, err);
                bad += !(err <= fabs(want) * 0x1p-10 + 1e-6); /* the FP16 rounding of the output */
            }
        }
        printf("  worst error %.2e, elements or LSEs off %lld  %s\n", worst, (long long)bad, bad ? "FAIL" : "ok");
        fails += bad != 0;
    }
    free(b0);
    free(b1);
    free(got);
    free(f0);
    free(f1);
    free(s0);
    free(s1);
    free(sl);
    cudaFree(p0);
    cudaFree(p1);
    cudaFree(l0);
    cudaFree(l1);
    cudaFree(lo);
    return fails;
}

int main(void)
{
    gpu_require_device("test_large");
    const char *seed_env = getenv("FAI_TEST_SEED");
    const uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    printf("test_large: seed %llu (FAI_TEST_SEED=%llu reproduces)\n", (unsigned long long)seed, (unsigned long long)seed);
    fai_ref_rng_seed(&g_rng, seed);
    if (fai_current_device("test_large", &g_dev) != FAI_SUCCESS) { /* what the planner sees */
        fprintf(stderr, "%s\n", fai_last_error());
        return 2;
    }
    int fails = 0, n = 0;
    fails += append_case(0), n++;
    fails += append_case(1), n++;
    fails += prefill_case(8, 8, 16, NULL, 0), n++;
    /* The tiles' edges, and a row in each 16-row slice (a warp's rows of a tile) at varying
     * offsets: 51 of the 640 rows against the reference. */
    int rows[64], nrows = 0;
    static const int edges[] = {0, 1, 127, 128, 255, 383, 384, 511, 512, 638, 639};
    for (int i = 0; i < (int)(sizeof edges / sizeof edges[0]); i++)
        rows[nrows++] = edges[i];
    for (int sl = 0; sl < 40; sl++)
        rows[nrows++] = 16 * sl + (7 * sl + 3) % 16;
    fails += prefill_case(32, 8, 640, rows, nrows), n++;
    fails += staged_prefill_case(), n++;
    fails += decode_case(FAI_DTYPE_FP16, 16), n++;
    fails += decode_case(FAI_DTYPE_INT8, 8), n++; /* pages under a tile: a page lookup per row */
    fails += decode_case(FAI_DTYPE_FP8_E4M3, 16), n++;
    fails += merge_case(), n++;
    printf("test_large: %d cases, %d failed\n", n, fails);
    return fails ? 1 : 0;
}
