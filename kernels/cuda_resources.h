#pragma once
// Owners of CUDA resources, one of each kind for the whole project (kernels/, src/gpu, bench/,
// tests). Destructors ignore errors: nothing is left to do about them, and a sticky error
// resurfaces at the next checked call.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>

#include "kernels/cuda_check.h"

namespace qb::kernels {

// Memory owned by one object, of a Kind that says how it is allocated and freed; movable, not
// copyable.
template <class Kind>
class CudaMemory {
 public:
  CudaMemory() = default;
  explicit CudaMemory(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) QB_CUDA_CHECK(Kind::allocate(&ptr_, bytes));
  }
  ~CudaMemory() {
    if (ptr_) Kind::release(ptr_);
  }
  CudaMemory(CudaMemory&& other) noexcept { *this = std::move(other); }
  CudaMemory& operator=(CudaMemory&& other) noexcept {
    std::swap(ptr_, other.ptr_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  CudaMemory(const CudaMemory&) = delete;
  CudaMemory& operator=(const CudaMemory&) = delete;

  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct DeviceMemory {
  static cudaError_t allocate(void** ptr, size_t bytes) { return cudaMalloc(ptr, bytes); }
  static cudaError_t release(void* ptr) { return cudaFree(ptr); }
};
// Page-locked host memory: copies from it to the device run asynchronously, at full link speed.
struct PinnedHostMemory {
  static cudaError_t allocate(void** ptr, size_t bytes) { return cudaHostAlloc(ptr, bytes, cudaHostAllocDefault); }
  static cudaError_t release(void* ptr) { return cudaFreeHost(ptr); }
};

using DeviceBuffer = CudaMemory<DeviceMemory>;
using PinnedHostBuffer = CudaMemory<PinnedHostMemory>;

class CudaStream {
 public:
  explicit CudaStream(unsigned flags = cudaStreamDefault) {
    QB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, flags));
  }
  ~CudaStream() { cudaStreamDestroy(stream_); }
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

class CudaEvent {
 public:
  CudaEvent() { QB_CUDA_CHECK(cudaEventCreate(&event_)); }
  ~CudaEvent() { cudaEventDestroy(event_); }
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

}  // namespace qb::kernels
