/*
 * bench_metrics.c - cost of the metrics hot path and of a scrape (make bench).
 *
 *  - ns per counter increment through a pre-resolved handle, 1 and 2
 *    threads on one series (contended line) and 2 threads on two series;
 *  - ns per lookup + increment (gx_metrics_series every time, 2 labels),
 *    what instrumentation pays when it does not keep the handle;
 *  - ns per histogram observe (17 latency buckets), 1 and 2 threads;
 *  - render time and size for 1000 counter series and 1000 histogram series.
 *
 * Every figure is the median of GX_BENCH_REPS runs (default 3);
 * GX_BENCH_SCALE < 1 shortens the loops.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gexec/gexec_metrics.h"
#include "benchutil.h"

static void die(const char *what, const gx_error *err) {
    fprintf(stderr, "bench_metrics: %s: %s\n", what, err ? err->message : "failed");
    exit(1);
}

typedef enum op { OP_INC, OP_LOOKUP_INC, OP_OBSERVE } op;

typedef struct job {
    op what;
    gx_metric_series *s;
    gx_metric_family *f;
    long n;
    pthread_barrier_t *start;
} job;

static void *run(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    switch (j->what) {
    case OP_INC:
        for (long i = 0; i < j->n; i++) gx_counter_inc(j->s);
        break;
    case OP_LOOKUP_INC:
        for (long i = 0; i < j->n; i++)
            gx_counter_inc(gx_metrics_series(j->f, "POST /v1/jobs", "202"));
        break;
    case OP_OBSERVE:
        /* Values spread over the buckets, 10us to ~5s. */
        for (long i = 0; i < j->n; i++)
            gx_hist_observe(j->s, 1e-5 * (double)(1 + (i & 1023) * 500));
        break;
    }
    return NULL;
}

/* ns per operation with nthreads threads each doing n ops on s[t]. */
static double time_ops(op what, int nthreads, gx_metric_series **s, gx_metric_family *f, long n) {
    pthread_t th[2];
    job jobs[2];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (job){what, s[t], f, n, &start};
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    pthread_barrier_wait(&start);
    int64_t t0 = gx__now_ns();
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
    int64_t dt = gx__now_ns() - t0;
    pthread_barrier_destroy(&start);
    return (double)dt / (double)n; /* wall time per op of one thread */
}

static double bench_ops(op what, int nthreads, bool shared, long n) {
    int r = bench_reps();
    double v[32];
    for (int k = 0; k < r && k < 32; k++) {
        gx_metrics *reg;
        gx_error err;
        gx_metric_family *f;
        if (gx_metrics_new(&reg)) die("registry", NULL);
        int rc = what == OP_OBSERVE
                     ? gx_metrics_histogram(reg, "b_seconds", "Bench.", "route", NULL, 0, &f, &err)
                     : gx_metrics_counter(reg, "b_total", "Bench.", "route,status", &f, &err);
        if (rc) die("register", &err);
        gx_metric_series *s[2];
        for (int t = 0; t < 2; t++) {
            const char *route = shared || t == 0 ? "POST /v1/jobs" : "GET /v1/jobs";
            s[t] = what == OP_OBSERVE ? gx_metrics_series(f, route)
                                      : gx_metrics_series(f, route, "202");
        }
        v[k] = time_ops(what, nthreads, s, f, n);
        double want = (double)n * nthreads;
        double got = gx_metric_value(s[0]) + (shared ? 0 : gx_metric_value(s[1]));
        if (got != want) {
            fprintf(stderr, "bench_metrics: lost updates (%.0f of %.0f)\n", got, want);
            exit(1);
        }
        gx_metrics_free(reg);
    }
    return bench_median(v, r < 32 ? r : 32);
}

/* Render of 1000 series of one kind: median microseconds of the first
 * render of a fresh registry (cold caches, buffer growth) in the return
 * value, of a later one in *warm, and the bytes. */
static double bench_render(gx_metric_type type, double *warm, size_t *bytes) {
    int r = bench_reps();
    double v[32], w[32];
    for (int k = 0; k < r && k < 32; k++) {
        gx_metrics *reg;
        gx_error err;
        gx_metric_family *f;
        if (gx_metrics_new(&reg)) die("registry", NULL);
        int rc =
            type == GX_METRIC_HISTOGRAM
                ? gx_metrics_histogram(reg, "b_request_seconds", "Bench.", "tenant,route", NULL, 0,
                                       &f, &err)
                : gx_metrics_counter(reg, "b_requests_total", "Bench.", "tenant,route", &f, &err);
        if (rc) die("register", &err);
        for (int i = 0; i < 1000; i++) {
            char tenant[32], route[32];
            snprintf(tenant, sizeof tenant, "tenant-%03d", (i * 7919) % 100);
            snprintf(route, sizeof route, "/v1/route/%d", i);
            gx_metric_series *s = gx_metrics_series(f, tenant, route);
            if (type == GX_METRIC_HISTOGRAM)
                gx_hist_observe(s, 0.001 * i);
            else
                gx_counter_add(s, i * 1000.0); /* whole counts, as request totals are */
        }
        for (int pass = 0; pass < 2; pass++) {
            char *buf;
            int64_t t0 = gx__now_ns();
            if (gx_metrics_render(reg, &buf, bytes)) die("render", NULL);
            (pass ? w : v)[k] = (double)(gx__now_ns() - t0) / 1e3;
            free(buf);
        }
        gx_metrics_free(reg);
    }
    *warm = bench_median(w, r < 32 ? r : 32);
    return bench_median(v, r < 32 ? r : 32);
}

int main(void) {
    long n = (long)(20000000 * bench_scale());
    if (n < 1000) n = 1000;
    printf("metrics hot path (median of %d runs, %ld ops per thread)\n", bench_reps(), n);
    printf("%-44s %10s\n", "operation", "ns/op/thr");
    printf("%-44s %10.2f\n", "counter inc, 1 thread", bench_ops(OP_INC, 1, true, n));
    printf("%-44s %10.2f\n", "counter inc, 2 threads, same series", bench_ops(OP_INC, 2, true, n));
    printf("%-44s %10.2f\n", "counter inc, 2 threads, own series", bench_ops(OP_INC, 2, false, n));
    printf("%-44s %10.2f\n", "lookup (2 labels) + counter inc, 1 thread",
           bench_ops(OP_LOOKUP_INC, 1, true, n / 10));
    printf("%-44s %10.2f\n", "lookup (2 labels) + counter inc, 2 threads",
           bench_ops(OP_LOOKUP_INC, 2, true, n / 10));
    printf("%-44s %10.2f\n", "histogram observe (17 buckets), 1 thread",
           bench_ops(OP_OBSERVE, 1, true, n));
    printf("%-44s %10.2f\n", "histogram observe, 2 threads, same series",
           bench_ops(OP_OBSERVE, 2, true, n));
    printf("\nrender (median of %d runs)\n", bench_reps());
    printf("%-44s %10s %10s %10s\n", "registry", "first us", "again us", "bytes");
    size_t bytes;
    double again, us = bench_render(GX_METRIC_COUNTER, &again, &bytes);
    printf("%-44s %10.1f %10.1f %10zu\n", "1000 counter series (2 labels)", us, again, bytes);
    us = bench_render(GX_METRIC_HISTOGRAM, &again, &bytes);
    printf("%-44s %10.1f %10.1f %10zu\n", "1000 histogram series (2 labels, 17 bkts)", us, again,
           bytes);
    return 0;
}
