/*
 * breaker.h - circuit breakers: the state machine (pure, clock passed in)
 * and the engine's per-device and per-kernel breakers built on it.
 *
 * closed --(threshold consecutive counted failures)--> open
 * open --(cooldown passed)--> half_open: one probe job may go
 * half_open --(probe succeeds)--> closed; --(probe fails)--> open again
 *
 * A failure counts only when the error class table says it points at the
 * device (GX_EBRK_DEVICE) or the kernel (GX_EBRK_KERNEL); anything else
 * (bad input, cancellation, shutdown) neither counts nor resets, and a probe
 * ending that way just lets the next probe go. threshold 0 disables a
 * breaker (always closed).
 *
 * Kernel breakers are per kernel (name@version) and tenant, across devices:
 * a device problem is the device breaker's business, so what remains is the
 * kernel's own, and a tenant whose jobs of a kernel fail (its inputs, say)
 * holds back only its own jobs of it. Jobs whose breaker is open are parked
 * (taken out of their queue, still "queued" with the reason) and come back
 * when it closes; the probe is whichever of them is dispatched first once
 * the cool-down has passed.
 *
 * Everything but the gx__brk_* state machine runs under gx_engine.mu.
 */
#ifndef GX_BREAKER_H
#define GX_BREAKER_H

#include <stddef.h>
#include <stdint.h>

enum { GX__BRK_CLOSED = 0, GX__BRK_OPEN = 1, GX__BRK_HALF_OPEN = 2 };

typedef struct gx__brk {
    int state;           /* GX__BRK_* */
    int threshold;       /* consecutive counted failures that open it; 0 = off */
    int64_t cooldown_ns; /* open -> half-open after this long */
    int failures;        /* consecutive counted failures */
    int open_failures;   /* failures when it last opened (for the reason) */
    int64_t probe_ns;    /* open: when the half-open probe may go */
    int probing;         /* half-open: a probe is in flight */
    int64_t transitions; /* state changes so far */
    int last_code;       /* GX_E* of the last counted failure */
} gx__brk;

void gx__brk_init(gx__brk *b, int threshold, int64_t cooldown_ns);
/* May work be sent now? Moves open -> half-open once now >= probe_ns. In
 * half-open only while no probe is in flight. */
int gx__brk_allow(gx__brk *b, int64_t now);
/* A job was sent (after allow said yes): in half-open it is the probe. */
void gx__brk_sent(gx__brk *b);
/* Outcomes: success closes and resets; failure counts (and may open);
 * neutral ends a probe without a verdict. */
void gx__brk_success(gx__brk *b);
void gx__brk_failure(gx__brk *b, int code, int64_t now);
void gx__brk_neutral(gx__brk *b);
/* "closed", "open", "half_open". */
const char *gx__brk_state_name(int state);

/* ---- engine glue (src/exec/breaker.c; lock held) ---- */
struct gx_engine;
struct gx__job;
struct gx__device;
struct gx__kstat;
struct gx__kbrk;
/* A job finished an attempt on device d with rc (0 = success; counted is 0
 * when the attempt ended for reasons of its own: cancelled, shutdown). */
void gx__brk_job_done(struct gx_engine *e, struct gx__device *d, struct gx__job *j, int rc, int counted);
/* A placed job goes back to its queue unstarted (a device fault emptied
 * the device's queue): a probe it was sent as ends without a verdict, so
 * the breaker sends another (it stayed in flight: every job parked for
 * ever); other jobs leave the breakers alone. Lock held. */
void gx__brk_job_unplaced(struct gx_engine *e, struct gx__device *d, struct gx__job *j);
/* A tenant's breaker of a kernel (ks from gx__kinfo), NULL while it has
 * none: closed, nothing counted. */
struct gx__kbrk *gx__brk_kernel_of(struct gx_engine *e, uint32_t tenant, const struct gx__kstat *ks);
/* Park a job taken out of its queue; 0 or GX_ENOMEM (then leave it queued). */
int gx__brk_park(struct gx_engine *e, struct gx__job *j);
/* Take a parked job out of the parked list (it is finishing). */
void gx__brk_unpark(struct gx_engine *e, struct gx__job *j);
/* Move open breakers whose cool-down passed to half-open and re-queue
 * parked jobs that may go; returns the next time (monotonic ns) something
 * is due, 0 when nothing is. */
int64_t gx__brk_tick(struct gx_engine *e, int64_t now);
/* Sentence for a parked job ("kernel X circuit open after N failures,
 * probe at T") and for a device ("cuda:0 circuit open after N failures,
 * probe in S s"). */
void gx__brk_kernel_reason(struct gx_engine *e, const struct gx__job *j, char *out, size_t cap);
void gx__brk_device_reason(struct gx_engine *e, const struct gx__device *d, char *out, size_t cap);
/* Whether a GPU may take work now (healthy and its breaker closed); when
 * none may, why, for the fallback note. */
int gx__gpu_usable(struct gx_engine *e, char *why, size_t cap);
void gx__brk_free(struct gx_engine *e);

#endif
