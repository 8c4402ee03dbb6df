/*
 * mlp_forward.c - a multi-layer perceptron on a batch of rows.
 *
 * Layer i computes h_{i+1} = act(h_i w_i + b_i) with w_i [in_i, out_i] and
 * b_i [out_i] given as the input series w0, w1, ... and b0, b1, ...; the
 * activation (relu or tanh) is applied between layers, not after the last,
 * and the last layer may end in a softmax over each row (max subtracted
 * first, so large logits do not overflow). Everything is computed in the
 * dtype of x (f32 or f64), the matrix products with the blocked gemm of
 * gemm.c; softmax sums in f64. An empty batch gives an empty result.
 * Batchable: rows are independent.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_int.h"

enum { ARG_ACTIVATION, ARG_SOFTMAX };
enum { IN_X, IN_W, IN_B };
enum { OUT_Y };
enum { ACT_RELU, ACT_TANH };

/* The layers of a call: w[i], b[i] for i < n (NULL where a member is
 * missing), found in one scan of the input names. */
typedef struct layers {
    int nw, nb; /* one past the highest index seen in each series */
    const gx_array **w, **b;
} layers;

static int member_index(const char *name, char prefix) {
    if (name[0] != prefix || !name[1] || (name[1] == '0' && name[2])) return -1;
    int v = 0;
    for (const char *p = name + 1; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* Returns 0 or GX_ENOMEM; free L->w after. */
static int get_layers(const gx_kcall *c, layers *L) {
    L->nw = L->nb = 0;
    L->w = calloc((size_t)(2 * c->nin_all + 2), sizeof *L->w);
    if (!L->w) return GX_ENOMEM;
    L->b = L->w + c->nin_all + 1;
    for (int i = 0; i < c->nin_all; i++) {
        int k;
        /* an index above nin_all implies a gap below it: ignore, counted as missing */
        if ((k = member_index(c->in_names[i], 'w')) >= 0 && k < c->nin_all) {
            L->w[k] = c->in_all[i];
            if (k >= L->nw) L->nw = k + 1;
        } else if ((k = member_index(c->in_names[i], 'b')) >= 0 && k < c->nin_all) {
            L->b[k] = c->in_all[i];
            if (k >= L->nb) L->nb = k + 1;
        }
    }
    return 0;
}

static int mlp_validate(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    char field[64];
    layers L;
    if (get_layers(c, &L)) return gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory");
    int rc = 0, n = L.nw > L.nb ? L.nw : L.nb;
    int64_t width = x->shape[1];
    if (n == 0) {
        rc = gx_error_set(c->err, GX_EINVAL, "inputs.w0", "required input 'w0' [in_0,out_0] is missing");
        goto done;
    }
    if (width == 0) {
        rc = gx_error_set(c->err, GX_EINVAL, "inputs.x.shape[1]", "x has no columns (features)");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const gx_array *w = L.w[i], *b = L.b[i];
        if (!w || !b) {
            snprintf(field, sizeof field, "inputs.%s%d", w ? "b" : "w", i);
            rc = gx_error_set(c->err, GX_EINVAL, field, w ? "layer %d has weights w%d but no bias b%d"
                                                          : "layer %d has no weights w%d (layers are numbered from 0 without gaps)",
                              i, i, i);
            goto done;
        }
        if (w->ndim != 2 || b->ndim != 1) {
            snprintf(field, sizeof field, "inputs.%s%d.shape", w->ndim != 2 ? "w" : "b", i);
            rc = gx_error_set(c->err, GX_EINVAL, field, w->ndim != 2 ? "w%d must be a matrix [in,out]"
                                                                      : "b%d must be a vector [out]", i);
            goto done;
        }
        if (w->dtype != x->dtype || b->dtype != x->dtype) {
            int bad_w = w->dtype != x->dtype;
            snprintf(field, sizeof field, "inputs.%s%d.dtype", bad_w ? "w" : "b", i);
            rc = gx_error_set(c->err, GX_EINVAL, field, "%s%d is %s but x is %s; all inputs must have one dtype",
                              bad_w ? "w" : "b", i, gx_dtype_name(bad_w ? w->dtype : b->dtype),
                              gx_dtype_name(x->dtype));
            goto done;
        }
        if (w->shape[0] != width) {
            snprintf(field, sizeof field, "inputs.w%d.shape[0]", i);
            if (i == 0)
                rc = gx_error_set(c->err, GX_EINVAL, field, "w0 has %lld rows but x has %lld columns",
                                  (long long)w->shape[0], (long long)width);
            else
                rc = gx_error_set(c->err, GX_EINVAL, field,
                                  "w%d has %lld rows but layer %d has %lld outputs (w%d has %lld columns)",
                                  i, (long long)w->shape[0], i - 1, (long long)width, i - 1, (long long)width);
            goto done;
        }
        if (w->shape[1] == 0) {
            snprintf(field, sizeof field, "inputs.w%d.shape[1]", i);
            rc = gx_error_set(c->err, GX_EINVAL, field, "w%d has no columns (a layer with no outputs)", i);
            goto done;
        }
        if (b->shape[0] != w->shape[1]) {
            snprintf(field, sizeof field, "inputs.b%d.shape[0]", i);
            rc = gx_error_set(c->err, GX_EINVAL, field, "b%d has %lld elements but w%d has %lld columns", i,
                              (long long)b->shape[0], i, (long long)w->shape[1]);
            goto done;
        }
        width = w->shape[1];
    }
done:
    free(L.w);
    return rc;
}

#define DEFINE_ACT(T, SFX, TANH)                                                        \
    static void act_##SFX(T *h, int64_t n, int kind) {                                  \
        if (kind == ACT_RELU)                                                           \
            for (int64_t i = 0; i < n; i++) h[i] = h[i] < 0 ? 0 : h[i]; /* NaN stays */ \
        else                                                                            \
            for (int64_t i = 0; i < n; i++) h[i] = TANH(h[i]);                          \
    }                                                                                   \
    static void softmax_##SFX(T *h, int64_t rows, int64_t cols) {                       \
        for (int64_t r = 0; r < rows; r++, h += cols) {                                 \
            double mx = h[0], sum = 0;                                                  \
            for (int64_t j = 1; j < cols; j++) mx = h[j] > mx ? h[j] : mx;              \
            for (int64_t j = 0; j < cols; j++) sum += exp((double)h[j] - mx);           \
            for (int64_t j = 0; j < cols; j++) h[j] = (T)(exp((double)h[j] - mx) / sum); \
        }                                                                               \
    }
DEFINE_ACT(float, s, tanhf)
DEFINE_ACT(double, d, tanh)

static int mlp_run(gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    layers L;
    if (get_layers(c, &L)) return gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory");
    int nl = L.nw;
    int64_t batch = x->shape[0], maxw = 0;
    size_t es = gx_dtype_size(x->dtype);
    for (int i = 0; i + 1 < nl; i++) maxw = L.w[i]->shape[1] > maxw ? L.w[i]->shape[1] : maxw;
    int64_t shape[2] = {batch, L.w[nl - 1]->shape[1]};
    char *buf = NULL;
    int rc = gx__kout(c, OUT_Y, x->dtype, 2, shape);
    if (rc || batch == 0) goto done;
    /* hidden activations ping-pong between two buffers; the last layer
     * writes straight into the output */
    if (nl > 1 && !(buf = malloc((size_t)(2 * batch * maxw) * es))) {
        rc = gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory for %lld x %lld activations",
                          (long long)batch, (long long)maxw);
        goto done;
    }
    const void *src = x->data;
    for (int i = 0; i < nl; i++) {
        const gx_array *w = L.w[i], *b = L.b[i];
        int64_t in = w->shape[0], out = w->shape[1];
        int last = i == nl - 1;
        void *dst = last ? c->out[OUT_Y]->data : buf + (size_t)((i & 1) * batch * maxw) * es;
        for (int64_t r = 0; r < batch; r++) memcpy((char *)dst + (size_t)(r * out) * es, b->data, b->nbytes);
        gx__gemm_op g = {.dt = x->dtype, .m = batch, .n = out, .k = in, .alpha = 1, .beta = 1,
                         .a = src, .lda = in, .b = w->data, .ldb = out, .c = dst, .ldc = out,
                         .cancel = c->cancel};
        rc = gx__gemm(&g);
        if (rc == GX_ECANCELED) {
            rc = gx__kcancel(c);
            goto done;
        }
        if (rc) {
            rc = gx_error_set(c->err, rc, NULL, "out of memory in the matrix product of layer %d", i);
            goto done;
        }
        if (!last) {
            if (x->dtype == GX_F32) act_s(dst, batch * out, (int)c->args[ARG_ACTIVATION]);
            else act_d(dst, batch * out, (int)c->args[ARG_ACTIVATION]);
        } else if (c->args[ARG_SOFTMAX] != 0) {
            if (x->dtype == GX_F32) softmax_s(dst, batch, out);
            else softmax_d(dst, batch, out);
        }
        src = dst;
    }
done:
    free(buf);
    free(L.w);
    return rc;
}

/* Walks the layers present from 0 up to the first gap. */
static uint64_t mlp_mem(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    layers L;
    if (!x || x->ndim != 2 || get_layers(c, &L)) return gx__kin_bytes(c);
    uint64_t es = gx_dtype_size(x->dtype), batch = (uint64_t)x->shape[0], maxw = 0, out = 0, scratch = 0;
    int64_t in = x->shape[1];
    for (int i = 0; i < L.nw && L.w[i] && L.w[i]->ndim == 2; i++) {
        out = (uint64_t)L.w[i]->shape[1];
        maxw = out > maxw ? out : maxw;
        uint64_t s = gx__gemm_scratch_bytes(x->dtype, x->shape[0], L.w[i]->shape[1], in);
        scratch = s > scratch ? s : scratch;
        in = L.w[i]->shape[1];
    }
    free(L.w);
    /* batch and a layer's width can each be 2^34 (x [2^34,1], w0 [1,2^34]):
     * their product is past 2^64 */
    uint64_t outs = gx__kmem_mul(gx__kmem_mul(batch, out), es);
    uint64_t acts = gx__kmem_mul(gx__kmem_mul(batch, maxw), 2 * es);
    return gx__kmem_add(gx__kmem_add(gx__kin_bytes(c), outs), gx__kmem_add(acts, scratch));
}

static double mlp_cost(const gx_kcall *c) {
    const gx_array *x = c->in[IN_X];
    layers L;
    if (!x || x->ndim != 2 || get_layers(c, &L)) return -1;
    double flops = 0;
    int64_t in = x->shape[1];
    for (int i = 0; i < L.nw && L.w[i] && L.w[i]->ndim == 2; i++) {
        flops += 2.0 * (double)x->shape[0] * (double)in * (double)L.w[i]->shape[1];
        in = L.w[i]->shape[1];
    }
    free(L.w);
    return 2.0 + flops / (x->dtype == GX_F64 ? 15e3 : 30e3);
}

static const char *const mlp_acts[] = {"relu", "tanh", NULL};

static const gx_arg_spec mlp_args[] = {
    [ARG_ACTIVATION] = {.name = "activation", .type = GX_ARG_ENUM, .def = ACT_RELU,
                        .choices = mlp_acts, .doc = "between layers: relu or tanh"},
    [ARG_SOFTMAX] = {.name = "softmax", .type = GX_ARG_BOOL, .def = 0,
                     .doc = "apply a softmax to each output row"},
};

static const gx_io_spec mlp_in[] = {
    [IN_X] = {.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 2, .shape = "[batch,in]",
              .doc = "a batch of input rows"},
    [IN_W] = {.name = "w", .dtypes = GX_DTM_FLOAT, .rank = 2, .flags = GX_IO_SERIES,
              .shape = "[in_i,out_i]", .doc = "weights of layer i (w0, w1, ...)"},
    [IN_B] = {.name = "b", .dtypes = GX_DTM_FLOAT, .rank = 1, .flags = GX_IO_SERIES,
              .shape = "[out_i]", .doc = "bias of layer i (b0, b1, ...)"},
};

static const gx_io_spec mlp_out[] = {
    [OUT_Y] = {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 2, .shape = "[batch,out]",
               .doc = "output of the last layer"},
};

const gx_kernel gx__k_mlp_forward = {
    GX_KERNEL_HEADER,
    .name = "mlp_forward",
    .version = 1,
    .summary = "dense layers with relu/tanh between them and an optional softmax",
    .args = mlp_args,
    .nargs = 2,
    .inputs = mlp_in,
    .ninputs = 3,
    .outputs = mlp_out,
    .noutputs = 1,
    .flags = GX_KF_BATCHABLE,
    .validate = mlp_validate,
    .mem_bytes = mlp_mem,
    .cost_us = mlp_cost,
    .run = {[GX_DEV_CPU] = mlp_run},
};
