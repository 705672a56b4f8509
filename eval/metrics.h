#pragma once
// Per-token metrics on logits rows, and accumulators that keep sums and squared sums so every
// mean is reported with its standard error.
#include <cstddef>
#include <string>
#include <vector>

namespace qb {

// -log softmax(logits)[target] for one row of n_vocab logits, computed stably in double.
double token_nll(const float* logits, int n_vocab, int target);
// KL(P || Q) = sum_v p_v (log p_v - log q_v) for the softmax distributions of two logits rows.
double kl_divergence(const float* p_logits, const float* q_logits, int n_vocab);
int argmax(const float* logits, int n_vocab);

// Mean and standard error of a sample of per-token values. The sums are exact and so independent
// of the order of the additions: each value and its square are rounded once to a multiple of
// 2^-64 (exactly representable for |v| >= 2^-11) and added as 128-bit integers. The sums of a
// run's shards (eval --shard) therefore add up to the whole run's bit for bit. Range: |v| < 2^31,
// and sums of squares below 2^63 (e.g. 1e8 tokens with NLL up to 3e5 nats); beyond it, an error.
struct MeanAccumulator {
  __extension__ typedef __int128 Fixed;  // a value in units of 2^-64
  Fixed sum_fixed = 0, sum_sq_fixed = 0;
  size_t n = 0;
  void add(double v);
  void add(const MeanAccumulator& other);  // as if other's values had been added one by one
  double sum() const;
  double mean() const { return n ? sum() / n : 0.0; }
  // Standard error of the mean: sqrt(var / n) with the unbiased variance.
  double stderr_of_mean() const;
};

// A fixed-point sum as a decimal integer string (JSON numbers cannot hold 128 bits), and back;
// `where` names the field in the error for text that is not one.
std::string fixed_to_decimal(MeanAccumulator::Fixed v);
MeanAccumulator::Fixed fixed_from_decimal(const std::string& text, const std::string& where);

// The value below which a fraction q (0..1) of `values` lies (nearest rank); values are reordered.
double percentile(std::vector<double>& values, double q);

}  // namespace qb
