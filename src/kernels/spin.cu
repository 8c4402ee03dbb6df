/*
 * spin.cu - keeps the GPU busy for a given time: one block per call reads
 * the global nanosecond timer until its duration has passed. Also a small
 * fill kernel used by the self-test.
 */
#include "gxk_common.cuh"

__device__ __forceinline__ uint64_t gtimer(void) {
    uint64_t t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

__global__ void spin_k(const int64_t *ns_dev, int64_t ns_host) {
    int64_t ns = ns_dev ? ns_dev[blockIdx.x] : ns_host;
    if (threadIdx.x != 0 || ns <= 0) return;
    uint64_t start = gtimer();
    while ((int64_t)(gtimer() - start) < ns) __nanosleep(1000);
}

/* n blocks; block i spins ns_dev[i] ns, or ns_host each when ns_dev is NULL. */
extern "C" int gxk_spin(cudaStream_t s, const int64_t *ns_dev, int n, int64_t ns_host) {
    if (n <= 0) return 0;
    spin_k<<<(unsigned)n, 32, 0, s>>>(ns_dev, ns_host);
    return (int)cudaGetLastError();
}

__global__ void fill_k(int64_t n, float *p, float base, float step) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = base + step * (float)i;
}

extern "C" int gxk_fill_f32(cudaStream_t s, int64_t n, float *p, float base, float step) {
    if (n <= 0) return 0;
    fill_k<<<gxk_blocks(n, 256, 132 * 16), 256, 0, s>>>(n, p, base, step);
    return (int)cudaGetLastError();
}

__global__ void fill_rand_k(int64_t n, float *p, uint64_t seed) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + seed;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        p[i] = (float)((z >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; /* [-1, 1) */
    }
}

/* Pseudo-random floats in [-1, 1) (benchmarks never time zeros). */
extern "C" int gxk_fill_rand_f32(cudaStream_t s, int64_t n, float *p, uint64_t seed) {
    if (n <= 0) return 0;
    fill_rand_k<<<gxk_blocks(n, 256, 132 * 16), 256, 0, s>>>(n, p, seed);
    return (int)cudaGetLastError();
}
