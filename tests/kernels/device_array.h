#pragma once
// Device memory for the kernel tests: RAII, checked copies, NaN poisoning.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "kernels/cuda_check.h"

namespace qb::test {

template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count) : count_(count) { QB_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr_), bytes())); }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() const { return ptr_; }
  size_t bytes() const { return count_ * sizeof(T); }
  void upload(const std::vector<T>& host) {
    QB_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    QB_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  // All bits set: every fp16 / fp32 element becomes NaN, so an element a kernel forgets to write
  // is caught.
  void poison() { QB_CUDA_CHECK(cudaMemset(ptr_, 0xff, bytes())); }
  void zero() { QB_CUDA_CHECK(cudaMemset(ptr_, 0, bytes())); }

 private:
  T* ptr_ = nullptr;
  size_t count_;
};

}  // namespace qb::test
