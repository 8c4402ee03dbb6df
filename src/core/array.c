/*
 * array.c - reference-counted n-d arrays.
 *
 * Data of arrays made here is 64-byte aligned (cache lines, SIMD) and
 * zero-filled. Wrapped arrays point at caller memory and call the caller's
 * free function when the last reference goes.
 */
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_array.h"

static const struct {
    const char *name;
    const char *alt;
    size_t size;
} dtypes[GX_DT_COUNT] = {
    [GX_DT_INVALID] = {"invalid", NULL, 0}, [GX_F32] = {"f32", "float32", 4},
    [GX_F64] = {"f64", "float64", 8},       [GX_I32] = {"i32", "int32", 4},
    [GX_I64] = {"i64", "int64", 8},         [GX_U8] = {"u8", "uint8", 1},
    [GX_I8] = {"i8", "int8", 1},            [GX_I16] = {"i16", "int16", 2},
    [GX_U16] = {"u16", "uint16", 2},        [GX_U32] = {"u32", "uint32", 4},
    [GX_U64] = {"u64", "uint64", 8},        [GX_BOOL] = {"bool", "b1", 1},
    [GX_F16] = {"f16", "float16", 2},
};

size_t gx_dtype_size(gx_dtype dt) {
    return (dt > GX_DT_INVALID && dt < GX_DT_COUNT) ? dtypes[dt].size : 0;
}

const char *gx_dtype_name(gx_dtype dt) {
    return (dt > GX_DT_INVALID && dt < GX_DT_COUNT) ? dtypes[dt].name : "invalid";
}

gx_dtype gx_dtype_from_name(const char *name) {
    if (!name) return GX_DT_INVALID;
    for (int i = 1; i < GX_DT_COUNT; i++)
        if (!strcmp(name, dtypes[i].name) || !strcmp(name, dtypes[i].alt)) return (gx_dtype)i;
    return GX_DT_INVALID;
}

/* Check dtype/rank/shape and compute count and bytes. */
static int shape_check(gx_dtype dt, int ndim, const int64_t *shape, int64_t *count,
                       gx_error *err) {
    if (!gx_dtype_size(dt)) return gx_error_set(err, GX_EINVAL, "dtype", "unknown dtype %d", (int)dt);
    if (ndim < 0 || ndim > GX_MAX_DIMS)
        return gx_error_set(err, GX_EINVAL, "shape", "rank %d is outside 0..%d", ndim, GX_MAX_DIMS);
    if (ndim > 0 && !shape) return gx_error_set(err, GX_EINVAL, "shape", "shape is missing");
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return gx_error_set(err, GX_EINVAL, "shape", "dimension %d is negative (%lld)", i,
                                (long long)shape[i]);
        if (shape[i] > GX_ARRAY_MAX_ELEMS || (shape[i] && n > GX_ARRAY_MAX_ELEMS / shape[i]))
            return gx_error_set(err, GX_EOVERFLOW, "shape",
                                "array has more than 2^34 elements (dimension %d is %lld)", i,
                                (long long)shape[i]);
        n *= shape[i];
    }
    *count = n;
    return 0;
}

static gx_array *desc_new(gx_dtype dt, int ndim, const int64_t *shape, int64_t count) {
    gx_array *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->dtype = dt;
    a->ndim = ndim;
    for (int i = 0; i < ndim; i++) a->shape[i] = shape[i];
    a->count = count;
    a->nbytes = (size_t)count * gx_dtype_size(dt);
    atomic_init((_Atomic int *)&a->refs_, 1);
    return a;
}

int gx_array_new(gx_dtype dt, int ndim, const int64_t *shape, gx_array **out, gx_error *err) {
    int64_t count;
    int rc = shape_check(dt, ndim, shape, &count, err);
    if (rc) return rc;
    gx_array *a = desc_new(dt, ndim, shape, count);
    if (!a) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory for an array descriptor");
    size_t bytes = (a->nbytes + 63) & ~(size_t)63;
    if (bytes == 0) bytes = 64;
    a->data = aligned_alloc(64, bytes);
    if (!a->data) {
        free(a);
        return gx_error_set(err, GX_ENOMEM, "shape", "cannot allocate %zu bytes", bytes);
    }
    memset(a->data, 0, bytes);
    *out = a;
    return 0;
}

int gx_array_new1(gx_dtype dt, int64_t n, gx_array **out, gx_error *err) {
    return gx_array_new(dt, 1, &n, out, err);
}

int gx_array_wrap(gx_dtype dt, int ndim, const int64_t *shape, void *data,
                  void (*free_fn)(void *, void *), void *ctx, gx_array **out, gx_error *err) {
    int64_t count;
    int rc = shape_check(dt, ndim, shape, &count, err);
    if (rc) return rc;
    if (!data && count) return gx_error_set(err, GX_EINVAL, "data", "data is NULL");
    gx_array *a = desc_new(dt, ndim, shape, count);
    if (!a) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory for an array descriptor");
    a->data = data;
    a->free_fn_ = free_fn;
    /* free_ctx_ == a marks "wrapped, caller keeps the data" (no free_fn) */
    a->free_ctx_ = free_fn ? ctx : (void *)a;
    *out = a;
    return 0;
}

int gx_array_copy(const gx_array *a, gx_array **out, gx_error *err) {
    int rc = gx_array_new(a->dtype, a->ndim, a->shape, out, err);
    if (rc) return rc;
    if (a->nbytes) memcpy((*out)->data, a->data, a->nbytes);
    return 0;
}

gx_array *gx_array_ref(gx_array *a) {
    if (a) atomic_fetch_add_explicit((_Atomic int *)&a->refs_, 1, memory_order_relaxed);
    return a;
}

void gx_array_unref(gx_array *a) {
    if (!a) return;
    if (atomic_fetch_sub_explicit((_Atomic int *)&a->refs_, 1, memory_order_acq_rel) != 1) return;
    if (a->free_fn_)
        a->free_fn_(a->data, a->free_ctx_);
    else if (a->free_ctx_ != (void *)a)
        free(a->data);
    free(a);
}

/* ---- element access ---------------------------------------------------------
 * Integers are read and written exactly, through int64_t / uint64_t; only
 * the float dtypes go through double. */

int gx_dtype_int_range(gx_dtype dt, int64_t *min, uint64_t *max) {
    if (dt == GX_BOOL) {
        *min = 0, *max = 1;
        return 1;
    }
    if (dt == GX_DT_INVALID || dt >= GX_DT_COUNT || dt == GX_F16 || dt == GX_F32 || dt == GX_F64) return 0;
    int bits = 8 * (int)dtypes[dt].size;
    int is_signed = dt == GX_I8 || dt == GX_I16 || dt == GX_I32 || dt == GX_I64;
    /* 2^(bits-1) - 1 and 2^bits - 1 without shifting by 64 */
    *max = is_signed ? UINT64_MAX >> (65 - bits) : UINT64_MAX >> (64 - bits);
    *min = is_signed ? -(int64_t)*max - 1 : 0;
    return 1;
}

double gx_dtype_float_max(gx_dtype dt) {
    return dt == GX_F16 ? 65504.0 : dt == GX_F32 ? FLT_MAX : dt == GX_F64 ? DBL_MAX : 0;
}

double gx_f16_to_f64(uint16_t h) {
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    double v = exp == 0    ? ldexp(man, -24) /* zero or subnormal: man * 2^-24 */
               : exp == 31 ? (man ? NAN : INFINITY)
                           : ldexp(man | 0x400, exp - 25);
    return (h & 0x8000) ? -v : v;
}

uint16_t gx_f64_to_f16(double v) {
    uint16_t sign = signbit(v) ? 0x8000 : 0;
    double m = fabs(v);
    if (m != m) return sign | 0x7e00;
    /* 65520 is halfway between 65504 (the largest half, odd mantissa) and
     * 2^16: ties to even round it up, to infinity */
    if (m >= 65520.0) return sign | 0x7c00;
    /* scaling by a power of two is exact, so rint rounds once, to nearest
     * even; a rounded-up mantissa carries into the exponent by itself
     * (1024 units of 2^-24 is the smallest normal's bit pattern) */
    if (m < 0x1p-14) return sign | (uint16_t)rint(m * 0x1p24);
    int e;
    frexp(m, &e); /* m = f * 2^e, f in [0.5, 1): m's exponent is e - 1 */
    uint32_t q = (uint32_t)rint(ldexp(m, 11 - e)); /* 1024..2048 */
    return (uint16_t)(sign | (((uint32_t)(e - 1 + 15) << 10) + (q - 1024)));
}

const char *gx_float_special_name(double v) {
    return v != v ? "NaN" : v == INFINITY ? "Infinity" : v == -INFINITY ? "-Infinity" : NULL;
}

int gx_float_special_parse(const char *s, double *v) {
    if (!s) return -1;
    if (!strcmp(s, "NaN")) *v = NAN;
    else if (!strcmp(s, "Infinity")) *v = INFINITY;
    else if (!strcmp(s, "-Infinity")) *v = -INFINITY;
    else return -1;
    return 0;
}

double gx_array_get_f64(const gx_array *a, int64_t i) {
    const void *d = a->data;
    switch (a->dtype) {
    case GX_F32: return ((const float *)d)[i];
    case GX_F64: return ((const double *)d)[i];
    case GX_F16: return gx_f16_to_f64(((const uint16_t *)d)[i]);
    case GX_U64: return (double)((const uint64_t *)d)[i];
    case GX_DT_INVALID: case GX_DT_COUNT: return 0;
    default: return (double)gx_array_get_i64(a, i);
    }
}

/* Saturating conversion of a double to an integer range (NaN -> 0): never
 * undefined behaviour, whatever the input. */
static inline double clampd(double v, double lo, double hi) {
    return v != v ? 0 : v < lo ? lo : v > hi ? hi : v;
}

/* The largest doubles inside the i64 and u64 ranges (2^63 - 1024 and
 * 2^64 - 2048): the next ones up, 2^63 and 2^64, would not convert. */
#define I64_HI_D 9223372036854774784.0
#define U64_HI_D 18446744073709549568.0

/* Float to integer, saturating at the integer's whole range: the largest
 * doubles below 2^63 and 2^64 convert exactly, 2^63 and 2^64 themselves
 * (and all above) are INT64_MAX and UINT64_MAX (they stopped 1023 and 2047
 * short). NaN is 0, as clampd makes it. */
static int64_t sat_i64(double v) {
    return v >= 9223372036854775808.0 ? INT64_MAX : (int64_t)clampd(v, -9223372036854775808.0, I64_HI_D);
}
static uint64_t sat_u64(double v) { return v >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)clampd(v, 0, U64_HI_D); }

int64_t gx_array_find_nonfinite(const gx_array *a) {
    if (!a || (a->dtype != GX_F16 && a->dtype != GX_F32 && a->dtype != GX_F64)) return -1;
    for (int64_t i = 0; i < a->count; i++)
        if (!isfinite(gx_array_get_f64(a, i))) return i;
    return -1;
}

int64_t gx_array_get_i64(const gx_array *a, int64_t i) {
    const void *d = a->data;
    switch (a->dtype) {
    case GX_I64: return ((const int64_t *)d)[i];
    case GX_I32: return ((const int32_t *)d)[i];
    case GX_I16: return ((const int16_t *)d)[i];
    case GX_I8: return ((const int8_t *)d)[i];
    case GX_U8: return ((const uint8_t *)d)[i];
    case GX_U16: return ((const uint16_t *)d)[i];
    case GX_U32: return ((const uint32_t *)d)[i];
    case GX_BOOL: return ((const uint8_t *)d)[i] != 0;
    case GX_U64: {
        uint64_t u = ((const uint64_t *)d)[i];
        return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
    }
    default: return sat_i64(gx_array_get_f64(a, i));
    }
}

uint64_t gx_array_get_u64(const gx_array *a, int64_t i) {
    switch (a->dtype) {
    case GX_U64: return ((const uint64_t *)a->data)[i];
    case GX_F16: case GX_F32: case GX_F64: return sat_u64(gx_array_get_f64(a, i));
    default: {
        int64_t v = gx_array_get_i64(a, i);
        return v < 0 ? 0 : (uint64_t)v;
    }
    }
}

/* Store the low bytes of bits (a value already inside the dtype's range). */
static void put_int(gx_array *a, int64_t i, uint64_t bits) {
    void *d = a->data;
    switch (dtypes[a->dtype].size) {
    case 1: ((uint8_t *)d)[i] = (uint8_t)bits; break;
    case 2: ((uint16_t *)d)[i] = (uint16_t)bits; break;
    case 4: ((uint32_t *)d)[i] = (uint32_t)bits; break;
    default: ((uint64_t *)d)[i] = bits; break;
    }
}

void gx_array_set_u64(gx_array *a, int64_t i, uint64_t v) {
    int64_t lo;
    uint64_t hi;
    if (!gx_dtype_int_range(a->dtype, &lo, &hi))
        gx_array_set_f64(a, i, (double)v);
    else
        put_int(a, i, a->dtype == GX_BOOL ? v != 0 : v > hi ? hi : v);
}

void gx_array_set_i64(gx_array *a, int64_t i, int64_t v) {
    int64_t lo;
    uint64_t hi;
    if (v >= 0)
        gx_array_set_u64(a, i, (uint64_t)v);
    else if (!gx_dtype_int_range(a->dtype, &lo, &hi))
        gx_array_set_f64(a, i, (double)v);
    else /* two's complement bits of a value inside the range */
        put_int(a, i, a->dtype == GX_BOOL ? 1 : (uint64_t)(v < lo ? lo : v));
}

void gx_array_set_f64(gx_array *a, int64_t i, double v) {
    void *d = a->data;
    switch (a->dtype) {
    case GX_F32: /* NaN stays NaN; rounded to nearest, so a value past FLT_MAX by
                  * less than half its last place is FLT_MAX (as numpy's float32
                  * of 3.4028235e38) and a bigger one infinity */
        ((float *)d)[i] = v >= 0x1.ffffffp+127 ? INFINITY : v <= -0x1.ffffffp+127 ? -INFINITY : (float)v;
        break;
    case GX_F64: ((double *)d)[i] = v; break;
    case GX_F16: ((uint16_t *)d)[i] = gx_f64_to_f16(v); break;
    case GX_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    case GX_U64: ((uint64_t *)d)[i] = sat_u64(v); break;
    case GX_DT_INVALID: case GX_DT_COUNT: break;
    default: gx_array_set_i64(a, i, sat_i64(v)); break;
    }
}
