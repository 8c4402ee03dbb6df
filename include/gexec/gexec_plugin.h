/*
 * gexec_plugin.h - the device backend ABI.
 *
 * A backend drives one kind of device (the CPU backend is built in; the CUDA
 * backend is a shared object, libgexec_cuda.so, loaded at engine start when
 * a driver and a GPU are present). The loader calls the exported symbol
 * GX_BACKEND_ENTRY_SYMBOL, checks abi_version and struct_size, then calls
 * init(). Methods are append-only; a NULL method means "not supported".
 *
 * Threading: the engine runs one worker thread per device slot (a CPU core,
 * a CUDA stream). slot_open is called once on that thread before its first
 * run_batch and slot_close when it stops; run_batch and the kernel
 * implementations it calls run on that thread only. telemetry and self_test
 * may be called from any thread.
 *
 * Kernel implementations for a backend's device kind are attached to the
 * registry in init() with gx_kernel_set_impl(name, version, kind, fn); fn
 * gets a gx_kcall whose dev_ctx is the slot context from slot_open, host
 * input arrays in c->in / c->in_all, and must leave host output arrays in
 * c->out (gx_array_new) when it returns 0.
 */
#ifndef GEXEC_PLUGIN_H
#define GEXEC_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "gexec_err.h"
#include "gexec_kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GX_BACKEND_ABI_VERSION 1
#define GX_BACKEND_ENTRY_SYMBOL "gx_backend_entry"

typedef struct gx_backend_dev gx_backend_dev; /* backend-private device */

/* What a backend says about one device when it opens it. */
typedef struct gx_device_desc {
    char name[32];        /* "cuda:0" */
    char model[96];       /* "NVIDIA H100 80GB HBM3" */
    char uuid[64];        /* "GPU-..." or "" */
    uint64_t mem_total;   /* bytes usable by jobs */
    int slots;            /* worker threads/streams to run */
    int cc_major, cc_minor; /* compute capability, 0 when n/a */
    int sm_count;
} gx_device_desc;

/* Live telemetry; fields a backend cannot read are < 0. */
typedef struct gx_device_telemetry {
    double util_pct;      /* compute utilisation, % */
    double mem_util_pct;
    int64_t mem_used;     /* bytes in use on the device (all processes) */
    int64_t mem_total;
    double temp_c;
    double power_w;
    double sm_clock_mhz;
    double mem_clock_mhz;
    int64_t ecc_corrected;
    int64_t ecc_uncorrected;
    int64_t xid_last;     /* last Xid error seen, 0 none */
    int64_t pool_reserved;/* bytes held by the backend's memory pool */
    int64_t xid_count;    /* Xid errors seen since the device was opened
                             (the engine's health loop resets the device on a
                             new fatal one: docs/device-health.md) */
} gx_device_telemetry;

/* Result of one call in a batch. */
typedef struct gx_call_result {
    int rc;               /* 0 or GX_E* (GX_ETRANSIENT for retryable, GX_EDEVICE
                             for a device fault) */
    int64_t run_ns;       /* device time of this call (0 = engine measures) */
} gx_call_result;

typedef struct gx_backend {
    uint32_t abi_version; /* GX_BACKEND_ABI_VERSION */
    uint32_t struct_size; /* sizeof(gx_backend) as compiled */
    const char *name;     /* "cuda" */
    gx_dev_kind kind;

    /* Load drivers, register kernel implementations. Returns the number of
     * devices (>= 0) or a GX_E* code with err set (e.g. no driver). */
    int (*init)(gx_error *err);
    void (*shutdown)(void);

    int (*device_open)(int ordinal, gx_backend_dev **out, gx_device_desc *desc,
                       gx_error *err);
    void (*device_close)(gx_backend_dev *d);

    /* Known-answer test; 0 when the device works, else a code and msg. */
    int (*self_test)(gx_backend_dev *d, char *msg, size_t cap);

    int (*slot_open)(gx_backend_dev *d, int slot, void **slot_ctx, gx_error *err);
    void (*slot_close)(gx_backend_dev *d, void *slot_ctx);

    /* Run n calls (same device, possibly different kernels) and fill res[i].
     * Consecutive calls of one GX_KF_BATCHABLE kernel may be merged. Each
     * call's c->dev_ctx is already slot_ctx. */
    void (*run_batch)(gx_backend_dev *d, void *slot_ctx, gx_kcall *const *calls,
                      gx_call_result *res, int n);

    int (*telemetry)(gx_backend_dev *d, gx_device_telemetry *t);

    /* Zero memory released by one tenant before another may use it, and
     * release a job's device memory reservation (optional). */
    int (*scrub)(gx_backend_dev *d, void *slot_ctx);

    /* ---- appended after ABI 1's first release: read only when struct_size
     * covers them (GX_BACKEND_HAS) ---- */

    /* Hard reset of a device after a sticky fault, between device_close and
     * the device_open that brings it back (the CUDA backend: cudaDeviceReset).
     * Every slot and the device are closed when it is called. 0 or a code
     * with err set. Optional. */
    int (*device_reset)(int ordinal, gx_error *err);
} gx_backend;

/* sizeof(gx_backend) of the first ABI 1 backends (up to scrub). */
#define GX_BACKEND_SIZE_V1 offsetof(gx_backend, device_reset)
/* Whether backend b (checked struct_size) has method m. */
#define GX_BACKEND_HAS(b, m) \
    ((b)->struct_size >= offsetof(gx_backend, m) + sizeof((b)->m) && (b)->m)

/* ---- host services a backend may call (exported by the program) ---- */

/* 1 while the engine resets device `device` (the engine's device index,
 * gx_kcall.device) and wants every call on it to return: a backend polls it
 * where a call waits on something that may never come (an injected hang). */
int gx_device_abort_requested(int device);

typedef const gx_backend *(*gx_backend_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
