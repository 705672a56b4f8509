// The CPU forward pass computes from weights as stored (F16, BF16, GGUF blocks, quantized codes
// with kept FP16 columns), widened a tile at a time: its logits equal those of the same block
// code on the whole model widened to FP32 up front (widen_layer), and its run state, reused
// across windows of other lengths and batch shapes, leaves no trace in later results.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>

#include "layouts/ggml_quants.h"
#include "model/cpu_forward.h"
#include "quant/rtn.h"
#include "quant/rtn_keep.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

namespace {

// w stored as Q8_0 blocks (ggml's reference quantizer), as a GGUF file holds it.
Tensor q8_0_tensor(const Tensor& w) {
  const std::vector<float> values = w.to_float();
  const int64_t n = w.shape[0], k = w.shape[1];
  auto blocks = std::shared_ptr<ggml::block_q8_0[]>(new ggml::block_q8_0[n * k / 32]);
  for (int64_t r = 0; r < n; ++r) ggml::quantize_row_q8_0_ref(&values[r * k], &blocks[r * k / 32], k);
  Tensor t = w;
  t.dtype = DType::Q8_0;
  t.data = blocks.get();
  t.owner = std::shared_ptr<const void>(blocks, blocks.get());
  return t;
}

// w stored as BF16: the top half of each float's bits.
Tensor bf16_tensor(const Tensor& w) {
  const std::vector<float> values = w.to_float();
  auto bits = std::shared_ptr<uint16_t[]>(new uint16_t[values.size()]);
  for (size_t i = 0; i < values.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &values[i], 4);
    bits[i] = static_cast<uint16_t>(u >> 16);
  }
  Tensor t = w;
  t.dtype = DType::BF16;
  t.data = bits.get();
  t.owner = std::shared_ptr<const void>(bits, bits.get());
  return t;
}

// Every storage the forward pass reads, one per linear of each layer, and an F16 lm_head.
Model mixed_storage_model() {
  LlamaConfig c = test::small_config(false);
  c.hidden_size = 64;  // rows of whole 32-value blocks
  c.intermediate_size = 96;
  c.vocab_size = 80;
  Model m = test::random_model(c, 11);
  QuantSpec spec;
  spec.group_size = 32;
  for (LayerWeights& l : m.layers) {
    l.q_proj.dense = Tensor::from_float(l.q_proj.dense.name, l.q_proj.dense.shape, l.q_proj.dense.to_float(), DType::F16);
    l.k_proj.dense = bf16_tensor(l.k_proj.dense);
    l.o_proj.dense = q8_0_tensor(l.o_proj.dense);
    for (Linear* quantized : {&l.v_proj, &l.down_proj}) {
      const std::vector<float> w = quantized->dense.to_float();
      const int n = quantized->out_features(), k = quantized->in_features();
      quantized->quant = std::make_shared<QuantizedWeight>(quantize_rtn(w.data(), n, k, spec));
      quantized->kept = std::make_shared<KeptColumns>(keep_columns(w.data(), n, k, {3, 17, 40}));
      quantized->dense = Tensor();
    }
  }
  m.lm_head = Tensor::from_float(m.lm_head.name, m.lm_head.shape, m.lm_head.to_float(), DType::F16);
  return m;
}

// The model widened whole, then the same block code: the path of AWQ/GPTQ calibration.
std::vector<float> widened_forward(const Model& m, const std::vector<int>& tokens, int n_seq, int seq_len) {
  const LlamaConfig& c = m.config;
  const int rows = n_seq * seq_len;
  const std::vector<float> embed = m.embed_tokens.to_float();
  std::vector<float> x(size_t(rows) * c.hidden_size);
  for (int t = 0; t < rows; ++t)
    std::memcpy(&x[size_t(t) * c.hidden_size], &embed[size_t(tokens[t]) * c.hidden_size], sizeof(float) * c.hidden_size);
  for (const LayerWeights& l : m.layers) block_forward(c, widen_layer(l), x.data(), n_seq, seq_len);
  std::vector<float> xn(x.size()), logits(size_t(rows) * c.vocab_size);
  rmsnorm(xn.data(), x.data(), m.norm.to_float().data(), rows, c.hidden_size, c.rms_norm_eps);
  linear(logits.data(), xn.data(), m.lm_head.to_float().data(), rows, c.vocab_size, c.hidden_size);
  return logits;
}

std::vector<int> some_tokens(int n, int vocab) {
  std::vector<int> tokens(n);
  for (int i = 0; i < n; ++i) tokens[i] = (i * 37 + 5) % vocab;
  return tokens;
}

}  // namespace

TEST_CASE("weights as stored give the logits of the model widened to FP32") {
  const Model m = mixed_storage_model();
  const std::vector<int> tokens = some_tokens(40, m.config.vocab_size);
  std::vector<float> as_stored;
  CpuModel(m).forward(tokens.data(), 1, 40, as_stored);
  const std::vector<float> widened = widened_forward(m, tokens, 1, 40);
  REQUIRE(as_stored.size() == widened.size());
  CHECK(test::max_rel_diff(as_stored, widened) < 1e-5);
  // Each storage changes the model: the comparison would see a linear read in the wrong form.
  const std::vector<float> plain = widened_forward(test::random_model(m.config, 11), tokens, 1, 40);
  CHECK(test::max_rel_diff(plain, widened) > 1e-3);
}

TEST_CASE("the run state serves windows of any length and batch shape in any order") {
  const Model m = mixed_storage_model();
  const int vocab = m.config.vocab_size;
  const std::vector<int> long_window = some_tokens(50, vocab), short_window = some_tokens(9, vocab);
  const std::vector<int> batch = some_tokens(3 * 13, vocab);
  auto fresh = [&](const std::vector<int>& tokens, int n_seq, int seq_len) {
    std::vector<float> logits;
    CpuModel(m).forward(tokens.data(), n_seq, seq_len, logits);
    return logits;
  };
  const std::vector<float> long_fresh = fresh(long_window, 1, 50), short_fresh = fresh(short_window, 1, 9),
                           batch_fresh = fresh(batch, 3, 13);
  // One model through all three: the longer window's leftovers (scores past the causal edge,
  // activations past the last row) sit in the state while the shorter ones run.
  CpuModel reused(m);
  std::vector<float> logits;
  reused.forward(long_window.data(), 1, 50, logits);
  CHECK(logits == long_fresh);
  reused.forward(short_window.data(), 1, 9, logits);
  CHECK(logits == short_fresh);
  reused.forward(batch.data(), 3, 13, logits);
  CHECK(logits == batch_fresh);
  reused.forward(long_window.data(), 1, 50, logits);
  CHECK(logits == long_fresh);
  // A batch of sequences is each sequence on its own (to float rounding: without AVX-512,
  // OpenBLAS may sum a row in another order when the GEMM has more rows).
  for (int s = 0; s < 3; ++s) {
    const std::vector<int> one(batch.begin() + s * 13, batch.begin() + (s + 1) * 13);
    const std::vector<float> alone = fresh(one, 1, 13);
    CHECK(test::max_rel_diff(std::vector<float>(batch_fresh.begin() + size_t(s) * 13 * vocab,
                                                batch_fresh.begin() + size_t(s + 1) * 13 * vocab),
                             alone) < 1e-5);
  }
}
