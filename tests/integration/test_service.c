/*
 * test_service.c - a real gexecd on a free port: every endpoint, the error
 * paths, restart with queued and running jobs, SIGKILL during a burst
 * of concurrent submits (every job answered 202 must be there afterwards),
 * and the graceful drain on SIGTERM.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "gexec/gexec_array.h"
#include "itest.h"
#include "netutil.h"

/* assert_string_equal on a member of a response: a missing member fails
 * with the body instead of crashing in strcmp */
#define ASSERT_STR(resp, path, want)                                                                   \
    do {                                                                                                \
        const char *v_ = it_str((resp), (path));                                                        \
        if (!v_) fail_msg("%s missing in %.400s", (path), (resp)->body ? (resp)->body : "(no body)"); \
        assert_string_equal(v_, (want));                                                                \
    } while (0)

static it_daemon D; /* shared by the endpoint tests */

static int setup(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_HTTP_MAX_BODY=2MiB";
    D.extra_env[1] = "GEXEC_ENGINE_CPU_WORKERS=2";
    return it_start(&D);
}

static int teardown(void **st) {
    (void)st;
    int rc = it_stop(&D);
    it_cleanup(&D);
    return rc;
}

static size_t slen(const char *s) { return s ? strlen(s) : 0; }
#define REQ(m, p, b, r) assert_int_equal(it_req(&D, m, p, b, slen(b), NULL, r), 0)

static void expect_error(const char *method, const char *path, const char *body, const char *ctype, long status,
                         const char *code, const char *field, const char *msg_part) {
    it_resp r;
    assert_int_equal(it_req(&D, method, path, body, body ? strlen(body) : 0, ctype, &r), 0);
    if (r.status != status || !it_str(&r, "error.code") || strcmp(it_str(&r, "error.code"), code) ||
        (field && (!it_str(&r, "error.field") || strcmp(it_str(&r, "error.field"), field))) ||
        (msg_part && !strstr(it_str(&r, "error.message"), msg_part)))
        fail_msg("%s %s %s: want %ld %s field %s ('%s'); got %ld %s", method, path, body ? body : "", status, code,
                 field ? field : "-", msg_part ? msg_part : "", r.status, r.body ? r.body : "");
    it_resp_free(&r);
}

static void submit_get_result(void **st) {
    (void)st;
    it_resp r;
    REQ("POST", "/v1/jobs",
        "{\"kernel\":\"saxpy\",\"args\":{\"a\":2},\"inputs\":{\"x\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[1,2,3]},"
        "\"y\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[10,20,30]}},\"labels\":{\"team\":\"vision\"}}",
        &r);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.headers, "Location: /v1/jobs/"));
    char id[32];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 5000), "succeeded");
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    REQ("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *y = json_object_get(json_object_get(json_object_get(r.json, "outputs"), "y"), "data");
    assert_int_equal(json_array_size(y), 3);
    assert_true(json_real_value(json_array_get(y, 2)) == 36.0);
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    REQ("GET", path, NULL, &r);
    ASSERT_STR(&r, "labels.team", "vision");
    ASSERT_STR(&r, "kernel", "saxpy@1");
    ASSERT_STR(&r, "device", "cpu");
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    REQ("GET", path, NULL, &r);
    json_t *ev = json_object_get(r.json, "events");
    if (json_array_size(ev) != 3) fail_msg("events: %.600s", r.body ? r.body : "(no body)"); /* queued, running, succeeded */
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 2), "state")), "succeeded");
    it_resp_free(&r);
    /* cancel of a finished job: 409 */
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    expect_error("DELETE", path, NULL, NULL, 409, "GX_ESTATE", "state", "already succeeded");
}

/* Upload n f32 values (i * step + base) as a .npy blob: its id into blob,
 * the bytes into *buf / *len (free). */
static void upload_f32(int64_t n, float step, float base, char blob[80], void **buf, size_t *len) {
    gx_array *x;
    assert_int_equal(gx_array_new(GX_F32, 1, &n, &x, NULL), 0);
    for (int64_t i = 0; i < n; i++) ((float *)x->data)[i] = (float)i * step + base;
    assert_int_equal(gx_npy_write_mem(x, buf, len, NULL), 0);
    gx_array_unref(x);
    it_resp r;
    assert_int_equal(it_req(&D, "POST", "/v1/blobs", *buf, *len, "application/octet-stream", &r), 0);
    assert_int_equal(r.status, 201);
    snprintf(blob, 80, "%s", it_str(&r, "id"));
    ASSERT_STR(&r, "dtype", "f32");
    it_resp_free(&r);
}

static void big_output_is_a_blob(void **st) {
    (void)st;
    /* upload a 10,000-element input as a blob, saxpy it, get a blob back */
    int64_t n = 10000;
    void *buf;
    size_t len;
    char blob[80];
    upload_f32(n, 1.0f, 0.0f, blob, &buf, &len);
    it_resp r;
    /* the same bytes again: same id */
    assert_int_equal(it_req(&D, "POST", "/v1/blobs", buf, len, "application/octet-stream", &r), 0);
    ASSERT_STR(&r, "id", blob);
    it_resp_free(&r);
    char body[512];
    snprintf(body, sizeof body, "{\"kernel\":\"saxpy\",\"args\":{\"a\":1},\"inputs\":{\"x\":{\"blob\":\"%s\"},\"y\":{\"blob\":\"%s\"}}}",
             blob, blob);
    REQ("POST", "/v1/jobs", body, &r);
    assert_int_equal(r.status, 202);
    char id[32], path[200];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 5000), "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    REQ("GET", path, NULL, &r);
    const char *url = it_str(&r, "outputs.y.url");
    assert_non_null(url);
    snprintf(path, sizeof path, "%s", url);
    it_resp_free(&r);
    REQ("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    gx_array *y;
    assert_int_equal(gx_npy_read_mem(r.body, r.len, &y, NULL), 0);
    assert_int_equal(y->count, n);
    for (int i = 0; i < n; i++) assert_true(((float *)y->data)[i] == 2.0f * (float)i);
    gx_array_unref(y);
    free(buf);
    it_resp_free(&r);
    /* blob errors */
    expect_error("GET", "/v1/blobs/sha256:..%2F..%2Fetc%2Fpasswd", NULL, NULL, 404, "GX_ENOTFOUND", NULL, NULL);
    expect_error("GET", "/v1/blobs/sha256:ABCDEF", NULL, NULL, 404, "GX_ENOTFOUND", "id", NULL);
    expect_error("GET", "/v1/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000", NULL, NULL,
                 404, "GX_ENOTFOUND", "id", NULL);
    expect_error("POST", "/v1/blobs", "not an npy file at all", "application/octet-stream", 400, "GX_EFORMAT", NULL, NULL);
    expect_error("POST", "/v1/blobs", "x", "text/plain", 415, "GX_EUNSUPPORTED", "Content-Type", NULL);
    snprintf(body, sizeof body, "{\"kernel\":\"saxpy\",\"args\":{\"a\":1},\"inputs\":{\"x\":{\"blob\":\"sha256:%064d\"},\"y\":{\"blob\":\"%s\"}}}", 0, blob);
    expect_error("POST", "/v1/jobs", body, NULL, 404, "GX_ENOTFOUND", "inputs.x.blob", NULL);
}

/* Bytes that rot on disk under a blob's id are never served or computed on:
 * GET answers 503 naming the damage, a job using it is refused, and an
 * upload of the right bytes repairs it. */
static void damaged_blob_refused(void **st) {
    (void)st;
    void *buf;
    size_t len;
    char blob[80], file[512], path[160], body[512];
    upload_f32(300, 0.25f, 7.0f, blob, &buf, &len); /* bytes no other test uploads */
    it_resp r;
    snprintf(file, sizeof file, "%s/data/blobs/%.2s/%s", D.dir, blob + 7, blob + 7);
    FILE *f = fopen(file, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)len - 1, SEEK_SET), 0);
    fputc(0x5a, f); /* the last float's last byte: still a valid .npy */
    fclose(f);
    snprintf(path, sizeof path, "/v1/blobs/%s", blob);
    expect_error("GET", path, NULL, NULL, 503, "GX_ESTORE", "blob", "damaged (their SHA-256 is not the id's)");
    snprintf(body, sizeof body,
             "{\"kernel\":\"saxpy\",\"args\":{\"a\":1},\"inputs\":{\"x\":{\"blob\":\"%s\"},\"y\":{\"blob\":\"%s\"}}}",
             blob, blob);
    expect_error("POST", "/v1/jobs", body, NULL, 503, "GX_ESTORE", "inputs.x.blob", "upload the file again");
    /* the upload of the right bytes writes them again */
    assert_int_equal(it_req(&D, "POST", "/v1/blobs", buf, len, "application/octet-stream", &r), 0);
    assert_int_equal(r.status, 201);
    it_resp_free(&r);
    REQ("GET", path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, buf, len);
    it_resp_free(&r);
    REQ("POST", "/v1/jobs", body, &r);
    assert_int_equal(r.status, 202);
    char id[32];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 5000), "succeeded");
    free(buf);
}

/* A raw request (key added when key is set) and the response, closed. */
static long raw(const char *head, const char *body, int key, char *out, size_t cap) {
    char req[2048];
    snprintf(req, sizeof req, "%s\r\nHost: x\r\nConnection: close\r\n%s%s%s\r\n%s", head, key ? "Authorization: Bearer " : "",
             key ? D.key : "", key ? "\r\n" : "", body ? body : "");
    return tu_raw_exchange(D.port, req, strlen(req), out, cap, 5000);
}

/* HEAD is GET without the body, on every GET route (a load balancer's
 * HEAD /healthz got 401, a blob's 405); a Transfer-Encoding other than
 * chunked is answered 501 (the connection hung for 30 s, then closed). */
static void head_and_transfer_codings(void **st) {
    (void)st;
    char out[8192], blob[80], want[64];
    void *buf;
    size_t len;
    assert_true(raw("HEAD /healthz HTTP/1.1", NULL, 0, out, sizeof out) > 0);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "Content-Length: "));
    assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n"); /* headers only */
    upload_f32(64, 1.0f, 3.0f, blob, &buf, &len);
    char head[160];
    snprintf(head, sizeof head, "HEAD /v1/blobs/%s HTTP/1.1", blob);
    assert_true(raw(head, NULL, 1, out, sizeof out) > 0);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    snprintf(want, sizeof want, "Content-Length: %zu\r\n", len);
    assert_non_null(strstr(out, want));
    assert_string_equal(strstr(out, "\r\n\r\n"), "\r\n\r\n");
    free(buf);
    assert_true(raw("HEAD /v1/events HTTP/1.1", NULL, 1, out, sizeof out) > 0); /* a stream: headers, then closed */
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_true(raw("PUT /healthz HTTP/1.1\r\nContent-Length: 0", NULL, 1, out, sizeof out) > 0);
    assert_non_null(strstr(out, "HTTP/1.1 405"));
    assert_non_null(strstr(out, "Allow: GET, HEAD\r\n"));
    const char *codings[] = {"gzip", "identity", "gzip, chunked"};
    for (int i = 0; i < 3; i++) {
        snprintf(head, sizeof head, "POST /v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: %s",
                 codings[i]);
        assert_true(raw(head, "11\r\n{\"kernel\":\"spin\"}\r\n0\r\n\r\n", 1, out, sizeof out) > 0);
        if (!strstr(out, "HTTP/1.1 501") || !strstr(out, "\"field\":\"Transfer-Encoding\""))
            fail_msg("Transfer-Encoding %s: %s", codings[i], out);
    }
    /* plain chunked is read as before */
    assert_true(raw("POST /v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked",
                    "11\r\n{\"kernel\":\"spin\"}\r\n0\r\n\r\n", 1, out, sizeof out) > 0);
    assert_non_null(strstr(out, "HTTP/1.1 202"));
}

static void batch_and_list(void **st) {
    (void)st;
    it_resp r;
    REQ("POST", "/v1/jobs:batch",
        "{\"jobs\":[{\"kernel\":\"spin\",\"args\":{\"us\":2000},\"labels\":{\"b\":\"1\"}},"
        "{\"kernel\":\"spin\",\"depends_on\":[\"@0\"],\"labels\":{\"b\":\"1\"}},"
        "{\"kernel\":\"spin\",\"depends_on\":[\"@3\"]},{\"kernel\":\"spin\",\"depends_on\":[\"@2\"]},"
        "{\"kernel\":\"nope\"},{\"kernel\":\"spin\",\"depends_on\":[\"@4\"]}]}",
        &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 2);
    json_t *res = json_object_get(r.json, "results");
    const char *codes[] = {NULL, NULL, "GX_ECYCLE", "GX_ECYCLE", "GX_EINVAL", "GX_EDEPFAILED"};
    for (int i = 0; i < 6; i++) {
        json_t *it = json_array_get(res, (size_t)i);
        if (!codes[i]) {
            assert_int_equal(json_integer_value(json_object_get(it, "status")), 202);
        } else {
            const char *c = json_string_value(json_object_get(json_object_get(it, "error"), "code"));
            if (!c || strcmp(c, codes[i])) fail_msg("batch item %d: want %s, got %s", i, codes[i], r.body);
        }
    }
    /* each member of the cycle names the job it depends on */
    assert_non_null(strstr(r.body, "jobs[2] is in a dependency cycle: it depends on jobs[3]"));
    assert_non_null(strstr(r.body, "jobs[3] is in a dependency cycle: it depends on jobs[2]"));
    char second[32];
    snprintf(second, sizeof second, "%s", json_string_value(json_object_get(json_array_get(res, 1), "id")));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, second, 5000), "succeeded");
    /* label filter + paging with a cursor */
    REQ("GET", "/v1/jobs?label=b=1&limit=1", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 1);
    const char *cur = it_str(&r, "next_cursor");
    assert_non_null(cur);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs?label=b=1&limit=1&cursor=%s", cur);
    it_resp_free(&r);
    REQ("GET", path, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "jobs"), 0), "id")),
                        second);
    it_resp_free(&r);
    REQ("GET", "/v1/jobs?state=succeeded&kernel=spin&limit=1000", NULL, &r);
    json_t *jobs = json_object_get(r.json, "jobs");
    assert_true(json_array_size(jobs) >= 2);
    for (size_t i = 0; i < json_array_size(jobs); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, i), "state")), "succeeded");
    it_resp_free(&r);
    expect_error("GET", "/v1/jobs?state=bogus", NULL, NULL, 400, "GX_EINVAL", "state", "unknown state");
    /* newest first: the second job, then the first, then no cursor */
    REQ("GET", "/v1/jobs?label=b=1&limit=1&order=desc", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "jobs"), 0), "id")),
                        second);
    cur = it_str(&r, "next_cursor");
    assert_string_equal(cur, second);
    snprintf(path, sizeof path, "/v1/jobs?label=b=1&limit=1&order=desc&cursor=%s", cur);
    it_resp_free(&r);
    REQ("GET", path, NULL, &r);
    jobs = json_object_get(r.json, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    assert_true(strtoull(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), NULL, 10) <
                strtoull(second, NULL, 10));
    assert_true(json_is_null(json_object_get(r.json, "next_cursor"))); /* nothing below: the last page */
    it_resp_free(&r);
    REQ("GET", "/v1/jobs?state=succeeded&kernel=spin&order=desc&limit=1000", NULL, &r);
    jobs = json_object_get(r.json, "jobs");
    assert_true(json_array_size(jobs) >= 2);
    for (size_t i = 0; i < json_array_size(jobs); i++) {
        json_t *j = json_array_get(jobs, i);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "succeeded");
        if (i)
            assert_true(strtoull(json_string_value(json_object_get(j, "id")), NULL, 10) <
                        strtoull(json_string_value(json_object_get(json_array_get(jobs, i - 1), "id")), NULL, 10));
    }
    it_resp_free(&r);
    REQ("GET", "/v1/jobs?order=asc&order=", NULL, &r); /* asc as before */
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    expect_error("GET", "/v1/jobs?order=newest", NULL, NULL, 400, "GX_EINVAL", "order", "asc");
    /* empty filters are absent ones (kernel= listed nothing, tenant= nothing) */
    REQ("GET", "/v1/jobs?state=succeeded&kernel=&tenant=&label=b=1&limit=", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_array_size(json_object_get(r.json, "jobs")) >= 1);
    it_resp_free(&r);
    REQ("GET", "/v1/jobs?state=succeeded&label=", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_array_size(json_object_get(r.json, "jobs")) >= 1);
    it_resp_free(&r);
    /* long filters: a label value up to 255 bytes (was refused past 127 as
     * "not key=value"), a state list of any length (cut at 255 bytes) */
    char longq[2048];
    snprintf(longq, sizeof longq, "/v1/jobs?label=b=%0200d", 0);
    REQ("GET", longq, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 0);
    it_resp_free(&r);
    snprintf(longq, sizeof longq, "/v1/jobs?label=b=%0256d", 0);
    expect_error("GET", longq, NULL, NULL, 400, "GX_EINVAL", "label", "values 0..255 bytes");
    size_t ql = (size_t)snprintf(longq, sizeof longq, "/v1/jobs?state=");
    for (int i = 0; i < 60; i++) ql += (size_t)snprintf(longq + ql, sizeof longq - ql, "queued,");
    snprintf(longq + ql, sizeof longq - ql, "succeeded&label=b=1");
    REQ("GET", longq, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_array_size(json_object_get(r.json, "jobs")) >= 1);
    it_resp_free(&r);
    expect_error("GET", "/v1/jobs?limit=0", NULL, NULL, 400, "GX_EINVAL", "limit", NULL);
    expect_error("GET", "/v1/jobs?cursor=abc", NULL, NULL, 400, "GX_EINVAL", "cursor", NULL);
    expect_error("POST", "/v1/jobs:batch", "{\"jobs\":[]}", NULL, 400, "GX_EINVAL", "jobs", NULL);
    REQ("POST", "/v1/jobs:batch", "{\"jobs\":[{\"kernel\":\"spin\",\"depends_on\":[\"@9\"]}]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "refused")), 1);
    assert_non_null(strstr(r.body, "outside @0..@0"));
    it_resp_free(&r);
}

static void cancel_and_explain(void **st) {
    (void)st;
    it_resp r;
    /* occupy both workers, then queue three more and look at why they wait:
     * the queue, with 0, 1, 2 jobs of the tenant ahead of them */
    char ids[5][24];
    for (int i = 0; i < 5; i++) {
        REQ("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":3000000}}", &r);
        assert_int_equal(r.status, 202);
        snprintf(ids[i], sizeof ids[i], "%s", it_str(&r, "id"));
        it_resp_free(&r);
    }
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[2]);
    for (int i = 2; i < 5; i++) {
        snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
        REQ("GET", path, NULL, &r);
        ASSERT_STR(&r, "state", "queued");
        ASSERT_STR(&r, "wait.reason", "queue");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r.json, "wait"), "position")), i - 2);
        char ahead[48];
        if (i - 2 == 0) snprintf(ahead, sizeof ahead, "next of tenant");
        else snprintf(ahead, sizeof ahead, "%d job%s of tenant", i - 2, i - 2 == 1 ? "" : "s");
        assert_non_null(strstr(it_str(&r, "wait.message"), ahead));
        /* the two running 3 s jobs over two slots, then the tenant's jobs
         * ahead (3 s each, the only tenant: its whole share) */
        double est = json_number_value(json_object_get(json_object_get(r.json, "wait"), "estimated_start_s"));
        fprintf(stderr, "position %d: %s (estimated_start_s %g)\n", i - 2, it_str(&r, "wait.message"), est);
        assert_true(fabs(est - (3.0 + 1.5 * (i - 2))) < 1e-6);
        assert_non_null(strstr(it_str(&r, "wait.message"), "; expected to start in ~"));
        it_resp_free(&r);
    }
    for (int i = 4; i >= 0; i--) {
        snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
        REQ("DELETE", path, NULL, &r);
        assert_int_equal(r.status, 200);
        ASSERT_STR(&r, "state", "cancelled");
        it_resp_free(&r);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s/result", ids[0]);
    expect_error("GET", path, NULL, NULL, 409, "GX_ESTATE", "state", "cancelled");
}

static void idempotency(void **st) {
    (void)st;
    it_resp a, b;
    const char *body = "{\"kernel\":\"spin\",\"idempotency_key\":\"once-only\"}";
    REQ("POST", "/v1/jobs", body, &a);
    REQ("POST", "/v1/jobs", body, &b);
    assert_int_equal(a.status, 202);
    assert_int_equal(b.status, 200);
    ASSERT_STR(&a, "id", it_str(&b, "id"));
    it_resp_free(&a);
    it_resp_free(&b);
}

static void error_paths(void **st) {
    (void)st;
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"saxpy\",", NULL, 400, "GX_EFORMAT", "body", "line 1, column");
    expect_error("POST", "/v1/jobs", "{\n\"kernel\": \"spin\",\n\"args\": {\"us\": }\n}", NULL, 400, "GX_EFORMAT", "body", "line 3");
    expect_error("POST", "/v1/jobs", "[1,2]", NULL, 400, "GX_EINVAL", "body", "object");
    expect_error("POST", "/v1/jobs", "", NULL, 400, "GX_EINVAL", "body", "empty");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\"}", "text/plain", 415, "GX_EUNSUPPORTED", "Content-Type", NULL);
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"nope\"}", NULL, 400, "GX_EINVAL", "kernel", "unknown kernel");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"bogus\":1}", NULL, 400, "GX_EINVAL", "bogus", "unknown field");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":-1}}", NULL, 400, "GX_EINVAL", "args.us", "range");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":[1]}}", NULL, 400, "GX_EINVAL", "args.us", NULL);
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"priority\":1000}", NULL, 400, "GX_EINVAL", "priority", NULL);
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"priority\":\"high\"}", NULL, 400, "GX_EINVAL", "priority", "integer");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"device\":\"gpu\"}", NULL, 422, "GX_ENODEVICE", "device", "GPU");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"device\":\"gpu:7\"}", NULL, 422, "GX_ENODEVICE", "device", NULL);
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"depends_on\":[\"999999999\"]}", NULL, 400, "GX_EINVAL", "depends_on[0]", "does not exist");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"depends_on\":[\"@0\"]}", NULL, 400, "GX_EINVAL", "depends_on[0]", "batch");
    expect_error("POST", "/v1/jobs",
                 "{\"kernel\":\"saxpy\",\"args\":{\"a\":1},\"inputs\":{\"x\":{\"dtype\":\"f32\",\"shape\":[1099511627776],\"data\":[]},\"y\":{\"dtype\":\"f32\",\"data\":[1]}}}",
                 NULL, 400, "GX_EINVAL", "inputs.x.shape[0]", "must be 0..17179869184");
    expect_error("POST", "/v1/jobs",
                 "{\"kernel\":\"saxpy\",\"args\":{\"a\":1},\"inputs\":{\"x\":{\"dtype\":\"f32\",\"shape\":[2],\"data\":[1,\"a\"]},\"y\":{\"dtype\":\"f32\",\"data\":[1,2]}}}",
                 NULL, 400, "GX_EINVAL", "inputs.x.data[1]", "number");
    expect_error("POST", "/v1/jobs",
                 "{\"kernel\":\"saxpy\",\"args\":{\"a\":1},\"inputs\":{\"x\":{\"dtype\":\"c64\",\"data\":[1]},\"y\":{\"dtype\":\"f32\",\"data\":[1]}}}",
                 NULL, 400, "GX_EINVAL", "inputs.x.dtype", "unknown dtype");
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":1e400}}", NULL, 400, "GX_EFORMAT", "body", NULL);
    expect_error("POST", "/v1/jobs",
                 "{\"kernel\":\"sort\",\"inputs\":{\"keys\":{\"dtype\":\"i64\",\"data\":[1]},\"values\":{\"dtype\":\"u8\",\"data\":[-2]}}}",
                 NULL, 400, "GX_EINVAL", "inputs.values.data[0]", "outside the range of u8");
    /* deep nesting is refused by the parser, not the stack */
    char deep[5000];
    memset(deep, '[', 4000);
    deep[4000] = '\0';
    expect_error("POST", "/v1/jobs", deep, NULL, 400, "GX_EFORMAT", "body", NULL);
    /* invalid UTF-8 */
    expect_error("POST", "/v1/jobs", "{\"kernel\":\"sp\xffin\"}", NULL, 400, "GX_EFORMAT", "body", NULL);
    /* routes and methods */
    expect_error("GET", "/v1/nothing", NULL, NULL, 404, "GX_ENOTFOUND", "path", NULL);
    expect_error("PUT", "/v1/jobs/1", NULL, NULL, 405, "GX_EUNSUPPORTED", "method", "allowed: GET, HEAD, DELETE");
    expect_error("GET", "/v1/jobs/abc", NULL, NULL, 404, "GX_ENOTFOUND", "id", NULL);
    expect_error("GET", "/v1/jobs/99999999", NULL, NULL, 404, "GX_ENOTFOUND", "id", NULL);
    expect_error("GET", "/v1/jobs/..%2F..%2Fetc", NULL, NULL, 404, "GX_ENOTFOUND", NULL, NULL);
    /* a body over the limit (2 MiB in this test) */
    size_t big = 3u << 20;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[big] = '\0';
    huge[0] = '{';
    expect_error("POST", "/v1/jobs", huge, NULL, 413, "GX_ELIMIT", "body", "limit");
    free(huge);
    /* the daemon still serves */
    it_resp r;
    REQ("GET", "/healthz", NULL, &r);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
}

/* The sum of every series of a metric in a Prometheus exposition (name
 * followed by '{' or ' '); -1 when there is none. */
static double metric_sum(const char *body, const char *name) {
    double sum = -1;
    size_t n = strlen(name);
    for (const char *p = body; (p = strstr(p, name)); p += n) {
        if (p != body && p[-1] != '\n') continue;
        const char *v = p + n;
        if (*v == '{') v = strchr(v, '}') ? strchr(v, '}') + 1 : v;
        else if (*v != ' ') continue;
        sum = (sum < 0 ? 0 : sum) + atof(v);
    }
    return sum;
}

/* gexec_job_run_seconds's count and sum once the count reaches want (up
 * to 5 s): the persister observes events after their answers. */
static double run_seconds_after(double want, double *sum) {
    double count = -1;
    for (int i = 0; i < 100; i++) {
        it_resp r;
        REQ("GET", "/metrics", NULL, &r);
        count = metric_sum(r.body, "gexec_job_run_seconds_count");
        *sum = metric_sum(r.body, "gexec_job_run_seconds_sum");
        it_resp_free(&r);
        if (count >= want) break;
        usleep(50000);
    }
    return count;
}

/* Attempts ended while running by a timeout or a cancel are run time too:
 * the histogram left them out (their time went with no event). */
static void run_seconds_counts_ended_attempts(void **st) {
    (void)st;
    double sum0, sum;
    double count0 = run_seconds_after(-1, &sum0); /* -1: no series yet */
    if (count0 < 0) count0 = sum0 = 0;
    char id[32], path[64];
    it_resp r;
    REQ("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":5000000},\"timeout_ms\":300}", &r);
    assert_int_equal(r.status, 202);
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 5000), "timed_out");
    REQ("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":5000000},\"labels\":{\"team\":\"vision\"}}", &r);
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int i = 0; i < 100; i++) { /* running for 0.3 s, then cancelled */
        REQ("GET", path, NULL, &r);
        int running = !strcmp(it_str(&r, "state"), "running");
        it_resp_free(&r);
        if (running) break;
        usleep(20000);
    }
    usleep(300000);
    REQ("DELETE", path, NULL, &r);
    assert_int_equal(r.status, 200);
    /* the answer is the job as GET shows it, labels included (they read
     * {}: the job was forgotten by the time the cancel was stored) */
    assert_string_equal(it_str(&r, "state"), "cancelled");
    const char *team = json_string_value(json_object_get(json_object_get(r.json, "labels"), "team"));
    if (!team || strcmp(team, "vision")) fail_msg("cancel's answer: %s", r.body);
    it_resp_free(&r);
    double count = run_seconds_after(count0 + 2, &sum);
    fprintf(stderr, "run_seconds: +%.0f attempts, +%.3f s\n", count - count0, sum - sum0);
    assert_true(count >= count0 + 2); /* (and an earlier test's last job, observed late) */
    assert_true(sum - sum0 >= 0.55 && sum - sum0 < 3);
}

/* Every metric family exposed (its "# TYPE" line) is in docs/operations.md's
 * metrics table (rows "| `gexec_…` |"), every one there is exposed or (on
 * hosts without NVML: the gexec_gpu_* ones) at least named in the sources
 * that register them, and every name those sources hold is in the table:
 * gexec_store_purged_total and the GPU ones were missing from it. */
static void metrics_match_docs(const char *body) {
    const char *src = getenv("GX_SOURCE_DIR");
    char path[600];
    snprintf(path, sizeof path, "%s/docs/operations.md", src && *src ? src : "..");
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    char docs[200][80], line[2048];
    int nd = 0;
    while (fgets(line, sizeof line, f) && nd < 200)
        if (!strncmp(line, "| `gexec_", 9)) {
            size_t n = strcspn(line + 3, "`");
            snprintf(docs[nd++], sizeof docs[0], "%.*s", (int)n, line + 3);
        }
    fclose(f);
    assert_true(nd >= 20);
    int exposed = 0;
    for (const char *p = strstr(body, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        char name[80];
        if (sscanf(p + 7, "%79s", name) != 1) continue;
        exposed++;
        int found = 0;
        for (int i = 0; i < nd && !found; i++) found = !strcmp(docs[i], name);
        if (!found) fail_msg("%s is exposed but not in the metrics table of docs/operations.md", name);
    }
    /* the names the registering sources hold, as string literals */
    static const char *const srcs[] = {"src/api/svc_metrics.c", "src/obs/metrics_process.c", "src/obs/metrics_std.c"};
    char names[100][80];
    int nn = 0;
    for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", src && *src ? src : "..", srcs[k]);
        f = fopen(path, "r");
        if (!f) fail_msg("cannot open %s", path);
        while (fgets(line, sizeof line, f))
            for (const char *q = strstr(line, "\"gexec_"); q && nn < 100; q = strstr(q + 1, "\"gexec_")) {
                size_t n = strspn(q + 1, "abcdefghijklmnopqrstuvwxyz0123456789_");
                if (q[1 + n] != '"') continue;
                snprintf(names[nn++], sizeof names[0], "%.*s", (int)n, q + 1);
            }
        fclose(f);
    }
    for (int i = 0; i < nn; i++) {
        int found = 0;
        for (int j = 0; j < nd && !found; j++) found = !strcmp(docs[j], names[i]);
        if (!found) fail_msg("%s is registered (%s) but not in the metrics table of docs/operations.md", names[i],
                             "src/api/svc_metrics.c or src/obs");
    }
    for (int i = 0; i < nd; i++) {
        char want[100];
        snprintf(want, sizeof want, "# TYPE %.79s ", docs[i]);
        int named = 0;
        for (int j = 0; j < nn && !named; j++) named = !strcmp(names[j], docs[i]);
        if (!strstr(body, want) && !named) fail_msg("%s is in docs/operations.md but neither exposed nor registered", docs[i]);
    }
    print_message("metrics: %d families exposed, %d documented, %d named in the sources\n", exposed, nd, nn);
}

static void catalog_devices_health_metrics(void **st) {
    (void)st;
    it_resp r;
    REQ("GET", "/v1/kernels", NULL, &r);
    json_t *ks = json_object_get(r.json, "kernels");
    const char *want[] = {"filter_range", "gemm", "histogram", "linreg_gd", "mlp_forward", "normalize", "reduce_sum",
                          "saxpy", "sort", "spin"};
    assert_int_equal(json_array_size(ks), 10);
    for (int i = 0; i < 10; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(ks, (size_t)i), "name")), want[i]);
    /* an int argument's numbers are integers ("default":0, not 0.0) */
    json_t *us = json_array_get(json_object_get(json_array_get(ks, 9), "args"), 0);
    assert_string_equal(json_string_value(json_object_get(us, "name")), "us");
    assert_true(json_is_integer(json_object_get(us, "default")) && json_is_integer(json_object_get(us, "max")));
    it_resp_free(&r);
    REQ("GET", "/v1/devices", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_false(json_is_true(json_object_get(json_object_get(r.json, "gpu"), "available")));
    assert_non_null(strstr(it_str(&r, "gpu.message"), "running CPU-only"));
    it_resp_free(&r);
    REQ("GET", "/readyz", NULL, &r);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    /* refused before the route was taken: counted under the path's route
     * (they were "unmatched"), the 405 with its Allow, the 415 on its
     * headers; a path no route has stays unmatched */
    static const char *const series[] = {
        "gexec_http_requests_total{route=\"/v1/jobs/{id}\",status=\"405\"}",
        "gexec_http_requests_total{route=\"/v1/jobs\",status=\"415\"}",
        "gexec_http_requests_total{route=\"unmatched\",status=\"404\"}",
    };
    double before[3];
    REQ("GET", "/metrics", NULL, &r);
    for (int i = 0; i < 3; i++) before[i] = metric_sum(r.body, series[i]) < 0 ? 0 : metric_sum(r.body, series[i]);
    it_resp_free(&r);
    REQ("PUT", "/v1/jobs/77", "{}", &r);
    assert_int_equal(r.status, 405);
    it_resp_free(&r);
    {
        const char *hdr[] = {"Content-Encoding: gzip", NULL};
        assert_int_equal(it_req_ex(&D, "POST", "/v1/jobs", "{}", 2, NULL, hdr, &r), 0);
        assert_int_equal(r.status, 415);
        it_resp_free(&r);
    }
    REQ("GET", "/v1/nothing/here", NULL, &r);
    assert_int_equal(r.status, 404);
    it_resp_free(&r);
    REQ("GET", "/metrics", NULL, &r);
    assert_int_equal(r.status, 200);
    for (int i = 0; i < 3; i++)
        if (metric_sum(r.body, series[i]) != before[i] + 1)
            fail_msg("%s: %g, want %g", series[i], metric_sum(r.body, series[i]), before[i] + 1);
    assert_non_null(strstr(r.body, "gexec_jobs_finished_total{state=\"succeeded\""));
    assert_non_null(strstr(r.body, "gexec_http_requests_total{route=\"/v1/jobs\""));
    assert_non_null(strstr(r.body, "gexec_store_commit_seconds_bucket"));
    /* the store's own counts: earlier tests committed jobs and their
     * state changes, so there are transactions, and at least one row each */
    const char *tx = strstr(r.body, "\ngexec_store_transactions_total "), *rw = strstr(r.body, "\ngexec_store_rows_written_total ");
    assert_non_null(tx);
    assert_non_null(rw);
    double ntx = atof(tx + strlen("\ngexec_store_transactions_total ")), nrw = atof(rw + strlen("\ngexec_store_rows_written_total "));
    assert_true(ntx >= 1);
    assert_true(nrw >= ntx);
    /* per transaction (the store's own, once the metrics existed): no more
     * than the store counted, each at least one row; per submission, the
     * wait for its commit; and the job and HTTP figures of earlier tests */
    double ncommit = metric_sum(r.body, "gexec_store_commit_seconds_count");
    double nbatch = metric_sum(r.body, "gexec_store_commit_batch_size_count");
    double rows = metric_sum(r.body, "gexec_store_commit_batch_size_sum");
    /* (a commit may land between the counters' and the histograms' reads,
     * or between its two observations: one of slack) */
    assert_true(ncommit >= 1 && ncommit <= ntx + 1);
    assert_true(nbatch >= ncommit - 1 && nbatch <= ncommit + 1);
    assert_true(rows >= nbatch);
    assert_true(metric_sum(r.body, "gexec_store_commit_wait_seconds_count") >= 1);
    double submitted = metric_sum(r.body, "gexec_jobs_submitted_total");
    assert_true(submitted >= 1);
    assert_true(metric_sum(r.body, "gexec_jobs_finished_total") >= 1);
    double waited = metric_sum(r.body, "gexec_job_queue_wait_seconds_count");
    assert_true(waited >= 1 && waited <= submitted);
    assert_true(metric_sum(r.body, "gexec_job_run_seconds_count") >= 1);
    assert_true(metric_sum(r.body, "gexec_http_request_duration_seconds_count") >=
                metric_sum(r.body, "gexec_http_requests_total") - 1); /* this request is counted once answered */
    assert_non_null(strstr(r.body, "gexec_queue_depth{tenant=\"default\"}"));
    metrics_match_docs(r.body);
    /* promtool validates the exposition when it is installed */
    if (!system("command -v promtool >/dev/null 2>&1")) {
        char path[300];
        snprintf(path, sizeof path, "%s/metrics.txt", D.dir);
        FILE *f = fopen(path, "w");
        fwrite(r.body, 1, r.len, f);
        fclose(f);
        char cmd[400];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
        assert_int_equal(system(cmd), 0);
    } else if (getenv("CI")) { /* scripts/setup installs it: in CI its absence is a failure */
        fail_msg("promtool is missing (scripts/setup installs the prometheus package)");
    } else {
        fprintf(stderr, "skipped: promtool not available\n");
    }
    it_resp_free(&r);
}

static void wait_running_stored(it_daemon *d, const char *id);

/* POST one job (accepted, 202); its id. */
static void post_job(it_daemon *d, const char *body, char id[32]) {
    it_resp r;
    assert_int_equal(it_req(d, "POST", "/v1/jobs", body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 202);
    snprintf(id, 32, "%s", it_str(&r, "id"));
    it_resp_free(&r);
}

/* A job submitted depending on one that ends (and that the engine then
 * forgets, once its end is stored) while the submission is being
 * committed is accepted and runs: it was refused 400 "job N does not
 * exist" in about 1 of 50 tries, and stored as failed under an id the
 * client never got. */
static void dependency_ending_during_submit(void **st) {
    (void)st;
    char a[32], b[32], body[160];
    int refused = 0;
    for (int i = 0; i < 400; i++) {
        snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"args\":{\"us\":%d}}", 300 + (i % 8) * 200);
        post_job(&D, body, a);
        snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", a);
        it_resp r;
        assert_int_equal(it_req(&D, "POST", "/v1/jobs", body, strlen(body), NULL, &r), 0);
        if (r.status != 202) {
            if (!refused++) fprintf(stderr, "refused: %ld %s\n", r.status, r.body ? r.body : "");
        } else {
            snprintf(b, sizeof b, "%s", it_str(&r, "id"));
        }
        it_resp_free(&r);
    }
    assert_int_equal(refused, 0);
    assert_string_equal(it_wait_job(&D, b, 5000), "succeeded");
}

/* A query value that starts with '/' is decoded whole, %2F included: only
 * the path keeps %2F as data (a label key "/src/x" was not found by
 * ?label=/src%2Fx=y). */
static void query_value_with_slashes(void **st) {
    (void)st;
    char id[32];
    post_job(&D, "{\"kernel\":\"spin\",\"labels\":{\"/src/x\":\"y\"}}", id);
    it_resp r;
    REQ("GET", "/v1/jobs?label=/src%2Fx=y", NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *jobs = json_object_get(r.json, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(jobs, 0), "id")), id);
    it_resp_free(&r);
}

/* POST a batch of two jobs (both accepted); their ids. */
static void submit_pair(it_daemon *d, const char *body, char ids[2][32]) {
    it_resp k;
    assert_int_equal(it_req(d, "POST", "/v1/jobs:batch", body, strlen(body), NULL, &k), 0);
    assert_int_equal(k.status, 200);
    json_t *res = json_object_get(k.json, "results");
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(json_integer_value(json_object_get(json_array_get(res, i), "status")), 202);
        snprintf(ids[i], 32, "%s", json_string_value(json_object_get(json_array_get(res, i), "id")));
    }
    it_resp_free(&k);
}

/* Lines of a daemon's log that contain what. */
static int log_count(const it_daemon *d, const char *what) {
    FILE *f = fopen(d->log, "r");
    if (!f) return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

/* A daemon that cannot have its address fails at once, before it restores
 * any job: with a job that was running when it was killed, three starts on
 * a busy port take well under a second each and restore nothing (each
 * used to restore and run the jobs for shutdown_timeout, then exit). */
static void busy_address_fails_fast(void **st) {
    (void)st;
    it_daemon a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    b.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&b), 0);
    it_resp r;
    char id[32];
    post_job(&b, "{\"kernel\":\"spin\",\"args\":{\"us\":3000000}}", id);
    wait_running_stored(&b, id);
    it_kill9(&b);
    assert_int_equal(it_start(&a), 0);
    char env[64];
    snprintf(env, sizeof env, "GEXEC_LISTEN=127.0.0.1:%d", a.port);
    b.extra_env[1] = env;
    int restores = log_count(&b, "unfinished jobs");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(it_start(&b), -1); /* three tries */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("3 starts on a busy address: %.2f s\n", secs);
    assert_true(secs < 4.0);
    assert_int_equal(log_count(&b, "unfinished jobs"), restores);
    assert_true(log_count(&b, "cannot listen on 127.0.0.1:") >= 3);
    b.extra_env[1] = NULL;
    assert_int_equal(it_start(&b), 0);
    assert_string_equal(it_wait_job(&b, id, 10000), "succeeded");
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    assert_int_equal(it_req(&b, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r.json, "attempts")), 2);
    it_resp_free(&r);
    assert_int_equal(it_finish(&a), 0);
    assert_int_equal(it_finish(&b), 0);
}

/* A restored job keeps its submit time, and its queue_timeout_ms counts
 * from it: a job queued behind a long one, whose 3 s ran out while the
 * daemon was down, times out as soon as it is back (it used to get a new
 * submit time at the restart and 3 s more). */
static void restore_keeps_submit_time(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&d), 0);
    const char *bodies[2] = {"{\"kernel\":\"spin\",\"args\":{\"us\":20000000}}",
                             "{\"kernel\":\"spin\",\"queue_timeout_ms\":3000}"};
    char ids[2][32], sub[64] = "", path[64];
    it_resp r;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(it_req(&d, "POST", "/v1/jobs", bodies[i], strlen(bodies[i]), NULL, &r), 0);
        assert_int_equal(r.status, 202);
        snprintf(ids[i], sizeof ids[i], "%s", it_str(&r, "id"));
        if (i) snprintf(sub, sizeof sub, "%s", it_str(&r, "submitted_at"));
        it_resp_free(&r);
    }
    wait_running_stored(&d, ids[0]);
    it_kill9(&d);
    struct timespec ts = {3, 500000000};
    nanosleep(&ts, NULL); /* past the queued job's deadline */
    assert_int_equal(it_start(&d), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[1]);
    const char *state = "";
    for (int i = 0; i < 75; i++) { /* 1.5 s */
        assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
        assert_string_equal(it_str(&r, "submitted_at"), sub);
        state = strcmp(it_str(&r, "state"), "timed_out") ? "" : "timed_out";
        it_resp_free(&r);
        if (*state) break;
        struct timespec t = {0, 20000000};
        nanosleep(&t, NULL);
    }
    assert_string_equal(state, "timed_out");
    assert_int_equal(it_finish(&d), 0);
}

/* ...but a job that had started when the daemon died has no queue timeout
 * left (a live retry has none either): killed while running with a 1 s
 * queue timeout, 1.5 s down, it runs again and succeeds (it was timed out
 * at once after the restart). */
static void restore_started_no_queue_timeout(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    char id[32];
    post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":1500000},\"queue_timeout_ms\":1000}", id);
    wait_running_stored(&d, id);
    it_kill9(&d);
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL);
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, id, 10000), "succeeded");
    assert_int_equal(it_finish(&d), 0);
}

/* A start makes the folders it needs: data_dir, store.path's folder and
 * blobs.dir, each apart and none there yet (data_dir was made only as the
 * parent of the default blob folder: the start failed "unable to open
 * database file"). */
static void folders_made(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    snprintf(d.dir, sizeof d.dir, "/tmp/gx-it-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    char store_env[400], blobs_env[400], db[300];
    snprintf(db, sizeof db, "%s/db/deeper/gexec.db", d.dir);
    snprintf(store_env, sizeof store_env, "GEXEC_STORE_PATH=%s", db);
    snprintf(blobs_env, sizeof blobs_env, "GEXEC_BLOBS_DIR=%s/elsewhere/blobs", d.dir);
    d.extra_env[0] = store_env;
    d.extra_env[1] = blobs_env;
    assert_int_equal(it_start(&d), 0);
    char id[32];
    post_job(&d, "{\"kernel\":\"spin\"}", id);
    assert_string_equal(it_wait_job(&d, id, 5000), "succeeded");
    struct stat sb;
    assert_int_equal(stat(db, &sb), 0);
    char p[400];
    snprintf(p, sizeof p, "%s/data/auth.db", d.dir);
    assert_int_equal(stat(p, &sb), 0);
    snprintf(p, sizeof p, "%s/elsewhere/blobs/.gexecd.lock", d.dir);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(it_finish(&d), 0);
}

/* A second daemon on the same data directory refuses to start, naming the
 * first one's pid, while the first one runs (both used to run the same
 * jobs); so does one on the same store or blob folder from another data
 * directory; once the first has stopped it starts. */
/* 1 when a line of log holds both a and b. */
static int log_has(const char *log, const char *a, const char *b) {
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[1024];
    int seen = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, a) && strstr(line, b)) seen = 1;
    fclose(f);
    return seen;
}

/* A daemon on another data directory that shares what env names with one
 * refuses to start, saying why. */
static void refused_sharing(const char *env, const char *want, const char *why) {
    it_daemon d3;
    memset(&d3, 0, sizeof d3);
    d3.extra_env[0] = env;
    assert_int_equal(it_start(&d3), -1);
    assert_true(log_has(d3.log, want, why));
    it_cleanup(&d3);
}

static void one_daemon_per_data_dir(void **st) {
    (void)st;
    it_daemon d, d2;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    d2 = d;
    d2.pid = 0;
    assert_int_equal(it_start(&d2), -1);
    char want[64], env[400];
    snprintf(want, sizeof want, "another gexecd (pid %d)", (int)d.pid);
    assert_true(log_has(d.log, want, "one daemon per data directory"));
    /* nor on the same store from another data directory (store.path) */
    snprintf(env, sizeof env, "GEXEC_STORE_PATH=%s/data/gexec.db", d.dir);
    refused_sharing(env, want, "one daemon per store");
    /* nor on the same blob folder (blobs.dir): the sweep would remove the
     * files its store does not name */
    snprintf(env, sizeof env, "GEXEC_BLOBS_DIR=%s/data/blobs", d.dir);
    refused_sharing(env, want, "one daemon per blob folder");
    it_resp r;
    assert_int_equal(it_req(&d, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    assert_int_equal(it_stop(&d), 0);
    assert_int_equal(it_start(&d2), 0);
    assert_int_equal(it_finish(&d2), 0);
}

/* GET /v1/jobs/{id}/result and DELETE /v1/jobs/{id} polled by three
 * threads each while a short job ends: only 200 and 409 (not yet, or
 * already ended) come back. The handlers found the job in the engine, which
 * could forget it (its end stored) before they read its outputs or
 * cancelled it; that answered 404 "no job" for a job that exists. */
typedef struct {
    it_daemon *d;
    char path[64];
    const char *method;
    atomic_int *bad;
} poll_arg;

static void *poll_until_final(void *p) {
    poll_arg *a = p;
    int fd = tu_connect(a->d->port, 10000);
    if (fd < 0) {
        atomic_fetch_add(a->bad, 1);
        return NULL;
    }
    char req[512], out[4096];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", a->method,
             a->path, a->d->key);
    for (int i = 0; i < 20000; i++) { /* keep-alive: as fast as the daemon answers */
        int st = tu_http_on(fd, req, out, sizeof out);
        const char *body = strstr(out, "\r\n\r\n");
        int ended = st == 200 || (st == 409 && body && !strstr(body, "queued") && !strstr(body, "running"));
        if (st != 200 && st != 409) {
            fprintf(stderr, "%s %s: %d %s\n", a->method, a->path, st, body ? body : "");
            atomic_fetch_add(a->bad, 1);
        }
        if (ended || (st != 200 && st != 409)) break;
    }
    close(fd);
    return NULL;
}

static void result_while_job_ends(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    atomic_int bad = 0;
    for (int i = 0; i < 200; i++) {
        char id[32];
        post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":2000}}", id);
        poll_arg a[3];
        pthread_t th[3];
        for (int t = 0; t < 3; t++) {
            a[t] = (poll_arg){.d = &d, .method = i % 4 == 3 ? "DELETE" : "GET", .bad = &bad};
            snprintf(a[t].path, sizeof a[t].path, i % 4 == 3 ? "/v1/jobs/%s" : "/v1/jobs/%s/result", id);
            assert_int_equal(pthread_create(&th[t], NULL, poll_until_final, &a[t]), 0);
        }
        for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
    }
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(it_finish(&d), 0);
}

/* A client following GET /v1/jobs by cursor while batches and single
 * jobs are submitted sees every job exactly once. Ids are taken before the
 * commit, and a single job taken after a batch's ids could commit first: a
 * page then held it, and its cursor passed the batch's ids for good. */
typedef struct {
    it_daemon *d;
    atomic_int *stop;
    int batch;
} submitter_arg;

static void *keep_submitting(void *p) {
    submitter_arg *a = p;
    char *big = NULL;
    if (a->batch) {
        size_t cap = 64 + 40 * 2000, o = 0;
        big = malloc(cap);
        o += (size_t)snprintf(big + o, cap - o, "{\"jobs\":[");
        for (int i = 0; i < 2000; i++) o += (size_t)snprintf(big + o, cap - o, "%s{\"kernel\":\"spin\"}", i ? "," : "");
        snprintf(big + o, cap - o, "]}");
    }
    while (!atomic_load(a->stop)) {
        it_resp r;
        const char *body = a->batch ? big : "{\"kernel\":\"spin\"}";
        if (it_req(a->d, "POST", a->batch ? "/v1/jobs:batch" : "/v1/jobs", body, strlen(body), NULL, &r)) break;
        it_resp_free(&r);
    }
    free(big);
    return NULL;
}

/* Three threads submitting to d until *stop (one in batches of 2000). */
static void start_submitters(it_daemon *d, atomic_int *stop, submitter_arg args[3], pthread_t th[3]) {
    for (int i = 0; i < 3; i++) {
        args[i] = (submitter_arg){d, stop, i == 0};
        assert_int_equal(pthread_create(&th[i], NULL, keep_submitting, &args[i]), 0);
    }
}

static void stop_submitters(atomic_int *stop, pthread_t th[3]) {
    atomic_store(stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
}

/* GET path0 with &cursor=cursor (none when cursor is ""), answered 200:
 * the page's jobs (in r, which the caller frees). */
static json_t *get_page(it_daemon *d, const char *path0, const char *cursor, it_resp *r) {
    char path[160];
    snprintf(path, sizeof path, "%s%s%s", path0, cursor[0] ? "&cursor=" : "", cursor);
    assert_int_equal(it_req(d, "GET", path, NULL, 0, NULL, r), 0);
    assert_int_equal(r->status, 200);
    return json_object_get(r->json, "jobs");
}

/* The id of a page's i-th job as a number. */
static unsigned long long page_id(json_t *jobs, size_t i) {
    return strtoull(json_string_value(json_object_get(json_array_get(jobs, i), "id")), NULL, 10);
}

static void list_follower_misses_nothing(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    atomic_int stop = 0;
    submitter_arg args[3];
    pthread_t th[3];
    start_submitters(&d, &stop, args, th);
    size_t cap = 1 << 20;
    unsigned char *seen = calloc(cap, 1);
    assert_non_null(seen);
    char cursor[32] = "";
    unsigned long long maxid = 0, dups = 0;
    int rounds = 0;
    for (int phase = 0; phase < 2; phase++) {
        /* phase 0: 2 s while the submitters run; phase 1: until the end */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            it_resp r;
            json_t *jobs = get_page(&d, "/v1/jobs?limit=1000", cursor, &r), *nc = json_object_get(r.json, "next_cursor");
            for (size_t i = 0; i < json_array_size(jobs); i++) {
                unsigned long long id = page_id(jobs, i);
                assert_true(id < cap);
                if (seen[id]) dups++;
                seen[id] = 1;
                if (id > maxid) maxid = id;
            }
            int last = json_is_null(nc);
            if (!last)
                snprintf(cursor, sizeof cursor, "%s", json_string_value(nc));
            else if (json_array_size(jobs)) /* the last page: go on after its last job */
                snprintf(cursor, sizeof cursor, "%s",
                         json_string_value(json_object_get(json_array_get(jobs, json_array_size(jobs) - 1), "id")));
            it_resp_free(&r);
            rounds++;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (phase == 0 && t1.tv_sec - t0.tv_sec >= 2) break;
            if (phase == 1 && last) break;
        }
        if (phase == 0) {
            stop_submitters(&stop, th);
        }
    }
    unsigned long long missing = 0;
    for (unsigned long long id = 1; id <= maxid; id++) missing += !seen[id];
    print_message("followed %llu jobs in %d pages: %llu missing, %llu twice\n", maxid, rounds, missing, dups);
    free(seen);
    assert_true(maxid > 100); /* something was followed (a loaded machine may not finish a batch in 2 s) */
    assert_int_equal(missing, 0);
    assert_int_equal(dups, 0);
    assert_int_equal(it_finish(&d), 0);
}

/* Newest first while jobs are submitted: the walk starts at the newest
 * committed job and goes down, every id below its start once and in
 * descending order, none missing; jobs newer than the start are not part
 * of it (a snapshot of where it began). */
static void list_newest_first_misses_nothing(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    atomic_int stop = 0;
    submitter_arg args[3];
    pthread_t th[3];
    start_submitters(&d, &stop, args, th);
    struct timespec ms = {0, 300 * 1000000};
    nanosleep(&ms, NULL); /* some jobs first */
    size_t cap = 1 << 20;
    unsigned char *seen = calloc(cap, 1);
    assert_non_null(seen);
    char cursor[32] = "";
    unsigned long long start = 0, prev = 0, n = 0, dups = 0;
    int rounds = 0;
    for (;;) {
        it_resp r;
        json_t *jobs = get_page(&d, "/v1/jobs?order=desc&limit=300", cursor, &r), *nc = json_object_get(r.json, "next_cursor");
        for (size_t i = 0; i < json_array_size(jobs); i++) {
            unsigned long long id = page_id(jobs, i);
            assert_true(id < cap);
            if (!start) start = prev = id + 1;
            dups += seen[id];
            if (id >= prev) /* at once: an ascending walk would not end while jobs come */
                fail_msg("job %llu after %llu: not newest first", id, prev);
            seen[id] = 1;
            prev = id;
            n++;
        }
        rounds++;
        int last = json_is_null(nc);
        if (!last) snprintf(cursor, sizeof cursor, "%s", json_string_value(nc));
        it_resp_free(&r);
        if (last) break;
    }
    stop_submitters(&stop, th);
    unsigned long long missing = 0;
    for (unsigned long long id = 1; id < start; id++) missing += !seen[id];
    /* the newest job by the end is past where the walk began */
    it_resp r;
    unsigned long long newest = page_id(get_page(&d, "/v1/jobs?order=desc&limit=1", "", &r), 0);
    it_resp_free(&r);
    print_message("walked %llu jobs down from %llu in %d pages (newest now %llu): %llu missing, %llu twice\n",
                  n, start - 1, rounds, newest, missing, dups);
    free(seen);
    assert_true(start > 100);
    assert_true(newest >= start - 1);
    assert_int_equal(missing, 0);
    assert_int_equal(dups, 0);
    assert_int_equal(n, start - 1);
    assert_int_equal(it_finish(&d), 0);
}

/* A cancel answered 200 is stored: SIGKILL right after the answer, and
 * the job is still cancelled after the restart (queued and running ones
 * alike). The cancel used to change the job in memory only, and the job
 * ran after the restart. */
static void cancel_survives_kill(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&d), 0);
    for (int i = 0; i < 6; i++) {
        char blocker[32], id[32], path[64];
        it_resp r;
        post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":600000000}}", blocker);
        post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":100000}}", id);
        const char *which = i % 2 ? blocker : id; /* running, then queued */
        snprintf(path, sizeof path, "/v1/jobs/%s", which);
        assert_int_equal(it_req(&d, "DELETE", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        it_resp_free(&r);
        it_kill9(&d);
        assert_int_equal(it_start(&d), 0);
        assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
        ASSERT_STR(&r, "state", "cancelled");
        it_resp_free(&r);
        /* whatever else is left: out of the way */
        for (int k = 0; k < 2; k++) {
            snprintf(path, sizeof path, "/v1/jobs/%s", k ? id : blocker);
            assert_int_equal(it_req(&d, "DELETE", path, NULL, 0, NULL, &r), 0);
            it_resp_free(&r);
        }
    }
    assert_int_equal(it_finish(&d), 0);
}

/* The CPU device fails its start-up self-test (every launch fails, armed
 * before the self-test): gexecd is alive (/healthz 200) but not ready, and
 * /readyz says why (503 naming the self-test); a job submitted meanwhile
 * is still accepted and kept. */
static void readyz_on_failed_selftest(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_INJECT_FAULT=device.launch:2:-1:selftest";
    d.ready_path = "/healthz";
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    /* /healthz answers from before the restore: past it, /readyz says why */
    for (int i = 0; i < 500; i++) {
        assert_int_equal(it_req(&d, "GET", "/readyz", NULL, 0, NULL, &r), 0);
        if (!r.body || !strstr(r.body, "starting: restoring")) break;
        it_resp_free(&r);
        usleep(10000);
    }
    print_message("readyz %ld: %s\n", r.status, r.body ? r.body : "");
    assert_int_equal(r.status, 503);
    assert_non_null(r.body);
    assert_non_null(strstr(r.body, "self-test"));
    it_resp_free(&r);
    assert_int_equal(it_finish(&d), 0);

    /* without the fault the same start is ready, and its self-test is
     * nobody's job: no finished job in the metrics (it was counted as a
     * succeeded reduce_sum at every start) */
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    assert_int_equal(it_req(&d, "GET", "/readyz", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    assert_int_equal(it_req(&d, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "gexec_jobs_finished_total{"));
    assert_null(strstr(r.body, "gexec_job_queue_wait_seconds_count{"));
    it_resp_free(&r);
    assert_int_equal(it_finish(&d), 0);
}

/* A batch job that depends ("@0") on an idempotent repeat of a running
 * job waits for that original job (the dependency used to be dropped, and
 * the dependent ran at once). */
static void batch_dep_on_idempotent_repeat(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    char orig[32], dep[32];
    post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":2000000},\"idempotency_key\":\"k1\"}", orig);
    const char *batch = "{\"jobs\":[{\"kernel\":\"spin\",\"args\":{\"us\":2000000},\"idempotency_key\":\"k1\"},"
                        "{\"kernel\":\"spin\",\"depends_on\":[\"@0\"]}]}";
    assert_int_equal(it_req(&d, "POST", "/v1/jobs:batch", batch, strlen(batch), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *res = json_object_get(r.json, "results");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "id")), orig);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 0), "status")), 200);
    snprintf(dep, sizeof dep, "%s", json_string_value(json_object_get(json_array_get(res, 1), "id")));
    it_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", dep);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    ASSERT_STR(&r, "state", "waiting");
    it_resp_free(&r);
    /* stored depending on the original too: it survives a kill (it was
     * stored depending on an id never inserted, and failed at restore) */
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, dep, 10000), "succeeded");
    /* the repeat and its original in one batch: the dependent waits for
     * the original, and is stored depending on it (it survives a kill) */
    const char *same = "{\"jobs\":[{\"kernel\":\"spin\",\"args\":{\"us\":2000000},\"idempotency_key\":\"k2\"},"
                       "{\"kernel\":\"spin\",\"idempotency_key\":\"k2\"},{\"kernel\":\"spin\",\"depends_on\":[\"@1\"]}]}";
    assert_int_equal(it_req(&d, "POST", "/v1/jobs:batch", same, strlen(same), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    res = json_object_get(r.json, "results");
    snprintf(dep, sizeof dep, "%s", json_string_value(json_object_get(json_array_get(res, 2), "id")));
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s", dep);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    ASSERT_STR(&r, "state", "waiting");
    it_resp_free(&r);
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, dep, 10000), "succeeded");
    /* a job depending on its own repeat (the same key) is a cycle: both are
     * refused and nothing keeps the key (the first used to be stored
     * depending on itself and failed, and the second answered as its repeat;
     * a later submit with the key got that failed job) */
    const char *selfdep[2] = {
        "{\"jobs\":[{\"kernel\":\"spin\",\"idempotency_key\":\"z2\",\"depends_on\":[\"@1\"]},"
        "{\"kernel\":\"spin\",\"idempotency_key\":\"z2\"}]}",
        "{\"jobs\":[{\"kernel\":\"spin\",\"idempotency_key\":\"z2\",\"depends_on\":[\"@2\"]},{\"kernel\":\"spin\"},"
        "{\"kernel\":\"spin\",\"idempotency_key\":\"z2\",\"depends_on\":[\"@1\"]}]}"};
    for (int b = 0; b < 2; b++) {
        assert_int_equal(it_req(&d, "POST", "/v1/jobs:batch", selfdep[b], strlen(selfdep[b]), NULL, &r), 0);
        assert_int_equal(r.status, 200);
        res = json_object_get(r.json, "results");
        json_t *r0 = json_array_get(res, 0), *rl = json_array_get(res, json_array_size(res) - 1);
        assert_int_equal(json_integer_value(json_object_get(r0, "status")), 400);
        assert_string_equal(json_string_value(json_object_get(json_object_get(r0, "error"), "code")), "GX_ECYCLE");
        assert_string_equal(json_string_value(json_object_get(json_object_get(r0, "error"), "field")), "jobs[0].depends_on");
        assert_int_equal(json_integer_value(json_object_get(rl, "status")), 400);
        it_resp_free(&r);
    }
    char fresh[32];
    post_job(&d, "{\"kernel\":\"spin\",\"idempotency_key\":\"z2\"}", fresh); /* 202: a new job */
    assert_string_equal(it_wait_job(&d, fresh, 10000), "succeeded");
    /* a repeat of that finished job, which the engine has forgotten: a
     * batch job depending on it is stored depending on the original (it was
     * stored depending on the id the repeat would have had, and failed at a
     * restart) */
    struct timespec nap = {0, 300000000};
    nanosleep(&nap, NULL);
    char blocker[32], body[256];
    post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":1500000}}", blocker);
    snprintf(body, sizeof body,
             "{\"jobs\":[{\"kernel\":\"spin\",\"idempotency_key\":\"z2\"},"
             "{\"kernel\":\"spin\",\"depends_on\":[\"@0\",\"%s\"]}]}", blocker);
    assert_int_equal(it_req(&d, "POST", "/v1/jobs:batch", body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    res = json_object_get(r.json, "results");
    assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "id")), fresh);
    snprintf(dep, sizeof dep, "%s", json_string_value(json_object_get(json_array_get(res, 1), "id")));
    it_resp_free(&r);
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, dep, 15000), "succeeded");
    assert_int_equal(it_stop(&d), 0);
    it_cleanup(&d);
}

/* gexec_jobs_submitted_total counts each accepted job once: a job with a
 * dependency (first waiting, then queued) as one, a refused one not. */
static void submitted_counted_once(void **st) {
    (void)st;
    it_resp r;
    REQ("GET", "/metrics", NULL, &r);
    double before = metric_sum(r.body, "gexec_jobs_submitted_total");
    it_resp_free(&r);
    REQ("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":200000}}", &r);
    assert_int_equal(r.status, 202);
    char a[32], body[128], b[32];
    snprintf(a, sizeof a, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", a);
    REQ("POST", "/v1/jobs", body, &r);
    assert_int_equal(r.status, 202);
    snprintf(b, sizeof b, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    REQ("POST", "/v1/jobs", "{\"kernel\":\"no_such_kernel\"}", &r);
    assert_int_equal(r.status, 400);
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, b, 10000), "succeeded");
    REQ("GET", "/metrics", NULL, &r);
    double after = metric_sum(r.body, "gexec_jobs_submitted_total");
    it_resp_free(&r);
    if (after - before != 2) fail_msg("gexec_jobs_submitted_total went from %g to %g for 2 jobs", before, after);
}

typedef struct sse_ctx {
    char buf[65536];
    size_t len;
} sse_ctx;

static void events_stream(void **st) {
    (void)st;
    /* read the stream with curl in the background while a job runs */
    char cmd[512], out[300];
    snprintf(out, sizeof out, "%s/sse.txt", D.dir);
    snprintf(cmd, sizeof cmd, "curl -s -N --max-time 30 -H 'Authorization: Bearer %s' '%s/v1/events?kernel=spin' > %s &", D.key, D.url, out);
    assert_int_equal(system(cmd), 0);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    it_resp r;
    REQ("POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":1000}}", &r);
    char id[32];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    REQ("POST", "/v1/jobs", "{\"kernel\":\"reduce_sum\",\"inputs\":{\"x\":{\"dtype\":\"f64\",\"data\":[1,2]}}}", &r);
    it_resp_free(&r);
    /* short jobs, whose "running" and "succeeded" come from a worker while
     * the submitter may not have handed over "queued" yet */
    enum { NSHORT = 60 };
    char ids[NSHORT][32];
    for (int i = 0; i < NSHORT; i++) {
        REQ("POST", "/v1/jobs", "{\"kernel\":\"spin\"}", &r);
        snprintf(ids[i], sizeof ids[i], "%s", it_str(&r, "id"));
        it_resp_free(&r);
    }
    /* until the last short job's end is in the file (curl reads for up
     * to 30 s): a fixed 3 s stream on a loaded machine ended before the
     * events came, cut in the middle of one */
    char want[96], last[96];
    snprintf(want, sizeof want, "\"id\":\"%s\",\"state\":\"succeeded\"", id);
    snprintf(last, sizeof last, "\"id\":\"%.31s\",\"state\":\"succeeded\"", ids[NSHORT - 1]);
    static char text[65536];
    for (int tries = 0; tries < 250; tries++) {
        ts.tv_sec = 0;
        ts.tv_nsec = 100000000;
        nanosleep(&ts, NULL);
        FILE *f = fopen(out, "r");
        assert_non_null(f);
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
        int all = strstr(text, last) && strstr(text, want);
        for (int i = 0; i < NSHORT && all; i++) {
            char w[128];
            snprintf(w, sizeof w, "\"id\":\"%.31s\",\"state\":\"succeeded\"", ids[i]);
            all = strstr(text, w) != NULL;
        }
        if (all) break;
    }
    if (!strstr(text, want) || !strstr(text, "event: job") || strstr(text, "reduce_sum"))
        fail_msg("event stream: %s", text);
    /* each job's events in the engine's order (about one in ten used to
     * come as running, succeeded, queued) */
    static const char *const order[] = {"queued", "running", "succeeded"};
    for (int i = 0; i < NSHORT; i++) {
        const char *prev = text;
        for (int k = 0; k < 3; k++) {
            char w[128];
            snprintf(w, sizeof w, "\"id\":\"%.31s\",\"state\":\"%s\"", ids[i], order[k]);
            const char *at = strstr(text, w);
            if (!at || at < prev) fail_msg("job %s: \"%s\" missing or out of order in the stream", ids[i], order[k]);
            prev = at;
        }
    }
}

/* ---- durability ------------------------------------------------------------- */

/* Until job id's running state is in the store (its events show it), for
 * at most 5 s. */
static void wait_running_stored(it_daemon *d, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    for (int tries = 0;; tries++) {
        it_resp r;
        assert_int_equal(it_req(d, "GET", path, NULL, 0, NULL, &r), 0);
        int running = r.body && strstr(r.body, "\"running\"");
        it_resp_free(&r);
        if (running) return;
        assert_true(tries < 500);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

/* store.retention: a finished job older than the retention is deleted
 * (404), an unused blob too (404), both counted in /metrics; a job queued
 * behind a long one whose dependency was deleted meanwhile is restored
 * after a restart and runs (it failed: "job N does not exist"). */
static int get_status(it_daemon *d, const char *path) {
    it_resp r;
    assert_int_equal(it_req(d, "GET", path, NULL, 0, NULL, &r), 0);
    int st = (int)r.status;
    it_resp_free(&r);
    return st;
}

static int wait_status(it_daemon *d, const char *path, int want, int timeout_ms) {
    for (int t = 0; t < timeout_ms; t += 100) {
        if (get_status(d, path) == want) return 1;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void retention_deletes_old(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_STORE_RETENTION=2s";
    d.extra_env[1] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&d), 0);
    char dep[32], blocker[32], waiter[32], body[256], path[160], blob[80];
    post_job(&d, "{\"kernel\":\"spin\"}", dep);
    assert_string_equal(it_wait_job(&d, dep, 5000), "succeeded");
    /* a blob nobody names */
    int64_t n = 16;
    gx_array *x;
    assert_int_equal(gx_array_new(GX_F32, 1, &n, &x, NULL), 0);
    for (int64_t i = 0; i < n; i++) ((float *)x->data)[i] = (float)i * 3.5f;
    void *buf;
    size_t len;
    assert_int_equal(gx_npy_write_mem(x, &buf, &len, NULL), 0);
    gx_array_unref(x);
    it_resp r;
    assert_int_equal(it_req(&d, "POST", "/v1/blobs", buf, len, "application/octet-stream", &r), 0);
    assert_int_equal(r.status, 201);
    snprintf(blob, sizeof blob, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    free(buf);
    /* the one worker busy for 30 s; a job depending on dep waits behind it */
    post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":30000000}}", blocker);
    wait_running_stored(&d, blocker);
    snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", dep);
    post_job(&d, body, waiter);
    snprintf(path, sizeof path, "/v1/jobs/%s", dep);
    assert_true(wait_status(&d, path, 404, 10000));
    snprintf(path, sizeof path, "/v1/blobs/%s", blob);
    assert_true(wait_status(&d, path, 404, 10000));
    snprintf(path, sizeof path, "/v1/jobs/%s", waiter);
    assert_int_equal(get_status(&d, path), 200); /* queued: kept */
    assert_int_equal(it_req(&d, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    assert_non_null(strstr(r.body, "gexec_store_purged_total{kind=\"job\"} 1\n"));
    assert_non_null(strstr(r.body, "gexec_store_purged_total{kind=\"blob\"} 1\n"));
    it_resp_free(&r);
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s", blocker);
    assert_int_equal(it_req(&d, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&d, waiter, 10000), "succeeded");
    assert_int_equal(it_finish(&d), 0);
}

/* The HTTP server runs while the jobs are restored (seconds with a million
 * of them): /healthz answers 200 and /readyz 503 "starting" meanwhile, and
 * every other request 503 with Retry-After; nothing at all was answered
 * before (a liveness probe timed out). Then all the jobs are there. */
static void probes_during_restore(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&d), 0);
    char first[32];
    post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":600000000}}", first); /* holds the one worker */
    enum { BATCH = 10000, NB = 6 };
    size_t cap = BATCH * 20 + 32, n = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    n += (size_t)snprintf(body, cap, "{\"jobs\":[");
    for (int i = 0; i < BATCH; i++) n += (size_t)snprintf(body + n, cap - n, "%s{\"kernel\":\"spin\"}", i ? "," : "");
    n += (size_t)snprintf(body + n, cap - n, "]}");
    for (int b = 0; b < NB; b++) {
        it_resp r;
        assert_int_equal(it_req(&d, "POST", "/v1/jobs:batch", body, n, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        it_resp_free(&r);
    }
    free(body);
    it_kill9(&d);
    d.ready_path = "/healthz"; /* back as soon as it answers at all */
    assert_int_equal(it_start(&d), 0);
    d.ready_path = NULL;
    int starting = 0, submits_refused = 0, ready = 0;
    for (int i = 0; i < 3000 && !ready; i++) {
        it_resp r;
        assert_int_equal(it_req(&d, "GET", "/readyz", NULL, 0, NULL, &r), 0);
        if (r.status == 200) ready = 1;
        else if (r.status == 503 && r.body && strstr(r.body, "starting: restoring jobs")) starting++;
        it_resp_free(&r);
        if (ready || !starting) continue;
        assert_int_equal(it_req(&d, "GET", "/healthz", NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        it_resp_free(&r);
        assert_int_equal(it_req(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", 17, NULL, &r), 0);
        if (r.status == 503) {
            char ra[16];
            it_header(&r, "Retry-After", ra, sizeof ra);
            assert_string_equal(ra, "1");
            ASSERT_STR(&r, "error.code", "GX_EBUSY");
            submits_refused++;
        } else {
            assert_int_equal(r.status, 202); /* the restore ended in between */
        }
        it_resp_free(&r);
    }
    print_message("while %d queued jobs were restored: /readyz 503 'starting' %d times, %d submits 503\n",
                  BATCH * NB + 1, starting, submits_refused);
    assert_true(ready);
    assert_true(starting > 0);
    it_resp r;
    assert_int_equal(it_req(&d, "GET", "/v1/jobs?state=queued&limit=1&order=desc", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%llu", strtoull(first, NULL, 10) + BATCH * NB);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200); /* the last job of the last batch */
    it_resp_free(&r);
    it_finish(&d);
}

/* With store.retention 0 (keep everything) the sweep for blob files that
 * no row names (a crash between a file and its row) still runs: an old
 * orphan goes a second after the start, a young one and the blobs stay. */
static void retention_off_sweeps(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_STORE_RETENTION=0";
    assert_int_equal(it_start(&d), 0);
    assert_int_equal(it_stop(&d), 0);
    char shard[300], old[400], young[400];
    snprintf(shard, sizeof shard, "%s/data/blobs", d.dir);
    (void)mkdir(shard, 0700);
    snprintf(shard, sizeof shard, "%s/data/blobs/00", d.dir);
    (void)mkdir(shard, 0700);
    snprintf(old, sizeof old, "%s/00%062d", shard, 1);
    snprintf(young, sizeof young, "%s/00%062d", shard, 2);
    for (int i = 0; i < 2; i++) {
        FILE *fp = fopen(i ? young : old, "wb");
        assert_non_null(fp);
        fputs("x", fp);
        fclose(fp);
    }
    struct timeval tv[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    assert_int_equal(utimes(old, tv), 0);
    assert_int_equal(it_start(&d), 0);
    int gone = 0;
    for (int t = 0; t < 100 && !gone; t++) {
        gone = access(old, F_OK) != 0;
        struct timespec ts = {0, 100000000};
        if (!gone) nanosleep(&ts, NULL);
    }
    assert_true(gone);
    assert_int_equal(access(young, F_OK), 0);
    assert_int_equal(it_finish(&d), 0);
}

static void restart_keeps_jobs(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&d), 0);
    char ids[5][32];
    for (int i = 0; i < 5; i++) /* the first one runs long enough to be killed running */
        post_job(&d, i ? "{\"kernel\":\"spin\",\"args\":{\"us\":400000}}" : "{\"kernel\":\"spin\",\"args\":{\"us\":3000000}}",
                 ids[i]);
    /* an idempotency key outlives the restart: the same submission answers
     * the original job (200), finished and forgotten by the engine or not */
    const char *keyed = "{\"kernel\":\"spin\",\"idempotency_key\":\"across-restart\"}";
    char keyed_id[32];
    post_job(&d, keyed, keyed_id);
    /* a job waiting on the one that will be interrupted */
    char dep_id[32];
    {
        char body[128];
        snprintf(body, sizeof body, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", ids[0]);
        it_resp k;
        assert_int_equal(it_req(&d, "POST", "/v1/jobs", body, strlen(body), NULL, &k), 0);
        assert_int_equal(k.status, 202);
        ASSERT_STR(&k, "state", "waiting");
        snprintf(dep_id, sizeof dep_id, "%s", it_str(&k, "id"));
        it_resp_free(&k);
    }
    /* a batch whose second job depends on its first ("@0"), both queued
     * behind ids[0] at the kill: the stored spec names the dependency by
     * its id, so the dependent is restored (it was failed at restore: "@N
     * references work only in a batch") */
    char bids[2][32], fids[2][32];
    submit_pair(&d, "{\"jobs\":[{\"kernel\":\"spin\",\"args\":{\"us\":1000}},"
                    "{\"kernel\":\"spin\",\"depends_on\":[\"@0\"]}]}", bids);
    /* and one whose first job depends on its second ("@1"): the dependency
     * gets the lower id, so the restore (in id order) meets it first */
    submit_pair(&d, "{\"jobs\":[{\"kernel\":\"spin\",\"depends_on\":[\"@1\"]},"
                    "{\"kernel\":\"spin\",\"args\":{\"us\":1000}}]}", fids);
    assert_true(strtoull(fids[1], NULL, 10) < strtoull(fids[0], NULL, 10));
    wait_running_stored(&d, ids[0]);
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    assert_string_equal(it_wait_job(&d, bids[1], 10000), "succeeded");
    assert_string_equal(it_wait_job(&d, bids[0], 10000), "succeeded");
    assert_string_equal(it_wait_job(&d, fids[0], 10000), "succeeded");
    assert_string_equal(it_wait_job(&d, fids[1], 10000), "succeeded");
    for (int round = 0; round < 2; round++) {
        it_resp k;
        assert_int_equal(it_req(&d, "POST", "/v1/jobs", keyed, strlen(keyed), NULL, &k), 0);
        assert_int_equal(k.status, 200);
        ASSERT_STR(&k, "id", keyed_id);
        it_resp_free(&k);
        if (!round) assert_string_equal(it_wait_job(&d, keyed_id, 10000), "succeeded");
    }
    char path[128];
    it_resp r;
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[0]);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    /* the job that was running is attempt 2 now (the interrupted one was 1) */
    assert_int_equal(json_integer_value(json_object_get(r.json, "attempts")), 2);
    it_resp_free(&r);
    for (int i = 0; i < 5; i++) assert_string_equal(it_wait_job(&d, ids[i], 10000), "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s/events", ids[0]);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_non_null(strstr(r.body, "requeued after restart"));
    it_resp_free(&r);
    /* the dependent ran after it, and its history says "waiting" once: the
     * restore does not record again the state the store held */
    assert_string_equal(it_wait_job(&d, dep_id, 10000), "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s/events", dep_id);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    {
        int waiting = 0;
        for (const char *p = r.body; p && (p = strstr(p, "\"waiting\"")); p++) waiting++;
        if (waiting != 1) fail_msg("events of the restored dependent: %s", r.body);
        /* and its release from waiting is recorded (it was dropped: the
         * history went from waiting straight to running) */
        char seen[200] = "";
        json_t *evs = json_object_get(r.json, "events");
        for (size_t i = 0; i < json_array_size(evs); i++) {
            size_t l = strlen(seen);
            snprintf(seen + l, sizeof seen - l, "%s%s", i ? "," : "",
                     json_string_value(json_object_get(json_array_get(evs, i), "state")));
        }
        if (strcmp(seen, "queued,waiting,queued,running,succeeded"))
            fail_msg("history of the restored dependent: %s", seen);
    }
    it_resp_free(&r);
    /* a graceful stop and start: finished jobs are read from the store */
    assert_int_equal(it_stop(&d), 0);
    assert_int_equal(it_start(&d), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[4]);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    ASSERT_STR(&r, "state", "succeeded");
    it_resp_free(&r);
    assert_int_equal(it_stop(&d), 0);
    it_cleanup(&d);
}

typedef struct burst {
    it_daemon *d;
    atomic_int stop;
    pthread_mutex_t mu;
    char (*ids)[24];
    size_t n, cap;
} burst;

static void *burst_main(void *arg) {
    burst *b = arg;
    while (!atomic_load(&b->stop)) {
        it_resp r;
        if (it_req(b->d, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", 17, NULL, &r)) {
            it_resp_free(&r);
            break; /* the daemon is gone */
        }
        if (r.status == 202) {
            pthread_mutex_lock(&b->mu);
            if (b->n < b->cap) snprintf(b->ids[b->n++], 24, "%s", it_str(&r, "id"));
            pthread_mutex_unlock(&b->mu);
        }
        it_resp_free(&r);
    }
    return NULL;
}

static void sigkill_during_burst(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    burst b = {.d = &d, .cap = 200000};
    b.ids = calloc(b.cap, sizeof *b.ids);
    pthread_mutex_init(&b.mu, NULL);
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, burst_main, &b);
    struct timespec ts = {0, 300000000 + (long)(rand() % 400) * 1000000};
    nanosleep(&ts, NULL);
    it_kill9(&d);
    atomic_store(&b.stop, 1);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    fprintf(stderr, "burst: %zu jobs acknowledged before SIGKILL\n", b.n);
    assert_true(b.n > 0);
    assert_int_equal(it_start(&d), 0);
    size_t missing = 0;
    for (size_t i = 0; i < b.n; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/jobs/%s", b.ids[i]);
        it_resp r;
        if (it_req(&d, "GET", path, NULL, 0, NULL, &r) || r.status != 200) missing++;
        it_resp_free(&r);
    }
    assert_int_equal(missing, 0);
    /* and they all finish, none of them otherwise than succeeded */
    it_resp r;
    assert_string_equal(it_wait_job(&d, b.ids[b.n - 1], 10000), "succeeded");
    for (int tries = 0;; tries++) {
        assert_int_equal(it_req(&d, "GET", "/v1/jobs?state=queued,waiting,scheduled,running,retrying&limit=10", NULL, 0,
                                NULL, &r),
                         0);
        assert_int_equal(r.status, 200);
        size_t left = json_array_size(json_object_get(r.json, "jobs"));
        it_resp_free(&r);
        if (!left) break;
        if (tries > 1000) fail_msg("%zu or more jobs still unfinished 10 s after the restart", left);
        struct timespec pause = {0, 10000000};
        nanosleep(&pause, NULL);
    }
    assert_int_equal(it_req(&d, "GET", "/v1/jobs?state=failed,cancelled,timed_out,dead&limit=10", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "jobs")), 0);
    it_resp_free(&r);
    assert_int_equal(it_stop(&d), 0);
    free(b.ids);
    it_cleanup(&d);
}

/* SIGTERM with a job running past shutdown_timeout (3 s), one queued behind
 * it and a keep-alive connection open: during the drain /readyz answers
 * 503 on that connection and a submission on it is accepted (and kept
 * queued); no queued job starts; the daemon exits 0 after about the
 * timeout. At the next start the interrupted job runs again as a new
 * attempt ("requeued after restart") and the queued ones run once. */
static void sigterm_drain(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    d.extra_env[1] = "GEXEC_SHUTDOWN_TIMEOUT=3s";
    assert_int_equal(it_start(&d), 0);
    char ids[3][32], path[128];
    const char *bodies[2] = {"{\"kernel\":\"spin\",\"args\":{\"us\":6000000}}", "{\"kernel\":\"spin\"}"};
    for (int i = 0; i < 2; i++) {
        it_resp r;
        assert_int_equal(it_req(&d, "POST", "/v1/jobs", bodies[i], strlen(bodies[i]), NULL, &r), 0);
        assert_int_equal(r.status, 202);
        snprintf(ids[i], sizeof ids[i], "%s", it_str(&r, "id"));
        it_resp_free(&r);
    }
    snprintf(path, sizeof path, "/v1/jobs/%s", ids[0]);
    wait_running_stored(&d, ids[0]); /* the long job is running, the other queued behind it */
    int fd = tu_connect(d.port, 10000);
    assert_true(fd >= 0);
    char req[512], buf[8192];
    snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_int_equal(tu_http_on(fd, req, buf, sizeof buf), 200); /* open before the signal */

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t term_wall = (int64_t)time(NULL);
    assert_int_equal(kill(d.pid, SIGTERM), 0);
    snprintf(req, sizeof req, "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    for (int tries = 0;; tries++) { /* until the signal is seen */
        int status = tu_http_on(fd, req, buf, sizeof buf);
        if (status == 503) break;
        assert_int_equal(status, 200);
        assert_true(tries < 200);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_non_null(strstr(buf, "draining"));
    snprintf(req, sizeof req,
             "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
             d.key, strlen(bodies[1]), bodies[1]);
    assert_int_equal(tu_http_on(fd, req, buf, sizeof buf), 202);
    const char *idp = strstr(buf, "\"id\":\"");
    assert_non_null(idp);
    snprintf(ids[2], sizeof ids[2], "%.*s", (int)strcspn(idp + 6, "\""), idp + 6);
    int status = 0;
    assert_int_equal(waitpid(d.pid, &status, 0), d.pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    d.pid = 0;
    close(fd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (took < 2.9 || took > 15) fail_msg("the drain took %.2f s (shutdown_timeout 3 s)", took);

    assert_int_equal(it_start(&d), 0);
    for (int i = 0; i < 3; i++) assert_string_equal(it_wait_job(&d, ids[i], 20000), "succeeded");
    it_resp r;
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(json_integer_value(json_object_get(r.json, "attempts")), 2);
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", ids[0]);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_non_null(strstr(r.body, "requeued after restart"));
    it_resp_free(&r);
    for (int i = 1; i < 3; i++) { /* queued through the drain: one attempt, started after it */
        snprintf(path, sizeof path, "/v1/jobs/%s", ids[i]);
        assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(json_integer_value(json_object_get(r.json, "attempts")), 1);
        const char *started = it_str(&r, "started_at");
        assert_non_null(started);
        struct tm tm = {0};
        assert_non_null(strptime(started, "%Y-%m-%dT%H:%M:%S", &tm));
        if ((int64_t)timegm(&tm) < term_wall) fail_msg("job %s started at %s, before the SIGTERM", ids[i], started);
        it_resp_free(&r);
    }
    assert_int_equal(it_finish(&d), 0);
}

/* Request ids: a caller's X-Request-Id is kept and sent back, a request
 * without one gets the daemon's own; with log.format json and log.level
 * debug each answered request is one JSON log line carrying its id. */
static void request_ids_in_logs(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_LOG_FORMAT=json";
    d.extra_env[1] = "GEXEC_LOG_LEVEL=debug";
    assert_int_equal(it_start(&d), 0);
    int fd = tu_connect(d.port, 5000);
    assert_true(fd >= 0);
    char buf[4096];
    assert_int_equal(tu_http_on(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-42\r\n\r\n", buf, sizeof buf), 200);
    assert_non_null(strcasestr(buf, "\r\nX-Request-Id: trace-42\r\n"));
    assert_int_equal(tu_http_on(fd, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof buf), 200);
    const char *own = strcasestr(buf, "\r\nX-Request-Id: r");
    assert_non_null(own);
    char rid[32];
    snprintf(rid, sizeof rid, "%.*s", (int)strcspn(own + 16, "\r"), own + 16);
    close(fd);
    assert_int_equal(it_stop(&d), 0);
    FILE *f = fopen(d.log, "r");
    assert_non_null(f);
    static char line[16384];
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (!j) fail_msg("log line is not JSON: %s", line);
        const char *req = json_string_value(json_object_get(j, "req"));
        const char *msg = json_string_value(json_object_get(j, "msg"));
        assert_non_null(json_string_value(json_object_get(j, "ts")));
        assert_non_null(json_string_value(json_object_get(j, "level")));
        if (req && !strcmp(req, "trace-42") && msg && strstr(msg, "GET /healthz 200")) seen |= 1;
        if (req && !strcmp(req, rid) && msg && strstr(msg, "GET /readyz 200")) seen |= 2;
        json_decref(j);
    }
    fclose(f);
    assert_int_equal(seen, 3);
    it_cleanup(&d);
}

/* A job a restart moved back to the queue (its store record holds attempt
 * 2, fencing attempt 1's writes) is cancelled before it runs again: the
 * cancel is recorded, and the next start neither restores nor runs it.
 * The CPU device stays drained across the restarts, so nothing runs it. */
static void cancel_requeued_job(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=1";
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    char id[32], path[128];
    post_job(&d, "{\"kernel\":\"spin\",\"args\":{\"us\":30000000}}", id);
    wait_running_stored(&d, id);
    assert_int_equal(it_req(&d, "POST", "/v1/devices/cpu/drain", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    it_kill9(&d);
    assert_int_equal(it_start(&d), 0);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    ASSERT_STR(&r, "state", "queued");
    it_resp_free(&r);
    assert_int_equal(it_req(&d, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    ASSERT_STR(&r, "state", "cancelled");
    it_resp_free(&r);
    assert_int_equal(it_stop(&d), 0);
    assert_int_equal(it_start(&d), 0);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    ASSERT_STR(&r, "state", "cancelled");
    it_resp_free(&r);
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_non_null(strstr(r.body, "requeued after restart"));
    assert_non_null(strstr(r.body, "\"state\":\"cancelled\",\"attempt\":2"));
    it_resp_free(&r);
    assert_int_equal(it_finish(&d), 0);
}

int main(void) {
    srand((unsigned)time(NULL));
    const struct CMUnitTest endpoints[] = {
        cmocka_unit_test(submit_get_result),
        cmocka_unit_test(big_output_is_a_blob),
        cmocka_unit_test(damaged_blob_refused),
        cmocka_unit_test(head_and_transfer_codings),
        cmocka_unit_test(run_seconds_counts_ended_attempts),
        cmocka_unit_test(batch_and_list),
        cmocka_unit_test(cancel_and_explain),
        cmocka_unit_test(idempotency),
        cmocka_unit_test(error_paths),
        cmocka_unit_test(events_stream),
        cmocka_unit_test(catalog_devices_health_metrics),
        cmocka_unit_test(submitted_counted_once),
        cmocka_unit_test(dependency_ending_during_submit),
        cmocka_unit_test(query_value_with_slashes),
    };
    const struct CMUnitTest durability[] = {
        cmocka_unit_test(probes_during_restore),
        cmocka_unit_test(restart_keeps_jobs),
        cmocka_unit_test(batch_dep_on_idempotent_repeat),
        cmocka_unit_test(one_daemon_per_data_dir),
        cmocka_unit_test(busy_address_fails_fast),
        cmocka_unit_test(restore_keeps_submit_time),
        cmocka_unit_test(restore_started_no_queue_timeout),
        cmocka_unit_test(retention_deletes_old),
        cmocka_unit_test(retention_off_sweeps),
        cmocka_unit_test(folders_made),
        cmocka_unit_test(sigkill_during_burst),
        cmocka_unit_test(sigterm_drain),
        cmocka_unit_test(cancel_requeued_job),
        cmocka_unit_test(request_ids_in_logs),
        cmocka_unit_test(readyz_on_failed_selftest),
        cmocka_unit_test(result_while_job_ends),
        cmocka_unit_test(list_follower_misses_nothing),
        cmocka_unit_test(list_newest_first_misses_nothing),
        cmocka_unit_test(cancel_survives_kill),
    };
    int rc = cmocka_run_group_tests_name("endpoints", endpoints, setup, teardown);
    rc |= cmocka_run_group_tests_name("durability", durability, NULL, NULL);
    return rc;
}
