/*
 * ratelimit.c - a token bucket per key: rate tokens a second, at most burst
 * of them; each request takes one.
 *
 * Buckets live in 64 stripes chosen by a hash of the key, each with its own
 * mutex and map, so requests of different keys rarely share a lock and a
 * take is a hash, a lock and a few float operations. A bucket holds
 * (tokens, time of last refill); the refill is computed lazily at take.
 *
 * Memory stays bounded: when a stripe holds more than its share of
 * max_keys, buckets that have refilled to full are dropped (a full bucket
 * is the same as a new one, so nothing is forgotten that matters).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "auth_int.h"
#include "clock.h"
#include "hmap.h"

#define NSTRIPES 64

typedef struct bucket {
    char *key;       /* owned copy */
    size_t klen;
    double tokens;
    int64_t last_ns; /* time tokens was computed */
} bucket;

typedef struct stripe {
    pthread_mutex_t mu;
    gx__hmap map; /* key -> index in b */
    bucket *b;
    size_t n, cap;
} __attribute__((aligned(64))) stripe;

struct gx_auth_limiter {
    double rate_per_ns;
    double rate;
    double burst;
    size_t max_per_stripe;
    int64_t (*clock)(void *);
    void *clock_ctx;
    stripe s[NSTRIPES];
};

static int64_t mono(void *ctx) {
    (void)ctx;
    return gx__now_ns();
}

int gx_auth_limiter_create(const gx_auth_limiter_config *cfg, gx_auth_limiter **out, gx_error *err) {
    *out = NULL;
    if (!(cfg->rate > 0) || cfg->rate > 1e9)
        return gx_error_set(err, GX_EINVAL, "rate", "rate must be > 0 and <= 1e9 per second");
    if (!(cfg->burst >= 1) || cfg->burst > 1e12)
        return gx_error_set(err, GX_EINVAL, "burst", "burst must be >= 1");
    gx_auth_limiter *l = aligned_alloc(64, (sizeof *l + 63) / 64 * 64);
    if (!l) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    memset(l, 0, sizeof *l);
    l->rate = cfg->rate;
    l->rate_per_ns = cfg->rate / 1e9;
    l->burst = cfg->burst;
    size_t max = cfg->max_keys ? cfg->max_keys : 100000;
    l->max_per_stripe = max / NSTRIPES + 1;
    l->clock = cfg->clock ? cfg->clock : mono;
    l->clock_ctx = cfg->clock_ctx;
    for (int i = 0; i < NSTRIPES; i++) pthread_mutex_init(&l->s[i].mu, NULL);
    *out = l;
    return 0;
}

void gx_auth_limiter_destroy(gx_auth_limiter *l) {
    if (!l) return;
    for (int i = 0; i < NSTRIPES; i++) {
        stripe *s = &l->s[i];
        for (size_t j = 0; j < s->n; j++) free(s->b[j].key);
        free(s->b);
        gx__hmap_free(&s->map);
        pthread_mutex_destroy(&s->mu);
    }
    free(l);
}

static uint64_t fnv1a(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static double refill(const gx_auth_limiter *l, const bucket *b, int64_t now) {
    double t = b->tokens;
    if (now > b->last_ns) t += (double)(now - b->last_ns) * l->rate_per_ns;
    return t < l->burst ? t : l->burst;
}

/* Drop full buckets of a stripe (lock held). */
static void sweep(gx_auth_limiter *l, stripe *s, int64_t now) {
    for (size_t j = 0; j < s->n;) {
        if (refill(l, &s->b[j], now) < l->burst) {
            j++;
            continue;
        }
        gx__hmap_del(&s->map, s->b[j].key, s->b[j].klen);
        free(s->b[j].key);
        if (j != s->n - 1) {
            s->b[j] = s->b[s->n - 1];
            gx__hmap_put(&s->map, s->b[j].key, s->b[j].klen, j); /* replaces: no allocation */
        }
        s->n--;
    }
}

int gx_auth_limiter_take(gx_auth_limiter *l, const char *key, double *retry_after_s) {
    if (retry_after_s) *retry_after_s = 0;
    if (!key) key = "";
    size_t klen = strlen(key);
    stripe *s = &l->s[fnv1a(key, klen) % NSTRIPES];
    int64_t now = l->clock(l->clock_ctx);
    pthread_mutex_lock(&s->mu);
    uint64_t idx;
    bucket *b;
    if (gx__hmap_get(&s->map, key, klen, &idx)) {
        b = &s->b[idx];
        b->tokens = refill(l, b, now);
    } else {
        if (s->n >= l->max_per_stripe) sweep(l, s, now);
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 8;
            bucket *nb = realloc(s->b, nc * sizeof *nb);
            if (!nb) {
                pthread_mutex_unlock(&s->mu);
                return GX_ENOMEM;
            }
            s->b = nb;
            s->cap = nc;
        }
        char *kc = malloc(klen + 1);
        if (!kc || gx__hmap_put(&s->map, key, klen, s->n)) {
            free(kc);
            pthread_mutex_unlock(&s->mu);
            return GX_ENOMEM;
        }
        memcpy(kc, key, klen + 1);
        b = &s->b[s->n++];
        *b = (bucket){kc, klen, l->burst, now};
    }
    if (now > b->last_ns) b->last_ns = now;
    int rc = 0;
    if (b->tokens >= 1) {
        b->tokens -= 1;
    } else {
        rc = GX_ELIMIT;
        if (retry_after_s) *retry_after_s = (1 - b->tokens) / l->rate;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}
