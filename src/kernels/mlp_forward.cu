/*
 * mlp_forward.cu - the fused epilogue of a dense layer: y = act(y + b) on a
 * [rows, cols] row-major block that cuBLAS has just written, optionally
 * followed by a row softmax. The matrix products themselves are cuBLAS
 * calls made by the backend glue.
 */
#include "gxk_common.cuh"

#define THREADS 256

template <typename T> __device__ __forceinline__ T act_f(T v, int act) {
    if (act == 1) return v < (T)0 ? (T)0 : v; /* NaN stays NaN, as numpy's maximum(v, 0) */
    if (act == 2) return tanh(v);
    return v;
}

template <typename T>
__global__ void bias_act_k(int64_t rows, int64_t cols, T *y, const T *__restrict__ b, int act) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        y[i] = act_f<T>(y[i] + (b ? b[i % cols] : (T)0), act);
}

__device__ __forceinline__ double block_reduce(double v, bool is_max) {
    __shared__ double sh[THREADS / 32];
    for (int o = 16; o; o >>= 1) {
        double w = __shfl_down_sync(0xffffffffu, v, o);
        v = is_max ? fmax(v, w) : v + w;
    }
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < THREADS / 32 ? sh[threadIdx.x] : (is_max ? -INFINITY : 0.0);
        for (int o = 16; o; o >>= 1) {
            double w = __shfl_down_sync(0xffffffffu, v, o);
            v = is_max ? fmax(v, w) : v + w;
        }
        if (threadIdx.x == 0) sh[0] = v;
    }
    __syncthreads();
    double r = sh[0];
    __syncthreads();
    return r;
}

/* One block per row: bias, activation, then softmax with the max taken out. */
template <typename T>
__global__ void bias_act_softmax_k(int64_t cols, T *y, const T *__restrict__ b, int act) {
    T *row = y + (int64_t)blockIdx.x * cols;
    double m = -INFINITY;
    for (int64_t j = threadIdx.x; j < cols; j += THREADS) {
        T v = act_f<T>(row[j] + (b ? b[j] : (T)0), act);
        row[j] = v;
        m = fmax(m, (double)v);
    }
    m = block_reduce(m, true);
    double sum = 0;
    for (int64_t j = threadIdx.x; j < cols; j += THREADS) sum += exp((double)row[j] - m);
    sum = block_reduce(sum, false);
    for (int64_t j = threadIdx.x; j < cols; j += THREADS) row[j] = (T)(exp((double)row[j] - m) / sum);
}

extern "C" int gxk_bias_act(cudaStream_t s, gx_dtype dt, int64_t rows, int64_t cols, void *y,
                            const void *b, int act, int softmax) {
    if (rows <= 0 || cols <= 0) return 0;
    GXK_FLOAT_DISPATCH(dt, {
        if (softmax) {
            if (rows > 0x7fffffff) return (int)cudaErrorInvalidValue;
            bias_act_softmax_k<T><<<(unsigned)rows, THREADS, 0, s>>>(cols, (T *)y, (const T *)b, act);
        } else {
            unsigned g = gxk_blocks(rows * cols, THREADS, 132 * 16);
            bias_act_k<T><<<g, THREADS, 0, s>>>(rows, cols, (T *)y, (const T *)b, act);
        }
    });
    return (int)cudaGetLastError();
}
