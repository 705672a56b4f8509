#pragma once
// Quantizing a model's block linears with RTN, RTN keeping some input channels in FP16
// (quant/rtn_keep.h), AWQ or GPTQ: the API the CLI (`quantize`, `eval`) uses.
// Embeddings, norms and lm_head stay as they are in the FP16 model (AWQ paper); the linear
// layers of every block become QuantizedWeight. AWQ additionally rescales the norm weights (the
// folded 1/s), which stay in the source dtype.
//
// Calibration for AWQ (quant/calibration.h) runs the model block by block on the CPU. By default
// the input of block i+1 is block i's FP16 output, as llm-awq's run_awq does (it computes the next
// input with the block before scaling, clipping or quantizing it; AutoAWQ does the same).
// QuantizeOptions::chain_quantized feeds the AWQ-quantized block's output instead (GPTQ-style),
// so later blocks are searched on the activations the quantized model will really see.
// GPTQ (quant/gptq.h) always calibrates on the quantized chain, as the GPTQ reference does: block
// i+1's inputs are block i's output with its linears already GPTQ-quantized, and inside a block
// each group of linears (q/k/v, o, gate/up, down) sees the inputs of the block with the earlier
// groups quantized (AutoGPTQ's true_sequential, its default).
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "datasets/tokenizer.h"
#include "model/model.h"
#include "quant/awq.h"
#include "quant/rtn_keep.h"

namespace qb {

// The weight formats this project compares: the FP16 reference and the quantizer families.
// Gptq: quant/gptq.h. Gguf: llama.cpp's block formats and mixes (quant/gguf_quantize.h), made by
// llama.cpp's reference quantizers (layouts/ggml_quants.h); unlike the others it also quantizes
// embed_tokens and lm_head, as llama-quantize does, and takes no bits / group options.
enum class MethodFamily { Fp16, Rtn, Awq, RtnKeep, Gptq, Gguf };
// "fp16" | "rtn" | "awq" | "rtn-keep" | "gptq" | "gguf", as run documents name it
const char* family_name(MethodFamily f);

// AWQ's block forwards and per-block search run elsewhere (src/gpu/awq_search_cuda.h), with the
// signatures of block_forward (model/cpu_forward.h) and awq_search_block (quant/awq.h) and the
// same results up to float summation order. quant cannot include gpu, so the caller hands them in;
// an empty function runs on the CPU.
using AwqBlockForward = std::function<void(const LlamaConfig&, const CpuLayer&, float* x, int n_seq, int seq_len,
                                           BlockInputs* capture)>;
using AwqSearch = std::function<AwqBlockResult(const LlamaConfig&, const CpuLayer& fp16, const BlockInputs&,
                                               int n_seq, int seq_len, const AwqOptions&)>;
struct AwqDevice {
  AwqBlockForward block_forward;  // the calibration forward (with capture) and the error report's forwards
  AwqSearch search;
};

struct QuantizeOptions {
  MethodFamily family = MethodFamily::Rtn;  // Rtn, RtnKeep, Awq, Gptq or Gguf
  int bits = 4;                // 2 .. 8
  int group_size = 128;        // > 0, or -1 per output channel
  bool symmetric = false;
  bool clip = true;            // AWQ's clip search
  int calib_samples = 128;
  int calib_seq_len = 512;
  KeepBy keep_by = KeepBy::Act;  // RtnKeep: how the FP16 input channels are chosen
  double keep_fraction = 0.01;   // RtnKeep: of each linear's input channels, rounded up
  std::string calib_path;      // calibration text (AWQ, RtnKeep by act)
  bool force_calib = false;    // allow calib_path == eval_path
  std::string eval_path;       // the evaluation file: refused as calibration unless forced
  bool chain_quantized = false;  // AWQ: next block's calibration input from the quantized block
  double gptq_damp = 0.01;     // Gptq: dampening, this fraction of the mean of diag(H) added to it
  bool act_order = false;      // Gptq: columns by descending diag(H) (desc_act), static groups
  std::string gguf_type;       // Gguf: a llama.cpp type or mix as llama-quantize names it ("q4_0", "q4_k_m")
  AwqDevice awq_device;        // Awq: where the block forwards and the search run (empty: the CPU)
};

struct QuantizeResult {
  Model model;
  // {"method", "bits", "group_size", "zero_point", "symmetric", "clip", "calibration": null | {...},
  //  "search": null | {...}, "seconds": wall time of the quantizer}, and for rtn-keep "keep": {"by", "fraction", "channels_per_linear",
  //  "seed" (random only, else null)}: the run document's "quantization" object.
  nlohmann::json quantization;
  // One entry per linear layer: {"name", "alpha", "clip_ratio", "weight_error_rtn", "weight_error",
  // "output_error_rtn", "output_error"} (errors relative: ||W_hat - W||^2 / ||W||^2 and
  // ||X W_hat^T - X W^T||^2 / ||X W^T||^2 on calibration inputs; null where not measured).
  nlohmann::json layers;
  // AWQ and GPTQ: one entry per block {"block", "seconds", "output_error_rtn", "output_error"}, the
  // relative error of the whole block's output on its calibration inputs.
  nlohmann::json blocks;
};

// Receives each block as soon as it is quantized, in block order: a streaming checkpoint writer
// (quant/hf_checkpoint.h QuantizedCheckpointStream). AWQ's block holds its rescaled norms too.
using QuantizedBlockSink = std::function<void(int block, const LayerWeights& layer)>;

// fp16_model: the reference (dense weights; read through Tensor::to_float). tokenizer: required
// for AWQ and RtnKeep by act. Throws qb::Error on bad options or calibration.
// With a sink (not for Gguf), each quantized block is handed to it and then dropped: result.model's
// layers are left empty (default LayerWeights), so that memory holds one block at a time.
QuantizeResult quantize_model(const Model& fp16_model, const QuantizeOptions& options, const Tokenizer* tokenizer,
                              const QuantizedBlockSink& sink = {});

// What quantize_model holds at its peak when it streams (a sink), estimated from the shapes, in
// bytes: the memory plan `quantize` prints and checks before any work.
struct QuantizeMemoryPlan {
  size_t block = 0;        // one block: its weights as stored, the FP32 copies the quantizer works on, its codes
  size_t activations = 0;  // calibration activations, AWQ / GPTQ / rtn-keep by act (samples x seq_len rows)
  size_t embeddings = 0;   // embed_tokens or lm_head as stored, the larger (each is written whole)
  size_t fp16_copy = 0;    // the FP16 copy (to_fp16) of a source stored in F32, whole
  size_t total() const { return block + activations + embeddings + fp16_copy; }
};
QuantizeMemoryPlan plan_quantize_memory(const Model& source, const QuantizeOptions& options);

// A copy of `model` with every dense F32 tensor converted to F16 (F16 and BF16 ones shared, as
// stored): the 16-bit reference of a float32 checkpoint such as llama2.c's.
Model to_fp16(const Model& model);

}  // namespace qb
