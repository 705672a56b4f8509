#include "quant/awq_format.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "common/error.h"
#include "common/files.h"
#include "common/half.h"
#include "layouts/awq_layout.h"
#include "model/block_linears.h"
#include "model/load.h"
#include "model/safetensors.h"

namespace qb {
namespace fs = std::filesystem;

AwqPackedLinear pack_awq_linear(const QuantizedWeight& w, const std::string& name) {
  if (w.bits != awq::kBits)
    fail(name, std::to_string(w.bits) + "-bit weights cannot be stored in the AutoAWQ format (4-bit only)");
  if (w.k % w.group_size != 0)
    fail(name, "group size " + std::to_string(w.group_size) + " does not divide in_features " + std::to_string(w.k) +
                   " (AutoAWQ's format requires k % group_size == 0)");
  if (w.n % awq::kPackFactor != 0)
    fail(name, "out_features " + std::to_string(w.n) + " is not a multiple of 8");
  const int words = w.n / awq::kPackFactor, n_groups = w.k / w.group_size;
  AwqPackedLinear p;
  p.n = w.n;
  p.k = w.k;
  p.group_size = w.group_size;
  p.qweight.resize(static_cast<size_t>(w.k) * words);
  p.qzeros.resize(static_cast<size_t>(n_groups) * words);
  p.scales = w.scales;  // both [n_groups, n]
  uint8_t values[awq::kPackFactor];
  for (int r = 0; r < w.k; ++r)
    for (int c = 0; c < words; ++c) {
      for (int j = 0; j < awq::kPackFactor; ++j) values[j] = w.q[static_cast<size_t>(c * 8 + j) * w.k + r];
      p.qweight[static_cast<size_t>(r) * words + c] = static_cast<int32_t>(awq::pack(values));
    }
  for (int g = 0; g < n_groups; ++g)
    for (int c = 0; c < words; ++c) {
      for (int j = 0; j < awq::kPackFactor; ++j) values[j] = w.zeros[static_cast<size_t>(g) * w.n + c * 8 + j];
      p.qzeros[static_cast<size_t>(g) * words + c] = static_cast<int32_t>(awq::pack(values));
    }
  return p;
}

QuantizedWeight unpack_awq_linear(const AwqPackedLinear& p, const std::string& name) {
  if (p.group_size <= 0 || p.k % p.group_size != 0 || p.n % awq::kPackFactor != 0)
    fail(name, "invalid packed shape n=" + std::to_string(p.n) + " k=" + std::to_string(p.k) +
                   " group_size=" + std::to_string(p.group_size));
  const int words = p.n / awq::kPackFactor, n_groups = p.k / p.group_size;
  if (p.qweight.size() != static_cast<size_t>(p.k) * words || p.qzeros.size() != static_cast<size_t>(n_groups) * words ||
      p.scales.size() != static_cast<size_t>(n_groups) * p.n)
    fail(name, "packed tensor sizes do not match n=" + std::to_string(p.n) + " k=" + std::to_string(p.k));
  QuantizedWeight w;
  w.n = p.n;
  w.k = p.k;
  w.bits = awq::kBits;
  w.group_size = p.group_size;
  w.symmetric = false;
  w.q.resize(static_cast<size_t>(p.n) * p.k);
  w.zeros.resize(static_cast<size_t>(n_groups) * p.n);
  w.scales = p.scales;
  for (int r = 0; r < p.k; ++r)
    for (int c = 0; c < words; ++c) {
      const uint32_t word = static_cast<uint32_t>(p.qweight[static_cast<size_t>(r) * words + c]);
      for (int j = 0; j < awq::kPackFactor; ++j)
        w.q[static_cast<size_t>(c * 8 + j) * p.k + r] = static_cast<uint8_t>(awq::unpack(word, j));
    }
  for (int g = 0; g < n_groups; ++g)
    for (int c = 0; c < words; ++c) {
      const uint32_t word = static_cast<uint32_t>(p.qzeros[static_cast<size_t>(g) * words + c]);
      for (int j = 0; j < awq::kPackFactor; ++j)
        w.zeros[static_cast<size_t>(g) * p.n + c * 8 + j] = static_cast<uint8_t>(awq::unpack(word, j));
    }
  return w;
}

namespace {

std::string layer_prefix(int i) { return "model.layers." + std::to_string(i) + "."; }

nlohmann::json read_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!file_exists(path)) fail(dir, "no config.json");
  return read_json_file(path);
}

template <class T>
std::vector<T> copy_entry(const SafetensorsEntry& e) {
  std::vector<T> out(e.nbytes / sizeof(T));
  std::memcpy(out.data(), e.data, e.nbytes);
  return out;
}

Linear quantized_linear(const SafetensorsDirectory& files, const std::string& base, int n, int k, int group_size) {
  const int group = group_size > 0 ? group_size : k;
  if (k % group != 0)
    fail(base, "group size " + std::to_string(group) + " does not divide in_features " + std::to_string(k));
  if (n % awq::kPackFactor != 0) fail(base, "out_features " + std::to_string(n) + " is not a multiple of 8");
  const int words = n / awq::kPackFactor, n_groups = k / group;
  const SafetensorsEntry& qweight = files.get(base + ".qweight", {"I32"}, {k, words});
  const SafetensorsEntry& qzeros = files.get(base + ".qzeros", {"I32"}, {n_groups, words});
  const SafetensorsEntry& scales = files.get(base + ".scales", {"F16"}, {n_groups, n});
  AwqPackedLinear p;
  p.n = n;
  p.k = k;
  p.group_size = group;
  p.qweight = copy_entry<int32_t>(qweight);
  p.qzeros = copy_entry<int32_t>(qzeros);
  p.scales = copy_entry<uint16_t>(scales);
  Linear l;
  l.name = base;
  l.quant = std::make_shared<const QuantizedWeight>(unpack_awq_linear(p, base));
  return l;
}

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

template <class T>
SafetensorsBlob raw_blob(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                         const std::vector<T>& v) {
  SafetensorsBlob b{name, dtype, std::move(shape), {}};
  b.bytes.resize(v.size() * sizeof(T));
  std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
  return b;
}

}  // namespace

void check_awq_storable(const LlamaConfig& c, int bits, int group_size) {
  const auto dims = linear_dims(c);
  for (int t = 0; t < kNumLinears; ++t) {
    const auto [n, k] = dims[t];
    QuantizedWeight shape_only;  // pack_awq_linear checks only these fields before packing
    shape_only.n = n;
    shape_only.k = k;
    shape_only.bits = bits;
    shape_only.group_size = group_size > 0 ? group_size : k;
    if (bits != awq::kBits || k % shape_only.group_size != 0 || n % awq::kPackFactor != 0)
      pack_awq_linear(shape_only, linear_hf_name(0, t));
  }
}

bool is_awq_checkpoint(const std::string& dir) {
  if (!is_directory(dir) || !file_exists(dir + "/config.json")) return false;
  const nlohmann::json j = read_config(dir);
  return j.contains("quantization_config") && j["quantization_config"].is_object() &&
         j["quantization_config"].value("quant_method", "") == "awq";
}

Model load_awq_checkpoint(const std::string& dir) {
  const nlohmann::json j = read_config(dir);
  const std::string config_path = dir + "/config.json";
  if (!j.contains("quantization_config") || !j["quantization_config"].is_object())
    fail(config_path, "no quantization_config: not an AWQ checkpoint");
  const nlohmann::json& qc = j["quantization_config"];
  if (qc.value("quant_method", "") != "awq") fail(config_path, "quantization_config.quant_method is not \"awq\"");
  const std::string version = qc.value("version", "gemm");
  if (version != "gemm" && version != "GEMM")
    fail(config_path, "quantization_config.version \"" + version + "\" not supported (only \"gemm\")");
  const int bits = qc.value("bits", qc.value("w_bit", 0));
  if (bits != awq::kBits) fail(config_path, "quantization_config.bits " + std::to_string(bits) + " (only 4)");
  const int group_size = qc.value("group_size", qc.value("q_group_size", 0));
  if (group_size == 0 || group_size < -1)
    fail(config_path, "quantization_config.group_size " + std::to_string(group_size) + " invalid");

  Model m;
  m.config = parse_hf_config(j, config_path);
  m.config.rope_interleaved = false;
  m.path = dir;
  m.format = "awq-safetensors";
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
      if (files.has(base + ".weight")) {  // listed in modules_to_not_convert: kept dense
        linears[t]->name = base;
        linears[t]->dense = dense(base + ".weight", {n, k});
        continue;
      }
      for (const char* part : {".qweight", ".qzeros", ".scales"}) used.insert(base + part);
      *linears[t] = quantized_linear(files, base, n, k, group_size);
    }
    // AutoAWQ keeps Qwen2's q/k/v biases as FP16 tensors beside the packed weights.
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

void write_awq_checkpoint(const Model& model, const std::string& dir, const AwqWriteOptions& options) {
  if (fs::exists(dir)) fail(dir, "already exists; remove it or choose another output directory");
  const LlamaConfig& c = model.config;
  std::vector<SafetensorsBlob> blobs;
  blobs.push_back(f16_blob(model.embed_tokens, "model.embed_tokens.weight"));
  // The format has one group size: that of the layers whose group is shorter than k, or -1 (one
  // group per output channel) when every layer is per-channel.
  int group_size = -1;
  for (const LayerWeights& l : model.layers)
    for (const Linear* linear : block_linears(l))
      if (linear->quant && linear->quant->group_size != linear->quant->k && group_size == -1)
        group_size = linear->quant->group_size;
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
      if (!linears[t]->quant) fail(base, "not quantized: every block linear of an AWQ checkpoint must be");
      if (linears[t]->kept) fail(base, "has kept FP16 columns, which the AutoAWQ format cannot store");
      QuantizedWeight w = *linears[t]->quant;
      if (w.group_size != (group_size == -1 ? w.k : group_size))
        fail(base, "group size " + std::to_string(w.group_size) + " differs from the other layers' " +
                       std::to_string(group_size) + " (the format has one group size)");
      if (c.rope_interleaved && (t == kQ || t == kK)) w = permute_rows(w, t == kQ ? rotary_rows_q : rotary_rows_k);
      const AwqPackedLinear packed = pack_awq_linear(w, base);
      const int64_t words = w.n / awq::kPackFactor, n_groups = w.k / w.group_size;
      blobs.push_back(raw_blob(base + ".qweight", "I32", {w.k, words}, packed.qweight));
      blobs.push_back(raw_blob(base + ".qzeros", "I32", {n_groups, words}, packed.qzeros));
      blobs.push_back(raw_blob(base + ".scales", "F16", {n_groups, w.n}, packed.scales));
      if (linears[t]->bias.data) blobs.push_back(f16_blob(linears[t]->bias, base + ".bias"));
    }
  }
  blobs.push_back(f16_blob(model.norm, "model.norm.weight"));
  if (!c.tie_word_embeddings) blobs.push_back(f16_blob(model.lm_head, "lm_head.weight"));

  LlamaConfig hf = c;
  hf.rope_interleaved = false;  // q/k rows were permuted above
  nlohmann::json config = hf_config_json(hf);
  config["torch_dtype"] = "float16";
  config["quantization_config"] = {{"quant_method", "awq"}, {"bits", awq::kBits},   {"group_size", group_size},
                                   {"zero_point", true},    {"version", "gemm"},    {"modules_to_not_convert", nullptr}};

  const std::string tmp = dir + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  if (!fs::create_directories(tmp, ec) || ec) fail(tmp, "cannot create directory: " + ec.message());
  try {
    write_safetensors(tmp + "/model.safetensors", blobs, {{"format", "pt"}});
    write_file_atomic(tmp + "/config.json", config.dump(2) + "\n");
    if (!options.tokenizer_path.empty()) {
      const std::string copy = tmp + (fs::path(options.tokenizer_path).extension() == ".json" ? "/tokenizer.json"
                                                                                             : "/tokenizer.model");
      fs::copy_file(options.tokenizer_path, copy, ec);
      if (ec) fail(options.tokenizer_path, "cannot copy tokenizer: " + ec.message());
      fs::permissions(copy, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read,
                      ec);  // not the source's read-only mode
    }
    if (!options.report.is_null()) write_file_atomic(tmp + "/quantize_report.json", options.report.dump(2) + "\n");
    fs::rename(tmp, dir, ec);
    if (ec) fail(dir, "cannot rename " + tmp + " into place: " + ec.message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace qb
