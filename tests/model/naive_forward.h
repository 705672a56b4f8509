#pragma once
// An independent reference for the batched CPU forward pass: one token at a time with a KV
// cache, plain loops only (no BLAS, no OpenMP, no shared code with model/cpu_forward.cpp),
// reading weights straight from the Model's tensors. Slow by design; as in llama2.c's run.c.
#include <cmath>
#include <vector>

#include "model/model.h"

namespace qb::test {

class NaiveForward {
 public:
  explicit NaiveForward(const Model& m) : m_(m), c_(m.config) {
    key_cache_.assign(c_.n_layers, {});
    value_cache_.assign(c_.n_layers, {});
  }

  // Logits [vocab] for `token` at position pos (positions must come in order 0, 1, 2, ...).
  std::vector<float> step(int token, int pos) {
    const int dim = c_.hidden_size, hd = c_.head_dim();
    std::vector<double> x(dim);
    for (int i = 0; i < dim; ++i) x[i] = m_.embed_tokens.at(int64_t(token) * dim + i);
    for (int l = 0; l < c_.n_layers; ++l) {
      const LayerWeights& w = m_.layers[l];
      std::vector<double> xn = rmsnorm(x, w.attn_norm);
      std::vector<double> q = matvec(w.q_proj, xn), k = matvec(w.k_proj, xn), v = matvec(w.v_proj, xn);
      rope(q, pos);
      rope(k, pos);
      key_cache_[l].push_back(k);
      value_cache_[l].push_back(v);
      std::vector<double> att(size_t(c_.n_heads) * hd, 0.0);
      for (int h = 0; h < c_.n_heads; ++h) {
        const int kvh = h / (c_.n_heads / c_.n_kv_heads);
        std::vector<double> scores(pos + 1);
        double max_s = -1e300;
        for (int t = 0; t <= pos; ++t) {
          double s = 0.0;
          for (int i = 0; i < hd; ++i) s += q[h * hd + i] * key_cache_[l][t][kvh * hd + i];
          scores[t] = s / std::sqrt(double(hd));
          max_s = std::max(max_s, scores[t]);
        }
        double sum = 0.0;
        for (double& s : scores) sum += (s = std::exp(s - max_s));
        for (int t = 0; t <= pos; ++t)
          for (int i = 0; i < hd; ++i) att[h * hd + i] += scores[t] / sum * value_cache_[l][t][kvh * hd + i];
      }
      std::vector<double> o = matvec(w.o_proj, att);
      for (int i = 0; i < dim; ++i) x[i] += o[i];
      xn = rmsnorm(x, w.mlp_norm);
      std::vector<double> g = matvec(w.gate_proj, xn), u = matvec(w.up_proj, xn);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      std::vector<double> d = matvec(w.down_proj, g);
      for (int i = 0; i < dim; ++i) x[i] += d[i];
    }
    std::vector<double> xn = rmsnorm(x, m_.norm);
    std::vector<float> logits(c_.vocab_size);
    for (int r = 0; r < c_.vocab_size; ++r) {
      double s = 0.0;
      for (int i = 0; i < dim; ++i) s += m_.lm_head.at(int64_t(r) * dim + i) * xn[i];
      logits[r] = static_cast<float>(s);
    }
    return logits;
  }

 private:
  std::vector<double> rmsnorm(const std::vector<double>& x, const Tensor& w) const {
    double ss = 0.0;
    for (double v : x) ss += v * v;
    const double inv = 1.0 / std::sqrt(ss / x.size() + c_.rms_norm_eps);
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * w.at(i);
    return out;
  }
  // y = W x for W [out, in]; quantized weights through their own dequantize().
  std::vector<double> matvec(const Linear& lin, const std::vector<double>& x) const {
    const int out = lin.out_features(), in = lin.in_features();
    std::vector<float> deq;
    if (lin.quant) deq = lin.quant->dequantize();
    std::vector<double> y(out, 0.0);
    for (int r = 0; r < out; ++r)
      for (int i = 0; i < in; ++i)
        y[r] += (lin.quant ? deq[size_t(r) * in + i] : lin.dense.at(int64_t(r) * in + i)) * x[i];
    return y;
  }
  void rope(std::vector<double>& v, int pos) const {
    const int hd = c_.head_dim();
    for (size_t h = 0; h < v.size() / hd; ++h)
      for (int i = 0; i < hd / 2; ++i) {
        const double angle = pos / std::pow(double(c_.rope_theta), 2.0 * i / hd);
        const size_t a = h * hd + (c_.rope_interleaved ? 2 * i : i);
        const size_t b = h * hd + (c_.rope_interleaved ? 2 * i + 1 : i + hd / 2);
        const double va = v[a], vb = v[b];
        v[a] = va * std::cos(angle) - vb * std::sin(angle);
        v[b] = va * std::sin(angle) + vb * std::cos(angle);
      }
  }

  const Model& m_;
  const LlamaConfig& c_;
  std::vector<std::vector<std::vector<double>>> key_cache_, value_cache_;  // [layer][pos][kv_dim]
};

}  // namespace qb::test
