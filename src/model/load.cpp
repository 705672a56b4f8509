#include "model/load.h"

#include <cstring>
#include <map>

#include "common/error.h"
#include "common/files.h"
#include "model/safetensors.h"

namespace qb {

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

static void check_config(const LlamaConfig& c, const std::string& where) {
  auto positive = [&](int v, const char* field) {
    if (v <= 0) fail(where, std::string(field) + " must be positive, got " + std::to_string(v));
  };
  positive(c.dim, "dim");
  positive(c.hidden_dim, "hidden_dim");
  positive(c.n_layers, "n_layers");
  positive(c.n_heads, "n_heads");
  positive(c.n_kv_heads, "n_kv_heads");
  positive(c.vocab_size, "vocab_size");
  positive(c.max_seq_len, "max_seq_len");
  if (c.dim % c.n_heads != 0) fail(where, "dim " + std::to_string(c.dim) + " is not a multiple of n_heads");
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
  c.dim = h[0];
  c.hidden_dim = h[1];
  c.n_layers = h[2];
  c.n_heads = h[3];
  c.n_kv_heads = h[4];
  c.tied_embeddings = h[5] > 0;  // a negative vocab_size means an unshared classifier follows
  c.vocab_size = h[5] > 0 ? h[5] : -h[5];
  c.max_seq_len = h[6];
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  c.rope_interleaved = true;
  check_config(c, path + ": header");

  const int64_t dim = c.dim, hid = c.hidden_dim, L = c.n_layers, hd = c.head_dim();
  const int64_t q_dim = int64_t(c.n_heads) * hd, kv_dim = int64_t(c.n_kv_heads) * hd, V = c.vocab_size;
  const int64_t freq_cis = int64_t(c.max_seq_len) * hd;  // legacy freq_cis_real + freq_cis_imag, skipped
  const int64_t n_floats = V * dim + L * dim + L * dim * q_dim + 2 * L * dim * kv_dim + L * q_dim * dim + L * dim +
                           3 * L * dim * hid + dim + freq_cis + (c.tied_embeddings ? 0 : V * dim);
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
  auto take_linears = [&](Linear LayerWeights::*field, const char* module, int64_t out, int64_t in) {
    for (int64_t l = 0; l < L; ++l) {
      Linear& lin = m.layers[l].*field;
      lin.name = layer_name(l, module);
      lin.dense = take(lin.name + ".weight", {out, in});
    }
  };
  take_linears(&LayerWeights::q_proj, "self_attn.q_proj", q_dim, dim);
  take_linears(&LayerWeights::k_proj, "self_attn.k_proj", kv_dim, dim);
  take_linears(&LayerWeights::v_proj, "self_attn.v_proj", kv_dim, dim);
  take_linears(&LayerWeights::o_proj, "self_attn.o_proj", dim, q_dim);
  for (int64_t l = 0; l < L; ++l) m.layers[l].mlp_norm = take(layer_name(l, "post_attention_layernorm.weight"), {dim});
  take_linears(&LayerWeights::gate_proj, "mlp.gate_proj", hid, dim);  // w1
  take_linears(&LayerWeights::down_proj, "mlp.down_proj", dim, hid);  // w2
  take_linears(&LayerWeights::up_proj, "mlp.up_proj", hid, dim);      // w3
  m.norm = take("model.norm.weight", {dim});
  p += freq_cis;
  if (c.tied_embeddings) {
    m.lm_head = m.embed_tokens;
  } else {
    m.lm_head = take("lm_head.weight", {V, dim});
  }
  return m;
}

// ---- HF directory ---------------------------------------------------------------------------

template <typename T>
static T config_field(const nlohmann::json& j, const std::string& where, const char* field) {
  if (!j.contains(field)) fail(where, "missing field '" + std::string(field) + "'");
  try {
    return j.at(field).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail(where, "field '" + std::string(field) + "' has the wrong type");
  }
}

template <typename T>
static T config_field_or(const nlohmann::json& j, const std::string& where, const char* field, T fallback) {
  if (!j.contains(field) || j.at(field).is_null()) return fallback;
  return config_field<T>(j, where, field);
}

LlamaConfig parse_hf_config(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "config is not a JSON object");
  const std::string type = config_field_or<std::string>(j, where, "model_type", "llama");
  if (type != "llama" && type != "mistral")
    fail(where, "model_type '" + type + "' is not a Llama-architecture model (llama, mistral)");
  LlamaConfig c;
  c.dim = config_field<int>(j, where, "hidden_size");
  c.hidden_dim = config_field<int>(j, where, "intermediate_size");
  c.n_layers = config_field<int>(j, where, "num_hidden_layers");
  c.n_heads = config_field<int>(j, where, "num_attention_heads");
  c.n_kv_heads = config_field_or<int>(j, where, "num_key_value_heads", c.n_heads);
  c.vocab_size = config_field<int>(j, where, "vocab_size");
  c.max_seq_len = config_field_or<int>(j, where, "max_position_embeddings", 2048);
  c.rope_theta = config_field_or<float>(j, where, "rope_theta", 10000.0f);
  c.norm_eps = config_field_or<float>(j, where, "rms_norm_eps", 1e-6f);
  c.tied_embeddings = config_field_or<bool>(j, where, "tie_word_embeddings", false);
  c.rope_interleaved = false;
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    fail(where, "field 'rope_scaling' is set; scaled RoPE is not supported");
  if (j.contains("head_dim") && !j["head_dim"].is_null() && j["head_dim"].get<int>() * c.n_heads != c.dim)
    fail(where, "field 'head_dim' differs from hidden_size / num_attention_heads; not supported");
  check_config(c, where);
  return c;
}

nlohmann::json hf_config_json(const LlamaConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", c.dim},
          {"intermediate_size", c.hidden_dim},
          {"num_hidden_layers", c.n_layers},
          {"num_attention_heads", c.n_heads},
          {"num_key_value_heads", c.n_kv_heads},
          {"vocab_size", c.vocab_size},
          {"max_position_embeddings", c.max_seq_len},
          {"rope_theta", c.rope_theta},
          {"rms_norm_eps", c.norm_eps},
          {"tie_word_embeddings", c.tied_embeddings},
          {"hidden_act", "silu"},
          {"torch_dtype", "float16"}};
}

Model load_hf_directory(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  if (!file_exists(config_path)) fail(dir, "no config.json (an HF model directory needs config.json + model.safetensors)");
  Model m;
  m.path = dir;
  m.format = "safetensors";
  m.config = parse_hf_config(read_json_file(config_path), config_path);
  const LlamaConfig& c = m.config;

  // Which file holds each tensor: one model.safetensors, or shards named by the index.
  std::map<std::string, std::shared_ptr<SafetensorsFile>> files;
  std::map<std::string, std::string> file_of;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (file_exists(index_path)) {
    const auto index = read_json_file(index_path);
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_path, "missing object 'weight_map'");
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) fail(index_path, "weight_map['" + name + "'] is not a file name");
      file_of[name] = dir + "/" + file.get<std::string>();
    }
  } else if (file_exists(dir + "/model.safetensors")) {
    auto f = std::make_shared<SafetensorsFile>(dir + "/model.safetensors");
    files[f->path()] = f;
    for (const auto& [name, e] : f->entries()) file_of[name] = f->path();
  } else {
    fail(dir, "no model.safetensors or model.safetensors.index.json");
  }

  auto tensor = [&](const std::string& name, std::vector<int64_t> shape) {
    auto where = file_of.find(name);
    if (where == file_of.end()) fail(dir, "missing tensor '" + name + "'");
    auto& f = files[where->second];
    if (!f) f = std::make_shared<SafetensorsFile>(where->second);
    const SafetensorsEntry& e = f->get(name);
    if (e.shape != shape)
      fail(f->path(), "tensor '" + name + "' has shape " + shape_str(e.shape) + " but config.json implies " +
                          shape_str(shape));
    Tensor t;
    t.name = name;
    if (e.dtype == "F32") t.dtype = DType::F32;
    else if (e.dtype == "F16") t.dtype = DType::F16;
    else if (e.dtype == "BF16") t.dtype = DType::BF16;
    else fail(f->path(), "tensor '" + name + "' has dtype " + e.dtype + "; weights must be F32, F16 or BF16");
    t.shape = std::move(shape);
    t.data = e.data;
    t.owner = std::shared_ptr<const void>(f->mapping(), e.data);
    return t;
  };

  const int64_t dim = c.dim, hid = c.hidden_dim, hd = c.head_dim();
  const int64_t q_dim = int64_t(c.n_heads) * hd, kv_dim = int64_t(c.n_kv_heads) * hd, V = c.vocab_size;
  m.embed_tokens = tensor("model.embed_tokens.weight", {V, dim});
  m.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerWeights& w = m.layers[l];
    auto linear = [&](Linear& lin, const std::string& module, int64_t out, int64_t in) {
      lin.name = pre + module;
      lin.dense = tensor(lin.name + ".weight", {out, in});
    };
    w.attn_norm = tensor(pre + "input_layernorm.weight", {dim});
    linear(w.q_proj, "self_attn.q_proj", q_dim, dim);
    linear(w.k_proj, "self_attn.k_proj", kv_dim, dim);
    linear(w.v_proj, "self_attn.v_proj", kv_dim, dim);
    linear(w.o_proj, "self_attn.o_proj", dim, q_dim);
    w.mlp_norm = tensor(pre + "post_attention_layernorm.weight", {dim});
    linear(w.gate_proj, "mlp.gate_proj", hid, dim);
    linear(w.up_proj, "mlp.up_proj", hid, dim);
    linear(w.down_proj, "mlp.down_proj", dim, hid);
  }
  m.norm = tensor("model.norm.weight", {dim});
  if (file_of.count("lm_head.weight")) {
    m.lm_head = tensor("lm_head.weight", {V, dim});
    m.config.tied_embeddings = false;
  } else if (c.tied_embeddings) {
    m.lm_head = m.embed_tokens;
  } else {
    fail(dir, "missing tensor 'lm_head.weight' and tie_word_embeddings is false");
  }
  return m;
}

Model load_model(const std::string& path) {
  if (is_directory(path)) return load_hf_directory(path);
  if (!file_exists(path)) fail(path, "no such file or directory");
  return load_llama2c(path);
}

std::vector<const Tensor*> named_dense_tensors(const Model& m) {
  std::vector<const Tensor*> out{&m.embed_tokens};
  for (const auto& l : m.layers) {
    out.push_back(&l.attn_norm);
    for (const Linear* lin : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj})
      if (!lin->quant) out.push_back(&lin->dense);
    out.push_back(&l.mlp_norm);
    for (const Linear* lin : {&l.gate_proj, &l.up_proj, &l.down_proj})
      if (!lin->quant) out.push_back(&lin->dense);
  }
  out.push_back(&m.norm);
  if (!m.config.tied_embeddings) out.push_back(&m.lm_head);
  return out;
}

}  // namespace qb
