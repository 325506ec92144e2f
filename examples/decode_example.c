/*
 * decode_example.c: one decoding step with fai, built against the installed library.
 * Two sequences of a GQA model (8 query heads, 2 KV heads, head_dim 128) read an FP16 KV
 * cache laid out [batch, capacity, kv_heads, head_dim]; the long sequence makes fai split
 * its KV across blocks, so the call needs a workspace. Exits 77 when there is no GPU.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>
#include <fai.h>

enum { BATCH = 2, CAPACITY = 4096, HQ = 8, HK = 2, D = 128 };

/* cuda_fp16.h is C++ only, so convert by hand: float -> binary16, round to nearest even.
 * Good for the finite, moderate values used here (no NaN handling). */
static uint16_t to_half(float f)
{
    union { float f; uint32_t u; } v = {f};
    uint32_t sign = (v.u >> 16) & 0x8000u, mag = v.u & 0x7fffffffu;
    if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflows to inf */
    if (mag < 0x38800000u) {                                   /* subnormal half or zero */
        float a = fabsf(f) * 16777216.0f;                       /* units of 2^-24 */
        return (uint16_t)(sign | (uint32_t)nearbyintf(a));
    }
    uint32_t h = (mag - 0x38000000u) >> 13, rest = mag & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static float from_half(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float f = e == 0 ? ldexpf((float)m, -24) : e == 31 ? INFINITY : ldexpf((float)(m | 0x400), e - 25);
    return (h & 0x8000u) ? -f : f;
}

/* A small LCG: the same "random" values on every run, uniform in [-1, 1). */
static float next_value(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / 8388608.0f - 1.0f;
}

#define CUDA_CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
    fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_)); return 1; } } while (0)
#define FAI_CHECK(call) do { fai_status s_ = (call); if (s_ != FAI_SUCCESS) { \
    fprintf(stderr, "%s failed: %s\n  %s\n", #call, fai_status_string(s_), fai_last_error()); \
    return 1; } } while (0)

/* Copies n host floats to a new device buffer of FP16. */
static int upload_half(uint16_t **dev, size_t n, uint32_t *rng)
{
    uint16_t *host = malloc(n * sizeof *host);
    if (!host) return 1;
    for (size_t i = 0; i < n; i++) host[i] = to_half(next_value(rng));
    cudaError_t e = cudaMalloc((void **)dev, n * sizeof *host);
    if (e == cudaSuccess) e = cudaMemcpy(*dev, host, n * sizeof *host, cudaMemcpyHostToDevice);
    free(host);
    if (e != cudaSuccess) fprintf(stderr, "upload failed: %s\n", cudaGetErrorString(e));
    return e != cudaSuccess;
}

int main(void)
{
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("decode_example: no CUDA device, nothing to run (fai %d)\n", fai_version());
        return 77;
    }
    uint32_t rng = 12345u;
    const size_t cache_elems = (size_t)BATCH * CAPACITY * HK * D, qo_elems = (size_t)BATCH * HQ * D;
    uint16_t *k, *v, *q, *o;
    if (upload_half(&k, cache_elems, &rng) || upload_half(&v, cache_elems, &rng) ||
        upload_half(&q, qo_elems, &rng))
        return 1;
    CUDA_CHECK(cudaMalloc((void **)&o, qo_elems * sizeof *o));
    const int32_t seq_lens[BATCH] = {3000, 37}; /* tokens already in each slot */
    int32_t *d_lens;
    float *d_lse;
    CUDA_CHECK(cudaMalloc((void **)&d_lens, sizeof seq_lens));
    CUDA_CHECK(cudaMemcpy(d_lens, seq_lens, sizeof seq_lens, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMalloc((void **)&d_lse, BATCH * HQ * sizeof(float)));

    /* Start from the defaults so fields added by later versions stay off. */
    fai_decode_params p = fai_decode_params_default();
    p.attn.num_q_heads = HQ;
    p.attn.num_kv_heads = HK;
    p.attn.head_dim = D;
    p.attn.softmax_scale = 1.0f / sqrtf((float)D);
    p.batch = BATCH;
    p.q = (fai_tensor){q, FAI_DTYPE_FP16, HQ * D, D}; /* [batch, HQ, D], contiguous */
    p.o = (fai_tensor){o, FAI_DTYPE_FP16, HQ * D, D};
    p.cache.k = k;
    p.cache.v = v;
    p.cache.seq_stride = (int64_t)CAPACITY * HK * D; /* NHD: [batch, capacity, HK, D] */
    p.cache.token_stride = HK * D;
    p.cache.head_stride = D;
    p.cache.capacity = CAPACITY;
    p.cache.seq_lens = d_lens;
    p.cache.max_seq_len = 3000; /* host-side bound: only used to plan the split */
    p.lse = d_lse;

    size_t ws_bytes = 0;
    void *ws = NULL;
    FAI_CHECK(fai_decode_workspace_size(&p, &ws_bytes));
    if (ws_bytes > 0) CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    FAI_CHECK(fai_decode(&p, ws, ws_bytes, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream)); /* fai never synchronizes; we do */

    uint16_t out[BATCH * HQ * D];
    float lse[BATCH * HQ];
    CUDA_CHECK(cudaMemcpy(out, o, sizeof out, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(lse, d_lse, sizeof lse, cudaMemcpyDeviceToHost));
    printf("workspace %zu bytes\n", ws_bytes);
    for (int b = 0; b < BATCH; b++)
        printf("seq %d (len %d): o[h0][0..2] = %+.4f %+.4f %+.4f  lse[h0] = %.4f\n", b, seq_lens[b],
               from_half(out[b * HQ * D]), from_half(out[b * HQ * D + 1]),
               from_half(out[b * HQ * D + 2]), lse[b * HQ]);

    cudaStreamDestroy(stream);
    cudaFree(ws);
    cudaFree(d_lse);
    cudaFree(d_lens);
    cudaFree(o);
    cudaFree(q);
    cudaFree(v);
    cudaFree(k);
    return 0;
}
