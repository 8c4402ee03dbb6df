/*
 * cuda_int.h - internals of the CUDA backend (libgexec_cuda.so).
 *
 * The backend owns, per GPU, a stream-ordered memory pool and its
 * accounting; per worker slot, a stream, a cuBLAS handle and two pinned
 * host buffers:
 *
 *  - the mirror: a pinned host block and a device block of the same size
 *    with one bump offset, so a small call's inputs are packed into the
 *    host block and go up in ONE copy, and its outputs come down in one;
 *  - the chunk buffers: two pinned halves through which larger arrays are
 *    copied in a double-buffered pipeline to and from pool memory.
 *
 * Tenancy: pool blocks are zeroed before they go back to the pool (so the
 * pool only ever holds zeros); the mirror is zeroed by scrub(), which the
 * engine calls when a slot passes from one tenant to another.
 *
 * The kernels themselves live in src/kernels/<name>.cu and are reached
 * through the plain C launchers declared at the end of this file.
 */
#ifndef GX_CUDA_INT_H
#define GX_CUDA_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "gexec/gexec_plugin.h"
#include "gxk.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GXC_MIRROR_BYTES (32u << 20) /* per slot, host and device each */
#define GXC_CHUNK_BYTES (8u << 20)   /* each of the two pinned halves */
#define GXC_ALIGN 256u
#define GXC_SLOTS 4                  /* streams per GPU */
#define GXC_MAX_POOLED 160 /* pool blocks one call may hold: mlp_forward's 64 layers x (w, b), x, 2 activations */
#define GXC_MAX_OUTS 16

typedef struct gxc_dev gxc_dev;

/* One worker slot: used by its own thread only. */
typedef struct gxc_slot {
    gxc_dev *dev;
    int index;
    cudaStream_t stream;
    cublasHandle_t blas;
    unsigned char *hm;   /* pinned host mirror */
    unsigned char *dm;   /* device mirror */
    size_t moff;         /* bump offset into both */
    size_t mhigh;        /* high-water mark since the last scrub */
    unsigned char *hc[2];/* pinned chunk halves */
    cudaEvent_t cev[2];  /* last use of each half */
    int chunks_dirty;    /* chunk halves held data since the last scrub */
    unsigned char *hsmall; /* pinned scratch for small synchronous fetches */
} gxc_slot;

struct gxc_dev {
    int ordinal;
    cudaMemPool_t pool;
    gx_device_desc desc;
    void *nvml;             /* nvmlDevice_t, NULL when NVML is absent */
    void *nvml_events;      /* nvmlEventSet_t for Xid, NULL when refused */
    _Atomic int64_t xid_last;
    _Atomic int64_t xid_count; /* Xid events seen */
    _Atomic int64_t pool_in_use; /* bytes of live pool blocks (accounting) */
    _Atomic int64_t pool_peak;
    _Atomic int64_t oom_count;
    _Atomic int faulted;    /* a sticky CUDA error was seen: the context is
                               lost until device_close resets the GPU */
};

/* A pending output of a call: device source and where the host array goes. */
typedef struct gxc_outbuf {
    gx_array **dst;
    void *d;
    gx_dtype dt;
    int ndim;
    int64_t shape[GX_MAX_DIMS];
    size_t bytes;
    int pooled;
} gxc_outbuf;

/* The device side of one call (or of one merged batch). */
typedef struct gxc_call {
    gxc_slot *s;
    gx_error *err;
    size_t mbase;        /* mirror offset when the call began */
    size_t in_lo, in_hi; /* mirror bytes staged for upload */
    void *pooled[GXC_MAX_POOLED];
    size_t pooled_bytes[GXC_MAX_POOLED];
    int npooled;
    gxc_outbuf *outs;    /* outs_inline, or a caller's larger table */
    int nouts, outcap;
    gxc_outbuf outs_inline[GXC_MAX_OUTS];
    int uploaded;
} gxc_call;

/* ---- call lifecycle (mem.c) ---------------------------------------------- */

void gxc_begin(gxc_call *k, gxc_slot *s, gx_error *err);
/* Device scratch of `bytes` (mirror when it fits, else pool); uninitialised
 * by this call but never holding another tenant's data. */
int gxc_alloc(gxc_call *k, size_t bytes, void **d);
/* Same, forced into the pool (large or long-lived buffers). */
int gxc_alloc_pool(gxc_call *k, size_t bytes, void **d);
/* Stage a host array for upload; *d is its device copy once gxc_upload ran.
 * Large arrays go to pool memory through the chunk buffers at once. */
int gxc_in(gxc_call *k, const gx_array *a, void **d);
/* Stage raw host bytes the same way (descriptor tables). */
int gxc_in_bytes(gxc_call *k, const void *h, size_t bytes, void **d);
/* Issue the packed mirror upload. Call after the last gxc_in and before the
 * first launch that reads the inputs. */
int gxc_upload(gxc_call *k);
/* Reserve a device buffer for an output; at gxc_finish it is copied into a
 * new host array stored at *dst. */
int gxc_out(gxc_call *k, gx_array **dst, gx_dtype dt, int ndim, const int64_t *shape, void **d);
/* Register an output whose device bytes already exist at d (a row slice of
 * a larger buffer, say); copied to a new host array at gxc_finish. */
int gxc_out_at(gxc_call *k, gx_array **dst, gx_dtype dt, int ndim, const int64_t *shape, void *d);
/* Stage several arrays back to back as one contiguous device block. */
int gxc_in_concat(gxc_call *k, gx_array *const *arrays, int n, void **d);
/* Copy `bytes` from device to host now (synchronises the stream). */
int gxc_fetch(gxc_call *k, void *h, const void *d, size_t bytes);
/* Check the last launch; maps CUDA errors to GX codes. */
int gxc_check(gxc_call *k, int cuda_rc, const char *what);
/* gxc_check's work without a call: the CUDA error rc (nonzero) as e's GX
 * code and message, the last error cleared, and a sticky one marking d as
 * faulted (its context is gone). */
int gxc_dev_err(gxc_dev *d, gx_error *e, int rc, const char *what);
/* A cuBLAS status that is not success, as the call's error: a sticky CUDA
 * error on the slot's stream (the context died: every launch fails, cuBLAS
 * says EXECUTION_FAILED) is the device fault it is (GX_EDEVICE, the call
 * re-queued as collateral), an allocation failure transient, else
 * GX_EKERNEL with what and the status. */
int gxc_blas_fail(gxc_call *k, int status, const char *what);
/* Download outputs (when rc == 0), wait, release pool blocks (zeroed), reset
 * the mirror. Returns rc or the first error seen. */
int gxc_finish(gxc_call *k, int rc);

/* CUDA error -> GX code with message (GX_ETRANSIENT for OOM, GX_EDEVICE for
 * sticky faults, GX_EKERNEL otherwise). */
int gxc_err(gx_error *e, int cuda_rc, const char *what);
int gxc_is_sticky(int cuda_rc);
/* GX code of a CUDA error (the cuda_map table in mem.c). */
int gxc_gx_code(int cuda_rc);

/* ---- helpers for the kernel glue (impl.c) -------------------------------- */

/* Argument by name (robust to the declaration's order); def when absent. */
double gxc_arg(const gx_kcall *c, const char *name, double def);
/* Input by name, NULL when absent. */
gx_array *gxc_input(const gx_kcall *c, const char *name);
/* Output slot by name, NULL when the kernel declares no such output. */
gx_array **gxc_outp(gx_kcall *c, const char *name);
/* Output dtype: the declaration's only dtype, else `pref` when allowed. */
gx_dtype gxc_out_dtype(const gx_kcall *c, const char *name, gx_dtype pref);

/* Implementations by kernel name. batch may be NULL. */
typedef struct gxc_impl {
    const char *name;
    gx_kernel_run_fn run;
    void (*batch)(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n);
    int (*can_join)(const gx_kcall *a, const gx_kcall *b);
} gxc_impl;
extern const gxc_impl gxc_impls[];
extern const int gxc_nimpls;

/* Injected device faults at the start of a launch (inject.c): fills res for
 * the leading calls it handled and returns how many (0: none armed). */
int gxc_inject(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n);

/* The exported entry point (backend.c). */
const gx_backend *gx_backend_entry(void);

/* Run one gx_kcall through the per-call path (used by batches that cannot
 * merge a member). */
int gxc_run_one(gx_kcall *c);
/* The built-in implementation of a kernel (name and version 1), or NULL. */
const gxc_impl *gxc_impl_of(const gx_kernel *k);

/* ---- device-level entry points (exported for the benchmark) --------------
 * Operate on device pointers in the caller's stream. */
enum { GXC_GEMM_F32 = 0, GXC_GEMM_TF32 = 1, GXC_GEMM_BF16 = 2 };
int gx_cuda_gemm_dev(cublasHandle_t h, gx_dtype dt, int mode, int trans_a, int trans_b,
                     int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                     const void *b, double beta, void *c);

#ifdef __cplusplus
}
#endif
#endif
