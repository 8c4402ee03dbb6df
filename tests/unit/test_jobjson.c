/*
 * test_jobjson.c - the job object written directly (gx_job_json_text, the
 * 202 body of every submission) says exactly what jansson's gx_job_json
 * says: same members, same values, same order, for every shape of job
 * (queued and waiting, running on a device, failed with an error that
 * needs escaping, fallen back, labelled, non-ASCII and invalid UTF-8).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <time.h>

#include "api/jobjson.h"
#include "core/jsonw.h"
#include "testutil.h"

/* The job object as jansson built it before the text writer (kept here as
 * the reference: the text must say the same). */
static json_t *reference(gx_engine *e, const gx_job_info *in) {
    char id[24];
    snprintf(id, sizeof id, "%llu", (unsigned long long)in->id);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i}", "id", id, "tenant", in->tenant_name, "kernel", in->kernel,
                          "state", gx_job_state_name(in->state), "priority", in->priority, "attempts", in->attempts,
                          "max_attempts", in->max_attempts);
    json_object_set_new(j, "device", in->device >= 0 ? json_string(in->device_name) : json_null());
    json_object_set_new(j, "submitted_at", gx_json_time(in->submit_ns));
    json_object_set_new(j, "started_at", gx_json_time(in->start_ns));
    json_object_set_new(j, "finished_at", gx_json_time(in->end_ns));
    json_object_set_new(j, "queue_seconds", json_real((double)in->queue_ns / 1e9));
    json_object_set_new(j, "run_seconds", json_real((double)in->run_ns / 1e9));
    if (in->error_code && in->state != GX_JOB_SUCCEEDED)
        json_object_set_new(j, "error", json_pack("{s:s,s:s}", "code", gx_err_name(in->error_code), "message",
                                                  in->error[0] ? in->error : gx_strerror(in->error_code)));
    else
        json_object_set_new(j, "error", json_null());
    if (in->wait_reason) {
        char on[24];
        snprintf(on, sizeof on, "%llu", (unsigned long long)in->wait_on);
        json_object_set_new(j, "wait", json_pack("{s:s,s:I,s:o,s:s}", "reason", gx_wait_reason_name(in->wait_reason),
                                                 "position", (json_int_t)in->position, "waiting_on",
                                                 in->wait_on ? json_string(on) : json_null(), "message", in->reason));
    } else {
        json_object_set_new(j, "wait", json_null());
    }
    json_t *labels = json_object();
    for (int i = 0; e && i < in->nlabels; i++) {
        char k[64], v[256];
        if (!gx_job_label(e, in->id, i, k, sizeof k, v, sizeof v)) json_object_set_new(labels, k, json_string(v));
    }
    json_object_set_new(j, "labels", labels);
    json_object_set_new(j, "fallback", in->fallback[0] ? json_string(in->fallback) : json_null());
    return j;
}

/* The two writers agree on info (keys in the same order, values equal). */
static void same(gx_engine *e, const gx_job_info *in) {
    json_t *want = reference(e, in);
    size_t len = 0;
    char *text = gx_job_json_text(e, in, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    json_t *via = gx_job_json(e, in); /* the API's object is the text, parsed */
    assert_non_null(via);
    json_error_t je;
    json_t *got = json_loads(text, 0, &je);
    if (!got) fail_msg("not JSON (%s at %d): %s", je.text, je.position, text);
    char *w = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER);
    char *g = json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!json_equal(want, got) || strcmp(w, g)) fail_msg("differ:\n jansson: %s\n direct:  %s", w, g);
    free(w);
    free(g);
    assert_true(json_equal(via, got));
    json_decref(via);
    free(text);
    json_decref(want);
    json_decref(got);
}

static void shapes(void **st) {
    (void)st;
    gx_job_info in;
    memset(&in, 0, sizeof in);
    in.id = 42;
    snprintf(in.tenant_name, sizeof in.tenant_name, "team-a");
    snprintf(in.kernel, sizeof in.kernel, "saxpy@1");
    in.state = GX_JOB_QUEUED;
    in.device = -1;
    in.max_attempts = 3;
    in.submit_ns = 1795423817596863732LL;
    in.queue_ns = 1234567;
    in.wait_reason = 1;
    in.position = 7;
    snprintf(in.reason, sizeof in.reason, "waiting for \"cuda:0\"\\ (7 ahead)\n\ttab");
    same(NULL, &in);
    in.wait_on = 41;
    same(NULL, &in);
    /* running on a device */
    in.wait_reason = 0;
    in.state = GX_JOB_RUNNING;
    in.device = 0;
    snprintf(in.device_name, sizeof in.device_name, "cuda:0");
    in.attempts = 1;
    in.start_ns = in.submit_ns + 1000;
    in.run_ns = 3;
    same(NULL, &in);
    /* failed, with a message that needs escaping, UTF-8 and a bad byte */
    in.state = GX_JOB_FAILED;
    in.end_ns = in.start_ns + 5000000000LL;
    in.run_ns = 5000000000LL;
    in.queue_ns = 0;
    in.error_code = GX_EKERNEL;
    snprintf(in.error, sizeof in.error, "kernel said \"no\" \x01 caf\xc3\xa9 end");
    same(NULL, &in);
    /* a message cut inside a UTF-8 character: jansson's json_pack dropped
     * the whole error member; the text keeps it with U+FFFD */
    snprintf(in.error, sizeof in.error, "cut \xc3");
    size_t len;
    char *t = gx_job_json_text(NULL, &in, &len);
    assert_non_null(strstr(t, "\"error\":{\"code\":\"GX_EKERNEL\",\"message\":\"cut \\ufffd\"}"));
    json_t *j = gx_job_json(NULL, &in);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "cut \xef\xbf\xbd");
    json_decref(j);
    free(t);
    in.error[0] = 0; /* the code's own text */
    same(NULL, &in);
    /* succeeded after a fallback, error code ignored */
    in.state = GX_JOB_SUCCEEDED;
    snprintf(in.fallback, sizeof in.fallback, "no healthy GPU: cuda:0 circuit open");
    same(NULL, &in);
    in.priority = -5;
    in.queue_ns = 1; /* 1e-09 */
    same(NULL, &in);
}

static void labels_from_the_engine(void **st) {
    (void)st;
    gx_engine_opts o;
    gx_engine_opts_init(&o);
    o.cpu_workers = 1;
    gx_engine *e = NULL;
    gx_error err;
    TU_OK(gx_engine_create(&o, &e, &err), err);
    gx_label lab[2] = {{.key = "team", .value = "vision \"v2\""}, {.key = "run", .value = "\xe2\x82\xac 3"}};
    gx_job_spec s;
    gx_job_spec_init(&s);
    s.kernel = "spin";
    s.labels = lab;
    s.nlabels = 2;
    gx_job_id id;
    TU_OK(gx_submit(e, &s, &id, NULL, &err), err);
    gx_job_info in;
    TU_OK(gx_job_get(e, id, &in, &err), err);
    assert_int_equal(in.nlabels, 2);
    same(e, &in);
    assert_int_equal(gx_engine_drain(e, 5000), 0);
    TU_OK(gx_job_get(e, id, &in, &err), err);
    same(e, &in);
    gx_engine_destroy(e);
}

/* gx_time_text against gmtime_r + strftime + the fraction, for every
 * precision, at the edges (epoch, before it, leap days, a century, the
 * ends of int64 nanoseconds: 1677 and 2262) and at 200,000 random instants
 * between them. */
static void time_text_matches_libc(void **st) {
    (void)st;
    const int64_t S = 1000000000;
    int64_t edges[] = {0, 1, -1, 999999999, -999999999, -S, 86399 * S + 999999999, 951782400LL * S /* 2000-02-29 */,
                       4107456000LL * S /* 2100-03-01 */, 1798761599LL * S + 123456789 /* 2026-12-31T23:59:59 */,
                       INT64_MIN, INT64_MAX, -5000000000LL * S /* 1811 */};
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 200000 + (int)(sizeof edges / sizeof *edges); i++) {
        int64_t ns;
        if (i < (int)(sizeof edges / sizeof *edges)) {
            ns = edges[i];
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ns = ((int64_t)(x % 18400000000ULL) - 9200000000LL) * S + (int64_t)(x >> 34) % S;
        }
        int64_t sec = ns / S, frac = ns % S;
        if (frac < 0) frac += S, sec -= 1;
        time_t t = (time_t)sec;
        struct tm tm;
        assert_non_null(gmtime_r(&t, &tm));
        char want[64], got[40];
        int n = snprintf(want, 32, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                         tm.tm_hour, tm.tm_min, tm.tm_sec);
        int digits = i % 10;
        if (digits) {
            long f = (long)frac;
            for (int k = digits; k < 9; k++) f /= 10;
            n += snprintf(want + n, 32, ".%0*ldZ", digits, f);
        } else {
            n += snprintf(want + n, 32, "Z");
        }
        size_t len = gx_time_text(ns, digits, got);
        if (len != (size_t)n || strcmp(got, want)) fail_msg("%lld ns, %d digits: %s, want %s", (long long)ns, digits, got, want);
    }
}

/* Integers as printf writes them; reals as jansson does (exponents
 * without '+' or leading zeros). */
static void numbers_match_printf(void **st) {
    (void)st;
    int64_t v[] = {0, 1, -1, 9, 10, -10, 123456789, INT64_MAX, INT64_MIN, INT64_MIN + 1, 1000000000000000000LL};
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        int64_t n = i < (int)(sizeof v / sizeof *v) ? v[i] : (int64_t)(x ^= x << 13, x ^= x >> 7, x ^= x << 17) >> (i % 60);
        gx_jbuf b = {0};
        assert_int_equal(gx_jbuf_int(&b, n), 0);
        char want[32];
        snprintf(want, sizeof want, "%lld", (long long)n);
        assert_string_equal(b.p, want);
        free(b.p);
    }
    double r[] = {0.0, -0.0, 0.25, 1e-9, 3.0, 1e20, 1.5e300, 2.5e-300, -7e-5};
    const char *rw[] = {"0.0", "-0.0", "0.25", "1.0000000000000001e-9", "3.0", "1e20", NULL, NULL, NULL};
    for (int i = 0; i < 9; i++) {
        gx_jbuf b = {0};
        assert_int_equal(gx_jbuf_real(&b, r[i]), 0);
        if (rw[i]) assert_string_equal(b.p, rw[i]);
        json_t *j = json_real(r[i]);
        char *js = json_dumps(j, JSON_ENCODE_ANY);
        assert_string_equal(b.p, js);
        free(js);
        json_decref(j);
        free(b.p);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shapes),
        cmocka_unit_test(time_text_matches_libc),
        cmocka_unit_test(numbers_match_printf),
        cmocka_unit_test(labels_from_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
