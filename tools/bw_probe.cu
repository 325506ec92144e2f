/* fai-bw-probe: how fast can a kernel read HBM, by which copy path? The decode kernels are
 * reads and nothing else, so their ceiling is whichever path reads fastest. Each row reads
 * the same buffer (1 GiB by default, past the L2 many times over) and reports GB/s, the
 * median of --reps timed launches after a warm-up:
 *   ldg U        16-byte loads, U in flight per thread, grid-stride (fai-bench's ceiling: U 4)
 *   cp.async     16-byte cp.async into a ring of shared-memory stages, a block-wide barrier
 *   bulk         cp.async.bulk (TMA without a map) of whole chunks, one thread issues,
 *                an mbarrier per stage (sm_90 only)
 *   rows-*       the decode pattern: 8 heads of 256-byte rows interleaved (row stride 2 KB),
 *                a block owns one head and a contiguous run of rows, tiles of 16 rows
 * --flush: before each timed launch (outside the events), a streaming read of 256 MiB, as
 * fai-bench's --flush read: with --mib below the L2 (50 MB), the time of a cold read of that
 * size, the floor of a short decode call (an empty kernel's row gives the launch's share).
 * Usage: fai-bw-probe [--mib N] [--reps N] [--flush] */
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "kernels/ptx.cuh"
#include "kernels/ptx_tma.cuh"

#define CK(x)                                                                                     \
    do {                                                                                          \
        cudaError_t e_ = (x);                                                                     \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "fai-bw-probe: %s: %s (line %d)\n", #x, cudaGetErrorString(e_), __LINE__); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

template <int U> __global__ void ldg_read(const uint4 *src, int64_t n, uint32_t *sink)
{
    uint32_t acc = 0;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    for (; i + (U - 1) * stride < n; i += U * stride) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            v[u] = ptx_ld_stream_v4(src + i + u * stride);
#pragma unroll
        for (int u = 0; u < U; u++)
            acc ^= v[u].x ^ v[u].w;
    }
    for (; i < n; i += stride)
        acc ^= src[i].x;
    if (acc == 0x12345678u)
        sink[blockIdx.x] = acc;
}

/* Chunks of ch bytes, chunk c = blockIdx.x + k gridDim.x, through STG stages by cp.async. */
template <int STG> __global__ void cpasync_read(const char *src, int64_t chunks, int ch, uint32_t *sink)
{
    extern __shared__ uint4 smem[];
    char *buf = reinterpret_cast<char *>(smem);
    const int64_t G = gridDim.x;
    auto issue = [&](int64_t it) {
        const int64_t c = blockIdx.x + it * G;
        if (c < chunks)
            for (int o = threadIdx.x * 16; o < ch; o += blockDim.x * 16)
                ptx_cp_async_16(buf + (it % STG) * ch + o, src + c * ch + o, true);
        ptx_cp_async_commit();
    };
    for (int s = 0; s < STG - 1; s++)
        issue(s);
    uint32_t acc = 0;
    for (int64_t it = 0; blockIdx.x + it * G < chunks; it++) {
        ptx_cp_async_wait<STG - 2>();
        __syncthreads();
        acc ^= *reinterpret_cast<const uint32_t *>(buf + (it % STG) * ch + threadIdx.x * 16);
        issue(it + STG - 1);
    }
    if (acc == 0x12345678u)
        sink[blockIdx.x] = acc;
}

/* The same chunks by cp.async.bulk: one thread issues, an mbarrier per stage. */
template <int STG> __global__ void bulk_read(const char *src, int64_t chunks, int ch, uint32_t *sink)
{
    extern __shared__ uint4 smem[];
    char *buf = reinterpret_cast<char *>(smem);
    __shared__ uint64_t full[STG];
    if (threadIdx.x == 0) {
        for (int s = 0; s < STG; s++)
            mbar_init(&full[s], 1);
        mbar_fence_init();
    }
    __syncthreads();
    if (threadIdx.x != 0)
        return;
    const int64_t G = gridDim.x;
    for (int s = 0; s < STG; s++) {
        const int64_t c = blockIdx.x + s * G;
        if (c < chunks) {
            mbar_arrive_expect_tx(&full[s], ch);
            bulk_load(buf + s * ch, src + c * ch, ch, &full[s]);
        }
    }
    uint32_t acc = 0;
    for (int64_t it = 0; blockIdx.x + it * G < chunks; it++) {
        const int s = it % STG;
        mbar_wait(&full[s], (it / STG) & 1);
        acc ^= *reinterpret_cast<const volatile uint32_t *>(buf + s * ch);
        const int64_t c = blockIdx.x + (it + STG) * G;
        if (c < chunks) {
            mbar_arrive_expect_tx(&full[s], ch);
            bulk_load(buf + s * ch, src + c * ch, ch, &full[s]);
        }
    }
    if (acc == 0x12345678u)
        sink[blockIdx.x] = acc;
}

/* The decode pattern: H heads of RB-byte rows interleaved (row r of head h at (r H + h) RB);
 * block b owns head b % H and run b / H of the rows; tiles of TR rows, STG stages. */
enum { RB = 256, H = 8, TR = 16 };

template <int STG, bool BULK> __global__ void rows_read(const char *src, int64_t rows, uint32_t *sink)
{
    extern __shared__ uint4 smem[];
    char *buf = reinterpret_cast<char *>(smem);
    __shared__ uint64_t full[STG];
    constexpr int TB = TR * RB; /* bytes a tile */
    const int h = blockIdx.x % H, runs = gridDim.x / H, run = blockIdx.x / H;
    const int64_t tiles = rows / TR, t0 = tiles * run / runs, t1 = tiles * (run + 1) / runs;
    uint32_t acc = 0;
    if (BULK) {
        if (threadIdx.x == 0) {
            for (int s = 0; s < STG; s++)
                mbar_init(&full[s], 1);
            mbar_fence_init();
        }
        __syncthreads();
        if (threadIdx.x >= 32)
            return;
        auto issue = [&](int64_t t) { /* lanes 0-15 copy a row each */
            const int s = (int)((t - t0) % STG);
            if (threadIdx.x == 0)
                mbar_arrive_expect_tx(&full[s], TB);
            __syncwarp();
            if (threadIdx.x < TR)
                bulk_load(buf + s * TB + threadIdx.x * RB, src + ((t * TR + threadIdx.x) * H + h) * RB, RB, &full[s]);
        };
        for (int64_t t = t0; t < t1 && t < t0 + STG; t++)
            issue(t);
        for (int64_t t = t0; t < t1; t++) {
            const int s = (int)((t - t0) % STG);
            mbar_wait(&full[s], ((t - t0) / STG) & 1);
            acc ^= *reinterpret_cast<const volatile uint32_t *>(buf + s * TB + threadIdx.x * 4);
            __syncwarp();
            if (t + STG < t1)
                issue(t + STG);
        }
    } else {
        auto issue = [&](int64_t t) {
            if (t < t1)
                for (int i = threadIdx.x; i < TB / 16; i += blockDim.x) {
                    const int r = i / (RB / 16), c = i % (RB / 16);
                    ptx_cp_async_16(buf + ((t - t0) % STG) * TB + i * 16, src + ((t * TR + r) * H + h) * RB + c * 16,
                                    true);
                }
            ptx_cp_async_commit();
        };
        for (int s = 0; s < STG - 1; s++)
            issue(t0 + s);
        for (int64_t t = t0; t < t1; t++) {
            ptx_cp_async_wait<STG - 2>();
            __syncthreads();
            acc ^= *reinterpret_cast<const uint32_t *>(buf + ((t - t0) % STG) * TB + (threadIdx.x % 64) * 16);
            issue(t + STG - 1);
        }
    }
    if (acc == 0x12345678u)
        sink[blockIdx.x] = acc;
}

/* The int8 decode's streams: block b owns one (sequence, head) of a [seqs, heads, keys] cache
 * (HND) of one-byte codes, D = 128 a key, and 4 warps take interleaved tiles of 16 keys, each
 * through its own cp.async ring of 4 stages: per tile 2 KB of K codes and 2 KB of V codes and,
 * with SCALES, the tile's 16 K and 16 V scales (64 bytes each, from [seqs, heads, keys]
 * floats), as the tensor-core decode kernel loads them. */
enum { QT = 16, QD = 128, QSTG = 4 };

template <bool SCALES>
__global__ void int8_decode_read(const char *k, const char *v, const float *ks, const float *vs, int keys,
                                 uint32_t *sink)
{
    extern __shared__ uint4 smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    char *ring = reinterpret_cast<char *>(smem) + warp * QSTG * (2 * QT * QD + 128);
    const int64_t base = (int64_t)blockIdx.x * keys;
    const int tiles = keys / QT;
    auto issue = [&](int i) {
        const int t = warp + i * 4;
        if (t < tiles) {
            char *st = ring + (i % QSTG) * (2 * QT * QD + 128);
            for (int c = lane; c < QT * QD / 16; c += 32) {
                ptx_cp_async_16(st + c * 16, k + (base + (int64_t)t * QT) * QD + c * 16, true);
                ptx_cp_async_16(st + QT * QD + c * 16, v + (base + (int64_t)t * QT) * QD + c * 16, true);
            }
            if (SCALES)
                ptx_cp_async_4(st + 2 * QT * QD + lane * 4,
                               (lane < 16 ? ks : vs) + base + (int64_t)t * QT + (lane & 15), true);
        }
        ptx_cp_async_commit();
    };
    for (int i = 0; i < QSTG - 1; i++)
        issue(i);
    uint32_t acc = 0;
    for (int i = 0; warp + i * 4 < tiles; i++) {
        issue(i + QSTG - 1);
        ptx_cp_async_wait<QSTG - 1>();
        __syncwarp();
        acc ^= *reinterpret_cast<const uint32_t *>(ring + (i % QSTG) * (2 * QT * QD + 128) + lane * 4);
        __syncwarp();
    }
    if (acc == 0x12345678u)
        sink[blockIdx.x] = acc;
}

static int cmp_float(const void *a, const void *b)
{
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef void (*launch_fn)(const char *src, int64_t bytes, int grid, uint32_t *sink);

static int g_reps = 30;
static void *g_flush; /* --flush: the buffer read before each timed launch (fai-bench's read flush) */
static uint32_t *g_flush_sink;

__global__ void empty_kernel() {}

/* The median time of --reps calls of run(ctx), each between two events, after three untimed. */
static double median_ms(void (*run)(const void *), const void *ctx)
{
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float t[200];
    const int reps = g_reps < 200 ? g_reps : 200;
    for (int i = -3; i < reps; i++) {
        if (g_flush)
            CK(bench_read_flush(g_flush, g_flush_sink, 0));
        CK(cudaEventRecord(e0));
        run(ctx);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        if (i >= 0)
            CK(cudaEventElapsedTime(&t[i], e0, e1));
    }
    CK(cudaGetLastError());
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    qsort(t, reps, sizeof(float), cmp_float);
    return t[reps / 2];
}

/* blocks 0: not a kernel of this file */
static void print_row(const char *name, int blocks, double ms, double bytes)
{
    char b[16] = "     -";
    if (blocks > 0)
        snprintf(b, sizeof b, "%6d", blocks);
    printf("%-28s %s blocks  %8.1f us  %7.1f GB/s\n", name, b, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
}

struct launch_ctx {
    launch_fn fn;
    const char *src;
    int64_t bytes;
    int grid;
    uint32_t *sink;
};

static void run_empty(const void *) { empty_kernel<<<1, 32>>>(); }

static void run_launch(const void *p)
{
    const launch_ctx *c = (const launch_ctx *)p;
    c->fn(c->src, c->bytes, c->grid, c->sink);
}

static void row(const char *name, launch_fn fn, const char *src, int64_t bytes, int grid, uint32_t *sink)
{
    const launch_ctx c = {fn, src, bytes, grid, sink};
    print_row(name, grid, median_ms(run_launch, &c), (double)bytes);
}

#define CH_BYTES (16 * 1024)
template <int U> static void l_ldg(const char *s, int64_t b, int g, uint32_t *k)
{
    ldg_read<U><<<g, 512>>>((const uint4 *)s, b / 16, k);
}
template <int STG> static void l_cpasync(const char *s, int64_t b, int g, uint32_t *k)
{
    cpasync_read<STG><<<g, 256, STG * CH_BYTES>>>(s, b / CH_BYTES, CH_BYTES, k);
}
template <int STG> static void l_bulk(const char *s, int64_t b, int g, uint32_t *k)
{
    bulk_read<STG><<<g, 32, STG * CH_BYTES>>>(s, b / CH_BYTES, CH_BYTES, k);
}
template <int STG, bool BULK> static void l_rows(const char *s, int64_t b, int g, uint32_t *k)
{
    rows_read<STG, BULK><<<g, BULK ? 32 : 128, STG * TR * RB>>>(s, b / (RB * H), k);
}

struct memcpy_ctx {
    char *dst;
    const char *src;
    int64_t bytes;
};

static void run_memcpy(const void *p)
{
    const memcpy_ctx *c = (const memcpy_ctx *)p;
    CK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, 0));
}

/* The copy ceiling fai-bench reports: bytes read and written. */
static void cuda_memcpy_row(char *dst, const char *src, int64_t bytes)
{
    const memcpy_ctx c = {dst, src, bytes};
    print_row("cudaMemcpy D2D (2 x bytes)", 0, median_ms(run_memcpy, &c), 2.0 * (double)bytes);
}

struct int8_ctx {
    const char *kv;
    const float *sc;
    int64_t codes, scales; /* per K or V */
    int items, keys, smem, with_scales;
    uint32_t *sink;
};

static void run_int8(const void *p)
{
    const int8_ctx *c = (const int8_ctx *)p;
    if (c->with_scales)
        int8_decode_read<true><<<c->items, 128, c->smem>>>(c->kv, c->kv + c->codes, c->sc, c->sc + c->scales, c->keys,
                                                              c->sink);
    else
        int8_decode_read<false><<<c->items, 128, c->smem>>>(c->kv, c->kv + c->codes, c->sc, c->sc + c->scales,
                                                               c->keys, c->sink);
}

template <typename F> static void set_smem(F kernel, int bytes)
{
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

int main(int argc, char **argv)
{
    int64_t mib = 1024;
    int flush = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--flush"))
            flush = 1;
        else {
            fprintf(stderr, "usage: fai-bw-probe [--mib N] [--reps N] [--flush]\n");
            return 2;
        }
    }
    int dev, sms, major;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    const int64_t bytes = mib << 20;
    char *src, *dst;
    uint32_t *sink;
    CK(cudaMalloc(&src, bytes));
    CK(cudaMalloc(&dst, bytes));
    CK(cudaMalloc(&sink, 1 << 20));
    CK(cudaMemset(src, 0x5a, bytes));
    if (flush) {
        CK(cudaMalloc(&g_flush, BENCH_FLUSH_BYTES));
        CK(cudaMemset(g_flush, 0x33, BENCH_FLUSH_BYTES));
        g_flush_sink = sink;
    }
    printf("device: %s, %d SMs, %lld MiB read per row, median of %d%s\n", prop.name, sms, (long long)mib, g_reps,
           g_flush ? ", L2 flushed by a 256 MiB read before each" : "");
    print_row("empty kernel", 1, median_ms(run_empty, NULL), 0.0);

    cuda_memcpy_row(dst, src, bytes);
    row("ldg x4", l_ldg<4>, src, bytes, sms * 8, sink);
    row("ldg x8", l_ldg<8>, src, bytes, sms * 4, sink);
    set_smem(cpasync_read<4>, 4 * CH_BYTES);
    set_smem(cpasync_read<8>, 8 * CH_BYTES);
    row("cp.async 4 x 16K", l_cpasync<4>, src, bytes, sms * 2, sink);
    row("cp.async 8 x 16K", l_cpasync<8>, src, bytes, sms * 1, sink);
    row("cp.async 4 x 16K (x4)", l_cpasync<4>, src, bytes, sms * 3, sink);
    set_smem(rows_read<8, false>, 8 * TR * RB);
    row("rows cp.async 8 x 4K", l_rows<8, false>, src, bytes, sms / H * H * 2, sink);
    row("rows cp.async 8 x 4K (x4)", l_rows<8, false>, src, bytes, sms / H * H * 4, sink);
    if (major >= 9) {
        set_smem(bulk_read<4>, 4 * CH_BYTES);
        set_smem(bulk_read<8>, 8 * CH_BYTES);
        row("bulk 4 x 16K", l_bulk<4>, src, bytes, sms * 2, sink);
        row("bulk 8 x 16K", l_bulk<8>, src, bytes, sms * 1, sink);
        row("bulk 8 x 16K (x2)", l_bulk<8>, src, bytes, sms * 2, sink);
        row("bulk 4 x 16K (x3)", l_bulk<4>, src, bytes, sms * 3, sink);
        set_smem(rows_read<8, true>, 8 * TR * RB);
        set_smem(rows_read<16, true>, 16 * TR * RB);
        row("rows bulk 8 x 4K", l_rows<8, true>, src, bytes, sms / H * H * 2, sink);
        row("rows bulk 8 x 4K (x4)", l_rows<8, true>, src, bytes, sms / H * H * 4, sink);
        row("rows bulk 16 x 4K (x2)", l_rows<16, true>, src, bytes, sms / H * H * 2, sink);
    }
    if (mib >= 256) { /* int8 decode streams: 128 x 32 (sequence, head) items of 8192 keys */
        const int items = 128 * 32, keys = 8192;
        const int64_t codes = (int64_t)items * keys * QD, scales = (int64_t)items * keys;
        char *kv;
        float *sc;
        if (cudaMalloc(&kv, 2 * codes) == cudaSuccess && cudaMalloc(&sc, 2 * scales * sizeof(float)) == cudaSuccess) {
            CK(cudaMemset(kv, 0x11, 2 * codes));
            CK(cudaMemset(sc, 0, 2 * scales * sizeof(float)));
            const int smem = 4 * QSTG * (2 * QT * QD + 128);
            set_smem(int8_decode_read<false>, smem);
            set_smem(int8_decode_read<true>, smem);
            for (int withs = 0; withs < 2; withs++) {
                const int8_ctx c = {kv, sc, codes, scales, items, keys, smem, withs, sink};
                print_row(withs ? "int8 decode codes+scales" : "int8 decode codes only", items, median_ms(run_int8, &c),
                          2.0 * codes + (withs ? 2.0 * scales * sizeof(float) : 0.0));
            }
            CK(cudaFree(kv));
            CK(cudaFree(sc));
        } else {
            cudaGetLastError();
            printf("int8 decode streams: not enough memory\n");
        }
    }
    CK(cudaFree(src));
    CK(cudaFree(dst));
    CK(cudaFree(sink));
    if (g_flush)
        CK(cudaFree(g_flush));
    return 0;
}
