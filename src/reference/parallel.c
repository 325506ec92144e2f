/* parallel.c: a parallel loop for the host-side work of tests and tools (random inputs,
 * references), which on the device machine's 16 cores otherwise takes most of a test's time.
 * Chunks are handed out one at a time, so uneven chunks (sequences of different lengths)
 * still share the threads evenly. */
#define _POSIX_C_SOURCE 200809L
#include "reference.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

enum { MAX_THREADS = 64 };

typedef struct loop {
    int64_t count, grain;
    atomic_llong next; /* the first item of the next chunk to hand out */
    fai_ref_range_fn fn;
    void *ctx;
} loop;

/* Set on the threads of a loop that runs on more than one: a loop inside one of its chunks
 * (a reference called from a parallel test loop) stays on its thread. */
static _Thread_local int g_in_loop;

static void *worker(void *arg)
{
    loop *l = arg;
    g_in_loop = 1;
    for (;;) {
        const int64_t first = (int64_t)atomic_fetch_add(&l->next, (long long)l->grain);
        if (first >= l->count)
            return NULL;
        l->fn(first, first + l->grain < l->count ? first + l->grain : l->count, l->ctx);
    }
}

int fai_ref_threads(void)
{
    const char *env = getenv("FAI_REF_THREADS");
    const long n = env && *env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

int64_t fai_ref_grain(int64_t item_work, int64_t chunk_work)
{
    return item_work >= chunk_work ? 1 : chunk_work / (item_work > 1 ? item_work : 1);
}

void fai_ref_parallel_for(int64_t count, int64_t grain, fai_ref_range_fn fn, void *ctx)
{
    if (count <= 0)
        return;
    if (grain < 1)
        grain = 1;
    loop l = {count, grain, 0, fn, ctx};
    const int64_t chunks = (count - 1) / grain + 1;
    /* (one chunk asks nothing of the system: some callers draw one value at a time, and
     * sysconf reads a file) */
    const int cores = g_in_loop || chunks == 1 ? 1 : fai_ref_threads();
    const int threads = chunks < cores ? (int)chunks : cores;
    if (threads == 1) {
        for (int64_t first = 0; first < count; first += grain)
            fn(first, first + grain < count ? first + grain : count, ctx);
        return;
    }
    pthread_t t[MAX_THREADS];
    int started = 0;
    for (int i = 1; i < threads; i++) /* a thread that fails to start leaves its share to the rest */
        started += pthread_create(&t[started], NULL, worker, &l) == 0;
    const int outer = g_in_loop;
    worker(&l);
    g_in_loop = outer; /* (this thread's loop is done) */
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}
