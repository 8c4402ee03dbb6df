/*
 * testutil.h - helpers for the unit tests: cmocka includes, seeded random
 * inputs (seed printed so a failure can be replayed with GX_TEST_SEED),
 * array builders and relative-error comparison.
 */
#ifndef GX_TESTUTIL_H
#define GX_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gexec/gexec.h"

/* Seed from GX_TEST_SEED or the clock; printed once. */
uint64_t tu_seed(void);
/* xorshift random numbers from the seed. */
uint64_t tu_rand(void);
double tu_uniform(double lo, double hi);
double tu_normal(void);

/* New arrays filled with uniform random values in [lo, hi). */
gx_array *tu_rand_array(gx_dtype dt, int ndim, const int64_t *shape, double lo, double hi);
gx_array *tu_rand1(gx_dtype dt, int64_t n, double lo, double hi);
/* Array from a list of doubles. */
gx_array *tu_from(gx_dtype dt, int ndim, const int64_t *shape, const double *vals);

/* ||a - ref|| / ||ref|| over all elements (ref as double values). */
double tu_rel_err(const gx_array *a, const double *ref, int64_t n);

/* A file of the source tree ($GX_SOURCE_DIR/rel) whole, NUL-terminated;
 * its length in *len (if len), its path in path (if path). The test fails
 * when it cannot be read. free() it. */
char *tu_source_file(const char *rel, size_t *len, char *path, size_t cap);

/* The block of $GX_SOURCE_DIR/doc between "<!-- BEGIN name -->\n" and
 * "<!-- END name -->" must equal gen (need bytes); with GX_UPDATE_DOCS set
 * it is rewritten instead. hint says which code and test generate it. */
void tu_doc_block(const char *doc, const char *name, const char *gen, size_t need, const char *hint);

/* Fail the test with the error's message unless rc == 0. */
#define TU_OK(rc, err)                                                              \
    do {                                                                            \
        int rc__ = (rc);                                                            \
        if (rc__ != 0)                                                              \
            fail_msg("%s: %s (field '%s'): %s", #rc, gx_err_name(rc__), (err).field, \
                     (err).message);                                                \
    } while (0)

/* Submit one job; fail the test with the engine's error unless accepted. */
gx_job_id tu_submit(gx_engine *e, const gx_job_spec *s);

#endif
