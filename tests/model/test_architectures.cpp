// Llama 3.1/3.2 (llama3-scaled RoPE, theta 500000, tied embeddings) and Qwen2 (q/k/v biases):
// generated models written as HF directories, loaded, and run by the CPU forward pass, against
// the float64 reference (reference_forward_f64.h) to 1e-4 relative on every logit. Other
// model_type and rope_scaling values are refused naming the field; sliding_window is honoured
// only where it equals full attention.
#include <catch2/catch.hpp>

#include "common/files.h"
#include "eval/cpu_backend.h"
#include "model/cpu_forward.h"
#include "model/load.h"
#include "random_model.h"
#include "reference_forward_f64.h"

using namespace qb;

namespace {

// head_dim 16, so that theta 500000 gives wavelengths on both sides of and between the llama3
// bands (original context 256: low band > 256, high band < 64).
LlamaConfig llama31_config(bool tied) {
  LlamaConfig c = test::small_config(false);
  c.hidden_size = 64;
  c.max_seq_len = 2048;
  c = test::with_llama3_rope(c, 8.0f, 256);
  c.tie_word_embeddings = tied;
  return c;
}

LlamaConfig qwen2_config() {
  LlamaConfig c = test::small_config(false);
  c.rope_theta = 1000000.0f;
  c.rms_norm_eps = 1e-6f;
  c.attention_bias = true;
  return c;
}

// max |cpu - reference| / max |reference| over every logit of the window: `m` on the CPU, the
// reference on `reference_model` (m itself unless given).
double cpu_vs_reference(const Model& m, const std::vector<int>& tokens, const Model* reference_model = nullptr) {
  std::vector<float> logits;
  CpuModel(m).forward(tokens.data(), 1, static_cast<int>(tokens.size()), logits);
  const auto ref = test::reference_forward_f64(reference_model ? *reference_model : m, tokens);
  double err = 0.0, scale = 0.0;
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t v = 0; v < ref[t].size(); ++v) {
      err = std::max(err, std::abs(logits[t * ref[t].size() + v] - ref[t][v]));
      scale = std::max(scale, std::abs(ref[t][v]));
    }
  return err / scale;
}

// The eval path (the CPU LogitsBackend's scores) against the float64 reference's NLL of every
// target: max |nll - reference| / max |reference|.
double eval_nll_vs_reference(const Model& m, const std::vector<int>& tokens) {
  auto backend = make_cpu_backend(m);
  backend->run(tokens);
  WindowScores scores;
  backend->score(tokens, 1, nullptr, "test", scores);
  const auto ref = test::reference_forward_f64(m, tokens);
  double err = 0.0, scale = 0.0;
  for (size_t j = 1; j < tokens.size(); ++j) {
    const auto& row = ref[j - 1];
    double max_logit = row[0], sum = 0.0;
    for (double v : row) max_logit = std::max(max_logit, v);
    for (double v : row) sum += std::exp(v - max_logit);
    const double nll = max_logit + std::log(sum) - row[tokens[j]];
    err = std::max(err, std::abs(scores.nll[j - 1] - nll));
    scale = std::max(scale, std::abs(nll));
  }
  return err / scale;
}

std::vector<int> window(int length, int vocab) {
  std::vector<int> tokens;
  for (int i = 0; i < length; ++i) tokens.push_back((i * 37 + 5) % vocab);
  return tokens;
}

// Writes m as an HF directory and loads it back.
Model through_hf_dir(const Model& m, const std::string& tag) {
  const std::string dir = test::temp_dir(tag);
  test::write_hf_dir(m, dir);
  return load_model(dir);
}

nlohmann::json base_config() { return hf_config_json(test::small_config(false)); }

}  // namespace

TEST_CASE("llama3 RoPE frequencies follow transformers' _compute_llama3_parameters in all three bands") {
  const LlamaConfig c = llama31_config(false);
  const std::vector<double> f = rope_inv_freq(c), ref = test::reference_inv_freq(c);
  LlamaConfig plain = c;
  plain.rope_llama3 = false;
  const std::vector<double> unscaled = rope_inv_freq(plain);
  REQUIRE(f.size() == 8);
  int kept = 0, divided = 0, blended = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    CHECK(f[i] == Approx(ref[i]).epsilon(1e-14));
    if (f[i] == unscaled[i]) ++kept;
    else if (f[i] == Approx(unscaled[i] / 8).epsilon(1e-14)) ++divided;
    else ++blended;
  }
  CHECK(kept > 0);
  CHECK(divided > 0);
  CHECK(blended > 0);
}

TEST_CASE("Llama-3.1 and Llama-3.2 style models (llama3 RoPE, untied and tied) match the float64 reference") {
  for (bool tied : {false, true}) {
    INFO("tie_word_embeddings " << tied);
    const Model m = through_hf_dir(test::random_model(llama31_config(tied), tied ? 32 : 31), "llama3");
    CHECK(m.config.rope_llama3);
    CHECK(m.config.rope_factor == 8.0f);
    CHECK(m.config.rope_original_max_position_embeddings == 256);
    CHECK(m.config.tie_word_embeddings == tied);
    CHECK(cpu_vs_reference(m, window(300, m.config.vocab_size)) < 1e-4);
    CHECK(eval_nll_vs_reference(m, window(300, m.config.vocab_size)) < 1e-4);
    // The scaling matters: plain RoPE at theta 500000 is far off.
    Model unscaled = m;
    unscaled.config.rope_llama3 = false;
    CHECK(cpu_vs_reference(unscaled, window(300, m.config.vocab_size), &m) > 1e-3);
  }
}

TEST_CASE("a Qwen2-style model (q/k/v biases) matches the float64 reference and counts its biases") {
  const Model generated = test::random_model(qwen2_config(), 41);
  const Model m = through_hf_dir(generated, "qwen2");
  CHECK(m.config.attention_bias);
  REQUIRE(m.layers[0].q_proj.bias.data);
  CHECK(m.layers[0].v_proj.bias.shape == std::vector<int64_t>{16});
  CHECK_FALSE(m.layers[0].o_proj.bias.data);
  LlamaConfig no_bias = qwen2_config();
  no_bias.attention_bias = false;
  const int64_t biases = 2 * (32 + 16 + 16);  // 2 layers of q/k/v
  CHECK(m.parameter_count() == test::random_model(no_bias, 41).parameter_count() + biases);
  CHECK(cpu_vs_reference(m, window(64, m.config.vocab_size)) < 1e-4);
  CHECK(eval_nll_vs_reference(m, window(64, m.config.vocab_size)) < 1e-4);
  // The biases matter: without them the logits are far off.
  Model stripped = m;
  for (LayerWeights& l : stripped.layers) l.q_proj.bias = l.k_proj.bias = l.v_proj.bias = Tensor{};
  CHECK(cpu_vs_reference(stripped, window(64, m.config.vocab_size), &m) > 1e-2);
}

TEST_CASE("other model types and RoPE scalings are refused naming the field") {
  nlohmann::json j = base_config();
  j["model_type"] = "gemma";
  CHECK_THROWS_WITH(parse_hf_config(j, "config.json"), Catch::Contains("'model_type'") && Catch::Contains("gemma"));
  for (const char* type : {"linear", "dynamic", "yarn", "longrope"}) {
    j = base_config();
    j["rope_scaling"] = {{"rope_type", type}, {"factor", 2.0}};
    CHECK_THROWS_WITH(parse_hf_config(j, "config.json"),
                      Catch::Contains("'rope_scaling.rope_type'") && Catch::Contains(type));
  }
  j = base_config();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}};
  CHECK_THROWS_WITH(parse_hf_config(j, "config.json"), Catch::Contains("'high_freq_factor'"));
  j = base_config();
  j["rope_scaling"] = {{"rope_type", "default"}};
  CHECK_FALSE(parse_hf_config(j, "config.json").rope_llama3);
  j["rope_scaling"] = nullptr;
  CHECK_FALSE(parse_hf_config(j, "config.json").rope_llama3);
  j = base_config();
  j["attention_bias"] = true;
  CHECK_THROWS_WITH(parse_hf_config(j, "config.json"), Catch::Contains("'attention_bias'"));
}

TEST_CASE("sliding_window: windows up to it are full attention, longer ones are refused") {
  nlohmann::json j = base_config();
  j["model_type"] = "mistral";
  j["sliding_window"] = 16;
  Model m = test::random_model(test::small_config(false), 51);
  m.config = parse_hf_config(j, "config.json");
  CHECK(m.config.sliding_window == 16);
  CHECK(parse_hf_config(hf_config_json(m.config), "written").sliding_window == 16);
  CHECK(cpu_vs_reference(m, window(16, m.config.vocab_size)) < 1e-4);
  std::vector<float> logits;
  const std::vector<int> tokens = window(17, m.config.vocab_size);
  CHECK_THROWS_WITH(CpuModel(m).forward(tokens.data(), 1, 17, logits), Catch::Contains("sliding_window 16"));
  // Qwen2 configs carry sliding_window but use it only with use_sliding_window.
  j["model_type"] = "qwen2";
  j["use_sliding_window"] = false;
  CHECK(parse_hf_config(j, "config.json").sliding_window == 0);
  j["use_sliding_window"] = true;
  CHECK(parse_hf_config(j, "config.json").sliding_window == 16);
}
