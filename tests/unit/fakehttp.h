/*
 * fakehttp.h - a scripted HTTP/1.1 server on 127.0.0.1 for client tests.
 *
 * The server answers requests, in arrival order, with the responses queued
 * by fh_push, and records each request (head and body) for the test to
 * inspect. It serves keep-alive connections one at a time on a thread.
 * A response pushed with close=1 has no Content-Length and ends its
 * connection (what a server-sent event stream looks like). Test-only code:
 * requests must be small (64 KiB) and well formed.
 */
#ifndef GX_FAKEHTTP_H
#define GX_FAKEHTTP_H

#include <pthread.h>
#include <stddef.h>

#define FH_MAX 64

typedef struct fh_resp {
    int status;
    char *headers; /* extra header lines, each ending in \r\n */
    char *body;
    size_t len;
    int close;     /* 1: stream-style, no Content-Length, close after the
                      body; 2: same but hold the connection open after it */
} fh_resp;

typedef struct fh_req {
    char *head;    /* request line and headers */
    char *body;    /* NUL-terminated */
    size_t len;
} fh_req;

typedef struct fakehttp {
    int lfd;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    fh_resp resp[FH_MAX];
    int nresp, next;
    fh_req req[FH_MAX];
    int nreq;
    int conns;     /* connections accepted */
    int stop;      /* set by fh_stop, polled by the server thread: atomic */
    char url[64];  /* "http://127.0.0.1:PORT" */
} fakehttp;

/* Start on a free port. */
fakehttp *fh_start(void);
/* Stop, join, free everything. */
void fh_stop(fakehttp *f);
/* Queue a response (copied). body may be binary when len > 0; len 0 means
 * strlen(body). */
void fh_push(fakehttp *f, int status, const char *headers, const char *body, size_t len,
             int close);
/* The i-th request seen (NULL if none yet). */
const fh_req *fh_req_at(fakehttp *f, int i);
/* Forget requests and queued responses. */
void fh_reset(fakehttp *f);

#endif
