/*
 * gexec_metrics.h - the metrics registry behind gexecd's GET /metrics.
 *
 * A registry holds metric families: counters, gauges and histograms. Each
 * family has a name, a help text and a fixed list of label names declared at
 * registration; a series (one label-value tuple of a family) is created the
 * first time it is asked for and lives as long as the registry. The registry
 * renders itself in the Prometheus text exposition format 0.0.4.
 *
 * The hot path is cheap and lock-free: resolve a series handle once
 * (gx_metrics_series, which takes the family's lock) and keep it; updating a
 * handle (gx_counter_inc, gx_gauge_set, gx_hist_observe, ...) is one or two
 * atomic operations and never blocks. Every function here is thread-safe
 * except gx_metrics_free.
 *
 * Values that come from elsewhere (queue depth per tenant from the engine,
 * device memory, process statistics) are filled by collect callbacks
 * (gx_metrics_on_collect) that run at the start of each render.
 *
 * Naming follows Prometheus conventions and is checked at registration:
 * names match [a-zA-Z_:][a-zA-Z0-9_:]*, counters end in "_total" and only
 * counters do, non-histograms do not end in "_bucket", "_sum" or "_count",
 * help text is required, and label names match [a-zA-Z_][a-zA-Z0-9_]*, do
 * not start with "__" and are never "le". Use base units (seconds, bytes).
 */
#ifndef GEXEC_METRICS_H
#define GEXEC_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Content-Type of what gx_metrics_render produces. */
#define GX_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Most label names a family may declare. */
#define GX_METRICS_MAX_LABELS 4
/* Most buckets (finite upper bounds) a histogram may declare. */
#define GX_METRICS_MAX_BUCKETS 64

typedef struct gx_metrics gx_metrics;             /* a registry */
typedef struct gx_metric_family gx_metric_family; /* one named metric */
typedef struct gx_metric_series gx_metric_series; /* one label-value tuple of a family */

typedef enum gx_metric_type {
    GX_METRIC_COUNTER = 1,   /* monotonic total; name ends in _total */
    GX_METRIC_GAUGE = 2,     /* a value that goes up and down */
    GX_METRIC_HISTOGRAM = 3, /* observations counted in cumulative buckets */
} gx_metric_type;

/* A family to register. Strings are copied; the struct may be a table entry
 * or a compound literal. */
typedef struct gx_metric_desc {
    gx_metric_type type;
    const char *name; /* "gexec_jobs_finished_total" */
    const char *help; /* one line, required */
    /* Label names in order; NULL after the last one (or all NULL). */
    const char *labels[GX_METRICS_MAX_LABELS];
    /* Histograms: finite upper bounds, strictly increasing; +Inf is implied.
     * NULL means gx_metrics_buckets_latency(). Ignored for other types. */
    const double *buckets;
    size_t nbuckets;
} gx_metric_desc;

/* ---- registry ----------------------------------------------------------- */

/* New empty registry in *out; free with gx_metrics_free. GX_ENOMEM. */
int gx_metrics_new(gx_metrics **out);

/* Free a registry with its families and series; every handle into it becomes
 * invalid. Not thread-safe: nothing may use the registry meanwhile. NULL is
 * fine. */
void gx_metrics_free(gx_metrics *reg);

/* Register a family. On success *out (may be NULL) is the family, owned by
 * the registry. Errors: GX_EINVAL (bad name, help, labels or buckets; err
 * names the field), GX_EEXIST (the name is taken), GX_ENOMEM. A family with
 * no labels has its single series from the start, at zero. */
int gx_metrics_register(gx_metrics *reg, const gx_metric_desc *d, gx_metric_family **out,
                        gx_error *err);

/* Shorthands for gx_metrics_register. labels is a comma-separated list of
 * label names ("route,status"), or NULL or "" for none. */
int gx_metrics_counter(gx_metrics *reg, const char *name, const char *help, const char *labels,
                       gx_metric_family **out, gx_error *err);
int gx_metrics_gauge(gx_metrics *reg, const char *name, const char *help, const char *labels,
                     gx_metric_family **out, gx_error *err);
/* buckets as in gx_metric_desc (NULL: latency buckets). */
int gx_metrics_histogram(gx_metrics *reg, const char *name, const char *help, const char *labels,
                         const double *buckets, size_t nbuckets, gx_metric_family **out,
                         gx_error *err);

/* The family registered under name, or NULL. */
gx_metric_family *gx_metrics_find(gx_metrics *reg, const char *name);

/* ---- series ------------------------------------------------------------- */

/* The series of family f for the given label values, created (at zero) on
 * first use. Pass exactly as many values as the family has label names, in
 * their order, none NULL; gx_metrics_series(f) for a family without labels.
 * Returns NULL on a wrong count or out of memory (every update function
 * accepts NULL and does nothing, so an instrumentation miss never crashes).
 * Label values that are not valid UTF-8 have each bad byte replaced by
 * U+FFFD. The handle lives as long as the registry: resolve it once and keep
 * it. Finding an existing series takes no lock (a hash lookup, some tens of
 * ns); creating one takes the family's mutex. */
#define gx_metrics_series(...) gx_metrics_series_nt(__VA_ARGS__, (const char *)NULL)
/* What gx_metrics_series expands to: the values end with a NULL. */
gx_metric_series *gx_metrics_series_nt(gx_metric_family *f, ...);
/* Same with an array of n values. */
gx_metric_series *gx_metrics_series_a(gx_metric_family *f, const char *const *values, size_t n);

/* ---- updates: lock-free, thread-safe, NULL series ignored ---------------- */
/* An update of the wrong kind (gx_gauge_set on a counter) is ignored. */

/* Counters: add 1, or add v >= 0 (negative or NaN v is ignored). Whole v
 * below 2^53 costs one atomic add; fractional v a compare-and-swap loop. */
void gx_counter_inc(gx_metric_series *s);
void gx_counter_add(gx_metric_series *s, double v);
/* Set a counter outright. Only for collect callbacks that mirror a counter
 * kept elsewhere (CPU seconds of the process); do not mix with adds. */
void gx_counter_set(gx_metric_series *s, double v);

/* Gauges. */
void gx_gauge_set(gx_metric_series *s, double v);
void gx_gauge_add(gx_metric_series *s, double v); /* negative v subtracts */
void gx_gauge_inc(gx_metric_series *s);
void gx_gauge_dec(gx_metric_series *s);

/* Histograms: count v in the first bucket whose bound is >= v and add it to
 * the sum. NaN is ignored. */
void gx_hist_observe(gx_metric_series *s, double v);

/* Current value of a counter or gauge, or count of observations of a
 * histogram (0 for NULL). For tests and for code that reads a metric back. */
double gx_metric_value(const gx_metric_series *s);
/* Sum of a histogram's observations (0 for other kinds). */
double gx_hist_sum(const gx_metric_series *s);

/* Hide every series of a gauge family until it is updated again. For collect
 * callbacks that rebuild a labelled view each time (queue depth per tenant):
 * clear, then set the series that exist now; a tenant that went away stops
 * being rendered. Handles stay valid. GX_EINVAL if f is not a gauge. */
int gx_gauge_clear(gx_metric_family *f);

/* ---- collection and exposition ------------------------------------------ */

/* Called at the start of each render, in registration order, one render at a
 * time; it sets the values it owns (gx_gauge_set, gx_counter_set) and may
 * create series. It must not call gx_metrics_render. */
typedef void (*gx_metrics_collect_fn)(gx_metrics *reg, void *ctx);

/* Add a collect callback; ctx is passed back and must outlive the registry
 * (callbacks cannot be removed). GX_EINVAL (NULL reg or fn), GX_ENOMEM. */
int gx_metrics_on_collect(gx_metrics *reg, gx_metrics_collect_fn fn, void *ctx);

/* Run the collect callbacks, then render every family in the text format
 * 0.0.4 (Content-Type GX_METRICS_CONTENT_TYPE) into a new
 * NUL-terminated buffer: *buf (free with free()) of *len bytes, not counting
 * the NUL. Families come in registration order with "# HELP" and "# TYPE"
 * lines, series sorted by label values; a histogram has cumulative _bucket
 * lines (le last, ending with le="+Inf"), then _sum and _count. Families with
 * no series are left out. GX_ENOMEM. */
int gx_metrics_render(gx_metrics *reg, char **buf, size_t *len);

/* ---- buckets ------------------------------------------------------------ */

/* Latency in seconds, 50us to 10s in 1-2.5-5 steps (17 bounds). Static. */
const double *gx_metrics_buckets_latency(size_t *n);
/* Sizes and counts, 1 to 10000 in 1-2-5 steps (13 bounds). Static. */
const double *gx_metrics_buckets_size(size_t *n);
/* Fill out[0..n) with start, start*factor, ...; GX_EINVAL unless start > 0,
 * factor > 1 and 1 <= n <= GX_METRICS_MAX_BUCKETS. */
int gx_metrics_buckets_exp(double start, double factor, size_t n, double *out);

/* ---- process collector -------------------------------------------------- */

/* Register gexec_process_resident_memory_bytes, gexec_process_cpu_seconds_total,
 * gexec_process_open_fds and gexec_process_start_time_seconds (Unix time),
 * read from /proc/self at each render. Errors as gx_metrics_register. */
int gx_metrics_process_collector(gx_metrics *reg, gx_error *err);

/* ---- gexec's own metrics ------------------------------------------------ */

/* The families gexecd exports, registered together so every module uses the
 * same names and labels. Label names in brackets. */
typedef struct gx_metrics_std {
    gx_metric_family *jobs_submitted; /* gexec_jobs_submitted_total [kernel] */
    gx_metric_family *jobs_finished;  /* gexec_jobs_finished_total [state, kernel] */
    gx_metric_family *queue_depth;    /* gexec_queue_depth [tenant] gauge (collect) */
    gx_metric_family *queue_wait;     /* gexec_job_queue_wait_seconds [kernel] */
    gx_metric_family *run_time;       /* gexec_job_run_seconds [kernel] */
    gx_metric_family *http_requests;  /* gexec_http_requests_total [route, status] */
    gx_metric_family *http_latency;   /* gexec_http_request_duration_seconds [route] */
    gx_metric_family *store_commit;   /* gexec_store_commit_seconds */
    gx_metric_family *store_batch;    /* gexec_store_commit_batch_size (rows per transaction) */
} gx_metrics_std;

/* Register the families above into reg and fill *std. Errors as
 * gx_metrics_register (GX_EEXIST if called twice on one registry). */
int gx_metrics_std_register(gx_metrics *reg, gx_metrics_std *std, gx_error *err);

#ifdef __cplusplus
}
#endif
#endif
