/*
 * fakehttp.c - see fakehttp.h. Included by the tests that use it (the test
 * CMake rule links only testutil.c besides the test file).
 */
#include "fakehttp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char *memdup0(const void *p, size_t n) {
    char *d = malloc(n + 1);
    if (!d) abort();
    if (n) memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Serve requests on one connection until the peer closes it. */
static void serve(fakehttp *f, int fd) {
    static char buf[1 << 16];
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof buf) return;
            /* idle with another client knocking: drop this connection (a
             * kept-alive client reconnects) so one thread can serve both */
            struct pollfd pf[2] = {{fd, POLLIN, 0}, {f->lfd, POLLIN, 0}};
            if (poll(pf, 2, 100) <= 0 || !(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (__atomic_load_n(&f->stop, __ATOMIC_RELAXED) || (have == 0 && (pf[1].revents & POLLIN))) return;
                continue;
            }
            ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
            if (r <= 0) return;
            have += (size_t)r;
        }
        size_t hlen = (size_t)(end - buf) + 4;
        size_t clen = 0;
        for (char *p = buf; p < end; p++)
            if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15))
                clen = strtoul(p + 15, NULL, 10);
        while (have < hlen + clen) {
            ssize_t r = recv(fd, buf + have, sizeof buf - have, 0);
            if (r <= 0) return;
            have += (size_t)r;
        }
        pthread_mutex_lock(&f->mu);
        if (f->nreq < FH_MAX) {
            fh_req *q = &f->req[f->nreq++];
            q->head = memdup0(buf, hlen);
            q->body = memdup0(buf + hlen, clen);
            q->len = clen;
        }
        fh_resp r = {500, NULL, "{\"error\":{\"code\":\"GX_EIO\",\"message\":\"no scripted answer\"}}", 0, 0};
        int scripted = f->next < f->nresp;
        if (scripted) r = f->resp[f->next++];
        size_t blen = scripted ? r.len : strlen(r.body);
        /* own copies: the test may reset the script while this is sent */
        char *hcopy = r.headers ? memdup0(r.headers, strlen(r.headers)) : NULL;
        char *bcopy = memdup0(r.body ? r.body : "", blen);
        r.headers = hcopy;
        r.body = bcopy;
        pthread_mutex_unlock(&f->mu);
        char head[1024];
        int n;
        if (r.close)
            n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nConnection: close\r\n%s\r\n", r.status,
                         r.headers ? r.headers : "");
        else
            n = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", r.status,
                         blen, r.headers ? r.headers : "");
        int werr = write_all(fd, head, (size_t)n) || write_all(fd, r.body ? r.body : "", blen);
        free(hcopy);
        free(bcopy);
        if (werr) return;
        if (r.close == 2) { /* a quiet stream: hold it until the client leaves */
            char tmp[256];
            while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
                struct pollfd pf = {fd, POLLIN, 0};
                if (poll(&pf, 1, 50) > 0 && recv(fd, tmp, sizeof tmp, 0) <= 0) break;
            }
        }
        if (r.close) return;
        memmove(buf, buf + hlen + clen, have - hlen - clen);
        have -= hlen + clen;
    }
}

static void *run(void *arg) {
    fakehttp *f = arg;
    while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
        struct pollfd pf = {f->lfd, POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_mutex_lock(&f->mu);
        f->conns++;
        pthread_mutex_unlock(&f->mu);
        serve(f, fd);
        close(fd);
    }
    return NULL;
}

fakehttp *fh_start(void) {
    fakehttp *f = calloc(1, sizeof *f);
    if (!f) abort();
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) || listen(f->lfd, 16) ||
        getsockname(f->lfd, (struct sockaddr *)&a, &al))
        abort();
    f->port = ntohs(a.sin_port);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", f->port);
    pthread_create(&f->th, NULL, run, f);
    return f;
}

void fh_reset(fakehttp *f) {
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->nresp; i++) {
        free(f->resp[i].headers);
        free(f->resp[i].body);
    }
    for (int i = 0; i < f->nreq; i++) {
        free(f->req[i].head);
        free(f->req[i].body);
    }
    f->nresp = f->next = f->nreq = 0;
    f->conns = 0;
    pthread_mutex_unlock(&f->mu);
}

void fh_stop(fakehttp *f) {
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
    pthread_join(f->th, NULL);
    close(f->lfd);
    fh_reset(f);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void fh_push(fakehttp *f, int status, const char *headers, const char *body, size_t len,
             int close) {
    pthread_mutex_lock(&f->mu);
    if (f->nresp < FH_MAX) {
        fh_resp *r = &f->resp[f->nresp++];
        r->status = status;
        r->headers = headers ? memdup0(headers, strlen(headers)) : NULL;
        r->len = body ? (len ? len : strlen(body)) : 0;
        r->body = memdup0(body ? body : "", r->len);
        r->close = close;
    }
    pthread_mutex_unlock(&f->mu);
}

const fh_req *fh_req_at(fakehttp *f, int i) {
    pthread_mutex_lock(&f->mu);
    const fh_req *q = i < f->nreq ? &f->req[i] : NULL;
    pthread_mutex_unlock(&f->mu);
    return q;
}
