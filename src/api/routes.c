/*
 * routes.c - the HTTP API's route table and handlers. Handlers turn a
 * request into engine and store calls; they never see sockets.
 *
 * Jobs: the engine is the authority while it holds a job; jobs that ended
 * before a restart are read from the store.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "gexec/gexec_errclass.h"
#include "jsonmem.h"
#include "jsonw.h"
#include "log.h"
#include "service.h"
#include "str.h"

#define MAX_LIST 1000

/* ---- helpers ----------------------------------------------------------- */

static int reply_err(gx_http_req *r, const gx_error *e) {
    int code = e->code ? e->code : GX_EINVAL;
    gx_http_error(r, gx_http_status_for(code), code, e->field, "%s", e->message[0] ? e->message : gx_strerror(code));
    gx_errclass_info ci = gx_errclass_of(code);
    if (ci.retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", ci.retry_after_s);
        gx_http_header_add(r, "Retry-After", ra);
    }
    return 0;
}

static int ctype_is(gx_http_req *r, const char *want) { return gx_http_ctype_is(r, want); }

/* A job id from the path, or a 400/404 reply. */
static gx_job_id path_id(gx_http_req *r) {
    gx_job_id id = gx_job_id_parse(r->params[0]);
    if (!id) gx_http_error(r, 404, GX_ENOTFOUND, "id", "no job '%.40s' (job ids are decimal numbers)", r->params[0]);
    return id;
}

/* Look a job up for the caller's tenant: 0 and a live info, 1 and a stored
 * record, or a 404 reply (also for another tenant's job). */
static int find_job(gx_service *s, gx_http_req *r, gx_job_id id, gx_job_info *info, gx_store_job **sj) {
    *sj = NULL;
    if (!gx_job_get(s->engine, id, info, NULL)) {
        if (!strcmp(info->tenant_name, r->ctx.tenant) || r->ctx.cross)
            return 0;
    } else if (!gx_store_get_job(s->store, id, sj, NULL)) {
        if (!strcmp((*sj)->tenant, r->ctx.tenant) || r->ctx.cross)
            return 1;
        gx_store_free(*sj);
        *sj = NULL;
    }
    gx_http_error(r, 404, GX_ENOTFOUND, "id", "no job %llu", (unsigned long long)id);
    return -1;
}

/* The job named by the path: find_job's answer, or -1 with a reply sent. */
static int path_job(gx_service *s, gx_http_req *r, gx_job_id *id, gx_job_info *info, gx_store_job **sj) {
    *sj = NULL;
    *id = path_id(r);
    return *id ? find_job(s, r, *id, info, sj) : -1;
}

char *gx__svc_job_text(gx_service *s, const gx_job_info *info, const gx_store_job *sj, size_t *len) {
    if (!sj) {
        int gone = 0;
        char *t = gx_job_json_text(s->engine, info, len, &gone);
        if (!gone) return t;
        gx_store_job *got = NULL; /* forgotten since info was taken: its end is stored */
        if (gx_store_get_job(s->store, info->id, &got, NULL)) return NULL;
        t = gx_store_job_text(s->engine, got, len);
        gx_store_free(got);
        return t;
    }
    return gx_store_job_text(s->engine, sj, len);
}

void gx__svc_reply_job(gx_service *s, gx_http_req *r, int status, const gx_job_info *info, const gx_store_job *sj) {
    size_t len = 0;
    char *t = gx__svc_job_text(s, info, sj, &len);
    if (t) {
        gx_http_reply(r, status, "application/json", t, len);
        return;
    }
    /* the answer to a change already made (a 202, a cancel's 200) is not
     * a 503 (a client retries it: a second job): its id and state */
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)(sj ? sj->id : info->id));
    gx_http_reply_json(r, status, json_pack("{s:s,s:s}", "id", id, "state", gx_job_state_name(sj ? sj->state : info->state)));
}

/* ---- jobs --------------------------------------------------------------- */

/* Decode and validate one job object into slot i of an admission. */
static void prepare_job(gx_service *s, gx_http_req *r, json_t *obj, gx__admit *a, size_t i, int batch) {
    char prefix[32] = "";
    if (batch) snprintf(prefix, sizeof prefix, "jobs[%zu].", i);
    gx_error *e = &a->errs[i];
    int rc = gx_jobreq_decode(obj, r->ctx.tenant, gx__svc_blob_load, s, batch, a->n, prefix, &a->jobs[i], e);
    if (!rc && a->jobs[i].spec.priority == GX_PRIORITY_TENANT) {
        /* no priority: the tenant's default of now, which the job's row
         * keeps (a restore or re-queue of a spec without one takes the
         * row's, not the default of then); once a request */
        if (!a->have_prio) {
            if (gx_tenant_default_priority(s->engine, r->ctx.tenant, &a->prio)) a->prio = 0;
            a->have_prio = 1;
        }
        a->jobs[i].spec.priority = a->prio;
    }
    if (!rc) rc = gx__svc_resolve_deps(s, &a->jobs[i], prefix, 0, e);
    if (!rc) {
        rc = gx_job_validate(s->engine, &a->jobs[i].spec, e);
        if (!rc) rc = gx_jobreq_canonical(&a->jobs[i], e);
        if (rc && *prefix) {
            char f[sizeof prefix + sizeof e->field];
            snprintf(f, sizeof f, "%s%s", prefix, e->field);
            snprintf(e->field, sizeof e->field, "%.*s", (int)sizeof e->field - 1, f);
        }
    }
    a->codes[i] = rc;
}

static gx__admit *admit_new(gx_service *s, gx_http_req *r, size_t n, int batch) {
    gx__admit *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->svc = s; /* its jobs' pinned dependencies are let go when it is freed */
    a->req = r;
    a->n = n;
    a->batch = batch;
    if (n == 1) {
        a->jobs = &a->one.job;
        a->codes = &a->one.code;
        a->errs = &a->one.err;
        a->ids = &a->one.id;
        a->dup = &a->one.dup;
    } else {
        a->jobs = calloc(n ? n : 1, sizeof *a->jobs);
        a->codes = calloc(n ? n : 1, sizeof *a->codes);
        a->errs = calloc(n ? n : 1, sizeof *a->errs);
        a->ids = calloc(n ? n : 1, sizeof *a->ids);
        a->dup = calloc(n ? n : 1, sizeof *a->dup);
    }
    if (!a->jobs || !a->codes || !a->errs || !a->ids || !a->dup) {
        gx__admit_free(a);
        return NULL;
    }
    return a;
}

/* The JSON body of a job request, or NULL with the 415/400 reply sent. */
static json_t *json_request(gx_service *s, gx_http_req *r) {
    if (!ctype_is(r, "application/json")) {
        gx_http_error(r, 415, GX_EUNSUPPORTED, "Content-Type", "jobs are JSON: send Content-Type: application/json");
        return NULL;
    }
    gx_error err;
    gx_error_clear(&err);
    gx_json_budget_begin(s->cfg.http.max_json_memory);
    json_t *j = gx_json_parse_body(r->body, r->body_len, &err);
    if (gx_json_budget_end()) {
        json_decref(j);
        gx_http_error(r, 413, GX_ELIMIT, "body",
                      "the JSON body needs more than %llu MiB of memory to decode (http.max_json_memory); "
                      "send large arrays as .npy blobs (POST /v1/blobs) and refer to them",
                      (unsigned long long)(s->cfg.http.max_json_memory >> 20));
        return NULL;
    }
    if (!j) reply_err(r, &err);
    return j;
}

static int h_submit(void *app, gx_http_req *r) {
    gx_service *s = app;
    json_t *obj = json_request(s, r);
    if (!obj) return 0;
    gx__admit *a = admit_new(s, r, 1, 0);
    if (!a) {
        json_decref(obj);
        gx_http_error(r, 503, GX_ENOMEM, NULL, "out of memory");
        return 0;
    }
    prepare_job(s, r, obj, a, 0, 0);
    json_decref(obj);
    if (a->codes[0]) {
        reply_err(r, &a->errs[0]);
        gx__admit_free(a);
        return 0;
    }
    if (gx__svc_quota_admit(s, r, a)) {
        gx__admit_free(a);
        return 0;
    }
    gx__svc_admit(s, a);
    return GX_HTTP_ASYNC;
}

/* Refuse batch specs in dependency cycles (and their dependents) before
 * anything is committed; the walk's finishing order, each job after its
 * batch dependencies, goes to a->order (the ids follow it). A job that
 * repeats an earlier one's idempotency key is that job (a->same): an edge
 * to it goes to that job, and its own edges do not count (a repeat is
 * answered with the original, whatever it depends on). Before, a job
 * depending on its own repeat was stored depending on itself, failed, and
 * kept the key. */
static void batch_cycles(gx__admit *a) {
    a->same = gx__admit_same_keys(a);
    const size_t *same = a->same;
    size_t n = a->n, done = 0;
    unsigned char *state = calloc(n, 1); /* 0 unknown, 1 visiting, 2 ok, 3 bad */
    size_t *stack = malloc(n * sizeof *stack);
    int *edge = calloc(n, sizeof *edge);
    a->order = malloc(n * sizeof *a->order);
    if (!state || !stack || !edge || !a->order) {
        free(a->order);
        a->order = NULL;
        goto out;
    }
    for (size_t root = 0; root < n; root++) {
        if (state[root]) continue;
        size_t sp = 0;
        stack[sp++] = root;
        state[root] = 1;
        while (sp) {
            size_t v = stack[sp - 1];
            const gx_job_spec *spec = &a->jobs[v].spec;
            int nd = same && same[v] != v ? 0 : spec->nbatch_deps;
            if (!a->codes[v] && edge[v] < nd) {
                size_t t = (size_t)spec->batch_deps[edge[v]++];
                if (same) t = same[t];
                if (state[t] == 1) {
                    /* every spec on the stack from t up is in the cycle */
                    for (size_t k = sp; k-- > 0;) {
                        size_t c = stack[k];
                        if (!a->codes[c]) { /* naming the job it depends on in the cycle */
                            size_t next = k + 1 < sp ? stack[k + 1] : t;
                            char f[48];
                            snprintf(f, sizeof f, "jobs[%zu].depends_on", c);
                            a->codes[c] =
                                next == c ? gx_error_set(&a->errs[c], GX_ECYCLE, f, "jobs[%zu] depends on itself", c)
                                          : gx_error_set(&a->errs[c], GX_ECYCLE, f,
                                                         "jobs[%zu] is in a dependency cycle: it depends on jobs[%zu]",
                                                         c, next);
                        }
                        if (c == t) break;
                    }
                } else if (state[t] == 0) {
                    state[t] = 1;
                    stack[sp++] = t;
                } else if (state[t] == 3 || a->codes[t]) {
                    char f[48];
                    snprintf(f, sizeof f, "jobs[%zu].depends_on", v);
                    a->codes[v] = gx_error_set(&a->errs[v], GX_EDEPFAILED, f,
                                               "depends on jobs[%zu], which was refused", t);
                }
                continue;
            }
            if (!a->codes[v]) {
                for (int d = 0; d < nd; d++) {
                    size_t t = (size_t)spec->batch_deps[d];
                    if (same) t = same[t];
                    if (a->codes[t] && !a->codes[v]) {
                        char f[48];
                        snprintf(f, sizeof f, "jobs[%zu].depends_on", v);
                        a->codes[v] = gx_error_set(&a->errs[v], GX_EDEPFAILED, f,
                                                   "depends on jobs[%zu], which was refused", t);
                    }
                }
            }
            state[v] = a->codes[v] ? 3 : 2;
            a->order[done++] = v;
            sp--;
        }
    }
    gx__admit_refuse_repeats(a); /* a repeat of a refused job is refused with it */
out:
    free(state);
    free(stack);
    free(edge);
}

static int h_submit_batch(void *app, gx_http_req *r) {
    gx_service *s = app;
    json_t *body = json_request(s, r);
    if (!body) return 0;
    json_t *jobs = json_object_get(body, "jobs");
    if (json_is_object(body) && json_is_array(jobs) && json_object_size(body) != 1) {
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v) {
            if (strcmp(k, "jobs")) {
                gx_http_error(r, 400, GX_EINVAL, k, "unknown field '%.60s': the body is {\"jobs\": [job, ...]}", k);
                break;
            }
        }
        json_decref(body);
        return 0;
    }
    if (!json_is_object(body) || !json_is_array(jobs)) {
        json_decref(body);
        gx_http_error(r, 400, GX_EINVAL, "jobs", "the body must be {\"jobs\": [job, ...]}");
        return 0;
    }
    size_t n = json_array_size(jobs);
    if (n == 0 || n > (size_t)s->cfg.http.max_batch_jobs) {
        json_decref(body);
        gx_http_error(r, n ? 413 : 400, n ? GX_ELIMIT : GX_EINVAL, "jobs", "a batch holds 1..%lld jobs; got %zu",
                      (long long)s->cfg.http.max_batch_jobs, n);
        return 0;
    }
    r->ctx.count = (long)n;
    gx__admit *a = admit_new(s, r, n, 1);
    if (!a) {
        json_decref(body);
        gx_http_error(r, 503, GX_ENOMEM, NULL, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < n; i++) prepare_job(s, r, json_array_get(jobs, i), a, i, 1);
    json_decref(body);
    batch_cycles(a);
    if (gx__svc_quota_admit(s, r, a)) {
        gx__admit_free(a);
        return 0;
    }
    gx__svc_admit(s, a);
    return GX_HTTP_ASYNC;
}

static int h_get(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx_job_id id;
    gx_job_info info;
    gx_store_job *sj;
    int w = path_job(s, r, &id, &info, &sj);
    if (w < 0) return 0;
    gx__svc_reply_job(s, r, 200, w == 0 ? &info : NULL, sj);
    gx_store_free(sj);
    return 0;
}

static int h_cancel(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx_job_id id;
    gx_job_info info;
    gx_store_job *sj;
    int w = path_job(s, r, &id, &info, &sj);
    if (w < 0) return 0;
    if (w == 1) {
        gx_http_error(r, 409, GX_ESTATE, "state", "job %llu is already %s", (unsigned long long)id,
                      gx_job_state_name(sj->state));
        gx_store_free(sj);
        return 0;
    }
    gx_error err;
    int rc = gx_job_cancel(s->engine, id, &err);
    if (rc == GX_ENOTFOUND || (!rc && gx_job_get(s->engine, id, &info, NULL))) {
        /* it ended and was forgotten since path_job found it: its record is
         * stored by now (an ended job is 409, as above) */
        if (gx_store_get_job(s->store, id, &sj, &err)) return reply_err(r, &err);
        if (rc)
            gx_http_error(r, 409, GX_ESTATE, "state", "job %llu is already %s", (unsigned long long)id,
                          gx_job_state_name(sj->state));
        else
            gx__svc_reply_job(s, r, 200, NULL, sj);
        gx_store_free(sj);
        return 0;
    }
    if (rc) return reply_err(r, &err);
    /* durable before the answer: a cancel answered 200 and lost to a crash
     * ran the job after the restart. A store that fails (a full disk) is
     * not waited for without end: the HTTP thread serves others too. */
    if (gx__svc_settle_for(s, GX_SVC_SETTLE_MS)) {
        gx_http_error(r, 503, GX_ESTORE, NULL,
                      "job %llu is cancelled, but the store has not recorded it yet (it is failing or the server "
                      "is stopping): a restart before it does would run the job again",
                      (unsigned long long)id);
        return 0;
    }
    /* the job is forgotten by now as a rule (its end is stored): answered
     * from the store then, labels and all */
    gx__svc_reply_job(s, r, 200, &info, NULL);
    return 0;
}

static int h_result(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx_job_id id;
    gx_job_info info;
    gx_store_job *sj;
    int w = path_job(s, r, &id, &info, &sj);
    if (w < 0) return 0;
    int state = w == 0 ? info.state : sj->state;
    char ids[24];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    if (state != GX_JOB_SUCCEEDED) {
        gx_http_error(r, 409, GX_ESTATE, "state", "job %llu is %s; results exist only for succeeded jobs", (unsigned long long)id,
                      gx_job_state_name(state));
        gx_store_free(sj);
        return 0;
    }
    json_t *outputs = NULL;
    gx_error err;
    gx_error_clear(&err);
    if (w == 0) {
        gx_output *outs;
        int n;
        int rc = gx_job_outputs(s->engine, id, &outs, &n, &err);
        if (rc == GX_ENOTFOUND) {
            /* forgotten since path_job found it: its record is stored by now */
            if (gx_store_get_job(s->store, id, &sj, &err)) return reply_err(r, &err);
            w = 1;
        } else if (rc) {
            return reply_err(r, &err);
        } else {
            outputs = gx__svc_outputs_json(s, info.tenant_name, outs, n, &err);
            gx_outputs_free(outs, n);
            if (!outputs) return reply_err(r, &err);
        }
    }
    if (w != 0) {
        outputs = sj->result_json ? json_loads(sj->result_json, 0, NULL) : json_object();
        gx_store_free(sj);
        if (!outputs) outputs = json_object();
    }
    gx_http_reply_json(r, 200, json_pack("{s:s,s:s,s:o}", "id", ids, "state", "succeeded", "outputs", outputs));
    return 0;
}

static int h_job_events(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx_job_id id;
    gx_job_info info;
    gx_store_job *sj;
    if (path_job(s, r, &id, &info, &sj) < 0) return 0;
    gx_store_free(sj);
    /* events are written asynchronously: make the list complete */
    gx__svc_settle_for(s, GX_SVC_SETTLE_MS); /* a failing store: what it has */
    gx_store_event *ev;
    size_t n;
    gx_error err;
    if (gx_store_job_events(s->store, id, &ev, &n, &err)) return reply_err(r, &err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_pack("{s:i,s:s,s:i,s:o}", "seq", ev[i].seq, "state", gx_job_state_name(ev[i].state),
                              "attempt", ev[i].attempt, "time", gx_json_time(ev[i].time_ns));
        if (ev[i].error_code)
            json_object_set_new(e, "error", json_pack("{s:s,s:s,s:s}", "code", gx_err_name(ev[i].error_code), "message",
                                                      ev[i].error ? ev[i].error : gx_strerror(ev[i].error_code),
                                                      "class", gx_errclass_name(gx_errclass_get(ev[i].error_code))));
        else if (ev[i].error)
            json_object_set_new(e, "note", json_string(ev[i].error));
        json_array_append_new(arr, e);
    }
    gx_store_free(ev);
    gx_http_reply_json(r, 200, json_pack("{s:o}", "events", arr));
    return 0;
}

/* Parse "queued,running" into a state mask; -1 on an unknown state. */
static long state_mask(const char *s) {
    if (!s || !*s) return 0;
    unsigned m = 0;
    for (const char *t = s; *t;) { /* any length: each name is looked up on its own */
        size_t n = strcspn(t, ",");
        char name[24];
        if (n) {
            if (n >= sizeof name) return -1;
            memcpy(name, t, n);
            name[n] = '\0';
            int st = gx_job_state_from_name(name);
            if (st < 0) return -1;
            m |= 1u << st;
        }
        t += n + (t[n] == ',');
    }
    return m ? (long)m : -1; /* only commas: no state named, not "any state" */
}

/* Label filters a query may give (label=key=value, repeated). */
#define MAX_LABEL_FILTERS 16

/* 1 when the labels ({"key":"value",...}) have every key[i] = value[i]. */
static int labels_match(const char *labels_json, char (*key)[64], const char *const *value, int n) {
    json_t *l = labels_json ? json_loads(labels_json, 0, NULL) : NULL;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        const char *v = json_string_value(json_object_get(l, key[i]));
        ok = v && !strcmp(v, value[i]);
    }
    json_decref(l);
    return ok;
}

/* The tenant a listing reads: its tenant= (empty is absent) for a key that
 * reads across tenants; else the key's own, which a tenant= naming another
 * gets as a 404 (as another tenant's job), NULL returned with it sent.
 * Without tenant= the key's tenant (r->ctx.tenant itself). */
static const char *query_tenant(gx_http_req *r) {
    const char *q = gx_http_query(r, "tenant");
    if (!q || !*q) return r->ctx.tenant;
    if (r->ctx.cross || !strcmp(q, r->ctx.tenant)) return q;
    gx_http_error(r, 404, GX_ENOTFOUND, "tenant", "no tenant '%.64s' among those this key may read", q);
    return NULL;
}

static int h_list(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx_store_filter f;
    memset(&f, 0, sizeof f);
    const char *q;
    long m = state_mask(gx_http_query(r, "state"));
    if (m < 0) {
        gx_http_error(r, 400, GX_EINVAL, "state", "unknown state in '%.60s' (queued, waiting, scheduled, running, "
                      "retrying, succeeded, failed, cancelled, timed_out, dead)", gx_http_query(r, "state"));
        return 0;
    }
    f.state_mask = (unsigned)m;
    f.kernel = gx_http_query(r, "kernel");
    if (f.kernel && !*f.kernel) f.kernel = NULL; /* empty is absent, as for state and cursor */
    /* label=key=value, repeatable: every one must match. The store reads
     * along the first; the others are checked on the rows it returns */
    const char *lq[MAX_LABEL_FILTERS];
    char lk[MAX_LABEL_FILTERS][64];
    int nl = 0, nq = gx_http_query_all(r, "label", lq, MAX_LABEL_FILTERS);
    if (nq > MAX_LABEL_FILTERS) {
        gx_http_error(r, 400, GX_EINVAL, "label", "at most %d label filters", MAX_LABEL_FILTERS);
        return 0;
    }
    for (int i = 0; i < nq; i++) {
        q = lq[i];
        if (!*q) continue; /* empty is absent */
        const char *eq = strchr(q, '=');
        if (!eq || eq == q) {
            gx_http_error(r, 400, GX_EINVAL, "label", "label filters are key=value");
            return 0;
        }
        if ((size_t)(eq - q) >= sizeof lk[0] || strlen(eq + 1) > 255) { /* as jobs' labels are */
            gx_http_error(r, 400, GX_EINVAL, "label", "label keys are 1..63 bytes and values 0..255 bytes");
            return 0;
        }
        snprintf(lk[nl], sizeof lk[nl], "%.*s", (int)(eq - q), q);
        lq[nl++] = eq + 1;
    }
    if (nl) {
        f.label_key = lk[0];
        f.label_value = lq[0];
    }
    f.limit = 100;
    if ((q = gx_http_query(r, "limit")) && *q) {
        char *end;
        long l = strtol(q, &end, 10);
        if (*end || l < 1 || l > MAX_LIST) {
            gx_http_error(r, 400, GX_EINVAL, "limit", "limit must be 1..%d", MAX_LIST);
            return 0;
        }
        f.limit = (size_t)l;
    }
    int desc = 0;
    if ((q = gx_http_query(r, "order")) && *q) { /* empty is absent */
        if (strcmp(q, "asc") && strcmp(q, "desc")) {
            gx_http_error(r, 400, GX_EINVAL, "order", "order is asc (oldest first) or desc (newest first)");
            return 0;
        }
        desc = !strcmp(q, "desc");
    }
    if ((q = gx_http_query(r, "cursor")) && *q && strcmp(q, "0")) {
        f.after = gx_job_id_parse(q);
        if (!f.after) {
            gx_http_error(r, 400, GX_EINVAL, "cursor", "cursor must be a job id from next_cursor");
            return 0;
        }
    }
    if (!(f.tenant = query_tenant(r))) return 0;
    /* the store lags the engine by a moment: settle it first */
    gx__svc_settle_for(s, GX_SVC_SETTLE_MS); /* a failing store: what it has */
    /* ids are taken before their commit, and commits finish out of order:
     * a job past an id still being committed waits for the next page, or a
     * cursor past it would skip that id for good. When that leaves nothing
     * to show, wait a little for the commit (once) and read again, rather
     * than answer the same cursor. */
    gx_store_job *jobs = NULL;
    size_t n = 0, shown = 0;
    uint64_t next = 0;
    gx_job_id w = 0;
    gx_error err;
    int more = 0;
    if (desc) {
        /* newest first: from the watermark down, every id below it
         * committed, so a page is whole at once and a later commit never
         * lands below a cursor. Jobs taken after the first page are above
         * where the walk began: not in it, a snapshot of then. The cursor
         * is the last (smallest) id shown; one past the watermark (from
         * another walk) starts at the watermark. */
        w = gx__svc_list_watermark(s);
        f.desc = 1;
        f.before = f.after && f.after <= w ? f.after : w + 1;
        f.after = 0;
        if (gx_store_list_jobs(s->store, &f, &jobs, &n, &next, &err)) return reply_err(r, &err);
        shown = n;
    }
    for (int round = 0; round < 2 && !desc; round++) {
        gx_job_id w0 = round ? gx__svc_list_watermark_wait(s, f.after, 500) : gx__svc_list_watermark(s);
        if (round && w0 <= f.after) break; /* still in flight: answer the empty page */
        gx_store_free(jobs);
        next = 0;
        if (gx_store_list_jobs(s->store, &f, &jobs, &n, &next, &err)) return reply_err(r, &err);
        w = w0; /* taken before the read: what it may pass */
        shown = n;
        while (shown && jobs[shown - 1].id > w) shown--;
        if (shown || !n || w > f.after) break;
    }
    /* jobs left for the next page, or a filtered read that stopped past an
     * id still in flight: go on from the watermark (a next page even if
     * next is 0: "0" is from the start) */
    if (!desc) more = shown < n || next > w;
    if (more) next = w > f.after ? w : f.after;
    /* written as text, each job by the writer of GET /v1/jobs/{id} */
    gx_jbuf b = {0};
    int bad = gx_jbuf_puts(&b, "{\"jobs\":[");
    for (size_t i = 0, k = 0; i < shown && !bad; i++) {
        if (nl > 1 && !labels_match(jobs[i].labels_json, lk + 1, lq + 1, nl - 1)) continue;
        gx_job_info info;
        int live = !gx_job_get(s->engine, jobs[i].id, &info, NULL);
        /* the engine's state is the newer one: a job the store still has
         * queued but that runs now is not listed as queued */
        if (live && f.state_mask && !(f.state_mask >> info.state & 1)) continue;
        size_t len = 0;
        char *t = gx__svc_job_text(s, live ? &info : NULL, live ? NULL : &jobs[i], &len);
        bad |= !t || (k++ && gx_jbuf_put(&b, ",", 1)) || gx_jbuf_put(&b, t, len);
        free(t);
    }
    gx_store_free(jobs);
    bad |= gx_jbuf_puts(&b, "],\"next_cursor\":");
    if (next || more)
        bad |= gx_jbuf_put(&b, "\"", 1) || gx_jbuf_int(&b, (int64_t)next) || gx_jbuf_put(&b, "\"", 1);
    else
        bad |= gx_jbuf_put(&b, "null", 4);
    bad |= gx_jbuf_put(&b, "}", 1);
    if (bad) {
        free(b.p);
        gx_http_error(r, 503, GX_ENOMEM, NULL, "cannot write the page now; retry");
        return 0;
    }
    gx_http_reply(r, 200, "application/json", b.p, b.len);
    return 0;
}

static int h_events(void *app, gx_http_req *r) {
    gx_service *s = app;
    gx__sub_filter f;
    memset(&f, 0, sizeof f);
    const char *q;
    if ((q = gx_http_query(r, "job")) && *q) { /* empty is absent, as for the listing */
        f.job = gx_job_id_parse(q);
        if (!f.job) {
            gx_http_error(r, 400, GX_EINVAL, "job", "job must be a job id");
            return 0;
        }
    }
    long m = state_mask(gx_http_query(r, "state"));
    if (m < 0) {
        gx_http_error(r, 400, GX_EINVAL, "state", "unknown state in '%.60s' (queued, waiting, running, retrying, "
                      "succeeded, failed, cancelled, timed_out, dead)", gx_http_query(r, "state"));
        return 0;
    }
    /* a job placed on a device is published when it starts: a stream of
     * 'scheduled' alone would wait for good */
    if (m >> GX_JOB_SCHEDULED & 1) {
        gx_http_error(r, 400, GX_EINVAL, "state",
                      "'scheduled' is not an event: a job placed on a device is published as 'running' when it "
                      "starts (queued, waiting, running, retrying, succeeded, failed, cancelled, timed_out, dead)");
        return 0;
    }
    f.state_mask = (unsigned)m;
    if ((q = gx_http_query(r, "kernel"))) {
        snprintf(f.kernel, sizeof f.kernel, "%s", q);
        f.kernel[strcspn(f.kernel, "@")] = '\0'; /* events carry the kernel's name */
    }
    /* tenant=NAME, as for GET /v1/jobs: any tenant for a key that reads
     * across tenants (operators, admins), else its own only (it was
     * ignored: a viewer asking for another tenant got its own events) */
    if (!(q = query_tenant(r))) return 0;
    int named = q != r->ctx.tenant; /* tenant= given (else a key across tenants sees them all) */
    if (named || !r->ctx.cross) {
        gx_tenant_info ti;
        f.tenant = UINT32_MAX; /* a tenant the engine does not know sees nothing */
        if (!gx_tenant_get(s->engine, q, &ti)) f.tenant = ti.id;
        else if (named) {
            gx_http_error(r, 404, GX_ENOTFOUND, "tenant", "no tenant '%.64s'", q);
            return 0;
        }
        f.tenant_set = 1;
    }
    /* Resume after an event id: the Last-Event-ID header an SSE client
     * sends when it reconnects wins over after= (the URL it was opened
     * with). A malformed header gets a reset event, not an error: browsers
     * send it on their own; a malformed after= is the caller's mistake. */
    gx__sub_resume from = {0};
    int resume = 0;
    const char *h = gx_http_header(r, "Last-Event-ID");
    char idbuf[64];
    if (h) { /* without the whitespace around it */
        size_t n;
        h = gx_str_trim_ows(h, &n);
        snprintf(idbuf, sizeof idbuf, "%.*s", (int)(n < sizeof idbuf ? n : sizeof idbuf - 1), h);
        h = n < sizeof idbuf ? idbuf : "\x01"; /* longer than any id: malformed */
    }
    if (h && *h) {
        resume = 1;
        from.malformed = gx__svc_event_id_parse(h, &from.boot, &from.seq) != 0;
    } else if ((q = gx_http_query(r, "after")) && *q) { /* empty is absent */
        resume = 1;
        if (gx__svc_event_id_parse(q, &from.boot, &from.seq)) {
            gx_http_error(r, 400, GX_EINVAL, "after",
                          "after must be an event id (<16 hex digits>-<number>, the id: of an event), not '%.40s'", q);
            return 0;
        }
    }
    gx__svc_subscribe(s, r, &f, resume ? &from : NULL);
    return 0;
}

/* ---- blobs ----------------------------------------------------------------- */

static int h_blob_put(void *app, gx_http_req *r) {
    gx_service *s = app;
    if (!ctype_is(r, "application/octet-stream") && !ctype_is(r, "application/x-npy")) {
        gx_http_error(r, 415, GX_EUNSUPPORTED, "Content-Type",
                      "blobs are .npy files: send Content-Type: application/octet-stream");
        return 0;
    }
    gx_error err;
    gx_error_clear(&err);
    gx_array *a;
    if (gx_npy_read_mem(r->body, r->body_len, &a, &err)) {
        if (!err.field[0]) snprintf(err.field, sizeof err.field, "body"); /* else: the part of the .npy */
        /* a .npy this reader does not take (a dtype, Fortran order) is a bad
         * body, 400 as the API says, not 422 (no device for a job) */
        if (err.code == GX_EUNSUPPORTED) {
            gx_http_error(r, 400, err.code, err.field, "%s", err.message);
            return 0;
        }
        return reply_err(r, &err);
    }
    char id[GX_STORE_BLOB_ID_LEN];
    int rc = gx_store_blob_put(s->store, r->ctx.tenant, r->body, r->body_len, id, &err);
    if (rc && gx_http_status_for(rc) >= 500) {
        /* the server's side: its paths stay in its log, and no field of the
         * request is at fault; the client gets the cause (the system's
         * words after the path: "No space left on device") */
        gx_array_unref(a);
        GX_LOGW("%s: blob upload not stored: %s", r->request_id, err.message);
        const char *cause = strrchr(err.message, ':');
        if (cause) cause += strspn(cause, ": ");
        gx_http_error(r, gx_http_status_for(rc), rc, NULL, "the blob could not be stored (%s); nothing was kept, retry",
                      cause && *cause ? cause : gx_strerror(rc));
        return 0;
    }
    if (rc) {
        gx_array_unref(a);
        return reply_err(r, &err);
    }
    json_t *shape = json_array();
    for (int i = 0; i < a->ndim; i++) json_array_append_new(shape, json_integer(a->shape[i]));
    gx_http_reply_json(r, 201, json_pack("{s:s,s:I,s:s,s:o}", "id", id, "bytes", (json_int_t)r->body_len, "dtype",
                                         gx_dtype_name(a->dtype), "shape", shape));
    char loc[100];
    snprintf(loc, sizeof loc, "/v1/blobs/%s", id);
    gx_http_header_add(r, "Location", loc);
    gx_array_unref(a);
    return 0;
}

static int h_blob_get(void *app, gx_http_req *r) {
    gx_service *s = app;
    const char *id = r->params[0];
    if (!gx_store_blob_id_valid(id)) {
        gx_http_error(r, 404, GX_ENOTFOUND, "id", "no blob '%.80s' (ids are sha256:<64 lowercase hex>)", id);
        return 0;
    }
    int64_t size;
    gx_error err;
    /* another tenant's blob is "not found", as its jobs are; an admin reads any */
    int fd = -1; /* the file checked against the id is the file sent */
    int rc = gx_store_blob_open_fd(s->store, r->ctx.cross ? NULL : r->ctx.tenant, id, &fd, &size, &err);
    if (rc == GX_ENOTFOUND) {
        gx_http_error(r, 404, GX_ENOTFOUND, "id", "no blob %s", id);
        return 0;
    }
    if (rc) return reply_err(r, &err);
    gx_http_reply_file(r, 200, "application/octet-stream", fd, (uint64_t)size);
    return 0;
}

/* ---- catalog, devices, health ----------------------------------------------- */

/* An argument's number in the catalog: an int argument's as an integer
 * ("default":0, not 0.0) where it is one. */
static json_t *arg_number(double v, int integer) {
    if (integer && v == floor(v) && fabs(v) < 9e15) return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *dtypes_json(unsigned mask) {
    json_t *a = json_array();
    for (int d = 1; d < GX_DT_COUNT; d++)
        if (mask & GX_DTM(d)) json_array_append_new(a, json_string(gx_dtype_name((gx_dtype)d)));
    return a;
}

static json_t *io_json(const gx_io_spec *io, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = json_pack("{s:s,s:o,s:i,s:b,s:b}", "name", io[i].name, "dtypes", dtypes_json(io[i].dtypes), "rank",
                              io[i].rank, "optional", (io[i].flags & GX_IO_OPTIONAL) != 0, "series",
                              (io[i].flags & GX_IO_SERIES) != 0);
        if (io[i].shape) json_object_set_new(o, "shape", json_string(io[i].shape));
        if (io[i].doc) json_object_set_new(o, "doc", json_string(io[i].doc));
        json_array_append_new(a, o);
    }
    return a;
}

/* A circuit breaker as JSON: {state, failures, next_probe_at, transitions}. */
static json_t *circuit_json(int state, int failures, int64_t probe_ns, int64_t transitions) {
    return json_pack("{s:s,s:i,s:o,s:I}", "state", gx_breaker_state_name(state), "failures", failures,
                     "next_probe_at", probe_ns ? gx_json_time(probe_ns) : json_null(), "transitions",
                     (json_int_t)transitions);
}

static int h_kernels(void *app, gx_http_req *r) {
    gx_service *s = app;
    static const char *const types[] = {"", "float", "int", "bool", "enum"};
    json_t *arr = json_array();
    for (int i = 0; i < gx_kernel_count(); i++) {
        const gx_kernel *k = gx_kernel_at(i);
        if (!k || !strncmp(k->name, "test_", 5)) continue;
        json_t *args = json_array();
        for (int a = 0; a < k->nargs; a++) {
            const gx_arg_spec *as = &k->args[a];
            json_t *o = json_pack("{s:s,s:s,s:b}", "name", as->name, "type", types[as->type], "required", as->required);
            if (as->type == GX_ARG_ENUM) {
                json_t *ch = json_array();
                for (int c = 0; as->choices && as->choices[c]; c++) json_array_append_new(ch, json_string(as->choices[c]));
                json_object_set_new(o, "choices", ch);
                if (!as->required && as->choices) json_object_set_new(o, "default", json_string(as->choices[(int)as->def]));
            } else if (as->type == GX_ARG_BOOL) {
                if (!as->required) json_object_set_new(o, "default", json_boolean(as->def != 0));
            } else {
                int in = as->type == GX_ARG_INT;
                if (!as->required) json_object_set_new(o, "default", arg_number(as->def, in));
                json_object_set_new(o, "min", arg_number(as->min, in));
                json_object_set_new(o, "max", arg_number(as->max, in));
            }
            if (as->doc) json_object_set_new(o, "doc", json_string(as->doc));
            json_array_append_new(args, o);
        }
        json_t *devs = json_array();
        if (gx_kernel_impl(k, GX_DEV_CPU)) json_array_append_new(devs, json_string("cpu"));
        if (gx_kernel_impl(k, GX_DEV_CUDA)) json_array_append_new(devs, json_string("gpu"));
        json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:b,s:b,s:o,s:o,s:o,s:o}", "name", k->name, "version",
                                             k->version, "summary", k->summary ? k->summary : "", "batchable",
                                             (k->flags & GX_KF_BATCHABLE) != 0, "checkpoints",
                                             (k->flags & GX_KF_CHECKPOINT) != 0, "devices", devs, "args", args,
                                             "inputs", io_json(k->inputs, k->ninputs), "outputs",
                                             io_json(k->outputs, k->noutputs)));
        json_t *kj = json_array_get(arr, json_array_size(arr) - 1);
        gx_breaker_info bi;
        gx_kernel_breaker_get(s->engine, k, &bi);
        json_t *cj = circuit_json(bi.state, bi.failures, bi.probe_ns, bi.transitions);
        json_object_set_new(cj, "parked_jobs", json_integer(bi.parked));
        json_object_set_new(kj, "circuit", cj);
        json_object_set_new(kj, "default_max_attempts", json_integer(gx_kernel_default_attempts(k)));
    }
    gx_http_reply_json(r, 200, json_pack("{s:o}", "kernels", arr));
    return 0;
}

void gx__svc_status_redact_jobs(char *st) {
    char *w = st;
    for (const char *p = st; *p;) {
        if (!strncmp(p, "job ", 4) && p[4] >= '0' && p[4] <= '9') {
            p += 4; /* past the digits before writing: w may be at p */
            while (*p >= '0' && *p <= '9') p++;
            memcpy(w, "a job", 5); /* no longer than "job N": w stays at or before p */
            w += 5;
        } else {
            *w++ = *p++;
        }
    }
    *w = '\0';
}

/* One device as GET /v1/devices and the drain routes show it; NULL when i
 * is out of range. redact: the caller reads its own tenant only. */
static json_t *device_json(gx_service *s, int i, int redact) {
    gx_device_info d;
    if (gx_device_get(s->engine, i, &d)) return NULL;
    if (redact) gx__svc_status_redact_jobs(d.status);
    /* a fault's reason stays when an operator drains the device too (health
     * shows the fault first; the reason was replaced by the drain's) */
    char status[sizeof d.status + 32];
    int faulted = d.lost || d.recovering || !d.healthy;
    snprintf(status, sizeof status, "%s%s", faulted || !d.drained ? d.status : "",
             !d.drained ? "" : faulted ? "; drained by an operator" : "drained by an operator");
    json_t *dj = json_pack("{s:i,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:b,s:s,s:I,s:f}", "index", d.index, "name", d.name,
                           "kind", d.kind == GX_DEV_CUDA ? "gpu" : "cpu", "model", d.model, "slots", d.slots,
                           "memory_total", (json_int_t)d.mem_total, "memory_used", (json_int_t)d.mem_used, "running",
                           (json_int_t)d.running, "queued", (json_int_t)d.queued, "healthy", d.healthy, "status",
                           status, "jobs_done", (json_int_t)d.jobs_done,
                           "busy_seconds", d.busy_s);
    if (!dj) return NULL;
    /* an operator's drain (gx_device_drain), then the health loop (src/exec/health.c) */
    json_object_set_new(dj, "drained", json_boolean(d.drained));
    json_object_set_new(dj, "health", json_string(d.lost ? "lost" : d.recovering ? "recovering" : !d.healthy ? "unhealthy"
                                                  : d.drained ? "drained" : "ok"));
    json_object_set_new(dj, "recoveries", json_integer((json_int_t)d.recoveries));
    json_object_set_new(dj, "recovery_failures", json_integer((json_int_t)d.recovery_failures));
    json_object_set_new(dj, "last_recovery_seconds", d.recoveries ? json_real(d.last_recovery_s) : json_null());
    json_object_set_new(dj, "circuit", circuit_json(d.breaker_state, d.breaker_failures, d.breaker_probe_ns,
                                                    d.breaker_transitions));
    gx_device_telemetry t;
    if (!gx_device_telemetry_get(s->engine, i, &t)) {
        json_t *tj = json_object();
#define TEL(name, v) if ((v) >= 0) json_object_set_new(tj, name, json_real((double)(v)))
        TEL("utilization_percent", t.util_pct);
        TEL("memory_utilization_percent", t.mem_util_pct);
        TEL("memory_used_bytes", t.mem_used);
        TEL("memory_total_bytes", t.mem_total);
        TEL("temperature_celsius", t.temp_c);
        TEL("power_watts", t.power_w);
        TEL("sm_clock_mhz", t.sm_clock_mhz);
        TEL("memory_clock_mhz", t.mem_clock_mhz);
        TEL("ecc_corrected", t.ecc_corrected);
        TEL("ecc_uncorrected", t.ecc_uncorrected);
        TEL("xid_last", t.xid_last);
        TEL("pool_reserved_bytes", t.pool_reserved);
#undef TEL
        json_object_set_new(dj, "telemetry", tj);
    }
    return dj;
}

static int h_devices(void *app, gx_http_req *r) {
    gx_service *s = app;
    json_t *arr = json_array();
    int ngpu = 0;
    for (int i = 0; i < gx_device_count(s->engine); i++) {
        json_t *dj = device_json(s, i, !r->ctx.cross);
        if (!dj) continue;
        ngpu += !strcmp(json_string_value(json_object_get(dj, "kind")), "gpu");
        json_array_append_new(arr, dj);
    }
    json_t *gpu = json_pack("{s:b,s:s}", "available", ngpu > 0, "message", gx_engine_gpu_status(s->engine));
    gx_http_reply_json(r, 200, json_pack("{s:o,s:o}", "devices", arr, "gpu", gpu));
    return 0;
}

/* {id}: a device's name ("cpu", "cuda:0") or its index ("0"), with its
 * info in *d; -1 none. */
static int device_index(gx_service *s, const char *id, gx_device_info *d) {
    int n = gx_device_count(s->engine);
    size_t len = strlen(id);
    if (len >= 1 && len <= 3 && strspn(id, "0123456789") == len && (id[0] != '0' || len == 1)) { /* "00" is none */
        int i = atoi(id);
        return i < n && !gx_device_get(s->engine, i, d) ? i : -1;
    }
    for (int i = 0; i < n; i++)
        if (!gx_device_get(s->engine, i, d) && !strcmp(d->name, id)) return i;
    return -1;
}

/* POST (drain) and DELETE (undrain) /v1/devices/{id}/drain. */
static int h_device_drain(void *app, gx_http_req *r) {
    gx_service *s = app;
    const char *id = r->nparams > 0 ? r->params[0] : "";
    gx_device_info d;
    int i = device_index(s, id, &d);
    if (i < 0) {
        gx_http_error(r, 404, GX_ENOTFOUND, "id", "no such device (a name as in GET /v1/devices, or its index)");
        return 0;
    }
    gx_error err = {0};
    int drain = !strcmp(r->method, "POST");
    /* durable first (it outlives a restart, the self-restart after a device
     * loss included), then in effect; a store that cannot write: 503 and
     * nothing changed */
    char key[128];
    snprintf(key, sizeof key, GX__DRAIN_KEY "%s", d.name);
    /* one drain or undrain at a time: the store and the engine agree */
    pthread_mutex_lock(&s->dmu);
    if (gx_store_setting_put(s->store, key, drain ? "1" : NULL, &err)) {
        pthread_mutex_unlock(&s->dmu);
        gx_http_error(r, 503, GX_ESTORE, NULL, "the drain could not be stored (%s); nothing changed, retry later",
                      err.message);
        return 0;
    }
    int rc = gx_device_drain(s->engine, i, drain, &err);
    pthread_mutex_unlock(&s->dmu);
    if (rc) {
        gx_http_error(r, gx_http_status_for(err.code), err.code, "id", "%s", err.message);
        return 0;
    }
    json_t *dj = device_json(s, i, 0); /* the roles that drain read every tenant's jobs */
    if (!dj) {
        gx_http_error(r, 503, GX_ENOMEM, NULL, "cannot render the device");
        return 0;
    }
    gx_http_reply_json(r, 200, dj);
    return 0;
}

static int h_healthz(void *app, gx_http_req *r) {
    (void)app;
    gx_http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
}

static int h_readyz(void *app, gx_http_req *r) {
    gx_service *s = app;
    char why[200];
    int ok = gx_service_ready(s, why, sizeof why);
    gx_http_reply_json(r, ok ? 200 : 503, json_pack("{s:b,s:s}", "ready", ok, "message", why));
    if (!ok) gx_http_header_add(r, "Retry-After", "1");
    return 0;
}

int gx__svc_metrics_render(gx_service *s, char **buf, size_t *len);

static int h_metrics(void *app, gx_http_req *r) {
    gx_service *s = app;
    char *buf;
    size_t len;
    if (gx__svc_metrics_render(s, &buf, &len)) {
        gx_http_error(r, 503, GX_ENOMEM, NULL, "cannot render metrics");
        return 0;
    }
    gx_http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", buf, len);
    return 0;
}

static const char *const JSON_BODY[] = {"application/json", NULL};
static const char *const NPY_BODY[] = {"application/octet-stream", "application/x-npy", NULL};

const gx_route gx__routes[] = {
    {"POST", "/v1/jobs", h_submit, "submit a job", JSON_BODY},
    {"GET", "/v1/jobs", h_list, "list jobs", NULL},
    {"POST", "/v1/jobs:batch", h_submit_batch, "submit up to 10,000 jobs", JSON_BODY},
    {"GET", "/v1/jobs/{id}", h_get, "a job's state", NULL},
    {"DELETE", "/v1/jobs/{id}", h_cancel, "cancel a job", NULL},
    {"GET", "/v1/jobs/{id}/result", h_result, "a succeeded job's outputs", NULL},
    {"GET", "/v1/jobs/{id}/events", h_job_events, "a job's state changes", NULL},
    {"POST", "/v1/jobs/{id}/requeue", gx__h_job_requeue, "re-queue a dead or failed job", NULL},
    {"GET", "/v1/events", h_events, "server-sent events of job state changes", NULL},
    {"POST", "/v1/blobs", h_blob_put, "upload a .npy array", NPY_BODY},
    {"GET", "/v1/blobs/{id}", h_blob_get, "download a blob", NULL},
    {"GET", "/v1/kernels", h_kernels, "the kernel catalog", NULL},
    {"GET", "/v1/devices", h_devices, "devices and their state", NULL},
    {"POST", "/v1/devices/{id}/drain", h_device_drain, "drain a device: no new placements", NULL},
    {"DELETE", "/v1/devices/{id}/drain", h_device_drain, "undrain a device", NULL},
    {"POST", "/v1/keys", gx__h_key_create, "create an API key (its secret is shown once)", NULL},
    {"GET", "/v1/keys", gx__h_key_list, "list API keys (no secrets)", NULL},
    {"DELETE", "/v1/keys/{id}", gx__h_key_revoke, "revoke an API key", NULL},
    {"POST", "/v1/tenants", gx__h_tenant_put, "create or change a tenant", NULL},
    {"GET", "/v1/tenants", gx__h_tenant_list, "list tenants", NULL},
    {"GET", "/v1/tenants/{t}/usage", gx__h_tenant_usage, "a tenant's usage against each quota", NULL},
    {"GET", "/v1/whoami", gx__h_whoami, "the caller: key, tenant and role", NULL},
    {"GET", "/v1/audit", gx__h_audit, "audit records", NULL},
    {"GET", "/v1/admin/faults", gx__h_faults_list, "armed fault injection points", NULL},
    {"POST", "/v1/admin/faults", gx__h_faults_arm, "arm a fault injection point", NULL},
    {"DELETE", "/v1/admin/faults", gx__h_faults_clear, "disarm fault injection points", NULL},
    {"GET", "/healthz", h_healthz, "liveness", NULL},
    {"GET", "/readyz", h_readyz, "readiness", NULL},
    {"GET", "/metrics", h_metrics, "Prometheus metrics", NULL},
    {"GET", "/dashboard", gx__h_dashboard, "the built-in dashboard (HTML)", NULL},
    {"GET", "/dashboard/app.js", gx__h_dashboard, "the dashboard's script", NULL},
    {"GET", "/dashboard/style.css", gx__h_dashboard, "the dashboard's style sheet", NULL},
};
const int gx__nroutes = (int)(sizeof gx__routes / sizeof gx__routes[0]);
