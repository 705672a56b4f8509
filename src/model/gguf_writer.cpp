#include "model/gguf_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <regex>
#include <set>

#include "common/error.h"
#include "common/files.h"
#include "common/half.h"
#include "layouts/ggml_blocks.h"
#include "model/block_linears.h"

namespace qb {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;

// Appends little-endian values to the file image (this project runs on little-endian hosts only,
// as gguf.h's reader requires).
struct ByteSink {
  std::string bytes;
  template <typename T>
  void put(T v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.append(s);
  }
  void pad_to(uint64_t alignment) { bytes.append((alignment - bytes.size() % alignment) % alignment, '\0'); }
};

void put_scalar(ByteSink& out, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: out.put<uint8_t>(static_cast<uint8_t>(v.uint)); break;
    case GgufType::INT8: out.put<int8_t>(static_cast<int8_t>(v.sint)); break;
    case GgufType::UINT16: out.put<uint16_t>(static_cast<uint16_t>(v.uint)); break;
    case GgufType::INT16: out.put<int16_t>(static_cast<int16_t>(v.sint)); break;
    case GgufType::UINT32: out.put<uint32_t>(static_cast<uint32_t>(v.uint)); break;
    case GgufType::INT32: out.put<int32_t>(static_cast<int32_t>(v.sint)); break;
    case GgufType::FLOAT32: out.put<float>(static_cast<float>(v.real)); break;
    case GgufType::BOOL: out.put<uint8_t>(v.uint ? 1 : 0); break;
    case GgufType::STRING: out.put_string(v.string); break;
    case GgufType::UINT64: out.put<uint64_t>(v.uint); break;
    case GgufType::INT64: out.put<int64_t>(v.sint); break;
    case GgufType::FLOAT64: out.put<double>(v.real); break;
    case GgufType::ARRAY: fail("gguf writer", "arrays of arrays are not written");
  }
}

void put_value(ByteSink& out, const GgufValue& v) {
  out.put<uint32_t>(static_cast<uint32_t>(v.type));
  if (v.type != GgufType::ARRAY) {
    put_scalar(out, v);
    return;
  }
  out.put<uint32_t>(static_cast<uint32_t>(v.element_type));
  out.put<uint64_t>(v.array.size());
  for (const GgufValue& e : v.array) put_scalar(out, e);
}

// The layer of a GGUF tensor name ("blk.<n>."), -1 outside blocks.
int gguf_layer(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// convert_hf_to_gguf.py's LlamaModel.permute for one projection: within each of n_heads heads of
// head_dim rows, GGUF row r is HF row (r % 2) * head_dim/2 + r / 2.
Tensor permute_rope_rows(const Tensor& t, int n_heads) {
  const int64_t rows = t.shape.at(0);
  if (rows % n_heads != 0 || (rows / n_heads) % 2 != 0)
    fail(t.name, "rows " + std::to_string(rows) + " do not split into " + std::to_string(n_heads) + " heads of even size");
  const int64_t head_dim = rows / n_heads;
  const size_t row_bytes = t.nbytes() / static_cast<size_t>(rows);
  auto buf = std::make_shared<std::vector<uint8_t>>(t.nbytes());
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t r = 0; r < head_dim; ++r) {
      const int64_t from = h * head_dim + (r % 2) * (head_dim / 2) + r / 2;
      std::memcpy(buf->data() + (h * head_dim + r) * row_bytes, src + from * row_bytes, row_bytes);
    }
  }
  Tensor out = t;
  out.data = buf->data();
  out.owner = std::shared_ptr<const void>(buf, buf->data());
  return out;
}

// "1.8M": convert_hf_to_gguf.py's size label, at least two significant digits.
std::string size_label(int64_t params) {
  const char* suffix = "K";
  double scaled = params / 1e3;
  if (params >= 1000000000000LL) {
    suffix = "T";
    scaled = params / 1e12;
  } else if (params >= 1000000000LL) {
    suffix = "B";
    scaled = params / 1e9;
  } else if (params >= 1000000LL) {
    suffix = "M";
    scaled = params / 1e6;
  }
  const int int_digits = static_cast<int>(std::to_string(static_cast<int64_t>(scaled)).size());
  char text[64];
  std::snprintf(text, sizeof(text), "%.*f%s", std::max(0, 2 - int_digits), scaled, suffix);
  return text;
}

}  // namespace

void gguf_set(GgufMetadata& metadata, const std::string& key, GgufValue value) {
  metadata.erase(std::remove_if(metadata.begin(), metadata.end(), [&](const auto& kv) { return kv.first == key; }),
                 metadata.end());
  metadata.emplace_back(key, std::move(value));
}

void set_quantized_file_type(GgufMetadata& metadata, uint32_t file_type) {
  gguf_set(metadata, "general.quantization_version", GgufValue::u32(2));
  gguf_set(metadata, "general.file_type", GgufValue::u32(file_type));
}

void write_gguf(const std::string& path, const GgufMetadata& metadata, const std::vector<GgufTensorOut>& tensors) {
  uint64_t alignment = kDefaultAlignment;
  std::set<std::string> keys;
  for (const auto& [key, value] : metadata) {
    if (!keys.insert(key).second) fail(path, "metadata key " + key + ": written twice");
    if (key == "general.alignment") alignment = value.uint;
  }
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    fail(path, "metadata key general.alignment: " + std::to_string(alignment) + " is not a power of two");

  ByteSink out;
  out.bytes.append("GGUF", 4);
  out.put<uint32_t>(kGgufVersion);
  out.put<uint64_t>(tensors.size());
  out.put<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata) {
    out.put_string(key);
    put_value(out, value);
  }
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const GgufTensorOut& t : tensors) {
    if (!names.insert(t.name).second) fail(path, "tensor " + t.name + ": written twice");
    const std::vector<int64_t>& shape = t.tensor.shape;
    if (shape.empty()) fail(path, "tensor " + t.name + ": no dimensions");
    dtype_row_bytes(t.tensor.dtype, shape.back());  // fails unless rows are whole blocks
    out.put_string(t.name);
    out.put<uint32_t>(static_cast<uint32_t>(shape.size()));
    for (auto d = shape.rbegin(); d != shape.rend(); ++d) out.put<uint64_t>(static_cast<uint64_t>(*d));
    out.put<uint32_t>(static_cast<uint32_t>(dtype_ggml_type(t.tensor.dtype)));
    out.put<uint64_t>(offset);
    offset += (t.tensor.nbytes() + alignment - 1) / alignment * alignment;
  }
  out.pad_to(alignment);
  for (const GgufTensorOut& t : tensors) {
    out.bytes.append(static_cast<const char*>(t.tensor.data), t.tensor.nbytes());
    out.pad_to(alignment);
  }
  write_file_atomic(path, out.bytes);
}

std::string gguf_tensor_name(const std::string& hf_name) {
  if (hf_name == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf_name == "lm_head.weight") return "output.weight";
  if (hf_name == "model.norm.weight") return "output_norm.weight";
  static const std::regex layer_re(R"(^model\.layers\.([0-9]+)\.(.+)\.(weight|bias)$)");
  std::smatch m;
  if (std::regex_match(hf_name, m, layer_re)) {
    const std::string blk = "blk." + m[1].str() + ".", part = m[2], suffix = "." + m[3].str();
    if (part == "input_layernorm") return blk + "attn_norm" + suffix;
    if (part == "post_attention_layernorm") return blk + "ffn_norm" + suffix;
    for (const BlockLinear& l : kBlockLinears)
      if (part == l.hf_name) return blk + l.gguf_name + suffix;
  }
  fail(hf_name, "no llama.cpp tensor name for this tensor");
}

bool gguf_quantize_order(const std::string& a, const std::string& b) {
  const int la = gguf_layer(a), lb = gguf_layer(b);
  if (la != lb) return la < lb;
  return a < b;
}

std::vector<GgufTensorOut> gguf_tensors_of(const Model& model) {
  const LlamaConfig& c = model.config;
  if (c.rope_llama3) fail(model.path, "Llama 3 RoPE scaling needs llama.cpp's rope_freqs tensor, which is not written");
  std::vector<GgufTensorOut> out;
  auto add = [&](const Tensor& t) {
    Tensor stored = t;
    if (t.shape.size() == 1 && t.dtype != DType::F32) stored = Tensor::from_float(t.name, t.shape, t.to_float(), DType::F32);
    out.push_back({gguf_tensor_name(t.name), stored});
  };
  add(model.embed_tokens);
  if (!c.tie_word_embeddings) add(model.lm_head);
  add(model.norm);
  for (const LayerWeights& layer : model.layers) {
    add(layer.attn_norm);
    add(layer.mlp_norm);
    for (const Linear* linear : block_linears(layer)) {
      if (linear->quant) fail(linear->name, "group-quantized weights have no GGUF type");
      Tensor w = linear->dense;
      if (!c.rope_interleaved && linear == &layer.q_proj) w = permute_rope_rows(w, c.n_heads);
      if (!c.rope_interleaved && linear == &layer.k_proj) w = permute_rope_rows(w, c.n_kv_heads);
      add(w);
      if (linear->bias.data) add(linear->bias);
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return gguf_quantize_order(a.name, b.name); });
  return out;
}

GgufMetadata llama_gguf_metadata(const Model& model, const std::string& name, uint32_t file_type,
                                 const GgufVocabularyOut* vocab) {
  const LlamaConfig& c = model.config;
  if (c.attention_bias) fail(model.path, "q/k/v biases (Qwen2) are not a llama.cpp \"llama\" architecture");
  GgufMetadata m;
  m.emplace_back("general.architecture", GgufValue::str("llama"));
  m.emplace_back("general.type", GgufValue::str("model"));
  m.emplace_back("general.name", GgufValue::str(name));
  m.emplace_back("general.size_label", GgufValue::str(size_label(model.parameter_count())));
  m.emplace_back("llama.block_count", GgufValue::u32(c.n_layers));
  m.emplace_back("llama.context_length", GgufValue::u32(c.max_seq_len));
  m.emplace_back("llama.embedding_length", GgufValue::u32(c.hidden_size));
  m.emplace_back("llama.feed_forward_length", GgufValue::u32(c.intermediate_size));
  m.emplace_back("llama.attention.head_count", GgufValue::u32(c.n_heads));
  m.emplace_back("llama.attention.head_count_kv", GgufValue::u32(c.n_kv_heads));
  m.emplace_back("llama.rope.freq_base", GgufValue::f32(c.rope_theta));
  m.emplace_back("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(c.rms_norm_eps));
  m.emplace_back("general.file_type", GgufValue::u32(file_type));
  m.emplace_back("llama.vocab_size", GgufValue::u32(c.vocab_size));
  m.emplace_back("llama.rope.dimension_count", GgufValue::u32(c.head_dim()));
  if (vocab) {
    if (vocab->scores.size() != vocab->tokens.size() || vocab->token_types.size() != vocab->tokens.size())
      fail(model.path, "vocabulary: tokens, scores and token types differ in count");
    m.emplace_back("tokenizer.ggml.model", GgufValue::str("llama"));
    m.emplace_back("tokenizer.ggml.pre", GgufValue::str("default"));
    m.emplace_back("tokenizer.ggml.tokens", GgufValue::strings(vocab->tokens));
    m.emplace_back("tokenizer.ggml.scores", GgufValue::f32s(vocab->scores));
    m.emplace_back("tokenizer.ggml.token_type", GgufValue::i32s(vocab->token_types));
    if (vocab->bos_id >= 0) m.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(vocab->bos_id));
    if (vocab->eos_id >= 0) m.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(vocab->eos_id));
    if (vocab->unk_id >= 0) m.emplace_back("tokenizer.ggml.unknown_token_id", GgufValue::u32(vocab->unk_id));
    if (vocab->add_bos >= 0) m.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(vocab->add_bos));
    if (vocab->add_eos >= 0) m.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(vocab->add_eos));
  }
  m.emplace_back("general.quantization_version", GgufValue::u32(2));
  return m;
}

}  // namespace qb
