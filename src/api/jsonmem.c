/*
 * jsonmem.c - jansson's allocations, counted per thread. See jsonmem.h.
 *
 * The blocks are plain malloc blocks (json_dumps' text, for one, is
 * released with free() all over), measured with malloc_usable_size. The
 * count is per thread and signed: a value decoded by one thread and freed
 * by another lowers the second one's count, which matters only while a
 * budget is set, and a budget is set only around one parse on the thread
 * that parses.
 */
#include "jsonmem.h"

#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

static _Thread_local int64_t tl_used;  /* bytes allocated here, less freed here */
static _Thread_local int64_t tl_limit; /* 0: none */
static _Thread_local int tl_over;      /* an allocation was refused */

static void *jm_malloc(size_t n) {
    if (tl_limit && tl_used + (int64_t)n > tl_limit) {
        tl_over = 1;
        return NULL;
    }
    void *p = malloc(n);
    if (p) tl_used += (int64_t)malloc_usable_size(p);
    return p;
}

static void jm_free(void *p) {
    if (!p) return;
    tl_used -= (int64_t)malloc_usable_size(p);
    free(p);
}

void gx_json_mem_install(void) { json_set_alloc_funcs(jm_malloc, jm_free); }

void gx_json_budget_begin(size_t limit) {
    tl_used = 0;
    tl_over = 0;
    tl_limit = limit > INT64_MAX ? INT64_MAX : (int64_t)limit;
}

int gx_json_budget_end(void) {
    int over = tl_over;
    tl_limit = 0;
    tl_over = 0;
    return over;
}
