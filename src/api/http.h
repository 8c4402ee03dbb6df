/*
 * http.h - the HTTP layer of gexecd: a libmicrohttpd server (poll, thread
 * pool) that turns requests into calls of handlers from a route table.
 *
 * Handlers never see sockets or MHD: they get a gx_http_req with the method,
 * path parameters, query, headers and the whole body, and answer with
  * gx_http_reply and gx_http_error. A handler that must wait (a durable commit)
 * returns GX_HTTP_ASYNC and later calls gx_http_complete from any thread;
 * the connection is suspended meanwhile, so a small thread pool serves
 * thousands of waiting requests. Streams (server-sent events) pull data
 * through a reader that may report "nothing yet"; the stream is then
 * suspended until gx_http_stream_wake.
 */
#ifndef GX_HTTP_H
#define GX_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "gexec/gexec_err.h"

#define GX_HTTP_ASYNC 1
#define GX_HTTP_MAX_PARAMS 4

typedef struct gx_http_server gx_http_server;
typedef struct gx_http_req gx_http_req;

typedef int (*gx_http_handler)(void *app, gx_http_req *r);

typedef struct gx_route {
    const char *method;  /* "GET", "POST", "DELETE" */
    const char *pattern; /* "/v1/jobs/{id}/result"; a segment "{x}" captures */
    gx_http_handler fn;
    const char *summary; /* for docs and the OpenAPI check */
    const char *const *types; /* the body's media types it takes (NULL-ended),
                                 checked before the body with Expect: 100-continue;
                                 NULL: not checked there */
} gx_route;

/* What the auth layer knows about the caller (filled before handlers run;
 * until keys exist every request acts as the configured tenant). */
typedef struct gx_req_ctx {
    char tenant[64];
    char role[16];  /* admin | operator | submitter | viewer */
    char key_id[32];
    int64_t key_expires_ns; /* the key's expiry (CLOCK_REALTIME ns); 0 = never */
    int cross;      /* 1: the role reaches every tenant's objects on this route */
    long count;     /* jobs in a batch submission (for the audit); 0 otherwise */
} gx_req_ctx;

struct gx_http_req {
    const char *method;
    const char *path;
    const gx_route *route;          /* matched route */
    const char *route_label;        /* for metrics, when the request ends: route's
                                       pattern, or one of its path's (a 405, a
                                       refusal on the headers); NULL: no route */
    const char *params[GX_HTTP_MAX_PARAMS]; /* captured path segments */
    int nparams;
    const char *body;               /* the whole body ("" when none), NUL-terminated */
    size_t body_len;
    char request_id[24];
    char remote[64];                /* client address */
    gx_req_ctx ctx;
    int status;                     /* response status once replied */
    int audited;                    /* its audit record is written (a group's, by the admitter) */
    uint64_t job_lo, job_hi;        /* the jobs a submission was answered with (its audit target); 0: none */
    void *user;                     /* handler's own state across ASYNC */
    struct gx_http_req_priv *priv;
};

typedef struct gx_http_opts {
    const char *listen;     /* "host:port" (port 0 = any free port) */
    int threads;            /* worker threads (thread pool), >= 1 */
    size_t max_body;        /* bytes; larger bodies answer 413 */
    size_t max_header;      /* bytes of request line + headers */
    unsigned max_connections;
    unsigned timeout_s;     /* idle connection timeout */
    unsigned max_per_client; /* connections per client address; 0 = no limit */
    int64_t request_timeout_ms; /* to receive a whole request; 0 = none */
    int64_t stream_heartbeat_ms; /* a sleeping stream's heartbeat line; 0 = none */
    const char *tls_cert;   /* PEM files; both set: HTTPS (TLS 1.2 and 1.3) */
    const char *tls_key;
    const gx_route *routes;
    int nroutes;
    void *app;              /* passed to handlers */
    /* Called once per finished request (metrics, access log). */
    void (*on_done)(void *app, const gx_http_req *r, double seconds);
    /* Called after routing (r->route NULL when no route matched, before the
     * 404/405 answer); may reply (auth failure) and return nonzero. */
    int (*pre)(void *app, gx_http_req *r);
    int listen_fd;          /* > 0: an inherited listening socket to serve
                               (gexecd's re-exec); listen is then not bound */
} gx_http_opts;

int gx_http_start(const gx_http_opts *o, gx_http_server **out, gx_error *err);
/* Read and check the TLS certificate and key files (readable PEM, the key
 * matches the certificate, libmicrohttpd has TLS). On success *cert_pem and
 * *key_pem are malloc'd NUL-terminated contents the caller frees; on error
 * the message and err->field name the key (tls.cert, tls.key). */
int gx_http_tls_load(const char *cert_path, const char *key_path, char **cert_pem, char **key_pem, gx_error *err);
/* Stop accepting new connections (graceful drain starts): a connection made
 * from now on is closed at once. */
void gx_http_quiesce(gx_http_server *s);
/* For a restart: stop accepting but keep the listening socket open and
 * return it (-1 if none): the caller owns it (gexecd hands it to its next
 * image across execv); connections made meanwhile wait in its backlog. */
int gx_http_quiesce_keep(gx_http_server *s);
/* After a quiesce: wait up to ms for the open connections to close (the
 * answers in flight to be written). 1 when none is left. */
int gx_http_wait_idle(gx_http_server *s, int ms);
/* Wake every open stream: each runs its reader again (one that has ended
 * answers -1, and its client gets the stream's end). */
void gx_http_wake_streams(gx_http_server *s);
/* Stop and free; waits for handler threads. */
void gx_http_stop(gx_http_server *s);
int gx_http_port(const gx_http_server *s);

/* Request accessors (valid during the request). */
const char *gx_http_query(gx_http_req *r, const char *key);
/* Every value of a repeated query parameter, in order: up to max into out;
 * how many there are (may exceed max). */
int gx_http_query_all(gx_http_req *r, const char *key, const char **out, int max);
const char *gx_http_header(gx_http_req *r, const char *name);

/* Responses. Body ownership passes to the server (free()d). */
void gx_http_reply(gx_http_req *r, int status, const char *ctype, char *body, size_t len);
void gx_http_reply_json(gx_http_req *r, int status, json_t *j); /* steals j */
void gx_http_reply_file(gx_http_req *r, int status, const char *ctype, int fd, uint64_t size);
/* {"error":{"code","message","field"}}; field may be NULL. */
void gx_http_error(gx_http_req *r, int status, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Adds a response header (at most 4), or replaces one added before under
 * the same name. gx_http_error adds "Retry-After: 1" to every 503. */
void gx_http_header_add(gx_http_req *r, const char *name, const char *value);
/* Sends the headers of list with the response: name, value, name, value,
 * ..., NULL. Neither the list nor its strings are copied: they must live
 * as long as the server (static tables), which is what lets them be many
 * and long (a Content-Security-Policy). One list per response; a later
 * call replaces it. They come after those of gx_http_header_add. */
void gx_http_header_list(gx_http_req *r, const char *const *list);

/* Finish an ASYNC request after gx_http_reply*: any thread. */
void gx_http_complete(gx_http_req *r);

/* Streams: reader fills buf and returns bytes, 0 for "nothing now" (the
 * stream sleeps until gx_http_stream_wake), or -1 to end. free_fn releases
 * ctx when the client goes away or the stream ends. */
typedef long (*gx_http_reader)(void *ctx, char *buf, size_t max);
void gx_http_reply_stream(gx_http_req *r, const char *ctype, gx_http_reader reader, void *ctx,
                          void (*free_fn)(void *ctx));
/* Handle for waking a stream from other threads; valid until free_fn. */
typedef struct gx_http_stream gx_http_stream;
gx_http_stream *gx_http_stream_of(gx_http_req *r);
void gx_http_stream_wake(gx_http_stream *s);
/* Bind and listen on "host:port" now (close-on-exec), for
 * gx_http_opts.listen_fd: a daemon that cannot have its address fails
 * before it touches any job. 0, or GX_EINVAL / GX_EIO with err set. */
int gx_http_listen(const char *listen, int *fd, gx_error *err);

/* A line (static text) the stream sends when it has had nothing to send
 * for stream_heartbeat_ms. Whatever it is set to, a sleeping stream whose
 * client closed its end is closed within about a second. */
void gx_http_stream_heartbeat(gx_http_stream *s, const char *line);

/* Match method and path against a route table. Path segments are split
 * into buf (bufcap bytes, which params then point into). Returns 0 with
 * *out and params set, 404 when no pattern matches the path, or 405 when
 * only other methods do (allow, if allowcap, lists them). Pure: safe on any
 * input. */
int gx_http_route_match(const gx_route *routes, int nroutes, const char *method, const char *path, char *buf,
                        size_t bufcap, const gx_route **out, const char **params, int *nparams, char *allow,
                        size_t allowcap);
/* The pattern of the first route whose path matches path, whatever its
 * method; NULL when none does. */
const char *gx_http_path_pattern(const gx_route *routes, int nroutes, const char *path);

/* 1 when the request's Content-Type is want (parameters aside) or absent. */
int gx_http_ctype_is(gx_http_req *r, const char *want);

/* HTTP status for a GX_E* code at the API edge. */
int gx_http_status_for(int code);

#endif
