/*
 * svc_events.c - the event stream (GET /v1/events): server-sent events of
 * job state changes, resumable after a reconnect.
 *
 * The persister publishes each state change once, in the engine's order.
 * It takes the next sequence number, goes into a ring of the last
 * http.stream_replay_events changes (a fixed record of about 48 bytes, no
 * text), and is formatted once, only if a live stream wants it. Every
 * event carries an SSE id "<boot>-<seq>": boot is 16 hex digits drawn at
 * random when gexecd starts, seq the change's number in this run (1, 2,
 * ...). A random boot rather than the start time tells an id of another
 * run (or of another node behind the same balancer) apart even when two
 * start in the same second or the clock steps back.
 *
 * A stream is live (publish appends its events to its buffer) or reads
 * from the ring (cursor: the seq of the next event it gets). A stream that
 * resumes (Last-Event-ID, after=) starts in the ring after its id; a live
 * one whose buffer would pass http.stream_client_buffer (a slow client)
 * moves to the ring at the event it could not take, so its memory stays
 * bounded and it loses nothing while the ring holds its place. The reader
 * formats ring events as the client drains them and turns live again once
 * it has caught up, under smu like publish: no gap, no duplicate. A stream
 * whose place is gone (overwritten, another run's id, a malformed one)
 * gets a "reset" event, which carries the id of the last change published,
 * and goes on live from there.
 *
 * A live stream whose filter skips events gets a bare "id:" line every
 * half ring (SSE: it sets the client's last event id and fires nothing),
 * so that a quiet, filtered client that reconnects still finds its id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>

#include "clock.h"
#include "jsonw.h"
#include "log.h"
#include "service.h"

/* One published state change: what the filters and the event's text need. */
typedef struct gx__evrec {
    gx_job_id job;
    int64_t time_ns;     /* CLOCK_REALTIME of the change */
    const char *kernel;  /* the registry's name (static); NULL: none */
    uint32_t tenant;     /* tenant index */
    int state;           /* gx_job_state */
    int attempt;
    int device;          /* device index, -1: none */
    int error_code;      /* GX_E*, 0: none */
} gx__evrec;

struct gx__sub {
    gx_service *svc;
    gx__sub_filter f;
    gx_http_stream *stream;
    char *buf;              /* text not yet read by the connection */
    size_t len, cap, off;
    uint64_t cursor;        /* 0: live; else the seq of the next event it
                               reads from the ring */
    uint64_t sent;          /* seq of the last id the client was sent (an
                               event, a reset or a bare id line) */
    int revoked;            /* its key was revoked: the stream ends */
    int64_t expires_ns;     /* its key's expiry: the stream ends then (at the
                               next event or heartbeat); 0 = never */
    char key_id[32];        /* the key that opened it ("" without auth) */
    gx__sub *prev, *next;
};

#define EV_LINE_MAX 640       /* one event's text (at most ~400 in practice) */
#define RING_SCAN_MAX 65536   /* ring records a reader looks at per lock hold */

static const char *const reset_names[GX__RESET_COUNT] = {
    [GX__RESET_MALFORMED] = "malformed", [GX__RESET_OTHER_RUN] = "other_run", [GX__RESET_UNKNOWN] = "unknown",
    [GX__RESET_TOO_OLD] = "too_old",     [GX__RESET_LAGGED] = "lagged",
};

const char *gx__svc_reset_name(int reason) {
    return reason >= 0 && reason < GX__RESET_COUNT ? reset_names[reason] : "unknown";
}

int gx__svc_events_init(gx_service *s) {
    uint64_t b = 0;
    if (getrandom(&b, sizeof b, GRND_NONBLOCK) != (ssize_t)sizeof b)
        b = (uint64_t)gx__wall_ns() ^ ((uint64_t)getpid() << 40); /* no entropy yet: still unlike any other run */
    s->ev_boot = b;
    s->ring_cap = (uint64_t)s->cfg.http.stream_replay_events;
    if (s->ring_cap && !(s->ring = calloc(s->ring_cap, sizeof *s->ring))) return GX_ENOMEM;
    GX_LOGI("event stream: ids %016llx-N, the last %llu state changes kept for replay", (unsigned long long)b,
            (unsigned long long)s->ring_cap);
    return 0;
}

void gx__svc_events_free(gx_service *s) {
    free(s->ring);
    s->ring = NULL;
}

int gx__svc_event_id_parse(const char *text, uint64_t *boot, uint64_t *seq) {
    /* <16 lowercase hex>-<decimal, no leading zero>; anything else (a huge
     * header included) is looked at no further than its 38th byte */
    uint64_t b = 0, q = 0;
    const char *p = text;
    for (int i = 0; i < 16; i++, p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0) return -1;
        b = b << 4 | (uint64_t)d;
    }
    if (*p++ != '-' || *p < '0' || *p > '9' || (*p == '0' && p[1])) return -1;
    for (int i = 0; *p; i++, p++) {
        if (i == 20 || *p < '0' || *p > '9') return -1;
        uint64_t d = (uint64_t)(*p - '0');
        if (q > (UINT64_MAX - d) / 10) return -1;
        q = q * 10 + d;
    }
    *boot = b;
    *seq = q;
    return 0;
}

/* ---- text ------------------------------------------------------------------ */

static int id_text(const gx_service *s, uint64_t seq, char out[48]) {
    return snprintf(out, 48, "%016llx-%llu", (unsigned long long)s->ev_boot, (unsigned long long)seq);
}

/* The SSE text of one change (with its id line); its length. smu held (the
 * device's name comes from the engine). */
static size_t ev_format(gx_service *s, const gx__evrec *e, uint64_t seq, char line[EV_LINE_MAX]) {
    char t[40] = "", id[48];
    if (e->time_ns) gx_time_text(e->time_ns, 6, t);
    id_text(s, seq, id);
    gx_device_info di;
    const char *dev = e->device >= 0 && !gx_device_get(s->engine, e->device, &di) ? di.name : NULL;
    int len = snprintf(line, EV_LINE_MAX,
                       "id: %s\nevent: job\ndata: {\"id\":\"%llu\",\"state\":\"%s\",\"attempt\":%d,\"time\":\"%s\","
                       "\"kernel\":\"%s\",\"device\":%s%s%s%s%s%s}\n\n",
                       id, (unsigned long long)e->job, gx_job_state_name(e->state), e->attempt, t,
                       e->kernel ? e->kernel : "", dev ? "\"" : "null", dev ? dev : "", dev ? "\"" : "",
                       e->error_code ? ",\"error\":\"" : "", e->error_code ? gx_err_name(e->error_code) : "",
                       e->error_code ? "\"" : "");
    return len < 0 ? 0 : (size_t)len < EV_LINE_MAX ? (size_t)len : EV_LINE_MAX - 1;
}

static int sub_match(const gx__sub_filter *f, const gx__evrec *e) {
    if (f->job && f->job != e->job) return 0;
    if (f->state_mask && !(f->state_mask >> e->state & 1)) return 0;
    if (f->kernel[0] && (!e->kernel || strcmp(f->kernel, e->kernel))) return 0;
    if (f->tenant_set && f->tenant != e->tenant) return 0;
    return 1;
}

/* Append to a stream's buffer; -1 (nothing appended) past the client's
 * cap or out of memory. smu held, or the stream not yet listed. */
static int sub_push(gx__sub *sb, const char *text, size_t len) {
    if (sb->len + len > sb->svc->cfg.http.stream_client_buffer) return -1;
    if (sb->len + len > sb->cap) {
        size_t nc = sb->cap ? sb->cap * 2 : 8192;
        while (nc < sb->len + len) nc *= 2;
        char *nb = realloc(sb->buf, nc);
        if (!nb) return -1;
        sb->buf = nb;
        sb->cap = nc;
    }
    memcpy(sb->buf + sb->len, text, len);
    sb->len += len;
    return 0;
}

/* A bare id line: the client's last event id becomes seq (no event fires). */
static void sub_bookmark(gx__sub *sb, uint64_t seq) {
    char line[64], id[48];
    id_text(sb->svc, seq, id);
    int n = snprintf(line, sizeof line, "id: %s\n\n", id);
    if (!sub_push(sb, line, (size_t)n)) sb->sent = seq;
}

/* The stream cannot go on from where it was: a reset event (with the id of
 * the last change published) and live from here. smu held. */
static void sub_reset(gx__sub *sb, int reason) {
    gx_service *s = sb->svc;
    static const char *const why[GX__RESET_COUNT] = {
        [GX__RESET_MALFORMED] = "the last event id is not a gexec event id (<16 hex digits>-<number>)",
        [GX__RESET_OTHER_RUN] = "the last event id is from another run of gexecd (it restarted, or another node "
                                "answered): its events are not held",
        [GX__RESET_UNKNOWN] = "the last event id is past the last event of this run",
        [GX__RESET_TOO_OLD] = "events after the last event id are no longer held",
        [GX__RESET_LAGGED] = "the client read too slowly and fell further behind than the events held",
    };
    char msg[256], line[512], id[48];
    int held = reason == GX__RESET_TOO_OLD || reason == GX__RESET_LAGGED;
    if (held) snprintf(msg, sizeof msg, "%s (the daemon keeps the last %llu)", why[reason], (unsigned long long)s->ring_cap);
    else snprintf(msg, sizeof msg, "%s", why[reason]);
    id_text(s, s->ev_seq, id);
    int n = snprintf(line, sizeof line,
                     "id: %s\nevent: reset\ndata: {\"reason\":\"%s\",\"message\":\"%s; state changes may have "
                     "been missed: re-read the jobs (GET /v1/jobs), the stream goes on from here\"}\n\n",
                     id, reset_names[reason], msg);
    sb->cursor = 0;
    s->ev_resets[reason]++;
    /* it fits: the buffer was just drained, or holds the stream's first
     * lines, far below the smallest cap */
    if (!sub_push(sb, line, (size_t)n)) sb->sent = s->ev_seq;
}

/* ---- publishing ------------------------------------------------------------ */

void gx__svc_publish(gx_service *s, const gx_event *ev, size_t n) {
    pthread_mutex_lock(&s->smu);
    uint64_t every = s->ring_cap / 2; /* bare id lines to quiet streams; 0: none */
    for (size_t i = 0; i < n; i++) {
        const gx_event *e = &ev[i];
        if (s->selftest_id && e->job == s->selftest_id) continue; /* the start-up self-test: no one's job, and its
                                                                    * id is the first real job's */
        gx__evrec rec = {.job = e->job, .time_ns = e->time_ns, .kernel = e->kernel, .tenant = e->tenant,
                         .state = e->state, .attempt = e->attempt, .device = e->device, .error_code = e->error_code};
        uint64_t seq = ++s->ev_seq;
        if (s->ring_cap) s->ring[(seq - 1) % s->ring_cap] = rec;
        char line[EV_LINE_MAX];
        size_t len = 0;
        for (gx__sub *sb = s->subs; sb; sb = sb->next) {
            if (sb->cursor) continue; /* reading the ring: it reaches this event there */
            if (!sub_match(&sb->f, &rec)) {
                if (every && seq - sb->sent >= every) sub_bookmark(sb, seq);
                continue;
            }
            if (!len) len = ev_format(s, &rec, seq, line);
            if (sub_push(sb, line, len)) sb->cursor = seq; /* full: on from the ring, from this event */
            else sb->sent = seq;
        }
    }
    for (gx__sub *sb = s->subs; sb; sb = sb->next)
        if ((sb->len > sb->off || sb->cursor) && sb->stream) gx_http_stream_wake(sb->stream);
    pthread_mutex_unlock(&s->smu);
}

/* A stream reading the ring, its buffer drained: format up to want bytes
 * of its events, and turn it live once it has caught up. 1 when it should
 * be called again (it looked at RING_SCAN_MAX records and found nothing
 * yet). smu held. */
static int sub_refill(gx__sub *sb, size_t want) {
    gx_service *s = sb->svc;
    uint64_t head = s->ev_seq, oldest = head >= s->ring_cap ? head - s->ring_cap + 1 : 1;
    if (!s->ring_cap || sb->cursor < oldest) { /* overwritten before it was read */
        sub_reset(sb, GX__RESET_LAGGED);
        return 0;
    }
    char line[EV_LINE_MAX];
    for (int scanned = 0; sb->cursor <= head && sb->len < want; scanned++) {
        if (scanned == RING_SCAN_MAX) return sb->len == 0;
        const gx__evrec *e = &s->ring[(sb->cursor - 1) % s->ring_cap];
        if (sub_match(&sb->f, e)) {
            size_t len = ev_format(s, e, sb->cursor, line);
            if (sub_push(sb, line, len)) return 0; /* out of memory: the next publish wakes it to try again */
            sb->sent = sb->cursor;
            s->ev_replayed++;
        }
        sb->cursor++;
    }
    if (sb->cursor > head) {
        sb->cursor = 0; /* caught up: publish appends from the next change on */
        if (sb->sent < head) sub_bookmark(sb, head);
    }
    return 0;
}

static long sub_read(void *ctx, char *buf, size_t max) {
    gx__sub *sb = ctx;
    gx_service *s = sb->svc;
    long n = 0;
    for (int again = 1; again;) {
        pthread_mutex_lock(&s->smu);
        again = 0;
        if (s->stopping || sb->revoked || (sb->expires_ns && gx__wall_ns() >= sb->expires_ns)) n = -1;
        else {
            if (sb->len == sb->off && sb->cursor) again = sub_refill(sb, max);
            if (sb->len > sb->off) {
                size_t k = sb->len - sb->off;
                if (k > max) k = max;
                memcpy(buf, sb->buf + sb->off, k);
                sb->off += k;
                if (sb->off == sb->len) sb->off = sb->len = 0;
                n = (long)k;
            }
        }
        pthread_mutex_unlock(&s->smu);
    }
    return n;
}

static void sub_free(void *ctx) {
    gx__sub *sb = ctx;
    gx_service *s = sb->svc;
    pthread_mutex_lock(&s->smu);
    if (sb->prev) sb->prev->next = sb->next;
    else s->subs = sb->next;
    if (sb->next) sb->next->prev = sb->prev;
    pthread_mutex_unlock(&s->smu);
    free(sb->buf);
    free(sb);
}

void gx__svc_subscribe(gx_service *s, gx_http_req *r, const gx__sub_filter *f, const gx__sub_resume *from) {
    if (!strcmp(r->method, "HEAD")) {
        /* the stream's headers alone: libmicrohttpd still ends a stream's
         * chunked body (0 CRLF CRLF) after a HEAD's headers, 5 bytes that a
         * keep-alive client read as the start of its next answer */
        gx_http_reply(r, 200, "text/event-stream", NULL, 0);
        gx_http_header_add(r, "Cache-Control", "no-cache");
        return;
    }
    gx__sub *sb = calloc(1, sizeof *sb);
    if (!sb) {
        gx_http_error(r, 503, GX_ENOMEM, NULL, "out of memory");
        return;
    }
    sb->svc = s;
    sb->f = *f;
    snprintf(sb->key_id, sizeof sb->key_id, "%s", r->ctx.key_id);
    sb->expires_ns = r->ctx.key_expires_ns;
    sub_push(sb, ": gexec event stream\n\n", 22);
    pthread_mutex_lock(&s->smu);
    uint64_t head = s->ev_seq, oldest = head >= s->ring_cap ? head - s->ring_cap + 1 : 1;
    if (!from) sub_bookmark(sb, head); /* a reconnect resumes from here even if nothing matched */
    else if (from->malformed) sub_reset(sb, GX__RESET_MALFORMED);
    else if (from->boot != s->ev_boot) sub_reset(sb, GX__RESET_OTHER_RUN);
    else if (from->seq > head) sub_reset(sb, GX__RESET_UNKNOWN);
    else if (from->seq + 1 < oldest) sub_reset(sb, GX__RESET_TOO_OLD);
    else {
        sb->sent = from->seq;
        sb->cursor = from->seq < head ? from->seq + 1 : 0; /* the ring from after its id; or live */
    }
    /* listed in the same hold as the decision above: publish cannot slip
     * an event in between */
    sb->next = s->subs;
    if (sb->next) sb->next->prev = sb;
    s->subs = sb;
    pthread_mutex_unlock(&s->smu);
    /* a revoke between this request's key check and the listing above
     * walked the list before sb was in it: the key is marked revoked
     * before that walk, so it is seen here (the stream went on) */
    if (s->keys && sb->key_id[0] && gx_auth_key_revoked(s->keys, sb->key_id)) {
        pthread_mutex_lock(&s->smu);
        sb->revoked = 1;
        pthread_mutex_unlock(&s->smu);
    }
    gx_http_reply_stream(r, "text/event-stream", sub_read, sb, sub_free);
    gx_http_stream *st = gx_http_stream_of(r);
    if (!st) return; /* refused (out of memory): sb is freed already */
    gx_http_stream_heartbeat(st, ": keep-alive\n\n"); /* an SSE comment */
    pthread_mutex_lock(&s->smu);
    sb->stream = st;
    pthread_mutex_unlock(&s->smu);
    gx_http_header_add(r, "Cache-Control", "no-cache");
}

void gx__svc_streams_revoke(gx_service *s, const char *key_id) {
    if (!key_id || !*key_id) return;
    pthread_mutex_lock(&s->smu);
    for (gx__sub *sb = s->subs; sb; sb = sb->next)
        if (!strcmp(sb->key_id, key_id)) {
            sb->revoked = 1;
            if (sb->stream) gx_http_stream_wake(sb->stream);
        }
    pthread_mutex_unlock(&s->smu);
}

void gx__svc_events_counts(gx_service *s, int64_t *replayed, int64_t resets[GX__RESET_COUNT]) {
    pthread_mutex_lock(&s->smu);
    *replayed = s->ev_replayed;
    memcpy(resets, s->ev_resets, sizeof s->ev_resets);
    pthread_mutex_unlock(&s->smu);
}
