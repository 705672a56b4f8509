#include "model/cpu_forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/half.h"
#include "layouts/ggml_quants.h"
#include "model/block_linears.h"

namespace qb {

const char* activations_name(Activations a) { return a == Activations::Exact ? "exact" : "llama.cpp"; }

ActivationFormat llama_cpp_activation_format(DType weight) {
  switch (weight) {
    case DType::F32: return ActivationFormat::Exact;
    case DType::F16: return ActivationFormat::F16;
    case DType::BF16: return ActivationFormat::BF16;
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0: return ActivationFormat::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1: return ActivationFormat::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return ActivationFormat::Q8_K;
  }
  fail("activations", "no llama.cpp activation format for this dtype");
}

// ggml's GGML_FP32_TO_BF16: round to nearest even, NaN kept quiet.
static float round_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u & 0x7fffffff) > 0x7f800000 ? (u | 0x00400000) & 0xffff0000u : (u + (0x7fff + ((u >> 16) & 1))) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// One row quantized to blocks by `quantize` and widened back: value j of a block = d * qs[j].
template <class Block>
static void round_row_q8(float* x, int k, void (*quantize)(const float*, Block*, int64_t)) {
  constexpr int n = sizeof(Block::qs);
  std::vector<Block> blocks(k / n);
  quantize(x, blocks.data(), k);
  for (int b = 0; b < k / n; ++b) {
    const Block& blk = blocks[b];
    float d;
    if constexpr (std::is_same_v<decltype(blk.d), float>)
      d = blk.d;  // q8_K
    else
      d = half_to_float(blk.d);
    for (int j = 0; j < n; ++j) x[b * n + j] = d * blk.qs[j];
  }
}

void round_activations(float* x, int rows, int k, ActivationFormat format) {
  if (format == ActivationFormat::Exact) return;
  const int block = format == ActivationFormat::Q8_K                                        ? ggml::QK_K
                    : format == ActivationFormat::F16 || format == ActivationFormat::BF16 ? 1
                                                                                          : ggml::QK8_0;
  if (k % block)
    fail("activations", "a row of " + std::to_string(k) + " values is not a whole number of " + std::to_string(block) +
                            "-value blocks");
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    float* row = x + size_t(r) * k;
    switch (format) {
      case ActivationFormat::F16: for (int i = 0; i < k; ++i) row[i] = round_to_half(row[i]); break;
      case ActivationFormat::BF16: for (int i = 0; i < k; ++i) row[i] = round_to_bf16(row[i]); break;
      case ActivationFormat::Q8_0: round_row_q8<ggml::block_q8_0>(row, k, ggml::quantize_row_q8_0_ref); break;
      case ActivationFormat::Q8_1: round_row_q8<ggml::block_q8_1>(row, k, ggml::quantize_row_q8_1_ref); break;
      case ActivationFormat::Q8_K: round_row_q8<ggml::block_q8_K>(row, k, ggml::quantize_row_q8_K_ref); break;
      case ActivationFormat::Exact: break;
    }
  }
}

// y = round(x) · W^T; x is rounded in a copy (callers may keep it), and not at all when Exact.
static void linear_from(float* y, const float* x, const float* w, int m, int n, int k, ActivationFormat format) {
  if (format == ActivationFormat::Exact) return linear(y, x, w, m, n, k);
  std::vector<float> rounded(x, x + size_t(m) * k);
  round_activations(rounded.data(), m, k, format);
  linear(y, rounded.data(), w, m, n, k);
}

std::vector<float> widen_linear(const Linear& linear) {
  if (!linear.quant) return linear.dense.to_float();
  std::vector<float> w = linear.quant->dequantize();
  if (linear.kept) {
    const std::vector<int32_t>& cols = linear.kept->cols;
    const int k = linear.quant->k;
    for (int o = 0; o < linear.quant->n; ++o)
      for (size_t j = 0; j < cols.size(); ++j)
        w[static_cast<size_t>(o) * k + cols[j]] = half_to_float(linear.kept->values[o * cols.size() + j]);
  }
  return w;
}

CpuLayer widen_layer(const LayerWeights& l) {
  CpuLayer out;
  out.attn_norm = l.attn_norm.to_float();
  out.mlp_norm = l.mlp_norm.to_float();
  for (const BlockLinear& linear : kBlockLinears) {
    out.*linear.widened = widen_linear(l.*linear.weights);
    const Tensor& bias = (l.*linear.weights).bias;
    if (bias.data) {
      if (!linear.widened_bias) fail(bias.name, "a bias on this linear is not supported (only q/k/v biases)");
      out.*linear.widened_bias = bias.to_float();
    }
  }
  return out;
}

void use_llama_cpp_arithmetic(CpuLayer& w, const LayerWeights& l) {
  for (const BlockLinear& b : kBlockLinears) {
    const Linear& linear = l.*b.weights;
    w.*b.activation = linear.quant ? ActivationFormat::Exact : llama_cpp_activation_format(linear.dense.dtype);
  }
  w.f16_kv = true;
}

void rmsnorm(float* out, const float* x, const float* w, int rows, int dim, float eps) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    double ss = 0.0;
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
    float* o = out + static_cast<size_t>(r) * dim;
    for (int i = 0; i < dim; ++i) o[i] = xr[i] * inv * w[i];
  }
}

void linear(float* y, const float* x, const float* w, int m, int n, int k) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
}

void add_bias(float* y, const std::vector<float>& bias, int m, int n) {
  if (bias.empty()) return;
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < n; ++i) y[size_t(r) * n + i] += bias[i];
}

// Rotates each head of x [rows, n_heads*head_dim] by its position (row % seq_len).
static void apply_rope(const LlamaConfig& c, float* x, int rows, int seq_len, int n_heads) {
  const int hd = c.head_dim(), half = hd / 2;
  const std::vector<double> inv_freq = rope_inv_freq(c);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const int pos = r % seq_len;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<size_t>(r) * n_heads * hd + static_cast<size_t>(h) * hd;
      for (int i = 0; i < half; ++i) {
        const double angle = pos * inv_freq[i];
        const float cs = static_cast<float>(std::cos(angle)), sn = static_cast<float>(std::sin(angle));
        float& a = c.rope_interleaved ? v[2 * i] : v[i];
        float& b = c.rope_interleaved ? v[2 * i + 1] : v[i + half];
        const float a0 = a, b0 = b;
        a = a0 * cs - b0 * sn;
        b = a0 * sn + b0 * cs;
      }
    }
  }
}

void attention(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int n_seq, int seq_len, float* out,
               std::vector<float>* o_in) {
  const int rows = n_seq * seq_len, dim = c.hidden_size, hd = c.head_dim();
  const int q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, group = c.n_heads / c.n_kv_heads;
  std::vector<float> q(size_t(rows) * q_dim), k(size_t(rows) * kv_dim), v(size_t(rows) * kv_dim);
  linear_from(q.data(), xn, layer.wq.data(), rows, q_dim, dim, layer.act_q);
  linear_from(k.data(), xn, layer.wk.data(), rows, kv_dim, dim, layer.act_k);
  linear_from(v.data(), xn, layer.wv.data(), rows, kv_dim, dim, layer.act_v);
  add_bias(q.data(), layer.bq, rows, q_dim);
  add_bias(k.data(), layer.bk, rows, kv_dim);
  add_bias(v.data(), layer.bv, rows, kv_dim);
  apply_rope(c, q.data(), rows, seq_len, c.n_heads);
  apply_rope(c, k.data(), rows, seq_len, c.n_kv_heads);
  if (layer.f16_kv) {  // llama.cpp's F16 KV cache; Q meets F16 K as F16
    round_activations(q.data(), rows, q_dim, ActivationFormat::F16);
    round_activations(k.data(), rows, kv_dim, ActivationFormat::F16);
    round_activations(v.data(), rows, kv_dim, ActivationFormat::F16);
  }

  std::vector<float> att(size_t(rows) * q_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // One task per (sequence, query head): S = Q K^T / sqrt(hd) [seq_len, seq_len] by BLAS (heads
  // are strided column blocks of q and k), causal softmax row by row (query t sees keys 0..t),
  // then O = P V into the head's columns of att. Inside the parallel region OpenBLAS (OpenMP
  // build) runs each call on the calling thread.
#pragma omp parallel
  {
    std::vector<float> scores(size_t(seq_len) * seq_len);
#pragma omp for collapse(2) schedule(dynamic)
    for (int s = 0; s < n_seq; ++s) {
      for (int h = 0; h < c.n_heads; ++h) {
        const int kvh = h / group;
        const float* qh = &q[size_t(s) * seq_len * q_dim + size_t(h) * hd];
        const float* kh = &k[size_t(s) * seq_len * kv_dim + size_t(kvh) * hd];
        const float* vh = &v[size_t(s) * seq_len * kv_dim + size_t(kvh) * hd];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, seq_len, seq_len, hd, scale, qh, q_dim, kh, kv_dim, 0.0f,
                    scores.data(), seq_len);
        for (int t = 0; t < seq_len; ++t) {
          float* row = &scores[size_t(t) * seq_len];
          const float max_score = *std::max_element(row, row + t + 1);
          float sum = 0.0f;
          for (int u = 0; u <= t; ++u) sum += (row[u] = std::exp(row[u] - max_score));
          const float inv = 1.0f / sum;
          for (int u = 0; u <= t; ++u) row[u] *= inv;
          if (layer.f16_kv)  // the probabilities meet F16 V as F16
            for (int u = 0; u <= t; ++u) row[u] = round_to_half(row[u]);
          std::fill(row + t + 1, row + seq_len, 0.0f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seq_len, hd, seq_len, 1.0f, scores.data(), seq_len, vh,
                    kv_dim, 0.0f, &att[size_t(s) * seq_len * q_dim + size_t(h) * hd], q_dim);
      }
    }
  }
  linear_from(out, att.data(), layer.wo.data(), rows, dim, q_dim, layer.act_o);
  if (o_in) *o_in = std::move(att);
}

void mlp(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int rows, float* out,
         std::vector<float>* down_in) {
  const int dim = c.hidden_size, inner = c.intermediate_size;
  std::vector<float> gate(size_t(rows) * inner), up(size_t(rows) * inner);
  linear_from(gate.data(), xn, layer.w_gate.data(), rows, inner, dim, layer.act_gate);
  linear_from(up.data(), xn, layer.w_up.data(), rows, inner, dim, layer.act_up);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  linear_from(out, gate.data(), layer.w_down.data(), rows, dim, inner, layer.act_down);
  if (down_in) *down_in = std::move(gate);
}

void block_forward(const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                   BlockInputs* capture) {
  const int rows = n_seq * seq_len, dim = c.hidden_size;
  const size_t n = size_t(rows) * dim;
  // A block of a large model takes seconds on a few cores (AWQ calibration: more): Ctrl-C is
  // answered between its two halves.
  throw_if_interrupted();
  std::vector<float> xn(n), delta(n);
  if (capture) capture->x.assign(x, x + n);
  rmsnorm(xn.data(), x, layer.attn_norm.data(), rows, dim, c.rms_norm_eps);
  if (capture) capture->attn_in = xn;
  attention(c, layer, xn.data(), n_seq, seq_len, delta.data(), capture ? &capture->o_in : nullptr);
  for (size_t i = 0; i < n; ++i) x[i] += delta[i];
  throw_if_interrupted();
  rmsnorm(xn.data(), x, layer.mlp_norm.data(), rows, dim, c.rms_norm_eps);
  if (capture) capture->mlp_in = xn;
  mlp(c, layer, xn.data(), rows, delta.data(), capture ? &capture->down_in : nullptr);
  for (size_t i = 0; i < n; ++i) x[i] += delta[i];
}

CpuModel::CpuModel(const Model& model, Activations activations)
    : config_(model.config),
      embed_(model.embed_tokens.to_float()),
      norm_(model.norm.to_float()),
      lm_head_(model.config.tie_word_embeddings ? embed_ : model.lm_head.to_float()) {
  for (const auto& l : model.layers) {
    layers_.push_back(widen_layer(l));
    if (activations == Activations::LlamaCpp) use_llama_cpp_arithmetic(layers_.back(), l);
  }
  if (activations == Activations::LlamaCpp)
    head_act_ = llama_cpp_activation_format(model.config.tie_word_embeddings ? model.embed_tokens.dtype
                                                                             : model.lm_head.dtype);
}

void CpuModel::embed(const int* tokens, int n_tokens, float* x) const {
  for (int t = 0; t < n_tokens; ++t) {
    if (tokens[t] < 0 || tokens[t] >= config_.vocab_size)
      fail("embed", "token id " + std::to_string(tokens[t]) + " outside the vocabulary of " +
                        std::to_string(config_.vocab_size));
    std::memcpy(x + size_t(t) * config_.hidden_size, &embed_[size_t(tokens[t]) * config_.hidden_size], sizeof(float) * config_.hidden_size);
  }
}

void CpuModel::head(const float* x, int rows, std::vector<float>& logits) const {
  std::vector<float> xn(size_t(rows) * config_.hidden_size);
  rmsnorm(xn.data(), x, norm_.data(), rows, config_.hidden_size, config_.rms_norm_eps);
  logits.resize(size_t(rows) * config_.vocab_size);
  linear_from(logits.data(), xn.data(), lm_head_.data(), rows, config_.vocab_size, config_.hidden_size, head_act_);
}

void CpuModel::forward(const int* tokens, int n_seq, int seq_len, std::vector<float>& logits) const {
  check_window_length(config_, seq_len, "cpu forward");
  const int rows = n_seq * seq_len;
  std::vector<float> x(size_t(rows) * config_.hidden_size);
  embed(tokens, rows, x.data());
  for (const auto& layer : layers_) block_forward(config_, layer, x.data(), n_seq, seq_len);
  head(x.data(), rows, logits);
}

}  // namespace qb
