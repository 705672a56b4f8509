#include "quant/gguf_quantize.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "common/error.h"
#include "layouts/ggml_quants.h"
#include "model/block_linears.h"
#include "model/gguf_writer.h"

namespace qb {
namespace {

using ggml::Type;

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// llama_tensor_get_type's "use more bits" layers: the first and last eighth, and every third
// layer between.
bool use_more_bits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// Whether the type's blocks store a minimum (an affine zero point) beside the scale.
bool stores_min(Type t) {
  return t == Type::Q4_1 || t == Type::Q5_1 || t == Type::Q2_K || t == Type::Q4_K || t == Type::Q5_K;
}

}  // namespace

const std::vector<GgufFileType>& gguf_file_types() {
  // llama_ftype numbers from llama.h (b4747).
  static const std::vector<GgufFileType> kTypes = {
      {"q4_0", 2, Type::Q4_0, 4},   {"q4_1", 3, Type::Q4_1, 4},   {"q8_0", 7, Type::Q8_0, 8},
      {"q5_0", 8, Type::Q5_0, 5},   {"q5_1", 9, Type::Q5_1, 5},   {"q2_k", 10, Type::Q2_K, 2},
      {"q3_k_m", 12, Type::Q3_K, 3}, {"q4_k_s", 14, Type::Q4_K, 4}, {"q4_k_m", 15, Type::Q4_K, 4},
      {"q5_k_s", 16, Type::Q5_K, 5}, {"q5_k_m", 17, Type::Q5_K, 5}, {"q6_k", 18, Type::Q6_K, 6},
  };
  return kTypes;
}

const GgufFileType& gguf_file_type(const std::string& name) {
  std::string known;
  for (const GgufFileType& t : gguf_file_types()) {
    if (name == t.name) return t;
    known += (known.empty() ? "" : ", ") + std::string(t.name);
  }
  fail("gguf", "'" + name + "' is not a llama.cpp type this project makes (" + known + ")");
}

GgufTypeChooser::GgufTypeChooser(const GgufFileType& file_type, const LlamaConfig& config, bool has_output)
    : ft_(file_type),
      n_layers_(config.n_layers),
      n_gqa_(config.n_kv_heads > 0 ? config.n_heads / config.n_kv_heads : 1),
      has_output_(has_output) {}

// llama_tensor_get_type's rules for the file types of gguf_file_types(), in its order.
Type GgufTypeChooser::mix_type(const std::string& name, int64_t cols, Type type) {
  const std::string ft = ft_.name;
  if (name == "output.weight" || (!has_output_ && name == "token_embd.weight")) {
    if (cols % ggml::block_elems(type) != 0)
      type = Type::Q8_0;
    else if (type != Type::Q8_0)
      type = Type::Q6_K;
  } else if (name == "token_embd.weight") {
    // only the IQ and TQ mixes change it
  } else if (contains(name, "attn_v.weight")) {
    if (ft == "q2_k")
      type = n_gqa_ >= 4 ? Type::Q4_K : Type::Q3_K;
    else if (ft == "q3_k_m")
      type = i_attention_wv_ < 2 ? Type::Q5_K : Type::Q4_K;
    else if ((ft == "q4_k_m" || ft == "q5_k_m") && use_more_bits(i_attention_wv_, n_layers_))
      type = Type::Q6_K;
    else if (ft == "q4_k_s" && i_attention_wv_ < 4)
      type = Type::Q5_K;
    ++i_attention_wv_;
  } else if (contains(name, "attn_k.weight") || contains(name, "attn_q.weight")) {
    // only the IQ mixes and 8-expert models change them
  } else if (contains(name, "ffn_down")) {
    const int i_layer = i_ffn_down_, n_layer = n_layers_;
    if (ft == "q2_k")
      type = Type::Q3_K;
    else if (ft == "q3_k_m")
      type = i_layer < n_layer / 16 ? Type::Q5_K : Type::Q4_K;
    else if (ft == "q4_k_m" && use_more_bits(i_layer, n_layer))
      type = Type::Q6_K;
    else if (ft == "q5_k_m" && use_more_bits(i_layer, n_layer))
      type = Type::Q6_K;
    else if (ft == "q4_k_s" && i_layer < n_layer / 8)
      type = Type::Q5_K;
    ++i_ffn_down_;
  } else if (contains(name, "attn_output.weight")) {
    if (ft == "q2_k")
      type = Type::Q3_K;
    else if (ft == "q3_k_m")
      type = Type::Q4_K;
  }
  return type;
}

Type GgufTypeChooser::choose(const std::string& name, const std::vector<int64_t>& ne, Type source) {
  int n_dims = static_cast<int>(ne.size());
  while (n_dims > 1 && ne[n_dims - 1] == 1) --n_dims;  // ggml_n_dims ignores trailing 1s
  const bool quantize = name.size() >= 6 && name.compare(name.size() - 6, 6, "weight") == 0 && n_dims >= 2 &&
                        !contains(name, "_norm.weight") && !contains(name, "ffn_gate_inp.weight");
  if (!quantize) return source;
  const int64_t cols = ne.at(0), rows = ne.size() > 1 ? ne[1] : 1;
  Type type = mix_type(name, cols, ft_.default_type);
  if (cols % ggml::block_elems(type) == 0) {
    ++n_k_quantized_;
    return type;
  }
  Type used;
  switch (type) {
    case Type::Q4_K: used = Type::Q5_0; break;
    case Type::Q5_K: used = Type::Q5_1; break;
    case Type::Q6_K: used = Type::Q8_0; break;
    case Type::Q2_K:
    case Type::Q3_K:
      fail(name, std::to_string(cols) + " columns are not a multiple of 256: llama.cpp falls back to IQ4_NL, "
                 "which quantbench does not make");
    default:
      fail(name, std::to_string(cols) + " columns are not a multiple of " + std::to_string(ggml::block_elems(type)) +
                     " (" + ggml::type_name(type) + "): Unsupported tensor size encountered (llama.cpp)");
  }
  if (cols % ggml::block_elems(used) != 0) used = Type::F16;
  fallbacks_.push_back({name, cols, rows, type, used});
  return used;
}

void quantize_gguf_model(const Model& fp16, const QuantizeOptions& options, QuantizeResult& result) {
  const auto start = std::chrono::steady_clock::now();
  const GgufFileType& ft = gguf_file_type(options.gguf_type);
  Model& m = result.model;
  m = fp16;
  const bool tied = m.config.tie_word_embeddings;

  // Every tensor of the model, under its GGUF name, in llama-quantize's order.
  std::vector<std::pair<std::string, Tensor*>> tensors;
  auto add = [&](Tensor& t) {
    if (t.data) tensors.emplace_back(gguf_tensor_name(t.name), &t);
  };
  add(m.embed_tokens);
  if (!tied) add(m.lm_head);
  add(m.norm);
  for (LayerWeights& layer : m.layers) {
    add(layer.attn_norm);
    add(layer.mlp_norm);
    for (Linear* linear : block_linears(layer)) {
      if (linear->quant) fail(linear->name, "is already quantized");
      add(linear->dense);
      add(linear->bias);
    }
  }
  std::stable_sort(tensors.begin(), tensors.end(),
                   [](const auto& a, const auto& b) { return gguf_quantize_order(a.first, b.first); });

  GgufTypeChooser chooser(ft, m.config, !tied);
  std::map<std::string, int> tensor_types;
  size_t quantized_bytes = 0;
  int64_t quantized_weights = 0;
  for (auto& [name, tensor] : tensors) {
    // As convert_hf_to_gguf.py stores it: 1-D tensors in F32, others in their dtype.
    if (is_block_dtype(tensor->dtype))  // as llama-quantize without --allow-requantize
      fail(tensor->name, std::string("requantizing from type ") + dtype_name(tensor->dtype) + " is disabled");
    const Type stored = tensor->shape.size() == 1 ? Type::F32 : dtype_ggml_type(tensor->dtype);
    const std::vector<int64_t> ne(tensor->shape.rbegin(), tensor->shape.rend());
    const Type type = chooser.choose(name, ne, stored);
    ++tensor_types[ggml::type_name(type)];
    if (type == stored) continue;
    const int64_t cols = ne[0], rows = tensor->numel() / cols;
    const DType dtype = dtype_of_ggml_type(type).value();
    const size_t row_bytes = dtype_row_bytes(dtype, cols);
    auto buf = std::make_shared<std::vector<uint8_t>>(row_bytes * rows);
    const std::vector<float> x = tensor->to_float();
    // Rows are independent, so splitting them among threads leaves every block as it is.
    constexpr int64_t kRowsPerTask = 16;
#pragma omp parallel for schedule(dynamic)
    for (int64_t r0 = 0; r0 < rows; r0 += kRowsPerTask) {
      const int64_t n = std::min(kRowsPerTask, rows - r0);
      ggml::quantize_rows(type, x.data() + r0 * cols, buf->data() + r0 * row_bytes, n, cols);
    }
    Tensor q;
    q.name = tensor->name;
    q.dtype = dtype;
    q.shape = tensor->shape;
    q.data = buf->data();
    q.owner = std::shared_ptr<const void>(buf, buf->data());
    *tensor = q;
    quantized_bytes += buf->size();
    quantized_weights += rows * cols;
  }
  if (tied) {
    const std::string name = m.lm_head.name;
    m.lm_head = m.embed_tokens;
    m.lm_head.name = name;
  }

  nlohmann::json fallbacks = nlohmann::json::array();
  for (const GgufFallback& f : chooser.fallbacks())
    fallbacks.push_back({{"tensor", f.tensor}, {"cols", f.cols}, {"rows", f.rows},
                         {"wanted", ggml::type_name(f.wanted)}, {"used", ggml::type_name(f.used)}});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.quantization = {
      {"method", family_name(MethodFamily::Gguf)},
      {"type", ft.name},
      {"ftype", ft.ftype},
      {"llama_cpp", "b4747 (c392e509)"},
      {"bits", ft.bits},
      {"group_size", ggml::block_elems(ft.default_type)},
      {"zero_point", stores_min(ft.default_type)},
      {"symmetric", !stores_min(ft.default_type)},
      {"clip", false},
      {"calibration", nullptr},
      {"search", nullptr},
      {"bits_per_weight", quantized_weights ? 8.0 * quantized_bytes / quantized_weights : 0.0},
      {"tensor_types", tensor_types},
      {"fallbacks", fallbacks},
      {"fallback_summary", fallbacks.empty() ? nlohmann::json(nullptr)
                                             : nlohmann::json(std::to_string(fallbacks.size()) + " of " +
                                                              std::to_string(chooser.n_quantized()) +
                                                              " tensor(s) required fallback quantization")},
      {"seconds", seconds},
  };
}

}  // namespace qb
