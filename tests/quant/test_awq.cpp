// The AWQ search on small random blocks: folding the scales keeps the block's function, o_proj is
// skipped under GQA as in llm-awq, alpha 0 is plain RTN, and with planted outlier input channels
// the search beats RTN.
#include <catch2/catch.hpp>

#include "test_support.h"

#include <cmath>
#include <random>

#include "model/cpu_forward.h"
#include "quant/awq.h"
#include "random_model.h"

using namespace qb;

namespace {

LlamaConfig block_config(bool gqa) {
  LlamaConfig c = test::small_config(false);  // dim 32, 4 heads; GQA with 2 kv heads
  c.intermediate_size = 48;
  if (!gqa) c.n_kv_heads = c.n_heads;
  return c;
}

std::vector<float> random_activations(size_t n, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = dist(rng);
  return x;
}

double sq_error(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return s;
}

// Searches block 0 of a random model (seed) on random inputs (seed + 1) of 2 sequences of 32 tokens.
struct SearchedBlock {
  CpuLayer layer;
  AwqBlockResult result;
};
SearchedBlock search_random_block(const LlamaConfig& c, unsigned seed, const AwqOptions& options) {
  const CpuLayer layer = widen_layer(test::random_model(c, seed).layers[0]);
  const int n_seq = 2, seq_len = 32;
  std::vector<float> x = random_activations(static_cast<size_t>(n_seq) * seq_len * c.hidden_size, seed + 1, 1.0f);
  BlockInputs inputs;
  block_forward(c, layer, x.data(), n_seq, seq_len, &inputs);
  return {layer, awq_search_block(c, layer, inputs, n_seq, seq_len, options)};
}

}  // namespace

TEST_CASE("folding AWQ scales leaves the block's output unchanged (before rounding), within 1e-5") {
  for (const auto& [gqa, bias] : {std::pair{false, false}, {true, false}, {false, true}}) {
    INFO("GQA " << gqa << ", q/k/v biases " << bias);
    LlamaConfig c = block_config(gqa);
    c.attention_bias = bias;  // v_proj's bias shrinks with its rows when o is scaled
    const Model m = test::random_model(c, gqa ? 31 : 32);
    const CpuLayer layer = widen_layer(m.layers[0]);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> log_scale(std::log(0.2f), std::log(5.0f));
    auto scales = [&](int n) {
      std::vector<float> s(n);
      for (auto& v : s) v = std::exp(log_scale(rng));
      return s;
    };
    BlockScales s;
    s.qkv = scales(c.hidden_size);
    if (!gqa) s.o = scales(c.hidden_size);
    s.gate_up = scales(c.hidden_size);
    s.down = scales(c.intermediate_size);
    CpuLayer scaled = layer;
    apply_block_scales(scaled, s);
    CHECK(scaled.wq != layer.wq);
    CHECK((scaled.bv != layer.bv) == bias);
    const int n_seq = 2, seq_len = 16;
    std::vector<float> a = random_activations(static_cast<size_t>(n_seq) * seq_len * c.hidden_size, 7, 1.0f), b = a;
    block_forward(c, layer, a.data(), n_seq, seq_len);
    block_forward(c, scaled, b.data(), n_seq, seq_len);
    CHECK(qb::test::max_rel_diff(b, a) < 1e-5);
  }
}

TEST_CASE("o_proj is scaled only when v_proj and o_proj have the same shape (llm-awq)") {
  for (bool gqa : {false, true}) {
    const LlamaConfig c = block_config(gqa);
    AwqOptions options;
    options.spec = {4, 16, false};
    const AwqBlockResult r = search_random_block(c, 8, options).result;
    CHECK(r.scales.o.empty() == gqa);
    CHECK((r.alpha[kO] < 0) == gqa);
    CHECK(r.scales.qkv.size() == static_cast<size_t>(c.hidden_size));
    CHECK(r.scales.down.size() == static_cast<size_t>(c.intermediate_size));
    CHECK(r.clip_max[kQ].empty());  // q and k are not clipped
    CHECK(r.clip_max[kK].empty());
    for (int t : {kV, kO, kGate, kUp, kDown}) {
      CHECK(r.clip_ratio_mean[t] <= 1.0);
      CHECK(r.clip_ratio_mean[t] >= 0.55 - 1e-6);
    }
  }
}

TEST_CASE("alpha 0 is plain RTN: a search over alpha 0 alone keeps every scale at 1 and the weights as they are") {
  AwqOptions options;
  options.spec = {4, 16, false};
  options.n_grid = 1;  // the only candidate is alpha 0
  options.clip = false;
  const auto [layer, r] = search_random_block(block_config(false), 11, options);
  for (int t = 0; t < kNumLinears; ++t) CHECK(r.alpha[t] == 0.0);
  for (const auto* s : {&r.scales.qkv, &r.scales.o, &r.scales.gate_up, &r.scales.down}) {
    REQUIRE(!s->empty());
    for (float v : *s) CHECK(v == 1.0f);
  }
  const auto scaled = block_linears(r.scaled), original = block_linears(layer);
  for (int t = 0; t < kNumLinears; ++t) CHECK(*scaled[t] == *original[t]);
}

TEST_CASE("with planted outlier input channels AWQ's output error is below RTN's") {
  const LlamaConfig c = block_config(false);
  for (unsigned seed : {1u, 2u, 3u}) {
    const CpuLayer layer = widen_layer(test::random_model(c, 40 + seed).layers[0]);
    const int n_seq = 4, seq_len = 32, rows = n_seq * seq_len;
    std::vector<float> x = random_activations(static_cast<size_t>(rows) * c.hidden_size, seed, 1.0f);
    BlockInputs in;
    block_forward(c, layer, x.data(), n_seq, seq_len, &in);
    // A few input channels of down_proj 30x larger than the rest, as the salient channels of LLMs.
    for (int r = 0; r < rows; ++r)
      for (int ch : {3, 17, 40}) in.down_in[static_cast<size_t>(r) * c.intermediate_size + ch] *= 30.0f;
    for (bool clip : {false, true}) {
      AwqOptions options;
      options.spec = {3, 16, false};
      options.clip = clip;
      const AwqBlockResult r = awq_search_block(c, layer, in, n_seq, seq_len, options);
      CHECK(r.alpha[kDown] > 0.0);
      // down_proj's effective weight in the original coordinates: Q(W diag(s)) diag(s)^-1.
      const int n = c.hidden_size, k = c.intermediate_size;
      std::vector<float> rtn(layer.w_down.size()), awq(layer.w_down.size());
      fake_quantize(layer.w_down.data(), n, k, options.spec, rtn.data());
      fake_quantize(r.scaled.w_down.data(), n, k, options.spec, awq.data(),
                    clip ? r.clip_max[kDown].data() : nullptr);
      for (int o = 0; o < n; ++o)
        for (int i = 0; i < k; ++i) awq[static_cast<size_t>(o) * k + i] /= r.scales.down[i];
      std::vector<float> y(static_cast<size_t>(rows) * n), y_rtn(y.size()), y_awq(y.size());
      linear(y.data(), in.down_in.data(), layer.w_down.data(), rows, n, k);
      linear(y_rtn.data(), in.down_in.data(), rtn.data(), rows, n, k);
      linear(y_awq.data(), in.down_in.data(), awq.data(), rows, n, k);
      const double err_rtn = sq_error(y_rtn, y), err_awq = sq_error(y_awq, y);
      CHECK(err_awq < err_rtn);
    }
  }
}
