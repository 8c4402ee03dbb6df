/*
 * sort.c - stable sort of keys, carrying optional values along.
 *
 * Keys are mapped to unsigned integers whose order is the wanted order
 * (sign bit flipped for integers; the IEEE trick for floats, with -0.0 made
 * equal to +0.0 and every NaN mapped to the largest value so that NaNs come
 * last in both directions; bits inverted for descending), then an LSD radix
 * sort over 8-bit digits orders (key, position) pairs. Radix sorting is
 * stable, so equal keys keep their input order in both directions. Digits
 * that are the same in every key are skipped, so 32-bit keys and keys of a
 * small range take few passes. The outputs are gathered from the inputs by
 * the final positions, so keys keep their exact bits (-0.0, NaN payloads).
 *
 * Output `values` exists only when input `values` was given; otherwise
 * out[1] is left NULL (the job then has no `values` result).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels_int.h"

enum { ARG_DESCENDING };
enum { IN_KEYS, IN_VALUES };
enum { OUT_KEYS, OUT_VALUES };

/* Order-preserving unsigned image of key i. */
static uint64_t key_bits(const gx_array *k, int64_t i, int desc) {
    switch (k->dtype) {
    case GX_F32: {
        float f = ((const float *)k->data)[i];
        if (f != f) return UINT32_MAX; /* NaN: last either way */
        if (f == 0) f = 0;             /* -0.0 sorts as +0.0 */
        uint32_t u;
        memcpy(&u, &f, 4);
        u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
        return desc ? (uint32_t)~u : u; /* never UINT32_MAX: that image is a NaN */
    }
    case GX_F64: {
        double f = ((const double *)k->data)[i];
        if (f != f) return UINT64_MAX;
        if (f == 0) f = 0;
        uint64_t u;
        memcpy(&u, &f, 8);
        u = (u >> 63) ? ~u : u | (UINT64_C(1) << 63);
        return desc ? ~u : u;
    }
    case GX_I32: {
        uint32_t u = (uint32_t)((const int32_t *)k->data)[i] ^ 0x80000000u;
        return desc ? (uint32_t)~u : u;
    }
    default: {
        uint64_t u = (uint64_t)((const int64_t *)k->data)[i] ^ (UINT64_C(1) << 63);
        return desc ? ~u : u;
    }
    }
}

static void gather(const gx_array *src, gx_array *dst, const int64_t *pos, int64_t n) {
    size_t es = gx_dtype_size(src->dtype);
    const char *s = src->data;
    char *d = dst->data;
    switch (es) {
    case 1: for (int64_t i = 0; i < n; i++) d[i] = s[pos[i]]; break;
    case 2: for (int64_t i = 0; i < n; i++) ((uint16_t *)d)[i] = ((const uint16_t *)s)[pos[i]]; break;
    case 4: for (int64_t i = 0; i < n; i++) ((uint32_t *)d)[i] = ((const uint32_t *)s)[pos[i]]; break;
    default: for (int64_t i = 0; i < n; i++) ((uint64_t *)d)[i] = ((const uint64_t *)s)[pos[i]]; break;
    }
}

static int sort_validate(const gx_kcall *c) {
    const gx_array *k = c->in[IN_KEYS], *v = c->in[IN_VALUES];
    if (v && v->shape[0] != k->shape[0])
        return gx_error_set(c->err, GX_EINVAL, "inputs.values.shape[0]",
                            "values has %lld elements but keys has %lld", (long long)v->shape[0],
                            (long long)k->shape[0]);
    return 0;
}

/* Sorts positions 0..n-1 by key into *out_pos (malloc'd, caller frees). */
static int radix_order(gx_kcall *c, const gx_array *keys, int desc, int64_t **out_pos) {
    int64_t n = keys->count;
    size_t nb = (size_t)(n > 0 ? n : 1);
    uint64_t *k0 = malloc(nb * 8), *k1 = malloc(nb * 8);
    int64_t *p0 = malloc(nb * 8), *p1 = malloc(nb * 8);
    int64_t(*cnt)[256] = calloc(8, sizeof *cnt);
    int rc = 0;
    if (!k0 || !k1 || !p0 || !p1 || !cnt) {
        rc = gx_error_set(c->err, GX_ENOMEM, NULL, "out of memory sorting %lld keys", (long long)n);
        goto done;
    }
    int ndig = gx_dtype_size(keys->dtype) == 4 ? 4 : 8;
    for (int64_t i0 = 0; i0 < n; i0 += GX_KCHUNK) {
        if (gx_kcall_cancelled(c)) {
            rc = gx__kcancel(c);
            goto done;
        }
        int64_t i1 = i0 + GX_KCHUNK < n ? i0 + GX_KCHUNK : n;
        for (int64_t i = i0; i < i1; i++) {
            uint64_t u = key_bits(keys, i, desc);
            k0[i] = u;
            p0[i] = i;
            for (int d = 0; d < ndig; d++) cnt[d][(u >> (8 * d)) & 0xff]++;
        }
    }
    for (int d = 0; d < ndig && n > 0; d++) {
        int shift = 8 * d;
        if (cnt[d][(k0[0] >> shift) & 0xff] == n) continue; /* one bucket: nothing moves */
        int64_t off[256], sum = 0;
        for (int b = 0; b < 256; b++) {
            off[b] = sum;
            sum += cnt[d][b];
        }
        for (int64_t i0 = 0; i0 < n; i0 += GX_KCHUNK) {
            if (gx_kcall_cancelled(c)) {
                rc = gx__kcancel(c);
                goto done;
            }
            int64_t i1 = i0 + GX_KCHUNK < n ? i0 + GX_KCHUNK : n;
            for (int64_t i = i0; i < i1; i++) {
                int64_t o = off[(k0[i] >> shift) & 0xff]++;
                k1[o] = k0[i];
                p1[o] = p0[i];
            }
        }
        uint64_t *tk = k0;
        k0 = k1;
        k1 = tk;
        int64_t *tp = p0;
        p0 = p1;
        p1 = tp;
    }
    *out_pos = p0;
    p0 = NULL;
done:
    free(k0);
    free(k1);
    free(p0);
    free(p1);
    free(cnt);
    return rc;
}

static int sort_run(gx_kcall *c) {
    const gx_array *keys = c->in[IN_KEYS], *vals = c->in[IN_VALUES];
    int64_t *pos = NULL;
    int rc = radix_order(c, keys, c->args[ARG_DESCENDING] != 0, &pos);
    if (rc) return rc;
    rc = gx__kout(c, OUT_KEYS, keys->dtype, 1, keys->shape);
    if (!rc && vals) rc = gx__kout(c, OUT_VALUES, vals->dtype, 1, vals->shape);
    if (!rc) {
        gather(keys, c->out[OUT_KEYS], pos, keys->count);
        if (vals) gather(vals, c->out[OUT_VALUES], pos, vals->count);
    }
    free(pos);
    return rc;
}

/* inputs, outputs of the same size, and 32 bytes a key of scratch */
static uint64_t sort_mem(const gx_kcall *c) {
    const gx_array *k = c->in[IN_KEYS];
    return 2 * gx__kin_bytes(c) + (k ? (uint64_t)k->count * 32 : 0) + 16384;
}

static double sort_cost(const gx_kcall *c) {
    const gx_array *k = c->in[IN_KEYS];
    return k ? 1.0 + (double)k->count * (gx_dtype_size(k->dtype) == 4 ? 0.01 : 0.02) : -1;
}

static const gx_arg_spec sort_args[] = {
    [ARG_DESCENDING] = {.name = "descending", .type = GX_ARG_BOOL, .def = 0,
                        .doc = "largest first (NaNs still last; equal keys keep their order)"},
};

static const gx_io_spec sort_in[] = {
    [IN_KEYS] = {.name = "keys", .dtypes = GX_DTM_NUM, .rank = 1, .shape = "[n]",
                 .doc = "sort keys (f32, f64, i32, i64)"},
    [IN_VALUES] = {.name = "values", .dtypes = GX_DTM_ANY, .rank = 1, .flags = GX_IO_OPTIONAL,
                   .shape = "[n]", .doc = "payload permuted with the keys (any dtype)"},
};

static const gx_io_spec sort_out[] = {
    [OUT_KEYS] = {.name = "keys", .dtypes = GX_DTM_NUM, .rank = 1, .shape = "[n]",
                  .doc = "keys in order"},
    [OUT_VALUES] = {.name = "values", .dtypes = GX_DTM_ANY, .rank = 1, .flags = GX_IO_OPTIONAL,
                    .shape = "[n]", .doc = "values in key order; only when values were given"},
};

const gx_kernel gx__k_sort = {
    GX_KERNEL_HEADER,
    .name = "sort",
    .version = 1,
    .summary = "stable sort of keys (NaNs last), optionally permuting values alongside",
    .args = sort_args,
    .nargs = 1,
    .inputs = sort_in,
    .ninputs = 2,
    .outputs = sort_out,
    .noutputs = 2,
    .validate = sort_validate,
    .mem_bytes = sort_mem,
    .cost_us = sort_cost,
    .run = {[GX_DEV_CPU] = sort_run},
};
