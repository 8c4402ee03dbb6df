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

void gx_utf8_fix(char *s) {
    unsigned char *p = (unsigned char *)s, *o = p;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        int ok = n > 0;
        for (int k = 1; ok && k < n; k++) ok = (p[k] & 0xc0) == 0x80;
        if (ok && n == 2) ok = *p >= 0xc2;                               /* overlong */
        if (ok && n == 3) ok = !(*p == 0xe0 && p[1] < 0xa0) && !(*p == 0xed && p[1] >= 0xa0);
        if (ok && n == 4) ok = *p <= 0xf4 && !(*p == 0xf0 && p[1] < 0x90) && !(*p == 0xf4 && p[1] >= 0x90);
        if (!ok) {
            *o++ = '?';
            p++;
            continue;
        }
        for (int k = 0; k < n; k++) *o++ = *p++;
    }
    *o = '\0';
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
    /* messages quote user input and may be cut mid-character: keep them
     * valid UTF-8 so they can always be sent as JSON */
    gx_utf8_fix(e->field);
    gx_utf8_fix(e->message);
    return code;
}
