/*
 * place.c - placement strategies: which of the devices that can take a job
 * gets it. Each strategy is one entry in a table; the engine picks one by
 * name at start.
 */
#include <string.h>

#include "exec/engine_int.h"

/* Fewest jobs in flight per slot; ties go to the device with the most free
 * memory, then the lowest index. */
static int least_loaded(gx_engine *e, const int *cand, int n) {
    int best = cand[0];
    double bl = 0, bfree = 0;
    for (int i = 0; i < n; i++) {
        const gx__device *d = &e->dev[cand[i]];
        double slots = d->desc.slots > 0 ? d->desc.slots : 1;
        double load = ((double)d->rcount + (double)d->running) / slots;
        double fr = (double)(d->desc.mem_total - d->mem_used);
        if (i == 0 || load < bl || (load == bl && fr > bfree)) best = cand[i], bl = load, bfree = fr;
    }
    return best;
}

/* Devices in turn, skipping those that cannot take the job. */
static int round_robin(gx_engine *e, const int *cand, int n) {
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

static const gx__placer placers[] = {
    {"least_loaded", least_loaded},
    {"round_robin", round_robin},
};

const gx__placer *gx__placer_find(const char *name) {
    if (!name || !*name) return &placers[0];
    for (size_t i = 0; i < sizeof placers / sizeof placers[0]; i++)
        if (!strcmp(placers[i].name, name)) return &placers[i];
    return NULL;
}
