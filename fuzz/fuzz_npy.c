/*
 * fuzz_npy.c - libFuzzer target for the .npy reader (src/core/npy.c).
 *
 * Any input must either parse or fail with a filled gx_error whose pos lies
 * inside the input; anything that parses must survive a write and re-read
 * unchanged, with the data starting on a 64-byte boundary. Sanitizers catch
 * the rest. Build and run (not wired into CMake):
 *
 *   scripts/fuzz [SECONDS]   (builds every target; runs on scratch corpus copies)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gexec/gexec_array.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gx_array *a = NULL;
    gx_error err;
    gx_error_clear(&err);
    int rc = gx_npy_read_mem(data, size, &a, &err);
    if (rc) {
        if (err.code != rc || !err.message[0] || err.pos < -1 || err.pos > (long)size)
            __builtin_trap();
        if (a) __builtin_trap(); /* *out must be left alone on failure */
        return 0;
    }
    void *buf = NULL;
    size_t len = 0;
    if (gx_npy_write_mem(a, &buf, &len, &err)) __builtin_trap();
    if (len < a->nbytes || (len - a->nbytes) % 64) __builtin_trap();
    gx_array *b = NULL;
    if (gx_npy_read_mem(buf, len, &b, &err)) __builtin_trap();
    if (b->dtype != a->dtype || b->ndim != a->ndim || b->count != a->count ||
        b->nbytes != a->nbytes || memcmp(b->shape, a->shape, sizeof a->shape[0] * (size_t)a->ndim) ||
        (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
        __builtin_trap();
    free(buf);
    gx_array_unref(a);
    gx_array_unref(b);
    return 0;
}
