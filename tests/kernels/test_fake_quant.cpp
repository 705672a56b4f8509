// The fused quantize-dequantize kernel (kernels/fake_quant.h) against the CPU's RTN
// (quant/rtn.h fake_quantize), which is itself checked against llm-awq's formula in
// tests/quant. Random odd shapes (last group shorter, per-channel groups), 2..8 bits, symmetric
// and asymmetric, with and without AWQ input scales and clip thresholds; outputs poisoned with NaN
// before each launch, every element compared.
// Tolerance: bit-exact. w_hat = (q - zero) * scale with scale fixed per group, so equal outputs
// mean equal codes. The one stated difference: a NaN weight that is not its group's first value
// slips past the CPU's min/max (std::min keeps the old value) and gives a NaN w_hat, where the
// kernel flags the row; both refuse Inf and FP16-overflowing groups (checked separately).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "device_array.h"
#include "kernels/device_probe.h"
#include "kernels/fake_quant.h"
#include "quant/rtn.h"

std::string qb_test_skip_reason() { return qb::kernels::cuda_unavailable_reason(); }

namespace {

using namespace qb;
using test::DeviceArray;

struct Case {
  int n, k, bits, group_size;  // group_size -1: per channel
  bool symmetric;
};
const Case kCases[] = {{37, 301, 4, 64, false},  {37, 301, 4, 64, true},   {19, 255, 3, 128, false},
                       {8, 1000, 2, 32, false},  {5, 129, 8, 128, true},   {23, 173, 4, -1, false},
                       {64, 4096, 4, 128, false}, {11, 77, 5, 16, true}};

std::vector<float> random_values(size_t count, std::mt19937& rng, float spread) {
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng);
  return v;
}

// Bit-for-bit equality, reporting the first mismatch.
void require_same_bits(const std::vector<float>& gpu, const std::vector<float>& cpu, int k) {
  REQUIRE(gpu.size() == cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i)
    if (std::memcmp(&gpu[i], &cpu[i], sizeof(float)) != 0) {
      INFO("row " << i / k << " column " << i % k << ": gpu " << gpu[i] << " cpu " << cpu[i]);
      REQUIRE(false);
    }
}

}  // namespace

TEST_CASE("fused fake quantization equals the CPU's bit for bit") {
  std::mt19937 rng(20261202);
  for (const Case& c : kCases) {
    QuantSpec spec;
    spec.bits = c.bits;
    spec.group_size = c.group_size;
    spec.symmetric = c.symmetric;
    const int group = spec.group_for(c.k), n_groups = (c.k + group - 1) / group;
    INFO("n " << c.n << " k " << c.k << " bits " << c.bits << " group " << c.group_size << " symmetric "
              << c.symmetric);
    std::vector<float> w = random_values(static_cast<size_t>(c.n) * c.k, rng, 0.05f);
    for (int i = 0; i < c.k; ++i) w[i] = 0.25f;  // row 0 constant: the 1e-5 range floor
    // AWQ-like scales around 1 (s = x_mean^alpha normalised) and clip thresholds at 60..100% of max|w|.
    std::vector<float> s(c.k);
    std::uniform_real_distribution<float> scale_dist(0.3f, 3.0f), ratio_dist(0.6f, 1.0f);
    for (float& v : s) v = scale_dist(rng);
    std::vector<float> clip(static_cast<size_t>(c.n) * n_groups);
    for (int o = 0; o < c.n; ++o)
      for (int g = 0; g < n_groups; ++g) {
        float max_abs = 0.0f;
        for (int i = g * group; i < std::min(c.k, (g + 1) * group); ++i)
          max_abs = std::max(max_abs, std::fabs(w[static_cast<size_t>(o) * c.k + i]));
        clip[static_cast<size_t>(o) * n_groups + g] = max_abs * ratio_dist(rng);
      }
    const kernels::FakeQuantShape shape{c.n, c.k, c.bits, group, c.symmetric};
    DeviceArray<float> w_dev(w), s_dev(s), clip_dev(clip), out_dev(w.size());
    DeviceArray<int> bad(std::vector<int>{c.n});

    for (bool scaled : {false, true})
      for (bool clipped : {false, true})
        for (auto output : {kernels::FakeQuantOutput::Dequantized, kernels::FakeQuantOutput::Error}) {
          const bool error = output == kernels::FakeQuantOutput::Error;
          INFO("scaled " << scaled << " clipped " << clipped << " error output " << error);
          // CPU: as the AWQ search does it: W diag(s), fake_quantize, divide by s.
          std::vector<float> input = w, expected(w.size());
          if (scaled)
            for (size_t i = 0; i < input.size(); ++i) input[i] *= s[i % c.k];
          fake_quantize(input.data(), c.n, c.k, spec, expected.data(), clipped ? clip.data() : nullptr);
          for (size_t i = 0; i < expected.size(); ++i) {
            if (scaled) expected[i] /= s[i % c.k];
            if (error) expected[i] -= w[i];
          }
          out_dev.poison();
          kernels::launch_fake_quantize(w_dev.get(), scaled ? s_dev.get() : nullptr, clipped ? clip_dev.get() : nullptr,
                                        shape, output, out_dev.get(), bad.get(), nullptr);
          QB_CUDA_CHECK(cudaDeviceSynchronize());
          REQUIRE(bad.download()[0] == c.n);
          require_same_bits(out_dev.download(), expected, c.k);
        }

    // The clip search's candidate thresholds: max|w| of each group times the ratio.
    const float ratio = 1.0f - 3.0f / 20;
    std::vector<float> thresholds_expected(clip.size());
    for (int o = 0; o < c.n; ++o)
      for (int g = 0; g < n_groups; ++g) {
        float max_abs = 0.0f;
        for (int i = g * group; i < std::min(c.k, (g + 1) * group); ++i)
          max_abs = std::max(max_abs, std::fabs(w[static_cast<size_t>(o) * c.k + i]));
        thresholds_expected[static_cast<size_t>(o) * n_groups + g] = max_abs * ratio;
      }
    DeviceArray<float> thresholds(clip.size());
    thresholds.poison();
    kernels::launch_group_clip_thresholds(w_dev.get(), shape, ratio, thresholds.get(), nullptr);
    QB_CUDA_CHECK(cudaDeviceSynchronize());
    require_same_bits(thresholds.download(), thresholds_expected, n_groups);
  }
}

TEST_CASE("fused fake quantization flags the first row with a non-finite group") {
  const int n = 9, k = 70;
  std::mt19937 rng(7);
  std::vector<float> w = random_values(static_cast<size_t>(n) * k, rng, 1.0f);
  w[6 * k + 3] = INFINITY;
  w[4 * k + 65] = NAN;
  w[8 * k] = 1e30f;  // a range beyond FP16: the scale overflows
  DeviceArray<float> w_dev(w), out(w.size());
  DeviceArray<int> bad(std::vector<int>{n});
  kernels::launch_fake_quantize(w_dev.get(), nullptr, nullptr, {n, k, 4, 32, false},
                                kernels::FakeQuantOutput::Dequantized, out.get(), bad.get(), nullptr);
  QB_CUDA_CHECK(cudaDeviceSynchronize());
  CHECK(bad.download()[0] == 4);
}
