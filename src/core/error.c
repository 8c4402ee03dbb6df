/*
 * error.c - error code names and texts, and the gx_error detail struct.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gexec/gexec_err.h"

const char *gx_strerror(int err) {
    switch (err) {
#define GX__ERR_TEXT(name, val, text) \
    case (val):                       \
        return text;
        GX_ERRNO_MAP(GX__ERR_TEXT)
#undef GX__ERR_TEXT
    default:
        return "unknown error";
    }
}

const char *gx_err_name(int err) {
    switch (err) {
#define GX__ERR_NAME(name, val, text) \
    case (val):                       \
        return "GX_" #name;
        GX_ERRNO_MAP(GX__ERR_NAME)
#undef GX__ERR_NAME
    default:
        return "GX_EUNKNOWN";
    }
}

void gx_error_clear(gx_error *e) {
    if (!e) return;
    e->code = 0;
    e->pos = -1;
    e->field[0] = '\0';
    e->message[0] = '\0';
}

int gx_error_set(gx_error *e, int code, const char *field, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    e->pos = -1;
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}
