/*
 * retention.c - store.retention: a thread that deletes what the store no
 * longer needs to keep.
 *
 * A second after the start, then every retention / 8 (at least 1 s, at
 * most 1 min), it asks the store
 * (gx_store_purge) to delete finished jobs that ended more than retention
 * ago, a few thousand per transaction so that submissions queued behind
 * it wait milliseconds, not seconds; and blobs in two steps: a blob that
 * nobody uploaded or named in a job for retention and that no unfinished
 * job names is doomed, and deleted (row, then file) one period later
 * unless it was used in between. A submission that read a blob just
 * before it went is refused by the store at its commit (GX_ENOTFOUND),
 * never stored naming bytes that are gone. Each cycle also sweeps a few
 * of the blob folders for files no row names (a crash between a file and
 * its row), an hour old or more; with no retention (0) the thread does
 * only that, once a minute.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "service.h"

/* Jobs deleted per transaction. */
#define RETAIN_CHUNK 2000
/* Blob folders swept for orphan files per cycle, and how old such a file
 * must be (an upload's file comes moments before its row). */
#define SWEEP_SHARDS 4
#define SWEEP_AGE_S 3600

/* retention / 8; with no retention (0: keep everything) the thread only
 * sweeps, once a minute. */
static int64_t period_ms(int64_t keep_ms) {
    int64_t p = keep_ms > 0 ? keep_ms / 8 : 60000;
    return p < 1000 ? 1000 : p > 60000 ? 60000 : p;
}

static int stopping(gx_service *s) {
    pthread_mutex_lock(&s->rmu);
    int stop = s->retain_stop;
    pthread_mutex_unlock(&s->rmu);
    return stop;
}

static void cycle(gx_service *s, int64_t keep_ms, int64_t every_ms) {
    int64_t now = gx__wall_ns(), cut = now - keep_ms * 1000000;
    gx_store_purge_result r = {0};
    int64_t jobs = 0, doomed = 0, deleted = 0;
    for (int first = 1; keep_ms > 0 && cut > 0; first = 0) {
        gx_error err;
        /* blobs once per cycle: those doomed at least half a period ago
         * go, then the unused ones are doomed */
        int rc = gx_store_purge(s->store, cut, RETAIN_CHUNK, first ? cut : 0,
                                first ? now - every_ms * 500000 : 0, &r, &err);
        if (rc) {
            if (rc != GX_ECLOSED) GX_LOGW("retention: %s", err.message);
            break;
        }
        jobs += r.jobs;
        doomed += r.blobs_doomed;
        deleted += r.blobs_deleted;
        atomic_fetch_add(&s->purged_jobs, r.jobs);
        atomic_fetch_add(&s->purged_blobs, r.blobs_deleted);
        if (!r.more || stopping(s)) break;
    }
    if (jobs || doomed || deleted)
        GX_LOGI("retention: deleted %lld finished jobs and %lld blobs; %lld unused blobs go next time",
                (long long)jobs, (long long)deleted, (long long)doomed);
    /* files no row names (a crash between a file and its row), a few of
     * the 256 blob folders per cycle: all of them every 64 cycles */
    static unsigned shard;
    int64_t swept = 0;
    for (int i = 0; i < SWEEP_SHARDS && !stopping(s); i++, shard = (shard + 1) % 256) {
        int64_t k = 0;
        gx_error err;
        if (gx_store_blob_sweep(s->store, shard, SWEEP_AGE_S, &k, &err)) GX_LOGW("retention: %s", err.message);
        swept += k;
    }
    if (swept) GX_LOGI("retention: removed %lld blob files no blob names (left by a crash)", (long long)swept);
}

static void *retainer_main(void *arg) {
    gx_service *s = arg;
    pthread_setname_np(pthread_self(), "gx-retain");
    int64_t keep_ms = s->cfg.store.retention_ms, every_ms = period_ms(keep_ms);
    /* the first check a second after the start (a restart catches up at
     * once), then one a period */
    for (int64_t wait_ms = 1000;; wait_ms = every_ms) {
        pthread_mutex_lock(&s->rmu);
        struct timespec dl = gx__realtime_in(wait_ms * 1000000);
        while (!s->retain_stop && pthread_cond_timedwait(&s->rcv, &s->rmu, &dl) != ETIMEDOUT) {
        }
        int stop = s->retain_stop;
        pthread_mutex_unlock(&s->rmu);
        if (stop) break;
        cycle(s, keep_ms, every_ms);
    }
    return NULL;
}

int gx__svc_retention_start(gx_service *s) {
    pthread_mutex_init(&s->rmu, NULL);
    pthread_cond_init(&s->rcv, NULL);
    s->retain_stop = 0;
    if (pthread_create(&s->retainer, NULL, retainer_main, s)) return GX_ENOMEM;
    s->retain_started = 1;
    return 0;
}

void gx__svc_retention_stop(gx_service *s) {
    if (!s->retain_started) return;
    pthread_mutex_lock(&s->rmu);
    s->retain_stop = 1;
    pthread_cond_broadcast(&s->rcv);
    pthread_mutex_unlock(&s->rmu);
    pthread_join(s->retainer, NULL);
    s->retain_started = 0;
}
