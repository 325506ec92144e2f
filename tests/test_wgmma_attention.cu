/* Prototype of the Hopper prefill path (docs/design/prefill.md, "The Hopper path"), as a test
 * before it is a kernel of the library: non-causal attention at head dim 128 (MHA, equal
 * lengths in a batch) by one warpgroup per 64 query rows, on the wgmma wrappers of
 * src/kernels/ptx_wgmma.cuh. Q and each 64-key tile of K and V come by cp.async into
 * 128-byte-swizzled shared memory (two 64-value atoms along the head dim), two K/V stages;
 * S = Q K^T by eight wgmma k-steps from shared memory; the online softmax on S's accumulators;
 * P converted in registers into the A fragment of O += P V, with V read MN-major (the
 * transpose immediate), two 64-wide halves of the head dim.
 * Checked against the double-precision reference on odd sizes (rows and keys that are not
 * multiples of 64, seq_k < 64, batches), outputs poisoned first; then timed once beside
 * fai_prefill on the same inputs (4 x 16 heads x 4096), with and without its Hopper kernel,
 * non-causal and causal, for information only.
 * Exits 77 without a GPU, on a GPU other than compute capability 9.0, or without sm_90a code. */
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fai.h"
#include "gpu_test_util.h"
#include "kernels/ptx.cuh"
#include "kernels/ptx_wgmma.cuh"
#include "reference.h"

enum { HD = 128, BM = 64, BN = 64, THREADS = 128 };
enum { TILE_BYTES = 64 * HD * 2, SMEM_BYTES = TILE_BYTES * 5 + 1024 }; /* Q, 2 x (K, V), alignment */

/* Byte offset of 16-byte chunk ch (head-dim values 8 ch .. 8 ch + 7) of row r in a tile: two
 * 8 KB atoms along the head dim, 128-byte rows, chunk c of row r at c ^ (r % 8). */
__device__ __forceinline__ int tile_offset(int r, int ch)
{
    return (ch >> 3) * (64 * 128) + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
}

/* Rows row0 .. row0 + 63 of one head of a [tokens, heads, HD] tensor into a tile (rows past
 * nrows zero-filled). */
__device__ __forceinline__ void load_tile(char *tile, const __half *g, int64_t row_stride, int row0, int nrows)
{
    for (int i = threadIdx.x; i < 64 * (HD / 8); i += THREADS) {
        const int r = i / (HD / 8), ch = i % (HD / 8);
        const bool valid = row0 + r < nrows;
        ptx_cp_async_16(tile + tile_offset(r, ch), g + (int64_t)(valid ? row0 + r : 0) * row_stride + ch * 8, valid);
    }
}

__device__ __forceinline__ uint32_t half2_bits(float lo, float hi)
{
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t *>(&h);
}

__global__ void probe(int *has_wgmma) { *has_wgmma = FAI_HAS_WGMMA; }

__global__ void __launch_bounds__(THREADS, 1)
    proto_attention(const __half *q, const __half *k, const __half *v, __half *o, int seq_q, int seq_k, int heads,
                    float scale_log2)
{
    extern __shared__ char smem_raw[];
    char *base = smem_raw + ((1024 - (ptx_smem_addr(smem_raw) & 1023)) & 1023); /* swizzle atoms: 1024-aligned */
    /* Q, then stage 0's K and V, then stage 1's (stage pointers computed, not indexed: an
     * array indexed at run time would live in local memory) */
    char *sq = base;
#define SK(st) (base + TILE_BYTES * (1 + 2 * (st)))
#define SV(st) (base + TILE_BYTES * (2 + 2 * (st)))
    const int l = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int m0 = blockIdx.x * BM, h = blockIdx.y, b = blockIdx.z;
    const int64_t rs = (int64_t)heads * HD;
    const __half *qg = q + (int64_t)b * seq_q * rs + h * HD;
    const __half *kg = k + (int64_t)b * seq_k * rs + h * HD;
    const __half *vg = v + (int64_t)b * seq_k * rs + h * HD;
    const int ntiles = (seq_k + BN - 1) / BN;
    load_tile(sq, qg, rs, m0, seq_q);
    load_tile(SK(0), kg, rs, 0, seq_k);
    load_tile(SV(0), vg, rs, 0, seq_k);
    ptx_cp_async_commit();

    float acc[2][32], m[2] = {-INFINITY, -INFINITY}, lsum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int hb = 0; hb < 2; hb++)
#pragma unroll
        for (int j = 0; j < 32; j++)
            acc[hb][j] = 0.0f;
    for (int t = 0; t < ntiles; t++) {
        const int st = t & 1;
        if (t + 1 < ntiles) {
            load_tile(SK(st ^ 1), kg, rs, (t + 1) * BN, seq_k);
            load_tile(SV(st ^ 1), vg, rs, (t + 1) * BN, seq_k);
        }
        ptx_cp_async_commit();
        ptx_cp_async_wait<1>();
        fence_proxy_async_smem(); /* cp.async wrote the tiles that wgmma reads next */
        __syncthreads();

        float s[32];
#pragma unroll
        for (int j = 0; j < 32; j++)
            s[j] = 0.0f; /* (overwritten: the first k-step does not accumulate) */
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < HD / 16; ks++) {
            const int off = (ks >> 2) * (64 * 128) + (ks & 3) * 32;
            wgmma_m64n64k16_f16(s, wgmma_desc(sq + off, 16, 1024, FAI_SWIZZLE_128B),
                                wgmma_desc(SK(st) + off, 16, 1024, FAI_SWIZZLE_128B), ks > 0);
        }
        wgmma_commit();
        wgmma_wait<0>();

        /* Online softmax: thread rows 16 w + l / 4 (hr 0) and + 8 (hr 1); s[j] is column
         * 8 (j / 4) + 2 (l % 4) + j % 2 of row hr = (j % 4) / 2. */
        const int n0 = t * BN;
        float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int col = n0 + 8 * (j >> 2) + 2 * (l & 3) + (j & 1);
            s[j] = col < seq_k ? s[j] * scale_log2 : -INFINITY;
            mx[(j >> 1) & 1] = fmaxf(mx[(j >> 1) & 1], s[j]);
        }
        float alpha[2], rsum[2] = {0.0f, 0.0f};
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 1));
            mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 2));
            const float mn = fmaxf(m[hr], mx[hr]); /* finite: every tile has a key */
            alpha[hr] = ptx_exp2(m[hr] - mn);
            m[hr] = mn;
        }
#pragma unroll
        for (int j = 0; j < 32; j++) {
            s[j] = ptx_exp2(s[j] - m[(j >> 1) & 1]);
            rsum[(j >> 1) & 1] += s[j];
        }
#pragma unroll
        for (int hr = 0; hr < 2; hr++)
            lsum[hr] = lsum[hr] * alpha[hr] + rsum[hr];
#pragma unroll
        for (int hb = 0; hb < 2; hb++)
#pragma unroll
            for (int j = 0; j < 32; j++)
                acc[hb][j] *= alpha[(j >> 1) & 1];

        /* P as the A fragment of each 16-key k-step: columns 16 ks .. 16 ks + 15 are s[8 ks ..
         * 8 ks + 7] (rows r: j % 4 < 2, r + 8: j % 4 >= 2). */
        uint32_t pf[4][4];
#pragma unroll
        for (int ks = 0; ks < 4; ks++) {
            pf[ks][0] = half2_bits(s[8 * ks + 0], s[8 * ks + 1]);
            pf[ks][1] = half2_bits(s[8 * ks + 2], s[8 * ks + 3]);
            pf[ks][2] = half2_bits(s[8 * ks + 4], s[8 * ks + 5]);
            pf[ks][3] = half2_bits(s[8 * ks + 6], s[8 * ks + 7]);
        }
        wgmma_fence();
#pragma unroll
        for (int hb = 0; hb < 2; hb++)
#pragma unroll
            for (int ks = 0; ks < 4; ks++)
                wgmma_m64n64k16_f16_rs_tb(acc[hb], pf[ks],
                                          wgmma_desc(SV(st) + hb * (64 * 128) + ks * 16 * 128, 16, 1024,
                                                     FAI_SWIZZLE_128B),
                                          1);
        wgmma_commit();
        wgmma_wait<0>();
        __syncthreads(); /* the next iteration's copies refill this stage */
    }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        lsum[hr] += __shfl_xor_sync(0xffffffffu, lsum[hr], 1);
        lsum[hr] += __shfl_xor_sync(0xffffffffu, lsum[hr], 2);
    }
    __half *og = o + (int64_t)b * seq_q * rs + h * HD;
#pragma unroll
    for (int hb = 0; hb < 2; hb++)
#pragma unroll
        for (int j = 0; j < 32; j += 2) {
            const int hr = (j >> 1) & 1, row = m0 + 16 * w + (l >> 2) + 8 * hr;
            const int col = 64 * hb + 8 * (j >> 2) + 2 * (l & 3);
            if (row < seq_q) {
                const float inv = 1.0f / lsum[hr];
                *reinterpret_cast<uint32_t *>(og + (int64_t)row * rs + col) =
                    half2_bits(acc[hb][j] * inv, acc[hb][j + 1] * inv);
            }
        }
#undef SK
#undef SV
}

static void launch(const void *q, const void *k, const void *v, void *o, int batch, int heads, int seq_q, int seq_k)
{
    const dim3 grid((unsigned)((seq_q + BM - 1) / BM), (unsigned)heads, (unsigned)batch);
    proto_attention<<<grid, THREADS, SMEM_BYTES>>>((const __half *)q, (const __half *)k, (const __half *)v,
                                                   (__half *)o, seq_q, seq_k, heads,
                                                   (float)(1.4426950408889634 / sqrt((double)HD)));
}

static double rand_normal(void)
{
    const double u1 = ((double)rand() + 1.0) / ((double)RAND_MAX + 2.0), u2 = (double)rand() / RAND_MAX;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Random FP16 values (bits) and their floats. */
static void fill(uint16_t *bits, float *vals, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        bits[i] = host_float_to_half((float)rand_normal());
        vals[i] = host_half_to_float(bits[i]);
    }
}

static int check_case(int batch, int heads, int seq_q, int seq_k)
{
    const int64_t nq = (int64_t)batch * seq_q * heads * HD, nk = (int64_t)batch * seq_k * heads * HD;
    uint16_t *qb = (uint16_t *)malloc(2 * (size_t)nq), *kb = (uint16_t *)malloc(2 * (size_t)nk),
             *vb = (uint16_t *)malloc(2 * (size_t)nk), *ob = (uint16_t *)malloc(2 * (size_t)nq);
    float *qf = (float *)malloc(4 * (size_t)nq), *kf = (float *)malloc(4 * (size_t)nk),
          *vf = (float *)malloc(4 * (size_t)nk), *of = (float *)malloc(4 * (size_t)nq);
    double *ref = (double *)malloc(8 * (size_t)nq);
    fill(qb, qf, nq);
    fill(kb, kf, nk);
    fill(vb, vf, nk);
    void *q, *k, *v, *o;
    CUDA_CHECK(cudaMalloc(&q, 2 * (size_t)nq));
    CUDA_CHECK(cudaMalloc(&k, 2 * (size_t)nk));
    CUDA_CHECK(cudaMalloc(&v, 2 * (size_t)nk));
    CUDA_CHECK(cudaMalloc(&o, 2 * (size_t)nq));
    CUDA_CHECK(cudaMemcpy(q, qb, 2 * (size_t)nq, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(k, kb, 2 * (size_t)nk, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(v, vb, 2 * (size_t)nk, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(o, 0xff, 2 * (size_t)nq)); /* NaN where unwritten */
    launch(q, k, v, o, batch, heads, seq_q, seq_k);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(ob, o, 2 * (size_t)nq, cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < nq; i++)
        of[i] = host_half_to_float(ob[i]);
    fai_ref_problem rp;
    memset(&rp, 0, sizeof rp);
    rp.num_q_heads = rp.num_kv_heads = heads;
    rp.head_dim = HD;
    rp.seq_q = seq_q;
    rp.seq_k = seq_k;
    rp.softmax_scale = 1.0 / sqrt((double)HD);
    const int64_t sq_elems = (int64_t)seq_q * heads * HD, sk_elems = (int64_t)seq_k * heads * HD;
    for (int b = 0; b < batch; b++)
        if (fai_ref_attention(&rp, qf + b * sq_elems, kf + b * sk_elems, vf + b * sk_elems, ref + b * sq_elems,
                              NULL) != 0)
            exit(2);
    const double rel = fai_ref_rel_l2(of, ref, nq);
    const int ok = rel <= 2e-3; /* (NaN gives +inf) */
    printf("  batch %d, heads %d, seq_q %4d, seq_k %4d: rel_l2 %.2e  %s\n", batch, heads, seq_q, seq_k, rel,
           ok ? "ok" : "FAIL");
    free(qb);
    free(kb);
    free(vb);
    free(ob);
    free(qf);
    free(kf);
    free(vf);
    free(of);
    free(ref);
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(o);
    return !ok;
}

/* The prototype and fai_prefill (packed equal lengths) on one shape, the best of 10
 * event-timed runs each; printed, not asserted. */
static void time_against_fai(int batch, int heads, int seq)
{
    const int64_t n = (int64_t)batch * seq * heads * HD;
    void *q, *k, *v, *o;
    CUDA_CHECK(cudaMalloc(&q, 2 * (size_t)n));
    CUDA_CHECK(cudaMalloc(&k, 2 * (size_t)n));
    CUDA_CHECK(cudaMalloc(&v, 2 * (size_t)n));
    CUDA_CHECK(cudaMalloc(&o, 2 * (size_t)n));
    CUDA_CHECK(cudaMemset(q, 0x2c, 2 * (size_t)n)); /* 0x2c2c: ~0.06 in FP16 */
    CUDA_CHECK(cudaMemset(k, 0x2c, 2 * (size_t)n));
    CUDA_CHECK(cudaMemset(v, 0x2c, 2 * (size_t)n));
    int32_t *cu = (int32_t *)malloc(sizeof(int32_t) * (size_t)(batch + 1)), *cu_dev;
    for (int b = 0; b <= batch; b++)
        cu[b] = b * seq;
    CUDA_CHECK(cudaMalloc((void **)&cu_dev, sizeof(int32_t) * (size_t)(batch + 1)));
    CUDA_CHECK(cudaMemcpy(cu_dev, cu, sizeof(int32_t) * (size_t)(batch + 1), cudaMemcpyHostToDevice));
    fai_prefill_params p = fai_prefill_params_default();
    p.attn.num_q_heads = p.attn.num_kv_heads = heads;
    p.attn.head_dim = HD;
    p.attn.softmax_scale = 1.0f / sqrtf((float)HD);
    p.batch = batch;
    const fai_tensor tq = {q, FAI_DTYPE_FP16, (int64_t)heads * HD, HD}, tk = {k, FAI_DTYPE_FP16, (int64_t)heads * HD, HD},
                     tv = {v, FAI_DTYPE_FP16, (int64_t)heads * HD, HD}, to = {o, FAI_DTYPE_FP16, (int64_t)heads * HD, HD};
    p.q = tq;
    p.k = tk;
    p.v = tv;
    p.o = to;
    p.cu_seqlens_q = p.cu_seqlens_k = cu_dev;
    p.cu_seqlens_q_host = cu;
    p.total_q = p.total_k = batch * seq;
    p.max_seq_q = p.max_seq_k = seq;
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    /* The prototype; fai_prefill as it runs here (the Hopper kernel on sm_90a) and with
     * FAI_PREFILL_SM90=0 (the mma.sync kernel), non-causal then causal. */
    static const char *names[] = {"wgmma prototype", "fai_prefill", "fai_prefill, FAI_PREFILL_SM90=0",
                                  "fai_prefill causal", "fai_prefill causal, SM90=0"};
    const double flops = 4.0 * batch * seq * (double)seq * heads * HD;
    for (int which = 0; which < 5; which++) {
        float ms[10];
        p.causal = which >= 3;
        setenv("FAI_PREFILL_SM90", which == 2 || which == 4 ? "0" : "1", 1);
        for (int rep = -2; rep < 10; rep++) {
            CUDA_CHECK(cudaEventRecord(e0));
            if (which == 0)
                launch(q, k, v, o, batch, heads, seq, seq);
            else if (fai_prefill(&p, NULL, 0, 0) != FAI_SUCCESS) {
                printf("  fai_prefill: %s\n", fai_last_error());
                exit(1);
            }
            CUDA_CHECK(cudaEventRecord(e1));
            CUDA_CHECK(cudaEventSynchronize(e1));
            if (rep >= 0)
                CUDA_CHECK(cudaEventElapsedTime(&ms[rep], e0, e1));
        }
        float best = ms[0];
        for (int rep = 1; rep < 10; rep++)
            best = ms[rep] < best ? ms[rep] : best;
        printf("  %-32s batch %d x %d heads x %d: %.3f ms, %.1f TFLOP/s (best of 10)\n", names[which], batch,
               heads, seq, best, flops / (p.causal ? 2 : 1) / (best * 1e-3) / 1e12);
    }
    unsetenv("FAI_PREFILL_SM90");
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    free(cu);
    cudaFree(cu_dev);
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(o);
}

int main(void)
{
    gpu_require_device("test_wgmma_attention");
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major != 9 || prop.minor != 0) {
        printf("test_wgmma_attention: %s is compute capability %d.%d, wgmma needs 9.0: skipping\n", prop.name,
               prop.major, prop.minor);
        return GPU_TEST_SKIP;
    }
    int *has_dev, has = 0;
    CUDA_CHECK(cudaMalloc((void **)&has_dev, sizeof(int)));
    probe<<<1, 1>>>(has_dev);
    CUDA_CHECK(cudaMemcpy(&has, has_dev, sizeof has, cudaMemcpyDeviceToHost));
    cudaFree(has_dev);
    if (!has) {
        printf("test_wgmma_attention: this build has no sm_90a code: skipping\n");
        return GPU_TEST_SKIP;
    }
    CUDA_CHECK(cudaFuncSetAttribute(proto_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
    srand(2026);
    int fails = 0;
    fails += check_case(1, 2, 64, 64);
    fails += check_case(1, 2, 128, 256);
    fails += check_case(2, 3, 200, 333);
    fails += check_case(1, 1, 7, 5);
    fails += check_case(3, 2, 1000, 1000);
    time_against_fai(4, 16, 4096);
    printf("test_wgmma_attention: %d failed\n", fails);
    return fails ? 1 : 0;
}
