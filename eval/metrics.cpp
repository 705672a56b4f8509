#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

namespace qb {

static double log_sum_exp(const float* x, int n, double max_x) {
  double s = 0.0;
  for (int i = 0; i < n; ++i) s += std::exp(double(x[i]) - max_x);
  return max_x + std::log(s);
}

double token_nll(const float* logits, int n_vocab, int target) {
  const double max_x = *std::max_element(logits, logits + n_vocab);
  return log_sum_exp(logits, n_vocab, max_x) - double(logits[target]);
}

double kl_divergence(const float* p_logits, const float* q_logits, int n_vocab) {
  const double lp = log_sum_exp(p_logits, n_vocab, *std::max_element(p_logits, p_logits + n_vocab));
  const double lq = log_sum_exp(q_logits, n_vocab, *std::max_element(q_logits, q_logits + n_vocab));
  double kl = 0.0;
  for (int v = 0; v < n_vocab; ++v) {
    const double log_p = p_logits[v] - lp, log_q = q_logits[v] - lq;
    kl += std::exp(log_p) * (log_p - log_q);
  }
  return std::max(kl, 0.0);  // rounding can give -1e-17 for identical rows
}

int argmax(const float* logits, int n_vocab) {
  return static_cast<int>(std::max_element(logits, logits + n_vocab) - logits);
}

double MeanAccumulator::stderr_of_mean() const {
  if (n < 2) return 0.0;
  const double m = mean();
  const double var = std::max(0.0, (sum_sq - n * m * m) / (n - 1));
  return std::sqrt(var / n);
}

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0.0;
  const size_t rank = std::min(values.size() - 1, static_cast<size_t>(std::ceil(q * values.size())) - (q > 0 ? 1 : 0));
  std::nth_element(values.begin(), values.begin() + rank, values.end());
  return values[rank];
}

}  // namespace qb
