/* fai-bench's tensor-core ceiling: an n x n x n matrix product, FP16 inputs and output, FP32
 * accumulation, through cuBLAS (cublasGemmEx, CUBLAS_COMPUTE_32F), timed like every row
 * (L2 flushed, CUDA events around the call, warm-up, median). It is the rate a well-tuned
 * vendor kernel reaches on this card with this toolkit (wgmma on Hopper, mma.sync before),
 * the reference point of the prefill rows' %gemm column. cuBLAS is used here only: libfai
 * does not link it. */
#include <cublas_v2.h>
#include <stdio.h>

#include "bench_prefill.h"
#include "bench_util.h"

typedef struct gemm_ctx {
    cublasHandle_t h;
    int n;
    void *a, *b, *c;
    cublasStatus_t status;
} gemm_ctx;

static int run_gemm(void *ctx, cudaStream_t s)
{
    gemm_ctx *g = ctx;
    (void)s; /* the handle's stream */
    const float alpha = 1.0f, beta = 0.0f;
    g->status = cublasGemmEx(g->h, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->n, g->n, &alpha, g->a, CUDA_R_16F, g->n, g->b,
                             CUDA_R_16F, g->n, &beta, g->c, CUDA_R_16F, g->n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return g->status != CUBLAS_STATUS_SUCCESS;
}

int bench_gemm_ceiling(int n, int warmup, int reps, cudaStream_t s, double *tflops, double *ms)
{
    gemm_ctx g = {0};
    g.n = n;
    *tflops = *ms = -1.0;
    const size_t bytes = (size_t)n * (size_t)n * 2;
    int rc = -1;
    if (cublasCreate(&g.h) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "fai-bench: cublasCreate failed: no cuBLAS ceiling\n");
        return -1;
    }
    if (cublasSetStream(g.h, s) != CUBLAS_STATUS_SUCCESS || cudaMalloc(&g.a, bytes) != cudaSuccess ||
        cudaMalloc(&g.b, bytes) != cudaSuccess || cudaMalloc(&g.c, bytes) != cudaSuccess) {
        fprintf(stderr, "fai-bench: cuBLAS ceiling: setup failed (%zu MB needed)\n", 3 * bytes >> 20);
        goto done;
    }
    /* Random inputs: a product of zeros draws less power and clocks higher. */
    if (bench_fill_fp16(g.a, (int64_t)n * n, 11, 1.0f, s) != cudaSuccess ||
        bench_fill_fp16(g.b, (int64_t)n * n, 12, 1.0f, s) != cudaSuccess)
        goto done;
    const float t = time_median(run_gemm, &g, warmup, reps, s);
    if (t <= 0) {
        fprintf(stderr, "fai-bench: cublasGemmEx failed (status %d): no cuBLAS ceiling\n", (int)g.status);
        goto done;
    }
    *ms = t;
    *tflops = 2.0 * n * (double)n * n / (t * 1e-3) / 1e12;
    rc = 0;
done:
    cudaStreamSynchronize(s);
    cudaFree(g.a);
    cudaFree(g.b);
    cudaFree(g.c);
    cublasDestroy(g.h);
    return rc;
}
