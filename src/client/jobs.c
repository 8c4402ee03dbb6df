/*
 * jobs.c - submit, get, wait, cancel, list and the event history of jobs.
 *
 * Job objects are parsed leniently: a missing or null field leaves the
 * struct's "none" value ("" or 0 or -1), so an older or newer daemon that
 * adds or drops fields still works.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long jint(json_t *o, const char *key, long def) {
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) return (long)json_integer_value(v);
    if (json_is_real(v)) return (long)json_real_value(v);
    return def;
}

static double jnum(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

static int state_of(const char *name) {
    return *name ? gx_job_state_from_name(name) : -1;
}

/* error: null | {"code":"GX_E..","message":".."} (a job, its history) |
 * "GX_E.." (the live stream's events carry the code alone: the message is
 * then the code's own, gx_strerror) */
static void error_fields(json_t *o, int *code, char *name, size_t ncap, char *msg, size_t mcap) {
    json_t *e = json_object_get(o, "error");
    *code = 0;
    if (name) name[0] = '\0';
    msg[0] = '\0';
    const char *cname;
    if (json_is_string(e)) {
        cname = json_string_value(e);
    } else if (json_is_object(e)) {
        cname = json_string_value(json_object_get(e, "code"));
        gx__jstr(msg, mcap, e, "message");
    } else {
        return;
    }
    if (name) snprintf(name, ncap, "%s", cname ? cname : "");
    *code = gx__err_from_name(cname);
    if (!*code) *code = GX_EIO; /* a failure with a code we do not know */
    if (!msg[0]) snprintf(msg, mcap, "%s", gx_strerror(*code));
}

void gx__job_from_json(json_t *o, gx_client_job *j) {
    memset(j, 0, sizeof *j);
    j->wait_position = -1;
    gx__jstr(j->id, sizeof j->id, o, "id");
    gx__jstr(j->tenant, sizeof j->tenant, o, "tenant");
    gx__jstr(j->kernel, sizeof j->kernel, o, "kernel");
    gx__jstr(j->state_name, sizeof j->state_name, o, "state");
    j->state = state_of(j->state_name);
    j->priority = (int)jint(o, "priority", 0);
    j->attempts = (int)jint(o, "attempts", 0);
    j->max_attempts = (int)jint(o, "max_attempts", 0);
    gx__jstr(j->device, sizeof j->device, o, "device");
    gx__jstr(j->submitted_at, sizeof j->submitted_at, o, "submitted_at");
    gx__jstr(j->started_at, sizeof j->started_at, o, "started_at");
    gx__jstr(j->finished_at, sizeof j->finished_at, o, "finished_at");
    j->queue_seconds = jnum(o, "queue_seconds");
    j->run_seconds = jnum(o, "run_seconds");
    error_fields(o, &j->error_code, j->error_name, sizeof j->error_name, j->error_message,
                 sizeof j->error_message);
    json_t *w = json_object_get(o, "wait");
    if (json_is_object(w)) {
        gx__jstr(j->wait_reason, sizeof j->wait_reason, w, "reason");
        j->wait_position = jint(w, "position", -1);
        gx__jstr(j->waiting_on, sizeof j->waiting_on, w, "waiting_on");
        gx__jstr(j->wait_message, sizeof j->wait_message, w, "message");
    }
    gx__jstr(j->fallback, sizeof j->fallback, o, "fallback");
}

int gx_client_job_is_final(const gx_client_job *j) {
    return j->state >= 0 && gx_job_state_is_final(j->state);
}

/* "/v1/jobs/<escaped id><suffix>"; malloc'd. A call that fails here sent
 * nothing: c's last status is 0 from here on. */
static char *job_path(gx_client *c, const char *id, const char *suffix, gx_error *err) {
    gx__call_begin(c);
    if (!id || !*id) {
        gx_error_set(err, GX_EINVAL, "id", "job id is empty");
        return NULL;
    }
    char *e = gx__escape(id);
    if (!e) {
        gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t n = strlen(e) + strlen(suffix) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "/v1/jobs/%s%s", e, suffix);
    else
        gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    free(e);
    return p;
}

/* Run a request whose answer is a job object. */
static int job_call(gx_client *c, const char *method, const char *path, const char *body,
                    gx_client_job *job, char **raw, gx_error *err) {
    json_t *o = NULL;
    int rc = gx__http_json(c, method, path, body, &o, raw, err);
    if (rc == 0) {
        if (!json_is_object(o)) {
            rc = gx_error_set(err, GX_EFORMAT, NULL, "server answered %s %s with a non-object",
                              method, path);
        } else if (!(json_is_string(json_object_get(o, "id")) || json_is_integer(json_object_get(o, "id"))) ||
                   !json_is_string(json_object_get(o, "state"))) {
            /* not a job (a proxy's page, another route): a wait on it would
             * never see a final state */
            rc = gx_error_set(err, GX_EFORMAT, NULL, "server answered %s %s with something that is not a job",
                              method, path);
        } else if (job) {
            gx__job_from_json(o, job);
            job->created = c->last_status == 202 || c->last_status == 201;
        }
    }
    json_decref(o);
    return rc;
}

int gx_client_submit_json(gx_client *c, const char *spec_json, gx_client_job *job, char **raw,
                          gx_error *err) {
    if (raw) *raw = NULL;
    gx__call_begin(c);
    if (!spec_json) return gx_error_set(err, GX_EINVAL, "spec", "job spec is NULL");
    return job_call(c, "POST", "/v1/jobs", spec_json, job, raw, err);
}

int gx_client_submit(gx_client *c, const gx_jobspec *s, gx_client_job *job, char **raw,
                     gx_error *err) {
    char *json = NULL;
    if (raw) *raw = NULL;
    gx__call_begin(c);
    int rc = gx_jobspec_to_json(s, &json, err);
    if (rc) return rc;
    rc = gx_client_submit_json(c, json, job, raw, err);
    free(json);
    return rc;
}

int gx_client_get(gx_client *c, const char *id, gx_client_job *job, char **raw, gx_error *err) {
    if (raw) *raw = NULL;
    char *p = job_path(c, id, "", err);
    if (!p) return err ? err->code : GX_EINVAL;
    int rc = job_call(c, "GET", p, NULL, job, raw, err);
    free(p);
    return rc;
}

/* A call on /v1/jobs/{id}<suffix> answered with the job. */
static int job_action(gx_client *c, const char *method, const char *id, const char *suffix, gx_client_job *job,
                      char **raw, gx_error *err) {
    if (raw) *raw = NULL;
    char *p = job_path(c, id, suffix, err);
    if (!p) return err ? err->code : GX_EINVAL;
    int rc = job_call(c, method, p, NULL, job, raw, err);
    free(p);
    return rc;
}

int gx_client_cancel(gx_client *c, const char *id, gx_client_job *job, char **raw,
                     gx_error *err) {
    return job_action(c, "DELETE", id, "", job, raw, err);
}

int gx_client_requeue(gx_client *c, const char *id, gx_client_job *job, char **raw, gx_error *err) {
    return job_action(c, "POST", id, "/requeue", job, raw, err);
}

void gx_client_wait_opts_init(gx_client_wait_opts *o) {
    memset(o, 0, sizeof *o);
    o->timeout_ms = -1;
}

int gx_client_wait(gx_client *c, const char *id, const gx_client_wait_opts *o,
                   gx_client_job *job, gx_error *err) {
    gx_client_wait_opts def;
    if (!o) {
        gx_client_wait_opts_init(&def);
        o = &def;
    }
    gx_client_job local;
    if (!job) job = &local;
    double t0 = now_s();
    double interval = (o->poll_min_ms > 0 ? (double)o->poll_min_ms : 20.0) / 1000.0;
    double maxi = (o->poll_max_ms > 0 ? (double)o->poll_max_ms : 1000.0) / 1000.0;
    if (interval > maxi) interval = maxi;
    int seen = 0;
    for (;;) {
        /* timeout_ms bounds the whole wait, a poll that gets no answer
         * included: the poll's own request timeout is cut to what is left
         * (50 ms at least: a poll of a server that answers is not cut
         * short for the last few ms) */
        long saved = c->timeout_ms;
        int capped = 0;
        if (o->timeout_ms > 0) {
            double left_ms = (double)o->timeout_ms - (now_s() - t0) * 1000.0;
            long cap = left_ms < 50 ? 50 : (long)left_ms;
            if (saved <= 0 || cap < saved) {
                c->timeout_ms = cap;
                capped = 1;
            }
        }
        gx_client_job last = {0};
        if (seen) last = *job;
        int rc = gx_client_get(c, id, job, NULL, err);
        c->timeout_ms = saved;
        if (rc == GX_ETIMEDOUT && capped && (now_s() - t0) * 1000.0 >= (double)o->timeout_ms - 1) {
            if (seen) {
                *job = last; /* the last state seen */
                return gx_error_set(err, GX_ETIMEDOUT, NULL, "job %s is still %s after %.1f s (the last poll got no answer)",
                                    id, job->state_name, now_s() - t0);
            }
            return gx_error_set(err, GX_ETIMEDOUT, NULL, "job %s: no answer from the server within the wait's %.1f s",
                                id, now_s() - t0);
        }
        if (rc) return rc;
        seen = 1;
        double elapsed = now_s() - t0;
        if (o->progress && o->progress(o->ctx, job, elapsed))
            return gx_error_set(err, GX_ECANCELED, NULL, "wait for job %s stopped", id);
        if (gx_client_job_is_final(job)) return 0;
        double left = o->timeout_ms < 0 ? interval : (double)o->timeout_ms / 1000.0 - elapsed;
        if (left <= 0)
            return gx_error_set(err, GX_ETIMEDOUT, NULL,
                                "job %s is still %s after %.1f s", id, job->state_name, elapsed);
        double nap = interval < left ? interval : left;
        struct timespec ts = {(time_t)nap, (long)((nap - (double)(time_t)nap) * 1e9)};
        nanosleep(&ts, NULL);
        interval *= 2;
        if (interval > maxi) interval = maxi;
    }
}

/* ---- list ------------------------------------------------------------------ */

static void job_item(json_t *o, void *j) { gx__job_from_json(o, j); }

int gx_client_list(gx_client *c, const gx_client_list_opts *o, gx_client_job_list *out,
                   char **raw, gx_error *err) {
    memset(out, 0, sizeof *out);
    gx__call_begin(c);
    gx__buf q = {0};
    int rc = gx__buf_add(&q, "/v1/jobs", 8);
    if (o && !rc) {
        rc = gx__query_add(&q, "state", o->state);
        if (!rc) rc = gx__query_add(&q, "kernel", o->kernel);
        for (size_t i = 0; o->labels && i < o->nlabels && !rc; i++)
            rc = gx__query_add(&q, "label", o->labels[i]);
        if (o->limit > 0 && !rc) {
            char n[24];
            snprintf(n, sizeof n, "%d", o->limit);
            rc = gx__query_add(&q, "limit", n);
        }
        if (!rc) rc = gx__query_add(&q, "cursor", o->cursor);
        if (!rc) rc = gx__query_add(&q, "order", o->order);
        if (!rc) rc = gx__query_add(&q, "tenant", o->tenant);
    }
    void *items = NULL;
    rc = gx__get_page(c, &q, rc, "jobs", sizeof *out->jobs, job_item, &items, &out->n, out->next_cursor,
                      sizeof out->next_cursor, raw, err);
    out->jobs = items;
    return rc;
}

void gx_client_job_list_free(gx_client_job_list *l) {
    if (!l) return;
    free(l->jobs);
    l->jobs = NULL;
    l->n = 0;
}

/* ---- batch ----------------------------------------------------------------- */

int gx_client_submit_batch_json(gx_client *c, const char *batch_json, gx_client_batch *out,
                                char **raw, gx_error *err) {
    memset(out, 0, sizeof *out);
    if (raw) *raw = NULL;
    gx__call_begin(c);
    if (!batch_json) return gx_error_set(err, GX_EINVAL, "jobs", "batch is NULL");
    json_error_t je;
    json_t *in = json_loads(batch_json, 0, &je);
    if (!in) {
        int rc = gx_error_set(err, GX_EFORMAT, NULL, "batch is not valid JSON: %s (line %d)",
                              je.text, je.line);
        if (err) err->pos = je.position;
        return rc;
    }
    char *body = NULL;
    if (json_is_array(in)) {
        json_t *w = json_pack("{sO}", "jobs", in);
        body = w ? json_dumps(w, JSON_COMPACT) : NULL;
        json_decref(w);
    } else if (json_is_array(json_object_get(in, "jobs"))) {
        body = json_dumps(in, JSON_COMPACT);
    } else {
        json_decref(in);
        return gx_error_set(err, GX_EINVAL, "jobs",
                            "batch must be an array of job specs or {\"jobs\":[...]}");
    }
    json_decref(in);
    if (!body) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    json_t *root = NULL;
    int rc = gx__http_json(c, "POST", "/v1/jobs:batch", body, &root, raw, err);
    free(body);
    if (rc) return rc;
    json_t *res = json_object_get(root, "results");
    size_t n = json_array_size(res);
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (!out->items) {
        json_decref(root);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(res, i);
        long idx = jint(r, "index", (long)i);
        gx_client_batch_item *it = &out->items[idx >= 0 && (size_t)idx < n ? (size_t)idx : i];
        it->status = (int)jint(r, "status", 0);
        gx__jstr(it->id, sizeof it->id, r, "id");
        gx_error_clear(&it->error);
        json_t *e = json_object_get(r, "error");
        if (json_is_object(e)) {
            int code = gx__err_from_name(json_string_value(json_object_get(e, "code")));
            const char *m = json_string_value(json_object_get(e, "message"));
            gx_error_set(&it->error, code ? code : GX_EINVAL,
                         json_string_value(json_object_get(e, "field")), "%s",
                         m ? m : "refused");
        } else if (it->status >= 400) {
            gx_error_set(&it->error, GX_EINVAL, NULL, "refused with status %d", it->status);
        }
    }
    out->accepted = (size_t)jint(root, "accepted", 0);
    out->refused = (size_t)jint(root, "refused", 0);
    json_decref(root);
    return 0;
}

void gx_client_batch_free(gx_client_batch *b) {
    if (!b) return;
    free(b->items);
    b->items = NULL;
    b->n = 0;
}

/* ---- event history ---------------------------------------------------------- */

void gx__event_from_json(json_t *o, gx_client_event *ev) {
    memset(ev, 0, sizeof *ev);
    ev->seq = jint(o, "seq", 0);
    gx__jstr(ev->id, sizeof ev->id, o, "id");
    gx__jstr(ev->state_name, sizeof ev->state_name, o, "state");
    ev->state = state_of(ev->state_name);
    ev->attempt = (int)jint(o, "attempt", 0);
    gx__jstr(ev->time, sizeof ev->time, o, "time");
    gx__jstr(ev->device, sizeof ev->device, o, "device");
    error_fields(o, &ev->error_code, NULL, 0, ev->error_message, sizeof ev->error_message);
    if (!ev->error_code) gx__jstr(ev->error_message, sizeof ev->error_message, o, "note");
}

int gx_client_job_events(gx_client *c, const char *id, gx_client_event **events, size_t *n,
                         char **raw, gx_error *err) {
    *events = NULL;
    *n = 0;
    if (raw) *raw = NULL;
    char *p = job_path(c, id, "/events", err);
    if (!p) return err ? err->code : GX_EINVAL;
    json_t *root = NULL;
    int rc = gx__http_json(c, "GET", p, NULL, &root, raw, err);
    free(p);
    if (rc) return rc;
    json_t *arr = json_object_get(root, "events");
    if (!json_is_array(arr)) {
        json_decref(root);
        return gx_error_set(err, GX_EFORMAT, "events", "server answer has no \"events\" array");
    }
    size_t m = json_array_size(arr);
    gx_client_event *evs = calloc(m ? m : 1, sizeof *evs);
    if (!evs) {
        json_decref(root);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; i < m; i++) {
        gx__event_from_json(json_array_get(arr, i), &evs[i]);
        if (!evs[i].id[0]) snprintf(evs[i].id, sizeof evs[i].id, "%s", id);
    }
    json_decref(root);
    *events = evs;
    *n = m;
    return 0;
}
