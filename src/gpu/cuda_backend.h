#pragma once
// The CUDA LogitsBackend: the whole Llama forward pass of one window on the GPU, scored there.
// Plain C++ header (no CUDA syntax): eval/ and the CLI include it from .cpp files, in CUDA builds
// only (qb_gpu exists when QB_HAVE_CUDA). Whether a device is usable: kernels/device_probe.h,
// qb::kernels::cuda_unavailable_reason() ("" when usable, else "no CUDA device: <why>").
//
// Numerics: weights stay in their format on the device (dense FP16 through cuBLAS, 4-bit through
// the W4A16 kernels; nothing is dequantized for the whole model). Activations entering and leaving
// every GEMM are FP16 with FP32 accumulation, because that is what the W4A16 kernels take and give
// and what FP16/AWQ inference engines run. Everything else is FP32: the residual stream, RMSNorm,
// RoPE'd q/k, attention scores/softmax/weighted sum, SwiGLU, and the logits (lm_head writes FP32
// through cuBLAS) so that scoring does not see FP16-rounded logits; NLL/KL are summed in double.
//
// Memory (memory()): measured with cudaMemGetInfo around everything the backend does (weight
// upload, each window's buffer growth and its forward/score calls, so that cuBLAS's lazily
// allocated workspace is counted too). Deltas are taken around this backend's own calls only, so
// several backends may share the device in lockstep; other processes allocating at the same time
// would blur them.
#include <memory>

#include "model/logits_backend.h"
#include "model/model.h"

namespace qb {

// Uploads `model` to CUDA device `device`. Dense tensors become FP16 (F32/BF16 weights are rounded
// once; a value beyond FP16's range is an error naming the tensor). Quantized block linears must
// be 4-bit with group size 32, 64 or 128 dividing in_features and out_features a multiple of 8
// (what the W4A16 kernels take); any other is refused with qb::Error naming the layer, with no
// fallback. Shapes are checked against model.config.
//
// run(tokens) runs the window and synchronises; score() computes NLL (and, given a CUDA reference
// backend on the same device that ran the same tokens, KL and top-1 agreement) on the device,
// copies only those per-token arrays back, and synchronises, so host timings around run + score
// are honest. memory() returns
//   {"device": name, "device_bytes_total", "device_bytes_free_before" (free before this backend
//    allocated anything), "weight_bytes_device" (used after upload - used before),
//    "weight_bytes_requested" (sum of the weight buffers' sizes: model.weight_bytes() for an
//    all-FP16-dense model), "peak_bytes" (maximum of this backend's measured footprint: weights,
//    activations, workspaces, cuBLAS's own), "activation_bytes" (peak_bytes - weight_bytes_device),
//    "max_window_tokens", "gpu_seconds" (CUDA-event time of run + score, summed over windows)}.
//
// Weights that do not fit (--offload): with CudaWeights::Offload the block weights stay in pinned
// host memory and stream per layer into two device slots, layer i+1 copied on a second stream while
// layer i computes (events order the slot reuse), so the device holds embeddings, lm_head and two
// blocks. Auto offloads only when the blocks do not fit the free device memory with a reserve
// for activations (kOffloadReserveBytes, or 5% of the device if more). Results are bit-identical
// to resident weights. Every block must have block 0's formats (the slots are shaped by it).
// memory() then also has "offload": {"layers", "host_pinned_bytes", "device_slot_bytes"} (null when
// resident), which the run document's vram section carries.
enum class CudaWeights { Auto, Resident, Offload };
constexpr long long kOffloadReserveBytes = 2LL << 30;
std::unique_ptr<LogitsBackend> make_cuda_backend(const Model& model, int device = 0,
                                                 CudaWeights weights = CudaWeights::Auto);

}  // namespace qb
