#include "quant/awq.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include "common/error.h"
#include "common/interrupt.h"
#include "quant/rtn_keep.h"

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

// sum over i of (a[i] - b[i])^2 for n values.
double squared_difference_sum(const float* a, const float* b, size_t n) {
  double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n >= (1u << 16))
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    sum += d * d;
  }
  return sum;
}

// Runs the module a group feeds with the candidate weights on sequences [first_seq, first_seq +
// n_seqs) of the calibration batch, writing its output rows to out.
using ModuleForward = std::function<void(const CpuLayer& candidate, int first_seq, int n_seqs, float* out)>;

// The calibration batch in chunks of whole sequences for the candidate forwards.
struct ForwardChunks {
  int n_seq, seq_len, seqs_per_chunk;
  size_t out_cols;  // the module's output width
  // Runs forward on every chunk in order; each chunk's output is passed to use(first_seq, n_seqs, out).
  template <class Use>
  void run(const CpuLayer& layer, const ModuleForward& forward, std::vector<float>& buffer, Use use) const {
    buffer.resize(static_cast<size_t>(std::min(seqs_per_chunk, n_seq)) * seq_len * out_cols);
    for (int first = 0; first < n_seq; first += seqs_per_chunk) {
      const int count = std::min(seqs_per_chunk, n_seq - first);
      forward(layer, first, count, buffer.data());
      use(first, count, buffer.data());
    }
  }
};

struct ScaleSearch {
  std::vector<float> scales;  // best s [k]
  double alpha = 0.0;
};

// llm-awq _search_module_scale: the group's linears `members` (all with input dim k) share the
// input whose mean |x| is x_mean [k]; `forward` runs the inspected module. The members' weights
// in `candidate` (otherwise a copy of fp16) are the work space, restored to fp16's on return.
ScaleSearch search_group_scale(const CpuLayer& fp16, CpuLayer& candidate, const std::vector<int>& members,
                               const std::vector<float>& x_mean, const ModuleForward& forward,
                               const ForwardChunks& chunks, const AwqOptions& options, const std::string& where) {
  const int k = static_cast<int>(x_mean.size());
  const size_t row_size = static_cast<size_t>(chunks.seq_len) * chunks.out_cols;  // output floats per sequence
  std::vector<float> reference(row_size * chunks.n_seq), out;
  chunks.run(fp16, forward, out, [&](int first, int count, const float* y) {
    std::copy_n(y, row_size * count, reference.begin() + row_size * first);
  });
  const auto fp16_weights = block_linears(fp16);
  const auto candidate_weights = block_linears(candidate);
  ScaleSearch best;
  double best_loss = INFINITY;
  std::vector<float> s, scaled;
  for (int step = 0; step < options.n_grid; ++step) {
    throw_if_interrupted();
    const double alpha = static_cast<double>(step) / options.n_grid;
    s = awq_alpha_scales(x_mean, alpha);
    for (int m : members) {
      const std::vector<float>& w = *fp16_weights[m];
      const int n = static_cast<int>(w.size()) / k;
      scaled.resize(w.size());
#pragma omp parallel for schedule(static)
      for (int o = 0; o < n; ++o)
        for (int i = 0; i < k; ++i) scaled[static_cast<size_t>(o) * k + i] = w[static_cast<size_t>(o) * k + i] * s[i];
      std::vector<float>& w_eff = *candidate_weights[m];
      fake_quantize(scaled.data(), n, k, options.spec, w_eff.data(), nullptr, where);
#pragma omp parallel for schedule(static)
      for (int o = 0; o < n; ++o)
        for (int i = 0; i < k; ++i) w_eff[static_cast<size_t>(o) * k + i] /= s[i];
    }
    double sum = 0.0;
    chunks.run(candidate, forward, out, [&](int first, int count, const float* y) {
      sum += squared_difference_sum(y, reference.data() + row_size * first, row_size * count);
    });
    const double loss = sum / static_cast<double>(reference.size());
    if (loss < best_loss) {
      best_loss = loss;
      best.alpha = alpha;
      best.scales = s;
    }
  }
  for (int m : members) *candidate_weights[m] = *fp16_weights[m];
  if (best.scales.empty()) fail(where, "scale search found no finite loss (non-finite activations?)");
  return best;
}

// The clip search's sampled tokens: every step-th of `rows`, step = rows / n_tokens (at least 1).
size_t clip_token_step(size_t rows, int n_tokens) {
  return std::max<size_t>(1, rows / static_cast<size_t>(n_tokens));
}

}  // namespace

std::vector<float> awq_input_mean(const std::vector<float>& x, int k) {
  const std::vector<double> mean = mean_abs_columns(x.data(), static_cast<int64_t>(x.size() / k), k);
  return std::vector<float>(mean.begin(), mean.end());
}

std::vector<float> awq_alpha_scales(const std::vector<float>& x_mean, double alpha) {
  std::vector<float> s(x_mean.size());
  for (size_t i = 0; i < s.size(); ++i) s[i] = std::max(static_cast<float>(std::pow(x_mean[i], alpha)), 1e-4f);
  const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  const float norm = std::sqrt(*lo * *hi);
  for (float& v : s) v /= norm;
  return s;
}

std::vector<float> every_nth_row(const std::vector<float>& x, int cols, int n_rows, const std::vector<float>* col_scale,
                                 int* n_sampled) {
  const size_t rows = x.size() / cols;
  const size_t step = clip_token_step(rows, n_rows);
  std::vector<float> out;
  *n_sampled = 0;
  for (size_t r = 0; r < rows; r += step, ++*n_sampled)
    for (int i = 0; i < cols; ++i) out.push_back(x[r * cols + i] / (col_scale ? (*col_scale)[i] : 1.0f));
  return out;
}

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

std::vector<float> awq_search_clip(const float* w, int n, int k, const float* x, int t, const AwqOptions& options,
                                   double* ratio_mean) {
  const int group = options.spec.group_for(k), n_groups = (k + group - 1) / group;
  const int n_ratios = static_cast<int>(options.max_shrink * options.n_grid);
  // A task is a tile of output channels in one group: its differences [tile, group] and products
  // [tile, t] stay in a core's cache, and its GEMM (2 * tile * group * t flops) runs on one thread.
  constexpr int kTile = 128;
  const int n_tiles = (n + kTile - 1) / kTile;
  std::vector<float> clip_max(static_cast<size_t>(n) * n_groups);
  double ratio_sum = 0.0;
#pragma omp parallel reduction(+ : ratio_sum)
  {
    std::vector<float> diff(static_cast<size_t>(kTile) * group), products(static_cast<size_t>(kTile) * t);
    std::vector<float> max_abs(kTile), best_max(kTile), best_ratio(kTile);
    std::vector<double> best_err(kTile);
#pragma omp for collapse(2) schedule(dynamic)
    for (int tile = 0; tile < n_tiles; ++tile)
      for (int g = 0; g < n_groups; ++g) {
        const int row0 = tile * kTile, rows = std::min(kTile, n - row0);
        const int begin = g * group, len = std::min(group, k - begin);
        for (int r = 0; r < rows; ++r) {
          const float* wg = w + static_cast<size_t>(row0 + r) * k + begin;
          float m = 0.0f;
          for (int i = 0; i < len; ++i) m = std::max(m, std::fabs(wg[i]));
          max_abs[r] = best_max[r] = m;
          best_ratio[r] = 1.0f;
          best_err[r] = 1e9;  // llm-awq's initial min_errs
        }
        for (int step = 0; step < n_ratios; ++step) {
          const float ratio = 1.0f - static_cast<float>(step) / options.n_grid;
          for (int r = 0; r < rows; ++r) {
            const float* wg = w + static_cast<size_t>(row0 + r) * k + begin;
            float* d = diff.data() + static_cast<size_t>(r) * len;
            uint16_t scale_bits;
            uint8_t zero;
            quantize_group(wg, len, options.spec, max_abs[r] * ratio, nullptr, &scale_bits, &zero, d);
            for (int i = 0; i < len; ++i) d[i] -= wg[i];
          }
          // products[r, j] = diff[r] · x[j, begin .. begin + len)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, t, len, 1.0f, diff.data(), len, x + begin, k,
                      0.0f, products.data(), t);
          for (int r = 0; r < rows; ++r) {
            const float* p = products.data() + static_cast<size_t>(r) * t;
            double err = 0.0;
            for (int j = 0; j < t; ++j) err += static_cast<double>(p[j]) * p[j];
            err /= t;
            if (err < best_err[r]) {
              best_err[r] = err;
              best_max[r] = max_abs[r] * ratio;
              best_ratio[r] = ratio;
            }
          }
        }
        for (int r = 0; r < rows; ++r) {
          clip_max[static_cast<size_t>(row0 + r) * n_groups + g] = best_max[r];
          ratio_sum += best_ratio[r];
        }
      }
  }
  *ratio_mean = ratio_sum / (static_cast<double>(n) * n_groups);
  return clip_max;
}

AwqBlockFlops awq_block_flops(const LlamaConfig& c, int n_seq, int seq_len, const AwqOptions& options) {
  const double rows = static_cast<double>(n_seq) * seq_len;
  const auto dims = linear_dims(c);
  auto gemm = [&](int t, double m) { return 2.0 * m * dims[t].first * dims[t].second; };
  const double scores = 4.0 * rows * seq_len * c.n_heads * c.head_dim();  // Q K^T and P V
  const double attention = gemm(kQ, rows) + gemm(kK, rows) + gemm(kV, rows) + scores + gemm(kO, rows);
  const double mlp = gemm(kGate, rows) + gemm(kUp, rows) + gemm(kDown, rows);
  AwqBlockFlops f;
  f.calibration = attention + mlp;
  const double o_search = dims[kV] == dims[kO] ? gemm(kO, rows) : 0.0;
  f.scale = (options.n_grid + 1.0) * (attention + o_search + mlp + gemm(kDown, rows));
  if (options.clip) {
    const size_t step = clip_token_step(static_cast<size_t>(rows), options.clip_sample_tokens);
    const double tokens = std::ceil(rows / static_cast<double>(step));
    const int n_ratios = static_cast<int>(options.max_shrink * options.n_grid);
    for (int t : {kV, kO, kGate, kUp, kDown}) f.clip += n_ratios * gemm(t, tokens);
  }
  return f;
}

AwqBlockResult awq_search_block(const LlamaConfig& c, const CpuLayer& fp16, const BlockInputs& in, int n_seq,
                                 int seq_len, const AwqOptions& options) {
  const auto dims = linear_dims(c);
  const int dim = c.hidden_size, q_dim = dims[kO].second, inner = c.intermediate_size;
  AwqBlockResult result;
  result.alpha.fill(-1.0);
  result.clip_ratio_mean.fill(-1.0);
  const auto scale_start = std::chrono::steady_clock::now();

  auto rows_of = [&](int first_seq) { return static_cast<size_t>(first_seq) * seq_len; };
  const ModuleForward attention_out = [&](const CpuLayer& l, int first, int count, float* out) {
    attention(c, l, in.attn_in.data() + rows_of(first) * dim, count, seq_len, out);
  };
  const ModuleForward o_out = [&](const CpuLayer& l, int first, int count, float* out) {
    linear(out, in.o_in.data() + rows_of(first) * q_dim, l.wo.data(), count * seq_len, dim, q_dim);
  };
  const ModuleForward mlp_out = [&](const CpuLayer& l, int first, int count, float* out) {
    mlp(c, l, in.mlp_in.data() + rows_of(first) * dim, count * seq_len, out);
  };
  const ModuleForward down_out = [&](const CpuLayer& l, int first, int count, float* out) {
    linear(out, in.down_in.data() + rows_of(first) * inner, l.w_down.data(), count * seq_len, dim, inner);
  };
  const ForwardChunks chunks{n_seq, seq_len, std::max(1, options.forward_rows / seq_len), static_cast<size_t>(dim)};

  CpuLayer candidate = fp16;  // the searched members' weights are replaced, and restored, in turn
  auto search = [&](const std::vector<int>& members, const std::vector<float>& x, int k,
                    const ModuleForward& forward, std::vector<float>& scales_out) {
    const ScaleSearch s = search_group_scale(fp16, candidate, members, awq_input_mean(x, k), forward, chunks,
                                             options, std::string(kBlockLinears[members[0]].hf_name) + " scale search");
    scales_out = s.scales;
    for (int m : members) result.alpha[m] = s.alpha;
  };
  search({kQ, kK, kV}, in.attn_in, dim, attention_out, result.scales.qkv);
  // llm-awq scales o_proj against v_proj only when their weights have the same shape (no GQA):
  // otherwise the 1/s of o's input channels cannot be folded into v's output rows.
  if (dims[kV] == dims[kO]) search({kO}, in.o_in, q_dim, o_out, result.scales.o);
  search({kGate, kUp}, in.mlp_in, dim, mlp_out, result.scales.gate_up);
  search({kDown}, in.down_in, inner, down_out, result.scales.down);

  result.scaled = std::move(candidate);
  apply_block_scales(result.scaled, result.scales);
  const auto clip_start = std::chrono::steady_clock::now();
  result.scale_seconds = std::chrono::duration<double>(clip_start - scale_start).count();
  if (options.clip) {
    const auto weights = block_linears(result.scaled);
    const std::vector<float>* inputs[kNumLinears] = {&in.attn_in, &in.attn_in, &in.attn_in, &in.o_in,
                                                     &in.mlp_in,  &in.mlp_in,  &in.down_in};
    for (int t : {kV, kO, kGate, kUp, kDown}) {
      throw_if_interrupted();
      const auto [n, k] = dims[t];
      int n_tokens = 0;
      const std::vector<float> x =
          every_nth_row(*inputs[t], k, options.clip_sample_tokens, input_scale(result.scales, t), &n_tokens);
      result.clip_max[t] =
          awq_search_clip(weights[t]->data(), n, k, x.data(), n_tokens, options, &result.clip_ratio_mean[t]);
    }
  }
  result.clip_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - clip_start).count();
  return result;
}

}  // namespace qb
