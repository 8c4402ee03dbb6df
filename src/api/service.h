/*
 * service.h - gexecd's service: the engine, the durable store, the HTTP API
 * and the threads that tie them together.
 *
 * Durability: a job is answered 202 only after its row is committed. An
 * HTTP handler validates a request, assigns its job ids, queues its rows in
 * the store (gx_store_insert_jobs_async) and suspends; the store commits
 * everything queued at once (group commit); then the jobs of all the
 * requests of a commit go to the engine in one batch and the requests are
 * completed: on the committer thread itself when the commit carried up to
 * GX_SVC_INLINE_JOBS jobs (a hand-over to another thread cost more than
 * the work), else by the admitter threads, while the committer writes the
 * next commit. No thread waits for a commit. Job ids are assigned before the commit,
 * and the engine sees a job only after it, so the engine's state changes
 * always follow the insert in the store's FIFO write queue.
 *
 * State changes come from the engine as events; the persister thread turns
 * them into store updates (fenced by attempt), writes the outputs of
 * succeeded jobs (inline JSON when small, .npy blobs when not), feeds the
 * server-sent event streams and the metrics.
 */
#ifndef GX_SERVICE_H
#define GX_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>

#include "gexec/gexec.h"
#include "gexec/gexec_auth.h"
#include "gexec/gexec_config.h"
#include "gexec/gexec_store.h"
#include "hmap.h"
#include "http.h"
#include "jobjson.h"

typedef struct gx_service gx_service;

/* Admitter threads (see above): they answer the admissions of commits
 * that carried more than GX_SVC_INLINE_JOBS jobs (batches), while the next
 * commits go on; smaller ones are answered on the committer thread. */
#define GX_SVC_ADMITTERS 2
#define GX_SVC_INLINE_JOBS 256

/* Outputs up to this many elements are returned inline as JSON. */
#define GX_INLINE_MAX_ELEMS 4096

/* Start everything (store open, restore, engine, HTTP). cfg is copied. */
int gx_service_start(const gx_config *cfg, gx_service **out, gx_error *err);
/* Graceful stop: stop accepting, wait up to shutdown_timeout for running
 * jobs, persist, close. */
void gx_service_stop(gx_service *s);
int gx_service_port(const gx_service *s);
int gx_service_ready(gx_service *s, char *why, size_t cap);

/* Self-restart after a device loss (svc_restart.c). gexecd's main thread
 * wakes on SIGUSR2; pending (1, reason copied) means: call
 * gx_service_stop_for_exec, then execv gexecd with the returned listening
 * socket in GEXEC_LISTEN_FD (FD_CLOEXEC cleared) and GEXEC_RESTARTS set to
 * what it wrote to restarts. The stop drains as gx_service_stop does, for at
 * most GX_RESTART_DRAIN_MS, persists every state change and closes the
 * store, but leaves the engine's threads to the exec and frees nothing.
 * Returns the socket, -1 when there is none. */
#define GX_RESTART_LIMIT 3      /* restarts ... */
#define GX_RESTART_WINDOW_S 600 /* ... within this many seconds; then no more */
#define GX_RESTART_DRAIN_MS 5000
int gx_service_restart_pending(gx_service *s, char *reason, size_t cap);
int gx_service_stop_for_exec(gx_service *s, char *restarts, size_t cap);

/* ---- internals shared with routes.c ------------------------------------ */

typedef struct gx__admit gx__admit;
typedef struct gx__later gx__later;
typedef struct gx__sub gx__sub;
typedef struct gx_metrics gx_metrics;

/* Why a stream gets a reset event (svc_events.c). */
enum { GX__RESET_MALFORMED, GX__RESET_OTHER_RUN, GX__RESET_UNKNOWN, GX__RESET_TOO_OLD, GX__RESET_LAGGED,
       GX__RESET_COUNT };

struct gx_service {
    gx_config cfg;
    gx_engine *engine;
    gx_store *store;
    gx_http_server *http;
    int lock_fd;                 /* <data_dir>/gexecd.lock, flock'd; -1: none */
    int store_lock_fd;           /* <store.path>.lock (SQLite), flock'd; -1: none */
    int blob_lock_fd;            /* <blobs.dir>/.gexecd.lock, flock'd; -1: none */
    int listen_fd;               /* bound before anything else, until HTTP takes it; -1 */
    struct gx_svc_metrics *m;    /* metric handles (routes.c) */
    atomic_int m_live;           /* m is complete: the committer may observe */
    int64_t start_ns;
    atomic_int restored;         /* restore finished: ready, and requests served */
    char cpu_selftest[256];      /* "" when passed */
    _Atomic gx_job_id selftest_id; /* the self-test's job while it runs (not counted in metrics); 0 after */
    atomic_uint_fast64_t next_id;
    /* admission */
    pthread_mutex_t amu;
    pthread_cond_t acv;
    gx__admit *aq_head, *aq_tail;
    gx__admit *cq_head, *cq_tail; /* one commit's admissions (committer thread only) */
    pthread_t admitter[GX_SVC_ADMITTERS];
    int nadmitters;              /* started */
    int admit_busy;              /* admitters inside a group (amu) */
    int64_t admit_inflight;      /* admissions handed to the store, not yet answered (amu) */
    int admit_closed;            /* stopping: new admissions answer 503 (amu) */
    pthread_mutex_t idmu;        /* next_id's blocks and inflight */
    gx__admit *inflight;         /* admissions with ids whose commit is not done,
                                    newest (highest ids) first */
    gx__admit *inflight_tail;    /* its oldest: the lowest ids in flight */
    pthread_cond_t idcv;         /* an admission left inflight */
    pthread_cond_t adone;        /* an admitter finished a group while closed */
    /* persistence of events */
    pthread_mutex_t pmu;
    pthread_cond_t pcv;
    gx_event *pev;
    size_t pn, pcap;
    pthread_t persister;
    int64_t persisted;           /* events handled (for flush waits) */
    struct gx__later { gx_job_id id; int attempt; } *later; /* final jobs to forget once off their device */
    size_t nlater, caplater;     /* (persister thread only) */
    int64_t enqueued;
    /* dependencies of admissions in flight: the persister does not make
     * the engine forget them (a dependent refused as "job N does not
     * exist" when its dependency ended and was forgotten between its
     * decode and its submission to the engine) */
    pthread_mutex_t pinmu;
    pthread_mutex_t tmu; /* tenant changes, one at a time: PUT /v1/tenants's read,
                            store and engine steps, and the making of a
                            key's or restored job's tenant */
    gx__hmap pins;               /* job id (8 bytes) -> admissions pinning it */
    /* retention (retention.c) */
    pthread_t retainer;
    int retain_started;
    pthread_mutex_t rmu;
    pthread_cond_t rcv;
    int retain_stop;             /* rmu */
    atomic_int_fast64_t purged_jobs, purged_blobs;
    /* event streams (svc_events.c) */
    pthread_mutex_t smu;
    gx__sub *subs;
    struct gx__evrec *ring;      /* the last ring_cap changes published, by seq (smu) */
    uint64_t ring_cap;           /* http.stream_replay_events */
    uint64_t ev_seq;             /* changes published: the last one's seq (smu) */
    uint64_t ev_boot;            /* this run's part of every event id (random) */
    int64_t ev_replayed;         /* events sent from the ring (smu) */
    int64_t ev_resets[GX__RESET_COUNT];        /* reset events sent, by GX__RESET_* (smu) */
    /* blob cache */
    pthread_mutex_t bmu;
    struct gx__bcache *bcache;
    atomic_int stopping;         /* set under smu; read under smu, pmu and amu */
    atomic_int draining;         /* SIGTERM seen: /readyz answers 503 */
    int persist_stop;            /* the persister ends once its queue is empty (pmu) */
    pthread_mutex_t dmu;         /* a drain's store write and its effect, together */
    struct gx__usage_saved {     /* gx__svc_usage_save: each tenant's device time when last */
        char name[64];           /* stored (persister thread, then shutdown) */
        double device_s;
    } *usage;
    size_t nusage;
    /* auth (auth_routes.c); all NULL when auth.enabled is false */
    gx_auth_keys *keys;
    gx_audit *audit;
    gx_auth_limiter *limiter;
    gx_auth_limiter *refused_limiter; /* per client address, requests without a valid key */
    /* durable checkpoints (checkpoints.c) */
    struct gx__ckq *ckq;
    /* self-restart (svc_restart.c) */
    atomic_int restart_pending;  /* a device was lost: main() re-executes; 1 while restart_reason is written, then 2 */
    char restart_reason[192];    /* written between restart_pending's 1 and 2 (release) */
    int64_t restarts_total;      /* restarts of this daemon (GEXEC_RESTARTS) */
    int64_t restart_times[GX_RESTART_LIMIT + 1]; /* unix s, in the guard window */
    int nrestart_times;
};

/* An admission: one request's jobs, queued in the store and answered once
 * committed. */
struct gx__admit {
    gx_http_req *req;
    gx_jobreq *jobs;        /* [n] decoded specs (validated) */
    size_t n;
    int *codes;             /* [n] per job: 0 or refused earlier (batch) */
    gx_error *errs;         /* [n] */
    gx_job_id *ids;         /* [n] assigned */
    int *dup;               /* [n] 1 when an idempotent repeat */
    size_t *order;          /* [n] a batch's jobs, each after its batch
                               dependencies (batch_cycles' walk); NULL:
                               request order */
    size_t *same;           /* [n] a batch's job that the store keeps for
                               each job's idempotency key (the first one
                               accepted with it), or the job itself; NULL:
                               no key repeats in the batch */
    int batch;              /* answer as a batch */
    int prio;               /* the tenant's default_priority, for its jobs
                               that set none: looked up once a request */
    int have_prio;          /* prio is looked up */
    char qtenant[64];       /* tenant whose quota reserved qn jobs for it */
    int64_t qn;             /* released by gx__admit_free */
    gx_engine *qengine;
    gx_job_id id_lo;        /* its first id (0: none), while in s->inflight */
    gx__admit *iprev, *inext;
    int store_failed;       /* the group's commit failed: answer 503 */
    char store_msg[320];    /* why, for the answer */
    /* the store rows of its accepted jobs (gx__svc_admit), alive until the
     * commit's callback and the answer */
    gx_service *svc;
    size_t total;           /* rows */
    gx_store_job *rows;
    gx_store_insert_result *res;
    char **labels;          /* [total] JSON or NULL */
    char (*kname)[80];      /* [total] "name@version" */
    int64_t t0;             /* handed to the store (monotonic ns) */
    double commit_secs;     /* until committed */
    pthread_t submitter;    /* the HTTP thread that queued it (the store may call back on it) */
    gx__admit *next;
    /* the arrays of a request of one job (a single submit), in place: nine
     * allocations and frees fewer per POST /v1/jobs */
    struct {
        gx_jobreq job;
        int code, dup;
        gx_error err;
        gx_job_id id;
        gx_store_job row;
        gx_store_insert_result res;
        char *label;
        char kname[80];
    } one;
};

void gx__svc_admit(gx_service *s, gx__admit *a);
/* a->same for the jobs not refused so far (NULL when no key repeats or out
 * of memory) */
size_t *gx__admit_same_keys(const gx__admit *a);
/* Refuse each repeat (a->same) of a job refused so far, with its code. */
void gx__admit_refuse_repeats(gx__admit *a);
/* The job of tenant with idempotency key key: the engine's, or a stored one
 * the engine has forgotten (ended). 0 or GX_ENOTFOUND. */
int gx__svc_find_idempotent(gx_service *s, const char *tenant, const char *key, gx_job_id *id);
/* Wait until every state change seen so far is written to the store (reads
 * of the store then agree with the engine). */
void gx__svc_settle(gx_service *s);
/* The same for at most timeout_ms (< 0: no limit): 0 when every event so far
 * is stored, GX_ETIMEDOUT (the store is failing, or stopping) or GX_ESTORE. */
int gx__svc_settle_for(gx_service *s, int64_t timeout_ms);
/* The note of an operator's re-queue in the job's events (the restore
 * finds the re-queue's attempt by it). */
#define GX_SVC_REQUEUE_NOTE "re-queued by "
/* How long an HTTP thread waits for the store in a read or a cancel. */
#define GX_SVC_SETTLE_MS 3000
/* Drop dependencies on jobs that ended before (and were forgotten by the
 * engine): succeeded ones are satisfied; others make the job fail at
 * submit (GX_EDEPFAILED naming the dependency). restoring: a stored job
 * (a restart, a requeue), whose dependencies existed when it was
 * submitted: one no longer stored (deleted by store.retention) is
 * satisfied. */
int gx__svc_resolve_deps(gx_service *s, gx_jobreq *jr, const char *prefix, int restoring, gx_error *err);
/* Let go of the dependencies resolve_deps pinned (an admission's end). */
void gx__svc_unpin_deps(gx_service *s, gx_jobreq *jr);

/* Retention (retention.c): a thread that deletes finished jobs older than
 * store.retention and blobs unused for as long; 0 = keep everything (no
 * thread). Start after the restore; stop before the store closes. */
int gx__svc_retention_start(gx_service *s);
void gx__svc_retention_stop(gx_service *s);
void gx__admit_free(gx__admit *a);
/* Stop (gx_service_stop) or, for_exec, stop for a re-exec (see
 * gx_service_stop_for_exec, which returns what this does). */
int gx__svc_shutdown(gx_service *s, int for_exec);
/* A device's status for a key that reads its own tenant only, or for
 * /readyz (no key): each "job N" (the health loop names the job a fault
 * came with, src/exec/health.c) becomes "a job", since job ids are global
 * and the job may be another tenant's; its owner finds the fault in the
 * job's events. In place (routes.c). */
void gx__svc_status_redact_jobs(char *status);
/* A job's object as JSON text (routes.c): from the engine's snapshot info,
 * or from the store when sj is given or the engine no longer holds the job
 * (it ended and was forgotten after info was taken, and its labels with
 * it). malloc'd; NULL when out of memory or unreadable. */
char *gx__svc_job_text(gx_service *s, const gx_job_info *info, const gx_store_job *sj, size_t *len);
/* ... as the reply with status; when it cannot be written, {"id","state"}
 * with the same status (the answer to a change already made) */
void gx__svc_reply_job(gx_service *s, gx_http_req *r, int status, const gx_job_info *info, const gx_store_job *sj);
void gx__svc_restart_init(gx_service *s);
void gx__svc_inject_env(int before_selftest); /* GEXEC_INJECT_FAULT (tests) */
int gx__svc_inherited_listener(void); /* GEXEC_LISTEN_FD, checked; -1 none */
int gx__svc_device_lost(void *ctx, int device, const char *reason, char *why_not, size_t cap);
/* engine on_device_health: logs a device's fault (warn), its recovery
 * (info) and its giving up (error). */
void gx__svc_device_health(void *ctx, int device, const char *name, const char *status);

/* Blob inputs (gx_blob_loader for gx_jobreq_decode). */
int gx__svc_blob_load(void *svc, const char *tenant, const char *id, gx_array **out, gx_error *err);
/* Outputs of a succeeded job as the API's manifest object. */
json_t *gx__svc_outputs_json(gx_service *s, const char *tenant, gx_output *outs, int n, gx_error *err);

/* Event streams. */
typedef struct gx__sub_filter {
    gx_job_id job;
    unsigned state_mask;
    char kernel[64];
    uint32_t tenant;
    int tenant_set;
} gx__sub_filter;
/* Where a stream resumes: after the event of id <boot>-<seq>. */
typedef struct gx__sub_resume {
    int malformed;     /* the client's id is not an event id: a reset */
    uint64_t boot, seq;
} gx__sub_resume;
const char *gx__svc_reset_name(int reason);
/* Answer r with an event stream: from now (from NULL), or the events after
 * from's id that pass f, then live. */
void gx__svc_subscribe(gx_service *s, gx_http_req *r, const gx__sub_filter *f, const gx__sub_resume *from);
/* Parse an event id "<16 hex>-<seq>": 0, or -1 when text is not one. */
int gx__svc_event_id_parse(const char *text, uint64_t *boot, uint64_t *seq);
/* The ring and this run's id (start), and their end (after HTTP stopped). */
int gx__svc_events_init(gx_service *s);
void gx__svc_events_free(gx_service *s);
/* The persister: publish changes, in order, to the ring and the streams. */
void gx__svc_publish(gx_service *s, const gx_event *ev, size_t n);
/* Events sent from the ring, and resets by reason, since start (metrics). */
void gx__svc_events_counts(gx_service *s, int64_t *replayed, int64_t resets[GX__RESET_COUNT]);
/* The highest job id below which every id is committed or refused: a
 * listing stops there, so that a job committed after a later one is not
 * skipped by a cursor past that one. */
gx_job_id gx__svc_list_watermark(gx_service *s);
/* Wait at most timeout_ms for the watermark to pass after; the watermark. */
gx_job_id gx__svc_list_watermark_wait(gx_service *s, gx_job_id after, int64_t timeout_ms);
/* End the event streams opened with key_id (it was revoked). */
void gx__svc_streams_revoke(gx_service *s, const char *key_id);

/* Route table and HTTP hooks (routes.c). */
extern const gx_route gx__routes[];
extern const int gx__nroutes;
void gx__svc_http_done(void *app, const gx_http_req *r, double seconds);
int gx__svc_http_pre(void *app, gx_http_req *r);
/* Auth (auth_routes.c). */
int gx__svc_auth_open(gx_service *s, gx_error *err);
void gx__svc_auth_close(gx_service *s);
void gx__svc_audit(gx_service *s, const gx_http_req *r, const char *action, const char *target,
                   const char *outcome, const char *detail);
void gx__svc_audit_done(gx_service *s, const gx_http_req *r);
/* Setting key prefix of a drained device ("device.drain/<name>": "1"). */
#define GX__DRAIN_KEY "device.drain/"
/* The records of n answered requests in one append (marks them audited). */
void gx__svc_audit_done_n(gx_service *s, gx_http_req *const *rs, size_t n);
int gx__h_key_create(void *app, gx_http_req *r);
int gx__h_key_list(void *app, gx_http_req *r);
int gx__h_key_revoke(void *app, gx_http_req *r);
/* Tenants and quotas (tenants.c). */
int gx__h_tenant_put(void *app, gx_http_req *r);
int gx__h_tenant_list(void *app, gx_http_req *r);
int gx__h_tenant_usage(void *app, gx_http_req *r);
/* Add the default tenant and the stored ones to the engine, with quotas. */
int gx__svc_tenants_load(gx_service *s, gx_error *err);
/* A tenant's trailing-hour device time to the store (when it changed) /
 * back into the engine at start. */
void gx__svc_usage_save(gx_service *s);
void gx__svc_usage_load(gx_service *s);
/* Create a tenant (default quotas) unless it exists, in the store, then
 * the engine: 0, or the error (GX_ESTORE: not stored, not created). */
int gx__svc_tenant_ensure(gx_service *s, const char *name, gx_error *err);
/* Check an admission's jobs against the caller's tenant quotas that refuse
 * (max_queued, device-seconds per hour), all or nothing: 0 (reserved, the
 * reservation ends with gx__admit_free), or -1 with the 429 sent. */
int gx__svc_quota_admit(gx_service *s, gx_http_req *r, gx__admit *a);
/* The 429 of a refused admission of n jobs (gx_tenant_admit's rc, why and
 * error); more is added to the message. */
void gx__svc_quota_refused(gx_http_req *r, int rc, const gx_quota_refusal *why, const gx_error *e, int64_t n,
                           const char *more);
/* Quota q (0..gx__svc_quota_count()-1) of a tenant: name, limit, usage. */
size_t gx__svc_quota_count(void);
void gx__svc_quota_value(const gx_tenant_info *t, size_t q, const char **name, double *limit, double *usage);
int gx__h_audit(void *app, gx_http_req *r);
int gx__h_whoami(void *app, gx_http_req *r);
/* Fault injection and dead letters (fault_routes.c). */
int gx__svc_faults_start(gx_service *s, gx_error *err);
/* faults.startup checked as gx__svc_faults_start would, arming nothing. */
int gx__svc_faults_check(const gx_config *cfg, gx_error *err);
int gx__h_faults_list(void *app, gx_http_req *r);
int gx__h_faults_arm(void *app, gx_http_req *r);
int gx__h_faults_clear(void *app, gx_http_req *r);
int gx__h_job_requeue(void *app, gx_http_req *r);
/* The built-in dashboard's files (dashboard.c), public: GET /dashboard and
 * the files it loads, each route its file. */
int gx__h_dashboard(void *app, gx_http_req *r);
/* Durable checkpoints (checkpoints.c): the writer thread (start before the
 * engine, stop after it), the engine 's on_checkpoint, and the stored
 * checkpoint of a job as arrays (*n 0 when there is none; free with
 * gx__svc_ckpt_free). */
int gx__svc_ckpt_start(gx_service *s);
void gx__svc_ckpt_stop(gx_service *s, int keep);
int gx__svc_on_checkpoint(void *ctx, gx_job_id id, int attempt, int64_t step, gx_array *const *state, int n);
int gx__svc_ckpt_load(gx_service *s, gx_job_id id, gx_array ***arr, int *n, int64_t *step, int *attempt,
                      gx_error *err);
void gx__svc_ckpt_free(gx_array **arr, int n);
/* Checkpoints stored and dropped since start (metrics). */
void gx__svc_ckpt_counts(gx_service *s, int64_t *written, int64_t *dropped);
int gx__svc_metrics_init(gx_service *s);
void gx__svc_metrics_free(gx_service *s);
void gx__svc_metrics_events(gx_service *s, const gx_event *ev, size_t n);
void gx__svc_metrics_commit(gx_service *s, size_t jobs, double seconds);
void gx__svc_metrics_submitted(gx_service *s, const gx_job_spec *specs, const int *codes, size_t n);
void gx__svc_on_commit(void *ctx, size_t rows, double seconds);

#endif
