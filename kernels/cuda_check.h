#pragma once
// Every CUDA runtime and cuBLAS call, and every kernel launch, goes through one of these macros:
// a failure throws qb::Error "file:line: <call>: <cudaGetErrorString>" instead of being ignored.
// Plain C++ header (usable from .cpp and .cu files).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace qb::kernels {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line);

}  // namespace qb::kernels

#define QB_CUDA_CHECK(call)                                                                      \
  do {                                                                                           \
    const cudaError_t qb_cuda_status_ = (call);                                                  \
    if (qb_cuda_status_ != cudaSuccess)                                                          \
      ::qb::kernels::throw_cuda_error(qb_cuda_status_, #call, __FILE__, __LINE__);               \
  } while (0)

#define QB_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                           \
    const cublasStatus_t qb_cublas_status_ = (call);                                             \
    if (qb_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                              \
      ::qb::kernels::throw_cublas_error(qb_cublas_status_, #call, __FILE__, __LINE__);           \
  } while (0)

// After a <<<...>>> launch: catches bad configurations (too much shared memory, grid too large)
// at the launch site. Asynchronous faults surface at the next checked synchronising call.
#define QB_CUDA_CHECK_LAUNCH() QB_CUDA_CHECK(cudaGetLastError())
