/*
 * test_dashboard.c - the built-in dashboard (src/api/dashboard.c and the
 * files of src/api/dashboard/) against a real gexecd with authentication
 * on:
 *
 *   - GET and HEAD of /dashboard, /dashboard/app.js and /dashboard/style.css
 *     answer without a key, with the media type and charset, the
 *     Content-Security-Policy, nosniff, no-referrer, no-cache and an ETag,
 *     and GET serves exactly the bytes of the files in the source tree (the
 *     embedding at build time is what is tested);
 *   - If-None-Match with the ETag (strong, weak, in a list, or *) answers
 *     304 with the same headers and no body; another tag gets the file;
 *   - other paths under /dashboard are 404 JSON errors (401 without a key,
 *     as every unknown path), /dashboard/ is redirected to /dashboard;
 *   - app.js: every API path it names ('/v1/...', '/readyz', '/metrics')
 *     is a GET of docs/openapi.yaml; it never parses data as HTML or code
 *     (innerHTML, outerHTML, insertAdjacentHTML, eval(, new Function,
 *     document.write); index.html has no inline script, style or event
 *     handler (the CSP would block them); node --check parses app.js when
 *     node is installed ("skipped: node not available" otherwise).
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "itest.h"
#include "testutil.h"
#include "yamldoc.h"

#define CSP                                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "   \
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

static it_daemon D;

static const struct asset {
    const char *path, *file, *ctype;
} ASSETS[] = {
    {"/dashboard", "index.html", "text/html; charset=utf-8"},
    {"/dashboard/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/dashboard/style.css", "style.css", "text/css; charset=utf-8"},
};
#define NASSETS (sizeof ASSETS / sizeof ASSETS[0])

/* ---- helpers ------------------------------------------------------------------ */

static char *dashboard_file(const char *name, size_t *len) {
    char rel[256];
    snprintf(rel, sizeof rel, "src/api/dashboard/%s", name);
    return tu_source_file(rel, len, NULL, 0);
}

/* A request with no key (key NULL) or the admin key, and extra headers. */
static void req(const char *method, const char *path, const char *key, const char *const *headers, it_resp *r) {
    D.use_key = key ? key : "";
    int rc = it_req_ex(&D, method, path, NULL, 0, NULL, headers, r);
    D.use_key = NULL;
    if (rc) fail_msg("%s %s: no answer", method, path);
}

static void want_header(const it_resp *r, const char *what, const char *name, const char *value) {
    char got[512];
    it_header(r, name, got, sizeof got);
    if (strcmp(got, value)) fail_msg("%s: %s is '%s', want '%s'\nheaders:\n%s", what, name, got, value, r->headers);
}

/* The headers every dashboard answer carries (200 and 304); its ETag. */
static void security_headers(const it_resp *r, const char *what, char *etag, size_t cap) {
    want_header(r, what, "Content-Security-Policy", CSP);
    want_header(r, what, "X-Content-Type-Options", "nosniff");
    want_header(r, what, "Referrer-Policy", "no-referrer");
    want_header(r, what, "Cache-Control", "no-cache");
    it_header(r, "ETag", etag, cap);
    regex_t re;
    assert_int_equal(regcomp(&re, "^\"[0-9a-f]{16}\"$", REG_EXTENDED | REG_NOSUB), 0);
    int ok = !regexec(&re, etag, 0, NULL, 0);
    regfree(&re);
    if (!ok) fail_msg("%s: ETag '%s' is not a quoted content hash", what, etag);
}

/* ---- serving -------------------------------------------------------------------- */

static void files_served_without_a_key(void **st) {
    (void)st;
    for (size_t i = 0; i < NASSETS; i++) {
        const struct asset *a = &ASSETS[i];
        size_t len;
        char *want = dashboard_file(a->file, &len);
        assert_true(len > 100);
        it_resp r;
        req("GET", a->path, NULL, NULL, &r);
        char what[128], etag[64], head_etag[64], cl[32];
        snprintf(what, sizeof what, "GET %s", a->path);
        if (r.status != 200) fail_msg("%s without a key: %ld %s", what, r.status, r.body ? r.body : "");
        want_header(&r, what, "Content-Type", a->ctype);
        security_headers(&r, what, etag, sizeof etag);
        if (r.len != len || memcmp(r.body, want, len))
            fail_msg("%s: the %zu bytes served are not the %zu of src/api/dashboard/%s", what, r.len, len, a->file);
        it_resp_free(&r);

        /* HEAD: the same headers, the length of the file, no body */
        req("HEAD", a->path, NULL, NULL, &r);
        snprintf(what, sizeof what, "HEAD %s", a->path);
        assert_int_equal(r.status, 200);
        want_header(&r, what, "Content-Type", a->ctype);
        security_headers(&r, what, head_etag, sizeof head_etag);
        assert_string_equal(head_etag, etag);
        snprintf(cl, sizeof cl, "%zu", len);
        want_header(&r, what, "Content-Length", cl);
        assert_int_equal(r.len, 0);
        it_resp_free(&r);

        /* with a key it is the same file */
        req("GET", a->path, D.key, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_true(r.len == len && !memcmp(r.body, want, len));
        it_resp_free(&r);
        free(want);
        print_message("%-22s %zu bytes, ETag %s\n", a->path, len, etag);
    }
}

static void etags_differ_per_file(void **st) {
    (void)st;
    char tags[NASSETS][64];
    for (size_t i = 0; i < NASSETS; i++) {
        it_resp r;
        req("HEAD", ASSETS[i].path, NULL, NULL, &r);
        it_header(&r, "ETag", tags[i], sizeof tags[i]);
        it_resp_free(&r);
        for (size_t j = 0; j < i; j++) assert_string_not_equal(tags[i], tags[j]);
    }
}

static void if_none_match(void **st) {
    (void)st;
    for (size_t i = 0; i < NASSETS; i++) {
        const struct asset *a = &ASSETS[i];
        it_resp r;
        char etag[64], what[160];
        req("HEAD", a->path, NULL, NULL, &r);
        it_header(&r, "ETag", etag, sizeof etag);
        it_resp_free(&r);
        char strong[128], weak[128], list[160];
        snprintf(strong, sizeof strong, "If-None-Match: %s", etag);
        snprintf(weak, sizeof weak, "If-None-Match: W/%s", etag);
        snprintf(list, sizeof list, "If-None-Match: \"0000000000000000\", W/\"x\",%s", etag);
        const char *const matching[] = {strong, weak, list, "If-None-Match: *"};
        for (size_t k = 0; k < sizeof matching / sizeof matching[0]; k++) {
            const char *h[] = {matching[k], NULL};
            for (int head = 0; head < 2; head++) {
                snprintf(what, sizeof what, "%s %s with %s", head ? "HEAD" : "GET", a->path, matching[k]);
                req(head ? "HEAD" : "GET", a->path, NULL, h, &r);
                if (r.status != 304) fail_msg("%s: %ld, want 304", what, r.status);
                char got[64];
                security_headers(&r, what, got, sizeof got);
                assert_string_equal(got, etag);
                if (r.len) fail_msg("%s: a 304 with a body of %zu bytes", what, r.len);
                it_resp_free(&r);
            }
        }
        /* another version's tag (an upgrade), or a malformed one: the file */
        const char *const others[] = {"If-None-Match: \"0123456789abcdef\"", "If-None-Match: W/\"\"", "If-None-Match: junk",
                                      "If-None-Match: \""};
        for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
            const char *h[] = {others[k], NULL};
            req("GET", a->path, NULL, h, &r);
            if (r.status != 200 || !r.len) fail_msg("GET %s with %s: %ld (%zu bytes), want the file", a->path, others[k], r.status, r.len);
            it_resp_free(&r);
        }
    }
}

static void other_paths(void **st) {
    (void)st;
    /* with a key: no route, as JSON */
    const char *const none[] = {"/dashboard/nope.js", "/dashboard/index.html", "/dashboard/app.js/",
                                "/dashboard/style.css/x", "/dashboard/app.js.map", "//dashboard", "/dashboard//",
                                "/dashboard/..%2Fmetrics", "/dashboard/%2e%2e/healthz"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        it_resp r;
        req("GET", none[i], D.key, NULL, &r);
        if (r.status != 404 || !r.json || !it_str(&r, "error.code") || strcmp(it_str(&r, "error.code"), "GX_ENOTFOUND") ||
            strcmp(it_str(&r, "error.field") ? it_str(&r, "error.field") : "", "path"))
            fail_msg("GET %s: %ld %s, want 404 GX_ENOTFOUND field path", none[i], r.status, r.body ? r.body : "");
        char ct[64];
        it_header(&r, "Content-Type", ct, sizeof ct);
        assert_string_equal(ct, "application/json");
        it_resp_free(&r);
    }
    /* without a key an unknown path is 401, as any other (before 404) */
    it_resp r;
    req("GET", "/dashboard/nope.js", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(it_str(&r, "error.code"), "GX_EAUTH");
    it_resp_free(&r);
    /* "/dashboard/" would resolve the page's relative links under it */
    req("GET", "/dashboard/", NULL, NULL, &r);
    assert_int_equal(r.status, 308);
    want_header(&r, "GET /dashboard/", "Location", "../dashboard");
    it_resp_free(&r);
    /* read-only: no other method */
    req("POST", "/dashboard", D.key, NULL, &r);
    assert_int_equal(r.status, 405);
    want_header(&r, "POST /dashboard", "Allow", "GET, HEAD");
    it_resp_free(&r);
}

/* ---- the script and the page ----------------------------------------------------- */

/* Every quoted string of app.js that starts with an API path must be a
 * path of docs/openapi.yaml (as written there, "{id}" and all) with a GET. */
static void js_paths_are_documented(void **st) {
    (void)st;
    char *js = dashboard_file("app.js", NULL);
    char *yml = tu_source_file("docs/openapi.yaml", NULL, NULL, 0);
    yaml_parser_t p;
    yaml_document_t doc;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (const unsigned char *)yml, strlen(yml));
    assert_true(yaml_parser_load(&p, &doc));
    yaml_node_t *paths = yd_get(&doc, yaml_document_get_root_node(&doc), "paths");
    assert_non_null(paths);
    regex_t re;
    assert_int_equal(regcomp(&re, "(['\"`])(/(v1/|readyz|metrics)[^'\"`]*)['\"`]", REG_EXTENDED), 0);
    int n = 0;
    regmatch_t m[4];
    for (const char *s = js; !regexec(&re, s, 4, m, 0); s += m[0].rm_eo) {
        char path[256];
        snprintf(path, sizeof path, "%.*s", (int)(m[2].rm_eo - m[2].rm_so), s + m[2].rm_so);
        path[strcspn(path, "?")] = '\0';
        yaml_node_t *item = yd_get(&doc, paths, path);
        if (!item) fail_msg("app.js names '%s', which is no path of docs/openapi.yaml", path);
        if (!yd_get(&doc, item, "get")) fail_msg("app.js reads '%s', which docs/openapi.yaml has no GET for", path);
        print_message("app.js reads %s\n", path);
        n++;
    }
    regfree(&re);
    /* readiness, devices, metrics, tenants, usage, jobs, a job, its events, the stream */
    if (n < 9) fail_msg("found only %d API paths in app.js; the pattern no longer sees them", n);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    free(yml);
    free(js);
}

static void js_never_parses_data(void **st) {
    (void)st;
    char *js = dashboard_file("app.js", NULL);
    const char *const banned[] = {"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function",
                                  "document.write", "setAttribute('on", "setTimeout('", "setInterval('"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(js, banned[i])) fail_msg("app.js uses %s: data must reach the page as text", banned[i]);
    free(js);
    /* the page: no inline script, style or handler (the CSP blocks them:
     * the page would break without a word) */
    char *html = dashboard_file("index.html", NULL);
    regex_t re;
    assert_int_equal(regcomp(&re, "<script[^>]*>[^<[:space:]]|<script( [^>]*)?>$|<style|[[:space:]]style=|[[:space:]]on[a-z]+=|javascript:",
                             REG_EXTENDED | REG_ICASE | REG_NEWLINE | REG_NOSUB), 0);
    int bad = !regexec(&re, html, 0, NULL, 0);
    regfree(&re);
    if (bad) fail_msg("index.html has inline script, style or an event handler attribute");
    assert_non_null(strstr(html, "<script src=\"dashboard/app.js\""));
    assert_non_null(strstr(html, "<link rel=\"stylesheet\" href=\"dashboard/style.css\">"));
    free(html);
}

static void js_parses(void **st) {
    (void)st;
    if (system("node --version >/dev/null 2>&1")) {
        print_message("skipped: node not available\n");
        skip();
    }
    const char *src = getenv("GX_SOURCE_DIR");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "node --check '%s/src/api/dashboard/app.js'", src && *src ? src : ".");
    if (system(cmd)) fail_msg("node --check rejects src/api/dashboard/app.js");
}

/* ---- fixture ------------------------------------------------------------------------ */

static int setup(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    if (it_start(&D)) {
        fprintf(stderr, "setup: gexecd did not become ready; log %s\n", D.log);
        return -1;
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    it_finish(&D);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(files_served_without_a_key),
        cmocka_unit_test(etags_differ_per_file),
        cmocka_unit_test(if_none_match),
        cmocka_unit_test(other_paths),
        cmocka_unit_test(js_paths_are_documented),
        cmocka_unit_test(js_never_parses_data),
        cmocka_unit_test(js_parses),
    };
    return cmocka_run_group_tests_name("dashboard", tests, setup, teardown);
}
