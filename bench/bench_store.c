/*
 * bench_store.c - throughput of the durable store (SQLite backend).
 *
 *   bench_store [runs] [dir]
 *
 * Each run uses fresh database files in a temporary folder (dir, or
 * $TMPDIR, or /tmp) with the default settings (synchronous=full: every
 * commit is fsync'd) and measures:
 *   - batch inserts: 200,000 jobs in batches of 1,000 and of 10,000 (jobs/s,
 *     and CPU microseconds per job: the store's cost, whatever else runs)
 *   - single inserts: 64 threads each inserting one job at a time and waiting
 *     for it to be durable (inserts/s, and jobs per commit from the stats)
 *   - restart: 1,000,000 queued jobs (1% of them running) are written, the
 *     store is closed and reopened, and load_unfinished streams them back
 *     (seconds, open included)
 * and prints one table per run, then the medians.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

/* CPU seconds of the whole process (committer and checkpointer included). */
static double cpu_s(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static void die(const char *what, int rc, const gx_error *e) {
    fprintf(stderr, "bench_store: %s: %s: %s\n", what, gx_err_name(rc), e ? e->message : "");
    exit(1);
}

/* Job records with realistic texts: a spec of ~220 bytes, labels on half,
 * an idempotency key on a quarter. Strings live in one arena per batch. */
typedef struct batch {
    gx_store_job *jobs;
    gx_store_insert_result *res;
    char *text;
    size_t n;
} batch;

static const char *tenants[] = {"vision", "speech", "ranking", "research"};

static void batch_fill(batch *b, uint64_t first_id, size_t n, int running_every) {
    b->n = n;
    b->jobs = realloc(b->jobs, n * sizeof *b->jobs);
    b->res = realloc(b->res, n * sizeof *b->res);
    b->text = realloc(b->text, n * 512);
    if (!b->jobs || !b->res || !b->text) die("out of memory", GX_ENOMEM, NULL);
    int64_t t = (int64_t)time(NULL) * 1000000000;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = first_id + i;
        char *p = b->text + i * 512;
        gx_store_job *j = &b->jobs[i];
        memset(j, 0, sizeof *j);
        j->id = id;
        j->tenant = tenants[id % 4];
        j->kernel = "saxpy@1";
        j->spec_json = p;
        p += 1 + sprintf(p,
                         "{\"kernel\":\"saxpy\",\"args\":{\"a\":2.5},\"inputs\":{\"x\":{\"blob\":"
                         "\"sha256:%064llx\"},\"y\":{\"dtype\":\"f32\",\"shape\":[4],\"data\":"
                         "[1,2,3,4]}},\"priority\":0,\"timeout_ms\":30000,\"max_attempts\":3}",
                         (unsigned long long)id);
        j->state = running_every && id % (uint64_t)running_every == 0 ? GX_JOB_RUNNING
                                                                       : GX_JOB_QUEUED;
        j->attempt = j->state == GX_JOB_RUNNING;
        j->device = j->state == GX_JOB_RUNNING ? 0 : -1;
        j->submit_ns = t + (int64_t)id;
        if (id % 2 == 0) {
            j->labels_json = p;
            p += 1 + sprintf(p, "{\"team\":\"%s\",\"run\":\"r%llu\"}", j->tenant,
                             (unsigned long long)(id % 100));
        }
        if (id % 4 == 1) {
            j->idempotency_key = p;
            p += 1 + sprintf(p, "req-%llu", (unsigned long long)id);
        }
    }
}

static void batch_free(batch *b) {
    free(b->jobs);
    free(b->res);
    free(b->text);
}

static gx_store *open_store(const char *dir, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.path = path;
    gx_store *s = NULL;
    gx_error err;
    int rc = gx_store_open(&cfg, &s, &err);
    if (rc) die("open", rc, &err);
    return s;
}

static void insert_range(gx_store *s, batch *b, uint64_t first, size_t total, size_t per,
                         int running_every) {
    gx_error err;
    for (size_t done = 0; done < total; done += per) {
        size_t n = total - done < per ? total - done : per;
        batch_fill(b, first + done, n, running_every);
        int64_t rc = gx_store_insert_jobs(s, b->jobs, n, b->res, &err);
        if (rc != (int64_t)n) die("insert", rc < 0 ? (int)rc : GX_EEXIST, &err);
    }
}

/* Insert 200,000 jobs in batches of per; jobs/s (filling the records is
 * excluded by timing only the store calls) and *cpu_us, CPU microseconds
 * per job spent meanwhile (less sensitive to other load on the machine). */
static double bench_batches(const char *dir, size_t per, double *cpu_us) {
    char name[32];
    snprintf(name, sizeof name, "batch%zu", per);
    gx_store *s = open_store(dir, name);
    const size_t total = 200000;
    batch b = {0};
    double spent = 0, cpu = 0;
    gx_error err;
    for (size_t done = 0; done < total; done += per) {
        batch_fill(&b, 1 + done, per, 0);
        double t0 = now_s(), c0 = cpu_s();
        int64_t rc = gx_store_insert_jobs(s, b.jobs, per, b.res, &err);
        spent += now_s() - t0;
        cpu += cpu_s() - c0;
        if (rc != (int64_t)per) die("insert", rc < 0 ? (int)rc : GX_EEXIST, &err);
    }
    batch_free(&b);
    gx_store_close(s);
    *cpu_us = cpu / (double)total * 1e6;
    return (double)total / spent;
}

typedef struct single_arg {
    gx_store *s;
    uint64_t *next_id; /* ids in submission order, as the engine hands them out */
    size_t n;
} single_arg;

static void *single_main(void *p) {
    single_arg *a = p;
    batch b = {0};
    gx_error err;
    for (size_t i = 0; i < a->n; i++) {
        batch_fill(&b, __atomic_fetch_add(a->next_id, 1, __ATOMIC_RELAXED), 1, 0);
        int64_t rc = gx_store_insert_jobs(a->s, b.jobs, 1, b.res, &err);
        if (rc != 1) die("single insert", rc < 0 ? (int)rc : GX_EEXIST, &err);
    }
    batch_free(&b);
    return NULL;
}

static double bench_single(const char *dir, double *per_commit) {
    enum { THREADS = 64, EACH = 1000 };
    gx_store *s = open_store(dir, "single");
    pthread_t th[THREADS];
    single_arg args[THREADS];
    uint64_t next_id = 1;
    double t0 = now_s();
    for (int i = 0; i < THREADS; i++) {
        args[i] = (single_arg){s, &next_id, EACH};
        pthread_create(&th[i], NULL, single_main, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    double dt = now_s() - t0;
    gx_store_stats st;
    gx_store_stats_get(s, &st);
    *per_commit = st.commits ? (double)st.rows / (double)st.commits : 0;
    gx_store_close(s);
    return THREADS * EACH / dt;
}

typedef struct counter {
    uint64_t n, last;
    int ordered;
} counter;

static int count_job(void *ctx, const gx_store_job *j) {
    counter *c = ctx;
    if (j->id <= c->last) c->ordered = 0;
    c->last = j->id;
    c->n++;
    return 0;
}

static double bench_restart(const char *dir, double *open_s, int64_t *requeued) {
    const size_t total = 1000000;
    gx_store *s = open_store(dir, "restart");
    batch b = {0};
    insert_range(s, &b, 1, total, 10000, 100);
    batch_free(&b);
    gx_store_close(s);
    sync();
    double t0 = now_s();
    s = open_store(dir, "restart");
    *open_s = now_s() - t0;
    counter c = {0, 0, 1};
    gx_error err;
    int rc = gx_store_load_unfinished(s, count_job, &c, requeued, &err);
    double dt = now_s() - t0;
    if (rc) die("load_unfinished", rc, &err);
    if (c.n != total || !c.ordered) {
        fprintf(stderr, "bench_store: loaded %llu of %zu jobs (ordered %d)\n",
                (unsigned long long)c.n, total, c.ordered);
        exit(1);
    }
    gx_store_close(s);
    return dt;
}

static void rm_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_store: could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    if (runs < 1 || runs > 20) runs = 3;
    const char *base = argc > 2 ? argv[2] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    enum { B1000, CPU1000, B10000, CPU10000, SINGLE, PERCOMMIT, OPEN, LOAD, NCOL };
    double v[NCOL][20];
    printf("store benchmark (sqlite, synchronous=full), %d run(s) in %s\n", runs, base);
    printf("%-4s %12s %8s %13s %8s %11s %11s %8s %10s\n", "run", "batch1000/s", "cpu us",
           "batch10000/s", "cpu us", "single64/s", "jobs/commit", "open s", "load 1M s");
    for (int r = 0; r < runs; r++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/gx-bench-store-XXXXXX", base);
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        int64_t requeued = 0;
        /* sync() first: write-back of an earlier phase's files would
         * otherwise slow this phase's fsyncs down */
        sync();
        v[B1000][r] = bench_batches(dir, 1000, &v[CPU1000][r]);
        sync();
        v[B10000][r] = bench_batches(dir, 10000, &v[CPU10000][r]);
        sync();
        v[SINGLE][r] = bench_single(dir, &v[PERCOMMIT][r]);
        sync();
        v[LOAD][r] = bench_restart(dir, &v[OPEN][r], &requeued);
        rm_dir(dir);
        printf("%-4d %12.0f %8.2f %13.0f %8.2f %11.0f %11.1f %8.3f %10.3f  (%lld re-queued)\n",
               r + 1, v[B1000][r], v[CPU1000][r], v[B10000][r], v[CPU10000][r], v[SINGLE][r],
               v[PERCOMMIT][r], v[OPEN][r], v[LOAD][r], (long long)requeued);
        fflush(stdout);
    }
    printf("%-4s %12.0f %8.2f %13.0f %8.2f %11.0f %11.1f %8.3f %10.3f\n", "med",
           bench_median(v[B1000], runs), bench_median(v[CPU1000], runs), bench_median(v[B10000], runs),
           bench_median(v[CPU10000], runs), bench_median(v[SINGLE], runs), bench_median(v[PERCOMMIT], runs),
           bench_median(v[OPEN], runs), bench_median(v[LOAD], runs));
    return 0;
}
