/*
 * ceiling.c - the "ceiling" server of the HTTP benchmark (bench/http/run.sh):
 * the least a server on gexecd's HTTP library can do for a job submission.
 *
 *   ceiling PORT
 *
 * libmicrohttpd configured as gexecd's http.c configures it (internal
 * polling thread pool of 2, poll, suspend/resume allowed, turbo, the same
 * connection limit, timeout, memory limit and backlog); every request's
 * body is collected, parsed with jansson and checked to be an object with
 * a "kernel" string, then answered 202 with a fixed small JSON object. No
 * store, no engine, no routing: gexecd's single-job POST is compared with
 * this on the same machine in the same run.
 */
#include <jansson.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_BODY (64u << 20)

static const char REPLY[] = "{\"id\":\"1\",\"state\":\"queued\"}";
static const char BAD[] = "{\"error\":{\"code\":\"GX_EINVAL\",\"message\":\"bad job\"}}";

typedef struct req {
    char *body;
    size_t len, cap;
} req;

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *data, size_t *size, void **con_cls) {
    (void)cls, (void)url, (void)version;
    req *q = *con_cls;
    if (!q) {
        q = calloc(1, sizeof *q);
        if (!q) return MHD_NO;
        *con_cls = q;
        return MHD_YES;
    }
    if (*size) {
        if (q->len + *size + 1 > MAX_BODY) return MHD_NO;
        if (q->len + *size + 1 > q->cap) {
            size_t nc = q->cap ? q->cap : 4096;
            while (nc < q->len + *size + 1) nc *= 2;
            char *nb = realloc(q->body, nc);
            if (!nb) return MHD_NO;
            q->body = nb;
            q->cap = nc;
        }
        memcpy(q->body + q->len, data, *size);
        q->len += *size;
        *size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST")) return answer(c, 200, "{\"status\":\"ok\"}");
    json_error_t je;
    json_t *j = q->len ? json_loadb(q->body, q->len, JSON_REJECT_DUPLICATES, &je) : NULL;
    int ok = json_is_object(j) && json_is_string(json_object_get(j, "kernel"));
    json_decref(j);
    return ok ? answer(c, 202, REPLY) : answer(c, 400, BAD);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t) {
    (void)cls, (void)c, (void)t;
    req *q = *con_cls;
    if (!q) return;
    free(q->body);
    free(q);
    *con_cls = NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ceiling PORT\n");
        return 2;
    }
    unsigned port = (unsigned)atoi(argv[1]);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* as gexecd's gx_http_start with its defaults (http.threads 2 on the
     * benchmark machine, max_connections 1024, timeout 30 s, headers 16 KiB:
     * a memory pool of twice that plus 8 KiB per connection) */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
            MHD_USE_TURBO,
        0, NULL, NULL, access_cb, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_LIMIT,
        1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2 * 16 * 1024 + 8192),
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "ceiling: cannot listen on port %u\n", port);
        return 1;
    }
    fprintf(stderr, "ceiling: listening on 127.0.0.1:%u\n", port);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
