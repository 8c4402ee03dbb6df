/*
 * test_openapi.c - the route table (gx__routes) and docs/openapi.yaml
 * agree, both ways: every (method, path) the server routes is described,
 * and every operation described is routed. Paths compare as patterns (a
 * "{name}" segment matches any other "{...}" segment), and each operation's
 * summary must be its route's summary, so renaming either side shows here.
 *
 * It also checks what the file promises about errors: every 4xx/5xx answer
 * of an operation is JSON of the Error schema (readiness's 503 excepted, it
 * answers Readiness), the Error schema is {"error":{"code","message",
 * "field"}}, and every path template parameter is declared. When
 * openapi-spec-validator is importable by python3 the file is validated
 * against the OpenAPI 3.0 schema too (skipped otherwise).
 *
 * The file is $GX_SOURCE_DIR/docs/openapi.yaml (ctest sets GX_SOURCE_DIR),
 * parsed with libyaml's document API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "api/service.h"
#include "testutil.h"
#include "yamldoc.h"

#define MAX_OPS 128

typedef struct op {
    char method[8];   /* upper case, as in gx__routes */
    char path[256];   /* as written in the file */
    char norm[256];   /* "{...}" segments as "{}" */
    char summary[256];
    yaml_node_t *node; /* the operation object */
    yaml_node_t *item; /* the path item object */
    int line;          /* 1-based line of the method key */
} op;

static yaml_parser_t P;
static yaml_document_t D;
static char g_file[1024];
static op OPS[MAX_OPS];
static int NOPS;

/* ---- paths --------------------------------------------------------------- */

/* "/v1/jobs/{id}/result" -> "/v1/jobs/{}/result". */
static void normalize(const char *path, char *out, size_t cap) {
    size_t o = 0;
    for (const char *p = path; *p && o + 3 < cap;) {
        if (*p == '{' && (p == path || p[-1] == '/')) {
            const char *e = strchr(p, '}');
            if (e && (e[1] == '/' || e[1] == '\0')) {
                out[o++] = '{';
                out[o++] = '}';
                p = e + 1;
                continue;
            }
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}

static const char *const METHODS[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

static int load(void **st) {
    (void)st;
    const char *src = getenv("GX_SOURCE_DIR");
    snprintf(g_file, sizeof g_file, "%s/docs/openapi.yaml", src && *src ? src : "..");
    FILE *f = fopen(g_file, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s (ctest sets GX_SOURCE_DIR to the source tree)\n", g_file);
        return -1;
    }
    yaml_parser_initialize(&P);
    yaml_parser_set_input_file(&P, f);
    int ok = yaml_parser_load(&P, &D);
    fclose(f);
    if (!ok || !yaml_document_get_root_node(&D)) {
        fprintf(stderr, "%s:%zu:%zu: %s\n", g_file, P.problem_mark.line + 1, P.problem_mark.column + 1,
                P.problem ? P.problem : "empty document");
        if (ok) yaml_document_delete(&D);
        yaml_parser_delete(&P);
        return -1;
    }
    yaml_node_t *paths = yd_get(&D, yaml_document_get_root_node(&D), "paths");
    if (!paths || paths->type != YAML_MAPPING_NODE) {
        fprintf(stderr, "%s: no paths mapping\n", g_file);
        return -1;
    }
    NOPS = 0;
    for (yaml_node_pair_t *p = paths->data.mapping.pairs.start; p < paths->data.mapping.pairs.top; p++) {
        const char *path = yd_scalar(yaml_document_get_node(&D, p->key));
        yaml_node_t *item = yaml_document_get_node(&D, p->value);
        if (!path || !item || item->type != YAML_MAPPING_NODE) continue;
        for (yaml_node_pair_t *q = item->data.mapping.pairs.start; q < item->data.mapping.pairs.top; q++) {
            yaml_node_t *kn = yaml_document_get_node(&D, q->key);
            const char *m = yd_scalar(kn);
            int is_method = 0;
            for (size_t i = 0; m && i < sizeof METHODS / sizeof METHODS[0]; i++) is_method |= !strcmp(m, METHODS[i]);
            if (!is_method) continue;
            if (NOPS == MAX_OPS) {
                fprintf(stderr, "more than %d operations\n", MAX_OPS);
                return -1;
            }
            op *o = &OPS[NOPS++];
            memset(o, 0, sizeof *o);
            for (size_t i = 0; m[i] && i < sizeof o->method - 1; i++) o->method[i] = (char)(m[i] - 'a' + 'A');
            snprintf(o->path, sizeof o->path, "%s", path);
            normalize(path, o->norm, sizeof o->norm);
            o->node = yaml_document_get_node(&D, q->value);
            o->item = item;
            o->line = (int)kn->start_mark.line + 1;
            const char *s = yd_scalar(yd_get(&D, o->node, "summary"));
            snprintf(o->summary, sizeof o->summary, "%s", s ? s : "");
        }
    }
    return 0;
}

static int unload(void **st) {
    (void)st;
    yaml_document_delete(&D);
    yaml_parser_delete(&P);
    return 0;
}

static const op *find_op(const char *method, const char *norm) {
    for (int i = 0; i < NOPS; i++)
        if (!strcmp(OPS[i].method, method) && !strcmp(OPS[i].norm, norm)) return &OPS[i];
    return NULL;
}

static const gx_route *find_route(const char *method, const char *norm) {
    for (int i = 0; i < gx__nroutes; i++) {
        char n[256];
        normalize(gx__routes[i].pattern, n, sizeof n);
        if (!strcmp(gx__routes[i].method, method) && !strcmp(n, norm)) return &gx__routes[i];
    }
    return NULL;
}

/* ---- tests ------------------------------------------------------------------ */

static void normalize_patterns(void **st) {
    (void)st;
    char out[256];
    normalize("/v1/jobs/{id}/result", out, sizeof out);
    assert_string_equal(out, "/v1/jobs/{}/result");
    normalize("/v1/blobs/{blob_id}", out, sizeof out);
    assert_string_equal(out, "/v1/blobs/{}");
    normalize("/v1/jobs:batch", out, sizeof out);
    assert_string_equal(out, "/v1/jobs:batch");
    normalize("/a/x{y}", out, sizeof out); /* not a whole segment: literal */
    assert_string_equal(out, "/a/x{y}");
}

static void every_route_is_described(void **st) {
    (void)st;
    assert_true(gx__nroutes > 0);
    int missing = 0;
    for (int i = 0; i < gx__nroutes; i++) {
        char n[256];
        normalize(gx__routes[i].pattern, n, sizeof n);
        if (!find_op(gx__routes[i].method, n)) {
            fprintf(stderr, "%s: route %s %s (\"%s\") is not described\n", g_file, gx__routes[i].method,
                    gx__routes[i].pattern, gx__routes[i].summary);
            missing++;
        }
        for (int j = 0; j < i; j++) {
            char m[256];
            normalize(gx__routes[j].pattern, m, sizeof m);
            if (!strcmp(m, n) && !strcmp(gx__routes[i].method, gx__routes[j].method))
                fail_msg("gx__routes has %s %s twice", gx__routes[i].method, gx__routes[i].pattern);
        }
    }
    if (missing) fail_msg("%d route(s) of gx__routes missing from docs/openapi.yaml", missing);
}

static void every_operation_is_routed(void **st) {
    (void)st;
    assert_true(NOPS > 0);
    int extra = 0;
    for (int i = 0; i < NOPS; i++) {
        if (!find_route(OPS[i].method, OPS[i].norm)) {
            fprintf(stderr, "%s:%d: %s %s is described but gx__routes has no such route\n", g_file, OPS[i].line,
                    OPS[i].method, OPS[i].path);
            extra++;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(OPS[i].method, OPS[j].method) && !strcmp(OPS[i].norm, OPS[j].norm))
                fail_msg("%s:%d: %s %s is described twice (also as %s)", g_file, OPS[i].line, OPS[i].method,
                         OPS[i].path, OPS[j].path);
    }
    if (extra) fail_msg("%d operation(s) of docs/openapi.yaml not routed", extra);
    assert_int_equal(NOPS, gx__nroutes);
}

/* gx_http_route_match, for every route: a path made of its pattern (each
 * "{x}" a value) finds it with its values captured, whatever the slashes
 * around the segments; another method answers 405 naming the allowed ones;
 * a segment more, one less, or one changed answers 404. */
static void routes_match(void **st) {
    (void)st;
    const char *const methods[] = {"GET", "POST", "DELETE", "PUT"};
    for (int i = 0; i < gx__nroutes; i++) {
        const gx_route *rt = &gx__routes[i];
        char path[512], doubled[600], buf[600], allow[64];
        size_t len = 0, dl = 0;
        int nvals = 0;
        for (const char *p = rt->pattern; *p;) {
            if (*p == '{') {
                len += (size_t)snprintf(path + len, sizeof path - len, "val%d", nvals++);
                p = strchr(p, '}') + 1;
            } else {
                path[len++] = *p++;
            }
        }
        path[len] = '\0';
        for (const char *p = path; *p; p++) {
            doubled[dl++] = *p;
            if (*p == '/') doubled[dl++] = '/';
        }
        doubled[dl++] = '/';
        doubled[dl] = '\0';
        const char *const tries[] = {path, doubled};
        for (int t = 0; t < 2; t++) {
            const gx_route *got = NULL;
            const char *params[GX_HTTP_MAX_PARAMS];
            int np = -1;
            assert_int_equal(gx_http_route_match(gx__routes, gx__nroutes, rt->method, tries[t], buf, sizeof buf, &got,
                                                 params, &np, allow, sizeof allow), 0);
            assert_string_equal(got->pattern, rt->pattern);
            assert_string_equal(got->method, rt->method);
            assert_int_equal(np, nvals);
            for (int k = 0; k < np; k++) {
                char want[16];
                snprintf(want, sizeof want, "val%d", k);
                assert_string_equal(params[k], want);
            }
        }
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
            const gx_route *got = NULL;
            const char *params[GX_HTTP_MAX_PARAMS];
            int np = 0, other = 0;
            for (int j = 0; j < gx__nroutes; j++)
                if (!strcmp(gx__routes[j].pattern, rt->pattern) && !strcmp(gx__routes[j].method, methods[m])) other = 1;
            if (other) continue;
            assert_int_equal(gx_http_route_match(gx__routes, gx__nroutes, methods[m], path, buf, sizeof buf, &got,
                                                 params, &np, allow, sizeof allow), 405);
            assert_non_null(strstr(allow, rt->method));
        }
        char more[600], changed[600];
        snprintf(more, sizeof more, "%s/extra", path);
        snprintf(changed, sizeof changed, "%sx", path);
        int last_captures = rt->pattern[strlen(rt->pattern) - 1] == '}';
        const char *const misses[] = {more, last_captures ? NULL : changed};
        for (int t = 0; t < 2; t++) {
            if (!misses[t]) continue;
            const gx_route *got = NULL;
            const char *params[GX_HTTP_MAX_PARAMS];
            int np = 0;
            int rc = gx_http_route_match(gx__routes, gx__nroutes, rt->method, misses[t], buf, sizeof buf, &got,
                                         params, &np, allow, sizeof allow);
            /* another route may own it ("/v1/jobs/{id}" below "/v1/jobs"), never this one */
            if (rc == 0) assert_string_not_equal(got->pattern, rt->pattern);
        }
    }
    const gx_route *got = NULL;
    const char *params[GX_HTTP_MAX_PARAMS];
    int np = 0;
    char buf[64], allow[64];
    assert_int_equal(gx_http_route_match(gx__routes, gx__nroutes, "GET", "/nope", buf, sizeof buf, &got, params, &np,
                                         allow, sizeof allow), 404);
    assert_int_equal(gx_http_route_match(gx__routes, gx__nroutes, "GET", "/", buf, sizeof buf, &got, params, &np,
                                         allow, sizeof allow), 404);
    /* a path longer than the buffer is no route, never one cut short */
    assert_int_equal(gx_http_route_match(gx__routes, gx__nroutes, "GET", "/v1/jobs/1234567890123456789012345678901234567890123456789012345678901234567890",
                                         buf, sizeof buf, &got, params, &np, allow, sizeof allow), 404);
}

static void summaries_agree(void **st) {
    (void)st;
    int bad = 0;
    for (int i = 0; i < NOPS; i++) {
        const gx_route *r = find_route(OPS[i].method, OPS[i].norm);
        if (r && strcmp(r->summary, OPS[i].summary)) {
            fprintf(stderr, "%s:%d: %s %s: summary \"%s\", route table says \"%s\"\n", g_file, OPS[i].line,
                    OPS[i].method, OPS[i].path, OPS[i].summary, r->summary);
            bad++;
        }
    }
    if (bad) fail_msg("%d summary(ies) differ from gx__routes", bad);
}

/* Whether a parameters list (path item's or operation's) declares a
 * required path parameter called name. */
static int declares(yaml_node_t *params, const char *name) {
    if (!params || params->type != YAML_SEQUENCE_NODE) return 0;
    for (yaml_node_item_t *it = params->data.sequence.items.start; it < params->data.sequence.items.top; it++) {
        yaml_node_t *p = yd_deref(&D, yaml_document_get_node(&D, *it));
        const char *in = yd_scalar(yd_get(&D, p, "in")), *n = yd_scalar(yd_get(&D, p, "name")), *req = yd_scalar(yd_get(&D, p, "required"));
        if (in && n && !strcmp(in, "path") && !strcmp(n, name)) return req && !strcmp(req, "true");
    }
    return 0;
}

static void path_parameters_declared(void **st) {
    (void)st;
    for (int i = 0; i < NOPS; i++) {
        for (const char *p = strchr(OPS[i].path, '{'); p; p = strchr(p + 1, '{')) {
            const char *e = strchr(p, '}');
            assert_non_null(e);
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
            if (!declares(yd_get(&D, OPS[i].item, "parameters"), name) && !declares(yd_get(&D, OPS[i].node, "parameters"), name))
                fail_msg("%s:%d: %s %s: path parameter '%s' is not declared (in: path, required: true)", g_file,
                         OPS[i].line, OPS[i].method, OPS[i].path, name);
        }
    }
}

static void errors_use_the_error_schema(void **st) {
    (void)st;
    for (int i = 0; i < NOPS; i++) {
        const op *o = &OPS[i];
        yaml_node_t *rs = yd_get(&D, o->node, "responses");
        if (!rs || rs->type != YAML_MAPPING_NODE) fail_msg("%s:%d: %s %s has no responses", g_file, o->line, o->method, o->path);
        int ok2xx = 0;
        for (yaml_node_pair_t *p = rs->data.mapping.pairs.start; p < rs->data.mapping.pairs.top; p++) {
            const char *code = yd_scalar(yaml_document_get_node(&D, p->key));
            assert_non_null(code);
            int status = atoi(code);
            if (status < 100 || status > 599) fail_msg("%s:%d: %s %s: response '%s' is not a status", g_file, o->line, o->method, o->path, code);
            if (status < 300) ok2xx = 1;
            if (status < 400) continue;
            if (!strcmp(o->path, "/readyz") && status == 503) continue; /* answers Readiness */
            yaml_node_t *r = yd_deref(&D, yaml_document_get_node(&D, p->value));
            const char *ref = yd_scalar(yd_get(&D, yd_get(&D, yd_get(&D, yd_get(&D, r, "content"), "application/json"), "schema"), "$ref"));
            if (!ref || strcmp(ref, "#/components/schemas/Error"))
                fail_msg("%s:%d: %s %s: response %d is not application/json of #/components/schemas/Error", g_file,
                         o->line, o->method, o->path, status);
        }
        if (!ok2xx) fail_msg("%s:%d: %s %s has no success response", g_file, o->line, o->method, o->path);
    }
}

static int seq_has(yaml_node_t *seq, const char *s) {
    if (!seq || seq->type != YAML_SEQUENCE_NODE) return 0;
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        const char *v = yd_scalar(yaml_document_get_node(&D, *it));
        if (v && !strcmp(v, s)) return 1;
    }
    return 0;
}

static void error_schema_shape(void **st) {
    (void)st;
    /* what gx_http_error writes (src/api/http.c) */
    yaml_node_t *e = yd_resolve(&D, "#/components/schemas/Error");
    assert_non_null(e);
    assert_true(seq_has(yd_get(&D, e, "required"), "error"));
    yaml_node_t *inner = yd_get(&D, yd_get(&D, e, "properties"), "error");
    assert_non_null(inner);
    assert_true(seq_has(yd_get(&D, inner, "required"), "code"));
    assert_true(seq_has(yd_get(&D, inner, "required"), "message"));
    assert_false(seq_has(yd_get(&D, inner, "required"), "field")); /* absent when no field is at fault */
    yaml_node_t *props = yd_get(&D, inner, "properties");
    const char *const want[] = {"code", "message", "field"};
    for (int i = 0; i < 3; i++) {
        const char *t = yd_scalar(yd_get(&D, yd_get(&D, props, want[i]), "type"));
        if (!t || strcmp(t, "string")) fail_msg("Error.error.%s must be a string", want[i]);
    }
    /* beside those, only the optional members of a quota refusal (GX_EQUOTA,
     * src/api/tenants.c), never required */
    const char *const quota[] = {"quota", "limit", "usage", "requested", "retry_after_s"};
    for (int i = 0; i < 5; i++) {
        if (!yd_get(&D, props, quota[i])) fail_msg("Error.error.%s (quota refusals) is not described", quota[i]);
        assert_false(seq_has(yd_get(&D, inner, "required"), quota[i]));
    }
    assert_int_equal(yd_get(&D, inner, "properties")->data.mapping.pairs.top - yd_get(&D, inner, "properties")->data.mapping.pairs.start, 8);
}

static void openapi_version(void **st) {
    (void)st;
    const char *v = yd_scalar(yd_get(&D, yaml_document_get_root_node(&D), "openapi"));
    assert_non_null(v);
    assert_string_equal(v, "3.0.3");
}

/* The real validator, when python3 has it (pip install openapi-spec-validator). */
static void spec_validator(void **st) {
    (void)st;
    if (system("python3 -c 'import openapi_spec_validator' >/dev/null 2>&1")) {
        fprintf(stderr, "skipped: python3 has no openapi_spec_validator\n");
        skip();
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "python3 -m openapi_spec_validator '%s'", g_file);
    int rc = system(cmd);
    if (rc) fail_msg("openapi-spec-validator rejects %s", g_file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(normalize_patterns),
        cmocka_unit_test(openapi_version),
        cmocka_unit_test(every_route_is_described),
        cmocka_unit_test(every_operation_is_routed),
        cmocka_unit_test(routes_match),
        cmocka_unit_test(summaries_agree),
        cmocka_unit_test(path_parameters_declared),
        cmocka_unit_test(errors_use_the_error_schema),
        cmocka_unit_test(error_schema_shape),
        cmocka_unit_test(spec_validator),
    };
    return cmocka_run_group_tests_name("openapi", tests, load, unload);
}
