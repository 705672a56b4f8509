#pragma once
// A float64 reference forward pass for the architecture features beyond Llama 2: Llama 3's
// scaled RoPE (rope_scaling "llama3"), Qwen2's q/k/v biases and tied embeddings. Written apart
// from model/cpu_forward.cpp and from naive_forward.h (whole window, plain loops, double
// throughout, weights read element by element from the Model's tensors); its RoPE frequencies
// follow transformers' _compute_llama3_parameters line by line. Dense weights only.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model.h"

namespace qb::test {

// transformers.modeling_rope_utils: default inv_freq, then _compute_llama3_parameters.
inline std::vector<double> reference_inv_freq(const LlamaConfig& c) {
  const int dim = c.head_dim();
  std::vector<double> inv_freq;
  for (int j = 0; j < dim; j += 2) inv_freq.push_back(1.0 / std::pow(double(c.rope_theta), double(j) / dim));
  if (!c.rope_llama3) return inv_freq;
  const double factor = c.rope_factor, low_freq_factor = c.rope_low_freq_factor;
  const double high_freq_factor = c.rope_high_freq_factor, old_context_len = c.rope_original_max_position_embeddings;
  const double low_freq_wavelen = old_context_len / low_freq_factor;
  const double high_freq_wavelen = old_context_len / high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelen = 2 * 3.14159265358979323846 / f;
    const double inv_freq_llama = wavelen > low_freq_wavelen ? f / factor : f;
    const double smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
    const double smoothed = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama;
    const bool is_medium_freq = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = is_medium_freq ? smoothed : inv_freq_llama;
  }
  return inv_freq;
}

// Logits [seq_len][vocab] of one sequence, in double.
inline std::vector<std::vector<double>> reference_forward_f64(const Model& m, const std::vector<int>& tokens) {
  const LlamaConfig& c = m.config;
  const int T = static_cast<int>(tokens.size()), dim = c.hidden_size, hd = c.head_dim();
  const int group = c.n_heads / c.n_kv_heads;
  using Rows = std::vector<std::vector<double>>;
  auto rmsnorm = [&](const Rows& x, const Tensor& w) {
    Rows out = x;
    for (auto& row : out) {
      double ss = 0;
      for (double v : row) ss += v * v;
      const double inv = 1 / std::sqrt(ss / dim + c.rms_norm_eps);
      for (int i = 0; i < dim; ++i) row[i] *= inv * w.at(i);
    }
    return out;
  };
  auto project = [&](const Linear& lin, const Rows& x) {  // x W^T (+ bias)
    const int64_t out = lin.dense.shape[0], in = lin.dense.shape[1];
    Rows y(x.size(), std::vector<double>(out));
    for (size_t t = 0; t < x.size(); ++t)
      for (int64_t o = 0; o < out; ++o) {
        double s = lin.bias.data ? lin.bias.at(o) : 0.0;
        for (int64_t i = 0; i < in; ++i) s += lin.dense.at(o * in + i) * x[t][i];
        y[t][o] = s;
      }
    return y;
  };
  const std::vector<double> inv_freq = reference_inv_freq(c);
  auto rotate = [&](Rows& x) {  // HF half-split pairs (i, i + hd/2), or llama2.c's (2i, 2i+1)
    for (int t = 0; t < T; ++t)
      for (size_t h = 0; h < x[t].size() / hd; ++h)
        for (int i = 0; i < hd / 2; ++i) {
          const size_t a = h * hd + (c.rope_interleaved ? 2 * i : i);
          const size_t b = h * hd + (c.rope_interleaved ? 2 * i + 1 : i + hd / 2);
          const double cs = std::cos(t * inv_freq[i]), sn = std::sin(t * inv_freq[i]);
          const double xa = x[t][a], xb = x[t][b];
          x[t][a] = xa * cs - xb * sn;
          x[t][b] = xb * cs + xa * sn;
        }
  };

  Rows x(T, std::vector<double>(dim));
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < dim; ++i) x[t][i] = m.embed_tokens.at(int64_t(tokens[t]) * dim + i);
  for (const LayerWeights& w : m.layers) {
    const Rows xn = rmsnorm(x, w.attn_norm);
    Rows q = project(w.q_proj, xn), k = project(w.k_proj, xn), v = project(w.v_proj, xn);
    rotate(q);
    rotate(k);
    Rows att(T, std::vector<double>(size_t(c.n_heads) * hd, 0.0));
    for (int h = 0; h < c.n_heads; ++h) {
      const int kv = h / group;
      for (int t = 0; t < T; ++t) {
        std::vector<double> p(t + 1);
        double top = -INFINITY, z = 0;
        for (int u = 0; u <= t; ++u) {
          double s = 0;
          for (int i = 0; i < hd; ++i) s += q[t][h * hd + i] * k[u][kv * hd + i];
          p[u] = s / std::sqrt(double(hd));
          top = std::max(top, p[u]);
        }
        for (double& e : p) z += (e = std::exp(e - top));
        for (int u = 0; u <= t; ++u)
          for (int i = 0; i < hd; ++i) att[t][h * hd + i] += p[u] / z * v[u][kv * hd + i];
      }
    }
    const Rows o = project(w.o_proj, att);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < dim; ++i) x[t][i] += o[t][i];
    const Rows xm = rmsnorm(x, w.mlp_norm);
    Rows gate = project(w.gate_proj, xm);
    const Rows up = project(w.up_proj, xm);
    for (int t = 0; t < T; ++t)
      for (size_t i = 0; i < gate[t].size(); ++i) gate[t][i] = gate[t][i] / (1 + std::exp(-gate[t][i])) * up[t][i];
    const Rows down = project(w.down_proj, gate);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < dim; ++i) x[t][i] += down[t][i];
  }
  const Rows xf = rmsnorm(x, m.norm);
  const Tensor& head = c.tie_word_embeddings ? m.embed_tokens : m.lm_head;
  Rows logits(T, std::vector<double>(c.vocab_size));
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < c.vocab_size; ++r) {
      double s = 0;
      for (int i = 0; i < dim; ++i) s += head.at(int64_t(r) * dim + i) * xf[t][i];
      logits[t][r] = s;
    }
  return logits;
}

}  // namespace qb::test
