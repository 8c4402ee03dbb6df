/*
 * fault_routes.c - the admin fault-injection API (/v1/admin/faults) and the
 * faults.startup setting.
 *
 * The points themselves live in src/core/fault.c (gexec_fault.h); this file
 * only turns JSON and the configuration text into gx_fault_spec and back.
 * Nothing is armed unless faults.enabled is true: a POST then answers 409
 * and says which key to set, so a production daemon cannot be told to fail
 * by anyone, an admin key included. Listing and clearing always work
 * (clearing is harmless and the list shows that nothing is armed).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_fault.h"
#include "clock.h"
#include "log.h"
#include "service.h"

/* ---- specs ------------------------------------------------------------------ */

/* A GX_E* code from its name ("GX_ESTORE" or "ESTORE"); 1 when known. */
static int err_code_parse(const char *name, int *out) {
    for (int c = 0; c >= -64; c--) {
        const char *n = gx_err_name(c);
        if (!n || !strncmp(n, "GX_EUNKNOWN", 11)) continue;
        if (!strcmp(name, n) || (!strncmp(n, "GX_", 3) && !strcmp(name, n + 3))) {
            *out = c;
            return 1;
        }
    }
    return 0;
}

static json_t *spec_json(const gx_fault_spec *f) {
    return json_pack("{s:s,s:I,s:i,s:i,s:I,s:I}", "point", gx_fault_point_name(f->point), "count",
                     (json_int_t)f->count, "device", f->device, "code", f->code, "delay_us",
                     (json_int_t)f->delay_us, "fired", (json_int_t)f->fired);
}

static json_t *faults_json(gx_service *s) {
    gx_fault_spec fs[GX_FAULT__COUNT];
    int n = gx_fault_list(fs, GX_FAULT__COUNT);
    json_t *arr = json_array();
    for (int i = 0; i < n && i < GX_FAULT__COUNT; i++) json_array_append_new(arr, spec_json(&fs[i]));
    json_t *points = json_array();
    for (int p = 0; p < GX_FAULT__COUNT; p++) json_array_append_new(points, json_string(gx_fault_point_name(p)));
    return json_pack("{s:b,s:o,s:o,s:I}", "enabled", s->cfg.faults.enabled, "faults", arr, "points", points,
                     "fired_total", (json_int_t)gx_fault_fired_total());
}

/* An integer member within [lo, hi]; 0, or GX_EINVAL naming it. */
static int int_member(json_t *v, const char *name, int64_t lo, int64_t hi, int64_t *out, gx_error *err) {
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return gx_error_set(err, GX_EINVAL, name, "%s must be an integer in %lld..%lld", name, (long long)lo,
                            (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

/* What a fault may be, past its syntax: a store fault fails the way a
 * store does (GX_ESTORE, GX_EIO, GX_ENOMEM; 0 is GX_ESTORE): another code
 * (GX_EINVAL, GX_ECLOSED) reads as a refused write, and the persister drops
 * such state changes rather than retry them. A device fault's code is the
 * backend's own (a CUDA error number, >= 0). The device must exist (ndev
 * devices; -1: not known yet). */
static int fault_check(const gx_fault_spec *f, int ndev, gx_error *err) {
    /* the ranges of the JSON form, for faults.startup too (it passed
     * --check-config and then stopped the start) */
    if (f->count != -1 && (f->count < 1 || f->count > 1000000000))
        return gx_error_set(err, GX_EINVAL, "count", "count must be -1 (until cleared) or 1..1000000000");
    if (f->delay_us < 0 || f->delay_us > 60000000)
        return gx_error_set(err, GX_EINVAL, "delay_us", "delay_us must be within 0..60000000");
    if (f->device < -1 || f->device > 1024)
        return gx_error_set(err, GX_EINVAL, "device", "device must be -1 (any) or 0..1024");
    int store = f->point == GX_FAULT_STORE_COMMIT || f->point == GX_FAULT_STORE_FULL;
    if (store && f->code && f->code != GX_ESTORE && f->code != GX_EIO && f->code != GX_ENOMEM)
        return gx_error_set(err, GX_EINVAL, "code", "a store fault's code is GX_ESTORE, GX_EIO or GX_ENOMEM; got %d",
                            f->code);
    if (!store && f->code < 0)
        return gx_error_set(err, GX_EINVAL, "code", "a device fault's code is the backend's error number (>= 0)");
    if (f->device >= 0 && ndev >= 0 && f->device >= ndev)
        return gx_error_set(err, GX_EINVAL, "device", "there is no device %d (devices 0..%d)", f->device, ndev - 1);
    return 0;
}

/* {"point","count","device","code","delay_us"} into f; GX_EINVAL names the
 * field. */
static int spec_from_json(json_t *j, gx_fault_spec *f, int ndev, gx_error *err) {
    memset(f, 0, sizeof *f);
    f->device = -1;
    f->count = 1;
    const char *key;
    json_t *v;
    int have_point = 0;
    json_object_foreach(j, key, v) {
        int64_t x = 0;
        int rc = 0;
        if (!strcmp(key, "point")) {
            int p = json_is_string(v) ? gx_fault_point_parse(json_string_value(v)) : -1;
            if (p < 0)
                return gx_error_set(err, GX_EINVAL, "point",
                                    "point must be one of store.commit, store.full, store.slow, "
                                    "device.launch, device.hang");
            f->point = (gx_fault_point)p;
            have_point = 1;
        } else if (!strcmp(key, "count")) {
            rc = int_member(v, "count", -1, 1000000000, &x, err);
            if (!rc && x == 0) rc = gx_error_set(err, GX_EINVAL, "count", "count must be -1 (until cleared) or > 0");
            f->count = x;
        } else if (!strcmp(key, "device")) {
            rc = int_member(v, "device", -1, 1024, &x, err);
            f->device = (int)x;
        } else if (!strcmp(key, "code")) {
            int c = 0;
            if (json_is_string(v)) {
                if (!err_code_parse(json_string_value(v), &c))
                    return gx_error_set(err, GX_EINVAL, "code", "code: unknown error name (e.g. GX_ESTORE)");
                f->code = c;
            } else {
                rc = int_member(v, "code", -100000, 100000, &x, err);
                f->code = (int)x;
            }
        } else if (!strcmp(key, "delay_us")) {
            rc = int_member(v, "delay_us", 0, 60000000, &x, err);
            f->delay_us = x;
        } else {
            return gx_error_set(err, GX_EINVAL, key, "unknown field '%.40s' (point, count, device, code, delay_us)",
                                key);
        }
        if (rc) return rc;
    }
    if (!have_point) return gx_error_set(err, GX_EINVAL, "point", "point is required");
    return fault_check(f, ndev, err);
}

/* One item of faults.startup: point[:count][,device=N][,code=N][,delay_us=N]. */
static int spec_from_text(const char *item, gx_fault_spec *f, int ndev, gx_error *err) {
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", item);
    memset(f, 0, sizeof *f);
    f->device = -1;
    f->count = 1;
    char *tok = strtok_r(buf, ",", &save);
    char *colon = tok ? strchr(tok, ':') : NULL;
    if (colon) *colon = '\0';
    int p = tok ? gx_fault_point_parse(tok) : -1;
    if (p < 0) return gx_error_set(err, GX_EINVAL, "faults.startup", "unknown fault point in '%.80s'", item);
    f->point = (gx_fault_point)p;
    char *end;
    if (colon) {
        f->count = strtoll(colon + 1, &end, 10);
        if (*end || end == colon + 1 || f->count == 0 || f->count < -1)
            return gx_error_set(err, GX_EINVAL, "faults.startup", "bad count in '%.80s'", item);
    }
    while ((tok = strtok_r(NULL, ",", &save))) {
        char *eq = strchr(tok, '=');
        long long x = eq ? strtoll(eq + 1, &end, 10) : 0;
        if (!eq || *end || end == eq + 1)
            return gx_error_set(err, GX_EINVAL, "faults.startup", "expected name=integer, got '%.60s'", tok);
        *eq = '\0';
        if (x < INT_MIN || x > INT_MAX) /* before the casts below */
            return gx_error_set(err, GX_EINVAL, "faults.startup", "%.40s out of range in '%.80s'", tok, item);
        if (!strcmp(tok, "device") && x >= -1)
            f->device = (int)x;
        else if (!strcmp(tok, "code"))
            f->code = (int)x;
        else if (!strcmp(tok, "delay_us"))
            f->delay_us = x;
        else
            return gx_error_set(err, GX_EINVAL, "faults.startup", "unknown or bad setting '%.40s' in '%.80s'", tok,
                                item);
    }
    int rc = fault_check(f, ndev, err);
    if (rc) {
        char m[sizeof err->message];
        snprintf(m, sizeof m, "%s", err->message);
        gx_error_set(err, rc, "faults.startup", "%.160s (in '%.60s')", m, item);
    }
    return rc;
}

/* Parse faults.startup; arm each fault when arm is set. */
static int faults_startup(const gx_config *cfg, int arm, int ndev, gx_error *err) {
    const char *text = cfg->faults.startup;
    if (!text || !*text) return 0;
    if (!cfg->faults.enabled)
        return gx_error_set(err, GX_EINVAL, "faults.startup", "faults.startup is set but faults.enabled is false");
    char *copy = strdup(text), *save = NULL;
    if (!copy) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    int rc = 0;
    for (char *it = strtok_r(copy, ";", &save); it && !rc; it = strtok_r(NULL, ";", &save)) {
        gx_fault_spec f;
        rc = spec_from_text(it, &f, ndev, err);
        if (!rc && arm) rc = gx_fault_arm(&f, err);
        if (!rc && arm)
            GX_LOGW("fault injection: %s armed at start (count %lld)", gx_fault_point_name(f.point),
                    (long long)f.count);
    }
    free(copy);
    return rc;
}

int gx__svc_faults_check(const gx_config *cfg, gx_error *err) { return faults_startup(cfg, 0, -1, err); }

int gx__svc_faults_start(gx_service *s, gx_error *err) {
    return faults_startup(&s->cfg, 1, gx_device_count(s->engine), err);
}

/* ---- handlers --------------------------------------------------------------- */

int gx__h_faults_list(void *app, gx_http_req *r) {
    gx_http_reply_json(r, 200, faults_json(app));
    return 0;
}

int gx__h_faults_arm(void *app, gx_http_req *r) {
    gx_service *s = app;
    if (!s->cfg.faults.enabled) {
        gx_http_error(r, 409, GX_ESTATE, NULL,
                      "fault injection is off on this server: start gexecd with faults.enabled: true "
                      "(GEXEC_FAULTS_ENABLED=true) to arm faults");
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb(r->body, r->body_len, 0, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        gx_http_error(r, 400, GX_EINVAL, "body", "the body must be a JSON object such as {\"point\":\"store.commit\",\"count\":3}");
        return 0;
    }
    gx_fault_spec f;
    gx_error e;
    gx_error_clear(&e);
    int rc = spec_from_json(j, &f, gx_device_count(s->engine), &e);
    json_decref(j);
    if (!rc) rc = gx_fault_arm(&f, &e);
    if (rc) {
        gx_http_error(r, 400, GX_EINVAL, e.field[0] ? e.field : NULL, "%s", e.message);
        return 0;
    }
    gx_log(GX_LOG_WARN, r->request_id, "fault injection: %s armed by %s (count %lld, device %d, code %d, delay_us %lld)",
            gx_fault_point_name(f.point), r->ctx.key_id[0] ? r->ctx.key_id : "(no key)", (long long)f.count,
            f.device, f.code, (long long)f.delay_us);
    gx_http_reply_json(r, 200, faults_json(s));
    return 0;
}

int gx__h_faults_clear(void *app, gx_http_req *r) {
    const char *pt = gx_http_query(r, "point");
    int p = GX_FAULT__COUNT;
    if (pt && (p = gx_fault_point_parse(pt)) < 0) {
        gx_http_error(r, 400, GX_EINVAL, "point", "unknown fault point '%.40s'", pt);
        return 0;
    }
    gx_fault_clear((gx_fault_point)p);
    gx_http_reply_json(r, 200, faults_json(app));
    return 0;
}

/* ---- dead letters ------------------------------------------------------------ */

/* The re-queue of job id (sj: its stored row, freed here) once admitted. */
static int requeue_admitted(gx_service *s, gx_http_req *r, gx_job_id id, gx_store_job *sj) {
    gx_error e;
    gx_error_clear(&e);
    int rc;
    json_t *obj = json_loads(sj->spec_json, 0, NULL);
    gx_jobreq jr;
    memset(&jr, 0, sizeof jr);
    rc = obj ? gx_jobreq_decode(obj, sj->tenant, gx__svc_blob_load, s, 0, 0, NULL, &jr, &e)
             : gx_error_set(&e, GX_EFORMAT, NULL, "the stored spec is not JSON");
    json_decref(obj);
    if (!rc && jr.spec.priority == GX_PRIORITY_TENANT) jr.spec.priority = sj->priority; /* as restore_one */
    if (!rc) rc = gx__svc_resolve_deps(s, &jr, NULL, 1, &e); /* a requeue: as at a restart */
    if (rc) {
        gx_jobreq_free(&jr);
        gx_store_free(sj);
        gx_http_error(r, 409, rc, e.field[0] ? e.field : NULL, "job %llu cannot run again: %s",
                      (unsigned long long)id, e.message);
        return 0;
    }
    int attempt = sj->attempt + 1;
    char note[200];
    snprintf(note, sizeof note, GX_SVC_REQUEUE_NOTE "%s %s (was %s)", r->ctx.role, r->ctx.key_id[0] ? r->ctx.key_id : "",
             gx_job_state_name(sj->state));
    /* start 0: the attempt it is queued as has not started (a restore then
     * counts the attempts made as attempt - 1, as for a job a restart moved
     * back; with the old start it counted one more, and ran attempt N + 2) */
    gx_store_update u = {.id = id, .state = GX_JOB_QUEUED, .attempt = attempt,
                         .set = GX_STORE_SET_START | GX_STORE_SET_END | GX_STORE_SET_DEVICE | GX_STORE_SET_ERROR,
                         .device = -1,
                         .error = note, .from_mask = 1u << GX_JOB_DEAD | 1u << GX_JOB_FAILED};
    int code = 0;
    if (gx_store_update_jobs(s->store, &u, 1, 1, &code, &e) < 0) {
        gx_jobreq_free(&jr);
        gx_store_free(sj);
        gx_http_error(r, 503, GX_ESTORE, NULL, "the re-queue could not be stored: %s", e.message);
        return 0;
    }
    if (code) { /* someone else re-queued it first; or its blobs are gone */
        gx_jobreq_free(&jr);
        gx_store_free(sj);
        if (code == GX_ENOTFOUND)
            gx_http_error(r, 409, GX_ENOTFOUND, "inputs",
                          "job %llu cannot run again: an input blob was deleted (store.retention) meanwhile; "
                          "upload it again and resubmit the job",
                          (unsigned long long)id);
        else
            gx_http_error(r, 409, GX_ESTATE, "state", "job %llu changed state meanwhile (re-queued already?)",
                          (unsigned long long)id);
        return 0;
    }
    gx_job_spec sp = jr.spec;
    sp.id = id;
    sp.attempts_done = sj->attempt; /* it runs as attempt + 1, the number stored */
    sp.attempt_floor = attempt;     /* an end before it runs is not fenced */
    sp.restored = 1;                /* the queued event with the note is stored */
    sp.stored_state = GX_JOB_QUEUED;
    /* a job that has run keeps its submit time (no queue timeout for it);
     * one that never ran (refused at a restore) queues afresh from now */
    if (sj->attempt > 0) sp.submitted_ns = sj->submit_ns;
    rc = gx_job_requeue(s->engine, &sp, &e);
    gx_jobreq_free(&jr);
    if (rc) {
        gx_store_update f = {.id = id, .state = GX_JOB_FAILED, .attempt = attempt,
                             .set = GX_STORE_SET_END | GX_STORE_SET_ERROR, .end_ns = gx__wall_ns(),
                             .error_code = rc, .error = e.message};
        gx_store_update_jobs(s->store, &f, 1, 1, NULL, NULL);
        gx_store_free(sj);
        gx_http_error(r, gx_http_status_for(rc), rc, e.field[0] ? e.field : NULL, "%s", e.message);
        return 0;
    }
    gx_store_free(sj);
    gx_log(GX_LOG_INFO, r->request_id, "job %llu re-queued by %s (%s; attempt %d)", (unsigned long long)id,
           r->ctx.key_id[0] ? r->ctx.key_id : "(no key)", r->ctx.role, attempt);
    gx_job_info info;
    if (!gx_job_get(s->engine, id, &info, NULL))
        gx__svc_reply_job(s, r, 200, &info, NULL);
    else
        gx_http_reply_json(r, 200, json_pack("{s:s,s:s}", "id", r->params[0], "state", "queued"));
    return 0;
}

/* POST /v1/jobs/{id}/requeue: a dead (or failed) job runs again as a new
 * attempt with a fresh attempt budget. The store's compare-and-set (only
 * from dead or failed, attempt + 1, so a stale writer of the old attempt is
 * fenced) is durable before the engine sees the job; an engine refusal is
 * written back as a failure. The engine then holds it as restore_one
 * (service.c) holds a job a restart moved back to the queue: the attempts
 * made, the stored number as its floor, its queued event recorded. It
 * counts against its tenant's max_queued and device-time quotas as a
 * submission does. */
int gx__h_job_requeue(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx_job_id id = gx_job_id_parse(r->params[0]);
    gx_store_job *sj = NULL;
    gx_error e;
    gx_error_clear(&e);
    if (id) gx__svc_settle_for(s, GX_SVC_SETTLE_MS); /* a job that just ended: its final state first */
    int rc = id ? gx_store_get_job(s->store, id, &sj, &e) : GX_ENOTFOUND;
    if (rc == GX_ESTORE) {
        gx_http_error(r, 503, GX_ESTORE, NULL, "%s", e.message);
        return 0;
    }
    if (rc || (strcmp(sj->tenant, r->ctx.tenant) && !r->ctx.cross)) {
        gx_store_free(sj);
        gx_http_error(r, 404, GX_ENOTFOUND, "id", "no job '%.40s'", r->params[0]);
        return 0;
    }
    if (sj->state != GX_JOB_DEAD && sj->state != GX_JOB_FAILED) {
        gx_http_error(r, 409, GX_ESTATE, "state", "job %llu is %s; only dead or failed jobs can be re-queued",
                      (unsigned long long)id, gx_job_state_name(sj->state));
        gx_store_free(sj);
        return 0;
    }
    /* the job counts against its tenant's quotas again, as a submission
     * does (a requeue, by an operator of any tenant too, went past them) */
    gx_quota_refusal why;
    rc = gx_tenant_admit(s->engine, sj->tenant, 1, &why, &e);
    if (rc && rc != GX_ENOTFOUND) {
        gx__svc_quota_refused(r, rc, &why, &e, 1, "; the job stays as it is");
        gx_store_free(sj);
        return 0;
    }
    char qtenant[64];
    snprintf(qtenant, sizeof qtenant, "%s", sj->tenant);
    int reserved = rc == 0;
    requeue_admitted(s, r, id, sj); /* frees sj */
    if (reserved) gx_tenant_admit_release(s->engine, qtenant, 1); /* queued now, or not at all */
    return 0;
}
