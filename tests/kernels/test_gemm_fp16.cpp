// The cuBLAS FP16 reference (kernels/gemm_fp16.h) against the CPU FP32 GEMM. Tolerance 2e-3
// relative Frobenius: FP32 accumulation (reduced-precision split-K reductions disallowed), so the
// fp16 rounding of y (2^-11) and summation order are the only differences; a transposed operand
// or wrong leading dimension gives errors of order 1.
#include <catch2/catch.hpp>

#include <cuda_fp16.h>

#include <random>

#include "awq_reference.h"
#include "device_array.h"
#include "kernels/device_probe.h"
#include "kernels/gemm_fp16.h"

std::string qb_test_skip_reason() { return qb::kernels::cuda_unavailable_reason(); }

TEST_CASE("gemm_fp16 matches the CPU reference for odd m") {
  using namespace qb;
  std::mt19937 rng(3);
  kernels::CublasHandle cublas;
  const int shapes[][2] = {{264, 96}, {1000, 384}, {4096, 4096}};
  for (const auto& [n, k] : shapes)
    for (int m : {1, 3, 5, 7, 17, 33, 129}) {
      INFO("m=" << m << " n=" << n << " k=" << k);
      const auto x_host = test::random_halves(static_cast<size_t>(m) * k, -1.0f, 1.0f, rng);
      const auto w_host = test::random_halves(static_cast<size_t>(n) * k, -0.1f, 0.1f, rng);
      test::DeviceArray<uint16_t> x(x_host), w(w_host), y(static_cast<size_t>(m) * n);
      y.poison();
      kernels::gemm_fp16(cublas.get(), reinterpret_cast<const __half*>(x.get()),
                         reinterpret_cast<const __half*>(w.get()), reinterpret_cast<__half*>(y.get()), m, n, k, nullptr);
      QB_CUDA_CHECK(cudaDeviceSynchronize());
      const auto result = test::compare_to_reference(y.download(), test::gemm_reference(x_host, w_host, m, n, k));
      CHECK(result.non_finite == 0);
      CHECK(result.relative_frobenius <= 2e-3);
    }
}
