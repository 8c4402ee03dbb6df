/*
 * bench_gpu.c - the CUDA backend against its references, one table:
 *
 *   saxpy on 256M floats (GB/s, bytes read + written) vs a device-to-device
 *     cudaMemcpy measured in the same run (target >= 90%);
 *   gemm 8192^3 in f32, tf32 and bf16 math (TFLOP/s) vs cuBLAS called
 *     directly with the same math (target within 5%);
 *   4 KB saxpy jobs through run_batch (host arrays in, host arrays out) on
 *     4 slots, one job per call and 64 per call (jobs/s, p50/p99 latency) vs
 *     the same jobs through PyTorch (bench/gpu/torch_peer.py; its results
 *     file is passed with --torch FILE) (targets 100k and 400k jobs/s).
 *
 * Links the backend's objects directly (one CUDA runtime in the process).
 * Without a GPU it prints "skipped: no GPU" and exits 0. Medians of timed
 * repeats after warm-ups; inputs are random, never zeros.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_int.h"
#include "exec/registry_int.h"
#include "gexec/gexec.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

#define CU(x)                                                                          \
    do {                                                                               \
        cudaError_t e_ = (x);                                                          \
        if (e_) {                                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* ---- the table ------------------------------------------------------------ */

typedef struct row {
    char metric[64];
    double gexec, ref;
    char unit[16];
    double target; /* ratio target, or absolute when abs_target */
    int abs_target;
    int higher_better;
} row;
static row rows[32];
static int nrows;

static void add_row(const char *m, const char *unit, double g, double r, double target, int abs_target) {
    row *w = &rows[nrows++];
    snprintf(w->metric, sizeof w->metric, "%s", m);
    snprintf(w->unit, sizeof w->unit, "%s", unit);
    w->gexec = g;
    w->ref = r;
    w->target = target;
    w->abs_target = abs_target;
    w->higher_better = 1;
}

static void fmt(char *b, size_t n, double v) {
    if (!(v == v) || v < 0) snprintf(b, n, "-");
    else if (v >= 1e5) snprintf(b, n, "%.0fk", v / 1e3);
    else if (v >= 100) snprintf(b, n, "%.0f", v);
    else snprintf(b, n, "%.2f", v);
}

static void print_table(void) {
    printf("\n%-44s | %9s | %9s | %6s | %9s | %s\n", "metric", "gexec", "reference", "ratio", "target", "met");
    printf("---------------------------------------------+-----------+-----------+--------+-----------+----\n");
    for (int i = 0; i < nrows; i++) {
        row *w = &rows[i];
        char g[32], r[32], t[48], ra[32], m[128];
        fmt(g, sizeof g, w->gexec);
        fmt(r, sizeof r, w->ref);
        double ratio = w->ref > 0 ? w->gexec / w->ref : -1;
        if (ratio > 0) snprintf(ra, sizeof ra, "%.2f", ratio);
        else snprintf(ra, sizeof ra, "-");
        const char *met = "-";
        if (w->target > 0) {
            int ok = w->abs_target ? w->gexec >= w->target : ratio >= w->target;
            met = ok ? "yes" : "NO";
            if (w->abs_target) {
                char tv[24];
                fmt(tv, sizeof tv, w->target);
                snprintf(t, sizeof t, ">=%s", tv);
            } else {
                snprintf(t, sizeof t, ">=%.2fx", w->target);
            }
        } else {
            snprintf(t, sizeof t, "-");
        }
        snprintf(m, sizeof m, "%.63s (%.15s)", w->metric, w->unit);
        printf("%-44s | %9s | %9s | %6s | %9s | %s\n", m, g, r, ra, t, met);
    }
}

/* ---- torch peer results (key=value lines) ------------------------------- */

static double torch_val(const char *file, const char *key) {
    if (!file) return -1;
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char line[256];
    double v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == '=') v = atof(line + kl + 1);
    fclose(f);
    return v;
}

/* ---- device-level: saxpy bandwidth and gemm ----------------------------- */

/* Median times (ms) of two alternatives, timed alternately with events so
 * that clock and temperature drift falls on both alike. */
static void time_pair(cudaStream_t s, int warm, int reps, void (*fa)(void *), void *aa,
                      void (*fb)(void *), void *ab, double *ms_a, double *ms_b) {
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int i = 0; i < warm; i++) {
        fa(aa);
        fb(ab);
    }
    double *t = malloc(sizeof(double) * 2 * (size_t)reps);
    for (int i = 0; i < 2 * reps; i++) {
        int b = (i & 1) ^ ((i >> 1) & 1); /* A B B A A B ... */
        CU(cudaEventRecord(e0, s));
        if (b) fb(ab);
        else fa(aa);
        CU(cudaEventRecord(e1, s));
        CU(cudaEventSynchronize(e1));
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        t[b * reps + i / 2] = ms;
    }
    *ms_a = pct(t, reps, 0.5);
    *ms_b = pct(t + reps, reps, 0.5);
    free(t);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
}

typedef struct bw_arg {
    cudaStream_t s;
    int64_t n;
    float *x, *y, *o;
} bw_arg;
static void run_saxpy(void *p) {
    bw_arg *a = p;
    CU(gxk_saxpy(a->s, GX_F32, a->n, 1.5, a->x, a->y, a->o));
}
static void run_copy(void *p) {
    bw_arg *a = p;
    CU(cudaMemcpyAsync(a->o, a->x, (size_t)a->n * 4, cudaMemcpyDeviceToDevice, a->s));
}

static void bench_bandwidth(void) {
    bw_arg a;
    a.n = (int64_t)256 << 20;
    CU(cudaStreamCreateWithFlags(&a.s, cudaStreamNonBlocking));
    CU(cudaMalloc((void **)&a.x, (size_t)a.n * 4));
    CU(cudaMalloc((void **)&a.y, (size_t)a.n * 4));
    CU(cudaMalloc((void **)&a.o, (size_t)a.n * 4));
    CU(gxk_fill_rand_f32(a.s, a.n, a.x, 1));
    CU(gxk_fill_rand_f32(a.s, a.n, a.y, 2));
    double ms_s, ms_c, ms_s2, ms_c2;
    time_pair(a.s, 3, 20, run_saxpy, &a, run_copy, &a, &ms_s, &ms_c);
    time_pair(a.s, 0, 20, run_saxpy, &a, run_copy, &a, &ms_s2, &ms_c2); /* again: spread */
    /* check a few elements */
    float hx[4], hy[4], ho[4];
    CU(gxk_saxpy(a.s, GX_F32, a.n, 1.5, a.x, a.y, a.o));
    CU(cudaMemcpyAsync(hx, a.x + a.n - 4, 16, cudaMemcpyDeviceToHost, a.s));
    CU(cudaMemcpyAsync(hy, a.y + a.n - 4, 16, cudaMemcpyDeviceToHost, a.s));
    CU(cudaMemcpyAsync(ho, a.o + a.n - 4, 16, cudaMemcpyDeviceToHost, a.s));
    CU(cudaStreamSynchronize(a.s));
    int ok = 1;
    for (int i = 0; i < 4; i++) ok &= fabsf(ho[i] - (1.5f * hx[i] + hy[i])) <= 1e-6f * (1 + fabsf(ho[i]));
    double gbs = 3.0 * a.n * 4 / (ms_s * 1e-3) / 1e9, gbc = 2.0 * a.n * 4 / (ms_c * 1e-3) / 1e9;
    printf("saxpy 256M f32: %.3f ms (repeat %.3f) = %.0f GB/s; D2D copy 1 GiB: %.3f ms (repeat %.3f) = %.0f GB/s; "
           "check %s\n",
           ms_s, ms_s2, gbs, ms_c, ms_c2, gbc, ok ? "ok" : "WRONG");
    add_row("saxpy 256M f32 vs D2D copy", "GB/s", ok ? gbs : 0, gbc, 0.90, 0);
    cudaFree(a.x);
    cudaFree(a.y);
    cudaFree(a.o);
    cudaStreamDestroy(a.s);
}

typedef struct gemm_arg {
    cublasHandle_t h;
    int mode, direct;
    int64_t n;
    void *a, *b, *c;
} gemm_arg;

static void run_gemm(void *p) {
    gemm_arg *g = p;
    int st;
    if (!g->direct) {
        st = gx_cuda_gemm_dev(g->h, GX_F32, g->mode, 0, 0, g->n, g->n, g->n, 1.0, g->a, g->b, 0.0, g->c);
    } else {
        float one = 1, zero = 0;
        cublasComputeType_t ct = g->mode == 1   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                 : g->mode == 2 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                                : CUBLAS_COMPUTE_32F;
        int n = (int)g->n;
        st = cublasGemmEx(g->h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, g->a, CUDA_R_32F, n, g->b, CUDA_R_32F, n,
                          &zero, g->c, CUDA_R_32F, n, ct, CUBLAS_GEMM_DEFAULT);
    }
    if (st) {
        fprintf(stderr, "gemm failed: %d\n", st);
        exit(1);
    }
}

static void bench_gemm(int64_t n) {
    cudaStream_t s;
    cublasHandle_t h;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    if (cublasCreate(&h) || cublasSetStream(h, s)) {
        fprintf(stderr, "cublasCreate failed\n");
        exit(1);
    }
    float *a, *b, *c;
    size_t bytes = (size_t)(n * n) * 4;
    CU(cudaMalloc((void **)&a, bytes));
    CU(cudaMalloc((void **)&b, bytes));
    CU(cudaMalloc((void **)&c, bytes));
    CU(gxk_fill_rand_f32(s, n * n, a, 3));
    CU(gxk_fill_rand_f32(s, n * n, b, 4));
    const char *names[3] = {"f32", "tf32", "bf16"};
    double flop = 2.0 * n * n * n;
    for (int mode = 0; mode < 3; mode++) {
        gemm_arg g = {h, mode, 0, n, a, b, c}, r = {h, mode, 1, n, a, b, c};
        int reps = mode == 0 ? 8 : 20;
        double t_g, t_r;
        time_pair(s, 2, reps, run_gemm, &g, run_gemm, &r, &t_g, &t_r);
        char m[64];
        snprintf(m, sizeof m, "gemm %lld^3 %s vs cuBLAS", (long long)n, names[mode]);
        add_row(m, "TFLOP/s", flop / (t_g * 1e-3) / 1e12, flop / (t_r * 1e-3) / 1e12, 0.95, 0);
        printf("gemm %s: gexec %.3f ms, cuBLAS direct %.3f ms\n", names[mode], t_g, t_r);
    }
    cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cudaStreamDestroy(s);
}

/* ---- small jobs through run_batch --------------------------------------- */

static const gx_backend *be;
static gx_backend_dev *dev;

static const gx_arg_spec a_saxpy[] = {{.name = "a", .type = GX_ARG_FLOAT, .def = 1, .min = -1e300, .max = 1e300}};
static const gx_io_spec i_saxpy[] = {{.name = "x", .dtypes = GX_DTM_FLOAT, .rank = -1},
                                     {.name = "y", .dtypes = GX_DTM_FLOAT, .rank = -1}};
static const gx_io_spec o_saxpy[] = {{.name = "y", .dtypes = GX_DTM_FLOAT, .rank = -1}};
static const gx_kernel standin_saxpy = {
    .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel), .name = "saxpy", .version = 1,
    .args = a_saxpy, .nargs = 1, .inputs = i_saxpy, .ninputs = 2, .outputs = o_saxpy, .noutputs = 1,
    .flags = GX_KF_BATCHABLE};

#define SJ_ELEMS 1024 /* 4 KB of f32 */
#define SJ_SETS 64

typedef struct sj_thread {
    int id, batch;
    double seconds;
    /* results */
    int64_t jobs;
    double *lat; /* per call (per batch when batched), us */
    int nlat, caplat;
    int bad, rc;
} sj_thread;

static void *sj_main(void *p) {
    sj_thread *t = p;
    void *slot = NULL;
    gx_error err;
    gx_error_clear(&err);
    t->rc = be->slot_open(dev, t->id, &slot, &err);
    if (t->rc) {
        fprintf(stderr, "slot_open: %s\n", err.message);
        return NULL;
    }
    const gx_kernel *k = gx_kernel_find("saxpy");
    int B = t->batch;
    int nsets = SJ_SETS > B ? SJ_SETS : B;
    /* bound calls prepared up front (the engine binds at submit) */
    gx__bound *bd = calloc((size_t)nsets, sizeof *bd);
    gx_kcall *calls = calloc((size_t)nsets, sizeof *calls);
    gx_array **outs = calloc((size_t)nsets, sizeof *outs);
    gx_error *errs = calloc((size_t)nsets, sizeof *errs);
    gx_kcall **cp = calloc((size_t)B, sizeof *cp);
    gx_call_result *res = calloc((size_t)B, sizeof *res);
    for (int i = 0; i < nsets; i++) {
        gx_array *x, *y;
        gx_array_new1(GX_F32, SJ_ELEMS, &x, NULL);
        gx_array_new1(GX_F32, SJ_ELEMS, &y, NULL);
        for (int e = 0; e < SJ_ELEMS; e++) {
            ((float *)x->data)[e] = (float)(e % 97) * 0.25f + (float)i;
            ((float *)y->data)[e] = 1.0f + (float)(e % 13);
        }
        gx_named_arg a = {.name = "a", .value = 2.0};
        gx_named_input in[2] = {{"x", x}, {"y", y}};
        if (gx__bind(k, &a, 1, in, 2, &bd[i], &errs[i])) {
            fprintf(stderr, "bind: %s\n", errs[i].message);
            exit(1);
        }
        gx_array_unref(x);
        gx_array_unref(y);
        gx__kcall_init(&calls[i], k, &bd[i], &outs[i], &errs[i]);
        calls[i].device = 0;
        calls[i].dev_ctx = slot;
    }
    t->caplat = 1 << 20;
    t->lat = malloc(sizeof(double) * (size_t)t->caplat);
    /* warm-up, then timed */
    for (int phase = 0; phase < 2; phase++) {
        double t_end = now_s() + (phase ? t->seconds : 0.2);
        int64_t jobs = 0;
        int next = 0;
        t->nlat = 0;
        while (now_s() < t_end) {
            for (int b = 0; b < B; b++) {
                cp[b] = &calls[next];
                next = (next + 1) % nsets;
            }
            double t0 = now_s();
            be->run_batch(dev, slot, cp, res, B);
            double el = (now_s() - t0) * 1e6;
            for (int b = 0; b < B; b++) {
                gx_array **o = cp[b]->out;
                if (res[b].rc || !o[0]) {
                    t->bad++;
                } else if (jobs < 4096) { /* spot-check early outputs */
                    const float *xv = cp[b]->in_all[0]->data, *yv = cp[b]->in_all[1]->data;
                    const float *ov = o[0]->data;
                    for (int e = 0; e < SJ_ELEMS; e += 97)
                        if (ov[e] != 2.0f * xv[e] + yv[e]) {
                            t->bad++;
                            break;
                        }
                }
                gx_array_unref(o[0]);
                o[0] = NULL;
            }
            if (t->nlat < t->caplat) t->lat[t->nlat++] = el;
            jobs += B;
        }
        t->jobs = jobs;
    }
    for (int i = 0; i < nsets; i++) gx__bound_free(&bd[i]);
    free(bd);
    free(calls);
    free(outs);
    free(errs);
    free(cp);
    free(res);
    be->slot_close(dev, slot);
    return NULL;
}

typedef struct sj_result {
    double jobs_s, p50, p99;
    int bad;
} sj_result;

static sj_result bench_small(int threads, int batch, double seconds) {
    pthread_t th[16];
    sj_thread t[16];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) {
        t[i] = (sj_thread){.id = i, .batch = batch, .seconds = seconds};
        pthread_create(&th[i], NULL, sj_main, &t[i]);
    }
    int64_t jobs = 0;
    int nl = 0, bad = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        jobs += t[i].jobs;
        nl += t[i].nlat;
        bad += t[i].bad + (t[i].rc != 0);
    }
    (void)t0;
    double *all = malloc(sizeof(double) * (size_t)(nl ? nl : 1));
    int o = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + o, t[i].lat, sizeof(double) * (size_t)t[i].nlat);
        o += t[i].nlat;
        free(t[i].lat);
    }
    sj_result r = {jobs / seconds, nl ? pct(all, nl, 0.5) : -1, nl ? pct(all, nl, 0.99) : -1, bad};
    free(all);
    printf("4KB saxpy, %d slot%s, %d per call: %.0f jobs/s, call latency p50 %.1f us p99 %.1f us%s\n", threads,
           threads > 1 ? "s" : "", batch, r.jobs_s, r.p50, r.p99, bad ? " (ERRORS)" : "");
    return r;
}

/* ---- main ----------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *torch = NULL;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--torch") && i + 1 < argc) torch = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
    }
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("bench_gpu: skipped: no GPU\n");
        return 0;
    }
    if (!gx_kernel_find("saxpy")) gx_kernel_register(&standin_saxpy, NULL);
    be = gx_backend_entry();
    gx_error err;
    gx_error_clear(&err);
    if (be->init(&err) < 1 || be->device_open(0, &dev, &(gx_device_desc){0}, &err)) {
        printf("bench_gpu: backend failed: %s\n", err.message);
        return 1;
    }
    struct cudaDeviceProp p;
    CU(cudaGetDeviceProperties(&p, 0));
    printf("bench_gpu on %s (%d SMs)\n", p.name, p.multiProcessorCount);

    bench_bandwidth();
    bench_gemm(quick ? 4096 : 8192);

    double secs = quick ? 0.5 : 1.5;
    sj_result u1 = bench_small(1, 1, secs);
    sj_result u4 = bench_small(4, 1, secs);
    sj_result b4 = bench_small(4, 64, secs);
    (void)u1;
    double tu = torch_val(torch, "unbatched_jobs_s"), tb = torch_val(torch, "batched_jobs_s");
    double tu50 = torch_val(torch, "unbatched_p50_us"), tu99 = torch_val(torch, "unbatched_p99_us");
    double tb50 = torch_val(torch, "batched_p50_us"), tb99 = torch_val(torch, "batched_p99_us");
    add_row("4KB saxpy jobs, 1 slot, unbatched", "jobs/s", u1.bad ? 0 : u1.jobs_s, torch_val(torch, "unbatched1_jobs_s"), 0, 0);
    add_row("4KB saxpy jobs, 4 slots, unbatched", "jobs/s", u4.bad ? 0 : u4.jobs_s, tu, 100000, 1);
    add_row("  p50 latency per job", "us", u4.p50, tu50, 0, 0);
    add_row("  p99 latency per job", "us", u4.p99, tu99, 0, 0);
    add_row("4KB saxpy jobs, 4 slots, 64 per launch", "jobs/s", b4.bad ? 0 : b4.jobs_s, tb, 400000, 1);
    add_row("  p50 latency per batch of 64", "us", b4.p50, tb50, 0, 0);
    add_row("  p99 latency per batch of 64", "us", b4.p99, tb99, 0, 0);
    print_table();
    printf("(reference: D2D copy / cuBLAS direct / PyTorch on the same GPU in the same run; "
           "latency rows are lower-is-better, no target)\n");
    be->device_close(dev);
    return (u1.bad || u4.bad || b4.bad) ? 1 : 0;
}
