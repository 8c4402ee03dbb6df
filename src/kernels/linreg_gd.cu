/*
 * linreg_gd.cu - the elementwise steps of gradient descent for linear
 * regression (the two matrix-vector products per step are cuBLAS dgemv
 * calls in the glue): residual and loss, the weight update, and dtype
 * conversions to and from the double working copy.
 */
#include "gxk_common.cuh"

#define THREADS 256

template <typename T> __global__ void to_f64_k(int64_t n, const T *src, double *dst) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        dst[i] = (double)src[i];
}
template <typename T> __global__ void from_f64_k(int64_t n, const double *src, T *dst) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        dst[i] = (T)src[i];
}

extern "C" int gxk_to_f64(cudaStream_t s, gx_dtype dt, int64_t n, const void *src, double *dst) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    GXK_NUM_DISPATCH(dt, to_f64_k<T><<<g, THREADS, 0, s>>>(n, (const T *)src, dst));
    return (int)cudaGetLastError();
}

extern "C" int gxk_from_f64(cudaStream_t s, gx_dtype dt, int64_t n, const double *src, void *dst) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    GXK_NUM_DISPATCH(dt, from_f64_k<T><<<g, THREADS, 0, s>>>(n, src, (T *)dst));
    return (int)cudaGetLastError();
}

__global__ void __launch_bounds__(THREADS) resid_k(int64_t n, double *r, const double *__restrict__ y,
                                                   double *loss) {
    __shared__ double sh[THREADS / 32];
    double acc = 0;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS) {
        double v = r[i] - y[i];
        r[i] = v;
        acc += v * v;
    }
    for (int o = 16; o; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int i = 0; i < THREADS / 32; i++) t += sh[i];
        atomicAdd(loss, t / (double)n);
    }
}

extern "C" int gxk_resid(cudaStream_t s, int64_t n, double *r, const double *y, double *loss) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 4);
    resid_k<<<g, THREADS, 0, s>>>(n, r, y, loss);
    return (int)cudaGetLastError();
}

__global__ void axpy_k(int64_t n, double a, const double *x, double *y) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        y[i] += a * x[i];
}

extern "C" int gxk_axpy_f64(cudaStream_t s, int64_t n, double a, const double *x, double *y) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    axpy_k<<<g, THREADS, 0, s>>>(n, a, x, y);
    return (int)cudaGetLastError();
}
