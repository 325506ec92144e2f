/* fai-bench's chunked suite: chunked prefill through a paged KV cache against one whole-prompt
 * prefill (issue 5), and the cost of reading K/V through a cache in prefill at all.
 *
 * One prompt of CH_TOKENS tokens, CH_HQ/CH_HK heads of CH_D, FP16 (--dtype bf16: BF16 tensors
 * and cache, where this build's fai_kv_append writes BF16 caches; else those rows are n/a),
 * causal (Q, K, V random normal, packed [tokens, heads, dim]), run six ways, each timed as fai_bench.c times a row
 * (256 MB L2 flush before every run, CUDA events around the calls, median):
 *   fai                   one fai_prefill over the whole prompt from packed K/V
 *   fai-chunked           CH_CHUNKS equal chunks; per chunk fai_kv_append of its K/V rows into
 *                         a paged cache (one sequence, pages of P tokens, page table scrambled),
 *                         then fai_prefill of its queries with kv_cache (seq_lens = the chunk's
 *                         end: the bottom-right-aligned causal mask over everything cached);
 *                         every call of the prompt inside one timed region
 *   fai-chunked-noappend  the same fai_prefill calls without the appends (cache already full)
 *   fai-append            the appends alone
 *   fai-paged             the whole prompt as one chunk: one fai_prefill over the paged cache
 *   fai-cache             the same over a contiguous cache: the packed K/V read as a cache of
 *                         one slot, so fai-paged / fai-cache is the cost of the page table (or,
 *                         where fai_prefill gathers a long chunk's pages into the workspace
 *                         first, of that copy) and fai-cache / fai the cost of the cache path
 * --window, --softcap, --sinks and --alibi apply to every attention call. --check compares the
 * output of every attention row (all chunks' rows for the chunked ones) with the CPU reference
 * of the whole prompt. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_check.h"
#include "bench_prefill.h"
#include "bench_report.h"
#include "bench_util.h"

#define CH_TOKENS 16384
#define CH_CHUNKS 4
#define CH_HQ 32
#define CH_HK 8
#define CH_D 128
#define CH_PAGE 16 /* the default page size (--page-size overrides it) */

enum { M_WHOLE, M_CHUNKED, M_NOAPPEND, M_APPEND, M_PAGED, M_CACHE, MODES };
static const char *const mode_backend[MODES] = {"fai",        "fai-chunked", "fai-chunked-noappend",
                                                "fai-append", "fai-paged",   "fai-cache"};
static const char *const mode_what[MODES] = {
    "whole prompt; packed K/V", "4 chunks: kv_append + prefill over the paged cache",
    "4 chunks: prefill calls only", "4 kv_append calls only", "one chunk over the paged cache",
    "one chunk over a contiguous cache"};

typedef struct chunk_ctx {
    fai_prefill_params whole;              /* M_WHOLE */
    fai_prefill_params chunk[CH_CHUNKS];   /* M_CHUNKED, M_NOAPPEND */
    fai_kv_append_params append[CH_CHUNKS];
    fai_prefill_params paged, contig;      /* M_PAGED, M_CACHE */
    fai_kv_cache cache[CH_CHUNKS + 1];     /* the paged cache, seq_lens of chunk j; [CH_CHUNKS]: all */
    fai_kv_cache contig_cache;
    int mode;
    void *ws;
    size_t ws_bytes;
} chunk_ctx;

static fai_status run_mode(const chunk_ctx *c, int mode, cudaStream_t s)
{
    if (mode == M_WHOLE)
        return fai_prefill(&c->whole, c->ws, c->ws_bytes, s);
    if (mode == M_PAGED)
        return fai_prefill(&c->paged, c->ws, c->ws_bytes, s);
    if (mode == M_CACHE)
        return fai_prefill(&c->contig, c->ws, c->ws_bytes, s);
    fai_status st = FAI_SUCCESS;
    for (int j = 0; j < CH_CHUNKS && st == FAI_SUCCESS; j++) {
        if (mode != M_NOAPPEND)
            st = fai_kv_append(&c->append[j], s);
        if (st == FAI_SUCCESS && mode != M_APPEND)
            st = fai_prefill(&c->chunk[j], c->ws, c->ws_bytes, s);
    }
    return st;
}

static int run_timed(void *ctx, cudaStream_t s)
{
    const chunk_ctx *c = ctx;
    const fai_status st = run_mode(c, c->mode, s);
    if (st == FAI_SUCCESS)
        return 0;
    fprintf(stderr, "fai-bench: chunked %s: %s: %s\n", mode_backend[c->mode], fai_status_string(st), fai_last_error());
    return 1;
}

void bench_chunked_list(const options *o)
{
    (void)o;
    printf("chunked,1,%d,%d,%d,%d,%d,1,\n", CH_TOKENS, CH_TOKENS, CH_HQ, CH_HK, CH_D);
}

void bench_chunked(const options *o, cudaStream_t s)
{
    const int N = CH_TOKENS, hq = CH_HQ, hk = CH_HK, d = CH_D, m = CH_TOKENS / CH_CHUNKS;
    const int P = o->page_size ? o->page_size : CH_PAGE, pps = (N + P - 1) / P;
    const int64_t qrow = (int64_t)hq * d, krow = (int64_t)hk * d;
    const size_t q_bytes = (size_t)N * (size_t)qrow * 2, kv_bytes = (size_t)N * (size_t)krow * 2;
    const size_t pool_bytes = (size_t)pps * P * (size_t)krow * 2;
    fprintf(stderr, "chunked: one prompt of %d tokens, %d chunks, page size %d (%.1f s)\n", N, CH_CHUNKS, P,
            bench_elapsed());

    char *q, *out, *k, *v, *kc, *vc;
    int32_t *table, *lens, *cu;
    int64_t *slots_dev;
    CK(cudaMalloc((void **)&q, q_bytes));
    CK(cudaMalloc((void **)&out, q_bytes));
    CK(cudaMalloc((void **)&k, kv_bytes));
    CK(cudaMalloc((void **)&v, kv_bytes));
    CK(cudaMalloc((void **)&kc, pool_bytes));
    CK(cudaMalloc((void **)&vc, pool_bytes));
    CK(cudaMalloc((void **)&table, sizeof(int32_t) * (size_t)pps));
    CK(cudaMalloc((void **)&lens, sizeof(int32_t) * (CH_CHUNKS + 1)));
    CK(cudaMalloc((void **)&cu, sizeof(int32_t) * 4));
    CK(cudaMalloc((void **)&slots_dev, sizeof(int64_t) * (size_t)N));
    const fai_dtype dt = o->bf16 ? FAI_DTYPE_BF16 : FAI_DTYPE_FP16;
    CK(bench_fill_16(q, (int64_t)N * qrow, o->bf16, 31, 1.0f, s));
    CK(bench_fill_16(k, (int64_t)N * krow, o->bf16, 1031, 1.0f, s));
    CK(bench_fill_16(v, (int64_t)N * krow, o->bf16, 2031, 1.0f, s));
    /* The pool starts as NaN: a read of a page the prompt never wrote shows in --check. */
    CK(cudaMemsetAsync(kc, 0xff, pool_bytes, s));
    CK(cudaMemsetAsync(vc, 0xff, pool_bytes, s));
    CK(cudaStreamSynchronize(s));
    CK(bench_page_table(table, 1, pps, 4711));
    int32_t *table_host = malloc(sizeof(int32_t) * (size_t)pps);
    int64_t *slots = malloc(sizeof(int64_t) * (size_t)N);
    if (!table_host || !slots) {
        fprintf(stderr, "fai-bench: out of host memory\n");
        exit(1);
    }
    CK(cudaMemcpy(table_host, table, sizeof(int32_t) * (size_t)pps, cudaMemcpyDeviceToHost));
    for (int t = 0; t < N; t++) /* position t of the one sequence: its page's slot */
        slots[t] = (int64_t)table_host[t / P] * P + t % P;
    CK(cudaMemcpy(slots_dev, slots, sizeof(int64_t) * (size_t)N, cudaMemcpyHostToDevice));
    int32_t lens_host[CH_CHUNKS + 1];
    for (int j = 0; j < CH_CHUNKS; j++)
        lens_host[j] = (j + 1) * m;
    lens_host[CH_CHUNKS] = N;
    CK(cudaMemcpy(lens, lens_host, sizeof lens_host, cudaMemcpyHostToDevice));
    const int32_t cu_host[4] = {0, m, 0, N}; /* cu[0..1]: a chunk; cu[2..3]: the whole prompt */
    CK(cudaMemcpy(cu, cu_host, sizeof cu_host, cudaMemcpyHostToDevice));

    fai_attention attn = fai_attention_default();
    attn.num_q_heads = hq;
    attn.num_kv_heads = hk;
    attn.head_dim = d;
    attn.softmax_scale = 1.0f / sqrtf((float)d);
    attn.alibi = o->alibi;
    bench_set_variants(&attn, o, 1);

    chunk_ctx c;
    memset(&c, 0, sizeof c);
    fai_prefill_params *w = &c.whole;
    *w = fai_prefill_params_default();
    w->attn = attn;
    w->batch = 1;
    w->causal = 1;
    w->q = (fai_tensor){q, dt, qrow, d};
    w->k = (fai_tensor){k, dt, krow, d};
    w->v = (fai_tensor){v, dt, krow, d};
    w->o = (fai_tensor){out, dt, qrow, d};
    w->cu_seqlens_q = w->cu_seqlens_k = cu + 2;
    w->cu_seqlens_q_host = cu_host + 2;
    w->total_q = w->total_k = w->max_seq_q = w->max_seq_k = N;

    /* The paged cache: one sequence, page j of it at page table[j] of the pool, [P, hk, d] pages. */
    fai_kv_cache pc;
    memset(&pc, 0, sizeof pc);
    pc.dtype = dt;
    pc.k = kc;
    pc.v = vc;
    pc.seq_stride = (int64_t)P * krow;
    pc.token_stride = krow;
    pc.head_stride = d;
    pc.capacity = N;
    pc.page_table = table;
    pc.page_table_stride = pps;
    pc.page_size = P;
    pc.num_pages = pps;
    for (int j = 0; j <= CH_CHUNKS; j++) {
        c.cache[j] = pc;
        c.cache[j].seq_lens = lens + j;
        c.cache[j].max_seq_len = lens_host[j];
    }
    /* Per chunk: its K/V rows into the cache, then its queries over the cache's first `end` tokens. */
    fai_prefill_params base = fai_prefill_params_default(); /* k, v, cu_seqlens_k NULL; totals 0 */
    base.attn = attn;
    base.k.dtype = base.v.dtype = dt;
    base.batch = 1;
    base.causal = 1;
    for (int j = 0; j < CH_CHUNKS; j++) {
        const int64_t start = (int64_t)j * m;
        fai_kv_append_params *a = &c.append[j];
        *a = fai_kv_append_params_default();
        a->num_kv_heads = hk;
        a->head_dim = d;
        a->num_tokens = m;
        a->k_new = (fai_tensor){k + 2 * start * krow, dt, krow, d};
        a->v_new = (fai_tensor){v + 2 * start * krow, dt, krow, d};
        a->slots = slots_dev + start;
        a->cache_batch = 1;
        a->cache = pc;
        fai_prefill_params *p = &c.chunk[j];
        *p = base;
        p->q = (fai_tensor){q + 2 * start * qrow, dt, qrow, d};
        p->o = (fai_tensor){out + 2 * start * qrow, dt, qrow, d};
        p->cu_seqlens_q = cu;
        p->cu_seqlens_q_host = cu_host;
        p->total_q = p->max_seq_q = m;
        p->kv_cache = &c.cache[j];
    }
    c.paged = base;
    c.paged.q = w->q;
    c.paged.o = w->o;
    c.paged.cu_seqlens_q = cu + 2;
    c.paged.cu_seqlens_q_host = cu_host + 2;
    c.paged.total_q = c.paged.max_seq_q = N;
    c.paged.kv_cache = &c.cache[CH_CHUNKS];
    /* The packed K/V as a contiguous cache of one slot of N tokens. */
    c.contig_cache = pc;
    c.contig_cache.k = k;
    c.contig_cache.v = v;
    c.contig_cache.seq_stride = (int64_t)N * krow;
    c.contig_cache.page_table = NULL;
    c.contig_cache.page_table_stride = 0;
    c.contig_cache.page_size = 0;
    c.contig_cache.num_pages = 0;
    c.contig_cache.seq_lens = lens + CH_CHUNKS;
    c.contig_cache.max_seq_len = N;
    c.contig = c.paged;
    c.contig.kv_cache = &c.contig_cache;

    /* Validation and one untimed run of each mode, the chunked one first (it fills the cache
     * the others read). A refusal of the not-supported kind is reported as n/a. */
    static const int order[MODES] = {M_CHUNKED, M_WHOLE, M_NOAPPEND, M_APPEND, M_PAGED, M_CACHE};
    fai_status st[MODES];
    char why[MODES][300];
    for (int i = 0; i < MODES; i++) {
        st[i] = FAI_SUCCESS;
        why[i][0] = '\0';
    }
    /* One workspace for every call: the largest any of them asks for (a paged cache may be
     * gathered into it, a decode split would use it). */
    size_t ws = 0, need = 0;
    st[M_WHOLE] = fai_prefill_workspace_size(w, &ws);
    const fai_prefill_params *others[CH_CHUNKS + 2] = {&c.paged, &c.contig};
    for (int j = 0; j < CH_CHUNKS; j++)
        others[2 + j] = &c.chunk[j];
    for (int i = 0; i < CH_CHUNKS + 2; i++)
        if (fai_prefill_workspace_size(others[i], &need) == FAI_SUCCESS && need > ws)
            ws = need;
    if (ws > 0) {
        CK(cudaMalloc(&c.ws, ws));
        c.ws_bytes = ws;
    }
    for (int oi = 0; oi < MODES; oi++) {
        const int i = order[oi];
        if (st[i] == FAI_SUCCESS && (i == M_NOAPPEND || i == M_PAGED) && st[M_CHUNKED] != FAI_SUCCESS) {
            st[i] = st[M_CHUNKED]; /* the paged cache was never filled */
            snprintf(why[i], sizeof why[i], "n/a: the chunked run failed");
            continue;
        }
        if (st[i] == FAI_SUCCESS)
            st[i] = run_mode(&c, i, s);
        if (st[i] != FAI_SUCCESS && !why[i][0]) {
            snprintf(why[i], sizeof why[i], "%s: %s", fai_status_string(st[i]), fai_last_error());
            for (char *t = why[i]; *t; t++)
                if (*t == ',' || *t == '\n')
                    *t = ';';
        }
        if (st[i] != FAI_SUCCESS && FAI_STATUS_CATEGORY(st[i]) != FAI_ERROR_NOT_SUPPORTED &&
            strncmp(why[i], "n/a", 3)) {
            fprintf(stderr, "fai-bench: chunked %s: %s\n", mode_backend[i], why[i]);
            exit(1);
        }
    }
    CK(cudaStreamSynchronize(s));

    float ms[MODES];
    for (int i = 0; i < MODES; i++) {
        ms[i] = -1.0f;
        if (st[i] != FAI_SUCCESS)
            continue;
        c.mode = i;
        fprintf(stderr, "chunked: timing %s (%.1f s)\n", mode_backend[i], bench_elapsed());
        if ((ms[i] = time_median(run_timed, &c, o->warmup, o->reps, s)) < 0)
            exit(1);
    }

    /* --check: each attention mode against one reference of the whole prompt. */
    char check[MODES][300], verdict[MODES][8];
    for (int i = 0; i < MODES; i++) {
        check[i][0] = '\0';
        verdict[i][0] = '\0';
    }
    if (o->check) {
        const int64_t q_start = 0, k_start = 0;
        const int seq = N;
        check_problem cp;
        memset(&cp, 0, sizeof cp);
        cp.batch = 1;
        cp.hq = hq;
        cp.hk = hk;
        cp.d = d;
        cp.causal = 1;
        cp.alibi = o->alibi;
        cp.scale = attn.softmax_scale;
        cp.q = q;
        cp.k = k;
        cp.v = v;
        cp.o = out;
        cp.q_token_stride = qrow;
        cp.k_token_stride = krow;
        cp.k_head_stride = d;
        cp.q_start = &q_start;
        cp.k_start = &k_start;
        cp.seq_q = &seq;
        cp.seq_k = &seq;
        cp.total_q = N;
        cp.bf16 = o->bf16;
        check_set_variants(&cp, &attn, bench_sinks_host());
        fprintf(stderr, "chunked: computing the reference (%.1f s)\n", bench_elapsed());
        check_ref *ref = check_prepare(&cp, s);
        for (int i = 0; i < MODES; i++) {
            if (i == M_APPEND || st[i] != FAI_SUCCESS) {
                snprintf(verdict[i], sizeof verdict[i], "n/a");
                continue;
            }
            c.mode = i;
            check_call(ref, &cp, run_timed, &c, s, check[i], sizeof check[i], verdict[i]);
            fprintf(stderr, "chunked: check %s: %s\n", mode_backend[i], check[i]);
        }
        check_free(ref);
    }

    /* FLOPs: the causal pairs (the whole prompt as guides/benchmarks.md counts it, N^2 / 2; each
     * chunk's unmasked pairs exactly); bytes: Q, K, V and O once; appends: rows read + written. */
    double chunk_pairs = 0;
    for (int j = 0; j < CH_CHUNKS; j++)
        chunk_pairs += bench_pairs(m, lens_host[j], 1, &attn);
    const double whole_pairs = bench_pairs(N, N, 1, &attn);
    double flops[MODES], bytes[MODES];
    const double attn_bytes = 2.0 * (2.0 * N * qrow + 2.0 * N * krow);
    for (int i = 0; i < MODES; i++) {
        const int chunked = i == M_CHUNKED || i == M_NOAPPEND;
        flops[i] = i == M_APPEND ? -1.0 : 4.0 * hq * d * (chunked ? chunk_pairs : whole_pairs);
        bytes[i] = i == M_APPEND ? 2.0 * (2.0 * N * krow * 2) + 8.0 * N : attn_bytes;
    }

    printf("\nchunked: one prompt of %d tokens, %d/%d heads, d %d, causal, %s%s; %d chunks of %d through a paged\n"
           "cache (page %d, scrambled page table); x whole = time / the whole prompt's from packed K/V\n",
           N, hq, hk, d, o->bf16 ? "BF16" : "FP16", o->alibi ? ", ALiBi" : "", CH_CHUNKS, m, P);
    char vnote[120] = "";
    bench_variant_note(vnote, sizeof vnote, o, &attn);
    if (*vnote)
        printf("variants: %s\n", vnote);
    printf("%-22s %10s %9s %8s %8s%s\n", "backend", "ms", "TFLOP/s", "GB/s", "x whole", o->check ? "  check" : "");
    for (int i = 0; i < MODES; i++) {
        char note[400] = "";
        bench_note_add(note, sizeof note, mode_what[i]);
        if (i != M_WHOLE && i != M_CACHE) { /* the rows that use the paged cache */
            char w2[64];
            snprintf(w2, sizeof w2, "page %d", P);
            bench_note_add(note, sizeof note, w2);
        }
        if (ms[i] >= 0 && ms[M_WHOLE] > 0 && i != M_WHOLE) {
            char w2[64];
            snprintf(w2, sizeof w2, "x whole %.3f", ms[i] / ms[M_WHOLE]);
            bench_note_add(note, sizeof note, w2);
        }
        if (i == M_PAGED && ms[i] >= 0 && ms[M_CACHE] > 0) {
            char w2[64];
            snprintf(w2, sizeof w2, "x cache %.3f", ms[i] / ms[M_CACHE]);
            bench_note_add(note, sizeof note, w2);
        }
        bench_note_add(note, sizeof note, vnote);
        if (st[i] != FAI_SUCCESS)
            bench_note_add(note, sizeof note, why[i]);
        const int timed = ms[i] >= 0;
        const report_row row = {"chunked",
                                mode_backend[i],
                                bench_dtype_name(o),
                                1,
                                N,
                                N,
                                hq,
                                hk,
                                d,
                                1,
                                "",
                                timed ? ms[i] : -1.0,
                                timed && flops[i] > 0 ? flops[i] / (ms[i] * 1e-3) / 1e12 : -1.0,
                                timed ? bytes[i] / (ms[i] * 1e-3) / 1e9 : -1.0,
                                note,
                                verdict[i],
                                o->reps};
        report_row_write(&row);
        if (!timed) {
            printf("%-22s n/a: %s\n", mode_backend[i], why[i]);
            continue;
        }
        char tf[16], ratio[16];
        if (flops[i] > 0)
            snprintf(tf, sizeof tf, "%9.1f", flops[i] / (ms[i] * 1e-3) / 1e12);
        else
            snprintf(tf, sizeof tf, "%9s", "");
        if (ms[M_WHOLE] > 0)
            snprintf(ratio, sizeof ratio, "%8.3f", ms[i] / ms[M_WHOLE]);
        else
            snprintf(ratio, sizeof ratio, "%8s", "n/a");
        printf("%-22s %10.4f %s %8.0f %s%s%s\n", mode_backend[i], ms[i], tf, bytes[i] / (ms[i] * 1e-3) / 1e9, ratio,
               *check[i] ? "  " : "", check[i]);
    }
    if (ms[M_PAGED] > 0 && ms[M_CACHE] > 0)
        printf("paging in prefill: fai-paged / fai-cache %.3f, fai-paged / fai %.3f\n", ms[M_PAGED] / ms[M_CACHE],
               ms[M_WHOLE] > 0 ? ms[M_PAGED] / ms[M_WHOLE] : -1.0);
    fflush(stdout);

    free(table_host);
    free(slots);
    cudaFree(c.ws);
    cudaFree(q);
    cudaFree(out);
    cudaFree(k);
    cudaFree(v);
    cudaFree(kc);
    cudaFree(vc);
    cudaFree(table);
    cudaFree(lens);
    cudaFree(cu);
    cudaFree(slots_dev);
    fprintf(stderr, "chunked: done (%.1f s)\n", bench_elapsed());
}
