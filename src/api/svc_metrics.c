/*
 * svc_metrics.c - what gexecd exports at GET /metrics: the standard families
 * (jobs, queues, HTTP, store commits), devices, and the process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_fault.h"
#include "gexec/gexec_metrics.h"
#include "clock.h"
#include "log.h"
#include "service.h"

struct gx_svc_metrics {
    gx_metrics *reg;
    gx_metrics_std std;
    gx_metric_family *dev_mem, *dev_running, *dev_queued, *dev_healthy, *dev_busy, *dev_jobs;
    gx_metric_family *dev_recoveries, *dev_recovery_s, *dev_recovering, *dev_drained, *restarts;
    gx_metric_family *tenant_running, *tenant_usage;
    gx_metric_family *commit_wait;
    gx_metric_family *uptime, *store_rows, *purged;
    gx_metric_family *store_failed, *store_tx, *faults_injected, *checkpoints; /* fault tolerance */
    gx_metric_family *gpu_util, *gpu_mem_used, *gpu_mem_total, *gpu_temp, *gpu_power, *gpu_sm_clock, *gpu_ecc,
        *gpu_xid, *tenant_mem;
    gx_metric_family *quota_limit, *quota_usage;
    gx_metric_family *circuit_state, *circuit_moves;
    gx_metric_family *stream_replayed, *stream_resets;
    gx_metric_family *audit_bytes, *audit_files, *audit_rotations;
};

/* Circuit breakers of every device and every registered kernel (a dozen or
 * two series: dashboards see a kernel before its first failure). */
static void collect_circuits(gx_service *s, struct gx_svc_metrics *m) {
    for (int i = 0; i < gx_device_count(s->engine); i++) {
        gx_device_info d;
        if (gx_device_get(s->engine, i, &d)) continue;
        gx_gauge_set(gx_metrics_series(m->circuit_state, "device", d.name), d.breaker_state);
        gx_counter_set(gx_metrics_series(m->circuit_moves, "device", d.name), (double)d.breaker_transitions);
    }
    for (int i = 0; i < gx_kernel_count(); i++) {
        const gx_kernel *k = gx_kernel_at(i);
        gx_breaker_info b;
        if (!k || gx_kernel_breaker_get(s->engine, k, &b)) continue;
        gx_gauge_set(gx_metrics_series(m->circuit_state, "kernel", k->name), b.state);
        gx_counter_set(gx_metrics_series(m->circuit_moves, "kernel", k->name), (double)b.transitions);
    }
}

static void collect(gx_metrics *reg, void *ctx) {
    (void)reg;
    gx_service *s = ctx;
    struct gx_svc_metrics *m = s->m;
    /* every tenant (the first 256 only were shown: the others had no
     * series at all); a few more room for tenants made meanwhile */
    size_t n = 0, cap = 0;
    gx_tenant_list(s->engine, NULL, 0, &cap);
    cap += 16;
    gx_tenant_info *ts = malloc(cap * sizeof *ts);
    if (ts) gx_tenant_list(s->engine, ts, cap, &n);
    if (n > cap) n = cap;
    gx_gauge_clear(m->std.queue_depth);
    gx_gauge_clear(m->tenant_running);
    for (size_t i = 0; i < n; i++) {
        gx_gauge_set(gx_metrics_series(m->std.queue_depth, ts[i].name), (double)ts[i].queued);
        gx_gauge_set(gx_metrics_series(m->tenant_running, ts[i].name), (double)ts[i].running);
        gx_counter_set(gx_metrics_series(m->tenant_usage, ts[i].name), ts[i].device_s);
        gx_gauge_set(gx_metrics_series(m->tenant_mem, ts[i].name), (double)ts[i].mem_used);
        for (size_t q = 0; q < gx__svc_quota_count(); q++) {
            const char *qn;
            double lim, use;
            gx__svc_quota_value(&ts[i], q, &qn, &lim, &use);
            gx_gauge_set(gx_metrics_series(m->quota_limit, ts[i].name, qn), lim);
            gx_gauge_set(gx_metrics_series(m->quota_usage, ts[i].name, qn), use);
        }
    }
    free(ts);
    gx_counter_set(gx_metrics_series(m->restarts, "device_lost"), (double)s->restarts_total);
    for (int i = 0; i < gx_device_count(s->engine); i++) {
        gx_device_info d;
        if (gx_device_get(s->engine, i, &d)) continue;
        gx_gauge_set(gx_metrics_series(m->dev_mem, d.name), (double)d.mem_used);
        gx_gauge_set(gx_metrics_series(m->dev_running, d.name), (double)d.running);
        gx_gauge_set(gx_metrics_series(m->dev_queued, d.name), (double)d.queued);
        gx_gauge_set(gx_metrics_series(m->dev_healthy, d.name), d.healthy);
        gx_counter_set(gx_metrics_series(m->dev_busy, d.name), d.busy_s);
        gx_counter_set(gx_metrics_series(m->dev_jobs, d.name), (double)d.jobs_done);
        gx_counter_set(gx_metrics_series(m->dev_recoveries, d.name), (double)d.recoveries);
        gx_gauge_set(gx_metrics_series(m->dev_recovery_s, d.name), d.last_recovery_s);
        gx_gauge_set(gx_metrics_series(m->dev_recovering, d.name), d.recovering);
        gx_gauge_set(gx_metrics_series(m->dev_drained, d.name), d.drained);
        gx_device_telemetry t;
        if (gx_device_telemetry_get(s->engine, i, &t)) continue;
#define TEL(fam, v) if ((v) >= 0) gx_gauge_set(gx_metrics_series(m->fam, d.name), (double)(v))
        TEL(gpu_util, t.util_pct / 100.0);
        TEL(gpu_mem_used, t.mem_used);
        TEL(gpu_mem_total, t.mem_total);
        TEL(gpu_temp, t.temp_c);
        TEL(gpu_power, t.power_w);
        TEL(gpu_sm_clock, t.sm_clock_mhz * 1e6);
        TEL(gpu_xid, t.xid_last);
#undef TEL
        if (t.ecc_corrected >= 0) gx_counter_set(gx_metrics_series(m->gpu_ecc, d.name, "corrected"), (double)t.ecc_corrected);
        if (t.ecc_uncorrected >= 0)
            gx_counter_set(gx_metrics_series(m->gpu_ecc, d.name, "uncorrected"), (double)t.ecc_uncorrected);
    }
    collect_circuits(s, m);
    gx_gauge_set(gx_metrics_series(m->uptime), (double)(gx__wall_ns() - s->start_ns) / 1e9);
    gx_store_stats sst;
    gx_store_stats_get(s->store, &sst);
    gx_counter_set(gx_metrics_series(m->store_failed), (double)sst.failed_commits);
    gx_counter_set(gx_metrics_series(m->store_tx), (double)sst.commits);
    gx_counter_set(gx_metrics_series(m->store_rows), (double)sst.rows);
    gx_counter_set(gx_metrics_series(m->purged, "job"), (double)atomic_load(&s->purged_jobs));
    gx_counter_set(gx_metrics_series(m->purged, "blob"), (double)atomic_load(&s->purged_blobs));
    gx_counter_set(gx_metrics_series(m->faults_injected), (double)gx_fault_fired_total());
    int64_t ck_written = 0, ck_dropped = 0;
    gx__svc_ckpt_counts(s, &ck_written, &ck_dropped);
    gx_counter_set(gx_metrics_series(m->checkpoints, "stored"), (double)ck_written);
    gx_counter_set(gx_metrics_series(m->checkpoints, "dropped"), (double)ck_dropped);
    int64_t replayed, resets[GX__RESET_COUNT];
    gx__svc_events_counts(s, &replayed, resets);
    gx_counter_set(gx_metrics_series(m->stream_replayed), (double)replayed);
    for (int i = 0; i < GX__RESET_COUNT; i++)
        gx_counter_set(gx_metrics_series(m->stream_resets, gx__svc_reset_name(i)), (double)resets[i]);
    if (s->audit) {
        gx_audit_stats ast;
        gx_audit_stats_get(s->audit, &ast);
        gx_gauge_set(gx_metrics_series(m->audit_bytes), (double)ast.bytes);
        gx_gauge_set(gx_metrics_series(m->audit_files), (double)ast.files);
        gx_counter_set(gx_metrics_series(m->audit_rotations, "done"), (double)ast.rotations);
        gx_counter_set(gx_metrics_series(m->audit_rotations, "failed"), (double)ast.rotate_failures);
    }
}

int gx__svc_metrics_init(gx_service *s) {
    struct gx_svc_metrics *m = calloc(1, sizeof *m);
    if (!m) return GX_ENOMEM;
    s->m = m;
    gx_error err;
    int rc = gx_metrics_new(&m->reg);
    if (!rc) rc = gx_metrics_std_register(m->reg, &m->std, &err);
    if (!rc) rc = gx_metrics_process_collector(m->reg, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_memory_used_bytes", "Device memory reserved by placed and running jobs.", "device", &m->dev_mem, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_jobs_running", "Jobs running on a device.", "device", &m->dev_running, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_jobs_queued", "Jobs placed on a device, not yet started.", "device", &m->dev_queued, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_healthy", "1 when the device takes jobs.", "device", &m->dev_healthy, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_device_busy_seconds_total", "Device-seconds of work done.", "device", &m->dev_busy, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_device_jobs_total", "Jobs a device finished.", "device", &m->dev_jobs, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_device_recoveries_total", "Times a device was reset and re-admitted after a fault.", "device", &m->dev_recoveries, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_recovery_seconds", "Fault to healthy again, of the last recovery (0 before the first).", "device", &m->dev_recovery_s, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_restarts_total", "Times gexecd re-executed itself (reason device_lost: a device it could not recover in-process).", "reason", &m->restarts, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_drained", "1 while an operator has drained the device (no new placements).", "device", &m->dev_drained, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_device_recovering", "1 while the device is drained and reset after a fault.", "device", &m->dev_recovering, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_tenant_jobs_running", "Jobs of a tenant placed or running.", "tenant", &m->tenant_running, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_tenant_device_seconds_total", "Device-seconds used by a tenant.", "tenant", &m->tenant_usage, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_uptime_seconds", "Seconds since gexecd started.", NULL, &m->uptime, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_tenant_device_memory_bytes", "Device memory reserved by a tenant's placed and running jobs.", "tenant", &m->tenant_mem, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_utilization_ratio", "GPU compute utilisation (NVML), 0..1.", "device", &m->gpu_util, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_memory_used_bytes", "GPU memory in use by every process (NVML).", "device", &m->gpu_mem_used, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_memory_total_bytes", "GPU memory in all (NVML).", "device", &m->gpu_mem_total, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_temperature_celsius", "GPU temperature (NVML).", "device", &m->gpu_temp, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_power_watts", "GPU power draw (NVML).", "device", &m->gpu_power, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_sm_clock_hertz", "GPU SM clock (NVML).", "device", &m->gpu_sm_clock, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_gpu_last_xid", "Last Xid error reported for the GPU, 0 if none.", "device", &m->gpu_xid, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_gpu_ecc_errors_total", "ECC errors counted by the GPU (NVML).", "device,kind", &m->gpu_ecc, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_tenant_quota_limit", "A tenant's quota (jobs, bytes or device-seconds per hour; 0 = no limit).", "tenant,quota", &m->quota_limit, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_tenant_quota_usage", "A tenant's usage against its quota, in the quota's unit.", "tenant,quota", &m->quota_usage, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_store_failed_commits_total", "Group commits the store rolled back (I/O error, full disk, injected fault).", NULL, &m->store_failed, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_store_transactions_total", "Transactions the store committed (each one fsync'd); every waiting write of the moment shares one.", NULL, &m->store_tx, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_store_rows_written_total", "Rows written by committed transactions: jobs inserted or updated, tenants, blobs.", NULL, &m->store_rows, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_store_purged_total", "Finished jobs and unused blobs deleted by store.retention.", "kind", &m->purged, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_faults_injected_total", "Faults injected on purpose (faults.enabled) that fired.", NULL, &m->faults_injected, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_checkpoints_total", "Job checkpoints written to the store, or dropped after a failed write.", "result", &m->checkpoints, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.", "kind,name", &m->circuit_state, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_circuit_transitions_total", "Circuit breaker state changes.", "kind,name", &m->circuit_moves, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_event_stream_replayed_total", "Events that event streams sent from the replay buffer: after a reconnect with Last-Event-ID or after=, or to a client that fell behind its buffer.", NULL, &m->stream_replayed, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_event_stream_resets_total", "Reset events sent to event streams that could not go on from where they were (reason: malformed, other_run, unknown, too_old, lagged).", "reason", &m->stream_resets, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_audit_bytes", "Bytes of the audit log on disk: audit.log and the rotated files kept.", NULL, &m->audit_bytes, &err);
    if (!rc) rc = gx_metrics_gauge(m->reg, "gexec_audit_files", "Files of the audit log on disk: audit.log and the rotated files kept.", NULL, &m->audit_files, &err);
    if (!rc) rc = gx_metrics_counter(m->reg, "gexec_audit_rotations_total", "Audit log rotations since start (result: done, or failed and tried again at the next record).", "result", &m->audit_rotations, &err);
    if (!rc)
        rc = gx_metrics_histogram(m->reg, "gexec_store_commit_wait_seconds",
                                  "Time a submission waited for its jobs to be committed (the transaction in progress "
                                  "included), in seconds.",
                                  NULL, NULL, 0, &m->commit_wait, &err);
    if (!rc) rc = gx_metrics_on_collect(m->reg, collect, s);
    if (!rc) atomic_store_explicit(&s->m_live, 1, memory_order_release);
    return rc;
}

void gx__svc_metrics_free(gx_service *s) {
    if (!s->m) return;
    atomic_store(&s->m_live, 0);
    gx_metrics_free(s->m->reg);
    free(s->m);
    s->m = NULL;
}

int gx__svc_metrics_render(gx_service *s, char **buf, size_t *len) {
    return gx_metrics_render(s->m->reg, buf, len);
}

void gx__svc_metrics_events(gx_service *s, const gx_event *ev, size_t n) {
    struct gx_svc_metrics *m = s->m;
    if (!m) return;
    for (size_t i = 0; i < n; i++) {
        const gx_event *e = &ev[i];
        const char *k = e->kernel ? e->kernel : "";
        if (s->selftest_id && e->job == s->selftest_id) continue; /* the start-up self-test: no job of anyone's */
        if (e->state == GX_JOB_RUNNING && e->attempt == 1) /* the first attempt's wait, as the help says */
            gx_hist_observe(gx_metrics_series(m->std.queue_wait, k), (double)e->queue_ns / 1e9);
        if (gx_job_state_is_final(e->state)) {
            gx_counter_inc(gx_metrics_series(m->std.jobs_finished, gx_job_state_name(e->state), k));
            if (e->run_ns) gx_hist_observe(gx_metrics_series(m->std.run_time, k), (double)e->run_ns / 1e9);
        } else if (e->state == GX_JOB_RETRYING && e->run_ns) { /* an attempt that failed ran too */
            gx_hist_observe(gx_metrics_series(m->std.run_time, k), (double)e->run_ns / 1e9);
        }
    }
}

/* Jobs the engine took from an admission, by kernel (counted here, where
 * they are accepted, not from their first event: a dependent's first
 * events are waiting and then queued, and a restored job's are not sent). */
void gx__svc_metrics_submitted(gx_service *s, const gx_job_spec *specs, const int *codes, size_t n) {
    if (!s->m) return;
    for (size_t i = 0; i < n;) {
        if (codes[i]) {
            i++;
            continue;
        }
        const gx_kernel *k = gx_kernel_find(specs[i].kernel);
        size_t run = 1; /* a batch is mostly of one kernel: one series lookup per run */
        while (i + run < n && !codes[i + run] && specs[i + run].kernel == specs[i].kernel) run++;
        gx_counter_add(gx_metrics_series(s->m->std.jobs_submitted, k ? k->name : specs[i].kernel), (double)run);
        i += run;
    }
}

void gx__svc_metrics_commit(gx_service *s, size_t jobs, double seconds) {
    if (!s->m || !jobs) return;
    gx_hist_observe(gx_metrics_series(s->m->commit_wait), seconds);
}

/* The store's committer, after each transaction (gx_store_config.on_commit):
 * nothing until the metrics exist (the store opens first). */
void gx__svc_on_commit(void *ctx, size_t rows, double seconds) {
    gx_service *s = ctx;
    if (!atomic_load_explicit(&s->m_live, memory_order_acquire)) return;
    gx_hist_observe(gx_metrics_series(s->m->std.store_commit), seconds);
    gx_hist_observe(gx_metrics_series(s->m->std.store_batch), (double)rows);
}

void gx__svc_http_done(void *app, const gx_http_req *r, double seconds) {
    gx_service *s = app;
    gx__svc_audit_done(s, r);
    int lvl = r->status >= 500 ? GX_LOG_WARN : GX_LOG_DEBUG;
    if (gx_log_enabled(lvl))
        gx_log(lvl, r->request_id, "%s %s %d %.3f ms tenant=%s from=%s", r->method, r->path, r->status, seconds * 1e3,
               r->ctx.tenant, r->remote);
    if (!s->m) return;
    const char *route = r->route_label ? r->route_label : "unmatched";
    char status[8];
    snprintf(status, sizeof status, "%d", r->status);
    gx_counter_inc(gx_metrics_series(s->m->std.http_requests, route, status));
    gx_hist_observe(gx_metrics_series(s->m->std.http_latency, route), seconds);
}
