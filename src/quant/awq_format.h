#pragma once
// The AutoAWQ "gemm" checkpoint format (casper-hansen/AutoAWQ awq/modules/linear/gemm.py), read and
// written here: an HF directory with config.json (+ quantization_config) and model.safetensors
// (or shards listed in model.safetensors.index.json). For every quantized linear layer
// model.layers.N.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj}:
//
//   .qweight  I32 [k, n/8]   eight 4-bit codes per word, layouts/awq_layout.h order
//   .qzeros   I32 [k/g, n/8] integer zero points, packed the same way
//   .scales   F16 [k/g, n]
//
// (n = out_features, k = in_features, g = group size; AutoAWQ requires k % g == 0 and 4 bits).
// Everything else (embed_tokens, the norms, lm_head unless tied) is a dense FP16 `.weight`.
// config.json's quantization_config: {"quant_method": "awq", "bits": 4, "group_size": g (-1: one
// group per output channel), "zero_point": true, "version": "gemm", "modules_to_not_convert": null}.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "quant/hf_checkpoint.h"

namespace qb {

// The three packed tensors of one 4-bit linear layer.
struct AwqPackedLinear {
  int n = 0, k = 0, group_size = 0;
  std::vector<int32_t> qweight;  // [k, n/8]
  std::vector<int32_t> qzeros;   // [k/g, n/8]
  std::vector<uint16_t> scales;  // [k/g, n] FP16 bits
};

// Packs `w`; refuses (qb::Error naming `name`) bits != 4, k % group_size != 0 or n % 8 != 0.
AwqPackedLinear pack_awq_linear(const QuantizedWeight& w, const std::string& name);
// Unpacks bit-exactly into codes, zero points and scales (symmetric = false: zero points are stored).
QuantizedWeight unpack_awq_linear(const AwqPackedLinear& packed, const std::string& name);

// A directory whose config.json says quant_method "awq".
bool is_awq_checkpoint(const std::string& dir);

// Loads an AutoAWQ gemm directory (ours or AutoAWQ's); every shape, dtype and the group size are
// checked, errors name the tensor. The model has rope_interleaved = false (HF row order).
Model load_awq_checkpoint(const std::string& dir);

struct AwqWriteOptions {
  std::string tokenizer_path;  // copied as tokenizer.json (a .json) or tokenizer.model when non-empty
  nlohmann::json report;       // written as quantize_report.json when not null
  uint64_t shard_bytes = kDefaultShardBytes;  // HF's max_shard_size (model/safetensors.h)
};

// The format for a streaming writer (quant/hf_checkpoint.h QuantizedCheckpointStream), with one
// group size for every layer (-1: one group per output channel).
CheckpointFormat awq_checkpoint_format(int group_size);

// Throws qb::Error naming the first linear layer of `c` that a bits/group_size quantization could
// not be stored as in this format (bits != 4, group size not dividing in_features, out_features not
// a multiple of 8): lets callers refuse before a long AWQ run.
void check_awq_storable(const LlamaConfig& c, int bits, int group_size);

// Writes every block linear of `model` (all must be quantized, 4-bit, one group size that divides
// every k) in the format above, atomically: into dir.tmp.<pid>, then renamed to dir; refuses an
// existing dir. A model with llama2.c rotary pairs (rope_interleaved) has its q/k rows permuted to
// HF order, as llama2.c's export.py does, so HF loaders and load_awq_checkpoint compute the same
// function.
void write_awq_checkpoint(const Model& model, const std::string& dir, const AwqWriteOptions& options = {});

}  // namespace qb
