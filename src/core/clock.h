/*
 * clock.h - time in nanoseconds: monotonic for intervals, wall for display.
 */
#ifndef GX_CLOCK_H
#define GX_CLOCK_H
#include <stdint.h>
#include <time.h>

static inline int64_t gx__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Monotonic at the kernel tick (a few ms): cheaper than gx__now_ns() where
 * that is precise enough (the quota's 10-second buckets). */
static inline int64_t gx__coarse_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t gx__wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The CLOCK_REALTIME deadline ns from now, for pthread_cond_timedwait. */
static inline struct timespec gx__realtime_in(int64_t ns) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ns < 0) ns = 0;
    ns += ts.tv_nsec;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}
#endif
