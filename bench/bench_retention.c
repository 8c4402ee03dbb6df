/*
 * bench_retention.c - what a retention check costs the writes behind it.
 *
 *   bench_retention [jobs]       (default 300,000 x GX_BENCH_SCALE)
 *
 * A store (SQLite, synchronous=full, a temporary folder) holds `jobs`
 * queued jobs that each name a blob, and one more blob that nothing names.
 * Then one gx_store_purge dooms unused blobs (the retention's check: it has
 * to find which blobs the unfinished jobs name) while the main thread
 * inserts single jobs and waits for each to be durable. Printed per
 * repetition and as medians: the check's time, the inserts that committed
 * meanwhile and the slowest of them. When the jobs are read inside the
 * committer's transaction, every insert waits for the whole check.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gexec/gexec.h"
#include "gexec/gexec_store.h"
#include "benchutil.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct check {
    gx_store *s;
    atomic_int done;
    double secs;
    int64_t doomed;
    int rc;
} check;

static void *run_check(void *arg) {
    check *c = arg;
    gx_store_purge_result pr = {0};
    gx_error err;
    double t0 = now_s();
    c->rc = gx_store_purge(c->s, 0, 1, INT64_MAX / 2, 0, &pr, &err);
    c->secs = now_s() - t0;
    c->doomed = pr.blobs_doomed;
    atomic_store(&c->done, 1);
    return NULL;
}

/* One repetition; 0 or -1. */
static int rep(size_t njobs, double *check_s, double *inserts, double *slowest_ms) {
    char dir[] = "/tmp/gx-bench-retention-XXXXXX", path[64], cmd[96];
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/gexec.db", dir);
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.path = path;
    gx_store *s;
    gx_error err;
    int rc = gx_store_open(&cfg, &s, &err);
    char named[GX_STORE_BLOB_ID_LEN], unused[GX_STORE_BLOB_ID_LEN], spec[200];
    if (!rc) rc = gx_store_blob_put(s, "t", "named", 5, named, &err);
    if (!rc) rc = gx_store_blob_put(s, "t", "unused", 6, unused, &err);
    snprintf(spec, sizeof spec, "{\"kernel\":\"saxpy\",\"inputs\":{\"x\":{\"blob\":\"%s\"}}}", named);
    const size_t B = 10000;
    gx_store_job *js = calloc(B, sizeof *js);
    gx_store_insert_result *res = calloc(B, sizeof *res);
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t t = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
    uint64_t id = 1;
    for (size_t done = 0; !rc && js && res && done < njobs; done += B) {
        size_t n = njobs - done < B ? njobs - done : B;
        for (size_t i = 0; i < n; i++, id++)
            js[i] = (gx_store_job){.id = id, .tenant = "t", .kernel = "saxpy@1", .spec_json = spec,
                                   .state = GX_JOB_QUEUED, .submit_ns = t, .device = -1};
        if (gx_store_insert_jobs(s, js, n, res, &err) < 0) rc = -1;
    }
    if (!js || !res) rc = -1;
    if (!rc) sleep(2); /* the WAL checkpoint of the fill, out of the way */
    check c = {.s = s};
    pthread_t th;
    if (!rc && pthread_create(&th, NULL, run_check, &c)) rc = -1;
    int started = !rc;
    double worst = 0;
    long count = 0;
    while (started && !atomic_load(&c.done)) {
        gx_store_job j = {.id = id++, .tenant = "t", .kernel = "spin@1", .spec_json = "{\"kernel\":\"spin\"}",
                          .state = GX_JOB_QUEUED, .submit_ns = t, .device = -1};
        double t0 = now_s();
        if (gx_store_insert_jobs(s, &j, 1, res, &err) != 1) {
            rc = -1;
            break;
        }
        double d = now_s() - t0;
        if (d > worst) worst = d;
        count++;
    }
    if (started) pthread_join(th, NULL);
    if (started && (c.rc || c.doomed != 1)) rc = -1; /* the unused blob, and only it */
    *check_s = c.secs;
    *inserts = (double)count;
    *slowest_ms = worst * 1e3;
    free(js);
    free(res);
    if (s) gx_store_close(s);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "bench_retention: cannot remove %s\n", dir);
    if (rc) fprintf(stderr, "bench_retention: %s\n", err.message[0] ? err.message : "failed");
    return rc ? -1 : 0;
}

int main(int argc, char **argv) {
    size_t njobs = argc > 1 ? strtoul(argv[1], NULL, 10) : (size_t)(300000 * bench_scale());
    if (!njobs) njobs = 1;
    int reps = bench_reps();
    double *cs = calloc((size_t)reps, sizeof *cs), *ins = calloc((size_t)reps, sizeof *ins),
           *slow = calloc((size_t)reps, sizeof *slow);
    if (!cs || !ins || !slow) return 1;
    printf("retention check with %zu queued jobs naming blobs, single durable inserts meanwhile\n", njobs);
    printf("| rep | check (s) | inserts during it | slowest insert (ms) |\n|---|---|---|---|\n");
    for (int r = 0; r < reps; r++) {
        if (rep(njobs, &cs[r], &ins[r], &slow[r])) return 1;
        printf("| %d | %.3f | %.0f | %.1f |\n", r + 1, cs[r], ins[r], slow[r]);
    }
    printf("| median | %.3f | %.0f | %.1f |\n", bench_median(cs, reps), bench_median(ins, reps),
           bench_median(slow, reps));
    free(cs);
    free(ins);
    free(slow);
    return 0;
}
