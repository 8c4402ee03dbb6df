/*
 * bench_recovery.c - how long a device is out after a fault: an injected
 * device fault (on a GPU a real illegal-address write, which needs
 * cudaDeviceReset) on the first GPU, timed from the faulting launch to the
 * first job that succeeds on that device again; the engine's own
 * fault -> healthy time (last_recovery_seconds) beside it. Goal on the
 * H100: <= 2 s (docs/device-health.md).
 *
 *   bench_recovery [path/to/libgexec_cuda.so] [rounds]
 *
 * Without a GPU it measures the CPU device instead and says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gexec/gexec.h"
#include "gexec/gexec_fault.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 2;
    o.hang_grace_ms = 1000;
    if (argc > 1 && argv[1][0]) o.cuda_plugin = argv[1];
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    if (rounds < 1 || rounds > 1000) rounds = 10;
    gx_engine *e;
    gx_error err;
    if (gx_engine_create(&o, &e, &err)) {
        printf("engine: %s\n", err.message);
        return 1;
    }
    int g = 0;
    const char *dev = "cpu";
    for (int i = 0; i < gx_device_count(e); i++) {
        gx_device_info d;
        gx_device_get(e, i, &d);
        if (d.kind == GX_DEV_CUDA) {
            g = i;
            dev = "gpu:0";
            break;
        }
    }
    gx_device_info di;
    gx_device_get(e, g, &di);
    printf("device %s (%s); %s\n", di.name, di.model, g ? "real illegal address" : "no GPU: CPU device, injected fault");
    double *wall = calloc((size_t)rounds, sizeof *wall), *eng = calloc((size_t)rounds, sizeof *eng);
    gx_named_arg us = {.name = "us", .value = 0};
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        gx_fault_spec f = {.point = GX_FAULT_DEVICE_LAUNCH, .device = g, .count = 1, .code = 700};
        gx_fault_arm(&f, &err);
        gx_job_spec s;
        gx_job_spec_init(&s);
        s.kernel = "spin";
        s.args = &us;
        s.nargs = 1;
        s.device = dev;
        gx_job_id id;
        int64_t t0 = now_ns();
        if (gx_submit(e, &s, &id, NULL, &err)) {
            printf("submit: %s\n", err.message);
            return 1;
        }
        /* the faulted job is re-run on the same device: its success is the
         * first success there after the fault */
        int state = -1;
        gx_job_wait(e, id, 60000, &state);
        gx_job_info in;
        gx_job_get(e, id, &in, NULL);
        wall[r] = (double)(now_ns() - t0) / 1e9;
        if (state != GX_JOB_SUCCEEDED || in.attempts < 2) bad++;
        for (int k = 0; k < 2000; k++) { /* the engine's own figure */
            gx_device_get(e, g, &di);
            if (di.recoveries > r) break;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        eng[r] = di.last_recovery_s;
    }
    qsort(wall, (size_t)rounds, sizeof *wall, cmp);
    qsort(eng, (size_t)rounds, sizeof *eng, cmp);
    printf("metric                                     min      p50      max\n");
    printf("recovery: fault -> first success (s) %8.4f %8.4f %8.4f\n", wall[0], wall[rounds / 2], wall[rounds - 1]);
    printf("recovery: fault -> healthy (s)       %8.4f %8.4f %8.4f\n", eng[0], eng[rounds / 2], eng[rounds - 1]);
    printf("recovery: %d rounds on %s, %d not re-run to success, %lld recoveries\n", rounds, di.name, bad,
           (long long)di.recoveries);
    free(wall);
    free(eng);
    gx_engine_destroy(e);
    return bad ? 1 : 0;
}
