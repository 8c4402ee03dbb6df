/*
 * jsonw.c - writing JSON text into a growing buffer (see jsonw.h).
 */
#include "jsonw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(gx_jbuf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return 0;
    size_t nc = b->cap ? b->cap : 1024;
    while (nc < b->len + more + 1) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) return -1;
    b->p = np;
    b->cap = nc;
    return 0;
}

int gx_jbuf_put(gx_jbuf *b, const char *s, size_t n) {
    if (grow(b, n)) return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int gx_jbuf_puts(gx_jbuf *b, const char *s) { return gx_jbuf_put(b, s, strlen(s)); }

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

int gx_jbuf_str(gx_jbuf *b, const char *s, size_t max) {
    if (gx_jbuf_put(b, "\"", 1)) return -1;
    if (!s) s = "";
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), used = 0;
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *out = esc;
        size_t olen, adv = 1;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, olen = 2;
        } else if (c == '\n') {
            out = "\\n", olen = 2;
        } else if (c == '\t') {
            out = "\\t", olen = 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            olen = 6;
        } else if (c < 0x80) {
            size_t run = 1; /* plain ASCII: copy the run at once */
            while (i + run < n && p[i + run] >= 0x20 && p[i + run] < 0x7f && p[i + run] != '"' && p[i + run] != '\\')
                run++;
            out = (const char *)p + i, olen = run, adv = run;
            if (used + olen > max) olen = adv = max - used;
            if (!olen) break;
        } else {
            adv = utf8_len(p + i, n - i);
            if (adv) {
                out = (const char *)p + i, olen = adv;
            } else {
                out = "\\ufffd", olen = 6, adv = 1;
            }
        }
        if (used + olen > max) break;
        if (gx_jbuf_put(b, out, olen)) return -1;
        used += olen;
        i += adv;
    }
    return gx_jbuf_put(b, "\"", 1);
}

int gx_jbuf_int(gx_jbuf *b, int64_t v) {
    char t[24], *e = t + sizeof t, *p = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0) *--p = '-';
    return gx_jbuf_put(b, p, (size_t)(e - p));
}

static char *digits(char *p, unsigned v, int n) { /* v as n digits, zero-padded */
    for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
    return p + n;
}

size_t gx_time_text(int64_t ns, int frac_digits, char out[40]) {
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) frac += 1000000000, sec -= 1;
    int64_t days = sec / 86400, sod = sec % 86400;
    if (sod < 0) sod += 86400, days -= 1;
    /* civil date from days since 1970-01-01 (H. Hinnant's algorithm) */
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = (int64_t)yoe + era * 400 + (m <= 2);
    if (y < 0) y = 0;
    if (y > 9999) y = 9999;
    char *p = digits(out, (unsigned)y, 4);
    *p++ = '-';
    p = digits(p, m, 2);
    *p++ = '-';
    p = digits(p, d, 2);
    *p++ = 'T';
    p = digits(p, (unsigned)(sod / 3600), 2);
    *p++ = ':';
    p = digits(p, (unsigned)(sod / 60 % 60), 2);
    *p++ = ':';
    p = digits(p, (unsigned)(sod % 60), 2);
    if (frac_digits > 9) frac_digits = 9;
    if (frac_digits > 0) {
        unsigned f = (unsigned)frac;
        for (int i = frac_digits; i < 9; i++) f /= 10;
        *p++ = '.';
        p = digits(p, f, frac_digits);
    }
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - out);
}

int gx_jbuf_secs(gx_jbuf *b, int64_t ns) {
    uint64_t u = ns < 0 ? (uint64_t)0 - (uint64_t)ns : (uint64_t)ns;
    unsigned frac = (unsigned)(u % 1000000000u);
    char t[12], *p = t;
    *p++ = '.';
    if (!frac) {
        *p++ = '0';
    } else {
        p = digits(p, frac, 9);
        while (p[-1] == '0') p--;
    }
    /* whole seconds fit an int64 (u / 1e9 < 2^35) */
    return (ns < 0 && gx_jbuf_put(b, "-", 1)) || gx_jbuf_int(b, (int64_t)(u / 1000000000u)) ||
           gx_jbuf_put(b, t, (size_t)(p - t));
}

