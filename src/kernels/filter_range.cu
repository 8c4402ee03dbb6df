/*
 * filter_range.cu - the elements of x with lo <= x <= hi, in order, and
 * their indices. Three steps: flag each element, exclusive scan of the
 * flags (CUB, one int32 instantiation) to get each kept element's slot,
 * scatter. The caller reads the total (last pos + last flag) between the
 * scan and the scatter to size the outputs.
 */
#include <cub/device/device_scan.cuh>

#include "gxk_common.cuh"

#define THREADS 256

template <typename T>
__global__ void flag_k(int64_t n, const T *__restrict__ x, double lo, double hi, int32_t *flags) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS) {
        double v = (double)x[i];
        flags[i] = (v >= lo && v <= hi) ? 1 : 0;
    }
}

/* i64 compared exactly against the integer interval [ilo, ihi] (empty when
 * ilo > ihi), as filter_range.c does: no rounding of values above 2^53. */
__global__ void flag_i64_k(int64_t n, const int64_t *__restrict__ x, int64_t ilo, int64_t ihi, int32_t *flags) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        flags[i] = (x[i] >= ilo && x[i] <= ihi) ? 1 : 0;
}

template <typename T>
__global__ void scatter_k(int64_t n, const T *__restrict__ x, const int32_t *__restrict__ flags,
                          const int32_t *__restrict__ pos, T *y, int64_t *index) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        if (flags[i]) {
            int32_t p = pos[i];
            if (y) y[p] = x[i];
            if (index) index[p] = i;
        }
}

extern "C" size_t gxk_filter_temp_bytes(int64_t n) {
    size_t t = 0;
    cub::DeviceScan::ExclusiveSum(nullptr, t, (const int32_t *)nullptr, (int32_t *)nullptr, (int)n);
    return t;
}

extern "C" int gxk_filter_flags(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, double lo,
                                double hi, int32_t *flags, int32_t *pos, void *temp,
                                size_t temp_bytes) {
    if (n <= 0) return 0;
    if (n > INT32_MAX) return (int)cudaErrorInvalidValue;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    if (dt == GX_I64) {
        const double two63 = 9223372036854775808.0;
        double cl = ceil(lo), fh = floor(hi);
        int64_t ilo = 1, ihi = 0;
        if (!(cl >= two63 || fh < -two63 || cl > fh)) {
            ilo = cl <= -two63 ? INT64_MIN : (int64_t)cl;
            ihi = fh >= two63 ? INT64_MAX : (int64_t)fh;
        }
        flag_i64_k<<<g, THREADS, 0, s>>>(n, (const int64_t *)x, ilo, ihi, flags);
    } else {
        GXK_NUM_DISPATCH(dt, flag_k<T><<<g, THREADS, 0, s>>>(n, (const T *)x, lo, hi, flags));
    }
    cudaError_t rc = cub::DeviceScan::ExclusiveSum(temp, temp_bytes, (const int32_t *)flags, pos, (int)n, s);
    if (rc) return (int)rc;
    return (int)cudaGetLastError();
}

extern "C" int gxk_filter_scatter(cudaStream_t s, gx_dtype dt, int64_t n, const void *x,
                                  const int32_t *flags, const int32_t *pos, void *y, int64_t *index) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    GXK_NUM_DISPATCH(dt, scatter_k<T><<<g, THREADS, 0, s>>>(n, (const T *)x, flags, pos, (T *)y, index));
    return (int)cudaGetLastError();
}
