// llama.cpp's CPU arithmetic (Activations::LlamaCpp): which format each weight type's activations
// take (ggml b4747 type_traits_cpu vec_dot_type), the rounding of each format against its
// definition written out here, and the forward pass with it against the exact one.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "common/half.h"
#include "model/cpu_forward.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

namespace {

std::vector<float> random_row(int k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  std::vector<float> x(k);
  for (float& v : x) v = dist(rng);
  return x;
}

// Q8_0 / Q8_1 per ggml-quants.c: d = amax / 127 stored as FP16, q = round(x / d) with 1/d in
// float, value = fp16(d) * q.
std::vector<float> expected_q8_0(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (size_t j = b; j < b + 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    for (size_t j = b; j < b + 32; ++j) out[j] = round_to_half(d) * std::round(x[j] * id);
  }
  return out;
}

// Q8_K: the value of largest magnitude m (with its sign), q = round(-127 / m * x) capped at 127,
// value = q / (-127 / m) with a float scale.
std::vector<float> expected_q8_K(const std::vector<float>& x) {
  std::vector<float> out(x.size());
  for (size_t b = 0; b < x.size(); b += 256) {
    float m = 0;
    for (size_t j = b; j < b + 256; ++j)
      if (std::fabs(x[j]) > std::fabs(m)) m = x[j];
    const float iscale = m ? -127.0f / m : 0.0f;
    for (size_t j = b; j < b + 256; ++j)
      out[j] = m ? (1 / iscale) * std::min(127.0f, std::nearbyint(iscale * x[j])) : 0.0f;
  }
  return out;
}

}  // namespace

TEST_CASE("each weight type's activations take ggml's vec_dot_type") {
  CHECK(llama_cpp_activation_format(DType::F32) == ActivationFormat::Exact);
  CHECK(llama_cpp_activation_format(DType::F16) == ActivationFormat::F16);
  CHECK(llama_cpp_activation_format(DType::BF16) == ActivationFormat::BF16);
  for (DType t : {DType::Q4_0, DType::Q5_0, DType::Q8_0}) CHECK(llama_cpp_activation_format(t) == ActivationFormat::Q8_0);
  for (DType t : {DType::Q4_1, DType::Q5_1}) CHECK(llama_cpp_activation_format(t) == ActivationFormat::Q8_1);
  for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
    CHECK(llama_cpp_activation_format(t) == ActivationFormat::Q8_K);
  CHECK(std::string(activations_name(Activations::LlamaCpp)) == "llama.cpp");
}

TEST_CASE("activation rows round as their formats define") {
  const int k = 512;
  std::vector<float> x = random_row(2 * k, 7);
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block: scale 0, values 0
  const std::vector<float> row0(x.begin(), x.begin() + k);

  std::vector<float> q8_0 = x;
  round_activations(q8_0.data(), 2, k, ActivationFormat::Q8_0);
  CHECK(std::vector<float>(q8_0.begin(), q8_0.begin() + k) == expected_q8_0(row0));
  std::vector<float> q8_1 = x;  // the same values; Q8_1 adds a block sum the rounding does not use
  round_activations(q8_1.data(), 2, k, ActivationFormat::Q8_1);
  CHECK(q8_1 == q8_0);
  std::vector<float> q8_k = x;
  round_activations(q8_k.data(), 2, k, ActivationFormat::Q8_K);
  CHECK(std::vector<float>(q8_k.begin(), q8_k.begin() + k) == expected_q8_K(row0));
  CHECK(std::vector<float>(q8_k.begin() + k, q8_k.end()) ==
        expected_q8_K(std::vector<float>(x.begin() + k, x.end())));  // rows are independent
  std::vector<float> f16 = x;
  round_activations(f16.data(), 2, k, ActivationFormat::F16);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(f16[i] == round_to_half(x[i]));
  std::vector<float> bf16 = {1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -3.14159f};
  round_activations(bf16.data(), 1, 3, ActivationFormat::BF16);
  CHECK(bf16 == std::vector<float>{1.0f, 1.0f + 4.0f / 256, -3.140625f});  // ties to even; 8 significant bits
  std::vector<float> exact = x;
  round_activations(exact.data(), 2, k, ActivationFormat::Exact);
  CHECK(exact == x);
  CHECK_THROWS_WITH(round_activations(x.data(), 1, 48, ActivationFormat::Q8_0),
                    Catch::Contains("a row of 48 values is not a whole number of 32-value blocks"));
}

TEST_CASE("the forward pass with llama.cpp arithmetic stays close to the exact one, and the exact one is unchanged") {
  LlamaConfig c = test::small_config(true);
  c.hidden_size = 64;  // rows of whole Q8_0 blocks
  c.intermediate_size = 96;
  c.vocab_size = 48;
  c.max_seq_len = 64;
  Model m = test::random_model(c, 3);
  const std::vector<int> tokens = {1, 5, 9, 2, 47, 30, 11, 8, 3, 3, 20, 40};
  const int n = static_cast<int>(tokens.size());
  std::vector<float> exact, exact_again, llama;
  CpuModel(m).forward(tokens.data(), 1, n, exact);
  CpuModel(m, Activations::Exact).forward(tokens.data(), 1, n, exact_again);
  CHECK(exact_again == exact);
  // F32 weights: only the F16 KV cache applies.
  CpuModel(m, Activations::LlamaCpp).forward(tokens.data(), 1, n, llama);
  CHECK(llama != exact);
  CHECK(test::max_rel_diff(llama, exact) < 1e-3);
  // F16 weights meet F16 activations: the difference grows, still small.
  for (LayerWeights& l : m.layers)
    for (Linear* linear : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      linear->dense = Tensor::from_float(linear->dense.name, linear->dense.shape, linear->dense.to_float(), DType::F16);
  std::vector<float> exact16, llama16;
  CpuModel(m).forward(tokens.data(), 1, n, exact16);
  CpuModel(m, Activations::LlamaCpp).forward(tokens.data(), 1, n, llama16);
  CHECK(llama16 != exact16);
  CHECK(test::max_rel_diff(llama16, exact16) < 1e-2);
}
