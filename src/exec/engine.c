/*
 * engine.c - engine lifecycle, devices and their workers, timers, and what
 * happens when a job ends.
 *
 * One mutex (e->mu) guards the scheduler and every job record. It is taken
 * once per batch, not once per job: a worker takes up to max_batch placed
 * jobs (and at most batch_quantum_us of their estimated run time, so a short
 * job does not wait behind a long one while another slot is free) from its
 * device's ring in one go, runs them without the lock, then
 * records all their results and refills the devices in one go. Idle workers
 * spin briefly before sleeping, since waking a sleeping thread costs tens
 * of microseconds on a VM.
 *
 * Timers (queue timeouts, run timeouts, retry back-off) live in one min-heap
 * served by a timer thread.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "engine_int.h"
#include "gexec/gexec_errclass.h"

#define PAGE_SHIFT 10
#define PAGE_JOBS (1u << PAGE_SHIFT)

/* ---- events ----------------------------------------------------------- */

void gx__evbuf_init(gx__evbuf *eb) {
    eb->ev = eb->local;
    eb->n = 0;
    eb->cap = sizeof eb->local / sizeof eb->local[0];
}

void gx__ev_push(gx_engine *e, gx__evbuf *eb, const gx__job *j) {
    if (!e->o.on_events || !eb) return;
    if (eb->n == eb->cap) {
        size_t nc = eb->cap * 2;
        gx_event *nv = eb->ev == eb->local ? malloc(nc * sizeof *nv) : realloc(eb->ev, nc * sizeof *nv);
        if (!nv) return; /* events are best effort under memory pressure */
        if (eb->ev == eb->local) memcpy(nv, eb->local, sizeof eb->local);
        eb->ev = nv;
        eb->cap = nc;
    }
    eb->ev[eb->n++] = (gx_event){
        .seq = ++e->ev_produced,
        .job = j->id,
        .tenant = j->tenant,
        .state = j->state,
        .attempt = j->attempts < j->attempt_floor && gx_job_state_is_final(j->state) ? j->attempt_floor : j->attempts,
        .device = j->device,
        .error_code = j->error_code,
        .time_ns = gx__wall_ns(),
        .kernel = j->kernel->name,
        .run_ns = j->run_ns,
        .queue_ns = j->start_ns ? j->start_ns - j->submit_ns : 0,
    };
    /* the message travels with the event: by the time it is persisted the
     * job may be on its next attempt with another error */
    gx_event *ev = &eb->ev[eb->n - 1];
    /* retrying and failed states carry their error; so does the re-queue of a
     * job a device fault was blamed on (its blame count must survive a
     * restart: src/exec/health.c) */
    if (j->state == GX_JOB_RETRYING || (gx_job_state_is_final(j->state) && j->state != GX_JOB_SUCCEEDED) ||
        (j->state == GX_JOB_QUEUED && j->error_code == GX_EDEVICE)) {
        if (j->error) snprintf(ev->error, sizeof ev->error, "%s", j->error);
    } else {
        /* queued, running, succeeded: no error of an earlier attempt */
        ev->error_code = 0;
        if (j->fallback && (j->state == GX_JOB_RUNNING || j->state == GX_JOB_SUCCEEDED))
            snprintf(ev->error, sizeof ev->error, "fallback: %s", j->fallback);
    }
}

void gx__ev_flush(gx_engine *e, gx__evbuf *eb) {
    if (eb->n && e->o.on_events) {
        e->o.on_events(e->o.events_ctx, eb->ev, eb->n);
        atomic_fetch_add(&e->ev_delivered, eb->n);
    }
    if (eb->ev != eb->local) free(eb->ev);
    gx__evbuf_init(eb);
}

void gx__notify_done(gx_engine *e) {
    if (e->waiters) pthread_cond_broadcast(&e->done_cv);
}

/* ---- job records ------------------------------------------------------ */

gx__job *gx__job_get(gx_engine *e, gx_job_id id) {
    size_t p = (size_t)((id - 1) >> PAGE_SHIFT);
    if (id == 0 || p >= e->npages || !e->pages[p]) return NULL;
    gx__job *j = &e->pages[p][(id - 1) & (PAGE_JOBS - 1)];
    return j->live ? j : NULL;
}

gx__job *gx__job_alloc(gx_engine *e, gx_job_id id) {
    size_t p = (size_t)((id - 1) >> PAGE_SHIFT);
    if (p >= e->npages) {
        size_t np = e->npages ? e->npages : 64;
        while (np <= p) np *= 2;
        gx__job **pv = realloc(e->pages, np * sizeof *pv);
        if (!pv) return NULL;
        e->pages = pv;
        uint32_t *lv = realloc(e->page_live, np * sizeof *lv);
        if (!lv) return NULL;
        e->page_live = lv;
        memset(e->pages + e->npages, 0, (np - e->npages) * sizeof *pv);
        memset(e->page_live + e->npages, 0, (np - e->npages) * sizeof *lv);
        e->npages = np;
    }
    if (!e->pages[p]) {
        e->pages[p] = calloc(PAGE_JOBS, sizeof(gx__job));
        if (!e->pages[p]) return NULL;
    }
    gx__job *j = &e->pages[p][(id - 1) & (PAGE_JOBS - 1)];
    memset(j, 0, sizeof *j);
    j->id = id;
    j->live = 1;
    j->qpos = j->tpos = GX__NOPOS;
    j->device = -1;
    e->page_live[p]++;
    e->live_jobs++;
    if (id > e->max_id) e->max_id = id;
    if (id >= e->next_id) e->next_id = id + 1;
    return j;
}

static void free_outputs(gx_array **out, int n) {
    if (!out) return;
    for (int i = 0; i < n; i++) gx_array_unref(out[i]);
    free(out);
}

static void free_ckpt(gx__job *j) {
    for (int i = 0; i < j->nckpt; i++) gx_array_unref(j->ckpt[i]);
    free(j->ckpt);
    j->ckpt = NULL;
    j->nckpt = 0;
}

/* Release what a job holds besides its record (inputs, outputs, ...). */
static void job_clear(gx_engine *e, gx__job *j) {
    gx__bound_free(&j->bound);
    free_outputs(j->out, j->kernel ? j->kernel->noutputs : 0);
    j->out = NULL;
    free(j->error);
    free(j->fallback);
    free(j->dependents);
    for (int i = 0; i < j->nlabels; i++) {
        free(j->labels[i].key);
        free(j->labels[i].value);
    }
    free(j->labels);
    if (j->idem_key) {
        char buf[300];
        int n = snprintf(buf, sizeof buf, "%u/%s", j->tenant, j->idem_key);
        gx__hmap_del(&e->idem, buf, (size_t)n);
        free(j->idem_key);
    }
    free_ckpt(j);
    gx__health_job_clear(j);
}

void gx__job_release(gx_engine *e, gx__job *j) {
    job_clear(e, j);
    size_t p = (size_t)((j->id - 1) >> PAGE_SHIFT);
    j->live = 0;
    e->live_jobs--;
    if (--e->page_live[p] == 0 && ((gx_job_id)(p + 1) << PAGE_SHIFT) < e->next_id) {
        free(e->pages[p]);
        e->pages[p] = NULL;
    }
}

/* ---- timers ------------------------------------------------------------ */

static void tm_set(gx_engine *e, uint32_t i, gx__job *j) {
    e->timers[i] = j;
    j->tpos = i;
}

static void tm_up(gx_engine *e, uint32_t i) {
    gx__job *j = e->timers[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (e->timers[p]->deadline <= j->deadline) break;
        tm_set(e, i, e->timers[p]);
        i = p;
    }
    tm_set(e, i, j);
}

static void tm_down(gx_engine *e, uint32_t i) {
    gx__job *j = e->timers[i];
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t bd = j->deadline;
        if (l < e->ntimers && e->timers[l]->deadline < bd) m = l, bd = e->timers[l]->deadline;
        if (r < e->ntimers && e->timers[r]->deadline < bd) m = r;
        if (m == i) break;
        tm_set(e, i, e->timers[m]);
        i = m;
    }
    tm_set(e, i, j);
}

void gx__timer_clear(gx_engine *e, gx__job *j) {
    uint32_t i = j->tpos;
    j->deadline = 0;
    if (i == GX__NOPOS) return;
    j->tpos = GX__NOPOS;
    uint32_t n = --e->ntimers;
    if (i == n) return;
    gx__job *last = e->timers[n];
    tm_set(e, i, last);
    tm_up(e, i);
    tm_down(e, last->tpos);
}

void gx__timer_set(gx_engine *e, gx__job *j, int64_t deadline) {
    gx__timer_clear(e, j);
    if (e->ntimers == e->captimers) {
        uint32_t nc = e->captimers ? e->captimers * 2 : 64;
        gx__job **nv = realloc(e->timers, nc * sizeof *nv);
        if (!nv) return; /* the job simply has no deadline; never crash */
        e->timers = nv;
        e->captimers = nc;
    }
    j->deadline = deadline;
    uint32_t i = e->ntimers++;
    tm_set(e, i, j);
    tm_up(e, i);
    if (e->timers[0] == j) pthread_cond_signal(&e->timer_cv);
}

/* ---- finishing jobs -------------------------------------------------- */

static void set_error(gx__job *j, int code, const char *msg) {
    j->error_code = code;
    free(j->error);
    j->error = msg && *msg ? strdup(msg) : NULL;
}

void gx__finish(gx_engine *e, gx__job *first, int state, int code, const char *msg,
                gx__evbuf *eb) {
    /* worklist of (job, message) so long dependency chains don't recurse */
    gx__job *stackbuf[64];
    gx__job **stack = stackbuf;
    size_t sn = 0, scap = 64;
    char depmsg[256];
    stack[sn++] = first;
    int first_done = 0;
    while (sn) {
        gx__job *j = stack[--sn];
        if (gx_job_state_is_final(j->state)) continue;
        if (j->parked) gx__brk_unpark(e, j);
        int st = state, cd = code;
        const char *m = msg;
        if (first_done) {
            st = GX_JOB_FAILED;
            cd = GX_EDEPFAILED;
            m = depmsg;
            snprintf(depmsg, sizeof depmsg, "dependency %llu %s", (unsigned long long)j->wait_on,
                     "did not succeed");
            gx__job *dep = gx__job_get(e, j->wait_on);
            if (dep)
                snprintf(depmsg, sizeof depmsg, "dependency %llu %s", (unsigned long long)dep->id,
                         gx_job_state_name(dep->state));
        }
        first_done = 1;
        int was = j->state;
        if (j->qpos != GX__NOPOS) gx__sched_remove(e, j);
        gx__timer_clear(e, j);
        if (was == GX_JOB_QUEUED || was == GX_JOB_WAITING || was == GX_JOB_RETRYING)
            e->tenants[j->tenant].queued--;
        if (j->busy) {
            atomic_store(&j->cancel, 1);
            j->finished_early = 1;
        }
        j->state = (uint8_t)st;
        j->end_ns = gx__now_ns();
        /* a running attempt ended by a cancel or a timeout ran until now:
         * its time goes with this event (the call's return adds none) */
        if (j->busy && was == GX_JOB_RUNNING && j->start_ns) j->run_ns = j->end_ns - j->start_ns;
        set_error(j, cd, m);
        if (j->busy && was == GX_JOB_RUNNING) gx__health_watch(e, j); /* does the call return? */
        e->unfinished--;
        switch (st) {
        case GX_JOB_FAILED: e->st.failed++; break;
        case GX_JOB_CANCELLED: e->st.cancelled++; break;
        case GX_JOB_TIMED_OUT: e->st.timed_out++; break;
        case GX_JOB_DEAD: e->st.dead++; break;
        case GX_JOB_SUCCEEDED: e->st.succeeded++; break;
        }
        gx__ev_push(e, eb, j);
        for (uint32_t i = 0; i < j->ndependents; i++) {
            gx__job *d = gx__job_get(e, j->dependents[i]);
            if (!d || gx_job_state_is_final(d->state)) continue;
            d->wait_on = j->id;
            if (sn == scap) {
                size_t nc = scap * 2;
                gx__job **ns = stack == stackbuf ? malloc(nc * sizeof *ns) : realloc(stack, nc * sizeof *ns);
                if (!ns) break;
                if (stack == stackbuf) memcpy(ns, stackbuf, sizeof stackbuf);
                stack = ns;
                scap = nc;
            }
            stack[sn++] = d;
        }
    }
    if (stack != stackbuf) free(stack);
    gx__notify_done(e);
}

void gx__make_runnable(gx_engine *e, gx__job *j, gx__evbuf *eb, int announce) {
    int released = j->state == GX_JOB_WAITING;
    j->state = GX_JOB_QUEUED;
    j->wait_on = 0;
    if (gx__sched_enqueue(e, j)) {
        gx__finish(e, j, GX_JOB_FAILED, GX_ENOMEM, "out of memory queueing the job", eb);
        return;
    }
    size_t n0 = eb ? eb->n : 0;
    if (announce) gx__ev_push(e, eb, j);
    if (eb && eb->n > n0) eb->ev[eb->n - 1].released = released;
}

/* A job succeeded: release its dependents. */
static void succeed(gx_engine *e, gx__job *j, gx__evbuf *eb) {
    j->state = GX_JOB_SUCCEEDED;
    j->end_ns = gx__now_ns();
    e->unfinished--;
    e->st.succeeded++;
    gx__ev_push(e, eb, j);
    for (uint32_t i = 0; i < j->ndependents; i++) {
        gx__job *d = gx__job_get(e, j->dependents[i]);
        if (!d || d->state != GX_JOB_WAITING) continue;
        if (--d->deps_pending == 0) gx__make_runnable(e, d, eb, 1);
    }
}

/* ---- devices and workers ------------------------------------------- */

int gx__dev_ring_room(gx__device *d) {
    if (d->rcount < d->rcap) return 0;
    uint32_t nc = d->rcap * 2;
    gx__job **nr = malloc(nc * sizeof *nr);
    if (!nr) return GX_ENOMEM;
    for (uint32_t i = 0; i < d->rcount; i++) nr[i] = d->ring[(d->rhead + i) & (d->rcap - 1)];
    free(d->ring);
    d->ring = nr;
    d->rhead = 0;
    d->rcap = nc;
    return 0;
}

void gx__dev_push(gx__device *d, gx__job *j) {
    d->ring[(d->rhead + d->rcount) & (d->rcap - 1)] = j;
    __atomic_store_n(&d->rcount, d->rcount + 1, __ATOMIC_RELEASE);
    j->busy = 1;
    if (d->sleepers) pthread_cond_signal(&d->cv);
}

typedef struct worker {
    gx_engine *e;
    gx__device *d;
    int slot;
} worker;

typedef struct ckpt_ctx {
    gx_engine *e;
    gx__job *j;
} ckpt_ctx;

/* gx_kcall.checkpoint: keep a copy of the state with the job. */
static int engine_checkpoint(gx_kcall *c, int64_t step, gx_array *const *state, int n) {
    ckpt_ctx *cc = c->engine_priv;
    gx_array **copy = calloc((size_t)(n > 0 ? n : 1), sizeof *copy);
    if (!copy) return GX_ENOMEM;
    for (int i = 0; i < n; i++)
        if (gx_array_copy(state[i], &copy[i], NULL)) {
            for (int k = 0; k < i; k++) gx_array_unref(copy[k]);
            free(copy);
            return GX_ENOMEM;
        }
    gx_engine *e = cc->e;
    pthread_mutex_lock(&e->mu);
    free_ckpt(cc->j);
    cc->j->ckpt = copy;
    cc->j->nckpt = n;
    cc->j->ckpt_step = step;
    gx_job_id id = cc->j->id;
    int attempt = cc->j->attempts;
    if (e->o.on_checkpoint) /* held through the call, whatever happens to the job record */
        for (int i = 0; i < n; i++) gx_array_ref(copy[i]);
    pthread_mutex_unlock(&e->mu);
    if (!e->o.on_checkpoint) return 0;
    int rc = e->o.on_checkpoint(e->o.checkpoint_ctx, id, attempt, step, copy, n);
    for (int i = 0; i < n; i++) gx_array_unref(copy[i]);
    return rc;
}

/* Built-in CPU backend: run each call's CPU implementation in turn. (The
 * engine's worker calls the resolved implementation directly; this is the
 * same thing through the backend interface.) */
static void cpu_run_batch(gx_backend_dev *d, void *slot_ctx, gx_kcall *const *calls,
                          gx_call_result *res, int n) {
    (void)d;
    (void)slot_ctx;
    for (int i = 0; i < n; i++) {
        int64_t t0 = gx__now_ns();
        gx_kernel_run_fn fn = gx_kernel_impl(calls[i]->kernel, GX_DEV_CPU);
        res[i].rc = fn ? fn(calls[i]) : GX_EUNSUPPORTED;
        res[i].run_ns = gx__now_ns() - t0;
    }
}

static const gx_backend cpu_backend = {
    .abi_version = GX_BACKEND_ABI_VERSION,
    .struct_size = sizeof(gx_backend),
    .name = "cpu",
    .kind = GX_DEV_CPU,
    .run_batch = cpu_run_batch,
};

#define RUN_BATCH_MAX 1024

typedef struct run_item {
    gx__job *j;
    gx_kcall call;
    gx_error err;
    ckpt_ctx cc;
    gx_kernel_run_fn fn;
    gx_array **out;
} run_item;

static int64_t backoff_ns(const gx_engine *e, int attempt) {
    /* exponential with full jitter: uniform in [0, min(cap, base * 2^(a-1))] */
    double cap = fmin(e->o.retry_cap_ms * 1e6, e->o.retry_base_ms * 1e6 * pow(2, attempt - 1));
    return (int64_t)(cap * ((double)(rand() & 0xffff) / 65536.0)) + 1000000;
}

/* Record one call's result; lock held. */
static void complete(gx_engine *e, gx__device *d, run_item *it, const gx_call_result *r,
                     gx__evbuf *eb) {
    gx__job *j = it->j;
    double run_us = (double)r->run_ns / 1e3;
    d->running--;
    d->pending_cost -= j->cost_us;
    if (d->pending_cost < 0) d->pending_cost = 0;
    d->mem_used -= j->mem;
    e->tenants[j->tenant].mem_used -= j->mem;
    d->jobs_done++;
    d->busy_s += run_us / 1e6;
    j->busy = 0;
    if (!j->finished_early) j->run_ns = r->run_ns; /* else its end event's time stays */
    gx__sched_charge(e, j, run_us);
    gx__sched_released(e, j->tenant);
    if (r->rc == 0) gx__kstat_record(e, j, d->index, run_us);
    int own_end = j->finished_early || gx_job_state_is_final(j->state) || e->stopping;
    /* one device fault counts once against the device's breaker: calls that
     * fail while the health loop already has the device (the rest of a
     * faulted batch, abandoned calls) are neutral */
    int counted = !own_end && !atomic_load(&j->cancel) && !(r->rc && d->hstate != GX__H_OK);
    gx__brk_job_done(e, d, j, r->rc, counted);
    if (own_end) {
        /* stopping: the kernel was interrupted by shutdown, not by the job;
         * the job stays running in a durable store and is re-queued there */
        free_outputs(it->out, j->kernel->noutputs);
        if (j->hang_watch) gx__timer_clear(e, j); /* it returned: not hung */
        j->hang_watch = 0;
        return;
    }
    gx__timer_clear(e, j);
    if (r->rc == 0) {
        int missing = -1;
        for (int i = 0; i < j->kernel->noutputs && missing < 0; i++)
            if (!it->out[i] && !(j->kernel->outputs[i].flags & GX_IO_OPTIONAL)) missing = i;
        if (missing >= 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "kernel %s produced no output '%s'", j->kernel->name,
                     j->kernel->outputs[missing].name);
            free_outputs(it->out, j->kernel->noutputs);
            gx__finish(e, j, GX_JOB_FAILED, GX_EKERNEL, msg, eb);
            return;
        }
        j->out = it->out;
        free_ckpt(j);
        succeed(e, j, eb);
        return;
    }
    free_outputs(it->out, j->kernel->noutputs);
    const char *msg = it->err.message[0] ? it->err.message : gx_strerror(r->rc);
    if (gx__health_result(e, d, j, r->rc, msg, eb)) return; /* device fault, abandoned call */
    /* the error class table decides: transient, device and store faults get
     * another attempt while attempts are left; permanent ones end the job */
    int retryable = gx_errclass_retryable(r->rc);
    if (retryable && j->attempts < j->max_attempts) {
        char line[300];
        snprintf(line, sizeof line, "attempt %d failed (%s, %s): %s", j->attempts, gx_err_name(r->rc),
                 gx_errclass_name(gx_errclass_get(r->rc)), msg);
        set_error(j, r->rc, line);
        j->state = GX_JOB_RETRYING;
        e->tenants[j->tenant].queued++;
        gx__ev_push(e, eb, j);
        j->run_ns = 0; /* that attempt's time went with its event: a later end has its own */
        gx__timer_set(e, j, gx__now_ns() + backoff_ns(e, j->attempts));
        return;
    }
    int state = retryable && j->budget > 1 ? GX_JOB_DEAD : GX_JOB_FAILED; /* no retry to use up: failed */
    char full[300];
    if (state == GX_JOB_DEAD)
        snprintf(full, sizeof full, "gave up after %d attempts; last error: %s", j->attempts, msg);
    gx__finish(e, j, state, r->rc, state == GX_JOB_DEAD ? full : msg, eb);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    gx_engine *e = w->e;
    gx__device *d = w->d;
    void *slot_ctx = NULL;
    {
        char tn[64]; /* "gx-cuda:0.3": device and slot, for top -H and perf */
        snprintf(tn, sizeof tn, "gx-%s.%d", d->desc.name, w->slot);
        tn[15] = 0; /* the kernel keeps 15 characters */
        pthread_setname_np(pthread_self(), tn);
    }
    if (d->be->slot_open) {
        gx_error err;
        gx_error_clear(&err);
        if (d->be->slot_open(d->bdev, w->slot, &slot_ctx, &err)) {
            pthread_mutex_lock(&e->mu);
            gx__health_slot_failed(e, d, w->slot, err.message);
            gx__health_worker_left(e, d);
            pthread_mutex_unlock(&e->mu);
            free(w);
            return NULL;
        }
    }
    run_item *items = malloc(RUN_BATCH_MAX * sizeof *items);
    gx_kcall **calls = malloc(RUN_BATCH_MAX * sizeof *calls);
    gx_call_result *res = malloc(RUN_BATCH_MAX * sizeof *res);
    gx__evbuf eb;
    gx__evbuf_init(&eb);
    uint32_t last_tenant = UINT32_MAX;
    pthread_mutex_lock(&e->mu);
    if (++d->slots_open == d->desc.slots) d->slot_fails = 0; /* this start's slots all opened */
    while (items && calls && res) {
        if (e->stopping || d->hstate != GX__H_OK) break; /* a recovery closes the slots */
        if (!d->rcount || e->paused) {
            /* spin a little before sleeping: a wake-up costs ~30 us */
            pthread_mutex_unlock(&e->mu);
            int64_t until = gx__now_ns() + 50000;
            while (!__atomic_load_n(&d->rcount, __ATOMIC_ACQUIRE) && gx__now_ns() < until) sched_yield();
            pthread_mutex_lock(&e->mu);
            if ((!d->rcount || e->paused) && !e->stopping && d->hstate == GX__H_OK) {
                d->sleepers++;
                pthread_cond_wait(&d->cv, &e->mu);
                d->sleepers--;
            }
            continue;
        }
        int gpu = d->kind != GX_DEV_CPU;
        uint32_t limit = (uint32_t)(gpu ? e->o.gpu_max_batch : e->o.max_batch);
        if (gpu && e->o.gpu_batch_delay_us > 0 && d->rcount < limit &&
            (d->ring[d->rhead]->kernel->flags & GX_KF_BATCHABLE)) {
            /* wait a little for a fuller launch */
            int64_t until = gx__now_ns() + (int64_t)e->o.gpu_batch_delay_us * 1000;
            struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
            d->sleepers++;
            while (d->rcount < limit && !e->stopping &&
                   pthread_cond_timedwait(&d->cv, &e->mu, &ts) != ETIMEDOUT) {
            }
            d->sleepers--;
            if (e->stopping) break;
            if (!d->rcount) continue; /* a recovery took the ring back */
        }
        /* take a fair part of the ring: leave some for the other slots */
        uint32_t take = d->rcount;
        if (d->nthreads > 1 && take > 8) take = (take + (uint32_t)d->nthreads - 1) / (uint32_t)d->nthreads;
        if (take > limit) take = limit;
        if (take > RUN_BATCH_MAX) take = RUN_BATCH_MAX;
        /* a device batch never mixes tenants: memory is scrubbed between them */
        if (gpu) {
            uint32_t same = 1;
            uint32_t t0 = d->ring[d->rhead]->tenant;
            while (same < take && d->ring[(d->rhead + same) & (d->rcap - 1)]->tenant == t0) same++;
            take = same;
        }
        /* A batch runs its jobs one after another, so a job taken behind a
         * long one waits for it even while another slot is free. Stop once
         * the estimated run time of what is taken reaches one batch quantum;
         * the rest stays for the other slots. On a GPU, a run of one
         * batchable kernel may be fused into one launch, which takes about
         * as long as its longest job: the run counts as that. Jobs that
         * ended while placed (cancelled) count nothing. A job that would
         * take the batch past the quantum stays for the next batch unless
         * it is the first: the jobs of a batch end together, when its last
         * call returns, so a short job taken before a long one would stay
         * "running" (its run timeout counting) until the long one ended. */
        {
            double est = 0, run_max = 0;
            const gx_kernel *run_k = NULL;
            uint32_t keep = 0, counted = 0;
            while (keep < take) {
                const gx__job *j = d->ring[(d->rhead + keep) & (d->rcap - 1)];
                if (gx_job_state_is_final(j->state)) {
                    keep++;
                    continue;
                }
                double c = j->cost_us, add = c, rmax = run_max;
                const gx_kernel *rk = NULL;
                if (gpu && (j->kernel->flags & GX_KF_BATCHABLE)) {
                    rk = j->kernel;
                    if (rk != run_k) rmax = 0;
                    add = c > rmax ? c - rmax : 0;
                    if (c > rmax) rmax = c;
                }
                if (counted && est + add > e->o.batch_quantum_us) break;
                keep++;
                counted++;
                est += add;
                run_k = rk;
                run_max = rmax;
                if (est >= e->o.batch_quantum_us) break;
            }
            take = keep;
        }
        int n = 0, nrun = 0;
        int64_t now = gx__now_ns();
        for (uint32_t i = 0; i < take; i++) {
            gx__job *j = d->ring[d->rhead];
            d->rhead = (d->rhead + 1) & (d->rcap - 1);
            /* atomic: idle slots poll rcount without the lock (see the spin
             * above); relaxed, since a taken job publishes nothing to them */
            __atomic_store_n(&d->rcount, d->rcount - 1, __ATOMIC_RELAXED);
            d->running++;
            run_item *it = &items[n++];
            it->j = j;
            it->out = NULL;
            gx_error_clear(&it->err);
            if (gx_job_state_is_final(j->state)) {
                it->fn = NULL; /* cancelled or timed out while placed */
                continue;
            }
            gx__kstat *ks = gx__kinfo(e, j->kernel);
            it->fn = ks ? ks->impl[d->kind] : gx_kernel_impl(j->kernel, d->kind);
            j->state = GX_JOB_RUNNING;
            j->start_ns = now;
            j->attempts++;
            /* the queue timeout ends here; the run timeout starts */
            if (j->timeout_ns)
                gx__timer_set(e, j, now + j->timeout_ns);
            else
                gx__timer_clear(e, j);
            gx__ev_push(e, &eb, j);
            if (j->kernel->noutputs) it->out = calloc((size_t)j->kernel->noutputs, sizeof(gx_array *));
            gx__kcall_init(&it->call, j->kernel, &j->bound, it->out, &it->err);
            it->cc = (ckpt_ctx){e, j};
            it->call.cancel = (const volatile int *)&j->cancel;
            it->call.device = d->index;
            it->call.dev_ctx = slot_ctx;
            if (j->kernel->flags & GX_KF_CHECKPOINT) {
                it->call.checkpoint = engine_checkpoint;
                it->call.resume = j->ckpt;
                it->call.nresume = j->nckpt;
                it->call.resume_step = j->ckpt_step;
            }
            it->call.engine_priv = &it->cc;
            if (!it->fn || (j->kernel->noutputs && !it->out)) continue;
            calls[nrun++] = &it->call;
        }
        uint32_t batch_tenant = n ? items[0].j->tenant : UINT32_MAX;
        if (d->rcount && d->sleepers) pthread_cond_signal(&d->cv); /* what is left has an idle slot */
        pthread_mutex_unlock(&e->mu);
        gx__ev_flush(e, &eb);

        if (nrun && d->be->scrub && batch_tenant != last_tenant) {
            /* another tenant's data may be in this slot's buffers */
            d->be->scrub(d->bdev, slot_ctx);
            last_tenant = batch_tenant;
        }
        /* injected device faults (CPU devices; the CUDA backend injects its own) */
        int done = nrun ? gx__health_inject(e, d, calls, res, nrun) : 0;
        if (d->be == &cpu_backend) {
            /* the hot path: call the resolved implementation directly */
            for (int i = done; i < nrun; i++) {
                run_item *it = (run_item *)((char *)calls[i] - offsetof(run_item, call));
                int64_t t0 = gx__now_ns();
                int rc = it->fn(&it->call);
                res[i].rc = rc;
                res[i].run_ns = gx__now_ns() - t0;
            }
        } else if (nrun > done) {
            memset(res + done, 0, (size_t)(nrun - done) * sizeof *res);
            d->be->run_batch(d->bdev, slot_ctx, calls + done, res + done, nrun - done);
        }

        pthread_mutex_lock(&e->mu);
        int r = 0;
        for (int i = 0; i < n; i++) {
            run_item *it = &items[i];
            gx_call_result rr = {0, 0};
            if (r < nrun && calls[r] == &it->call) {
                rr = res[r++];
            } else if (!gx_job_state_is_final(it->j->state)) {
                rr.rc = it->fn ? GX_ENOMEM : GX_EUNSUPPORTED;
                snprintf(it->err.message, sizeof it->err.message, "%s",
                         it->fn ? "out of memory for outputs"
                                : "kernel has no implementation for this device");
            }
            complete(e, d, it, &rr, &eb);
        }
        gx__sched_dispatch(e, INT32_MAX, 0);
        gx__notify_done(e);
        if (eb.n) {
            pthread_mutex_unlock(&e->mu);
            gx__ev_flush(e, &eb);
            pthread_mutex_lock(&e->mu);
        }
    }
    pthread_mutex_unlock(&e->mu);
    free(items);
    free(calls);
    free(res);
    if (d->be->slot_close) d->be->slot_close(d->bdev, slot_ctx);
    free(w);
    pthread_mutex_lock(&e->mu);
    gx__health_worker_left(e, d);
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- timer thread ------------------------------------------------------ */

static void on_timer(gx_engine *e, gx__job *j, gx__evbuf *eb) {
    char msg[160];
    switch (j->state) {
    case GX_JOB_RETRYING: /* back-off over: queue the next attempt */
        gx__make_runnable(e, j, eb, 1);
        break;
    case GX_JOB_RUNNING:
        snprintf(msg, sizeof msg, "ran longer than its timeout of %lld ms",
                 (long long)(j->timeout_ns / 1000000));
        gx__finish(e, j, GX_JOB_TIMED_OUT, GX_ETIMEDOUT, msg, eb);
        break;
    case GX_JOB_QUEUED:
    case GX_JOB_WAITING:
    case GX_JOB_SCHEDULED:
        snprintf(msg, sizeof msg, "waited longer than its queue timeout of %lld ms",
                 (long long)(j->queue_timeout_ns / 1000000));
        gx__finish(e, j, GX_JOB_TIMED_OUT, GX_ETIMEDOUT, msg, eb);
        break;
    default:
        if (j->hang_watch) gx__health_hung(e, j); /* cancelled hang grace ago and still running */
        break;
    }
}

static void *timer_main(void *arg) {
    gx_engine *e = arg;
    pthread_setname_np(pthread_self(), "gx-timer");
    gx__evbuf eb;
    gx__evbuf_init(&eb);
    pthread_mutex_lock(&e->mu);
    while (!e->stopping) {
        int64_t now = gx__now_ns();
        if (e->brk_due && e->brk_due <= now) {
            /* a circuit breaker's cool-down is over: let its probe go */
            gx__brk_tick(e, now);
            gx__sched_dispatch(e, INT32_MAX, 0);
            continue;
        }
        if (!e->ntimers && !e->brk_due) {
            pthread_cond_wait(&e->timer_cv, &e->mu);
            continue;
        }
        gx__job *j = e->ntimers ? e->timers[0] : NULL;
        if (!j || j->deadline > now) {
            int64_t until = j ? j->deadline : e->brk_due;
            if (e->brk_due && e->brk_due < until) until = e->brk_due;
            struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
            pthread_cond_timedwait(&e->timer_cv, &e->mu, &ts);
            continue;
        }
        gx__timer_clear(e, j);
        on_timer(e, j, &eb);
        gx__sched_dispatch(e, INT32_MAX, 0);
        if (eb.n) {
            pthread_mutex_unlock(&e->mu);
            gx__ev_flush(e, &eb);
            pthread_mutex_lock(&e->mu);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------ */

void gx_engine_opts_init(gx_engine_opts *o) {
    memset(o, 0, sizeof *o);
    o->placement = "least_loaded";
    o->fair_halflife_s = 60;
    o->max_batch = 256;
    o->batch_quantum_us = 2000;
    o->gpu_max_batch = 64;
    o->hang_grace_ms = 5000;
    o->poison_faults = 2;
    o->recovery_attempts = 3;
    o->retry_base_ms = 100;
    o->retry_cap_ms = 10000;
    o->breaker_threshold = 5;
    o->breaker_cooldown_ms = 30000;
}

static uint64_t host_mem(void) {
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : (uint64_t)1 << 32;
}

static int add_device(gx_engine *e, const gx_backend *be, gx_backend_dev *bdev,
                      const gx_device_desc *desc) {
    if (e->ndev == GX__MAX_DEVICES) return GX_ELIMIT;
    gx__device *d = &e->dev[e->ndev];
    memset(d, 0, sizeof *d);
    d->index = e->ndev++;
    d->kind = be->kind;
    d->be = be;
    d->bdev = bdev;
    d->desc = *desc;
    if (d->desc.slots < 1) d->desc.slots = 1;
    d->healthy = 1;
    snprintf(d->status, sizeof d->status, "ok");
    gx__brk_init(&d->brk, e->o.breaker_threshold, (int64_t)e->o.breaker_cooldown_ms * 1000000);
    d->rcap = 1024;
    d->ring = malloc(d->rcap * sizeof *d->ring);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* timed waits use gx__now_ns */
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    return d->ring ? 0 : GX_ENOMEM;
}

/* Where the CUDA backend is: the configured path (cuda.plugin, whose
 * GEXEC_CUDA_PLUGIN the daemon's configuration reads), $GEXEC_CUDA_PLUGIN
 * for programs that give none, beside the executable, in ../lib/gexec from
 * it, or the loader's search path. */
static void cuda_path(const gx_engine_opts *o, char *out, size_t cap) {
    const char *p = o->cuda_plugin ? o->cuda_plugin : getenv("GEXEC_CUDA_PLUGIN");
    if (p) {
        snprintf(out, cap, "%s", p);
        return;
    }
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, cap, "%s/libgexec_cuda.so", exe);
            if (!access(out, R_OK)) return;
            /* installed: /usr/local/bin/gexecd, /usr/local/lib/gexec/ */
            snprintf(out, cap, "%s/../lib/gexec/libgexec_cuda.so", exe);
            if (!access(out, R_OK)) return;
        }
    }
    snprintf(out, cap, "libgexec_cuda.so");
}

/* Load the CUDA backend if its shared object and a GPU are there; say why
 * not otherwise (e->gpu_status). */
static void load_cuda(gx_engine *e) {
    char path[1024];
    if (e->o.cuda_disable) {
        snprintf(e->gpu_status, sizeof e->gpu_status, "CUDA backend disabled by configuration; running CPU-only");
        return;
    }
    cuda_path(&e->o, path, sizeof path);
    if (!path[0]) {
        snprintf(e->gpu_status, sizeof e->gpu_status, "CUDA backend disabled (empty plugin path); running CPU-only");
        return;
    }
    /* never unloaded: the backend may pull in libraries (libstdc++, the CUDA
     * runtime) whose static state must outlive dlclose */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) {
        snprintf(e->gpu_status, sizeof e->gpu_status, "no CUDA backend (%.200s); running CPU-only", dlerror());
        return;
    }
    gx_backend_entry_fn entry = (gx_backend_entry_fn)dlsym(dl, GX_BACKEND_ENTRY_SYMBOL);
    const gx_backend *be = entry ? entry() : NULL;
    /* older ABI 1 backends lack the appended methods (GX_BACKEND_HAS) */
    if (!be || be->abi_version != GX_BACKEND_ABI_VERSION || be->struct_size < GX_BACKEND_SIZE_V1 ||
        !be->init || !be->device_open || !be->run_batch) {
        snprintf(e->gpu_status, sizeof e->gpu_status,
                 "CUDA backend %.100s ignored: ABI %u does not match %u; running CPU-only", path,
                 be ? be->abi_version : 0, GX_BACKEND_ABI_VERSION);
        dlclose(dl);
        return;
    }
    gx_error err;
    gx_error_clear(&err);
    int n = be->init(&err);
    if (n <= 0) {
        snprintf(e->gpu_status, sizeof e->gpu_status, "%.180s; running CPU-only",
                 n < 0 ? err.message : "no GPU found");
        if (be->shutdown) be->shutdown();
        dlclose(dl);
        return;
    }
    e->cuda_dl = dl;
    e->cuda_be = be;
    snprintf(e->gpu_status, sizeof e->gpu_status, "CUDA backend loaded from %.200s: %d GPU%s", path, n,
             n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        gx_backend_dev *bd = NULL;
        gx_device_desc desc;
        memset(&desc, 0, sizeof desc);
        if (be->device_open(i, &bd, &desc, &err)) {
            size_t l = strlen(e->gpu_status);
            snprintf(e->gpu_status + l, sizeof e->gpu_status - l, "; GPU %d not used: %.100s", i, err.message);
            continue;
        }
        if (add_device(e, be, bd, &desc)) break;
        gx__device *d = &e->dev[e->ndev - 1];
        d->ordinal = i;
        if (be->self_test) {
            char msg[128] = "";
            if (be->self_test(bd, msg, sizeof msg)) {
                d->healthy = 0;
                snprintf(d->status, sizeof d->status, "self-test failed: %.100s", msg);
            }
        }
    }
}

int gx__dev_start(gx_engine *e, gx__device *d) {
    d->slots_open = 0;
    d->threads = calloc((size_t)d->desc.slots, sizeof *d->threads);
    if (!d->threads) return GX_ENOMEM;
    for (int s = 0; s < d->desc.slots; s++) {
        worker *w = malloc(sizeof *w);
        if (!w) return GX_ENOMEM;
        *w = (worker){e, d, s};
        if (pthread_create(&d->threads[s], NULL, worker_main, w)) {
            free(w);
            return GX_ENOMEM;
        }
        d->nthreads++;
        d->nlive++;
    }
    return 0;
}

static int start_threads(gx_engine *e) {
    gx__health_baseline(e); /* the devices as opened: no change to report */
    for (int i = 0; i < e->ndev; i++) {
        int rc = gx__dev_start(e, &e->dev[i]);
        if (rc) return rc;
    }
    if (pthread_create(&e->timer_thread, NULL, timer_main, e)) return GX_ENOMEM;
    return gx__health_start(e);
}

int gx_engine_create(const gx_engine_opts *opts, gx_engine **out, gx_error *err) {
    gx_engine_opts o;
    if (opts)
        o = *opts;
    else
        gx_engine_opts_init(&o);
    if (!out) return gx_error_set(err, GX_EINVAL, "out", "out is NULL");
    *out = NULL;
    if (o.cpu_workers < 0 || o.cpu_workers > 1024)
        return gx_error_set(err, GX_EINVAL, "cpu_workers", "cpu_workers must be 0..1024; got %d", o.cpu_workers);
    if (o.cpu_workers == 0) o.cpu_workers = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (o.cpu_workers < 1) o.cpu_workers = 1;
    if (!o.placement) o.placement = "least_loaded";
    if (!(o.fair_halflife_s >= 0) || o.fair_halflife_s > 1e7)
        return gx_error_set(err, GX_EINVAL, "fair_halflife_s", "fair_halflife_s must be 0..1e7 seconds");
    if (o.fair_halflife_s == 0) o.fair_halflife_s = 60;
    if (o.max_batch <= 0) o.max_batch = 256;
    if (o.max_batch > RUN_BATCH_MAX) o.max_batch = RUN_BATCH_MAX;
    if (!(o.batch_quantum_us > 0)) o.batch_quantum_us = 2000;
    if (!o.max_jobs) o.max_jobs = (uint64_t)1 << 26;
    if (o.hang_grace_ms < 0 || o.hang_grace_ms > 3600000)
        return gx_error_set(err, GX_EINVAL, "hang_grace_ms", "hang_grace_ms must be 0..3600000");
    if (o.poison_faults <= 0) o.poison_faults = 2;
    if (o.recovery_attempts <= 0) o.recovery_attempts = 3;
    if (!o.cpu_mem_bytes) o.cpu_mem_bytes = host_mem() / 2;
    if (o.retry_base_ms <= 0) o.retry_base_ms = 100;
    if (o.retry_cap_ms <= 0) o.retry_cap_ms = 10000;
    if (o.retry_cap_ms < o.retry_base_ms) o.retry_cap_ms = o.retry_base_ms;
    if (o.breaker_threshold == 0) o.breaker_threshold = 5;
    if (o.breaker_cooldown_ms <= 0) o.breaker_cooldown_ms = 30000;
    const gx__placer *pl = gx__placer_find(o.placement);
    if (!pl) {
        char names[128];
        gx__placer_names(names, sizeof names);
        return gx_error_set(err, GX_EINVAL, "placement", "unknown placement '%s' (%s)", o.placement, names);
    }
    gx_engine *e = calloc(1, sizeof *e);
    if (!e) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    e->o = o;
    e->placer = pl;
    e->next_id = 1;
    e->wall_offset = gx__wall_ns() - gx__now_ns();
    pthread_mutex_init(&e->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->done_cv, &ca);
    pthread_cond_init(&e->timer_cv, &ca);
    pthread_cond_init(&e->health_cv, &ca);
    pthread_condattr_destroy(&ca);
    gx__catalog_init();

    if (o.cpu_devices <= 0) o.cpu_devices = 1;
    if (o.cpu_devices > 16 || o.cpu_devices > o.cpu_workers) {
        pthread_mutex_destroy(&e->mu);
        free(e);
        return gx_error_set(err, GX_EINVAL, "cpu_devices", "cpu_devices must be 1..min(16, cpu_workers)");
    }
    gx_device_desc cpu = {.slots = o.cpu_workers / o.cpu_devices, .mem_total = o.cpu_mem_bytes};
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu.model, sizeof cpu.model, "%s", strchr(line, ':') + 2);
                cpu.model[strcspn(cpu.model, "\n")] = '\0';
                break;
            }
        fclose(f);
    }
    int rc = 0;
    for (int i = 0; i < o.cpu_devices && !rc; i++) {
        if (o.cpu_devices == 1)
            snprintf(cpu.name, sizeof cpu.name, "cpu");
        else
            snprintf(cpu.name, sizeof cpu.name, "cpu:%d", i);
        rc = add_device(e, &cpu_backend, NULL, &cpu);
    }
    if (!rc) load_cuda(e);
    if (!rc) rc = gx__sched_init(e);
    uint32_t tid;
    if (!rc && !o.no_default_tenant) rc = gx__tenant_new(e, "default", 1, 0, &tid);
    if (!rc) rc = start_threads(e);
    if (rc) {
        gx_engine_destroy(e);
        return gx_error_set(err, rc, NULL, "cannot start the engine: %s", gx_strerror(rc));
    }
    *out = e;
    return 0;
}

void gx_engine_destroy(gx_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    for (size_t p = 0; p < e->npages; p++)
        for (uint32_t i = 0; e->pages[p] && i < PAGE_JOBS; i++)
            if (e->pages[p][i].live) atomic_store(&e->pages[p][i].cancel, 1);
    for (int i = 0; i < e->ndev; i++) pthread_cond_broadcast(&e->dev[i].cv);
    pthread_cond_broadcast(&e->timer_cv);
    pthread_cond_broadcast(&e->done_cv);
    pthread_cond_broadcast(&e->health_cv);
    pthread_mutex_unlock(&e->mu);
    gx__health_stop(e); /* before the workers: a recovery may start them */
    for (int i = 0; i < e->ndev; i++) {
        gx__device *d = &e->dev[i];
        for (int s = 0; s < d->nthreads; s++) pthread_join(d->threads[s], NULL);
        free(d->threads);
        free(d->ring);
        pthread_cond_destroy(&d->cv);
        if (d->bdev && d->be->device_close) d->be->device_close(d->bdev);
    }
    if (e->timer_thread) pthread_join(e->timer_thread, NULL);
    gx__health_stopped(e);
    for (size_t p = 0; p < e->npages; p++) {
        for (uint32_t i = 0; e->pages[p] && i < PAGE_JOBS; i++)
            if (e->pages[p][i].live) job_clear(e, &e->pages[p][i]);
        free(e->pages[p]);
    }
    free(e->pages);
    free(e->page_live);
    free(e->timers);
    gx__brk_free(e);
    if (e->ch) gx__sched_free(e);
    gx__hmap_free(&e->tenant_ix);
    gx__hmap_free(&e->idem);
    if (e->cuda_dl) {
        if (e->cuda_be->shutdown) e->cuda_be->shutdown();
        dlclose(e->cuda_dl);
    }
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->done_cv);
    pthread_cond_destroy(&e->timer_cv);
    pthread_cond_destroy(&e->health_cv);
    free(e);
}

void gx_engine_sync_events(gx_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    uint64_t target = e->ev_produced;
    pthread_mutex_unlock(&e->mu);
    while (atomic_load(&e->ev_delivered) < target) sched_yield();
}

void gx_engine_pause(gx_engine *e, int paused) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->paused = paused;
    if (!paused) gx__sched_dispatch(e, INT32_MAX, 0);
    for (int i = 0; i < e->ndev; i++) pthread_cond_broadcast(&e->dev[i].cv);
    pthread_mutex_unlock(&e->mu);
}

int gx_engine_drain(gx_engine *e, int64_t timeout_ms) {
    if (!e) return GX_EINVAL;
    if (timeout_ms > (int64_t)100 * 365 * 86400 * 1000) timeout_ms = -1; /* past a century: forever (no overflow) */
    int64_t until = timeout_ms >= 0 ? gx__now_ns() + timeout_ms * 1000000 : 0;
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    while (e->unfinished > 0) {
        e->waiters++;
        if (timeout_ms < 0) {
            pthread_cond_wait(&e->done_cv, &e->mu);
        } else {
            struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
            if (pthread_cond_timedwait(&e->done_cv, &e->mu, &ts) == ETIMEDOUT && e->unfinished > 0) {
                rc = GX_ETIMEDOUT;
                e->waiters--;
                break;
            }
        }
        e->waiters--;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}
