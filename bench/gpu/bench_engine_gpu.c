/*
 * bench_engine_gpu.c - 4 KB saxpy jobs (1024 f32) through the whole engine
 * on one GPU: submit -> schedule -> place -> CUDA backend -> complete.
 * Unbatched (one job per launch) and batched (up to 64 jobs fused into one
 * launch); jobs/s and p50/p99 latency from submit to completion. Prints
 * table rows in the format of scripts/gpu-check. Median of 3 runs.
 *
 *   bench_engine_gpu path/to/libgexec_cuda.so [torch-jobs-per-s] [--quick]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gexec/gexec.h"

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct res {
    double jobs_s, p50_us, p99_us;
} res;

static res run(const char *plugin, int max_batch, int n, int submit_batch) {
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 1;
    o.cuda_plugin = plugin;
    o.gpu_max_batch = max_batch;
    gx_engine *e;
    gx_error err;
    res r = {0, 0, 0};
    if (gx_engine_create(&o, &e, &err)) {
        fprintf(stderr, "engine: %s\n", err.message);
        return r;
    }
    int64_t len = 1024;
    gx_array *x, *y;
    gx_array_new(GX_F32, 1, &len, &x, NULL);
    gx_array_new(GX_F32, 1, &len, &y, NULL);
    for (int i = 0; i < len; i++) ((float *)x->data)[i] = (float)i, ((float *)y->data)[i] = 1;
    gx_named_arg a = {.name = "a", .value = 2};
    gx_named_input in[] = {{"x", x}, {"y", y}};
    gx_job_spec *specs = calloc((size_t)submit_batch, sizeof *specs);
    gx_job_id *ids = calloc((size_t)n, sizeof *ids);
    int *codes = calloc((size_t)submit_batch, sizeof *codes);
    for (int i = 0; i < submit_batch; i++) {
        gx_job_spec_init(&specs[i]);
        specs[i].kernel = "saxpy";
        specs[i].args = &a;
        specs[i].nargs = 1;
        specs[i].inputs = in;
        specs[i].ninputs = 2;
        specs[i].device = "gpu";
    }
    /* warm up: pools, cuBLAS handles, first launches */
    gx_submit_batch(e, specs, (size_t)submit_batch, ids, codes, NULL);
    gx_engine_drain(e, 60000);
    for (int i = 0; i < submit_batch; i++) gx_job_forget(e, ids[i]);
    int64_t t0 = now_ns();
    for (int done = 0; done < n; done += submit_batch) {
        int k = n - done < submit_batch ? n - done : submit_batch;
        if (gx_submit_batch(e, specs, (size_t)k, ids + done, codes, NULL) != k) {
            fprintf(stderr, "submit refused: %s\n", gx_err_name(codes[0]));
            break;
        }
    }
    gx_engine_drain(e, 600000);
    double secs = (double)(now_ns() - t0) / 1e9;
    gx_engine_stats st;
    gx_engine_stats_get(e, &st);
    double *lat = calloc((size_t)n, sizeof *lat);
    int nl = 0;
    for (int i = 0; i < n; i += 13) {
        gx_job_info info;
        if (!gx_job_get(e, ids[i], &info, NULL) && info.state == GX_JOB_SUCCEEDED)
            lat[nl++] = (double)(info.end_ns - info.start_ns + info.queue_ns) / 1e3;
    }
    qsort(lat, (size_t)nl, sizeof *lat, cmp_d);
    r.jobs_s = (double)n / secs;
    r.p50_us = nl ? lat[nl / 2] : 0;
    r.p99_us = nl ? lat[nl * 99 / 100] : 0;
    if (st.failed) fprintf(stderr, "%lld jobs failed\n", (long long)st.failed);
    free(lat);
    free(specs);
    free(ids);
    free(codes);
    gx_array_unref(x);
    gx_array_unref(y);
    gx_engine_destroy(e);
    return r;
}

static res median3(const char *plugin, int max_batch, int n, int sb) {
    res v[3];
    for (int i = 0; i < 3; i++) v[i] = run(plugin, max_batch, n, sb);
    double j[3] = {v[0].jobs_s, v[1].jobs_s, v[2].jobs_s};
    qsort(j, 3, sizeof j[0], cmp_d);
    for (int i = 0; i < 3; i++)
        if (v[i].jobs_s == j[1]) return v[i];
    return v[1];
}

int main(int argc, char **argv) {
    const char *plugin = argc > 1 ? argv[1] : NULL;
    double torch = argc > 2 ? atof(argv[2]) : 0;
    int quick = argc > 3 && !strcmp(argv[3], "--quick");
    int n = quick ? 100000 : 400000;
    /* is there a GPU at all? */
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 1;
    o.cuda_plugin = plugin;
    gx_engine *e;
    if (gx_engine_create(&o, &e, NULL)) return 1;
    int ngpu = gx_device_count(e) - 1;
    printf("engine: %s\n", gx_engine_gpu_status(e));
    gx_engine_destroy(e);
    if (ngpu < 1) {
        printf("skipped: no GPU\n");
        return 0;
    }
    res u = median3(plugin, 1, n / 2, 1000);
    res b = median3(plugin, 64, n, 10000);
    char ref[32] = "-", ru[32] = "-", rb[32] = "-";
    if (torch > 0) {
        snprintf(ref, sizeof ref, "%.0f", torch);
        snprintf(ru, sizeof ru, "%.2f", u.jobs_s / torch);
        snprintf(rb, sizeof rb, "%.2f", b.jobs_s / torch);
    }
    printf("%-44s | %9.0f | %9s | %6s | %9s | %s\n", "engine 4KB saxpy jobs, unbatched (jobs/s)", u.jobs_s, ref, ru,
           ">=100k", u.jobs_s >= 100000 ? "yes" : "no");
    printf("%-44s | %4.0f/%-4.0f | %9s | %6s | %9s | %s\n", "  p50 / p99 submit->done (us)", u.p50_us, u.p99_us, "", "",
           "", "");
    printf("%-44s | %9.0f | %9s | %6s | %9s | %s\n", "engine 4KB saxpy jobs, batched <=64 (jobs/s)", b.jobs_s, ref, rb,
           ">=400k", b.jobs_s >= 400000 ? "yes" : "no");
    printf("%-44s | %4.0f/%-4.0f | %9s | %6s | %9s | %s\n", "  p50 / p99 submit->done (us)", b.p50_us, b.p99_us, "", "",
           "", "");
    if (torch > 0)
        printf("%-44s | %9.1fx | %9s | %6s | %9s | %s\n", "engine batched vs best PyTorch round trip", b.jobs_s / torch,
               "", "", ">=10x", b.jobs_s >= 10 * torch ? "yes" : "no");
    return 0;
}
