/*
 * sort.cu - stable key sort (ascending or descending) that also yields the
 * permutation, so optional values of any dtype follow by a gather.
 *
 * Keys are first mapped to unsigned integers whose order is the key order
 * (sign flip for integers, the IEEE trick for floats; all bits inverted for
 * descending), then CUB's radix sort orders (bits, index) pairs. Only two CUB
 * instantiations (32- and 64-bit bits, int32 index) are compiled, which
 * keeps the build short. As in the CPU sort (sort.c): -0.0 sorts equal to
 * +0.0, and every NaN maps to the largest image so NaNs come last in both
 * directions.
 */
#include <cub/device/device_radix_sort.cuh>

#include "gxk_common.cuh"

#define THREADS 256

template <typename T> struct bits_of { typedef uint32_t t; };
template <> struct bits_of<double> { typedef uint64_t t; };
template <> struct bits_of<int64_t> { typedef uint64_t t; };

/* Order-preserving image; desc inverts it, NaN is the maximum either way. */
__device__ __forceinline__ uint32_t ord(float v, int desc) {
    if (v != v) return 0xffffffffu;
    if (v == 0.0f) v = 0.0f;
    uint32_t b = __float_as_uint(v);
    b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    return desc ? ~b : b;
}
__device__ __forceinline__ uint64_t ord(double v, int desc) {
    if (v != v) return ~0ull;
    if (v == 0.0) v = 0.0;
    uint64_t b = (uint64_t)__double_as_longlong(v);
    b = (b & 0x8000000000000000ull) ? ~b : (b | 0x8000000000000000ull);
    return desc ? ~b : b;
}
__device__ __forceinline__ uint32_t ord(int32_t v, int desc) {
    uint32_t b = (uint32_t)v ^ 0x80000000u;
    return desc ? ~b : b;
}
__device__ __forceinline__ uint64_t ord(int64_t v, int desc) {
    uint64_t b = (uint64_t)v ^ 0x8000000000000000ull;
    return desc ? ~b : b;
}

template <typename T>
__global__ void prep_k(int64_t n, const T *__restrict__ keys, typename bits_of<T>::t *bits,
                       int32_t *idx, int desc) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS) {
        bits[i] = ord(keys[i], desc);
        idx[i] = (int32_t)i;
    }
}

template <typename E>
__global__ void gather_k(int64_t n, const E *__restrict__ src, const int32_t *__restrict__ perm,
                         E *__restrict__ dst) {
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * THREADS)
        dst[i] = src[perm[i]];
}

/* Temp layout: bits[2][n] (aligned), idx[n] (second index buffer), CUB temp. */
static size_t align_up(size_t v) { return (v + 255) & ~(size_t)255; }

template <typename B> static size_t cub_bytes(int64_t n) {
    size_t t = 0;
    cub::DoubleBuffer<B> k(nullptr, nullptr);
    cub::DoubleBuffer<int32_t> v(nullptr, nullptr);
    cub::DeviceRadixSort::SortPairs(nullptr, t, k, v, (int)n);
    return t;
}

extern "C" size_t gxk_sort_temp_bytes(gx_dtype dt, int64_t n) {
    size_t kb = (dt == GX_F64 || dt == GX_I64) ? 8 : 4;
    size_t cb = kb == 8 ? cub_bytes<uint64_t>(n) : cub_bytes<uint32_t>(n);
    return 2 * align_up(kb * (size_t)n) + align_up(4 * (size_t)n) + align_up(cb);
}

template <typename T>
static int sort_t(cudaStream_t s, int64_t n, int desc, const T *keys, T *keys_out, int32_t *perm,
                  void *temp, size_t temp_bytes) {
    typedef typename bits_of<T>::t B;
    char *p = (char *)temp;
    B *b0 = (B *)p; p += align_up(sizeof(B) * n);
    B *b1 = (B *)p; p += align_up(sizeof(B) * n);
    int32_t *i1 = (int32_t *)p; p += align_up(4 * (size_t)n);
    size_t cb = temp_bytes - (size_t)(p - (char *)temp);
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    prep_k<T><<<g, THREADS, 0, s>>>(n, keys, b0, perm, desc);
    cub::DoubleBuffer<B> kb(b0, b1);
    cub::DoubleBuffer<int32_t> vb(perm, i1);
    cudaError_t rc = cub::DeviceRadixSort::SortPairs(p, cb, kb, vb, (int)n, 0, (int)(8 * sizeof(B)), s);
    if (rc) return (int)rc;
    if (vb.Current() != perm) cudaMemcpyAsync(perm, vb.Current(), 4 * (size_t)n, cudaMemcpyDeviceToDevice, s);
    gather_k<T><<<g, THREADS, 0, s>>>(n, keys, perm, keys_out);
    return (int)cudaGetLastError();
}

extern "C" int gxk_sort(cudaStream_t s, gx_dtype dt, int64_t n, int descending, const void *keys,
                        void *keys_out, int32_t *perm, void *temp, size_t temp_bytes) {
    if (n <= 0) return 0;
    if (n > INT32_MAX) return (int)cudaErrorInvalidValue;
    GXK_NUM_DISPATCH(dt, return sort_t<T>(s, n, descending, (const T *)keys, (T *)keys_out, perm,
                                          temp, temp_bytes));
    return 0;
}

extern "C" int gxk_gather(cudaStream_t s, size_t elem, int64_t n, const void *src,
                          const int32_t *perm, void *dst) {
    if (n <= 0) return 0;
    unsigned g = gxk_blocks(n, THREADS, 132 * 16);
    switch (elem) {
    case 1: gather_k<uint8_t><<<g, THREADS, 0, s>>>(n, (const uint8_t *)src, perm, (uint8_t *)dst); break;
    case 2: gather_k<uint16_t><<<g, THREADS, 0, s>>>(n, (const uint16_t *)src, perm, (uint16_t *)dst); break;
    case 4: gather_k<uint32_t><<<g, THREADS, 0, s>>>(n, (const uint32_t *)src, perm, (uint32_t *)dst); break;
    case 8: gather_k<uint64_t><<<g, THREADS, 0, s>>>(n, (const uint64_t *)src, perm, (uint64_t *)dst); break;
    default: return (int)cudaErrorInvalidValue;
    }
    return (int)cudaGetLastError();
}
