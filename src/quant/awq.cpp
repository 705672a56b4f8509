#include "quant/awq.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "common/error.h"
#include "common/interrupt.h"

namespace qb {

namespace {

// w [rows, cols] <- w * col_scale[col] (col_scale [cols]).
void scale_columns(std::vector<float>& w, int cols, const std::vector<float>& col_scale) {
  const size_t rows = w.size() / cols;
  for (size_t r = 0; r < rows; ++r)
    for (int i = 0; i < cols; ++i) w[r * cols + i] *= col_scale[i];
}
// w [rows, cols] <- w / row_scale[row] (row_scale [rows]).
void divide_rows(std::vector<float>& w, int cols, const std::vector<float>& row_scale) {
  for (size_t r = 0; r < row_scale.size(); ++r)
    for (int i = 0; i < cols; ++i) w[r * cols + i] /= row_scale[r];
}

// mean |x| per column of x [rows, cols].
std::vector<float> mean_abs_columns(const std::vector<float>& x, int cols) {
  const size_t rows = x.size() / cols;
  std::vector<double> sum(cols, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (int i = 0; i < cols; ++i) sum[i] += std::fabs(x[r * cols + i]);
  std::vector<float> mean(cols);
  for (int i = 0; i < cols; ++i) mean[i] = static_cast<float>(sum[i] / static_cast<double>(rows));
  return mean;
}

double mean_squared_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (a.size() >= (1u << 16))
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    sum += d * d;
  }
  return sum / static_cast<double>(a.size());
}

// Runs the module a group feeds (with the candidate weights) and writes its output.
using ModuleForward = std::function<void(const CpuLayer& candidate, std::vector<float>& out)>;

struct ScaleSearch {
  std::vector<float> scales;  // best s [k]
  double alpha = 0.0;
};

// llm-awq _search_module_scale: the group's linears `members` (all with input dim k) share the
// input whose mean |x| is x_mean [k]; `forward` runs the inspected module.
ScaleSearch search_group_scale(const CpuLayer& fp16, const std::vector<int>& members, const std::vector<float>& x_mean,
                               const ModuleForward& forward, const AwqOptions& options, const std::string& where) {
  const int k = static_cast<int>(x_mean.size());
  std::vector<float> reference, out;
  forward(fp16, reference);
  CpuLayer candidate = fp16;
  const auto fp16_weights = block_linears(fp16);
  const auto candidate_weights = block_linears(candidate);
  ScaleSearch best;
  double best_loss = INFINITY;
  std::vector<float> s(k), scaled;
  for (int step = 0; step < options.n_grid; ++step) {
    throw_if_interrupted();
    const double alpha = static_cast<double>(step) / options.n_grid;
    for (int i = 0; i < k; ++i) s[i] = std::max(static_cast<float>(std::pow(x_mean[i], alpha)), 1e-4f);
    const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    const float norm = std::sqrt(*lo * *hi);
    for (float& v : s) v /= norm;
    for (int m : members) {
      const std::vector<float>& w = *fp16_weights[m];
      const int n = static_cast<int>(w.size()) / k;
      scaled = w;
      scale_columns(scaled, k, s);
      std::vector<float>& w_eff = *candidate_weights[m];
      fake_quantize(scaled.data(), n, k, options.spec, w_eff.data(), nullptr, where);
      for (int o = 0; o < n; ++o)
        for (int i = 0; i < k; ++i) w_eff[static_cast<size_t>(o) * k + i] /= s[i];
    }
    forward(candidate, out);
    const double loss = mean_squared_difference(out, reference);
    if (loss < best_loss) {
      best_loss = loss;
      best.alpha = alpha;
      best.scales = s;
    }
  }
  if (best.scales.empty()) fail(where, "scale search found no finite loss (non-finite activations?)");
  return best;
}

// llm-awq auto_clip_layer for w [n, k] (scaled) on sampled inputs x [t, k] (scaled): per output
// channel and group the clip threshold with the lowest output error. Returns [n, n_groups] and
// the mean chosen ratio.
std::vector<float> search_clip(const std::vector<float>& w, int n, int k, const std::vector<float>& x, int t,
                               const AwqOptions& options, double* ratio_mean) {
  const int group = options.spec.group_for(k), n_groups = (k + group - 1) / group;
  const int n_ratios = static_cast<int>(options.max_shrink * options.n_grid);
  std::vector<float> clip_max(static_cast<size_t>(n) * n_groups);
  double ratio_sum = 0.0;
#pragma omp parallel for schedule(dynamic) reduction(+ : ratio_sum)
  for (int o = 0; o < n; ++o) {
    std::vector<float> w_hat(group), diff(group);
    for (int g = 0; g < n_groups; ++g) {
      const int begin = g * group, len = std::min(group, k - begin);
      const float* wg = w.data() + static_cast<size_t>(o) * k + begin;
      float max_abs = 0.0f;
      for (int i = 0; i < len; ++i) max_abs = std::max(max_abs, std::fabs(wg[i]));
      double best_err = 1e9;  // llm-awq's initial min_errs
      float best_max = max_abs, best_ratio = 1.0f;
      for (int step = 0; step < n_ratios; ++step) {
        const float ratio = 1.0f - static_cast<float>(step) / options.n_grid;
        const float max_val = max_abs * ratio;
        uint16_t scale_bits;
        uint8_t zero;
        quantize_group(wg, len, options.spec, max_val, nullptr, &scale_bits, &zero, w_hat.data());
        for (int i = 0; i < len; ++i) diff[i] = w_hat[i] - wg[i];
        double err = 0.0;
        for (int r = 0; r < t; ++r) {
          const float* xr = x.data() + static_cast<size_t>(r) * k + begin;
          float dot = 0.0f;
          for (int i = 0; i < len; ++i) dot += xr[i] * diff[i];
          err += static_cast<double>(dot) * dot;
        }
        err /= t;
        if (err < best_err) {
          best_err = err;
          best_max = max_val;
          best_ratio = ratio;
        }
      }
      clip_max[static_cast<size_t>(o) * n_groups + g] = best_max;
      ratio_sum += best_ratio;
    }
  }
  *ratio_mean = ratio_sum / (static_cast<double>(n) * n_groups);
  return clip_max;
}

// Every step-th row of x [rows, cols] divided by col_scale (may be null), step = rows / n_tokens
// (at least 1), as llm-awq's input_feat[:, 0::n // n_sample_token].
std::vector<float> sample_rows(const std::vector<float>& x, int cols, int n_tokens, const std::vector<float>* col_scale,
                               int* n_sampled) {
  const size_t rows = x.size() / cols;
  const size_t step = std::max<size_t>(1, rows / static_cast<size_t>(n_tokens));
  std::vector<float> out;
  *n_sampled = 0;
  for (size_t r = 0; r < rows; r += step, ++*n_sampled)
    for (int i = 0; i < cols; ++i) out.push_back(x[r * cols + i] / (col_scale ? (*col_scale)[i] : 1.0f));
  return out;
}

}  // namespace

const std::vector<float>* input_scale(const BlockScales& s, int index) {
  const std::vector<float>* v = nullptr;
  switch (index) {
    case kQ: case kK: case kV: v = &s.qkv; break;
    case kO: v = &s.o; break;
    case kGate: case kUp: v = &s.gate_up; break;
    case kDown: v = &s.down; break;
  }
  return v && !v->empty() ? v : nullptr;
}

const std::vector<float>* output_scale(const BlockScales& s, int index) {
  if (index == kV && !s.o.empty()) return &s.o;
  if (index == kUp && !s.down.empty()) return &s.down;
  return nullptr;
}

void apply_block_scales(CpuLayer& layer, const BlockScales& scales) {
  auto divide = [](std::vector<float>& v, const std::vector<float>& s) {
    for (size_t i = 0; i < v.size(); ++i) v[i] /= s[i];
  };
  if (!scales.qkv.empty()) divide(layer.attn_norm, scales.qkv);
  if (!scales.gate_up.empty()) divide(layer.mlp_norm, scales.gate_up);
  const auto weights = block_linears(layer);
  const int dim = static_cast<int>(layer.attn_norm.size());
  const int q_dim = static_cast<int>(layer.wq.size()) / dim;
  const int inner = static_cast<int>(layer.w_gate.size()) / dim;
  const int in_dims[kNumLinears] = {dim, dim, dim, q_dim, dim, dim, inner};
  for (int t = 0; t < kNumLinears; ++t) {
    if (const auto* s = output_scale(scales, t)) {
      divide_rows(*weights[t], in_dims[t], *s);
      // The output rows carry their bias (v_proj's, Qwen2): both shrink by s.
      if (const auto bias = kBlockLinears[t].widened_bias; bias && !(layer.*bias).empty()) divide(layer.*bias, *s);
    }
    if (const auto* s = input_scale(scales, t)) scale_columns(*weights[t], in_dims[t], *s);
  }
}

AwqBlockResult awq_search_block(const LlamaConfig& c, const CpuLayer& fp16, const BlockInputs& in, int n_seq,
                                 int seq_len, const AwqOptions& options) {
  const int rows = n_seq * seq_len;
  const auto dims = linear_dims(c);
  const int dim = c.hidden_size, q_dim = dims[kO].second, inner = c.intermediate_size;
  AwqBlockResult result;
  result.alpha.fill(-1.0);
  result.clip_ratio_mean.fill(-1.0);

  const ModuleForward attention_out = [&](const CpuLayer& l, std::vector<float>& out) {
    out.assign(static_cast<size_t>(rows) * dim, 0.0f);
    attention(c, l, in.attn_in.data(), n_seq, seq_len, out.data());
  };
  const ModuleForward o_out = [&](const CpuLayer& l, std::vector<float>& out) {
    out.assign(static_cast<size_t>(rows) * dim, 0.0f);
    linear(out.data(), in.o_in.data(), l.wo.data(), rows, dim, q_dim);
  };
  const ModuleForward mlp_out = [&](const CpuLayer& l, std::vector<float>& out) {
    out.assign(static_cast<size_t>(rows) * dim, 0.0f);
    mlp(c, l, in.mlp_in.data(), rows, out.data());
  };
  const ModuleForward down_out = [&](const CpuLayer& l, std::vector<float>& out) {
    out.assign(static_cast<size_t>(rows) * dim, 0.0f);
    linear(out.data(), in.down_in.data(), l.w_down.data(), rows, dim, inner);
  };

  auto search = [&](const std::vector<int>& members, const std::vector<float>& x, int k,
                    const ModuleForward& forward, std::vector<float>& scales_out) {
    const ScaleSearch s = search_group_scale(fp16, members, mean_abs_columns(x, k), forward, options,
                                             std::string(kBlockLinears[members[0]].hf_name) + " scale search");
    scales_out = s.scales;
    for (int m : members) result.alpha[m] = s.alpha;
  };
  search({kQ, kK, kV}, in.attn_in, dim, attention_out, result.scales.qkv);
  // llm-awq scales o_proj against v_proj only when their weights have the same shape (no GQA):
  // otherwise the 1/s of o's input channels cannot be folded into v's output rows.
  if (dims[kV] == dims[kO]) search({kO}, in.o_in, q_dim, o_out, result.scales.o);
  search({kGate, kUp}, in.mlp_in, dim, mlp_out, result.scales.gate_up);
  search({kDown}, in.down_in, inner, down_out, result.scales.down);

  result.scaled = fp16;
  apply_block_scales(result.scaled, result.scales);
  if (options.clip) {
    const auto weights = block_linears(result.scaled);
    const std::vector<float>* inputs[kNumLinears] = {&in.attn_in, &in.attn_in, &in.attn_in, &in.o_in,
                                                     &in.mlp_in,  &in.mlp_in,  &in.down_in};
    for (int t : {kV, kO, kGate, kUp, kDown}) {
      throw_if_interrupted();
      const auto [n, k] = dims[t];
      int n_tokens = 0;
      const std::vector<float> x =
          sample_rows(*inputs[t], k, options.clip_sample_tokens, input_scale(result.scales, t), &n_tokens);
      result.clip_max[t] = search_clip(*weights[t], n, k, x, n_tokens, options, &result.clip_ratio_mean[t]);
    }
  }
  return result;
}

}  // namespace qb
