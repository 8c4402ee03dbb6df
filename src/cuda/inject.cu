/*
 * inject.cu - device kernels for fault injection (gexec_fault.h): a write
 * to an illegal address (a real sticky fault, cudaErrorIllegalAddress, so
 * the recovery path runs cudaDeviceReset for real) and a kernel that spins
 * until a host-mapped flag is set (a hang that ends only when the host says
 * so: on cancel, or when the engine resets the device).
 */
#include <cuda_runtime.h>
#include <stdint.h>

__global__ void illegal_k(int *p) {
    if (threadIdx.x == 0) *(volatile int *)p = 1;
}

/* Launch a kernel that writes to an unmapped address. */
extern "C" int gxk_fault_illegal(cudaStream_t s) {
    illegal_k<<<1, 32, 0, s>>>((int *)(uintptr_t)0x10);
    return (int)cudaGetLastError();
}

__global__ void hang_k(const volatile int *flag) {
    if (threadIdx.x != 0) return;
    while (*flag == 0) __nanosleep(2000);
}

/* Launch a kernel that returns once *flag (host-mapped) is non-zero. */
extern "C" int gxk_hang(cudaStream_t s, const volatile int *flag) {
    hang_k<<<1, 32, 0, s>>>(flag);
    return (int)cudaGetLastError();
}
