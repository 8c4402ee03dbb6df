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
 */
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

/* Find the last line of the file, cutting off a torn one. *torn gets the
 * bytes cut. Fills a->seq and a->head. */
static int load_tail(gx_audit *a, const char *path, off_t *torn, gx_error *err) {
    *torn = 0;
    struct stat st;
    if (fstat(a->fd, &st)) return gx_error_set(err, GX_EIO, "path", "%s: %s", path, strerror(errno));
    off_t size = st.st_size;
    if (size == 0) return 0;
    size_t want = (size_t)(size < 2 * LINE_MAX_BYTES ? size : 2 * LINE_MAX_BYTES);
    char *b = malloc(want);
    if (!b) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    off_t base = size - (off_t)want;
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(a->fd, b + got, want - got, base + (off_t)got);
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
        if (ftruncate(a->fd, base + (off_t)end) || fsync(a->fd)) {
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
    int p = check_line(b + start, end - 1 - start, &a->seq, prev, a->head);
    if (p)
        rc = gx_error_set(err, GX_EFORMAT, "path", "%s: the last record is %s; run the audit verification",
                          path, gx_audit_problem_name(p));
out:
    free(b);
    return rc;
}

int gx_audit_open(const gx_audit_config *cfg, gx_audit **out, gx_error *err) {
    *out = NULL;
    if (!cfg || !cfg->path || !*cfg->path) return gx_error_set(err, GX_EINVAL, "path", "no audit log path");
    gx_audit *a = calloc(1, sizeof *a);
    if (!a) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    a->sync_ms = cfg->sync_ms;
    memcpy(a->head, ZERO_HASH, 65);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->fd = open(cfg->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        int rc = gx_error_set(err, GX_EIO, "path", "%s: %s", cfg->path, strerror(errno));
        gx_audit_close(a);
        return rc;
    }
    off_t torn = 0;
    int rc = load_tail(a, cfg->path, &torn, err);
    a->synced = a->seq;
    struct stat st;
    if (rc == 0 && fstat(a->fd, &st) == 0) a->end = st.st_size;
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

int gx_audit_append_n(gx_audit *a, const gx_audit_record *recs, size_t n, uint64_t *seq_out, gx_error *err) {
    if (!recs && n) return gx_error_set(err, GX_EINVAL, "record", "no record");
    if (!n) return 0;
    pthread_mutex_lock(&a->mu);
    if (a->failed) {
        pthread_mutex_unlock(&a->mu);
        return gx_error_set(err, GX_EIO, NULL, "the audit log failed earlier and takes no more records");
    }
    /* every line into the build buffer, each chained to the one before,
     * then one write for all of them */
    gx_jbuf b = {a->line, 0, a->line_cap};
    char head[65];
    memcpy(head, a->head, sizeof head);
    int bad = 0;
    for (size_t i = 0; i < n && !bad; i++) {
        bad = build_line(&b, a->seq + 1 + i, head, &recs[i]);
        if (!bad) {
            memcpy(head, b.p + b.len - 67, 64); /* ..."hash":"<64>"}\n */
            head[64] = '\0';
        }
    }
    a->line = b.p;
    a->line_cap = b.cap;
    if (bad) {
        pthread_mutex_unlock(&a->mu);
        return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    }
    uint64_t seq = a->seq + n;
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
    a->end += (off_t)b.len;
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

int gx_audit_verify(const char *path, gx_audit_report *rep, gx_error *err) {
    memset(rep, 0, sizeof *rep);
    memcpy(rep->head, ZERO_HASH, 65);
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f) return gx_error_set(err, GX_EIO, "path", "%s: %s", path ? path : "(null)", strerror(errno));
    char *l = NULL;
    size_t cap = 0;
    ssize_t n;
    uint64_t lineno = 0, expect = 1, seq = 0;
    char prev[65] = ZERO_HASH, p[65], h[65];
    int rc = 0;
    while ((n = getline(&l, &cap, f)) > 0) {
        lineno++;
        if (l[n - 1] != '\n') {
            rc = report(rep, err, GX_AUDIT_TORN, lineno, expect,
                        "line %llu (record %llu) is incomplete: a write was cut short",
                        (unsigned long long)lineno, (unsigned long long)expect);
            break;
        }
        int pr = check_line(l, (size_t)n - 1, &seq, p, h);
        if (pr) {
            rc = report(rep, err, pr, lineno, expect,
                        pr == GX_AUDIT_CHANGED ? "line %llu (record %llu) was changed: its hash does not match"
                                               : "line %llu (record %llu) is not an audit record",
                        (unsigned long long)lineno, (unsigned long long)expect);
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
                            "line %llu holds record %llu where record %llu belongs (reordered or repeated)",
                            (unsigned long long)lineno, (unsigned long long)seq, (unsigned long long)expect);
            else if (found)
                rc = report(rep, err, GX_AUDIT_REORDERED, lineno, expect,
                            "line %llu holds record %llu where record %llu belongs; record %llu is on line %llu "
                            "(reordered)",
                            (unsigned long long)lineno, (unsigned long long)seq, (unsigned long long)expect,
                            (unsigned long long)expect, (unsigned long long)found);
            else
                rc = report(rep, err, GX_AUDIT_REMOVED, lineno, expect,
                            "record %llu was removed: line %llu holds record %llu", (unsigned long long)expect,
                            (unsigned long long)lineno, (unsigned long long)seq);
            break;
        }
        if (memcmp(p, prev, 64)) {
            rc = report(rep, err, GX_AUDIT_BROKEN, lineno, expect,
                        "line %llu (record %llu) does not follow the record before: its prev hash differs",
                        (unsigned long long)lineno, (unsigned long long)expect);
            break;
        }
        memcpy(prev, h, 65);
        expect++;
    }
    int rerr = ferror(f);
    free(l);
    fclose(f);
    rep->records = lineno;
    if (rc) return rc;
    if (rerr) return gx_error_set(err, GX_EIO, "path", "%s: read error", path);
    rep->last_seq = expect - 1;
    memcpy(rep->head, prev, 65);
    snprintf(rep->message, sizeof rep->message, "%llu records, chain intact", (unsigned long long)rep->last_seq);
    return 0;
}
