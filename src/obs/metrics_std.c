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
     {.type = GX_METRIC_COUNTER,
      .name = "gexec_jobs_submitted_total",
      .help = "Jobs accepted for execution by this process (jobs restored from the store at start are not counted again).",
      .labels = {"kernel"}}},
    {AT(jobs_finished), false,
     {.type = GX_METRIC_COUNTER,
      .name = "gexec_jobs_finished_total",
      .help = "Jobs that reached a final state (succeeded, failed, cancelled, timed_out, dead).",
      .labels = {"state", "kernel"}}},
    {AT(queue_depth), false,
     {.type = GX_METRIC_GAUGE,
      .name = "gexec_queue_depth",
      .help = "Jobs waiting in the queue of a tenant.",
      .labels = {"tenant"}}},
    {AT(queue_wait), false,
     {.type = GX_METRIC_HISTOGRAM,
      .name = "gexec_job_queue_wait_seconds",
      .help = "Time from submission to the start of a job's first attempt, in seconds.",
      .labels = {"kernel"}}},
    {AT(run_time), false,
     {.type = GX_METRIC_HISTOGRAM,
      .name = "gexec_job_run_seconds",
      .help = "Time a job attempt ran on its device, in seconds.",
      .labels = {"kernel"}}},
    {AT(http_requests), false,
     {.type = GX_METRIC_COUNTER,
      .name = "gexec_http_requests_total",
      .help = "HTTP requests served.",
      .labels = {"route", "status"}}},
    {AT(http_latency), false,
     {.type = GX_METRIC_HISTOGRAM,
      .name = "gexec_http_request_duration_seconds",
      .help = "Time to serve an HTTP request, in seconds.",
      .labels = {"route"}}},
    {AT(store_commit), false,
     {.type = GX_METRIC_HISTOGRAM,
      .name = "gexec_store_commit_seconds",
      .help = "Time of one store transaction from BEGIN to its durable COMMIT (fsync included), in seconds."}},
    {AT(store_batch), true,
     {.type = GX_METRIC_HISTOGRAM,
      .name = "gexec_store_commit_batch_size",
      .help = "Rows written by one store transaction: the jobs and state changes of every request waiting for it."}},
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
