#pragma once
// Round-to-nearest group quantization of a linear layer's weight W [n, k] (n = out_features,
// k = in_features), the AWQ/GPTQ convention (llm-awq quantizer.py pseudo_quantize_tensor):
//
//   asymmetric: scale = max(max - min, 1e-5) / (2^bits - 1)     rounded to FP16 first
//               zero  = clamp(round(-min / scale), 0, 2^bits - 1)
//   symmetric:  scale = max(max|w|, 1e-5) / (2^(bits-1) - 1)    rounded to FP16 first
//               zero  = 2^(bits-1)                               (codes - zero in -2^(bits-1) .. 2^(bits-1)-1)
//   q = clamp(round(w / scale) + zero, 0, 2^bits - 1),  w_hat = (q - zero) * scale
//
// round() is round-half-to-even, as torch.round. The scale is rounded to FP16 before the codes are
// computed, so dequantization on every backend gives the same numbers as here. Groups run along k;
// when group_size does not divide k the last group is shorter.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "model/model.h"

namespace qb {

struct QuantSpec {
  int bits = 4;           // 2 .. 8
  int group_size = 128;   // > 0, or -1 for one group per output channel (group = k)
  bool symmetric = false;
  // The group size for a weight with k input channels (k itself when per-channel).
  int group_for(int k) const { return group_size > 0 ? group_size : k; }
  int max_code() const { return (1 << bits) - 1; }
};

// Throws qb::Error naming `where` if bits or group size are out of range.
void check_quant_spec(const QuantSpec& spec, const std::string& where);

// Quantizes W. clip_max (optional) [n, n_groups]: each group is first clamped to
// [-clip_max, clip_max] (AWQ's clip search). `name` names the tensor in errors.
QuantizedWeight quantize_rtn(const float* w, int n, int k, const QuantSpec& spec, const float* clip_max = nullptr,
                             const std::string& name = "weight");

// w_hat [n, k] = dequantize(quantize_rtn(w, ...)) without keeping the codes: the same numbers,
// used inside the AWQ searches. OpenMP over rows.
void fake_quantize(const float* w, int n, int k, const QuantSpec& spec, float* w_hat,
                   const float* clip_max = nullptr, const std::string& name = "weight");

// One group of `len` weights: its codes (optional), FP16 scale bits and zero point; w_hat
// (optional) receives the dequantized values. clip <= 0 means no clipping. Returns false when the
// scale is not a finite FP16 number (callers report it outside their parallel loops).
bool quantize_group(const float* w, int len, const QuantSpec& spec, float clip, uint8_t* codes, uint16_t* scale_bits,
                    uint8_t* zero, float* w_hat);

// The code of one weight on a group's grid (scale: the FP16-rounded value): clamp(round(w / scale)
// + zero, 0, max_code), round-half-to-even. quantize_group and GPTQ (quant/gptq.h) share it.
// The rounding is float addition of 1.5 * 2^23 and back, std::nearbyint's result wherever
// |w / scale| <= 2^22 (and both clamp alike beyond); unlike a call to libm's nearbyintf, which
// saves and restores the floating-point environment, it vectorizes (AWQ's searches run it for
// every weight of every candidate).
inline float grid_code(float w, float scale, int zero, int max_code) {
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: the sum's last bit is the units bit
  const float rounded = (w / scale + kRound) - kRound;
  return std::clamp(rounded + static_cast<float>(zero), 0.0f, static_cast<float>(max_code));
}

}  // namespace qb
