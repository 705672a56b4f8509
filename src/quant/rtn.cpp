#include "quant/rtn.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/error.h"
#include "common/half.h"

namespace qb {

void check_quant_spec(const QuantSpec& spec, const std::string& where) {
  if (spec.bits < 2 || spec.bits > 8)
    fail(where, "bits " + std::to_string(spec.bits) + " out of range (2..8)");
  if (spec.group_size == 0 || spec.group_size < -1)
    fail(where, "group size " + std::to_string(spec.group_size) + " invalid (a positive size, or -1 per channel)");
}

bool quantize_group(const float* w, int len, const QuantSpec& spec, float clip, uint8_t* codes, uint16_t* scale_bits,
                    uint8_t* zero, float* w_hat) {
  const int max_code = spec.max_code();
  auto clipped = [&](float v) { return clip > 0 ? std::clamp(v, -clip, clip) : v; };
  float lo = clipped(w[0]), hi = lo;
  for (int i = 1; i < len; ++i) {
    const float v = clipped(w[i]);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  float range;
  int z;
  if (spec.symmetric) {
    range = std::max(std::max(std::fabs(lo), std::fabs(hi)), 1e-5f) / static_cast<float>((1 << (spec.bits - 1)) - 1);
    z = 1 << (spec.bits - 1);
  } else {
    range = std::max(hi - lo, 1e-5f) / static_cast<float>(max_code);
    z = -1;
  }
  uint16_t h = float_to_half(range);
  float scale = half_to_float(h);
  if (!std::isfinite(range) || !std::isfinite(scale)) return false;
  if (scale == 0.0f) {  // below FP16's smallest subnormal: use it, so codes stay finite
    h = 1;
    scale = half_to_float(h);
  }
  if (z < 0) z = static_cast<int>(std::clamp(std::nearbyint(-lo / scale), 0.0f, static_cast<float>(max_code)));
  for (int i = 0; i < len; ++i) {
    const float q = grid_code(clipped(w[i]), scale, z, max_code);
    if (codes) codes[i] = static_cast<uint8_t>(q);
    if (w_hat) w_hat[i] = (q - static_cast<float>(z)) * scale;
  }
  *scale_bits = h;
  *zero = static_cast<uint8_t>(z);
  return true;
}

namespace {
constexpr long kParallelMin = 1 << 15;  // weights

// Runs per_group(o, g, begin, len, row_codes) over every (row, group) of W [n, k], then
// row_done(o, row_codes), OpenMP over rows; row_codes [k] is the running thread's scratch for the
// codes of row o. Throws naming the tensor and the first bad row if a group's scale is not finite
// (NaN/Inf weights or an FP16 overflow).
template <class PerGroup, class RowDone>
void for_each_group(int n, int k, int group, const std::string& name, PerGroup per_group, RowDone row_done) {
  const int n_groups = (k + group - 1) / group;
  int bad_row = n;
  // Threads only pay off past small matrices (each parallel region costs a wake-up of the team).
#pragma omp parallel reduction(min : bad_row) if (static_cast<long>(n) * k >= kParallelMin)
  {
    std::vector<uint8_t> row_codes(static_cast<size_t>(k));
#pragma omp for schedule(static)
    for (int o = 0; o < n; ++o) {
      for (int g = 0; g < n_groups; ++g) {
        const int begin = g * group;
        if (!per_group(o, g, begin, std::min(group, k - begin), row_codes.data())) bad_row = std::min(bad_row, o);
      }
      row_done(o, row_codes.data());
    }
  }
  if (bad_row < n)
    fail(name, "output channel " + std::to_string(bad_row) + ": a group scale is not a finite FP16 number "
               "(non-finite weights, or a range beyond FP16)");
}
}  // namespace

QuantizedWeight quantize_rtn(const float* w, int n, int k, const QuantSpec& spec, const float* clip_max,
                             const std::string& name) {
  check_quant_spec(spec, name);
  QuantizedWeight qw;
  qw.allocate(n, k, spec.bits, spec.group_for(k));
  qw.symmetric = spec.symmetric;
  const int n_groups = qw.n_groups();
  for_each_group(
      n, k, qw.group_size, name,
      [&](int o, int g, int begin, int len, uint8_t* row_codes) {
        const size_t at = static_cast<size_t>(o) * k + begin;
        return quantize_group(w + at, len, spec, clip_max ? clip_max[static_cast<size_t>(o) * n_groups + g] : 0.0f,
                              row_codes + begin, &qw.scales[static_cast<size_t>(g) * n + o],
                              &qw.zeros[static_cast<size_t>(g) * n + o], nullptr);
      },
      [&](int o, const uint8_t* row_codes) { qw.set_row_codes(o, row_codes); });
  return qw;
}

void fake_quantize(const float* w, int n, int k, const QuantSpec& spec, float* w_hat, const float* clip_max,
                   const std::string& name) {
  check_quant_spec(spec, name);
  const int group = spec.group_for(k), n_groups = (k + group - 1) / group;
  for_each_group(
      n, k, group, name,
      [&](int o, int g, int begin, int len, uint8_t*) {
        const size_t at = static_cast<size_t>(o) * k + begin;
        uint16_t scale_bits;
        uint8_t zero;
        return quantize_group(w + at, len, spec, clip_max ? clip_max[static_cast<size_t>(o) * n_groups + g] : 0.0f,
                              nullptr, &scale_bits, &zero, w_hat + at);
      },
      [](int, const uint8_t*) {});
}

}  // namespace qb
