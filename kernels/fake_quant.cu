// The fused quantize-dequantize of kernels/fake_quant.h. One warp per (row, group): the lanes
// stride over the group for its minimum and maximum (exact in any order), lane 0's view of the
// reduced range gives the FP16 scale and zero point, then every lane writes its weights. The
// explicit __f*_rn intrinsics keep nvcc from contracting a multiply and an add into an FMA, which
// the CPU (plain x86-64 SSE) never does.
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/cuda_check.h"
#include "kernels/fake_quant.h"

namespace qb::kernels {
namespace {

constexpr int kThreads = 256;  // 8 warps: 8 (row, group) pairs per block
constexpr int kWarpsPerBlock = kThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr float kMinRange = 1e-5f;                      // rtn.cpp's floor on the group's range
constexpr float kSmallestHalf = 5.9604644775390625e-8f;  // FP16 subnormal 0x0001 = 2^-24

// std::clamp(v, -c, c) for finite v when c > 0, else v.
__device__ float clip_value(float v, float c) { return c > 0.0f ? fminf(fmaxf(v, -c), c) : v; }

__device__ float warp_min(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fminf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}
__device__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

__global__ void __launch_bounds__(kThreads)
    fake_quantize_kernel(const float* __restrict__ w, const float* __restrict__ in_scale,
                         const float* __restrict__ clip_max, FakeQuantShape shape, bool error_output,
                         float* __restrict__ out, int* bad_row) {
  const int n_groups = (shape.k + shape.group_size - 1) / shape.group_size;
  const long long unit = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (unit >= static_cast<long long>(shape.n) * n_groups) return;  // whole warps leave together
  const int lane = threadIdx.x % 32;
  const int o = static_cast<int>(unit / n_groups), g = static_cast<int>(unit % n_groups);
  const int begin = g * shape.group_size, len = min(shape.group_size, shape.k - begin);
  const float* wg = w + static_cast<size_t>(o) * shape.k + begin;
  const float* sg = in_scale ? in_scale + begin : nullptr;
  const float clip = clip_max ? clip_max[unit] : 0.0f;  // [n, n_groups]: index o * n_groups + g

  float lo = INFINITY, hi = -INFINITY;
  bool finite = true;
  for (int i = lane; i < len; i += 32) {
    const float raw = sg ? __fmul_rn(wg[i], sg[i]) : wg[i];
    finite = finite && isfinite(raw);
    const float v = clip_value(raw, clip);
    lo = fminf(lo, v);
    hi = fmaxf(hi, v);
  }
  lo = warp_min(lo);
  hi = warp_max(hi);
  finite = __all_sync(kFullMask, finite);

  const int max_code = (1 << shape.bits) - 1;
  float range;
  int zero;
  if (shape.symmetric) {
    range = __fdiv_rn(fmaxf(fmaxf(fabsf(lo), fabsf(hi)), kMinRange), static_cast<float>((1 << (shape.bits - 1)) - 1));
    zero = 1 << (shape.bits - 1);
  } else {
    range = __fdiv_rn(fmaxf(__fsub_rn(hi, lo), kMinRange), static_cast<float>(max_code));
    zero = -1;
  }
  float scale = __half2float(__float2half_rn(range));
  if (!finite || !isfinite(range) || !isfinite(scale)) {
    if (lane == 0) atomicMin(bad_row, o);
    return;
  }
  if (scale == 0.0f) scale = kSmallestHalf;
  if (zero < 0) zero = static_cast<int>(fminf(fmaxf(rintf(__fdiv_rn(-lo, scale)), 0.0f), static_cast<float>(max_code)));
  const float zero_f = static_cast<float>(zero);

  float* og = out + static_cast<size_t>(o) * shape.k + begin;
  for (int i = lane; i < len; i += 32) {
    const float raw = sg ? __fmul_rn(wg[i], sg[i]) : wg[i];
    const float q = fminf(fmaxf(__fadd_rn(rintf(__fdiv_rn(clip_value(raw, clip), scale)), zero_f), 0.0f),
                          static_cast<float>(max_code));
    float w_hat = __fmul_rn(__fsub_rn(q, zero_f), scale);
    if (sg) w_hat = __fdiv_rn(w_hat, sg[i]);
    og[i] = error_output ? __fsub_rn(w_hat, wg[i]) : w_hat;
  }
}

__global__ void __launch_bounds__(kThreads)
    group_clip_thresholds_kernel(const float* __restrict__ w, FakeQuantShape shape, float ratio,
                                 float* __restrict__ clip_max) {
  const int n_groups = (shape.k + shape.group_size - 1) / shape.group_size;
  const long long unit = static_cast<long long>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (unit >= static_cast<long long>(shape.n) * n_groups) return;
  const int lane = threadIdx.x % 32;
  const int o = static_cast<int>(unit / n_groups), g = static_cast<int>(unit % n_groups);
  const int begin = g * shape.group_size, len = min(shape.group_size, shape.k - begin);
  const float* wg = w + static_cast<size_t>(o) * shape.k + begin;
  float max_abs = 0.0f;
  for (int i = lane; i < len; i += 32) max_abs = fmaxf(max_abs, fabsf(wg[i]));
  max_abs = warp_max(max_abs);
  if (lane == 0) clip_max[unit] = __fmul_rn(max_abs, ratio);
}

unsigned blocks_for(const FakeQuantShape& s) {
  const long long units = static_cast<long long>(s.n) * ((s.k + s.group_size - 1) / s.group_size);
  return static_cast<unsigned>((units + kWarpsPerBlock - 1) / kWarpsPerBlock);
}

}  // namespace

void launch_fake_quantize(const float* w, const float* in_scale, const float* clip_max, const FakeQuantShape& shape,
                          FakeQuantOutput output, float* out, int* bad_row, cudaStream_t stream) {
  if (shape.n < 1 || shape.k < 1) return;
  fake_quantize_kernel<<<blocks_for(shape), kThreads, 0, stream>>>(w, in_scale, clip_max, shape,
                                                                   output == FakeQuantOutput::Error, out, bad_row);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_group_clip_thresholds(const float* w, const FakeQuantShape& shape, float ratio, float* clip_max,
                                  cudaStream_t stream) {
  if (shape.n < 1 || shape.k < 1) return;
  group_clip_thresholds_kernel<<<blocks_for(shape), kThreads, 0, stream>>>(w, shape, ratio, clip_max);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::kernels
