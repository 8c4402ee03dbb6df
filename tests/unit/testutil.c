/*
 * testutil.c - see testutil.h.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t state;

uint64_t tu_seed(void) {
    static uint64_t seed;
    if (!seed) {
        const char *s = getenv("GX_TEST_SEED");
        seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
        if (!seed) seed = 1;
        state = seed;
        fprintf(stderr, "test seed: GX_TEST_SEED=%llu\n", (unsigned long long)seed);
    }
    return seed;
}

uint64_t tu_rand(void) {
    if (!state) tu_seed();
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

double tu_uniform(double lo, double hi) {
    return lo + (hi - lo) * ((double)(tu_rand() >> 11) / 9007199254740992.0);
}

double tu_normal(void) {
    double u = tu_uniform(1e-12, 1), v = tu_uniform(0, 1);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

gx_array *tu_rand_array(gx_dtype dt, int ndim, const int64_t *shape, double lo, double hi) {
    gx_array *a = NULL;
    gx_error err;
    TU_OK(gx_array_new(dt, ndim, shape, &a, &err), err);
    int is_int = dt != GX_F32 && dt != GX_F64 && dt != GX_F16;
    for (int64_t i = 0; i < a->count; i++) {
        double v = tu_uniform(lo, hi);
        gx_array_set_f64(a, i, is_int ? floor(v) : v);
    }
    return a;
}

gx_array *tu_rand1(gx_dtype dt, int64_t n, double lo, double hi) {
    return tu_rand_array(dt, 1, &n, lo, hi);
}

gx_array *tu_from(gx_dtype dt, int ndim, const int64_t *shape, const double *vals) {
    gx_array *a = NULL;
    gx_error err;
    TU_OK(gx_array_new(dt, ndim, shape, &a, &err), err);
    for (int64_t i = 0; i < a->count; i++) gx_array_set_f64(a, i, vals[i]);
    return a;
}

double tu_rel_err(const gx_array *a, const double *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = gx_array_get_f64(a, i) - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
    }
    if (den == 0) return sqrt(num);
    return sqrt(num / den);
}

char *tu_source_file(const char *rel, size_t *len, char *path, size_t cap) {
    const char *src = getenv("GX_SOURCE_DIR");
    char own[1024];
    if (!path) {
        path = own;
        cap = sizeof own;
    }
    snprintf(path, cap, "%s/%s", src && *src ? src : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s (ctest sets GX_SOURCE_DIR to the source tree)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    size_t got = fread(text, 1, (size_t)n, f);
    text[got] = '\0';
    fclose(f);
    if (len) *len = got;
    return text;
}

void tu_doc_block(const char *doc, const char *name, const char *gen, size_t need, const char *hint) {
    char path[512], b[96], e[96];
    snprintf(b, sizeof b, "<!-- BEGIN %s -->\n", name);
    snprintf(e, sizeof e, "<!-- END %s -->", name);
    size_t len;
    char *text = tu_source_file(doc, &len, path, sizeof path);
    char *pb = strstr(text, b), *pe = pb ? strstr(pb, e) : NULL;
    if (!pb || !pe) fail_msg("%s lacks the %s markers", path, name);
    pb += strlen(b);
    if ((size_t)(pe - pb) != need || memcmp(pb, gen, need)) {
        if (getenv("GX_UPDATE_DOCS")) {
            FILE *fp = fopen(path, "wb");
            assert_non_null(fp);
            fwrite(text, 1, (size_t)(pb - text), fp);
            fwrite(gen, 1, need, fp);
            fwrite(pe, 1, len - (size_t)(pe - text), fp);
            fclose(fp);
            print_message("rewrote the %s in %s\n", name, path);
        } else {
            fail_msg("the %s in %s differs from %s; run it with GX_UPDATE_DOCS=1. Generated:\n%s", name, path, hint,
                     gen);
        }
    }
    free(text);
}

gx_job_id tu_submit(gx_engine *e, const gx_job_spec *s) {
    gx_job_id id = 0;
    gx_error err;
    TU_OK(gx_submit(e, s, &id, NULL, &err), err);
    return id;
}
