/* Compiles fai.h alone as C99 with -Wall -Wextra -Wpedantic -Werror (build-time test). */
#include "fai.h"

int fai_header_c99_check(void);
int fai_header_c99_check(void)
{
    fai_decode_params p = fai_decode_params_default();
    return p.batch + (int)FAI_STATUS_CATEGORY(FAI_ERROR_BAD_PARAM_SHAPE) + FAI_VERSION;
}
