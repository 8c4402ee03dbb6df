/*
 * test_drain.c - an operator drains a device through the API against a real
 * gexecd: POST /v1/devices/cpu/drain answers the device with "drained":true,
 * GET /v1/devices and /metrics show it, a new job waits naming the drain,
 * DELETE /v1/devices/0/drain (by index) undrains and the job succeeds.
 * Submitter and viewer keys get 403, unknown devices 404 naming "id", and
 * the audit log holds device.drain and device.undrain. SIGHUP and SIGUSR1
 * neither stop nor drain gexecd (a warning says a restart applies a changed
 * config); SIGTERM after them still drains and exits 0.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

static it_daemon D;
static char OPER[80], SUBM[80], VIEW[80];

static it_resp req(const char *key, const char *method, const char *path, const char *body) {
    it_resp r;
    D.use_key = key;
    assert_int_equal(it_req(&D, method, path, body, body ? strlen(body) : 0, NULL, &r), 0);
    D.use_key = NULL;
    return r;
}

static json_t *device_named(json_t *devs, const char *name) {
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(devs, "devices"), i, d)
        if (!strcmp(json_string_value(json_object_get(d, "name")), name)) return d;
    return NULL;
}

static void drain_cycle(void **st) {
    (void)st;
    /* drain by name: the device's JSON, drained */
    it_resp r = req(OPER, "POST", "/v1/devices/cpu/drain", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_str(&r, "name"), "cpu");
    assert_true(json_is_true(json_object_get(r.json, "drained")));
    assert_string_equal(it_str(&r, "health"), "drained");
    assert_string_equal(it_str(&r, "status"), "drained by an operator");
    assert_non_null(json_object_get(r.json, "circuit")); /* the same JSON as GET /v1/devices */
    it_resp_free(&r);
    r = req(NULL, "GET", "/v1/devices", NULL);
    assert_int_equal(r.status, 200);
    json_t *d = device_named(r.json, "cpu");
    assert_non_null(d);
    assert_true(json_is_true(json_object_get(d, "drained")));
    it_resp_free(&r);
    r = req(NULL, "GET", "/metrics", NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "gexec_device_drained{device=\"cpu\"} 1"));
    it_resp_free(&r);

    /* a new job waits, naming the drain */
    const char *job = "{\"kernel\":\"spin\",\"args\":{\"us\":100}}";
    r = req(SUBM, "POST", "/v1/jobs", job);
    assert_int_equal(r.status, 202);
    char id[64];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    usleep(100000);
    r = req(SUBM, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_str(&r, "state"), "queued");
    json_t *w = json_object_get(r.json, "wait");
    assert_string_equal(json_string_value(json_object_get(w, "reason")), "no_device");
    assert_string_equal(json_string_value(json_object_get(w, "message")), "cpu drained by an operator");
    it_resp_free(&r);

    /* submitter and viewer may not drain or undrain */
    const char *who[] = {SUBM, VIEW};
    for (int k = 0; k < 2; k++) {
        r = req(who[k], "DELETE", "/v1/devices/cpu/drain", NULL);
        assert_int_equal(r.status, 403);
        it_resp_free(&r);
        r = req(who[k], "POST", "/v1/devices/cpu/drain", NULL);
        assert_int_equal(r.status, 403);
        it_resp_free(&r);
    }
    /* unknown devices: 404 naming id */
    const char *unknown[] = {"/v1/devices/cuda:7/drain", "/v1/devices/1/drain", "/v1/devices/CPU/drain",
                             "/v1/devices/007x/drain"};
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
        r = req(OPER, "POST", unknown[k], NULL);
        if (r.status != 404) fail_msg("%s: %ld %s", unknown[k], r.status, r.body);
        assert_string_equal(it_str(&r, "error.field"), "id");
        assert_string_equal(it_str(&r, "error.code"), "GX_ENOTFOUND");
        it_resp_free(&r);
    }

    /* undrain by index: the job runs */
    r = req(OPER, "DELETE", "/v1/devices/0/drain", NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "drained")));
    assert_string_equal(it_str(&r, "health"), "ok");
    it_resp_free(&r);
    D.use_key = SUBM;
    assert_string_equal(it_wait_job(&D, id, 20000), "succeeded");
    D.use_key = NULL;
    r = req(NULL, "GET", "/metrics", NULL);
    assert_non_null(strstr(r.body, "gexec_device_drained{device=\"cpu\"} 0"));
    it_resp_free(&r);

    /* the audit log: both, with the operator's tenant and the device */
    int drains = 0, undrains = 0;
    for (int tries = 0; tries < 100 && !(drains && undrains); tries++) {
        r = req(NULL, "GET", "/v1/audit?limit=1000", NULL);
        assert_int_equal(r.status, 200);
        size_t i;
        json_t *rec;
        drains = undrains = 0;
        json_array_foreach(json_object_get(r.json, "records"), i, rec) {
            const char *act = json_string_value(json_object_get(rec, "action"));
            const char *tgt = json_string_value(json_object_get(rec, "target"));
            const char *res = json_string_value(json_object_get(rec, "outcome"));
            if (!act || !tgt) continue;
            if (!strcmp(act, "device.drain") && !strcmp(tgt, "device/cpu") && res && !strcmp(res, "ok")) drains++;
            if (!strcmp(act, "device.undrain") && !strcmp(tgt, "device/0") && res && !strcmp(res, "ok")) undrains++;
        }
        it_resp_free(&r);
        if (!(drains && undrains)) usleep(20000);
    }
    assert_int_equal(drains, 1);
    assert_int_equal(undrains, 1);
}

/* cpu's "drained" in GET /v1/devices. */
static int cpu_drained(void) {
    it_resp r = req(NULL, "GET", "/v1/devices", NULL);
    assert_int_equal(r.status, 200);
    json_t *d = device_named(r.json, "cpu");
    assert_non_null(d);
    int v = json_is_true(json_object_get(d, "drained"));
    it_resp_free(&r);
    return v;
}

/* A drain outlives a restart (graceful or SIGKILL), and so does the
 * undrain: a job queued behind the drain waits through the restart and
 * runs once the device is undrained. */
static void drain_survives_restart(void **st) {
    (void)st;
    it_resp r = req(OPER, "POST", "/v1/devices/cpu/drain", NULL);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    r = req(SUBM, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":100}}");
    assert_int_equal(r.status, 202);
    char id[64], path[128];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    it_resp_free(&r);
    assert_int_equal(it_stop(&D), 0);
    assert_int_equal(it_start(&D), 0);
    assert_true(cpu_drained());
    it_kill9(&D);
    assert_int_equal(it_start(&D), 0);
    assert_true(cpu_drained());
    usleep(100000);
    r = req(SUBM, "GET", path, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(it_str(&r, "state"), "queued"); /* not placed on the drained device */
    it_resp_free(&r);
    r = req(OPER, "DELETE", "/v1/devices/cpu/drain", NULL);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    D.use_key = SUBM;
    assert_string_equal(it_wait_job(&D, id, 20000), "succeeded");
    D.use_key = NULL;
    assert_int_equal(it_stop(&D), 0);
    assert_int_equal(it_start(&D), 0);
    assert_false(cpu_drained());
}

/* How many times needle is in the daemon's log. */
static int log_count(const char *needle) {
    FILE *f = fopen(D.log, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* log_count(needle) once it reaches n, or after 5 s. */
static int wait_log(const char *needle, int n) {
    int got = log_count(needle);
    for (int i = 0; i < 250 && got < n; i++) {
        usleep(20000);
        got = log_count(needle);
    }
    return got;
}

/* SIGHUP (a terminal hang-up, or an operator's habit of "reload") and
 * SIGUSR1 are ignored with a warning, the daemon keeps serving (a job
 * submitted after them runs), and SIGTERM still drains and exits 0. */
static void sighup_keeps_serving(void **st) {
    (void)st;
    const char *hup = "SIGHUP ignored: gexecd does not reload its configuration; restart it "
                      "to apply configuration changes";
    /* the log grows across the restarts of the other tests: count from here */
    int before = log_count(hup), drains = log_count("signal 15: draining"),
        stops = log_count("stopped cleanly"), usr1 = log_count("SIGUSR1 ignored");
    /* one at a time: signals of one kind pending together are one */
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    assert_int_equal(wait_log(hup, before + 1), before + 1);
    assert_int_equal(kill(D.pid, SIGUSR1), 0);
    assert_int_equal(wait_log("SIGUSR1 ignored", usr1 + 1), usr1 + 1);
    assert_int_equal(kill(D.pid, SIGHUP), 0);
    assert_int_equal(wait_log(hup, before + 2), before + 2);
    assert_int_equal(waitpid(D.pid, NULL, WNOHANG), 0); /* still running */
    assert_int_equal(log_count("signal 15: draining"), drains);
    it_resp r = req(NULL, "GET", "/readyz", NULL);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    r = req(SUBM, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":100}}");
    assert_int_equal(r.status, 202);
    char id[64];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    D.use_key = SUBM;
    assert_string_equal(it_wait_job(&D, id, 20000), "succeeded");
    D.use_key = NULL;
    /* SIGTERM: the drain, and exit 0 */
    assert_int_equal(it_stop(&D), 0);
    assert_int_equal(log_count("signal 15: draining"), drains + 1);
    assert_int_equal(log_count("stopped cleanly"), stops + 1);
    assert_int_equal(it_start(&D), 0);
}

static int mkkey(const char *role, char *out) {
    char body[128];
    snprintf(body, sizeof body, "{\"tenant\":\"default\",\"role\":\"%s\"}", role);
    it_resp r;
    if (it_req(&D, "POST", "/v1/keys", body, strlen(body), NULL, &r) || r.status != 201 || !it_str(&r, "key")) {
        it_resp_free(&r);
        return -1;
    }
    snprintf(out, 80, "%s", it_str(&r, "key"));
    it_resp_free(&r);
    return 0;
}

static int setup(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=2";
    if (it_start(&D)) return -1;
    return mkkey("operator", OPER) || mkkey("submitter", SUBM) || mkkey("viewer", VIEW) ? -1 : 0;
}

static int teardown(void **st) {
    (void)st;
    int rc = it_stop(&D);
    if (!getenv("GX_KEEP")) it_cleanup(&D);
    return rc;
}

int main(void) {
    char exe[512];
    const char *bd = getenv("GX_BUILD_DIR");
    snprintf(exe, sizeof exe, "%s/gexecd", bd ? bd : ".");
    if (access(exe, X_OK)) {
        printf("skipped: gexecd not built\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(drain_cycle), cmocka_unit_test(drain_survives_restart),
                                       cmocka_unit_test(sighup_keeps_serving)};
    return cmocka_run_group_tests_name("drain", tests, setup, teardown);
}
