/*
 * reduce_sum.c - the sum of a vector, as one element.
 *
 * Floats are summed in f64 whatever their dtype: pairwise within chunks
 * (eight interleaved accumulators at the leaves, which gcc vectorises) and
 * compensated (Kahan-Babuska-Neumaier) across chunks, so the error grows
 * with log n rather than n; the result is f64. Integers are summed exactly
 * in i64 and the call fails with GX_EOVERFLOW rather than wrap if the sum
 * does not fit. The sum of an empty vector is 0.
 */
#include <math.h>

#include "kernels_int.h"

enum { IN_X };
enum { OUT_SUM };

#define LEAF 256               /* elements summed directly at a leaf */
#define CHUNK ((int64_t)1 << 20) /* elements between cancel polls */

#define DEFINE_PAIRWISE(T, NAME)                                   \
    static double NAME(const T *x, int64_t n) {                    \
        if (n <= LEAF) {                                           \
            double acc[8] = {0};                                   \
            int64_t i = 0;                                         \
            for (; i + 8 <= n; i += 8)                             \
                for (int j = 0; j < 8; j++) acc[j] += (double)x[i + j]; \
            double s = 0;                                          \
            for (; i < n; i++) s += (double)x[i];                  \
            return ((acc[0] + acc[1]) + (acc[2] + acc[3])) +       \
                   ((acc[4] + acc[5]) + (acc[6] + acc[7])) + s;    \
        }                                                          \
        int64_t h = (n / 2) & ~(int64_t)7;                         \
        return NAME(x, h) + NAME(x + h, n - h);                    \
    }
DEFINE_PAIRWISE(float, pairwise_f32)
DEFINE_PAIRWISE(double, pairwise_f64)

static int sum_float(gx_kcall *c, const gx_array *x, double *out) {
    double s = 0, comp = 0; /* Neumaier: comp holds the lost low-order bits */
    for (int64_t i0 = 0; i0 < x->count; i0 += CHUNK) {
        if (gx_kcall_cancelled(c)) return gx__kcancel(c);
        int64_t n = x->count - i0 < CHUNK ? x->count - i0 : CHUNK;
        double v = x->dtype == GX_F32 ? pairwise_f32((const float *)x->data + i0, n)
                                      : pairwise_f64((const double *)x->data + i0, n);
        double t = s + v;
        comp += fabs(s) >= fabs(v) ? (s - t) + v : (v - t) + s;
        s = t;
    }
    /* an infinity makes comp NaN ((v - t) with t = v = inf): the plain sum
     * is then the answer (inf, -inf, or NaN for inf + -inf) */
    *out = isfinite(s) ? s + comp : s;
    return 0;
}

/* Exact: a 128-bit sum (2^63 values of at most 2^63 fit), which must fit
 * in an i64 at the end; a partial sum outside it is fine ([INT64_MAX, 1,
 * -1] is INT64_MAX), as in the CUDA kernel's wrapped sum. */
static int sum_int(gx_kcall *c, const gx_array *x, int64_t *out) {
    __int128 s = 0;
    for (int64_t i0 = 0; i0 < x->count; i0 += CHUNK) {
        if (gx_kcall_cancelled(c)) return gx__kcancel(c);
        int64_t n = x->count - i0 < CHUNK ? x->count - i0 : CHUNK;
        int64_t part = 0;
        if (x->dtype == GX_I32) {
            /* 2^20 values of at most 2^31 cannot overflow an i64 */
            const int32_t *v = (const int32_t *)x->data + i0;
            for (int64_t i = 0; i < n; i++) part += v[i];
            s += part;
        } else {
            const int64_t *v = (const int64_t *)x->data + i0;
            __int128 p = 0;
            for (int64_t i = 0; i < n; i++) p += v[i];
            s += p;
        }
    }
    if (s > INT64_MAX || s < INT64_MIN)
        return gx_error_set(c->err, GX_EOVERFLOW, "inputs.x", "the sum of x does not fit in an i64 (about %g)",
                            (double)s);
    *out = (int64_t)s;
    return 0;
}

static int reduce_sum_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    int64_t one = 1;
    int isf = x->dtype == GX_F32 || x->dtype == GX_F64;
    int rc = gx__kout(c, OUT_SUM, isf ? GX_F64 : GX_I64, 1, &one);
    if (rc) return rc;
    if (isf) return sum_float(c, x, (double *)c->out[OUT_SUM]->data);
    return sum_int(c, x, (int64_t *)c->out[OUT_SUM]->data);
}

static uint64_t reduce_sum_mem(const gx_kcall *c) { return gx__kin_bytes(c) + 8; }

static double reduce_sum_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    return x ? 0.5 + (double)x->count * 3e-4 : -1;
}

static const gx_io_spec reduce_sum_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_NUM, .rank = 1, .shape = "[n]",
              .doc = "values to add (f32, f64, i32, i64)"},
};

static const gx_io_spec reduce_sum_out[] = {
    [OUT_SUM] = {.name = "sum", .dtypes = GX_DTM(GX_F64) | GX_DTM(GX_I64), .rank = 1,
                 .shape = "[1]", .doc = "the sum: f64 for float inputs, i64 for integers"},
};

const gx_kernel gx__k_reduce_sum = {
    GX_KERNEL_HEADER,
    .name = "reduce_sum",
    .version = 1,
    .summary = "sum of a vector (f64 for floats, exact i64 for integers)",
    .inputs = reduce_sum_in,
    .ninputs = 1,
    .outputs = reduce_sum_out,
    .noutputs = 1,
    .mem_bytes = reduce_sum_mem,
    .cost_us = reduce_sum_cost,
    .run = {[GX_DEV_CPU] = reduce_sum_run},
};
