#pragma once
// CPU reference for the W4A16 kernel tests: random packed AWQ weights (packed with
// layouts/awq_layout.h, the layout's one definition), the reference dequantizer, an FP32 GEMM and
// the error measure every kernel test uses. No CUDA.
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace qb::test {

struct HostAwqWeight {
  int n = 0, k = 0, group_size = 0;
  std::vector<int32_t> qweight;  // [k, n/8]   packed 4-bit weights
  std::vector<int32_t> qzeros;   // [k/g, n/8] packed 4-bit zero points
  std::vector<uint16_t> scales;  // [k/g, n]   fp16 bits
};

// Uniform 4-bit weights and zero points, scales uniform in [0.002, 0.02] (normal fp16 numbers,
// typical magnitudes of real AWQ scales).
HostAwqWeight random_awq_weight(int n, int k, int group_size, std::mt19937& rng);

// fp16 bits of uniform values in [lo, hi).
std::vector<uint16_t> random_halves(size_t count, float lo, float hi, std::mt19937& rng);

// W [n, k] as fp16 bits: round_to_half((q - z) * s), element by element via awq::unpack.
std::vector<uint16_t> dequantize_reference(const HostAwqWeight& w);

// y [m, n] = x [m, k] · W^T, W [n, k]; fp16 inputs widened to float, FP32 accumulation (cblas).
std::vector<float> gemm_reference(const std::vector<uint16_t>& x, const std::vector<uint16_t>& w, int m, int n, int k);

// How far an fp16 result is from the reference: ||y - ref||_F / ||ref||_F over the finite
// elements, and how many elements are NaN or infinite (a poisoned element left unwritten).
struct Comparison {
  double relative_frobenius = 0;
  size_t non_finite = 0;
};
Comparison compare_to_reference(const std::vector<uint16_t>& y, const std::vector<float>& reference);

}  // namespace qb::test
