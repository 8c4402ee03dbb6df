/*
 * config.c - gexecd's settings: the key table and everything it drives.
 *
 * The table below is the only place a key is described: its path, type,
 * field, default (as the text a user would write, parsed by the same code
 * as the file), bounds or choices, and doc. From it come the defaults, the
 * YAML loader, the GEXEC_* overrides, the dump, the sample file and the
 * suggestions for misspelt keys. Adding a key is one field in gx_config and
 * one line here; tests/unit/test_config.c checks that the committed sample
 * still matches.
 *
 * The YAML loader walks libyaml's event stream rather than building a
 * document, so every key and value keeps its start mark (line) until it is
 * checked, and stops at the first problem. Each public call works on a copy
 * of the config and swaps it in only on success.
 */
#include <errno.h>
#include <limits.h>
#include <math.h> /* isfinite */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h> /* inet_pton */
#include <yaml.h>

#include "gexec/gexec_auth.h"
#include "gexec/gexec_config.h"

extern char **environ;

/* ==== the table ============================================================ */

typedef enum ktype { T_STR, T_INT, T_SIZE, T_DUR, T_DOUBLE, T_BOOL, T_ENUM } ktype;

static const char *const type_names[] = {"string", "int",  "size", "duration",
                                         "double", "bool", "enum"};

enum {
    K_OPTIONAL = 1 << 0, /* string that may be unset (NULL) */
    K_SECRET = 1 << 1,   /* redacted by gx_config_dump */
};

/* Checks a string value beyond "valid UTF-8, no control characters"; on
 * failure writes why (the part after "'value' ") and returns -1. */
typedef int (*check_fn)(const char *v, char *why, size_t cap);

typedef struct key {
    const char *name;            /* "http.max_body" */
    ktype type;
    size_t off;                  /* offset of the field in gx_config */
    const char *def;             /* default in file syntax; NULL = unset */
    int64_t min, max;            /* int, size (bytes), duration (ms) */
    double dmin, dmax;           /* double */
    const char *const *choices;  /* enum, NULL-terminated, enum order */
    unsigned flags;              /* K_* */
    check_fn check;              /* strings, may be NULL */
    const char *doc;
} key;

static int check_listen(const char *v, char *why, size_t cap);
static int check_tenant(const char *v, char *why, size_t cap);
static int check_admin_key(const char *v, char *why, size_t cap);

static const char *const backend_choices[] = {"sqlite", "postgres", NULL};
static const char *const sync_choices[] = {"full", "normal", NULL};
static const char *const placement_choices[] = {"least_loaded", "round_robin", "memory_best_fit", "perf_model", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_choices[] = {"text", "json", NULL};

/* offsetof plus a compile-time check that the field has the C type the key
 * type stores (a mismatch is a _Generic with no matching association). */
#define FIELD(f, ctype) \
    (offsetof(gx_config, f) + 0 * _Generic(((gx_config *)0)->f, ctype: (size_t)0))

#define STR(n, f, d, fl, chk, doc_)                                                  \
    {.name = n, .type = T_STR, .off = FIELD(f, char *), .def = d, .flags = fl,      \
     .check = chk, .doc = doc_}
#define INT(n, f, d, lo, hi, doc_)                                                   \
    {.name = n, .type = T_INT, .off = FIELD(f, int64_t), .def = d, .min = lo,       \
     .max = hi, .doc = doc_}
#define SIZE(n, f, d, lo, hi, doc_)                                                  \
    {.name = n, .type = T_SIZE, .off = FIELD(f, uint64_t), .def = d, .min = lo,     \
     .max = hi, .doc = doc_}
#define DUR(n, f, d, lo, hi, doc_)                                                   \
    {.name = n, .type = T_DUR, .off = FIELD(f, int64_t), .def = d, .min = lo,       \
     .max = hi, .doc = doc_}
#define DBL(n, f, d, lo, hi, doc_)                                                   \
    {.name = n, .type = T_DOUBLE, .off = FIELD(f, double), .def = d, .dmin = lo,    \
     .dmax = hi, .doc = doc_}
#define BOOL(n, f, d, doc_) \
    {.name = n, .type = T_BOOL, .off = FIELD(f, bool), .def = d, .doc = doc_}
#define ENUM(n, f, d, ch, doc_) \
    {.name = n, .type = T_ENUM, .off = FIELD(f, int), .def = d, .choices = ch, .doc = doc_}

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define TiB (INT64_C(1) << 40)
#define SEC INT64_C(1000)
#define HOUR (3600 * SEC)
#define DAY (24 * HOUR)

/* Keys of one section must be contiguous (the dump and the sample print a
 * section header once); test_config checks it. */
static const key keys[] = {
    STR("listen", listen, "127.0.0.1:8080", 0, check_listen,
        "Address the HTTP API listens on, host:port: an IPv4 address, "
        "[IPv6 address] or host name, and a port (0 picks a free one)."),
    STR("data_dir", data_dir, "./gexec-data", 0, NULL,
        "Directory that holds the job store and the blobs, unless store.path "
        "or blobs.dir put them elsewhere."),
    STR("default_tenant", default_tenant, "default", 0, check_tenant,
        "Tenant of requests that name none ([A-Za-z0-9_.-], at most 63; not . or ..)."),
    DUR("shutdown_timeout", shutdown_timeout_ms, "30s", 0, DAY,
        "On SIGTERM, how long running jobs may finish; those still running "
        "then are stopped and run again as a new attempt at the next start."),

    ENUM("store.backend", store.backend, "sqlite", backend_choices,
         "Where jobs, tenants and keys are kept."),
    STR("store.path", store.path, NULL, K_OPTIONAL, NULL,
        "SQLite database file. Unset: <data_dir>/gexec.db."),
    STR("store.dsn", store.dsn, NULL, K_OPTIONAL | K_SECRET, NULL,
        "PostgreSQL connection string (\"postgresql://user@host/db\"); "
        "required when store.backend is postgres. Redacted in dumps."),
    ENUM("store.synchronous", store.synchronous, "full", sync_choices,
         "SQLite durability: full syncs every commit; normal may lose the "
         "last commits on power loss, never corrupts."),
    INT("store.commit_delay_us", store.commit_delay_us, "0", 0, 1000000,
        "Group commit: how long a write waits for others to share its "
        "commit. 0 commits at once."),
    SIZE("store.wal_checkpoint", store.wal_checkpoint, "64MiB", 64 * KiB, 4 * GiB,
         "SQLite: a background thread copies the write-ahead log into the "
         "database each time it grows by this much."),
    DUR("store.retention", store.retention_ms, "7d", 0, 3650 * DAY,
        "How long finished jobs (succeeded, failed, cancelled, timed out, "
        "dead) are kept after they ended, with their events and results; "
        "blobs no job has named or uploaded for as long, and that no "
        "unfinished job needs, go too. Checked a second after the start, "
        "then every retention / 8 (1 s to 1 min). 0 keeps every job and "
        "blob (blob files no row names, left by a crash, still go)."),

    STR("blobs.dir", blobs.dir, NULL, K_OPTIONAL, NULL,
        "Directory of job input and output arrays. Unset: <data_dir>/blobs."),

    INT("engine.cpu_workers", engine.cpu_workers, "0", 0, 4096,
        "CPU worker threads. 0: one per core."),
    SIZE("engine.cpu_mem", engine.cpu_mem, "0", 0, 64 * TiB,
         "Memory budget of the CPU device for job inputs and outputs. "
         "0: half of RAM."),
    ENUM("engine.placement", engine.placement, "least_loaded", placement_choices,
         "How a job that fits several devices picks one: the fewest jobs in "
         "flight per slot, devices in turn, the least memory left free once "
         "placed, or the fastest expected finish from measured run times."),
    DUR("engine.fair_halflife", engine.fair_halflife_ms, "60s", 100, 30 * DAY,
        "Half-life of the decayed device time that fair sharing between "
        "tenants compares."),
    INT("engine.max_batch", engine.max_batch, "256", 1, 65536,
        "Most queued jobs a worker takes at once."),
    DBL("engine.batch_quantum_us", engine.batch_quantum_us, "2000", 1, 1e7,
        "Most expected work (microseconds) queued per device slot, and "
        "taken by a worker in one batch; keeps queues short so priorities "
        "and fairness stay responsive."),
    INT("engine.max_jobs", engine.max_jobs, "67108864", 1024, INT64_C(1) << 40,
        "Most job records held in memory (finished ones until forgotten); "
        "submissions beyond it are refused."),
    DUR("engine.hang_grace", engine.hang_grace_ms, "5s", 0, HOUR,
        "A call still running this long after its job was cancelled or "
        "timed out is hung: its device is reset. 0: never."),
    INT("engine.poison_faults", engine.poison_faults, "2", 1, 100,
        "Device faults after which a job is dead (poison) instead of "
        "re-queued."),
    INT("engine.recovery_attempts", engine.recovery_attempts, "3", 1, 100,
        "Resets tried after a device fault before the device stays "
        "unhealthy."),
    BOOL("engine.restart_on_device_loss", engine.restart_on_device_loss, "true",
         "A device that cannot be recovered in this process (a sticky GPU "
         "fault, a slot stuck in a call) makes gexecd drain and re-execute "
         "itself on the same listening socket (at most 3 times in 10 "
         "minutes). false: the device stays unhealthy until a restart."),

    INT("batching.max_batch", batching.max_batch, "64", 1, 65536,
        "Most small jobs of one kernel fused into one device launch. "
        "1 turns fusing off."),
    INT("batching.max_delay_us", batching.max_delay_us, "0", 0, 1000000,
        "Longest a GPU slot waits for more jobs of a batchable kernel to "
        "fuse into one launch. 0: launch what is queued at once."),

    DUR("retry.backoff_base", retry.backoff_base_ms, "100ms", 1, 10 * 60 * 1000,
        "Back-off before a failed job's second attempt: uniform in 0..base, "
        "the bound doubling per attempt (exponential with full jitter)."),
    DUR("retry.backoff_cap", retry.backoff_cap_ms, "10s", 1, DAY,
        "Upper bound of the back-off between attempts."),
    INT("breaker.threshold", breaker.threshold, "5", 0, 1000000,
        "Consecutive failures that point at a device (or a kernel) before "
        "its circuit breaker opens and it gets no more work. 0: no breakers."),
    DUR("breaker.cooldown", breaker.cooldown_ms, "30s", 10, DAY,
        "How long an open breaker waits before letting one probe job through "
        "(half-open); the probe's success closes it, its failure re-opens it."),

    BOOL("cuda.enabled", cuda.enabled, "true",
         "Load the CUDA backend and run jobs on GPUs. false: CPU only."),
    STR("cuda.plugin", cuda.plugin, NULL, K_OPTIONAL, NULL,
        "Path of the CUDA backend (.so). Unset: libgexec_cuda.so beside "
        "gexecd, else in ../lib/gexec from it, else found by the dynamic "
        "loader."),

    STR("kernels.plugins", kernels.plugins, NULL, K_OPTIONAL, NULL,
        "Kernel plugins to load at start: shared objects exporting "
        "gx_kernel_plugin_init (gexec_kernel.h), separated by ':'. One that "
        "cannot be loaded stops the start."),

    INT("http.threads", http.threads, "0", 0, 1024,
        "HTTP server threads. 0: one per core."),
    INT("http.max_connections", http.max_connections, "1024", 1, 1000000,
        "Most client connections open at once; more are refused."),
    SIZE("http.max_body", http.max_body, "64MiB", KiB, 16 * GiB,
         "Largest request body; larger requests get 413."),
    INT("http.max_batch_jobs", http.max_batch_jobs, "10000", 1, 1000000,
        "Most jobs in one batch submission."),
    SIZE("http.max_json_memory", http.max_json_memory, "256MiB", MiB, 64 * GiB,
         "Most memory that decoding one JSON request body (a job or a "
         "batch) may take; a body that needs more gets 413. Decoded JSON "
         "takes up to ~20 times its text (inline numbers): send large "
         "arrays as .npy blobs."),
    SIZE("http.max_header_bytes", http.max_header_bytes, "16KiB", KiB, MiB,
         "Largest request line plus headers; larger requests get 431."),
    DUR("http.timeout", http.timeout_ms, "30s", SEC, HOUR,
        "A connection idle this long is closed."),
    INT("http.max_connections_per_client", http.max_connections_per_client, "64", 0, 1000000,
        "Most connections open at once from one client address (IPv4 or "
        "IPv6); a request on one more is answered 429 and its connection "
        "closed (a silent one is cut after 1 s). 0: no limit."),
    DUR("http.request_timeout", http.request_timeout_ms, "30s", 0, HOUR,
        "Longest a request's headers may take to arrive (from the "
        "connection's opening or its previous response), and its body (from "
        "the headers); a slower one gets 408 or its connection is closed. "
        "0: no limit."),
    DUR("http.stream_heartbeat", http.stream_heartbeat_ms, "15s", 0, HOUR,
        "An event stream (GET /v1/events) with nothing to send for this "
        "long sends a comment line, so that proxies keep it open and a "
        "client gone without a word is noticed. Streams whose client "
        "closed its connection are closed within about two seconds either way. 0: none."),
    INT("http.stream_replay_events", http.stream_replay_events, "65536", 0, INT64_C(1) << 24,
        "Most recent job state changes kept in memory (about 48 bytes "
        "each) so that an event stream that reconnects with Last-Event-ID "
        "(or after=) gets what it missed. A client whose id is older gets "
        "a reset event. 0: no replay."),
    SIZE("http.stream_client_buffer", http.stream_client_buffer, "4MiB", 64 * KiB, GiB,
         "Most bytes of events held for one slow event stream client; "
         "past it the stream reads from the replay buffer instead, and a "
         "client that falls behind that too gets a reset event."),

    STR("tls.cert", tls.cert, NULL, K_OPTIONAL, NULL,
        "PEM certificate chain. With tls.key the API speaks HTTPS; unset: "
        "plain HTTP."),
    STR("tls.key", tls.key, NULL, K_OPTIONAL, NULL,
        "PEM private key of tls.cert."),

    BOOL("auth.enabled", auth.enabled, "true",
         "Require an API key (Authorization: Bearer) on every route but "
         "/healthz and /readyz. false: every request acts as default_tenant "
         "with role admin."),
    STR("auth.admin_key", auth.admin_key, NULL, K_OPTIONAL | K_SECRET, check_admin_key,
        "Admin key (gx_ format) stored at start (also $GEXEC_ADMIN_KEY). "
        "Unset: one is generated when no admin key exists. Redacted in dumps."),
    STR("auth.admin_key_file", auth.admin_key_file, NULL, K_OPTIONAL, NULL,
        "Where a generated admin key is written (0600). Unset: "
        "<data_dir>/admin.key."),
    DBL("auth.rate", auth.rate, "20000", 0.001, 1e9,
        "Requests per second allowed to each API key (token bucket)."),
    DBL("auth.burst", auth.burst, "40000", 1, 1e9,
        "Requests one API key may make at once above auth.rate."),
    DBL("auth.refused_rate", auth.refused_rate, "10", 0.001, 1e9,
        "Requests per second one client address may make with a missing "
        "or invalid key (each is refused with 401 and audited); past it "
        "they answer 429 unaudited, so that no client floods the audit log."),
    DBL("auth.refused_burst", auth.refused_burst, "100", 1, 1e9,
        "Such requests one client address may make at once above "
        "auth.refused_rate."),
    SIZE("auth.audit_max_bytes", auth.audit_max_bytes, "256MiB", 0, TiB,
         "When a record would take <data_dir>/audit.log past this size, "
         "the file is renamed audit.log.<seq of its first record, 20 "
         "digits> and a new one begun; the hash chain runs on across the "
         "files. 0: never rotate."),
    INT("auth.audit_keep", auth.audit_keep, "16", 0, 1000000,
        "Rotated audit files kept: the oldest beyond it are deleted at a "
        "rotation (archive them before; see docs/security.md). 0: keep all."),

    BOOL("metrics.require_auth", metrics.require_auth, "true",
         "Whether /metrics needs an API key like the rest of the API."),

    INT("quota.default_max_queued", quota.max_queued, "0", 0, 1000000000,
        "Jobs a tenant may have queued (or waiting, or retrying) at once, "
        "unless set for the tenant; more are refused with 429. 0: no limit."),
    INT("quota.default_max_running", quota.max_running, "0", 0, 1000000000,
        "Jobs a tenant may have running at once, unless set for the tenant; "
        "more wait. 0: no limit."),
    SIZE("quota.default_max_device_memory", quota.max_device_memory, "0", 0, 1024 * TiB,
         "Device memory a tenant's running jobs may hold at once, unless set "
         "for the tenant; more wait. 0: no limit."),
    DBL("quota.default_device_seconds_per_hour", quota.device_seconds_per_hour, "0", 0, 1e9,
        "Device-seconds a tenant's jobs may use in the trailing hour, unless "
        "set for the tenant; submissions beyond get 429 with Retry-After. "
        "0: no limit."),
    BOOL("faults.enabled", faults.enabled, "false",
         "Allow fault injection: POST /v1/admin/faults arms faults only when "
         "true (tests, soak runs, drills). Never on in production."),
    STR("faults.startup", faults.startup, NULL, K_OPTIONAL, NULL,
        "Faults armed at start when faults.enabled, ';'-separated, each "
        "point[:count][,device=N][,code=N][,delay_us=N], e.g. "
        "\"store.slow:-1,delay_us=2000;store.commit:3\". Unset: none."),

    ENUM("log.level", log.level, "info", level_choices,
         "Least severe log level written."),
    ENUM("log.format", log.format, "text", format_choices,
         "text: one human line per event; json: one JSON object per line."),
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* The admin key's own variable, besides its key's GEXEC_AUTH_ADMIN_KEY
 * (env_into). */
#define ADMIN_KEY_VAR "GEXEC_ADMIN_KEY"

/* GEXEC_* variables that are not keys and must not draw a warning. */
static const char *const env_reserved[] = {"GEXEC_CONFIG", "GEXEC_SERVER", "GEXEC_API_KEY", ADMIN_KEY_VAR, "GEXEC_CACERT",
                                            "GEXEC_LISTEN_FD", "GEXEC_RESTARTS",
                                            "GEXEC_INJECT_FAULT", NULL};

#define MAX_FILE_BYTES (4u << 20) /* a config is small; refuse a huge one */
#define MAX_STR_BYTES 4096        /* longest string value */

/* ==== small helpers ======================================================== */

static void *field(gx_config *c, const key *k) { return (char *)c + k->off; }
static const void *cfield(const gx_config *c, const key *k) {
    return (const char *)c + k->off;
}

static char lower(char ch) { return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch; }

/* ASCII case-insensitive equality of s[0..n) and the NUL-terminated t. */
static int eq_nocase(const char *s, size_t n, const char *t) {
    size_t m = strlen(t);
    if (m != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lower(t[i])) return 0;
    return 1;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static const key *find_key(const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

/* "http" is a section: some key starts with "http.". */
static int is_section(const char *path) {
    size_t n = strlen(path);
    for (size_t i = 0; i < NKEYS; i++)
        if (!strncmp(keys[i].name, path, n) && keys[i].name[n] == '.') return 1;
    return 0;
}

static void env_name(const char *key_name, char *buf, size_t cap) {
    size_t j = 0;
    const char *pre = "GEXEC_";
    for (; *pre && j + 1 < cap; pre++) buf[j++] = *pre;
    for (const char *p = key_name; *p && j + 1 < cap; p++) {
        char ch = *p == '.' ? '_' : *p;
        buf[j++] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
    }
    buf[j] = '\0';
}

/* A value as it may appear inside a message: at most 40 bytes, control
 * characters as '?'. */
static const char *show(const char *s, size_t n, char *buf, size_t cap) {
    size_t lim = cap - 4, j = 0;
    if (lim > 40) lim = 40;
    for (size_t i = 0; i < n && j < lim; i++)
        buf[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (n > lim) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

/* Edit distance (insert, delete, substitute, swap of neighbours), for
 * suggestions; long strings count as far away. */
static size_t distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

static const char *leaf(const char *path) {
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* The known name closest to what was written, or NULL when none is close.
 * Candidates are key paths and sections (or their GEXEC_ names when env);
 * a key whose last part matches counts as close, so a key put in the wrong
 * section ("cpu_workers" at the top) finds its home. */
static const char *suggest(const char *got, int env, char *buf, size_t cap) {
    size_t best = SIZE_MAX;
    const char *best_name = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        const char *name = keys[i].name;
        char cand[96];
        size_t d;
        if (env) {
            env_name(name, cand, sizeof cand);
            d = distance(got + 6, cand + 6); /* both start with GEXEC_ */
        } else {
            snprintf(cand, sizeof cand, "%s", name);
            d = distance(got, cand);
            size_t dl = distance(leaf(got), leaf(name));
            if (dl != SIZE_MAX && dl + 1 < d) d = dl + 1;
            /* the section itself ("engin" -> "engine") */
            const char *dot = strrchr(name, '.');
            if (dot) {
                char sec[96];
                snprintf(sec, sizeof sec, "%.*s", (int)(dot - name), name);
                size_t ds = distance(got, sec);
                if (ds < d) {
                    d = ds;
                    snprintf(cand, sizeof cand, "%s", sec);
                }
            }
        }
        if (d < best) {
            best = d;
            snprintf(buf, cap, "%s", cand);
            best_name = buf;
        }
    }
    size_t len = strlen(got) - (env ? 6 : 0);
    size_t limit = len / 3 > 1 ? len / 3 : 1;
    return best <= limit ? best_name : NULL;
}

/* Fill err with "<where>: <key>: <detail>" (where and key may be NULL). */
__attribute__((format(printf, 6, 7))) static int fail(gx_error *err, int code, long line,
                                                      const char *where, const char *keyname,
                                                      const char *fmt, ...) {
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    char pre[112] = "";
    if (line > 0)
        snprintf(pre, sizeof pre, "line %ld: ", line);
    else if (where)
        snprintf(pre, sizeof pre, "%s: ", where);
    gx_error_set(err, code, keyname, "%s%s%s%s", pre, keyname ? keyname : "",
                 keyname ? ": " : "", detail);
    if (err) err->pos = line > 0 ? line : -1;
    return code;
}

/* ==== values: parsing ====================================================== */

typedef enum { P_OK, P_SYNTAX, P_RANGE, P_FRACTION } pres;

typedef struct unit {
    const char *name;
    uint64_t mult;
} unit;

static const unit size_units[] = {
    {"B", 1},
    {"KB", 1000},
    {"MB", 1000000},
    {"GB", 1000000000},
    {"TB", 1000000000000},
    {"KiB", (uint64_t)KiB},
    {"MiB", (uint64_t)MiB},
    {"GiB", (uint64_t)GiB},
    {"TiB", (uint64_t)TiB},
    {NULL, 0},
};

static const unit dur_units[] = {
    {"ms", 1},
    {"s", (uint64_t)SEC},
    {"m", 60 * (uint64_t)SEC},
    {"h", (uint64_t)HOUR},
    {"d", (uint64_t)DAY},
    {NULL, 0},
};

/* "<digits>[.<digits>][ ]<unit>" to a whole count of the base unit (the
 * unit with mult 1); no unit means bare_mult. At most 6 decimals, so that
 * fraction * mult stays within 64 bits. */
static pres parse_scaled(const char *s, size_t n, const unit *units, uint64_t bare_mult,
                         uint64_t *out) {
    size_t i = 0;
    uint64_t ip = 0, frac = 0, scale = 1;
    int overflow = 0;
    if (n && s[0] == '-') {
        /* a negative that would otherwise parse is out of range, not
         * gibberish ("-0" is zero) */
        pres r = parse_scaled(s + 1, n - 1, units, bare_mult, out);
        if (r == P_OK && *out == 0) return P_OK;
        return r == P_SYNTAX ? P_SYNTAX : P_RANGE;
    }
    if (i < n && s[i] == '+') i++;
    if (i >= n || s[i] < '0' || s[i] > '9') return P_SYNTAX;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (ip > (UINT64_MAX - 9) / 10) overflow = 1;
        else ip = ip * 10 + (uint64_t)(s[i] - '0');
    }
    if (i < n && s[i] == '.') {
        i++;
        size_t nd = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            if (nd >= 6) return P_SYNTAX;
            frac = frac * 10 + (uint64_t)(s[i] - '0');
            scale *= 10;
        }
        if (nd == 0) return P_SYNTAX;
    }
    if (i < n && s[i] == ' ') i++;
    uint64_t mult = 0;
    if (i == n) {
        mult = bare_mult;
    } else {
        for (const unit *u = units; u->name; u++)
            if (eq_nocase(s + i, n - i, u->name)) mult = u->mult;
        if (!mult) return P_SYNTAX;
    }
    if (overflow || (mult && ip > UINT64_MAX / mult)) return P_RANGE;
    uint64_t v = ip * mult, f = frac * mult;
    if (f % scale) return P_FRACTION;
    if (v > UINT64_MAX - f / scale) return P_RANGE;
    *out = v + f / scale;
    return P_OK;
}

static pres parse_int(const char *s, size_t n, int64_t *out) {
    size_t i = 0;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= n) return P_SYNTAX;
    uint64_t v = 0;
    int overflow = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return P_SYNTAX;
        if (v > (UINT64_MAX - 9) / 10) overflow = 1;
        else v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (overflow || v > (uint64_t)INT64_MAX + neg) return P_RANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return P_OK;
}

static pres parse_double(const char *s, size_t n, double *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf) return P_SYNTAX;
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", s[i]) || s[i] == '\0') return P_SYNTAX;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || end == buf) return P_SYNTAX;
    if (!isfinite(v)) return P_RANGE;
    *out = v;
    return P_OK;
}

static pres parse_bool(const char *s, size_t n, bool *out) {
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    for (int i = 0; yes[i]; i++)
        if (eq_nocase(s, n, yes[i])) return *out = true, P_OK;
    for (int i = 0; no[i]; i++)
        if (eq_nocase(s, n, no[i])) return *out = false, P_OK;
    return P_SYNTAX;
}

/* Well-formed UTF-8 of characters YAML can print: no C0 or C1 controls,
 * no line or paragraph separators, no BOM, no noncharacters. Whatever
 * passes can be written back in a double-quoted YAML scalar escaping only
 * backslash and double quote, so the dump reads back to the same string. */
static int clean_utf8(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned ch = p[i];
        if (ch < 0x80) {
            if (ch < 0x20 || ch == 0x7f) return 0;
            i++;
            continue;
        }
        size_t len;
        if (ch >= 0xc2 && ch <= 0xdf) len = 2;
        else if (ch >= 0xe0 && ch <= 0xef) len = 3;
        else if (ch >= 0xf0 && ch <= 0xf4) len = 4;
        else return 0;
        if (i + len > n) return 0;
        unsigned cp = ch & (0xffu >> (len + 1));
        for (size_t j = 1; j < len; j++) {
            if ((p[i + j] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0x2028 || cp == 0x2029 ||
            cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            return 0;
        i += len;
    }
    return 1;
}

/* A host name (RFC 1123, and '_' as resolvers allow): dot-separated labels
 * of letters, digits, '-' and '_', 1 to 63 each, no '-' at either end, at
 * most 253 characters, one trailing dot allowed; the last label is not all
 * digits (such a name is a malformed IPv4 address, "999.1.1.1"). */
static int host_name_ok(const char *h, size_t n) {
    if (n > 1 && h[n - 1] == '.') n--;
    if (n == 0 || n > 253) return 0;
    size_t start = 0;
    int digits_only = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63 || h[start] == '-' || h[i - 1] == '-') return 0;
            if (i == n && digits_only) return 0;
            start = i + 1;
            digits_only = 1;
            continue;
        }
        char ch = h[i];
        int digit = ch >= '0' && ch <= '9';
        if (!digit && !(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z') && ch != '-' &&
            ch != '_')
            return 0;
        digits_only &= digit;
    }
    return 1;
}

/* host:port or [IPv6]:port, the host a numeric address or a host name (its
 * form only: nothing is resolved or bound here). */
static int check_listen(const char *v, char *why, size_t cap) {
    const char *colon;
    char host[256];
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close == v + 1 || close[1] != ':') goto bad;
        size_t hl = (size_t)(close - v - 1);
        struct in6_addr a6;
        snprintf(host, sizeof host, "%.*s", (int)(hl < sizeof host ? hl : sizeof host - 1), v + 1);
        if (hl >= sizeof host || inet_pton(AF_INET6, host, &a6) != 1) {
            snprintf(why, cap, "has host [%.40s], which is not an IPv6 address", host);
            return -1;
        }
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (!colon || colon == v) goto bad;
        size_t hl = (size_t)(colon - v);
        if (hl >= sizeof host) {
            snprintf(why, cap, "has a host of %zu characters; host names have at most 253", hl);
            return -1;
        }
        memcpy(host, v, hl);
        host[hl] = '\0';
        if (strspn(host, "0123456789.") == hl) { /* digits and dots: IPv4 */
            struct in_addr a4;
            if (inet_pton(AF_INET, host, &a4) != 1) {
                snprintf(why, cap, "has host %.40s, which is not an IPv4 address (a.b.c.d, each 0 to 255)",
                         host);
                return -1;
            }
        } else if (!host_name_ok(host, hl)) {
            if (strchr(host, ':'))
                snprintf(why, cap, "is not host:port (write an IPv6 address in brackets: [::1]:8080)");
            else
                snprintf(why, cap, "has host %.40s, which is not an IP address or a host name", host);
            return -1;
        }
    }
    const char *port = colon + 1;
    size_t np = strlen(port);
    long pv = 0;
    if (np == 0 || np > 5) goto bad;
    for (size_t i = 0; i < np; i++) {
        if (port[i] < '0' || port[i] > '9') goto bad;
        pv = pv * 10 + (port[i] - '0');
    }
    if (pv > 65535) {
        snprintf(why, cap, "has port %ld; ports are 0 to 65535", pv);
        return -1;
    }
    return 0;
bad:
    snprintf(why, cap, "is not host:port (e.g. 127.0.0.1:8080, [::1]:8080, 0.0.0.0:80)");
    return -1;
}

/* The admin key is checked here, not only when gexecd stores it at start,
 * so that --check-config refuses what the start would refuse. */
static int check_admin_key(const char *v, char *why, size_t cap) {
    if (gx_auth_token_parse(v, strlen(v), NULL) == GX_AUTH_OK) return 0;
    snprintf(why, cap, "is not an admin key: it must look like "
                       "gx_<16 hex digits>_<32 bytes in unpadded base64url: 43 characters>");
    return -1;
}

static int check_tenant(const char *v, char *why, size_t cap) {
    int ok = gx_tenant_name_new_valid(v);
    if (!ok) snprintf(why, cap, "is not a tenant name ([A-Za-z0-9_.-], 1 to 63 characters, not . or ..)");
    return ok ? 0 : -1;
}

/* ==== values: formatting =================================================== */

/* The shortest exact spelling of a byte count: "64MiB", "2GB", "1536";
 * on a tie binary units win over bytes, and bytes over decimal units. */
static void fmt_size(uint64_t v, char *buf, size_t cap) {
    snprintf(buf, cap, "%llu", (unsigned long long)v);
    if (!v) return;
    size_t best = strlen(buf) * 3 + 1; /* length * 3 + class */
    for (const unit *u = size_units; u->name; u++) {
        if (u->mult == 1 || v % u->mult) continue;
        char cand[32];
        int n = snprintf(cand, sizeof cand, "%llu%s", (unsigned long long)(v / u->mult), u->name);
        size_t score = (size_t)n * 3 + (strchr(u->name, 'i') ? 0 : 2);
        if (n > 0 && score < best && (size_t)n < cap) {
            best = score;
            memcpy(buf, cand, (size_t)n + 1);
        }
    }
}

/* Seconds unless not whole (ms) or whole hours (h); "0s" for zero. */
static void fmt_dur(int64_t ms, char *buf, size_t cap) {
    uint64_t v = (uint64_t)ms;
    if (v % (uint64_t)SEC)
        snprintf(buf, cap, "%llums", (unsigned long long)v);
    else if (v && v % (uint64_t)DAY == 0)
        snprintf(buf, cap, "%llud", (unsigned long long)(v / (uint64_t)DAY));
    else if (v && v % (uint64_t)HOUR == 0)
        snprintf(buf, cap, "%lluh", (unsigned long long)(v / (uint64_t)HOUR));
    else
        snprintf(buf, cap, "%llus", (unsigned long long)(v / (uint64_t)SEC));
}

/* Shortest %g that reads back as the same double. */
static void fmt_double(double v, char *buf, size_t cap) {
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) { /* integral */
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void fmt_bound(const key *k, int64_t v, char *buf, size_t cap) {
    if (k->type == T_SIZE) fmt_size((uint64_t)v, buf, cap);
    else if (k->type == T_DUR) fmt_dur(v, buf, cap);
    else snprintf(buf, cap, "%lld", (long long)v);
}

/* A value in file syntax, unquoted; strings as they are ("" when unset). */
static void fmt_value(const gx_config *c, const key *k, char *buf, size_t cap) {
    const void *f = cfield(c, k);
    switch (k->type) {
    case T_STR: {
        const char *s = *(char *const *)f;
        snprintf(buf, cap, "%s", s ? s : "");
        break;
    }
    case T_INT: snprintf(buf, cap, "%lld", (long long)*(const int64_t *)f); break;
    case T_SIZE: fmt_size(*(const uint64_t *)f, buf, cap); break;
    case T_DUR: fmt_dur(*(const int64_t *)f, buf, cap); break;
    case T_DOUBLE: fmt_double(*(const double *)f, buf, cap); break;
    case T_BOOL: snprintf(buf, cap, "%s", *(const bool *)f ? "true" : "false"); break;
    case T_ENUM: snprintf(buf, cap, "%s", k->choices[*(const int *)f]); break;
    }
}

/* ==== setting one key ====================================================== */

static int range_error(gx_error *err, long line, const char *where, const key *k,
                       const char *shown) {
    char lo[32], hi[32];
    if (k->type == T_DOUBLE) {
        fmt_double(k->dmin, lo, sizeof lo);
        fmt_double(k->dmax, hi, sizeof hi);
    } else {
        fmt_bound(k, k->min, lo, sizeof lo);
        fmt_bound(k, k->max, hi, sizeof hi);
    }
    return fail(err, GX_EINVAL, line, where, k->name, "'%s' is out of range (%s to %s)", shown,
                lo, hi);
}

static const char *type_hint(ktype t) {
    switch (t) {
    case T_INT: return "an integer";
    case T_SIZE: return "a size (use bytes or KiB/MiB/GiB)";
    case T_DUR: return "a duration (use ms, s, m, h or d, e.g. 60s)";
    case T_DOUBLE: return "a number";
    case T_BOOL: return "a boolean (true/false, yes/no, on/off, 1/0)";
    default: return "a value";
    }
}

/* Set key k of c from the text s[0..n). is_null: the value was YAML null or
 * an empty variable. line (> 0) or where say where the text came from for
 * the message. c changes only on success. */
static int set_value_(gx_config *c, const key *k, const char *s, size_t n, int is_null,
                      long line, const char *where, gx_error *err);

/* Where a key's value came from: the file's line, or a variable. */
struct gx__cfg_origin {
    long line;   /* > 0: the file's */
    char var[64]; /* else the variable's name; "" for a default */
};

static int set_value(gx_config *c, const key *k, const char *s, size_t n, int is_null,
                     long line, const char *where, gx_error *err) {
    int rc = set_value_(c, k, s, n, is_null, line, where, err);
    if (rc == 0 && c->origin_) {
        struct gx__cfg_origin *o = &c->origin_[k - keys];
        o->line = line > 0 ? line : 0;
        snprintf(o->var, sizeof o->var, "%.63s", line <= 0 && where && strcmp(where, "default") ? where : "");
    }
    return rc;
}

int gx_config_origin(const gx_config *c, const char *keyname, char *buf, size_t cap) {
    const key *k = keyname ? find_key(keyname) : NULL;
    if (!c || !c->origin_ || !k || !cap) return 0;
    const struct gx__cfg_origin *o = &c->origin_[k - keys];
    if (o->line > 0) {
        snprintf(buf, cap, "line %ld", o->line);
        return 1;
    }
    if (!o->var[0]) return 0;
    snprintf(buf, cap, "%s", o->var);
    return 2;
}

static int set_value_(gx_config *c, const key *k, const char *s, size_t n, int is_null,
                      long line, const char *where, gx_error *err) {
    char shown[64];
    void *f = field(c, k);
    if (is_null || n == 0) {
        if (k->type == T_STR && (k->flags & K_OPTIONAL)) {
            free(*(char **)f);
            *(char **)f = NULL;
            return 0;
        }
        if (k->type == T_STR)
            return fail(err, GX_EINVAL, line, where, k->name, "must not be empty");
        return fail(err, GX_EINVAL, line, where, k->name, "has no value (expected %s)",
                    k->type == T_ENUM ? "one of its choices" : type_hint(k->type));
    }
    if (memchr(s, '\0', n))
        return fail(err, GX_EINVAL, line, where, k->name, "contains a NUL byte");
    show(s, n, shown, sizeof shown);

    switch (k->type) {
    case T_STR: {
        /* a secret's value stays out of messages, which end up in logs */
        char what[72];
        if (k->flags & K_SECRET) snprintf(what, sizeof what, "the value");
        else snprintf(what, sizeof what, "'%s'", shown);
        if (n > MAX_STR_BYTES)
            return fail(err, GX_EINVAL, line, where, k->name, "is longer than %d bytes",
                        MAX_STR_BYTES);
        if (!clean_utf8(s, n))
            return fail(err, GX_EINVAL, line, where, k->name,
                        "%s has control characters or is not UTF-8", what);
        char *d = dup_n(s, n);
        if (!d) return fail(err, GX_ENOMEM, line, where, k->name, "out of memory");
        char why[128];
        if (k->check && k->check(d, why, sizeof why)) {
            free(d);
            return fail(err, GX_EINVAL, line, where, k->name, "%s %s", what, why);
        }
        free(*(char **)f);
        *(char **)f = d;
        return 0;
    }
    case T_INT: {
        int64_t v = 0;
        pres r = parse_int(s, n, &v);
        if (r == P_SYNTAX)
            return fail(err, GX_EINVAL, line, where, k->name, "'%s' is not %s", shown,
                        type_hint(k->type));
        if (r != P_OK || v < k->min || v > k->max) return range_error(err, line, where, k, shown);
        *(int64_t *)f = v;
        return 0;
    }
    case T_SIZE:
    case T_DUR: {
        uint64_t v = 0;
        pres r = k->type == T_SIZE ? parse_scaled(s, n, size_units, 1, &v)
                                   : parse_scaled(s, n, dur_units, (uint64_t)SEC, &v);
        if (r == P_SYNTAX)
            return fail(err, GX_EINVAL, line, where, k->name, "'%s' is not %s", shown,
                        type_hint(k->type));
        if (r == P_FRACTION)
            return fail(err, GX_EINVAL, line, where, k->name, "'%s' is not a whole number of %s",
                        shown, k->type == T_SIZE ? "bytes" : "milliseconds");
        if (r != P_OK || v < (uint64_t)k->min || v > (uint64_t)k->max)
            return range_error(err, line, where, k, shown);
        if (k->type == T_SIZE) *(uint64_t *)f = v;
        else *(int64_t *)f = (int64_t)v;
        return 0;
    }
    case T_DOUBLE: {
        double v = 0;
        pres r = parse_double(s, n, &v);
        if (r == P_SYNTAX)
            return fail(err, GX_EINVAL, line, where, k->name, "'%s' is not %s", shown,
                        type_hint(k->type));
        if (r != P_OK || !(v >= k->dmin && v <= k->dmax))
            return range_error(err, line, where, k, shown);
        *(double *)f = v;
        return 0;
    }
    case T_BOOL: {
        bool v = false;
        if (parse_bool(s, n, &v) != P_OK)
            return fail(err, GX_EINVAL, line, where, k->name, "'%s' is not %s", shown,
                        type_hint(k->type));
        *(bool *)f = v;
        return 0;
    }
    case T_ENUM: {
        for (int i = 0; k->choices[i]; i++)
            if (eq_nocase(s, n, k->choices[i])) {
                *(int *)f = i;
                return 0;
            }
        char list[128] = "";
        for (int i = 0; k->choices[i]; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", k->choices[i]);
        }
        return fail(err, GX_EINVAL, line, where, k->name, "'%s' is not one of %s", shown, list);
    }
    }
    return fail(err, GX_EINVAL, line, where, k->name, "unknown key type");
}

/* ==== lifecycle ============================================================ */

void gx_config_free(gx_config *c) {
    if (!c) return;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == T_STR) free(*(char **)field(c, &keys[i]));
    free(c->origin_);
    memset(c, 0, sizeof *c);
}

int gx_config_defaults(gx_config *c) {
    memset(c, 0, sizeof *c);
    if (!(c->origin_ = calloc(NKEYS, sizeof *c->origin_))) return GX_ENOMEM;
    for (size_t i = 0; i < NKEYS; i++) {
        const key *k = &keys[i];
        const char *d = k->def;
        gx_error err;
        int rc = set_value(c, k, d ? d : "", d ? strlen(d) : 0, d == NULL, 0, "default", &err);
        if (rc) return rc; /* GX_ENOMEM; a default that does not parse is a
                              bug caught by test_config */
    }
    return 0;
}

int gx_config_copy(gx_config *dst, const gx_config *src) {
    memcpy(dst, src, sizeof *dst);
    dst->origin_ = NULL;
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == T_STR) *(char **)field(dst, &keys[i]) = NULL;
    if (src->origin_) {
        if (!(dst->origin_ = malloc(NKEYS * sizeof *dst->origin_))) return GX_ENOMEM;
        memcpy(dst->origin_, src->origin_, NKEYS * sizeof *dst->origin_);
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type != T_STR) continue;
        const char *s = *(char *const *)cfield(src, &keys[i]);
        if (!s) continue;
        char *d = dup_n(s, strlen(s));
        if (!d) return GX_ENOMEM;
        *(char **)field(dst, &keys[i]) = d;
    }
    return 0;
}

/* Run fn on a copy of c and swap it in when fn succeeds. */
static int on_copy(gx_config *c, gx_error *err, int (*fn)(gx_config *, void *, gx_error *),
                   void *arg) {
    gx_config tmp;
    if (gx_config_copy(&tmp, c)) {
        gx_config_free(&tmp);
        return fail(err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    }
    int rc = fn(&tmp, arg, err);
    if (rc) {
        gx_config_free(&tmp);
        return rc;
    }
    gx_config_free(c);
    *c = tmp;
    return 0;
}

/* ==== the YAML loader ====================================================== */

typedef struct loader {
    yaml_parser_t p;
    yaml_event_t ev;   /* the current event, when have_ev */
    int have_ev;
    const char *buf;   /* the input, for reader-error line numbers */
    size_t len;
    gx_config *c;
    gx_error *err;
    long set_line[NKEYS]; /* where each key was set, 0 = not yet */
    struct {
        char path[64];
        long line;
    } sec[32];            /* sections met, where ("http" on line 3) */
    int nsec;
} loader;

/* A section met a second time ("http:" twice: the second one's keys were
 * merged into the first's without a word) fails; else it is noted. */
static int section_once(loader *L, const char *path, long key_line) {
    for (int i = 0; i < L->nsec; i++)
        if (!strcmp(L->sec[i].path, path))
            return fail(L->err, GX_EINVAL, key_line, NULL, path, "set twice (first on line %ld)", L->sec[i].line);
    if (L->nsec < (int)(sizeof L->sec / sizeof L->sec[0]) && strlen(path) < sizeof L->sec[0].path) {
        snprintf(L->sec[L->nsec].path, sizeof L->sec[0].path, "%s", path);
        L->sec[L->nsec++].line = key_line;
    }
    return 0;
}

/* p's syntax error into L->err (p: L's parser or another over the same
 * input). */
static int syntax_error_of(loader *L, const yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR)
        return fail(L->err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    size_t line = 1, col = 1;
    if (p->error == YAML_READER_ERROR) {
        /* reader errors carry a byte offset, not a mark */
        size_t end = p->problem_offset < L->len ? p->problem_offset : L->len;
        for (size_t i = 0; i < end; i++) {
            if (L->buf[i] == '\n') line++, col = 1;
            else col++;
        }
    } else {
        line = p->problem_mark.line + 1;
        col = p->problem_mark.column + 1;
    }
    char ctx[96] = "";
    if (p->context && p->error != YAML_READER_ERROR)
        snprintf(ctx, sizeof ctx, " (%s on line %zu)", p->context, p->context_mark.line + 1);
    fail(L->err, GX_EFORMAT, 0, NULL, NULL, "line %zu, column %zu: YAML syntax error: %s%s",
         line, col, p->problem ? p->problem : "unknown problem", ctx);
    if (L->err) L->err->pos = (long)line;
    return GX_EFORMAT;
}

static int syntax_error(loader *L) { return syntax_error_of(L, &L->p); }

static int next(loader *L) {
    if (L->have_ev) yaml_event_delete(&L->ev);
    L->have_ev = 0;
    if (!yaml_parser_parse(&L->p, &L->ev)) return syntax_error(L);
    L->have_ev = 1;
    return 0;
}

static long ev_line(const loader *L) { return (long)L->ev.start_mark.line + 1; }

static const char *ev_what(yaml_event_type_t t) {
    switch (t) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "a value";
    }
}

static int is_null_scalar(const yaml_event_t *e) {
    if (e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *v = (const char *)e->data.scalar.value;
    size_t n = e->data.scalar.length;
    return n == 0 || (n == 1 && v[0] == '~') ||
           (n == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static int parse_mapping(loader *L, const char *prefix);

/* 1 when the rest of the input has a YAML syntax error, with L->err set to
 * it: a list or mapping met where a value belongs may be a bracket left
 * open, which the parser reports only further on. The current event is
 * kept. */
static int syntax_ahead(loader *L) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return 0;
    yaml_parser_set_input_string(&p, (const unsigned char *)L->buf, L->len);
    yaml_event_t ev;
    int bad = 0;
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            bad = 1;
            break;
        }
        int end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        if (end) break;
    }
    if (bad) syntax_error_of(L, &p);
    yaml_parser_delete(&p);
    return bad;
}

/* The value of key path (its event is current). */
static int parse_value(loader *L, const char *path, long key_line) {
    const key *k = find_key(path);
    yaml_event_t *e = &L->ev;
    long line = ev_line(L);
    if (e->type == YAML_ALIAS_EVENT)
        return fail(L->err, GX_EFORMAT, line, NULL, path, "aliases (*%s) are not supported",
                    (const char *)e->data.alias.anchor);
    if (k) {
        if (e->type != YAML_SCALAR_EVENT && syntax_ahead(L)) return GX_EFORMAT; /* "threads: [1": the bracket */
        e = &L->ev;
        if (e->type != YAML_SCALAR_EVENT)
            return fail(L->err, GX_EINVAL, line, NULL, path, "expected %s, got %s",
                        k->type == T_ENUM ? "one of its choices"
                        : k->type == T_STR ? "a string"
                                           : type_hint(k->type),
                        ev_what(e->type));
        long *seen = &L->set_line[k - keys];
        if (*seen)
            return fail(L->err, GX_EINVAL, key_line, NULL, path, "set twice (first on line %ld)",
                        *seen);
        int rc = set_value(L->c, k, (const char *)e->data.scalar.value, e->data.scalar.length,
                           is_null_scalar(e), line, NULL, L->err);
        if (rc) return rc;
        *seen = key_line;
        return 0;
    }
    /* a section */
    if (e->type == YAML_MAPPING_START_EVENT || (e->type == YAML_SCALAR_EVENT && is_null_scalar(e))) {
        int rc = section_once(L, path, key_line);
        if (rc) return rc;
    }
    if (e->type == YAML_MAPPING_START_EVENT) return parse_mapping(L, path);
    if (e->type == YAML_SCALAR_EVENT && is_null_scalar(e)) return 0; /* "http:" alone */
    if (e->type != YAML_SCALAR_EVENT && syntax_ahead(L)) return GX_EFORMAT;
    char shown[64] = "";
    if (e->type == YAML_SCALAR_EVENT)
        show((const char *)e->data.scalar.value, e->data.scalar.length, shown, sizeof shown);
    char got[80];
    if (e->type == YAML_SCALAR_EVENT) snprintf(got, sizeof got, "'%s'", shown);
    else snprintf(got, sizeof got, "%s", ev_what(e->type));
    return fail(L->err, GX_EINVAL, line, NULL, path, "expected a mapping of %s.* keys, got %s",
                path, got);
}

/* Keys and values up to the end of the mapping whose start was just read;
 * prefix is the path of the mapping ("" at the top). */
static int parse_mapping(loader *L, const char *prefix) {
    for (;;) {
        int rc = next(L);
        if (rc) return rc;
        yaml_event_t *e = &L->ev;
        if (e->type == YAML_MAPPING_END_EVENT) return 0;
        long key_line = ev_line(L);
        if (e->type != YAML_SCALAR_EVENT)
            return fail(L->err, GX_EINVAL, key_line, NULL, prefix[0] ? prefix : NULL,
                        "keys must be names, not %s", ev_what(e->type));
        const char *name = (const char *)e->data.scalar.value;
        size_t n = e->data.scalar.length;
        char path[128], shown[64];
        show(name, n, shown, sizeof shown);
        int plen = snprintf(path, sizeof path, "%s%s%.*s", prefix, prefix[0] ? "." : "", (int)n,
                            name);
        if (n == 0 || memchr(name, '\0', n) || plen < 0 || (size_t)plen >= sizeof path ||
            strlen(path) != (size_t)plen || !clean_utf8(name, n)) {
            return fail(L->err, GX_EINVAL, key_line, NULL, NULL, "unknown key '%s%s%s'", prefix,
                        prefix[0] ? "." : "", shown);
        }
        if (!find_key(path) && !is_section(path)) {
            char sug[96];
            const char *s = suggest(path, 0, sug, sizeof sug);
            char pshown[64];
            show(path, strlen(path), pshown, sizeof pshown);
            if (s)
                return fail(L->err, GX_EINVAL, key_line, NULL, NULL,
                            "unknown key '%s' (did you mean '%s'?)", pshown, s);
            return fail(L->err, GX_EINVAL, key_line, NULL, NULL, "unknown key '%s'", pshown);
        }
        if ((rc = next(L))) return rc;
        if ((rc = parse_value(L, path, key_line))) return rc;
    }
}

static int load_stream(loader *L) {
    int rc;
    if ((rc = next(L))) return rc; /* STREAM_START */
    if ((rc = next(L))) return rc;
    if (L->ev.type == YAML_STREAM_END_EVENT) return 0; /* empty input */
    /* DOCUMENT_START */
    if ((rc = next(L))) return rc;
    yaml_event_t *e = &L->ev;
    if (e->type == YAML_MAPPING_START_EVENT) {
        if ((rc = parse_mapping(L, ""))) return rc;
    } else if (!(e->type == YAML_SCALAR_EVENT && is_null_scalar(e))) {
        return fail(L->err, GX_EFORMAT, ev_line(L), NULL, NULL,
                    "the top level must be a mapping of keys, not %s", ev_what(e->type));
    }
    if ((rc = next(L))) return rc; /* DOCUMENT_END */
    if ((rc = next(L))) return rc;
    if (L->ev.type != YAML_STREAM_END_EVENT)
        return fail(L->err, GX_EFORMAT, ev_line(L), NULL, NULL,
                    "a second YAML document; the config is one document");
    return 0;
}

typedef struct mem_src {
    const char *buf;
    size_t len;
} mem_src;

static int load_into(gx_config *c, void *arg, gx_error *err) {
    const mem_src *m = arg;
    loader L;
    memset(&L, 0, sizeof L);
    if (!yaml_parser_initialize(&L.p)) return fail(err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    yaml_parser_set_input_string(&L.p, (const unsigned char *)m->buf, m->len);
    L.buf = m->buf;
    L.len = m->len;
    L.c = c;
    L.err = err;
    int rc = load_stream(&L);
    if (L.have_ev) yaml_event_delete(&L.ev);
    yaml_parser_delete(&L.p);
    return rc;
}

int gx_config_load_mem(gx_config *c, const char *buf, size_t len, gx_error *err) {
    gx_error_clear(err);
    if (len > MAX_FILE_BYTES)
        return fail(err, GX_ELIMIT, 0, NULL, NULL, "config is %zu bytes; the limit is %u", len,
                    MAX_FILE_BYTES);
    mem_src m = {buf ? buf : "", buf ? len : 0};
    return on_copy(c, err, load_into, &m);
}

int gx_config_load_file(gx_config *c, const char *path, gx_error *err) {
    gx_error_clear(err);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, GX_EIO, 0, NULL, NULL, "cannot open %s: %s", path, strerror(errno));
    size_t cap = MAX_FILE_BYTES + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return fail(err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    }
    size_t got;
    errno = 0;
    while (len < cap && (got = fread(buf + len, 1, cap - len, f)) > 0) len += got;
    int rerr = ferror(f), en = errno;
    fclose(f);
    int rc;
    if (rerr)
        rc = fail(err, GX_EIO, 0, NULL, NULL, "cannot read %s: %s", path, strerror(en ? en : EIO));
    else
        rc = gx_config_load_mem(c, buf, len, err);
    free(buf);
    return rc;
}

/* ==== environment ========================================================== */

typedef struct env_args {
    char *const *envp;
    gx_config_warn_fn warn;
    void *ctx;
} env_args;

static int env_into(gx_config *c, void *arg, gx_error *err) {
    const env_args *a = arg;
    const char *admin_key = NULL; /* GEXEC_ADMIN_KEY's value */
    int own_var = 0;              /* GEXEC_AUTH_ADMIN_KEY given */
    for (char *const *v = a->envp; *v; v++) {
        const char *var = *v, *eq = strchr(var, '=');
        if (strncmp(var, "GEXEC_", 6) || !eq) continue;
        size_t nlen = (size_t)(eq - var);
        char name[96];
        if (nlen >= sizeof name) { /* longer than any key's name: its start, never its value */
            snprintf(name, sizeof name, "%.60s...", var);
            if (a->warn) a->warn(a->ctx, name, "GEXEC_ variable with an overlong name; ignored");
            continue;
        }
        memcpy(name, var, nlen);
        name[nlen] = '\0';
        if (!strcmp(name, ADMIN_KEY_VAR)) admin_key = eq + 1;
        int reserved = 0;
        for (int i = 0; env_reserved[i]; i++) reserved |= !strcmp(name, env_reserved[i]);
        if (reserved) continue;
        const key *k = NULL;
        for (size_t i = 0; i < NKEYS && !k; i++) {
            char en[96];
            env_name(keys[i].name, en, sizeof en);
            if (!strcmp(en, name)) k = &keys[i];
        }
        if (!k) {
            if (a->warn) {
                char msg[256], sug[96];
                const char *s = suggest(name, 1, sug, sizeof sug);
                if (s)
                    snprintf(msg, sizeof msg, "names no configuration key (did you mean %s?)", s);
                else
                    snprintf(msg, sizeof msg, "names no configuration key; ignored");
                a->warn(a->ctx, name, msg); /* never var: NAME=value, a secret maybe */
            }
            continue;
        }
        const char *val = eq + 1;
        own_var |= !strcmp(k->name, "auth.admin_key") && *val; /* empty is unset, as for GEXEC_ADMIN_KEY */
        int rc = set_value(c, k, val, strlen(val), 0, 0, name, err);
        if (rc) return rc;
    }
    /* GEXEC_ADMIN_KEY is auth.admin_key unless GEXEC_AUTH_ADMIN_KEY is
     * given: an environment variable beats the file, this one too (the
     * file's key won). The start reads the key from here only, so the key
     * is checked here and the dump shows it is set */
    if (!admin_key || !*admin_key || own_var) return 0;
    if (c->auth.admin_key && strcmp(c->auth.admin_key, admin_key) && a->warn)
        a->warn(a->ctx, ADMIN_KEY_VAR,
                "GEXEC_ADMIN_KEY differs from the file's auth.admin_key: GEXEC_ADMIN_KEY is the admin key, and the "
                "file's stops working (a changed bootstrap key revokes the previous one)");
    return set_value(c, find_key("auth.admin_key"), admin_key, strlen(admin_key), 0, 0, ADMIN_KEY_VAR, err);
}

int gx_config_apply_env(gx_config *c, char *const *envp, gx_config_warn_fn warn, void *ctx,
                        gx_error *err) {
    gx_error_clear(err);
    env_args a = {envp ? envp : environ, warn, ctx};
    if (!a.envp) return 0;
    return on_copy(c, err, env_into, &a);
}

int gx_config_set(gx_config *c, const char *keyname, const char *value, gx_error *err) {
    gx_error_clear(err);
    const key *k = keyname ? find_key(keyname) : NULL;
    if (!k) {
        char sug[96];
        const char *s = keyname ? suggest(keyname, 0, sug, sizeof sug) : NULL;
        return fail(err, GX_ENOTFOUND, 0, NULL, NULL, "unknown key '%s'%s%s%s",
                    keyname ? keyname : "(null)", s ? " (did you mean '" : "", s ? s : "",
                    s ? "'?)" : "");
    }
    return set_value(c, k, value ? value : "", value ? strlen(value) : 0, value == NULL, 0, NULL,
                     err);
}

/* ==== finalize ============================================================= */

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t m = strlen(name);
    char *p = malloc(n + 1 + m + 1);
    if (!p) return NULL;
    memcpy(p, dir, n);
    p[n] = '/';
    memcpy(p + n + 1, name, m + 1);
    if (n == 1 && dir[0] == '/') memmove(p + 1, p + 2, m + 1); /* "/" + name */
    return p;
}

/* keyname's error, at the line or variable that set other. */
static int fail_beside(const gx_config *c, gx_error *err, const char *other, const char *keyname, const char *msg) {
    const struct gx__cfg_origin *o = c->origin_ ? &c->origin_[find_key(other) - keys] : NULL;
    return fail(err, GX_EINVAL, o ? o->line : 0, o && o->line <= 0 && o->var[0] ? o->var : NULL, keyname, "%s", msg);
}

static int finalize_into(gx_config *c, void *arg, gx_error *err) {
    (void)arg;
    if (!c->data_dir || !c->listen || !c->default_tenant)
        return fail(err, GX_EINVAL, 0, NULL, NULL, "config was not initialised with defaults");
    if (!c->store.path && !(c->store.path = join(c->data_dir, "gexec.db")))
        return fail(err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    if (!c->blobs.dir && !(c->blobs.dir = join(c->data_dir, "blobs")))
        return fail(err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    if (!c->auth.admin_key_file && !(c->auth.admin_key_file = join(c->data_dir, "admin.key")))
        return fail(err, GX_ENOMEM, 0, NULL, NULL, "out of memory");
    /* a key missing beside another: the message points where the other was set */
    if (c->tls.cert && !c->tls.key) return fail_beside(c, err, "tls.cert", "tls.key", "must be set when tls.cert is");
    if (c->tls.key && !c->tls.cert) return fail_beside(c, err, "tls.key", "tls.cert", "must be set when tls.key is");
    if (c->retry.backoff_base_ms > c->retry.backoff_cap_ms) {
        /* blamed where it was set: the cap when only it was (the base is
         * its default then) */
        char msg[160], where[8];
        int cap_only = gx_config_origin(c, "retry.backoff_cap", where, sizeof where) &&
                       !gx_config_origin(c, "retry.backoff_base", where, sizeof where);
        if (cap_only) {
            snprintf(msg, sizeof msg, "%lld ms is below retry.backoff_base (%lld ms): the cap bounds every back-off",
                     (long long)c->retry.backoff_cap_ms, (long long)c->retry.backoff_base_ms);
            return fail_beside(c, err, "retry.backoff_cap", "retry.backoff_cap", msg);
        }
        snprintf(msg, sizeof msg, "%lld ms is above retry.backoff_cap (%lld ms): the cap bounds every back-off",
                 (long long)c->retry.backoff_base_ms, (long long)c->retry.backoff_cap_ms);
        return fail_beside(c, err, "retry.backoff_base", "retry.backoff_base", msg);
    }
    if (c->store.backend == GX_CFG_STORE_POSTGRES && !c->store.dsn)
        return fail_beside(c, err, "store.backend", "store.dsn", "required when store.backend is postgres");
    return 0;
}

int gx_config_finalize(gx_config *c, gx_error *err) {
    gx_error_clear(err);
    return on_copy(c, err, finalize_into, NULL);
}

int gx_config_load(gx_config *c, const char *path, char *const *envp, gx_config_warn_fn warn,
                   void *ctx, gx_error *err) {
    gx_error_clear(err);
    int rc = gx_config_defaults(c);
    if (rc) return fail(err, rc, 0, NULL, NULL, "out of memory");
    if (path && (rc = gx_config_load_file(c, path, err))) return rc;
    if ((rc = gx_config_apply_env(c, envp, warn, ctx, err))) return rc;
    return gx_config_finalize(c, err);
}

/* ==== output =============================================================== */

/* YAML text of key k's value: strings double-quoted (they are clean UTF-8
 * without control characters, so only \ and " need escaping). */
static void yaml_value(const gx_config *c, const key *k, int redact, FILE *out) {
    if (k->type != T_STR) {
        char buf[64];
        fmt_value(c, k, buf, sizeof buf);
        fputs(buf, out);
        return;
    }
    const char *s = *(char *const *)cfield(c, k);
    if (!s) {
        fputs("~", out);
        return;
    }
    if (redact && (k->flags & K_SECRET)) s = "(redacted)";
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* Section of a key ("http" for "http.max_body", "" for "listen"). */
static void section_of(const key *k, char *buf, size_t cap) {
    const char *dot = strchr(k->name, '.');
    snprintf(buf, cap, "%.*s", dot ? (int)(dot - k->name) : 0, k->name);
}

/* Walk the table printing section headers; calls each(k, indent). */
static void walk(FILE *out, int blank_lines,
                 void (*each)(const key *k, const char *ind, const void *arg, FILE *out),
                 const void *arg) {
    char cur[32] = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const key *k = &keys[i];
        char sec[32];
        section_of(k, sec, sizeof sec);
        if (strcmp(sec, cur)) {
            if (sec[0]) fprintf(out, "%s%s:\n", blank_lines ? "\n" : "", sec);
            snprintf(cur, sizeof cur, "%s", sec);
        } else if (blank_lines && i) {
            fputc('\n', out);
        }
        each(k, sec[0] ? "  " : "", arg, out);
    }
}

static void dump_one(const key *k, const char *ind, const void *arg, FILE *out) {
    fprintf(out, "%s%s: ", ind, leaf(k->name));
    yaml_value(arg, k, 1, out);
    fputc('\n', out);
}

int gx_config_dump(const gx_config *c, FILE *out) {
    walk(out, 0, dump_one, c);
    return fflush(out) || ferror(out) ? GX_EIO : 0;
}

/* "# text" wrapped at 79 columns. */
static void comment(FILE *out, const char *ind, const char *text) {
    size_t width = 79 - strlen(ind) - 2, col = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ') p++;
        size_t w = strcspn(p, " ");
        if (!w) break;
        if (col && col + 1 + w > width) {
            fputc('\n', out);
            col = 0;
        }
        if (!col) fprintf(out, "%s#", ind);
        fprintf(out, " %.*s", (int)w, p);
        col += 1 + w;
        p += w;
    }
    if (col) fputc('\n', out);
}

static void sample_one(const key *k, const char *ind, const void *arg, FILE *out) {
    comment(out, ind, k->doc);
    char env[96], what[256], lo[32], hi[32];
    env_name(k->name, env, sizeof env);
    switch (k->type) {
    case T_ENUM: {
        snprintf(what, sizeof what, "One of:");
        for (int i = 0; k->choices[i]; i++) {
            size_t used = strlen(what);
            snprintf(what + used, sizeof what - used, "%s %s", i ? "," : "", k->choices[i]);
        }
        break;
    }
    case T_STR:
        snprintf(what, sizeof what, "String%s.", k->flags & K_OPTIONAL ? ", optional" : "");
        break;
    case T_BOOL: snprintf(what, sizeof what, "Boolean."); break;
    case T_DOUBLE:
        fmt_double(k->dmin, lo, sizeof lo);
        fmt_double(k->dmax, hi, sizeof hi);
        snprintf(what, sizeof what, "Number, %s to %s.", lo, hi);
        break;
    default:
        fmt_bound(k, k->min, lo, sizeof lo);
        fmt_bound(k, k->max, hi, sizeof hi);
        snprintf(what, sizeof what, "%s, %s to %s.",
                 k->type == T_INT ? "Integer" : k->type == T_SIZE ? "Size" : "Duration", lo, hi);
        break;
    }
    size_t used = strlen(what);
    snprintf(what + used, sizeof what - used, "%s Env: %s.", k->type == T_ENUM ? "." : "", env);
    comment(out, ind, what);
    fprintf(out, "%s%s: ", ind, leaf(k->name));
    yaml_value(arg, k, 0, out);
    fputc('\n', out);
}

static const char sample_head[] =
    "# gexec.yaml.sample - every setting of gexecd, with its default.\n"
    "#\n"
    "# Generated by gx_config_write_sample() from the key table in\n"
    "# src/config/config.c; do not edit by hand (test_config checks that this\n"
    "# file matches the table). Copy it, keep the keys you change, delete the\n"
    "# rest, and check it with gexecd --check-config.\n"
    "#\n"
    "# Every key can also be set by an environment variable, which beats the\n"
    "# file: GEXEC_ + the key upper-cased with '.' as '_' (http.max_body is\n"
    "# GEXEC_HTTP_MAX_BODY). Nested keys may also be written dotted at the top\n"
    "# level (\"http.max_body: 1MiB\").\n"
    "#\n"
    "# Sizes: bytes, or KB/MB/GB/TB (x1000) or KiB/MiB/GiB/TiB (x1024).\n"
    "# Durations: ms, s, m, h or d; a bare number is seconds.\n"
    "# Booleans: true/false, yes/no, on/off, 1/0. ~ leaves an optional key unset.\n"
    "\n";

int gx_config_write_sample(FILE *out) {
    gx_config d;
    if (gx_config_defaults(&d)) {
        gx_config_free(&d);
        return GX_ENOMEM;
    }
    fputs(sample_head, out);
    walk(out, 1, sample_one, &d);
    gx_config_free(&d);
    return fflush(out) || ferror(out) ? GX_EIO : 0;
}

int gx_config_get(const gx_config *c, const char *keyname, char *buf, size_t cap) {
    const key *k = keyname ? find_key(keyname) : NULL;
    if (!k) return GX_ENOTFOUND;
    if (!cap) return GX_EOVERFLOW;
    char tmp[64];
    const char *s = tmp;
    if (k->type == T_STR) {
        s = *(char *const *)cfield(c, k);
        if (!s) s = "";
    } else {
        fmt_value(c, k, tmp, sizeof tmp);
    }
    int n = snprintf(buf, cap, "%s", s);
    return n < 0 || (size_t)n >= cap ? GX_EOVERFLOW : 0;
}

void gx_config_engine_opts(const gx_config *c, gx_engine_opts *o) {
    o->cuda_disable = !c->cuda.enabled;
    o->cuda_plugin = c->cuda.plugin;
    o->gpu_max_batch = (int)c->batching.max_batch;
    o->gpu_batch_delay_us = (int)c->batching.max_delay_us;
    o->cpu_workers = (int)c->engine.cpu_workers;
    o->cpu_mem_bytes = c->engine.cpu_mem;
    o->placement = placement_choices[c->engine.placement];
    o->fair_halflife_s = (double)c->engine.fair_halflife_ms / 1000.0;
    o->max_batch = (int)c->engine.max_batch;
    o->batch_quantum_us = c->engine.batch_quantum_us;
    o->max_jobs = (uint64_t)c->engine.max_jobs;
    o->hang_grace_ms = c->engine.hang_grace_ms;
    o->poison_faults = (int)c->engine.poison_faults;
    o->recovery_attempts = (int)c->engine.recovery_attempts;
    o->retry_base_ms = (int)c->retry.backoff_base_ms;
    o->retry_cap_ms = (int)c->retry.backoff_cap_ms;
    o->breaker_threshold = c->breaker.threshold ? (int)c->breaker.threshold : -1;
    o->breaker_cooldown_ms = (int)c->breaker.cooldown_ms;
}

size_t gx_config_key_count(void) { return NKEYS; }

int gx_config_key_info_get(size_t i, gx_config_key_info *out) {
    if (i >= NKEYS) return GX_ENOTFOUND;
    const key *k = &keys[i];
    out->key = k->name;
    out->type = type_names[k->type];
    out->def = k->def;
    out->doc = k->doc;
    env_name(k->name, out->env, sizeof out->env);
    return 0;
}
