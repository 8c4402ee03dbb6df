/*
 * test_client.c - libgexec-client without a daemon: the parsers and the
 * job spec builder, then every call against a scripted HTTP server
 * (fakehttp.c) that checks what goes over the wire and feeds back answers
 * that a daemon may give, errors included. Tests against a real gexecd are
 * in tests/integration/.
 */
#include <fcntl.h>
#include <math.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "testutil.h"
#include "gexec/gexec_client.h"

#include "fakehttp.c"

/* ---- parsers ------------------------------------------------------------------- */

static gx_array *inline_ok(const char *text) {
    gx_array *a = NULL;
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_client_parse_inline(text, &a, &err);
    if (rc) fail_msg("'%s': %s (pos %ld)", text, err.message, err.pos);
    return a;
}

static void inline_bad(const char *text, long pos) {
    gx_array *a = NULL;
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_client_parse_inline(text, &a, &err);
    if (rc != GX_EINVAL && rc != GX_EOVERFLOW) fail_msg("'%s' parsed (rc %d)", text, rc);
    assert_null(a);
    assert_true(err.message[0]);
    if (pos >= 0 && err.pos != pos) fail_msg("'%s': pos %ld, want %ld (%s)", text, err.pos, pos, err.message);
}

static void test_parse_inline(void **state) {
    gx_array *a = inline_ok("f32:1,2,3.5");
    assert_int_equal(a->dtype, GX_F32);
    assert_int_equal(a->ndim, 1);
    assert_int_equal(a->shape[0], 3);
    assert_true(((float *)a->data)[2] == 3.5f);
    gx_array_unref(a);

    a = inline_ok("@inline:i64[2,2]: 1, -2 ,010, 9223372036854775807");
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[1], 2);
    assert_int_equal(((int64_t *)a->data)[1], -2);
    assert_int_equal(((int64_t *)a->data)[2], 10); /* decimal, not octal 8 */
    assert_true(((int64_t *)a->data)[3] == INT64_MAX);
    gx_array_unref(a);

    a = inline_ok("u64:18446744073709551615,0");
    assert_true(((uint64_t *)a->data)[0] == UINT64_MAX);
    gx_array_unref(a);

    /* every integer is decimal: a leading zero is not octal (08 and 09
     * were refused, 010 was 8), and 0x is refused rather than hex */
    a = inline_ok("i64:08,-09,010,007");
    assert_true(((int64_t *)a->data)[0] == 8 && ((int64_t *)a->data)[1] == -9);
    assert_true(((int64_t *)a->data)[2] == 10 && ((int64_t *)a->data)[3] == 7);
    gx_array_unref(a);
    a = inline_ok("u8:010,+0255");
    assert_memory_equal(a->data, "\x0a\xff", 2);
    gx_array_unref(a);

    a = inline_ok("bool:true,false,1,0");
    assert_memory_equal(a->data, "\1\0\1\0", 4);
    gx_array_unref(a);

    a = inline_ok("f32[0]:");
    assert_int_equal(a->count, 0);
    gx_array_unref(a);
    a = inline_ok("f64:");
    assert_int_equal(a->count, 0);
    gx_array_unref(a);

    a = inline_ok("f64[]:2.5e-3"); /* a scalar */
    assert_int_equal(a->ndim, 0);
    assert_true(((double *)a->data)[0] == 2.5e-3);
    gx_array_unref(a);

    a = inline_ok("i8:-128,127");
    assert_int_equal(((int8_t *)a->data)[0], -128);
    gx_array_unref(a);

    a = inline_ok("f16:1.5,-2,65504");
    assert_int_equal(((uint16_t *)a->data)[0], 0x3e00);
    assert_int_equal(((uint16_t *)a->data)[1], 0xc000);
    assert_int_equal(((uint16_t *)a->data)[2], 0x7bff);
    gx_array_unref(a);

    a = inline_ok("float32:nan,inf,-inf");
    assert_true(isnan(((float *)a->data)[0]));
    assert_true(isinf(((float *)a->data)[1]));
    gx_array_unref(a);
    a = inline_ok("f16:NaN,-Infinity,65519,0.1");
    assert_true(isnan(gx_array_get_f64(a, 0)));
    assert_true(gx_array_get_f64(a, 1) == -INFINITY);
    assert_int_equal(((uint16_t *)a->data)[2], 0x7bff); /* rounds down to the largest half */
    assert_int_equal(((uint16_t *)a->data)[3], 0x2e66);
    gx_array_unref(a);

    /* a finite value that the dtype cannot hold is refused, not turned
     * into infinity (now that infinity can travel inline) */
    gx_array *none = NULL;
    gx_error err;
    assert_int_equal(gx_client_parse_inline("f16:1,70000", &none, &err), GX_EINVAL);
    assert_string_equal(err.message, "70000 does not fit in f16 (the largest finite value is 65504)");
    assert_int_equal(err.pos, 6);
    inline_bad("f16:65520", 4);
    inline_bad("f32:1e39", 4);
    inline_bad("f64:1e400", 4);

    inline_bad("f32:0x10", 4); /* decimal only: no hex, integer or float */
    inline_bad("f64:1,-0X1p3", 6);
    inline_bad("i64:0x10", 4);
    inline_bad("u8:0x1", 3);
    inline_bad("x32:1", 0);
    inline_bad("@inline:x32:1", 8);
    inline_bad("f32", 3);
    inline_bad(":1,2", 0);
    inline_bad("f32[2]:1", -1);
    inline_bad("f32[2,2]:1,2,3", -1);
    inline_bad("u8:256", 3);
    inline_bad("u8:1,-1", 5);
    inline_bad("i8:-129", 3);
    inline_bad("i32:2147483648", 4);
    inline_bad("bool:2", 5);
    inline_bad("bool:yes", 5);
    inline_bad("f32:1,,2", 6);
    inline_bad("f32:1,a", 6);
    inline_bad("f32:1,", 6);
    inline_bad("f32:1 2", 4);
    inline_bad("i32:1.5", 4);
    inline_bad("i32:0x", 4);
    inline_bad("f32[2,:1,2", 6);
    inline_bad("f32[-1]:", 4);
    inline_bad("f32[1,1,1,1,1,1,1,1,1]:1", -1);
    inline_bad("f32[4294967296,4294967296]:", -1);
    inline_bad("f32[100000000000]:1", -1); /* refused before allocating */
    assert_int_equal(gx_client_parse_inline(NULL, &none, NULL), GX_EINVAL);
}

static void test_parse_duration(void **state) {
    static const struct {
        const char *in;
        long ms;
    } ok[] = {{"30", 30000}, {"1.5s", 1500}, {"250ms", 250}, {"2m", 120000}, {"1h", 3600000},
              {"0", 0},      {"-1", -1},     {"inf", -1},    {"none", -1},   {"0.0005", 1}, {"0ms", 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long ms = 7;
        assert_int_equal(gx_client_parse_duration(ok[i].in, &ms, NULL), 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *bad[] = {"", "x", "5 s", "5sec", "-5", "1e300", " 5", "nan", "5d",
                                "0.0004", "0.4ms", "1e-9h"}; /* these rounded to 0: no limit */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long ms;
        gx_error err;
        if (gx_client_parse_duration(bad[i], &ms, &err) != GX_EINVAL) fail_msg("'%s' accepted", bad[i]);
    }
}

/* ---- job specs ------------------------------------------------------------------- */

static void assert_json_eq(const char *got, const char *want) {
    json_t *g = json_loads(got, 0, NULL), *w = json_loads(want, 0, NULL);
    assert_non_null(g);
    assert_non_null(w);
    if (!json_equal(g, w)) fail_msg("JSON differs:\n got  %s\n want %s", got, want);
    json_decref(g);
    json_decref(w);
}

static void test_jobspec(void **state) {
    gx_jobspec *s = NULL;
    gx_error err;
    gx_error_clear(&err);
    TU_OK(gx_jobspec_new("saxpy", &s, &err), err);
    static const char *args[] = {"i=2",    "f=2.5",   "b=true", "e=relu", "q='3'",  "z=",
                                 "n=-1e-3", "h=0x10", "o=010",  "inf=inf", "v=1.2.3", "dq=\"x\"",
                                 "s=-",    "p=+4",    "d=.5"};
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
        TU_OK(gx_jobspec_set_arg_text(s, args[i], &err), err);
    TU_OK(gx_jobspec_set_arg_double(s, "a", 2.0, &err), err);
    TU_OK(gx_jobspec_set_input_blob(s, "x", "sha256:ab", &err), err);
    gx_array *y = inline_ok("f32[2]:1,2");
    TU_OK(gx_jobspec_set_input_array(s, "y", y, &err), err);
    gx_array_unref(y);
    TU_OK(gx_jobspec_set_priority(s, -3, &err), err);
    TU_OK(gx_jobspec_set_device(s, "cpu", &err), err);
    TU_OK(gx_jobspec_set_timeout_ms(s, 1500, &err), err);
    TU_OK(gx_jobspec_set_queue_timeout_ms(s, 0, &err), err);
    TU_OK(gx_jobspec_set_max_attempts(s, 3, &err), err);
    TU_OK(gx_jobspec_add_dep(s, "41", &err), err);
    TU_OK(gx_jobspec_add_dep(s, "@0", &err), err);
    TU_OK(gx_jobspec_set_label_text(s, "team=vision", &err), err);
    TU_OK(gx_jobspec_set_label(s, "x", "a=b", &err), err);
    TU_OK(gx_jobspec_set_idempotency_key(s, "k1", &err), err);
    char *json = NULL;
    TU_OK(gx_jobspec_to_json(s, &json, &err), err);
    assert_json_eq(json,
                   "{\"kernel\":\"saxpy\",\"args\":{\"i\":2,\"f\":2.5,\"b\":true,\"e\":\"relu\","
                   "\"q\":\"3\",\"z\":\"\",\"n\":-0.001,\"h\":16,\"o\":10,\"inf\":\"inf\","
                   "\"v\":\"1.2.3\",\"dq\":\"x\",\"s\":\"-\",\"p\":4,\"d\":0.5,\"a\":2.0},"
                   "\"inputs\":{\"x\":{\"blob\":\"sha256:ab\"},\"y\":{\"dtype\":\"f32\",\"shape\":[2],"
                   "\"data\":[1.0,2.0]}},\"priority\":-3,\"device\":\"cpu\",\"timeout_ms\":1500,"
                   "\"queue_timeout_ms\":0,\"max_attempts\":3,\"depends_on\":[\"41\",\"@0\"],"
                   "\"labels\":{\"team\":\"vision\",\"x\":\"a=b\"},\"idempotency_key\":\"k1\"}");
    free(json);

    /* errors name the field */
    assert_int_equal(gx_jobspec_set_arg_text(s, "noeq", &err), GX_EINVAL);
    assert_string_equal(err.field, "args");
    assert_int_equal(gx_jobspec_set_arg_text(s, "=3", &err), GX_EINVAL);
    /* numbers that do not fit are refused here (they went as strings, or
     * as a float for an integer, and the server refused them or not) */
    static const char *const toobig[] = {"big=1e999", "big=-1e999", "big=1e-999", "big=99999999999999999999",
                                         "big=-9223372036854775809", "big=0x1ffffffffffffffff"};
    for (size_t i = 0; i < sizeof toobig / sizeof toobig[0]; i++) {
        if (gx_jobspec_set_arg_text(s, toobig[i], &err) != GX_EINVAL) fail_msg("'%s' accepted", toobig[i]);
        assert_string_equal(err.field, "args.big");
    }
    TU_OK(gx_jobspec_set_arg_text(s, "big=9223372036854775807", &err), err);
    TU_OK(gx_jobspec_set_arg_text(s, "big=1e308", &err), err);
    assert_int_equal(gx_jobspec_set_label_text(s, "x", &err), GX_EINVAL);
    assert_string_equal(err.field, "labels");
    assert_int_equal(gx_jobspec_set_kernel(s, "", &err), GX_EINVAL);
    assert_int_equal(gx_jobspec_set_arg_double(s, "a", NAN, &err), GX_EINVAL);
    gx_jobspec_free(s);

    /* NaN and infinities travel inline as the strings the server takes
     * ("input w: out of memory" for f16 before, a refusal for f32/f64) */
    TU_OK(gx_jobspec_new("sort", &s, &err), err);
    static const char *const nonfinite[] = {"f32:1,nan,-inf", "f64:1,nan,-inf", "f16:1,nan,-inf"};
    for (size_t i = 0; i < 3; i++) {
        gx_array *w = inline_ok(nonfinite[i]);
        TU_OK(gx_jobspec_set_input_array(s, "w", w, &err), err);
        gx_array_unref(w);
        TU_OK(gx_jobspec_to_json(s, &json, &err), err);
        char want[160];
        snprintf(want, sizeof want,
                 "{\"kernel\":\"sort\",\"inputs\":{\"w\":{\"dtype\":\"%.3s\",\"shape\":[3],"
                 "\"data\":[1.0,\"NaN\",\"-Infinity\"]}}}",
                 nonfinite[i]);
        assert_json_eq(json, want);
        free(json);
    }
    gx_jobspec_free(s);

    /* from JSON: flags override, other keys stay */
    TU_OK(gx_jobspec_from_json("{\"kernel\":\"spin\",\"args\":{\"us\":5},\"x_extra\":[1]}", &s, &err), err);
    TU_OK(gx_jobspec_set_arg_text(s, "us=7", &err), err);
    TU_OK(gx_jobspec_to_json(s, &json, &err), err);
    assert_json_eq(json, "{\"kernel\":\"spin\",\"args\":{\"us\":7},\"x_extra\":[1]}");
    free(json);
    gx_jobspec_free(s);

    assert_int_equal(gx_jobspec_from_json("{\"kernel\": }", &s, &err), GX_EFORMAT);
    assert_true(err.pos >= 10 && err.pos <= 12);
    assert_null(s);
    assert_int_equal(gx_jobspec_from_json("[1]", &s, &err), GX_EINVAL);
    assert_int_equal(gx_jobspec_from_json("{\"a\":1,\"a\":2}", &s, &err), GX_EFORMAT);
    assert_int_equal(gx_jobspec_from_file("/nonexistent/spec.json", &s, &err), GX_EIO);
    TU_OK(gx_jobspec_new(NULL, &s, &err), err);
    assert_int_equal(gx_jobspec_to_json(s, &json, &err), GX_EINVAL);
    assert_string_equal(err.field, "kernel");
    gx_jobspec_free(s);
    gx_jobspec_free(NULL);
}

/* ---- handle ------------------------------------------------------------------------ */

static void test_client_new(void **state) {
    gx_client *c = NULL;
    gx_client_opts o;
    gx_error err;
    gx_client_opts_init(&o);
    unsetenv("GEXEC_SERVER");
    unsetenv("GEXEC_API_KEY");
    TU_OK(gx_client_new(NULL, &c, &err), err);
    assert_string_equal(gx_client_server(c), GX_CLIENT_DEFAULT_SERVER);
    assert_int_equal(gx_client_last_status(c), 0);
    gx_client_free(c);

    setenv("GEXEC_SERVER", "example.org:81/", 1);
    TU_OK(gx_client_new(&o, &c, &err), err);
    assert_string_equal(gx_client_server(c), "http://example.org:81");
    gx_client_free(c);
    unsetenv("GEXEC_SERVER");

    o.server = "https://h.example//";
    TU_OK(gx_client_new(&o, &c, &err), err);
    assert_string_equal(gx_client_server(c), "https://h.example");
    gx_client_free(c);

    /* ports: "http:/x" (host "http:", no port) and "h:-1" used to pass */
    static const char *bad[] = {"ftp://h", "http://", "http:///x", "  ", "http://a b", "http:/x", "http://h:-1",
                                "h:0", "h:65536", "h:80x", "http://[::1"};
    static const char *good[] = {"h:65535", "http://[::1]:8080", "http://[::1]", "https://h/prefix"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        o.server = good[i];
        TU_OK(gx_client_new(&o, &c, &err), err);
        gx_client_free(c);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.server = bad[i];
        c = (gx_client *)1;
        if (gx_client_new(&o, &c, &err) != GX_EINVAL) fail_msg("server '%s' accepted", bad[i]);
        assert_null(c);
        assert_string_equal(err.field, "server");
    }
    o.server = NULL;
    o.api_key = "two words";
    assert_int_equal(gx_client_new(&o, &c, &err), GX_EINVAL);
    o.api_key = NULL;
    o.timeout_ms = -5;
    assert_int_equal(gx_client_new(&o, &c, &err), GX_EINVAL);
    gx_client_free(NULL);
}

static void test_refused_connection(void **state) {
    /* a port nobody listens on: bind one, learn it, close it */
    fakehttp *f = fh_start();
    char url[64];
    snprintf(url, sizeof url, "%s", f->url);
    fh_stop(f);
    gx_client_opts o;
    gx_client_opts_init(&o);
    o.server = url;
    o.retries = 1;
    gx_client *c;
    gx_error err;
    TU_OK(gx_client_new(&o, &c, &err), err);
    gx_client_job j;
    char *raw = (char *)1;
    assert_int_equal(gx_client_get(c, "1", &j, &raw, &err), GX_EIO);
    assert_null(raw);
    assert_int_equal(gx_client_last_status(c), 0);
    assert_non_null(strstr(err.message, "cannot connect"));
    gx_client_free(c);
}

/* ---- against the scripted server ----------------------------------------------------- */

typedef struct env {
    fakehttp *f;
    gx_client *c;
} env;

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    e->f = fh_start();
    gx_client_opts o;
    gx_client_opts_init(&o);
    o.server = e->f->url;
    o.api_key = "sekrit";
    o.timeout_ms = 5000;
    gx_error err;
    TU_OK(gx_client_new(&o, &e->c, &err), err);
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    gx_client_free(e->c);
    fh_stop(e->f);
    free(e);
    return 0;
}

#define JOB_RUNNING                                                                         \
    "{\"id\":\"42\",\"tenant\":\"default\",\"kernel\":\"saxpy@1\",\"state\":\"running\","  \
    "\"priority\":3,\"attempts\":1,\"max_attempts\":2,\"device\":\"cpu\","                 \
    "\"submitted_at\":\"2026-11-23T03:40:00.123456Z\",\"started_at\":\"2026-11-23T03:40:01Z\"," \
    "\"finished_at\":null,\"queue_seconds\":0.5,\"run_seconds\":0.25,\"error\":null,"       \
    "\"wait\":null,\"labels\":{}}"

static void test_submit_and_get(void **state) {
    env *e = *state;
    gx_error err;
    fh_push(e->f, 202, NULL, JOB_RUNNING, 0, 0);
    fh_push(e->f, 200, NULL,
            "{\"id\":\"43\",\"state\":\"queued\",\"error\":null,\"wait\":{\"reason\":\"queue\","
            "\"position\":3,\"waiting_on\":null,\"message\":\"3 jobs ahead\"}}",
            0, 0);
    fh_push(e->f, 200, NULL,
            "{\"id\":44,\"state\":\"failed\",\"error\":{\"code\":\"GX_EKERNEL\",\"message\":\"boom\"},"
            "\"wait\":{\"reason\":\"dependency\",\"waiting_on\":\"41\"}}",
            0, 0);
    gx_client_job j;
    char *raw = NULL;
    TU_OK(gx_client_submit_json(e->c, "{\"kernel\":\"saxpy\"}", &j, &raw, &err), err);
    assert_int_equal(gx_client_last_status(e->c), 202);
    assert_true(j.created);
    assert_string_equal(j.id, "42");
    assert_string_equal(j.kernel, "saxpy@1");
    assert_int_equal(j.state, GX_JOB_RUNNING);
    assert_int_equal(j.priority, 3);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.max_attempts, 2);
    assert_string_equal(j.device, "cpu");
    assert_string_equal(j.finished_at, "");
    assert_string_equal(j.started_at, "2026-11-23T03:40:01Z");
    assert_true(j.queue_seconds == 0.5 && j.run_seconds == 0.25);
    assert_int_equal(j.error_code, 0);
    assert_int_equal(j.wait_position, -1);
    assert_false(gx_client_job_is_final(&j));
    assert_json_eq(raw, JOB_RUNNING);
    free(raw);
    const fh_req *q = fh_req_at(e->f, 0);
    assert_non_null(strstr(q->head, "POST /v1/jobs HTTP/1.1\r\n"));
    assert_non_null(strstr(q->head, "Authorization: Bearer sekrit\r\n"));
    assert_non_null(strstr(q->head, "Content-Type: application/json\r\n"));
    assert_string_equal(q->body, "{\"kernel\":\"saxpy\"}");

    TU_OK(gx_client_get(e->c, "43", &j, NULL, &err), err);
    assert_int_equal(j.state, GX_JOB_QUEUED);
    assert_string_equal(j.wait_reason, "queue");
    assert_int_equal(j.wait_position, 3);
    assert_string_equal(j.wait_message, "3 jobs ahead");
    assert_non_null(strstr(fh_req_at(e->f, 1)->head, "GET /v1/jobs/43 HTTP/1.1"));

    TU_OK(gx_client_get(e->c, "4/4", &j, NULL, &err), err); /* ids are escaped */
    assert_non_null(strstr(fh_req_at(e->f, 2)->head, "GET /v1/jobs/4%2F4 HTTP/1.1"));
    assert_string_equal(j.id, "44"); /* a numeric id is accepted too */
    assert_int_equal(j.state, GX_JOB_FAILED);
    assert_true(gx_client_job_is_final(&j));
    assert_int_equal(j.error_code, GX_EKERNEL);
    assert_string_equal(j.error_name, "GX_EKERNEL");
    assert_string_equal(j.error_message, "boom");
    assert_string_equal(j.waiting_on, "41");
    /* one kept-alive connection for all three */
    assert_int_equal(e->f->conns, 1);

    /* the builder form sends the same body */
    gx_jobspec *s;
    TU_OK(gx_jobspec_new("saxpy", &s, &err), err);
    fh_push(e->f, 200, NULL, JOB_RUNNING, 0, 0);
    TU_OK(gx_client_submit(e->c, s, &j, NULL, &err), err);
    assert_false(j.created); /* 200: an idempotent repeat */
    assert_string_equal(fh_req_at(e->f, 3)->body, "{\"kernel\":\"saxpy\"}");
    gx_jobspec_free(s);
}

/* Found by probing: "." went out as a path segment that libcurl drops
 * (GET /v1/jobs/ listed jobs, and a wait on it never ended); an answer that
 * is not a job is an error; a local error leaves status 0; a method with
 * CR/LF is refused; a NULL output name finds nothing. */
static void test_odd_calls(void **state) {
    env *e = *state;
    gx_error err;
    gx_client_job j;
    fh_push(e->f, 404, NULL, "{\"error\":{\"code\":\"GX_ENOTFOUND\",\"message\":\"no job '.'\"}}", 0, 0);
    assert_int_equal(gx_client_get(e->c, ".", &j, NULL, &err), GX_ENOTFOUND);
    assert_non_null(strstr(fh_req_at(e->f, 0)->head, "GET /v1/jobs/%2E HTTP/1.1"));
    fh_push(e->f, 200, NULL, "{\"jobs\":[],\"next_cursor\":null}", 0, 0);
    assert_int_equal(gx_client_get(e->c, "7", &j, NULL, &err), GX_EFORMAT);
    assert_int_equal(gx_client_last_status(e->c), 200);
    char *resp = NULL;
    int st = -1;
    assert_int_equal(gx_client_request(e->c, "GET", "healthz", NULL, 0, NULL, &st, &resp, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_client_last_status(e->c), 0);
    assert_int_equal(gx_client_request(e->c, "GET\r\nX: y", "/healthz", NULL, 0, NULL, &st, &resp, NULL, &err),
                     GX_EINVAL);
    assert_string_equal(err.field, "method");
    /* a NULL method is blamed on the method (it blamed the path) */
    assert_int_equal(gx_client_request(e->c, NULL, "/healthz", NULL, 0, NULL, &st, &resp, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "method");
    /* a job call refused before sending leaves no status of an earlier one */
    fh_push(e->f, 200, NULL, "{\"jobs\":[],\"next_cursor\":null}", 0, 0);
    assert_int_equal(gx_client_get(e->c, "7", &j, NULL, &err), GX_EFORMAT);
    assert_int_equal(gx_client_last_status(e->c), 200);
    assert_int_equal(gx_client_get(e->c, "", &j, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_client_last_status(e->c), 0);
    assert_null(gx_client_outputs_find(NULL, "x"));
    gx_client_outputs none = {0};
    assert_null(gx_client_outputs_find(&none, NULL));
}

static void test_errors(void **state) {
    env *e = *state;
    gx_error err;
    gx_client_job j;
    char *raw = NULL;
    fh_push(e->f, 400, NULL,
            "{\"error\":{\"code\":\"GX_EINVAL\",\"message\":\"a must be finite\",\"field\":\"args.a\"}}", 0, 0);
    assert_int_equal(gx_client_submit_json(e->c, "{}", &j, &raw, &err), GX_EINVAL);
    assert_int_equal(gx_client_last_status(e->c), 400);
    assert_string_equal(err.message, "a must be finite");
    assert_string_equal(err.field, "args.a");
    assert_non_null(raw); /* the error body, for --json */
    assert_non_null(strstr(raw, "finite"));
    free(raw);

    static const struct {
        int status;
        const char *body;
        int code;
        const char *msg;
    } cases[] = {
        {404, "", GX_ENOTFOUND, "HTTP 404"},
        {404, "{\"error\":{\"code\":\"GX_ENOTFOUND\",\"message\":\"no job 9\",\"field\":\"\"}}", GX_ENOTFOUND, "no job 9"},
        {409, "{\"error\":{\"code\":\"GX_ESTATE\",\"message\":\"job 9 is succeeded\"}}", GX_ESTATE, "succeeded"},
        {422, "{\"error\":{\"code\":\"GX_ENODEVICE\",\"message\":\"no gpu\",\"field\":\"device\"}}", GX_ENODEVICE, "no gpu"},
        {422, "{\"error\":{\"code\":\"GX_EFUTURE\",\"message\":\"new code\"}}", GX_EINVAL, "new code"},
        {413, "", GX_ELIMIT, "413"},
        {415, "", GX_EUNSUPPORTED, "415"},
        {401, "", GX_EAUTH, "401"},
        {403, "", GX_EPERM, "403"},
        {429, "", GX_EBUSY, "busy"},
        {503, "", GX_EBUSY, "busy"},
        {500, "oops", GX_EIO, "HTTP 500"},
        {502, "{\"error\":\"gateway\"}", GX_EIO, "gateway"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fh_push(e->f, cases[i].status, NULL, cases[i].body, 0, 0);
        gx_error_clear(&err);
        int rc = gx_client_cancel(e->c, "9", &j, NULL, &err);
        if (rc != cases[i].code || !strstr(err.message, cases[i].msg))
            fail_msg("status %d: rc %s, message '%s'", cases[i].status, gx_err_name(rc), err.message);
        assert_int_equal(gx_client_last_status(e->c), cases[i].status);
    }
    assert_non_null(strstr(fh_req_at(e->f, 1)->head, "DELETE /v1/jobs/9 HTTP/1.1"));

    /* a 2xx with a body that is not JSON */
    fh_push(e->f, 200, NULL, "<html>", 0, 0);
    assert_int_equal(gx_client_get(e->c, "1", &j, NULL, &err), GX_EFORMAT);
    fh_push(e->f, 200, NULL, "[1]", 0, 0);
    assert_int_equal(gx_client_get(e->c, "1", &j, NULL, &err), GX_EFORMAT);
    assert_int_equal(gx_client_get(e->c, "", &j, NULL, &err), GX_EINVAL);
}

static void test_retry_after(void **state) {
    env *e = *state;
    gx_error err;
    gx_client_job j;
    fh_push(e->f, 503, "Retry-After: 7\r\n", "", 0, 0);
    assert_int_equal(gx_client_get(e->c, "1", &j, NULL, &err), GX_EBUSY);
    assert_true(gx_client_last_retry_after(e->c) == 7.0);
    assert_non_null(strstr(err.message, "retry after 7"));

    gx_client_opts o;
    gx_client_opts_init(&o);
    o.server = e->f->url;
    o.retries = 2;
    gx_client *c;
    TU_OK(gx_client_new(&o, &c, &err), err);
    fh_push(e->f, 429, "Retry-After: 0\r\n", "", 0, 0);
    fh_push(e->f, 503, "Retry-After: 0.05\r\n", "", 0, 0);
    fh_push(e->f, 200, NULL, JOB_RUNNING, 0, 0);
    TU_OK(gx_client_get(c, "42", &j, NULL, &err), err);
    assert_string_equal(j.id, "42");
    assert_int_equal(e->f->nreq, 4);
    assert_null(strstr(fh_req_at(e->f, 1)->head, "Authorization")); /* no key, none sent */
    gx_client_free(c);
}

static void test_list_and_batch(void **state) {
    env *e = *state;
    gx_error err;
    fh_push(e->f, 200, NULL,
            "{\"jobs\":[" JOB_RUNNING ",{\"id\":\"41\",\"state\":\"succeeded\"}],\"next_cursor\":\"41\"}", 0, 0);
    fh_push(e->f, 200, NULL, "{\"jobs\":[],\"next_cursor\":null}", 0, 0);
    const char *labels[] = {"team=vision", "a b=c&d"};
    gx_client_list_opts o = {.state = "queued,running", .kernel = "saxpy", .labels = labels,
                             .nlabels = 2, .limit = 5, .cursor = "57"};
    gx_client_job_list l;
    TU_OK(gx_client_list(e->c, &o, &l, NULL, &err), err);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.jobs[1].id, "41");
    assert_int_equal(l.jobs[1].state, GX_JOB_SUCCEEDED);
    assert_string_equal(l.next_cursor, "41");
    gx_client_job_list_free(&l);
    assert_non_null(strstr(fh_req_at(e->f, 0)->head,
                           "GET /v1/jobs?state=queued%2Crunning&kernel=saxpy&label=team%3Dvision"
                           "&label=a%20b%3Dc%26d&limit=5&cursor=57 HTTP/1.1"));
    TU_OK(gx_client_list(e->c, NULL, &l, NULL, &err), err);
    assert_int_equal(l.n, 0);
    assert_string_equal(l.next_cursor, "");
    gx_client_job_list_free(&l);
    assert_non_null(strstr(fh_req_at(e->f, 1)->head, "GET /v1/jobs HTTP/1.1"));
    fh_push(e->f, 200, NULL, "{\"jobs\":[],\"next_cursor\":null}", 0, 0);
    gx_client_list_opts ot = {.tenant = "team a", .order = "desc"};
    TU_OK(gx_client_list(e->c, &ot, &l, NULL, &err), err);
    gx_client_job_list_free(&l);
    assert_non_null(strstr(fh_req_at(e->f, 2)->head, "GET /v1/jobs?order=desc&tenant=team%20a HTTP/1.1"));

    fh_push(e->f, 200, NULL,
            "{\"accepted\":1,\"refused\":1,\"results\":[{\"index\":0,\"status\":202,\"id\":\"50\"},"
            "{\"index\":1,\"status\":400,\"error\":{\"code\":\"GX_EINVAL\",\"message\":\"bad a\","
            "\"field\":\"args.a\"}}]}",
            0, 0);
    gx_client_batch b;
    TU_OK(gx_client_submit_batch_json(e->c, "[{\"kernel\":\"spin\"},{\"kernel\":\"saxpy\"}]", &b, NULL, &err), err);
    assert_int_equal(b.accepted, 1);
    assert_int_equal(b.refused, 1);
    assert_int_equal(b.n, 2);
    assert_string_equal(b.items[0].id, "50");
    assert_int_equal(b.items[0].error.code, 0);
    assert_int_equal(b.items[1].status, 400);
    assert_int_equal(b.items[1].error.code, GX_EINVAL);
    assert_string_equal(b.items[1].error.field, "args.a");
    gx_client_batch_free(&b);
    const fh_req *q = fh_req_at(e->f, 3);
    assert_non_null(strstr(q->head, "POST /v1/jobs:batch HTTP/1.1"));
    assert_json_eq(q->body, "{\"jobs\":[{\"kernel\":\"spin\"},{\"kernel\":\"saxpy\"}]}");
    assert_int_equal(gx_client_submit_batch_json(e->c, "{\"x\":1}", &b, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_client_submit_batch_json(e->c, "[", &b, NULL, &err), GX_EFORMAT);
}

/* gx_client_keys: the query it sends, a page read into keys (null members
 * as "none"), the last page's null cursor, a refused parameter, and an
 * answer that is not a page. */
static void test_keys(void **state) {
    env *e = *state;
    gx_error err;
    fh_push(e->f, 200, NULL,
            "{\"keys\":[{\"id\":\"0123456789abcdef\",\"tenant\":\"team-a\",\"role\":\"viewer\",\"label\":\"ci\","
            "\"created_ns\":1700000000000000001,\"expires_ns\":null,\"revoked\":true,\"last_used_ns\":null},"
            "{\"id\":\"fedcba9876543210\",\"tenant\":\"team-a\",\"role\":\"admin\",\"label\":\"\","
            "\"created_ns\":2,\"expires_ns\":3,\"revoked\":false,\"last_used_ns\":4}],\"next_cursor\":\"9\"}",
            0, 0);
    fh_push(e->f, 200, NULL, "{\"keys\":[],\"next_cursor\":null}", 0, 0);
    fh_push(e->f, 400, NULL, "{\"error\":{\"code\":\"GX_EINVAL\",\"message\":\"bad\",\"field\":\"cursor\"}}", 0, 0);
    fh_push(e->f, 200, NULL, "{\"keys\":{}}", 0, 0);
    gx_client_key_list_opts o = {.tenant = "team a", .revoked = 1, .limit = 7, .cursor = "5"};
    gx_client_key_list l;
    TU_OK(gx_client_keys(e->c, &o, &l, NULL, &err), err);
    assert_non_null(strstr(fh_req_at(e->f, 0)->head,
                           "GET /v1/keys?tenant=team%20a&revoked=true&limit=7&cursor=5 HTTP/1.1"));
    assert_int_equal(l.n, 2);
    assert_string_equal(l.keys[0].id, "0123456789abcdef");
    assert_string_equal(l.keys[0].tenant, "team-a");
    assert_string_equal(l.keys[0].role, "viewer");
    assert_string_equal(l.keys[0].label, "ci");
    assert_true(l.keys[0].created_ns == 1700000000000000001LL);
    assert_int_equal(l.keys[0].expires_ns, 0);
    assert_int_equal(l.keys[0].revoked, 1);
    assert_int_equal(l.keys[0].last_used_ns, 0);
    assert_int_equal(l.keys[1].expires_ns, 3);
    assert_int_equal(l.keys[1].revoked, 0);
    assert_int_equal(l.keys[1].last_used_ns, 4);
    assert_string_equal(l.next_cursor, "9");
    gx_client_key_list_free(&l);
    o = (gx_client_key_list_opts){.revoked = -1};
    char *raw = NULL;
    TU_OK(gx_client_keys(e->c, &o, &l, &raw, &err), err);
    assert_non_null(strstr(fh_req_at(e->f, 1)->head, "GET /v1/keys?revoked=false HTTP/1.1"));
    assert_int_equal(l.n, 0);
    assert_string_equal(l.next_cursor, "");
    assert_string_equal(raw, "{\"keys\":[],\"next_cursor\":null}");
    free(raw);
    gx_client_key_list_free(&l);
    assert_int_equal(gx_client_keys(e->c, NULL, &l, NULL, &err), GX_EINVAL);
    assert_non_null(strstr(fh_req_at(e->f, 2)->head, "GET /v1/keys HTTP/1.1"));
    assert_string_equal(err.field, "cursor");
    assert_int_equal(l.n, 0);
    gx_client_key_list_free(&l);
    assert_int_equal(gx_client_keys(e->c, NULL, &l, NULL, &err), GX_EFORMAT);
    assert_string_equal(err.field, "keys");
    gx_client_key_list_free(&l);
}

typedef struct seen {
    int calls;
    char states[8][24];
} seen;

static int on_progress(void *ctx, const gx_client_job *j, double elapsed) {
    seen *s = ctx;
    if (s->calls < 8) snprintf(s->states[s->calls], sizeof s->states[0], "%s", j->state_name);
    s->calls++;
    return 0;
}

static void test_wait(void **state) {
    env *e = *state;
    gx_error err;
    fh_push(e->f, 200, NULL, "{\"id\":\"7\",\"state\":\"queued\"}", 0, 0);
    fh_push(e->f, 200, NULL, "{\"id\":\"7\",\"state\":\"running\"}", 0, 0);
    fh_push(e->f, 200, NULL, "{\"id\":\"7\",\"state\":\"timed_out\"}", 0, 0);
    seen s = {0};
    gx_client_wait_opts o;
    gx_client_wait_opts_init(&o);
    o.poll_min_ms = 1;
    o.progress = on_progress;
    o.ctx = &s;
    gx_client_job j;
    TU_OK(gx_client_wait(e->c, "7", &o, &j, &err), err);
    assert_int_equal(j.state, GX_JOB_TIMED_OUT);
    assert_int_equal(s.calls, 3);
    assert_string_equal(s.states[1], "running");

    for (int i = 0; i < 40; i++) fh_push(e->f, 200, NULL, "{\"id\":\"7\",\"state\":\"running\"}", 0, 0);
    o.timeout_ms = 60;
    o.poll_max_ms = 10;
    assert_int_equal(gx_client_wait(e->c, "7", &o, &j, &err), GX_ETIMEDOUT);
    assert_int_equal(j.state, GX_JOB_RUNNING);
    assert_non_null(strstr(err.message, "still running"));
    fh_reset(e->f);
    fh_push(e->f, 404, NULL, "{\"error\":{\"code\":\"GX_ENOTFOUND\",\"message\":\"no job 7\"}}", 0, 0);
    assert_int_equal(gx_client_wait(e->c, "7", NULL, &j, &err), GX_ENOTFOUND);
}

static void test_result_and_blobs(void **state) {
    env *e = *state;
    gx_error err;
    gx_array *b = inline_ok("i32[3]:7,8,9");
    void *npy;
    size_t npy_len;
    TU_OK(gx_npy_write_mem(b, &npy, &npy_len, &err), err);
    fh_push(e->f, 200, NULL,
            "{\"id\":\"5\",\"state\":\"succeeded\",\"outputs\":{\"c\":{\"dtype\":\"f32\",\"shape\":[2,2],"
            "\"data\":[[1,2],[3,4.5]]},\"big\":{\"dtype\":\"i32\",\"shape\":[3],\"blob\":\"sha256:aa\","
            "\"url\":\"/v1/blobs/sha256:aa\"},\"flag\":{\"dtype\":\"bool\",\"shape\":[2],\"data\":[true,false]},"
            "\"n\":{\"dtype\":\"u64\",\"shape\":[1],\"data\":[18446744073709551615]}}}",
            0, 0);
    fh_push(e->f, 200, "Content-Type: application/octet-stream\r\n", npy, npy_len, 0);
    gx_client_outputs r;
    char *raw = NULL;
    int rc = gx_client_result(e->c, "5", &r, &raw, &err);
    /* jansson cannot hold 2^64-1 as an integer: the parse fails cleanly */
    if (rc == 0) {
        fail_msg("u64 max parsed");
    }
    gx_client_outputs_free(&r);
    free(raw);
    fh_reset(e->f);
    fh_push(e->f, 200, NULL,
            "{\"id\":\"5\",\"state\":\"succeeded\",\"outputs\":{\"c\":{\"dtype\":\"f32\",\"shape\":[2,2],"
            "\"data\":[[1,2],[3,4.5]]},\"big\":{\"dtype\":\"i32\",\"shape\":[3],\"blob\":\"sha256:aa\","
            "\"url\":\"/v1/blobs/sha256:aa\"},\"flag\":{\"dtype\":\"bool\",\"shape\":[2],\"data\":[true,false]},"
            "\"n\":{\"dtype\":\"i64\",\"data\":[9007199254740993]}}}",
            0, 0);
    fh_push(e->f, 200, NULL, npy, npy_len, 0);
    TU_OK(gx_client_result(e->c, "5", &r, NULL, &err), err);
    assert_int_equal(r.n, 4);
    assert_string_equal(r.state_name, "succeeded");
    const gx_client_output *c = gx_client_outputs_find(&r, "c");
    assert_non_null(c);
    assert_int_equal(c->array->ndim, 2);
    assert_true(((float *)c->array->data)[3] == 4.5f);
    const gx_client_output *big = gx_client_outputs_find(&r, "big");
    assert_string_equal(big->blob, "sha256:aa");
    assert_int_equal(big->array->dtype, GX_I32);
    assert_int_equal(((int32_t *)big->array->data)[2], 9);
    assert_memory_equal(gx_client_outputs_find(&r, "flag")->array->data, "\1\0", 2);
    const gx_client_output *n = gx_client_outputs_find(&r, "n");
    assert_true(((int64_t *)n->array->data)[0] == INT64_C(9007199254740993)); /* exact */
    assert_null(gx_client_outputs_find(&r, "zz"));
    gx_client_outputs_free(&r);
    assert_non_null(strstr(fh_req_at(e->f, 0)->head, "GET /v1/jobs/5/result HTTP/1.1"));
    assert_non_null(strstr(fh_req_at(e->f, 1)->head, "GET /v1/blobs/sha256:aa HTTP/1.1"));

    /* the server writes u64 values past 2^63 - 1 as decimal strings */
    fh_push(e->f, 200, NULL,
            "{\"outputs\":{\"n\":{\"dtype\":\"u64\",\"data\":[\"18446744073709551615\",7]}}}", 0, 0);
    TU_OK(gx_client_result(e->c, "5", &r, NULL, &err), err);
    n = gx_client_outputs_find(&r, "n");
    assert_true(((uint64_t *)n->array->data)[0] == UINT64_MAX && ((uint64_t *)n->array->data)[1] == 7);
    gx_client_outputs_free(&r);

    /* NaN and infinities come as "NaN", "Infinity", "-Infinity"; null
     * (what older servers wrote for all three) reads as NaN. Null used to
     * fail the whole result: "value 0 is not a number". */
    fh_push(e->f, 200, NULL,
            "{\"outputs\":{\"s\":{\"dtype\":\"f64\",\"data\":[\"NaN\",\"Infinity\",\"-Infinity\",null,2]},"
            "\"h\":{\"dtype\":\"f16\",\"data\":[\"-Infinity\",null]}}}",
            0, 0);
    TU_OK(gx_client_result(e->c, "5", &r, NULL, &err), err);
    const double *sv = gx_client_outputs_find(&r, "s")->array->data;
    assert_true(isnan(sv[0]) && sv[1] == INFINITY && sv[2] == -INFINITY && isnan(sv[3]) && sv[4] == 2);
    const gx_array *h = gx_client_outputs_find(&r, "h")->array;
    assert_true(gx_array_get_f64(h, 0) == -INFINITY && isnan(gx_array_get_f64(h, 1)));
    gx_client_outputs_free(&r);

    /* malformed outputs fail cleanly */
    static const char *bad[] = {
        "{\"outputs\":{\"c\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[1,2]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"f32\",\"shape\":[1],\"data\":[1,2]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"q8\",\"data\":[1]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"i8\",\"data\":[300]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"i8\",\"data\":[1.5]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"f32\",\"data\":[\"x\"]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"f32\",\"data\":[\"nan\"]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"f64\",\"data\":[\"Inf\"]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"i32\",\"data\":[null]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"i32\",\"data\":[\"NaN\"]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"u64\",\"data\":[\"18446744073709551616\"]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"i64\",\"data\":[\"12x\"]}}}",
        "{\"outputs\":{\"c\":{\"dtype\":\"f32\",\"shape\":[-1]}}}",
        "{\"outputs\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fh_push(e->f, 200, NULL, bad[i], 0, 0);
        rc = gx_client_result(e->c, "5", &r, NULL, &err);
        if (rc != GX_EFORMAT && rc != GX_EINVAL) fail_msg("bad output %zu accepted (rc %d)", i, rc);
        assert_int_equal(r.n, 0);
        gx_client_outputs_free(&r);
    }
    fh_push(e->f, 409, NULL, "{\"error\":{\"code\":\"GX_ESTATE\",\"message\":\"job 5 is failed\"}}", 0, 0);
    assert_int_equal(gx_client_result(e->c, "5", &r, NULL, &err), GX_ESTATE);
    assert_string_equal(err.message, "job 5 is failed");
    gx_client_outputs_free(&r);

    /* upload */
    fh_reset(e->f);
    fh_push(e->f, 201, NULL, "{\"id\":\"sha256:0123\",\"bytes\":140,\"dtype\":\"i32\",\"shape\":[3]}", 0, 0);
    char id[GX_CLIENT_BLOB_ID_MAX];
    TU_OK(gx_client_blob_put(e->c, b, id, &err), err);
    assert_string_equal(id, "sha256:0123");
    const fh_req *q = fh_req_at(e->f, 0);
    assert_non_null(strstr(q->head, "POST /v1/blobs HTTP/1.1"));
    assert_non_null(strstr(q->head, "Content-Type: application/octet-stream"));
    assert_int_equal(q->len, npy_len);
    assert_memory_equal(q->body, npy, npy_len);

    char path[] = "/tmp/gx_client_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, npy, npy_len), (ssize_t)npy_len);
    close(fd);
    fh_push(e->f, 201, NULL, "{\"id\":\"sha256:4567\"}", 0, 0);
    TU_OK(gx_client_blob_put_file(e->c, path, id, &err), err);
    assert_string_equal(id, "sha256:4567");
    /* a file that is not .npy is refused before any request */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "hello", 5), 5);
    close(fd);
    int before = e->f->nreq;
    assert_int_equal(gx_client_blob_put_file(e->c, path, id, &err), GX_EFORMAT);
    assert_non_null(strstr(err.message, "not a usable .npy"));
    assert_string_equal(err.field, "path");
    assert_int_equal(e->f->nreq, before);
    unlink(path);
    assert_int_equal(gx_client_blob_put_file(e->c, "/nonexistent.npy", id, &err), GX_EIO);
    /* the file at fault, after an upload that succeeded: field "path" and
     * status 0 (the 201 before made it look like the server's answer) */
    fh_push(e->f, 201, NULL, "{\"id\":\"sha256:4567\"}", 0, 0);
    TU_OK(gx_client_blob_put(e->c, b, id, &err), err);
    assert_int_equal(gx_client_last_status(e->c), 201);
    assert_int_equal(gx_client_blob_put_file(e->c, "/nonexistent.npy", id, &err), GX_EIO);
    assert_string_equal(err.field, "path");
    assert_int_equal(gx_client_last_status(e->c), 0);
    assert_int_equal(gx_client_blob_put_file(e->c, "/", id, &err), GX_EIO); /* a folder */
    assert_string_equal(err.field, "path");
    char longp[400] = "/nonexistent";
    for (int i = 0; i < 30; i++) strcat(longp, "/abcdefghi");
    strcat(longp, "/x.npy");
    assert_int_equal(gx_client_blob_put_file(e->c, longp, id, &err), GX_EIO);
    assert_non_null(strstr(err.message, "/x.npy: No such file")); /* the reason is not cut off */

    fh_push(e->f, 200, NULL, npy, npy_len, 0);
    gx_array *got = NULL;
    TU_OK(gx_client_blob_get(e->c, "sha256:aa", &got, &err), err);
    assert_memory_equal(got->data, b->data, b->nbytes);
    gx_array_unref(got);
    fh_push(e->f, 200, NULL, "nope", 0, 0);
    assert_int_equal(gx_client_blob_get(e->c, "sha256:aa", &got, &err), GX_EFORMAT);
    free(npy);
    gx_array_unref(b);
}

typedef struct evlog {
    int n, stop_at, idles, resets;
    char reset[64];
    char ids[8][GX_CLIENT_ID_MAX];
    char event_ids[8][GX_CLIENT_EVENT_ID_MAX];
    char states[8][24];
    char data[8][128];
} evlog;

static int on_ev(void *ctx, const gx_client_event *ev, const char *data) {
    evlog *l = ctx;
    if (l->n < 8) {
        snprintf(l->ids[l->n], sizeof l->ids[0], "%s", ev->id);
        snprintf(l->states[l->n], sizeof l->states[0], "%s", ev->state_name);
        snprintf(l->event_ids[l->n], sizeof l->event_ids[0], "%s", ev->event_id);
        snprintf(l->data[l->n], 128, "%s", data);
    }
    l->n++;
    return l->stop_at && l->n >= l->stop_at;
}

static int on_idle(void *ctx, double elapsed) {
    ((evlog *)ctx)->idles++;
    return 0;
}

static void test_events(void **state) {
    env *e = *state;
    gx_error err;
    const char *stream =
        ": keepalive\n\n"
        "event: job\ndata: {\"id\":\"1\",\"state\":\"queued\",\"attempt\":0,\"time\":\"t0\"}\n\n"
        "event: job\r\ndata: {\"id\":\"1\",\r\ndata: \"state\":\"running\",\"attempt\":1,\"device\":\"cpu\"}\r\n\r\n"
        "event: other\ndata: {\"id\":\"9\",\"state\":\"queued\"}\n\n"
        "data: not json\n\n"
        "id: 5\nretry: 100\nevent: job\ndata:{\"id\":\"1\",\"state\":\"failed\",\"error\":{\"code\":\"GX_EKERNEL\",\"message\":\"m\"}}\n\n"
        "event: job\ndata: {\"id\":\"2\",\"state\":\"succeeded\"}";
    fh_push(e->f, 200, "Content-Type: text/event-stream\r\n", stream, 0, 1);
    evlog l = {0};
    gx_client_stream_opts o = {.job = "1", .state = "queued,failed", .kernel = "saxpy",
                               .timeout_ms = 5000, .on_event = on_ev, .on_idle = on_idle, .ctx = &l};
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.states[0], "queued");
    assert_string_equal(l.states[1], "running");
    assert_string_equal(l.data[1], "{\"id\":\"1\",\n\"state\":\"running\",\"attempt\":1,\"device\":\"cpu\"}");
    assert_string_equal(l.states[2], "failed");
    assert_string_equal(l.ids[3], "2"); /* unterminated last event still counts */
    assert_true(l.idles >= 1);          /* the keepalive */
    const fh_req *q = fh_req_at(e->f, 0);
    assert_non_null(strstr(q->head, "GET /v1/events?job=1&state=queued%2Cfailed&kernel=saxpy HTTP/1.1"));
    assert_non_null(strstr(q->head, "Accept: text/event-stream"));

    /* the callback ends the stream */
    fh_push(e->f, 200, NULL, stream, 0, 1);
    evlog l2 = {.stop_at = 2};
    o = (gx_client_stream_opts){.timeout_ms = -1, .on_event = on_ev, .ctx = &l2};
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
    assert_int_equal(l2.n, 2);

    /* a refused stream reports the server's error */
    fh_push(e->f, 400, NULL, "{\"error\":{\"code\":\"GX_EINVAL\",\"message\":\"bad state\",\"field\":\"state\"}}", 0, 0);
    o.state = "bogus";
    assert_int_equal(gx_client_events_follow(e->c, &o, &err), GX_EINVAL);
    assert_string_equal(err.field, "state");
    assert_int_equal(gx_client_last_status(e->c), 400);
    o.on_event = NULL;
    assert_int_equal(gx_client_events_follow(e->c, &o, &err), GX_EINVAL);

    /* history */
    fh_push(e->f, 200, NULL,
            "{\"events\":[{\"seq\":1,\"state\":\"queued\",\"attempt\":0,\"time\":\"a\",\"error\":null},"
            "{\"seq\":2,\"state\":\"dead\",\"attempt\":3,\"time\":\"b\",\"error\":{\"code\":\"GX_EDEVICE\",\"message\":\"xid\"}}]}",
            0, 0);
    gx_client_event *evs;
    size_t n;
    TU_OK(gx_client_job_events(e->c, "8", &evs, &n, NULL, &err), err);
    assert_int_equal(n, 2);
    assert_int_equal(evs[1].seq, 2);
    assert_string_equal(evs[1].id, "8");
    assert_int_equal(evs[1].state, GX_JOB_DEAD);
    assert_int_equal(evs[1].error_code, GX_EDEVICE);
    assert_string_equal(evs[1].error_message, "xid");
    free(evs);
}

static int on_reset(void *ctx, const char *reason, const char *message) {
    evlog *l = ctx;
    l->resets++;
    snprintf(l->reset, sizeof l->reset, "%s", reason);
    return 0;
}

/* Event ids: each event carries its id, a bare "id:" block moves the last
 * id without an event; with reconnect a stream that ends is opened again
 * with Last-Event-ID (an event cut off by the drop is not dispatched), a
 * reset reaches on_reset; without reconnect no header is sent unless
 * asked for with last_event_id. */
/* body as one HTTP/1.1 chunk into out, with the last chunk when the
 * stream ends on purpose; without it the connection's close is a drop. */
static const char *chunked(const char *body, int end, char *out, size_t cap) {
    snprintf(out, cap, "%zx\r\n%s\r\n%s", strlen(body), body, end ? "0\r\n\r\n" : "");
    return out;
}

static void test_events_resume(void **state) {
    env *e = *state;
    gx_error err;
    char b0[512], b1[512];
    const char *te = "Content-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n";
    fh_push(e->f, 200, te,
            chunked(": gexec event stream\n\nid: b-1\n\n"
                    "id: b-2\nevent: job\ndata: {\"id\":\"1\",\"state\":\"queued\"}\n\n"
                    "id: b-7\n\n"
                    "id: b-8\nevent: job\ndata: {\"id\":\"1\",\"sta", /* dropped mid-event */
                    0, b0, sizeof b0),
            0, 1);
    fh_push(e->f, 200, te,
            chunked("id: b-8\nevent: job\ndata: {\"id\":\"1\",\"state\":\"running\"}\n\n"
                    "id: b-9\nevent: job\ndata: {\"id\":\"1\",\"state\":\"succeeded\"}\n\n",
                    0, b1, sizeof b1),
            0, 1);
    fh_push(e->f, 200, NULL,
            "id: c-3\nevent: reset\ndata: {\"reason\":\"other_run\",\"message\":\"m\"}\n\n"
            "id: c-4\nevent: job\ndata: {\"id\":\"2\",\"state\":\"queued\"}\n\n",
            0, 2);
    evlog l = {.stop_at = 4};
    gx_client_stream_opts o = {.timeout_ms = 10000, .on_event = on_ev, .on_reset = on_reset, .ctx = &l,
                               .reconnect = 1};
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.event_ids[0], "b-2");
    assert_string_equal(l.states[1], "running"); /* not the half event */
    assert_string_equal(l.event_ids[1], "b-8");
    assert_string_equal(l.event_ids[2], "b-9");
    assert_string_equal(l.event_ids[3], "c-4");
    assert_int_equal(l.resets, 1);
    assert_string_equal(l.reset, "other_run");
    const fh_req *q0 = fh_req_at(e->f, 0), *q1 = fh_req_at(e->f, 1), *q2 = fh_req_at(e->f, 2);
    assert_non_null(q2);
    assert_null(strstr(q0->head, "Last-Event-ID"));
    assert_non_null(strstr(q1->head, "Last-Event-ID: b-7\r\n")); /* the bare id line counted */
    assert_non_null(strstr(q2->head, "Last-Event-ID: b-9\r\n"));

    /* without reconnect: one request, with the id asked for */
    fh_reset(e->f);
    fh_push(e->f, 200, NULL, "id: b-10\nevent: job\ndata: {\"id\":\"3\",\"state\":\"queued\"}\n\n", 0, 1);
    evlog l2 = {0};
    o = (gx_client_stream_opts){.timeout_ms = 5000, .on_event = on_ev, .ctx = &l2, .last_event_id = "b-9"};
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
    assert_int_equal(l2.n, 1);
    assert_non_null(strstr(fh_req_at(e->f, 0)->head, "Last-Event-ID: b-9\r\n"));
    assert_null(fh_req_at(e->f, 1));

    /* a stream the server ends on purpose (its last chunk: gexecd
     * stopping, a key revoked) is over, reconnect or not: one request,
     * and no error (it reconnected for 30 s, then failed) */
    fh_reset(e->f);
    fh_push(e->f, 200, te, chunked("id: b-11\nevent: job\ndata: {\"id\":\"4\",\"state\":\"queued\"}\n\n", 1, b0,
                                   sizeof b0),
            0, 1);
    evlog l3 = {0};
    o = (gx_client_stream_opts){.timeout_ms = 5000, .on_event = on_ev, .ctx = &l3, .reconnect = 1};
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
    assert_int_equal(l3.n, 1);
    assert_null(fh_req_at(e->f, 1));

    /* reconnect 2: a stream the server ends is opened again too (gexecd
     * stopping to restart; gexec events exited 0 there with its job not
     * final), after the last id seen; a refusal then ends it */
    fh_reset(e->f);
    fh_push(e->f, 200, te, chunked("id: b-12\nevent: job\ndata: {\"id\":\"4\",\"state\":\"queued\"}\n\n", 1, b0,
                                   sizeof b0),
            0, 1);
    fh_push(e->f, 200, te, chunked("id: b-13\nevent: job\ndata: {\"id\":\"4\",\"state\":\"running\"}\n\n", 1, b1,
                                   sizeof b1),
            0, 1);
    fh_push(e->f, 401, NULL, "{\"error\":{\"code\":\"GX_EAUTH\",\"message\":\"key revoked\"}}", 0, 0);
    evlog l4 = {0};
    o = (gx_client_stream_opts){.timeout_ms = 10000, .on_event = on_ev, .ctx = &l4, .reconnect = 2};
    assert_int_equal(gx_client_events_follow(e->c, &o, &err), GX_EAUTH);
    assert_string_equal(err.message, "key revoked");
    assert_int_equal(l4.n, 2);
    assert_string_equal(l4.states[1], "running");
    assert_non_null(strstr(fh_req_at(e->f, 1)->head, "Last-Event-ID: b-12\r\n"));
    assert_non_null(strstr(fh_req_at(e->f, 2)->head, "Last-Event-ID: b-13\r\n"));
    /* ... and the deadline ends it while it waits to connect again */
    fh_reset(e->f);
    fh_push(e->f, 200, te, chunked("id: b-14\n\n", 1, b0, sizeof b0), 0, 1);
    fh_push(e->f, 200, te, chunked(": gexec event stream\n\n", 1, b1, sizeof b1), 0, 1);
    fh_push(e->f, 200, te, chunked(": gexec event stream\n\n", 1, b1, sizeof b1), 0, 1);
    fh_push(e->f, 200, te, chunked(": gexec event stream\n\n", 1, b1, sizeof b1), 0, 1);
    o = (gx_client_stream_opts){.timeout_ms = 600, .on_event = on_ev, .ctx = &l4, .reconnect = 2};
    assert_int_equal(gx_client_events_follow(e->c, &o, &err), GX_ETIMEDOUT);
    assert_non_null(fh_req_at(e->f, 1));

    /* a daemon still restoring its jobs answers 503 at first: waited for
     * (it was an error at once, with no connection answered yet) */
    fh_reset(e->f);
    fh_push(e->f, 503, "Retry-After: 1\r\n", "{\"error\":{\"code\":\"GX_EBUSY\",\"message\":\"starting\"}}", 0, 0);
    fh_push(e->f, 200, te, chunked("id: d-1\nevent: job\ndata: {\"id\":\"5\",\"state\":\"queued\"}\n\n", 0, b0,
                                   sizeof b0),
            0, 1);
    evlog l5 = {.stop_at = 1};
    o = (gx_client_stream_opts){.timeout_ms = 10000, .on_event = on_ev, .ctx = &l5, .reconnect = 2};
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
    assert_int_equal(l5.n, 1);
    assert_string_equal(l5.event_ids[0], "d-1");

    /* an id the caller gives that cannot be a header, or is too long, is
     * refused before anything is sent (it was sent with its line break, or
     * dropped: a stream from now) */
    fh_reset(e->f);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    const char *badids[] = {"b-1\r\nX-Evil: 1", longid};
    for (int i = 0; i < 2; i++) {
        o = (gx_client_stream_opts){.timeout_ms = 5000, .on_event = on_ev, .ctx = &l3, .last_event_id = badids[i]};
        assert_int_equal(gx_client_events_follow(e->c, &o, &err), GX_EINVAL);
        assert_string_equal(err.field, "last_event_id");
    }
    assert_null(fh_req_at(e->f, 0));

    /* a server that cannot be reached is an error at once, even with reconnect */
    gx_client_opts co;
    gx_client_opts_init(&co);
    co.server = "http://127.0.0.1:1";
    gx_client *bad = NULL;
    TU_OK(gx_client_new(&co, &bad, &err), err);
    o = (gx_client_stream_opts){.timeout_ms = 5000, .on_event = on_ev, .ctx = &l2, .reconnect = 1};
    assert_int_not_equal(gx_client_events_follow(bad, &o, &err), 0);
    gx_client_free(bad);
}

static void test_stream_timeout(void **state) {
    env *e = *state;
    gx_error err;
    /* a stream that stays open and quiet after one event */
    fh_push(e->f, 200, NULL, "event: job\ndata: {\"id\":\"3\",\"state\":\"running\"}\n\n", 0, 2);
    evlog l = {0};
    gx_client_stream_opts o = {.timeout_ms = 1300, .on_event = on_ev, .on_idle = on_idle, .ctx = &l};
    assert_int_equal(gx_client_events_follow(e->c, &o, &err), GX_ETIMEDOUT);
    assert_int_equal(l.n, 1);
    assert_true(l.idles >= 1); /* about once a second while quiet */
    /* a server that ends the stream at once: not an error */
    fh_push(e->f, 200, NULL, "", 0, 0);
    o.timeout_ms = 300;
    TU_OK(gx_client_events_follow(e->c, &o, &err), err);
}

static void test_info(void **state) {
    env *e = *state;
    gx_error err;
    char *s = NULL;
    fh_push(e->f, 200, NULL, "{\"kernels\":[]}", 0, 0);
    TU_OK(gx_client_kernels(e->c, &s, &err), err);
    assert_string_equal(s, "{\"kernels\":[]}");
    free(s);
    fh_push(e->f, 200, NULL, "{\"devices\":[]}", 0, 0);
    TU_OK(gx_client_devices(e->c, &s, &err), err);
    free(s);
    fh_push(e->f, 200, NULL, "{\"status\":\"ok\"}", 0, 0);
    TU_OK(gx_client_health(e->c, NULL, &err), err);
    int ready = -1;
    fh_push(e->f, 503, NULL, "{\"ready\":false}", 0, 0);
    TU_OK(gx_client_ready(e->c, &ready, &s, &err), err);
    assert_int_equal(ready, 0);
    assert_string_equal(s, "{\"ready\":false}");
    free(s);
    fh_push(e->f, 200, NULL, "{\"ready\":true}", 0, 0);
    TU_OK(gx_client_ready(e->c, &ready, NULL, &err), err);
    assert_int_equal(ready, 1);
    fh_push(e->f, 200, "Content-Type: text/plain\r\n", "# HELP x\nx 1\n", 0, 0);
    TU_OK(gx_client_metrics(e->c, &s, &err), err);
    assert_string_equal(s, "# HELP x\nx 1\n");
    free(s);
    /* generic request */
    int status = 0;
    size_t len = 0;
    fh_push(e->f, 418, NULL, "teapot", 0, 0);
    assert_int_equal(gx_client_request(e->c, "PUT", "/x", "b", 1, "text/plain", &status, &s, &len, &err), GX_EINVAL);
    assert_int_equal(status, 418);
    assert_string_equal(s, "teapot");
    assert_int_equal(len, 6);
    free(s);
    assert_non_null(strstr(fh_req_at(e->f, 6)->head, "PUT /x HTTP/1.1"));
    assert_int_equal(gx_client_request(e->c, "GET", "x", NULL, 0, NULL, NULL, NULL, NULL, &err), GX_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_inline),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_jobspec),
        cmocka_unit_test(test_client_new),
        cmocka_unit_test(test_refused_connection),
        cmocka_unit_test_setup_teardown(test_submit_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result_and_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_info, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
