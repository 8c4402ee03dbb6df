/*
 * kernels_int.h - helpers shared by the built-in CPU kernels.
 *
 * Each kernel lives in its own file (saxpy.c, later saxpy.cu beside it) and
 * exports one `const gx_kernel gx__k_<name>` that catalog.c registers.
 */
#ifndef GX_KERNELS_INT_H
#define GX_KERNELS_INT_H

#include <float.h>
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

/* Saturating sum and product for mem_bytes(): an estimate that would wrap
 * (a 2^32 x 0 times 0 x 2^32 gemm has an output of 2^64 elements) becomes
 * UINT64_MAX, more than any device has, so submit refuses the job instead
 * of passing it on a wrapped, small figure. */
static inline uint64_t gx__kmem_add(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}
static inline uint64_t gx__kmem_mul(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Every valid dtype, for inputs that are only moved around (sort values). */
#define GX_DTM_ANY (((1u << GX_DT_COUNT) - 1u) & ~GX_DTM(GX_DT_INVALID))

/* Bounds for a FLOAT argument that takes any finite value (the registry
 * checks [min, max] inclusively, so leaving them 0 would allow only 0). */
#define GX_KARG_ANY_FLOAT .min = -DBL_MAX, .max = DBL_MAX

/* Elements processed between two polls of the cancel flag in streaming
 * loops: a few hundred microseconds of work at most. */
#define GX_KCHUNK ((int64_t)1 << 16)

/* Report a cancelled call: returns GX_ECANCELED with c->err set. */
static inline int gx__kcancel(gx_kcall *c) {
    return gx_error_set(c->err, GX_ECANCELED, NULL, "%s cancelled", c->kernel->name);
}

/* ---- dense matrix product (gemm.c), shared with mlp_forward ----------------
 * C = alpha * op(A) * op(B) + beta * C on row-major matrices, op(X) being X
 * or its transpose. op(A) is m x k, op(B) is k x n, C is m x n; lda, ldb and
 * ldc are row strides in elements of the matrices as stored. C is not read
 * when beta == 0, and A and B are not read when alpha == 0 or k == 0.
 * Blocked for cache, SIMD where the CPU has it, and split over threads above
 * a size threshold. Returns 0, GX_ENOMEM or GX_ECANCELED (no message: the
 * caller words it). */
typedef struct gx__gemm_op {
    gx_dtype dt; /* GX_F32 or GX_F64 for all three matrices */
    int64_t m, n, k;
    double alpha, beta;
    const void *a;
    int64_t lda;
    int trans_a; /* A is stored k x m */
    const void *b;
    int64_t ldb;
    int trans_b; /* B is stored n x k */
    void *c;
    int64_t ldc;
    const volatile int *cancel; /* polled between blocks; may be NULL */
    int max_threads;            /* 0: as many as the machine has */
} gx__gemm_op;
int gx__gemm(const gx__gemm_op *op);
/* Scratch bytes gx__gemm allocates for a product of that size. */
uint64_t gx__gemm_scratch_bytes(gx_dtype dt, int64_t m, int64_t n, int64_t k);

/* SIMD code paths: -1 (default) use them when the CPU supports them, 0 never
 * (the portable C path; tests use it to cover both). Not thread-safe to
 * change while kernels run. */
extern int gx__kernels_simd;

#define GX_KERNEL_LIST(X) \
    X(filter_range)       \
    X(gemm)               \
    X(histogram)          \
    X(linreg_gd)          \
    X(mlp_forward)        \
    X(normalize)          \
    X(reduce_sum)         \
    X(saxpy)              \
    X(sort)               \
    X(spin)

#endif
