/*
 * linreg_gd.c - least-squares linear regression by full-batch gradient
 * descent, with checkpoints.
 *
 * Minimises L(w) = mean((x w - y)^2) over w [d] from w0 (zeros when absent)
 * with w <- w - lr * 2/n x^T (x w - y) for `steps` steps, all in f64.
 * loss[s] is the loss *before* step s (at the w that step starts from), so
 * loss[0] is the loss of the starting point and the loss of the returned w
 * is not in the array. One pass over x per step computes both the loss and
 * the gradient. A loss that stops being finite (lr too large) fails the
 * call with GX_EKERNEL rather than return NaNs.
 *
 * Checkpoints (GX_KF_CHECKPOINT): after every `checkpoint_every` steps
 * (step s = K, 2K, ..., the last step included) the kernel calls
 * c->checkpoint(c, s, state, 2) with state[0] = w after s steps (f64 [d])
 * and state[1] = loss[0..s) (f64 [s]). A nonzero return stops the run with
 * that code. Given c->resume (the same two arrays) and c->resume_step = s,
 * the run continues at step s; the arithmetic is sequential and identical,
 * so the final w and loss are bit-for-bit those of an uninterrupted run.
 * The cancel flag is polled every step.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_int.h"

enum { ARG_STEPS, ARG_LR, ARG_CHECKPOINT_EVERY };
enum { IN_X, IN_Y, IN_W0 };
enum { OUT_W, OUT_LOSS };

static int linreg_validate(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X], *y = c->in[IN_Y], *w0 = c->in[IN_W0];
    if (x->shape[0] == 0)
        return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape[0]",
                            "x has no rows; the mean squared error of no samples is undefined");
    if (x->shape[1] == 0)
        return gx_error_set(c->err, GX_EINVAL, "inputs.x.shape[1]", "x has no columns (features)");
    if (y->shape[0] != x->shape[0])
        return gx_error_set(c->err, GX_EINVAL, "inputs.y.shape[0]", "y has %lld elements but x has %lld rows",
                            (long long)y->shape[0], (long long)x->shape[0]);
    if (w0 && w0->shape[0] != x->shape[1])
        return gx_error_set(c->err, GX_EINVAL, "inputs.w0.shape[0]",
                            "w0 has %lld elements but x has %lld columns", (long long)w0->shape[0],
                            (long long)x->shape[1]);
    if (!(c->args[ARG_LR] > 0))
        return gx_error_set(c->err, GX_EINVAL, "args.lr", "lr must be greater than 0; got %g", c->args[ARG_LR]);
    return 0;
}

/* Checks c->resume against this call; 0 or GX_EINVAL. */
static int check_resume(gx_kcall *c, int64_t d, int64_t steps) {
    int64_t s = c->resume_step;
    if (c->nresume != 2 || !c->resume[0] || !c->resume[1])
        return gx_error_set(c->err, GX_EINVAL, "resume", "checkpoint has %d arrays; expected 2 (w, loss)",
                            c->nresume);
    const gx_array *w = c->resume[0], *l = c->resume[1];
    if (s < 0 || s > steps)
        return gx_error_set(c->err, GX_EINVAL, "resume", "checkpoint step %lld is outside 0..%lld",
                            (long long)s, (long long)steps);
    if (w->dtype != GX_F64 || w->count != d)
        return gx_error_set(c->err, GX_EINVAL, "resume", "checkpoint w is %s[%lld]; expected f64[%lld]",
                            gx_dtype_name(w->dtype), (long long)w->count, (long long)d);
    if (l->dtype != GX_F64 || l->count != s)
        return gx_error_set(c->err, GX_EINVAL, "resume", "checkpoint loss is %s[%lld]; expected f64[%lld]",
                            gx_dtype_name(l->dtype), (long long)l->count, (long long)s);
    return 0;
}

/* Saves (w, loss[0..s)) through the engine's callback. */
static int save(gx_kcall *c, int64_t s, double *w, int64_t d, double *loss) {
    gx_array *st[2] = {NULL, NULL};
    int rc = gx_array_wrap(GX_F64, 1, &d, w, NULL, NULL, &st[0], c->err);
    if (!rc) rc = gx_array_wrap(GX_F64, 1, &s, loss, NULL, NULL, &st[1], c->err);
    if (!rc) {
        /* the callback may explain a failure in c->err; keep ours if not */
        if (c->err) c->err->message[0] = '\0';
        rc = c->checkpoint(c, s, st, 2);
        if (rc && c->err && !c->err->message[0])
            gx_error_set(c->err, rc, NULL, "saving the checkpoint after step %lld failed: %s", (long long)s,
                         gx_strerror(rc));
        else if (rc && c->err)
            c->err->code = rc;
    }
    gx_array_unref(st[0]);
    gx_array_unref(st[1]);
    return rc;
}

static int linreg_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X], *y = c->in[IN_Y], *w0 = c->in[IN_W0];
    int64_t n = x->shape[0], d = x->shape[1], steps = (int64_t)c->args[ARG_STEPS];
    int64_t every = (int64_t)c->args[ARG_CHECKPOINT_EVERY], s0 = 0;
    double lr = c->args[ARG_LR];
    int rc = 0;
    if (c->resume && (rc = check_resume(c, d, steps))) return rc;
    if ((rc = gx__kout(c, OUT_W, GX_F64, 1, &d)) || (rc = gx__kout(c, OUT_LOSS, GX_F64, 1, &steps))) return rc;
    double *w = c->out[OUT_W]->data, *loss = c->out[OUT_LOSS]->data;
    /* x and y as f64 (borrowed when already f64) plus the gradient */
    double *own = malloc(((x->dtype == GX_F64 ? 0 : (size_t)(n * d)) + (y->dtype == GX_F64 ? 0 : (size_t)n) +
                          (size_t)d) * sizeof(double));
    if (!own) return gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory for a %lldx%lld f64 copy of x",
                                  (long long)n, (long long)d);
    double *grad = own, *p = own + d;
    const double *X = x->data, *Y = y->data;
    if (x->dtype != GX_F64) {
        for (int64_t i = 0; i < n * d; i++) p[i] = ((const float *)x->data)[i];
        X = p;
        p += n * d;
    }
    if (y->dtype != GX_F64) {
        for (int64_t i = 0; i < n; i++) p[i] = ((const float *)y->data)[i];
        Y = p;
    }
    if (c->resume) {
        s0 = c->resume_step;
        memcpy(w, c->resume[0]->data, (size_t)d * sizeof *w);
        if (s0) memcpy(loss, c->resume[1]->data, (size_t)s0 * sizeof *loss);
    } else if (w0) {
        for (int64_t j = 0; j < d; j++) w[j] = gx_array_get_f64(w0, j);
    }
    for (int64_t s = s0; s < steps; s++) {
        if (gx_kcall_cancelled(c)) {
            rc = gx__kcancel(c);
            break;
        }
        double sse = 0;
        memset(grad, 0, (size_t)d * sizeof *grad);
        for (int64_t i = 0; i < n; i++) {
            const double *xi = X + i * d;
            double r = -Y[i];
            for (int64_t j = 0; j < d; j++) r += xi[j] * w[j];
            sse += r * r;
            for (int64_t j = 0; j < d; j++) grad[j] += r * xi[j];
        }
        loss[s] = sse / (double)n;
        if (!isfinite(loss[s])) {
            /* an input that is not finite makes every loss so: not lr's fault */
            rc = gx_kcall_nonfinite_input(c, "gradient descent needs finite inputs");
            if (!rc)
                rc = gx_error_set(c->err, GX_EKERNEL, "args.lr",
                                  "gradient descent diverged at step %lld (loss is %g); try a smaller lr than %g",
                                  (long long)s, loss[s], lr);
            break;
        }
        double g = 2.0 * lr / (double)n;
        for (int64_t j = 0; j < d; j++) w[j] -= g * grad[j];
        if (every > 0 && (s + 1) % every == 0 && c->checkpoint && (rc = save(c, s + 1, w, d, loss))) break;
    }
    free(own);
    return rc;
}

static uint64_t linreg_mem(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    if (!x || x->ndim != 2) return gx__kin_bytes(c);
    uint64_t n = (uint64_t)x->shape[0], d = (uint64_t)x->shape[1];
    return gx__kin_bytes(c) + (d + (uint64_t)c->args[ARG_STEPS]) * 8 + (n * d + n + d) * 8;
}

/* 4 flops per element of x per step at about 2 GFLOP/s */
static double linreg_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    if (!x || x->ndim != 2) return -1;
    return 2.0 + c->args[ARG_STEPS] * ((double)x->count * 2e-3 + 0.05);
}

static const gx_arg_spec linreg_args[] = {
    [ARG_STEPS] = {.name = "steps", .type = GX_ARG_INT, .required = 1, .min = 1, .max = 1e7,
                   .doc = "gradient steps to take"},
    [ARG_LR] = {.name = "lr", .type = GX_ARG_FLOAT, .def = 0.01, .min = 0, .max = DBL_MAX,
                .doc = "learning rate (> 0)"},
    [ARG_CHECKPOINT_EVERY] = {.name = "checkpoint_every", .type = GX_ARG_INT, .def = 0, .min = 0,
                              .max = 1e7, .doc = "save state every K steps (0 = never)"},
};

static const gx_io_spec linreg_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 2, .shape = "[n,d]", .doc = "samples in rows"},
    [IN_Y] = {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 1, .shape = "[n]", .doc = "targets"},
    [IN_W0] = {.name = "w0", .dtypes = GX_DTM_FLOAT, .rank = 1, .flags = GX_IO_OPTIONAL, .shape = "[d]",
               .doc = "starting weights (zeros when absent)"},
};

static const gx_io_spec linreg_out[] = {
    [OUT_W] = {.name = "w", .dtypes = GX_DTM(GX_F64), .rank = 1, .shape = "[d]", .doc = "final weights"},
    [OUT_LOSS] = {.name = "loss", .dtypes = GX_DTM(GX_F64), .rank = 1, .shape = "[steps]",
                  .doc = "mean squared error before each step"},
};

const gx_kernel gx__k_linreg_gd = {
    GX_KERNEL_HEADER,
    .name = "linreg_gd",
    .version = 1,
    .summary = "linear regression by gradient descent; loss per step; checkpoints and resumes",
    .args = linreg_args,
    .nargs = 3,
    .inputs = linreg_in,
    .ninputs = 3,
    .outputs = linreg_out,
    .noutputs = 2,
    .flags = GX_KF_CHECKPOINT,
    .validate = linreg_validate,
    .mem_bytes = linreg_mem,
    .cost_us = linreg_cost,
    .run = {[GX_DEV_CPU] = linreg_run},
};
