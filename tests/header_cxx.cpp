// Compiles fai.h alone as C++ (extern "C" linkage, no C-only constructs), warnings as errors.
#include "fai.h"

int fai_header_cxx_check();
int fai_header_cxx_check()
{
    fai_decode_params p = fai_decode_params_default();
    return p.batch + static_cast<int>(FAI_STATUS_CATEGORY(FAI_ERROR_NOT_SUPPORTED_DTYPE));
}
