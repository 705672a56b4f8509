#include "model/load.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/error.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "model/block_linears.h"
#include "model/gguf.h"
#include "model/safetensors.h"

namespace qb {

static void check_config(const LlamaConfig& c, const std::string& where) {
  // Upper limits far above any published model (Llama 3.1 405B: hidden 16384, 126 layers) keep
  // every size computed from them (bytes of a layer, of the file) inside 64 bits.
  auto in_range = [&](int v, const char* field, int limit) {
    if (v <= 0) fail(where, std::string(field) + " must be positive, got " + std::to_string(v));
    if (v > limit) fail(where, std::string(field) + " " + std::to_string(v) + " exceeds the limit " + std::to_string(limit));
  };
  in_range(c.hidden_size, "hidden_size", 1 << 20);
  in_range(c.intermediate_size, "intermediate_size", 1 << 22);
  in_range(c.n_layers, "n_layers", 1 << 12);
  in_range(c.n_heads, "n_heads", 1 << 16);
  in_range(c.n_kv_heads, "n_kv_heads", 1 << 16);
  in_range(c.vocab_size, "vocab_size", 1 << 24);
  in_range(c.max_seq_len, "max_seq_len", 1 << 26);
  if (c.hidden_size % c.n_heads != 0) fail(where, "hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of n_heads");
  if (c.n_heads % c.n_kv_heads != 0) fail(where, "n_heads is not a multiple of n_kv_heads");
  if (c.head_dim() % 2 != 0) fail(where, "head_dim must be even for RoPE");
}

// ---- llama2.c ------------------------------------------------------------------------------

Model load_llama2c(const std::string& path) {
  auto file = MappedFile::open(path);
  if (file->size() < 28) fail(path, "truncated llama2.c checkpoint: no 28-byte header");
  int32_t h[7];
  std::memcpy(h, file->data(), sizeof(h));
  Model m;
  m.path = path;
  m.format = "llama2c";
  LlamaConfig& c = m.config;
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tie_word_embeddings = h[5] > 0;  // a negative vocab_size means an unshared classifier follows
  c.vocab_size = static_cast<int>(std::min<int64_t>(std::abs(int64_t(h[5])), INT32_MAX));  // INT32_MIN has no int negation
  c.max_seq_len = h[6];
  c.rope_theta = 10000.0f;
  c.rms_norm_eps = 1e-5f;
  c.rope_interleaved = true;
  check_config(c, path + ": header");

  const int64_t dim = c.hidden_size, hid = c.intermediate_size, L = c.n_layers, hd = c.head_dim();
  const int64_t q_dim = int64_t(c.n_heads) * hd, kv_dim = int64_t(c.n_kv_heads) * hd, V = c.vocab_size;
  const int64_t freq_cis = int64_t(c.max_seq_len) * hd;  // legacy freq_cis_real + freq_cis_imag, skipped
  const int64_t n_floats = V * dim + L * dim + L * dim * q_dim + 2 * L * dim * kv_dim + L * q_dim * dim + L * dim +
                           3 * L * dim * hid + dim + freq_cis + (c.tie_word_embeddings ? 0 : V * dim);
  const uint64_t expected = 28 + 4 * uint64_t(n_floats);
  if (file->size() != expected)
    fail(path, "file is " + std::to_string(file->size()) + " bytes but the header (dim " + std::to_string(dim) +
                   ", hidden_dim " + std::to_string(hid) + ", n_layers " + std::to_string(L) + ", vocab " +
                   std::to_string(V) + ") needs " + std::to_string(expected));

  const float* p = reinterpret_cast<const float*>(file->data() + 28);
  auto owner = std::shared_ptr<const void>(file, file->data());
  // Walks the weights in run.c's order; each call takes the next tensor of `shape`.
  auto take = [&](std::string name, std::vector<int64_t> shape) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    t.data = p;
    t.owner = owner;
    p += t.numel();
    return t;
  };
  auto layer_name = [](int64_t l, const char* what) { return "model.layers." + std::to_string(l) + "." + what; };
  m.layers.resize(c.n_layers);
  m.embed_tokens = take("model.embed_tokens.weight", {V, dim});
  for (int64_t l = 0; l < L; ++l) m.layers[l].attn_norm = take(layer_name(l, "input_layernorm.weight"), {dim});
  const auto dims = linear_dims(c);
  auto take_linears = [&](LinearIndex t) {
    for (int l = 0; l < c.n_layers; ++l) {
      Linear& lin = m.layers[l].*kBlockLinears[t].weights;
      lin.name = linear_hf_name(l, t);
      lin.dense = take(lin.name + ".weight", {dims[t].first, dims[t].second});
    }
  };
  for (LinearIndex t : {kQ, kK, kV, kO}) take_linears(t);
  for (int64_t l = 0; l < L; ++l) m.layers[l].mlp_norm = take(layer_name(l, "post_attention_layernorm.weight"), {dim});
  for (LinearIndex t : {kGate, kDown, kUp}) take_linears(t);  // run.c's w1, w2, w3
  m.norm = take("model.norm.weight", {dim});
  p += freq_cis;
  if (c.tie_word_embeddings) {
    m.lm_head = m.embed_tokens;
  } else {
    m.lm_head = take("lm_head.weight", {V, dim});
  }
  return m;
}

// ---- HF directory ---------------------------------------------------------------------------

// HF rope_scaling: null or {"rope_type": "default"} is plain RoPE, "llama3" (Llama 3.1/3.2) is
// read into c; every other type (linear, dynamic, yarn, ...) is refused.
static void parse_rope_scaling(const nlohmann::json& j, const std::string& where, LlamaConfig& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const nlohmann::json& r = j["rope_scaling"];
  if (!r.is_object()) fail(where, "field 'rope_scaling' is not an object");
  // Older configs spell rope_type as "type".
  const std::string type = json_field_or<std::string>(r, where, "rope_type", json_field_or<std::string>(r, where, "type", "default"));
  if (type == "default") return;
  if (type != "llama3")
    fail(where, "field 'rope_scaling.rope_type' is '" + type + "'; supported: default, llama3");
  const std::string sub = where + ": rope_scaling";
  c.rope_llama3 = true;
  c.rope_factor = json_field<float>(r, sub, "factor");
  c.rope_low_freq_factor = json_field<float>(r, sub, "low_freq_factor");
  c.rope_high_freq_factor = json_field<float>(r, sub, "high_freq_factor");
  c.rope_original_max_position_embeddings = json_field<int>(r, sub, "original_max_position_embeddings");
  if (!(c.rope_factor > 0) || !(c.rope_low_freq_factor > 0) || !(c.rope_high_freq_factor > c.rope_low_freq_factor) ||
      c.rope_original_max_position_embeddings <= 0)
    fail(sub, "needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
}

LlamaConfig parse_hf_config(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "config is not a JSON object");
  const std::string type = json_field_or<std::string>(j, where, "model_type", "llama");
  if (type != "llama" && type != "mistral" && type != "qwen2")
    fail(where, "field 'model_type' is '" + type + "'; supported: llama, mistral, qwen2");
  LlamaConfig c;
  c.hidden_size = json_field<int>(j, where, "hidden_size");
  c.intermediate_size = json_field<int>(j, where, "intermediate_size");
  c.n_layers = json_field<int>(j, where, "num_hidden_layers");
  c.n_heads = json_field<int>(j, where, "num_attention_heads");
  c.n_kv_heads = json_field_or<int>(j, where, "num_key_value_heads", c.n_heads);
  c.vocab_size = json_field<int>(j, where, "vocab_size");
  c.max_seq_len = json_field_or<int>(j, where, "max_position_embeddings", 2048);
  c.rope_theta = json_field_or<float>(j, where, "rope_theta", 10000.0f);
  c.rms_norm_eps = json_field_or<float>(j, where, "rms_norm_eps", 1e-6f);
  c.tie_word_embeddings = json_field_or<bool>(j, where, "tie_word_embeddings", false);
  c.rope_interleaved = false;
  parse_rope_scaling(j, where, c);
  // Qwen2's attention always has q/k/v biases (its config has no attention_bias field); Llama's
  // attention_bias also biases o_proj, which the forward passes do not carry.
  c.attention_bias = type == "qwen2";
  if (type != "qwen2" && json_field_or<bool>(j, where, "attention_bias", false))
    fail(where, "field 'attention_bias' is true; supported only as Qwen2's q/k/v biases (model_type qwen2)");
  if (json_field_or<bool>(j, where, "mlp_bias", false)) fail(where, "field 'mlp_bias' is true; not supported");
  // Mistral sets sliding_window directly; Qwen2 only when use_sliding_window is true.
  if (type == "mistral" || json_field_or<bool>(j, where, "use_sliding_window", false))
    c.sliding_window = json_field_or<int>(j, where, "sliding_window", 0);
  if (const int head_dim = json_field_or<int>(j, where, "head_dim", 0); head_dim != 0 && int64_t(head_dim) * c.n_heads != c.hidden_size)
    fail(where, "field 'head_dim' differs from hidden_size / num_attention_heads; not supported");
  check_config(c, where);
  return c;
}

nlohmann::json rope_scaling_json(const LlamaConfig& c) {
  if (!c.rope_llama3) return nullptr;
  return {{"rope_type", "llama3"},
          {"factor", c.rope_factor},
          {"low_freq_factor", c.rope_low_freq_factor},
          {"high_freq_factor", c.rope_high_freq_factor},
          {"original_max_position_embeddings", c.rope_original_max_position_embeddings}};
}

nlohmann::json hf_config_json(const LlamaConfig& c) {
  // The family parse_hf_config reads these features from: biases are Qwen2's, a sliding window
  // without them Mistral's.
  const bool qwen2 = c.attention_bias, mistral = !qwen2 && c.sliding_window > 0;
  nlohmann::json j = {{"architectures", {qwen2 ? "Qwen2ForCausalLM" : mistral ? "MistralForCausalLM" : "LlamaForCausalLM"}},
                      {"model_type", qwen2 ? "qwen2" : mistral ? "mistral" : "llama"},
                      {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size},
                      {"num_hidden_layers", c.n_layers},
                      {"num_attention_heads", c.n_heads},
                      {"num_key_value_heads", c.n_kv_heads},
                      {"vocab_size", c.vocab_size},
                      {"max_position_embeddings", c.max_seq_len},
                      {"rope_theta", c.rope_theta},
                      {"rms_norm_eps", c.rms_norm_eps},
                      {"tie_word_embeddings", c.tie_word_embeddings},
                      {"hidden_act", "silu"},
                      {"torch_dtype", "float16"}};
  if (c.rope_llama3) j["rope_scaling"] = rope_scaling_json(c);
  if (c.sliding_window > 0) {
    j["sliding_window"] = c.sliding_window;
    if (qwen2) j["use_sliding_window"] = true;
  }
  return j;
}

Model load_hf_directory(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  if (!file_exists(config_path)) fail(dir, "no config.json (an HF model directory needs config.json + model.safetensors)");
  Model m;
  m.path = dir;
  m.format = "safetensors";
  m.config = parse_hf_config(read_json_file(config_path), config_path);
  const LlamaConfig& c = m.config;

  const SafetensorsDirectory files(dir);
  const int64_t dim = c.hidden_size, V = c.vocab_size;
  const auto dims = linear_dims(c);
  m.embed_tokens = files.dense("model.embed_tokens.weight", {V, dim});
  m.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerWeights& w = m.layers[l];
    w.attn_norm = files.dense(pre + "input_layernorm.weight", {dim});
    w.mlp_norm = files.dense(pre + "post_attention_layernorm.weight", {dim});
    const auto linears = block_linears(w);
    for (int t = 0; t < kNumLinears; ++t) {
      linears[t]->name = linear_hf_name(l, t);
      linears[t]->dense = files.dense(linears[t]->name + ".weight", {dims[t].first, dims[t].second});
    }
    if (c.attention_bias)
      for (LinearIndex t : {kQ, kK, kV}) linears[t]->bias = files.dense(linears[t]->name + ".bias", {dims[t].first});
  }
  m.norm = files.dense("model.norm.weight", {dim});
  if (files.has("lm_head.weight")) {
    m.lm_head = files.dense("lm_head.weight", {V, dim});
    m.config.tie_word_embeddings = false;
  } else if (c.tie_word_embeddings) {
    m.lm_head = m.embed_tokens;
  } else {
    fail(dir, "missing tensor 'lm_head.weight' and tie_word_embeddings is false");
  }
  return m;
}

// A GGUF file by its name or its magic.
static bool is_gguf_file(const std::string& path) {
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) return true;
  auto file = MappedFile::open(path);
  return file->size() >= 4 && std::memcmp(file->data(), "GGUF", 4) == 0;
}

Model load_model(const std::string& path) {
  if (is_directory(path)) return load_hf_directory(path);
  if (!file_exists(path)) fail(path, "no such file or directory");
  if (is_gguf_file(path)) return load_gguf_model(path);
  return load_llama2c(path);
}

std::vector<const Tensor*> named_dense_tensors(const Model& m) {
  std::vector<const Tensor*> out{&m.embed_tokens};
  for (const auto& l : m.layers) {
    out.push_back(&l.attn_norm);
    out.push_back(&l.mlp_norm);
    for (const Linear* lin : block_linears(l)) {
      if (!lin->quant) out.push_back(&lin->dense);
      if (lin->bias.data) out.push_back(&lin->bias);
    }
  }
  out.push_back(&m.norm);
  if (!m.config.tie_word_embeddings) out.push_back(&m.lm_head);
  return out;
}

}  // namespace qb
