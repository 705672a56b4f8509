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
  std::vector<uint8_t> codes(static_cast<size_t>(w.k));
  for (int r = 0; r < w.n; ++r) {
    w.row_codes(from[r], codes.data());
    out.set_row_codes(r, codes.data());
    for (int g = 0; g < n_groups; ++g) {
      out.scales[static_cast<size_t>(g) * w.n + r] = w.scales[static_cast<size_t>(g) * w.n + from[r]];
      out.zeros[static_cast<size_t>(g) * w.n + r] = w.zeros[static_cast<size_t>(g) * w.n + from[r]];
    }
  }
  return out;
}

// Every tensor of the checkpoint of `c` in `format`, in the order the stream writes them.
std::vector<SafetensorsTensorSpec> checkpoint_plan(const LlamaConfig& c, const CheckpointFormat& format) {
  std::vector<SafetensorsTensorSpec> plan;
  const int64_t hidden = c.hidden_size;
  plan.push_back({"model.embed_tokens.weight", "F16", {c.vocab_size, hidden}});
  const auto dims = linear_dims(c);
  for (int i = 0; i < c.n_layers; ++i) {
    plan.push_back({layer_prefix(i) + "input_layernorm.weight", "F16", {hidden}});
    plan.push_back({layer_prefix(i) + "post_attention_layernorm.weight", "F16", {hidden}});
    for (int t = 0; t < kNumLinears; ++t) {
      const std::string base = linear_hf_name(i, t);
      for (SafetensorsTensorSpec& spec : format.plan_linear(base, dims[t].first, dims[t].second))
        plan.push_back(std::move(spec));
      if (c.attention_bias && (t == kQ || t == kK || t == kV)) plan.push_back({base + ".bias", "F16", {dims[t].first}});
    }
  }
  plan.push_back({"model.norm.weight", "F16", {hidden}});
  if (!c.tie_word_embeddings) plan.push_back({"lm_head.weight", "F16", {c.vocab_size, hidden}});
  return plan;
}

// `dir`, refused when it exists (before AtomicDirectory, whose message names no remedy).
const std::string& new_directory(const std::string& dir) {
  if (fs::exists(dir)) fail(dir, "already exists; remove it or choose another output directory");
  return dir;
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

int checkpoint_group_size(const LlamaConfig& c, int group_size) {
  for (const auto& [n, k] : linear_dims(c))
    if (group_size > 0 && group_size != k) return group_size;
  return -1;
}

QuantizedCheckpointStream::QuantizedCheckpointStream(const LlamaConfig& c, const std::string& dir,
                                                     CheckpointFormat format, uint64_t shard_bytes)
    : config_(c),
      format_(std::move(format)),
      out_(new_directory(dir)),
      writer_(out_.temp_path(), checkpoint_plan(c, format_), shard_bytes, {{"format", "pt"}}) {}

void QuantizedCheckpointStream::write_dense(const Tensor& t, const std::string& name) {
  // Row by row: a 128K-token embedding is 2 GB as FP32, and never needed whole.
  const int64_t cols = t.shape.empty() ? 0 : t.shape.back(), rows = cols ? t.numel() / cols : 0;
  const int64_t rows_per_piece = std::max<int64_t>(1, (int64_t(4) << 20) / std::max<int64_t>(1, cols));
  std::vector<float> values;
  std::vector<uint16_t> halves;
  if (rows == 0) writer_.write(name, nullptr, 0);
  for (int64_t r = 0; r < rows; r += rows_per_piece) {
    const int64_t n = std::min(rows_per_piece, rows - r);
    values.resize(static_cast<size_t>(n * cols));
    halves.resize(values.size());
    t.rows_to_float(r, r + n, values.data());
    for (size_t j = 0; j < values.size(); ++j) halves[j] = float_to_half(values[j]);
    writer_.write(name, halves.data(), halves.size() * sizeof(uint16_t));
  }
}

void QuantizedCheckpointStream::write_embeddings(const Tensor& embed_tokens) {
  write_dense(embed_tokens, "model.embed_tokens.weight");
}

void QuantizedCheckpointStream::write_block(int i, const LayerWeights& l) {
  const LlamaConfig& c = config_;
  const std::string p = layer_prefix(i);
  write_dense(l.attn_norm, p + "input_layernorm.weight");
  write_dense(l.mlp_norm, p + "post_attention_layernorm.weight");
  const auto linears = block_linears(l);
  for (int t = 0; t < kNumLinears; ++t) {
    const std::string base = linear_hf_name(i, t);
    if (!linears[t]->quant) fail(base, "not quantized: every block linear of the " + format_.name + " format must be");
    if (linears[t]->kept) fail(base, "has kept FP16 columns, which the " + format_.name + " format cannot store");
    std::vector<SafetensorsBlob> blobs;
    if (c.rope_interleaved && (t == kQ || t == kK))
      format_.write_linear(permute_rows(*linears[t]->quant, hf_rotary_rows(t == kQ ? c.n_heads : c.n_kv_heads, c.head_dim())),
                           base, blobs);
    else
      format_.write_linear(*linears[t]->quant, base, blobs);
    for (const SafetensorsBlob& b : blobs) writer_.write(b);
    if (linears[t]->bias.data) write_dense(linears[t]->bias, base + ".bias");
  }
}

void QuantizedCheckpointStream::finish(const Tensor& norm, const Tensor& lm_head, const CheckpointWrite& files) {
  write_dense(norm, "model.norm.weight");
  if (!config_.tie_word_embeddings) write_dense(lm_head, "lm_head.weight");
  writer_.finish();
  LlamaConfig hf = config_;
  hf.rope_interleaved = false;  // q/k rows were permuted in write_block
  nlohmann::json config = hf_config_json(hf);
  config["torch_dtype"] = "float16";
  config["quantization_config"] = format_.quantization_config;
  write_file_atomic(out_.file("config.json"), config.dump(2) + "\n");
  for (const auto& [name, contents] : format_.extra_json) write_file_atomic(out_.file(name), contents.dump(2) + "\n");
  if (!files.tokenizer_path.empty())
    write_file_atomic(out_.file(fs::path(files.tokenizer_path).extension() == ".json" ? "tokenizer.json" : "tokenizer.model"),
                      read_text_file(files.tokenizer_path));
  if (!files.report.is_null()) write_file_atomic(out_.file("quantize_report.json"), files.report.dump(2) + "\n");
  out_.commit();
}

void write_quantized_checkpoint(const Model& model, const std::string& dir, const CheckpointFormat& format,
                                const CheckpointWrite& files, uint64_t shard_bytes) {
  // Built beside `dir` and renamed into place (common/files.h): a killed quantize leaves no `dir`
  // that eval --load would take for a checkpoint.
  QuantizedCheckpointStream stream(model.config, dir, format, shard_bytes);
  stream.write_embeddings(model.embed_tokens);
  for (int i = 0; i < model.config.n_layers; ++i) stream.write_block(i, model.layers[i]);
  stream.finish(model.norm, model.lm_head, files);
}

}  // namespace qb
