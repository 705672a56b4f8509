#pragma once
// llama.cpp's file types ("mixes") as llama-quantize makes them with no importance matrix
// (src/llama-quant.cpp at b4747, commit c392e509): which ggml type each tensor gets
// (llama_tensor_get_type), and the model quantized that way with llama.cpp's reference
// quantizers (layouts/ggml_quants.h), so its blocks are the bytes llama-quantize writes.
//
// The choice per tensor, for a Llama without experts:
//   - 1-D tensors (norms) and tensors not named *.weight are not quantized (kept, F32 in a GGUF);
//   - output.weight (or token_embd.weight when the head is tied) takes Q6_K unless the mix's type
//     is Q8_0, or Q8_0 when its rows are not a multiple of the type's block size;
//   - attn_v, ffn_down and attn_output follow the mix's rules, by layer: "use more bits" layers are
//     i < n/8, i >= 7n/8 and (i - n/8) % 3 == 2;
//   - a row length that is not a multiple of the chosen type's block size falls back: Q4_K -> Q5_0,
//     Q5_K -> Q5_1, Q6_K -> Q8_0, then F16 if still not; Q2_K / Q3_K would fall back to IQ4_NL,
//     which this project does not make (an error). Legacy types with such rows are an error, as
//     in llama.cpp ("Unsupported tensor size encountered").
// Not modelled: llama.cpp's 70B-model and 8-expert rules, Falcon, the IQ mixes.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layouts/ggml_blocks.h"
#include "model/model.h"
#include "quant/quantize.h"

namespace qb {

// One llama.cpp file type.
struct GgufFileType {
  const char* name;         // as llama-quantize's argument, lower case: "q4_k_m"
  uint32_t ftype;           // llama_ftype, written as general.file_type: LLAMA_FTYPE_MOSTLY_Q4_K_M = 15
  ggml::Type default_type;  // the type most tensors get
  int bits;                 // nominal bits per weight of the default type's codes
};
// The file types this project makes: q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k_m q4_k_s q4_k_m q5_k_s q5_k_m q6_k.
const std::vector<GgufFileType>& gguf_file_types();
// Fails listing the known names when `name` is none of them.
const GgufFileType& gguf_file_type(const std::string& name);

// A tensor whose rows did not fit its type's blocks, as llama.cpp reports it ("tensor cols x rows
// are not divisible by block, required for type - using fallback quantization type").
struct GgufFallback {
  std::string tensor;  // GGUF name
  int64_t cols = 0, rows = 0;
  ggml::Type wanted, used;
};

// llama_tensor_get_type with its counters: call choose() for every tensor in llama-quantize's
// order (gguf_quantize_order, model/gguf_writer.h).
class GgufTypeChooser {
 public:
  GgufTypeChooser(const GgufFileType& file_type, const LlamaConfig& config, bool has_output);
  // The type of GGUF tensor `name` with ggml dimensions `ne` (ne[0] the row length) stored as
  // `source`: `source` itself when llama-quantize copies it unchanged.
  ggml::Type choose(const std::string& name, const std::vector<int64_t>& ne, ggml::Type source);
  const std::vector<GgufFallback>& fallbacks() const { return fallbacks_; }
  int n_quantized() const { return n_k_quantized_ + static_cast<int>(fallbacks_.size()); }

 private:
  ggml::Type mix_type(const std::string& name, int64_t cols, ggml::Type type);
  const GgufFileType& ft_;
  int n_layers_, n_gqa_;
  bool has_output_;
  int i_attention_wv_ = 0, i_ffn_down_ = 0;
  int n_k_quantized_ = 0;
  std::vector<GgufFallback> fallbacks_;
};

// The model with every tensor llama-quantize would quantize replaced by a Tensor of the chosen
// block type (embed_tokens and lm_head included), q/k rows kept in the model's order (row-wise
// quantization does not depend on it). Fills result.model and result.quantization:
//   {"method": "gguf", "type": "q4_k_m", "ftype": 15, "llama_cpp": "b4747 (c392e509)",
//    "bits": nominal bits, "group_size": the default type's block size, "zero_point": whether the
//    default type stores a min, "symmetric", "clip": false, "calibration": null, "search": null,
//    "bits_per_weight": stored bits per quantized weight, "tensor_types": {"Q4_K": 13, ...},
//    "fallbacks": [{"tensor", "cols", "rows", "wanted", "used"}], "fallback_summary": null or
//    "<n> of <m> tensor(s) required fallback quantization" (llama.cpp's words)}.
void quantize_gguf_model(const Model& fp16, const QuantizeOptions& options, QuantizeResult& result);

}  // namespace qb
