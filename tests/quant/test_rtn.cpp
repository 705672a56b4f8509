// RTN group quantization on groups whose codes, scales and zero points are computed by hand.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/error.h"
#include "common/half.h"
#include "quant/rtn.h"

using namespace qb;

namespace {
std::vector<float> dequantized(const QuantizedWeight& w) { return w.dequantize(); }
std::vector<uint8_t> codes_of(const QuantizedWeight& w) {  // [n, k] unpacked
  std::vector<uint8_t> codes(static_cast<size_t>(w.n) * w.k);
  for (int o = 0; o < w.n; ++o) w.row_codes(o, &codes[static_cast<size_t>(o) * w.k]);
  return codes;
}
}  // namespace

TEST_CASE("asymmetric 4-bit: scale = range / 15, zero = round(-min / scale)") {
  // range 7.5 -> scale 0.5 (exact in FP16), zero round(1.5 / 0.5) = 3.
  const std::vector<float> w = {-1.5f, 0.0f, 3.0f, 6.0f};
  const QuantizedWeight q = quantize_rtn(w.data(), 1, 4, {4, 4, false});
  CHECK(q.group_size == 4);
  CHECK(q.n_groups() == 1);
  CHECK(half_to_float(q.scales[0]) == 0.5f);
  CHECK(q.zeros[0] == 3);
  CHECK(codes_of(q) == std::vector<uint8_t>{0, 3, 9, 15});
  CHECK(dequantized(q) == w);
}

TEST_CASE("asymmetric 2-bit rounds half to even, as torch.round") {
  // range 3 -> scale 1, zero 1; 0.5 / 1 = 0.5 rounds to 0 (even), not 1.
  const std::vector<float> w = {-1.0f, 0.0f, 0.5f, 2.0f};
  const QuantizedWeight q = quantize_rtn(w.data(), 1, 4, {2, -1, false});
  CHECK(q.zeros[0] == 1);
  CHECK(codes_of(q) == std::vector<uint8_t>{0, 1, 1, 3});
  CHECK(dequantized(q) == std::vector<float>{-1.0f, 0.0f, 0.0f, 2.0f});
}

TEST_CASE("symmetric 4-bit: scale = max|w| / 7, zero fixed at 8") {
  // scale 1; 3.5 rounds to 4 (even); 0.2 rounds to 0.
  const std::vector<float> w = {-7.0f, 3.5f, 1.0f, 0.2f};
  const QuantizedWeight q = quantize_rtn(w.data(), 1, 4, {4, 4, true});
  CHECK(half_to_float(q.scales[0]) == 1.0f);
  CHECK(q.zeros[0] == 8);
  CHECK(q.symmetric);
  CHECK(codes_of(q) == std::vector<uint8_t>{1, 12, 9, 8});
  CHECK(dequantized(q) == std::vector<float>{-7.0f, 4.0f, 1.0f, 0.0f});
}

TEST_CASE("the scale is rounded to FP16 before the codes are computed") {
  // range 2.1 / 15 = 0.14 is not an FP16 number; codes use the rounded scale.
  const std::vector<float> w = {-0.6f, 0.0f, 0.3f, 1.5f};
  const QuantizedWeight q = quantize_rtn(w.data(), 1, 4, {4, 4, false});
  const float scale = round_to_half(2.1f / 15.0f);
  CHECK(scale != 2.1f / 15.0f);
  CHECK(half_to_float(q.scales[0]) == scale);
  CHECK(q.zeros[0] == static_cast<uint8_t>(std::nearbyint(0.6f / scale)));
  for (int i = 0; i < 4; ++i)
    CHECK(q.code(0, i) == static_cast<uint8_t>(std::clamp(std::nearbyint(w[i] / scale) + q.zeros[0], 0.0f, 15.0f)));
}

TEST_CASE("a group size that does not divide k gives a shorter last group; layout [n_groups, n]") {
  // 2 rows x k = 6, group 4: groups [0, 4) and [4, 6).
  const std::vector<float> w = {-1.5f, 0.0f, 3.0f, 6.0f, 0.0f, 15.0f,   // row 0: second group scale 1, zero 0
                                0.0f,  1.0f, 2.0f, 3.0f, -3.0f, 0.0f};  // row 1: scale 0.2, zero 15 (3 / 0.2)
  const QuantizedWeight q = quantize_rtn(w.data(), 2, 6, {4, 4, false});
  REQUIRE(q.n_groups() == 2);
  REQUIRE(q.scales.size() == 4);
  CHECK(half_to_float(q.scales[0 * 2 + 0]) == 0.5f);               // group 0, row 0
  CHECK(half_to_float(q.scales[1 * 2 + 0]) == 1.0f);               // group 1, row 0
  CHECK(half_to_float(q.scales[1 * 2 + 1]) == round_to_half(0.2f));  // group 1, row 1
  CHECK(q.zeros[1 * 2 + 0] == 0);
  CHECK(q.zeros[1 * 2 + 1] == 15);
  CHECK(q.code(0, 4) == 0);
  CHECK(q.code(0, 5) == 15);
  CHECK(q.code(1, 4) == 0);
  CHECK(q.code(1, 5) == 15);
}

TEST_CASE("per-channel (-1) is one group of k per output channel") {
  std::vector<float> w(3 * 10);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i % 8) - 3.0f;
  const QuantizedWeight q = quantize_rtn(w.data(), 3, 10, {3, -1, false});
  CHECK(q.group_size == 10);
  CHECK(q.n_groups() == 1);
  CHECK(q.scales.size() == 3);
  CHECK(dequantized(q) == w);  // -3 .. 4 at 3 bits: scale 1, zero 3, exact
}

TEST_CASE("clipping clamps each group to [-clip, clip] before min/max") {
  const std::vector<float> w = {-1.0f, 0.0f, 0.5f, 10.0f};
  const float clip = 2.0f;
  const QuantizedWeight q = quantize_rtn(w.data(), 1, 4, {4, 4, false}, &clip);
  CHECK(half_to_float(q.scales[0]) == round_to_half(3.0f / 15.0f));
  CHECK(dequantized(q).back() == Approx(2.0f).epsilon(1e-3));
}

TEST_CASE("fake_quantize gives exactly the dequantized codes, all widths and group sizes") {
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  const int n = 24, k = 172;
  std::vector<float> w(n * k), clip(n * 6, 0.1f);
  for (auto& v : w) v = dist(rng);
  for (int bits = 2; bits <= 8; ++bits)
    for (int group : {32, 64, 128, -1})
      for (bool sym : {false, true}) {
        const QuantSpec spec{bits, group, sym};
        std::vector<float> fake(w.size());
        const float* c = group == 32 ? clip.data() : nullptr;
        fake_quantize(w.data(), n, k, spec, fake.data(), c);
        const QuantizedWeight q = quantize_rtn(w.data(), n, k, spec, c);
        CHECK(q.dequantize() == fake);
        const std::vector<uint8_t> codes = codes_of(q);
        CHECK(*std::max_element(codes.begin(), codes.end()) <= spec.max_code());
      }
}

TEST_CASE("bad specs and non-finite weights are refused naming the tensor") {
  const std::vector<float> w = {0.0f, 1.0f, 2.0f, 3.0f};
  CHECK_THROWS_WITH(quantize_rtn(w.data(), 1, 4, {1, 4, false}, nullptr, "model.layers.0.mlp.up_proj"),
                    Catch::Contains("model.layers.0.mlp.up_proj") && Catch::Contains("bits 1"));
  CHECK_THROWS_WITH(quantize_rtn(w.data(), 1, 4, {9, 4, false}, nullptr, "x"), Catch::Contains("bits 9"));
  CHECK_THROWS_WITH(quantize_rtn(w.data(), 1, 4, {4, 0, false}, nullptr, "x"), Catch::Contains("group size 0"));
  const std::vector<float> bad = {0.0f, INFINITY, 2.0f, 3.0f};
  CHECK_THROWS_WITH(quantize_rtn(bad.data(), 1, 4, {4, 4, false}, nullptr, "model.layers.3.self_attn.v_proj"),
                    Catch::Contains("model.layers.3.self_attn.v_proj") && Catch::Contains("not a finite"));
}
