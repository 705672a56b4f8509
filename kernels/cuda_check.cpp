#include "kernels/cuda_check.h"

#include <string>

#include "common/error.h"

namespace qb::kernels {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  fail(std::string(file) + ":" + std::to_string(line),
       std::string(call) + ": " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  fail(std::string(file) + ":" + std::to_string(line),
       std::string(call) + ": " + cublasGetStatusName(status) + ": " + cublasGetStatusString(status));
}

}  // namespace qb::kernels
