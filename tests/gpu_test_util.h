/* Helpers shared by the GPU tests: skipping without a GPU, CUDA error checks, FP16 on the
 * host, and the tolerance rules of shared/guides/correctness.md. */
#ifndef FAI_GPU_TEST_UTIL_H
#define FAI_GPU_TEST_UTIL_H

#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fai.h"
#include "kv_codec.h"

#define GPU_TEST_SKIP 77

#ifdef __cplusplus
extern "C" {
#endif

/* Exits 77 (ctest: skipped) when no usable GPU is present. */
void gpu_require_device(const char *test_name);

#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) {                                                            \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,            \
                    cudaGetErrorString(e_));                                                \
            exit(2);                                                                        \
        }                                                                                   \
    } while (0)

/* IEEE binary16 <-> float on the host, round to nearest even. */
uint16_t host_float_to_half(float f);
float host_half_to_float(uint16_t h);
#define HALF_NAN 0x7fffu

/* IEEE-style bfloat16 <-> float on the host: round to nearest even, NaN kept quiet (0x7fc0
 * with the sign), overflow to infinity (checked against cuda_bf16.h's own conversion by
 * test_codec_emulation). */
uint16_t host_float_to_bf16(float f);
float host_bf16_to_float(uint16_t b);

/* Rounds x through FP16 in place (what the GPU will see) and returns the FP16 bits too. */
void round_to_half(float *x, uint16_t *bits, int64_t n);

/* One row of d FP16-exact values as a cache of `dtype` holds it (src/kv_codec.h, the code
 * fai_kv_append runs): FP16 bits (2d bytes) or codes (d bytes) into out, the int8 scale into
 * *scale (0 otherwise; bf16_scale: rounded to BF16 first, as FAI_SCALES_BF16X2 keeps it), and
 * the values the cache stands for into deq. */
void host_encode_row(fai_dtype dtype, int bf16_scale, const float *x, int d, uint8_t *out, float *scale, float *deq);

/* Keys left of every window of a prefill sequence that the window tests keep finite (the
 * rest left of the windows hold NaN: tiles outside a window are skipped, not read and masked;
 * tests/test_prefill.c's poison_unseen_keys derives it): 128, the widest key tile (the Hopper
 * kernel's); when FAI_PREFILL_SM90=0 puts every prefill row on the mma.sync kernel, that
 * kernel's own key tile for head dim d (32 or 64), so that starting one tile too far left
 * fails too. Decode rows (seq_q 1, on the decode kernels) keep 128. */
int prefill_window_margin(int d, int seq_q);

/* A rel L2 error from the squared error se2 and the reference's squared norm sr2 over n
 * elements (one sequence of a batch, say), into *rel; whether it is within tol, or, for a
 * reference of near-zero norm (a sink far above every logit), its RMS error under 1e-6.
 * n = 0: within. */
int rel_l2_within(double se2, double sr2, int64_t n, double tol, double *rel);

/* "fp16", "int8", "e4m3", "e5m2". */
const char *dtype_short(fai_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif
