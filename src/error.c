/* Status strings and the per-thread last-error message. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

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

int fai_version(void) { return FAI_VERSION; }
