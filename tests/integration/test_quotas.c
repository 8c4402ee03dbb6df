/*
 * test_quotas.c - per-tenant quotas through a real gexecd: max_queued
 * refuses with 429 (quota, limit, usage, Retry-After), a batch that would
 * exceed it is refused whole; max_running and max_device_memory_bytes make
 * jobs wait with the reason in GET /v1/jobs/{id}; device_seconds_per_hour
 * refuses with Retry-After from when usage leaves the trailing hour;
 * GET /v1/tenants/{t}/usage shows exact values, only to the tenant's own keys
 * (404 for others) and to operators and admins; defaults come from the
 * configuration; quota changes are in the audit log with old and new
 * values; quotas survive a restart; the gauges are in /metrics.
 *
 * The daemon runs with quota.default_max_queued = 1000, so a tenant that
 * sets nothing shows the default.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_daemon D;
static char KEY_A[128], KEY_A_VIEW[128], KEY_M[128], KEY_D[128], KEY_OP[128];

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A request with key k ("" = the admin key). */
static void req(const char *k, const char *method, const char *path, const char *body, it_resp *r) {
    D.use_key = *k ? k : NULL;
    assert_int_equal(it_req(&D, method, path, body, body ? strlen(body) : 0, NULL, r), 0);
    D.use_key = NULL;
}

static void make_key(const char *tenant, const char *role, char *out) {
    char body[160];
    snprintf(body, sizeof body, "{\"tenant\":\"%s\",\"role\":\"%s\"}", tenant, role);
    it_resp r;
    req("", "POST", "/v1/keys", body, &r);
    assert_int_equal(r.status, 201);
    snprintf(out, 128, "%s", it_str(&r, "key"));
    it_resp_free(&r);
}

static void set_tenant(const char *body) {
    it_resp r;
    req("", "POST", "/v1/tenants", body, &r);
    if (r.status != 200) fail_msg("POST /v1/tenants %s: %ld %s", body, r.status, r.body);
    it_resp_free(&r);
}

/* Submit; returns the status, the id in id (when 202). */
static long submit(const char *k, const char *job, char *id, it_resp *keep) {
    it_resp r;
    req(k, "POST", "/v1/jobs", job, &r);
    long st = r.status;
    if (id) snprintf(id, 32, "%s", st == 202 ? it_str(&r, "id") : "");
    if (keep)
        *keep = r;
    else
        it_resp_free(&r);
    return st;
}

static json_t *jget(json_t *o, const char *a, const char *b) { return json_object_get(json_object_get(o, a), b); }

/* quotas.NAME.FIELD of a tenant's usage, as seen with key k. */
static double usage_of(const char *k, const char *tenant, const char *quota, const char *field) {
    char path[128];
    snprintf(path, sizeof path, "/v1/tenants/%s/usage", tenant);
    it_resp r;
    req(k, "GET", path, NULL, &r);
    if (r.status != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *q = json_object_get(jget(r.json, "quotas", quota), field);
    if (!json_is_number(q)) fail_msg("GET %s: no quotas.%s.%s in %s", path, quota, field, r.body);
    double v = json_number_value(q);
    it_resp_free(&r);
    return v;
}

/* Poll a job until its state is want (or 10 s). */
static void until_state(const char *k, const char *id, const char *want) {
    char path[64], got[32] = "";
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int i = 0; i < 1000; i++) {
        it_resp r;
        req(k, "GET", path, NULL, &r);
        snprintf(got, sizeof got, "%s", it_str(&r, "state") ? it_str(&r, "state") : "?");
        it_resp_free(&r);
        if (!strcmp(got, want)) return;
        nap_ms(10);
    }
    fail_msg("job %s is %s, not %s", id, got, want);
}

/* The job's wait object (reason, message) copied out. */
static void wait_of(const char *k, const char *id, char *reason, char *msg) {
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    it_resp r;
    req(k, "GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *w = json_object_get(r.json, "wait");
    snprintf(reason, 32, "%s", json_string_value(json_object_get(w, "reason")) ? json_string_value(json_object_get(w, "reason")) : "");
    snprintf(msg, 200, "%s", json_string_value(json_object_get(w, "message")) ? json_string_value(json_object_get(w, "message")) : "");
    it_resp_free(&r);
}

static void cancel(const char *k, const char *id) {
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    it_resp r;
    req(k, "DELETE", path, NULL, &r);
    it_resp_free(&r);
}

/* The value of header name in r ("" when absent). */
static const char *header(const it_resp *r, const char *name, char *buf, size_t cap) {
    buf[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            size_t l = strcspn(v, "\r\n");
            snprintf(buf, cap, "%.*s", (int)(l < cap ? l : cap - 1), v);
            break;
        }
    return buf;
}

static int setup(void **st) {
    (void)st;
    D.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=4";
    D.extra_env[1] = "GEXEC_QUOTA_DEFAULT_MAX_QUEUED=1000";
    if (it_start(&D)) return -1;
    set_tenant("{\"name\":\"qa\",\"max_running\":1,\"max_queued\":2}");
    set_tenant("{\"name\":\"qm\",\"max_device_memory_bytes\":100000000}");
    set_tenant("{\"name\":\"qd\",\"device_seconds_per_hour\":0.05}");
    make_key("qa", "submitter", KEY_A);
    make_key("qa", "viewer", KEY_A_VIEW);
    make_key("qm", "submitter", KEY_M);
    make_key("qd", "submitter", KEY_D);
    make_key("ops", "operator", KEY_OP);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    it_stop(&D);
    it_cleanup(&D);
    return 0;
}

#define SPIN(us) "{\"kernel\":\"spin\",\"args\":{\"us\":" #us "}}"

static void queued_and_running(void **st) {
    (void)st;
    char a[32], b[32], c[32], reason[32], msg[200], ra[32];
    assert_int_equal(submit(KEY_A, SPIN(20000000), a, NULL), 202);
    until_state(KEY_A, a, "running");
    assert_int_equal(submit(KEY_A, SPIN(0), b, NULL), 202);
#define SPIN_KEYED "{\"kernel\":\"spin\",\"args\":{\"us\":0},\"idempotency_key\":\"retry-c\"}"
    assert_int_equal(submit(KEY_A, SPIN_KEYED, c, NULL), 202);
    /* max_running: the job waits and says why */
    wait_of(KEY_A, b, reason, msg);
    assert_string_equal(reason, "tenant_limit");
    assert_string_equal(msg, "tenant qa at its max_running quota (1 of 1 running)");
    /* max_queued: 2 of 2 queued, the next one is refused */
    it_resp r;
    assert_int_equal(submit(KEY_A, SPIN(0), NULL, &r), 429);
    assert_string_equal(it_str(&r, "error.code"), "GX_EQUOTA");
    json_t *e = json_object_get(r.json, "error");
    assert_string_equal(json_string_value(json_object_get(e, "quota")), "max_queued");
    assert_int_equal(json_integer_value(json_object_get(e, "limit")), 2);
    assert_int_equal(json_integer_value(json_object_get(e, "usage")), 2);
    assert_int_equal(json_integer_value(json_object_get(e, "requested")), 1);
    assert_string_equal(it_str(&r, "error.message"),
                        "tenant qa is at its max_queued quota: 2 of 2 jobs queued, 1 more would exceed it");
    assert_string_equal(header(&r, "Retry-After", ra, sizeof ra), "1");
    it_resp_free(&r);
    /* an idempotent retry makes no job: its original comes back, not a 429,
     * alone or twice in a batch; a batch with one new job (its key twice)
     * asks for one */
    assert_int_equal(submit(KEY_A, SPIN_KEYED, NULL, &r), 200);
    assert_string_equal(it_str(&r, "id"), c);
    it_resp_free(&r);
    req(KEY_A, "POST", "/v1/jobs:batch", "{\"jobs\":[" SPIN_KEYED "," SPIN_KEYED "]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "refused")), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "results"), 1), "id")), c);
    it_resp_free(&r);
    req(KEY_A, "POST", "/v1/jobs:batch",
        "{\"jobs\":[{\"kernel\":\"spin\",\"idempotency_key\":\"q2\"},{\"kernel\":\"spin\",\"idempotency_key\":\"q2\"}]}", &r);
    assert_int_equal(r.status, 429);
    assert_int_equal(json_integer_value(jget(r.json, "error", "requested")), 1);
    it_resp_free(&r);
    /* exact usage, read by the tenant's viewer */
    assert_true(usage_of(KEY_A_VIEW, "qa", "max_queued", "usage") == 2);
    assert_true(usage_of(KEY_A_VIEW, "qa", "max_queued", "limit") == 2);
    assert_true(usage_of(KEY_A_VIEW, "qa", "max_running", "usage") == 1);
    assert_true(usage_of(KEY_A_VIEW, "qa", "max_running", "limit") == 1);
    assert_true(usage_of(KEY_A_VIEW, "qa", "max_device_memory_bytes", "limit") == 0);
    /* a batch that would exceed the quota is refused whole */
    set_tenant("{\"name\":\"qa\",\"max_queued\":4}");
    const char *batch3 = "{\"jobs\":[" SPIN(0) "," SPIN(0) "," SPIN(0) "]}";
    req(KEY_A, "POST", "/v1/jobs:batch", batch3, &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(it_str(&r, "error.code"), "GX_EQUOTA");
    assert_non_null(strstr(it_str(&r, "error.message"), "2 of 4 jobs queued, 3 more would exceed it"));
    assert_non_null(strstr(it_str(&r, "error.message"), "the batch was refused as a whole: no job of it was accepted"));
    it_resp_free(&r);
    req(KEY_A, "GET", "/v1/jobs", NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 3); /* nothing of the batch */
    it_resp_free(&r);
    req(KEY_A, "POST", "/v1/jobs:batch", "{\"jobs\":[" SPIN(0) "," SPIN(0) "]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 2);
    it_resp_free(&r);
    assert_true(usage_of(KEY_A, "qa", "max_queued", "usage") == 4);
    /* the long job ends: the others run */
    cancel(KEY_A, a);
    assert_string_equal(it_wait_job(&D, c, 10000), "succeeded");
    for (int i = 0; i < 500 && usage_of(KEY_A, "qa", "max_queued", "usage") > 0; i++) nap_ms(10);
    assert_true(usage_of(KEY_A, "qa", "max_queued", "usage") == 0);
    assert_int_equal(submit(KEY_A, SPIN(0), NULL, NULL), 202);
}

/* A re-queued job counts against max_queued as a submission does: a
 * requeue (an operator of any tenant may make one) took the tenant past
 * its quota. */
static void requeue_counts(void **st) {
    (void)st;
    set_tenant("{\"name\":\"qr\",\"max_running\":1,\"max_queued\":1}");
    char key[128], bad[32], run[32], wait[32];
    make_key("qr", "submitter", key);
    const char *diverges = "{\"kernel\":\"linreg_gd\",\"args\":{\"steps\":50,\"lr\":1e10},\"inputs\":{"
                           "\"x\":{\"dtype\":\"f64\",\"shape\":[2,1],\"data\":[1,2]},\"y\":{\"dtype\":\"f64\",\"data\":[1,2]}}}";
    assert_int_equal(submit(key, diverges, bad, NULL), 202);
    assert_string_equal(it_wait_job(&D, bad, 10000), "failed");
    assert_int_equal(submit(key, SPIN(20000000), run, NULL), 202);
    until_state(key, run, "running");
    assert_int_equal(submit(key, SPIN(0), wait, NULL), 202); /* 1 of 1 queued */
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/requeue", bad);
    it_resp r;
    req(KEY_OP, "POST", path, NULL, &r);
    if (r.status != 429) fail_msg("requeue past max_queued: %ld %s", r.status, r.body);
    assert_string_equal(it_str(&r, "error.code"), "GX_EQUOTA");
    assert_string_equal(it_str(&r, "error.quota"), "max_queued");
    assert_non_null(strstr(it_str(&r, "error.message"), "the job stays as it is"));
    it_resp_free(&r);
    until_state(key, bad, "failed"); /* untouched */
    cancel(key, wait);
    for (int i = 0; i < 500 && usage_of(key, "qr", "max_queued", "usage") > 0; i++) nap_ms(10);
    req(KEY_OP, "POST", path, NULL, &r);
    if (r.status != 200) fail_msg("requeue within max_queued: %ld %s", r.status, r.body);
    it_resp_free(&r);
    assert_true(usage_of(key, "qr", "max_queued", "usage") == 1); /* it, queued behind the running one */
    cancel(key, run);
    assert_string_equal(it_wait_job(&D, bad, 10000), "failed"); /* it diverges again */
}

/* /metrics has every tenant's series: only the first 256 tenants had any. */
static void metrics_every_tenant(void **st) {
    (void)st;
    char body[96];
    for (int i = 0; i < 300; i++) {
        snprintf(body, sizeof body, "{\"name\":\"many-%03d\",\"weight\":1}", i);
        set_tenant(body);
    }
    it_resp r;
    req("", "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "gexec_queue_depth{tenant=\"many-000\"}"));
    if (!strstr(r.body, "gexec_queue_depth{tenant=\"many-299\"}")) fail_msg("the 300th new tenant has no series");
    it_resp_free(&r);
}

static void device_memory_waits(void **st) {
    (void)st;
    /* linreg_gd on x[100,1] for 1e7 steps needs 80,002,416 bytes: inputs
     * 800, loss 8 * (1e7 + 1), work (100 + 100 + 1) * 8 */
    const char *big = "{\"kernel\":\"linreg_gd\",\"args\":{\"steps\":10000000},\"inputs\":{"
                      "\"x\":{\"dtype\":\"f32\",\"shape\":[100,1],\"data\":[" "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                      "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                      "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9]},"
                      "\"y\":{\"dtype\":\"f32\",\"shape\":[100],\"data\":[" "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                      "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,"
                      "0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9]}}}";
    char a[32], b[32], reason[32], msg[200];
    assert_int_equal(submit(KEY_M, big, a, NULL), 202);
    until_state(KEY_M, a, "running");
    assert_true(usage_of(KEY_M, "qm", "max_device_memory_bytes", "usage") == 80002416.0);
    assert_true(usage_of(KEY_M, "qm", "max_device_memory_bytes", "limit") == 100000000.0);
    assert_int_equal(submit(KEY_M, big, b, NULL), 202);
    wait_of(KEY_M, b, reason, msg);
    assert_string_equal(reason, "tenant_memory");
    assert_string_equal(msg, "tenant qm at its max_device_memory_bytes quota (76.3 MiB of 95.4 MiB in use, "
                             "job needs 76.3 MiB)");
    /* a job bigger than the whole quota could never run: refused now */
    set_tenant("{\"name\":\"qm\",\"max_device_memory_bytes\":50000000}");
    it_resp r;
    assert_int_equal(submit(KEY_M, big, NULL, &r), 422);
    assert_string_equal(it_str(&r, "error.code"), "GX_ENODEVICE");
    assert_string_equal(it_str(&r, "error.field"), "inputs");
    assert_non_null(strstr(it_str(&r, "error.message"), "max_device_memory_bytes quota of 47.7 MiB: it could never run"));
    it_resp_free(&r);
    /* raising the quota lets the waiting job start beside the first */
    set_tenant("{\"name\":\"qm\",\"max_device_memory_bytes\":200000000}");
    until_state(KEY_M, b, "running");
    assert_true(usage_of(KEY_M, "qm", "max_device_memory_bytes", "usage") == 2 * 80002416.0);
    cancel(KEY_M, a);
    cancel(KEY_M, b);
    assert_string_equal(it_wait_job(&D, b, 10000), "cancelled");
}

/* A job's declared memory_bytes counts when it is more than its kernel's
 * estimate (spin: none), against the tenant's quota and the devices. */
static void declared_memory(void **st) {
    (void)st;
    set_tenant("{\"name\":\"qm\",\"max_device_memory_bytes\":100000000}");
    char a[32], b[32], reason[32], msg[200];
    assert_int_equal(submit(KEY_M, "{\"kernel\":\"spin\",\"args\":{\"us\":20000000},\"memory_bytes\":60000000}", a, NULL),
                     202);
    until_state(KEY_M, a, "running");
    assert_true(usage_of(KEY_M, "qm", "max_device_memory_bytes", "usage") == 60000000.0);
    assert_int_equal(submit(KEY_M, "{\"kernel\":\"spin\",\"args\":{\"us\":20000000},\"memory_bytes\":60000000}", b, NULL),
                     202);
    wait_of(KEY_M, b, reason, msg);
    assert_string_equal(reason, "tenant_memory");
    /* more than the quota, or than any device: refused, naming the field */
    it_resp r;
    assert_int_equal(submit(KEY_M, "{\"kernel\":\"spin\",\"memory_bytes\":100000001}", NULL, &r), 422);
    assert_string_equal(it_str(&r, "error.field"), "memory_bytes");
    assert_non_null(strstr(it_str(&r, "error.message"), "max_device_memory_bytes quota"));
    it_resp_free(&r);
    set_tenant("{\"name\":\"qm\",\"max_device_memory_bytes\":0}");
    assert_int_equal(submit(KEY_M, "{\"kernel\":\"spin\",\"memory_bytes\":1125899906842624}", NULL, &r), 422);
    assert_string_equal(it_str(&r, "error.code"), "GX_ENODEVICE");
    assert_string_equal(it_str(&r, "error.field"), "memory_bytes");
    fprintf(stderr, "declared past every device: %s\n", it_str(&r, "error.message"));
    assert_non_null(strstr(it_str(&r, "error.message"), "bytes of device memory (its memory_bytes); the largest device"));
    it_resp_free(&r);
    /* out of range or not an integer: 400 */
    assert_int_equal(submit(KEY_M, "{\"kernel\":\"spin\",\"memory_bytes\":-1}", NULL, &r), 400);
    assert_string_equal(it_str(&r, "error.field"), "memory_bytes");
    it_resp_free(&r);
    assert_int_equal(submit(KEY_M, "{\"kernel\":\"spin\",\"memory_bytes\":\"1GiB\"}", NULL, &r), 400);
    assert_string_equal(it_str(&r, "error.field"), "memory_bytes");
    it_resp_free(&r);
    /* the quota lifted: the second starts beside the first */
    until_state(KEY_M, b, "running");
    cancel(KEY_M, a);
    cancel(KEY_M, b);
    assert_string_equal(it_wait_job(&D, b, 10000), "cancelled");
    set_tenant("{\"name\":\"qm\",\"max_device_memory_bytes\":200000000}"); /* as device_memory_waits left it */
}

/* A tenant's default_priority is the priority of its jobs that set none
 * (single and batch); an explicit one stays; out of range is a 400. */
static void tenant_default_priority(void **st) {
    (void)st;
    char key[128], id[32], path[64];
    set_tenant("{\"name\":\"qp\",\"default_priority\":30}");
    make_key("qp", "submitter", key);
    it_resp r;
    req("", "GET", "/v1/tenants", NULL, &r);
    assert_non_null(strstr(r.body, "\"name\":\"qp\""));
    json_t *ts = json_object_get(r.json, "tenants"), *t;
    size_t i;
    int seen = 0;
    json_array_foreach(ts, i, t) if (!strcmp(json_string_value(json_object_get(t, "name")), "qp")) {
        assert_int_equal(json_integer_value(json_object_get(t, "default_priority")), 30);
        seen = 1;
    }
    assert_true(seen);
    it_resp_free(&r);
    const char *jobs[] = {"{\"kernel\":\"spin\"}", "{\"kernel\":\"spin\",\"priority\":-5}"};
    const int want[] = {30, -5};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(submit(key, jobs[k], id, NULL), 202);
        snprintf(path, sizeof path, "/v1/jobs/%s", id);
        req(key, "GET", path, NULL, &r);
        assert_int_equal(json_integer_value(json_object_get(r.json, "priority")), want[k]);
        it_resp_free(&r);
    }
    req(key, "POST", "/v1/jobs:batch", "{\"jobs\":[{\"kernel\":\"spin\"},{\"kernel\":\"spin\",\"priority\":7}]}", &r);
    assert_int_equal(r.status, 200);
    json_t *res = json_object_get(r.json, "results");
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "/v1/jobs/%s", json_string_value(json_object_get(json_array_get(res, (size_t)k), "id")));
        it_resp g;
        req(key, "GET", path, NULL, &g);
        assert_int_equal(json_integer_value(json_object_get(g.json, "priority")), k ? 7 : 30);
        it_resp_free(&g);
    }
    it_resp_free(&r);
    /* a later POST without it keeps it; null puts 0 back; 101 is refused */
    set_tenant("{\"name\":\"qp\",\"weight\":2}");
    assert_int_equal(submit(key, jobs[0], id, NULL), 202);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    req(key, "GET", path, NULL, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "priority")), 30);
    it_resp_free(&r);
    req("", "POST", "/v1/tenants", "{\"name\":\"qp\",\"default_priority\":101}", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(it_str(&r, "error.field"), "default_priority");
    it_resp_free(&r);
    /* a job waiting (on a running one) when the default changes and the
     * daemon restarts keeps the priority it was given */
    char run[32], held[32], dep[96];
    assert_int_equal(submit(key, "{\"kernel\":\"spin\",\"args\":{\"us\":20000000},\"priority\":1}", run, NULL), 202);
    snprintf(dep, sizeof dep, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", run);
    assert_int_equal(submit(key, dep, held, NULL), 202);
    req("", "POST", "/v1/tenants", "{\"name\":\"qp\",\"default_priority\":null}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "default_priority")), 0);
    it_resp_free(&r);
    assert_int_equal(it_stop(&D), 0);
    assert_int_equal(it_start(&D), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s", held);
    req(key, "GET", path, NULL, &r);
    assert_string_equal(it_str(&r, "state"), "waiting");
    assert_int_equal(json_integer_value(json_object_get(r.json, "priority")), 30);
    it_resp_free(&r);
    cancel(key, run);
    cancel(key, held);
}

static void *put_tenant(void *body) {
    it_resp r; /* the admin's key: D.use_key is not touched from here */
    if (it_req(&D, "POST", "/v1/tenants", body, strlen(body), NULL, &r) || r.status != 200) return (void *)1;
    it_resp_free(&r);
    return NULL;
}

/* Two changes of one tenant at once, each of another field, both stay:
 * each read the row, changed its field and wrote the row back, so the
 * later one put back the field the other had just changed. */
static void concurrent_changes_keep_both(void **st) {
    (void)st;
    set_tenant("{\"name\":\"qrace\"}");
    int lost = 0;
    for (int round = 1; round <= 30; round++) {
        char a[96], b[96];
        snprintf(a, sizeof a, "{\"name\":\"qrace\",\"max_queued\":%d}", round);
        snprintf(b, sizeof b, "{\"name\":\"qrace\",\"weight\":%d}", round + 1);
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, put_tenant, a), 0);
        assert_int_equal(pthread_create(&tb, NULL, put_tenant, b), 0);
        void *ra, *rb;
        pthread_join(ta, &ra);
        pthread_join(tb, &rb);
        assert_null(ra);
        assert_null(rb);
        it_resp r;
        req("", "GET", "/v1/tenants", NULL, &r);
        json_t *ts = json_object_get(r.json, "tenants"), *t;
        size_t i;
        json_array_foreach(ts, i, t) if (!strcmp(json_string_value(json_object_get(t, "name")), "qrace")) {
            double w = json_number_value(json_object_get(t, "weight"));
            json_int_t q = json_integer_value(jget(json_object_get(t, "quotas"), "max_queued", "limit"));
            if (w != round + 1 || q != round) {
                print_message("round %d: weight %g, max_queued %lld\n", round, w, (long long)q);
                lost++;
            }
        }
        it_resp_free(&r);
    }
    assert_int_equal(lost, 0);
    set_tenant("{\"name\":\"qrace\",\"max_queued\":0}");
}

static void device_seconds_rate(void **st) {
    (void)st;
    char a[32], ra[32];
#define SPIN_D "{\"kernel\":\"spin\",\"args\":{\"us\":100000},\"idempotency_key\":\"once-d\"}"
    assert_int_equal(submit(KEY_D, SPIN_D, a, NULL), 202); /* 0.1 device-seconds */
    assert_string_equal(it_wait_job(&D, a, 10000), "succeeded");
    double used = usage_of(KEY_D, "qd", "device_seconds_per_hour", "usage");
    assert_true(used >= 0.099 && used < 5);
    assert_true(usage_of(KEY_D, "qd", "device_seconds_per_hour", "limit") == 0.05);
    it_resp r;
    assert_int_equal(submit(KEY_D, SPIN(0), NULL, &r), 429);
    json_t *e = json_object_get(r.json, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "GX_EQUOTA");
    assert_string_equal(json_string_value(json_object_get(e, "quota")), "device_seconds_per_hour");
    assert_true(json_number_value(json_object_get(e, "limit")) == 0.05);
    assert_true(json_number_value(json_object_get(e, "usage")) == used);
    assert_non_null(strstr(it_str(&r, "error.message"), "device_seconds_per_hour quota"));
    {
        /* a retry of the finished job (its key; the engine has forgotten it,
         * the store has it) is its original, not a 429 */
        it_resp k;
        for (int i = 0; i < 2; i++) {
            if (i) nap_ms(200); /* the engine has let go of it by now */
            assert_int_equal(submit(KEY_D, SPIN_D, NULL, &k), 200);
            assert_string_equal(it_str(&k, "id"), a);
            it_resp_free(&k);
        }
    }
    /* usage leaves the trailing hour one hour after it was charged */
    long retry = atol(header(&r, "Retry-After", ra, sizeof ra));
    assert_true(retry >= 3600 - 20 && retry <= 3600 + 11);
    assert_int_equal(json_integer_value(json_object_get(e, "retry_after_s")), retry);
    it_resp_free(&r);
    /* a batch is refused as well */
    req(KEY_D, "POST", "/v1/jobs:batch", "{\"jobs\":[" SPIN(0) "]}", &r);
    assert_int_equal(r.status, 429);
    it_resp_free(&r);
    /* no limit again (null: back to the default, 0) */
    set_tenant("{\"name\":\"qd\",\"device_seconds_per_hour\":null}");
    assert_true(usage_of(KEY_D, "qd", "device_seconds_per_hour", "limit") == 0);
    assert_int_equal(submit(KEY_D, SPIN(0), NULL, NULL), 202);
    set_tenant("{\"name\":\"qd\",\"device_seconds_per_hour\":0.05}");
}

static void usage_visibility(void **st) {
    (void)st;
    it_resp r;
    /* another tenant's usage is as good as none */
    req(KEY_A, "GET", "/v1/tenants/qd/usage", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(it_str(&r, "error.code"), "GX_ENOTFOUND");
    assert_string_equal(it_str(&r, "error.field"), "tenant");
    it_resp_free(&r);
    req(KEY_A_VIEW, "GET", "/v1/tenants/default/usage", NULL, &r);
    assert_int_equal(r.status, 404);
    it_resp_free(&r);
    /* operators and admins read any; an unknown tenant is 404 for them too */
    assert_true(usage_of(KEY_OP, "qd", "device_seconds_per_hour", "limit") == 0.05);
    assert_true(usage_of("", "qa", "max_queued", "limit") == 4);
    req("", "GET", "/v1/tenants/nobody/usage", NULL, &r);
    assert_int_equal(r.status, 404);
    it_resp_free(&r);
    /* the configured default applies where a tenant sets nothing */
    assert_true(usage_of("", "default", "max_queued", "limit") == 1000);
    assert_true(usage_of("", "qm", "max_queued", "limit") == 1000);
    /* the gauges */
    req("", "GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "gexec_tenant_quota_limit{tenant=\"qa\",quota=\"max_queued\"} 4"));
    assert_non_null(strstr(r.body, "gexec_tenant_quota_usage{tenant=\"qa\",quota=\"max_running\"} "));
    assert_non_null(strstr(r.body, "gexec_tenant_quota_limit{tenant=\"qm\",quota=\"max_device_memory_bytes\"} 200000000\n"));
    it_resp_free(&r);
}

static void audited(void **st) {
    (void)st;
    it_resp r;
    req("", "GET", "/v1/audit?limit=1000", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *recs = json_object_get(r.json, "records"), *rec;
    size_t i;
    int created = 0, raised = 0, reset = 0;
    json_array_foreach(recs, i, rec) {
        const char *act = json_string_value(json_object_get(rec, "action"));
        const char *tgt = json_string_value(json_object_get(rec, "target"));
        const char *det = json_string_value(json_object_get(rec, "detail"));
        if (!act || strcmp(act, "tenant.quota")) continue;
        assert_string_equal(json_string_value(jget(rec, "actor", "role")), "admin");
        assert_true(*json_string_value(jget(rec, "actor", "key")));
        if (!strcmp(tgt, "tenant/qa") &&
            !strcmp(det, "max_queued default 1000 -> 2, max_running default 0 -> 1"))
            created = 1;
        if (!strcmp(tgt, "tenant/qa") && !strcmp(det, "max_queued 2 -> 4")) raised = 1;
        if (!strcmp(tgt, "tenant/qd") && !strcmp(det, "device_seconds_per_hour 0.05 -> default 0")) reset = 1;
    }
    if (!created || !raised || !reset) fail_msg("quota changes missing from the audit log: %s", r.body);
    it_resp_free(&r);
    /* a refused change is not a change */
    req("", "POST", "/v1/tenants", "{\"name\":\"qa\",\"max_queued\":-1}", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(it_str(&r, "error.field"), "max_queued");
    it_resp_free(&r);
    assert_true(usage_of("", "qa", "max_queued", "limit") == 4);
}

static void survive_restart(void **st) {
    (void)st;
    /* qd's device time of the trailing hour (device_seconds_rate) outlives
     * the restart: still refused, Retry-After still about an hour */
    double hour = usage_of(KEY_D, "qd", "device_seconds_per_hour", "usage");
    assert_true(hour >= 0.099);
    assert_int_equal(it_stop(&D), 0);
    assert_int_equal(it_start(&D), 0);
    assert_true(fabs(usage_of(KEY_D, "qd", "device_seconds_per_hour", "usage") - hour) < 1e-9);
    it_resp r;
    char ra[32];
    assert_int_equal(submit(KEY_D, SPIN(0), NULL, &r), 429);
    long retry = atol(header(&r, "Retry-After", ra, sizeof ra));
    assert_true(retry >= 3600 - 60 && retry <= 3600 + 21);
    it_resp_free(&r);
    assert_true(usage_of(KEY_A, "qa", "max_queued", "limit") == 4);
    assert_true(usage_of(KEY_A, "qa", "max_running", "limit") == 1);
    assert_true(usage_of(KEY_M, "qm", "max_device_memory_bytes", "limit") == 200000000.0);
    assert_true(usage_of(KEY_D, "qd", "device_seconds_per_hour", "limit") == 0.05);
    assert_true(usage_of(KEY_D, "qd", "max_queued", "limit") == 1000);
    /* and they are enforced: qa max_running 1 */
    char a[32], b[32], reason[32], msg[200];
    assert_int_equal(submit(KEY_A, SPIN(20000000), a, NULL), 202);
    until_state(KEY_A, a, "running");
    assert_int_equal(submit(KEY_A, SPIN(0), b, NULL), 202);
    wait_of(KEY_A, b, reason, msg);
    assert_string_equal(reason, "tenant_limit");
    cancel(KEY_A, a);
    assert_string_equal(it_wait_job(&D, b, 10000), "succeeded");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queued_and_running),  cmocka_unit_test(requeue_counts), cmocka_unit_test(metrics_every_tenant), cmocka_unit_test(device_memory_waits), cmocka_unit_test(declared_memory), cmocka_unit_test(tenant_default_priority), cmocka_unit_test(concurrent_changes_keep_both),
        cmocka_unit_test(device_seconds_rate), cmocka_unit_test(usage_visibility),
        cmocka_unit_test(audited),             cmocka_unit_test(survive_restart),
    };
    return cmocka_run_group_tests_name("quotas", tests, setup, teardown);
}
