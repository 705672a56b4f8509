// AWQ's clip search as GEMMs (quant/awq.h awq_search_clip) against the scalar search of llm-awq
// (awq_clip_reference.h) on random weights and activations of odd sizes: the same threshold per
// output channel and group, or, where float summation order could tip a near-tie, a threshold
// whose reference error is within kTieTolerance of the reference's choice.
#include <catch2/catch.hpp>

#include <cstdio>
#include <random>

#include "awq_clip_reference.h"
#include "quant/awq.h"
#include "test_support.h"

using namespace qb;

namespace {

// The GEMM's dot of a group (<= 128 products) and the scalar dot are float sums in another order:
// each differs from the exact sum by a few float ulps of the summands, so errors closer than 1e-5
// relative are a tie to float precision.
constexpr double kTieTolerance = 1e-5;

struct Case {
  int n, k, group, t, bits;
  bool symmetric;
};

std::vector<float> normal(size_t count, unsigned seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace

TEST_CASE("the GEMM clip search chooses the scalar search's thresholds on random odd sizes") {
  const Case cases[] = {{37, 200, 64, 53, 4, false}, {37, 200, 64, 512, 3, false}, {130, 300, 128, 77, 4, true},
                        {5, 64, -1, 9, 4, false},    {129, 256, 32, 1, 2, false},  {260, 128, 128, 200, 8, false}};
  unsigned seed = 1;
  for (const Case& tc : cases) {
    AwqOptions options;
    options.spec = {tc.bits, tc.group, tc.symmetric};
    std::vector<float> w = normal(static_cast<size_t>(tc.n) * tc.k, seed++, 0.02f);
    std::vector<float> x = normal(static_cast<size_t>(tc.t) * tc.k, seed++, 1.0f);
    for (int j = 0; j < tc.t; ++j) x[static_cast<size_t>(j) * tc.k + 3] *= 40.0f;  // an outlier channel
    w[7] = 0.3f;                                    // an outlier weight, so that clipping pays
    std::fill(w.begin() + tc.k, w.begin() + tc.k + std::min(tc.k, 64), 0.0f);  // an all-zero group
    double mean = 0.0;
    const std::vector<float> got = awq_search_clip(w.data(), tc.n, tc.k, x.data(), tc.t, options, &mean);
    const test::ReferenceClip ref = test::reference_search_clip(w.data(), tc.n, tc.k, x.data(), tc.t, options);
    REQUIRE(got.size() == ref.clip_max.size());
    size_t beyond = 0;
    double worst = 0.0;
    const size_t differing = test::differing_choices(ref, got, options.n_grid, kTieTolerance, &beyond, &worst);
    std::printf("n %d k %d group %d t %d: %zu of %zu thresholds differ (largest error gap %.3g)\n", tc.n, tc.k,
                tc.group, tc.t, differing, got.size(), worst);
    CHECK(beyond == 0);
    CHECK(differing * 100 <= got.size());  // near-ties are rare
    CHECK(mean <= 1.0);
    CHECK(mean >= 0.55 - 1e-6);
  }
}

TEST_CASE("the GEMM clip search keeps llm-awq's rules: first of equal errors, no clip for all-zero groups") {
  AwqOptions options;
  options.spec = {4, 32, false};
  // Zero inputs: every ratio's error is 0, so the first ratio (1.0, no clipping) is kept.
  const std::vector<float> w = normal(3 * 64, 5, 0.02f);
  const std::vector<float> zeros(10 * 64, 0.0f);
  double mean = 0.0;
  const std::vector<float> got = awq_search_clip(w.data(), 3, 64, zeros.data(), 10, options, &mean);
  for (int o = 0; o < 3; ++o)
    for (int g = 0; g < 2; ++g) {
      float max_abs = 0.0f;
      for (int i = 0; i < 32; ++i) max_abs = std::max(max_abs, std::fabs(w[o * 64 + g * 32 + i]));
      CHECK(got[o * 2 + g] == max_abs);
    }
  CHECK(mean == 1.0);
}
