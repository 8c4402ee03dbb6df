/*
 * test_crash.c - SIGKILL gexecd at random moments while clients submit
 * (single and batch), wait and cancel, then restart it; many cycles.
 *
 * After every restart the daemon's SQLite file is opened beside it and
 * checked: PRAGMA integrity_check is "ok", every job ever answered 202 is
 * there (acknowledged jobs lost must be 0), and attempts fence stale
 * writers: within a job the attempt numbers of its events never go down,
 * the job row carries the latest attempt, and a job has at most one
 * "succeeded" event, written by its last attempt. Some cycles also arm
 * store faults (failed commits, a slow store) so that refusals and retries
 * happen while the daemon dies. At the end every job reaches a final state.
 *
 * Settings (environment): GX_CRASH_CYCLES (default 50), GX_CRASH_SEED,
 * GX_CRASH_FAULTS (0: no store faults; default 1). scripts/soak runs it
 * with thousands of cycles. It prints its figures on one line:
 *   crash: cycles=N jobs=N lost=0 ready_ms min/median/max=...
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "itest.h"

static it_daemon D;

/* ---- acknowledged ids ------------------------------------------------------------------------ */

static pthread_mutex_t acked_mu = PTHREAD_MUTEX_INITIALIZER;
static long long *acked;
static size_t nacked, capacked;

static void ack(long long id) {
    pthread_mutex_lock(&acked_mu);
    if (nacked == capacked) {
        capacked = capacked ? capacked * 2 : 4096;
        acked = realloc(acked, capacked * sizeof *acked);
        assert_non_null(acked);
    }
    acked[nacked++] = id;
    pthread_mutex_unlock(&acked_mu);
}

static long long some_acked(unsigned *seed) {
    pthread_mutex_lock(&acked_mu);
    long long id = nacked ? acked[rand_r(seed) % nacked] : 0;
    pthread_mutex_unlock(&acked_mu);
    return id;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- clients --------------------------------------------------------------------------------- */

typedef struct client {
    atomic_int *stop;
    unsigned seed;
    int faults;
    long ops, refused;
} client;

static void spin_job(char *buf, size_t cap, unsigned *seed) {
    /* mostly no-ops, some that run long enough to be cut by the kill */
    int us = rand_r(seed) % 16 == 0 ? 1000 + rand_r(seed) % 5000 : 0;
    snprintf(buf, cap, "{\"kernel\":\"spin\",\"args\":{\"us\":%d},\"max_attempts\":3}", us);
}

static void *client_main(void *arg) {
    client *c = arg;
    char body[8192], path[96];
    while (!atomic_load(c->stop)) {
        int op = rand_r(&c->seed) % 10;
        it_resp r;
        int rc;
        if (op < 4) {
            spin_job(body, sizeof body, &c->seed);
            rc = it_req(&D, "POST", "/v1/jobs", body, strlen(body), NULL, &r);
            if (!rc && r.status == 202) ack(atoll(it_str(&r, "id")));
        } else if (op < 7) {
            int n = 2 + rand_r(&c->seed) % 20, len = snprintf(body, sizeof body, "{\"jobs\":[");
            for (int i = 0; i < n; i++) {
                char one[128];
                spin_job(one, sizeof one, &c->seed);
                len += snprintf(body + len, sizeof body - (size_t)len, "%s%s", i ? "," : "", one);
            }
            snprintf(body + len, sizeof body - (size_t)len, "]}");
            rc = it_req(&D, "POST", "/v1/jobs:batch", body, strlen(body), NULL, &r);
            if (!rc && r.status == 200) {
                json_t *res = json_object_get(r.json, "results");
                for (size_t i = 0; i < json_array_size(res); i++) {
                    json_t *it = json_array_get(res, i);
                    if (json_integer_value(json_object_get(it, "status")) == 202)
                        ack(atoll(json_string_value(json_object_get(it, "id"))));
                }
            }
        } else if (op < 9) {
            long long id = some_acked(&c->seed);
            snprintf(path, sizeof path, "/v1/jobs/%lld", id ? id : 1);
            rc = it_req(&D, "GET", path, NULL, 0, NULL, &r);
        } else {
            long long id = some_acked(&c->seed);
            snprintf(path, sizeof path, "/v1/jobs/%lld", id ? id : 1);
            rc = it_req(&D, "DELETE", path, NULL, 0, NULL, &r);
        }
        if (rc) {
            it_resp_free(&r);
            break; /* the daemon is gone */
        }
        if (r.status == 503) c->refused++;
        if (r.status >= 500 && r.status != 503) fail_msg("HTTP %ld: %s", r.status, r.body ? r.body : "");
        c->ops++;
        it_resp_free(&r);
        if (c->faults && rand_r(&c->seed) % 200 == 0) {
            /* a burst of failed commits or a slow store, while the kill may come */
            const char *f = rand_r(&c->seed) % 2 ? "{\"point\":\"store.commit\",\"count\":3}"
                                                  : "{\"point\":\"store.slow\",\"count\":20,\"delay_us\":5000}";
            if (!it_req(&D, "POST", "/v1/admin/faults", f, strlen(f), NULL, &r) && r.status != 200)
                fail_msg("arming a fault: %ld %s", r.status, r.body ? r.body : "");
            it_resp_free(&r);
        }
        if (rand_r(&c->seed) % 4 == 0) sleep_ms(1);
    }
    return NULL;
}

/* ---- checks on the file ---------------------------------------------------------------------- */

static long long scalar(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* Returns the number of acknowledged jobs missing from the store. */
static size_t check_store(void) {
    sqlite3 *db = it_store_open(&D, 0);
    assert_non_null(db);
    sqlite3_busy_timeout(db, 10000);
    /* one read transaction: every check sees the same snapshot */
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (strcmp((const char *)sqlite3_column_text(st, 0), "ok"))
        fail_msg("integrity_check: %s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    /* attempts never go down within a job's history */
    assert_int_equal(scalar(db, "SELECT count(*) FROM job_event_rows a JOIN job_event_rows b"
                                " ON b.job_id = a.job_id AND b.seq = a.seq + 1 WHERE b.attempt < a.attempt"),
                     0);
    /* the row carries the latest attempt */
    assert_int_equal(scalar(db, "SELECT count(*) FROM jobs j WHERE j.attempt <"
                                " (SELECT max(attempt) FROM job_event_rows e WHERE e.job_id = j.id)"),
                     0);
    /* a result is recorded once, by the last attempt */
    assert_int_equal(scalar(db, "SELECT count(*) FROM (SELECT job_id FROM job_event_rows WHERE state = 5"
                                " GROUP BY job_id HAVING count(*) > 1)"),
                     0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM jobs j JOIN job_event_rows e ON e.job_id = j.id AND e.state = 5"
                                " WHERE e.attempt < (SELECT max(attempt) FROM job_event_rows f WHERE f.job_id = j.id)"),
                     0);
    /* every acknowledged job is there */
    long long n = scalar(db, "SELECT count(*) FROM jobs");
    long long *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id FROM jobs ORDER BY id", -1, &st, NULL), SQLITE_OK);
    long long k = 0;
    while (k < n && sqlite3_step(st) == SQLITE_ROW) ids[k++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    size_t missing = 0;
    pthread_mutex_lock(&acked_mu);
    for (size_t i = 0; i < nacked; i++)
        if (!bsearch(&acked[i], ids, (size_t)k, sizeof *ids, cmp_ll)) {
            if (missing++ < 5) fprintf(stderr, "crash: acknowledged job %lld is missing\n", acked[i]);
        }
    pthread_mutex_unlock(&acked_mu);
    free(ids);
    return missing;
}

static int env_int(const char *name, int def) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : def;
}

static void crash_cycles(void **st) {
    (void)st;
    int cycles = env_int("GX_CRASH_CYCLES", 50), faults = env_int("GX_CRASH_FAULTS", 1);
    unsigned seed = (unsigned)env_int("GX_CRASH_SEED", (int)time(NULL));
    fprintf(stderr, "crash: seed %u (GX_CRASH_SEED), %d cycles\n", seed, cycles);
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=2";
    D.extra_env[3] = "GEXEC_CUDA_ENABLED=false"; /* the driver probe alone takes 70 ms */
    D.extra_env[1] = faults ? "GEXEC_FAULTS_ENABLED=true" : "GEXEC_FAULTS_ENABLED=false";
    D.extra_env[2] = "GEXEC_AUTH_RATE=1000000";
    int64_t *ready = calloc((size_t)cycles + 1, sizeof *ready);
    size_t lost = 0;
    long ops = 0, refused = 0;
    for (int cy = 0; cy <= cycles; cy++) {
        int64_t t0 = now_ms();
        if (it_start(&D)) fail_msg("cycle %d: gexecd did not become ready (log %s)", cy, D.log);
        ready[cy] = now_ms() - t0;
        lost += check_store();
        if (lost) fail_msg("cycle %d: %zu acknowledged jobs lost", cy, lost);
        if (cy == cycles) break;
        atomic_int stop = 0;
        client c[4];
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            c[i] = (client){.stop = &stop, .seed = seed * 31u + (unsigned)(cy * 4 + i), .faults = faults};
            pthread_create(&th[i], NULL, client_main, &c[i]);
        }
        sleep_ms(30 + (int)(rand_r(&seed) % 250));
        it_kill9(&D);
        atomic_store(&stop, 1);
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            ops += c[i].ops;
            refused += c[i].refused;
        }
    }
    /* everything ends: no faults now, wait for the queue to drain */
    it_resp r;
    assert_int_equal(it_req(&D, "DELETE", "/v1/admin/faults", NULL, 0, NULL, &r), 0);
    it_resp_free(&r);
    int64_t until = now_ms() + 60000;
    long long left = -1;
    while (now_ms() < until) {
        assert_int_equal(it_req(&D, "GET", "/v1/jobs?state=queued,waiting,scheduled,running,retrying&limit=1", NULL, 0,
                                NULL, &r),
                         0);
        left = (long long)json_array_size(json_object_get(r.json, "jobs"));
        it_resp_free(&r);
        if (left == 0) break;
        sleep_ms(100);
    }
    assert_int_equal(left, 0);
    assert_int_equal(check_store(), 0);
    assert_int_equal(it_stop(&D), 0);
    qsort(ready, (size_t)cycles + 1, sizeof *ready, cmp_ll);
    fprintf(stderr, "crash: cycles=%d jobs=%zu lost=%zu requests=%ld refused_503=%ld ready_ms min/median/max=%lld/%lld/%lld\n",
            cycles, nacked, lost, ops, refused, (long long)ready[0], (long long)ready[cycles / 2],
            (long long)ready[cycles]);
    free(ready);
    if (!getenv("GX_CRASH_KEEP")) it_cleanup(&D); /* keep: the data folder and gexecd.log stay */
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(crash_cycles)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
