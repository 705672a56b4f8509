#include "quant/hf_checkpoint.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "common/half.h"
#include "model/block_linears.h"
#include "model/load.h"

namespace qb {
namespace fs = std::filesystem;

namespace {

std::string layer_prefix(int i) { return "model.layers." + std::to_string(i) + "."; }

// Row order of q/k from llama2.c's interleaved rotary pairs to HF's half-split ones:
// HF row h*hd + j takes row h*hd + 2j, and HF row h*hd + hd/2 + j takes row h*hd + 2j + 1.
std::vector<int> hf_rotary_rows(int n_heads, int head_dim) {
  std::vector<int> from(static_cast<size_t>(n_heads) * head_dim);
  for (int h = 0; h < n_heads; ++h)
    for (int j = 0; j < head_dim / 2; ++j) {
      from[h * head_dim + j] = h * head_dim + 2 * j;
      from[h * head_dim + head_dim / 2 + j] = h * head_dim + 2 * j + 1;
    }
  return from;
}

QuantizedWeight permute_rows(const QuantizedWeight& w, const std::vector<int>& from) {
  QuantizedWeight out = w;
  const int n_groups = w.n_groups();
  for (int r = 0; r < w.n; ++r) {
    std::copy_n(w.q.begin() + static_cast<size_t>(from[r]) * w.k, w.k, out.q.begin() + static_cast<size_t>(r) * w.k);
    for (int g = 0; g < n_groups; ++g) {
      out.scales[static_cast<size_t>(g) * w.n + r] = w.scales[static_cast<size_t>(g) * w.n + from[r]];
      out.zeros[static_cast<size_t>(g) * w.n + r] = w.zeros[static_cast<size_t>(g) * w.n + from[r]];
    }
  }
  return out;
}

SafetensorsBlob f16_blob(const Tensor& t, const std::string& name) {
  SafetensorsBlob b{name, "F16", t.shape, {}};
  const std::vector<float> v = t.to_float();
  b.bytes.resize(v.size() * 2);
  auto* out = reinterpret_cast<uint16_t*>(b.bytes.data());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_half(v[i]);
  return b;
}

}  // namespace

nlohmann::json read_checkpoint_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!file_exists(path)) fail(dir, "no config.json");
  return read_json_file(path);
}

Model load_quantized_checkpoint(const std::string& dir, const nlohmann::json& config, const std::string& format,
                                const QuantizedLinearReader& read_linear) {
  Model m;
  m.config = parse_hf_config(config, dir + "/config.json");
  m.config.rope_interleaved = false;
  m.path = dir;
  m.format = format;
  const LlamaConfig& c = m.config;
  const SafetensorsDirectory files(dir);
  std::set<std::string> used;
  auto dense = [&](const std::string& name, const std::vector<int64_t>& shape) {
    used.insert(name);
    return files.dense(name, shape);
  };
  m.embed_tokens = dense("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  const auto shapes = linear_dims(c);
  for (int i = 0; i < c.n_layers; ++i) {
    LayerWeights l;
    const std::string p = layer_prefix(i);
    l.attn_norm = dense(p + "input_layernorm.weight", {c.hidden_size});
    l.mlp_norm = dense(p + "post_attention_layernorm.weight", {c.hidden_size});
    auto linears = block_linears(l);
    for (int t = 0; t < kNumLinears; ++t) {
      const std::string base = linear_hf_name(i, t);
      const auto [n, k] = shapes[t];
      linears[t]->name = base;
      if (files.has(base + ".weight"))  // listed in modules_to_not_convert: kept dense
        linears[t]->dense = dense(base + ".weight", {n, k});
      else
        linears[t]->quant = read_linear(files, base, n, k, used);
    }
    // Qwen2's q/k/v biases stay FP16 tensors beside the packed weights (AutoAWQ, AutoGPTQ).
    if (c.attention_bias)
      for (LinearIndex t : {kQ, kK, kV}) linears[t]->bias = dense(linear_hf_name(i, t) + ".bias", {shapes[t].first});
    m.layers.push_back(std::move(l));
  }
  m.norm = dense("model.norm.weight", {c.hidden_size});
  if (files.has("lm_head.weight")) {
    m.lm_head = dense("lm_head.weight", {c.vocab_size, c.hidden_size});
  } else if (c.tie_word_embeddings) {
    m.lm_head = m.embed_tokens;
    m.lm_head.name = "lm_head.weight";
  } else {
    fail(dir, "missing tensor 'lm_head.weight' (config says tie_word_embeddings false)");
  }
  for (const std::string& name : files.names())
    if (!used.count(name) && name.find("rotary_emb.inv_freq") == std::string::npos)
      fail(dir, "unexpected tensor '" + name + "'");
  return m;
}

void write_quantized_checkpoint(const Model& model, const std::string& dir, const std::string& format_name,
                                const QuantizedLinearWriter& write_linear, const CheckpointWrite& files) {
  if (fs::exists(dir)) fail(dir, "already exists; remove it or choose another output directory");
  const LlamaConfig& c = model.config;
  std::vector<SafetensorsBlob> blobs;
  blobs.push_back(f16_blob(model.embed_tokens, "model.embed_tokens.weight"));
  const auto rotary_rows_q = hf_rotary_rows(c.n_heads, c.head_dim());
  const auto rotary_rows_k = hf_rotary_rows(c.n_kv_heads, c.head_dim());
  for (int i = 0; i < c.n_layers; ++i) {
    const LayerWeights& l = model.layers[i];
    const std::string p = layer_prefix(i);
    blobs.push_back(f16_blob(l.attn_norm, p + "input_layernorm.weight"));
    blobs.push_back(f16_blob(l.mlp_norm, p + "post_attention_layernorm.weight"));
    const auto linears = block_linears(l);
    for (int t = 0; t < kNumLinears; ++t) {
      const std::string base = linear_hf_name(i, t);
      if (!linears[t]->quant) fail(base, "not quantized: every block linear of the " + format_name + " format must be");
      if (linears[t]->kept) fail(base, "has kept FP16 columns, which the " + format_name + " format cannot store");
      if (c.rope_interleaved && (t == kQ || t == kK))
        write_linear(permute_rows(*linears[t]->quant, t == kQ ? rotary_rows_q : rotary_rows_k), base, blobs);
      else
        write_linear(*linears[t]->quant, base, blobs);
      if (linears[t]->bias.data) blobs.push_back(f16_blob(linears[t]->bias, base + ".bias"));
    }
  }
  blobs.push_back(f16_blob(model.norm, "model.norm.weight"));
  if (!c.tie_word_embeddings) blobs.push_back(f16_blob(model.lm_head, "lm_head.weight"));

  LlamaConfig hf = c;
  hf.rope_interleaved = false;  // q/k rows were permuted above
  nlohmann::json config = hf_config_json(hf);
  config["torch_dtype"] = "float16";
  config["quantization_config"] = files.quantization_config;

  // Built beside `dir` and renamed into place (common/files.h): a killed quantize leaves no `dir`
  // that eval --load would take for a checkpoint.
  AtomicDirectory out(dir);
  write_safetensors(out.file("model.safetensors"), blobs, {{"format", "pt"}});
  write_file_atomic(out.file("config.json"), config.dump(2) + "\n");
  for (const auto& [name, contents] : files.extra_json) write_file_atomic(out.file(name), contents.dump(2) + "\n");
  if (!files.tokenizer_path.empty())
    write_file_atomic(out.file(fs::path(files.tokenizer_path).extension() == ".json" ? "tokenizer.json" : "tokenizer.model"),
                      read_text_file(files.tokenizer_path));
  if (!files.report.is_null()) write_file_atomic(out.file("quantize_report.json"), files.report.dump(2) + "\n");
  out.commit();
}

}  // namespace qb
