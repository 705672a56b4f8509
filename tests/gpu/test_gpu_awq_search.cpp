// The GPU AWQ search (src/gpu/awq_search_cuda.h) against the CPU's awq_search_block on
// stories-d256-l2's two blocks, calibrated on TinyStories as `quantize --method awq` does
// (FP16 chain), at 4 bits g128 and 3 bits g64 asymmetric, and at 4 bits g128 symmetric; the GPU
// block forward and its captured inputs against the CPU's block_forward; then the whole
// quantize_model through QuantizeOptions::awq_device (forwards and searches on the GPU).
//
// Tolerance, block forward: relative error (Frobenius) <= 1e-5 of the output and every capture:
// both are FP32 with the same operations, differing only in summation order (~1e-6 measured on
// CPU BLAS against a float64 reference at these sizes); an indexing bug gives errors of order 1.
//
// Tolerance (same decisions): the candidate weights are bit-identical on both (tests/kernels/
// test_fake_quant), the module losses differ by summation order only. So:
//  - every chosen alpha is equal and the scales are bit-identical;
//  - the chosen clip threshold is equal in at least 99.5% of the (output channel, group) cells of
//    each linear: a cell may flip only where two ratios' errors agree to ~1e-6 relative (the float
//    sums of cuBLAS and OpenBLAS differ at that level), i.e. where either choice is as good;
//  - each linear's mean clip ratio agrees within 0.005.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "datasets/tokenizer.h"
#include "gpu/awq_search_cuda.h"
#include "kernels/device_probe.h"
#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "model/load.h"
#include "quant/awq.h"
#include "quant/calibration.h"
#include "quant/quantize.h"
#include "test_support.h"

using namespace qb;

static const char* const kModel = "models/stories-d256-l2";
static const char* const kTokenizer = "models/stories-d256-l2/tokenizer.model";
static const char* const kText = "text/tinystories/tinystories_train_head.txt";

std::string qb_test_skip_reason() {
  if (auto r = kernels::cuda_unavailable_reason(); !r.empty()) return r;
  for (const char* f : {kModel, kTokenizer, kText})
    if (auto r = test::require_data(f); !r.empty()) return r;
  return "";
}

namespace {

constexpr double kSameClipFraction = 0.995;
constexpr double kClipRatioMeanTolerance = 0.005;

void require_same_decisions(const AwqBlockResult& gpu, const AwqBlockResult& cpu) {
  for (int t = 0; t < kNumLinears; ++t) {
    INFO(kBlockLinears[t].hf_name);
    CHECK(gpu.alpha[t] == cpu.alpha[t]);
    CHECK(gpu.clip_max[t].size() == cpu.clip_max[t].size());
    if (gpu.clip_max[t].size() != cpu.clip_max[t].size() || cpu.clip_max[t].empty()) continue;
    size_t same = 0;
    for (size_t i = 0; i < cpu.clip_max[t].size(); ++i) same += gpu.clip_max[t][i] == cpu.clip_max[t][i];
    const double fraction = static_cast<double>(same) / cpu.clip_max[t].size();
    std::printf("%-18s alpha %.2f, clip ratio mean gpu %.4f cpu %.4f, same threshold in %.2f%% of %zu cells\n",
                kBlockLinears[t].hf_name, cpu.alpha[t], gpu.clip_ratio_mean[t], cpu.clip_ratio_mean[t],
                100 * fraction, cpu.clip_max[t].size());
    CHECK(fraction >= kSameClipFraction);
    CHECK(std::abs(gpu.clip_ratio_mean[t] - cpu.clip_ratio_mean[t]) <= kClipRatioMeanTolerance);
  }
  CHECK(gpu.scales.qkv == cpu.scales.qkv);
  CHECK(gpu.scales.o == cpu.scales.o);
  CHECK(gpu.scales.gate_up == cpu.scales.gate_up);
  CHECK(gpu.scales.down == cpu.scales.down);
}

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    norm += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

}  // namespace

TEST_CASE("GPU block forward and its captured inputs match the CPU's") {
  const Model model = load_model(test::data_file(kModel));
  const LlamaConfig& c = model.config;
  const int n_seq = 3, seq_len = 200;
  const auto tokenizer = open_tokenizer(test::data_file(kTokenizer));
  const CalibrationSet calib = load_calibration(test::data_file(kText), *tokenizer, n_seq, seq_len, "", false);
  std::vector<float> x(static_cast<size_t>(n_seq) * seq_len * c.hidden_size);
  CpuModel(model).embed(calib.tokens.data(), n_seq * seq_len, x.data());
  const AwqDevice gpu = make_cuda_awq(0);
  for (int i = 0; i < c.n_layers; ++i) {
    INFO("block " << i);
    const CpuLayer layer = widen_layer(model.layers[i]);
    std::vector<float> y_cpu = x, y_gpu = x;
    BlockInputs cpu, on_gpu;
    block_forward(c, layer, y_cpu.data(), n_seq, seq_len, &cpu);
    gpu.block_forward(c, layer, y_gpu.data(), n_seq, seq_len, &on_gpu);
    CHECK(on_gpu.x == cpu.x);
    CHECK(relative_error(y_gpu, y_cpu) <= 1e-5);
    CHECK(relative_error(on_gpu.attn_in, cpu.attn_in) <= 1e-5);
    CHECK(relative_error(on_gpu.o_in, cpu.o_in) <= 1e-5);
    CHECK(relative_error(on_gpu.mlp_in, cpu.mlp_in) <= 1e-5);
    CHECK(relative_error(on_gpu.down_in, cpu.down_in) <= 1e-5);
    x = y_cpu;
  }
}

TEST_CASE("GPU AWQ search picks the CPU's alphas and clip thresholds on stories-d256-l2") {
  const Model model = load_model(test::data_file(kModel));
  const LlamaConfig& c = model.config;
  const auto tokenizer = open_tokenizer(test::data_file(kTokenizer));
  const int n_seq = 8, seq_len = 256;
  const CalibrationSet calib = load_calibration(test::data_file(kText), *tokenizer, n_seq, seq_len, "", false);
  const CpuModel cpu_model(model);
  std::vector<float> x(static_cast<size_t>(n_seq) * seq_len * c.hidden_size);
  cpu_model.embed(calib.tokens.data(), n_seq * seq_len, x.data());
  const AwqDevice gpu = make_cuda_awq(0);

  struct Setting {
    int bits, group_size;
    bool symmetric;
  };
  for (const Setting s : {Setting{4, 128, false}, Setting{3, 64, false}, Setting{4, 128, true}}) {
    AwqOptions options;
    options.spec.bits = s.bits;
    options.spec.group_size = s.group_size;
    options.spec.symmetric = s.symmetric;
    std::vector<float> block_x = x;
    for (int i = 0; i < c.n_layers; ++i) {
      INFO("block " << i << ", " << s.bits << " bits, group " << s.group_size << ", symmetric " << s.symmetric);
      std::printf("block %d, w%dg%d%s\n", i, s.bits, s.group_size, s.symmetric ? " symmetric" : "");
      const CpuLayer layer = widen_layer(model.layers[i]);
      BlockInputs inputs;
      block_forward(c, layer, block_x.data(), n_seq, seq_len, &inputs);  // the FP16 chain, as llm-awq
      const AwqBlockResult cpu = awq_search_block(c, layer, inputs, n_seq, seq_len, options);
      require_same_decisions(gpu.search(c, layer, inputs, n_seq, seq_len, options), cpu);
    }
  }
}

TEST_CASE("quantize_model with the GPU search gives the CPU's AWQ model") {
  const Model model = load_model(test::data_file(kModel));
  const auto tokenizer = open_tokenizer(test::data_file(kTokenizer));
  QuantizeOptions o;
  o.family = MethodFamily::Awq;
  o.calib_path = test::data_file(kText);
  o.calib_samples = 8;
  o.calib_seq_len = 256;
  const QuantizeResult cpu = quantize_model(model, o, tokenizer.get());
  o.awq_device = make_cuda_awq(0);
  const QuantizeResult gpu = quantize_model(model, o, tokenizer.get());
  // Codes and scales: equal wherever the clip decision is (>= 99.5% of groups, see above).
  for (int i = 0; i < model.config.n_layers; ++i) {
    const auto a = block_linears(gpu.model.layers[i]), b = block_linears(cpu.model.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      INFO("layer " << i << " " << kBlockLinears[t].hf_name);
      const QuantizedWeight &qa = *a[t]->quant, &qb = *b[t]->quant;
      REQUIRE(qa.scales.size() == qb.scales.size());
      size_t same = 0;
      for (size_t g = 0; g < qa.scales.size(); ++g) same += qa.scales[g] == qb.scales[g] && qa.zeros[g] == qb.zeros[g];
      CHECK(static_cast<double>(same) / qa.scales.size() >= kSameClipFraction);
    }
  }
}
