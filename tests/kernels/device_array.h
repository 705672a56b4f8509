#pragma once
// Device memory for the kernel tests: RAII, checked copies, NaN poisoning.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/cuda_resources.h"

namespace qb::test {

template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t count) : count_(count), buffer_(count * sizeof(T)) {}
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }

  T* get() const { return buffer_.as<T>(); }
  size_t bytes() const { return buffer_.bytes(); }
  void upload(const std::vector<T>& host) {
    QB_CUDA_CHECK(cudaMemcpy(get(), host.data(), bytes(), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host(count_);
    QB_CUDA_CHECK(cudaMemcpy(host.data(), get(), bytes(), cudaMemcpyDeviceToHost));
    return host;
  }
  // All bits set: every fp16 / fp32 element becomes NaN, so an element a kernel forgets to write
  // is caught.
  void poison() { QB_CUDA_CHECK(cudaMemset(get(), 0xff, bytes())); }
  void zero() { QB_CUDA_CHECK(cudaMemset(get(), 0, bytes())); }

 private:
  size_t count_;
  kernels::DeviceBuffer buffer_;
};

}  // namespace qb::test
