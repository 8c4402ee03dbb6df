/*
 * store.c - the store front: backend choice, argument checks, the group
 * commit queue and its committer thread, statistics, and the blob calls.
 *
 * Every write becomes a request on a FIFO queue. A caller that waits keeps
 * its request on its own stack and sleeps on its own condition variable; a
 * caller that does not wait (update_jobs with wait = 0) hands over a heap
 * copy. The committer takes a prefix of the queue (at least one request, up
 * to max_batch rows), gives it to the backend's write_group as one
 * transaction, then marks every request done with the group's result. This
 * is backend-neutral: a PostgreSQL backend gets the same grouping.
 *
 * Job inserts have a queue of their own that the committer serves first: a
 * client waits for them (a submission is answered only once committed),
 * while the state changes queued before them are nobody's wait. An insert
 * creates new rows, so no queued write concerns its job and moving it ahead
 * changes no outcome; no other write ever passes an older insert (requests
 * carry their queueing order), so every other write is still committed
 * after everything queued before it. Inserts go first only while the other
 * queue holds at most DEFERRED_MAX_FACTOR * max_batch rows; beyond that the
 * queues are served in queueing order, so state changes never fall behind
 * without bound and sustained submission is paced by everything the store
 * must write.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "clock.h"
#include "log.h"
#include "fsdir.h"
#include "store_int.h"

#define DEFAULT_MAX_BATCH 10000
#define DEFERRED_MAX_FACTOR 4
/* State changes wait up to RIDE_WAIT_NS for an insert to share their
 * commit, while inserts came in the last RIDE_RECENT_NS. */
#define RIDE_WAIT_NS 500000
#define RIDE_RECENT_NS 5000000
#define MAX_KERNEL_LEN 127
#define MAX_IDEM_LEN 255

const double gx_store_lat_bounds_s[GX_STORE_LAT_BUCKETS] = {
    100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, INFINITY};

/* One queued write. */
typedef struct req {
    gx_store_write w;
    size_t rows;       /* weight against max_batch (>= 1) */
    int wait;          /* 1: a caller sleeps on cv; 0: heap copy, freed by the committer */
    gx_store_done_fn cb; /* not waiting: called after the commit (inserts) */
    void *cb_ctx;
    int done;          /* set by the committer under s->mu */
    int rc;            /* the group's result */
    gx_error err;      /* the group's error when rc != 0 */
    pthread_cond_t cv; /* waiting requests only */
    uint64_t seq;      /* queueing order */
    struct req *next;
} req;

/* A blob file checked against its id is not hashed again for this long
 * while it is the same file (device, inode, size, modification and change
 * times): a download or a job input reads it without a second pass, and a
 * flood of downloads of a large blob costs one hash per interval. Damage
 * that changes none of those (bits rotting on the disk) shows at the next
 * check after the interval. Direct-mapped by the id's first hex digits. */
#define VCACHE_SLOTS 1024
#define VCACHE_TTL_NS (600 * (int64_t)1000000000)

struct gx_store {
    const gx_store_ops *ops; /* &ops_copy */
    gx_store_ops ops_copy;
    gx_store_backend *b;
    char *blob_dir;
    int max_batch;
    int commit_delay_us;
    void (*on_commit)(void *ctx, size_t rows, double seconds);
    void *on_commit_ctx;
    void (*after_callbacks)(void *ctx);
    void *after_callbacks_ctx;

    pthread_mutex_t mu;
    pthread_cond_t q_cv;  /* committer: work queued or stopping */
    req *head, *tail;     /* every write but job inserts, FIFO */
    req *ihead, *itail;   /* job inserts, FIFO, served first (see above) */
    uint64_t other_rows;  /* rows queued on head..tail */
    uint64_t seq;         /* requests queued so far */
    int stopping;
    int64_t last_insert_ns; /* when an insert last led a group */
    pthread_t committer;
    req **group;          /* committer's scratch: max_batch + 1 requests */
    gx_store_write **ws;  /* and their writes */

    gx_store_stats st;    /* under mu */
    uint64_t async_failed; /* non-waiting updates lost since the last flush */
    char async_msg[256];   /* message of the latest such failure */

    /* uploads hold it shared from their look at the folder to their row's
     * commit; gx_store_purge holds it exclusively from its commit to the
     * last file removed, so a file is never removed under a row that an
     * upload (which found the file there and did not write it) brings
     * back */
    pthread_rwlock_t blob_rw;

    /* blobs whose bytes were checked against their id lately (vmu) */
    pthread_mutex_t vmu;
    struct vslot {
        char id[GX_STORE_BLOB_ID_LEN];
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtim, ctim;
        int64_t at; /* monotonic ns of the check */
    } vcache[VCACHE_SLOTS];
};

/* ---- small helpers -------------------------------------------------------- */

void gx_store_config_init(gx_store_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->backend = "sqlite";
    cfg->synchronous = "full";
}

void gx_store_free(void *p) { free(p); }

const char *gx_store_backend_name(const gx_store *s) { return s->ops->name; }

int gx_store_blob_id_valid(const char *id) {
    if (!id || strncmp(id, "sha256:", 7) != 0) return 0;
    const char *h = id + 7;
    for (int i = 0; i < 64; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return 0;
    return h[64] == '\0';
}

static int state_ok(int st) { return st >= 0 && st < GX_JOB_STATE_COUNT; }

/* ---- result builder ------------------------------------------------------- */

void gx__rb_init(gx__rb *b, size_t item_size) {
    memset(b, 0, sizeof *b);
    b->isz = item_size;
}

void *gx__rb_add(gx__rb *b) {
    if (b->oom) return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        char *p = realloc(b->items, cap * b->isz);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->items = p;
        b->cap = cap;
    }
    void *slot = b->items + b->n++ * b->isz;
    memset(slot, 0, b->isz);
    return slot;
}

const char *gx__rb_str(gx__rb *b, const char *s, size_t len) {
    if (!s || b->oom) return NULL;
    if (b->slen + len + 1 > b->scap) {
        size_t cap = b->scap ? b->scap : 256;
        while (cap < b->slen + len + 1) cap *= 2;
        char *p = realloc(b->strs, cap);
        if (!p) {
            b->oom = 1;
            return NULL;
        }
        b->strs = p;
        b->scap = cap;
    }
    size_t off = b->slen;
    memcpy(b->strs + off, s, len);
    b->strs[off + len] = '\0';
    b->slen += len + 1;
    return (const char *)(uintptr_t)(off + 1);
}

void gx__rb_free(gx__rb *b) {
    free(b->items);
    free(b->strs);
    memset(b, 0, sizeof *b);
}

int gx__rb_finish(gx__rb *b, void **out, size_t *n, void (*fix)(void *item, char *strs)) {
    *out = NULL;
    *n = 0;
    if (b->oom) {
        gx__rb_free(b);
        return GX_ENOMEM;
    }
    if (b->n == 0) {
        gx__rb_free(b);
        return 0;
    }
    size_t isz = b->n * b->isz;
    char *blk = malloc(isz + b->slen + 1);
    if (!blk) {
        gx__rb_free(b);
        return GX_ENOMEM;
    }
    memcpy(blk, b->items, isz);
    if (b->slen) memcpy(blk + isz, b->strs, b->slen);
    for (size_t i = 0; i < b->n; i++) fix(blk + i * b->isz, blk + isz);
    *out = blk;
    *n = b->n;
    gx__rb_free(b);
    return 0;
}

void gx__fix_job(void *item, char *strs) {
    gx_store_job *j = item;
    j->tenant = gx__rb_ptr(j->tenant, strs);
    j->kernel = gx__rb_ptr(j->kernel, strs);
    j->spec_json = gx__rb_ptr(j->spec_json, strs);
    j->error = gx__rb_ptr(j->error, strs);
    j->idempotency_key = gx__rb_ptr(j->idempotency_key, strs);
    j->labels_json = gx__rb_ptr(j->labels_json, strs);
    j->result_json = gx__rb_ptr(j->result_json, strs);
}

void gx__fix_event(void *item, char *strs) {
    gx_store_event *e = item;
    e->error = gx__rb_ptr(e->error, strs);
}

void gx__fix_tenant(void *item, char *strs) {
    gx_store_tenant *t = item;
    t->name = gx__rb_ptr(t->name, strs);
    t->quotas_json = gx__rb_ptr(t->quotas_json, strs);
}

/* ---- committer ------------------------------------------------------------ */

static void stats_commit_locked(gx_store *s, size_t k, size_t rows, int rc, double secs) {
    if (rc) {
        s->st.failed_commits++;
        s->st.failing_commits++;
        return;
    }
    s->st.failing_commits = 0;
    s->st.commits++;
    s->st.rows += rows;
    s->st.requests += k;
    if (rows > s->st.max_rows_per_commit) s->st.max_rows_per_commit = rows;
    s->st.commit_seconds_sum += secs;
    int i = 0;
    while (i < GX_STORE_LAT_BUCKETS - 1 && secs > gx_store_lat_bounds_s[i]) i++;
    s->st.commit_latency[i]++;
}

/* Rows a request writes, for statistics (NOPs write none). */
static size_t req_rows_written(const req *r) {
    switch (r->w.kind) {
    case GX_STORE_W_INSERT: {
        size_t m = 0;
        for (size_t i = 0; i < r->w.u.insert.n; i++) m += r->w.u.insert.res[i].code == 0;
        return m;
    }
    case GX_STORE_W_UPDATE:
        if (!r->w.u.update.codes) return r->w.u.update.n;
        {
            size_t m = 0;
            for (size_t i = 0; i < r->w.u.update.n; i++) m += r->w.u.update.codes[i] == 0;
            return m;
        }
    case GX_STORE_W_TENANT:
    case GX_STORE_W_BLOB:
        return 1;
    case GX_STORE_W_SETTING:
        return r->w.u.setting.n;
    case GX_STORE_W_REQUEUE:
        return (size_t)r->w.u.requeue.count;
    case GX_STORE_W_CHECKPOINT:
        return (size_t)r->w.u.checkpoint.stored;
    default:
        return 0;
    }
}

/* An async insert's result, as gx_store_insert_jobs would return it, to
 * its callback; gerr: the group's error when it failed. */
static void insert_done(req *r, const gx_error *gerr) {
    gx_store_insert_result *res = r->w.u.insert.res;
    size_t n = r->w.u.insert.n;
    int64_t rc = 0;
    if (r->rc) {
        for (size_t i = 0; i < n; i++) res[i].code = r->rc, res[i].job_id = 0;
        rc = r->rc;
    } else {
        for (size_t i = 0; i < n; i++) rc += res[i].code == 0;
    }
    r->cb(r->cb_ctx, rc, gerr);
}

static void *committer_main(void *arg) {
    gx_store *s = arg;
    pthread_setname_np(pthread_self(), "gx-commit");
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->ihead && !s->stopping) pthread_cond_wait(&s->q_cv, &s->mu);
        if (!s->head && !s->ihead) break; /* stopping, queues drained */
        if (s->commit_delay_us > 0 && !s->stopping &&
            s->st.queued_rows < (uint64_t)s->max_batch) {
            struct timespec dl = gx__realtime_in((int64_t)s->commit_delay_us * 1000);
            while (!s->stopping && s->st.queued_rows < (uint64_t)s->max_batch)
                if (pthread_cond_timedwait(&s->q_cv, &s->mu, &dl) == ETIMEDOUT) break;
        }
        /* Only state changes queued while submissions are flowing: wait a
         * moment for the next insert and commit both with one fsync (a
         * quarter of all transactions were such update-only ones under
         * single submits, each a whole fsync of its own). Inserts were
         * flowing if one led a group in the last RIDE_RECENT_NS. */
        if (!s->ihead && s->head && !s->stopping && s->other_rows < (uint64_t)s->max_batch &&
            gx__now_ns() - s->last_insert_ns < RIDE_RECENT_NS) {
            struct timespec dl = gx__realtime_in(RIDE_WAIT_NS);
            while (!s->ihead && !s->stopping && s->other_rows < (uint64_t)s->max_batch)
                if (pthread_cond_timedwait(&s->q_cv, &s->mu, &dl) == ETIMEDOUT) break;
        }
        /* Take a prefix of one queue: at least one request, then while it
         * fits. Inserts first unless the other queue is too far behind. */
        int ins = s->ihead && (!s->head || s->head->seq > s->ihead->seq ||
                               s->other_rows <= (uint64_t)s->max_batch * DEFERRED_MAX_FACTOR);
        req **qh = ins ? &s->ihead : &s->head, **qt = ins ? &s->itail : &s->tail;
        uint64_t limit = !ins && s->ihead ? s->ihead->seq : UINT64_MAX; /* never pass an older insert */
        size_t k = 0, rows = 0, nwrites = 0;
        req *r = *qh;
        while (r && r->seq < limit && (k == 0 || rows + r->rows <= (size_t)s->max_batch)) {
            s->group[k] = r;
            s->ws[k] = &r->w;
            nwrites += r->w.kind != GX_STORE_W_NOP;
            rows += r->rows;
            k++;
            r = r->next;
        }
        *qh = r;
        if (!r) *qt = NULL;
        if (ins) s->last_insert_ns = gx__now_ns();
        s->st.queued_rows -= rows;
        if (!ins) s->other_rows -= rows;
        /* An insert-led group also takes the other queue's oldest writes
         * (after the inserts in the same transaction: one fsync for both),
         * as long as they add little to the inserts' commit: at most 1,024
         * rows (a batch of 10,000 inserts is not made to wait for as many
         * state changes), and none that would pass an insert left queued;
         * the oldest one always (however large: with inserts arriving
         * without pause it would otherwise never be written, see the wait
         * for an insert above). */
        if (ins && s->head) {
            uint64_t lim = s->ihead ? s->ihead->seq : UINT64_MAX;
            size_t extra = 0, cap = 1024;
            r = s->head;
            while (r && r->seq < lim && (extra == 0 || (extra + r->rows <= cap && rows + extra + r->rows <= (size_t)s->max_batch))) {
                s->group[k] = r;
                s->ws[k] = &r->w;
                nwrites += r->w.kind != GX_STORE_W_NOP;
                extra += r->rows;
                k++;
                r = r->next;
            }
            s->head = r;
            if (!r) s->tail = NULL;
            s->st.queued_rows -= extra;
            s->other_rows -= extra;
            rows += extra;
        }
        pthread_mutex_unlock(&s->mu);

        gx_error gerr;
        gx_error_clear(&gerr);
        int rc = 0;
        int64_t t0 = gx__now_ns();
        if (nwrites) rc = s->ops->write_group(s->b, s->ws, k, &gerr);
        double secs = (double)(gx__now_ns() - t0) * 1e-9;
        if (secs > 1.0) /* a stall every waiting request felt: say so */
            GX_LOGW("store: a commit of %zu rows took %.2f s (%s)", rows, secs, rc ? gerr.message : "ok");
        size_t written = 0;
        if (rc == 0)
            for (size_t i = 0; i < k; i++) written += req_rows_written(s->group[i]);
        if (nwrites && rc == 0 && s->on_commit) s->on_commit(s->on_commit_ctx, written, secs);

        req *to_free = NULL;
        pthread_mutex_lock(&s->mu);
        if (nwrites) stats_commit_locked(s, nwrites, written, rc, secs);
        for (size_t i = 0; i < k; i++) {
            req *q = s->group[i];
            q->rc = rc;
            if (rc) q->err = gerr;
            if (q->wait) {
                q->done = 1;
                pthread_cond_signal(&q->cv);
            } else {
                if (rc && !q->cb) {
                    s->st.async_failures += q->w.u.update.n;
                    s->async_failed += q->w.u.update.n;
                    snprintf(s->async_msg, sizeof s->async_msg, "%s", gerr.message);
                }
                q->rc = rc;
                q->next = to_free;
                to_free = q;
            }
        }
        if (to_free) {
            pthread_mutex_unlock(&s->mu);
            /* in queueing order for the callbacks (to_free is reversed) */
            req *ord = NULL;
            while (to_free) {
                req *nx = to_free->next;
                to_free->next = ord;
                ord = to_free;
                to_free = nx;
            }
            while (ord) {
                req *nx = ord->next;
                if (ord->cb) insert_done(ord, ord->rc ? &gerr : NULL);
                free(ord);
                ord = nx;
            }
            if (s->after_callbacks) s->after_callbacks(s->after_callbacks_ctx);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Queue r; with r->wait, sleep until the committer is done with it. */
static int submit(gx_store *s, req *r, gx_error *err) {
    if (r->rows == 0) r->rows = 1;
    r->next = NULL;
    r->done = 0;
    r->rc = 0;
    if (r->wait) pthread_cond_init(&r->cv, NULL);
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        if (r->wait) pthread_cond_destroy(&r->cv);
        return gx_error_set(err, GX_ECLOSED, NULL, "store is closing");
    }
    r->seq = s->seq++;
    int ins = r->w.kind == GX_STORE_W_INSERT;
    req **qh = ins ? &s->ihead : &s->head, **qt = ins ? &s->itail : &s->tail;
    if (*qt)
        (*qt)->next = r;
    else
        *qh = r;
    *qt = r;
    s->st.queued_rows += r->rows;
    if (!ins) s->other_rows += r->rows;
    pthread_cond_signal(&s->q_cv);
    if (!r->wait) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    while (!r->done) pthread_cond_wait(&r->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&r->cv);
    if (r->rc && err) *err = r->err;
    return r->rc;
}

/* ---- lifecycle ------------------------------------------------------------ */

/* The methods up to check are required; those appended after it
 * (checkpoint_get, settings_get) are optional, and a backend built before
 * they were appended (a smaller struct_size) has them as NULL. */
#define OPS_REQUIRED_SIZE offsetof(gx_store_ops, checkpoint_get)

static int ops_ok(const gx_store_ops *o) {
    return o && o->abi_version == GX_STORE_ABI_VERSION && o->struct_size >= OPS_REQUIRED_SIZE &&
           o->name && o->open && o->close && o->write_group && o->get_job && o->list_jobs &&
           o->job_events && o->max_job_id && o->scan_unfinished && o->tenant_get &&
           o->tenant_list && o->blob_owned && o->check;
}

int gx_store_open_ops(const gx_store_ops *ops, const gx_store_config *cfg, gx_store **out,
                      gx_error *err) {
    gx_error_clear(err);
    if (!out) return gx_error_set(err, GX_EINVAL, "out", "out is NULL");
    *out = NULL;
    if (!cfg) return gx_error_set(err, GX_EINVAL, "config", "config is NULL");
    if (!ops_ok(ops))
        return gx_error_set(err, GX_EABI, "backend",
                            "store backend ABI mismatch (abi %u, size %u; want %u, %zu) "
                            "or a required method is missing",
                            ops ? ops->abi_version : 0, ops ? ops->struct_size : 0,
                            GX_STORE_ABI_VERSION, sizeof(gx_store_ops));
    if (cfg->max_batch < 0 || cfg->commit_delay_us < 0 || cfg->commit_delay_us > 1000000)
        return gx_error_set(err, GX_EINVAL, cfg->max_batch < 0 ? "max_batch" : "commit_delay_us",
                            "max_batch must be >= 0 and commit_delay_us in 0..1000000");
    const char *bd = cfg->blob_dir;
    char defdir[4096];
    if (!bd) {
        if (!cfg->path || !*cfg->path)
            return gx_error_set(err, GX_EINVAL, "blob_dir", "blob_dir (or path) is required");
        if ((size_t)snprintf(defdir, sizeof defdir, "%s.blobs", cfg->path) >= sizeof defdir)
            return gx_error_set(err, GX_EINVAL, "path", "path is too long");
        bd = defdir;
    }
    gx_store *s = calloc(1, sizeof *s);
    if (!s) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    /* the backend's methods as this build knows them: optional ones it
     * predates stay NULL */
    memcpy(&s->ops_copy, ops, ops->struct_size < sizeof s->ops_copy ? ops->struct_size : sizeof s->ops_copy);
    s->ops = &s->ops_copy;
    s->max_batch = cfg->max_batch ? cfg->max_batch : DEFAULT_MAX_BATCH;
    s->commit_delay_us = cfg->commit_delay_us;
    s->on_commit = cfg->on_commit;
    s->on_commit_ctx = cfg->on_commit_ctx;
    s->after_callbacks = cfg->after_callbacks;
    s->after_callbacks_ctx = cfg->after_callbacks_ctx;
    s->blob_dir = strdup(bd);
    s->group = calloc((size_t)s->max_batch + 1, sizeof *s->group);
    s->ws = calloc((size_t)s->max_batch + 1, sizeof *s->ws);
    int rc;
    if (!s->blob_dir || !s->group || !s->ws) {
        rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    rc = gx__make_dirs(s->blob_dir, "blob_dir", err);
    if (rc) goto fail;
    const char *slash = cfg->path ? strrchr(cfg->path, '/') : NULL;
    if (slash && slash != cfg->path) {
        /* the database file's folder (with blob_dir elsewhere, nothing made it) */
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - cfg->path), cfg->path);
        rc = gx__make_dirs(dir, "path", err);
        if (rc) goto fail;
    }
    rc = ops->open(cfg, &s->b, err);
    if (rc) goto fail;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->vmu, NULL);
    /* writer-preferring: a stream of uploads must not hold retention off */
    pthread_rwlockattr_t rwa;
    pthread_rwlockattr_init(&rwa);
    pthread_rwlockattr_setkind_np(&rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->blob_rw, &rwa);
    pthread_rwlockattr_destroy(&rwa);
    pthread_cond_init(&s->q_cv, NULL);
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        ops->close(s->b);
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->vmu);
        pthread_rwlock_destroy(&s->blob_rw);
        pthread_cond_destroy(&s->q_cv);
        rc = gx_error_set(err, GX_ENOMEM, NULL, "cannot start the committer thread");
        goto fail;
    }
    *out = s;
    return 0;
fail:
    free(s->blob_dir);
    free(s->group);
    free(s->ws);
    free(s);
    return rc;
}

int gx_store_open(const gx_store_config *cfg, gx_store **out, gx_error *err) {
    gx_error_clear(err);
    if (out) *out = NULL;
    if (!cfg) return gx_error_set(err, GX_EINVAL, "config", "config is NULL");
    const char *name = cfg->backend ? cfg->backend : "sqlite";
    if (strcmp(name, "sqlite") == 0) return gx_store_open_ops(&gx_store_sqlite_ops, cfg, out, err);
    if (strcmp(name, "postgres") == 0 || strcmp(name, "postgresql") == 0)
        return gx_error_set(err, GX_EUNSUPPORTED, "backend",
                            "store backend 'postgres' is not available in this build yet; "
                            "use backend 'sqlite'");
    return gx_error_set(err, GX_EINVAL, "backend", "unknown store backend '%s' (known: sqlite)",
                        name);
}

void gx_store_close(gx_store *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->committer, NULL);
    s->ops->close(s->b);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->vmu);
    pthread_rwlock_destroy(&s->blob_rw);
    pthread_cond_destroy(&s->q_cv);
    free(s->blob_dir);
    free(s->group);
    free(s->ws);
    free(s);
}

/* ---- jobs ----------------------------------------------------------------- */

/* 0 or GX_EINVAL with the offending field in f (for the message). */
static int job_valid(const gx_store_job *j, const char **f) {
    if (j->id == 0 || j->id > (uint64_t)INT64_MAX) return *f = "id", GX_EINVAL;
    if (!gx_tenant_name_valid(j->tenant)) return *f = "tenant", GX_EINVAL;
    if (!j->kernel || !*j->kernel || strlen(j->kernel) > MAX_KERNEL_LEN)
        return *f = "kernel", GX_EINVAL;
    if (!j->spec_json) return *f = "spec_json", GX_EINVAL;
    if (!state_ok(j->state)) return *f = "state", GX_EINVAL;
    if (j->attempt < 0) return *f = "attempt", GX_EINVAL;
    if (j->idempotency_key && (!*j->idempotency_key || strlen(j->idempotency_key) > MAX_IDEM_LEN))
        return *f = "idempotency_key", GX_EINVAL;
    return 0;
}

/* Validate n records into res; the number valid (err names the first bad). */
static size_t insert_validate(const gx_store_job *jobs, size_t n, gx_store_insert_result *res, gx_error *err) {
    size_t valid = 0;
    int described = 0;
    for (size_t i = 0; i < n; i++) {
        const char *f = NULL;
        res[i].job_id = 0;
        res[i].code = job_valid(&jobs[i], &f);
        if (res[i].code == 0) {
            valid++;
        } else if (!described && err) {
            /* Describe the first bad record; the call itself goes on. */
            char field[48];
            snprintf(field, sizeof field, "jobs[%zu].%s", i, f);
            gx_error_set(err, 0, field, "job record %zu: %s is missing or invalid", i, f);
            described = 1;
        }
    }
    return valid;
}

int64_t gx_store_insert_jobs(gx_store *s, const gx_store_job *jobs, size_t n,
                             gx_store_insert_result *res, gx_error *err) {
    gx_error_clear(err);
    if (n == 0) return 0;
    if (!jobs || !res) return gx_error_set(err, GX_EINVAL, jobs ? "res" : "jobs", "NULL array");
    size_t valid = insert_validate(jobs, n, res, err);
    if (valid == 0) return 0;
    req r = {.wait = 1, .rows = valid};
    r.w.kind = GX_STORE_W_INSERT;
    r.w.u.insert.jobs = jobs;
    r.w.u.insert.n = n;
    r.w.u.insert.res = res;
    int rc = submit(s, &r, err);
    if (rc) {
        for (size_t i = 0; i < n; i++) res[i].code = rc, res[i].job_id = 0;
        return rc;
    }
    int64_t ins = 0;
    for (size_t i = 0; i < n; i++) ins += res[i].code == 0;
    return ins;
}

int gx_store_insert_jobs_async(gx_store *s, const gx_store_job *jobs, size_t n, gx_store_insert_result *res,
                               gx_store_done_fn done, void *ctx, gx_error *err) {
    gx_error_clear(err);
    if (!done || (n && (!jobs || !res)))
        return gx_error_set(err, GX_EINVAL, !done ? "done" : jobs ? "res" : "jobs", "NULL argument");
    size_t valid = n ? insert_validate(jobs, n, res, err) : 0;
    if (valid == 0) {
        done(ctx, 0, NULL);
        return 0;
    }
    req *r = calloc(1, sizeof *r);
    if (!r) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    r->rows = valid;
    r->w.kind = GX_STORE_W_INSERT;
    r->w.u.insert.jobs = jobs;
    r->w.u.insert.n = n;
    r->w.u.insert.res = res;
    r->cb = done;
    r->cb_ctx = ctx;
    gx_error qerr;
    int rc = submit(s, r, &qerr);
    if (rc) {
        free(r);
        if (err) *err = qerr;
        return rc;
    }
    return 0;
}

static int update_valid(const gx_store_update *u, size_t n, gx_error *err) {
    for (size_t i = 0; i < n; i++) {
        char f[48];
        const char *bad = NULL;
        if (u[i].id == 0 || u[i].id > (uint64_t)INT64_MAX)
            bad = "id";
        else if (!state_ok(u[i].state))
            bad = "state";
        else if (u[i].attempt < 0)
            bad = "attempt";
        else if (u[i].set & ~0x1fu)
            bad = "set";
        if (bad) {
            snprintf(f, sizeof f, "ups[%zu].%s", i, bad);
            return gx_error_set(err, GX_EINVAL, f, "update %zu (job %llu): bad %s", i,
                                (unsigned long long)u[i].id, bad);
        }
    }
    return 0;
}

/* A heap request holding a copy of the updates and their strings. */
static req *async_update_req(const gx_store_update *ups, size_t n, int64_t now) {
    size_t sz = sizeof(req) + n * sizeof(gx_store_update);
    for (size_t i = 0; i < n; i++) {
        if (ups[i].error) sz += strlen(ups[i].error) + 1;
        if (ups[i].result_json) sz += strlen(ups[i].result_json) + 1;
    }
    req *r = calloc(1, sz);
    if (!r) return NULL;
    gx_store_update *cp = (gx_store_update *)(r + 1);
    char *p = (char *)(cp + n);
    memcpy(cp, ups, n * sizeof *cp);
    for (size_t i = 0; i < n; i++) {
        if (!cp[i].time_ns) cp[i].time_ns = now;
        if (ups[i].error) {
            size_t l = strlen(ups[i].error) + 1;
            cp[i].error = memcpy(p, ups[i].error, l);
            p += l;
        }
        if (ups[i].result_json) {
            size_t l = strlen(ups[i].result_json) + 1;
            cp[i].result_json = memcpy(p, ups[i].result_json, l);
            p += l;
        }
    }
    r->w.kind = GX_STORE_W_UPDATE;
    r->w.u.update.ups = cp;
    r->w.u.update.n = n;
    r->rows = n;
    return r;
}

int64_t gx_store_update_jobs(gx_store *s, const gx_store_update *ups, size_t n, int wait,
                             int *codes, gx_error *err) {
    gx_error_clear(err);
    if (n == 0) return 0;
    if (!ups) return gx_error_set(err, GX_EINVAL, "ups", "ups is NULL");
    int rc = update_valid(ups, n, err);
    if (rc) return rc;
    int64_t now = gx__wall_ns();
    if (!wait) {
        req *r = async_update_req(ups, n, now);
        if (!r) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
        rc = submit(s, r, err);
        if (rc) free(r); /* closed: never queued */
        return rc;
    }
    /* Waiting: the caller's array lives through the commit, but the times
     * must be filled in, so copy it only when some time_ns is 0. */
    gx_store_update *cp = NULL;
    const gx_store_update *use = ups;
    for (size_t i = 0; i < n && !cp; i++) {
        if (ups[i].time_ns) continue;
        cp = malloc(n * sizeof *cp);
        if (!cp) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
        memcpy(cp, ups, n * sizeof *cp);
        for (size_t j = 0; j < n; j++)
            if (!cp[j].time_ns) cp[j].time_ns = now;
        use = cp;
    }
    int *cc = codes ? codes : malloc(n * sizeof *cc);
    if (!cc) {
        free(cp);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    req r = {.wait = 1, .rows = n};
    r.w.kind = GX_STORE_W_UPDATE;
    r.w.u.update.ups = use;
    r.w.u.update.n = n;
    r.w.u.update.codes = cc;
    rc = submit(s, &r, err);
    int64_t applied = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc) cc[i] = rc;
        applied += cc[i] == 0;
    }
    if (cc != codes) free(cc);
    free(cp);
    return rc ? rc : applied;
}

int gx_store_flush(gx_store *s, gx_error *err) {
    gx_error_clear(err);
    req r = {.wait = 1};
    r.w.kind = GX_STORE_W_NOP;
    /* The marker writes nothing: the group it lands in may fail for others'
     * writes, which their callers hear about; only lost non-waiting writes
     * are this caller's business. */
    int rc = submit(s, &r, err);
    if (rc == GX_ECLOSED) return rc;
    gx_error_clear(err);
    pthread_mutex_lock(&s->mu);
    uint64_t lost = s->async_failed;
    char msg[256];
    snprintf(msg, sizeof msg, "%s", s->async_msg);
    s->async_failed = 0;
    pthread_mutex_unlock(&s->mu);
    if (lost)
        return gx_error_set(err, GX_ESTORE, NULL, "%llu queued updates were not written: %s",
                            (unsigned long long)lost, msg);
    return 0;
}

/* ---- retention ------------------------------------------------------------ */

static struct vslot *vslot_of(gx_store *s, const char *id);

int gx__spec_blob_refs(const char *spec, int (*fn)(void *ctx, const char *id), void *ctx) {
    if (!spec || !strstr(spec, "\"blob\"")) return 0;
    json_t *root = json_loads(spec, JSON_DECODE_ANY, NULL);
    json_t *ins = json_object_get(root, "inputs"), *v;
    const char *name;
    int rc = 0;
    json_object_foreach(ins, name, v) {
        const char *id = json_string_value(json_object_get(v, "blob"));
        if (gx_store_blob_id_valid(id) && (rc = fn(ctx, id))) break;
    }
    json_decref(root);
    return rc;
}

/* Blobs looked at for dooming per call, the longest unused first. */
#define PURGE_CANDIDATES 4096

int gx_store_purge(gx_store *s, int64_t jobs_before_ns, size_t max_jobs, int64_t blobs_before_ns,
                   int64_t doomed_before_ns, gx_store_purge_result *out, gx_error *err) {
    gx_error_clear(err);
    if (!s || !out) return gx_error_set(err, GX_EINVAL, s ? "out" : "store", "NULL argument");
    uint64_t cursor = out->cursor;
    memset(out, 0, sizeof *out);
    out->cursor = cursor;
    if (jobs_before_ns < 0 || blobs_before_ns < 0 || doomed_before_ns < 0)
        return gx_error_set(err, GX_EINVAL, "before_ns", "a time before 1970");
    req r = {.wait = 1};
    r.w.kind = GX_STORE_W_PURGE;
    r.w.u.purge.jobs_before_ns = jobs_before_ns;
    r.w.u.purge.max_jobs = max_jobs ? max_jobs : 1;
    r.w.u.purge.after = cursor;
    r.w.u.purge.blobs_before_ns = blobs_before_ns;
    r.w.u.purge.doomed_before_ns = doomed_before_ns;
    r.w.u.purge.now_ns = gx__wall_ns();
    /* the candidates for dooming, read before the transaction (which only
     * marks them): reading every unfinished job's spec inside it held up
     * every write queued behind it */
    gx_store_blob_cand *cand = NULL;
    if (blobs_before_ns > 0 && s->ops->blob_candidates) {
        int rc = s->ops->blob_candidates(s->b, blobs_before_ns, PURGE_CANDIDATES, &cand, &r.w.u.purge.ncand, err);
        if (rc) return rc;
        r.w.u.purge.cand = cand;
    }
    if (!r.w.u.purge.ncand) r.w.u.purge.blobs_before_ns = 0;
    r.rows = r.w.u.purge.max_jobs;
    if (r.rows > (size_t)s->max_batch) r.rows = (size_t)s->max_batch;
    /* only a call that deletes blob rows removes files: uploads wait for
     * that one alone */
    int excl = doomed_before_ns > 0;
    if (excl) pthread_rwlock_wrlock(&s->blob_rw);
    int rc = submit(s, &r, err);
    if (rc == 0) {
        out->jobs = r.w.u.purge.jobs;
        out->more = r.w.u.purge.more;
        out->cursor = r.w.u.purge.after;
        out->blobs_doomed = r.w.u.purge.doomed;
        for (size_t i = 0; i < r.w.u.purge.ngone; i++) {
            char path[4200];
            const char *id = r.w.u.purge.gone[i];
            if (gx__blob_path(s->blob_dir, id, path, sizeof path)) continue;
            if (unlink(path) && errno != ENOENT)
                GX_LOGW("retention: cannot remove blob file %s: %s", path, strerror(errno));
            else
                out->blobs_deleted++;
            pthread_mutex_lock(&s->vmu);
            struct vslot *v = vslot_of(s, id);
            if (!strcmp(v->id, id)) v->id[0] = '\0';
            pthread_mutex_unlock(&s->vmu);
        }
    }
    if (excl) pthread_rwlock_unlock(&s->blob_rw);
    free(r.w.u.purge.gone);
    free(cand);
    return rc;
}

int gx_store_blob_sweep(gx_store *s, unsigned shard, int64_t older_than_s, int64_t *removed, gx_error *err) {
    gx_error_clear(err);
    if (removed) *removed = 0;
    if (!s || shard > 255) return gx_error_set(err, GX_EINVAL, s ? "shard" : "store", "no such shard");
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/%02x", s->blob_dir, shard);
    DIR *d = opendir(sub);
    if (!d) return errno == ENOENT ? 0 : gx_error_set(err, GX_ESTORE, "blob_dir", "%s: %s", sub, strerror(errno));
    time_t cut = time(NULL) - (time_t)older_than_s;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *name = e->d_name;
        int tmp = !strncmp(name, ".tmp-", 5);
        char id[GX_STORE_BLOB_ID_LEN];
        snprintf(id, sizeof id, "sha256:%.64s", name);
        if (!tmp && (strlen(name) != 64 || !gx_store_blob_id_valid(id))) continue;
        char path[sizeof sub + 257]; /* a name is at most 255 bytes */
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", sub, name);
        if (lstat(path, &st) || !S_ISREG(st.st_mode) || st.st_mtime > cut) continue;
        int64_t sz;
        if (tmp) {
            n += unlink(path) == 0;
            continue;
        }
        if (s->ops->blob_owned(s->b, NULL, id, &sz, NULL) != GX_ENOTFOUND) continue;
        /* again under the upload lock: an upload of these bytes that found
         * the file in place commits its row before it lets go */
        pthread_rwlock_wrlock(&s->blob_rw);
        if (s->ops->blob_owned(s->b, NULL, id, &sz, NULL) == GX_ENOTFOUND && unlink(path) == 0) n++;
        pthread_rwlock_unlock(&s->blob_rw);
    }
    closedir(d);
    if (removed) *removed = n;
    return 0;
}

int gx_store_get_job(gx_store *s, uint64_t id, gx_store_job **out, gx_error *err) {
    gx_error_clear(err);
    if (!out) return gx_error_set(err, GX_EINVAL, "out", "out is NULL");
    *out = NULL;
    if (id == 0 || id > (uint64_t)INT64_MAX)
        return gx_error_set(err, GX_ENOTFOUND, "id", "job %llu not found", (unsigned long long)id);
    return s->ops->get_job(s->b, id, out, err);
}

int gx_store_list_jobs(gx_store *s, const gx_store_filter *f, gx_store_job **jobs, size_t *n,
                       uint64_t *next, gx_error *err) {
    gx_error_clear(err);
    if (!jobs || !n) return gx_error_set(err, GX_EINVAL, "jobs", "output is NULL");
    *jobs = NULL;
    *n = 0;
    if (next) *next = 0;
    gx_store_filter fl = {0};
    if (f) fl = *f;
    if (fl.limit == 0) fl.limit = 100;
    if (fl.limit > 10000) return gx_error_set(err, GX_EINVAL, "limit", "limit must be <= 10000");
    if (fl.state_mask >> GX_JOB_STATE_COUNT)
        return gx_error_set(err, GX_EINVAL, "state_mask", "state_mask names unknown states");
    if (!fl.label_key != !fl.label_value)
        return gx_error_set(err, GX_EINVAL, "label_key",
                            "label_key and label_value go together");
    if (fl.after > (uint64_t)INT64_MAX) return 0;
    if (!fl.desc || fl.before > (uint64_t)INT64_MAX) fl.before = 0; /* no bound */
    if (fl.before && fl.before <= fl.after + 1) return 0;
    uint64_t nx = 0;
    int rc = s->ops->list_jobs(s->b, &fl, jobs, n, &nx, err);
    if (rc == 0 && next) *next = nx;
    return rc;
}

int gx_store_job_events(gx_store *s, uint64_t id, gx_store_event **ev, size_t *n,
                        gx_error *err) {
    gx_error_clear(err);
    if (!ev || !n) return gx_error_set(err, GX_EINVAL, "ev", "output is NULL");
    *ev = NULL;
    *n = 0;
    if (id == 0 || id > (uint64_t)INT64_MAX)
        return gx_error_set(err, GX_ENOTFOUND, "id", "job %llu not found", (unsigned long long)id);
    return s->ops->job_events(s->b, id, ev, n, err);
}

int gx_store_max_job_id(gx_store *s, uint64_t *out, gx_error *err) {
    gx_error_clear(err);
    if (!out) return gx_error_set(err, GX_EINVAL, "out", "out is NULL");
    *out = 0;
    return s->ops->max_job_id(s->b, out, err);
}

int gx_store_load_unfinished(gx_store *s, gx_store_job_fn fn, void *ctx, int64_t *requeued,
                             gx_error *err) {
    gx_error_clear(err);
    if (requeued) *requeued = 0;
    if (!fn) return gx_error_set(err, GX_EINVAL, "fn", "callback is NULL");
    req r = {.wait = 1};
    r.w.kind = GX_STORE_W_REQUEUE;
    r.w.u.requeue.now_ns = gx__wall_ns();
    int rc = submit(s, &r, err);
    if (rc) return rc;
    if (requeued) *requeued = r.w.u.requeue.count;
    return s->ops->scan_unfinished(s->b, fn, ctx, err);
}

/* ---- checkpoints ---------------------------------------------------------- */

int gx_store_checkpoint_put(gx_store *s, uint64_t job_id, int attempt, int64_t step, const void *bytes,
                            size_t len, int *stored, gx_error *err) {
    gx_error_clear(err);
    if (stored) *stored = 0;
    if (job_id == 0 || job_id > (uint64_t)INT64_MAX || attempt < 0 || step < 0 || (!bytes && len) ||
        len > (size_t)INT32_MAX)
        return gx_error_set(err, GX_EINVAL, "checkpoint", "bad checkpoint (job id, attempt, step or size)");
    if (!s->ops->checkpoint_get)
        return gx_error_set(err, GX_EUNSUPPORTED, "backend", "the %s store keeps no checkpoints", s->ops->name);
    req r = {.wait = 1};
    r.w.kind = GX_STORE_W_CHECKPOINT;
    r.w.u.checkpoint.job_id = job_id;
    r.w.u.checkpoint.attempt = attempt;
    r.w.u.checkpoint.step = step;
    r.w.u.checkpoint.bytes = bytes ? bytes : "";
    r.w.u.checkpoint.len = len;
    r.w.u.checkpoint.now_ns = gx__wall_ns();
    int rc = submit(s, &r, err);
    if (rc == 0 && stored) *stored = r.w.u.checkpoint.stored;
    return rc;
}

int gx_store_checkpoint_get(gx_store *s, uint64_t job_id, int *attempt, int64_t *step, void **bytes,
                            size_t *len, gx_error *err) {
    gx_error_clear(err);
    if (!attempt || !step || !bytes || !len) return gx_error_set(err, GX_EINVAL, "bytes", "output is NULL");
    *bytes = NULL;
    *len = 0;
    if (!s->ops->checkpoint_get)
        return gx_error_set(err, GX_EUNSUPPORTED, "backend", "the %s store keeps no checkpoints", s->ops->name);
    if (job_id == 0 || job_id > (uint64_t)INT64_MAX)
        return gx_error_set(err, GX_ENOTFOUND, "id", "no checkpoint of job %llu", (unsigned long long)job_id);
    return s->ops->checkpoint_get(s->b, job_id, attempt, step, bytes, len, err);
}

/* ---- settings ------------------------------------------------------------- */

#define SETTING_KEY_MAX GX_STORE_SETTING_KEY_MAX
#define SETTING_VALUE_MAX GX_STORE_SETTING_VALUE_MAX

int gx_store_settings_put(gx_store *s, const char *const *keys, const char *const *values, size_t n, gx_error *err) {
    gx_error_clear(err);
    if (!keys || !values) return gx_error_set(err, GX_EINVAL, "key", "NULL array");
    for (size_t k = 0; k < n; k++) {
        const char *key = keys[k];
        size_t kl = key ? strlen(key) : 0;
        int ok = kl >= 1 && kl <= SETTING_KEY_MAX;
        for (size_t i = 0; ok && i < kl; i++) ok = key[i] > 0x20 && key[i] < 0x7f;
        if (!ok)
            return gx_error_set(err, GX_EINVAL, "key", "a setting's key is 1-%d printable ASCII bytes", SETTING_KEY_MAX);
        if (values[k] && strlen(values[k]) > SETTING_VALUE_MAX)
            return gx_error_set(err, GX_EINVAL, "value", "a setting's value is at most %d bytes", SETTING_VALUE_MAX);
    }
    if (!s->ops->settings_get)
        return gx_error_set(err, GX_EUNSUPPORTED, "backend", "the %s store keeps no settings", s->ops->name);
    if (!n) return 0;
    req r = {.wait = 1, .rows = n};
    r.w.kind = GX_STORE_W_SETTING;
    r.w.u.setting.keys = keys;
    r.w.u.setting.values = values;
    r.w.u.setting.n = n;
    r.w.u.setting.now_ns = gx__wall_ns();
    return submit(s, &r, err);
}

int gx_store_setting_put(gx_store *s, const char *key, const char *value, gx_error *err) {
    return gx_store_settings_put(s, &key, &value, 1, err);
}

int gx_store_settings_get(gx_store *s, const char *prefix, gx_store_setting **out, size_t *n, gx_error *err) {
    gx_error_clear(err);
    if (!out || !n) return gx_error_set(err, GX_EINVAL, "out", "output is NULL");
    *out = NULL;
    *n = 0;
    if (!s->ops->settings_get)
        return gx_error_set(err, GX_EUNSUPPORTED, "backend", "the %s store keeps no settings", s->ops->name);
    return s->ops->settings_get(s->b, prefix ? prefix : "", out, n, err);
}

int gx_store_find_idempotent(gx_store *s, const char *tenant, const char *key, uint64_t *id, gx_error *err) {
    gx_error_clear(err);
    if (!tenant || !key || !id) return gx_error_set(err, GX_EINVAL, "key", "tenant, key and id are required");
    if (!s->ops->find_idempotent)
        return gx_error_set(err, GX_EUNSUPPORTED, "backend", "the %s store cannot look up keys", s->ops->name);
    return s->ops->find_idempotent(s->b, tenant, key, id, err);
}

void gx__fix_setting(void *item, char *strs) {
    gx_store_setting *t = item;
    t->key = gx__rb_ptr(t->key, strs);
    t->value = gx__rb_ptr(t->value, strs);
}

/* ---- tenants -------------------------------------------------------------- */

int gx_store_tenant_upsert(gx_store *s, const gx_store_tenant *t, gx_error *err) {
    gx_error_clear(err);
    if (!t) return gx_error_set(err, GX_EINVAL, "tenant", "tenant is NULL");
    if (!gx_tenant_name_valid(t->name))
        return gx_error_set(err, GX_EINVAL, "name", "tenant name must be 1-63 of [A-Za-z0-9_.-]");
    if (!(t->weight > 0) || !isfinite(t->weight))
        return gx_error_set(err, GX_EINVAL, "weight", "weight must be a finite number > 0");
    if (t->max_running < 0)
        return gx_error_set(err, GX_EINVAL, "max_running", "max_running must be >= 0");
    req r = {.wait = 1};
    r.w.kind = GX_STORE_W_TENANT;
    r.w.u.tenant.t = t;
    r.w.u.tenant.now_ns = gx__wall_ns();
    return submit(s, &r, err);
}

int gx_store_tenant_get(gx_store *s, const char *name, gx_store_tenant **out, gx_error *err) {
    gx_error_clear(err);
    if (!out) return gx_error_set(err, GX_EINVAL, "out", "out is NULL");
    *out = NULL;
    if (!gx_tenant_name_valid(name))
        return gx_error_set(err, GX_EINVAL, "name", "tenant name must be 1-63 of [A-Za-z0-9_.-]");
    return s->ops->tenant_get(s->b, name, out, err);
}

int gx_store_tenant_list(gx_store *s, gx_store_tenant **out, size_t *n, gx_error *err) {
    gx_error_clear(err);
    if (!out || !n) return gx_error_set(err, GX_EINVAL, "out", "output is NULL");
    *out = NULL;
    *n = 0;
    return s->ops->tenant_list(s->b, out, n, err);
}

/* ---- blobs ---------------------------------------------------------------- */

static int blob_args(const char *tenant, const char *id, gx_error *err) {
    if (!gx_tenant_name_valid(tenant))
        return gx_error_set(err, GX_EINVAL, "tenant", "tenant name must be 1-63 of [A-Za-z0-9_.-]");
    if (!gx_store_blob_id_valid(id))
        return gx_error_set(err, GX_EINVAL, "blob",
                            "blob id must be \"sha256:\" followed by 64 lowercase hex digits");
    return 0;
}

static int checked_lately(gx_store *s, const char *id, const struct stat *st);
static void checked_now(gx_store *s, const char *id, const struct stat *st);

int gx_store_blob_put(gx_store *s, const char *tenant, const void *bytes, size_t len,
                      char id_out[GX_STORE_BLOB_ID_LEN], gx_error *err) {
    gx_error_clear(err);
    if (!id_out || (!bytes && len))
        return gx_error_set(err, GX_EINVAL, id_out ? "bytes" : "id_out", "NULL argument");
    id_out[0] = '\0';
    if (!gx_tenant_name_valid(tenant))
        return gx_error_set(err, GX_EINVAL, "tenant", "tenant name must be 1-63 of [A-Za-z0-9_.-]");
    if (len > (size_t)INT64_MAX) return gx_error_set(err, GX_EOVERFLOW, "bytes", "blob too large");
    char id[GX_STORE_BLOB_ID_LEN];
    int rc = gx__blob_hash(bytes ? bytes : "", len, id, err);
    if (rc) return rc;
    /* Bytes first, durably; then the rows that point at them. A crash in
     * between leaves an unreferenced file, never a row without bytes. A
     * file of these bytes checked lately is not read again to compare
     * (repeated uploads, a kernel's repeated outputs); one written or
     * compared now counts as checked. Only for a tenant that owns the blob
     * already: another one's upload writes and syncs the bytes as for new
     * ones, so that its time does not tell whether some tenant holds them
     * (a guess at another tenant's data confirmed by a fast 201). */
    char path[4200];
    struct stat st;
    int64_t owned_size;
    pthread_rwlock_rdlock(&s->blob_rw);
    int there = !gx__blob_path(s->blob_dir, id, path, sizeof path) && !stat(path, &st) && S_ISREG(st.st_mode) &&
                (uint64_t)st.st_size == len;
    int mine = there && s->ops->blob_owned(s->b, tenant, id, &owned_size, NULL) == 0;
    int known = mine && checked_lately(s, id, &st);
    if (!known) {
        rc = gx__blob_write(s->blob_dir, id, bytes ? bytes : "", len, mine, err);
        if (!rc && !stat(path, &st)) checked_now(s, id, &st);
    }
    if (!rc) {
        req r = {.wait = 1};
        r.w.kind = GX_STORE_W_BLOB;
        r.w.u.blob.id = id;
        r.w.u.blob.tenant = tenant;
        r.w.u.blob.size = (int64_t)len;
        r.w.u.blob.now_ns = gx__wall_ns();
        rc = submit(s, &r, err);
    }
    pthread_rwlock_unlock(&s->blob_rw);
    if (rc == 0) memcpy(id_out, id, sizeof id);
    return rc;
}

/* Where the bytes of id are, if tenant owns it; not checked against id. */
/* The file of a blob whose row was there is missing or not as recorded:
 * GX_ENOTFOUND when the row is gone now (store.retention deleted the blob
 * in between), else GX_ESTORE (damage: upload again). */
static int missing(gx_store *s, const char *tenant, const char *id, gx_error *err) {
    int64_t sz;
    if (s->ops->blob_owned(s->b, tenant, id, &sz, NULL) == GX_ENOTFOUND)
        return gx_error_set(err, GX_ENOTFOUND, "id", "no blob %s (deleted by store.retention just now)", id);
    return gx_error_set(err, GX_ESTORE, "blob",
                        "the bytes of blob %s are missing or damaged; upload the file again to repair it", id);
}

static int blob_locate(gx_store *s, const char *tenant, const char *id, char *path, size_t cap, int64_t *size,
                       struct stat *stt, gx_error *err) {
    gx_error_clear(err);
    if (!path || cap == 0) return gx_error_set(err, GX_EINVAL, "path", "no path buffer");
    path[0] = '\0';
    int rc = blob_args(tenant ? tenant : "any", id, err);
    if (rc) return rc;
    int64_t sz = 0;
    rc = s->ops->blob_owned(s->b, tenant, id, &sz, err);
    if (rc) return rc;
    if (gx__blob_path(s->blob_dir, id, path, cap))
        return gx_error_set(err, GX_EOVERFLOW, "path", "path buffer too small");
    if (stat(path, stt) != 0 || !S_ISREG(stt->st_mode) || stt->st_size != sz) {
        path[0] = '\0';
        return missing(s, tenant, id, err);
    }
    *size = sz;
    return 0;
}

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static struct vslot *vslot_of(gx_store *s, const char *id) {
    return &s->vcache[strtoul((char[4]){id[7], id[8], id[9], 0}, NULL, 16) % VCACHE_SLOTS];
}

static int same_file(const struct vslot *v, const struct stat *st) {
    return v->dev == st->st_dev && v->ino == st->st_ino && v->size == st->st_size &&
           v->mtim.tv_sec == st->st_mtim.tv_sec && v->mtim.tv_nsec == st->st_mtim.tv_nsec &&
           v->ctim.tv_sec == st->st_ctim.tv_sec && v->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* 1 if the file st of id was checked lately (see VCACHE_SLOTS). */
static int checked_lately(gx_store *s, const char *id, const struct stat *st) {
    pthread_mutex_lock(&s->vmu);
    const struct vslot *v = vslot_of(s, id);
    int hit = !strcmp(v->id, id) && same_file(v, st) && mono_ns() - v->at < VCACHE_TTL_NS;
    pthread_mutex_unlock(&s->vmu);
    return hit;
}

static void checked_now(gx_store *s, const char *id, const struct stat *st) {
    pthread_mutex_lock(&s->vmu);
    struct vslot *v = vslot_of(s, id);
    snprintf(v->id, sizeof v->id, "%s", id);
    v->dev = st->st_dev;
    v->ino = st->st_ino;
    v->size = st->st_size;
    v->mtim = st->st_mtim;
    v->ctim = st->st_ctim;
    v->at = mono_ns();
    pthread_mutex_unlock(&s->vmu);
}

/* The blob's file opened and checked against its id (unless the same file
 * passed lately): *fd is the very file checked, which a path opened again
 * need not be (a file renamed over it meanwhile). path gets its name. */
static int open_checked(gx_store *s, const char *tenant, const char *id, char *path, size_t cap, int64_t *size,
                        int *fd_out, gx_error *err) {
    struct stat st;
    int rc = blob_locate(s, tenant, id, path, cap, size, &st, err);
    if (rc) return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size != *size)
        rc = missing(s, tenant, id, err);
    else if (!checked_lately(s, id, &st) && !(rc = gx__blob_check_fd(fd, path, id, *size, err)))
        checked_now(s, id, &st);
    if (rc) {
        if (fd >= 0) close(fd);
        path[0] = '\0';
        return rc;
    }
    *fd_out = fd;
    return 0;
}

int gx_store_blob_open(gx_store *s, const char *tenant, const char *id, char *path, size_t cap,
                       int64_t *size, gx_error *err) {
    int64_t sz = 0;
    int fd = -1;
    int rc = open_checked(s, tenant, id, path, cap, &sz, &fd, err);
    if (rc) return rc;
    close(fd);
    if (size) *size = sz;
    return 0;
}

int gx_store_blob_open_fd(gx_store *s, const char *tenant, const char *id, int *fd_out, int64_t *size,
                          gx_error *err) {
    if (!fd_out) return gx_error_set(err, GX_EINVAL, "fd", "fd_out is NULL");
    *fd_out = -1;
    char path[4200];
    int64_t sz = 0;
    int rc = open_checked(s, tenant, id, path, sizeof path, &sz, fd_out, err);
    if (rc == 0 && size) *size = sz;
    return rc;
}

int gx_store_blob_read(gx_store *s, const char *tenant, const char *id, void **bytes,
                       size_t *len, gx_error *err) {
    gx_error_clear(err);
    if (!bytes || !len) return gx_error_set(err, GX_EINVAL, "bytes", "output is NULL");
    *bytes = NULL;
    *len = 0;
    char path[4200], got[GX_STORE_BLOB_ID_LEN];
    int64_t sz = 0;
    struct stat st;
    int rc = blob_locate(s, tenant, id, path, sizeof path, &sz, &st, err);
    if (rc) return rc;
    rc = gx__blob_load(path, sz, bytes, err);
    int lately = rc == 0 && checked_lately(s, id, &st);
    if (rc == 0 && !lately) rc = gx__blob_hash(*bytes, (size_t)sz, got, err);
    if (rc == 0 && !lately && !strcmp(got, id)) checked_now(s, id, &st);
    if (rc == 0 && !lately && strcmp(got, id)) rc = gx__blob_damaged(err, id, "their SHA-256 is not the id's");
    if (rc) {
        free(*bytes);
        *bytes = NULL;
        return rc;
    }
    *len = (size_t)sz;
    return 0;
}

/* ---- health and metrics --------------------------------------------------- */

int gx_store_check(gx_store *s, char *msg, size_t cap) {
    char tmp[2];
    if (!msg || cap == 0) msg = tmp, cap = sizeof tmp;
    msg[0] = '\0';
    return s->ops->check(s->b, msg, cap);
}

void gx_store_stats_get(gx_store *s, gx_store_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}
