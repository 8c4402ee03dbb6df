/*
 * test_store.c - the durable store on a real SQLite file in a temporary
 * folder: inserts, reads, filters and paging; idempotency; updates, events
 * and stale-attempt fencing; group commit under concurrency; restart
 * recovery; blobs (dedupe, ownership, hostile ids); tenants; a full disk
 * (PRAGMA max_page_count) rolling back a whole group; schema versions.
 */
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "gexec/gexec_fault.h"
#include "gexec/gexec_store.h"
#include "store/store_int.h"
#include "testutil.h"

/* ---- fixtures --------------------------------------------------------------- */

typedef struct fx {
    char dir[256];
    char path[300];
    gx_store *s;
} fx;

static gx_store *open_cfg(fx *f, gx_store_config *cfg) {
    cfg->path = f->path;
    gx_store *s = NULL;
    gx_error err;
    TU_OK(gx_store_open(cfg, &s, &err), err);
    return s;
}

static gx_store *open_default(fx *f) {
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    return open_cfg(f, &cfg);
}

/* The fixture's store closed and opened again on ops (which must outlive it). */
static void reopen_ops(fx *f, const gx_store_ops *ops) {
    gx_store_close(f->s);
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.path = f->path;
    gx_error err;
    TU_OK(gx_store_open_ops(ops, &cfg, &f->s, &err), err);
}

static int setup(void **st) {
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/gx-test-store-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/gexec.db", f->dir);
    f->s = open_default(f);
    *st = f;
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **st) {
    fx *f = *st;
    gx_store_close(f->s);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* A job record with strings in a static-lifetime-per-call buffer. */
typedef struct jbuf {
    gx_store_job j;
    char spec[128];
    char labels[96];
    char key[48];
} jbuf;

static void mkjob(jbuf *b, uint64_t id, const char *tenant, const char *kernel, int state) {
    memset(b, 0, sizeof *b);
    b->j.id = id;
    b->j.tenant = tenant;
    b->j.kernel = kernel;
    snprintf(b->spec, sizeof b->spec, "{\"kernel\":\"%s\",\"n\":%llu}", kernel,
             (unsigned long long)id);
    b->j.spec_json = b->spec;
    b->j.state = state;
    b->j.priority = (int)(id % 7) - 3;
    b->j.submit_ns = 1700000000000000000LL + (int64_t)id;
    b->j.device = -1;
}

static int64_t insert1(gx_store *s, gx_store_job *j, gx_store_insert_result *r) {
    gx_error err;
    return gx_store_insert_jobs(s, j, 1, r, &err);
}

static size_t count_all(gx_store *s, const gx_store_filter *base) {
    gx_store_filter f = base ? *base : (gx_store_filter){0};
    f.limit = 10000;
    size_t total = 0;
    for (;;) {
        gx_store_job *jobs = NULL;
        size_t n = 0;
        uint64_t next = 0;
        gx_error err;
        TU_OK(gx_store_list_jobs(s, &f, &jobs, &n, &next, &err), err);
        total += n;
        gx_store_free(jobs);
        if (!next) break;
        f.after = next;
    }
    return total;
}

/* ---- open ------------------------------------------------------------------- */

/* A store file this user may read but not write is refused at open, naming
 * it: SQLite opened it read-only without a word, every commit failed, and
 * gexecd's start waited for them for ever. As root (which writes any file)
 * the open runs in a child as nobody. */
static void read_only_file_refused(void **st) {
    fx *f = *st;
    gx_store_close(f->s);
    f->s = NULL;
    assert_int_equal(chmod(f->path, 0444), 0);
    assert_int_equal(chmod(f->dir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) || setuid(65534))) _exit(3);
        gx_store_config cfg;
        gx_store_config_init(&cfg);
        cfg.path = f->path;
        gx_store *s = NULL;
        gx_error err;
        int rc = gx_store_open(&cfg, &s, &err);
        if (rc != GX_ESTORE || s) _exit(1);
        if (strcmp(err.field, "path") || !strstr(err.message, "is read-only for this user") ||
            !strstr(err.message, f->path)) {
            fprintf(stderr, "read-only store: %s: %s\n", err.field, err.message);
            _exit(2);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(chmod(f->path, 0600), 0);
}

static void open_errors(void **st) {
    fx *f = *st;
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.path = f->path;
    gx_store *s = NULL;
    gx_error err;
    cfg.backend = "postgres";
    assert_int_equal(gx_store_open(&cfg, &s, &err), GX_EUNSUPPORTED);
    assert_null(s);
    assert_non_null(strstr(err.message, "postgres"));
    cfg.backend = "oracle";
    assert_int_equal(gx_store_open(&cfg, &s, &err), GX_EINVAL);
    assert_string_equal(err.field, "backend");
    cfg.backend = "sqlite";
    cfg.synchronous = "sometimes";
    assert_int_equal(gx_store_open(&cfg, &s, &err), GX_EINVAL);
    assert_string_equal(err.field, "synchronous");
    gx_store_config_init(&cfg);
    assert_int_equal(gx_store_open(&cfg, &s, &err), GX_EINVAL); /* no path */
    gx_store_ops bad = gx_store_sqlite_ops;
    bad.abi_version = 99;
    cfg.path = f->path;
    assert_int_equal(gx_store_open_ops(&bad, &cfg, &s, &err), GX_EABI);
    bad = gx_store_sqlite_ops;
    bad.check = NULL;
    assert_int_equal(gx_store_open_ops(&bad, &cfg, &s, &err), GX_EABI);
    bad = gx_store_sqlite_ops;
    bad.struct_size = (uint32_t)offsetof(gx_store_ops, check); /* too small for a required method */
    assert_int_equal(gx_store_open_ops(&bad, &cfg, &s, &err), GX_EABI);
    /* a backend built before settings_get was appended: opens, and has no
     * settings (nor checkpoints, appended before them) */
    gx_store_close(f->s);
    bad = gx_store_sqlite_ops;
    bad.struct_size = (uint32_t)offsetof(gx_store_ops, checkpoint_get);
    TU_OK(gx_store_open_ops(&bad, &cfg, &f->s, &err), err);
    assert_int_equal(gx_store_setting_put(f->s, "k", "v", &err), GX_EUNSUPPORTED);
    gx_store_setting *v = NULL;
    size_t nv = 0;
    assert_int_equal(gx_store_settings_get(f->s, "", &v, &nv, &err), GX_EUNSUPPORTED);
    gx_store_close(f->s);
    f->s = open_default(f);
    assert_string_equal(gx_store_backend_name(f->s), "sqlite");
}

/* ---- insert, get, list -------------------------------------------------------- */

static const char *tenants3[] = {"alpha", "beta", "gamma"};
static const char *kernels3[] = {"saxpy@1", "gemm@1", "saxpy_fast@2"};

static void insert_get_list(void **st) {
    fx *f = *st;
    enum { N = 250 };
    jbuf *b = calloc(N, sizeof *b);
    gx_store_job *jobs = calloc(N, sizeof *jobs);
    gx_store_insert_result *res = calloc(N, sizeof *res);
    for (int i = 0; i < N; i++) {
        uint64_t id = (uint64_t)i + 1;
        mkjob(&b[i], id, tenants3[i % 3], kernels3[i % 3 == 0 ? (i / 3) % 3 : i % 3],
              i % 10 == 0 ? GX_JOB_SUCCEEDED : i % 5 == 0 ? GX_JOB_RUNNING : GX_JOB_QUEUED);
        if (i % 4 == 0) {
            snprintf(b[i].labels, sizeof b[i].labels, "{\"team\":\"%s\",\"n\":\"%d\"}",
                     i % 8 == 0 ? "vision" : "speech", i);
            b[i].j.labels_json = b[i].labels;
        }
        jobs[i] = b[i].j;
    }
    jobs[7].error = "bad input";
    jobs[7].error_code = GX_EINVAL;
    jobs[7].result_json = "{\"y\":\"sha256:00\"}";
    gx_error err;
    assert_int_equal(gx_store_insert_jobs(f->s, jobs, N, res, &err), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(res[i].code, 0);
        assert_int_equal(res[i].job_id, (uint64_t)i + 1);
    }

    /* get: every field round-trips */
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, 8, &g, &err), err);
    assert_int_equal(g->id, 8);
    assert_string_equal(g->tenant, jobs[7].tenant);
    assert_string_equal(g->kernel, jobs[7].kernel);
    assert_string_equal(g->spec_json, jobs[7].spec_json);
    assert_int_equal(g->state, jobs[7].state);
    assert_int_equal(g->priority, jobs[7].priority);
    assert_int_equal(g->submit_ns, jobs[7].submit_ns);
    assert_int_equal(g->device, -1);
    assert_int_equal(g->error_code, GX_EINVAL);
    assert_string_equal(g->error, "bad input");
    assert_string_equal(g->result_json, "{\"y\":\"sha256:00\"}");
    assert_null(g->idempotency_key);
    assert_null(g->labels_json);
    gx_store_free(g);
    TU_OK(gx_store_get_job(f->s, 1, &g, &err), err);
    assert_string_equal(g->labels_json, b[0].labels);
    assert_null(g->error);
    gx_store_free(g);
    assert_int_equal(gx_store_get_job(f->s, 9999, &g, &err), GX_ENOTFOUND);
    assert_null(g);
    assert_int_equal(gx_store_get_job(f->s, 0, &g, &err), GX_ENOTFOUND);

    uint64_t maxid = 0;
    TU_OK(gx_store_max_job_id(f->s, &maxid, &err), err);
    assert_int_equal(maxid, N);

    /* paging: pages of 40 give every job once, in id order */
    gx_store_filter fl = {.limit = 40};
    uint64_t expect = 1;
    int pages = 0;
    for (;;) {
        gx_store_job *page = NULL;
        size_t n = 0;
        uint64_t next = 0;
        TU_OK(gx_store_list_jobs(f->s, &fl, &page, &n, &next, &err), err);
        for (size_t i = 0; i < n; i++) assert_int_equal(page[i].id, expect++);
        pages++;
        if (n) assert_string_equal(page[n - 1].spec_json, jobs[page[n - 1].id - 1].spec_json);
        gx_store_free(page);
        if (!next) break;
        assert_int_equal(next, expect - 1);
        fl.after = next;
    }
    assert_int_equal(expect, N + 1);
    assert_int_equal(pages, (N + 39) / 40);

    /* filters, checked against a count done here */
    size_t want_t = 0, want_q = 0, want_tq = 0, want_saxpy = 0, want_exact = 0, want_lab = 0,
           want_unfin = 0;
    for (int i = 0; i < N; i++) {
        int is_b = strcmp(jobs[i].tenant, "beta") == 0;
        want_t += is_b;
        want_q += jobs[i].state == GX_JOB_QUEUED;
        want_tq += is_b && jobs[i].state == GX_JOB_QUEUED;
        want_saxpy += strncmp(jobs[i].kernel, "saxpy@", 6) == 0;
        want_exact += strcmp(jobs[i].kernel, "saxpy_fast@2") == 0;
        want_lab += jobs[i].labels_json && strstr(jobs[i].labels_json, "vision") != NULL;
        want_unfin += jobs[i].state < GX_JOB_SUCCEEDED;
    }
    assert_true(want_t && want_q && want_tq && want_saxpy && want_exact && want_lab);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.tenant = "beta"}), want_t);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.state_mask = 1u << GX_JOB_QUEUED}),
                     want_q);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.tenant = "beta",
                                                        .state_mask = 1u << GX_JOB_QUEUED}),
                     want_tq);
    assert_int_equal(
        count_all(f->s, &(gx_store_filter){.state_mask = (1u << GX_JOB_QUEUED) |
                                                         (1u << GX_JOB_RUNNING)}),
        want_unfin);
    /* "saxpy" means any version of saxpy, not saxpy_fast */
    assert_int_equal(count_all(f->s, &(gx_store_filter){.kernel = "saxpy"}), want_saxpy);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.kernel = "saxpy_fast@2"}), want_exact);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.kernel = "sax"}), 0);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.label_key = "team",
                                                        .label_value = "vision"}),
                     want_lab);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.label_key = "team",
                                                        .label_value = "nobody"}),
                     0);
    assert_int_equal(count_all(f->s, &(gx_store_filter){.tenant = "nobody"}), 0);
    /* a filter with a cursor in the middle */
    assert_int_equal(count_all(f->s, &(gx_store_filter){.after = 200}), N - 200);

    gx_store_job *page = NULL;
    size_t n = 0;
    assert_int_equal(gx_store_list_jobs(f->s, &(gx_store_filter){.limit = 10001}, &page, &n,
                                        NULL, &err),
                     GX_EINVAL);
    assert_int_equal(gx_store_list_jobs(f->s, &(gx_store_filter){.label_key = "team"}, &page,
                                        &n, NULL, &err),
                     GX_EINVAL);
    free(b);
    free(jobs);
    free(res);
}

static void insert_invalid_records(void **st) {
    fx *f = *st;
    jbuf b[5];
    gx_store_job jobs[5];
    gx_store_insert_result res[5];
    for (int i = 0; i < 5; i++) {
        mkjob(&b[i], 100 + (uint64_t)i, "alpha", "saxpy@1", GX_JOB_QUEUED);
        jobs[i] = b[i].j;
    }
    jobs[1].tenant = "no spaces allowed";
    jobs[3].state = 42;
    gx_error err;
    assert_int_equal(gx_store_insert_jobs(f->s, jobs, 5, res, &err), 3);
    assert_int_equal(res[0].code, 0);
    assert_int_equal(res[1].code, GX_EINVAL);
    assert_int_equal(res[2].code, 0);
    assert_int_equal(res[3].code, GX_EINVAL);
    assert_int_equal(res[4].code, 0);
    assert_string_equal(err.field, "jobs[1].tenant");
    /* an id already used is refused alone; the rest of the batch goes in */
    mkjob(&b[0], 100, "alpha", "gemm@1", GX_JOB_QUEUED);
    mkjob(&b[1], 200, "alpha", "gemm@1", GX_JOB_QUEUED);
    jobs[0] = b[0].j;
    jobs[1] = b[1].j;
    assert_int_equal(gx_store_insert_jobs(f->s, jobs, 2, res, &err), 1);
    assert_int_equal(res[0].code, GX_EINVAL);
    assert_int_equal(res[1].code, 0);
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, 100, &g, &err), err);
    assert_string_equal(g->kernel, "saxpy@1"); /* the original, untouched */
    gx_store_free(g);
    assert_int_equal(gx_store_get_job(f->s, 101, &g, &err), GX_ENOTFOUND);
    /* the same inside a run that goes in as multi-row statements (50, 16,
     * 4, then one by one): only the taken id is refused */
    enum { RUN = 75 };
    jbuf *rb = calloc(RUN, sizeof *rb);
    gx_store_job *rj = calloc(RUN, sizeof *rj);
    gx_store_insert_result *rr = calloc(RUN, sizeof *rr);
    assert_true(rb && rj && rr);
    for (int i = 0; i < RUN; i++) {
        mkjob(&rb[i], 1000 + (uint64_t)i, "alpha", "gemm@1", GX_JOB_QUEUED);
        rj[i] = rb[i].j;
    }
    rj[30].id = 100; /* taken, in the first 50 */
    rj[60].id = 102; /* taken, in the 16 */
    assert_int_equal(gx_store_insert_jobs(f->s, rj, RUN, rr, &err), RUN - 2);
    for (int i = 0; i < RUN; i++) {
        assert_int_equal(rr[i].code, i == 30 || i == 60 ? GX_EINVAL : 0);
        if (rr[i].code) continue;
        assert_int_equal(rr[i].job_id, rj[i].id);
        TU_OK(gx_store_get_job(f->s, rj[i].id, &g, &err), err);
        assert_string_equal(g->kernel, "gemm@1");
        gx_store_free(g);
        gx_store_event *ev = NULL;
        size_t n = 0;
        TU_OK(gx_store_job_events(f->s, rj[i].id, &ev, &n, &err), err);
        assert_int_equal(n, 1);
        assert_int_equal(ev[0].time_ns, rj[i].submit_ns);
        gx_store_free(ev);
    }
    free(rb);
    free(rj);
    free(rr);
}

/* Single-job requests queued without waiting (gx_store_insert_jobs_async,
 * what every single submission does): each gets its own outcome through
 * its callback, exactly once, though the store writes many of them in one
 * transaction and several in one statement; a taken id, a repeated
 * idempotency key and an invalid record among them touch only themselves. */
typedef struct async_rec {
    atomic_int calls;
    int64_t rc;
} async_rec;

static void async_done(void *ctx, int64_t rc, const gx_error *err) {
    (void)err;
    async_rec *r = ctx;
    r->rc = rc;
    atomic_fetch_add(&r->calls, 1);
}

static void async_inserts(void **st) {
    fx *f = *st;
    gx_error err;
    jbuf b;
    gx_store_insert_result r;
    mkjob(&b, 5, "alpha", "saxpy@1", GX_JOB_QUEUED);
    b.j.idempotency_key = "once";
    assert_int_equal(insert1(f->s, &b.j, &r), 1);
    gx_store_stats s0, s1;
    gx_store_stats_get(f->s, &s0);
    enum { N = 75 };
    jbuf *jb = calloc(N, sizeof *jb);
    gx_store_insert_result *res = calloc(N, sizeof *res);
    async_rec *rec = calloc(N, sizeof *rec);
    assert_true(jb && res && rec);
    for (int i = 0; i < N; i++) {
        mkjob(&jb[i], 2000 + (uint64_t)i, "alpha", "gemm@1", GX_JOB_QUEUED);
        if (i == 20) jb[i].j.id = 5;                 /* taken */
        if (i == 40) jb[i].j.idempotency_key = "once"; /* a repeat of job 5 */
        if (i == 60) jb[i].j.tenant = NULL;          /* invalid: refused before queueing */
        TU_OK(gx_store_insert_jobs_async(f->s, &jb[i].j, 1, &res[i], async_done, &rec[i], &err), err);
    }
    for (int t = 0; t < 10000; t++) {
        int all = 1;
        for (int i = 0; i < N && all; i++) all = atomic_load(&rec[i].calls) > 0;
        if (all) break;
        usleep(1000);
    }
    gx_store_stats_get(f->s, &s1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&rec[i].calls), 1);
        if (i == 20 || i == 60) {
            assert_int_equal(rec[i].rc, 0);
            assert_int_equal(res[i].code, GX_EINVAL);
        } else if (i == 40) {
            assert_int_equal(rec[i].rc, 0);
            assert_int_equal(res[i].code, GX_EEXIST);
            assert_int_equal(res[i].job_id, 5);
        } else {
            assert_int_equal(rec[i].rc, 1);
            assert_int_equal(res[i].code, 0);
            assert_int_equal(res[i].job_id, 2000 + (uint64_t)i);
            gx_store_job *g = NULL;
            TU_OK(gx_store_get_job(f->s, res[i].job_id, &g, &err), err);
            assert_string_equal(g->kernel, "gemm@1");
            gx_store_free(g);
        }
    }
    /* many requests a transaction (a handful at most, not one each) */
    print_message("  %llu transactions for %d requests\n", (unsigned long long)(s1.commits - s0.commits), N);
    assert_true(s1.commits - s0.commits < N / 2);
    /* bad arguments: refused, no callback */
    assert_int_equal(gx_store_insert_jobs_async(f->s, &jb[0].j, 1, &res[0], NULL, NULL, &err), GX_EINVAL);
    /* a failed commit: the callback says so, every record with it */
    gx_fault_spec fs = {.point = GX_FAULT_STORE_COMMIT, .device = -1, .count = 1, .code = GX_EBUSY};
    TU_OK(gx_fault_arm(&fs, &err), err);
    mkjob(&jb[0], 3000, "alpha", "gemm@1", GX_JOB_QUEUED);
    memset(&rec[0], 0, sizeof rec[0]);
    TU_OK(gx_store_insert_jobs_async(f->s, &jb[0].j, 1, &res[0], async_done, &rec[0], &err), err);
    for (int t = 0; t < 10000 && !atomic_load(&rec[0].calls); t++) usleep(1000);
    assert_int_equal(atomic_load(&rec[0].calls), 1);
    assert_int_equal(rec[0].rc, GX_EBUSY);
    assert_int_equal(res[0].code, GX_EBUSY);
    gx_store_job *g = NULL;
    assert_int_equal(gx_store_get_job(f->s, 3000, &g, &err), GX_ENOTFOUND);
    free(jb);
    free(res);
    free(rec);
}

/* A large write of state changes (the persister's chunks are 2,048 rows)
 * is written while single inserts keep arriving without pause, not after
 * they stop: an insert-led group always takes the oldest queued state
 * change. */
typedef struct feeder {
    gx_store *s;
    atomic_int stop, after; /* inserts queued once the update was done */
    atomic_int updated;
} feeder;

static void feed_done(void *ctx, int64_t rc, const gx_error *err) {
    (void)rc;
    (void)err;
    free(ctx);
}

static void *feed_main(void *arg) {
    feeder *fd = arg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t id = 500000; !atomic_load(&fd->stop); id++) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 3) break; /* gives up: a starved update is written after this */
        jbuf *b = malloc(sizeof(jbuf) + sizeof(gx_store_insert_result));
        if (!b) break;
        mkjob(b, id, "alpha", "saxpy@1", GX_JOB_QUEUED);
        gx_error err;
        if (gx_store_insert_jobs_async(fd->s, &b->j, 1, (gx_store_insert_result *)(b + 1), feed_done, b, &err)) {
            free(b);
            break;
        }
        if (atomic_load(&fd->updated)) atomic_fetch_add(&fd->after, 1);
        usleep(50);
    }
    return NULL;
}

static void big_update_among_inserts(void **st) {
    fx *f = *st;
    enum { N = 2000 };
    jbuf *jb = calloc(N, sizeof *jb);
    gx_store_job *js = calloc(N, sizeof *js);
    gx_store_insert_result *rs = calloc(N, sizeof *rs);
    gx_store_update *up = calloc(N, sizeof *up);
    assert_true(jb && js && rs && up);
    for (int i = 0; i < N; i++) {
        mkjob(&jb[i], 1 + (uint64_t)i, "alpha", "saxpy@1", GX_JOB_QUEUED);
        js[i] = jb[i].j;
        up[i] = (gx_store_update){.id = 1 + (uint64_t)i, .state = GX_JOB_RUNNING, .attempt = 1};
    }
    gx_error err;
    assert_int_equal(gx_store_insert_jobs(f->s, js, N, rs, &err), N);
    /* slow commits (20 ms): inserts are queued whenever the committer
     * looks, as under a steady stream of submissions */
    gx_fault_spec fs = {.point = GX_FAULT_STORE_SLOW, .device = -1, .count = 1000, .delay_us = 20000};
    TU_OK(gx_fault_arm(&fs, &err), err);
    feeder fd = {.s = f->s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, feed_main, &fd), 0);
    usleep(100000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(gx_store_update_jobs(f->s, up, N, 1, NULL, &err), N);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    atomic_store(&fd.updated, 1);
    print_message("  the update took %.3f s\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    usleep(100000); /* inserts go on after it: it did not wait for them to stop (3 s) */
    atomic_store(&fd.stop, 1);
    pthread_join(th, NULL);
    gx_fault_clear(GX_FAULT_STORE_SLOW);
    print_message("  inserts queued after the update was written: %d\n", atomic_load(&fd.after));
    assert_true(atomic_load(&fd.after) > 0);
    free(jb);
    free(js);
    free(rs);
    free(up);
}

/* ---- idempotency ---------------------------------------------------------------- */

static void idempotency(void **st) {
    fx *f = *st;
    jbuf b;
    gx_store_insert_result r;
    mkjob(&b, 1, "alpha", "saxpy@1", GX_JOB_QUEUED);
    b.j.idempotency_key = "req-42";
    assert_int_equal(insert1(f->s, &b.j, &r), 1);
    assert_int_equal(r.code, 0);
    /* same tenant, same key: the original job, nothing new */
    mkjob(&b, 2, "alpha", "gemm@1", GX_JOB_QUEUED);
    b.j.idempotency_key = "req-42";
    assert_int_equal(insert1(f->s, &b.j, &r), 0);
    assert_int_equal(r.code, GX_EEXIST);
    assert_int_equal(r.job_id, 1);
    gx_store_job *g = NULL;
    gx_error err;
    assert_int_equal(gx_store_get_job(f->s, 2, &g, &err), GX_ENOTFOUND);
    /* another tenant may use the same key */
    mkjob(&b, 3, "beta", "gemm@1", GX_JOB_QUEUED);
    b.j.idempotency_key = "req-42";
    assert_int_equal(insert1(f->s, &b.j, &r), 1);
    assert_int_equal(r.job_id, 3);
    TU_OK(gx_store_get_job(f->s, 3, &g, &err), err);
    assert_string_equal(g->idempotency_key, "req-42");
    gx_store_free(g);
    /* twice in one batch: the second answers the first */
    jbuf bb[3];
    gx_store_job jobs[3];
    gx_store_insert_result res[3];
    mkjob(&bb[0], 10, "alpha", "saxpy@1", GX_JOB_QUEUED);
    mkjob(&bb[1], 11, "alpha", "saxpy@1", GX_JOB_QUEUED);
    mkjob(&bb[2], 12, "alpha", "saxpy@1", GX_JOB_QUEUED);
    for (int i = 0; i < 3; i++) jobs[i] = bb[i].j;
    jobs[0].idempotency_key = "batch-key";
    jobs[1].idempotency_key = "batch-key";
    assert_int_equal(gx_store_insert_jobs(f->s, jobs, 3, res, &err), 2);
    assert_int_equal(res[0].code, 0);
    assert_int_equal(res[1].code, GX_EEXIST);
    assert_int_equal(res[1].job_id, 10);
    assert_int_equal(res[2].code, 0);
    assert_int_equal(res[2].job_id, 12);
}

/* ---- updates and events ---------------------------------------------------------- */

static void update_events_fencing(void **st) {
    fx *f = *st;
    jbuf b;
    gx_store_insert_result r;
    mkjob(&b, 5, "alpha", "saxpy@1", GX_JOB_QUEUED);
    assert_int_equal(insert1(f->s, &b.j, &r), 1);
    gx_error err;
    int codes[4];
    gx_store_update u[3] = {
        {.id = 5, .state = GX_JOB_SCHEDULED, .attempt = 1, .set = GX_STORE_SET_DEVICE,
         .device = 2, .time_ns = 100},
        {.id = 5, .state = GX_JOB_RUNNING, .attempt = 1, .set = GX_STORE_SET_START,
         .start_ns = 111, .time_ns = 111},
        {.id = 5, .state = GX_JOB_SUCCEEDED, .attempt = 1,
         .set = GX_STORE_SET_END | GX_STORE_SET_RESULT, .end_ns = 222,
         .result_json = "{\"y\":\"sha256:ab\"}", .time_ns = 222,
         .from_mask = 1u << GX_JOB_RUNNING},
    };
    assert_int_equal(gx_store_update_jobs(f->s, u, 3, 1, codes, &err), 3);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[2], 0);
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, 5, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_SUCCEEDED);
    assert_int_equal(g->attempt, 1);
    assert_int_equal(g->device, 2);
    assert_int_equal(g->start_ns, 111);
    assert_int_equal(g->end_ns, 222);
    assert_string_equal(g->result_json, "{\"y\":\"sha256:ab\"}");
    assert_null(g->error);
    gx_store_free(g);

    gx_store_event *ev = NULL;
    size_t n = 0;
    TU_OK(gx_store_job_events(f->s, 5, &ev, &n, &err), err);
    assert_int_equal(n, 4); /* the submission, then the three updates */
    assert_int_equal(ev[0].seq, 1);
    assert_int_equal(ev[0].state, GX_JOB_QUEUED);
    assert_int_equal(ev[0].attempt, 0);
    for (size_t i = 1; i < n; i++) {
        assert_int_equal(ev[i].job_id, 5);
        assert_int_equal(ev[i].seq, (int)i + 1);
        assert_int_equal(ev[i].state, u[i - 1].state);
        assert_int_equal(ev[i].time_ns, u[i - 1].time_ns);
        assert_int_equal(ev[i].attempt, 1);
    }
    gx_store_free(ev);

    /* a late write of attempt 0 is ignored; so is a CAS from the wrong state */
    gx_store_update stale = {.id = 5, .state = GX_JOB_FAILED, .attempt = 0,
                             .set = GX_STORE_SET_ERROR | GX_STORE_SET_END,
                             .error_code = GX_EKERNEL, .error = "late failure"};
    gx_store_update cas = {.id = 5, .state = GX_JOB_CANCELLED, .attempt = 1,
                           .from_mask = (1u << GX_JOB_QUEUED) | (1u << GX_JOB_RUNNING)};
    gx_store_update missing = {.id = 777, .state = GX_JOB_RUNNING, .attempt = 1};
    gx_store_update mix[3] = {stale, cas, missing};
    assert_int_equal(gx_store_update_jobs(f->s, mix, 3, 1, codes, &err), 0);
    assert_int_equal(codes[0], GX_ESTATE);
    assert_int_equal(codes[1], GX_ESTATE);
    assert_int_equal(codes[2], GX_ENOTFOUND);
    TU_OK(gx_store_get_job(f->s, 5, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_SUCCEEDED);
    assert_int_equal(g->end_ns, 222);
    assert_null(g->error);
    gx_store_free(g);
    TU_OK(gx_store_job_events(f->s, 5, &ev, &n, &err), err);
    assert_int_equal(n, 4); /* nothing appended */
    gx_store_free(ev);

    /* a newer attempt is applied and records its error in the event */
    gx_store_update retry = {.id = 5, .state = GX_JOB_RETRYING, .attempt = 2,
                             .set = GX_STORE_SET_ERROR, .error_code = GX_ETRANSIENT,
                             .error = "device busy"};
    assert_int_equal(gx_store_update_jobs(f->s, &retry, 1, 1, NULL, &err), 1);
    TU_OK(gx_store_job_events(f->s, 5, &ev, &n, &err), err);
    assert_int_equal(n, 5);
    assert_int_equal(ev[4].attempt, 2);
    assert_int_equal(ev[4].error_code, GX_ETRANSIENT);
    assert_string_equal(ev[4].error, "device busy");
    assert_true(ev[4].time_ns > 0); /* filled by the store */
    gx_store_free(ev);

    /* non-waiting updates land in order; flush waits for them */
    for (int i = 0; i < 10; i++) {
        gx_store_update a = {.id = 5, .state = i % 2 ? GX_JOB_RUNNING : GX_JOB_SCHEDULED,
                             .attempt = 3 + i, .set = GX_STORE_SET_ERROR,
                             .error = i == 9 ? "last" : "x"};
        assert_int_equal(gx_store_update_jobs(f->s, &a, 1, 0, NULL, &err), 0);
    }
    TU_OK(gx_store_flush(f->s, &err), err);
    TU_OK(gx_store_get_job(f->s, 5, &g, &err), err);
    assert_int_equal(g->attempt, 12);
    assert_int_equal(g->state, GX_JOB_RUNNING);
    assert_string_equal(g->error, "last");
    gx_store_free(g);
    TU_OK(gx_store_job_events(f->s, 5, &ev, &n, &err), err);
    assert_int_equal(n, 15);
    gx_store_free(ev);

    /* malformed updates refuse the whole call */
    gx_store_update bad = {.id = 5, .state = 99, .attempt = 1};
    assert_int_equal(gx_store_update_jobs(f->s, &bad, 1, 1, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "ups[0].state");
    assert_int_equal(gx_store_job_events(f->s, 4242, &ev, &n, &err), GX_ENOTFOUND);
}

/* ---- concurrency ----------------------------------------------------------------- */

enum { CONC_THREADS = 8, CONC_EACH = 300 };

typedef struct conc_arg {
    gx_store *s;
    uint64_t *next_id;
    int failures;
} conc_arg;

static void *conc_main(void *p) {
    conc_arg *a = p;
    for (int i = 0; i < CONC_EACH; i++) {
        jbuf b;
        uint64_t id = __atomic_fetch_add(a->next_id, 1, __ATOMIC_RELAXED);
        mkjob(&b, id, tenants3[id % 3], "saxpy@1", GX_JOB_QUEUED);
        gx_store_insert_result r;
        if (insert1(a->s, &b.j, &r) != 1 || r.job_id != id) a->failures++;
    }
    return NULL;
}

static void concurrent_group_commit(void **st) {
    fx *f = *st;
    uint64_t next_id = 1;
    pthread_t th[CONC_THREADS];
    conc_arg args[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        args[i] = (conc_arg){f->s, &next_id, 0};
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &args[i]), 0);
    }
    for (int i = 0; i < CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    const uint64_t total = CONC_THREADS * CONC_EACH;
    gx_store_filter fl = {.limit = 10000};
    gx_store_job *jobs = NULL;
    size_t n = 0;
    gx_error err;
    TU_OK(gx_store_list_jobs(f->s, &fl, &jobs, &n, NULL, &err), err);
    assert_int_equal(n, total);
    for (size_t i = 0; i < n; i++) assert_int_equal(jobs[i].id, i + 1);
    gx_store_free(jobs);
    gx_store_stats stt;
    gx_store_stats_get(f->s, &stt);
    assert_int_equal(stt.rows, total);
    assert_int_equal(stt.requests, total);
    assert_int_equal(stt.failed_commits, 0);
    /* grouping: fewer commits than inserts */
    assert_true(stt.commits < total);
    assert_true(stt.max_rows_per_commit > 1);
    uint64_t hist = 0;
    for (int i = 0; i < GX_STORE_LAT_BUCKETS; i++) hist += stt.commit_latency[i];
    assert_int_equal(hist, stt.commits);
    assert_true(stt.commit_seconds_sum > 0);
    print_message("    %llu inserts in %llu commits (max %llu per commit)\n",
                  (unsigned long long)total, (unsigned long long)stt.commits,
                  (unsigned long long)stt.max_rows_per_commit);
}

/* ---- restart ----------------------------------------------------------------------- */

typedef struct seen {
    uint64_t ids[16];
    int state[16], attempt[16];
    int n;
} seen;

static int collect_job(void *ctx, const gx_store_job *j) {
    seen *s = ctx;
    if (s->n == 16) return GX_EOVERFLOW;
    s->ids[s->n] = j->id;
    s->state[s->n] = j->state;
    s->attempt[s->n] = j->attempt;
    s->n++;
    return 0;
}

static int stop_at_two(void *ctx, const gx_store_job *j) {
    int *n = ctx;
    (void)j;
    return ++*n == 2 ? GX_ECANCELED : 0;
}

static void restart_recovery(void **st) {
    fx *f = *st;
    static const int states[] = {GX_JOB_QUEUED,    GX_JOB_WAITING, GX_JOB_SCHEDULED,
                                 GX_JOB_RUNNING,   GX_JOB_SUCCEEDED, GX_JOB_RETRYING,
                                 GX_JOB_FAILED,    GX_JOB_CANCELLED, GX_JOB_TIMED_OUT,
                                 GX_JOB_DEAD,      GX_JOB_RUNNING};
    enum { NS = sizeof states / sizeof states[0] };
    jbuf b[NS];
    gx_store_job jobs[NS];
    gx_store_insert_result res[NS];
    for (int i = 0; i < NS; i++) {
        mkjob(&b[i], 10 * (uint64_t)(NS - i), "alpha", "saxpy@1", states[i]); /* ids descend */
        b[i].j.attempt = 1;
        if (states[i] == GX_JOB_RUNNING) b[i].j.device = 1, b[i].j.start_ns = 5;
        jobs[i] = b[i].j;
    }
    gx_error err;
    assert_int_equal(gx_store_insert_jobs(f->s, jobs, NS, res, &err), NS);
    gx_store_close(f->s);

    f->s = open_default(f);
    seen s = {0};
    int64_t requeued = -1;
    TU_OK(gx_store_load_unfinished(f->s, collect_job, &s, &requeued, &err), err);
    assert_int_equal(requeued, 3); /* scheduled + 2 running */
    assert_int_equal(s.n, 6);      /* queued, waiting, retrying + the 3 re-queued */
    for (int i = 1; i < s.n; i++) assert_true(s.ids[i] > s.ids[i - 1]);
    for (int i = 0; i < s.n; i++) {
        int orig = states[NS - s.ids[i] / 10];
        assert_true(orig < GX_JOB_SUCCEEDED);
        if (orig == GX_JOB_SCHEDULED || orig == GX_JOB_RUNNING) {
            assert_int_equal(s.state[i], GX_JOB_QUEUED);
            assert_int_equal(s.attempt[i], 2);
        } else {
            assert_int_equal(s.state[i], orig);
            assert_int_equal(s.attempt[i], 1);
        }
    }
    /* the re-queued running job: device cleared, an event says why */
    uint64_t run_id = 10 * (uint64_t)(NS - 3);
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, run_id, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_QUEUED);
    assert_int_equal(g->device, -1);
    assert_int_equal(g->start_ns, 0);
    gx_store_free(g);
    gx_store_event *ev = NULL;
    size_t n = 0;
    TU_OK(gx_store_job_events(f->s, run_id, &ev, &n, &err), err);
    assert_int_equal(n, 2); /* submission, requeue */
    assert_int_equal(ev[1].state, GX_JOB_QUEUED);
    assert_int_equal(ev[1].attempt, 2);
    assert_string_equal(ev[1].error, "requeued after restart");
    gx_store_free(ev);
    /* a stale writer of attempt 1 is now fenced off */
    gx_store_update late = {.id = run_id, .state = GX_JOB_SUCCEEDED, .attempt = 1};
    int code = 0;
    assert_int_equal(gx_store_update_jobs(f->s, &late, 1, 1, &code, &err), 0);
    assert_int_equal(code, GX_ESTATE);
    /* a second load re-queues nothing; a callback can stop the scan */
    int cnt = 0;
    assert_int_equal(gx_store_load_unfinished(f->s, stop_at_two, &cnt, &requeued, &err),
                     GX_ECANCELED);
    assert_int_equal(requeued, 0);
    assert_int_equal(cnt, 2);
}

/* ---- blobs ------------------------------------------------------------------------- */

static int count_files(const char *dir) {
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_files(p);
        else
            n++;
    }
    closedir(d);
    return n;
}

static void blobs(void **st) {
    fx *f = *st;
    char blobdir[320];
    snprintf(blobdir, sizeof blobdir, "%s.blobs", f->path);
    char id[GX_STORE_BLOB_ID_LEN], id2[GX_STORE_BLOB_ID_LEN];
    gx_error err;
    TU_OK(gx_store_blob_put(f->s, "alpha", "hello", 5, id, &err), err);
    assert_string_equal(id,
                        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    void *bytes = NULL;
    size_t len = 0;
    TU_OK(gx_store_blob_read(f->s, "alpha", id, &bytes, &len, &err), err);
    assert_int_equal(len, 5);
    assert_memory_equal(bytes, "hello", 5);
    gx_store_free(bytes);
    char path[512];
    int64_t size = 0;
    TU_OK(gx_store_blob_open(f->s, "alpha", id, path, sizeof path, &size, &err), err);
    assert_int_equal(size, 5);
    assert_non_null(strstr(path, "/2c/2cf24dba"));
    assert_int_equal(count_files(blobdir), 1);

    /* dedupe: the same bytes again store nothing new */
    TU_OK(gx_store_blob_put(f->s, "alpha", "hello", 5, id2, &err), err);
    assert_string_equal(id, id2);
    assert_int_equal(count_files(blobdir), 1);

    /* a file damaged on disk but of the same size is written again by the
     * next upload of its bytes (it used to count as stored for good) */
    /* (a new file in its place: a change in place within the same clock
     * tick as the last check keeps the file's times, and a file checked
     * lately is not hashed again until they change or 10 minutes pass) */
    char dpath[600];
    snprintf(dpath, sizeof dpath, "%s.damaged", path);
    FILE *dmg = fopen(dpath, "wb");
    assert_non_null(dmg);
    fputs("jello", dmg);
    fclose(dmg);
    assert_int_equal(rename(dpath, path), 0);
    /* until then it is never served: both ways of reading check the id */
    assert_int_equal(gx_store_blob_read(f->s, "alpha", id, &bytes, &len, &err), GX_ESTORE);
    assert_null(bytes);
    assert_non_null(strstr(err.message, "damaged (their SHA-256 is not the id's); upload the file again"));
    assert_int_equal(gx_store_blob_open(f->s, "alpha", id, path, sizeof path, &size, &err), GX_ESTORE);
    assert_string_equal(path, "");
    assert_non_null(strstr(err.message, "damaged (their SHA-256 is not the id's)"));
    TU_OK(gx_store_blob_put(f->s, "alpha", "hello", 5, id2, &err), err);
    TU_OK(gx_store_blob_open(f->s, "alpha", id, path, sizeof path, &size, &err), err);
    TU_OK(gx_store_blob_read(f->s, "alpha", id, &bytes, &len, &err), err);
    assert_memory_equal(bytes, "hello", 5);
    gx_store_free(bytes);
    assert_int_equal(count_files(blobdir), 1);

    /* an open blob is the file that was checked: one renamed over its path
     * afterwards (damaged) is not what the descriptor reads */
    int bfd = -1;
    TU_OK(gx_store_blob_open_fd(f->s, "alpha", id, &bfd, &size, &err), err);
    dmg = fopen(dpath, "wb");
    assert_non_null(dmg);
    fputs("jelly", dmg);
    fclose(dmg);
    assert_int_equal(rename(dpath, path), 0);
    char got[8] = "";
    assert_int_equal(pread(bfd, got, 5, 0), 5);
    assert_memory_equal(got, "hello", 5);
    close(bfd);
    assert_int_equal(gx_store_blob_open_fd(f->s, "alpha", id, &bfd, &size, &err), GX_ESTORE);
    assert_int_equal(bfd, -1);
    TU_OK(gx_store_blob_put(f->s, "alpha", "hello", 5, id2, &err), err);

    /* any owner (an admin's read): found by id alone; an unknown id is not */
    TU_OK(gx_store_blob_open(f->s, NULL, id, path, sizeof path, &size, &err), err);
    assert_int_equal(size, 5);
    assert_int_equal(gx_store_blob_open(f->s, NULL, "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                        path, sizeof path, &size, &err),
                     GX_ENOTFOUND);

    /* ownership: another tenant does not see it until it uploads the bytes */
    assert_int_equal(gx_store_blob_read(f->s, "beta", id, &bytes, &len, &err), GX_ENOTFOUND);
    assert_null(bytes);
    assert_int_equal(gx_store_blob_open(f->s, "beta", id, path, sizeof path, &size, &err),
                     GX_ENOTFOUND);
    assert_string_equal(path, "");
    /* beta's upload writes the bytes afresh (a new file, synced) though
     * alpha's are there: an upload that only compared took a fraction of
     * the time, which told beta that some tenant held these bytes. Once
     * beta owns the blob, its repeats store nothing. */
    struct stat before, after;
    TU_OK(gx_store_blob_open(f->s, "alpha", id, path, sizeof path, &size, &err), err);
    assert_int_equal(stat(path, &before), 0);
    TU_OK(gx_store_blob_put(f->s, "beta", "hello", 5, id2, &err), err);
    assert_string_equal(id, id2);
    assert_int_equal(stat(path, &after), 0);
    assert_true(after.st_ino != before.st_ino);
    TU_OK(gx_store_blob_put(f->s, "beta", "hello", 5, id2, &err), err);
    assert_int_equal(stat(path, &before), 0);
    assert_true(after.st_ino == before.st_ino);
    TU_OK(gx_store_blob_put(f->s, "alpha", "hello", 5, id2, &err), err);
    assert_int_equal(stat(path, &before), 0);
    assert_true(after.st_ino == before.st_ino);
    TU_OK(gx_store_blob_read(f->s, "beta", id, &bytes, &len, &err), err);
    gx_store_free(bytes);
    assert_int_equal(count_files(blobdir), 1);

    /* the empty blob and a bigger one */
    TU_OK(gx_store_blob_put(f->s, "alpha", NULL, 0, id2, &err), err);
    assert_string_equal(id2,
                        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    TU_OK(gx_store_blob_read(f->s, "alpha", id2, &bytes, &len, &err), err);
    assert_non_null(bytes);
    assert_int_equal(len, 0);
    gx_store_free(bytes);
    size_t big = 1 << 20;
    unsigned char *data = malloc(big);
    for (size_t i = 0; i < big; i++) data[i] = (unsigned char)(tu_rand() >> 24);
    TU_OK(gx_store_blob_put(f->s, "gamma", data, big, id2, &err), err);
    TU_OK(gx_store_blob_read(f->s, "gamma", id2, &bytes, &len, &err), err);
    assert_int_equal(len, big);
    assert_memory_equal(bytes, data, big);
    gx_store_free(bytes);
    free(data);
    assert_int_equal(count_files(blobdir), 3);

    /* hostile and malformed ids never reach the file system */
    const char *bad[] = {
        "sha256:../../etc/passwd",
        "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
        "sha256:2cf24dba",
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98240",
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982/",
        "sha512:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "sha256:/cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "",
        NULL,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(gx_store_blob_id_valid(bad[i]));
        assert_int_equal(gx_store_blob_read(f->s, "alpha", bad[i], &bytes, &len, &err),
                         GX_EINVAL);
        assert_int_equal(gx_store_blob_open(f->s, "alpha", bad[i], path, sizeof path, &size, &err),
                         GX_EINVAL);
    }
    assert_true(gx_store_blob_id_valid(id));
    /* a well-formed id nobody uploaded */
    assert_int_equal(
        gx_store_blob_read(f->s, "alpha",
                           "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                           &bytes, &len, &err),
        GX_ENOTFOUND);
    assert_int_equal(gx_store_blob_put(f->s, "../x", "a", 1, id2, &err), GX_EINVAL);
}

/* ---- tenants ----------------------------------------------------------------------- */

static void tenants(void **st) {
    fx *f = *st;
    gx_error err;
    gx_store_tenant t = {.name = "vision", .weight = 2, .max_running = 8};
    TU_OK(gx_store_tenant_upsert(f->s, &t, &err), err);
    t = (gx_store_tenant){.name = "audio", .weight = 1, .quotas_json = "{\"gpu_mem\":1024}"};
    TU_OK(gx_store_tenant_upsert(f->s, &t, &err), err);
    gx_store_tenant *g = NULL;
    TU_OK(gx_store_tenant_get(f->s, "vision", &g, &err), err);
    assert_string_equal(g->name, "vision");
    assert_true(g->weight == 2);
    assert_int_equal(g->max_running, 8);
    assert_null(g->quotas_json);
    int64_t created = g->created_ns;
    assert_true(created > 0);
    gx_store_free(g);
    t = (gx_store_tenant){.name = "vision", .weight = 3, .max_running = 4};
    TU_OK(gx_store_tenant_upsert(f->s, &t, &err), err);
    TU_OK(gx_store_tenant_get(f->s, "vision", &g, &err), err);
    assert_true(g->weight == 3);
    assert_int_equal(g->max_running, 4);
    assert_int_equal(g->created_ns, created);
    assert_true(g->updated_ns >= created);
    gx_store_free(g);
    gx_store_tenant *all = NULL;
    size_t n = 0;
    TU_OK(gx_store_tenant_list(f->s, &all, &n, &err), err);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].name, "audio");
    assert_string_equal(all[0].quotas_json, "{\"gpu_mem\":1024}");
    assert_string_equal(all[1].name, "vision");
    gx_store_free(all);
    assert_int_equal(gx_store_tenant_get(f->s, "nobody", &g, &err), GX_ENOTFOUND);
    t = (gx_store_tenant){.name = "bad name", .weight = 1};
    assert_int_equal(gx_store_tenant_upsert(f->s, &t, &err), GX_EINVAL);
    t = (gx_store_tenant){.name = "ok", .weight = 0};
    assert_int_equal(gx_store_tenant_upsert(f->s, &t, &err), GX_EINVAL);
    assert_string_equal(err.field, "weight");
}

/* Settings: set, replace, delete, list by prefix (taken literally), kept
 * across a reopen; bad keys and values refused. */
static void settings(void **st) {
    fx *f = *st;
    gx_error err;
    gx_store_setting *v = NULL;
    size_t n = 9;
    TU_OK(gx_store_settings_get(f->s, "", &v, &n, &err), err);
    assert_int_equal(n, 0);
    gx_store_free(v);
    TU_OK(gx_store_setting_put(f->s, "device.drain/cuda:0", "x", &err), err);
    TU_OK(gx_store_setting_put(f->s, "device.drain/cuda:0", "1", &err), err); /* replaced */
    TU_OK(gx_store_setting_put(f->s, "device.drain/cpu", "1", &err), err);
    TU_OK(gx_store_setting_put(f->s, "device.drainer", "no", &err), err);
    TU_OK(gx_store_setting_put(f->s, "a%b_c", "literal", &err), err);
    TU_OK(gx_store_setting_put(f->s, "gone", "soon", &err), err);
    TU_OK(gx_store_setting_put(f->s, "gone", NULL, &err), err);     /* deleted */
    TU_OK(gx_store_setting_put(f->s, "never", NULL, &err), err);    /* deleting nothing is fine */
    gx_store_close(f->s);
    f->s = open_default(f);
    TU_OK(gx_store_settings_get(f->s, "device.drain/", &v, &n, &err), err);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].key, "device.drain/cpu");
    assert_string_equal(v[1].key, "device.drain/cuda:0");
    assert_string_equal(v[1].value, "1");
    assert_true(v[1].updated_ns > 0);
    gx_store_free(v);
    TU_OK(gx_store_settings_get(f->s, "a%", &v, &n, &err), err);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].value, "literal");
    gx_store_free(v);
    TU_OK(gx_store_settings_get(f->s, "a_", &v, &n, &err), err); /* '_' is no wildcard */
    assert_int_equal(n, 0);
    gx_store_free(v);
    TU_OK(gx_store_settings_get(f->s, NULL, &v, &n, &err), err);
    assert_int_equal(n, 4);
    gx_store_free(v);
    char longkey[202], *longval = malloc(65538);
    assert_non_null(longval);
    memset(longkey, 'k', 201);
    longkey[201] = '\0';
    memset(longval, 'v', 65537);
    longval[65537] = '\0';
    const char *badkeys[] = {NULL, "", "with space", "tab\there", "caf\xc3\xa9", longkey};
    for (size_t i = 0; i < sizeof badkeys / sizeof *badkeys; i++) {
        assert_int_equal(gx_store_setting_put(f->s, badkeys[i], "1", &err), GX_EINVAL);
        assert_string_equal(err.field, "key");
    }
    /* several at once: one transaction, all or none */
    gx_store_stats s0, s1;
    gx_store_stats_get(f->s, &s0);
    const char *ks[] = {"m/1", "m/2", "device.drainer"}, *vs[] = {"one", "two", NULL};
    TU_OK(gx_store_settings_put(f->s, ks, vs, 3, &err), err);
    gx_store_stats_get(f->s, &s1);
    assert_int_equal(s1.commits - s0.commits, 1);
    TU_OK(gx_store_settings_get(f->s, "m/", &v, &n, &err), err);
    assert_int_equal(n, 2);
    assert_string_equal(v[1].value, "two");
    gx_store_free(v);
    TU_OK(gx_store_settings_get(f->s, "device.drainer", &v, &n, &err), err);
    assert_int_equal(n, 0); /* deleted with them */
    gx_store_free(v);
    const char *bk[] = {"m/3", "bad key"}, *bv[] = {"x", "y"};
    assert_int_equal(gx_store_settings_put(f->s, bk, bv, 2, &err), GX_EINVAL);
    TU_OK(gx_store_settings_get(f->s, "m/3", &v, &n, &err), err);
    assert_int_equal(n, 0);
    gx_store_free(v);
    assert_int_equal(gx_store_setting_put(f->s, "k", longval, &err), GX_EINVAL);
    assert_string_equal(err.field, "value");
    longval[65536] = '\0';
    TU_OK(gx_store_setting_put(f->s, "k", longval, &err), err);
    free(longval);
}

/* ---- failures ------------------------------------------------------------------------ */

typedef struct bg_insert {
    gx_store *s;
    uint64_t id;
    int64_t rc;
    gx_error err;
} bg_insert;

static void *bg_insert_main(void *p) {
    bg_insert *a = p;
    jbuf b;
    mkjob(&b, a->id, "alpha", "saxpy@1", GX_JOB_QUEUED);
    gx_store_insert_result r;
    a->rc = gx_store_insert_jobs(a->s, &b.j, 1, &r, &a->err);
    return NULL;
}

/* n jobs from first with a spec of ~1 KiB each. */
/* n jobs from id first, each with a 1 KiB spec (*spec: free it after). */
static gx_store_job *big_jobs(uint64_t first, size_t n, char **spec) {
    gx_store_job *jobs = calloc(n, sizeof *jobs);
    *spec = malloc(1024);
    memset(*spec, 'x', 1023);
    (*spec)[0] = '"';
    (*spec)[1022] = '"';
    (*spec)[1023] = '\0';
    for (size_t i = 0; i < n; i++)
        jobs[i] = (gx_store_job){.id = first + i, .tenant = "alpha", .kernel = "saxpy@1", .spec_json = *spec,
                                 .device = -1};
    return jobs;
}

static int64_t insert_big(gx_store *s, uint64_t first, size_t n, gx_error *err) {
    char *spec;
    gx_store_job *jobs = big_jobs(first, n, &spec);
    gx_store_insert_result *res = calloc(n, sizeof *res);
    int64_t rc = gx_store_insert_jobs(s, jobs, n, res, err);
    for (size_t i = 0; rc < 0 && i < n; i++) assert_int_equal(res[i].code, rc);
    free(jobs);
    free(res);
    free(spec);
    return rc;
}

static void disk_full_rolls_back_group(void **st) {
    fx *f = *st;
    gx_store_close(f->s);
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.test_max_page_count = 64; /* 256 KiB */
    cfg.commit_delay_us = 200000; /* so that two callers share a group below */
    f->s = open_cfg(f, &cfg);
    gx_error err;
    assert_int_equal(insert_big(f->s, 1, 20, &err), 20);

    /* 1000 jobs of 1 KiB cannot fit: the whole batch rolls back, including
     * the rows that were written before the database filled up */
    assert_int_equal(insert_big(f->s, 1000, 1000, &err), GX_ESTORE);
    assert_non_null(strstr(err.message, "full"));
    gx_store_job *g = NULL;
    assert_int_equal(gx_store_get_job(f->s, 1000, &g, &err), GX_ENOTFOUND);
    assert_int_equal(count_all(f->s, NULL), 20);

    /* a small insert that shares its group with the failing one fails too */
    bg_insert bg = {.s = f->s, .id = 500};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bg_insert_main, &bg), 0);
    usleep(20000);
    assert_int_equal(insert_big(f->s, 3000, 1000, &err), GX_ESTORE);
    pthread_join(th, NULL);
    assert_int_equal(bg.rc, GX_ESTORE);
    assert_int_equal(bg.err.code, GX_ESTORE);
    assert_int_equal(count_all(f->s, NULL), 20);
    gx_store_stats stt;
    gx_store_stats_get(f->s, &stt);
    assert_int_equal(stt.failed_commits, 2);

    /* the store still works and the database is sound */
    assert_int_equal(insert_big(f->s, 21, 2, &err), 2);
    char msg[256];
    assert_int_equal(gx_store_check(f->s, msg, sizeof msg), 0);
    assert_string_equal(msg, "ok");
}

/* A job's end is not undone by a late write of the same attempt (a
 * "queued" that reached the store after its "succeeded", whether in the
 * same write or a later one); a newer attempt or a compare-and-set still
 * moves it. */
static void late_write_cannot_undo_end(void **st) {
    fx *f = *st;
    jbuf b;
    gx_store_insert_result res;
    gx_error err;
    mkjob(&b, 1, "t", "spin@1", GX_JOB_QUEUED);
    assert_int_equal(insert1(f->s, &b.j, &res), 1);
    gx_store_update ups[3] = {
        {.id = 1, .state = GX_JOB_RUNNING, .attempt = 1, .set = GX_STORE_SET_START, .start_ns = 10},
        {.id = 1, .state = GX_JOB_SUCCEEDED, .attempt = 1, .set = GX_STORE_SET_END, .end_ns = 20},
        {.id = 1, .state = GX_JOB_QUEUED, .attempt = 1},
    };
    int codes[3];
    assert_int_equal(gx_store_update_jobs(f->s, ups, 3, 1, codes, &err), 2);
    assert_int_equal(codes[0], 0);
    assert_int_equal(codes[1], 0);
    assert_int_equal(codes[2], GX_ESTATE);
    assert_int_equal(gx_store_update_jobs(f->s, &ups[2], 1, 1, codes, &err), 0);
    assert_int_equal(codes[0], GX_ESTATE);
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, 1, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_SUCCEEDED);
    assert_int_equal(g->end_ns, 20);
    gx_store_free(g);
    gx_store_event *ev = NULL;
    size_t n = 0;
    TU_OK(gx_store_job_events(f->s, 1, &ev, &n, &err), err);
    assert_int_equal(n, 3); /* queued, running, succeeded: nothing after the end */
    assert_int_equal(ev[2].state, GX_JOB_SUCCEEDED);
    gx_store_free(ev);
    /* an operator's re-queue (compare-and-set from the end) moves it */
    gx_store_update cas = {.id = 1, .state = GX_JOB_QUEUED, .attempt = 1,
                           .from_mask = 1u << GX_JOB_SUCCEEDED | 1u << GX_JOB_FAILED};
    assert_int_equal(gx_store_update_jobs(f->s, &cas, 1, 1, codes, &err), 1);
    assert_int_equal(codes[0], 0);
    TU_OK(gx_store_get_job(f->s, 1, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_QUEUED);
    gx_store_free(g);
}

/* f's store opened again with cfg and room for 256 KiB: a big insert fails. */
static void reopen_small(fx *f, gx_store_config *cfg) {
    gx_store_close(f->s);
    cfg->test_max_page_count = 64;
    f->s = open_cfg(f, cfg);
}

/* gx_store_config.on_commit: once per committed transaction, with its rows
 * and time; never for a rolled-back one. */
typedef struct commits_seen {
    int calls;
    size_t rows;
    double seconds;
} commits_seen;

static void on_commit_count(void *ctx, size_t rows, double seconds) {
    commits_seen *c = ctx;
    c->calls++;
    c->rows += rows;
    c->seconds += seconds;
}

static void commit_hook(void **st) {
    fx *f = *st;
    commits_seen seen = {0};
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.on_commit = on_commit_count;
    cfg.on_commit_ctx = &seen;
    reopen_small(f, &cfg);
    gx_error err;
    assert_int_equal(insert_big(f->s, 1, 20, &err), 20);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.rows, 20);
    assert_true(seen.seconds > 0);
    gx_store_update u = {.id = 3, .state = GX_JOB_RUNNING, .attempt = 1};
    assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 1, NULL, &err), 1);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.rows, 21);
    assert_int_equal(insert_big(f->s, 1000, 1000, &err), GX_ESTORE); /* rolled back: not reported */
    assert_int_equal(seen.calls, 2);
    gx_store_stats stt;
    gx_store_stats_get(f->s, &stt);
    assert_int_equal(stt.commits, (uint64_t)seen.calls);
    assert_int_equal(stt.rows, (uint64_t)seen.rows);
}

/* gx_store_config.after_callbacks: after the callbacks of every group of
 * async inserts, committed or failed, on the thread that ran them (the
 * committer); a call with nothing valid is called back at once on the
 * caller's thread, with no after_callbacks. */
typedef struct after_seen {
    pthread_t caller;   /* this test's thread */
    atomic_int pending; /* callbacks on the committer not yet followed by after_callbacks */
    atomic_int afters, on_caller, wrong_thread;
    int64_t rc[3];
} after_seen;

static after_seen g_after;

static void after_cb_done(void *ctx, int64_t rc, const gx_error *err) {
    (void)err;
    int k = (int)(intptr_t)ctx;
    g_after.rc[k] = rc;
    if (pthread_equal(pthread_self(), g_after.caller))
        atomic_fetch_add(&g_after.on_caller, 1);
    else
        atomic_fetch_add(&g_after.pending, 1);
}

static void after_cbs(void *ctx) {
    after_seen *a = ctx;
    if (pthread_equal(pthread_self(), a->caller)) atomic_fetch_add(&a->wrong_thread, 1);
    atomic_store(&a->pending, 0);
    atomic_fetch_add(&a->afters, 1);
}

static void after_callbacks_hook(void **st) {
    fx *f = *st;
    memset(&g_after, 0, sizeof g_after);
    g_after.caller = pthread_self();
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.after_callbacks = after_cbs;
    cfg.after_callbacks_ctx = &g_after;
    reopen_small(f, &cfg);
    gx_error err;
    jbuf ok, bad;
    gx_store_insert_result r0, r2;
    mkjob(&ok, 7, "alpha", "saxpy@1", GX_JOB_QUEUED);
    mkjob(&bad, 8, "alpha", "saxpy@1", GX_JOB_QUEUED);
    bad.j.tenant = NULL;
    /* one that commits */
    TU_OK(gx_store_insert_jobs_async(f->s, &ok.j, 1, &r0, after_cb_done, (void *)(intptr_t)0, &err), err);
    gx_store_flush(f->s, NULL); /* its own transaction */
    for (int t = 0; t < 5000 && atomic_load(&g_after.afters) < 1; t++) usleep(1000);
    assert_int_equal(atomic_load(&g_after.afters), 1);
    assert_int_equal(atomic_load(&g_after.pending), 0);
    /* one that fails at its commit: 1,000 rows of 1 KiB past the page limit */
    enum { N = 1000 };
    char *spec;
    gx_store_job *jobs = big_jobs(100, N, &spec);
    gx_store_insert_result *res = calloc(N, sizeof *res);
    TU_OK(gx_store_insert_jobs_async(f->s, jobs, N, res, after_cb_done, (void *)(intptr_t)1, &err), err);
    /* one with nothing valid */
    TU_OK(gx_store_insert_jobs_async(f->s, &bad.j, 1, &r2, after_cb_done, (void *)(intptr_t)2, &err), err);
    assert_int_equal(atomic_load(&g_after.on_caller), 1); /* at once */
    gx_store_flush(f->s, NULL);
    for (int t = 0; t < 5000 && atomic_load(&g_after.afters) < 2; t++) usleep(1000);
    assert_int_equal(g_after.rc[0], 1);
    assert_true(g_after.rc[1] < 0);
    assert_int_equal(g_after.rc[2], 0);
    assert_int_equal(r2.code, GX_EINVAL);
    assert_int_equal(atomic_load(&g_after.afters), 2); /* the failed commit's too */
    assert_int_equal(atomic_load(&g_after.on_caller), 1);
    assert_int_equal(atomic_load(&g_after.pending), 0); /* every callback was followed by after_callbacks */
    assert_int_equal(atomic_load(&g_after.wrong_thread), 0);
    free(jobs);
    free(res);
    free(spec);
}

/* A backend that fails every write group while `failing` is set: drives the
 * failure reporting of non-waiting updates without depending on page sizes. */
static int failing;
static int failing_write_group(gx_store_backend *b, gx_store_write *const *w, size_t n,
                               gx_error *err) {
    if (__atomic_load_n(&failing, __ATOMIC_ACQUIRE))
        return gx_error_set(err, GX_ESTORE, NULL, "injected I/O error");
    return gx_store_sqlite_ops.write_group(b, w, n, err);
}

static void async_failure_reported_by_flush(void **st) {
    fx *f = *st;
    static gx_store_ops ops;
    ops = gx_store_sqlite_ops;
    ops.write_group = failing_write_group;
    reopen_ops(f, &ops);
    gx_error err;
    jbuf b;
    gx_store_insert_result r;
    mkjob(&b, 1, "alpha", "saxpy@1", GX_JOB_QUEUED);
    assert_int_equal(insert1(f->s, &b.j, &r), 1);
    __atomic_store_n(&failing, 1, __ATOMIC_RELEASE);
    gx_store_update u = {.id = 1, .state = GX_JOB_RUNNING, .attempt = 1};
    assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 0, NULL, &err), 0);
    assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 0, NULL, &err), 0);
    assert_int_equal(gx_store_flush(f->s, &err), GX_ESTORE);
    assert_non_null(strstr(err.message, "injected"));
    __atomic_store_n(&failing, 0, __ATOMIC_RELEASE);
    TU_OK(gx_store_flush(f->s, &err), err); /* reported once */
    gx_store_stats stt;
    gx_store_stats_get(f->s, &stt);
    assert_int_equal(stt.async_failures, 2);
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, 1, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_QUEUED);
    gx_store_free(g);
}

/* ---- injected faults (gexec_fault.h) ------------------------------------------------- */

/* Insert one queued job; its record stays in *b. */
static void insert_queued(fx *f, jbuf *b, uint64_t id, const char *kernel) {
    gx_store_insert_result r;
    mkjob(b, id, "alpha", kernel, GX_JOB_QUEUED);
    assert_int_equal(insert1(f->s, &b->j, &r), 1);
}

static void injected_faults_roll_back(void **st) {
    fx *f = *st;
    gx_error err;
    jbuf b;
    gx_store_insert_result r;
    insert_queued(f, &b, 1, "saxpy@1");
    /* a failed commit with a chosen code: nothing of the group stays */
    gx_fault_spec fs = {.point = GX_FAULT_STORE_COMMIT, .device = -1, .count = 1, .code = GX_EBUSY};
    TU_OK(gx_fault_arm(&fs, &err), err);
    gx_store_update u = {.id = 1, .state = GX_JOB_RUNNING, .attempt = 1};
    mkjob(&b, 2, "alpha", "saxpy@1", GX_JOB_QUEUED);
    assert_int_equal(gx_store_insert_jobs(f->s, &b.j, 1, &r, &err), GX_EBUSY);
    assert_int_equal(r.code, GX_EBUSY);
    assert_non_null(strstr(err.message, "injected"));
    assert_int_equal(count_all(f->s, NULL), 1);
    /* consumed: the next one commits */
    assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 1, NULL, &err), 1);
    /* a full disk, for commits and blob bytes alike, until cleared */
    fs = (gx_fault_spec){.point = GX_FAULT_STORE_FULL, .device = -1, .count = -1};
    TU_OK(gx_fault_arm(&fs, &err), err);
    assert_int_equal(gx_store_insert_jobs(f->s, &b.j, 1, &r, &err), GX_ESTORE);
    assert_non_null(strstr(err.message, "full"));
    char id[GX_STORE_BLOB_ID_LEN];
    assert_int_equal(gx_store_blob_put(f->s, "alpha", "abc", 3, id, &err), GX_ESTORE);
    assert_non_null(strstr(err.message, "No space"));
    gx_store_update u2 = {.id = 1, .state = GX_JOB_SUCCEEDED, .attempt = 1};
    assert_int_equal(gx_store_update_jobs(f->s, &u2, 1, 1, NULL, &err), GX_ESTORE);
    gx_fault_clear(GX_FAULT__COUNT);
    assert_int_equal(count_all(f->s, NULL), 1);
    gx_store_job *g = NULL;
    TU_OK(gx_store_get_job(f->s, 1, &g, &err), err);
    assert_int_equal(g->state, GX_JOB_RUNNING);
    gx_store_free(g);
    /* a slow store still commits */
    fs = (gx_fault_spec){.point = GX_FAULT_STORE_SLOW, .device = -1, .count = 2, .delay_us = 1000};
    TU_OK(gx_fault_arm(&fs, &err), err);
    int64_t fired = gx_fault_fired_total();
    assert_int_equal(gx_store_insert_jobs(f->s, &b.j, 1, &r, &err), 1);
    assert_int_equal(gx_fault_fired_total(), fired + 1);
    gx_fault_clear(GX_FAULT__COUNT);
    char msg[64];
    assert_int_equal(gx_store_check(f->s, msg, sizeof msg), 0);
    gx_store_stats stt;
    gx_store_stats_get(f->s, &stt);
    assert_int_equal(stt.failed_commits, 3);
}

/* ---- checkpoints ---------------------------------------------------------------------- */

static void checkpoints(void **st) {
    fx *f = *st;
    gx_error err;
    jbuf b;
    insert_queued(f, &b, 7, "linreg_gd@1");
    int stored = -1, att = 0;
    int64_t step = 0;
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(gx_store_checkpoint_get(f->s, 7, &att, &step, &bytes, &len, &err), GX_ENOTFOUND);
    TU_OK(gx_store_checkpoint_put(f->s, 7, 1, 100, "first", 5, &stored, &err), err);
    assert_int_equal(stored, 1);
    TU_OK(gx_store_checkpoint_put(f->s, 7, 1, 200, "second!", 7, &stored, &err), err);
    TU_OK(gx_store_checkpoint_get(f->s, 7, &att, &step, &bytes, &len, &err), err);
    assert_int_equal(step, 200); /* the latest only */
    assert_int_equal(att, 1);
    assert_int_equal(len, 7);
    assert_memory_equal(bytes, "second!", 7);
    gx_store_free(bytes);
    /* none for a job that does not exist */
    TU_OK(gx_store_checkpoint_put(f->s, 8, 1, 100, "x", 1, &stored, &err), err);
    assert_int_equal(stored, 0);
    assert_int_equal(gx_store_checkpoint_put(f->s, 0, 1, 1, "x", 1, NULL, &err), GX_EINVAL);
    /* survives a reopen; goes when the job ends */
    gx_store_close(f->s);
    f->s = open_default(f);
    TU_OK(gx_store_checkpoint_get(f->s, 7, &att, &step, &bytes, &len, &err), err);
    gx_store_free(bytes);
    gx_store_update u = {.id = 7, .state = GX_JOB_SUCCEEDED, .attempt = 1};
    assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 1, NULL, &err), 1);
    assert_int_equal(gx_store_checkpoint_get(f->s, 7, &att, &step, &bytes, &len, &err), GX_ENOTFOUND);
    TU_OK(gx_store_checkpoint_put(f->s, 7, 1, 300, "late", 4, &stored, &err), err);
    assert_int_equal(stored, 0); /* a final job takes none */
}

/* ---- schema ------------------------------------------------------------------------- */

static void schema_versions(void **st) {
    fx *f = *st;
    char msg[128];
    assert_int_equal(gx_store_check(f->s, msg, sizeof msg), 0);
    assert_string_equal(msg, "ok");
    gx_store_close(f->s);
    f->s = open_default(f); /* reopening an existing database */
    gx_store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES(99)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.path = f->path;
    gx_error err;
    gx_store *s = NULL;
    assert_int_equal(gx_store_open(&cfg, &s, &err), GX_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "99"));
    assert_null(s);
    /* a version 1 database (events as job_events rows, no checkpoints)
     * gains the checkpoints table and the events column; a job's old
     * event rows come first, then the events written since */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM schema_version WHERE version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    f->s = open_default(f);
    jbuf b;
    insert_queued(f, &b, 1, "linreg_gd@1");
    gx_store_close(f->s);
    f->s = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DELETE FROM schema_version WHERE version > 1; DROP TABLE checkpoints;"
                                  " DROP TABLE settings;"
                                  " DROP INDEX blobs_used; DROP INDEX blobs_doomed; DROP INDEX blob_owners_id;"
                                  " ALTER TABLE blobs DROP COLUMN used_ns; ALTER TABLE blobs DROP COLUMN doomed_ns;"
                                  " DROP VIEW job_event_rows; ALTER TABLE jobs DROP COLUMN ev;"
                                  " UPDATE jobs SET state = 2, attempt = 1, nevents = 2 WHERE id = 1;"
                                  " INSERT INTO job_events VALUES(1, 1, 0, 0, 10, 0, NULL),"
                                  " (1, 2, 2, 1, 20, 0, 'old note');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    f->s = open_default(f);
    TU_OK(gx_store_setting_put(f->s, "device.drain/cpu", "1", &err), err); /* schema 4 */
    int stored = 0;
    TU_OK(gx_store_checkpoint_put(f->s, 1, 1, 5, "s", 1, &stored, &err), err);
    assert_int_equal(stored, 1);
    gx_store_update done = {.id = 1, .state = GX_JOB_FAILED, .attempt = 1, .time_ns = 30,
                            .set = GX_STORE_SET_ERROR | GX_STORE_SET_END, .end_ns = 30,
                            .error_code = GX_EKERNEL, .error = "two\nlines"};
    assert_int_equal(gx_store_update_jobs(f->s, &done, 1, 1, NULL, &err), 1);
    gx_store_event *ev = NULL;
    size_t n = 0;
    TU_OK(gx_store_job_events(f->s, 1, &ev, &n, &err), err);
    assert_int_equal(n, 3);
    assert_int_equal(ev[0].seq, 1);
    assert_int_equal(ev[0].time_ns, 10);
    assert_null(ev[0].error);
    assert_int_equal(ev[1].seq, 2);
    assert_string_equal(ev[1].error, "old note");
    assert_int_equal(ev[2].seq, 3);
    assert_int_equal(ev[2].state, GX_JOB_FAILED);
    assert_int_equal(ev[2].attempt, 1);
    assert_int_equal(ev[2].time_ns, 30);
    assert_int_equal(ev[2].error_code, GX_EKERNEL);
    assert_string_equal(ev[2].error, "two lines"); /* control characters become spaces */
    gx_store_free(ev);
    /* the view shows the same three, for SQL readers */
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT group_concat(seq || ':' || state || ':' || attempt || ':' || time_ns"
                                        " || ':' || error_code || ':' || coalesce(error, '-'), '|')"
                                        " FROM (SELECT * FROM job_event_rows WHERE job_id = 1 ORDER BY seq)",
                                        -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    char want[128];
    snprintf(want, sizeof want, "1:0:0:10:0:-|2:2:1:20:0:old note|3:%d:1:30:%d:two lines", GX_JOB_FAILED,
             GX_EKERNEL);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), want);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* The WAL is copied into the database by the background thread while the
 * store is open (it once never was: its connection did not know the
 * database was in WAL mode, and the WAL grew until the writer stalled). */
static void wal_checkpointed_in_background(void **st) {
    fx *f = *st;
    gx_store_close(f->s);
    f->s = NULL;
    unlink(f->path);
    gx_store_config cfg;
    gx_store_config_init(&cfg);
    cfg.wal_checkpoint_bytes = 64 << 10;
    f->s = open_cfg(f, &cfg);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    off_t before = sb.st_size;
    char wal[600];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    jbuf b;
    /* 12 commits of 2-4 frames: past the 16 frames that wake the
     * checkpoint thread, short of the 64 at which the writer would
     * checkpoint inline itself */
    for (uint64_t id = 1; id <= 12; id++) {
        gx_store_insert_result r;
        mkjob(&b, id, "alpha", "saxpy@1", GX_JOB_QUEUED);
        assert_int_equal(insert1(f->s, &b.j, &r), 1);
    }
    int grown = 0;
    for (int i = 0; i < 500 && !grown; i++) {
        assert_int_equal(stat(f->path, &sb), 0);
        grown = sb.st_size > before;
        if (!grown) usleep(10000);
    }
    assert_true(grown);
    assert_int_equal(stat(wal, &sb), 0); /* still open: the WAL is there */
}

/* ---- retention ---------------------------------------------------------------- */

static int job_exists(gx_store *s, uint64_t id) {
    gx_store_job *j = NULL;
    gx_error err;
    int rc = gx_store_get_job(s, id, &j, &err);
    gx_store_free(j);
    if (rc && rc != GX_ENOTFOUND) fail_msg("get_job %llu: %s", (unsigned long long)id, err.message);
    return rc == 0;
}

/* A finished job that ended before the cutoff goes with its events; an
 * unfinished one (however old) and one that ended after the cutoff stay;
 * the scan stops at the first job submitted after the cutoff, and a small
 * max_jobs splits the work over calls that go on from the cursor. */
static void purge_jobs(void **st) {
    fx *f = *st;
    gx_error err;
    const int64_t t0 = 1700000000000000000LL;
    /* ids 1..10 ended at t0 + id, but 5 was stamped by a clock an hour
     * ahead; 11 unfinished; 12 ended at t0 + 1000; 13 submitted at
     * t0 + 2000 and ended at once */
    const int64_t ahead = t0 + (int64_t)3600 * 1000000000;
    for (uint64_t id = 1; id <= 13; id++) {
        jbuf b;
        gx_store_insert_result r;
        mkjob(&b, id, "alpha", "saxpy@1", GX_JOB_QUEUED);
        b.j.submit_ns = id == 13 ? t0 + 2000 : id == 5 ? ahead : t0 + (int64_t)id - 100;
        assert_int_equal(insert1(f->s, &b.j, &r), 1);
        if (id == 11) continue;
        gx_store_update u = {.id = id, .state = id % 2 ? GX_JOB_SUCCEEDED : GX_JOB_FAILED, .attempt = 1,
                             .set = GX_STORE_SET_END,
                             .end_ns = id == 12 ? t0 + 1000 : id == 13 ? t0 + 2000 : id == 5 ? ahead : t0 + (int64_t)id};
        assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 1, NULL, &err), 1);
    }
    int stored = 0;
    TU_OK(gx_store_checkpoint_put(f->s, 11, 0, 1, "s", 1, &stored, &err), err);
    assert_int_equal(stored, 1);
    gx_store_purge_result pr = {0};
    /* cutoff t0 + 500: jobs 1..10 but 5 go, 4 per call (5 does not stop
     * the scan) */
    int calls = 0;
    int64_t total = 0;
    do {
        TU_OK(gx_store_purge(f->s, t0 + 500, 4, 0, 0, &pr, &err), err);
        total += pr.jobs;
        calls++;
        assert_true(calls < 10);
    } while (pr.more);
    assert_int_equal(total, 9);
    assert_int_equal(calls, 3);
    for (uint64_t id = 1; id <= 10; id++) assert_int_equal(job_exists(f->s, id), id == 5);
    assert_true(job_exists(f->s, 11));
    assert_true(job_exists(f->s, 12));
    assert_true(job_exists(f->s, 13));
    gx_store_event *ev = NULL;
    size_t n = 0;
    assert_int_equal(gx_store_job_events(f->s, 3, &ev, &n, &err), GX_ENOTFOUND);
    /* the unfinished job kept its checkpoint */
    void *bytes = NULL;
    size_t len = 0;
    int attempt = 0;
    int64_t step = 0;
    TU_OK(gx_store_checkpoint_get(f->s, 11, &attempt, &step, &bytes, &len, &err), err);
    gx_store_free(bytes);
    /* nothing left before the cutoff: a new cycle deletes nothing */
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, t0 + 500, 4, 0, 0, &pr, &err), err);
    assert_int_equal(pr.jobs, 0);
    assert_int_equal(pr.more, 0);
    /* a later cutoff takes 12 and 13 */
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, t0 + 5000, 100, 0, 0, &pr, &err), err);
    assert_int_equal(pr.jobs, 2);
    assert_true(job_exists(f->s, 11));
    assert_int_equal(count_all(f->s, NULL), 2); /* 5 and 11 */
    /* the newest ids went: they are never given again (after a restart
     * the next job was id 12 once more) */
    uint64_t mx = 0;
    TU_OK(gx_store_max_job_id(f->s, &mx, &err), err);
    assert_int_equal(mx, 13);
    gx_store_close(f->s);
    f->s = open_default(f);
    TU_OK(gx_store_max_job_id(f->s, &mx, &err), err);
    assert_int_equal(mx, 13);
    char msg[128];
    assert_int_equal(gx_store_check(f->s, msg, sizeof msg), 0);
}

/* Blobs: doomed when unused since the cutoff and not named by an
 * unfinished job, deleted (row and file) by a later call, unless an upload
 * of the same bytes or a job naming it took it back in between; a job
 * naming a blob deleted meanwhile (or no longer its tenant's) is refused at
 * its commit. */
static void purge_blobs(void **st) {
    fx *f = *st;
    gx_error err;
    char blobdir[320];
    snprintf(blobdir, sizeof blobdir, "%s.blobs", f->path);
    char a[GX_STORE_BLOB_ID_LEN], b[GX_STORE_BLOB_ID_LEN], c[GX_STORE_BLOB_ID_LEN], d[GX_STORE_BLOB_ID_LEN];
    TU_OK(gx_store_blob_put(f->s, "alpha", "aaaa", 4, a, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "bbbb", 4, b, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "cccc", 4, c, &err), err);
    TU_OK(gx_store_blob_put(f->s, "beta", "dddd", 4, d, &err), err);
    assert_int_equal(count_files(blobdir), 4);
    /* an unfinished job names b */
    jbuf jb;
    gx_store_insert_result r;
    mkjob(&jb, 1, "alpha", "saxpy@1", GX_JOB_QUEUED);
    char spec[256];
    snprintf(spec, sizeof spec, "{\"inputs\":{\"x\":{\"blob\":\"%s\"}},\"kernel\":\"saxpy\"}", b);
    jb.j.spec_json = spec;
    assert_int_equal(insert1(f->s, &jb.j, &r), 1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t later = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec + (int64_t)3600 * 1000000000;
    gx_store_purge_result pr = {0};
    TU_OK(gx_store_purge(f->s, 0, 1, later, 0, &pr, &err), err);
    assert_int_equal(pr.blobs_doomed, 3); /* a, c, d */
    assert_int_equal(pr.blobs_deleted, 0);
    /* doomed blobs are still there for their owners */
    void *bytes = NULL;
    size_t len = 0;
    TU_OK(gx_store_blob_read(f->s, "alpha", a, &bytes, &len, &err), err);
    gx_store_free(bytes);
    /* c uploaded again, d named by a new job: taken back */
    char c2[GX_STORE_BLOB_ID_LEN];
    TU_OK(gx_store_blob_put(f->s, "alpha", "cccc", 4, c2, &err), err);
    mkjob(&jb, 2, "beta", "saxpy@1", GX_JOB_QUEUED);
    snprintf(spec, sizeof spec, "{\"inputs\":{\"y\":{\"blob\":\"%s\"}},\"kernel\":\"saxpy\"}", d);
    jb.j.spec_json = spec;
    assert_int_equal(insert1(f->s, &jb.j, &r), 1);
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, 0, 1, 0, later, &pr, &err), err);
    assert_int_equal(pr.blobs_deleted, 1); /* a */
    assert_int_equal(count_files(blobdir), 3);
    assert_int_equal(gx_store_blob_read(f->s, "alpha", a, &bytes, &len, &err), GX_ENOTFOUND);
    TU_OK(gx_store_blob_read(f->s, "alpha", c, &bytes, &len, &err), err);
    gx_store_free(bytes);
    TU_OK(gx_store_blob_read(f->s, "beta", d, &bytes, &len, &err), err);
    gx_store_free(bytes);
    /* a job naming the deleted a is refused at its commit, nothing stored */
    mkjob(&jb, 3, "alpha", "saxpy@1", GX_JOB_QUEUED);
    snprintf(spec, sizeof spec, "{\"inputs\":{\"x\":{\"blob\":\"%s\"}},\"kernel\":\"saxpy\"}", a);
    jb.j.spec_json = spec;
    assert_int_equal(insert1(f->s, &jb.j, &r), 0);
    assert_int_equal(r.code, GX_ENOTFOUND);
    assert_false(job_exists(f->s, 3));
    /* uploaded again by another tenant: still not alpha's to use (a job
     * decoded while a was alpha's, committed after the re-upload) */
    TU_OK(gx_store_blob_put(f->s, "beta", "aaaa", 4, a, &err), err);
    assert_int_equal(insert1(f->s, &jb.j, &r), 0);
    assert_int_equal(r.code, GX_ENOTFOUND);
    assert_false(job_exists(f->s, 3));
    /* uploaded again, a is whole again */
    TU_OK(gx_store_blob_put(f->s, "alpha", "aaaa", 4, a, &err), err);
    TU_OK(gx_store_blob_read(f->s, "alpha", a, &bytes, &len, &err), err);
    assert_int_equal(len, 4);
    gx_store_free(bytes);
    /* once every job is done and purged, b goes too */
    for (uint64_t id = 1; id <= 2; id++) {
        gx_store_update u = {.id = id, .state = GX_JOB_SUCCEEDED, .attempt = 1, .set = GX_STORE_SET_END, .end_ns = 5};
        assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 1, NULL, &err), 1);
    }
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, later, 100, later, 0, &pr, &err), err);
    assert_int_equal(pr.jobs, 2);
    assert_int_equal(pr.blobs_doomed, 4); /* a, b, c, d: none named by an unfinished job */
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, 0, 1, 0, later, &pr, &err), err);
    assert_int_equal(pr.blobs_deleted, 4);
    assert_int_equal(count_files(blobdir), 0);
    char msg[128];
    assert_int_equal(gx_store_check(f->s, msg, sizeof msg), 0);
}

/* Every page of a listing, its ids into ids (cap at most; the count may
 * pass it), *pages (may be NULL) the pages read; each cursor goes on from
 * the page's last id or past it (where a read stopped), in the filter's
 * order. */
static size_t list_ordered(gx_store *s, gx_store_filter fl, uint64_t *ids, size_t cap, int *pages) {
    size_t found = 0;
    gx_error err;
    for (int p = 1;; p++) {
        if (pages) *pages = p;
        gx_store_job *jobs = NULL;
        size_t n = 0;
        uint64_t next = 0;
        TU_OK(gx_store_list_jobs(s, &fl, &jobs, &n, &next, &err), err);
        for (size_t i = 0; i < n; i++, found++)
            if (found < cap) ids[found] = jobs[i].id;
        if (n && next) assert_true(fl.desc ? next <= jobs[n - 1].id : next >= jobs[n - 1].id);
        gx_store_free(jobs);
        if (!next) break;
        if (fl.desc) {
            assert_true(!fl.before || next < fl.before);
            fl.before = next;
        } else {
            assert_true(next > fl.after);
            fl.after = next;
        }
    }
    return found;
}

enum { RARE_N = 45000 };

/* RARE_N jobs of alpha: kernel rare@1 at ids 101, 30001 and RARE_N,
 * saxpy@1 else; queued at ids 8 and RARE_N - 1, succeeded else. */
static void insert_rare(gx_store *s) {
    enum { N = RARE_N };
    jbuf *bs = calloc(N, sizeof *bs);
    gx_store_job *js = calloc(N, sizeof *js);
    gx_store_insert_result *rs = calloc(N, sizeof *rs);
    for (int i = 0; i < N; i++) {
        int rare = i == 100 || i == 30000 || i == N - 1;
        mkjob(&bs[i], (uint64_t)i + 1, "alpha", rare ? "rare@1" : "saxpy@1",
              i == 7 || i == N - 2 ? GX_JOB_QUEUED : GX_JOB_SUCCEEDED);
        js[i] = bs[i].j;
    }
    gx_error err;
    assert_int_equal(gx_store_insert_jobs(s, js, N, rs, &err), N);
    free(bs);
    free(js);
    free(rs);
}

/* A filter no index serves (kernel, label, a finished state) reads at most
 * 20,000 rows per page: a page may come back short, even empty, with a
 * cursor where the read stopped, and the pages together hold every match.
 * (A rare match used to read the tenant's whole history per page.) */
static void list_reads_bounded(void **st) {
    fx *f = *st;
    gx_error err;
    enum { N = RARE_N };
    insert_rare(f->s);
    gx_store_filter fl = {.tenant = "alpha", .kernel = "rare", .limit = 10};
    uint64_t got[8];
    int pages = 0;
    size_t ngot = list_ordered(f->s, fl, got, 8, &pages);
    assert_int_equal(ngot, 3);
    assert_int_equal(got[0], 101);
    assert_int_equal(got[1], 30001);
    assert_int_equal(got[2], N);
    assert_int_equal(pages, 3); /* rows 1-20000, 20001-40000, the rest */
    /* without a row filter a page is full and reads only what it shows */
    gx_store_filter all = {.tenant = "alpha", .limit = 7};
    gx_store_job *jobs = NULL;
    size_t n = 0;
    uint64_t next = 0;
    TU_OK(gx_store_list_jobs(f->s, &all, &jobs, &n, &next, &err), err);
    assert_int_equal(n, 7);
    assert_int_equal(next, 7);
    gx_store_free(jobs);
}

/* Newest first: every filter gives the jobs of oldest first, each once,
 * in the reverse order, page after page (7 a page, cursors in before);
 * a cursor in the middle goes on below it, and a bound below after is an
 * empty page. */
static void list_desc(void **st) {
    fx *f = *st;
    gx_error err;
    enum { N = 300 };
    jbuf *b = calloc(N, sizeof *b);
    gx_store_job *js = calloc(N, sizeof *js);
    gx_store_insert_result *rs = calloc(N, sizeof *rs);
    static const char *const kernels[] = {"saxpy@1", "saxpy@2", "saxpy_fast@2", "matmul@1"};
    for (int i = 0; i < N; i++) {
        mkjob(&b[i], (uint64_t)i + 1, i % 3 ? "alpha" : "beta", kernels[i % 4], i % 10);
        if (i % 5 == 0) {
            snprintf(b[i].labels, sizeof b[i].labels, "{\"team\":\"%s\"}", i % 10 ? "speech" : "vision");
            b[i].j.labels_json = b[i].labels;
        }
        js[i] = b[i].j;
    }
    assert_int_equal(gx_store_insert_jobs(f->s, js, N, rs, &err), N);
    const gx_store_filter filters[] = {
        {0},
        {.tenant = "beta"},
        {.state_mask = 1u << GX_JOB_QUEUED},
        {.state_mask = (1u << GX_JOB_QUEUED) | (1u << GX_JOB_RUNNING), .tenant = "alpha"},
        {.state_mask = 1u << GX_JOB_FAILED},
        {.state_mask = (1u << GX_JOB_FAILED) | (1u << GX_JOB_DEAD), .tenant = "beta"},
        {.kernel = "saxpy"},
        {.kernel = "saxpy_fast@2", .tenant = "alpha"},
        {.label_key = "team", .label_value = "vision"},
        {.label_key = "team", .label_value = "speech", .tenant = "alpha", .kernel = "saxpy@2",
         .state_mask = 1u << GX_JOB_DEAD | 1u << GX_JOB_QUEUED | 1u << GX_JOB_SUCCEEDED},
        {.tenant = "nobody"},
    };
    uint64_t asc[N], desc[N];
    for (size_t k = 0; k < sizeof filters / sizeof filters[0]; k++) {
        gx_store_filter fl = filters[k];
        fl.limit = 7;
        size_t na = list_ordered(f->s, fl, asc, N, NULL);
        fl.desc = 1;
        size_t nd = list_ordered(f->s, fl, desc, N, NULL);
        print_message("filter %zu: %zu jobs\n", k, na);
        assert_int_equal(nd, na);
        assert_true(na || k == sizeof filters / sizeof filters[0] - 1);
        for (size_t i = 0; i < na; i++) assert_int_equal(desc[i], asc[na - 1 - i]);
        /* from a cursor in the middle: what lies below it */
        fl.before = 150;
        size_t nm = list_ordered(f->s, fl, desc, N, NULL);
        size_t below = 0;
        for (size_t i = 0; i < na; i++) below += asc[i] < 150;
        assert_int_equal(nm, below);
        for (size_t i = 0; i < nm; i++) assert_true(desc[i] < 150);
    }
    /* after bounds a desc page from below; before <= after + 1 is empty */
    gx_store_job *jobs = NULL;
    size_t n = 0;
    uint64_t next = 1;
    TU_OK(gx_store_list_jobs(f->s, &(gx_store_filter){.desc = 1, .after = 290, .limit = 100}, &jobs, &n,
                             &next, &err), err);
    assert_int_equal(n, 10);
    assert_int_equal(jobs[0].id, 300);
    assert_int_equal(jobs[9].id, 291);
    assert_int_equal(next, 0);
    gx_store_free(jobs);
    TU_OK(gx_store_list_jobs(f->s, &(gx_store_filter){.desc = 1, .after = 5, .before = 6}, &jobs, &n,
                             &next, &err), err);
    assert_int_equal(n, 0);
    /* before is the desc cursor only: oldest first ignores it */
    TU_OK(gx_store_list_jobs(f->s, &(gx_store_filter){.before = 6, .limit = 10}, &jobs, &n, &next, &err),
          err);
    assert_int_equal(n, 10);
    gx_store_free(jobs);
    free(b);
    free(js);
    free(rs);
}

/* A rare match newest first reads at most 20,000 rows a page, as oldest
 * first does: short pages with a cursor where the read stopped. */
static void list_desc_bounded(void **st) {
    fx *f = *st;
    enum { N = RARE_N };
    insert_rare(f->s);
    gx_store_filter fl = {.tenant = "alpha", .kernel = "rare", .limit = 10, .desc = 1};
    int pages = 0;
    uint64_t got[8];
    assert_int_equal(list_ordered(f->s, fl, got, 8, &pages), 3);
    assert_int_equal(pages, 3); /* rows N down to 25001, 20000 more, the rest */
    assert_int_equal(got[0], N);
    assert_int_equal(got[1], 30001);
    assert_int_equal(got[2], 101);
    /* unfinished states along their own index, newest first */
    fl = (gx_store_filter){.tenant = "alpha", .state_mask = 1u << GX_JOB_QUEUED, .limit = 1, .desc = 1};
    assert_int_equal(list_ordered(f->s, fl, got, 8, NULL), 2);
    assert_int_equal(got[0], N - 1);
    assert_int_equal(got[1], 8);
}

/* Every listing variant, both orders, reads along an index (the rowid,
 * jobs_tenant or jobs_unfinished) in id order: no scan of the table, no
 * sort. */
static void list_plans(void **st) {
    fx *f = *st;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    for (unsigned v = 0; v < 64; v++) {
        if ((v & 3) == 3) continue; /* bit 0|1: the kernel, exact or by name, not both */
        gx_store_filter fl = {.tenant = v & 4 ? "alpha" : NULL,
                              .state_mask = v & 8 ? 1u << GX_JOB_QUEUED : v & 16 ? 1u << GX_JOB_FAILED : 0,
                              .kernel = v & 1 ? "saxpy@1" : v & 2 ? "saxpy" : NULL,
                              .label_key = v & 32 ? "team" : NULL,
                              .label_value = v & 32 ? "vision" : NULL};
        if ((v & 24) == 24) continue;
        for (int d = 0; d < 2; d++) {
            fl.desc = d;
            char sql[1024], eqp[1100];
            gx__sqlite_list_sql(&fl, sql, sizeof sql);
            snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
            sqlite3_stmt *st2 = NULL;
            assert_int_equal(sqlite3_prepare_v2(db, eqp, -1, &st2, NULL), SQLITE_OK);
            int searched = 0;
            while (sqlite3_step(st2) == SQLITE_ROW) {
                const char *dsc = (const char *)sqlite3_column_text(st2, 3);
                print_message("v %2u %s: %s\n", v, d ? "desc" : "asc ", dsc);
                if (strstr(dsc, "TEMP B-TREE") || strstr(dsc, "SCAN jobs"))
                    fail_msg("%s\nis read as: %s", sql, dsc);
                searched += !strncmp(dsc, "SEARCH jobs USING ", 18);
            }
            assert_int_equal(searched, 1);
            sqlite3_finalize(st2);
        }
    }
    sqlite3_close(db);
}

/* The upgrade to schema 5 counts every blob as used at the upgrade: jobs
 * named blobs without a trace before, so a blob first uploaded long ago
 * but used yesterday was deleted at the first check. */
static void purge_after_upgrade(void **st) {
    fx *f = *st;
    gx_error err;
    char a[GX_STORE_BLOB_ID_LEN];
    TU_OK(gx_store_blob_put(f->s, "alpha", "old bytes", 9, a, &err), err);
    gx_store_close(f->s);
    f->s = NULL;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP INDEX blobs_used; DROP INDEX blobs_doomed; DROP INDEX blob_owners_id;"
                                  " ALTER TABLE blobs DROP COLUMN used_ns; ALTER TABLE blobs DROP COLUMN doomed_ns;"
                                  " DELETE FROM schema_version WHERE version = 5;"
                                  " UPDATE blobs SET created_ns = 1000000000000000000;", /* 2001 */
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    f->s = open_default(f);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t day_ago = (int64_t)now.tv_sec * 1000000000 - (int64_t)86400 * 1000000000;
    gx_store_purge_result pr = {0};
    TU_OK(gx_store_purge(f->s, 0, 1, day_ago, 0, &pr, &err), err);
    assert_int_equal(pr.blobs_doomed, 0);
    void *bytes = NULL;
    size_t len = 0;
    TU_OK(gx_store_blob_read(f->s, "alpha", a, &bytes, &len, &err), err);
    gx_store_free(bytes);
}

/* A filter on unfinished states reads along the unfinished jobs of every
 * tenant, each counted: at most 20,000 per page (it read the tenant's whole
 * finished history, uncounted). */
static void list_unfinished_bounded(void **st) {
    fx *f = *st;
    gx_error err;
    enum { N = 25000 };
    jbuf *bs = calloc(N, sizeof *bs);
    gx_store_job *js = calloc(N, sizeof *js);
    gx_store_insert_result *rs = calloc(N, sizeof *rs);
    for (int i = 0; i < N; i++) {
        mkjob(&bs[i], (uint64_t)i + 1, i == N - 1 ? "alpha" : "beta", "saxpy@1", GX_JOB_QUEUED);
        js[i] = bs[i].j;
    }
    assert_int_equal(gx_store_insert_jobs(f->s, js, N, rs, &err), N);
    gx_store_filter fl = {.tenant = "alpha", .state_mask = 1u << GX_JOB_QUEUED, .limit = 10};
    int pages = 0;
    uint64_t got[2];
    size_t found = list_ordered(f->s, fl, got, 2, &pages);
    assert_int_equal(found, 1);
    assert_int_equal(got[0], N);
    assert_int_equal(pages, 2);
    free(bs);
    free(js);
    free(rs);
}

/* A repeat (same idempotency key) of a stored job whose input blob was
 * deleted since is answered with that job, as any repeat is (it was
 * refused: the blob is gone). */
static void purge_blob_idempotent_repeat(void **st) {
    fx *f = *st;
    gx_error err;
    char a[GX_STORE_BLOB_ID_LEN], spec[256];
    TU_OK(gx_store_blob_put(f->s, "alpha", "kkkk", 4, a, &err), err);
    snprintf(spec, sizeof spec, "{\"inputs\":{\"x\":{\"blob\":\"%s\"}},\"kernel\":\"saxpy\"}", a);
    jbuf jb;
    gx_store_insert_result r;
    mkjob(&jb, 1, "alpha", "saxpy@1", GX_JOB_QUEUED);
    jb.j.spec_json = spec;
    jb.j.idempotency_key = "nightly";
    assert_int_equal(insert1(f->s, &jb.j, &r), 1);
    gx_store_update u = {.id = 1, .state = GX_JOB_SUCCEEDED, .attempt = 1, .set = GX_STORE_SET_END, .end_ns = 5};
    assert_int_equal(gx_store_update_jobs(f->s, &u, 1, 1, NULL, &err), 1);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t later = (int64_t)now.tv_sec * 1000000000 + (int64_t)3600 * 1000000000;
    gx_store_purge_result pr = {0};
    TU_OK(gx_store_purge(f->s, 0, 1, later, 0, &pr, &err), err);
    assert_int_equal(pr.blobs_doomed, 1);
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, 0, 1, 0, later, &pr, &err), err);
    assert_int_equal(pr.blobs_deleted, 1);
    mkjob(&jb, 2, "alpha", "saxpy@1", GX_JOB_QUEUED);
    jb.j.spec_json = spec;
    jb.j.idempotency_key = "nightly";
    insert1(f->s, &jb.j, &r);
    assert_int_equal(r.code, GX_EEXIST);
    assert_int_equal(r.job_id, 1);
}

static int64_t wall_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* A job of alpha naming blob id, inserted, submitted at submit_ns. */
static void insert_naming(gx_store *s, uint64_t id, const char *blob, int64_t submit_ns) {
    jbuf jb;
    gx_store_insert_result r;
    mkjob(&jb, id, "alpha", "saxpy@1", GX_JOB_QUEUED);
    char spec[256];
    snprintf(spec, sizeof spec, "{\"inputs\":{\"x\":{\"blob\":\"%s\"}},\"kernel\":\"saxpy\"}", blob);
    jb.j.spec_json = spec;
    jb.j.submit_ns = submit_ns;
    assert_int_equal(insert1(s, &jb.j, &r), 1);
}

/* What the requeue route writes: a failed or dead job queued again. */
static int requeue(gx_store *s, uint64_t id, int attempt) {
    gx_store_update u = {.id = id, .state = GX_JOB_QUEUED, .attempt = attempt,
                         .set = GX_STORE_SET_START | GX_STORE_SET_END | GX_STORE_SET_DEVICE | GX_STORE_SET_ERROR,
                         .device = -1, .error = "requeued", .from_mask = 1u << GX_JOB_DEAD | 1u << GX_JOB_FAILED};
    int code = -1;
    gx_error err;
    assert_true(gx_store_update_jobs(s, &u, 1, 1, &code, &err) >= 0);
    return code;
}

static void fail_job(gx_store *s, uint64_t id) {
    gx_store_update u = {.id = id, .state = GX_JOB_FAILED, .attempt = 1, .set = GX_STORE_SET_END, .end_ns = wall_now()};
    gx_error err;
    assert_int_equal(gx_store_update_jobs(s, &u, 1, 1, NULL, &err), 1);
}

static void expect_blob(gx_store *s, const char *id, int want) {
    void *bytes = NULL;
    size_t len = 0;
    gx_error err;
    assert_int_equal(gx_store_blob_read(s, "alpha", id, &bytes, &len, &err), want);
    gx_store_free(bytes);
}

/* The retention's read half (blob_candidates) runs outside the write:
 * what happens between the two must not doom a blob in use. A backend
 * whose read half, once found, lets the test act before the write. */
static gx_store *between_store;
static void (*between_fn)(gx_store *s);
static int between_candidates(gx_store_backend *b, int64_t before_ns, size_t max, gx_store_blob_cand **out,
                              size_t *n, gx_error *err) {
    int rc = gx_store_sqlite_ops.blob_candidates(b, before_ns, max, out, n, err);
    if (!rc && between_fn) between_fn(between_store);
    return rc;
}

static char between_a[GX_STORE_BLOB_ID_LEN], between_b[GX_STORE_BLOB_ID_LEN], between_d[GX_STORE_BLOB_ID_LEN];
static int64_t between_old;
static void between_use(gx_store *s) {
    gx_error err;
    char id[GX_STORE_BLOB_ID_LEN];
    /* a uploaded again; b named by a new job; d by one admitted long
     * before (its submit time is older than d's last use: a slow commit, or
     * the clock stepped back); e's failed job 3 queued again */
    TU_OK(gx_store_blob_put(s, "alpha", "aaaa", 4, id, &err), err);
    insert_naming(s, 1, between_b, wall_now());
    insert_naming(s, 2, between_d, between_old);
    assert_int_equal(requeue(s, 3, 2), 0);
}

static void purge_blobs_used_meanwhile(void **st) {
    fx *f = *st;
    static gx_store_ops ops;
    ops = gx_store_sqlite_ops;
    ops.blob_candidates = between_candidates;
    reopen_ops(f, &ops);
    gx_error err;
    char c[GX_STORE_BLOB_ID_LEN], e[GX_STORE_BLOB_ID_LEN];
    between_old = wall_now(); /* before d's upload even: the use must still count */
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    TU_OK(gx_store_blob_put(f->s, "alpha", "aaaa", 4, between_a, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "bbbb", 4, between_b, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "cccc", 4, c, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "dddd", 4, between_d, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "eeee", 4, e, &err), err);
    insert_naming(f->s, 3, e, wall_now());
    fail_job(f->s, 3);
    nanosleep(&ts, NULL); /* the uploads' times are before the cutoff */
    int64_t cut = wall_now();
    nanosleep(&ts, NULL);
    between_store = f->s;
    between_fn = between_use;
    gx_store_purge_result pr = {0};
    TU_OK(gx_store_purge(f->s, 0, 1, cut, 0, &pr, &err), err);
    between_fn = NULL;
    assert_int_equal(pr.blobs_doomed, 1); /* c alone */
    /* the next call deletes what was doomed: c, none of the others */
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, 0, 1, 0, wall_now() + 1, &pr, &err), err);
    assert_int_equal(pr.blobs_deleted, 1);
    expect_blob(f->s, c, GX_ENOTFOUND);
    const char *kept[] = {between_a, between_b, between_d, e};
    for (int i = 0; i < 4; i++) expect_blob(f->s, kept[i], 0);
}

/* A failed job's blob doomed by one check is taken back when the job is
 * queued again before the next; once it is gone, the job cannot be queued
 * again (GX_ENOTFOUND: it stays failed). */
static void purge_blobs_requeue(void **st) {
    fx *f = *st;
    gx_error err;
    char x[GX_STORE_BLOB_ID_LEN], y[GX_STORE_BLOB_ID_LEN];
    TU_OK(gx_store_blob_put(f->s, "alpha", "xxxx", 4, x, &err), err);
    TU_OK(gx_store_blob_put(f->s, "alpha", "yyyy", 4, y, &err), err);
    insert_naming(f->s, 7, x, wall_now());
    insert_naming(f->s, 8, y, wall_now());
    fail_job(f->s, 7);
    fail_job(f->s, 8);
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    gx_store_purge_result pr = {0};
    TU_OK(gx_store_purge(f->s, 0, 1, wall_now(), 0, &pr, &err), err);
    assert_int_equal(pr.blobs_doomed, 2);
    assert_int_equal(requeue(f->s, 7, 2), 0);
    memset(&pr, 0, sizeof pr);
    TU_OK(gx_store_purge(f->s, 0, 1, 0, wall_now() + 1, &pr, &err), err);
    assert_int_equal(pr.blobs_deleted, 1); /* y */
    expect_blob(f->s, x, 0);
    expect_blob(f->s, y, GX_ENOTFOUND);
    assert_int_equal(requeue(f->s, 8, 2), GX_ENOTFOUND);
    gx_store_job *sj = NULL;
    TU_OK(gx_store_get_job(f->s, 8, &sj, &err), err);
    assert_int_equal(sj->state, GX_JOB_FAILED);
    gx_store_free(sj);
    TU_OK(gx_store_get_job(f->s, 7, &sj, &err), err);
    assert_int_equal(sj->state, GX_JOB_QUEUED);
    gx_store_free(sj);
}

/* Files no row names (a crash between a blob's file and its row) and
 * leftovers of interrupted writes are removed once old enough; a stored
 * blob's file, and young files, stay. */
static void blob_sweep_orphans(void **st) {
    fx *f = *st;
    gx_error err;
    char blobdir[320], a[GX_STORE_BLOB_ID_LEN];
    snprintf(blobdir, sizeof blobdir, "%s.blobs", f->path);
    TU_OK(gx_store_blob_put(f->s, "alpha", "kept", 4, a, &err), err);
    char shard[400], orphan[500], young[500], tmp[500], kept[600];
    snprintf(shard, sizeof shard, "%s/%.2s", blobdir, a + 7);
    snprintf(orphan, sizeof orphan, "%s/%.2s%062d", shard, a + 7, 7);
    snprintf(young, sizeof young, "%s/%.2s%062d", shard, a + 7, 8);
    snprintf(tmp, sizeof tmp, "%s/.tmp-%s-Ab12Cd", shard, a + 7);
    snprintf(kept, sizeof kept, "%s/%s", shard, a + 7);
    const char *old_files[] = {orphan, tmp, kept};
    for (int i = 0; i < 4; i++) {
        const char *p = i < 3 ? old_files[i] : young;
        if (i != 2) {
            FILE *fp = fopen(p, "wb");
            assert_non_null(fp);
            fputs("x", fp);
            fclose(fp);
        }
        if (i < 3) { /* two hours old */
            struct timeval tv[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
            assert_int_equal(utimes(p, tv), 0);
        }
    }
    int64_t removed = 0, total = 0;
    for (unsigned sh = 0; sh < 256; sh++) {
        TU_OK(gx_store_blob_sweep(f->s, sh, 3600, &removed, &err), err);
        total += removed;
    }
    assert_int_equal(total, 2);
    assert_int_not_equal(access(orphan, F_OK), 0);
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(access(young, F_OK), 0);
    void *bytes = NULL;
    size_t len = 0;
    TU_OK(gx_store_blob_read(f->s, "alpha", a, &bytes, &len, &err), err);
    assert_int_equal(len, 4);
    gx_store_free(bytes);
    assert_int_equal(gx_store_blob_sweep(f->s, 256, 0, NULL, &err), GX_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(read_only_file_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(insert_get_list, setup, teardown),
        cmocka_unit_test_setup_teardown(insert_invalid_records, setup, teardown),
        cmocka_unit_test_setup_teardown(idempotency, setup, teardown),
        cmocka_unit_test_setup_teardown(update_events_fencing, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(settings, setup, teardown),
        cmocka_unit_test_setup_teardown(async_inserts, setup, teardown),
        cmocka_unit_test_setup_teardown(big_update_among_inserts, setup, teardown),
        cmocka_unit_test_setup_teardown(disk_full_rolls_back_group, setup, teardown),
        cmocka_unit_test_setup_teardown(async_failure_reported_by_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(commit_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(after_callbacks_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(late_write_cannot_undo_end, setup, teardown),
        cmocka_unit_test_setup_teardown(schema_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(wal_checkpointed_in_background, setup, teardown),
        cmocka_unit_test_setup_teardown(injected_faults_roll_back, setup, teardown),
        cmocka_unit_test_setup_teardown(checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(list_reads_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(list_desc, setup, teardown),
        cmocka_unit_test_setup_teardown(list_desc_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(list_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_after_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(list_unfinished_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_blob_idempotent_repeat, setup, teardown),
        cmocka_unit_test_setup_teardown(blob_sweep_orphans, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_blobs_used_meanwhile, setup, teardown),
        cmocka_unit_test_setup_teardown(purge_blobs_requeue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
