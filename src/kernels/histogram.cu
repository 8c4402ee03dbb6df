/*
 * histogram.cu - counts of x in `bins` equal bins over [lo, hi] (NumPy's
 * rule: the last bin includes hi; values outside and NaN are not counted).
 * The bin of a value is found exactly as the CPU version (histogram.c)
 * finds it: scaled offset, then corrected against the edges
 * linspace(lo, hi, bins + 1), all in f64 with no fused multiply-adds, so
 * both give the same counts bit for bit.
 * Up to 8192 bins each block counts in shared memory and adds its counts to
 * the global ones once; wider histograms count in global memory directly.
 */
#include "gxk_common.cuh"

#define THREADS 256
#define SMEM_BINS 8192

/* edge i of linspace(lo, hi, bins + 1), as histogram.c computes it */
__device__ __forceinline__ double edge(int64_t i, int64_t bins, double lo, double hi, double step) {
    if (i >= bins) return hi;
    if (step != 0) return __dadd_rn(__dmul_rn((double)i, step), lo);
    return __dadd_rn(__dmul_rn(__ddiv_rn((double)i, (double)bins), __dsub_rn(hi, lo)), lo);
}

template <typename T>
__device__ __forceinline__ int64_t bin_of(T v, int64_t bins, double lo, double hi, double step) {
    double d = (double)v;
    if (!(d >= lo && d <= hi)) return -1;
    int64_t b = (int64_t)__dmul_rn(__ddiv_rn(__dsub_rn(d, lo), __dsub_rn(hi, lo)), (double)bins);
    if (b >= bins) b = bins - 1;
    if (d < edge(b, bins, lo, hi, step)) b--;
    else if (b != bins - 1 && d >= edge(b + 1, bins, lo, hi, step)) b++;
    return b;
}

template <typename T>
__global__ void __launch_bounds__(THREADS) hist_smem_k(int64_t n, const T *__restrict__ x, int64_t bins,
                                                       double lo, double hi, double scale,
                                                       unsigned long long *counts) {
    __shared__ unsigned int h[SMEM_BINS];
    for (int i = threadIdx.x; i < bins; i += THREADS) h[i] = 0;
    __syncthreads();
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS) {
        int64_t b = bin_of(x[i], bins, lo, hi, scale);
        if (b >= 0) atomicAdd(&h[b], 1u);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < bins; i += THREADS)
        if (h[i]) atomicAdd(&counts[i], (unsigned long long)h[i]);
}

template <typename T>
__global__ void hist_global_k(int64_t n, const T *__restrict__ x, int64_t bins, double lo, double hi,
                              double scale, unsigned long long *counts) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS) {
        int64_t b = bin_of(x[i], bins, lo, hi, scale);
        if (b >= 0) atomicAdd(&counts[b], 1ull);
    }
}

/* counts (bins u64) must be zeroed by the caller. */
extern "C" int gxk_histogram(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, int64_t bins,
                             double lo, double hi, unsigned long long *counts) {
    if (n <= 0 || bins <= 0) return 0;
    double scale = (hi - lo) / (double)bins; /* the edge step */
    GXK_NUM_DISPATCH(dt, {
        if (bins <= SMEM_BINS) {
            unsigned g = gxk_blocks(n, THREADS * 16, 132 * 4);
            hist_smem_k<T><<<g, THREADS, 0, s>>>(n, (const T *)x, bins, lo, hi, scale, counts);
        } else {
            unsigned g = gxk_blocks(n, THREADS, 132 * 16);
            hist_global_k<T><<<g, THREADS, 0, s>>>(n, (const T *)x, bins, lo, hi, scale, counts);
        }
    });
    return (int)cudaGetLastError();
}

template <typename T>
__global__ void u64_to_k(int64_t n, const unsigned long long *src, T *dst) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        dst[i] = (T)src[i];
}

/* Convert u64 counts to the output dtype (i64, i32, f32, f64). */
extern "C" int gxk_u64_to(cudaStream_t s, gx_dtype dt, int64_t n, const unsigned long long *src,
                          void *dst) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    GXK_NUM_DISPATCH(dt, u64_to_k<T><<<g, THREADS, 0, s>>>(n, src, (T *)dst));
    return (int)cudaGetLastError();
}
