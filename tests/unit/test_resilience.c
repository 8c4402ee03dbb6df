/*
 * test_resilience.c - error classes, retries, circuit breakers and the CPU
 * fallback, end to end through the engine (and once through a real
 * in-process service: HTTP socket, SQLite file).
 *
 * A test kernel fails on purpose (test_flaky: the next N calls fail with a
 * chosen code). The device tests load a stand-in GPU backend
 * (tests/unit/fakegpu) through the engine's real plugin loader; its
 * launches fail while the device.launch fault point is armed.
 */
#include <curl/curl.h>
#include <dlfcn.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/service.h"
#include "gexec/gexec_config.h"
#include "gexec/gexec_fault.h"
#include "testutil.h"

/* ---- the flaky kernel ------------------------------------------------- */

static atomic_int fail_left;  /* calls that still fail */
static atomic_int fail_code;  /* with this GX_E* */
static atomic_int calls_made;

static int flaky_run(gx_kcall *c) {
    atomic_fetch_add(&calls_made, 1);
    if (atomic_fetch_sub(&fail_left, 1) > 0)
        return gx_error_set(c->err, atomic_load(&fail_code), NULL, "flaky: planned failure %d",
                            atomic_load(&calls_made));
    return 0;
}

static const gx_kernel flaky = {
    .abi_version = GX_KERNEL_ABI_VERSION,
    .struct_size = sizeof(gx_kernel),
    .name = "test_flaky",
    .version = 1,
    .summary = "fails its next N calls on purpose",
    .run = {[GX_DEV_CPU] = flaky_run},
    .default_max_attempts = 4,
};

/* A device fault after 0.3 s (the job runs while others wait behind it). */
static int slowfault_run(gx_kcall *c) {
    usleep(300000);
    return gx_error_set(c->err, GX_EDEVICE, NULL, "slowfault: illegal address");
}

/* an estimate of 1 us: a device takes such jobs into its queue behind a
 * running one (placed, not started) */
static double one_us(const gx_kcall *c) {
    (void)c;
    return 1;
}

static const gx_kernel slowfault = {
    .abi_version = GX_KERNEL_ABI_VERSION,
    .struct_size = sizeof(gx_kernel),
    .name = "test_slowfault",
    .version = 1,
    .summary = "faults its device after 0.3 s",
    .run = {[GX_DEV_CPU] = slowfault_run},
    .cost_us = one_us,
    .default_max_attempts = 1,
};

/* test_flaky, estimated at 1 us */
static const gx_kernel flaky_cheap = {
    .abi_version = GX_KERNEL_ABI_VERSION,
    .struct_size = sizeof(gx_kernel),
    .name = "test_flaky_cheap",
    .version = 1,
    .summary = "test_flaky, estimated at 1 us",
    .run = {[GX_DEV_CPU] = flaky_run},
    .cost_us = one_us,
};

static void plan(int n, int code) {
    atomic_store(&fail_code, code);
    atomic_store(&fail_left, n);
    atomic_store(&calls_made, 0);
}

/* ---- events ----------------------------------------------------------- */

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static gx_event evs[512];
static size_t nevs;

static void on_events(void *ctx, const gx_event *ev, size_t n) {
    (void)ctx;
    pthread_mutex_lock(&ev_mu);
    for (size_t i = 0; i < n && nevs < 512; i++) evs[nevs++] = ev[i];
    pthread_mutex_unlock(&ev_mu);
}

/* on_device_health's calls, as "name: status" lines */
static char said[2048];

static void on_health(void *ctx, int device, const char *name, const char *status) {
    (void)ctx;
    (void)device;
    pthread_mutex_lock(&ev_mu);
    size_t l = strlen(said);
    snprintf(said + l, sizeof said - l, "%s: %s\n", name, status);
    pthread_mutex_unlock(&ev_mu);
}

static gx_engine *engine(int gpu, int threshold, int cooldown_ms) {
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 1;
    o.retry_base_ms = 1;
    o.retry_cap_ms = 2;
    o.breaker_threshold = threshold;
    o.breaker_cooldown_ms = cooldown_ms;
    /* a device fault is the health loop's (src/exec/health.c): the job it is
     * blamed on is dead at once here, so each fault ends one job */
    o.poison_faults = 1;
    o.on_events = on_events;
    o.on_device_health = on_health;
    said[0] = 0;
    if (gpu)
        o.cuda_plugin = GX_FAKEGPU;
    else
        o.cuda_disable = 1;
    nevs = 0;
    gx_engine *e;
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    if (gpu) assert_int_equal(gx_device_count(e), 2);
    return e;
}

static gx_job_id submit(gx_engine *e, const char *kernel, const char *device, const char *fallback, int max_attempts,
                        int64_t queue_timeout_ms) {
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = kernel;
    s.device = device;
    s.fallback = fallback;
    s.max_attempts = max_attempts;
    s.queue_timeout_ms = queue_timeout_ms;
    gx_named_arg us = {.name = "us", .value = 0};
    if (!strcmp(kernel, "spin")) {
        s.args = &us;
        s.nargs = 1;
    }
    return tu_submit(e, &s);
}

static int wait_state(gx_engine *e, gx_job_id id) {
    int st = -1;
    assert_int_equal(gx_job_wait(e, id, 20000, &st), 0);
    return st;
}

/* ---- retries ---------------------------------------------------------- */

/* Two transient failures, then success: the kernel's default of 4 attempts
 * applies, and every attempt is in the events with its error. */
static void retries_record_every_attempt(void **st) {
    (void)st;
    gx_engine *e = engine(0, 0, 0);
    plan(2, GX_ETRANSIENT);
    gx_job_id id = submit(e, "test_flaky", NULL, NULL, 0, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, NULL), (gx_error){0});
    assert_int_equal(in.max_attempts, 4);
    assert_int_equal(in.attempts, 3);
    gx_engine_sync_events(e);
    /* queued(0) running(1) retrying(1) queued(1) running(2) retrying(2)
     * queued(2) running(3) succeeded(3) */
    static const int want[] = {GX_JOB_QUEUED,   GX_JOB_RUNNING, GX_JOB_RETRYING, GX_JOB_QUEUED,   GX_JOB_RUNNING,
                               GX_JOB_RETRYING, GX_JOB_QUEUED,  GX_JOB_RUNNING,  GX_JOB_SUCCEEDED};
    pthread_mutex_lock(&ev_mu);
    assert_int_equal(nevs, 9);
    /* threads deliver their events after unlocking, so the submitter's
     * "queued" may arrive after the worker's "running": order by the time
     * stamped under the engine's lock */
    for (size_t i = 1; i < nevs; i++)
        for (size_t k = i; k > 0 && evs[k].time_ns < evs[k - 1].time_ns; k--) {
            gx_event t = evs[k];
            evs[k] = evs[k - 1];
            evs[k - 1] = t;
        }
    for (size_t i = 0; i < nevs; i++) assert_int_equal(evs[i].state, want[i]);
    assert_int_equal(evs[2].attempt, 1);
    assert_int_equal(evs[2].error_code, GX_ETRANSIENT);
    assert_string_equal(evs[2].error, "attempt 1 failed (GX_ETRANSIENT, transient): flaky: planned failure 1");
    assert_int_equal(evs[5].attempt, 2);
    assert_string_equal(evs[5].error, "attempt 2 failed (GX_ETRANSIENT, transient): flaky: planned failure 2");
    assert_int_equal(evs[7].attempt, 3);
    assert_int_equal(evs[7].error_code, 0); /* a new attempt carries no old error */
    assert_int_equal(evs[8].error_code, 0);
    assert_string_equal(evs[8].error, "");
    pthread_mutex_unlock(&ev_mu);
    gx_engine_destroy(e);
}

/* A permanent error ends the job at once with the kernel's message. */
static void permanent_fails_at_once(void **st) {
    (void)st;
    gx_engine *e = engine(0, 0, 0);
    plan(1, GX_EINVAL);
    gx_job_id id = submit(e, "test_flaky", NULL, NULL, 5, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_FAILED);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, NULL), (gx_error){0});
    assert_int_equal(in.attempts, 1);
    assert_int_equal(in.error_code, GX_EINVAL);
    assert_string_equal(in.error, "flaky: planned failure 1");
    gx_engine_destroy(e);
}

/* Out of attempts on transient faults: dead, with the last error. */
static void exhausted_is_dead(void **st) {
    (void)st;
    gx_engine *e = engine(0, 0, 0);
    plan(100, GX_ETRANSIENT);
    gx_job_id id = submit(e, "test_flaky", NULL, NULL, 3, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_DEAD);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, NULL), (gx_error){0});
    assert_int_equal(in.attempts, 3);
    assert_non_null(strstr(in.error, "gave up after 3 attempts"));
    assert_int_equal(atomic_load(&calls_made), 3);
    gx_engine_destroy(e);
}

/* ---- kernel breaker --------------------------------------------------- */

static void kernel_breaker_parks_and_probes(void **st) {
    (void)st;
    gx_engine *e = engine(0, 3, 1000);
    const gx_kernel *k = gx_kernel_find("test_flaky");
    /* bad input does not count */
    plan(5, GX_EINVAL);
    for (int i = 0; i < 5; i++) assert_int_equal(wait_state(e, submit(e, "test_flaky", NULL, NULL, 1, 0)), GX_JOB_FAILED);
    gx_breaker_info b;
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 0);
    assert_int_equal(b.failures, 0);
    /* neither does a kernel refusing a job */
    plan(5, GX_EKERNEL);
    for (int i = 0; i < 5; i++) assert_int_equal(wait_state(e, submit(e, "test_flaky", NULL, NULL, 1, 0)), GX_JOB_FAILED);
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 0);
    /* three transient failures in a row open it */
    plan(3, GX_ETRANSIENT);
    for (int i = 0; i < 3; i++) assert_int_equal(wait_state(e, submit(e, "test_flaky", NULL, NULL, 1, 0)), GX_JOB_FAILED);
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 1);
    assert_int_equal(b.failures, 3);
    assert_int_equal(b.last_code, GX_ETRANSIENT);
    assert_true(b.probe_ns > 0);
    /* the next job waits, parked, with the reason */
    gx_job_id held = submit(e, "test_flaky", NULL, NULL, 1, 0);
    gx_job_info in;
    for (int i = 0; i < 100; i++) {
        TU_OK(gx_job_get(e, held, &in, NULL), (gx_error){0});
        if (in.wait_reason == GX_WAIT_CIRCUIT) break;
        usleep(1000);
    }
    assert_int_equal(in.state, GX_JOB_QUEUED);
    assert_int_equal(in.wait_reason, GX_WAIT_CIRCUIT);
    assert_non_null(strstr(in.reason, "kernel test_flaky circuit open after 3 failures (last GX_ETRANSIENT), probe at"));
    assert_string_equal(gx_wait_reason_name(in.wait_reason), "circuit_open");
    /* other kernels are not held up */
    assert_int_equal(wait_state(e, submit(e, "spin", NULL, NULL, 1, 0)), GX_JOB_SUCCEEDED);
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.parked, 1);
    /* after the cool-down the parked job is the probe; it succeeds: closed */
    assert_int_equal(wait_state(e, held), GX_JOB_SUCCEEDED);
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 0);
    assert_int_equal(b.transitions, 3);
    assert_int_equal(b.parked, 0);
    gx_engine_destroy(e);
}

/* A kernel's breaker is per tenant: one tenant's failing jobs (its inputs,
 * a GPU out of memory) park its own jobs of the kernel, not another
 * tenant's (they were parked too: one tenant could hold every tenant's jobs
 * of a kernel for the cool-down). */
static void kernel_breaker_per_tenant(void **st) {
    (void)st;
    gx_engine *e = engine(0, 3, 60000);
    gx_error err;
    const char *names[] = {"noisy", "quiet"};
    for (int i = 0; i < 2; i++) {
        gx_tenant_opts t = {.name = names[i], .weight = 1};
        TU_OK(gx_tenant_add(e, &t, NULL, &err), err);
    }
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = "test_flaky";
    s.max_attempts = 1;
    s.tenant = "noisy";
    plan(3, GX_ETRANSIENT);
    for (int i = 0; i < 3; i++) assert_int_equal(wait_state(e, tu_submit(e, &s)), GX_JOB_FAILED);
    gx_job_id held = tu_submit(e, &s);
    gx_job_info in;
    for (int i = 0; i < 100; i++) {
        TU_OK(gx_job_get(e, held, &in, NULL), err);
        if (in.wait_reason == GX_WAIT_CIRCUIT) break;
        usleep(1000);
    }
    assert_int_equal(in.wait_reason, GX_WAIT_CIRCUIT);
    assert_non_null(strstr(in.reason, "kernel test_flaky circuit open after 3 failures"));
    /* the other tenant's jobs of the kernel run */
    s.tenant = "quiet";
    for (int i = 0; i < 3; i++) assert_int_equal(wait_state(e, tu_submit(e, &s)), GX_JOB_SUCCEEDED);
    /* and leave the noisy tenant's breaker open */
    TU_OK(gx_job_get(e, held, &in, NULL), err);
    assert_int_equal(in.state, GX_JOB_QUEUED);
    assert_int_equal(in.wait_reason, GX_WAIT_CIRCUIT);
    gx_breaker_info b;
    gx_kernel_breaker_get(e, gx_kernel_find("test_flaky"), &b);
    assert_int_equal(b.state, 1); /* the kernel's summary: the most held back */
    assert_int_equal(b.failures, 3);
    assert_int_equal(b.parked, 1);
    gx_job_cancel(e, held, NULL);
    gx_engine_destroy(e);
}

/* A failed probe re-opens the breaker; a parked job still ends at its queue
 * timeout. */
static void kernel_probe_failure_reopens(void **st) {
    (void)st;
    gx_engine *e = engine(0, 1, 400);
    const gx_kernel *k = gx_kernel_find("test_flaky");
    plan(2, GX_ETRANSIENT);
    assert_int_equal(wait_state(e, submit(e, "test_flaky", NULL, NULL, 1, 0)), GX_JOB_FAILED);
    gx_job_id probe = submit(e, "test_flaky", NULL, NULL, 1, 0);
    assert_int_equal(wait_state(e, probe), GX_JOB_FAILED); /* the probe, failing */
    gx_breaker_info b;
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 1);
    assert_int_equal(b.transitions, 3); /* closed->open->half_open->open */
    gx_job_id late = submit(e, "test_flaky", NULL, NULL, 1, 30);
    int stt = wait_state(e, late);
    /* it either timed out parked or ran as the next probe and succeeded */
    assert_true(stt == GX_JOB_TIMED_OUT || stt == GX_JOB_SUCCEEDED);
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.parked, 0);
    gx_engine_destroy(e);
}

/* A probe that ends without a verdict (bad input) lets the next parked job
 * go as the probe. */
static void kernel_neutral_probe_passes_on(void **st) {
    (void)st;
    gx_engine *e = engine(0, 1, 500);
    const gx_kernel *k = gx_kernel_find("test_flaky");
    plan(1, GX_ETRANSIENT);
    assert_int_equal(wait_state(e, submit(e, "test_flaky", NULL, NULL, 1, 0)), GX_JOB_FAILED);
    gx_breaker_info b;
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 1);
    plan(1, GX_EINVAL); /* the first probe fails on its own input */
    gx_job_id a = submit(e, "test_flaky", NULL, NULL, 1, 0);
    gx_job_id c = submit(e, "test_flaky", NULL, NULL, 1, 0);
    int sa = wait_state(e, a), sc = wait_state(e, c);
    assert_true((sa == GX_JOB_FAILED && sc == GX_JOB_SUCCEEDED) || (sa == GX_JOB_SUCCEEDED && sc == GX_JOB_FAILED));
    gx_kernel_breaker_get(e, k, &b);
    assert_int_equal(b.state, 0);
    gx_engine_destroy(e);
}

/* A kernel's half-open probe waiting on a device (placed, behind a running
 * job) when the device faults goes back to its queue, and its probe ends
 * with it: it stayed "in flight", so the probe and every later job of the
 * kernel were parked for ever ("a probe job is running"). */
static void probe_unplaced_by_a_fault(void **st) {
    (void)st;
    gx_engine *e = engine(0, 1, 100);
    plan(1, GX_ETRANSIENT);
    assert_int_equal(wait_state(e, submit(e, "test_flaky_cheap", NULL, NULL, 1, 0)), GX_JOB_FAILED); /* opens */
    usleep(200000); /* past the cool-down: the next job is the probe */
    gx_job_id a = submit(e, "test_slowfault", NULL, NULL, 1, 0);
    usleep(50000); /* a runs on the one slot */
    gx_job_id p = submit(e, "test_flaky_cheap", NULL, NULL, 1, 0); /* placed behind it */
    gx_job_info info;
    assert_int_equal(gx_job_get(e, p, &info, NULL), 0);
    print_message("  the probe, placed: %s\n", info.reason);
    assert_int_equal(info.state, GX_JOB_SCHEDULED); /* in the device's queue when it faults */
    int sa = wait_state(e, a);
    assert_true(gx_job_state_is_final(sa) && sa != GX_JOB_SUCCEEDED);
    assert_int_equal(wait_state(e, p), GX_JOB_SUCCEEDED);
    gx_breaker_info b;
    gx_kernel_breaker_get(e, gx_kernel_find("test_flaky_cheap"), &b);
    assert_int_equal(b.state, 0);
    assert_int_equal(b.parked, 0);
    gx_engine_destroy(e);
}

/* ---- device breaker and CPU fallback (stand-in GPU) ------------------ */

static void device_breaker_and_fallback(void **st) {
    (void)st;
    gx_engine *e = engine(1, 2, 60000);
    gx_fault_spec f = {.point = GX_FAULT_DEVICE_LAUNCH, .device = 1, .count = 2, .code = GX_EDEVICE};
    gx_error err;
    TU_OK(gx_fault_arm(&f, &err), err);
    for (int i = 0; i < 2; i++) {
        gx_job_id id = submit(e, "spin", "gpu", NULL, 1, 0);
        assert_int_equal(wait_state(e, id), GX_JOB_DEAD);
        gx_job_info in;
        TU_OK(gx_job_get(e, id, &in, NULL), err);
        assert_int_equal(in.error_code, GX_EDEVICE);
    }
    gx_device_info d;
    assert_int_equal(gx_device_get(e, 1, &d), 0);
    assert_string_equal(d.name, "cuda:0");
    assert_int_equal(d.breaker_state, 1);
    assert_int_equal(d.breaker_failures, 2);
    assert_true(d.breaker_probe_ns > 0);
    /* a GPU job with the CPU fallback runs on the CPU and says why */
    gx_job_id fb = submit(e, "spin", "gpu", "cpu", 1, 0);
    assert_int_equal(wait_state(e, fb), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, fb, &in, NULL), err);
    assert_string_equal(in.device_name, "cpu");
    /* the breaker is open; the health loop may still be rebuilding the
     * device after its fault: either is a reason to fall back */
    if (strcmp(in.fallback, "no healthy GPU: cuda:0 circuit open") &&
        strncmp(in.fallback, "no healthy GPU: cuda:0 unhealthy (recovering", 44))
        fail_msg("fallback reason: %s", in.fallback);
    /* a GPU-only job waits, naming the breaker, and ends at its queue timeout */
    gx_job_id held = submit(e, "spin", "gpu", NULL, 1, 200);
    TU_OK(gx_job_get(e, held, &in, NULL), err);
    assert_int_equal(in.state, GX_JOB_QUEUED);
    assert_int_equal(in.wait_reason, GX_WAIT_NO_DEVICE);
    if (!strstr(in.reason, "cuda:0 circuit open after 2 failures (last GX_EDEVICE), probe at") &&
        !strstr(in.reason, "recovering"))
        fail_msg("wait reason: %s", in.reason);
    assert_int_equal(wait_state(e, held), GX_JOB_TIMED_OUT);
    TU_OK(gx_job_get(e, held, &in, NULL), err);
    assert_non_null(strstr(in.error, "queue timeout"));
    /* a job with "any" goes to the CPU meanwhile */
    assert_int_equal(wait_state(e, submit(e, "spin", NULL, NULL, 1, 0)), GX_JOB_SUCCEEDED);
    gx_fault_clear(GX_FAULT__COUNT);
    gx_engine_destroy(e);
}

/* Open -> half-open after the cool-down -> the probe succeeds -> closed, and
 * GPU jobs with a fallback go back to the GPU. */
static void device_probe_closes(void **st) {
    (void)st;
    gx_engine *e = engine(1, 1, 1000);
    gx_fault_spec f = {.point = GX_FAULT_DEVICE_LAUNCH, .device = 1, .count = 1, .code = GX_EDEVICE};
    gx_error err;
    TU_OK(gx_fault_arm(&f, &err), err);
    assert_int_equal(wait_state(e, submit(e, "spin", "gpu", NULL, 1, 0)), GX_JOB_DEAD);
    gx_device_info d;
    gx_device_get(e, 1, &d);
    assert_int_equal(d.breaker_state, 1);
    gx_job_id probe = submit(e, "spin", "gpu", NULL, 1, 0);
    assert_int_equal(wait_state(e, probe), GX_JOB_SUCCEEDED);
    gx_device_get(e, 1, &d);
    assert_int_equal(d.breaker_state, 0);
    assert_int_equal(d.breaker_transitions, 3);
    gx_job_id back = submit(e, "spin", "gpu", "cpu", 1, 0);
    assert_int_equal(wait_state(e, back), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, back, &in, NULL), err);
    assert_string_equal(in.device_name, "cuda:0");
    assert_string_equal(in.fallback, "");
    gx_engine_destroy(e);
}

/* A transient device error retries the job, which then runs on the GPU. */
static void device_transient_retries(void **st) {
    (void)st;
    gx_engine *e = engine(1, 5, 60000);
    gx_fault_spec f = {.point = GX_FAULT_DEVICE_LAUNCH, .device = 1, .count = 1, .code = GX_ETRANSIENT};
    gx_error err;
    TU_OK(gx_fault_arm(&f, &err), err);
    gx_job_id id = submit(e, "spin", "gpu", NULL, 2, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, NULL), err);
    assert_int_equal(in.attempts, 2);
    gx_device_info d;
    gx_device_get(e, 1, &d);
    assert_int_equal(d.breaker_failures, 0); /* transient: not the device's fault */
    gx_engine_destroy(e);
}

/* On a two-slot GPU, a short job placed together with a long one of the
 * same batchable kernel starts on the other slot: a run of one batchable
 * kernel counts as its longest job against the batch quantum, since the
 * backend need not fuse it (this one never does). */
static void gpu_short_job_not_behind_long_one(void **st) {
    (void)st;
    setenv("GX_FAKEGPU_SLOTS", "2", 1);
    gx_engine *e = engine(1, 0, 0);
    unsetenv("GX_FAKEGPU_SLOTS");
    gx_engine_pause(e, 1);
    gx_job_id ids[2];
    for (int i = 0; i < 2; i++) {
        gx_job_spec s;
        gx_job_spec_init(&s);
        s.kernel = "spin";
        s.device = "gpu";
        gx_named_arg us = {.name = "us", .value = i ? 1000 : 3000000};
        s.args = &us;
        s.nargs = 1;
        ids[i] = tu_submit(e, &s);
    }
    gx_engine_pause(e, 0); /* both are placed in one dispatch */
    int state = -1;
    assert_int_equal(gx_job_wait(e, ids[1], 2000, &state), 0);
    assert_int_equal(state, GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, ids[0], &in, NULL), (gx_error){0});
    assert_int_equal(in.state, GX_JOB_RUNNING);
    gx_job_cancel(e, ids[0], NULL);
    gx_engine_destroy(e);
}

/* A slot that fails to open is a device fault: the device recovers (it was
 * left unhealthy, its other slots idle, until a restart); every slot of a
 * start failing counts once (4 slots failing gave a 4-slot GPU up at once).
 * Slots that fail again after every reset give the device up with the
 * reason, after recovery_attempts resets, not resetting it for ever. */
static void slot_open_failure_recovers(void **st) {
    (void)st;
    setenv("GX_FAKEGPU_SLOTS", "4", 1);
    setenv("GX_FAKEGPU_SLOT_FAIL", "4", 1);
    gx_engine *e = engine(1, 0, 0);
    unsetenv("GX_FAKEGPU_SLOT_FAIL");
    gx_job_id id = submit(e, "spin", "gpu", NULL, 1, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, NULL), (gx_error){0});
    assert_string_equal(in.device_name, "cuda:0");
    gx_device_info d;
    gx_device_get(e, 1, &d);
    assert_int_equal(d.healthy, 1);
    assert_int_equal(d.recoveries, 1);
    assert_string_equal(d.status, "ok");
    gx_engine_destroy(e);
    /* the health changes were told, in order, once each */
    fprintf(stderr, "told:\n%s", said);
    assert_non_null(strstr(said, "cuda:0: recovering: slot "));
    assert_non_null(strstr(said, " failed to open: injected slot fault: no stream\ncuda:0: ok\n"));
    assert_null(strstr(said, "cpu:"));

    setenv("GX_FAKEGPU_SLOTS", "2", 1);
    setenv("GX_FAKEGPU_SLOT_FAIL", "-1", 1);
    e = engine(1, 0, 0);
    unsetenv("GX_FAKEGPU_SLOT_FAIL");
    unsetenv("GX_FAKEGPU_SLOTS");
    for (int i = 0; i < 200; i++) { /* 3 resets, then given up: well under 2 s */
        gx_device_get(e, 1, &d);
        if (!strncmp(d.status, "unhealthy", 9)) break;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "slot that never opens: %s (%lld recoveries)\n", d.status, (long long)d.recoveries);
    assert_int_equal(d.healthy, 0);
    assert_non_null(strstr(d.status, "unhealthy: "));
    assert_non_null(strstr(d.status, "unhealthy: slots failed to open at 4 starts in a row; last: slot "));
    assert_non_null(strstr(d.status, "injected slot fault: no stream"));
    assert_int_equal(d.recoveries, 3); /* recovery_attempts resets, then given up */
    for (int i = 0; i < 200 && !strstr(said, "cuda:0: unhealthy"); i++) usleep(5000);
    fprintf(stderr, "told:\n%s", said);
    assert_non_null(strstr(said, "cuda:0: recovering: slot "));
    assert_non_null(strstr(said, "\ncuda:0: ok\ncuda:0: recovering: slot "));
    assert_non_null(strstr(said, "\ncuda:0: unhealthy: slots failed to open at 4 starts in a row; last: slot "));
    /* a GPU job is refused or waits naming the device; a CPU job still runs */
    id = submit(e, "spin", "cpu", NULL, 1, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
    gx_engine_destroy(e);
}

/* An Xid error the driver reports: a fatal one (79, fallen off the bus)
 * resets the device (the health loop reads them every 2 s), an
 * application's (13) does not. */
static void fatal_xid_resets_the_gpu(void **st) {
    (void)st;
    gx_engine *e = engine(1, 0, 0);
    void *dl = dlopen(GX_FAKEGPU, RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(dl);
    void (*xid)(long long);
    *(void **)&xid = dlsym(dl, "gx_fakegpu_xid");
    assert_non_null(xid);
    xid(13);
    struct timespec ts = {2, 600000000}; /* past one read */
    nanosleep(&ts, NULL);
    gx_device_info d;
    gx_device_get(e, 1, &d);
    assert_int_equal(d.recoveries, 0);
    xid(79);
    for (int i = 0; i < 60; i++) { /* the next read (2 s), then the reset */
        gx_device_get(e, 1, &d);
        if (d.recoveries) break;
        usleep(100000);
    }
    assert_int_equal(d.recoveries, 1);
    assert_string_equal(d.status, "ok");
    fprintf(stderr, "told:\n%s", said);
    assert_non_null(strstr(said, "cuda:0: recovering: Xid 79 (GPU has fallen off the bus) reported by the driver\n"));
    /* the device works after it */
    gx_job_id id = submit(e, "spin", "gpu", NULL, 1, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
    dlclose(dl);
    gx_engine_destroy(e);
}

/* perf_model tries a kernel on a GPU before the CPU (index 0): the first
 * job of a kernel that may run anywhere went to the CPU. */
static void perf_model_tries_gpus_first(void **st) {
    (void)st;
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 1;
    o.cuda_plugin = GX_FAKEGPU;
    o.placement = "perf_model";
    gx_engine *e;
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    assert_int_equal(gx_device_count(e), 2);
    const char *want[] = {"cuda:0", "cpu"};
    for (int i = 0; i < 2; i++) {
        gx_job_id id = submit(e, "spin", NULL, NULL, 1, 0);
        assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
        gx_job_info in;
        TU_OK(gx_job_get(e, id, &in, &err), err);
        assert_string_equal(in.device_name, want[i]);
    }
    gx_engine_destroy(e);
}

/* A drained GPU is not usable: a fallback job runs on the CPU naming the
 * drain, a GPU-only job waits naming it and runs on the GPU once undrained. */
static void drained_gpu_falls_back(void **st) {
    (void)st;
    gx_engine *e = engine(1, 2, 60000);
    gx_error err;
    TU_OK(gx_device_drain(e, 1, 1, &err), err);
    gx_job_id fb = submit(e, "spin", "gpu", "cpu", 1, 0);
    assert_int_equal(wait_state(e, fb), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, fb, &in, NULL), err);
    assert_string_equal(in.device_name, "cpu");
    assert_string_equal(in.fallback, "no healthy GPU: cuda:0 drained by an operator");
    gx_job_id held = submit(e, "spin", "gpu", NULL, 1, 0);
    TU_OK(gx_job_get(e, held, &in, NULL), err);
    assert_int_equal(in.state, GX_JOB_QUEUED);
    assert_int_equal(in.wait_reason, GX_WAIT_NO_DEVICE);
    assert_string_equal(in.reason, "cuda:0 drained by an operator");
    TU_OK(gx_device_drain(e, 1, 0, &err), err);
    assert_int_equal(wait_state(e, held), GX_JOB_SUCCEEDED);
    TU_OK(gx_job_get(e, held, &in, NULL), err);
    assert_string_equal(in.device_name, "cuda:0");
    gx_engine_destroy(e);
}

/* CPU-only engine: gpu + fallback cpu runs on the CPU and says so; gpu alone
 * is refused at submit (it could never run); the spec is checked. */
static void cpu_only_fallback(void **st) {
    (void)st;
    gx_engine *e = engine(0, 0, 0);
    gx_job_id id = submit(e, "spin", "gpu", "cpu", 1, 0);
    assert_int_equal(wait_state(e, id), GX_JOB_SUCCEEDED);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, NULL), (gx_error){0});
    assert_string_equal(in.device_name, "cpu");
    assert_string_equal(in.fallback, "no healthy GPU: this engine has no GPU");
    gx_engine_sync_events(e);
    pthread_mutex_lock(&ev_mu);
    int noted = 0;
    for (size_t i = 0; i < nevs; i++)
        if (evs[i].job == id && evs[i].state == GX_JOB_SUCCEEDED)
            noted = !strcmp(evs[i].error, "fallback: no healthy GPU: this engine has no GPU");
    pthread_mutex_unlock(&ev_mu);
    assert_true(noted);
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = "spin";
    s.device = "gpu";
    gx_error err;
    gx_job_id x;
    assert_int_equal(gx_submit(e, &s, &x, NULL, &err), GX_ENODEVICE);
    assert_string_equal(err.field, "device");
    s.fallback = "gpu";
    assert_int_equal(gx_submit(e, &s, &x, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "fallback");
    s.fallback = "cpu";
    s.device = "cpu";
    assert_int_equal(gx_submit(e, &s, &x, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "fallback");
    gx_engine_destroy(e);
}

/* ---- through the service: the events of GET /v1/jobs/{id}/events ----- */

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t on_body(char *d, size_t sz, size_t nm, void *ctx) {
    buf *b = ctx;
    char *np = realloc(b->p, b->n + sz * nm + 1);
    if (!np) return 0;
    b->p = np;
    memcpy(b->p + b->n, d, sz * nm);
    b->n += sz * nm;
    b->p[b->n] = '\0';
    return sz * nm;
}

static char *last_body; /* the raw body of the last request (malloc'd) */

static json_t *http(int port, const char *method, const char *path, const char *body, long *status) {
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *j = json_loads(b.p ? b.p : "null", JSON_DECODE_ANY, NULL);
    free(last_body);
    last_body = b.p;
    return j;
}

static void service_events_show_attempts(void **st) {
    (void)st;
    char dir[] = "/tmp/gx_resil_XXXXXX";
    assert_non_null(mkdtemp(dir));
    gx_config cfg;
    gx_error err;
    assert_int_equal(gx_config_defaults(&cfg), 0);
    TU_OK(gx_config_set(&cfg, "listen", "127.0.0.1:0", &err), err);
    TU_OK(gx_config_set(&cfg, "data_dir", dir, &err), err);
    TU_OK(gx_config_set(&cfg, "auth.enabled", "false", &err), err);
    TU_OK(gx_config_set(&cfg, "cuda.enabled", "false", &err), err);
    TU_OK(gx_config_set(&cfg, "engine.cpu_workers", "1", &err), err);
    TU_OK(gx_config_set(&cfg, "retry.backoff_base", "1ms", &err), err);
    TU_OK(gx_config_set(&cfg, "retry.backoff_cap", "2ms", &err), err);
    TU_OK(gx_config_set(&cfg, "log.level", "error", &err), err);
    TU_OK(gx_config_finalize(&cfg, &err), err);
    gx_service *s;
    TU_OK(gx_service_start(&cfg, &s, &err), err);
    int port = gx_service_port(s);
    plan(2, GX_ETRANSIENT);
    long status;
    json_t *r = http(port, "POST", "/v1/jobs", "{\"kernel\":\"test_flaky\"}", &status);
    assert_int_equal(status, 202);
    char path[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    const char *state = "";
    json_t *job = NULL;
    for (int i = 0; i < 2000 && strcmp(state, "succeeded"); i++) {
        json_decref(job);
        job = http(port, "GET", path, NULL, &status);
        state = json_string_value(json_object_get(job, "state"));
        if (!state) state = "";
        usleep(5000);
    }
    assert_string_equal(state, "succeeded");
    assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 3);
    assert_int_equal(json_integer_value(json_object_get(job, "max_attempts")), 4); /* the kernel's default */
    json_decref(job);
    gx__svc_settle(s);
    strcat(path, "/events");
    json_t *evj = http(port, "GET", path, NULL, &status);
    assert_int_equal(status, 200);
    json_t *arr = json_object_get(evj, "events");
    int retrying = 0;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *ev = json_array_get(arr, i);
        if (strcmp(json_string_value(json_object_get(ev, "state")), "retrying")) continue;
        retrying++;
        json_t *er = json_object_get(ev, "error");
        assert_int_equal(json_integer_value(json_object_get(ev, "attempt")), retrying);
        assert_string_equal(json_string_value(json_object_get(er, "code")), "GX_ETRANSIENT");
        assert_string_equal(json_string_value(json_object_get(er, "class")), "transient");
        char want[160];
        snprintf(want, sizeof want, "attempt %d failed (GX_ETRANSIENT, transient): flaky: planned failure %d", retrying,
                 retrying);
        assert_string_equal(json_string_value(json_object_get(er, "message")), want);
    }
    assert_int_equal(retrying, 2);
    json_decref(evj);

    /* the CPU fallback over HTTP: the job says where it ran and why, also
     * once the engine forgot it and it is read from the store */
    r = http(port, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"args\":{\"us\":0},\"device\":\"gpu\",\"fallback\":\"cpu\"}",
             &status);
    assert_int_equal(status, 202);
    snprintf(path, sizeof path, "/v1/jobs/%s", json_string_value(json_object_get(r, "id")));
    json_decref(r);
    job = NULL;
    state = "";
    for (int i = 0; i < 2000 && strcmp(state, "succeeded"); i++) {
        json_decref(job);
        job = http(port, "GET", path, NULL, &status);
        state = json_string_value(json_object_get(job, "state"));
        if (!state) state = "";
        usleep(5000);
    }
    assert_string_equal(state, "succeeded");
    json_decref(job);
    gx__svc_settle(s);
    job = http(port, "GET", path, NULL, &status);
    assert_string_equal(json_string_value(json_object_get(job, "device")), "cpu");
    assert_string_equal(json_string_value(json_object_get(job, "fallback")), "no healthy GPU: this engine has no GPU");
    json_decref(job);
    /* a bad fallback names the field; gpu without fallback is refused (no GPU) */
    r = http(port, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"device\":\"gpu\",\"fallback\":\"tpu\"}", &status);
    assert_int_equal(status, 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "field")), "fallback");
    json_decref(r);
    r = http(port, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"fallback\":7}", &status);
    assert_int_equal(status, 400);
    json_decref(r);
    r = http(port, "POST", "/v1/jobs", "{\"kernel\":\"spin\",\"device\":\"gpu\"}", &status);
    assert_int_equal(status, 422);
    json_decref(r);
    /* the devices and kernels show their breakers */
    r = http(port, "GET", "/v1/devices", NULL, &status);
    json_t *c0 = json_object_get(json_array_get(json_object_get(r, "devices"), 0), "circuit");
    assert_string_equal(json_string_value(json_object_get(c0, "state")), "closed");
    assert_true(json_is_null(json_object_get(c0, "next_probe_at")));
    json_decref(r);
    r = http(port, "GET", "/v1/kernels", NULL, &status);
    json_t *k0 = json_array_get(json_object_get(r, "kernels"), 0);
    assert_true(json_is_object(json_object_get(k0, "circuit")));
    assert_int_equal(json_integer_value(json_object_get(k0, "default_max_attempts")), 1);
    json_decref(r);
    /* and the metrics: a state gauge per device and per kernel */
    json_decref(http(port, "GET", "/metrics", NULL, &status));
    assert_int_equal(status, 200);
    assert_non_null(strstr(last_body, "gexec_circuit_state{kind=\"device\",name=\"cpu\"} 0"));
    assert_non_null(strstr(last_body, "gexec_circuit_state{kind=\"kernel\",name=\"test_flaky\"} 0"));
    assert_non_null(strstr(last_body, "# TYPE gexec_circuit_transitions_total counter"));
    free(last_body);
    last_body = NULL;
    gx_service_stop(s);
    gx_config_free(&cfg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **st) {
    (void)st;
    gx_error err;
    gx_engine *e = engine(0, 0, 0); /* loads the catalog */
    gx_engine_destroy(e);
    if (!gx_kernel_find("test_flaky")) TU_OK(gx_kernel_register(&flaky, &err), err);
    if (!gx_kernel_find("test_slowfault")) TU_OK(gx_kernel_register(&slowfault, &err), err);
    if (!gx_kernel_find("test_flaky_cheap")) TU_OK(gx_kernel_register(&flaky_cheap, &err), err);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(retries_record_every_attempt),
        cmocka_unit_test(permanent_fails_at_once),
        cmocka_unit_test(exhausted_is_dead),
        cmocka_unit_test(kernel_breaker_parks_and_probes),
        cmocka_unit_test(kernel_breaker_per_tenant),
        cmocka_unit_test(kernel_probe_failure_reopens),
        cmocka_unit_test(kernel_neutral_probe_passes_on),
        cmocka_unit_test(probe_unplaced_by_a_fault),
        cmocka_unit_test(device_breaker_and_fallback),
        cmocka_unit_test(device_probe_closes),
        cmocka_unit_test(device_transient_retries),
        cmocka_unit_test(drained_gpu_falls_back),
        cmocka_unit_test(gpu_short_job_not_behind_long_one),
        cmocka_unit_test(slot_open_failure_recovers),
        cmocka_unit_test(perf_model_tries_gpus_first),
        cmocka_unit_test(fatal_xid_resets_the_gpu),
        cmocka_unit_test(cpu_only_fallback),
        cmocka_unit_test(service_events_show_attempts),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
