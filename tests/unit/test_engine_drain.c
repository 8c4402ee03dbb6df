/*
 * test_engine_drain.c - an operator's drain of a device (gx_device_drain): a
 * drained device gets no new placements, the other device takes the work, a
 * job only it may run waits naming it and runs after the undrain, and the
 * health loop's recovery of a faulted device leaves the drain in place.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gexec/gexec_fault.h"
#include "testutil.h"

static gx_engine *mk(int ndev) {
    gx_fault_clear(GX_FAULT__COUNT);
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 2 * ndev;
    o.cpu_devices = ndev;
    o.hang_grace_ms = 300;
    gx_engine *e = NULL;
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    return e;
}

static gx_job_id submit(gx_engine *e, const char *dev, int64_t us) {
    gx_named_arg a = {.name = "us", .value = (double)us};
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = "spin";
    s.device = dev;
    s.args = &a;
    s.nargs = 1;
    return tu_submit(e, &s);
}

static gx_job_info finished(gx_engine *e, gx_job_id id) {
    gx_job_info info;
    gx_error err;
    assert_int_equal(gx_job_wait(e, id, 20000, NULL), 0);
    TU_OK(gx_job_get(e, id, &info, &err), err);
    return info;
}

static void drain(gx_engine *e, int dev, int on) {
    gx_error err;
    TU_OK(gx_device_drain(e, dev, on, &err), err);
}

/* Wait (up to 20 s) until the job is queued behind the drain of `name`. */
static void waits_on_drain(gx_engine *e, gx_job_id id, const char *name) {
    char want[64];
    snprintf(want, sizeof want, "%s drained by an operator", name);
    gx_job_info in;
    gx_error err;
    for (int k = 0; k < 4000; k++) {
        TU_OK(gx_job_get(e, id, &in, &err), err);
        if (in.state == GX_JOB_QUEUED && !strcmp(in.reason, want)) break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    if (in.state != GX_JOB_QUEUED || strcmp(in.reason, want))
        fail_msg("job %llu: %s, reason '%s' (want '%s')", (unsigned long long)id, gx_job_state_name(in.state),
                 in.reason, want);
    assert_int_equal(in.wait_reason, GX_WAIT_NO_DEVICE);
}

/* cpu:1 drained: every job for any device runs on cpu:0; one pinned to
 * cpu:1 waits naming the drain and runs there once undrained. */
static void drained_gets_nothing(void **st) {
    (void)st;
    gx_engine *e = mk(2);
    drain(e, 1, 1);
    gx_device_info d;
    assert_int_equal(gx_device_get(e, 1, &d), 0);
    assert_int_equal(d.drained, 1);
    assert_int_equal(d.healthy, 1);
    gx_job_id pinned = submit(e, "cpu:1", 0);
    gx_job_id ids[40];
    for (int i = 0; i < 40; i++) ids[i] = submit(e, NULL, 200);
    for (int i = 0; i < 40; i++) {
        gx_job_info in = finished(e, ids[i]);
        assert_int_equal(in.state, GX_JOB_SUCCEEDED);
        assert_string_equal(in.device_name, "cpu:0");
    }
    waits_on_drain(e, pinned, "cpu:1");
    assert_int_equal(gx_device_get(e, 1, &d), 0);
    assert_int_equal(d.jobs_done, 0);
    drain(e, 1, 0);
    assert_int_equal(gx_device_get(e, 1, &d), 0);
    assert_int_equal(d.drained, 0);
    gx_job_info in = finished(e, pinned);
    assert_int_equal(in.state, GX_JOB_SUCCEEDED);
    assert_string_equal(in.device_name, "cpu:1");
    /* undrained, it takes work again */
    for (int i = 0; i < 40; i++) ids[i] = submit(e, NULL, 2000);
    int on1 = 0;
    for (int i = 0; i < 40; i++) on1 += !strcmp(finished(e, ids[i]).device_name, "cpu:1");
    assert_true(on1 > 0);
    /* draining twice and undrained twice are no-ops; a bad index is refused */
    drain(e, 0, 1);
    drain(e, 0, 1);
    drain(e, 0, 0);
    drain(e, 0, 0);
    gx_error err;
    assert_int_equal(gx_device_drain(e, 2, 1, &err), GX_ENOTFOUND);
    assert_int_equal(gx_device_drain(e, -1, 0, &err), GX_ENOTFOUND);
    gx_engine_destroy(e);
}

/* Both devices drained: an "any" job waits naming the first one. */
static void all_drained_any_waits(void **st) {
    (void)st;
    gx_engine *e = mk(2);
    drain(e, 0, 1);
    drain(e, 1, 1);
    gx_job_id id = submit(e, NULL, 0);
    waits_on_drain(e, id, "cpu:0");
    drain(e, 1, 0);
    gx_job_info in = finished(e, id);
    assert_int_equal(in.state, GX_JOB_SUCCEEDED);
    assert_string_equal(in.device_name, "cpu:1");
    gx_engine_destroy(e);
}

/* A device fault on cpu:0, drained while it recovers: the recovery makes it
 * healthy but leaves it drained; the re-queued job waits for the undrain. */
static void recovery_keeps_drain(void **st) {
    (void)st;
    gx_engine *e = mk(2);
    gx_fault_spec f = {.point = GX_FAULT_DEVICE_LAUNCH, .device = 0, .count = 1, .code = 700};
    gx_error err;
    TU_OK(gx_fault_arm(&f, &err), err);
    gx_job_id id = submit(e, "cpu:0", 1000);
    drain(e, 0, 1);
    gx_device_info d;
    for (int k = 0; k < 4000; k++) {
        assert_int_equal(gx_device_get(e, 0, &d), 0);
        if (d.recoveries >= 1 && d.healthy && !d.recovering) break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(d.recoveries, 1);
    assert_int_equal(d.healthy, 1);
    assert_int_equal(d.drained, 1); /* the recovery did not undrain it */
    waits_on_drain(e, id, "cpu:0");
    drain(e, 0, 0);
    gx_job_info in = finished(e, id);
    assert_int_equal(in.state, GX_JOB_SUCCEEDED);
    assert_int_equal(in.attempts, 2);
    gx_engine_destroy(e);
    gx_fault_clear(GX_FAULT__COUNT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drained_gets_nothing),
        cmocka_unit_test(all_drained_any_waits),
        cmocka_unit_test(recovery_keeps_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
