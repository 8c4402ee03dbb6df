/*
 * histogram.c - counts of values in `bins` equal-width bins over [lo, hi].
 *
 * NumPy's np.histogram(x, bins, range=(lo, hi)) semantics: bins are
 * half-open [e_i, e_i+1) except the last, which also takes x == hi; values
 * outside [lo, hi] and NaNs are not counted. Bin edges are
 * linspace(lo, hi, bins + 1) computed in f64, and the bin of a value is
 * found as NumPy does it (scaled offset, then corrected against the edges
 * so that rounding never puts a value on the wrong side of an edge). All
 * dtypes are compared as f64 (NumPy uses f32 edges for f32 data, so a value
 * within an f32 ulp of an edge may land in the neighbouring bin there).
 */
#include <math.h>
#include <stdlib.h>

#include "kernels_int.h"

enum { ARG_BINS, ARG_LO, ARG_HI };
enum { IN_X };
enum { OUT_COUNTS };

static int histogram_validate(const gx_kcall *c) {
    double lo = c->args[ARG_LO], hi = c->args[ARG_HI];
    if (!(lo < hi))
        return gx_error_set(c->err, GX_EINVAL, "args.hi", "hi (%g) must be greater than lo (%g)",
                            hi, lo);
    if (!isfinite(hi - lo))
        return gx_error_set(c->err, GX_EINVAL, "args.hi",
                            "the range hi - lo (%g - %g) is too large to divide into bins", hi, lo);
    return 0;
}

static double value_at(const gx_array *x, int64_t i) {
    switch (x->dtype) {
    case GX_F32: return ((const float *)x->data)[i];
    case GX_F64: return ((const double *)x->data)[i];
    case GX_I32: return ((const int32_t *)x->data)[i];
    default: return (double)((const int64_t *)x->data)[i];
    }
}

static int histogram_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    int64_t bins = (int64_t)c->args[ARG_BINS];
    double lo = c->args[ARG_LO], hi = c->args[ARG_HI];
    int rc = gx__kout(c, OUT_COUNTS, GX_I64, 1, &bins);
    if (rc) return rc;
    int64_t *counts = c->out[OUT_COUNTS]->data;
    double *edge = malloc((size_t)(bins + 1) * sizeof *edge);
    if (!edge) return gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory for %lld bin edges", (long long)bins);
    /* as np.linspace(lo, hi, bins + 1) */
    double delta = hi - lo, step = delta / (double)bins;
    for (int64_t i = 0; i < bins; i++)
        edge[i] = step != 0 ? (double)i * step + lo : (double)i / (double)bins * delta + lo;
    edge[bins] = hi;
    for (int64_t i0 = 0; i0 < x->count; i0 += GX_KCHUNK) {
        if (gx_kcall_cancelled(c)) {
            free(edge);
            return gx__kcancel(c);
        }
        int64_t i1 = i0 + GX_KCHUNK < x->count ? i0 + GX_KCHUNK : x->count;
        for (int64_t i = i0; i < i1; i++) {
            double v = value_at(x, i);
            if (!(v >= lo && v <= hi)) continue; /* NaN too */
            int64_t b = (int64_t)((v - lo) / delta * (double)bins);
            if (b >= bins) b = bins - 1;
            if (v < edge[b]) b--;
            else if (b != bins - 1 && v >= edge[b + 1]) b++;
            counts[b]++;
        }
    }
    free(edge);
    return 0;
}

static uint64_t histogram_mem(const gx_kcall *c) {
    return gx__kin_bytes(c) + (uint64_t)c->args[ARG_BINS] * 16 + 16;
}

static double histogram_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    return x ? 1.0 + (double)x->count * 2e-3 + c->args[ARG_BINS] * 1e-3 : -1;
}

static const gx_arg_spec histogram_args[] = {
    [ARG_BINS] = {.name = "bins", .type = GX_ARG_INT, .required = 1, .min = 1, .max = 1 << 20,
                  .doc = "number of equal-width bins"},
    [ARG_LO] = {.name = "lo", .type = GX_ARG_FLOAT, .required = 1, GX_KARG_ANY_FLOAT,
                .doc = "left edge of the first bin"},
    [ARG_HI] = {.name = "hi", .type = GX_ARG_FLOAT, .required = 1, GX_KARG_ANY_FLOAT,
                .doc = "right edge of the last bin (inclusive); > lo"},
};

static const gx_io_spec histogram_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_NUM, .rank = 1, .shape = "[n]",
              .doc = "values to count (f32, f64, i32, i64)"},
};

static const gx_io_spec histogram_out[] = {
    [OUT_COUNTS] = {.name = "counts", .dtypes = GX_DTM(GX_I64), .rank = 1, .shape = "[bins]",
                    .doc = "number of values in each bin"},
};

const gx_kernel gx__k_histogram = {
    GX_KERNEL_HEADER,
    .name = "histogram",
    .version = 1,
    .summary = "counts in equal-width bins over [lo, hi] (NumPy semantics)",
    .args = histogram_args,
    .nargs = 3,
    .inputs = histogram_in,
    .ninputs = 1,
    .outputs = histogram_out,
    .noutputs = 1,
    .validate = histogram_validate,
    .mem_bytes = histogram_mem,
    .cost_us = histogram_cost,
    .run = {[GX_DEV_CPU] = histogram_run},
};
