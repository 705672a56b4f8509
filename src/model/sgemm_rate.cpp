#include "model/sgemm_rate.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace qb {

double measured_sgemm_gflops(int m, int n, int k, int repeats) {
  // Values of no consequence, but not zeros or denormals, which some kernels could run faster on.
  std::vector<float> a(static_cast<size_t>(m) * k), b(static_cast<size_t>(n) * k), c(static_cast<size_t>(m) * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = 0.5f + static_cast<float>(i % 7) * 0.125f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = 0.25f + static_cast<float>(i % 5) * 0.125f;
  auto gemm = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  };
  gemm();
  std::vector<double> seconds;
  for (int r = 0; r < std::max(1, repeats); ++r) {
    const auto start = std::chrono::steady_clock::now();
    gemm();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
  return 2.0 * m * n * k / seconds[seconds.size() / 2] / 1e9;
}

}  // namespace qb
