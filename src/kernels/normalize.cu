/*
 * normalize.cu - per-column zero mean, unit variance: y = (x - mean) /
 * sqrt(var + eps) with the population variance, for one matrix or many
 * small ones in one launch (blockIdx.z picks the call).
 *
 * Two passes over x (sum, then sum of squared deviations, both in double)
 * as in normalize.c
 * keep f32 results accurate; blocks cover 32 columns x ROWS_PER_BLOCK rows
 * and add their partial sums to stats[] with one atomic per column.
 */
#include "gxk_common.cuh"

#define TX 32
#define TY 8
#define ROWS_PER_BLOCK 1024

template <typename T>
__global__ void __launch_bounds__(TX * TY) col_pass_k(const gxk_norm_desc *descs, int pass) {
    const gxk_norm_desc d = descs[blockIdx.z];
    int64_t col = (int64_t)blockIdx.x * TX + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * ROWS_PER_BLOCK;
    if (blockIdx.x * (int64_t)TX >= d.cols || r0 >= d.rows) return;
    const T *x = (const T *)d.x;
    double mean = (pass == 1 && col < d.cols) ? d.stats[col] : 0.0;
    double acc = 0;
    if (col < d.cols) {
        int64_t r1 = min(d.rows, r0 + ROWS_PER_BLOCK);
        for (int64_t r = r0 + threadIdx.y; r < r1; r += TY) {
            double v = (double)x[r * d.cols + col] - mean;
            acc += pass ? v * v : v;
        }
    }
    __shared__ double part[TY][TX + 1];
    part[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && col < d.cols) {
        double t = 0;
        for (int j = 0; j < TY; j++) t += part[j][threadIdx.x];
        atomicAdd(&d.stats[pass * d.cols + col], t);
    }
}

__global__ void stats_k(const gxk_norm_desc *descs, int pass) {
    const gxk_norm_desc d = descs[blockIdx.z];
    int64_t col = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= d.cols) return;
    if (pass == 0) d.stats[col] /= (double)d.rows;   /* mean */
    else { /* 1/std; a column with var + eps == 0 maps to 0, as normalize.c */
        double sd = sqrt(d.stats[d.cols + col] / (double)d.rows + d.eps);
        d.stats[d.cols + col] = sd > 0 ? 1.0 / sd : 0.0;
    }
}

template <typename T>
__global__ void __launch_bounds__(TX * TY) apply_k(const gxk_norm_desc *descs) {
    const gxk_norm_desc d = descs[blockIdx.z];
    int64_t col = (int64_t)blockIdx.x * TX + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * ROWS_PER_BLOCK;
    if (col >= d.cols || r0 >= d.rows) return;
    double mean = d.stats[col], inv = d.stats[d.cols + col];
    const T *x = (const T *)d.x;
    T *y = (T *)d.y;
    int64_t r1 = min(d.rows, r0 + ROWS_PER_BLOCK);
    for (int64_t r = r0 + threadIdx.y; r < r1; r += TY) {
        int64_t i = r * d.cols + col;
        y[i] = (T)(((double)x[i] - mean) * inv);
    }
}

/* stats of every call (2*cols doubles) must be zeroed by the caller. */
extern "C" int gxk_normalize_batch(cudaStream_t s, gx_dtype dt, gxk_norm_desc *desc, int n,
                                   int64_t max_rows, int64_t max_cols) {
    if (n <= 0 || max_rows <= 0 || max_cols <= 0) return 0;
    if (n > 65535) return (int)cudaErrorInvalidValue;
    dim3 grid((unsigned)((max_cols + TX - 1) / TX), (unsigned)((max_rows + ROWS_PER_BLOCK - 1) / ROWS_PER_BLOCK),
              (unsigned)n);
    if (grid.y > 65535) return (int)cudaErrorInvalidValue;
    dim3 sgrid((unsigned)((max_cols + 255) / 256), 1, (unsigned)n);
    dim3 blk(TX, TY);
    GXK_FLOAT_DISPATCH(dt, {
        col_pass_k<T><<<grid, blk, 0, s>>>(desc, 0);
        stats_k<<<sgrid, 256, 0, s>>>(desc, 0);
        col_pass_k<T><<<grid, blk, 0, s>>>(desc, 1);
        stats_k<<<sgrid, 256, 0, s>>>(desc, 1);
        apply_k<T><<<grid, blk, 0, s>>>(desc);
    });
    return (int)cudaGetLastError();
}
