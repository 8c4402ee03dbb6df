/*
 * test_tls.c - the API over HTTPS: a real gexecd with a self-signed
 * certificate made at test time, and clients that trust it, do not, or
 * offer protocol versions the daemon must refuse.
 *
 * One daemon serves the group. Also: the daemon refuses to start (and
 * --check-config fails) naming the key when the files are missing or do
 * not belong together, and the CLI over https with and without --cacert.
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "gexec/gexec_client.h"
#include "testutil.h"
#include "netutil.h"

static gxd daemon_;
static char dir[64], cert[128], key[128], other_key[128], other_cert[128];
static char env_cert[160], env_key[160];

static int group_setup(void **state) {
    (void)state;
    unsetenv("GEXEC_CACERT");
    snprintf(dir, sizeof dir, "/tmp/gexec-tls-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", dir);
    if (tu_make_cert(cert, key) || tu_make_cert(other_cert, other_key)) return -1;
    snprintf(env_cert, sizeof env_cert, "GEXEC_TLS_CERT=%s", cert);
    snprintf(env_key, sizeof env_key, "GEXEC_TLS_KEY=%s", key);
    const char *env[] = {env_cert, env_key, NULL};
    int rc = gxd_start(&daemon_, env);
    if (rc == GXD_SKIP) exit(GXD_SKIP);
    return rc ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    int rc = gxd_stop(&daemon_, 0);
    const char *files[] = {cert, key, other_cert, other_key};
    for (int i = 0; i < 4; i++) unlink(files[i]);
    rmdir(dir);
    return rc == 0 ? 0 : -1;
}

static gx_client *client(const char *ca, int insecure) {
    gx_client_opts o;
    gx_client_opts_init(&o);
    o.server = daemon_.url;
    o.api_key = daemon_.key;
    o.ca_file = ca;
    o.insecure = insecure;
    o.timeout_ms = 20000;
    gx_client *c = NULL;
    gx_error err;
    TU_OK(gx_client_new(&o, &c, &err), err);
    return c;
}

/* With the CA file: the whole job cycle over https. */
static void test_https_job_cycle(void **state) {
    (void)state;
    assert_int_equal(strncmp(daemon_.url, "https://", 8), 0);
    gx_client *c = client(cert, 0);
    gx_error err;
    gx_client_job j;
    TU_OK(gx_client_submit_json(c,
                                "{\"kernel\":\"saxpy\",\"args\":{\"a\":2},\"inputs\":{"
                                "\"x\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[1,2,3]},"
                                "\"y\":{\"dtype\":\"f32\",\"shape\":[3],\"data\":[10,20,30]}}}",
                                &j, NULL, &err),
          err);
    assert_int_equal(gx_client_last_status(c), 202);
    gx_client_wait_opts wo;
    gx_client_wait_opts_init(&wo);
    wo.timeout_ms = 30000;
    TU_OK(gx_client_wait(c, j.id, &wo, &j, &err), err);
    assert_string_equal(j.state_name, "succeeded");
    gx_client_job g;
    TU_OK(gx_client_get(c, j.id, &g, NULL, &err), err);
    assert_string_equal(g.id, j.id);
    gx_client_outputs r;
    TU_OK(gx_client_result(c, j.id, &r, NULL, &err), err);
    const gx_client_output *o = gx_client_outputs_find(&r, "y");
    assert_non_null(o);
    assert_int_equal(o->array->count, 3);
    assert_true(((float *)o->array->data)[2] == 36.0f);
    gx_client_outputs_free(&r);
    gx_client_free(c);
}

/* Without the CA (system store only) the certificate is refused, clearly;
 * with GEXEC_CACERT it is trusted; insecure only when asked for. */
static void test_https_verifies(void **state) {
    (void)state;
    gx_client *c = client(NULL, 0);
    gx_error err;
    gx_error_clear(&err);
    assert_int_equal(gx_client_health(c, NULL, &err), GX_EIO);
    assert_int_equal(gx_client_last_status(c), 0);
    assert_non_null(strstr(err.message, "certificate"));
    gx_client_free(c);

    c = client(other_cert, 0); /* a CA that did not sign it */
    assert_int_equal(gx_client_health(c, NULL, &err), GX_EIO);
    assert_non_null(strstr(err.message, "certificate"));
    gx_client_free(c);

    setenv("GEXEC_CACERT", cert, 1);
    c = client(NULL, 0);
    TU_OK(gx_client_health(c, NULL, &err), err);
    gx_client_free(c);
    unsetenv("GEXEC_CACERT");

    c = client(NULL, 1);
    TU_OK(gx_client_health(c, NULL, &err), err);
    gx_client_free(c);
}

/* TLS 1.2 and 1.3 are served; 1.0 and 1.1 are refused by the daemon (the
 * test client allows them on its side). */
static void test_tls_versions(void **state) {
    (void)state;
    int v = 0;
    assert_int_equal(tu_tls_get(daemon_.port, TLS1_3_VERSION, TLS1_3_VERSION, cert, "/healthz", &v), 200);
    assert_int_equal(v, TLS1_3_VERSION);
    assert_int_equal(tu_tls_get(daemon_.port, TLS1_2_VERSION, TLS1_2_VERSION, cert, "/healthz", &v), 200);
    assert_int_equal(v, TLS1_2_VERSION);
    assert_int_equal(tu_tls_get(daemon_.port, TLS1_1_VERSION, TLS1_1_VERSION, cert, "/healthz", NULL), -1);
    assert_int_equal(tu_tls_get(daemon_.port, TLS1_VERSION, TLS1_1_VERSION, cert, "/healthz", NULL), -1);
    /* still serving */
    assert_int_equal(tu_tls_get(daemon_.port, TLS1_2_VERSION, TLS1_3_VERSION, cert, "/healthz", NULL), 200);
}

/* Plain HTTP to the TLS port gets no HTTP answer. */
static void test_plain_http_not_served(void **state) {
    (void)state;
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[512];
    long n = tu_raw_exchange(daemon_.port, req, sizeof req - 1, buf, sizeof buf, 3000);
    assert_true(n >= 0);
    assert_null(strstr(buf, "HTTP/1."));
    assert_null(strstr(buf, "alive"));
    gx_client *c = client(cert, 0); /* and the daemon keeps serving */
    gx_error err;
    TU_OK(gx_client_health(c, NULL, &err), err);
    gx_client_free(c);
}

/* Run a command line through sh; its exit code, stderr into errbuf. */
static int run(const char *cmd, char *errbuf, size_t cap) {
    char path[128], full[4096];
    snprintf(path, sizeof path, "%s/stderr.txt", dir);
    snprintf(full, sizeof full, "%s 2>%s >/dev/null", cmd, path);
    int st = system(full);
    errbuf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(errbuf, 1, cap - 1, f);
        errbuf[n] = '\0';
        fclose(f);
    }
    unlink(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The CLI over https: --cacert works; without it a clear certificate
 * message and exit 5 (transport); --insecure works and warns. */
static void test_cli_https(void **state) {
    (void)state;
    char bin[1024], cmd[2048], err[2048];
    if (gxd_find("gexec", "GEXEC", bin, sizeof bin)) skip();
    snprintf(cmd, sizeof cmd, "env -u GEXEC_CACERT GEXEC_API_KEY=%s '%s' --server %s --cacert '%s' health",
             daemon_.key, bin, daemon_.url, cert);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd,
             "env -u GEXEC_CACERT GEXEC_API_KEY=%s '%s' --server %s --cacert '%s' submit -k spin --wait",
             daemon_.key, bin, daemon_.url, cert);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "env GEXEC_CACERT='%s' GEXEC_API_KEY=%s '%s' --server %s health", cert, daemon_.key,
             bin, daemon_.url);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "env -u GEXEC_CACERT GEXEC_API_KEY=%s '%s' --server %s --retries 0 get 1", daemon_.key,
             bin, daemon_.url);
    assert_int_equal(run(cmd, err, sizeof err), 5);
    assert_non_null(strstr(err, "certificate"));
    assert_non_null(strstr(err, "--cacert"));
    snprintf(cmd, sizeof cmd, "env -u GEXEC_CACERT GEXEC_API_KEY=%s '%s' --server %s --insecure health",
             daemon_.key, bin, daemon_.url);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    assert_non_null(strstr(err, "warning: --insecure"));
}

/* A missing file or a key of another certificate: --check-config exits 2,
 * and so does the start, before anything runs, each naming the key. */
static void test_bad_tls_config(void **state) {
    (void)state;
    char cmd[2048], err[2048], data[128];
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(cmd, sizeof cmd, "env GEXEC_TLS_CERT=%s/none.pem GEXEC_TLS_KEY='%s' '%s' --check-config", dir, key,
             daemon_.bin);
    assert_int_equal(run(cmd, err, sizeof err), 2);
    assert_non_null(strstr(err, "tls.cert"));
    snprintf(cmd, sizeof cmd, "env GEXEC_TLS_CERT='%s' GEXEC_TLS_KEY='%s' '%s' --check-config", cert, other_key,
             daemon_.bin);
    assert_int_equal(run(cmd, err, sizeof err), 2);
    assert_non_null(strstr(err, "tls.key"));
    snprintf(cmd, sizeof cmd, "env GEXEC_TLS_CERT='%s' GEXEC_TLS_KEY='%s' '%s' --check-config", cert, key,
             daemon_.bin);
    assert_int_equal(run(cmd, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd,
             "env -u GEXEC_CONFIG GEXEC_LISTEN=127.0.0.1:0 GEXEC_DATA_DIR='%s' GEXEC_ADMIN_KEY=%s "
             "GEXEC_TLS_CERT='%s' GEXEC_TLS_KEY='%s' '%s'",
             data, daemon_.key, cert, other_key, daemon_.bin);
    assert_int_equal(run(cmd, err, sizeof err), 2); /* refused before anything runs */
    assert_non_null(strstr(err, "tls.key"));
    char rm[256];
    snprintf(rm, sizeof rm, "rm -rf '%s'", data);
    assert_int_equal(system(rm), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_job_cycle),  cmocka_unit_test(test_https_verifies),
        cmocka_unit_test(test_tls_versions),     cmocka_unit_test(test_plain_http_not_served),
        cmocka_unit_test(test_cli_https),        cmocka_unit_test(test_bad_tls_config),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
