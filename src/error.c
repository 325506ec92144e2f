/* Status strings and the per-thread last-error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

#include <cuda_runtime_api.h>

/* One buffer per thread: no locks, and a message never mixes two threads' errors. */
static _Thread_local char last_error[512];

const char *fai_status_string(fai_status status)
{
    switch (status) {
#define FAI_STATUS_CASE_(name, value, text) \
    case name:                              \
        return #name ": " text;
        FAI_STATUS_LIST(FAI_STATUS_CASE_)
#undef FAI_STATUS_CASE_
    default:
        return "FAI_UNKNOWN_STATUS: not a fai_status value";
    }
}

const char *fai_last_error(void) { return last_error; }

void fai_error_clear(void) { last_error[0] = '\0'; }

fai_status fai_error(fai_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

/* Errors after which the context is unusable: they come from a kernel that already ran. */
static int sticky(cudaError_t err)
{
    switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorMisalignedAddress:
    case cudaErrorAssert:
    case cudaErrorIllegalInstruction:
    case cudaErrorHardwareStackError:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable: return 1;
    default: return 0;
    }
}

fai_status fai_cuda_error(fai_status status, int err, const char *fmt, ...)
{
    const cudaError_t e = (cudaError_t)err;
    cudaGetLastError();
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    const int no_code = e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction;
    const fai_status st = no_code ? FAI_ERROR_NOT_SUPPORTED_DEVICE : status;
    if ((size_t)n >= sizeof last_error)
        return st; /* (truncated: no room for the CUDA part) */
    snprintf(last_error + n, sizeof last_error - (size_t)n, ": %s (%s)%s", cudaGetErrorString(e), cudaGetErrorName(e),
             sticky(e) ? "; the CUDA context had already failed, in earlier asynchronous work (fai's or not)"
             : no_code ? "; this build of fai has no code for the device (CMAKE_CUDA_ARCHITECTURES)"
                       : "");
    return st;
}

int fai_version(void) { return FAI_VERSION; }
