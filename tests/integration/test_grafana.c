/*
 * test_grafana.c - deploy/grafana/gexec-dashboard.json against a real
 * gexecd's /metrics:
 *
 *   - every metric a query names is one the daemon exports (a histogram's
 *     _bucket, _sum and _count included), and every label it matches on or
 *     groups by is one that metric carries (instance, which Prometheus
 *     adds, and le aside);
 *   - counters and histogram series are read only through rate() or
 *     increase(), gauges never; histogram_quantile() reads _bucket series
 *     grouped by le;
 *   - promtool parses every query (`promtool check rules` on a rules file
 *     holding them, Grafana's variables replaced);
 *   - the file is a dashboard Grafana can import: unique panel ids, panels
 *     inside the 24 columns, every query with a refId and the datasource
 *     variable.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

#define MAX_FAMS 128
#define MAX_EXPRS 128

typedef struct family {
    char name[96];
    char type[16];   /* counter, gauge, histogram */
    char labels[256]; /* ",a,b," of every series */
} family;

static family FAMS[MAX_FAMS];
static int NFAMS;
static const char *EXPRS[MAX_EXPRS];
static char WHERE[MAX_EXPRS][96]; /* the panel a query belongs to */
static int NEXPRS;
static json_t *DASH;

static family *fam_get(const char *name) {
    for (int i = 0; i < NFAMS; i++)
        if (!strcmp(FAMS[i].name, name)) return &FAMS[i];
    return NULL;
}

/* The family of a series name: itself, or the histogram whose _bucket,
 * _sum or _count it is (*suffix then names which; "" otherwise). */
static family *fam_of(const char *name, const char **suffix) {
    *suffix = "";
    family *f = fam_get(name);
    for (const char *suf[] = {"_bucket", "_sum", "_count"}, **sf = suf; !f && sf < suf + 3; sf++) {
        size_t n = strlen(name), k = strlen(*sf);
        if (n > k && n - k < 96 && !strcmp(name + n - k, *sf)) {
            char base[96];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
            f = fam_get(base);
            if (f && strcmp(f->type, "histogram")) f = NULL;
            *suffix = *sf;
        }
    }
    return f;
}

/* The exposition's families and, from its series, their label names. */
static void load_metrics(const char *body) {
    for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        char name[96], type[16];
        if (sscanf(l, "# TYPE %95s %15s", name, type) == 2 && NFAMS < MAX_FAMS) {
            family *f = &FAMS[NFAMS++];
            snprintf(f->name, sizeof f->name, "%s", name);
            snprintf(f->type, sizeof f->type, "%s", type);
            snprintf(f->labels, sizeof f->labels, ",");
            continue;
        }
        if (*l == '#' || *l == '\n') continue;
        size_t n = strcspn(l, "{ \n");
        if (n >= sizeof name) continue;
        memcpy(name, l, n);
        name[n] = '\0';
        const char *suffix;
        family *f = fam_of(name, &suffix);
        if (!f || l[n] != '{') continue;
        for (const char *p = l + n + 1; *p && *p != '}' && *p != '\n';) {
            size_t kl = strcspn(p, "=");
            char lab[64];
            snprintf(lab, sizeof lab, ",%.*s,", (int)(kl < 60 ? kl : 60), p);
            if (!strstr(f->labels, lab) && strlen(f->labels) + strlen(lab) < sizeof f->labels)
                strcat(f->labels, lab + 1);
            if (p[kl] != '=' || p[kl + 1] != '"') break; /* not a label list */
            p += kl + 2;
            while (*p && *p != '"') p += *p == '\\' && p[1] ? 2 : 1;
            if (*p) p++;
            if (*p == ',') p++;
        }
    }
}

static void add_expr(const char *e, const char *where) {
    assert_true(NEXPRS < MAX_EXPRS);
    EXPRS[NEXPRS] = e;
    snprintf(WHERE[NEXPRS], sizeof WHERE[0], "%s", where);
    NEXPRS++;
}

static void collect(json_t *panels) {
    size_t i;
    json_t *p;
    json_array_foreach(panels, i, p) {
        const char *title = json_string_value(json_object_get(p, "title"));
        json_t *t, *targets = json_object_get(p, "targets");
        size_t k;
        json_array_foreach(targets, k, t) {
            const char *e = json_string_value(json_object_get(t, "expr"));
            if (!e) fail_msg("panel \"%s\": a query without expr", title);
            add_expr(e, title ? title : "?");
        }
        collect(json_object_get(p, "panels")); /* a collapsed row's panels */
    }
}

static int setup(void **st) {
    (void)st;
    const char *src = getenv("GX_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/deploy/grafana/gexec-dashboard.json", src && *src ? src : "..");
    json_error_t je;
    DASH = json_load_file(path, 0, &je);
    if (!DASH) {
        fprintf(stderr, "%s: line %d: %s\n", path, je.line, je.text);
        return -1;
    }
    collect(json_object_get(DASH, "panels"));
    json_t *v, *vars = json_object_get(json_object_get(DASH, "templating"), "list");
    size_t i;
    json_array_foreach(vars, i, v) {
        const char *q = json_string_value(json_object_get(json_object_get(v, "query"), "query"));
        if (q) add_expr(q, "a variable");
    }
    /* a daemon that has run a job and has a quota: the families have
     * series to read the labels from */
    static it_daemon d;
    memset(&d, 0, sizeof d);
    if (it_start(&d)) return -1;
    it_resp r;
    if (it_req(&d, "POST", "/v1/jobs", "{\"kernel\":\"spin\"}", 17, NULL, &r)) return -1;
    it_resp_free(&r);
    const char *quota = "{\"name\":\"default\",\"max_queued\":1000}";
    if (it_req(&d, "POST", "/v1/tenants", quota, strlen(quota), NULL, &r)) return -1;
    it_resp_free(&r);
    struct timespec ts = {0, 300000000};
    nanosleep(&ts, NULL);
    if (it_req(&d, "GET", "/metrics", NULL, 0, NULL, &r) || r.status != 200) return -1;
    load_metrics(r.body);
    it_resp_free(&r);
    it_finish(&d);
    return NFAMS > 10 ? 0 : -1;
}

static int teardown(void **st) {
    (void)st;
    json_decref(DASH);
    return 0;
}

static int is_ident(int c) { return isalnum(c) || c == '_' || c == ':'; }

/* The function a metric at e[at] is the direct argument of ("" when none). */
static void enclosing(const char *e, size_t at, char *fn, size_t cap) {
    fn[0] = '\0';
    size_t i = at;
    while (i > 0 && isspace((unsigned char)e[i - 1])) i--;
    if (i == 0 || e[i - 1] != '(') return;
    i--;
    size_t end = i;
    while (i > 0 && is_ident((unsigned char)e[i - 1])) i--;
    snprintf(fn, cap, "%.*s", (int)(end - i), e + i);
}

/* Each label name of a matcher list starting at e[p] == '{'. */
static void check_matchers(const char *e, size_t p, const family *f, const char *where) {
    p++;
    while (e[p] && e[p] != '}') {
        while (isspace((unsigned char)e[p]) || e[p] == ',') p++;
        size_t s = p;
        while (is_ident((unsigned char)e[p])) p++;
        char lab[64];
        snprintf(lab, sizeof lab, ",%.*s,", (int)(p - s < 60 ? p - s : 60), e + s);
        if (strcmp(lab, ",instance,") && strcmp(lab, ",le,") && !strstr(f->labels, lab))
            fail_msg("%s: %s has no label %.*s (it has %s)", where, f->name, (int)(p - s), e + s, f->labels);
        while (e[p] && e[p] != '"') p++;
        if (e[p]) p++;
        while (e[p] && e[p] != '"') p += e[p] == '\\' ? 2 : 1;
        if (e[p]) p++;
    }
}

static void metrics_and_labels(void **st) {
    (void)st;
    assert_true(NEXPRS >= 30);
    for (int x = 0; x < NEXPRS; x++) {
        const char *e = EXPRS[x], *where = WHERE[x];
        char labels_all[1024] = ",";
        for (size_t i = 0; e[i];) {
            if (!is_ident((unsigned char)e[i]) || (i > 0 && is_ident((unsigned char)e[i - 1]))) {
                i++;
                continue;
            }
            size_t s = i;
            while (is_ident((unsigned char)e[i])) i++;
            if (strncmp(e + s, "gexec_", 6)) continue;
            char name[96];
            snprintf(name, sizeof name, "%.*s", (int)(i - s), e + s);
            const char *suffix;
            family *f = fam_of(name, &suffix);
            if (!f) fail_msg("%s: gexecd exports no metric %s", where, name);
            char fn[32];
            enclosing(e, s, fn, sizeof fn);
            int rated = !strcmp(fn, "rate") || !strcmp(fn, "increase");
            if (!strcmp(f->type, "gauge") && rated) fail_msg("%s: %s is a gauge, read through %s()", where, name, fn);
            if (!strcmp(f->type, "counter") && !rated) fail_msg("%s: counter %s read without rate()/increase()", where, name);
            if (!strcmp(f->type, "histogram")) {
                if (!*suffix) fail_msg("%s: histogram %s named without _bucket/_sum/_count", where, name);
                if (!rated) fail_msg("%s: %s read without rate()/increase()", where, name);
                if (!strcmp(suffix, "_bucket") && !strstr(e, "histogram_quantile"))
                    fail_msg("%s: %s outside histogram_quantile()", where, name);
            }
            if (e[i] == '{') check_matchers(e, i, f, where);
            if (strlen(labels_all) + strlen(f->labels) < sizeof labels_all) strcat(labels_all, f->labels + 1);
        }
        if (strstr(e, "histogram_quantile") && (!strstr(e, "_bucket") || !strstr(e, "by (le")))
            fail_msg("%s: histogram_quantile() needs _bucket series summed by (le...)", where);
        /* by (...): labels some metric of the query carries */
        for (const char *b = strstr(e, "by ("); b; b = strstr(b + 1, "by (")) {
            const char *p = b + 4;
            while (*p && *p != ')') {
                while (*p == ' ' || *p == ',') p++;
                const char *s = p;
                while (is_ident((unsigned char)*p)) p++;
                char lab[64];
                snprintf(lab, sizeof lab, ",%.*s,", (int)(p - s < 60 ? p - s : 60), s);
                if (p > s && strcmp(lab, ",le,") && strcmp(lab, ",instance,") && !strstr(labels_all, lab))
                    fail_msg("%s: groups by %.*s, which none of its metrics carries", where, (int)(p - s), s);
                if (p == s && *p && *p != ')') p++;
            }
        }
    }
}

/* promtool's PromQL parser on every query. */
static void promql_parses(void **st) {
    (void)st;
    if (system("command -v promtool >/dev/null 2>&1")) {
        if (getenv("CI")) fail_msg("promtool is missing (scripts/setup installs the prometheus package)");
        fprintf(stderr, "skipped: promtool not available\n");
        return;
    }
    char dir[] = "/tmp/gx-grafana-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/rules.yml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "groups:\n  - name: dashboard\n    rules:\n");
    for (int x = 0; x < NEXPRS; x++) {
        if (!strncmp(EXPRS[x], "label_values(", 13)) continue; /* Grafana's, not PromQL */
        fprintf(f, "      - record: gexec:dashboard_%d\n        expr: |\n          ", x);
        for (const char *p = EXPRS[x]; *p;) {
            if (!strncmp(p, "$__rate_interval", 16)) {
                fputs("1m", f);
                p += 16;
            } else if (*p == '$') {
                fputs(".*", f); /* $instance, $tenant: regex matchers */
                p++;
                while (is_ident((unsigned char)*p)) p++;
            } else {
                fputc(*p++, f);
            }
        }
        fputc('\n', f);
    }
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check rules %s", path);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    assert_int_equal(rc, 0);
}

static void importable(void **st) {
    (void)st;
    assert_string_equal(json_string_value(json_object_get(DASH, "uid")), "gexec-overview");
    assert_true(json_is_integer(json_object_get(DASH, "schemaVersion")));
    json_t *panels = json_object_get(DASH, "panels"), *p;
    assert_true(json_array_size(panels) >= 20);
    int64_t ids[256];
    size_t n = 0, i;
    json_array_foreach(panels, i, p) {
        const char *title = json_string_value(json_object_get(p, "title"));
        int64_t id = json_integer_value(json_object_get(p, "id"));
        for (size_t k = 0; k < n; k++)
            if (ids[k] == id) fail_msg("panel id %lld twice", (long long)id);
        assert_true(n < 256);
        ids[n++] = id;
        json_t *g = json_object_get(p, "gridPos");
        int64_t x = json_integer_value(json_object_get(g, "x")), w = json_integer_value(json_object_get(g, "w"));
        if (x < 0 || w < 1 || x + w > 24 || json_integer_value(json_object_get(g, "h")) < 1)
            fail_msg("panel \"%s\": gridPos outside the 24 columns", title);
        json_t *t, *targets = json_object_get(p, "targets");
        size_t k;
        json_array_foreach(targets, k, t) {
            const char *ref = json_string_value(json_object_get(t, "refId"));
            const char *uid = json_string_value(json_object_get(json_object_get(t, "datasource"), "uid"));
            if (!ref || !uid || strcmp(uid, "${datasource}"))
                fail_msg("panel \"%s\": a query without refId or the ${datasource} variable", title);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_and_labels),
        cmocka_unit_test(promql_parses),
        cmocka_unit_test(importable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
