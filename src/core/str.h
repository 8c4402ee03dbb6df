/*
 * str.h - small string helpers for hot paths.
 */
#ifndef GX_CORE_STR_H
#define GX_CORE_STR_H

#include <stddef.h>
#include <string.h>

/* snprintf(dst, cap, "%s", src) without printf's machinery (a few per
 * submit on the request path): src cut to cap - 1 bytes, always
 * terminated; nothing written when cap is 0; NULL copies as "". Returns
 * the bytes copied. */
static inline size_t gx_str_copy(char *dst, size_t cap, const char *src) {
    if (!cap) return 0;
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* A header value without the spaces and tabs around it (RFC 9110 5.5:
 * not part of the value): where it starts, and its length in *len. NULL
 * is "". */
static inline const char *gx_str_trim_ows(const char *s, size_t *len) {
    if (!s) s = "";
    s += strspn(s, " \t");
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    *len = n;
    return s;
}

#endif
