/*
 * keys.c - the API key store: a SQLite file (WAL) that holds SHA-256 of each
 * key, and an in-memory copy of every key that answers gx_auth_key_verify.
 *
 * Why SHA-256 and not a slow hash (scrypt, argon2): a key carries 256 random
 * bits, so there is nothing to guess and a fast hash is as strong as a slow
 * one; and verify runs on every request. The hash covers the whole key text
 * ("gx_<id>_<secret>"), binding the id to the secret.
 *
 * Why every key in memory and not a cache of recent ones: keys are few (one
 * per user or service), the table is small, and an unknown key id is then
 * refused without a database read, so random keys cannot make the server
 * read its disk. Readers take a read lock; create and revoke take the write
 * lock after their row is durable, so a revoked key is refused as soon as
 * gx_auth_key_revoke returns.
 *
 * Why listings page through the database and not through memory: keys are
 * never deleted (a revoked key stays, so that the audit log's key ids keep
 * a meaning), so a long-lived installation that rotates keys gathers
 * thousands, and GET /v1/keys must not answer all of them at once. Each key
 * gets a position (seq) when it is created, one more than the last, under
 * db_mu: the creation order without the clock (created_ns may step back),
 * so a page that starts after a position never skips nor repeats a key.
 *
 * last_used is kept in memory (an atomic per key, written at most once a
 * second per key) and written to the database by gx_auth_key_list,
 * gx_auth_key_page and at close: a crash loses only those times.
 *
 * Schema (version 2): keys(id, hash, tenant, role, label, created_ns,
 * expires_ns, revoked_ns, last_used_ns, seq) with an index for each filter
 * of a page, each ending in seq; schema_version(version).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "auth_int.h"
#include "gexec/gexec.h"
#include "clock.h"
#include "hmap.h"
#include "str.h"

#define SCHEMA_VERSION 2
#define BOOTSTRAP_LABEL "bootstrap"
#define LAST_USED_GRAIN_NS 1000000000LL /* write last_used at most 1/s */

static const char *const migrations[] = {
    /* 1: initial schema */
    "CREATE TABLE keys("
    " id TEXT PRIMARY KEY,"
    " hash BLOB NOT NULL,"
    " tenant TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " label TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " expires_ns INTEGER NOT NULL,"
    " revoked_ns INTEGER NOT NULL,"
    " last_used_ns INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX keys_tenant ON keys(tenant);",
    /* 2: every key's position in creation order (seq), numbered by
     * (created_ns, id) for the keys already there; an index for each
     * filter of a page (tenant, revoked or not, both) that reads it in seq
     * order */
    "ALTER TABLE keys ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;"
    "CREATE TEMP TABLE key_order(n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE);"
    "INSERT INTO key_order(id) SELECT id FROM keys ORDER BY created_ns, id;"
    "UPDATE keys SET seq = (SELECT n FROM key_order WHERE key_order.id = keys.id);"
    "DROP TABLE key_order;"
    "DROP INDEX keys_tenant;"
    "CREATE UNIQUE INDEX keys_seq ON keys(seq);"
    "CREATE INDEX keys_tenant ON keys(tenant, seq);"
    "CREATE INDEX keys_revoked ON keys(revoked_ns != 0, seq);"
    "CREATE INDEX keys_tenant_revoked ON keys(tenant, revoked_ns != 0, seq);",
};

/* One key in memory. Entries are never freed or moved before close, so a
 * reader may keep a pointer while it holds the read lock. */
typedef struct entry {
    char id[GX_AUTH_KEY_ID_LEN];
    char tenant[64];
    int role;
    char label[GX_AUTH_LABEL_MAX + 1];
    unsigned char hash[32];
    int64_t created_ns;
    int64_t expires_ns;
    int64_t revoked_ns;          /* changed under the write lock */
    _Atomic int64_t last_used;   /* newest successful verify */
    int64_t last_used_saved;     /* what the database has (db_mu) */
} entry;

struct gx_auth_keys {
    sqlite3 *db;
    pthread_mutex_t db_mu;    /* one database user at a time; taken before lock */
    pthread_rwlock_t lock;    /* the entries and the map */
    entry **e;                /* in creation order */
    size_t n, cap;
    gx__hmap by_id;           /* key id -> index in e */
};

/* ---- small helpers ---------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* base64url without padding of 32 bytes -> 43 characters + NUL. */
static void b64url_32(const unsigned char in[32], char out[GX__KEY_SECRET_B64 + 1]) {
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (int i = 0; i < 32; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out[o++] = b64url[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

static int is_hex_lower(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static int label_valid(const char *s) {
    size_t n = strlen(s);
    if (n > GX_AUTH_LABEL_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

static int64_t now_or(int64_t t) { return t ? t : gx__wall_ns(); }

static int db_fail(gx_auth_keys *k, gx_error *err, const char *what) {
    return gx_error_set(err, GX_ESTORE, NULL, "key database: %s: %s", what, sqlite3_errmsg(k->db));
}

static int exec_sql(gx_auth_keys *k, const char *sql, gx_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(k->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = gx_error_set(err, GX_ESTORE, NULL, "key database: %s", msg ? msg : "failed");
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

/* ---- parsing ------------------------------------------------------------------ */

int gx_auth_token_parse(const char *t, size_t len, char id[GX_AUTH_KEY_ID_LEN]) {
    if (!t || len == 0) return GX_AUTH_MISSING;
    if (len != GX__KEY_LEN || memcmp(t, GX__KEY_PREFIX, GX__KEY_PREFIX_LEN) != 0)
        return GX_AUTH_MALFORMED;
    const unsigned char *p = (const unsigned char *)t + GX__KEY_PREFIX_LEN;
    for (int i = 0; i < GX__KEY_ID_HEX; i++)
        if (!is_hex_lower(p[i])) return GX_AUTH_MALFORMED;
    if (p[GX__KEY_ID_HEX] != '_') return GX_AUTH_MALFORMED;
    const unsigned char *s = p + GX__KEY_ID_HEX + 1;
    for (int i = 0; i < GX__KEY_SECRET_B64; i++)
        if (b64url_val(s[i]) < 0) return GX_AUTH_MALFORMED;
    /* 43 characters carry 258 bits: the last 2 must be zero (canonical) */
    if (b64url_val(s[GX__KEY_SECRET_B64 - 1]) & 3) return GX_AUTH_MALFORMED;
    if (id) {
        memcpy(id, p, GX__KEY_ID_HEX);
        id[GX__KEY_ID_HEX] = '\0';
    }
    return GX_AUTH_OK;
}

int gx_auth_bearer(const char *h, const char **token, size_t *len) {
    *token = NULL;
    *len = 0;
    if (!h) return GX_AUTH_MISSING;
    while (*h == ' ' || *h == '\t') h++;
    if (!*h) return GX_AUTH_MISSING;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return GX_AUTH_MALFORMED;
    size_t n;
    h = gx_str_trim_ows(h + 6, &n);
    if (n == 0) return GX_AUTH_MALFORMED;
    *token = h;
    *len = n;
    return GX_AUTH_OK;
}

const char *gx_auth_reason_name(int r) {
    static const char *const names[] = {"ok", "missing", "malformed", "unknown", "revoked", "expired"};
    return r >= 0 && r < (int)(sizeof names / sizeof names[0]) ? names[r] : "?";
}

/* ---- memory ------------------------------------------------------------------- */

static void entries_free(gx_auth_keys *k) {
    for (size_t i = 0; i < k->n; i++) free(k->e[i]);
    free(k->e);
    k->e = NULL;
    k->n = k->cap = 0;
    gx__hmap_free(&k->by_id);
    memset(&k->by_id, 0, sizeof k->by_id);
}

/* Add e (caller holds the write lock or is alone). Takes e on success. */
static int entries_add(gx_auth_keys *k, entry *e) {
    if (k->n == k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 16;
        entry **ne = realloc(k->e, nc * sizeof *ne);
        if (!ne) return GX_ENOMEM;
        k->e = ne;
        k->cap = nc;
    }
    if (gx__hmap_put(&k->by_id, e->id, GX__KEY_ID_HEX, k->n)) return GX_ENOMEM;
    k->e[k->n++] = e;
    return 0;
}

static entry *entry_find(gx_auth_keys *k, const char *id) {
    uint64_t idx;
    if (!gx__hmap_get(&k->by_id, id, GX__KEY_ID_HEX, &idx)) return NULL;
    return k->e[idx];
}

/* The columns row_info reads, first in every SELECT of keys. */
#define INFO_COLUMNS "id, tenant, role, label, created_ns, expires_ns, revoked_ns, last_used_ns"
#define INFO_NCOL 8

/* The key of the row st stands on (INFO_COLUMNS first) into *o; GX_ESTORE
 * for a row that is not a key. */
static int row_info(sqlite3_stmt *st, gx_auth_key_info *o, gx_error *err) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *tenant = (const char *)sqlite3_column_text(st, 1);
    const char *role = (const char *)sqlite3_column_text(st, 2);
    const char *label = (const char *)sqlite3_column_text(st, 3);
    int r = role ? gx_auth_role_parse(role) : GX_EINVAL;
    if (!id || strlen(id) != GX__KEY_ID_HEX || !gx_tenant_name_valid(tenant) || r < 0 || !label)
        return gx_error_set(err, GX_ESTORE, NULL, "key database: malformed row for key '%s'", id ? id : "?");
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", id);
    snprintf(o->tenant, sizeof o->tenant, "%s", tenant);
    snprintf(o->label, sizeof o->label, "%s", label);
    o->role = r;
    o->created_ns = sqlite3_column_int64(st, 4);
    o->expires_ns = sqlite3_column_int64(st, 5);
    o->revoked_ns = sqlite3_column_int64(st, 6);
    o->last_used_ns = sqlite3_column_int64(st, 7);
    return 0;
}

/* Read every row (caller holds db_mu and the write lock). */
static int load(gx_auth_keys *k, gx_error *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(k->db, "SELECT " INFO_COLUMNS ", hash FROM keys ORDER BY seq", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(k, err, "load");
    entries_free(k);
    int rc = 0, step;
    gx_auth_key_info o;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = row_info(st, &o, err))) break;
        if (sqlite3_column_bytes(st, INFO_NCOL) != 32) {
            rc = gx_error_set(err, GX_ESTORE, NULL, "key database: malformed row for key '%s'", o.id);
            break;
        }
        entry *e = calloc(1, sizeof *e);
        if (!e) {
            rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory loading keys");
            break;
        }
        memcpy(e->id, o.id, sizeof e->id);
        memcpy(e->tenant, o.tenant, sizeof e->tenant);
        memcpy(e->label, o.label, sizeof e->label);
        e->role = o.role;
        memcpy(e->hash, sqlite3_column_blob(st, INFO_NCOL), 32);
        e->created_ns = o.created_ns;
        e->expires_ns = o.expires_ns;
        e->revoked_ns = o.revoked_ns;
        e->last_used_saved = o.last_used_ns;
        atomic_init(&e->last_used, e->last_used_saved);
        if (entries_add(k, e)) {
            free(e);
            rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory loading keys");
        }
    }
    if (rc == 0 && step != SQLITE_DONE) rc = db_fail(k, err, "load");
    sqlite3_finalize(st);
    if (rc) entries_free(k);
    return rc;
}

/* ---- open / close ------------------------------------------------------------- */

static int migrate(gx_auth_keys *k, const char *path, gx_error *err) {
    int rc = exec_sql(k, "BEGIN IMMEDIATE;"
                         "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);",
                      err);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    int version = 0;
    if (sqlite3_prepare_v2(k->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1, &st,
                           NULL) != SQLITE_OK)
        rc = db_fail(k, err, "schema");
    else {
        if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (rc == 0 && version > SCHEMA_VERSION)
        rc = gx_error_set(err, GX_EUNSUPPORTED, "path",
                          "key database %s has schema version %d, newer than this build (%d)", path,
                          version, SCHEMA_VERSION);
    for (int v = version + 1; rc == 0 && v <= SCHEMA_VERSION; v++) {
        rc = exec_sql(k, migrations[v - 1], err);
        if (rc == 0) {
            char sql[96];
            snprintf(sql, sizeof sql, "INSERT INTO schema_version(version) VALUES(%d)", v);
            rc = exec_sql(k, sql, err);
        }
    }
    if (rc) {
        sqlite3_exec(k->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    return exec_sql(k, "COMMIT", err);
}

int gx_auth_keys_open(const char *path, gx_auth_keys **out, gx_error *err) {
    *out = NULL;
    if (!path || !*path) return gx_error_set(err, GX_EINVAL, "path", "key database path is empty");
    /* create the file ourselves so that it is 0600 from the start; SQLite
     * gives its -wal and -shm files the same mode */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return gx_error_set(err, GX_ESTORE, "path", "key database %s: %s", path, strerror(errno));
    close(fd);
    gx_auth_keys *k = calloc(1, sizeof *k);
    if (!k) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    pthread_mutex_init(&k->db_mu, NULL);
    pthread_rwlock_init(&k->lock, NULL);
    int rc = 0;
    if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK)
        rc = gx_error_set(err, GX_ESTORE, "path", "key database %s: %s", path,
                          k->db ? sqlite3_errmsg(k->db) : "cannot open");
    if (rc == 0) {
        sqlite3_busy_timeout(k->db, 5000);
        rc = exec_sql(k, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err);
    }
    if (rc == 0) rc = migrate(k, path, err);
    if (rc == 0) rc = load(k, err);
    if (rc) {
        gx_auth_keys_close(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* Write the last-used times that changed (caller holds db_mu). */
static void flush_usage(gx_auth_keys *k) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(k->db, "UPDATE keys SET last_used_ns = ?2 WHERE id = ?1", -1, &st, NULL) !=
        SQLITE_OK)
        return;
    pthread_rwlock_rdlock(&k->lock);
    int began = 0;
    for (size_t i = 0; i < k->n; i++) {
        entry *e = k->e[i];
        int64_t t = atomic_load_explicit(&e->last_used, memory_order_relaxed);
        if (t <= e->last_used_saved) continue;
        if (!began) began = sqlite3_exec(k->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, t);
        if (sqlite3_step(st) == SQLITE_DONE) e->last_used_saved = t;
        sqlite3_reset(st);
    }
    pthread_rwlock_unlock(&k->lock);
    if (began) sqlite3_exec(k->db, "COMMIT", NULL, NULL, NULL);
    sqlite3_finalize(st);
}

void gx_auth_keys_close(gx_auth_keys *k) {
    if (!k) return;
    if (k->db) {
        flush_usage(k);
        sqlite3_close_v2(k->db);
    }
    entries_free(k);
    pthread_rwlock_destroy(&k->lock);
    pthread_mutex_destroy(&k->db_mu);
    free(k);
}

int gx_auth_keys_reload(gx_auth_keys *k, gx_error *err) {
    pthread_mutex_lock(&k->db_mu);
    flush_usage(k);
    pthread_rwlock_wrlock(&k->lock);
    int rc = load(k, err);
    pthread_rwlock_unlock(&k->lock);
    pthread_mutex_unlock(&k->db_mu);
    return rc;
}

void gx_auth_free(void *p) { free(p); }

/* ---- create ------------------------------------------------------------------- */

int gx_auth_key_generate(char secret[GX_AUTH_SECRET_LEN], char id[GX_AUTH_KEY_ID_LEN], gx_error *err) {
    unsigned char rnd[8 + 32];
    if (RAND_bytes(rnd, (int)sizeof rnd) != 1)
        return gx_error_set(err, GX_EIO, NULL, "the random generator failed");
    char hex[GX__KEY_ID_HEX + 1], b64[GX__KEY_SECRET_B64 + 1];
    for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    b64url_32(rnd + 8, b64);
    OPENSSL_cleanse(rnd, sizeof rnd);
    snprintf(secret, GX_AUTH_SECRET_LEN, GX__KEY_PREFIX "%s_%s", hex, b64);
    OPENSSL_cleanse(b64, sizeof b64);
    if (id) memcpy(id, hex, GX_AUTH_KEY_ID_LEN);
    return 0;
}

/* Store a key whose text is secret (already parsed, id its id) and add it
 * to memory. GX_EEXIST when the id is taken. Caller holds db_mu. */
static int insert_key(gx_auth_keys *k, const char *secret, const char *id, const char *tenant, int role,
                      int64_t expires_ns, const char *label, int64_t now, gx_error *err) {
    entry *e = calloc(1, sizeof *e);
    if (!e) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->tenant, sizeof e->tenant, "%s", tenant);
    snprintf(e->label, sizeof e->label, "%s", label);
    e->role = role;
    e->created_ns = now;
    e->expires_ns = expires_ns;
    gx__auth_sha256(secret, strlen(secret), NULL, 0, NULL, 0, e->hash);
    atomic_init(&e->last_used, 0);

    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(k->db,
                           "INSERT INTO keys(id, hash, tenant, role, label, created_ns, expires_ns,"
                           " revoked_ns, last_used_ns, seq) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, 0,"
                           " (SELECT coalesce(max(seq), 0) + 1 FROM keys))",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(k, err, "insert");
    } else {
        sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, e->hash, 32, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, e->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, gx_auth_role_name(role), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, e->label, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, e->created_ns);
        sqlite3_bind_int64(st, 7, e->expires_ns);
        int s = sqlite3_step(st);
        if (s == SQLITE_CONSTRAINT && sqlite3_extended_errcode(k->db) == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = gx_error_set(err, GX_EEXIST, "id", "key id %s is already used", id);
        else if (s != SQLITE_DONE)
            rc = db_fail(k, err, "insert");
        sqlite3_finalize(st);
    }
    if (rc == 0) {
        pthread_rwlock_wrlock(&k->lock);
        rc = entries_add(k, e);
        pthread_rwlock_unlock(&k->lock);
        if (rc) gx_error_set(err, rc, NULL, "out of memory");
    }
    if (rc) free(e);
    return rc;
}

static int check_new(const char *tenant, int role, int64_t expires_ns, const char *label, int64_t now,
                     gx_error *err) {
    if (!gx_tenant_name_new_valid(tenant))
        return gx_error_set(err, GX_EINVAL, "tenant",
                            "tenant must match [A-Za-z0-9_.-]{1,63}, and not \".\" or \"..\"");
    if (role < GX_ROLE_VIEWER || role > GX_ROLE_ADMIN)
        return gx_error_set(err, GX_EINVAL, "role", "role must be viewer, submitter, operator or admin");
    if (expires_ns < 0 || (expires_ns && expires_ns <= now))
        return gx_error_set(err, GX_EINVAL, "expires", "expiry must be in the future (or 0 for never)");
    if (!label_valid(label))
        return gx_error_set(err, GX_EINVAL, "label",
                            "label must be at most %d bytes without control characters", GX_AUTH_LABEL_MAX);
    return 0;
}

int gx_auth_key_check(const char *tenant, int role, int64_t expires_ns, const char *label, gx_error *err) {
    return check_new(tenant, role, expires_ns, label ? label : "", gx__wall_ns(), err);
}

int gx_auth_key_create(gx_auth_keys *k, const char *tenant, int role, int64_t expires_ns, const char *label,
                       char secret[GX_AUTH_SECRET_LEN], char id[GX_AUTH_KEY_ID_LEN], gx_error *err) {
    if (!label) label = "";
    int64_t now = gx__wall_ns();
    int rc = check_new(tenant, role, expires_ns, label, now, err);
    if (rc) return rc;
    char kid[GX_AUTH_KEY_ID_LEN];
    pthread_mutex_lock(&k->db_mu);
    /* a 64-bit id collides with negligible odds; try again if it does */
    for (int tries = 0; tries < 4; tries++) {
        rc = gx_auth_key_generate(secret, kid, err);
        if (rc == 0) rc = insert_key(k, secret, kid, tenant, role, expires_ns, label, now, err);
        if (rc != GX_EEXIST) break;
    }
    pthread_mutex_unlock(&k->db_mu);
    if (rc) {
        OPENSSL_cleanse(secret, GX_AUTH_SECRET_LEN);
        secret[0] = '\0';
        return rc;
    }
    if (id) memcpy(id, kid, sizeof kid);
    gx_error_clear(err);
    return 0;
}

/* ---- revoke / list -------------------------------------------------------------- */

/* Caller holds db_mu. */
static int revoke_locked(gx_auth_keys *k, entry *e, int64_t now, gx_error *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(k->db, "UPDATE keys SET revoked_ns = ?2 WHERE id = ?1 AND revoked_ns = 0", -1,
                           &st, NULL) != SQLITE_OK)
        return db_fail(k, err, "revoke");
    sqlite3_bind_text(st, 1, e->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) return db_fail(k, err, "revoke");
    pthread_rwlock_wrlock(&k->lock);
    e->revoked_ns = now;
    pthread_rwlock_unlock(&k->lock);
    return 0;
}

/* Admin keys other than e that work now (not revoked, not expired); the
 key lock held. */
/* Working admin keys besides e; with lasting, only those without an expiry. */
static int other_admins(const gx_auth_keys *k, const entry *e, int64_t now, int lasting) {
    int n = 0;
    for (size_t i = 0; i < k->n; i++) {
        const entry *o = k->e[i];
        n += o != e && o->role == GX_ROLE_ADMIN && !o->revoked_ns &&
             (lasting ? !o->expires_ns : !o->expires_ns || o->expires_ns > now);
    }
    return n;
}

int gx_auth_key_revoke(gx_auth_keys *k, const char *id, int64_t now_ns, gx_error *err) {
    if (!id || strlen(id) != GX__KEY_ID_HEX)
        return gx_error_set(err, GX_ENOTFOUND, "id", "no key with id '%.32s'", id ? id : "");
    int64_t now = now_or(now_ns);
    pthread_mutex_lock(&k->db_mu);
    pthread_rwlock_rdlock(&k->lock);
    entry *e = entry_find(k, id);
    int64_t revoked = e ? e->revoked_ns : 0;
    /* the last admin key that works stays: without one nobody can make
     * keys, and a restart with the same GEXEC_ADMIN_KEY does not bring a
     * revoked key back (an operator had to invent a new one) */
    /* and an admin key that does not expire stays while no other one does:
     * an expiring admin key counted, so the last lasting one could go and
     * the keys ran out of admins at its expiry */
    int lasting = e && !e->expires_ns;
    int last_admin = e && !revoked && e->role == GX_ROLE_ADMIN && !other_admins(k, e, now, lasting);
    lasting = lasting && other_admins(k, e, now, 0); /* for the message: expiring ones are left */
    pthread_rwlock_unlock(&k->lock);
    int rc = 0;
    if (!e)
        rc = gx_error_set(err, GX_ENOTFOUND, "id", "no key with id '%s'", id);
    else if (last_admin)
        rc = gx_error_set(err, GX_ESTATE, "id",
                          lasting ? "key %s is the last admin key that works and does not expire: revoking it would "
                                    "leave none once the others expire; make another admin key without an expiry "
                                    "first"
                                  : "key %s is the last admin key that works: revoking it would leave no key that "
                                    "can make keys; make another admin key first",
                          id);
    else if (!revoked)
        rc = revoke_locked(k, e, now, err);
    pthread_mutex_unlock(&k->db_mu);
    return rc;
}

int gx_auth_key_list(gx_auth_keys *k, const char *tenant, gx_auth_key_info **out, size_t *n, gx_error *err) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&k->db_mu);
    flush_usage(k);
    pthread_mutex_unlock(&k->db_mu);
    pthread_rwlock_rdlock(&k->lock);
    size_t cnt = 0;
    for (size_t i = 0; i < k->n; i++) cnt += !tenant || !strcmp(k->e[i]->tenant, tenant);
    gx_auth_key_info *v = cnt ? calloc(cnt, sizeof *v) : NULL;
    if (cnt && !v) {
        pthread_rwlock_unlock(&k->lock);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    size_t j = 0;
    for (size_t i = 0; i < k->n; i++) {
        const entry *e = k->e[i];
        if (tenant && strcmp(e->tenant, tenant)) continue;
        gx_auth_key_info *o = &v[j++];
        memcpy(o->id, e->id, sizeof o->id);
        memcpy(o->tenant, e->tenant, sizeof o->tenant);
        memcpy(o->label, e->label, sizeof o->label);
        o->role = e->role;
        o->created_ns = e->created_ns;
        o->expires_ns = e->expires_ns;
        o->revoked_ns = e->revoked_ns;
        o->last_used_ns = atomic_load_explicit(&((entry *)e)->last_used, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&k->lock);
    *out = v;
    *n = cnt;
    return 0;
}

void gx__auth_key_page_sql(const gx_auth_key_query *q, char *sql, size_t cap) {
    /* the filters are terms of the statement, not of a loop over its rows,
     * so that the index of the filter reads the page and nothing else; one
     * row more than the page tells whether another page follows */
    snprintf(sql, cap, "SELECT " INFO_COLUMNS ", seq FROM keys WHERE seq > ?1%s%s ORDER BY seq LIMIT ?4",
             q->tenant ? " AND tenant = ?2" : "", q->revoked ? " AND (revoked_ns != 0) = ?3" : "");
}

int gx_auth_key_page(gx_auth_keys *k, const gx_auth_key_query *q, gx_auth_key_info **out, size_t *n,
                     uint64_t *next, gx_error *err) {
    *out = NULL;
    *n = 0;
    *next = 0;
    if (q->limit < 1 || q->limit > GX_AUTH_PAGE_MAX)
        return gx_error_set(err, GX_EINVAL, "limit", "limit must be 1..%d", GX_AUTH_PAGE_MAX);
    char sql[GX__KEY_PAGE_SQL_MAX];
    gx__auth_key_page_sql(q, sql, sizeof sql);
    gx_auth_key_info *v = calloc(q->limit + 1, sizeof *v);
    if (!v) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    uint64_t last = 0; /* position of the page's last key */
    size_t cnt = 0;
    int rc = 0, step = SQLITE_DONE;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&k->db_mu);
    flush_usage(k);
    if (sqlite3_prepare_v2(k->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(k, err, "list");
    } else {
        sqlite3_bind_int64(st, 1, q->after > INT64_MAX ? INT64_MAX : (int64_t)q->after);
        if (q->tenant) sqlite3_bind_text(st, 2, q->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, q->revoked > 0);
        sqlite3_bind_int64(st, 4, (int64_t)q->limit + 1);
        while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
            rc = row_info(st, &v[cnt], err);
            if (cnt++ < q->limit) last = (uint64_t)sqlite3_column_int64(st, INFO_NCOL);
        }
        if (rc == 0 && step != SQLITE_DONE) rc = db_fail(k, err, "list");
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&k->db_mu);
    if (rc || cnt == 0) {
        free(v);
        return rc;
    }
    if (cnt > q->limit) { /* the row after the page: another page follows */
        cnt = q->limit;
        *next = last;
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* ---- verify ------------------------------------------------------------------- */

int gx_auth_key_verify(gx_auth_keys *k, const char *token, size_t len, int64_t now_ns,
                       gx_auth_principal *out) {
    memset(out, 0, sizeof *out);
    int reason = gx_auth_token_parse(token, len, out->key_id);
    if (reason != GX_AUTH_OK) {
        out->reason = reason;
        return GX_EAUTH;
    }
    unsigned char h[32];
    gx__auth_sha256(token, len, NULL, 0, NULL, 0, h);
    int64_t now = now_or(now_ns);
    pthread_rwlock_rdlock(&k->lock);
    entry *e = entry_find(k, out->key_id);
    if (!e || CRYPTO_memcmp(h, e->hash, sizeof h) != 0)
        reason = GX_AUTH_UNKNOWN;
    else if (e->revoked_ns)
        reason = GX_AUTH_REVOKED;
    else if (e->expires_ns && now >= e->expires_ns)
        reason = GX_AUTH_EXPIRED;
    if (reason == GX_AUTH_OK) {
        memcpy(out->tenant, e->tenant, sizeof out->tenant);
        out->role = e->role;
        out->expires_ns = e->expires_ns;
        /* written at most once a second so busy keys do not bounce the line */
        int64_t last = atomic_load_explicit(&e->last_used, memory_order_relaxed);
        if (now - last >= LAST_USED_GRAIN_NS)
            atomic_store_explicit(&e->last_used, now, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&k->lock);
    out->reason = reason;
    return reason == GX_AUTH_OK ? GX_OK : GX_EAUTH;
}

int gx_auth_key_revoked(gx_auth_keys *k, const char *id) {
    pthread_rwlock_rdlock(&k->lock);
    entry *e = id ? entry_find(k, id) : NULL;
    int revoked = !e || e->revoked_ns != 0;
    pthread_rwlock_unlock(&k->lock);
    return revoked;
}

/* ---- bootstrap ------------------------------------------------------------------ */

/* Revoke every unrevoked key labelled "bootstrap" but keep_id. db_mu held. */
static int revoke_other_bootstrap(gx_auth_keys *k, const char *keep_id, int64_t now, gx_error *err) {
    for (size_t i = 0;; i++) {
        pthread_rwlock_rdlock(&k->lock);
        entry *e = i < k->n ? k->e[i] : NULL;
        int hit = e && !e->revoked_ns && !strcmp(e->label, BOOTSTRAP_LABEL) &&
                  (!keep_id || strcmp(e->id, keep_id));
        pthread_rwlock_unlock(&k->lock);
        if (!e) return 0;
        if (hit) {
            int rc = revoke_locked(k, e, now, err);
            if (rc) return rc;
        }
    }
}

/* Is there an admin key that works (not revoked, not expired) at now? */
static int admin_usable(gx_auth_keys *k, int64_t now) {
    int usable = 0;
    pthread_rwlock_rdlock(&k->lock);
    for (size_t i = 0; i < k->n && !usable; i++) {
        const entry *e = k->e[i];
        usable = e->role == GX_ROLE_ADMIN && !e->revoked_ns && (!e->expires_ns || e->expires_ns > now);
    }
    pthread_rwlock_unlock(&k->lock);
    return usable;
}

int gx_auth_admin_usable(gx_auth_keys *k) { return admin_usable(k, gx__wall_ns()); }

int gx_auth_ensure_admin(gx_auth_keys *k, const char *tenant, const char *value,
                         char secret[GX_AUTH_SECRET_LEN], int *created, gx_error *err) {
    *created = 0;
    int64_t now = gx__wall_ns();
    if (!gx_tenant_name_valid(tenant))
        return gx_error_set(err, GX_EINVAL, "tenant", "tenant must match [A-Za-z0-9_.-]{1,63}");
    int rc = 0;
    pthread_mutex_lock(&k->db_mu);
    if (value && *value) {
        char id[GX_AUTH_KEY_ID_LEN];
        size_t len = strlen(value);
        if (gx_auth_token_parse(value, len, id) != GX_AUTH_OK) {
            rc = gx_error_set(err, GX_EINVAL, "admin_key",
                              "the admin key must look like gx_<16 hex digits>_<32 bytes in unpadded base64url: 43 characters>"
                              " (make one with gx_auth_key_generate)");
        } else {
            unsigned char h[32];
            gx__auth_sha256(value, len, NULL, 0, NULL, 0, h);
            pthread_rwlock_rdlock(&k->lock);
            entry *e = entry_find(k, id);
            int same = e && CRYPTO_memcmp(h, e->hash, sizeof h) == 0;
            pthread_rwlock_unlock(&k->lock);
            if (e && !same)
                rc = gx_error_set(err, GX_EEXIST, "admin_key", "key id %s is already used by another key", id);
            else if (!e) {
                rc = insert_key(k, value, id, tenant, GX_ROLE_ADMIN, 0, BOOTSTRAP_LABEL, now, err);
                *created = rc == 0;
            }
            if (rc == 0) rc = revoke_other_bootstrap(k, id, now, err);
        }
    } else {
        if (!admin_usable(k, now)) {
            char id[GX_AUTH_KEY_ID_LEN];
            for (int tries = 0; tries < 4; tries++) {
                rc = gx_auth_key_generate(secret, id, err);
                if (rc == 0) rc = insert_key(k, secret, id, tenant, GX_ROLE_ADMIN, 0, BOOTSTRAP_LABEL, now, err);
                if (rc != GX_EEXIST) break;
            }
            *created = rc == 0;
            if (rc) {
                OPENSSL_cleanse(secret, GX_AUTH_SECRET_LEN);
                secret[0] = '\0';
            }
        }
    }
    pthread_mutex_unlock(&k->db_mu);
    return rc;
}

int gx_auth_write_secret_file(const char *path, const char *secret, gx_error *err) {
    if (!path || !*path) return gx_error_set(err, GX_EINVAL, "path", "no file name");
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return gx_error_set(err, GX_EINVAL, "path", "file name too long");
    /* a leftover of an interrupted write is ours to remove; unlink removes a
     * link itself, and O_EXCL | O_NOFOLLOW refuses whatever appears after */
    if (unlink(tmp) && errno != ENOENT)
        return gx_error_set(err, GX_EIO, "path", "%s: %s", tmp, strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return gx_error_set(err, GX_EIO, "path", "%s: %s", tmp, strerror(errno));
    /* the mode passed to open is filtered by umask; make sure it is 0600 */
    int rc = fchmod(fd, 0600) ? GX_EIO : 0;
    size_t len = strlen(secret), off = 0;
    while (rc == 0 && off < len + 1) {
        const char *p = off < len ? secret + off : "\n";
        size_t want = off < len ? len - off : 1;
        ssize_t w = write(fd, p, want);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = GX_EIO;
        else off += (size_t)w;
    }
    if (rc == 0 && fsync(fd)) rc = GX_EIO;
    int e = errno;
    close(fd);
    /* rename replaces a file, or a link itself (never its target), at path */
    const char *failed = tmp;
    if (rc == 0 && rename(tmp, path)) {
        rc = GX_EIO;
        e = errno;
        failed = path;
    }
    if (rc) {
        unlink(tmp);
        return gx_error_set(err, rc, "path", "%s: %s", failed, strerror(e));
    }
    /* the rename itself is durable once the folder is synced */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}
