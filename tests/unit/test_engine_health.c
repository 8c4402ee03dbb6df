/*
 * test_engine_health.c - the device health loop on the real engine with CPU
 * devices: an injected device fault is recovered (drain, reset, re-admit)
 * and every job on the device still succeeds; recovery repeats; a poison job
 * is dead with its fault history while the others succeed; a hung call
 * (ignores its cancel) times out, the device is reset and takes work again;
 * a call that ignores cancel and reset leaves the device "stuck" until it
 * returns; a device whose reset fails (fault code 46) is lost and reported
 * through on_device_lost; blame restored after a restart counts.
 *
 * Faults are armed process-wide with gx_fault_arm (gexec_fault.h) and
 * cleared after each case.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gexec/gexec_fault.h"
#include "testutil.h"

/* ---- a kernel that faults its device (like an illegal address) -------- */

static atomic_int poison_runs;
static int poison_run(gx_kcall *c) {
    atomic_fetch_add(&poison_runs, 1);
    return gx_error_set(c->err, GX_EDEVICE, NULL, "illegal address");
}
static const gx_kernel k_poison = {
    .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel), .name = "test_poison",
    .version = 1, .run = {[GX_DEV_CPU] = poison_run},
};

/* A kernel that sleeps `ms` without ever looking at its cancel flag. */
static int stubborn_run(gx_kcall *c) {
    int64_t ms = (int64_t)c->args[0];
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    return 0;
}
static const gx_arg_spec stubborn_args[] = {{.name = "ms", .type = GX_ARG_INT, .min = 0, .max = 10000}};
static const gx_kernel k_stubborn = {
    .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel), .name = "test_stubborn",
    .version = 1, .args = stubborn_args, .nargs = 1, .run = {[GX_DEV_CPU] = stubborn_run},
};

/* ---- helpers ------------------------------------------------------------ */

static gx_engine *mk(int ndev, int64_t grace_ms) {
    static int reg;
    if (!reg++) {
        gx_kernel_register(&k_poison, NULL);
        gx_kernel_register(&k_stubborn, NULL);
    }
    gx_fault_clear(GX_FAULT__COUNT);
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 2 * ndev;
    o.cpu_devices = ndev;
    o.hang_grace_ms = grace_ms;
    gx_engine *e = NULL;
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    return e;
}

static void done(gx_engine *e) {
    gx_engine_destroy(e);
    gx_fault_clear(GX_FAULT__COUNT);
}

static gx_job_id submit(gx_engine *e, const char *kernel, const char *dev, int64_t us, int64_t timeout_ms) {
    gx_named_arg a = {.name = "us", .value = (double)us};
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = kernel;
    s.device = dev;
    if (!strcmp(kernel, "spin")) {
        s.args = &a;
        s.nargs = 1;
    }
    s.timeout_ms = timeout_ms;
    return tu_submit(e, &s);
}

static gx_job_info info_of(gx_engine *e, gx_job_id id) {
    gx_job_info info;
    gx_error err;
    assert_int_equal(gx_job_wait(e, id, 20000, NULL), 0);
    TU_OK(gx_job_get(e, id, &info, &err), err);
    return info;
}

static void arm(gx_fault_point p, int dev, int64_t count, int code) {
    gx_fault_spec f = {.point = p, .device = dev, .count = count, .code = code};
    gx_error err;
    TU_OK(gx_fault_arm(&f, &err), err);
}

/* A test_stubborn call of `ms` with a 50 ms timeout: timed out at once,
 * while its call goes on ignoring the cancel. */
static void stubborn_times_out(gx_engine *e, const char *dev, int ms) {
    gx_named_arg a = {.name = "ms", .value = ms};
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = "test_stubborn";
    s.device = dev;
    s.args = &a;
    s.nargs = 1;
    s.timeout_ms = 50;
    gx_job_id id;
    gx_error err;
    TU_OK(gx_submit(e, &s, &id, NULL, &err), err);
    assert_int_equal(info_of(e, id).state, GX_JOB_TIMED_OUT);
}

/* Wait until device i has recovered `n` times and is healthy again. */
static gx_device_info wait_recovered(gx_engine *e, int i, int64_t n) {
    gx_device_info d;
    for (int k = 0; k < 4000; k++) {
        assert_int_equal(gx_device_get(e, i, &d), 0);
        if (d.recoveries >= n && d.healthy && !d.recovering) return d;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("device %d: %lld recoveries, healthy %d, status '%s'", i, (long long)d.recoveries, d.healthy, d.status);
    return d;
}

/* ---- tests ------------------------------------------------------------- */

/* One injected illegal address on cpu:0: its running and placed jobs are
 * re-queued and succeed after the reset; cpu:1's jobs never notice. */
static void fault_recovers(void **st) {
    (void)st;
    gx_engine *e = mk(2, 500);
    arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, 700);
    gx_job_id a[30], b[30];
    for (int i = 0; i < 30; i++) {
        a[i] = submit(e, "spin", "cpu:0", 2000, 0);
        b[i] = submit(e, "spin", "cpu:1", 2000, 0);
    }
    int requeued = 0;
    for (int i = 0; i < 30; i++) {
        gx_job_info ia = info_of(e, a[i]), ib = info_of(e, b[i]);
        if (ia.state != GX_JOB_SUCCEEDED) fail_msg("cpu:0 job %d: %s (%s)", i, gx_job_state_name(ia.state), ia.error);
        assert_int_equal(ib.state, GX_JOB_SUCCEEDED);
        assert_int_equal(ib.attempts, 1);
        assert_string_equal(ib.device_name, "cpu:1");
        requeued += ia.attempts > 1;
    }
    assert_true(requeued >= 1); /* at least the job whose launch faulted */
    gx_device_info d0 = wait_recovered(e, 0, 1), d1;
    assert_int_equal(d0.recoveries, 1);
    assert_true(d0.last_recovery_s > 0);
    assert_string_equal(d0.status, "ok");
    assert_int_equal(gx_device_get(e, 1, &d1), 0);
    assert_int_equal(d1.recoveries, 0);
    assert_int_equal(gx_fault_list(NULL, 0), 0); /* the fault was consumed */
    /* the device works after its recovery */
    gx_job_id after = submit(e, "spin", "cpu:0", 0, 0);
    assert_int_equal(info_of(e, after).state, GX_JOB_SUCCEEDED);
    done(e);
}

/* Faults one after another: each is recovered, no job is lost. */
static void recovery_repeats(void **st) {
    (void)st;
    gx_engine *e = mk(1, 300);
    for (int round = 1; round <= 4; round++) {
        arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, round % 2 ? 700 : 214);
        gx_job_id ids[8];
        for (int i = 0; i < 8; i++) ids[i] = submit(e, "spin", NULL, 500, 0);
        for (int i = 0; i < 8; i++) {
            gx_job_info in = info_of(e, ids[i]);
            if (in.state != GX_JOB_SUCCEEDED)
                fail_msg("round %d job %d: %s (%s)", round, i, gx_job_state_name(in.state), in.error);
        }
        gx_device_info d = wait_recovered(e, 0, round);
        assert_int_equal(d.recoveries, round);
        assert_int_equal(d.recovery_failures, 0);
    }
    gx_engine_stats s;
    gx_engine_stats_get(e, &s);
    assert_int_equal(s.succeeded, 32);
    assert_int_equal(s.dead + s.failed, 0);
    done(e);
}

/* A job that faults its device every time is dead after 2 faults, with the
 * history; the device recovers each time and the other jobs succeed. */
static void poison_job_dead(void **st) {
    (void)st;
    gx_engine *e = mk(2, 300);
    atomic_store(&poison_runs, 0);
    gx_job_id p = submit(e, "test_poison", "cpu:0", 0, 0);
    gx_job_id ok[20];
    for (int i = 0; i < 20; i++) ok[i] = submit(e, "spin", i % 2 ? "cpu:1" : "cpu:0", 1000, 0);
    gx_job_info pi = info_of(e, p);
    assert_int_equal(pi.state, GX_JOB_DEAD);
    assert_int_equal(pi.error_code, GX_EDEVICE);
    assert_int_equal(pi.attempts, 2);
    assert_int_equal(atomic_load(&poison_runs), 2);
    if (!strstr(pi.error, "faulted cpu:0 (illegal address) on attempts 1 and 2")) fail_msg("error: %s", pi.error);
    for (int i = 0; i < 20; i++) {
        gx_job_info in = info_of(e, ok[i]);
        if (in.state != GX_JOB_SUCCEEDED) fail_msg("job %d: %s (%s)", i, gx_job_state_name(in.state), in.error);
    }
    wait_recovered(e, 0, 2);
    gx_device_info d1;
    assert_int_equal(gx_device_get(e, 1, &d1), 0);
    assert_int_equal(d1.recoveries, 0);
    done(e);
}

/* A call that ignores its cancel: the job times out at its deadline, the
 * device is reset hang grace later, and the next job on it succeeds. A hang
 * that obeys its cancel only times out the job. */
static void hung_call_contained(void **st) {
    (void)st;
    /* a grace a loaded machine cannot overrun: with 200 ms the cooperative
     * hang below, descheduled past it, was once taken for a hung call, and
     * the reset's abort then ended the real hang at once (the job re-ran
     * and succeeded) */
    gx_engine *e = mk(1, 1000);
    /* cooperative: ends at the timeout, no reset */
    arm(GX_FAULT_DEVICE_HANG, 0, 1, 0);
    gx_job_id c = submit(e, "spin", NULL, 0, 100);
    gx_job_info ci = info_of(e, c);
    assert_int_equal(ci.state, GX_JOB_TIMED_OUT);
    gx_job_id c2 = submit(e, "spin", NULL, 0, 0);
    assert_int_equal(info_of(e, c2).state, GX_JOB_SUCCEEDED);
    gx_device_info d;
    assert_int_equal(gx_device_get(e, 0, &d), 0);
    assert_int_equal(d.recoveries, 0);

    /* ignores its cancel: only the device reset ends it */
    arm(GX_FAULT_DEVICE_HANG, 0, 1, 1);
    gx_job_id h = submit(e, "spin", NULL, 0, 100);
    gx_job_id queued = submit(e, "spin", NULL, 0, 0); /* waits behind it */
    gx_job_info hi = info_of(e, h);
    if (hi.state != GX_JOB_TIMED_OUT) /* what it went through, should it not (seen once under ctest -j2) */
        fail_msg("the hung job is %s after %d attempt(s): %s", gx_job_state_name(hi.state), hi.attempts, hi.error);
    assert_non_null(strstr(hi.error, "100 ms"));
    /* timed out at its deadline, not when the call came back (generous
     * bound: deadline + grace + scheduling slack on a loaded machine) */
    assert_true(hi.end_ns - hi.start_ns < (100 + 1000 + 5000) * 1000000LL);
    d = wait_recovered(e, 0, 1);
    assert_true(d.last_recovery_s > 0);
    assert_int_equal(info_of(e, queued).state, GX_JOB_SUCCEEDED);
    gx_job_id next = submit(e, "spin", NULL, 0, 0);
    assert_int_equal(info_of(e, next).state, GX_JOB_SUCCEEDED);
    done(e);
}

static int wait_running(gx_engine *e, gx_job_id id) {
    gx_job_info in;
    gx_error err;
    for (int k = 0; k < 5000; k++) {
        TU_OK(gx_job_get(e, id, &in, &err), err);
        if (in.state == GX_JOB_RUNNING) return 1;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* While a device recovers it says so and takes nothing; its other slot
 * finishes its job within hang grace, or has it abandoned and re-queued. */
static void slots_drain_or_abandon(void **st) {
    (void)st;
    /* the slow job runs well inside the grace but long enough that a
     * loaded machine (the test thread descheduled for a while) still sees
     * the quick job fault while it runs: with 300 ms it had ended first now
     * and then, the device recovered at once, unseen */
    gx_engine *e = mk(1, 3000); /* one device, two slots */
    gx_job_id slow = submit(e, "spin", NULL, 1500000, 0);
    assert_true(wait_running(e, slow));
    /* running is set just before the launch: a fault armed at once could
     * be the slow job's own on a loaded machine */
    nanosleep(&(struct timespec){0, 300000000}, NULL);
    arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, 700);
    gx_job_id quick = submit(e, "spin", NULL, 0, 0);
    gx_device_info d;
    int seen = 0;
    for (int k = 0; k < 5000 && !seen; k++) {
        assert_int_equal(gx_device_get(e, 0, &d), 0);
        if (d.recovering) {
            seen = 1;
            assert_false(d.healthy);
            if (!strstr(d.status, "recovering: job") || !strstr(d.status, "illegal address (700)"))
                fail_msg("status: %s", d.status);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(seen);
    gx_job_info si = info_of(e, slow), qi = info_of(e, quick);
    assert_int_equal(si.state, GX_JOB_SUCCEEDED);
    assert_int_equal(si.attempts, 1); /* finished in the drain */
    assert_int_equal(qi.state, GX_JOB_SUCCEEDED);
    assert_int_equal(qi.attempts, 2); /* faulted, re-queued */
    wait_recovered(e, 0, 1);

    /* longer than the grace: abandoned, re-queued, then succeeds */
    done(e);
    e = mk(1, 600);
    slow = submit(e, "spin", NULL, 1500000, 0);
    assert_true(wait_running(e, slow));
    nanosleep(&(struct timespec){0, 300000000}, NULL); /* launched (above) */
    arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, 700);
    quick = submit(e, "spin", NULL, 0, 0);
    si = info_of(e, slow);
    qi = info_of(e, quick);
    assert_int_equal(si.state, GX_JOB_SUCCEEDED);
    assert_int_equal(si.attempts, 2);
    assert_int_equal(qi.state, GX_JOB_SUCCEEDED);
    wait_recovered(e, 0, 1); /* this engine's first */
    done(e);
}

/* A call that ignores cancel and reset leaves the device unhealthy ("stuck")
 * and visible as such; when it finally returns the recovery completes. */
static void stuck_slot_then_recovers(void **st) {
    (void)st;
    gx_engine *e = mk(1, 100);
    stubborn_times_out(e, NULL, 700);
    gx_device_info d;
    int stuck = 0;
    for (int k = 0; k < 3000 && !stuck; k++) {
        assert_int_equal(gx_device_get(e, 0, &d), 0);
        if (strstr(d.status, "stuck")) {
            stuck = 1;
            assert_false(d.healthy);
            assert_false(d.recovering);
            assert_non_null(strstr(d.status, "unhealthy: 1 slot(s) stuck"));
        } else if (d.recoveries) {
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_true(stuck);
    d = wait_recovered(e, 0, 1);
    assert_true(d.last_recovery_s > 0.5); /* it waited for the call */
    assert_int_equal(info_of(e, submit(e, "spin", NULL, 0, 0)).state, GX_JOB_SUCCEEDED);
    done(e);
}

/* ---- devices this process cannot recover (code 46: sticky for the
 * process, as an illegal address on an H100) -------------------------- */

static atomic_int lost_calls, lost_device;
static int lost_answer;
static char lost_reason[256];
static int on_lost(void *ctx, int device, const char *reason, char *why_not, size_t cap) {
    assert_ptr_equal(ctx, &lost_calls);
    atomic_store(&lost_device, device);
    snprintf(lost_reason, sizeof lost_reason, "%s", reason);
    if (!lost_answer) snprintf(why_not, cap, "test says no");
    atomic_fetch_add(&lost_calls, 1);
    return lost_answer;
}

static gx_engine *mk_lost(int answer) {
    gx_engine *e = mk(2, 300);
    gx_engine_destroy(e); /* the same, with the callback */
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 4;
    o.cpu_devices = 2;
    o.hang_grace_ms = 300;
    o.on_device_lost = on_lost;
    o.device_lost_ctx = &lost_calls;
    lost_answer = answer;
    atomic_store(&lost_calls, 0);
    atomic_store(&lost_device, -1);
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    return e;
}

static gx_device_info wait_not_recovering(gx_engine *e, int i) {
    gx_device_info d;
    for (int k = 0; k < 4000; k++) {
        assert_int_equal(gx_device_get(e, i, &d), 0);
        if (!d.healthy && !d.recovering && (d.lost || !strncmp(d.status, "unhealthy", 9))) return d;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("device %d: status '%s'", i, d.status);
    return d;
}

/* The reset fails: the device is lost at once (no retries), the callback
 * hears it once, placements stop; the other device keeps working. */
static void lost_device_calls_back(void **st) {
    (void)st;
    gx_engine *e = mk_lost(1);
    arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, 46);
    gx_job_id a = submit(e, "spin", "cpu:0", 0, 0);
    gx_device_info d = wait_not_recovering(e, 0);
    assert_int_equal(d.lost, 1);
    assert_int_equal(d.recovery_failures, 1);
    if (strncmp(d.status, "lost: reset failed: injected device fault: device unavailable (46)", 66))
        fail_msg("status: %s", d.status);
    assert_int_equal(atomic_load(&lost_calls), 1);
    assert_int_equal(atomic_load(&lost_device), 0);
    assert_non_null(strstr(lost_reason, "device unavailable (46)"));
    /* the faulting job waits for the new process (re-queued, blamed once) */
    gx_job_info ia;
    gx_error err;
    TU_OK(gx_job_get(e, a, &ia, &err), err);
    assert_int_equal(ia.state, GX_JOB_QUEUED);
    int n = 0;
    const char *h = NULL;
    assert_int_equal(gx_job_blame_parse(ia.error, &n, &h), 1);
    assert_int_equal(n, 1);
    assert_string_equal(h, "faulted cpu:0 (injected device fault: device unavailable (46)) on attempt 1");
    gx_job_id b = submit(e, "spin", "cpu:1", 0, 0), any = submit(e, "spin", NULL, 0, 0);
    assert_int_equal(info_of(e, b).state, GX_JOB_SUCCEEDED);
    gx_job_info iany = info_of(e, any);
    assert_int_equal(iany.state, GX_JOB_SUCCEEDED);
    assert_string_equal(iany.device_name, "cpu:1"); /* no placement on the lost one */
    assert_int_equal(atomic_load(&lost_calls), 1);
    done(e);
}

/* A slot stuck in a call past the grace: lost too (only a new process ends
 * that thread), and it stays lost when the call returns after all. */
static void stuck_slot_lost(void **st) {
    (void)st;
    gx_engine *e = mk_lost(1);
    stubborn_times_out(e, "cpu:0", 1200);
    gx_device_info d = wait_not_recovering(e, 0);
    assert_int_equal(d.lost, 1);
    assert_string_equal(d.status, "lost: 1 slot(s) stuck in a call that ignores cancel and reset; restarting gexecd");
    assert_int_equal(atomic_load(&lost_calls), 1);
    struct timespec ts = {1, 300000000}; /* the call returns */
    nanosleep(&ts, NULL);
    assert_int_equal(gx_device_get(e, 0, &d), 0);
    assert_int_equal(d.lost, 1);
    assert_int_equal(d.recoveries, 0);
    assert_int_equal(atomic_load(&lost_calls), 1);
    done(e);
}

/* The callback declines (restart-loop guard): unhealthy with its reason;
 * without a callback the recovery is retried recovery_attempts times. */
static void lost_device_declined(void **st) {
    (void)st;
    gx_engine *e = mk_lost(0);
    arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, 46);
    submit(e, "spin", "cpu:0", 0, 0);
    gx_device_info d = wait_not_recovering(e, 0);
    assert_int_equal(d.lost, 0);
    if (strcmp(d.status, "unhealthy: reset failed: injected device fault: device unavailable (46); not restarted: "
                         "test says no"))
        fail_msg("status: %s", d.status);
    done(e);
    e = mk(1, 300);
    arm(GX_FAULT_DEVICE_LAUNCH, 0, 1, 46);
    submit(e, "spin", NULL, 0, 0);
    d = wait_not_recovering(e, 0);
    assert_int_equal(d.recovery_failures, 3);
    assert_non_null(strstr(d.status, "unhealthy: recovery failed 3 times: reset failed"));
    done(e);
}

/* Blame from before a restart (as a daemon restores it from the job's
 * events) counts towards poison_faults and stays in the history. */
static void blame_restored(void **st) {
    (void)st;
    int n = 0;
    const char *h = NULL;
    assert_int_equal(gx_job_blame_parse("device fault 1 of 2 blamed on this job: faulted cpu (x) on attempt 1", &n,
                                        &h),
                     1);
    assert_int_equal(n, 1);
    assert_string_equal(h, "faulted cpu (x) on attempt 1");
    assert_int_equal(gx_job_blame_parse("injected device fault: illegal address (700)", &n, &h), 0);
    assert_int_equal(gx_job_blame_parse(NULL, &n, &h), 0);
    gx_engine *e = mk(1, 300);
    atomic_store(&poison_runs, 0);
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = "test_poison";
    s.id = 1000;
    s.attempts_done = 1;
    s.dev_faults_done = 1;
    s.fault_history = "faulted cpu (illegal address) on attempt 1";
    gx_job_id id;
    gx_error err;
    TU_OK(gx_submit(e, &s, &id, NULL, &err), err);
    gx_job_info in = info_of(e, id);
    assert_int_equal(in.state, GX_JOB_DEAD);
    assert_int_equal(atomic_load(&poison_runs), 1);
    assert_string_equal(in.error, "faulted cpu (illegal address) on attempt 1; cpu (illegal address) on attempt 2");
    done(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fault_recovers),
        cmocka_unit_test(recovery_repeats),
        cmocka_unit_test(poison_job_dead),
        cmocka_unit_test(hung_call_contained),
        cmocka_unit_test(slots_drain_or_abandon),
        cmocka_unit_test(stuck_slot_then_recovers),
        cmocka_unit_test(lost_device_calls_back),
        cmocka_unit_test(stuck_slot_lost),
        cmocka_unit_test(lost_device_declined),
        cmocka_unit_test(blame_restored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
