#pragma once
// The GPTQ checkpoint layout (AutoGPTQ v0.7 qlinear_cuda_old / GPTQModel v1 "gptq" format, HF
// quant_method "gptq"), defined once for its writer and reader (quant/gptq_format.h). Shapes, for
// a linear layer y = x W^T with W [n, k] (n = out_features, k = in_features), b bits (2, 4 or 8),
// P = 32 / b values per int32 and n_groups = ceil(k / group_size):
//
//   qweight  int32 [k/P, n]          column o, row r holds input channels P*r .. P*r + P-1 of output o
//   qzeros   int32 [n_groups, n/P]   row g, column c holds the zero points of outputs P*c .. P*c + P-1
//   scales   fp16  [n_groups, n]
//   g_idx    int32 [k]               group of each input channel; i / group_size unless act-order
//                                    quantized without static groups
//
//   w[o][i] = (slot(qweight[i/P][o], i%P) - zero[g_idx[i]][o]) * scales[g_idx[i]][o]
//
// Unlike AutoAWQ's layout (layouts/awq_layout.h: packed along the output dimension, interleaved
// order) codes are packed along the INPUT dimension, slot j (bits b*j .. b*j+b-1) in plain order:
//
//   4-bit word:  bits  [31..28][27..24][23..20][19..16][15..12][11..8][7..4][3..0]
//                slot     7       6       5       4       3       2     1     0
//                qweight: input channel 8r + slot;  qzeros: output column 8c + slot
//
// Zero points: checkpoint_format "gptq" (v1, AutoGPTQ's historic format) stores zero - 1 in each
// slot (an off-by-one of the original packer, kept for compatibility); "gptq_v2" (GPTQModel)
// stores the zero as is. Written here: v1. A zero point of 0 is stored in v1 as 2^b - 1 (the
// subtraction wraps within the slot); readers that add 1 after masking (AutoGPTQ's torch
// dequantization) read it as 2^b, so such groups (all weights of one sign) differ there.
#include <cstdint>

#include "layouts/host_device.h"

namespace qb::gptq {

// Bit widths whose slots tile an int32 exactly (AutoGPTQ's 3-bit layout straddles words; not here).
QB_HOST_DEVICE constexpr bool packable(int bits) { return bits == 2 || bits == 4 || bits == 8; }
QB_HOST_DEVICE constexpr int pack_factor(int bits) { return 32 / bits; }
QB_HOST_DEVICE constexpr uint32_t slot_mask(int bits) { return (1u << bits) - 1u; }

// The value in slot `slot` of a packed word.
QB_HOST_DEVICE constexpr uint32_t unpack(uint32_t word, int slot, int bits) {
  return (word >> (bits * slot)) & slot_mask(bits);
}
// `value` (its low `bits` bits) placed in slot `slot`, to be OR-ed into a word.
QB_HOST_DEVICE constexpr uint32_t in_slot(uint32_t value, int slot, int bits) {
  return (value & slot_mask(bits)) << (bits * slot);
}

// v1 zero offset: stored = (zero - 1) mod 2^bits; zero = (stored + 1) mod 2^bits.
QB_HOST_DEVICE constexpr uint32_t zero_to_v1(uint32_t zero, int bits) { return (zero - 1u) & slot_mask(bits); }
QB_HOST_DEVICE constexpr uint32_t zero_from_v1(uint32_t stored, int bits) { return (stored + 1u) & slot_mask(bits); }

}  // namespace qb::gptq
