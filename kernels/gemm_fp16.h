#pragma once
// The FP16 reference GEMM: cuBLAS, FP16 in, FP32 accumulate, FP16 out. Plain C++ header.
//
//   y[m, n] = x[m, k] · W^T    x row-major [m, k], W row-major [n, k] (PyTorch nn.Linear), y [m, n]
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace qb::kernels {

// Owns one cuBLAS handle configured for the reference: reductions stay in FP32 (split-K inside
// cuBLAS may not round partial sums to FP16), tensor cores allowed.
class CublasHandle {
 public:
  CublasHandle();
  ~CublasHandle();
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

// y = x · W^T on `stream` (device pointers; m, n, k >= 1).
void gemm_fp16(cublasHandle_t cublas, const __half* x /* [m, k] */, const __half* w /* [n, k] */,
               __half* y /* [m, n] */, int m, int n, int k, cudaStream_t stream);

}  // namespace qb::kernels
