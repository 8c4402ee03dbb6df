/*
 * tenants.c - tenants and their quotas in the service: POST /v1/tenants
 * (weight and quotas, merged into what is stored), GET /v1/tenants, GET
 * /v1/tenants/{t}/usage, the admission check of submissions against the
 * quotas that refuse (max_queued, device-seconds per hour), and loading
 * the stored tenants into the engine at start.
 *
 * A tenant's quotas are stored as JSON in the tenants table (quotas
 * column) holding only the quotas set for that tenant; the others follow
 * the quota.default_* configuration, so changing a default reaches every
 * tenant that did not choose its own. `null` in a request removes a
 * tenant's own value (back to the default). The old max_running column is
 * still written (and read for rows from before quotas).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "service.h"

/* ---- the quota table ------------------------------------------------------ */

enum { Q_QUEUED, Q_RUNNING, Q_MEMORY, Q_DEVSEC, Q_COUNT };

typedef struct qdef {
    const char *name; /* JSON field, metric label and the name in messages */
    int integer;      /* 1: whole numbers only */
    double max;       /* largest value accepted */
    const char *unit; /* for the docs and messages */
} qdef;

static const qdef QDEFS[Q_COUNT] = {
    [Q_QUEUED] = {"max_queued", 1, 1e9, "jobs"},
    [Q_RUNNING] = {"max_running", 1, 1e9, "jobs"},
    [Q_MEMORY] = {"max_device_memory_bytes", 1, 1125899906842624.0 /* 1 PiB */, "bytes"},
    [Q_DEVSEC] = {"device_seconds_per_hour", 0, 1e9, "device-seconds"},
};

/* A tenant's quotas: v[q] is meaningful where bit q of set is 1; and the
 * priority of its jobs that set none, stored beside them (the quotas
 * column holds a JSON object). */
typedef struct quotas {
    double v[Q_COUNT];
    unsigned set;
    int default_priority; /* -100..100; 0 when not set */
} quotas;

static double qdefault(const gx_service *s, int q) {
    switch (q) {
    case Q_QUEUED: return (double)s->cfg.quota.max_queued;
    case Q_RUNNING: return (double)s->cfg.quota.max_running;
    case Q_MEMORY: return (double)s->cfg.quota.max_device_memory;
    default: return s->cfg.quota.device_seconds_per_hour;
    }
}

static double qeffective(const gx_service *s, const quotas *t, int q) {
    return (t->set >> q & 1) ? t->v[q] : qdefault(s, q);
}

/* Parse a stored row's quotas (unknown or bad members are ignored: the
 * row was checked when written). */
static void quotas_of_row(const gx_store_tenant *row, quotas *out) {
    memset(out, 0, sizeof *out);
    if (!row) return;
    if (row->max_running > 0) {
        out->v[Q_RUNNING] = row->max_running;
        out->set |= 1u << Q_RUNNING;
    }
    json_t *j = row->quotas_json ? json_loads(row->quotas_json, 0, NULL) : NULL;
    for (int q = 0; j && q < Q_COUNT; q++) {
        json_t *v = json_object_get(j, QDEFS[q].name);
        if (json_is_number(v) && json_number_value(v) >= 0) {
            out->v[q] = json_number_value(v);
            out->set |= 1u << q;
        }
    }
    json_t *dp = json_object_get(j, "default_priority");
    if (json_is_integer(dp) && json_integer_value(dp) >= -100 && json_integer_value(dp) <= 100)
        out->default_priority = (int)json_integer_value(dp);
    json_decref(j);
}

/* The stored form: only the quotas set for the tenant. malloc'd. */
static char *quotas_json(const quotas *t) {
    json_t *o = json_object();
    for (int q = 0; q < Q_COUNT; q++)
        if (t->set >> q & 1)
            json_object_set_new(o, QDEFS[q].name,
                                QDEFS[q].integer ? json_integer((json_int_t)t->v[q]) : json_real(t->v[q]));
    if (t->default_priority) json_object_set_new(o, "default_priority", json_integer(t->default_priority));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

static void engine_opts(const gx_service *s, const char *name, double weight, const quotas *t,
                        gx_tenant_opts *o) {
    memset(o, 0, sizeof *o);
    o->name = name;
    o->weight = weight;
    o->max_queued = (int64_t)qeffective(s, t, Q_QUEUED);
    o->max_running = (int)qeffective(s, t, Q_RUNNING);
    o->max_mem = (uint64_t)qeffective(s, t, Q_MEMORY);
    o->max_device_s_hour = qeffective(s, t, Q_DEVSEC);
    o->default_priority = t->default_priority;
}

int gx__svc_tenants_load(gx_service *s, gx_error *err) {
    quotas none;
    memset(&none, 0, sizeof none);
    gx_tenant_opts to;
    engine_opts(s, s->cfg.default_tenant, 1, &none, &to);
    int rc = gx_tenant_add(s->engine, &to, NULL, err);
    if (rc) return rc;
    gx_store_tenant *ts = NULL;
    size_t nt = 0;
    if (gx_store_tenant_list(s->store, &ts, &nt, NULL)) return 0;
    for (size_t i = 0; i < nt; i++) {
        quotas q;
        quotas_of_row(&ts[i], &q);
        /* weights were any number > 0 before 1e-6..1e6: one stored out of
         * that range is brought into it (the tenant was not restored, then
         * made again with weight 1 and its quotas lost) */
        double w = ts[i].weight;
        if (!(w >= 1e-6) || w > 1e6) {
            double was = w;
            w = w > 1e6 ? 1e6 : 1e-6;
            GX_LOGW("tenant %s: stored weight %g is out of 1e-6..1e6; it is %g now", ts[i].name, was, w);
        }
        engine_opts(s, ts[i].name, w, &q, &to);
        gx_error e;
        if (gx_tenant_add(s->engine, &to, NULL, &e)) GX_LOGW("tenant %s not restored: %s", ts[i].name, e.message);
    }
    gx_store_free(ts);
    return 0;
}

/* ---- device time of the trailing hour, across restarts -------------------
 *
 * Each tenant's slices (gx_tenant_hour_export) are stored as the setting
 * "quota.hour/<tenant>": "1 <wall ns of the export> <age ns>:<seconds> ...",
 * every USAGE_SAVE_NS while new device time is charged (by the persister)
 * and at shutdown; read back at start with the time since added to every
 * age. A crash loses at most the last USAGE_SAVE_NS of charges. */
#define USAGE_KEY "quota.hour/"
#define USAGE_SLICES 400 /* > GX__HOUR_BUCKETS */
#define HOUR_NS (3600 * INT64_C(1000000000))
/* " <age>:<seconds>" is at most 48 bytes: a full hour of slices fits a setting */
_Static_assert(USAGE_SLICES * 48 + 64 <= GX_STORE_SETTING_VALUE_MAX, "the trailing hour must fit one setting");

/* The index of tenant name's entry in s->usage; s->nusage when none. */
static size_t usage_slot(const gx_service *s, const char *name) {
    size_t k = 0;
    while (k < s->nusage && strcmp(s->usage[k].name, name)) k++;
    return k;
}

void gx__svc_usage_save(gx_service *s) {
    size_t n = 0;
    gx_tenant_list(s->engine, NULL, 0, &n);
    size_t cap = n;
    gx_tenant_info *ti = calloc(cap ? cap : 1, sizeof *ti);
    gx_usage_slice *sl = malloc(USAGE_SLICES * sizeof *sl);
    char **keys = calloc(cap ? cap : 1, sizeof *keys), **vals = calloc(cap ? cap : 1, sizeof *vals);
    size_t *which = calloc(cap ? cap : 1, sizeof *which);
    if (!ti || !sl || !keys || !vals || !which || gx_tenant_list(s->engine, ti, cap, &n)) n = 0;
    if (n > cap) n = cap; /* added since: saved next time */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* total device time only grows: unchanged since the last save, the
         * stored slices still hold (ages are kept against their wall time) */
        size_t k = usage_slot(s, ti[i].name);
        if (k < s->nusage && s->usage[k].device_s == ti[i].device_s) continue;
        if (k == s->nusage && ti[i].device_s == 0) continue; /* nothing charged since the start */
        size_t ns = 0;
        if (gx_tenant_hour_export(s->engine, ti[i].name, sl, USAGE_SLICES, &ns)) continue;
        char *text = ns ? malloc(USAGE_SLICES * 48 + 64) : NULL, *key = malloc(96);
        if ((ns && !text) || !key) {
            free(text);
            free(key);
            continue;
        }
        if (text) {
            int len = snprintf(text, 64, "1 %lld", (long long)gx__wall_ns());
            for (size_t j = 0; j < ns; j++)
                len += snprintf(text + len, 48, " %lld:%.17g", (long long)sl[j].age_ns, sl[j].seconds);
        }
        snprintf(key, 96, USAGE_KEY "%s", ti[i].name);
        keys[m] = key;
        vals[m] = text; /* NULL: nothing left in the hour, the setting goes */
        which[m++] = i;
    }
    /* every tenant's in one transaction: one fsync every USAGE_SAVE_NS */
    gx_error err;
    if (m && gx_store_settings_put(s->store, (const char *const *)keys, (const char *const *)vals, m, &err)) {
        GX_LOGW("quota: device time of %zu tenants not stored: %s", m, err.message);
        m = 0; /* tried again next time */
    }
    for (size_t j = 0; j < m; j++) {
        const gx_tenant_info *t = &ti[which[j]];
        size_t k = usage_slot(s, t->name);
        if (k == s->nusage) {
            void *nv = realloc(s->usage, (s->nusage + 1) * sizeof *s->usage);
            if (!nv) continue;
            s->usage = nv;
            snprintf(s->usage[k].name, sizeof s->usage[k].name, "%s", t->name);
            s->nusage++;
        }
        s->usage[k].device_s = t->device_s;
    }
    for (size_t j = 0; keys && vals && j < cap; j++) {
        free(keys[j]);
        free(vals[j]);
    }
    free(keys);
    free(vals);
    free(which);
    free(ti);
    free(sl);
}

void gx__svc_usage_load(gx_service *s) {
    gx_store_setting *v = NULL;
    size_t n = 0;
    gx_error err;
    if (gx_store_settings_get(s->store, USAGE_KEY, &v, &n, &err)) {
        GX_LOGW("quota: stored device time not read (%s); the trailing hour starts empty", err.message);
        return;
    }
    gx_usage_slice *sl = malloc(USAGE_SLICES * sizeof *sl);
    int64_t now = gx__wall_ns();
    for (size_t k = 0; sl && k < n; k++) {
        const char *tenant = v[k].key + strlen(USAGE_KEY), *p = v[k].value;
        char *end;
        long long ver = strtoll(p, &end, 10), wall = end != p ? strtoll(end, &end, 10) : 0;
        if (ver != 1 || wall <= 0) {
            GX_LOGW("quota: stored device time of tenant %s not understood; ignored", tenant);
            continue;
        }
        /* (an hour later every slice is gone anyway) */
        int64_t since = now > wall ? (now - wall < 2 * HOUR_NS ? now - wall : 2 * HOUR_NS) : 0;
        size_t ns = 0;
        for (p = end; *p == ' ' && ns < USAGE_SLICES;) {
            long long age = strtoll(p, &end, 10);
            if (*end != ':') break;
            double sec = strtod(end + 1, &end);
            p = end;
            /* only what an export can have written: anything else is dropped */
            if (!isfinite(sec) || sec <= 0 || sec > 3600.0 * 1e6 || age < 0 || age > HOUR_NS) continue;
            sl[ns++] = (gx_usage_slice){age + since, sec};
        }
        gx_error te;
        if (gx__svc_tenant_ensure(s, tenant, &te)) GX_LOGW("quota: tenant %s not restored: %s", tenant, te.message);
        if (gx_tenant_hour_import(s->engine, tenant, sl, ns)) GX_LOGW("quota: tenant %s not restored", tenant);
    }
    free(sl);
    gx_store_free(v);
}

int gx__svc_tenant_ensure(gx_service *s, const char *name, gx_error *err) {
    int prio;
    if (!gx_tenant_default_priority(s->engine, name, &prio)) return 0;
    /* checked again under the tenants' lock: a PUT /v1/tenants of the same
     * name meanwhile is not overwritten with the defaults */
    pthread_mutex_lock(&s->tmu);
    int rc = 0;
    if (gx_tenant_default_priority(s->engine, name, &prio)) {
        /* stored first: a tenant only the engine knew was gone at the next
         * start, and its jobs with it (refused by name at the restore) */
        gx_store_tenant st = {.name = name, .weight = 1};
        rc = gx_store_tenant_upsert(s->store, &st, err);
        if (!rc) {
            quotas none;
            memset(&none, 0, sizeof none);
            gx_tenant_opts to;
            engine_opts(s, name, 1, &none, &to);
            rc = gx_tenant_add(s->engine, &to, NULL, err);
        }
    }
    pthread_mutex_unlock(&s->tmu);
    return rc;
}

/* ---- POST /v1/tenants -------------------------------------------------- */

static int bad(gx_http_req *r, json_t *j, int status, int code, const char *field, const char *msg) {
    json_decref(j);
    gx_http_error(r, status, code, field, "%s", msg);
    return 0;
}

/* Apply the request's quota members to t. 0, or -1 with a 400 sent. */
static int quotas_from_body(gx_http_req *r, json_t *body, quotas *t) {
    for (int q = 0; q < Q_COUNT; q++) {
        const qdef *d = &QDEFS[q];
        json_t *v = json_object_get(body, d->name);
        if (!v) continue;
        if (json_is_null(v)) {
            t->set &= ~(1u << q);
            continue;
        }
        double x = json_number_value(v);
        int ok = d->integer ? json_is_integer(v) : json_is_number(v);
        if (!ok || !(x >= 0) || !isfinite(x) || x > d->max) {
            gx_http_error(r, 400, GX_EINVAL, d->name, "%s must be %s from 0 to %.0f (%s; 0 = no limit, null = the default)",
                          d->name, d->integer ? "an integer" : "a number", d->max, d->unit);
            return -1;
        }
        t->v[q] = x;
        t->set |= 1u << q;
    }
    return 0;
}

static json_t *limits_json(const gx_service *s, const quotas *t) {
    json_t *o = json_object();
    for (int q = 0; q < Q_COUNT; q++) {
        double v = qeffective(s, t, q);
        json_object_set_new(o, QDEFS[q].name, QDEFS[q].integer ? json_integer((json_int_t)v) : json_real(v));
    }
    return o;
}

/* "max_queued 0 -> 10, device_seconds_per_hour 0 -> 0.5" for the audit
 * log: effective values (a default shows as "default 0"). */
static void quota_changes(const gx_service *s, const quotas *was, int existed, const quotas *now, char *buf,
                          size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (int q = 0; q < Q_COUNT && n < cap; q++) {
        int ws = existed && (was->set >> q & 1), ns = now->set >> q & 1;
        double wv = existed ? qeffective(s, was, q) : qdefault(s, q), nv = qeffective(s, now, q);
        if (ws == ns && wv == nv) continue;
        int k = snprintf(buf + n, cap - n, "%s%s %s%.15g -> %s%.15g", n ? ", " : "", QDEFS[q].name,
                         ws ? "" : "default ", wv, ns ? "" : "default ", nv);
        if (k < 0) break;
        n += (size_t)k;
    }
}

int gx__h_tenant_put(void *app, gx_http_req *r) {
    gx_service *s = app;
    const char *allowed[Q_COUNT + 4] = {"name", "weight", "default_priority"};
    for (int q = 0; q < Q_COUNT; q++) allowed[3 + q] = QDEFS[q].name;
    gx_error e;
    gx_error_clear(&e);
    json_t *j = gx_json_object_body(r->body, r->body_len, allowed, &e);
    if (!j) return bad(r, NULL, 400, e.code, e.field, e.message);
    json_t *jn = json_object_get(j, "name"), *w = json_object_get(j, "weight");
    const char *name = json_string_value(jn);
    if (!name) return bad(r, j, 400, GX_EINVAL, "name", "name is required (a string)");
    if (w && (!json_is_number(w) || !(json_number_value(w) >= 1e-6) || json_number_value(w) > 1e6))
        return bad(r, j, 400, GX_EINVAL, "weight", "weight must be a number within 1e-6..1e6");
    json_t *dp = json_object_get(j, "default_priority");
    if (dp && !json_is_null(dp) &&
        (!json_is_integer(dp) || json_integer_value(dp) < -100 || json_integer_value(dp) > 100))
        return bad(r, j, 400, GX_EINVAL, "default_priority",
                   "default_priority must be an integer -100..100 (null: 0), the priority of the tenant's jobs "
                   "that set none");
    /* read, changed and written with no other change of a tenant between
     * (two PUTs each kept the other's quotas out; a key's tenant made
     * meanwhile reset them to the defaults) */
    pthread_mutex_lock(&s->tmu);
    gx_store_tenant *old = NULL;
    int rc = gx_store_tenant_get(s->store, name, &old, &e);
    if (rc && rc != GX_ENOTFOUND) {
        pthread_mutex_unlock(&s->tmu);
        json_decref(j);
        gx_http_error(r, gx_http_status_for(rc), rc, e.field, "%s", e.message);
        return 0;
    }
    if (!old && !gx_tenant_name_new_valid(name)) {
        pthread_mutex_unlock(&s->tmu);
        return bad(r, j, 400, GX_EINVAL, "name",
                   "a tenant name is 1 to 63 of [A-Za-z0-9_.-], and not \".\" or \"..\"");
    }
    quotas was, now;
    quotas_of_row(old, &was);
    now = was;
    double weight = w ? json_number_value(w) : old ? old->weight : 1;
    int existed = old != NULL;
    gx_store_free(old);
    if (quotas_from_body(r, j, &now)) {
        pthread_mutex_unlock(&s->tmu);
        json_decref(j);
        return 0;
    }
    if (dp) now.default_priority = json_is_null(dp) ? 0 : (int)json_integer_value(dp);
    char *qj = quotas_json(&now);
    gx_store_tenant st = {.name = name,
                          .weight = weight,
                          .max_running = (now.set >> Q_RUNNING & 1) ? (int)now.v[Q_RUNNING] : 0,
                          .quotas_json = qj};
    rc = gx_store_tenant_upsert(s->store, &st, &e);
    free(qj);
    if (!rc) {
        gx_tenant_opts to;
        engine_opts(s, name, weight, &now, &to);
        rc = gx_tenant_add(s->engine, &to, NULL, &e);
    }
    pthread_mutex_unlock(&s->tmu);
    char target[80], detail[480], changes[400];
    snprintf(target, sizeof target, "tenant/%.63s", name);
    quota_changes(s, &was, existed, &now, changes, sizeof changes);
    snprintf(detail, sizeof detail, "weight=%g default_priority=%d%s%s", weight, now.default_priority,
             *changes ? " quotas: " : "", changes);
    gx__svc_audit(s, r, "tenant.upsert", target, rc ? "failed" : "ok", detail);
    if (!rc && *changes) gx__svc_audit(s, r, "tenant.quota", target, "ok", changes);
    if (rc) {
        json_decref(j);
        gx_http_error(r, gx_http_status_for(rc), rc, e.field, "%s", e.message[0] ? e.message : gx_strerror(rc));
        return 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "weight", json_real(weight));
    json_object_set_new(o, "default_priority", json_integer(now.default_priority));
    json_object_set_new(o, "max_running", json_integer((json_int_t)qeffective(s, &now, Q_RUNNING)));
    json_object_set_new(o, "quotas", limits_json(s, &now));
    json_decref(j);
    gx_http_reply_json(r, 200, o);
    return 0;
}

/* ---- GET /v1/tenants, /v1/tenants/{t}/usage ---------------------------- */

static double qlimit(const gx_tenant_info *t, int q) {
    switch (q) {
    case Q_QUEUED: return (double)t->max_queued;
    case Q_RUNNING: return t->max_running;
    case Q_MEMORY: return (double)t->max_mem;
    default: return t->max_device_s_hour;
    }
}

static double qusage(const gx_tenant_info *t, int q) {
    switch (q) {
    case Q_QUEUED: return (double)t->queued;
    case Q_RUNNING: return (double)t->running;
    case Q_MEMORY: return (double)t->mem_used;
    default: return t->device_s_hour;
    }
}

size_t gx__svc_quota_count(void) { return Q_COUNT; }

void gx__svc_quota_value(const gx_tenant_info *t, size_t q, const char **name, double *limit, double *usage) {
    *name = QDEFS[q].name;
    *limit = qlimit(t, (int)q);
    *usage = qusage(t, (int)q);
}

static json_t *usage_json(const gx_tenant_info *t) {
    json_t *qs = json_object();
    for (int q = 0; q < Q_COUNT; q++) {
        json_t *o = json_object();
        double l = qlimit(t, q), u = qusage(t, q);
        json_object_set_new(o, "limit", QDEFS[q].integer ? json_integer((json_int_t)l) : json_real(l));
        json_object_set_new(o, "usage", QDEFS[q].integer ? json_integer((json_int_t)u) : json_real(u));
        json_object_set_new(qs, QDEFS[q].name, o);
    }
    return qs;
}

int gx__h_tenant_list(void *app, gx_http_req *r) {
    gx_service *s = app;
    size_t n = 0;
    gx_tenant_list(s->engine, NULL, 0, &n);
    gx_tenant_info *ti = calloc(n ? n : 1, sizeof *ti);
    if (!ti) {
        gx_http_error(r, 500, GX_ENOMEM, NULL, "out of memory");
        return 0;
    }
    size_t m = 0;
    gx_tenant_list(s->engine, ti, n, &m);
    if (m > n) m = n;
    json_t *arr = json_array();
    for (size_t i = 0; i < m; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(ti[i].name));
        json_object_set_new(o, "weight", json_real(ti[i].weight));
        json_object_set_new(o, "default_priority", json_integer(ti[i].default_priority));
        json_object_set_new(o, "max_running", json_integer(ti[i].max_running));
        json_object_set_new(o, "queued", json_integer(ti[i].queued));
        json_object_set_new(o, "running", json_integer(ti[i].running));
        json_object_set_new(o, "quotas", usage_json(&ti[i]));
        json_array_append_new(arr, o);
    }
    free(ti);
    json_t *o = json_object();
    json_object_set_new(o, "tenants", arr);
    gx_http_reply_json(r, 200, o);
    return 0;
}

int gx__h_tenant_usage(void *app, gx_http_req *r) {
    gx_service *s = app;
    const char *name = r->params[0];
    gx_tenant_info ti;
    /* another tenant's usage is as good as none for a key of one tenant */
    if ((!r->ctx.cross && strcmp(name, r->ctx.tenant)) || gx_tenant_get(s->engine, name, &ti)) {
        gx_http_error(r, 404, GX_ENOTFOUND, "tenant", "no tenant '%.63s'", name);
        return 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "tenant", json_string(ti.name));
    json_object_set_new(o, "quotas", usage_json(&ti));
    gx_http_reply_json(r, 200, o);
    return 0;
}

/* ---- admission ----------------------------------------------------------- */

int gx__svc_quota_admit(gx_service *s, gx_http_req *r, gx__admit *a) {
    /* idempotent repeats (of a job of the batch: a->same) make no job */
    int64_t n = 0, keyed = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (a->codes[i] || (a->same && a->same[i] != i)) continue;
        n++;
        keyed += a->jobs[i].spec.idempotency_key != NULL;
    }
    if (!n) return 0;
    gx_quota_refusal why;
    gx_error e;
    int rc = gx_tenant_admit(s->engine, r->ctx.tenant, n, &why, &e);
    if (rc && rc != GX_ENOTFOUND && keyed) {
        /* refused: a retry of jobs that exist (the engine's, or stored ones
         * it forgot once they ended) makes no job either, and gets its
         * original rather than a 429. Looked up only here: a submission the
         * quota takes costs no lookup. */
        int64_t fresh = n;
        for (size_t i = 0; i < a->n; i++) {
            const char *key = a->jobs[i].spec.idempotency_key;
            if (a->codes[i] || (a->same && a->same[i] != i) || !key) continue;
            gx_job_id orig;
            if (!gx__svc_find_idempotent(s, r->ctx.tenant, key, &orig)) fresh--;
        }
        if (fresh < n) {
            if (!fresh) return 0;
            n = fresh;
            rc = gx_tenant_admit(s->engine, r->ctx.tenant, n, &why, &e);
        }
    }
    if (rc == GX_ENOTFOUND) return 0; /* the engine refuses it by name later */
    if (!rc) {
        snprintf(a->qtenant, sizeof a->qtenant, "%s", r->ctx.tenant);
        a->qn = n;
        a->qengine = s->engine;
        return 0;
    }
    gx__svc_quota_refused(r, rc, &why, &e, n,
                          a->batch ? "; the batch was refused as a whole: no job of it was accepted" : "");
    return -1;
}

void gx__svc_quota_refused(gx_http_req *r, int rc, const gx_quota_refusal *q, const gx_error *qe, int64_t n,
                           const char *more) {
    const gx_quota_refusal why = *q;
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(gx_err_name(rc)));
    char msg[600];
    snprintf(msg, sizeof msg, "%s%s", qe->message, more);
    json_object_set_new(err, "message", json_string(msg));
    json_object_set_new(err, "quota", json_string(why.quota));
    int integer = strcmp(why.quota, "device_seconds_per_hour") != 0;
    json_object_set_new(err, "limit", integer ? json_integer((json_int_t)why.limit) : json_real(why.limit));
    json_object_set_new(err, "usage", integer ? json_integer((json_int_t)why.usage) : json_real(why.usage));
    if (integer) json_object_set_new(err, "requested", json_integer(n));
    char ra[32];
    snprintf(ra, sizeof ra, "%.0f", why.retry_after_s > 0 ? why.retry_after_s : 1);
    json_object_set_new(err, "retry_after_s", json_integer(strtoll(ra, NULL, 10)));
    gx_http_reply_json(r, gx_http_status_for(rc), json_pack("{s:o}", "error", err));
    gx_http_header_add(r, "Retry-After", ra);
}
