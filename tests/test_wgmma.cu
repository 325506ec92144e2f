/* GPU test of the wgmma wrappers (src/kernels/ptx_wgmma.cuh), the first pieces of a Hopper
 * prefill path: one warpgroup computes D (64 x 64, FP32) = A (64 x K) x B^T (B: 64 x K), both
 * FP16 and K-major in shared memory, K = 16 or 64, through wgmma_m64n64k16_f16 and its matrix
 * descriptors, and the result is compared with a double-precision product on the host.
 * Layouts: core matrices without swizzle (8 rows x 16 bytes each, contiguous, K-adjacent ones
 * 128 bytes apart, M-adjacent ones K * 16 bytes apart), and the 128-byte swizzle (rows of 64
 * values, 16-byte chunk c of row r stored at chunk c ^ (r % 8)) that a fast kernel uses. The
 * accumulator layout documented in the header is checked element by element. Then the P x V
 * form: A from registers (the A fragment) times B stored MN-major with the 128-byte swizzle
 * (the transpose immediate), as attention's second product needs, at N = 64 and at N = 128
 * (two 64-column swizzle atoms, the descriptor's leading offset apart). A descriptor
 * with the two byte offsets swapped is run too and only reported, to tell a wrong field
 * from a wrong layout if the first case fails. Exits 77 without a GPU, on a GPU other than
 * compute capability 9.0, or when the build has no sm_90a code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gpu_test_util.h"
#include "kernels/ptx_wgmma.cuh"

enum { M = 64, N = 64, KMAX = 64, THREADS = 128 };
enum { LAYOUT_CORE = 0, LAYOUT_SWIZZLE128 = 1, LAYOUT_PV = 2 /* A in registers, B MN-major, swizzled */ };

/* Index (in halves) of element (r, k) of a 64 x K K-major operand in shared memory. */
__device__ int smem_index(int layout, int r, int k, int K)
{
    if (layout == LAYOUT_CORE)
        return ((r / 8) * (K / 8) + k / 8) * 64 + (r % 8) * 8 + k % 8;
    return r * 64 + (((k / 8) ^ (r % 8)) * 8) + k % 8; /* K == 64: one 128-byte row per r */
}

__global__ void __launch_bounds__(THREADS) wgmma_tile(const uint16_t *a, const uint16_t *b, float *d_out, int K,
                                                      int layout, uint32_t lead, uint32_t stride, int *has_wgmma)
{
    __shared__ __align__(1024) uint16_t sa[M * KMAX];
    __shared__ __align__(1024) uint16_t sb[N * KMAX];
    const int t = threadIdx.x;
    if (t == 0)
        *has_wgmma = FAI_HAS_WGMMA;
    for (int i = t; i < M * K; i += THREADS) {
        const int r = i / K, k = i % K;
        sa[smem_index(layout, r, k, K)] = a[i];
        sb[smem_index(layout, r, k, K)] = b[i];
    }
    fence_proxy_async_smem();
    __syncthreads();
    float d[32];
    for (int j = 0; j < 32; j++)
        d[j] = -1.0f; /* the first step does not accumulate: these must vanish */
    wgmma_fence();
    for (int ks = 0; ks < K / 16; ks++) {
        const int swz = layout == LAYOUT_CORE ? FAI_SWIZZLE_NONE : FAI_SWIZZLE_128B;
        /* k-step ks: core matrices 2 ks and 2 ks + 1 along K (no swizzle), or 32 bytes into
         * each swizzled 128-byte row */
        const int off = layout == LAYOUT_CORE ? 2 * ks * 64 : ks * 16;
        wgmma_m64n64k16_f16(d, wgmma_desc(sa + off, lead, stride, swz), wgmma_desc(sb + off, lead, stride, swz),
                            ks > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    const int w = t / 32, l = t % 32;
    for (int j = 0; j < 32; j++) {
        const int row = 16 * w + l / 4 + 8 * ((j % 4) / 2), col = 8 * (j / 4) + 2 * (l % 4) + j % 2;
        d_out[row * N + col] = d[j];
    }
}

/* The A fragment of one 16-column k-step of a row-major A (K values a row) starting at ak:
 * thread (warp w, lane l) holds rows 16 w + l / 4 and + 8, columns 2 (l % 4), + 1, + 8, + 9. */
__device__ void a_fragment(const uint16_t *ak, int K, int w, int l, uint32_t frag[4])
{
    const int r = 16 * w + l / 4, c = 2 * (l % 4);
    frag[0] = ak[r * K + c] | (uint32_t)ak[r * K + c + 1] << 16;
    frag[1] = ak[(r + 8) * K + c] | (uint32_t)ak[(r + 8) * K + c + 1] << 16;
    frag[2] = ak[r * K + c + 8] | (uint32_t)ak[r * K + c + 9] << 16;
    frag[3] = ak[(r + 8) * K + c + 8] | (uint32_t)ak[(r + 8) * K + c + 9] << 16;
}

/* D (64 x 64) = A (64 x K, row-major in global memory, taken into registers as the A
 * fragment) x B (K x 64, row-major: n contiguous), B in shared memory MN-major with the
 * 128-byte swizzle (row k at 128 k bytes, its chunk c at c ^ (k % 8)): the P x V product of
 * attention. K = 64. */
__global__ void __launch_bounds__(THREADS) wgmma_pv_tile(const uint16_t *a, const uint16_t *b, float *d_out, int K,
                                                         uint32_t lead, uint32_t stride, int *has_wgmma)
{
    __shared__ __align__(1024) uint16_t sb[KMAX * N];
    const int t = threadIdx.x, w = t / 32, l = t % 32;
    if (t == 0)
        *has_wgmma = FAI_HAS_WGMMA;
    for (int i = t; i < K * N; i += THREADS) {
        const int k = i / N, n = i % N;
        sb[k * 64 + (((n / 8) ^ (k % 8)) * 8) + n % 8] = b[i];
    }
    fence_proxy_async_smem();
    __syncthreads();
    float d[32];
    for (int j = 0; j < 32; j++)
        d[j] = -1.0f;
    wgmma_fence();
    for (int ks = 0; ks < K / 16; ks++) {
        uint32_t frag[4];
        a_fragment(a + ks * 16, K, w, l, frag);
        /* k-step ks: rows 16 ks .. 16 ks + 15, two 1024-byte swizzle atoms */
        wgmma_m64n64k16_f16_rs_tb(d, frag, wgmma_desc(sb + ks * 16 * 64, lead, stride, FAI_SWIZZLE_128B), ks > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    for (int j = 0; j < 32; j++) {
        const int row = 16 * w + l / 4 + 8 * ((j % 4) / 2), col = 8 * (j / 4) + 2 * (l % 4) + j % 2;
        d_out[row * N + col] = d[j];
    }
}

/* The same product at N = 128 (D 64 x 128): B's columns 0-63 and 64-127 are two swizzled
 * blocks of K rows x 128 bytes, PV128_HALF bytes apart (a gap after the first, so a
 * descriptor that assumed them adjacent fails), through wgmma_m64n128k16_f16_rs_tb. */
enum { N2 = 128, PV128_HALF = KMAX * 128 + 1024 };
__global__ void __launch_bounds__(THREADS) wgmma_pv128_tile(const uint16_t *a, const uint16_t *b, float *d_out,
                                                            int K, uint32_t lead, uint32_t stride, int *has_wgmma)
{
    __shared__ __align__(1024) uint16_t sb[2 * PV128_HALF / 2];
    const int t = threadIdx.x, w = t / 32, l = t % 32;
    if (t == 0)
        *has_wgmma = FAI_HAS_WGMMA;
    for (int i = t; i < 2 * PV128_HALF / 2; i += THREADS)
        sb[i] = 0x7e00; /* NaN in the gap: read by mistake, it shows */
    __syncthreads();
    for (int i = t; i < K * N2; i += THREADS) {
        const int k = i / N2, n = i % N2, h = n / 64, nn = n % 64;
        sb[h * (PV128_HALF / 2) + k * 64 + (((nn / 8) ^ (k % 8)) * 8) + nn % 8] = b[i];
    }
    fence_proxy_async_smem();
    __syncthreads();
    float d[64];
    for (int j = 0; j < 64; j++)
        d[j] = -1.0f;
    wgmma_fence();
    for (int ks = 0; ks < K / 16; ks++) {
        uint32_t frag[4];
        a_fragment(a + ks * 16, K, w, l, frag);
        wgmma_m64n128k16_f16_rs_tb(d, d + 32, frag, wgmma_desc(sb + ks * 16 * 64, lead, stride, FAI_SWIZZLE_128B),
                                   ks > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
    for (int j = 0; j < 64; j++) {
        const int row = 16 * w + l / 4 + 8 * ((j % 4) / 2), col = 8 * (j / 4) + 2 * (l % 4) + j % 2;
        d_out[row * N2 + col] = d[j];
    }
}

/* The N = 128 P x V case: A (64 x 64) and B (64 x 128, n contiguous) random, against a
 * double-precision product; returns the worst absolute error (NaN when not written). */
static double run_pv128(uint32_t lead, uint32_t stride, int *has_wgmma_dev)
{
    enum { K = 64 };
    static uint16_t a[M * K], b[K * N2];
    static double ref[M * N2];
    static float d[M * N2];
    for (int i = 0; i < M * K; i++)
        a[i] = host_float_to_half((float)rand() / RAND_MAX * 2.0f - 1.0f);
    for (int i = 0; i < K * N2; i++)
        b[i] = host_float_to_half((float)rand() / RAND_MAX * 2.0f - 1.0f);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N2; n++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)host_half_to_float(a[m * K + k]) * host_half_to_float(b[k * N2 + n]);
            ref[m * N2 + n] = s;
        }
    uint16_t *a_dev, *b_dev;
    float *d_dev;
    CUDA_CHECK(cudaMalloc((void **)&a_dev, sizeof a));
    CUDA_CHECK(cudaMalloc((void **)&b_dev, sizeof b));
    CUDA_CHECK(cudaMalloc((void **)&d_dev, sizeof d));
    CUDA_CHECK(cudaMemcpy(a_dev, a, sizeof a, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(b_dev, b, sizeof b, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(d_dev, 0xff, sizeof d)); /* NaN */
    wgmma_pv128_tile<<<1, THREADS>>>(a_dev, b_dev, d_dev, K, lead, stride, has_wgmma_dev);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(d, d_dev, sizeof d, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int i = 0; i < M * N2; i++) {
        const double e = fabs((double)d[i] - ref[i]);
        if (!(e <= worst))
            worst = e;
    }
    cudaFree(a_dev);
    cudaFree(b_dev);
    cudaFree(d_dev);
    return worst;
}

/* Runs one case; returns the worst absolute error (NaN when something was not written). */
static double run_case(const uint16_t *a_dev, const uint16_t *b_dev, const double *ref, float *d_dev, int K,
                       int layout, uint32_t lead, uint32_t stride, int *has_wgmma_dev)
{
    CUDA_CHECK(cudaMemset(d_dev, 0xff, sizeof(float) * M * N)); /* NaN */
    if (layout == LAYOUT_PV)
        wgmma_pv_tile<<<1, THREADS>>>(a_dev, b_dev, d_dev, K, lead, stride, has_wgmma_dev);
    else
        wgmma_tile<<<1, THREADS>>>(a_dev, b_dev, d_dev, K, layout, lead, stride, has_wgmma_dev);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    int has = 0;
    CUDA_CHECK(cudaMemcpy(&has, has_wgmma_dev, sizeof has, cudaMemcpyDeviceToHost));
    if (!has) {
        printf("test_wgmma: this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES without 90a): skipping\n");
        exit(GPU_TEST_SKIP);
    }
    float d[M * N];
    CUDA_CHECK(cudaMemcpy(d, d_dev, sizeof d, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int i = 0; i < M * N; i++) {
        const double e = fabs((double)d[i] - ref[i]);
        if (!(e <= worst))
            worst = e; /* NaN sticks */
    }
    return worst;
}

int main(void)
{
    gpu_require_device("test_wgmma");
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major != 9 || prop.minor != 0) {
        printf("test_wgmma: %s is compute capability %d.%d, wgmma needs 9.0: skipping\n", prop.name, prop.major,
               prop.minor);
        return GPU_TEST_SKIP;
    }
    srand(12345);
    uint16_t a[M * KMAX], b[N * KMAX];
    float af[M * KMAX], bf[N * KMAX];
    for (int i = 0; i < M * KMAX; i++) {
        a[i] = host_float_to_half((float)rand() / RAND_MAX * 2.0f - 1.0f);
        b[i] = host_float_to_half((float)rand() / RAND_MAX * 2.0f - 1.0f);
        af[i] = host_half_to_float(a[i]);
        bf[i] = host_half_to_float(b[i]);
    }
    uint16_t *a_dev, *b_dev;
    float *d_dev;
    int *has_dev;
    CUDA_CHECK(cudaMalloc((void **)&a_dev, sizeof a));
    CUDA_CHECK(cudaMalloc((void **)&b_dev, sizeof b));
    CUDA_CHECK(cudaMalloc((void **)&d_dev, sizeof(float) * M * N));
    CUDA_CHECK(cudaMalloc((void **)&has_dev, sizeof(int)));
    int fails = 0;
    const struct {
        const char *name;
        int K, layout;
        uint32_t lead, stride;
        int required;
    } cases[] = {
        {"core matrices, K 16", 16, LAYOUT_CORE, 128, 16 * 16, 1},
        {"core matrices, K 64", 64, LAYOUT_CORE, 128, 64 * 16, 1},
        {"128-byte swizzle, K 64", 64, LAYOUT_SWIZZLE128, 16, 1024, 1},
        {"(diagnostic) core matrices, K 64, offsets swapped", 64, LAYOUT_CORE, 64 * 16, 128, 0},
        /* P x V: A from registers, B MN-major with the 128-byte swizzle; 8-row groups of B
         * 1024 bytes apart along K (the stride offset, as for K-major; the leading one spans
         * atoms along N, of which a 64-wide B has one) */
        {"registers x MN-major swizzled B, K 64", 64, LAYOUT_PV, 16, 1024, 1},
        {"(diagnostic) registers x MN-major B, offsets swapped", 64, LAYOUT_PV, 1024, 16, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int K = cases[c].K;
        /* the operands as K-major rows of K values, and the double-precision product */
        uint16_t ak[M * KMAX], bk[N * KMAX];
        static double ref[M * N];
        for (int r = 0; r < M; r++)
            for (int k = 0; k < K; k++) {
                ak[r * K + k] = a[r * KMAX + k];
                bk[r * K + k] = b[r * KMAX + k];
            }
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++)
                    s += (double)af[m * KMAX + k] * bf[n * KMAX + k];
                ref[m * N + n] = s;
            }
        if (cases[c].layout == LAYOUT_PV) /* B handed over as K x N (n contiguous): the same B^T */
            for (int k = 0; k < K; k++)
                for (int n = 0; n < N; n++)
                    bk[k * N + n] = b[n * KMAX + k];
        CUDA_CHECK(cudaMemcpy(a_dev, ak, sizeof(uint16_t) * M * K, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(b_dev, bk, sizeof(uint16_t) * N * K, cudaMemcpyHostToDevice));
        const double worst = run_case(a_dev, b_dev, ref, d_dev, K, cases[c].layout, cases[c].lead, cases[c].stride,
                                      has_dev);
        const int ok = worst <= 1e-3; /* FP16 products are exact in FP32; 64 FP32 additions */
        printf("  %-50s leading %5u stride %5u  worst error %.2e  %s\n", cases[c].name, cases[c].lead,
               cases[c].stride, worst, ok ? "ok" : cases[c].required ? "FAIL" : "(differs)");
        fails += cases[c].required && !ok;
    }
    /* P x V over 128 columns: the leading offset spans B's two 64-column atoms */
    const struct {
        const char *name;
        uint32_t lead, stride;
        int required;
    } pv128[] = {
        {"registers x MN-major B, N 128, halves apart", PV128_HALF, 1024, 1},
        {"(diagnostic) registers x MN-major B, N 128, swapped", 1024, PV128_HALF, 0},
    };
    for (size_t c = 0; c < sizeof pv128 / sizeof pv128[0]; c++) {
        const double worst = run_pv128(pv128[c].lead, pv128[c].stride, has_dev);
        const int ok = worst <= 1e-3;
        printf("  %-50s leading %5u stride %5u  worst error %.2e  %s\n", pv128[c].name, pv128[c].lead,
               pv128[c].stride, worst, ok ? "ok" : pv128[c].required ? "FAIL" : "(differs)");
        fails += pv128[c].required && !ok;
    }
    cudaFree(a_dev);
    cudaFree(b_dev);
    cudaFree(d_dev);
    cudaFree(has_dev);
    printf("test_wgmma: %d failed\n", fails);
    return fails ? 1 : 0;
}
