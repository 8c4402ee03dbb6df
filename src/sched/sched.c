/*
 * sched.c - tenant queues, weighted fair share and dispatch.
 *
 * Jobs wait in per-tenant queues, one per constraint class (any device, any
 * CPU, any GPU, one specific device), each a max-heap by (priority, -id).
 * For every class a min-heap of tenants orders the tenants that have jobs of
 * that class by usage / weight, where usage is device time decayed with a
 * half-life. Each charge is divided by the weight at the time it is made
 * (a weight change applies from then on, not to the past), and a tenant
 * that comes back from idle (nothing queued or running) starts level with
 * the least-used busy tenant (level_if_idle): it gets its share from then
 * on, not a burst that starves the others while it "catches up". Decay is
 * done without touching every tenant: new charges are multiplied by a
 * scale that doubles every half-life, which leaves the ordering of old
 * usage intact; the scale is folded back into the stored values when it
 * grows large.
 *
 * Dispatch takes the best (tenant, job) over the classes whose devices have
 * room, places the job with the placement strategy, and charges the tenant
 * the job's estimated cost at once (corrected when the job ends), so a batch
 * of placements already shares the devices fairly. A tenant at its running
 * limit leaves every class heap until one of its jobs ends.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "exec/engine_int.h"

/* Largest cost estimate taken from a kernel (an hour, in microseconds). */
#define COST_MAX_US 3.6e9

/* ---- job heaps ---------------------------------------------------------- */

static inline int jbefore(const gx__job *a, const gx__job *b) {
    return a->priority != b->priority ? a->priority > b->priority : a->id < b->id;
}

static void jset(gx__jheap *h, uint32_t i, gx__job *j) {
    h->v[i] = j;
    j->qpos = i;
}

static void jup(gx__jheap *h, uint32_t i) {
    gx__job *j = h->v[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!jbefore(j, h->v[p])) break;
        jset(h, i, h->v[p]);
        i = p;
    }
    jset(h, i, j);
}

static void jdown(gx__jheap *h, uint32_t i) {
    gx__job *j = h->v[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        gx__job *best = j;
        if (l < h->n && jbefore(h->v[l], best)) m = l, best = h->v[l];
        if (r < h->n && jbefore(h->v[r], best)) m = r;
        if (m == i) break;
        jset(h, i, h->v[m]);
        i = m;
    }
    jset(h, i, j);
}

static int jpush(gx__jheap *h, gx__job *j) {
    if (h->n == h->cap) {
        uint32_t nc = h->cap ? h->cap * 2 : 8;
        gx__job **nv = realloc(h->v, nc * sizeof *nv);
        if (!nv) return GX_ENOMEM;
        h->v = nv;
        h->cap = nc;
    }
    h->v[h->n] = j;
    j->qpos = h->n++;
    jup(h, j->qpos);
    return 0;
}

static void jremove(gx__jheap *h, gx__job *j) {
    uint32_t i = j->qpos;
    j->qpos = GX__NOPOS;
    h->n--;
    if (i == h->n) return;
    gx__job *last = h->v[h->n];
    jset(h, i, last);
    jup(h, i);
    jdown(h, last->qpos);
}

/* ---- tenant heaps (one per class) ---------------------------------------- */

static inline double tkey(const gx__tenant *t) { return t->vtime; }

static void tset(gx_engine *e, int c, uint32_t i, gx__tenant *t) {
    e->ch[c][i] = t;
    t->hpos[c] = i;
}

static void tup(gx_engine *e, int c, uint32_t i) {
    gx__tenant *t = e->ch[c][i];
    double k = tkey(t);
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!(k < tkey(e->ch[c][p]))) break;
        tset(e, c, i, e->ch[c][p]);
        i = p;
    }
    tset(e, c, i, t);
}

static void tdown(gx_engine *e, int c, uint32_t i) {
    gx__tenant *t = e->ch[c][i];
    double k = tkey(t);
    uint32_t n = e->chn[c];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        double bk = k;
        if (l < n && tkey(e->ch[c][l]) < bk) m = l, bk = tkey(e->ch[c][l]);
        if (r < n && tkey(e->ch[c][r]) < bk) m = r;
        if (m == i) break;
        tset(e, c, i, e->ch[c][m]);
        i = m;
    }
    tset(e, c, i, t);
}

static int tpush(gx_engine *e, int c, gx__tenant *t) {
    if (e->chn[c] == e->chcap[c]) {
        uint32_t nc = e->chcap[c] ? e->chcap[c] * 2 : 16;
        gx__tenant **nv = realloc(e->ch[c], nc * sizeof *nv);
        if (!nv) return GX_ENOMEM;
        e->ch[c] = nv;
        e->chcap[c] = nc;
    }
    uint32_t i = e->chn[c]++;
    tset(e, c, i, t);
    tup(e, c, i);
    return 0;
}

static void tremove(gx_engine *e, int c, gx__tenant *t) {
    uint32_t i = t->hpos[c];
    if (i == GX__NOPOS) return;
    t->hpos[c] = GX__NOPOS;
    uint32_t n = --e->chn[c];
    if (i == n) return;
    gx__tenant *last = e->ch[c][n];
    tset(e, c, i, last);
    tup(e, c, i);
    tdown(e, c, last->hpos[c]);
}

/* ---- setup ---------------------------------------------------------------- */

int gx__sched_init(gx_engine *e) {
    e->ncls = GX__CLS_DEV0 + e->ndev;
    e->ch = calloc((size_t)e->ncls, sizeof *e->ch);
    e->chn = calloc((size_t)e->ncls, sizeof *e->chn);
    e->chcap = calloc((size_t)e->ncls, sizeof *e->chcap);
    if (!e->ch || !e->chn || !e->chcap) return GX_ENOMEM;
    e->fair_scale = 1;
    e->fair_epoch = gx__now_ns();
    double hl = e->o.fair_halflife_s > 0 ? e->o.fair_halflife_s : 60;
    e->fair_k = log(2.0) / (hl * 1e9);
    return 0;
}

void gx__sched_free(gx_engine *e) {
    for (uint32_t i = 0; i < e->ntenants; i++) {
        for (int c = 0; c < e->ncls; c++) free(e->tenants[i].q[c].v);
        free(e->tenants[i].q);
        free(e->tenants[i].hpos);
    }
    free(e->tenants);
    for (int c = 0; c < e->ncls; c++) free(e->ch[c]);
    free(e->ch);
    free(e->chn);
    free(e->chcap);
    free(e->parked);
}

int gx__tenant_new(gx_engine *e, const char *name, double weight, int max_running, uint32_t *id) {
    if (e->ntenants == e->captenants) {
        uint32_t nc = e->captenants ? e->captenants * 2 : 16;
        /* tenants are referenced from class heaps by pointer: rebuild them */
        gx__tenant *nt = realloc(e->tenants, nc * sizeof *nt);
        if (!nt) return GX_ENOMEM;
        e->tenants = nt;
        e->captenants = nc;
        for (int c = 0; c < e->ncls; c++)
            for (uint32_t i = 0; i < e->chn[c]; i++) e->ch[c][i] = NULL;
        for (uint32_t t = 0; t < e->ntenants; t++)
            for (int c = 0; c < e->ncls; c++)
                if (nt[t].hpos[c] != GX__NOPOS) e->ch[c][nt[t].hpos[c]] = &nt[t];
    }
    gx__tenant *t = &e->tenants[e->ntenants];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->weight = weight;
    t->max_running = max_running;
    t->q = calloc((size_t)e->ncls, sizeof *t->q);
    t->hpos = malloc((size_t)e->ncls * sizeof *t->hpos);
    if (!t->q || !t->hpos) {
        free(t->q);
        free(t->hpos);
        return GX_ENOMEM;
    }
    for (int c = 0; c < e->ncls; c++) t->hpos[c] = GX__NOPOS;
    if (gx__hmap_put(&e->tenant_ix, name, strlen(name), e->ntenants)) {
        free(t->q);
        free(t->hpos);
        return GX_ENOMEM;
    }
    *id = e->ntenants++;
    return 0;
}

/* ---- queue operations ----------------------------------------------------- */

/* Nothing queued (of any class), nothing placed or running. */
int gx__tenant_idle(gx_engine *e, const gx__tenant *t) {
    if (t->running) return 0;
    for (int c = 0; c < e->ncls; c++)
        if (t->q[c].n) return 0;
    return 1;
}

/* An idle tenant starts level with the least-used active tenant when work
 * comes: its own key only ever rises to that. Active is anything queued or
 * running, so a tenant with all its jobs placed (out of the class heaps)
 * counts too. A tenant at its running limit counts only when no other is
 * active: its key lags behind the share it cannot use, and a newcomer level
 * with it would take the machine from the others until it caught up. The
 * scan runs only on this transition. */
static void level_if_idle(gx_engine *e, gx__tenant *t) {
    if (!gx__tenant_idle(e, t)) return;
    double minkey = -1, minheld = -1;
    for (uint32_t i = 0; i < e->ntenants; i++) {
        const gx__tenant *o = &e->tenants[i];
        if (o == t || gx__tenant_idle(e, o)) continue;
        /* without the estimates of its jobs still running: work not done
         * is no usage to be level with (a newcomer took on a long running
         * job's whole cost, and half its share for as long as it ran) */
        double k = tkey(o) - o->vheld;
        if (k < 0) k = 0;
        double *m = o->throttled ? &minheld : &minkey;
        if (*m < 0 || k < *m) *m = k;
    }
    if (minkey < 0) minkey = minheld;
    if (minkey > t->vtime) t->vtime = minkey;
}

int gx__sched_enqueue(gx_engine *e, gx__job *j) {
    gx__tenant *t = &e->tenants[j->tenant];
    int c = j->cls;
    if (t->hpos[c] == GX__NOPOS) level_if_idle(e, t);
    int rc = jpush(&t->q[c], j);
    if (rc) return rc;
    if (!t->throttled && t->hpos[c] == GX__NOPOS) {
        rc = tpush(e, c, t);
        if (rc) {
            jremove(&t->q[c], j);
            return rc;
        }
    }
    return 0;
}

void gx__sched_remove(gx_engine *e, gx__job *j) {
    if (j->qpos == GX__NOPOS) return;
    gx__tenant *t = &e->tenants[j->tenant];
    int c = j->cls;
    jremove(&t->q[c], j);
    if (!t->q[c].n) tremove(e, c, t);
}

static void refresh_scale(gx_engine *e, int64_t now) {
    e->fair_scale = exp(e->fair_k * (double)(now - e->fair_epoch));
    if (e->fair_scale > 1e60) {
        for (uint32_t i = 0; i < e->ntenants; i++) {
            e->tenants[i].usage /= e->fair_scale;
            e->tenants[i].vtime /= e->fair_scale;
            e->tenants[i].vheld /= e->fair_scale;
        }
        e->fair_fold = e->fair_scale; /* placed jobs' charges shrink by it when taken back */
        e->fair_gen++;
        e->fair_epoch = now;
        e->fair_scale = 1;
    }
}

double gx__sched_usage_s(gx_engine *e, const gx__tenant *t) {
    double scale = exp(e->fair_k * (double)(gx__now_ns() - e->fair_epoch));
    return t->usage / scale / 1e6;
}

/* Re-sort a tenant in every class heap after its usage changed. */
static void tenant_moved(gx_engine *e, gx__tenant *t, int grew) {
    for (int c = 0; c < e->ncls; c++) {
        uint32_t p = t->hpos[c];
        if (p == GX__NOPOS) continue;
        if (grew)
            tdown(e, c, p);
        else
            tup(e, c, p);
    }
}

void gx__sched_charge(gx_engine *e, gx__job *j, double actual_us) {
    gx__tenant *t = &e->tenants[j->tenant];
    /* the scale of now: a job that ran long is charged as of its end (the
     * scale was refreshed only at dispatch, which waits while every slot
     * is busy, so a long job was charged as if it had all happened at its
     * start, and decay forgave most of it) */
    refresh_scale(e, gx__now_ns());
    t->usage += actual_us * e->fair_scale; /* done work only */
    /* the estimate's charge comes back exactly as it was made (a weight
     * changed since, or the scale grew, leaves no remainder), and the
     * actual time is charged under the weight of now */
    double charged = j->vgen == e->fair_gen ? j->vcharge : j->vgen + 1 == e->fair_gen ? j->vcharge / e->fair_fold : 0;
    double vdelta = actual_us * e->fair_scale / t->weight - charged;
    j->vcharge = 0;
    t->vheld -= charged;
    if (t->vheld < 0 || !t->running) t->vheld = 0; /* rounding; none held with nothing placed */
    t->vtime += vdelta;
    if (t->vtime < 0) t->vtime = 0;
    t->device_s += actual_us / 1e6;
    if (actual_us > 0) gx__quota_charge(t, actual_us / 1e6, gx__quota_now());
    tenant_moved(e, t, vdelta > 0);
}

void gx__sched_released(gx_engine *e, uint32_t tenant) {
    gx__tenant *t = &e->tenants[tenant];
    t->running--;
    if (t->throttled && (t->max_running <= 0 || t->running < t->max_running)) {
        t->throttled = 0;
        for (int c = 0; c < e->ncls; c++)
            if (t->q[c].n) tpush(e, c, t);
    }
}

void gx__sched_tenant_changed(gx_engine *e, uint32_t tenant) {
    gx__tenant *t = &e->tenants[tenant];
    for (int c = 0; c < e->ncls; c++)
        if (t->hpos[c] != GX__NOPOS) {
            tup(e, c, t->hpos[c]);
            tdown(e, c, t->hpos[c]);
        }
    int over = t->max_running > 0 && t->running >= t->max_running;
    if (over && !t->throttled) {
        t->throttled = 1;
        for (int c = 0; c < e->ncls; c++) tremove(e, c, t);
    } else if (!over && t->throttled) {
        t->throttled = 0;
        for (int c = 0; c < e->ncls; c++)
            if (t->q[c].n) tpush(e, c, t);
    }
}

int gx__cls_allows(gx_engine *e, int cls, int dev) {
    switch (cls) {
    case GX__CLS_ANY: return 1;
    case GX__CLS_CPU: return e->dev[dev].kind == GX_DEV_CPU;
    case GX__CLS_GPU: return e->dev[dev].kind == GX_DEV_CUDA;
    case GX__CLS_GPU_FB: /* a GPU; a CPU only while no GPU is usable */
        return e->dev[dev].kind == GX_DEV_CUDA || !gx__gpu_usable(e, NULL, 0);
    default: return cls - GX__CLS_DEV0 == dev;
    }
}

int gx__dev_has_room(gx_engine *e, const gx__device *d) {
    if (!d->healthy || d->drained) return 0;
    /* an open breaker takes nothing; a half-open one its one probe */
    if (d->brk.state != GX__BRK_CLOSED && !gx__brk_allow((gx__brk *)&d->brk, gx__now_ns())) return 0;
    int64_t inflight = (int64_t)d->rcount + d->running;
    int64_t slots = d->desc.slots > 0 ? d->desc.slots : 1;
    if (inflight < slots) return 1;
    /* beyond one job per slot, queue ahead only small work: long jobs stay
     * in the tenant queues where priorities and fair share still apply */
    return d->pending_cost < e->o.batch_quantum_us * (double)slots &&
           inflight < slots * (int64_t)e->o.max_batch * 2;
}

gx__kstat *gx__kinfo(gx_engine *e, const gx_kernel *k) {
    /* dispatch, completion and the breakers ask for the same kernel in a
     * row: remember the last answer */
    if (e->klast && e->klast->k == k) return e->klast;
    for (int i = 0; i < e->nkstats; i++)
        if (e->kstats[i].k == k) return e->klast = &e->kstats[i];
    if (e->nkstats == (int)(sizeof e->kstats / sizeof e->kstats[0])) return NULL;
    gx__kstat *s = &e->kstats[e->nkstats++];
    memset(s, 0, sizeof *s);
    s->k = k;
    s->ewma_us = -1;
    for (int d = 0; d < GX_DEV_KIND_COUNT; d++) s->impl[d] = gx_kernel_impl(k, (gx_dev_kind)d);
    return e->klast = s;
}

double gx__cost_estimate(gx_engine *e, const gx__job *j) {
    if (j->kernel->cost_us) {
        gx_kcall c;
        gx__kcall_init(&c, j->kernel, &j->bound, NULL, NULL);
        double v = j->kernel->cost_us(&c);
        /* a kernel's own estimate, within reason: an infinite one would make
         * the usage and pending-cost sums NaN when it is taken back */
        if (v >= 0 && isfinite(v)) return v < COST_MAX_US ? v : COST_MAX_US;
    }
    gx__kstat *s = gx__kinfo(e, j->kernel);
    if (s && s->ewma_us >= 0) return s->ewma_us;
    /* never measured and no estimate of its own: assume a whole batch
     * quantum, so that a worker takes such a job alone and only a slot's
     * worth of them queue ahead on a device, until the first one's run time
     * is known (a guess of "small" let a worker line up a quantum's worth
     * of them behind one that turned out long) */
    return e->o.batch_quantum_us;
}

void gx__kstat_record(gx_engine *e, const gx__job *j, int dev, double us) {
    gx__kstat *s = gx__kinfo(e, j->kernel);
    if (!s) return;
    s->ewma_us = s->ewma_us < 0 ? us : s->ewma_us + (us - s->ewma_us) * 0.05;
    s->n++;
    if (dev < 0 || dev >= GX__MAX_DEVICES) return;
    float rate = (float)(us / gx__size_units(j));
    s->dev_rate[dev] = s->dev_n[dev] ? s->dev_rate[dev] + (rate - s->dev_rate[dev]) * 0.1f : rate;
    if (s->dev_n[dev] < UINT32_MAX) s->dev_n[dev]++;
}

/* ---- dispatch ------------------------------------------------------------- */

/* Take a tenant whose best job of class c would exceed its memory quota out
 * of that class until the dispatch ends (its other classes and the other
 * tenants go on). 0, or -1 when it cannot be recorded (out of memory). */
static int park(gx_engine *e, gx__tenant *t, int c) {
    if (!t->parked) {
        if (e->nparked == e->capparked) {
            uint32_t nc = e->capparked ? e->capparked * 2 : 16;
            uint32_t *nv = realloc(e->parked, nc * sizeof *nv);
            if (!nv) return -1;
            e->parked = nv;
            e->capparked = nc;
        }
        e->parked[e->nparked++] = (uint32_t)(t - e->tenants);
    }
    t->parked |= 1ull << c;
    tremove(e, c, t);
    return 0;
}

static void unpark_all(gx_engine *e) {
    for (uint32_t i = 0; i < e->nparked; i++) {
        gx__tenant *t = &e->tenants[e->parked[i]];
        for (int c = 0; c < e->ncls; c++)
            if ((t->parked >> c & 1) && !t->throttled && t->q[c].n && t->hpos[c] == GX__NOPOS) tpush(e, c, t);
        t->parked = 0;
    }
    e->nparked = 0;
}

int gx__sched_dispatch(gx_engine *e, int limit, int unlimited) {
    if (e->paused && !unlimited) return 0;
    int placed = 0;
    uint64_t skip = 0; /* classes with no device to take their best job */
    int room[GX__MAX_DEVICES];
    int any_room = 0;
    for (int d = 0; d < e->ndev; d++) any_room |= room[d] = unlimited || gx__dev_has_room(e, &e->dev[d]);
    if (!any_room) return 0;
    refresh_scale(e, gx__now_ns());
    while (placed < limit) {
        int bc = -1;
        gx__tenant *bt = NULL;
        gx__job *bj = NULL;
        double bk = 0;
        for (int c = 0; c < e->ncls; c++) {
            if (!e->chn[c] || (skip >> c & 1)) continue;
            gx__tenant *t = e->ch[c][0];
            gx__job *j = t->q[c].v[0];
            double k = tkey(t);
            if (bc < 0 || k < bk || (k == bk && jbefore(j, bj))) bc = c, bt = t, bj = j, bk = k;
        }
        if (bc < 0) break;
        if (gx__quota_mem_over(bt, bj->mem)) {
            if (park(e, bt, bc)) skip |= 1ull << bc;
            continue;
        }
        gx__kbrk *bkb = gx__brk_kernel_of(e, bj->tenant, gx__kinfo(e, bj->kernel));
        if (bkb && bkb->brk.state != GX__BRK_CLOSED && !gx__brk_allow(&bkb->brk, gx__now_ns())) {
            /* its kernel's breaker is open: park it until the breaker lets
             * a probe go, so it does not hold up the jobs behind it */
            jremove(&bt->q[bc], bj);
            if (!bt->q[bc].n) tremove(e, bc, bt);
            if (gx__brk_park(e, bj)) { /* no memory to park it: leave it queued */
                if (gx__sched_enqueue(e, bj))
                    gx__finish(e, bj, GX_JOB_FAILED, GX_ENOMEM, "out of memory queueing the job", NULL);
                else
                    skip |= 1ull << bc;
            }
            continue;
        }
        int cand[GX__MAX_DEVICES], nc = 0;
        for (int d = 0; d < e->ndev; d++) {
            gx__device *dv = &e->dev[d];
            if (!room[d] || dv->drained || !gx__cls_allows(e, bc, d)) continue;
            if (dv->mem_used + bj->mem > dv->desc.mem_total) continue;
            cand[nc++] = d;
        }
        if (!nc) {
            skip |= 1ull << bc;
            continue;
        }
        int d = nc == 1 ? cand[0] : e->placer->pick(e, bj, cand, nc);
        gx__device *dv = &e->dev[d];
        if (gx__dev_ring_room(dv)) {
            /* out of memory growing its ring: the job stays queued and the
             * device takes nothing more in this dispatch */
            room[d] = 0;
            continue;
        }
        jremove(&bt->q[bc], bj);
        if (!bt->q[bc].n) tremove(e, bc, bt);
        bt->queued--;
        bt->running++;
        bj->cost_us = (float)gx__cost_estimate(e, bj);
        double cost = bj->cost_us; /* what completion takes back, to the bit */
        bj->vcharge = cost * e->fair_scale / bt->weight;
        bj->vgen = e->fair_gen;
        bt->vtime += bj->vcharge;
        bt->vheld += bj->vcharge;
        tenant_moved(e, bt, 1);
        if (bt->max_running > 0 && bt->running >= bt->max_running) {
            bt->throttled = 1;
            for (int c = 0; c < e->ncls; c++) tremove(e, c, bt);
        }
        bj->state = GX_JOB_SCHEDULED;
        bj->device = (int16_t)d;
        /* in half-open: the probe (marked on the job, which a device fault
         * may send back unstarted: health.c's unplace) */
        bj->probe = (uint8_t)((dv->brk.state == GX__BRK_HALF_OPEN) | (bkb && bkb->brk.state == GX__BRK_HALF_OPEN) << 1);
        gx__brk_sent(&dv->brk);
        if (bkb) gx__brk_sent(&bkb->brk);
        if (bc == GX__CLS_GPU_FB && dv->kind == GX_DEV_CPU && !bj->fallback) {
            char why[200], note[240];
            gx__gpu_usable(e, why, sizeof why);
            snprintf(note, sizeof note, "no healthy GPU: %s", why);
            bj->fallback = strdup(note); /* NULL under memory pressure: only the note is lost */
        } else if (bj->fallback && dv->kind != GX_DEV_CPU) {
            free(bj->fallback); /* this attempt runs on a GPU after all */
            bj->fallback = NULL;
        }
        dv->pending_cost += cost;
        dv->mem_used += bj->mem;
        bt->mem_used += bj->mem;
        gx__dev_push(dv, bj);
        placed++;
        if (!unlimited && !(room[d] = gx__dev_has_room(e, dv))) {
            int any = 0;
            for (int i = 0; i < e->ndev; i++) any |= room[i];
            if (!any) break;
        }
    }
    unpark_all(e);
    return placed;
}

int64_t gx__sched_position(gx_engine *e, const gx__job *j) {
    const gx__tenant *t = &e->tenants[j->tenant];
    int64_t ahead = 0;
    for (int c = 0; c < e->ncls; c++) {
        /* each queue is a heap, first at the root: below a job that is not
         * ahead of j nothing is, so only the jobs ahead are visited (a GET
         * of a job near the front of a million cost a pass over all of them,
         * under the engine's lock). Depth first: the stack holds at most a
         * node a level, 33 for 2^32 jobs. */
        const gx__jheap *h = &t->q[c];
        uint32_t stack[64];
        int sp = 0;
        if (h->n) stack[sp++] = 0;
        while (sp) {
            uint32_t i = stack[--sp];
            const gx__job *x = h->v[i];
            if (x == j || !jbefore(x, j)) continue;
            ahead++;
            uint32_t l = 2 * i + 1;
            if (l < h->n) stack[sp++] = l;
            if (l + 1 < h->n) stack[sp++] = l + 1;
        }
    }
    return ahead;
}
