/*
 * test_faults.c - store faults through a real gexecd: injected commit
 * failures, a full disk (injected ENOSPC, and a real one on a small tmpfs
 * when the test may mount one), a slow store; the admin fault API and its
 * refusals; dead-letter re-queue. The store is checked by opening the
 * daemon's SQLite file: after the faults it holds exactly the jobs that
 * were answered 202, and PRAGMA integrity_check says "ok".
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "itest.h"

#define SAXPY                                                                                              \
    "{\"kernel\":\"saxpy\",\"args\":{\"a\":2},\"inputs\":{\"x\":{\"dtype\":\"f32\",\"shape\":[2],\"data\":[1,2]}," \
    "\"y\":{\"dtype\":\"f32\",\"shape\":[2],\"data\":[3,4]}}}"

static it_daemon D; /* faults.enabled: true */

static int setup(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_FAULTS_ENABLED=true";
    D.extra_env[1] = "GEXEC_ENGINE_CPU_WORKERS=2";
    return it_start(&D);
}

static int teardown(void **st) {
    (void)st;
    return it_finish(&D);
}

static void req(it_daemon *d, const char *m, const char *p, const char *body, it_resp *r) {
    assert_int_equal(it_req(d, m, p, body, body ? strlen(body) : 0, NULL, r), 0);
}

/* One request that must answer `want`. */
static void expect_status(const char *m, const char *p, const char *body, long want) {
    it_resp r;
    req(&D, m, p, body, &r);
    if (r.status != want) fail_msg("%s %s: want %ld, got %ld %s", m, p, want, r.status, r.body ? r.body : "");
    it_resp_free(&r);
}

/* A new key of this role for the default tenant (its secret in key). */
static void make_key(const char *role, char *key, size_t cap) {
    char body[64];
    snprintf(body, sizeof body, "{\"role\":\"%s\"}", role);
    it_resp r;
    req(&D, "POST", "/v1/keys", body, &r);
    assert_int_equal(r.status, 201);
    snprintf(key, cap, "%s", it_str(&r, "key"));
    it_resp_free(&r);
}

/* Re-queue a job (200), then it fails again. It keeps its submit time, in
 * the answer too (which showed the time of the re-queue). */
static void requeue_fails_again(const char *id) {
    char path[96], was[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    it_resp r;
    req(&D, "GET", path, NULL, &r);
    snprintf(was, sizeof was, "%s", it_str(&r, "submitted_at"));
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/requeue", id);
    req(&D, "POST", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_str(&r, "submitted_at"), was);
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 10000), "failed");
}

static void arm(it_daemon *d, const char *body) {
    it_resp r;
    req(d, "POST", "/v1/admin/faults", body, &r);
    if (r.status != 200) fail_msg("arming %s: %ld %s", body, r.status, r.body);
    it_resp_free(&r);
}

static void clear_faults(it_daemon *d) {
    it_resp r;
    req(d, "DELETE", "/v1/admin/faults", NULL, &r);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
}

/* Ids the daemon answered 202 (single or batch). */
typedef struct idset {
    long long v[4096];
    int n;
} idset;

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Submit one job; 202 adds its id; returns the status. A 503 must carry
 * Retry-After and a JSON error naming GX_ESTORE. */
static long submit_one(it_daemon *d, idset *ok) {
    it_resp r;
    req(d, "POST", "/v1/jobs", SAXPY, &r);
    long st = r.status;
    if (st == 202) ok->v[ok->n++] = atoll(it_str(&r, "id"));
    if (st == 503) {
        assert_non_null(strstr(r.headers, "Retry-After: 1"));
        assert_string_equal(it_str(&r, "error.code"), "GX_ESTORE");
        assert_non_null(strstr(it_str(&r, "error.message"), "nothing was accepted"));
    }
    it_resp_free(&r);
    return st;
}

/* A batch of n jobs: 200 adds the ids; 503 as above. */
static long submit_batch(it_daemon *d, int n, idset *ok) {
    char body[8192];
    int len = snprintf(body, sizeof body, "{\"jobs\":[");
    for (int i = 0; i < n; i++) len += snprintf(body + len, sizeof body - (size_t)len, "%s%s", i ? "," : "", SAXPY);
    snprintf(body + len, sizeof body - (size_t)len, "]}");
    it_resp r;
    req(d, "POST", "/v1/jobs:batch", body, &r);
    long st = r.status;
    if (st == 200) {
        json_t *res = json_object_get(r.json, "results");
        for (size_t i = 0; i < json_array_size(res); i++) {
            json_t *it = json_array_get(res, i);
            assert_int_equal(json_integer_value(json_object_get(it, "status")), 202);
            ok->v[ok->n++] = atoll(json_string_value(json_object_get(it, "id")));
        }
    } else {
        assert_int_equal(st, 503);
        assert_non_null(strstr(r.headers, "Retry-After: 1"));
        assert_string_equal(it_str(&r, "error.code"), "GX_ESTORE");
    }
    it_resp_free(&r);
    return st;
}

/* The ids of the jobs table, sorted, and the integrity check of the file. */
static int store_ids(it_daemon *d, long long *out, int cap) {
    sqlite3 *db = it_store_open(d, 0);
    assert_non_null(db);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT id FROM jobs ORDER BY id", -1, &st, NULL), SQLITE_OK);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < cap) out[n++] = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* The store holds exactly the jobs answered 202, nothing else. */
static void store_equals(it_daemon *d, idset *ok) {
    static long long got[4096];
    int n = store_ids(d, got, 4096);
    qsort(ok->v, (size_t)ok->n, sizeof ok->v[0], cmp_ll);
    if (n != ok->n) fail_msg("store holds %d jobs, %d were acknowledged", n, ok->n);
    for (int i = 0; i < n; i++) assert_int_equal(got[i], ok->v[i]);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void commit_fault_503_nothing_half_written(void **st) {
    (void)st;
    static idset ok;
    ok.n = 0;
    for (int i = 0; i < 3; i++) assert_int_equal(submit_one(&D, &ok), 202);
    assert_int_equal(submit_batch(&D, 5, &ok), 200);
    /* every commit fails: singles and batches all answer 503 */
    arm(&D, "{\"point\":\"store.commit\",\"count\":-1}");
    for (int i = 0; i < 4; i++) assert_int_equal(submit_one(&D, &ok), 503);
    assert_int_equal(submit_batch(&D, 7, &ok), 503);
    /* the daemon is alive and says what is armed */
    it_resp r;
    req(&D, "GET", "/v1/admin/faults", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *f = json_array_get(json_object_get(r.json, "faults"), 0);
    assert_string_equal(json_string_value(json_object_get(f, "point")), "store.commit");
    assert_true(json_integer_value(json_object_get(f, "fired")) >= 5);
    it_resp_free(&r);
    req(&D, "GET", "/metrics", NULL, &r);
    const char *m = strstr(r.body, "\ngexec_store_failed_commits_total ");
    assert_non_null(m);
    assert_true(atol(m + strlen("\ngexec_store_failed_commits_total ")) >= 5);
    assert_non_null(strstr(r.body, "\ngexec_faults_injected_total "));
    it_resp_free(&r);
    /* the next 2 commits only: then it recovers by itself. First let the
     * persister write the state changes it kept retrying, so that the two
     * failures land on the two submissions and not on its commits. */
    clear_faults(&D);
    char settle[64];
    snprintf(settle, sizeof settle, "/v1/jobs/%lld/events", ok.v[0]);
    req(&D, "GET", settle, NULL, &r); /* reading events settles the persister */
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    arm(&D, "{\"point\":\"store.commit\",\"count\":2,\"code\":\"GX_ESTORE\"}");
    assert_int_equal(submit_one(&D, &ok), 503);
    assert_int_equal(submit_batch(&D, 3, &ok), 503);
    assert_int_equal(submit_one(&D, &ok), 202);
    clear_faults(&D);
    assert_int_equal(submit_batch(&D, 4, &ok), 200);
    for (int i = 0; i < ok.n; i++) {
        char id[24];
        snprintf(id, sizeof id, "%lld", ok.v[i]);
        assert_string_equal(it_wait_job(&D, id, 10000), "succeeded");
    }
    store_equals(&D, &ok);
    /* and after a SIGKILL and restart too */
    it_kill9(&D);
    assert_int_equal(it_start(&D), 0);
    store_equals(&D, &ok);
}

static void full_disk_injected(void **st) {
    (void)st;
    static idset ok;
    ok.n = 0;
    long long before[4096];
    int n0 = store_ids(&D, before, 4096);
    arm(&D, "{\"point\":\"store.full\",\"count\":-1}");
    it_resp r;
    req(&D, "POST", "/v1/jobs", SAXPY, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(it_str(&r, "error.message"), "full"));
    it_resp_free(&r);
    assert_int_equal(submit_batch(&D, 2, &ok), 503);
    /* a blob upload needs the disk too */
    char npy[128 + 4];
    memcpy(npy, "\x93NUMPY\x01\x00\x76\x00", 10);
    int hl = snprintf(npy + 10, 118, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }");
    memset(npy + 10 + hl, ' ', (size_t)(117 - hl));
    npy[127] = '\n';
    float one = 1.0f;
    memcpy(npy + 128, &one, 4);
    assert_int_equal(it_req(&D, "POST", "/v1/blobs", npy, sizeof npy, "application/octet-stream", &r), 0);
    if (r.status != 503) fail_msg("blob upload on a full disk: %ld %s", r.status, r.body);
    assert_non_null(strstr(r.headers, "Retry-After"));
    /* the cause, without the server's paths, and no field of the request
     * blamed (it named the data folder's temporary file, and "blob") */
    assert_non_null(strstr(it_str(&r, "error.message"), "No space left on device"));
    if (strstr(r.body, D.dir) || strstr(r.body, "/blobs/")) fail_msg("a path in the answer: %s", r.body);
    assert_null(json_object_get(json_object_get(r.json, "error"), "field"));
    it_resp_free(&r);
    /* and a tenant change */
    req(&D, "POST", "/v1/tenants", "{\"name\":\"full\",\"weight\":2}", &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.headers, "Retry-After"));
    it_resp_free(&r);
    clear_faults(&D);
    assert_int_equal(submit_one(&D, &ok), 202);
    long long after[4096];
    int n1 = store_ids(&D, after, 4096);
    assert_int_equal(n1, n0 + 1);
    assert_int_equal(after[n1 - 1], ok.v[0]);
}

/* The job is succeeded in the store on its first attempt (not run again). */
static void succeeded_once(const char *id) {
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    it_resp r;
    req(&D, "GET", path, NULL, &r);
    assert_string_equal(it_str(&r, "state"), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(r.json, "attempts")), 1);
    it_resp_free(&r);
}

/* A job that succeeds while the disk is full keeps its outputs: they are
 * retried with its state change (its result was stored empty, for good,
 * under "succeeded"). linreg_gd of 100,000 steps (~0.5 s here): loss is a
 * blob (past 4,096 elements inline), w is inline; the disk fills while it
 * runs, so its end is the first state change the full disk meets. */
static void outputs_survive_a_full_disk(void **st) {
    (void)st;
    enum { N = 256, NW = 8 };
    size_t cap = 200 + (size_t)N * (NW + 1) * 8;
    char *body = malloc(cap), *p = body;
    p += sprintf(p, "{\"kernel\":\"linreg_gd\",\"args\":{\"steps\":100000,\"lr\":0.01},\"inputs\":{"
                    "\"x\":{\"dtype\":\"f64\",\"shape\":[%d,%d],\"data\":[", N, NW);
    for (int i = 0; i < N * NW; i++) p += sprintf(p, "%s0.%d", i ? "," : "", (i * 7) % 10);
    p += sprintf(p, "]},\"y\":{\"dtype\":\"f64\",\"shape\":[%d],\"data\":[", N);
    for (int i = 0; i < N; i++) p += sprintf(p, "%s%d", i ? "," : "", i % 3);
    sprintf(p, "]}}}");
    it_resp r;
    req(&D, "POST", "/v1/jobs", body, &r);
    free(body);
    if (r.status != 202) fail_msg("linreg_gd: %ld %s", r.status, r.body);
    char id[24], path[64];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    int running = 0;
    for (int i = 0; i < 500 && !running; i++) {
        req(&D, "GET", path, NULL, &r);
        running = !strcmp(it_str(&r, "state"), "running");
        it_resp_free(&r);
        if (!running) usleep(2000);
    }
    assert_true(running);
    usleep(20000); /* its "running" stored */
    arm(&D, "{\"point\":\"store.full\",\"count\":-1}");
    assert_string_equal(it_wait_job(&D, id, 60000), "succeeded"); /* the engine knows */
    usleep(300000);
    /* its end met the full disk (else this tests nothing) */
    char want[64], line[2048];
    snprintf(want, sizeof want, "job %s: outputs not stored", id);
    FILE *lf = fopen(D.log, "r");
    int met = 0;
    while (lf && fgets(line, sizeof line, lf)) met |= strstr(line, want) != NULL;
    if (lf) fclose(lf);
    assert_true(met);
    clear_faults(&D);
    for (int round = 0; round < 2; round++) {
        snprintf(path, sizeof path, "/v1/jobs/%s/events", id); /* settles the persister */
        req(&D, "GET", path, NULL, &r);
        it_resp_free(&r);
        snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
        req(&D, "GET", path, NULL, &r);
        assert_int_equal(r.status, 200);
        json_t *o = json_object_get(r.json, "outputs");
        if (!json_is_string(json_object_get(json_object_get(o, "loss"), "blob")) ||
            json_array_size(json_object_get(json_object_get(o, "w"), "data")) != NW)
            fail_msg("result after a full disk (%d): %.300s", round, r.body);
        it_resp_free(&r);
        if (!round) { /* and from the store alone */
            it_kill9(&D);
            assert_int_equal(it_start(&D), 0);
        }
    }
    succeeded_once(id);
}

/* A state change whose commit fails is retried, not dropped: the job that
 * finished while the store failed is succeeded in the store afterwards,
 * and is not run again after a restart. */
static void state_changes_survive_a_failing_store(void **st) {
    (void)st;
    it_resp r;
    req(&D, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":300000}}", &r);
    assert_int_equal(r.status, 202);
    char id[24], path[64];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    arm(&D, "{\"point\":\"store.commit\",\"count\":-1}");
    assert_string_equal(it_wait_job(&D, id, 10000), "succeeded"); /* the engine knows */
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    clear_faults(&D);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id); /* settles the persister */
    req(&D, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"succeeded\""));
    it_resp_free(&r);
    it_kill9(&D);
    assert_int_equal(it_start(&D), 0);
    succeeded_once(id);
}

/* A cancel while every commit fails: it cannot be stored, so it is not
 * answered 200; the answer (503 saying so) comes within the settle limit
 * instead of the HTTP thread waiting for the store without end (two such
 * cancels stopped every connection), and others are served meanwhile.
 * Once the store works the cancel is stored. */
static void cancel_with_failing_store(void **st) {
    (void)st;
    it_resp r;
    req(&D, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":30000000}}", &r);
    assert_int_equal(r.status, 202);
    char id[24], path[64];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    arm(&D, "{\"point\":\"store.commit\",\"count\":-1}");
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    req(&D, "DELETE", path, NULL, &r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("cancel with a failing store: %ld after %.2f s\n", r.status, secs);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(it_str(&r, "error.message"), "not recorded it yet"));
    it_resp_free(&r);
    assert_true(secs < 10);
    req(&D, "GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    /* alive, but not ready while writes fail (it said ready) */
    req(&D, "GET", "/readyz", NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "store failing"));
    it_resp_free(&r);
    clear_faults(&D);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id); /* settles the persister */
    req(&D, "GET", path, NULL, &r);
    assert_non_null(strstr(r.body, "\"cancelled\""));
    it_resp_free(&r);
    req(&D, "GET", "/readyz", NULL, &r);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
}

static void *slow_client(void *arg) {
    long ok = 0;
    for (int i = 0; i < 5; i++) {
        it_resp r;
        if (!it_req(arg, "POST", "/v1/jobs", SAXPY, strlen(SAXPY), NULL, &r) && r.status == 202) ok++;
        it_resp_free(&r);
    }
    return (void *)ok;
}

static void slow_store_answers_everything(void **st) {
    (void)st;
    arm(&D, "{\"point\":\"store.slow\",\"count\":-1,\"delay_us\":20000}");
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, slow_client, &D);
    long total = 0;
    for (int i = 0; i < 4; i++) {
        void *v;
        pthread_join(th[i], &v);
        total += (long)v;
    }
    it_resp r;
    req(&D, "GET", "/v1/admin/faults", NULL, &r);
    json_t *f = json_array_get(json_object_get(r.json, "faults"), 0);
    assert_true(json_integer_value(json_object_get(f, "fired")) > 0);
    it_resp_free(&r);
    clear_faults(&D);
    assert_int_equal(total, 20);
}

static void expect_400(const char *method, const char *path, const char *body, const char *field) {
    it_resp r;
    req(&D, method, path, body, &r);
    if (r.status != 400 || !it_str(&r, "error.field") || strcmp(it_str(&r, "error.field"), field))
        fail_msg("%s %s %s: want 400 naming %s, got %ld %s", method, path, body ? body : "", field, r.status, r.body);
    it_resp_free(&r);
}

static void fault_api_hostile(void **st) {
    (void)st;
    expect_400("POST", "/v1/admin/faults", "", "body");
    expect_400("POST", "/v1/admin/faults", "[1]", "body");
    expect_400("POST", "/v1/admin/faults", "{\"point\":", "body");
    expect_400("POST", "/v1/admin/faults", "{}", "point");
    expect_400("POST", "/v1/admin/faults", "{\"point\":3}", "point");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"disk.melt\"}", "point");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"count\":0}", "count");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"count\":\"5\"}", "count");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"count\":1e30}", "count");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"device.launch\",\"device\":-2}", "device");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.slow\",\"delay_us\":60000001}", "delay_us");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.slow\",\"delay_us\":-1}", "delay_us");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"code\":\"GX_NOPE\"}", "code");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"code\":null}", "code");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"colour\":1}", "colour");
    /* a store fault fails as a store does: GX_EINVAL or GX_ECLOSED read as a
     * refused write, and the state changes were dropped, not retried */
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"code\":\"GX_EINVAL\"}", "code");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"code\":\"GX_ECLOSED\"}", "code");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"store.full\",\"code\":9999}", "code");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"device.launch\",\"code\":-1}", "code");
    expect_400("POST", "/v1/admin/faults", "{\"point\":\"device.launch\",\"device\":5}", "device");
    expect_400("DELETE", "/v1/admin/faults?point=nope", NULL, "point");
    /* device points are armed here and consumed by the engine */
    arm(&D, "{\"point\":\"device.launch\",\"device\":0,\"count\":2,\"code\":700}");
    it_resp r;
    req(&D, "DELETE", "/v1/admin/faults?point=device.launch", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "faults")), 0);
    it_resp_free(&r);
    /* only admins */
    char key[128];
    make_key("operator", key, sizeof key);
    D.use_key = key;
    expect_status("POST", "/v1/admin/faults", "{\"point\":\"store.commit\"}", 403);
    expect_status("GET", "/v1/admin/faults", NULL, 403);
    D.use_key = NULL;
    /* audited */
    req(&D, "GET", "/v1/audit?limit=1000", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "fault.arm"));
    it_resp_free(&r);
}

static void faults_off_by_default(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    req(&d, "POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"count\":1}", &r);
    assert_int_equal(r.status, 409);
    assert_non_null(strstr(it_str(&r, "error.message"), "faults.enabled"));
    it_resp_free(&r);
    req(&d, "GET", "/v1/admin/faults", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_false(json_is_true(json_object_get(r.json, "enabled")));
    assert_int_equal(json_array_size(json_object_get(r.json, "faults")), 0);
    it_resp_free(&r);
    idset ok = {.n = 0};
    assert_int_equal(submit_one(&d, &ok), 202);
    assert_int_equal(it_finish(&d), 0);
}

/* A device being recovered: /readyz says so (it said the device never
 * passed its self-test), and a drain keeps the fault's reason in the
 * device's status (it was replaced by "drained by an operator"). */
static void recovering_device_says_why(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_FAULTS_ENABLED=true";
    d.extra_env[1] = "GEXEC_ENGINE_CPU_WORKERS=2";
    d.extra_env[2] = "GEXEC_ENGINE_HANG_GRACE=10s";
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    req(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":4000000}}", &r);
    char longid[24];
    snprintf(longid, sizeof longid, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    usleep(300000);
    arm(&d, "{\"point\":\"device.launch\",\"count\":1,\"code\":700}");
    req(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":1000}}", &r);
    char named[64]; /* the faulting job, as the device's status names it */
    snprintf(named, sizeof named, "job %s", it_str(&r, "id"));
    it_resp_free(&r);
    req(&d, "POST", "/v1/keys", "{\"role\":\"viewer\",\"tenant\":\"other\"}", &r);
    assert_int_equal(r.status, 201);
    char viewer[128];
    snprintf(viewer, sizeof viewer, "%s", it_str(&r, "key"));
    it_resp_free(&r);
    int seen = 0; /* the recovery waits for the long job's slot */
    for (int i = 0; i < 100 && !seen; i++) {
        req(&d, "GET", "/readyz", NULL, &r);
        /* /readyz asks for no key: the job's id (global, maybe another
         * tenant's) is not shown */
        seen = r.status == 503 && strstr(r.body, "no healthy device: cpu recovering: a job: ");
        if (seen) assert_null(strstr(r.body, named));
        if (!seen) usleep(20000);
        if (seen || i == 99) fprintf(stderr, "readyz during a recovery: %ld %s\n", r.status, r.body);
        it_resp_free(&r);
    }
    assert_true(seen);
    req(&d, "POST", "/v1/devices/cpu/drain", NULL, &r);
    assert_int_equal(r.status, 200);
    fprintf(stderr, "drained while recovering: %s\n", r.body);
    assert_string_equal(it_str(&r, "health"), "recovering");
    const char *status = it_str(&r, "status");
    assert_true(status && strstr(status, "; drained by an operator") && strlen(status) > strlen("; drained by an operator"));
    assert_non_null(strstr(status, named)); /* an admin reads every tenant's jobs */
    it_resp_free(&r);
    /* another tenant's viewer sees the fault, not which job it came with */
    d.use_key = viewer;
    req(&d, "GET", "/v1/devices", NULL, &r);
    d.use_key = NULL;
    assert_int_equal(r.status, 200);
    const char *vs = json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0), "status"));
    fprintf(stderr, "the fault, to another tenant's viewer: %s\n", vs ? vs : "(none)");
    assert_true(vs && strstr(vs, "recovering: a job: ") && !strstr(vs, named));
    it_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", longid);
    req(&d, "DELETE", path, NULL, &r);
    it_resp_free(&r);
    /* the log says when the device faulted and when it was back */
    int back = 0;
    for (int i = 0; i < 200 && !back; i++) {
        req(&d, "GET", "/v1/devices", NULL, &r);
        const char *h = json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0), "health"));
        back = h && (!strcmp(h, "ok") || !strcmp(h, "drained")); /* drained above */
        it_resp_free(&r);
        if (!back) usleep(20000);
    }
    assert_true(back);
    char faulted[160];
    snprintf(faulted, sizeof faulted, "device cpu faulted, recovering: %s: ", named);
    int nf = 0, nb = 0;
    for (int i = 0; i < 100 && !nb; i++) { /* the health thread logs after the change */
        FILE *f = fopen(d.log, "r");
        assert_non_null(f);
        char line[2048];
        nf = nb = 0;
        while (fgets(line, sizeof line, f)) {
            nf += strstr(line, "WARN") && strstr(line, faulted);
            nb += strstr(line, "INFO") && strstr(line, "device cpu is ok again");
        }
        fclose(f);
        if (!nb) usleep(20000);
    }
    fprintf(stderr, "log lines: faulted %d, back %d\n", nf, nb);
    assert_int_equal(nf, 1);
    assert_int_equal(nb, 1);
    assert_int_equal(it_finish(&d), 0);
}

/* faults.startup arms faults before the first request (after the daemon's
 * own start-up writes): the first submission's commit fails. */
static void startup_faults(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_FAULTS_ENABLED=true";
    d.extra_env[1] = "GEXEC_FAULTS_STARTUP=store.slow:-1,delay_us=1000;device.launch:2,device=0;store.commit:1";
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    req(&d, "GET", "/v1/admin/faults", NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "faults")), 3);
    assert_non_null(strstr(r.body, "\"delay_us\":1000"));
    it_resp_free(&r);
    idset ok = {.n = 0};
    assert_int_equal(submit_one(&d, &ok), 503);
    assert_int_equal(submit_one(&d, &ok), 202);
    /* a restart with the same settings starts (its own writes are not hit) */
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    assert_int_equal(it_finish(&d), 0);
}

/* A failed job runs again on request; a succeeded one cannot. A dead job
 * (made by editing the stored state while the daemon is down: producing
 * one for real needs device faults) is listed by ?state=dead and re-queued
 * with a fresh budget. */
static void requeue_dead_letters(void **st) {
    (void)st;
    it_resp r;
    /* a loss that blows up: the job fails */
    const char *bad = "{\"kernel\":\"linreg_gd\",\"args\":{\"steps\":50,\"lr\":1e6},\"inputs\":{"
                      "\"x\":{\"dtype\":\"f64\",\"shape\":[4,1],\"data\":[1,2,3,4]},"
                      "\"y\":{\"dtype\":\"f64\",\"shape\":[4],\"data\":[2,4,6,8]}}}";
    req(&D, "POST", "/v1/jobs", bad, &r);
    assert_int_equal(r.status, 202);
    char id[24], path[96];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 10000), "failed");
    req(&D, "POST", "/v1/jobs", SAXPY, &r);
    char okid[24];
    snprintf(okid, sizeof okid, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, okid, 10000), "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s/requeue", okid);
    req(&D, "POST", path, NULL, &r);
    assert_int_equal(r.status, 409);
    assert_string_equal(it_str(&r, "error.code"), "GX_ESTATE");
    it_resp_free(&r);
    expect_status("POST", "/v1/jobs/999999/requeue", NULL, 404);
    expect_status("POST", "/v1/jobs/x1/requeue", NULL, 404);
    requeue_fails_again(id);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    req(&D, "GET", path, NULL, &r);
    assert_non_null(strstr(r.body, "re-queued by admin"));
    it_resp_free(&r);

    /* make it dead in the file, as the engine does after its last attempt */
    it_stop(&D);
    sqlite3 *h = it_store_open(&D, 1);
    assert_non_null(h);
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE jobs SET state = 9 WHERE id = %s", id);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    assert_int_equal(it_start(&D), 0);
    req(&D, "GET", "/v1/jobs?state=dead", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *jobs = json_object_get(r.json, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), id);
    it_resp_free(&r);
    requeue_fails_again(id);
    req(&D, "GET", "/v1/jobs?state=dead", NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 0);
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    req(&D, "GET", path, NULL, &r);
    assert_non_null(strstr(r.body, "(was dead)"));
    /* attempts only grow: each run is a later attempt than the one before */
    json_t *ev = json_object_get(r.json, "events");
    long prev = 0;
    for (size_t i = 0; i < json_array_size(ev); i++) {
        long a = (long)json_integer_value(json_object_get(json_array_get(ev, i), "attempt"));
        assert_true(a >= prev);
        prev = a;
    }
    assert_true(prev >= 3);
    it_resp_free(&r);
    /* a submitter may not (operators and admins may, as for any tenant's cancel) */
    char key[128];
    make_key("submitter", key, sizeof key);
    D.use_key = key;
    snprintf(path, sizeof path, "/v1/jobs/%s/requeue", id);
    expect_status("POST", path, NULL, 403);
    D.use_key = NULL;
}

/* The events of job id, "state:attempt" each, one space between, and the
 * count of queued events that attempt carries. */
static void events_of(const char *id, int attempt, char *out, size_t cap, int *queued) {
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    it_resp r;
    req(&D, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *ev = json_object_get(r.json, "events");
    size_t len = 0;
    out[0] = '\0';
    *queued = 0;
    for (size_t i = 0; i < json_array_size(ev); i++) {
        json_t *e = json_array_get(ev, i);
        const char *st = json_string_value(json_object_get(e, "state"));
        int a = (int)json_integer_value(json_object_get(e, "attempt"));
        len += (size_t)snprintf(out + len, cap - len, "%s%s:%d", i ? " " : "", st, a);
        *queued += !strcmp(st, "queued") && a == attempt;
    }
    it_resp_free(&r);
}

/* attempts and max_attempts of GET /v1/jobs/{id} (the store's record once it ended). */
static void attempts_of(const char *id, int *attempts, int *max) {
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    it_resp r;
    req(&D, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    *attempts = (int)json_integer_value(json_object_get(r.json, "attempts"));
    *max = (int)json_integer_value(json_object_get(r.json, "max_attempts"));
    it_resp_free(&r);
}

/* A re-queue after attempt N runs attempt N + 1, once: one queued event of
 * N + 1 (with the note), then running and failed of N + 1; no number is
 * skipped. The job reports its attempts against a budget that grew by
 * max_attempts, so it never shows more attempts than it may make. */
static void requeue_runs_the_next_attempt(void **st) {
    (void)st;
    const char *bad = "{\"kernel\":\"linreg_gd\",\"max_attempts\":1,\"args\":{\"steps\":50,\"lr\":1e6},\"inputs\":{"
                      "\"x\":{\"dtype\":\"f64\",\"shape\":[4,1],\"data\":[1,2,3,4]},"
                      "\"y\":{\"dtype\":\"f64\",\"shape\":[4],\"data\":[2,4,6,8]}}}";
    it_resp r;
    req(&D, "POST", "/v1/jobs", bad, &r);
    assert_int_equal(r.status, 202);
    char id[24], path[96], evs[2048];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 10000), "failed");
    int attempts, max, queued;
    attempts_of(id, &attempts, &max);
    assert_int_equal(attempts, 1);
    assert_int_equal(max, 1);
    snprintf(path, sizeof path, "/v1/jobs/%s/requeue", id);
    for (int n = 1; n <= 2; n++) {
        req(&D, "POST", path, NULL, &r);
        assert_int_equal(r.status, 200);
        /* n attempts made (n + 1 when a worker took it already), one more granted */
        json_int_t made = json_integer_value(json_object_get(r.json, "attempts"));
        if (made != n && made != n + 1) fail_msg("re-queue %d answered %s", n, r.body);
        assert_int_equal(json_integer_value(json_object_get(r.json, "max_attempts")), n + 1);
        it_resp_free(&r);
        assert_string_equal(it_wait_job(&D, id, 10000), "failed");
        events_of(id, n + 1, evs, sizeof evs, &queued);
        char want[64];
        snprintf(want, sizeof want, "failed:%d queued:%d running:%d failed:%d", n, n + 1, n + 1, n + 1);
        if (queued != 1 || !strstr(evs, want) || strstr(evs, n == 1 ? ":3" : ":4"))
            fail_msg("re-queue %d: events %s (want one queued of attempt %d: ...%s)", n, evs, n + 1, want);
        attempts_of(id, &attempts, &max);
        assert_int_equal(attempts, n + 1);
        assert_int_equal(max, n + 1);
    }
}

/* A re-queued job keeps its fresh budget across a restart: failed at
 * attempt 1 of 2 and re-queued, it may reach attempt 3, and still may
 * after a SIGKILL while it waits (the restore took the spec's 2). */
static void requeue_budget_survives_restart(void **st) {
    (void)st;
    const char *bad = "{\"kernel\":\"linreg_gd\",\"max_attempts\":2,\"args\":{\"steps\":50,\"lr\":1e6},\"inputs\":{"
                      "\"x\":{\"dtype\":\"f64\",\"shape\":[4,1],\"data\":[1,2,3,4]},"
                      "\"y\":{\"dtype\":\"f64\",\"shape\":[4],\"data\":[2,4,6,8]}}}";
    it_resp r;
    req(&D, "POST", "/v1/jobs", bad, &r);
    assert_int_equal(r.status, 202);
    char id[24], path[96], spins[2][24];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 10000), "failed");
    /* both CPU workers busy: the re-queued job waits, before the restart and
     * after it (the spins go first then by their priority, not by age) */
    for (int i = 0; i < 2; i++) {
        req(&D, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"priority\":10,\"args\":{\"us\":60000000}}", &r);
        assert_int_equal(r.status, 202);
        snprintf(spins[i], sizeof spins[i], "%s", it_str(&r, "id"));
        it_resp_free(&r);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s", spins[i]);
        for (int k = 0; k < 500; k++) { /* 10 s: a loaded machine */
            req(&D, "GET", path, NULL, &r);
            int running = !strcmp(it_str(&r, "state"), "running");
            it_resp_free(&r);
            if (running) break;
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        }
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/requeue", id);
    req(&D, "POST", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_attempts")), 3);
    assert_string_equal(it_str(&r, "state"), "queued");
    it_resp_free(&r);
    it_kill9(&D);
    assert_int_equal(it_start(&D), 0);
    int attempts, max;
    attempts_of(id, &attempts, &max);
    print_message("after the restart: attempts %d of %d\n", attempts, max);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    req(&D, "GET", path, NULL, &r);
    assert_string_equal(it_str(&r, "state"), "queued"); /* still waiting: its budget is the engine's */
    it_resp_free(&r);

    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s", spins[i]);
        req(&D, "DELETE", path, NULL, &r);
        it_resp_free(&r);
    }

    assert_true(attempts <= 2); /* it runs as attempt 2 (the restore used to count 3 and skip one) */
    assert_int_equal(max, 3);

    assert_string_equal(it_wait_job(&D, id, 10000), "failed");
    attempts_of(id, &attempts, &max);
    assert_int_equal(attempts, 2);
}

/* A real full disk: the data folder on a 3 MiB tmpfs, filled up. Needs
 * root (mount); skipped otherwise. */
static void full_disk_real(void **st) {
    (void)st;
    char mnt[] = "/tmp/gx-full-XXXXXX";
    assert_non_null(mkdtemp(mnt));
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=3m") != 0) {
        rmdir(mnt);
        print_message("skipped: cannot mount a tmpfs (not root?)\n");
        return;
    }
    it_daemon d;
    memset(&d, 0, sizeof d);
    snprintf(d.dir, sizeof d.dir, "%s", mnt);
    assert_int_equal(it_start(&d), 0);
    static idset ok;
    ok.n = 0;
    assert_int_equal(submit_one(&d, &ok), 202);
    /* fill the disk */
    char filler[300];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    FILE *f = fopen(filler, "w");
    assert_non_null(f);
    static char block[4096];
    memset(block, 'x', sizeof block);
    while (fwrite(block, 1, sizeof block, f) == sizeof block && fflush(f) == 0) {
    }
    fclose(f);
    int refused = 0, tries = 0;
    for (; tries < 200 && refused < 3; tries++) {
        long s = submit_one(&d, &ok);
        if (s == 503) refused++;
        else assert_int_equal(s, 202); /* pages SQLite had free still take a few */
    }
    assert_int_equal(refused, 3);
    unlink(filler);
    assert_int_equal(submit_one(&d, &ok), 202);
    assert_int_equal(submit_batch(&d, 3, &ok), 200);
    store_equals(&d, &ok);
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    store_equals(&d, &ok);
    assert_int_equal(it_stop(&d), 0);
    umount2(mnt, MNT_DETACH);
    it_cleanup(&d);
}

int main(void) {
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(commit_fault_503_nothing_half_written),
        cmocka_unit_test(full_disk_injected),
        cmocka_unit_test(state_changes_survive_a_failing_store),
        cmocka_unit_test(outputs_survive_a_full_disk),
        cmocka_unit_test(cancel_with_failing_store),
        cmocka_unit_test(requeue_budget_survives_restart),
        cmocka_unit_test(slow_store_answers_everything),
        cmocka_unit_test(fault_api_hostile),
        cmocka_unit_test(requeue_dead_letters),
        cmocka_unit_test(requeue_runs_the_next_attempt),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test(faults_off_by_default),
        cmocka_unit_test(recovering_device_says_why),
        cmocka_unit_test(startup_faults),
        cmocka_unit_test(full_disk_real),
    };
    int rc = cmocka_run_group_tests(shared, setup, teardown);
    return rc | cmocka_run_group_tests(own, NULL, NULL);
}
