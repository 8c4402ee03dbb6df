/*
 * kernels_int.h - helpers shared by the built-in CPU kernels.
 *
 * Each kernel lives in its own file (saxpy.c, later saxpy.cu beside it) and
 * exports one `const gx_kernel gx__k_<name>` that catalog.c registers.
 */
#ifndef GX_KERNELS_INT_H
#define GX_KERNELS_INT_H

#include <stdio.h>

#include "gexec/gexec_kernel.h"

#define GX_KERNEL_HEADER .abi_version = GX_KERNEL_ABI_VERSION, .struct_size = sizeof(gx_kernel)

/* Allocate output i as a new array; returns 0 or a code with c->err set. */
static inline int gx__kout(gx_kcall *c, int i, gx_dtype dt, int ndim, const int64_t *shape) {
    char field[96];
    snprintf(field, sizeof field, "outputs.%s", c->kernel->outputs[i].name);
    int rc = gx_array_new(dt, ndim, shape, &c->out[i], c->err);
    if (rc && c->err) snprintf(c->err->field, sizeof c->err->field, "%s", field);
    return rc;
}

/* Sum of input bytes, a base for mem_bytes(). */
static inline uint64_t gx__kin_bytes(const gx_kcall *c) {
    uint64_t b = 0;
    for (int i = 0; i < c->nin_all; i++) b += c->in_all[i]->nbytes;
    return b;
}

#define GX_KERNEL_LIST(X) \
    X(spin)

#endif
