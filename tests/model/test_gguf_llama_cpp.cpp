// GGUF files written by llama.cpp b4747 (shared data, MANIFEST.md "gguf/"): the F16/F32 files of
// stories-d256-l2 hold its HF weights exactly (q/k rows permuted by convert_hf_to_gguf.py) and give
// the HF model's logits; stories260K's F32 file holds the llama2.c weights as they are; every
// quantized file loads and dequantizes close to the F16 weights.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <map>

#include "common/half.h"
#include "datasets/tokenizer.h"
#include "model/cpu_forward.h"
#include "model/gguf.h"
#include "model/load.h"
#include "test_support.h"

using namespace qb;

namespace {

const std::string kD256 = "models/stories-d256-l2/";
const std::string kS260 = "models/stories260K/";

std::string gguf_path(const std::string& name) { return test::data_file(kD256 + "gguf/stories-d256-l2-" + name + ".gguf"); }

// Every weight of m by its HF name (lm_head counted once when tied).
std::map<std::string, const Tensor*> tensors_by_name(const Model& m) {
  std::map<std::string, const Tensor*> out;
  for (const Tensor* t : named_dense_tensors(m)) out[t->name] = t;
  return out;
}

// convert_hf_to_gguf.py LlamaModel.permute: each head's rows reshaped (2, hd/2) -> (hd/2, 2), so
// GGUF row r of a head is HF row (r % 2) * hd/2 + r / 2. Returns the HF order of GGUF rows w
// [rows, cols] with heads of hd rows.
std::vector<float> unpermute_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int hd) {
  std::vector<float> hf(w.size());
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t head = row / hd, r = row % hd;
    const int64_t to = head * hd + (r % 2) * (hd / 2) + r / 2;
    std::copy_n(&w[row * cols], cols, &hf[to * cols]);
  }
  return hf;
}

bool is_q_or_k(const std::string& hf_name) {
  return hf_name.find("q_proj") != std::string::npos || hf_name.find("k_proj") != std::string::npos;
}

std::vector<int> story_tokens(const std::string& tokenizer_model) {
  const auto tok = open_tokenizer(test::data_file(tokenizer_model));
  std::vector<int> tokens{tok->bos_id()};
  for (int id : tok->encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
                            "park with her dog. One day, she found a big red ball under a tree."))
    tokens.push_back(id);
  return tokens;
}

std::vector<float> logits_of(const Model& m, const std::vector<int>& tokens) {
  std::vector<float> logits;
  CpuModel(m).forward(tokens.data(), 1, static_cast<int>(tokens.size()), logits);
  return logits;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The dense HF-format GGUF (F16 or F32) holds the HF weights exactly and computes the HF logits.
void check_dense_against_hf(const std::string& type) {
  const Model hf = load_model(test::data_dir() + "/" + kD256);
  const Model g = load_model(gguf_path(type));
  CHECK(g.format == "gguf");
  CHECK(g.config.rope_interleaved);
  CHECK(g.config.hidden_size == hf.config.hidden_size);
  CHECK(g.config.intermediate_size == hf.config.intermediate_size);
  CHECK(g.config.n_layers == hf.config.n_layers);
  CHECK(g.config.n_heads == hf.config.n_heads);
  CHECK(g.config.n_kv_heads == hf.config.n_kv_heads);
  CHECK(g.config.vocab_size == hf.config.vocab_size);
  CHECK(g.config.max_seq_len == hf.config.max_seq_len);
  CHECK(g.config.rope_theta == hf.config.rope_theta);
  CHECK(g.config.rms_norm_eps == hf.config.rms_norm_eps);
  CHECK(g.config.tie_word_embeddings == hf.config.tie_word_embeddings);

  const auto hf_tensors = tensors_by_name(hf), g_tensors = tensors_by_name(g);
  REQUIRE(hf_tensors.size() == g_tensors.size());
  const int hd = hf.config.head_dim();
  for (const auto& [name, t] : hf_tensors) {
    INFO(type << " " << name);
    REQUIRE(g_tensors.count(name));
    const Tensor& gt = *g_tensors.at(name);
    CHECK(gt.shape == t->shape);
    // convert_hf_to_gguf.py keeps 1-D tensors (norms) in F32.
    CHECK(dtype_name(gt.dtype) == (t->shape.size() == 1 ? std::string("F32") : type));
    std::vector<float> w = gt.to_float();
    if (is_q_or_k(name)) w = unpermute_rows(w, t->shape[0], t->shape[1], hd);
    CHECK(w == t->to_float());  // F16 -> F32 widening is exact on both sides
  }

  const std::vector<int> tokens = story_tokens(kD256 + "tokenizer.model");
  const double rel = test::max_rel_diff(logits_of(g, tokens), logits_of(hf, tokens));
  std::printf("stories-d256-l2-%s.gguf vs HF model.safetensors: logits max rel diff %.3g over %zu tokens\n",
              type.c_str(), rel, tokens.size());
  CHECK(rel < 1e-4);
}

}  // namespace

std::string qb_test_skip_reason() {
  for (const std::string& f : {kD256 + "model.safetensors", kD256 + "tokenizer.model", kD256 + "gguf/stories-d256-l2-F16.gguf",
                              kS260 + "stories260K.bin", kS260 + "gguf/stories260K-F32.gguf"})
    if (auto r = test::require_data(f); !r.empty()) return r;
  return "";
}

TEST_CASE("stories-d256-l2 F16 and F32 GGUFs hold the HF weights and give the HF logits") {
  check_dense_against_hf("F16");
  check_dense_against_hf("F32");
}

TEST_CASE("stories260K F32/F16 GGUFs (llama2c converter) hold the llama2.c weights unpermuted") {
  const Model bin = load_model(test::data_file(kS260 + "stories260K.bin"));
  const auto bin_tensors = tensors_by_name(bin);
  for (const std::string type : {"F32", "F16"}) {
    INFO(type);
    const Model g = load_model(test::data_file(kS260 + "gguf/stories260K-" + type + ".gguf"));
    CHECK(g.config.hidden_size == 64);
    CHECK(g.config.n_kv_heads == bin.config.n_kv_heads);
    CHECK(g.config.max_seq_len == 128);  // the converter's default (MANIFEST.md)
    // The .bin shares its classifier with the embedding; the converter writes output.weight as a
    // copy of it.
    REQUIRE(bin.config.tie_word_embeddings);
    CHECK_FALSE(g.config.tie_word_embeddings);
    auto expected_tensors = bin_tensors;
    expected_tensors["lm_head.weight"] = &bin.embed_tokens;
    const auto g_tensors = tensors_by_name(g);
    REQUIRE(g_tensors.size() == expected_tensors.size());
    for (const auto& [name, t] : expected_tensors) {
      INFO(name);
      REQUIRE(g_tensors.count(name));
      std::vector<float> expected = t->to_float();
      if (g_tensors.at(name)->dtype == DType::F16)
        for (float& v : expected) v = round_to_half(v);
      CHECK(g_tensors.at(name)->to_float() == expected);
    }
    const std::vector<int> tokens = story_tokens(kS260 + "tok512.model");
    if (type == "F32") CHECK(test::max_rel_diff(logits_of(g, tokens), logits_of(bin, tokens)) < 1e-5);
  }
}

TEST_CASE("every quantized stories-d256-l2 GGUF dequantizes close to the F16 weights") {
  const Model f16 = load_model(gguf_path("F16"));
  const auto reference = tensors_by_name(f16);
  const std::vector<int> tokens = story_tokens(kD256 + "tokenizer.model");
  const std::vector<float> f16_logits = logits_of(f16, tokens);
  // Bound on sum((w - w16)^2) / sum(w16^2) over any one tensor, per file: about 2x the largest
  // measured (b4747 files, no imatrix; Q8_0 2.9e-5 ... Q2_K 0.088); codes or scales read from the
  // wrong bits give errors near 1 or above.
  const std::vector<std::pair<std::string, double>> bounds = {
      {"Q8_0", 6e-5},   {"Q6_K", 6e-4},   {"Q5_1", 3e-3},   {"Q5_0", 4e-3},   {"Q5_K_M", 3e-3}, {"Q4_1", 1.2e-2},
      {"Q4_0", 1.5e-2}, {"Q4_K_M", 1e-2}, {"Q4_K_S", 1e-2}, {"Q3_K_M", 4.5e-2}, {"Q2_K", 0.18}};
  for (const auto& [file, bound] : bounds) {
    INFO(file);
    const std::string path = gguf_path(file);
    if (path.empty()) FAIL("missing " << file);
    const auto t0 = std::chrono::steady_clock::now();
    const Model q = load_model(path);
    const double load_s = seconds_since(t0);
    std::map<std::string, int> type_counts;
    double worst = 0;
    std::string worst_name;
    double dequant_s = 0;
    for (const auto& [name, t] : tensors_by_name(q)) {
      ++type_counts[dtype_name(t->dtype)];
      const auto t1 = std::chrono::steady_clock::now();
      const std::vector<float> w = t->to_float();
      dequant_s += seconds_since(t1);
      const std::vector<float> r = reference.at(name)->to_float();
      REQUIRE(w.size() == r.size());
      double err = 0, norm = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        err += (double(w[i]) - r[i]) * (double(w[i]) - r[i]);
        norm += double(r[i]) * r[i];
      }
      if (err / norm > worst) worst = err / norm, worst_name = name;
    }
    std::string types;
    for (const auto& [type, n] : type_counts) types += " " + type + " x" + std::to_string(n);
    const double logit_rel = test::max_rel_diff(logits_of(q, tokens), f16_logits);
    std::printf("%-7s load %.2f ms, dequantize %.2f ms; tensors:%s; worst rel sq err %.3g (%s); logits max rel diff vs F16 %.3g\n",
                file.c_str(), load_s * 1e3, dequant_s * 1e3, types.c_str(), worst, worst_name.c_str(), logit_rel);
    CHECK(worst < bound);
    CHECK_NOTHROW(check_finite(q));
  }
}
