/*
 * submit.c - accepting jobs: validation, dependencies, idempotency.
 *
 * Everything that can be checked without the engine lock (kernel, args,
 * inputs, device constraint, limits) is checked first, per spec; then one
 * lock covers the whole call (a batch of 10,000 specs takes the lock once)
 * for tenant lookup, idempotency, dependency wiring and queueing, and the
 * devices are refilled once at the end.
 *
 * A job that can never run (unknown kernel, a device that does not exist,
 * more memory than any device it may use has) is refused here rather than
 * left pending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "engine_int.h"

#define MAX_DEPS 1024
#define MAX_LABELS 32
#define MAX_TIMEOUT_MS (INT64_C(30) * 24 * 3600 * 1000)

typedef struct prep {
    const gx_kernel *k;
    gx__bound b;
    int cls;
    uint64_t mem;
    const char *mem_field; /* what sets mem: "inputs" (the kernel's estimate)
                              or "memory_bytes" (declared, the larger) */
    int priority, max_attempts;
    int64_t timeout_ns, queue_timeout_ns;
    gx__label *labels;
    int nlabels;
} prep;

static void prep_free(prep *p) {
    gx__bound_free(&p->b);
    for (int i = 0; i < p->nlabels; i++) {
        free(p->labels[i].key);
        free(p->labels[i].value);
    }
    free(p->labels);
    memset(p, 0, sizeof *p);
}

static int label_key_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 63) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.' || *s == '/'))
            return 0;
    return 1;
}

/* Parse the device constraint into a class; checks the device exists. */
static int parse_device(gx_engine *e, const char *dev, int *cls, gx_error *err, int fallback_cpu) {
    int ngpu = 0;
    for (int i = 0; i < e->ndev; i++) ngpu += e->dev[i].kind == GX_DEV_CUDA;
    if (!dev || !*dev || !strcmp(dev, "any")) {
        *cls = GX__CLS_ANY;
        return 0;
    }
    if (!strcmp(dev, "cpu")) {
        *cls = GX__CLS_CPU;
        return 0;
    }
    if (!strcmp(dev, "gpu")) {
        if (fallback_cpu) { /* runs on a CPU while no GPU is usable, none at all included */
            *cls = GX__CLS_GPU_FB;
            return 0;
        }
        if (!ngpu)
            return gx_error_set(err, GX_ENODEVICE, "device",
                                "the job requires a GPU and this engine has none (CPU only)");
        *cls = GX__CLS_GPU;
        return 0;
    }
    int is_gpu = !strncmp(dev, "gpu:", 4), is_cpu = !strncmp(dev, "cpu:", 4);
    if (is_gpu || is_cpu) {
        const char *p = dev + 4;
        long n = 0;
        if (!*p || strlen(p) > 4) goto bad;
        for (; *p; p++) {
            if (*p < '0' || *p > '9') goto bad;
            n = n * 10 + (*p - '0');
        }
        int seen = 0;
        for (int i = 0; i < e->ndev; i++) {
            if ((e->dev[i].kind == GX_DEV_CUDA) != is_gpu) continue;
            if (seen++ == n) {
                *cls = GX__CLS_DEV0 + i;
                return 0;
            }
        }
        return gx_error_set(err, GX_ENODEVICE, "device", "no device %s: this engine has %d %s%s",
                            dev, seen, is_gpu ? "GPU" : "CPU device", seen == 1 ? "" : "s");
    }
bad:
    return gx_error_set(err, GX_EINVAL, "device",
                        "device must be any, cpu, gpu, cpu:N or gpu:N; got '%.40s'", dev);
}

/* Per-spec checks that need no lock. */
/* The kernel a spec names; a batch of jobs of one kernel looks it up once
 * (the registry lookup takes a process-wide lock). */
typedef struct kcache {
    const char *name;
    const gx_kernel *k;
} kcache;

static const gx_kernel *find_kernel(kcache *kc, const char *name) {
    if (kc && kc->name && !strcmp(kc->name, name)) return kc->k;
    const gx_kernel *k = gx_kernel_find(name);
    if (kc) kc->name = name, kc->k = k;
    return k;
}

static int prepare(gx_engine *e, const gx_job_spec *s, prep *p, kcache *kc, gx_error *err) {
    memset(p, 0, sizeof *p);
    if (!s->kernel || !*s->kernel) return gx_error_set(err, GX_EINVAL, "kernel", "kernel is required");
    p->k = find_kernel(kc, s->kernel);
    if (!p->k)
        return gx_error_set(err, GX_EINVAL, "kernel", "unknown kernel '%.64s' (GET /v1/kernels lists them)",
                            s->kernel);
    if (s->priority != GX_PRIORITY_TENANT && (s->priority < -100 || s->priority > 100))
        return gx_error_set(err, GX_EINVAL, "priority", "priority must be -100..100; got %d", s->priority);
    if (s->timeout_ms < 0 || s->timeout_ms > MAX_TIMEOUT_MS)
        return gx_error_set(err, GX_EINVAL, "timeout_ms", "timeout_ms must be 0..%lld (30 days); got %lld",
                            (long long)MAX_TIMEOUT_MS, (long long)s->timeout_ms);
    if (s->queue_timeout_ms < 0 || s->queue_timeout_ms > MAX_TIMEOUT_MS)
        return gx_error_set(err, GX_EINVAL, "queue_timeout_ms",
                            "queue_timeout_ms must be 0..%lld (30 days); got %lld",
                            (long long)MAX_TIMEOUT_MS, (long long)s->queue_timeout_ms);
    if (s->max_attempts < 0 || s->max_attempts > 100)
        return gx_error_set(err, GX_EINVAL, "max_attempts", "max_attempts must be 1..100; got %d",
                            s->max_attempts);
    if (s->ndeps < 0 || s->nbatch_deps < 0 || s->ndeps + s->nbatch_deps > MAX_DEPS ||
        (s->ndeps && !s->deps))
        return gx_error_set(err, GX_EINVAL, "depends_on", "a job may depend on 0..%d jobs", MAX_DEPS);
    if (s->nlabels < 0 || s->nlabels > MAX_LABELS || (s->nlabels && !s->labels))
        return gx_error_set(err, GX_EINVAL, "labels", "a job may carry 0..%d labels", MAX_LABELS);
    if (s->idempotency_key && (!*s->idempotency_key || strlen(s->idempotency_key) > 255))
        return gx_error_set(err, GX_EINVAL, "idempotency_key", "idempotency_key must be 1..255 bytes");
    for (int i = 0; i < s->nlabels; i++) {
        char field[96];
        const char *k = s->labels[i].key, *v = s->labels[i].value;
        /* the key whole, or (one too long for the field) the member */
        if (!k || strlen(k) > sizeof field - sizeof "labels.") snprintf(field, sizeof field, "labels");
        else snprintf(field, sizeof field, "labels.%s", k);
        if (!k || !label_key_ok(k))
            return gx_error_set(err, GX_EINVAL, field, "label keys are 1..63 of [A-Za-z0-9_.-/]; got '%.40s%s' (%zu bytes)",
                                k ? k : "", k && strlen(k) > 40 ? "..." : "", k ? strlen(k) : 0);
        if (!v || strlen(v) > 255) return gx_error_set(err, GX_EINVAL, field, "label values are 0..255 bytes");
        for (int j = 0; j < i; j++)
            if (!strcmp(s->labels[j].key, k)) return gx_error_set(err, GX_EINVAL, field, "label '%s' is given twice", k);
    }
    if (s->fallback && strcmp(s->fallback, "cpu") && strcmp(s->fallback, "none"))
        return gx_error_set(err, GX_EINVAL, "fallback", "fallback must be cpu or none; got '%.40s'", s->fallback);
    int rc = parse_device(e, s->device, &p->cls, err, s->fallback && !strcmp(s->fallback, "cpu"));
    if (rc) return rc;
    if (s->fallback && !strcmp(s->fallback, "cpu") && p->cls != GX__CLS_GPU_FB)
        return gx_error_set(err, GX_EINVAL, "fallback", "fallback cpu goes with device gpu; got device '%.40s'",
                            s->device ? s->device : "any");
    /* the kernel must have an implementation for a device it may use */
    int has_cpu = gx_kernel_impl(p->k, GX_DEV_CPU) != NULL, has_gpu = gx_kernel_impl(p->k, GX_DEV_CUDA) != NULL;
    int ngpu = 0;
    for (int i = 0; i < e->ndev; i++) ngpu += e->dev[i].kind == GX_DEV_CUDA;
    if (p->cls == GX__CLS_ANY) {
        if (!has_gpu || !ngpu) p->cls = GX__CLS_CPU;
        else if (!has_cpu) p->cls = GX__CLS_GPU;
    }
    if (p->cls == GX__CLS_GPU_FB && (!has_cpu || (ngpu && !has_gpu)))
        return gx_error_set(err, GX_ENODEVICE, "fallback", "kernel %s has no %s implementation", p->k->name,
                            has_cpu ? "GPU" : "CPU (needed for the fallback)");
    int wants_gpu = p->cls == GX__CLS_GPU || (p->cls >= GX__CLS_DEV0 && e->dev[p->cls - GX__CLS_DEV0].kind == GX_DEV_CUDA);
    if (wants_gpu ? !has_gpu : (p->cls != GX__CLS_ANY && !has_cpu))
        return gx_error_set(err, GX_ENODEVICE, "device", "kernel %s has no %s implementation", p->k->name,
                            wants_gpu ? "GPU" : "CPU");
    rc = gx__bind(p->k, s->args, s->nargs, s->inputs, s->ninputs, &p->b, err);
    if (rc) return rc;
    if (p->k->mem_bytes) {
        gx_kcall c;
        gx__kcall_init(&c, p->k, &p->b, NULL, NULL);
        p->mem = p->k->mem_bytes(&c);
    }
    /* a declared need counts when it is the larger: the field to blame */
    p->mem_field = s->mem_bytes > p->mem ? "memory_bytes" : "inputs";
    if (s->mem_bytes > p->mem) p->mem = s->mem_bytes;
    uint64_t biggest = 0;
    for (int i = 0; i < e->ndev; i++) { /* without the lock: a recovery may store a new size (health.c) */
        uint64_t m = __atomic_load_n(&e->dev[i].desc.mem_total, __ATOMIC_RELAXED);
        /* a GPU job with a CPU fallback is sized against the GPUs (the CPU
         * is only where it goes while no GPU is usable, and a job no GPU can
         * hold would wait for ever once one is), or the CPUs on a machine
         * without GPUs; by kind alone, not by the devices' health read
         * without the lock (the answer depended on the moment) */
        int may = p->cls == GX__CLS_GPU_FB ? (ngpu ? e->dev[i].kind == GX_DEV_CUDA : 1) : gx__cls_allows(e, p->cls, i);
        if (may && m > biggest) biggest = m;
    }
    if (p->mem > biggest) {
        /* estimators saturate at UINT64_MAX where the figure would wrap */
        rc = p->mem == UINT64_MAX
                 ? gx_error_set(err, GX_ENODEVICE, p->mem_field,
                                "the job needs 2^64 bytes of device memory or more; the largest device it may "
                                "use has %llu", (unsigned long long)biggest)
                 : gx_error_set(err, GX_ENODEVICE, p->mem_field,
                                "the job needs %llu bytes of device memory%s; the largest device it may use has %llu",
                                (unsigned long long)p->mem, *p->mem_field == 'm' ? " (its memory_bytes)" : "",
                                (unsigned long long)biggest);
        prep_free(p);
        return rc;
    }
    p->priority = s->priority;
    p->max_attempts = s->max_attempts ? s->max_attempts : gx_kernel_default_attempts(p->k);
    p->timeout_ns = s->timeout_ms * 1000000;
    p->queue_timeout_ns = s->queue_timeout_ms * 1000000;
    if (s->nlabels) {
        p->labels = calloc((size_t)s->nlabels, sizeof *p->labels);
        if (!p->labels) goto nomem;
        for (int i = 0; i < s->nlabels; i++) {
            p->labels[i].key = strdup(s->labels[i].key);
            p->labels[i].value = strdup(s->labels[i].value);
            p->nlabels = i + 1;
            if (!p->labels[i].key || !p->labels[i].value) goto nomem;
        }
    }
    return 0;
nomem:
    prep_free(p);
    return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
}

/* A job bigger than its tenant's memory quota could never run: refuse it
 * (lock held). */
static int mem_quota_check(const gx__tenant *t, uint64_t mem, const char *field, gx_error *err) {
    if (!t->max_mem || mem <= t->max_mem) return 0;
    char need[32], lim[32];
    gx__fmt_bytes(mem, need, sizeof need);
    gx__fmt_bytes(t->max_mem, lim, sizeof lim);
    return gx_error_set(err, GX_ENODEVICE, field,
                        "the job needs %s of device memory, more than tenant %s's max_device_memory_bytes quota of "
                        "%s: it could never run",
                        need, t->name, lim);
}

static int add_dependent(gx__job *dep, gx_job_id id) {
    if (dep->ndependents == dep->capdependents) {
        uint32_t nc = dep->capdependents ? dep->capdependents * 2 : 2;
        gx_job_id *nv = realloc(dep->dependents, nc * sizeof *nv);
        if (!nv) return GX_ENOMEM;
        dep->dependents = nv;
        dep->capdependents = nc;
    }
    dep->dependents[dep->ndependents++] = id;
    return 0;
}

/* What refuses a new record of tenant tid with this id; given: the id was
 * the caller's (else the engine's next, free by construction); replacing:
 * it takes the place of a record of the same id (a re-queue), which is
 * counted and present now. Lock held. */
static int admit_checks(gx_engine *e, uint64_t tid, const prep *p, gx_job_id id, int given, const gx_job_id *deps,
                        int ndeps, int replacing, int restoring, gx_error *err) {
    /* a job accepted before its tenant's quota was lowered waits for it
     * (tenant_memory), live and after a restart alike */
    int qrc = restoring ? 0 : mem_quota_check(&e->tenants[tid], p->mem, p->mem_field, err);
    if (qrc) return qrc;
    if ((uint64_t)e->live_jobs - (replacing ? 1 : 0) >= e->o.max_jobs)
        return gx_error_set(err, GX_ELIMIT, NULL, "the engine holds its maximum of %llu jobs",
                            (unsigned long long)e->o.max_jobs);
    if (given && !replacing && gx__job_get(e, id))
        return gx_error_set(err, GX_EEXIST, "id", "job %llu already exists", (unsigned long long)id);
    for (int i = 0; i < ndeps; i++) {
        if (!gx__job_get(e, deps[i])) {
            char field[32];
            snprintf(field, sizeof field, "depends_on[%d]", i);
            return gx_error_set(err, GX_EINVAL, field, "job %llu does not exist", (unsigned long long)deps[i]);
        }
        if (deps[i] == id) return gx_error_set(err, GX_ECYCLE, "depends_on", "a job cannot depend on itself");
    }
    return 0;
}

/* The tenant a spec names: 0 and *tid, or GX_ENOTFOUND. Lock held. */
static int tenant_of(gx_engine *e, const gx_job_spec *s, uint64_t *tid, gx_error *err) {
    const char *tname = s->tenant ? s->tenant : "default";
    if (!gx__hmap_get(&e->tenant_ix, tname, strlen(tname), tid))
        return gx_error_set(err, GX_ENOTFOUND, "tenant", "unknown tenant '%.64s'", tname);
    return 0;
}

/* Insert one prepared job; lock held. deps are resolved ids. On success
 * the prep's resources belong to the job. */
static int insert(gx_engine *e, const gx_job_spec *s, prep *p, const gx_job_id *deps, int ndeps,
                  gx_job_id *id_out, int *dup, gx__evbuf *eb, gx_error *err) {
    uint64_t tid;
    int trc = tenant_of(e, s, &tid, err);
    if (trc) return trc;
    char ikey[300];
    int iklen = 0;
    if (s->idempotency_key) {
        iklen = snprintf(ikey, sizeof ikey, "%u/%s", (unsigned)tid, s->idempotency_key);
        uint64_t orig;
        if (gx__hmap_get(&e->idem, ikey, (size_t)iklen, &orig)) {
            *id_out = orig;
            if (dup) *dup = 1;
            prep_free(p);
            return 0;
        }
    }
    gx_job_id id = s->id ? s->id : e->next_id;
    int crc = admit_checks(e, tid, p, id, s->id != 0, deps, ndeps, 0, s->restored, err);
    if (crc) return crc;
    gx__job *j = gx__job_alloc(e, id);
    if (!j) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory for a job record");
    j->kernel = p->k;
    j->tenant = (uint32_t)tid;
    j->priority = (int8_t)(p->priority == GX_PRIORITY_TENANT ? e->tenants[tid].default_priority : p->priority);
    j->max_attempts = (uint8_t)p->max_attempts;
    j->budget = (uint8_t)p->max_attempts;
    j->cls = (uint8_t)p->cls;
    j->bound = p->b;
    j->mem = p->mem;
    j->timeout_ns = p->timeout_ns;
    j->queue_timeout_ns = p->queue_timeout_ns;
    j->labels = p->labels;
    j->nlabels = (uint8_t)p->nlabels;
    j->submit_ns = gx__now_ns();
    if (s->submitted_ns > 0) { /* restored: its own time, in our clock */
        int64_t at = s->submitted_ns - e->wall_offset;
        j->submit_ns = at < 1 ? 1 : at < j->submit_ns ? at : j->submit_ns;
    }
    j->attempts = (uint8_t)(s->attempts_done > 0 ? (s->attempts_done > 200 ? 200 : s->attempts_done) : 0);
    if (s->attempt_base > 0) { /* a re-queue's fresh budget, kept across a restart */
        int m = s->attempt_base + p->max_attempts;
        j->max_attempts = (uint8_t)(m > 255 ? 255 : m);
    }
    if (j->max_attempts <= j->attempts) j->max_attempts = (uint8_t)(j->attempts + 1);
    j->attempt_floor = (uint8_t)(s->attempt_floor > 0 ? (s->attempt_floor > 201 ? 201 : s->attempt_floor) : 0);
    if (s->nresume > 0 && s->resume && (j->kernel->flags & GX_KF_CHECKPOINT) &&
        (j->ckpt = calloc((size_t)s->nresume, sizeof *j->ckpt))) {
        for (int i = 0; i < s->nresume; i++) j->ckpt[i] = s->resume[i] ? gx_array_ref(s->resume[i]) : NULL;
        j->nckpt = s->nresume;
        j->ckpt_step = s->resume_step;
    }
    if (s->dev_faults_done > 0) gx__health_job_seed(j, s->dev_faults_done, s->fault_history);
    memset(p, 0, sizeof *p);
    if (iklen) {
        j->idem_key = strdup(s->idempotency_key);
        if (j->idem_key) gx__hmap_put(&e->idem, ikey, (size_t)iklen, id);
    }
    e->st.submitted++;
    e->unfinished++;
    e->tenants[tid].queued++;
    if (s->quota_reserved && e->tenants[tid].reserved > 0) e->tenants[tid].reserved--;
    gx__job *failed_dep = NULL;
    for (int i = 0; i < ndeps; i++) {
        gx__job *d = gx__job_get(e, deps[i]);
        int seen = 0;
        for (int k = 0; k < i; k++) seen |= deps[k] == deps[i];
        if (seen || d->state == GX_JOB_SUCCEEDED) continue;
        if (gx_job_state_is_final(d->state)) {
            if (!failed_dep) failed_dep = d;
            continue;
        }
        if (add_dependent(d, id)) {
            j->state = GX_JOB_WAITING;
            gx__finish(e, j, GX_JOB_FAILED, GX_ENOMEM, "out of memory recording dependencies", eb);
            *id_out = id;
            return 0;
        }
        if (!j->deps_pending++) j->wait_on = d->id;
    }
    /* a job that has run before (restored after its start, re-queued) has
     * no queue timeout left, as a live retry has none: it did start */
    if (j->queue_timeout_ns && !j->attempts) gx__timer_set(e, j, j->submit_ns + j->queue_timeout_ns);
    *id_out = id;
    if (failed_dep) {
        j->state = GX_JOB_WAITING;
        j->wait_on = failed_dep->id;
        gx__ev_push(e, eb, j);
        char msg[160];
        snprintf(msg, sizeof msg, "dependency %llu %s", (unsigned long long)failed_dep->id,
                 gx_job_state_name(failed_dep->state));
        gx__finish(e, j, GX_JOB_FAILED, GX_EDEPFAILED, msg, eb);
        return 0;
    }
    /* a restored job coming back in the state its store holds: that event
     * is recorded already (its history would show it twice) */
    int quiet = s->restored && s->stored_state == (j->deps_pending ? GX_JOB_WAITING : GX_JOB_QUEUED);
    size_t n0 = eb ? eb->n : 0;
    if (j->deps_pending) {
        j->state = GX_JOB_WAITING;
        if (!quiet) gx__ev_push(e, eb, j);
    } else {
        /* stored waiting, its dependencies done before the restart: this
         * queued is its release, a change of its own (not a submission's) */
        if (s->restored && s->stored_state == GX_JOB_WAITING) j->state = GX_JOB_WAITING;
        gx__make_runnable(e, j, eb, !quiet);
    }
    /* the submission's own event has the job's submit time (the stored
     * one, when the caller gave it), as its stored event and submitted_at
     * have: the stream showed the time of the engine's insert after it */
    for (size_t i = n0; eb && !s->restored && i < eb->n; i++)
        if (!eb->ev[i].released && eb->ev[i].attempt == 0) eb->ev[i].time_ns = gx__to_wall(e, j->submit_ns);
    return 0;
}

int gx_job_validate(gx_engine *e, const gx_job_spec *s, gx_error *err) {
    gx_error_clear(err);
    if (!e || !s) return gx_error_set(err, GX_EINVAL, NULL, "engine and spec are required");
    prep p;
    int rc = prepare(e, s, &p, NULL, err);
    if (rc) return rc;
    uint64_t mem = p.mem;
    const char *mem_field = p.mem_field;
    prep_free(&p);
    pthread_mutex_lock(&e->mu);
    uint64_t tid;
    rc = tenant_of(e, s, &tid, err);
    if (!rc) rc = mem_quota_check(&e->tenants[tid], mem, mem_field, err);
    for (int i = 0; !rc && i < s->ndeps; i++)
        if (!gx__job_get(e, s->deps[i])) {
            char field[32];
            snprintf(field, sizeof field, "depends_on[%d]", i);
            rc = gx_error_set(err, GX_EINVAL, field, "job %llu does not exist", (unsigned long long)s->deps[i]);
        }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int gx_submit(gx_engine *e, const gx_job_spec *s, gx_job_id *id, int *dup, gx_error *err) {
    gx_error_clear(err);
    if (dup) *dup = 0;
    if (!e || !s || !id) return gx_error_set(err, GX_EINVAL, NULL, "engine, spec and id are required");
    if (s->nbatch_deps)
        return gx_error_set(err, GX_EINVAL, "batch_deps", "batch_deps are only valid in gx_submit_batch");
    prep p;
    int rc = prepare(e, s, &p, NULL, err);
    if (rc) return rc;
    gx__evbuf eb;
    gx__evbuf_init(&eb);
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        rc = gx_error_set(err, GX_ECLOSED, NULL, "the engine is shutting down");
    } else {
        rc = insert(e, s, &p, s->deps, s->ndeps, id, dup, &eb, err);
        if (!rc) gx__sched_dispatch(e, INT32_MAX, 0);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) prep_free(&p);
    gx__ev_flush(e, &eb);
    return rc;
}

/* What would make insert() refuse a re-queue, checked while the old record
 * (replacing: there is one) still stands; after it only an out-of-memory
 * can. Lock held. */
static int requeue_checks(gx_engine *e, const gx_job_spec *s, const prep *p, int replacing, gx_error *err) {
    uint64_t tid;
    int rc = tenant_of(e, s, &tid, err);
    if (rc) return rc;
    if (s->idempotency_key) {
        char ikey[300];
        int n = snprintf(ikey, sizeof ikey, "%u/%s", (unsigned)tid, s->idempotency_key);
        uint64_t orig;
        if (gx__hmap_get(&e->idem, ikey, (size_t)n, &orig) && orig != s->id)
            return gx_error_set(err, GX_EEXIST, "idempotency_key", "another job (%llu) holds the idempotency key",
                                (unsigned long long)orig);
    }
    return admit_checks(e, tid, p, s->id, 1, s->deps, s->ndeps, replacing, 0, err);
}

int gx_job_requeue(gx_engine *e, const gx_job_spec *s, gx_error *err) {
    gx_error_clear(err);
    if (!e || !s || !s->id) return gx_error_set(err, GX_EINVAL, "id", "engine, spec and its id are required");
    if (s->nbatch_deps)
        return gx_error_set(err, GX_EINVAL, "batch_deps", "batch_deps are only valid in gx_submit_batch");
    prep p;
    int rc = prepare(e, s, &p, NULL, err);
    if (rc) return rc;
    int budget = p.max_attempts;
    gx__evbuf eb;
    gx__evbuf_init(&eb);
    pthread_mutex_lock(&e->mu);
    gx__job *old = gx__job_get(e, s->id);
    if (e->stopping) {
        rc = gx_error_set(err, GX_ECLOSED, NULL, "the engine is shutting down");
    } else if (old && old->state != GX_JOB_DEAD && old->state != GX_JOB_FAILED) {
        rc = gx_error_set(err, GX_ESTATE, "state", "job %llu is %s; only dead or failed jobs can be re-queued",
                          (unsigned long long)s->id, gx_job_state_name(old->state));
    } else if (old && old->busy) {
        rc = gx_error_set(err, GX_EBUSY, NULL, "job %llu is still leaving its device; try again",
                          (unsigned long long)s->id);
    } else if ((rc = requeue_checks(e, s, &p, old != NULL, err))) {
        /* refused before the old record goes: it stays as it was (a refused
         * re-queue deleted it) */
    } else {
        if (old) gx__job_release(e, old);
        gx_job_id id = 0;
        int dup = 0;
        rc = insert(e, s, &p, s->deps, s->ndeps, &id, &dup, &eb, err);
        if (!rc && dup) {
            rc = gx_error_set(err, GX_EEXIST, "idempotency_key", "another job (%llu) holds the idempotency key",
                              (unsigned long long)id);
        } else if (!rc) {
            /* a fresh budget: the attempts made before do not count */
            gx__job *j = gx__job_get(e, id);
            int m = j->attempts + budget;
            j->max_attempts = (uint8_t)(m > 255 ? 255 : m);
            gx__sched_dispatch(e, INT32_MAX, 0);
        }
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) prep_free(&p);
    gx__ev_flush(e, &eb);
    return rc;
}

/* Order batch specs so every spec comes after the specs it depends on;
 * mark specs in cycles (GX_ECYCLE). Iterative DFS. */
static int topo_order(const gx_job_spec *specs, size_t n, int *codes, gx_error *errs, size_t *order) {
    unsigned char *color = calloc(n, 1); /* 0 new, 1 on stack, 2 done */
    size_t *stack = malloc(n * sizeof *stack);
    int *edge = malloc(n * sizeof *edge);
    if (!color || !stack || !edge) {
        free(color);
        free(stack);
        free(edge);
        return GX_ENOMEM;
    }
    size_t no = 0;
    for (size_t r = 0; r < n; r++) {
        if (color[r]) continue;
        size_t sp = 0;
        stack[sp++] = r;
        color[r] = 1;
        edge[r] = 0;
        while (sp) {
            size_t v = stack[sp - 1];
            if (specs[v].batch_deps && edge[v] < specs[v].nbatch_deps) { /* NULL: refused in the prepare stage */
                int t = specs[v].batch_deps[edge[v]++];
                if (t < 0 || (size_t)t >= n) continue; /* reported in prepare stage */
                if (color[t] == 1) {
                    /* every spec on the stack from t up is in the cycle;
                     * each names the one it depends on in it */
                    for (size_t k = sp; k-- > 0;) {
                        size_t c = stack[k], dep = k + 1 < sp ? stack[k + 1] : (size_t)t;
                        if (!codes[c]) {
                            codes[c] = GX_ECYCLE;
                            if (errs && dep == c)
                                gx_error_set(&errs[c], GX_ECYCLE, "depends_on", "dependency cycle: spec %zu depends on itself", c);
                            else if (errs)
                                gx_error_set(&errs[c], GX_ECYCLE, "depends_on",
                                             "dependency cycle: spec %zu depends on spec %zu, which leads back to it", c,
                                             dep);
                        }
                        if (c == (size_t)t) break;
                    }
                } else if (color[t] == 0) {
                    color[t] = 1;
                    edge[t] = 0;
                    stack[sp++] = (size_t)t;
                }
                continue;
            }
            color[v] = 2;
            order[no++] = v;
            sp--;
        }
    }
    free(color);
    free(stack);
    free(edge);
    return 0;
}

int64_t gx_submit_batch(gx_engine *e, const gx_job_spec *specs, size_t n, gx_job_id *ids, int *codes,
                        gx_error *errs) {
    if (!e || (n && (!specs || !ids || !codes))) return GX_EINVAL;
    if (n == 0) return 0;
    prep *ps = calloc(n, sizeof *ps);
    size_t *order = malloc(n * sizeof *order);
    gx_job_id *depbuf = malloc(MAX_DEPS * sizeof *depbuf);
    if (!ps || !order || !depbuf) {
        free(ps);
        free(order);
        free(depbuf);
        return GX_ENOMEM;
    }
    kcache kc = {NULL, NULL};
    for (size_t i = 0; i < n; i++) {
        gx_error *er = errs ? &errs[i] : NULL;
        gx_error_clear(er);
        ids[i] = 0;
        codes[i] = 0;
        for (int k = 0; k < specs[i].nbatch_deps && !codes[i]; k++) {
            int t = specs[i].batch_deps ? specs[i].batch_deps[k] : -1;
            if (t < 0 || (size_t)t >= n || (size_t)t == i) {
                char field[32];
                snprintf(field, sizeof field, "depends_on[%d]", k);
                codes[i] = gx_error_set(er, (size_t)t == i ? GX_ECYCLE : GX_EINVAL, field,
                                        (size_t)t == i ? "a job cannot depend on itself"
                                                       : "batch reference %d is outside 0..%zu", t, n - 1);
            }
        }
        if (!codes[i]) codes[i] = prepare(e, &specs[i], &ps[i], &kc, er);
    }
    int rc = topo_order(specs, n, codes, errs, order);
    int64_t accepted = 0;
    gx__evbuf eb;
    gx__evbuf_init(&eb);
    if (rc) goto out;
    pthread_mutex_lock(&e->mu);
    for (size_t oi = 0; oi < n; oi++) {
        size_t i = order[oi];
        const gx_job_spec *s = &specs[i];
        gx_error *er = errs ? &errs[i] : NULL;
        if (codes[i]) continue;
        if (e->stopping) {
            codes[i] = gx_error_set(er, GX_ECLOSED, NULL, "the engine is shutting down");
            continue;
        }
        int nd = 0;
        for (int k = 0; k < s->ndeps; k++) depbuf[nd++] = s->deps[k];
        for (int k = 0; k < s->nbatch_deps && !codes[i]; k++) {
            int t = s->batch_deps[k];
            if (codes[t]) {
                char field[32];
                snprintf(field, sizeof field, "depends_on[%d]", s->ndeps + k);
                codes[i] = gx_error_set(er, GX_EDEPFAILED, field, "spec %d of this batch was refused", t);
            } else {
                depbuf[nd++] = ids[t];
            }
        }
        if (codes[i]) continue;
        codes[i] = insert(e, s, &ps[i], depbuf, nd, &ids[i], NULL, &eb, er);
        if (!codes[i]) accepted++;
        if ((oi & 127) == 127) {
            /* a big batch must not hold the workers off: feed the devices
             * and let them complete and take work before going on */
            gx__sched_dispatch(e, INT32_MAX, 0);
            pthread_mutex_unlock(&e->mu);
            pthread_mutex_lock(&e->mu);
        }
    }
    gx__sched_dispatch(e, INT32_MAX, 0);
    pthread_mutex_unlock(&e->mu);
out:
    for (size_t i = 0; i < n; i++) prep_free(&ps[i]);
    gx__ev_flush(e, &eb);
    free(ps);
    free(order);
    free(depbuf);
    return rc ? rc : accepted;
}
