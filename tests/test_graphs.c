/* GPU test: every entry point captured into a CUDA graph in cudaStreamCaptureModeGlobal (which
 * fails on any synchronization or allocation inside a call) and replayed on changed device
 * inputs gives, bit for bit, what a direct call on the same inputs gives (the same kernels
 * run with the same plan, and they are deterministic):
 *  - fai_decode: contiguous and paged caches, FP16, int8, FP8 E4M3 and E5M2, split-KV (the
 *    merge kernel, a programmatic dependent launch on sm_90) and not, ALiBi and the variants;
 *    replays on new Q, new cache contents, new lengths within cache.max_seq_len and (paged)
 *    a new page table;
 *  - fai_prefill: varlen causal, hybrid batches (decode rows on the decode kernels), the
 *    variants, BF16, with and without a host copy of cu_seqlens_q; replays on new Q/K/V and
 *    new lengths (without a host plan: the sequences permuted; with one: new seq_k);
 *  - fai_kv_append: contiguous and paged caches of every dtype; replays on new rows and new
 *    slots (some -1, padding); the rows at the slots are also checked bit for bit against
 *    the host codecs, so a replay that wrote the capture's slots or values fails;
 *  - one engine step in one graph: fai_kv_append of each sequence's new token, then
 *    fai_decode over the lengths + 1 (paged int8 cache).
 * Each graph is captured before any direct call of its scenario (so the first capture of each
 * entry point in the process also covers any one-time setup done inside a capture). Outputs are
 * poisoned (NaN) before every run, and must all be written. Small shapes (compute-sanitizer
 * runs it as it is). Exits 77 without a GPU. FAI_TEST_NAME=text runs the scenarios whose
 * name contains text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "reference.h"

enum { ROUNDS = 3, MAXB = 8 };

static fai_ref_rng g_rng;

static void *dmalloc(size_t bytes)
{
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}

static uint16_t *rand_half(int64_t n, double stddev, int bf16)
{
    float *f = malloc(sizeof(float) * (size_t)(n + 1));
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n + 1));
    fai_ref_fill_normal(&g_rng, f, n, stddev);
    for (int64_t i = 0; i < n; i++)
        h[i] = bf16 ? host_float_to_bf16(f[i]) : host_float_to_half(f[i]);
    free(f);
    return h;
}

static void upload_rand_half(void *dst, int64_t n, double stddev, int bf16)
{
    uint16_t *h = rand_half(n, stddev, bf16);
    CUDA_CHECK(cudaMemcpy(dst, h, sizeof(uint16_t) * (size_t)n, cudaMemcpyHostToDevice));
    free(h);
}

static int rand_int(int lo, int hi) /* [lo, hi] */
{
    return lo + (int)(fai_ref_rng_uniform(&g_rng) * (hi - lo + 1)) % (hi - lo + 1);
}

/* ------------------------------------------------------------------------------------ */
/* A KV cache (contiguous slots or a page pool), its contents written from the host as the
 * codecs encode random FP16 rows; a device snapshot restores it before every run. */
typedef struct cache_buf {
    fai_dtype dt;
    int eb, hk, d;
    int64_t rows; /* rows of the pool: slots x capacity, or pages x page size */
    void *k, *v, *k_snap, *v_snap;
    float *ks, *vs, *ks_snap, *vs_snap;
} cache_buf;

static void cache_alloc(cache_buf *c, fai_dtype dt, int hk, int d, int64_t rows)
{
    memset(c, 0, sizeof *c);
    c->dt = dt;
    c->eb = dt == FAI_DTYPE_FP16 ? 2 : 1;
    c->hk = hk;
    c->d = d;
    c->rows = rows;
    const size_t bytes = (size_t)(rows * hk * d * c->eb);
    c->k = dmalloc(bytes);
    c->v = dmalloc(bytes);
    c->k_snap = dmalloc(bytes);
    c->v_snap = dmalloc(bytes);
    if (dt == FAI_DTYPE_INT8) {
        const size_t sb = sizeof(float) * (size_t)(rows * hk);
        c->ks = dmalloc(sb);
        c->vs = dmalloc(sb);
        c->ks_snap = dmalloc(sb);
        c->vs_snap = dmalloc(sb);
    }
}

static void cache_free(cache_buf *c)
{
    cudaFree(c->k); cudaFree(c->v); cudaFree(c->k_snap); cudaFree(c->v_snap);
    cudaFree(c->ks); cudaFree(c->vs); cudaFree(c->ks_snap); cudaFree(c->vs_snap);
}

static size_t cache_bytes(const cache_buf *c) { return (size_t)(c->rows * c->hk * c->d * c->eb); }
static size_t scale_bytes(const cache_buf *c) { return c->ks ? sizeof(float) * (size_t)(c->rows * c->hk) : 0; }

/* New random contents for every row (what fai_kv_append would have written). */
static void cache_randomize(cache_buf *c)
{
    const int64_t n = c->rows * c->hk;
    uint8_t *img[2];
    float *sc[2];
    float *x = malloc(sizeof(float) * (size_t)c->d), *deq = malloc(sizeof(float) * (size_t)c->d);
    for (int w = 0; w < 2; w++) {
        img[w] = malloc(cache_bytes(c));
        sc[w] = malloc(sizeof(float) * (size_t)n);
        for (int64_t r = 0; r < n; r++) {
            fai_ref_fill_normal(&g_rng, x, c->d, 1.0);
            round_to_half(x, NULL, c->d);
            host_encode_row(c->dt, 0, x, c->d, img[w] + r * c->d * c->eb, &sc[w][r], deq);
        }
    }
    CUDA_CHECK(cudaMemcpy(c->k_snap, img[0], cache_bytes(c), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(c->v_snap, img[1], cache_bytes(c), cudaMemcpyHostToDevice));
    if (c->ks) {
        CUDA_CHECK(cudaMemcpy(c->ks_snap, sc[0], scale_bytes(c), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(c->vs_snap, sc[1], scale_bytes(c), cudaMemcpyHostToDevice));
    }
    for (int w = 0; w < 2; w++) {
        free(img[w]);
        free(sc[w]);
    }
    free(x);
    free(deq);
}

static void cache_restore(cache_buf *c, cudaStream_t s)
{
    CUDA_CHECK(cudaMemcpyAsync(c->k, c->k_snap, cache_bytes(c), cudaMemcpyDeviceToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(c->v, c->v_snap, cache_bytes(c), cudaMemcpyDeviceToDevice, s));
    if (c->ks) {
        CUDA_CHECK(cudaMemcpyAsync(c->ks, c->ks_snap, scale_bytes(c), cudaMemcpyDeviceToDevice, s));
        CUDA_CHECK(cudaMemcpyAsync(c->vs, c->vs_snap, scale_bytes(c), cudaMemcpyDeviceToDevice, s));
    }
}

/* The cache's descriptor: [slots or pages][rows per slot][hk][d], scales [..][rows][hk]. */
static fai_kv_cache cache_desc(const cache_buf *c, int rows_per_slot)
{
    fai_kv_cache kc = {0};
    kc.dtype = c->dt;
    kc.k = c->k;
    kc.v = c->v;
    kc.seq_stride = (int64_t)rows_per_slot * c->hk * c->d;
    kc.token_stride = (int64_t)c->hk * c->d;
    kc.head_stride = c->d;
    if (c->ks) {
        kc.k_scale = c->ks;
        kc.v_scale = c->vs;
        kc.scale_seq_stride = (int64_t)rows_per_slot * c->hk;
        kc.scale_token_stride = c->hk;
        kc.scale_head_stride = 1;
    }
    return kc;
}

/* ------------------------------------------------------------------------------------ */
/* A scenario: its calls, how to change its inputs, its outputs. */
typedef enum { K_DECODE, K_PREFILL, K_APPEND, K_STEP } kind_t;

typedef struct dec_spec {
    fai_dtype dt;
    int page_size, batch, hq, hk, d, cap, alibi, window_left, sinks, lse;
    float softcap;
} dec_spec;

typedef struct pre_spec {
    int bf16, hq, hk, d, causal, alibi, window_left, sinks, host_plan, batch;
    float softcap;
    int seq_q[MAXB], seq_k[MAXB];
} pre_spec;

typedef struct app_spec {
    fai_dtype dt;
    int page_size, hk, d, cache_batch, cap, num_pages, tokens;
} app_spec;

typedef struct scenario {
    const char *name;
    kind_t kind;
    dec_spec ds; /* K_DECODE, K_STEP */
    pre_spec ps; /* K_PREFILL */
    app_spec as; /* K_APPEND */
} scenario;

typedef struct state {
    const scenario *sc;
    /* decode / step */
    fai_decode_params dp;
    cache_buf cache;
    int32_t *lens_dev, *table_dev, *table_host;
    int pages_per_seq, num_pages, rows_per_slot;
    int lens[MAXB];
    /* prefill */
    fai_prefill_params pp;
    int32_t cu_q[MAXB + 1], cu_k[MAXB + 1];
    int32_t *cu_q_dev, *cu_k_dev;
    /* append / step */
    fai_kv_append_params ap;
    int64_t *slots_dev, *slots_host;
    uint16_t *k_new_host, *v_new_host;
    /* common */
    void *ws;
    size_t ws_bytes;
    void *o;
    float *lse;
    size_t o_bytes, lse_bytes;
    float *sinks_dev;
} state;

static void shuffle_pages(state *s)
{
    const int n = s->num_pages;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = rand_int(0, i);
        const int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int b = 0; b < s->sc->ds.batch; b++)
        for (int i = 0; i < s->pages_per_seq; i++)
            s->table_host[b * s->pages_per_seq + i] = perm[b * s->pages_per_seq + i];
    free(perm);
    CUDA_CHECK(cudaMemcpy(s->table_dev, s->table_host, sizeof(int32_t) * (size_t)(s->sc->ds.batch * s->pages_per_seq),
                          cudaMemcpyHostToDevice));
}

static float *upload_sinks(int hq)
{
    float *h = malloc(sizeof(float) * (size_t)hq);
    for (int i = 0; i < hq; i++)
        h[i] = (float)(4.0 * fai_ref_rng_uniform(&g_rng) - 2.0);
    float *d = dmalloc(sizeof(float) * (size_t)hq);
    CUDA_CHECK(cudaMemcpy(d, h, sizeof(float) * (size_t)hq, cudaMemcpyHostToDevice));
    free(h);
    return d;
}

static void setup_attention(fai_attention *a, int hq, int hk, int d, int alibi, int window_left, float softcap,
                            int sinks, state *s)
{
    a->num_q_heads = hq;
    a->num_kv_heads = hk;
    a->head_dim = d;
    a->softmax_scale = 1.0f / sqrtf((float)d);
    a->alibi = alibi;
    a->window = window_left != 0;
    a->window_left = window_left;
    a->window_right = -1;
    a->softcap = softcap;
    if (sinks) {
        s->sinks_dev = upload_sinks(hq);
        a->sinks = s->sinks_dev;
    }
}

static void setup_decode(state *s)
{
    const dec_spec *ds = &s->sc->ds;
    fai_decode_params *p = &s->dp;
    *p = fai_decode_params_default();
    setup_attention(&p->attn, ds->hq, ds->hk, ds->d, ds->alibi, ds->window_left, ds->softcap, ds->sinks, s);
    p->batch = ds->batch;
    const int64_t qn = (int64_t)ds->batch * ds->hq * ds->d;
    p->q = (fai_tensor){dmalloc((size_t)qn * 2), FAI_DTYPE_FP16, (int64_t)ds->hq * ds->d, ds->d};
    s->o_bytes = (size_t)qn * 2;
    s->o = dmalloc(s->o_bytes);
    p->o = (fai_tensor){s->o, FAI_DTYPE_FP16, (int64_t)ds->hq * ds->d, ds->d};
    if (ds->lse) {
        s->lse_bytes = sizeof(float) * (size_t)ds->batch * ds->hq;
        s->lse = dmalloc(s->lse_bytes);
        p->lse = s->lse;
    }
    if (ds->page_size) {
        s->pages_per_seq = (ds->cap + ds->page_size - 1) / ds->page_size;
        s->num_pages = ds->batch * s->pages_per_seq + 1;
        s->rows_per_slot = ds->page_size;
        cache_alloc(&s->cache, ds->dt, ds->hk, ds->d, (int64_t)s->num_pages * ds->page_size);
    } else {
        s->rows_per_slot = ds->cap;
        cache_alloc(&s->cache, ds->dt, ds->hk, ds->d, (int64_t)ds->batch * ds->cap);
    }
    p->cache = cache_desc(&s->cache, s->rows_per_slot);
    p->cache.capacity = ds->cap;
    p->cache.max_seq_len = ds->cap;
    s->lens_dev = dmalloc(sizeof(int32_t) * MAXB);
    p->cache.seq_lens = s->lens_dev;
    if (ds->page_size) {
        s->table_host = malloc(sizeof(int32_t) * (size_t)(ds->batch * s->pages_per_seq));
        s->table_dev = dmalloc(sizeof(int32_t) * (size_t)(ds->batch * s->pages_per_seq));
        p->cache.page_table = s->table_dev;
        p->cache.page_table_stride = s->pages_per_seq;
        p->cache.page_size = ds->page_size;
        p->cache.num_pages = s->num_pages;
    }
    if (fai_decode_workspace_size(p, &s->ws_bytes) != FAI_SUCCESS) {
        printf("  %s: fai_decode_workspace_size: %s\n", s->sc->name, fai_last_error());
        exit(1);
    }
    s->ws = s->ws_bytes ? dmalloc(s->ws_bytes) : NULL;
    if (s->ws)
        CUDA_CHECK(cudaMemset(s->ws, 0xff, s->ws_bytes)); /* the workspace needs no clearing */
}

/* The append of a step (or of an append scenario) over the state's cache. */
static void setup_append_params(state *s, int hk, int d, int tokens, int cache_batch, fai_kv_cache cache)
{
    fai_kv_append_params *a = &s->ap;
    *a = fai_kv_append_params_default();
    a->num_kv_heads = hk;
    a->head_dim = d;
    a->num_tokens = tokens;
    const int64_t n = (int64_t)tokens * hk * d;
    a->k_new = (fai_tensor){dmalloc((size_t)n * 2), FAI_DTYPE_FP16, (int64_t)hk * d, d};
    a->v_new = (fai_tensor){dmalloc((size_t)n * 2), FAI_DTYPE_FP16, (int64_t)hk * d, d};
    s->slots_dev = dmalloc(sizeof(int64_t) * (size_t)tokens);
    s->slots_host = malloc(sizeof(int64_t) * (size_t)tokens);
    a->slots = s->slots_dev;
    a->cache_batch = cache_batch;
    a->cache = cache;
}

static void setup_prefill(state *s)
{
    const pre_spec *ps = &s->sc->ps;
    fai_prefill_params *p = &s->pp;
    *p = fai_prefill_params_default();
    setup_attention(&p->attn, ps->hq, ps->hk, ps->d, ps->alibi, ps->window_left, ps->softcap, ps->sinks, s);
    p->batch = ps->batch;
    p->causal = ps->causal;
    int tq = 0, tk = 0, mq = 1;
    for (int b = 0; b < ps->batch; b++) {
        tq += ps->seq_q[b];
        tk += ps->seq_k[b];
        mq = ps->seq_q[b] > mq ? ps->seq_q[b] : mq;
    }
    p->total_q = tq;
    p->total_k = tk;
    p->max_seq_q = mq;
    const fai_dtype dt = ps->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    const int64_t qr = (int64_t)ps->hq * ps->d, kr = (int64_t)ps->hk * ps->d;
    p->q = (fai_tensor){dmalloc((size_t)(tq * qr * 2)), dt, qr, ps->d};
    p->k = (fai_tensor){dmalloc((size_t)(tk * kr * 2)), dt, kr, ps->d};
    p->v = (fai_tensor){dmalloc((size_t)(tk * kr * 2)), dt, kr, ps->d};
    s->o_bytes = (size_t)(tq * qr * 2);
    s->o = dmalloc(s->o_bytes);
    p->o = (fai_tensor){s->o, dt, qr, ps->d};
    s->lse_bytes = sizeof(float) * (size_t)tq * ps->hq;
    s->lse = dmalloc(s->lse_bytes);
    p->lse = s->lse;
    s->cu_q_dev = dmalloc(sizeof(int32_t) * (MAXB + 1));
    s->cu_k_dev = dmalloc(sizeof(int32_t) * (MAXB + 1));
    p->cu_seqlens_q = s->cu_q_dev;
    p->cu_seqlens_k = s->cu_k_dev;
    s->cu_q[0] = s->cu_k[0] = 0;
    for (int b = 0; b < ps->batch; b++) {
        s->cu_q[b + 1] = s->cu_q[b] + ps->seq_q[b];
        s->cu_k[b + 1] = s->cu_k[b] + ps->seq_k[b];
    }
    /* The host plan is of the capture's cu_seqlens_q, which replays keep. */
    p->cu_seqlens_q_host = ps->host_plan ? s->cu_q : NULL;
    if (fai_prefill_workspace_size(p, &s->ws_bytes) != FAI_SUCCESS) {
        printf("  %s: fai_prefill_workspace_size: %s\n", s->sc->name, fai_last_error());
        exit(1);
    }
    s->ws = s->ws_bytes ? dmalloc(s->ws_bytes) : NULL;
    if (s->ws)
        CUDA_CHECK(cudaMemset(s->ws, 0xff, s->ws_bytes));
}

static void setup(state *s, const scenario *sc)
{
    memset(s, 0, sizeof *s);
    s->sc = sc;
    if (sc->kind == K_DECODE || sc->kind == K_STEP)
        setup_decode(s);
    if (sc->kind == K_STEP) {
        fai_kv_cache c = s->dp.cache;
        c.seq_lens = NULL;
        c.max_seq_len = 0;
        setup_append_params(s, sc->ds.hk, sc->ds.d, sc->ds.batch, sc->ds.batch, c);
    }
    if (sc->kind == K_PREFILL)
        setup_prefill(s);
    if (sc->kind == K_APPEND) {
        const app_spec *as = &sc->as;
        const int64_t rows = as->page_size ? (int64_t)as->num_pages * as->page_size : (int64_t)as->cache_batch * as->cap;
        s->rows_per_slot = as->page_size ? as->page_size : as->cap;
        cache_alloc(&s->cache, as->dt, as->hk, as->d, rows);
        fai_kv_cache c = cache_desc(&s->cache, s->rows_per_slot);
        c.capacity = as->cap;
        if (as->page_size) { /* the table is not read by the append; the descriptor needs one */
            s->pages_per_seq = (as->cap + as->page_size - 1) / as->page_size;
            s->table_dev = dmalloc(sizeof(int32_t) * (size_t)(as->cache_batch * s->pages_per_seq));
            CUDA_CHECK(cudaMemset(s->table_dev, 0, sizeof(int32_t) * (size_t)(as->cache_batch * s->pages_per_seq)));
            c.page_table = s->table_dev;
            c.page_table_stride = s->pages_per_seq;
            c.page_size = as->page_size;
            c.num_pages = as->num_pages;
        }
        setup_append_params(s, as->hk, as->d, as->tokens, as->cache_batch, c);
    }
}

static void teardown(state *s)
{
    cudaFree((void *)s->dp.q.data);
    cudaFree((void *)s->pp.q.data); cudaFree((void *)s->pp.k.data); cudaFree((void *)s->pp.v.data);
    cudaFree((void *)s->ap.k_new.data); cudaFree((void *)s->ap.v_new.data);
    cudaFree(s->o); cudaFree(s->lse); cudaFree(s->ws); cudaFree(s->sinks_dev);
    cudaFree(s->lens_dev); cudaFree(s->table_dev); cudaFree(s->cu_q_dev); cudaFree(s->cu_k_dev);
    cudaFree(s->slots_dev);
    if (s->cache.k)
        cache_free(&s->cache);
    free(s->table_host); free(s->slots_host); free(s->k_new_host); free(s->v_new_host);
}

/* New device inputs for round r (round 0: the capture's own). */
static void new_inputs(state *s, int r)
{
    const scenario *sc = s->sc;
    if (sc->kind == K_DECODE || sc->kind == K_STEP) {
        const dec_spec *ds = &sc->ds;
        upload_rand_half(s->dp.q.data, (int64_t)ds->batch * ds->hq * ds->d, 1.0, 0);
        cache_randomize(&s->cache);
        if (ds->page_size)
            shuffle_pages(s);
        /* lengths within the planned maximum: round 0 the extremes (0 and capacity) */
        const int top = sc->kind == K_STEP ? ds->cap - 1 : ds->cap; /* a step appends one */
        for (int b = 0; b < ds->batch; b++)
            s->lens[b] = r == 0 ? (b % 3 == 0 ? top : b % 3 == 1 ? 0 : 1 + b) : rand_int(0, top);
        int32_t dl[MAXB];
        for (int b = 0; b < ds->batch; b++)
            dl[b] = s->lens[b] + (sc->kind == K_STEP);
        CUDA_CHECK(cudaMemcpy(s->lens_dev, dl, sizeof(int32_t) * (size_t)ds->batch, cudaMemcpyHostToDevice));
        if (sc->kind == K_STEP) { /* each sequence's new token goes to position lens[b] */
            for (int b = 0; b < ds->batch; b++) {
                const int t = s->lens[b];
                s->slots_host[b] = ds->page_size ? (int64_t)s->table_host[b * s->pages_per_seq + t / ds->page_size] *
                                                           ds->page_size + t % ds->page_size
                                                 : (int64_t)b * ds->cap + t;
            }
        }
    }
    if (sc->kind == K_PREFILL) {
        const pre_spec *ps = &sc->ps;
        const int bf16 = ps->bf16;
        const fai_prefill_params *p = &s->pp;
        upload_rand_half(p->q.data, (int64_t)p->total_q * ps->hq * ps->d, 1.0, bf16);
        upload_rand_half(p->k.data, (int64_t)p->total_k * ps->hk * ps->d, 1.0, bf16);
        upload_rand_half(p->v.data, (int64_t)p->total_k * ps->hk * ps->d, 1.0, bf16);
        int32_t q[MAXB + 1], k[MAXB + 1];
        q[0] = k[0] = 0;
        for (int b = 0; b < ps->batch; b++) {
            int sq = ps->seq_q[b], sk = ps->seq_k[b];
            if (r > 0 && !ps->host_plan) { /* the sequences rotated: same totals and bounds */
                const int j = (b + r) % ps->batch;
                sq = ps->seq_q[j];
                sk = ps->seq_k[j];
            } else if (r > 0) { /* the host plan keeps seq_q; seq_k shrinks at random */
                sk = rand_int(0, sk);
            }
            q[b + 1] = q[b] + sq;
            k[b + 1] = k[b] + sk;
        }
        CUDA_CHECK(cudaMemcpy(s->cu_q_dev, q, sizeof(int32_t) * (size_t)(ps->batch + 1), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(s->cu_k_dev, k, sizeof(int32_t) * (size_t)(ps->batch + 1), cudaMemcpyHostToDevice));
    }
    if (sc->kind == K_APPEND) {
        const app_spec *as = &sc->as;
        cache_randomize(&s->cache);
        const int64_t num_slots = as->page_size ? (int64_t)as->num_pages * as->page_size : (int64_t)as->cache_batch * as->cap;
        for (int t = 0; t < as->tokens; t++) { /* distinct slots, about one in six padding */
            int64_t v;
            int again;
            do {
                v = fai_ref_rng_uniform(&g_rng) < 1.0 / 6 ? -1 : (int64_t)rand_int(0, (int)num_slots - 1);
                again = 0;
                for (int u = 0; u < t && v >= 0; u++)
                    again |= s->slots_host[u] == v;
            } while (again);
            s->slots_host[t] = v;
        }
    }
    if (sc->kind == K_APPEND || sc->kind == K_STEP) {
        const fai_kv_append_params *a = &s->ap;
        const int64_t n = (int64_t)a->num_tokens * a->num_kv_heads * a->head_dim;
        free(s->k_new_host);
        free(s->v_new_host);
        s->k_new_host = rand_half(n, 1.0, 0);
        s->v_new_host = rand_half(n, 1.0, 0);
        CUDA_CHECK(cudaMemcpy(a->k_new.data, s->k_new_host, (size_t)n * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(a->v_new.data, s->v_new_host, (size_t)n * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(s->slots_dev, s->slots_host, sizeof(int64_t) * (size_t)a->num_tokens,
                              cudaMemcpyHostToDevice));
    }
    /* the legacy-stream copies and memsets (setup()'s too) must land before work on the non-blocking stream */
    CUDA_CHECK(cudaDeviceSynchronize());
}

/* The entry point(s) of the scenario on `stream`. */
static fai_status calls(state *s, cudaStream_t stream)
{
    fai_status st = FAI_SUCCESS;
    switch (s->sc->kind) {
    case K_DECODE: st = fai_decode(&s->dp, s->ws, s->ws_bytes, stream); break;
    case K_PREFILL: st = fai_prefill(&s->pp, s->ws, s->ws_bytes, stream); break;
    case K_APPEND: st = fai_kv_append(&s->ap, stream); break;
    case K_STEP:
        st = fai_kv_append(&s->ap, stream);
        if (st == FAI_SUCCESS)
            st = fai_decode(&s->dp, s->ws, s->ws_bytes, stream);
        break;
    }
    return st;
}

/* Before every run: the cache as new_inputs() left it, outputs NaN. */
static void reset(state *s, cudaStream_t stream)
{
    if (s->cache.k)
        cache_restore(&s->cache, stream);
    if (s->o)
        CUDA_CHECK(cudaMemsetAsync(s->o, 0xff, s->o_bytes, stream));
    if (s->lse)
        CUDA_CHECK(cudaMemsetAsync(s->lse, 0xff, s->lse_bytes, stream));
}

/* What a run produced: O and LSE, and the cache where an append wrote it. */
static size_t result_bytes(const state *s)
{
    size_t n = s->o_bytes + s->lse_bytes;
    if (s->sc->kind == K_APPEND || s->sc->kind == K_STEP)
        n += 2 * cache_bytes(&s->cache) + 2 * scale_bytes(&s->cache);
    return n;
}

static void read_result(const state *s, uint8_t *out)
{
    if (s->o_bytes)
        CUDA_CHECK(cudaMemcpy(out, s->o, s->o_bytes, cudaMemcpyDeviceToHost));
    out += s->o_bytes;
    if (s->lse_bytes)
        CUDA_CHECK(cudaMemcpy(out, s->lse, s->lse_bytes, cudaMemcpyDeviceToHost));
    out += s->lse_bytes;
    if (s->sc->kind == K_APPEND || s->sc->kind == K_STEP) {
        const cache_buf *c = &s->cache;
        CUDA_CHECK(cudaMemcpy(out, c->k, cache_bytes(c), cudaMemcpyDeviceToHost));
        out += cache_bytes(c);
        CUDA_CHECK(cudaMemcpy(out, c->v, cache_bytes(c), cudaMemcpyDeviceToHost));
        out += cache_bytes(c);
        if (c->ks) {
            CUDA_CHECK(cudaMemcpy(out, c->ks, scale_bytes(c), cudaMemcpyDeviceToHost));
            out += scale_bytes(c);
            CUDA_CHECK(cudaMemcpy(out, c->vs, scale_bytes(c), cudaMemcpyDeviceToHost));
        }
    }
}

/* Checks of a run's result on its own: every output written (no NaN poison left: decode
 * and prefill outputs are finite, an LSE finite or -inf), and the appended rows at the
 * round's slots equal the host codec's encoding of the round's rows. Returns failures. */
static int check_result(const state *s, const uint8_t *res, const char *label)
{
    int bad = 0;
    const int bf16 = s->sc->kind == K_PREFILL && s->sc->ps.bf16;
    const uint16_t *o = (const uint16_t *)res;
    for (size_t i = 0; i < s->o_bytes / 2; i++) {
        const float f = bf16 ? host_bf16_to_float(o[i]) : host_half_to_float(o[i]);
        bad += !isfinite(f);
    }
    const float *lse = (const float *)(res + s->o_bytes);
    for (size_t i = 0; i < s->lse_bytes / 4; i++)
        bad += isnan(lse[i]) || (isinf(lse[i]) && lse[i] > 0);
    if (bad)
        printf("  %-8s %d outputs not written or not finite\n", label, bad);
    if (s->sc->kind == K_APPEND || s->sc->kind == K_STEP) {
        const cache_buf *c = &s->cache;
        const uint8_t *ck = res + s->o_bytes + s->lse_bytes, *cv = ck + cache_bytes(c);
        const float *sk = (const float *)(cv + cache_bytes(c)), *sv = sk + c->rows * c->hk;
        const int d = c->d, rb = d * c->eb;
        uint8_t *want = malloc((size_t)rb);
        float *x = malloc(sizeof(float) * (size_t)d), *deq = malloc(sizeof(float) * (size_t)d);
        int rows_bad = 0;
        for (int t = 0; t < s->ap.num_tokens; t++) {
            const int64_t slot = s->slots_host[t];
            if (slot < 0)
                continue;
            for (int h = 0; h < c->hk; h++)
                for (int w = 0; w < 2; w++) {
                    const uint16_t *src = (w ? s->v_new_host : s->k_new_host) + ((int64_t)t * c->hk + h) * d;
                    for (int e = 0; e < d; e++)
                        x[e] = host_half_to_float(src[e]);
                    float scale;
                    host_encode_row(c->dt, 0, x, d, want, &scale, deq);
                    const int64_t row = slot * c->hk + h; /* natural strides: slot = pool row */
                    rows_bad += memcmp(want, (w ? cv : ck) + row * rb, (size_t)rb) != 0;
                    if (c->ks)
                        rows_bad += memcmp(&scale, (w ? sv : sk) + row, sizeof(float)) != 0;
                }
        }
        if (rows_bad)
            printf("  %-8s %d appended rows or scales differ from the host codec\n", label, rows_bad);
        bad += rows_bad;
        free(want); free(x); free(deq);
    }
    return bad;
}

static int run_scenario(const scenario *sc)
{
    state s;
    setup(&s, sc);
    printf("%s\n", sc->name);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    new_inputs(&s, 0);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    const fai_status cst = calls(&s, stream);
    const cudaError_t cerr = cudaStreamEndCapture(stream, &graph);
    if (cst != FAI_SUCCESS || cerr != cudaSuccess) {
        printf("  capture: %s (%s), end capture: %s  FAIL\n", fai_status_string(cst), fai_last_error(),
               cudaGetErrorString(cerr));
        (void)cudaGetLastError();
        CUDA_CHECK(cudaStreamDestroy(stream));
        teardown(&s);
        return 1;
    }
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    const size_t rb = result_bytes(&s);
    uint8_t *g = malloc(rb + 1), *d = malloc(rb + 1);
    int fails = 0;
    for (int r = 0; r < ROUNDS; r++) {
        if (r > 0)
            new_inputs(&s, r);
        reset(&s, stream);
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaGetLastError());
        read_result(&s, g);
        reset(&s, stream);
        const fai_status st = calls(&s, stream);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaGetLastError());
        read_result(&s, d);
        char label[16];
        snprintf(label, sizeof label, "replay %d", r);
        int bad = 0;
        if (st != FAI_SUCCESS) {
            printf("  %-8s direct call: %s: %s\n", label, fai_status_string(st), fai_last_error());
            bad++;
        }
        bad += check_result(&s, g, label);
        size_t first = rb;
        for (size_t i = 0; i < rb && first == rb; i++)
            if (g[i] != d[i])
                first = i;
        if (first != rb) {
            printf("  %-8s graph and direct call differ (first at byte %zu of %zu)\n", label, first, rb);
            bad++;
        }
        printf("  %-8s %zu bytes compared with the direct call  %s\n", label, rb, bad ? "FAIL" : "ok");
        fails += bad != 0;
    }
    free(g);
    free(d);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    CUDA_CHECK(cudaStreamDestroy(stream));
    teardown(&s);
    return fails;
}

/* Entry points outside the scenario table (fai_merge_states, fai_prefill over a paged
 * cache): the same protocol with the call, the input change and the output given directly.
 * Captured before any direct call, replayed ROUNDS times with new inputs, each replay
 * compared bit for bit with a direct call on the same inputs (outputs poisoned first). */
typedef struct direct_case {
    const char *name;
    fai_status (*call)(void *ctx, cudaStream_t s);
    void (*change)(void *ctx); /* new input values on the device */
    void *out;                 /* the output compared, poisoned (0xff) before every run: */
    size_t out_bytes;          /* its FP16 elements first, then (to out_bytes) FP32 ones */
    size_t half_bytes;
    void *ctx;
} direct_case;

static int run_direct_case(const direct_case *c)
{
    printf("%s\n", c->name);
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    c->change(c->ctx);
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    const fai_status cst = c->call(c->ctx, stream);
    const cudaError_t cerr = cudaStreamEndCapture(stream, &graph);
    if (cst != FAI_SUCCESS || cerr != cudaSuccess) {
        printf("  capture: %s (%s), end capture: %s  FAIL\n", fai_status_string(cst), fai_last_error(),
               cudaGetErrorString(cerr));
        (void)cudaGetLastError();
        CUDA_CHECK(cudaStreamDestroy(stream));
        return 1;
    }
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    uint8_t *g = malloc(c->out_bytes), *d = malloc(c->out_bytes);
    int fails = 0;
    for (int r = 0; r < ROUNDS; r++) {
        if (r > 0)
            c->change(c->ctx);
        CUDA_CHECK(cudaDeviceSynchronize()); /* change()'s legacy-stream copies land before the stream's work */
        CUDA_CHECK(cudaMemsetAsync(c->out, 0xff, c->out_bytes, stream));
        CUDA_CHECK(cudaGraphLaunch(exec, stream));
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaMemcpy(g, c->out, c->out_bytes, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemsetAsync(c->out, 0xff, c->out_bytes, stream));
        const fai_status st = c->call(c->ctx, stream);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        CUDA_CHECK(cudaMemcpy(d, c->out, c->out_bytes, cudaMemcpyDeviceToHost));
        int64_t unwritten = 0; /* all-ones FP16 or FP32 elements: the poison (NaN), never a result here */
        for (size_t i = 0; i < c->out_bytes; i += i < c->half_bytes ? 2 : 4) {
            const size_t w = i < c->half_bytes ? 2 : 4;
            size_t ones = 0;
            for (size_t b = 0; b < w && i + b < c->out_bytes; b++)
                ones += g[i + b] == 0xff;
            unwritten += ones == w;
        }
        const int bad = st != FAI_SUCCESS || memcmp(g, d, c->out_bytes) != 0 || unwritten != 0;
        printf("  replay %d %zu bytes compared with the direct call (%s), unwritten %lld  %s\n", r, c->out_bytes,
               fai_status_string(st), (long long)unwritten, bad ? "FAIL" : "ok");
        fails += bad;
    }
    free(g);
    free(d);
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    CUDA_CHECK(cudaGraphDestroy(graph));
    CUDA_CHECK(cudaStreamDestroy(stream));
    return fails;
}

/* fai_merge_states of 3 parts [rows, heads, d] out of place, with an LSE output. */
typedef struct merge_ctx {
    int rows, heads, d;
    fai_tensor parts[3];
    const float *lses[3];
    float *lse_dev[3];
    void *o; /* o then its LSE, one buffer */
} merge_ctx;

static fai_status merge_call(void *ctx, cudaStream_t s)
{
    merge_ctx *m = ctx;
    fai_merge_params p = fai_merge_params_default();
    p.num_parts = 3;
    p.num_rows = m->rows;
    p.num_heads = m->heads;
    p.head_dim = m->d;
    p.parts = m->parts;
    p.parts_lse = m->lses;
    p.o = (fai_tensor){m->o, FAI_DTYPE_FP16, (int64_t)m->heads * m->d, m->d};
    p.lse = (float *)((uint16_t *)m->o + (int64_t)m->rows * m->heads * m->d);
    return fai_merge_states(&p, s);
}

static void merge_change(void *ctx)
{
    merge_ctx *m = ctx;
    const int64_t n = (int64_t)m->rows * m->heads;
    float *l = malloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < 3; i++) {
        upload_rand_half(m->parts[i].data, n * m->d, 1.0, 0);
        for (int64_t j = 0; j < n; j++) /* some empty parts (-inf), and (row, head) 5 empty in all */
            l[j] = j == 5 || (j + i) % 13 == 0 ? -INFINITY : (float)(4.0 * fai_ref_rng_uniform(&g_rng) - 2.0);
        CUDA_CHECK(cudaMemcpy(m->lse_dev[i], l, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
    }
    free(l);
}

static int merge_graph_case(void)
{
    merge_ctx m = {.rows = 77, .heads = 8, .d = 128};
    const int64_t n = (int64_t)m.rows * m.heads;
    for (int i = 0; i < 3; i++) {
        m.parts[i] = (fai_tensor){dmalloc(2 * (size_t)(n * m.d)), FAI_DTYPE_FP16, (int64_t)m.heads * m.d, m.d};
        m.lse_dev[i] = dmalloc(sizeof(float) * (size_t)n);
        m.lses[i] = m.lse_dev[i];
    }
    const size_t out_bytes = 2 * (size_t)(n * m.d) + sizeof(float) * (size_t)n;
    m.o = dmalloc(out_bytes);
    const direct_case c = {"merge_states, 3 parts of 77 x 8 x 128, out of place with LSE", merge_call, merge_change,
                           m.o, out_bytes, 2 * (size_t)(n * m.d), &m};
    const int fails = run_direct_case(&c);
    for (int i = 0; i < 3; i++) {
        cudaFree(m.parts[i].data);
        cudaFree(m.lse_dev[i]);
    }
    cudaFree(m.o);
    return fails;
}

/* fai_prefill of a chunk per sequence over a paged FP16 cache (chunked prefill). */
typedef struct pcache_ctx {
    int batch, hq, hk, d, ps, pages_per_seq, num_pages;
    int32_t seq_k[3], seq_q[3], cu_host[4];
    void *q, *o, *k, *v;
    int32_t *table, *lens, *cu;
    void *ws; /* the decode row's split */
    size_t ws_bytes;
} pcache_ctx;

/* The call's parameters; kc must outlive p's use. */
static fai_prefill_params pcache_params(const pcache_ctx *c, fai_kv_cache *kc_out)
{
    fai_kv_cache kc;
    memset(&kc, 0, sizeof kc);
    kc.dtype = FAI_DTYPE_FP16;
    kc.k = c->k;
    kc.v = c->v;
    kc.seq_stride = (int64_t)c->ps * c->hk * c->d;
    kc.token_stride = (int64_t)c->hk * c->d;
    kc.head_stride = c->d;
    kc.capacity = c->pages_per_seq * c->ps;
    kc.seq_lens = c->lens;
    kc.page_table = c->table;
    kc.page_table_stride = c->pages_per_seq;
    kc.page_size = c->ps;
    kc.num_pages = c->num_pages;
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = c->hq;
    p.attn.num_kv_heads = c->hk;
    p.attn.head_dim = c->d;
    p.attn.softmax_scale = 1.0f / sqrtf((float)c->d);
    p.batch = c->batch;
    p.causal = 1;
    p.q = (fai_tensor){c->q, FAI_DTYPE_FP16, (int64_t)c->hq * c->d, c->d};
    p.o = (fai_tensor){c->o, FAI_DTYPE_FP16, (int64_t)c->hq * c->d, c->d};
    p.k.dtype = p.v.dtype = FAI_DTYPE_FP16;
    p.cu_seqlens_q = c->cu;
    p.cu_seqlens_q_host = c->cu_host;
    p.total_q = c->cu_host[c->batch];
    p.max_seq_q = 64;
    *kc_out = kc;
    p.kv_cache = kc_out; /* (read during the call only) */
    return p;
}

static fai_status pcache_call(void *ctx, cudaStream_t s)
{
    pcache_ctx *c = ctx;
    fai_kv_cache kc;
    const fai_prefill_params p = pcache_params(c, &kc);
    return fai_prefill(&p, c->ws, c->ws_bytes, s);
}

static void pcache_change(void *ctx)
{
    pcache_ctx *c = ctx;
    const int64_t pool = (int64_t)c->num_pages * c->ps * c->hk * c->d;
    upload_rand_half(c->k, pool, 1.0, 0);
    upload_rand_half(c->v, pool, 1.0, 0);
    upload_rand_half(c->q, (int64_t)c->cu_host[c->batch] * c->hq * c->d, 1.0, 0);
    /* new lengths within the planned chunk sizes (the host plan's seq_q stay) and new pages */
    for (int b = 0; b < c->batch; b++)
        c->seq_k[b] = rand_int(c->seq_q[b], c->pages_per_seq * c->ps);
    CUDA_CHECK(cudaMemcpy(c->lens, c->seq_k, sizeof(int32_t) * (size_t)c->batch, cudaMemcpyHostToDevice));
    int32_t *t = malloc(sizeof(int32_t) * (size_t)c->num_pages);
    for (int i = 0; i < c->num_pages; i++)
        t[i] = i;
    for (int i = c->num_pages - 1; i > 0; i--) {
        const int j = rand_int(0, i), x = t[i];
        t[i] = t[j];
        t[j] = x;
    }
    CUDA_CHECK(cudaMemcpy(c->table, t, sizeof(int32_t) * (size_t)(c->batch * c->pages_per_seq), cudaMemcpyHostToDevice));
    free(t);
}

static int pcache_graph_case(void)
{
    pcache_ctx c = {.batch = 3, .hq = 16, .hk = 4, .d = 128, .ps = 16, .pages_per_seq = 20, .num_pages = 70,
                    .seq_q = {64, 1, 37}};
    c.cu_host[0] = 0;
    for (int b = 0; b < c.batch; b++)
        c.cu_host[b + 1] = c.cu_host[b] + c.seq_q[b];
    const int64_t pool = (int64_t)c.num_pages * c.ps * c.hk * c.d, nq = (int64_t)c.cu_host[c.batch] * c.hq * c.d;
    c.k = dmalloc(2 * (size_t)pool);
    c.v = dmalloc(2 * (size_t)pool);
    c.q = dmalloc(2 * (size_t)nq);
    c.o = dmalloc(2 * (size_t)nq);
    c.table = dmalloc(sizeof(int32_t) * (size_t)(c.batch * c.pages_per_seq));
    c.lens = dmalloc(sizeof(int32_t) * (size_t)c.batch);
    c.cu = dmalloc(sizeof c.cu_host);
    CUDA_CHECK(cudaMemcpy(c.cu, c.cu_host, sizeof c.cu_host, cudaMemcpyHostToDevice));
    fai_kv_cache kc;
    const fai_prefill_params wp = pcache_params(&c, &kc);
    if (fai_prefill_workspace_size(&wp, &c.ws_bytes) != FAI_SUCCESS) {
        printf("  pcache: fai_prefill_workspace_size: %s  FAIL\n", fai_last_error());
        return 1;
    }
    if (c.ws_bytes)
        c.ws = dmalloc(c.ws_bytes);
    const direct_case dc = {"prefill over a paged 16 cache (chunks 64, 1, 37 queries), 16/4 d128, new lengths and pages",
                            pcache_call, pcache_change, c.o, 2 * (size_t)nq, 2 * (size_t)nq, &c};
    const int fails = run_direct_case(&dc);
    cudaFree(c.k);
    cudaFree(c.v);
    cudaFree(c.q);
    cudaFree(c.ws);
    cudaFree(c.o);
    cudaFree(c.table);
    cudaFree(c.lens);
    cudaFree(c.cu);
    return fails;
}

#define DEC(...) .kind = K_DECODE, .ds = {__VA_ARGS__}
#define PRE(...) .kind = K_PREFILL, .ps = {__VA_ARGS__}
#define APP(...) .kind = K_APPEND, .as = {__VA_ARGS__}

int main(int argc, char **argv)
{
    gpu_require_device("test_graphs");
    (void)argc; /* (--small is accepted: the shapes are small already) */
    (void)argv;
    fai_ref_rng_seed(&g_rng, 2027);
    /* Ordered so that the first use of each entry point in the process is a capture. */
    static const scenario sc[] = {
        {.name = "kv_append contiguous fp16, d128", APP(.dt = FAI_DTYPE_FP16, .hk = 4, .d = 128, .cache_batch = 3,
                                                        .cap = 40, .tokens = 24)},
        {.name = "kv_append contiguous int8, d64", APP(.dt = FAI_DTYPE_INT8, .hk = 2, .d = 64, .cache_batch = 4,
                                                       .cap = 30, .tokens = 32)},
        {.name = "kv_append contiguous e4m3, d256", APP(.dt = FAI_DTYPE_FP8_E4M3, .hk = 2, .d = 256, .cache_batch = 2,
                                                        .cap = 20, .tokens = 10)},
        {.name = "kv_append paged 16 e5m2, d96", APP(.dt = FAI_DTYPE_FP8_E5M2, .page_size = 16, .hk = 2, .d = 96,
                                                     .cache_batch = 3, .cap = 64, .num_pages = 13, .tokens = 40)},
        {.name = "kv_append paged 8 int8, d128", APP(.dt = FAI_DTYPE_INT8, .page_size = 8, .hk = 4, .d = 128,
                                                     .cache_batch = 2, .cap = 40, .num_pages = 11, .tokens = 20)},
        {.name = "kv_append paged 1 fp16, d64", APP(.dt = FAI_DTYPE_FP16, .page_size = 1, .hk = 1, .d = 64,
                                                    .cache_batch = 2, .cap = 50, .num_pages = 100, .tokens = 33)},
        {.name = "decode contiguous fp16, GQA 32/8 d128, split", DEC(.dt = FAI_DTYPE_FP16, .batch = 1, .hq = 32, .hk = 8,
                                                                     .d = 128, .cap = 4096, .lse = 1)},
        {.name = "decode contiguous fp16, MHA 8/8 d64, ALiBi", DEC(.dt = FAI_DTYPE_FP16, .batch = 3, .hq = 8, .hk = 8,
                                                                   .d = 64, .cap = 1000, .alibi = 1, .lse = 1)},
        {.name = "decode paged 16 fp16, 16/4 d128, window + sinks + softcap",
         DEC(.dt = FAI_DTYPE_FP16, .page_size = 16, .batch = 3, .hq = 16, .hk = 4, .d = 128, .cap = 600,
             .window_left = 100, .sinks = 1, .softcap = 30.0f, .lse = 1)},
        {.name = "decode contiguous int8, 16/4 d128, split", DEC(.dt = FAI_DTYPE_INT8, .batch = 2, .hq = 16, .hk = 4,
                                                                 .d = 128, .cap = 3000, .lse = 1)},
        {.name = "decode paged 32 e4m3, 8/8 d96", DEC(.dt = FAI_DTYPE_FP8_E4M3, .page_size = 32, .batch = 3, .hq = 8,
                                                      .hk = 8, .d = 96, .cap = 500, .lse = 0)},
        {.name = "decode paged 1 e5m2, 4/2 d256, sinks", DEC(.dt = FAI_DTYPE_FP8_E5M2, .page_size = 1, .batch = 2,
                                                            .hq = 4, .hk = 2, .d = 256, .cap = 300, .sinks = 1,
                                                            .lse = 1)},
        {.name = "decode paged 16 int8, 32/8 d64, split", DEC(.dt = FAI_DTYPE_INT8, .page_size = 16, .batch = 1,
                                                             .hq = 32, .hk = 8, .d = 64, .cap = 4000, .lse = 1)},
        {.name = "prefill varlen causal fp16, d64 8/2, no host plan",
         PRE(.hq = 8, .hk = 2, .d = 64, .causal = 1, .batch = 4, .seq_q = {100, 37, 0, 64}, .seq_k = {100, 80, 20, 64})},
        {.name = "prefill hybrid fp16, d128 16/4, host plan",
         PRE(.hq = 16, .hk = 4, .d = 128, .causal = 1, .host_plan = 1, .batch = 4, .seq_q = {128, 1, 77, 1},
             .seq_k = {128, 300, 77, 1})},
        {.name = "prefill hybrid fp16 window + sinks + softcap, d64 8/2, no host plan",
         PRE(.hq = 8, .hk = 2, .d = 64, .causal = 1, .window_left = 40, .sinks = 1, .softcap = 20.0f, .batch = 5,
             .seq_q = {90, 1, 1, 33, 1}, .seq_k = {90, 200, 0, 50, 64})},
        {.name = "prefill bf16 hybrid, non-causal ALiBi, d128 8/8, host plan",
         PRE(.bf16 = 1, .hq = 8, .hk = 8, .d = 128, .alibi = 1, .host_plan = 1, .batch = 3, .seq_q = {1, 70, 1},
             .seq_k = {150, 70, 9})},
        {.name = "prefill hybrid fp16 varlen, d256 4/1, no host plan",
         PRE(.hq = 4, .hk = 1, .d = 256, .causal = 1, .batch = 3, .seq_q = {1, 48, 1}, .seq_k = {100, 60, 33})},
        {.name = "step: kv_append + decode in one graph, paged 16 int8, 16/4 d128",
         .kind = K_STEP, .ds = {.dt = FAI_DTYPE_INT8, .page_size = 16, .batch = 4, .hq = 16, .hk = 4, .d = 128,
                                .cap = 500, .lse = 1}},
        {.name = "step: kv_append + decode in one graph, contiguous fp16, 8/8 d64",
         .kind = K_STEP, .ds = {.dt = FAI_DTYPE_FP16, .batch = 3, .hq = 8, .hk = 8, .d = 64, .cap = 300, .lse = 1}},
    };
    const char *only = getenv("FAI_TEST_NAME");
    int fails = 0, ran = 0;
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        if (only && !strstr(sc[i].name, only))
            continue;
        fails += run_scenario(&sc[i]) != 0;
        ran++;
    }
    if (!only || strstr("merge_states", only)) {
        fails += merge_graph_case() != 0;
        ran++;
    }
    if (!only || strstr("prefill over a paged cache", only)) {
        fails += pcache_graph_case() != 0;
        ran++;
    }
    printf("test_graphs: %d scenarios (%d replays each), %d failed\n", ran, ROUNDS, fails);
    return fails ? 1 : 0;
}
