/*
 * inject.c - device fault injection in the CUDA backend (gexec_fault.h).
 *
 * At the start of a launch (run_batch) the backend asks the process-wide
 * points itself, since the engine only synthesises faults for CPU devices:
 *
 *  - GX_FAULT_DEVICE_LAUNCH with code 700 (or 0): a kernel really writes to
 *    an illegal address, so the context gets the sticky error and the
 *    engine's recovery really has to reset the GPU. Any other code is
 *    reported as if the launch had failed with it (2 = out of memory is
 *    transient; sticky codes fault the device).
 *  - GX_FAULT_DEVICE_HANG: a kernel spins on a pinned, host-mapped flag. The
 *    host sets the flag when the job is cancelled (code 0 only: code != 0
 *    plays a kernel that ignores cancellation) or when the engine asks for
 *    the device to be reset (gx_device_abort_requested).
 */
#include <stdio.h>
#include <time.h>

#include "cuda_int.h"
#include "gexec/gexec_fault.h"

int gxk_fault_illegal(cudaStream_t s);
int gxk_hang(cudaStream_t s, const volatile int *flag);

static int fail_as(gxc_slot *s, gx_kcall *c, int cuda_rc) {
    cudaGetLastError();
    if (gxc_is_sticky(cuda_rc)) atomic_store(&s->dev->faulted, 1);
    gx_error tmp;
    int rc = gxc_err(&tmp, cuda_rc, "injected fault");
    return gx_error_set(c->err, rc, NULL, "injected device fault: %s (%d)", cudaGetErrorName((cudaError_t)cuda_rc),
                        cuda_rc);
}

static int hang(gxc_slot *s, gx_kcall *c, int code) {
    volatile int *flag = NULL;
    int *dflag = NULL;
    int rc = cudaHostAlloc((void **)&flag, sizeof *flag, cudaHostAllocMapped);
    if (!rc) {
        *flag = 0;
        rc = cudaHostGetDevicePointer((void **)&dflag, (void *)flag, 0);
    }
    if (!rc) rc = gxk_hang(s->stream, dflag);
    int how = 0; /* 1 cancelled, 2 device reset */
    struct timespec ts = {0, 200000};
    while (!rc) {
        cudaError_t q = cudaStreamQuery(s->stream);
        if (q == cudaSuccess) break;
        if (q != cudaErrorNotReady) {
            rc = q;
            break;
        }
        if (!how && gx_device_abort_requested(c->device)) how = 2, *flag = 1;
        if (!how && !code && gx_kcall_cancelled(c)) how = 1, *flag = 1;
        nanosleep(&ts, NULL);
    }
    if (flag) cudaFreeHost((void *)flag);
    if (rc) return fail_as(s, c, rc);
    if (how == 1) return gx_error_set(c->err, GX_ECANCELED, NULL, "injected hang cancelled");
    return gx_error_set(c->err, GX_EDEVICE, NULL, "injected hang ended by the device reset");
}

int gxc_inject(gxc_slot *s, gx_kcall *const *calls, gx_call_result *res, int n) {
    if (n <= 0) return 0;
    int dev = calls[0]->device;
    gx_fault_spec fs;
    if (gx_fault_take(GX_FAULT_DEVICE_HANG, dev, &fs)) {
        res[0].rc = hang(s, calls[0], fs.code);
        res[0].run_ns = 0;
        return 1;
    }
    if (!gx_fault_take(GX_FAULT_DEVICE_LAUNCH, dev, &fs)) return 0;
    int code = fs.code ? fs.code : cudaErrorIllegalAddress;
    if (code == cudaErrorIllegalAddress) {
        /* the real thing: the context is lost until cudaDeviceReset */
        int rc = gxk_fault_illegal(s->stream);
        if (!rc) rc = cudaStreamSynchronize(s->stream);
        code = rc ? rc : cudaErrorIllegalAddress;
    }
    for (int i = 0; i < n; i++) {
        res[i].rc = fail_as(s, calls[i], code);
        res[i].run_ns = 0;
    }
    return n;
}
