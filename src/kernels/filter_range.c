/*
 * filter_range.c - the values of x with lo <= x <= hi, and where they were.
 *
 * Two passes: count, then copy, so the outputs are allocated exactly. NaNs
 * never match. i64 values are compared exactly (the bounds are turned into
 * the integer interval [ceil(lo), floor(hi)] rather than converting each
 * value to f64, which would round values above 2^53); the other dtypes
 * convert to f64 exactly. An empty result gives outputs of length 0.
 */
#include <math.h>

#include "kernels_int.h"

enum { ARG_LO, ARG_HI };
enum { IN_X };
enum { OUT_Y, OUT_INDEX };

static int filter_range_validate(const gx_kcall *c) {
    double lo = c->args[ARG_LO], hi = c->args[ARG_HI];
    if (lo > hi)
        return gx_error_set(c->err, GX_EINVAL, "args.hi",
                            "hi (%g) is below lo (%g); nothing could match", hi, lo);
    return 0;
}

/* The inclusive integer interval of [lo, hi]; returns 0 if it is empty. */
static int int_bounds(double lo, double hi, int64_t *ilo, int64_t *ihi) {
    const double two63 = 9223372036854775808.0;
    double cl = ceil(lo), fh = floor(hi);
    if (cl >= two63 || fh < -two63 || cl > fh) return 0;
    *ilo = cl <= -two63 ? INT64_MIN : (int64_t)cl;
    *ihi = fh >= two63 ? INT64_MAX : (int64_t)fh;
    return 1;
}

/* Calls EMIT(i) for every matching index i in [i0, i1). */
#define SCAN(x, i0, i1, EMIT)                                                          \
    do {                                                                               \
        switch ((x)->dtype) {                                                          \
        case GX_F32: {                                                                 \
            const float *v_ = (x)->data;                                               \
            for (int64_t i = i0; i < i1; i++)                                          \
                if (v_[i] >= lo && v_[i] <= hi) EMIT(i);                               \
            break;                                                                     \
        }                                                                              \
        case GX_F64: {                                                                 \
            const double *v_ = (x)->data;                                              \
            for (int64_t i = i0; i < i1; i++)                                          \
                if (v_[i] >= lo && v_[i] <= hi) EMIT(i);                               \
            break;                                                                     \
        }                                                                              \
        case GX_I32: {                                                                 \
            const int32_t *v_ = (x)->data;                                             \
            for (int64_t i = i0; i < i1; i++)                                          \
                if (v_[i] >= lo && v_[i] <= hi) EMIT(i);                               \
            break;                                                                     \
        }                                                                              \
        default: {                                                                     \
            const int64_t *v_ = (x)->data;                                             \
            if (ihave)                                                                 \
                for (int64_t i = i0; i < i1; i++)                                      \
                    if (v_[i] >= ilo && v_[i] <= ihi) EMIT(i);                         \
            break;                                                                     \
        }                                                                              \
        }                                                                              \
    } while (0)

static int filter_range_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    double lo = c->args[ARG_LO], hi = c->args[ARG_HI];
    int64_t ilo = 0, ihi = -1;
    int ihave = int_bounds(lo, hi, &ilo, &ihi);
    int64_t n = x->count, m = 0;
#define COUNT(i) m++
    for (int64_t i0 = 0; i0 < n; i0 += GX_KCHUNK) {
        if (gx_kcall_cancelled(c)) return gx__kcancel(c);
        int64_t i1 = i0 + GX_KCHUNK < n ? i0 + GX_KCHUNK : n;
        SCAN(x, i0, i1, COUNT);
    }
    int rc = gx__kout(c, OUT_Y, x->dtype, 1, &m);
    if (!rc) rc = gx__kout(c, OUT_INDEX, GX_I64, 1, &m);
    if (rc) return rc;
    int64_t *index = c->out[OUT_INDEX]->data, k = 0;
#define STORE(i) index[k++] = (i)
    for (int64_t i0 = 0; i0 < n; i0 += GX_KCHUNK) {
        if (gx_kcall_cancelled(c)) return gx__kcancel(c);
        int64_t i1 = i0 + GX_KCHUNK < n ? i0 + GX_KCHUNK : n;
        SCAN(x, i0, i1, STORE);
    }
    /* gather the values by position: one loop per element size */
    size_t es = gx_dtype_size(x->dtype);
    if (es == 4) {
        const uint32_t *s = x->data;
        uint32_t *d = c->out[OUT_Y]->data;
        for (int64_t j = 0; j < m; j++) d[j] = s[index[j]];
    } else {
        const uint64_t *s = x->data;
        uint64_t *d = c->out[OUT_Y]->data;
        for (int64_t j = 0; j < m; j++) d[j] = s[index[j]];
    }
    return 0;
}

static uint64_t filter_range_mem(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    /* worst case: everything matches */
    return x ? x->nbytes * 2 + (uint64_t)x->count * 8 : 0;
}

static double filter_range_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    return x ? 1.0 + (double)x->count * 3e-3 : -1;
}

static const gx_arg_spec filter_range_args[] = {
    [ARG_LO] = {.name = "lo", .type = GX_ARG_FLOAT, .required = 1, GX_KARG_ANY_FLOAT,
                .doc = "smallest value kept (inclusive)"},
    [ARG_HI] = {.name = "hi", .type = GX_ARG_FLOAT, .required = 1, GX_KARG_ANY_FLOAT,
                .doc = "largest value kept (inclusive); >= lo"},
};

static const gx_io_spec filter_range_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_NUM, .rank = 1, .shape = "[n]",
              .doc = "values to filter (f32, f64, i32, i64)"},
};

static const gx_io_spec filter_range_out[] = {
    [OUT_Y] = {.name = "y", .dtypes = GX_DTM_NUM, .rank = 1, .shape = "[m]",
               .doc = "the values in [lo, hi], in input order, dtype of x"},
    [OUT_INDEX] = {.name = "index", .dtypes = GX_DTM(GX_I64), .rank = 1, .shape = "[m]",
                   .doc = "position in x of each value of y"},
};

const gx_kernel gx__k_filter_range = {
    GX_KERNEL_HEADER,
    .name = "filter_range",
    .version = 1,
    .summary = "values of x within [lo, hi] and their positions",
    .args = filter_range_args,
    .nargs = 2,
    .inputs = filter_range_in,
    .ninputs = 1,
    .outputs = filter_range_out,
    .noutputs = 2,
    .validate = filter_range_validate,
    .mem_bytes = filter_range_mem,
    .cost_us = filter_range_cost,
    .run = {[GX_DEV_CPU] = filter_range_run},
};
