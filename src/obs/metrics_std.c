/*
 * metrics_std.c - gexecd's own metric families in one table, so the API,
 * engine and store record under the same names and labels, and the names
 * are reviewed in one place (gexec_ prefix, base units, _total counters).
 */
#include <stdbool.h>
#include <stddef.h>

#include "gexec/gexec_metrics.h"

typedef struct std_entry {
    size_t offset;       /* of the family pointer in gx_metrics_std */
    bool size_buckets;   /* a histogram of counts (1..10000), not of seconds */
    gx_metric_desc desc; /* histograms without buckets get the latency set */
} std_entry;

#define AT(field) offsetof(gx_metrics_std, field)

static const std_entry table[] = {
    {AT(jobs_submitted), false,
     {GX_METRIC_COUNTER, "gexec_jobs_submitted_total", "Jobs accepted for execution.",
      {"kernel"}, NULL, 0}},
    {AT(jobs_finished), false,
     {GX_METRIC_COUNTER, "gexec_jobs_finished_total",
      "Jobs that reached a final state (succeeded, failed, cancelled, timed_out, dead).",
      {"state", "kernel"}, NULL, 0}},
    {AT(queue_depth), false,
     {GX_METRIC_GAUGE, "gexec_queue_depth", "Jobs waiting in the queue of a tenant.",
      {"tenant"}, NULL, 0}},
    {AT(queue_wait), false,
     {GX_METRIC_HISTOGRAM, "gexec_job_queue_wait_seconds",
      "Time from submission to the start of a job's first attempt, in seconds.", {"kernel"},
      NULL, 0}},
    {AT(run_time), false,
     {GX_METRIC_HISTOGRAM, "gexec_job_run_seconds", "Time a job attempt ran on its device, in seconds.",
      {"kernel"}, NULL, 0}},
    {AT(http_requests), false,
     {GX_METRIC_COUNTER, "gexec_http_requests_total", "HTTP requests served.",
      {"route", "status"}, NULL, 0}},
    {AT(http_latency), false,
     {GX_METRIC_HISTOGRAM, "gexec_http_request_duration_seconds",
      "Time to serve an HTTP request, in seconds.", {"route"}, NULL, 0}},
    {AT(store_commit), false,
     {GX_METRIC_HISTOGRAM, "gexec_store_commit_seconds",
      "Time to commit one batch of writes to the store, in seconds.", {NULL}, NULL, 0}},
    {AT(store_batch), true,
     {GX_METRIC_HISTOGRAM, "gexec_store_commit_batch_size",
      "Writes grouped into one store commit.", {NULL}, NULL, 0}},
};

int gx_metrics_std_register(gx_metrics *reg, gx_metrics_std *std, gx_error *err) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        gx_metric_desc d = table[i].desc;
        if (table[i].size_buckets) d.buckets = gx_metrics_buckets_size(&d.nbuckets);
        gx_metric_family **slot = (gx_metric_family **)((char *)std + table[i].offset);
        int rc = gx_metrics_register(reg, &d, slot, err);
        if (rc) return rc;
    }
    return 0;
}
