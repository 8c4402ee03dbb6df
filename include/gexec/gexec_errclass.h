/*
 * gexec_errclass.h - what every GX_E* code means for a job and for the API:
 * one table (src/exec/errclass.c) that the engine's retry decision, the
 * circuit breakers and the HTTP status of an error all read.
 *
 * Classes:
 *   transient  the same job may succeed if tried again (device OOM, busy,
 *              timeout): retried with back-off up to max_attempts
 *   permanent  the job itself is at fault (invalid input, the kernel
 *              refuses): failed at once with the kernel's message
 *   device     the device is at fault (sticky CUDA error, ECC): the device
 *              goes to recovery and the job is re-queued as a new attempt
 *   store      the durable store failed: the API answers 503 + Retry-After
 *              and accepts nothing it cannot commit; a job is retried
 *
 * The table also says which failures count against a circuit breaker
 * (device or kernel): only those that point at the device or the kernel,
 * never bad input or a cancellation. docs/operations.md carries the same
 * table; test_errclass checks they agree. All calls are pure and
 * thread-safe.
 */
#ifndef GEXEC_ERRCLASS_H
#define GEXEC_ERRCLASS_H

#include <stddef.h>

#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gx_errclass {
    GX_ECLASS_NONE = 0,      /* GX_OK */
    GX_ECLASS_TRANSIENT = 1, /* retry with back-off */
    GX_ECLASS_PERMANENT = 2, /* fail the job at once */
    GX_ECLASS_DEVICE = 3,    /* device recovery, re-queue the job */
    GX_ECLASS_STORE = 4      /* 503 + Retry-After; retry */
} gx_errclass;

/* gx_errclass_info.breaker bits: which breaker a failure counts against. */
#define GX_EBRK_DEVICE 0x1u
#define GX_EBRK_KERNEL 0x2u

typedef struct gx_errclass_info {
    int code;            /* GX_E* */
    gx_errclass cls;
    int http_status;     /* status of an API error with this code */
    int retry_after_s;   /* > 0: API errors carry Retry-After: this many seconds */
    unsigned breaker;    /* GX_EBRK_* */
} gx_errclass_info;

/* Row of a code; codes not in the table (unknown) get a permanent row with
 * status 500 and code set to the argument. Never NULL-like: always filled. */
gx_errclass_info gx_errclass_of(int code);

/* Class of a code (gx_errclass_of(code).cls). */
gx_errclass gx_errclass_get(int code);

/* "none", "transient", "permanent", "device", "store"; "unknown". Static. */
const char *gx_errclass_name(gx_errclass c);

/* Whether a job that failed with code should get another attempt (transient,
 * device and store classes), attempts left aside. */
int gx_errclass_retryable(int code);

/* Rows of the table in code order (0, -1, -2, ...): *n gets the count. The
 * array is static. */
const gx_errclass_info *gx_errclass_table(int *n);

/* The table as Markdown (the block docs/operations.md carries). Writes at
 * most cap bytes, terminated, to buf (NULL with cap 0 to measure); returns
 * the full length without the terminator. */
size_t gx_errclass_table_markdown(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
