#pragma once
// Fused quantize-dequantize of a weight on the device, the arithmetic of the CPU's group RTN
// (src/quant/rtn.h quantize_group, llm-awq pseudo_quantize_tensor) bit for bit, for AWQ's grid
// searches: each candidate weight is quantized and widened back in one pass, codes never stored.
// Plain C++ header; the kernels stage knows nothing of models, so the options are plain numbers.
//
// Per output row o and group g (input channels g*group_size .. min(k, +group_size) - 1; the last
// group is shorter when group_size does not divide k):
//   v[i]   = w[o, i] * in_scale[i]                          (in_scale optional: AWQ's W diag(s))
//   v[i]   = clamp(v[i], -c, c), c = clip_max[o, g]          (clip_max optional; c <= 0: no clip)
//   asymmetric: scale = fp16(max(max v - min v, 1e-5) / (2^bits - 1)),
//               zero  = clamp(rint(-min v / scale), 0, 2^bits - 1)
//   symmetric:  scale = fp16(max(max |v|, 1e-5) / (2^(bits-1) - 1)), zero = 2^(bits-1)
//   (a scale that rounds to FP16 zero becomes FP16's smallest subnormal, as on the CPU)
//   q = clamp(rint(v[i] / scale) + zero, 0, 2^bits - 1)       (rint: round half to even)
//   out[o, i] = (q - zero) * scale / in_scale[i]             (Dequantized)
//   out[o, i] = that - w[o, i]                               (Error: the clip search's D)
// Every multiply, divide and subtract is a single correctly rounded float operation as on the
// CPU (no FMA contraction), so the output equals src/quant/rtn.cpp's fake_quantize followed by the
// AWQ search's division by s, bit for bit.
// A group whose scale is not finite (NaN/Inf weights, or a range beyond FP16) sets *bad_row to
// the smallest such row (atomicMin; initialise it to n); its outputs are then undefined, as the
// CPU refuses the tensor.
#include <cuda_runtime_api.h>

namespace qb::kernels {

struct FakeQuantShape {
  int n = 0, k = 0;      // W [n, k] row-major, fp32
  int bits = 4;          // 2 .. 8
  int group_size = 128;  // > 0 (the caller resolves "per channel" to k)
  bool symmetric = false;
};

enum class FakeQuantOutput { Dequantized, Error };

// w, out [n, k]; in_scale [k] or null; clip_max [n, n_groups] or null; bad_row: int32 on the device.
void launch_fake_quantize(const float* w, const float* in_scale, const float* clip_max, const FakeQuantShape& shape,
                          FakeQuantOutput output, float* out, int* bad_row, cudaStream_t stream);

// clip_max[o, g] = max_i |w[o, i]| over group g, times ratio (a single float multiply, as the CPU
// clip search computes its candidate thresholds). w [n, k] fp32, clip_max [n, n_groups].
void launch_group_clip_thresholds(const float* w, const FakeQuantShape& shape, float ratio, float* clip_max,
                                  cudaStream_t stream);

}  // namespace qb::kernels
