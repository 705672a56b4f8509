#include "eval/metrics.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

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

namespace {

using Fixed = MeanAccumulator::Fixed;
constexpr int kFractionBits = 64;

// v in units of 2^-64, for |v| < 2^62 (exact, no rounding, for |v| >= 2^-11).
Fixed to_fixed(double v) { return static_cast<Fixed>(std::nearbyint(std::ldexp(v, kFractionBits))); }

double to_double(Fixed v) { return std::ldexp(static_cast<double>(v), -kFractionBits); }

void add_checked(Fixed& sum, Fixed v) {
  if (__builtin_add_overflow(sum, v, &sum)) fail("mean accumulator", "sum outside the exact-sum range (2^63)");
}

}  // namespace

void MeanAccumulator::add(double v) {
  // |v| < 2^31 keeps v^2 * 2^64 below 2^126.
  if (!(std::fabs(v) < 0x1p31)) fail("mean accumulator", "value " + std::to_string(v) + " is outside the exact-sum range");
  add_checked(sum_fixed, to_fixed(v));
  add_checked(sum_sq_fixed, to_fixed(v * v));
  ++n;
}

void MeanAccumulator::add(const MeanAccumulator& other) {
  add_checked(sum_fixed, other.sum_fixed);
  add_checked(sum_sq_fixed, other.sum_sq_fixed);
  n += other.n;
}

double MeanAccumulator::sum() const { return to_double(sum_fixed); }

double MeanAccumulator::stderr_of_mean() const {
  if (n < 2) return 0.0;
  const double m = mean();
  const double var = std::max(0.0, (to_double(sum_sq_fixed) - n * m * m) / (n - 1));
  return std::sqrt(var / n);
}

std::string fixed_to_decimal(Fixed v) {
  // Digits of |v| from the least significant; the most negative value has no positive twin, so
  // each digit is taken from the negative side.
  std::string digits;
  Fixed rest = v;
  do {
    const int d = static_cast<int>(rest % 10);
    digits.push_back(static_cast<char>('0' + (d < 0 ? -d : d)));
    rest /= 10;
  } while (rest != 0);
  if (v < 0) digits.push_back('-');
  return std::string(digits.rbegin(), digits.rend());
}

Fixed fixed_from_decimal(const std::string& text, const std::string& where) {
  const bool negative = !text.empty() && text[0] == '-';
  const size_t first = negative ? 1 : 0;
  if (text.size() == first) fail(where, "expected a decimal integer, got '" + text + "'");
  Fixed v = 0;
  for (size_t i = first; i < text.size(); ++i) {
    const char c = text[i];
    if (c < '0' || c > '9' || __builtin_mul_overflow(v, Fixed(10), &v) ||
        __builtin_sub_overflow(v, Fixed(c - '0'), &v))  // accumulated negated: reaches -2^127
      fail(where, "expected a decimal integer within 128 bits, got '" + text + "'");
  }
  if (!negative && __builtin_sub_overflow(Fixed(0), v, &v)) fail(where, "'" + text + "' exceeds 128 bits");
  return v;
}

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0.0;
  const size_t rank = std::min(values.size() - 1, static_cast<size_t>(std::ceil(q * values.size())) - (q > 0 ? 1 : 0));
  std::nth_element(values.begin(), values.begin() + rank, values.end());
  return values[rank];
}

}  // namespace qb
