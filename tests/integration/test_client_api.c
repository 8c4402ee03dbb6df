/*
 * test_client_api.c - every call of libgexec-client against a real gexecd.
 *
 * One daemon serves the whole group (started in the group setup, stopped
 * in its teardown); each test makes its own jobs. Skips (exit 77) when
 * gexecd is not built. Checks are on behaviour the API contract fixes
 * (states, status codes, error codes, values); messages are only checked to
 * be present.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "testutil.h"
#include "gexec/gexec_client.h"

static gxd daemon_;
static gx_client *C;

static int group_setup(void **state) {
    int rc = gxd_start(&daemon_, NULL);
    if (rc) return -1;
    gx_client_opts o;
    gx_client_opts_init(&o);
    o.server = daemon_.url;
    o.api_key = daemon_.key;
    o.timeout_ms = 20000;
    gx_error err;
    if (gx_client_new(&o, &C, &err)) return -1;
    return 0;
}

static int group_teardown(void **state) {
    gx_client_free(C);
    return gxd_stop(&daemon_, 0) == 0 ? 0 : -1;
}

/* Submit a spec given as JSON text; returns the id in id. */
static void submit(const char *json, char id[GX_CLIENT_ID_MAX]) {
    gx_client_job j;
    gx_error err;
    gx_error_clear(&err);
    TU_OK(gx_client_submit_json(C, json, &j, NULL, &err), err);
    assert_true(j.id[0]);
    snprintf(id, GX_CLIENT_ID_MAX, "%s", j.id);
}

static void wait_final(const char *id, gx_client_job *j) {
    gx_client_wait_opts o;
    gx_client_wait_opts_init(&o);
    o.timeout_ms = 30000;
    gx_error err;
    TU_OK(gx_client_wait(C, id, &o, j, &err), err);
    assert_true(gx_client_job_is_final(j));
}

static void test_service_info(void **state) {
    gx_error err;
    char *s = NULL;
    TU_OK(gx_client_health(C, &s, &err), err);
    assert_non_null(strstr(s, "ok"));
    free(s);
    int ready = -1;
    TU_OK(gx_client_ready(C, &ready, &s, &err), err);
    assert_int_equal(ready, 1);
    free(s);
    TU_OK(gx_client_metrics(C, &s, &err), err);
    assert_non_null(strstr(s, "gexec_"));
    free(s);
    TU_OK(gx_client_kernels(C, &s, &err), err);
    json_t *k = json_loads(s, 0, NULL);
    free(s);
    assert_true(json_array_size(json_object_get(k, "kernels")) >= 2);
    int saw_saxpy = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(k, "kernels"), i, v)
        saw_saxpy |= !strcmp(json_string_value(json_object_get(v, "name")), "saxpy");
    assert_true(saw_saxpy);
    json_decref(k);
    TU_OK(gx_client_devices(C, &s, &err), err);
    json_t *d = json_loads(s, 0, NULL);
    free(s);
    assert_true(json_array_size(json_object_get(d, "devices")) >= 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(d, "devices"), 0), "kind")),
                        "cpu");
    json_decref(d);
}

static void test_saxpy_inline_and_blob(void **state) {
    gx_error err;
    gx_error_clear(&err);
    /* x uploaded as a blob, y inline, built with the spec builder */
    gx_array *x = NULL, *y = NULL;
    TU_OK(gx_client_parse_inline("f32:1,2,3,4", &x, &err), err);
    TU_OK(gx_client_parse_inline("f32:10,20,30,40", &y, &err), err);
    char blob[GX_CLIENT_BLOB_ID_MAX];
    TU_OK(gx_client_blob_put(C, x, blob, &err), err);
    assert_int_equal(strncmp(blob, "sha256:", 7), 0);
    assert_int_equal(gx_client_last_status(C), 201);
    gx_array *back = NULL;
    TU_OK(gx_client_blob_get(C, blob, &back, &err), err);
    assert_int_equal(back->count, 4);
    assert_memory_equal(back->data, x->data, x->nbytes);
    gx_array_unref(back);

    gx_jobspec *s;
    TU_OK(gx_jobspec_new("saxpy", &s, &err), err);
    TU_OK(gx_jobspec_set_arg_text(s, "a=2", &err), err);
    TU_OK(gx_jobspec_set_input_blob(s, "x", blob, &err), err);
    TU_OK(gx_jobspec_set_input_array(s, "y", y, &err), err);
    TU_OK(gx_jobspec_set_label(s, "team", "itest", &err), err);
    gx_client_job j;
    TU_OK(gx_client_submit(C, s, &j, NULL, &err), err);
    gx_jobspec_free(s);
    assert_true(j.created);
    assert_int_equal(gx_client_last_status(C), 202);
    wait_final(j.id, &j);
    assert_string_equal(j.state_name, "succeeded");
    assert_true(j.finished_at[0]);
    gx_client_outputs r;
    TU_OK(gx_client_result(C, j.id, &r, NULL, &err), err);
    const gx_client_output *o = gx_client_outputs_find(&r, "y");
    assert_non_null(o);
    assert_int_equal(o->array->dtype, GX_F32);
    assert_int_equal(o->array->count, 4);
    for (int i = 0; i < 4; i++)
        assert_true(((float *)o->array->data)[i] == 2.0f * (float)(i + 1) + 10.0f * (float)(i + 1));
    gx_client_outputs_free(&r);
    gx_array_unref(x);
    gx_array_unref(y);

    /* a bigger input from a .npy file; the output may come back as a blob */
    gx_array *big = NULL;
    TU_OK(gx_array_new1(GX_F64, 100000, &big, &err), err);
    for (int64_t i = 0; i < big->count; i++) ((double *)big->data)[i] = (double)i;
    char path[] = "/tmp/gx_itest_XXXXXX.npy";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    close(fd);
    TU_OK(gx_npy_write_file(big, path, &err), err);
    TU_OK(gx_client_blob_put_file(C, path, blob, &err), err);
    unlink(path);
    char spec[512], id[GX_CLIENT_ID_MAX];
    snprintf(spec, sizeof spec,
             "{\"kernel\":\"saxpy\",\"args\":{\"a\":0.5},\"inputs\":{\"x\":{\"blob\":\"%s\"},"
             "\"y\":{\"blob\":\"%s\"}}}",
             blob, blob);
    submit(spec, id);
    wait_final(id, &j);
    assert_string_equal(j.state_name, "succeeded");
    TU_OK(gx_client_result(C, id, &r, NULL, &err), err);
    o = gx_client_outputs_find(&r, "y");
    assert_non_null(o);
    assert_int_equal(o->array->count, 100000);
    assert_true(((double *)o->array->data)[99999] == 1.5 * 99999.0);
    gx_client_outputs_free(&r);
    gx_array_unref(big);
}

/* Submit spec and wait for it to succeed; its outputs in *r. */
static void run_ok(gx_jobspec *spec, gx_client_outputs *r) {
    gx_error err;
    gx_error_clear(&err);
    gx_client_job j;
    TU_OK(gx_client_submit(C, spec, &j, NULL, &err), err);
    gx_jobspec_free(spec);
    wait_final(j.id, &j);
    if (strcmp(j.state_name, "succeeded")) fail_msg("job %s %s: %s", j.id, j.state_name, j.error_message);
    TU_OK(gx_client_result(C, j.id, r, NULL, &err), err);
}

/* Values JSON has no numbers for, and f16, inline both ways. A NaN or an
 * infinity in a small output came as null and made gx_client_result fail
 * ("value 0 is not a number"), so `gexec result` had nothing to show;
 * inline f16 was refused as an unknown dtype (and the client said "out of
 * memory" for f16 NaN). */
static void test_nonfinite_and_f16_inline(void **state) {
    gx_error err;
    gx_error_clear(&err);
    /* the report's case: reduce_sum of [nan, inf, 1] from a .npy blob */
    gx_array *x = NULL, *y = NULL;
    TU_OK(gx_client_parse_inline("f64:nan,inf,1", &x, &err), err);
    char blob[GX_CLIENT_BLOB_ID_MAX];
    TU_OK(gx_client_blob_put(C, x, blob, &err), err);
    gx_array_unref(x);
    gx_jobspec *s;
    TU_OK(gx_jobspec_new("reduce_sum", &s, &err), err);
    TU_OK(gx_jobspec_set_input_blob(s, "x", blob, &err), err);
    gx_client_outputs r;
    run_ok(s, &r);
    const gx_client_output *o = gx_client_outputs_find(&r, "sum");
    assert_non_null(o);
    assert_true(isnan(((double *)o->array->data)[0]));
    gx_client_outputs_free(&r);

    /* NaN, +inf and -inf inline in and out, each still itself */
    TU_OK(gx_client_parse_inline("f64:inf,-inf,nan,1", &x, &err), err);
    TU_OK(gx_client_parse_inline("f64:0,0,0,0.5", &y, &err), err);
    TU_OK(gx_jobspec_new("saxpy", &s, &err), err);
    TU_OK(gx_jobspec_set_arg_text(s, "a=1", &err), err);
    TU_OK(gx_jobspec_set_input_array(s, "x", x, &err), err);
    TU_OK(gx_jobspec_set_input_array(s, "y", y, &err), err);
    gx_array_unref(x);
    gx_array_unref(y);
    run_ok(s, &r);
    const double *v = gx_client_outputs_find(&r, "y")->array->data;
    assert_true(v[0] == INFINITY && v[1] == -INFINITY && isnan(v[2]) && v[3] == 1.5);
    gx_client_outputs_free(&r);

    /* f16 inline: sort carries values of any dtype along with the keys */
    TU_OK(gx_client_parse_inline("f64:3,1,2,0", &x, &err), err);
    TU_OK(gx_client_parse_inline("f16:0.1,nan,-inf,65519", &y, &err), err);
    TU_OK(gx_jobspec_new("sort", &s, &err), err);
    TU_OK(gx_jobspec_set_input_array(s, "keys", x, &err), err);
    TU_OK(gx_jobspec_set_input_array(s, "values", y, &err), err);
    gx_array_unref(x);
    gx_array_unref(y);
    run_ok(s, &r);
    o = gx_client_outputs_find(&r, "values");
    assert_non_null(o);
    assert_int_equal(o->array->dtype, GX_F16);
    static const uint16_t want[] = {0x7bff, 0x7e00, 0xfc00, 0x2e66}; /* 65504, NaN, -inf, 0.1 rounded */
    assert_memory_equal(o->array->data, want, sizeof want);
    gx_client_outputs_free(&r);
}

static void test_refusals(void **state) {
    gx_error err;
    gx_client_job j;
    char *raw = NULL;
    /* bad argument: 400 naming the field */
    int rc = gx_client_submit_json(
        C, "{\"kernel\":\"saxpy\",\"args\":{\"a\":\"lots\"},\"inputs\":{\"x\":{\"dtype\":\"f32\",\"shape\":[1],\"data\":[1]},"
           "\"y\":{\"dtype\":\"f32\",\"shape\":[1],\"data\":[1]}}}",
        &j, &raw, &err);
    assert_int_equal(rc, GX_EINVAL);
    assert_int_equal(gx_client_last_status(C), 400);
    assert_non_null(strstr(err.field, "args"));
    assert_true(err.message[0]);
    assert_non_null(raw);
    assert_non_null(strstr(raw, "\"error\""));
    free(raw);
    /* unknown kernel: 400 GX_EINVAL naming the field (docs/api.md) */
    rc = gx_client_submit_json(C, "{\"kernel\":\"no_such_kernel\"}", &j, NULL, &err);
    assert_int_equal(rc, GX_EINVAL);
    assert_int_equal(gx_client_last_status(C), 400);
    assert_non_null(strstr(err.field, "kernel"));
    /* valid JSON, impossible job: no such device */
    rc = gx_client_submit_json(C, "{\"kernel\":\"spin\",\"device\":\"cpu:99\"}", &j, NULL, &err);
    assert_int_equal(rc, GX_ENODEVICE);
    assert_int_equal(gx_client_last_status(C), 422);
    assert_string_equal(err.field, "device");
    /* malformed JSON */
    rc = gx_client_submit_json(C, "{\"kernel\":", &j, NULL, &err);
    assert_true(rc == GX_EFORMAT || rc == GX_EINVAL);
    assert_int_equal(gx_client_last_status(C), 400);
    /* a NUL byte after a whole object: refused where it is, not taken for
     * the end of the text (the job before it created, what follows unread) */
    {
        static const char nul_body[] = "{\"kernel\":\"spin\"}\n\0garbage";
        int st = 0;
        rc = gx_client_request(C, "POST", "/v1/jobs", nul_body, sizeof nul_body - 1, "application/json", &st, NULL,
                               NULL, &err);
        assert_true(rc < 0);
        assert_int_equal(st, 400);
        assert_string_equal(err.field, "body");
        if (!strstr(err.message, "line 2, column 1")) fail_msg("NUL byte: %s", err.message);
    }
    /* not found */
    assert_int_equal(gx_client_get(C, "999999999", &j, NULL, &err), GX_ENOTFOUND);
    assert_int_equal(gx_client_last_status(C), 404);
    assert_int_equal(gx_client_get(C, "abc", &j, NULL, &err), GX_ENOTFOUND);
    assert_int_equal(gx_client_cancel(C, "999999999", &j, NULL, &err), GX_ENOTFOUND);
    gx_client_outputs r;
    assert_int_equal(gx_client_result(C, "999999999", &r, NULL, &err), GX_ENOTFOUND);
    gx_client_outputs_free(&r);
    gx_array *a = NULL;
    assert_int_equal(gx_client_blob_get(C, "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                        &a, &err),
                     GX_ENOTFOUND);
    /* an upload that is not .npy */
    int status = 0;
    rc = gx_client_request(C, "POST", "/v1/blobs", "hello", 5, "application/octet-stream", &status, NULL, NULL, &err);
    assert_true(rc < 0);
    assert_true(status == 400 || status == 415 || status == 422);
    /* a method the route does not take */
    rc = gx_client_request(C, "PUT", "/v1/jobs", "{}", 2, NULL, &status, NULL, NULL, &err);
    assert_true(rc < 0);
    assert_int_equal(status, 405);
    /* a call refused before it sends anything got no answer: status 0, not
     * the 405 above (it was kept by these calls) */
    gx_client_batch b;
    gx_client_stream_opts none = {0};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(gx_client_request(C, "PUT", "/v1/jobs", "{}", 2, NULL, &status, NULL, NULL, &err), GX_EUNSUPPORTED);
        assert_int_equal(gx_client_last_status(C), 405);
        switch (i) {
        case 0: rc = gx_client_result(C, "", &r, NULL, &err); gx_client_outputs_free(&r); break;
        case 1: rc = gx_client_submit_json(C, NULL, &j, NULL, &err); break;
        case 2: rc = gx_client_submit_batch_json(C, "[", &b, NULL, &err); gx_client_batch_free(&b); break;
        case 3: rc = gx_client_events_follow(C, &none, &err); break;
        case 4: rc = gx_client_blob_get(C, "", &a, &err); break;
        default: rc = gx_client_submit(C, NULL, &j, NULL, &err); break;
        }
        assert_true(rc < 0);
        if (gx_client_last_status(C)) fail_msg("call %d refused locally: last status %d", i, gx_client_last_status(C));
    }
}

static void test_cancel_and_states(void **state) {
    gx_error err;
    gx_client_job j;
    char id[GX_CLIENT_ID_MAX];
    submit("{\"kernel\":\"spin\",\"args\":{\"us\":30000000}}", id);
    /* wait gives up on time */
    gx_client_wait_opts o;
    gx_client_wait_opts_init(&o);
    o.timeout_ms = 200;
    assert_int_equal(gx_client_wait(C, id, &o, &j, &err), GX_ETIMEDOUT);
    assert_false(gx_client_job_is_final(&j));
    /* result before the end: 409 */
    gx_client_outputs r;
    assert_int_equal(gx_client_result(C, id, &r, NULL, &err), GX_ESTATE);
    assert_int_equal(gx_client_last_status(C), 409);
    gx_client_outputs_free(&r);
    char *raw = NULL;
    TU_OK(gx_client_cancel(C, id, &j, &raw, &err), err);
    assert_non_null(raw);
    free(raw);
    wait_final(id, &j);
    assert_string_equal(j.state_name, "cancelled");
    /* cancelling again: 409 */
    assert_int_equal(gx_client_cancel(C, id, &j, NULL, &err), GX_ESTATE);
    assert_int_equal(gx_client_last_status(C), 409);
    assert_true(err.message[0]);
    assert_int_equal(gx_client_result(C, id, &r, NULL, &err), GX_ESTATE);
    assert_non_null(strstr(err.message, "cancelled"));
    gx_client_outputs_free(&r);

    /* a run-time limit ends in timed_out */
    submit("{\"kernel\":\"spin\",\"args\":{\"us\":20000000},\"timeout_ms\":100}", id);
    wait_final(id, &j);
    assert_string_equal(j.state_name, "timed_out");
    assert_int_equal(j.state, GX_JOB_TIMED_OUT);
}

static void test_idempotency_deps_batch(void **state) {
    gx_error err;
    gx_client_job j1, j2;
    const char *spec = "{\"kernel\":\"spin\",\"args\":{\"us\":1000},\"idempotency_key\":\"itest-key-1\"}";
    TU_OK(gx_client_submit_json(C, spec, &j1, NULL, &err), err);
    assert_true(j1.created);
    TU_OK(gx_client_submit_json(C, spec, &j2, NULL, &err), err);
    assert_false(j2.created);
    assert_int_equal(gx_client_last_status(C), 200);
    assert_string_equal(j1.id, j2.id);

    char a[GX_CLIENT_ID_MAX], b[GX_CLIENT_ID_MAX], spec2[256];
    submit("{\"kernel\":\"spin\",\"args\":{\"us\":200000}}", a);
    snprintf(spec2, sizeof spec2, "{\"kernel\":\"spin\",\"depends_on\":[\"%s\"]}", a);
    submit(spec2, b);
    gx_client_job j;
    TU_OK(gx_client_get(C, b, &j, NULL, &err), err);
    if (!gx_client_job_is_final(&j) && strcmp(j.state_name, "waiting") == 0)
        assert_string_equal(j.waiting_on, a);
    wait_final(b, &j);
    assert_string_equal(j.state_name, "succeeded");

    gx_client_batch bt;
    TU_OK(gx_client_submit_batch_json(
              C,
              "{\"jobs\":[{\"kernel\":\"spin\",\"args\":{\"us\":1000}},{\"kernel\":\"no_such_kernel\"},"
              "{\"kernel\":\"spin\",\"depends_on\":[\"@0\"]}]}",
              &bt, NULL, &err),
          err);
    assert_int_equal(bt.n, 3);
    assert_int_equal(bt.refused, 1);
    assert_true(bt.items[0].id[0]);
    assert_int_equal(bt.items[0].error.code, 0);
    assert_false(bt.items[1].id[0]);
    assert_true(bt.items[1].error.code < 0);
    assert_true(bt.items[1].status >= 400);
    /* a refused member may or may not take the whole batch down; if the
     * third was accepted it must run after the first */
    if (bt.items[2].id[0]) {
        wait_final(bt.items[2].id, &j);
        assert_string_equal(j.state_name, "succeeded");
    }
    gx_client_batch_free(&bt);
}

static void test_list_and_events(void **state) {
    gx_error err;
    char ids[5][GX_CLIENT_ID_MAX];
    for (int i = 0; i < 5; i++) {
        char spec[160];
        snprintf(spec, sizeof spec,
                 "{\"kernel\":\"spin\",\"args\":{\"us\":1000},\"labels\":{\"suite\":\"list-test\",\"half\":\"%s\"}}",
                 i % 2 ? "odd" : "even");
        submit(spec, ids[i]);
    }
    gx_client_job j;
    for (int i = 0; i < 5; i++) wait_final(ids[i], &j);

    const char *labels[] = {"suite=list-test"};
    gx_client_list_opts o = {.state = "succeeded", .kernel = "spin", .labels = labels, .nlabels = 1, .limit = 2};
    int seen = 0, pages = 0;
    char cursor[GX_CLIENT_ID_MAX] = "";
    do {
        o.cursor = cursor[0] ? cursor : NULL;
        gx_client_job_list l;
        TU_OK(gx_client_list(C, &o, &l, NULL, &err), err);
        assert_true(l.n <= 2);
        for (size_t i = 0; i < l.n; i++) {
            assert_int_equal(l.jobs[i].state, GX_JOB_SUCCEEDED);
            for (int k = 0; k < 5; k++) seen += !strcmp(l.jobs[i].id, ids[k]);
        }
        snprintf(cursor, sizeof cursor, "%s", l.next_cursor);
        gx_client_job_list_free(&l);
        pages++;
    } while (cursor[0] && pages < 10);
    assert_int_equal(seen, 5);
    assert_true(pages >= 3);

    gx_client_list_opts none = {.labels = (const char *[]){"suite=nothing-has-this"}, .nlabels = 1};
    gx_client_job_list l;
    TU_OK(gx_client_list(C, &none, &l, NULL, &err), err);
    assert_int_equal(l.n, 0);
    gx_client_job_list_free(&l);
    /* several labels: all must match (the second was ignored before) */
    gx_client_list_opts two = {.labels = (const char *[]){"suite=list-test", "half=odd"}, .nlabels = 2, .limit = 100};
    TU_OK(gx_client_list(C, &two, &l, NULL, &err), err);
    assert_int_equal(l.n, 2);
    for (size_t i = 0; i < l.n; i++) assert_true(!strcmp(l.jobs[i].id, ids[1]) || !strcmp(l.jobs[i].id, ids[3]));
    gx_client_job_list_free(&l);
    gx_client_list_opts never = {.labels = (const char *[]){"suite=list-test", "half=neither"}, .nlabels = 2};
    TU_OK(gx_client_list(C, &never, &l, NULL, &err), err);
    assert_int_equal(l.n, 0);
    gx_client_job_list_free(&l);

    /* history of a finished job */
    gx_client_event *evs;
    size_t n;
    TU_OK(gx_client_job_events(C, ids[0], &evs, &n, NULL, &err), err);
    assert_true(n >= 2);
    assert_string_equal(evs[0].state_name, "queued");
    assert_string_equal(evs[n - 1].state_name, "succeeded");
    for (size_t i = 1; i < n; i++) assert_true(evs[i].seq > evs[i - 1].seq);
    free(evs);
    assert_int_equal(gx_client_job_events(C, "999999999", &evs, &n, NULL, &err), GX_ENOTFOUND);
}

typedef struct follow {
    char id[GX_CLIENT_ID_MAX];
    int running, final;
    int events;
    int error_code; /* of the final event */
    char error_message[GX_CLIENT_MSG_MAX];
} follow;

static int on_event(void *ctx, const gx_client_event *ev, const char *data) {
    follow *f = ctx;
    assert_non_null(strstr(data, "\"state\""));
    if (strcmp(ev->id, f->id)) return 0;
    f->events++;
    if (ev->state == GX_JOB_RUNNING) f->running = 1;
    if (ev->state >= 0 && gx_job_state_is_final(ev->state)) {
        f->final = ev->state;
        f->error_code = ev->error_code;
        snprintf(f->error_message, sizeof f->error_message, "%s", ev->error_message);
        return 1;
    }
    return 0;
}

static void test_event_stream(void **state) {
    gx_error err;
    /* a 1.5 s job submitted by a second client; the stream must deliver
     * its final event (and the first client is busy with the stream) */
    gx_client_opts co;
    gx_client_opts_init(&co);
    co.server = daemon_.url;
    co.api_key = daemon_.key;
    gx_client *c2;
    TU_OK(gx_client_new(&co, &c2, &err), err);
    follow f = {0};
    gx_client_job j;
    TU_OK(gx_client_submit_json(c2, "{\"kernel\":\"spin\",\"args\":{\"us\":1500000}}", &j, NULL, &err), err);
    snprintf(f.id, sizeof f.id, "%s", j.id);
    gx_client_stream_opts so = {.job = f.id, .timeout_ms = 20000, .on_event = on_event, .ctx = &f};
    TU_OK(gx_client_events_follow(C, &so, &err), err);
    assert_int_equal(f.final, GX_JOB_SUCCEEDED);
    assert_true(f.events >= 1);
    assert_int_equal(f.error_code, 0);

    /* a failure on the stream carries its code (the stream sends the
     * code's name alone; it read as 0, no error) */
    follow t = {0};
    TU_OK(gx_client_submit_json(c2, "{\"kernel\":\"spin\",\"args\":{\"us\":5000000},\"timeout_ms\":200}", &j, NULL,
                                &err),
          err);
    snprintf(t.id, sizeof t.id, "%s", j.id);
    so = (gx_client_stream_opts){.job = t.id, .timeout_ms = 20000, .on_event = on_event, .ctx = &t};
    TU_OK(gx_client_events_follow(C, &so, &err), err);
    assert_int_equal(t.final, GX_JOB_TIMED_OUT);
    assert_int_equal(t.error_code, GX_ETIMEDOUT);
    assert_true(t.error_message[0]);

    /* a stream with nothing to say times out */
    follow none = {.id = "0"};
    so = (gx_client_stream_opts){.job = "999999999", .timeout_ms = 500, .on_event = on_event, .ctx = &none};
    int rc = gx_client_events_follow(C, &so, &err);
    assert_true(rc == GX_ETIMEDOUT || rc == GX_ENOTFOUND);
    gx_client_free(c2);
}

int main(void) {
    char bin[1024];
    if (gxd_find("gexecd", "GEXECD", bin, sizeof bin)) {
        printf("skipped: gexecd not built\n");
        return GXD_SKIP;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_info),
        cmocka_unit_test(test_saxpy_inline_and_blob),
        cmocka_unit_test(test_nonfinite_and_f16_inline),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cancel_and_states),
        cmocka_unit_test(test_idempotency_deps_batch),
        cmocka_unit_test(test_list_and_events),
        cmocka_unit_test(test_event_stream),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
