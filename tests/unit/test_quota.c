/*
 * test_quota.c - per-tenant quotas in the engine: admission against
 * max_queued (all or nothing, reservations) and device-seconds per hour
 * (with the time until usage falls under the limit), jobs that wait on
 * max_running and on the device memory quota with the reason saying so
 * while other tenants run, a job bigger than its tenant's memory quota
 * refused at submit, quota validation, and the usage gx_tenant_get reports.
 *
 * One test kernel: test_hold, which declares `mem` bytes of device memory
 * and runs until the test releases it.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "exec/engine_int.h"
#include "testutil.h"

static atomic_int released;

static void nap_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static int hold_run(gx_kcall *c) {
    while (!atomic_load(&released) && !gx_kcall_cancelled(c)) nap_ms(1);
    return 0;
}
static uint64_t hold_mem(const gx_kcall *c) { return (uint64_t)c->args[0]; }
static const gx_arg_spec hold_args[] = {{.name = "mem", .type = GX_ARG_INT, .min = 0, .max = 1e12}};
static const gx_kernel k_hold = {
    .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel), .name = "test_hold",
    .version = 1, .args = hold_args, .nargs = 1, .mem_bytes = hold_mem, .run = {[GX_DEV_CPU] = hold_run},
};

static gx_engine *mk(int workers) {
    static int reg;
    if (!reg) {
        reg = 1;
        gx_kernel_register(&k_hold, NULL);
    }
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = workers;
    o.cpu_mem_bytes = 1 << 30;
    gx_engine *e = NULL;
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    return e;
}

static void add(gx_engine *e, const gx_tenant_opts *t) {
    gx_error err;
    TU_OK(gx_tenant_add(e, t, NULL, &err), err);
}

static gx_job_id submit(gx_engine *e, const char *tenant, const char *kernel, double arg) {
    gx_named_arg a = {.name = !strcmp(kernel, "spin") ? "us" : "mem", .value = arg};
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.tenant = tenant;
    s.kernel = kernel;
    s.args = &a;
    s.nargs = 1;
    return tu_submit(e, &s);
}

static gx_job_info info_of(gx_engine *e, gx_job_id id) {
    gx_job_info in;
    gx_error err;
    TU_OK(gx_job_get(e, id, &in, &err), err);
    return in;
}

/* Poll until the job reaches state (or 5 s pass). */
static void until_state(gx_engine *e, gx_job_id id, int state) {
    for (int i = 0; i < 5000 && info_of(e, id).state != state; i++) nap_ms(1);
    assert_int_equal(info_of(e, id).state, state);
}

static void max_queued_admission(void **st) {
    (void)st;
    gx_engine *e = mk(1);
    add(e, &(gx_tenant_opts){.name = "team-a", .weight = 1, .max_queued = 3});
    gx_quota_refusal why;
    gx_error err;
    /* two reserved, then a batch of two would make four: refused whole */
    TU_OK(gx_tenant_admit(e, "team-a", 2, &why, &err), err);
    assert_int_equal(gx_tenant_admit(e, "team-a", 2, &why, &err), GX_EQUOTA);
    assert_string_equal(why.quota, "max_queued");
    assert_true(why.limit == 3 && why.usage == 2 && why.retry_after_s == 0);
    assert_non_null(strstr(err.message, "max_queued quota: 2 of 3 jobs queued, 2 more would exceed it"));
    gx_tenant_info ti;
    TU_OK(gx_tenant_get(e, "team-a", &ti), err);
    assert_int_equal(ti.reserved, 2);
    TU_OK(gx_tenant_admit(e, "team-a", 1, &why, &err), err);
    gx_tenant_admit_release(e, "team-a", 3);
    /* jobs really queued count: a paused engine keeps them queued */
    gx_engine_pause(e, 1);
    for (int i = 0; i < 3; i++) submit(e, "team-a", "spin", 0);
    assert_int_equal(gx_tenant_admit(e, "team-a", 1, &why, &err), GX_EQUOTA);
    assert_true(why.usage == 3);
    /* another tenant is not affected; an unknown one is named */
    TU_OK(gx_tenant_admit(e, "default", 1000, &why, &err), err);
    gx_tenant_admit_release(e, "default", 1000);
    assert_int_equal(gx_tenant_admit(e, "nobody", 1, &why, &err), GX_ENOTFOUND);
    assert_string_equal(err.field, "tenant");
    /* raising the quota lets the next one in */
    add(e, &(gx_tenant_opts){.name = "team-a", .weight = 1, .max_queued = 4});
    TU_OK(gx_tenant_admit(e, "team-a", 1, &why, &err), err);
    gx_tenant_admit_release(e, "team-a", 1);
    gx_engine_pause(e, 0);
    assert_int_equal(gx_engine_drain(e, 5000), 0);
    TU_OK(gx_tenant_admit(e, "team-a", 3, &why, &err), err);
    gx_tenant_admit_release(e, "team-a", 3);
    gx_engine_destroy(e);
}

/* A reservation becomes the queued job in one step: at no moment do both
 * count, so a concurrent admission is never refused for a job counted twice. */
static void reservation_becomes_the_job(void **st) {
    (void)st;
    gx_engine *e = mk(1);
    add(e, &(gx_tenant_opts){.name = "team-q", .weight = 1, .max_queued = 2});
    gx_engine_pause(e, 1);
    gx_quota_refusal why;
    gx_error err;
    TU_OK(gx_tenant_admit(e, "team-q", 1, &why, &err), err);
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.tenant = "team-q";
    s.kernel = "spin";
    s.quota_reserved = 1;
    gx_job_id id;
    TU_OK(gx_submit(e, &s, &id, NULL, &err), err);
    gx_tenant_info ti;
    TU_OK(gx_tenant_get(e, "team-q", &ti), err);
    assert_int_equal(ti.reserved, 0); /* used up by the submit itself */
    assert_int_equal(ti.queued, 1);
    TU_OK(gx_tenant_admit(e, "team-q", 1, &why, &err), err); /* 1 queued + 1: within 2 */
    assert_int_equal(gx_tenant_admit(e, "team-q", 1, &why, &err), GX_EQUOTA);
    assert_true(why.usage == 2);
    gx_tenant_admit_release(e, "team-q", 1);
    gx_engine_destroy(e);
}

static void device_seconds_per_hour(void **st) {
    (void)st;
    gx_engine *e = mk(1);
    add(e, &(gx_tenant_opts){.name = "team-r", .weight = 1, .max_device_s_hour = 0.02});
    gx_quota_refusal why;
    gx_error err;
    TU_OK(gx_tenant_admit(e, "team-r", 1, &why, &err), err);
    gx_tenant_admit_release(e, "team-r", 1);
    gx_job_id id = submit(e, "team-r", "spin", 30000); /* 30 ms of device time */
    assert_int_equal(gx_job_wait(e, id, 5000, NULL), 0);
    gx_tenant_info ti;
    TU_OK(gx_tenant_get(e, "team-r", &ti), err);
    assert_true(ti.device_s_hour >= 0.029 && ti.device_s_hour < 1);
    assert_true(ti.max_device_s_hour == 0.02);
    assert_int_equal(gx_tenant_admit(e, "team-r", 1, &why, &err), GX_EQUOTA);
    assert_string_equal(why.quota, "device_seconds_per_hour");
    assert_true(why.limit == 0.02 && fabs(why.usage - ti.device_s_hour) < 1e-9);
    /* usage leaves the window one hour after the bucket it fell in ends */
    assert_true(why.retry_after_s >= 3600 - 15 && why.retry_after_s <= 3600 + 11);
    assert_true(why.retry_after_s == floor(why.retry_after_s));
    assert_non_null(strstr(err.message, "device_seconds_per_hour quota"));
    assert_non_null(strstr(err.message, "retry after"));
    /* admitting zero jobs is never refused; a raised limit admits again */
    TU_OK(gx_tenant_admit(e, "team-r", 0, &why, &err), err);
    add(e, &(gx_tenant_opts){.name = "team-r", .weight = 1, .max_device_s_hour = 10});
    TU_OK(gx_tenant_admit(e, "team-r", 1, &why, &err), err);
    gx_tenant_admit_release(e, "team-r", 1);
    gx_engine_destroy(e);
}

static void waits_on_running_and_memory(void **st) {
    (void)st;
    atomic_store(&released, 0);
    gx_engine *e = mk(4);
    add(e, &(gx_tenant_opts){.name = "team-m", .weight = 1, .max_mem = 1000});
    add(e, &(gx_tenant_opts){.name = "team-n", .weight = 1, .max_running = 1});
    add(e, &(gx_tenant_opts){.name = "other", .weight = 1});
    gx_job_id a = submit(e, "team-m", "test_hold", 600);
    until_state(e, a, GX_JOB_RUNNING);
    gx_job_id b = submit(e, "team-m", "test_hold", 600);
    gx_job_info in = info_of(e, b);
    assert_int_equal(in.state, GX_JOB_QUEUED);
    assert_int_equal(in.wait_reason, GX_WAIT_TENANT_MEMORY);
    assert_string_equal(gx_wait_reason_name(in.wait_reason), "tenant_memory");
    assert_non_null(strstr(in.reason, "tenant team-m at its max_device_memory_bytes quota "
                                      "(600 B of 1000 B in use, job needs 600 B)"));
    /* a small job of the same tenant still fits beside it... */
    gx_job_id small = submit(e, "team-m", "test_hold", 300);
    /* ...though behind b in the queue: b is first; the small one goes when
     * b is parked, which dispatch does per class. Either way it is not
     * refused and ends. Other tenants run at once. */
    gx_job_id o = submit(e, "other", "test_hold", 600);
    until_state(e, o, GX_JOB_RUNNING);
    /* max_running: the second job of team-n waits with the reason */
    gx_job_id n1 = submit(e, "team-n", "test_hold", 0);
    until_state(e, n1, GX_JOB_RUNNING);
    gx_job_id n2 = submit(e, "team-n", "test_hold", 0);
    in = info_of(e, n2);
    assert_int_equal(in.wait_reason, GX_WAIT_TENANT_LIMIT);
    assert_non_null(strstr(in.reason, "tenant team-n at its max_running quota (1 of 1 running)"));
    gx_tenant_info ti;
    gx_error err;
    TU_OK(gx_tenant_get(e, "team-m", &ti), err);
    assert_true(ti.max_mem == 1000 && ti.mem_used >= 600 && ti.mem_used <= 900);
    assert_int_equal(info_of(e, b).state, GX_JOB_QUEUED);
    /* bigger than the quota: could never run, refused at submit */
    gx_named_arg big = {.name = "mem", .value = 2000};
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.tenant = "team-m";
    s.kernel = "test_hold";
    s.args = &big;
    s.nargs = 1;
    gx_job_id id;
    assert_int_equal(gx_submit(e, &s, &id, NULL, &err), GX_ENODEVICE);
    assert_string_equal(err.field, "inputs");
    assert_non_null(strstr(err.message, "max_device_memory_bytes quota of 1000 B"));
    assert_int_equal(gx_job_validate(e, &s, &err), GX_ENODEVICE);
    atomic_store(&released, 1);
    assert_int_equal(gx_engine_drain(e, 5000), 0);
    gx_job_id all[] = {a, b, small, o, n1, n2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) assert_int_equal(info_of(e, all[i]).state, GX_JOB_SUCCEEDED);
    TU_OK(gx_tenant_get(e, "team-m", &ti), err);
    assert_int_equal(ti.mem_used, 0);
    gx_engine_destroy(e);
}

/* Raising the memory quota while a job waits on it lets the job run. */
static void memory_quota_raised(void **st) {
    (void)st;
    atomic_store(&released, 0);
    gx_engine *e = mk(2);
    add(e, &(gx_tenant_opts){.name = "t", .weight = 1, .max_mem = 100});
    gx_job_id a = submit(e, "t", "test_hold", 100);
    until_state(e, a, GX_JOB_RUNNING);
    gx_job_id b = submit(e, "t", "test_hold", 50);
    assert_int_equal(info_of(e, b).wait_reason, GX_WAIT_TENANT_MEMORY);
    add(e, &(gx_tenant_opts){.name = "t", .weight = 1, .max_mem = 150});
    until_state(e, b, GX_JOB_RUNNING);
    atomic_store(&released, 1);
    assert_int_equal(gx_engine_drain(e, 5000), 0);
    gx_engine_destroy(e);
}

/* The trailing-hour ring on its own, with made-up times: a charge counts
 * for an hour after its bucket ends, then leaves; old buckets are reused. */
static void hour_window(void **st) {
    (void)st;
    static gx__tenant t; /* large: not on the stack */
    memset(&t, 0, sizeof t);
    const int64_t S = 1000000000, T0 = INT64_C(5000) * 3600 * S + 3 * S; /* 3 s into a bucket */
    gx__quota_charge(&t, 5, T0);
    assert_true(gx__quota_hour_s(&t, T0) == 5);
    gx__quota_charge(&t, 2, T0 + 1800 * S);
    assert_true(gx__quota_hour_s(&t, T0 + 1800 * S) == 7);
    /* the first charge's bucket ended at T0 + 7 s: it counts until an hour
     * after that, and not a moment later */
    assert_true(gx__quota_hour_s(&t, T0 + 3600 * S + 6 * S) == 7);
    assert_true(gx__quota_hour_s(&t, T0 + 3600 * S + 7 * S) == 2);
    assert_true(gx__quota_hour_s(&t, T0 + 1800 * S + 3600 * S + 10 * S) == 0);
    /* a charge long after: the whole ring is cleared first */
    gx__quota_charge(&t, 1, T0 + 10 * 3600 * S);
    assert_true(gx__quota_hour_s(&t, T0 + 10 * 3600 * S) == 1);
    double sum = 0;
    for (int i = 0; i < GX__HOUR_RING; i++) sum += t.hour[i];
    assert_true(sum == 1);
    /* a charge stamped before the newest bucket goes to the newest */
    gx__quota_charge(&t, 4, T0 + 9 * 3600 * S);
    assert_true(gx__quota_hour_s(&t, T0 + 10 * 3600 * S) == 5);
    /* memory quota test */
    t.max_mem = 100;
    t.mem_used = 60;
    assert_false(gx__quota_mem_over(&t, 40));
    assert_true(gx__quota_mem_over(&t, 41));
    t.max_mem = 0;
    assert_false(gx__quota_mem_over(&t, UINT64_MAX / 2));
    char b[32];
    gx__fmt_bytes(100, b, sizeof b);
    assert_string_equal(b, "100 B");
    gx__fmt_bytes(UINT64_C(7516192768), b, sizeof b);
    assert_string_equal(b, "7 GiB");
    gx__fmt_bytes(UINT64_C(8053063680), b, sizeof b);
    assert_string_equal(b, "7.5 GiB");
    gx__fmt_bytes(1536, b, sizeof b);
    assert_string_equal(b, "1.5 KiB");
}

/* The trailing hour carried to another engine (a restart): the same
 * usage, and the same refusal; slices older than an hour dropped; ages
 * moved on by the time between export and import. */
static void hour_export_import(void **st) {
    (void)st;
    gx_engine *a = mk(1);
    add(a, &(gx_tenant_opts){.name = "team-h", .weight = 1, .max_device_s_hour = 0.02});
    gx_job_id id = submit(a, "team-h", "spin", 30000);
    assert_int_equal(gx_job_wait(a, id, 5000, NULL), 0);
    gx_tenant_info ti;
    assert_int_equal(gx_tenant_get(a, "team-h", &ti), 0);
    gx_usage_slice sl[400];
    size_t n = 0;
    assert_int_equal(gx_tenant_hour_export(a, "team-h", sl, 400, &n), 0);
    assert_int_equal(n, 1);
    assert_true(sl[0].age_ns >= 0 && sl[0].age_ns <= GX__HOUR_BUCKET_NS);
    assert_true(fabs(sl[0].seconds - ti.device_s_hour) < 1e-12);
    assert_int_equal(gx_tenant_hour_export(a, "nobody", sl, 400, &n), GX_ENOTFOUND);
    gx_engine_destroy(a);

    gx_engine *b = mk(1);
    add(b, &(gx_tenant_opts){.name = "team-h", .weight = 1, .max_device_s_hour = 0.02});
    gx_tenant_info tb;
    assert_int_equal(gx_tenant_get(b, "team-h", &tb), 0);
    assert_true(tb.device_s_hour == 0);
    gx_usage_slice in[3] = {{sl[0].age_ns, sl[0].seconds},
                            {3600 * INT64_C(1000000000) + GX__HOUR_BUCKET_NS, 50}, /* past the hour */
                            {1800 * INT64_C(1000000000), -1}};                     /* nonsense */
    assert_int_equal(gx_tenant_hour_import(b, "team-h", in, 3), 0);
    assert_int_equal(gx_tenant_get(b, "team-h", &tb), 0);
    assert_true(fabs(tb.device_s_hour - ti.device_s_hour) < 1e-12);
    gx_quota_refusal why;
    gx_error err;
    assert_int_equal(gx_tenant_admit(b, "team-h", 1, &why, &err), GX_EQUOTA);
    assert_true(why.retry_after_s >= 3600 - 25 && why.retry_after_s <= 3600 + 11);
    /* half an hour old: it leaves the window in half an hour */
    gx_usage_slice old = {1800 * INT64_C(1000000000), 0.5};
    assert_int_equal(gx_tenant_hour_import(b, "team-h", &old, 1), 0);
    assert_int_equal(gx_tenant_get(b, "team-h", &tb), 0);
    assert_true(fabs(tb.device_s_hour - ti.device_s_hour - 0.5) < 1e-9);
    assert_int_equal(gx_tenant_hour_import(b, "nobody", &old, 1), GX_ENOTFOUND);
    gx_engine_destroy(b);
}

static void quota_validation(void **st) {
    (void)st;
    gx_engine *e = mk(1);
    gx_error err;
    assert_int_equal(gx_tenant_add(e, &(gx_tenant_opts){.name = "x", .weight = 1, .max_queued = -1}, NULL, &err),
                     GX_EINVAL);
    assert_string_equal(err.field, "max_queued");
    assert_int_equal(
        gx_tenant_add(e, &(gx_tenant_opts){.name = "x", .weight = 1, .max_device_s_hour = NAN}, NULL, &err),
        GX_EINVAL);
    assert_string_equal(err.field, "device_seconds_per_hour");
    assert_int_equal(
        gx_tenant_add(e, &(gx_tenant_opts){.name = "x", .weight = 1, .max_device_s_hour = -2}, NULL, &err),
        GX_EINVAL);
    assert_int_equal(gx_tenant_get(e, "x", &(gx_tenant_info){0}), GX_ENOTFOUND);
    gx_engine_destroy(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(max_queued_admission),
        cmocka_unit_test(reservation_becomes_the_job),
        cmocka_unit_test(device_seconds_per_hour),
        cmocka_unit_test(waits_on_running_and_memory),
        cmocka_unit_test(memory_quota_raised),
        cmocka_unit_test(hour_window),
        cmocka_unit_test(hour_export_import),
        cmocka_unit_test(quota_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
