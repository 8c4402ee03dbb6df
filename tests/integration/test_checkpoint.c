/*
 * test_checkpoint.c - durable checkpoints through a real gexecd: a long
 * linreg_gd job saves its state every K steps; gexecd is SIGKILLed once a
 * checkpoint is in the SQLite file, restarted, and the job resumes from
 * that step (its events say so) and ends with outputs bit-for-bit equal to
 * an uninterrupted run's (the loss array is a blob: equal content, equal
 * id). Also: the checkpoint row is gone once the job ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "itest.h"

#define ROWS 8000
#define COLS 16
#define STEPS 5000
#define EVERY 100

static it_daemon D;

/* A little-endian f64 .npy of shape (rows,) or (rows, cols) with the
 * values of f(i). */
static char *npy_f64(int64_t rows, int64_t cols, double (*f)(int64_t), size_t *len) {
    char hdr[128];
    int hl;
    if (cols)
        hl = snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)rows, (long long)cols);
    else
        hl = snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (%lld,), }",
                      (long long)rows);
    int64_t n = rows * (cols ? cols : 1);
    size_t total = 128 + (size_t)n * 8;
    char *b = malloc(total);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY\x01\x00\x76\x00", 10);
    memcpy(b + 10, hdr, (size_t)hl);
    memset(b + 10 + hl, ' ', (size_t)(117 - hl));
    b[127] = '\n';
    for (int64_t i = 0; i < n; i++) {
        double v = f(i);
        memcpy(b + 128 + i * 8, &v, 8);
    }
    *len = total;
    return b;
}

static double fx(int64_t i) { return (double)((i * 2654435761u) % 1000) / 1000.0 - 0.5; }
static double fy(int64_t i) { return (double)((i * 40503u) % 997) / 997.0; }

static void upload(const char *bytes, size_t len, char *id, size_t cap) {
    it_resp r;
    assert_int_equal(it_req(&D, "POST", "/v1/blobs", bytes, len, "application/octet-stream", &r), 0);
    if (r.status != 201 && r.status != 200) fail_msg("blob upload: %ld %s", r.status, r.body);
    snprintf(id, cap, "%s", it_str(&r, "id"));
    it_resp_free(&r);
}

static void submit(const char *body, char *id, size_t cap) {
    it_resp r;
    assert_int_equal(it_req(&D, "POST", "/v1/jobs", body, strlen(body), NULL, &r), 0);
    if (r.status != 202) fail_msg("submit: %ld %s", r.status, r.body);
    snprintf(id, cap, "%s", it_str(&r, "id"));
    it_resp_free(&r);
}

/* Step of the job's stored checkpoint (-1: none) and its state. */
static long long stored_checkpoint(const char *id, int *state) {
    char sql[200];
    sqlite3 *db = it_store_open(&D, 0);
    assert_non_null(db);
    snprintf(sql, sizeof sql,
             "SELECT j.state, coalesce((SELECT step FROM checkpoints c WHERE c.job_id = j.id), -1)"
             " FROM jobs j WHERE j.id = %s",
             id);
    sqlite3_stmt *st = NULL;
    long long step = -1;
    *state = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        *state = sqlite3_column_int(st, 0);
        step = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return step;
}

static json_t *outputs_of(const char *id) {
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    it_resp r;
    assert_int_equal(it_req(&D, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *o = json_incref(json_object_get(r.json, "outputs"));
    it_resp_free(&r);
    return o;
}

static void resume_after_sigkill(void **st) {
    (void)st;
    memset(&D, 0, sizeof D);
    D.extra_env[0] = "GEXEC_ENGINE_CPU_WORKERS=2";
    D.extra_env[1] = "GEXEC_CUDA_ENABLED=false";
    assert_int_equal(it_start(&D), 0);
    size_t lx, ly;
    char *x = npy_f64(ROWS, COLS, fx, &lx), *y = npy_f64(ROWS, 0, fy, &ly);
    char bx[100], by[100], body[600], id[24], ref[24];
    upload(x, lx, bx, sizeof bx);
    upload(y, ly, by, sizeof by);
    free(x);
    free(y);
    snprintf(body, sizeof body,
             "{\"kernel\":\"linreg_gd\",\"args\":{\"steps\":%d,\"lr\":0.05,\"checkpoint_every\":%d},"
             "\"inputs\":{\"x\":{\"blob\":\"%s\"},\"y\":{\"blob\":\"%s\"}}}",
             STEPS, EVERY, bx, by);
    submit(body, id, sizeof id);
    /* wait for a checkpoint past the first few in the file, job unfinished */
    long long seen = -1;
    int state = -1;
    for (int i = 0; i < 3000 && seen < 3 * EVERY; i++) {
        seen = stored_checkpoint(id, &state);
        if (state >= 5) fail_msg("job %s ended (state %d) before a checkpoint was seen; too fast a machine?", id, state);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    assert_true(seen >= 3 * EVERY);
    it_resp r;
    assert_int_equal(it_req(&D, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    const char *m = strstr(r.body, "gexec_checkpoints_total{result=\"stored\"} ");
    assert_non_null(m);
    assert_true(atol(m + strlen("gexec_checkpoints_total{result=\"stored\"} ")) >= 2); /* the counter may lag the commit by one */
    it_resp_free(&r);
    it_kill9(&D);
    int st_after;
    long long kept = stored_checkpoint(id, &st_after);
    assert_true(kept >= seen);
    assert_true(st_after < 5);
    fprintf(stderr, "checkpoint: killed with the checkpoint of step %lld stored\n", kept);
    assert_int_equal(it_start(&D), 0);
    assert_string_equal(it_wait_job(&D, id, 120000), "succeeded");
    /* the events say where it resumed */
    char path[96], want[64];
    snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
    assert_int_equal(it_req(&D, "GET", path, NULL, 0, NULL, &r), 0);
    snprintf(want, sizeof want, "resumed from step %lld", kept);
    if (!strstr(r.body, want)) fail_msg("events lack '%s': %s", want, r.body);
    it_resp_free(&r);
    /* the checkpoint went with the job */
    int fin;
    assert_int_equal(stored_checkpoint(id, &fin), -1);
    assert_int_equal(fin, 5);
    /* the same job without interruption gives the same bits */
    submit(body, ref, sizeof ref);
    assert_string_equal(it_wait_job(&D, ref, 120000), "succeeded");
    json_t *a = outputs_of(id), *b = outputs_of(ref);
    if (!json_equal(a, b)) {
        char *sa = json_dumps(a, JSON_COMPACT), *sb = json_dumps(b, JSON_COMPACT);
        fail_msg("resumed outputs differ:\n%.600s\n%.600s", sa, sb);
    }
    /* loss is a blob (STEPS > inline limit): equal ids mean equal bytes */
    assert_non_null(json_object_get(json_object_get(a, "loss"), "blob"));
    json_decref(a);
    json_decref(b);
    assert_int_equal(it_finish(&D), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(resume_after_sigkill)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
