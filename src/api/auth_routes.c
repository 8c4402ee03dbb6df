/*
 * auth_routes.c - API keys, roles and the audit log in the service: the
 * HTTP hook that checks every request (after routing, so it knows the
 * route's pattern), the /v1/keys and /v1/audit handlers (tenants are in
 * tenants.c), and
 * the start-up of the key store, the limiter and the audit log.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "service.h"
#include "str.h"

static int64_t wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void gx__svc_audit(gx_service *s, const gx_http_req *r, const char *action, const char *target,
                   const char *outcome, const char *detail) {
    if (!s->audit) return;
    gx_audit_record rec = {
        .key_id = r ? r->ctx.key_id : "",
        .tenant = r ? r->ctx.tenant : "",
        .role = r ? r->ctx.role : "",
        .remote = r ? r->remote : "",
        .action = action,
        .target = target,
        .outcome = outcome,
        .detail = detail,
    };
    gx_error e;
    if (gx_audit_append(s->audit, &rec, NULL, &e)) GX_LOGE("audit: %s", e.message);
}

int gx__svc_auth_open(gx_service *s, gx_error *err) {
    if (!s->cfg.auth.enabled) {
        GX_LOGW("auth.enabled is false: every request acts as tenant %s with role admin", s->cfg.default_tenant);
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/auth.db", s->cfg.data_dir);
    int rc = gx_auth_keys_open(path, &s->keys, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/audit.log", s->cfg.data_dir);
    gx_audit_config ac = {.path = path,
                          .sync_ms = 100,
                          .max_bytes = s->cfg.auth.audit_max_bytes,
                          .keep = (int)s->cfg.auth.audit_keep};
    rc = gx_audit_open(&ac, &s->audit, err);
    if (rc) return rc;
    gx_auth_limiter_config lc = {.rate = s->cfg.auth.rate, .burst = s->cfg.auth.burst};
    rc = gx_auth_limiter_create(&lc, &s->limiter, err);
    if (rc) return rc;
    gx_auth_limiter_config rl = {.rate = s->cfg.auth.refused_rate, .burst = s->cfg.auth.refused_burst};
    rc = gx_auth_limiter_create(&rl, &s->refused_limiter, err);
    if (rc) return rc;
    const char *value = s->cfg.auth.admin_key; /* GEXEC_ADMIN_KEY included (config.c) */
    char secret[GX_AUTH_SECRET_LEN], scratch[GX_AUTH_SECRET_LEN];
    int created = 0, generated = 0;
    if (!(value && *value) && !gx_auth_admin_usable(s->keys)) {
        /* the secret is in its file before its key exists: no key is made
         * that nobody can read, and the secret never goes to the log. A
         * file already there holds a key that no longer works. */
        gx_error we;
        rc = gx_auth_key_generate(secret, NULL, err);
        if (rc == 0 && gx_auth_write_secret_file(s->cfg.auth.admin_key_file, secret, &we))
            rc = gx_error_set(err, GX_EIO, "auth.admin_key_file",
                              "cannot write the generated admin key (%s); make the folder writable, set "
                              "auth.admin_key_file, or give a key in GEXEC_ADMIN_KEY",
                              we.message);
        if (rc) {
            memset(secret, 0, sizeof secret);
            return rc;
        }
        value = secret;
        generated = 1;
    }
    rc = gx_auth_ensure_admin(s->keys, s->cfg.default_tenant, value, scratch, &created, err);
    if (rc == 0 && created && generated) {
        GX_LOGI("auth: generated an admin key; it is in %s (readable by its owner only)",
                s->cfg.auth.admin_key_file);
        gx__svc_audit(s, NULL, "key.bootstrap", "admin", "ok", "generated");
    } else if (rc == 0 && created) {
        gx__svc_audit(s, NULL, "key.bootstrap", "admin", "ok", "from configuration");
    }
    memset(scratch, 0, sizeof scratch);
    memset(secret, 0, sizeof secret);
    return rc;
}

void gx__svc_auth_close(gx_service *s) {
    gx_auth_limiter_destroy(s->limiter);
    gx_auth_limiter_destroy(s->refused_limiter);
    s->refused_limiter = NULL;
    gx_audit_close(s->audit);
    gx_auth_keys_close(s->keys);
    s->limiter = NULL;
    s->audit = NULL;
    s->keys = NULL;
}

/* ---- the hook ------------------------------------------------------------- */

int gx__svc_http_pre(void *app, gx_http_req *r) {
    gx_service *s = app;
    const char *pat = r->route ? r->route->pattern : NULL;
    /* the server runs while jobs are restored: only the probes and the
     * metrics are served; the rest waits for the jobs, ids and tenants */
    if (!atomic_load(&s->restored) &&
        !(pat && (!strcmp(pat, "/healthz") || !strcmp(pat, "/readyz") || !strcmp(pat, "/metrics")))) {
        gx_http_error(r, 503, GX_EBUSY, NULL, "starting: restoring jobs from the store; retry shortly");
        r->audited = 1; /* nothing was done */
        return 1;
    }
    if (!s->keys) { /* auth.enabled false */
        gx_str_copy(r->ctx.tenant, sizeof r->ctx.tenant, s->cfg.default_tenant);
        gx_str_copy(r->ctx.role, sizeof r->ctx.role, "admin");
        r->ctx.cross = 1;
        return 0;
    }
    if (!gx_auth_needs_key(r->method, pat, !s->cfg.metrics.require_auth)) {
        gx_str_copy(r->ctx.tenant, sizeof r->ctx.tenant, s->cfg.default_tenant);
        gx_str_copy(r->ctx.role, sizeof r->ctx.role, "none");
        return 0;
    }
    gx_auth_principal pr;
    memset(&pr, 0, sizeof pr);
    const char *tok = NULL;
    size_t len = 0;
    int reason = gx_auth_bearer(gx_http_header(r, "Authorization"), &tok, &len);
    if (reason == GX_AUTH_OK) {
        gx_auth_key_verify(s->keys, tok, len, 0, &pr);
        reason = pr.reason;
    }
    if (reason != GX_AUTH_OK) {
        /* the id a refused token claims is the client's word: it goes into
         * the detail, never as the record's actor (a made-up token named a
         * real key as the one refused) */
        r->ctx.key_id[0] = '\0';
        /* refused requests are limited per client address: each would
         * write an audit record (a flood of them, hundreds of bytes each) */
        char ipkey[80];
        double wait = 0;
        snprintf(ipkey, sizeof ipkey, "ip:%s", r->remote);
        if (s->refused_limiter && gx_auth_limiter_take(s->refused_limiter, ipkey, &wait) == GX_ELIMIT) {
            char ra[32];
            snprintf(ra, sizeof ra, "%lld", (long long)ceil(wait > 0 ? wait : 1));
            gx_http_error(r, 429, GX_ELIMIT, NULL,
                          "too many requests without a valid API key from this address; retry after %s s", ra);
            gx_http_header_add(r, "Retry-After", ra);
            r->audited = 1; /* no record for these: that is the point */
            return 1;
        }
        char what[300];
        snprintf(what, sizeof what, "%s %.200s", r->method, r->path);
        char detail[80];
        snprintf(detail, sizeof detail, "%s%s%.16s%s", gx_auth_reason_name(reason), pr.key_id[0] ? " (claimed key " : "",
                 pr.key_id, pr.key_id[0] ? ")" : "");
        gx__svc_audit(s, r, "auth.refused", what, "refused", detail);
        gx_http_error(r, 401, GX_EAUTH, "Authorization", "missing or invalid API key");
        gx_http_header_add(r, "WWW-Authenticate", "Bearer");
        return 1;
    }
    gx_str_copy(r->ctx.tenant, sizeof r->ctx.tenant, pr.tenant);
    gx_str_copy(r->ctx.role, sizeof r->ctx.role, gx_auth_role_name(pr.role));
    gx_str_copy(r->ctx.key_id, sizeof r->ctx.key_id, pr.key_id);
    r->ctx.key_expires_ns = pr.expires_ns;
    double retry = 0;
    if (gx_auth_limiter_take(s->limiter, pr.key_id, &retry) == GX_ELIMIT) {
        char ra[32];
        snprintf(ra, sizeof ra, "%lld", (long long)ceil(retry > 0 ? retry : 1));
        gx_http_error(r, 429, GX_ELIMIT, NULL, "rate limit of this API key exceeded; retry after %s s", ra);
        gx_http_header_add(r, "Retry-After", ra);
        return 1;
    }
    if (!pat) return 0; /* 404 or 405 follows */
    gx_error e;
    int cr = 0, cw = 0;
    if (gx_auth_allowed(pr.role, r->method, pat, &cr, &cw, &e)) {
        char what[300];
        snprintf(what, sizeof what, "%s %.200s", r->method, r->path);
        gx__svc_audit(s, r, "request.denied", what, "denied", e.message);
        gx_http_error(r, 403, GX_EPERM, NULL, "%s", e.message);
        return 1;
    }
    r->ctx.cross = strcmp(r->method, "GET") && strcmp(r->method, "HEAD") ? cw : cr;
    return 0;
}

/* The record of an answered state-changing request into rec (target and
 * detail are its buffers); 0 when the request is not audited here. */
static int done_record(const gx_http_req *r, gx_audit_record *rec, char target[128], char detail[64]) {
    if (!r->route || r->status == 401 || r->status == 403 || r->audited) return 0;
    const char *pat = r->route->pattern, *action = NULL;
    target[0] = '\0';
    if (!strcmp(r->method, "POST") && (!strcmp(pat, "/v1/jobs") || !strcmp(pat, "/v1/jobs:batch"))) {
        action = strcmp(pat, "/v1/jobs") ? "job.submit_batch" : "job.submit";
        /* the jobs it was answered with: job/42, or jobs/40-49 for a batch */
        if (r->job_lo && r->job_lo == r->job_hi)
            snprintf(target, 128, "job/%llu", (unsigned long long)r->job_lo);
        else if (r->job_lo)
            snprintf(target, 128, "jobs/%llu-%llu", (unsigned long long)r->job_lo, (unsigned long long)r->job_hi);
    }
    else if (!strcmp(r->method, "DELETE") && !strcmp(pat, "/v1/jobs/{id}")) {
        action = "job.cancel";
        snprintf(target, 128, "job/%.60s", r->nparams > 0 ? r->params[0] : "");
    } else if (!strcmp(r->method, "POST") && !strcmp(pat, "/v1/jobs/{id}/requeue")) {
        action = "job.requeue";
        snprintf(target, 128, "job/%.60s", r->nparams > 0 ? r->params[0] : "");
    } else if (!strcmp(pat, "/v1/devices/{id}/drain")) {
        action = strcmp(r->method, "POST") ? "device.undrain" : "device.drain";
        snprintf(target, 128, "device/%.60s", r->nparams > 0 ? r->params[0] : "");
    } else if (!strcmp(pat, "/v1/admin/faults") && strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
        action = strcmp(r->method, "POST") ? "fault.clear" : "fault.arm";
        snprintf(target, 128, "faults");
    }
    if (!action) return 0;
    if (r->ctx.count) snprintf(detail, 64, "status=%d jobs=%ld", r->status, r->ctx.count);
    else snprintf(detail, 64, "status=%d", r->status);
    *rec = (gx_audit_record){
        .key_id = r->ctx.key_id,
        .tenant = r->ctx.tenant,
        .role = r->ctx.role,
        .remote = r->remote,
        .action = action,
        .target = target,
        .outcome = r->status < 300 ? "ok" : "failed",
        .detail = detail,
    };
    return 1;
}

/* Audit state-changing requests once they are answered (from on_done),
 * unless their record went out with a group already. */
void gx__svc_audit_done(gx_service *s, const gx_http_req *r) {
    gx_audit_record rec;
    char target[128], detail[64];
    if (!s->audit || !done_record(r, &rec, target, detail)) return;
    gx_error e;
    if (gx_audit_append(s->audit, &rec, NULL, &e)) GX_LOGE("audit: %s", e.message);
}

/* The submissions that shared a commit, answered together: their records
 * in one write (a write per request cost the HTTP threads ~2 us each). */
void gx__svc_audit_done_n(gx_service *s, gx_http_req *const *rs, size_t n) {
    if (!s->audit || !n) return;
    gx_audit_record *recs = malloc(n * sizeof *recs);
    char (*bufs)[192] = malloc(n * sizeof *bufs);
    gx_http_req **done = malloc(n * sizeof *done);
    size_t k = 0;
    for (size_t i = 0; recs && bufs && done && i < n; i++)
        if (done_record(rs[i], &recs[k], bufs[k], bufs[k] + 128)) done[k++] = rs[i];
    gx_error e;
    if (k && gx_audit_append_n(s->audit, recs, k, NULL, &e)) {
        GX_LOGE("audit: %s", e.message);
        k = 0; /* on_done tries each again */
    }
    for (size_t i = 0; i < k; i++) done[i]->audited = 1;
    free(recs);
    free(bufs);
    free(done);
}

/* ---- handlers ---------------------------------------------------------------- */

static int bad(gx_http_req *r, int status, int code, const char *field, const char *msg) {
    gx_http_error(r, status, code, field, "%s", msg);
    return 0;
}

static int reply_gx(gx_http_req *r, const gx_error *e) {
    int code = e->code ? e->code : GX_EINVAL;
    gx_http_error(r, gx_http_status_for(code), code, e->field, "%s", e->message[0] ? e->message : gx_strerror(code));
    return 0;
}

/* The body as an object of the allowed members, or NULL with a 400 sent
 * (malformed JSON with its line and column, or the unknown member). */
static json_t *body_object(gx_http_req *r, const char *const *allowed) {
    gx_error e;
    gx_error_clear(&e);
    json_t *j = gx_json_object_body(r->body, r->body_len, allowed, &e);
    if (!j) gx_http_error(r, 400, e.code, e.field, "%s", e.message);
    return j;
}

static json_t *key_json(const gx_auth_key_info *k) {
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(k->id));
    json_object_set_new(o, "tenant", json_string(k->tenant));
    json_object_set_new(o, "role", json_string(gx_auth_role_name(k->role)));
    json_object_set_new(o, "label", json_string(k->label));
    json_object_set_new(o, "created_ns", json_integer(k->created_ns));
    json_object_set_new(o, "expires_ns", k->expires_ns ? json_integer(k->expires_ns) : json_null());
    json_object_set_new(o, "revoked", json_boolean(k->revoked_ns != 0));
    json_object_set_new(o, "last_used_ns", k->last_used_ns ? json_integer(k->last_used_ns) : json_null());
    return o;
}

/* The key routes with auth.enabled false: there is no key database (the
 * handlers took the daemon down on its NULL handle). 1 when answered. */
static int keys_off(const gx_service *s, gx_http_req *r) {
    if (s->keys) return 0;
    gx_http_error(r, 409, GX_ESTATE, NULL,
                  "API keys are off (auth.enabled is false): there are no keys; set auth.enabled: true to use them");
    return 1;
}

int gx__h_key_create(void *app, gx_http_req *r) {
    gx_service *s = app;
    if (keys_off(s, r)) return 0;
    static const char *const allowed[] = {"tenant", "role", "label", "expires_in_s", NULL};
    json_t *j = body_object(r, allowed);
    if (!j) return 0;
    /* a member of the wrong type is refused, never taken as absent: a
     * "tenant":["a"] made a key for the caller's own tenant */
    static const char *const strs[] = {"tenant", "role", "label"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(j, strs[i]);
        if (v && !json_is_string(v) && !(json_is_null(v) && i != 1)) {
            json_decref(j);
            gx_http_error(r, 400, GX_EINVAL, strs[i], "%s must be a string", strs[i]);
            return 0;
        }
    }
    const char *tenant = json_string_value(json_object_get(j, "tenant"));
    const char *role_s = json_string_value(json_object_get(j, "role"));
    const char *label = json_string_value(json_object_get(j, "label"));
    json_t *exp = json_object_get(j, "expires_in_s");
    if (!tenant) tenant = r->ctx.tenant;
    if (!role_s) {
        json_decref(j);
        return bad(r, 400, GX_EINVAL, "role", "role is required (viewer, submitter, operator or admin)");
    }
    int role = gx_auth_role_parse(role_s);
    if (role < 0) {
        json_decref(j);
        return bad(r, 400, GX_EINVAL, "role", "role must be viewer, submitter, operator or admin");
    }
    int64_t expires = 0;
    if (exp && !json_is_null(exp)) {
        /* at most 3e9 s (95 years): the expiry in ns since 1970 fits 64 bits
         * (1e10 overflowed it, and the key was refused as expiring in the past) */
        if (!json_is_number(exp) || !(json_number_value(exp) > 0) || json_number_value(exp) > 3e9) {
            json_decref(j);
            return bad(r, 400, GX_EINVAL, "expires_in_s",
                       "expires_in_s must be a positive number of seconds, at most 3e9 (95 years); null or absent: "
                       "the key does not expire");
        }
        expires = wall_ns() + (int64_t)(json_number_value(exp) * 1e9);
    }
    char secret[GX_AUTH_SECRET_LEN], id[GX_AUTH_KEY_ID_LEN];
    gx_error e;
    /* the key's tenant is made (stored first) before the key, once the key
     * itself passes its checks: a key whose tenant the store did not keep
     * could submit jobs that the next start refused */
    if (gx_auth_key_check(tenant, role, expires, label, &e)) {
        json_decref(j);
        return reply_gx(r, &e);
    }
    if (gx__svc_tenant_ensure(s, tenant, &e)) {
        gx_http_error(r, 503, e.code ? e.code : GX_ESTORE, "tenant", "the key's tenant %s could not be made (%s); no key was made",
                      tenant, e.message);
        json_decref(j); /* after: tenant is its string */
        return 0;
    }
    int rc = gx_auth_key_create(s->keys, tenant, role, expires, label, secret, id, &e);
    if (rc) {
        json_decref(j);
        return reply_gx(r, &e);
    }
    char target[64], detail[160];
    snprintf(target, sizeof target, "key/%s", id);
    snprintf(detail, sizeof detail, "tenant=%.63s role=%s", tenant, gx_auth_role_name(role));
    gx__svc_audit(s, r, "key.create", target, "ok", detail);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "key", json_string(secret));
    json_object_set_new(o, "tenant", json_string(tenant));
    json_object_set_new(o, "role", json_string(gx_auth_role_name(role)));
    json_object_set_new(o, "expires_at", expires ? json_integer(expires / 1000000000) : json_null());
    memset(secret, 0, sizeof secret);
    json_decref(j);
    gx_http_reply_json(r, 201, o);
    return 0;
}

/* The query of GET /v1/keys: 1 with *q filled, or 0 with a 400 sent naming the
 * parameter. A parameter given empty is as if absent (as for /v1/jobs). */
static int key_query(gx_http_req *r, gx_auth_key_query *q) {
    const char *v;
    char *end;
    memset(q, 0, sizeof *q);
    q->limit = 100;
    if ((v = gx_http_query(r, "tenant")) && *v) q->tenant = v;
    if ((v = gx_http_query(r, "revoked")) && *v) {
        if (strcmp(v, "true") && strcmp(v, "false"))
            return bad(r, 400, GX_EINVAL, "revoked", "revoked must be true or false");
        q->revoked = strcmp(v, "true") ? -1 : 1;
    }
    if ((v = gx_http_query(r, "limit")) && *v) {
        long l = strtol(v, &end, 10);
        if (*end || l < 1 || l > GX_AUTH_PAGE_MAX)
            return bad(r, 400, GX_EINVAL, "limit", "limit must be 1..1000");
        q->limit = (size_t)l;
    }
    if ((v = gx_http_query(r, "cursor")) && *v) {
        errno = 0;
        unsigned long long c = strtoull(v, &end, 10);
        if (*end || *v < '0' || *v > '9' || errno == ERANGE || c > INT64_MAX)
            return bad(r, 400, GX_EINVAL, "cursor", "cursor must be next_cursor of the previous page");
        q->after = c;
    }
    return 1;
}

int gx__h_key_list(void *app, gx_http_req *r) {
    gx_service *s = app;
    if (keys_off(s, r)) return 0;
    gx_auth_key_query q;
    if (!key_query(r, &q)) return 0;
    gx_auth_key_info *ks = NULL;
    size_t n = 0;
    uint64_t next = 0;
    gx_error e;
    if (gx_auth_key_page(s->keys, &q, &ks, &n, &next, &e)) return reply_gx(r, &e);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(arr, key_json(&ks[i]));
    gx_auth_free(ks);
    char nc[24];
    snprintf(nc, sizeof nc, "%llu", (unsigned long long)next);
    json_t *o = json_object();
    json_object_set_new(o, "keys", arr);
    json_object_set_new(o, "next_cursor", next ? json_string(nc) : json_null());
    gx_http_reply_json(r, 200, o);
    return 0;
}

int gx__h_key_revoke(void *app, gx_http_req *r) {
    gx_service *s = app;
    if (keys_off(s, r)) return 0;
    gx_error e;
    char target[64];
    snprintf(target, sizeof target, "key/%.40s", r->params[0]);
    if (gx_auth_key_revoke(s->keys, r->params[0], 0, &e)) {
        gx__svc_audit(s, r, "key.revoke", target, "failed", e.message);
        return reply_gx(r, &e);
    }
    gx__svc_audit(s, r, "key.revoke", target, "ok", "");
    gx__svc_streams_revoke(s, r->params[0]); /* refused from now on: its open streams too */
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(r->params[0]));
    json_object_set_new(o, "revoked", json_true());
    gx_http_reply_json(r, 200, o);
    return 0;
}

/* GET /v1/whoami: what the server makes of the caller's key (a script or
 * the dashboard learns its tenant and role without listing anything). */
int gx__h_whoami(void *app, gx_http_req *r) {
    gx_service *s = app;
    json_t *o = json_object();
    json_object_set_new(o, "key_id", r->ctx.key_id[0] ? json_string(r->ctx.key_id) : json_null());
    json_object_set_new(o, "tenant", json_string(r->ctx.tenant));
    json_object_set_new(o, "role", json_string(r->ctx.role));
    json_object_set_new(o, "expires_ns", r->ctx.key_expires_ns ? json_integer(r->ctx.key_expires_ns) : json_null());
    json_object_set_new(o, "auth", json_boolean(s->keys != NULL));
    gx_http_reply_json(r, 200, o);
    return 0;
}

/* A page of GET /v1/audit being collected by gx_audit_read. */
typedef struct audit_page {
    json_t *arr;   /* the records */
    uint64_t last; /* seq of the last one read */
} audit_page;

static int audit_page_add(void *ctx, uint64_t seq, const char *line, size_t len) {
    audit_page *pg = ctx;
    json_t *rec = json_loadb(line, len, 0, NULL);
    if (rec) json_array_append_new(pg->arr, rec);
    pg->last = seq;
    return 0;
}

int gx__h_audit(void *app, gx_http_req *r) {
    gx_service *s = app;
    const char *q;
    long long after = 0, limit = 100;
    char *end;
    errno = 0;
    if ((q = gx_http_query(r, "after")) && *q &&
        ((after = strtoll(q, &end, 10)) < 0 || *end || *q == '-' || errno == ERANGE))
        return bad(r, 400, GX_EINVAL, "after", "after must be a record's seq (an integer >= 0)");
    if ((q = gx_http_query(r, "limit")) && *q && ((limit = strtoll(q, &end, 10)), *end)) limit = 0;
    if (limit < 1 || limit > 1000) return bad(r, 400, GX_EINVAL, "limit", "limit must be 1..1000");
    char path[4096];
    snprintf(path, sizeof path, "%s/audit.log", s->cfg.data_dir);
    audit_page pg = {json_array(), (uint64_t)after};
    gx_error e;
    if (gx_audit_read(path, (uint64_t)after, (size_t)limit, audit_page_add, &pg, &e)) {
        json_decref(pg.arr);
        return reply_gx(r, &e);
    }
    json_t *arr = pg.arr;
    long long last = (long long)pg.last;
    json_t *o = json_object();
    json_object_set_new(o, "records", arr);
    json_object_set_new(o, "next_after", json_integer(last));
    gx_http_reply_json(r, 200, o);
    return 0;
}
