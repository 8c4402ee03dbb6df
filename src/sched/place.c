/*
 * place.c - placement strategies: which of the devices that can take a job
 * gets it. Each strategy is one entry in a table; the engine picks one by
 * name at start.
 */
#include <stdio.h>
#include <string.h>

#include "exec/engine_int.h"

/* Jobs in flight per slot. */
static double load_of(const gx__device *d) { return ((double)d->rcount + (double)d->running) / gx__dev_slots(d); }

/* Fewest jobs in flight per slot; ties go to the device with the most free
 * memory, then the lowest index. */
static int least_loaded(gx_engine *e, const gx__job *j, const int *cand, int n) {
    (void)j;
    int best = cand[0];
    double bl = 0, bfree = 0;
    for (int i = 0; i < n; i++) {
        const gx__device *d = &e->dev[cand[i]];
        double load = load_of(d);
        double fr = (double)(d->desc.mem_total - d->mem_used);
        if (i == 0 || load < bl || (load == bl && fr > bfree)) best = cand[i], bl = load, bfree = fr;
    }
    return best;
}

/* Devices in turn, skipping those that cannot take the job. */
static int round_robin(gx_engine *e, const gx__job *j, const int *cand, int n) {
    (void)j;
    for (int k = 0; k < e->ndev; k++) {
        int d = (e->rr_next + k) % e->ndev;
        for (int i = 0; i < n; i++)
            if (cand[i] == d) {
                e->rr_next = (d + 1) % e->ndev;
                return d;
            }
    }
    return cand[0];
}

/* The device the job fills best: the least memory left free once it is
 * placed (every candidate has room for it), so that the devices with the
 * most free memory stay for the jobs that need it; ties by load, then
 * index. */
static int memory_best_fit(gx_engine *e, const gx__job *j, const int *cand, int n) {
    int best = cand[0];
    uint64_t bleft = 0;
    double bl = 0;
    for (int i = 0; i < n; i++) {
        const gx__device *d = &e->dev[cand[i]];
        uint64_t fr = d->desc.mem_total - d->mem_used;
        uint64_t left = fr > j->mem ? fr - j->mem : 0;
        double load = load_of(d);
        if (i == 0 || left < bleft || (left == bleft && load < bl)) best = cand[i], bleft = left, bl = load;
    }
    return best;
}

/* The fastest expected finish: the work already placed on a device (its
 * estimated microseconds per slot) plus the job's run time there, from the
 * kernel's measured run times per device and job size. A device where the
 * kernel has not run yet is tried first (GPUs before CPUs, then the lowest
 * index), so every device gets measured; ties by load. */
static int perf_model(gx_engine *e, const gx__job *j, const int *cand, int n) {
    const gx__kstat *ks = gx__kinfo(e, j->kernel);
    if (!ks) return least_loaded(e, j, cand, n);
    int untried = -1;
    for (int i = 0; i < n; i++)
        if (!ks->dev_n[cand[i]] && (untried < 0 || (e->dev[cand[i]].kind != GX_DEV_CPU &&
                                                    e->dev[untried].kind == GX_DEV_CPU)))
            untried = cand[i];
    if (untried >= 0) return untried;
    double size = gx__size_units(j);
    int best = cand[0];
    double bt = 0, bl = 0;
    for (int i = 0; i < n; i++) {
        const gx__device *d = &e->dev[cand[i]];
        double t = d->pending_cost / gx__dev_slots(d) + (double)ks->dev_rate[cand[i]] * size;
        double load = load_of(d);
        if (i == 0 || t < bt || (t == bt && load < bl)) best = cand[i], bt = t, bl = load;
    }
    return best;
}

static const gx__placer placers[] = {
    {"least_loaded", least_loaded},
    {"round_robin", round_robin},
    {"memory_best_fit", memory_best_fit},
    {"perf_model", perf_model},
};

const gx__placer *gx__placer_find(const char *name) {
    if (!name || !*name) return &placers[0];
    for (size_t i = 0; i < sizeof placers / sizeof placers[0]; i++)
        if (!strcmp(placers[i].name, name)) return &placers[i];
    return NULL;
}

void gx__placer_names(char *buf, size_t cap) {
    size_t l = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof placers / sizeof placers[0] && l < cap; i++) {
        int n = snprintf(buf + l, cap - l, "%s%s", i ? ", " : "", placers[i].name);
        if (n < 0) break;
        l += (size_t)n;
    }
}
