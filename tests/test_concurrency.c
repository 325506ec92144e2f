/* GPU test: several host threads, each on its own stream with its own workspace, drive fai
 * at once on different problems (a split decode, a GQA decode, a causal varlen prefill, a
 * hybrid prefill+decode batch, a decode over a paged int8 cache, fai_kv_append into a paged
 * FP8 cache, fai_merge_states), many times over; every output must equal, bit for bit,
 * the output of the same call made alone before the threads start (the kernels are
 * deterministic). Also checks that no call leaves an error message behind on another
 * thread. --small: 2 rounds instead of 25 (for compute-sanitizer). Exits 77 without a GPU. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers under -std=c11 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "reference.h"

enum { ROUNDS = 25, THREADS = 7 };
static int g_rounds = ROUNDS; /* --small (for compute-sanitizer): 2 */

static pthread_barrier_t start; /* the threads begin together, so their calls overlap */

typedef struct job {
    const char *name;
    int is_prefill;
    int kind; /* 0: decode or prefill (is_prefill), 1: fai_kv_append, 2: fai_merge_states */
    fai_decode_params d;
    fai_prefill_params p;
    fai_kv_append_params a;
    fai_merge_params m;
    fai_tensor parts[2];
    const float *lses[2];
    void *out;        /* device output (the o tensor's buffer) */
    size_t out_bytes; /* its size */
    void *ws;
    size_t ws_bytes;
    int32_t host_cu[8];
    uint16_t *expected; /* output of the call made alone */
    int failures;
} job;

/* The job's workspace, of the size its query (status `s`) returned. */
static void alloc_workspace(job *j, const char *name, fai_status s)
{
    if (s != FAI_SUCCESS) {
        fprintf(stderr, "%s: %s\n", name, fai_last_error());
        exit(1);
    }
    if (j->ws_bytes)
        CUDA_CHECK(cudaMalloc(&j->ws, j->ws_bytes));
}

static void *dev_random_half(fai_ref_rng *rng, int64_t n)
{
    float *f = malloc(sizeof(float) * (size_t)n);
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
    fai_ref_fill_normal(rng, f, n, 1.0);
    round_to_half(f, h, n);
    void *d;
    CUDA_CHECK(cudaMalloc(&d, sizeof(uint16_t) * (size_t)n));
    CUDA_CHECK(cudaMemcpy(d, h, sizeof(uint16_t) * (size_t)n, cudaMemcpyHostToDevice));
    free(f);
    free(h);
    return d;
}

static int32_t *dev_ints(const int32_t *v, int n)
{
    int32_t *d;
    CUDA_CHECK(cudaMalloc((void **)&d, sizeof(int32_t) * (size_t)n));
    CUDA_CHECK(cudaMemcpy(d, v, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice));
    return d;
}

static void make_decode(job *j, fai_ref_rng *rng, const char *name, int batch, int hq, int hk, int cap, int len)
{
    j->name = name;
    j->d = fai_decode_params_default();
    fai_decode_params *p = &j->d;
    p->attn.num_q_heads = hq;
    p->attn.num_kv_heads = hk;
    p->batch = batch;
    const int64_t d = 128, qn = (int64_t)batch * hq * d, kvn = (int64_t)batch * cap * hk * d;
    p->q = (fai_tensor){dev_random_half(rng, qn), FAI_DTYPE_FP16, hq * d, d};
    j->out_bytes = sizeof(uint16_t) * (size_t)qn;
    CUDA_CHECK(cudaMalloc(&j->out, j->out_bytes));
    p->o = (fai_tensor){j->out, FAI_DTYPE_FP16, hq * d, d};
    p->cache.k = dev_random_half(rng, kvn);
    p->cache.v = dev_random_half(rng, kvn);
    p->cache.capacity = cap;
    p->cache.seq_stride = (int64_t)cap * hk * d;
    p->cache.token_stride = hk * d;
    p->cache.head_stride = d;
    int32_t lens[64];
    for (int b = 0; b < batch; b++)
        lens[b] = len - (b * 37) % (len / 2 + 1);
    p->cache.seq_lens = dev_ints(lens, batch);
    alloc_workspace(j, name, fai_decode_workspace_size(p, &j->ws_bytes));
}

static void make_prefill(job *j, fai_ref_rng *rng, const char *name, const int32_t *seq_q, const int32_t *seq_k,
                         int batch, int hq, int hk, int d)
{
    j->name = name;
    j->is_prefill = 1;
    j->p = fai_prefill_params_default();
    fai_prefill_params *p = &j->p;
    p->attn.num_q_heads = hq;
    p->attn.num_kv_heads = hk;
    p->attn.head_dim = d;
    p->attn.softmax_scale = 0.125f;
    p->causal = 1;
    p->batch = batch;
    int32_t cu_k[8] = {0};
    int max_q = 1;
    j->host_cu[0] = 0;
    for (int b = 0; b < batch; b++) {
        j->host_cu[b + 1] = j->host_cu[b] + seq_q[b];
        cu_k[b + 1] = cu_k[b] + seq_k[b];
        max_q = seq_q[b] > max_q ? seq_q[b] : max_q;
    }
    p->total_q = j->host_cu[batch];
    p->total_k = cu_k[batch];
    p->max_seq_q = max_q;
    p->q = (fai_tensor){dev_random_half(rng, (int64_t)p->total_q * hq * d), FAI_DTYPE_FP16, hq * d, d};
    p->k = (fai_tensor){dev_random_half(rng, (int64_t)p->total_k * hk * d), FAI_DTYPE_FP16, hk * d, d};
    p->v = (fai_tensor){dev_random_half(rng, (int64_t)p->total_k * hk * d), FAI_DTYPE_FP16, hk * d, d};
    j->out_bytes = sizeof(uint16_t) * (size_t)p->total_q * hq * d;
    CUDA_CHECK(cudaMalloc(&j->out, j->out_bytes));
    p->o = (fai_tensor){j->out, FAI_DTYPE_FP16, hq * d, d};
    p->cu_seqlens_q = dev_ints(j->host_cu, batch + 1);
    p->cu_seqlens_k = dev_ints(cu_k, batch + 1);
    p->cu_seqlens_q_host = j->host_cu;
    alloc_workspace(j, name, fai_prefill_workspace_size(p, &j->ws_bytes));
}

/* A paged cache of `dtype` (pages of 16 tokens [16, hk, 128], scrambled table, int8 scales
 * [page, hk, 16]) for `batch` sequences of up to `cap` tokens, written by fai_kv_append from
 * random rows when `fill`. */
static fai_kv_cache make_paged_cache(fai_ref_rng *rng, fai_dtype dtype, int batch, int hk, int cap, int fill)
{
    const int ps = 16, d = 128, pps = (cap + ps - 1) / ps, pages = batch * pps;
    const int64_t row = (int64_t)hk * d, eb = dtype == FAI_DTYPE_FP16 ? 2 : 1;
    fai_kv_cache c;
    memset(&c, 0, sizeof c);
    c.dtype = dtype;
    CUDA_CHECK(cudaMalloc(&c.k, (size_t)(pages * ps * row * eb)));
    CUDA_CHECK(cudaMalloc(&c.v, (size_t)(pages * ps * row * eb)));
    c.seq_stride = ps * row;
    c.token_stride = row;
    c.head_stride = d;
    c.capacity = cap;
    if (dtype == FAI_DTYPE_INT8) {
        CUDA_CHECK(cudaMalloc((void **)&c.k_scale, sizeof(float) * (size_t)(pages * ps * hk)));
        CUDA_CHECK(cudaMalloc((void **)&c.v_scale, sizeof(float) * (size_t)(pages * ps * hk)));
        c.scale_seq_stride = (int64_t)ps * hk;
        c.scale_token_stride = 1;
        c.scale_head_stride = ps;
    }
    int32_t *t = malloc(sizeof(int32_t) * (size_t)pages);
    for (int i = 0; i < pages; i++)
        t[i] = i;
    for (int i = pages - 1; i > 0; i--) {
        const int j = (int)(fai_ref_rng_uniform(rng) * (i + 1)), x = t[i];
        t[i] = t[j];
        t[j] = x;
    }
    c.page_table = dev_ints(t, pages);
    c.page_table_stride = pps;
    c.page_size = ps;
    c.num_pages = pages;
    free(t);
    if (fill) { /* every slot of the pool, in one append */
        const int n = pages * ps;
        fai_kv_append_params a = fai_kv_append_params_default();
        a.num_kv_heads = hk;
        a.head_dim = d;
        a.num_tokens = n;
        a.k_new = (fai_tensor){dev_random_half(rng, n * row), FAI_DTYPE_FP16, row, d};
        a.v_new = (fai_tensor){dev_random_half(rng, n * row), FAI_DTYPE_FP16, row, d};
        int64_t *slots = malloc(sizeof(int64_t) * (size_t)n), *slots_dev;
        for (int i = 0; i < n; i++)
            slots[i] = i;
        CUDA_CHECK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)n));
        CUDA_CHECK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)n, cudaMemcpyHostToDevice));
        a.slots = slots_dev;
        a.cache_batch = batch;
        a.cache = c;
        if (fai_kv_append(&a, 0) != FAI_SUCCESS) {
            fprintf(stderr, "filling a paged cache: %s\n", fai_last_error());
            exit(1);
        }
        CUDA_CHECK(cudaDeviceSynchronize());
        cudaFree(a.k_new.data);
        cudaFree(a.v_new.data);
        cudaFree(slots_dev);
        free(slots);
    }
    return c;
}

/* A decode over a paged int8 cache (GQA 32/8, split). */
static void make_paged_decode(job *j, fai_ref_rng *rng, const char *name)
{
    const int batch = 3, hq = 32, hk = 8, cap = 6000;
    j->name = name;
    j->d = fai_decode_params_default();
    fai_decode_params *p = &j->d;
    p->attn.num_q_heads = hq;
    p->attn.num_kv_heads = hk;
    p->batch = batch;
    const int64_t d = 128, qn = (int64_t)batch * hq * d;
    p->q = (fai_tensor){dev_random_half(rng, qn), FAI_DTYPE_FP16, hq * d, d};
    j->out_bytes = sizeof(uint16_t) * (size_t)qn;
    CUDA_CHECK(cudaMalloc(&j->out, j->out_bytes));
    p->o = (fai_tensor){j->out, FAI_DTYPE_FP16, hq * d, d};
    p->cache = make_paged_cache(rng, FAI_DTYPE_INT8, batch, hk, cap, 1);
    const int32_t lens[3] = {6000, 17, 4111};
    p->cache.seq_lens = dev_ints(lens, batch);
    alloc_workspace(j, name, fai_decode_workspace_size(p, &j->ws_bytes));
}

/* fai_kv_append of 700 rows into a paged FP8 cache; the output compared is the K pool. */
static void make_append(job *j, fai_ref_rng *rng, const char *name)
{
    const int batch = 2, hk = 4, cap = 2000, n = 700;
    const int64_t d = 128, row = hk * d;
    j->name = name;
    j->kind = 1;
    j->a = fai_kv_append_params_default();
    j->a.num_kv_heads = hk;
    j->a.head_dim = (int32_t)d;
    j->a.num_tokens = n;
    j->a.k_new = (fai_tensor){dev_random_half(rng, n * row), FAI_DTYPE_FP16, row, d};
    j->a.v_new = (fai_tensor){dev_random_half(rng, n * row), FAI_DTYPE_FP16, row, d};
    j->a.cache = make_paged_cache(rng, FAI_DTYPE_FP8_E4M3, batch, hk, cap, 0);
    j->a.cache_batch = batch;
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)n);
    for (int i = 0; i < n; i++)
        slots[i] = (int64_t)(i * 7919) % (j->a.cache.num_pages * 16); /* scattered, distinct */
    CUDA_CHECK(cudaMalloc((void **)&j->a.slots, sizeof(int64_t) * (size_t)n));
    CUDA_CHECK(cudaMemcpy((void *)j->a.slots, slots, sizeof(int64_t) * (size_t)n, cudaMemcpyHostToDevice));
    free(slots);
    j->out = j->a.cache.k;
    j->out_bytes = (size_t)j->a.cache.num_pages * 16 * (size_t)row;
}

/* fai_merge_states of two parts [500, 16, 128] out of place. */
static void make_merge(job *j, fai_ref_rng *rng, const char *name)
{
    const int rows = 500, heads = 16, d = 128;
    j->name = name;
    j->kind = 2;
    float *l = malloc(sizeof(float) * (size_t)(rows * heads));
    for (int i = 0; i < 2; i++) {
        j->parts[i] = (fai_tensor){dev_random_half(rng, (int64_t)rows * heads * d), FAI_DTYPE_FP16, heads * d, d};
        for (int e = 0; e < rows * heads; e++)
            l[e] = (float)(4.0 * fai_ref_rng_uniform(rng) - 2.0);
        float *dl;
        CUDA_CHECK(cudaMalloc((void **)&dl, sizeof(float) * (size_t)(rows * heads)));
        CUDA_CHECK(cudaMemcpy(dl, l, sizeof(float) * (size_t)(rows * heads), cudaMemcpyHostToDevice));
        j->lses[i] = dl;
    }
    free(l);
    j->out_bytes = sizeof(uint16_t) * (size_t)rows * heads * d;
    CUDA_CHECK(cudaMalloc(&j->out, j->out_bytes));
    j->m = fai_merge_params_default();
    j->m.num_parts = 2;
    j->m.num_rows = rows;
    j->m.num_heads = heads;
    j->m.head_dim = d;
    j->m.parts = j->parts;
    j->m.parts_lse = j->lses;
    j->m.o = (fai_tensor){j->out, FAI_DTYPE_FP16, heads * d, d};
}

static fai_status call(job *j, cudaStream_t s)
{
    if (j->kind == 1)
        return fai_kv_append(&j->a, s);
    if (j->kind == 2)
        return fai_merge_states(&j->m, s);
    return j->is_prefill ? fai_prefill(&j->p, j->ws, j->ws_bytes, s) : fai_decode(&j->d, j->ws, j->ws_bytes, s);
}

static void *worker(void *arg)
{
    job *j = arg;
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    uint16_t *got = malloc(j->out_bytes);
    pthread_barrier_wait(&start);
    for (int r = 0; r < g_rounds; r++) {
        CUDA_CHECK(cudaMemsetAsync(j->out, 0xFF, j->out_bytes, s)); /* NaN poison */
        const fai_status st = call(j, s);
        if (st != FAI_SUCCESS || fai_last_error()[0] != '\0') {
            fprintf(stderr, "%s: round %d: status %d, message \"%s\"\n", j->name, r, (int)st, fai_last_error());
            j->failures++;
        }
        CUDA_CHECK(cudaMemcpyAsync(got, j->out, j->out_bytes, cudaMemcpyDeviceToHost, s));
        CUDA_CHECK(cudaStreamSynchronize(s));
        if (memcmp(got, j->expected, j->out_bytes) != 0) {
            fprintf(stderr, "%s: round %d differs from the call made alone\n", j->name, r);
            j->failures++;
        }
    }
    free(got);
    CUDA_CHECK(cudaStreamDestroy(s));
    return NULL;
}

int main(int argc, char **argv)
{
    gpu_require_device("test_concurrency");
    if (argc > 1 && strcmp(argv[1], "--small") == 0)
        g_rounds = 2; /* the threads still overlap; racecheck runs in minutes, not tens */
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, 77);
    job jobs[THREADS];
    memset(jobs, 0, sizeof jobs);
    make_decode(&jobs[0], &rng, "decode 2 x 20000, 32/32 (split)", 2, 32, 32, 20000, 20000);
    make_decode(&jobs[1], &rng, "decode 16 x 3000, 32/8 (GQA)", 16, 32, 8, 3000, 3000);
    const int32_t pq[3] = {300, 17, 1000}, pk[3] = {300, 200, 1000};
    make_prefill(&jobs[2], &rng, "prefill causal varlen, d64 8/2", pq, pk, 3, 8, 2, 64);
    const int32_t hyb_q[4] = {128, 1, 1, 64}, hyb_k[4] = {128, 500, 9000, 64};
    make_prefill(&jobs[3], &rng, "hybrid prefill + decode, d128 16/4", hyb_q, hyb_k, 4, 16, 4, 128);
    make_paged_decode(&jobs[4], &rng, "decode over a paged int8 cache, 32/8 (split)");
    make_append(&jobs[5], &rng, "kv_append into a paged FP8 cache");
    make_merge(&jobs[6], &rng, "merge_states, 2 parts");
    /* The reference: each call alone, on the legacy stream. */
    for (int i = 0; i < THREADS; i++) {
        jobs[i].expected = malloc(jobs[i].out_bytes);
        CUDA_CHECK(cudaMemset(jobs[i].out, 0xFF, jobs[i].out_bytes));
        if (call(&jobs[i], 0) != FAI_SUCCESS) {
            fprintf(stderr, "%s: %s\n", jobs[i].name, fai_last_error());
            return 1;
        }
        CUDA_CHECK(cudaMemcpy(jobs[i].expected, jobs[i].out, jobs[i].out_bytes, cudaMemcpyDeviceToHost));
        /* The rounds are compared with this call byte for byte, so it must itself have written
         * every element: an attention or merge output holds no NaN (the 0xFF poison) or
         * infinity. (The append's cache keeps poison in the slots it does not write.) */
        if (jobs[i].kind != 1) {
            size_t bad = 0;
            for (size_t e = 0; e < jobs[i].out_bytes / 2; e++)
                bad += (jobs[i].expected[e] & 0x7C00u) == 0x7C00u;
            if (bad) {
                fprintf(stderr, "%s: the call made alone left %zu of %zu outputs non-finite\n", jobs[i].name, bad,
                        jobs[i].out_bytes / 2);
                return 1;
            }
        }
    }
    /* the legacy-stream work must be complete before the threads' non-blocking streams start (the last
     * synchronous copy above already implies it; this keeps it so) */
    CUDA_CHECK(cudaDeviceSynchronize());
    pthread_t t[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, &jobs[i]) != 0) {
            fprintf(stderr, "test_concurrency: pthread_create failed\n");
            return 2;
        }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failures += jobs[i].failures;
    }
    printf("test_concurrency: %d threads x %d rounds on %d streams, %d failures\n", THREADS, g_rounds, THREADS, failures);
    return failures ? 1 : 0;
}
