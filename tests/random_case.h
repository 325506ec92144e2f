/* What the GPU tests' --random modes share: the draw of a case's heads. */
#ifndef FAI_TEST_RANDOM_CASE_H
#define FAI_TEST_RANDOM_CASE_H

#include "reference.h"

/* Drawn in this order: a head dim of 64, 96, 128 or 256; 1, 2, 4 or 8 KV heads; hq = hk x a
 * group of 1 (twice as likely), 2, 3, 4, 5, 7 or 8, and 16 too when max_group is 16. */
static inline void random_heads(fai_ref_rng *r, int max_group, int *d, int *hq, int *hk)
{
    static const int dims[] = {64, 96, 128, 256}, kv_heads[] = {1, 2, 4, 8};
    static const int groups[] = {1, 1, 2, 3, 4, 5, 7, 8, 16};
    *d = dims[fai_ref_rng_below(r, 4)];
    *hk = kv_heads[fai_ref_rng_below(r, 4)];
    *hq = *hk * groups[fai_ref_rng_below(r, max_group >= 16 ? 9 : 8)];
}

#endif
