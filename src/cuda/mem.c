/*
 * mem.c - device memory and host<->device copies for one call.
 *
 * Small calls live in the slot's mirror: inputs are packed into the pinned
 * host half at the same offsets they get in the device half, so one
 * cudaMemcpyAsync uploads all of them, and outputs come down the same way.
 * Arrays that do not fit go to the device pool (cudaMallocFromPoolAsync) and
 * are copied through the two pinned chunk buffers, double-buffered so the
 * memcpy into one half overlaps the DMA of the other.
 *
 * Pool blocks are zeroed (cudaMemsetAsync, stream-ordered) before they are
 * returned to the pool, so memory another tenant gets from the pool never
 * holds this call's data. An allocation that fails is retried once after
 * trimming the pool; a second failure is GX_ETRANSIENT for this call only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_int.h"

static size_t align_up(size_t v) { return (v + GXC_ALIGN - 1) & ~(size_t)(GXC_ALIGN - 1); }

/* cudaError_t -> GX code, in one table (the engine's error class table then
 * says what each GX code means: GX_ETRANSIENT retried, GX_EDEVICE device
 * recovery, anything else permanent for the job). Sticky errors leave the
 * context unusable, so they are device faults; that includes
 * cudaErrorLaunchTimeout (the watchdog killed a kernel: CUDA documents it
 * as sticky) rather than a transient. Codes not listed are GX_EKERNEL. */
static const struct {
    int cuda;
    int gx;
    const char *why; /* what the row means, for docs/operations.md */
} cuda_map[] = {
    {cudaErrorMemoryAllocation, GX_ETRANSIENT, "device out of memory"},
    {cudaErrorNotReady, GX_ETRANSIENT, "device busy"},
    {cudaErrorDevicesUnavailable, GX_ETRANSIENT, "device busy or in exclusive use"},
    {cudaErrorIllegalAddress, GX_EDEVICE, "sticky: illegal address"},
    {cudaErrorLaunchFailure, GX_EDEVICE, "sticky: launch failure"},
    {cudaErrorECCUncorrectable, GX_EDEVICE, "sticky: uncorrectable ECC error"},
    {cudaErrorHardwareStackError, GX_EDEVICE, "sticky: hardware stack error"},
    {cudaErrorIllegalInstruction, GX_EDEVICE, "sticky: illegal instruction"},
    {cudaErrorMisalignedAddress, GX_EDEVICE, "sticky: misaligned address"},
    {cudaErrorInvalidAddressSpace, GX_EDEVICE, "sticky: invalid address space"},
    {cudaErrorInvalidPc, GX_EDEVICE, "sticky: invalid program counter"},
    {cudaErrorLaunchTimeout, GX_EDEVICE, "sticky: kernel killed by the watchdog"},
    {cudaErrorAssert, GX_EDEVICE, "sticky: device-side assert"},
    /* sticky too, by number: newer toolkits name them (CUDA 12.x-13) */
    {226 /* cudaErrorContained */, GX_EDEVICE, "sticky: contained device error"},
    {721 /* cudaErrorTensorMemoryLeak */, GX_EDEVICE, "sticky: tensor memory not freed"},
    {810 /* cudaErrorMpsClientTerminated */, GX_EDEVICE, "sticky: MPS client terminated"},
    {911 /* cudaErrorExternalDevice */, GX_EDEVICE, "sticky: external device error"},
    {cudaErrorUnknown, GX_EDEVICE, "unknown: treated as sticky"},
    {cudaErrorContextIsDestroyed, GX_EDEVICE, "context gone"},
    {cudaErrorInvalidValue, GX_EINVAL, "invalid argument: the call is wrong, not the device"},
    {cudaErrorInvalidConfiguration, GX_EINVAL, "invalid launch configuration"},
};

int gxc_gx_code(int rc) {
    for (size_t i = 0; i < sizeof cuda_map / sizeof cuda_map[0]; i++)
        if (cuda_map[i].cuda == rc) return cuda_map[i].gx;
    return GX_EKERNEL;
}

int gxc_is_sticky(int rc) { return gxc_gx_code(rc) == GX_EDEVICE; }

int gxc_err(gx_error *e, int rc, const char *what) {
    const char *name = cudaGetErrorName((cudaError_t)rc);
    const char *text = cudaGetErrorString((cudaError_t)rc);
    int code = gxc_gx_code(rc);
    if (rc == cudaErrorMemoryAllocation)
        return gx_error_set(e, code, NULL, "GPU out of memory in %s (%s)", what, name);
    if (code == GX_EDEVICE) return gx_error_set(e, code, NULL, "GPU fault in %s: %s (%s)", what, name, text);
    return gx_error_set(e, code, NULL, "CUDA error in %s: %s (%s)", what, name, text);
}

int gxc_dev_err(gxc_dev *d, gx_error *e, int rc, const char *what) {
    cudaGetLastError(); /* clear a non-sticky error so later calls start clean */
    if (gxc_is_sticky(rc)) atomic_store(&d->faulted, 1);
    return gxc_err(e, rc, what);
}

int gxc_check(gxc_call *k, int rc, const char *what) { return rc ? gxc_dev_err(k->s->dev, k->err, rc, what) : 0; }

int gxc_blas_fail(gxc_call *k, int status, const char *what) {
    cudaError_t ce = cudaStreamQuery(k->s->stream);
    if (ce == cudaErrorNotReady) ce = cudaSuccess;
    if (ce == cudaSuccess) ce = cudaPeekAtLastError();
    if (gxc_is_sticky(ce)) return gxc_check(k, ce, what);
    if (status == CUBLAS_STATUS_ALLOC_FAILED)
        return gx_error_set(k->err, GX_ETRANSIENT, NULL, "%s: cuBLAS could not allocate GPU memory", what);
    return gx_error_set(k->err, GX_EKERNEL, NULL, "%s: %s", what, cublasGetStatusString((cublasStatus_t)status));
}

void gxc_begin(gxc_call *k, gxc_slot *s, gx_error *err) {
    memset(k, 0, sizeof *k);
    k->s = s;
    k->err = err;
    k->mbase = s->moff;
    k->in_lo = k->in_hi = s->moff;
    k->outs = k->outs_inline;
    k->outcap = GXC_MAX_OUTS;
}

static int in_mirror(const gxc_slot *s, const void *d) {
    return (const unsigned char *)d >= s->dm && (const unsigned char *)d < s->dm + GXC_MIRROR_BYTES;
}

static int mirror_take(gxc_slot *s, size_t bytes, size_t *off) {
    size_t b = align_up(bytes ? bytes : 1);
    if (b > GXC_MIRROR_BYTES - s->moff) return 0;
    *off = s->moff;
    s->moff += b;
    if (s->moff > s->mhigh) s->mhigh = s->moff;
    return 1;
}

int gxc_alloc_pool(gxc_call *k, size_t bytes, void **d) {
    gxc_slot *s = k->s;
    gxc_dev *dev = s->dev;
    if (k->npooled == GXC_MAX_POOLED)
        return gx_error_set(k->err, GX_ELIMIT, NULL, "a call may hold at most %d large buffers",
                            GXC_MAX_POOLED);
    size_t b = align_up(bytes ? bytes : 1);
    void *p = NULL;
    cudaError_t rc = cudaMallocFromPoolAsync(&p, b, dev->pool, s->stream);
    if (rc == cudaErrorMemoryAllocation) {
        /* Cached pool blocks may be what is missing: give them back and retry. */
        cudaGetLastError();
        cudaError_t src = cudaStreamSynchronize(s->stream);
        if (gxc_is_sticky(src)) return gxc_check(k, src, "kernel"); /* this call's work faulted */
        cudaMemPoolTrimTo(dev->pool, 0);
        rc = cudaMallocFromPoolAsync(&p, b, dev->pool, s->stream);
    }
    if (rc) {
        cudaGetLastError();
        if (rc == cudaErrorMemoryAllocation) {
            atomic_fetch_add(&dev->oom_count, 1);
            size_t fr = 0, tot = 0;
            cudaMemGetInfo(&fr, &tot);
            return gx_error_set(k->err, GX_ETRANSIENT, NULL,
                                "GPU out of memory on %s: could not allocate %zu bytes (%zu of %zu "
                                "bytes free)",
                                dev->desc.name, b, fr, tot);
        }
        return gxc_check(k, rc, "cudaMallocFromPoolAsync"); /* a sticky code marks the device */
    }
    k->pooled[k->npooled] = p;
    k->pooled_bytes[k->npooled++] = b;
    int64_t now = atomic_fetch_add(&dev->pool_in_use, (int64_t)b) + (int64_t)b;
    int64_t peak = atomic_load(&dev->pool_peak);
    while (now > peak && !atomic_compare_exchange_weak(&dev->pool_peak, &peak, now)) {
    }
    *d = p;
    return 0;
}

int gxc_alloc(gxc_call *k, size_t bytes, void **d) {
    size_t off;
    if (mirror_take(k->s, bytes, &off)) {
        *d = k->s->dm + off;
        return 0;
    }
    return gxc_alloc_pool(k, bytes, d);
}

/* Host -> pool memory through the chunk halves. */
static int chunk_up(gxc_call *k, void *d, const void *h, size_t bytes) {
    gxc_slot *s = k->s;
    if (bytes) s->chunks_dirty = 1;
    for (size_t off = 0, i = 0; off < bytes; off += GXC_CHUNK_BYTES, i++) {
        size_t len = bytes - off < GXC_CHUNK_BYTES ? bytes - off : GXC_CHUNK_BYTES;
        int half = (int)(i & 1);
        int rc = cudaEventSynchronize(s->cev[half]); /* previous DMA out of this half done */
        if (rc) return gxc_check(k, rc, "upload");
        memcpy(s->hc[half], (const char *)h + off, len);
        rc = cudaMemcpyAsync((char *)d + off, s->hc[half], len, cudaMemcpyHostToDevice, s->stream);
        if (!rc) rc = cudaEventRecord(s->cev[half], s->stream);
        if (rc) return gxc_check(k, rc, "upload");
    }
    return 0;
}

/* Pool memory -> host through the chunk halves: DMA of chunk i overlaps the
 * memcpy of chunk i-1. */
static int chunk_down(gxc_call *k, void *h, const void *d, size_t bytes) {
    gxc_slot *s = k->s;
    if (bytes) s->chunks_dirty = 1;
    size_t nchunks = (bytes + GXC_CHUNK_BYTES - 1) / GXC_CHUNK_BYTES;
    for (size_t i = 0; i <= nchunks; i++) {
        if (i < nchunks) {
            size_t off = i * GXC_CHUNK_BYTES;
            size_t len = bytes - off < GXC_CHUNK_BYTES ? bytes - off : GXC_CHUNK_BYTES;
            int half = (int)(i & 1);
            int rc = cudaMemcpyAsync(s->hc[half], (const char *)d + off, len, cudaMemcpyDeviceToHost,
                                     s->stream);
            if (!rc) rc = cudaEventRecord(s->cev[half], s->stream);
            if (rc) return gxc_check(k, rc, "download");
        }
        if (i > 0) {
            size_t p = i - 1, off = p * GXC_CHUNK_BYTES;
            size_t len = bytes - off < GXC_CHUNK_BYTES ? bytes - off : GXC_CHUNK_BYTES;
            int half = (int)(p & 1);
            int rc = cudaEventSynchronize(s->cev[half]);
            if (rc) return gxc_check(k, rc, "download");
            memcpy((char *)h + off, s->hc[half], len);
        }
    }
    return 0;
}

int gxc_in_bytes(gxc_call *k, const void *h, size_t bytes, void **d) {
    gxc_slot *s = k->s;
    size_t off;
    if (k->in_hi == k->in_lo) k->in_lo = k->in_hi = s->moff; /* first staged input */
    /* Mirror staging only while the staged inputs stay one contiguous run. */
    if (!k->uploaded && k->in_hi == s->moff && mirror_take(s, bytes, &off)) {
        if (bytes) memcpy(s->hm + off, h, bytes);
        k->in_hi = s->moff;
        *d = s->dm + off;
        return 0;
    }
    int rc = gxc_alloc_pool(k, bytes, d);
    if (rc) return rc;
    return chunk_up(k, *d, h, bytes);
}

int gxc_in(gxc_call *k, const gx_array *a, void **d) {
    return gxc_in_bytes(k, a->data, a->nbytes, d);
}

int gxc_in_concat(gxc_call *k, gx_array *const *arrays, int n, void **d) {
    gxc_slot *s = k->s;
    size_t total = 0, off;
    for (int i = 0; i < n; i++) total += arrays[i]->nbytes;
    if (k->in_hi == k->in_lo) k->in_lo = k->in_hi = s->moff;
    if (!k->uploaded && k->in_hi == s->moff && mirror_take(s, total, &off)) {
        size_t o = off;
        for (int i = 0; i < n; i++) {
            if (arrays[i]->nbytes) memcpy(s->hm + o, arrays[i]->data, arrays[i]->nbytes);
            o += arrays[i]->nbytes;
        }
        k->in_hi = s->moff;
        *d = s->dm + off;
        return 0;
    }
    int rc = gxc_alloc_pool(k, total, d);
    size_t o = 0;
    for (int i = 0; !rc && i < n; i++) {
        rc = chunk_up(k, (char *)*d + o, arrays[i]->data, arrays[i]->nbytes);
        o += arrays[i]->nbytes;
    }
    return rc;
}

int gxc_upload(gxc_call *k) {
    gxc_slot *s = k->s;
    k->uploaded = 1;
    if (k->in_hi == k->in_lo) return 0;
    int rc = cudaMemcpyAsync(s->dm + k->in_lo, s->hm + k->in_lo, k->in_hi - k->in_lo,
                             cudaMemcpyHostToDevice, s->stream);
    return gxc_check(k, rc, "upload");
}

static gxc_outbuf *out_new(gxc_call *k, gx_array **dst, gx_dtype dt, int ndim, const int64_t *shape) {
    if (k->nouts == k->outcap) {
        gx_error_set(k->err, GX_ELIMIT, NULL, "too many outputs in one call");
        return NULL;
    }
    gxc_outbuf *o = &k->outs[k->nouts];
    memset(o, 0, sizeof *o);
    o->dst = dst;
    o->dt = dt;
    o->ndim = ndim;
    int64_t cnt = 1;
    for (int i = 0; i < ndim; i++) {
        o->shape[i] = shape[i];
        cnt *= shape[i];
    }
    o->bytes = (size_t)cnt * gx_dtype_size(dt);
    return o;
}

int gxc_out(gxc_call *k, gx_array **dst, gx_dtype dt, int ndim, const int64_t *shape, void **d) {
    gxc_outbuf *o = out_new(k, dst, dt, ndim, shape);
    if (!o) return GX_ELIMIT;
    size_t off;
    if (mirror_take(k->s, o->bytes, &off)) {
        o->d = k->s->dm + off;
    } else {
        int rc = gxc_alloc_pool(k, o->bytes, &o->d);
        if (rc) return rc;
        o->pooled = 1;
    }
    k->nouts++;
    *d = o->d;
    return 0;
}

int gxc_out_at(gxc_call *k, gx_array **dst, gx_dtype dt, int ndim, const int64_t *shape, void *d) {
    gxc_outbuf *o = out_new(k, dst, dt, ndim, shape);
    if (!o) return GX_ELIMIT;
    o->d = d;
    o->pooled = !in_mirror(k->s, d);
    k->nouts++;
    return 0;
}

int gxc_fetch(gxc_call *k, void *h, const void *d, size_t bytes) {
    gxc_slot *s = k->s;
    if (bytes > 4096) {
        int rc = chunk_down(k, h, d, bytes);
        return rc ? rc : gxc_check(k, cudaStreamSynchronize(s->stream), "fetch");
    }
    for (size_t off = 0; off < bytes; off += 4096) {
        size_t len = bytes - off < 4096 ? bytes - off : 4096;
        int rc = cudaMemcpyAsync(s->hsmall, (const char *)d + off, len, cudaMemcpyDeviceToHost, s->stream);
        if (!rc) rc = cudaStreamSynchronize(s->stream);
        if (rc) return gxc_check(k, rc, "fetch");
        memcpy((char *)h + off, s->hsmall, len);
    }
    return 0;
}

/* Release the call's pool blocks, zeroed first. */
static void release_pool(gxc_call *k) {
    gxc_slot *s = k->s;
    for (int i = 0; i < k->npooled; i++) {
        cudaMemsetAsync(k->pooled[i], 0, k->pooled_bytes[i], s->stream);
        cudaFreeAsync(k->pooled[i], s->stream);
        atomic_fetch_sub(&s->dev->pool_in_use, (int64_t)k->pooled_bytes[i]);
    }
    k->npooled = 0;
}

int gxc_finish(gxc_call *k, int rc) {
    gxc_slot *s = k->s;
    if (!rc) rc = gxc_check(k, cudaGetLastError(), "kernel launch");
    /* one copy for every mirror output: they were taken in order, so they
     * span [lo, hi) of the mirror */
    size_t lo = (size_t)-1, hi = 0;
    if (!rc) {
        for (int i = 0; i < k->nouts; i++) {
            gxc_outbuf *o = &k->outs[i];
            if (o->pooled) continue;
            size_t off = (size_t)((unsigned char *)o->d - s->dm);
            if (off < lo) lo = off;
            if (off + o->bytes > hi) hi = off + o->bytes;
        }
        if (hi > lo)
            rc = gxc_check(k, cudaMemcpyAsync(s->hm + lo, s->dm + lo, hi - lo, cudaMemcpyDeviceToHost,
                                              s->stream),
                           "download");
    }
    /* allocate the host arrays while the copies run */
    for (int i = 0; !rc && i < k->nouts; i++) {
        gxc_outbuf *o = &k->outs[i];
        rc = gx_array_new(o->dt, o->ndim, o->shape, o->dst, k->err);
    }
    for (int i = 0; !rc && i < k->nouts; i++) {
        gxc_outbuf *o = &k->outs[i];
        if (o->pooled && o->bytes) rc = chunk_down(k, (*o->dst)->data, o->d, o->bytes);
    }
    if (!rc) rc = gxc_check(k, cudaStreamSynchronize(s->stream), "kernel");
    for (int i = 0; !rc && i < k->nouts; i++) {
        gxc_outbuf *o = &k->outs[i];
        if (!o->pooled && o->bytes)
            memcpy((*o->dst)->data, s->hm + ((unsigned char *)o->d - s->dm), o->bytes);
    }
    if (rc) {
        for (int i = 0; i < k->nouts; i++) {
            gx_array_unref(*k->outs[i].dst);
            *k->outs[i].dst = NULL;
        }
        if (gxc_is_sticky(rc) || (k->err && k->err->code == GX_EDEVICE)) {
            /* the context is gone; nothing below can be enqueued */
            k->npooled = 0;
            s->moff = k->mbase;
            return rc;
        }
        /* pending copies may still read the host mirror: let them finish
         * before the next call reuses it. A sticky fault of work this call
         * queued surfaces here when it failed for another reason first (an
         * OOM after launches, a cuBLAS status): it is this call's, and the
         * device's (the next call on the slot got it, and the blame) */
        int src = cudaStreamSynchronize(s->stream);
        if (gxc_is_sticky(src)) {
            rc = gxc_check(k, src, "kernel");
            k->npooled = 0;
            s->moff = k->mbase;
            return rc;
        }
        cudaGetLastError();
    }
    release_pool(k);
    s->moff = k->mbase;
    return rc;
}
