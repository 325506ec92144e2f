/* What the GPU tests' --random modes share: the draw of a case's heads. */
#ifndef FAI_TEST_RANDOM_CASE_H
#define FAI_TEST_RANDOM_CASE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

/* N of `--random N` (argv[1], argv[2]): 0 without it; a count outside 1 .. max (or not a
 * number) stops the test with exit code 2, rather than running the tables or fewer cases. */
static inline int random_count(int argc, char **argv, int max)
{
    if (argc < 2 || strcmp(argv[1], "--random") != 0)
        return 0;
    char *end = NULL;
    const long n = argc > 2 ? strtol(argv[2], &end, 10) : 0;
    if (argc < 3 || *end != '\0' || n < 1 || n > max) {
        fprintf(stderr, "%s: --random takes a number of cases from 1 to %d (got %s)\n", argv[0], max,
                argc > 2 ? argv[2] : "nothing");
        exit(2);
    }
    return (int)n;
}

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
