/*
 * svc_restart.c - gexecd restarts itself when a device is lost.
 *
 * A device is lost when this process cannot recover it (a sticky GPU fault
 * after which every CUDA call fails until the process exits, as on an H100
 * after an illegal address; a slot stuck in a call that ignores cancel and
 * reset). The engine's health thread calls gx__svc_device_lost; if
 * engine.restart_on_device_loss allows and the restart-loop guard agrees,
 * the service records the reason and wakes the main thread with SIGUSR2.
 * main() then calls gx_service_stop_for_exec (drain, persist, close the
 * store; the listening socket stays open) and execv()s gexecd again with the
 * socket in GEXEC_LISTEN_FD: connections made meanwhile wait in the kernel's
 * backlog until the new image serves them, nobody sees "connection refused".
 *
 * The guard and the restart counter travel in GEXEC_RESTARTS
 * ("<total>:<unix time>,<unix time>,..."): more than GX_RESTART_LIMIT
 * restarts within GX_RESTART_WINDOW_S and the device stays unhealthy with
 * the reason instead.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "gexec/gexec_fault.h"
#include "log.h"
#include "service.h"

static int64_t now_s(void) { return gx__wall_ns() / 1000000000; }

void gx__svc_restart_init(gx_service *s) {
    const char *v = getenv("GEXEC_RESTARTS");
    if (!v) return;
    char *end;
    long long total = strtoll(v, &end, 10);
    if (total > 0 && *end == ':') {
        s->restarts_total = total;
        const char *p = end + 1;
        int64_t now = now_s();
        while (*p && s->nrestart_times < GX_RESTART_LIMIT + 1) {
            long long t = strtoll(p, &end, 10);
            if (end == p) break;
            if (t > now - GX_RESTART_WINDOW_S && t <= now) s->restart_times[s->nrestart_times++] = t;
            p = *end == ',' ? end + 1 : end;
        }
    }
    GX_LOGW("restarted by gexecd itself (%lld restart(s) in all, %d in the last %d s)", (long long)s->restarts_total,
            s->nrestart_times, GX_RESTART_WINDOW_S);
    unsetenv("GEXEC_RESTARTS");
}

int gx__svc_inherited_listener(void) {
    const char *v = getenv("GEXEC_LISTEN_FD");
    if (!v) return -1;
    char *end;
    long fd = strtol(v, &end, 10);
    unsetenv("GEXEC_LISTEN_FD");
    int acc = 0;
    socklen_t al = sizeof acc;
    struct stat st;
    if (*end || fd <= 2 || fd > 65535 || fstat((int)fd, &st) || !S_ISSOCK(st.st_mode) ||
        getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) || !acc) {
        GX_LOGW("GEXEC_LISTEN_FD=%s is not a listening socket; binding the configured address", v);
        return -1;
    }
    return (int)fd;
}

void gx__svc_device_health(void *ctx, int device, const char *name, const char *status) {
    (void)ctx;
    (void)device;
    if (!strncmp(status, "ok", 2))
        GX_LOGI("device %s is ok again", name);
    else if (!strncmp(status, "recovering", 10))
        GX_LOGW("device %s faulted, %s", name, status);
    else if (strncmp(status, "lost", 4)) /* lost: gx__svc_device_lost says it */
        GX_LOGE("device %s %s", name, status);
}

int gx__svc_device_lost(void *ctx, int device, const char *reason, char *why_not, size_t cap) {
    gx_service *s = ctx;
    gx_device_info d;
    char target[48] = "device";
    if (!gx_device_get(s->engine, device, &d)) snprintf(target, sizeof target, "device/%s", d.name);
    if (!s->cfg.engine.restart_on_device_loss) {
        snprintf(why_not, cap, "engine.restart_on_device_loss is false");
    } else if (s->nrestart_times >= GX_RESTART_LIMIT) {
        snprintf(why_not, cap, "%d restarts in the last %d min", s->nrestart_times, GX_RESTART_WINDOW_S / 60);
    } else {
        int none = 0;
        if (!atomic_compare_exchange_strong(&s->restart_pending, &none, 1)) return 1; /* another device asked first */
        snprintf(s->restart_reason, sizeof s->restart_reason, "%s lost: %s", target + 7, reason);
        /* published: a SIGUSR2 from elsewhere may wake main() while the reason
         * is written (it reads 1: not ours) */
        atomic_store_explicit(&s->restart_pending, 2, memory_order_release);
        GX_LOGE("%s; restarting gexecd (same socket, jobs kept)", s->restart_reason);
        gx__svc_audit(s, NULL, "daemon.restart", target, "ok", reason);
        kill(getpid(), SIGUSR2); /* main() waits for it */
        return 1;
    }
    GX_LOGE("%s lost (%s); not restarting: %s", target + 7, reason, why_not);
    gx__svc_audit(s, NULL, "daemon.restart", target, "refused", why_not);
    return 0;
}

int gx_service_restart_pending(gx_service *s, char *reason, size_t cap) {
    /* 1: its reason half written (a SIGUSR2 from elsewhere) */
    if (atomic_load_explicit(&s->restart_pending, memory_order_acquire) != 2) return 0;
    snprintf(reason, cap, "%s", s->restart_reason);
    return 1;
}

int gx_service_stop_for_exec(gx_service *s, char *restarts, size_t cap) {
    int64_t now = now_s();
    size_t o = (size_t)snprintf(restarts, cap, "%lld:", (long long)s->restarts_total + 1);
    for (int i = 0; i < s->nrestart_times && o < cap; i++)
        o += (size_t)snprintf(restarts + o, cap - o, "%lld,", (long long)s->restart_times[i]);
    if (o < cap) snprintf(restarts + o, cap - o, "%lld", (long long)now);
    return gx__svc_shutdown(s, 1);
}

/* GEXEC_INJECT_FAULT=point:code:count[:keep][:after=MS|:selftest]: arm a
 * fault point (gexec_fault.h) MS after the start-up self-test (before the
 * restore of stored jobs), or before the self-test with ":selftest", for
 * tests. Removed from the environment, so that a re-exec does not see it,
 * unless ":keep" is given. */
static void *arm_later(void *arg) {
    gx_fault_spec *fs = arg;
    struct timespec ts = {fs->delay_us / 1000000, (fs->delay_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    fs->delay_us = 0;
    gx_fault_arm(fs, NULL);
    free(fs);
    return NULL;
}

void gx__svc_inject_env(int before_selftest) {
    const char *v = getenv("GEXEC_INJECT_FAULT");
    if (!v) return;
    char point[32] = "", opt[2][16] = {"", ""};
    int code = 0, keep = 0, bad = 0, early = 0;
    long long count = 1, after_ms = 0;
    int n = sscanf(v, "%31[^:]:%d:%lld:%15[^:]:%15s", point, &code, &count, opt[0], opt[1]);
    for (int i = 0; i < 2; i++) {
        if (!strcmp(opt[i], "keep")) keep = 1;
        else if (!strcmp(opt[i], "selftest")) early = 1;
        else if (!strncmp(opt[i], "after=", 6)) after_ms = atoll(opt[i] + 6);
        else if (opt[i][0]) bad = 1;
    }
    if (early != before_selftest && !bad) return; /* the other call's */
    if (early && after_ms) bad = 1;
    gx_fault_spec *fs = calloc(1, sizeof *fs);
    if (fs) *fs = (gx_fault_spec){.point = (gx_fault_point)gx_fault_point_parse(point), .device = -1, .count = count,
                                  .code = code};
    pthread_t th;
    if (!fs || n < 1 || bad || (int)fs->point < 0 || after_ms < 0 || after_ms > 600000) {
        GX_LOGE("GEXEC_INJECT_FAULT=%s: expected point:code:count[:keep][:after=MS|:selftest]", v);
        free(fs);
    } else {
        GX_LOGW("fault injection: %s code %d count %lld in %lld ms", point, code, count, after_ms);
        fs->delay_us = after_ms * 1000; /* carried to arm_later, cleared there */
        if (!after_ms) {
            arm_later(fs); /* now: before the restore */
        } else if (pthread_create(&th, NULL, arm_later, fs)) {
            free(fs);
        } else {
            pthread_detach(th);
        }
    }
    if (!keep) unsetenv("GEXEC_INJECT_FAULT");
}
