/*
 * roles.c - roles and the permission table: for each (method, route
 * pattern) the least role that may call it on its own tenant, and the least
 * role that reaches every tenant through it.
 *
 * The table is the only place permissions are written down. The HTTP layer
 * asks gx_auth_allowed with the pattern of the route it matched; the docs
 * table in docs/security.md is printed from it by gx_auth_table_markdown
 * (and a test fails when the two differ); a test checks every cell. A route
 * missing here is refused to everyone, so a new route is closed until it is
 * given a row.
 *
 * Decisions worth a word:
 *  - Operators read every tenant's jobs and events (they run the fleet) and
 *    cancel any job, but job outputs and blobs stay with their tenant: only
 *    admin reads another tenant's data.
 *  - /v1/devices and /v1/kernels: any key reads them. A device's status may
 *    name the job a fault came with (a global id, maybe another tenant's):
 *    keys that read every tenant's jobs see it, others read "a job".
 *  - /metrics carries every tenant's name and usage: operator, unless the
 *    configuration makes it public (for a scraper without a key).
 *  - A tenant's usage is readable by its own keys (viewer up); every
 *    tenant's by operators.
 *  - The dashboard's files are public: they are the same for everyone and
 *    hold no data; the page sends the key it is given to the API routes,
 *    which check it as for any client.
 */
#include <stdio.h>
#include <string.h>

#include "auth_int.h"

#define NONE GX_ROLE_NONE
#define VIEW GX_ROLE_VIEWER
#define SUBM GX_ROLE_SUBMITTER
#define OPER GX_ROLE_OPERATOR
#define ADMN GX_ROLE_ADMIN
#define ONLY GX_AUTH_OWN_ONLY

/* method, pattern, own, any, write, config_public, note */
static const gx_auth_rule rules[] = {
    {"POST", "/v1/jobs", SUBM, ONLY, 0, 0, "jobs are submitted to the key's own tenant"},
    {"GET", "/v1/jobs", VIEW, OPER, 0, 0, ""},
    {"POST", "/v1/jobs:batch", SUBM, ONLY, 0, 0, "jobs are submitted to the key's own tenant"},
    {"GET", "/v1/jobs/{id}", VIEW, OPER, 0, 0, ""},
    {"DELETE", "/v1/jobs/{id}", SUBM, OPER, 1, 0, "cancel"},
    {"GET", "/v1/jobs/{id}/result", VIEW, ADMN, 0, 0, "outputs are the tenant's data"},
    {"GET", "/v1/jobs/{id}/events", VIEW, OPER, 0, 0, ""},
    {"POST", "/v1/jobs/{id}/requeue", OPER, OPER, 1, 0, "re-queue a dead or failed job"},
    {"GET", "/v1/events", VIEW, OPER, 0, 0, ""},
    {"POST", "/v1/blobs", SUBM, ONLY, 0, 0, "blobs are owned by the key's own tenant"},
    {"GET", "/v1/blobs/{id}", VIEW, ADMN, 0, 0, "blobs are the tenant's data"},
    {"GET", "/v1/kernels", VIEW, NONE, 0, 0, ""},
    {"GET", "/v1/devices", VIEW, OPER, 0, 0, "every device; the job a fault came with: all only"},
    {"POST", "/v1/devices/{id}/drain", OPER, NONE, 0, 0, "no new placements on the device"},
    {"DELETE", "/v1/devices/{id}/drain", OPER, NONE, 0, 0, "undrain"},
    {"GET", "/v1/keys", ADMN, ADMN, 0, 0, ""},
    {"POST", "/v1/keys", ADMN, ADMN, 1, 0, ""},
    {"DELETE", "/v1/keys/{id}", ADMN, ADMN, 1, 0, "revoke"},
    {"GET", "/v1/tenants", ADMN, ADMN, 0, 0, ""},
    {"POST", "/v1/tenants", ADMN, ADMN, 1, 0, "create or change a tenant, quotas"},
    {"GET", "/v1/tenants/{t}/usage", VIEW, OPER, 0, 0, ""},
    {"GET", "/v1/whoami", VIEW, NONE, 0, 0, "the caller's own key, tenant and role"},
    {"GET", "/v1/audit", ADMN, NONE, 0, 0, ""},
    {"GET", "/v1/admin/faults", ADMN, NONE, 0, 0, "fault injection"},
    {"POST", "/v1/admin/faults", ADMN, NONE, 1, 0, "arm a fault; only with faults.enabled"},
    {"DELETE", "/v1/admin/faults", ADMN, NONE, 1, 0, "disarm faults"},
    {"GET", "/healthz", NONE, NONE, 0, 0, "no key needed"},
    {"GET", "/readyz", NONE, NONE, 0, 0, "no key needed"},
    {"GET", "/metrics", OPER, NONE, 0, 1, "no key needed if metrics.require_auth is false"},
    {"GET", "/dashboard", NONE, NONE, 0, 0, "no key needed: the page holds no data, it asks for a key"},
    {"GET", "/dashboard/app.js", NONE, NONE, 0, 0, "no key needed"},
    {"GET", "/dashboard/style.css", NONE, NONE, 0, 0, "no key needed"},
};

#define NRULES (sizeof rules / sizeof rules[0])

const char *gx_auth_role_name(int role) {
    static const char *const names[] = {"none", "viewer", "submitter", "operator", "admin"};
    return role >= 0 && role < (int)(sizeof names / sizeof names[0]) ? names[role] : "?";
}

int gx_auth_role_parse(const char *s) {
    if (!s) return GX_EINVAL;
    for (int r = GX_ROLE_VIEWER; r <= GX_ROLE_ADMIN; r++)
        if (!strcmp(s, gx_auth_role_name(r))) return r;
    return GX_EINVAL;
}

const gx_auth_rule *gx_auth_rules(size_t *n) {
    *n = NRULES;
    return rules;
}

const gx_auth_rule *gx_auth_rule_find(const char *method, const char *pattern) {
    if (!method || !pattern) return NULL;
    if (!strcmp(method, "HEAD")) method = "GET"; /* a GET without its body (http.c) */
    for (size_t i = 0; i < NRULES; i++)
        if (!strcmp(rules[i].pattern, pattern) && !strcmp(rules[i].method, method)) return &rules[i];
    return NULL;
}

int gx_auth_allowed(int role, const char *method, const char *pattern, int *cross_read, int *cross_write,
                    gx_error *err) {
    if (cross_read) *cross_read = 0;
    if (cross_write) *cross_write = 0;
    const gx_auth_rule *r = gx_auth_rule_find(method, pattern);
    if (!r)
        return gx_error_set(err, GX_EPERM, NULL, "%s %s is not open to any role", method ? method : "?",
                            pattern ? pattern : "?");
    if (role < r->own || role > GX_ROLE_ADMIN || role < 0)
        return gx_error_set(err, GX_EPERM, NULL, "role %s may not %s %s: it needs %s or above",
                            gx_auth_role_name(role), r->method, r->pattern, gx_auth_role_name(r->own));
    if (r->any != GX_ROLE_NONE && r->any != GX_AUTH_OWN_ONLY && role >= r->any) {
        if (cross_read) *cross_read = 1;
        if (cross_write) *cross_write = r->write;
    }
    return 0;
}

int gx_auth_needs_key(const char *method, const char *pattern, int metrics_public) {
    const gx_auth_rule *r = gx_auth_rule_find(method, pattern);
    if (!r) return 1;
    if (r->own == GX_ROLE_NONE) return 0;
    return !(r->config_public && metrics_public);
}

/* ---- docs --------------------------------------------------------------------- */

typedef struct sbuf {
    char *buf;
    size_t cap, len;
} sbuf;

static void put(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->len < b->cap) {
        size_t room = b->cap - b->len - 1;
        memcpy(b->buf + b->len, s, n < room ? n : room);
        b->buf[b->len + (n < room ? n : room)] = '\0';
    }
    b->len += n;
}

/* What role can do with r: "-", "yes" (route not per tenant), "own", "all",
 * "public". */
static const char *cell(const gx_auth_rule *r, int role) {
    if (r->own == GX_ROLE_NONE) return "public";
    if (role < r->own) return "-";
    if (r->any == GX_ROLE_NONE) return "yes";
    if (r->any == GX_AUTH_OWN_ONLY) return "own";
    return role >= r->any ? "all" : "own";
}

size_t gx_auth_table_markdown(char *buf, size_t cap) {
    sbuf b = {buf, cap, 0};
    if (cap) buf[0] = '\0';
    put(&b, "| Method | Route |");
    for (int role = GX_ROLE_VIEWER; role <= GX_ROLE_ADMIN; role++) {
        put(&b, " ");
        put(&b, gx_auth_role_name(role));
        put(&b, " |");
    }
    put(&b, " Notes |\n|---|---|");
    for (int role = GX_ROLE_VIEWER; role <= GX_ROLE_ADMIN; role++) put(&b, "---|");
    put(&b, "---|\n");
    for (size_t i = 0; i < NRULES; i++) {
        const gx_auth_rule *r = &rules[i];
        put(&b, "| ");
        put(&b, r->method);
        put(&b, " | `");
        put(&b, r->pattern);
        put(&b, "` |");
        for (int role = GX_ROLE_VIEWER; role <= GX_ROLE_ADMIN; role++) {
            put(&b, " ");
            put(&b, cell(r, role));
            put(&b, " |");
        }
        put(&b, " ");
        put(&b, r->note);
        put(&b, " |\n");
    }
    return b.len;
}
