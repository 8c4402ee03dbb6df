/*
 * errclass.c - the error classification table (see gexec_errclass.h).
 *
 * One row per GX_E* code. Adding a code to GX_ERRNO_MAP without a row here
 * fails test_errclass, so every code is classified on purpose.
 *
 * Choices worth a word:
 *   GX_ENOMEM     transient: host memory runs short for a moment (outputs of
 *                 a large batch); a later attempt usually finds it. The API
 *                 answers 503 + Retry-After, as docs/api.md always said.
 *   GX_ETIMEDOUT  transient when a kernel reports it (the device did not
 *                 answer in time); a job's own run timeout ends the job in
 *                 the timer and never goes through this table.
 *   GX_EKERNEL    permanent for the job: the kernel refused or failed on
 *                 this job's input and said why. It counts against no
 *                 breaker: one tenant's bad input must not hold back every
 *                 other tenant's jobs of the same kernel.
 *   GX_ETRANSIENT counts against the kernel's breaker: a kernel that keeps
 *                 failing to get what it needs (memory, a busy device)
 *                 stops being fed for a while.
 *   GX_EDEVICE    counts against the device's breaker only: when one GPU
 *                 breaks, every kernel that ran there would otherwise be
 *                 held back too, CPU fallback included. A job that keeps
 *                 faulting devices is poison detection's business.
 *   GX_EIO        store class: reading or writing the store or a blob.
 */
#include <stdio.h>
#include <string.h>

#include "gexec/gexec_errclass.h"

#define T GX_ECLASS_TRANSIENT
#define P GX_ECLASS_PERMANENT
#define D GX_ECLASS_DEVICE
#define S GX_ECLASS_STORE
#define BD GX_EBRK_DEVICE
#define BK GX_EBRK_KERNEL

/* code, class, HTTP status, Retry-After seconds, breakers */
static const gx_errclass_info table[] = {
    {GX_OK, GX_ECLASS_NONE, 200, 0, 0},
    {GX_EINVAL, P, 400, 0, 0},
    {GX_ENOMEM, T, 503, 1, 0},
    {GX_ENOTFOUND, P, 404, 0, 0},
    {GX_EEXIST, P, 409, 0, 0},
    {GX_ECYCLE, P, 400, 0, 0},
    {GX_ECANCELED, P, 500, 0, 0},
    {GX_ETIMEDOUT, T, 504, 0, 0},
    {GX_EBUSY, T, 503, 1, 0},
    {GX_ESTATE, P, 409, 0, 0},
    {GX_ELIMIT, P, 429, 0, 0},
    {GX_EUNSUPPORTED, P, 422, 0, 0},
    {GX_EIO, S, 500, 0, 0},
    {GX_EFORMAT, P, 400, 0, 0},
    {GX_EKERNEL, P, 500, 0, 0},
    {GX_ENODEVICE, P, 422, 0, 0},
    {GX_EDEPFAILED, P, 409, 0, 0},
    {GX_ECLOSED, T, 503, 1, 0},
    {GX_ETRANSIENT, T, 503, 0, BK},
    {GX_EDEVICE, D, 500, 0, BD},
    {GX_EOVERFLOW, P, 400, 0, 0},
    {GX_EABI, P, 500, 0, 0},
    {GX_EPERM, P, 403, 0, 0},
    {GX_EAUTH, P, 401, 0, 0},
    {GX_EQUOTA, P, 429, 0, 0},
    {GX_ESTORE, S, 503, 1, 0},
};

#define NROWS ((int)(sizeof table / sizeof table[0]))

gx_errclass_info gx_errclass_of(int code) {
    /* rows are in code order: 0, -1, -2, ... */
    if (code <= 0 && -code < NROWS && table[-code].code == code) return table[-code];
    for (int i = 0; i < NROWS; i++)
        if (table[i].code == code) return table[i];
    return (gx_errclass_info){code, GX_ECLASS_PERMANENT, 500, 0, 0};
}

gx_errclass gx_errclass_get(int code) { return gx_errclass_of(code).cls; }

const char *gx_errclass_name(gx_errclass c) {
    static const char *const n[] = {"none", "transient", "permanent", "device", "store"};
    return (unsigned)c < sizeof n / sizeof n[0] ? n[c] : "unknown";
}

int gx_errclass_retryable(int code) {
    gx_errclass c = gx_errclass_get(code);
    return c == GX_ECLASS_TRANSIENT || c == GX_ECLASS_DEVICE || c == GX_ECLASS_STORE;
}

const gx_errclass_info *gx_errclass_table(int *n) {
    if (n) *n = NROWS;
    return table;
}

/* Append s to buf (cap bytes, always terminated); *len counts every byte. */
static void put(char *buf, size_t cap, size_t *len, const char *s) {
    size_t k = strlen(s);
    if (buf && *len + 1 < cap) {
        size_t room = cap - 1 - *len;
        memcpy(buf + *len, s, k < room ? k : room);
    }
    *len += k;
}

size_t gx_errclass_table_markdown(char *buf, size_t cap) {
    size_t len = 0;
    char line[256];
    put(buf, cap, &len, "| code | class | HTTP status | Retry-After | counts against breaker |\n");
    put(buf, cap, &len, "| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < NROWS; i++) {
        const gx_errclass_info *r = &table[i];
        const char *brk = r->breaker == GX_EBRK_DEVICE   ? "device"
                          : r->breaker == GX_EBRK_KERNEL ? "kernel"
                          : r->breaker                   ? "device, kernel"
                                                         : "-";
        char ra[16] = "-";
        if (r->retry_after_s > 0) snprintf(ra, sizeof ra, "%d s", r->retry_after_s);
        snprintf(line, sizeof line, "| `%s` | %s | %d | %s | %s |\n", gx_err_name(r->code), gx_errclass_name(r->cls),
                 r->http_status, ra, brk);
        put(buf, cap, &len, line);
    }
    if (buf && cap) buf[len < cap ? len : cap - 1] = '\0';
    return len;
}
