#pragma once
// The eval run document (kind "eval", reports/run.schema.json) as a pure function of what a run
// measured: no file is read and no clock is looked at here, so the same results always give the
// same document.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/dataset.h"
#include "eval/lockstep.h"
#include "eval/protocol.h"
#include "model/cpu_forward.h"
#include "model/logits_backend.h"
#include "model/model.h"

namespace qb {

// One evaluated weight format.
struct EvaluatedMethod {
  std::string family;           // "fp16" | "rtn" | "awq"
  std::string label;            // "fp16", "awq w4 g128", "rtn (checkpoint-dir)": unique within a run
  nlohmann::json quantization;  // the settings as quantized or loaded; null for fp16
  nlohmann::json layers;        // per-layer quantization report, or null
  std::vector<std::pair<std::string, size_t>> bytes_by_dtype;  // Model::weight_bytes_by_dtype()
  Device device = Device::Cpu;
  nlohmann::json memory;        // LogitsBackend::memory(): null on the CPU
  LockstepSums sums;
};

struct EvalResults {
  // Provenance: tool_info(), host_info(), utc_timestamp(), and the GPU's probe (null on the CPU).
  nlohmann::json tool, host, device;
  std::string created;
  const Model* model = nullptr;  // the source model as loaded (its own dtypes)
  std::string tokenizer_path;
  int tokenizer_vocab_size = 0;
  int tokenizer_bos_id = 1;      // < 0: the tokenizer has no BOS
  std::string tokenizer_kind = "sentencepiece";  // Tokenizer::kind(): which implementation encoded
  Activations activations = Activations::Exact;  // the CPU arithmetic (model/cpu_forward.h)
  const TextDataset* dataset = nullptr;
  size_t dataset_tokens = 0;
  ProtocolOptions protocol;      // as run (ctx capped at the model's max_seq_len)
  size_t windows = 0;             // evaluated by this process: the shard's when sharded
  ShardRange shard;              // spec.count > 1: the document carries the shard and its exact sums
  std::vector<EvaluatedMethod> methods;  // methods[0] is the FP16 reference
  nlohmann::json vram_catalog;   // eval/vram_catalog.h: projected bytes per catalog model and method
};

nlohmann::json eval_run_document(const EvalResults& results);

// A method's "quality" from its sums and the reference's (reference: itself for the reference),
// and its "speed": the one computation behind both a run's document and its merged shards'
// (eval/shard_merge.h), so that the two agree to the bit.
nlohmann::json quality_json(const LockstepSums& sums, const LockstepSums& reference, bool is_reference, size_t windows);
nlohmann::json speed_json(const LockstepSums& sums, const std::string& device);
// A shard document's per-method "shard_sums": the exact sums (128-bit fixed point as decimal
// strings), the top-1 count, every KL value, tokens run and seconds; and back, errors naming the
// file (`where`) and the field's path (`field`).
nlohmann::json sums_json(const LockstepSums& sums);
LockstepSums sums_from_json(const nlohmann::json& j, const std::string& where, const std::string& field);

}  // namespace qb
