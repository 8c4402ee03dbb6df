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

#include <float.h>
#include <math.h>
#include <time.h>

#include "gexec/gexec_errclass.h"

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
        int est = in->wait_reason == GX_WAIT_QUEUE && in->start_in_s >= 0;
        json_object_set_new(j, "wait",
                            json_pack("{s:s,s:I,s:o,s:o,s:s}", "reason", gx_wait_reason_name(in->wait_reason), "position",
                                      (json_int_t)in->position, "waiting_on", in->wait_on ? json_string(on) : json_null(),
                                      "estimated_start_s", est ? json_real(in->start_in_s) : json_null(), "message",
                                      in->reason));
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
    char *text = gx_job_json_text(e, in, &len, NULL);
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
    char *t = gx_job_json_text(NULL, &in, &len, NULL);
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
    /* forgotten after the snapshot: no object without its labels (a
     * cancel's answer read "labels":{}); the caller is told to go to the
     * store */
    assert_int_equal(gx_job_forget(e, id), 0);
    size_t len = 0;
    int gone = 0;
    assert_null(gx_job_json_text(e, &in, &len, &gone));
    assert_int_equal(gone, 1);
    gx_engine_destroy(e);
}

/* A stored job is written by the job writer: labels from the store's text
 * (strings only), seconds as exact decimals (jansson wrote 37.111670865 as
 * 37.111670865000001), the fallback note, the same members in the same
 * order as a live job's. */
static void stored_job_text(void **st) {
    (void)st;
    const int64_t sub = 1795423817000000000LL;
    gx_store_job sj = {.id = 9, .tenant = "team-a", .kernel = "spin@1", .spec_json = "{\"kernel\":\"spin\"}",
                       .state = GX_JOB_SUCCEEDED, .attempt = 1, .device = -1, .submit_ns = sub,
                       .start_ns = sub + 37111670865LL, .end_ns = sub + 37111670865LL + 61201,
                       .error = "fallback: no healthy GPU", .labels_json = "{\"team\":\"vision \\\"v2\\\"\",\"n\":3}"};
    size_t len = 0;
    char *t = gx_store_job_text(NULL, &sj, &len);
    assert_non_null(t);
    assert_int_equal(strlen(t), len);
    if (!strstr(t, "\"queue_seconds\":37.111670865,\"run_seconds\":0.000061201,") ||
        !strstr(t, "\"labels\":{\"team\":\"vision \\\"v2\\\"\"},\"fallback\":\"no healthy GPU\"}"))
        fail_msg("stored job: %s", t);
    json_t *j = json_loads(t, 0, NULL);
    assert_non_null(j);
    const char *order[] = {"id", "tenant", "kernel", "state", "priority", "attempts", "max_attempts", "device",
                           "submitted_at", "started_at", "finished_at", "queue_seconds", "run_seconds", "error", "wait",
                           "labels", "fallback"};
    assert_int_equal(json_object_size(j), sizeof order / sizeof *order);
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) assert_non_null(json_object_get(j, order[i]));
    json_decref(j);
    free(t);
    sj.labels_json = NULL; /* none stored */
    t = gx_store_job_text(NULL, &sj, &len);
    assert_non_null(strstr(t, "\"labels\":{},"));
    free(t);
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
    /* seconds from nanoseconds: exact, shortest, and the double ns / 1e9 */
    int64_t ns[] = {0, 1, 110, 596208, 1000000000, 2500000000, -7000, 999999999, INT64_MAX};
    const char *nw[] = {"0.0", "0.000000001", "0.00000011", "0.000596208", "1.0", "2.5", "-0.000007", "0.999999999",
                        "9223372036.854775807"};
    for (int i = 0; i < 20000; i++) {
        int64_t n = i < 9 ? ns[i] : (int64_t)((x ^= x << 13, x ^= x >> 7, x ^= x << 17) >> (i % 63));
        gx_jbuf b = {0};
        assert_int_equal(gx_jbuf_secs(&b, n), 0);
        if (i < 9) assert_string_equal(b.p, nw[i]);
        int exact = n <= (1LL << 53) && n >= -(1LL << 53); /* past that (104 days) the decimal is nearer */
        if (exact) assert_true(strtod(b.p, NULL) == (double)n / 1e9);
        json_error_t je;
        json_t *j = json_loads(b.p, JSON_DECODE_ANY, &je);
        assert_true(json_is_real(j));
        assert_true(json_real_value(j) == strtod(b.p, NULL));
        json_decref(j);
        free(b.p);
    }
}

/* ---- inline arrays ---------------------------------------------------------- */

/* Decode a job body with one inline input "x"; returns the code, and the
 * input in *x (a reference the caller drops) when it decoded. */
static int decode_x(const char *body, gx_array **x, gx_error *err) {
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    gx_jobreq r;
    gx_error_clear(err);
    int rc = gx_jobreq_decode(j, "default", NULL, NULL, 0, 0, NULL, &r, err);
    json_decref(j);
    if (rc) return rc;
    assert_int_equal(r.spec.ninputs, 1);
    *x = gx_array_ref(r.inputs[0].array);
    gx_jobreq_free(&r);
    return 0;
}

/* gx_array_json(x) as compact text; the caller frees it. */
static char *array_text(const gx_array *x) {
    json_t *j = gx_array_json(x);
    char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return t;
}

/* Integers go in and come out exactly: values past 2^53 used to round
 * through double, INT64_MAX was refused as "9.22337e+18 is outside the
 * range of i64", and on the way out it became INT64_MIN. */
static void integers_exact(void **st) {
    (void)st;
    static const struct {
        const char *in, *out; /* out NULL: the body is refused */
    } cases[] = {
        {"{\"dtype\":\"i64\",\"data\":[9007199254740993,0,-9007199254740993]}",
         "{\"dtype\":\"i64\",\"shape\":[3],\"data\":[9007199254740993,0,-9007199254740993]}"},
        {"{\"dtype\":\"i64\",\"data\":[9223372036854775807,-9223372036854775808]}",
         "{\"dtype\":\"i64\",\"shape\":[2],\"data\":[9223372036854775807,-9223372036854775808]}"},
        {"{\"dtype\":\"u64\",\"data\":[9223372036854775807,\"18446744073709551615\",\"9223372036854775808\"]}",
         "{\"dtype\":\"u64\",\"shape\":[3],\"data\":[9223372036854775807,\"18446744073709551615\",\"9223372036854775808\"]}"},
        {"{\"dtype\":\"i32\",\"data\":[2147483647,-2147483648,\"-7\",1e3]}",
         "{\"dtype\":\"i32\",\"shape\":[4],\"data\":[2147483647,-2147483648,-7,1000]}"},
        {"{\"dtype\":\"u8\",\"data\":[255,0,-0.0]}", "{\"dtype\":\"u8\",\"shape\":[3],\"data\":[255,0,0]}"},
        {"{\"dtype\":\"bool\",\"data\":[true,0,1]}", "{\"dtype\":\"bool\",\"shape\":[3],\"data\":[1,0,1]}"},
        {"{\"dtype\":\"u64\",\"data\":[-1]}", NULL},
        {"{\"dtype\":\"u64\",\"data\":[\"18446744073709551616\"]}", NULL},
        {"{\"dtype\":\"i64\",\"data\":[\"9223372036854775808\"]}", NULL},
        {"{\"dtype\":\"i64\",\"data\":[\"12a\"]}", NULL},
        {"{\"dtype\":\"i64\",\"data\":[9007199254740993.0]}", NULL}, /* a real past 2^53 */
        {"{\"dtype\":\"u32\",\"data\":[4294967296]}", NULL},
        {"{\"dtype\":\"i8\",\"data\":[-129]}", NULL},
        {"{\"dtype\":\"bool\",\"data\":[2]}", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char body[512];
        snprintf(body, sizeof body, "{\"kernel\":\"reduce_sum\",\"inputs\":{\"x\":%s}}", cases[c].in);
        gx_array *x = NULL;
        gx_error err;
        int rc = decode_x(body, &x, &err);
        if (!cases[c].out) {
            if (rc != GX_EINVAL) fail_msg("case %zu: accepted %s", c, cases[c].in);
            assert_string_equal(err.field, "inputs.x.data[0]");
            continue;
        }
        if (rc) fail_msg("case %zu: %s", c, err.message);
        char *t = array_text(x);
        if (strcmp(t, cases[c].out)) fail_msg("case %zu:\n want %s\n got  %s", c, cases[c].out, t);
        /* what gx_array_json writes, the decoder takes back unchanged */
        gx_array *y = NULL;
        snprintf(body, sizeof body, "{\"kernel\":\"reduce_sum\",\"inputs\":{\"x\":%s}}", t);
        assert_int_equal(decode_x(body, &y, &err), 0);
        assert_int_equal(y->dtype, x->dtype);
        assert_memory_equal(y->data, x->data, x->nbytes);
        free(t);
        gx_array_unref(x);
        gx_array_unref(y);
    }
    gx_array *x = NULL;
    gx_error err;
    assert_int_equal(decode_x("{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"u8\",\"data\":[1,256]}}}", &x, &err),
                     GX_EINVAL);
    assert_string_equal(err.message, "inputs.x.data[1]: 256 is outside the range of u8 (0..255)");
}

/* gx_array_json(a) is want; drops the reference to a. */
static void expect_json(gx_array *a, const char *want) {
    char *t = array_text(a);
    if (strcmp(t, want)) fail_msg("\n want %s\n got  %s", want, t);
    free(t);
    gx_array_unref(a);
}

/* Outputs at the ends of the i64 and u64 ranges come out exactly (the
 * cast of a double past INT64_MAX was also undefined behaviour). */
static void integer_outputs_exact(void **st) {
    (void)st;
    gx_array *a;
    assert_int_equal(gx_array_new1(GX_U64, 3, &a, NULL), 0);
    gx_array_set_u64(a, 0, UINT64_MAX);
    gx_array_set_u64(a, 1, (uint64_t)1 << 63);
    gx_array_set_u64(a, 2, ((uint64_t)1 << 53) + 1);
    expect_json(a, "{\"dtype\":\"u64\",\"shape\":[3],\"data\":[\"18446744073709551615\",\"9223372036854775808\","
                   "9007199254740993]}");
    assert_int_equal(gx_array_new1(GX_I64, 2, &a, NULL), 0);
    gx_array_set_i64(a, 0, INT64_MAX);
    gx_array_set_i64(a, 1, INT64_MIN);
    expect_json(a, "{\"dtype\":\"i64\",\"shape\":[2],\"data\":[9223372036854775807,-9223372036854775808]}");
    /* saturating stores into narrower dtypes */
    assert_int_equal(gx_array_new1(GX_I8, 4, &a, NULL), 0);
    gx_array_set_i64(a, 0, -1000);
    gx_array_set_u64(a, 1, UINT64_MAX);
    gx_array_set_f64(a, 2, -3.7);
    gx_array_set_i64(a, 3, -5);
    expect_json(a, "{\"dtype\":\"i8\",\"shape\":[4],\"data\":[-128,127,-3,-5]}");
}

/* f16 outputs come out as their values (they were all 0, read as an
 * integer dtype with no f16 case), non-finite ones as "NaN", "Infinity"
 * and "-Infinity" like f32/f64. */
static void f16_outputs(void **st) {
    (void)st;
    static const uint16_t bits[] = {0x3c00, 0xc000, 0x3555, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00};
    gx_array *a;
    assert_int_equal(gx_array_new1(GX_F16, 10, &a, NULL), 0);
    memcpy(a->data, bits, sizeof bits);
    gx_array_ref(a);
    expect_json(a, "{\"dtype\":\"f16\",\"shape\":[10],\"data\":[1.0,-2.0,0.333251953125,65504.0,"
                   "5.9604644775390625e-8,6.0975551605224609e-5,-0.0,\"Infinity\",\"-Infinity\",\"NaN\"]}");
    gx_array_set_f64(a, 0, 0.1); /* and go in rounded, not as 0 */
    assert_int_equal(((uint16_t *)a->data)[0], 0x2e66);
    assert_true(gx_array_get_f64(a, 0) == 0.0999755859375);
    gx_array_unref(a);
    /* every half survives the trip through double (NaN as the quiet NaN) */
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t back = gx_f64_to_f16(gx_f16_to_f64((uint16_t)h));
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (back != (nan ? (h & 0x8000) | 0x7e00 : h)) fail_msg("0x%04x came back as 0x%04x", h, back);
    }
    /* rounding to nearest even, at the subnormal and overflow ends too */
    assert_int_equal(gx_f64_to_f16(1 + 0x1p-11), 0x3c00);             /* tie, down to even */
    assert_int_equal(gx_f64_to_f16(1 + 3 * 0x1p-11), 0x3c02);         /* tie, up to even */
    assert_int_equal(gx_f64_to_f16(1 + 0x1p-11 + 0x1p-40), 0x3c01);   /* just past the tie */
    assert_int_equal(gx_f64_to_f16(0x1p-25), 0x0000);                 /* half the smallest: even */
    assert_int_equal(gx_f64_to_f16(0x1p-25 + 0x1p-60), 0x0001);
    assert_int_equal(gx_f64_to_f16(0x1p-14 - 0x1p-25), 0x0400);       /* up into the normals */
    assert_int_equal(gx_f64_to_f16(65519.99), 0x7bff);
    assert_int_equal(gx_f64_to_f16(65520), 0x7c00);
    assert_int_equal(gx_f64_to_f16(-1e300), 0xfc00);
    /* the f32 and f64 outputs write non-finite values the same way */
    assert_int_equal(gx_array_new1(GX_F32, 2, &a, NULL), 0);
    gx_array_set_f64(a, 0, INFINITY);
    gx_array_set_f64(a, 1, NAN);
    expect_json(a, "{\"dtype\":\"f32\",\"shape\":[2],\"data\":[\"Infinity\",\"NaN\"]}");
}

/* f32 rounds to nearest at the top of its range too: numpy's float32
 * maximum as printed (3.4028235e38, a little past FLT_MAX) is FLT_MAX,
 * not infinity (it used to be refused as too big); the halfway point and
 * past it are infinity. */
static void f32_rounds_at_max(void **st) {
    (void)st;
    gx_array *a;
    assert_int_equal(gx_array_new1(GX_F32, 6, &a, NULL), 0);
    double v[6] = {3.4028235e38, -3.4028235e38, 0x1.fffffefp+127, 0x1.ffffffp+127, -0x1.ffffffp+127, 1e39};
    for (int i = 0; i < 6; i++) gx_array_set_f64(a, i, v[i]);
    const float *f = a->data;
    assert_true(f[0] == FLT_MAX && f[1] == -FLT_MAX && f[2] == FLT_MAX);
    assert_true(isinf(f[3]) && f[3] > 0 && isinf(f[4]) && f[4] < 0 && isinf(f[5]));
    gx_array_unref(a);
}

/* NaN and the infinities came out as null, all three alike, and a client
 * could neither tell them apart nor (ours) read the result. They go as
 * "NaN", "Infinity" and "-Infinity" now, and inline inputs of every float
 * dtype take those strings back; nothing else that is not a number. */
static void nonfinite_in_and_out(void **st) {
    (void)st;
    static const char *const dts[] = {"f64", "f32", "f16"};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"kernel\":\"reduce_sum\",\"inputs\":{\"x\":{\"dtype\":\"%s\","
                 "\"data\":[\"NaN\",\"Infinity\",\"-Infinity\",1.5,-0.0]}}}",
                 dts[d]);
        gx_array *x = NULL;
        gx_error err;
        if (decode_x(body, &x, &err)) fail_msg("%s: %s", dts[d], err.message);
        assert_true(isnan(gx_array_get_f64(x, 0)));
        assert_true(gx_array_get_f64(x, 1) == INFINITY);
        assert_true(gx_array_get_f64(x, 2) == -INFINITY);
        assert_true(gx_array_get_f64(x, 3) == 1.5);
        assert_true(signbit(gx_array_get_f64(x, 4)));
        char want[160];
        snprintf(want, sizeof want,
                 "{\"dtype\":\"%s\",\"shape\":[5],\"data\":[\"NaN\",\"Infinity\",\"-Infinity\",1.5,-0.0]}",
                 dts[d]);
        expect_json(x, want); /* and out again as they came in */
    }
    /* anything else that is not a number is refused, naming the element */
    static const char *const bad[] = {"null", "\"nan\"", "\"inf\"", "\"+Infinity\"", "\"NaN \"", "\"1.5\"", "true",
                                      "[1]"};
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            char body[256];
            snprintf(body, sizeof body, "{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"%s\",\"data\":[1,%s]}}}",
                     dts[d], bad[b]);
            gx_array *x = NULL;
            gx_error err;
            if (decode_x(body, &x, &err) != GX_EINVAL) fail_msg("%s: %s accepted", dts[d], bad[b]);
            assert_string_equal(err.field, "inputs.x.data[1]");
        }
    gx_array *x = NULL;
    gx_error err;
    assert_int_equal(decode_x("{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"f32\",\"data\":[\"inf\"]}}}", &x, &err),
                     GX_EINVAL);
    assert_string_equal(err.message,
                        "inputs.x.data[0]: 'inf' is not a number (the strings taken are \"NaN\", \"Infinity\" and "
                        "\"-Infinity\")");
}

/* Inline f16 was refused as "unknown dtype 'f16'" although the CLI and its
 * docs offer it. It is decoded like f32 now: rounded once, to nearest even
 * (straight from the double, not through f32), and a finite value that
 * would round to infinity is refused like 1e39 in f32. */
static void f16_inline(void **st) {
    (void)st;
    gx_array *x = NULL;
    gx_error err;
    if (decode_x("{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"float16\",\"shape\":[2,3],"
                 "\"data\":[0.1,65519.99,5.960464477539063e-8,1.00048828125,1.00048828125000001,-2]}}}",
                 &x, &err))
        fail_msg("%s", err.message);
    assert_int_equal(x->dtype, GX_F16);
    assert_int_equal(x->ndim, 2);
    static const uint16_t want[] = {0x2e66, 0x7bff, 0x0001, 0x3c00, 0x3c00, 0xc000};
    assert_memory_equal(x->data, want, sizeof want);
    /* 1 + 2^-11 + 2^-24 is just past the tie in double, but through f32
     * it would round to the tie and then down to 1: once, straight */
    gx_array_unref(x);
    assert_int_equal(decode_x("{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"f16\","
                              "\"data\":[1.0004883408546448]}}}",
                              &x, &err),
                     0);
    assert_int_equal(((uint16_t *)x->data)[0], 0x3c01);
    gx_array_unref(x);
    static const char *const big[] = {"65520", "-65520", "70000", "1e300"};
    for (size_t b = 0; b < sizeof big / sizeof big[0]; b++) {
        char body[160];
        snprintf(body, sizeof body, "{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"f16\",\"data\":[%s]}}}", big[b]);
        if (decode_x(body, &x, &err) != GX_EINVAL) fail_msg("%s accepted", big[b]);
        assert_string_equal(err.field, "inputs.x.data[0]");
    }
    assert_int_equal(decode_x("{\"kernel\":\"k\",\"inputs\":{\"x\":{\"dtype\":\"f16\",\"data\":[70000]}}}", &x, &err),
                     GX_EINVAL);
    assert_string_equal(err.message, "inputs.x.data[0]: 70000 does not fit in f16 (the largest finite value is 65504)");
}

/* More than 64 args or 1024 inputs is a bad value like more than 1024
 * depends_on or 32 labels: 400 GX_EINVAL naming the field (a 429 would
 * tell clients to retry a request that can never succeed). */
static void count_limits(void **st) {
    (void)st;
    for (int which = 0; which < 2; which++) {
        int n = which ? 1025 : 65;
        json_t *o = json_object();
        for (int i = 0; i < n; i++) {
            char k[16];
            snprintf(k, sizeof k, "v%d", i);
            json_object_set_new(o, k, which ? json_pack("{s:s,s:[i]}", "dtype", "i32", "data", 1) : json_integer(1));
        }
        json_t *j = json_pack("{s:s,s:o}", "kernel", "reduce_sum", which ? "inputs" : "args", o);
        gx_jobreq r;
        gx_error err;
        gx_error_clear(&err);
        assert_int_equal(gx_jobreq_decode(j, "default", NULL, NULL, 0, 0, NULL, &r, &err), GX_EINVAL);
        assert_string_equal(err.field, which ? "inputs" : "args");
        assert_int_equal(gx_errclass_of(err.code).http_status, 400);
        json_decref(j);
    }
}

/* A stored job re-queued past its spec's budget reports max_attempts no
 * smaller than its attempts (the answer to an idempotent repeat read the
 * spec's 1 for a job on its 3rd attempt). */
static void stored_max_attempts(void **st) {
    (void)st;
    gx_store_job sj = {.id = 7, .tenant = "t", .kernel = "spin@1", .spec_json = "{\"kernel\":\"spin\",\"max_attempts\":1}",
                       .state = GX_JOB_SUCCEEDED, .attempt = 3, .device = -1};
    json_t *j = gx_store_job_json(NULL, &sj);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "max_attempts")), 3);
    json_decref(j);
    sj.attempt = 1;
    j = gx_store_job_json(NULL, &sj);
    assert_int_equal(json_integer_value(json_object_get(j, "max_attempts")), 1);
    json_decref(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shapes),
        cmocka_unit_test(time_text_matches_libc),
        cmocka_unit_test(numbers_match_printf),
        cmocka_unit_test(labels_from_the_engine),
        cmocka_unit_test(integers_exact),
        cmocka_unit_test(integer_outputs_exact),
        cmocka_unit_test(f16_outputs),
        cmocka_unit_test(f32_rounds_at_max),
        cmocka_unit_test(nonfinite_in_and_out),
        cmocka_unit_test(f16_inline),
        cmocka_unit_test(count_limits),
        cmocka_unit_test(stored_max_attempts),
        cmocka_unit_test(stored_job_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
