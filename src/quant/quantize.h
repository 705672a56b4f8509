#pragma once
// Quantizing a model's block linears with RTN, RTN keeping some input channels in FP16
// (quant/rtn_keep.h) or AWQ: the API the CLI (`quantize`, `eval`) uses.
// Embeddings, norms and lm_head stay as they are in the FP16 model (AWQ paper); the linear
// layers of every block become QuantizedWeight. AWQ additionally rescales the norm weights (the
// folded 1/s), which stay in the source dtype.
//
// Calibration for AWQ (quant/calibration.h) runs the model block by block on the CPU. By default
// the input of block i+1 is block i's FP16 output, as llm-awq's run_awq does (it computes the next
// input with the block before scaling, clipping or quantizing it; AutoAWQ does the same).
// QuantizeOptions::chain_quantized feeds the AWQ-quantized block's output instead (GPTQ-style),
// so later blocks are searched on the activations the quantized model will really see.
#include <string>

#include <nlohmann/json.hpp>

#include "datasets/tokenizer.h"
#include "model/model.h"
#include "quant/rtn_keep.h"

namespace qb {

// The weight formats this project compares: the FP16 reference and the quantizer families.
enum class MethodFamily { Fp16, Rtn, Awq, RtnKeep };
const char* family_name(MethodFamily f);  // "fp16" | "rtn" | "awq" | "rtn-keep", as run documents name it

struct QuantizeOptions {
  MethodFamily family = MethodFamily::Rtn;  // Rtn, RtnKeep or Awq
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
};

struct QuantizeResult {
  Model model;
  // {"method", "bits", "group_size", "zero_point", "symmetric", "clip", "calibration": null | {...},
  //  "search": null | {...}}, and for rtn-keep "keep": {"by", "fraction", "channels_per_linear",
  //  "seed" (random only, else null)}: the run document's "quantization" object.
  nlohmann::json quantization;
  // One entry per linear layer: {"name", "alpha", "clip_ratio", "weight_error_rtn", "weight_error",
  // "output_error_rtn", "output_error"} (errors relative: ||W_hat - W||^2 / ||W||^2 and
  // ||X W_hat^T - X W^T||^2 / ||X W^T||^2 on calibration inputs; null where not measured).
  nlohmann::json layers;
  // AWQ only: one entry per block {"block", "seconds", "output_error_rtn", "output_error"}, the
  // relative error of the whole block's output on its calibration inputs.
  nlohmann::json blocks;
};

// fp16_model: the reference (dense weights; read through Tensor::to_float). tokenizer: required
// for AWQ and RtnKeep by act. Throws qb::Error on bad options or calibration.
QuantizeResult quantize_model(const Model& fp16_model, const QuantizeOptions& options, const Tokenizer* tokenizer);

// A copy of `model` with every dense F32/BF16 tensor converted to F16 (F16 ones shared): the FP16
// reference of a float32 checkpoint such as llama2.c's.
Model to_fp16(const Model& model);

}  // namespace qb
