/*
 * probe_gpu.c - the call of the test-only kernel "test_probe", for
 * tests/gpu/test_isolation_gpu.c; its device code is in probe_gpu.cu. Built
 * only into libgexec_cuda_probe.so (the CUDA backend's objects plus the
 * probe), never into the backend gexecd loads.
 *
 * A probe call takes buffers exactly as a real kernel's call does: `bytes`
 * from the slot's mirror (gxc_alloc: offset 0 of the mirror, where the
 * previous call's data lies) and `pool_bytes` from the device pool
 * (gxc_alloc_pool). mode 1 fills both with a pattern word (tenant A leaves
 * its data behind); mode 0 writes nothing into them and counts what it
 * finds there: a fresh buffer that holds anything but zeros shows data left
 * by an earlier call. Output `counts` (i64 [6]): mirror nonzero bytes,
 * mirror pattern words, pool nonzero bytes, pool pattern words, the slot
 * index and the GPU ordinal the call ran on.
 *
 * The host declares the kernel (the test registers it before the engine
 * loads this library); the constructor below attaches this implementation
 * to it, and the backend runs a kernel that brought its own CUDA function
 * on the slot it was given (gx_kcall.dev_ctx).
 */
#include <string.h>

#include "cuda_int.h"

int gx_probe_fill(cudaStream_t s, void *p, size_t words);
int gx_probe_count(cudaStream_t s, const void *p, size_t words, void *counts);
int gx_probe_where(cudaStream_t s, void *out, int slot, int ordinal);

static int probe_run(gx_kcall *c) {
    gxc_slot *s = c->dev_ctx;
    if (!s) return gx_error_set(c->err, GX_EUNSUPPORTED, NULL, "test_probe runs on a GPU slot only");
    int mode = (int)gxc_arg(c, "mode", 0);
    size_t mb = (size_t)gxc_arg(c, "bytes", 0) & ~(size_t)3, pb = (size_t)gxc_arg(c, "pool_bytes", 0) & ~(size_t)3;
    gx_array **co = gxc_outp(c, "counts");
    if (!co) return gx_error_set(c->err, GX_EINVAL, "outputs", "output counts is required");
    gxc_call k;
    gxc_begin(&k, s, c->err);
    void *m = NULL, *p = NULL, *dout = NULL;
    const int64_t six = 6;
    /* the mirror buffer first: it lands where the previous call's data is */
    int rc = gxc_alloc(&k, mb ? mb : 4, &m);
    if (!rc && pb) rc = gxc_alloc_pool(&k, pb, &p);
    if (!rc) rc = gxc_out(&k, co, GX_I64, 1, &six, &dout);
    if (!rc) rc = gxc_check(&k, cudaMemsetAsync(dout, 0, 6 * sizeof(int64_t), s->stream), "memset");
    int64_t *counts = dout;
    if (!rc && mode == 1) rc = gxc_check(&k, gx_probe_fill(s->stream, m, mb / 4), "probe fill");
    if (!rc && mode == 1 && pb) rc = gxc_check(&k, gx_probe_fill(s->stream, p, pb / 4), "probe fill");
    if (!rc) rc = gxc_check(&k, gx_probe_count(s->stream, m, mb / 4, counts), "probe count");
    if (!rc && pb) rc = gxc_check(&k, gx_probe_count(s->stream, p, pb / 4, counts + 2), "probe count");
    if (!rc) rc = gxc_check(&k, gx_probe_where(s->stream, counts + 4, s->index, s->dev->ordinal), "probe where");
    return gxc_finish(&k, rc);
}

__attribute__((constructor)) static void probe_attach(void) {
    /* fails quietly when the host did not declare test_probe */
    gx_kernel_set_impl("test_probe", 1, GX_DEV_CUDA, probe_run, NULL);
}
