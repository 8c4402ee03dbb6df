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

double gx_array_get_f64(const gx_array *a, int64_t i) {
    const void *d = a->data;
    switch (a->dtype) {
    case GX_F32: return ((const float *)d)[i];
    case GX_F64: return ((const double *)d)[i];
    case GX_I32: return ((const int32_t *)d)[i];
    case GX_I64: return (double)((const int64_t *)d)[i];
    case GX_U8: return ((const uint8_t *)d)[i];
    case GX_I8: return ((const int8_t *)d)[i];
    case GX_I16: return ((const int16_t *)d)[i];
    case GX_U16: return ((const uint16_t *)d)[i];
    case GX_U32: return ((const uint32_t *)d)[i];
    case GX_U64: return (double)((const uint64_t *)d)[i];
    case GX_BOOL: return ((const uint8_t *)d)[i] != 0;
    default: return 0;
    }
}

/* Saturating conversion of a double to an integer range (NaN -> 0): never
 * undefined behaviour, whatever the input. */
static inline double clampd(double v, double lo, double hi) {
    return v != v ? 0 : v < lo ? lo : v > hi ? hi : v;
}

void gx_array_set_f64(gx_array *a, int64_t i, double v) {
    void *d = a->data;
    switch (a->dtype) {
    case GX_F32: /* NaN stays NaN; beyond float's range becomes infinity */
        ((float *)d)[i] = v > FLT_MAX ? INFINITY : v < -FLT_MAX ? -INFINITY : (float)v;
        break;
    case GX_F64: ((double *)d)[i] = v; break;
    case GX_I32: ((int32_t *)d)[i] = (int32_t)clampd(v, INT32_MIN, INT32_MAX); break;
    case GX_I64: ((int64_t *)d)[i] = (int64_t)clampd(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case GX_U8: ((uint8_t *)d)[i] = (uint8_t)clampd(v, 0, UINT8_MAX); break;
    case GX_I8: ((int8_t *)d)[i] = (int8_t)clampd(v, INT8_MIN, INT8_MAX); break;
    case GX_I16: ((int16_t *)d)[i] = (int16_t)clampd(v, INT16_MIN, INT16_MAX); break;
    case GX_U16: ((uint16_t *)d)[i] = (uint16_t)clampd(v, 0, UINT16_MAX); break;
    case GX_U32: ((uint32_t *)d)[i] = (uint32_t)clampd(v, 0, UINT32_MAX); break;
    case GX_U64: ((uint64_t *)d)[i] = (uint64_t)clampd(v, 0, 18446744073709549568.0); break;
    case GX_BOOL: ((uint8_t *)d)[i] = v != 0; break;
    default: break;
    }
}
