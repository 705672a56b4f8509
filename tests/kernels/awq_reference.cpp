#include "awq_reference.h"

#include <cblas.h>

#include <cmath>

#include "common/half.h"
#include "layouts/awq_layout.h"

namespace qb::test {
namespace {

std::vector<int32_t> random_packed(size_t words, std::mt19937& rng) {
  std::uniform_int_distribution<int> nibble(0, 15);
  std::vector<int32_t> packed(words);
  for (auto& word : packed) {
    uint8_t values[8];
    for (auto& v : values) v = static_cast<uint8_t>(nibble(rng));
    word = static_cast<int32_t>(awq::pack(values));
  }
  return packed;
}

}  // namespace

HostAwqWeight random_awq_weight(int n, int k, int group_size, std::mt19937& rng) {
  HostAwqWeight w;
  w.n = n, w.k = k, w.group_size = group_size;
  const size_t n_words = n / awq::kPackFactor, groups = k / group_size;
  w.qweight = random_packed(static_cast<size_t>(k) * n_words, rng);
  w.qzeros = random_packed(groups * n_words, rng);
  w.scales = random_halves(groups * n, 0.002f, 0.02f, rng);
  return w;
}

std::vector<uint16_t> random_halves(size_t count, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> value(lo, hi);
  std::vector<uint16_t> out(count);
  for (auto& h : out) h = float_to_half(value(rng));
  return out;
}

std::vector<uint16_t> dequantize_reference(const HostAwqWeight& w) {
  const size_t n_words = w.n / awq::kPackFactor;
  std::vector<uint16_t> out(static_cast<size_t>(w.n) * w.k);
  for (int in = 0; in < w.k; ++in) {
    const int group = in / w.group_size;
    for (int col = 0; col < w.n; ++col) {
      const size_t word = col / awq::kPackFactor;
      const int j = col % awq::kPackFactor;
      const int q = static_cast<int>(awq::unpack(static_cast<uint32_t>(w.qweight[in * n_words + word]), j));
      const int z = static_cast<int>(awq::unpack(static_cast<uint32_t>(w.qzeros[group * n_words + word]), j));
      const float s = half_to_float(w.scales[static_cast<size_t>(group) * w.n + col]);
      out[static_cast<size_t>(col) * w.k + in] = float_to_half(static_cast<float>(q - z) * s);
    }
  }
  return out;
}

std::vector<float> gemm_reference(const std::vector<uint16_t>& x, const std::vector<uint16_t>& w, int m, int n,
                                  int k) {
  std::vector<float> xf(x.size()), wf(w.size()), y(static_cast<size_t>(m) * n);
  for (size_t i = 0; i < x.size(); ++i) xf[i] = half_to_float(x[i]);
  for (size_t i = 0; i < w.size(); ++i) wf[i] = half_to_float(w[i]);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, xf.data(), k, wf.data(), k, 0.0f, y.data(), n);
  return y;
}

Comparison compare_to_reference(const std::vector<uint16_t>& y, const std::vector<float>& reference) {
  Comparison c;
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double v = half_to_float(y[i]);
    if (!std::isfinite(v)) {
      ++c.non_finite;
      continue;
    }
    diff2 += (v - reference[i]) * (v - reference[i]);
    ref2 += static_cast<double>(reference[i]) * reference[i];
  }
  c.relative_frobenius = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return c;
}

}  // namespace qb::test
