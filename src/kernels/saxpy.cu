/*
 * saxpy.cu - out = a*x + y on the GPU, one call or many small calls in one
 * launch. Memory-bound: each thread moves four 16-byte vectors (float4 /
 * double2) with all loads issued before the first store.
 */
#include "gxk_common.cuh"

template <typename T> struct vec16;
template <> struct vec16<float> { typedef float4 t; enum { n = 4 }; };
template <> struct vec16<double> { typedef double2 t; enum { n = 2 }; };

template <typename T>
__device__ __forceinline__ void axpy_vec(typename vec16<T>::t &o, T a, const typename vec16<T>::t &x,
                                         const typename vec16<T>::t &y);
template <>
__device__ __forceinline__ void axpy_vec<float>(float4 &o, float a, const float4 &x, const float4 &y) {
    o.x = fmaf(a, x.x, y.x); o.y = fmaf(a, x.y, y.y); o.z = fmaf(a, x.z, y.z); o.w = fmaf(a, x.w, y.w);
}
template <>
__device__ __forceinline__ void axpy_vec<double>(double2 &o, double a, const double2 &x, const double2 &y) {
    o.x = fma(a, x.x, y.x); o.y = fma(a, x.y, y.y);
}

#define UNROLL 4
#define THREADS 256

/* One span of n elements, processed by the blocks [b0, b0 + nb). Vector
 * path when all three pointers are 16-byte aligned. */
template <typename T>
__device__ __forceinline__ void saxpy_span(int64_t n, T a, const T *__restrict__ x,
                                           const T *__restrict__ y, T *__restrict__ out,
                                           int64_t block, int64_t nblocks) {
    typedef typename vec16<T>::t V;
    const int W = vec16<T>::n;
    bool aligned = ((((uintptr_t)x) | ((uintptr_t)y) | ((uintptr_t)out)) & 15) == 0;
    int64_t nv = aligned ? n / W : 0;
    const V *xv = (const V *)x;
    const V *yv = (const V *)y;
    V *ov = (V *)out;
    const int64_t tile = (int64_t)THREADS * UNROLL;
    for (int64_t base = block * tile; base < nv; base += nblocks * tile) {
        V xr[UNROLL], yr[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            int64_t i = base + u * THREADS + threadIdx.x;
            if (i < nv) { xr[u] = __ldcs(xv + i); yr[u] = __ldcs(yv + i); }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++) {
            int64_t i = base + u * THREADS + threadIdx.x;
            if (i < nv) { V o; axpy_vec<T>(o, a, xr[u], yr[u]); __stcs(ov + i, o); }
        }
    }
    /* scalar tail (or the whole span when unaligned) */
    for (int64_t i = nv * W + block * THREADS + threadIdx.x; i < n; i += nblocks * THREADS)
        out[i] = a * x[i] + y[i];
}

template <typename T>
__global__ void __launch_bounds__(THREADS) saxpy_k(int64_t n, T a, const T *x, const T *y, T *out) {
    saxpy_span<T>(n, a, x, y, out, blockIdx.x, gridDim.x);
}

/* blockIdx.y selects the call. */
template <typename T>
__global__ void __launch_bounds__(THREADS) saxpy_batch_k(const gxk_saxpy_desc *desc) {
    const gxk_saxpy_desc d = desc[blockIdx.y];
    saxpy_span<T>(d.n, (T)d.a, (const T *)d.x, (const T *)d.y, (T *)d.out, blockIdx.x, gridDim.x);
}

extern "C" int gxk_saxpy(cudaStream_t s, gx_dtype dt, int64_t n, double a, const void *x,
                         const void *y, void *out) {
    if (n <= 0) return 0;
    GXK_FLOAT_DISPATCH(dt, {
        unsigned g = gxk_blocks(n, (int64_t)THREADS * UNROLL * (16 / sizeof(T)));
        saxpy_k<T><<<g, THREADS, 0, s>>>(n, (T)a, (const T *)x, (const T *)y, (T *)out);
    });
    return (int)cudaGetLastError();
}

extern "C" int gxk_saxpy_batch(cudaStream_t s, gx_dtype dt, const gxk_saxpy_desc *desc, int n,
                               int64_t maxn) {
    if (n <= 0) return 0;
    GXK_FLOAT_DISPATCH(dt, {
        unsigned gx = gxk_blocks(maxn, (int64_t)THREADS * UNROLL * (16 / sizeof(T)), 1024);
        dim3 grid(gx, (unsigned)n);
        saxpy_batch_k<T><<<grid, THREADS, 0, s>>>(desc);
    });
    return (int)cudaGetLastError();
}
