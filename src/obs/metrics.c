/*
 * metrics.c - the metrics registry: families, series, lock-free updates and
 * the Prometheus text exposition (see gexec_metrics.h).
 *
 * Locking. The registry mutex guards the family and callback lists (appended
 * only). Series are never removed, so a series pointer stays valid until
 * gx_metrics_free, and a family's index (an open-addressing table from the
 * joined label values to the series) only ever gains entries. Lookups read
 * it without a lock: the table pointer and each slot are published with
 * release stores after what they point to is complete. Creating a series
 * takes the family mutex, inserts into the table, and when the table is half
 * full copies it into one twice the size and publishes that; old tables are
 * kept (a lookup may still be reading one) and freed with the family. A
 * reader that misses on a stale table retries under the mutex. Series values
 * are atomics updated with relaxed ordering: a scrape needs no ordering
 * between series, only untorn values. A render mutex makes renders (and so
 * collect callbacks) run one at a time.
 *
 * Values. A counter keeps whole increments in a uint64 (one atomic add) and
 * anything fractional in a double updated by compare-and-swap; its value is
 * the sum. A gauge is a double. A histogram has one non-cumulative count per
 * bucket (the last is +Inf) and a double sum; _count is the total of the
 * bucket counts read at render, so _count always equals the +Inf bucket.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_metrics.h"

#define CACHE_LINE 64

typedef struct index index_t; /* lock-free series lookup table, below */

struct gx_metric_series {
    _Atomic uint64_t u;    /* counter: whole increments */
    _Atomic uint64_t f;    /* bits of a double: counter fraction, gauge value, histogram sum */
    _Atomic int hidden;    /* gauge cleared by gx_gauge_clear and not updated since */
    gx_metric_type type;   /* copy of the family's, checked by every update */
    gx_metric_family *fam; /* owner */
    uint64_t hash;         /* of key */
    size_t klen;           /* bytes of key */
    char *key;             /* label values, each NUL-terminated, end to end */
    char *vals[GX_METRICS_MAX_LABELS]; /* label values (sanitized), into key */
    char *lbl;                         /* rendered labels, l1="v1",l2="v2" (escaped), or NULL */
    size_t lbllen;
    _Atomic uint64_t buckets[]; /* histogram: nb + 1 counts, last is +Inf */
};

struct gx_metric_family {
    gx_metrics *reg;
    gx_metric_type type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[GX_METRICS_MAX_LABELS];
    double *bounds; /* histogram upper bounds, nb of them */
    size_t nb;
    char (*le)[40];            /* le="<bound>" for each bucket, rendered once */
    pthread_mutex_t lock;      /* taken to add a series, and to copy the list */
    _Atomic(index_t *) index;  /* lock-free lookup table, NULL until a series */
    index_t *retired;          /* tables replaced by larger ones, freed with the family */
    gx_metric_series **series; /* in creation order */
    size_t nseries, cap;
    gx_metric_series *single; /* the series of a family without labels */
    /* Render's copy of series sorted by label values, and how many series it
     * holds; re-sorted only when series were added. Guarded by the
     * registry's render lock. */
    gx_metric_series **sorted;
    size_t nsorted;
};

/* An index table: power-of-two slots, each NULL or a series, filled at most
 * half so probes stay short. Never shrinks, never loses an entry. */
struct index {
    index_t *next_retired;
    size_t mask;
    _Atomic(gx_metric_series *) slot[];
};

typedef struct collect_cb {
    gx_metrics_collect_fn fn;
    void *ctx;
} collect_cb;

struct gx_metrics {
    pthread_mutex_t lock;        /* families and callbacks lists */
    pthread_mutex_t render_lock; /* one render (and callback round) at a time */
    gx_metric_family **fams;
    size_t nfams, fcap;
    collect_cb *cbs;
    size_t ncbs, cbcap;
};

/* ---- small helpers -------------------------------------------------------- */

static inline uint64_t d2u(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static inline double u2d(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Atomically add v to the double stored in *a. */
static inline void atomic_add_double(_Atomic uint64_t *a, double v) {
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Decimal text of v into t (at least 21 bytes), NUL-terminated; returns the
 * length. Renders print many integers; snprintf is slow for them. */
static size_t u64_text(char *t, uint64_t v) {
    char r[20];
    size_t n = 0;
    do {
        r[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) t[i] = r[n - 1 - i];
    t[n] = '\0';
    return n;
}

/* Format v as the exposition format wants it into buf (cap >= 32): shortest
 * text that reads back as the same double; +Inf, -Inf, NaN spelled as
 * Prometheus does. Returns the length. */
static size_t fmt_double(char *buf, size_t cap, double v) {
    int n;
    if (isnan(v))
        n = snprintf(buf, cap, "NaN");
    else if (isinf(v))
        n = snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    else if (fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v) {
        if (v < 0) {
            buf[0] = '-';
            return 1 + u64_text(buf + 1, (uint64_t)-v);
        }
        return u64_text(buf, (uint64_t)v);
    } else {
        n = snprintf(buf, cap, "%.15g", v);
        if (strtod(buf, NULL) != v) n = snprintf(buf, cap, "%.17g", v);
    }
    return (size_t)n;
}

/* ---- UTF-8 ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the byte at s does
 * not start one. Overlong forms, surrogates and code points above U+10FFFF
 * are invalid. Byte k is read only after byte k-1 proved to be a lead or
 * continuation byte (never NUL), so reads stay inside the string. */
static size_t utf8_seq(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;
    if (c < 0xE0) return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
        if (c == 0xED && s[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if ((s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
        if (c == 0xF4 && s[1] >= 0x90) return 0; /* above U+10FFFF */
        return 4;
    }
    return 0;
}

static bool utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = utf8_seq(p);
        if (!n) return false;
        p += n;
    }
    return true;
}

/* strlen(s), and in *ok whether s is valid UTF-8; ASCII takes one tight
 * pass, since label values nearly always are. */
static size_t scan_value(const char *s, bool *ok) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (p[i] && p[i] < 0x80) i++;
    if (!p[i]) {
        *ok = true;
        return i;
    }
    *ok = utf8_valid(s + i);
    return i + strlen(s + i);
}

/* Bytes needed by s with each invalid byte replaced by U+FFFD (3 bytes). */
static size_t utf8_fixed_len(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        size_t k = utf8_seq(p);
        n += k ? k : 3;
        p += k ? k : 1;
    }
    return n;
}

/* Copy s into out (utf8_fixed_len(s) bytes, not NUL-terminated) replacing
 * invalid bytes by U+FFFD. */
static void utf8_fix(const char *s, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t k = utf8_seq(p);
        if (k) {
            memcpy(out, p, k);
            out += k;
            p += k;
        } else {
            memcpy(out, "\xEF\xBF\xBD", 3);
            out += 3;
            p++;
        }
    }
}

/* ---- text buffer --------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static bool sb_reserve(sbuf *b, size_t more) {
    if (b->oom) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + more + 1) ncap *= 2;
    char *n = realloc(b->p, ncap);
    if (!n) {
        b->oom = true;
        return false;
    }
    b->p = n;
    b->cap = ncap;
    return true;
}

static inline void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap && !sb_reserve(b, n)) return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_double(sbuf *b, double v) {
    char t[40];
    size_t n = fmt_double(t, sizeof t, v);
    sb_put(b, t, n);
}

static void sb_u64(sbuf *b, uint64_t v) {
    char t[24];
    size_t n = u64_text(t, v);
    sb_put(b, t, n);
}

/* Escape s: backslash and newline always, double quote when quote is set
 * (label values; help text leaves quotes alone). */
static void sb_escaped(sbuf *b, const char *s, bool quote) {
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && quote)
            rep = "\\\"";
        if (rep) {
            sb_put(b, run, (size_t)(s - run));
            sb_str(b, rep);
            run = s + 1;
        }
    }
    sb_put(b, run, (size_t)(s - run));
}

/* ---- names ----------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !memcmp(s + n - k, suffix, k);
}

static bool valid_metric_name(const char *s) {
    if (!*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static bool valid_label_name(const char *s) {
    if (!*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static const char *type_name(gx_metric_type t) {
    switch (t) {
    case GX_METRIC_COUNTER:
        return "counter";
    case GX_METRIC_GAUGE:
        return "gauge";
    case GX_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

/* Check a descriptor; 0 or GX_EINVAL with err filled. */
static int check_desc(const gx_metric_desc *d, size_t *nlabels, gx_error *err) {
    if (d->type != GX_METRIC_COUNTER && d->type != GX_METRIC_GAUGE &&
        d->type != GX_METRIC_HISTOGRAM)
        return gx_error_set(err, GX_EINVAL, "type", "unknown metric type %d", (int)d->type);
    if (!d->name || !valid_metric_name(d->name))
        return gx_error_set(err, GX_EINVAL, "name",
                            "metric name '%s' must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                            d->name ? d->name : "(null)");
    bool total = ends_with(d->name, "_total");
    if (d->type == GX_METRIC_COUNTER && !total)
        return gx_error_set(err, GX_EINVAL, "name", "counter name '%s' must end in _total",
                            d->name);
    if (d->type != GX_METRIC_COUNTER && total)
        return gx_error_set(err, GX_EINVAL, "name",
                            "only counter names end in _total ('%s' is a %s)", d->name,
                            type_name(d->type));
    static const char *const reserved[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++)
        if (ends_with(d->name, reserved[i]))
            return gx_error_set(err, GX_EINVAL, "name",
                                "metric name '%s' must not end in %s (kept for histograms)",
                                d->name, reserved[i]);
    if (!d->help || !*d->help)
        return gx_error_set(err, GX_EINVAL, "help", "metric '%s' needs a help text", d->name);
    if (!utf8_valid(d->help))
        return gx_error_set(err, GX_EINVAL, "help", "help text of '%s' is not valid UTF-8",
                            d->name);
    size_t n = 0;
    while (n < GX_METRICS_MAX_LABELS && d->labels[n]) n++;
    for (size_t i = n; i < GX_METRICS_MAX_LABELS; i++)
        if (d->labels[i])
            return gx_error_set(err, GX_EINVAL, "labels", "label names of '%s' have a gap",
                                d->name);
    for (size_t i = 0; i < n; i++) {
        const char *l = d->labels[i];
        if (!valid_label_name(l))
            return gx_error_set(err, GX_EINVAL, "labels",
                                "label name '%s' of '%s' must match [a-zA-Z_][a-zA-Z0-9_]*", l,
                                d->name);
        if (l[0] == '_' && l[1] == '_')
            return gx_error_set(err, GX_EINVAL, "labels",
                                "label name '%s' of '%s' is reserved (starts with __)", l, d->name);
        if (!strcmp(l, "le"))
            return gx_error_set(err, GX_EINVAL, "labels",
                                "label name 'le' of '%s' is reserved for histogram buckets",
                                d->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l, d->labels[j]))
                return gx_error_set(err, GX_EINVAL, "labels", "label name '%s' of '%s' repeats", l,
                                    d->name);
    }
    if (d->type == GX_METRIC_HISTOGRAM && d->buckets) {
        if (d->nbuckets < 1 || d->nbuckets > GX_METRICS_MAX_BUCKETS)
            return gx_error_set(err, GX_EINVAL, "buckets",
                                "histogram '%s' needs 1 to %d buckets, got %zu", d->name,
                                GX_METRICS_MAX_BUCKETS, d->nbuckets);
        for (size_t i = 0; i < d->nbuckets; i++) {
            if (!isfinite(d->buckets[i]))
                return gx_error_set(err, GX_EINVAL, "buckets",
                                    "bucket %zu of '%s' is not finite (+Inf is implied)", i,
                                    d->name);
            if (i > 0 && !(d->buckets[i] > d->buckets[i - 1]))
                return gx_error_set(err, GX_EINVAL, "buckets",
                                    "buckets of '%s' must increase strictly (bucket %zu)", d->name,
                                    i);
        }
    }
    *nlabels = n;
    return 0;
}

/* ---- series ------------------------------------------------------------- */

static void series_free(gx_metric_series *s) {
    if (!s) return;
    free(s->key);
    free(s->lbl);
    free(s);
}

/* Hash of a key, 8 bytes at a time. */
static uint64_t key_hash(const char *k, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, k, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        k += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, k, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    return h;
}

/* The series with this key in table t, or NULL. Lock-free. */
static gx_metric_series *index_find(const index_t *t, uint64_t h, const char *key, size_t klen) {
    if (!t) return NULL;
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        gx_metric_series *s = atomic_load_explicit(&((index_t *)t)->slot[i], memory_order_acquire);
        if (!s) return NULL;
        if (s->hash == h && s->klen == klen && !memcmp(s->key, key, klen)) return s;
    }
}

/* Put s into t's first free slot on its probe path; t has room. */
static void index_put(index_t *t, gx_metric_series *s) {
    size_t i = s->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed)) i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], s, memory_order_release);
}

static index_t *index_new(size_t cap) {
    index_t *t = malloc(sizeof *t + cap * sizeof t->slot[0]);
    if (!t) return NULL;
    t->next_retired = NULL;
    t->mask = cap - 1;
    for (size_t i = 0; i < cap; i++) atomic_init(&t->slot[i], NULL);
    return t;
}

/* New zeroed series of f with the given (already sanitized) values. */
static gx_metric_series *series_new(gx_metric_family *f, const char *const *vals) {
    size_t nb = f->type == GX_METRIC_HISTOGRAM ? f->nb + 1 : 0;
    size_t size = sizeof(gx_metric_series) + nb * sizeof(_Atomic uint64_t);
    size = (size + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    /* A line of its own, so threads updating different series never share. */
    gx_metric_series *s = aligned_alloc(CACHE_LINE, size);
    if (!s) return NULL;
    memset(s, 0, size);
    atomic_init(&s->u, 0);
    atomic_init(&s->f, d2u(0.0));
    atomic_init(&s->hidden, 0);
    for (size_t i = 0; i < nb; i++) atomic_init(&s->buckets[i], 0);
    s->type = f->type;
    s->fam = f;
    if (f->nlabels) {
        size_t total = 0;
        for (size_t i = 0; i < f->nlabels; i++) total += strlen(vals[i]) + 1;
        char *key = malloc(total);
        if (!key) {
            free(s);
            return NULL;
        }
        s->key = key;
        s->klen = total;
        for (size_t i = 0; i < f->nlabels; i++) {
            size_t n = strlen(vals[i]) + 1;
            memcpy(key, vals[i], n);
            s->vals[i] = key;
            key += n;
        }
        s->hash = key_hash(s->key, s->klen);
        sbuf b = {0};
        for (size_t i = 0; i < f->nlabels; i++) {
            if (i) sb_put(&b, ",", 1);
            sb_str(&b, f->labels[i]);
            sb_put(&b, "=\"", 2);
            sb_escaped(&b, s->vals[i], true);
            sb_put(&b, "\"", 1);
        }
        if (b.oom) {
            free(b.p);
            series_free(s);
            return NULL;
        }
        s->lbl = b.p;
        s->lbllen = b.len;
    }
    return s;
}

/* Add s to f's list; caller holds the lock. */
static int family_append(gx_metric_family *f, gx_metric_series *s) {
    if (f->nseries == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 8;
        gx_metric_series **n = realloc(f->series, ncap * sizeof *n);
        if (!n) return GX_ENOMEM;
        f->series = n;
        f->cap = ncap;
    }
    f->series[f->nseries++] = s;
    return 0;
}

gx_metric_series *gx_metrics_series_a(gx_metric_family *f, const char *const *values, size_t n) {
    if (!f || n != f->nlabels) return NULL;
    if (n == 0) return f->single;
    if (!values) return NULL;
    /* The key is the values, each followed by a NUL (values hold none), with
     * invalid UTF-8 replaced, so two spellings that render alike are one. */
    const char *vals[GX_METRICS_MAX_LABELS];
    size_t lens[GX_METRICS_MAX_LABELS]; /* of each value as it goes in the key */
    bool fix[GX_METRICS_MAX_LABELS];
    size_t klen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!values[i]) return NULL;
        bool ok;
        lens[i] = scan_value(values[i], &ok);
        fix[i] = !ok;
        if (fix[i]) lens[i] = utf8_fixed_len(values[i]);
        klen += lens[i] + 1;
    }
    char stack[512];
    char *key = klen <= sizeof stack ? stack : malloc(klen);
    if (!key) return NULL;
    char *p = key;
    for (size_t i = 0; i < n; i++) {
        vals[i] = p;
        if (fix[i])
            utf8_fix(values[i], p);
        else
            memcpy(p, values[i], lens[i]);
        p += lens[i];
        *p++ = '\0';
    }

    uint64_t h = key_hash(key, klen);
    gx_metric_series *s =
        index_find(atomic_load_explicit(&f->index, memory_order_acquire), h, key, klen);
    if (s) goto out;

    pthread_mutex_lock(&f->lock);
    index_t *t = atomic_load_explicit(&f->index, memory_order_relaxed);
    s = index_find(t, h, key, klen);
    if (!s && (s = series_new(f, vals)) != NULL) {
        size_t cap = t ? t->mask + 1 : 0;
        if (family_append(f, s)) {
            series_free(s);
            s = NULL;
        } else if (2 * f->nseries > cap) {
            /* Grow: a new table with every series, published whole. */
            index_t *nt = index_new(cap ? 2 * cap : 16);
            if (!nt) {
                f->nseries--;
                series_free(s);
                s = NULL;
            } else {
                for (size_t i = 0; i < f->nseries; i++) index_put(nt, f->series[i]);
                atomic_store_explicit(&f->index, nt, memory_order_release);
                if (t) {
                    t->next_retired = f->retired;
                    f->retired = t;
                }
            }
        } else {
            index_put(t, s);
        }
    }
    pthread_mutex_unlock(&f->lock);
out:
    if (key != stack) free(key);
    return s;
}

gx_metric_series *gx_metrics_series_nt(gx_metric_family *f, ...) {
    if (!f) return NULL;
    const char *vals[GX_METRICS_MAX_LABELS];
    size_t n = 0;
    va_list ap;
    va_start(ap, f);
    for (;;) {
        const char *v = va_arg(ap, const char *);
        if (!v) break;
        /* More values than labels: stop before overrunning vals. The
         * sentinel is still there, so reading one past the count is safe. */
        if (n == f->nlabels) {
            n = GX_METRICS_MAX_LABELS + 1;
            break;
        }
        vals[n++] = v;
    }
    va_end(ap);
    return gx_metrics_series_a(f, vals, n);
}

/* ---- updates -------------------------------------------------------------- */

void gx_counter_inc(gx_metric_series *s) {
    if (!s || s->type != GX_METRIC_COUNTER) return;
    atomic_fetch_add_explicit(&s->u, 1, memory_order_relaxed);
}

void gx_counter_add(gx_metric_series *s, double v) {
    if (!s || s->type != GX_METRIC_COUNTER || !(v >= 0)) return;
    if (v < 9007199254740992.0 && (double)(uint64_t)v == v)
        atomic_fetch_add_explicit(&s->u, (uint64_t)v, memory_order_relaxed);
    else
        atomic_add_double(&s->f, v);
}

void gx_counter_set(gx_metric_series *s, double v) {
    if (!s || s->type != GX_METRIC_COUNTER || !(v >= 0)) return;
    atomic_store_explicit(&s->u, 0, memory_order_relaxed);
    atomic_store_explicit(&s->f, d2u(v), memory_order_relaxed);
}

static inline void unhide(gx_metric_series *s) {
    if (atomic_load_explicit(&s->hidden, memory_order_relaxed))
        atomic_store_explicit(&s->hidden, 0, memory_order_relaxed);
}

void gx_gauge_set(gx_metric_series *s, double v) {
    if (!s || s->type != GX_METRIC_GAUGE) return;
    atomic_store_explicit(&s->f, d2u(v), memory_order_relaxed);
    unhide(s);
}

void gx_gauge_add(gx_metric_series *s, double v) {
    if (!s || s->type != GX_METRIC_GAUGE) return;
    atomic_add_double(&s->f, v);
    unhide(s);
}

void gx_gauge_inc(gx_metric_series *s) { gx_gauge_add(s, 1); }
void gx_gauge_dec(gx_metric_series *s) { gx_gauge_add(s, -1); }

void gx_hist_observe(gx_metric_series *s, double v) {
    if (!s || s->type != GX_METRIC_HISTOGRAM || isnan(v)) return;
    const gx_metric_family *f = s->fam;
    const double *b = f->bounds;
    size_t lo = 0, hi = f->nb; /* first bound >= v; nb means +Inf */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->f, v);
}

static uint64_t hist_count(const gx_metric_series *s) {
    uint64_t c = 0;
    for (size_t i = 0; i <= s->fam->nb; i++)
        c += atomic_load_explicit(&((gx_metric_series *)s)->buckets[i], memory_order_relaxed);
    return c;
}

double gx_metric_value(const gx_metric_series *s) {
    if (!s) return 0;
    gx_metric_series *m = (gx_metric_series *)s; /* atomic loads want non-const in C17 */
    switch (s->type) {
    case GX_METRIC_COUNTER:
        return (double)atomic_load_explicit(&m->u, memory_order_relaxed) +
               u2d(atomic_load_explicit(&m->f, memory_order_relaxed));
    case GX_METRIC_GAUGE:
        return u2d(atomic_load_explicit(&m->f, memory_order_relaxed));
    case GX_METRIC_HISTOGRAM:
        return (double)hist_count(s);
    }
    return 0;
}

double gx_hist_sum(const gx_metric_series *s) {
    if (!s || s->type != GX_METRIC_HISTOGRAM) return 0;
    return u2d(atomic_load_explicit(&((gx_metric_series *)s)->f, memory_order_relaxed));
}

int gx_gauge_clear(gx_metric_family *f) {
    if (!f || f->type != GX_METRIC_GAUGE) return GX_EINVAL;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nseries; i++)
        atomic_store_explicit(&f->series[i]->hidden, 1, memory_order_relaxed);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* ---- registry ----------------------------------------------------------- */

int gx_metrics_new(gx_metrics **out) {
    gx_metrics *r = calloc(1, sizeof *r);
    if (!r) return GX_ENOMEM;
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->render_lock, NULL);
    *out = r;
    return 0;
}

static void family_free(gx_metric_family *f) {
    if (!f) return;
    for (size_t i = 0; i < f->nseries; i++) series_free(f->series[i]);
    free(f->series);
    free(f->sorted);
    free(atomic_load_explicit(&f->index, memory_order_relaxed));
    for (index_t *t = f->retired, *next; t; t = next) {
        next = t->next_retired;
        free(t);
    }
    pthread_mutex_destroy(&f->lock);
    for (size_t i = 0; i < f->nlabels; i++) free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f->bounds);
    free(f->le);
    free(f);
}

void gx_metrics_free(gx_metrics *reg) {
    if (!reg) return;
    for (size_t i = 0; i < reg->nfams; i++) family_free(reg->fams[i]);
    free(reg->fams);
    free(reg->cbs);
    pthread_mutex_destroy(&reg->lock);
    pthread_mutex_destroy(&reg->render_lock);
    free(reg);
}

static gx_metric_family *find_locked(gx_metrics *reg, const char *name) {
    for (size_t i = 0; i < reg->nfams; i++)
        if (!strcmp(reg->fams[i]->name, name)) return reg->fams[i];
    return NULL;
}

gx_metric_family *gx_metrics_find(gx_metrics *reg, const char *name) {
    if (!reg || !name) return NULL;
    pthread_mutex_lock(&reg->lock);
    gx_metric_family *f = find_locked(reg, name);
    pthread_mutex_unlock(&reg->lock);
    return f;
}

/* Build a family from a checked descriptor; NULL when out of memory. */
static gx_metric_family *family_new(gx_metrics *reg, const gx_metric_desc *d, size_t nlabels) {
    gx_metric_family *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    pthread_mutex_init(&f->lock, NULL);
    atomic_init(&f->index, NULL);
    f->reg = reg;
    f->type = d->type;
    f->nlabels = nlabels;
    f->name = xstrdup(d->name);
    f->help = xstrdup(d->help);
    bool ok = f->name && f->help;
    for (size_t i = 0; i < nlabels; i++) ok = (f->labels[i] = xstrdup(d->labels[i])) && ok;
    if (ok && d->type == GX_METRIC_HISTOGRAM) {
        const double *b = d->buckets;
        size_t nb = d->nbuckets;
        if (!b) b = gx_metrics_buckets_latency(&nb);
        f->nb = nb;
        f->bounds = malloc(nb * sizeof *f->bounds);
        f->le = malloc(nb * sizeof *f->le);
        ok = f->bounds && f->le;
        for (size_t i = 0; ok && i < nb; i++) {
            char t[32];
            f->bounds[i] = b[i];
            fmt_double(t, sizeof t, b[i]);
            snprintf(f->le[i], sizeof f->le[i], "le=\"%s\"", t);
        }
    }
    if (ok && nlabels == 0) {
        f->single = series_new(f, NULL);
        ok = f->single && family_append(f, f->single) == 0;
        if (!ok) series_free(f->single);
    }
    if (!ok) {
        family_free(f);
        return NULL;
    }
    return f;
}

int gx_metrics_register(gx_metrics *reg, const gx_metric_desc *d, gx_metric_family **out,
                        gx_error *err) {
    gx_error_clear(err);
    if (!reg || !d) return gx_error_set(err, GX_EINVAL, NULL, "registry and descriptor needed");
    size_t nlabels = 0;
    int rc = check_desc(d, &nlabels, err);
    if (rc) return rc;
    gx_metric_family *f = family_new(reg, d, nlabels);
    if (!f) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory registering '%s'", d->name);

    pthread_mutex_lock(&reg->lock);
    /* A histogram named h also owns h_bucket, h_sum and h_count; the suffix
     * rules above keep other kinds off those names, so equal names are the
     * only clash left. */
    if (find_locked(reg, d->name)) {
        rc = gx_error_set(err, GX_EEXIST, "name", "metric '%s' is already registered", d->name);
    } else if (reg->nfams == reg->fcap) {
        size_t ncap = reg->fcap ? reg->fcap * 2 : 16;
        gx_metric_family **n = realloc(reg->fams, ncap * sizeof *n);
        if (!n)
            rc = gx_error_set(err, GX_ENOMEM, NULL, "out of memory registering '%s'", d->name);
        else {
            reg->fams = n;
            reg->fcap = ncap;
        }
    }
    if (!rc) reg->fams[reg->nfams++] = f;
    pthread_mutex_unlock(&reg->lock);
    if (rc) {
        family_free(f);
        return rc;
    }
    if (out) *out = f;
    return 0;
}

/* Register with labels given as "a,b,c". */
static int register_csv(gx_metrics *reg, gx_metric_type type, const char *name, const char *help,
                        const char *labels, const double *buckets, size_t nbuckets,
                        gx_metric_family **out, gx_error *err) {
    gx_metric_desc d = {
        .type = type, .name = name, .help = help, .buckets = buckets, .nbuckets = nbuckets};
    char names[GX_METRICS_MAX_LABELS][64];
    size_t n = 0;
    const char *p = labels ? labels : "";
    while (*p) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > p && t[-1] == ' ') t--;
        if (n == GX_METRICS_MAX_LABELS)
            return gx_error_set(err, GX_EINVAL, "labels", "'%s' has more than %d labels",
                                name ? name : "(null)", GX_METRICS_MAX_LABELS);
        if ((size_t)(t - p) >= sizeof names[0] || t == p)
            return gx_error_set(err, GX_EINVAL, "labels", "bad label list '%s' for '%s'", labels,
                                name ? name : "(null)");
        memcpy(names[n], p, (size_t)(t - p));
        names[n][t - p] = '\0';
        d.labels[n] = names[n];
        n++;
        if (!*e) break;
        p = e + 1;
        if (!*p)
            return gx_error_set(err, GX_EINVAL, "labels", "bad label list '%s' for '%s'", labels,
                                name ? name : "(null)");
    }
    return gx_metrics_register(reg, &d, out, err);
}

int gx_metrics_counter(gx_metrics *reg, const char *name, const char *help, const char *labels,
                       gx_metric_family **out, gx_error *err) {
    return register_csv(reg, GX_METRIC_COUNTER, name, help, labels, NULL, 0, out, err);
}

int gx_metrics_gauge(gx_metrics *reg, const char *name, const char *help, const char *labels,
                     gx_metric_family **out, gx_error *err) {
    return register_csv(reg, GX_METRIC_GAUGE, name, help, labels, NULL, 0, out, err);
}

int gx_metrics_histogram(gx_metrics *reg, const char *name, const char *help, const char *labels,
                         const double *buckets, size_t nbuckets, gx_metric_family **out,
                         gx_error *err) {
    return register_csv(reg, GX_METRIC_HISTOGRAM, name, help, labels, buckets, nbuckets, out, err);
}

int gx_metrics_on_collect(gx_metrics *reg, gx_metrics_collect_fn fn, void *ctx) {
    if (!reg || !fn) return GX_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    if (reg->ncbs == reg->cbcap) {
        size_t ncap = reg->cbcap ? reg->cbcap * 2 : 4;
        collect_cb *n = realloc(reg->cbs, ncap * sizeof *n);
        if (!n)
            rc = GX_ENOMEM;
        else {
            reg->cbs = n;
            reg->cbcap = ncap;
        }
    }
    if (!rc) reg->cbs[reg->ncbs++] = (collect_cb){fn, ctx};
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

/* ---- buckets ------------------------------------------------------------ */

static const double latency_buckets[] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10,
};

static const double size_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};

const double *gx_metrics_buckets_latency(size_t *n) {
    if (n) *n = sizeof latency_buckets / sizeof latency_buckets[0];
    return latency_buckets;
}

const double *gx_metrics_buckets_size(size_t *n) {
    if (n) *n = sizeof size_buckets / sizeof size_buckets[0];
    return size_buckets;
}

int gx_metrics_buckets_exp(double start, double factor, size_t n, double *out) {
    if (!out || !(start > 0) || !(factor > 1) || n < 1 || n > GX_METRICS_MAX_BUCKETS ||
        !isfinite(start) || !isfinite(factor))
        return GX_EINVAL;
    double v = start;
    for (size_t i = 0; i < n; i++, v *= factor) {
        if (!isfinite(v)) return GX_EINVAL;
        out[i] = v;
    }
    return 0;
}

/* ---- exposition ----------------------------------------------------------- */

/* Order by label values, the first label first. Comparing the keys (values
 * each ending in NUL, end to end) bytewise gives that order: a value that
 * is a prefix of another meets its NUL first and sorts first, as strcmp. */
static int cmp_series(const void *a, const void *b) {
    const gx_metric_series *x = *(gx_metric_series *const *)a;
    const gx_metric_series *y = *(gx_metric_series *const *)b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Start a sample line: `name<suffix>{labels,le} ` with the braces left out
 * when there are no labels; le may be NULL. */
static void sb_sample_open(sbuf *b, const gx_metric_family *f, const gx_metric_series *s,
                           const char *suffix, const char *le) {
    sb_str(b, f->name);
    sb_str(b, suffix);
    if (s->lbllen || le) {
        sb_put(b, "{", 1);
        if (s->lbllen) sb_put(b, s->lbl, s->lbllen);
        if (le) {
            if (s->lbllen) sb_put(b, ",", 1);
            sb_str(b, le);
        }
        sb_put(b, "}", 1);
    }
    sb_put(b, " ", 1);
}

static void render_series(sbuf *b, const gx_metric_family *f, gx_metric_series *s) {
    switch (f->type) {
    case GX_METRIC_COUNTER:
    case GX_METRIC_GAUGE:
        sb_sample_open(b, f, s, "", NULL);
        sb_double(b, gx_metric_value(s));
        sb_put(b, "\n", 1);
        return;
    case GX_METRIC_HISTOGRAM: {
        uint64_t counts[GX_METRICS_MAX_BUCKETS + 1];
        for (size_t i = 0; i <= f->nb; i++)
            counts[i] = atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        double sum = u2d(atomic_load_explicit(&s->f, memory_order_relaxed));
        uint64_t cum = 0;
        for (size_t i = 0; i <= f->nb; i++) {
            cum += counts[i];
            sb_sample_open(b, f, s, "_bucket", i < f->nb ? f->le[i] : "le=\"+Inf\"");
            sb_u64(b, cum);
            sb_put(b, "\n", 1);
        }
        sb_sample_open(b, f, s, "_sum", NULL);
        sb_double(b, sum);
        sb_put(b, "\n", 1);
        sb_sample_open(b, f, s, "_count", NULL);
        sb_u64(b, cum);
        sb_put(b, "\n", 1);
        return;
    }
    }
}

/* Render one family; false when out of memory. Caller holds the render
 * lock. */
static bool render_family(sbuf *b, gx_metric_family *f) {
    pthread_mutex_lock(&f->lock);
    size_t n = f->nseries;
    if (n != f->nsorted) {
        gx_metric_series **v = realloc(f->sorted, n * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&f->lock);
            return false;
        }
        memcpy(v, f->series, n * sizeof *v);
        f->sorted = v;
    }
    pthread_mutex_unlock(&f->lock);
    if (n != f->nsorted) {
        if (f->nlabels) qsort(f->sorted, n, sizeof *f->sorted, cmp_series);
        f->nsorted = n;
    }

    bool header = false;
    for (size_t i = 0; i < n; i++) {
        gx_metric_series *s = f->sorted[i];
        if (atomic_load_explicit(&s->hidden, memory_order_relaxed)) continue;
        if (!header) {
            sb_str(b, "# HELP ");
            sb_str(b, f->name);
            sb_put(b, " ", 1);
            sb_escaped(b, f->help, false);
            sb_str(b, "\n# TYPE ");
            sb_str(b, f->name);
            sb_put(b, " ", 1);
            sb_str(b, type_name(f->type));
            sb_put(b, "\n", 1);
            header = true;
        }
        render_series(b, f, s);
    }
    return !b->oom;
}

int gx_metrics_render(gx_metrics *reg, char **buf, size_t *len) {
    if (!reg || !buf) return GX_EINVAL;
    *buf = NULL;
    if (len) *len = 0;
    pthread_mutex_lock(&reg->render_lock);

    /* Callbacks run without the list lock: they may create series or even
     * register families. Those registered meanwhile are seen next time. */
    pthread_mutex_lock(&reg->lock);
    size_t ncbs = reg->ncbs;
    collect_cb *cbs = ncbs ? malloc(ncbs * sizeof *cbs) : NULL;
    if (cbs) memcpy(cbs, reg->cbs, ncbs * sizeof *cbs);
    pthread_mutex_unlock(&reg->lock);
    if (ncbs && !cbs) {
        pthread_mutex_unlock(&reg->render_lock);
        return GX_ENOMEM;
    }
    for (size_t i = 0; i < ncbs; i++) cbs[i].fn(reg, cbs[i].ctx);
    free(cbs);

    pthread_mutex_lock(&reg->lock);
    size_t nf = reg->nfams;
    gx_metric_family **fams = nf ? malloc(nf * sizeof *fams) : NULL;
    if (fams) memcpy(fams, reg->fams, nf * sizeof *fams);
    pthread_mutex_unlock(&reg->lock);

    sbuf b = {0};
    bool ok = !nf || fams;
    ok = ok && sb_reserve(&b, 0);
    for (size_t i = 0; ok && i < nf; i++) ok = render_family(&b, fams[i]);
    free(fams);
    pthread_mutex_unlock(&reg->render_lock);
    if (!ok) {
        free(b.p);
        return GX_ENOMEM;
    }
    b.p[b.len] = '\0';
    *buf = b.p;
    if (len) *len = b.len;
    return 0;
}
