/*
 * cmd_admin.c - gexec keys, tenants and audit: API keys and tenants through
 * the admin routes (/v1/keys, /v1/tenants), and the audit log's hash chain
 * checked locally (gx_audit_verify; no daemon needed).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gexec/gexec_auth.h"

/* Send a request; print the JSON with --json, else hand it to show. */
static int call(cli_ctx *x, const char *method, const char *path, json_t *body, void (*show)(json_t *)) {
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int status = 0;
    char *resp = NULL;
    size_t rlen = 0;
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_client_request(x->c, method, path, b, b ? strlen(b) : 0, NULL, &status, &resp, &rlen, &err);
    free(b);
    if (rc) {
        free(resp);
        return cli_fail(x, rc, &err);
    }
    /* every answer here is a JSON object: another is the server's fault
     * (exit 5, with --json too), never shown as an empty one */
    json_t *root = json_loads(resp ? resp : "", 0, NULL);
    if (!json_is_object(root)) {
        free(resp);
        json_decref(root);
        fprintf(stderr, "gexec: the server's answer is not a JSON object\n");
        return CLI_EXIT_SERVER;
    }
    if (x->json || !show) cli_print_raw(resp);
    else show(root);
    json_decref(root);
    free(resp);
    return CLI_EXIT_OK;
}

static void show_key_created(json_t *o) {
    printf("%s\n", cli_js(o, "key"));
    fprintf(stderr, "gexec: key %s (tenant %s, role %s) created; the key above is shown only now\n", cli_js(o, "id"),
            cli_js(o, "tenant"), cli_js(o, "role"));
}

static void key_header(void) { printf("%-17s %-20s %-10s %-8s %s\n", "ID", "TENANT", "ROLE", "STATE", "LABEL"); }

/* STATE: revoked, expired (a key past its expiry is refused like a revoked
 * one; it showed as active), or active. */
static void key_row(const gx_client_key *k) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    const char *st = k->revoked ? "revoked" : k->expires_ns && k->expires_ns <= ns ? "expired" : "active";
    printf("%-17s %-20s %-10s %-8s %s\n", k->id, k->tenant, k->role, st, k->label);
}

/* keys list: every key, following next_cursor; with --limit one page (the
 * cursor of the next on stderr), unless --all follows them too. --json
 * prints the server's page, or for every key one object of the same shape
 * ({"keys":[...],"next_cursor":null}). */
static int keys_list(cli_ctx *x) {
    const cli_args *a = x->a;
    gx_client_key_list_opts o = {0};
    o.tenant = cli_get(a, FL_TENANT);
    const char *state = cli_get(a, FL_STATE);
    if (state && strcmp(state, "active") && strcmp(state, "revoked"))
        return cli_usage("--state wants active or revoked, not '%s'", state);
    if (state) o.revoked = strcmp(state, "revoked") ? -1 : 1;
    long limit = 0;
    if (cli_has(a, FL_LIMIT) && cli_int("limit", cli_get(a, FL_LIMIT), 1, 1000, &limit)) return CLI_EXIT_USAGE;
    o.limit = (int)limit;
    int all = !limit || cli_has(a, FL_ALL);
    char cursor[GX_CLIENT_ID_MAX] = "";
    if (cli_get(a, FL_CURSOR)) snprintf(cursor, sizeof cursor, "%s", cli_get(a, FL_CURSOR));
    json_t *acc = x->json && all ? json_array() : NULL;
    int code = CLI_EXIT_OK, first = 1;
    for (;;) {
        o.cursor = cursor;
        gx_client_key_list l;
        gx_error err;
        char *raw = NULL;
        int rc = gx_client_keys(x->c, &o, &l, x->json ? &raw : NULL, &err);
        if (rc) {
            free(raw);
            code = cli_fail(x, rc, &err);
            break;
        }
        if (acc) {
            cli_gather_page(acc, raw, "keys");
        } else if (x->json) {
            cli_print_raw(raw);
        }
        if (!x->json && first) key_header();
        for (size_t i = 0; !x->json && i < l.n; i++) key_row(&l.keys[i]);
        first = 0;
        free(raw);
        if (all && l.next_cursor[0] && !strcmp(l.next_cursor, cursor)) {
            gx_client_key_list_free(&l);
            code = cli_cursor_stuck(cursor);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", l.next_cursor);
        gx_client_key_list_free(&l);
        if (!cursor[0]) break;
        if (!all) {
            if (!x->json) { /* the command for the next page, with this one's filters */
                fputs("more: gexec keys list", stderr);
                cli_put_opt(stderr, "--tenant", o.tenant);
                cli_put_opt(stderr, "--state", state);
                fprintf(stderr, " --limit %ld", limit);
                cli_put_opt(stderr, "--cursor", cursor);
                fputs(" (or --all)\n", stderr);
            }
            break;
        }
    }
    if (acc && code == CLI_EXIT_OK)
        cli_print_gathered(acc, "keys");
    else
        json_decref(acc);
    return code;
}

static void show_revoked(json_t *o) { printf("%s revoked\n", cli_js(o, "id")); }

int cmd_keys(cli_ctx *x) {
    const char *act = x->a->pos[0];
    if (!strcmp(act, "create")) {
        if (x->a->npos != 1) return cli_usage("keys create takes no operand");
        const char *role = cli_get(x->a, FL_ROLE), *tenant = cli_get(x->a, FL_TENANT);
        if (!role) return cli_usage("keys create needs --role (viewer, submitter, operator or admin)");
        json_t *b = json_object();
        json_object_set_new(b, "role", json_string(role));
        if (tenant) json_object_set_new(b, "tenant", json_string(tenant));
        if (cli_get(x->a, FL_LABEL)) json_object_set_new(b, "label", json_string(cli_get(x->a, FL_LABEL)));
        if (cli_has(x->a, FL_EXPIRES)) {
            long ms;
            if (cli_duration("expires-in", cli_get(x->a, FL_EXPIRES), &ms)) {
                json_decref(b);
                return CLI_EXIT_USAGE;
            }
            if (ms == 0) {
                json_decref(b);
                return cli_usage("--expires-in wants a duration above 0, or none for a key that never expires");
            }
            /* none (-1): never, as without the flag (-0.001 s was sent) */
            if (ms > 0) json_object_set_new(b, "expires_in_s", json_real((double)ms / 1000.0));
        }
        return call(x, "POST", "/v1/keys", b, show_key_created);
    }
    if (!strcmp(act, "list")) {
        if (x->a->npos != 1) return cli_usage("keys list takes no operand");
        return keys_list(x);
    }
    if (!strcmp(act, "revoke")) {
        if (x->a->npos != 2) return cli_usage("keys revoke takes the key's ID");
        /* the id goes into the path: only a well-formed one ("../jobs/69"
         * was sent as it was and cancelled job 69) */
        const char *id = x->a->pos[1];
        if (strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16)
            return cli_usage("keys revoke: '%s' is not a key id (16 lowercase hex digits, as gexec keys list "
                             "shows them)", id);
        char path[64];
        snprintf(path, sizeof path, "/v1/keys/%s", id);
        return call(x, "DELETE", path, NULL, show_revoked);
    }
    return cli_usage("keys: unknown action '%s' (create, list or revoke)", act);
}

static void show_tenant(json_t *o) {
    printf("%s weight %g default_priority %lld max_running %lld\n", cli_js(o, "name"),
           json_number_value(json_object_get(o, "weight")),
           (long long)json_integer_value(json_object_get(o, "default_priority")),
           (long long)json_integer_value(json_object_get(o, "max_running")));
    json_t *q = json_object_get(o, "quotas"), *v;
    const char *k;
    json_object_foreach(q, k, v) printf("  %-24s %.15g\n", k, json_number_value(v));
}

/* One line per quota: name, usage, limit ("-" when there is none). */
static void show_usage(json_t *o) {
    json_t *q = json_object_get(o, "quotas"), *v;
    const char *k;
    printf("tenant %s\n%-24s %16s %16s\n", cli_js(o, "tenant"), "QUOTA", "USAGE", "LIMIT");
    json_object_foreach(q, k, v) {
        double lim = json_number_value(json_object_get(v, "limit"));
        char ls[32];
        if (lim > 0) snprintf(ls, sizeof ls, "%.15g", lim);
        else snprintf(ls, sizeof ls, "-");
        printf("%-24s %16.15g %16s\n", k, json_number_value(json_object_get(v, "usage")), ls);
    }
}

/* --FLAG as an integer or number member of b; 0, or the exit code. */
static int quota_flag(cli_ctx *x, json_t *b, int fl, const char *flag, const char *member, int integer) {
    if (!cli_has(x->a, fl)) return 0;
    const char *s = cli_get(x->a, fl);
    if (integer) {
        long n;
        if (cli_int(flag, s, 0, 1125899906842624L, &n)) return CLI_EXIT_USAGE;
        json_object_set_new(b, member, json_integer(n));
        return 0;
    }
    char *end;
    double v = s ? strtod(s, &end) : -1;
    if (!s || !*s || *end || !(v >= 0) || v > 1e9) return cli_usage("--%s wants a number in 0..1e9, not '%s'", flag, s ? s : "");
    json_object_set_new(b, member, json_real(v));
    return 0;
}

static void show_tenants(json_t *o) {
    json_t *ts = json_object_get(o, "tenants"), *t;
    size_t i;
    printf("%-24s %8s %11s %8s %8s\n", "TENANT", "WEIGHT", "MAX_RUNNING", "QUEUED", "RUNNING");
    json_array_foreach(ts, i, t) {
        printf("%-24s %8g %11lld %8lld %8lld\n", cli_js(t, "name"), json_number_value(json_object_get(t, "weight")),
               (long long)json_integer_value(json_object_get(t, "max_running")),
               (long long)json_integer_value(json_object_get(t, "queued")),
               (long long)json_integer_value(json_object_get(t, "running")));
    }
}

int cmd_tenants(cli_ctx *x) {
    const char *act = x->a->pos[0];
    if (strcmp(act, "usage") && x->a->npos > 1) return cli_usage("tenants %s takes no operand", act);
    if (!strcmp(act, "create")) {
        const char *name = cli_get(x->a, FL_TENANT);
        if (!name) return cli_usage("tenants create needs --tenant NAME");
        json_t *b = json_object();
        json_object_set_new(b, "name", json_string(name));
        if (cli_has(x->a, FL_WEIGHT)) {
            char *end;
            const char *w = cli_get(x->a, FL_WEIGHT);
            double v = w ? strtod(w, &end) : 0;
            /* inf was dropped from the body (json_real(inf) is NULL): weight 1 */
            if (!w || !*w || *end || !(v >= 1e-6) || !(v <= 1e6)) {
                json_decref(b);
                return cli_usage("--weight wants a number within 1e-6..1e6, not '%s'", w ? w : "");
            }
            json_object_set_new(b, "weight", json_real(v));
        }
        int rc = 0;
        if (cli_has(x->a, FL_DEFAULT_PRIORITY)) {
            long v;
            if ((rc = cli_int("default-priority", cli_get(x->a, FL_DEFAULT_PRIORITY), -100, 100, &v))) {
                json_decref(b);
                return rc;
            }
            json_object_set_new(b, "default_priority", json_integer(v));
        }
        rc = quota_flag(x, b, FL_MAX_RUNNING, "max-running", "max_running", 1);
        if (!rc) rc = quota_flag(x, b, FL_MAX_QUEUED, "max-queued", "max_queued", 1);
        if (!rc) rc = quota_flag(x, b, FL_MAX_MEMORY, "max-memory", "max_device_memory_bytes", 1);
        if (!rc) rc = quota_flag(x, b, FL_DEVICE_SECONDS, "device-seconds-per-hour", "device_seconds_per_hour", 0);
        if (rc) {
            json_decref(b);
            return rc;
        }
        return call(x, "POST", "/v1/tenants", b, show_tenant);
    }
    if (!strcmp(act, "list")) return call(x, "GET", "/v1/tenants", NULL, show_tenants);
    if (!strcmp(act, "usage")) {
        const char *name = x->a->npos > 1 ? x->a->pos[1] : NULL;
        /* the name goes into the path: "." and ".." would be read as path
         * segments (".." reached /v1/usage), as the server's names exclude them */
        if (!name || !*name || strlen(name) > 63 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(name) ||
            !strcmp(name, ".") || !strcmp(name, ".."))
            return cli_usage("tenants usage needs a tenant NAME ([A-Za-z0-9_.-], 1..63, not . or ..)");
        char path[128];
        snprintf(path, sizeof path, "/v1/tenants/%s/usage", name);
        return call(x, "GET", path, NULL, show_usage);
    }
    return cli_usage("tenants: unknown action '%s' (create, list or usage)", act);
}

int cmd_audit(cli_ctx *x) {
    const char *act = x->a->pos[0];
    if (strcmp(act, "verify")) return cli_usage("audit: unknown action '%s' (verify)", act);
    const char *path = cli_get(x->a, FL_FILE);
    if (!path) path = "./gexec-data/audit.log";
    gx_audit_report rep;
    gx_error err;
    gx_error_clear(&err);
    memset(&rep, 0, sizeof rep);
    int rc = gx_audit_verify(path, &rep, &err);
    if (rc == GX_EFORMAT) {
        if (x->json) {
            json_t *fj = json_string(rep.file); /* NULL for a name that is not UTF-8: "file":null */
            char *fs = fj ? json_dumps(fj, JSON_ENCODE_ANY) : NULL;
            printf("{\"intact\":false,\"problem\":\"%s\",\"line\":%llu,\"seq\":%llu,\"file\":%s}\n",
                   gx_audit_problem_name(rep.problem), (unsigned long long)rep.line, (unsigned long long)rep.seq,
                   fs ? fs : "null");
            free(fs);
            json_decref(fj);
        } else
            printf("%s: %s at line %llu (record %llu): %s\n", path, gx_audit_problem_name(rep.problem),
                   (unsigned long long)rep.line, (unsigned long long)rep.seq, rep.message);
        return CLI_EXIT_JOB;
    }
    if (rc) { /* its message names the file already */
        fprintf(stderr, "gexec: %s\n", err.message[0] ? err.message : gx_strerror(rc));
        return CLI_EXIT_USAGE;
    }
    if (x->json)
        printf("{\"intact\":true,\"records\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,\"files\":%u,"
               "\"head\":\"%s\"}\n",
               (unsigned long long)rep.records, (unsigned long long)rep.first_seq, (unsigned long long)rep.last_seq,
               rep.files, rep.head);
    else if (rep.files <= 1 && rep.first_seq <= 1)
        printf("%s: intact, %llu records, last seq %llu, head %s\n", path, (unsigned long long)rep.records,
               (unsigned long long)rep.last_seq, rep.head);
    else /* rotated files beside it, or the oldest ones gone */
        printf("%s: intact, %llu records in %u files from record %llu, last seq %llu, head %s\n", path,
               (unsigned long long)rep.records, rep.files, (unsigned long long)rep.first_seq,
               (unsigned long long)rep.last_seq, rep.head);
    return CLI_EXIT_OK;
}

/* gexec whoami: "key ID, tenant T, role R[, expires TIME]", or what auth
 * off means. */
static void show_whoami(json_t *o) {
    if (!json_is_true(json_object_get(o, "auth"))) {
        printf("auth off: every request is tenant %s, role %s\n", cli_js(o, "tenant"), cli_js(o, "role"));
        return;
    }
    printf("key %s, tenant %s, role %s", cli_js(o, "key_id"), cli_js(o, "tenant"), cli_js(o, "role"));
    json_t *e = json_object_get(o, "expires_ns");
    if (json_is_integer(e)) {
        time_t t = (time_t)(json_integer_value(e) / 1000000000);
        struct tm tm;
        char when[40];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
        printf(", expires %s", when);
    }
    putchar('\n');
}

int cmd_whoami(cli_ctx *x) { return call(x, "GET", "/v1/whoami", NULL, show_whoami); }
