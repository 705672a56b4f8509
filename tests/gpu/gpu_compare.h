#pragma once
// The CUDA backend against the CPU forward pass (the reference implementation): per-block
// residual streams, final logits, and lockstep scoring of windows.
//
// Error bounds. The CPU computes in FP32 from the same weight values (FP16 dense weights widened
// exactly; 4-bit weights dequantized). The GPU rounds every GEMM input and output to FP16
// (relative error <= 2^-11 = 4.9e-4 per rounding, ~2.8e-4 rms), about seven roundings in series
// per block, and the W4A16 kernels round each dequantized weight to FP16 once. Expected relative
// (Frobenius) error of the residual stream and logits on these models: ~1e-3. Bounds: 1e-2 (a
// 10x margin); an indexing, masking, RoPE-convention or layout bug gives errors of order 0.1-1.
// Per-token NLL differs by at most ~2x the largest logit error (bound 0.05 nats); FP16 rounding
// is unbiased, so the mean NLL over hundreds of tokens agrees to ~1e-4: perplexity within 0.1%
// (|delta mean NLL| <= 1e-3) is the bound.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "eval/cpu_backend.h"
#include "gpu/cuda_backend.h"
#include "gpu/cuda_backend_testing.h"
#include "model/cpu_forward.h"

namespace qb::test {

constexpr double kResidualTolerance = 1e-2;
constexpr double kLogitTolerance = 1e-2;
constexpr double kTokenNllTolerance = 0.05;
constexpr double kMeanNllTolerance = 1e-3;  // perplexity within 0.1%

// ||a - b|| / ||b||.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

// Deterministic pseudo-random tokens in 0 .. vocab-1.
inline std::vector<int> test_tokens(int n, int vocab, unsigned seed) {
  std::vector<int> tokens(n);
  unsigned state = seed * 2654435761u + 12345u;
  for (auto& t : tokens) {
    state = state * 1664525u + 1013904223u;
    t = static_cast<int>((state >> 8) % static_cast<unsigned>(vocab));
  }
  return tokens;
}

// Runs `tokens` through the CPU and the CUDA forward pass of `model` and checks every block's
// residual stream and the logits.
inline void check_forward_matches_cpu(const Model& model, LogitsBackend& cuda, const std::vector<int>& tokens) {
  const LlamaConfig& c = model.config;
  const int n = static_cast<int>(tokens.size());
  const CpuModel cpu(model);
  std::vector<float> x(size_t(n) * c.hidden_size);
  cpu.embed(tokens.data(), n, x.data());
  const auto residuals = gpu::testing::run_with_residuals(cuda, tokens);
  REQUIRE(residuals.size() == size_t(c.n_layers) + 1);
  CHECK(relative_error(residuals[0], x) < 1e-3);  // FP16 embeddings widened: exact
  for (int l = 0; l < c.n_layers; ++l) {
    block_forward(c, widen_layer(model.layers[l]), x.data(), 1, n);
    const double err = relative_error(residuals[l + 1], x);
    INFO("after block " << l << " of " << n << " tokens: relative error " << err);
    CHECK(err < kResidualTolerance);
  }
  std::vector<float> cpu_logits;
  cpu.forward(tokens.data(), 1, n, cpu_logits);
  const double err = relative_error(gpu::testing::last_logits(cuda), cpu_logits);
  INFO("logits of " << n << " tokens: relative error " << err);
  CHECK(err < kLogitTolerance);
}

// Totals of one method over windows.
struct ScoreTotals {
  double nll_sum = 0.0, kl_sum = 0.0, max_token_nll_diff = 0.0;
  size_t tokens = 0, top1_same = 0;
  double mean_nll() const { return nll_sum / tokens; }
};

// Runs the reference and the method on the CPU and on the GPU in lockstep over `windows` (as the
// eval job does) and returns {CPU totals, GPU totals}; max_token_nll_diff compares the two.
inline std::pair<ScoreTotals, ScoreTotals> lockstep_scores(const Model& reference, const Model& method,
                                                           const std::vector<std::vector<int>>& windows, int first) {
  auto cpu_ref = make_cpu_backend(reference), cpu_method = make_cpu_backend(method);
  auto gpu_ref = make_cuda_backend(reference), gpu_method = make_cuda_backend(method);
  ScoreTotals cpu, gpu;
  for (const auto& tokens : windows) {
    WindowScores c_ref, c_m, g_ref, g_m;
    cpu_ref->run(tokens);
    cpu_ref->score(tokens, first, nullptr, "cpu reference", c_ref);
    cpu_method->run(tokens);
    cpu_method->score(tokens, first, cpu_ref.get(), "cpu method", c_m);
    gpu_ref->run(tokens);
    gpu_ref->score(tokens, first, nullptr, "gpu reference", g_ref);
    gpu_method->run(tokens);
    gpu_method->score(tokens, first, gpu_ref.get(), "gpu method", g_m);
    REQUIRE(g_m.nll.size() == c_m.nll.size());
    REQUIRE(g_m.kl.size() == c_m.kl.size());
    REQUIRE(g_m.top1_same.size() == c_m.top1_same.size());
    for (size_t i = 0; i < c_m.nll.size(); ++i) {
      REQUIRE(std::isfinite(g_m.nll[i]));
      cpu.nll_sum += c_m.nll[i];
      gpu.nll_sum += g_m.nll[i];
      cpu.kl_sum += c_m.kl[i];
      gpu.kl_sum += g_m.kl[i];
      cpu.top1_same += c_m.top1_same[i];
      gpu.top1_same += g_m.top1_same[i];
      gpu.max_token_nll_diff = std::max(gpu.max_token_nll_diff, std::abs(g_m.nll[i] - c_m.nll[i]));
      gpu.max_token_nll_diff = std::max(gpu.max_token_nll_diff, std::abs(g_ref.nll[i] - c_ref.nll[i]));
      CHECK(g_m.kl[i] >= 0.0);
    }
    cpu.tokens += c_m.nll.size();
    gpu.tokens += g_m.nll.size();
  }
  return {cpu, gpu};
}

// The GPU's perplexity, KL and top-1 agreement of `method` (against `reference`) match the CPU's.
inline void check_scores_match_cpu(const Model& reference, const Model& method,
                                   const std::vector<std::vector<int>>& windows, int first) {
  const auto [cpu, gpu] = lockstep_scores(reference, method, windows, first);
  INFO("mean NLL cpu " << cpu.mean_nll() << " gpu " << gpu.mean_nll() << "; max per-token NLL difference "
                       << gpu.max_token_nll_diff << "; KL cpu " << cpu.kl_sum / cpu.tokens << " gpu "
                       << gpu.kl_sum / gpu.tokens << "; top-1 cpu " << cpu.top1_same << " gpu " << gpu.top1_same
                       << " of " << cpu.tokens);
  CHECK(std::abs(gpu.mean_nll() - cpu.mean_nll()) < kMeanNllTolerance);
  CHECK(gpu.max_token_nll_diff < kTokenNllTolerance);
  // KL between two nearby models is a small difference of two noisy log-probabilities: the GPU's
  // FP16 noise (~1e-3 per logit) moves it by second-order amounts.
  const double cpu_kl = cpu.kl_sum / cpu.tokens, gpu_kl = gpu.kl_sum / gpu.tokens;
  CHECK(std::abs(gpu_kl - cpu_kl) <= 0.1 * cpu_kl + 1e-4);
  // Near-ties may flip either way: agreement rates within 2 points.
  CHECK(std::abs(double(gpu.top1_same) - double(cpu.top1_same)) <= 0.02 * cpu.tokens + 1);
}

}  // namespace qb::test
