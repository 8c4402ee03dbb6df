/*
 * health.c - the closed health loop of devices, hung-call containment,
 * poison jobs and device fault injection on CPU devices.
 *
 * A device fault is a call that answers GX_EDEVICE (a sticky CUDA error, an
 * injected fault) or a call still running hang_grace after its job was
 * cancelled or timed out. The device is then marked recovering: it takes no
 * placements, the jobs placed on it go back to their queues, its slots finish
 * what they run (for up to hang_grace; then their calls are abandoned: cancel
 * flags and gx_device_abort_requested), and when every worker thread has left
 * the health thread closes the device, resets it (backend device_reset),
 * opens it again, self-tests it and starts its workers. A device that fails
 * that recovery_attempts times stays unhealthy with the reason.
 *
 * Blame: the first GX_EDEVICE a healthy device reports is blamed on that
 * call's job; calls that fail on the device after that are collateral and
 * re-queued without blame. A job blamed poison_faults times is dead, with
 * the faults of its attempts in its error, instead of killing more devices.
 *
 * What this process cannot fix (a reset, reopen or self-test that fails: a
 * sticky fault on platforms where only a new process gets the GPU back; a
 * call that ignores both its cancel flag and the abort request) makes the
 * device `lost` and calls opts.on_device_lost: gexecd then re-executes
 * itself. Without that callback the device stays unhealthy. The blame of a
 * job survives that restart through its error text (gx_job_blame_parse).
 * docs/device-health.md says why and what a child process per GPU would add.
 *
 * Everything here runs with e->mu held unless a function says otherwise.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "engine_int.h"
#include "gexec/gexec_fault.h"

#define FHIST_MAX 8

/* Device faults of one job's attempts, for its dead message. */
typedef struct gx__fhist {
    char *prev; /* faults before a restart ("cpu (x) on attempt 1"), NULL */
    int n;
    struct {
        int attempt;
        char dev[32];
        char reason[80];
    } f[FHIST_MAX];
} gx__fhist;

/* Process-wide: a backend's waiting loops poll it (gexec_plugin.h). */
static atomic_int dev_abort[GX__MAX_DEVICES];

int gx_device_abort_requested(int device) {
    return device >= 0 && device < GX__MAX_DEVICES && atomic_load(&dev_abort[device]);
}

#define BLAME_FMT "device fault %d of %d blamed on this job: "

int gx_job_blame_parse(const char *text, int *n, const char **history) {
    int k = 0, of = 0, end = 0;
    if (!text || sscanf(text, "device fault %d of %d blamed on this job: %n", &k, &of, &end) != 2 || !end || k <= 0)
        return 0;
    if (n) *n = k;
    if (history) *history = text + end;
    return 1;
}

void gx__health_job_seed(gx__job *j, int n, const char *history) {
    j->dev_faults = (uint8_t)(n > 200 ? 200 : n);
    if (!history || strncmp(history, "faulted ", 8)) return;
    if (!j->fhist) j->fhist = calloc(1, sizeof *j->fhist);
    if (j->fhist) j->fhist->prev = strdup(history + 8);
}

void gx__health_job_clear(gx__job *j) {
    if (j->fhist) free(j->fhist->prev);
    free(j->fhist);
    j->fhist = NULL;
}

static int64_t grace_ns(const gx_engine *e) { return e->o.hang_grace_ms * 1000000; }

/* ---- faults ----------------------------------------------------------- */

/* A job placed on d (in its ring, not started) goes back to its queue, and
 * a breaker probe it was sent as ends (gx__brk_job_unplaced). */
static void unplace(gx_engine *e, gx__device *d, gx__job *j, gx__evbuf *eb) {
    gx__brk_job_unplaced(e, d, j);
    d->pending_cost -= j->cost_us;
    if (d->pending_cost < 0) d->pending_cost = 0;
    d->mem_used -= j->mem;
    e->tenants[j->tenant].mem_used -= j->mem;
    gx__sched_charge(e, j, 0);
    gx__sched_released(e, j->tenant);
    j->busy = 0;
    if (gx_job_state_is_final(j->state)) return; /* cancelled while placed */
    e->tenants[j->tenant].queued++;
    gx__make_runnable(e, j, eb, 1);
}

void gx__health_fault(gx_engine *e, gx__device *d, const char *reason, int hung) {
    if (d->hstate != GX__H_OK || e->stopping) return;
    d->hstate = GX__H_PENDING;
    d->healthy = 0;
    d->hung = hung;
    d->fault_ns = gx__now_ns();
    snprintf(d->status, sizeof d->status, "recovering: %.110s", reason);
    while (d->rcount) {
        gx__job *j = d->ring[d->rhead];
        d->rhead = (d->rhead + 1) & (d->rcap - 1);
        /* atomic: idle workers poll rcount without the lock (worker_main) */
        __atomic_store_n(&d->rcount, d->rcount - 1, __ATOMIC_RELAXED);
        unplace(e, d, j, NULL);
    }
    pthread_cond_broadcast(&d->cv);
    pthread_cond_broadcast(&e->health_cv);
}

/* Back to the queue as a new attempt (the next take counts it). */
static void requeue(gx_engine *e, gx__job *j, int rc, const char *msg, gx__evbuf *eb) {
    j->error_code = rc;
    free(j->error);
    j->error = msg && *msg ? strdup(msg) : NULL;
    if (j->attempts >= 250) { /* attempts is a byte; never wrap */
        gx__finish(e, j, GX_JOB_FAILED, rc, "re-queued too many times after device faults", eb);
        return;
    }
    atomic_store(&j->cancel, 0); /* an abandoned call's cancel is not the job's */
    if (j->max_attempts < 255) j->max_attempts++; /* not its fault: the attempt is not of its budget */
    e->tenants[j->tenant].queued++;
    gx__make_runnable(e, j, eb, 1);
    j->run_ns = 0; /* the faulted attempt's time is not the next end's */
}

/* "faulted cpu (x) on attempts 1 and 2; cpu:1 (y) on attempt 3" */
static void fhist_text(const gx__fhist *h, char *out, size_t cap) {
    size_t o = (size_t)snprintf(out, cap, "faulted %s%s", h->prev ? h->prev : "", h->prev && h->n ? "; " : "");
    for (int i = 0; i < h->n && o < cap;) {
        int k = i + 1;
        while (k < h->n && !strcmp(h->f[k].dev, h->f[i].dev) && !strcmp(h->f[k].reason, h->f[i].reason)) k++;
        o += (size_t)snprintf(out + o, cap - o, "%s%s (%s) on attempt%s ", i ? "; " : "", h->f[i].dev,
                              h->f[i].reason, k - i > 1 ? "s" : "");
        for (int m = i; m < k && o < cap; m++)
            o += (size_t)snprintf(out + o, cap - o, "%s%d", m == i ? "" : m == k - 1 ? " and " : ", ",
                                  h->f[m].attempt);
        i = k;
    }
}

int gx__health_result(gx_engine *e, gx__device *d, gx__job *j, int rc, const char *msg, gx__evbuf *eb) {
    if (j->abandoned) { /* given up by a recovery: not its fault */
        j->abandoned = 0;
        requeue(e, j, rc, msg, eb);
        return 1;
    }
    if (rc != GX_EDEVICE) return 0;
    if (d->hstate != GX__H_OK) { /* the device had already faulted */
        requeue(e, j, rc, msg, eb);
        return 1;
    }
    if (!j->fhist) j->fhist = calloc(1, sizeof *j->fhist);
    gx__fhist *h = j->fhist;
    if (h && h->n < FHIST_MAX) {
        h->f[h->n].attempt = j->attempts;
        snprintf(h->f[h->n].dev, sizeof h->f[h->n].dev, "%s", d->desc.name);
        snprintf(h->f[h->n].reason, sizeof h->f[h->n].reason, "%s", msg ? msg : "device fault");
        h->n++;
    }
    j->dev_faults++;
    char reason[160];
    snprintf(reason, sizeof reason, "job %llu: %.120s", (unsigned long long)j->id, msg ? msg : "device fault");
    gx__health_fault(e, d, reason, 0);
    char text[600];
    size_t o = j->dev_faults >= e->o.poison_faults
                   ? 0
                   : (size_t)snprintf(text, sizeof text, BLAME_FMT, j->dev_faults, e->o.poison_faults);
    if (h)
        fhist_text(h, text + o, sizeof text - o);
    else
        snprintf(text + o, sizeof text - o, "faulted devices %d times", j->dev_faults);
    if (j->dev_faults >= e->o.poison_faults) {
        gx__finish(e, j, GX_JOB_DEAD, GX_EDEVICE, text, eb);
        return 1;
    }
    /* the blame is in the job's error (and so its events in a store): a
     * daemon that restarts restores it (gx_job_blame_parse) */
    requeue(e, j, rc, text, eb);
    return 1;
}

/* ---- hung calls ------------------------------------------------------- */

void gx__health_watch(gx_engine *e, gx__job *j) {
    if (j->state != GX_JOB_CANCELLED && j->state != GX_JOB_TIMED_OUT) return;
    if (j->device < 0 || e->o.hang_grace_ms <= 0) return;
    j->hang_watch = 1;
    gx__timer_set(e, j, gx__now_ns() + grace_ns(e));
}

void gx__health_hung(gx_engine *e, gx__job *j) {
    j->hang_watch = 0;
    if (!j->busy || j->device < 0) return;
    char reason[160];
    snprintf(reason, sizeof reason, "hung: job %llu (%s) did not return %lld ms after its cancel",
             (unsigned long long)j->id, j->kernel->name, (long long)e->o.hang_grace_ms);
    gx__health_fault(e, &e->dev[j->device], reason, 1);
}

/* ---- fault injection (CPU devices; the CUDA backend injects its own) -- */

/* A readable name for the backend error number of an injected fault. */
static const char *fault_code_name(int code) {
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {0, "device fault"},          {2, "out of memory"},      {700, "illegal address"},
        {702, "launch timeout"},      {214, "uncorrectable ECC"}, {719, "launch failure"},
        {999, "unknown error"},       {46, "device unavailable"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code) return names[i].name;
    return "device error";
}

/* Runs without the lock: an injected hang that ends on the job's cancel
 * (code 0) or only on the device's reset (code != 0: a kernel that ignores
 * cancellation). */
static int hang(gx__device *d, gx_kcall *c, int code) {
    struct timespec ts = {0, 1000000};
    for (;;) {
        if (gx_device_abort_requested(d->index))
            return gx_error_set(c->err, GX_EDEVICE, NULL, "injected hang ended by the device reset");
        if (!code && gx_kcall_cancelled(c)) /* set under e->mu */
            return gx_error_set(c->err, GX_ECANCELED, NULL, "injected hang cancelled");
        nanosleep(&ts, NULL);
    }
}

int gx__health_inject(gx_engine *e, gx__device *d, gx_kcall *const *calls, gx_call_result *res, int n) {
    (void)e;
    if (d->kind != GX_DEV_CPU || n <= 0) return 0;
    gx_fault_spec fs;
    if (gx_fault_take(GX_FAULT_DEVICE_HANG, d->index, &fs)) {
        int64_t t0 = gx__now_ns();
        res[0].rc = hang(d, calls[0], fs.code);
        res[0].run_ns = gx__now_ns() - t0;
        return 1;
    }
    if (!gx_fault_take(GX_FAULT_DEVICE_LAUNCH, d->index, &fs)) return 0;
    /* the whole launch fails; an out-of-memory is transient, the rest sticky;
     * 46 is sticky for the process, as a real illegal address is on an H100
     * (the reset then fails with cudaErrorDevicesUnavailable) */
    int rc = fs.code == 2 ? GX_ETRANSIENT : GX_EDEVICE;
    if (fs.code == 46) atomic_store(&d->sim_lost, 1);
    for (int i = 0; i < n; i++) {
        gx_error_set(calls[i]->err, rc, NULL, "injected device fault: %s (%d)", fault_code_name(fs.code), fs.code);
        res[i].rc = rc;
        res[i].run_ns = 0;
    }
    return n;
}

/* ---- the health thread ------------------------------------------------ */

void gx__health_worker_left(gx_engine *e, gx__device *d) {
    if (--d->nlive == 0 && d->hstate == GX__H_STUCK) {
        /* the stuck call came back after all: finish the recovery */
        d->hstate = GX__H_PENDING;
        d->hung = 1;
        snprintf(d->status, sizeof d->status, "recovering: a stuck slot returned");
    }
    pthread_cond_broadcast(&e->health_cv);
}

void gx__health_slot_failed(gx_engine *e, gx__device *d, int slot, const char *msg) {
    /* counted once a start of its workers (the first slot to fail faults
     * the device; the others of that start fail alongside) */
    if (d->hstate != GX__H_OK) return;
    int64_t now = gx__now_ns();
    if (d->slot_fails && now - d->slot_fail_ns > 60 * (int64_t)1000000000) d->slot_fails = 0;
    d->slot_fails++;
    d->slot_fail_ns = now;
    char reason[120];
    snprintf(reason, sizeof reason, "slot %d failed to open: %.90s", slot, msg && msg[0] ? msg : "no reason given");
    if (d->slot_fails > e->o.recovery_attempts)
        snprintf(d->slot_fail, sizeof d->slot_fail, "slots failed to open at %d starts in a row; last: %.60s",
                 d->slot_fails, reason);
    if (!e->stopping) {
        gx__health_fault(e, d, reason, 0);
    } else { /* no recovery while stopping: say why it has fewer slots */
        d->healthy = 0;
        snprintf(d->status, sizeof d->status, "unhealthy: %.110s", reason);
    }
}

/* Wait (lock held) until d's workers have left or `until` passes. */
static void wait_workers(gx_engine *e, gx__device *d, int64_t until) {
    while (d->nlive > 0 && !e->stopping) {
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        if (pthread_cond_timedwait(&e->health_cv, &e->mu, &ts) == ETIMEDOUT) break;
    }
}

/* Tell every call still running on d to stop: re-queued when it returns. */
static void abandon_running(gx_engine *e, gx__device *d) {
    for (size_t p = 0; p < e->npages; p++)
        for (uint32_t i = 0; e->pages[p] && i < 1024; i++) {
            gx__job *j = &e->pages[p][i];
            if (!j->live || !j->busy || j->device != d->index) continue;
            if (j->state == GX_JOB_RUNNING) j->abandoned = 1;
            atomic_store(&j->cancel, 1);
        }
    atomic_store(&dev_abort[d->index], 1);
}

/* Close, reset, open and self-test a device whose workers have all left.
 * Runs without the lock; 0 or a code with msg set. */
static int rebuild(gx__device *d, gx_backend_dev **bdev, gx_device_desc *desc, char *msg, size_t cap) {
    const gx_backend *be = d->be;
    gx_error err;
    gx_error_clear(&err);
    if (*bdev && be->device_close) be->device_close(*bdev);
    *bdev = NULL;
    if (atomic_load(&d->sim_lost)) {
        snprintf(msg, cap, "reset failed: injected device fault: device unavailable (46) until a new process");
        return GX_EDEVICE;
    }
    if (GX_BACKEND_HAS(be, device_reset) && be->device_reset(d->ordinal, &err)) {
        snprintf(msg, cap, "reset failed: %.100s", err.message);
        return GX_EDEVICE;
    }
    if (!be->device_open) return 0; /* the CPU: its slots are all there is */
    if (be->device_open(d->ordinal, bdev, desc, &err)) {
        snprintf(msg, cap, "reopen failed: %.100s", err.message);
        return GX_EDEVICE;
    }
    if (be->self_test) {
        char tmsg[128] = "";
        if (be->self_test(*bdev, tmsg, sizeof tmsg)) {
            snprintf(msg, cap, "self-test failed: %.100s", tmsg);
            return GX_EDEVICE;
        }
    }
    return 0;
}

/* A health state as on_device_health tells it: a fault's pending and
 * recovering steps are one. */
static int health_class(int hstate) { return hstate == GX__H_RECOVERING ? GX__H_PENDING : hstate; }

/* Give on_device_health the health changes since the last call, in device
 * order; drops the lock around the calls. */
static void say_health(gx_engine *e) {
    if (!e->o.on_device_health) return;
    struct {
        int dev;
        char name[sizeof e->dev[0].desc.name];
        char status[sizeof e->dev[0].status];
    } said[GX__MAX_DEVICES];
    int n = 0;
    for (int i = 0; i < e->ndev && n < GX__MAX_DEVICES; i++) {
        gx__device *d = &e->dev[i];
        if (health_class(d->hstate) == d->said) continue;
        d->said = health_class(d->hstate);
        said[n].dev = i;
        snprintf(said[n].name, sizeof said[n].name, "%s", d->desc.name);
        snprintf(said[n].status, sizeof said[n].status, "%s", d->status);
        n++;
    }
    if (!n) return;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n; i++)
        e->o.on_device_health(e->o.device_health_ctx, said[i].dev, said[i].name, said[i].status);
    pthread_mutex_lock(&e->mu);
}

/* The device cannot be recovered in this process: ask on_device_lost for a
 * new one. 1: it comes (the device stays lost); 0: no callback, or it said
 * no (status then says why). Drops the lock around the callback. */
static int lose(gx_engine *e, gx__device *d, const char *reason) {
    if (!e->o.on_device_lost) return 0;
    d->hstate = GX__H_LOST;
    d->healthy = 0;
    snprintf(d->status, sizeof d->status, "lost: %.100s; restarting gexecd", reason);
    char why[96] = "";
    say_health(e); /* before the process may be replaced */
    pthread_mutex_unlock(&e->mu);
    int yes = e->o.on_device_lost(e->o.device_lost_ctx, d->index, reason, why, sizeof why);
    pthread_mutex_lock(&e->mu);
    if (yes) return 1;
    d->hstate = GX__H_FAILED;
    snprintf(d->status, sizeof d->status, "unhealthy: %.60s; not restarted: %.38s", reason, why[0] ? why : "refused");
    return 0;
}

static void recover(gx_engine *e, gx__device *d) {
    d->hstate = GX__H_RECOVERING;
    /* 1. the slots finish what they run (a hung call: abandon at once) */
    if (!d->hung) wait_workers(e, d, gx__now_ns() + grace_ns(e));
    if (d->nlive > 0) {
        abandon_running(e, d);
        wait_workers(e, d, gx__now_ns() + grace_ns(e));
    }
    if (e->stopping) return;
    if (d->nlive > 0) { /* recovery resumes if they ever return */
        char reason[96];
        snprintf(reason, sizeof reason, "%d slot(s) stuck in a call that ignores cancel and reset", d->nlive);
        int asked = e->o.on_device_lost != NULL;
        if (lose(e, d, reason)) return;
        d->hstate = GX__H_STUCK;
        if (!asked) snprintf(d->status, sizeof d->status, "unhealthy: %s; restart gexecd", reason);
        return;
    }
    atomic_store(&dev_abort[d->index], 0);
    pthread_t *th = d->threads;
    int nt = d->nthreads;
    d->threads = NULL;
    d->nthreads = 0;
    gx_backend_dev *bdev = d->bdev;
    d->bdev = NULL; /* no new telemetry reads; wait for those under way */
    while (d->tel_busy > 0) pthread_cond_wait(&e->health_cv, &e->mu);
    char giveup[sizeof d->slot_fail];
    memcpy(giveup, d->slot_fail, sizeof giveup);
    if (giveup[0]) { /* taken: the count starts over */
        d->slot_fail[0] = 0;
        d->slot_fails = 0;
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
    free(th);
    /* 2. close, reset, reopen, self-test; a few times */
    char msg[160] = "";
    gx_device_desc desc = d->desc;
    int rc = GX_EDEVICE, tries = 0;
    if (giveup[0]) { /* resets did not help its slots: no more of them */
        snprintf(msg, sizeof msg, "%s", giveup);
        tries = e->o.recovery_attempts;
    }
    while (tries < e->o.recovery_attempts) {
        tries++;
        rc = rebuild(d, &bdev, &desc, msg, sizeof msg);
        if (!rc) break;
        pthread_mutex_lock(&e->mu);
        d->recovery_failures++;
        int stop = e->stopping;
        pthread_mutex_unlock(&e->mu);
        /* a sticky fault is not fixed by trying again in this process */
        if (stop || e->o.on_device_lost) break;
        struct timespec ts = {0, 100000000L * tries};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&e->mu);
    d->bdev = bdev;
    if (rc) {
        if (!e->stopping && lose(e, d, msg)) return;
        d->hstate = GX__H_FAILED;
        if (d->status[0] != 'u' && giveup[0]) /* lose() did not say why already */
            snprintf(d->status, sizeof d->status, "unhealthy: %.110s", msg);
        else if (d->status[0] != 'u')
            snprintf(d->status, sizeof d->status, "unhealthy: recovery failed %d times: %.80s", tries, msg);
        return;
    }
    /* 3. re-admit */
    desc.slots = d->desc.slots; /* the workers are sized once */
    /* mem_total is read without the lock by submits (prepare): stored on
     * its own, atomically; the fields around it are copied apart from it (a
     * whole-struct copy writes it plainly too) */
    size_t at = offsetof(gx_device_desc, mem_total), past = at + sizeof desc.mem_total;
    memcpy(&d->desc, &desc, at);
    memcpy((char *)&d->desc + past, (char *)&desc + past, sizeof desc - past);
    __atomic_store_n(&d->desc.mem_total, desc.mem_total, __ATOMIC_RELAXED);
    d->hstate = GX__H_OK;
    d->healthy = 1;
    d->hung = 0;
    d->xid_seen = 0; /* a device opened again counts its Xid errors from 0 */
    snprintf(d->status, sizeof d->status, "ok");
    if (gx__dev_start(e, d)) {
        d->hstate = GX__H_FAILED;
        d->healthy = 0;
        snprintf(d->status, sizeof d->status, "unhealthy: cannot start workers after recovery");
        return;
    }
    d->recoveries++;
    d->last_recovery_s = (double)(gx__now_ns() - d->fault_ns) / 1e9;
    gx__sched_dispatch(e, INT32_MAX, 0);
}

/* ---- Xid errors ---------------------------------------------------------- */

/* How often the health loop reads the GPUs' Xid errors. */
#define XID_POLL_NS (2 * (int64_t)1000000000)

/* Xid errors after which the driver's guidance is a reset (or more): the
 * GPU's own failures. Application faults (13, 31, 43, 45...) reach the
 * engine as the failing calls' errors and are left to them. */
static const char *xid_fatal(int64_t x) {
    switch (x) {
    case 48: return "double-bit ECC error";
    case 63: return "row remapping pending";
    case 64: return "row remapping failed";
    case 74: return "NVLink error";
    case 79: return "GPU has fallen off the bus";
    case 94: return "contained ECC error";
    case 95: return "uncontained ECC error";
    case 119: return "GSP RPC timeout";
    case 120: return "GSP error";
    default: return NULL;
    }
}

/* Read each healthy GPU's Xid errors (backend telemetry, without the lock
 * around the read); a new fatal one is a device fault. Lock held. */
static void watch_xids(gx_engine *e) {
    for (int i = 0; i < e->ndev; i++) {
        gx__device *d = &e->dev[i];
        if (d->kind == GX_DEV_CPU || d->hstate != GX__H_OK) continue;
        gx_backend_dev *bd = d->bdev;
        gx_device_telemetry t;
        int rc = gx__dev_telemetry(e, d, &t);
        if (rc || t.xid_count <= d->xid_seen || d->hstate != GX__H_OK || d->bdev != bd) continue;
        d->xid_seen = t.xid_count;
        const char *what = xid_fatal(t.xid_last);
        if (!what) continue;
        char reason[120];
        snprintf(reason, sizeof reason, "Xid %lld (%s) reported by the driver", (long long)t.xid_last, what);
        gx__health_fault(e, d, reason, 0);
    }
}

static int any_gpu_telemetry(const gx_engine *e) {
    for (int i = 0; i < e->ndev; i++)
        if (e->dev[i].kind != GX_DEV_CPU && e->dev[i].be->telemetry) return 1;
    return 0;
}

static void *health_main(void *arg) {
    gx_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    int gpus = any_gpu_telemetry(e);
    int64_t next_xid = gx__now_ns() + XID_POLL_NS;
    while (!e->stopping) {
        if (gpus && gx__now_ns() >= next_xid) {
            watch_xids(e);
            next_xid = gx__now_ns() + XID_POLL_NS;
        }
        say_health(e);
        if (e->stopping) break;
        gx__device *d = NULL;
        for (int i = 0; i < e->ndev && !d; i++)
            if (e->dev[i].hstate == GX__H_PENDING) d = &e->dev[i];
        if (!d) {
            if (gpus) { /* health_cv waits on the monotonic clock (wait_workers) */
                struct timespec dl = {.tv_sec = next_xid / 1000000000, .tv_nsec = next_xid % 1000000000};
                pthread_cond_timedwait(&e->health_cv, &e->mu, &dl);
            } else {
                pthread_cond_wait(&e->health_cv, &e->mu);
            }
            continue;
        }
        recover(e, d);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

void gx__health_baseline(gx_engine *e) {
    for (int i = 0; i < e->ndev; i++) e->dev[i].said = health_class(e->dev[i].hstate);
}

int gx__health_start(gx_engine *e) {
    if (pthread_create(&e->health_thread, NULL, health_main, e)) return GX_ENOMEM;
    e->health_started = 1;
    return 0;
}

void gx__health_stop(gx_engine *e) {
    /* a call that only ends on a reset must end for the workers to join */
    for (int i = 0; i < e->ndev; i++) atomic_store(&dev_abort[i], 1);
    if (e->health_started) pthread_join(e->health_thread, NULL);
    e->health_started = 0;
}

void gx__health_stopped(gx_engine *e) {
    for (int i = 0; i < e->ndev; i++) atomic_store(&dev_abort[i], 0);
}
