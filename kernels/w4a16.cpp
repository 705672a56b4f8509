// W4A16 host side: argument validation, split-K planning and the dispatcher.
#include "kernels/w4a16.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "kernels/cuda_check.h"
#include "kernels/gemm_fp16.h"
#include "kernels/w4a16_geometry.h"
#include "kernels/w4a16_internal.h"
#include "layouts/awq_layout.h"

namespace qb::kernels {
namespace {

std::string shape_text(int m, int n, int k, int group_size) {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
         " group_size=" + std::to_string(group_size);
}

void check_shape(const char* where, int m, int n, int k, int group_size) {
  if (!supported_group_size(group_size))
    fail(where, "group size " + std::to_string(group_size) + " is not supported (32, 64 or 128)");
  if (m < 1 || n < 1 || k < 1) fail(where, "empty GEMM: " + shape_text(m, n, k, group_size));
  if (n % awq::kPackFactor != 0) fail(where, "n = " + std::to_string(n) + " is not a multiple of 8 (packed int32 columns)");
  if (k % group_size != 0)
    fail(where, "k = " + std::to_string(k) + " is not a multiple of the group size " + std::to_string(group_size));
}

void check_aligned(const char* where, const void* p, const char* name) {
  if (p == nullptr) fail(where, std::string(name) + " is null");
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0) fail(where, std::string(name) + " is not 16-byte aligned");
}

void check_weight(const char* where, const AwqWeightView& w) {
  check_shape(where, 1, w.n, w.k, w.group_size);
  check_aligned(where, w.qweight, "qweight");
  check_aligned(where, w.qzeros, "qzeros");
  check_aligned(where, w.scales, "scales");
}

int current_sm_count() {
  int device = 0, sms = 0;
  QB_CUDA_CHECK(cudaGetDevice(&device));
  QB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

// Splits k into slices of whole stages so that tiles x slices fills every resident block slot
// once (more slices only add partial-sum traffic). forced > 0 overrides the choice.
void choose_split_k(W4A16Plan& plan, int tiles, int blocks_per_sm, int forced) {
  const int k_stages = (plan.k + w4a16::kStageK - 1) / w4a16::kStageK;
  int split = forced > 0 ? forced : (current_sm_count() * blocks_per_sm + tiles - 1) / tiles;
  if (tiles > detail::kMaxCounterTiles) split = 1;  // more tiles than counters: plenty of blocks anyway
  split = std::clamp(split, 1, k_stages);
  const int stages_per_split = (k_stages + split - 1) / split;
  plan.split_k = (k_stages + stages_per_split - 1) / stages_per_split;  // no empty slice
  plan.k_per_split = stages_per_split * w4a16::kStageK;
  plan.workspace_bytes = detail::kCounterRegionBytes;
  if (plan.split_k > 1)
    plan.workspace_bytes += static_cast<size_t>(plan.split_k) * plan.m * plan.n * sizeof(float);
}

}  // namespace

const char* kernel_name(W4A16Kernel kernel) {
  switch (kernel) {
    case W4A16Kernel::kSkinny: return "w4a16-skinny";
    case W4A16Kernel::kTensorCore: return "w4a16-tensor-core";
    case W4A16Kernel::kDequantCublas: return "w4a16-dequant-cublas";
  }
  return "?";
}

W4A16Kernel choose_w4a16_kernel(int m) {
  if (m <= kSkinnyMaxM) return W4A16Kernel::kSkinny;
  if (m < kDequantCublasMinM) return W4A16Kernel::kTensorCore;
  return W4A16Kernel::kDequantCublas;
}

bool supported_group_size(int group_size) { return group_size == 32 || group_size == 64 || group_size == 128; }

W4A16Plan plan_w4a16(W4A16Kernel kernel, int m, int n, int k, int group_size, int split_k) {
  check_shape(kernel_name(kernel), m, n, k, group_size);
  if (split_k < 0) fail(kernel_name(kernel), "split_k = " + std::to_string(split_k) + " is negative");
  W4A16Plan plan;
  plan.kernel = kernel;
  plan.m = m, plan.n = n, plan.k = k, plan.group_size = group_size;
  const int n_blocks = (n + w4a16::kBlockN - 1) / w4a16::kBlockN;
  switch (kernel) {
    case W4A16Kernel::kSkinny:
      if (m > kSkinnyMaxM)
        fail(kernel_name(kernel), "m = " + std::to_string(m) + " exceeds " + std::to_string(kSkinnyMaxM) +
                                      " (use the tensor-core kernel)");
      choose_split_k(plan, n_blocks, detail::skinny_blocks_per_sm(m), split_k);
      break;
    case W4A16Kernel::kTensorCore: {
      const int block_m = detail::tensor_core_block_m(m);
      choose_split_k(plan, n_blocks * ((m + block_m - 1) / block_m), detail::tensor_core_blocks_per_sm(block_m),
                     split_k);
      break;
    }
    case W4A16Kernel::kDequantCublas:
      plan.split_k = 1;
      plan.k_per_split = k;
      plan.workspace_bytes = detail::kCounterRegionBytes + static_cast<size_t>(n) * k * sizeof(__half);
      break;
  }
  return plan;
}

W4A16Plan plan_w4a16(int m, int n, int k, int group_size) {
  return plan_w4a16(choose_w4a16_kernel(m), m, n, k, group_size);
}

void w4a16_gemm(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y, void* workspace,
                cublasHandle_t cublas, cudaStream_t stream) {
  const char* where = kernel_name(plan.kernel);
  check_weight(where, w);
  if (w.n != plan.n || w.k != plan.k || w.group_size != plan.group_size)
    fail(where, "weight n=" + std::to_string(w.n) + " k=" + std::to_string(w.k) + " group_size=" +
                    std::to_string(w.group_size) + " does not match the plan's " +
                    shape_text(plan.m, plan.n, plan.k, plan.group_size));
  check_aligned(where, x, "x");
  check_aligned(where, y, "y");
  check_aligned(where, workspace, "workspace");
  switch (plan.kernel) {
    case W4A16Kernel::kSkinny: detail::launch_skinny(plan, x, w, y, workspace, stream); break;
    case W4A16Kernel::kTensorCore: detail::launch_tensor_core(plan, x, w, y, workspace, stream); break;
    case W4A16Kernel::kDequantCublas: {
      if (cublas == nullptr) fail(where, "needs a cuBLAS handle");
      auto* w_fp16 = reinterpret_cast<__half*>(static_cast<unsigned char*>(workspace) + detail::kCounterRegionBytes);
      detail::launch_dequantize(w, w_fp16, WeightLayout::kNK, stream);
      gemm_fp16(cublas, x, w_fp16, y, plan.m, plan.n, plan.k, stream);
      break;
    }
  }
}

void dequantize_awq(const AwqWeightView& w, __half* out, WeightLayout layout, cudaStream_t stream) {
  check_weight("dequantize_awq", w);
  check_aligned("dequantize_awq", out, "out");
  detail::launch_dequantize(w, out, layout, stream);
}

}  // namespace qb::kernels
