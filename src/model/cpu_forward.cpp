#include "model/cpu_forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/error.h"
#include "common/half.h"
#include "model/block_linears.h"

namespace qb {

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
  linear(q.data(), xn, layer.wq.data(), rows, q_dim, dim);
  linear(k.data(), xn, layer.wk.data(), rows, kv_dim, dim);
  linear(v.data(), xn, layer.wv.data(), rows, kv_dim, dim);
  add_bias(q.data(), layer.bq, rows, q_dim);
  add_bias(k.data(), layer.bk, rows, kv_dim);
  add_bias(v.data(), layer.bv, rows, kv_dim);
  apply_rope(c, q.data(), rows, seq_len, c.n_heads);
  apply_rope(c, k.data(), rows, seq_len, c.n_kv_heads);

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
          std::fill(row + t + 1, row + seq_len, 0.0f);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, seq_len, hd, seq_len, 1.0f, scores.data(), seq_len, vh,
                    kv_dim, 0.0f, &att[size_t(s) * seq_len * q_dim + size_t(h) * hd], q_dim);
      }
    }
  }
  linear(out, att.data(), layer.wo.data(), rows, dim, q_dim);
  if (o_in) *o_in = std::move(att);
}

void mlp(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int rows, float* out,
         std::vector<float>* down_in) {
  const int dim = c.hidden_size, inner = c.intermediate_size;
  std::vector<float> gate(size_t(rows) * inner), up(size_t(rows) * inner);
  linear(gate.data(), xn, layer.w_gate.data(), rows, inner, dim);
  linear(up.data(), xn, layer.w_up.data(), rows, inner, dim);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
  linear(out, gate.data(), layer.w_down.data(), rows, dim, inner);
  if (down_in) *down_in = std::move(gate);
}

void block_forward(const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                   BlockInputs* capture) {
  const int rows = n_seq * seq_len, dim = c.hidden_size;
  const size_t n = size_t(rows) * dim;
  std::vector<float> xn(n), delta(n);
  if (capture) capture->x.assign(x, x + n);
  rmsnorm(xn.data(), x, layer.attn_norm.data(), rows, dim, c.rms_norm_eps);
  if (capture) capture->attn_in = xn;
  attention(c, layer, xn.data(), n_seq, seq_len, delta.data(), capture ? &capture->o_in : nullptr);
  for (size_t i = 0; i < n; ++i) x[i] += delta[i];
  rmsnorm(xn.data(), x, layer.mlp_norm.data(), rows, dim, c.rms_norm_eps);
  if (capture) capture->mlp_in = xn;
  mlp(c, layer, xn.data(), rows, delta.data(), capture ? &capture->down_in : nullptr);
  for (size_t i = 0; i < n; ++i) x[i] += delta[i];
}

CpuModel::CpuModel(const Model& model)
    : config_(model.config),
      embed_(model.embed_tokens.to_float()),
      norm_(model.norm.to_float()),
      lm_head_(model.config.tie_word_embeddings ? embed_ : model.lm_head.to_float()) {
  for (const auto& l : model.layers) layers_.push_back(widen_layer(l));
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
  linear(logits.data(), xn.data(), lm_head_.data(), rows, config_.vocab_size, config_.hidden_size);
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
