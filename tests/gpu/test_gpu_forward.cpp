// The CUDA backend against the CPU forward pass on random models: every block's residual stream
// and the logits (both RoPE conventions, GQA and MHA, tied and untied heads, an odd hidden size),
// 4-bit weights with group sizes 32/64/128 through all three W4A16 kernels (window lengths 5, 300
// and 1100 select skinny, tensor-core and dequantize+cuBLAS), perplexity/KL/top-1 in lockstep,
// the memory report, and bad input; Qwen2 biases and Llama-3 RoPE. Error bounds: see gpu_compare.h.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "gpu_compare.h"
#include "kernels/device_probe.h"
#include "quant/quantize.h"
#include "random_model.h"

using namespace qb;

std::string qb_test_skip_reason() { return kernels::cuda_unavailable_reason(); }

namespace {

// dim 256, head_dim 64: every k a multiple of 128 except down_proj's intermediate_size when chosen odd.
LlamaConfig quant_config(int intermediate_size, bool rope_interleaved, int n_kv_heads = 2) {
  LlamaConfig c = test::small_config(rope_interleaved);
  c.hidden_size = 256;
  c.intermediate_size = intermediate_size;
  c.n_heads = 4;
  c.n_kv_heads = n_kv_heads;
  c.vocab_size = 320;
  c.max_seq_len = 2048;
  return c;
}

Model rtn(const Model& fp16, int group_size, bool symmetric) {
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.bits = 4;
  o.group_size = group_size;
  o.symmetric = symmetric;
  return quantize_model(fp16, o, nullptr).model;
}

std::vector<std::vector<int>> test_windows(int count, int length, int vocab) {
  std::vector<std::vector<int>> windows;
  for (int w = 0; w < count; ++w) windows.push_back(test::test_tokens(length, vocab, 100 + w));
  return windows;
}

}  // namespace

TEST_CASE("FP16: every block and the logits match the CPU") {
  for (bool interleaved : {false, true}) {
    for (bool tied : {false, true}) {
      LlamaConfig c = test::small_config(interleaved);  // dim 32, hidden 44, 4 heads / 2 kv heads
      c.tie_word_embeddings = tied;
      const Model model = to_fp16(test::random_model(c, 11));
      auto cuda = make_cuda_backend(model);
      INFO("small model, interleaved RoPE " << interleaved << ", tied " << tied);
      test::check_forward_matches_cpu(model, *cuda, test::test_tokens(61, c.vocab_size, 1));
    }
    // Multi-head (no GQA), head_dim 64, 300 tokens: three key chunks in the attention kernel.
    const Model mha = to_fp16(test::random_model(quant_config(384, interleaved, 4), 12));
    auto cuda = make_cuda_backend(mha);
    INFO("MHA model, interleaved RoPE " << interleaved);
    test::check_forward_matches_cpu(mha, *cuda, test::test_tokens(300, mha.config.vocab_size, 2));
  }
}

TEST_CASE("4-bit: every block and the logits match the CPU for g32/g64/g128 and every W4A16 kernel") {
  struct Case {
    int group_size, intermediate_size;
    bool symmetric;
  };
  for (const Case& k : {Case{32, 352, false}, Case{64, 384, false}, Case{128, 384, false}, Case{128, 384, true}}) {
    const Model fp16 = to_fp16(test::random_model(quant_config(k.intermediate_size, k.group_size == 64), 21));
    const Model model = rtn(fp16, k.group_size, k.symmetric);
    auto cuda = make_cuda_backend(model);
    // 300: tensor-core kernel; 1100: dequantize + cuBLAS (buffers grow); 5: skinny (they are reused).
    for (int length : {300, 1100, 5}) {
      INFO("g" << k.group_size << " hidden " << k.intermediate_size << " symmetric " << k.symmetric << ", " << length
               << " tokens");
      test::check_forward_matches_cpu(model, *cuda, test::test_tokens(length, model.config.vocab_size, length));
    }
  }
}

TEST_CASE("Qwen2 q/k/v biases and Llama-3 scaled RoPE (tied): every block and the logits match the CPU") {
  LlamaConfig qwen2 = quant_config(384, false);
  qwen2.attention_bias = true;
  qwen2.rope_theta = 1000000.0f;
  LlamaConfig llama32 = test::with_llama3_rope(quant_config(384, false), 32.0f, 256);  // head_dim 64: all three bands
  llama32.tie_word_embeddings = true;
  for (const LlamaConfig& c : {qwen2, llama32}) {
    const Model fp16 = to_fp16(test::random_model(c, 51));
    for (const Model& model : {fp16, rtn(fp16, 128, false)}) {
      auto cuda = make_cuda_backend(model);
      INFO("attention_bias " << c.attention_bias << ", llama3 RoPE " << c.rope_llama3 << ", quantized "
                             << bool(model.layers[0].q_proj.quant));
      test::check_forward_matches_cpu(model, *cuda, test::test_tokens(300, c.vocab_size, 3));
    }
  }
}

TEST_CASE("perplexity, KL and top-1 agreement match the CPU in lockstep") {
  const Model fp16 = to_fp16(test::random_model(quant_config(384, false), 31));
  const auto windows = test_windows(4, 257, fp16.config.vocab_size);
  SECTION("fp16 against itself") { test::check_scores_match_cpu(fp16, fp16, windows, 1); }
  SECTION("rtn w4 g128") { test::check_scores_match_cpu(fp16, rtn(fp16, 128, false), windows, 1); }
  SECTION("rtn w4 g32 symmetric, scoring from position 100") {
    test::check_scores_match_cpu(fp16, rtn(fp16, 32, true), windows, 100);
  }
}

TEST_CASE("a backend scored against itself has KL 0 and full agreement") {
  const Model fp16 = to_fp16(test::random_model(quant_config(384, true), 32));
  auto cuda = make_cuda_backend(fp16);
  const auto tokens = test::test_tokens(129, fp16.config.vocab_size, 5);
  cuda->run(tokens);
  WindowScores s;
  cuda->score(tokens, 1, cuda.get(), "self", s);
  REQUIRE(s.kl.size() == 128);
  for (size_t i = 0; i < s.kl.size(); ++i) {
    CHECK(s.kl[i] == 0.0);
    CHECK(s.top1_same[i] == 1);
  }
}

TEST_CASE("memory report: weights as stored, activations and peak measured") {
  LlamaConfig c = quant_config(384, false);
  c.vocab_size = 32000;  // 16 MB embeddings and lm_head, 140 MB of logits at 1100 tokens
  const Model fp16 = to_fp16(test::random_model(c, 41));
  const Model q4 = rtn(fp16, 128, false);
  const int64_t mib2 = 2 << 20;
  int64_t requested_fp16 = 0;
  for (const Model* m : {&fp16, &q4}) {
    auto cuda = make_cuda_backend(*m);
    for (int length : {1100, 257}) {
      const auto tokens = test::test_tokens(length, c.vocab_size, 7);
      cuda->run(tokens);
      WindowScores s;
      cuda->score(tokens, 1, nullptr, "memory", s);
    }
    const auto mem = cuda->memory();
    INFO(mem.dump());
    const int64_t requested = mem["weight_bytes_requested"], device = mem["weight_bytes_device"];
    CHECK(requested == static_cast<int64_t>(m->weight_bytes()));  // every dense tensor is F16
    // Allocation granularity (2 MiB pages) moves the measurement by at most a page per buffer.
    const int64_t buffers = 3 + c.n_layers * (2 + 7 * (m == &q4 ? 3 : 1));
    CHECK(std::abs(device - requested) <= (buffers + 1) * mib2);
    const int64_t logits_bytes = int64_t(1100) * c.vocab_size * 4;
    CHECK(mem["activation_bytes"].get<int64_t>() >= logits_bytes);
    CHECK(mem["device_bytes_free_before"].get<int64_t>() > 0);
    CHECK(mem["device_bytes_free_before"].get<int64_t>() <= mem["device_bytes_total"].get<int64_t>());
    CHECK(mem["max_window_tokens"] == 1100);
    CHECK(mem["gpu_seconds"].get<double>() > 0.0);
    if (m == &fp16) requested_fp16 = requested;
    else CHECK(requested < requested_fp16);
  }
}

TEST_CASE("bad input gives one-line errors") {
  LlamaConfig c = test::small_config(false);
  const Model fp16 = to_fp16(test::random_model(c, 51));
  auto cuda = make_cuda_backend(fp16);
  const auto tokens = test::test_tokens(20, c.vocab_size, 9);
  WindowScores s;
  SECTION("a CPU reference") {
    auto cpu = make_cpu_backend(fp16);
    cpu->run(tokens);
    cuda->run(tokens);
    CHECK_THROWS_WITH(cuda->score(tokens, 1, cpu.get(), "window 3 (rtn)", s),
                      "window 3 (rtn): the reference backend runs on another device");
  }
  SECTION("scoring tokens that were not run") {
    cuda->run(tokens);
    auto other = tokens;
    other[4] = (other[4] + 1) % c.vocab_size;
    CHECK_THROWS_WITH(cuda->score(other, 1, nullptr, "w", s), Catch::Contains("same tokens"));
    CHECK_THROWS_WITH(cuda->score(tokens, 0, nullptr, "w", s), Catch::Contains("first scored target 0"));
  }
  SECTION("a reference that ran other tokens") {
    auto ref = make_cuda_backend(fp16);
    ref->run(test::test_tokens(20, c.vocab_size, 10));
    cuda->run(tokens);
    CHECK_THROWS_WITH(cuda->score(tokens, 1, ref.get(), "w", s), Catch::Contains("other tokens"));
  }
  SECTION("token outside the vocabulary") {
    auto bad = tokens;
    bad[3] = c.vocab_size;
    CHECK_THROWS_WITH(cuda->run(bad), Catch::Contains("outside the vocabulary of 96"));
  }
  SECTION("non-finite logits") {
    Model nan_model = fp16;
    std::vector<float> embed = fp16.embed_tokens.to_float();
    for (int d = 0; d < c.hidden_size; ++d) embed[size_t(7) * c.hidden_size + d] = std::numeric_limits<float>::quiet_NaN();
    nan_model.embed_tokens = Tensor::from_float(fp16.embed_tokens.name, fp16.embed_tokens.shape, embed, DType::F16);
    auto nan_backend = make_cuda_backend(nan_model);
    auto with_nan = tokens;
    with_nan[5] = 7;
    nan_backend->run(with_nan);
    CHECK_THROWS_WITH(nan_backend->score(with_nan, 1, nullptr, "window 0 (fp16)", s),
                      "window 0 (fp16): non-finite logits (NaN or Inf); the window is not averaged in");
  }
}
