/*
 * bench_engine.c - engine overhead benchmarks (make bench).
 *
 *  - no-op jobs through the whole engine (submit -> schedule -> run ->
 *    complete) with 1 and 2 CPU workers, one-at-a-time and batched submits;
 *  - scheduling decision latency with 1,000,000 jobs queued across 1,000
 *    tenants (p50/p99 of one dispatch decision);
 *  - bytes held per queued job;
 *  - time to submit and drain 1,000,000 jobs.
 *
 * Every figure is the median of GX_BENCH_REPS runs (default 3). Targets are
 * those of the engine issue for this 2-core machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "exec/engine_int.h"

static int reps(void) {
    const char *s = getenv("GX_BENCH_REPS");
    int r = s ? atoi(s) : 3;
    return r > 0 ? r : 3;
}

static double scale(void) {
    const char *s = getenv("GX_BENCH_SCALE"); /* < 1 for quick runs */
    double v = s ? atof(s) : 1;
    return v > 0 ? v : 1;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static gx_engine *mk(int workers) {
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = workers;
    gx_engine *e;
    gx_error err;
    if (gx_engine_create(&o, &e, &err)) {
        fprintf(stderr, "engine: %s\n", err.message);
        exit(1);
    }
    return e;
}

static const gx_named_arg noop_arg = {.name = "us", .value = 0};

static void noop_spec(gx_job_spec *s, const char *tenant) {
    gx_job_spec_init(s);
    s->kernel = "spin";
    s->args = &noop_arg;
    s->nargs = 1;
    s->tenant = tenant;
}

/* Jobs/s for n no-op jobs, submitted singly or in batches of `batch`. */
static double run_noop(int workers, long n, int batch) {
    gx_engine *e = mk(workers);
    gx_job_spec *specs = malloc((size_t)batch * sizeof *specs);
    gx_job_id *ids = malloc((size_t)batch * sizeof *ids);
    int *codes = malloc((size_t)batch * sizeof *codes);
    for (int i = 0; i < batch; i++) noop_spec(&specs[i], NULL);
    int64_t t0 = gx__now_ns();
    for (long done = 0; done < n;) {
        if (batch == 1) {
            gx_job_id id;
            if (gx_submit(e, &specs[0], &id, NULL, NULL)) abort();
            done++;
        } else {
            long k = n - done < batch ? n - done : batch;
            if (gx_submit_batch(e, specs, (size_t)k, ids, codes, NULL) != k) abort();
            done += k;
        }
    }
    if (gx_engine_drain(e, 600000)) abort();
    double secs = (double)(gx__now_ns() - t0) / 1e9;
    gx_engine_stats st;
    gx_engine_stats_get(e, &st);
    if (st.succeeded != n) {
        fprintf(stderr, "lost jobs: %lld of %ld\n", (long long)st.succeeded, n);
        abort();
    }
    gx_engine_destroy(e);
    free(specs);
    free(ids);
    free(codes);
    return (double)n / secs;
}

typedef struct sched_res {
    double p50_us, p99_us, bytes_per_job, rss_per_job;
} sched_res;

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

/* 1M queued jobs across 1000 tenants on a paused engine, then time single
 * dispatch decisions. */
static sched_res run_sched(long n, int tenants) {
    gx_engine *e = mk(1);
    pthread_mutex_lock(&e->mu);
    e->paused = 1;
    pthread_mutex_unlock(&e->mu);
    char(*names)[16] = malloc((size_t)tenants * sizeof *names);
    for (int t = 0; t < tenants; t++) {
        snprintf(names[t], sizeof names[t], "t%d", t);
        gx_tenant_opts to = {.name = names[t], .weight = 1 + t % 5};
        gx_tenant_add(e, &to, NULL, NULL);
    }
    long rss0 = rss_bytes();
    const int B = 10000;
    gx_job_spec *specs = malloc(B * sizeof *specs);
    gx_job_id *ids = malloc(B * sizeof *ids);
    int *codes = malloc(B * sizeof *codes);
    uint64_t r = 88172645463325252ull;
    for (long done = 0; done < n; done += B) {
        for (int i = 0; i < B; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            noop_spec(&specs[i], names[r % (uint64_t)tenants]);
            specs[i].priority = (int)(r >> 32) % 21 - 10;
        }
        if (gx_submit_batch(e, specs, B, ids, codes, NULL) != B) abort();
    }
    long rss1 = rss_bytes();
    gx_engine_stats st;
    gx_engine_stats_get(e, &st);
    sched_res res;
    res.bytes_per_job = (double)st.job_bytes / (double)st.queued;
    res.rss_per_job = (double)(rss1 - rss0) / (double)n;
    int samples = 200000;
    double *lat = malloc((size_t)samples * sizeof *lat);
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < samples; i++) {
        int64_t t0 = gx__now_ns();
        int placed = gx__sched_dispatch(e, 1, 1);
        lat[i] = (double)(gx__now_ns() - t0) / 1e3;
        if (placed != 1) abort();
        /* keep the device ring from growing: drop what was placed */
        gx__device *d = &e->dev[0];
        gx__job *j = d->ring[d->rhead];
        d->rhead = (d->rhead + 1) & (d->rcap - 1);
        d->rcount--;
        j->busy = 0;
        gx__sched_released(e, j->tenant);
        d->pending_cost -= j->cost_us;
        gx__finish(e, j, GX_JOB_CANCELLED, GX_ECANCELED, NULL, NULL);
    }
    pthread_mutex_unlock(&e->mu);
    qsort(lat, (size_t)samples, sizeof *lat, cmp_d);
    res.p50_us = lat[samples / 2];
    res.p99_us = lat[samples * 99 / 100];
    free(lat);
    free(specs);
    free(ids);
    free(codes);
    free(names);
    gx_engine_destroy(e);
    return res;
}

/* Seconds to submit (in batches of 10,000) and finish n no-op jobs. */
static double run_drain(long n) {
    gx_engine *e = mk(2);
    const int B = 10000;
    gx_job_spec *specs = malloc(B * sizeof *specs);
    gx_job_id *ids = malloc(B * sizeof *ids);
    int *codes = malloc(B * sizeof *codes);
    for (int i = 0; i < B; i++) noop_spec(&specs[i], NULL);
    int64_t t0 = gx__now_ns();
    for (long done = 0; done < n; done += B)
        if (gx_submit_batch(e, specs, B, ids, codes, NULL) != B) abort();
    if (gx_engine_drain(e, 600000)) abort();
    double s = (double)(gx__now_ns() - t0) / 1e9;
    gx_engine_destroy(e);
    free(specs);
    free(ids);
    free(codes);
    return s;
}

int main(void) {
    int R = reps();
    double sc = scale();
    long n_single = (long)(400000 * sc), n_batch = (long)(1000000 * sc), n_sched = (long)(1000000 * sc);
    printf("gexec engine benchmark (median of %d runs; %ld single / %ld batched no-op jobs)\n\n", R, n_single,
           n_batch);
    printf("| %-48s | %14s | %14s | %-4s |\n", "metric", "value", "target", "met");
    printf("|%s|%s|%s|%s|\n", "--------------------------------------------------", "----------------",
           "----------------", "------");
    double v[16];
    struct {
        int workers, batch;
        double target;
    } cfg[] = {{1, 1, 0}, {2, 1, 300000}, {1, 1000, 0}, {2, 1000, 1000000}};
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        for (int i = 0; i < R; i++)
            v[i] = run_noop(cfg[c].workers, cfg[c].batch == 1 ? n_single : n_batch, cfg[c].batch);
        double m = median(v, R);
        char name[64], tgt[32];
        snprintf(name, sizeof name, "no-op jobs/s, %d worker%s, %s", cfg[c].workers, cfg[c].workers > 1 ? "s" : "",
                 cfg[c].batch == 1 ? "single submit" : "batches of 1000");
        snprintf(tgt, sizeof tgt, cfg[c].target ? ">= %.0f" : "-", cfg[c].target);
        printf("| %-48s | %14.0f | %14s | %-4s |\n", name, m, tgt,
               cfg[c].target ? (m >= cfg[c].target ? "yes" : "no") : "");
        snprintf(name, sizeof name, "  us per job (%d worker%s, %s)", cfg[c].workers, cfg[c].workers > 1 ? "s" : "",
                 cfg[c].batch == 1 ? "single" : "batched");
        printf("| %-48s | %14.3f | %14s | %-4s |\n", name, 1e6 / m, "", "");
    }
    sched_res sr[16];
    double p50[16], p99[16], bpj[16], rpj[16];
    for (int i = 0; i < R; i++) {
        sr[i] = run_sched(n_sched, 1000);
        p50[i] = sr[i].p50_us, p99[i] = sr[i].p99_us, bpj[i] = sr[i].bytes_per_job, rpj[i] = sr[i].rss_per_job;
    }
    double m99 = median(p99, R), mb = median(bpj, R);
    printf("| %-48s | %14.3f | %14s | %-4s |\n", "sched decision p50 us (1M queued, 1000 tenants)", median(p50, R), "",
           "");
    printf("| %-48s | %14.3f | %14s | %-4s |\n", "sched decision p99 us (1M queued, 1000 tenants)", m99, "<= 5",
           m99 <= 5 ? "yes" : "no");
    printf("| %-48s | %14.0f | %14s | %-4s |\n", "bytes per queued job (engine accounting)", mb, "<= 512",
           mb <= 512 ? "yes" : "no");
    printf("| %-48s | %14.0f | %14s | %-4s |\n", "  bytes per queued job (RSS growth, incl. args)", median(rpj, R),
           "", "");
    for (int i = 0; i < R; i++) v[i] = run_drain(n_batch);
    double md = median(v, R);
    char name[64];
    snprintf(name, sizeof name, "submit + drain %ld no-op jobs, s (2 workers)", n_batch);
    printf("| %-48s | %14.3f | %14s | %-4s |\n", name, md, "", "");
    return 0;
}
