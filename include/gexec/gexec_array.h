/*
 * gexec_array.h - n-dimensional arrays and the .npy format.
 *
 * A gx_array is a reference-counted, C-ordered, little-endian block of
 * elements of one dtype. Jobs take references to their inputs, kernels create
 * their outputs, and the same array may be shared by many jobs (a blob used
 * as input a thousand times is held once). The descriptor fields are public
 * for fast reading; treat them as read-only and change only the bytes under
 * `data`, and only while you hold the sole reference.
 *
 * Arrays cross process boundaries as .npy files (NumPy's format, versions
 * 1.0, 2.0 and 3.0 headers), so Python users read results with numpy.load.
 */
#ifndef GEXEC_ARRAY_H
#define GEXEC_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types. Values are stable (stored and sent over the API). */
typedef enum gx_dtype {
    GX_DT_INVALID = 0,
    GX_F32 = 1,
    GX_F64 = 2,
    GX_I32 = 3,
    GX_I64 = 4,
    GX_U8 = 5,
    GX_I8 = 6,
    GX_I16 = 7,
    GX_U16 = 8,
    GX_U32 = 9,
    GX_U64 = 10,
    GX_BOOL = 11,
    GX_F16 = 12,
    GX_DT_COUNT
} gx_dtype;

/* Bit for a dtype in a dtype mask (gx_io_spec.dtypes). */
#define GX_DTM(dt) (1u << (dt))
#define GX_DTM_FLOAT (GX_DTM(GX_F32) | GX_DTM(GX_F64))
#define GX_DTM_INT (GX_DTM(GX_I32) | GX_DTM(GX_I64))
#define GX_DTM_NUM (GX_DTM_FLOAT | GX_DTM_INT)

#define GX_MAX_DIMS 8

/* Largest element count an array may have (2^34 elements, 64-128 GiB):
 * a safety bound so that hostile shapes fail cleanly. */
#define GX_ARRAY_MAX_ELEMS (INT64_C(1) << 34)

typedef struct gx_array {
    gx_dtype dtype;             /* element type */
    int ndim;                   /* 0..GX_MAX_DIMS; 0 is a scalar of 1 element */
    int64_t shape[GX_MAX_DIMS]; /* extent of each dimension, C order */
    int64_t count;              /* product of shape (1 for a scalar) */
    size_t nbytes;              /* count * element size */
    void *data;                 /* nbytes of element data, 64-byte aligned when
                                   allocated by gx_array_new */
    /* private */
    int refs_;                          /* reference count (atomic) */
    void (*free_fn_)(void *data, void *ctx); /* releases data of a wrapped array */
    void *free_ctx_;
} gx_array;

/* Size in bytes of one element; 0 for an invalid dtype. */
size_t gx_dtype_size(gx_dtype dt);
/* Short name: "f32", "f64", "i32", "i64", "u8", ...; "invalid" otherwise. */
const char *gx_dtype_name(gx_dtype dt);
/* Parse a short name ("f32", "float32" also accepted); GX_DT_INVALID if
 * unknown. */
gx_dtype gx_dtype_from_name(const char *name);

/* Allocate a zero-filled array. Fails with GX_EINVAL for a bad dtype, rank or
 * negative extent, GX_EOVERFLOW past GX_ARRAY_MAX_ELEMS, GX_ENOMEM. On success
 * *out holds one reference; release it with gx_array_unref. */
int gx_array_new(gx_dtype dt, int ndim, const int64_t *shape, gx_array **out,
                 gx_error *err);

/* Like gx_array_new for a 1-D array of n elements. */
int gx_array_new1(gx_dtype dt, int64_t n, gx_array **out, gx_error *err);

/* Wrap caller memory without copying. free_fn(data, ctx) is called when the
 * last reference goes (free_fn may be NULL: the caller keeps ownership and
 * must keep data alive until then). */
int gx_array_wrap(gx_dtype dt, int ndim, const int64_t *shape, void *data,
                  void (*free_fn)(void *data, void *ctx), void *ctx,
                  gx_array **out, gx_error *err);

/* Deep copy into a new array (one reference). */
int gx_array_copy(const gx_array *a, gx_array **out, gx_error *err);

/* Add / drop a reference. Thread-safe. unref(NULL) is a no-op. */
gx_array *gx_array_ref(gx_array *a);
void gx_array_unref(gx_array *a);

/* Element i (flat index) converted to double (f16 included; integers past
 * 2^53 round). No bounds check. */
double gx_array_get_f64(const gx_array *a, int64_t i);
/* Store v at flat index i, converted to the array's dtype: floats round to
 * nearest (beyond the dtype's range: infinity), integers truncate and
 * saturate at the dtype's range (NaN: 0). */
void gx_array_set_f64(gx_array *a, int64_t i, double v);

/* Flat index of a's first NaN or infinity, or -1 when every element is
 * finite (always -1 for integer and bool arrays). */
int64_t gx_array_find_nonfinite(const gx_array *a);

/* Range of an integer dtype, bool as 0..1: *min is 0 for unsigned ones and
 * *max is exact (UINT64_MAX for u64). Returns 0 (and leaves both alone) for
 * a float or invalid dtype, 1 otherwise. */
int gx_dtype_int_range(gx_dtype dt, int64_t *min, uint64_t *max);
/* Largest finite value of a float dtype (65504 for f16, FLT_MAX, DBL_MAX);
 * 0 for an integer, bool or invalid dtype. A finite double past it (with
 * rounding) becomes infinity in gx_array_set_f64. */
double gx_dtype_float_max(gx_dtype dt);

/* Element i exactly, for integer and bool arrays (no trip through double,
 * so i64/u64 values past 2^53 survive). get_i64 of a u64 element above
 * INT64_MAX saturates to INT64_MAX, get_u64 of a negative one to 0: read
 * u64 with get_u64 and signed dtypes with get_i64. Float elements are
 * truncated and saturated as gx_array_set_f64 does. No bounds check. */
int64_t gx_array_get_i64(const gx_array *a, int64_t i);
uint64_t gx_array_get_u64(const gx_array *a, int64_t i);
/* Store an integer at flat index i: exact where the dtype holds it,
 * saturated at its range otherwise (bool: v != 0); float dtypes round. */
void gx_array_set_i64(gx_array *a, int64_t i, int64_t v);
void gx_array_set_u64(gx_array *a, int64_t i, uint64_t v);

/* IEEE 754 binary16 (f16) bits to double, exactly (every half is a double):
 * normals, subnormals, signed zeros, infinities and NaN. */
double gx_f16_to_f64(uint16_t h);
/* Double to binary16 bits, rounded to nearest even; past the largest half
 * (65504, with rounding) infinity, NaN stays a (quiet) NaN. */
uint16_t gx_f64_to_f16(double v);

/* Non-finite floats in JSON, which has no numbers for them: the strings
 * "NaN", "Infinity" and "-Infinity" (the names Python and JavaScript give
 * them; many JSON APIs use the same). gx_float_special_name returns the string for a
 * NaN or an infinity (static, never freed) and NULL for a finite v.
 * gx_float_special_parse sets *v from one of the three strings, exactly as
 * written, and returns 0; -1 (and *v untouched) for any other string or
 * NULL. Both are thread-safe. */
const char *gx_float_special_name(double v);
int gx_float_special_parse(const char *s, double *v);

/* ---- .npy ---------------------------------------------------------------
 * Readers accept versions 1.0, 2.0 and 3.0, little-endian or byte-order-free
 * dtypes ('<', '|'; big-endian '>' is converted), fortran_order False only,
 * and refuse anything malformed with GX_EFORMAT, a message naming the
 * problem and err->pos at the offending header byte. Writers emit version 1.0
 * (2.0 when the header needs it) with 64-byte alignment as NumPy does. */

/* Parse a whole .npy image from memory; the data is copied. */
int gx_npy_read_mem(const void *buf, size_t len, gx_array **out, gx_error *err);
/* Read a .npy file (GX_EIO if it cannot be opened or read). */
int gx_npy_read_file(const char *path, gx_array **out, gx_error *err);
/* Serialise to a malloc'd buffer; caller frees *buf with free(). */
int gx_npy_write_mem(const gx_array *a, void **buf, size_t *len, gx_error *err);
/* Write to a file (created or truncated, written then renamed into place). */
int gx_npy_write_file(const gx_array *a, const char *path, gx_error *err);

#ifdef __cplusplus
}
#endif
#endif
