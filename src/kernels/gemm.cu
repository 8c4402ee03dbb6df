/*
 * gemm.cu - row-major C = alpha * op(A) op(B) + beta * C through cuBLAS.
 *
 * cuBLAS is column-major, so the product is computed as C^T = op(B)^T op(A)^T
 * with the operands swapped: no copies, no transposes. The mode picks the
 * math for f32 data: exact f32, TF32 tensor cores, or bf16 tensor cores with
 * f32 accumulation (CUBLAS_COMPUTE_32F_FAST_16BF: cuBLAS rounds the f32
 * operands to bf16 on the fly).
 */
#include <cublas_v2.h>

#include "../cuda/gxk.h"

extern "C" int gx_cuda_gemm_dev(cublasHandle_t h, gx_dtype dt, int mode, int trans_a, int trans_b,
                                int64_t m, int64_t n, int64_t k, double alpha, const void *a,
                                const void *b, double beta, void *c) {
    if (m <= 0 || n <= 0) return 0;
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) return (int)CUBLAS_STATUS_INVALID_VALUE;
    cublasOperation_t opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    int lda = (int)(trans_a ? m : k), ldb = (int)(trans_b ? k : n);
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (dt == GX_F64)
        return (int)cublasGemmEx(h, opb, opa, (int)n, (int)m, (int)k, &alpha, b, CUDA_R_64F, ldb, a,
                                 CUDA_R_64F, lda, &beta, c, CUDA_R_64F, (int)n, CUBLAS_COMPUTE_64F,
                                 CUBLAS_GEMM_DEFAULT);
    if (dt != GX_F32) return (int)CUBLAS_STATUS_NOT_SUPPORTED;
    float fa = (float)alpha, fb = (float)beta;
    cublasComputeType_t ct = mode == 1 ? CUBLAS_COMPUTE_32F_FAST_TF32
                             : mode == 2 ? CUBLAS_COMPUTE_32F_FAST_16BF
                                         : CUBLAS_COMPUTE_32F;
    return (int)cublasGemmEx(h, opb, opa, (int)n, (int)m, (int)k, &fa, b, CUDA_R_32F, ldb, a,
                             CUDA_R_32F, lda, &fb, c, CUDA_R_32F, (int)n, ct, CUBLAS_GEMM_DEFAULT);
}
