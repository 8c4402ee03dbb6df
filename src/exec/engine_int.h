/*
 * engine_int.h - the engine's private structures, shared by the engine
 * (src/exec/engine.c), the scheduler (src/sched/) and the placement
 * strategies (src/sched/place.c). Everything here is guarded by
 * gx_engine.mu unless a field says otherwise.
 */
#ifndef GX_ENGINE_INT_H
#define GX_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "gexec/gexec.h"
#include "gexec/gexec_plugin.h"
#include "breaker.h"
#include "hmap.h"
#include "registry_int.h"

#define GX__NOPOS UINT32_MAX
#define GX__MAX_DEVICES 32
/* Trailing-hour device time is kept in buckets of GX__HOUR_BUCKET_NS,
 * GX__HOUR_BUCKETS to the hour, in a ring of one more (the hour before now
 * ends inside the oldest one). */
#define GX__HOUR_BUCKETS 360
#define GX__HOUR_RING (GX__HOUR_BUCKETS + 1)
#define GX__HOUR_BUCKET_NS (INT64_C(10) * 1000000000)
/* The quota's clock: the monotonic (coarse) clock two hours on, so that an
 * hour back from any moment is still a valid bucket, even just after boot
 * (a trailing hour carried across a reboot by gx_tenant_hour_import). */
#define GX__QUOTA_EPOCH_NS (INT64_C(7200) * 1000000000)
#define gx__quota_now() (gx__coarse_ns() + GX__QUOTA_EPOCH_NS)

/* Constraint classes: which devices a job may run on. A job's class picks
 * which per-tenant queue it waits in. */
/* GX__CLS_GPU_FB: a GPU, or a CPU while no GPU is usable ("fallback":"cpu"). */
enum { GX__CLS_ANY = 0, GX__CLS_CPU = 1, GX__CLS_GPU = 2, GX__CLS_GPU_FB = 3, GX__CLS_DEV0 = 4 };

typedef struct gx__label {
    char *key, *value;
} gx__label;

typedef struct gx__job {
    gx_job_id id;
    const gx_kernel *kernel;
    uint32_t tenant;
    uint8_t state;        /* gx_job_state */
    int8_t priority;
    uint8_t attempts, max_attempts;
    uint8_t budget;       /* its own max_attempts (the spec's or kernel's): dead
                             or failed when attempts run out; max_attempts
                             grows past it by the attempts that were not
                             its fault (device faults, restarts) */
    uint8_t attempt_floor; /* final events carry at least this attempt (gx_job_spec) */
    uint8_t cls;          /* GX__CLS_* (GX__CLS_DEV0 + d for one device) */
    uint8_t live;         /* slot in use */
    int16_t device;       /* device of the last attempt, -1 */
    uint32_t qpos;        /* position in its tenant queue heap */
    uint32_t tpos;        /* position in the timer heap */
    uint32_t deps_pending;
    uint32_t ndependents, capdependents;
    gx_job_id *dependents;
    gx_job_id wait_on;    /* first unfinished dependency (for explain) */
    int32_t error_code;
    char *error;          /* malloc'd, NULL */
    gx__bound bound;      /* args and inputs */
    gx_array **out;       /* outputs, [kernel->noutputs], NULL until success */
    int64_t submit_ns, start_ns, end_ns, run_ns; /* monotonic */
    int64_t timeout_ns, queue_timeout_ns;
    int64_t deadline;     /* timer: absolute monotonic ns, 0 = none */
    float cost_us;        /* estimated run time, charged at placement */
    double vcharge;       /* what placement added to its tenant's fair-share key
                             (scaled, per weight): taken back exactly at the end */
    uint32_t vgen;        /* e->fair_gen when it was charged */
    uint64_t mem;         /* device memory need */
    atomic_int cancel;    /* read by the running kernel */
    uint8_t finished_early; /* made final while a worker still runs it */
    uint8_t busy;         /* in a device ring or running: record must stay */
    uint8_t nlabels;
    uint8_t parked;       /* held by its kernel's open breaker (breaker.c) */
    gx__label *labels;
    char *fallback;       /* why it ran on a CPU instead of a GPU; NULL */
    char *idem_key;
    gx_array **ckpt;      /* last checkpoint state */
    int nckpt;
    int64_t ckpt_step;
    /* device health (src/exec/health.c) */
    uint8_t dev_faults;   /* device faults blamed on its attempts (poison) */
    uint8_t hang_watch;   /* final but its call still runs: the timer checks
                             that it returns within engine hang grace */
    uint8_t abandoned;    /* its call was given up by a device recovery:
                             re-queued without blame when it returns */
    uint8_t probe;        /* placed as a half-open breaker's probe: 1 its
                             device's, 2 its kernel's (src/exec/breaker.c) */
    struct gx__fhist *fhist; /* device faults of its attempts, NULL */
} gx__job;

/* Binary max-heap of jobs by (priority desc, id asc). */
typedef struct gx__jheap {
    gx__job **v;
    uint32_t n, cap;
} gx__jheap;

typedef struct gx__tenant {
    char name[64];
    double weight;
    int max_running;
    int64_t queued;      /* queued + waiting + retrying */
    int64_t running;     /* placed + running */
    double usage;        /* scaled decayed device time of work done (charged
                            as each job ends) */
    double vtime;        /* the fair-share key: scaled decayed usage, each
                            charge divided by the weight it was made under,
                            raised to the least active key when the tenant
                            comes back from idle (sched.c) */
    double vheld;        /* the part of vtime that its placed and running
                            jobs' estimates make: work not done yet */
    uint64_t mem_used;   /* device memory of its placed and running jobs */
    double device_s;     /* total device-seconds */
    gx__jheap *q;        /* [ncls] queues */
    uint32_t *hpos;      /* [ncls] position in the class tenant heap */
    int throttled;       /* at max_running: out of every class heap */
    /* quotas (src/sched/quota.c); 0 = unlimited */
    int64_t max_queued;  /* queued + reserved jobs */
    uint64_t max_mem;    /* device memory of placed and running jobs, bytes */
    double max_dev_s_hour; /* device-seconds in the trailing hour */
    int64_t reserved;    /* jobs admitted by gx_tenant_admit, not yet submitted */
    uint64_t parked;     /* classes it left during one dispatch (memory quota) */
    int64_t hour_last;   /* index of the newest hour bucket */
    double hour[GX__HOUR_RING]; /* device-seconds per bucket, ring */
    int8_t default_priority; /* of its jobs that set none (GX_PRIORITY_TENANT) */
    struct gx__kbrk *kbrk; /* [GX__KSTATS_MAX], by kstats index; NULL until one
                            of its jobs fails in a way a kernel breaker counts */
} gx__tenant;

/* Per-kernel measured run time (EWMA), for cost estimates. */
typedef struct gx__kstat {
    const gx_kernel *k;
    double ewma_us;
    int64_t n;
    gx_kernel_run_fn impl[GX_DEV_KIND_COUNT]; /* resolved once */
    /* per device: measured run time per size unit (job memory + 4 KiB), an
     * EWMA, and how many runs it has seen (placement perf_model) */
    float dev_rate[GX__MAX_DEVICES];
    uint32_t dev_n[GX__MAX_DEVICES];
} gx__kstat;

/* Kernels the engine keeps statistics (and breakers) for. */
#define GX__KSTATS_MAX 64

/* A kernel's circuit breaker as one tenant sees it (breaker.c): one per
 * tenant and kernel, so that a tenant whose jobs of a kernel fail (its
 * inputs run the GPU out of memory, say) holds back only its own jobs of
 * that kernel, not every tenant's. */
typedef struct gx__kbrk {
    gx__brk brk;
    struct gx__job **parked; /* jobs its open breaker holds back */
    uint32_t nparked, capparked;
} gx__kbrk;

typedef struct gx__device {
    int index;
    gx_dev_kind kind;
    const gx_backend *be;
    gx_backend_dev *bdev;
    gx_device_desc desc;
    int healthy;
    char status[128];
    int drained;         /* an operator drained it: no new placements
                            (gx_device_drain); the health loop leaves it */
    gx__brk brk;         /* the device's circuit breaker */
    /* ready ring: placed jobs waiting for a worker */
    gx__job **ring;
    uint32_t rhead, rcount, rcap; /* rcount: written under e->mu with
                                     __atomic_store_n, since idle workers
                                     poll it without the lock */
    int64_t running;
    double pending_cost; /* estimated us of placed + running work */
    uint64_t mem_used;
    int64_t jobs_done;
    double busy_s;
    int sleepers;        /* workers waiting on cv */
    pthread_cond_t cv;
    pthread_t *threads;
    int nthreads;
    /* health loop (src/exec/health.c) */
    int ordinal;         /* backend ordinal given to device_open */
    int hstate;          /* GX__H_* */
    int hung;            /* the fault is a hung call: abandon at once */
    int nlive;           /* worker threads still running */
    int tel_busy;        /* telemetry reads using bdev right now */
    int64_t fault_ns;    /* monotonic time of the fault being recovered */
    int64_t recoveries;  /* recoveries that brought it back */
    int64_t recovery_failures; /* recovery attempts that failed */
    double last_recovery_s; /* fault -> healthy, of the last recovery */
    atomic_int sim_lost; /* CPU: an injected sticky fault (code 46): reset fails
                            for the life of this process */
    int slot_fails;      /* starts of its workers in a row where a slot failed
                            to open, each within a minute of the one before
                            (gx__health_slot_failed); 0 once all opened */
    int slots_open;      /* slots of this start that opened */
    int64_t slot_fail_ns; /* monotonic time of the last one */
    char slot_fail[128]; /* its reason, when they are too many: the health
                            thread gives the device up without a reset */
    int64_t xid_seen;    /* Xid errors of the open device the health loop
                            has looked at (telemetry's xid_count) */
    int said;            /* the health last given to on_device_health
                            (GX__H_*, recovering as pending) */
} gx__device;

/* Device health states. */
enum {
    GX__H_OK = 0,     /* takes placements */
    GX__H_PENDING,    /* faulted: the health thread will recover it */
    GX__H_RECOVERING, /* being drained and reset */
    GX__H_STUCK,      /* a slot is stuck in a call: recovery resumes if it returns */
    GX__H_FAILED,     /* recovery failed: unhealthy until restart */
    GX__H_LOST        /* needs a new process: on_device_lost said it restarts */
};

typedef struct gx__placer {
    const char *name;
    /* Pick one of cand[0..n-1] (device indices with room and memory) for j. */
    int (*pick)(struct gx_engine *e, const struct gx__job *j, const int *cand, int n);
} gx__placer;

struct gx_engine {
    pthread_mutex_t mu;
    pthread_cond_t done_cv;   /* broadcast when jobs finish and waiters > 0 */
    pthread_cond_t timer_cv;
    int waiters;
    int stopping;
    int paused;               /* workers take nothing (benchmarks) */
    gx_engine_opts o;
    int64_t wall_offset;      /* wall ns - monotonic ns at start */
    /* jobs: page table by id */
    gx__job **pages;
    uint32_t *page_live;
    size_t npages;
    gx_job_id next_id, max_id;
    int64_t live_jobs;
    int64_t unfinished;
    uint64_t aux_bytes;       /* bytes of args/labels/dependents held */
    /* tenants */
    gx__tenant *tenants;
    uint32_t ntenants, captenants;
    gx__hmap tenant_ix;
    gx__hmap idem;            /* tenant id + key -> job id */
    /* classes and fair share */
    int ncls;
    gx__tenant ***ch;         /* [ncls] heaps of tenants (by usage/weight) */
    uint32_t *chn, *chcap;
    double fair_scale;        /* multiplier for new charges (grows with time) */
    int64_t fair_epoch;       /* monotonic ns of scale == 1 */
    uint32_t fair_gen;        /* folds of the scale so far (refresh_scale) */
    double fair_fold;         /* the last fold's divisor */
    double fair_k;            /* ln 2 / half-life, per ns */
    /* timers */
    gx__job **timers;
    uint32_t ntimers, captimers;
    pthread_t timer_thread;
    /* devices */
    gx__device dev[GX__MAX_DEVICES];
    int ndev;
    const gx__placer *placer;
    int rr_next;
    uint32_t *parked;         /* tenants parked by the memory quota in a dispatch */
    uint32_t nparked, capparked;
    /* kernel stats */
    gx__kstat kstats[GX__KSTATS_MAX];
    int nkstats;
    gx__kstat *klast;         /* the entry gx__kinfo found last */
    /* counters */
    gx_engine_stats st;
    uint64_t ev_produced;     /* events buffered so far (lock held) */
    _Atomic uint64_t ev_delivered; /* events handed to on_events */
    void *cuda_dl;            /* dlopen handle of the CUDA backend */
    const gx_backend *cuda_be;
    char gpu_status[320];     /* why there is or is no GPU, for people */
    pthread_cond_t health_cv; /* health thread: a device to recover, a worker left */
    pthread_t health_thread;
    int health_started;
    int64_t brk_due;          /* next breaker tick (monotonic ns), 0 = none */
};

/* ---- event buffering (delivered without the lock) ---- */
typedef struct gx__evbuf {
    gx_event *ev;
    size_t n, cap;
    gx_event local[32];
} gx__evbuf;

/* ---- scheduler (src/sched/sched.c) ---- */
int gx__sched_init(gx_engine *e);
void gx__sched_free(gx_engine *e);
int gx__tenant_new(gx_engine *e, const char *name, double weight, int max_running, uint32_t *id);
/* Put a runnable job in its tenant's queue. */
int gx__sched_enqueue(gx_engine *e, gx__job *j);
/* Take a queued job out (cancel, timeout). */
void gx__sched_remove(gx_engine *e, gx__job *j);
/* Place as many jobs as devices have room for; returns the number placed.
 * `unlimited` ignores device room (benchmarks). */
int gx__sched_dispatch(gx_engine *e, int limit, int unlimited);
/* Charge actual device time to a tenant (correcting the estimate). */
void gx__sched_charge(gx_engine *e, gx__job *j, double actual_us);
/* A job of this tenant left a device: maybe unthrottle. */
void gx__sched_released(gx_engine *e, uint32_t tenant);
/* Weight or running limit of a tenant changed: re-sort and re-throttle. */
void gx__sched_tenant_changed(gx_engine *e, uint32_t tenant);
double gx__sched_usage_s(gx_engine *e, const gx__tenant *t);
/* Jobs of the same tenant ahead of j in its queue. */
int64_t gx__sched_position(gx_engine *e, const gx__job *j);
/* Device room test used by dispatch and explain. */
int gx__dev_has_room(gx_engine *e, const gx__device *d);
/* Which classes a device serves. */
int gx__cls_allows(gx_engine *e, int cls, int dev);
double gx__cost_estimate(gx_engine *e, const gx__job *j);
/* Nothing queued (of any class), nothing placed or running. */
int gx__tenant_idle(gx_engine *e, const gx__tenant *t);
/* A successful run of job j's kernel on device dev took us microseconds. */
void gx__kstat_record(gx_engine *e, const struct gx__job *j, int dev, double us);
/* Stats entry of a kernel, created on first use (NULL if the table is full). */
gx__kstat *gx__kinfo(gx_engine *e, const gx_kernel *k);

/* ---- quotas (src/sched/quota.c) ---- */
/* Add device-seconds to the tenant's trailing-hour ring at monotonic now. */
void gx__quota_charge(gx__tenant *t, double seconds, int64_t now);
/* Device-seconds of the trailing hour at now. */
double gx__quota_hour_s(const gx__tenant *t, int64_t now);
/* 1 when job memory mem would take the tenant over its memory quota. */
int gx__quota_mem_over(const gx__tenant *t, uint64_t mem);
/* "7.5 GiB", "512 MiB", "100 B" */
void gx__fmt_bytes(uint64_t b, char *buf, size_t cap);

/* ---- placement (src/sched/place.c) ---- */
const gx__placer *gx__placer_find(const char *name);
/* The names of the strategies, ", "-separated (for messages), into buf. */
void gx__placer_names(char *buf, size_t cap);
/* A job's size for run-time models: its memory (bytes) + 4 KiB, in KiB. */
static inline double gx__size_units(const struct gx__job *j) { return ((double)j->mem + 4096.0) / 1024.0; }

/* ---- engine internals used by the scheduler ---- */
/* Room in a device's ring for one more job, grown when full: 0, or
 * GX_ENOMEM (the ring is as it was). Dispatch asks before it places a job,
 * so that a failed growth leaves the job queued, with nothing charged. */
int gx__dev_ring_room(gx__device *d);
/* Queue a placed job on its device (after gx__dev_ring_room). */
void gx__dev_push(gx__device *d, gx__job *j);
/* Read a device's backend telemetry (fields it cannot read: -1). Lock held;
 * dropped around the read, which a recovery waits for before it closes the
 * device. GX_EUNSUPPORTED: the backend has none, or the device is closed. */
int gx__dev_telemetry(gx_engine *e, gx__device *d, gx_device_telemetry *t);
/* Slots of a device (at least 1). */
static inline int gx__dev_slots(const gx__device *d) { return d->desc.slots > 0 ? d->desc.slots : 1; }
/* Start a device's worker threads (engine start and after a recovery). */
int gx__dev_start(gx_engine *e, gx__device *d);

/* ---- device health (src/exec/health.c) ----
 * The closed loop: a device fault (GX_EDEVICE from a call, or a call that
 * does not return within hang grace of its cancel) marks the device
 * recovering, re-queues its placed jobs, lets its slots finish, abandons what
 * they still run, then closes, resets, reopens and self-tests the device
 * and restarts its workers. See docs/device-health.md. */
int gx__health_start(gx_engine *e);
/* Before the workers start: the devices' health as opened is what
 * on_device_health has been told (only changes are reported). */
void gx__health_baseline(gx_engine *e);
/* e->stopping set: abort every device's calls, join the health thread;
 * gx__health_stopped once the workers are joined. */
void gx__health_stop(gx_engine *e);
void gx__health_stopped(gx_engine *e);
/* Mark a device faulted (lock held); no-op unless it is healthy. */
void gx__health_fault(gx_engine *e, gx__device *d, const char *reason, int hung);
/* Fault injection before a launch on a CPU device: fills res for the calls
 * it handled and returns how many leading calls those are (0: none). */
int gx__health_inject(gx_engine *e, gx__device *d, gx_kcall *const *calls, gx_call_result *res, int n);
/* A call of j on d ended with rc (not 0), lock held, outputs released: 1 when
 * the health loop took the job (re-queued, or dead as poison). */
int gx__health_result(gx_engine *e, gx__device *d, gx__job *j, int rc, const char *msg, gx__evbuf *eb);
/* j was made final while its call runs: watch that the call returns. */
void gx__health_watch(gx_engine *e, gx__job *j);
/* Timer of a watched job fired: its call is hung. */
void gx__health_hung(gx_engine *e, gx__job *j);
void gx__health_job_clear(gx__job *j);
/* Blame restored from a job's history (spec dev_faults_done). */
void gx__health_job_seed(gx__job *j, int n, const char *history);
/* A worker thread of d ends (lock held). */
void gx__health_worker_left(gx_engine *e, gx__device *d);
/* A slot of d failed to open (the backend's slot_open, on its worker
 * thread, before it took anything): the device recovers as after a fault;
 * slots failing at more than recovery_attempts starts of its workers in a
 * row, each within a minute of the last, give it up (lost or unhealthy)
 * instead of resetting it for ever. */
void gx__health_slot_failed(gx_engine *e, gx__device *d, int slot, const char *msg);

#endif

/* ---- job records and completion (src/exec/engine.c) ---- */
gx__job *gx__job_get(gx_engine *e, gx_job_id id);      /* live job or NULL */
gx__job *gx__job_alloc(gx_engine *e, gx_job_id id);    /* id unused; NULL on ENOMEM */
void gx__job_release(gx_engine *e, gx__job *j);        /* free a final job's record */
/* Make a job final (not for jobs that succeeded through a worker). Fails
 * dependents in turn. msg may be NULL. */
void gx__finish(gx_engine *e, gx__job *j, int state, int code, const char *msg, gx__evbuf *eb);
/* Dependencies of j are all done: queue it, and say so in an event when
 * announce is set. */
void gx__make_runnable(gx_engine *e, gx__job *j, gx__evbuf *eb, int announce);
void gx__timer_set(gx_engine *e, gx__job *j, int64_t deadline);
void gx__timer_clear(gx_engine *e, gx__job *j);
void gx__ev_push(gx_engine *e, gx__evbuf *eb, const gx__job *j);
void gx__ev_flush(gx_engine *e, gx__evbuf *eb); /* call without the lock */
void gx__evbuf_init(gx__evbuf *eb);
void gx__notify_done(gx_engine *e);             /* wake waiters, lock held */
static inline int64_t gx__to_wall(const gx_engine *e, int64_t mono) {
    return mono ? mono + e->wall_offset : 0;
}
