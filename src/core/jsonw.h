/*
 * jsonw.h - writing JSON text into a growing buffer, for the few outputs
 * written directly instead of through jansson: the audit log (whose bytes
 * must be exactly what we hash) and the hot replies (a job's 202 body).
 * Parsing stays with jansson.
 */
#ifndef GX_JSONW_H
#define GX_JSONW_H

#include <stddef.h>
#include <stdint.h>

typedef struct gx_jbuf {
    char *p; /* NUL-terminated; owned by the caller (free) */
    size_t len, cap;
} gx_jbuf;

/* Each returns 0, or -1 when out of memory (the buffer keeps what it had). */
int gx_jbuf_put(gx_jbuf *b, const char *s, size_t n);
int gx_jbuf_puts(gx_jbuf *b, const char *s);
/* s as a JSON string ("" for NULL): '"' and '\' escaped, control
 * characters as \n, \t or \u00XX, valid UTF-8 kept, an invalid byte as
 * \ufffd; at most max escaped bytes between the quotes (cut at a whole
 * character). */
int gx_jbuf_str(gx_jbuf *b, const char *s, size_t max);
/* v as a JSON integer / a JSON number as jansson writes a real (%.17g,
 * with ".0" when it would read as an integer; null if not finite). */
int gx_jbuf_int(gx_jbuf *b, int64_t v);
int gx_jbuf_real(gx_jbuf *b, double v);

/* Unix time ns as RFC 3339 UTC with frac_digits (0-9) digits after the
 * second, e.g. "2026-11-23T04:25:22.123456Z" for 6: the text of gmtime_r +
 * strftime("%Y-%m-%dT%H:%M:%S") + ".%0*ldZ", without the libc calls (a
 * few per reply and audit record). Returns the length. */
size_t gx_time_text(int64_t ns, int frac_digits, char out[40]);

#endif
