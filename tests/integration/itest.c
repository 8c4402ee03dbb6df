/*
 * itest.c - see itest.h.
 */
#include "itest.h"

#include "gexec/gexec_auth.h"

#include <curl/curl.h>
#include <sqlite3.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    int p = ntohs(a.sin_port);
    close(fd);
    return p;
}

static void msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int start_once(it_daemon *d);

/* Retried on a fresh port when the daemon exits at once: another test may
 * have taken the port between our probe and its bind. */
int it_start(it_daemon *d) {
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc = start_once(d);
        if (rc != -2) return rc;
    }
    return -1;
}

static int start_once(it_daemon *d) {
    if (!d->dir[0]) {
        snprintf(d->dir, sizeof d->dir, "/tmp/gx-it-XXXXXX");
        if (!mkdtemp(d->dir)) return -1;
    }
    if (!d->key[0] && gx_auth_key_generate(d->key, NULL, NULL)) return -1;
    d->port = free_port();
    snprintf(d->url, sizeof d->url, "http://127.0.0.1:%d", d->port);
    snprintf(d->log, sizeof d->log, "%s/gexecd.log", d->dir);
    char exe[512];
    const char *bd = getenv("GX_BUILD_DIR");
    snprintf(exe, sizeof exe, "%s/gexecd", bd ? bd : ".");
    d->pid = fork();
    if (d->pid < 0) return -1;
    if (d->pid == 0) {
        char listen[64], data[300], key[100];
        snprintf(key, sizeof key, "GEXEC_ADMIN_KEY=%s", d->key);
        putenv(key);
        snprintf(listen, sizeof listen, "GEXEC_LISTEN=127.0.0.1:%d", d->port);
        snprintf(data, sizeof data, "GEXEC_DATA_DIR=%s/data", d->dir);
        putenv(listen);
        putenv(data);
        putenv("GEXEC_SHUTDOWN_TIMEOUT=5s");
        for (int i = 0; i < 8 && d->extra_env[i]; i++) putenv((char *)d->extra_env[i]);
        /* stdout too: an inherited pipe would keep ctest waiting */
        FILE *f = freopen(d->log, "a", stderr);
        (void)f;
        dup2(2, 1);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        execl(exe, "gexecd", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1500; i++) { /* 30 s: a loaded machine */
        it_resp r;
        if (!it_req(d, "GET", d->ready_path ? d->ready_path : "/readyz", NULL, 0, NULL, &r) && r.status == 200) {
            it_resp_free(&r);
            return 0;
        }
        it_resp_free(&r);
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            fprintf(stderr, "gexecd exited early (status %d); log %s\n", st, d->log);
            d->pid = 0;
            return -2;
        }
        msleep(20);
    }
    return -1;
}

int it_stop(it_daemon *d) {
    if (d->pid <= 0) return 0;
    kill(d->pid, SIGTERM);
    int st = 0;
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void it_kill9(it_daemon *d) {
    if (d->pid <= 0) return;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
}

int it_finish(it_daemon *d) {
    int rc = it_stop(d);
    it_cleanup(d);
    return rc;
}

struct sqlite3 *it_store_open(const it_daemon *d, int writable) {
    char path[400];
    snprintf(path, sizeof path, "%s/data/gexec.db", d->dir);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

void it_cleanup(it_daemon *d) {
    if (!d->dir[0]) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd)) {
    }
    d->dir[0] = '\0';
}

static size_t on_body(char *p, size_t sz, size_t n, void *ctx) {
    it_resp *r = ctx;
    size_t k = sz * n;
    char *nb = realloc(r->body, r->len + k + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx) {
    it_resp *r = ctx;
    size_t k = sz * n, have = strlen(r->headers);
    if (have + k + 1 < sizeof r->headers) {
        memcpy(r->headers + have, p, k);
        r->headers[have + k] = '\0';
    }
    return k;
}

int it_req(it_daemon *d, const char *method, const char *path, const char *body, size_t len, const char *ctype,
           it_resp *r) {
    return it_req_ex(d, method, path, body, len, ctype, NULL, r);
}

int it_req_ex(it_daemon *d, const char *method, const char *path, const char *body, size_t len, const char *ctype,
              const char *const *headers, it_resp *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    char url[2048];
    snprintf(url, sizeof url, "%s%s", d->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L); /* no body follows the headers */
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *h = NULL;
    char ct[128];
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
        h = curl_slist_append(h, ct);
    }
    h = curl_slist_append(h, "Expect:");
    for (const char *const *x = headers; x && *x; x++) h = curl_slist_append(h, *x);
    const char *key = d->use_key ? d->use_key : d->key;
    char auth[128];
    if (*key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) return -1;
    if (r->body) r->json = json_loadb(r->body, r->len, 0, NULL);
    return 0;
}

void it_header(const it_resp *r, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    size_t nl = strlen(name);
    for (const char *p = r->headers; (p = strchr(p, '\n'));) {
        p++;
        if (!strncasecmp(p, name, nl) && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ') p++;
            size_t n = strcspn(p, "\r\n");
            snprintf(out, cap, "%.*s", (int)n, p);
            return;
        }
    }
}

void it_resp_free(it_resp *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *it_str(const it_resp *r, const char *path) {
    json_t *v = r->json;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *save;
    for (char *t = strtok_r(buf, ".", &save); t && v; t = strtok_r(NULL, ".", &save)) v = json_object_get(v, t);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *it_wait_job(it_daemon *d, const char *id, int timeout_ms) {
    static char state[32];
    char path[64];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int t = 0; t < timeout_ms; t += 10) {
        it_resp r;
        if (!it_req(d, "GET", path, NULL, 0, NULL, &r) && r.status == 200) {
            const char *s = it_str(&r, "state");
            snprintf(state, sizeof state, "%s", s ? s : "?");
            it_resp_free(&r);
            if (!strcmp(state, "succeeded") || !strcmp(state, "failed") || !strcmp(state, "cancelled") ||
                !strcmp(state, "timed_out") || !strcmp(state, "dead"))
                return state;
        } else {
            it_resp_free(&r);
        }
        msleep(10);
    }
    return "timeout";
}

long it_submit(it_daemon *d, const char *body, char *id, size_t cap) {
    it_resp r;
    if (it_req(d, "POST", "/v1/jobs", body, strlen(body), NULL, &r)) return -1;
    long st = r.status;
    const char *v = st == 202 ? it_str(&r, "id") : NULL;
    snprintf(id, cap, "%s", v ? v : "");
    it_resp_free(&r);
    return st;
}
