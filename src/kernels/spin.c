/*
 * spin.c - occupies the device for `us` microseconds (0 = no-op).
 *
 * Used by scheduling, fairness and fault tests and by the benchmarks: its
 * cost is known exactly (cost_us), and it polls the cancel flag so a
 * cancelled or timed-out spin returns promptly.
 */
#include "clock.h"
#include "kernels_int.h"

static int spin_run(gx_kcall *c) {
    int64_t us = (int64_t)c->args[0];
    if (us <= 0) return 0;
    int64_t end = gx__now_ns() + us * 1000;
    while (gx__now_ns() < end)
        if (gx_kcall_cancelled(c)) return gx_error_set(c->err, GX_ECANCELED, NULL, "spin cancelled");
    return 0;
}

static double spin_cost(const gx_kcall *c) { return c->args[0] > 0 ? c->args[0] : 0.05; }
static uint64_t spin_mem(const gx_kcall *c) { return 0; }

static const gx_arg_spec spin_args[] = {
    {.name = "us", .type = GX_ARG_INT, .def = 0, .min = 0, .max = 3600e6,
     .doc = "microseconds to stay busy (0 = return at once)"},
};

const gx_kernel gx__k_spin = {
    GX_KERNEL_HEADER,
    .name = "spin",
    .version = 1,
    .summary = "busy-wait for a given number of microseconds (testing)",
    .args = spin_args,
    .nargs = 1,
    .flags = GX_KF_BATCHABLE,
    .mem_bytes = spin_mem,
    .cost_us = spin_cost,
    .run = {[GX_DEV_CPU] = spin_run},
};
