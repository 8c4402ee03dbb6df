/*
 * gexec_config.h - gexecd's configuration: one struct, one table of keys.
 *
 * This module owns every setting of the daemon. The settings live in one
 * declarative table (src/config/config.c) that drives parsing, range checks,
 * environment overrides, the effective-config dump and the commented sample
 * file (config/gexec.yaml.sample), so a key is added in exactly one place.
 *
 * Sources, lowest to highest precedence:
 *   1. the documented defaults              gx_config_defaults
 *   2. a YAML file (nested or dotted keys)  gx_config_load_file / _load_mem
 *   3. GEXEC_* environment variables        gx_config_apply_env
 * then gx_config_finalize derives what depends on other keys (store.path and
 * blobs.dir under data_dir) and checks keys against each other.
 * gx_config_load does all four in that order; `gexecd --check-config` is
 * gx_config_load plus looking at the files and folders the config names
 * (src/daemon/main.c), then printing err.message.
 *
 * The environment variable of a key is GEXEC_ followed by its path
 * upper-cased with '.' replaced by '_': http.max_body -> GEXEC_HTTP_MAX_BODY.
 *
 * Value syntax, the same in the file and in the environment:
 *   string    as written; for optional keys an empty value or YAML null
 *             (~, null, nothing) means unset
 *   int       decimal integer, optional sign
 *   size      bytes, or a number with KB/MB/GB/TB (powers of 1000) or
 *             KiB/MiB/GiB/TiB (powers of 1024), case-insensitive; a fraction
 *             is allowed when the result is a whole number of bytes ("1.5KiB")
 *   duration  a number with ms, s, m or h; a bare number is seconds; kept in
 *             whole milliseconds
 *   double    decimal number, finite
 *   bool      true/false, yes/no, on/off, 1/0 (case-insensitive)
 *   enum      one of the key's choices (case-insensitive)
 *
 * Errors: every call fills the optional gx_error. err->field is the key path
 * ("http.max_body"), or "" when no key is at fault (I/O, YAML syntax).
 * err->pos is the 1-based LINE of the file for file errors, -1 for errors
 * from the environment, gx_config_set and gx_config_finalize (this differs
 * from the byte offset other parsers put there: a config is read by people
 * in an editor). err->message is self-contained and starts with where the
 * problem is: "line 7: http.max_body: '12XB' is not a size (use bytes or
 * KiB/MiB/GiB)", "GEXEC_LISTEN: listen: ...".
 *
 * Memory: string fields are malloc'd and owned by the gx_config; release
 * them with gx_config_free. Failed calls leave the config as it was before
 * the call (each call works on a copy and swaps it in on success).
 *
 * Threading: calls on different configs are independent; a config must not
 * be changed while another thread reads it. Nothing here reads global state
 * except gx_config_apply_env with envp == NULL, which reads environ.
 */
#ifndef GEXEC_CONFIG_H
#define GEXEC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gexec.h"
#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Enum values, in the order of the table's choices (the names in comments
 * are what the file and the environment say). */
enum gx_cfg_store_backend { GX_CFG_STORE_SQLITE = 0, GX_CFG_STORE_POSTGRES = 1 };
enum gx_cfg_synchronous { GX_CFG_SYNC_FULL = 0, GX_CFG_SYNC_NORMAL = 1 };
enum gx_cfg_placement { GX_CFG_PLACE_LEAST_LOADED = 0, GX_CFG_PLACE_ROUND_ROBIN = 1 };
enum gx_cfg_log_level {
    GX_CFG_LOG_DEBUG = 0,
    GX_CFG_LOG_INFO = 1,
    GX_CFG_LOG_WARN = 2,
    GX_CFG_LOG_ERROR = 3
};
enum gx_cfg_log_format { GX_CFG_LOG_TEXT = 0, GX_CFG_LOG_JSON = 1 };

/* Every setting of gexecd. Field paths mirror key paths (http.max_body is
 * c.http.max_body). The table in config.c is the documentation of meaning,
 * default and range; the comments here only say the unit. Strings are NULL
 * when unset (only optional keys can be unset). */
typedef struct gx_config {
    char *listen;              /* host:port of the HTTP API */
    char *data_dir;            /* directory for the store file and blobs */
    char *default_tenant;      /* tenant of requests that name none */
    int64_t shutdown_timeout_ms; /* drain grace on SIGTERM, ms */

    struct {
        int backend;           /* enum gx_cfg_store_backend */
        char *path;            /* sqlite file; finalize: <data_dir>/gexec.db */
        char *dsn;             /* postgres connection string (secret) */
        int synchronous;       /* enum gx_cfg_synchronous */
        int64_t commit_delay_us; /* group-commit delay, us */
        uint64_t wal_checkpoint; /* WAL bytes between background checkpoints */
        int64_t retention_ms;  /* finished jobs and unused blobs kept, ms; 0 = all */
    } store;

    struct {
        char *dir;             /* finalize: <data_dir>/blobs */
    } blobs;

    struct {
        int64_t cpu_workers;   /* threads; 0 = one per core */
        uint64_t cpu_mem;      /* bytes; 0 = half of RAM */
        int placement;         /* enum gx_cfg_placement */
        int64_t fair_halflife_ms; /* ms */
        int64_t max_batch;     /* jobs */
        double batch_quantum_us; /* us */
        int64_t max_jobs;      /* live job records */
        int64_t hang_grace_ms; /* ms; a cancelled call still running is hung */
        int64_t poison_faults; /* device faults that make a job dead */
        int64_t recovery_attempts; /* resets before a device stays unhealthy */
        bool restart_on_device_loss; /* re-exec gexecd when a device is lost */
    } engine;

    struct {
        int64_t max_batch;     /* jobs fused into one launch */
        int64_t max_delay_us;  /* us */
    } batching;

    struct {
        int64_t backoff_base_ms; /* ms: bound of the first back-off */
        int64_t backoff_cap_ms;  /* ms: bound of every back-off */
    } retry;

    struct {
        int64_t threshold;     /* consecutive failures that open; 0 = off */
        int64_t cooldown_ms;   /* ms: open -> half-open */
    } breaker;

    struct {
        bool enabled;
        char *plugin;          /* path of the backend .so; NULL = default */
    } cuda;

    struct {
        char *plugins;         /* kernel plugins (.so), ':'-separated; NULL = none */
    } kernels;

    struct {
        int64_t threads;       /* 0 = one per core */
        int64_t max_connections;
        uint64_t max_body;     /* bytes */
        int64_t max_batch_jobs;
        uint64_t max_header_bytes; /* bytes */
        uint64_t max_json_memory; /* bytes one JSON body may take decoded */
        int64_t timeout_ms;    /* ms */
        int64_t max_connections_per_client; /* 0 = no limit */
        int64_t request_timeout_ms; /* ms to receive a whole request; 0 = none */
        int64_t stream_heartbeat_ms; /* idle event stream's comment line; 0 = none */
        int64_t stream_replay_events; /* state changes kept for resuming streams; 0 = none */
        uint64_t stream_client_buffer; /* bytes buffered per event stream client */
    } http;

    struct {
        char *cert;            /* PEM file; NULL = plain HTTP */
        char *key;             /* PEM file */
    } tls;

    struct {
        bool enabled;          /* false: every request acts as default_tenant, admin */
        char *admin_key;       /* secret, gx_ format; NULL = generate one if none exists */
        char *admin_key_file;  /* finalize: <data_dir>/admin.key */
        double rate;           /* requests/s per key */
        double burst;          /* bucket size */
        double refused_rate;   /* requests/s per client address with no valid key */
        double refused_burst;  /* its bucket size */
        uint64_t audit_max_bytes; /* rotate audit.log past this size; 0 = never */
        int64_t audit_keep;    /* rotated audit files kept; 0 = all */
    } auth;

    struct {
        bool require_auth;
    } metrics;

    struct {                   /* defaults of tenants' quotas; 0 = unlimited */
        int64_t max_queued;    /* jobs */
        int64_t max_running;   /* jobs */
        uint64_t max_device_memory; /* bytes */
        double device_seconds_per_hour; /* device-seconds */
    } quota;

    struct {
        bool enabled;          /* false: the admin fault API arms nothing */
        char *startup;         /* faults armed at start; NULL = none */
    } faults;

    struct {
        int level;             /* enum gx_cfg_log_level */
        int format;            /* enum gx_cfg_log_format */
    } log;

    struct gx__cfg_origin *origin_; /* private: where each key was set (gx_config_origin) */
} gx_config;

/* ---- lifecycle ------------------------------------------------------------ */

/* Fill c with the documented defaults (c's previous contents are ignored,
 * not freed). GX_ENOMEM if a string cannot be allocated, in which case c is
 * still safe to gx_config_free. */
int gx_config_defaults(gx_config *c);

/* Deep copy src into dst (dst's previous contents are ignored, not freed).
 * On GX_ENOMEM dst is safe to gx_config_free. */
int gx_config_copy(gx_config *dst, const gx_config *src);

/* Free the strings of c and zero it. NULL is fine; calling it twice too. */
void gx_config_free(gx_config *c);

/* ---- sources -------------------------------------------------------------- */

/* Read a YAML file over c (which holds defaults or an earlier layer); keys
 * the file does not name keep their value. Nested mappings and dotted keys
 * both work ("http: {max_body: 1MiB}" and "http.max_body: 1MiB").
 * Errors (c unchanged): GX_EIO (cannot read; field ""), GX_EFORMAT (YAML
 * syntax, top level not a mapping, several documents, aliases), GX_EINVAL
 * (unknown key, with the closest known key suggested; a mapping or list
 * where a value belongs; a bad value; a key set twice), GX_ELIMIT (file over
 * 4 MiB). err->pos is the 1-based line. */
int gx_config_load_file(gx_config *c, const char *path, gx_error *err);

/* gx_config_load_file on a buffer (need not be NUL-terminated). */
int gx_config_load_mem(gx_config *c, const char *buf, size_t len, gx_error *err);

/* Called for each GEXEC_* variable that names no key (with a suggestion
 * when one is close); var is its NAME alone: never its value, which may be
 * a secret under a misspelt name. */
typedef void (*gx_config_warn_fn)(void *ctx, const char *var, const char *message);

/* Override keys from GEXEC_* variables. envp is a NULL-terminated
 * "NAME=value" array, or NULL for the process environment. A variable that
 * names no key is not an error: warn (may be NULL) hears about it, unless
 * it is one gexec uses for something else (GEXEC_CONFIG). GEXEC_ADMIN_KEY
 * sets auth.admin_key when nothing else did (the file and
 * GEXEC_AUTH_ADMIN_KEY win), as the start does. A bad value is GX_EINVAL
 * naming the variable and the key (err->pos -1); c is unchanged. A secret's
 * value (auth.admin_key, store.dsn) never appears in a message. */
int gx_config_apply_env(gx_config *c, char *const *envp, gx_config_warn_fn warn,
                        void *ctx, gx_error *err);

/* Set one key from text, with the same syntax and checks as the file
 * (NULL or "" unsets an optional string). GX_ENOTFOUND for an unknown key,
 * GX_EINVAL for a bad value. For --set style flags and tests. */
int gx_config_set(gx_config *c, const char *key, const char *value, gx_error *err);

/* Derive store.path (<data_dir>/gexec.db) and blobs.dir (<data_dir>/blobs)
 * where unset, and check keys against each other (tls.cert with tls.key;
 * store.dsn with store.backend postgres). Call once, after the last source:
 * a derived value is not re-derived if data_dir changes later. GX_EINVAL
 * names the key; c is unchanged on error. */
int gx_config_finalize(gx_config *c, gx_error *err);

/* The whole pipeline: defaults, the file at path (skipped when NULL),
 * environment (envp as in gx_config_apply_env), finalize. c must not hold
 * an earlier config (it is overwritten). On error c holds the layers that
 * succeeded and must still be freed. */
int gx_config_load(gx_config *c, const char *path, char *const *envp,
                   gx_config_warn_fn warn, void *ctx, gx_error *err);

/* Where key's value came from, for messages about it: 1 and "line N" (of
 * the file) in buf, 2 and the variable's name (GEXEC_...), or 0 (a default,
 * a derived value, or gx_config_set). */
int gx_config_origin(const gx_config *c, const char *key, char *buf, size_t cap);

/* ---- output --------------------------------------------------------------- */

/* Print c as YAML that gx_config_load_mem reads back to the same values
 * (secrets, store.dsn and auth.admin_key, print as "(redacted)" when set,
 * which does not read back as a valid admin key). Unset strings print as ~.
 * Returns 0 or GX_EIO if writing failed. */
int gx_config_dump(const gx_config *c, FILE *out);

/* Print the commented sample config: every key with its doc, type, range
 * or choices, environment variable and default value. The committed
 * config/gexec.yaml.sample is this output. Returns 0 or GX_EIO. */
int gx_config_write_sample(FILE *out);

/* A key's value as text in the file syntax ("64MiB", "60s", "sqlite"),
 * unquoted; "" for an unset string. GX_ENOTFOUND for an unknown key,
 * GX_EOVERFLOW if cap is too small (buf then holds a truncated string). */
int gx_config_get(const gx_config *c, const char *key, char *buf, size_t cap);

/* Copy the engine.* keys into o, which the caller initialised with
 * gx_engine_opts_init; the fields no key covers are left alone. placement
 * points to a static string. */
void gx_config_engine_opts(const gx_config *c, gx_engine_opts *o);

/* ---- the table, for --help and docs --------------------------------------- */

typedef struct gx_config_key_info {
    const char *key;     /* "http.max_body" */
    const char *type;    /* "string", "int", "size", "duration", "double",
                            "bool", "enum" */
    const char *def;     /* default as text; NULL when unset by default */
    const char *doc;     /* what it does, one or two sentences */
    char env[64];        /* "GEXEC_HTTP_MAX_BODY" */
} gx_config_key_info;

/* Number of keys; key i (0-based, table order) into *out. GX_ENOTFOUND
 * past the end. */
size_t gx_config_key_count(void);
int gx_config_key_info_get(size_t i, gx_config_key_info *out);

#ifdef __cplusplus
}
#endif
#endif
