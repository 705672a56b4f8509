// CPU-only (always runs): the packing helpers of layouts/awq_layout.h that both the quantizer and
// the kernels rely on, including the lane/magic-number trick the kernels use to dequantize, and
// the CPU reference the GPU tests compare against.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "awq_reference.h"
#include "common/half.h"
#include "layouts/awq_layout.h"

using namespace qb;

TEST_CASE("awq pack and unpack round-trip every value in every column") {
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> nibble(0, 15);
  for (int trial = 0; trial < 1000; ++trial) {
    uint8_t values[8];
    for (auto& v : values) v = static_cast<uint8_t>(nibble(rng));
    const uint32_t word = awq::pack(values);
    for (int j = 0; j < 8; ++j) REQUIRE(awq::unpack(word, j) == values[j]);
  }
}

TEST_CASE("awq pack puts columns in the AutoAWQ nibble order") {
  // Column j holds value j: nibble slot i must then hold column order(i) = {0,2,4,6,1,3,5,7}[i].
  const uint8_t values[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  CHECK(awq::pack(values) == 0x75316420u);
  for (int slot = 0; slot < 8; ++slot) CHECK(awq::slot_of_column(awq::order(slot)) == slot);
}

TEST_CASE("column_pair_lanes plus the 0x6400 magic gives 1024 + q for columns 2i and 2i+1") {
  std::mt19937 rng(2);
  std::uniform_int_distribution<uint32_t> bits;
  for (int trial = 0; trial < 200; ++trial) {
    const uint32_t word = bits(rng);
    for (int i = 0; i < 4; ++i) {
      const uint32_t lanes = awq::column_pair_lanes(word, i) | awq::kHalfMagic1024;
      const float lo = half_to_float(static_cast<uint16_t>(lanes & 0xffff));
      const float hi = half_to_float(static_cast<uint16_t>(lanes >> 16));
      REQUIRE(lo == 1024.0f + static_cast<float>(awq::unpack(word, 2 * i)));
      REQUIRE(hi == 1024.0f + static_cast<float>(awq::unpack(word, 2 * i + 1)));
    }
  }
}

TEST_CASE("dequantize_reference matches hand-computed values") {
  // One word column (n = 8), one group (k = g = 32). Input channel 0 holds qweight 0x76543210: nibble
  // slot i = i, so column j has q = slot_of_column(j) = {0,4,1,5,2,6,3,7}[j]. Zero points 8, scale 0.5:
  // w = (q - 8) * 0.5.
  test::HostAwqWeight w;
  w.n = 8, w.k = 32, w.group_size = 32;
  w.qweight.assign(32, 0);
  w.qweight[0] = 0x76543210;
  w.qzeros = {static_cast<int32_t>(0x88888888u)};
  w.scales.assign(8, float_to_half(0.5f));
  const auto deq = test::dequantize_reference(w);  // [n = 8, k = 32]
  const float expected[8] = {-4.0f, -2.0f, -3.5f, -1.5f, -3.0f, -1.0f, -2.5f, -0.5f};
  for (int col = 0; col < 8; ++col) {
    CHECK(half_to_float(deq[col * 32 + 0]) == expected[col]);
    CHECK(half_to_float(deq[col * 32 + 1]) == -4.0f);  // q = 0 elsewhere: (0 - 8) * 0.5
  }
}

TEST_CASE("dequantize_reference picks each input channel's group") {
  // k = 64, g = 32: channels 0..31 use group 0 (zero 0, scale 1), channels 32..63 group 1
  // (zero 1, scale 0.25). All weights q = 3.
  test::HostAwqWeight w;
  w.n = 8, w.k = 64, w.group_size = 32;
  w.qweight.assign(64, static_cast<int32_t>(0x33333333u));
  w.qzeros = {0, 0x11111111};
  w.scales.assign(16, float_to_half(1.0f));
  for (int c = 8; c < 16; ++c) w.scales[c] = float_to_half(0.25f);
  const auto deq = test::dequantize_reference(w);
  for (int col = 0; col < 8; ++col) {
    CHECK(half_to_float(deq[col * 64 + 31]) == 3.0f);
    CHECK(half_to_float(deq[col * 64 + 32]) == 0.5f);
  }
}

TEST_CASE("gemm_reference and compare_to_reference on a hand-computed product") {
  // x [2, 2] = [[1, 2], [3, 4]], W [3, 2] = [[1, 0], [0, 1], [1, 1]] -> y = [[1, 2, 3], [3, 4, 7]].
  const std::vector<uint16_t> x = {float_to_half(1), float_to_half(2), float_to_half(3), float_to_half(4)};
  const std::vector<uint16_t> w = {float_to_half(1), float_to_half(0), float_to_half(0),
                                   float_to_half(1), float_to_half(1), float_to_half(1)};
  const auto y = test::gemm_reference(x, w, 2, 3, 2);
  const std::vector<float> expected = {1, 2, 3, 3, 4, 7};
  REQUIRE(y == expected);

  std::vector<uint16_t> y_half;
  for (float v : expected) y_half.push_back(float_to_half(v));
  CHECK(test::compare_to_reference(y_half, expected).relative_frobenius == 0.0);
  y_half[5] = float_to_half(8);  // one element off by 1: ||e|| / ||y|| = 1 / sqrt(88)
  CHECK(test::compare_to_reference(y_half, expected).relative_frobenius == Approx(1.0 / std::sqrt(88.0)));
  y_half[0] = 0xffff;  // NaN: counted, not summed
  CHECK(test::compare_to_reference(y_half, expected).non_finite == 1);
}
