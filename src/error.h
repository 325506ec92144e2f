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

#ifdef __cplusplus
}
#endif

#endif
