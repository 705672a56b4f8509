#pragma once
// What a benchmark needs to know about the GPU: identity, sizes, clocks, and the two measured
// roofline peaks every result is reported against, and its JSON form (the run document's "device").
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace qb::kernels {

struct DeviceProbe {
  std::string name;                // "NVIDIA H100 80GB HBM3"
  std::string compute_capability;  // "9.0"
  int sm_count = 0;
  int64_t l2_bytes = 0;
  int64_t memory_bytes = 0;
  int sm_clock_mhz = 0;            // peak SM clock the driver reports
  int memory_clock_mhz = 0;
  int memory_bus_bits = 0;
  std::string driver_version;      // "13.0": the CUDA version the driver supports
  std::string runtime_version;     // "13.0": the CUDA runtime linked in
  // Measured, median of kProbeSamples runs timed with CUDA events:
  double peak_bandwidth_gbps = 0;  // device-to-device copy of a buffer >> L2: (bytes read + written) / time
  double peak_fp16_tflops = 0;     // cuBLAS FP16 GEMM (FP32 accumulate), m = n = k = kProbeGemmSize
};

constexpr int kProbeSamples = 10;
constexpr int kProbeGemmSize = 8192;  // large enough to reach cuBLAS's steady-state tile efficiency

// "" when a CUDA device is usable, else "no CUDA device: <why>" (the tests' skip reason and the
// CLI's error message).
std::string cuda_unavailable_reason();

// Identity and sizes only (fast).
DeviceProbe describe_device(int device);
// describe_device plus the two measured peaks (a few seconds; allocates ~2 GiB).
DeviceProbe probe_device(int device);

// The run document's "device" object (reports/run.schema.json).
nlohmann::json device_json(const DeviceProbe& probe);

}  // namespace qb::kernels
