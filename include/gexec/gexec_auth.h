/*
 * gexec_auth.h - who may call the API: API keys, roles and the permission
 * table, per-key rate limits, and the hash-chained audit log.
 *
 * The module owns four things, one source file each under src/auth/:
 *
 *  - Keys (keys.c). A key store in its own SQLite file (WAL). A key is
 *    "gx_" + a 16-hex-digit key id + "_" + 43 base64url characters of 32
 *    random bytes (RAND_bytes). Only SHA-256 of the whole key is stored;
 *    the secret is returned once, by gx_auth_key_create. Each key belongs
 *    to one tenant, has one role, an optional expiry and may be revoked.
 *    Every key (without its secret) is held in memory, so gx_auth_key_verify
 *    reads no disk and costs about a microsecond; an unknown key id is
 *    refused without touching the database. Keys are never deleted
 *    (revoking one marks it), so listings come a page at a time from the
 *    database (gx_auth_key_page).
 *  - Roles (roles.c). One declarative table of (method, route pattern) ->
 *    the least role that may call it on its own tenant and the least role
 *    that reaches every tenant. docs/security.md's route x role table is
 *    generated from it (gx_auth_table_markdown) and a test keeps the two
 *    equal. Routes that are not in the table are refused to everyone.
 *  - Rate limits (ratelimit.c). A token bucket per key id, striped locks.
 *  - Audit (audit.c). An append-only file of JSON lines, each carrying the
 *    hash of the one before; gx_audit_verify finds the first record that was
 *    changed, removed or reordered, without a running daemon.
 *
 * Threads. Every function may be called from any number of threads at once,
 * except the *_close / *_destroy functions, which must be the last call on
 * their handle.
 *
 * Memory. Nothing keeps a pointer the caller passed once the call returns.
 * What the module allocates for the caller (gx_auth_key_list,
 * gx_auth_key_page) is one block released with gx_auth_free().
 *
 * Errors. 0 or a negative GX_E* code, detail in the optional gx_error:
 * GX_EINVAL (err->field names the argument), GX_ENOTFOUND, GX_EAUTH (a key
 * was refused; the gx_auth_principal says why), GX_EPERM (a role may not
 * call a route), GX_ELIMIT (rate limited), GX_ESTORE (the key database),
 * GX_EIO (the audit file), GX_EFORMAT (an audit log that does not verify).
 */
#ifndef GEXEC_AUTH_H
#define GEXEC_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- roles ------------------------------------------------------------------ */

/* Ordered: each role can do everything the one below it can. */
typedef enum gx_auth_role {
    GX_ROLE_NONE = 0,      /* no key (anonymous); only public routes */
    GX_ROLE_VIEWER = 1,    /* read its own tenant */
    GX_ROLE_SUBMITTER = 2, /* its own tenant's jobs and blobs */
    GX_ROLE_OPERATOR = 3,  /* devices, drain, re-queue, read every tenant's jobs, cancel */
    GX_ROLE_ADMIN = 4      /* everything: keys, tenants, quotas, audit */
} gx_auth_role;

/* "none", "viewer", "submitter", "operator", "admin"; "?" for anything
 * else. Static string (fits gx_req_ctx.role). */
const char *gx_auth_role_name(int role);

/* The role named s (exactly, lowercase), or GX_EINVAL. GX_ROLE_NONE is not
 * a role a key can have and "none" is refused. */
int gx_auth_role_parse(const char *s);

/* ---- keys ------------------------------------------------------------------- */

#define GX_AUTH_KEY_ID_LEN 17 /* 16 lowercase hex digits + NUL */
#define GX_AUTH_SECRET_LEN 64 /* "gx_" + id + "_" + 43 base64url + NUL */
#define GX_AUTH_LABEL_MAX 127 /* bytes of a key's label */

/* Why a key was refused (or GX_AUTH_OK). For logs and the audit; the HTTP
 * answer should not tell them apart ("invalid or expired key"). */
typedef enum gx_auth_reason {
    GX_AUTH_OK = 0,
    GX_AUTH_MISSING = 1,   /* no Authorization header or an empty key */
    GX_AUTH_MALFORMED = 2, /* not "Bearer gx_<16 hex>_<43 base64url>" */
    GX_AUTH_UNKNOWN = 3,   /* well formed, but no such key id, or the secret
                              does not match */
    GX_AUTH_REVOKED = 4,
    GX_AUTH_EXPIRED = 5
} gx_auth_reason;

/* "ok", "missing", "malformed", "unknown", "revoked", "expired"; "?".
 * Static string. */
const char *gx_auth_reason_name(int reason);

/* Who a verified key speaks for. */
typedef struct gx_auth_principal {
    char key_id[GX_AUTH_KEY_ID_LEN]; /* filled whenever the token was well
                                        formed, also when it was refused */
    char tenant[64];                 /* "" unless verified */
    int role;                        /* gx_auth_role; GX_ROLE_NONE unless verified */
    int reason;                      /* gx_auth_reason, always set */
    int64_t expires_ns;              /* the verified key's expiry (CLOCK_REALTIME
                                        ns); 0 = never */
} gx_auth_principal;

/* One key as listed: never its secret nor its hash. */
typedef struct gx_auth_key_info {
    char id[GX_AUTH_KEY_ID_LEN];
    char tenant[64];
    int role;                           /* gx_auth_role */
    char label[GX_AUTH_LABEL_MAX + 1];
    int64_t created_ns;                 /* CLOCK_REALTIME ns */
    int64_t expires_ns;                 /* 0 = never */
    int64_t revoked_ns;                 /* 0 = not revoked */
    int64_t last_used_ns;               /* last successful verify; 0 = never */
} gx_auth_key_info;

typedef struct gx_auth_keys gx_auth_keys;

/* Open (create if missing, migrate) the key database at path and load every
 * key into memory. GX_EUNSUPPORTED for a schema newer than this build,
 * GX_ESTORE for a database failure. *out is released with
 * gx_auth_keys_close. The daemon is meant to be the only writer of the
 * file; a change made by another process is seen after
 * gx_auth_keys_reload. */
int gx_auth_keys_open(const char *path, gx_auth_keys **out, gx_error *err);

/* Write the last-used times still in memory, close the database and free
 * the handle. NULL is fine. */
void gx_auth_keys_close(gx_auth_keys *k);

/* Reload every key from the database (after another process changed it). */
int gx_auth_keys_reload(gx_auth_keys *k, gx_error *err);

/* Make a new key without storing it: secret (GX_AUTH_SECRET_LEN bytes) and,
 * when id is not NULL, its key id. For tools that prepare a GEXEC_ADMIN_KEY.
 * GX_EIO if the system's random generator fails. */
int gx_auth_key_generate(char secret[GX_AUTH_SECRET_LEN], char id[GX_AUTH_KEY_ID_LEN],
                         gx_error *err);

/* What gx_auth_key_create checks of a new key before it touches the
 * database: 0, or GX_EINVAL naming the field. */
int gx_auth_key_check(const char *tenant, int role, int64_t expires_ns, const char *label, gx_error *err);

/* Create a key for tenant ([A-Za-z0-9_.-]{1,63}) with role (viewer..admin),
 * expiring at expires_ns (CLOCK_REALTIME ns; 0 = never; must be in the
 * future), labelled label (NULL = ""; at most GX_AUTH_LABEL_MAX bytes, no
 * control characters). The secret is written to secret (shown to the user
 * once; it is not kept anywhere) and the key id to id (may be NULL).
 * Durable on return. */
int gx_auth_key_create(gx_auth_keys *k, const char *tenant, int role, int64_t expires_ns,
                       const char *label, char secret[GX_AUTH_SECRET_LEN],
                       char id[GX_AUTH_KEY_ID_LEN], gx_error *err);

/* Revoke key id at now_ns (0 = now). A revoked key is refused from the
 * moment this returns. Revoking a revoked key changes nothing and returns 0.
 * GX_ENOTFOUND for an unknown id; GX_ESTATE for the last admin key that
 * works at now_ns (not revoked, not expired): make another one first. */
int gx_auth_key_revoke(gx_auth_keys *k, const char *id, int64_t now_ns, gx_error *err);

/* Every key, or only tenant's when tenant is not NULL, in creation order,
 * from memory (all of them at once: a long-lived installation has
 * thousands; gx_auth_key_page reads a page). *out (gx_auth_free; NULL when
 * *n is 0). */
int gx_auth_key_list(gx_auth_keys *k, const char *tenant, gx_auth_key_info **out, size_t *n,
                     gx_error *err);

#define GX_AUTH_PAGE_MAX 1000 /* most keys gx_auth_key_page returns at once */

/* Which keys gx_auth_key_page returns. Zero-filled (but for limit): every
 * key from the first. */
typedef struct gx_auth_key_query {
    const char *tenant; /* only this tenant's keys; NULL = every tenant's */
    int revoked;        /* 0 = revoked or not; 1 = only revoked keys;
                           -1 = only keys not revoked (expired ones too) */
    uint64_t after;     /* the *next of the previous page; 0 = the start */
    size_t limit;       /* keys at most, 1..GX_AUTH_PAGE_MAX */
} gx_auth_key_query;

/* One page of the keys that match q, in creation order, read from the
 * database: the first q->limit after position q->after. *next gets the
 * position to pass as q->after for the next page, or 0 when no matching
 * key follows this page. Every key has a fixed position, later keys later
 * ones (numbered when created, not by the clock), so following *next never
 * skips nor repeats a key, whatever is created or revoked between pages;
 * a key created meanwhile comes on a later page. A page reads O(limit)
 * rows (an index serves each filter). The last-used times still in memory
 * are written first, as at close. GX_EINVAL (err->field "limit") for a
 * limit out of range. *out (gx_auth_free; NULL when *n is 0). */
int gx_auth_key_page(gx_auth_keys *k, const gx_auth_key_query *q, gx_auth_key_info **out, size_t *n,
                     uint64_t *next, gx_error *err);

/* Check a key (the token after "Bearer "; len bytes, may contain anything;
 * NULL or len 0 is "missing") at now_ns (CLOCK_REALTIME ns; 0 = now).
 * GX_OK and *out filled (reason GX_AUTH_OK), or GX_EAUTH and out->reason
 * says why. Reads memory only; the secret is compared in constant time. */
int gx_auth_key_verify(gx_auth_keys *k, const char *token, size_t len, int64_t now_ns,
                       gx_auth_principal *out);

/* 1 when the key with this id is revoked (or unknown), else 0. Reads
 * memory only. */
int gx_auth_key_revoked(gx_auth_keys *k, const char *id);

/* Parse a key without looking it up: GX_AUTH_OK and its id (id may be NULL),
 * or GX_AUTH_MISSING / GX_AUTH_MALFORMED. */
int gx_auth_token_parse(const char *token, size_t len, char id[GX_AUTH_KEY_ID_LEN]);

/* The token of an Authorization header value: "Bearer <token>" (scheme
 * case-insensitive, spaces around the token ignored). GX_AUTH_OK and
 * token and len pointing into header, GX_AUTH_MISSING (header NULL or blank)
 * or GX_AUTH_MALFORMED (another scheme, or nothing after it). */
int gx_auth_bearer(const char *header, const char **token, size_t *len);

/* Make sure an admin key exists, at start-up.
 *  - value (GEXEC_ADMIN_KEY or the config; must be a well-formed gx_ key,
 *    e.g. from gx_auth_key_generate) given: it is stored (its hash) as an
 *    admin key of tenant labelled "bootstrap" unless it is already there
 *    (idempotent; *created = 1 only the first time). Other keys labelled
 *    "bootstrap" are revoked: changing the variable rotates the key. A
 *    bootstrap key that was revoked stays revoked (*created = 0).
 *    GX_EINVAL for a malformed value, GX_EEXIST if its key id is already
 *    used by a different key.
 *  - value NULL or "": if no usable (unrevoked, unexpired) admin key
 *    exists, one is created for tenant, labelled "bootstrap", its secret
 *    written to secret and *created = 1; the caller shows it once (console,
 *    or gx_auth_write_secret_file). Otherwise *created = 0.
 * secret (GX_AUTH_SECRET_LEN bytes) is written only when a key is made. */
int gx_auth_ensure_admin(gx_auth_keys *k, const char *tenant, const char *value,
                         char secret[GX_AUTH_SECRET_LEN], int *created, gx_error *err);

/* Is there an admin key that works (not revoked, not expired) now? */
int gx_auth_admin_usable(gx_auth_keys *k);

/* Write secret + "\n" to a file at path that only its owner can read
 * (0600 whatever the umask): written and fsync'd as path.tmp (created
 * O_EXCL | O_NOFOLLOW), then renamed over path, so a reader sees the old
 * file or the whole new one. Whatever was at path (a stale key file, or a
 * link: the link is replaced, its target never written) is replaced. */
int gx_auth_write_secret_file(const char *path, const char *secret, gx_error *err);

/* Release memory returned by this module. NULL is fine. */
void gx_auth_free(void *p);

/* ---- permissions -------------------------------------------------------------- */

/* gx_auth_rule.any of a route that acts on the caller's own tenant only. */
#define GX_AUTH_OWN_ONLY 5

/* One row of the permission table. */
typedef struct gx_auth_rule {
    const char *method;  /* "GET", "POST", "DELETE" */
    const char *pattern; /* as in the route table: "/v1/jobs/{id}" */
    int own;             /* least role to call it (on its own tenant);
                            GX_ROLE_NONE = public, no key needed */
    int any;             /* least role that reaches every tenant through it;
                            GX_ROLE_NONE = the route is not per tenant;
                            GX_AUTH_OWN_ONLY = per tenant, and no role
                            reaches another tenant through it */
    int write;           /* 1 if reaching another tenant changes its state */
    int config_public;   /* 1 if configuration may make it public (/metrics) */
    const char *note;    /* for the docs */
} gx_auth_rule;

/* The table and its length. Static. */
const gx_auth_rule *gx_auth_rules(size_t *n);

/* The rule of (method, pattern), or NULL when there is none. */
const gx_auth_rule *gx_auth_rule_find(const char *method, const char *pattern);

/* May role call (method, pattern)? 0, or GX_EPERM with a message naming the
 * role and what the route needs. cross_read / cross_write (may be NULL) get
 * 1 when the role reaches every tenant's objects through this route (read,
 * or read and change), 0 when it reaches only its own tenant's. A route not
 * in the table is refused (GX_EPERM) to every role. */
int gx_auth_allowed(int role, const char *method, const char *pattern, int *cross_read,
                    int *cross_write, gx_error *err);

/* 1 if a request for (method, pattern) must carry a key: every route but
 * the public ones, and /metrics unless metrics_public. pattern NULL (no
 * route matched) needs a key, so unknown paths answer 401 before 404. */
int gx_auth_needs_key(const char *method, const char *pattern, int metrics_public);

/* The route x role table as Markdown into buf (cap bytes, NUL-terminated,
 * truncated if short). Returns the length the whole table needs (without
 * the NUL), as snprintf does. */
size_t gx_auth_table_markdown(char *buf, size_t cap);

/* ---- rate limits ---------------------------------------------------------------- */

typedef struct gx_auth_limiter gx_auth_limiter;

typedef struct gx_auth_limiter_config {
    double rate;        /* tokens per second added to each bucket, > 0 */
    double burst;       /* bucket size (requests allowed at once), >= 1 */
    size_t max_keys;    /* buckets kept; when more, full buckets are
                           forgotten (they equal fresh ones); 0 = 100000 */
    /* Clock in ns (monotonic); NULL = CLOCK_MONOTONIC. For tests. */
    int64_t (*clock)(void *clock_ctx);
    void *clock_ctx;
} gx_auth_limiter_config;

/* GX_EINVAL for a bad rate or burst. *out released with
 * gx_auth_limiter_destroy. */
int gx_auth_limiter_create(const gx_auth_limiter_config *cfg, gx_auth_limiter **out,
                           gx_error *err);
void gx_auth_limiter_destroy(gx_auth_limiter *l);

/* Take one token from key's bucket (a new key starts full). 0 if allowed;
 * GX_ELIMIT if not, and *retry_after_s (may be NULL) gets the seconds until
 * the next token (> 0; round up for Retry-After). key is any string (a key
 * id; "ip:<addr>" for requests without one). GX_ENOMEM if a new bucket
 * could not be made. */
int gx_auth_limiter_take(gx_auth_limiter *l, const char *key, double *retry_after_s);

/* ---- audit log ------------------------------------------------------------------ */

typedef struct gx_audit gx_audit;

typedef struct gx_audit_config {
    const char *path; /* the log file, created (0600) if missing */
    int sync_ms;      /* 0: every append returns after its record is on disk
                         (concurrent appends share one fdatasync);
                         > 0: records are synced by a background thread at
                         most this many ms after they are written;
                         < 0: never synced by us (tests, benchmarks) */
    uint64_t max_bytes; /* when an append would take the file past this
                           size, the file is renamed <path>.<seq of its
                           first record, 20 digits> and a new one begun
                           (an append's records stay in one file); 0: never */
    int keep;           /* rotated files kept: the oldest beyond it are
                           deleted after a rotation; 0: all */
} gx_audit_config;

/* One event. Strings may be NULL (written as ""); every string is cut to
 * 1024 bytes, detail to 4096; invalid UTF-8 becomes U+FFFD. */
typedef struct gx_audit_record {
    int64_t time_ns;    /* CLOCK_REALTIME ns; 0 = now */
    const char *key_id; /* actor */
    const char *tenant;
    const char *role;
    const char *remote;  /* client address */
    const char *action;  /* "job.submit", "job.cancel", "key.create",
                            "auth.refused", "request.denied", ... */
    const char *target;  /* what it acted on: "job/42", "key/<id>" */
    const char *outcome; /* "ok", "denied", "refused", "failed" */
    const char *detail;  /* free text: reason, parameters */
} gx_audit_record;

/* Open (create) the log and continue its chain: the last record is read
 * and its own hash checked (GX_EFORMAT if it does not verify: run
 * gx_audit_verify). When the file is empty or missing and rotated files
 * are beside it (a crash right after a rotation), the chain continues
 * from the newest of them. A torn final line (a crash during a write) is
 * cut off and an "audit.recover" record says how many bytes were dropped.
 * The first record of a file begun by a rotation is an "audit.rotate"
 * record naming the file before. *out is released with gx_audit_close. */
int gx_audit_open(const gx_audit_config *cfg, gx_audit **out, gx_error *err);

/* Sync what is written, stop the sync thread, close. NULL is fine. */
void gx_audit_close(gx_audit *a);

/* Append one record (serialized with every other append). *seq (may be
 * NULL) gets its sequence number. GX_EIO if the write or the sync failed;
 * the log then refuses further appends (GX_EIO) so the chain never holds a
 * gap. */
int gx_audit_append(gx_audit *a, const gx_audit_record *rec, uint64_t *seq, gx_error *err);
/* n records at once, chained in order, in one write (and with sync_ms = 0
 * one sync): what the callers of a group (e.g. the submissions that
 * shared a commit) use; all of them or none are appended, in one file (a
 * rotation comes before them). *seq gets the last one's number. */
int gx_audit_append_n(gx_audit *a, const gx_audit_record *recs, size_t n, uint64_t *seq, gx_error *err);

/* The last record's seq and hash (65 bytes, hex), e.g. to note elsewhere
 * so that cutting records off the end can be noticed. seq 0 and 64 zeros
 * for an empty log. */
void gx_audit_head(gx_audit *a, uint64_t *seq, char hash[65]);

typedef struct gx_audit_stats {
    uint64_t bytes;           /* on disk: the live file and the rotated files kept */
    uint64_t files;           /* the live file and the rotated files kept */
    uint64_t rotations;       /* since open */
    uint64_t rotate_failures; /* rotations that could not be made (the file
                                 went on growing; tried again next append) */
} gx_audit_stats;

/* Sizes and counts of the log, for metrics. */
void gx_audit_stats_get(gx_audit *a, gx_audit_stats *out);

/* Called by gx_audit_read with each record: line is the record's JSON
 * without its newline (valid during the call only). Nonzero stops the
 * read. */
typedef int (*gx_audit_each_fn)(void *ctx, uint64_t seq, const char *line, size_t len);

/* The records after seq after, at most limit of them, in order, from the
 * log at path and the rotated files beside it (no gx_audit handle needed;
 * safe while a daemon appends and rotates: a record not yet whole is left
 * out). The file is chosen by the rotated files' names and the record found
 * by a binary search by seq, so a read costs the records it returns, not
 * the log's size. Records deleted with their rotated file are skipped.
 * 0, or GX_EIO when a file cannot be opened. */
int gx_audit_read(const char *path, uint64_t after, size_t limit, gx_audit_each_fn fn, void *ctx, gx_error *err);

/* What gx_audit_verify found. */
typedef enum gx_audit_problem {
    GX_AUDIT_INTACT = 0,
    GX_AUDIT_CHANGED = 1,   /* the record's hash does not match its content */
    GX_AUDIT_REMOVED = 2,   /* the record expected here is nowhere in the log */
    GX_AUDIT_REORDERED = 3, /* the record expected here is elsewhere in the log,
                               or this one appears twice */
    GX_AUDIT_BROKEN = 4,    /* intact record whose prev is not the hash of the
                               record before (a forged replacement) */
    GX_AUDIT_MALFORMED = 5, /* not a record at all */
    GX_AUDIT_TORN = 6       /* the last line is incomplete (crash while
                               writing; gx_audit_open repairs it) */
} gx_audit_problem;

typedef struct gx_audit_report {
    uint64_t records;  /* lines read (all of them when intact) */
    int problem;       /* gx_audit_problem of the first bad record */
    uint64_t line;     /* its line number (1-based), 0 when intact */
    uint64_t seq;      /* the seq that was expected on that line */
    uint64_t last_seq; /* seq of the last record when intact */
    char head[65];     /* hash of the last record when intact */
    char message[256]; /* what was found, for people */
    uint64_t first_seq; /* the seq the chain was checked from: 1, or the first
                           record of the oldest file there when older
                           rotated files were deleted; 0 for an empty log */
    unsigned files;     /* files read: the rotated ones and the live one */
    char file[4096];    /* the file holding the bad record (line counts in
                           it); "" when intact */
} gx_audit_report;

/* "intact", "changed", "removed", "reordered", "broken", "malformed",
 * "torn"; "?". Static. */
const char *gx_audit_problem_name(int problem);

/* Check the whole chain of the log at path (no daemon needed; the daemon
 * may be appending meanwhile: records written after the check began may be
 * left out). The rotated files beside it (<path>.<20 digits>) are read
 * first, oldest first, and the chain followed across each boundary: seqs
 * contiguous, each file's first prev the hash of the last record before;
 * a missing middle file is "removed". The oldest file there may begin
 * mid-chain when its first record is an "audit.rotate" (older files
 * deleted by keep or archived): rep->first_seq says where the check
 * began. 0 if intact; GX_EFORMAT and *rep names the first record that
 * was changed, removed or reordered (rep->file, rep->line); GX_EIO if a
 * file cannot be read.
 * Records cut off the end cannot be seen from the file alone: compare
 * rep->last_seq and rep->head with a head noted elsewhere
 * (gx_audit_head). */
int gx_audit_verify(const char *path, gx_audit_report *rep, gx_error *err);

#ifdef __cplusplus
}
#endif
#endif
