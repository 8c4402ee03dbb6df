/*
 * gexec_fault.h - built-in fault injection, off by default.
 *
 * Tests, the soak script and operators arm faults at named points; the code
 * at each point asks gx_fault_take() whether to fail this time. With nothing
 * armed a check is one relaxed atomic load, so the points stay in release
 * builds. State is process-wide (one daemon per process), guarded by its own
 * mutex.
 *
 * Points and what their spec fields mean:
 *   GX_FAULT_STORE_COMMIT  fail the next `count` store commits (code: the
 *                          GX_E* the store reports, default GX_ESTORE)
 *   GX_FAULT_STORE_FULL    behave as a full disk (ENOSPC) for `count` writes
 *   GX_FAULT_STORE_SLOW    add delay_us to each of the next `count` commits
 *   GX_FAULT_DEVICE_LAUNCH fail the next `count` launches on `device` (-1 any)
 *                          with device error `code` (a backend error number,
 *                          e.g. a CUDA error; 0 = the backend's default)
 *   GX_FAULT_DEVICE_HANG   the next `count` launches on `device` never return
 *                          on their own (until the device is reset or the
 *                          job cancelled)
 * count < 0 arms a point until cleared.
 */
#ifndef GEXEC_FAULT_H
#define GEXEC_FAULT_H

#include <stdint.h>

#include "gexec_err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gx_fault_point {
    GX_FAULT_STORE_COMMIT = 0,
    GX_FAULT_STORE_FULL,
    GX_FAULT_STORE_SLOW,
    GX_FAULT_DEVICE_LAUNCH,
    GX_FAULT_DEVICE_HANG,
    GX_FAULT__COUNT
} gx_fault_point;

typedef struct gx_fault_spec {
    gx_fault_point point;
    int device;       /* device index for device points, -1 = any */
    int64_t count;    /* triggers left; < 0 = until cleared */
    int code;         /* error to report (meaning depends on the point) */
    int64_t delay_us; /* GX_FAULT_STORE_SLOW: added latency */
    int64_t fired;    /* times it has triggered (read back by gx_fault_list) */
} gx_fault_spec;

/* Stable lower-case name of a point ("store.commit", "store.full",
 * "store.slow", "device.launch", "device.hang"); NULL when out of range. */
const char *gx_fault_point_name(gx_fault_point p);

/* Point from its name; -1 when unknown. */
int gx_fault_point_parse(const char *name);

/* Arm a point (replaces what was armed there). GX_EINVAL with err set for a
 * bad point, device < -1, or delay_us outside 0..60 s. */
int gx_fault_arm(const gx_fault_spec *spec, gx_error *err);

/* Disarm one point, or every point with GX_FAULT__COUNT. */
void gx_fault_clear(gx_fault_point p);

/* Called at a point: returns 1 and copies the armed spec to *out (may be
 * NULL) when this event must fail (consuming one count), 0 otherwise.
 * device is the device at hand (-1 where it does not apply). */
int gx_fault_take(gx_fault_point p, int device, gx_fault_spec *out);

/* Copy the armed points (count != 0) to out (cap entries); returns how
 * many are armed. */
int gx_fault_list(gx_fault_spec *out, int cap);

/* Total triggers since start, all points (for metrics). */
int64_t gx_fault_fired_total(void);

#ifdef __cplusplus
}
#endif
#endif
