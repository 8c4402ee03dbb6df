/*
 * fault.c - process-wide fault injection points (see gexec_fault.h).
 */
#include "gexec/gexec_fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

static const char *const point_names[GX_FAULT__COUNT] = {
    [GX_FAULT_STORE_COMMIT] = "store.commit", [GX_FAULT_STORE_FULL] = "store.full",
    [GX_FAULT_STORE_SLOW] = "store.slow",     [GX_FAULT_DEVICE_LAUNCH] = "device.launch",
    [GX_FAULT_DEVICE_HANG] = "device.hang",
};

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static gx_fault_spec armed[GX_FAULT__COUNT]; /* count == 0: not armed */
static atomic_uint armed_mask;               /* bit p set: point p armed */
static atomic_llong fired_total;

const char *gx_fault_point_name(gx_fault_point p) {
    return (unsigned)p < GX_FAULT__COUNT ? point_names[p] : NULL;
}

int gx_fault_point_parse(const char *name) {
    for (int p = 0; name && p < GX_FAULT__COUNT; p++)
        if (!strcmp(name, point_names[p])) return p;
    return -1;
}

int gx_fault_arm(const gx_fault_spec *spec, gx_error *err) {
    if (!spec || (unsigned)spec->point >= GX_FAULT__COUNT)
        return gx_error_set(err, GX_EINVAL, "point", "unknown fault point");
    if (spec->device < -1)
        return gx_error_set(err, GX_EINVAL, "device", "device must be -1 (any) or a device index");
    if (spec->delay_us < 0 || spec->delay_us > 60 * 1000000LL)
        return gx_error_set(err, GX_EINVAL, "delay_us", "delay_us must be within 0..60000000");
    pthread_mutex_lock(&fault_mu);
    armed[spec->point] = *spec;
    armed[spec->point].fired = 0;
    if (spec->count != 0)
        atomic_fetch_or(&armed_mask, 1u << spec->point);
    else
        atomic_fetch_and(&armed_mask, ~(1u << spec->point));
    pthread_mutex_unlock(&fault_mu);
    return GX_OK;
}

void gx_fault_clear(gx_fault_point p) {
    pthread_mutex_lock(&fault_mu);
    for (int i = 0; i < GX_FAULT__COUNT; i++) {
        if (p != GX_FAULT__COUNT && (int)p != i) continue;
        memset(&armed[i], 0, sizeof armed[i]);
        atomic_fetch_and(&armed_mask, ~(1u << i));
    }
    pthread_mutex_unlock(&fault_mu);
}

int gx_fault_take(gx_fault_point p, int device, gx_fault_spec *out) {
    if ((unsigned)p >= GX_FAULT__COUNT) return 0;
    if (!(atomic_load_explicit(&armed_mask, memory_order_relaxed) & (1u << p))) return 0;
    int hit = 0;
    pthread_mutex_lock(&fault_mu);
    gx_fault_spec *s = &armed[p];
    if (s->count != 0 && (s->device < 0 || device < 0 || s->device == device)) {
        hit = 1;
        s->fired++;
        if (s->count > 0 && --s->count == 0) atomic_fetch_and(&armed_mask, ~(1u << p));
        if (out) *out = *s;
    }
    pthread_mutex_unlock(&fault_mu);
    if (hit) atomic_fetch_add(&fired_total, 1);
    return hit;
}

int gx_fault_list(gx_fault_spec *out, int cap) {
    int n = 0;
    pthread_mutex_lock(&fault_mu);
    for (int i = 0; i < GX_FAULT__COUNT; i++) {
        if (armed[i].count == 0) continue;
        if (n < cap && out) out[n] = armed[i];
        n++;
    }
    pthread_mutex_unlock(&fault_mu);
    return n;
}

int64_t gx_fault_fired_total(void) { return atomic_load(&fired_total); }
