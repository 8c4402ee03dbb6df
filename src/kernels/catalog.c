/*
 * catalog.c - registers the built-in kernels (GX_KERNEL_LIST in
 * kernels_int.h) on first use of the registry.
 */
#include <pthread.h>

#include "exec/registry_int.h"
#include "kernels_int.h"

#define GX__DECL(n) extern const gx_kernel gx__k_##n;
GX_KERNEL_LIST(GX__DECL)
#undef GX__DECL

static void register_all(void) {
#define GX__REG(n) gx__kernel_register(&gx__k_##n, NULL);
    GX_KERNEL_LIST(GX__REG)
#undef GX__REG
}

void gx__catalog_init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_all);
}
