/*
 * test_restore.c - what a restart must not do to accepted jobs, through a
 * real gexecd killed with SIGKILL and started again on the same data:
 * fail a job because its tenant's row was not stored (a key made while the
 * store failed), because its tenant's memory quota was lowered while it
 * waited, or because an input blob's bytes were damaged meanwhile (that
 * fails the job alone, not the start); and count an attempt that the
 * restart (or a device fault) cut short against the job's max_attempts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "gexec/gexec_array.h"
#include "itest.h"

/* A fresh daemon of its own (with fault injection on request). */
static void start(it_daemon *d, int faults) {
    memset(d, 0, sizeof *d);
    if (faults) d->extra_env[0] = "GEXEC_FAULTS_ENABLED=true";
    assert_int_equal(it_start(d), 0);
}

static void req(it_daemon *d, const char *m, const char *p, const char *body, it_resp *r) {
    assert_int_equal(it_req(d, m, p, body, body ? strlen(body) : 0, NULL, r), 0);
}

/* A request whose answer matters only by its status, which must be want. */
static void expect_status(it_daemon *d, const char *m, const char *p, const char *body, long want) {
    it_resp r;
    req(d, m, p, body, &r);
    if (r.status != want) fail_msg("%s %s: %ld %s (want %ld)", m, p, r.status, r.body ? r.body : "", want);
    it_resp_free(&r);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* POST /v1/jobs: 202 and the id into id. */
static void submit(it_daemon *d, const char *body, char *id, size_t cap) {
    it_resp r;
    req(d, "POST", "/v1/jobs", body, &r);
    if (r.status != 202) fail_msg("submit %s: %ld %s", body, r.status, r.body);
    snprintf(id, cap, "%s", it_str(&r, "id"));
    it_resp_free(&r);
}

/* GET /v1/jobs/{id}: the answer (free it). */
static void get_job(it_daemon *d, const char *id, it_resp *r) {
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    req(d, "GET", path, NULL, r);
    assert_int_equal(r->status, 200);
}

static int count_sql(it_daemon *d, const char *sql);

/* Until the store holds the job as scheduled or running (the API shows the
 * engine's state, a moment ahead of the store's). */
static void wait_running_stored(it_daemon *d, const char *id) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE id = %s AND state IN (2, 3)", id);
    for (int i = 0; i < 1000; i++) {
        if (count_sql(d, sql)) return;
        sleep_ms(20);
    }
    fail_msg("job %s never stored as running", id);
}

static void run_sql(it_daemon *d, const char *sql) {
    sqlite3 *db = it_store_open(d, 1);
    assert_non_null(db);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static int count_sql(it_daemon *d, const char *sql) {
    sqlite3 *db = it_store_open(d, 0);
    assert_non_null(db);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A key's tenant is stored before the key (and only for a key that passes
 * its own checks): with the store failing, the key
 * is refused (503, no key made) and nothing of the tenant half exists; the
 * retry makes both, and the tenant's accepted job survives a SIGKILL. A
 * job whose tenant row is missing anyway (made by deleting it while the
 * daemon is down, as stores written before this fix can be) is restored,
 * its tenant made again, not failed as "unknown tenant". */
static void key_tenant_is_stored(void **st) {
    (void)st;
    it_daemon d;
    start(&d, 1);
    it_resp r;
    /* a key refused for itself makes no tenant either */
    req(&d, "POST", "/v1/keys", "{\"tenant\":\"tk0\",\"role\":\"viewer\",\"label\":\"a\\u0001b\"}", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(it_str(&r, "error.field"), "label");
    it_resp_free(&r);
    assert_int_equal(count_sql(&d, "SELECT count(*) FROM tenants WHERE name = 'tk0'"), 0);
    expect_status(&d, "POST", "/v1/admin/faults", "{\"point\":\"store.commit\",\"count\":1}", 200);
    req(&d, "POST", "/v1/keys", "{\"tenant\":\"tk1\",\"role\":\"submitter\"}", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(it_str(&r, "error.field"), "tenant");
    it_resp_free(&r);
    req(&d, "GET", "/v1/keys?tenant=tk1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "keys")), 0); /* no key was made */
    it_resp_free(&r);
    req(&d, "POST", "/v1/keys", "{\"tenant\":\"tk1\",\"role\":\"submitter\"}", &r);
    assert_int_equal(r.status, 201);
    char key[96], id[32];
    snprintf(key, sizeof key, "%s", it_str(&r, "key"));
    it_resp_free(&r);
    assert_int_equal(count_sql(&d, "SELECT count(*) FROM tenants WHERE name = 'tk1'"), 1);
    d.use_key = key;
    submit(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":300000}}", id, sizeof id);
    d.use_key = NULL;
    it_kill9(&d);
    run_sql(&d, "DELETE FROM tenants WHERE name = 'tk1'");
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, id, 20000), "succeeded");
    assert_int_equal(count_sql(&d, "SELECT count(*) FROM tenants WHERE name = 'tk1'"), 1);
    d.use_key = key; /* the key works again */
    char id2[32];
    submit(&d, "{\"kernel\":\"spin\"}", id2, sizeof id2);
    assert_string_equal(it_wait_job(&d, id2, 20000), "succeeded");
    d.use_key = NULL;
    assert_int_equal(it_finish(&d), 0);
}

/* A job accepted before its tenant's memory quota was lowered waits
 * (tenant_memory), and still waits after a restart instead of failing as
 * "could never run"; its dependents wait with it; raising the quota again
 * runs them all. */
static void lowered_quota_keeps_waiting(void **st) {
    (void)st;
    it_daemon d;
    start(&d, 0);
    it_resp r;
    expect_status(&d, "POST", "/v1/devices/cpu/drain", NULL, 200); /* it stays queued */
    char a[32], b[32], body[128];
    submit(&d, "{\"kernel\":\"spin\",\"memory_bytes\":100000000}", a, sizeof a);
    snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", a);
    submit(&d, body, b, sizeof b);
    req(&d, "POST", "/v1/tenants", "{\"name\":\"default\",\"max_device_memory_bytes\":1000000}", &r);
    assert_true(r.status == 200 || r.status == 201);
    it_resp_free(&r);
    expect_status(&d, "DELETE", "/v1/devices/cpu/drain", NULL, 200);
    for (int pass = 0; pass < 2; pass++) {
        sleep_ms(300);
        get_job(&d, a, &r);
        assert_string_equal(it_str(&r, "state"), "queued");
        assert_string_equal(it_str(&r, "wait.reason"), "tenant_memory");
        it_resp_free(&r);
        get_job(&d, b, &r);
        assert_string_equal(it_str(&r, "state"), "waiting");
        it_resp_free(&r);
        if (!pass) {
            it_kill9(&d);
            assert_int_equal(it_start(&d), 0);
        }
    }
    req(&d, "POST", "/v1/tenants", "{\"name\":\"default\",\"max_device_memory_bytes\":0}", &r);
    assert_true(r.status == 200 || r.status == 201);
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&d, a, 20000), "succeeded");
    assert_string_equal(it_wait_job(&d, b, 20000), "succeeded");
    assert_int_equal(it_finish(&d), 0);
}

/* An input blob whose bytes were damaged (or deleted) while gexecd was
 * down fails the jobs that use it, with GX_ESTORE naming the blob, and
 * their dependents with GX_EDEPFAILED; gexecd starts (it refused to, so
 * the upload that repairs the blob could not be made), and the other jobs
 * are restored. */
static void damaged_blob_fails_its_jobs_only(void **st) {
    (void)st;
    it_daemon d;
    start(&d, 0);
    int64_t n = 4;
    gx_array *x;
    assert_int_equal(gx_array_new(GX_F32, 1, &n, &x, NULL), 0);
    for (int i = 0; i < n; i++) ((float *)x->data)[i] = (float)i;
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(gx_npy_write_mem(x, &buf, &len, NULL), 0);
    gx_array_unref(x);
    it_resp r;
    assert_int_equal(it_req(&d, "POST", "/v1/blobs", buf, len, "application/octet-stream", &r), 0);
    assert_int_equal(r.status, 201);
    char blob[80];
    snprintf(blob, sizeof blob, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    char first[32], user[32], after[32], other[32], body[512];
    submit(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":30000000}}", first, sizeof first);
    snprintf(body, sizeof body,
             "{\"kernel\":\"saxpy\",\"args\":{\"a\":2},\"depends_on\":[\"%s\"],\"inputs\":{\"x\":{\"blob\":\"%s\"},"
             "\"y\":{\"blob\":\"%s\"}}}",
             first, blob, blob);
    submit(&d, body, user, sizeof user);
    snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", user);
    submit(&d, body, after, sizeof after);
    snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", first);
    submit(&d, body, other, sizeof other);
    wait_running_stored(&d, first);
    it_kill9(&d);
    char path[512];
    snprintf(path, sizeof path, "%s/data/blobs/%.2s/%s", d.dir, blob + 7, blob + 7);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, (long)len - 1, SEEK_SET);
    fputc(0x5a, f); /* the last value's last byte: the size stays, the hash does not */
    fclose(f);
    assert_int_equal(it_start(&d), 0);
    get_job(&d, user, &r);
    assert_string_equal(it_str(&r, "state"), "failed");
    assert_string_equal(it_str(&r, "error.code"), "GX_ESTORE");
    assert_non_null(strstr(it_str(&r, "error.message"), blob));
    it_resp_free(&r);
    get_job(&d, after, &r);
    assert_string_equal(it_str(&r, "state"), "failed");
    assert_string_equal(it_str(&r, "error.code"), "GX_EDEPFAILED");
    assert_non_null(strstr(it_str(&r, "error.message"), user));
    it_resp_free(&r);
    get_job(&d, other, &r); /* unrelated to the blob: restored */
    assert_string_equal(it_str(&r, "state"), "waiting");
    it_resp_free(&r);
    free(buf);
    snprintf(path, sizeof path, "/v1/jobs/%s", first);
    expect_status(&d, "DELETE", path, NULL, 200); /* the 30 s spin, restored and running again */
    assert_string_equal(it_wait_job(&d, other, 20000), "failed"); /* its dependency was cancelled */
    assert_int_equal(it_finish(&d), 0);
}

static void attempts_of(it_daemon *d, const char *id, int *attempts, int *max) {
    it_resp r;
    get_job(d, id, &r);
    *attempts = (int)json_integer_value(json_object_get(r.json, "attempts"));
    *max = (int)json_integer_value(json_object_get(r.json, "max_attempts"));
    it_resp_free(&r);
}

/* An attempt a restart cut short is not the job's failure: with every
 * launch failing transiently after the restart, a max_attempts 1 job ends
 * failed (it had no retry to use up, it was not "dead") and a max_attempts
 * 2 job gets both of its attempts (dead after two real failures). */
static void restart_uses_no_attempt(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_FAULTS_ENABLED=true";
    d.extra_env[1] = "GEXEC_ENGINE_CPU_WORKERS=2";
    assert_int_equal(it_start(&d), 0);
    char one[32], two[32];
    submit(&d, "{\"kernel\":\"spin\",\"max_attempts\":1,\"args\":{\"us\":30000000}}", one, sizeof one);
    submit(&d, "{\"kernel\":\"spin\",\"max_attempts\":2,\"args\":{\"us\":30000000}}", two, sizeof two);
    wait_running_stored(&d, one);
    wait_running_stored(&d, two);
    it_kill9(&d);
    d.extra_env[2] = "GEXEC_FAULTS_STARTUP=device.launch:-1,code=2";
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, one, 20000), "failed");
    assert_string_equal(it_wait_job(&d, two, 30000), "dead");
    int attempts, max;
    attempts_of(&d, one, &attempts, &max);
    assert_int_equal(attempts, 2); /* the cut one, then its own */
    assert_int_equal(max, 2);
    attempts_of(&d, two, &attempts, &max);
    assert_int_equal(attempts, 3); /* the cut one, then its two own */
    assert_int_equal(max, 3);
    assert_int_equal(it_finish(&d), 0);
}

/* A device fault re-queues the job without using its budget, live: a
 * max_attempts 1 job whose first launch faults the device runs again, and
 * never shows more attempts than its max_attempts (it showed 2 of 1 while
 * it ran). */
static void device_fault_uses_no_attempt(void **st) {
    (void)st;
    it_daemon d;
    start(&d, 1);
    expect_status(&d, "POST", "/v1/admin/faults", "{\"point\":\"device.launch\",\"device\":0,\"count\":1,\"code\":700}", 200);
    char id[32];
    submit(&d, "{\"kernel\":\"spin\",\"max_attempts\":1,\"args\":{\"us\":1500000}}", id, sizeof id);
    int attempts = 0, max = 0, seen2 = 0;
    for (int i = 0; i < 1500; i++) { /* 30 s */
        it_resp g;
        get_job(&d, id, &g);
        attempts = (int)json_integer_value(json_object_get(g.json, "attempts"));
        max = (int)json_integer_value(json_object_get(g.json, "max_attempts"));
        int done = !strcmp(it_str(&g, "state"), "succeeded");
        it_resp_free(&g);
        if (attempts > max) fail_msg("job %s shows %d attempts of %d", id, attempts, max);
        seen2 |= attempts == 2;
        if (done) break;
        sleep_ms(20);
    }
    assert_true(seen2);
    assert_string_equal(it_wait_job(&d, id, 20000), "succeeded");
    attempts_of(&d, id, &attempts, &max);
    assert_int_equal(attempts, 2);
    assert_int_equal(max, 2);
    assert_int_equal(it_finish(&d), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_tenant_is_stored),
        cmocka_unit_test(lowered_quota_keeps_waiting),
        cmocka_unit_test(damaged_blob_fails_its_jobs_only),
        cmocka_unit_test(restart_uses_no_attempt),
        cmocka_unit_test(device_fault_uses_no_attempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
