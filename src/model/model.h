#pragma once
// The one in-memory model for every source format (HF safetensors directory, llama2.c .bin) and
// every weight format (FP32/FP16/BF16 dense, group-quantized integers). Three kinds of state, as
// in llama2.c: LlamaConfig (the blueprint), Model (read-only weights, in their storage dtype),
// and the run state each backend allocates for itself.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qb {

struct LlamaConfig {
  int hidden_size = 0;        // model width: embeddings, residual stream, norms
  int intermediate_size = 0;  // MLP inner width (gate/up outputs, down input)
  int n_layers = 0;     // transformer blocks
  int n_heads = 0;      // query heads
  int n_kv_heads = 0;   // key/value heads (grouped-query attention when < n_heads)
  int vocab_size = 0;
  int max_seq_len = 0;  // positions the model was trained on (HF max_position_embeddings)
  float rope_theta = 10000.0f;
  float rms_norm_eps = 1e-5f;
  bool tie_word_embeddings = false;  // lm_head shares embed_tokens
  // RoPE pairs: llama2.c / Meta checkpoints rotate (x[2i], x[2i+1]); HF checkpoints, whose q/k
  // rows were permuted at conversion, rotate (x[i], x[i + head_dim/2]).
  bool rope_interleaved = false;
  // HF rope_scaling {"rope_type": "llama3"} (Llama 3.1/3.2): low frequencies slowed by
  // rope_factor, high ones kept, a smooth blend between (rope_inv_freq).
  bool rope_llama3 = false;
  float rope_factor = 1.0f, rope_low_freq_factor = 1.0f, rope_high_freq_factor = 1.0f;
  int rope_original_max_position_embeddings = 0;
  bool attention_bias = false;  // q/k/v projections carry biases (Qwen2, model_type "qwen2")
  // Mistral/Qwen2 sliding-window attention: windows of at most this many tokens are exact full
  // attention; longer ones are refused (check_window_length). 0: none.
  int sliding_window = 0;
  int head_dim() const { return hidden_size / n_heads; }
};

// RoPE inverse frequencies [head_dim/2]: theta^(-2i/head_dim), rescaled as HF transformers'
// _compute_llama3_parameters when rope_llama3. The CPU and CUDA forward passes both use it.
std::vector<double> rope_inv_freq(const LlamaConfig& c);
// Throws qb::Error when a window of n_tokens would need attention the forward passes do not do
// (sliding_window shorter than the window).
void check_window_length(const LlamaConfig& c, int n_tokens, const std::string& where);

// Scalar dtypes, and llama.cpp's block-quantized ones (a GGUF tensor as stored: each row is
// consecutive ggml blocks, layouts/ggml_blocks.h), which Tensor::to_float dequantizes as ggml does.
enum class DType { F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };
namespace ggml { enum class Type : uint32_t; }  // layouts/ggml_blocks.h
ggml::Type dtype_ggml_type(DType t);                          // the ggml type with this storage
std::optional<DType> dtype_of_ggml_type(ggml::Type t);  // none for ggml types that are no DType
const char* dtype_name(DType t);  // "F32", "F16", "BF16", "Q4_0" ... "Q6_K" (ggml's names)
bool is_block_dtype(DType t);
int dtype_block_elems(DType t);   // values per block: 1 for scalars, 32 or 256 for ggml blocks
size_t dtype_block_bytes(DType t);  // bytes per block (per value for scalars)
// Bytes of a row of row_len values; fails unless row_len is a multiple of the block size.
size_t dtype_row_bytes(DType t, int64_t row_len);

// A tensor in its storage dtype, row-major (the last dimension is the row; block dtypes pack it). `owner` keeps the bytes alive (a file mapping
// or an owned buffer), so copies are cheap and share the data.
struct Tensor {
  std::string name;  // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  std::shared_ptr<const void> owner;

  int64_t numel() const;
  size_t nbytes() const;
  float at(int64_t i) const;          // element i widened to float (its block dequantized)
  std::vector<float> to_float() const;
  // Rows [row_begin, row_end) of the tensor seen as [rows, shape.back()], widened into out
  // (row_end - row_begin rows): the per-tile conversion of weights used as stored. Serial.
  void rows_to_float(int64_t row_begin, int64_t row_end, float* out) const;
  static Tensor from_float(std::string name, std::vector<int64_t> shape, const std::vector<float>& values,
                           DType dtype);
};

// Group-wise affine integer weights for y = x W^T, W [n, k] (n = out_features, k = in_features):
//   W[o][i] = (q[o][i] - zero[g][o]) * scale[g][o],  g = i / group_size  (or g_idx[i])
// The last group is shorter when group_size does not divide k; group_size == k is per-channel.
// GPTQ checkpoints quantized with act-order and no static groups (quant/gptq_format.h) assign
// input channels to groups out of order: g_idx holds each channel's group. The CPU dequantizes
// them; the GPU's W4A16 kernels take contiguous groups only and refuse them.
// Codes are held packed as stored, `bits` wide, LSB first, each output row o in a byte range of its
// own (row_bytes() = ceil(k * bits / 8), the last byte's unused high bits zero): for bits = 4 two
// codes share a byte, the even input channel in the low nibble. Rows never share a byte, so
// different rows may be written from different threads. The checkpoint formats (AutoAWQ 4-bit,
// GPTQ 2/4/8-bit) repack them into their int32 layouts, see quant/awq_format.h, quant/gptq_format.h.
struct QuantizedWeight {
  int n = 0, k = 0;
  int bits = 4;
  int group_size = 128;
  bool symmetric = false;        // symmetric: zero is fixed at 2^(bits-1)
  std::vector<uint16_t> scales;  // [n_groups, n] FP16 bits
  std::vector<uint8_t> zeros;    // [n_groups, n] integer zero points
  std::vector<int32_t> g_idx;    // [k] group of each input channel; empty: i / group_size

  // Sets the shape, sizes codes (all 0), scales and zeros for it, and clears g_idx.
  void allocate(int n_out, int k_in, int code_bits, int group);
  size_t row_bytes() const { return (static_cast<size_t>(k) * bits + 7) / 8; }
  uint8_t code(int o, int i) const;
  void set_code(int o, int i, uint8_t v);          // v in 0 .. 2^bits - 1
  void row_codes(int o, uint8_t* out) const;       // out [k]: the codes of row o
  void set_row_codes(int o, const uint8_t* codes);  // codes [k] in 0 .. 2^bits - 1
  const std::vector<uint8_t>& packed_codes() const { return codes_; }  // [n, row_bytes()]

  int n_groups() const { return (k + group_size - 1) / group_size; }
  int group_of(int i) const { return g_idx.empty() ? i / group_size : g_idx[i]; }
  size_t stored_bytes() const;  // quantized_stored_bytes(n, k, bits, group_size), + int32 g_idx when present
  std::vector<float> dequantize() const;  // [n, k]
  // Output rows [row_begin, row_end) dequantized into out [row_end - row_begin, k]. Serial.
  void dequantize_rows(int row_begin, int row_end, float* out) const;

 private:
  std::vector<uint8_t> codes_;  // [n, row_bytes()] packed codes in 0 .. 2^bits - 1
};

// Bytes of a quantized W [n, k] as stored: codes packed bits-wide, FP16 scales, zero points packed
// bits-wide (AutoAWQ's qweight + scales + qzeros for bits = 4). Also what the projected VRAM of
// models too large to load counts (eval/vram_catalog.h).
size_t quantized_stored_bytes(int64_t n, int64_t k, int bits, int group_size);

// Input channels (columns of W [out, in]) kept in FP16 beside a quantized W, as in the AWQ
// paper's Table 1 (rtn-keep): the dequantized W's column cols[j] is replaced by values[o][j].
// Stored as FP16 values + int32 indices.
struct KeptColumns {
  std::vector<int32_t> cols;     // ascending input channels
  std::vector<uint16_t> values;  // [out, cols.size()] FP16 bits
  size_t stored_bytes() const { return values.size() * sizeof(uint16_t) + cols.size() * sizeof(int32_t); }
};

// A linear layer's weight W [out, in] (PyTorch layout, y = x W^T): dense or quantized.
struct Linear {
  std::string name;                              // HF module name, e.g. "model.layers.0.mlp.up_proj"
  Tensor dense;                                  // used when quant is null
  std::shared_ptr<const QuantizedWeight> quant;  // group-quantized weights
  std::shared_ptr<const KeptColumns> kept;       // with quant only: columns kept in FP16 (CPU only)
  Tensor bias;                                   // [out] y = x W^T + bias; no data when absent. Never quantized.
  int out_features() const;
  int in_features() const;
  size_t stored_bytes() const;
};

struct LayerWeights {
  Tensor attn_norm;   // [hidden_size]  input_layernorm.weight
  Linear q_proj;      // [n_heads*head_dim, hidden_size]     (+ bias when attention_bias)
  Linear k_proj;      // [n_kv_heads*head_dim, hidden_size]  (+ bias when attention_bias)
  Linear v_proj;      // [n_kv_heads*head_dim, hidden_size]  (+ bias when attention_bias)
  Linear o_proj;      // [hidden_size, n_heads*head_dim]
  Tensor mlp_norm;    // [hidden_size]  post_attention_layernorm.weight
  Linear gate_proj;   // [intermediate_size, hidden_size]  (llama2.c w1)
  Linear up_proj;     // [intermediate_size, hidden_size]  (llama2.c w3)
  Linear down_proj;   // [hidden_size, intermediate_size]  (llama2.c w2)
};

struct Model {
  LlamaConfig config;
  std::string path;    // file or directory it was loaded from
  std::string format;  // "safetensors" | "llama2c" | "awq-safetensors"
  Tensor embed_tokens;  // [vocab_size, hidden_size]
  std::vector<LayerWeights> layers;
  Tensor norm;          // [hidden_size] final RMSNorm
  Tensor lm_head;       // [vocab_size, hidden_size]; shares embed_tokens' data when tied

  int64_t parameter_count() const;  // trainable parameters, tied lm_head counted once
  // Bytes of weights as stored, by dtype name ("F32", "F16", "BF16", "Q4" ...), tied counted once;
  // kept FP16 columns (values and their int32 indices) count as "F16".
  std::vector<std::pair<std::string, size_t>> weight_bytes_by_dtype() const;
  size_t weight_bytes() const;
};

// Throws qb::Error if any weight holds NaN or Inf, naming the tensor.
void check_finite(const Model& m);

}  // namespace qb
