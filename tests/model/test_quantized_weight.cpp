// QuantizedWeight's packed codes (src/model/model.h): each output row's k codes `bits` wide, LSB
// first, in a byte range of its own. Checked against a bit-by-bit packing written here from that
// description, and dequantize_rows against the formula W[o][i] = (q - zero) * scale evaluated in
// float64 (exact in float64, so the float results must be the correctly rounded values: equality).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "model/model.h"

using namespace qb;

namespace {

// Bit b of code i of a row is bit (i * bits + b) of the row's bytes, byte j holding bits 8j .. 8j+7.
std::vector<uint8_t> pack_bit_by_bit(const std::vector<uint8_t>& codes, int n, int k, int bits) {
  const size_t row_bytes = (static_cast<size_t>(k) * bits + 7) / 8;
  std::vector<uint8_t> bytes(row_bytes * n, 0);
  for (int o = 0; o < n; ++o)
    for (int i = 0; i < k; ++i)
      for (int b = 0; b < bits; ++b)
        if (codes[static_cast<size_t>(o) * k + i] >> b & 1) {
          const size_t bit = static_cast<size_t>(i) * bits + b;
          bytes[o * row_bytes + bit / 8] |= static_cast<uint8_t>(1u << (bit % 8));
        }
  return bytes;
}

// Random codes, scales and zeros for W [n, k].
QuantizedWeight random_weight(int n, int k, int bits, int group, std::mt19937& rng, std::vector<uint8_t>& codes) {
  QuantizedWeight w;
  w.allocate(n, k, bits, group);
  codes.resize(static_cast<size_t>(n) * k);
  for (auto& c : codes) c = static_cast<uint8_t>(rng() % (1u << bits));
  for (int o = 0; o < n; ++o) w.set_row_codes(o, &codes[static_cast<size_t>(o) * k]);
  for (auto& s : w.scales) s = float_to_half(std::ldexp(1.0f + (rng() % 1000) / 1000.0f, -static_cast<int>(rng() % 12)));
  for (auto& z : w.zeros) z = static_cast<uint8_t>(rng() % (1u << bits));
  return w;
}

// Rows [row_begin, row_end) from the formula in float64, rounded to float once.
std::vector<float> dequantize_f64(const QuantizedWeight& w, const std::vector<uint8_t>& codes, int row_begin,
                                  int row_end) {
  std::vector<float> out;
  for (int o = row_begin; o < row_end; ++o)
    for (int i = 0; i < w.k; ++i) {
      const int g = w.g_idx.empty() ? i / w.group_size : w.g_idx[i];
      const double q = codes[static_cast<size_t>(o) * w.k + i], zero = w.zeros[static_cast<size_t>(g) * w.n + o];
      out.push_back(static_cast<float>((q - zero) * half_to_float(w.scales[static_cast<size_t>(g) * w.n + o])));
    }
  return out;
}

}  // namespace

TEST_CASE("codes pack bits wide, LSB first, one byte range per row; set and get round trip") {
  std::mt19937 rng(9);
  for (int bits = 2; bits <= 8; ++bits)
    for (int k : {1, 37, 130}) {
      INFO("bits " << bits << " k " << k);
      const int n = 5;
      std::vector<uint8_t> codes;
      const QuantizedWeight w = random_weight(n, k, bits, 16, rng, codes);
      const size_t row_bytes = (static_cast<size_t>(k) * bits + 7) / 8;
      CHECK(w.row_bytes() == row_bytes);
      CHECK(w.packed_codes().size() == row_bytes * n);  // the memory held is the packed size
      CHECK(w.packed_codes() == pack_bit_by_bit(codes, n, k, bits));
      std::vector<uint8_t> row(k);
      for (int o = 0; o < n; ++o) {
        w.row_codes(o, row.data());
        CHECK(std::equal(row.begin(), row.end(), codes.begin() + static_cast<size_t>(o) * k));
        for (int i = 0; i < k; ++i) REQUIRE(w.code(o, i) == codes[static_cast<size_t>(o) * k + i]);
      }
      // One code at a time, in random order, over codes already there: neighbours stay intact.
      QuantizedWeight v = w;
      for (int o = 0; o < n; ++o) {
        std::vector<uint8_t> inverted(k);
        for (int i = 0; i < k; ++i) inverted[i] = static_cast<uint8_t>(~codes[static_cast<size_t>(o) * k + i] & ((1u << bits) - 1));
        v.set_row_codes(o, inverted.data());
      }
      std::vector<int> order(static_cast<size_t>(n) * k);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      for (int at : order) v.set_code(at / k, at % k, codes[at]);
      CHECK(v.packed_codes() == w.packed_codes());
    }
}

TEST_CASE("4-bit codes: two a byte, the even input channel in the low nibble") {
  QuantizedWeight w;
  w.allocate(2, 3, 4, 3);
  const uint8_t codes[2][3] = {{0x1, 0x2, 0x3}, {0xA, 0xB, 0xC}};
  for (int o = 0; o < 2; ++o) w.set_row_codes(o, codes[o]);
  CHECK(w.packed_codes() == std::vector<uint8_t>{0x21, 0x03, 0xBA, 0x0C});
}

TEST_CASE("dequantize_rows equals the float64 formula: every width, contiguous and act-order groups") {
  std::mt19937 rng(4);
  for (int bits = 2; bits <= 8; ++bits)
    for (int k : {37, 130})
      for (int group : {16, 32, 7, k}) {  // 7: 4-bit groups that start mid-byte
        INFO("bits " << bits << " k " << k << " group " << group);
        const int n = 6;
        std::vector<uint8_t> codes;
        const QuantizedWeight w = random_weight(n, k, bits, group, rng, codes);
        CHECK(w.dequantize() == dequantize_f64(w, codes, 0, n));
        std::vector<float> rows(static_cast<size_t>(3) * k);
        w.dequantize_rows(2, 5, rows.data());
        CHECK(rows == dequantize_f64(w, codes, 2, 5));

        QuantizedWeight act = w;  // GPTQ act-order: channels assigned to groups out of order
        act.g_idx.resize(k);
        for (int i = 0; i < k; ++i) act.g_idx[i] = static_cast<int32_t>(rng() % act.n_groups());
        CHECK(act.dequantize() == dequantize_f64(act, codes, 0, n));
      }
}

TEST_CASE("stored bytes count packed codes, FP16 scales, packed zeros and int32 g_idx") {
  std::mt19937 rng(2);
  std::vector<uint8_t> codes;
  // n 5, k 37, 3 bits, group 16: codes ceil(185 * 3 / 8) = 70, 15 groups: scales 30 + zeros ceil(45 / 8) = 6.
  QuantizedWeight w = random_weight(5, 37, 3, 16, rng, codes);
  CHECK(w.stored_bytes() == 70 + 30 + 6);
  w.g_idx.assign(37, 0);
  CHECK(w.stored_bytes() == 70 + 30 + 6 + 37 * 4);
  // A Llama-2-7B up_proj at 4 bits, group 128: half a byte a code in memory, as on disk.
  QuantizedWeight up;
  up.allocate(11008, 4096, 4, 128);
  CHECK(up.packed_codes().size() == size_t(11008) * 4096 / 2);
  CHECK(up.stored_bytes() == size_t(11008) * 4096 / 2 + 32 * 11008 * 2 + 32 * 11008 / 2);
}

TEST_CASE("allocate refuses widths outside 1..8 and empty groups") {
  QuantizedWeight w;
  CHECK_THROWS_AS(w.allocate(4, 4, 9, 4), Error);
  CHECK_THROWS_AS(w.allocate(4, 4, 0, 4), Error);
  CHECK_THROWS_AS(w.allocate(4, 4, 4, 0), Error);
}
