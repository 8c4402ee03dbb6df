/*
 * normalize.c - per-column standardisation of a [rows, cols] matrix:
 * y = (x - mean) / sqrt(var + eps), with the population variance.
 *
 * Statistics are accumulated in f64 over whole rows at a time (row-major
 * friendly, vectorisable) in two passes: the mean first, then the mean
 * squared deviation from it, which unlike E[x^2] - E[x]^2 does not cancel
 * catastrophically. A column whose var + eps is 0 (constant, eps = 0) maps
 * to 0 rather than NaN. Batchable.
 */
#include <math.h>
#include <stdlib.h>

#include "kernels_int.h"

enum { ARG_EPS };
enum { IN_X };
enum { OUT_Y };

static int normalize_validate(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    if (x->shape[0] == 0)
        return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape[0]",
                            "x has no rows; the mean of an empty column is undefined");
    if (x->shape[1] == 0)
        return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape[1]", "x has no columns to normalise");
    return 0;
}

/* Row r of x as f64: in place for f64, converted into tmp for f32. */
static const double *row_f64(const gx_array *x, int64_t r, double *tmp) {
    int64_t cols = x->shape[1];
    if (x->dtype == GX_F64) return (const double *)x->data + r * cols;
    const float *src = (const float *)x->data + r * cols;
    for (int64_t j = 0; j < cols; j++) tmp[j] = src[j];
    return tmp;
}

static int normalize_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    int64_t rows = x->shape[0], cols = x->shape[1];
    int rc = gx__kout(c, OUT_Y, x->dtype, 2, x->shape);
    if (rc) return rc;
    double *mean = calloc((size_t)cols * 3, sizeof *mean);
    if (!mean)
        return gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory for %lld column statistics",
                            (long long)cols);
    double *scale = mean + cols, *tmp = scale + cols;
    /* rows between cancel polls: about GX_KCHUNK elements */
    int64_t rstep = GX_KCHUNK / cols > 0 ? GX_KCHUNK / cols : 1;
    for (int pass = 0; pass < 3; pass++) {
        for (int64_t r0 = 0; r0 < rows; r0 += rstep) {
            if (gx_kcall_cancelled(c)) {
                free(mean);
                return gx__kcancel(c);
            }
            int64_t r1 = r0 + rstep < rows ? r0 + rstep : rows;
            for (int64_t r = r0; r < r1; r++) {
                const double *xr = row_f64(x, r, tmp);
                if (pass == 0) {
                    for (int64_t j = 0; j < cols; j++) mean[j] += xr[j];
                } else if (pass == 1) {
                    for (int64_t j = 0; j < cols; j++) {
                        double d = xr[j] - mean[j];
                        scale[j] += d * d;
                    }
                } else if (x->dtype == GX_F32) {
                    float *y = (float *)c->out[OUT_Y]->data + r * cols;
                    for (int64_t j = 0; j < cols; j++) y[j] = (float)((xr[j] - mean[j]) * scale[j]);
                } else {
                    double *y = (double *)c->out[OUT_Y]->data + r * cols;
                    for (int64_t j = 0; j < cols; j++) y[j] = (xr[j] - mean[j]) * scale[j];
                }
            }
        }
        if (pass == 0) {
            for (int64_t j = 0; j < cols; j++) mean[j] /= (double)rows;
        } else if (pass == 1) {
            double eps = c->args[ARG_EPS];
            for (int64_t j = 0; j < cols; j++) {
                double s = sqrt(scale[j] / (double)rows + eps);
                scale[j] = s > 0 ? 1.0 / s : 0.0;
            }
        }
    }
    free(mean);
    return 0;
}

static uint64_t normalize_mem(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    return x ? 2 * x->nbytes + (uint64_t)x->shape[1] * 24 : 0;
}

static double normalize_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    return x ? 1.0 + (double)x->count * 3e-3 : -1;
}

static const gx_arg_spec normalize_args[] = {
    [ARG_EPS] = {.name = "eps", .type = GX_ARG_FLOAT, .def = 1e-8, .min = 0, .max = DBL_MAX,
                 .doc = "added to the variance before the square root"},
};

static const gx_io_spec normalize_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 2, .shape = "[rows,cols]",
              .doc = "samples in rows, features in columns"},
};

static const gx_io_spec normalize_out[] = {
    [OUT_Y] = {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 2, .shape = "[rows,cols]",
               .doc = "each column with zero mean and unit variance"},
};

const gx_kernel gx__k_normalize = {
    GX_KERNEL_HEADER,
    .name = "normalize",
    .version = 1,
    .summary = "per-column zero mean, unit variance: (x - mean) / sqrt(var + eps)",
    .args = normalize_args,
    .nargs = 1,
    .inputs = normalize_in,
    .ninputs = 1,
    .outputs = normalize_out,
    .noutputs = 1,
    .flags = GX_KF_BATCHABLE,
    .validate = normalize_validate,
    .mem_bytes = normalize_mem,
    .cost_us = normalize_cost,
    .run = {[GX_DEV_CPU] = normalize_run},
};
