/*
 * breaker.c - circuit breakers (see breaker.h): the state machine, then the
 * engine's per-device and per-kernel breakers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_int.h"
#include "gexec/gexec_errclass.h"

/* ---- state machine ----------------------------------------------------- */

void gx__brk_init(gx__brk *b, int threshold, int64_t cooldown_ns) {
    memset(b, 0, sizeof *b);
    b->threshold = threshold > 0 ? threshold : 0;
    b->cooldown_ns = cooldown_ns > 0 ? cooldown_ns : 0;
}

static void brk_move(gx__brk *b, int state) {
    if (b->state == state) return;
    b->state = state;
    b->transitions++;
}

int gx__brk_allow(gx__brk *b, int64_t now) {
    if (b->state == GX__BRK_OPEN && now >= b->probe_ns) {
        brk_move(b, GX__BRK_HALF_OPEN);
        b->probing = 0;
    }
    if (b->state == GX__BRK_CLOSED) return 1;
    return b->state == GX__BRK_HALF_OPEN && !b->probing;
}

void gx__brk_sent(gx__brk *b) {
    if (b->state == GX__BRK_HALF_OPEN) b->probing = 1;
}

void gx__brk_success(gx__brk *b) {
    b->failures = 0;
    b->probing = 0;
    brk_move(b, GX__BRK_CLOSED);
}

void gx__brk_failure(gx__brk *b, int code, int64_t now) {
    if (!b->threshold) return;
    b->failures++;
    b->last_code = code;
    /* a failed probe re-opens at once; closed opens at the threshold; a
     * failure of work sent before the breaker opened changes nothing more */
    if (b->state == GX__BRK_HALF_OPEN || (b->state == GX__BRK_CLOSED && b->failures >= b->threshold)) {
        brk_move(b, GX__BRK_OPEN);
        b->open_failures = b->failures;
        b->probe_ns = now + b->cooldown_ns;
        b->probing = 0;
    }
}

void gx__brk_neutral(gx__brk *b) { b->probing = 0; }

const char *gx__brk_state_name(int s) {
    static const char *const n[] = {"closed", "open", "half_open"};
    return s >= 0 && s < 3 ? n[s] : "unknown";
}

const char *gx_breaker_state_name(int s) { return gx__brk_state_name(s); }

/* ---- engine glue ------------------------------------------------------- */

static void due(gx_engine *e, const gx__brk *b) {
    if (b->state != GX__BRK_OPEN) return;
    if (!e->brk_due || b->probe_ns < e->brk_due) {
        e->brk_due = b->probe_ns;
        pthread_cond_signal(&e->timer_cv);
    }
}

gx__kbrk *gx__brk_kernel_of(gx_engine *e, uint32_t tenant, const gx__kstat *ks) {
    gx__tenant *t = &e->tenants[tenant];
    return t->kbrk && ks ? &t->kbrk[ks - e->kstats] : NULL;
}

/* The tenant's breaker of ks, made when it has none (NULL: no memory, the
 * failure is then not counted). */
static gx__kbrk *kbrk_make(gx_engine *e, uint32_t tenant, const gx__kstat *ks) {
    gx__tenant *t = &e->tenants[tenant];
    if (!ks) return NULL;
    if (!t->kbrk) {
        t->kbrk = calloc(GX__KSTATS_MAX, sizeof *t->kbrk);
        if (!t->kbrk) return NULL;
        for (int i = 0; i < GX__KSTATS_MAX; i++)
            gx__brk_init(&t->kbrk[i].brk, e->o.breaker_threshold, (int64_t)e->o.breaker_cooldown_ms * 1000000);
    }
    return &t->kbrk[ks - e->kstats];
}

/* Put the parked jobs of a breaker back in their queues: all of them when
 * it closed, none otherwise (the probe is the next one the dispatcher
 * meets; the rest wait parked). */
static void unpark_all(gx_engine *e, gx__kbrk *kb) {
    uint32_t n = kb->nparked;
    kb->nparked = 0;
    for (uint32_t i = 0; i < n; i++) {
        gx__job *j = kb->parked[i];
        j->parked = 0;
        if (gx__sched_enqueue(e, j)) /* no memory: it fails rather than hangs */
            gx__finish(e, j, GX_JOB_FAILED, GX_ENOMEM, "out of memory re-queueing the job", NULL);
    }
}

/* A half-open kernel breaker whose probe ended without a verdict: the next
 * parked job goes as the probe (else they would wait for nothing). */
static void kernel_neutral(gx_engine *e, gx__kbrk *kb) {
    if (!kb) return;
    gx__brk_neutral(&kb->brk);
    if (kb->brk.state != GX__BRK_HALF_OPEN || !kb->nparked) return;
    gx__job *j = kb->parked[0];
    kb->parked[0] = kb->parked[--kb->nparked];
    j->parked = 0;
    if (gx__sched_enqueue(e, j))
        gx__finish(e, j, GX_JOB_FAILED, GX_ENOMEM, "out of memory re-queueing the job", NULL);
}

/* Nothing to record: closed, no failures counted, no probe out (the common
 * case, checked without writing so the hot path dirties no cache line). */
static inline int pristine(const gx__brk *b) {
    return b->state == GX__BRK_CLOSED && !b->failures && !b->probing;
}

void gx__brk_job_unplaced(gx_engine *e, gx__device *d, gx__job *j) {
    if (j->probe & 1) gx__brk_neutral(&d->brk);
    if (j->probe & 2) kernel_neutral(e, gx__brk_kernel_of(e, j->tenant, gx__kinfo(e, j->kernel)));
    j->probe = 0;
}

void gx__brk_job_done(gx_engine *e, gx__device *d, gx__job *j, int rc, int counted) {
    gx__kstat *ks = gx__kinfo(e, j->kernel);
    gx__kbrk *kb = gx__brk_kernel_of(e, j->tenant, ks);
    if (rc == 0 && pristine(&d->brk) && (!kb || pristine(&kb->brk))) return;
    if (!counted) {
        gx__brk_neutral(&d->brk);
        kernel_neutral(e, kb);
        return;
    }
    if (rc == 0) {
        gx__brk_success(&d->brk);
        if (kb) {
            int was = kb->brk.state;
            gx__brk_success(&kb->brk);
            if (was != GX__BRK_CLOSED) unpark_all(e, kb);
        }
        return;
    }
    int64_t now = gx__now_ns();
    unsigned which = gx_errclass_of(rc).breaker;
    if (which & GX_EBRK_DEVICE) gx__brk_failure(&d->brk, rc, now), due(e, &d->brk);
    else gx__brk_neutral(&d->brk);
    if (which & GX_EBRK_KERNEL) {
        if (!kb) kb = kbrk_make(e, j->tenant, ks);
        if (kb) gx__brk_failure(&kb->brk, rc, now), due(e, &kb->brk);
    } else {
        kernel_neutral(e, kb);
    }
}

int gx__brk_park(gx_engine *e, gx__job *j) {
    gx__kbrk *kb = kbrk_make(e, j->tenant, gx__kinfo(e, j->kernel));
    if (!kb) return GX_ENOMEM;
    if (kb->nparked == kb->capparked) {
        uint32_t nc = kb->capparked ? kb->capparked * 2 : 16;
        gx__job **nv = realloc(kb->parked, nc * sizeof *nv);
        if (!nv) return GX_ENOMEM;
        kb->parked = nv;
        kb->capparked = nc;
    }
    kb->parked[kb->nparked++] = j;
    j->parked = 1;
    due(e, &kb->brk);
    return 0;
}

void gx__brk_unpark(gx_engine *e, gx__job *j) {
    gx__kbrk *kb = gx__brk_kernel_of(e, j->tenant, gx__kinfo(e, j->kernel));
    j->parked = 0;
    if (!kb) return;
    for (uint32_t i = 0; i < kb->nparked; i++)
        if (kb->parked[i] == j) {
            kb->parked[i] = kb->parked[--kb->nparked];
            return;
        }
}

int64_t gx__brk_tick(gx_engine *e, int64_t now) {
    int64_t next = 0;
    for (int i = 0; i < e->ndev; i++) {
        gx__brk *b = &e->dev[i].brk;
        gx__brk_allow(b, now);
        if (b->state == GX__BRK_OPEN && (!next || b->probe_ns < next)) next = b->probe_ns;
    }
    for (uint32_t t = 0; t < e->ntenants; t++) {
        gx__kbrk *kbs = e->tenants[t].kbrk;
        for (int i = 0; kbs && i < e->nkstats; i++) {
            gx__kbrk *kb = &kbs[i];
            if (pristine(&kb->brk)) continue;
            /* half-open with no probe out: one parked job goes as the probe */
            if (gx__brk_allow(&kb->brk, now)) kernel_neutral(e, kb);
            if (kb->brk.state == GX__BRK_OPEN && (!next || kb->brk.probe_ns < next)) next = kb->brk.probe_ns;
        }
    }
    e->brk_due = next;
    return next;
}

static void probe_when(gx_engine *e, const gx__brk *b, char *out, size_t cap) {
    int64_t w = gx__to_wall(e, b->probe_ns);
    time_t s = (time_t)(w / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void brk_reason(gx_engine *e, const char *what, const gx__brk *b, char *out, size_t cap) {
    char t[32];
    if (b->state == GX__BRK_OPEN) {
        probe_when(e, b, t, sizeof t);
        snprintf(out, cap, "%s circuit open after %d failures (last %s), probe at %s", what, b->open_failures,
                 gx_err_name(b->last_code), t);
    } else if (b->state == GX__BRK_HALF_OPEN) {
        snprintf(out, cap, "%s circuit half-open after %d failures, a probe job is running", what,
                 b->open_failures);
    } else {
        snprintf(out, cap, "%s circuit closed", what);
    }
}

void gx__brk_kernel_reason(gx_engine *e, const gx__job *j, char *out, size_t cap) {
    char what[80];
    gx__kbrk *kb = gx__brk_kernel_of(e, j->tenant, gx__kinfo(e, j->kernel));
    snprintf(what, sizeof what, "kernel %s", j->kernel->name);
    if (kb) brk_reason(e, what, &kb->brk, out, cap);
    else snprintf(out, cap, "%s circuit open", what);
}

void gx__brk_device_reason(gx_engine *e, const gx__device *d, char *out, size_t cap) {
    brk_reason(e, d->desc.name, &d->brk, out, cap);
}

int gx__gpu_usable(gx_engine *e, char *why, size_t cap) {
    size_t l = 0;
    int ngpu = 0;
    if (why && cap) why[0] = '\0';
    for (int i = 0; i < e->ndev; i++) {
        gx__device *d = &e->dev[i];
        if (d->kind != GX_DEV_CUDA) continue;
        ngpu++;
        if (d->healthy && !d->drained && d->brk.state == GX__BRK_CLOSED) return 1;
        if (why && l < cap) {
            int n;
            if (d->drained)
                n = snprintf(why + l, cap - l, "%s%s drained by an operator", l ? "; " : "", d->desc.name);
            else if (!d->healthy)
                n = snprintf(why + l, cap - l, "%s%s unhealthy (%s)", l ? "; " : "", d->desc.name, d->status);
            else
                n = snprintf(why + l, cap - l, "%s%s circuit %s", l ? "; " : "", d->desc.name,
                             gx__brk_state_name(d->brk.state));
            l += n > 0 ? (size_t)n : 0;
        }
    }
    if (!ngpu && why) snprintf(why, cap, "this engine has no GPU");
    return 0;
}

void gx__brk_free(gx_engine *e) {
    for (uint32_t t = 0; t < e->ntenants; t++) {
        gx__kbrk *kbs = e->tenants[t].kbrk;
        for (int i = 0; kbs && i < GX__KSTATS_MAX; i++) free(kbs[i].parked);
        free(kbs);
        e->tenants[t].kbrk = NULL;
    }
}

/* Order of how much a breaker holds back: open, half-open, closed. */
static int severity(int state) { return state == GX__BRK_OPEN ? 2 : state == GX__BRK_HALF_OPEN; }

int gx_kernel_breaker_get(gx_engine *e, const gx_kernel *k, gx_breaker_info *o) {
    if (!e || !k || !o) return GX_EINVAL;
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&e->mu);
    int64_t now = gx__now_ns();
    const gx__kstat *ks = NULL;
    for (int i = 0; i < e->nkstats && !ks; i++)
        if (e->kstats[i].k == k) ks = &e->kstats[i];
    /* the tenants' breakers of the kernel, summed up: the state and failures
     * of the one that holds back most, their parked jobs and transitions */
    const gx__brk *worst = NULL;
    for (uint32_t t = 0; ks && t < e->ntenants; t++) {
        gx__kbrk *kb = gx__brk_kernel_of(e, t, ks);
        if (!kb) continue;
        gx__brk_allow(&kb->brk, now); /* show half-open once due */
        o->parked += kb->nparked;
        o->transitions += kb->brk.transitions;
        if (!worst || severity(kb->brk.state) > severity(worst->state) ||
            (kb->brk.state == worst->state && kb->brk.failures > worst->failures))
            worst = &kb->brk;
    }
    if (worst) {
        o->state = worst->state;
        o->failures = worst->failures;
        o->probe_ns = worst->state == GX__BRK_OPEN ? gx__to_wall(e, worst->probe_ns) : 0;
        o->last_code = worst->last_code;
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}
