/*
 * test_config.c - gexecd's configuration: defaults, the YAML loader, GEXEC_*
 * overrides, every value type's edge cases, the error message (key and line)
 * of each kind of mistake, finalize, dump round trips, and that the committed
 * config/gexec.yaml.sample is exactly what the key table generates.
 *
 * After changing the key table, regenerate the sample with
 *   GX_UPDATE_SAMPLE=1 GX_SOURCE_DIR=$PWD build/test_config
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_config.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

static void cfg_defaults(gx_config *c) { assert_int_equal(gx_config_defaults(c), 0); }

/* Load text over defaults; returns the code, err filled. */
static int load(gx_config *c, const char *text, gx_error *err) {
    cfg_defaults(c);
    return gx_config_load_mem(c, text, strlen(text), err);
}

/* Load text expecting failure with code, naming field at line, with a
 * message equal to msg (or containing it when contains). */
static void expect_err(const char *text, int code, const char *field, long line, const char *msg,
                       int contains) {
    gx_config c;
    gx_error err;
    int rc = load(&c, text, &err);
    if (rc != code || strcmp(err.field, field) || err.pos != line ||
        (contains ? !strstr(err.message, msg) : strcmp(err.message, msg)))
        fail_msg("input:\n%s\ngot %s field '%s' pos %ld message '%s'\nwant %s field '%s' pos %ld "
                 "message %s'%s'",
                 text, gx_err_name(rc), err.field, err.pos, err.message, gx_err_name(code), field,
                 line, contains ? "containing " : "", msg);
    gx_config_free(&c);
}

/* gx_config_set then gx_config_get. */
static void set_get(const char *key, const char *in, const char *want) {
    gx_config c;
    gx_error err;
    char buf[256];
    cfg_defaults(&c);
    int rc = gx_config_set(&c, key, in, &err);
    if (rc) fail_msg("%s = '%s': %s", key, in, err.message);
    assert_int_equal(gx_config_get(&c, key, buf, sizeof buf), 0);
    if (strcmp(buf, want)) fail_msg("%s = '%s': got '%s', want '%s'", key, in, buf, want);
    gx_config_free(&c);
}

/* gx_config_set must refuse, with a message containing msg. */
static void set_bad(const char *key, const char *in, const char *msg) {
    gx_config c;
    gx_error err;
    cfg_defaults(&c);
    char before[256], after[256];
    assert_int_equal(gx_config_get(&c, key, before, sizeof before), 0);
    int rc = gx_config_set(&c, key, in, &err);
    if (rc != GX_EINVAL || !strstr(err.message, msg) || strcmp(err.field, key) || err.pos != -1)
        fail_msg("%s = '%s': got %s field '%s' '%s', want GX_EINVAL containing '%s'", key, in,
                 gx_err_name(rc), err.field, err.message, msg);
    assert_int_equal(gx_config_get(&c, key, after, sizeof after), 0);
    assert_string_equal(before, after); /* unchanged */
    gx_config_free(&c);
}

/* The dump of c as a malloc'd string. */
static char *dump_str(const gx_config *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(gx_config_dump(c, f), 0);
    fclose(f);
    return buf;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + *len, 1, cap - *len - 1, f);
        if (!got) break;
        *len += got;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

/* ---- defaults and the table ----------------------------------------------- */

static void defaults(void **st) {
    (void)st;
    gx_config c;
    cfg_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:8080");
    assert_string_equal(c.data_dir, "./gexec-data");
    assert_string_equal(c.default_tenant, "default");
    assert_int_equal(c.shutdown_timeout_ms, 30000);
    assert_int_equal(c.store.backend, GX_CFG_STORE_SQLITE);
    assert_null(c.store.path);
    assert_null(c.store.dsn);
    assert_int_equal(c.store.synchronous, GX_CFG_SYNC_FULL);
    assert_int_equal(c.store.commit_delay_us, 0);
    assert_null(c.blobs.dir);
    assert_int_equal(c.engine.cpu_workers, 0);
    assert_int_equal(c.engine.cpu_mem, 0);
    assert_int_equal(c.engine.placement, GX_CFG_PLACE_LEAST_LOADED);
    assert_int_equal(c.engine.fair_halflife_ms, 60000);
    assert_int_equal(c.engine.max_batch, 256);
    assert_true(c.engine.batch_quantum_us == 2000.0);
    assert_int_equal(c.engine.max_jobs, 1 << 26);
    assert_int_equal(c.engine.hang_grace_ms, 5000);
    assert_int_equal(c.engine.poison_faults, 2);
    assert_int_equal(c.engine.recovery_attempts, 3);
    assert_int_equal(c.batching.max_batch, 64);
    assert_int_equal(c.batching.max_delay_us, 0);
    assert_true(c.cuda.enabled);
    assert_null(c.cuda.plugin);
    assert_int_equal(c.http.threads, 0);
    assert_int_equal(c.http.max_connections, 1024);
    assert_int_equal(c.http.max_body, 64u << 20);
    assert_int_equal(c.http.max_batch_jobs, 10000);
    assert_int_equal(c.http.max_header_bytes, 16u << 10);
    assert_int_equal(c.http.timeout_ms, 30000);
    assert_null(c.tls.cert);
    assert_null(c.tls.key);
    assert_true(c.auth.enabled);
    assert_null(c.auth.admin_key);
    assert_true(c.auth.rate == 20000);
    assert_true(c.auth.burst == 40000);
    assert_true(c.metrics.require_auth);
    assert_int_equal(c.log.level, GX_CFG_LOG_INFO);
    assert_int_equal(c.log.format, GX_CFG_LOG_TEXT);

    /* finalize derives the paths under data_dir */
    gx_error err;
    TU_OK(gx_config_finalize(&c, &err), err);
    assert_string_equal(c.store.path, "./gexec-data/gexec.db");
    assert_string_equal(c.blobs.dir, "./gexec-data/blobs");

    gx_engine_opts o;
    memset(&o, 0, sizeof o);
    o.no_default_tenant = 7; /* not a config field: left alone */
    gx_config_engine_opts(&c, &o);
    assert_int_equal(o.cpu_workers, 0);
    assert_string_equal(o.placement, "least_loaded");
    assert_true(o.fair_halflife_s == 60.0);
    assert_int_equal(o.max_batch, 256);
    assert_true(o.batch_quantum_us == 2000.0);
    assert_int_equal(o.max_jobs, 1 << 26);
    assert_int_equal(o.hang_grace_ms, 5000);
    assert_int_equal(o.poison_faults, 2);
    assert_int_equal(o.recovery_attempts, 3);
    assert_int_equal(o.no_default_tenant, 7);
    assert_int_equal(o.cuda_disable, 0);
    assert_null(o.cuda_plugin);
    assert_int_equal(o.gpu_max_batch, 64);
    assert_int_equal(o.gpu_batch_delay_us, 0);
    gx_config_free(&c);
    gx_config_free(&c); /* twice is fine */
    gx_config_free(NULL);
}

static void table_is_sane(void **st) {
    (void)st;
    size_t n = gx_config_key_count();
    assert_true(n >= 30);
    char seen_sections[64][32];
    int nsec = 0;
    char cur[32] = "";
    for (size_t i = 0; i < n; i++) {
        gx_config_key_info a;
        assert_int_equal(gx_config_key_info_get(i, &a), 0);
        assert_non_null(a.doc);
        assert_true(strlen(a.doc) > 10);
        assert_int_equal(strncmp(a.env, "GEXEC_", 6), 0);
        /* env names are unique */
        for (size_t j = 0; j < i; j++) {
            gx_config_key_info b;
            assert_int_equal(gx_config_key_info_get(j, &b), 0);
            if (!strcmp(a.env, b.env)) fail_msg("%s and %s share %s", a.key, b.key, a.env);
            assert_string_not_equal(a.key, b.key);
        }
        /* at most one level of sections, and each section contiguous */
        const char *dot = strchr(a.key, '.');
        assert_true(!dot || !strchr(dot + 1, '.'));
        char sec[32];
        snprintf(sec, sizeof sec, "%.*s", dot ? (int)(dot - a.key) : 0, a.key);
        if (strcmp(sec, cur)) {
            for (int s = 0; s < nsec; s++)
                if (!strcmp(seen_sections[s], sec))
                    fail_msg("section '%s' is split in the table (at %s)", sec, a.key);
            if (cur[0]) snprintf(seen_sections[nsec++], 32, "%s", cur);
            snprintf(cur, sizeof cur, "%s", sec);
        }
        /* a top-level key is not also a section name */
        if (!dot)
            for (size_t j = 0; j < n; j++) {
                gx_config_key_info b;
                gx_config_key_info_get(j, &b);
                size_t kl = strlen(a.key);
                assert_false(!strncmp(b.key, a.key, kl) && b.key[kl] == '.');
            }
    }
    gx_config_key_info x;
    assert_int_equal(gx_config_key_info_get(n, &x), GX_ENOTFOUND);

    gx_config_key_info mb;
    for (size_t i = 0; i < n; i++) {
        gx_config_key_info_get(i, &mb);
        if (!strcmp(mb.key, "http.max_body")) break;
    }
    assert_string_equal(mb.env, "GEXEC_HTTP_MAX_BODY");
    assert_string_equal(mb.type, "size");
    assert_string_equal(mb.def, "64MiB");
}

/* ---- loading files -------------------------------------------------------- */

static void load_nested_dotted_flow(void **st) {
    (void)st;
    const char *text =
        "# a comment\n"
        "listen: 0.0.0.0:9000\n"
        "data_dir: /var/lib/gexec\n"
        "engine:\n"
        "  cpu_workers: 8\n"
        "  cpu_mem: 8GiB\n"
        "  placement: round_robin\n"
        "  fair_halflife: 2m\n"
        "http.max_body: 1MiB\n"
        "http: {threads: 4, timeout: 90s}\n"
        "log:\n"
        "  level: DEBUG\n"
        "  format: 'json'\n"
        "cuda:\n"
        "  enabled: off\n"
        "tls:\n"
        "  cert: /etc/gexec/cert.pem\n"
        "  key: \"/etc/gexec/key.pem\"\n"
        "metrics:\n" /* an empty section is fine */
        "store:\n"
        "  path: ~\n"
        "  synchronous: normal\n";
    gx_config c;
    gx_error err;
    TU_OK(load(&c, text, &err), err);
    assert_string_equal(c.listen, "0.0.0.0:9000");
    assert_int_equal(c.engine.cpu_workers, 8);
    assert_int_equal(c.engine.cpu_mem, 8ull << 30);
    assert_int_equal(c.engine.placement, GX_CFG_PLACE_ROUND_ROBIN);
    assert_int_equal(c.engine.fair_halflife_ms, 120000);
    assert_int_equal(c.http.max_body, 1u << 20);
    assert_int_equal(c.http.threads, 4);
    assert_int_equal(c.http.timeout_ms, 90000);
    assert_int_equal(c.log.level, GX_CFG_LOG_DEBUG);
    assert_int_equal(c.log.format, GX_CFG_LOG_JSON);
    assert_false(c.cuda.enabled);
    assert_true(c.metrics.require_auth);
    assert_int_equal(c.store.synchronous, GX_CFG_SYNC_NORMAL);
    assert_int_equal(c.http.max_batch_jobs, 10000); /* untouched keys keep defaults */
    TU_OK(gx_config_finalize(&c, &err), err);
    assert_string_equal(c.store.path, "/var/lib/gexec/gexec.db");
    assert_string_equal(c.blobs.dir, "/var/lib/gexec/blobs");
    assert_string_equal(c.tls.key, "/etc/gexec/key.pem");

    /* the dump reads back to the same config */
    char *d1 = dump_str(&c);
    gx_config c2;
    TU_OK(load(&c2, d1, &err), err);
    char *d2 = dump_str(&c2);
    assert_string_equal(d1, d2);
    free(d1);
    free(d2);
    gx_config_free(&c2);
    gx_config_free(&c);
}

static void load_empty_and_null_documents(void **st) {
    (void)st;
    const char *texts[] = {"", "\n\n# only comments\n", "---\n", "~\n", "--- {}\n...\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        gx_config c, d;
        gx_error err;
        TU_OK(load(&c, texts[i], &err), err);
        cfg_defaults(&d);
        char *a = dump_str(&c), *b = dump_str(&d);
        assert_string_equal(a, b);
        free(a);
        free(b);
        gx_config_free(&c);
        gx_config_free(&d);
    }
    /* a NULL buffer is an empty one */
    gx_config c;
    gx_error err;
    cfg_defaults(&c);
    TU_OK(gx_config_load_mem(&c, NULL, 0, &err), err);
    gx_config_free(&c);
}

static void load_file_and_io_errors(void **st) {
    (void)st;
    char path[] = "/tmp/gx_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("listen: 127.0.0.1:7000\nhttp:\n  max_body: 2MiB\n", f);
    fclose(f);
    gx_config c;
    gx_error err;
    cfg_defaults(&c);
    TU_OK(gx_config_load_file(&c, path, &err), err);
    assert_string_equal(c.listen, "127.0.0.1:7000");
    assert_int_equal(c.http.max_body, 2u << 20);
    gx_config_free(&c);

    /* the whole pipeline: file, then environment, then finalize */
    char *env[] = {"GEXEC_HTTP_MAX_BODY=3MiB", "GEXEC_DATA_DIR=/srv/g/", NULL};
    TU_OK(gx_config_load(&c, path, env, NULL, NULL, &err), err);
    assert_int_equal(c.http.max_body, 3u << 20);
    assert_string_equal(c.listen, "127.0.0.1:7000");
    assert_string_equal(c.store.path, "/srv/g/gexec.db");
    gx_config_free(&c);
    remove(path);

    cfg_defaults(&c);
    assert_int_equal(gx_config_load_file(&c, "/nonexistent/gexec.yaml", &err), GX_EIO);
    assert_string_equal(err.field, "");
    assert_non_null(strstr(err.message, "/nonexistent/gexec.yaml"));
    assert_int_equal(gx_config_load_file(&c, "/", &err), GX_EIO); /* a directory */
    assert_string_equal(c.listen, "127.0.0.1:8080");

    /* over the size limit */
    size_t big = (4u << 20) + 1;
    char *buf = malloc(big);
    memset(buf, '#', big);
    assert_int_equal(gx_config_load_mem(&c, buf, big, &err), GX_ELIMIT);
    free(buf);
    gx_config_free(&c);
}

/* ---- the environment ------------------------------------------------------ */

typedef struct warns {
    int n;
    char last[256];
} warns;

static void on_warn(void *ctx, const char *var, const char *msg) {
    warns *w = ctx;
    w->n++;
    snprintf(w->last, sizeof w->last, "%s | %s", var, msg);
}

static void env_beats_file(void **st) {
    (void)st;
    gx_config c;
    gx_error err;
    TU_OK(load(&c,
               "listen: 127.0.0.1:1111\n"
               "http:\n  max_body: 1MiB\n"
               "tls:\n  cert: /a.pem\n  key: /b.pem\n",
               &err),
          err);
    char *env[] = {"PATH=/bin",
                   "GEXEC_LISTEN=[::1]:2222",
                   "GEXEC_HTTP_MAX_BODY=5MiB",
                   "GEXEC_ENGINE_CPU_WORKERS=3",
                   "GEXEC_METRICS_REQUIRE_AUTH=no",
                   "GEXEC_LOG_FORMAT=json",
                   "GEXEC_TLS_CERT=", /* empty unsets an optional key */
                   "GEXEC_TLS_KEY=",
                   "GEXEC_CONFIG=/etc/gexec.yaml", /* reserved: no warning */
                   "GEXEC_HTTP_MAX_BODDY=1", /* unknown: warned, not failed */
                   "NOT_GEXEC_LISTEN=x",
                   "GEXEC_NOEQUALS",
                   NULL};
    warns w = {0};
    char where[64];
    assert_int_equal(gx_config_origin(&c, "listen", where, sizeof where), 1);
    assert_string_equal(where, "line 1");
    assert_int_equal(gx_config_origin(&c, "http.max_body", where, sizeof where), 1);
    assert_string_equal(where, "line 3");
    assert_int_equal(gx_config_origin(&c, "data_dir", where, sizeof where), 0); /* a default */
    TU_OK(gx_config_apply_env(&c, env, on_warn, &w, &err), err);
    /* where each value came from, for the start's messages about it */
    assert_int_equal(gx_config_origin(&c, "listen", where, sizeof where), 2);
    assert_string_equal(where, "GEXEC_LISTEN");
    assert_int_equal(gx_config_origin(&c, "nope", where, sizeof where), 0);
    gx_config cp;
    assert_int_equal(gx_config_copy(&cp, &c), 0);
    assert_int_equal(gx_config_origin(&cp, "engine.cpu_workers", where, sizeof where), 2);
    assert_string_equal(where, "GEXEC_ENGINE_CPU_WORKERS");
    gx_config_free(&cp);
    assert_string_equal(c.listen, "[::1]:2222");
    assert_int_equal(c.http.max_body, 5u << 20);
    assert_int_equal(c.engine.cpu_workers, 3);
    assert_false(c.metrics.require_auth);
    assert_int_equal(c.log.format, GX_CFG_LOG_JSON);
    assert_null(c.tls.cert);
    assert_null(c.tls.key);
    assert_int_equal(w.n, 1);
    /* the variable's name, never its value (it may be a secret: a
     * misspelt GEXEC_AUTH_ADMINKEY=... went into the log at every start) */
    assert_string_equal(w.last, "GEXEC_HTTP_MAX_BODDY | names no "
                                "configuration key (did you mean GEXEC_HTTP_MAX_BODY?)");

    /* an overlong name: its start, never the value */
    char longvar[200];
    snprintf(longvar, sizeof longvar, "GEXEC_%0120d=SECRETVALUE", 0);
    char *env3[] = {longvar, NULL};
    w.n = 0;
    TU_OK(gx_config_apply_env(&c, env3, on_warn, &w, &err), err);
    assert_int_equal(w.n, 1);
    assert_null(strstr(w.last, "SECRETVALUE"));
    assert_non_null(strstr(w.last, "overlong"));

    /* NULL warn callback is fine; far-off names get no suggestion */
    char *env2[] = {"GEXEC_ZZZZZZZZZZZZZZZZ=1", NULL};
    TU_OK(gx_config_apply_env(&c, env2, NULL, NULL, &err), err);
    w.n = 0;
    TU_OK(gx_config_apply_env(&c, env2, on_warn, &w, &err), err);
    assert_int_equal(w.n, 1);
    assert_non_null(strstr(w.last, "names no configuration key; ignored"));

    /* a bad value names the variable and the key; nothing changes, not even
     * the good variables before it */
    char *bad[] = {"GEXEC_LOG_LEVEL=error", "GEXEC_HTTP_MAX_BODY=12XB", NULL};
    assert_int_equal(gx_config_apply_env(&c, bad, NULL, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "http.max_body");
    assert_int_equal(err.pos, -1);
    assert_string_equal(err.message, "GEXEC_HTTP_MAX_BODY: http.max_body: '12XB' is not a size "
                                     "(use bytes or KiB/MiB/GiB)");
    assert_int_equal(c.log.level, GX_CFG_LOG_INFO);
    assert_int_equal(c.http.max_body, 5u << 20);

    char *empty[] = {"GEXEC_LISTEN=", NULL};
    assert_int_equal(gx_config_apply_env(&c, empty, NULL, NULL, &err), GX_EINVAL);
    assert_string_equal(err.message, "GEXEC_LISTEN: listen: must not be empty");
    char *empty_int[] = {"GEXEC_HTTP_THREADS=", NULL};
    assert_int_equal(gx_config_apply_env(&c, empty_int, NULL, NULL, &err), GX_EINVAL);
    assert_string_equal(err.message,
                        "GEXEC_HTTP_THREADS: http.threads: has no value (expected an integer)");
    gx_config_free(&c);

    /* NULL envp reads the process environment */
    setenv("GEXEC_DEFAULT_TENANT", "team-a", 1);
    cfg_defaults(&c);
    TU_OK(gx_config_apply_env(&c, NULL, NULL, NULL, &err), err);
    assert_string_equal(c.default_tenant, "team-a");
    unsetenv("GEXEC_DEFAULT_TENANT");
    gx_config_free(&c);
}

/* ---- value types ---------------------------------------------------------- */

static void sizes(void **st) {
    (void)st;
    const char *k = "engine.cpu_mem";
    set_get(k, "0", "0");
    set_get(k, "1", "1");
    set_get(k, "1000", "1KB");
    set_get(k, "1536", "1536");
    set_get(k, "1048576000", "1000MiB");
    set_get(k, "1024", "1KiB");
    set_get(k, "1KB", "1KB");
    set_get(k, "1kib", "1KiB");
    set_get(k, "1KIB", "1KiB");
    set_get(k, "8GiB", "8GiB");
    set_get(k, "8 GiB", "8GiB");
    set_get(k, "3MB", "3MB");
    set_get(k, "2GB", "2GB");
    set_get(k, "1TB", "1TB");
    set_get(k, "1.5KiB", "1536");
    set_get(k, "0.5MiB", "512KiB");
    set_get(k, "+7B", "7");
    set_get(k, "-0", "0");
    set_get(k, "64TiB", "64TiB");
    set_bad(k, "12XB", "'12XB' is not a size (use bytes or KiB/MiB/GiB)");
    set_bad(k, "1.5", "'1.5' is not a whole number of bytes");
    set_bad(k, "1.", "is not a size");
    set_bad(k, ".5KiB", "is not a size");
    set_bad(k, "1.1234567KiB", "is not a size"); /* > 6 decimals */
    set_bad(k, "KiB", "is not a size");
    set_bad(k, "1  KiB", "is not a size");
    set_bad(k, "1K", "is not a size");
    set_bad(k, "-1", "'-1' is out of range (0 to 64TiB)");
    set_bad(k, "-1GiB", "out of range");
    set_bad(k, "-x", "is not a size");
    set_bad(k, "65TiB", "'65TiB' is out of range (0 to 64TiB)");
    set_bad(k, "99999999999999999999", "out of range");
    set_bad(k, "18446744073709551615TiB", "out of range");
    set_bad("http.max_body", "1000", "'1000' is out of range (1KiB to 16GiB)");
    set_get("http.max_body", "16GiB", "16GiB");
}

static void sizes_fraction_ok(void **st) {
    (void)st;
    set_get("engine.cpu_mem", "0.1KB", "100");
    set_get("engine.cpu_mem", "0.000001TB", "1MB");
}

static void durations(void **st) {
    (void)st;
    const char *k = "engine.fair_halflife";
    set_get(k, "250ms", "250ms");
    set_get(k, "1.5s", "1500ms");
    set_get(k, "2s", "2s");
    set_get(k, "30", "30s"); /* bare = seconds */
    set_get(k, "2m", "120s");
    set_get(k, "1h", "1h");
    set_get(k, "90m", "5400s");
    set_get(k, "2H", "2h");
    set_get(k, "0.25s", "250ms");
    set_get(k, "720h", "30d");
    set_get(k, "2d", "2d");
    set_get(k, "1.5d", "36h");
    set_bad(k, "0.5ms", "'0.5ms' is not a whole number of milliseconds");
    set_bad(k, "5w", "'5w' is not a duration (use ms, s, m, h or d, e.g. 60s)");
    set_bad(k, "1h30m", "is not a duration");
    set_bad(k, "s", "is not a duration");
    set_bad(k, "99ms", "'99ms' is out of range (100ms to 30d)");
    set_bad(k, "721h", "out of range");
    set_bad(k, "-5s", "'-5s' is out of range");
    set_get("shutdown_timeout", "0", "0s");
    set_get("store.retention", "0", "0s");
    set_get("store.retention", "7d", "7d");
    set_get("http.timeout", "1s", "1s");
}

static void integers(void **st) {
    (void)st;
    const char *k = "engine.cpu_workers";
    set_get(k, "0", "0");
    set_get(k, "+12", "12");
    set_get(k, "007", "7");
    set_get(k, "4096", "4096");
    set_get(k, "-0", "0");
    set_bad(k, "-1", "'-1' is out of range (0 to 4096)");
    set_bad(k, "4097", "out of range");
    set_bad(k, "1.0", "'1.0' is not an integer");
    set_bad(k, "1e3", "is not an integer");
    set_bad(k, "0x10", "is not an integer");
    set_bad(k, "four", "is not an integer");
    set_bad(k, "+", "is not an integer");
    set_bad(k, "1 ", "is not an integer");
    set_bad(k, "9223372036854775808", "out of range");
    set_bad(k, "-9223372036854775809", "out of range");
    set_bad(k, "-9223372036854775808", "out of range");
    set_get("engine.max_jobs", "1099511627776", "1099511627776");
    set_bad("engine.max_jobs", "1023", "'1023' is out of range (1024 to 1099511627776)");
    set_get("engine.hang_grace", "250ms", "250ms");
    set_get("engine.poison_faults", "5", "5");
    set_bad("engine.poison_faults", "0", "'0' is out of range (1 to 100)");
}

static void doubles(void **st) {
    (void)st;
    const char *k = "engine.batch_quantum_us";
    set_get(k, "2.5", "2.5");
    set_get(k, "1e3", "1000");
    set_get(k, "0.1e2", "10");
    set_get(k, "10000000", "10000000");
    set_get(k, "1234.5678", "1234.5678");
    set_bad(k, "0.5", "'0.5' is out of range (1 to 10000000)");
    set_bad(k, "nan", "'nan' is not a number");
    set_bad(k, "inf", "is not a number");
    set_bad(k, "1e999", "out of range");
    set_bad(k, "0x10", "is not a number");
    set_bad(k, "1e", "is not a number");
    set_bad(k, "1,5", "is not a number");
    set_bad(k, ".", "is not a number");
}

static void booleans(void **st) {
    (void)st;
    const char *k = "metrics.require_auth";
    const char *yes[] = {"true", "True", "YES", "on", "1"};
    const char *no[] = {"false", "FALSE", "no", "Off", "0"};
    for (int i = 0; i < 5; i++) {
        set_get(k, yes[i], "true");
        set_get(k, no[i], "false");
    }
    set_bad(k, "maybe", "'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
    set_bad(k, "2", "is not a boolean");
    set_bad(k, "y", "is not a boolean");
}

static void enums(void **st) {
    (void)st;
    set_get("store.backend", "postgres", "postgres");
    set_get("store.backend", "SQLite", "sqlite");
    set_get("log.level", "Warn", "warn");
    set_bad("store.backend", "mysql", "'mysql' is not one of sqlite, postgres");
    set_bad("engine.placement", "random", "is not one of least_loaded, round_robin");
    set_bad("log.level", "sqlite", "is not one of debug, info, warn, error");
}

static void strings(void **st) {
    (void)st;
    set_get("listen", "localhost:80", "localhost:80");
    set_get("listen", "[::]:0", "[::]:0");
    set_get("listen", "my-host.example.com:65535", "my-host.example.com:65535");
    set_bad("listen", "8080", "'8080' is not host:port");
    set_bad("listen", ":8080", "is not host:port");
    set_bad("listen", "::1:8080", "is not host:port");
    set_bad("listen", "host:", "is not host:port");
    set_bad("listen", "host:http", "is not host:port");
    set_bad("listen", "host:65536", "'host:65536' has port 65536; ports are 0 to 65535");
    set_bad("listen", "[]:80", "is not host:port");
    set_bad("listen", "[::1]8080", "is not host:port");
    set_bad("listen", "", "must not be empty");
    /* the host is an IP address or a host name, or the start cannot bind */
    set_get("listen", "0.0.0.0:80", "0.0.0.0:80");
    set_get("listen", "[fe80::1:2]:80", "[fe80::1:2]:80");
    set_get("listen", "gexec-1.example.com.:80", "gexec-1.example.com.:80");
    set_get("listen", "_svc.local:80", "_svc.local:80");
    set_bad("listen", "999.1.1.1:80", "'999.1.1.1:80' has host 999.1.1.1, which is not an IPv4 address");
    set_bad("listen", "1.2.3:80", "which is not an IPv4 address");
    set_bad("listen", "10.0.0.01:80", "which is not an IPv4 address");
    set_bad("listen", "[::g]:80", "has host [::g], which is not an IPv6 address");
    set_bad("listen", "[1.2.3.4]:80", "which is not an IPv6 address");
    set_bad("listen", "host.123:80", "which is not an IP address or a host name");
    set_bad("listen", "-host:80", "which is not an IP address or a host name");
    set_bad("listen", "a..b:80", "which is not an IP address or a host name");
    set_bad("listen", "a b:80", "which is not an IP address or a host name");
    char longhost[300];
    memset(longhost, 'a', 64);
    snprintf(longhost + 64, sizeof longhost - 64, ".example:80");
    set_bad("listen", longhost, "which is not an IP address or a host name"); /* label > 63 */
    set_get("default_tenant", "team_a.b-1", "team_a.b-1");
    set_bad("default_tenant", "team a", "is not a tenant name");
    set_bad("default_tenant",
            "a234567890123456789012345678901234567890123456789012345678901234",
            "is not a tenant name");
    set_get("data_dir", "/data/gexec \xc3\xa9t\xc3\xa9", "/data/gexec \xc3\xa9t\xc3\xa9");
    set_bad("data_dir", "/a\nb", "has control characters or is not UTF-8");
    set_bad("data_dir", "/a\xff", "has control characters or is not UTF-8");
    set_bad("data_dir", "/a\xc3", "not UTF-8");          /* truncated sequence */
    set_bad("data_dir", "/a\xc0\xaf", "not UTF-8");      /* overlong */
    set_bad("data_dir", "/a\xed\xa0\x80", "not UTF-8");  /* surrogate */
    set_bad("data_dir", "/a\xf5\x80\x80\x80", "not UTF-8");
    set_bad("data_dir", "/a\xc2\x85", "control characters"); /* NEL, a YAML line break */
    set_bad("data_dir", "/a\xe2\x80\xa8", "control characters"); /* line separator */
    set_bad("data_dir", "/a\xef\xbb\xbf", "control characters"); /* BOM */
    set_get("data_dir", "/\xf0\x9f\x98\x80", "/\xf0\x9f\x98\x80");
    char longs[5000];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    set_bad("data_dir", longs, "is longer than 4096 bytes");

    /* optional strings: NULL and "" unset; values with quotes survive dump */
    gx_config c;
    gx_error err;
    cfg_defaults(&c);
    TU_OK(gx_config_set(&c, "cuda.plugin", "/opt/g \"x\"\\y.so", &err), err);
    char *d = dump_str(&c);
    assert_non_null(strstr(d, "plugin: \"/opt/g \\\"x\\\"\\\\y.so\"\n"));
    gx_config c2;
    TU_OK(load(&c2, d, &err), err);
    assert_string_equal(c2.cuda.plugin, "/opt/g \"x\"\\y.so");
    gx_config_free(&c2);
    free(d);
    TU_OK(gx_config_set(&c, "cuda.plugin", NULL, &err), err);
    assert_null(c.cuda.plugin);
    TU_OK(gx_config_set(&c, "cuda.plugin", "x", &err), err);
    TU_OK(gx_config_set(&c, "cuda.plugin", "", &err), err);
    assert_null(c.cuda.plugin);
    assert_int_equal(gx_config_set(&c, "listen", NULL, &err), GX_EINVAL);

    /* set/get on unknown keys, small buffers */
    assert_int_equal(gx_config_set(&c, "http.max_bod", "1", &err), GX_ENOTFOUND);
    assert_string_equal(err.message, "unknown key 'http.max_bod' (did you mean 'http.max_body'?)");
    assert_int_equal(gx_config_set(&c, NULL, "1", &err), GX_ENOTFOUND);
    char small[4];
    assert_int_equal(gx_config_get(&c, "nope", small, sizeof small), GX_ENOTFOUND);
    assert_int_equal(gx_config_get(&c, "listen", small, sizeof small), GX_EOVERFLOW);
    assert_int_equal(gx_config_get(&c, "listen", small, 0), GX_EOVERFLOW);
    assert_int_equal(gx_config_get(&c, "tls.cert", small, sizeof small), 0);
    assert_string_equal(small, "");
    gx_config_free(&c);
}

/* ---- error messages from files ------------------------------------------- */

static void file_errors_name_key_and_line(void **st) {
    (void)st;
    /* a bad size on line 7 */
    expect_err("# gexecd\n"
               "listen: 127.0.0.1:8080\n"
               "\n"
               "engine:\n"
               "  cpu_workers: 2\n"
               "http:\n"
               "  max_body: 12XB\n",
               GX_EINVAL, "http.max_body", 7,
               "line 7: http.max_body: '12XB' is not a size (use bytes or KiB/MiB/GiB)", 0);
    /* a bad enum */
    expect_err("store:\n  backend: mysql\n", GX_EINVAL, "store.backend", 2,
               "line 2: store.backend: 'mysql' is not one of sqlite, postgres", 0);
    /* an unknown key, with a suggestion */
    expect_err("listen: 127.0.0.1:80\nengine:\n  cpu_wrokers: 4\n", GX_EINVAL, "", 3,
               "line 3: unknown key 'engine.cpu_wrokers' (did you mean 'engine.cpu_workers'?)",
               0);
    /* a key in the wrong section finds its home */
    expect_err("cpu_workers: 4\n", GX_EINVAL, "", 1,
               "line 1: unknown key 'cpu_workers' (did you mean 'engine.cpu_workers'?)", 0);
    /* a misspelt section */
    expect_err("engin:\n  cpu_workers: 4\n", GX_EINVAL, "", 1,
               "line 1: unknown key 'engin' (did you mean 'engine'?)", 0);
    /* nothing close */
    expect_err("\n\nfrobnicate: 1\n", GX_EINVAL, "", 3, "line 3: unknown key 'frobnicate'", 0);
    expect_err("Listen: x:1\n", GX_EINVAL, "", 1,
               "line 1: unknown key 'Listen' (did you mean 'listen'?)", 0);
    /* a mapping where a value belongs */
    expect_err("http:\n  max_body:\n    size: 1MiB\n", GX_EINVAL, "http.max_body", 3,
               "line 3: http.max_body: expected a size (use bytes or KiB/MiB/GiB), got a mapping",
               0);
    expect_err("listen: {host: a, port: 1}\n", GX_EINVAL, "listen", 1,
               "line 1: listen: expected a string, got a mapping", 0);
    expect_err("log:\n  level: [info, warn]\n", GX_EINVAL, "log.level", 2,
               "line 2: log.level: expected one of its choices, got a list", 0);
    /* a value where a mapping belongs */
    expect_err("engine: 4\n", GX_EINVAL, "engine", 1,
               "line 1: engine: expected a mapping of engine.* keys, got '4'", 0);
    expect_err("engine:\n  - 4\n", GX_EINVAL, "engine", 2,
               "line 2: engine: expected a mapping of engine.* keys, got a list", 0);
    /* negative where the minimum is 0 */
    expect_err("engine:\n  cpu_workers: -1\n", GX_EINVAL, "engine.cpu_workers", 2,
               "line 2: engine.cpu_workers: '-1' is out of range (0 to 4096)", 0);
    expect_err("http:\n  timeout: 0s\n", GX_EINVAL, "http.timeout", 2,
               "line 2: http.timeout: '0s' is out of range (1s to 1h)", 0);
    /* no value */
    expect_err("http:\n  threads:\n", GX_EINVAL, "http.threads", 2,
               "line 2: http.threads: has no value (expected an integer)", 0);
    expect_err("listen: ~\n", GX_EINVAL, "listen", 1, "line 1: listen: must not be empty", 0);
    expect_err("listen: ''\n", GX_EINVAL, "listen", 1, "line 1: listen: must not be empty", 0);
    /* quoted "null" is a string, not null */
    expect_err("default_tenant: 'null'\nlisten: \"null\"\n", GX_EINVAL, "listen", 2,
               "line 2: listen: 'null' is not host:port", 1);
    /* a key set twice, in either spelling */
    expect_err("http:\n  max_body: 1MiB\nhttp.max_body: 2MiB\n", GX_EINVAL, "http.max_body", 3,
               "line 3: http.max_body: set twice (first on line 2)", 0);
    /* a bracket left open is a syntax error, not a list where a value belongs */
    expect_err("http:\n  threads: [1\n", GX_EFORMAT, "", 3,
               "line 3, column 1: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
               "sequence on line 2)",
               0);
    expect_err("engine: {cpu_workers: 2\n", GX_EFORMAT, "", 2,
               "line 2, column 1: YAML syntax error: did not find expected ',' or '}' (while parsing a flow "
               "mapping on line 1)",
               0);
    /* a section twice: its keys were merged quietly */
    expect_err("http:\n  threads: 1\nhttp:\n  max_body: 1MiB\n", GX_EINVAL, "http", 3,
               "line 3: http: set twice (first on line 1)", 0);
    expect_err("log:\nlog:\n  level: info\n", GX_EINVAL, "log", 2, "line 2: log: set twice (first on line 1)", 0);
    /* keys must be names */
    expect_err("[a]: 1\n", GX_EINVAL, "", 1, "line 1: keys must be names, not a list", 0);
    expect_err("http:\n  ? {a: 1}\n  : 2\n", GX_EINVAL, "http", 2,
               "line 2: http: keys must be names, not a mapping", 0);
    expect_err("'': 1\n", GX_EINVAL, "", 1, "line 1: unknown key ''", 0);
    /* YAML syntax errors carry line and column */
    expect_err("listen: a:1\nhttp:\n  max_body: 1MiB\n  threads: 2: 3\n", GX_EFORMAT, "", 4,
               "line 4, column 13: YAML syntax error: mapping values are not allowed in this "
               "context",
               0);
    expect_err("log:\n  level: info\n format: json\n", GX_EFORMAT, "", 3,
               "line 3, column 2: YAML syntax error: did not find expected key (while parsing "
               "a block mapping on line 1)",
               0);
    expect_err("listen: a:1\nhttp: {threads: 2\n\n", GX_EFORMAT, "", 4,
               "line 4, column 1: YAML syntax error: did not find expected ',' or '}' (while "
               "parsing a flow mapping on line 2)",
               0);
    expect_err("listen: \"127.0.0.1:80\n", GX_EFORMAT, "", 2, "line 2, column 1: YAML syntax", 1);
    expect_err("log:\n\tlevel: info\n", GX_EFORMAT, "", 2,
               "line 2, column 1: YAML syntax error: found character that cannot start any token",
               1);
    expect_err("listen: a:1\nlog: @x\n", GX_EFORMAT, "", 2, "line 2, column 6: YAML syntax", 1);
    expect_err("%YAML 2.0\n---\nlisten: a:1\n", GX_EFORMAT, "", 1,
               "line 1, column 1: YAML syntax error: found incompatible YAML document", 0);
    expect_err("listen: a:1\n\n  \x01\n", GX_EFORMAT, "", 3,
               "line 3, column 3: YAML syntax error: control characters are not allowed", 0);
    /* invalid UTF-8 (a reader error): line from the byte offset */
    expect_err("listen: 127.0.0.1:80\n\n# caf\xe9\n", GX_EFORMAT, "", 3,
               "line 3, column 6: YAML syntax error: incomplete UTF-8 octet sequence", 0);
    /* structure */
    expect_err("- listen\n", GX_EFORMAT, "", 1,
               "line 1: the top level must be a mapping of keys, not a list", 0);
    expect_err("just a string\n", GX_EFORMAT, "", 1,
               "line 1: the top level must be a mapping of keys, not a value", 0);
    expect_err("listen: 127.0.0.1:80\n---\nlisten: 127.0.0.1:81\n", GX_EFORMAT, "", 2,
               "line 2: a second YAML document; the config is one document", 0);
    expect_err("store:\n  path: &p /x\nblobs:\n  dir: *p\n", GX_EFORMAT, "blobs.dir", 4,
               "line 4: blobs.dir: aliases (*p) are not supported", 0);
    /* control characters in a value */
    expect_err("data_dir: \"/a\\tb\"\n", GX_EINVAL, "data_dir", 1,
               "line 1: data_dir: '/a?b' has control characters or is not UTF-8", 0);
    /* long values are shortened in messages */
    expect_err("log:\n  level: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
               GX_EINVAL, "log.level", 2,
               "line 2: log.level: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is not one of "
               "debug, info, warn, error",
               0);
}

static void failed_load_changes_nothing(void **st) {
    (void)st;
    gx_config c;
    gx_error err;
    cfg_defaults(&c);
    TU_OK(gx_config_set(&c, "listen", "10.0.0.1:1", &err), err);
    const char *text = "listen: 10.0.0.2:2\ntls:\n  cert: /c.pem\nhttp:\n  max_body: huge\n";
    assert_int_equal(gx_config_load_mem(&c, text, strlen(text), &err), GX_EINVAL);
    assert_int_equal(err.pos, 5);
    assert_string_equal(c.listen, "10.0.0.1:1");
    assert_null(c.tls.cert);
    gx_config_free(&c);
}

/* ---- the admin key ---------------------------------------------------------- */

/* auth.admin_key is checked when it is set, wherever it comes from, so that
 * --check-config refuses what the start would; GEXEC_ADMIN_KEY is the key
 * when nothing else set it; the value never appears in a message, and the
 * dump shows a key is set without showing it. */
static void admin_key(void **st) {
    (void)st;
    const char *good = "gx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    const char *good2 = "gx_fedcba9876543210_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA";
    const char *want = "auth.admin_key: the value is not an admin key: it must look like "
                       "gx_<16 hex digits>_<32 bytes in unpadded base64url: 43 characters>";
    char msg[256];
    set_get("auth.admin_key", good, good);
    set_bad("auth.admin_key", "notakey", "the value is not an admin key");
    set_bad("auth.admin_key", "gx_0123456789ABCDEF_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "is not an admin key"); /* upper-case id */
    set_bad("auth.admin_key", "gx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "is not an admin key"); /* 42 characters */

    /* from the file: its line */
    snprintf(msg, sizeof msg, "line 3: %s", want);
    expect_err("auth:\n  enabled: true\n  admin_key: notakey\n", GX_EINVAL, "auth.admin_key", 3,
               msg, 0);
    expect_err("auth.admin_key: 'gx_secretsecret'\n", GX_EINVAL, "auth.admin_key", 1,
               "the value is not an admin key", 1);

    /* from the environment: the variable; the secret is not repeated */
    gx_config c;
    gx_error err;
    char *env1[] = {"GEXEC_ADMIN_KEY=notakey-secret", NULL};
    assert_int_equal(gx_config_load(&c, NULL, env1, NULL, NULL, &err), GX_EINVAL);
    snprintf(msg, sizeof msg, "GEXEC_ADMIN_KEY: %s", want);
    assert_string_equal(err.message, msg);
    assert_string_equal(err.field, "auth.admin_key");
    assert_int_equal(err.pos, -1);
    gx_config_free(&c);
    char *env2[] = {"GEXEC_AUTH_ADMIN_KEY=notakey-secret", NULL};
    assert_int_equal(gx_config_load(&c, NULL, env2, NULL, NULL, &err), GX_EINVAL);
    snprintf(msg, sizeof msg, "GEXEC_AUTH_ADMIN_KEY: %s", want);
    assert_string_equal(err.message, msg);
    gx_config_free(&c);
    assert_int_equal(load(&c, "auth.admin_key: \"gx_\\x01secret\"\n", &err), GX_EINVAL);
    assert_null(strstr(err.message, "secret"));
    gx_config_free(&c);

    /* GEXEC_ADMIN_KEY is the key unless GEXEC_AUTH_ADMIN_KEY is given;
     * empty is unset */
    char v1[128], v2[128];
    snprintf(v1, sizeof v1, "GEXEC_ADMIN_KEY=%s", good);
    snprintf(v2, sizeof v2, "GEXEC_AUTH_ADMIN_KEY=%s", good2);
    char *env3[] = {v1, NULL};
    TU_OK(gx_config_load(&c, NULL, env3, NULL, NULL, &err), err);
    assert_string_equal(c.auth.admin_key, good);
    char *d = dump_str(&c);
    assert_null(strstr(d, good));
    assert_non_null(strstr(d, "  admin_key: \"(redacted)\"\n"));
    free(d);
    gx_config_free(&c);
    char *env4[] = {v1, v2, NULL}; /* the key's own variable wins, in any order */
    TU_OK(gx_config_load(&c, NULL, env4, NULL, NULL, &err), err);
    assert_string_equal(c.auth.admin_key, good2);
    gx_config_free(&c);
    char *env5[] = {v2, v1, NULL};
    TU_OK(gx_config_load(&c, NULL, env5, NULL, NULL, &err), err);
    assert_string_equal(c.auth.admin_key, good2);
    gx_config_free(&c);
    cfg_defaults(&c); /* and it beats the file, as every variable does (the file's key won) */
    snprintf(msg, sizeof msg, "auth.admin_key: %s\n", good2);
    TU_OK(gx_config_load_mem(&c, msg, strlen(msg), &err), err);
    TU_OK(gx_config_apply_env(&c, env3, NULL, NULL, &err), err);
    assert_string_equal(c.auth.admin_key, good);
    gx_config_free(&c);
    /* an empty GEXEC_AUTH_ADMIN_KEY is unset: GEXEC_ADMIN_KEY still counts */
    char *env7[] = {"GEXEC_AUTH_ADMIN_KEY=", v1, NULL};
    TU_OK(gx_config_load(&c, NULL, env7, NULL, NULL, &err), err);
    assert_string_equal(c.auth.admin_key, good);
    gx_config_free(&c);
    char *env6[] = {"GEXEC_ADMIN_KEY=", NULL};
    TU_OK(gx_config_load(&c, NULL, env6, NULL, NULL, &err), err);
    assert_null(c.auth.admin_key);
    d = dump_str(&c);
    assert_non_null(strstr(d, "  admin_key: ~\n"));
    free(d);
    gx_config_free(&c);
}

/* ---- finalize and dump ---------------------------------------------------- */

static void finalize_checks(void **st) {
    (void)st;
    gx_config c;
    gx_error err;
    TU_OK(load(&c, "tls:\n  cert: /c.pem\n", &err), err);
    assert_int_equal(gx_config_finalize(&c, &err), GX_EINVAL);
    assert_string_equal(err.field, "tls.key");
    /* at the line that set the other key */
    assert_string_equal(err.message, "line 2: tls.key: must be set when tls.cert is");
    assert_int_equal(err.pos, 2);
    assert_null(c.store.path); /* unchanged on error */
    gx_config_free(&c);

    TU_OK(load(&c, "tls.key: /k.pem\n", &err), err);
    assert_int_equal(gx_config_finalize(&c, &err), GX_EINVAL);
    assert_string_equal(err.field, "tls.cert");
    gx_config_free(&c);

    TU_OK(load(&c, "store:\n  backend: postgres\n", &err), err);
    assert_int_equal(gx_config_finalize(&c, &err), GX_EINVAL);
    assert_string_equal(err.message, "line 2: store.dsn: required when store.backend is postgres");
    TU_OK(gx_config_set(&c, "store.dsn", "postgresql://u:secret@db/gexec", &err), err);
    TU_OK(gx_config_finalize(&c, &err), err);
    char *d = dump_str(&c);
    assert_null(strstr(d, "secret"));
    assert_non_null(strstr(d, "  dsn: \"(redacted)\"\n"));
    free(d);
    gx_config_free(&c);

    /* a back-off base above its cap (it was taken, and the cap bounded every back-off) */
    TU_OK(load(&c, "retry:\n  backoff_cap: 1s\n  backoff_base: 2s\n", &err), err);
    assert_int_equal(gx_config_finalize(&c, &err), GX_EINVAL);
    assert_string_equal(err.message,
                        "line 3: retry.backoff_base: 2000 ms is above retry.backoff_cap (1000 ms): the cap bounds "
                        "every back-off");
    gx_config_free(&c);
    /* only the cap set, below the default base: the cap is named */
    TU_OK(load(&c, "retry:\n  backoff_cap: 50ms\n", &err), err);
    assert_int_equal(gx_config_finalize(&c, &err), GX_EINVAL);
    assert_string_equal(err.message,
                        "line 2: retry.backoff_cap: 50 ms is below retry.backoff_base (100 ms): the cap bounds every "
                        "back-off");
    gx_config_free(&c);

    /* explicit paths win; "/" as data_dir */
    TU_OK(load(&c, "data_dir: /\nstore.path: /db/x.db\n", &err), err);
    TU_OK(gx_config_finalize(&c, &err), err);
    assert_string_equal(c.store.path, "/db/x.db");
    assert_string_equal(c.blobs.dir, "/blobs");
    TU_OK(gx_config_finalize(&c, &err), err); /* idempotent */
    assert_string_equal(c.blobs.dir, "/blobs");
    gx_config_free(&c);

    TU_OK(load(&c, "data_dir: rel//\n", &err), err);
    TU_OK(gx_config_finalize(&c, &err), err);
    assert_string_equal(c.store.path, "rel/gexec.db");
    gx_config_free(&c);

    /* the pipeline stops at the first failing layer, naming it */
    char *env[] = {"GEXEC_STORE_BACKEND=postgres", NULL};
    assert_int_equal(gx_config_load(&c, NULL, env, NULL, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "store.dsn");
    gx_config_free(&c);
}

static void dump_format(void **st) {
    (void)st;
    gx_config c;
    gx_error err;
    cfg_defaults(&c);
    char *d = dump_str(&c);
    assert_non_null(strstr(d, "listen: \"127.0.0.1:8080\"\n"));
    assert_non_null(strstr(d, "\nhttp:\n  threads: 0\n"));
    assert_non_null(strstr(d, "  max_body: 64MiB\n"));
    assert_non_null(strstr(d, "  fair_halflife: 60s\n"));
    assert_non_null(strstr(d, "  path: ~\n"));
    assert_non_null(strstr(d, "  enabled: true\n"));
    assert_null(strstr(d, "#"));
    /* every dumped line names a key the table knows (round trip) */
    gx_config c2;
    TU_OK(load(&c2, d, &err), err);
    gx_config_free(&c2);
    free(d);
    gx_config_free(&c);
}

/* ---- the committed sample ------------------------------------------------- */

static void sample_matches_table(void **st) {
    (void)st;
    char *gen = NULL;
    size_t glen = 0;
    FILE *f = open_memstream(&gen, &glen);
    assert_int_equal(gx_config_write_sample(f), 0);
    fclose(f);

    const char *src = getenv("GX_SOURCE_DIR");
    if (!src) fail_msg("GX_SOURCE_DIR is not set (ctest sets it to the source tree)");
    char path[4096];
    snprintf(path, sizeof path, "%s/config/gexec.yaml.sample", src);
    if (getenv("GX_UPDATE_SAMPLE")) {
        FILE *w = fopen(path, "wb");
        assert_non_null(w);
        fwrite(gen, 1, glen, w);
        fclose(w);
        fprintf(stderr, "wrote %s\n", path);
    }
    size_t flen = 0;
    char *file = read_all(path, &flen);
    if (!file) fail_msg("cannot read %s", path);
    if (flen != glen || memcmp(file, gen, glen))
        fail_msg("%s differs from what the key table generates; regenerate it with "
                 "GX_UPDATE_SAMPLE=1 GX_SOURCE_DIR=<repo> build/test_config",
                 path);

    /* it loads cleanly, to exactly the defaults */
    gx_config c, d;
    gx_error err;
    cfg_defaults(&c);
    TU_OK(gx_config_load_file(&c, path, &err), err);
    cfg_defaults(&d);
    char *a = dump_str(&c), *b = dump_str(&d);
    assert_string_equal(a, b);
    TU_OK(gx_config_finalize(&c, &err), err);
    free(a);
    free(b);
    gx_config_free(&c);
    gx_config_free(&d);

    /* it names every key and every variable, and stays within 79 columns */
    for (size_t i = 0; i < gx_config_key_count(); i++) {
        gx_config_key_info k;
        gx_config_key_info_get(i, &k);
        if (!strstr(file, k.env)) fail_msg("sample lacks %s", k.env);
    }
    for (char *line = file; *line;) {
        size_t n = strcspn(line, "\n");
        if (n > 79) fail_msg("sample line over 79 columns: %.*s", (int)n, line);
        line += n + (line[n] == '\n');
    }
    free(file);
    free(gen);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(table_is_sane),
        cmocka_unit_test(load_nested_dotted_flow),
        cmocka_unit_test(load_empty_and_null_documents),
        cmocka_unit_test(load_file_and_io_errors),
        cmocka_unit_test(env_beats_file),
        cmocka_unit_test(sizes),
        cmocka_unit_test(sizes_fraction_ok),
        cmocka_unit_test(durations),
        cmocka_unit_test(integers),
        cmocka_unit_test(doubles),
        cmocka_unit_test(booleans),
        cmocka_unit_test(enums),
        cmocka_unit_test(strings),
        cmocka_unit_test(file_errors_name_key_and_line),
        cmocka_unit_test(failed_load_changes_nothing),
        cmocka_unit_test(admin_key),
        cmocka_unit_test(finalize_checks),
        cmocka_unit_test(dump_format),
        cmocka_unit_test(sample_matches_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
