/*
 * test_plugins.c - kernel plugins against a real gexecd: with
 * kernels.plugins naming tests/unit/kplugin (built as libgexec_kplugin.so)
 * its kernel plug_scale is in GET /v1/kernels with its schema, runs a job to
 * the right answer, is refused with its own argument checks, and is there
 * again after a restart (a stored job of it restores). A plugin that cannot
 * be loaded, exports no gx_kernel_plugin_init or fails in it stops the
 * start (exit 1) with a message naming the path and why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

static char plugin_env[512], plugin_path[400];

/* The whole of the daemon's log. */
static char *read_log(const it_daemon *d) {
    FILE *f = fopen(d->log, "r");
    if (!f) return strdup("");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

static void plugin_kernel_runs(void **st) {
    (void)st;
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = plugin_env;
    assert_int_equal(it_start(&d), 0);
    char *log = read_log(&d);
    assert_non_null(strstr(log, "kernel plugin "));
    assert_non_null(strstr(log, ": 1 kernel(s)"));
    free(log);
    it_resp r;
    assert_int_equal(it_req(&d, "GET", "/v1/kernels", NULL, 0, NULL, &r), 0);
    assert_non_null(strstr(r.body, "\"name\":\"plug_scale\""));
    assert_non_null(strstr(r.body, "y = a * x (a test kernel plugin)"));
    it_resp_free(&r);
    const char *job = "{\"kernel\":\"plug_scale\",\"args\":{\"a\":2.5},"
                      "\"inputs\":{\"x\":{\"dtype\":\"f64\",\"data\":[1,2,-4]}}}";
    char id[32], path[64];
    assert_int_equal(it_submit(&d, job, id, sizeof id), 202);
    assert_string_equal(it_wait_job(&d, id, 10000), "succeeded");
    snprintf(path, sizeof path, "/v1/jobs/%s/result", id);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    fprintf(stderr, "plug_scale result: %s\n", r.body);
    assert_non_null(strstr(r.body, "[2.5,5.0,-10.0]"));
    it_resp_free(&r);
    /* the registry checks its declaration: a missing argument, a bad dtype */
    const char *bad = "{\"kernel\":\"plug_scale\",\"inputs\":{\"x\":{\"dtype\":\"i32\",\"data\":[1]}}}";
    assert_int_equal(it_req(&d, "POST", "/v1/jobs", bad, strlen(bad), NULL, &r), 0);
    assert_int_equal(r.status, 400);
    fprintf(stderr, "refused: %s\n", r.body);
    it_resp_free(&r);
    /* a restart loads it again: a queued job of it (none here) would restore */
    assert_int_equal(it_stop(&d), 0);
    assert_int_equal(it_start(&d), 0);
    assert_int_equal(it_req(&d, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    it_resp_free(&r);
    assert_int_equal(it_finish(&d), 0);
}

/* gexecd with kernels.plugins = value must not start; its log says why. */
static void start_refused(const char *value, const char *fail_env, const char *want) {
    char env[600];
    snprintf(env, sizeof env, "GEXEC_KERNELS_PLUGINS=%s", value);
    it_daemon d;
    memset(&d, 0, sizeof d);
    d.extra_env[0] = env;
    d.extra_env[1] = fail_env;
    assert_int_not_equal(it_start(&d), 0);
    char *log = read_log(&d);
    fprintf(stderr, "refused start: %s", strstr(log, "kernel") ? strstr(log, "kernel") : log);
    assert_non_null(strstr(log, want));
    free(log);
    it_stop(&d);
    it_cleanup(&d);
}

static void bad_plugins_stop_the_start(void **st) {
    (void)st;
    start_refused("/nonexistent/libnothing.so", NULL, "kernel plugin /nonexistent/libnothing.so cannot be loaded");
    /* a shared object that is no kernel plugin (the stand-in GPU backend) */
    char other[600];
    snprintf(other, sizeof other, "%s/libgexec_fakegpu.so", getenv("GX_BUILD_DIR"));
    start_refused(other, NULL, "is no kernel plugin: it exports no gx_kernel_plugin_init()");
    start_refused(plugin_path, "GX_KPLUGIN_FAIL=1", "failed to start: asked to fail (GX_KPLUGIN_FAIL)");
    /* listed twice: its kernel is there already */
    char twice[900];
    snprintf(twice, sizeof twice, "%s:%s", plugin_path, plugin_path);
    start_refused(twice, NULL, "failed to start");
}

int main(void) {
    const char *b = getenv("GX_BUILD_DIR");
    if (!b) {
        printf("skipped: GX_BUILD_DIR not set\n");
        return 77;
    }
    snprintf(plugin_path, sizeof plugin_path, "%s/libgexec_kplugin.so", b);
    if (access(plugin_path, R_OK)) {
        printf("skipped: %s not built\n", plugin_path);
        return 77;
    }
    snprintf(plugin_env, sizeof plugin_env, "GEXEC_KERNELS_PLUGINS=%s", plugin_path);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plugin_kernel_runs),
        cmocka_unit_test(bad_plugins_stop_the_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
