/*
 * test_auth_routes.c - every route of the daemon x every role (no key,
 * viewer, submitter, operator, admin) against the running daemon, checked
 * against the permission table (gx_auth_rules): a role below the route's
 * least role answers 403 GX_EPERM, no key answers 401 GX_EAUTH with
 * WWW-Authenticate: Bearer, public routes answer without a key, and a role
 * that may call the route is never refused (whatever the route then says
 * about the placeholder ids and bodies). Also: every route of gx__routes has
 * a rule (a route without one would be refused to everyone), and blobs
 * follow the cross-tenant column: another tenant's is 404, an admin reads
 * any tenant's.
 */
#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "api/service.h"
#include "gexec/gexec_auth.h"
#include "itest.h"
#include "netutil.h"

static it_daemon D;
static char KEY[GX_ROLE_ADMIN + 1][80]; /* by role; [0] = none */

typedef struct resp {
    long status;
    char headers[4096];
    char body[4096];
    size_t blen;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ctx) {
    resp *r = ctx;
    size_t k = sz * n, room = sizeof r->body - 1 - r->blen;
    size_t c = k < room ? k : room;
    memcpy(r->body + r->blen, p, c);
    r->blen += c;
    r->body[r->blen] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx) {
    resp *r = ctx;
    size_t k = sz * n, have = strlen(r->headers);
    if (have + k + 1 < sizeof r->headers) {
        memcpy(r->headers + have, p, k);
        r->headers[have + k] = '\0';
    }
    return k;
}

/* One request with key (NULL: none); streams are cut after a moment (the
 * status is known once the headers came). */
static long send_to(const it_daemon *d, const char *method, const char *path, const char *body, const char *key,
                    resp *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[512];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1500L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    char auth[128];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->status;
}

static long send_req(const char *method, const char *path, const char *body, const char *key, resp *r) {
    return send_to(&D, method, path, body, key, r);
}

static const gx_route *route_of(const char *method, const char *pattern) {
    for (int i = 0; i < gx__nroutes; i++)
        if (!strcmp(gx__routes[i].method, method) && !strcmp(gx__routes[i].pattern, pattern)) return &gx__routes[i];
    return NULL;
}

static void every_route_has_a_rule(void **st) {
    (void)st;
    for (int i = 0; i < gx__nroutes; i++)
        if (!gx_auth_rule_find(gx__routes[i].method, gx__routes[i].pattern))
            fail_msg("%s %s has no rule in src/auth/roles.c", gx__routes[i].method, gx__routes[i].pattern);
}

/* A route's pattern with a placeholder id that names nothing. */
static void placeholder_path(const char *pattern, char *path, size_t cap) {
    const char *b = strchr(pattern, '{'), *e = b ? strchr(b, '}') : NULL;
    if (b && e)
        snprintf(path, cap, "%.*s%s%s", (int)(b - pattern), pattern,
                 !strncmp(pattern, "/v1/keys/", 9) ? "ffffffffffffffff" : "99999999", e + 1);
    else
        snprintf(path, cap, "%s", pattern);
}

static void route_x_role(void **st) {
    (void)st;
    size_t n;
    const gx_auth_rule *rules = gx_auth_rules(&n);
    int cells = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const gx_auth_rule *ru = &rules[i];
        if (!route_of(ru->method, ru->pattern)) continue; /* planned route */
        char path[256];
        placeholder_path(ru->pattern, path, sizeof path);
        /* bodies that are refused (400) by a route that is allowed: nothing changes */
        const char *body = strcmp(ru->method, "POST") ? NULL : "{}";
        for (int role = GX_ROLE_NONE; role <= GX_ROLE_ADMIN; role++) {
            resp r;
            long stt = send_req(ru->method, path, body, role ? KEY[role] : NULL, &r);
            long want = 0; /* 0: neither 401 nor 403 */
            if (ru->own != GX_ROLE_NONE && role == GX_ROLE_NONE) want = 401;
            else if (ru->own != GX_ROLE_NONE && role < ru->own) want = 403;
            int ok = want ? stt == want : (stt != 401 && stt != 403 && stt != 0);
            if (ok && want == 401)
                ok = strcasestr(r.headers, "WWW-Authenticate: Bearer") && strstr(r.body, "\"GX_EAUTH\"");
            if (ok && want == 403) ok = strstr(r.body, "\"GX_EPERM\"") && strstr(r.body, gx_auth_role_name(role));
            cells++;
            fprintf(stderr, "  %-7s %-26s %-9s -> %ld%s\n", ru->method, ru->pattern, gx_auth_role_name(role), stt,
                    ok ? "" : "  WRONG");
            if (!ok) {
                bad++;
                fprintf(stderr, "    want %s; body %.300s\n", want ? (want == 401 ? "401" : "403") : "not 401/403",
                        r.body);
            }
        }
    }
    fprintf(stderr, "auth routes: %d cells, %d wrong\n", cells, bad);
    assert_true(cells >= 5 * 15);
    assert_int_equal(bad, 0);
}

/* auth.enabled false: every route answers without a key, as the default
 * tenant with every right (never 401/403, never a dropped connection: GET
 * /v1/keys took the daemon down, a NULL key database), the key routes say
 * that keys are off (409 GX_ESTATE), and jobs run. */
static void auth_off_every_route(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_AUTH_ENABLED=false";
    d.use_key = "";
    assert_int_equal(it_start(&d), 0);
    for (int i = 0; i < gx__nroutes; i++) {
        const gx_route *ro = &gx__routes[i];
        if (!strcmp(ro->pattern, "/v1/events")) continue; /* a stream: route_x_role covers it */
        char path[256];
        placeholder_path(ro->pattern, path, sizeof path);
        resp r;
        long stt = send_to(&d, ro->method, path, strcmp(ro->method, "POST") ? NULL : "{}", NULL, &r);
        fprintf(stderr, "  %-7s %-26s -> %ld\n", ro->method, ro->pattern, stt);
        if (stt == 0 || stt == 401 || stt == 403 || stt >= 500)
            fail_msg("%s %s with auth off: %ld %.300s", ro->method, ro->pattern, stt, r.body);
        if (!strncmp(ro->pattern, "/v1/keys", 8) && (stt != 409 || !strstr(r.body, "\"GX_ESTATE\"")))
            fail_msg("%s %s with auth off: %ld %.300s (want 409 GX_ESTATE)", ro->method, ro->pattern, stt, r.body);
        resp h;
        assert_int_equal(send_to(&d, "GET", "/healthz", NULL, NULL, &h), 200);
    }
    char id[32];
    resp r;
    assert_int_equal(send_to(&d, "GET", "/v1/whoami", NULL, NULL, &r), 200);
    assert_non_null(strstr(r.body, "\"key_id\":null,\"tenant\":\"default\",\"role\":\"admin\""));
    assert_non_null(strstr(r.body, "\"auth\":false"));
    assert_int_equal(send_to(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", NULL, &r), 202);
    const char *p = strstr(r.body, "\"id\":\"");
    assert_non_null(p);
    snprintf(id, sizeof id, "%.*s", (int)strcspn(p + 6, "\""), p + 6);
    assert_string_equal(it_wait_job(&d, id, 5000), "succeeded");
    assert_non_null(strstr(r.body, "\"tenant\":\"default\""));
    assert_int_equal(it_finish(&d), 0);
}

/* Unknown paths need a key too (401 before 404), and 404 with one. */
static void unknown_paths(void **st) {
    (void)st;
    resp r;
    assert_int_equal(send_req("GET", "/v1/nothing", NULL, NULL, &r), 401);
    assert_int_equal(send_req("GET", "/v1/nothing", NULL, KEY[GX_ROLE_VIEWER], &r), 404);
}

/* A key of this role for tenant (its secret in key), made with the admin key. */
static void tenant_key(const char *tenant, const char *role, char *key, size_t cap) {
    char body[128];
    snprintf(body, sizeof body, "{\"tenant\":\"%s\",\"role\":\"%s\"}", tenant, role);
    it_resp r;
    assert_int_equal(it_req(&D, "POST", "/v1/keys", body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 201);
    snprintf(key, cap, "%s", it_str(&r, "key"));
    it_resp_free(&r);
}

/* GET path with key (NULL: the admin key): its status. */
static long get_as(const char *key, const char *path) {
    it_resp r;
    D.use_key = key;
    assert_int_equal(it_req(&D, "GET", path, NULL, 0, NULL, &r), 0);
    D.use_key = NULL;
    long st = r.status;
    it_resp_free(&r);
    return st;
}

/* A .npy of n float32 values first, first + 1, ... (a 128-byte header). */
static char *npy_f32(int n, float first, size_t *len) {
    *len = 128 + (size_t)n * 4;
    char *b = malloc(*len);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY\x01\x00\x76\x00", 10);
    int hl = snprintf(b + 10, 118, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }", n);
    memset(b + 10 + hl, ' ', (size_t)(117 - hl));
    b[127] = '\n';
    for (int i = 0; i < n; i++) {
        float v = first + (float)i;
        memcpy(b + 128 + 4 * i, &v, 4);
    }
    return b;
}

/* Blobs are the tenant's data: another tenant gets 404, an admin (of any
 * tenant) reads every tenant's, both uploads and the outputs its result
 * links to (the role table of docs/security.md). */
static void admin_reads_every_blob(void **st) {
    (void)st;
    char ta[80], tb[80], op[80];
    tenant_key("ta", "submitter", ta, sizeof ta);
    tenant_key("tb", "viewer", tb, sizeof tb);
    tenant_key("tb", "operator", op, sizeof op);
    size_t len;
    char *npy = npy_f32(5000, 7.25f, &len);
    it_resp r;
    D.use_key = ta;
    assert_int_equal(it_req(&D, "POST", "/v1/blobs", npy, len, "application/octet-stream", &r), 0);
    D.use_key = NULL;
    free(npy);
    assert_int_equal(r.status, 201);
    char blob[100], path[200];
    snprintf(blob, sizeof blob, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    /* saxpy of 5000 elements: its y is stored as a blob of ta's */
    char body[512];
    snprintf(body, sizeof body,
             "{\"kernel\":\"saxpy\",\"args\":{\"a\":3},\"inputs\":{\"x\":{\"blob\":\"%s\"},\"y\":{\"blob\":\"%s\"}}}",
             blob, blob);
    D.use_key = ta;
    assert_int_equal(it_req(&D, "POST", "/v1/jobs", body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 202);
    char id[24];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    assert_string_equal(it_wait_job(&D, id, 10000), "succeeded");
    D.use_key = NULL;
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    assert_int_equal(it_req(&D, "GET", path, NULL, 0, NULL, &r), 0); /* the admin's key */
    assert_int_equal(r.status, 200);
    char url[200];
    snprintf(url, sizeof url, "%s", json_string_value(json_object_get(
                                        json_object_get(json_object_get(r.json, "outputs"), "y"), "url")));
    it_resp_free(&r);
    assert_non_null(strstr(url, "/v1/blobs/sha256:"));
    snprintf(path, sizeof path, "/v1/blobs/%s", blob);
    const char *paths[2] = {path, url};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(get_as(ta, paths[i]), 200);
        assert_int_equal(get_as(NULL, paths[i]), 200); /* admin of tenant "default" */
        assert_int_equal(get_as(tb, paths[i]), 404);   /* not 403: it does not exist for tb */
        assert_int_equal(get_as(op, paths[i]), 404);   /* operators too: outputs stay the tenant's */
    }
    /* HEAD reads as GET does: an operator sees another tenant's job (HEAD
     * got 404: it was taken for a write) */
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    assert_int_equal(get_as(op, path), 200);
    char req[512], out[4096];
    snprintf(req, sizeof req, "HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer %s\r\n\r\n",
             path, op);
    assert_true(tu_raw_exchange(D.port, req, strlen(req), out, sizeof out, 5000) > 0);
    if (!strstr(out, "HTTP/1.1 200")) fail_msg("HEAD %s as an operator of another tenant: %s", path, out);
    /* an admin's unknown blob is still 404 */
    assert_int_equal(get_as(NULL, "/v1/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000"),
                     404);
}

/* Revoking a key ends the event streams it opened (within the revoke's
 * answer and a wake-up); they used to go on delivering the tenant's
 * events to a key refused everywhere else. A stream of another key stays. */
static void revoked_key_streams_end(void **st) {
    (void)st;
    char key[80], other[80];
    tenant_key("tr", "viewer", key, sizeof key);
    tenant_key("tr", "viewer", other, sizeof other);
    int fds[2];
    const char *keys[2] = {key, other};
    for (int i = 0; i < 2; i++) {
        fds[i] = tu_connect(D.port, 5000);
        assert_true(fds[i] >= 0);
        char req[256], buf[1024];
        int n = snprintf(req, sizeof req, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                         keys[i]);
        assert_int_equal(send(fds[i], req, (size_t)n, 0), n);
        ssize_t k = recv(fds[i], buf, sizeof buf - 1, 0);
        assert_true(k > 0);
        buf[k] = '\0';
        assert_non_null(strstr(buf, "200 OK"));
    }
    char path[64];
    snprintf(path, sizeof path, "/v1/keys/%.16s", key + 3); /* gx_<16 hex id>_<secret> */
    it_resp r;
    assert_int_equal(it_req(&D, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    int ended[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double left = 3.0 - ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
            if (left <= 0) break;
            struct pollfd pf = {.fd = fds[i], .events = POLLIN};
            if (poll(&pf, 1, (int)(left * 1000)) <= 0) break;
            char buf[4096];
            ssize_t k = recv(fds[i], buf, sizeof buf, 0);
            if (k <= 0) {
                ended[i] = 1;
                break;
            }
            /* a chunked stream's end ("0\r\n\r\n") counts as ended too */
            if (k >= 5 && !memcmp(buf + k - 5, "0\r\n\r\n", 5)) {
                ended[i] = 1;
                break;
            }
        }
        close(fds[i]);
    }
    print_message("revoked key's stream %s; the other key's %s\n", ended[0] ? "ended" : "still open",
                  ended[1] ? "ended" : "still open");
    assert_true(ended[0]);
    assert_false(ended[1]);
}

/* A stream opened with a key that then expires ends (at its next event or
 * heartbeat, here within a second or two): it went on for good. */
static void expired_key_streams_end(void **st) {
    (void)st;
    it_resp r;
    const char *body = "{\"tenant\":\"tx\",\"role\":\"viewer\",\"expires_in_s\":2}";
    assert_int_equal(it_req(&D, "POST", "/v1/keys", body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 201);
    char key[80];
    snprintf(key, sizeof key, "%s", it_str(&r, "key"));
    it_resp_free(&r);
    int fd = tu_connect(D.port, 5000);
    assert_true(fd >= 0);
    char req[256], buf[4096];
    int n = snprintf(req, sizeof req, "GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n", key);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int ended = 0;
    double secs = 0;
    while (!ended && secs < 10) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 500) > 0) {
            ssize_t k = recv(fd, buf, sizeof buf, 0);
            if (k <= 0 || (k >= 5 && !memcmp(buf + k - 5, "0\r\n\r\n", 5))) ended = 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    close(fd);
    print_message("stream of a key expiring in 2 s ended after %.2f s\n", secs);
    assert_true(ended);
    assert_true(secs >= 1.5);
}

/* Read one response head from fd (up to its blank line): its status, or
 * -1. head gets the text read (cap bytes at most). */
static int read_head(int fd, char *head, size_t cap) {
    size_t got = 0;
    head[0] = '\0';
    while (!strstr(head, "\r\n\r\n") && got + 1 < cap) {
        ssize_t k = recv(fd, head + got, cap - 1 - got, 0);
        if (k <= 0) return -1;
        got += (size_t)k;
        head[got] = '\0';
    }
    int st;
    return sscanf(head, "HTTP/1.%*d %d", &st) == 1 ? st : -1;
}

/* A client that sends "Expect: 100-continue" waits for "100 Continue"
 * before the body: a request refused on its headers alone (the key, the
 * role, the path, a declared size over http.max_body) is answered at once
 * with the refusal and the body is never sent; gexecd said "100 Continue"
 * to everything and read a whole refused upload first. A request that
 * passes gets "100 Continue" and its answer after the body. Without
 * Expect the body is on its way: a refusal on the headers is answered
 * after it, on a connection that stays open (closing on an unread body
 * resets the connection, and the client saw no answer). */
static void expect_continue(void **st) {
    (void)st;
    char viewer[80];
    tenant_key("tc", "viewer", viewer, sizeof viewer);
    struct {
        const char *what, *method, *path, *key, *length;
        int expect, status;
        const char *field, *ctype; /* ctype NULL: application/json */
    } cases[] = {
        {"a bad key", "POST", "/v1/blobs", "gx_0000000000000000_bad", "1000000", 1, 401, "Authorization", NULL},
        {"no key", "POST", "/v1/jobs", NULL, "17", 1, 401, "Authorization", NULL},
        {"a viewer's submit", "POST", "/v1/jobs", viewer, "17", 1, 403, NULL, NULL},
        {"no such path", "POST", "/v1/nothere", D.key, "1000000", 1, 404, "path", NULL},
        {"a method the path lacks", "PUT", "/v1/jobs", D.key, "17", 1, 405, "method", NULL},
        {"a declared size over the limit", "POST", "/v1/blobs", D.key, "99999999999", 1, 413, "body", NULL},
        {"a submit that is not JSON", "POST", "/v1/jobs", D.key, "17", 1, 415, "Content-Type", "text/plain"},
        {"an upload that is not .npy", "POST", "/v1/blobs", D.key, "1000", 1, 415, "Content-Type", "application/json"},
        {"a good submit", "POST", "/v1/jobs", D.key, "17", 1, 100, NULL, NULL},
        {"a good submit, its type with parameters", "POST", "/v1/jobs", D.key, "17", 1, 100, NULL,
         "application/json; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = tu_connect(D.port, 5000);
        assert_true(fd >= 0);
        char req[512], auth[128] = "", head[4096];
        if (cases[i].key) snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", cases[i].key);
        int n = snprintf(req, sizeof req,
                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Type: %s\r\n"
                         "Content-Length: %s\r\n%s\r\n",
                         cases[i].method, cases[i].path, auth, cases[i].ctype ? cases[i].ctype : "application/json",
                         cases[i].length, cases[i].expect ? "Expect: 100-continue\r\n" : "");
        assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
        int got = read_head(fd, head, sizeof head); /* the body was not sent: the answer must not wait for it */
        print_message("%-40s -> %d\n", cases[i].what, got);
        if (got != cases[i].status) fail_msg("%s: wanted %d before the body, got: %s", cases[i].what, cases[i].status, head);
        if (got == 100) { /* the body, then its answer */
            const char *body = "{\"kernel\":\"spin\"}";
            assert_int_equal(send(fd, body, strlen(body), MSG_NOSIGNAL), (ssize_t)strlen(body));
            char *after = strstr(head, "\r\n\r\n") + 4;
            if (!strstr(after, "\r\n\r\n")) got = read_head(fd, head, sizeof head);
            else sscanf(after, "HTTP/1.%*d %d", &got);
            assert_int_equal(got, 202);
        } else {
            assert_non_null(strstr(head, "Connection: close"));
            if (cases[i].field) {
                char more[1024];
                ssize_t k = recv(fd, more, sizeof more - 1, 0); /* the JSON body, unless it came with the head */
                more[k > 0 ? k : 0] = '\0';
                char want[64];
                snprintf(want, sizeof want, "\"field\":\"%s\"", cases[i].field);
                if (!strstr(head, want) && !strstr(more, want))
                    fail_msg("%s: no %s in %s%s", cases[i].what, want, head, more);
            }
        }
        close(fd);
    }
    /* without Expect: two keys (refused on the headers) with a body */
    int fd = tu_connect(D.port, 5000);
    assert_true(fd >= 0);
    char req[512], out[4096];
    snprintf(req, sizeof req,
             "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"kernel\":\"spin\"}",
             D.key, D.key);
    assert_int_equal(tu_http_on(fd, req, out, sizeof out), 400);
    assert_null(strstr(out, "Connection: close"));
    assert_non_null(strstr(out, "Authorization headers"));
    snprintf(req, sizeof req,
             "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"kernel\":\"spin\"}",
             D.key);
    assert_int_equal(tu_http_on(fd, req, out, sizeof out), 202); /* the same connection goes on */
    close(fd);
}

/* HEAD on the event stream is its headers alone: libmicrohttpd ended the
 * (empty) chunked body after them, and on a keep-alive connection those 5
 * bytes ("0\r\n\r\n") came before the next request's answer. */
static void head_on_a_stream_has_no_body(void **st) {
    (void)st;
    int fd = tu_connect(D.port, 5000);
    assert_true(fd >= 0);
    char req[512], out[8192];
    int n = snprintf(req, sizeof req,
                     "HEAD /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     D.key);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    size_t got = 0;
    for (ssize_t k; got + 1 < sizeof out && (k = recv(fd, out + got, sizeof out - 1 - got, 0)) > 0;) got += (size_t)k;
    out[got] = '\0';
    close(fd);
    assert_true(!strncmp(out, "HTTP/1.1 200", 12));
    assert_non_null(strstr(out, "text/event-stream"));
    const char *second = strstr(out, "\r\n\r\n");
    assert_non_null(second);
    if (strncmp(second + 4, "HTTP/1.1 200", 12)) fail_msg("after the HEAD's headers: %.40s", second + 4);
}

/* Lines of a file that hold all of the strings a and b. */
static int lines_with(const char *path, const char *a, const char *b) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, a) && (!b || strstr(line, b));
    fclose(f);
    return n;
}

/* Requests without a valid key are limited per client address
 * (auth.refused_rate/burst): past the burst they answer 429 with
 * Retry-After and write no audit record (each wrote one: ~550 bytes a
 * request, unlimited). A valid key is not affected. Also: a submission's
 * audit record names the job it made, and the new store is 0600. */
static void refused_requests_limited(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_AUTH_REFUSED_BURST=5";
    d.extra_env[1] = "GEXEC_AUTH_REFUSED_RATE=0.1";
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    int n401 = 0, n429 = 0;
    char ra[32] = "";
    d.use_key = "gx_0123456789abcdef_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    for (int i = 0; i < 20; i++) {
        assert_int_equal(it_req(&d, "GET", "/v1/jobs", NULL, 0, NULL, &r), 0);
        if (r.status == 401) n401++;
        if (r.status == 429) {
            n429++;
            const char *h = strcasestr(r.headers, "Retry-After:");
            if (h) snprintf(ra, sizeof ra, "%.*s", (int)strcspn(h + 12, "\r\n"), h + 12);
        }
        it_resp_free(&r);
    }
    d.use_key = NULL;
    print_message("20 requests with a wrong key: %d answered 401, %d 429 (Retry-After:%s)\n", n401, n429, ra);
    assert_true(n401 >= 5 && n401 <= 6);
    assert_int_equal(n401 + n429, 20);
    assert_true(atoi(ra) >= 1);
    char path[400];
    snprintf(path, sizeof path, "%s/data/audit.log", d.dir);
    assert_int_equal(lines_with(path, "\"auth.refused\"", NULL), n401);
    /* the right key still works, and its submission's record names the job */
    assert_int_equal(it_req(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", 17, NULL, &r), 0);
    assert_int_equal(r.status, 202);
    char target[64];
    snprintf(target, sizeof target, "\"target\":\"job/%s\"", it_str(&r, "id"));
    it_resp_free(&r);
    assert_int_equal(it_stop(&d), 0);
    assert_int_equal(lines_with(path, "\"job.submit\"", target), 1);
    struct stat sb;
    snprintf(path, sizeof path, "%s/data/gexec.db", d.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    it_cleanup(&d);
}

/* Records of action act whose detail holds det, in the whole log. */
static int audit_count(const char *act_want, const char *det_want);
static int audit_count_actor(const char *act_want, const char *actor);

/* The audit log (GET /v1/audit) holds the batch with its count, the refused
 * keys and the denied requests of the tests above, and one record for each
 * single submission (their records are written by the admitter, a group's
 * in one write, not again when the request ends). */
static void audit_records(void **st) {
    (void)st;
    const char *batch = "{\"jobs\":[{\"kernel\":\"spin\"},{\"kernel\":\"spin\"}]}";
    it_resp r;
    int before = audit_count("job.submit", "status=202");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(it_req(&D, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", 17, NULL, &r), 0);
        assert_int_equal(r.status, 202);
        it_resp_free(&r);
    }
    assert_int_equal(it_req(&D, "POST", "/v1/jobs", "{\"kernel\":\"nope\"}", 17, NULL, &r), 0);
    assert_int_equal(r.status, 400);
    it_resp_free(&r);
    assert_int_equal(it_req(&D, "POST", "/v1/jobs:batch", batch, strlen(batch), NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    /* answered 202 means its record is written: exactly five more */
    assert_int_equal(audit_count("job.submit", "status=202"), before + 5);
    assert_true(audit_count("job.submit", "status=400") >= 1);
    /* the batch's record went out with its answer too; refused keys and
     * denied requests are written before theirs */
    /* a token that claims a real key's id (the admin's) with a made-up
     * secret is refused; the record names the claim in its detail, never
     * as its actor (it named the admin key as the one refused) */
    char forged[128], claim[64];
    snprintf(forged, sizeof forged, "%.19s_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", D.key);
    snprintf(claim, sizeof claim, "(claimed key %.16s)", D.key + 3);
    D.use_key = forged;
    assert_int_equal(it_req(&D, "GET", "/v1/jobs", NULL, 0, NULL, &r), 0);
    D.use_key = NULL;
    assert_int_equal(r.status, 401);
    it_resp_free(&r);
    assert_int_equal(audit_count("auth.refused", claim), 1);
    assert_int_equal(audit_count_actor("auth.refused", D.key + 3), 0);
    int batch_seen = audit_count("job.submit_batch", "jobs=2"), refused = audit_count("auth.refused", ""),
        denied = audit_count("request.denied", "");
    fprintf(stderr, "audit: batch %d, refused %d, denied %d\n", batch_seen, refused, denied);
    assert_true(batch_seen);
    assert_true(refused > 0);
    assert_true(denied > 0);
}

static int audit_count_by(const char *act_want, const char *det_want, const char *actor);

static int audit_count(const char *act_want, const char *det_want) { return audit_count_by(act_want, det_want, NULL); }

/* Records of action act_want whose actor key starts with the 16 characters
 * of actor. */
static int audit_count_actor(const char *act_want, const char *actor) { return audit_count_by(act_want, "", actor); }

static int audit_count_by(const char *act_want, const char *det_want, const char *actor) {
    int n = 0;
    long after = 0;
    for (;;) {
        char path[80];
        it_resp r;
        snprintf(path, sizeof path, "/v1/audit?after=%ld&limit=1000", after);
        assert_int_equal(it_req(&D, "GET", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *recs = json_object_get(r.json, "records"), *rec;
        size_t i;
        json_array_foreach(recs, i, rec) {
            const char *act = json_string_value(json_object_get(rec, "action"));
            const char *det = json_string_value(json_object_get(rec, "detail"));
            const char *key = json_string_value(json_object_get(json_object_get(rec, "actor"), "key"));
            n += act && det && !strcmp(act, act_want) && strstr(det, det_want) != NULL &&
                 (!actor || (key && !strncmp(key, actor, 16)));
        }
        long next = (long)json_integer_value(json_object_get(r.json, "next_after"));
        size_t k = json_array_size(recs);
        it_resp_free(&r);
        if (k < 1000 || next == after) break;
        after = next;
    }
    return n;
}

/* With a tiny auth.audit_max_bytes the log rotates many times while
 * requests come in; GET /v1/audit?after= pages through every record in
 * order, across the files (found by a search, not a scan from the start),
 * and the files verify as one chain. (The single file grew without
 * bound, and each page re-read it from the start.) */
static void audit_pages_across_rotation(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = "GEXEC_AUTH_AUDIT_MAX_BYTES=3000";
    d.extra_env[1] = "GEXEC_AUTH_AUDIT_KEEP=0";
    assert_int_equal(it_start(&d), 0);
    it_resp r;
    /* audited requests (submissions) interleaved with reads of the log */
    uint64_t want = 1;
    long after = 0;
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < 10; i++) {
            assert_int_equal(it_req(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", 17, NULL, &r), 0);
            assert_int_equal(r.status, 202);
            it_resp_free(&r);
        }
        for (;;) {
            char path[80];
            snprintf(path, sizeof path, "/v1/audit?after=%ld&limit=7", after);
            assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
            assert_int_equal(r.status, 200);
            json_t *recs = json_object_get(r.json, "records"), *rec;
            size_t i;
            json_array_foreach(recs, i, rec) assert_int_equal(json_integer_value(json_object_get(rec, "seq")), want++);
            long next = (long)json_integer_value(json_object_get(r.json, "next_after"));
            size_t k = json_array_size(recs);
            it_resp_free(&r);
            assert_int_equal(next, (long)want - 1);
            after = next;
            if (k < 7) break;
        }
    }
    assert_int_equal(it_stop(&d), 0);
    char log[400], name[440];
    snprintf(log, sizeof log, "%s/data/audit.log", d.dir);
    int files = 0;
    for (uint64_t s = 1; s < want; s++) {
        snprintf(name, sizeof name, "%s.%020llu", log, (unsigned long long)s);
        files += access(name, F_OK) == 0;
    }
    gx_audit_report rep;
    gx_error err;
    int rc = gx_audit_verify(log, &rep, &err);
    print_message("%llu records read in pages of 7 across %d rotated files; verify: %s\n",
                  (unsigned long long)want - 1, files, rep.message);
    assert_int_equal(rc, 0);
    assert_true(files >= 5);
    assert_int_equal(rep.files, (unsigned)files + 1);
    assert_true(rep.last_seq >= want - 1);
    it_cleanup(&d);
}

/* ---- GET /v1/keys in pages ---------------------------------------------------- */

#define KMAX 400

/* The keys of a daemon in the order they were made, as GET /v1/keys must
 * list them. */
typedef struct kmodel {
    it_daemon *d;
    char id[KMAX][17];
    char tenant[KMAX][8];
    int revoked[KMAX];
    int listed_live[KMAX]; /* revoked after this paging listed it */
    int n;
    int base; /* keys made before a paging began */
} kmodel;

static void kmake(kmodel *m, const char *tenant) {
    char body[96];
    snprintf(body, sizeof body, "{\"tenant\":\"%s\",\"role\":\"viewer\",\"label\":\"page\"}", tenant);
    it_resp r;
    assert_true(m->n < KMAX);
    assert_int_equal(it_req(m->d, "POST", "/v1/keys", body, strlen(body), NULL, &r), 0);
    assert_int_equal(r.status, 201);
    snprintf(m->id[m->n], sizeof m->id[0], "%s", it_str(&r, "id"));
    snprintf(m->tenant[m->n], sizeof m->tenant[0], "%s", tenant);
    m->revoked[m->n++] = 0;
    it_resp_free(&r);
}

static void krevoke(kmodel *m, int i) {
    char path[64];
    snprintf(path, sizeof path, "/v1/keys/%s", m->id[i]);
    it_resp r;
    assert_int_equal(it_req(m->d, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    m->revoked[i] = 1;
}

/* Page through GET /v1/keys?<filter>&limit=<limit> to the end: every page
 * full but the last, next_cursor null only on the last; between (when
 * given) runs after each page but the last. The keys listed, in order, are
 * checked against the model's keys that match tenant / revoked (-1 not
 * revoked, 1 revoked, 0 any): each once, in creation order, with its
 * revocation. Returns the number of pages. */
static int kpages(kmodel *m, const char *tenant, int revoked, int limit, void (*between)(kmodel *, int page)) {
    static char seen[KMAX][17];
    static int seen_revoked[KMAX];
    int got = 0, pages = 0;
    char cursor[32] = "";
    memset(m->listed_live, 0, sizeof m->listed_live);
    for (;;) {
        char path[200];
        snprintf(path, sizeof path, "/v1/keys?limit=%d%s%s%s%s%s", limit, tenant ? "&tenant=" : "", tenant ? tenant : "",
                 revoked ? (revoked > 0 ? "&revoked=true" : "&revoked=false") : "", cursor[0] ? "&cursor=" : "", cursor);
        it_resp r;
        assert_int_equal(it_req(m->d, "GET", path, NULL, 0, NULL, &r), 0);
        if (r.status != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
        json_t *keys = json_object_get(r.json, "keys"), *k, *next = json_object_get(r.json, "next_cursor");
        assert_true(json_is_array(keys));
        size_t i;
        json_array_foreach(keys, i, k) {
            assert_true(got < KMAX);
            snprintf(seen[got], sizeof seen[0], "%s", json_string_value(json_object_get(k, "id")));
            seen_revoked[got++] = json_is_true(json_object_get(k, "revoked"));
        }
        pages++;
        size_t n = json_array_size(keys);
        if (json_is_null(next)) {
            it_resp_free(&r);
            break;
        }
        if (!json_is_string(next)) fail_msg("GET %s: next_cursor is neither a string nor null: %s", path, r.body);
        if ((int)n != limit) fail_msg("GET %s: a page of %zu keys before the last", path, n);
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        it_resp_free(&r);
        if (between) between(m, pages - 1);
    }
    int j = 0;
    for (int i = 0; i < m->n; i++) {
        if ((tenant && strcmp(tenant, m->tenant[i])) || (revoked && (revoked > 0) != m->revoked[i])) continue;
        if (j >= got) fail_msg("key %d (%s) not listed (tenant %s revoked %d limit %d)", i, m->id[i], tenant, revoked, limit);
        if (strcmp(seen[j], m->id[i]))
            fail_msg("listed #%d is %s, want key %d (%s) (tenant %s revoked %d)", j, seen[j], i, m->id[i], tenant, revoked);
        if (seen_revoked[j] != (m->revoked[i] && !m->listed_live[i])) fail_msg("key %s listed revoked=%d, is %d", m->id[i], seen_revoked[j], m->revoked[i]);
        j++;
    }
    if (got != j) fail_msg("%d keys listed, %d expected (tenant %s revoked %d)", got, j, tenant, revoked);
    return pages;
}

/* Between two pages: keys made (they come on later pages) and revoked, one
 * already listed and one still to come (it comes revoked). */
static void kchurn(kmodel *m, int page) {
    if (page >= 12) return;
    kmake(m, page % 2 ? "pa" : "pb");
    kmake(m, "pa");
    int seen = 1 + page * 7; /* listed on this page */
    m->listed_live[seen] = !m->revoked[seen];
    krevoke(m, seen);
    krevoke(m, m->base - 1 - page * 3); /* not listed yet */
}

/* GET /v1/keys pages: 250 keys of two tenants (some revoked) and the
 * admin key, in pages of 7, each key once and in creation order, with
 * every filter (tenant, revoked, both), also while keys are made and
 * revoked between the pages; an exactly full last page has next_cursor
 * null; bad limit, cursor and revoked answer 400 naming the parameter.
 * (It answered every key in one page, whatever the query.) */
static void keys_paged(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    assert_int_equal(it_start(&d), 0);
    static kmodel m;
    memset(&m, 0, sizeof m);
    m.d = &d;
    snprintf(m.id[0], sizeof m.id[0], "%.16s", d.key + 3); /* the bootstrap admin key, first */
    snprintf(m.tenant[0], sizeof m.tenant[0], "default");
    m.n = 1;
    for (int i = 0; i < 250; i++) kmake(&m, i % 3 ? "pa" : "pb");
    for (int i = 4; i < m.n; i += 11) krevoke(&m, i);
    for (int i = 0; i < 7; i++) kmake(&m, "pc");
    const char *tenants[] = {NULL, "pa", "pb", "pc", "nobody"};
    for (size_t t = 0; t < sizeof tenants / sizeof tenants[0]; t++)
        for (int rv = -1; rv <= 1; rv++) kpages(&m, tenants[t], rv, 7, NULL);
    assert_int_equal(kpages(&m, "pc", 0, 7, NULL), 1); /* exactly full: the last page */
    assert_int_equal(kpages(&m, NULL, 0, 1000, NULL), 1);
    assert_int_equal(kpages(&m, NULL, 0, 100, NULL), 3); /* 258 keys */

    /* keys made and revoked between the pages */
    m.base = m.n;
    int pages = kpages(&m, NULL, 0, 7, kchurn);
    print_message("%d keys in %d pages of 7, 24 made and 24 revoked meanwhile\n", m.n, pages);
    assert_int_equal(m.n, m.base + 24);

    /* the default page is 100 keys; past the end is empty; empty values
     * are absent */
    const struct {
        const char *query;
        int status;
        const char *field;
        int keys;
    } cases[] = {
        {"", 200, NULL, 100},
        {"?limit=&cursor=&revoked=&tenant=", 200, NULL, 100},
        {"?cursor=0&limit=3", 200, NULL, 3},
        {"?cursor=999999", 200, NULL, 0},
        {"?limit=0", 400, "limit", 0},
        {"?limit=1001", 400, "limit", 0},
        {"?limit=x", 400, "limit", 0},
        {"?limit=-1", 400, "limit", 0},
        {"?limit=7x", 400, "limit", 0},
        {"?cursor=x", 400, "cursor", 0},
        {"?cursor=-1", 400, "cursor", 0},
        {"?cursor=1.5", 400, "cursor", 0},
        {"?cursor=+1", 400, "cursor", 0},
        {"?cursor=99999999999999999999", 400, "cursor", 0},
        {"?cursor=9223372036854775808", 400, "cursor", 0},
        {"?revoked=yes", 400, "revoked", 0},
        {"?revoked=1", 400, "revoked", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/keys%s", cases[i].query);
        it_resp r;
        assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
        if (r.status != cases[i].status) fail_msg("GET %s: %ld %s, want %d", path, r.status, r.body, cases[i].status);
        if (cases[i].field) {
            const char *f = it_str(&r, "error.field");
            if (!f || strcmp(f, cases[i].field)) fail_msg("GET %s: %s, want field %s", path, r.body, cases[i].field);
            assert_string_equal(it_str(&r, "error.code"), "GX_EINVAL");
        } else {
            assert_int_equal(json_array_size(json_object_get(r.json, "keys")), cases[i].keys);
            assert_true(json_is_string(json_object_get(r.json, "next_cursor")) == (cases[i].keys > 0));
        }
        it_resp_free(&r);
    }
    assert_int_equal(it_stop(&d), 0);
    it_cleanup(&d);
}

static int setup(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=2";
    D.extra_env[1] = "GEXEC_HTTP_STREAM_HEARTBEAT=1s"; /* idle streams wake each second */
    if (it_start(&D)) return -1;
    snprintf(KEY[GX_ROLE_ADMIN], sizeof KEY[0], "%s", D.key);
    for (int role = GX_ROLE_VIEWER; role < GX_ROLE_ADMIN; role++) {
        char body[128];
        snprintf(body, sizeof body, "{\"tenant\":\"default\",\"role\":\"%s\"}", gx_auth_role_name(role));
        it_resp r;
        if (it_req(&D, "POST", "/v1/keys", body, strlen(body), NULL, &r) || r.status != 201 || !it_str(&r, "key")) {
            it_resp_free(&r);
            return -1;
        }
        snprintf(KEY[role], sizeof KEY[0], "%s", it_str(&r, "key"));
        it_resp_free(&r);
    }
    return 0;
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
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_route_has_a_rule),
        cmocka_unit_test(route_x_role),
        cmocka_unit_test(unknown_paths),
        cmocka_unit_test(auth_off_every_route),
        cmocka_unit_test(admin_reads_every_blob),
        cmocka_unit_test(revoked_key_streams_end),
        cmocka_unit_test(expired_key_streams_end),
        cmocka_unit_test(expect_continue),
        cmocka_unit_test(head_on_a_stream_has_no_body),
        cmocka_unit_test(refused_requests_limited),
        cmocka_unit_test(audit_records),
        cmocka_unit_test(audit_pages_across_rotation),
        cmocka_unit_test(keys_paged),
    };
    return cmocka_run_group_tests_name("auth_routes", tests, setup, teardown);
}
