#include "kernels/gemm_fp16.h"

#include <string>

#include "common/error.h"
#include "kernels/cuda_check.h"

namespace qb::kernels {

CublasHandle::CublasHandle() {
  QB_CUBLAS_CHECK(cublasCreate(&handle_));
  QB_CUBLAS_CHECK(cublasSetMathMode(handle_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                                       CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
}

CublasHandle::~CublasHandle() { cublasDestroy(handle_); }

void gemm_fp16(cublasHandle_t cublas, const __half* x, const __half* w, __half* y, int m, int n, int k,
               cudaStream_t stream) {
  if (m < 1 || n < 1 || k < 1)
    fail("gemm_fp16", "m, n, k must be >= 1, got m=" + std::to_string(m) + " n=" + std::to_string(n) +
                          " k=" + std::to_string(k));
  // cuBLAS is column-major: row-major y [m, n] is column-major y^T [n, m] = W [n, k] · x^T [k, m],
  // where row-major W [n, k] read column-major is W^T [k, n] (hence OP_T, ld k) and row-major
  // x [m, k] is column-major x^T [k, m] (OP_N, ld k). "TN" is cuBLAS's preferred layout.
  const float alpha = 1.0f, beta = 0.0f;
  QB_CUBLAS_CHECK(cublasSetStream(cublas, stream));
  QB_CUBLAS_CHECK(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F, k,
                               &beta, y, CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace qb::kernels
