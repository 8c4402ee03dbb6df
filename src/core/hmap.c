/*
 * hmap.c - see hmap.h.
 */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    h ^= h >> 29;
    return h < 2 ? h + 2 : h;
}

void gx__hmap_free(gx__hmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash > 1) free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static gx__hslot *lookup(const gx__hmap *m, uint64_t h, const void *key, size_t klen) {
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        gx__hslot *s = &m->slots[i];
        if (s->hash == 0) return NULL;
        if (s->hash == h && s->klen == klen && !memcmp(s->key, key, klen)) return s;
    }
}

int gx__hmap_get(const gx__hmap *m, const void *key, size_t klen, uint64_t *val) {
    gx__hslot *s = lookup(m, hash_bytes(key, klen), key, klen);
    if (!s) return 0;
    if (val) *val = s->val;
    return 1;
}

static int grow(gx__hmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    if (m->live * 2 < m->cap) ncap = m->cap; /* mostly tombstones: rehash same size */
    gx__hslot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        gx__hslot *s = &m->slots[i];
        if (s->hash <= 1) continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].hash) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->live;
    return 0;
}

int gx__hmap_put(gx__hmap *m, const void *key, size_t klen, uint64_t val) {
    uint64_t h = hash_bytes(key, klen);
    gx__hslot *s = lookup(m, h, key, klen);
    if (s) {
        s->val = val;
        return 0;
    }
    if ((m->used + 1) * 10 >= m->cap * 7 && grow(m)) return -1;
    char *k = malloc(klen ? klen : 1);
    if (!k) return -1;
    memcpy(k, key, klen);
    size_t mask = m->cap - 1, i = h & mask;
    while (m->slots[i].hash > 1) i = (i + 1) & mask;
    if (m->slots[i].hash == 0) m->used++;
    m->slots[i] = (gx__hslot){h, k, klen, val};
    m->live++;
    return 0;
}

int gx__hmap_del(gx__hmap *m, const void *key, size_t klen) {
    gx__hslot *s = lookup(m, hash_bytes(key, klen), key, klen);
    if (!s) return 0;
    free(s->key);
    s->key = NULL;
    s->hash = 1;
    m->live--;
    return 1;
}

size_t gx__hmap_bytes(const gx__hmap *m) {
    size_t b = m->cap * sizeof(gx__hslot);
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash > 1) b += m->slots[i].klen;
    return b;
}
