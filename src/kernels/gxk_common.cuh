/*
 * gxk_common.cuh - what the CUDA kernels share: dtype dispatch and launch
 * sizing. Included by src/kernels/<name>.cu only.
 */
#ifndef GX_GXK_COMMON_CUH
#define GX_GXK_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "../cuda/gxk.h"

/* Blocks for n items at `per_block` each, capped so grid-stride loops keep
 * every SM busy without a huge grid. */
static inline unsigned gxk_blocks(int64_t n, int64_t per_block, unsigned cap = 65535u * 16) {
    int64_t b = (n + per_block - 1) / per_block;
    if (b < 1) b = 1;
    if (b > (int64_t)cap) b = cap;
    return (unsigned)b;
}

/* Call F<T>(args...) for a floating dtype; cudaErrorInvalidValue otherwise. */
#define GXK_FLOAT_DISPATCH(dt, ...)                         \
    switch (dt) {                                           \
    case GX_F32: { typedef float T; __VA_ARGS__; } break;          \
    case GX_F64: { typedef double T; __VA_ARGS__; } break;         \
    default: return (int)cudaErrorInvalidValue;             \
    }

#define GXK_NUM_DISPATCH(dt, ...)                           \
    switch (dt) {                                           \
    case GX_F32: { typedef float T; __VA_ARGS__; } break;          \
    case GX_F64: { typedef double T; __VA_ARGS__; } break;         \
    case GX_I32: { typedef int32_t T; __VA_ARGS__; } break;        \
    case GX_I64: { typedef int64_t T; __VA_ARGS__; } break;        \
    default: return (int)cudaErrorInvalidValue;             \
    }

#endif
