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
/* v as a JSON integer. */
int gx_jbuf_int(gx_jbuf *b, int64_t v);
/* A duration of ns nanoseconds as JSON seconds, exactly and in the
 * shortest decimal ("0.000596208", "2.5", "0.0"; a negative one with its
 * '-'): the same double as ns / 1e9 when parsed (up to 2^53 ns), without the printf of
 * %.17g ("0.00059620799999999998"), which was a third of a reply's cost. */
int gx_jbuf_secs(gx_jbuf *b, int64_t ns);

/* Unix time ns as RFC 3339 UTC with frac_digits (0-9) digits after the
 * second, e.g. "2026-11-23T04:25:22.123456Z" for 6: the text of gmtime_r +
 * strftime("%Y-%m-%dT%H:%M:%S") + ".%0*ldZ", without the libc calls (a
 * few per reply and audit record). Returns the length. */
size_t gx_time_text(int64_t ns, int frac_digits, char out[40]);

#endif
