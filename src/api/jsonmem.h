/*
 * jsonmem.h - jansson's allocations, counted per thread, so that decoding
 * one request body can be held to a memory budget.
 *
 * A JSON text takes up to ~20 times its size once decoded (a number of two
 * bytes, "1,", becomes a 24-byte value, its allocation header and an array
 * slot): a 64 MiB body of inline numbers took 2 GB, and two HTTP threads
 * decoding such bodies at once could get the daemon killed for memory.
 */
#ifndef GX_JSONMEM_H
#define GX_JSONMEM_H

#include <stddef.h>

/* Route jansson's allocations through the counters (plain malloc and
 * free underneath). gexecd does it first thing in main; without it the
 * budget below is not enforced. */
void gx_json_mem_install(void);

/* Hold this thread's jansson allocations to limit bytes (0: no limit) from
 * now until gx_json_budget_end; an allocation past it fails (so does the
 * parse). gx_json_budget_end says whether one did. */
void gx_json_budget_begin(size_t limit);
int gx_json_budget_end(void);

#endif
