/*
 * test_events.c - GET /v1/events resumes: every event has an SSE id
 * <boot>-<seq>; a reconnect with Last-Event-ID (or after=) gets exactly the
 * events it missed, filtered and kept to its tenant, then the live ones;
 * an id that cannot be honoured (too old, another run, malformed, unknown)
 * gets a reset event; a malformed after= is a 400 naming the field; a slow
 * client catches up from the ring instead of losing events, and one that
 * falls behind the ring too gets a reset.
 *
 * The streams are read on raw HTTP/1.0 connections (no chunking), so the
 * test sees the exact SSE text and can stop reading to play a slow client.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

static it_daemon D; /* a small ring (1024 events) and client buffer (64 KiB) */
#define RING 1024

/* ---- reading a stream -------------------------------------------------------- */

typedef struct ev {
    char type[16];  /* "job", "reset", "" (a bare id line) */
    char id[64];
    uint64_t boot, seq;
    char data[512];
} ev;

typedef struct sse {
    int fd;
    long status;
    char *buf;      /* what came, headers included */
    size_t len, cap;
    size_t body;    /* where the body starts; 0: headers not yet seen */
    size_t parsed;  /* body bytes turned into evs */
    ev *evs;
    size_t n, ncap;
    int closed;
} sse;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int parse_id(const char *t, uint64_t *boot, uint64_t *seq) {
    char *e;
    if (strlen(t) < 18 || t[16] != '-') return -1;
    *boot = strtoull(t, &e, 16);
    if (e != t + 16) return -1;
    *seq = strtoull(t + 17, &e, 10);
    return *e ? -1 : 0;
}

/* Open GET path (key NULL: the admin's) on d with Last-Event-ID last (NULL:
 * none); rcvbuf > 0 shrinks the socket's receive buffer (a slow client). */
static sse *sse_open(it_daemon *d, const char *key, const char *path, const char *last, int rcvbuf) {
    sse *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    if (rcvbuf > 0) setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[16384];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n%s%s%s\r\n", path,
                     key ? key : d->key, last ? "Last-Event-ID: " : "", last ? last : "", last ? "\r\n" : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(send(s->fd, req, (size_t)n, 0), n);
    return s;
}

static void sse_close(sse *s) {
    if (!s) return;
    close(s->fd);
    free(s->buf);
    free(s->evs);
    free(s);
}

static void parse_block(sse *s, const char *p, size_t n) {
    ev e;
    memset(&e, 0, sizeof e);
    int any = 0;
    for (const char *l = p; l < p + n;) {
        const char *nl = memchr(l, '\n', (size_t)(p + n - l));
        size_t ll = nl ? (size_t)(nl - l) : (size_t)(p + n - l);
        char line[600];
        snprintf(line, sizeof line, "%.*s", (int)ll, l);
        if (!strncmp(line, "id: ", 4)) {
            snprintf(e.id, sizeof e.id, "%.63s", line + 4);
            if (parse_id(e.id, &e.boot, &e.seq)) fail_msg("event id '%s' is not <16 hex>-<seq>", e.id);
            any = 1;
        } else if (!strncmp(line, "event: ", 7)) {
            snprintf(e.type, sizeof e.type, "%.15s", line + 7);
            any = 1;
        } else if (!strncmp(line, "data: ", 6)) {
            snprintf(e.data, sizeof e.data, "%.511s", line + 6);
            any = 1;
        } else if (line[0] != ':') {
            fail_msg("unexpected SSE line '%s'", line);
        }
        l += ll + 1;
    }
    if (!any) return; /* a comment */
    if (s->n == s->ncap) {
        s->ncap = s->ncap ? s->ncap * 2 : 256;
        s->evs = realloc(s->evs, s->ncap * sizeof *s->evs);
        assert_non_null(s->evs);
    }
    s->evs[s->n++] = e;
}

/* Read what is there within timeout_ms; -1 when nothing came. */
static int sse_pump(sse *s, int timeout_ms) {
    if (s->closed) return -1;
    struct pollfd pf = {.fd = s->fd, .events = POLLIN};
    if (poll(&pf, 1, timeout_ms) <= 0) return -1;
    if (s->cap - s->len < 65537) {
        s->cap = s->cap ? s->cap * 2 : 1 << 20;
        s->buf = realloc(s->buf, s->cap);
        assert_non_null(s->buf);
    }
    ssize_t k = recv(s->fd, s->buf + s->len, s->cap - s->len - 1, 0);
    if (k <= 0) {
        s->closed = 1;
        return -1;
    }
    s->len += (size_t)k;
    s->buf[s->len] = '\0';
    if (!s->body) {
        char *h = strstr(s->buf, "\r\n\r\n");
        if (!h) return 0;
        s->status = strtol(s->buf + 9, NULL, 10);
        s->body = (size_t)(h + 4 - s->buf);
        s->parsed = s->body;
    }
    for (;;) {
        char *end = strstr(s->buf + s->parsed, "\n\n");
        if (!end) break;
        parse_block(s, s->buf + s->parsed, (size_t)(end - (s->buf + s->parsed)) + 1);
        s->parsed = (size_t)(end + 2 - s->buf);
    }
    return 0;
}

/* Events of type (NULL: any) whose data holds needle (NULL: any). */
static size_t count(const sse *s, const char *type, const char *needle) {
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++)
        if ((!type || !strcmp(s->evs[i].type, type)) && (!needle || strstr(s->evs[i].data, needle))) k++;
    return k;
}

/* Pump until count(type, needle) >= want or timeout_ms; the count. */
static size_t sse_wait(sse *s, const char *type, const char *needle, size_t want, int timeout_ms) {
    double until = now_s() + timeout_ms / 1000.0;
    while (count(s, type, needle) < want && now_s() < until && !s->closed) sse_pump(s, 100);
    return count(s, type, needle);
}

/* The stream's first block after its comment (its bare id line or its
 * reset), waiting up to 5 s. */
static const ev *sse_first(sse *s) {
    sse_wait(s, NULL, NULL, 1, 5000);
    if (!s->n) fail_msg("stream sent nothing (status %ld): %s", s->status, s->buf ? s->buf : "");
    assert_int_equal(s->status, 200);
    return &s->evs[0];
}

/* The seq of the last change published (a fresh stream's bare id line). */
static uint64_t head_seq(it_daemon *d) {
    sse *s = sse_open(d, NULL, "/v1/events", NULL, 0);
    uint64_t seq = sse_first(s)->seq;
    sse_close(s);
    return seq;
}

static const ev *last_with_id(const sse *s) {
    for (size_t i = s->n; i-- > 0;)
        if (s->evs[i].id[0]) return &s->evs[i];
    return NULL;
}

/* ---- the daemon ------------------------------------------------------------------ */

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

/* POST path body with key (NULL: admin); the response, status checked. */
static void post_as(const char *key, const char *path, const char *body, long want, it_resp *r) {
    D.use_key = key;
    assert_int_equal(it_req(&D, "POST", path, body, slen(body), NULL, r), 0);
    D.use_key = NULL;
    if (r->status != want) fail_msg("POST %s: %ld %s", path, r->status, r->body ? r->body : "");
}

/* Submit n jobs of kernel ("spin" or "reduce_sum") in batches as key; ids
 * (optional) get their ids as "\"id\":\"N\"" needles. */
static void submit_n(it_daemon *d, const char *key, const char *kernel, int n, char (*ids)[40]) {
    const char *one = !strcmp(kernel, "spin") ? "{\"kernel\":\"spin\"}"
                                              : "{\"kernel\":\"reduce_sum\",\"inputs\":{\"x\":{\"dtype\":\"f32\",\"data\":[1,2]}}}";
    for (int done = 0; done < n;) {
        int k = n - done > 4000 ? 4000 : n - done;
        size_t cap = (size_t)k * (strlen(one) + 1) + 32, len = 0;
        char *body = malloc(cap);
        assert_non_null(body);
        len += (size_t)snprintf(body, cap, "{\"jobs\":[");
        for (int i = 0; i < k; i++) len += (size_t)snprintf(body + len, cap - len, "%s%s", i ? "," : "", one);
        snprintf(body + len, cap - len, "]}");
        it_resp r;
        d->use_key = key;
        assert_int_equal(it_req(d, "POST", "/v1/jobs:batch", body, strlen(body), NULL, &r), 0);
        d->use_key = NULL;
        free(body);
        if (r.status != 200 || json_integer_value(json_object_get(r.json, "accepted")) != k)
            fail_msg("batch of %d: %ld %.300s", k, r.status, r.body ? r.body : "");
        json_t *res = json_object_get(r.json, "results");
        for (int i = 0; ids && i < k; i++)
            snprintf(ids[done + i], 40, "\"id\":\"%s\"", json_string_value(json_object_get(json_array_get(res, (size_t)i), "id")));
        it_resp_free(&r);
        done += k;
    }
}

static void tenant_key(const char *tenant, char *key, size_t cap) {
    char body[128];
    snprintf(body, sizeof body, "{\"tenant\":\"%s\",\"role\":\"submitter\"}", tenant);
    it_resp r;
    post_as(NULL, "/v1/keys", body, 201, &r);
    snprintf(key, cap, "%s", it_str(&r, "key"));
    it_resp_free(&r);
}

static double metric(it_daemon *d, const char *name) {
    it_resp r;
    assert_int_equal(it_req(d, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    double v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p && (p = strstr(p, name)); p += n)
        if ((p == r.body || p[-1] == '\n') && p[n] == ' ') v = atof(p + n + 1);
    it_resp_free(&r);
    return v;
}

/* Wait (up to 60 s) until the daemon finished want jobs since start. */
static void wait_finished(it_daemon *d, double want) {
    double until = now_s() + 60, got = 0;
    while (now_s() < until) {
        it_resp r;
        assert_int_equal(it_req(d, "GET", "/metrics", NULL, 0, NULL, &r), 0);
        got = 0;
        for (const char *p = r.body; (p = strstr(p, "\ngexec_jobs_finished_total{")); p++)
            got += atof(strchr(p, '}') + 1);
        it_resp_free(&r);
        if (got >= want) return;
        usleep(50000);
    }
    fail_msg("%g jobs finished, want %g", got, want);
}

/* Job events of s (seq strictly increasing; gapless when contiguous). */
static void check_ids(const sse *s, uint64_t boot, int contiguous) {
    uint64_t prev = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ev *e = &s->evs[i];
        if (!e->id[0]) fail_msg("event %zu (%s) has no id: %s", i, e->type, e->data);
        if (e->boot != boot) fail_msg("event %zu: boot %016llx, the stream's %016llx", i, (unsigned long long)e->boot,
                                      (unsigned long long)boot);
        if (i && e->seq <= prev) fail_msg("event %zu: id %s after seq %llu", i, e->id, (unsigned long long)prev);
        if (i && contiguous && !strcmp(e->type, "job") && e->seq != prev + 1)
            fail_msg("event %zu: id %s after seq %llu: a gap", i, e->id, (unsigned long long)prev);
        prev = e->seq;
    }
}

static int setup(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_HTTP_STREAM_REPLAY_EVENTS=1024";
    D.extra_env[1] = "GEXEC_HTTP_STREAM_CLIENT_BUFFER=64KiB";
    D.extra_env[2] = "GEXEC_ENGINE_CPU_WORKERS=2";
    D.extra_env[3] = "GEXEC_HTTP_MAX_BATCH_JOBS=10000";
    return it_start(&D);
}

static int teardown(void **st) {
    (void)st;
    return it_finish(&D);
}

/* ---- the tests ------------------------------------------------------------------ */

/* A fresh daemon has published nothing: the start-up self-test (a
 * reduce_sum under the id the first real job then gets) was published, so
 * a replay of job 1 mixed the two. Runs first, on the fresh daemon. */
static void selftest_not_published(void **st) {
    (void)st;
    sse *s = sse_open(&D, NULL, "/v1/events", NULL, 0);
    const ev *first = sse_first(s);
    uint64_t head = first->seq;
    char after[80];
    snprintf(after, sizeof after, "/v1/events?after=%016llx-0", (unsigned long long)first->boot);
    sse_close(s);
    print_message("events published before the first job: %llu\n", (unsigned long long)head);
    assert_int_equal(head, 0);
    s = sse_open(&D, NULL, after, NULL, 0);
    sse_pump(s, 300);
    assert_int_equal(count(s, "job", NULL), 0);
    sse_close(s);
}

/* Every event has an id <boot>-<seq>; an unfiltered stream's job events
 * follow each other by one; a fresh stream first gets a bare id line (the
 * point it started from). */
static void ids_present_and_increasing(void **st) {
    (void)st;
    sse *s = sse_open(&D, NULL, "/v1/events", NULL, 0);
    const ev *first = sse_first(s);
    assert_string_equal(first->type, "");
    assert_string_equal(first->data, "");
    uint64_t boot = first->boot, start = first->seq;
    submit_n(&D, NULL, "spin", 10, NULL);
    assert_int_equal(sse_wait(s, "job", "\"succeeded\"", 10, 10000), 10);
    check_ids(s, boot, 1);
    assert_int_equal(s->evs[1].seq, start + 1);
    assert_int_equal(count(s, "reset", NULL), 0);
    sse_close(s);
}

/* A submission's queued event has the job's submit time, as its stored
 * event and submitted_at have (the stream had the engine's insert time,
 * a few ms later). */
static void queued_event_has_submit_time(void **st) {
    (void)st;
    sse *s = sse_open(&D, NULL, "/v1/events?state=queued", NULL, 0);
    sse_first(s);
    char ids[3][40];
    submit_n(&D, NULL, "spin", 3, ids);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sse_wait(s, "job", ids[i], 1, 10000), 1);
        json_t *d = NULL; /* the event whose id is this job's (a needle may match inside a time) */
        for (size_t k = 0; k < s->n && !d; k++) {
            json_t *x = json_loads(s->evs[k].data, 0, NULL);
            const char *xid = json_string_value(json_object_get(x, "id"));
            char want[48];
            snprintf(want, sizeof want, "\"id\":\"%s\"", xid ? xid : "");
            if (xid && !strcmp(want, ids[i])) d = x;
            else json_decref(x);
        }
        assert_non_null(d);
        char path[96];
        snprintf(path, sizeof path, "/v1/jobs/%s", json_string_value(json_object_get(d, "id")));
        it_resp r;
        assert_int_equal(it_req(&D, "GET", path, NULL, 0, NULL, &r), 0);
        const char *stream_t = json_string_value(json_object_get(d, "time"));
        if (!stream_t || strcmp(stream_t, it_str(&r, "submitted_at")))
            fail_msg("job %s: queued at %s in the stream, submitted_at %s", path, stream_t ? stream_t : "(none)",
                     it_str(&r, "submitted_at"));
        it_resp_free(&r);
        json_decref(d);
    }
    sse_close(s);
}

/* The job events of ref after seq whose data hold needle, in order, must
 * be exactly got's job events. */
static void same_events(const sse *ref, uint64_t after, const char *needle, const sse *got, const char *what) {
    size_t j = 0;
    for (size_t i = 0; i < ref->n; i++) {
        const ev *e = &ref->evs[i];
        if (strcmp(e->type, "job") || e->seq <= after || (needle && !strstr(e->data, needle))) continue;
        while (j < got->n && strcmp(got->evs[j].type, "job")) j++;
        if (j == got->n) fail_msg("%s: lacks %s %s", what, e->id, e->data);
        if (strcmp(got->evs[j].id, e->id) || strcmp(got->evs[j].data, e->data))
            fail_msg("%s: got %s %s where the full stream has %s %s", what, got->evs[j].id, got->evs[j].data, e->id,
                     e->data);
        j++;
    }
    while (j < got->n && strcmp(got->evs[j].type, "job")) j++;
    if (j < got->n) fail_msg("%s: an extra event %s %s", what, got->evs[j].id, got->evs[j].data);
}

/* A reconnect with Last-Event-ID gets exactly the events it missed that
 * pass its filter (none lost, none twice, none of another kernel), then
 * the live ones; after= does the same, and the header wins over it. */
static void resume_replays_missed(void **st) {
    (void)st;
    sse *ref = sse_open(&D, NULL, "/v1/events", NULL, 0);
    sse_first(ref);
    sse *a = sse_open(&D, NULL, "/v1/events?kernel=spin", NULL, 0);
    sse_first(a);
    submit_n(&D, NULL, "spin", 3, NULL);
    assert_int_equal(sse_wait(a, "job", "\"succeeded\"", 3, 10000), 3);
    char last[64];
    snprintf(last, sizeof last, "%s", last_with_id(a)->id);
    uint64_t lboot = 0, lseq = 0;
    assert_int_equal(parse_id(last, &lboot, &lseq), 0);
    sse_close(a);
    /* missed while disconnected: 4 spin, 2 reduce_sum (filtered out) */
    char spins[5][40];
    submit_n(&D, NULL, "spin", 2, spins);
    submit_n(&D, NULL, "reduce_sum", 2, NULL);
    submit_n(&D, NULL, "spin", 2, spins + 2);
    assert_int_equal(sse_wait(ref, "job", "\"succeeded\"", 9, 10000), 9); /* 3 before, 6 missed */
    char path[200], first_id[64];
    snprintf(first_id, sizeof first_id, "%016llx-1", (unsigned long long)lboot);
    sse *b = sse_open(&D, NULL, "/v1/events?kernel=spin", last, 0);
    snprintf(path, sizeof path, "/v1/events?kernel=spin&after=%s", last);
    sse *c = sse_open(&D, NULL, path, NULL, 0);
    snprintf(path, sizeof path, "/v1/events?kernel=spin&after=%s", first_id);
    sse *h = sse_open(&D, NULL, path, last, 0); /* the header wins */
    sse *all[3] = {b, c, h};
    for (int i = 0; i < 3; i++) assert_int_equal(sse_wait(all[i], "job", "\"succeeded\"", 4, 10000), 4);
    /* then live, with no gap */
    submit_n(&D, NULL, "spin", 1, spins + 4);
    assert_int_equal(sse_wait(ref, "job", spins[4], 3, 10000), 3);
    const char *names[3] = {"Last-Event-ID", "after=", "Last-Event-ID over after="};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sse_wait(all[i], "job", spins[4], 3, 10000), 3);
        usleep(100000);
        sse_pump(all[i], 0);
        assert_int_equal(count(all[i], "reset", NULL), 0);
        assert_int_equal(count(all[i], "job", "reduce_sum"), 0);
        check_ids(all[i], lboot, 0);
        same_events(ref, lseq, "\"kernel\":\"spin\"", all[i], names[i]);
        assert_int_equal(count(all[i], "job", NULL), 15); /* 5 jobs: queued, running, succeeded */
    }
    for (int i = 0; i < 3; i++) sse_close(all[i]);
    sse_close(ref);
    double replayed = metric(&D, "gexec_event_stream_replayed_total");
    if (replayed < 36) fail_msg("gexec_event_stream_replayed_total %g, want 36 or more", replayed);
}

/* A tenant's reconnect replays its own events only, as its live stream
 * shows them; an admin's shows both tenants'. */
static void replay_keeps_tenants_apart(void **st) {
    (void)st;
    char ka[80], kb[80];
    tenant_key("ra", ka, sizeof ka);
    tenant_key("rb", kb, sizeof kb);
    sse *s = sse_open(&D, ka, "/v1/events", NULL, 0);
    char from[64];
    snprintf(from, sizeof from, "%s", sse_first(s)->id);
    sse_close(s);
    sse *ref = sse_open(&D, NULL, "/v1/events", NULL, 0);
    sse_first(ref);
    char ia[3][40], ib[3][40];
    submit_n(&D, kb, "spin", 3, ib);
    submit_n(&D, ka, "spin", 3, ia);
    /* all published before the reconnects: they come from the ring */
    assert_int_equal(sse_wait(ref, "job", "\"succeeded\"", 6, 10000), 6);
    sse_close(ref);
    sse *ra = sse_open(&D, ka, "/v1/events", from, 0);
    char path[128];
    snprintf(path, sizeof path, "/v1/events?after=%s", from);
    sse *rq = sse_open(&D, ka, path, NULL, 0);
    sse *rb = sse_open(&D, kb, "/v1/events", from, 0);
    sse *adm = sse_open(&D, NULL, "/v1/events", from, 0);
    assert_int_equal(sse_wait(adm, "job", "\"succeeded\"", 6, 10000), 6);
    sse *mine[3] = {ra, rq, rb};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(sse_wait(mine[k], "job", "\"succeeded\"", 3, 10000), 3);
        usleep(200000);
        sse_pump(mine[k], 0);
        char (*own)[40] = k < 2 ? ia : ib, (*other)[40] = k < 2 ? ib : ia;
        for (int i = 0; i < 3; i++) {
            if (count(mine[k], "job", other[i])) fail_msg("stream %d shows another tenant's job %s", k, other[i]);
            assert_int_equal(count(mine[k], "job", own[i]), count(adm, "job", own[i]));
        }
        assert_int_equal(count(mine[k], "job", NULL), 9);
        assert_int_equal(count(mine[k], "reset", NULL), 0);
    }
    for (int i = 0; i < 3; i++) assert_true(count(adm, "job", ia[i]) >= 3 && count(adm, "job", ib[i]) >= 3);
    /* tenant=: the admin's stream of one tenant has that tenant's jobs
     * only; a tenant's key naming another gets 404 (it was ignored: its
     * own events came) */
    snprintf(path, sizeof path, "/v1/events?tenant=rb&after=%s", from);
    sse *only_b = sse_open(&D, NULL, path, NULL, 0);
    assert_int_equal(sse_wait(only_b, "job", "\"succeeded\"", 3, 10000), 3);
    usleep(200000);
    sse_pump(only_b, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(count(only_b, "job", ia[i]), 0);
        assert_true(count(only_b, "job", ib[i]) >= 3);
    }
    sse_close(only_b);
    it_resp r;
    D.use_key = ka;
    assert_int_equal(it_req(&D, "GET", "/v1/events?tenant=rb", NULL, 0, NULL, &r), 0);
    D.use_key = NULL;
    assert_int_equal(r.status, 404);
    assert_string_equal(it_str(&r, "error.field"), "tenant");
    it_resp_free(&r);
    assert_int_equal(it_req(&D, "GET", "/v1/events?tenant=nosuch", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    it_resp_free(&r);
    sse_close(ra);
    sse_close(rq);
    sse_close(rb);
    sse_close(adm);
}

/* The reset a stream opened with last gets (waiting up to 5 s); its
 * reason is checked, and that the stream goes on live. */
static void expect_reset(const char *last, const char *reason) {
    sse *s = sse_open(&D, NULL, "/v1/events?kernel=spin", last, 0);
    const ev *e = sse_first(s);
    char want[64];
    snprintf(want, sizeof want, "\"reason\":\"%s\"", reason);
    if (strcmp(e->type, "reset") || !strstr(e->data, want) || !strstr(e->data, "GET /v1/jobs"))
        fail_msg("Last-Event-ID '%.60s': want a reset (%s), got '%s' %s", last, reason, e->type, e->data);
    json_t *j = json_loads(e->data, 0, NULL);
    assert_non_null(json_object_get(j, "message"));
    json_decref(j);
    char id[40];
    submit_n(&D, NULL, "spin", 1, &id);
    assert_int_equal(sse_wait(s, "job", id, 3, 10000), 3); /* live after it */
    check_ids(s, e->boot, 0);
    sse_close(s);
}

/* Ids that cannot be honoured get a reset event, never a silent start
 * from now: malformed (and huge), from another run (and a real restart),
 * past this run's last, and older than the ring. The reset's own id
 * resumes without another. */
static void unusable_ids_reset(void **st) {
    (void)st;
    sse *s = sse_open(&D, NULL, "/v1/events", NULL, 0);
    char now[64];
    snprintf(now, sizeof now, "%s", sse_first(s)->id);
    uint64_t boot = 0, seq = 0;
    assert_int_equal(parse_id(now, &boot, &seq), 0);
    sse_close(s);
    expect_reset("garbage", "malformed");
    expect_reset("0123456789ABCDEF-1", "malformed"); /* ids are lowercase */
    char *huge = malloc(12001);
    assert_non_null(huge);
    memset(huge, '7', 12000);
    huge[12000] = '\0';
    expect_reset(huge, "malformed");
    free(huge);
    char id[64];
    snprintf(id, sizeof id, "%016llx-%llu", (unsigned long long)(boot ^ 1), (unsigned long long)seq);
    expect_reset(id, "other_run");
    snprintf(id, sizeof id, "%016llx-%llu", (unsigned long long)boot, (unsigned long long)seq + 100000);
    expect_reset(id, "unknown");
    snprintf(id, sizeof id, "%016llx-18446744073709551615", (unsigned long long)boot);
    expect_reset(id, "unknown");
    /* more than the ring after it */
    submit_n(&D, NULL, "spin", RING / 2, NULL);
    for (double until = now_s() + 30; head_seq(&D) <= seq + RING + 1;) {
        if (now_s() > until) fail_msg("the ring never moved past %llu", (unsigned long long)seq);
        usleep(50000);
    }
    sse *old = sse_open(&D, NULL, "/v1/events", now, 0);
    const ev *e = sse_first(old);
    if (strcmp(e->type, "reset") || !strstr(e->data, "\"too_old\"")) fail_msg("an id before the ring: %s %s", e->type, e->data);
    char reset_id[64];
    snprintf(reset_id, sizeof reset_id, "%s", e->id);
    sse_close(old);
    sse *again = sse_open(&D, NULL, "/v1/events", reset_id, 0); /* the reset's id resumes */
    char one[40];
    submit_n(&D, NULL, "spin", 1, &one);
    assert_int_equal(sse_wait(again, "job", one, 3, 10000), 3);
    assert_int_equal(count(again, "reset", NULL), 0);
    sse_close(again);
    /* whitespace around the header's value is not part of it */
    char spaced[80];
    snprintf(spaced, sizeof spaced, "%.60s \t", reset_id);
    sse *ws = sse_open(&D, NULL, "/v1/events", spaced, 0);
    submit_n(&D, NULL, "spin", 1, &one);
    assert_int_equal(sse_wait(ws, "job", one, 3, 10000), 3);
    assert_int_equal(count(ws, "reset", NULL), 0);
    sse_close(ws);
    assert_true(metric(&D, "gexec_event_stream_resets_total{reason=\"too_old\"}") >= 1);
    assert_true(metric(&D, "gexec_event_stream_resets_total{reason=\"malformed\"}") >= 3);
    /* a restart: the ids of the run before are another run's */
    s = sse_open(&D, NULL, "/v1/events", NULL, 0);
    snprintf(now, sizeof now, "%s", sse_first(s)->id);
    sse_close(s);
    assert_int_equal(it_stop(&D), 0);
    assert_int_equal(it_start(&D), 0);
    expect_reset(now, "other_run");
}

/* A malformed after= is a 400 naming the field; an empty one is absent. */
static void after_malformed_is_400(void **st) {
    (void)st;
    static const char *const bad[] = {
        "zz", "0123456789abcdef", "0123456789abcdef-", "0123456789ABCDEF-1", "0123456789abcdef-01",
        "0123456789abcdef-1x", "0123456789abcdef-99999999999999999999", "0123456789abcde-1", "-1",
        "0123456789abcdef--1", "0123456789abcdef-%2B1", "0123456789abcdef-1%00",
    };
    char path[5100];
    for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
        if (i < sizeof bad / sizeof bad[0]) {
            snprintf(path, sizeof path, "/v1/events?after=%s", bad[i]);
        } else { /* a huge one */
            memset(path, '9', sizeof path - 1);
            memcpy(path, "/v1/events?after=", 17);
            path[sizeof path - 1] = '\0';
        }
        /* on a raw connection: a stream (after= ignored) would not end */
        sse *s = sse_open(&D, NULL, path, NULL, 0);
        for (double until = now_s() + 3; !s->closed && now_s() < until;) sse_pump(s, 100);
        json_t *j = s->body ? json_loads(s->buf + s->body, 0, NULL) : NULL;
        json_t *e = json_object_get(j, "error");
        const char *field = json_string_value(json_object_get(e, "field"));
        const char *code = json_string_value(json_object_get(e, "code"));
        if (s->status != 400 || !field || strcmp(field, "after") || !code || strcmp(code, "GX_EINVAL"))
            fail_msg("after=%.40s: %ld %.300s", path + 17, s->status, s->buf ? s->buf : "");
        json_decref(j);
        sse_close(s);
    }
    sse *s = sse_open(&D, NULL, "/v1/events?after=", NULL, 0);
    assert_string_equal(sse_first(s)->type, ""); /* from now, no reset */
    sse_close(s);
    /* empty filters are absent, as in the listing (job= was a 400) */
    s = sse_open(&D, NULL, "/v1/events?job=&state=&kernel=", NULL, 0);
    assert_string_equal(sse_first(s)->type, "");
    assert_int_equal(s->status, 200);
    sse_close(s);
}

/* A client that stops reading while tens of thousands of changes happen
 * (far more than its 64 KiB buffer and its sockets hold, fewer than the
 * ring) gets every one of them, in order, once it reads again: its stream
 * went on from the ring. (It used to lose them silently.) */
static void slow_client_catches_up(void **st) {
    (void)st;
    it_daemon d2;
    memset(&d2, 0, sizeof d2);
    d2.extra_env[0] = "GEXEC_HTTP_STREAM_CLIENT_BUFFER=64KiB";
    d2.extra_env[1] = "GEXEC_ENGINE_CPU_WORKERS=2";
    assert_int_equal(it_start(&d2), 0);
    sse *s = sse_open(&d2, NULL, "/v1/events", NULL, 4096);
    uint64_t boot = sse_first(s)->boot;
    enum { N = 6000 };
    submit_n(&d2, NULL, "spin", N, NULL);
    wait_finished(&d2, N);
    assert_int_equal(sse_wait(s, "job", "\"succeeded\"", N, 60000), N);
    check_ids(s, boot, 1);
    assert_int_equal(count(s, "reset", NULL), 0);
    double replayed = metric(&d2, "gexec_event_stream_replayed_total");
    print_message("slow client: %zu events, %g of them from the ring\n", s->n, replayed);
    if (replayed <= 0) fail_msg("the client never fell behind its buffer: the test proves nothing");
    sse_close(s);
    assert_int_equal(it_finish(&d2), 0);
}

/* A client that falls further behind than the ring holds gets a reset
 * (reason lagged) where its events were lost, then live events: the loss
 * is visible, its memory bounded. */
static void lagging_client_gets_reset(void **st) {
    (void)st;
    sse *s = sse_open(&D, NULL, "/v1/events", NULL, 4096);
    uint64_t boot = sse_first(s)->boot;
    double before = metric(&D, "gexec_event_stream_resets_total{reason=\"lagged\"}");
    enum { N = 6000 };
    submit_n(&D, NULL, "spin", N, NULL);
    usleep(500000);
    /* read on: the reset comes once the buffered part is drained */
    assert_true(sse_wait(s, "reset", NULL, 1, 60000) >= 1);
    char id[40];
    submit_n(&D, NULL, "spin", 1, &id);
    assert_int_equal(sse_wait(s, "job", id, 3, 30000), 3);
    check_ids(s, boot, 0);
    size_t r0 = 0;
    while (strcmp(s->evs[r0].type, "reset")) r0++;
    /* gapless but where a reset says so (more than one if it lagged again) */
    for (size_t i = 1; i < s->n; i++) {
        if (!strcmp(s->evs[i].type, "reset")) {
            if (!strstr(s->evs[i].data, "\"lagged\"")) fail_msg("reset: %s", s->evs[i].data);
        } else if (s->evs[i].seq != s->evs[i - 1].seq + 1) {
            fail_msg("a gap with no reset: %s after %s", s->evs[i].id, s->evs[i - 1].id);
        }
    }
    print_message("lagging client: %zu events, reset at %s (%zu before it)\n", s->n, s->evs[r0].id, r0);
    assert_true(s->evs[r0].seq - s->evs[r0 - 1].seq > RING); /* it skipped, and said so */
    assert_true(metric(&D, "gexec_event_stream_resets_total{reason=\"lagged\"}") >= before + 1);
    sse_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(selftest_not_published), cmocka_unit_test(ids_present_and_increasing),
        cmocka_unit_test(resume_replays_missed),
        cmocka_unit_test(queued_event_has_submit_time),
        cmocka_unit_test(replay_keeps_tenants_apart),
        cmocka_unit_test(after_malformed_is_400),
        cmocka_unit_test(lagging_client_gets_reset),
        cmocka_unit_test(unusable_ids_reset),
        cmocka_unit_test(slow_client_catches_up),
    };
    return cmocka_run_group_tests_name("events", tests, setup, teardown);
}
