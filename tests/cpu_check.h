/* The CPU tests' check: CHECK(cond, printf-style message) counts a failure in `failures` and
 * prints where it happened; FAKE(n) is a fake, 16-byte aligned device address for argument
 * checks that never dereference it. */
#ifndef FAI_CPU_CHECK_H
#define FAI_CPU_CHECK_H

#include <stdint.h>
#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            failures++;                                                    \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
        }                                                                  \
    } while (0)

#define FAKE(n) ((void *)(uintptr_t)(0x100000u * (n)))

#endif
