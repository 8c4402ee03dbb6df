/*
 * stream.c - following GET /v1/events (server-sent events).
 *
 * The body is parsed as it arrives: lines end in LF, CRLF or CR; "event:"
 * names the type, "data:" lines accumulate, a blank line dispatches, lines
 * starting with ':' are comments (the server's keepalives). libcurl's
 * progress callback, which runs at least once a second even on a quiet
 * connection, enforces the deadline and drives the idle callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"

typedef struct sse {
    gx_client *c;
    const gx_client_stream_opts *o;
    gx__buf line;     /* current line, without its end */
    gx__buf data;     /* data lines of the current event, joined by '\n' */
    char type[32];    /* event type of the current event */
    int last_cr;      /* the previous byte was CR (a following LF belongs to it) */
    int status;       /* HTTP status, once known */
    gx__buf errbody;  /* body of a non-2xx answer */
    int stopped;      /* a callback asked to stop */
    int timed_out;
    int oom;
    double t0, last_idle;
    gx_error *err;
} sse;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dispatch(sse *s) {
    if (s->data.len && (!s->type[0] || !strcmp(s->type, "job"))) {
        json_t *o = json_loadb(s->data.p, s->data.len, 0, NULL);
        if (json_is_object(o)) {
            gx_client_event ev;
            gx__event_from_json(o, &ev);
            if (s->o->on_event && s->o->on_event(s->o->ctx, &ev, s->data.p)) s->stopped = 1;
        }
        json_decref(o);
    }
    s->data.len = 0;
    if (s->data.p) s->data.p[0] = '\0';
    s->type[0] = '\0';
}

static void on_line(sse *s) {
    const char *l = s->line.p ? s->line.p : "";
    size_t n = s->line.len;
    if (n == 0) {
        dispatch(s);
        return;
    }
    if (l[0] == ':') { /* comment: keepalive */
        if (s->o->on_idle && s->o->on_idle(s->o->ctx, now_s() - s->t0)) s->stopped = 1;
        s->last_idle = now_s();
        return;
    }
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    if (*v == ' ') v++;
    size_t vl = (size_t)(l + n - v);
    if (fl == 4 && !memcmp(l, "data", 4)) {
        if ((s->data.len && gx__buf_add(&s->data, "\n", 1)) || gx__buf_add(&s->data, v, vl))
            s->oom = 1;
    } else if (fl == 5 && !memcmp(l, "event", 5)) {
        snprintf(s->type, sizeof s->type, "%.*s", (int)vl, v);
    } /* id:, retry: and unknown fields are ignored */
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    sse *s = ud;
    size_t n = size * nmemb;
    if (!s->status) {
        long st = 0;
        curl_easy_getinfo(s->c->curl, CURLINFO_RESPONSE_CODE, &st);
        s->status = (int)st;
    }
    if (s->status < 200 || s->status >= 300) return gx__buf_add(&s->errbody, p, n) ? 0 : n;
    for (size_t i = 0; i < n && !s->stopped && !s->oom; i++) {
        char ch = p[i];
        if (ch == '\n' && s->last_cr) {
            s->last_cr = 0;
            continue;
        }
        s->last_cr = ch == '\r';
        if (ch == '\n' || ch == '\r') {
            on_line(s);
            s->line.len = 0;
            if (s->line.p) s->line.p[0] = '\0';
        } else if (gx__buf_add(&s->line, &ch, 1)) {
            s->oom = 1;
        }
    }
    return s->stopped || s->oom ? 0 : n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    sse *s = ud;
    double t = now_s();
    if (s->o->timeout_ms >= 0 && (t - s->t0) * 1000.0 >= (double)s->o->timeout_ms) {
        s->timed_out = 1;
        return 1;
    }
    if (s->o->on_idle && t - s->last_idle >= 1.0) {
        s->last_idle = t;
        if (s->o->on_idle(s->o->ctx, t - s->t0)) {
            s->stopped = 1;
            return 1;
        }
    }
    return 0;
}

static int add_param(gx__buf *q, const char *key, const char *v) {
    if (!v || !*v) return 0;
    char *e = gx__escape(v);
    if (!e) return GX_ENOMEM;
    int rc = gx__buf_add(q, strchr(q->p, '?') ? "&" : "?", 1);
    if (!rc) rc = gx__buf_add(q, key, strlen(key));
    if (!rc) rc = gx__buf_add(q, "=", 1);
    if (!rc) rc = gx__buf_add(q, e, strlen(e));
    free(e);
    return rc;
}

int gx_client_events_follow(gx_client *c, const gx_client_stream_opts *o, gx_error *err) {
    if (!o || !o->on_event)
        return gx_error_set(err, GX_EINVAL, "on_event", "an event callback is required");
    gx__buf q = {0};
    int rc = gx__buf_add(&q, "/v1/events", 10);
    if (!rc) rc = add_param(&q, "job", o->job);
    if (!rc) rc = add_param(&q, "state", o->state);
    if (!rc) rc = add_param(&q, "kernel", o->kernel);
    if (rc) {
        gx__buf_free(&q);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    struct curl_slist *hl = NULL, *t;
    rc = gx__setup(c, q.p, &hl, err);
    gx__buf_free(&q);
    if (rc) return rc;
    if (!(t = curl_slist_append(hl, "Accept: text/event-stream"))) {
        curl_slist_free_all(hl);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    hl = t;
    sse s = {.c = c, .o = o, .err = err};
    s.t0 = s.last_idle = now_s();
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &s);
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hl);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    c->last_status = (int)st;
    if (s.oom)
        rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading the event stream");
    else if (s.timed_out)
        rc = gx_error_set(err, GX_ETIMEDOUT, NULL, "event stream ended after %.1f s",
                          (double)o->timeout_ms / 1000.0);
    else if (s.stopped)
        rc = 0;
    else if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR)
        rc = gx__curl_error(c, cc, err);
    else if (st < 200 || st >= 300)
        rc = gx__http_error(c, (int)st, s.errbody.p, s.errbody.len, err);
    else if (cc == CURLE_WRITE_ERROR)
        rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading the event stream");
    else {
        if (s.line.len) on_line(&s); /* an unterminated last line */
        if (s.data.len && !s.stopped) dispatch(&s);
        rc = 0;
    }
    if (rc == 0) gx_error_clear(err);
    gx__buf_free(&s.line);
    gx__buf_free(&s.data);
    gx__buf_free(&s.errbody);
    return rc;
}
