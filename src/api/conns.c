/*
 * conns.c - connections per client address and request deadlines. See
 * conns.h.
 *
 * The book is a doubly linked list of open connections (the reaper walks
 * it) plus a map from client address bytes to the number of connections
 * that address holds. An IPv4 peer seen through an IPv6 socket
 * (::ffff:a.b.c.d) counts as the IPv4 address.
 *
 * Why the reaper may shut a socket down safely: libmicrohttpd reports
 * MHD_CONNECTION_NOTIFY_CLOSED (gx__conn_close, which takes the book's lock)
 * before it closes the socket, so while the reaper holds the lock and finds
 * the record, the descriptor still belongs to that connection.
 */
#include "conns.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "gexec/gexec_err.h"
#include "hmap.h"
#include "log.h"

enum { PH_WAIT, PH_BODY, PH_BUSY }; /* waiting for a request, its body, or serving it */

struct gx__conn {
    unsigned char addr[16]; /* address bytes (4 for IPv4) */
    size_t alen;
    int fd;
    int phase;              /* PH_* */
    int excess;             /* opened beyond the per-client limit */
    int cut;                /* the reaper shut it down already */
    int64_t since_ns;       /* start of the current wait (PH_WAIT, PH_BODY) */
    struct gx__conn *prev, *next;
};

struct gx__conns {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* wakes the reaper to stop */
    gx__hmap per_addr;      /* address bytes -> open connections */
    gx__conn *list;
    unsigned per_client;    /* 0 = no limit */
    int64_t timeout_ns;     /* 0 = none */
    int stop;
    int reaper_on;
    pthread_t reaper;
};

/* A trickled body gets this long past the deadline for its 408 answer
 * (http.c sends it when the next piece arrives) before the cut. */
#define BODY_GRACE_NS INT64_C(1000000000)
/* An excess connection that sends no request within this long is cut: a
 * client must not hold slots of http.max_connections beyond its own limit
 * by staying silent (one that asks gets its 429 at once). */
#define EXCESS_GRACE_NS INT64_C(1000000000)

static void *reaper_main(void *arg);

int gx__conns_new(unsigned per_client, int64_t request_timeout_ms, gx__conns **out) {
    gx__conns *t = calloc(1, sizeof *t);
    if (!t) return GX_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->per_client = per_client;
    t->timeout_ns = request_timeout_ms > 0 ? request_timeout_ms * 1000000 : 0;
    if (t->timeout_ns || per_client) {
        if (pthread_create(&t->reaper, NULL, reaper_main, t)) {
            gx__conns_free(t);
            return GX_ENOMEM;
        }
        t->reaper_on = 1;
    }
    *out = t;
    return 0;
}

void gx__conns_free(gx__conns *t) {
    if (!t) return;
    if (t->reaper_on) {
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->reaper, NULL);
    }
    while (t->list) gx__conn_close(t, t->list); /* none expected */
    gx__hmap_free(&t->per_addr);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void addr_key(const struct sockaddr *sa, gx__conn *c) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    c->alen = 0;
    if (!sa) return;
    if (sa->sa_family == AF_INET) {
        memcpy(c->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        c->alen = 4;
    } else if (sa->sa_family == AF_INET6) {
        const unsigned char *b = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (!memcmp(b, mapped, 12)) {
            memcpy(c->addr, b + 12, 4);
            c->alen = 4;
        } else {
            memcpy(c->addr, b, 16);
            c->alen = 16;
        }
    }
}

gx__conn *gx__conn_open(gx__conns *t, const struct sockaddr *addr, int fd) {
    gx__conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    addr_key(addr, c);
    c->fd = fd;
    c->phase = PH_WAIT;
    c->since_ns = gx__now_ns();
    pthread_mutex_lock(&t->mu);
    if (c->alen) {
        uint64_t n = 0;
        gx__hmap_get(&t->per_addr, c->addr, c->alen, &n);
        if (gx__hmap_put(&t->per_addr, c->addr, c->alen, n + 1)) {
            c->alen = 0; /* out of memory: not counted */
        } else {
            c->excess = t->per_client && n + 1 > t->per_client;
        }
    }
    c->next = t->list;
    if (c->next) c->next->prev = c;
    t->list = c;
    pthread_mutex_unlock(&t->mu);
    return c;
}

void gx__conn_close(gx__conns *t, gx__conn *c) {
    if (!c) return;
    pthread_mutex_lock(&t->mu);
    if (c->alen) {
        uint64_t n = 0;
        if (gx__hmap_get(&t->per_addr, c->addr, c->alen, &n) && n > 1)
            gx__hmap_put(&t->per_addr, c->addr, c->alen, n - 1); /* replaces: no allocation */
        else
            gx__hmap_del(&t->per_addr, c->addr, c->alen);
    }
    if (c->prev) c->prev->next = c->next;
    else t->list = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&t->mu);
    free(c);
}

int gx__conn_excess(gx__conns *t, const gx__conn *c, unsigned *count) {
    if (!c || !c->excess) return 0;
    uint64_t n = 0;
    pthread_mutex_lock(&t->mu);
    gx__hmap_get(&t->per_addr, c->addr, c->alen, &n);
    pthread_mutex_unlock(&t->mu);
    if (count) *count = (unsigned)n;
    return 1;
}

static void set_phase(gx__conns *t, gx__conn *c, int phase, int restart) {
    if (!c) return;
    pthread_mutex_lock(&t->mu);
    c->phase = phase;
    if (restart) c->since_ns = gx__now_ns();
    pthread_mutex_unlock(&t->mu);
}

void gx__conn_headers(gx__conns *t, gx__conn *c) { set_phase(t, c, PH_BODY, 1); }
void gx__conn_dispatched(gx__conns *t, gx__conn *c) { set_phase(t, c, PH_BUSY, 0); }
void gx__conn_idle(gx__conns *t, gx__conn *c) { set_phase(t, c, PH_WAIT, 1); }

int gx__conn_late(gx__conns *t, const gx__conn *c) {
    if (!c || !t->timeout_ns) return 0;
    pthread_mutex_lock(&t->mu);
    int late = c->phase != PH_BUSY && gx__now_ns() - c->since_ns > t->timeout_ns;
    pthread_mutex_unlock(&t->mu);
    return late;
}

/* Shut down the sockets of connections past their deadline, a few times a
 * second (a quarter of the timeout when that is shorter). */
static void *reaper_main(void *arg) {
    gx__conns *t = arg;
    int64_t tick = t->timeout_ns ? t->timeout_ns / 4 : 250000000;
    if (tick > 250000000) tick = 250000000;
    if (tick < 10000000) tick = 10000000;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + tick;
        ts.tv_sec = (time_t)(at / 1000000000);
        ts.tv_nsec = (long)(at % 1000000000);
        pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        if (t->stop) break;
        int64_t now = gx__now_ns();
        for (gx__conn *c = t->list; c; c = c->next) {
            if (c->cut || c->phase == PH_BUSY) continue;
            int64_t limit;
            if (c->excess && c->phase == PH_WAIT)
                limit = t->timeout_ns && t->timeout_ns < EXCESS_GRACE_NS ? t->timeout_ns : EXCESS_GRACE_NS;
            else if (t->timeout_ns)
                limit = t->timeout_ns + (c->phase == PH_BODY ? BODY_GRACE_NS : 0);
            else
                continue;
            if (now - c->since_ns <= limit) continue;
            c->cut = 1;
            shutdown(c->fd, SHUT_RDWR);
            gx_log(GX_LOG_DEBUG, NULL, "http: cut a connection %s",
                   c->excess ? "beyond its client's limit that sent no request" : "whose request came too slowly");
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}
