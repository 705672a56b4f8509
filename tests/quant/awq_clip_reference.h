#pragma once
// The clip search as llm-awq's auto_clip_layer states it, one scalar dot per (output channel,
// group, ratio, token): quantbench's search before it became GEMMs (quant/awq.cpp), kept as the
// reference the GEMM search is compared with. Besides the choice it returns every error, so that a
// differing choice can be checked to be a float near-tie.
#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/awq.h"
#include "quant/rtn.h"

namespace qb::test {

struct ReferenceClip {
  int n_groups = 0, n_ratios = 0;
  std::vector<float> max_abs;    // [n, n_groups]
  std::vector<float> clip_max;   // [n, n_groups], as awq_search_clip returns
  std::vector<double> errors;    // [n, n_groups, n_ratios]
  double error(size_t cell, int step) const { return errors[cell * n_ratios + step]; }
  // The ratio step whose threshold is `threshold` in cell (o * n_groups + g); -1 when none is.
  int step_of(size_t cell, float threshold, int n_grid) const {
    for (int step = 0; step < n_ratios; ++step)
      if (max_abs[cell] * (1.0f - static_cast<float>(step) / n_grid) == threshold) return step;
    return -1;
  }
};

inline ReferenceClip reference_search_clip(const float* w, int n, int k, const float* x, int t,
                                           const AwqOptions& options) {
  const int group = options.spec.group_for(k);
  ReferenceClip ref;
  ref.n_groups = (k + group - 1) / group;
  ref.n_ratios = static_cast<int>(options.max_shrink * options.n_grid);
  const size_t cells = static_cast<size_t>(n) * ref.n_groups;
  ref.max_abs.resize(cells);
  ref.clip_max.resize(cells);
  ref.errors.resize(cells * ref.n_ratios);
  std::vector<float> w_hat(group), diff(group);
  for (int o = 0; o < n; ++o)
    for (int g = 0; g < ref.n_groups; ++g) {
      const size_t cell = static_cast<size_t>(o) * ref.n_groups + g;
      const int begin = g * group, len = std::min(group, k - begin);
      const float* wg = w + static_cast<size_t>(o) * k + begin;
      float max_abs = 0.0f;
      for (int i = 0; i < len; ++i) max_abs = std::max(max_abs, std::fabs(wg[i]));
      ref.max_abs[cell] = max_abs;
      double best_err = 1e9;
      float best_max = max_abs;
      for (int step = 0; step < ref.n_ratios; ++step) {
        const float max_val = max_abs * (1.0f - static_cast<float>(step) / options.n_grid);
        uint16_t scale_bits;
        uint8_t zero;
        quantize_group(wg, len, options.spec, max_val, nullptr, &scale_bits, &zero, w_hat.data());
        for (int i = 0; i < len; ++i) diff[i] = w_hat[i] - wg[i];
        double err = 0.0;
        for (int r = 0; r < t; ++r) {
          const float* xr = x + static_cast<size_t>(r) * k + begin;
          float dot = 0.0f;
          for (int i = 0; i < len; ++i) dot += xr[i] * diff[i];
          err += static_cast<double>(dot) * dot;
        }
        err /= t;
        ref.errors[cell * ref.n_ratios + step] = err;
        if (err < best_err) {
          best_err = err;
          best_max = max_val;
        }
      }
      ref.clip_max[cell] = best_max;
    }
  return ref;
}

// Cells where `got` chose another threshold than the reference; every one must be a near-tie:
// the reference errors of both choices within `tolerance` (relative). Returns the count of
// differing cells, and the largest relative gap among them in *worst_gap.
inline size_t differing_choices(const ReferenceClip& ref, const std::vector<float>& got, int n_grid, double tolerance,
                                size_t* beyond_tolerance, double* worst_gap) {
  size_t differing = 0;
  *beyond_tolerance = 0;
  *worst_gap = 0.0;
  for (size_t cell = 0; cell < got.size(); ++cell) {
    if (got[cell] == ref.clip_max[cell]) continue;
    ++differing;
    const int mine = ref.step_of(cell, got[cell], n_grid), theirs = ref.step_of(cell, ref.clip_max[cell], n_grid);
    if (mine < 0 || theirs < 0) {
      ++*beyond_tolerance;
      continue;
    }
    const double a = ref.error(cell, mine), b = ref.error(cell, theirs);
    const double gap = std::fabs(a - b) / std::max(b, 1e-300);
    *worst_gap = std::max(*worst_gap, gap);
    if (gap > tolerance) ++*beyond_tolerance;
  }
  return differing;
}

}  // namespace qb::test
