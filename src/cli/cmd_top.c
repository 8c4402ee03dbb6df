/*
 * cmd_top.c - gexec top: the daemon at a glance, refreshed.
 *
 * Every --interval it reads /metrics (operator) and /v1/devices and shows
 * what moved since the last look: jobs submitted and finished per second
 * (by final state), queued and running jobs, the API's requests and 5xx
 * per second, the store's commits per second and rows per commit, each
 * device (status, running and queued jobs, memory, busy share of its
 * slots) and each tenant (queued, running, device-seconds per second).
 * Rates need two looks, so the first screen comes after one interval.
 *
 * On a terminal the screen is redrawn until interrupted; otherwise (or
 * with --once) one snapshot after another is printed, --once stopping
 * after the first. --json prints each snapshot as one JSON object a line.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- the Prometheus text format, as far as top needs it ------------------ */

typedef struct sample {
    const char *name;   /* into the text */
    size_t nlen;
    const char *labels; /* after '{', up to the matching '}'; NULL: none */
    size_t llen;
    double v;
} sample;

typedef struct look {
    char *text;
    sample *s;
    size_t n;
    json_t *devs; /* /v1/devices' "devices" (a reference held) */
    json_t *root;
    double t;     /* CLOCK_MONOTONIC, s */
} look;

static void look_free(look *l) {
    free(l->text);
    free(l->s);
    json_decref(l->root);
    memset(l, 0, sizeof *l);
}

/* One sample line: name[{labels}] value [timestamp]. 0 when it is one. */
static int parse_line(const char *p, const char *end, sample *out) {
    const char *q = p;
    while (q < end && (isalnum((unsigned char)*q) || *q == '_' || *q == ':')) q++;
    if (q == p) return -1;
    out->name = p;
    out->nlen = (size_t)(q - p);
    out->labels = NULL;
    out->llen = 0;
    if (q < end && *q == '{') {
        const char *b = ++q;
        int inq = 0;
        while (q < end && (inq || *q != '}')) {
            if (inq && *q == '\\' && q + 1 < end) q++;
            else if (*q == '"') inq = !inq;
            q++;
        }
        if (q >= end) return -1;
        out->labels = b;
        out->llen = (size_t)(q - b);
        q++;
    }
    if (q >= end || *q != ' ') return -1;
    char num[64];
    size_t k = 0;
    for (q++; q < end && *q != ' ' && k < sizeof num - 1; q++) num[k++] = *q;
    num[k] = '\0';
    char *e;
    out->v = strtod(num, &e);
    return k && *e == '\0' ? 0 : -1;
}

static int parse_metrics(char *text, look *l) {
    size_t cap = 256;
    l->s = malloc(cap * sizeof *l->s);
    if (!l->s) return -1;
    for (char *p = text; p && *p;) {
        char *nl = strchr(p, '\n');
        char *end = nl ? nl : p + strlen(p);
        sample s;
        if (*p != '#' && parse_line(p, end, &s) == 0) {
            if (l->n == cap) {
                sample *ns = realloc(l->s, cap * 2 * sizeof *ns);
                if (!ns) return -1;
                l->s = ns;
                cap *= 2;
            }
            l->s[l->n++] = s;
        }
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* The value of label key in s (unescaped into buf), or NULL. */
static const char *label(const sample *s, const char *key, char *buf, size_t cap) {
    size_t kl = strlen(key);
    const char *p = s->labels, *end = s->labels ? s->labels + s->llen : NULL;
    while (p && p < end) {
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq + 1 >= end || eq[1] != '"') return NULL;
        int match = (size_t)(eq - p) == kl && !memcmp(p, key, kl);
        size_t k = 0;
        const char *q = eq + 2;
        for (; q < end && *q != '"'; q++) {
            char c = *q;
            if (c == '\\' && q + 1 < end) c = *++q == 'n' ? '\n' : *q;
            if (k + 1 < cap) buf[k++] = c;
        }
        if (match) {
            buf[k] = '\0';
            return buf;
        }
        p = q + 1;
        if (p < end && *p == ',') p++;
    }
    return NULL;
}

/* Sum of the samples of name whose label key is val (key NULL: all);
 * NAN when there is none. */
static double sum(const look *l, const char *name, const char *key, const char *val) {
    double t = 0;
    int any = 0;
    size_t nl = strlen(name);
    for (size_t i = 0; i < l->n; i++) {
        const sample *s = &l->s[i];
        if (s->nlen != nl || memcmp(s->name, name, nl)) continue;
        char buf[256];
        if (key) {
            const char *v = label(s, key, buf, sizeof buf);
            if (!v) continue;
            gx_utf8_fix(buf); /* a value cut at the buffer's end, or bad bytes: what jansson takes */
            if (strcmp(v, val)) continue;
        }
        t += s->v;
        any = 1;
    }
    return any ? t : NAN;
}

/* Per second between two looks; NAN without both. */
static double rate(const look *a, const look *b, const char *name, const char *key, const char *val) {
    double x = sum(a, name, key, val), y = sum(b, name, key, val);
    if (isnan(x) || isnan(y) || b->t <= a->t) return NAN;
    return y >= x ? (y - x) / (b->t - a->t) : y / (b->t - a->t); /* a restart resets counters */
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The distinct values of label key among the samples of name, sorted, as
 * a malloc'd array of malloc'd strings (*n of them); NULL when out of
 * memory. */
static char **values(const look *l, const char *name, const char *key, size_t *n) {
    size_t cap = 16, nl = strlen(name);
    char **out = malloc(cap * sizeof *out);
    *n = 0;
    for (size_t i = 0; out && i < l->n; i++) {
        const sample *s = &l->s[i];
        char buf[256];
        const char *v;
        if (s->nlen != nl || memcmp(s->name, name, nl) || !(v = label(s, key, buf, sizeof buf))) continue;
        gx_utf8_fix(buf); /* a value cut at the buffer's end, or bad bytes: what jansson takes */
        size_t k = 0;
        while (k < *n && strcmp(out[k], buf)) k++;
        if (k < *n) continue;
        if (*n == cap) {
            char **no = realloc(out, cap * 2 * sizeof *no);
            if (!no) break;
            out = no;
            cap *= 2;
        }
        if (!(out[*n] = strdup(buf))) break;
        (*n)++;
    }
    if (out) qsort(out, *n, sizeof *out, cmp_str);
    return out;
}

/* ---- one look ------------------------------------------------------------ */

static int take(cli_ctx *x, look *l) {
    memset(l, 0, sizeof *l);
    gx_error err;
    char *raw = NULL;
    int rc = gx_client_metrics(x->c, &l->text, &err);
    if (rc) {
        if (gx_client_last_status(x->c) == 403)
            snprintf(err.message, sizeof err.message, "top reads /metrics, which needs an operator or admin key");
        look_free(l);
        return cli_fail(x, rc, &err);
    }
    l->t = cli_now_s();
    if (parse_metrics(l->text, l)) {
        look_free(l);
        fprintf(stderr, "gexec: out of memory\n");
        return CLI_EXIT_SERVER;
    }
    rc = gx_client_devices(x->c, &raw, &err);
    if (rc) {
        free(raw);
        look_free(l);
        return cli_fail(x, rc, &err);
    }
    l->root = json_loads(raw, 0, NULL);
    free(raw);
    l->devs = json_object_get(l->root, "devices");
    return CLI_EXIT_OK;
}

/* ---- showing it ---------------------------------------------------------- */

static const char *const FINAL[] = {"succeeded", "failed", "cancelled", "timed_out", "dead"};
#define NFINAL (sizeof FINAL / sizeof FINAL[0])

static double nz(double v) { return isfinite(v) ? v : 0; }

/* A count from the network as an integer: 0 unless finite and in range. */
static json_int_t count(double v) { return isfinite(v) && fabs(v) < 9e18 ? (json_int_t)v : 0; }

/* gexec_uptime_seconds as "3d04h", "2h13m", "5m07s". */
static void uptime(double s, char *buf, size_t cap) {
    long t = isfinite(s) && s > 0 && s < 9e18 ? (long)s : 0;
    if (t >= 86400) snprintf(buf, cap, "%ldd%02ldh", t / 86400, t % 86400 / 3600);
    else if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

static json_t *snapshot_json(const look *a, const look *b) {
    json_t *o = json_object(), *fin = json_object(), *devs = json_array(), *ten = json_array();
    json_object_set_new(o, "uptime_seconds", json_real(nz(sum(b, "gexec_uptime_seconds", NULL, NULL))));
    json_object_set_new(o, "interval_seconds", json_real(b->t - a->t));
    json_object_set_new(o, "submitted_per_second", json_real(nz(rate(a, b, "gexec_jobs_submitted_total", NULL, NULL))));
    for (size_t i = 0; i < NFINAL; i++)
        json_object_set_new(fin, FINAL[i], json_real(nz(rate(a, b, "gexec_jobs_finished_total", "state", FINAL[i]))));
    json_object_set_new(o, "finished_per_second", fin);
    json_object_set_new(o, "queued", json_integer(count(sum(b, "gexec_queue_depth", NULL, NULL))));
    json_object_set_new(o, "running", json_integer(count(sum(b, "gexec_device_jobs_running", NULL, NULL))));
    json_object_set_new(o, "http_requests_per_second", json_real(nz(rate(a, b, "gexec_http_requests_total", NULL, NULL))));
    double e5 = 0;
    for (int st = 500; st < 600; st++) {
        char code[8];
        snprintf(code, sizeof code, "%d", st);
        e5 += nz(rate(a, b, "gexec_http_requests_total", "status", code));
    }
    json_object_set_new(o, "http_5xx_per_second", json_real(e5));
    double tx = nz(rate(a, b, "gexec_store_transactions_total", NULL, NULL));
    double rows = nz(rate(a, b, "gexec_store_rows_written_total", NULL, NULL));
    json_object_set_new(o, "store_commits_per_second", json_real(tx));
    json_object_set_new(o, "store_rows_per_commit", json_real(tx > 0 ? rows / tx : 0));
    size_t i;
    json_t *d;
    json_array_foreach(b->devs, i, d) {
        const char *name = json_string_value(json_object_get(d, "name"));
        if (!name) continue;
        double slots = json_number_value(json_object_get(d, "slots"));
        double busy = nz(rate(a, b, "gexec_device_busy_seconds_total", "device", name));
        json_object_set_new(d, "busy", json_real(slots > 0 ? busy / slots : busy));
        json_object_set_new(d, "state", json_string(cli_device_status(d)));
        json_array_append(devs, d);
    }
    json_object_set_new(o, "devices", devs);
    size_t nt = 0;
    char **names = values(b, "gexec_queue_depth", "tenant", &nt);
    for (size_t t = 0; names && t < nt; t++) {
        json_t *row = json_object();
        json_object_set_new(row, "name", json_string(names[t]));
        json_object_set_new(row, "queued", json_integer(count(sum(b, "gexec_queue_depth", "tenant", names[t]))));
        json_object_set_new(row, "running",
                            json_integer(count(sum(b, "gexec_tenant_jobs_running", "tenant", names[t]))));
        json_object_set_new(row, "device_seconds_per_second",
                            json_real(nz(rate(a, b, "gexec_tenant_device_seconds_total", "tenant", names[t]))));
        json_array_append_new(ten, row);
    }
    for (size_t t = 0; names && t < nt; t++) free(names[t]);
    free(names);
    json_object_set_new(o, "tenants", ten);
    return o;
}

static int by_queued(const void *x, const void *y) {
    json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
    double d = cli_jnum(b, "queued") + cli_jnum(b, "running") - cli_jnum(a, "queued") - cli_jnum(a, "running");
    return d > 0 ? 1 : d < 0 ? -1 : strcmp(cli_js(a, "name"), cli_js(b, "name"));
}

static void show(const cli_ctx *x, json_t *o) {
    char up[32], when[32];
    uptime(cli_jnum(o, "uptime_seconds"), up, sizeof up);
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    const char *server = x->copts->server ? x->copts->server : getenv("GEXEC_SERVER");
    printf("gexecd %s  up %s  %s\n", server && *server ? server : GX_CLIENT_DEFAULT_SERVER, up, when);
    json_t *fin = json_object_get(o, "finished_per_second");
    double done = 0;
    for (size_t i = 0; i < NFINAL; i++) done += cli_jnum(fin, FINAL[i]);
    printf("jobs/s  submitted %.1f  finished %.1f", cli_jnum(o, "submitted_per_second"), done);
    const char *sep = " (";
    for (size_t i = 0; i < NFINAL; i++)
        if (cli_jnum(fin, FINAL[i]) > 0) {
            printf("%s%s %.1f", sep, FINAL[i], cli_jnum(fin, FINAL[i]));
            sep = ", ";
        }
    printf("%s  queued %lld  running %lld\n", strcmp(sep, " (") ? ")" : "",
           (long long)json_integer_value(json_object_get(o, "queued")),
           (long long)json_integer_value(json_object_get(o, "running")));
    printf("api     %.1f req/s, %.1f 5xx/s   store  %.1f commits/s, %.1f rows/commit\n\n",
           cli_jnum(o, "http_requests_per_second"), cli_jnum(o, "http_5xx_per_second"), cli_jnum(o, "store_commits_per_second"),
           cli_jnum(o, "store_rows_per_commit"));
    printf("%-10s %-5s %-12s %7s %7s %21s %5s\n", "DEVICE", "KIND", "STATUS", "RUNNING", "QUEUED",
           "MEMORY USED/TOTAL", "BUSY");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(o, "devices"), i, d) {
        char used[24], total[24], mem[50];
        cli_human_bytes(cli_jnum(d, "memory_used"), used, sizeof used);
        cli_human_bytes(cli_jnum(d, "memory_total"), total, sizeof total);
        snprintf(mem, sizeof mem, "%s/%s", used, total);
        printf("%-10.10s %-5.5s %-12.12s %7.0f %7.0f %21s %4.0f%%\n", cli_js(d, "name"),
               cli_js(d, "kind"), cli_js(d, "state"), cli_jnum(d, "running"), cli_jnum(d, "queued"), mem, 100 * cli_jnum(d, "busy"));
    }
    json_t *ten = json_object_get(o, "tenants");
    size_t nt = json_array_size(ten);
    json_t **rows = malloc((nt ? nt : 1) * sizeof *rows);
    for (i = 0; rows && i < nt; i++) rows[i] = json_array_get(ten, i);
    if (rows) qsort(rows, nt, sizeof *rows, by_queued);
    printf("\n%-24s %9s %9s %12s\n", "TENANT", "QUEUED", "RUNNING", "DEVICE-S/S");
    size_t shown = x->tty && nt > 20 ? 19 : nt; /* a screen, not a scroll */
    for (i = 0; rows && i < shown; i++)
        printf("%-24.24s %9lld %9lld %12.2f\n", cli_js(rows[i], "name"),
               (long long)json_integer_value(json_object_get(rows[i], "queued")),
               (long long)json_integer_value(json_object_get(rows[i], "running")),
               cli_jnum(rows[i], "device_seconds_per_second"));
    if (shown < nt) printf("... %zu more tenants (gexec --json top --once lists them all)\n", nt - shown);
    free(rows);
}

int cmd_top(cli_ctx *x) {
    long ms = 2000;
    if (cli_has(x->a, FL_INTERVAL) && cli_duration("interval", cli_get(x->a, FL_INTERVAL), &ms)) return CLI_EXIT_USAGE;
    if (ms < 100) return cli_usage("--interval: at least 100ms");
    int once = cli_has(x->a, FL_ONCE);
    look a, b;
    int code = take(x, &a);
    for (int first = 1; code == CLI_EXIT_OK; first = 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        code = take(x, &b);
        if (code) break;
        json_t *o = snapshot_json(&a, &b);
        if (x->json) {
            char *s = json_dumps(o, JSON_COMPACT);
            if (s) puts(s);
            free(s);
        } else {
            if (x->tty && !once) fputs("\033[H\033[2J", stdout); /* home, clear */
            else if (!first) putchar('\n');
            show(x, o);
        }
        fflush(stdout);
        json_decref(o);
        look_free(&a);
        a = b;
        if (once) break;
    }
    look_free(&a);
    return code;
}
