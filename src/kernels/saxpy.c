/*
 * saxpy.c - y = a*x + y on two vectors of one float dtype.
 *
 * The output is a new array (inputs are shared and never written). f32 is
 * computed in f32 with a rounded to f32 first, as BLAS saxpy does; f64 in
 * f64. Empty vectors give an empty result. Batchable: jobs are independent
 * element-wise updates.
 */
#include "kernels_int.h"

enum { ARG_A };
enum { IN_X, IN_Y };
enum { OUT_Y };

static int saxpy_validate(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X], *y = c->in[IN_Y];
    if (y->dtype != x->dtype)
        return gx_error_set(c->err, GX_EINVAL, "inputs.y.dtype",
                            "y is %s but x is %s; both must have the same dtype",
                            gx_dtype_name(y->dtype), gx_dtype_name(x->dtype));
    if (y->shape[0] != x->shape[0])
        return gx_error_set(c->err, GX_EINVAL, "inputs.y.shape[0]",
                            "y has %lld elements but x has %lld", (long long)y->shape[0],
                            (long long)x->shape[0]);
    return 0;
}

static int saxpy_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X], *y = c->in[IN_Y];
    int rc = gx__kout(c, OUT_Y, y->dtype, 1, y->shape);
    if (rc) return rc;
    int64_t n = x->count;
    double a = c->args[ARG_A];
    for (int64_t i0 = 0; i0 < n; i0 += GX_KCHUNK) {
        if (gx_kcall_cancelled(c)) return gx__kcancel(c);
        int64_t i1 = i0 + GX_KCHUNK < n ? i0 + GX_KCHUNK : n;
        if (x->dtype == GX_F32) {
            const float *xs = x->data, *ys = y->data;
            float *o = c->out[OUT_Y]->data, af = (float)a;
            for (int64_t i = i0; i < i1; i++) o[i] = af * xs[i] + ys[i];
        } else {
            const double *xs = x->data, *ys = y->data;
            double *o = c->out[OUT_Y]->data;
            for (int64_t i = i0; i < i1; i++) o[i] = a * xs[i] + ys[i];
        }
    }
    return 0;
}

static uint64_t saxpy_mem(const gx_kcall *c) {
    const gx_array *y = c->in[IN_Y];
    return gx__kin_bytes(c) + (y ? y->nbytes : 0);
}

/* About 1 ns per element (three streams through memory) plus call overhead. */
static double saxpy_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    return x ? 0.5 + (double)x->count * 1e-3 : -1;
}

static const gx_arg_spec saxpy_args[] = {
    [ARG_A] = {.name = "a", .type = GX_ARG_FLOAT, .required = 1, GX_KARG_ANY_FLOAT,
               .doc = "scale applied to x"},
};

static const gx_io_spec saxpy_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 1, .shape = "[n]",
              .doc = "vector scaled by a"},
    [IN_Y] = {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 1, .shape = "[n]",
              .doc = "vector added (same dtype and length as x)"},
};

static const gx_io_spec saxpy_out[] = {
    [OUT_Y] = {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 1, .shape = "[n]",
               .doc = "a*x + y, dtype of the inputs"},
};

const gx_kernel gx__k_saxpy = {
    GX_KERNEL_HEADER,
    .name = "saxpy",
    .version = 1,
    .summary = "y = a*x + y on f32 or f64 vectors",
    .args = saxpy_args,
    .nargs = 1,
    .inputs = saxpy_in,
    .ninputs = 2,
    .outputs = saxpy_out,
    .noutputs = 1,
    .flags = GX_KF_BATCHABLE,
    .validate = saxpy_validate,
    .mem_bytes = saxpy_mem,
    .cost_us = saxpy_cost,
    .run = {[GX_DEV_CPU] = saxpy_run},
};
