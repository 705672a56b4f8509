#include "kernels/device_probe.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/cuda_resources.h"
#include "kernels/gemm_fp16.h"

namespace qb::kernels {
namespace {

std::string cuda_version_text(int version) {  // 13000 -> "13.0"
  return std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
}

// Device memory released on scope exit (the probe may throw between allocations).
// Median seconds of kProbeSamples runs of `work` (after one untimed warm-up run).
template <typename Work>
double median_seconds(cudaStream_t stream, Work&& work) {
  CudaEvent start, stop;
  work();
  std::vector<double> seconds;
  for (int i = 0; i < kProbeSamples; ++i) {
    QB_CUDA_CHECK(cudaEventRecord(start.get(), stream));
    work();
    QB_CUDA_CHECK(cudaEventRecord(stop.get(), stream));
    QB_CUDA_CHECK(cudaEventSynchronize(stop.get()));
    float ms = 0;
    QB_CUDA_CHECK(cudaEventElapsedTime(&ms, start.get(), stop.get()));
    seconds.push_back(ms * 1e-3);
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace

std::string cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    cudaGetLastError();  // clear the error so later calls start clean
    return std::string("no CUDA device: cudaGetDeviceCount: ") + cudaGetErrorString(status);
  }
  if (count == 0) return "no CUDA device: cudaGetDeviceCount returned 0";
  return "";
}

DeviceProbe describe_device(int device) {
  DeviceProbe d;
  cudaDeviceProp prop{};
  QB_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  d.name = prop.name;
  d.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  d.sm_count = prop.multiProcessorCount;
  d.l2_bytes = prop.l2CacheSize;
  d.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  d.memory_bus_bits = prop.memoryBusWidth;
  int khz = 0;  // CUDA 13 dropped the clock fields from cudaDeviceProp; the attributes remain
  QB_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device));
  d.sm_clock_mhz = khz / 1000;
  QB_CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device));
  d.memory_clock_mhz = khz / 1000;
  int version = 0;
  QB_CUDA_CHECK(cudaDriverGetVersion(&version));
  d.driver_version = cuda_version_text(version);
  QB_CUDA_CHECK(cudaRuntimeGetVersion(&version));
  d.runtime_version = cuda_version_text(version);
  return d;
}

DeviceProbe probe_device(int device) {
  DeviceProbe d = describe_device(device);
  QB_CUDA_CHECK(cudaSetDevice(device));
  const CudaStream owned_stream;
  const cudaStream_t stream = owned_stream.get();
  // Copy bandwidth: 1 GiB each way (or 1/8 of memory on small cards), far beyond any L2.
  const size_t copy_bytes = std::min<size_t>(size_t(1) << 30, static_cast<size_t>(d.memory_bytes) / 8);
  {
    DeviceBuffer src(copy_bytes), dst(copy_bytes);
    QB_CUDA_CHECK(cudaMemsetAsync(src.as<void>(), 0, copy_bytes, stream));
    const double s = median_seconds(stream, [&] {
      QB_CUDA_CHECK(cudaMemcpyAsync(dst.as<void>(), src.as<void>(), copy_bytes, cudaMemcpyDeviceToDevice, stream));
    });
    d.peak_bandwidth_gbps = 2.0 * copy_bytes / s / 1e9;  // read + write
  }
  // Tensor throughput: cuBLAS FP16 GEMM on non-zero data (all-zero inputs draw less power and
  // can boost clocks above what real data gets): every half 0x3C3C = 1.0586, so y = 8192 * 1.12
  // = 9180, well inside fp16.
  {
    const size_t elems = static_cast<size_t>(kProbeGemmSize) * kProbeGemmSize;
    DeviceBuffer x(elems * sizeof(__half)), w(elems * sizeof(__half)), y(elems * sizeof(__half));
    QB_CUDA_CHECK(cudaMemsetAsync(x.as<void>(), 0x3C, elems * sizeof(__half), stream));
    QB_CUDA_CHECK(cudaMemsetAsync(w.as<void>(), 0x3C, elems * sizeof(__half), stream));
    CublasHandle cublas;
    const int s_ = kProbeGemmSize;
    const double s = median_seconds(stream, [&] {
      gemm_fp16(cublas.get(), x.as<const __half>(), w.as<const __half>(),
                y.as<__half>(), s_, s_, s_, stream);
    });
    d.peak_fp16_tflops = 2.0 * s_ * s_ * static_cast<double>(s_) / s / 1e12;
  }
  return d;
}

nlohmann::json device_json(const DeviceProbe& d) {
  return {{"name", d.name},
          {"compute_capability", d.compute_capability},
          {"sm_count", d.sm_count},
          {"l2_bytes", d.l2_bytes},
          {"memory_bytes", d.memory_bytes},
          {"sm_clock_mhz", d.sm_clock_mhz},
          {"memory_clock_mhz", d.memory_clock_mhz},
          {"memory_bus_bits", d.memory_bus_bits},
          {"driver_version", d.driver_version},
          {"runtime_version", d.runtime_version},
          {"peak_bandwidth_gbps", d.peak_bandwidth_gbps},
          {"peak_fp16_tflops", d.peak_fp16_tflops}};
}

}  // namespace qb::kernels
