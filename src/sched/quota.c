/*
 * quota.c - per-tenant quotas: max queued jobs, max running jobs, max device
 * memory in use, device-seconds per hour.
 *
 * Two kinds, enforced in two places:
 *  - rates and counts that refuse a submission (max_queued, device-seconds
 *    per hour) are checked by gx_tenant_admit before the caller commits the
 *    jobs anywhere; an admission reserves its jobs so that concurrent
 *    admissions cannot both slip under the limit. gx_submit itself never
 *    refuses on these: jobs restored after a restart were accepted once.
 *  - limits that make a job wait (max_running, max device memory) are
 *    applied by dispatch (src/sched/sched.c) and explained by gx_job_get.
 *
 * Device time of the trailing hour lives in a ring of buckets per tenant
 * (GX__HOUR_RING of GX__HOUR_BUCKET_NS), charged when an attempt ends. A
 * bucket counts until a whole hour has passed since its end, so usage is
 * never under-reported and Retry-After is never too early (it may be up
 * to one bucket late).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "exec/engine_int.h"

static int64_t bucket_of(int64_t now) { return now / GX__HOUR_BUCKET_NS; }

void gx__quota_charge(gx__tenant *t, double seconds, int64_t now) {
    int64_t k = bucket_of(now);
    if (k > t->hour_last) {
        int64_t from = t->hour_last + 1;
        if (k - from >= GX__HOUR_RING) from = k - GX__HOUR_RING + 1;
        for (int64_t i = from; i <= k; i++) t->hour[i % GX__HOUR_RING] = 0;
        t->hour_last = k;
    }
    /* a charge for an earlier moment (clock read before a newer charge)
     * goes to the newest bucket: later is the conservative side */
    if (seconds > 0) t->hour[t->hour_last % GX__HOUR_RING] += seconds;
}

/* Oldest bucket index still counted at now: the one the hour before now
 * began in. */
static int64_t oldest(int64_t now) { return bucket_of(now) - GX__HOUR_BUCKETS; }

/* The tenant named name with e->mu held, or NULL (and e->mu not held). */
static gx__tenant *locked_tenant(gx_engine *e, const char *name) {
    pthread_mutex_lock(&e->mu);
    uint64_t tid;
    if (gx__hmap_get(&e->tenant_ix, name, strlen(name), &tid)) return &e->tenants[tid];
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int gx_tenant_hour_export(gx_engine *e, const char *tenant, gx_usage_slice *out, size_t cap, size_t *n) {
    *n = 0;
    if (!e || !tenant) return GX_EINVAL;
    const gx__tenant *t = locked_tenant(e, tenant);
    if (!t) return GX_ENOTFOUND;
    int64_t now = gx__quota_now();
    for (int64_t i = t->hour_last; i >= oldest(now) && i >= 0 && *n < cap; i--) {
        double sec = t->hour[i % GX__HOUR_RING];
        if (sec <= 0) continue;
        /* the bucket's end: its charges are never later than that */
        int64_t age = now - (i + 1) * GX__HOUR_BUCKET_NS;
        out[(*n)++] = (gx_usage_slice){age > 0 ? age : 0, sec};
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int gx_tenant_hour_import(gx_engine *e, const char *tenant, const gx_usage_slice *in, size_t n) {
    if (!e || !tenant || (!in && n)) return GX_EINVAL;
    gx__tenant *t = locked_tenant(e, tenant);
    if (!t) return GX_ENOTFOUND;
    int64_t now = gx__quota_now();
    gx__quota_charge(t, 0, now); /* the ring up to now */
    for (size_t k = 0; k < n; k++) {
        if (!(in[k].seconds > 0) || in[k].age_ns < 0) continue;
        /* the slice counts in the bucket holding its end: an hour after
         * that bucket ends it leaves the window, never earlier than it would
         * have without the restart */
        int64_t b = bucket_of(now - in[k].age_ns);
        if (b < oldest(now) || b < 0 || b > t->hour_last || t->hour_last - b >= GX__HOUR_RING) continue;
        t->hour[b % GX__HOUR_RING] += in[k].seconds;
    }
    pthread_mutex_unlock(&e->mu);
    return 0;
}

double gx__quota_hour_s(const gx__tenant *t, int64_t now) {
    double sum = 0;
    for (int64_t i = oldest(now); i <= t->hour_last; i++)
        if (i >= 0) sum += t->hour[i % GX__HOUR_RING];
    return sum;
}

/* Seconds from now until the trailing-hour usage is under limit. */
static double hour_retry_s(const gx__tenant *t, double limit, int64_t now) {
    double usage = gx__quota_hour_s(t, now);
    for (int64_t i = oldest(now); i <= t->hour_last; i++) {
        if (i >= 0) usage -= t->hour[i % GX__HOUR_RING];
        if (usage < limit) {
            /* bucket i leaves the window an hour after it ends */
            int64_t at = (i + 1 + GX__HOUR_BUCKETS) * GX__HOUR_BUCKET_NS;
            double s = (double)(at - now) / 1e9;
            return s > 1 ? s : 1;
        }
    }
    return (double)GX__HOUR_RING * GX__HOUR_BUCKET_NS / 1e9;
}

int gx__quota_mem_over(const gx__tenant *t, uint64_t mem) {
    return t->max_mem && t->mem_used + mem > t->max_mem;
}

void gx__fmt_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        snprintf(buf, cap, "%llu B", (unsigned long long)b);
        return;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) v /= 1024, u++;
    snprintf(buf, cap, "%.3g %s", v, unit[u]);
}

int gx_tenant_admit(gx_engine *e, const char *tenant, int64_t n, gx_quota_refusal *why, gx_error *err) {
    if (why) memset(why, 0, sizeof *why);
    if (!e || !tenant || n < 0) return gx_error_set(err, GX_EINVAL, NULL, "engine, tenant and n >= 0 are required");
    gx__tenant *t = locked_tenant(e, tenant);
    if (!t) return gx_error_set(err, GX_ENOTFOUND, "tenant", "unknown tenant '%.64s'", tenant);
    int64_t now = gx__quota_now();
    gx_quota_refusal q;
    memset(&q, 0, sizeof q);
    int rc = 0;
    if (t->max_queued > 0 && t->queued + t->reserved + n > t->max_queued) {
        snprintf(q.quota, sizeof q.quota, "max_queued");
        q.limit = (double)t->max_queued;
        q.usage = (double)(t->queued + t->reserved);
        rc = gx_error_set(err, GX_EQUOTA, NULL,
                          "tenant %s is at its max_queued quota: %lld of %lld jobs queued, %lld more would exceed it",
                          t->name, (long long)(t->queued + t->reserved), (long long)t->max_queued, (long long)n);
    } else if (t->max_dev_s_hour > 0 && n > 0) {
        double used = gx__quota_hour_s(t, now);
        if (used >= t->max_dev_s_hour) {
            snprintf(q.quota, sizeof q.quota, "device_seconds_per_hour");
            q.limit = t->max_dev_s_hour;
            q.usage = used;
            q.retry_after_s = ceil(hour_retry_s(t, t->max_dev_s_hour, now));
            rc = gx_error_set(err, GX_EQUOTA, NULL,
                              "tenant %s is at its device_seconds_per_hour quota: %.3f of %g device-seconds used in "
                              "the last hour; retry after %.0f s",
                              t->name, used, t->max_dev_s_hour, q.retry_after_s);
        }
    }
    if (!rc) t->reserved += n;
    pthread_mutex_unlock(&e->mu);
    if (why) *why = q;
    return rc;
}

void gx_tenant_admit_release(gx_engine *e, const char *tenant, int64_t n) {
    if (!e || !tenant || n <= 0) return;
    gx__tenant *t = locked_tenant(e, tenant);
    if (!t) return;
    t->reserved -= n;
    if (t->reserved < 0) t->reserved = 0;
    pthread_mutex_unlock(&e->mu);
}
