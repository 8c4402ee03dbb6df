/*
 * gexec_store.h - the durable store: jobs, job events, tenants and blobs.
 *
 * The store is what makes an accepted job survive a crash. gexecd writes a
 * job here before it answers 202, writes every state change of the job (the
 * job row and an event appended to it), and reads everything back at start. Blob
 * bytes live in a content-addressed folder (<blob_dir>/<hex[0:2]>/<hex>);
 * their metadata and owners live in the database.
 *
 * Backends. A store is a gx_store handle over a backend, a versioned vtable
 * (gx_store_ops) chosen by gx_store_config.backend: "sqlite" (WAL mode, one
 * file, for one node) now; "postgres" (for clusters) later. Methods are
 * append-only and the opener checks abi_version and struct_size first, as
 * for device backends (gexec_plugin.h).
 *
 * Group commit. Every write (job inserts, job updates, tenant upserts, blob
 * metadata, the restart requeue) is queued to one committer thread, which
 * takes everything queued (up to max_batch rows), writes it in one
 * transaction (one fsync) and then wakes the callers. Writes are applied in
 * the order they were queued. A failed transaction (disk full, I/O error)
 * rolls back the whole group: every caller in it gets GX_ESTORE with the
 * backend's message and nothing of the group is left half-written.
 *
 * Threads. Every function may be called from any number of threads at once,
 * except gx_store_close, which must be the last call on a handle. Reads use
 * a small pool of connections and see every write whose call has returned.
 *
 * Memory. The store never keeps a pointer the caller passed once the call
 * returns. Everything the store returns (job records, lists, events,
 * tenants, blob bytes) is one malloc'd block per call, released with
 * gx_store_free(); strings inside it point into the same block.
 *
 * Errors. Calls return 0 or a negative GX_E* code and fill the optional
 * gx_error: GX_EINVAL for bad arguments (err->field names which),
 * GX_ENOTFOUND, GX_ESTORE for a failure of the database or the blob folder
 * (err->message carries the backend's text), GX_ECLOSED after close began.
 */
#ifndef GEXEC_STORE_H
#define GEXEC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gx_store gx_store;

/* ---- configuration -------------------------------------------------------- */

typedef struct gx_store_config {
    const char *backend;     /* "sqlite" (NULL = "sqlite"); "postgres": not yet */
    const char *path;        /* sqlite: database file, created if missing */
    const char *blob_dir;    /* blob folder, created if missing;
                                NULL = "<path>.blobs" */
    const char *synchronous; /* "full" (NULL, default: every commit is fsync'd)
                                or "normal" (WAL synced at checkpoints only: a
                                power loss may lose the last commits) */
    int max_batch;           /* most rows one transaction takes; a single
                                call larger than this is still one
                                transaction. 0 = 10000 */
    int commit_delay_us;     /* after the first queued write, wait this long
                                for more before committing; 0 = commit what
                                is queued now (lowest latency) */
    int busy_timeout_ms;     /* wait for a lock held by another process;
                                0 = 5000 */
    int read_conns;          /* read connections in the pool; 0 = 4 */
    int64_t wal_checkpoint_bytes; /* sqlite: a background thread copies the
                                     WAL into the database once it holds
                                     this much; 0 = 64 MiB */
    int64_t test_max_page_count; /* tests only: PRAGMA max_page_count, to
                                    provoke "disk full"; 0 = no limit */
    /* Called on the committer thread after each transaction it committed,
     * with the rows it wrote and its time from BEGIN to the durable COMMIT
     * (for metrics: it must not block or call the store). NULL = none. */
    void (*on_commit)(void *ctx, size_t rows, double seconds);
    void *on_commit_ctx;
    /* Called on the committer thread once the completion callbacks of a
     * transaction's asynchronous requests have all run (the callbacks of
     * gx_store_insert_jobs_async then run on the committer only, except
     * when nothing of a call was valid: its callback runs at once, on the
     * caller's thread, with no after_callbacks). It runs on the committer's
     * path: it must not wait for a commit (a write with wait = 1, or
     * gx_store_flush, would hang the store). NULL = none. */
    void (*after_callbacks)(void *ctx);
    void *after_callbacks_ctx;
} gx_store_config;

/* Defaults: backend "sqlite", synchronous "full", everything else 0. */
void gx_store_config_init(gx_store_config *cfg);

/* ---- records -------------------------------------------------------------- */

/* One job as stored. As input (gx_store_insert_jobs) every pointer belongs to
 * the caller and need only live during the call. As output the record and
 * its strings are one block from the store (gx_store_free). */
typedef struct gx_store_job {
    uint64_t id;                 /* > 0, assigned by the caller (unique) */
    const char *tenant;          /* tenant name, [A-Za-z0-9_.-]{1,63} */
    const char *kernel;          /* "name@version" */
    const char *spec_json;       /* the submitted job as JSON; opaque here */
    int state;                   /* gx_job_state */
    int attempt;                 /* attempt number (fences stale writers) */
    int priority;
    int64_t submit_ns;           /* CLOCK_REALTIME, ns */
    int64_t start_ns;            /* start of the last attempt, 0 if none */
    int64_t end_ns;              /* 0 until final */
    int device;                  /* device index, -1 if none */
    int error_code;              /* GX_E* for failures, 0 otherwise */
    const char *error;           /* why it failed; NULL when none */
    const char *idempotency_key; /* NULL when none; (tenant, key) unique */
    const char *labels_json;     /* {"key":"value",...} or NULL */
    const char *result_json;     /* output manifest or NULL */
} gx_store_job;

/* Per-record outcome of gx_store_insert_jobs. */
typedef struct gx_store_insert_result {
    int code;        /* 0: inserted; GX_EEXIST: the (tenant, idempotency key)
                        was seen before, job_id is the original job;
                        GX_EINVAL: record invalid or its id already used */
    uint64_t job_id; /* the new job, or the original one; 0 on GX_EINVAL */
} gx_store_insert_result;

/* gx_store_update.set: which optional fields an update writes. */
#define GX_STORE_SET_START 0x01u  /* start_ns */
#define GX_STORE_SET_END 0x02u    /* end_ns */
#define GX_STORE_SET_DEVICE 0x04u /* device */
#define GX_STORE_SET_ERROR 0x08u  /* error_code and error */
#define GX_STORE_SET_RESULT 0x10u /* result_json */

/* One state change of a job. state and attempt are always written; the
 * fields named in `set` too; the rest keep their stored values. Each applied
 * update also appends an event (job, next seq, state, attempt, time, error
 * code and text when GX_STORE_SET_ERROR; in the SQLite backend a line of
 * the job row, see src/store/sqlite.c).
 *
 * Fencing: the update is applied only if attempt >= the stored attempt, so
 * the writes of an attempt that was superseded (re-queued after restart,
 * retried elsewhere) are ignored; and, when from_mask is not 0, only if the
 * stored state is one of the states in from_mask (bit 1 << state), which
 * makes a transition a compare-and-set (e.g. "succeeded" only from
 * "running"). A job in a final state changes only by such a compare-and-set
 * (an operator's re-queue) or an update of a newer attempt: a late write of
 * the same attempt (a "queued" that reached the store after its
 * "succeeded") cannot undo the end. A fenced update reports GX_ESTATE and
 * changes nothing. */
typedef struct gx_store_update {
    uint64_t id;
    int state;               /* new gx_job_state */
    int attempt;             /* the writer's attempt number */
    unsigned set;            /* GX_STORE_SET_* */
    int64_t start_ns, end_ns;
    int device;
    int error_code;
    const char *error;       /* NULL = none */
    const char *result_json; /* NULL = none */
    int64_t time_ns;         /* time of the change for the event; 0 = now */
    unsigned from_mask;      /* 0 = any stored state */
} gx_store_update;

/* One row of a job's history: seq 1 is the submission (written with the
 * job row), then one row per state change. */
typedef struct gx_store_event {
    uint64_t job_id;
    int seq;          /* 1, 2, ... per job, in the order applied */
    int state;
    int attempt;
    int64_t time_ns;
    int error_code;
    const char *error; /* error or note ("requeued after restart"); NULL */
} gx_store_event;

typedef struct gx_store_tenant {
    const char *name;        /* [A-Za-z0-9_.-]{1,63} */
    double weight;           /* 1e-6..1e6 (a value stored out of it is brought in at load) */
    int max_running;         /* >= 0, 0 = no limit */
    const char *quotas_json; /* opaque JSON text or NULL */
    int64_t created_ns;      /* output only */
    int64_t updated_ns;      /* output only */
} gx_store_tenant;

/* Filter of gx_store_list_jobs. Zeroed = every job. */
typedef struct gx_store_filter {
    const char *tenant;      /* NULL = every tenant */
    unsigned state_mask;     /* bit (1 << state); 0 = every state */
    const char *kernel;      /* "name@version" exactly, or "name" for any
                                version; NULL = any */
    const char *label_key;   /* with label_value: jobs whose labels_json has
                                this key with this string value */
    const char *label_value;
    uint64_t after;          /* cursor: only ids greater than this */
    size_t limit;            /* page size; 0 = 100; at most 10000 */
    int desc;                /* nonzero: newest first (descending ids) */
    uint64_t before;         /* desc only: only ids less than this (the
                                cursor of desc pages); 0 = no bound */
} gx_store_filter;

/* Statistics for metrics. Histogram buckets count commits whose latency
 * (BEGIN to durable COMMIT) was <= the bound of the bucket and > the one
 * before; the last bucket is +Inf. */
#define GX_STORE_LAT_BUCKETS 12
extern const double gx_store_lat_bounds_s[GX_STORE_LAT_BUCKETS]; /* last = inf */

typedef struct gx_store_stats {
    uint64_t commits;          /* transactions committed */
    uint64_t failed_commits;   /* groups rolled back */
    uint64_t failing_commits;  /* groups rolled back since the last commit
                                  that worked (0: the last one worked) */
    uint64_t rows;             /* rows written by committed groups: jobs
                                  inserted or updated, tenants, blobs */
    uint64_t requests;         /* write calls carried by committed groups */
    uint64_t max_rows_per_commit;
    uint64_t queued_rows;      /* rows waiting for the committer now */
    double commit_seconds_sum; /* total commit latency */
    uint64_t commit_latency[GX_STORE_LAT_BUCKETS]; /* non-cumulative counts */
    uint64_t async_failures;   /* non-waiting updates lost to a failed group */
} gx_store_stats;

#define GX_STORE_SETTING_KEY_MAX 200
#define GX_STORE_SETTING_VALUE_MAX 65536

/* One of the daemon's own durable settings: state an operator set that
 * must outlive a restart (e.g. "device.drain/cuda:0"). */
typedef struct gx_store_setting {
    const char *key;   /* 1-200 printable ASCII bytes */
    const char *value; /* at most 65,536 bytes */
    int64_t updated_ns;
} gx_store_setting;

/* ---- backend ABI ---------------------------------------------------------- */

#define GX_STORE_ABI_VERSION 1

typedef struct gx_store_backend gx_store_backend; /* backend-private state */

/* "sha256:" + 64 lowercase hex digits + NUL */
#define GX_STORE_BLOB_ID_LEN 72

/* A blob the retention may doom (gx_store_ops.blob_candidates). */
typedef struct gx_store_blob_cand {
    char id[GX_STORE_BLOB_ID_LEN];
    int64_t used_ns; /* as read: dooming it checks it has not moved */
    int named;       /* 1: an unfinished job's spec names it */
} gx_store_blob_cand;

/* What the committer hands a backend: one queued write. */
typedef enum gx_store_write_kind {
    GX_STORE_W_NOP = 0,     /* a flush marker; write nothing */
    GX_STORE_W_INSERT = 1,  /* insert.jobs[0..n) -> insert.res[0..n) */
    GX_STORE_W_UPDATE = 2,  /* update.ups[0..n) -> update.codes (may be NULL) */
    GX_STORE_W_TENANT = 3,  /* upsert tenant */
    GX_STORE_W_BLOB = 4,    /* blob metadata + owner row */
    GX_STORE_W_REQUEUE = 5, /* scheduled/running -> queued, attempt + 1 */
    GX_STORE_W_CHECKPOINT = 6, /* a job's latest checkpoint (replaces the last) */
    GX_STORE_W_SETTING = 7,    /* set or delete one setting */
    GX_STORE_W_PURGE = 8       /* retention: old finished jobs, unused blobs
                                  (a backend that ignores it keeps everything) */
} gx_store_write_kind;

typedef struct gx_store_write {
    int kind; /* gx_store_write_kind */
    union {
        struct {
            const gx_store_job *jobs; /* validated by the store */
            size_t n;
            gx_store_insert_result *res; /* on entry, code != 0 marks a record
                                            the store refused: skip it */
        } insert;
        struct {
            const gx_store_update *ups; /* validated; time_ns filled */
            size_t n;
            int *codes; /* 0, GX_ESTATE (fenced) or GX_ENOTFOUND (no such
                           job; or, for a compare-and-set from a final state
                           to another, a blob it names is gone); or NULL */
        } update;
        struct {
            const gx_store_tenant *t;
            int64_t now_ns;
        } tenant;
        struct {
            const char *id;     /* "sha256:<hex>", validated */
            const char *tenant;
            int64_t size;
            int64_t now_ns;
        } blob;
        struct {
            int64_t now_ns;
            int64_t count; /* out: jobs re-queued */
        } requeue;
        struct {
            uint64_t job_id;
            int attempt;
            int64_t step;
            const void *bytes;
            size_t len;
            int64_t now_ns;
            int stored; /* out: 1 written; 0 the job is gone or final */
        } checkpoint;
        struct {
            const char *const *keys;   /* [n], validated */
            const char *const *values; /* [n]; NULL: delete */
            size_t n;
            int64_t now_ns;
        } setting;
        struct {
            int64_t jobs_before_ns;   /* delete finished jobs that ended before
                                         this (with their events and
                                         checkpoints); 0: none */
            size_t max_jobs;          /* at most this many (>= 1) */
            uint64_t after;           /* in: look at jobs with larger ids;
                                         out: where the next call goes on */
            int64_t blobs_before_ns;  /* doom the candidates (cand) not used
                                         since they were found; 0: none */
            int64_t doomed_before_ns; /* delete the rows of blobs doomed before
                                         this and not used since; 0: none */
            int64_t now_ns;
            int64_t jobs;             /* out: jobs deleted */
            int more;                 /* out: 1 when jobs_before_ns may hold
                                         more (max_jobs reached) */
            int64_t doomed;           /* out: blobs doomed now */
            char (*gone)[GX_STORE_BLOB_ID_LEN]; /* out: ids whose rows were
                                         deleted (malloc'd, NULL when none):
                                         the front removes their files */
            size_t ngone;
            /* in: blob_candidates' answer, found outside the transaction
             * (reading every unfinished job's spec there held up every
             * write behind it: 0.7 s with 300,000 such jobs). A candidate
             * an unfinished job names counts as used now; one no job named
             * is doomed unless something used it since it was read (every
             * use moves used_ns: an upload, a job naming it, a re-queue)
             * or it is doomed already. */
            const struct gx_store_blob_cand *cand;
            size_t ncand;
        } purge;
    } u;
} gx_store_write;

/* Called for each unfinished job by load_unfinished; the record and its
 * strings are valid only during the call. A non-zero return stops the scan
 * and is returned by gx_store_load_unfinished. */
typedef int (*gx_store_job_fn)(void *ctx, const gx_store_job *job);

/* A backend. Every method gets the state open() made. write_group is only
 * ever called from the store's committer thread, one call at a time; every
 * other method may be called from many threads at once. Results are single
 * malloc() blocks (the caller releases them with gx_store_free). */
typedef struct gx_store_ops {
    uint32_t abi_version; /* GX_STORE_ABI_VERSION */
    uint32_t struct_size; /* sizeof(gx_store_ops) the backend was built with */
    const char *name;     /* "sqlite" */

    int (*open)(const gx_store_config *cfg, gx_store_backend **out, gx_error *err);
    void (*close)(gx_store_backend *b);
    /* Apply w[0..n) in one transaction, in order, filling their per-record
     * results; all or nothing: on failure roll back and return GX_ESTORE. */
    int (*write_group)(gx_store_backend *b, gx_store_write *const *w, size_t n,
                       gx_error *err);
    int (*get_job)(gx_store_backend *b, uint64_t id, gx_store_job **out, gx_error *err);
    int (*list_jobs)(gx_store_backend *b, const gx_store_filter *f, gx_store_job **jobs,
                     size_t *n, uint64_t *next, gx_error *err);
    int (*job_events)(gx_store_backend *b, uint64_t id, gx_store_event **ev, size_t *n,
                      gx_error *err);
    int (*max_job_id)(gx_store_backend *b, uint64_t *out, gx_error *err);
    /* Stream every job not in a final state, in id order. */
    int (*scan_unfinished)(gx_store_backend *b, gx_store_job_fn fn, void *ctx,
                           gx_error *err);
    int (*tenant_get)(gx_store_backend *b, const char *name, gx_store_tenant **out,
                      gx_error *err);
    int (*tenant_list)(gx_store_backend *b, gx_store_tenant **out, size_t *n,
                       gx_error *err);
    /* 0 and *size if tenant owns blob id (tenant NULL: any tenant does),
     * else GX_ENOTFOUND. */
    int (*blob_owned)(gx_store_backend *b, const char *tenant, const char *id,
                      int64_t *size, gx_error *err);
    /* Full consistency check; 0 or GX_ESTORE with the findings in msg. */
    int (*check)(gx_store_backend *b, char *msg, size_t cap);
    /* Appended (optional: NULL answers GX_EUNSUPPORTED). A job's latest
     * checkpoint as one malloc'd block: *bytes points into it. */
    int (*checkpoint_get)(gx_store_backend *b, uint64_t job_id, int *attempt, int64_t *step,
                          void **bytes, size_t *len, gx_error *err);
    /* Appended (optional: NULL answers GX_EUNSUPPORTED, and a backend without
     * it must refuse GX_STORE_W_SETTING writes). The settings whose key
     * starts with prefix, in key order. */
    int (*settings_get)(gx_store_backend *b, const char *prefix, gx_store_setting **out, size_t *n,
                        gx_error *err);
    /* Appended (optional: NULL answers GX_EUNSUPPORTED). The id of the
     * tenant's job with idempotency key key, or GX_ENOTFOUND. */
    int (*find_idempotent)(gx_store_backend *b, const char *tenant, const char *key, uint64_t *id,
                           gx_error *err);
    /* Appended (optional: NULL = the retention dooms no blob). The
     * retention's read half, outside any write: up to max blobs last used
     * before before_ns and not doomed, the longest unused first, as one
     * malloc'd array *out of *n (named: an unfinished job's spec names
     * it). A backend with it must move a blob's used_ns on every use. */
    int (*blob_candidates)(gx_store_backend *b, int64_t before_ns, size_t max, gx_store_blob_cand **out,
                           size_t *n, gx_error *err);
} gx_store_ops;

/* The built-in SQLite backend. */
extern const gx_store_ops gx_store_sqlite_ops;

/* ---- lifecycle ------------------------------------------------------------ */

/* Open the backend named by cfg->backend: create or migrate its schema
 * (GX_EUNSUPPORTED for a schema newer than this build), create the blob
 * folder and start the committer. Unknown backends answer GX_EINVAL and
 * "postgres" GX_EUNSUPPORTED. cfg and its strings need only live during the
 * call. *out is released with gx_store_close. */
int gx_store_open(const gx_store_config *cfg, gx_store **out, gx_error *err);

/* The same over a backend given by the caller (tests, out-of-tree backends);
 * GX_EABI if its abi_version does not match, its struct_size is too small
 * for the required methods (everything up to check) or one of them is
 * missing; a backend built before an optional method was appended has it
 * as NULL. ops is copied. */
int gx_store_open_ops(const gx_store_ops *ops, const gx_store_config *cfg, gx_store **out,
                      gx_error *err);

/* Commit everything queued, stop the committer, close the backend and free
 * the handle. Must be the last call on s: no other call may be in progress
 * or follow. NULL is fine. */
void gx_store_close(gx_store *s);

/* Name of the backend ("sqlite"). Static string. */
const char *gx_store_backend_name(const gx_store *s);

/* Release anything the store returned. NULL is fine. */
void gx_store_free(void *p);

/* ---- jobs ----------------------------------------------------------------- */

/* Insert n jobs and block until they are durably committed (or the group
 * failed). res[i] (n entries, caller's) gets each record's outcome: a
 * duplicate idempotency key or an invalid record does not fail the others;
 * err then names the first invalid record (field "jobs[i].tenant", code 0).
 * Returns the number of jobs inserted (0..n), or a negative code when
 * nothing was written: GX_ESTORE (the whole group rolled back; every res[i]
 * says GX_ESTORE), GX_EINVAL (bad arguments), GX_ECLOSED. */
int64_t gx_store_insert_jobs(gx_store *s, const gx_store_job *jobs, size_t n,
                             gx_store_insert_result *res, gx_error *err);

/* The same without blocking: the jobs are queued (validated first, each
 * res[i].code set for the invalid ones) and done(ctx, rc, err) is called
 * once they are committed, from the store's committer thread (keep it
 * short; it must not call back into the store and wait), with rc as
 * gx_store_insert_jobs returns it (the number inserted, or a negative
 * code; res filled). jobs, res and every string they point to must stay
 * valid until done is called. Returns 0 when done will be called (already
 * called, from this thread, when no record was valid), or a code with done
 * never called: GX_EINVAL, GX_ECLOSED (the store is closing). */
typedef void (*gx_store_done_fn)(void *ctx, int64_t rc, const gx_error *err);
int gx_store_insert_jobs_async(gx_store *s, const gx_store_job *jobs, size_t n, gx_store_insert_result *res,
                               gx_store_done_fn done, void *ctx, gx_error *err);

/* Apply n updates, queued behind every write queued before (FIFO). With
 * wait = 1 block until durable; codes (n entries or NULL) gets 0, GX_ESTATE
 * (fenced: stale attempt or from_mask) or GX_ENOTFOUND (no such job; or a
 * compare-and-set from a final state to an unfinished one, a re-queue,
 * found a blob the job names gone or no longer its tenant's: the job needs
 * its blobs again, and they count as used now) per update; returns the
 * number applied. With wait = 0 the updates are copied, queued and the
 * call returns 0 at once (codes unused); a later failure of their group is
 * counted in stats.async_failures and reported by the next gx_store_flush.
 * GX_EINVAL (nothing queued) if an update is malformed (bad state, id 0). */
int64_t gx_store_update_jobs(gx_store *s, const gx_store_update *ups, size_t n, int wait,
                             int *codes, gx_error *err);

/* Block until every write queued before this call is committed. GX_ESTORE
 * if a non-waiting write failed since the previous flush. */
int gx_store_flush(gx_store *s, gx_error *err);

/* One job by id; *out (gx_store_free) or GX_ENOTFOUND. */
int gx_store_get_job(gx_store *s, uint64_t id, gx_store_job **out, gx_error *err);

/* Jobs matching f (NULL = all) in id order (descending with f->desc), at
 * most f->limit. *jobs (gx_store_free; NULL when *n is 0), *n; *next (may
 * be NULL) is the cursor for the next page (pass as f->after, or as
 * f->before with f->desc), 0 when there is no more. */
int gx_store_list_jobs(gx_store *s, const gx_store_filter *f, gx_store_job **jobs,
                       size_t *n, uint64_t *next, gx_error *err);

/* A job's events in seq order. *ev (gx_store_free; NULL when *n is 0).
 * GX_ENOTFOUND if the job does not exist. */
int gx_store_job_events(gx_store *s, uint64_t id, gx_store_event **ev, size_t *n,
                        gx_error *err);

/* Largest job id stored, 0 when there is none (ids continue from it). */
int gx_store_max_job_id(gx_store *s, uint64_t *out, gx_error *err);

/* Restore after a restart: first, in one transaction, every job recorded as
 * scheduled or running goes back to queued with attempt + 1, device -1,
 * start_ns 0 and an event "requeued after restart"; then fn is called for
 * every job not in a final state (queued, waiting, retrying), in id order.
 * *requeued (may be NULL) gets how many were moved back. fn may call other
 * store functions except gx_store_load_unfinished and gx_store_close. */
int gx_store_load_unfinished(gx_store *s, gx_store_job_fn fn, void *ctx, int64_t *requeued,
                             gx_error *err);

/* ---- retention ------------------------------------------------------------ */

typedef struct gx_store_purge_result {
    int64_t jobs;          /* finished jobs deleted */
    int more;              /* 1: more such jobs may remain: call again with
                              cursor as it is now */
    uint64_t cursor;       /* in: 0 to start from the oldest job, or the
                              value the previous call left when it said
                              more; out: where the next call goes on */
    int64_t blobs_doomed;  /* blobs marked for deletion now */
    int64_t blobs_deleted; /* blobs deleted now (rows and files) */
} gx_store_purge_result;

/* One step of retention, in one transaction behind every write queued
 * before it:
 *  - up to max_jobs jobs in a final state that ended before jobs_before_ns
 *    (0: none) are deleted with their events and checkpoint, oldest ids
 *    first from out->cursor (read on entry);
 *  - blobs doomed by an earlier call before doomed_before_ns (0: none) and
 *    not used since are deleted, rows and files;
 *  - blobs last uploaded or named by a submitted job before blobs_before_ns
 *    (0: none) that no unfinished job names are doomed: readable as before,
 *    deleted by a later call unless used again in between (an upload of
 *    the same bytes, or a job naming it, takes it back). At most 4,096 a
 *    call, the longest unused first; which of them an unfinished job names
 *    is read before the transaction (the backend's blob_candidates), so
 *    that a large backlog does not hold up the writes behind it.
 * A job insert that names a blob deleted meanwhile is refused with
 * GX_ENOTFOUND (its result code). Uploads wait while files are removed. */
int gx_store_purge(gx_store *s, int64_t jobs_before_ns, size_t max_jobs, int64_t blobs_before_ns,
                   int64_t doomed_before_ns, gx_store_purge_result *out, gx_error *err);

/* Remove the files in blob folder shard (0..255: the folder named by the
 * first two hex digits) that no blob row names, or that an interrupted
 * write left (".tmp-..."), last changed more than older_than_s seconds
 * ago: what a crash between a file and its row leaves behind (an upload
 * that wrote the file, a retention step that deleted the rows). *removed
 * (may be NULL) gets how many. */
int gx_store_blob_sweep(gx_store *s, unsigned shard, int64_t older_than_s, int64_t *removed, gx_error *err);

/* ---- checkpoints ---------------------------------------------------------- */

/* Keep the latest checkpoint of a job (opaque bytes, the state after `step`
 * steps of attempt `attempt`), replacing the one before; durable on
 * return. Written only while the job exists and is not final: *stored (may
 * be NULL) says whether it was. A job's checkpoint is deleted when the job
 * reaches a final state. GX_EUNSUPPORTED for a backend without them. */
int gx_store_checkpoint_put(gx_store *s, uint64_t job_id, int attempt, int64_t step, const void *bytes,
                            size_t len, int *stored, gx_error *err);

/* The latest checkpoint of a job: *bytes (gx_store_free), *len, its
 * attempt and step. GX_ENOTFOUND when there is none. */
int gx_store_checkpoint_get(gx_store *s, uint64_t job_id, int *attempt, int64_t *step, void **bytes,
                            size_t *len, gx_error *err);

/* ---- settings ------------------------------------------------------------- */

/* Set (value != NULL) or delete (NULL) one setting; durable on return.
 * Keys are 1-200 printable ASCII bytes, values at most 65,536 bytes.
 * GX_EUNSUPPORTED for a backend without settings. */
int gx_store_setting_put(gx_store *s, const char *key, const char *value, gx_error *err);
/* n of them in one transaction (all or none); err names the first bad key. */
int gx_store_settings_put(gx_store *s, const char *const *keys, const char *const *values, size_t n, gx_error *err);
/* Every setting whose key starts with prefix ("" for all), in key order:
 * *out (one block, gx_store_free) and *n. */
int gx_store_settings_get(gx_store *s, const char *prefix, gx_store_setting **out, size_t *n, gx_error *err);

/* The id of the stored job of tenant with idempotency key key (committed
 * ones): 0, GX_ENOTFOUND, or GX_EUNSUPPORTED for a backend without it. */
int gx_store_find_idempotent(gx_store *s, const char *tenant, const char *key, uint64_t *id, gx_error *err);

/* ---- tenants -------------------------------------------------------------- */

/* Create or replace a tenant's settings (durable on return). */
int gx_store_tenant_upsert(gx_store *s, const gx_store_tenant *t, gx_error *err);
/* *out (gx_store_free) or GX_ENOTFOUND. */
int gx_store_tenant_get(gx_store *s, const char *name, gx_store_tenant **out,
                        gx_error *err);
/* Every tenant by name; *out (gx_store_free; NULL when *n is 0). */
int gx_store_tenant_list(gx_store *s, gx_store_tenant **out, size_t *n, gx_error *err);

/* ---- blobs ---------------------------------------------------------------- */

/* 1 if id is exactly "sha256:" followed by 64 lowercase hex digits. */
int gx_store_blob_id_valid(const char *id);

/* Store len bytes for tenant and write their id ("sha256:<hex>") to id_out
 * (GX_STORE_BLOB_ID_LEN bytes). Bytes already stored (by anyone) are not
 * written again; the tenant is recorded as an owner. Durable on return. */
int gx_store_blob_put(gx_store *s, const char *tenant, const void *bytes, size_t len,
                      char id_out[GX_STORE_BLOB_ID_LEN], gx_error *err);

/* Where the bytes of a blob the tenant owns are: path (cap bytes) and size
 * (may be NULL). GX_EINVAL for a malformed id, GX_ENOTFOUND if this tenant
 * does not own it (also when another tenant does), GX_ESTORE if the bytes
 * are missing or damaged: the file is read and its SHA-256 checked against
 * the id (about 1.7 GB/s here), so bytes that rotted on disk are never
 * served or computed on; a file that passed in the last 10 minutes and is
 * still the same file (inode, size, times) is not read again. tenant NULL: a blob any tenant owns (for admins).
 * The file must only be read. */
int gx_store_blob_open(gx_store *s, const char *tenant, const char *id, char *path,
                       size_t cap, int64_t *size, gx_error *err);

/* The same, open: *fd_out (read-only, close it) is the very file that was
 * checked, which a path opened again need not be (a file renamed over it
 * meanwhile). For downloads and job inputs. */
int gx_store_blob_open_fd(gx_store *s, const char *tenant, const char *id, int *fd_out, int64_t *size,
                          gx_error *err);

/* The bytes of a blob the tenant owns in a malloc'd buffer (*bytes,
 * gx_store_free; never NULL on success, even for 0 bytes), checked against
 * the id. Errors as for gx_store_blob_open. */
int gx_store_blob_read(gx_store *s, const char *tenant, const char *id, void **bytes,
                       size_t *len, gx_error *err);

/* ---- health and metrics --------------------------------------------------- */

/* Full integrity check of the database (PRAGMA integrity_check for sqlite).
 * 0 and "ok" in msg, or GX_ESTORE and the first findings. msg may be NULL. */
int gx_store_check(gx_store *s, char *msg, size_t cap);

/* A consistent snapshot of the statistics. */
void gx_store_stats_get(gx_store *s, gx_store_stats *out);

#ifdef __cplusplus
}
#endif
#endif
