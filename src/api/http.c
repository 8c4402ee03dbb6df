/*
 * http.c - libmicrohttpd glue: body collection with limits, routing from the
 * route table, responses, suspend/resume for asynchronous handlers and
 * streams. See http.h.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "conns.h"
#include "gexec/gexec_errclass.h"
#include "log.h"
#include "str.h"

#define MAX_HEADERS 100
/* Response headers a handler may add (gx_http_header_add). */
#define GX_HTTP_MAX_HEADERS 8
/* TLS 1.2 and 1.3 only (GnuTLS priority string). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct gx_http_server {
    struct MHD_Daemon *d;
    gx_http_opts o;
    int port;
    atomic_uint_fast64_t next_req;
    pthread_mutex_t mu; /* guards streams list */
    struct gx_http_stream *streams;
    int stopping;
    gx__conns *conns;       /* per-client counts and request deadlines */
    char *tls_cert, *tls_key; /* PEM contents while the daemon runs; NULL: plain HTTP */
    atomic_int quiesced;    /* gx_http_quiesce: new connections are closed at accept */
    pthread_t keeper;       /* looks after sleeping streams (keeper_main) */
    int keeper_on, keeper_stop;
    pthread_mutex_t kmu;    /* guards keeper_stop */
    pthread_cond_t kcv;
    pthread_mutex_t cmu;    /* guards cache */
    struct gx_http_req *cache; /* finished requests for reuse (REQ_CACHE_MAX) */
    int ncache;
};

struct gx_http_stream {
    gx_http_server *srv;
    struct MHD_Connection *conn;
    int fd;                 /* its socket (-1: unknown) */
    pthread_mutex_t mu;
    int suspended;
    int ended;
    int gone;               /* the client closed its end: close the stream */
    int probed;             /* its client sent FIN; a line went out to tell a close from a half-close */
    int beat;               /* send the heartbeat line if there is nothing else */
    int woken;              /* a wake came while the reader ran */
    const char *heartbeat;  /* NULL: none */
    _Atomic int64_t last_ns; /* when it last sent something */
    gx_http_reader reader;
    void *ctx;
    void (*free_fn)(void *);
    struct gx_http_stream *prev, *next;
};

typedef struct gx_http_req_priv {
    gx_http_server *srv;
    struct MHD_Connection *conn;
    char *body;
    size_t len, cap;
    int too_large;
    int refused;            /* refused on its headers: the body is dropped, the answer set */
    int routed;             /* route() and the pre hook ran before the body (Expect: 100-continue) */
    int route_rc;           /* route()'s answer then */
    char allow[64];         /* and its Allow list */
    int dispatched;
    int queued;             /* answered before the request was in (429, 408) */
    int late;               /* the body came in past http.request_timeout: 408 */
    gx__conn *cn;           /* the connection's record in srv->conns */
    /* response */
    int have_resp;
    int status;
    char *resp;
    size_t resp_len;
    const char *ctype;
    int fd;
    uint64_t fd_size;
    int nh;
    const char *const *hlist; /* gx_http_header_list: static name, value pairs */
    gx_http_stream *stream;
    /* async */
    pthread_mutex_t mu;
    int async, suspended, done;
    struct timespec t0;
    char *long_path;        /* for a path longer than path[] */
    char *segs[GX_HTTP_MAX_PARAMS];
    const char *req_id;
    struct gx_http_req *cache_next; /* in srv->cache */
    /* not cleared when a request is reused (req_new): written before read */
    char hname[GX_HTTP_MAX_HEADERS][32], hval[GX_HTTP_MAX_HEADERS][256];
    char path[1024];
} priv_t;

/* Bytes of priv_t that a reused request clears (the buffers after it are
 * written before they are read: hname/hval up to nh, path by route()). */
#define PRIV_CLEARED offsetof(priv_t, hname)
/* Finished requests kept for reuse, with their body buffers up to
 * REQ_CACHE_BODY bytes: a request was a calloc of ~4 KB and a 4 KB body
 * buffer, both past malloc's per-thread cache, and their malloc and free
 * were a tenth of an HTTP thread's time per submit. */
#define REQ_CACHE_MAX 256
#define REQ_CACHE_BODY 16384

/* The status of each code is a column of the error class table
 * (src/exec/errclass.c), next to its class and Retry-After. */
int gx_http_status_for(int code) { return gx_errclass_of(code).http_status; }

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* ---- replies ---------------------------------------------------------- */

void gx_http_reply(gx_http_req *r, int status, const char *ctype, char *body, size_t len) {
    priv_t *p = r->priv;
    free(p->resp);
    p->resp = body;
    p->resp_len = len;
    p->status = status;
    p->ctype = ctype;
    p->have_resp = 1;
    r->status = status;
}

void gx_http_reply_json(gx_http_req *r, int status, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        s = strdup("{\"error\":{\"code\":\"GX_ENOMEM\",\"message\":\"cannot encode the response\"}}");
        status = 500;
    }
    gx_http_reply(r, status, "application/json", s, s ? strlen(s) : 0);
}

void gx_http_reply_file(gx_http_req *r, int status, const char *ctype, int fd, uint64_t size) {
    priv_t *p = r->priv;
    gx_http_reply(r, status, ctype, NULL, 0);
    p->fd = fd;
    p->fd_size = size;
}

void gx_http_error(gx_http_req *r, int status, int code, const char *field, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gx_utf8_fix(msg);
    json_t *e = json_pack("{s:s,s:s}", "code", gx_err_name(code), "message", msg);
    if (field && *field) {
        char f[128];
        snprintf(f, sizeof f, "%s", field);
        gx_utf8_fix(f);
        json_object_set_new(e, "field", json_string(f));
    }
    gx_http_reply_json(r, status, json_pack("{s:o}", "error", e));
    /* every 503 (store failure, shutting down, busy) may be sent again
     * shortly; a handler that knows better replaces the value */
    if (status == 503) gx_http_header_add(r, "Retry-After", "1");
}

/* Adds a header, or replaces the value of one already added by that name. */
void gx_http_header_add(gx_http_req *r, const char *name, const char *value) {
    priv_t *p = r->priv;
    int i = 0;
    while (i < p->nh && strcasecmp(p->hname[i], name)) i++;
    if (i == GX_HTTP_MAX_HEADERS || strlen(name) >= sizeof p->hname[0] || strlen(value) >= sizeof p->hval[0]) {
        /* a handler's mistake, never the client's: say so rather than
         * send a cut or missing header quietly */
        GX_LOGE("http: response header %.31s dropped (%d set already, or too long)", name, p->nh);
        return;
    }
    gx_str_copy(p->hname[i], sizeof p->hname[0], name);
    gx_str_copy(p->hval[i], sizeof p->hval[0], value);
    if (i == p->nh) p->nh++;
}

void gx_http_header_list(gx_http_req *r, const char *const *list) { r->priv->hlist = list; }

const char *gx_http_query(gx_http_req *r, const char *key) {
    return MHD_lookup_connection_value(r->priv->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct query_all {
    const char *key, **out;
    int max, n;
} query_all;

static enum MHD_Result query_all_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    query_all *q = cls;
    if (key && !strcmp(key, q->key)) {
        if (q->n < q->max) q->out[q->n] = value ? value : "";
        q->n++;
    }
    return MHD_YES;
}

int gx_http_query_all(gx_http_req *r, const char *key, const char **out, int max) {
    query_all q = {key, out, max, 0};
    MHD_get_connection_values(r->priv->conn, MHD_GET_ARGUMENT_KIND, query_all_cb, &q);
    return q.n;
}

const char *gx_http_header(gx_http_req *r, const char *name) {
    return MHD_lookup_connection_value(r->priv->conn, MHD_HEADER_KIND, name);
}

void gx_http_complete(gx_http_req *r) {
    priv_t *p = r->priv;
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    if (p->suspended) {
        p->suspended = 0;
        MHD_resume_connection(p->conn);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- streams ------------------------------------------------------------- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gx_http_stream *s = cls;
    if (s->srv->stopping) return MHD_CONTENT_READER_END_OF_STREAM;
    /* The reader runs without s->mu: it takes the service's lock, which
     * the service holds while it wakes streams (s->mu inside it), so
     * holding s->mu across it could deadlock. A wake that comes in while
     * it runs sets woken, and the reader runs again instead of the
     * stream going to sleep. */
    long n;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int gone = s->gone;
        s->woken = 0;
        pthread_mutex_unlock(&s->mu);
        if (gone) return MHD_CONTENT_READER_END_WITH_ERROR; /* closes the connection */
        n = s->reader(s->ctx, buf, max);
        if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
        if (n > 0) {
            atomic_store(&s->last_ns, gx__now_ns());
            return n;
        }
        pthread_mutex_lock(&s->mu);
        if (!s->woken) break; /* with s->mu held */
        pthread_mutex_unlock(&s->mu);
    }
    if (s->beat && s->heartbeat && strlen(s->heartbeat) <= max) {
        n = (long)strlen(s->heartbeat);
        memcpy(buf, s->heartbeat, (size_t)n);
    }
    s->beat = 0;
    if (n > 0) atomic_store(&s->last_ns, gx__now_ns());
    if (n == 0 && !s->srv->stopping) {
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
    }
    pthread_mutex_unlock(&s->mu);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

/* Sleeping streams, once a second: one whose client closed its end (a
 * suspended connection is not polled, so nothing else would notice) is
 * resumed to be closed, and one silent for http.stream_heartbeat is
 * resumed to send its heartbeat line. A FIN alone (POLLRDHUP) may be a
 * client that only shut down its sending side and still reads, so such a
 * stream first sends its heartbeat line as a probe: a socket closed for
 * good answers it with a reset, which the next round sees as POLLHUP or
 * POLLERR; a half-closed one keeps its stream. Before this, streams of clients that
 * had gone stayed open (CLOSE-WAIT) until an event matched them, holding
 * their client's connection slots: 64 of them locked the address out. */
static void keep_streams(gx_http_server *srv) {
    int64_t hb_ns = srv->o.stream_heartbeat_ms * 1000000, now = gx__now_ns();
    pthread_mutex_lock(&srv->mu);
    size_t n = 0, k = 0;
    for (gx_http_stream *st = srv->streams; st; st = st->next) n++;
    struct pollfd *pf = n ? calloc(n, sizeof *pf) : NULL;
    gx_http_stream **ss = n ? calloc(n, sizeof *ss) : NULL;
    for (gx_http_stream *st = srv->streams; pf && ss && st; st = st->next) {
        pthread_mutex_lock(&st->mu);
        if (st->suspended && st->fd >= 0) {
            pf[k] = (struct pollfd){.fd = st->fd, .events = POLLRDHUP};
            ss[k++] = st;
        }
        pthread_mutex_unlock(&st->mu);
    }
    if (k && poll(pf, (nfds_t)k, 0) < 0) k = 0;
    for (size_t i = 0; i < k; i++) {
        gx_http_stream *st = ss[i];
        pthread_mutex_lock(&st->mu);
        /* still suspended: still the same connection on that socket */
        if (st->suspended) {
            short ev = pf[i].revents;
            if (ev & (POLLHUP | POLLERR)) st->gone = 1;
            else if ((ev & POLLRDHUP) && !st->heartbeat) st->gone = 1;
            else if ((ev & POLLRDHUP) && !st->probed) st->probed = st->beat = 1;
            else if (hb_ns > 0 && st->heartbeat && now - atomic_load(&st->last_ns) >= hb_ns) st->beat = 1;
            if (st->gone || st->beat) {
                st->suspended = 0;
                MHD_resume_connection(st->conn);
            }
        }
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&srv->mu);
    free(pf);
    free(ss);
}

static void *keeper_main(void *arg) {
    gx_http_server *srv = arg;
    pthread_setname_np(pthread_self(), "gx-http-keep");
    pthread_mutex_lock(&srv->kmu);
    while (!srv->keeper_stop) {
        struct timespec dl = gx__realtime_in(1000000000);
        pthread_cond_timedwait(&srv->kcv, &srv->kmu, &dl);
        if (srv->keeper_stop) break;
        pthread_mutex_unlock(&srv->kmu);
        keep_streams(srv);
        pthread_mutex_lock(&srv->kmu);
    }
    pthread_mutex_unlock(&srv->kmu);
    return NULL;
}

static void keeper_stop(gx_http_server *srv) {
    if (!srv->keeper_on) return;
    pthread_mutex_lock(&srv->kmu);
    srv->keeper_stop = 1;
    pthread_cond_signal(&srv->kcv);
    pthread_mutex_unlock(&srv->kmu);
    pthread_join(srv->keeper, NULL);
    srv->keeper_on = 0;
}

static void stream_free(void *cls) {
    gx_http_stream *s = cls;
    gx_http_server *srv = s->srv;
    if (s->free_fn) s->free_fn(s->ctx);
    pthread_mutex_lock(&srv->mu);
    if (s->prev) s->prev->next = s->next;
    else srv->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void gx_http_reply_stream(gx_http_req *r, const char *ctype, gx_http_reader reader, void *ctx,
                          void (*free_fn)(void *)) {
    priv_t *p = r->priv;
    gx_http_stream *s = calloc(1, sizeof *s);
    if (!s) {
        if (free_fn) free_fn(ctx);
        gx_http_error(r, 503, GX_ENOMEM, NULL, "out of memory for a stream");
        return;
    }
    s->srv = p->srv;
    s->conn = p->conn;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(p->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    s->fd = ci ? (int)ci->connect_fd : -1;
    atomic_store(&s->last_ns, gx__now_ns());
    s->reader = reader;
    s->ctx = ctx;
    s->free_fn = free_fn;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_lock(&p->srv->mu);
    s->next = p->srv->streams;
    if (s->next) s->next->prev = s;
    p->srv->streams = s;
    pthread_mutex_unlock(&p->srv->mu);
    gx_http_reply(r, 200, ctype, NULL, 0);
    p->stream = s;
}

gx_http_stream *gx_http_stream_of(gx_http_req *r) { return r->priv->stream; }

void gx_http_stream_heartbeat(gx_http_stream *s, const char *line) {
    pthread_mutex_lock(&s->mu);
    s->heartbeat = line;
    pthread_mutex_unlock(&s->mu);
}

void gx_http_stream_wake(gx_http_stream *s) {
    pthread_mutex_lock(&s->mu);
    s->woken = 1;
    if (s->suspended) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- request handling ---------------------------------------------------- */

static int queue_response(priv_t *p) {
    struct MHD_Response *resp;
    if (p->stream)
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, p->stream, stream_free);
    else if (p->fd >= 0)
        resp = MHD_create_response_from_fd(p->fd_size, p->fd);
    else
        resp = MHD_create_response_from_buffer(p->resp_len, p->resp ? p->resp : (char *)"",
                                               p->resp ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    if (!p->stream && p->fd < 0) p->resp = NULL; /* owned by the response now */
    if (p->stream) p->stream = NULL;            /* freed by stream_free */
    p->fd = -1;
    if (p->ctype) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, p->ctype);
    for (int i = 0; i < p->nh; i++) MHD_add_response_header(resp, p->hname[i], p->hval[i]);
    for (const char *const *h = p->hlist; h && h[0] && h[1]; h += 2) MHD_add_response_header(resp, h[0], h[1]);
    MHD_add_response_header(resp, "X-Request-Id", p->req_id);
    int rc = MHD_queue_response(p->conn, (unsigned)p->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* 1 when the path's segments (ns of them) fit a route pattern's, "{x}"
 * capturing its segment into cap (*n of them). The pattern is walked in
 * place: copying and splitting each of the ~50 patterns for every request
 * was a printf and a strtok per route. */
static int pattern_match(const char *pat, char *const *segs, int ns, const char **cap, int *n) {
    int k = 0;
    for (const char *p = pat;;) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (k == ns) return 0;
        if (*p == '{') {
            if (*n < GX_HTTP_MAX_PARAMS) cap[(*n)++] = segs[k];
        } else if (strncmp(segs[k], p, len) || segs[k][len]) {
            return 0;
        }
        k++;
        p += len;
    }
    return k == ns;
}

int gx_http_ctype_is(gx_http_req *r, const char *want) {
    const char *ct = gx_http_header(r, "Content-Type");
    if (!ct) return 1; /* absent: accept */
    size_t n = strlen(want);
    return !strncasecmp(ct, want, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* path split into its segments in buf (bufcap bytes): how many, or -1
 * when longer or deeper than any route. */
static int split_path(const char *path, char *buf, size_t bufcap, char *segs[16]) {
    if (path && strlen(path) >= bufcap) return -1; /* longer than any route: not cut to one */
    gx_str_copy(buf, bufcap, path);
    int ns = 0;
    char *save;
    for (char *s = strtok_r(buf, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (ns == 16) return -1; /* deeper than any route */
        segs[ns++] = s;
    }
    return ns;
}

const char *gx_http_path_pattern(const gx_route *routes, int nroutes, const char *path) {
    char buf[512], *segs[16];
    int ns = path ? split_path(path, buf, sizeof buf, segs) : -1;
    for (int i = 0; ns >= 0 && i < nroutes; i++) {
        const char *cap[GX_HTTP_MAX_PARAMS];
        int n = 0;
        if (pattern_match(routes[i].pattern, segs, ns, cap, &n)) return routes[i].pattern;
    }
    return NULL;
}

int gx_http_route_match(const gx_route *routes, int nroutes, const char *method, const char *path, char *buf,
                        size_t bufcap, const gx_route **out, const char **params, int *nparams, char *allow,
                        size_t allowcap) {
    char *segs[16];
    int ns = split_path(path, buf, bufcap, segs);
    if (ns < 0) return 404;
    int path_found = 0;
    if (allowcap) allow[0] = '\0';
    /* HEAD is GET without the body: libmicrohttpd sends the headers only */
    const char *want = !strcmp(method, "HEAD") ? "GET" : method;
    for (int i = 0; i < nroutes; i++) {
        const gx_route *rt = &routes[i];
        const char *cap[GX_HTTP_MAX_PARAMS];
        int n = 0, ok = pattern_match(rt->pattern, segs, ns, cap, &n);
        if (!ok) continue;
        path_found = 1;
        if (strcmp(rt->method, want)) {
            const char *m = !strcmp(rt->method, "GET") ? "GET, HEAD" : rt->method;
            if (allowcap && !strstr(allow, rt->method)) {
                if (allow[0]) strncat(allow, ", ", allowcap - strlen(allow) - 1);
                strncat(allow, m, allowcap - strlen(allow) - 1);
            }
            continue;
        }
        *out = rt;
        *nparams = n;
        for (int k = 0; k < n; k++) params[k] = cap[k];
        return 0;
    }
    return path_found ? 405 : 404;
}

/* Match the request against the route table: 0, 404 or 405. */
static int route(gx_http_server *srv, gx_http_req *r, char *allow, size_t cap) {
    priv_t *p = r->priv;
    /* a path longer than the buffer gets its own (up to the URL limit):
     * matched whole, never cut short to another route's path */
    size_t need = strlen(r->path) + 1;
    char *buf = p->path;
    if (need > sizeof p->path && (p->long_path = malloc(need))) buf = p->long_path;
    return gx_http_route_match(srv->o.routes, srv->o.nroutes, r->method, r->path, buf,
                               buf == p->path ? sizeof p->path : need, &r->route, r->params, &r->nparams, allow, cap);
}

/* The answer to a request no route takes: rc 404 or 405 from route(). */
static void route_error(gx_http_req *r, int rc, const char *allow) {
    if (rc == 404) {
        gx_http_error(r, 404, GX_ENOTFOUND, "path", "no route for %.200s", r->path);
        return;
    }
    gx_http_error(r, 405, GX_EUNSUPPORTED, "method", "%s is not allowed on %.200s (allowed: %s)", r->method, r->path,
                  allow);
    gx_http_header_add(r, "Allow", allow);
}

static void dispatch(gx_http_server *srv, gx_http_req *r) {
    priv_t *p = r->priv;
    if (p->too_large) {
        gx_http_error(r, 413, GX_ELIMIT, "body", "request body is larger than the limit of %zu bytes",
                      srv->o.max_body);
        return;
    }
    char *allow = p->allow;
    int rc = p->route_rc;
    if (!p->routed) {
        rc = route(srv, r, allow, sizeof p->allow);
        if (rc) r->route = NULL;
        /* the hook runs after routing so it knows the route's pattern (NULL
         * when none matched: unknown paths need a key like the rest, 401
         * before 404) */
        if (srv->o.pre && srv->o.pre(srv->o.app, r)) return;
    }
    if (rc) {
        route_error(r, rc, allow);
        return;
    }
    int hr = r->route->fn(srv->o.app, r);
    if (hr == GX_HTTP_ASYNC) p->async = 1;
    else if (!p->have_resp)
        gx_http_error(r, 500, GX_EINVAL, NULL, "handler gave no response");
}

/* Answer a request without running it and close the connection after the
 * answer: too many connections from the client (429, before any body), or
 * a request that took too long to arrive (408). */
static enum MHD_Result answer_early(gx_http_server *srv, gx_http_req *r) {
    priv_t *p = r->priv;
    unsigned n = 0;
    if (gx__conn_excess(srv->conns, p->cn, &n)) {
        gx_http_error(r, 429, GX_ELIMIT, NULL,
                      "too many connections from %s: %u open, the limit is %u per client "
                      "(http.max_connections_per_client); close some and retry",
                      r->remote, n, srv->o.max_per_client);
        gx_http_header_add(r, "Retry-After", "1");
    } else {
        gx_http_error(r, 408, GX_ETIMEDOUT, NULL,
                      "the request took longer than %lld ms to arrive (http.request_timeout)",
                      (long long)srv->o.request_timeout_ms);
    }
    gx_http_header_add(r, "Connection", "close");
    p->dispatched = p->queued = 1;
    gx__conn_dispatched(srv->conns, p->cn);
    return queue_response(p) == MHD_YES ? MHD_YES : MHD_NO;
}

/* Bytes of the request line and headers as parsed (name, value and the
 * ": " and CRLF around them), for http.max_header_bytes. */
static enum MHD_Result header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* How a request's body is framed, and the other headers the checks before
 * its body read, from one pass over its headers. */
typedef struct framing {
    int lengths;      /* Content-Length headers */
    int differ;       /* two of them disagree */
    int chunked;      /* a Transfer-Encoding header */
    const char *coding; /* one that is not plain "chunked" (gzip, identity, "gzip, chunked") */
    const char *first;  /* the first Content-Length */
    int auths;          /* Authorization headers */
    const char *encoding; /* the first Content-Encoding, NULL */
    const char *expect;   /* the first Expect, NULL */
} framing;

static enum MHD_Result framing_of(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    framing *f = cls;
    if (!strcasecmp(key, "Content-Length")) {
        if (f->lengths++ && strcmp(f->first, value ? value : "")) f->differ = 1;
        else f->first = value ? value : "";
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        f->chunked = 1;
        size_t n;
        const char *v = gx_str_trim_ows(value, &n);
        if (n != 7 || strncasecmp(v, "chunked", 7)) f->coding = value ? value : "";
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION)) {
        f->auths++;
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_ENCODING)) {
        if (!f->encoding) f->encoding = value ? value : "";
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_EXPECT)) {
        if (!f->expect) f->expect = value ? value : "";
    }
    return MHD_YES;
}

/* A request line or headers over http.max_header_bytes, answered with our
 * JSON error (libmicrohttpd's own 414/431 pages, plain HTML, only come
 * past twice the limit, where it runs out of the memory it was given); and
 * a body framed two ways (Content-Length headers that disagree, or one
 * with Transfer-Encoding), refused as request smuggling is made of them:
 * a proxy in front may read the body one way and libmicrohttpd the other.
 * Each is answered with the connection closed. */
static int bad_head(gx_http_server *srv, gx_http_req *r, struct MHD_Connection *conn, const char *url,
                   const char *method, const framing *f) {
    size_t limit = srv->o.max_header ? srv->o.max_header : 16384;
    size_t ulen = strlen(url), n = strlen(method) + ulen + 12;
    /* the query's names and values count with the URL (libmicrohttpd
     * takes the query off the url it hands over) */
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, header_bytes, &ulen);
    if (ulen > limit) {
        gx_http_error(r, 414, GX_ELIMIT, "url", "the URL is %zu bytes, over the limit of %zu (http.max_header_bytes)",
                      ulen, limit);
        return 1;
    }
    /* 100 headers at most (Apache's default): libmicrohttpd keeps ~60
     * bytes per header in the connection's memory besides the text, so
     * with the 1,000 allowed before, 700 small ones already got its own
     * HTML 431 and our limit was never reached */
    int count = MHD_get_connection_values(conn, MHD_HEADER_KIND, header_bytes, &n);
    if (n > limit || count > MAX_HEADERS) {
        gx_http_error(r, 431, GX_ELIMIT, "headers",
                      "the request line and headers are %zu bytes in %d headers, over the limit of %zu bytes "
                      "(http.max_header_bytes) or %d headers",
                      n, count, limit, MAX_HEADERS);
        return 1;
    }
    if (f->coding) { /* libmicrohttpd waited for a body it could not read, then closed without a word */
        gx_http_error(r, 501, GX_EUNSUPPORTED, "Transfer-Encoding",
                      "Transfer-Encoding '%.60s' is not supported: send the body as is (Content-Length) or chunked",
                      f->coding);
        return 1;
    }
    if (f->differ || (f->lengths && f->chunked)) {
        gx_http_error(r, 400, GX_EINVAL, f->differ ? "Content-Length" : "Transfer-Encoding",
                      f->differ ? "Content-Length headers that disagree"
                               : "both Content-Length and Transfer-Encoding: the body must be framed one way");
        return 1;
    }
    return 0;
}

/* A request refused on its headers alone: two Authorization headers (400),
 * a Content-Encoding (415), a declared Content-Length over http.max_body
 * (413), and, with expect (the client waits for "100 Continue" before it
 * sends the body), every refusal that needs no body: no route, the method,
 * the key, its rate and its role. 1 with r's response set. The caller
 * answers at once when the client waits (libmicrohttpd sends "100
 * Continue" unless the first call queues an answer, so a refused upload is
 * never sent); otherwise the body is on its way, and closing on it would
 * reset the connection under the client's feet: it is read, dropped, and
 * the answer goes out after it on a connection kept open. */
static int refused_before_body(gx_http_server *srv, gx_http_req *r, const framing *f, int expect) {
    priv_t *p = r->priv;
    /* two keys: which one acts is a guess (the first did, silently) */
    if (f->auths > 1) {
        gx_http_error(r, 400, GX_EINVAL, "Authorization", "%d Authorization headers; send one", f->auths);
        return 1;
    }
    /* a compressed body would be read as it is: malformed JSON or .npy at
     * best (RFC 9110 15.5.16: 415 for a content coding not supported) */
    const char *ce = f->encoding;
    if (ce && *ce && strcasecmp(ce, "identity")) {
        gx_http_error(r, 415, GX_EUNSUPPORTED, "Content-Encoding",
                      "Content-Encoding '%.60s' is not supported: send the body uncompressed", ce);
        return 1;
    }
    const char *cl = f->first;
    if (cl && *cl >= '0' && *cl <= '9') {
        errno = 0;
        unsigned long long n = strtoull(cl, NULL, 10);
        if (errno == ERANGE || n > srv->o.max_body) {
            gx_http_error(r, 413, GX_ELIMIT, "body", "request body is larger than the limit of %zu bytes",
                          srv->o.max_body);
            return 1;
        }
    }
    if (!expect) return 0;
    p->routed = 1;
    p->route_rc = route(srv, r, p->allow, sizeof p->allow);
    if (p->route_rc) r->route = NULL;
    if (srv->o.pre && srv->o.pre(srv->o.app, r)) return 1;
    if (p->route_rc) {
        route_error(r, p->route_rc, p->allow);
        return 1;
    }
    /* a body of a type the route does not take: its handler would say so
     * after the whole body */
    int ok = !r->route->types;
    for (const char *const *t = r->route->types; t && *t && !ok; t++) ok = gx_http_ctype_is(r, *t);
    if (!ok) {
        gx_http_error(r, 415, GX_EUNSUPPORTED, "Content-Type", "'%.60s' is not taken here: send Content-Type: %s",
                      gx_http_header(r, "Content-Type"), r->route->types[0]);
        return 1;
    }
    return 0;
}

/* "r" and n in lowercase hex (as "r%llx"): a request's own id. */
static void req_id_text(char out[24], uint64_t n) {
    char h[16];
    int k = 0;
    do h[k++] = "0123456789abcdef"[n & 15];
    while (n >>= 4);
    char *o = out;
    *o++ = 'r';
    while (k) *o++ = h[--k];
    *o = '\0';
}

/* A cleared request: a finished one from srv->cache (its body buffer
 * kept) or a new one. */
static gx_http_req *req_new(gx_http_server *srv) {
    pthread_mutex_lock(&srv->cmu);
    gx_http_req *r = srv->cache;
    if (r) {
        srv->cache = r->priv->cache_next;
        srv->ncache--;
    }
    pthread_mutex_unlock(&srv->cmu);
    if (!r) {
        r = calloc(1, sizeof *r + sizeof(priv_t));
        if (r) r->priv = (priv_t *)(r + 1);
        return r;
    }
    priv_t *p = r->priv;
    char *body = p->body;
    size_t cap = p->cap;
    memset(r, 0, sizeof *r);
    memset(p, 0, PRIV_CLEARED);
    r->priv = p;
    p->body = body;
    p->cap = cap;
    return r;
}

/* A finished request (its other resources released) back to srv->cache,
 * or freed when the cache is full. */
static void req_release(gx_http_server *srv, gx_http_req *r) {
    priv_t *p = r->priv;
    if (p->body && p->len) memset(p->body, 0, p->len); /* no request's body (a key's, say) lingers */
    if (p->cap > REQ_CACHE_BODY) {
        free(p->body);
        p->body = NULL;
        p->cap = 0;
    }
    pthread_mutex_lock(&srv->cmu);
    int keep = srv->ncache < REQ_CACHE_MAX;
    if (keep) {
        p->cache_next = srv->cache;
        srv->cache = r;
        srv->ncache++;
    }
    pthread_mutex_unlock(&srv->cmu);
    if (!keep) {
        free(p->body);
        free(r);
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls) {
    (void)version;
    gx_http_server *srv = cls;
    gx_http_req *r = *con_cls;
    if (!r) {
        r = req_new(srv);
        if (!r) return MHD_NO;
        priv_t *p = r->priv;
        p->srv = srv;
        p->conn = conn;
        p->fd = -1;
        pthread_mutex_init(&p->mu, NULL);
        clock_gettime(CLOCK_MONOTONIC, &p->t0);
        r->method = method;
        r->path = url;
        r->body = "";
        /* a caller's own request id is kept (tracing across services) */
        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
        int ok = rid && *rid && strlen(rid) < sizeof r->request_id;
        for (const char *c = rid; ok && *c; c++)
            ok = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '-';
        if (ok)
            gx_str_copy(r->request_id, sizeof r->request_id, rid);
        else
            req_id_text(r->request_id, (uint64_t)atomic_fetch_add(&srv->next_req, 1));
        p->req_id = r->request_id;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            char host[64] = "";
            getnameinfo(ci->client_addr,
                        ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in),
                        host, sizeof host, NULL, 0, NI_NUMERICHOST);
            gx_str_copy(r->remote, sizeof r->remote, host);
        }
        *con_cls = r;
        const union MHD_ConnectionInfo *sc = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        p->cn = sc ? sc->socket_context : NULL;
        /* headers that came in late are served all the same: the request
         * may have started just before the deadline after an idle spell (the
         * reaper bounds trickled headers); the body gets its own window */
        if (gx__conn_excess(srv->conns, p->cn, NULL)) return answer_early(srv, r);
        /* one pass over the headers for what the checks below need */
        framing f = {0};
        MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_of, &f);
        int expect = f.expect && !strcasecmp(f.expect, "100-continue");
        int bad = bad_head(srv, r, conn, url, method, &f);
        if (bad || (refused_before_body(srv, r, &f, expect) && expect)) {
            gx_http_header_add(r, "Connection", "close");
            p->dispatched = p->queued = 1;
            gx__conn_dispatched(srv->conns, p->cn);
            return queue_response(p) == MHD_YES ? MHD_YES : MHD_NO;
        }
        p->refused = p->have_resp; /* answered after its body, which is dropped */
        gx__conn_headers(srv->conns, p->cn);
        return MHD_YES;
    }
    priv_t *p = r->priv;
    if (p->queued) { /* answered early: the rest of the body is dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    /* libmicrohttpd cannot answer in the middle of a body: a late one is
     * dropped as it comes and answered 408 when complete, unless the
     * reaper cuts the connection first (BODY_GRACE_NS in conns.c) */
    if (*upload_size && !p->late && gx__conn_late(srv->conns, p->cn)) {
        p->late = 1;
        free(p->body);
        p->body = NULL;
        p->len = p->cap = 0;
    }
    if (*upload_size) {
        if (!p->too_large && !p->late && !p->refused) {
            if (p->len + *upload_size > srv->o.max_body) {
                p->too_large = 1;
                free(p->body);
                p->body = NULL;
                p->len = p->cap = 0;
            } else {
                if (p->len + *upload_size + 1 > p->cap) {
                    size_t nc = p->cap ? p->cap : 4096;
                    while (nc < p->len + *upload_size + 1) nc *= 2;
                    char *nb = realloc(p->body, nc);
                    if (!nb) return MHD_NO;
                    p->body = nb;
                    p->cap = nc;
                }
                memcpy(p->body + p->len, upload_data, *upload_size);
                p->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (!p->dispatched) {
        if (p->late) return answer_early(srv, r);
        p->dispatched = 1;
        if (p->body) {
            p->body[p->len] = '\0';
            r->body = p->body;
            r->body_len = p->len;
        }
        gx__conn_dispatched(srv->conns, p->cn);
        if (!p->refused) dispatch(srv, r);
        if (p->async) {
            pthread_mutex_lock(&p->mu);
            if (!p->done) {
                p->suspended = 1;
                MHD_suspend_connection(conn);
                pthread_mutex_unlock(&p->mu);
                return MHD_YES;
            }
            pthread_mutex_unlock(&p->mu);
        }
    } else if (p->async) {
        pthread_mutex_lock(&p->mu);
        int done = p->done;
        pthread_mutex_unlock(&p->mu);
        if (!done) return MHD_YES; /* spurious call while waiting */
    }
    if (!p->have_resp) gx_http_error(r, 500, GX_EINVAL, NULL, "no response");
    return queue_response(p) == MHD_YES ? MHD_YES : MHD_NO;
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    gx_http_server *srv = cls;
    gx_http_req *r = *con_cls;
    if (!r) return;
    priv_t *p = r->priv;
    if (srv->o.on_done && p->dispatched) {
        /* a request refused before its route was taken (a method the path
         * lacks, a refusal on its headers) is counted under its path's
         * route when it has one */
        r->route_label = r->route ? r->route->pattern : gx_http_path_pattern(srv->o.routes, srv->o.nroutes, r->path);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - p->t0.tv_sec) + (double)(t1.tv_nsec - p->t0.tv_nsec) / 1e9;
        srv->o.on_done(srv->o.app, r, secs);
    }
    gx__conn_idle(srv->conns, p->cn); /* the next request's clock starts */
    if (p->stream) stream_free(p->stream); /* reply never queued */
    free(p->long_path);
    free(p->resp);
    if (p->fd >= 0) close(p->fd);
    pthread_mutex_destroy(&p->mu);
    req_release(srv, r);
    *con_cls = NULL;
}

/* Percent-decoding of paths and query values that leaves "%00" alone: a
 * NUL must not cut a path short ("/v1/jobs/%00" is no job, not the list).
 * In the path (the one string that starts with '/': query names and values
 * of this API never do) "%2F" stays as it is: an encoded slash is data in
 * its segment (RFC 3986), not a separator ("/v1/jobs/1%2Fresult" is no
 * job, not job 1's result). */
/* The request line's URI as libmicrohttpd received it, on the thread that
 * parses it: the unescape callback is called for each query key and value
 * and then for the path, which is this same buffer (cut at '?'). Only
 * the path keeps %2F (a separator there only when written as '/'); a
 * query value that merely starts with '/' is decoded whole. */
static _Thread_local const char *tl_uri;

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)cls;
    (void)c;
    tl_uri = uri;
    return NULL; /* the handler's per-request state starts empty */
}

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    char *o = s;
    int path = s == tl_uri;
    if (path) tl_uri = NULL;
    for (char *p = s; *p;) {
        int hi, lo;
        if (p[0] == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0 && (hi | lo) &&
            !(path && hi * 16 + lo == '/')) {
            *o++ = (char)(hi * 16 + lo);
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return (size_t)(o - s);
}

static void notify_conn_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode code) {
    gx_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const union MHD_ConnectionInfo *fi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = gx__conn_open(srv->conns, ai ? ai->client_addr : NULL, fi ? fi->connect_fd : -1);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        gx__conn_close(srv->conns, *socket_context);
        *socket_context = NULL;
    }
}

static void log_cb(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    gx_log(GX_LOG_DEBUG, NULL, "http: %s", msg);
}

/* Parse "host:port", "[v6]:port" or ":port". */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, gx_error *err) {
    char host[128] = "";
    const char *colon = strrchr(s ? s : "", ':');
    if (!s || !colon) return gx_error_set(err, GX_EINVAL, "listen", "listen must be host:port; got '%.80s'", s ? s : "");
    size_t hl = (size_t)(colon - s);
    if (hl >= sizeof host) return gx_error_set(err, GX_EINVAL, "listen", "listen host is too long");
    memcpy(host, s, hl);
    host[hl] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return gx_error_set(err, GX_EINVAL, "listen", "listen port must be 0..65535; got '%.20s'", colon + 1);
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        memmove(host, host + 1, hl);
    }
    if (!host[0]) snprintf(host, sizeof host, "0.0.0.0");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%ld", port);
    int g = getaddrinfo(host, portstr, &hints, &ai);
    if (g || !ai) return gx_error_set(err, GX_EINVAL, "listen", "cannot resolve '%s': %s", host, gai_strerror(g));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int gx_http_listen(const char *listen_addr, int *fd_out, gx_error *err) {
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = parse_listen(listen_addr, &ss, &sl, err);
    if (rc) return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 1024)) {
        int e = errno;
        if (fd >= 0) close(fd);
        return gx_error_set(err, GX_EIO, "listen", "cannot listen on %s: %s", listen_addr, strerror(e));
    }
    if (fd <= 2) { /* stdin/out/err were closed: 0 would read as "no socket" */
        int hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        if (hi < 0) return gx_error_set(err, GX_EIO, "listen", "cannot move the socket of %s: %s", listen_addr,
                                        strerror(errno));
        fd = hi;
    }
    *fd_out = fd;
    return 0;
}

/* Free what gx_http_start allocated (the daemon is stopped or never ran). */
static void server_free(gx_http_server *s) {
    keeper_stop(s);
    gx__conns_free(s->conns);
    free(s->tls_cert);
    if (s->tls_key) {
        /* the private key does not linger in freed memory */
        volatile char *k = s->tls_key;
        for (size_t i = 0; k[i]; i++) k[i] = 0;
    }
    free(s->tls_key);
    while (s->cache) {
        gx_http_req *r = s->cache;
        s->cache = r->priv->cache_next;
        free(r->priv->body);
        free(r);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->kmu);
    pthread_mutex_destroy(&s->cmu);
    pthread_cond_destroy(&s->kcv);
    free(s);
}

/* Accept policy: after gx_http_quiesce a new connection is closed at once.
 * (MHD_quiesce_daemon, which keeps the listening socket open but no longer
 * accepts on it, is used for the restart only.) */
static enum MHD_Result accept_cb(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr;
    (void)addrlen;
    gx_http_server *s = cls;
    return atomic_load(&s->quiesced) ? MHD_NO : MHD_YES;
}

int gx_http_start(const gx_http_opts *o, gx_http_server **out, gx_error *err) {
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = parse_listen(o->listen, &ss, &sl, err);
    if (rc) return rc;
    gx_http_server *srv = calloc(1, sizeof *srv);
    if (!srv) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    srv->o = *o;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->cmu, NULL);
    pthread_mutex_init(&srv->kmu, NULL);
    pthread_cond_init(&srv->kcv, NULL);
    /* poll(), not epoll, in libmicrohttpd 0.9.75 (Debian 12's):
     *  - with epoll, an epoll_wait that returns exactly 128 events (its
     *    batch) is followed by another with the first one's timeout (up to
     *    the idle timeout) before any of the 128 connections is served: 128
     *    busy connections on one thread stalled for seconds
     *    (test_conn_limits: many_busy_connections_not_stalled);
     *  - with epoll and a thread pool, MHD_quiesce_daemon races the workers
     *    (both take the listening socket out of their epoll sets; the loser
     *    aborts the process), which the restart after a device loss needs;
     *  - suspending a connection takes it out of the epoll set and resuming
     *    puts it back (two epoll_ctl per asynchronous request); poll has no
     *    such cost: HTTP threads 15-18 against 16-28 us per single submit,
     *    and the ceiling server is no slower either (bench/http). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
    if (o->tls_cert || o->tls_key) {
        rc = gx_http_tls_load(o->tls_cert ? o->tls_cert : "", o->tls_key ? o->tls_key : "", &srv->tls_cert,
                              &srv->tls_key, err);
        if (rc) goto fail;
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
        tls[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    if ((rc = gx__conns_new(o->max_per_client, o->request_timeout_ms, &srv->conns))) {
        rc = gx_error_set(err, rc, NULL, "out of memory");
        goto fail;
    }
    /* an inherited socket is served as is (MHD_OPTION_LISTEN_SOCKET wins
     * over the address) */
    /* the logger first: libmicrohttpd prints what comes before it itself,
     * past gexecd's log format and level; a pool of 1 is no pool (it
     * would say so on stderr) */
    srv->d = MHD_start_daemon(
        flags, 0, accept_cb, srv, access_cb, srv, MHD_OPTION_EXTERNAL_LOGGER, log_cb, NULL, MHD_OPTION_LISTEN_SOCKET,
        (MHD_socket)(o->listen_fd > 0 ? o->listen_fd : MHD_INVALID_SOCKET), MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads == 1 ? 0 : o->threads > 0 ? o->threads : 2),
        MHD_OPTION_CONNECTION_LIMIT,
        o->max_connections ? o->max_connections : 1024u, MHD_OPTION_CONNECTION_TIMEOUT,
        o->timeout_s ? o->timeout_s : 60u, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(o->max_header ? 2 * o->max_header + 8192 : 40 * 1024), MHD_OPTION_NOTIFY_COMPLETED, completed_cb, srv,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, NULL, MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, notify_conn_cb, srv,
        MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!srv->d) {
        if (srv->tls_cert)
            rc = gx_error_set(err, GX_EIO, "tls.cert",
                              "cannot start HTTPS on %s (address in use, or tls.cert/tls.key refused by GnuTLS)",
                              o->listen);
        else
            rc = gx_error_set(err, GX_EIO, "listen", "cannot listen on %s (address in use or not allowed)",
                              o->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : 0;
    if (!srv->port && o->listen_fd > 0) { /* an inherited socket */
        struct sockaddr_storage bound;
        socklen_t bl = sizeof bound;
        if (!getsockname(o->listen_fd, (struct sockaddr *)&bound, &bl))
            srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                          : ((struct sockaddr_in *)&bound)->sin_port);
    }
    if (pthread_create(&srv->keeper, NULL, keeper_main, srv)) {
        rc = gx_error_set(err, GX_ENOMEM, NULL, "cannot start the stream keeper thread");
        /* a socket the caller gave stays the caller's to close */
        MHD_socket ls = MHD_quiesce_daemon(srv->d);
        MHD_stop_daemon(srv->d);
        if (o->listen_fd <= 0 && ls != MHD_INVALID_SOCKET) close(ls);
        goto fail;
    }
    srv->keeper_on = 1;
    *out = srv;
    return 0;
fail:
    server_free(srv);
    return rc;
}

int gx_http_port(const gx_http_server *s) { return s->port; }

void gx_http_quiesce(gx_http_server *s) {
    if (s) atomic_store(&s->quiesced, 1);
}

int gx_http_quiesce_keep(gx_http_server *s) {
    if (!s || !s->d) return -1;
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    return fd == MHD_INVALID_SOCKET ? -1 : (int)fd;
}

int gx_http_wait_idle(gx_http_server *s, int ms) {
    for (int waited = 0; s && s->d; waited += 5) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!di || !di->num_connections) return 1;
        if (waited >= ms) return 0;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

void gx_http_wake_streams(gx_http_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    for (gx_http_stream *st = s->streams; st; st = st->next) gx_http_stream_wake(st);
    pthread_mutex_unlock(&s->mu);
}

void gx_http_stop(gx_http_server *s) {
    if (!s) return;
    keeper_stop(s);
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    for (gx_http_stream *st = s->streams; st; st = st->next) gx_http_stream_wake(st);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    server_free(s);
}
