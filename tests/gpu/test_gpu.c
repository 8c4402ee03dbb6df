/*
 * test_gpu.c - the CUDA backend on a real GPU, driven directly through its
 * ops table (gexec_plugin.h) as the engine drives it.
 *
 * Loads libgexec_cuda.so (argv[1], or GX_CUDA_PLUGIN), opens device 0 and
 * checks: the self-test; every catalog kernel on fresh random inputs
 * against a float64 reference written here (and against the CPU
 * implementation when the catalog has one) by ||out-ref||/||ref|| with a
 * bound per dtype; batched runs of the batchable kernels; many slots at
 * once; OOM containment (a job larger than free memory fails with
 * GX_ETRANSIENT and the next job succeeds); scrubbing between tenants;
 * telemetry. Without a GPU it prints "skipped: no GPU" and exits 0, so it
 * can run as a ctest everywhere.
 *
 * A tiny harness (no cmocka) so it also builds on the GPU machine. The seed
 * is printed; GX_TEST_SEED replays a run.
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "exec/registry_int.h"
#include "gexec/gexec.h"
#include "gexec/gexec_plugin.h"

/* ---- harness ------------------------------------------------------------- */

static int n_pass, n_fail;
static const char *cur_test = "";

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            n_pass++;                                                      \
        } else {                                                           \
            n_fail++;                                                      \
            printf("FAIL [%s] %s:%d: ", cur_test, __FILE__, __LINE__);     \
            printf(__VA_ARGS__);                                           \
            printf("\n");                                                  \
        }                                                                  \
    } while (0)

static uint64_t rng_state;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static double uni(double lo, double hi) { return lo + (hi - lo) * ((rnd() >> 11) * (1.0 / 9007199254740992.0)); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static gx_array *rand_arr(gx_dtype dt, int ndim, const int64_t *shape, double lo, double hi) {
    gx_array *a = NULL;
    if (gx_array_new(dt, ndim, shape, &a, NULL)) abort();
    for (int64_t i = 0; i < a->count; i++) {
        double v = uni(lo, hi);
        if (dt == GX_I32 || dt == GX_I64) v = floor(v);
        gx_array_set_f64(a, i, v);
    }
    return a;
}
static gx_array *rand1(gx_dtype dt, int64_t n, double lo, double hi) { return rand_arr(dt, 1, &n, lo, hi); }
static gx_array *rand2(gx_dtype dt, int64_t r, int64_t c, double lo, double hi) {
    int64_t s[2] = {r, c};
    return rand_arr(dt, 2, s, lo, hi);
}

/* ||a - ref|| / ||ref||; ref must not be all zeros (tests never compare on
 * zeros); NaN anywhere fails. */
static double rel_err(const gx_array *a, const double *ref, int64_t n) {
    if (!a || a->count != n) return INFINITY;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = gx_array_get_f64(a, i), d = v - ref[i];
        if (isnan(v)) return INFINITY;
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

static double tol_of(gx_dtype dt) { return dt == GX_F32 ? 2e-5 : dt == GX_F64 ? 1e-11 : 0; }

/* ---- stand-in declarations ------------------------------------------------
 * Used only for kernels the CPU catalog does not declare yet, with the names
 * of DESIGN.md's catalog table; no CPU implementation. */

#define KH .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel), .version = 1
#define ALLDT 0xffeu
static const char *const act_choices[] = {"relu", "tanh", NULL};

static const gx_arg_spec a_saxpy[] = {{.name = "a", .type = GX_ARG_FLOAT, .def = 1, .min = -1e300, .max = 1e300}};
static const gx_io_spec i_saxpy[] = {{.name = "x", .dtypes = GX_DTM_FLOAT, .rank = -1},
                                     {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = -1}};
static const gx_io_spec o_y[] = {{.name = "y", .dtypes = GX_DTM_FLOAT, .rank = -1}};
static const gx_kernel s_saxpy = {KH, .name = "saxpy", .args = a_saxpy, .nargs = 1, .inputs = i_saxpy,
                                  .ninputs = 2, .outputs = o_y, .noutputs = 1, .flags = GX_KF_BATCHABLE};

static const gx_io_spec i_x1[] = {{.name = "x", .dtypes = GX_DTM_NUM, .rank = 1}};
static const gx_io_spec o_sum[] = {{.name = "sum", .dtypes = GX_DTM_NUM, .rank = 1}};
static const gx_kernel s_reduce = {KH, .name = "reduce_sum", .inputs = i_x1, .ninputs = 1, .outputs = o_sum,
                                   .noutputs = 1};

static const gx_arg_spec a_gemm[] = {
    {.name = "alpha", .type = GX_ARG_FLOAT, .def = 1, .min = -1e300, .max = 1e300},
    {.name = "beta", .type = GX_ARG_FLOAT, .def = 0, .min = -1e300, .max = 1e300},
    {.name = "trans_a", .type = GX_ARG_BOOL},
    {.name = "trans_b", .type = GX_ARG_BOOL}};
static const gx_io_spec i_gemm[] = {{.name = "a", .dtypes = GX_DTM_FLOAT, .rank = 2},
                                    {.name = "b", .dtypes = GX_DTM_FLOAT, .rank = 2},
                                    {.name = "c", .dtypes = GX_DTM_FLOAT, .rank = 2, .flags = GX_IO_OPTIONAL}};
static const gx_io_spec o_c[] = {{.name = "c", .dtypes = GX_DTM_FLOAT, .rank = 2}};
static const gx_kernel s_gemm = {KH, .name = "gemm", .args = a_gemm, .nargs = 4, .inputs = i_gemm,
                                 .ninputs = 3, .outputs = o_c, .noutputs = 1};

static const gx_arg_spec a_sort[] = {{.name = "descending", .type = GX_ARG_BOOL}};
static const gx_io_spec i_sort[] = {{.name = "keys", .dtypes = GX_DTM_NUM, .rank = 1},
                                    {.name = "values", .dtypes = ALLDT, .rank = 1, .flags = GX_IO_OPTIONAL}};
static const gx_io_spec o_sort[] = {{.name = "keys", .dtypes = GX_DTM_NUM, .rank = 1},
                                    {.name = "values", .dtypes = ALLDT, .rank = 1}};
static const gx_kernel s_sort = {KH, .name = "sort", .args = a_sort, .nargs = 1, .inputs = i_sort,
                                 .ninputs = 2, .outputs = o_sort, .noutputs = 2};

static const gx_arg_spec a_hist[] = {
    {.name = "bins", .type = GX_ARG_INT, .def = 10, .min = 1, .max = 1 << 24},
    {.name = "lo", .type = GX_ARG_FLOAT, .def = 0, .min = -1e300, .max = 1e300},
    {.name = "hi", .type = GX_ARG_FLOAT, .def = 1, .min = -1e300, .max = 1e300}};
static const gx_io_spec o_counts[] = {{.name = "counts", .dtypes = GX_DTM(GX_I64), .rank = 1}};
static const gx_kernel s_hist = {KH, .name = "histogram", .args = a_hist, .nargs = 3, .inputs = i_x1,
                                 .ninputs = 1, .outputs = o_counts, .noutputs = 1};

static const gx_arg_spec a_norm[] = {{.name = "eps", .type = GX_ARG_FLOAT, .def = 1e-5, .min = 0, .max = 1}};
static const gx_io_spec i_x2[] = {{.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 2}};
static const gx_kernel s_norm = {KH, .name = "normalize", .args = a_norm, .nargs = 1, .inputs = i_x2,
                                 .ninputs = 1, .outputs = o_y, .noutputs = 1, .flags = GX_KF_BATCHABLE};

static const gx_arg_spec a_filter[] = {{.name = "lo", .type = GX_ARG_FLOAT, .min = -1e300, .max = 1e300},
                                       {.name = "hi", .type = GX_ARG_FLOAT, .min = -1e300, .max = 1e300}};
static const gx_io_spec o_filter[] = {{.name = "y", .dtypes = GX_DTM_NUM, .rank = 1},
                                      {.name = "index", .dtypes = GX_DTM(GX_I64), .rank = 1}};
static const gx_kernel s_filter = {KH, .name = "filter_range", .args = a_filter, .nargs = 2, .inputs = i_x1,
                                   .ninputs = 1, .outputs = o_filter, .noutputs = 2};

static const gx_arg_spec a_mlp[] = {{.name = "activation", .type = GX_ARG_ENUM, .choices = act_choices},
                                    {.name = "softmax", .type = GX_ARG_BOOL}};
static const gx_io_spec i_mlp[] = {{.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 2},
                                   {.name = "w", .dtypes = GX_DTM_FLOAT, .rank = 2, .flags = GX_IO_SERIES},
                                   {.name = "b", .dtypes = GX_DTM_FLOAT, .rank = 1,
                                    .flags = GX_IO_SERIES | GX_IO_OPTIONAL}};
static const gx_kernel s_mlp = {KH, .name = "mlp_forward", .args = a_mlp, .nargs = 2, .inputs = i_mlp,
                                .ninputs = 3, .outputs = o_y, .noutputs = 1, .flags = GX_KF_BATCHABLE};

static const gx_arg_spec a_lin[] = {
    {.name = "steps", .type = GX_ARG_INT, .def = 100, .min = 0, .max = 1e7},
    {.name = "lr", .type = GX_ARG_FLOAT, .def = 0.01, .min = 0, .max = 10},
    {.name = "checkpoint_every", .type = GX_ARG_INT, .def = 0, .min = 0, .max = 1e7}};
static const gx_io_spec i_lin[] = {{.name = "x", .dtypes = GX_DTM_FLOAT, .rank = 2},
                                   {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = 1},
                                   {.name = "w0", .dtypes = GX_DTM_FLOAT, .rank = 1, .flags = GX_IO_OPTIONAL}};
static const gx_io_spec o_lin[] = {{.name = "w", .dtypes = GX_DTM_FLOAT, .rank = 1},
                                   {.name = "loss", .dtypes = GX_DTM(GX_F64), .rank = 1}};
static const gx_kernel s_lin = {KH, .name = "linreg_gd", .args = a_lin, .nargs = 3, .inputs = i_lin,
                                .ninputs = 3, .outputs = o_lin, .noutputs = 2,
                                .flags = GX_KF_CHECKPOINT};

static const gx_kernel *const standins[] = {&s_saxpy, &s_reduce, &s_gemm, &s_sort, &s_hist,
                                            &s_norm,  &s_filter, &s_mlp,  &s_lin};

static int is_standin(const gx_kernel *k) {
    for (size_t i = 0; i < sizeof standins / sizeof standins[0]; i++)
        if (standins[i] == k) return 1;
    return 0;
}

/* ---- driving the backend ----------------------------------------------- */

static const gx_backend *be;
static gx_backend_dev *dev;
static void *plugin;

/* GX_TEST_CPU_AS_GPU=1 runs the kernel tests with the CPU implementations
 * in place of the backend (no GPU needed): a check of the references here
 * against the CPU catalog. */
static int cpu_as_gpu;

static void backend_run(void *slot, gx_kcall *const *calls, gx_call_result *res, int n) {
    if (!cpu_as_gpu) {
        be->run_batch(dev, slot, calls, res, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        gx_kernel_run_fn fn = gx_kernel_impl(calls[i]->kernel, GX_DEV_CPU);
        res[i].rc = fn ? fn(calls[i]) : GX_EUNSUPPORTED;
        res[i].run_ns = 0;
    }
}
static void *slot0;

typedef struct job {
    const gx_kernel *k;
    gx_named_arg args[8];
    int nargs;
    gx_named_input in[96];
    int nin;
    gx__bound b;
    gx_kcall c;
    gx_array *out[8];
    gx_error err;
    gx_call_result res;
} job;

static void job_init(job *j, const char *kname) {
    memset(j, 0, sizeof *j);
    j->k = gx_kernel_find(kname);
    if (!j->k) {
        printf("no kernel %s\n", kname);
        abort();
    }
}
static void job_arg(job *j, const char *name, double v) { j->args[j->nargs++] = (gx_named_arg){.name = name, .value = v}; }
static void job_in(job *j, const char *name, gx_array *a) { j->in[j->nin++] = (gx_named_input){name, a}; }

/* Bind; returns 0 or the binding error. */
static int job_bind(job *j) {
    gx_error_clear(&j->err);
    int rc = gx__bind(j->k, j->args, j->nargs, j->in, j->nin, &j->b, &j->err);
    if (rc) return rc;
    gx__kcall_init(&j->c, j->k, &j->b, j->out, &j->err);
    j->c.device = 0;
    return 0;
}

/* Run jobs[0..n) in one run_batch on a slot. A job the declaration refuses
 * at binding (as the engine would at submit) gets that code and stays out
 * of the batch. */
static void run_jobs(void *slot, job **jobs, int n) {
    gx_kcall **calls = malloc((size_t)n * sizeof *calls);
    gx_call_result *res = calloc((size_t)n, sizeof *res);
    job **bound = malloc((size_t)n * sizeof *bound);
    int nb = 0;
    for (int i = 0; i < n; i++) {
        int rc = job_bind(jobs[i]);
        if (rc) {
            jobs[i]->res.rc = rc;
            continue;
        }
        jobs[i]->c.dev_ctx = slot;
        bound[nb] = jobs[i];
        calls[nb++] = &jobs[i]->c;
    }
    if (nb) backend_run(slot, calls, res, nb);
    for (int i = 0; i < nb; i++) bound[i]->res = res[i];
    free(calls);
    free(res);
    free(bound);
}

static int run1(job *j) {
    run_jobs(slot0, &j, 1);
    if (j->res.rc) printf("  %s: %s: %s\n", j->k->name, gx_err_name(j->res.rc), j->err.message);
    return j->res.rc;
}

static void job_free(job *j) {
    for (int i = 0; i < 8; i++) gx_array_unref(j->out[i]);
    gx__bound_free(&j->b);
    for (int i = 0; i < j->nin; i++) gx_array_unref(j->in[i].array);
    memset(j, 0, sizeof *j);
}

/* Compare the GPU outputs with the CPU implementation, when there is one. */
static void cpu_compare(job *j, double tol) {
    if (is_standin(j->k) || !gx_kernel_impl(j->k, GX_DEV_CPU)) return;
    gx_array *cpu[8] = {0};
    gx_error e;
    gx_error_clear(&e);
    int rc = gx_kernel_run_direct(j->k, j->args, j->nargs, j->in, j->nin, cpu, &e);
    CHECK(rc == 0, "%s on the CPU: %s", j->k->name, e.message);
    for (int i = 0; !rc && i < j->k->noutputs; i++) {
        if (!cpu[i] && !j->out[i]) continue;
        CHECK(cpu[i] && j->out[i] && cpu[i]->count == j->out[i]->count, "%s output %s: shapes differ",
              j->k->name, j->k->outputs[i].name);
        if (!cpu[i] || !j->out[i] || cpu[i]->count != j->out[i]->count) continue;
        double *ref = malloc(sizeof(double) * (size_t)(cpu[i]->count ? cpu[i]->count : 1));
        for (int64_t e2 = 0; e2 < cpu[i]->count; e2++) ref[e2] = gx_array_get_f64(cpu[i], e2);
        double r = rel_err(j->out[i], ref, cpu[i]->count);
        CHECK(r <= tol, "%s output %s: GPU vs CPU rel err %.3g > %.3g", j->k->name, j->k->outputs[i].name, r, tol);
        free(ref);
    }
    for (int i = 0; i < 8; i++) gx_array_unref(cpu[i]);
}

/* ---- references (float64) ----------------------------------------------- */

static double *to_f64(const gx_array *a) {
    double *d = malloc(8 * (size_t)(a->count ? a->count : 1));
    for (int64_t i = 0; i < a->count; i++) d[i] = gx_array_get_f64(a, i);
    return d;
}

static void ref_gemm(const gx_array *a, const gx_array *b, const gx_array *c, int ta, int tb, double alpha,
                     double beta, double *out, int64_t m, int64_t n, int64_t k) {
    double *A = to_f64(a), *Bt = malloc(8 * (size_t)(n * k));
    /* B^T rows: Bt[j*k + p] = op(B)[p][j] */
    for (int64_t p = 0; p < k; p++)
        for (int64_t jj = 0; jj < n; jj++) Bt[jj * k + p] = gx_array_get_f64(b, tb ? jj * k + p : p * n + jj);
    double *Ar = malloc(8 * (size_t)(k ? k : 1));
    for (int64_t i = 0; i < m; i++) {
        for (int64_t p = 0; p < k; p++) Ar[p] = ta ? A[p * m + i] : A[i * k + p];
        for (int64_t jj = 0; jj < n; jj++) {
            double sum = 0;
            const double *bt = Bt + jj * k;
            for (int64_t p = 0; p < k; p++) sum += Ar[p] * bt[p];
            out[i * n + jj] = alpha * sum + (c ? beta * gx_array_get_f64(c, i * n + jj) : 0);
        }
    }
    free(A);
    free(Bt);
    free(Ar);
}

/* ---- kernel tests ------------------------------------------------------- */

static void test_saxpy(gx_dtype dt, int64_t n) {
    cur_test = "saxpy";
    job j;
    job_init(&j, "saxpy");
    double a = uni(-3, 3);
    job_arg(&j, "a", a);
    job_in(&j, "x", rand1(dt, n, -1, 1));
    job_in(&j, "y", rand1(dt, n, -1, 1));
    int rc = run1(&j);
    CHECK(rc == 0, "saxpy %s n=%lld failed", gx_dtype_name(dt), (long long)n);
    if (!rc) {
        double *ref = malloc(8 * (size_t)n);
        for (int64_t i = 0; i < n; i++)
            ref[i] = a * gx_array_get_f64(j.in[0].array, i) + gx_array_get_f64(j.in[1].array, i);
        double r = rel_err(j.out[0], ref, n);
        CHECK(r <= tol_of(dt), "saxpy %s n=%lld rel err %.3g", gx_dtype_name(dt), (long long)n, r);
        free(ref);
        cpu_compare(&j, tol_of(dt));
    }
    job_free(&j);
}

static void test_reduce(gx_dtype dt, int64_t n) {
    cur_test = "reduce_sum";
    job j;
    job_init(&j, "reduce_sum");
    job_in(&j, "x", rand1(dt, n, dt == GX_I32 || dt == GX_I64 ? -1000 : 0, 1000));
    int rc = run1(&j);
    CHECK(rc == 0, "reduce_sum %s failed", gx_dtype_name(dt));
    if (!rc) {
        double ref = 0;
        for (int64_t i = 0; i < n; i++) ref += gx_array_get_f64(j.in[0].array, i);
        double r = rel_err(j.out[0], &ref, 1);
        CHECK(r <= (dt == GX_F32 ? 1e-6 : tol_of(dt)), "reduce_sum %s n=%lld rel err %.3g", gx_dtype_name(dt),
              (long long)n, r);
        cpu_compare(&j, dt == GX_F32 ? 1e-6 : 1e-12);
    }
    job_free(&j);
}

static void test_gemm(gx_dtype dt, int64_t m, int64_t n, int64_t k, int ta, int tb, int with_c) {
    cur_test = "gemm";
    job j;
    job_init(&j, "gemm");
    double alpha = uni(0.5, 2), beta = with_c ? uni(-1, 1) : 0;
    job_arg(&j, "alpha", alpha);
    if (with_c) job_arg(&j, "beta", beta);
    job_arg(&j, "trans_a", ta);
    job_arg(&j, "trans_b", tb);
    job_in(&j, "a", ta ? rand2(dt, k, m, -1, 1) : rand2(dt, m, k, -1, 1));
    job_in(&j, "b", tb ? rand2(dt, n, k, -1, 1) : rand2(dt, k, n, -1, 1));
    if (with_c) job_in(&j, "c", rand2(dt, m, n, -1, 1));
    int rc = run1(&j);
    CHECK(rc == 0, "gemm failed");
    if (!rc) {
        double *ref = malloc(8 * (size_t)(m * n));
        ref_gemm(j.in[0].array, j.in[1].array, with_c ? j.in[2].array : NULL, ta, tb, alpha, beta, ref, m, n, k);
        double r = rel_err(j.out[0], ref, m * n);
        CHECK(r <= (dt == GX_F32 ? 1e-5 : 1e-12), "gemm %s %lldx%lldx%lld ta=%d tb=%d c=%d rel err %.3g",
              gx_dtype_name(dt), (long long)m, (long long)n, (long long)k, ta, tb, with_c, r);
        free(ref);
        cpu_compare(&j, dt == GX_F32 ? 1e-5 : 1e-12);
    }
    job_free(&j);
}

typedef struct {
    double key;
    int64_t idx;
    int desc;
} skey;
static int skey_cmp(const void *a, const void *b) {
    const skey *x = a, *y = b;
    if (x->key != y->key) return (x->key < y->key) != x->desc ? -1 : 1;
    return x->idx < y->idx ? -1 : 1;
}

static void test_sort(gx_dtype dt, int64_t n, int desc, int with_values) {
    cur_test = "sort";
    job j;
    job_init(&j, "sort");
    job_arg(&j, "descending", desc);
    /* few distinct keys for i32 so stability matters */
    job_in(&j, "keys", rand1(dt, n, dt == GX_I32 ? -50 : -1e6, dt == GX_I32 ? 50 : 1e6));
    if (with_values) job_in(&j, "values", rand1(GX_F64, n, 1, 2));
    int rc = run1(&j);
    CHECK(rc == 0, "sort failed");
    if (!rc) {
        skey *s = malloc(sizeof *s * (size_t)n);
        for (int64_t i = 0; i < n; i++) s[i] = (skey){gx_array_get_f64(j.in[0].array, i), i, desc};
        qsort(s, (size_t)n, sizeof *s, skey_cmp);
        double *rk = malloc(8 * (size_t)n), *rv = malloc(8 * (size_t)n);
        for (int64_t i = 0; i < n; i++) {
            rk[i] = s[i].key;
            rv[i] = with_values ? gx_array_get_f64(j.in[1].array, s[i].idx) : 0;
        }
        double r = rel_err(j.out[0], rk, n);
        CHECK(r == 0, "sort %s desc=%d keys differ (rel err %.3g)", gx_dtype_name(dt), desc, r);
        if (with_values) {
            r = rel_err(j.out[1], rv, n);
            CHECK(r == 0, "sort %s desc=%d values differ (not stable?) rel err %.3g", gx_dtype_name(dt), desc, r);
        }
        free(s);
        free(rk);
        free(rv);
        cpu_compare(&j, 0);
    }
    job_free(&j);
}

static void test_histogram(gx_dtype dt, int64_t n, int64_t bins) {
    cur_test = "histogram";
    job j;
    job_init(&j, "histogram");
    double lo = -2, hi = 3;
    job_arg(&j, "bins", (double)bins);
    job_arg(&j, "lo", lo);
    job_arg(&j, "hi", hi);
    job_in(&j, "x", rand1(dt, n, -3, 4));
    int rc = run1(&j);
    CHECK(rc == 0, "histogram failed");
    if (!rc) {
        double *ref = calloc((size_t)bins, 8), *edge = malloc(8 * (size_t)(bins + 1));
        double delta = hi - lo, step = delta / (double)bins;
        for (int64_t i = 0; i < bins; i++) edge[i] = (double)i * step + lo;
        edge[bins] = hi;
        for (int64_t i = 0; i < n; i++) {
            double v = gx_array_get_f64(j.in[0].array, i);
            if (!(v >= lo && v <= hi)) continue;
            int64_t b = (int64_t)((v - lo) / delta * (double)bins);
            if (b >= bins) b = bins - 1;
            if (v < edge[b]) b--;
            else if (b != bins - 1 && v >= edge[b + 1]) b++;
            ref[b] += 1;
        }
        free(edge);
        double r = rel_err(j.out[0], ref, bins);
        CHECK(r == 0, "histogram %s bins=%lld rel err %.3g", gx_dtype_name(dt), (long long)bins, r);
        free(ref);
        cpu_compare(&j, 1e-9);
    }
    job_free(&j);
}

static void ref_normalize(const gx_array *x, double eps, double *out) {
    int64_t r = x->shape[0], c = x->shape[1];
    for (int64_t jj = 0; jj < c; jj++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < r; i++) m += gx_array_get_f64(x, i * c + jj);
        m /= r;
        for (int64_t i = 0; i < r; i++) {
            double d = gx_array_get_f64(x, i * c + jj) - m;
            v += d * d;
        }
        v /= r;
        for (int64_t i = 0; i < r; i++) out[i * c + jj] = (gx_array_get_f64(x, i * c + jj) - m) / sqrt(v + eps);
    }
}

static void test_normalize(gx_dtype dt, int64_t rows, int64_t cols) {
    cur_test = "normalize";
    job j;
    job_init(&j, "normalize");
    job_arg(&j, "eps", 1e-6);
    job_in(&j, "x", rand2(dt, rows, cols, 5, 9));
    int rc = run1(&j);
    CHECK(rc == 0, "normalize failed");
    if (!rc) {
        double *ref = malloc(8 * (size_t)(rows * cols));
        ref_normalize(j.in[0].array, 1e-6, ref);
        double r = rel_err(j.out[0], ref, rows * cols);
        CHECK(r <= tol_of(dt), "normalize %s %lldx%lld rel err %.3g", gx_dtype_name(dt), (long long)rows,
              (long long)cols, r);
        free(ref);
        cpu_compare(&j, tol_of(dt));
    }
    job_free(&j);
}

static void test_filter(gx_dtype dt, int64_t n) {
    cur_test = "filter_range";
    job j;
    job_init(&j, "filter_range");
    int isint = dt == GX_I32 || dt == GX_I64;
    double lo = isint ? -3 : -0.3, hi = isint ? 5 : 0.55;
    job_arg(&j, "lo", lo);
    job_arg(&j, "hi", hi);
    job_in(&j, "x", rand1(dt, n, isint ? -10 : -1, isint ? 10 : 1));
    int rc = run1(&j);
    CHECK(rc == 0, "filter_range failed");
    if (!rc) {
        double *ry = malloc(8 * (size_t)n), *ri = malloc(8 * (size_t)n);
        int64_t m = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = gx_array_get_f64(j.in[0].array, i);
            if (v >= lo && v <= hi) {
                ry[m] = v;
                ri[m++] = (double)i;
            }
        }
        CHECK(m > 0, "filter test kept nothing");
        double r1 = rel_err(j.out[0], ry, m), r2 = rel_err(j.out[1], ri, m);
        CHECK(r1 == 0 && r2 == 0, "filter_range %s n=%lld: y err %.3g index err %.3g (m=%lld, got %lld)",
              gx_dtype_name(dt), (long long)n, r1, r2, (long long)m, (long long)(j.out[0] ? j.out[0]->count : -1));
        free(ry);
        free(ri);
        cpu_compare(&j, 0);
    }
    job_free(&j);
}

/* weights shared by the mlp tests: 2 or 3 layers */
typedef struct mlp_w {
    int layers;
    gx_array *w[4], *b[4];
} mlp_w;

static mlp_w mlp_weights(gx_dtype dt, int64_t in, const int64_t *outs, int layers) {
    mlp_w m = {.layers = layers};
    for (int l = 0; l < layers; l++) {
        m.w[l] = rand2(dt, in, outs[l], -1 / sqrt((double)in), 1 / sqrt((double)in));
        m.b[l] = rand1(dt, outs[l], -0.5, 0.5);
        in = outs[l];
    }
    return m;
}

static void mlp_job(job *j, const mlp_w *m, gx_array *x, int act, int softmax) {
    job_init(j, "mlp_forward");
    j->args[j->nargs++] = (gx_named_arg){.name = "activation", .str = act == 2 ? "tanh" : "relu"};
    job_arg(j, "softmax", softmax);
    job_in(j, "x", x);
    static const char *wn[] = {"w0", "w1", "w2", "w3"}, *bn[] = {"b0", "b1", "b2", "b3"};
    for (int l = 0; l < m->layers; l++) {
        job_in(j, wn[l], gx_array_ref(m->w[l]));
        job_in(j, bn[l], gx_array_ref(m->b[l]));
    }
}

static double *ref_mlp(const mlp_w *m, const gx_array *x, int act, int softmax, int64_t *outw) {
    int64_t rows = x->shape[0], in = x->shape[1];
    double *cur = malloc(8 * (size_t)(rows * in));
    for (int64_t i = 0; i < rows * in; i++) cur[i] = gx_array_get_f64(x, i);
    for (int l = 0; l < m->layers; l++) {
        int64_t out = m->w[l]->shape[1];
        double *nx = malloc(8 * (size_t)(rows * out));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t o = 0; o < out; o++) {
                double s = gx_array_get_f64(m->b[l], o);
                for (int64_t p = 0; p < in; p++) s += cur[r * in + p] * gx_array_get_f64(m->w[l], p * out + o);
                if (l < m->layers - 1) s = act == 2 ? tanh(s) : (s > 0 ? s : 0);
                nx[r * out + o] = s;
            }
        free(cur);
        cur = nx;
        in = out;
    }
    if (softmax)
        for (int64_t r = 0; r < rows; r++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t o = 0; o < in; o++) mx = fmax(mx, cur[r * in + o]);
            for (int64_t o = 0; o < in; o++) sum += exp(cur[r * in + o] - mx);
            for (int64_t o = 0; o < in; o++) cur[r * in + o] = exp(cur[r * in + o] - mx) / sum;
        }
    *outw = in;
    return cur;
}

static void mlp_free(mlp_w *m) {
    for (int l = 0; l < m->layers; l++) {
        gx_array_unref(m->w[l]);
        gx_array_unref(m->b[l]);
    }
}

static void test_mlp(gx_dtype dt, int64_t batch, int act, int softmax) {
    cur_test = "mlp_forward";
    int64_t outs[3] = {64, 48, 10};
    mlp_w m = mlp_weights(dt, 32, outs, 3);
    job j;
    mlp_job(&j, &m, rand2(dt, batch, 32, -1, 1), act, softmax);
    int rc = run1(&j);
    CHECK(rc == 0, "mlp_forward failed");
    if (!rc) {
        int64_t w;
        double *ref = ref_mlp(&m, j.in[0].array, act, softmax, &w);
        double r = rel_err(j.out[0], ref, batch * w);
        CHECK(r <= (dt == GX_F32 ? 1e-5 : 1e-12), "mlp_forward %s act=%d softmax=%d rel err %.3g",
              gx_dtype_name(dt), act, softmax, r);
        free(ref);
        cpu_compare(&j, dt == GX_F32 ? 1e-5 : 1e-12);
    }
    job_free(&j);
    mlp_free(&m);
}

/* A deep, wide net: 40 layers of [1024, 1024] f32 (160 MB of weights, most
 * of them in pool blocks past the 32 MB mirror). Each layer's activations
 * took a block of their own, so the call ran past its limit of pooled
 * blocks (GX_ELIMIT, a permanent failure of a net the CPU runs) and past
 * the memory admission reserved; two buffers now serve every layer. */
static void test_mlp_deep(void) {
    cur_test = "mlp_forward deep";
    enum { L = 40, W = 1024, ROWS = 64 };
    static char names[2 * L][8];
    job j;
    job_init(&j, "mlp_forward");
    j.args[j.nargs++] = (gx_named_arg){.name = "activation", .str = "tanh"};
    job_arg(&j, "softmax", 0);
    job_in(&j, "x", rand2(GX_F32, ROWS, W, -1, 1));
    for (int l = 0; l < L; l++) {
        snprintf(names[2 * l], sizeof names[0], "w%d", l);
        snprintf(names[2 * l + 1], sizeof names[0], "b%d", l);
        job_in(&j, names[2 * l], rand2(GX_F32, W, W, -1 / sqrt((double)W), 1 / sqrt((double)W)));
        job_in(&j, names[2 * l + 1], rand1(GX_F32, W, -0.1, 0.1));
    }
    int rc = run1(&j);
    CHECK(rc == 0, "mlp_forward of %d layers of [%d, %d] failed", L, W, W);
    if (!rc) cpu_compare(&j, 1e-4);
    job_free(&j);
}

/* relu keeps a NaN (as numpy's maximum(h, 0)): it made it 0 on the GPU as
 * on the CPU. Two layers of one unit, weights 1 and biases 0: y = relu(x). */
static void test_mlp_relu_nan(gx_dtype dt) {
    cur_test = "mlp_forward relu NaN";
    mlp_w m = {.layers = 2};
    int64_t s11[2] = {1, 1}, sx[2] = {5, 1};
    const double xv[5] = {NAN, INFINITY, -INFINITY, -2, 3}, want[5] = {NAN, INFINITY, 0, 0, 3};
    for (int l = 0; l < 2; l++) {
        gx_array_new(dt, 2, s11, &m.w[l], NULL);
        gx_array_new1(dt, 1, &m.b[l], NULL);
        gx_array_set_f64(m.w[l], 0, 1);
        gx_array_set_f64(m.b[l], 0, 0);
    }
    gx_array *x = NULL;
    gx_array_new(dt, 2, sx, &x, NULL);
    for (int i = 0; i < 5; i++) gx_array_set_f64(x, i, xv[i]);
    job j;
    mlp_job(&j, &m, x, 1, 0);
    int rc = run1(&j);
    CHECK(rc == 0, "mlp_forward failed");
    for (int i = 0; !rc && i < 5; i++) {
        double got = gx_array_get_f64(j.out[0], i);
        CHECK(isnan(want[i]) ? isnan(got) : got == want[i], "mlp_forward %s relu(%g) = %g, want %g",
              gx_dtype_name(dt), xv[i], got, want[i]);
    }
    job_free(&j);
    mlp_free(&m);
}

/* checkpoints seen by the linreg test */
static int ckpt_count;
static int64_t ckpt_last;
static gx_array *ckpt_state[2];
static int on_ckpt(gx_kcall *c, int64_t step, gx_array *const *st, int n) {
    if (++ckpt_count > 1) return 0; /* keep the first: resume from there */
    ckpt_last = step;
    for (int i = 0; i < 2; i++) {
        gx_array_unref(ckpt_state[i]);
        ckpt_state[i] = NULL;
    }
    for (int i = 0; i < n && i < 2; i++) gx_array_copy(st[i], &ckpt_state[i], NULL);
    return 0;
}

static void ref_linreg(const gx_array *x, const gx_array *y, int64_t steps, double lr, double *w, double *loss) {
    int64_t n = x->shape[0], d = x->shape[1];
    double *r = malloc(8 * (size_t)n), *g = malloc(8 * (size_t)d);
    for (int64_t i = 0; i < d; i++) w[i] = 0;
    for (int64_t t = 0; t < steps; t++) {
        double l = 0;
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t p = 0; p < d; p++) s += gx_array_get_f64(x, i * d + p) * w[p];
            r[i] = s - gx_array_get_f64(y, i);
            l += r[i] * r[i];
        }
        loss[t] = l / n;
        for (int64_t p = 0; p < d; p++) {
            double s = 0;
            for (int64_t i = 0; i < n; i++) s += gx_array_get_f64(x, i * d + p) * r[i];
            g[p] = 2.0 * s / n;
        }
        for (int64_t p = 0; p < d; p++) w[p] -= lr * g[p];
    }
    free(r);
    free(g);
}

static void test_linreg(gx_dtype dt, int64_t n, int64_t d, int64_t steps) {
    cur_test = "linreg_gd";
    job j;
    job_init(&j, "linreg_gd");
    double lr = 0.05;
    job_arg(&j, "steps", (double)steps);
    job_arg(&j, "lr", lr);
    job_arg(&j, "checkpoint_every", 25);
    gx_array *x = rand2(dt, n, d, -1, 1), *y = rand1(dt, n, -1, 1);
    job_in(&j, "x", x);
    job_in(&j, "y", y);
    ckpt_count = 0;
    job *jp = &j;
    if (job_bind(jp)) abort();
    jp->c.checkpoint = on_ckpt;
    jp->c.dev_ctx = slot0;
    gx_kcall *cp = &jp->c;
    backend_run(slot0, &cp, &jp->res, 1);
    int rc = jp->res.rc;
    CHECK(rc == 0, "linreg_gd failed: %s", j.err.message);
    double *w = malloc(8 * (size_t)d), *loss = malloc(8 * (size_t)steps);
    ref_linreg(x, y, steps, lr, w, loss);
    if (!rc) {
        double r1 = rel_err(j.out[0], w, d), r2 = rel_err(j.out[1], loss, steps);
        double tol = dt == GX_F32 ? 1e-6 : 1e-10;
        CHECK(r1 <= tol && r2 <= 1e-10, "linreg_gd %s w err %.3g loss err %.3g", gx_dtype_name(dt), r1, r2);
        CHECK(ckpt_count == (int)(steps / 25), "linreg_gd checkpoints: %d, expected %d", ckpt_count,
              (int)(steps / 25));
        CHECK(ckpt_state[0] && ckpt_state[0]->dtype == GX_F64 && ckpt_state[0]->count == d && ckpt_state[1] &&
                  ckpt_state[1]->dtype == GX_F64 && ckpt_state[1]->count == ckpt_last,
              "checkpoint state is w f64 [d], loss f64 [step]");
        cpu_compare(&j, dt == GX_F32 ? 1e-5 : 1e-9);
    }
    /* resume from the last checkpoint: same final answer */
    if (!rc && ckpt_state[0]) {
        for (int i = 0; i < 8; i++) {
            gx_array_unref(j.out[i]);
            j.out[i] = NULL;
        }
        gx__bound_free(&j.b);
        if (job_bind(&j)) abort();
        j.c.resume = ckpt_state;
        j.c.nresume = 2;
        j.c.resume_step = ckpt_last;
        j.c.dev_ctx = slot0;
        cp = &j.c;
        backend_run(slot0, &cp, &j.res, 1);
        CHECK(j.res.rc == 0, "linreg_gd resume failed: %s", j.err.message);
        if (!j.res.rc) {
            double r1 = rel_err(j.out[0], w, d), r2 = rel_err(j.out[1], loss, steps);
            CHECK(r1 <= (dt == GX_F32 ? 1e-6 : 1e-10) && r2 <= 1e-10, "linreg_gd resumed at %lld: w err %.3g loss err %.3g",
                  (long long)ckpt_last, r1, r2);
        }
    }
    free(w);
    free(loss);
    job_free(&j);
}

static void test_spin(void) {
    cur_test = "spin";
    job j;
    job_init(&j, "spin");
    job_arg(&j, "us", 3000);
    double t0 = now_s();
    int rc = run1(&j);
    double el = now_s() - t0;
    CHECK(rc == 0 && el >= 0.003 && el < 0.5, "spin 3000us: rc %d, took %.4f s", rc, el);
    job_free(&j);
    /* a batch of short spins runs side by side */
    job js[16], *jp[16];
    for (int i = 0; i < 16; i++) {
        job_init(&js[i], "spin");
        job_arg(&js[i], "us", 2000);
        jp[i] = &js[i];
    }
    t0 = now_s();
    run_jobs(slot0, jp, 16);
    el = now_s() - t0;
    int ok = 1;
    for (int i = 0; i < 16; i++) ok &= js[i].res.rc == 0;
    CHECK(ok && el >= 0.002 && el < 0.016, "16 batched 2 ms spins: ok=%d took %.4f s", ok, el);
    for (int i = 0; i < 16; i++) job_free(&js[i]);
}

/* ---- batches ------------------------------------------------------------ */

static void test_saxpy_batch(int n) {
    cur_test = "saxpy batch";
    job *js = calloc((size_t)n, sizeof *js), **jp = calloc((size_t)n, sizeof *jp);
    for (int i = 0; i < n; i++) {
        job_init(&js[i], "saxpy");
        int64_t len = 1 + (int64_t)(rnd() % 3000);
        gx_dtype dt = i < n / 2 ? GX_F32 : GX_F64; /* two dtype runs: two merged groups */
        job_arg(&js[i], "a", uni(-2, 2));
        job_in(&js[i], "x", rand1(dt, len, -1, 1));
        job_in(&js[i], "y", rand1(dt, len, -1, 1));
        jp[i] = &js[i];
    }
    run_jobs(slot0, jp, n);
    int bad = 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        job *j = &js[i];
        if (j->res.rc) {
            bad++;
            continue;
        }
        int64_t len = j->in[0].array->count;
        double *ref = malloc(8 * (size_t)len);
        for (int64_t e = 0; e < len; e++)
            ref[e] = j->args[0].value * gx_array_get_f64(j->in[0].array, e) + gx_array_get_f64(j->in[1].array, e);
        double r = rel_err(j->out[0], ref, len);
        if (r > tol_of(j->in[0].array->dtype)) bad++;
        if (r > worst) worst = r;
        free(ref);
    }
    CHECK(bad == 0, "saxpy batch of %d: %d wrong (worst rel err %.3g)", n, bad, worst);
    for (int i = 0; i < n; i++) job_free(&js[i]);
    free(js);
    free(jp);
}

static void test_normalize_batch(int n) {
    cur_test = "normalize batch";
    job *js = calloc((size_t)n, sizeof *js), **jp = calloc((size_t)n, sizeof *jp);
    for (int i = 0; i < n; i++) {
        job_init(&js[i], "normalize");
        job_arg(&js[i], "eps", 1e-6);
        job_in(&js[i], "x", rand2(GX_F32, 2 + (int64_t)(rnd() % 200), 1 + (int64_t)(rnd() % 40), -3, 8));
        jp[i] = &js[i];
    }
    run_jobs(slot0, jp, n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        job *j = &js[i];
        gx_array *x = j->in[0].array;
        double *ref = malloc(8 * (size_t)x->count);
        ref_normalize(x, 1e-6, ref);
        if (j->res.rc || rel_err(j->out[0], ref, x->count) > 2e-5) bad++;
        free(ref);
    }
    CHECK(bad == 0, "normalize batch of %d: %d wrong", n, bad);
    for (int i = 0; i < n; i++) job_free(&js[i]);
    free(js);
    free(jp);
}

static void test_mlp_batch(int n) {
    cur_test = "mlp batch";
    int64_t outs[2] = {40, 7};
    mlp_w m = mlp_weights(GX_F32, 16, outs, 2);
    job *js = calloc((size_t)n, sizeof *js), **jp = calloc((size_t)n, sizeof *jp);
    for (int i = 0; i < n; i++) {
        mlp_job(&js[i], &m, rand2(GX_F32, 1 + (int64_t)(rnd() % 9), 16, -1, 1), 2, 1);
        jp[i] = &js[i];
    }
    run_jobs(slot0, jp, n);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int64_t w;
        double *ref = ref_mlp(&m, js[i].in[0].array, 2, 1, &w);
        if (js[i].res.rc || rel_err(js[i].out[0], ref, js[i].in[0].array->shape[0] * w) > 1e-5) bad++;
        free(ref);
    }
    CHECK(bad == 0, "mlp_forward batch of %d (shared weights): %d wrong", n, bad);
    for (int i = 0; i < n; i++) job_free(&js[i]);
    free(js);
    free(jp);
    mlp_free(&m);
}

/* Sort edge cases, as sort.c orders them: -0.0 equals +0.0 (stable), NaNs
 * last in both directions. */
static void test_sort_special(void) {
    cur_test = "sort special";
    const double keys[] = {3, NAN, -0.0, 0.0, -1, NAN, 2, -INFINITY, INFINITY};
    const int asc[] = {7, 4, 2, 3, 6, 0, 8, 1, 5}, desc[] = {8, 0, 6, 2, 3, 4, 7, 1, 5};
    int n = 9;
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 2; t++) {
            gx_dtype dt = t ? GX_F64 : GX_F32;
            job j;
            job_init(&j, "sort");
            job_arg(&j, "descending", d);
            gx_array *k = NULL, *v = NULL;
            gx_array_new1(dt, n, &k, NULL);
            gx_array_new1(GX_I64, n, &v, NULL);
            for (int i = 0; i < n; i++) {
                gx_array_set_f64(k, i, keys[i]);
                ((int64_t *)v->data)[i] = i;
            }
            job_in(&j, "keys", k);
            job_in(&j, "values", v);
            int rc = run1(&j);
            int ok = rc == 0 && j.out[1];
            for (int i = 0; ok && i < n; i++) ok = ((int64_t *)j.out[1]->data)[i] == (d ? desc : asc)[i];
            CHECK(ok, "sort %s descending=%d of [3 NaN -0 0 -1 NaN 2 -inf inf]: wrong order", gx_dtype_name(dt), d);
            job_free(&j);
        }
}

/* Integer sums that do not fit in an i64 fail; the ones that do are exact. */
static void test_reduce_overflow(void) {
    cur_test = "reduce overflow";
    const int64_t big = INT64_C(1) << 62;
    for (int t = 0; t < 2; t++) {
        job j;
        job_init(&j, "reduce_sum");
        gx_array *x = NULL;
        gx_array_new1(GX_I64, 3, &x, NULL);
        int64_t *v = x->data;
        v[0] = big;
        v[1] = t ? -big : big;
        v[2] = t ? 12345 : big;
        job_in(&j, "x", x);
        int rc = run1(&j);
        if (t) CHECK(rc == 0 && j.out[0] && ((int64_t *)j.out[0]->data)[0] == 12345, "exact i64 sum");
        else CHECK(rc == GX_EOVERFLOW, "3 * 2^62 in i64: got %s, expected GX_EOVERFLOW", gx_err_name(rc));
        job_free(&j);
    }
}

/* A constant column with eps = 0 normalises to 0, not NaN. */
static void test_normalize_constant(void) {
    cur_test = "normalize constant";
    job j;
    job_init(&j, "normalize");
    job_arg(&j, "eps", 0);
    int64_t shape[2] = {50, 3};
    gx_array *x = rand_arr(GX_F64, 2, shape, 1, 2);
    for (int r = 0; r < 50; r++) ((double *)x->data)[r * 3 + 1] = 7.5;
    job_in(&j, "x", x);
    int rc = run1(&j);
    int ok = rc == 0;
    for (int r = 0; ok && r < 50; r++) ok = ((double *)j.out[0]->data)[r * 3 + 1] == 0.0;
    CHECK(ok, "constant column with eps 0 should give zeros");
    if (!rc) cpu_compare(&j, 1e-12);
    job_free(&j);
}

/* A batch mixing kernels, sizes (zero too) and a call the backend refuses:
 * consecutive saxpy calls merge, the rest run one by one, and each call
 * gets its own result. */
static void test_mixed_batch(void) {
    cur_test = "mixed batch";
    enum { N = 9 };
    job js[N], *jp[N];
    const char *kinds[N] = {"saxpy", "saxpy", "reduce_sum", "saxpy", "saxpy", "saxpy", "spin", "saxpy", "saxpy"};
    int64_t lens[N] = {1000, 0, 5000, 7, 4096, 3000, 0, 2048, 1};
    for (int i = 0; i < N; i++) {
        job_init(&js[i], kinds[i]);
        jp[i] = &js[i];
        if (!strcmp(kinds[i], "saxpy")) {
            job_arg(&js[i], "a", uni(-2, 2));
            job_in(&js[i], "x", rand1(GX_F32, lens[i], -1, 1));
            /* call 4 is malformed: y shorter than x */
            job_in(&js[i], "y", rand1(GX_F32, i == 4 ? lens[i] - 1 : lens[i], -1, 1));
        } else if (!strcmp(kinds[i], "reduce_sum")) {
            job_in(&js[i], "x", rand1(GX_F64, lens[i], 0, 1));
        } else {
            job_arg(&js[i], "us", 100);
        }
    }
    run_jobs(slot0, jp, N);
    for (int i = 0; i < N; i++) {
        job *j = &js[i];
        if (i == 4) {
            CHECK(j->res.rc == GX_EINVAL && j->err.message[0], "malformed call in a batch: %s (%s)",
                  gx_err_name(j->res.rc), j->err.message);
            continue;
        }
        CHECK(j->res.rc == 0, "call %d (%s) of a mixed batch: %s: %s", i, kinds[i], gx_err_name(j->res.rc),
              j->err.message);
        if (j->res.rc || strcmp(kinds[i], "saxpy")) continue;
        int64_t len = lens[i];
        double *ref = malloc(8 * (size_t)(len ? len : 1));
        for (int64_t e = 0; e < len; e++)
            ref[e] = j->args[0].value * gx_array_get_f64(j->in[0].array, e) + gx_array_get_f64(j->in[1].array, e);
        double r = rel_err(j->out[0], ref, len);
        CHECK(r <= 2e-5, "call %d (saxpy n=%lld) of a mixed batch: rel err %.3g", i, (long long)len, r);
        free(ref);
    }
    double sum = 0;
    for (int64_t e = 0; e < lens[2]; e++) sum += gx_array_get_f64(js[2].in[0].array, e);
    CHECK(rel_err(js[2].out[0], &sum, 1) <= 1e-12, "reduce_sum inside a mixed batch");
    for (int i = 0; i < N; i++) job_free(&js[i]);
}

/* A long spin whose job is cancelled returns GX_ECANCELED promptly. */
static void test_cancel(void) {
    cur_test = "cancel";
    job j;
    job_init(&j, "spin");
    job_arg(&j, "us", 5e6); /* 5 s */
    if (job_bind(&j)) abort();
    static volatile int flag = 1;
    j.c.cancel = &flag;
    j.c.dev_ctx = slot0;
    gx_kcall *cp = &j.c;
    double t0 = now_s();
    backend_run(slot0, &cp, &j.res, 1);
    double el = now_s() - t0;
    CHECK(j.res.rc == GX_ECANCELED && el < 0.1, "cancelled 5 s spin: %s after %.3f s", gx_err_name(j.res.rc), el);
    job_free(&j);
}

/* ---- slots in parallel -------------------------------------------------- */

typedef struct thr {
    int id, jobs, bad;
    int rc;
} thr;

static void *thr_main(void *arg) {
    thr *t = arg;
    void *slot = NULL;
    gx_error e;
    t->rc = be->slot_open(dev, t->id + 1, &slot, &e);
    if (t->rc) return NULL;
    for (int i = 0; i < t->jobs; i++) {
        job j;
        memset(&j, 0, sizeof j);
        j.k = gx_kernel_find("saxpy");
        int64_t len = 1024;
        gx_array *x = NULL, *y = NULL;
        gx_array_new1(GX_F32, len, &x, NULL);
        gx_array_new1(GX_F32, len, &y, NULL);
        for (int64_t k = 0; k < len; k++) {
            ((float *)x->data)[k] = (float)(k + i + t->id);
            ((float *)y->data)[k] = 0.5f;
        }
        job_arg(&j, "a", 2);
        job_in(&j, "x", x);
        job_in(&j, "y", y);
        job *jp = &j;
        run_jobs(slot, &jp, 1);
        if (j.res.rc || !j.out[0]) t->bad++;
        else
            for (int64_t k = 0; k < len; k++)
                if (((float *)j.out[0]->data)[k] != 2.0f * (float)(k + i + t->id) + 0.5f) {
                    t->bad++;
                    break;
                }
        job_free(&j);
    }
    be->slot_close(dev, slot);
    return NULL;
}

static void test_parallel_slots(int nthreads, int jobs) {
    cur_test = "parallel slots";
    pthread_t th[16];
    thr t[16];
    for (int i = 0; i < nthreads; i++) {
        t[i] = (thr){.id = i, .jobs = jobs};
        pthread_create(&th[i], NULL, thr_main, &t[i]);
    }
    int bad = 0, rc = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        bad += t[i].bad;
        rc |= t[i].rc;
    }
    CHECK(rc == 0 && bad == 0, "%d slots x %d saxpy jobs: rc %d, %d wrong", nthreads, jobs, rc, bad);
}

/* ---- OOM containment ------------------------------------------------------ */

static void test_oom(void) {
    cur_test = "oom";
    gx_device_telemetry t;
    be->telemetry(dev, &t);
    int64_t total = t.mem_total > 0 ? t.mem_total : (int64_t)80 << 30;
    /* two f64 arrays of 0.6 x device memory each: the second allocation
     * cannot succeed. Host memory is reserved, not touched (MAP_NORESERVE):
     * the backend allocates device memory before it copies. */
    int64_t count = (int64_t)(0.6 * (double)total / 8);
    size_t bytes = (size_t)count * 8;
    void *hx = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *hy = mmap(NULL, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(hx != MAP_FAILED && hy != MAP_FAILED, "mmap of %zu bytes failed", bytes);
    if (hx == MAP_FAILED || hy == MAP_FAILED) return;
    gx_array *x = NULL, *y = NULL;
    gx_array_wrap(GX_F64, 1, &count, hx, NULL, NULL, &x, NULL);
    gx_array_wrap(GX_F64, 1, &count, hy, NULL, NULL, &y, NULL);
    job j;
    job_init(&j, "saxpy");
    job_arg(&j, "a", 1);
    job_in(&j, "x", x);
    job_in(&j, "y", y);
    double t0 = now_s();
    run_jobs(slot0, (job *[]){&j}, 1);
    double el = now_s() - t0;
    CHECK(j.res.rc == GX_ETRANSIENT, "job of 2 x %.1f GB: got %s (%s), expected GX_ETRANSIENT",
          bytes / 1e9, gx_err_name(j.res.rc), j.err.message);
    printf("  oom: %s in %.3f s: %s\n", gx_err_name(j.res.rc), el, j.err.message);
    job_free(&j);
    munmap(hx, bytes);
    munmap(hy, bytes);
    int64_t in_use = -1, ooms = -1;
    void (*stats)(gx_backend_dev *, int64_t *, int64_t *, int64_t *) = NULL;
    *(void **)&stats = dlsym(plugin, "gx_cuda_mem_stats");
    if (stats) {
        stats(dev, &in_use, NULL, &ooms);
        CHECK(in_use == 0 && ooms >= 1, "after OOM: %lld bytes still accounted, %lld OOMs", (long long)in_use,
              (long long)ooms);
    }
    /* the next job runs */
    test_saxpy(GX_F32, 100000);
    test_gemm(GX_F32, 300, 200, 100, 0, 0, 0);
}

/* ---- scrub between tenants ------------------------------------------------ */

static int (*peek)(void *, size_t, int, void *);

static int64_t nonzero_bytes(const unsigned char *p, size_t n) {
    int64_t c = 0;
    for (size_t i = 0; i < n; i++) c += p[i] != 0;
    return c;
}

static void test_scrub(void) {
    cur_test = "scrub";
    if (!peek) {
        CHECK(0, "gx_cuda_debug_peek not exported");
        return;
    }
    size_t sz = 256 << 10;
    unsigned char *h = malloc(64u << 20);
    /* tenant A: a small job leaves its data in the slot's mirror */
    test_saxpy(GX_F32, 20000);
    cur_test = "scrub";
    CHECK(peek(slot0, sz, 0, h) == 0, "peek failed");
    int64_t before = nonzero_bytes(h, sz);
    CHECK(before > 0, "control: tenant A's data should be visible before scrub (saw none)");
    CHECK(be->scrub(dev, slot0) == 0, "scrub failed");
    CHECK(peek(slot0, sz, 0, h) == 0, "peek failed");
    int64_t after = nonzero_bytes(h, sz);
    CHECK(after == 0, "after scrub tenant B sees %lld nonzero bytes of %zu", (long long)after, sz);
    /* pool memory: a large job (64 MB arrays) frees blocks; reused blocks read 0 */
    test_saxpy(GX_F32, 16 << 20);
    cur_test = "scrub";
    CHECK(peek(slot0, 64u << 20, 1, h) == 0, "peek failed");
    after = nonzero_bytes(h, 64u << 20);
    CHECK(after == 0, "pool block reused by another job holds %lld nonzero bytes", (long long)after);
    free(h);
}

/* Every kernel against its reference, singly and in batches. */
static void run_kernel_tests(void) {
    for (int i = 0; i < 2; i++) {
        gx_dtype dt = i ? GX_F64 : GX_F32;
        test_saxpy(dt, 1);
        test_saxpy(dt, 4099);
        test_saxpy(dt, 3 << 20); /* through the pool and chunk buffers */
        test_reduce(dt, 1000003);
        test_gemm(dt, 128, 96, 64, 0, 0, 0);
        test_gemm(dt, 77, 130, 51, 1, 0, 1);
        test_gemm(dt, 64, 33, 200, 0, 1, 1);
        test_gemm(dt, 50, 60, 70, 1, 1, 0);
        test_sort(dt, 100003, 0, 1);
        test_sort(dt, 5000, 1, 1);
        test_histogram(dt, 1000000, 37);
        test_normalize(dt, 3000, 17);
        test_normalize(dt, 5, 300);
        test_filter(dt, 200001);
        test_mlp(dt, 64, 1, 0);
        test_mlp(dt, 33, 2, 1);
        test_mlp_relu_nan(dt);
        test_linreg(dt, 500, 8, 100);
    }
    test_reduce(GX_I32, 1000003);
    test_reduce(GX_I64, 4097);
    test_sort(GX_I32, 200000, 0, 1);
    test_sort(GX_I32, 70000, 1, 1);
    test_sort(GX_I64, 3000, 0, 0);
    test_histogram(GX_I32, 100000, 5);
    test_histogram(GX_F32, 2000000, 20000); /* global-memory path */
    test_filter(GX_I64, 1000);
    /* sizes past the 32 MB mirror: pool memory and the chunked copies */
    test_reduce(GX_F32, 20000000);
    test_sort(GX_F32, 5000000, 1, 1);
    test_histogram(GX_F64, 10000000, 1000);
    test_normalize(GX_F32, 1000000, 12);
    test_filter(GX_F32, 12000000);
    test_gemm(GX_F32, 1536, 2048, 1024, 0, 1, 1);
    test_mlp(GX_F32, 60000, 1, 1);
    test_mlp_deep();
    test_linreg(GX_F32, 200000, 16, 30);
    test_sort_special();
    test_reduce_overflow();
    test_normalize_constant();
    test_mixed_batch();
    test_saxpy_batch(300);
    test_normalize_batch(50);
    test_mlp_batch(64);
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : getenv("GX_CUDA_PLUGIN");
    if (!path) path = "./libgexec_cuda.so";
    const char *seed_env = getenv("GX_TEST_SEED");
    rng_state = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL) * 2654435761u + 1;
    if (!rng_state) rng_state = 1;
    printf("test_gpu: seed %llu (GX_TEST_SEED replays)\n", (unsigned long long)rng_state);

    /* declarations for kernels the catalog does not have yet */
    for (size_t i = 0; i < sizeof standins / sizeof standins[0]; i++)
        if (!gx_kernel_find(standins[i]->name)) gx_kernel_register(standins[i], NULL);
    cpu_as_gpu = getenv("GX_TEST_CPU_AS_GPU") && atoi(getenv("GX_TEST_CPU_AS_GPU"));
    if (cpu_as_gpu) {
        printf("CPU implementations in place of the GPU (GX_TEST_CPU_AS_GPU)\n");
        run_kernel_tests();
        printf("%d passed, %d failed\n", n_pass, n_fail);
        return n_fail ? 1 : 0;
    }

    void *lib = plugin = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        printf("FAIL: cannot load %s: %s\n0 passed, 1 failed\n", path, dlerror());
        return 1;
    }
    gx_backend_entry_fn entry = NULL;
    *(void **)&entry = dlsym(lib, GX_BACKEND_ENTRY_SYMBOL);
    *(void **)&peek = dlsym(lib, "gx_cuda_debug_peek");
    be = entry ? entry() : NULL;
    if (!be || be->abi_version != GX_BACKEND_ABI_VERSION || be->struct_size < sizeof(gx_backend)) {
        printf("FAIL: %s has no compatible %s\n0 passed, 1 failed\n", path, GX_BACKEND_ENTRY_SYMBOL);
        return 1;
    }
    gx_error err;
    gx_error_clear(&err);
    int ndev = be->init(&err);
    if (ndev == GX_ENODEVICE) {
        printf("skipped: no GPU (%s)\n", err.message);
        return 0;
    }
    if (ndev < 1) {
        printf("FAIL: init: %s: %s\n0 passed, 1 failed\n", gx_err_name(ndev), err.message);
        return 1;
    }
    gx_device_desc desc;
    int rc = be->device_open(0, &dev, &desc, &err);
    if (rc) {
        printf("FAIL: device_open: %s\n0 passed, 1 failed\n", err.message);
        return 1;
    }
    printf("device %s: %s, %s, cc %d.%d, %d SMs, %.1f GiB for jobs, %d slots (%d GPUs)\n", desc.name,
           desc.model, desc.uuid, desc.cc_major, desc.cc_minor, desc.sm_count, desc.mem_total / 1073741824.0,
           desc.slots, ndev);
    cur_test = "device";
    CHECK(desc.sm_count > 0 && desc.mem_total > 0 && desc.uuid[0] && desc.cc_major >= 7, "device description");
    char msg[256];
    rc = be->self_test(dev, msg, sizeof msg);
    cur_test = "self_test";
    CHECK(rc == 0, "self-test: %s", msg);
    printf("self-test: %s\n", msg);
    rc = be->slot_open(dev, 0, &slot0, &err);
    if (rc) {
        printf("FAIL: slot_open: %s\n%d passed, %d failed\n", err.message, n_pass, n_fail + 1);
        return 1;
    }
    run_kernel_tests();
    test_spin();
    test_cancel();
    test_parallel_slots(4, 300);
    test_scrub();
    test_oom();

    gx_device_telemetry t;
    cur_test = "telemetry";
    CHECK(be->telemetry(dev, &t) == 0, "telemetry");
    printf("telemetry: util %.0f%% mem %.1f/%.1f GiB temp %.0f C power %.0f W sm %.0f MHz mem %.0f MHz "
           "ecc %lld/%lld xid %lld pool %.1f MiB\n",
           t.util_pct, t.mem_used / 1073741824.0, t.mem_total / 1073741824.0, t.temp_c, t.power_w,
           t.sm_clock_mhz, t.mem_clock_mhz, (long long)t.ecc_corrected, (long long)t.ecc_uncorrected,
           (long long)t.xid_last, t.pool_reserved / 1048576.0);
    CHECK(t.mem_total > 0 && t.mem_used > 0, "telemetry memory");

    be->slot_close(dev, slot0);
    be->device_close(dev);
    for (int i = 0; i < 2; i++) gx_array_unref(ckpt_state[i]);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
