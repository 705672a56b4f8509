#pragma once
// IEEE binary16 and bfloat16 <-> float32 on the host (round to nearest even).
#include <cstddef>
#include <cstdint>

namespace qb {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
// n binary16 / bfloat16 values widened into out; F16C instructions where the CPU has them.
void halves_to_float(const uint16_t* in, float* out, size_t n);
void bf16s_to_float(const uint16_t* in, float* out, size_t n);
// Rounds through binary16 and back: what storing a float32 weight as FP16 does to it.
inline float round_to_half(float f) { return half_to_float(float_to_half(f)); }

}  // namespace qb
