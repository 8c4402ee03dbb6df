/*
 * benchutil.h - what every C benchmark shares: the repetition and scale
 * knobs (GX_BENCH_REPS, GX_BENCH_SCALE) and the median of the repetitions.
 * Header-only, so the StarPU peer (built without libgexec) uses it too.
 */
#ifndef GX_BENCHUTIL_H
#define GX_BENCHUTIL_H

#include <stdlib.h>

/* GX_BENCH_REPS: repetitions per figure (default 3). */
static inline int bench_reps(void) {
    const char *s = getenv("GX_BENCH_REPS");
    int r = s ? atoi(s) : 3;
    return r > 0 ? r : 3;
}

/* GX_BENCH_SCALE: work per repetition relative to the default (< 1 for quick runs). */
static inline double bench_scale(void) {
    const char *s = getenv("GX_BENCH_SCALE");
    double v = s ? atof(s) : 1;
    return v > 0 ? v : 1;
}

static inline int bench_cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
