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
 * On a terminal the screen is redrawn until interrupted, fitted to the
 * terminal's size; otherwise (or with --once) one snapshot after another is
 * printed, --once stopping after the first. --json prints each snapshot as
 * one JSON object a line. A daemon that stops answering (a restart, a
 * self-restart after a device loss, a restore: no connection or a 5xx) is
 * waited for up to TOP_OUTAGE_S, said on the screen (or once on stderr);
 * the rates start again from its first look after it.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

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

/* One look: 0, or a GX code with err set (nothing printed yet). */
static int take(cli_ctx *x, look *l, gx_error *err) {
    memset(l, 0, sizeof *l);
    char *raw = NULL;
    int rc = gx_client_metrics(x->c, &l->text, err);
    if (rc) {
        if (gx_client_last_status(x->c) == 403)
            snprintf(err->message, sizeof err->message, "top reads /metrics, which needs an operator or admin key");
        look_free(l);
        return rc;
    }
    l->t = cli_now_s();
    if (parse_metrics(l->text, l)) {
        look_free(l);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    rc = gx_client_devices(x->c, &raw, err);
    if (rc) {
        free(raw);
        look_free(l);
        return rc;
    }
    l->root = json_loads(raw, 0, NULL);
    free(raw);
    l->devs = json_object_get(l->root, "devices");
    return 0;
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

/* The screen top draws on: a terminal's size (80 x 24 when it cannot be
 * read), or no limits off a terminal. */
typedef struct screen {
    int tty;
    int rows, cols; /* 0: no limit */
} screen;

static screen screen_of(const cli_ctx *x) {
    screen sc = {.tty = x->tty};
    if (!x->tty) return sc;
    struct winsize ws;
    sc.rows = 24;
    sc.cols = 80;
    if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_row > 0 && ws.ws_col > 0) {
        sc.rows = ws.ws_row;
        sc.cols = ws.ws_col;
    }
    return sc;
}

/* One line, cut to the screen's width (a wrapped line scrolled the top of
 * the screen away). */
static void line(const screen *sc, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (sc->cols > 0 && strlen(buf) > (size_t)sc->cols) buf[sc->cols] = '\0';
    puts(buf);
}

/* A tenant's name in a column of w (>= 24) characters: whole, or its start
 * and its end around a '~' (names cut at w looked alike: team-a-batch-eu
 * and team-a-batch-us differ at the end). */
static const char *name_in(const char *name, int w, char *buf, size_t cap) {
    int n = (int)strlen(name);
    if (n <= w) return name;
    int head = (w - 1) / 2, tail = w - 1 - head;
    snprintf(buf, cap, "%.*s~%s", head, name, name + n - tail);
    return buf;
}

static void show(const cli_ctx *x, const screen *sc, json_t *o) {
    char up[32], when[32], head[200];
    uptime(cli_jnum(o, "uptime_seconds"), up, sizeof up);
    time_t t = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    const char *server = x->copts->server ? x->copts->server : getenv("GEXEC_SERVER");
    line(sc, "gexecd %s  up %s  %s", server && *server ? server : GX_CLIENT_DEFAULT_SERVER, up, when);
    json_t *fin = json_object_get(o, "finished_per_second");
    double done = 0;
    for (size_t i = 0; i < NFINAL; i++) done += cli_jnum(fin, FINAL[i]);
    int hl = snprintf(head, sizeof head, "jobs/s  submitted %.1f  finished %.1f", cli_jnum(o, "submitted_per_second"), done);
    const char *sep = " (";
    for (size_t i = 0; i < NFINAL; i++)
        if (cli_jnum(fin, FINAL[i]) > 0 && hl > 0 && (size_t)hl < sizeof head) {
            hl += snprintf(head + hl, sizeof head - (size_t)hl, "%s%s %.1f", sep, FINAL[i], cli_jnum(fin, FINAL[i]));
            sep = ", ";
        }
    line(sc, "%s%s  queued %lld  running %lld", head, strcmp(sep, " (") ? ")" : "",
         (long long)json_integer_value(json_object_get(o, "queued")),
         (long long)json_integer_value(json_object_get(o, "running")));
    line(sc, "api     %.1f req/s, %.1f 5xx/s   store  %.1f commits/s, %.1f rows/commit",
         cli_jnum(o, "http_requests_per_second"), cli_jnum(o, "http_5xx_per_second"),
         cli_jnum(o, "store_commits_per_second"), cli_jnum(o, "store_rows_per_commit"));
    line(sc, "");
    line(sc, "%-10s %-5s %-12s %7s %7s %21s %5s", "DEVICE", "KIND", "STATUS", "RUNNING", "QUEUED",
         "MEMORY USED/TOTAL", "BUSY");
    size_t i;
    json_t *d, *devs = json_object_get(o, "devices");
    json_array_foreach(devs, i, d) {
        char used[24], total[24], mem[50];
        cli_human_bytes(cli_jnum(d, "memory_used"), used, sizeof used);
        cli_human_bytes(cli_jnum(d, "memory_total"), total, sizeof total);
        snprintf(mem, sizeof mem, "%s/%s", used, total);
        line(sc, "%-10.10s %-5.5s %-12.12s %7.0f %7.0f %21s %4.0f%%", cli_js(d, "name"), cli_js(d, "kind"),
             cli_js(d, "state"), cli_jnum(d, "running"), cli_jnum(d, "queued"), mem, 100 * cli_jnum(d, "busy"));
    }
    json_t *ten = json_object_get(o, "tenants");
    size_t nt = json_array_size(ten);
    json_t **rows = malloc((nt ? nt : 1) * sizeof *rows);
    int namew = 24; /* up to a tenant name's 63, as the screen allows */
    for (i = 0; rows && i < nt; i++) {
        rows[i] = json_array_get(ten, i);
        int l = (int)strlen(cli_js(rows[i], "name"));
        if (l > namew) namew = l > 63 ? 63 : l;
    }
    if (sc->cols > 0 && namew > sc->cols - 34) namew = sc->cols - 34 < 24 ? 24 : sc->cols - 34;
    if (rows) qsort(rows, nt, sizeof *rows, by_queued);
    line(sc, "");
    line(sc, "%-*s %9s %9s %12s", namew, "TENANT", "QUEUED", "RUNNING", "DEVICE-S/S");
    /* a screen, not a scroll: the lines above, a tenant a line, one line to
     * say how many more, the cursor's line */
    size_t shown = nt;
    if (sc->rows > 0) {
        long room = (long)sc->rows - 8 - (long)json_array_size(devs) - 1;
        if (room < 1) room = 1;
        if (nt > (size_t)room) shown = (size_t)room - (room > 1);
    }
    for (i = 0; rows && i < shown; i++) {
        char cut[80];
        line(sc, "%-*s %9lld %9lld %12.2f", namew, name_in(cli_js(rows[i], "name"), namew, cut, sizeof cut),
             (long long)json_integer_value(json_object_get(rows[i], "queued")),
             (long long)json_integer_value(json_object_get(rows[i], "running")),
             cli_jnum(rows[i], "device_seconds_per_second"));
    }
    if (shown < nt) line(sc, "... %zu more tenants (gexec --json top --once lists them all)", nt - shown);
    free(rows);
}

/* How long top waits for a daemon that stopped answering. */
#define TOP_OUTAGE_S 30

/* Worth waiting for: no answer (a restart) or a 5xx (a restore, a store
 * that fails); a 4xx (a key refused) is not. */
static int outage(cli_ctx *x, int rc) { return rc != GX_ENOMEM && (gx_client_last_status(x->c) == 0 || gx_client_last_status(x->c) >= 500); }

int cmd_top(cli_ctx *x) {
    long ms = 2000;
    if (cli_has(x->a, FL_INTERVAL) && cli_duration("interval", cli_get(x->a, FL_INTERVAL), &ms)) return CLI_EXIT_USAGE;
    if (ms < 100) return cli_usage("--interval: at least 100ms");
    int once = cli_has(x->a, FL_ONCE);
    look a, b;
    gx_error err;
    int rc = take(x, &a, &err);
    if (rc) return cli_fail(x, rc, &err); /* not there at all: said at once */
    double down_since = 0;
    for (int first = 1;;) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        rc = take(x, &b, &err);
        if (rc) {
            double now = cli_now_s();
            if (once || !outage(x, rc) || (down_since && now - down_since > TOP_OUTAGE_S)) break;
            if (!down_since) {
                down_since = now;
                if (!x->tty || x->json) fprintf(stderr, "gexec: %s; retrying for %d s\n", err.message, TOP_OUTAGE_S);
            }
            if (x->tty && !x->json) {
                screen sc = screen_of(x);
                fputs("\033[H\033[2J", stdout);
                line(&sc, "gexecd does not answer (%.0f s): %s", now - down_since, err.message);
                line(&sc, "retrying every %.1f s, for up to %d s", ms / 1000.0, TOP_OUTAGE_S);
                fflush(stdout);
            }
            continue;
        }
        if (down_since) { /* back: its counters may have started again, so rates start from here */
            down_since = 0;
            look_free(&a);
            a = b;
            continue;
        }
        json_t *o = snapshot_json(&a, &b);
        if (x->json) {
            char *s = json_dumps(o, JSON_COMPACT);
            if (s) puts(s);
            free(s);
        } else {
            screen sc = screen_of(x);
            if (x->tty && !once) fputs("\033[H\033[2J", stdout); /* home, clear */
            else if (!first) putchar('\n');
            show(x, &sc, o);
        }
        fflush(stdout);
        json_decref(o);
        look_free(&a);
        a = b;
        first = 0;
        if (once) break;
    }
    look_free(&a);
    return rc ? cli_fail(x, rc, &err) : CLI_EXIT_OK;
}
