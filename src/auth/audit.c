/*
 * audit.c - the audit log: an append-only file of JSON lines, one record a
 * line, each carrying the hash of the record before it.
 *
 * A record is written as
 *
 *   {"seq":N,"time":"2026-11-23T04:25:22.123456789Z",
 *    "actor":{"key":"..","tenant":"..","role":".."},"remote":"..",
 *    "action":"..","target":"..","outcome":"..","detail":"..",
 *    "prev":"<64 hex>","hash":"<64 hex>"}
 *
 * on one line (no spaces), members always in this order. The canonical
 * record is the line without its hash member: everything before
 * ',"hash":"' followed by '}'. hash = hex SHA-256(prev + canonical), prev
 * being the hash of the record before (64 zeros for the first). Because we
 * write every byte of the line ourselves (strings escaped one way only),
 * the canonical bytes are simply the bytes on disk and verification needs
 * no JSON parser: the last 149 bytes of a line are always
 * ,"prev":"<64>","hash":"<64>"}.
 *
 * Appends are serialized by a mutex; each line goes out in one write() on
 * an O_APPEND descriptor. With sync_ms = 0 an append returns once its line
 * is on disk, and appends waiting at the same time share one fdatasync
 * (the first waiter syncs for everyone written so far). A failed sync
 * stops the log (every later append answers GX_EIO), so the chain on disk
 * never has a hole that the writer skipped over. A failed write (a full
 * disk) is cut back to the last whole record and the log goes on: the
 * records of that append are missing, the chain has no hole; if the cut
 * cannot be made (the file is not as we left it), the log stops.
 *
 * Rotation. When an append would take the file past max_bytes, the file is
 * synced and renamed <path>.<seq of its first record, 20 digits> (so the
 * names sort by position and say which records they hold), the folder is
 * synced, and a new file is begun. Its first record is an "audit.rotate"
 * record chained to the last record of the file before (next seq, prev =
 * its hash): a file may begin mid-chain only with such a record, so a
 * file that lost its first records still reads as "removed". The oldest
 * rotated files beyond keep are deleted once the new file exists. A crash
 * at any point leaves either the old file in place or the rotated file
 * and an empty or missing <path>: open then continues the chain from the
 * newest rotated file. gx_audit_verify follows the chain through the
 * rotated files and across each boundary; gx_audit_read finds a seq by the
 * file names and a binary search by seq inside the file.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth_int.h"
#include "clock.h"
#include "jsonw.h"
#include "log.h"

#define FIELD_MAX 1024  /* escaped bytes of a string member */
#define DETAIL_MAX 4096 /* escaped bytes of detail */
#define LINE_MAX_BYTES 65536
#define TAIL_LEN 149    /* ,"prev":"<64>","hash":"<64>"} */
#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

struct gx_audit {
    int fd;
    int sync_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* synced or syncing changed; stop */
    uint64_t seq;            /* last record written */
    char head[65];           /* its hash */
    uint64_t synced;         /* last record known on disk */
    int syncing;             /* a thread is in fdatasync */
    int failed;              /* a sync failed (or a cut after a failed write):
                                refuse appends */
    off_t end;               /* the file's size after the last whole write */
    int stop;                /* the sync thread should end */
    int have_thread;
    pthread_t thread;
    char *line;              /* build buffer (mu) */
    size_t line_cap;
    char *path;              /* the live file */
    uint64_t max_bytes;      /* rotate past this size; 0 = never */
    int keep;                /* rotated files kept; 0 = all */
    uint64_t first;          /* seq of the live file's first record; 0 = empty */
    uint64_t prev_file;      /* first seq of the newest rotated file; 0 = none */
    int fresh;               /* the live file is empty and continues prev_file:
                                its first record will be an audit.rotate */
    uint64_t rotated_bytes;  /* size of the rotated files kept */
    uint64_t rotated_files;  /* how many */
    uint64_t rotations;      /* since open */
    uint64_t rotate_failures;
    int64_t rotate_after_ns; /* no rotation before this (monotonic): one failed */
};

const char *gx_audit_problem_name(int p) {
    static const char *const names[] = {"intact", "changed", "removed", "reordered", "broken", "malformed",
                                        "torn"};
    return p >= 0 && p < (int)(sizeof names / sizeof names[0]) ? names[p] : "?";
}

/* ---- writing a record ---------------------------------------------------------- */

static void hex32(const unsigned char h[32], char out[65]) {
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = '\0';
}

/* hex SHA-256(prev + canonical), canonical = body + "}". */
static void chain_hash(const char *prev, const char *body, size_t len, char out[65]) {
    unsigned char h[32];
    gx__auth_sha256(prev, 64, body, len, "}", 1, h);
    hex32(h, out);
}

/* Appends the whole line of a record, "\n" included, to b. */
static int build_line(gx_jbuf *b, uint64_t seq, const char *prev, const gx_audit_record *r) {
    char t[40];
    gx_time_text(r->time_ns ? r->time_ns : gx__wall_ns(), 9, t);
    size_t start = b->len;
    int e = gx_jbuf_puts(b, "{\"seq\":") || gx_jbuf_int(b, (int64_t)seq) || gx_jbuf_puts(b, ",\"time\":\"") ||
            gx_jbuf_puts(b, t) || gx_jbuf_puts(b, "\",\"actor\":{\"key\":") ||
            gx_jbuf_str(b, r->key_id, FIELD_MAX) || gx_jbuf_puts(b, ",\"tenant\":") || gx_jbuf_str(b, r->tenant, FIELD_MAX) ||
            gx_jbuf_puts(b, ",\"role\":") || gx_jbuf_str(b, r->role, FIELD_MAX) || gx_jbuf_puts(b, "},\"remote\":") ||
            gx_jbuf_str(b, r->remote, FIELD_MAX) || gx_jbuf_puts(b, ",\"action\":") || gx_jbuf_str(b, r->action, FIELD_MAX) ||
            gx_jbuf_puts(b, ",\"target\":") || gx_jbuf_str(b, r->target, FIELD_MAX) || gx_jbuf_puts(b, ",\"outcome\":") ||
            gx_jbuf_str(b, r->outcome, FIELD_MAX) || gx_jbuf_puts(b, ",\"detail\":") || gx_jbuf_str(b, r->detail, DETAIL_MAX) ||
            gx_jbuf_puts(b, ",\"prev\":\"") || gx_jbuf_puts(b, prev) || gx_jbuf_puts(b, "\"");
    if (e) return -1;
    char h[65];
    chain_hash(prev, b->p + start, b->len - start, h);
    return gx_jbuf_puts(b, ",\"hash\":\"") || gx_jbuf_puts(b, h) || gx_jbuf_puts(b, "\"}\n");
}

/* ---- reading a record ------------------------------------------------------------ */

static int is_hex64(const char *s) {
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

/* Parse seq only: GX_AUDIT_MALFORMED or 0. */
static int line_seq(const char *l, size_t len, uint64_t *seq) {
    static const char pre[] = "{\"seq\":";
    size_t i = sizeof pre - 1;
    if (len < i + 2 || memcmp(l, pre, i)) return GX_AUDIT_MALFORMED;
    uint64_t v = 0;
    size_t start = i;
    while (i < len && l[i] >= '0' && l[i] <= '9' && i - start < 19) v = v * 10 + (uint64_t)(l[i++] - '0');
    if (i == start || i >= len || l[i] != ',' || (l[start] == '0')) return GX_AUDIT_MALFORMED;
    *seq = v;
    return 0;
}

/* Check one line (without its "\n"): its structure and its own hash. 0,
 * GX_AUDIT_MALFORMED or GX_AUDIT_CHANGED; seq, prev and hash filled when
 * the structure is sound. */
static int check_line(const char *l, size_t len, uint64_t *seq, char prev[65], char hash[65]) {
    if (len < TAIL_LEN + 10 || line_seq(l, len, seq)) return GX_AUDIT_MALFORMED;
    const char *t = l + len - TAIL_LEN;
    if (memcmp(t, ",\"prev\":\"", 9) || !is_hex64(t + 9) || memcmp(t + 73, "\",\"hash\":\"", 10) ||
        !is_hex64(t + 83) || memcmp(t + 147, "\"}", 2))
        return GX_AUDIT_MALFORMED;
    memcpy(prev, t + 9, 64);
    prev[64] = '\0';
    memcpy(hash, t + 83, 64);
    hash[64] = '\0';
    char h[65];
    size_t body = (size_t)(t + 74 - l); /* through the closing quote of prev */
    chain_hash(prev, l, body, h);
    return memcmp(h, hash, 64) ? GX_AUDIT_CHANGED : 0;
}

/* ---- rotated files ------------------------------------------------------------------- */

#define ROT_DIGITS 20

/* <path>.<first seq, 20 digits> into out. */
static void rotated_name(const char *path, uint64_t first, char *out, size_t cap) {
    snprintf(out, cap, "%s.%0*llu", path, ROT_DIGITS, (unsigned long long)first);
}

/* The folder of path: "." when it names none, "/" for a file at the root. */
static void dir_of(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, cap, "%.*s", slash > path ? (int)(slash - path) : 1, path);
    else snprintf(dir, cap, ".");
}

static int cmp_u64(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* The first seqs of the rotated files beside path (<path>.<20 digits>),
 * ascending, in *out (malloc'd; free it; NULL when none). 0, or -1 with
 * errno when the folder cannot be read (out of memory: ENOMEM). */
static int list_rotated(const char *path, uint64_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) return -1;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, blen) || nm[blen] != '.' || strlen(nm + blen + 1) != ROT_DIGITS) continue;
        if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue; /* a folder of that name is not ours */
        uint64_t v = 0;
        int ok = 1;
        for (const char *c = nm + blen + 1; *c && ok; c++) {
            ok = *c >= '0' && *c <= '9' && v <= (UINT64_MAX - 9) / 10;
            v = v * 10 + (uint64_t)(*c - '0');
        }
        if (!ok || v == 0) continue;
        if (*n == cap) {
            uint64_t *g = realloc(*out, (cap = cap ? 2 * cap : 16) * sizeof *g);
            if (!g) {
                free(*out);
                *out = NULL;
                *n = 0;
                closedir(d);
                errno = ENOMEM;
                return -1;
            }
            *out = g;
        }
        (*out)[(*n)++] = v;
    }
    closedir(d);
    if (*n) qsort(*out, *n, sizeof **out, cmp_u64);
    return 0;
}

/* fsync the folder that holds path (a rename or a new file in it). */
static int sync_dir(const char *path) {
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = fsync(fd);
    close(fd);
    return r;
}

/* The seq of the first record of the file open on fd: 0 when it is empty
 * or does not begin with a record. */
static uint64_t first_seq_fd(int fd) {
    char b[64];
    ssize_t r = pread(fd, b, sizeof b, 0);
    uint64_t seq = 0;
    if (r > 0 && line_seq(b, (size_t)r, &seq)) seq = 0;
    return seq;
}

/* A record written by a rotation (the first of a file that continues
 * another). Its quotes cannot occur unescaped inside a string member. */
static int is_rotate_record(const char *l, size_t len) {
    static const char m[] = ",\"action\":\"audit.rotate\",";
    return memmem(l, len, m, sizeof m - 1) != NULL;
}

/* ---- open / close ------------------------------------------------------------------ */

static void *sync_main(void *arg) {
    gx_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    pthread_setname_np(pthread_self(), "gx-audit");
    while (!a->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (int64_t)a->sync_ms * 1000000;
        ts.tv_sec += (time_t)(ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        if (a->synced < a->seq && !a->failed && !a->syncing) {
            uint64_t target = a->seq;
            a->syncing = 1;
            pthread_mutex_unlock(&a->mu);
            int r = fdatasync(a->fd);
            pthread_mutex_lock(&a->mu);
            a->syncing = 0;
            if (r) a->failed = 1;
            else if (target > a->synced) a->synced = target;
            pthread_cond_broadcast(&a->cv);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* Find the last line of the file open on fd, cutting off a torn one.
 * *torn gets the bytes cut. Fills *seq and head (left alone when the file
 * holds no record). */
static int load_tail(int fd, const char *path, uint64_t *seq, char head[65], off_t *torn, gx_error *err) {
    *torn = 0;
    struct stat st;
    if (fstat(fd, &st)) return gx_error_set(err, GX_EIO, "path", "%s: %s", path, strerror(errno));
    off_t size = st.st_size;
    if (size == 0) return 0;
    size_t want = (size_t)(size < 2 * LINE_MAX_BYTES ? size : 2 * LINE_MAX_BYTES);
    char *b = malloc(want);
    if (!b) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    off_t base = size - (off_t)want;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, b + got, want - got, base + (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    int rc = 0;
    if (got != want) {
        rc = gx_error_set(err, GX_EIO, "path", "%s: short read", path);
        goto out;
    }
    /* the end of the last complete line */
    size_t end = want;
    while (end > 0 && b[end - 1] != '\n') end--;
    if (end < want) {
        if (end == 0 && base > 0) {
            rc = gx_error_set(err, GX_EFORMAT, "path", "%s: the last line is longer than %d bytes", path,
                              2 * LINE_MAX_BYTES);
            goto out;
        }
        *torn = (off_t)(want - end);
        if (ftruncate(fd, base + (off_t)end) || fsync(fd)) {
            rc = gx_error_set(err, GX_EIO, "path", "%s: cannot cut the torn last line: %s", path,
                              strerror(errno));
            goto out;
        }
        if (end == 0) goto out; /* the file held only a torn line */
    }
    size_t start = end - 1;
    while (start > 0 && b[start - 1] != '\n') start--;
    if (start == 0 && base > 0) {
        rc = gx_error_set(err, GX_EFORMAT, "path", "%s: the last record is longer than %d bytes", path,
                          LINE_MAX_BYTES);
        goto out;
    }
    char prev[65];
    int p = check_line(b + start, end - 1 - start, seq, prev, head);
    if (p)
        rc = gx_error_set(err, GX_EFORMAT, "path", "%s: the last record is %s; run the audit verification",
                          path, gx_audit_problem_name(p));
out:
    free(b);
    return rc;
}

/* The live file is empty: continue the chain from the newest rotated file
 * that holds a record (a crash right after a rotation's rename), cutting a
 * torn line off it as open does off the live file. */
static int load_rotated_tail(gx_audit *a, off_t *torn, gx_error *err) {
    uint64_t *rot;
    size_t n;
    if (list_rotated(a->path, &rot, &n))
        return gx_error_set(err, GX_EIO, "path", "%s: cannot list the rotated files: %s", a->path, strerror(errno));
    int rc = 0;
    for (size_t i = n; i-- > 0 && rc == 0 && a->seq == 0;) {
        char name[4200];
        rotated_name(a->path, rot[i], name, sizeof name);
        int fd = open(name, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            rc = gx_error_set(err, GX_EIO, "path", "%s: %s", name, strerror(errno));
            break;
        }
        off_t cut = 0; /* added to what was cut off the live file */
        rc = load_tail(fd, name, &a->seq, a->head, &cut, err);
        *torn += cut;
        close(fd);
        if (a->seq > 0) a->prev_file = rot[i]; /* the file the chain goes on from */
    }
    a->fresh = a->seq > 0;
    free(rot);
    return rc;
}

/* Sizes of the rotated files kept, for gx_audit_stats. */
static void count_rotated(gx_audit *a) {
    uint64_t *rot;
    size_t n;
    a->rotated_bytes = a->rotated_files = 0;
    if (list_rotated(a->path, &rot, &n)) return;
    for (size_t i = 0; i < n; i++) {
        char name[4200];
        struct stat st;
        rotated_name(a->path, rot[i], name, sizeof name);
        if (stat(name, &st) == 0) a->rotated_bytes += (uint64_t)st.st_size, a->rotated_files++;
    }
    if (n && a->prev_file == 0) a->prev_file = rot[n - 1];
    free(rot);
}

static void prune_rotated(gx_audit *a);

int gx_audit_open(const gx_audit_config *cfg, gx_audit **out, gx_error *err) {
    *out = NULL;
    if (!cfg || !cfg->path || !*cfg->path) return gx_error_set(err, GX_EINVAL, "path", "no audit log path");
    if (cfg->keep < 0) return gx_error_set(err, GX_EINVAL, "keep", "keep must be >= 0");
    gx_audit *a = calloc(1, sizeof *a);
    if (!a) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    a->sync_ms = cfg->sync_ms;
    a->max_bytes = cfg->max_bytes;
    a->keep = cfg->keep;
    memcpy(a->head, ZERO_HASH, 65);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->path = strdup(cfg->path);
    a->fd = a->path ? open(cfg->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (a->fd < 0) {
        int rc = a->path ? gx_error_set(err, GX_EIO, "path", "%s: %s", cfg->path, strerror(errno))
                         : gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
        gx_audit_close(a);
        return rc;
    }
    off_t torn = 0;
    int rc = load_tail(a->fd, cfg->path, &a->seq, a->head, &torn, err);
    struct stat st;
    if (rc == 0 && fstat(a->fd, &st)) rc = gx_error_set(err, GX_EIO, "path", "%s: %s", cfg->path, strerror(errno));
    if (rc == 0) {
        a->end = st.st_size;
        a->first = first_seq_fd(a->fd);
        if (a->end == 0) rc = load_rotated_tail(a, &torn, err);
    }
    a->synced = a->seq;
    /* files beyond keep (a lowered auth.audit_keep, a crash between a
     * rotation's rename and its prune) go now, not at the next rotation;
     * the newest rotated file, which may hold the chain's head, is kept */
    if (rc == 0) count_rotated(a);
    if (rc == 0) prune_rotated(a);
    if (rc == 0 && a->sync_ms > 0) {
        if (pthread_create(&a->thread, NULL, sync_main, a))
            rc = gx_error_set(err, GX_ENOMEM, NULL, "cannot start the audit sync thread");
        else
            a->have_thread = 1;
    }
    if (rc == 0 && torn > 0) {
        char detail[96];
        snprintf(detail, sizeof detail, "cut %lld bytes of a torn last line", (long long)torn);
        gx_audit_record r = {.action = "audit.recover", .outcome = "ok", .detail = detail};
        rc = gx_audit_append(a, &r, NULL, err);
    }
    if (rc) {
        gx_audit_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void gx_audit_close(gx_audit *a) {
    if (!a) return;
    if (a->have_thread) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    if (a->fd >= 0) {
        if (a->sync_ms >= 0 && !a->failed && a->synced < a->seq) fdatasync(a->fd);
        close(a->fd);
    }
    free(a->line);
    free(a->path);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

void gx_audit_head(gx_audit *a, uint64_t *seq, char hash[65]) {
    pthread_mutex_lock(&a->mu);
    if (seq) *seq = a->seq;
    if (hash) memcpy(hash, a->head, 65);
    pthread_mutex_unlock(&a->mu);
}

/* ---- append ------------------------------------------------------------------------ */

int gx_audit_append(gx_audit *a, const gx_audit_record *rec, uint64_t *seq_out, gx_error *err) {
    if (!rec) return gx_error_set(err, GX_EINVAL, "record", "no record");
    return gx_audit_append_n(a, rec, 1, seq_out, err);
}

/* Every line of an append into b, each chained to the one before: an
 * audit.rotate record first when the live file continues a rotated one.
 * head gets the last hash, *count the records. 0 or -1 (out of memory). */
static int build_lines(gx_audit *a, const gx_audit_record *recs, size_t n, gx_jbuf *b, char head[65],
                       size_t *count) {
    b->len = 0;
    *count = 0;
    memcpy(head, a->head, 65);
    char target[64], detail[128];
    gx_audit_record mark = {.action = "audit.rotate", .target = target, .outcome = "ok", .detail = detail};
    if (a->fresh) {
        const char *slash = strrchr(a->path, '/');
        char name[4200];
        rotated_name(slash ? slash + 1 : a->path, a->prev_file, name, sizeof name);
        snprintf(target, sizeof target, "%.63s", name);
        snprintf(detail, sizeof detail, "continues %.60s: records %llu..%llu", name,
                 (unsigned long long)a->prev_file, (unsigned long long)a->seq);
    }
    for (size_t i = a->fresh ? 0 : 1; i <= n; i++) {
        if (build_line(b, a->seq + 1 + *count, head, i ? &recs[i - 1] : &mark)) return -1;
        memcpy(head, b->p + b->len - 67, 64); /* ..."hash":"<64>"}\n */
        head[64] = '\0';
        ++*count;
    }
    return 0;
}

/* Delete the oldest rotated files beyond a->keep (after a rotation: the new
 * file exists). What cannot be deleted stays; the next rotation tries again. */
static void prune_rotated(gx_audit *a) {
    uint64_t *rot;
    size_t n;
    if (a->keep <= 0 || list_rotated(a->path, &rot, &n)) return;
    for (size_t i = 0; i + (size_t)a->keep < n; i++) {
        char name[4200];
        struct stat st;
        rotated_name(a->path, rot[i], name, sizeof name);
        if (stat(name, &st) == 0 && unlink(name) == 0) {
            a->rotated_bytes -= a->rotated_bytes < (uint64_t)st.st_size ? a->rotated_bytes : (uint64_t)st.st_size;
            if (a->rotated_files) a->rotated_files--;
        }
    }
    free(rot);
}

/* A rotation that could not be made: the current file goes on, said in
 * the log, and the next try waits ROTATE_RETRY_NS (each try syncs the file
 * under the lock: with every append it slowed all of them). */
#define ROTATE_RETRY_NS (10 * INT64_C(1000000000))

static void rotate_failed(gx_audit *a, const char *name, int e) {
    a->rotate_failures++;
    a->rotate_after_ns = gx__now_ns() + ROTATE_RETRY_NS;
    GX_LOGW("audit log: cannot rotate %s (%s: %s); it goes on past auth.audit_max_bytes, tried again in 10 s",
            a->path, name, strerror(e));
}

/* Begin a new live file (mu held, a->end > 0): sync the current one,
 * rename it <path>.<first seq>, sync the folder, create <path>. 0 when
 * rotated or when it could not be and the current file goes on (counted
 * in rotate_failures); GX_EIO when the log had to stop (a failed sync, or
 * a rename that could not be undone). */
static int rotate(gx_audit *a, gx_error *err) {
    assert(!a->syncing); /* nobody is using a->fd outside mu */
    if (a->sync_ms >= 0 && fdatasync(a->fd)) {
        a->failed = 1;
        return gx_error_set(err, GX_EIO, NULL, "audit log sync before rotation: %s", strerror(errno));
    }
    if (a->sync_ms >= 0) a->synced = a->seq;
    uint64_t first = a->first ? a->first : a->seq; /* a file not begun by a record: a guess */
    char to[4200];
    rotated_name(a->path, first, to, sizeof to);
    if (access(to, F_OK) == 0 || rename(a->path, to)) {
        rotate_failed(a, to, errno ? errno : EEXIST);
        return 0;
    }
    int fd = open(a->path, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        if (rename(to, a->path) == 0) {
            rotate_failed(a, a->path, e);
            return 0;
        }
        a->failed = 1;
        return gx_error_set(err, GX_EIO, NULL, "audit log rotation: cannot create %s nor rename %s back: %s",
                            a->path, to, strerror(errno));
    }
    if (a->sync_ms >= 0 && sync_dir(a->path)) {
        close(fd);
        a->failed = 1;
        return gx_error_set(err, GX_EIO, NULL, "audit log rotation: folder sync: %s", strerror(errno));
    }
    close(a->fd);
    a->fd = fd;
    a->rotated_bytes += (uint64_t)a->end;
    a->rotated_files++;
    a->end = 0;
    a->prev_file = first;
    a->first = 0;
    a->fresh = 1;
    a->rotations++;
    prune_rotated(a);
    return 0;
}

int gx_audit_append_n(gx_audit *a, const gx_audit_record *recs, size_t n, uint64_t *seq_out, gx_error *err) {
    if (!recs && n) return gx_error_set(err, GX_EINVAL, "record", "no record");
    if (!n) return 0;
    pthread_mutex_lock(&a->mu);
    if (a->failed) {
        pthread_mutex_unlock(&a->mu);
        return gx_error_set(err, GX_EIO, NULL, "the audit log failed earlier and takes no more records");
    }
    /* every line into the build buffer, then one write for all of them;
     * when they would take the file past max_bytes, a new file first (the
     * records of one append stay in one file) and the lines again */
    gx_jbuf b = {a->line, 0, a->line_cap};
    char head[65];
    size_t count = 0;
    int bad = build_lines(a, recs, n, &b, head, &count);
    while (!bad && a->max_bytes && a->end > 0 && (uint64_t)a->end + b.len > a->max_bytes &&
           gx__now_ns() >= a->rotate_after_ns) {
        if (a->syncing) {
            /* a sync is using a->fd outside mu: wait for it. Others may
             * append meanwhile (or rotate) in the shared build buffer, which
             * they may grow: hand it back, take it again after the wait and
             * build the lines again */
            a->line = b.p;
            a->line_cap = b.cap;
            pthread_cond_wait(&a->cv, &a->mu);
            b = (gx_jbuf){a->line, 0, a->line_cap};
            if (a->failed) {
                pthread_mutex_unlock(&a->mu);
                return gx_error_set(err, GX_EIO, NULL, "the audit log failed earlier and takes no more records");
            }
            bad = build_lines(a, recs, n, &b, head, &count);
            continue;
        }
        int rrc = rotate(a, err);
        if (rrc) {
            a->line = b.p;
            a->line_cap = b.cap;
            pthread_mutex_unlock(&a->mu);
            return rrc;
        }
        bad = build_lines(a, recs, n, &b, head, &count); /* rotated: after an audit.rotate record */
        break;
    }
    a->line = b.p;
    a->line_cap = b.cap;
    if (bad) {
        pthread_mutex_unlock(&a->mu);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    uint64_t seq = a->seq + count;
    size_t off = 0;
    int werr = 0;
    while (off < b.len) {
        ssize_t w = write(a->fd, b.p + off, b.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            werr = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    if (werr) {
        /* A write that failed (a full disk) is cut off again, so the log
         * ends with a whole record and takes the next append once the
         * write works again; these records are not in it. Only if the cut
         * fails does the log stop. (It used to stop for good: a disk full
         * for a moment left every later request without a record.) */
        struct stat st;
        if (off && fstat(a->fd, &st) == 0 && st.st_size == a->end + (off_t)off) {
            while (ftruncate(a->fd, a->end) != 0 && errno == EINTR) {
            }
        }
        /* cut, or the file is not what we wrote (cut short by someone
         * else): then stop rather than guess where our bytes are */
        if (off && (fstat(a->fd, &st) != 0 || st.st_size != a->end)) a->failed = 1;
        pthread_mutex_unlock(&a->mu);
        return gx_error_set(err, GX_EIO, NULL, "audit log write: %s", strerror(werr));
    }
    if (a->end == 0) a->first = a->seq + 1;
    a->end += (off_t)b.len;
    a->fresh = 0;
    a->seq = seq;
    memcpy(a->head, head, sizeof head);
    int rc = 0, reported = 0;
    if (a->sync_ms == 0) {
        while (a->synced < seq && !a->failed) {
            if (a->syncing) {
                pthread_cond_wait(&a->cv, &a->mu);
                continue;
            }
            uint64_t target = a->seq;
            a->syncing = 1;
            pthread_mutex_unlock(&a->mu);
            int r = fdatasync(a->fd);
            int e = errno;
            pthread_mutex_lock(&a->mu);
            a->syncing = 0;
            if (r) {
                a->failed = 1;
                gx_error_set(err, GX_EIO, NULL, "audit log sync: %s", strerror(e));
                reported = 1;
            } else if (target > a->synced) {
                a->synced = target;
            }
            pthread_cond_broadcast(&a->cv);
        }
        if (a->synced < seq) rc = GX_EIO;
    }
    pthread_mutex_unlock(&a->mu);
    if (rc && !reported) gx_error_set(err, GX_EIO, NULL, "audit log sync failed (in another append)");
    if (rc == 0 && seq_out) *seq_out = seq;
    return rc;
}

/* ---- verify ------------------------------------------------------------------------ */

static int report(gx_audit_report *rep, gx_error *err, int problem, uint64_t line, uint64_t seq,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int report(gx_audit_report *rep, gx_error *err, int problem, uint64_t line, uint64_t seq,
                  const char *fmt, ...) {
    rep->problem = problem;
    rep->line = line;
    rep->seq = seq;
    rep->last_seq = 0;
    memcpy(rep->head, ZERO_HASH, 65);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->message, sizeof rep->message, fmt, ap);
    va_end(ap);
    return gx_error_set(err, GX_EFORMAT, NULL, "%s", rep->message);
}

/* Where a verification is, across the files it reads. */
typedef struct vstate {
    gx_audit_report *rep;
    gx_error *err;
    uint64_t expect; /* seq of the next record; 0 before the first one */
    char prev[65];   /* hash of the record before */
    uint64_t lines;  /* read, in every file */
} vstate;

/* Check the records of one file, continuing v. name is the file (for
 * messages; "" for the live file, which the caller names), first the seq its
 * name says it begins with (0: the live file). 0, or what report() or a
 * read error returned. */
static int verify_file(vstate *v, FILE *f, const char *name, uint64_t first) {
    gx_audit_report *rep = v->rep;
    gx_error *err = v->err;
    char pfx[300] = "";
    if (*name) {
        const char *slash = strrchr(name, '/');
        snprintf(pfx, sizeof pfx, "%.280s: ", slash ? slash + 1 : name);
    }
    char *l = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0, seq = 0;
    char p[65], h[65];
    int rc = 0;
    while ((n = getline(&l, &cap, f)) > 0) {
        lineno++;
        v->lines++;
        uint64_t expect = v->expect ? v->expect : first ? first : 1;
        if (l[n - 1] != '\n') {
            rc = report(rep, err, GX_AUDIT_TORN, lineno, expect,
                        "%sline %llu (record %llu) is incomplete: a write was cut short", pfx,
                        (unsigned long long)lineno, (unsigned long long)expect);
            break;
        }
        int pr = check_line(l, (size_t)n - 1, &seq, p, h);
        if (pr) {
            rc = report(rep, err, pr, lineno, expect,
                        pr == GX_AUDIT_CHANGED ? "%sline %llu (record %llu) was changed: its hash does not match"
                                               : "%sline %llu (record %llu) is not an audit record",
                        pfx, (unsigned long long)lineno, (unsigned long long)expect);
            break;
        }
        if (!v->expect) {
            /* the first record there is: the chain is checked from here.
             * Only a rotation's record may begin mid-chain (the files
             * before it were deleted or archived); its prev is taken as
             * given. */
            if (seq > 1 && is_rotate_record(l, (size_t)n - 1)) {
                memcpy(v->prev, p, 65);
                if (!first) expect = seq;
            }
            v->expect = expect;
            rep->first_seq = expect;
        } else if (lineno == 1 && seq > expect) {
            rc = report(rep, err, GX_AUDIT_REMOVED, lineno, expect,
                        "%srecords %llu..%llu were removed: the file before ends with record %llu and this one "
                        "begins with record %llu (a rotated file is missing?)",
                        pfx, (unsigned long long)expect, (unsigned long long)seq - 1,
                        (unsigned long long)expect - 1, (unsigned long long)seq);
            break;
        }
        if (seq != expect) {
            /* is the record we expected somewhere further on? */
            uint64_t found = 0, at = lineno, s2;
            if (seq > expect) {
                while (!found && (n = getline(&l, &cap, f)) > 0) {
                    at++;
                    if (line_seq(l, (size_t)n, &s2) == 0 && s2 == expect) found = at;
                }
            }
            if (seq < expect)
                rc = report(rep, err, GX_AUDIT_REORDERED, lineno, expect,
                            "%sline %llu holds record %llu where record %llu belongs (reordered or repeated)", pfx,
                            (unsigned long long)lineno, (unsigned long long)seq, (unsigned long long)expect);
            else if (found)
                rc = report(rep, err, GX_AUDIT_REORDERED, lineno, expect,
                            "%sline %llu holds record %llu where record %llu belongs; record %llu is on line %llu "
                            "(reordered)",
                            pfx, (unsigned long long)lineno, (unsigned long long)seq, (unsigned long long)expect,
                            (unsigned long long)expect, (unsigned long long)found);
            else
                rc = report(rep, err, GX_AUDIT_REMOVED, lineno, expect,
                            "%srecord %llu was removed: line %llu holds record %llu", pfx, (unsigned long long)expect,
                            (unsigned long long)lineno, (unsigned long long)seq);
            break;
        }
        if (memcmp(p, v->prev, 64)) {
            rc = report(rep, err, GX_AUDIT_BROKEN, lineno, expect,
                        lineno == 1 && v->lines > 1
                            ? "%sline %llu (record %llu) does not follow the last record of the file before: its "
                              "prev hash differs"
                            : "%sline %llu (record %llu) does not follow the record before: its prev hash differs",
                        pfx, (unsigned long long)lineno, (unsigned long long)expect);
            break;
        }
        memcpy(v->prev, h, 65);
        v->expect = expect + 1;
    }
    int rerr = ferror(f);
    free(l);
    if (rc) return rc;
    if (rerr) return gx_error_set(err, GX_EIO, "path", "%s: read error", *name ? name : "audit log");
    return 0;
}

/* The first rotated file beside path after seq done (its name's number),
 * or 0. */
static uint64_t next_rotated(const char *path, uint64_t done) {
    uint64_t *rot, next = 0;
    size_t n;
    if (list_rotated(path, &rot, &n)) return 0;
    for (size_t i = 0; i < n && !next; i++)
        if (rot[i] > done) next = rot[i];
    free(rot);
    return next;
}

int gx_audit_verify(const char *path, gx_audit_report *rep, gx_error *err) {
    memset(rep, 0, sizeof *rep);
    memcpy(rep->head, ZERO_HASH, 65);
    if (!path) return gx_error_set(err, GX_EIO, "path", "(null): %s", strerror(EINVAL));
    vstate v = {.rep = rep, .err = err};
    memcpy(v.prev, ZERO_HASH, 65);
    uint64_t done = 0; /* the last rotated file read (its name's number) */
    int rc = 0, retried = 0;
    for (;;) {
        uint64_t next = next_rotated(path, done);
        if (next) {
            char name[4200];
            rotated_name(path, next, name, sizeof name);
            FILE *f = fopen(name, "re");
            done = next;
            if (!f && errno == ENOENT && !v.lines) continue; /* deleted (keep) since the listing */
            if (!f) {
                rc = gx_error_set(err, GX_EIO, "path", "%s: %s", name, strerror(errno));
                break;
            }
            snprintf(rep->file, sizeof rep->file, "%.4000s", name);
            rc = verify_file(&v, f, name, next);
            rep->files++;
            fclose(f);
            if (rc) break;
            continue;
        }
        FILE *f = fopen(path, "re");
        if (!f && errno == ENOENT && rep->files) break; /* a crash right after a rotation's rename */
        if (!f) {
            rc = gx_error_set(err, GX_EIO, "path", "%s: %s", path, strerror(errno));
            break;
        }
        /* a rotation since the listing: the live file begins past the
         * records read, and the file that holds them has appeared */
        uint64_t s0 = first_seq_fd(fileno(f));
        if (v.expect && s0 > v.expect && !retried && next_rotated(path, done)) {
            fclose(f);
            retried = 1;
            continue;
        }
        snprintf(rep->file, sizeof rep->file, "%s", path);
        rc = verify_file(&v, f, rep->files ? path : "", 0);
        rep->files++;
        fclose(f);
        break;
    }
    rep->records = v.lines;
    if (rc) return rc;
    rep->file[0] = '\0';
    rep->last_seq = v.expect ? v.expect - 1 : 0;
    memcpy(rep->head, v.prev, 65);
    if (rep->first_seq <= 1 && rep->files <= 1)
        snprintf(rep->message, sizeof rep->message, "%llu records, chain intact", (unsigned long long)rep->last_seq);
    else if (rep->first_seq <= 1)
        snprintf(rep->message, sizeof rep->message, "%llu records in %u files, chain intact",
                 (unsigned long long)rep->last_seq, rep->files);
    else
        snprintf(rep->message, sizeof rep->message,
                 "records %llu..%llu in %u files, chain intact from record %llu (the files before it are not "
                 "beside this one)",
                 (unsigned long long)rep->first_seq, (unsigned long long)rep->last_seq, rep->files,
                 (unsigned long long)rep->first_seq);
    return 0;
}

/* ---- read ---------------------------------------------------------------------------- */

/* Offset of a line start in the file (fd, size) at or before the first
 * line whose seq is > after; lines are sorted by seq. A binary search on
 * byte offsets: from a middle offset to the next line start, its seq read
 * with line_seq. Stops where a line is longer than a chunk or not a record;
 * the caller reads forward from there. */
static off_t seek_after(int fd, off_t size, uint64_t after) {
    off_t lo = 0, hi = size; /* lines before lo: seq <= after; the line at hi (or the end): > after */
    char b[4096];
    while (hi - lo > (off_t)(2 * sizeof b)) {
        off_t mid = lo + (hi - lo) / 2;
        ssize_t r = pread(fd, b, sizeof b, mid - 1);
        char *nl = r > 0 ? memchr(b, '\n', (size_t)r) : NULL;
        if (!nl) break;
        off_t s = mid - 1 + (nl - b) + 1;
        if (s >= hi) break;
        size_t have = (size_t)(r - (nl + 1 - b));
        char lb[64];
        const char *at = nl + 1;
        if (have < 32) {
            ssize_t r2 = pread(fd, lb, sizeof lb, s);
            if (r2 <= 0) break;
            at = lb, have = (size_t)r2;
        }
        uint64_t seq;
        if (line_seq(at, have, &seq)) break;
        if (seq <= after) lo = s;
        else hi = s;
    }
    return lo;
}

/* Records of one file after *after, into fn, until *got == limit; *after
 * follows. 1 when fn asked to stop, else 0. */
static int read_file(FILE *f, uint64_t *after, size_t limit, size_t *got, gx_audit_each_fn fn, void *ctx) {
    struct stat st;
    if (fstat(fileno(f), &st) || fseeko(f, seek_after(fileno(f), st.st_size, *after), SEEK_SET)) return 0;
    char *l = NULL;
    size_t cap = 0;
    ssize_t n;
    int stop = 0;
    uint64_t seq;
    while (*got < limit && !stop && (n = getline(&l, &cap, f)) > 0) {
        if (l[n - 1] != '\n') break; /* being written */
        if (line_seq(l, (size_t)n - 1, &seq) || seq <= *after) continue;
        stop = fn(ctx, seq, l, (size_t)n - 1) != 0;
        *after = seq;
        ++*got;
    }
    free(l);
    return stop;
}

int gx_audit_read(const char *path, uint64_t after, size_t limit, gx_audit_each_fn fn, void *ctx, gx_error *err) {
    if (!path || !fn) return gx_error_set(err, GX_EINVAL, path ? "fn" : "path", "no %s", path ? "function" : "path");
    uint64_t done = 0; /* the last rotated file read (its name's number) */
    size_t got = 0;
    /* each round picks the file that holds after + 1: the live file (opened
     * first, so that the rotated files listed next include everything
     * renamed before it), else the last rotated file that begins at or
     * before it (or the first one after the last file read, when records
     * are missing) */
    for (int round = 0; got < limit && round < 100000; round++) {
        FILE *live = fopen(path, "re");
        int lerr = live ? 0 : errno;
        uint64_t l0 = live ? first_seq_fd(fileno(live)) : 0;
        if (!l0) l0 = UINT64_MAX; /* empty: holds nothing yet */
        uint64_t *rot = NULL, best = 0;
        size_t n = 0;
        if (after + 1 < l0 && list_rotated(path, &rot, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                if (rot[i] <= done) continue;
                if (rot[i] <= after + 1 || !best) best = rot[i];
                if (rot[i] > after + 1) break;
            }
        }
        free(rot);
        FILE *f = live;
        if (best) {
            char name[4200];
            rotated_name(path, best, name, sizeof name);
            if (live) fclose(live);
            if (!(f = fopen(name, "re"))) {
                if (errno == ENOENT) continue; /* deleted (keep) meanwhile: choose again */
                return gx_error_set(err, GX_EIO, "path", "%s: %s", name, strerror(errno));
            }
        } else if (!live) {
            if (lerr == ENOENT) break;
            return gx_error_set(err, GX_EIO, "path", "%s: %s", path, strerror(lerr));
        }
        int stop = read_file(f, &after, limit, &got, fn, ctx);
        /* the live file renamed while it was read (a rotation): its
         * successor holds the records after it, so go on rather than
         * answer a short page that looks like the end */
        int rotated = 0;
        if (!best && !stop && got < limit) {
            struct stat a, b;
            rotated = !fstat(fileno(f), &a) && (stat(path, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev);
        }
        fclose(f);
        if (stop || (!best && !rotated)) break;
        if (best) done = best;
    }
    return 0;
}

void gx_audit_stats_get(gx_audit *a, gx_audit_stats *out) {
    pthread_mutex_lock(&a->mu);
    out->bytes = a->rotated_bytes + (uint64_t)a->end;
    out->files = a->rotated_files + 1;
    out->rotations = a->rotations;
    out->rotate_failures = a->rotate_failures;
    pthread_mutex_unlock(&a->mu);
}
