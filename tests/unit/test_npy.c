/*
 * test_npy.c - the .npy reader and writer: round trips for every dtype and
 * ranks 0..4 (empty arrays included), the exact bytes numpy.save writes, a
 * table of malformed images (each through memory, a regular file and a pipe
 * must give the same code, message and position), big-endian and v2/v3
 * input, file errors, and interop with real NumPy through /usr/bin/python3
 * (skipped when it or numpy is missing).
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#ifndef PYTHON /* Debian's, with python3-numpy (scripts/setup); not a pyenv one */
#define PYTHON "/usr/bin/python3"
#endif

static char tmpdir[256];

/* ---- helpers --------------------------------------------------------------- */

static void tmp_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s: %s", path, strerror(errno));
    if (n && fwrite(b, 1, n, f) != n) fail_msg("cannot write %s", path);
    fclose(f);
}

/* Files in tmpdir whose name contains sub. */
static int count_files(const char *sub) {
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, sub)) n++;
    closedir(d);
    return n;
}

/* A .npy image: magic, version major.0, header length, header text (used as
 * is, no padding added), then data_len bytes of 0xAB. Caller frees. */
static unsigned char *mk_npy(int major, const char *hdr, size_t hlen, size_t data_len,
                             size_t *len) {
    size_t lb = major == 1 ? 2 : 4;
    size_t n = 8 + lb + hlen + data_len;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < lb; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8 + lb, hdr, hlen);
    memset(b + 8 + lb + hlen, 0xAB, data_len);
    *len = n;
    return b;
}

static uint16_t half_bits(double v) { /* v must be exactly representable */
    uint16_t sign = v < 0 ? 0x8000 : 0;
    v = fabs(v);
    if (v == 0) return sign;
    int e;
    double m = frexp(v, &e);
    return (uint16_t)(sign | (uint16_t)((e + 14) << 10) | (uint16_t)((m * 2 - 1) * 1024));
}

/* Element i of the deterministic test data, in native bytes. The Python side
 * (PY_GEN below) computes the same values. */
static void gen_elem(gx_dtype dt, int64_t i, void *dst) {
    uint64_t u = (uint64_t)i * UINT64_C(2654435761);
    double t = (double)i * 0.1;
    t -= 7.3;
    switch (dt) {
    case GX_F64: memcpy(dst, &t, 8); break;
    case GX_F32: {
        float f = (float)t;
        memcpy(dst, &f, 4);
        break;
    }
    case GX_F16: {
        uint16_t h = half_bits((double)(i % 1000) * 0.125 - 50);
        memcpy(dst, &h, 2);
        break;
    }
    case GX_BOOL: *(uint8_t *)dst = i % 3 == 0; break;
    case GX_I8: case GX_U8: *(uint8_t *)dst = (uint8_t)u; break;
    case GX_I16: case GX_U16: {
        uint16_t v = (uint16_t)u;
        memcpy(dst, &v, 2);
        break;
    }
    case GX_I32: case GX_U32: {
        uint32_t v = (uint32_t)u;
        memcpy(dst, &v, 4);
        break;
    }
    case GX_I64: case GX_U64: memcpy(dst, &u, 8); break;
    default: fail_msg("gen_elem: dtype %d", (int)dt);
    }
}

static gx_array *gen_array(gx_dtype dt, int ndim, const int64_t *shape) {
    gx_array *a = NULL;
    gx_error err;
    TU_OK(gx_array_new(dt, ndim, shape, &a, &err), err);
    size_t es = gx_dtype_size(dt);
    for (int64_t i = 0; i < a->count; i++) gen_elem(dt, i, (char *)a->data + (size_t)i * es);
    return a;
}

/* Element index of the first mismatch against gen_elem, or -1. */
static int64_t gen_mismatch(const gx_array *a) {
    size_t es = gx_dtype_size(a->dtype);
    unsigned char want[8];
    for (int64_t i = 0; i < a->count; i++) {
        gen_elem(a->dtype, i, want);
        if (memcmp(want, (const char *)a->data + (size_t)i * es, es)) return i;
    }
    return -1;
}

static void assert_same_array(const gx_array *a, const gx_array *b) {
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int i = 0; i < a->ndim; i++) assert_int_equal(a->shape[i], b->shape[i]);
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->nbytes, b->nbytes);
    if (a->nbytes) assert_memory_equal(a->data, b->data, a->nbytes);
}

static const gx_dtype all_dtypes[] = {GX_F32, GX_F64, GX_I32, GX_I64, GX_U8, GX_I8,
                                      GX_I16, GX_U16, GX_U32, GX_U64, GX_BOOL, GX_F16};
#define N_DTYPES (sizeof all_dtypes / sizeof all_dtypes[0])

static const struct {
    int ndim;
    int64_t shape[4];
} shapes[] = {
    {0, {0}},       {1, {7}},          {2, {3, 4}},          {3, {2, 3, 5}}, {4, {2, 1, 3, 2}},
    {1, {0}},       {2, {4, 0}},       {3, {0, 2, 3}},       {4, {2, 0, 1, 3}},
    {1, {1}},       {2, {1, 1}},       {3, {17, 1, 2}},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* ---- round trips ----------------------------------------------------------- */

static void check_written_image(const gx_array *a, const unsigned char *b, size_t len) {
    assert_memory_equal(b, "\x93NUMPY\x01\x00", 8);
    size_t hl = (size_t)b[8] | (size_t)b[9] << 8;
    assert_int_equal(10 + hl + a->nbytes, len);
    assert_int_equal((10 + hl) % 64, 0);
    assert_int_equal(b[10 + hl - 1], '\n');
    assert_int_equal(b[10], '{');
}

static void roundtrip_all(void **st) {
    (void)st;
    int files = 0;
    for (size_t d = 0; d < N_DTYPES; d++) {
        for (size_t s = 0; s < N_SHAPES; s++) {
            gx_dtype dt = all_dtypes[d];
            gx_array *a = NULL;
            gx_error err;
            TU_OK(gx_array_new(dt, shapes[s].ndim, shapes[s].shape, &a, &err), err);
            unsigned char *p = a->data;
            for (size_t i = 0; i < a->nbytes; i++)
                p[i] = dt == GX_BOOL ? (unsigned char)(tu_rand() & 1) : (unsigned char)tu_rand();

            void *buf = NULL;
            size_t len = 0;
            TU_OK(gx_npy_write_mem(a, &buf, &len, &err), err);
            check_written_image(a, buf, len);
            gx_array *b = NULL;
            TU_OK(gx_npy_read_mem(buf, len, &b, &err), err);
            assert_same_array(a, b);
            assert_int_equal((uintptr_t)b->data % 64, 0);
            gx_array_unref(b);
            free(buf);

            char path[512], name[64];
            snprintf(name, sizeof name, "rt_%s_%zu.npy", gx_dtype_name(dt), s);
            tmp_path(path, sizeof path, name);
            TU_OK(gx_npy_write_file(a, path, &err), err);
            b = NULL;
            TU_OK(gx_npy_read_file(path, &b, &err), err);
            assert_same_array(a, b);
            gx_array_unref(b);
            unlink(path);
            files++;
            gx_array_unref(a);
        }
    }
    assert_int_equal(files, (int)(N_DTYPES * N_SHAPES));
    assert_int_equal(count_files(".tmp."), 0);
}

/* Wrapped arrays (not 64-byte aligned, caller memory) write the same. */
static void roundtrip_wrapped(void **st) {
    (void)st;
    static int16_t vals[] = {-3, 0, 7, 32767, -32768, 1};
    int64_t shape[2] = {2, 3};
    gx_array *a = NULL, *b = NULL;
    gx_error err;
    TU_OK(gx_array_wrap(GX_I16, 2, shape, vals, NULL, NULL, &a, &err), err);
    void *buf;
    size_t len;
    TU_OK(gx_npy_write_mem(a, &buf, &len, &err), err);
    TU_OK(gx_npy_read_mem(buf, len, &b, &err), err);
    assert_same_array(a, b);
    free(buf);
    gx_array_unref(a);
    gx_array_unref(b);
}

/* ---- writer output matches numpy.save (NumPy 1.24) byte for byte ---------- */

static void header_matches_numpy(void **st) {
    (void)st;
    static const struct {
        gx_dtype dt;
        int ndim;
        int64_t shape[2];
        const char *dict;
        int spaces; /* spaces between the dict and the final '\n' */
    } cases[] = {
        {GX_F32, 1, {3}, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 60},
        {GX_U8, 0, {0}, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }", 62},
        {GX_I64, 2, {3, 4}, "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 4), }", 58},
        {GX_BOOL, 2, {0, 2}, "{'descr': '|b1', 'fortran_order': False, 'shape': (0, 2), }", 58},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        gx_array *a = NULL;
        gx_error err;
        TU_OK(gx_array_new(cases[c].dt, cases[c].ndim, cases[c].shape, &a, &err), err);
        void *buf;
        size_t len;
        TU_OK(gx_npy_write_mem(a, &buf, &len, &err), err);
        const unsigned char *b = buf;
        assert_int_equal(len, 128 + a->nbytes);
        assert_memory_equal(b, "\x93NUMPY\x01\x00\x76\x00", 10);
        size_t dl = strlen(cases[c].dict);
        assert_memory_equal(b + 10, cases[c].dict, dl);
        for (int i = 0; i < cases[c].spaces; i++) assert_int_equal(b[10 + dl + (size_t)i], ' ');
        assert_int_equal(10 + dl + (size_t)cases[c].spaces, 127);
        assert_int_equal(b[127], '\n');
        free(buf);
        gx_array_unref(a);
    }
}

/* ---- malformed input ------------------------------------------------------- */

#define POS_END (-100) /* the expected position is the image length */
#define POS_MARK (-200) /* the expected position is where '@' is in hdr */

typedef struct bad_case {
    const char *name;
    int major;       /* 1..3: hdr is the header text; 0: hdr is the raw image */
    const char *hdr; /* header text ('@' marks the expected position, removed) */
    size_t raw_len;  /* length of hdr when it holds NULs; 0: strlen */
    size_t data_len; /* bytes of data after the header */
    int code;
    const char *msg; /* expected in err.message */
    long pos;        /* expected err.pos, or POS_END / POS_MARK */
} bad_case;

#define D_F4 "'descr': '<f4'"
#define D_FO "'fortran_order': False"
#define D_SH "'shape': (2,)"
#define GOOD "{" D_F4 ", " D_FO ", " D_SH ", }"

static const bad_case bad_cases[] = {
    /* preamble */
    {"empty file", 0, "", 0, 0, GX_EFORMAT, "truncated", 0},
    {"short magic", 0, "\x93NUM", 4, 0, GX_EFORMAT, "inside the magic", 4},
    {"bad magic", 0, "\x93NUMPZ\x01\x00\x10\x00", 10, 0, GX_EFORMAT, "bad magic", 5},
    {"zip file", 0, "PK\x03\x04\x14\x00\x00\x00\x08\x00", 10, 0, GX_EFORMAT, "bad magic", 0},
    {"version 4.0", 0, "\x93NUMPY\x04\x00\x10\x00", 10, 0, GX_EFORMAT, "version 4.0", 6},
    {"version 1.1", 0, "\x93NUMPY\x01\x01\x10\x00", 10, 0, GX_EFORMAT, "version 1.1", 7},
    {"version 0.0", 0, "\x93NUMPY\x00\x00\x10\x00", 10, 0, GX_EFORMAT, "unknown .npy version", 6},
    {"cut in version", 0, "\x93NUMPY\x01", 7, 0, GX_EFORMAT, "inside the version", 7},
    {"cut in length v1", 0, "\x93NUMPY\x01\x00\x10", 9, 0, GX_EFORMAT, "header length", 9},
    {"cut in length v2", 0, "\x93NUMPY\x02\x00\x10\x00\x00", 11, 0, GX_EFORMAT, "header length",
     11},
    {"header past end", 0, "\x93NUMPY\x01\x00\x00\x10{}", 12, 0, GX_EFORMAT,
     "runs past the end of the file", 8},
    {"header past end v2", 0, "\x93NUMPY\x02\x00\x00\x00\x00\x80{}", 14, 0, GX_EFORMAT,
     "runs past the end of the file", 8},
    {"empty header", 1, "@", 0, 8, GX_EFORMAT, "header is empty", POS_MARK},
    /* dict syntax */
    {"not a dict", 1, "@['descr', '<f4']\n", 0, 8, GX_EFORMAT, "Python dict", POS_MARK},
    {"blank header", 1, "      \n@", 0, 8, GX_EFORMAT, "found the end of the header", POS_MARK},
    {"unknown key", 1, "{" D_F4 ", " D_FO ", " D_SH ", @'extra': 1}", 0, 8, GX_EFORMAT,
     "unknown key 'extra'", POS_MARK},
    {"duplicate key", 1, "{" D_F4 ", " D_FO ", " D_SH ", @'shape': (2,)}", 0, 8, GX_EFORMAT,
     "duplicate key 'shape'", POS_MARK},
    {"missing descr", 1, "{" D_FO ", " D_SH ", @}", 0, 8, GX_EFORMAT, "no 'descr' key",
     POS_MARK},
    {"missing fortran", 1, "{" D_F4 ", " D_SH "@}", 0, 8, GX_EFORMAT, "no 'fortran_order' key",
     POS_MARK},
    {"missing shape", 1, "{" D_F4 ", " D_FO "@}", 0, 8, GX_EFORMAT, "no 'shape' key", POS_MARK},
    {"empty dict", 1, "{@}", 0, 8, GX_EFORMAT, "no 'descr' key", POS_MARK},
    {"unterminated key", 1, "{@'descr", 0, 8, GX_EFORMAT, "unterminated string",
     POS_MARK},
    {"escape in key", 1, "{'de@\\x73cr': '<f4'}", 0, 8, GX_EFORMAT, "escape sequences",
     POS_MARK},
    {"non-ascii in key", 1, "{'sh@\xc3\xa4pe': (2,)}", 0, 8, GX_EFORMAT, "byte 0xc3",
     POS_MARK},
    {"unquoted key", 1, "{@descr: '<f4'}", 0, 8, GX_EFORMAT, "expected a quoted string",
     POS_MARK},
    {"missing colon", 1, "{'descr' @'<f4'}", 0, 8, GX_EFORMAT, "expected ':' after 'descr'",
     POS_MARK},
    {"missing comma", 1, "{" D_F4 " @" D_FO "}", 0, 8, GX_EFORMAT,
     "expected ',' or '}' after the value of 'descr'", POS_MARK},
    {"double comma", 1, "{" D_F4 ",@, " D_FO ", " D_SH "}", 0, 8, GX_EFORMAT,
     "expected a quoted string, found ','", POS_MARK},
    {"no closing brace", 1, "{" D_F4 ", " D_FO ", " D_SH ", @", 0, 8, GX_EFORMAT,
     "found the end of the header", POS_MARK},
    {"garbage after dict", 1, GOOD "  @x\n", 0, 8, GX_EFORMAT, "after the header dict",
     POS_MARK},
    {"second dict", 1, GOOD "\n@{}", 0, 8, GX_EFORMAT, "after the header dict", POS_MARK},
    {"NUL in padding", 1, GOOD "  @\0\n", sizeof GOOD "  @\0\n" - 1, 8, GX_EFORMAT, "byte 0x00 after the header dict",
     POS_MARK},
    /* fortran_order */
    {"fortran True", 1, "{" D_F4 ", 'fortran_order': @True, " D_SH "}", 0, 8, GX_EUNSUPPORTED,
     "Fortran-ordered", POS_MARK},
    {"fortran 0", 1, "{" D_F4 ", 'fortran_order': @0, " D_SH "}", 0, 8, GX_EFORMAT,
     "must be True or False", POS_MARK},
    {"fortran Falsey", 1, "{" D_F4 ", 'fortran_order': @Falsey, " D_SH "}", 0, 8, GX_EFORMAT,
     "must be True or False, found 'Falsey'", POS_MARK},
    {"fortran string", 1, "{" D_F4 ", 'fortran_order': @'False', " D_SH "}", 0, 8, GX_EFORMAT,
     "must be True or False, found a string", POS_MARK},
    /* shape */
    {"shape not tuple", 1, "{" D_F4 ", " D_FO ", 'shape': @(2)}", 0, 8, GX_EFORMAT,
     "needs a trailing comma: (2,)", POS_MARK},
    {"shape list", 1, "{" D_F4 ", " D_FO ", 'shape': @[2]}", 0, 8, GX_EFORMAT,
     "must be a tuple", POS_MARK},
    {"shape int", 1, "{" D_F4 ", " D_FO ", 'shape': @2}", 0, 8, GX_EFORMAT, "must be a tuple",
     POS_MARK},
    {"negative dim", 1, "{" D_F4 ", " D_FO ", 'shape': (2, @-1)}", 0, 8, GX_EFORMAT,
     "negative dimension", POS_MARK},
    {"string dim", 1, "{" D_F4 ", " D_FO ", 'shape': (2, @'a')}", 0, 8, GX_EFORMAT,
     "expected a dimension", POS_MARK},
    {"float dim", 1, "{" D_F4 ", " D_FO ", 'shape': (2@.0,)}", 0, 8, GX_EFORMAT,
     "expected ',' or ')' in 'shape'", POS_MARK},
    {"empty dim", 1, "{" D_F4 ", " D_FO ", 'shape': (2,@,)}", 0, 8, GX_EFORMAT,
     "expected a dimension", POS_MARK},
    {"dims no comma", 1, "{" D_F4 ", " D_FO ", 'shape': (2 @3)}", 0, 8, GX_EFORMAT,
     "expected ',' or ')' in 'shape'", POS_MARK},
    {"shape unterminated", 1, "{" D_F4 ", " D_FO ", 'shape': (2,@", 0, 8, GX_EFORMAT,
     "found the end of the header", POS_MARK},
    {"leading zeros", 1, "{" D_F4 ", " D_FO ", 'shape': (@02,)}", 0, 8, GX_EFORMAT,
     "leading zeros", POS_MARK},
    {"nine dims", 1, "{" D_F4 ", " D_FO ", 'shape': (1, 1, 1, 1, 1, 1, 1, 1, @2)}", 0, 8,
     GX_EFORMAT, "more than 8 dimensions", POS_MARK},
    {"dim over limit", 1, "{" D_F4 ", " D_FO ", 'shape': (@1099511627776,)}", 0, 0, GX_EOVERFLOW,
     "exceeds the limit of 2^34", POS_MARK},
    {"dim of 30 digits", 1, "{'shape': (@999999999999999999999999999999,)}", 0, 0, GX_EOVERFLOW,
     "(999999999999999999999999...) exceeds the limit of 2^34", POS_MARK},
    {"product over limit", 1, "{" D_F4 ", " D_FO ", 'shape': (131072, 131072, @2)}", 0, 0,
     GX_EOVERFLOW, "more than 2^34 elements", POS_MARK},
    /* descr */
    {"object dtype", 1, "{'descr': '@|O', " D_FO ", " D_SH "}", 0, 16, GX_EUNSUPPORTED,
     "Python object", POS_MARK},
    {"unicode dtype", 1, "{'descr': '@<U8', " D_FO ", " D_SH "}", 0, 64, GX_EUNSUPPORTED,
     "unicode string", POS_MARK},
    {"bytes dtype", 1, "{'descr': '@|S5', " D_FO ", " D_SH "}", 0, 10, GX_EUNSUPPORTED,
     "byte string", POS_MARK},
    {"complex dtype", 1, "{'descr': '@<c8', " D_FO ", " D_SH "}", 0, 16, GX_EUNSUPPORTED,
     "complex", POS_MARK},
    {"datetime dtype", 1, "{'descr': '@<M8[ns]', " D_FO ", " D_SH "}", 0, 16, GX_EUNSUPPORTED,
     "datetime64", POS_MARK},
    {"structured dtype", 1, "{'descr': @[('a', '<f4')], " D_FO ", " D_SH "}", 0, 8,
     GX_EUNSUPPORTED, "structured", POS_MARK},
    {"subarray dtype", 1, "{'descr': @('<f4', (2,)), " D_FO ", " D_SH "}", 0, 16,
     GX_EUNSUPPORTED, "subarray", POS_MARK},
    {"long double", 1, "{'descr': '@<f16', " D_FO ", " D_SH "}", 0, 32, GX_EUNSUPPORTED,
     "16-byte float", POS_MARK},
    {"int128", 1, "{'descr': '@<i16', " D_FO ", " D_SH "}", 0, 32, GX_EUNSUPPORTED,
     "16-byte int", POS_MARK},
    {"bad kind", 1, "{'descr': '@<x4', " D_FO ", " D_SH "}", 0, 8, GX_EFORMAT,
     "not a dtype descriptor", POS_MARK},
    {"no size", 1, "{'descr': '@<f', " D_FO ", " D_SH "}", 0, 8, GX_EFORMAT,
     "not a dtype descriptor", POS_MARK},
    {"size junk", 1, "{'descr': '@<f4x', " D_FO ", " D_SH "}", 0, 8, GX_EFORMAT,
     "not a dtype descriptor", POS_MARK},
    {"empty descr", 1, "{'descr': '@', " D_FO ", " D_SH "}", 0, 8, GX_EFORMAT,
     "not a dtype descriptor", POS_MARK},
    {"descr not string", 1, "{'descr': @4, " D_FO ", " D_SH "}", 0, 8, GX_EFORMAT,
     "must be a string like '<f4'", POS_MARK},
    /* data */
    {"data short", 1, GOOD "\n", 0, 7, GX_EFORMAT, "truncated data: shape (2,) of dtype f32 needs 8",
     POS_END},
    {"data missing", 1, GOOD "\n", 0, 0, GX_EFORMAT, "needs 8 bytes, the file has 0", POS_END},
    {"data trailing", 1, GOOD "\n", 0, 9, GX_EFORMAT, "trailing bytes", 10 + sizeof GOOD + 8},
    {"scalar trailing", 1, "{" D_F4 ", " D_FO ", 'shape': ()}", 0, 5, GX_EFORMAT,
     "trailing bytes", 10 + sizeof "{" D_F4 ", " D_FO ", 'shape': ()}" - 1 + 4},
    {"empty but data", 1, "{" D_F4 ", " D_FO ", 'shape': (0, 3)}", 0, 1, GX_EFORMAT,
     "trailing bytes", 10 + sizeof "{" D_F4 ", " D_FO ", 'shape': (0, 3)}" - 1},
};
#define N_BAD (sizeof bad_cases / sizeof bad_cases[0])

/* Build the image for a case; *pos gets the expected position. */
static unsigned char *bad_image(const bad_case *c, size_t *len, long *pos) {
    if (!c->major) {
        unsigned char *b = malloc(c->raw_len + 1);
        assert_non_null(b);
        memcpy(b, c->hdr, c->raw_len);
        *len = c->raw_len;
        *pos = c->pos;
        return b;
    }
    size_t hl = c->raw_len ? c->raw_len : strlen(c->hdr);
    char hdr[512];
    assert_true(hl < sizeof hdr);
    size_t o = 0;
    long mark = -1;
    for (size_t i = 0; i < hl; i++) {
        if (c->hdr[i] == '@' && mark < 0)
            mark = (long)o;
        else
            hdr[o++] = c->hdr[i];
    }
    unsigned char *b = mk_npy(c->major, hdr, o, c->data_len, len);
    long hstart = c->major == 1 ? 10 : 12;
    *pos = c->pos == POS_MARK ? hstart + mark : c->pos == POS_END ? (long)*len : c->pos;
    return b;
}

static void check_bad(const bad_case *c, const char *how, int rc, const gx_error *err,
                      long pos, const gx_array *out) {
    if (rc != c->code)
        fail_msg("%s (%s): got %s (%s), want %s", c->name, how, gx_err_name(rc), err->message,
                 gx_err_name(c->code));
    if (err->code != rc) fail_msg("%s (%s): err.code %d != rc %d", c->name, how, err->code, rc);
    if (!strstr(err->message, c->msg))
        fail_msg("%s (%s): message \"%s\" lacks \"%s\"", c->name, how, err->message, c->msg);
    if (err->pos != pos)
        fail_msg("%s (%s): pos %ld, want %ld (%s)", c->name, how, err->pos, pos, err->message);
    if (out != (const gx_array *)(uintptr_t)0x1)
        fail_msg("%s (%s): *out was changed on failure", c->name, how);
}

static void malformed_table(void **st) {
    (void)st;
    assert_true(N_BAD >= 30);
    char path[512];
    tmp_path(path, sizeof path, "bad.npy");
    for (size_t k = 0; k < N_BAD; k++) {
        const bad_case *c = &bad_cases[k];
        size_t len;
        long pos;
        unsigned char *b = bad_image(c, &len, &pos);
        gx_error err;
        gx_array *out = (gx_array *)(uintptr_t)0x1;
        int rc = gx_npy_read_mem(b, len, &out, &err);
        check_bad(c, "memory", rc, &err, pos, out);

        /* the file reader must say exactly the same */
        write_bytes(path, b, len);
        gx_error ferr;
        rc = gx_npy_read_file(path, &out, &ferr);
        check_bad(c, "file", rc, &ferr, pos, out);
        assert_string_equal(ferr.message, err.message);
        assert_string_equal(ferr.field, err.field);
        free(b);
    }
    unlink(path);
}

/* The giant shape fails before anything is allocated (ASan would report a
 * failed 4 TiB allocation otherwise), and quickly. */
static void overflow_fails_fast(void **st) {
    (void)st;
    const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }\n";
    size_t len;
    unsigned char *b = mk_npy(1, h, strlen(h), 64, &len);
    gx_error err;
    gx_array *a = NULL;
    assert_int_equal(gx_npy_read_mem(b, len, &a, &err), GX_EOVERFLOW);
    assert_null(a);
    assert_string_equal(err.field, "header.shape");
    free(b);
    /* a zero dimension makes a huge one harmless: 0 elements */
    h = "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 17179869184), }";
    b = mk_npy(1, h, strlen(h), 0, &len);
    TU_OK(gx_npy_read_mem(b, len, &a, &err), err);
    assert_int_equal(a->count, 0);
    assert_int_equal(a->shape[1], INT64_C(17179869184));
    gx_array_unref(a);
    free(b);
}

/* ---- other accepted inputs ----------------------------------------------- */

static void be_store(unsigned char *p, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

static void big_endian_input(void **st) {
    (void)st;
    static const struct {
        const char *descr;
        gx_dtype dt;
    } cases[] = {{">f4", GX_F32}, {">f8", GX_F64}, {">f2", GX_F16}, {">i2", GX_I16},
                 {">i4", GX_I32}, {">i8", GX_I64}, {">u2", GX_U16}, {">u4", GX_U32},
                 {">u8", GX_U64}, {">i1", GX_I8},  {">u1", GX_U8},  {">b1", GX_BOOL}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char h[128];
        int hl = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (2, 3), }\n",
                          cases[c].descr);
        size_t es = gx_dtype_size(cases[c].dt), len;
        unsigned char *b = mk_npy(1, h, (size_t)hl, 6 * es, &len);
        unsigned char *d = b + len - 6 * es;
        /* the expected native values, stored big-endian in the file */
        gx_array *want = gen_array(cases[c].dt, 2, (int64_t[]){2, 3});
        for (int i = 0; i < 6; i++) {
            uint64_t v = 0;
            const unsigned char *src = (const unsigned char *)want->data + (size_t)i * es;
            switch (es) {
            case 1: v = src[0]; break;
            case 2: { uint16_t x; memcpy(&x, src, 2); v = x; break; }
            case 4: { uint32_t x; memcpy(&x, src, 4); v = x; break; }
            default: memcpy(&v, src, 8); break;
            }
            be_store(d + (size_t)i * es, v, es);
        }
        gx_array *a = NULL;
        gx_error err;
        TU_OK(gx_npy_read_mem(b, len, &a, &err), err);
        assert_same_array(want, a);
        gx_array_unref(a);
        gx_array_unref(want);
        free(b);
    }
    /* a known value, spelled out: 1.5f big-endian is 3f c0 00 00 */
    const char *h = "{'descr': '>f4', 'fortran_order': False, 'shape': (), }";
    size_t len;
    unsigned char *b = mk_npy(1, h, strlen(h), 4, &len);
    memcpy(b + len - 4, "\x3f\xc0\x00\x00", 4);
    gx_array *a;
    gx_error err;
    TU_OK(gx_npy_read_mem(b, len, &a, &err), err);
    assert_true(gx_array_get_f64(a, 0) == 1.5);
    gx_array_unref(a);
    free(b);
}

/* Spellings NumPy (or Python's literal syntax) allows besides its own. */
static void header_variants(void **st) {
    (void)st;
    static const struct {
        const char *hdr;
        gx_dtype dt;
        int ndim;
        int64_t shape[3];
    } cases[] = {
        {"{'shape': (2, 3), 'descr': '<i4', 'fortran_order': False}", GX_I32, 2, {2, 3}},
        {"{\"fortran_order\": False, \"shape\": (6,), \"descr\": \"<u2\"}\n", GX_U16, 1, {6}},
        {"\t{ 'descr' : '=f8' ,\r\n 'fortran_order' : False , 'shape' : ( 1 , 2 , 3 , ) , }  \n",
         GX_F64, 3, {1, 2, 3}},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (6L,), }", GX_F32, 1, {6}},
        {"{'descr': 'i8', 'fortran_order': False, 'shape': (3, 2), }", GX_I64, 2, {3, 2}},
        {"{'descr': '<u1', 'fortran_order': False, 'shape': (6,), }", GX_U8, 1, {6}},
        {"{'descr': '|i1', 'fortran_order': False, 'shape': (6,),}", GX_I8, 1, {6}},
        {"{'descr': '<b1', 'fortran_order': False, 'shape': (0,), }", GX_BOOL, 1, {0}},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (), }", GX_F16, 0, {0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t n = 1;
        for (int i = 0; i < cases[c].ndim; i++) n *= cases[c].shape[i];
        size_t len;
        size_t nb = (size_t)n * gx_dtype_size(cases[c].dt);
        unsigned char *b = mk_npy(1, cases[c].hdr, strlen(cases[c].hdr), nb, &len);
        gx_array *a = NULL;
        gx_error err;
        int rc = gx_npy_read_mem(b, len, &a, &err);
        if (rc) fail_msg("case %zu: %s: %s at %ld", c, gx_err_name(rc), err.message, err.pos);
        assert_int_equal(a->dtype, cases[c].dt);
        assert_int_equal(a->ndim, cases[c].ndim);
        for (int i = 0; i < cases[c].ndim; i++) assert_int_equal(a->shape[i], cases[c].shape[i]);
        if (nb && cases[c].dt != GX_BOOL) assert_memory_equal(a->data, b + len - nb, nb);
        gx_array_unref(a);
        free(b);
    }
}

/* Bools other than 0 and 1 come back as 1. */
static void bool_normalised(void **st) {
    (void)st;
    const char *h = "{'descr': '|b1', 'fortran_order': False, 'shape': (4,), }";
    size_t len;
    unsigned char *b = mk_npy(1, h, strlen(h), 4, &len);
    memcpy(b + len - 4, "\x00\x01\x02\xff", 4);
    gx_array *a;
    gx_error err;
    TU_OK(gx_npy_read_mem(b, len, &a, &err), err);
    assert_memory_equal(a->data, "\x00\x01\x01\x01", 4);
    gx_array_unref(a);
    free(b);
}

/* Version 2.0 and 3.0 headers (u32 length), including one too long for 1.0. */
static void v2_v3_headers(void **st) {
    (void)st;
    for (int major = 2; major <= 3; major++) {
        static char h[70000 + 128];
        int hl = snprintf(h, sizeof h, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }");
        memset(h + hl, ' ', 70000);
        h[hl + 70000] = '\n';
        size_t len;
        unsigned char *b = mk_npy(major, h, (size_t)hl + 70001, 6, &len);
        gx_array *want = gen_array(GX_I16, 1, (int64_t[]){3});
        memcpy(b + len - 6, want->data, 6);
        gx_array *a = NULL;
        gx_error err;
        TU_OK(gx_npy_read_mem(b, len, &a, &err), err);
        assert_same_array(want, a);
        gx_array_unref(a);
        /* and errors in them point into the file correctly */
        b[12 + 11] = 'X';
        assert_int_equal(gx_npy_read_mem(b, len, &a, &err), GX_EFORMAT);
        assert_int_equal(err.pos, 12 + 11);
        gx_array_unref(want);
        free(b);
    }
}

/* ---- files ----------------------------------------------------------------- */

static void file_errors(void **st) {
    (void)st;
    char path[512];
    gx_error err;
    gx_array *a = NULL;
    tmp_path(path, sizeof path, "does-not-exist.npy");
    assert_int_equal(gx_npy_read_file(path, &a, &err), GX_EIO);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, strerror(ENOENT)));
    assert_null(a);

    assert_int_equal(gx_npy_read_file(tmpdir, &a, &err), GX_EIO);
    assert_non_null(strstr(err.message, tmpdir));
    assert_non_null(strstr(err.message, strerror(EISDIR)));

    /* writing into a missing directory */
    gx_array *x = gen_array(GX_F32, 1, (int64_t[]){4});
    tmp_path(path, sizeof path, "no/such/dir/x.npy");
    assert_int_equal(gx_npy_write_file(x, path, &err), GX_EIO);
    assert_non_null(strstr(err.message, path));
    assert_non_null(strstr(err.message, strerror(ENOENT)));

    /* rename onto a directory fails; the temp file is removed */
    tmp_path(path, sizeof path, "adir");
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(gx_npy_write_file(x, path, &err), GX_EIO);
    assert_non_null(strstr(err.message, "rename"));
    assert_int_equal(count_files(".tmp."), 0);
    rmdir(path);

    /* overwriting replaces the file whole */
    tmp_path(path, sizeof path, "over.npy");
    write_bytes(path, "junk that is not an npy file at all", 35);
    TU_OK(gx_npy_write_file(x, path, &err), err);
    TU_OK(gx_npy_read_file(path, &a, &err), err);
    assert_same_array(x, a);
    gx_array_unref(a);
    assert_int_equal(count_files(".tmp."), 0);
    unlink(path);

    /* bad arguments and bad arrays */
    void *buf;
    size_t len;
    assert_int_equal(gx_npy_read_mem(NULL, 4, &a, &err), GX_EINVAL);
    assert_int_equal(gx_npy_read_mem("x", 1, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_npy_read_file(NULL, &a, &err), GX_EINVAL);
    assert_int_equal(gx_npy_write_mem(NULL, &buf, &len, &err), GX_EINVAL);
    assert_int_equal(gx_npy_write_mem(x, NULL, &len, &err), GX_EINVAL);
    assert_int_equal(gx_npy_write_file(x, NULL, &err), GX_EINVAL);
    gx_array bad = *x;
    bad.dtype = (gx_dtype)99;
    assert_int_equal(gx_npy_write_mem(&bad, &buf, &len, &err), GX_EINVAL);
    bad = *x;
    bad.ndim = GX_MAX_DIMS + 1;
    assert_int_equal(gx_npy_write_mem(&bad, &buf, &len, &err), GX_EINVAL);
    bad = *x;
    bad.shape[0] = 5; /* disagrees with count and nbytes */
    assert_int_equal(gx_npy_write_mem(&bad, &buf, &len, &err), GX_EINVAL);
    bad = *x;
    bad.data = NULL;
    assert_int_equal(gx_npy_write_mem(&bad, &buf, &len, &err), GX_EINVAL);
    gx_array_unref(x);
    /* NULL err is fine everywhere */
    assert_int_equal(gx_npy_read_mem("\x93NUMPY", 6, &a, NULL), GX_EFORMAT);
    assert_int_equal(gx_npy_read_file(path, &a, NULL), GX_EIO);
}

/* A pipe is not a regular file: the reader streams it and must say exactly
 * what it says for the same bytes in memory. */
static void fifo_input(void **st) {
    (void)st;
    char path[512];
    tmp_path(path, sizeof path, "fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    gx_array *x = gen_array(GX_I32, 2, (int64_t[]){3, 5});
    void *img;
    size_t len;
    gx_error err;
    TU_OK(gx_npy_write_mem(x, &img, &len, &err), err);
    /* good image, cut short, with trailing bytes, and a bad header */
    size_t lens[] = {len, len - 3, len + 5, 40};
    unsigned char *big = calloc(1, len + 5);
    assert_non_null(big);
    memcpy(big, img, len);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        if (k == 3) big[20] = '!';
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            FILE *f = fopen(path, "wb");
            if (!f) _exit(1);
            size_t w = fwrite(big, 1, lens[k], f);
            fclose(f);
            _exit(w == lens[k] ? 0 : 1);
        }
        gx_array *a = NULL, *m = NULL;
        gx_error merr;
        int rc = gx_npy_read_file(path, &a, &err);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        int mrc = gx_npy_read_mem(big, lens[k], &m, &merr);
        assert_int_equal(rc, mrc);
        if (rc == 0) {
            assert_same_array(x, a);
            gx_array_unref(a);
            gx_array_unref(m);
        } else {
            assert_string_equal(err.message, merr.message);
            assert_int_equal(err.pos, merr.pos);
        }
        assert_int_equal(rc == 0, k == 0);
    }
    free(big);
    free(img);
    gx_array_unref(x);
    unlink(path);
}

/* ---- NumPy interop ------------------------------------------------------------ */

/* Python twin of gen_elem. */
static const char PY_GEN[] =
    "import sys, io\n"
    "import numpy as np\n"
    "def gen(descr, shape):\n"
    "    dt = np.dtype(descr)\n"
    "    n = int(np.prod(shape, dtype=np.int64))\n"
    "    i = np.arange(n, dtype=np.uint64)\n"
    "    k, sz = dt.kind, dt.itemsize\n"
    "    if k == 'b':\n"
    "        v = (i % 3 == 0)\n"
    "    elif k in 'iu':\n"
    "        v = (i * np.uint64(2654435761)).astype('u%d' % sz).view('%s%d' % (k, sz))\n"
    "    elif sz == 2:\n"
    "        v = (i % 1000).astype(np.float64) * 0.125 - 50\n"
    "    elif sz == 4:\n"
    "        v = (i.astype(np.float64) * 0.1 - 7.3).astype(np.float32)\n"
    "    else:\n"
    "        v = i.astype(np.float64) * 0.1 - 7.3\n"
    "    return v.astype(dt).reshape(shape)\n"
    "bad = 0\n"
    "def save(path, descr, shape, version, fortran=False):\n"
    "    a = gen(descr, shape)\n"
    "    if fortran: a = np.asfortranarray(a)\n"
    "    if version == 1: np.save(path, a)\n"
    "    else:\n"
    "        with open(path, 'wb') as f: np.lib.format.write_array(f, a, version=(version, 0))\n"
    "def check(path, descr, shape):\n"
    "    global bad\n"
    "    a = np.load(path, allow_pickle=False)\n"
    "    want = gen(descr, shape)\n"
    "    if a.dtype.str != descr or a.shape != shape or not np.array_equal(a, want):\n"
    "        print('%s: got %s %r, want %s %r' % (path, a.dtype.str, a.shape, descr, shape))\n"
    "        bad += 1\n"
    "    if np.lib.NumpyVersion(np.__version__) >= '1.23.0':\n"
    "        b = io.BytesIO(); np.save(b, want)\n"
    "        if open(path, 'rb').read() != b.getvalue():\n"
    "            print('%s: bytes differ from numpy.save' % path)\n"
    "            bad += 1\n";

static int numpy_available(void) {
    static int avail = -1;
    if (avail < 0)
        avail = access(PYTHON, X_OK) == 0 &&
                system(PYTHON " -c 'import numpy' >/dev/null 2>&1") == 0;
    return avail;
}

#define SKIP_WITHOUT_NUMPY()                                  \
    do {                                                      \
        if (!numpy_available()) {                             \
            printf("skipped: numpy not available\n");         \
            skip();                                           \
        }                                                     \
    } while (0)

/* Run a Python script (PY_GEN + body) and fail with its output if it fails. */
static void run_python(const char *name, const char *body) {
    char script[512], cmd[1200];
    tmp_path(script, sizeof script, name);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(PY_GEN, f);
    fputs(body, f);
    fputs("sys.exit(1 if bad else 0)\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, PYTHON " '%s' 2>&1", script);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("python failed (%d):\n%s", st, out);
    unlink(script);
}

static const struct {
    const char *name;
    const char *descr;
    gx_dtype dt;
    int ndim;
    int64_t shape[4];
    int version;
} np_cases[] = {
    {"f4", "<f4", GX_F32, 2, {3, 4}, 1},        {"f8", "<f8", GX_F64, 1, {5}, 1},
    {"f2", "<f2", GX_F16, 2, {2, 3}, 1},        {"i1", "|i1", GX_I8, 1, {300}, 1},
    {"i2", "<i2", GX_I16, 2, {3, 3}, 1},        {"i4", "<i4", GX_I32, 3, {2, 2, 2}, 1},
    {"i8", "<i8", GX_I64, 1, {40}, 1},          {"u1", "|u1", GX_U8, 0, {0}, 1},
    {"u2", "<u2", GX_U16, 1, {6}, 1},           {"u4", "<u4", GX_U32, 4, {1, 2, 3, 2}, 1},
    {"u8", "<u8", GX_U64, 1, {50}, 1},          {"b1", "|b1", GX_BOOL, 2, {4, 3}, 1},
    {"f8be", ">f8", GX_F64, 2, {3, 2}, 1},      {"i4be", ">i4", GX_I32, 1, {5}, 1},
    {"u2be", ">u2", GX_U16, 1, {4}, 1},         {"f2be", ">f2", GX_F16, 1, {9}, 1},
    {"empty1", "<i8", GX_I64, 1, {0}, 1},       {"empty3", "<f4", GX_F32, 3, {2, 0, 3}, 1},
    {"scalarf", "<f8", GX_F64, 0, {0}, 1},      {"v2", "<f8", GX_F64, 1, {3}, 2},
    {"v3", "<i2", GX_I16, 2, {2, 2}, 3},        {"big", "<f4", GX_F32, 2, {300, 70}, 1},
};
#define N_NP (sizeof np_cases / sizeof np_cases[0])

static void shape_py(int ndim, const int64_t *shape, char *out, size_t cap) {
    size_t o = (size_t)snprintf(out, cap, "(");
    for (int i = 0; i < ndim; i++)
        o += (size_t)snprintf(out + o, cap - o, "%lld,", (long long)shape[i]);
    snprintf(out + o, cap - o, ")");
}

/* (a) numpy.save writes, we read and check every value. */
static void numpy_writes_we_read(void **st) {
    (void)st;
    SKIP_WITHOUT_NUMPY();
    char body[8192], shp[64], path[512];
    size_t o = 0;
    for (size_t k = 0; k < N_NP; k++) {
        shape_py(np_cases[k].ndim, np_cases[k].shape, shp, sizeof shp);
        tmp_path(path, sizeof path, np_cases[k].name);
        o += (size_t)snprintf(body + o, sizeof body - o, "save('%s.npy', '%s', %s, %d)\n", path,
                              np_cases[k].descr, shp, np_cases[k].version);
    }
    tmp_path(path, sizeof path, "fortran");
    o += (size_t)snprintf(body + o, sizeof body - o, "save('%s.npy', '<i4', (2, 3), 1, True)\n",
                          path);
    tmp_path(path, sizeof path, "complex");
    snprintf(body + o, sizeof body - o, "np.save('%s.npy', np.arange(3) * 1j)\n", path);
    run_python("np_write.py", body);

    for (size_t k = 0; k < N_NP; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.npy", np_cases[k].name);
        tmp_path(path, sizeof path, name);
        gx_array *a = NULL;
        gx_error err;
        int rc = gx_npy_read_file(path, &a, &err);
        if (rc) fail_msg("%s: %s: %s", name, gx_err_name(rc), err.message);
        assert_int_equal(a->dtype, np_cases[k].dt);
        assert_int_equal(a->ndim, np_cases[k].ndim);
        for (int i = 0; i < a->ndim; i++) assert_int_equal(a->shape[i], np_cases[k].shape[i]);
        int64_t bad = gen_mismatch(a);
        if (bad >= 0) fail_msg("%s: element %lld differs", name, (long long)bad);
        gx_array_unref(a);
        unlink(path);
    }
    gx_error err;
    gx_array *a = NULL;
    tmp_path(path, sizeof path, "fortran.npy");
    assert_int_equal(gx_npy_read_file(path, &a, &err), GX_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "Fortran"));
    unlink(path);
    tmp_path(path, sizeof path, "complex.npy");
    assert_int_equal(gx_npy_read_file(path, &a, &err), GX_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "complex"));
    unlink(path);
}

/* The descr numpy reports for what we write (little-endian host). */
static const char *const np_descr[GX_DT_COUNT] = {
    [GX_F32] = "<f4", [GX_F64] = "<f8", [GX_I32] = "<i4", [GX_I64] = "<i8",
    [GX_U8] = "|u1",  [GX_I8] = "|i1",  [GX_I16] = "<i2", [GX_U16] = "<u2",
    [GX_U32] = "<u4", [GX_U64] = "<u8", [GX_BOOL] = "|b1", [GX_F16] = "<f2",
};

/* (b) we write, numpy.load reads and checks values, dtype, shape, and that
 * the bytes are the ones numpy.save itself would write. */
static void we_write_numpy_reads(void **st) {
    (void)st;
    SKIP_WITHOUT_NUMPY();
    static char body[32768];
    size_t o = 0;
    int n = 0;
    for (size_t d = 0; d < N_DTYPES; d++) {
        for (size_t s = 0; s < N_SHAPES; s++) {
            gx_dtype dt = all_dtypes[d];
            gx_array *a = gen_array(dt, shapes[s].ndim, shapes[s].shape);
            char name[64], path[512], shp[64], descr[8];
            snprintf(name, sizeof name, "ours_%s_%zu.npy", gx_dtype_name(dt), s);
            tmp_path(path, sizeof path, name);
            gx_error err;
            TU_OK(gx_npy_write_file(a, path, &err), err);
            snprintf(descr, sizeof descr, "%s", np_descr[dt]);
            shape_py(shapes[s].ndim, shapes[s].shape, shp, sizeof shp);
            o += (size_t)snprintf(body + o, sizeof body - o, "check('%s', '%s', %s)\n", path,
                                  descr, shp);
            assert_true(o < sizeof body);
            gx_array_unref(a);
            n++;
        }
    }
    run_python("np_read.py", body);
    for (size_t d = 0; d < N_DTYPES; d++)
        for (size_t s = 0; s < N_SHAPES; s++) {
            char name[64], path[512];
            snprintf(name, sizeof name, "ours_%s_%zu.npy", gx_dtype_name(all_dtypes[d]), s);
            tmp_path(path, sizeof path, name);
            unlink(path);
        }
    assert_int_equal(n, (int)(N_DTYPES * N_SHAPES));
}

/* ---- main ---------------------------------------------------------------------- */

static int setup(void **st) {
    (void)st;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/gx-npy-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", tmpdir, strerror(errno));
        return -1;
    }
    tu_seed();
    return 0;
}

/* Remove what a failed test may have left, then the directory itself. */
static int teardown(void **st) {
    (void)st;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        char path[600];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
            if (unlink(path)) rmdir(path);
        }
        closedir(d);
    }
    return rmdir(tmpdir) ? -1 : 0;
}

/* Conversions saturate at the integer's whole range (they stopped 1023
 * and 2047 short of it). */
static void saturation(void **st) {
    (void)st;
    gx_array *a = NULL;
    int64_t one = 1;
    assert_int_equal(gx_array_new(GX_I64, 1, &one, &a, NULL), 0);
    gx_array_set_f64(a, 0, 1e30);
    assert_true(gx_array_get_i64(a, 0) == INT64_MAX);
    gx_array_set_f64(a, 0, -1e30);
    assert_true(gx_array_get_i64(a, 0) == INT64_MIN);
    gx_array_set_f64(a, 0, 9223372036854774784.0); /* the largest double below 2^63: exact */
    assert_true(gx_array_get_i64(a, 0) == 9223372036854774784LL);
    gx_array_unref(a);
    assert_int_equal(gx_array_new(GX_U64, 1, &one, &a, NULL), 0);
    gx_array_set_f64(a, 0, 1e30);
    assert_true(gx_array_get_u64(a, 0) == UINT64_MAX);
    gx_array_unref(a);
    assert_int_equal(gx_array_new(GX_F64, 1, &one, &a, NULL), 0);
    gx_array_set_f64(a, 0, 1e30);
    assert_true(gx_array_get_i64(a, 0) == INT64_MAX);
    assert_true(gx_array_get_u64(a, 0) == UINT64_MAX);
    gx_array_unref(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_all),
        cmocka_unit_test(saturation),
        cmocka_unit_test(roundtrip_wrapped),
        cmocka_unit_test(header_matches_numpy),
        cmocka_unit_test(malformed_table),
        cmocka_unit_test(overflow_fails_fast),
        cmocka_unit_test(big_endian_input),
        cmocka_unit_test(header_variants),
        cmocka_unit_test(bool_normalised),
        cmocka_unit_test(v2_v3_headers),
        cmocka_unit_test(file_errors),
        cmocka_unit_test(fifo_input),
        cmocka_unit_test(numpy_writes_we_read),
        cmocka_unit_test(we_write_numpy_reads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
