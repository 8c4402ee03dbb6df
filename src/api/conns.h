/*
 * conns.h - the HTTP server's book of open connections: how many each client
 * address holds (http.max_connections_per_client) and how long each has been
 * waiting for its current request to arrive (http.request_timeout).
 *
 * libmicrohttpd tells http.c when a connection opens and closes; http.c
 * registers it here and marks the request phases: the headers must arrive
 * within the timeout from the connection's opening or its previous
 * response, the body within the timeout from the headers. A connection is "excess"
 * when it was opened while its address already held the limit: its first
 * request is answered 429 and the connection closed (clearer than a silent
 * drop at accept); one that sends no request within a second is cut. A
 * reaper thread shuts down the socket of a connection
 * whose request did not arrive in full within the timeout (slowloris): MHD
 * then sees the socket end and closes the connection itself. Where the
 * headers are in and the body trickles, http.c answers 408 first (the reaper
 * waits one more second for that).
 *
 * Thread-safety: every function may be called from any thread; one mutex
 * guards the book. The records are owned by the book: gx__conn_open's result
 * is valid until gx__conn_close.
 */
#ifndef GX_API_CONNS_H
#define GX_API_CONNS_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct gx__conns gx__conns;
typedef struct gx__conn gx__conn;

/* per_client 0 = no limit; request_timeout_ms 0 = none (no reaper thread
 * when both are off).
 * Returns 0 or GX_ENOMEM. Free with gx__conns_free. */
int gx__conns_new(unsigned per_client, int64_t request_timeout_ms, gx__conns **out);
/* Stop the reaper and free the book; every connection must be closed. */
void gx__conns_free(gx__conns *t);

/* A connection from addr opened on socket fd. NULL when out of memory (the
 * connection is then neither counted nor timed). */
gx__conn *gx__conn_open(gx__conns *t, const struct sockaddr *addr, int fd);
/* It closed: uncount it and free the record. NULL is fine. */
void gx__conn_close(gx__conns *t, gx__conn *c);

/* Opened beyond its address's limit; *count gets the connections that
 * address holds now (for the message). */
int gx__conn_excess(gx__conns *t, const gx__conn *c, unsigned *count);
/* The request's headers are in: its body may still be arriving, and gets a
 * timeout of its own from now. */
void gx__conn_headers(gx__conns *t, gx__conn *c);
/* The request arrived in full: no timer until the response has gone. */
void gx__conn_dispatched(gx__conns *t, gx__conn *c);
/* The response went: the timer starts again for the next request. */
void gx__conn_idle(gx__conns *t, gx__conn *c);
/* The current request has run past the timeout. */
int gx__conn_late(gx__conns *t, const gx__conn *c);

#endif
