#pragma once
// W4A16 GEMM for the AutoAWQ "gemm" packed layout (layouts/awq_layout.h; RTN weights use the same
// layout): 4-bit weights with one fp16 scale and one 4-bit zero point per (group, output column),
// fp16 activations, FP32 accumulation, fp16 output. Plain C++ header: no CUDA syntax.
//
//   y[m, n] = x[m, k] · W^T,   W[n][k] = (q - z) · s   dequantized exactly as the CPU reference:
//   one fp16 rounding of (q - z) · s, then products and sums in FP32.
//
// Three kernels, one dispatcher (choose_w4a16_kernel):
//   kSkinny         m = 1..8 (decode): CUDA cores, split-K over the SMs        (w4a16_skinny.cu)
//   kTensorCore     any m, meant for m >= 9: mma.sync m16n8k16, split-K       (w4a16_tensor_core.cu)
//   kDequantCublas  large m: dequantize to an fp16 W [n, k] in the workspace, then cuBLAS FP16
//                   (dequantize.cu + gemm_fp16.cpp)
//
// Usage: plan once per (kernel, shape) on the host (it validates the shape and queries the device),
// allocate plan.workspace_bytes of device memory and zero it ONCE, then launch as often as needed.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace qb::kernels {

// One packed weight on the device; every pointer 16-byte aligned (cudaMalloc gives 256).
struct AwqWeightView {
  const int32_t* qweight = nullptr;  // [k, n/8]          packed 4-bit weights
  const int32_t* qzeros = nullptr;   // [k/group_size, n/8] packed 4-bit zero points
  const __half* scales = nullptr;    // [k/group_size, n]
  int n = 0;                         // output features, a multiple of 8
  int k = 0;                         // input features, a multiple of group_size
  int group_size = 0;                // 32, 64 or 128
};

enum class W4A16Kernel { kSkinny, kTensorCore, kDequantCublas };
// "w4a16-skinny", "w4a16-tensor-core", "w4a16-dequant-cublas": the names reports carry.
const char* kernel_name(W4A16Kernel kernel);

// Dispatcher thresholds (to be re-tuned from the first H100/H200 sweep; see bench/README.md):
// - m <= kSkinnyMaxM: the skinny kernel. Decode is bound by the weight stream; at m <= 8 the FP32
//   FMAs per weight (m of them) still fit under the memory time, and a tensor-core tile would pad
//   m to 16 rows.
constexpr int kSkinnyMaxM = 8;
// - m >= kDequantCublasMinM: dequantize + cuBLAS. From here on the GEMM is compute-bound and
//   cuBLAS's tuned tiles beat mma.sync with per-block dequantization, while the extra pass (read
//   n·k/2 bytes, write n·k·2) costs a shrinking share: on Llama-2-7B's qkv (n 12288, k 4096) on an
//   H100 about 42 us against about 150 us for the FP16 GEMM at m = 1024.
constexpr int kDequantCublasMinM = 1024;
W4A16Kernel choose_w4a16_kernel(int m);

// Group sizes the kernels are compiled for: stages of 64 input channels hold one or two groups.
bool supported_group_size(int group_size);

// A validated launch configuration for one (kernel, m, n, k, group_size) on the current device.
struct W4A16Plan {
  W4A16Kernel kernel = W4A16Kernel::kSkinny;
  int m = 0, n = 0, k = 0, group_size = 0;
  int split_k = 1;              // k slices reduced in FP32 (1: no split); kSkinny/kTensorCore only
  int k_per_split = 0;          // input channels per slice, a multiple of 64
  size_t workspace_bytes = 0;   // device scratch the launch needs (split-K partials or fp16 W)
};

// Throws qb::Error naming the bad argument (group size not 32/64/128, k not a multiple of the
// group size, n not a multiple of 8, m < 1, kSkinny with m > kSkinnyMaxM). split_k = 0 chooses
// enough k slices to fill every SM; > 0 forces that many (clamped to the number of 64-row stages).
W4A16Plan plan_w4a16(W4A16Kernel kernel, int m, int n, int k, int group_size, int split_k = 0);
// The dispatcher's choice for m.
W4A16Plan plan_w4a16(int m, int n, int k, int group_size);

// y = x · W^T on `stream`.
//   x [m, k] fp16 row-major, y [m, n] fp16 row-major (device pointers, 16-byte aligned)
//   workspace: plan.workspace_bytes of device memory, zero-filled once when allocated; launches
//   leave the split-K counters in it zero again, so one workspace serves every plan in turn
//   (sequentially on one stream).
//   cublas: used by kDequantCublas only (may be null otherwise).
void w4a16_gemm(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y, void* workspace,
                cublasHandle_t cublas, cudaStream_t stream);

// Unpacks the whole weight to fp16, bit-identical to the CPU reference (round_to_half((q - z) · s)).
enum class WeightLayout {
  kNK,  // W [n, k] row-major (PyTorch nn.Linear.weight)
  kKN,  // W^T [k, n] row-major (the packed layout's own orientation)
};
void dequantize_awq(const AwqWeightView& w, __half* out /* [n, k] or [k, n] */, WeightLayout layout,
                    cudaStream_t stream);

}  // namespace qb::kernels
