/*
 * test_device_restart.c - gexecd restarts itself when a device is lost.
 *
 * A real gexecd whose CPU device takes an injected sticky fault (device.launch
 * code 46: the device cannot be reset in this process, as a GPU after an
 * illegal address on an H100). GEXEC_INJECT_FAULT arms it in the first image
 * only (or, with ":keep", in every image). Checked: the daemon re-executes
 * itself (same pid, restarts counted), clients that keep submitting through
 * the restart never see a refused connection, every job answered 202 ends
 * succeeded (the faulting one re-run), a job that faults in every image is
 * dead after engine.poison_faults restarts, the restart-loop guard stops
 * after 3 restarts, leaving the device unhealthy with the reason, and
 * engine.restart_on_device_loss: false leaves it unhealthy at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "itest.h"

#define JOB_BODY                                                                                               \
    "{\"kernel\":\"saxpy\",\"args\":{\"a\":2},\"inputs\":{\"x\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[1,2,3]}," \
    "\"y\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[10,20,30]}}}"

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a raw HTTP client: one connection per request, so that a refused
 * connection is seen as such (libcurl would hide it behind a retry) ---- */

typedef struct raw_stats {
    atomic_int refused;   /* connect() answered ECONNREFUSED */
    atomic_int other_err; /* reset or no answer */
    atomic_int unavailable; /* 503 while draining: retried */
    atomic_llong max_us;  /* slowest request (connect to answer) */
} raw_stats;

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* POST JOB_BODY; 0 and *status (and id for a 202), or -1. */
static int raw_submit(const it_daemon *d, raw_stats *st, int *status, char *id, size_t cap) {
    int64_t t0 = mono_us();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct timeval tv = {30, 0}; /* bounded: a restart takes well under a second */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        if (errno == ECONNREFUSED) atomic_fetch_add(&st->refused, 1);
        else atomic_fetch_add(&st->other_err, 1);
        close(fd);
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     d->key, strlen(JOB_BODY), JOB_BODY);
    char resp[8192];
    size_t got = 0;
    int ok = send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
    while (ok && got < sizeof resp - 1) {
        ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    resp[got] = 0;
    int64_t took = mono_us() - t0, seen = atomic_load(&st->max_us);
    while (took > seen && !atomic_compare_exchange_weak(&st->max_us, &seen, took)) {
    }
    if (!ok || sscanf(resp, "HTTP/1.1 %d", status) != 1) {
        atomic_fetch_add(&st->other_err, 1);
        return -1;
    }
    const char *p = strstr(resp, "\"id\":\"");
    if (*status == 202 && p) snprintf(id, cap, "%.*s", (int)strcspn(p + 6, "\""), p + 6);
    if (*status == 503) atomic_fetch_add(&st->unavailable, 1);
    return 0;
}

#define NCLIENTS 3
#define PER_CLIENT 60

typedef struct client {
    it_daemon *d;
    raw_stats *st;
    char ids[PER_CLIENT][24];
    int n;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    for (int i = 0; i < PER_CLIENT; i++) {
        int status = 0;
        char id[24] = "";
        if (!raw_submit(c->d, c->st, &status, id, sizeof id) && status == 202 && id[0])
            snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", id);
        sleep_ms(15);
    }
    return NULL;
}

/* ---- helpers ---------------------------------------------------------- */

static double metric(it_daemon *d, const char *series) {
    it_resp r;
    double v = -1;
    if (it_req(d, "GET", "/metrics", NULL, 0, NULL, &r)) return -1;
    const char *p = r.body ? strstr(r.body, series) : NULL;
    if (p) v = atof(p + strlen(series));
    it_resp_free(&r);
    return v;
}

/* health and status of device 0 into the buffers; 0 or -1 */
static int device0(it_daemon *d, char *health, char *status, size_t cap) {
    it_resp r;
    if (it_req(d, "GET", "/v1/devices", NULL, 0, NULL, &r) || r.status != 200 || !r.json) {
        it_resp_free(&r);
        return -1;
    }
    json_t *dev = json_array_get(json_object_get(r.json, "devices"), 0);
    const char *h = json_string_value(json_object_get(dev, "health"));
    const char *s = json_string_value(json_object_get(dev, "status"));
    snprintf(health, cap, "%s", h ? h : "");
    snprintf(status, cap, "%s", s ? s : "");
    it_resp_free(&r);
    return 0;
}

/* the daemon is still the process we started (an exec keeps the pid),
 * and still called gexecd (an execv of /proc/self/exe named it "exe":
 * pgrep gexecd lost it) */
static void assert_same_process(it_daemon *d) {
    int wst;
    assert_int_equal(waitpid(d->pid, &wst, WNOHANG), 0);
    assert_int_equal(kill(d->pid, 0), 0);
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)d->pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    if (!fgets(comm, sizeof comm, f)) comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    assert_string_equal(comm, "gexecd");
}

/* open file descriptors of the daemon */
static int fd_count(const it_daemon *d) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "ls /proc/%d/fd | wc -l", (int)d->pid);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p && fscanf(p, "%d", &n) != 1) n = -1;
    if (p) pclose(p);
    return n;
}

static int count_in_log(it_daemon *d, const char *what) {
    FILE *f = fopen(d->log, "r");
    if (!f) return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f)) n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

/* wait (bounded) until the daemon made `want` restarts and is ready */
static void wait_restarts(it_daemon *d, int want) {
    for (int i = 0; i < 400; i++) {
        if (metric(d, "gexec_restarts_total{reason=\"device_lost\"} ") >= want) {
            it_resp r;
            if (!it_req(d, "GET", "/readyz", NULL, 0, NULL, &r)) {
                long st = r.status;
                it_resp_free(&r);
                if (st == 200) return;
            }
        }
        sleep_ms(50);
    }
    fail_msg("no %d restart(s) within 20 s (%d in the log)", want, count_in_log(d, "restarted by gexecd itself"));
}

/* Start a daemon with up to two extra variables; stop it and clean up. */
static void start_with(it_daemon *d, const char *env0, const char *env1) {
    memset(d, 0, sizeof *d);
    d->extra_env[0] = env0;
    d->extra_env[1] = env1;
    assert_int_equal(it_start(d), 0);
}

static void finish(it_daemon *d) {
    assert_int_equal(it_stop(d), 0);
    it_cleanup(d);
}

/* Submit a job (path gets /v1/jobs/ID, 64 bytes), then wait (20 s at most)
 * until device 0 is unhealthy with `why` in its status. */
static void submit_then_unhealthy(it_daemon *d, char *path, const char *why) {
    it_resp r;
    assert_int_equal(it_req(d, "POST", "/v1/jobs", JOB_BODY, strlen(JOB_BODY), NULL, &r), 0);
    assert_int_equal(r.status, 202);
    snprintf(path, 64, "/v1/jobs/%s", it_str(&r, "id"));
    it_resp_free(&r);
    char health[160] = "", status[160] = "";
    for (int i = 0; i < 400 && strcmp(health, "unhealthy"); i++) {
        sleep_ms(50);
        device0(d, health, status, sizeof health);
    }
    if (strcmp(health, "unhealthy") || !strstr(status, why)) fail_msg("device 0: %s: %s", health, status);
}

/* ---- cases -------------------------------------------------------------- */

static void restart_under_load(void **st) {
    (void)st;
    it_daemon d; /* the fault in this image only */
    start_with(&d, "GEXEC_ENGINE_CPU_WORKERS=2", "GEXEC_INJECT_FAULT=device.launch:46:1:after=300");
    raw_stats rs = {0};
    static client cl[NCLIENTS];
    pthread_t th[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (client){.d = &d, .st = &rs};
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
    }
    for (int i = 0; i < NCLIENTS; i++) pthread_join(th[i], NULL);
    wait_restarts(&d, 1);
    assert_same_process(&d);
    assert_int_equal(count_in_log(&d, "restarted by gexecd itself"), 1);
    /* no connection refused, none reset or left unanswered */
    assert_int_equal(atomic_load(&rs.refused), 0);
    assert_int_equal(atomic_load(&rs.other_err), 0);
    /* every job answered 202 succeeded; the faulting one was re-run */
    int total = 0, rerun = 0;
    for (int c = 0; c < NCLIENTS; c++)
        for (int i = 0; i < cl[c].n; i++, total++) {
            const char *state = it_wait_job(&d, cl[c].ids[i], 10000);
            if (strcmp(state, "succeeded")) fail_msg("job %s: %s", cl[c].ids[i], state);
            char path[64];
            it_resp r;
            snprintf(path, sizeof path, "/v1/jobs/%s", cl[c].ids[i]);
            assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
            rerun += json_integer_value(json_object_get(r.json, "attempts")) > 1;
            it_resp_free(&r);
        }
    assert_true(total + atomic_load(&rs.unavailable) == NCLIENTS * PER_CLIENT);
    assert_true(total > NCLIENTS * PER_CLIENT / 2);
    assert_true(rerun >= 1);
    char health[160], status[160];
    assert_int_equal(device0(&d, health, status, sizeof health), 0);
    assert_string_equal(health, "ok");
    print_message("%d jobs answered 202, all succeeded (%d re-run); %d answered 503 while draining; 0 refused; "
                  "slowest request %.1f ms\n",
                  total, rerun, atomic_load(&rs.unavailable), (double)atomic_load(&rs.max_us) / 1000);
    finish(&d);
}

static void poison_dead_across_restarts(void **st) {
    (void)st;
    it_daemon d; /* one fault in every image */
    start_with(&d, "GEXEC_INJECT_FAULT=device.launch:46:1:keep", NULL);
    int fds = fd_count(&d);
    it_resp r;
    assert_int_equal(it_req(&d, "POST", "/v1/jobs", JOB_BODY, strlen(JOB_BODY), NULL, &r), 0);
    assert_int_equal(r.status, 202);
    char id[24], path[64];
    snprintf(id, sizeof id, "%s", it_str(&r, "id"));
    it_resp_free(&r);
    /* faults in image 1 (blame 1 of 2, persisted), restart; faults again in
     * image 2: dead; restart; image 3 has nothing left to fault */
    assert_string_equal(it_wait_job(&d, id, 20000), "dead");
    wait_restarts(&d, 2);
    assert_same_process(&d);
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    const char *err = it_str(&r, "error.message");
    assert_non_null(err);
    if (!strstr(err, "on attempt 1") || !strstr(err, "on attempt 2") || !strstr(err, "device unavailable (46)"))
        fail_msg("dead job's error: %s", err);
    it_resp_free(&r);
    sleep_ms(300); /* nothing else faults: no third restart */
    assert_true(metric(&d, "gexec_restarts_total{reason=\"device_lost\"} ") == 2);
    /* nothing but the listening socket crossed the two execs */
    assert_true(fds > 3);
    assert_true(fd_count(&d) <= fds);
    finish(&d);
}

static void restart_loop_guard(void **st) {
    (void)st;
    it_daemon d; /* every launch faults, in every image */
    start_with(&d, "GEXEC_INJECT_FAULT=device.launch:46:-1:keep", "GEXEC_ENGINE_POISON_FAULTS=100");
    char path[64];
    it_resp r;
    submit_then_unhealthy(&d, path, "not restarted: 3 restarts in the last 10 min"); /* after images 1..3 */
    assert_same_process(&d);
    assert_true(metric(&d, "gexec_restarts_total{reason=\"device_lost\"} ") == 3);
    assert_int_equal(count_in_log(&d, "not restarting: 3 restarts"), 1);
    /* audited: three restarts, one refusal */
    assert_int_equal(it_req(&d, "GET", "/v1/audit?limit=1000", NULL, 0, NULL, &r), 0);
    int ok = 0, refused = 0;
    json_t *rec;
    size_t i;
    json_array_foreach(json_object_get(r.json, "records"), i, rec) {
        const char *act = json_string_value(json_object_get(rec, "action"));
        const char *out = json_string_value(json_object_get(rec, "outcome"));
        if (!act || strcmp(act, "daemon.restart") || !out) continue;
        ok += !strcmp(out, "ok");
        refused += !strcmp(out, "refused");
    }
    it_resp_free(&r);
    assert_int_equal(ok, 3);
    assert_int_equal(refused, 1);
    /* the daemon still answers; the job waits for a healthy device */
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_string_equal(it_str(&r, "state"), "queued");
    it_resp_free(&r);
    finish(&d);
}

/* engine.restart_on_device_loss: false: the device stays unhealthy, no exec */
static void restart_disabled(void **st) {
    (void)st;
    it_daemon d;
    start_with(&d, "GEXEC_INJECT_FAULT=device.launch:46:1", "GEXEC_ENGINE_RESTART_ON_DEVICE_LOSS=false");
    char path[64];
    submit_then_unhealthy(&d, path, "not restarted: engine.restart_on_device_loss is false");
    assert_true(metric(&d, "gexec_restarts_total{reason=\"device_lost\"} ") == 0);
    assert_int_equal(count_in_log(&d, "restarted by gexecd itself"), 0);
    finish(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(restart_under_load),
        cmocka_unit_test(poison_dead_across_restarts),
        cmocka_unit_test(restart_loop_guard),
        cmocka_unit_test(restart_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
