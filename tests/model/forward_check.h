#pragma once
#include <algorithm>
#include <cmath>

#include "model/cpu_forward.h"
#include "naive_forward.h"

namespace qb::test {

// max |batched - naive| / max |naive| over every logit of every position.
inline double batched_vs_naive_rel_error(const Model& m, const std::vector<int>& tokens) {
  std::vector<float> batched;
  CpuModel(m).forward(tokens.data(), 1, static_cast<int>(tokens.size()), batched);
  NaiveForward naive(m);
  double max_err = 0.0, max_ref = 0.0;
  const int vocab = m.config.vocab_size;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    const std::vector<float> ref = naive.step(tokens[pos], static_cast<int>(pos));
    for (int v = 0; v < vocab; ++v) {
      max_err = std::max(max_err, std::abs(double(batched[pos * vocab + v]) - ref[v]));
      max_ref = std::max(max_ref, std::abs(double(ref[v])));
    }
  }
  return max_err / max_ref;
}

}  // namespace qb::test
