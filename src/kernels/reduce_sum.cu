/*
 * reduce_sum.cu - sum of all elements. Floating inputs accumulate in double
 * (per thread, then per block, then one atomicAdd per block), integers in
 * 64-bit two's complement, so the result does not depend on the launch
 * shape beyond the rounding of the final cast. Integer sums also keep a
 * double sum beside the wrapped one (acc[1]), from which the caller tells
 * whether the true sum fits in an i64.
 */
#include "gxk_common.cuh"

#define THREADS 256

template <typename T> struct acc_of { typedef double t; };
template <> struct acc_of<int32_t> { typedef unsigned long long t; };
template <> struct acc_of<int64_t> { typedef unsigned long long t; };

__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ unsigned long long warp_sum(unsigned long long v) {
    for (int o = 16; o; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void __launch_bounds__(THREADS) reduce_k(int64_t n, const T *__restrict__ x,
                                                    typename acc_of<T>::t *acc) {
    typedef typename acc_of<T>::t A;
    __shared__ A part[THREADS / 32];
    A v = 0;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        v += (A)x[i];
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < THREADS / 32 ? part[threadIdx.x] : 0;
        v = warp_sum(v);
        if (threadIdx.x == 0) atomicAdd(acc, v);
    }
}

/* The approximate (double) sum of integers, into acc[1]. */
template <typename T>
__global__ void __launch_bounds__(THREADS) reduce_approx_k(int64_t n, const T *__restrict__ x, double *acc) {
    __shared__ double part[THREADS / 32];
    double v = 0;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        v += (double)x[i];
    v = warp_sum(v);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < THREADS / 32 ? part[threadIdx.x] : 0;
        v = warp_sum(v);
        if (threadIdx.x == 0) atomicAdd(acc, v);
    }
}

template <typename T> __global__ void finish_k(const typename acc_of<T>::t *acc, T *out) {
    *out = (T)*acc;
}

/* acc (16 bytes) must be zeroed by the caller. Floats: acc[0] is the double
 * sum. Integers: acc[0] the wrapped int64 sum, acc[1] a double sum. */
extern "C" int gxk_reduce_sum(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, void *acc) {
    if (n <= 0) return 0;
    GXK_NUM_DISPATCH(dt, {
        unsigned g = gxk_blocks(n, THREADS * 8, 132 * 8);
        reduce_k<T><<<g, THREADS, 0, s>>>(n, (const T *)x, (typename acc_of<T>::t *)acc);
        if (dt == GX_I32 || dt == GX_I64)
            reduce_approx_k<T><<<g, THREADS, 0, s>>>(n, (const T *)x, (double *)acc + 1);
    });
    return (int)cudaGetLastError();
}

/* Integer sums come out as int64 (dt is the OUTPUT dtype: f32, f64, i64). */
extern "C" int gxk_reduce_finish(cudaStream_t s, gx_dtype dt, const void *acc, void *out) {
    switch (dt) {
    case GX_F32: finish_k<float><<<1, 1, 0, s>>>((const double *)acc, (float *)out); break;
    case GX_F64: finish_k<double><<<1, 1, 0, s>>>((const double *)acc, (double *)out); break;
    case GX_I64: finish_k<int64_t><<<1, 1, 0, s>>>((const unsigned long long *)acc, (int64_t *)out); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}
