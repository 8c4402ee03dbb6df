/*
 * stream.c - following GET /v1/events (server-sent events).
 *
 * The body is parsed as it arrives: lines end in LF, CRLF or CR; "event:"
 * names the type, "data:" lines accumulate, "id:" sets the last event id,
 * a blank line dispatches (and, as in browsers, makes the id the stream's
 * last even when no data came: the server's bare "id:" lines), lines
 * starting with ':' are comments (the server's keepalives). libcurl's
 * progress callback, which runs at least once a second even on a quiet
 * connection, enforces the deadline and drives the idle callback. With
 * reconnect, a stream that drops (and with reconnect 2 one that the
 * server ends) is opened again with Last-Event-ID, so that the server
 * replays what was missed.
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
    char idbuf[GX_CLIENT_EVENT_ID_MAX];   /* the "id:" field seen last */
    char last_id[GX_CLIENT_EVENT_ID_MAX]; /* the last event id (at dispatch) */
    int got_body;     /* a 2xx answer of this connection began */
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
    memcpy(s->last_id, s->idbuf, sizeof s->last_id);
    int job = !s->type[0] || !strcmp(s->type, "job"), reset = !strcmp(s->type, "reset");
    json_t *o = s->data.len && (job || reset) ? json_loadb(s->data.p, s->data.len, 0, NULL) : NULL;
    if (json_is_object(o) && job) {
        gx_client_event ev;
        gx__event_from_json(o, &ev);
        memcpy(ev.event_id, s->last_id, sizeof ev.event_id);
        if (s->o->on_event && s->o->on_event(s->o->ctx, &ev, s->data.p)) s->stopped = 1;
    } else if (json_is_object(o) && s->o->on_reset) {
        const char *reason = json_string_value(json_object_get(o, "reason"));
        const char *msg = json_string_value(json_object_get(o, "message"));
        if (s->o->on_reset(s->o->ctx, reason ? reason : "", msg ? msg : "")) s->stopped = 1;
    }
    json_decref(o);
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
    } else if (fl == 2 && !memcmp(l, "id", 2) && !memchr(v, '\0', vl)) {
        /* one too long for us to send back is none: a reconnect starts from now */
        if (vl < sizeof s->idbuf) snprintf(s->idbuf, sizeof s->idbuf, "%.*s", (int)vl, v);
        else s->idbuf[0] = '\0';
    } /* retry: and unknown fields are ignored */
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
    s->got_body = 1;
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

/* Wait ms (on_idle still called about once a second); 1 when a callback
 * or the deadline ended the wait. */
static int backoff(sse *s, double ms) {
    double until = now_s() + ms / 1000.0;
    while (now_s() < until) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
        if (on_progress(s, 0, 0, 0, 0)) return 1;
    }
    return 0;
}

/* One connection: GET path with Last-Event-ID (when one is known) until it
 * ends. The curl code; *status the HTTP status. */
static CURLcode follow_once(gx_client *c, sse *s, const char *path, int *status, int *rc) {
    struct curl_slist *hl = NULL, *t;
    if ((*rc = gx__setup(c, path, &hl, s->err))) return CURLE_OK;
    char h[32 + GX_CLIENT_EVENT_ID_MAX];
    snprintf(h, sizeof h, "Last-Event-ID: %s", s->last_id);
    if ((t = curl_slist_append(hl, "Accept: text/event-stream"))) hl = t;
    if (t && s->last_id[0] && (t = curl_slist_append(hl, h))) hl = t;
    if (!t) {
        curl_slist_free_all(hl);
        *rc = gx_error_set(s->err, GX_ENOMEM, NULL, "out of memory");
        return CURLE_OK;
    }
    s->status = 0;
    s->got_body = 0;
    s->last_cr = 0;
    s->line.len = s->data.len = s->errbody.len = 0;
    s->type[0] = '\0';
    memcpy(s->idbuf, s->last_id, sizeof s->idbuf); /* the id outlives a connection */
    CURL *hd = c->curl;
    curl_easy_setopt(hd, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(hd, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(hd, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(hd, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(hd, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(hd, CURLOPT_XFERINFODATA, s);
    CURLcode cc = curl_easy_perform(hd);
    curl_slist_free_all(hl);
    long st = 0;
    curl_easy_getinfo(hd, CURLINFO_RESPONSE_CODE, &st);
    c->last_status = *status = (int)st;
    *rc = 0;
    return cc;
}

#define RECONNECT_FIRST_MS 250.0
#define RECONNECT_MAX_MS 5000.0
#define RECONNECT_GIVE_UP_S 30.0 /* without a connection that answered 2xx */

int gx_client_events_follow(gx_client *c, const gx_client_stream_opts *o, gx_error *err) {
    gx__call_begin(c);
    if (!o || !o->on_event)
        return gx_error_set(err, GX_EINVAL, "on_event", "an event callback is required");
    gx__buf q = {0};
    int rc = gx__buf_add(&q, "/v1/events", 10);
    if (!rc) rc = gx__query_add(&q, "job", o->job);
    if (!rc) rc = gx__query_add(&q, "state", o->state);
    if (!rc) rc = gx__query_add(&q, "kernel", o->kernel);
    if (!rc) rc = gx__query_add(&q, "tenant", o->tenant);
    if (rc) {
        gx__buf_free(&q);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    sse s = {.c = c, .o = o, .err = err};
    s.t0 = s.last_idle = now_s();
    if (o->last_event_id) {
        /* it becomes a header: no line breaks (header injection), and one
         * too long is refused rather than dropped (a start from now) */
        size_t n = strlen(o->last_event_id);
        int ok = n < sizeof s.last_id;
        for (size_t i = 0; ok && i < n; i++) ok = (unsigned char)o->last_event_id[i] >= 0x20;
        if (!ok) {
            gx__buf_free(&q);
            return gx_error_set(err, GX_EINVAL, "last_event_id",
                                "an event id is at most %zu bytes with no control characters",
                                sizeof s.last_id - 1);
        }
        memcpy(s.last_id, o->last_event_id, n + 1);
    }
    double wait_ms = RECONNECT_FIRST_MS, down_since = now_s();
    int connected = 0; /* some connection answered 2xx, or 503 (a daemon starting) */
    for (;;) {
        int st = 0;
        CURLcode cc = follow_once(c, &s, q.p, &st, &rc);
        if (rc) break;
        int ok2xx = st >= 200 && st < 300;
        if (s.oom)
            rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading the event stream");
        else if (s.timed_out)
            rc = gx_error_set(err, GX_ETIMEDOUT, NULL, "event stream ended after %.1f s",
                              (double)o->timeout_ms / 1000.0);
        else if (s.stopped)
            rc = 0;
        else if (cc == CURLE_WRITE_ERROR && ok2xx)
            rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading the event stream");
        else if (st && !ok2xx && !(o->reconnect && st == 503)) /* a refusal: no use asking again */
            rc = gx__http_error(c, st, s.errbody.p, s.errbody.len, err);
        else if (!o->reconnect && cc != CURLE_OK)
            rc = gx__curl_error(c, cc, err);
        else {
            int ended = cc == CURLE_OK && ok2xx;
            if (ended || !o->reconnect) {
                /* the server ended the stream on purpose (gexecd stopping,
                 * a key revoked): over, unless reconnect is 2, which
                 * connects again as after a drop */
                if (s.line.len) on_line(&s); /* an unterminated last line */
                if (s.data.len && !s.stopped) dispatch(&s);
                if (s.oom) rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory reading the event stream");
                if (o->reconnect < 2 || s.stopped || s.oom) break;
            }
            /* connect again: an event cut short by a drop is not dispatched
             * (the server sends it again after the last whole one), after a
             * pause that grows while the server stays away. A server never
             * reached is an error at once (a wrong address). */
            /* a 503 is a daemon that is there (restoring its jobs, say):
             * waited for like a drop, up to the give-up */
            if (s.got_body || ended || st == 503) connected = 1;
            if (s.got_body) {
                wait_ms = RECONNECT_FIRST_MS;
                down_since = now_s();
            } else if (!connected || now_s() - down_since > RECONNECT_GIVE_UP_S) {
                rc = ended ? gx_error_set(err, GX_EIO, NULL, "the event stream of %s ends at once: gave up after %.0f s",
                                          c->server, RECONNECT_GIVE_UP_S)
                     : st  ? gx__http_error(c, st, s.errbody.p, s.errbody.len, err)
                           : gx__curl_error(c, cc, err);
                break;
            }
            if (backoff(&s, wait_ms)) {
                rc = s.timed_out ? gx_error_set(err, GX_ETIMEDOUT, NULL, "event stream ended after %.1f s",
                                                (double)o->timeout_ms / 1000.0)
                                 : 0;
                break;
            }
            wait_ms = wait_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : wait_ms * 2;
            continue;
        }
        break;
    }
    if (rc == 0) gx_error_clear(err);
    gx__buf_free(&q);
    gx__buf_free(&s.line);
    gx__buf_free(&s.data);
    gx__buf_free(&s.errbody);
    return rc;
}
