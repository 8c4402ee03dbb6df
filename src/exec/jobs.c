/*
 * jobs.c - reading and steering jobs, tenants and devices: get (with the
 * reason a job waits), wait, outputs, cancel, forget, list, stats.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "str.h"
#include "engine_int.h"

static const char *const state_names[GX_JOB_STATE_COUNT] = {
    "queued", "waiting", "scheduled", "running", "retrying",
    "succeeded", "failed", "cancelled", "timed_out", "dead",
};

const char *gx_job_state_name(int s) {
    return s >= 0 && s < GX_JOB_STATE_COUNT ? state_names[s] : "unknown";
}

int gx_job_state_from_name(const char *name) {
    for (int i = 0; name && i < GX_JOB_STATE_COUNT; i++)
        if (!strcmp(state_names[i], name)) return i;
    return -1;
}

int gx_job_state_is_final(int s) { return s >= GX_JOB_SUCCEEDED && s < GX_JOB_STATE_COUNT; }

const char *gx_wait_reason_name(int r) {
    static const char *const n[] = {
        [GX_WAIT_NONE] = "none",           [GX_WAIT_QUEUE] = "queue",     [GX_WAIT_DEPENDENCY] = "dependency",
        [GX_WAIT_TENANT_LIMIT] = "tenant_limit", [GX_WAIT_NO_DEVICE] = "no_device", [GX_WAIT_BACKOFF] = "backoff",
        [GX_WAIT_PLACED] = "placed",       [GX_WAIT_TENANT_MEMORY] = "tenant_memory",
        [GX_WAIT_CIRCUIT] = "circuit_open",
    };
    return r >= 0 && r < (int)(sizeof n / sizeof n[0]) && n[r] ? n[r] : "unknown";
}

void gx_job_spec_init(gx_job_spec *s) {
    memset(s, 0, sizeof *s);
    s->priority = GX_PRIORITY_TENANT;
}

/* Whether some healthy device that may take the job has the memory for it
 * once its current work ends. */
static int device_fits(gx_engine *e, const gx__job *j) {
    for (int d = 0; d < e->ndev; d++)
        if (gx__cls_allows(e, j->cls, d) && e->dev[d].healthy && !e->dev[d].drained &&
            e->dev[d].mem_used + j->mem <= e->dev[d].desc.mem_total)
            return 1;
    return 0;
}

/* Every device the job may use has its breaker open: say which. */
static int breaker_holds(gx_engine *e, const gx__job *j, char *out, size_t cap) {
    int n = 0, held = 0;
    const gx__device *first = NULL;
    for (int d = 0; d < e->ndev; d++) {
        if (!gx__cls_allows(e, j->cls, d) || !e->dev[d].healthy || e->dev[d].drained) continue;
        n++;
        if (e->dev[d].brk.state != GX__BRK_CLOSED) {
            held++;
            if (!first) first = &e->dev[d];
        }
    }
    if (!n || held < n) return 0;
    gx__brk_device_reason(e, first, out, cap);
    return 1;
}

/* Every device the job may use is drained or unhealthy, one at least
 * drained: name it (an operator undrains it, the health loop never does). */
static int drain_holds(gx_engine *e, const gx__job *j, char *out, size_t cap) {
    const gx__device *first = NULL;
    for (int d = 0; d < e->ndev; d++) {
        if (!gx__cls_allows(e, j->cls, d)) continue;
        if (e->dev[d].healthy && !e->dev[d].drained) return 0;
        if (!first && e->dev[d].drained) first = &e->dev[d];
    }
    if (!first) return 0;
    snprintf(out, cap, "%.24s drained by an operator", first->desc.name);
    return 1;
}

/* No device the job may use is healthy: say which and why (its status). */
static int none_healthy(gx_engine *e, const gx__job *j, char *out, size_t cap) {
    const gx__device *first = NULL;
    for (int d = 0; d < e->ndev; d++) {
        if (!gx__cls_allows(e, j->cls, d)) continue;
        if (e->dev[d].healthy) return 0;
        if (!first) first = &e->dev[d];
    }
    if (!first) return 0;
    /* the name and status are cut to fit gx_job_info.reason, at a word */
    const char *st = first->status[0] ? first->status : "unhealthy";
    int n = (int)strlen(st);
    if (n > 90) {
        n = 87;
        while (n > 40 && st[n] != ' ') n--;
    }
    snprintf(out, cap, "no device it may use is healthy: %.24s %.*s%s", first->desc.name, n, st,
             n < (int)strlen(st) ? "..." : "");
    return 1;
}

/* Rough microseconds until a queued job starts: the work placed on the
 * healthy devices it may use, then its tenant's `ahead` jobs (each taken as
 * long as this one's estimate) at the tenant's fair share of them, spread
 * over their slots. -1 when no device may take it. */
static double start_in_us(gx_engine *e, const gx__job *j, int64_t ahead) {
    double placed = 0, slots = 0;
    for (int d = 0; d < e->ndev; d++) {
        const gx__device *dv = &e->dev[d];
        if (!gx__cls_allows(e, j->cls, d) || !dv->healthy || dv->drained) continue;
        placed += dv->pending_cost;
        slots += gx__dev_slots(dv);
    }
    if (!slots) return -1;
    const gx__tenant *t = &e->tenants[j->tenant];
    double wsum = 0;
    for (uint32_t i = 0; i < e->ntenants; i++) {
        const gx__tenant *o = &e->tenants[i];
        if (o == t || !gx__tenant_idle(e, o)) wsum += o->weight;
    }
    double share = wsum > 0 ? t->weight / wsum : 1;
    return (placed + (double)ahead * gx__cost_estimate(e, j) / share) / slots;
}

static void explain(gx_engine *e, const gx__job *j, gx_job_info *o) {
    const gx__tenant *t = &e->tenants[j->tenant];
    o->start_in_s = -1;
    switch (j->state) {
    case GX_JOB_WAITING:
        o->wait_reason = GX_WAIT_DEPENDENCY;
        o->wait_on = j->wait_on;
        snprintf(o->reason, sizeof o->reason, "waiting on job %llu (%u dependencies left)",
                 (unsigned long long)j->wait_on, j->deps_pending);
        break;
    case GX_JOB_RETRYING:
        o->wait_reason = GX_WAIT_BACKOFF;
        snprintf(o->reason, sizeof o->reason, "attempt %d failed; next attempt in %lld ms", j->attempts,
                 (long long)((j->deadline - gx__now_ns()) / 1000000));
        break;
    case GX_JOB_SCHEDULED:
        o->wait_reason = GX_WAIT_PLACED;
        snprintf(o->reason, sizeof o->reason, "placed on %s, about to start", e->dev[j->device].desc.name);
        break;
    case GX_JOB_QUEUED:
        o->position = gx__sched_position(e, j);
        if (j->parked) {
            o->wait_reason = GX_WAIT_CIRCUIT;
            gx__brk_kernel_reason(e, j, o->reason, sizeof o->reason);
        } else if (t->throttled) {
            o->wait_reason = GX_WAIT_TENANT_LIMIT;
            snprintf(o->reason, sizeof o->reason, "tenant %s at its max_running quota (%lld of %d running)",
                     t->name, (long long)t->running, t->max_running);
        } else if (gx__quota_mem_over(t, j->mem)) {
            char used[16], lim[16], need[16];
            gx__fmt_bytes(t->mem_used, used, sizeof used);
            gx__fmt_bytes(t->max_mem, lim, sizeof lim);
            gx__fmt_bytes(j->mem, need, sizeof need);
            o->wait_reason = GX_WAIT_TENANT_MEMORY;
            snprintf(o->reason, sizeof o->reason,
                     "tenant %.32s at its max_device_memory_bytes quota (%s of %s in use, job needs %s)", t->name,
                     used, lim, need);
        } else if (drain_holds(e, j, o->reason, sizeof o->reason)) {
            o->wait_reason = GX_WAIT_NO_DEVICE;
        } else if (none_healthy(e, j, o->reason, sizeof o->reason)) {
            o->wait_reason = GX_WAIT_NO_DEVICE;
        } else if (!device_fits(e, j)) {
            o->wait_reason = GX_WAIT_NO_DEVICE;
            snprintf(o->reason, sizeof o->reason,
                     "no healthy device it may use has %llu bytes of memory free now",
                     (unsigned long long)j->mem);
        } else if (breaker_holds(e, j, o->reason, sizeof o->reason)) {
            o->wait_reason = GX_WAIT_NO_DEVICE;
        } else {
            o->wait_reason = GX_WAIT_QUEUE;
            double us = start_in_us(e, j, o->position);
            /* past ~30 years (a tenant of weight 1e-6 beside one of 1e6) it
             * says nothing: unknown, and no number past what JSON writes */
            if (!(us >= 0 && us <= 1e15)) us = -1;
            o->start_in_s = us >= 0 ? us / 1e6 : -1;
            char when[48] = "";
            if (us >= 0) snprintf(when, sizeof when, "; expected to start in ~%.3g s", us / 1e6);
            if (o->position)
                snprintf(o->reason, sizeof o->reason, "%lld job%s of tenant %s ahead of it; devices busy%s",
                         (long long)o->position, o->position == 1 ? "" : "s", t->name, when);
            else
                snprintf(o->reason, sizeof o->reason, "next of tenant %s; devices busy%s", t->name, when);
        }
        break;
    default: break;
    }
}

int gx_job_find_idempotent(gx_engine *e, const char *tenant, const char *key, gx_job_id *id) {
    if (!e || !key || !id) return GX_ENOTFOUND;
    const char *tname = tenant ? tenant : "default";
    char ikey[300];
    int rc = GX_ENOTFOUND;
    pthread_mutex_lock(&e->mu);
    uint64_t tid, orig;
    if (gx__hmap_get(&e->tenant_ix, tname, strlen(tname), &tid)) {
        int n = snprintf(ikey, sizeof ikey, "%u/%s", (unsigned)tid, key);
        if (n > 0 && (size_t)n < sizeof ikey && gx__hmap_get(&e->idem, ikey, (size_t)n, &orig)) {
            *id = orig;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* "name@version" into out (the name cut, never the version; cap >= 12),
 * without printf: gx_job_get runs under the engine's lock for every reply.
 * Versions are >= 1 (gx__kernel_register). */
static void kernel_text(char *out, size_t cap, const char *name, int version) {
    char v[12];
    int n = 0;
    unsigned u = version < 0 ? 0u : (unsigned)version;
    do v[n++] = (char)('0' + u % 10);
    while (u /= 10);
    size_t k = gx_str_copy(out, cap - 1 - (size_t)n, name);
    out[k++] = '@';
    while (n) out[k++] = v[--n];
    out[k] = '\0';
}

int gx_job_get(gx_engine *e, gx_job_id id, gx_job_info *o, gx_error *err) {
    if (!e || !o) return gx_error_set(err, GX_EINVAL, NULL, "engine and out are required");
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&e->mu);
    gx__job *j = gx__job_get(e, id);
    if (!j) {
        pthread_mutex_unlock(&e->mu);
        return gx_error_set(err, GX_ENOTFOUND, "id", "no job %llu", (unsigned long long)id);
    }
    o->id = j->id;
    o->tenant = j->tenant;
    gx_str_copy(o->tenant_name, sizeof o->tenant_name, e->tenants[j->tenant].name);
    kernel_text(o->kernel, sizeof o->kernel, j->kernel->name, j->kernel->version);
    o->state = j->state;
    o->priority = j->priority;
    o->attempts = j->attempts;
    o->max_attempts = j->max_attempts;
    o->device = j->device;
    if (j->device >= 0) gx_str_copy(o->device_name, sizeof o->device_name, e->dev[j->device].desc.name);
    o->submit_ns = gx__to_wall(e, j->submit_ns);
    o->start_ns = gx__to_wall(e, j->start_ns);
    o->end_ns = gx__to_wall(e, j->end_ns);
    int64_t qend = j->start_ns ? j->start_ns : (j->end_ns ? j->end_ns : gx__now_ns());
    o->queue_ns = qend - j->submit_ns;
    o->run_ns = j->run_ns;
    if (j->state == GX_JOB_RUNNING) o->run_ns = gx__now_ns() - j->start_ns;
    o->error_code = j->error_code;
    if (j->error) gx_str_copy(o->error, sizeof o->error, j->error);
    o->wait_on = 0;
    o->position = 0;
    explain(e, j, o);
    o->nlabels = j->nlabels;
    o->mem_bytes = j->mem;
    if (j->fallback) gx_str_copy(o->fallback, sizeof o->fallback, j->fallback);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int gx_job_label(gx_engine *e, gx_job_id id, int i, char *key, size_t keycap, char *val, size_t valcap) {
    if (!e) return GX_EINVAL;
    pthread_mutex_lock(&e->mu);
    gx__job *j = gx__job_get(e, id);
    int rc = !j ? GX_ENOTFOUND : (i < 0 || i >= j->nlabels) ? GX_EINVAL : 0;
    if (!rc) {
        snprintf(key, keycap, "%s", j->labels[i].key);
        snprintf(val, valcap, "%s", j->labels[i].value);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int gx_job_wait(gx_engine *e, gx_job_id id, int64_t timeout_ms, int *state) {
    if (!e) return GX_EINVAL;
    if (timeout_ms > (int64_t)100 * 365 * 86400 * 1000) timeout_ms = -1; /* past a century: forever */
    int64_t until = timeout_ms > 0 ? gx__now_ns() + timeout_ms * 1000000 : 0;
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    for (;;) {
        gx__job *j = gx__job_get(e, id);
        if (!j) {
            rc = GX_ENOTFOUND;
            break;
        }
        if (state) *state = j->state;
        if (gx_job_state_is_final(j->state)) break;
        if (timeout_ms == 0 || e->stopping) {
            rc = GX_ETIMEDOUT;
            break;
        }
        e->waiters++;
        int w;
        if (timeout_ms < 0) {
            w = pthread_cond_wait(&e->done_cv, &e->mu);
        } else {
            struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
            w = pthread_cond_timedwait(&e->done_cv, &e->mu, &ts);
        }
        e->waiters--;
        if (w == ETIMEDOUT) {
            j = gx__job_get(e, id);
            if (j && state) *state = j->state;
            rc = j && gx_job_state_is_final(j->state) ? 0 : (j ? GX_ETIMEDOUT : GX_ENOTFOUND);
            break;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int gx_job_outputs(gx_engine *e, gx_job_id id, gx_output **outs, int *n, gx_error *err) {
    if (!e || !outs || !n) return gx_error_set(err, GX_EINVAL, NULL, "engine, outs and n are required");
    *outs = NULL;
    *n = 0;
    pthread_mutex_lock(&e->mu);
    gx__job *j = gx__job_get(e, id);
    int rc = 0;
    if (!j) {
        rc = gx_error_set(err, GX_ENOTFOUND, "id", "no job %llu", (unsigned long long)id);
    } else if (j->state != GX_JOB_SUCCEEDED) {
        rc = gx_error_set(err, GX_ESTATE, "state", "job %llu is %s; outputs exist only for succeeded jobs",
                          (unsigned long long)id, gx_job_state_name(j->state));
    } else {
        int k = j->kernel->noutputs;
        gx_output *o = calloc((size_t)(k ? k : 1), sizeof *o);
        if (!o) {
            rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
        } else {
            for (int i = 0; i < k; i++) {
                o[i].name = j->kernel->outputs[i].name;
                o[i].array = gx_array_ref(j->out[i]);
            }
            *outs = o;
            *n = k;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void gx_outputs_free(gx_output *outs, int n) {
    if (!outs) return;
    for (int i = 0; i < n; i++) gx_array_unref(outs[i].array);
    free(outs);
}

int gx_job_cancel(gx_engine *e, gx_job_id id, gx_error *err) {
    if (!e) return gx_error_set(err, GX_EINVAL, NULL, "engine is NULL");
    gx__evbuf eb;
    gx__evbuf_init(&eb);
    pthread_mutex_lock(&e->mu);
    gx__job *j = gx__job_get(e, id);
    int rc = 0;
    if (!j)
        rc = gx_error_set(err, GX_ENOTFOUND, "id", "no job %llu", (unsigned long long)id);
    else if (gx_job_state_is_final(j->state))
        rc = gx_error_set(err, GX_ESTATE, "state", "job %llu is already %s", (unsigned long long)id,
                          gx_job_state_name(j->state));
    else {
        gx__finish(e, j, GX_JOB_CANCELLED, GX_ECANCELED, "cancelled by request", &eb);
        gx__sched_dispatch(e, INT32_MAX, 0);
    }
    pthread_mutex_unlock(&e->mu);
    gx__ev_flush(e, &eb);
    return rc;
}

int gx_job_forget(gx_engine *e, gx_job_id id) {
    if (!e) return GX_EINVAL;
    pthread_mutex_lock(&e->mu);
    gx__job *j = gx__job_get(e, id);
    int rc = !j ? GX_ENOTFOUND : !gx_job_state_is_final(j->state) ? GX_ESTATE : j->busy ? GX_EBUSY : 0;
    if (!rc) gx__job_release(e, j);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

static int matches(gx_engine *e, const gx__job *j, const gx_list_filter *f, uint64_t tid, int has_tenant) {
    if (has_tenant && j->tenant != tid) return 0;
    if (f->state_mask && !(f->state_mask >> j->state & 1)) return 0;
    if (f->kernel && strcmp(f->kernel, j->kernel->name)) return 0;
    if (f->label_key) {
        int ok = 0;
        for (int i = 0; i < j->nlabels && !ok; i++)
            ok = !strcmp(j->labels[i].key, f->label_key) &&
                 (!f->label_value || !strcmp(j->labels[i].value, f->label_value));
        if (!ok) return 0;
    }
    (void)e;
    return 1;
}

int gx_job_list(gx_engine *e, const gx_list_filter *f, gx_job_id *ids, size_t cap, size_t *n,
                gx_job_id *next) {
    gx_list_filter none;
    memset(&none, 0, sizeof none);
    if (!f) f = &none;
    if (!e || !n || (cap && !ids)) return GX_EINVAL;
    *n = 0;
    if (next) *next = 0;
    if (f->after == UINT64_MAX) return 0; /* nothing comes after the last id */
    pthread_mutex_lock(&e->mu);
    uint64_t tid = 0;
    int has_tenant = f->tenant != NULL;
    if (has_tenant && !gx__hmap_get(&e->tenant_ix, f->tenant, strlen(f->tenant), &tid)) {
        pthread_mutex_unlock(&e->mu);
        return GX_ENOTFOUND;
    }
    for (gx_job_id id = f->after + 1; id <= e->max_id; id++) {
        size_t p = (size_t)((id - 1) >> 10);
        if (!e->pages[p]) {
            id = ((gx_job_id)(p + 1) << 10); /* skip the whole page */
            continue;
        }
        gx__job *j = gx__job_get(e, id);
        if (!j || !matches(e, j, f, tid, has_tenant)) continue;
        if (*n == cap) { /* more match: the next page starts after the last one here */
            if (next) *next = cap ? ids[cap - 1] : f->after;
            break;
        }
        ids[(*n)++] = id;
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* ---- tenants ---------------------------------------------------------- */

int gx_tenant_name_valid(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

int gx_tenant_name_new_valid(const char *s) {
    return gx_tenant_name_valid(s) && strcmp(s, ".") && strcmp(s, "..");
}

int gx_tenant_add(gx_engine *e, const gx_tenant_opts *t, uint32_t *id_out, gx_error *err) {
    if (!e || !t) return gx_error_set(err, GX_EINVAL, NULL, "engine and tenant are required");
    if (!gx_tenant_name_valid(t->name))
        return gx_error_set(err, GX_EINVAL, "name", "tenant names are 1..63 of [A-Za-z0-9_.-]");
    double w = t->weight == 0 ? 1 : t->weight;
    /* from 1e-6: a weight near 0 made the tenant's fair-share key infinite,
     * then NaN, which no comparison moves (it won or lost every dispatch) */
    if (!(w >= 1e-6) || w > 1e6 || !isfinite(w))
        return gx_error_set(err, GX_EINVAL, "weight", "weight must be within 1e-6..1e6; got %g", t->weight);
    if (t->max_running < 0)
        return gx_error_set(err, GX_EINVAL, "max_running", "max_running must be >= 0 (0 = no limit)");
    if (t->max_queued < 0)
        return gx_error_set(err, GX_EINVAL, "max_queued", "max_queued must be >= 0 (0 = no limit)");
    if (!(t->max_device_s_hour >= 0) || !isfinite(t->max_device_s_hour))
        return gx_error_set(err, GX_EINVAL, "device_seconds_per_hour",
                            "device_seconds_per_hour must be a finite number >= 0 (0 = no limit)");
    if (t->default_priority < -100 || t->default_priority > 100)
        return gx_error_set(err, GX_EINVAL, "default_priority", "default_priority must be -100..100; got %d",
                            t->default_priority);
    pthread_mutex_lock(&e->mu);
    uint64_t tid;
    int rc = 0;
    if (gx__hmap_get(&e->tenant_ix, t->name, strlen(t->name), &tid)) {
        gx__tenant *tt = &e->tenants[tid];
        tt->weight = w;
        tt->max_running = t->max_running;
        tt->max_queued = t->max_queued;
        tt->max_mem = t->max_mem;
        tt->max_dev_s_hour = t->max_device_s_hour;
        tt->default_priority = (int8_t)t->default_priority;
        gx__sched_tenant_changed(e, (uint32_t)tid);
        gx__sched_dispatch(e, INT32_MAX, 0);
    } else {
        uint32_t nid;
        rc = gx__tenant_new(e, t->name, w, t->max_running, &nid);
        tid = nid;
        if (!rc) {
            gx__tenant *tt = &e->tenants[nid];
            tt->max_queued = t->max_queued;
            tt->max_mem = t->max_mem;
            tt->max_dev_s_hour = t->max_device_s_hour;
            tt->default_priority = (int8_t)t->default_priority;
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) return gx_error_set(err, rc, NULL, "cannot add tenant: %s", gx_strerror(rc));
    if (id_out) *id_out = (uint32_t)tid;
    return 0;
}

static void tenant_info(gx_engine *e, uint32_t tid, gx_tenant_info *o) {
    const gx__tenant *t = &e->tenants[tid];
    memset(o, 0, sizeof *o);
    o->id = tid;
    snprintf(o->name, sizeof o->name, "%s", t->name);
    o->weight = t->weight;
    o->max_running = t->max_running;
    o->queued = t->queued;
    o->running = t->running;
    o->usage_s = gx__sched_usage_s(e, t);
    o->device_s = t->device_s;
    o->mem_used = t->mem_used;
    o->max_queued = t->max_queued;
    o->max_mem = t->max_mem;
    o->max_device_s_hour = t->max_dev_s_hour;
    o->default_priority = t->default_priority;
    o->device_s_hour = gx__quota_hour_s(t, gx__quota_now());
    o->reserved = t->reserved;
}

int gx_tenant_get(gx_engine *e, const char *name, gx_tenant_info *o) {
    if (!e || !name || !o) return GX_EINVAL;
    pthread_mutex_lock(&e->mu);
    uint64_t tid;
    int rc = GX_ENOTFOUND;
    if (gx__hmap_get(&e->tenant_ix, name, strlen(name), &tid)) {
        tenant_info(e, (uint32_t)tid, o);
        rc = 0;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int gx_tenant_default_priority(gx_engine *e, const char *name, int *prio) {
    if (!e || !name || !prio) return GX_EINVAL;
    pthread_mutex_lock(&e->mu);
    uint64_t tid;
    int found = gx__hmap_get(&e->tenant_ix, name, strlen(name), &tid);
    if (found) *prio = e->tenants[tid].default_priority;
    pthread_mutex_unlock(&e->mu);
    return found ? 0 : GX_ENOTFOUND;
}

int gx_tenant_list(gx_engine *e, gx_tenant_info *out, size_t cap, size_t *n) {
    if (!e || !n || (cap && !out)) return GX_EINVAL;
    pthread_mutex_lock(&e->mu);
    for (uint32_t i = 0; i < e->ntenants && i < cap; i++) tenant_info(e, i, &out[i]);
    *n = e->ntenants;
    pthread_mutex_unlock(&e->mu);
    return 0;
}

/* ---- devices and stats ------------------------------------------------ */

int gx_device_count(gx_engine *e) { return e ? e->ndev : 0; }

int gx_device_get(gx_engine *e, int i, gx_device_info *o) {
    if (!e || !o) return GX_EINVAL;
    if (!o || i < 0 || i >= e->ndev) return GX_ENOTFOUND;
    pthread_mutex_lock(&e->mu);
    const gx__device *d = &e->dev[i];
    memset(o, 0, sizeof *o);
    o->index = i;
    snprintf(o->name, sizeof o->name, "%s", d->desc.name);
    o->kind = d->kind;
    snprintf(o->model, sizeof o->model, "%s", d->desc.model);
    o->slots = d->desc.slots;
    o->mem_total = d->desc.mem_total;
    o->mem_used = d->mem_used;
    o->running = d->running;
    o->queued = d->rcount;
    o->healthy = d->healthy;
    snprintf(o->status, sizeof o->status, "%s", d->status);
    o->jobs_done = d->jobs_done;
    o->busy_s = d->busy_s;
    o->recovering = d->hstate == GX__H_PENDING || d->hstate == GX__H_RECOVERING;
    o->recoveries = d->recoveries;
    o->recovery_failures = d->recovery_failures;
    o->last_recovery_s = d->last_recovery_s;
    o->lost = d->hstate == GX__H_LOST;
    gx__brk_allow((gx__brk *)&d->brk, gx__now_ns()); /* show half-open once due */
    o->breaker_state = d->brk.state;
    o->breaker_failures = d->brk.failures;
    o->breaker_probe_ns = d->brk.state == GX__BRK_OPEN ? gx__to_wall(e, d->brk.probe_ns) : 0;
    o->breaker_transitions = d->brk.transitions;
    o->drained = d->drained;
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int gx_device_drain(gx_engine *e, int i, int on, gx_error *err) {
    if (!e) return gx_error_set(err, GX_EINVAL, NULL, "engine is NULL");
    if (i < 0 || i >= e->ndev) return gx_error_set(err, GX_ENOTFOUND, "index", "no device %d", i);
    pthread_mutex_lock(&e->mu);
    gx__device *d = &e->dev[i];
    d->drained = on != 0;
    if (!d->drained) gx__sched_dispatch(e, INT32_MAX, 0); /* its waiting work */
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void gx_engine_stats_get(gx_engine *e, gx_engine_stats *o) {
    if (!e || !o) return;
    pthread_mutex_lock(&e->mu);
    *o = e->st;
    o->live_jobs = e->live_jobs;
    int64_t running = 0;
    for (int d = 0; d < e->ndev; d++) running += e->dev[d].running + e->dev[d].rcount;
    o->running = running;
    o->queued = e->unfinished - running;
    uint64_t b = 0;
    for (size_t p = 0; p < e->npages; p++) {
        if (!e->pages[p]) continue;
        b += 1024 * sizeof(gx__job);
        for (uint32_t i = 0; i < 1024; i++) {
            const gx__job *j = &e->pages[p][i];
            if (!j->live) continue;
            b += j->capdependents * sizeof(gx_job_id);
            if (j->bound.block)
                b += (size_t)j->kernel->nargs * sizeof(double) + (size_t)j->kernel->ninputs * sizeof(void *) +
                     (size_t)j->bound.nall * 2 * sizeof(void *);
        }
    }
    b += e->npages * (sizeof(gx__job *) + sizeof(uint32_t));
    for (uint32_t t = 0; t < e->ntenants; t++)
        for (int c = 0; c < e->ncls; c++) b += e->tenants[t].q[c].cap * sizeof(gx__job *);
    b += e->captimers * sizeof(gx__job *) + gx__hmap_bytes(&e->idem);
    o->job_bytes = b;
    pthread_mutex_unlock(&e->mu);
}

const char *gx_engine_gpu_status(gx_engine *e) { return e ? e->gpu_status : "no engine"; }

int gx__dev_telemetry(gx_engine *e, gx__device *d, gx_device_telemetry *t) {
    memset(t, 0xff, sizeof *t); /* -1 everywhere: unknown */
    t->util_pct = t->mem_util_pct = t->temp_c = t->power_w = t->sm_clock_mhz = t->mem_clock_mhz = -1;
    gx_backend_dev *bd = d->bdev;
    if (!d->be->telemetry || !bd) return GX_EUNSUPPORTED;
    d->tel_busy++; /* a recovery waits before it closes the device */
    pthread_mutex_unlock(&e->mu);
    int rc = d->be->telemetry(bd, t);
    pthread_mutex_lock(&e->mu);
    if (--d->tel_busy == 0) pthread_cond_broadcast(&e->health_cv);
    return rc;
}

int gx_device_telemetry_get(gx_engine *e, int i, gx_device_telemetry *t) {
    if (!t || i < 0 || i >= e->ndev) return GX_ENOTFOUND;
    pthread_mutex_lock(&e->mu);
    int rc = gx__dev_telemetry(e, &e->dev[i], t);
    pthread_mutex_unlock(&e->mu);
    return rc;
}
