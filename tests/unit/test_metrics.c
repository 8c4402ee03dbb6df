/*
 * test_metrics.c - metrics registry: values and exact rendering of small
 * registries, label escaping, name checks, concurrent updates, collect
 * callbacks, the process collector, and promtool's own check (parser and
 * linter) over a registry with every kind of metric.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gexec/gexec_metrics.h"
#include "testutil.h"

static gx_metrics *new_reg(void) {
    gx_metrics *r = NULL;
    assert_int_equal(gx_metrics_new(&r), 0);
    assert_non_null(r);
    return r;
}

/* Render and compare with the expected text exactly. */
static void expect_render(gx_metrics *r, const char *want) {
    char *buf;
    size_t len;
    assert_int_equal(gx_metrics_render(r, &buf, &len), 0);
    assert_int_equal(len, strlen(buf));
    if (strcmp(buf, want)) fail_msg("render mismatch:\n--- got\n%s--- want\n%s", buf, want);
    free(buf);
}

/* noinline: inlined, GCC 12 at -O3 takes the rendered text for a pointer to
 * the local buf (-Wdangling-pointer) */
__attribute__((noinline)) static char *render(gx_metrics *r) {
    char *buf = NULL;
    size_t len;
    assert_int_equal(gx_metrics_render(r, &buf, &len), 0);
    return buf;
}

static void counter_values(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *plain, *lab;
    TU_OK(gx_metrics_counter(r, "t_events_total", "Events seen.", NULL, &plain, &err), err);
    TU_OK(gx_metrics_counter(r, "t_requests_total", "Requests.", "route, status", &lab, &err), err);
    gx_metric_series *p = gx_metrics_series(plain);
    assert_non_null(p);
    gx_counter_inc(p);
    gx_counter_add(p, 2.5);
    gx_counter_add(p, -1);  /* ignored: counters only go up */
    gx_counter_add(p, NAN); /* ignored */
    assert_true(gx_metric_value(p) == 3.5);

    /* Created out of order, rendered sorted by label values. */
    gx_metric_series *b = gx_metrics_series(lab, "/v1/jobs", "500");
    gx_metric_series *a = gx_metrics_series(lab, "/v1/jobs", "200");
    assert_ptr_equal(gx_metrics_series(lab, "/v1/jobs", "500"), b);
    const char *vals[] = {"/metrics", "200"};
    gx_metric_series *c = gx_metrics_series_a(lab, vals, 2);
    gx_counter_add(a, 41);
    gx_counter_inc(a);
    gx_counter_inc(b);
    gx_counter_add(c, 1e20); /* too big for the integer part: kept as a double */
    assert_true(gx_metric_value(a) == 42);

    expect_render(r, "# HELP t_events_total Events seen.\n"
                     "# TYPE t_events_total counter\n"
                     "t_events_total 3.5\n"
                     "# HELP t_requests_total Requests.\n"
                     "# TYPE t_requests_total counter\n"
                     "t_requests_total{route=\"/metrics\",status=\"200\"} 1e+20\n"
                     "t_requests_total{route=\"/v1/jobs\",status=\"200\"} 42\n"
                     "t_requests_total{route=\"/v1/jobs\",status=\"500\"} 1\n");
    /* set, for collectors mirroring a counter kept elsewhere */
    gx_counter_set(p, 0.25);
    assert_true(gx_metric_value(p) == 0.25);
    gx_metrics_free(r);
}

static void gauge_values(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *g;
    TU_OK(gx_metrics_gauge(r, "t_temperature_celsius", "Temperature.", "sensor", &g, &err), err);
    gx_metric_series *s1 = gx_metrics_series(g, "a");
    gx_metric_series *s2 = gx_metrics_series(g, "b");
    gx_metric_series *s3 = gx_metrics_series(g, "c");
    gx_gauge_set(s1, 20.5);
    gx_gauge_add(s1, -0.25);
    gx_gauge_inc(s2);
    gx_gauge_inc(s2);
    gx_gauge_dec(s2);
    gx_gauge_set(s3, -INFINITY);
    assert_true(gx_metric_value(s1) == 20.25);
    assert_true(gx_metric_value(s2) == 1);
    expect_render(r, "# HELP t_temperature_celsius Temperature.\n"
                     "# TYPE t_temperature_celsius gauge\n"
                     "t_temperature_celsius{sensor=\"a\"} 20.25\n"
                     "t_temperature_celsius{sensor=\"b\"} 1\n"
                     "t_temperature_celsius{sensor=\"c\"} -Inf\n");
    /* Clear hides every series until it is updated again. */
    assert_int_equal(gx_gauge_clear(g), 0);
    expect_render(r, "");
    gx_gauge_set(s2, 7);
    expect_render(r, "# HELP t_temperature_celsius Temperature.\n"
                     "# TYPE t_temperature_celsius gauge\n"
                     "t_temperature_celsius{sensor=\"b\"} 7\n");
    gx_metrics_free(r);
}

static void histogram_values(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *h, *h2;
    const double b[] = {0.125, 1};
    TU_OK(gx_metrics_histogram(r, "t_wait_seconds", "Wait time.", "kernel", b, 2, &h, &err), err);
    const double sz[] = {1, 10};
    TU_OK(gx_metrics_histogram(r, "t_batch_size", "Batch size.", NULL, sz, 2, &h2, &err), err);
    gx_metric_series *s = gx_metrics_series(h, "saxpy");
    gx_hist_observe(s, 0.0625);
    gx_hist_observe(s, 0.125); /* on the bound: counts in that bucket (le is <=) */
    gx_hist_observe(s, 0.5);
    gx_hist_observe(s, 4);
    gx_hist_observe(s, NAN); /* ignored */
    assert_true(gx_metric_value(s) == 4);
    assert_true(gx_hist_sum(s) == 4.6875);
    gx_hist_observe(gx_metrics_series(h, "gemm"), 2);
    gx_hist_observe(gx_metrics_series(h2), 3);
    expect_render(r, "# HELP t_wait_seconds Wait time.\n"
                     "# TYPE t_wait_seconds histogram\n"
                     "t_wait_seconds_bucket{kernel=\"gemm\",le=\"0.125\"} 0\n"
                     "t_wait_seconds_bucket{kernel=\"gemm\",le=\"1\"} 0\n"
                     "t_wait_seconds_bucket{kernel=\"gemm\",le=\"+Inf\"} 1\n"
                     "t_wait_seconds_sum{kernel=\"gemm\"} 2\n"
                     "t_wait_seconds_count{kernel=\"gemm\"} 1\n"
                     "t_wait_seconds_bucket{kernel=\"saxpy\",le=\"0.125\"} 2\n"
                     "t_wait_seconds_bucket{kernel=\"saxpy\",le=\"1\"} 3\n"
                     "t_wait_seconds_bucket{kernel=\"saxpy\",le=\"+Inf\"} 4\n"
                     "t_wait_seconds_sum{kernel=\"saxpy\"} 4.6875\n"
                     "t_wait_seconds_count{kernel=\"saxpy\"} 4\n"
                     "# HELP t_batch_size Batch size.\n"
                     "# TYPE t_batch_size histogram\n"
                     "t_batch_size_bucket{le=\"1\"} 0\n"
                     "t_batch_size_bucket{le=\"10\"} 1\n"
                     "t_batch_size_bucket{le=\"+Inf\"} 1\n"
                     "t_batch_size_sum 3\n"
                     "t_batch_size_count 1\n");
    gx_metrics_free(r);
}

static void default_buckets(void **st) {
    (void)st;
    size_t n;
    const double *lat = gx_metrics_buckets_latency(&n);
    assert_int_equal(n, 17);
    assert_true(lat[0] == 0.00005 && lat[n - 1] == 10);
    const double *sz = gx_metrics_buckets_size(&n);
    assert_int_equal(n, 13);
    assert_true(sz[0] == 1 && sz[n - 1] == 10000);
    double e[4];
    assert_int_equal(gx_metrics_buckets_exp(0.001, 10, 4, e), 0);
    assert_true(fabs(e[3] - 1) < 1e-12);
    assert_int_equal(gx_metrics_buckets_exp(0, 2, 4, e), GX_EINVAL);
    assert_int_equal(gx_metrics_buckets_exp(1, 1, 4, e), GX_EINVAL);

    /* A histogram without buckets gets the latency set; le texts as Go
     * formats them (shortest round trip). */
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *h;
    TU_OK(gx_metrics_histogram(r, "t_latency_seconds", "Latency.", NULL, NULL, 0, &h, &err), err);
    gx_hist_observe(gx_metrics_series(h), 0.003);
    char *txt = render(r);
    assert_non_null(strstr(txt, "t_latency_seconds_bucket{le=\"5e-05\"} 0\n"));
    assert_non_null(strstr(txt, "t_latency_seconds_bucket{le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(txt, "t_latency_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(txt, "t_latency_seconds_bucket{le=\"10\"} 1\n"));
    assert_non_null(strstr(txt, "t_latency_seconds_sum 0.003\n"));
    free(txt);
    gx_metrics_free(r);
}

static void escaping(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *g;
    TU_OK(gx_metrics_gauge(r, "t_info", "Help with \\ backslash,\nnewline and \"quotes\".", "v", &g,
                           &err),
          err);
    gx_gauge_set(gx_metrics_series(g, "a\\b\"c\nd"), 1);
    gx_gauge_set(gx_metrics_series(g, "bad\xff utf8"), 2);
    gx_gauge_set(gx_metrics_series(g, "caf\xc3\xa9"), 3); /* valid UTF-8 stays */
    gx_gauge_set(gx_metrics_series(g, ""), 4);
    expect_render(r, "# HELP t_info Help with \\\\ backslash,\\nnewline and \"quotes\".\n"
                     "# TYPE t_info gauge\n"
                     "t_info{v=\"\"} 4\n"
                     "t_info{v=\"a\\\\b\\\"c\\nd\"} 1\n"
                     "t_info{v=\"bad\xef\xbf\xbd utf8\"} 2\n"
                     "t_info{v=\"caf\xc3\xa9\"} 3\n");
    /* The replaced spelling and the original are one series. */
    assert_ptr_equal(gx_metrics_series(g, "bad\xff utf8"),
                     gx_metrics_series(g, "bad\xef\xbf\xbd utf8"));
    gx_metrics_free(r);
}

static void invalid_names(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *f = NULL;
    struct {
        gx_metric_type type;
        const char *name, *help, *labels, *field;
    } bad[] = {
        {GX_METRIC_COUNTER, "t_requests", "h", NULL, "name"},   /* no _total */
        {GX_METRIC_GAUGE, "t_things_total", "h", NULL, "name"}, /* _total on a gauge */
        {GX_METRIC_HISTOGRAM, "t_x_total", "h", NULL, "name"},
        {GX_METRIC_GAUGE, "t_jobs_count", "h", NULL, "name"}, /* histogram suffix */
        {GX_METRIC_COUNTER, "1abc_total", "h", NULL, "name"}, /* leading digit */
        {GX_METRIC_COUNTER, "t-x_total", "h", NULL, "name"},  /* bad char */
        {GX_METRIC_GAUGE, "", "h", NULL, "name"},
        {GX_METRIC_GAUGE, "t_g", "", NULL, "help"}, /* help required */
        {GX_METRIC_GAUGE, "t_g", NULL, NULL, "help"},
        {GX_METRIC_GAUGE, "t_g", "h", "le", "labels"}, /* reserved */
        {GX_METRIC_GAUGE, "t_g", "h", "__x", "labels"},
        {GX_METRIC_GAUGE, "t_g", "h", "a,a", "labels"}, /* repeated */
        {GX_METRIC_GAUGE, "t_g", "h", "a:b", "labels"}, /* colon only in names */
        {GX_METRIC_GAUGE, "t_g", "h", "9a", "labels"},
        {GX_METRIC_GAUGE, "t_g", "h", "a,b,c,d,e", "labels"}, /* too many */
        {GX_METRIC_GAUGE, "t_g", "h", "a,,b", "labels"},
        {GX_METRIC_GAUGE, "t_g", "h", "a,", "labels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = bad[i].type == GX_METRIC_COUNTER
                     ? gx_metrics_counter(r, bad[i].name, bad[i].help, bad[i].labels, &f, &err)
                 : bad[i].type == GX_METRIC_GAUGE
                     ? gx_metrics_gauge(r, bad[i].name, bad[i].help, bad[i].labels, &f, &err)
                     : gx_metrics_histogram(r, bad[i].name, bad[i].help, bad[i].labels, NULL, 0, &f,
                                            &err);
        if (rc != GX_EINVAL) fail_msg("case %zu (%s) not refused: %d", i, bad[i].name, rc);
        if (strcmp(err.field, bad[i].field))
            fail_msg("case %zu (%s): field '%s', want '%s'", i, bad[i].name, err.field,
                     bad[i].field);
        assert_true(err.message[0] != '\0');
    }
    /* Colons are allowed in metric names (recording rules use them). */
    TU_OK(gx_metrics_gauge(r, "t:ok", "h", NULL, NULL, &err), err);
    /* Buckets. */
    const double nonincr[] = {1, 1};
    assert_int_equal(gx_metrics_histogram(r, "t_h", "h", NULL, nonincr, 2, &f, &err), GX_EINVAL);
    assert_string_equal(err.field, "buckets");
    const double inf[] = {1, INFINITY};
    assert_int_equal(gx_metrics_histogram(r, "t_h", "h", NULL, inf, 2, &f, &err), GX_EINVAL);
    assert_int_equal(gx_metrics_histogram(r, "t_h", "h", NULL, inf, 0, &f, &err), GX_EINVAL);
    /* A bad type and a gap in the label list. */
    gx_metric_desc d = {.type = 9, .name = "t_h", .help = "h"};
    assert_int_equal(gx_metrics_register(r, &d, &f, &err), GX_EINVAL);
    d = (gx_metric_desc){
        .type = GX_METRIC_GAUGE, .name = "t_h", .help = "h", .labels = {"a", NULL, "c"}};
    assert_int_equal(gx_metrics_register(r, &d, &f, &err), GX_EINVAL);
    /* Names are unique. */
    TU_OK(gx_metrics_gauge(r, "t_once", "h", NULL, &f, &err), err);
    assert_ptr_equal(gx_metrics_find(r, "t_once"), f);
    assert_null(gx_metrics_find(r, "t_twice"));
    assert_int_equal(gx_metrics_counter(r, "t_once", "h", NULL, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_metrics_gauge(r, "t_once", "other", NULL, NULL, &err), GX_EEXIST);
    gx_metrics_free(r);
}

static void series_misuse(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *c, *g;
    TU_OK(gx_metrics_counter(r, "t_c_total", "h", "a,b", &c, &err), err);
    TU_OK(gx_metrics_gauge(r, "t_g", "h", NULL, &g, &err), err);
    assert_null(gx_metrics_series(c));
    assert_null(gx_metrics_series(c, "x"));
    assert_null(gx_metrics_series(c, "x", "y", "z"));
    assert_null(gx_metrics_series(g, "x"));
    assert_null(gx_metrics_series_a(c, NULL, 2));
    const char *withnull[] = {"x", NULL};
    assert_null(gx_metrics_series_a(c, withnull, 2));
    assert_non_null(gx_metrics_series(g));
    assert_null(gx_metrics_series(NULL));
    /* Updates on NULL or on the wrong kind do nothing. */
    gx_counter_inc(NULL);
    gx_gauge_set(NULL, 1);
    gx_hist_observe(NULL, 1);
    gx_metric_series *cs = gx_metrics_series(c, "x", "y");
    gx_gauge_set(cs, 5);
    gx_hist_observe(cs, 5);
    assert_true(gx_metric_value(cs) == 0);
    gx_counter_inc(gx_metrics_series(g));
    assert_true(gx_metric_value(gx_metrics_series(g)) == 0);
    assert_int_equal(gx_gauge_clear(c), GX_EINVAL);
    /* A labelled family with no series yet is left out of the render. */
    expect_render(r, "# HELP t_c_total h\n# TYPE t_c_total counter\n"
                     "t_c_total{a=\"x\",b=\"y\"} 0\n"
                     "# HELP t_g h\n# TYPE t_g gauge\nt_g 0\n");
    gx_metrics_free(r);
    gx_metrics_free(NULL);
}

/* ---- concurrency ----------------------------------------------------------- */

enum { THREADS = 8, PER_THREAD = 100000 };

typedef struct conc {
    gx_metric_family *c, *h, *g;
    gx_metrics *reg;
    int id;
} conc;

static void *conc_worker(void *arg) {
    conc *w = arg;
    /* Every thread resolves the same series itself, racing to create it. */
    gx_metric_series *c = gx_metrics_series(w->c, "shared");
    gx_metric_series *h = gx_metrics_series(w->h, "shared");
    gx_metric_series *g = gx_metrics_series(w->g);
    char mine[16];
    snprintf(mine, sizeof mine, "t%d", w->id);
    for (int i = 0; i < PER_THREAD; i++) {
        gx_counter_inc(c);
        gx_hist_observe(h, (i % 3) * 0.5); /* 0, 0.5, 1: exact sums */
        gx_gauge_add(g, 1);
        if (i % 10000 == 0) gx_counter_add(gx_metrics_series(w->c, mine), 0.5);
    }
    return NULL;
}

/* Renders while the workers update; cmocka asserts belong to the main
 * thread, so failures are counted in id. */
static void *conc_renderer(void *arg) {
    conc *w = arg;
    for (int i = 0; i < 20; i++) {
        char *buf;
        size_t len;
        if (gx_metrics_render(w->reg, &buf, &len) != 0 || strlen(buf) != len)
            w->id++;
        else
            free(buf);
    }
    return NULL;
}

static void concurrency(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    conc base = {.reg = r};
    const double b[] = {0.25, 0.75};
    TU_OK(gx_metrics_counter(r, "t_ops_total", "Ops.", "who", &base.c, &err), err);
    TU_OK(gx_metrics_histogram(r, "t_op_seconds", "Op time.", "who", b, 2, &base.h, &err), err);
    TU_OK(gx_metrics_gauge(r, "t_level", "Level.", NULL, &base.g, &err), err);
    pthread_t th[THREADS + 1];
    conc w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = base;
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, conc_worker, &w[i]), 0);
    }
    assert_int_equal(pthread_create(&th[THREADS], NULL, conc_renderer, &base), 0);
    for (int i = 0; i <= THREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(base.id, 0);

    const double total = (double)THREADS * PER_THREAD;
    assert_true(gx_metric_value(gx_metrics_series(base.c, "shared")) == total);
    gx_metric_series *h = gx_metrics_series(base.h, "shared");
    assert_true(gx_metric_value(h) == total);
    /* Per thread: i%3 == 1 gives 0.5, == 2 gives 1. */
    double per = 0;
    for (int i = 0; i < PER_THREAD; i++) per += (i % 3) * 0.5;
    assert_true(gx_hist_sum(h) == per * THREADS);
    assert_true(gx_metric_value(gx_metrics_series(base.g)) == total);
    for (int i = 0; i < THREADS; i++) {
        char mine[16];
        snprintf(mine, sizeof mine, "t%d", i);
        assert_true(gx_metric_value(gx_metrics_series(base.c, mine)) == 5);
    }
    char *txt = render(r);
    assert_non_null(strstr(txt, "t_ops_total{who=\"shared\"} 800000\n"));
    assert_non_null(strstr(txt, "t_op_seconds_count{who=\"shared\"} 800000\n"));
    /* 0 lands in le=0.25; 0.5 in le=0.75; 1 in +Inf. */
    char want[96];
    snprintf(want, sizeof want, "t_op_seconds_bucket{who=\"shared\",le=\"0.25\"} %d\n",
             THREADS * ((PER_THREAD + 2) / 3));
    assert_non_null(strstr(txt, want));
    free(txt);
    gx_metrics_free(r);
}

/* Threads race to create the same 5000 series (the index grows many times
 * while others read it); each must end up with one series per key. */
enum { KEYS = 5000 };

static void *creator(void *arg) {
    gx_metric_family *f = arg;
    for (int i = 0; i < KEYS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", (i * 7) % KEYS);
        gx_counter_inc(gx_metrics_series(f, k, "x"));
    }
    return NULL;
}

static void concurrent_creation(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metric_family *f;
    TU_OK(gx_metrics_counter(r, "t_keys_total", "Keys.", "key,other", &f, &err), err);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, creator, f), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < KEYS; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        if (gx_metric_value(gx_metrics_series(f, k, "x")) != THREADS)
            fail_msg("series %s: %f", k, gx_metric_value(gx_metrics_series(f, k, "x")));
    }
    char *txt = render(r);
    int lines = 0;
    for (const char *p = txt; (p = strchr(p, '\n')) != NULL; p++) lines++;
    assert_int_equal(lines, KEYS + 2);
    /* Sorted by label value, bytewise: k0, k1, k10, k100, ... */
    assert_non_null(strstr(txt, "counter\nt_keys_total{key=\"k0\",other=\"x\"} 8\n"
                                "t_keys_total{key=\"k1\",other=\"x\"} 8\n"
                                "t_keys_total{key=\"k10\",other=\"x\"} 8\n"));
    free(txt);
    gx_metrics_free(r);
}

/* ---- collect callbacks ---------------------------------------------------- */

typedef struct tenants {
    gx_metric_family *depth;
    const char *names[3];
    int depths[3];
    int calls;
    int order[4];
    int norder;
} tenants;

static void collect_queue(gx_metrics *reg, void *ctx) {
    (void)reg;
    tenants *t = ctx;
    t->calls++;
    t->order[t->norder++ % 4] = 1;
    gx_gauge_clear(t->depth);
    for (int i = 0; i < 3; i++)
        if (t->names[i]) gx_gauge_set(gx_metrics_series(t->depth, t->names[i]), t->depths[i]);
}

static void collect_second(gx_metrics *reg, void *ctx) {
    tenants *t = ctx;
    t->order[t->norder++ % 4] = 2;
    /* Callbacks may look families up and create series. */
    gx_gauge_set(gx_metrics_series(gx_metrics_find(reg, "t_queue_depth"), "zeta"), 1);
}

static void collect_callbacks(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    tenants t = {.names = {"beta", "alpha", NULL}, .depths = {5, 3, 0}};
    TU_OK(gx_metrics_gauge(r, "t_queue_depth", "Queued jobs.", "tenant", &t.depth, &err), err);
    assert_int_equal(gx_metrics_on_collect(r, collect_queue, &t), 0);
    assert_int_equal(gx_metrics_on_collect(r, collect_second, &t), 0);
    assert_int_equal(gx_metrics_on_collect(r, NULL, NULL), GX_EINVAL);
    expect_render(r, "# HELP t_queue_depth Queued jobs.\n"
                     "# TYPE t_queue_depth gauge\n"
                     "t_queue_depth{tenant=\"alpha\"} 3\n"
                     "t_queue_depth{tenant=\"beta\"} 5\n"
                     "t_queue_depth{tenant=\"zeta\"} 1\n");
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.order[0], 1);
    assert_int_equal(t.order[1], 2);
    /* beta went away, gamma arrived: beta is no longer rendered. */
    t.names[0] = NULL;
    t.names[2] = "gamma";
    t.depths[1] = 0;
    t.depths[2] = 9;
    expect_render(r, "# HELP t_queue_depth Queued jobs.\n"
                     "# TYPE t_queue_depth gauge\n"
                     "t_queue_depth{tenant=\"alpha\"} 0\n"
                     "t_queue_depth{tenant=\"gamma\"} 9\n"
                     "t_queue_depth{tenant=\"zeta\"} 1\n");
    assert_int_equal(t.calls, 2);
    gx_metrics_free(r);
}

/* Value of a sample line "name value" in text. */
static double sample(const char *text, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr(text, key);
    if (!p) {
        fail_msg("%s not rendered", name);
        return 0;
    }
    return strtod(p + strlen(key), NULL);
}

static void process_collector(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    TU_OK(gx_metrics_process_collector(r, &err), err);
    assert_int_equal(gx_metrics_process_collector(r, &err), GX_EEXIST);
    volatile double burn = 0; /* some CPU time */
    for (int i = 0; i < 20000000; i++) burn = burn + i * 1e-9;
    char *txt = render(r);
    double rss = sample(txt, "gexec_process_resident_memory_bytes");
    double cpu = sample(txt, "gexec_process_cpu_seconds_total");
    double fds = sample(txt, "gexec_process_open_fds");
    double start = sample(txt, "gexec_process_start_time_seconds");
    assert_true(rss > 1e5 && rss < 1e11);
    assert_true(cpu > 0 && cpu < 1e5);
    assert_true(fds >= 3 && fds < 1e5);
    double now = (double)time(NULL);
    if (!(start > now - 86400 * 30 && start <= now + 5))
        fail_msg("start time %f, now %f", start, now);
    assert_non_null(strstr(txt, "# TYPE gexec_process_cpu_seconds_total counter\n"));
    free(txt);
    gx_metrics_free(r);
}

static void std_families(void **st) {
    (void)st;
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metrics_std m;
    TU_OK(gx_metrics_std_register(r, &m, &err), err);
    gx_counter_inc(gx_metrics_series(m.jobs_finished, "succeeded", "saxpy"));
    gx_hist_observe(gx_metrics_series(m.store_batch), 64);
    char *txt = render(r);
    assert_non_null(
        strstr(txt, "gexec_jobs_finished_total{state=\"succeeded\",kernel=\"saxpy\"} 1\n"));
    assert_non_null(strstr(txt, "gexec_store_commit_batch_size_bucket{le=\"100\"} 1\n"));
    assert_non_null(strstr(txt, "gexec_store_commit_batch_size_bucket{le=\"50\"} 0\n"));
    assert_non_null(strstr(txt, "# TYPE gexec_store_commit_seconds histogram\n"));
    free(txt);
    gx_metrics_std again;
    assert_int_equal(gx_metrics_std_register(r, &again, &err), GX_EEXIST);
    gx_metrics_free(r);
}

/* ---- promtool --------------------------------------------------------------- */

static bool have_promtool(void) { return system("command -v promtool >/dev/null 2>&1") == 0; }

/* Run `promtool check metrics` on text through a temp file; returns its exit
 * status and what it printed in out. promtool exits non-zero on parse errors
 * and on lint problems and prints them; a clean run prints nothing. */
static int promtool(const char *text, char *out, size_t cap) {
    char path[] = "/tmp/gx_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(path);
    return status;
}

static void promtool_check(void **st) {
    (void)st;
    if (!have_promtool()) {
        /* scripts/setup installs it: in CI its absence is a failure */
        if (getenv("CI")) fail_msg("promtool is missing (scripts/setup installs the prometheus package)");
        printf("skipped: promtool not available\n");
        skip();
    }
    gx_metrics *r = new_reg();
    gx_error err;
    gx_metrics_std m;
    TU_OK(gx_metrics_std_register(r, &m, &err), err);
    TU_OK(gx_metrics_process_collector(r, &err), err);
    gx_metric_family *info, *ratio;
    TU_OK(gx_metrics_gauge(r, "gexec_test_info", "Escapes: \\ and\nnewline and \"quotes\".",
                           "value,other", &info, &err),
          err);
    TU_OK(gx_metrics_gauge(r, "gexec_test_ratio", "Odd values.", "kind", &ratio, &err), err);
    gx_gauge_set(gx_metrics_series(info, "a\\b\"c\nd", "x"), 1);
    gx_gauge_set(gx_metrics_series(info, "bad\xff utf8", ""), 1);
    gx_gauge_set(gx_metrics_series(ratio, "nan"), NAN);
    gx_gauge_set(gx_metrics_series(ratio, "inf"), INFINITY);
    gx_gauge_set(gx_metrics_series(ratio, "small"), 1e-300);
    gx_gauge_set(gx_metrics_series(ratio, "third"), 1.0 / 3);
    gx_gauge_set(gx_metrics_series(ratio, "neg"), -42.5);

    const char *kernels[] = {"saxpy", "gemm", "spin"};
    const char *states[] = {"succeeded", "failed", "timed_out"};
    for (int i = 0; i < 3; i++) {
        gx_counter_add(gx_metrics_series(m.jobs_submitted, kernels[i]), 10 + i);
        gx_counter_inc(gx_metrics_series(m.jobs_finished, states[i], kernels[i]));
        gx_hist_observe(gx_metrics_series(m.queue_wait, kernels[i]), 0.001 * (i + 1));
        gx_hist_observe(gx_metrics_series(m.run_time, kernels[i]), 0.3 * (i + 1));
    }
    gx_gauge_set(gx_metrics_series(m.queue_depth, "team \"a\""), 12);
    gx_counter_inc(gx_metrics_series(m.http_requests, "POST /v1/jobs", "202"));
    gx_counter_inc(gx_metrics_series(m.http_requests, "GET /metrics", "200"));
    gx_hist_observe(gx_metrics_series(m.http_latency, "POST /v1/jobs"), 0.0004);
    gx_hist_observe(gx_metrics_series(m.store_commit), 0.002);
    gx_hist_observe(gx_metrics_series(m.store_batch), 37);

    char *txt = render(r);
    char out[4096];
    int status = promtool(txt, out, sizeof out);
    if (status != 0 || out[0])
        fail_msg("promtool check metrics (status %d):\n%s\n--- input\n%s", status, out, txt);

    /* The check has teeth: a lint problem and a bad escape both fail. */
    status = promtool("# HELP t_x h\n# TYPE t_x counter\nt_x 1\n", out, sizeof out);
    assert_int_not_equal(status, 0);
    assert_non_null(strstr(out, "_total"));
    status = promtool("# HELP t_x h\n# TYPE t_x gauge\nt_x{a=\"\\q\"} 1\n", out, sizeof out);
    assert_int_not_equal(status, 0);
    free(txt);
    gx_metrics_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_values),    cmocka_unit_test(gauge_values),
        cmocka_unit_test(histogram_values),  cmocka_unit_test(default_buckets),
        cmocka_unit_test(escaping),          cmocka_unit_test(invalid_names),
        cmocka_unit_test(series_misuse),     cmocka_unit_test(concurrency),
        cmocka_unit_test(concurrent_creation),
        cmocka_unit_test(collect_callbacks), cmocka_unit_test(process_collector),
        cmocka_unit_test(std_families),      cmocka_unit_test(promtool_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
