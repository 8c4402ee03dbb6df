/*
 * probe_gpu.cu - the device code of the test-only kernel "test_probe"
 * (tests/gpu/probe_gpu.c has the call; tests/gpu/test_isolation_gpu.c the
 * test): fill a buffer with a pattern word, count the nonzero bytes and
 * pattern words a buffer holds, report where the call ran. Built only into
 * libgexec_cuda_probe.so, never into the backend gexecd loads.
 */
#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#define PROBE_PATTERN 0xA5C3E1F0u
#define THREADS 256

__global__ void probe_fill_k(uint32_t *p, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = PROBE_PATTERN;
}

/* counts[0] += nonzero bytes, counts[1] += pattern words */
__global__ void probe_count_k(const uint32_t *p, size_t n, unsigned long long *counts) {
    unsigned long long nz = 0, pat = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t w = p[i];
        nz += (w & 0xffu) != 0;
        nz += (w & 0xff00u) != 0;
        nz += (w & 0xff0000u) != 0;
        nz += (w & 0xff000000u) != 0;
        pat += w == PROBE_PATTERN;
    }
    if (nz) atomicAdd(&counts[0], nz);
    if (pat) atomicAdd(&counts[1], pat);
}

__global__ void probe_where_k(long long *out, int slot, int ordinal) {
    out[0] = slot;
    out[1] = ordinal;
}

static unsigned grid_for(size_t words) {
    size_t g = (words + THREADS - 1) / THREADS;
    return (unsigned)(g < 1 ? 1 : g > 4096 ? 4096 : g);
}

extern "C" int gx_probe_fill(cudaStream_t s, void *p, size_t words) {
    if (words) probe_fill_k<<<grid_for(words), THREADS, 0, s>>>((uint32_t *)p, words);
    return (int)cudaGetLastError();
}

extern "C" int gx_probe_count(cudaStream_t s, const void *p, size_t words, void *counts) {
    if (words) probe_count_k<<<grid_for(words), THREADS, 0, s>>>((const uint32_t *)p, words, (unsigned long long *)counts);
    return (int)cudaGetLastError();
}

extern "C" int gx_probe_where(cudaStream_t s, void *out, int slot, int ordinal) {
    probe_where_k<<<1, 1, 0, s>>>((long long *)out, slot, ordinal);
    return (int)cudaGetLastError();
}
