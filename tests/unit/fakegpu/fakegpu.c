/*
 * fakegpu.c - a stand-in GPU backend for tests on machines without one.
 *
 * Loaded by the engine through the real plugin path (cuda_plugin), it shows
 * one device "cuda:0" of kind GX_DEV_CUDA (one slot, GX_FAKEGPU_SLOTS for
 * more) whose launches run each kernel's CPU implementation one call after
 * another, except when the device.launch fault point is armed:
 * then the call fails with the armed spec's code (a GX_E* code here, GX_EDEVICE
 * when 0) and the message "injected device fault". GX_FAKEGPU_SLOT_FAIL=N
 * (read when an engine loads it) fails the next N slot opens, -1 every one.
 * gx_fakegpu_xid(X) has the "driver" report Xid error X on the device.
 * It does not link
 * libgexec: gx_kernel_*, gx_fault_take and gx_error_set resolve against the
 * test program, linked with its symbols exported, as the CUDA backend does.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_fault.h"
#include "gexec/gexec_kernel.h"
#include "gexec/gexec_plugin.h"

struct gx_backend_dev {
    int ordinal;
    _Atomic long long xid_last, xid_count; /* Xid errors "seen" (gx_fakegpu_xid) */
};

/* the device opened last: where gx_fakegpu_xid reports */
static struct gx_backend_dev *_Atomic current;

/* slot opens still to fail (GX_FAKEGPU_SLOT_FAIL); negative: all of them */
static atomic_int slot_fail;

static int fg_init(gx_error *err) {
    (void)err;
    /* per engine (a test before may have left some to fail); not at each
     * open: a recovery opens the device again */
    const char *sf = getenv("GX_FAKEGPU_SLOT_FAIL");
    atomic_store(&slot_fail, sf ? atoi(sf) : 0);
    /* a GPU implementation for every kernel: the CPU one (set once) */
    for (int i = 0; i < gx_kernel_count(); i++) {
        const gx_kernel *k = gx_kernel_at(i);
        gx_kernel_run_fn cpu = k ? gx_kernel_impl(k, GX_DEV_CPU) : NULL;
        if (cpu && !gx_kernel_impl(k, GX_DEV_CUDA)) gx_kernel_set_impl(k->name, k->version, GX_DEV_CUDA, cpu, NULL);
    }
    return 1;
}

static int fg_open(int ordinal, gx_backend_dev **out, gx_device_desc *desc, gx_error *err) {
    (void)err;
    gx_backend_dev *d = calloc(1, sizeof *d);
    if (!d) return GX_ENOMEM;
    d->ordinal = ordinal;
    strcpy(desc->name, "cuda:0");
    strcpy(desc->model, "fake GPU (tests)");
    desc->mem_total = (uint64_t)1 << 30;
    /* slots (streams) per device: 1 unless a test asks for more */
    const char *sl = getenv("GX_FAKEGPU_SLOTS");
    desc->slots = sl && atoi(sl) > 0 ? atoi(sl) : 1;
    *out = d;
    atomic_store(&current, d);
    return 0;
}

/* A test's way to have the driver report Xid error xid on the device
 * (found with dlsym on the loaded plugin). */
void gx_fakegpu_xid(long long xid) {
    struct gx_backend_dev *d = atomic_load(&current);
    if (!d) return;
    atomic_store(&d->xid_last, xid);
    atomic_fetch_add(&d->xid_count, 1);
}

static int fg_telemetry(gx_backend_dev *d, gx_device_telemetry *t) {
    t->xid_last = atomic_load(&d->xid_last);
    t->xid_count = atomic_load(&d->xid_count);
    return 0;
}

static int fg_slot_open(gx_backend_dev *d, int slot, void **slot_ctx, gx_error *err) {
    (void)d;
    (void)slot;
    *slot_ctx = NULL;
    int left = atomic_load(&slot_fail);
    while (left > 0 && !atomic_compare_exchange_weak(&slot_fail, &left, left - 1)) {
    }
    if (left == 0) return 0;
    return gx_error_set(err, GX_EDEVICE, NULL, "injected slot fault: no stream");
}

static void fg_close(gx_backend_dev *d) {
    struct gx_backend_dev *cur = d;
    atomic_compare_exchange_strong(&current, &cur, NULL);
    free(d);
}

static void fg_run(gx_backend_dev *d, void *slot_ctx, gx_kcall *const *calls, gx_call_result *res, int n) {
    (void)d;
    (void)slot_ctx;
    for (int i = 0; i < n; i++) {
        gx_fault_spec f;
        if (gx_fault_take(GX_FAULT_DEVICE_LAUNCH, calls[i]->device, &f)) {
            int code = f.code ? f.code : GX_EDEVICE;
            res[i].rc = gx_error_set(calls[i]->err, code, NULL, "injected device fault");
            continue;
        }
        gx_kernel_run_fn fn = gx_kernel_impl(calls[i]->kernel, GX_DEV_CPU);
        res[i].rc = fn ? fn(calls[i]) : GX_EUNSUPPORTED;
    }
}

static const gx_backend fake = {
    .abi_version = GX_BACKEND_ABI_VERSION,
    .struct_size = sizeof(gx_backend),
    .name = "fakegpu",
    .kind = GX_DEV_CUDA,
    .init = fg_init,
    .device_open = fg_open,
    .device_close = fg_close,
    .run_batch = fg_run,
    .slot_open = fg_slot_open,
    .telemetry = fg_telemetry,
};

const gx_backend *gx_backend_entry(void) { return &fake; }
