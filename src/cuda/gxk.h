/*
 * gxk.h - the plain C launchers of the CUDA kernels (src/kernels/<name>.cu).
 *
 * Each launcher enqueues work on the given stream over device pointers and
 * returns a cudaError_t as int (0 = launched). Shared by the backend glue
 * (C) and the .cu files (C++), so it holds nothing C-only.
 */
#ifndef GX_GXK_H
#define GX_GXK_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "gexec/gexec_array.h"

#ifdef __cplusplus
extern "C" {
#endif

int gxk_saxpy(cudaStream_t s, gx_dtype dt, int64_t n, double a, const void *x, const void *y,
              void *out);
/* Batched saxpy: desc points to a device table of n gxk_saxpy_desc. */
typedef struct gxk_saxpy_desc {
    const void *x;
    const void *y;
    void *out;
    int64_t n;
    double a;
} gxk_saxpy_desc;
int gxk_saxpy_batch(cudaStream_t s, gx_dtype dt, const gxk_saxpy_desc *desc, int n,
                    int64_t maxn);

int gxk_reduce_sum(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, void *acc);
int gxk_reduce_finish(cudaStream_t s, gx_dtype dt, const void *acc, void *out);

/* Sort: n <= INT32_MAX. temp sized by gxk_sort_temp_bytes. perm gets the
 * stable permutation; keys_out the sorted keys. */
size_t gxk_sort_temp_bytes(gx_dtype dt, int64_t n);
int gxk_sort(cudaStream_t s, gx_dtype dt, int64_t n, int descending, const void *keys,
             void *keys_out, int32_t *perm, void *temp, size_t temp_bytes);
int gxk_gather(cudaStream_t s, size_t elem, int64_t n, const void *src, const int32_t *perm,
               void *dst);

int gxk_histogram(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, int64_t bins, double lo,
                  double hi, unsigned long long *counts);
int gxk_u64_to(cudaStream_t s, gx_dtype dt, int64_t n, const unsigned long long *src, void *dst);

typedef struct gxk_norm_desc {
    const void *x;
    void *y;
    double *stats; /* [2*cols]: mean, inv-std */
    int64_t rows, cols;
    double eps;
} gxk_norm_desc;
int gxk_normalize_batch(cudaStream_t s, gx_dtype dt, gxk_norm_desc *desc_dev, int n,
                        int64_t max_rows, int64_t max_cols);

size_t gxk_filter_temp_bytes(int64_t n);
int gxk_filter_flags(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, double lo, double hi,
                     int32_t *flags, int32_t *pos, void *temp, size_t temp_bytes);
int gxk_filter_scatter(cudaStream_t s, gx_dtype dt, int64_t n, const void *x, const int32_t *flags,
                       const int32_t *pos, void *y, int64_t *index);

/* act: 0 none, 1 relu, 2 tanh. softmax applied after act when set. */
int gxk_bias_act(cudaStream_t s, gx_dtype dt, int64_t rows, int64_t cols, void *y, const void *b,
                 int act, int softmax);

int gxk_to_f64(cudaStream_t s, gx_dtype dt, int64_t n, const void *src, double *dst);
int gxk_from_f64(cudaStream_t s, gx_dtype dt, int64_t n, const double *src, void *dst);
/* r = r - y; loss[0] += sum(r^2) / n */
int gxk_resid(cudaStream_t s, int64_t n, double *r, const double *y, double *loss);
/* w -= lr * g */
int gxk_axpy_f64(cudaStream_t s, int64_t n, double a, const double *x, double *y);

int gxk_spin(cudaStream_t s, const int64_t *ns_dev, int n, int64_t ns_host);
int gxk_fill_f32(cudaStream_t s, int64_t n, float *p, float base, float step);
int gxk_fill_rand_f32(cudaStream_t s, int64_t n, float *p, uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
