/*
 * hmap.h - a small open-addressing hash map from byte strings to uint64.
 *
 * Used for tenant names and idempotency keys. Keys are copied. Not
 * thread-safe: callers hold their own lock. Linear probing with tombstones;
 * grows at 70% load.
 */
#ifndef GX_HMAP_H
#define GX_HMAP_H
#include <stddef.h>
#include <stdint.h>

typedef struct gx__hslot {
    uint64_t hash;  /* 0 = empty, 1 = tombstone */
    char *key;
    size_t klen;
    uint64_t val;
} gx__hslot;

typedef struct gx__hmap {
    gx__hslot *slots;
    size_t cap;   /* power of two */
    size_t used;  /* live + tombstones */
    size_t live;
} gx__hmap;

void gx__hmap_free(gx__hmap *m);
/* Find key; returns 1 and *val if present. */
int gx__hmap_get(const gx__hmap *m, const void *key, size_t klen, uint64_t *val);
/* Insert or replace; returns 0 or -1 on allocation failure. */
int gx__hmap_put(gx__hmap *m, const void *key, size_t klen, uint64_t val);
/* Remove; returns 1 if it was there. */
int gx__hmap_del(gx__hmap *m, const void *key, size_t klen);
/* Approximate bytes held. */
size_t gx__hmap_bytes(const gx__hmap *m);
#endif
