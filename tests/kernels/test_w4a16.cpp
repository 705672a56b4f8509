// W4A16 kernels (kernels/w4a16.h) against the CPU reference: dequantize with the reference
// dequantizer, then an FP32 GEMM. Fresh random inputs per case, odd m, output poisoned with NaN
// before every launch, every element checked.
//
// Tolerance, GEMMs: relative Frobenius error <= 2e-3. The kernels dequantize bit-identically to the
// reference (one fp16 rounding of (q - z) * s), so the only differences are the fp16 rounding of y
// (<= 2^-11 = 4.9e-4 relative per element) and FP32 summation order (~k * 2^-24 = 2.4e-4 at
// k = 4096 in the worst realistic case). An indexing or layout bug gives errors of order 1.
// Tolerance, dequantize: bit-exact.
#include <catch2/catch.hpp>

#include <cuda_fp16.h>

#include <random>
#include <string>

#include "awq_reference.h"
#include "device_array.h"
#include "kernels/device_probe.h"
#include "kernels/gemm_fp16.h"
#include "kernels/w4a16.h"

std::string qb_test_skip_reason() { return qb::kernels::cuda_unavailable_reason(); }

namespace {

using namespace qb;
using kernels::W4A16Kernel;

constexpr double kGemmTolerance = 2e-3;

struct Shape {
  int n, k, group_size;
};
// 264: n % 32 != 0 (4-byte copy path) and a partial 256-column block; k = 96: a partial 64-row
// stage and two groups per stage; 640 with g = 128: stages starting mid-group; 1000: unaligned
// rows again; 4096 x 4096: a real layer, split-K across many slices.
const Shape kShapes[] = {{264, 96, 32}, {512, 1024, 64}, {768, 640, 128}, {1000, 384, 64}, {4096, 4096, 128}};

// Device copy of a random weight + its reference dequantization.
struct TestWeight {
  test::HostAwqWeight host;
  std::vector<uint16_t> reference_w;  // [n, k] fp16 bits
  test::DeviceArray<int32_t> qweight, qzeros;
  test::DeviceArray<__half> scales;

  TestWeight(const Shape& s, std::mt19937& rng)
      : host(test::random_awq_weight(s.n, s.k, s.group_size, rng)),
        reference_w(test::dequantize_reference(host)),
        qweight(host.qweight),
        qzeros(host.qzeros),
        scales(host.scales.size()) {
    QB_CUDA_CHECK(cudaMemcpy(scales.get(), host.scales.data(), scales.bytes(), cudaMemcpyHostToDevice));
  }
  kernels::AwqWeightView view() const {
    return {qweight.get(), qzeros.get(), scales.get(), host.n, host.k, host.group_size};
  }
};

// Runs one plan on fresh random x and checks y against the reference.
void check_gemm(const kernels::W4A16Plan& plan, const TestWeight& w, std::mt19937& rng, cublasHandle_t cublas) {
  const int m = plan.m, n = w.host.n, k = w.host.k;
  INFO(kernels::kernel_name(plan.kernel) << " m=" << m << " n=" << n << " k=" << k << " g=" << w.host.group_size
                                         << " split_k=" << plan.split_k);
  const std::vector<uint16_t> x_host = test::random_halves(static_cast<size_t>(m) * k, -1.0f, 1.0f, rng);
  test::DeviceArray<uint16_t> x(x_host);
  test::DeviceArray<uint16_t> y(static_cast<size_t>(m) * n);
  test::DeviceArray<unsigned char> workspace(plan.workspace_bytes);
  workspace.zero();
  y.poison();
  kernels::w4a16_gemm(plan, reinterpret_cast<const __half*>(x.get()), w.view(), reinterpret_cast<__half*>(y.get()),
                      workspace.get(), cublas, nullptr);
  QB_CUDA_CHECK(cudaDeviceSynchronize());
  const auto reference = test::gemm_reference(x_host, w.reference_w, m, n, k);
  const auto result = test::compare_to_reference(y.download(), reference);
  CHECK(result.non_finite == 0);
  CHECK(result.relative_frobenius <= kGemmTolerance);

  // A second launch on the same workspace: the split-K counters must have been left at zero.
  y.poison();
  kernels::w4a16_gemm(plan, reinterpret_cast<const __half*>(x.get()), w.view(), reinterpret_cast<__half*>(y.get()),
                      workspace.get(), cublas, nullptr);
  QB_CUDA_CHECK(cudaDeviceSynchronize());
  const auto again = test::compare_to_reference(y.download(), reference);
  CHECK(again.non_finite == 0);
  CHECK(again.relative_frobenius <= kGemmTolerance);
}

void check_kernel(W4A16Kernel kernel, std::initializer_list<int> ms, std::initializer_list<int> split_ks) {
  std::mt19937 rng(static_cast<unsigned>(kernel) * 7919u + 17u);
  kernels::CublasHandle cublas;
  for (const Shape& s : kShapes) {
    const TestWeight w(s, rng);
    for (int m : ms)
      for (int split_k : split_ks)
        check_gemm(kernels::plan_w4a16(kernel, m, s.n, s.k, s.group_size, split_k), w, rng, cublas.get());
  }
}

}  // namespace

TEST_CASE("w4a16 skinny kernel matches the reference for m = 1..8") {
  check_kernel(W4A16Kernel::kSkinny, {1, 2, 3, 5, 7, 8}, {0, 1, 3});
}

TEST_CASE("w4a16 tensor-core kernel matches the reference") {
  // 1, 3: padded rows; 16, 17, 33, 64, 129: every block_m (16, 32, 64) with full and partial blocks.
  check_kernel(W4A16Kernel::kTensorCore, {1, 3, 16, 17, 33, 64, 129}, {0, 1, 3});
}

TEST_CASE("w4a16 dequantize + cuBLAS path matches the reference") {
  check_kernel(W4A16Kernel::kDequantCublas, {1, 17, 129}, {0});
}

TEST_CASE("w4a16 dispatcher picks a kernel by m and it matches the reference") {
  CHECK(kernels::choose_w4a16_kernel(1) == W4A16Kernel::kSkinny);
  CHECK(kernels::choose_w4a16_kernel(kernels::kSkinnyMaxM) == W4A16Kernel::kSkinny);
  CHECK(kernels::choose_w4a16_kernel(kernels::kSkinnyMaxM + 1) == W4A16Kernel::kTensorCore);
  CHECK(kernels::choose_w4a16_kernel(kernels::kDequantCublasMinM) == W4A16Kernel::kDequantCublas);
  std::mt19937 rng(5);
  kernels::CublasHandle cublas;
  const TestWeight w(kShapes[1], rng);
  for (int m : {1, 9, 33})
    check_gemm(kernels::plan_w4a16(m, w.host.n, w.host.k, w.host.group_size), w, rng, cublas.get());
}

TEST_CASE("dequantize_awq is bit-identical to the reference in both layouts") {
  std::mt19937 rng(11);
  for (const Shape& s : kShapes) {
    INFO("n=" << s.n << " k=" << s.k << " g=" << s.group_size);
    const TestWeight w(s, rng);
    test::DeviceArray<uint16_t> out(static_cast<size_t>(s.n) * s.k);
    for (auto layout : {kernels::WeightLayout::kNK, kernels::WeightLayout::kKN}) {
      out.poison();
      kernels::dequantize_awq(w.view(), reinterpret_cast<__half*>(out.get()), layout, nullptr);
      QB_CUDA_CHECK(cudaDeviceSynchronize());
      const auto got = out.download();
      size_t mismatches = 0;
      for (int col = 0; col < s.n; ++col)
        for (int in = 0; in < s.k; ++in) {
          const size_t at = layout == kernels::WeightLayout::kNK ? static_cast<size_t>(col) * s.k + in
                                                                 : static_cast<size_t>(in) * s.n + col;
          mismatches += got[at] != w.reference_w[static_cast<size_t>(col) * s.k + in];
        }
      CHECK(mismatches == 0);
    }
  }
}

TEST_CASE("w4a16 host wrappers refuse unsupported shapes with a clear error") {
  CHECK_THROWS_WITH(kernels::plan_w4a16(W4A16Kernel::kTensorCore, 16, 256, 256, 96),
                    Catch::Contains("group size 96 is not supported"));
  CHECK_THROWS_WITH(kernels::plan_w4a16(W4A16Kernel::kTensorCore, 16, 256, 200, 64),
                    Catch::Contains("not a multiple of the group size"));
  CHECK_THROWS_WITH(kernels::plan_w4a16(W4A16Kernel::kTensorCore, 16, 260, 256, 64),
                    Catch::Contains("not a multiple of 8"));
  CHECK_THROWS_WITH(kernels::plan_w4a16(W4A16Kernel::kSkinny, 9, 256, 256, 64), Catch::Contains("exceeds 8"));
}
