#pragma once
// The AutoAWQ "gemm" packed layout, defined once for the quantizer (packing, checkpoints) and the
// W4A16 kernels (unpacking in registers). Shapes, for a linear layer y = x W^T with W [n, k]
// (n = out_features, k = in_features) and group size g:
//
//   qweight  int32 [k, n/8]     row r = input channel, column c holds output columns 8c .. 8c+7
//   qzeros   int32 [k/g, n/8]   one 4-bit zero point per (group, output column), packed the same way
//   scales   fp16  [k/g, n]     one scale per (group, output column)
//
//   w[out = 8c + j][in = r] = (nibble(qweight[r][c], j) - nibble(qzeros[r/g][c], j)) * scales[r/g][8c + j]
//
// Within one int32, nibble slot i (bits 4i .. 4i+3) holds output column 8c + kAwqOrder[i]:
//
//   bits:    [31..28][27..24][23..20][19..16][15..12][11..8][7..4][3..0]
//   column:     7       5       3       1       6       4     2     0
//
// i.e. the even columns in the low half-word and the odd ones in the high half-word. The W4A16
// kernels rely on exactly this: slot i (bits 4i) holds column 2i and slot i + 4 (bits 4i + 16)
// column 2i + 1, so shifting a word right by 4i and masking 0x000f000f puts columns (2i, 2i+1)
// into the two 16-bit lanes, ready to become a half2 (column_pair_lanes below).
#include <cstdint>

#include "layouts/host_device.h"

namespace qb::awq {

constexpr int kBits = 4;
constexpr int kPackFactor = 32 / kBits;  // 8 values per int32

// kAwqOrder[slot] = column offset stored in nibble `slot`; kAwqInverse[column] = its slot.
QB_HOST_DEVICE constexpr int order(int slot) {
  constexpr int o[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  return o[slot];
}
QB_HOST_DEVICE constexpr int slot_of_column(int column) {
  constexpr int inv[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  return inv[column];
}

// The 4-bit value for output column offset `column` (0..7) of a packed word.
QB_HOST_DEVICE constexpr uint32_t unpack(uint32_t word, int column) {
  return (word >> (4 * slot_of_column(column))) & 0xfu;
}

// Packs eight 4-bit values, values[j] for output column offset j, into one word.
QB_HOST_DEVICE constexpr uint32_t pack(const uint8_t values[8]) {
  uint32_t word = 0;
  for (int j = 0; j < 8; ++j) word |= static_cast<uint32_t>(values[j] & 0xf) << (4 * slot_of_column(j));
  return word;
}

// Columns (2i, 2i + 1) of a packed word, i = 0..3, as two 16-bit lanes: low lane = nibble of column
// 2i, high lane = nibble of column 2i + 1. OR-ing kHalfMagic1024 makes the lanes the fp16 numbers
// 1024 + q (1024 = 0x6400 has an ulp of 1, so the nibble lands in the mantissa unchanged).
QB_HOST_DEVICE constexpr uint32_t column_pair_lanes(uint32_t word, int i) { return (word >> (4 * i)) & 0x000f000fu; }
constexpr uint32_t kHalfMagic1024 = 0x64006400u;  // fp16 1024.0 in both lanes of a half2

}  // namespace qb::awq
