// Host binary16 / bfloat16 conversions: exact values, round to nearest even, overflow, Inf and NaN,
// and every half bit pattern through float and back.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "common/half.h"

using namespace qb;

namespace {

uint32_t float_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

bool is_half_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0; }

}  // namespace

TEST_CASE("half_to_float: exact values, signed zero, subnormals, Inf and NaN") {
  CHECK(float_bits(half_to_float(0x0000)) == float_bits(0.0f));
  CHECK(float_bits(half_to_float(0x8000)) == float_bits(-0.0f));
  CHECK(half_to_float(0x3c00) == 1.0f);
  CHECK(half_to_float(0xbc00) == -1.0f);
  CHECK(half_to_float(0x3555) == 0x1.554p-2f);  // 0.333...: the mantissa carried over unrounded
  CHECK(half_to_float(0x7bff) == 65504.0f);     // largest finite
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));           // smallest normal
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));           // smallest subnormal
  CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));        // largest subnormal
  CHECK(half_to_float(0x8001) == -std::ldexp(1.0f, -24));
  CHECK(half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(half_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(std::isnan(half_to_float(0x7c01)));  // signalling NaN payload: still NaN, not Inf
  CHECK(std::isnan(half_to_float(0xfe00)));
}

TEST_CASE("float_to_half: exact values, overflow to Inf, NaN stays NaN") {
  CHECK(float_to_half(0.0f) == 0x0000);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(std::ldexp(1.0f, -14)) == 0x0400);
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(float_to_half(std::ldexp(1023.0f, -24)) == 0x03ff);
  CHECK(float_to_half(-std::ldexp(1.0f, -24)) == 0x8001);

  const float inf = std::numeric_limits<float>::infinity();
  CHECK(float_to_half(inf) == 0x7c00);
  CHECK(float_to_half(-inf) == 0xfc00);
  // 65520 is halfway between 65504 (odd mantissa) and 2^16: the tie goes to even, i.e. Inf.
  CHECK(float_to_half(65520.0f) == 0x7c00);
  CHECK(float_to_half(std::nextafter(65520.0f, 0.0f)) == 0x7bff);
  CHECK(float_to_half(-65520.0f) == 0xfc00);
  CHECK(float_to_half(1e10f) == 0x7c00);
  CHECK(float_to_half(std::numeric_limits<float>::max()) == 0x7c00);
  // Below half the smallest subnormal: zero, keeping the sign; exactly half of it ties to even (0).
  CHECK(float_to_half(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(float_to_half(-std::ldexp(1.0f, -26)) == 0x8000);
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);
  CHECK(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
  CHECK(float_to_half(std::numeric_limits<float>::denorm_min()) == 0x0000);

  CHECK(is_half_nan(float_to_half(std::numeric_limits<float>::quiet_NaN())));
  CHECK(is_half_nan(float_to_half(-std::numeric_limits<float>::quiet_NaN())));
  uint32_t low_payload = 0x7f800001u;  // a NaN whose payload bits would all be cut off
  float nan_low;
  std::memcpy(&nan_low, &low_payload, 4);
  CHECK(is_half_nan(float_to_half(nan_low)));
}

TEST_CASE("float_to_half rounds to nearest, ties to even, between every pair of adjacent finite halves") {
  // Adjacent non-negative halves h and h + 1 differ in the last of 11 significant bits, so their
  // midpoint is exact in float: it rounds to the even one, and one float step off it to the nearer.
  for (uint16_t h = 0; h < 0x7bff; ++h) {
    const float lo = half_to_float(h), hi = half_to_float(static_cast<uint16_t>(h + 1));
    const float mid = (lo + hi) / 2;
    INFO("half 0x" << std::hex << h);
    REQUIRE(mid > lo);
    REQUIRE(mid < hi);
    CHECK(float_to_half(mid) == ((h & 1) ? h + 1 : h));
    CHECK(float_to_half(std::nextafter(mid, 0.0f)) == h);
    CHECK(float_to_half(std::nextafter(mid, hi)) == h + 1);
    CHECK(float_to_half(-mid) == (0x8000 | ((h & 1) ? h + 1 : h)));
  }
}

TEST_CASE("every half bit pattern survives half -> float -> half (NaN as NaN)") {
  int mismatches = 0;
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const uint16_t h = static_cast<uint16_t>(bits);
    const float f = half_to_float(h);
    const uint16_t back = float_to_half(f);
    const bool ok = is_half_nan(h) ? std::isnan(f) && is_half_nan(back) && (back & 0x8000) == (h & 0x8000)
                                   : back == h;
    if (!ok) {
      ++mismatches;
      if (mismatches <= 10) FAIL_CHECK("half 0x" << std::hex << bits << " -> " << f << " -> 0x" << back);
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("bf16_to_float: the top 16 bits of a float32") {
  CHECK(float_bits(bf16_to_float(0x0000)) == float_bits(0.0f));
  CHECK(float_bits(bf16_to_float(0x8000)) == float_bits(-0.0f));
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(bf16_to_float(0xc040) == -3.0f);
  CHECK(bf16_to_float(0x3e80) == 0.25f);
  CHECK(bf16_to_float(0x7f7f) == 0x1.fep127f);  // largest finite bfloat16
  CHECK(bf16_to_float(0x0001) == std::ldexp(1.0f, -133));  // smallest subnormal
  CHECK(bf16_to_float(0x7f80) == std::numeric_limits<float>::infinity());
  CHECK(bf16_to_float(0xff80) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(bf16_to_float(0x7fc0)));
  CHECK(std::isnan(bf16_to_float(0x7f81)));
  for (uint32_t b = 0; b <= 0xffff; ++b) CHECK(float_bits(bf16_to_float(static_cast<uint16_t>(b))) == b << 16);
}

TEST_CASE("round_to_half is what storing a float as FP16 does to it") {
  CHECK(round_to_half(1.0f) == 1.0f);
  CHECK(round_to_half(0.1f) == half_to_float(0x2e66));  // 0.0999755859375
  CHECK(round_to_half(1.0f + std::ldexp(1.0f, -11)) == 1.0f);  // tie between 1 and 1 + 2^-10: even
  CHECK(round_to_half(70000.0f) == std::numeric_limits<float>::infinity());
}
