#include "quant/rtn_keep.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/half.h"

namespace qb {

const char* keep_by_name(KeepBy by) {
  static constexpr const char* kNames[] = {"act", "weight", "random"};  // KeepBy's order
  return kNames[static_cast<int>(by)];
}

int kept_channel_count(int k, double fraction) {
  return std::clamp(static_cast<int>(std::ceil(fraction * k - 1e-9)), 1, k);
}

std::vector<double> mean_abs_columns(const float* x, int64_t rows, int k) {
  std::vector<double> sum(k, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < k; ++j) sum[j] += std::fabs(x[r * k + j]);
  for (double& s : sum) s /= static_cast<double>(std::max<int64_t>(rows, 1));
  return sum;
}

std::vector<int32_t> top_channels(const std::vector<double>& importance, int count) {
  std::vector<int32_t> order(importance.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return importance[a] > importance[b]; });
  order.resize(count);
  std::sort(order.begin(), order.end());
  return order;
}

std::vector<int32_t> random_channels(int k, int count, std::mt19937_64& rng) {
  std::vector<int32_t> all(k);
  std::iota(all.begin(), all.end(), 0);
  // rng() % range rather than a std distribution: the draw is then the same with every standard library.
  for (int i = 0; i < count; ++i) std::swap(all[i], all[i + static_cast<int>(rng() % static_cast<uint64_t>(k - i))]);
  all.resize(count);
  std::sort(all.begin(), all.end());
  return all;
}

KeptColumns keep_columns(const float* w, int n, int k, std::vector<int32_t> cols) {
  KeptColumns kept;
  kept.cols = std::move(cols);
  kept.values.resize(static_cast<size_t>(n) * kept.cols.size());
  for (int o = 0; o < n; ++o)
    for (size_t j = 0; j < kept.cols.size(); ++j)
      kept.values[o * kept.cols.size() + j] = float_to_half(w[static_cast<size_t>(o) * k + kept.cols[j]]);
  return kept;
}

}  // namespace qb
