/*
 * backend.c - the CUDA backend's ops table (gexec_plugin.h), exported from
 * libgexec_cuda.so as gx_backend_entry.
 *
 * The plugin does not link libgexec: gx_array_new, gx_error_set,
 * gx_kernel_set_impl and friends resolve against the host program, which
 * is linked with its symbols exported (ENABLE_EXPORTS / -rdynamic).
 *
 * init() answers GX_ENODEVICE with a message when there is no driver or no
 * GPU, so the engine can say why it runs CPU-only. Each device gets its own
 * memory pool; each slot (one worker thread) its stream, cuBLAS handle and
 * pinned buffers. Errors of a call stay with that call: an out-of-memory is
 * GX_ETRANSIENT, a sticky CUDA fault GX_EDEVICE (the engine then drains the
 * device, closes it, resets it with device_reset, reopens and self-tests it:
 * src/exec/health.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_int.h"
#include "nvml_int.h"

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cu_init(gx_error *err) {
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        cudaGetLastError();
        return gx_error_set(err, GX_ENODEVICE, NULL, "no usable CUDA driver or GPU: %s (%s)",
                            cudaGetErrorName(rc), cudaGetErrorString(rc));
    }
    if (n == 0) return gx_error_set(err, GX_ENODEVICE, NULL, "the CUDA driver reports no GPU");
    /* attach implementations to the kernels the host declares (a kernel the
     * catalog does not have yet is simply not registered) */
    for (int i = 0; i < gxc_nimpls; i++)
        gx_kernel_set_impl(gxc_impls[i].name, 1, GX_DEV_CUDA, gxc_impls[i].run, NULL);
    return n;
}

static void cu_shutdown(void) {}

/* "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" as nvidia-smi prints it. */
static void uuid_str(const cudaUUID_t *u, char *out, size_t cap) {
    const unsigned char *b = (const unsigned char *)u->bytes;
    snprintf(out, cap,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static int cu_device_open(int ordinal, gx_backend_dev **out, gx_device_desc *desc, gx_error *err) {
    int prev = -1;
    cudaGetDevice(&prev);
    struct cudaDeviceProp p;
    cudaError_t rc = cudaGetDeviceProperties(&p, ordinal);
    if (rc) return gxc_err(err, rc, "cudaGetDeviceProperties");
    rc = cudaSetDevice(ordinal);
    if (rc) return gxc_err(err, rc, "cudaSetDevice");
    gxc_dev *d = calloc(1, sizeof *d);
    if (!d) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    d->ordinal = ordinal;
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    struct cudaMemPoolProps props;
    memset(&props, 0, sizeof props);
    props.allocType = cudaMemAllocationTypePinned;
    props.handleTypes = cudaMemHandleTypeNone;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = ordinal;
    rc = cudaMemPoolCreate(&d->pool, &props);
    if (rc) {
        free(d);
        if (prev >= 0) cudaSetDevice(prev);
        return gxc_err(err, rc, "cudaMemPoolCreate");
    }
    /* keep up to a quarter of the GPU cached in the pool between jobs */
    uint64_t thr = (uint64_t)tot / 4;
    cudaMemPoolSetAttribute(d->pool, cudaMemPoolAttrReleaseThreshold, &thr);

    gx_device_desc *dd = &d->desc;
    memset(dd, 0, sizeof *dd);
    snprintf(dd->name, sizeof dd->name, "cuda:%d", ordinal);
    snprintf(dd->model, sizeof dd->model, "%.95s", p.name);
    uuid_str(&p.uuid, dd->uuid, sizeof dd->uuid);
    const char *env = getenv("GX_CUDA_SLOTS");
    dd->slots = env && atoi(env) > 0 && atoi(env) <= 64 ? atoi(env) : GXC_SLOTS;
    /* what jobs may use: free memory less the slots' mirrors, cuBLAS
     * workspaces and some headroom for the context */
    uint64_t per_slot = GXC_MIRROR_BYTES + (64u << 20);
    uint64_t reserve = (uint64_t)dd->slots * per_slot + (512u << 20);
    dd->mem_total = fr > reserve ? fr - reserve : 0;
    dd->cc_major = p.major;
    dd->cc_minor = p.minor;
    dd->sm_count = p.multiProcessorCount;
    atomic_store(&d->xid_last, -1);
    char pci[32];
    snprintf(pci, sizeof pci, "%08x:%02x:%02x.0", p.pciDomainID, p.pciBusID, p.pciDeviceID);
    gxc_nvml_open(d, dd->uuid, pci);
    *desc = *dd;
    *out = (gx_backend_dev *)d;
    if (prev >= 0 && prev != ordinal) cudaSetDevice(prev);
    return 0;
}

/* Slots are closed first. After a sticky fault the GPU is reset here, so
 * that device_open can bring it back. */
static void cu_device_close(gx_backend_dev *bd) {
    gxc_dev *d = (gxc_dev *)bd;
    if (!d) return;
    gxc_nvml_close(d);
    cudaMemPoolDestroy(d->pool);
    if (atomic_load(&d->faulted)) {
        int prev = -1;
        cudaGetDevice(&prev);
        if (cudaSetDevice(d->ordinal) == 0) cudaDeviceReset();
        cudaGetLastError();
        if (prev >= 0 && prev != d->ordinal) cudaSetDevice(prev);
    }
    free(d);
}

/* The hard reset of the health loop: every slot, the pool and the device
 * are closed; cudaDeviceReset destroys the primary context (and with it a
 * sticky error), and device_open then builds everything again. */
static int cu_device_reset(int ordinal, gx_error *err) {
    int prev = -1;
    cudaGetDevice(&prev);
    cudaError_t rc = cudaSetDevice(ordinal);
    if (!rc) rc = cudaDeviceReset();
    cudaGetLastError();
    if (prev >= 0 && prev != ordinal) cudaSetDevice(prev);
    return rc ? gxc_err(err, rc, "cudaDeviceReset") : 0;
}

static void slot_free(gxc_slot *s) {
    if (s->blas) cublasDestroy(s->blas);
    for (int i = 0; i < 2; i++) {
        if (s->cev[i]) cudaEventDestroy(s->cev[i]);
        if (s->hc[i]) cudaFreeHost(s->hc[i]);
    }
    if (s->hsmall) cudaFreeHost(s->hsmall);
    if (s->hm) cudaFreeHost(s->hm);
    if (s->dm) cudaFree(s->dm);
    if (s->stream) cudaStreamDestroy(s->stream);
    free(s);
}

static int cu_slot_open(gx_backend_dev *bd, int slot, void **ctx, gx_error *err) {
    gxc_dev *d = (gxc_dev *)bd;
    cudaError_t rc = cudaSetDevice(d->ordinal);
    if (rc) return gxc_err(err, rc, "cudaSetDevice");
    gxc_slot *s = calloc(1, sizeof *s);
    if (!s) return gx_error_set(err, GX_ENOMEM, NULL, "out of memory");
    s->dev = d;
    s->index = slot;
    const char *what = "cudaStreamCreate";
    rc = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (!rc) { what = "cudaMallocHost"; rc = cudaMallocHost((void **)&s->hm, GXC_MIRROR_BYTES); }
    if (!rc) { what = "cudaMalloc"; rc = cudaMalloc((void **)&s->dm, GXC_MIRROR_BYTES); }
    /* on the slot's stream (non-blocking: the legacy stream's cudaMemset
     * does not order against it), then waited for */
    if (!rc) { what = "cudaMemsetAsync"; rc = cudaMemsetAsync(s->dm, 0, GXC_MIRROR_BYTES, s->stream); }
    if (!rc) { what = "cudaStreamSynchronize"; rc = cudaStreamSynchronize(s->stream); }
    for (int i = 0; !rc && i < 2; i++) {
        what = "cudaMallocHost";
        rc = cudaMallocHost((void **)&s->hc[i], GXC_CHUNK_BYTES);
        if (!rc) { what = "cudaEventCreate"; rc = cudaEventCreateWithFlags(&s->cev[i], cudaEventDisableTiming); }
    }
    if (!rc) { what = "cudaMallocHost"; rc = cudaMallocHost((void **)&s->hsmall, 4096); }
    if (rc) {
        slot_free(s);
        return gxc_dev_err(d, err, rc, what);
    }
    memset(s->hm, 0, GXC_MIRROR_BYTES);
    cublasStatus_t bs = cublasCreate(&s->blas);
    if (!bs) bs = cublasSetStream(s->blas, s->stream);
    if (bs) {
        slot_free(s);
        return gx_error_set(err, bs == CUBLAS_STATUS_ALLOC_FAILED ? GX_ETRANSIENT : GX_EDEVICE, NULL,
                            "cuBLAS: %s", cublasGetStatusString(bs));
    }
    *ctx = s;
    return 0;
}

static void cu_slot_close(gx_backend_dev *bd, void *ctx) {
    gxc_slot *s = ctx;
    if (!s) return;
    cudaStreamSynchronize(s->stream);
    slot_free(s);
}

static void cu_run_batch(gx_backend_dev *bd, void *ctx, gx_kcall *const *calls, gx_call_result *res,
                         int n) {
    gxc_slot *s = ctx;
    /* every call gets somewhere to say why it failed */
    gx_error spare[16], *extra = NULL;
    for (int j = 0; j < n; j++)
        if (!calls[j]->err) {
            if (j < 16) calls[j]->err = &spare[j];
            else if (extra || (extra = calloc((size_t)n, sizeof *extra))) calls[j]->err = &extra[j];
            gx_error_clear(calls[j]->err);
        }
    int i = gxc_inject(s, calls, res, n); /* armed faults (gexec_fault.h) */
    while (i < n) {
        gx_kcall *c = calls[i];
        c->dev_ctx = s;
        const gxc_impl *im = gxc_impl_of(c->kernel);
        res[i].run_ns = 0;
        gx_kernel_run_fn own = im ? NULL : gx_kernel_impl(c->kernel, GX_DEV_CUDA);
        if (own) {
            /* a kernel that brought its own CUDA implementation (a kernel
             * plugin, the GPU tests' probe) runs on this slot (dev_ctx) */
            int64_t t0 = mono_ns();
            res[i].rc = own(c);
            /* its work on the slot's stream is its own: a sticky fault it
             * left is this call's device fault (the next call on the slot
             * got it, and the blame), and a plain error it left set must not
             * fail the next call */
            cudaError_t ce = cudaStreamSynchronize(s->stream);
            if (gxc_is_sticky(ce)) res[i].rc = gxc_dev_err(s->dev, c->err, ce, c->kernel->name);
            else cudaGetLastError();
            res[i].run_ns = mono_ns() - t0;
            i++;
            continue;
        }
        if (!im) {
            res[i].rc = gx_error_set(c->err, GX_EUNSUPPORTED, "kernel", "kernel %s has no GPU implementation",
                                     c->kernel->name);
            i++;
            continue;
        }
        if (im->batch && (c->kernel->flags & GX_KF_BATCHABLE)) {
            int j = i + 1;
            while (j < n && calls[j]->kernel == c->kernel && im->can_join(c, calls[j])) {
                calls[j]->dev_ctx = s;
                j++;
            }
            if (j - i > 1) {
                im->batch(s, calls + i, res + i, j - i);
                i = j;
                continue;
            }
        }
        int64_t t0 = mono_ns();
        res[i].rc = im->run(c);
        res[i].run_ns = mono_ns() - t0;
        i++;
    }
    for (int j = 0; j < n; j++)
        if ((j < 16 && calls[j]->err == &spare[j]) || (extra && calls[j]->err == &extra[j])) calls[j]->err = NULL;
    free(extra);
}

/* Known answers: saxpy on 1M floats (exact in f32) and an identity gemm. */
static int cu_self_test(gx_backend_dev *bd, char *msg, size_t cap) {
    gxc_dev *d = (gxc_dev *)bd;
    int prev = -1;
    cudaGetDevice(&prev);
    const int64_t n = 1 << 20;
    float *x = NULL, *y = NULL, *o = NULL, *h = NULL;
    cudaStream_t st = NULL;
    cublasHandle_t bl = NULL;
    int rc = cudaSetDevice(d->ordinal);
    if (!rc) rc = cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
    /* pool memory on its own stream: no device-wide sync for running jobs */
    if (!rc) rc = cudaMallocFromPoolAsync((void **)&x, 3 * n * sizeof(float), d->pool, st);
    h = malloc(n * sizeof(float));
    if (!rc && !h) rc = cudaErrorMemoryAllocation;
    int bad = 0;
    if (!rc) {
        y = x + n;
        o = y + n;
        rc = gxk_fill_f32(st, n, x, 0.0f, 1.0f); /* x = i */
        if (!rc) rc = gxk_fill_f32(st, n, y, 1.0f, 0.0f); /* y = 1 */
        if (!rc) rc = gxk_saxpy(st, GX_F32, n, 2.0, x, y, o);
        if (!rc) rc = cudaMemcpyAsync(h, o, n * sizeof(float), cudaMemcpyDeviceToHost, st);
        if (!rc) rc = cudaStreamSynchronize(st);
        for (int64_t i = 0; !rc && i < n; i++)
            if (h[i] != 2.0f * (float)i + 1.0f) {
                bad = 1;
                snprintf(msg, cap, "saxpy known answer wrong at %lld: %g, expected %g", (long long)i,
                         h[i], 2.0 * i + 1);
                break;
            }
    }
    if (!rc && !bad) {
        /* 64x64: A = I (fill diag through a strided copy of ones), B = fill */
        const int m = 64;
        float *A = x, *B = x + m * m, *C = x + 2 * m * m;
        rc = cudaMemsetAsync(A, 0, m * m * sizeof(float), st);
        float one = 1.0f;
        for (int i = 0; !rc && i < m; i++)
            rc = cudaMemcpyAsync(A + i * m + i, &one, sizeof one, cudaMemcpyHostToDevice, st);
        if (!rc) rc = gxk_fill_f32(st, m * m, B, 0.5f, 0.25f);
        if (!rc && cublasCreate(&bl) == 0 && cublasSetStream(bl, st) == 0) {
            if (gx_cuda_gemm_dev(bl, GX_F32, GXC_GEMM_F32, 0, 0, m, m, m, 1.0, A, B, 0.0, C)) {
                bad = 1;
                snprintf(msg, cap, "cuBLAS gemm failed");
            }
        } else if (!rc) {
            bad = 1;
            snprintf(msg, cap, "cuBLAS could not start");
        }
        if (!rc && !bad) rc = cudaMemcpyAsync(h, C, m * m * sizeof(float), cudaMemcpyDeviceToHost, st);
        if (!rc && !bad) rc = cudaStreamSynchronize(st);
        for (int i = 0; !rc && !bad && i < m * m; i++)
            if (h[i] != 0.5f + 0.25f * (float)i) {
                bad = 1;
                snprintf(msg, cap, "gemm known answer wrong at %d: %g", i, h[i]);
            }
    }
    if (bl) cublasDestroy(bl);
    if (x) {
        cudaMemsetAsync(x, 0, 3 * n * sizeof(float), st); /* the pool holds only zeros */
        cudaFreeAsync(x, st);
        cudaStreamSynchronize(st);
    }
    if (st) cudaStreamDestroy(st);
    free(h);
    if (rc) {
        snprintf(msg, cap, "CUDA error: %s (%s)", cudaGetErrorName(rc), cudaGetErrorString(rc));
        cudaGetLastError();
    } else if (!bad) {
        snprintf(msg, cap, "ok: saxpy (1M f32) and gemm (64x64) known answers on %s", d->desc.name);
    }
    if (prev >= 0 && prev != d->ordinal) cudaSetDevice(prev);
    if (rc && gxc_is_sticky(rc)) atomic_store(&d->faulted, 1);
    if (rc) return gxc_is_sticky(rc) ? GX_EDEVICE : GX_EKERNEL;
    return bad ? GX_EDEVICE : 0;
}

static int cu_telemetry(gx_backend_dev *bd, gx_device_telemetry *t) {
    gxc_dev *d = (gxc_dev *)bd;
    t->util_pct = t->mem_util_pct = t->temp_c = t->power_w = -1;
    t->sm_clock_mhz = t->mem_clock_mhz = -1;
    t->mem_used = t->mem_total = t->ecc_corrected = t->ecc_uncorrected = t->xid_last = t->xid_count = -1;
    uint64_t reserved = 0;
    if (cudaMemPoolGetAttribute(d->pool, cudaMemPoolAttrReservedMemCurrent, &reserved) == 0)
        t->pool_reserved = (int64_t)reserved;
    else
        t->pool_reserved = -1;
    if (gxc_nvml_read(d, t) != 0) {
        /* no NVML: the runtime can still say how much memory is in use */
        int prev = -1;
        cudaGetDevice(&prev);
        size_t fr, tot;
        if (cudaSetDevice(d->ordinal) == 0 && cudaMemGetInfo(&fr, &tot) == 0) {
            t->mem_used = (int64_t)(tot - fr);
            t->mem_total = (int64_t)tot;
        }
        if (prev >= 0 && prev != d->ordinal) cudaSetDevice(prev);
    }
    return 0;
}

/* Called by the engine when a slot passes from one tenant to another: zero
 * the part of the mirror the last tenant touched (device and host), and the
 * chunk buffers. Pool memory is zeroed whenever it is freed. */
static int cu_scrub(gx_backend_dev *bd, void *ctx) {
    gxc_dev *d = (gxc_dev *)bd;
    gxc_slot *s = ctx;
    if (!s) {
        cudaMemPoolTrimTo(d->pool, 0);
        return 0;
    }
    int rc = 0;
    if (s->mhigh) {
        rc = cudaMemsetAsync(s->dm, 0, s->mhigh, s->stream);
        if (!rc) rc = cudaStreamSynchronize(s->stream);
        memset(s->hm, 0, s->mhigh);
        s->mhigh = s->moff;
    }
    if (s->chunks_dirty)
        for (int i = 0; i < 2; i++) memset(s->hc[i], 0, GXC_CHUNK_BYTES);
    s->chunks_dirty = 0;
    memset(s->hsmall, 0, 4096);
    if (rc) {
        cudaGetLastError();
        return gxc_is_sticky(rc) ? GX_EDEVICE : GX_EKERNEL;
    }
    return 0;
}

static const gx_backend cuda_backend = {
    .abi_version = GX_BACKEND_ABI_VERSION,
    .struct_size = sizeof(gx_backend),
    .name = "cuda",
    .kind = GX_DEV_CUDA,
    .init = cu_init,
    .shutdown = cu_shutdown,
    .device_open = cu_device_open,
    .device_close = cu_device_close,
    .self_test = cu_self_test,
    .slot_open = cu_slot_open,
    .slot_close = cu_slot_close,
    .run_batch = cu_run_batch,
    .telemetry = cu_telemetry,
    .scrub = cu_scrub,
    .device_reset = cu_device_reset,
};

__attribute__((visibility("default"))) const gx_backend *gx_backend_entry(void) { return &cuda_backend; }

/* ---- extras for tests and benchmarks (not part of the ABI) ---------------- */

/* Memory accounting of a device: bytes in live pool blocks, their peak, and
 * the number of allocations refused for lack of memory. */
__attribute__((visibility("default"))) void gx_cuda_mem_stats(gx_backend_dev *bd, int64_t *in_use,
                                                              int64_t *peak, int64_t *ooms) {
    gxc_dev *d = (gxc_dev *)bd;
    if (in_use) *in_use = atomic_load(&d->pool_in_use);
    if (peak) *peak = atomic_load(&d->pool_peak);
    if (ooms) *ooms = atomic_load(&d->oom_count);
}

/* Allocate `bytes` the way a call would (mirror, or pool when pooled), copy
 * them to host WITHOUT writing them first, and release them: what a new
 * tenant's kernel would see in uninitialised memory. */
__attribute__((visibility("default"))) int gx_cuda_debug_peek(void *ctx, size_t bytes, int pooled,
                                                              void *host) {
    gxc_slot *s = ctx;
    gx_error e;
    gxc_call k;
    gxc_begin(&k, s, &e);
    void *d = NULL;
    int rc = pooled ? gxc_alloc_pool(&k, bytes, &d) : gxc_alloc(&k, bytes, &d);
    if (!rc) rc = gxc_check(&k, cudaMemcpyAsync(host, d, bytes, cudaMemcpyDeviceToHost, s->stream), "peek");
    if (!rc) rc = gxc_check(&k, cudaStreamSynchronize(s->stream), "peek");
    return gxc_finish(&k, rc);
}

/* The slot's stream and cuBLAS handle (benchmarks call the device-level
 * entry points on them). */
__attribute__((visibility("default"))) void *gx_cuda_slot_stream(void *ctx) {
    return ((gxc_slot *)ctx)->stream;
}
