/*
 * impl.c - the catalog on the GPU: turns each gx_kcall into device buffers,
 * launches (src/kernels/<name>.cu, cuBLAS) and host output arrays.
 *
 * Arguments, inputs and outputs are looked up by the names of DESIGN.md's
 * catalog table, not by position, so these functions follow the CPU
 * declarations whatever order they list them in. Output dtypes follow the
 * declaration when it allows a single dtype, else the input's dtype.
 *
 * Batchable kernels (saxpy, normalize, mlp_forward, spin) also have a batch
 * function that runs many small calls as one upload, one launch sequence
 * and one download.
 *
 * Semantics implemented here (the CPU versions must agree; test_gpu
 * compares the two whenever the catalog has a CPU implementation):
 *  - saxpy: y = a*x + y, f32/f64, output shaped like y.
 *  - reduce_sum: sum [1]; floats accumulate in double (output f64 as
 *    declared), integers in int64 (output i64); GX_EOVERFLOW when the true
 *    sum does not fit (the CPU also fails when a partial sum overflows).
 *  - gemm: c = alpha*op(a)op(b) + beta*c (c input optional, beta ignored
 *    without it); f32/f64; optional enum arg "precision" (f32|tf32|bf16).
 *  - sort: stable; descending keeps equal keys in input order; -0.0 equals
 *    +0.0; NaNs last in both directions; "values" output only when a
 *    values input is given.
 *  - histogram: NumPy's rule: bins equal over [lo, hi], hi in the last bin,
 *    outside and NaN not counted; the bin found exactly as histogram.c
 *    does (offset, corrected against linspace edges); counts i64.
 *  - normalize: per column (x - mean) / sqrt(var + eps), population var; 0
 *    where var + eps is 0.
 *  - filter_range: lo <= x <= hi, in order; i64 compared exactly against
 *    [ceil(lo), floor(hi)]; index i64.
 *  - mlp_forward: w_l is [in, out] (y = x @ w + b); activation on hidden
 *    layers only, the last layer linear, then optional row softmax; b_l
 *    optional.
 *  - linreg_gd: loss[t] = mean((x w_t - y)^2) before step t; grad =
 *    (2/n) x^T (x w - y); w -= lr*grad; computed in double; w and loss f64
 *    as declared; GX_EKERNEL when the loss stops being finite. Checkpoint
 *    state = {w f64 [d], loss f64 [step]} after every K steps, the last
 *    step included; cancel checked every 64 steps.
 *  - spin: a one-block busy wait of `us` microseconds (cancel checked every
 *    10 ms); us = 0 launches nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_int.h"

/* ---- lookups -------------------------------------------------------------- */

double gxc_arg(const gx_kcall *c, const char *name, double def) {
    const gx_kernel *k = c->kernel;
    for (int i = 0; i < k->nargs; i++)
        if (!strcmp(k->args[i].name, name)) return c->args[i];
    return def;
}

/* Name of the chosen enum choice, or def. */
static const char *arg_choice(const gx_kcall *c, const char *name, const char *def) {
    const gx_kernel *k = c->kernel;
    for (int i = 0; i < k->nargs; i++) {
        const gx_arg_spec *a = &k->args[i];
        if (strcmp(a->name, name)) continue;
        if (a->type != GX_ARG_ENUM || !a->choices) return def;
        int idx = (int)c->args[i];
        for (int j = 0; a->choices[j]; j++)
            if (j == idx) return a->choices[j];
        return def;
    }
    return def;
}

gx_array *gxc_input(const gx_kcall *c, const char *name) {
    for (int i = 0; i < c->nin_all; i++)
        if (!strcmp(c->in_names[i], name)) return c->in_all[i];
    return NULL;
}

gx_array **gxc_outp(gx_kcall *c, const char *name) {
    const gx_kernel *k = c->kernel;
    for (int i = 0; i < k->noutputs; i++)
        if (!strcmp(k->outputs[i].name, name)) return &c->out[i];
    return NULL;
}

gx_dtype gxc_out_dtype(const gx_kcall *c, const char *name, gx_dtype pref) {
    const gx_kernel *k = c->kernel;
    for (int i = 0; i < k->noutputs; i++) {
        if (strcmp(k->outputs[i].name, name)) continue;
        unsigned m = k->outputs[i].dtypes;
        if (!m || (m & GX_DTM(pref))) return pref;
        for (int d = 1; d < GX_DT_COUNT; d++)
            if (m & GX_DTM(d)) return (gx_dtype)d;
    }
    return pref;
}

static gxc_slot *slot_of(gx_kcall *c) { return (gxc_slot *)c->dev_ctx; }

static int is_float(gx_dtype d) { return d == GX_F32 || d == GX_F64; }
static int is_num(gx_dtype d) { return is_float(d) || d == GX_I32 || d == GX_I64; }

static int unsupported(gx_kcall *c, const char *field, const gx_array *a) {
    return gx_error_set(c->err, GX_EUNSUPPORTED, field, "%s: dtype %s is not supported on the GPU",
                        c->kernel->name, gx_dtype_name(a->dtype));
}

static int missing(gx_kcall *c, const char *what) {
    return gx_error_set(c->err, GX_EINVAL, NULL, "%s: %s", c->kernel->name, what);
}

#define CK(expr, what)                                   \
    do {                                                 \
        if (!rc) rc = gxc_check(&k, (int)(expr), what);  \
    } while (0)

/* ---- saxpy ------------------------------------------------------------------ */

static int saxpy_check(gx_kcall *c, gx_array **x, gx_array **y, gx_array ***yo) {
    *x = gxc_input(c, "x");
    *y = gxc_input(c, "y");
    *yo = gxc_outp(c, "y");
    if (!*x || !*y || !*yo) return missing(c, "inputs x and y and output y are required");
    if ((*x)->dtype != (*y)->dtype || (*x)->count != (*y)->count)
        return gx_error_set(c->err, GX_EINVAL, "inputs.y", "x and y must have the same dtype and size");
    if (!is_float((*x)->dtype)) return unsupported(c, "inputs.x.dtype", *x);
    return 0;
}

static int saxpy_run(gx_kcall *c) {
    gx_array *x, *y, **yo;
    int rc = saxpy_check(c, &x, &y, &yo);
    if (rc) return rc;
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *dx = NULL, *dy = NULL, *dout = NULL;
    rc = gxc_out(&k, yo, y->dtype, y->ndim, y->shape, &dout);
    if (!rc) rc = gxc_in(&k, x, &dx);
    if (!rc) rc = gxc_in(&k, y, &dy);
    if (!rc) rc = gxc_upload(&k);
    CK(gxk_saxpy(s->stream, x->dtype, x->count, gxc_arg(c, "a", 1.0), dx, dy, dout), "saxpy");
    return gxc_finish(&k, rc);
}

/* Copy a batch failure's message to every call of the group. */
static void fail_group(gx_kcall *const *calls, gx_call_result *res, int n, int rc, const gx_error *e) {
    for (int i = 0; i < n; i++) {
        res[i].rc = rc;
        if (calls[i]->err && e && calls[i]->err != e) *calls[i]->err = *e;
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t al(size_t b) { return (b + GXC_ALIGN - 1) & ~(size_t)(GXC_ALIGN - 1); }

/* Budget for one merged launch: most of the mirror. */
#define BATCH_BYTES (GXC_MIRROR_BYTES - (1u << 20))
#define BATCH_MAX 4096

/* Run calls[0..n) one by one (members a batch cannot merge). */
static void run_each(gx_kcall *const *calls, gx_call_result *res, int n) {
    for (int i = 0; i < n; i++) {
        int64_t t0 = now_ns();
        res[i].rc = gxc_run_one(calls[i]);
        res[i].run_ns = now_ns() - t0;
    }
}

static void saxpy_batch(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n) {
    int i = 0;
    while (i < n) {
        /* a group of consecutive valid calls of one dtype within budget */
        gx_array *x, *y, **yo;
        if (saxpy_check(calls[i], &x, &y, &yo)) {
            res[i].rc = calls[i]->err ? calls[i]->err->code : GX_EINVAL;
            i++;
            continue;
        }
        gx_dtype dt = x->dtype;
        size_t budget = BATCH_BYTES, used = 0;
        int j = i;
        int64_t maxn = 0;
        while (j < n && j - i < BATCH_MAX) {
            gx_array *xj, *yj, **yoj;
            gx_error save = *calls[j]->err;
            if (saxpy_check(calls[j], &xj, &yj, &yoj) || xj->dtype != dt) {
                *calls[j]->err = save;
                break;
            }
            size_t need = 3 * al(xj->nbytes) + sizeof(gxk_saxpy_desc);
            if (used + need > budget) break;
            used += need;
            if (xj->count > maxn) maxn = xj->count;
            j++;
        }
        int g = j - i;
        if (g <= 1) { /* invalid mix, or too big to share the mirror */
            run_each(calls + i, res + i, 1);
            i++;
            continue;
        }
        int64_t t0 = now_ns();
        gxc_call k;
        gxc_begin(&k, s, calls[i]->err);
        gxc_outbuf *outs = malloc((size_t)g * sizeof *outs);
        gxk_saxpy_desc *desc = malloc((size_t)g * sizeof *desc);
        int rc = (!outs || !desc) ? gx_error_set(k.err, GX_ENOMEM, NULL, "out of host memory") : 0;
        if (!rc) {
            k.outs = outs;
            k.outcap = g;
        }
        for (int m = 0; !rc && m < g; m++) {
            gx_kcall *c = calls[i + m];
            saxpy_check(c, &x, &y, &yo);
            desc[m].n = x->count;
            desc[m].a = gxc_arg(c, "a", 1.0);
            rc = gxc_out(&k, yo, y->dtype, y->ndim, y->shape, &desc[m].out);
        }
        for (int m = 0; !rc && m < g; m++) {
            gx_kcall *c = calls[i + m];
            void *dx, *dy;
            saxpy_check(c, &x, &y, &yo);
            rc = gxc_in(&k, x, &dx);
            if (!rc) rc = gxc_in(&k, y, &dy);
            desc[m].x = dx;
            desc[m].y = dy;
        }
        void *ddesc = NULL;
        if (!rc) rc = gxc_in_bytes(&k, desc, (size_t)g * sizeof *desc, &ddesc);
        if (!rc) rc = gxc_upload(&k);
        CK(gxk_saxpy_batch(s->stream, dt, ddesc, g, maxn), "saxpy batch");
        rc = gxc_finish(&k, rc);
        int64_t per = (now_ns() - t0) / g;
        if (rc) {
            fail_group(calls + i, res + i, g, rc, k.err);
        } else {
            for (int m = 0; m < g; m++) {
                res[i + m].rc = 0;
                res[i + m].run_ns = per;
            }
        }
        free(outs);
        free(desc);
        i = j;
    }
}

static int same_dtype_x(const gx_kcall *a, const gx_kcall *b) {
    gx_array *xa = gxc_input(a, "x"), *xb = gxc_input(b, "x");
    return xa && xb && xa->dtype == xb->dtype;
}

/* ---- reduce_sum ------------------------------------------------------------- */

static int reduce_sum_run(gx_kcall *c) {
    gx_array *x = gxc_input(c, "x");
    gx_array **so = gxc_outp(c, "sum");
    if (!x || !so) return missing(c, "input x and output sum are required");
    if (!is_num(x->dtype)) return unsupported(c, "inputs.x.dtype", x);
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *dx = NULL, *acc = NULL;
    int rc = gxc_in(&k, x, &dx);
    if (!rc) rc = gxc_upload(&k);
    if (!rc) rc = gxc_alloc(&k, 16, &acc);
    CK(cudaMemsetAsync(acc, 0, 16, s->stream), "memset");
    CK(gxk_reduce_sum(s->stream, x->dtype, x->count, dx, acc), "reduce_sum");
    union {
        double d;
        uint64_t u;
    } v[2];
    memset(v, 0, sizeof v);
    if (!rc) rc = gxc_fetch(&k, v, acc, 16);
    rc = gxc_finish(&k, rc);
    if (rc) return rc;
    int isf = is_float(x->dtype);
    int64_t isum = (int64_t)v[0].u;
    /* the wrapped sum is the true one unless the double sum is far from it */
    if (!isf && fabs(v[1].d - (double)isum) > 4611686018427387904.0)
        return gx_error_set(c->err, GX_EOVERFLOW, "inputs.x", "the sum of x does not fit in an i64 (about %g)",
                            v[1].d);
    gx_dtype odt = gxc_out_dtype(c, "sum", isf ? x->dtype : GX_I64);
    rc = gx_array_new1(odt, 1, so, c->err);
    if (rc) return rc;
    if (isf)
        gx_array_set_f64(*so, 0, v[0].d);
    else if (odt == GX_I64)
        ((int64_t *)(*so)->data)[0] = isum;
    else
        gx_array_set_f64(*so, 0, (double)isum);
    return 0;
}

/* ---- gemm ------------------------------------------------------------------- */

static int gemm_run(gx_kcall *c) {
    gx_array *a = gxc_input(c, "a"), *b = gxc_input(c, "b"), *cin = gxc_input(c, "c");
    gx_array **co = gxc_outp(c, "c");
    if (!a || !b || !co) return missing(c, "inputs a and b and output c are required");
    if (a->ndim != 2 || b->ndim != 2) return gx_error_set(c->err, GX_EINVAL, "inputs.a", "a and b must be matrices");
    if (a->dtype != b->dtype || (cin && cin->dtype != a->dtype))
        return gx_error_set(c->err, GX_EINVAL, "inputs.b.dtype", "a, b and c must have one dtype");
    if (!is_float(a->dtype)) return unsupported(c, "inputs.a.dtype", a);
    int ta = gxc_arg(c, "trans_a", 0) != 0, tb = gxc_arg(c, "trans_b", 0) != 0;
    int64_t m = ta ? a->shape[1] : a->shape[0], ka = ta ? a->shape[0] : a->shape[1];
    int64_t kb = tb ? b->shape[1] : b->shape[0], n = tb ? b->shape[0] : b->shape[1];
    if (ka != kb)
        return gx_error_set(c->err, GX_EINVAL, "inputs.b.shape", "inner dimensions differ (%lld and %lld)",
                            (long long)ka, (long long)kb);
    if (cin && (cin->ndim != 2 || cin->shape[0] != m || cin->shape[1] != n))
        return gx_error_set(c->err, GX_EINVAL, "inputs.c.shape", "c must be [%lld,%lld]", (long long)m,
                            (long long)n);
    double alpha = gxc_arg(c, "alpha", 1.0), beta = cin ? gxc_arg(c, "beta", 0.0) : 0.0;
    const char *prec = arg_choice(c, "precision", "f32");
    int mode = strstr(prec, "tf32") ? GXC_GEMM_TF32 : strstr(prec, "bf16") ? GXC_GEMM_BF16 : GXC_GEMM_F32;
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *da = NULL, *db = NULL, *dc = NULL, *dout = NULL;
    int64_t shape[2] = {m, n};
    int rc = gxc_out(&k, co, a->dtype, 2, shape, &dout);
    if (!rc) rc = gxc_in(&k, a, &da);
    if (!rc) rc = gxc_in(&k, b, &db);
    if (!rc && cin && beta != 0) rc = gxc_in(&k, cin, &dc);
    if (!rc) rc = gxc_upload(&k);
    if (dc) CK(cudaMemcpyAsync(dout, dc, cin->nbytes, cudaMemcpyDeviceToDevice, s->stream), "copy c");
    if (!rc) {
        int st = gx_cuda_gemm_dev(s->blas, a->dtype, mode, ta, tb, m, n, ka, alpha, da, db, beta, dout);
        if (st) rc = gxc_blas_fail(&k, st, "cuBLAS gemm failed");
    }
    return gxc_finish(&k, rc);
}

/* ---- sort ------------------------------------------------------------------- */

static int sort_run(gx_kcall *c) {
    gx_array *keys = gxc_input(c, "keys"), *vals = gxc_input(c, "values");
    gx_array **ko = gxc_outp(c, "keys"), **vo = gxc_outp(c, "values");
    if (!keys || !ko) return missing(c, "input keys and output keys are required");
    if (!is_num(keys->dtype)) return unsupported(c, "inputs.keys.dtype", keys);
    if (keys->count > INT32_MAX)
        return gx_error_set(c->err, GX_EUNSUPPORTED, "inputs.keys", "the GPU sort takes at most 2^31-1 keys");
    if (vals && vals->count != keys->count)
        return gx_error_set(c->err, GX_EINVAL, "inputs.values", "values must have as many elements as keys");
    size_t ve = vals ? gx_dtype_size(vals->dtype) : 0;
    if (vals && ve != 1 && ve != 2 && ve != 4 && ve != 8) return unsupported(c, "inputs.values.dtype", vals);
    int64_t n = keys->count;
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *dk = NULL, *dv = NULL, *dko = NULL, *dvo = NULL, *temp = NULL, *perm = NULL;
    size_t tb = gxk_sort_temp_bytes(keys->dtype, n);
    int rc = gxc_out(&k, ko, keys->dtype, keys->ndim, keys->shape, &dko);
    if (!rc && vals && vo) rc = gxc_out(&k, vo, vals->dtype, vals->ndim, vals->shape, &dvo);
    if (!rc) rc = gxc_in(&k, keys, &dk);
    if (!rc && vals && vo) rc = gxc_in(&k, vals, &dv);
    if (!rc) rc = gxc_upload(&k);
    if (!rc) rc = gxc_alloc(&k, 4 * (size_t)n, &perm);
    if (!rc) rc = gxc_alloc(&k, tb, &temp);
    CK(gxk_sort(s->stream, keys->dtype, n, gxc_arg(c, "descending", 0) != 0, dk, dko, perm, temp, tb), "sort");
    if (dvo) CK(gxk_gather(s->stream, ve, n, dv, perm, dvo), "sort gather");
    return gxc_finish(&k, rc);
}

/* ---- histogram -------------------------------------------------------------- */

static int histogram_run(gx_kcall *c) {
    gx_array *x = gxc_input(c, "x");
    gx_array **co = gxc_outp(c, "counts");
    if (!x || !co) return missing(c, "input x and output counts are required");
    if (!is_num(x->dtype)) return unsupported(c, "inputs.x.dtype", x);
    int64_t bins = (int64_t)gxc_arg(c, "bins", 10);
    double lo = gxc_arg(c, "lo", 0), hi = gxc_arg(c, "hi", 1);
    if (bins < 1) return gx_error_set(c->err, GX_EINVAL, "args.bins", "bins must be >= 1");
    if (!(hi > lo)) return gx_error_set(c->err, GX_EINVAL, "args.hi", "hi must be greater than lo");
    gx_dtype odt = gxc_out_dtype(c, "counts", GX_I64);
    if (!is_num(odt)) return gx_error_set(c->err, GX_EUNSUPPORTED, "outputs.counts", "counts dtype");
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *dx = NULL, *cnt = NULL, *dout = NULL;
    int rc = gxc_out(&k, co, odt, 1, &bins, &dout);
    if (!rc) rc = gxc_in(&k, x, &dx);
    if (!rc) rc = gxc_upload(&k);
    if (!rc) rc = gxc_alloc(&k, 8 * (size_t)bins, &cnt);
    CK(cudaMemsetAsync(cnt, 0, 8 * (size_t)bins, s->stream), "memset");
    CK(gxk_histogram(s->stream, x->dtype, x->count, dx, bins, lo, hi, cnt), "histogram");
    CK(gxk_u64_to(s->stream, odt, bins, cnt, dout), "histogram");
    return gxc_finish(&k, rc);
}

/* ---- normalize -------------------------------------------------------------- */

static int norm_check(gx_kcall *c, gx_array **x, gx_array ***yo) {
    *x = gxc_input(c, "x");
    *yo = gxc_outp(c, "y");
    if (!*x || !*yo) return missing(c, "input x and output y are required");
    if ((*x)->ndim != 2) return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape", "x must be [rows,cols]");
    if (!is_float((*x)->dtype)) return unsupported(c, "inputs.x.dtype", *x);
    if ((*x)->shape[0] > 65535LL * 1024)
        return gx_error_set(c->err, GX_EUNSUPPORTED, "inputs.x.shape", "too many rows for the GPU normalize");
    return 0;
}

/* One group of calls (n >= 1) in one launch sequence. */
static int norm_group(gxc_slot *s, gx_kcall *const *calls, int n, gx_error *err) {
    gxc_call k;
    gxc_begin(&k, s, err);
    gxc_outbuf *outs = n > GXC_MAX_OUTS ? malloc((size_t)n * sizeof *outs) : NULL;
    gxk_norm_desc *desc = malloc((size_t)n * sizeof *desc);
    int rc = (!desc || (n > GXC_MAX_OUTS && !outs)) ? gx_error_set(err, GX_ENOMEM, NULL, "out of host memory") : 0;
    if (outs) {
        k.outs = outs;
        k.outcap = n;
    }
    int64_t maxr = 0, maxc = 0;
    size_t stats_bytes = 0;
    for (int m = 0; !rc && m < n; m++) {
        gx_array *x, **yo;
        norm_check(calls[m], &x, &yo);
        desc[m].rows = x->shape[0];
        desc[m].cols = x->shape[1];
        desc[m].eps = gxc_arg(calls[m], "eps", 1e-5);
        if (x->shape[0] > maxr) maxr = x->shape[0];
        if (x->shape[1] > maxc) maxc = x->shape[1];
        stats_bytes += al(16 * (size_t)x->shape[1]);
        rc = gxc_out(&k, yo, x->dtype, 2, x->shape, &desc[m].y);
    }
    void *stats = NULL;
    if (!rc) rc = gxc_alloc(&k, stats_bytes, &stats);
    CK(cudaMemsetAsync(stats, 0, stats_bytes, s->stream), "memset");
    size_t so = 0;
    for (int m = 0; !rc && m < n; m++) {
        gx_array *x, **yo;
        norm_check(calls[m], &x, &yo);
        desc[m].stats = (double *)((char *)stats + so);
        so += al(16 * (size_t)x->shape[1]);
        rc = gxc_in(&k, x, (void **)&desc[m].x);
    }
    void *ddesc = NULL;
    if (!rc) rc = gxc_in_bytes(&k, desc, (size_t)n * sizeof *desc, &ddesc);
    if (!rc) rc = gxc_upload(&k);
    gx_array *x0 = gxc_input(calls[0], "x");
    CK(gxk_normalize_batch(s->stream, x0->dtype, ddesc, n, maxr, maxc), "normalize");
    rc = gxc_finish(&k, rc);
    free(outs);
    free(desc);
    return rc;
}

static int normalize_run(gx_kcall *c) {
    gx_array *x, **yo;
    int rc = norm_check(c, &x, &yo);
    if (rc) return rc;
    return norm_group(slot_of(c), &c, 1, c->err);
}

static void normalize_batch(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n) {
    int i = 0;
    while (i < n) {
        gx_array *x, **yo;
        if (norm_check(calls[i], &x, &yo)) {
            res[i].rc = calls[i]->err->code;
            i++;
            continue;
        }
        size_t used = 0;
        int j = i;
        while (j < n && j - i < 65535) {
            gx_array *xj, **yoj;
            gx_error save = *calls[j]->err;
            if (norm_check(calls[j], &xj, &yoj) || xj->dtype != x->dtype) {
                *calls[j]->err = save;
                break;
            }
            size_t need = 2 * al(xj->nbytes) + al(16 * (size_t)xj->shape[1]) + sizeof(gxk_norm_desc);
            if (used + need > BATCH_BYTES) break;
            used += need;
            j++;
        }
        if (j - i <= 1) {
            run_each(calls + i, res + i, 1);
            i++;
            continue;
        }
        int64_t t0 = now_ns();
        int rc = norm_group(s, calls + i, j - i, calls[i]->err);
        int64_t per = (now_ns() - t0) / (j - i);
        fail_group(calls + i, res + i, j - i, rc, calls[i]->err);
        for (int m = i; m < j; m++) res[m].run_ns = per;
        i = j;
    }
}

/* ---- filter_range ----------------------------------------------------------- */

static int filter_range_run(gx_kcall *c) {
    gx_array *x = gxc_input(c, "x");
    gx_array **yo = gxc_outp(c, "y"), **io = gxc_outp(c, "index");
    if (!x || !yo) return missing(c, "input x and output y are required");
    if (!is_num(x->dtype)) return unsupported(c, "inputs.x.dtype", x);
    if (x->count > INT32_MAX)
        return gx_error_set(c->err, GX_EUNSUPPORTED, "inputs.x", "the GPU filter takes at most 2^31-1 elements");
    if (io && gxc_out_dtype(c, "index", GX_I64) != GX_I64)
        return gx_error_set(c->err, GX_EUNSUPPORTED, "outputs.index", "the GPU filter writes int64 indices");
    double lo = gxc_arg(c, "lo", -INFINITY), hi = gxc_arg(c, "hi", INFINITY);
    int64_t n = x->count;
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *dx = NULL, *flags = NULL, *pos = NULL, *temp = NULL, *dy = NULL, *di = NULL;
    size_t tb = gxk_filter_temp_bytes(n);
    int rc = gxc_in(&k, x, &dx);
    if (!rc) rc = gxc_upload(&k);
    if (!rc) rc = gxc_alloc(&k, 4 * (size_t)(n ? n : 1), &flags);
    if (!rc) rc = gxc_alloc(&k, 4 * (size_t)(n ? n : 1), &pos);
    if (!rc) rc = gxc_alloc(&k, tb, &temp);
    CK(gxk_filter_flags(s->stream, x->dtype, n, dx, lo, hi, flags, pos, temp, tb), "filter_range");
    int32_t tail[2] = {0, 0};
    if (!rc && n) rc = gxc_fetch(&k, &tail[0], (int32_t *)pos + n - 1, 4);
    if (!rc && n) rc = gxc_fetch(&k, &tail[1], (int32_t *)flags + n - 1, 4);
    int64_t m = (int64_t)tail[0] + tail[1];
    if (!rc) rc = gxc_out(&k, yo, x->dtype, 1, &m, &dy);
    if (!rc && io) rc = gxc_out(&k, io, GX_I64, 1, &m, &di);
    CK(gxk_filter_scatter(s->stream, x->dtype, n, dx, flags, pos, dy, di), "filter_range");
    return gxc_finish(&k, rc);
}

/* ---- mlp_forward ------------------------------------------------------------ */

#define MLP_MAX_LAYERS 64

typedef struct mlp_shape {
    int layers;
    gx_array *w[MLP_MAX_LAYERS], *b[MLP_MAX_LAYERS];
    int act;      /* 0 none, 1 relu, 2 tanh */
    int softmax;
} mlp_shape;

static int mlp_check(gx_kcall *c, mlp_shape *ms) {
    gx_array *x = gxc_input(c, "x");
    if (!x || !gxc_outp(c, "y")) return missing(c, "input x and output y are required");
    if (x->ndim != 2) return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape", "x must be [batch,in]");
    if (!is_float(x->dtype)) return unsupported(c, "inputs.x.dtype", x);
    memset(ms, 0, sizeof *ms);
    int64_t in = x->shape[1];
    for (int l = 0; l < MLP_MAX_LAYERS; l++) {
        char wn[16], bn[16];
        snprintf(wn, sizeof wn, "w%d", l);
        snprintf(bn, sizeof bn, "b%d", l);
        gx_array *w = gxc_input(c, wn), *b = gxc_input(c, bn);
        if (!w) break;
        char field[48];
        snprintf(field, sizeof field, "inputs.%s.shape", wn);
        if (w->ndim != 2 || w->shape[0] != in)
            return gx_error_set(c->err, GX_EINVAL, field, "%s must be [%lld, out]", wn, (long long)in);
        if (w->dtype != x->dtype || (b && b->dtype != x->dtype))
            return gx_error_set(c->err, GX_EINVAL, field, "weights must have the dtype of x");
        if (b && b->count != w->shape[1]) {
            snprintf(field, sizeof field, "inputs.%s.shape", bn);
            return gx_error_set(c->err, GX_EINVAL, field, "%s must have %lld elements", bn,
                                (long long)w->shape[1]);
        }
        ms->w[l] = w;
        ms->b[l] = b;
        ms->layers = l + 1;
        in = w->shape[1];
    }
    if (!ms->layers) return missing(c, "at least one layer (w0) is required");
    const char *act = arg_choice(c, "activation", "relu");
    ms->act = !strcmp(act, "relu") ? 1 : !strcmp(act, "tanh") ? 2 : 0;
    ms->softmax = gxc_arg(c, "softmax", 0) != 0;
    return 0;
}

/* Calls sharing weights (same arrays) and args run as one stacked batch. */
static int mlp_group(gxc_slot *s, gx_kcall *const *calls, int n, gx_error *err) {
    mlp_shape ms;
    int rc = mlp_check(calls[0], &ms);
    if (rc) return rc;
    gx_array *x0 = gxc_input(calls[0], "x");
    gx_dtype dt = x0->dtype;
    size_t es = gx_dtype_size(dt);
    gx_array **xs = malloc((size_t)n * sizeof *xs);
    gxc_outbuf *outs = n > GXC_MAX_OUTS ? malloc((size_t)n * sizeof *outs) : NULL;
    if (!xs || (n > GXC_MAX_OUTS && !outs)) {
        free(xs);
        free(outs);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of host memory");
    }
    int64_t rows = 0;
    for (int m = 0; m < n; m++) {
        xs[m] = gxc_input(calls[m], "x");
        rows += xs[m]->shape[0];
    }
    gxc_call k;
    gxc_begin(&k, s, err);
    if (outs) {
        k.outs = outs;
        k.outcap = n;
    }
    void *dx = NULL, *dw[MLP_MAX_LAYERS] = {0}, *db[MLP_MAX_LAYERS] = {0};
    rc = gxc_in_concat(&k, xs, n, &dx);
    for (int l = 0; !rc && l < ms.layers; l++) {
        rc = gxc_in(&k, ms.w[l], &dw[l]);
        if (!rc && ms.b[l]) rc = gxc_in(&k, ms.b[l], &db[l]);
    }
    if (!rc) rc = gxc_upload(&k);
    /* two activation buffers of the widest layer, used in turn (one a
     * layer grew the memory with the depth, past the 2 x rows x widest
     * that admission reserves (mlp_mem) and past a call's GXC_MAX_POOLED) */
    void *cur = dx, *buf[2] = {0};
    int64_t in = x0->shape[1], widest = 0;
    for (int l = 0; l < ms.layers; l++)
        if (ms.w[l]->shape[1] > widest) widest = ms.w[l]->shape[1];
    for (int i = 0; !rc && i < 2 && i < ms.layers; i++) rc = gxc_alloc(&k, (size_t)(rows * widest) * es, &buf[i]);
    for (int l = 0; !rc && l < ms.layers; l++) {
        int64_t out = ms.w[l]->shape[1];
        int last = l == ms.layers - 1;
        int st = gx_cuda_gemm_dev(s->blas, dt, GXC_GEMM_F32, 0, 0, rows, out, in, 1.0, cur, dw[l], 0.0,
                                  buf[l & 1]);
        if (st) {
            char what[48];
            snprintf(what, sizeof what, "cuBLAS gemm failed in layer %d", l);
            rc = gxc_blas_fail(&k, st, what);
            break;
        }
        CK(gxk_bias_act(s->stream, dt, rows, out, buf[l & 1], db[l], last ? 0 : ms.act, last && ms.softmax),
           "mlp bias/activation");
        cur = buf[l & 1];
        in = out;
    }
    /* each call's y is its own row block of the last layer's output */
    int64_t r0 = 0;
    for (int m = 0; !rc && m < n; m++) {
        int64_t shape[2] = {xs[m]->shape[0], in};
        rc = gxc_out_at(&k, gxc_outp(calls[m], "y"), dt, 2, shape, (char *)cur + (size_t)(r0 * in) * es);
        r0 += xs[m]->shape[0];
    }
    rc = gxc_finish(&k, rc);
    free(xs);
    free(outs);
    return rc;
}

static int mlp_forward_run(gx_kcall *c) { return mlp_group(slot_of(c), &c, 1, c->err); }

static int mlp_can_join(const gx_kcall *a, const gx_kcall *b) {
    if (!same_dtype_x(a, b) || a->nin_all != b->nin_all) return 0;
    gx_array *xa = gxc_input(a, "x"), *xb = gxc_input(b, "x");
    if (xa->ndim != 2 || xb->ndim != 2 || xa->shape[1] != xb->shape[1]) return 0;
    for (int i = 0; i < a->nin_all; i++) {
        if (!strcmp(a->in_names[i], "x")) continue;
        if (gxc_input(b, a->in_names[i]) != a->in_all[i]) return 0; /* same weight arrays */
    }
    for (int i = 0; i < a->kernel->nargs; i++)
        if (a->args[i] != b->args[i]) return 0;
    return 1;
}

static void mlp_batch(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n) {
    int i = 0;
    while (i < n) {
        mlp_shape ms;
        if (mlp_check(calls[i], &ms)) {
            res[i].rc = calls[i]->err->code;
            i++;
            continue;
        }
        /* calls[] were grouped with mlp_can_join; keep the stacked rows small
         * enough that activations stay in the mirror */
        size_t used = 0;
        int j = i;
        int64_t widest = 1;
        for (int l = 0; l < ms.layers; l++)
            if (ms.w[l]->shape[1] > widest) widest = ms.w[l]->shape[1];
        while (j < n) {
            gx_array *x = gxc_input(calls[j], "x");
            size_t need = x->nbytes + 2 * (size_t)x->shape[0] * (size_t)widest * gx_dtype_size(x->dtype);
            if (j > i && used + need > BATCH_BYTES / 2) break;
            used += need;
            j++;
        }
        int64_t t0 = now_ns();
        int rc = mlp_group(s, calls + i, j - i, calls[i]->err);
        int64_t per = (now_ns() - t0) / (j - i);
        fail_group(calls + i, res + i, j - i, rc, calls[i]->err);
        for (int m = i; m < j; m++) res[m].run_ns = per;
        i = j;
    }
}

/* ---- linreg_gd -------------------------------------------------------------- */

#define LINREG_POLL 64 /* steps between cancel checks */

static int linreg_gd_run(gx_kcall *c) {
    gx_array *x = gxc_input(c, "x"), *y = gxc_input(c, "y"), *w0 = gxc_input(c, "w0");
    gx_array **wo = gxc_outp(c, "w"), **lo = gxc_outp(c, "loss");
    if (!x || !y || !wo) return missing(c, "inputs x, y and output w are required");
    if (x->ndim != 2) return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape", "x must be [n,d]");
    if (!is_num(x->dtype)) return unsupported(c, "inputs.x.dtype", x);
    int64_t n = x->shape[0], d = x->shape[1];
    if (y->count != n) return gx_error_set(c->err, GX_EINVAL, "inputs.y.shape", "y must have n elements");
    if (w0 && w0->count != d) return gx_error_set(c->err, GX_EINVAL, "inputs.w0.shape", "w0 must have d elements");
    if (n > INT32_MAX || d > INT32_MAX) return gx_error_set(c->err, GX_EUNSUPPORTED, "inputs.x.shape", "too large");
    int64_t steps = (int64_t)gxc_arg(c, "steps", 100);
    double lr = gxc_arg(c, "lr", 0.01);
    int64_t every = (int64_t)gxc_arg(c, "checkpoint_every", 0);
    int64_t start = 0;
    gx_array *rw = NULL, *rloss = NULL;
    if (c->resume && c->nresume >= 1 && c->resume_step > 0 && c->resume_step <= steps) {
        rw = c->resume[0];
        rloss = c->nresume >= 2 ? c->resume[1] : NULL;
        if (rw->count != d) rw = NULL;
        else start = c->resume_step;
    }
    gx_dtype wdt = gxc_out_dtype(c, "w", is_float(x->dtype) ? x->dtype : GX_F64);
    gx_dtype ldt = gxc_out_dtype(c, "loss", GX_F64);
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *dx = NULL, *dy = NULL, *dwin = NULL, *dlin = NULL;
    double *X = NULL, *Y = NULL, *W = NULL, *R = NULL, *G = NULL, *L = NULL;
    int rc = gxc_in(&k, x, &dx);
    if (!rc) rc = gxc_in(&k, y, &dy);
    gx_array *winit = rw ? rw : w0;
    if (!rc && winit) rc = gxc_in(&k, winit, &dwin);
    if (!rc && rloss && rloss->count >= start && start > 0) rc = gxc_in(&k, rloss, &dlin);
    if (!rc) rc = gxc_upload(&k);
    /* double working copies */
    if (!rc) {
        if (x->dtype == GX_F64) X = dx;
        else if (!(rc = gxc_alloc_pool(&k, 8 * (size_t)(n * d), (void **)&X)))
            CK(gxk_to_f64(s->stream, x->dtype, n * d, dx, X), "linreg convert");
    }
    if (!rc) {
        if (y->dtype == GX_F64) Y = dy;
        else if (!(rc = gxc_alloc(&k, 8 * (size_t)n, (void **)&Y)))
            CK(gxk_to_f64(s->stream, y->dtype, n, dy, Y), "linreg convert");
    }
    if (!rc) rc = gxc_alloc(&k, 8 * (size_t)d, (void **)&W);
    if (!rc) rc = gxc_alloc(&k, 8 * (size_t)d, (void **)&G);
    if (!rc) rc = gxc_alloc(&k, 8 * (size_t)(n ? n : 1), (void **)&R);
    if (!rc) rc = gxc_alloc(&k, 8 * (size_t)(steps ? steps : 1), (void **)&L);
    CK(cudaMemsetAsync(L, 0, 8 * (size_t)(steps ? steps : 1), s->stream), "memset");
    if (winit) CK(gxk_to_f64(s->stream, winit->dtype, d, dwin, W), "linreg convert");
    else CK(cudaMemsetAsync(W, 0, 8 * (size_t)d, s->stream), "memset");
    if (dlin) CK(gxk_to_f64(s->stream, rloss->dtype, start, dlin, L), "linreg convert");
    const double one = 1.0, zero = 0.0, g2 = n ? 2.0 / (double)n : 0.0;
    double *hw = NULL, *hl = NULL;
    for (int64_t t = start; !rc && t < steps && n > 0 && d > 0; t++) {
        int st = cublasDgemv(s->blas, CUBLAS_OP_T, (int)d, (int)n, &one, X, (int)d, W, 1, &zero, R, 1);
        if (!st) CK(gxk_resid(s->stream, n, R, Y, L + t), "linreg residual");
        if (!st && !rc)
            st = cublasDgemv(s->blas, CUBLAS_OP_N, (int)d, (int)n, &g2, X, (int)d, R, 1, &zero, G, 1);
        if (st) {
            rc = gxc_blas_fail(&k, st, "cuBLAS gemv failed");
            break;
        }
        CK(gxk_axpy_f64(s->stream, d, -lr, G, W), "linreg update");
        if (rc) break;
        int ckpt = c->checkpoint && every > 0 && (t + 1) % every == 0; /* the last step too */
        if ((t + 1) % LINREG_POLL == 0 || ckpt) {
            rc = gxc_check(&k, cudaStreamSynchronize(s->stream), "linreg");
            if (!rc && gx_kcall_cancelled(c))
                rc = gx_error_set(c->err, GX_ECANCELED, NULL, "linreg_gd cancelled at step %lld",
                                  (long long)(t + 1));
        }
        if (!rc && ckpt) {
            gx_array *st2[2] = {NULL, NULL};
            if (!hw) hw = malloc(8 * (size_t)d);
            if (!hl) hl = malloc(8 * (size_t)steps);
            if (!hw || !hl) rc = gx_error_set(c->err, GX_ENOMEM, NULL, "out of host memory");
            if (!rc) rc = gxc_fetch(&k, hw, W, 8 * (size_t)d);
            if (!rc) rc = gxc_fetch(&k, hl, L, 8 * (size_t)(t + 1));
            /* state as linreg_gd.c saves it: w f64 [d], loss f64 [step] */
            if (!rc) rc = gx_array_new1(GX_F64, d, &st2[0], c->err);
            if (!rc) rc = gx_array_new1(GX_F64, t + 1, &st2[1], c->err);
            for (int64_t i = 0; !rc && i < d; i++) gx_array_set_f64(st2[0], i, hw[i]);
            for (int64_t i = 0; !rc && i <= t; i++) gx_array_set_f64(st2[1], i, hl[i]);
            if (!rc) rc = c->checkpoint(c, t + 1, st2, 2);
            gx_array_unref(st2[0]);
            gx_array_unref(st2[1]);
        }
    }
    free(hw);
    free(hl);
    void *dwo = NULL, *dlo = NULL;
    if (!rc) rc = gxc_out(&k, wo, wdt, 1, &d, &dwo);
    CK(gxk_from_f64(s->stream, wdt, d, W, dwo), "linreg convert");
    if (lo) {
        if (!rc) rc = gxc_out(&k, lo, ldt, 1, &steps, &dlo);
        CK(gxk_from_f64(s->stream, ldt, steps, L, dlo), "linreg convert");
    }
    rc = gxc_finish(&k, rc);
    /* a loss that stopped being finite fails the call, as on the CPU */
    for (int64_t t = start; !rc && lo && *lo && t < steps; t++) {
        double l = gx_array_get_f64(*lo, t);
        if (!isfinite(l)) {
            rc = gx_kcall_nonfinite_input(c, "gradient descent needs finite inputs");
            if (!rc)
                rc = gx_error_set(c->err, GX_EKERNEL, "args.lr",
                                  "gradient descent diverged at step %lld (loss is %g); try a smaller lr than %g",
                                  (long long)t, l, lr);
            gx_array_unref(*lo);
            *lo = NULL;
            gx_array_unref(*wo);
            *wo = NULL;
        }
    }
    return rc;
}

/* ---- spin ------------------------------------------------------------------- */

#define SPIN_CHUNK_NS 10000000LL /* 10 ms between cancel checks */

static int spin_run(gx_kcall *c) {
    int64_t ns = (int64_t)gxc_arg(c, "us", 0) * 1000;
    if (ns <= 0) return 0;
    gxc_slot *s = slot_of(c);
    gxc_call k;
    gxc_begin(&k, s, c->err);
    int rc = 0;
    for (int64_t left = ns; !rc && left > 0; left -= SPIN_CHUNK_NS) {
        CK(gxk_spin(s->stream, NULL, 1, left < SPIN_CHUNK_NS ? left : SPIN_CHUNK_NS), "spin");
        CK(cudaStreamSynchronize(s->stream), "spin");
        if (!rc && gx_kcall_cancelled(c) && left > SPIN_CHUNK_NS)
            rc = gx_error_set(c->err, GX_ECANCELED, NULL, "spin cancelled");
    }
    return gxc_finish(&k, rc);
}

/* Short spins of a batch run side by side, one block each. */
static void spin_batch(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n) {
    int64_t *ns = malloc((size_t)n * sizeof *ns);
    int all_short = ns != NULL;
    for (int i = 0; all_short && i < n; i++) {
        ns[i] = (int64_t)gxc_arg(calls[i], "us", 0) * 1000;
        if (ns[i] > SPIN_CHUNK_NS) all_short = 0;
    }
    if (!all_short || n > 65535) {
        free(ns);
        run_each(calls, res, n);
        return;
    }
    int64_t t0 = now_ns();
    gxc_call k;
    gxc_begin(&k, s, calls[0]->err);
    void *dns = NULL;
    int rc = gxc_in_bytes(&k, ns, (size_t)n * sizeof *ns, &dns);
    if (!rc) rc = gxc_upload(&k);
    CK(gxk_spin(s->stream, dns, n, 0), "spin");
    rc = gxc_finish(&k, rc);
    int64_t el = now_ns() - t0;
    fail_group(calls, res, n, rc, calls[0]->err);
    for (int i = 0; i < n; i++) res[i].run_ns = el;
    free(ns);
}

static int spin_can_join(const gx_kcall *a, const gx_kcall *b) { return 1; }

/* ---- table ------------------------------------------------------------------ */

const gxc_impl gxc_impls[] = {
    {"saxpy", saxpy_run, saxpy_batch, same_dtype_x},
    {"reduce_sum", reduce_sum_run, NULL, NULL},
    {"gemm", gemm_run, NULL, NULL},
    {"sort", sort_run, NULL, NULL},
    {"histogram", histogram_run, NULL, NULL},
    {"normalize", normalize_run, normalize_batch, same_dtype_x},
    {"filter_range", filter_range_run, NULL, NULL},
    {"mlp_forward", mlp_forward_run, mlp_batch, mlp_can_join},
    {"linreg_gd", linreg_gd_run, NULL, NULL},
    {"spin", spin_run, spin_batch, spin_can_join},
};
const int gxc_nimpls = (int)(sizeof gxc_impls / sizeof gxc_impls[0]);

const gxc_impl *gxc_impl_of(const gx_kernel *k) {
    /* the catalog's version 1 only (backend.c attaches them so): a plugin's
     * saxpy@2 runs its own function, not this saxpy's */
    for (int i = 0; k && k->version == 1 && i < gxc_nimpls; i++)
        if (!strcmp(gxc_impls[i].name, k->name)) return &gxc_impls[i];
    return NULL;
}

int gxc_run_one(gx_kcall *c) {
    const gxc_impl *im = gxc_impl_of(c->kernel);
    if (im) return im->run(c);
    return gx_error_set(c->err, GX_EUNSUPPORTED, "kernel", "kernel %s has no GPU implementation",
                        c->kernel->name);
}
