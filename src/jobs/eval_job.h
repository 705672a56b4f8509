#pragma once
// The eval job: one model, one tokenized split, several weight formats (the FP16 reference, RTN,
// AWQ, quantized checkpoints), all run over the same windows in lockstep so that KL divergence and
// top-1 agreement compare the same positions. It is the one place that knows every stage:
//   plan     the inputs checked and loaded, the windows cut (eval/protocol.h), the device chosen
//   methods  each weight format built: quantized (src/quant) or loaded from a checkpoint
//   run      backends (eval/cpu_backend.h, src/gpu) driven in lockstep (eval/lockstep.h) -> sums, or
//            sequentially, one method at a time against the reference stored on disk, when the
//            memory plan (eval/memory_plan.h, checked before any method is prepared) says so
//   document the sums turned into the run document (eval/run_document.h), kind "eval"
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/dataset.h"
#include "eval/memory_plan.h"
#include "eval/protocol.h"
#include "model/cpu_forward.h"
#include "quant/quantize.h"

namespace qb {

// One weight format to evaluate: a family at a quantization setting, or a quantized checkpoint.
struct MethodSpec {
  MethodFamily family = MethodFamily::Fp16;
  int bits = 16;
  int group_size = 0;          // > 0, or -1 for one group per output channel; unused for fp16
  std::string checkpoint_dir;  // set: weights come from this AutoAWQ or GPTQ directory
  KeepBy keep_by = KeepBy::Act;  // rtn-keep: how the FP16 input channels are chosen
  double keep_fraction = 0;      // rtn-keep: of each linear's input channels
  std::string gguf_type;         // gguf: the llama.cpp type or mix, e.g. "q4_0", "q4_k_m"
};

// "fp16,rtn,awq:w3g128,gptq,rtn-keep:act:1%:w3,gguf:q4_k_m": families, each optionally
// ":w<bits>[g<group>]" (g-1: per output channel); rtn-keep names its channel choice
// (act|weight|random) and the kept percentage first; gguf names a llama.cpp type or mix instead. Settings not given take default_bits / default_group. Errors name the bad item.
std::vector<MethodSpec> parse_methods(const std::string& list, int default_bits, int default_group);

enum class DeviceChoice { Cpu, Cuda, Auto };  // Auto: the GPU when one is usable, else the CPU

// Where AWQ's block forwards and search run for --device (QuantizeOptions::awq_device): the GPU
// (gpu/awq_search_cuda.h) for cuda, and for auto when a device is usable; else empty, the CPU.
// cuda without a usable device (or without a CUDA build) is an error.
AwqDevice awq_device_for(DeviceChoice device);

struct EvalOptions {
  std::string model_path;
  std::string tokenizer_path;  // "" -> the tokenizer beside the model (datasets/tokenizer.h)
  std::string dataset_path;
  DatasetFormat dataset_format = DatasetFormat::Auto;
  ProtocolOptions protocol;
  std::vector<MethodSpec> methods;  // the FP16 reference is always run first, once
  // What every quantized method shares (symmetric, clip, calibration); each method's family, bits,
  // group size and kept channels come from its MethodSpec, and eval_path is dataset_path.
  QuantizeOptions quantize;
  DeviceChoice device = DeviceChoice::Auto;
  // CUDA: keep every method's block weights in pinned host memory and stream them per layer
  // (gpu/cuda_backend.h CudaWeights::Offload); without it, only a model whose blocks do not fit.
  bool offload = false;
  // CPU arithmetic: float32 (exact) or llama.cpp's (model/cpu_forward.h), which runs on the CPU.
  Activations activations = Activations::Exact;
  // Model-shape catalog for the projected VRAM of 7B..70B models; "" -> bench/model_shapes.json.
  std::string catalog_path;
  // lockstep: every method's backend alive at once, window by window; sequential: the reference
  // first, its rows kept on disk (eval/reference_store.h), then each method alone (one method's
  // weights in memory at a time); auto: lockstep when its memory plan fits (eval/memory_plan.h).
  EvalMode mode = EvalMode::Auto;
  std::string scratch_dir;         // sequential: where the reference store goes; "" -> $TMPDIR, else /tmp
  size_t memory_budget_bytes = 0;  // what the memory plan may use; 0 -> the machine's available memory
  // --shard I/N: this process evaluates windows [I*W/N, (I+1)*W/N) of the W planned and writes a
  // shard document that eval/shard_merge.h merges exactly.
  ShardSpec shard;
};

nlohmann::json run_eval(const EvalOptions& options);

}  // namespace qb
