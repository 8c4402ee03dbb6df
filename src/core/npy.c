/*
 * npy.c - reading and writing NumPy .npy files (format versions 1.0-3.0).
 *
 * A .npy image is a 6-byte magic, a 2-byte version, a little-endian header
 * length (u16 for 1.0, u32 for 2.0 and 3.0), a header that is the repr of a
 * Python dict with exactly the keys 'descr', 'fortran_order' and 'shape', and
 * then the raw element bytes in C order.
 *
 * The reader is written for hostile input (the daemon loads files users
 * upload, and fuzz/fuzz_npy.c throws random bytes at it): it never reads
 * outside the buffer it was given, checks every size before it allocates,
 * and reports the first problem it meets with GX_EFORMAT (malformed),
 * GX_EUNSUPPORTED (well-formed but not something gexec stores: Fortran order,
 * object/string/structured/complex dtypes) or GX_EOVERFLOW (more elements
 * than GX_ARRAY_MAX_ELEMS), with err->pos at the offending byte of the file.
 * The header grammar accepted is the subset of Python literals NumPy writes:
 * quoted strings without escapes, True/False, tuples of non-negative decimal
 * integers (with the 'L' suffix Python 2 era files carry), in any key order,
 * with optional trailing commas and whitespace.
 *
 * The writer produces the same bytes as numpy.save (NumPy 1.24): version 1.0
 * unless the header does not fit a u16 length, keys sorted, spare room after
 * the shape for in-place growth, and spaces plus '\n' so that the data starts
 * on a 64-byte boundary.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gexec/gexec_array.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
/* numpy.lib.format.GROWTH_AXIS_MAX_DIGITS: room left after the shape. */
#define NPY_GROWTH_DIGITS 21

/* What the header said, once checked. */
typedef struct npy_info {
    gx_dtype dtype;             /* element type */
    int swap;                   /* file byte order differs from the host's */
    int ndim;                   /* rank, 0..GX_MAX_DIMS */
    int64_t shape[GX_MAX_DIMS]; /* extents */
    int64_t count;              /* product of shape, <= GX_ARRAY_MAX_ELEMS */
    uint64_t nbytes;            /* count * element size */
    uint64_t data_off;          /* offset of the first data byte in the file */
} npy_info;

/* Cursor over the header dict. Positions reported are base + index, i.e.
 * offsets in the whole file. */
typedef struct hdr_scan {
    const unsigned char *p; /* header bytes (not NUL-terminated) */
    size_t n;               /* header length */
    size_t i;               /* cursor */
    long base;              /* file offset of p[0] */
    gx_error *err;
} hdr_scan;

/* Set err with a byte position; returns code. */
static int fail_at(gx_error *err, int code, const char *field, long pos, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail_at(gx_error *err, int code, const char *field, long pos, const char *fmt, ...) {
    if (!err) return code;
    char msg[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gx_error_set(err, code, field, "%s", msg);
    err->pos = pos;
    return code;
}

static int host_is_le(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- dtype descriptors ------------------------------------------------- */

/* The descriptors gexec reads and writes: kind letter and size, as in '<f4'. */
static const struct {
    char kind;
    unsigned size;
    gx_dtype dt;
} npy_types[] = {
    {'f', 2, GX_F16}, {'f', 4, GX_F32}, {'f', 8, GX_F64}, {'i', 1, GX_I8},
    {'i', 2, GX_I16}, {'i', 4, GX_I32}, {'i', 8, GX_I64}, {'u', 1, GX_U8},
    {'u', 2, GX_U16}, {'u', 4, GX_U32}, {'u', 8, GX_U64}, {'b', 1, GX_BOOL},
};

/* NumPy kinds that are valid but that gexec does not store. */
static const struct {
    char kind;
    const char *what;
} npy_unsupported_kinds[] = {
    {'O', "Python object"},   {'S', "byte string"}, {'a', "byte string"},
    {'U', "unicode string"},  {'V', "void (raw or structured)"},
    {'c', "complex"},         {'M', "datetime64"},  {'m', "timedelta64"},
};

/* Map a descr string (NUL-terminated, printable ASCII) to a dtype. at is the
 * file offset of the string's first character, for errors. */
static int descr_to_dtype(const char *d, long at, npy_info *h, gx_error *err) {
    const char *s = d;
    char order = '=';
    if (*s == '<' || *s == '>' || *s == '|' || *s == '=') order = *s++;
    char kind = *s;
    for (size_t k = 0; k < sizeof npy_unsupported_kinds / sizeof npy_unsupported_kinds[0]; k++)
        if (kind && kind == npy_unsupported_kinds[k].kind)
            return fail_at(err, GX_EUNSUPPORTED, "header.descr", at,
                           "dtype '%s' (%s) is not supported; gexec stores bool, int, uint and "
                           "float arrays",
                           d, npy_unsupported_kinds[k].what);
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
        return fail_at(err, GX_EFORMAT, "header.descr", at,
                       "'%s' is not a dtype descriptor like '<f4'", d);
    s++;
    unsigned size = 0;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++)
        if (size < 1000) size = size * 10 + (unsigned)(*s - '0');
    if (!digits || *s)
        return fail_at(err, GX_EFORMAT, "header.descr", at,
                       "'%s' is not a dtype descriptor like '<f4'", d);
    for (size_t k = 0; k < sizeof npy_types / sizeof npy_types[0]; k++) {
        if (npy_types[k].kind == kind && npy_types[k].size == size) {
            int le = host_is_le();
            h->dtype = npy_types[k].dt;
            h->swap = size > 1 && ((order == '<' && !le) || (order == '>' && le));
            return 0;
        }
    }
    static const char *const kind_names[] = {['f' - 'b'] = "float", ['i' - 'b'] = "int",
                                             ['u' - 'b'] = "uint", ['b' - 'b'] = "bool"};
    return fail_at(err, GX_EUNSUPPORTED, "header.descr", at,
                   "dtype '%s' (%u-byte %s) is not supported", d, size, kind_names[kind - 'b']);
}

/* The descr gexec writes for a dtype, in host byte order. */
static void dtype_to_descr(gx_dtype dt, char out[8]) {
    for (size_t k = 0; k < sizeof npy_types / sizeof npy_types[0]; k++) {
        if (npy_types[k].dt == dt) {
            char order = npy_types[k].size == 1 ? '|' : host_is_le() ? '<' : '>';
            snprintf(out, 8, "%c%c%u", order, npy_types[k].kind, npy_types[k].size);
            return;
        }
    }
    snprintf(out, 8, "?");
}

/* ---- shape text --------------------------------------------------------- */

/* Python's repr of a tuple of ints: "()", "(3,)", "(3, 4)". Returns the
 * length written (truncated to cap like snprintf). */
static int shape_repr(const int64_t *shape, int ndim, char *out, size_t cap) {
    size_t n = 0;
    int w = snprintf(out, cap, "(");
    n += (size_t)w;
    for (int i = 0; i < ndim; i++) {
        w = snprintf(n < cap ? out + n : NULL, n < cap ? cap - n : 0, "%s%lld", i ? ", " : "",
                     (long long)shape[i]);
        n += (size_t)w;
    }
    w = snprintf(n < cap ? out + n : NULL, n < cap ? cap - n : 0, "%s)", ndim == 1 ? "," : "");
    n += (size_t)w;
    return (int)n;
}

/* ---- header dict scanner ----------------------------------------------- */

static int hs_fail(hdr_scan *s, int code, const char *field, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int hs_fail(hdr_scan *s, int code, const char *field, size_t at, const char *fmt, ...) {
    if (!s->err) return code;
    char msg[sizeof s->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_at(s->err, code, field, s->base + (long)at, "%s", msg);
}

static void hs_ws(hdr_scan *s) {
    while (s->i < s->n &&
           (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' || s->p[s->i] == '\r'))
        s->i++;
}

static int hs_peek(const hdr_scan *s) { return s->i < s->n ? s->p[s->i] : -1; }

static int is_ident(int c) {
    return c == '_' || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Describe what is at the cursor for "expected X, found Y" messages: a word
 * (up to 16 characters), a string, one character or a byte. */
static const char *hs_found(const hdr_scan *s, char buf[24]) {
    int c = hs_peek(s);
    if (c < 0) return "the end of the header";
    if (c == '\'' || c == '"') return "a string";
    if (is_ident(c)) {
        size_t n = 0;
        while (n < 16 && s->i + n < s->n && is_ident(s->p[s->i + n])) n++;
        int more = s->i + n < s->n && is_ident(s->p[s->i + n]);
        snprintf(buf, 24, "'%.*s%s'", (int)n, (const char *)s->p + s->i, more ? "..." : "");
    } else if (c >= 0x21 && c < 0x7f) {
        snprintf(buf, 24, "'%c'", c);
    } else {
        snprintf(buf, 24, "byte 0x%02x", (unsigned)c);
    }
    return buf;
}

/* A quoted string at the cursor, copied into out (cap bytes, NUL-terminated;
 * longer strings are cut and end with "..."). */
static int hs_string(hdr_scan *s, const char *field, char *out, size_t cap) {
    size_t start = s->i;
    int q = hs_peek(s);
    if (q != '\'' && q != '"') {
        char fb[24];
        return hs_fail(s, GX_EFORMAT, field, s->i, "expected a quoted string, found %s",
                       hs_found(s, fb));
    }
    s->i++;
    size_t len = 0;
    for (;;) {
        if (s->i >= s->n)
            return hs_fail(s, GX_EFORMAT, field, start, "unterminated string in the header");
        unsigned c = s->p[s->i];
        if (c == (unsigned)q) break;
        if (c == '\\')
            return hs_fail(s, GX_EFORMAT, field, s->i,
                           "escape sequences in header strings are not supported");
        if (c < 0x20 || c >= 0x7f)
            return hs_fail(s, GX_EFORMAT, field, s->i,
                           "byte 0x%02x in a header string (only printable ASCII is allowed)", c);
        if (len + 1 < cap) out[len] = (char)c;
        len++;
        s->i++;
    }
    s->i++; /* closing quote */
    if (len + 1 <= cap) {
        out[len] = '\0';
    } else {
        out[cap - 1] = '\0';
        if (cap >= 4) memcpy(out + cap - 4, "...", 3);
    }
    return 0;
}

/* True if the bytes at the cursor are the identifier word (not a prefix of a
 * longer identifier). */
static int hs_word(hdr_scan *s, const char *word) {
    size_t wl = strlen(word);
    if (s->n - s->i < wl || memcmp(s->p + s->i, word, wl)) return 0;
    if (s->i + wl < s->n && is_ident(s->p[s->i + wl])) return 0;
    s->i += wl;
    return 1;
}

static int hs_fortran(hdr_scan *s) {
    size_t at = s->i;
    if (hs_word(s, "False")) return 0;
    if (hs_word(s, "True"))
        return hs_fail(s, GX_EUNSUPPORTED, "header.fortran_order", at,
                       "Fortran-ordered (column-major) arrays are not supported; save a "
                       "C-ordered array (numpy.ascontiguousarray)");
    char fb[24];
    return hs_fail(s, GX_EFORMAT, "header.fortran_order", at,
                   "'fortran_order' must be True or False, found %s", hs_found(s, fb));
}

static int hs_descr(hdr_scan *s, npy_info *h) {
    size_t at = s->i;
    int c = hs_peek(s);
    if (c == '[')
        return hs_fail(s, GX_EUNSUPPORTED, "header.descr", at,
                       "structured dtypes (a list of fields) are not supported");
    if (c == '(')
        return hs_fail(s, GX_EUNSUPPORTED, "header.descr", at,
                       "subarray dtypes are not supported");
    if (c != '\'' && c != '"') {
        char fb[24];
        return hs_fail(s, GX_EFORMAT, "header.descr", at,
                       "'descr' must be a string like '<f4', found %s", hs_found(s, fb));
    }
    char d[32];
    int rc = hs_string(s, "header.descr", d, sizeof d);
    if (rc) return rc;
    return descr_to_dtype(d, s->base + (long)at + 1, h, s->err);
}

/* One dimension: a non-negative decimal integer, optional Python 2 'L'. The
 * running element count *n is checked as in gx_array_new so that a shape we
 * accept is one gx_array_new accepts. */
static int hs_dim(hdr_scan *s, npy_info *h, int64_t *n) {
    size_t at = s->i;
    int c = hs_peek(s);
    if (c == '-')
        return hs_fail(s, GX_EFORMAT, "header.shape", at, "negative dimension in 'shape'");
    if (c < '0' || c > '9') {
        char fb[24];
        return hs_fail(s, GX_EFORMAT, "header.shape", at,
                       "expected a dimension (a non-negative integer) in 'shape', found %s",
                       hs_found(s, fb));
    }
    if (h->ndim == GX_MAX_DIMS)
        return hs_fail(s, GX_EFORMAT, "header.shape", at,
                       "'shape' has more than %d dimensions", GX_MAX_DIMS);
    int64_t v = 0;
    int big = 0;
    size_t digits = 0;
    while (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9') {
        if (v > GX_ARRAY_MAX_ELEMS)
            big = 1; /* keep scanning, v stays bounded */
        else
            v = v * 10 + (s->p[s->i] - '0');
        s->i++;
        digits++;
    }
    if (digits > 1 && s->p[at] == '0')
        return hs_fail(s, GX_EFORMAT, "header.shape", at,
                       "dimension %d in 'shape' has leading zeros", h->ndim);
    if (s->i < s->n && s->p[s->i] == 'L') s->i++;
    if (big || v > GX_ARRAY_MAX_ELEMS)
        return hs_fail(s, GX_EOVERFLOW, "header.shape", at,
                       "dimension %d (%.*s%s) exceeds the limit of 2^34 elements", h->ndim,
                       (int)(digits > 24 ? 24 : digits), (const char *)s->p + at,
                       digits > 24 ? "..." : "");
    if (v && *n > GX_ARRAY_MAX_ELEMS / v)
        return hs_fail(s, GX_EOVERFLOW, "header.shape", at,
                       "the array has more than 2^34 elements (dimension %d is %lld)", h->ndim,
                       (long long)v);
    *n *= v;
    h->shape[h->ndim++] = v;
    return 0;
}

static int hs_shape(hdr_scan *s, npy_info *h) {
    size_t open = s->i;
    if (hs_peek(s) != '(') {
        char fb[24];
        return hs_fail(s, GX_EFORMAT, "header.shape", open,
                       "'shape' must be a tuple like (3, 4), found %s", hs_found(s, fb));
    }
    s->i++;
    int64_t n = 1;
    int commas = 0;
    h->ndim = 0;
    for (;;) {
        hs_ws(s);
        if (hs_peek(s) == ')') break;
        int rc = hs_dim(s, h, &n);
        if (rc) return rc;
        hs_ws(s);
        int c = hs_peek(s);
        if (c == ',') {
            s->i++;
            commas++;
        } else if (c != ')') {
            char fb[24];
            return hs_fail(s, GX_EFORMAT, "header.shape", s->i,
                           "expected ',' or ')' in 'shape', found %s", hs_found(s, fb));
        }
    }
    if (h->ndim == 1 && !commas)
        return hs_fail(s, GX_EFORMAT, "header.shape", open,
                       "'shape' (%lld) is not a tuple; a 1-d shape needs a trailing comma: "
                       "(%lld,)",
                       (long long)h->shape[0], (long long)h->shape[0]);
    s->i++; /* ')' */
    h->count = n;
    return 0;
}

enum { KEY_DESCR, KEY_FORTRAN, KEY_SHAPE, KEY_COUNT };
static const char *const npy_keys[KEY_COUNT] = {"descr", "fortran_order", "shape"};

/* Parse the header dict (hlen bytes at p, which sit at file offset base). */
static int parse_dict(const unsigned char *p, size_t hlen, long base, npy_info *h,
                      gx_error *err) {
    hdr_scan s = {.p = p, .n = hlen, .i = 0, .base = base, .err = err};
    if (hlen == 0) return hs_fail(&s, GX_EFORMAT, "header", 0, "the header is empty");
    hs_ws(&s);
    if (hs_peek(&s) != '{') {
        char fb[24];
        return hs_fail(&s, GX_EFORMAT, "header", s.i,
                       "the header must be a Python dict starting with '{', found %s",
                       hs_found(&s, fb));
    }
    s.i++;
    int seen[KEY_COUNT] = {0};
    for (;;) {
        hs_ws(&s);
        if (hs_peek(&s) == '}') break;
        size_t kat = s.i;
        char key[32];
        int rc = hs_string(&s, "header", key, sizeof key);
        if (rc) return rc;
        int k = 0;
        while (k < KEY_COUNT && strcmp(key, npy_keys[k])) k++;
        if (k == KEY_COUNT)
            return hs_fail(&s, GX_EFORMAT, "header", kat,
                           "unknown key '%s' in the header (expected 'descr', 'fortran_order' "
                           "and 'shape')",
                           key);
        if (seen[k])
            return hs_fail(&s, GX_EFORMAT, "header", kat, "duplicate key '%s' in the header",
                           key);
        seen[k] = 1;
        hs_ws(&s);
        if (hs_peek(&s) != ':') {
            char fb[24];
            return hs_fail(&s, GX_EFORMAT, "header", s.i, "expected ':' after '%s', found %s",
                           key, hs_found(&s, fb));
        }
        s.i++;
        hs_ws(&s);
        rc = k == KEY_DESCR ? hs_descr(&s, h) : k == KEY_FORTRAN ? hs_fortran(&s) : hs_shape(&s, h);
        if (rc) return rc;
        hs_ws(&s);
        int c = hs_peek(&s);
        if (c == ',') {
            s.i++;
        } else if (c != '}') {
            char fb[24];
            return hs_fail(&s, GX_EFORMAT, "header", s.i,
                           "expected ',' or '}' after the value of '%s', found %s", key,
                           hs_found(&s, fb));
        }
    }
    size_t close = s.i;
    s.i++;
    for (int k = 0; k < KEY_COUNT; k++)
        if (!seen[k])
            return hs_fail(&s, GX_EFORMAT, "header", close, "the header has no '%s' key",
                           npy_keys[k]);
    hs_ws(&s);
    if (s.i < s.n) {
        char fb[24];
        return hs_fail(&s, GX_EFORMAT, "header", s.i,
                       "unexpected %s after the header dict (only spaces and newlines may "
                       "follow it)",
                       hs_found(&s, fb));
    }
    return 0;
}

/* ---- preamble and data checks ------------------------------------------ */

/* Magic, version and header length. b holds the first n bytes of a file of
 * total bytes (n >= min(total, 12)). On success *hstart is the offset of the
 * header and *hlen its length, known to fit in the file. */
static int parse_preamble(const unsigned char *b, size_t n, uint64_t total, size_t *hstart,
                          uint64_t *hlen, gx_error *err) {
    for (size_t i = 0; i < NPY_MAGIC_LEN; i++) {
        if (i >= n)
            return fail_at(err, GX_EFORMAT, "magic", (long)i,
                           "truncated: the file ends after %zu bytes, inside the magic string",
                           n);
        if (b[i] != (unsigned char)NPY_MAGIC[i])
            return fail_at(err, GX_EFORMAT, "magic", (long)i,
                           "bad magic: not a .npy file (it must start with \\x93NUMPY)");
    }
    if (n < 8)
        return fail_at(err, GX_EFORMAT, "version", (long)n,
                       "truncated: the file ends after %zu bytes, inside the version", n);
    unsigned major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return fail_at(err, GX_EFORMAT, "version", major < 1 || major > 3 ? 6 : 7,
                       "unknown .npy version %u.%u (expected 1.0, 2.0 or 3.0)", major, minor);
    size_t lenbytes = major == 1 ? 2 : 4;
    if (n < 8 + lenbytes)
        return fail_at(err, GX_EFORMAT, "header", (long)n,
                       "truncated: the file ends after %zu bytes, inside the header length", n);
    uint64_t hl = (uint64_t)b[8] | (uint64_t)b[9] << 8;
    if (lenbytes == 4) hl |= (uint64_t)b[10] << 16 | (uint64_t)b[11] << 24;
    *hstart = 8 + lenbytes;
    if (hl > total - *hstart)
        return fail_at(err, GX_EFORMAT, "header", 8,
                       "header length %llu runs past the end of the file (%llu bytes follow "
                       "the preamble)",
                       (unsigned long long)hl, (unsigned long long)(total - *hstart));
    *hlen = hl;
    return 0;
}

/* With the header parsed, check the data size against the file size. */
static int check_data(npy_info *h, uint64_t total, gx_error *err) {
    h->nbytes = (uint64_t)h->count * gx_dtype_size(h->dtype);
    if (h->nbytes > SIZE_MAX)
        return fail_at(err, GX_EOVERFLOW, "header.shape", -1,
                       "the array needs %llu bytes, more than this machine can address",
                       (unsigned long long)h->nbytes);
    uint64_t have = total - h->data_off;
    char shp[160];
    if (have < h->nbytes) {
        shape_repr(h->shape, h->ndim, shp, sizeof shp);
        return fail_at(err, GX_EFORMAT, "data", (long)total,
                       "truncated data: shape %s of dtype %s needs %llu bytes, the file has %llu", shp,
                       gx_dtype_name(h->dtype), (unsigned long long)h->nbytes,
                       (unsigned long long)have);
    }
    if (have > h->nbytes)
        return fail_at(err, GX_EFORMAT, "data", (long)(h->data_off + h->nbytes),
                       "unexpected trailing bytes after the array data (%llu bytes of data "
                       "expected)",
                       (unsigned long long)h->nbytes);
    return 0;
}

/* Whole-image parse: everything but the data copy. */
static int parse_image(const unsigned char *b, size_t len, npy_info *h, gx_error *err) {
    size_t hstart;
    uint64_t hlen;
    memset(h, 0, sizeof *h);
    int rc = parse_preamble(b, len, len, &hstart, &hlen, err);
    if (rc) return rc;
    rc = parse_dict(b + hstart, (size_t)hlen, (long)hstart, h, err);
    if (rc) return rc;
    h->data_off = hstart + hlen;
    return check_data(h, len, err);
}

/* Byte-swap elements of foreign order and make bools 0/1 (kernels may rely
 * on it; NumPy itself only ever writes 0 and 1). */
static void fix_data(gx_array *a, int swap) {
    size_t es = gx_dtype_size(a->dtype);
    unsigned char *d = a->data;
    if (swap) {
        for (size_t i = 0; i < a->nbytes; i += es)
            for (size_t j = 0; j < es / 2; j++) {
                unsigned char t = d[i + j];
                d[i + j] = d[i + es - 1 - j];
                d[i + es - 1 - j] = t;
            }
    }
    if (a->dtype == GX_BOOL)
        for (size_t i = 0; i < a->nbytes; i++) d[i] = d[i] != 0;
}

int gx_npy_read_mem(const void *buf, size_t len, gx_array **out, gx_error *err) {
    if (!out || (!buf && len))
        return gx_error_set(err, GX_EINVAL, NULL, "gx_npy_read_mem: buf or out is NULL");
    const unsigned char *b = buf;
    npy_info h;
    int rc = parse_image(b, len, &h, err);
    if (rc) return rc;
    gx_array *a;
    rc = gx_array_new(h.dtype, h.ndim, h.shape, &a, err);
    if (rc) return rc;
    if (h.nbytes) memcpy(a->data, b + h.data_off, (size_t)h.nbytes);
    fix_data(a, h.swap);
    *out = a;
    return 0;
}

/* ---- files --------------------------------------------------------------- */

/* pread exactly len bytes at off; *got is how many arrived before EOF. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got) {
    size_t n = 0;
    while (n < len) {
        size_t chunk = len - n > (1u << 30) ? (1u << 30) : len - n;
        ssize_t r = pread(fd, (char *)buf + n, chunk, (off_t)(off + n));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        n += (size_t)r;
    }
    *got = n;
    return 0;
}

static int io_fail(gx_error *err, const char *verb, const char *path, int e) {
    return gx_error_set(err, GX_EIO, "path", "cannot %s '%s': %s", verb, path, strerror(e));
}

/* Read from a pipe or other stream until have >= target or EOF; the buffer
 * grows only as data arrives, so a hostile header cannot make us allocate
 * more than twice what was actually sent. */
static int read_until(int fd, unsigned char **buf, size_t *cap, size_t *have, uint64_t target) {
    while (*have < target) {
        if (*have == *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            if (nc < *cap || (uint64_t)nc > target) nc = target > SIZE_MAX ? SIZE_MAX : (size_t)target;
            if (nc <= *cap) return ENOMEM;
            unsigned char *nb = realloc(*buf, nc);
            if (!nb) return ENOMEM;
            *buf = nb;
            *cap = nc;
        }
        ssize_t r = read(fd, *buf + *have, *cap - *have);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno;
        if (r == 0) break;
        *have += (size_t)r;
    }
    return 0;
}

/* Non-regular files (pipes, sockets, devices): read as much as the header
 * says plus one byte (to see trailing garbage), then parse from memory. */
static int read_stream(int fd, const char *path, gx_array **out, gx_error *err) {
    unsigned char *buf = NULL;
    size_t cap = 0, have = 0;
    int e = read_until(fd, &buf, &cap, &have, 12);
    if (!e && have >= 12) {
        size_t hstart;
        uint64_t hlen;
        npy_info h;
        memset(&h, 0, sizeof h);
        if (!parse_preamble(buf, have, UINT64_MAX, &hstart, &hlen, NULL)) {
            e = read_until(fd, &buf, &cap, &have, hstart + hlen);
            if (!e && have >= hstart + hlen &&
                !parse_dict(buf + hstart, (size_t)hlen, (long)hstart, &h, NULL)) {
                uint64_t need = hstart + hlen + (uint64_t)h.count * gx_dtype_size(h.dtype);
                e = read_until(fd, &buf, &cap, &have, need + 1);
            }
        }
    }
    int rc;
    if (e == ENOMEM)
        rc = gx_error_set(err, GX_ENOMEM, "path", "out of memory reading '%s'", path);
    else if (e)
        rc = io_fail(err, "read", path, e);
    else
        rc = gx_npy_read_mem(buf, have, out, err);
    free(buf);
    return rc;
}

/* Regular files: the header is checked against the file size before the
 * array is allocated, and the data is read straight into the array. */
static int read_regular(int fd, uint64_t size, const char *path, gx_array **out,
                        gx_error *err) {
    unsigned char pre[12];
    size_t want = size < sizeof pre ? (size_t)size : sizeof pre, got;
    if (pread_full(fd, pre, want, 0, &got)) return io_fail(err, "read", path, errno);
    if (got < want) return gx_error_set(err, GX_EIO, "path", "'%s' shrank while being read", path);
    size_t hstart;
    uint64_t hlen;
    int rc = parse_preamble(pre, want, size, &hstart, &hlen, err);
    if (rc) return rc;
    unsigned char *hdr = malloc(hlen ? (size_t)hlen : 1);
    if (!hdr) return gx_error_set(err, GX_ENOMEM, "header", "out of memory for a %llu-byte header",
                                  (unsigned long long)hlen);
    npy_info h;
    memset(&h, 0, sizeof h);
    if (pread_full(fd, hdr, (size_t)hlen, hstart, &got)) {
        rc = io_fail(err, "read", path, errno);
    } else if (got < hlen) {
        rc = gx_error_set(err, GX_EIO, "path", "'%s' shrank while being read", path);
    } else {
        rc = parse_dict(hdr, (size_t)hlen, (long)hstart, &h, err);
    }
    free(hdr);
    if (rc) return rc;
    h.data_off = hstart + hlen;
    rc = check_data(&h, size, err);
    if (rc) return rc;
    gx_array *a;
    rc = gx_array_new(h.dtype, h.ndim, h.shape, &a, err);
    if (rc) return rc;
    if (pread_full(fd, a->data, (size_t)h.nbytes, h.data_off, &got)) {
        rc = io_fail(err, "read", path, errno);
    } else if (got < h.nbytes) {
        rc = gx_error_set(err, GX_EIO, "path", "'%s' shrank while being read", path);
    }
    if (rc) {
        gx_array_unref(a);
        return rc;
    }
    fix_data(a, h.swap);
    *out = a;
    return 0;
}

int gx_npy_read_file(const char *path, gx_array **out, gx_error *err) {
    if (!path || !out)
        return gx_error_set(err, GX_EINVAL, NULL, "gx_npy_read_file: path or out is NULL");
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return io_fail(err, "open", path, errno);
    struct stat st;
    int rc;
    if (fstat(fd, &st))
        rc = io_fail(err, "stat", path, errno);
    else if (S_ISDIR(st.st_mode))
        rc = io_fail(err, "read", path, EISDIR);
    else if (S_ISREG(st.st_mode))
        rc = read_regular(fd, (uint64_t)st.st_size, path, out, err);
    else
        rc = read_stream(fd, path, out, err);
    close(fd);
    return rc;
}

/* ---- writing -------------------------------------------------------------- */

/* Longest preamble + header we produce: the dict is under 256 bytes (8 dims
 * of at most 11 digits), plus growth room, padding and preamble. */
#define NPY_HDR_MAX 512

/* Validate a and build its preamble and header into hdr; *hl is the data
 * offset (a multiple of 64). */
static int build_header(const gx_array *a, unsigned char hdr[NPY_HDR_MAX], size_t *hl,
                        gx_error *err) {
    if (!a) return gx_error_set(err, GX_EINVAL, "array", "array is NULL");
    size_t es = gx_dtype_size(a->dtype);
    if (!es) return gx_error_set(err, GX_EINVAL, "array.dtype", "unknown dtype %d", (int)a->dtype);
    if (a->ndim < 0 || a->ndim > GX_MAX_DIMS)
        return gx_error_set(err, GX_EINVAL, "array.shape", "rank %d is outside 0..%d", a->ndim,
                            GX_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++) {
        int64_t d = a->shape[i];
        if (d < 0 || d > GX_ARRAY_MAX_ELEMS || (d && n > GX_ARRAY_MAX_ELEMS / d))
            return gx_error_set(err, GX_EINVAL, "array.shape", "dimension %d (%lld) is invalid",
                                i, (long long)d);
        n *= d;
    }
    if (n != a->count || (uint64_t)a->nbytes != (uint64_t)n * es)
        return gx_error_set(err, GX_EINVAL, "array", "count/nbytes do not match the shape");
    if (a->nbytes && !a->data) return gx_error_set(err, GX_EINVAL, "array.data", "data is NULL");

    char dict[320], descr[8], shp[200];
    dtype_to_descr(a->dtype, descr);
    int sl = shape_repr(a->shape, a->ndim, shp, sizeof shp);
    int grow = 0;
    if (a->ndim > 0) {
        char d0[24];
        grow = NPY_GROWTH_DIGITS - snprintf(d0, sizeof d0, "%lld", (long long)a->shape[0]);
    }
    int dl = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }%*s",
                      descr, shp, grow, "");
    if (sl < 0 || (size_t)sl >= sizeof shp || dl < 0 || (size_t)dl >= sizeof dict)
        return gx_error_set(err, GX_EINVAL, "array.shape", "header does not fit");
    /* As numpy.lib.format._wrap_header: header + padding + '\n' so that the
     * data starts on a 64-byte boundary; padding is 1..64 spaces. */
    size_t body = (size_t)dl + 1, lenbytes = 2;
    size_t pad = NPY_ALIGN - ((NPY_MAGIC_LEN + 2 + lenbytes + body) % NPY_ALIGN);
    if (body + pad > 65535) {
        lenbytes = 4;
        pad = NPY_ALIGN - ((NPY_MAGIC_LEN + 2 + lenbytes + body) % NPY_ALIGN);
    }
    size_t total = NPY_MAGIC_LEN + 2 + lenbytes + body + pad;
    if (total > NPY_HDR_MAX)
        return gx_error_set(err, GX_EINVAL, "array.shape", "header does not fit");
    size_t hlen = body + pad;
    memcpy(hdr, NPY_MAGIC, NPY_MAGIC_LEN);
    hdr[6] = lenbytes == 2 ? 1 : 2;
    hdr[7] = 0;
    for (size_t i = 0; i < lenbytes; i++) hdr[8 + i] = (unsigned char)(hlen >> (8 * i));
    size_t o = 8 + lenbytes;
    memcpy(hdr + o, dict, (size_t)dl);
    o += (size_t)dl;
    memset(hdr + o, ' ', pad);
    o += pad;
    hdr[o++] = '\n';
    *hl = o;
    return 0;
}

int gx_npy_write_mem(const gx_array *a, void **buf, size_t *len, gx_error *err) {
    if (!buf || !len) return gx_error_set(err, GX_EINVAL, NULL, "gx_npy_write_mem: buf or len is NULL");
    unsigned char hdr[NPY_HDR_MAX];
    size_t hl;
    int rc = build_header(a, hdr, &hl, err);
    if (rc) return rc;
    if (a->nbytes > SIZE_MAX - hl)
        return gx_error_set(err, GX_EOVERFLOW, "array", "array too large to serialise");
    unsigned char *b = malloc(hl + a->nbytes);
    if (!b)
        return gx_error_set(err, GX_ENOMEM, NULL, "cannot allocate %zu bytes", hl + a->nbytes);
    memcpy(b, hdr, hl);
    if (a->nbytes) memcpy(b + hl, a->data, a->nbytes);
    *buf = b;
    *len = hl + a->nbytes;
    return 0;
}

static int write_all(int fd, const void *p, size_t len) {
    const char *c = p;
    while (len) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t w = write(fd, c, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        c += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Temp names are <path>.tmp.<pid>.<n>: same directory (so rename is atomic),
 * unique across threads by the counter and across processes by the pid. */
static atomic_uint npy_tmp_counter;

int gx_npy_write_file(const gx_array *a, const char *path, gx_error *err) {
    if (!path) return gx_error_set(err, GX_EINVAL, "path", "path is NULL");
    unsigned char hdr[NPY_HDR_MAX];
    size_t hl;
    int rc = build_header(a, hdr, &hl, err);
    if (rc) return rc;
    size_t tl = strlen(path) + 48;
    char *tmp = malloc(tl);
    if (!tmp) return gx_error_set(err, GX_ENOMEM, "path", "out of memory");
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 100; tries++) {
        snprintf(tmp, tl, "%s.tmp.%ld.%u", path, (long)getpid(),
                 atomic_fetch_add(&npy_tmp_counter, 1u));
        /* 0666 and the umask, as numpy.save's open() would give. */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST && errno != EINTR) break;
    }
    if (fd < 0) {
        rc = io_fail(err, "create a temporary file for", path, errno);
        free(tmp);
        return rc;
    }
    const char *verb = "write";
    int ok = !write_all(fd, hdr, hl) && !write_all(fd, a->data, a->nbytes);
    /* fsync before rename: after a crash the file is the old one or the new
     * one, never a prefix of the new one. */
    if (ok && fsync(fd)) {
        ok = 0;
        verb = "sync";
    }
    int e = errno;
    if (close(fd) && ok) {
        ok = 0;
        e = errno;
        verb = "close";
    }
    if (ok && rename(tmp, path)) {
        ok = 0;
        e = errno;
        verb = "rename into place";
    }
    if (!ok) {
        unlink(tmp);
        rc = io_fail(err, verb, path, e);
    }
    free(tmp);
    return rc;
}
