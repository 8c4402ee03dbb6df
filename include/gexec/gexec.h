/*
 * gexec.h - libgexec, the in-process job execution engine.
 *
 * An engine owns devices (CPU workers now; GPUs from the CUDA backend), a
 * scheduler (per-tenant queues, priorities, weighted fair share by decayed
 * device time, dependencies, timeouts, placement) and the jobs it was given.
 * Jobs run kernels from the process-wide registry (gexec_kernel.h) on
 * reference-counted arrays (gexec_array.h).
 *
 * Every call returns 0 or a negative GX_E* code; calls that can fail on bad
 * input also fill an optional gx_error naming the field and the problem.
 * Nothing aborts on bad input. All engine calls are thread-safe.
 *
 * Lifecycle: gx_engine_create -> gx_tenant_add ... -> gx_submit ... ->
 * gx_job_wait / gx_job_get / gx_job_take_outputs -> gx_engine_destroy.
 */
#ifndef GEXEC_H
#define GEXEC_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_array.h"
#include "gexec_err.h"
#include "gexec_kernel.h"
#include "gexec_plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GX_VERSION_STRING "0.1.0"

typedef struct gx_engine gx_engine;
typedef uint64_t gx_job_id; /* > 0; ids grow with submission order */

/* ---- job states ----------------------------------------------------------- */

typedef enum gx_job_state {
    GX_JOB_QUEUED = 0,    /* runnable, waiting for its turn */
    GX_JOB_WAITING = 1,   /* waiting on dependencies */
    GX_JOB_SCHEDULED = 2, /* placed on a device, about to run */
    GX_JOB_RUNNING = 3,
    GX_JOB_RETRYING = 4,  /* failed transiently, waiting for its next attempt */
    GX_JOB_SUCCEEDED = 5,
    GX_JOB_FAILED = 6,
    GX_JOB_CANCELLED = 7,
    GX_JOB_TIMED_OUT = 8,
    GX_JOB_DEAD = 9,      /* exhausted its attempts (dead-letter list) */
    GX_JOB_STATE_COUNT
} gx_job_state;

const char *gx_job_state_name(int state); /* "queued", ...; "unknown" */
int gx_job_state_from_name(const char *name); /* -1 if unknown */
int gx_job_state_is_final(int state);

/* Why a job that is not running yet is not running. */
typedef enum gx_wait_reason {
    GX_WAIT_NONE = 0,         /* running or finished */
    GX_WAIT_QUEUE = 1,        /* behind other jobs (see position) */
    GX_WAIT_DEPENDENCY = 2,   /* waiting on job wait_on */
    GX_WAIT_TENANT_LIMIT = 3, /* tenant at its max running jobs */
    GX_WAIT_NO_DEVICE = 4,    /* no device it fits on has room now */
    GX_WAIT_BACKOFF = 5,      /* between attempts */
    GX_WAIT_PLACED = 6,       /* placed on a device, queued there */
    GX_WAIT_TENANT_MEMORY = 7, /* tenant at its device memory quota */
    GX_WAIT_CIRCUIT = 8        /* its kernel's circuit breaker is open */
} gx_wait_reason;
const char *gx_wait_reason_name(int r);

/* ---- engine --------------------------------------------------------------- */

/* One job state change, delivered to gx_engine_opts.on_events in batches,
 * from engine threads, without engine locks held. */
typedef struct gx_event {
    gx_job_id job;
    uint32_t tenant;  /* tenant index */
    int state;        /* new gx_job_state */
    int attempt;      /* attempt number (1-based) */
    int device;       /* device index, -1 if none */
    int error_code;   /* GX_E* for failures, 0 otherwise */
    int64_t time_ns;  /* CLOCK_REALTIME of the change */
    const char *kernel; /* kernel name (static) */
    int64_t run_ns;   /* device time of the attempt (final states) */
    int64_t queue_ns; /* submit to start (running and final states) */
    char error[160];  /* the error's message when error_code != 0 (the
                         failure of this attempt, for "retrying"); a note
                         otherwise ("fallback: ..."), or "" */
    int released;     /* queued: it waited on dependencies until now (not
                         the queued of its submission) */
    uint64_t seq;     /* the engine's order of its changes: 1, 2, 3, ...
                         Each thread hands over its own changes after it let
                         go of the engine, so batches can reach on_events
                         out of this order (a job's "running" before its
                         "queued"); sort by seq where order matters */
} gx_event;
typedef void (*gx_events_fn)(void *ctx, const gx_event *ev, size_t n);

typedef struct gx_engine_opts {
    int cpu_workers;          /* CPU worker threads; 0 = number of cores */
    int cpu_devices;          /* CPU devices to split the workers into (tests of
                                 placement); 0 = 1 */
    uint64_t cpu_mem_bytes;   /* memory budget of the CPU device; 0 = half of RAM */
    const char *placement;    /* "least_loaded" (default), "round_robin", "memory_best_fit"
                                 or "perf_model" (docs/operations.md) */
    double fair_halflife_s;   /* decay half-life of tenant usage (default 60) */
    int max_batch;            /* most jobs a worker takes at once (default 256) */
    double batch_quantum_us;  /* max expected work queued per device slot, and taken
                                 by a worker in one batch (default 2000) */
    uint64_t max_jobs;        /* live (non-forgotten) job limit; 0 = 1<<26 */
    gx_events_fn on_events;   /* optional state-change sink */
    void *events_ctx;
    int no_default_tenant;    /* 1: do not create tenant "default" */
    int cuda_disable;         /* 1: never load the CUDA backend */
    const char *cuda_plugin;  /* path of libgexec_cuda.so; NULL: $GEXEC_CUDA_PLUGIN,
                                 then beside the executable, then the loader path */
    int gpu_max_batch;        /* most jobs a GPU slot runs in one launch (default 64) */
    int gpu_batch_delay_us;   /* wait up to this long for a fuller batch (0 = take
                                 only what is queued) */
    int64_t hang_grace_ms;    /* a cancelled or timed-out call that has not returned
                                 after this long is hung: its device is reset
                                 (default 5000) */
    int poison_faults;        /* device faults after which a job is dead (default 2) */
    int recovery_attempts;    /* resets tried before a device stays unhealthy
                                 (default 3) */
    /* Checkpoints of GX_KF_CHECKPOINT kernels, after the engine kept its
     * copy: called on the kernel's thread with that copy (valid during the
     * call; gx_array_ref to keep it), the job, its attempt and the step.
     * A non-zero return fails the kernel's save. NULL: memory only. */
    int (*on_checkpoint)(void *ctx, gx_job_id id, int attempt, int64_t step, gx_array *const *state,
                         int n);
    void *checkpoint_ctx;
    /* A device cannot be recovered in this process (its reset, reopen or
     * self-test failed after a device fault, or a slot stays stuck in a call
     * past hang_grace): with this set the device is `lost` at the first such
     * failure and this is called from the health thread, without engine
     * locks, once per loss. Return 1 when the process will be replaced (the
     * device stays lost: no placements); 0 when it will not, with why_not
     * (cap bytes) saying why: the device is then unhealthy as without the
     * callback. NULL: recovery is retried recovery_attempts times. */
    int (*on_device_lost)(void *ctx, int device, const char *reason, char *why_not, size_t cap);
    void *device_lost_ctx;
    int retry_base_ms;        /* back-off before attempt 2: uniform in [0, base];
                                 doubling per attempt (full jitter); 0 = 100 */
    int retry_cap_ms;         /* upper bound of the back-off; 0 = 10000 */
    int breaker_threshold;    /* consecutive device/kernel failures that open a
                                 circuit breaker; 0 = 5, < 0 = no breakers */
    int breaker_cooldown_ms;  /* open breaker -> half-open probe after; 0 = 30000 */
    /* A device's health status changed: a fault ("recovering: <reason>"),
     * back to "ok", given up ("unhealthy: ...", "lost: ..."). Called from
     * the health thread, without engine locks, in order, with the device's
     * index, name and new status (for logs). NULL: nothing is said. */
    void (*on_device_health)(void *ctx, int device, const char *name, const char *status);
    void *device_health_ctx;
} gx_engine_opts;

void gx_engine_opts_init(gx_engine_opts *o);

/* Create and start an engine. *out is released with gx_engine_destroy. */
int gx_engine_create(const gx_engine_opts *o, gx_engine **out, gx_error *err);

/* Stop workers (running kernels are told to cancel and are waited for) and
 * free everything. Unfinished jobs are dropped without events: a daemon
 * with a durable store restores them at its next start. No other call may
 * be in progress or follow. NULL ok. */
void gx_engine_destroy(gx_engine *e);

/* Return once every state change made so far has been handed to
 * opts.on_events (workers deliver events just after releasing the lock). */
void gx_engine_sync_events(gx_engine *e);

/* Pause (1) or resume (0) dispatch: paused, queued jobs stay queued and
 * running ones finish. For graceful shutdown. */
void gx_engine_pause(gx_engine *e, int paused);

/* Block until every submitted job is final or timeout_ms passes (-1 =
 * forever). GX_ETIMEDOUT on timeout. */
int gx_engine_drain(gx_engine *e, int64_t timeout_ms);

/* ---- tenants -------------------------------------------------------------- */

typedef struct gx_tenant_opts {
    const char *name;   /* [A-Za-z0-9_.-]{1,63} */
    double weight;      /* share, 1e-6..1e6 (default 1) */
    int max_running;    /* max jobs placed or running at once; 0 = no limit */
    /* Quotas; 0 = unlimited. max_running and max_mem make jobs wait (see
     * gx_job_info.reason); max_queued and max_device_s_hour refuse new
     * jobs in gx_tenant_admit. */
    int64_t max_queued;       /* jobs queued, waiting or retrying */
    uint64_t max_mem;         /* device memory of placed/running jobs, bytes */
    double max_device_s_hour; /* device-seconds used in the trailing hour */
    int default_priority;     /* -100..100: the priority of its jobs that set
                                 none (GX_PRIORITY_TENANT); default 0 */
} gx_tenant_opts;

/* A tenant name: 1 to 63 of [A-Za-z0-9_.-]. Stored names are checked
 * with this. */
int gx_tenant_name_valid(const char *name);
/* A name a new tenant may take: valid, and not "." or "..", which no URL
 * path (/v1/tenants/{name}) can carry: clients collapse them. Checked where
 * names are made (configuration, keys, PUT /v1/tenants). */
int gx_tenant_name_new_valid(const char *name);

/* Add a tenant (or update weight, limit and quotas of an existing one).
 * *id_out (may be NULL) receives its index. */
int gx_tenant_add(gx_engine *e, const gx_tenant_opts *t, uint32_t *id_out,
                  gx_error *err);

typedef struct gx_tenant_info {
    uint32_t id;
    char name[64];
    double weight;
    int max_running;
    int64_t queued;     /* jobs queued, waiting or retrying */
    int64_t running;    /* jobs placed or running */
    uint64_t mem_used;  /* device memory reserved by its placed/running jobs */
    double usage_s;     /* decayed device-seconds */
    double device_s;    /* total device-seconds consumed */
    int64_t max_queued;       /* quotas as in gx_tenant_opts; 0 = unlimited */
    uint64_t max_mem;
    double max_device_s_hour;
    double device_s_hour;     /* device-seconds of attempts ended in the last hour */
    int64_t reserved;         /* jobs admitted, not yet submitted */
    int default_priority;     /* of its jobs that set none */
} gx_tenant_info;
int gx_tenant_get(gx_engine *e, const char *name, gx_tenant_info *out);
/* Only the tenant's default priority (gx_tenant_get's default_priority,
 * without the usage it also computes): what each submission that sets no
 * priority needs. GX_ENOTFOUND for an unknown tenant. */
int gx_tenant_default_priority(gx_engine *e, const char *name, int *prio);
/* Up to cap tenants in creation order; *n gets how many exist in all. */
int gx_tenant_list(gx_engine *e, gx_tenant_info *out, size_t cap, size_t *n);

/* Why gx_tenant_admit refused. */
typedef struct gx_quota_refusal {
    char quota[32];       /* "max_queued" or "device_seconds_per_hour" */
    double limit;         /* the quota */
    double usage;         /* jobs queued (and reserved), or device-seconds */
    double retry_after_s; /* when the usage falls under the limit (rates;
                             whole seconds, >= 1); 0 for max_queued */
} gx_quota_refusal;

/* Admission of n new jobs of a tenant against its max_queued and
 * device-seconds-per-hour quotas. On success the n jobs are reserved
 * (counted as queued by later admissions) until gx_tenant_admit_release,
 * which the caller calls once the jobs were submitted or dropped. All or
 * nothing: n jobs that would exceed max_queued are refused together.
 * GX_EQUOTA (why and err filled, err naming quota, limit and usage),
 * GX_ENOTFOUND for an unknown tenant. gx_submit does not check these
 * quotas (jobs restored after a restart were admitted once already). */
int gx_tenant_admit(gx_engine *e, const char *tenant, int64_t n, gx_quota_refusal *why, gx_error *err);
void gx_tenant_admit_release(gx_engine *e, const char *tenant, int64_t n);

/* The device time of a tenant's trailing hour, to carry it across a
 * restart: up to cap slices of {age_ns: how long before now the slice
 * ended (>= 0), seconds}, newest first; *n gets how many. */
typedef struct gx_usage_slice {
    int64_t age_ns;
    double seconds;
} gx_usage_slice;
int gx_tenant_hour_export(gx_engine *e, const char *tenant, gx_usage_slice *out, size_t cap, size_t *n);
/* Adds slices exported earlier (their ages as of now: the exporter's ages
 * plus the time since) to the tenant's trailing hour; slices older than an
 * hour are dropped. GX_ENOTFOUND for an unknown tenant. */
int gx_tenant_hour_import(gx_engine *e, const char *tenant, const gx_usage_slice *in, size_t n);

/* ---- jobs ----------------------------------------------------------------- */

typedef struct gx_label {
    const char *key;
    const char *value;
} gx_label;

/* gx_job_spec.priority: the tenant's default_priority (gx_tenant_opts). */
#define GX_PRIORITY_TENANT (-0x7fffffff - 1)

typedef struct gx_job_spec {
    gx_job_id id;                /* 0: the engine assigns the next id; else an
                                    unused id (a daemon restoring its store) */
    const char *tenant;          /* NULL = "default" */
    const char *kernel;          /* "saxpy" or "saxpy@1" */
    const gx_named_arg *args;
    int nargs;
    const gx_named_input *inputs; /* the engine takes its own references */
    int ninputs;
    int priority;                /* -100..100, higher runs first;
                                    GX_PRIORITY_TENANT (what gx_job_spec_init
                                    sets): its tenant's default_priority */
    const gx_job_id *deps;       /* jobs that must succeed first */
    int ndeps;
    const int *batch_deps;       /* gx_submit_batch only: indices of other
                                    specs in the same call */
    int nbatch_deps;
    int64_t timeout_ms;          /* running wall limit; 0 = none */
    int64_t queue_timeout_ms;    /* limit on time before running; 0 = none */
    int max_attempts;            /* 1..100; 0 = the kernel's default_max_attempts
                                    (1 when it has none) */
    const char *device;          /* "any" (NULL), "cpu", "gpu", "gpu:N", "cpu:N" */
    const char *idempotency_key; /* same key + tenant -> same job */
    const gx_label *labels;
    int nlabels;
    int attempts_done;           /* attempts already made (restoring a job
                                    after a restart); 0 for new jobs */
    int attempt_base;            /* restoring a job: the attempts made
                                    that use none of its max_attempts
                                    (those before an operator's re-queue,
                                    those a device fault or a restart cut
                                    short); its budget counts from there,
                                    as live (0 = from the start) */
    int attempt_floor;           /* restoring a job a restart moved back to
                                    the queue: the attempt number its store
                                    record holds (attempts_done + 1; it
                                    fences the interrupted attempt's
                                    writes). Its final events carry no
                                    lower number, so that a cancel or
                                    timeout before it runs is recorded.
                                    0 = none */
    gx_array *const *resume;     /* a checkpoint to start from (restoring a
                                    GX_KF_CHECKPOINT job): the state saved
                                    after resume_step steps; the engine
                                    takes references. Ignored by other
                                    kernels. */
    int nresume;
    int64_t resume_step;
    int dev_faults_done;         /* device faults blamed on it before a restart
                                    (poison detection); 0 for new jobs */
    const char *fault_history;   /* with dev_faults_done: the text of those
                                    faults ("faulted cpu (...) on attempt 1") */
    const char *fallback;        /* NULL or "none"; "cpu": with device "gpu",
                                    run on a CPU while no GPU is usable */
    int restored;                /* 1: restoring a job from a store, which
                                    holds it in state stored_state: when it
                                    comes back in that state (queued, or
                                    waiting on dependencies), that first
                                    event is not sent again (it is recorded
                                    already) */
    int stored_state;            /* with restored: a gx_job_state */
    int64_t submitted_ns;        /* restoring: when the job was first
                                    submitted (CLOCK_REALTIME ns; 0 = now):
                                    its submit time and its queue_timeout_ms
                                    count from then, not from the restart */
    int quota_reserved;          /* 1: it was admitted by gx_tenant_admit; one
                                    of its tenant's reservations becomes this
                                    queued job, in the same step (no moment
                                    where both count) */
    uint64_t mem_bytes;          /* device memory the job says it needs; the
                                    engine counts the larger of this and its
                                    kernel's estimate from the inputs (0: the
                                    estimate) */
} gx_job_spec;

/* The error text of a job re-queued after a device fault blamed on it:
 * "device fault 1 of 2 blamed on this job: faulted cpu (...) on attempt 1".
 * A daemon restoring its store finds the count and the history in the job's
 * events with this (returns 1 and fills *n and *history, pointing into
 * text, when text is such a message). */
int gx_job_blame_parse(const char *text, int *n, const char **history);

void gx_job_spec_init(gx_job_spec *s);

/* Submit one job. On success *id is the new job, or the original job when
 * the idempotency key was seen before (then *dup, if given, is 1). */
int gx_submit(gx_engine *e, const gx_job_spec *s, gx_job_id *id, int *dup,
              gx_error *err);

/* Check a spec as gx_submit would (kernel, args, inputs, device, tenant,
 * dependencies) without submitting it. batch_deps are not checked. */
int gx_job_validate(gx_engine *e, const gx_job_spec *s, gx_error *err);

/* Submit n jobs at once (one lock, one wake-up). Each spec is accepted or
 * refused on its own: codes[i] is 0 (ids[i] set) or a GX_E* code (errs[i]
 * set when errs is given). A spec depending through batch_deps on a refused
 * spec is refused with GX_EDEPFAILED; cycles among batch_deps with
 * GX_ECYCLE. Returns the number accepted, or a negative code if nothing could
 * be attempted. ids and codes must hold n entries. */
int64_t gx_submit_batch(gx_engine *e, const gx_job_spec *specs, size_t n,
                        gx_job_id *ids, int *codes, gx_error *errs);

typedef struct gx_job_info {
    gx_job_id id;
    uint32_t tenant;
    char tenant_name[64];
    char kernel[64];       /* name@version */
    int state;
    int priority;
    int attempts;          /* attempts started so far */
    int max_attempts;
    int device;            /* device index of the last attempt, -1 if none */
    char device_name[32];
    int64_t submit_ns;     /* CLOCK_REALTIME, ns */
    int64_t start_ns;      /* start of the last attempt, 0 if never */
    int64_t end_ns;        /* 0 until final */
    int64_t queue_ns;      /* time from submit to last start (or to now) */
    int64_t run_ns;        /* device time of the last attempt */
    int error_code;        /* GX_E* for failed/cancelled/timed-out jobs */
    char error[256];       /* why it failed, naming the culprit */
    int wait_reason;       /* gx_wait_reason, for jobs not running yet */
    gx_job_id wait_on;     /* GX_WAIT_DEPENDENCY: the job it waits on */
    int64_t position;      /* GX_WAIT_QUEUE: jobs of its tenant ahead of it */
    char reason[160];      /* wait reason as a sentence */
    int nlabels;
    uint64_t mem_bytes;    /* device memory the job needs */
    char fallback[160];    /* why it ran on a CPU though it asked for a GPU
                              ("no healthy GPU: cuda:0 circuit open"); "" */
    double start_in_s;     /* GX_WAIT_QUEUE: rough seconds until it starts,
                              from measured run times (the work placed on the
                              devices it may use, its tenant's jobs ahead at
                              the tenant's fair share); -1 unknown */
} gx_job_info;

int gx_job_get(gx_engine *e, gx_job_id id, gx_job_info *out, gx_error *err);

/* The job that tenant's idempotency key names, among the jobs the engine
 * holds: 0 with *id set, or GX_ENOTFOUND. */
int gx_job_find_idempotent(gx_engine *e, const char *tenant, const char *key, gx_job_id *id);

/* Label i of a job (key and value copied into the buffers). */
int gx_job_label(gx_engine *e, gx_job_id id, int i, char *key, size_t keycap,
                 char *val, size_t valcap);

/* Wait until the job is final or timeout_ms passes (-1 forever, 0 poll).
 * *state (may be NULL) gets the state seen. GX_ETIMEDOUT if not final. */
int gx_job_wait(gx_engine *e, gx_job_id id, int64_t timeout_ms, int *state);

/* Outputs of a succeeded job, by the kernel's output spec order. The caller
 * gets one reference to each array (unref each, then free(outs)); the
 * engine keeps its own so outputs can be taken more than once. Names point
 * into the kernel declaration. GX_ESTATE if the job did not succeed. */
typedef struct gx_output {
    const char *name;
    gx_array *array;
} gx_output;
int gx_job_outputs(gx_engine *e, gx_job_id id, gx_output **outs, int *n,
                   gx_error *err);
void gx_outputs_free(gx_output *outs, int n);

/* Cancel a job: queued/waiting jobs end at once; a running job is told to
 * stop (its result is discarded). Dependents fail. GX_ESTATE if already
 * final. */
int gx_job_cancel(gx_engine *e, gx_job_id id, gx_error *err);

/* Put a job that ended dead or failed back in the queue (the operator's
 * re-queue of a dead letter): s is the job as submitted, with s->id its id
 * and s->attempts_done the attempts it made; it runs again as attempt
 * attempts_done + 1 with a fresh budget of s->max_attempts attempts. If the
 * engine still holds the old record it is replaced: GX_ESTATE unless it is
 * dead or failed, GX_EBUSY while a device still runs it. Errors of s as for
 * gx_submit. */
int gx_job_requeue(gx_engine *e, const gx_job_spec *s, gx_error *err);

/* Free what the engine holds for a final job (outputs, record). Later calls
 * on the id answer GX_ENOTFOUND. GX_ESTATE if not final; GX_EBUSY while a
 * device still runs it (a cancelled or timed-out job is final at once, its
 * kernel returns later): try again after its kernel has returned. */
int gx_job_forget(gx_engine *e, gx_job_id id);

typedef struct gx_list_filter {
    const char *tenant;   /* NULL = every tenant */
    unsigned state_mask;  /* bit (1 << state); 0 = every state */
    const char *kernel;   /* kernel name, NULL = any */
    const char *label_key;/* with label_value: jobs carrying this label */
    const char *label_value;
    gx_job_id after;      /* cursor: ids greater than this */
} gx_list_filter;

/* List up to cap ids matching f in id order. *n gets the count; *next (may
 * be NULL) the cursor for the next page, 0 when there is none. */
int gx_job_list(gx_engine *e, const gx_list_filter *f, gx_job_id *ids,
                size_t cap, size_t *n, gx_job_id *next);

/* ---- devices -------------------------------------------------------------- */

typedef struct gx_device_info {
    int index;
    char name[32];        /* "cpu", "cuda:0" */
    int kind;             /* gx_dev_kind */
    char model[96];       /* processor / GPU model */
    int slots;            /* jobs it runs at once */
    uint64_t mem_total;
    uint64_t mem_used;    /* reserved by placed and running jobs */
    int64_t running;
    int64_t queued;       /* placed, not yet started */
    int healthy;
    char status[128];
    int64_t jobs_done;
    double busy_s;        /* device-seconds of work done */
    int recovering;       /* 1 while the health loop resets it */
    int64_t recoveries;   /* times it was reset and re-admitted */
    int64_t recovery_failures; /* reset attempts that failed */
    double last_recovery_s; /* fault -> healthy of the last recovery, 0 none */
    int lost;             /* 1: cannot be recovered in this process; the
                             daemon restarts itself (on_device_lost) */
    int breaker_state;    /* 0 closed, 1 open, 2 half_open */
    int breaker_failures; /* consecutive counted failures */
    int64_t breaker_probe_ns; /* open: CLOCK_REALTIME of the next probe; 0 */
    int64_t breaker_transitions;
    int drained;          /* 1: an operator drained it (gx_device_drain) */
} gx_device_info;

/* The circuit breaker of a kernel (per name@version, across devices). */
typedef struct gx_breaker_info {
    int state;            /* 0 closed, 1 open, 2 half_open */
    int failures;         /* consecutive counted failures */
    int64_t probe_ns;     /* open: CLOCK_REALTIME of the next probe; 0 */
    int64_t transitions;  /* state changes so far */
    int64_t parked;       /* jobs it holds back now */
    int last_code;        /* GX_E* of the last counted failure, 0 */
} gx_breaker_info;
/* Breaker of kernel k in this engine (closed with zeros when k never ran). */
int gx_kernel_breaker_get(gx_engine *e, const gx_kernel *k, gx_breaker_info *out);
/* "closed", "open", "half_open"; "unknown". */
const char *gx_breaker_state_name(int state);

int gx_device_count(gx_engine *e);
/* Why the engine has or has no GPU, as a sentence (static per engine). */
const char *gx_engine_gpu_status(gx_engine *e);
int gx_device_get(gx_engine *e, int index, gx_device_info *out);
/* Drain (on=1) or undrain (on=0) a device. A drained device gets no new
 * placements: its running jobs finish and the jobs already placed on it
 * (its ready ring, a few short ones at most) still start there; queued jobs
 * go to other devices, and a job only it may run waits with the reason
 * "NAME drained by an operator" (GX_WAIT_NO_DEVICE). A drained GPU does not
 * count as usable for "fallback":"cpu" jobs. The health loop's recoveries
 * leave the flag alone; it is not kept across a restart of the process.
 * Undrain places waiting work at once. GX_ENOTFOUND for a bad index. */
int gx_device_drain(gx_engine *e, int index, int on, gx_error *err);
/* Live telemetry of a device from its backend (NVML for GPUs); fields it
 * cannot read are -1. GX_EUNSUPPORTED for devices without telemetry. */
int gx_device_telemetry_get(gx_engine *e, int index, gx_device_telemetry *out);

/* ---- stats ---------------------------------------------------------------- */

typedef struct gx_engine_stats {
    int64_t submitted, succeeded, failed, cancelled, timed_out, dead;
    int64_t queued;      /* queued + waiting + retrying */
    int64_t running;     /* scheduled + running */
    int64_t live_jobs;   /* records held */
    uint64_t job_bytes;  /* bytes held for job records and queues */
} gx_engine_stats;
void gx_engine_stats_get(gx_engine *e, gx_engine_stats *out);

#ifdef __cplusplus
}
#endif
#endif
