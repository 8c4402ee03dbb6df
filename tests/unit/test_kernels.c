/*
 * test_kernels.c - the built-in CPU kernel catalog against simple reference
 * loops in double, on random inputs of several (odd) sizes, plus edge cases
 * and the error message of every refusal. Checkpoint/resume of linreg_gd
 * and cancellation drive a gx_kcall by hand through the registry's binding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec/registry_int.h"
#include "kernels/kernels_int.h"
#include "testutil.h"

#define NA(n, v) ((gx_named_arg){.name = (n), .value = (v)})
#define NI(n, a) ((gx_named_input){.name = (n), .array = (a)})
#define LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const gx_kernel *K(const char *name) {
    const gx_kernel *k = gx_kernel_find(name);
    if (!k) fail_msg("kernel %s is not registered", name);
    return k;
}

static double tol(gx_dtype dt) { return dt == GX_F32 ? 1e-5 : 1e-12; }

/* Relative error against a reference that must not be all zeros. */
static void check_close(const gx_array *a, const double *ref, int64_t n, double bound, const char *what) {
    double den = 0;
    for (int64_t i = 0; i < n; i++) den += ref[i] * ref[i];
    if (n > 0 && den == 0) fail_msg("%s: reference is all zeros; the test is meaningless", what);
    assert_int_equal(a->count, n);
    double e = tu_rel_err(a, ref, n);
    if (!(e <= bound)) fail_msg("%s: relative error %g exceeds %g", what, e, bound);
}

/* Runs and expects a refusal with that code and field; the message must
 * contain `needle` (when given) and never be empty. */
static void expect_err(const char *kname, const gx_named_arg *args, int nargs, const gx_named_input *ins,
                       int nin, int code, const char *field, const char *needle) {
    gx_array *out[4] = {0};
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_kernel_run_direct(K(kname), args, nargs, ins, nin, out, &err);
    for (int i = 0; i < 4; i++) gx_array_unref(out[i]);
    if (rc != code)
        fail_msg("%s: expected %s, got %s (field '%s': %s)", kname, gx_err_name(code), gx_err_name(rc), err.field,
                 err.message);
    assert_string_equal(err.field, field);
    assert_true(strlen(err.message) > 10);
    if (needle && !strstr(err.message, needle))
        fail_msg("%s: message '%s' does not mention '%s'", kname, err.message, needle);
}

/* ---- a call driven by hand: binding, checkpoints, resume, cancel -------- */

typedef struct ckpt {
    int64_t step;
    gx_array *w, *loss;
} ckpt;

typedef struct call {
    gx__bound b;
    gx_kcall c;
    gx_array *out[4];
    gx_error err;
    volatile int cancel;
    ckpt saved[64];
    int nsaved;
    int fail_ckpt; /* checkpoint callback returns this */
} call;

static void call_bind(call *cl, const char *kname, const gx_named_arg *args, int nargs,
                      const gx_named_input *ins, int nin) {
    memset(cl, 0, sizeof *cl);
    gx_error_clear(&cl->err);
    TU_OK(gx__bind(K(kname), args, nargs, ins, nin, &cl->b, &cl->err), cl->err);
    gx__kcall_init(&cl->c, K(kname), &cl->b, cl->out, &cl->err);
    cl->c.cancel = &cl->cancel;
    cl->c.engine_priv = cl;
}

static int call_exec(call *cl) { return gx_kernel_impl(cl->c.kernel, GX_DEV_CPU)(&cl->c); }

static void call_free(call *cl) {
    for (int i = 0; i < 4; i++) gx_array_unref(cl->out[i]);
    for (int i = 0; i < cl->nsaved; i++) {
        gx_array_unref(cl->saved[i].w);
        gx_array_unref(cl->saved[i].loss);
    }
    gx__bound_free(&cl->b);
}

static int capture_ckpt(gx_kcall *c, int64_t step, gx_array *const *state, int nstate) {
    call *cl = c->engine_priv;
    if (cl->fail_ckpt) return cl->fail_ckpt;
    assert_int_equal(nstate, 2);
    assert_true(cl->nsaved < LEN(cl->saved));
    ckpt *k = &cl->saved[cl->nsaved++];
    gx_error err;
    k->step = step;
    TU_OK(gx_array_copy(state[0], &k->w, &err), err);
    TU_OK(gx_array_copy(state[1], &k->loss, &err), err);
    return 0;
}

/* ---- catalog --------------------------------------------------------------- */

static void catalog_complete(void **st) {
    (void)st;
    static const char *names[] = {"saxpy", "reduce_sum", "gemm", "sort", "histogram", "normalize",
                                  "filter_range", "mlp_forward", "linreg_gd", "spin"};
    for (int i = 0; i < LEN(names); i++) {
        const gx_kernel *k = K(names[i]);
        assert_non_null(k->run[GX_DEV_CPU]);
        assert_non_null(k->mem_bytes);
        assert_non_null(k->summary);
    }
    assert_true(K("saxpy")->flags & GX_KF_BATCHABLE);
    assert_true(K("normalize")->flags & GX_KF_BATCHABLE);
    assert_true(K("mlp_forward")->flags & GX_KF_BATCHABLE);
    assert_true(K("linreg_gd")->flags & GX_KF_CHECKPOINT);
}

/* mem_bytes covers at least inputs and outputs; cost_us is positive. */
static void mem_and_cost(void **st) {
    (void)st;
    int64_t s2[2] = {64, 48}, s3[2] = {48, 32};
    gx_array *a = tu_rand_array(GX_F64, 2, s2, -1, 1), *b = tu_rand_array(GX_F64, 2, s3, -1, 1);
    gx_named_input in[] = {NI("a", a), NI("b", b)};
    call cl;
    call_bind(&cl, "gemm", NULL, 0, in, 2);
    uint64_t need = a->nbytes + b->nbytes + 64 * 32 * 8;
    assert_true(cl.c.kernel->mem_bytes(&cl.c) >= need);
    assert_true(cl.c.kernel->cost_us(&cl.c) > 0);
    call_free(&cl);
    gx_array *x = tu_rand1(GX_F32, 1000, -1, 1);
    gx_named_arg ar[] = {NA("a", 2)};
    gx_named_input in2[] = {NI("x", x), NI("y", x)};
    call_bind(&cl, "saxpy", ar, 1, in2, 2);
    assert_true(cl.c.kernel->mem_bytes(&cl.c) >= 3 * x->nbytes);
    assert_true(cl.c.kernel->cost_us(&cl.c) > 0);
    call_free(&cl);
    gx_array_unref(a);
    gx_array_unref(b);
    gx_array_unref(x);
}

/* An f32 array of that shape over a dummy buffer: the estimators read only
 * shapes, so a 2^34-element descriptor needs no 64 GiB behind it. */
static gx_array *shape_only(int ndim, int64_t d0, int64_t d1) {
    static float dummy[4];
    int64_t sh[2] = {d0, d1};
    gx_array *a;
    gx_error err;
    TU_OK(gx_array_wrap(GX_F32, ndim, sh, dummy, NULL, NULL, &a, &err), err);
    return a;
}

/* Estimates that would wrap past 2^64 saturate: a gemm of [2^32,0] x
 * [0,2^32] once came to 0 bytes (2^64 * 4 wrapped), passed submit's device
 * memory check and failed only when its 2^64-element output could not be
 * made. */
static void mem_saturates(void **st) {
    (void)st;
    static const int64_t big[] = {INT64_C(1) << 32, INT64_C(1) << 34};
    for (int i = 0; i < LEN(big); i++) {
        gx_array *a = shape_only(2, big[i], 0), *b = shape_only(2, 0, big[i]);
        gx_named_input in[] = {NI("a", a), NI("b", b)};
        call cl;
        call_bind(&cl, "gemm", NULL, 0, in, 2);
        assert_true(cl.c.kernel->mem_bytes(&cl.c) == UINT64_MAX);
        call_free(&cl);
        /* an mlp layer of [n,1] x [1,n] (mlp wants at least one feature) */
        gx_array *x = shape_only(2, big[i], 1), *w = shape_only(2, 1, big[i]), *bias = shape_only(1, big[i], 0);
        gx_named_input mi[] = {NI("x", x), NI("w0", w), NI("b0", bias)};
        call_bind(&cl, "mlp_forward", NULL, 0, mi, 3);
        assert_true(cl.c.kernel->mem_bytes(&cl.c) == UINT64_MAX);
        call_free(&cl);
        gx_array_unref(a);
        gx_array_unref(b);
        gx_array_unref(x);
        gx_array_unref(w);
        gx_array_unref(bias);
    }
}

/* ---- saxpy ----------------------------------------------------------------- */

static void saxpy_matches(void **st) {
    (void)st;
    const int64_t sizes[] = {1, 7, 1000, 100003};
    const gx_dtype dts[] = {GX_F32, GX_F64};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < LEN(sizes); s++) {
            int64_t n = sizes[s];
            gx_array *x = tu_rand1(dts[d], n, -1, 1), *y = tu_rand1(dts[d], n, -1, 1), *out = NULL;
            double a = tu_uniform(-3, 3);
            double *ref = malloc((size_t)n * sizeof *ref);
            for (int64_t i = 0; i < n; i++) ref[i] = a * gx_array_get_f64(x, i) + gx_array_get_f64(y, i);
            gx_named_arg ar[] = {NA("a", a)};
            gx_named_input in[] = {NI("x", x), NI("y", y)};
            gx_error err;
            TU_OK(gx_kernel_run_direct(K("saxpy"), ar, 1, in, 2, &out, &err), err);
            assert_int_equal(out->dtype, dts[d]);
            assert_true(out != y);
            check_close(out, ref, n, tol(dts[d]), "saxpy");
            free(ref);
            gx_array_unref(out);
            gx_array_unref(x);
            gx_array_unref(y);
        }
}

static void saxpy_errors(void **st) {
    (void)st;
    gx_array *x4 = tu_rand1(GX_F32, 4, 0, 1), *y5 = tu_rand1(GX_F32, 5, 0, 1), *y4d = tu_rand1(GX_F64, 4, 0, 1);
    gx_array *xi = tu_rand1(GX_I32, 4, 0, 9);
    int64_t s2[2] = {2, 2};
    gx_array *m = tu_rand_array(GX_F32, 2, s2, 0, 1);
    gx_named_arg a = NA("a", 2);
    gx_named_input in[2];
    in[0] = NI("x", x4), in[1] = NI("y", y5);
    expect_err("saxpy", &a, 1, in, 2, GX_EINVAL, "inputs.y.shape[0]", "y has 5 elements but x has 4");
    in[1] = NI("y", y4d);
    expect_err("saxpy", &a, 1, in, 2, GX_EINVAL, "inputs.y.dtype", "f64");
    in[0] = NI("x", xi), in[1] = NI("y", x4);
    expect_err("saxpy", &a, 1, in, 2, GX_EINVAL, "inputs.x.dtype", "i32");
    in[0] = NI("x", x4);
    expect_err("saxpy", &a, 1, in, 1, GX_EINVAL, "inputs.y", "missing");
    in[1] = NI("y", x4);
    expect_err("saxpy", NULL, 0, in, 2, GX_EINVAL, "args.a", "missing");
    gx_named_arg nan = NA("a", NAN);
    expect_err("saxpy", &nan, 1, in, 2, GX_EINVAL, "args.a", "finite");
    in[0] = NI("x", m);
    expect_err("saxpy", &a, 1, in, 2, GX_EINVAL, "inputs.x.shape", "dimension");
    gx_array_unref(x4);
    gx_array_unref(y5);
    gx_array_unref(y4d);
    gx_array_unref(xi);
    gx_array_unref(m);
}

/* ---- reduce_sum ------------------------------------------------------------ */

static void reduce_sum_floats(void **st) {
    (void)st;
    const int64_t sizes[] = {1, 17, 1000, (1 << 20) + 3, (1 << 21) + 5};
    const gx_dtype dts[] = {GX_F32, GX_F64};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < LEN(sizes); s++) {
            int64_t n = sizes[s];
            /* [-1, 2): the sum is around n/2, never near zero */
            gx_array *x = tu_rand1(dts[d], n, -1, 2), *out = NULL;
            long double ref = 0;
            for (int64_t i = 0; i < n; i++) ref += gx_array_get_f64(x, i);
            gx_named_input in = NI("x", x);
            gx_error err;
            TU_OK(gx_kernel_run_direct(K("reduce_sum"), NULL, 0, &in, 1, &out, &err), err);
            assert_int_equal(out->dtype, GX_F64);
            assert_int_equal(out->count, 1);
            double r = (double)ref;
            /* accumulated in f64 whatever the input: f64 accuracy for both */
            check_close(out, &r, 1, 1e-12, "reduce_sum");
            gx_array_unref(out);
            gx_array_unref(x);
        }
}

/* Infinities: the sum is what IEEE says (-inf + 1 = -inf, inf + -inf =
 * NaN), not NaN from the compensation term (it was NaN for [-inf, 1]). */
static void reduce_sum_infinities(void **st) {
    (void)st;
    const double cases[][3] = {{-INFINITY, 1, 2}, {INFINITY, 1, -5}, {INFINITY, -INFINITY, 1}, {NAN, 1, 2}};
    const double want[] = {-INFINITY, INFINITY, NAN, NAN};
    for (int c = 0; c < 4; c++) {
        int64_t n = 3;
        gx_array *x = tu_from(GX_F64, 1, &n, cases[c]), *out = NULL;
        gx_named_input in = NI("x", x);
        gx_error err;
        TU_OK(gx_kernel_run_direct(K("reduce_sum"), NULL, 0, &in, 1, &out, &err), err);
        double got = ((double *)out->data)[0];
        if (isnan(want[c]) ? !isnan(got) : got != want[c]) fail_msg("case %d: sum %g, want %g", c, got, want[c]);
        gx_array_unref(out);
        gx_array_unref(x);
    }
}

static void reduce_sum_ints(void **st) {
    (void)st;
    gx_error err;
    gx_array *out = NULL;
    for (int d = 0; d < 2; d++) {
        gx_dtype dt = d ? GX_I64 : GX_I32;
        gx_array *x = tu_rand1(dt, 100001, -2e9, 2e9);
        int64_t ref = 0;
        for (int64_t i = 0; i < x->count; i++)
            ref += dt == GX_I32 ? ((int32_t *)x->data)[i] : ((int64_t *)x->data)[i];
        gx_named_input in = NI("x", x);
        TU_OK(gx_kernel_run_direct(K("reduce_sum"), NULL, 0, &in, 1, &out, &err), err);
        assert_int_equal(out->dtype, GX_I64);
        assert_int_equal(((int64_t *)out->data)[0], ref);
        gx_array_unref(out);
        gx_array_unref(x);
    }
    /* empty: 0 */
    gx_array *e = tu_rand1(GX_F64, 0, 0, 1);
    gx_named_input in = NI("x", e);
    TU_OK(gx_kernel_run_direct(K("reduce_sum"), NULL, 0, &in, 1, &out, &err), err);
    assert_true(((double *)out->data)[0] == 0.0);
    gx_array_unref(out);
    gx_array_unref(e);
    /* i64 overflow is refused, not wrapped */
    double big[3] = {9.0e18, 9.0e18, -5};
    int64_t n3 = 3;
    gx_array *o = tu_from(GX_I64, 1, &n3, big);
    in = NI("x", o);
    expect_err("reduce_sum", NULL, 0, &in, 1, GX_EOVERFLOW, "inputs.x", "i64");
    gx_array_unref(o);
    /* ...but a partial sum past the range is not: only the sum must fit */
    o = NULL;
    TU_OK(gx_array_new(GX_I64, 1, &n3, &o, &err), err);
    ((int64_t *)o->data)[0] = INT64_MAX;
    ((int64_t *)o->data)[1] = 1;
    ((int64_t *)o->data)[2] = -1;
    in = NI("x", o);
    TU_OK(gx_kernel_run_direct(K("reduce_sum"), NULL, 0, &in, 1, &out, &err), err);
    assert_true(((int64_t *)out->data)[0] == INT64_MAX);
    gx_array_unref(out);
    ((int64_t *)o->data)[0] = INT64_MIN;
    ((int64_t *)o->data)[1] = -1;
    ((int64_t *)o->data)[2] = 1;
    TU_OK(gx_kernel_run_direct(K("reduce_sum"), NULL, 0, &in, 1, &out, &err), err);
    assert_true(((int64_t *)out->data)[0] == INT64_MIN);
    gx_array_unref(out);
    gx_array_unref(o);
    gx_array *u = tu_rand1(GX_U8, 3, 0, 9);
    in = NI("x", u);
    expect_err("reduce_sum", NULL, 0, &in, 1, GX_EINVAL, "inputs.x.dtype", "u8");
    expect_err("reduce_sum", NULL, 0, NULL, 0, GX_EINVAL, "inputs.x", "missing");
    gx_array_unref(u);
}

/* ---- gemm ------------------------------------------------------------------ */

/* op(X)(i, j) for X stored rows x cols */
static double opx(const gx_array *x, int trans, int64_t i, int64_t j) {
    int64_t cols = x->shape[1];
    return trans ? gx_array_get_f64(x, j * cols + i) : gx_array_get_f64(x, i * cols + j);
}

static void gemm_case(gx_dtype dt, int64_t m, int64_t n, int64_t k, int ta, int tb, int with_c, double alpha,
                      double beta) {
    int64_t sa[2] = {ta ? k : m, ta ? m : k}, sb[2] = {tb ? n : k, tb ? k : n}, sc[2] = {m, n};
    gx_array *a = tu_rand_array(dt, 2, sa, -1, 1), *b = tu_rand_array(dt, 2, sb, -1, 1);
    gx_array *c = with_c ? tu_rand_array(dt, 2, sc, -1, 1) : NULL, *out = NULL;
    double *ref = malloc((size_t)(m * n) * sizeof *ref);
    /* mag: the size of the terms summed, which bounds a rounding error: a
     * result near zero by cancellation (1x1x1: alpha a b + beta c) is as
     * exact as its terms allow, not relative to itself */
    double mag2 = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double s = 0, sm = 0;
            for (int64_t p = 0; p < k; p++) {
                double t = opx(a, ta, i, p) * opx(b, tb, p, j);
                s += t;
                sm += fabs(t);
            }
            double cv = c && beta != 0 ? beta * gx_array_get_f64(c, i * n + j) : 0;
            ref[i * n + j] = alpha * s + cv;
            double mg = fabs(alpha) * sm + fabs(cv);
            mag2 += mg * mg;
        }
    gx_named_arg ar[] = {NA("alpha", alpha), NA("beta", beta), NA("trans_a", ta), NA("trans_b", tb)};
    gx_named_input in[] = {NI("a", a), NI("b", b), NI("c", c)};
    gx_error err;
    TU_OK(gx_kernel_run_direct(K("gemm"), ar, 4, in, with_c ? 3 : 2, &out, &err), err);
    assert_int_equal(out->ndim, 2);
    assert_int_equal(out->shape[0], m);
    assert_int_equal(out->shape[1], n);
    assert_int_equal(out->dtype, dt);
    char what[128];
    snprintf(what, sizeof what, "gemm %s %lldx%lldx%lld ta=%d tb=%d c=%d simd=%d", gx_dtype_name(dt),
             (long long)m, (long long)n, (long long)k, ta, tb, with_c, gx__kernels_simd);
    if (m * n > 0 && mag2 == 0) fail_msg("%s: every term is zero; the test is meaningless", what);
    double e2 = 0;
    for (int64_t i = 0; i < m * n; i++) {
        double d = gx_array_get_f64(out, i) - ref[i];
        e2 += d * d;
    }
    if (!(sqrt(e2) <= tol(dt) * sqrt(mag2)))
        fail_msg("%s: error %g exceeds %g of the terms' size %g", what, sqrt(e2), tol(dt), sqrt(mag2));
    free(ref);
    gx_array_unref(out);
    gx_array_unref(a);
    gx_array_unref(b);
    gx_array_unref(c);
}

static void gemm_matches(void **st) {
    (void)st;
    /* m, n, k: tiny, odd, edge tiles in every direction, threaded by rows
     * (128x96x200) and by columns (short and wide) */
    static const int64_t shapes[][3] = {{1, 1, 1},   {17, 33, 9},   {128, 96, 200}, {7, 19, 600},
                                        {6, 16, 1}, {5, 700, 300}, {2, 3, 0}};
    const gx_dtype dts[] = {GX_F32, GX_F64};
    for (int simd = -1; simd <= 0; simd++) {
        gx__kernels_simd = simd;
        for (int d = 0; d < 2; d++)
            for (int s = 0; s < LEN(shapes); s++)
                for (int t = 0; t < 4; t++) {
                    const int64_t *sh = shapes[s];
                    if (sh[2] == 0) {
                        if (t == 0) gemm_case(dts[d], sh[0], sh[1], 0, 0, 0, 1, 1.0, 0.5);
                        continue;
                    }
                    gemm_case(dts[d], sh[0], sh[1], sh[2], t & 1, t >> 1, 0, 1.0, 0.0);
                    gemm_case(dts[d], sh[0], sh[1], sh[2], t & 1, t >> 1, 1, -0.75, 1.5);
                }
    }
    gx__kernels_simd = -1;
}

static void gemm_edge_semantics(void **st) {
    (void)st;
    gx_error err;
    int64_t s2[2] = {2, 2};
    const double nan2[4] = {NAN, 1, 2, 3}, eye[4] = {1, 0, 0, 1}, cv[4] = {1, 2, 3, 4};
    gx_array *a = tu_from(GX_F64, 2, s2, nan2), *b = tu_from(GX_F64, 2, s2, eye), *c = tu_from(GX_F64, 2, s2, cv);
    gx_array *out = NULL;
    /* alpha = 0: a and b are not read, so the NaN does not propagate */
    gx_named_arg ar[] = {NA("alpha", 0), NA("beta", 2)};
    gx_named_input in[] = {NI("a", a), NI("b", b), NI("c", c)};
    TU_OK(gx_kernel_run_direct(K("gemm"), ar, 2, in, 3, &out, &err), err);
    for (int i = 0; i < 4; i++) assert_true(((double *)out->data)[i] == 2 * cv[i]);
    gx_array_unref(out);
    /* beta = 0: c is not read (BLAS) */
    gx_named_input in2[] = {NI("a", b), NI("b", b), NI("c", a)};
    TU_OK(gx_kernel_run_direct(K("gemm"), NULL, 0, in2, 3, &out, &err), err);
    for (int i = 0; i < 4; i++) assert_true(((double *)out->data)[i] == eye[i]);
    gx_array_unref(out);
    gx_array_unref(a);
    gx_array_unref(b);
    gx_array_unref(c);
}

static void gemm_errors(void **st) {
    (void)st;
    int64_t s23[2] = {2, 3}, s43[2] = {4, 3}, s32[2] = {3, 2}, s33[2] = {3, 3}, s22[2] = {2, 2};
    gx_array *a = tu_rand_array(GX_F32, 2, s23, 0, 1), *b43 = tu_rand_array(GX_F32, 2, s43, 0, 1);
    gx_array *b32 = tu_rand_array(GX_F32, 2, s32, 0, 1), *b32d = tu_rand_array(GX_F64, 2, s32, 0, 1);
    gx_array *c33 = tu_rand_array(GX_F32, 2, s33, 0, 1), *c22d = tu_rand_array(GX_F64, 2, s22, 0, 1);
    gx_array *v = tu_rand1(GX_F32, 3, 0, 1);
    gx_named_input in[3] = {NI("a", a), NI("b", b43), NI("c", c33)};
    expect_err("gemm", NULL, 0, in, 2, GX_EINVAL, "inputs.b.shape[0]", "4 rows but op(a) has 3 columns");
    gx_named_arg tb = NA("trans_b", 1);
    in[1] = NI("b", b32); /* transposed: op(b) is 2x3, k = 2 != 3 */
    expect_err("gemm", &tb, 1, in, 2, GX_EINVAL, "inputs.b.shape[1]", "transposed");
    in[1] = NI("b", b32d);
    expect_err("gemm", NULL, 0, in, 2, GX_EINVAL, "inputs.b.dtype", "f64");
    in[1] = NI("b", b32);
    gx_named_arg beta = NA("beta", 1);
    expect_err("gemm", &beta, 1, in, 3, GX_EINVAL, "inputs.c.shape[0]", "3 rows but the product has 2");
    in[2] = NI("c", c22d);
    expect_err("gemm", &beta, 1, in, 3, GX_EINVAL, "inputs.c.dtype", "f64");
    expect_err("gemm", &beta, 1, in, 2, GX_EINVAL, "args.beta", "no input c");
    in[1] = NI("b", v);
    expect_err("gemm", NULL, 0, in, 2, GX_EINVAL, "inputs.b.shape", "2 dimensions");
    expect_err("gemm", NULL, 0, in, 1, GX_EINVAL, "inputs.b", "missing");
    gx_named_arg bad = NA("trans_a", 2);
    in[1] = NI("b", b32);
    expect_err("gemm", &bad, 1, in, 2, GX_EINVAL, "args.trans_a", "range");
    gx_array *objs[] = {a, b43, b32, b32d, c33, c22d, v};
    for (int i = 0; i < LEN(objs); i++) gx_array_unref(objs[i]);
}

/* ---- sort ------------------------------------------------------------------ */

/* keys out are ordered (NaNs last), and values (original positions) show a
 * stable permutation: equal keys keep increasing positions. */
static void check_sorted(const gx_array *keys, const gx_array *ko, const gx_array *vo, int desc) {
    int64_t n = keys->count;
    assert_int_equal(ko->count, n);
    assert_int_equal(vo->count, n);
    char *seen = calloc((size_t)n + 1, 1);
    for (int64_t i = 0; i < n; i++) {
        int64_t p = ((const int64_t *)vo->data)[i];
        assert_true(p >= 0 && p < n);
        assert_false(seen[p]);
        seen[p] = 1;
        double kv = gx_array_get_f64(ko, i);
        assert_memory_equal((const char *)ko->data + (size_t)i * gx_dtype_size(ko->dtype),
                            (const char *)keys->data + (size_t)p * gx_dtype_size(keys->dtype),
                            gx_dtype_size(keys->dtype));
        if (i == 0) continue;
        double prev = gx_array_get_f64(ko, i - 1);
        int64_t pp = ((const int64_t *)vo->data)[i - 1];
        if (isnan(prev)) {
            assert_true(isnan(kv)); /* NaNs only at the end */
            assert_true(pp < p);
            continue;
        }
        if (isnan(kv)) continue;
        if (desc)
            assert_true(prev >= kv);
        else
            assert_true(prev <= kv);
        if (prev == kv) assert_true(pp < p); /* stable */
    }
    free(seen);
}

static void sort_matches(void **st) {
    (void)st;
    const gx_dtype dts[] = {GX_F32, GX_F64, GX_I32, GX_I64};
    const int64_t sizes[] = {0, 1, 2, 31, 1000, 70001};
    for (int d = 0; d < LEN(dts); d++)
        for (int s = 0; s < LEN(sizes); s++)
            for (int desc = 0; desc < 2; desc++) {
                int64_t n = sizes[s];
                int isf = dts[d] == GX_F32 || dts[d] == GX_F64;
                /* a small range makes many ties; wide ranges use all bytes */
                double range = (s & 1) ? 50 : 3e9;
                gx_array *keys = tu_rand1(dts[d], n, -range, range);
                if (isf)
                    for (int64_t i = 0; i < n; i++) {
                        if (i % 17 == 3) gx_array_set_f64(keys, i, NAN);
                        if (i % 23 == 5) gx_array_set_f64(keys, i, (i & 1) ? -0.0 : 0.0);
                        if (range < 100) gx_array_set_f64(keys, i, floor(gx_array_get_f64(keys, i)));
                    }
                if (dts[d] == GX_I64 && n > 2) {
                    ((int64_t *)keys->data)[0] = INT64_MIN;
                    ((int64_t *)keys->data)[1] = INT64_MAX;
                }
                gx_array *pos = NULL;
                gx_error err;
                TU_OK(gx_array_new1(GX_I64, n, &pos, &err), err);
                for (int64_t i = 0; i < n; i++) ((int64_t *)pos->data)[i] = i;
                gx_named_arg ar = NA("descending", desc);
                gx_named_input in[] = {NI("keys", keys), NI("values", pos)};
                gx_array *out[2] = {0};
                TU_OK(gx_kernel_run_direct(K("sort"), &ar, 1, in, 2, out, &err), err);
                assert_int_equal(out[0]->dtype, dts[d]);
                assert_int_equal(out[1]->dtype, GX_I64);
                check_sorted(keys, out[0], out[1], desc);
                gx_array_unref(out[0]);
                gx_array_unref(out[1]);
                /* without values: keys only, values output absent */
                TU_OK(gx_kernel_run_direct(K("sort"), &ar, 1, in, 1, out, &err), err);
                assert_null(out[1]);
                assert_int_equal(out[0]->count, n);
                gx_array_unref(out[0]);
                gx_array_unref(keys);
                gx_array_unref(pos);
            }
}

static void sort_exact_small(void **st) {
    (void)st;
    const double k[] = {3, NAN, -1, 3, 0, -0.0, 2, -INFINITY, 3, NAN};
    const double v[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const double asc_v[] = {7, 2, 4, 5, 6, 0, 3, 8, 1, 9};
    const double desc_v[] = {0, 3, 8, 6, 4, 5, 2, 7, 1, 9};
    int64_t n = 10;
    gx_array *keys = tu_from(GX_F64, 1, &n, k), *vals = tu_from(GX_U8, 1, &n, v);
    gx_error err;
    for (int desc = 0; desc < 2; desc++) {
        gx_array *out[2] = {0};
        gx_named_arg ar = NA("descending", desc);
        gx_named_input in[] = {NI("keys", keys), NI("values", vals)};
        TU_OK(gx_kernel_run_direct(K("sort"), &ar, 1, in, 2, out, &err), err);
        assert_int_equal(out[1]->dtype, GX_U8);
        for (int i = 0; i < n; i++)
            assert_int_equal(((uint8_t *)out[1]->data)[i], (int)(desc ? desc_v : asc_v)[i]);
        /* exact key bits survive: -0.0 stays -0.0 */
        for (int i = 0; i < n; i++)
            if (((uint8_t *)out[1]->data)[i] == 5) assert_true(signbit(((double *)out[0]->data)[i]));
        gx_array_unref(out[0]);
        gx_array_unref(out[1]);
    }
    gx_array_unref(keys);
    gx_array_unref(vals);
}

static void sort_errors(void **st) {
    (void)st;
    gx_array *k = tu_rand1(GX_F32, 4, 0, 1), *v = tu_rand1(GX_I32, 5, 0, 9), *u = tu_rand1(GX_U16, 4, 0, 9);
    gx_named_input in[] = {NI("keys", k), NI("values", v)};
    expect_err("sort", NULL, 0, in, 2, GX_EINVAL, "inputs.values.shape[0]", "values has 5 elements but keys has 4");
    in[0] = NI("keys", u);
    expect_err("sort", NULL, 0, in, 1, GX_EINVAL, "inputs.keys.dtype", "u16");
    in[0] = NI("vals", k);
    expect_err("sort", NULL, 0, in, 1, GX_EINVAL, "inputs.vals", "no input");
    gx_array_unref(k);
    gx_array_unref(v);
    gx_array_unref(u);
}

/* ---- histogram ------------------------------------------------------------- */

static void histogram_case(gx_dtype dt, const double *x, int64_t n, int bins, double lo, double hi,
                           const int64_t *want) {
    gx_array *a = tu_from(dt, 1, &n, x), *out = NULL;
    gx_named_arg ar[] = {NA("bins", bins), NA("lo", lo), NA("hi", hi)};
    gx_named_input in = NI("x", a);
    gx_error err;
    TU_OK(gx_kernel_run_direct(K("histogram"), ar, 3, &in, 1, &out, &err), err);
    assert_int_equal(out->dtype, GX_I64);
    assert_int_equal(out->count, bins);
    for (int i = 0; i < bins; i++)
        if (((int64_t *)out->data)[i] != want[i])
            fail_msg("bin %d: %lld, expected %lld", i, (long long)((int64_t *)out->data)[i], (long long)want[i]);
    gx_array_unref(out);
    gx_array_unref(a);
}

static void histogram_edges(void **st) {
    (void)st;
    /* expected counts from numpy 1.24 np.histogram(x, bins, range=(lo, hi)) */
    const double x1[] = {0.3, 0.1, 0.7, 0.2, 0.6, 1.0, 0.0, 0.9, 0.5, 0.4, 0.8, -1e-300, 1.0000000000000002, NAN};
    const int64_t w1[] = {1, 1, 2, 0, 1, 2, 1, 0, 1, 2};
    histogram_case(GX_F64, x1, LEN(x1), 10, 0, 1, w1);
    const double x2[] = {-3.0, -2.5, -1.0, 0.0, 0.1, 2.0, 2.9999999, 3.0, 3.1};
    const int64_t w2[] = {2, 0, 1, 2, 0, 1, 2};
    histogram_case(GX_F64, x2, LEN(x2), 7, -3, 3, w2);
    histogram_case(GX_F32, x2, LEN(x2), 7, -3, 3, w2);
    const double x3[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    const int64_t w3[] = {3, 3, 4};
    histogram_case(GX_I64, x3, LEN(x3), 3, 1, 10, w3);
    histogram_case(GX_I32, x3, LEN(x3), 3, 1, 10, w3);
    const int64_t w4[] = {0};
    histogram_case(GX_F64, x3, 0, 1, 0, 1, w4); /* empty input: zeros */
}

static void histogram_random(void **st) {
    (void)st;
    int64_t n = 200003;
    for (int d = 0; d < 2; d++) {
        gx_dtype dt = d ? GX_I32 : GX_F64;
        gx_array *x = tu_rand1(dt, n, -10, 110), *out = NULL;
        int bins = d ? 25 : 37;
        double lo = d ? 0 : 1.5, hi = 100;
        int64_t *want = calloc((size_t)bins, sizeof *want);
        double step = (hi - lo) / bins;
        for (int64_t i = 0; i < n; i++) {
            double v = gx_array_get_f64(x, i);
            if (v < lo || v > hi) continue;
            int b = 0; /* the last edge at or below v (edges as np.linspace) */
            while (b + 1 < bins && v >= (b + 1) * step + lo) b++;
            want[b]++;
        }
        gx_named_arg ar[] = {NA("bins", bins), NA("lo", lo), NA("hi", hi)};
        gx_named_input in = NI("x", x);
        gx_error err;
        TU_OK(gx_kernel_run_direct(K("histogram"), ar, 3, &in, 1, &out, &err), err);
        assert_memory_equal(out->data, want, (size_t)bins * sizeof *want);
        free(want);
        gx_array_unref(out);
        gx_array_unref(x);
    }
}

static void histogram_errors(void **st) {
    (void)st;
    gx_array *x = tu_rand1(GX_F32, 4, 0, 1), *b = tu_rand1(GX_BOOL, 4, 0, 2);
    gx_named_input in = NI("x", x);
    gx_named_arg ar[] = {NA("bins", 4), NA("lo", 1), NA("hi", 1)};
    expect_err("histogram", ar, 3, &in, 1, GX_EINVAL, "args.hi", "greater than lo");
    ar[2] = NA("hi", 0);
    expect_err("histogram", ar, 3, &in, 1, GX_EINVAL, "args.hi", "greater than lo");
    ar[0] = NA("bins", 0), ar[2] = NA("hi", 2);
    expect_err("histogram", ar, 3, &in, 1, GX_EINVAL, "args.bins", "range");
    ar[0] = NA("bins", (1 << 20) + 1);
    expect_err("histogram", ar, 3, &in, 1, GX_EINVAL, "args.bins", "range");
    ar[0] = NA("bins", 4);
    expect_err("histogram", ar, 2, &in, 1, GX_EINVAL, "args.hi", "missing");
    gx_named_arg huge[] = {NA("bins", 4), NA("lo", -DBL_MAX), NA("hi", DBL_MAX)};
    expect_err("histogram", huge, 3, &in, 1, GX_EINVAL, "args.hi", "too large");
    in = NI("x", b);
    expect_err("histogram", ar, 3, &in, 1, GX_EINVAL, "inputs.x.dtype", "bool");
    gx_array_unref(x);
    gx_array_unref(b);
}

/* ---- normalize ------------------------------------------------------------- */

static void normalize_matches(void **st) {
    (void)st;
    static const int64_t shapes[][2] = {{2, 1}, {7, 3}, {100, 17}, {1000, 1}, {333, 130}};
    const gx_dtype dts[] = {GX_F32, GX_F64};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < LEN(shapes); s++) {
            int64_t rows = shapes[s][0], cols = shapes[s][1];
            gx_array *x = tu_rand_array(dts[d], 2, shapes[s], -5, 20), *out = NULL;
            double eps = s == 1 ? 0.5 : 1e-8;
            double *ref = malloc((size_t)(rows * cols) * sizeof *ref);
            for (int64_t j = 0; j < cols; j++) {
                double m = 0, v = 0;
                for (int64_t i = 0; i < rows; i++) m += gx_array_get_f64(x, i * cols + j);
                m /= rows;
                for (int64_t i = 0; i < rows; i++) {
                    double t = gx_array_get_f64(x, i * cols + j) - m;
                    v += t * t;
                }
                v /= rows;
                for (int64_t i = 0; i < rows; i++)
                    ref[i * cols + j] = (gx_array_get_f64(x, i * cols + j) - m) / sqrt(v + eps);
            }
            gx_named_arg ar = NA("eps", eps);
            gx_named_input in = NI("x", x);
            gx_error err;
            TU_OK(gx_kernel_run_direct(K("normalize"), &ar, 1, &in, 1, &out, &err), err);
            assert_int_equal(out->dtype, dts[d]);
            assert_int_equal(out->shape[0], rows);
            assert_int_equal(out->shape[1], cols);
            check_close(out, ref, rows * cols, tol(dts[d]), "normalize");
            free(ref);
            gx_array_unref(out);
            gx_array_unref(x);
        }
    /* a constant column with eps = 0 gives zeros, not NaN */
    int64_t s2[2] = {3, 2};
    const double v[] = {1, 4, 1, 5, 1, 6};
    gx_array *x = tu_from(GX_F64, 2, s2, v), *out = NULL;
    gx_named_arg ar = NA("eps", 0);
    gx_named_input in = NI("x", x);
    gx_error err;
    TU_OK(gx_kernel_run_direct(K("normalize"), &ar, 1, &in, 1, &out, &err), err);
    const double *y = out->data;
    assert_true(y[0] == 0 && y[2] == 0 && y[4] == 0);
    assert_true(fabs(y[1] + sqrt(1.5)) < 1e-12 && fabs(y[5] - sqrt(1.5)) < 1e-12);
    gx_array_unref(out);
    gx_array_unref(x);
}

static void normalize_errors(void **st) {
    (void)st;
    int64_t s0[2] = {0, 3}, s1[2] = {3, 0};
    gx_array *e0 = tu_rand_array(GX_F32, 2, s0, 0, 1), *e1 = tu_rand_array(GX_F32, 2, s1, 0, 1);
    gx_array *v = tu_rand1(GX_F32, 3, 0, 1);
    gx_named_input in = NI("x", e0);
    expect_err("normalize", NULL, 0, &in, 1, GX_EINVAL, "inputs.x.shape[0]", "no rows");
    in = NI("x", e1);
    expect_err("normalize", NULL, 0, &in, 1, GX_EINVAL, "inputs.x.shape[1]", "no columns");
    in = NI("x", v);
    expect_err("normalize", NULL, 0, &in, 1, GX_EINVAL, "inputs.x.shape", "2 dimensions");
    gx_named_arg ar = NA("eps", -1);
    expect_err("normalize", &ar, 1, &in, 1, GX_EINVAL, "args.eps", "range");
    gx_array_unref(e0);
    gx_array_unref(e1);
    gx_array_unref(v);
}

/* ---- filter_range ---------------------------------------------------------- */

static void filter_range_matches(void **st) {
    (void)st;
    const gx_dtype dts[] = {GX_F32, GX_F64, GX_I32, GX_I64};
    const int64_t sizes[] = {1, 33, 100001};
    for (int d = 0; d < LEN(dts); d++)
        for (int s = 0; s < LEN(sizes); s++) {
            int64_t n = sizes[s];
            gx_array *x = tu_rand1(dts[d], n, -100, 100), *out[2] = {0};
            if (dts[d] == GX_F64 && n > 3) gx_array_set_f64(x, 2, NAN);
            double lo = -20.5, hi = s == 0 ? 100 : 30;
            if (dts[d] >= GX_I32 && n > 3) gx_array_set_f64(x, 1, 30); /* inclusive hi */
            gx_named_arg ar[] = {NA("lo", lo), NA("hi", hi)};
            gx_named_input in = NI("x", x);
            gx_error err;
            TU_OK(gx_kernel_run_direct(K("filter_range"), ar, 2, &in, 1, out, &err), err);
            assert_int_equal(out[0]->dtype, dts[d]);
            assert_int_equal(out[1]->dtype, GX_I64);
            int64_t m = 0;
            for (int64_t i = 0; i < n; i++) {
                double v = gx_array_get_f64(x, i);
                if (!(v >= lo && v <= hi)) continue;
                assert_true(m < out[0]->count);
                assert_int_equal(((int64_t *)out[1]->data)[m], i);
                assert_true(gx_array_get_f64(out[0], m) == v);
                m++;
            }
            assert_int_equal(out[0]->count, m);
            assert_int_equal(out[1]->count, m);
            gx_array_unref(out[0]);
            gx_array_unref(out[1]);
            gx_array_unref(x);
        }
}

static void filter_range_edges(void **st) {
    (void)st;
    gx_error err;
    gx_array *out[2] = {0};
    /* i64 beyond 2^53 compares exactly */
    int64_t n = 5;
    gx_array *x;
    TU_OK(gx_array_new1(GX_I64, n, &x, &err), err);
    int64_t *xv = x->data;
    xv[0] = INT64_MAX, xv[1] = INT64_MIN, xv[2] = (INT64_C(1) << 53) + 1, xv[3] = INT64_C(1) << 53, xv[4] = 5;
    /* [0, 2^53]: 2^53 and 5, not 2^53+1 (which a comparison in f64 would
     * keep, since (double)(2^53+1) rounds to 2^53) */
    gx_named_arg ar[] = {NA("lo", 0), NA("hi", 9007199254740992.0)};
    gx_named_input in = NI("x", x);
    TU_OK(gx_kernel_run_direct(K("filter_range"), ar, 2, &in, 1, out, &err), err);
    assert_int_equal(out[0]->count, 2);
    assert_int_equal(((int64_t *)out[1]->data)[0], 3);
    assert_int_equal(((int64_t *)out[1]->data)[1], 4);
    assert_true(((int64_t *)out[0]->data)[0] == INT64_C(1) << 53);
    gx_array_unref(out[0]);
    gx_array_unref(out[1]);
    /* [2^53 + 2, inf): INT64_MAX only */
    ar[0] = NA("lo", 9007199254740994.0), ar[1] = NA("hi", 1e300);
    TU_OK(gx_kernel_run_direct(K("filter_range"), ar, 2, &in, 1, out, &err), err);
    assert_int_equal(out[0]->count, 1);
    assert_true(((int64_t *)out[0]->data)[0] == INT64_MAX);
    gx_array_unref(out[0]);
    gx_array_unref(out[1]);
    /* lo == hi between integers: nothing; empty outputs */
    ar[0] = NA("lo", 5.25), ar[1] = NA("hi", 5.75);
    TU_OK(gx_kernel_run_direct(K("filter_range"), ar, 2, &in, 1, out, &err), err);
    assert_int_equal(out[0]->count, 0);
    assert_int_equal(out[1]->count, 0);
    gx_array_unref(out[0]);
    gx_array_unref(out[1]);
    ar[0] = NA("lo", -1e300), ar[1] = NA("hi", 1e300);
    TU_OK(gx_kernel_run_direct(K("filter_range"), ar, 2, &in, 1, out, &err), err);
    assert_int_equal(out[0]->count, 5);
    gx_array_unref(out[0]);
    gx_array_unref(out[1]);
    gx_array_unref(x);
}

static void filter_range_errors(void **st) {
    (void)st;
    gx_array *x = tu_rand1(GX_F32, 4, 0, 1);
    gx_named_input in = NI("x", x);
    gx_named_arg ar[] = {NA("lo", 2), NA("hi", 1)};
    expect_err("filter_range", ar, 2, &in, 1, GX_EINVAL, "args.hi", "below lo");
    expect_err("filter_range", ar, 1, &in, 1, GX_EINVAL, "args.hi", "missing");
    ar[1] = NA("hi", INFINITY);
    expect_err("filter_range", ar, 2, &in, 1, GX_EINVAL, "args.hi", "finite");
    gx_array_unref(x);
}

/* ---- mlp_forward ----------------------------------------------------------- */

typedef struct net {
    int nl;
    gx_array *x, *w[4], *b[4];
    gx_named_input in[9];
} net;

static void net_make(net *t, gx_dtype dt, int64_t batch, const int64_t *widths, int nl) {
    memset(t, 0, sizeof *t);
    t->nl = nl;
    int64_t sx[2] = {batch, widths[0]};
    t->x = tu_rand_array(dt, 2, sx, -1, 1);
    t->in[0] = NI("x", t->x);
    static const char *wn[] = {"w0", "w1", "w2", "w3"}, *bn[] = {"b0", "b1", "b2", "b3"};
    for (int i = 0; i < nl; i++) {
        int64_t sw[2] = {widths[i], widths[i + 1]};
        double sc = 2.0 / sqrt((double)widths[i]);
        t->w[i] = tu_rand_array(dt, 2, sw, -sc, sc);
        t->b[i] = tu_rand1(dt, widths[i + 1], -0.5, 0.5);
        t->in[1 + 2 * i] = NI(wn[i], t->w[i]);
        t->in[2 + 2 * i] = NI(bn[i], t->b[i]);
    }
}

static void net_free(net *t) {
    gx_array_unref(t->x);
    for (int i = 0; i < t->nl; i++) {
        gx_array_unref(t->w[i]);
        gx_array_unref(t->b[i]);
    }
}

/* Reference forward pass in double; returns malloc'd [batch, out]. */
static double *net_ref(const net *t, int act, int softmax) {
    int64_t batch = t->x->shape[0], in = t->x->shape[1];
    double *h = malloc((size_t)(batch * in) * sizeof *h);
    for (int64_t i = 0; i < batch * in; i++) h[i] = gx_array_get_f64(t->x, i);
    for (int l = 0; l < t->nl; l++) {
        int64_t out = t->w[l]->shape[1];
        double *o = malloc((size_t)(batch * out) * sizeof *o);
        for (int64_t r = 0; r < batch; r++)
            for (int64_t j = 0; j < out; j++) {
                double s = gx_array_get_f64(t->b[l], j);
                for (int64_t p = 0; p < in; p++) s += h[r * in + p] * gx_array_get_f64(t->w[l], p * out + j);
                if (l < t->nl - 1) s = act ? tanh(s) : (s > 0 ? s : 0);
                o[r * out + j] = s;
            }
        if (l == t->nl - 1 && softmax)
            for (int64_t r = 0; r < batch; r++) {
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < out; j++) mx = fmax(mx, o[r * out + j]);
                for (int64_t j = 0; j < out; j++) sum += exp(o[r * out + j] - mx);
                for (int64_t j = 0; j < out; j++) o[r * out + j] = exp(o[r * out + j] - mx) / sum;
            }
        free(h);
        h = o;
        in = out;
    }
    return h;
}

static void mlp_matches(void **st) {
    (void)st;
    static const int64_t w1[] = {5, 3}, w2[] = {13, 40, 7}, w3[] = {64, 100, 33, 10};
    static const struct {
        const int64_t *w;
        int nl;
        int64_t batch;
    } cases[] = {{w1, 1, 1}, {w2, 2, 9}, {w3, 3, 150}, {w2, 2, 0}};
    const gx_dtype dts[] = {GX_F32, GX_F64};
    for (int d = 0; d < 2; d++)
        for (int cidx = 0; cidx < LEN(cases); cidx++)
            for (int act = 0; act < 2; act++)
                for (int sm = 0; sm < 2; sm++) {
                    net t;
                    net_make(&t, dts[d], cases[cidx].batch, cases[cidx].w, cases[cidx].nl);
                    double *ref = net_ref(&t, act, sm);
                    gx_named_arg ar[] = {{.name = "activation", .str = act ? "tanh" : "relu"}, NA("softmax", sm)};
                    gx_array *out = NULL;
                    gx_error err;
                    TU_OK(gx_kernel_run_direct(K("mlp_forward"), ar, 2, t.in, 1 + 2 * t.nl, &out, &err), err);
                    int64_t batch = cases[cidx].batch, nout = cases[cidx].w[cases[cidx].nl];
                    assert_int_equal(out->dtype, dts[d]);
                    assert_int_equal(out->shape[0], batch);
                    assert_int_equal(out->shape[1], nout);
                    if (batch) check_close(out, ref, batch * nout, tol(dts[d]) * 2, "mlp_forward");
                    if (sm)
                        for (int64_t r = 0; r < batch; r++) {
                            double s = 0;
                            for (int64_t j = 0; j < nout; j++) s += gx_array_get_f64(out, r * nout + j);
                            assert_true(fabs(s - 1) < (dts[d] == GX_F32 ? 1e-5 : 1e-12));
                        }
                    free(ref);
                    gx_array_unref(out);
                    net_free(&t);
                }
}

static void mlp_softmax_stable(void **st) {
    (void)st;
    /* logits around 1000: a naive exp overflows */
    int64_t sx[2] = {2, 2}, sw[2] = {2, 3}, nb = 3;
    const double xv[] = {1, 0, 0, 1}, wv[] = {1000, 1001, 999, 0, 0, 0}, bv[] = {0, 0, 0};
    gx_array *x = tu_from(GX_F32, 2, sx, xv), *w = tu_from(GX_F32, 2, sw, wv), *b = tu_from(GX_F32, 1, &nb, bv);
    gx_named_arg ar = NA("softmax", 1);
    gx_named_input in[] = {NI("x", x), NI("w0", w), NI("b0", b)};
    gx_array *out = NULL;
    gx_error err;
    TU_OK(gx_kernel_run_direct(K("mlp_forward"), &ar, 1, in, 3, &out, &err), err);
    const float *y = out->data;
    double e = exp(1.0), s = 1 + e + 1 / e;
    assert_true(fabs(y[0] - 1 / s) < 1e-6 && fabs(y[1] - e / s) < 1e-6 && fabs(y[2] - 1 / (e * s)) < 1e-6);
    assert_true(fabs(y[3] - 1.0 / 3) < 1e-6 && fabs(y[5] - 1.0 / 3) < 1e-6);
    gx_array_unref(out);
    gx_array_unref(x);
    gx_array_unref(w);
    gx_array_unref(b);
}

/* relu keeps a NaN, as numpy's maximum(h, 0) and torch.relu do: it made
 * it 0, and a NaN input or weight vanished from the result. Infinities and
 * negatives as before. */
static void mlp_relu_keeps_nan(void **st) {
    (void)st;
    /* two layers of one unit, weights 1 and biases 0: y = relu(x) per row */
    int64_t sx[2] = {5, 1}, sw[2] = {1, 1}, nb = 1;
    const double xv[] = {NAN, INFINITY, -INFINITY, -2, 3}, one[] = {1}, zero[] = {0};
    gx_dtype dts[2] = {GX_F32, GX_F64};
    for (int d = 0; d < 2; d++) {
        gx_array *x = tu_from(dts[d], 2, sx, xv), *w0 = tu_from(dts[d], 2, sw, one), *b0 = tu_from(dts[d], 1, &nb, zero),
                 *w1 = tu_from(dts[d], 2, sw, one), *b1 = tu_from(dts[d], 1, &nb, zero);
        gx_named_arg ar = NA("softmax", 0);
        gx_named_input in[] = {NI("x", x), NI("w0", w0), NI("b0", b0), NI("w1", w1), NI("b1", b1)};
        gx_array *out = NULL;
        gx_error err;
        TU_OK(gx_kernel_run_direct(K("mlp_forward"), &ar, 1, in, 5, &out, &err), err);
        assert_true(isnan(gx_array_get_f64(out, 0)));
        assert_true(isinf(gx_array_get_f64(out, 1)) && gx_array_get_f64(out, 1) > 0);
        assert_true(gx_array_get_f64(out, 2) == 0 && gx_array_get_f64(out, 3) == 0);
        assert_true(gx_array_get_f64(out, 4) == 3);
        gx_array_unref(out);
        gx_array *all[] = {x, w0, b0, w1, b1};
        for (int i = 0; i < 5; i++) gx_array_unref(all[i]);
    }
}

static void mlp_errors(void **st) {
    (void)st;
    static const int64_t widths[] = {4, 6, 3};
    net t;
    net_make(&t, GX_F32, 5, widths, 2);
    gx_named_input in[5];
    memcpy(in, t.in, sizeof in);
    /* w1 with the wrong number of rows */
    int64_t s53[2] = {5, 3}, s46[2] = {4, 6}, s36[2] = {3, 6};
    gx_array *w1bad = tu_rand_array(GX_F32, 2, s53, 0, 1), *w0bad = tu_rand_array(GX_F32, 2, s36, 0, 1);
    gx_array *w1d = tu_rand_array(GX_F64, 2, s46, 0, 1), *b0bad = tu_rand1(GX_F32, 7, 0, 1);
    in[3] = NI("w1", w1bad);
    expect_err("mlp_forward", NULL, 0, in, 5, GX_EINVAL, "inputs.w1.shape[0]", "w1 has 5 rows but layer 0 has 6");
    memcpy(in, t.in, sizeof in);
    in[1] = NI("w0", w0bad);
    expect_err("mlp_forward", NULL, 0, in, 5, GX_EINVAL, "inputs.w0.shape[0]", "w0 has 3 rows but x has 4 columns");
    memcpy(in, t.in, sizeof in);
    in[2] = NI("b0", b0bad);
    expect_err("mlp_forward", NULL, 0, in, 5, GX_EINVAL, "inputs.b0.shape[0]", "b0 has 7 elements but w0 has 6");
    memcpy(in, t.in, sizeof in);
    in[3] = NI("w1", w1d);
    expect_err("mlp_forward", NULL, 0, in, 5, GX_EINVAL, "inputs.w1.dtype", "f64");
    memcpy(in, t.in, sizeof in);
    /* missing b1 (w1 given) */
    expect_err("mlp_forward", NULL, 0, in, 4, GX_EINVAL, "inputs.b1", "no bias");
    /* a gap: w0, b0, w2 */
    in[3] = NI("w2", t.w[1]);
    expect_err("mlp_forward", NULL, 0, in, 4, GX_EINVAL, "inputs.w1", "missing");
    /* no layers at all */
    expect_err("mlp_forward", NULL, 0, in, 1, GX_EINVAL, "inputs.w0", "missing");
    gx_named_arg bad = {.name = "activation", .str = "sigmoid"};
    expect_err("mlp_forward", &bad, 1, t.in, 5, GX_EINVAL, "args.activation", "relu, tanh");
    gx_array_unref(w1bad);
    gx_array_unref(w0bad);
    gx_array_unref(w1d);
    gx_array_unref(b0bad);
    net_free(&t);
}

/* ---- linreg_gd ------------------------------------------------------------- */

typedef struct regdata {
    gx_array *x, *y, *wtrue;
} regdata;

static regdata reg_make(gx_dtype dt, int64_t n, int64_t d) {
    regdata r;
    int64_t sx[2] = {n, d};
    r.x = tu_rand_array(dt, 2, sx, -1, 1);
    r.wtrue = tu_rand1(GX_F64, d, -2, 2);
    gx_error err;
    TU_OK(gx_array_new1(dt, n, &r.y, &err), err);
    for (int64_t i = 0; i < n; i++) {
        double s = 0.1 * tu_normal();
        for (int64_t j = 0; j < d; j++) s += gx_array_get_f64(r.x, i * d + j) * gx_array_get_f64(r.wtrue, j);
        gx_array_set_f64(r.y, i, s);
    }
    return r;
}

static void reg_free(regdata *r) {
    gx_array_unref(r->x);
    gx_array_unref(r->y);
    gx_array_unref(r->wtrue);
}

static void linreg_converges(void **st) {
    (void)st;
    const gx_dtype dts[] = {GX_F32, GX_F64};
    for (int d = 0; d < 2; d++) {
        int64_t n = 500, dim = 7, steps = 300;
        regdata r = reg_make(dts[d], n, dim);
        gx_named_arg ar[] = {NA("steps", steps), NA("lr", 0.2)};
        gx_named_input in[] = {NI("x", r.x), NI("y", r.y)};
        gx_array *out[2] = {0};
        gx_error err;
        TU_OK(gx_kernel_run_direct(K("linreg_gd"), ar, 2, in, 2, out, &err), err);
        assert_int_equal(out[0]->dtype, GX_F64);
        assert_int_equal(out[0]->count, dim);
        assert_int_equal(out[1]->count, steps);
        const double *loss = out[1]->data;
        /* decreasing, up to rounding once converged */
        for (int64_t s = 1; s < steps; s++)
            if (!(loss[s] <= loss[s - 1] * (1 + 1e-12)))
                fail_msg("loss rose at step %lld: %.17g after %.17g", (long long)s, loss[s], loss[s - 1]);
        assert_true(loss[steps - 1] < 0.05 * loss[0]);
        /* reference: the same descent in plain loops */
        double w[16] = {0}, g[16];
        for (int64_t s = 0; s < steps; s++) {
            double sse = 0;
            memset(g, 0, sizeof g);
            for (int64_t i = 0; i < n; i++) {
                double res = -gx_array_get_f64(r.y, i);
                for (int64_t j = 0; j < dim; j++) res += gx_array_get_f64(r.x, i * dim + j) * w[j];
                sse += res * res;
                for (int64_t j = 0; j < dim; j++) g[j] += res * gx_array_get_f64(r.x, i * dim + j);
            }
            assert_true(fabs(sse / n - loss[s]) <= 1e-12 * loss[s]);
            for (int64_t j = 0; j < dim; j++) w[j] -= 0.2 * 2.0 / n * g[j];
        }
        check_close(out[0], w, dim, 1e-12, "linreg_gd w");
        /* close to the true weights (noise 0.1) */
        double e = tu_rel_err(out[0], (const double *)r.wtrue->data, dim);
        assert_true(e < 0.05);
        gx_array_unref(out[0]);
        gx_array_unref(out[1]);
        /* starting from w0 = the true weights: already near the optimum */
        gx_named_input in3[] = {NI("x", r.x), NI("y", r.y), NI("w0", r.wtrue)};
        TU_OK(gx_kernel_run_direct(K("linreg_gd"), ar, 2, in3, 3, out, &err), err);
        assert_true(((double *)out[1]->data)[0] < 0.02);
        gx_array_unref(out[0]);
        gx_array_unref(out[1]);
        reg_free(&r);
    }
}

static void linreg_checkpoint_resume(void **st) {
    (void)st;
    regdata r = reg_make(GX_F32, 300, 5);
    gx_named_arg ar[] = {NA("steps", 100), NA("lr", 0.05), NA("checkpoint_every", 10)};
    gx_named_input in[] = {NI("x", r.x), NI("y", r.y)};
    static call full, resumed;
    call_bind(&full, "linreg_gd", ar, 3, in, 2);
    full.c.checkpoint = capture_ckpt;
    TU_OK(call_exec(&full), full.err);
    assert_int_equal(full.nsaved, 10);
    int at50 = -1;
    for (int i = 0; i < full.nsaved; i++) {
        assert_int_equal(full.saved[i].step, 10 * (i + 1));
        assert_int_equal(full.saved[i].w->count, 5);
        assert_int_equal(full.saved[i].loss->count, 10 * (i + 1));
        /* the saved losses are a prefix of the final ones */
        assert_memory_equal(full.saved[i].loss->data, full.out[1]->data, full.saved[i].loss->nbytes);
        if (full.saved[i].step == 50) at50 = i;
    }
    assert_true(at50 >= 0);

    call_bind(&resumed, "linreg_gd", ar, 3, in, 2);
    resumed.c.checkpoint = capture_ckpt;
    gx_array *state[2] = {full.saved[at50].w, full.saved[at50].loss};
    resumed.c.resume = state;
    resumed.c.nresume = 2;
    resumed.c.resume_step = 50;
    TU_OK(call_exec(&resumed), resumed.err);
    /* bit-for-bit the uninterrupted run */
    assert_memory_equal(resumed.out[0]->data, full.out[0]->data, full.out[0]->nbytes);
    assert_memory_equal(resumed.out[1]->data, full.out[1]->data, full.out[1]->nbytes);
    assert_int_equal(resumed.nsaved, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(resumed.saved[i].step, 60 + 10 * i);
        assert_memory_equal(resumed.saved[i].w->data, full.saved[at50 + 1 + i].w->data, 5 * sizeof(double));
    }
    call_free(&resumed);

    /* resuming at the very end returns the saved state at once */
    call_bind(&resumed, "linreg_gd", ar, 3, in, 2);
    gx_array *last[2] = {full.saved[9].w, full.saved[9].loss};
    resumed.c.resume = last;
    resumed.c.nresume = 2;
    resumed.c.resume_step = 100;
    TU_OK(call_exec(&resumed), resumed.err);
    assert_memory_equal(resumed.out[0]->data, full.out[0]->data, full.out[0]->nbytes);
    call_free(&resumed);

    /* a state that does not fit the call is refused */
    call_bind(&resumed, "linreg_gd", ar, 3, in, 2);
    resumed.c.resume = state;
    resumed.c.nresume = 2;
    resumed.c.resume_step = 40; /* loss has 50 entries */
    assert_int_equal(call_exec(&resumed), GX_EINVAL);
    assert_string_equal(resumed.err.field, "resume");
    assert_non_null(strstr(resumed.err.message, "f64[40]"));
    call_free(&resumed);

    /* a failing checkpoint stops the run with its code */
    call_bind(&resumed, "linreg_gd", ar, 3, in, 2);
    resumed.c.checkpoint = capture_ckpt;
    resumed.fail_ckpt = GX_ESTORE;
    assert_int_equal(call_exec(&resumed), GX_ESTORE);
    assert_non_null(strstr(resumed.err.message, "step 10"));
    call_free(&resumed);

    call_free(&full);
    reg_free(&r);
}

static void linreg_errors(void **st) {
    (void)st;
    regdata r = reg_make(GX_F64, 6, 3);
    gx_array *y5 = tu_rand1(GX_F64, 5, 0, 1), *w4 = tu_rand1(GX_F64, 4, 0, 1);
    int64_t s0[2] = {0, 3};
    gx_array *x0 = tu_rand_array(GX_F64, 2, s0, 0, 1), *y0 = tu_rand1(GX_F64, 0, 0, 1);
    gx_named_arg ar[] = {NA("steps", 10), NA("lr", 0.1)};
    gx_named_input in[] = {NI("x", r.x), NI("y", y5), NI("w0", w4)};
    expect_err("linreg_gd", ar, 2, in, 2, GX_EINVAL, "inputs.y.shape[0]", "y has 5 elements but x has 6 rows");
    in[1] = NI("y", r.y);
    expect_err("linreg_gd", ar, 2, in, 3, GX_EINVAL, "inputs.w0.shape[0]", "w0 has 4 elements but x has 3 columns");
    ar[1] = NA("lr", 0);
    expect_err("linreg_gd", ar, 2, in, 2, GX_EINVAL, "args.lr", "greater than 0");
    ar[1] = NA("lr", 0.1);
    expect_err("linreg_gd", ar + 1, 1, in, 2, GX_EINVAL, "args.steps", "missing");
    ar[0] = NA("steps", 0);
    expect_err("linreg_gd", ar, 2, in, 2, GX_EINVAL, "args.steps", "range");
    ar[0] = NA("steps", 10);
    gx_named_input in0[] = {NI("x", x0), NI("y", y0)};
    expect_err("linreg_gd", ar, 2, in0, 2, GX_EINVAL, "inputs.x.shape[0]", "no rows");
    /* divergence is reported, not returned as NaNs */
    ar[1] = NA("lr", 1e6);
    ar[0] = NA("steps", 1000);
    expect_err("linreg_gd", ar, 2, in, 2, GX_EKERNEL, "args.lr", "diverged");
    /* a NaN in y makes every loss NaN: y is named, not lr */
    ar[1] = NA("lr", 0.01);
    gx_array_set_f64(r.y, 4, NAN);
    expect_err("linreg_gd", ar, 2, in, 2, GX_EKERNEL, "inputs.y", "y holds NaN at element 4; gradient descent needs finite inputs");
    gx_array_unref(y5);
    gx_array_unref(w4);
    gx_array_unref(x0);
    gx_array_unref(y0);
    reg_free(&r);
}

/* ---- cancellation ---------------------------------------------------------- */

static void cancel_is_honoured(void **st) {
    (void)st;
    int64_t s[2] = {300, 300};
    gx_array *m = tu_rand_array(GX_F64, 2, s, -1, 1), *v = tu_rand1(GX_F64, 300000, -1, 1);
    gx_array *y = tu_rand1(GX_F64, 300, -1, 1), *b = tu_rand1(GX_F64, 300, -1, 1);
    struct {
        const char *k;
        gx_named_arg args[3];
        int nargs;
        gx_named_input in[3];
        int nin;
    } cases[] = {
        {"gemm", {{0}}, 0, {NI("a", m), NI("b", m)}, 2},
        {"saxpy", {NA("a", 1)}, 1, {NI("x", v), NI("y", v)}, 2},
        {"reduce_sum", {{0}}, 0, {NI("x", v)}, 1},
        {"sort", {{0}}, 0, {NI("keys", v)}, 1},
        {"histogram", {NA("bins", 3), NA("lo", 0), NA("hi", 1)}, 3, {NI("x", v)}, 1},
        {"normalize", {{0}}, 0, {NI("x", m)}, 1},
        {"filter_range", {NA("lo", 0), NA("hi", 1)}, 2, {NI("x", v)}, 1},
        {"mlp_forward", {{0}}, 0, {NI("x", m), NI("w0", m), NI("b0", b)}, 3},
        {"linreg_gd", {NA("steps", 1000)}, 1, {NI("x", m), NI("y", y)}, 2},
    };
    for (int i = 0; i < LEN(cases); i++) {
        call cl;
        call_bind(&cl, cases[i].k, cases[i].args, cases[i].nargs, cases[i].in, cases[i].nin);
        cl.cancel = 1;
        int rc = call_exec(&cl);
        if (rc != GX_ECANCELED) fail_msg("%s: expected GX_ECANCELED, got %s", cases[i].k, gx_err_name(rc));
        assert_non_null(strstr(cl.err.message, "cancel"));
        call_free(&cl);
    }
    gx_array_unref(m);
    gx_array_unref(v);
    gx_array_unref(y);
    gx_array_unref(b);
}

int main(void) {
    tu_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(catalog_complete),
        cmocka_unit_test(mem_and_cost),
        cmocka_unit_test(mem_saturates),
        cmocka_unit_test(saxpy_matches),
        cmocka_unit_test(saxpy_errors),
        cmocka_unit_test(reduce_sum_floats),
        cmocka_unit_test(reduce_sum_infinities),
        cmocka_unit_test(reduce_sum_ints),
        cmocka_unit_test(gemm_matches),
        cmocka_unit_test(gemm_edge_semantics),
        cmocka_unit_test(gemm_errors),
        cmocka_unit_test(sort_matches),
        cmocka_unit_test(sort_exact_small),
        cmocka_unit_test(sort_errors),
        cmocka_unit_test(histogram_edges),
        cmocka_unit_test(histogram_random),
        cmocka_unit_test(histogram_errors),
        cmocka_unit_test(normalize_matches),
        cmocka_unit_test(normalize_errors),
        cmocka_unit_test(filter_range_matches),
        cmocka_unit_test(filter_range_edges),
        cmocka_unit_test(filter_range_errors),
        cmocka_unit_test(mlp_matches),
        cmocka_unit_test(mlp_softmax_stable),
        cmocka_unit_test(mlp_relu_keeps_nan),
        cmocka_unit_test(mlp_errors),
        cmocka_unit_test(linreg_converges),
        cmocka_unit_test(linreg_checkpoint_resume),
        cmocka_unit_test(linreg_errors),
        cmocka_unit_test(cancel_is_honoured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
