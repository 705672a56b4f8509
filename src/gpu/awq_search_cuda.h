#pragma once
// AWQ's per-block work on a CUDA device: the calibration forward with its captured inputs (and the
// error report's block forwards), and the search of quant/awq.h awq_search_block, the same scale grid
// and clip grid with the same decisions, at GPU speed. Plain C++ header (CUDA builds only: qb_gpu).
//
// The block forward is the CPU's block_forward (model/cpu_forward.h) in FP32 on the device: RMSNorm
// with its sum of squares in double, cuBLAS sgemm, the same RoPE tables, softmax and SwiGLU; its
// outputs and captures differ from the CPU's by float summation order (~1e-6 relative).
//
// What runs where. The host computes what decides the grid and must equal the CPU bit for bit:
// s_x = mean |x| per channel, each alpha's s (std::pow, the 1e-4 floor, the sqrt(max*min)
// normalisation), the folded scales (apply_block_scales) and the clip search's sampled tokens.
// The device does the heavy part: every candidate weight by the fused quantize-dequantize kernel
// (kernels/fake_quant.h, bit-identical to the CPU's fake_quantize), the module outputs in FP32
// (cuBLAS sgemm without TF32, FP32 RoPE/softmax/SwiGLU kernels: src/gpu/awq_search_kernels.h),
// the loss in double, and for the clip grid D = Q(clamp W) - W per ratio, E = X_g D_g^T for all
// groups by strided-batched sgemm and the per-(channel, group) squared sums.
//
// Same decisions: the candidate weights are identical; the losses differ from the CPU's only by
// float summation order (cuBLAS vs OpenBLAS, reductions), ~1e-6 relative. A choice flips only
// when two candidates' losses are that close, i.e. when they are equally good; the test
// (tests/gpu/test_gpu_awq_search.cpp) states the tolerance it checks.
#include "quant/awq.h"
#include "quant/quantize.h"

namespace qb {

// QuantizeOptions::awq_device for CUDA device `device`: both functions share one set of device
// buffers, kept between blocks (every block of a model has the same shapes) and freed with the last
// copy of either. Errors (no device, out of memory, non-finite weights) throw qb::Error.
AwqDevice make_cuda_awq(int device = 0);

}  // namespace qb
