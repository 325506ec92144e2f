/* GPU test: several host threads, each on its own stream with its own workspace, drive fai
 * at once on different problems (a split decode, a GQA decode, a causal varlen prefill and
 * a hybrid prefill+decode batch), many times over; every output must equal, bit for bit,
 * the output of the same call made alone before the threads start (the kernels are
 * deterministic). Also checks that no call leaves an error message behind on another
 * thread. Exits 77 without a GPU. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers under -std=c11 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "reference.h"

enum { ROUNDS = 25, THREADS = 4 };

static pthread_barrier_t start; /* the threads begin together, so their calls overlap */

typedef struct job {
    const char *name;
    int is_prefill;
    fai_decode_params d;
    fai_prefill_params p;
    void *out;        /* device output (the o tensor's buffer) */
    size_t out_bytes; /* its size */
    void *ws;
    size_t ws_bytes;
    int32_t host_cu[8];
    uint16_t *expected; /* output of the call made alone */
    int failures;
} job;

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
    if (fai_decode_workspace_size(p, &j->ws_bytes) != FAI_SUCCESS) {
        fprintf(stderr, "%s: %s\n", name, fai_last_error());
        exit(1);
    }
    if (j->ws_bytes)
        CUDA_CHECK(cudaMalloc(&j->ws, j->ws_bytes));
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
    if (fai_prefill_workspace_size(p, &j->ws_bytes) != FAI_SUCCESS) {
        fprintf(stderr, "%s: %s\n", name, fai_last_error());
        exit(1);
    }
    if (j->ws_bytes)
        CUDA_CHECK(cudaMalloc(&j->ws, j->ws_bytes));
}

static fai_status call(job *j, cudaStream_t s)
{
    return j->is_prefill ? fai_prefill(&j->p, j->ws, j->ws_bytes, s) : fai_decode(&j->d, j->ws, j->ws_bytes, s);
}

static void *worker(void *arg)
{
    job *j = arg;
    cudaStream_t s;
    CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    uint16_t *got = malloc(j->out_bytes);
    pthread_barrier_wait(&start);
    for (int r = 0; r < ROUNDS; r++) {
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

int main(void)
{
    gpu_require_device("test_concurrency");
    fai_ref_rng rng;
    fai_ref_rng_seed(&rng, 77);
    job jobs[4];
    memset(jobs, 0, sizeof jobs);
    make_decode(&jobs[0], &rng, "decode 2 x 20000, 32/32 (split)", 2, 32, 32, 20000, 20000);
    make_decode(&jobs[1], &rng, "decode 16 x 3000, 32/8 (GQA)", 16, 32, 8, 3000, 3000);
    const int32_t pq[3] = {300, 17, 1000}, pk[3] = {300, 200, 1000};
    make_prefill(&jobs[2], &rng, "prefill causal varlen, d64 8/2", pq, pk, 3, 8, 2, 64);
    const int32_t hyb_q[4] = {128, 1, 1, 64}, hyb_k[4] = {128, 500, 9000, 64};
    make_prefill(&jobs[3], &rng, "hybrid prefill + decode, d128 16/4", hyb_q, hyb_k, 4, 16, 4, 128);
    /* The reference: each call alone, on the legacy stream. */
    for (int i = 0; i < 4; i++) {
        jobs[i].expected = malloc(jobs[i].out_bytes);
        CUDA_CHECK(cudaMemset(jobs[i].out, 0xFF, jobs[i].out_bytes));
        if (call(&jobs[i], 0) != FAI_SUCCESS) {
            fprintf(stderr, "%s: %s\n", jobs[i].name, fai_last_error());
            return 1;
        }
        CUDA_CHECK(cudaMemcpy(jobs[i].expected, jobs[i].out, jobs[i].out_bytes, cudaMemcpyDeviceToHost));
    }
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
    printf("test_concurrency: 4 threads x %d rounds on 4 streams, %d failures\n", ROUNDS, failures);
    return failures ? 1 : 0;
}
