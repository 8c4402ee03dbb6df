/*
 * gexec_err.h - error codes shared by every gexec library and tool.
 *
 * Errors are negative ints generated from one X-macro list. Codes are
 * append-only: never renumber or reuse one, since they travel over the API
 * (by name) and are stored with failed jobs. gx_strerror() gives a short
 * human text, gx_err_name() the stable symbolic name ("GX_EINVAL").
 *
 * Detail for humans (which field, what is wrong) travels in a gx_error that
 * most calls accept as an optional last argument.
 */
#ifndef GEXEC_ERR_H
#define GEXEC_ERR_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, text) */
#define GX_ERRNO_MAP(X)                                                      \
    X(OK, 0, "success")                                                      \
    X(EINVAL, -1, "invalid argument")                                        \
    X(ENOMEM, -2, "out of memory")                                           \
    X(ENOTFOUND, -3, "not found")                                            \
    X(EEXIST, -4, "already exists")                                          \
    X(ECYCLE, -5, "dependency cycle")                                        \
    X(ECANCELED, -6, "cancelled")                                            \
    X(ETIMEDOUT, -7, "timed out")                                            \
    X(EBUSY, -8, "busy")                                                     \
    X(ESTATE, -9, "operation not allowed in this state")                     \
    X(ELIMIT, -10, "limit exceeded")                                         \
    X(EUNSUPPORTED, -11, "not supported")                                    \
    X(EIO, -12, "input/output error")                                        \
    X(EFORMAT, -13, "malformed data")                                        \
    X(EKERNEL, -14, "kernel failed")                                         \
    X(ENODEVICE, -15, "no device can run this job")                          \
    X(EDEPFAILED, -16, "a dependency did not succeed")                       \
    X(ECLOSED, -17, "engine is shutting down")                               \
    X(ETRANSIENT, -18, "transient failure, may be retried")                  \
    X(EDEVICE, -19, "device fault")                                          \
    X(EOVERFLOW, -20, "value too large")                                     \
    X(EABI, -21, "incompatible plugin ABI")                                  \
    X(EPERM, -22, "permission denied")                                       \
    X(EAUTH, -23, "authentication required")                                 \
    X(EQUOTA, -24, "quota exceeded")                                         \
    X(ESTORE, -25, "store failure")

enum {
#define GX__ERR_ENUM(name, val, text) GX_##name = (val),
    GX_ERRNO_MAP(GX__ERR_ENUM)
#undef GX__ERR_ENUM
};

/* Human text for an error code. Never NULL; unknown codes give
 * "unknown error". The string is static. Thread-safe. */
const char *gx_strerror(int err);

/* Symbolic name ("GX_EINVAL") for an error code; "GX_EUNKNOWN" if unknown.
 * Static string. Thread-safe. */
const char *gx_err_name(int err);

/* Detail of a failed call, filled by calls that take one (may be NULL).
 * field names the offending input in dotted form ("inputs.x.shape[1]",
 * "args.a", "priority"); empty when no single field is at fault. pos is a
 * byte offset for parsers, or -1. */
typedef struct gx_error {
    int code;          /* the GX_E* code also returned by the call */
    long pos;          /* byte offset for parse errors, -1 otherwise */
    char field[96];    /* offending field, "" when none */
    char message[256]; /* human message, names the problem */
} gx_error;

/* Clear an error struct (NULL is fine). */
void gx_error_clear(gx_error *e);

/* Set code, field (may be NULL) and a printf-style message; returns code so
 * callers can write `return gx_error_set(e, GX_EINVAL, "args.a", "...")`.
 * e may be NULL, in which case only code is returned. */
int gx_error_set(gx_error *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Make s valid UTF-8 in place: every byte that does not start a complete,
 * well-formed sequence becomes '?'. gx_error_set applies it to field and
 * message. */
void gx_utf8_fix(char *s);

#ifdef __cplusplus
}
#endif
#endif
