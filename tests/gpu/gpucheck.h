/*
 * gpucheck.h - the check counter of the plain-C GPU tests (the GPU machine
 * has no cmocka): CHECK(cond, fmt, ...) counts a pass or prints the failure
 * with its line; main prints "N passed, M failed" and exits 1 on failures.
 */
#ifndef GX_GPUCHECK_H
#define GX_GPUCHECK_H

#include <stdio.h>

static int passed, failed;
#define CHECK(cond, ...)                                \
    do {                                                \
        if (cond) {                                     \
            passed++;                                   \
        } else {                                        \
            failed++;                                   \
            printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                        \
            printf("\n");                               \
        }                                               \
    } while (0)

#endif
