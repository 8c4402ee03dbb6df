/*
 * test_auth.c - the auth module on a real SQLite file and a real audit file
 * in a temporary folder: keys (create, verify, revoke, expiry, list, what
 * is and is not stored), hostile tokens, the bootstrap admin key, every cell
 * of the route x role table (stated here a second time, on purpose) and the
 * docs copy of it, token buckets on a fake clock, and the audit chain
 * (changed, removed, reordered records; torn tails; reopen; concurrency).
 */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "api/http.h"
#include "auth/auth_int.h"
#include "gexec/gexec_auth.h"
#include "testutil.h"

extern const gx_route gx__routes[];
extern const int gx__nroutes;

/* ---- fixtures --------------------------------------------------------------- */

typedef struct fx {
    char dir[256];
    char db[300];
    char log[300];
    gx_auth_keys *k;
} fx;

static int setup(void **st) {
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/gx-test-auth-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/auth.db", f->dir);
    snprintf(f->log, sizeof f->log, "%s/audit.log", f->dir);
    gx_error err;
    TU_OK(gx_auth_keys_open(f->db, &f->k, &err), err);
    *st = f;
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int teardown(void **st) {
    fx *f = *st;
    gx_auth_keys_close(f->k);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void reopen(fx *f) {
    gx_auth_keys_close(f->k);
    f->k = NULL;
    gx_error err;
    TU_OK(gx_auth_keys_open(f->db, &f->k, &err), err);
}

static int verify(fx *f, const char *tok, int64_t now, gx_auth_principal *p) {
    return gx_auth_key_verify(f->k, tok, tok ? strlen(tok) : 0, now, p);
}

/* Whole file in memory (malloc'd); *len. NULL if it does not exist. */
static char *slurp(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    *len = 0;
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    *len = fread(b, 1, (size_t)n, fp);
    b[*len] = '\0';
    fclose(fp);
    return b;
}

static void spill(const char *path, const char *b, size_t len) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, len, fp), len);
    fclose(fp);
}

/* ---- keys ------------------------------------------------------------------- */

static void key_create_verify_list(void **st) {
    fx *f = *st;
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN], id[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_SUBMITTER, 0, "ci runner", secret, id, &err), err);
    assert_int_equal(strlen(secret), 63);
    assert_memory_equal(secret, "gx_", 3);
    assert_memory_equal(secret + 3, id, 16);
    assert_int_equal(gx_auth_token_parse(secret, strlen(secret), NULL), GX_AUTH_OK);

    gx_auth_principal p;
    assert_int_equal(verify(f, secret, 0, &p), GX_OK);
    assert_int_equal(p.reason, GX_AUTH_OK);
    assert_string_equal(p.key_id, id);
    assert_string_equal(p.tenant, "acme");
    assert_int_equal(p.role, GX_ROLE_SUBMITTER);

    /* right id, wrong secret */
    char bad[GX_AUTH_SECRET_LEN];
    memcpy(bad, secret, sizeof bad);
    bad[30] = bad[30] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(f, bad, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_UNKNOWN);
    assert_string_equal(p.key_id, id);
    assert_string_equal(p.tenant, "");
    assert_int_equal(p.role, GX_ROLE_NONE);
    /* unknown id */
    char other[GX_AUTH_SECRET_LEN];
    TU_OK(gx_auth_key_generate(other, NULL, &err), err);
    assert_int_equal(verify(f, other, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_UNKNOWN);

    /* a second tenant; list filters; never a hash or a secret */
    char s2[GX_AUTH_SECRET_LEN], id2[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "beta", GX_ROLE_VIEWER, 0, NULL, s2, id2, &err), err);
    gx_auth_key_info *v = NULL;
    size_t n = 0;
    TU_OK(gx_auth_key_list(f->k, NULL, &v, &n, &err), err);
    assert_int_equal(n, 2);
    assert_string_equal(v[0].id, id);
    assert_string_equal(v[0].tenant, "acme");
    assert_string_equal(v[0].label, "ci runner");
    assert_int_equal(v[0].role, GX_ROLE_SUBMITTER);
    assert_true(v[0].created_ns > 0);
    assert_int_equal(v[0].expires_ns, 0);
    assert_int_equal(v[0].revoked_ns, 0);
    assert_true(v[0].last_used_ns > 0); /* verified above */
    assert_string_equal(v[1].id, id2);
    assert_int_equal(v[1].last_used_ns, 0);
    unsigned char h[32];
    SHA256((const unsigned char *)secret, strlen(secret), h);
    assert_null(memmem(v, n * sizeof *v, h, sizeof h));
    assert_null(memmem(v, n * sizeof *v, secret + 20, 43));
    gx_auth_free(v);
    TU_OK(gx_auth_key_list(f->k, "beta", &v, &n, &err), err);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, id2);
    gx_auth_free(v);
    TU_OK(gx_auth_key_list(f->k, "nobody", &v, &n, &err), err);
    assert_int_equal(n, 0);
    assert_null(v);

    /* survives a restart, last_used too */
    reopen(f);
    assert_int_equal(verify(f, secret, 0, &p), GX_OK);
    TU_OK(gx_auth_key_list(f->k, "acme", &v, &n, &err), err);
    assert_int_equal(n, 1);
    assert_true(v[0].last_used_ns > 0);
    gx_auth_free(v);

    /* the database holds the hash and never the secret */
    gx_auth_keys_close(f->k);
    f->k = NULL;
    const char *sfx[] = {"", "-wal", "-shm"};
    int hash_seen = 0;
    for (int i = 0; i < 3; i++) {
        char path[320];
        snprintf(path, sizeof path, "%s%s", f->db, sfx[i]);
        size_t len;
        char *b = slurp(path, &len);
        if (!b) continue;
        assert_null(memmem(b, len, secret, strlen(secret)));
        assert_null(memmem(b, len, secret + 20, 43));
        assert_null(memmem(b, len, s2 + 20, 43));
        hash_seen |= memmem(b, len, h, sizeof h) != NULL;
        free(b);
    }
    assert_true(hash_seen);
    struct stat sb;
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    TU_OK(gx_auth_keys_open(f->db, &f->k, &err), err);
}

static void key_revoke(void **st) {
    fx *f = *st;
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN], id[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_OPERATOR, 0, "", secret, id, &err), err);
    gx_auth_principal p;
    assert_int_equal(verify(f, secret, 0, &p), GX_OK);
    assert_int_equal(gx_auth_key_revoked(f->k, id), 0);
    TU_OK(gx_auth_key_revoke(f->k, id, 0, &err), err);
    assert_int_equal(verify(f, secret, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_REVOKED);
    /* what a stream listed after a revoke's walk asks (svc_events.c) */
    assert_int_equal(gx_auth_key_revoked(f->k, id), 1);
    assert_int_equal(gx_auth_key_revoked(f->k, "0123456789abcdef"), 1); /* unknown */
    assert_int_equal(gx_auth_key_revoked(f->k, NULL), 1);
    TU_OK(gx_auth_key_revoke(f->k, id, 0, &err), err); /* again: nothing changes */
    assert_int_equal(gx_auth_key_revoke(f->k, "0123456789abcdef", 0, &err), GX_ENOTFOUND);
    assert_int_equal(gx_auth_key_revoke(f->k, "short", 0, &err), GX_ENOTFOUND);
    assert_int_equal(gx_auth_key_revoke(f->k, NULL, 0, &err), GX_ENOTFOUND);
    reopen(f);
    assert_int_equal(verify(f, secret, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_REVOKED);
    gx_auth_key_info *v;
    size_t n;
    TU_OK(gx_auth_key_list(f->k, NULL, &v, &n, &err), err);
    assert_int_equal(n, 1);
    assert_true(v[0].revoked_ns > 0);
    gx_auth_free(v);
}

/* The last admin key that works cannot be revoked (409 GX_ESTATE): with
 * none left nobody could make keys. Expired and revoked admin keys do not
 * count; other roles' keys do not either. */
static void last_admin_key_stays(void **st) {
    fx *f = *st;
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN], a[GX_AUTH_KEY_ID_LEN], b[GX_AUTH_KEY_ID_LEN], c[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "default", GX_ROLE_ADMIN, 0, "a", secret, a, &err), err);
    TU_OK(gx_auth_key_create(f->k, "default", GX_ROLE_OPERATOR, 0, "op", secret, c, &err), err);
    assert_int_equal(gx_auth_key_revoke(f->k, a, 0, &err), GX_ESTATE);
    assert_string_equal(err.field, "id");
    assert_non_null(strstr(err.message, "last admin key"));
    TU_OK(gx_auth_key_revoke(f->k, c, 0, &err), err);
    /* an admin key that has expired by then is no help */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    TU_OK(gx_auth_key_create(f->k, "default", GX_ROLE_ADMIN, now_ns + 1000000000, "old", secret, c, &err), err);
    assert_int_equal(gx_auth_key_revoke(f->k, a, now_ns + 5000000000, &err), GX_ESTATE);
    TU_OK(gx_auth_key_create(f->k, "default", GX_ROLE_ADMIN, 0, "b", secret, b, &err), err);
    TU_OK(gx_auth_key_revoke(f->k, a, 0, &err), err);
    TU_OK(gx_auth_key_revoke(f->k, c, 0, &err), err);
    assert_int_equal(gx_auth_key_revoke(f->k, b, 0, &err), GX_ESTATE);
    TU_OK(gx_auth_key_revoke(f->k, a, 0, &err), err); /* revoked already: nothing changes */
    /* an admin key that expires does not stand in for the last one that
     * does not: revoking b beside it would leave no admin in an hour */
    char d[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "default", GX_ROLE_ADMIN, now_ns + 3600 * 1000000000LL, "d", secret, d, &err), err);
    assert_int_equal(gx_auth_key_revoke(f->k, b, 0, &err), GX_ESTATE);
    assert_non_null(strstr(err.message, "does not expire"));
    TU_OK(gx_auth_key_revoke(f->k, d, 0, &err), err); /* b stays */
}

static void key_expiry(void **st) {
    fx *f = *st;
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    int64_t exp = now + 3600LL * 1000000000;
    TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, exp, "temp", secret, NULL, &err), err);
    gx_auth_principal p;
    assert_int_equal(verify(f, secret, exp - 1, &p), GX_OK);
    assert_int_equal(verify(f, secret, exp, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_EXPIRED);
    assert_int_equal(verify(f, secret, 0, &p), GX_OK); /* now: not yet */
    /* an expiry in the past is refused */
    assert_int_equal(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, now - 1, "", secret, NULL, &err),
                     GX_EINVAL);
    assert_string_equal(err.field, "expires");
}

static void key_bad_args(void **st) {
    fx *f = *st;
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN];
    assert_int_equal(gx_auth_key_create(f->k, "", GX_ROLE_VIEWER, 0, "", secret, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "tenant");
    assert_int_equal(gx_auth_key_create(f->k, "a b", GX_ROLE_VIEWER, 0, "", secret, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_auth_key_create(f->k, NULL, GX_ROLE_VIEWER, 0, "", secret, NULL, &err), GX_EINVAL);
    char longt[80];
    memset(longt, 'a', 64);
    longt[64] = '\0';
    assert_int_equal(gx_auth_key_create(f->k, longt, GX_ROLE_VIEWER, 0, "", secret, NULL, &err), GX_EINVAL);
    longt[63] = '\0';
    TU_OK(gx_auth_key_create(f->k, longt, GX_ROLE_VIEWER, 0, "", secret, NULL, &err), err);
    assert_int_equal(gx_auth_key_create(f->k, "acme", GX_ROLE_NONE, 0, "", secret, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "role");
    assert_int_equal(gx_auth_key_create(f->k, "acme", 7, 0, "", secret, NULL, &err), GX_EINVAL);
    assert_int_equal(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, 0, "a\nb", secret, NULL, &err), GX_EINVAL);
    assert_string_equal(err.field, "label");
    char lbl[200];
    memset(lbl, 'x', sizeof lbl - 1);
    lbl[sizeof lbl - 1] = '\0';
    assert_int_equal(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, 0, lbl, secret, NULL, &err), GX_EINVAL);
    gx_auth_keys *k2 = NULL;
    assert_int_equal(gx_auth_keys_open("", &k2, &err), GX_EINVAL);
    assert_int_equal(gx_auth_keys_open("/nonexistent-dir/x/auth.db", &k2, &err), GX_ESTORE);
    assert_null(k2);
}

/* Every flavour of bad token is refused before any lookup, with the right
 * reason. */
static void tokens_malformed(void **st) {
    fx *f = *st;
    gx_error err;
    char good[GX_AUTH_SECRET_LEN];
    TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_ADMIN, 0, "", good, NULL, &err), err);
    gx_auth_principal p;
    assert_int_equal(gx_auth_key_verify(f->k, NULL, 0, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MISSING);
    assert_int_equal(gx_auth_key_verify(f->k, "", 0, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MISSING);

    char t[GX_AUTH_SECRET_LEN + 8];
    struct {
        int pos;
        char c;
    } flips[] = {
        {0, 'G'}, {1, 'y'}, {2, '-'},    /* prefix */
        {3, 'A'}, {10, 'g'}, {18, '_'},  /* id: uppercase, not hex */
        {19, '-'},                       /* separator */
        {20, '+'}, {40, '/'}, {50, '='}, /* not base64url */
        {62, '='}, {62, 'B'},            /* padding; non-canonical last char */
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(t, good, GX_AUTH_SECRET_LEN);
        t[flips[i].pos] = flips[i].c;
        assert_int_equal(verify(f, t, 0, &p), GX_EAUTH);
        assert_int_equal(p.reason, GX_AUTH_MALFORMED);
        assert_string_equal(p.key_id, "");
    }
    /* too short, too long, trailing garbage */
    assert_int_equal(gx_auth_key_verify(f->k, good, 62, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MALFORMED);
    snprintf(t, sizeof t, "%s=", good);
    assert_int_equal(verify(f, t, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MALFORMED);
    char *huge = malloc(10001);
    memset(huge, 'A', 10000);
    memcpy(huge, good, 63);
    huge[10000] = '\0';
    assert_int_equal(gx_auth_key_verify(f->k, huge, 10000, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MALFORMED);
    free(huge);
    /* NUL bytes inside the counted length */
    memcpy(t, good, GX_AUTH_SECRET_LEN);
    t[30] = '\0';
    assert_int_equal(gx_auth_key_verify(f->k, t, 63, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MALFORMED);
    memcpy(t, good, GX_AUTH_SECRET_LEN);
    t[63] = '\0';
    assert_int_equal(gx_auth_key_verify(f->k, t, 64, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MALFORMED);
    /* high bytes */
    memcpy(t, good, GX_AUTH_SECRET_LEN);
    t[25] = (char)0xc3;
    assert_int_equal(verify(f, t, 0, &p), GX_EAUTH);
    assert_int_equal(p.reason, GX_AUTH_MALFORMED);
    /* the good one still works */
    assert_int_equal(verify(f, good, 0, &p), GX_OK);
    assert_int_equal(p.role, GX_ROLE_ADMIN);
}

static void bearer_header(void **st) {
    (void)st;
    const char *tok;
    size_t len;
    assert_int_equal(gx_auth_bearer(NULL, &tok, &len), GX_AUTH_MISSING);
    assert_int_equal(gx_auth_bearer("", &tok, &len), GX_AUTH_MISSING);
    assert_int_equal(gx_auth_bearer("   ", &tok, &len), GX_AUTH_MISSING);
    assert_int_equal(gx_auth_bearer("Basic dXNlcjpwYXNz", &tok, &len), GX_AUTH_MALFORMED);
    assert_int_equal(gx_auth_bearer("Bearer", &tok, &len), GX_AUTH_MALFORMED);
    assert_int_equal(gx_auth_bearer("Bearer    ", &tok, &len), GX_AUTH_MALFORMED);
    assert_int_equal(gx_auth_bearer("Bearerx abc", &tok, &len), GX_AUTH_MALFORMED);
    assert_int_equal(gx_auth_bearer("Bearer abc", &tok, &len), GX_AUTH_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(tok, "abc", 3);
    assert_int_equal(gx_auth_bearer("  bEaReR \t abc def  ", &tok, &len), GX_AUTH_OK);
    assert_int_equal(len, 7);
    assert_memory_equal(tok, "abc def", 7); /* then malformed as a key */
    assert_int_equal(gx_auth_token_parse(tok, len, NULL), GX_AUTH_MALFORMED);
}

static void bootstrap_admin(void **st) {
    fx *f = *st;
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN], again[GX_AUTH_SECRET_LEN];
    int created = -1;
    TU_OK(gx_auth_ensure_admin(f->k, "default", NULL, secret, &created, &err), err);
    assert_int_equal(created, 1);
    gx_auth_principal p;
    assert_int_equal(verify(f, secret, 0, &p), GX_OK);
    assert_int_equal(p.role, GX_ROLE_ADMIN);
    assert_string_equal(p.tenant, "default");
    memset(again, 0, sizeof again);
    TU_OK(gx_auth_ensure_admin(f->k, "default", NULL, again, &created, &err), err);
    assert_int_equal(created, 0);
    assert_int_equal(again[0], 0); /* nothing written */
    reopen(f);
    TU_OK(gx_auth_ensure_admin(f->k, "default", "", again, &created, &err), err);
    assert_int_equal(created, 0);

    /* a key given by the operator: stored once, replaces the made one */
    char given[GX_AUTH_SECRET_LEN], gid[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_generate(given, gid, &err), err);
    TU_OK(gx_auth_ensure_admin(f->k, "default", given, again, &created, &err), err);
    assert_int_equal(created, 1);
    assert_int_equal(verify(f, given, 0, &p), GX_OK);
    assert_int_equal(p.role, GX_ROLE_ADMIN);
    assert_string_equal(p.key_id, gid);
    assert_int_equal(verify(f, secret, 0, &p), GX_EAUTH); /* rotated out */
    assert_int_equal(p.reason, GX_AUTH_REVOKED);
    TU_OK(gx_auth_ensure_admin(f->k, "default", given, again, &created, &err), err);
    assert_int_equal(created, 0);
    reopen(f);
    TU_OK(gx_auth_ensure_admin(f->k, "default", given, again, &created, &err), err);
    assert_int_equal(created, 0);
    assert_int_equal(verify(f, given, 0, &p), GX_OK);

    /* other admin keys are left alone; a revoked bootstrap key stays revoked */
    char mine[GX_AUTH_SECRET_LEN];
    TU_OK(gx_auth_key_create(f->k, "default", GX_ROLE_ADMIN, 0, "alice", mine, NULL, &err), err);
    TU_OK(gx_auth_key_revoke(f->k, gid, 0, &err), err);
    TU_OK(gx_auth_ensure_admin(f->k, "default", given, again, &created, &err), err);
    assert_int_equal(created, 0);
    assert_int_equal(verify(f, given, 0, &p), GX_EAUTH);
    assert_int_equal(verify(f, mine, 0, &p), GX_OK);
    TU_OK(gx_auth_ensure_admin(f->k, "default", NULL, again, &created, &err), err);
    assert_int_equal(created, 0); /* alice's key is a usable admin key */

    /* bad values */
    assert_int_equal(gx_auth_ensure_admin(f->k, "default", "hunter2", again, &created, &err), GX_EINVAL);
    assert_string_equal(err.field, "admin_key");
    char clash[GX_AUTH_SECRET_LEN];
    memcpy(clash, given, sizeof clash);
    clash[40] = clash[40] == 'A' ? 'B' : 'A'; /* same id, other secret */
    assert_int_equal(gx_auth_ensure_admin(f->k, "default", clash, again, &created, &err), GX_EEXIST);
    assert_int_equal(gx_auth_ensure_admin(f->k, "bad tenant", NULL, again, &created, &err), GX_EINVAL);

    gx_auth_key_info *v;
    size_t n;
    TU_OK(gx_auth_key_list(f->k, NULL, &v, &n, &err), err);
    assert_int_equal(n, 3);
    gx_auth_free(v);
}

static void secret_file(void **st) {
    fx *f = *st;
    gx_error err;
    char path[320], secret[GX_AUTH_SECRET_LEN];
    snprintf(path, sizeof path, "%s/admin.key", f->dir);
    TU_OK(gx_auth_key_generate(secret, NULL, &err), err);
    mode_t old = umask(0);
    TU_OK(gx_auth_write_secret_file(path, secret, &err), err);
    umask(old);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t len;
    char *b = slurp(path, &len);
    assert_int_equal(len, 64);
    assert_memory_equal(b, secret, 63);
    assert_int_equal(b[63], '\n');
    free(b);
    /* a second secret replaces the first whole, and no .tmp is left */
    char other[GX_AUTH_SECRET_LEN], tmp[330];
    TU_OK(gx_auth_key_generate(other, NULL, &err), err);
    TU_OK(gx_auth_write_secret_file(path, other, &err), err);
    b = slurp(path, &len);
    assert_int_equal(len, 64);
    assert_memory_equal(b, other, 63);
    free(b);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
    /* a leftover .tmp is removed; a link there is removed, never followed */
    char target[330];
    snprintf(target, sizeof target, "%s/target", f->dir);
    assert_int_equal(symlink(target, tmp), 0);
    TU_OK(gx_auth_write_secret_file(path, secret, &err), err);
    assert_int_equal(access(target, F_OK), -1);
    /* a link at path is replaced by the file; its target is not written */
    char link[330];
    snprintf(link, sizeof link, "%s/link.key", f->dir);
    assert_int_equal(symlink(target, link), 0);
    TU_OK(gx_auth_write_secret_file(link, secret, &err), err);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(access(target, F_OK), -1);
    /* a folder that does not exist: an error naming the file */
    snprintf(link, sizeof link, "%s/no/such.key", f->dir);
    assert_int_equal(gx_auth_write_secret_file(link, secret, &err), GX_EIO);
    assert_non_null(strstr(err.message, "no/such.key.tmp"));
}

typedef struct vth {
    fx *f;
    const char *secret;
    int ok, refused;
} vth;

static void *verify_main(void *arg) {
    vth *t = arg;
    for (int i = 0; i < 20000; i++) {
        gx_auth_principal p;
        if (gx_auth_key_verify(t->f->k, t->secret, strlen(t->secret), 0, &p) == GX_OK)
            t->ok++;
        else
            t->refused++;
    }
    return NULL;
}

/* Readers verify while keys are created and one is revoked. */
static void key_concurrency(void **st) {
    fx *f = *st;
    gx_error err;
    char s1[GX_AUTH_SECRET_LEN], s2[GX_AUTH_SECRET_LEN], id2[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, 0, "", s1, NULL, &err), err);
    TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, 0, "", s2, id2, &err), err);
    pthread_t th[4];
    vth t[4] = {{f, s1, 0, 0}, {f, s1, 0, 0}, {f, s2, 0, 0}, {f, s2, 0, 0}};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, verify_main, &t[i]);
    for (int i = 0; i < 50; i++) {
        char s[GX_AUTH_SECRET_LEN];
        TU_OK(gx_auth_key_create(f->k, "acme", GX_ROLE_VIEWER, 0, "", s, NULL, &err), err);
    }
    TU_OK(gx_auth_key_revoke(f->k, id2, 0, &err), err);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(t[0].ok, 20000);
    assert_int_equal(t[1].ok, 20000);
    gx_auth_principal p;
    assert_int_equal(verify(f, s2, 0, &p), GX_EAUTH);
    gx_auth_key_info *v;
    size_t n;
    TU_OK(gx_auth_key_list(f->k, NULL, &v, &n, &err), err);
    assert_int_equal(n, 52);
    gx_auth_free(v);
}

/* ---- pages of keys ---------------------------------------------------------------- */

/* Keys made in order, as the tests expect to see them. */
typedef struct made {
    char id[300][GX_AUTH_KEY_ID_LEN];
    char tenant[300][8];
    int revoked[300];
    int n;
} made;

static void make_key(fx *f, made *m, const char *tenant) {
    gx_error err;
    char secret[GX_AUTH_SECRET_LEN];
    assert_true(m->n < 300);
    TU_OK(gx_auth_key_create(f->k, tenant, GX_ROLE_VIEWER, 0, "paged", secret, m->id[m->n], &err), err);
    snprintf(m->tenant[m->n], sizeof m->tenant[0], "%s", tenant);
    m->revoked[m->n++] = 0;
}

static void revoke_made(fx *f, made *m, int i) {
    gx_error err;
    TU_OK(gx_auth_key_revoke(f->k, m->id[i], 0, &err), err);
    m->revoked[i] = 1;
}

/* Does key i of m match the query's filters? */
static int made_matches(const made *m, int i, const gx_auth_key_query *q) {
    return (!q->tenant || !strcmp(q->tenant, m->tenant[i])) && (!q->revoked || (q->revoked > 0) == m->revoked[i]);
}

/* Page through q (from its after, limit keys a page) to the end, calling
 * between (when given) after each page but the last; every key must come
 * once, in creation order, each page full but the last and the last page
 * saying so (next 0). The keys seen into seen (room for 300), returns how
 * many. */
static int page_all(fx *f, gx_auth_key_query q, char seen[][GX_AUTH_KEY_ID_LEN], int *revoked,
                    void (*between)(fx *, int page, void *), void *ctx) {
    int got = 0;
    for (int page = 0;; page++) {
        gx_auth_key_info *v = NULL;
        size_t n = 0;
        uint64_t next = 1;
        gx_error err;
        TU_OK(gx_auth_key_page(f->k, &q, &v, &n, &next, &err), err);
        assert_true(got + (int)n <= 300);
        for (size_t i = 0; i < n; i++) {
            memcpy(seen[got], v[i].id, GX_AUTH_KEY_ID_LEN);
            if (revoked) revoked[got] = v[i].revoked_ns != 0;
            got++;
        }
        gx_auth_free(v);
        if (!next) break;
        assert_int_equal(n, q.limit); /* a page is short only at the end */
        assert_true(next > q.after);
        q.after = next;
        if (between) between(f, page, ctx);
    }
    return got;
}

/* The keys of m that match q, in order, must be exactly seen[0..got). */
static void expect_seen(const made *m, const gx_auth_key_query *q, char seen[][GX_AUTH_KEY_ID_LEN], int got) {
    int j = 0;
    for (int i = 0; i < m->n; i++) {
        if (!made_matches(m, i, q)) continue;
        if (j >= got) fail_msg("key %d (%s) missing: only %d listed", i, m->id[i], got);
        if (strcmp(seen[j], m->id[i])) fail_msg("listed #%d is %s, want key %d (%s)", j, seen[j], i, m->id[i]);
        j++;
    }
    assert_int_equal(got, j);
}

typedef struct churn {
    made *m;
    int base; /* keys made before the paging began */
} churn;

/* Between pages: two keys made (they sort after every key there), one key
 * already listed and one still to come revoked. */
static void churn_between(fx *f, int page, void *ctx) {
    churn *c = ctx;
    if (page > 20) return;
    make_key(f, c->m, page % 2 ? "pa" : "pb");
    make_key(f, c->m, "pa");
    revoke_made(f, c->m, page * 7);           /* listed on page 0..page */
    revoke_made(f, c->m, c->base - 1 - page); /* from the end: not listed yet */
}

/* GET /v1/keys pages through gx_auth_key_page: 250 keys of two tenants,
 * some revoked, in pages of 7 with every filter: each key once and in
 * creation order, also while keys are made and revoked between pages (a
 * key made meanwhile comes at the end; one revoked before its page shows
 * revoked); an exactly full last page says it is the last; bad limits. */
static void key_pages(void **st) {
    fx *f = *st;
    gx_error err;
    static made m;
    memset(&m, 0, sizeof m);
    for (int i = 0; i < 250; i++) make_key(f, &m, i % 3 ? "pa" : "pb");
    for (int i = 5; i < 250; i += 11) revoke_made(f, &m, i);
    for (int i = 0; i < 7; i++) make_key(f, &m, "pc"); /* exactly one page of 7 */
    static char seen[300][GX_AUTH_KEY_ID_LEN];
    int revoked[300];

    const char *tenants[] = {NULL, "pa", "pb", "pc", "nobody"};
    for (size_t t = 0; t < sizeof tenants / sizeof tenants[0]; t++) {
        for (int r = -1; r <= 1; r++) {
            gx_auth_key_query q = {.tenant = tenants[t], .revoked = r, .limit = 7};
            int got = page_all(f, q, seen, revoked, NULL, NULL);
            expect_seen(&m, &q, seen, got);
        }
    }
    /* one page of everything, and the pc keys' single page ends it */
    gx_auth_key_query q = {.limit = GX_AUTH_PAGE_MAX};
    assert_int_equal(page_all(f, q, seen, NULL, NULL, NULL), m.n);
    q = (gx_auth_key_query){.tenant = "pc", .limit = 7};
    gx_auth_key_info *v = NULL;
    size_t n = 0;
    uint64_t next = 1;
    TU_OK(gx_auth_key_page(f->k, &q, &v, &n, &next, &err), err);
    assert_int_equal(n, 7);
    assert_int_equal(next, 0);
    assert_string_equal(v[0].label, "paged");
    assert_int_equal(v[0].role, GX_ROLE_VIEWER);
    assert_true(v[0].created_ns > 0);
    gx_auth_free(v);
    /* past the end: empty */
    q = (gx_auth_key_query){.after = 100000, .limit = 5};
    TU_OK(gx_auth_key_page(f->k, &q, &v, &n, &next, &err), err);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_int_equal(next, 0);
    /* limits */
    size_t bad[] = {0, GX_AUTH_PAGE_MAX + 1};
    for (int i = 0; i < 2; i++) {
        q = (gx_auth_key_query){.limit = bad[i]};
        gx_error_clear(&err);
        assert_int_equal(gx_auth_key_page(f->k, &q, &v, &n, &next, &err), GX_EINVAL);
        assert_string_equal(err.field, "limit");
    }

    /* keys made and revoked between pages */
    int base = m.n;
    churn c = {&m, base};
    q = (gx_auth_key_query){.limit = 7};
    int got = page_all(f, q, seen, revoked, churn_between, &c);
    assert_true(m.n > base + 40);
    expect_seen(&m, &q, seen, got);
    for (int i = 0; i < got; i++)
        if (!strcmp(seen[i], m.id[base - 1])) assert_true(revoked[i]); /* revoked before its page */
    /* and after a restart the same order */
    reopen(f);
    got = page_all(f, q, seen, NULL, NULL, NULL);
    expect_seen(&m, &q, seen, got);
}

/* Every filter of a page is read along an index in seq order: no scan of
 * the table, no sort (a page costs its own rows, not every key's). */
static void key_page_plans(void **st) {
    fx *f = *st;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    for (int t = 0; t < 2; t++) {
        for (int r = -1; r <= 1; r++) {
            gx_auth_key_query q = {.tenant = t ? "acme" : NULL, .revoked = r, .limit = 7};
            char sql[GX__KEY_PAGE_SQL_MAX], eqp[GX__KEY_PAGE_SQL_MAX + 32];
            gx__auth_key_page_sql(&q, sql, sizeof sql);
            snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
            sqlite3_stmt *st2 = NULL;
            assert_int_equal(sqlite3_prepare_v2(db, eqp, -1, &st2, NULL), SQLITE_OK);
            int rows = 0;
            while (sqlite3_step(st2) == SQLITE_ROW) {
                const char *d = (const char *)sqlite3_column_text(st2, 3);
                print_message("tenant %d revoked %d: %s\n", t, r, d);
                if (strncmp(d, "SEARCH keys USING INDEX ", 24) || strstr(d, "TEMP B-TREE"))
                    fail_msg("%s\nis read as: %s", sql, d);
                rows++;
            }
            assert_int_equal(rows, 1);
            sqlite3_finalize(st2);
        }
    }
    sqlite3_close(db);
}

/* A key database of schema 1 (before keys had a position) is numbered in
 * (created_ns, id) order at open, its keys still verify, and a key made
 * after comes last. */
static void key_schema_upgrade(void **st) {
    fx *f = *st;
    gx_auth_keys_close(f->k);
    f->k = NULL;
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char path[320];
        snprintf(path, sizeof path, "%s%s", f->db, sfx[i]);
        unlink(path);
    }
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES(1);"
                                  "CREATE TABLE keys(id TEXT PRIMARY KEY, hash BLOB NOT NULL, tenant TEXT NOT NULL,"
                                  " role TEXT NOT NULL, label TEXT NOT NULL, created_ns INTEGER NOT NULL,"
                                  " expires_ns INTEGER NOT NULL, revoked_ns INTEGER NOT NULL,"
                                  " last_used_ns INTEGER NOT NULL) WITHOUT ROWID;"
                                  "CREATE INDEX keys_tenant ON keys(tenant);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    /* five keys; the order they were made in is by created_ns, then id */
    static const int64_t created[5] = {3000, 1000, 2000, 2000, 500};
    char secret[5][GX_AUTH_SECRET_LEN], id[5][GX_AUTH_KEY_ID_LEN];
    sqlite3_stmt *ins = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO keys VALUES(?1, ?2, 'old', 'admin', '', ?3, 0, 0, 0)",
                                        -1, &ins, NULL),
                     SQLITE_OK);
    gx_error err;
    for (int i = 0; i < 5; i++) {
        TU_OK(gx_auth_key_generate(secret[i], id[i], &err), err);
        unsigned char h[32];
        SHA256((const unsigned char *)secret[i], strlen(secret[i]), h);
        sqlite3_bind_text(ins, 1, id[i], -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, h, 32, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 3, created[i]);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
    int want[5] = {4, 1, 2, 3, 0};
    if (strcmp(id[2], id[3]) > 0) want[2] = 3, want[3] = 2; /* same created_ns: by id */

    TU_OK(gx_auth_keys_open(f->db, &f->k, &err), err);
    char s6[GX_AUTH_SECRET_LEN], id6[GX_AUTH_KEY_ID_LEN];
    TU_OK(gx_auth_key_create(f->k, "old", GX_ROLE_VIEWER, 0, "", s6, id6, &err), err);
    gx_auth_key_query q = {.limit = 2};
    static char seen[300][GX_AUTH_KEY_ID_LEN];
    assert_int_equal(page_all(f, q, seen, NULL, NULL, NULL), 6);
    for (int i = 0; i < 5; i++) assert_string_equal(seen[i], id[want[i]]);
    assert_string_equal(seen[5], id6);
    gx_auth_principal p;
    for (int i = 0; i < 5; i++) assert_int_equal(verify(f, secret[i], 0, &p), GX_OK);
    /* the in-memory list has the same order */
    gx_auth_key_info *v;
    size_t n;
    TU_OK(gx_auth_key_list(f->k, NULL, &v, &n, &err), err);
    assert_int_equal(n, 6);
    for (int i = 0; i < 6; i++) assert_string_equal(v[i].id, seen[i]);
    gx_auth_free(v);
    reopen(f);
    assert_int_equal(page_all(f, q, seen, NULL, NULL, NULL), 6);
    assert_string_equal(seen[5], id6);
}

/* ---- permissions -------------------------------------------------------------- */

/* The route x role table, written here a second time: a permission changes
 * only when both the module and this test say so. Cells: "-" refused,
 * "own" own tenant, "all" every tenant, "yes" (not per tenant), "pub" no
 * key needed. Columns: none (no key), viewer, submitter, operator, admin. */
static const struct cell_row {
    const char *method, *pattern;
    const char *c[5];
    int write; /* "all" also changes other tenants' state */
} expected[] = {
    {"POST", "/v1/jobs", {"-", "-", "own", "own", "own"}, 0},
    {"GET", "/v1/jobs", {"-", "own", "own", "all", "all"}, 0},
    {"POST", "/v1/jobs:batch", {"-", "-", "own", "own", "own"}, 0},
    {"GET", "/v1/jobs/{id}", {"-", "own", "own", "all", "all"}, 0},
    {"DELETE", "/v1/jobs/{id}", {"-", "-", "own", "all", "all"}, 1},
    {"GET", "/v1/jobs/{id}/result", {"-", "own", "own", "own", "all"}, 0},
    {"GET", "/v1/jobs/{id}/events", {"-", "own", "own", "all", "all"}, 0},
    {"POST", "/v1/jobs/{id}/requeue", {"-", "-", "-", "all", "all"}, 1},
    {"GET", "/v1/events", {"-", "own", "own", "all", "all"}, 0},
    {"POST", "/v1/blobs", {"-", "-", "own", "own", "own"}, 0},
    {"GET", "/v1/blobs/{id}", {"-", "own", "own", "own", "all"}, 0},
    {"GET", "/v1/kernels", {"-", "yes", "yes", "yes", "yes"}, 0},
    {"GET", "/v1/devices", {"-", "own", "own", "all", "all"}, 0}, /* a fault's job id: all only */
    {"POST", "/v1/devices/{id}/drain", {"-", "-", "-", "yes", "yes"}, 0},
    {"DELETE", "/v1/devices/{id}/drain", {"-", "-", "-", "yes", "yes"}, 0},
    {"GET", "/v1/keys", {"-", "-", "-", "-", "all"}, 0},
    {"POST", "/v1/keys", {"-", "-", "-", "-", "all"}, 1},
    {"DELETE", "/v1/keys/{id}", {"-", "-", "-", "-", "all"}, 1},
    {"GET", "/v1/tenants", {"-", "-", "-", "-", "all"}, 0},
    {"POST", "/v1/tenants", {"-", "-", "-", "-", "all"}, 1},
    {"GET", "/v1/tenants/{t}/usage", {"-", "own", "own", "all", "all"}, 0},
    {"GET", "/v1/whoami", {"-", "yes", "yes", "yes", "yes"}, 0},
    {"GET", "/v1/audit", {"-", "-", "-", "-", "yes"}, 0},
    {"GET", "/v1/admin/faults", {"-", "-", "-", "-", "yes"}, 0},
    {"POST", "/v1/admin/faults", {"-", "-", "-", "-", "yes"}, 0},
    {"DELETE", "/v1/admin/faults", {"-", "-", "-", "-", "yes"}, 0},
    {"GET", "/healthz", {"pub", "pub", "pub", "pub", "pub"}, 0},
    {"GET", "/readyz", {"pub", "pub", "pub", "pub", "pub"}, 0},
    {"GET", "/metrics", {"-", "-", "-", "yes", "yes"}, 0},
    {"GET", "/dashboard", {"pub", "pub", "pub", "pub", "pub"}, 0},
    {"GET", "/dashboard/app.js", {"pub", "pub", "pub", "pub", "pub"}, 0},
    {"GET", "/dashboard/style.css", {"pub", "pub", "pub", "pub", "pub"}, 0},
};
#define NEXPECTED (sizeof expected / sizeof expected[0])

static void permission_every_cell(void **st) {
    (void)st;
    size_t nrules;
    gx_auth_rules(&nrules);
    assert_int_equal(nrules, NEXPECTED); /* no rule this test does not know */
    int cells = 0;
    for (size_t i = 0; i < NEXPECTED; i++) {
        const struct cell_row *e = &expected[i];
        for (int role = GX_ROLE_NONE; role <= GX_ROLE_ADMIN; role++) {
            const char *want = e->c[role];
            int cr = -1, cw = -1;
            gx_error err;
            gx_error_clear(&err);
            int rc = gx_auth_allowed(role, e->method, e->pattern, &cr, &cw, &err);
            if (!strcmp(want, "-")) {
                if (rc != GX_EPERM)
                    fail_msg("%s %s as %s: allowed, expected refused", e->method, e->pattern,
                             gx_auth_role_name(role));
                assert_int_equal(cr, 0);
                assert_int_equal(cw, 0);
                assert_non_null(strstr(err.message, gx_auth_role_name(role)));
            } else {
                if (rc != 0)
                    fail_msg("%s %s as %s: refused (%s), expected %s", e->method, e->pattern,
                             gx_auth_role_name(role), err.message, want);
                int all = !strcmp(want, "all");
                if (cr != all || cw != (all && e->write))
                    fail_msg("%s %s as %s: cross read %d write %d, expected %s", e->method, e->pattern,
                             gx_auth_role_name(role), cr, cw, want);
            }
            cells++;
        }
        /* "yes" (not per tenant) and "own" are told apart by the rule */
        const gx_auth_rule *rule = gx_auth_rule_find(e->method, e->pattern);
        assert_non_null(rule);
        int per_tenant = 0, global = 0;
        for (int role = GX_ROLE_VIEWER; role <= GX_ROLE_ADMIN; role++) {
            per_tenant |= !strcmp(e->c[role], "own") || !strcmp(e->c[role], "all");
            global |= !strcmp(e->c[role], "yes");
        }
        assert_false(per_tenant && global);
        if (global) assert_int_equal(rule->any, GX_ROLE_NONE);
        if (per_tenant) assert_int_not_equal(rule->any, GX_ROLE_NONE);
        /* who needs a key */
        int pub = !strcmp(e->c[GX_ROLE_NONE], "pub");
        assert_int_equal(gx_auth_needs_key(e->method, e->pattern, 0), !pub);
        int metrics = !strcmp(e->pattern, "/metrics");
        assert_int_equal(gx_auth_needs_key(e->method, e->pattern, 1), !pub && !metrics);
    }
    assert_int_equal(cells, (int)NEXPECTED * 5);
    print_message("checked %d role x route cells\n", cells);

    /* unknown routes and methods are closed to everyone */
    gx_error err;
    assert_int_equal(gx_auth_allowed(GX_ROLE_ADMIN, "PUT", "/v1/jobs", NULL, NULL, &err), GX_EPERM);
    assert_int_equal(gx_auth_allowed(GX_ROLE_ADMIN, "GET", "/v1/secret", NULL, NULL, &err), GX_EPERM);
    assert_int_equal(gx_auth_allowed(GX_ROLE_ADMIN, NULL, NULL, NULL, NULL, &err), GX_EPERM);
    assert_int_equal(gx_auth_allowed(99, "GET", "/v1/jobs", NULL, NULL, &err), GX_EPERM);
    assert_int_equal(gx_auth_allowed(-1, "GET", "/healthz", NULL, NULL, &err), GX_EPERM);
    assert_int_equal(gx_auth_needs_key("GET", NULL, 1), 1);
    assert_int_equal(gx_auth_needs_key("GET", "/v1/secret", 1), 1);
    assert_int_equal(gx_auth_allowed(GX_ROLE_VIEWER, "POST", "/v1/jobs", NULL, NULL, &err), GX_EPERM);
    assert_string_equal(err.message, "role viewer may not POST /v1/jobs: it needs submitter or above");
}

/* Every route the server serves has a rule. */
static void permission_covers_routes(void **st) {
    (void)st;
    assert_true(gx__nroutes > 0);
    for (int i = 0; i < gx__nroutes; i++)
        if (!gx_auth_rule_find(gx__routes[i].method, gx__routes[i].pattern))
            fail_msg("route %s %s has no permission rule in src/auth/roles.c", gx__routes[i].method,
                     gx__routes[i].pattern);
}

static void role_names(void **st) {
    (void)st;
    for (int r = GX_ROLE_VIEWER; r <= GX_ROLE_ADMIN; r++) {
        assert_int_equal(gx_auth_role_parse(gx_auth_role_name(r)), r);
        assert_true(strlen(gx_auth_role_name(r)) < sizeof(((gx_req_ctx *)0)->role));
    }
    assert_int_equal(gx_auth_role_parse("none"), GX_EINVAL);
    assert_int_equal(gx_auth_role_parse("Admin"), GX_EINVAL);
    assert_int_equal(gx_auth_role_parse(NULL), GX_EINVAL);
    assert_string_equal(gx_auth_role_name(42), "?");
    assert_string_equal(gx_auth_reason_name(GX_AUTH_EXPIRED), "expired");
    assert_string_equal(gx_auth_reason_name(-1), "?");
    assert_true(GX_AUTH_KEY_ID_LEN <= sizeof(((gx_req_ctx *)0)->key_id));
}

/* docs/security.md holds exactly the generated table. */
static void docs_table(void **st) {
    (void)st;
    size_t need = gx_auth_table_markdown(NULL, 0);
    char *gen = malloc(need + 1);
    assert_int_equal(gx_auth_table_markdown(gen, need + 1), need);
    assert_int_equal(strlen(gen), need);
    char small[16];
    assert_int_equal(gx_auth_table_markdown(small, sizeof small), need);
    assert_int_equal(strlen(small), 15);

    tu_doc_block("docs/security.md", "ROUTE TABLE", gen, need, "src/auth/roles.c (test_auth)");
    free(gen);
}

/* ---- rate limits -------------------------------------------------------------------- */

static int64_t fake_now;
static int64_t fake_clock(void *ctx) {
    (void)ctx;
    return fake_now;
}

static void limiter_bucket(void **st) {
    (void)st;
    gx_auth_limiter_config cfg = {.rate = 10, .burst = 5, .clock = fake_clock};
    gx_auth_limiter *l;
    gx_error err;
    fake_now = 1000000000;
    TU_OK(gx_auth_limiter_create(&cfg, &l, &err), err);
    double ra = -1;
    for (int i = 0; i < 5; i++) assert_int_equal(gx_auth_limiter_take(l, "k1", &ra), 0);
    assert_int_equal(gx_auth_limiter_take(l, "k1", &ra), GX_ELIMIT);
    assert_float_equal(ra, 0.1, 1e-9);
    /* another key has its own bucket */
    assert_int_equal(gx_auth_limiter_take(l, "k2", &ra), 0);
    /* half a token later: still limited, 50 ms to go */
    fake_now += 50000000;
    assert_int_equal(gx_auth_limiter_take(l, "k1", &ra), GX_ELIMIT);
    assert_float_equal(ra, 0.05, 1e-9);
    fake_now += 50000000;
    assert_int_equal(gx_auth_limiter_take(l, "k1", &ra), 0);
    assert_float_equal(ra, 0, 0);
    assert_int_equal(gx_auth_limiter_take(l, "k1", &ra), GX_ELIMIT);
    /* a long rest refills to burst, not beyond */
    fake_now += 3600LL * 1000000000;
    for (int i = 0; i < 5; i++) assert_int_equal(gx_auth_limiter_take(l, "k1", NULL), 0);
    assert_int_equal(gx_auth_limiter_take(l, "k1", NULL), GX_ELIMIT);
    /* a clock that steps back takes nothing away and gives nothing */
    fake_now -= 1000000000;
    assert_int_equal(gx_auth_limiter_take(l, "k1", &ra), GX_ELIMIT);
    assert_true(ra > 0);
    /* sustained: exactly rate per second */
    fake_now += 2000000000;
    int ok = 0;
    for (int ms = 0; ms < 10000; ms++) {
        fake_now += 1000000;
        ok += gx_auth_limiter_take(l, "k3", NULL) == 0;
    }
    assert_true(ok >= 100 + 5 - 1 && ok <= 100 + 5 + 1);
    gx_auth_limiter_destroy(l);

    cfg.rate = 0;
    assert_int_equal(gx_auth_limiter_create(&cfg, &l, &err), GX_EINVAL);
    cfg.rate = 1;
    cfg.burst = 0.5;
    assert_int_equal(gx_auth_limiter_create(&cfg, &l, &err), GX_EINVAL);
}

/* Many keys: a drained bucket is never forgotten; full ones are. */
static void limiter_many_keys(void **st) {
    (void)st;
    gx_auth_limiter_config cfg = {.rate = 1, .burst = 1, .max_keys = 256, .clock = fake_clock};
    gx_auth_limiter *l;
    gx_error err;
    fake_now = 5000000000;
    TU_OK(gx_auth_limiter_create(&cfg, &l, &err), err);
    assert_int_equal(gx_auth_limiter_take(l, "victim", NULL), 0);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "ip:10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(gx_auth_limiter_take(l, key, NULL), 0);
    }
    assert_int_equal(gx_auth_limiter_take(l, "victim", NULL), GX_ELIMIT);
    fake_now += 10000000000LL; /* every bucket full again: sweeps drop them */
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        assert_int_equal(gx_auth_limiter_take(l, key, NULL), 0);
    }
    assert_int_equal(gx_auth_limiter_take(l, "victim", NULL), 0);
    assert_int_equal(gx_auth_limiter_take(l, "victim", NULL), GX_ELIMIT);
    gx_auth_limiter_destroy(l);
}

typedef struct lth {
    gx_auth_limiter *l;
    int ok;
} lth;

static void *limiter_main(void *arg) {
    lth *t = arg;
    for (int i = 0; i < 10000; i++) t->ok += gx_auth_limiter_take(t->l, "shared", NULL) == 0;
    return NULL;
}

static void limiter_threads(void **st) {
    (void)st;
    gx_auth_limiter_config cfg = {.rate = 1e-6, .burst = 1000};
    gx_auth_limiter *l;
    gx_error err;
    TU_OK(gx_auth_limiter_create(&cfg, &l, &err), err);
    pthread_t th[4];
    lth t[4] = {{l, 0}, {l, 0}, {l, 0}, {l, 0}};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, limiter_main, &t[i]);
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok += t[i].ok;
    }
    assert_int_equal(ok, 1000);
    gx_auth_limiter_destroy(l);
}

/* ---- audit ------------------------------------------------------------------------ */

static gx_audit *audit_open(fx *f, int sync_ms) {
    gx_audit_config cfg = {.path = f->log, .sync_ms = sync_ms};
    gx_audit *a = NULL;
    gx_error err;
    TU_OK(gx_audit_open(&cfg, &a, &err), err);
    return a;
}

static void audit_add(gx_audit *a, int i) {
    char target[32], detail[64];
    snprintf(target, sizeof target, "job/%d", i);
    snprintf(detail, sizeof detail, "kernel saxpy@1, record %d", i);
    gx_audit_record r = {.key_id = "0123456789abcdef", .tenant = "acme", .role = "submitter",
                         .remote = "10.0.0.7", .action = "job.submit", .target = target,
                         .outcome = "ok", .detail = detail};
    gx_error err;
    uint64_t seq = 0;
    TU_OK(gx_audit_append(a, &r, &seq, &err), err);
    assert_true(seq > 0);
}

/* Records first .. first+n-1 in one gx_audit_append_n. */
static void audit_add_n(gx_audit *a, int first, int n) {
    char target[8][32], detail[8][64];
    gx_audit_record r[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        snprintf(target[i], sizeof target[i], "job/%d", first + i);
        snprintf(detail[i], sizeof detail[i], "kernel saxpy@1, record %d", first + i);
        r[i] = (gx_audit_record){.key_id = "0123456789abcdef", .tenant = "acme", .role = "submitter",
                                 .remote = "10.0.0.7", .action = "job.submit", .target = target[i],
                                 .outcome = "ok", .detail = detail[i]};
    }
    gx_error err;
    uint64_t seq = 0;
    TU_OK(gx_audit_append_n(a, r, (size_t)n, &seq, &err), err);
    assert_int_equal(seq, (uint64_t)(first + n - 1));
}

/* The log as lines (each with its "\n"). */
typedef struct lines {
    char *buf;
    char *l[256];
    size_t len[256];
    int n;
} lines;

static void lines_read(fx *f, lines *ls) {
    size_t len;
    ls->buf = slurp(f->log, &len);
    assert_non_null(ls->buf);
    ls->n = 0;
    for (char *p = ls->buf; p < ls->buf + len;) {
        char *nl = memchr(p, '\n', (size_t)(ls->buf + len - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(ls->buf + len - p);
        assert_true(ls->n < 256);
        ls->l[ls->n] = p;
        ls->len[ls->n++] = n;
        p += n;
    }
}

static void lines_write(fx *f, lines *ls) {
    FILE *fp = fopen(f->log, "wb");
    assert_non_null(fp);
    for (int i = 0; i < ls->n; i++) fwrite(ls->l[i], 1, ls->len[i], fp);
    fclose(fp);
}

static void expect_problem(fx *f, int problem, uint64_t line) {
    gx_audit_report rep;
    gx_error err;
    int rc = gx_audit_verify(f->log, &rep, &err);
    if (rc != GX_EFORMAT || rep.problem != problem || rep.line != line)
        fail_msg("verify: rc %s, problem %s at line %llu (%s); expected %s at line %llu", gx_err_name(rc),
                 gx_audit_problem_name(rep.problem), (unsigned long long)rep.line, rep.message,
                 gx_audit_problem_name(problem), (unsigned long long)line);
    print_message("  %s\n", rep.message);
}

static void expect_intact(fx *f, uint64_t records) {
    gx_audit_report rep;
    gx_error err;
    int rc = gx_audit_verify(f->log, &rep, &err);
    if (rc) fail_msg("verify: %s: %s", gx_err_name(rc), rep.message);
    assert_int_equal(rep.problem, GX_AUDIT_INTACT);
    assert_int_equal(rep.last_seq, records);
    assert_int_equal(rep.records, records);
}

#define N_AUDIT 20

static void audit_chain_intact(void **st) {
    fx *f = *st;
    gx_audit *a = audit_open(f, -1);
    uint64_t seq;
    char head[65];
    gx_audit_head(a, &seq, head);
    assert_int_equal(seq, 0);
    /* one at a time, then in groups (one write each), then one again:
     * the same chain */
    for (int i = 1; i <= 10; i++) audit_add(a, i);
    audit_add_n(a, 11, 1);
    audit_add_n(a, 12, 3);
    audit_add_n(a, 15, 5);
    gx_error e0;
    assert_int_equal(gx_audit_append_n(a, NULL, 0, NULL, &e0), 0);
    audit_add(a, 20);
    gx_audit_head(a, &seq, head);
    assert_int_equal(seq, N_AUDIT);
    gx_audit_close(a);
    expect_intact(f, N_AUDIT);
    gx_audit_report rep;
    gx_error err;
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    assert_string_equal(rep.head, head);

    /* each line is JSON with the members in order, and chained */
    lines ls;
    lines_read(f, &ls);
    assert_int_equal(ls.n, N_AUDIT);
    char prev[65];
    memset(prev, '0', 64);
    prev[64] = 0;
    for (int i = 0; i < ls.n; i++) {
        json_error_t je;
        json_t *j = json_loadb(ls.l[i], ls.len[i], 0, &je);
        if (!j) fail_msg("line %d: %s", i + 1, je.text);
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), i + 1);
        assert_string_equal(json_string_value(json_object_get(j, "prev")), prev);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "actor"), "tenant")), "acme");
        assert_string_equal(json_string_value(json_object_get(j, "action")), "job.submit");
        char want[32];
        snprintf(want, sizeof want, "job/%d", i + 1);
        assert_string_equal(json_string_value(json_object_get(j, "target")), want);
        const char *t = json_string_value(json_object_get(j, "time"));
        assert_non_null(t);
        assert_int_equal(strlen(t), 30); /* 2026-11-23T04:25:22.123456789Z */
        snprintf(prev, sizeof prev, "%s", json_string_value(json_object_get(j, "hash")));
        json_decref(j);
    }
    assert_string_equal(prev, head);
    /* the hash, computed here from its definition: SHA-256(prev + the
     * record without its hash member) */
    char *cut = strstr(ls.l[1], ",\"hash\":\"");
    assert_non_null(cut);
    size_t clen = (size_t)(cut - ls.l[1]);
    char *canon = malloc(64 + clen + 2);
    memcpy(canon, strstr(ls.l[1], "\"prev\":\"") + 8, 64);
    memcpy(canon + 64, ls.l[1], clen);
    canon[64 + clen] = '}';
    unsigned char h[32];
    SHA256((const unsigned char *)canon, 64 + clen + 1, h);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", h[i]);
    assert_memory_equal(hex, cut + 9, 64);
    free(canon);
    free(ls.buf);
    /* the file is the owner's only */
    struct stat sb;
    assert_int_equal(stat(f->log, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
}

static void audit_write_n(fx *f, int n) {
    gx_audit *a = audit_open(f, -1);
    for (int i = 1; i <= n; i++) audit_add(a, i);
    gx_audit_close(a);
}

static void audit_changed(void **st) {
    fx *f = *st;
    int ks[] = {1, 7, N_AUDIT};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int k = ks[t];
        /* a byte of the detail, then a byte of the hash, then of prev */
        int where[] = {0, 1, 2};
        for (int w = 0; w < 3; w++) {
            unlink(f->log);
            audit_write_n(f, N_AUDIT);
            lines ls;
            lines_read(f, &ls);
            char *l = ls.l[k - 1];
            size_t len = ls.len[k - 1];
            char *p;
            if (where[w] == 0)
                p = strstr(l, "record ") + 7;
            else if (where[w] == 1)
                p = l + len - 10; /* inside the hash */
            else
                p = strstr(l, "\"prev\":\"") + 20;
            *p = *p == '1' ? '2' : '1';
            lines_write(f, &ls);
            free(ls.buf);
            expect_problem(f, GX_AUDIT_CHANGED, (uint64_t)k);
        }
    }
    /* the seq itself */
    unlink(f->log);
    audit_write_n(f, N_AUDIT);
    lines ls;
    lines_read(f, &ls);
    ls.l[4][7] = '9'; /* {"seq":5 -> 9 */
    lines_write(f, &ls);
    free(ls.buf);
    expect_problem(f, GX_AUDIT_CHANGED, 5);
    /* broken JSON structure */
    unlink(f->log);
    audit_write_n(f, N_AUDIT);
    lines_read(f, &ls);
    ls.l[2][0] = '[';
    lines_write(f, &ls);
    free(ls.buf);
    expect_problem(f, GX_AUDIT_MALFORMED, 3);
}

static void audit_removed(void **st) {
    fx *f = *st;
    int ks[] = {1, 9, N_AUDIT - 1};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int k = ks[t];
        unlink(f->log);
        audit_write_n(f, N_AUDIT);
        lines ls;
        lines_read(f, &ls);
        memmove(&ls.l[k - 1], &ls.l[k], (size_t)(ls.n - k) * sizeof ls.l[0]);
        memmove(&ls.len[k - 1], &ls.len[k], (size_t)(ls.n - k) * sizeof ls.len[0]);
        ls.n--;
        lines_write(f, &ls);
        free(ls.buf);
        expect_problem(f, GX_AUDIT_REMOVED, (uint64_t)k);
        gx_audit_report rep;
        gx_error err;
        gx_audit_verify(f->log, &rep, &err);
        assert_int_equal(rep.seq, (uint64_t)k);
    }
    /* two in a row */
    unlink(f->log);
    audit_write_n(f, N_AUDIT);
    lines ls;
    lines_read(f, &ls);
    memmove(&ls.l[4], &ls.l[6], (size_t)(ls.n - 6) * sizeof ls.l[0]);
    memmove(&ls.len[4], &ls.len[6], (size_t)(ls.n - 6) * sizeof ls.len[0]);
    ls.n -= 2;
    lines_write(f, &ls);
    free(ls.buf);
    expect_problem(f, GX_AUDIT_REMOVED, 5);
}

static void audit_reordered(void **st) {
    fx *f = *st;
    int ks[] = {1, 10, N_AUDIT - 1};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int k = ks[t];
        unlink(f->log);
        audit_write_n(f, N_AUDIT);
        lines ls;
        lines_read(f, &ls);
        char *tl = ls.l[k - 1];
        size_t tn = ls.len[k - 1];
        ls.l[k - 1] = ls.l[k], ls.len[k - 1] = ls.len[k];
        ls.l[k] = tl, ls.len[k] = tn;
        lines_write(f, &ls);
        free(ls.buf);
        expect_problem(f, GX_AUDIT_REORDERED, (uint64_t)k);
    }
    /* a record repeated */
    unlink(f->log);
    audit_write_n(f, N_AUDIT);
    lines ls;
    lines_read(f, &ls);
    ls.l[ls.n] = ls.l[3], ls.len[ls.n] = ls.len[3];
    ls.n++;
    lines_write(f, &ls);
    free(ls.buf);
    expect_problem(f, GX_AUDIT_REORDERED, N_AUDIT + 1);
}

/* A forged record with a valid hash of its own but the wrong prev. */
static void audit_broken(void **st) {
    fx *f = *st;
    audit_write_n(f, 5);
    char keep[sizeof f->log];
    memcpy(keep, f->log, sizeof keep);
    /* the same records written again differ in time: same seqs, other hashes */
    snprintf(f->log, sizeof f->log, "%s/other.log", f->dir);
    audit_write_n(f, 5);
    lines o;
    lines_read(f, &o);
    memcpy(f->log, keep, sizeof keep);
    lines ls;
    lines_read(f, &ls);
    ls.l[2] = o.l[2], ls.len[2] = o.len[2]; /* record 3 from the other log */
    lines_write(f, &ls);
    free(ls.buf);
    free(o.buf);
    expect_problem(f, GX_AUDIT_BROKEN, 3);
}

/* A write that fails half way (a full disk: here the file size limit)
 * is cut back to the last whole record, and the log takes the next
 * append once writing works again; the chain stays intact. (A failed
 * write used to stop the log for good.) */
static void audit_write_fails_then_recovers(void **st) {
    fx *f = *st;
    gx_audit *a = audit_open(f, 0);
    for (int i = 1; i <= 3; i++) audit_add(a, i);
    struct stat sb;
    assert_int_equal(stat(f->log, &sb), 0);
    off_t size = sb.st_size;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)size + 100; /* a record is longer: a torn write */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    gx_audit_record r = {.key_id = "0123456789abcdef", .tenant = "acme", .role = "submitter", .remote = "10.0.0.7",
                         .action = "job.submit", .target = "job/x", .outcome = "ok", .detail = "lost"};
    gx_error err;
    uint64_t seq = 0;
    assert_int_equal(gx_audit_append(a, &r, &seq, &err), GX_EIO);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(stat(f->log, &sb), 0);
    assert_int_equal(sb.st_size, size); /* the torn part is gone */
    audit_add(a, 4);                     /* and the log goes on */
    gx_audit_close(a);
    expect_intact(f, 4);
}

static void audit_reopen_and_torn(void **st) {
    fx *f = *st;
    audit_write_n(f, 10);
    gx_audit *a = audit_open(f, 0);
    uint64_t seq;
    gx_audit_head(a, &seq, NULL);
    assert_int_equal(seq, 10);
    for (int i = 11; i <= 15; i++) audit_add(a, i);
    gx_audit_close(a);
    expect_intact(f, 15);

    /* a crash in the middle of a write */
    size_t len;
    char *b = slurp(f->log, &len);
    FILE *fp = fopen(f->log, "ab");
    fwrite(b, 1, 40, fp);
    fclose(fp);
    free(b);
    expect_problem(f, GX_AUDIT_TORN, 16);
    a = audit_open(f, 0); /* cuts it, says so */
    gx_audit_head(a, &seq, NULL);
    assert_int_equal(seq, 16);
    audit_add(a, 17);
    gx_audit_close(a);
    expect_intact(f, 17);
    lines ls;
    lines_read(f, &ls);
    assert_non_null(strstr(ls.l[15], "\"action\":\"audit.recover\""));
    assert_non_null(strstr(ls.l[15], "cut 40 bytes"));
    free(ls.buf);

    /* a changed last record: open refuses to continue the chain */
    lines_read(f, &ls);
    char *p = strstr(ls.l[16], "record ") + 7;
    *p = 'X';
    lines_write(f, &ls);
    free(ls.buf);
    gx_audit_config cfg = {.path = f->log};
    gx_error err;
    a = NULL;
    assert_int_equal(gx_audit_open(&cfg, &a, &err), GX_EFORMAT);
    assert_null(a);

    /* a file with only a torn line */
    unlink(f->log);
    spill(f->log, "{\"seq\":1,\"ti", 12);
    a = audit_open(f, -1);
    audit_add(a, 2);
    gx_audit_close(a);
    expect_intact(f, 2);

    /* errors */
    gx_audit_report rep;
    assert_int_equal(gx_audit_verify("/nonexistent/audit.log", &rep, &err), GX_EIO);
    cfg.path = "/nonexistent/audit.log";
    assert_int_equal(gx_audit_open(&cfg, &a, &err), GX_EIO);
    /* empty file: intact, nothing in it */
    unlink(f->log);
    spill(f->log, "", 0);
    expect_intact(f, 0);
}

/* Hostile field contents stay one valid line each. */
static void audit_escaping(void **st) {
    fx *f = *st;
    gx_audit *a = audit_open(f, -1);
    char *big = malloc(20000);
    memset(big, 'q', 19999);
    big[19999] = '\0';
    const char *nasty = "quote\" back\\slash\nnewline\ttab \x01\x7f \xc3\xa9t\xc3\xa9 bad\xff\xfe \xe2\x82";
    gx_audit_record r = {.key_id = nasty, .tenant = NULL, .role = "", .remote = big, .action = "x",
                         .target = nasty, .outcome = "ok", .detail = big};
    gx_error err;
    TU_OK(gx_audit_append(a, &r, NULL, &err), err);
    r.detail = nasty;
    TU_OK(gx_audit_append(a, &r, NULL, &err), err);
    gx_audit_close(a);
    free(big);
    expect_intact(f, 2);
    lines ls;
    lines_read(f, &ls);
    assert_int_equal(ls.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(ls.len[i] < 16384);
        json_error_t je;
        json_t *j = json_loadb(ls.l[i], ls.len[i], 0, &je);
        if (!j) fail_msg("line %d: %s", i + 1, je.text);
        const char *k = json_string_value(json_object_get(json_object_get(j, "actor"), "key"));
        assert_non_null(k);
        assert_non_null(strstr(k, "quote\" back\\slash\nnewline\ttab \x01\x7f \xc3\xa9t\xc3\xa9 bad"));
        assert_non_null(strstr(k, "\xef\xbf\xbd")); /* U+FFFD for the bad bytes */
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "actor"), "tenant")), "");
        assert_int_equal(strlen(json_string_value(json_object_get(j, "remote"))), 1024);
        json_decref(j);
    }
    free(ls.buf);
}

typedef struct ath {
    gx_audit *a;
    int base;
    int grow;
} ath;

/* 100 appends; with grow, every 7th is a group of 3 records whose detail
 * grows (up to 4 KiB), so that the shared line buffer is reallocated while
 * other appenders wait for a sync (a rotation's wait once wrote into the
 * buffer another appender had freed). */
static void *audit_main(void *arg) {
    ath *t = arg;
    for (int i = 0; i < 100; i++) {
        if (!t->grow || i % 7) {
            audit_add(t->a, t->base + i);
            continue;
        }
        char detail[4096];
        size_t dl = (size_t)(t->base / 1000 + 1) * (size_t)i * 9 % (sizeof detail - 1);
        memset(detail, 'd', dl);
        detail[dl] = '\0';
        gx_audit_record r[3];
        for (int k = 0; k < 3; k++)
            r[k] = (gx_audit_record){.action = "job.submit", .target = "job/1", .outcome = "ok", .detail = detail};
        gx_error err;
        TU_OK(gx_audit_append_n(t->a, r, 3, NULL, &err), err);
    }
    return NULL;
}

/* Four threads append 100 times each to a, at once (records: 400, or 520
 * with grow). */
static void audit_threads_grow(gx_audit *a, int grow) {
    pthread_t th[4];
    ath t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (ath){a, i * 1000, grow};
        pthread_create(&th[i], NULL, audit_main, &t[i]);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
}

static void audit_threads(gx_audit *a) { audit_threads_grow(a, 0); }

/* Concurrent appends, every record synced (one fdatasync shared by many)
 * and synced by time. */
static void audit_concurrent(void **st) {
    fx *f = *st;
    int modes[] = {0, 5};
    for (int m = 0; m < 2; m++) {
        unlink(f->log);
        gx_audit *a = audit_open(f, modes[m]);
        audit_threads(a);
        if (modes[m] > 0) usleep(20000); /* let the sync thread run once */
        gx_audit_close(a);
        expect_intact(f, 400);
    }
}

/* ---- audit rotation ------------------------------------------------------------------ */

#define ROT_MAX 2000 /* bytes: about five records a file */

static gx_audit *audit_open_rot(const char *path, uint64_t max_bytes, int keep) {
    gx_audit_config cfg = {.path = path, .sync_ms = 0, .max_bytes = max_bytes, .keep = keep};
    gx_audit *a = NULL;
    gx_error err;
    TU_OK(gx_audit_open(&cfg, &a, &err), err);
    return a;
}

static void rot_name(const char *log, uint64_t first, char *out, size_t cap) {
    assert_true(strlen(log) + 22 < cap);
    snprintf(out, cap, "%.300s.%020llu", log, (unsigned long long)first);
}

/* The rotated files beside log, ascending: their numbers in nums (at most
 * 64); how many. */
static int rot_list(const char *log, uint64_t nums[64]) {
    int n = 0;
    for (uint64_t s = 1; s < 2000 && n < 64; s++) {
        char name[400];
        rot_name(log, s, name, sizeof name);
        if (access(name, F_OK) == 0) nums[n++] = s;
    }
    return n;
}

/* Records 1..n (one at a time) and then a group of 5, into log. */
static gx_audit *rot_write(const char *log, int n, int keep) {
    gx_audit *a = audit_open_rot(log, ROT_MAX, keep);
    for (int i = 1; i <= n; i++) audit_add(a, i);
    return a;
}

/* A field of a line: "seq" (its number) or the 64 hex of "prev"/"hash". */
static uint64_t line_seq_of(const char *l) { return strtoull(l + 7, NULL, 10); }

static void rot_expect(const char *log, int rc_want, int problem, const char *file_end, uint64_t line) {
    gx_audit_report rep;
    gx_error err;
    int rc = gx_audit_verify(log, &rep, &err);
    print_message("  %s\n", rep.message);
    if (rc != rc_want || (rc && (rep.problem != problem || rep.line != line)))
        fail_msg("verify: rc %s, problem %s at line %llu of %s (%s); expected %s at line %llu of ...%s",
                 gx_err_name(rc), gx_audit_problem_name(rep.problem), (unsigned long long)rep.line, rep.file,
                 rep.message, gx_audit_problem_name(problem), (unsigned long long)line, file_end);
    if (rc) {
        size_t fl = strlen(rep.file), el = strlen(file_end);
        assert_true(fl >= el && !strcmp(rep.file + fl - el, file_end));
    }
}

/* Past max_bytes the file is renamed audit.log.<first seq> and a new one
 * begun with an audit.rotate record chained to the last record before; a
 * group of records is never split; verify follows the chain through every
 * file. (Without rotation the one file grew without bound.) */
static void audit_rotate_chain(void **st) {
    fx *f = *st;
    gx_audit *a = rot_write(f->log, 40, 0);
    {   /* a group: one append, one file */
        gx_audit_record r[5];
        char target[5][32];
        for (int i = 0; i < 5; i++) {
            snprintf(target[i], sizeof target[i], "job/%d", 100 + i);
            r[i] = (gx_audit_record){.key_id = "0123456789abcdef", .tenant = "acme", .action = "job.submit",
                                     .target = target[i], .outcome = "ok", .detail = "a group of five"};
        }
        gx_error e;
        TU_OK(gx_audit_append_n(a, r, 5, NULL, &e), e);
    }
    gx_audit_stats as;
    gx_audit_stats_get(a, &as);
    uint64_t seq;
    char head[65];
    gx_audit_head(a, &seq, head);
    gx_audit_close(a);
    uint64_t nums[64];
    int nf = rot_list(f->log, nums);
    print_message("  %d rotated files, %llu records, %llu bytes\n", nf, (unsigned long long)seq,
                  (unsigned long long)as.bytes);
    assert_true(nf >= 8);
    assert_int_equal(nums[0], 1);
    assert_int_equal(as.rotations, (uint64_t)nf);
    assert_int_equal(as.files, (uint64_t)nf + 1);
    /* each file: under the limit, named by its first seq, chained to the
     * file before it by an audit.rotate record */
    char last_hash[65] = "";
    uint64_t next = 1, total = 0, bytes = 0;
    int group_file = -1;
    for (int i = 0; i <= nf; i++) {
        char name[400];
        if (i < nf) rot_name(f->log, nums[i], name, sizeof name);
        else snprintf(name, sizeof name, "%s", f->log);
        size_t len;
        char *b = slurp(name, &len);
        assert_non_null(b);
        bytes += len;
        assert_true(len <= ROT_MAX || strstr(b, "\"target\":\"job/100\"")); /* a group is not split */
        struct stat sb;
        assert_int_equal(stat(name, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
        int k = 0;
        for (char *l = b; l < b + len; l = strchr(l, '\n') + 1, k++) {
            assert_int_equal(line_seq_of(l), next);
            if (k == 0 && i < nf) assert_int_equal(nums[i], next);
            if (k == 0 && i > 0) {
                assert_non_null(strstr(l, "\"action\":\"audit.rotate\""));
                assert_memory_equal(strstr(l, "\"prev\":\"") + 8, last_hash, 64);
            }
            if (strstr(l, "\"target\":\"job/100\"")) group_file = i;
            if (strstr(l, "\"target\":\"job/104\"")) assert_int_equal(group_file, i);
            memcpy(last_hash, strstr(l, "\"hash\":\"") + 8, 64);
            last_hash[64] = '\0';
            next++, total++;
        }
        free(b);
    }
    assert_true(group_file >= 0);
    assert_int_equal(next - 1, seq);
    assert_string_equal(last_hash, head);
    assert_int_equal(bytes, as.bytes);
    gx_audit_report rep;
    gx_error err;
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    print_message("  %s\n", rep.message);
    assert_int_equal(rep.last_seq, seq);
    assert_int_equal(rep.records, total);
    assert_int_equal(rep.first_seq, 1);
    assert_int_equal(rep.files, (unsigned)nf + 1);
    assert_string_equal(rep.head, head);
    /* reopened, the chain goes on: the live file (the group's) is full,
     * so in a new one, after its audit.rotate record */
    a = audit_open_rot(f->log, ROT_MAX, 0);
    audit_add(a, 200);
    gx_audit_close(a);
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    assert_int_equal(rep.last_seq, seq + 2);
    assert_int_equal(rot_list(f->log, nums), nf + 1);
}

/* Copy a file byte for byte. */
static void copy_file(const char *from, const char *to) {
    size_t len;
    char *b = slurp(from, &len);
    assert_non_null(b);
    spill(to, b, len);
    free(b);
}

/* verify across files: a changed record in a rotated file, a deleted
 * middle file, a boundary whose prev is not the hash before, a file that
 * lost its first records. */
static void audit_rotate_verify_problems(void **st) {
    fx *f = *st;
    gx_audit_close(rot_write(f->log, 30, 0));
    uint64_t nums[64];
    int nf = rot_list(f->log, nums);
    assert_true(nf >= 4);
    char mid[400], keep[400];
    rot_name(f->log, nums[2], mid, sizeof mid);
    snprintf(keep, sizeof keep, "%s/keep", f->dir);
    copy_file(mid, keep);
    const char *mid_end = strrchr(mid, '/');

    /* a byte of a record's detail in a middle file: changed, there */
    size_t len;
    char *b = slurp(mid, &len);
    char *l2 = strchr(b, '\n') + 1;
    char *p = strstr(l2, "record ") + 7;
    *p = *p == '1' ? '2' : '1';
    spill(mid, b, len);
    free(b);
    rot_expect(f->log, GX_EFORMAT, GX_AUDIT_CHANGED, mid_end, 2);
    copy_file(keep, mid);
    rot_expect(f->log, 0, 0, "", 0);

    /* the middle file deleted: the records it held were removed (the
     * problem is found at the first line of the file after it) */
    unlink(mid);
    char after[400];
    rot_name(f->log, nums[3], after, sizeof after);
    rot_expect(f->log, GX_EFORMAT, GX_AUDIT_REMOVED, strrchr(after, '/'), 1);
    gx_audit_report rep;
    gx_error err;
    gx_audit_verify(f->log, &rep, &err);
    assert_int_equal(rep.seq, nums[2]);
    copy_file(keep, mid);

    /* a broken boundary: the same file from another log (same seqs,
     * other times, other hashes) */
    char other[400];
    snprintf(other, sizeof other, "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    snprintf(other, sizeof other, "%s/other/audit.log", f->dir);
    gx_audit_close(rot_write(other, 30, 0));
    char oname[400];
    rot_name(other, nums[2], oname, sizeof oname);
    copy_file(oname, mid);
    rot_expect(f->log, GX_EFORMAT, GX_AUDIT_BROKEN, mid_end, 1);
    copy_file(keep, mid);
    rot_expect(f->log, 0, 0, "", 0);

    /* the oldest files gone (archived): intact from the first record
     * there, which is an audit.rotate */
    char first[400];
    rot_name(f->log, nums[0], first, sizeof first);
    unlink(first);
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    assert_int_equal(rep.first_seq, nums[1]);
    /* but a file that lost its first record (the audit.rotate) no longer
     * says where it begins: removed, as in a file never rotated */
    char second[400];
    rot_name(f->log, nums[1], second, sizeof second);
    b = slurp(second, &len);
    char *rest = strchr(b, '\n') + 1;
    spill(second, rest, len - (size_t)(rest - b));
    free(b);
    rot_expect(f->log, GX_EFORMAT, GX_AUDIT_REMOVED, strrchr(second, '/'), 1);
    gx_audit_verify(f->log, &rep, &err);
    assert_int_equal(rep.seq, nums[1]);
}

/* keep: the oldest rotated files beyond it are deleted; the chain checks
 * from the oldest file kept. */
static void audit_rotate_keep(void **st) {
    fx *f = *st;
    gx_audit *a = rot_write(f->log, 60, 3);
    gx_audit_stats as;
    gx_audit_stats_get(a, &as);
    uint64_t seq;
    gx_audit_head(a, &seq, NULL);
    gx_audit_close(a);
    uint64_t nums[64];
    int nf = rot_list(f->log, nums);
    assert_int_equal(nf, 3);
    assert_true(as.rotations > 3);
    assert_int_equal(as.files, 4);
    assert_true(nums[0] > 1);
    uint64_t bytes = 0;
    for (int i = 0; i <= nf; i++) {
        char name[400];
        struct stat sb;
        if (i < nf) rot_name(f->log, nums[i], name, sizeof name);
        else snprintf(name, sizeof name, "%s", f->log);
        assert_int_equal(stat(name, &sb), 0);
        bytes += (uint64_t)sb.st_size;
    }
    assert_int_equal(bytes, as.bytes);
    gx_audit_report rep;
    gx_error err;
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    print_message("  %s\n", rep.message);
    assert_int_equal(rep.first_seq, nums[0]);
    assert_int_equal(rep.last_seq, seq);
    assert_int_equal(rep.files, 4);
    /* reopened with a lower keep: the files beyond it go at the open (they
     * stayed until the next rotation), the newest kept, the chain whole */
    a = audit_open_rot(f->log, ROT_MAX, 1);
    gx_audit_close(a);
    uint64_t left[64];
    assert_int_equal(rot_list(f->log, left), 1);
    assert_int_equal(left[0], nums[nf - 1]);
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    assert_int_equal(rep.files, 2);
    assert_int_equal(rep.last_seq, seq);
    /* the live file alone (the rotated ones archived elsewhere) */
    for (int i = 0; i < nf; i++) {
        char name[400];
        rot_name(f->log, nums[i], name, sizeof name);
        unlink(name);
    }
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
    assert_true(rep.first_seq > nums[nf - 1]);
    assert_int_equal(rep.last_seq, seq);
}

/* A crash right after a rotation's rename leaves no audit.log or an empty
 * one: open continues the chain from the newest rotated file. */
static void audit_rotate_crash(void **st) {
    fx *f = *st;
    for (int mode = 0; mode < 2; mode++) {
        gx_audit *a = rot_write(f->log, 12, 0);
        uint64_t seq, first;
        gx_audit_head(a, &seq, NULL);
        gx_audit_close(a);
        size_t len;
        char *b = slurp(f->log, &len);
        first = line_seq_of(b);
        free(b);
        char to[400];
        rot_name(f->log, first, to, sizeof to);
        assert_int_equal(rename(f->log, to), 0);
        if (mode == 1) spill(f->log, "", 0);
        a = audit_open_rot(f->log, ROT_MAX, 0);
        uint64_t s2;
        gx_audit_head(a, &s2, NULL);
        assert_int_equal(s2, seq);
        audit_add(a, 13);
        gx_audit_head(a, &s2, NULL);
        assert_int_equal(s2, seq + 2); /* the audit.rotate, then the record */
        gx_audit_close(a);
        lines ls;
        lines_read(f, &ls);
        assert_int_equal(ls.n, 2);
        assert_non_null(strstr(ls.l[0], "\"action\":\"audit.rotate\""));
        free(ls.buf);
        gx_audit_report rep;
        gx_error err;
        TU_OK(gx_audit_verify(f->log, &rep, &err), err);
        assert_int_equal(rep.first_seq, 1);
        assert_int_equal(rep.last_seq, seq + 2);
        /* the live file missing (before open made it): intact so far */
        if (mode == 0) {
            char moved[400];
            snprintf(moved, sizeof moved, "%s/moved", f->dir);
            assert_int_equal(rename(f->log, moved), 0);
            TU_OK(gx_audit_verify(f->log, &rep, &err), err);
            assert_int_equal(rep.last_seq, seq);
            unlink(moved);
        }
        /* clean for the next mode */
        uint64_t nums[64];
        int nf = rot_list(f->log, nums);
        for (int i = 0; i < nf; i++) {
            rot_name(f->log, nums[i], to, sizeof to);
            unlink(to);
        }
        unlink(f->log);
    }
}

/* A rotation that cannot be made (a folder where the rotated file goes)
 * lets the log go on in its file and is tried again only 10 s later (each
 * try synced the file under the lock, with every append); such a folder is
 * not taken for a rotated file when the live file is empty. A torn line
 * cut off an empty live file is recorded (audit.recover) when the chain
 * goes on from a rotated file. */
static void audit_rotate_blocked(void **st) {
    fx *f = *st;
    char blocker[400];
    rot_name(f->log, 1, blocker, sizeof blocker);
    assert_int_equal(mkdir(blocker, 0700), 0);
    gx_audit *a = audit_open_rot(f->log, ROT_MAX, 0);
    for (int i = 0; i < 40; i++) audit_add(a, i);
    gx_audit_stats as;
    gx_audit_stats_get(a, &as);
    assert_int_equal(as.rotate_failures, 1);
    assert_int_equal(as.rotations, 0);
    gx_audit_close(a);
    expect_intact(f, 40);
    /* the folder beside an empty live file: the log opens, a new chain */
    unlink(f->log);
    spill(f->log, "", 0);
    a = audit_open_rot(f->log, ROT_MAX, 0);
    audit_add(a, 1);
    gx_audit_close(a);
    expect_intact(f, 1);
    rmdir(blocker);
    unlink(f->log);

    /* records in rotated files, then a crash left a torn line in the new
     * live file */
    a = audit_open_rot(f->log, ROT_MAX, 0);
    for (int i = 0; i < 12; i++) audit_add(a, i);
    gx_audit_close(a);
    lines ls;
    lines_read(f, &ls);
    uint64_t first = strtoull(ls.l[0] + 7, NULL, 10);
    free(ls.buf);
    char to[400];
    rot_name(f->log, first, to, sizeof to);
    assert_int_equal(rename(f->log, to), 0);
    spill(f->log, "{\"seq\":99,\"ti", 13);
    a = audit_open_rot(f->log, ROT_MAX, 0);
    gx_audit_close(a);
    lines_read(f, &ls);
    int recovered = 0;
    for (int i = 0; i < ls.n; i++) recovered |= strstr(ls.l[i], "\"action\":\"audit.recover\"") != NULL;
    assert_true(recovered);
    free(ls.buf);
    gx_audit_report rep;
    gx_error err;
    TU_OK(gx_audit_verify(f->log, &rep, &err), err);
}

/* Concurrent appends rotating all the while (every record synced, and
 * synced by time): one chain across the files, nothing lost. */
static void audit_rotate_concurrent(void **st) {
    fx *f = *st;
    int modes[] = {0, 1};
    for (int m = 0; m < 2; m++) {
        char dir[300], log[320];
        snprintf(dir, sizeof dir, "%s/c%d", f->dir, m);
        assert_int_equal(mkdir(dir, 0700), 0);
        snprintf(log, sizeof log, "%s/audit.log", dir);
        gx_audit_config cfg = {.path = log, .sync_ms = modes[m], .max_bytes = ROT_MAX};
        gx_audit *a = NULL;
        gx_error err;
        TU_OK(gx_audit_open(&cfg, &a, &err), err);
        audit_threads_grow(a, 1);
        gx_audit_stats as;
        gx_audit_stats_get(a, &as);
        gx_audit_close(a);
        gx_audit_report rep;
        TU_OK(gx_audit_verify(log, &rep, &err), err);
        print_message("  sync_ms %d: %s\n", modes[m], rep.message);
        assert_int_equal(rep.last_seq, 520 + as.rotations); /* the records and an audit.rotate per file */
        assert_int_equal(rep.files, as.files);
        assert_true(as.rotations > 50);
    }
}

typedef struct rd {
    uint64_t seqs[1000];
    int n;
} rd;

static int rd_add(void *ctx, uint64_t seq, const char *line, size_t len) {
    rd *r = ctx;
    assert_true(len > 100 && line[len - 1] == '}');
    assert_int_equal(strtoull(line + 7, NULL, 10), seq);
    if (r->n < 1000) r->seqs[r->n++] = seq;
    return 0;
}

/* gx_audit_read pages through rotated files and the live one, from any
 * seq, by a search rather than a scan; records deleted with their file are
 * skipped. */
static void audit_read_pages(void **st) {
    fx *f = *st;
    gx_audit *a = rot_write(f->log, 150, 0);
    uint64_t seq;
    gx_audit_head(a, &seq, NULL);
    gx_audit_close(a);
    gx_error err;
    for (int limit = 1; limit <= 13; limit += 6) {
        uint64_t after = 0, want = 1;
        for (;;) {
            rd r = {.n = 0};
            TU_OK(gx_audit_read(f->log, after, (size_t)limit, rd_add, &r, &err), err);
            for (int i = 0; i < r.n; i++) assert_int_equal(r.seqs[i], want++);
            if (r.n < limit) break;
            after = r.seqs[r.n - 1];
        }
        assert_int_equal(want - 1, seq);
    }
    /* from every seq */
    for (uint64_t after = 0; after <= seq + 1; after++) {
        rd r = {.n = 0};
        TU_OK(gx_audit_read(f->log, after, 3, rd_add, &r, &err), err);
        uint64_t left = after < seq ? seq - after : 0;
        assert_int_equal(r.n, left < 3 ? (int)left : 3);
        for (int i = 0; i < r.n; i++) assert_int_equal(r.seqs[i], after + 1 + (uint64_t)i);
    }
    /* a middle file and the oldest one deleted: skipped */
    uint64_t nums[64];
    int nf = rot_list(f->log, nums);
    char name[400];
    rot_name(f->log, nums[0], name, sizeof name);
    unlink(name);
    rot_name(f->log, nums[3], name, sizeof name);
    unlink(name);
    rd r = {.n = 0};
    TU_OK(gx_audit_read(f->log, 0, 1000, rd_add, &r, &err), err);
    assert_int_equal(r.seqs[0], nums[1]);
    assert_int_equal(r.seqs[r.n - 1], seq);
    for (int i = 1; i < r.n; i++)
        assert_true(r.seqs[i] == r.seqs[i - 1] + 1 || (r.seqs[i - 1] + 1 == nums[3] && r.seqs[i] == nums[4]));
    (void)nf;
    /* nothing there */
    unlink(f->log);
    r.n = 0;
    TU_OK(gx_audit_read(f->log, 1 << 20, 10, rd_add, &r, &err), err);
    assert_int_equal(r.n, 0);
}

/* A reader whose callback appends until the live file rotates under it,
 * once, on its first record. */
typedef struct rd_rot {
    rd r;
    gx_audit *a;
    int added;
} rd_rot;

static int rd_rotating(void *ctx, uint64_t seq, const char *line, size_t len) {
    rd_rot *x = ctx;
    if (!x->added) {
        gx_audit_stats s0, s1;
        gx_audit_stats_get(x->a, &s0);
        do {
            audit_add(x->a, 1000 + x->added++);
            gx_audit_stats_get(x->a, &s1);
        } while (s1.rotations == s0.rotations);
    }
    return rd_add(&x->r, seq, line, len);
}

/* A page read while the live file rotates is whole: the records after the
 * renamed file's end come from its successor (before, the page ended with
 * the renamed file, short of the limit, as if the log ended there). */
static void audit_read_during_rotation(void **st) {
    fx *f = *st;
    rd_rot x = {.r = {.n = 0}, .a = audit_open_rot(f->log, ROT_MAX, 0)};
    audit_add(x.a, 1); /* the live file: one record, no rotation yet */
    gx_error err;
    TU_OK(gx_audit_read(f->log, 0, 1000, rd_rotating, &x, &err), err);
    uint64_t seq;
    gx_audit_head(x.a, &seq, NULL);
    gx_audit_close(x.a);
    assert_true(x.added >= 2);
    assert_int_equal(x.r.n, (int)seq); /* every record: 1, those added, the audit.rotate */
    for (int i = 0; i < x.r.n; i++) assert_int_equal(x.r.seqs[i], (uint64_t)i + 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(key_create_verify_list, setup, teardown),
        cmocka_unit_test_setup_teardown(last_admin_key_stays, setup, teardown),
        cmocka_unit_test_setup_teardown(key_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(key_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(key_bad_args, setup, teardown),
        cmocka_unit_test_setup_teardown(tokens_malformed, setup, teardown),
        cmocka_unit_test(bearer_header),
        cmocka_unit_test_setup_teardown(bootstrap_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(secret_file, setup, teardown),
        cmocka_unit_test_setup_teardown(key_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(key_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(key_page_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(key_schema_upgrade, setup, teardown),
        cmocka_unit_test(permission_every_cell),
        cmocka_unit_test(permission_covers_routes),
        cmocka_unit_test(role_names),
        cmocka_unit_test(docs_table),
        cmocka_unit_test(limiter_bucket),
        cmocka_unit_test(limiter_many_keys),
        cmocka_unit_test(limiter_threads),
        cmocka_unit_test_setup_teardown(audit_chain_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_changed, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_reordered, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_broken, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_reopen_and_torn, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_write_fails_then_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_rotate_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_rotate_verify_problems, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_rotate_keep, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_rotate_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_read_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_read_during_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_rotate_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(audit_rotate_blocked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
