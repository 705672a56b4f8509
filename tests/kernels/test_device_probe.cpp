// The device probe (kernels/device_probe.h): identity fields filled in, measured peaks plausible
// (positive and below generous physical ceilings: 20 TB/s, 5 PFLOP/s dense FP16).
#include <catch2/catch.hpp>

#include "kernels/device_probe.h"

std::string qb_test_skip_reason() { return qb::kernels::cuda_unavailable_reason(); }

TEST_CASE("probe_device describes the GPU and measures its peaks") {
  const qb::kernels::DeviceProbe d = qb::kernels::probe_device(0);
  CHECK(!d.name.empty());
  CHECK(d.compute_capability.find('.') != std::string::npos);
  CHECK(d.sm_count > 0);
  CHECK(d.l2_bytes > 0);
  CHECK(d.memory_bytes > 0);
  CHECK(!d.driver_version.empty());
  CHECK(!d.runtime_version.empty());
  CHECK(d.peak_bandwidth_gbps > 10.0);
  CHECK(d.peak_bandwidth_gbps < 20000.0);
  CHECK(d.peak_fp16_tflops > 1.0);
  CHECK(d.peak_fp16_tflops < 5000.0);
}
