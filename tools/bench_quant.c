/* fai-bench's kv-quant suite: decoding attention over FP16, int8 and FP8 caches on the same
 * shapes (tokens per second and the ratio to FP16; GB/s of each dtype's own bytes against
 * the copy ceiling), and fai_kv_append writing a prompt into each cache dtype (GB/s of the
 * FP16 rows read plus the codes and scales written).
 * The caches are written by fai_kv_append from random FP16 rows, so the codes are those an
 * engine would hold. Timing as in fai_bench.c: 256 MB L2 flush before every run, CUDA
 * events around the call, median. */
#include "bench_quant.h"

#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define QCK(call)                                                                              \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "fai-bench: %s: %s\n", #call, cudaGetErrorString(e_));             \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#define FLUSH_BYTES ((size_t)256 << 20)

static const fai_dtype k_dtypes[] = {FAI_DTYPE_FP16, FAI_DTYPE_INT8, FAI_DTYPE_FP8_E4M3, FAI_DTYPE_FP8_E5M2};
static const char *k_names[] = {"fp16", "int8", "fp8_e4m3", "fp8_e5m2"};

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef fai_status (*timed_fn)(void *ctx, cudaStream_t s);

static float median_ms(timed_fn fn, void *ctx, void *flush, int reps, cudaStream_t s)
{
    cudaEvent_t e0, e1;
    QCK(cudaEventCreate(&e0));
    QCK(cudaEventCreate(&e1));
    float *t = malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < 3; i++)
        if (fn(ctx, s) != FAI_SUCCESS) {
            fprintf(stderr, "fai-bench: kv-quant: %s\n", fai_last_error());
            exit(1);
        }
    for (int i = 0; i < reps; i++) {
        QCK(cudaMemsetAsync(flush, i & 0xff, FLUSH_BYTES, s));
        QCK(cudaEventRecord(e0, s));
        fn(ctx, s);
        QCK(cudaEventRecord(e1, s));
        QCK(cudaEventSynchronize(e1));
        QCK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    qsort(t, (size_t)reps, sizeof(float), cmp_float);
    const float m = t[reps / 2];
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return m;
}

typedef struct decode_ctx {
    fai_decode_params p;
    void *ws;
    size_t ws_bytes;
} decode_ctx;

static fai_status run_decode(void *ctx, cudaStream_t s)
{
    decode_ctx *c = ctx;
    return fai_decode(&c->p, c->ws, c->ws_bytes, s);
}

static fai_status run_append(void *ctx, cudaStream_t s) { return fai_kv_append((fai_kv_append_params *)ctx, s); }

/* A [batch, capacity, hk, d] cache of `dtype` (scales [batch, capacity, hk]) filled through
 * fai_kv_append from random FP16 rows, `chunk` tokens at a time. */
static void make_cache(fai_kv_cache *c, fai_dtype dtype, int batch, int capacity, int hk, int d, uint64_t seed)
{
    const int eb = dtype == FAI_DTYPE_FP16 ? 2 : 1;
    const int64_t elems = (int64_t)batch * capacity * hk * d;
    memset(c, 0, sizeof *c);
    c->dtype = dtype;
    QCK(cudaMalloc(&c->k, (size_t)(elems * eb)));
    QCK(cudaMalloc(&c->v, (size_t)(elems * eb)));
    c->capacity = capacity;
    c->token_stride = (int64_t)hk * d;
    c->head_stride = d;
    c->seq_stride = (int64_t)capacity * hk * d;
    if (dtype == FAI_DTYPE_INT8) {
        QCK(cudaMalloc((void **)&c->k_scale, sizeof(float) * (size_t)batch * capacity * hk));
        QCK(cudaMalloc((void **)&c->v_scale, sizeof(float) * (size_t)batch * capacity * hk));
        c->scale_seq_stride = (int64_t)capacity * hk;
        c->scale_token_stride = hk;
        c->scale_head_stride = 1;
    }
    const int64_t total = (int64_t)batch * capacity;
    const int chunk = (int)(total < 65536 ? total : 65536);
    void *rows;
    int64_t *slots_dev;
    QCK(cudaMalloc(&rows, (size_t)chunk * hk * d * 2 * 2));
    QCK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)chunk));
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)chunk);
    fai_kv_append_params a = fai_kv_append_params_default();
    a.num_kv_heads = hk;
    a.head_dim = d;
    a.k_new.data = rows;
    a.k_new.token_stride = (int64_t)hk * d;
    a.k_new.head_stride = d;
    a.v_new = a.k_new;
    a.v_new.data = (char *)rows + (size_t)chunk * hk * d * 2;
    a.slots = slots_dev;
    a.cache_batch = batch;
    a.cache = *c;
    for (int64_t first = 0; first < total; first += chunk) {
        const int n = (int)(total - first < chunk ? total - first : chunk);
        QCK(bench_fill_fp16(rows, (int64_t)2 * chunk * hk * d, seed + (uint64_t)first, 1.0f, 0));
        for (int i = 0; i < n; i++)
            slots[i] = first + i;
        QCK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)n, cudaMemcpyHostToDevice));
        a.num_tokens = n;
        if (fai_kv_append(&a, 0) != FAI_SUCCESS) {
            fprintf(stderr, "fai-bench: kv-quant: filling the cache: %s\n", fai_last_error());
            exit(1);
        }
    }
    QCK(cudaDeviceSynchronize());
    free(slots);
    cudaFree(rows);
    cudaFree(slots_dev);
}

static void free_cache(fai_kv_cache *c)
{
    cudaFree(c->k);
    cudaFree(c->v);
    cudaFree(c->k_scale);
    cudaFree(c->v_scale);
}

static double cache_bytes(fai_dtype dtype, int64_t tokens, int hk, int d)
{
    const double per_row = dtype == FAI_DTYPE_FP16 ? 2.0 * d : dtype == FAI_DTYPE_INT8 ? d + 4.0 : (double)d;
    return 2.0 * (double)tokens * hk * per_row; /* K and V */
}

void bench_quant(const char *device, double copy_gbps, int reps, FILE *csv)
{
    void *flush;
    QCK(cudaMalloc(&flush, FLUSH_BYTES));
    cudaStream_t s;
    QCK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    /* The two decode rows, plus a middle one. */
    const int rows[][5] = {{128, 8192, 32, 32, 128}, {1, 131072, 32, 8, 128}, {16, 8192, 32, 8, 128}};
    printf("\nkv-quant: decoding attention over each cache dtype (copy ceiling %.0f GB/s)\n", copy_gbps);
    printf("%-14s %5s %7s %6s %4s %9s %9s %7s %8s\n", "dtype", "b", "sk", "hq/hk", "d", "us", "GB/s", "%copy",
           "x fp16");
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        const int b = rows[r][0], sk = rows[r][1], hq = rows[r][2], hk = rows[r][3], d = rows[r][4];
        float fp16_ms = 0;
        for (int t = 0; t < 4; t++) {
            decode_ctx c;
            memset(&c, 0, sizeof c);
            c.p = fai_decode_params_default();
            c.p.attn.num_q_heads = hq;
            c.p.attn.num_kv_heads = hk;
            c.p.attn.head_dim = d;
            c.p.batch = b;
            void *qo;
            int32_t *lens;
            QCK(cudaMalloc(&qo, (size_t)b * hq * d * 2 * 2));
            QCK(cudaMalloc((void **)&lens, sizeof(int32_t) * (size_t)b));
            QCK(bench_fill_fp16(qo, (int64_t)b * hq * d, 7, 1.0f, 0));
            QCK(bench_fill_i32(lens, b, sk, 0));
            c.p.q.data = qo;
            c.p.q.token_stride = (int64_t)hq * d;
            c.p.q.head_stride = d;
            c.p.o = c.p.q;
            c.p.o.data = (char *)qo + (size_t)b * hq * d * 2;
            make_cache(&c.p.cache, k_dtypes[t], b, sk, hk, d, 1234);
            c.p.cache.seq_lens = lens;
            if (fai_decode_workspace_size(&c.p, &c.ws_bytes) != FAI_SUCCESS) {
                fprintf(stderr, "fai-bench: kv-quant: %s\n", fai_last_error());
                exit(1);
            }
            if (c.ws_bytes)
                QCK(cudaMalloc(&c.ws, c.ws_bytes));
            const float ms = median_ms(run_decode, &c, flush, reps, s);
            if (t == 0)
                fp16_ms = ms;
            const double bytes = cache_bytes(k_dtypes[t], (int64_t)b * sk, hk, d) + 2.0 * b * hq * d * 2;
            const double gbps = bytes / (ms * 1e-3) / 1e9;
            printf("%-14s %5d %7d %3d/%-2d %4d %9.1f %9.0f %7.1f %8.2f\n", k_names[t], b, sk, hq, hk, d, ms * 1e3,
                   gbps, 100.0 * gbps / copy_gbps, fp16_ms / ms);
            if (csv)
                fprintf(csv, "%s,kv-quant,fai,%s,%d,1,%d,%d,%d,%d,0,,%.5f,,%.1f,x_fp16=%.3f\n", device, k_names[t], b,
                        sk, hq, hk, d, ms, gbps, fp16_ms / ms);
            free_cache(&c.p.cache);
            cudaFree(qo);
            cudaFree(lens);
            cudaFree(c.ws);
        }
    }

    /* Append: a prompt of 16384 tokens (8 KV heads of 128) into a cache of 4 x 16384 slots. */
    const int tokens = 16384, hk = 8, d = 128;
    printf("\nkv-quant: fai_kv_append of a %d-token prompt, %d KV heads of %d (GB/s of rows read + written)\n",
           tokens, hk, d);
    printf("%-14s %9s %9s %7s\n", "dtype", "us", "GB/s", "%copy");
    for (int t = 0; t < 4; t++) {
        fai_kv_append_params a = fai_kv_append_params_default();
        fai_kv_cache c;
        make_cache(&c, k_dtypes[t], 4, tokens, hk, d, 99);
        void *rows;
        int64_t *slots_dev;
        QCK(cudaMalloc(&rows, (size_t)tokens * hk * d * 2 * 2));
        QCK(bench_fill_fp16(rows, (int64_t)2 * tokens * hk * d, 5, 1.0f, 0));
        QCK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)tokens));
        int64_t *slots = malloc(sizeof(int64_t) * (size_t)tokens);
        for (int i = 0; i < tokens; i++)
            slots[i] = (int64_t)2 * tokens + i; /* sequence 2's slot */
        QCK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)tokens, cudaMemcpyHostToDevice));
        free(slots);
        a.num_kv_heads = hk;
        a.head_dim = d;
        a.num_tokens = tokens;
        a.k_new.data = rows;
        a.k_new.token_stride = (int64_t)hk * d;
        a.k_new.head_stride = d;
        a.v_new = a.k_new;
        a.v_new.data = (char *)rows + (size_t)tokens * hk * d * 2;
        a.slots = slots_dev;
        a.cache_batch = 4;
        a.cache = c;
        const float ms = median_ms(run_append, &a, flush, reps, s);
        const double bytes = 2.0 * tokens * hk * d * 2 + cache_bytes(k_dtypes[t], tokens, hk, d) + 8.0 * tokens;
        const double gbps = bytes / (ms * 1e-3) / 1e9;
        printf("%-14s %9.1f %9.0f %7.1f\n", k_names[t], ms * 1e3, gbps, 100.0 * gbps / copy_gbps);
        if (csv)
            fprintf(csv, "%s,kv-append,fai,%s,1,%d,%d,0,%d,%d,0,,%.5f,,%.1f,\n", device, k_names[t], tokens, tokens, hk,
                    d, ms, gbps);
        free_cache(&c);
        cudaFree(rows);
        cudaFree(slots_dev);
    }
    cudaStreamDestroy(s);
    cudaFree(flush);
}

#ifdef FAI_BENCH_QUANT_STANDALONE
/* A stand-alone driver for quick device rounds: bench_quant [reps] [csv]. */
int main(int argc, char **argv)
{
    struct cudaDeviceProp prop;
    QCK(cudaGetDeviceProperties(&prop, 0));
    void *a, *b;
    const size_t n = (size_t)1 << 30;
    QCK(cudaMalloc(&a, n));
    QCK(cudaMalloc(&b, n));
    cudaEvent_t e0, e1;
    QCK(cudaEventCreate(&e0));
    QCK(cudaEventCreate(&e1));
    float best = 1e30f;
    for (int i = 0; i < 10; i++) {
        QCK(cudaEventRecord(e0, 0));
        QCK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0));
        QCK(cudaEventRecord(e1, 0));
        QCK(cudaEventSynchronize(e1));
        float ms;
        QCK(cudaEventElapsedTime(&ms, e0, e1));
        best = ms < best ? ms : best;
    }
    cudaFree(a);
    cudaFree(b);
    const double copy = 2.0 * n / (best * 1e-3) / 1e9;
    FILE *csv = argc > 2 ? fopen(argv[2], "w") : NULL;
    if (csv)
        fprintf(csv, "device,suite,backend,dtype,b,sq,sk,hq,hk,d,causal,prefill_frac,ms,tflops,gbps,note\n");
    printf("%s, copy ceiling %.0f GB/s\n", prop.name, copy);
    bench_quant(prop.name, copy, argc > 1 ? atoi(argv[1]) : 30, csv);
    if (csv)
        fclose(csv);
    return 0;
}
#endif
