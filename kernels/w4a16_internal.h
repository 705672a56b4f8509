#pragma once
// Host-side glue between w4a16.cpp (validation, planning, dispatch) and the kernel files; not part
// of the public API. Plain C++.
#include "kernels/w4a16.h"

namespace qb::kernels::detail {

// Every workspace starts with a fixed region of split-K tile counters, so that the data part of any
// plan (FP32 partials, or kDequantCublas's fp16 W) starts after it and never overwrites counters
// another plan relies on being zero. Plans split k only when the tiles alone cannot fill the GPU,
// i.e. far fewer tiles than this.
constexpr int kMaxCounterTiles = 4096;
constexpr size_t kCounterRegionBytes = kMaxCounterTiles * sizeof(int);  // 16 KiB, 256-byte aligned

// Rows of x per block of the tensor-core kernel (16, 32 or 64) for a given m.
int tensor_core_block_m(int m);

// Resident blocks per SM (occupancy calculator), after raising the kernel's shared-memory limit.
int skinny_blocks_per_sm(int m);
int tensor_core_blocks_per_sm(int block_m);

// Launches for a validated plan (w4a16_gemm checks the operands first). workspace: see w4a16.h.
void launch_skinny(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y, void* workspace,
                   cudaStream_t stream);
void launch_tensor_core(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y, void* workspace,
                        cudaStream_t stream);

// dequantize_awq after validation (dequantize.cu).
void launch_dequantize(const AwqWeightView& w, __half* out, WeightLayout layout, cudaStream_t stream);

}  // namespace qb::kernels::detail
