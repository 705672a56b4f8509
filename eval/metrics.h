#pragma once
// Per-token metrics on logits rows, and accumulators that keep sums and squared sums so every
// mean is reported with its standard error.
#include <cstddef>
#include <vector>

namespace qb {

// -log softmax(logits)[target] for one row of n_vocab logits, computed stably in double.
double token_nll(const float* logits, int n_vocab, int target);
// KL(P || Q) = sum_v p_v (log p_v - log q_v) for the softmax distributions of two logits rows.
double kl_divergence(const float* p_logits, const float* q_logits, int n_vocab);
int argmax(const float* logits, int n_vocab);

// Mean and standard error of a sample of per-token values.
struct MeanAccumulator {
  double sum = 0.0, sum_sq = 0.0;
  size_t n = 0;
  void add(double v) {
    sum += v;
    sum_sq += v * v;
    ++n;
  }
  double mean() const { return n ? sum / n : 0.0; }
  // Standard error of the mean: sqrt(var / n) with the unbiased variance.
  double stderr_of_mean() const;
};

// The value below which a fraction q (0..1) of `values` lies (nearest rank); values are reordered.
double percentile(std::vector<double>& values, double q);

}  // namespace qb
