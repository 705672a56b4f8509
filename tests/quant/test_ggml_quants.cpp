// llama.cpp's quantizers (layouts/ggml_quants.h), its type mixes (quant/gguf_quantize.h) and the
// GGUF writer (model/gguf_writer.h) without shared data: hand-made rows quantized then dequantized
// (ggml::dequantize_row, written independently) within each type's error bound, hand-computed
// blocks, the fallback types of rows that are not whole blocks, and a written file read back by
// the GGUF reader. Byte identity with llama.cpp's own files: test_gguf_stories_d256.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "common/half.h"
#include "layouts/ggml_quants.h"
#include "model/block_linears.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "quant/gguf_quantize.h"
#include "quant/quantize.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;
using ggml::Type;

namespace {

std::vector<float> gaussian_row(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float& v : x) v = dist(rng);
  return x;
}

std::vector<float> round_trip(Type type, const std::vector<float>& x) {
  const int64_t k = static_cast<int64_t>(x.size());
  std::vector<uint8_t> blocks(k / ggml::block_elems(type) * ggml::block_bytes(type));
  ggml::quantize_rows(type, x.data(), blocks.data(), 1, k);
  std::vector<float> y(k);
  ggml::dequantize_row(type, blocks.data(), y.data(), k);
  return y;
}

double rms_error(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, s = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    s += double(b[i]) * b[i];
  }
  return std::sqrt(e / s);
}

}  // namespace

TEST_CASE("quantize then dequantize stays within each type's rounding error", "[ggml_quants]") {
  // RMS error relative to the row's RMS on N(0, 1) rows: a uniform quantizer with step s has RMS
  // error s / sqrt(12); the bounds are that with the step a block's range gives, plus margin.
  const std::vector<std::pair<Type, double>> bounds = {
      {Type::Q8_0, 0.01}, {Type::Q6_K, 0.03}, {Type::Q5_0, 0.07}, {Type::Q5_1, 0.07}, {Type::Q5_K, 0.07},
      {Type::Q4_0, 0.13}, {Type::Q4_1, 0.13}, {Type::Q4_K, 0.13}, {Type::Q3_K, 0.25}, {Type::Q2_K, 0.5},
      {Type::F16, 1e-3}};
  const std::vector<float> x = gaussian_row(4 * 256, 7);
  for (const auto& [type, bound] : bounds) {
    INFO(ggml::type_name(type));
    const double err = rms_error(round_trip(type, x), x);
    CHECK(err < bound);
    CHECK(err > 0);
  }
}

TEST_CASE("a zero row stays zero in every type", "[ggml_quants]") {
  const std::vector<float> x(512, 0.0f);
  for (Type type : {Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0, Type::Q2_K, Type::Q3_K,
                    Type::Q4_K, Type::Q5_K, Type::Q6_K}) {
    INFO(ggml::type_name(type));
    for (float v : round_trip(type, x)) REQUIRE(v == 0.0f);
  }
}

TEST_CASE("q8_0 and q4_0 blocks of a ramp, computed by hand", "[ggml_quants]") {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);  // amax 16 at j = 0 (value -16)
  ggml::block_q8_0 q8;
  ggml::quantize_row_q8_0_ref(x.data(), &q8, 32);
  CHECK(q8.d == float_to_half(16.0f / 127));
  for (int j = 0; j < 32; ++j) CHECK(q8.qs[j] == static_cast<int>(std::lround((j - 16) * 127.0 / 16)));

  // q4_0: d = max / -8 with max the signed extreme -16, so d = 2 and x = d (q - 8): q = x / 2 + 8,
  // halves rounded up (x / 2 + 8.5 truncated), 15 at most.
  ggml::block_q4_0 q4;
  ggml::quantize_row_q4_0_ref(x.data(), &q4, 32);
  CHECK(half_to_float(q4.d) == 2.0f);
  for (int j = 0; j < 16; ++j) {
    const int lo = std::min(15, static_cast<int>((j - 16) / 2.0 + 8.5));
    const int hi = std::min(15, static_cast<int>((j + 16 - 16) / 2.0 + 8.5));
    CHECK((q4.qs[j] & 0xF) == lo);
    CHECK((q4.qs[j] >> 4) == hi);
  }
}

TEST_CASE("activation quantizers: q8_1 sums and q8_K block sums", "[ggml_quants]") {
  const std::vector<float> x = gaussian_row(512, 3);
  std::vector<ggml::block_q8_1> q81(512 / 32);
  ggml::quantize_row_q8_1_ref(x.data(), q81.data(), 512);
  for (size_t i = 0; i < q81.size(); ++i) {
    // s is the sum of the codes times the float scale (before d is rounded to FP16).
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[32 * i + j]));
    int sum = 0;
    for (int8_t q : q81[i].qs) sum += q;
    CHECK(q81[i].d == float_to_half(amax / 127));
    CHECK(q81[i].s == float_to_half(sum * (amax / 127)));
  }
  std::vector<ggml::block_q8_K> q8k(2);
  ggml::quantize_row_q8_K_ref(x.data(), q8k.data(), 512);
  for (int i = 0; i < 2; ++i) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += q8k[i].qs[16 * g + j];
      CHECK(q8k[i].bsums[g] == sum);
    }
    for (int j = 0; j < 256; ++j) CHECK(std::abs(q8k[i].d * q8k[i].qs[j] - x[256 * i + j]) <= 0.5f * std::abs(q8k[i].d) * 1.0001f);
  }
}

TEST_CASE("rows that are not whole blocks take llama.cpp's fallback types", "[gguf_quantize]") {
  LlamaConfig c = test::small_config(false);
  c.n_layers = 2;
  GgufTypeChooser chooser(gguf_file_type("q4_k_m"), c, true);
  // output.weight: a row of 320 is not whole Q4_K blocks, so the head takes Q8_0 directly.
  CHECK(chooser.choose("output.weight", {320, 96}, Type::F16) == Type::Q8_0);
  CHECK(chooser.choose("output_norm.weight", {320}, Type::F32) == Type::F32);
  CHECK(chooser.choose("token_embd.weight", {320, 96}, Type::F16) == Type::Q5_0);   // Q4_K -> Q5_0
  CHECK(chooser.choose("blk.0.attn_v.weight", {320, 64}, Type::F16) == Type::Q5_0);  // layer 0: Q4_K
  CHECK(chooser.choose("blk.0.ffn_down.weight", {48, 320}, Type::F16) == Type::F16);  // 48: not even 32
  CHECK(chooser.choose("blk.1.attn_v.weight", {320, 64}, Type::F16) == Type::Q8_0);  // layer 1: Q6_K
  CHECK(chooser.choose("blk.1.ffn_down.weight", {768, 320}, Type::F16) == Type::Q6_K);  // fits
  REQUIRE(chooser.fallbacks().size() == 4);
  CHECK(chooser.fallbacks()[0].tensor == "token_embd.weight");
  CHECK(chooser.fallbacks()[0].wanted == Type::Q4_K);
  CHECK(chooser.fallbacks()[2].used == Type::F16);
  CHECK(chooser.fallbacks()[3].wanted == Type::Q6_K);
  CHECK(chooser.n_quantized() == 6);

  GgufTypeChooser legacy(gguf_file_type("q4_0"), c, true);
  CHECK_THROWS_WITH(legacy.choose("blk.0.ffn_down.weight", {44, 32}, Type::F16),
                    Catch::Contains("Unsupported tensor size"));
  GgufTypeChooser q2(gguf_file_type("q2_k"), c, true);
  CHECK_THROWS_WITH(q2.choose("blk.0.attn_q.weight", {320, 64}, Type::F16), Catch::Contains("IQ4_NL"));
  CHECK_THROWS_WITH(gguf_file_type("q4_k"), Catch::Contains("q4_k_m"));
}

TEST_CASE("mix rules by layer: q4_k_m's use-more-bits layers and q3_k_m's attn_v", "[gguf_quantize]") {
  LlamaConfig c = test::small_config(false);
  c.n_layers = 16;  // more bits: i < 2, i >= 14, (i - 2) % 3 == 2
  GgufTypeChooser chooser(gguf_file_type("q4_k_m"), c, true);
  for (int i = 0; i < 16; ++i) {
    const bool more = i < 2 || i >= 14 || (i - 2) % 3 == 2;
    const std::string blk = "blk." + std::to_string(i) + ".";
    CHECK(chooser.choose(blk + "attn_v.weight", {256, 256}, Type::F16) == (more ? Type::Q6_K : Type::Q4_K));
    CHECK(chooser.choose(blk + "ffn_down.weight", {256, 256}, Type::F16) == (more ? Type::Q6_K : Type::Q4_K));
    CHECK(chooser.choose(blk + "attn_q.weight", {256, 256}, Type::F16) == Type::Q4_K);
  }
  GgufTypeChooser q3(gguf_file_type("q3_k_m"), c, true);
  for (int i = 0; i < 4; ++i) {
    const std::string blk = "blk." + std::to_string(i) + ".";
    CHECK(q3.choose(blk + "attn_v.weight", {256, 256}, Type::F16) == (i < 2 ? Type::Q5_K : Type::Q4_K));
    CHECK(q3.choose(blk + "ffn_down.weight", {256, 256}, Type::F16) == (i < 1 ? Type::Q5_K : Type::Q4_K));
    CHECK(q3.choose(blk + "attn_output.weight", {256, 256}, Type::F16) == Type::Q4_K);
  }
  // A tied head: token_embd is the output and takes Q6_K.
  GgufTypeChooser tied(gguf_file_type("q4_0"), c, false);
  CHECK(tied.choose("token_embd.weight", {256, 96}, Type::F16) == Type::Q6_K);
}

TEST_CASE("a written GGUF reads back: metadata, tensors, and q/k rows in llama.cpp's order", "[gguf_writer]") {
  LlamaConfig c = test::small_config(false);  // HF order: the writer permutes q/k
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  const Model source = to_fp16(test::random_model(c, 11));
  QuantizeOptions o;
  o.family = MethodFamily::Gguf;
  o.gguf_type = "q5_0";
  const QuantizeResult q = quantize_model(source, o, nullptr);
  CHECK(q.quantization.at("tensor_types").at("Q5_0") == 15);  // 14 linears + token_embd
  CHECK(q.quantization.at("tensor_types").at("Q8_0") == 1);  // output: 64 is not whole Q6_K blocks
  CHECK(q.quantization.at("tensor_types").at("F32") == 5);   // norms
  REQUIRE(q.quantization.at("fallbacks").size() == 1);
  CHECK(q.quantization.at("fallbacks")[0].at("used") == "Q8_0");
  CHECK(q.quantization.at("fallback_summary") == "1 of 16 tensor(s) required fallback quantization");

  GgufVocabularyOut vocab;
  for (int i = 0; i < c.vocab_size; ++i) {
    vocab.tokens.push_back("t" + std::to_string(i));
    vocab.scores.push_back(-static_cast<float>(i));
    vocab.token_types.push_back(i < 3 ? 3 : 1);
  }
  vocab.bos_id = 1;
  vocab.eos_id = 2;
  GgufMetadata meta = llama_gguf_metadata(q.model, "tiny", 1, &vocab);
  set_quantized_file_type(meta, gguf_file_type("q5_0").ftype);
  const std::string path = test::temp_dir("gguf_writer") + "/tiny-q5_0.gguf";
  write_gguf(path, meta, gguf_tensors_of(q.model));

  const GgufFile file(path);
  CHECK(file.version() == 3);
  REQUIRE(file.metadata().size() == meta.size());
  for (size_t i = 0; i < meta.size(); ++i) {
    const auto &[key, want] = meta[i];
    const auto &[got_key, got] = file.metadata()[i];
    INFO(key);
    CHECK(got_key == key);
    CHECK(got.type == want.type);
    CHECK(got.uint == want.uint);
    CHECK(got.sint == want.sint);
    CHECK(static_cast<float>(got.real) == static_cast<float>(want.real));
    CHECK(got.string == want.string);
    CHECK(got.array.size() == want.array.size());
  }
  CHECK(file.metadata().back().first == "general.file_type");
  CHECK(file.get_int("general.file_type") == 8);
  CHECK(file.get_int("llama.attention.head_count_kv") == 2);
  CHECK(file.get_string_array("tokenizer.ggml.tokens") == vocab.tokens);
  CHECK(file.get_float_array("tokenizer.ggml.scores") == vocab.scores);
  CHECK(file.get_int("tokenizer.ggml.bos_token_id") == 1);
  CHECK(file.tensors().front().name == "output.weight");
  CHECK(file.data_start() % 32 == 0);

  const Model back = load_gguf_model(file);
  CHECK(back.config.rope_interleaved);
  auto same_bytes = [](const Tensor& a, const Tensor& b) {
    return a.dtype == b.dtype && a.shape == b.shape && a.nbytes() == b.nbytes() && std::memcmp(a.data, b.data, a.nbytes()) == 0;
  };
  CHECK(same_bytes(back.embed_tokens, q.model.embed_tokens));
  CHECK(same_bytes(back.lm_head, q.model.lm_head));
  CHECK(back.norm.dtype == DType::F32);
  CHECK(back.norm.to_float() == q.model.norm.to_float());
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights &a = back.layers[l], &b = q.model.layers[l];
    CHECK(same_bytes(a.v_proj.dense, b.v_proj.dense));
    CHECK(same_bytes(a.down_proj.dense, b.down_proj.dense));
    // q: GGUF row r of head h is HF row (r % 2) * hd/2 + r / 2 of that head.
    const int hd = c.head_dim();
    const size_t row_bytes = dtype_row_bytes(b.q_proj.dense.dtype, c.hidden_size);
    for (int r = 0; r < c.n_heads * hd; ++r) {
      const int h = r / hd, i = r % hd, from = h * hd + (i % 2) * (hd / 2) + i / 2;
      REQUIRE(std::memcmp(static_cast<const uint8_t*>(a.q_proj.dense.data) + r * row_bytes,
                          static_cast<const uint8_t*>(b.q_proj.dense.data) + from * row_bytes, row_bytes) == 0);
    }
  }
}
