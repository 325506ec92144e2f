/* Internal: setting the per-thread error message that fai_last_error() returns. */
#ifndef FAI_ERROR_H
#define FAI_ERROR_H

#include "fai.h"

#if defined(__GNUC__)
#define FAI_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define FAI_PRINTF_LIKE(f, a)
#endif

/* Returns the status of `expr` from the calling function when it is not FAI_SUCCESS. */
#define FAI_TRY(expr)                        \
    do {                                     \
        fai_status fai_try_s_ = (expr);      \
        if (fai_try_s_ != FAI_SUCCESS)       \
            return fai_try_s_;               \
    } while (0)

#ifdef __cplusplus
extern "C" {
#endif

/* Clears this thread's message; every public entry point calls it first. */
void fai_error_clear(void);

/* Formats this thread's message and returns `status`, so a check reads
 *   return fai_error(FAI_ERROR_BAD_PARAM_SHAPE, "%s: batch (%d) is negative", fn, batch); */
fai_status fai_error(fai_status status, const char *fmt, ...) FAI_PRINTF_LIKE(2, 3);

/* A failed CUDA runtime call (err: its cudaError_t) as fai's status and message, which is
 * fmt's text followed by the CUDA error's. The error is also taken off the runtime's last-error
 * slot, so the caller's next cudaGetLastError() does not report it a second time, against an
 * unrelated kernel. Two kinds of error change the message or the status:
 *  - a sticky one (an illegal address, a trap, ...) cannot come from the call itself: the
 *    context had already failed in earlier asynchronous work, which the message says;
 *  - no code for this device in the build (cudaErrorNoKernelImageForDevice,
 *    cudaErrorInvalidDeviceFunction) gives FAI_ERROR_NOT_SUPPORTED_DEVICE. */
fai_status fai_cuda_error(fai_status status, int err, const char *fmt, ...) FAI_PRINTF_LIKE(3, 4);

#ifdef __cplusplus
}
#endif

#endif
