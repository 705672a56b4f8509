#pragma once
// The GPTQ checkpoint format people download (AutoGPTQ, GPTQModel; HF quant_method "gptq"), read
// and written here: an HF directory (quant/hf_checkpoint.h) where every quantized linear layer
// model.layers.N.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj} is
//
//   .qweight  I32 [k/P, n]          codes packed along the input dimension (layouts/gptq_layout.h)
//   .qzeros   I32 [n_groups, n/P]   zero points packed along the output dimension; v1: zero - 1
//   .scales   F16 [n_groups, n]
//   .g_idx    I32 [k]               each input channel's group (absent in some old files: i / g)
//
// (n = out_features, k = in_features, P = 32 / bits, n_groups = ceil(k / group_size)), with the
// settings in config.json's quantization_config {"quant_method": "gptq", "bits", "group_size"
// (-1: one group per output channel), "desc_act", "sym", "static_groups", "true_sequential",
// "damp_percent", "checkpoint_format": "gptq" | "gptq_v2"} or, in older AutoGPTQ directories, in
// quantize_config.json alone. Both files are written. Bits 2, 4 and 8 (AutoGPTQ's 3-bit layout
// straddles words and is refused, as are other widths). checkpoint_format "gptq" (v1, written
// here) stores zero - 1, "gptq_v2" stores the zero as is; both are read.
// A g_idx other than i / group_size (act-order without static groups) is kept in
// QuantizedWeight::g_idx: the CPU backend evaluates it, the CUDA backend refuses it by layer.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "quant/hf_checkpoint.h"

namespace qb {

// The packed tensors of one linear layer.
struct GptqPackedLinear {
  int n = 0, k = 0, bits = 4, group_size = 0;  // group_size = k for one group per output channel
  std::vector<int32_t> qweight;  // [k/P, n]
  std::vector<int32_t> qzeros;   // [n_groups, n/P]
  std::vector<uint16_t> scales;  // [n_groups, n] FP16 bits
  std::vector<int32_t> g_idx;    // [k]
};

// Packs `w` with v1 zero points; refuses (qb::Error naming `name`) bits other than 2, 4, 8 and
// n or k not a multiple of 32 / bits.
GptqPackedLinear pack_gptq_linear(const QuantizedWeight& w, const std::string& name);
// Unpacks bit-exactly; zeros_v2: the zero points are stored as is (gptq_v2), else minus one (v1).
// A g_idx entry outside 0 .. n_groups-1 is an error naming `name`; a g_idx equal to i / group_size
// becomes the empty (implicit) one.
QuantizedWeight unpack_gptq_linear(const GptqPackedLinear& packed, bool zeros_v2, const std::string& name);

// A directory whose config.json's quantization_config says quant_method "gptq", or that has a
// quantize_config.json and no quantization_config in config.json.
bool is_gptq_checkpoint(const std::string& dir);

// Loads a GPTQ directory (ours, AutoGPTQ's or GPTQModel's); settings, shapes, dtypes and g_idx
// are checked, errors name the file and the field or tensor.
Model load_gptq_checkpoint(const std::string& dir);

// Throws qb::Error naming the first linear layer of `c` that this format cannot store at `bits`.
void check_gptq_storable(const LlamaConfig& c, int bits);

struct GptqWriteOptions {
  std::string tokenizer_path;  // copied as tokenizer.json (a .json) or tokenizer.model when non-empty
  nlohmann::json report;       // written as quantize_report.json when not null
  bool desc_act = false;       // how the weights were made, recorded in the config
  double damp_percent = 0.01;
  uint64_t shard_bytes = kDefaultShardBytes;  // HF's max_shard_size (model/safetensors.h)
};

// The format for a streaming writer (quant/hf_checkpoint.h QuantizedCheckpointStream): one bits and
// group size (-1: one group per output channel) for every layer; sym: every layer symmetric.
CheckpointFormat gptq_checkpoint_format(int bits, int group_size, bool sym, const GptqWriteOptions& options);

// Writes every block linear of `model` (all quantized, one group size) in this format with v1 zero
// points, atomically; refuses an existing dir.
void write_gptq_checkpoint(const Model& model, const std::string& dir, const GptqWriteOptions& options = {});

}  // namespace qb
