#pragma once
// The eval's memory plan, worked out from the config before any method is prepared, and the choice
// between lockstep and sequential mode that it drives (--mode lockstep|sequential|auto).
//
// It counts weights as stored: F16/BF16 tensors at 2 bytes (memory-mapped, computed from as stored
// by the CPU forward) and quantized linears as packed codes + FP16 scales + packed zeros
// (quantized_stored_bytes). That is what the weights cost once the CPU forward no longer widens
// them into a whole-model FP32 copy and quantized codes are held packed (the scale work of issue 9:
// forward from weights as stored, packed codes); with either missing a run needs more than planned.
//   weights      lockstep: the FP16 reference + every method; sequential: the reference + the
//                largest method (one method at a time; the reference's weights stay, the next
//                method is quantized from them)
//   quantization the largest quantizer's transient memory, as `quantize` plans it
//                (quant/quantize.h plan_quantize_memory: one block in FP32 copies + the calibration
//                activations), given by the caller
//   activations  per backend and window: ctx x (hidden + q + k + v + 2 inner + vocab) x 4 B + the
//                attention scores n_heads x ctx x ctx x 4 B; lockstep holds one per backend,
//                sequential one + one window of reference records
// The three are added: a bound, since quantization ends before the windows run.
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace qb {

enum class EvalMode { Auto, Lockstep, Sequential };
const char* eval_mode_name(EvalMode m);  // "auto" | "lockstep" | "sequential"

// One method besides the reference: the weights it holds beyond what it shares with the reference
// (a quantized method shares the embeddings, norms and lm_head, which stay FP16).
struct PlannedMethod {
  std::string label;
  size_t weight_bytes = 0;
};

struct MemoryPlanInputs {
  LlamaConfig config;
  size_t fp16_weight_bytes = 0;        // the reference as stored (Model::weight_bytes())
  std::vector<PlannedMethod> methods;  // every other method
  size_t quantization_bytes = 0;       // the largest quantizer's block + calibration activations
  int ctx = 0;                         // tokens per window
  size_t scored_tokens = 0;            // over all windows: the sequential store's records
};

struct MemoryPlan {
  size_t weights_lockstep = 0, weights_sequential = 0;
  size_t quantization = 0;
  size_t activations_window = 0;  // one backend over one window
  size_t activations_lockstep = 0, activations_sequential = 0;
  size_t lockstep_bytes = 0, sequential_bytes = 0;  // the sums
  size_t store_bytes = 0;         // sequential: the reference store, on disk
};

// Linears of every block quantized at bits / group_size (-1: per output channel), plus the input
// channels rtn-keep keeps in FP16 (keep_fraction of each linear's k, 2 bytes per weight).
size_t quantized_linear_bytes(const LlamaConfig& c, int bits, int group_size, double keep_fraction = 0);
size_t forward_activation_bytes(const LlamaConfig& c, int ctx);

MemoryPlan plan_eval_memory(const MemoryPlanInputs& in);

struct ModeChoice {
  EvalMode mode = EvalMode::Lockstep;
  std::string why;  // one clause, e.g. "the lockstep plan fits"
};
// The mode for `requested` given `available` bytes of memory and `disk_available` bytes where the
// store would go (`store_dir`, for the message). Throws qb::Error, one line, when the requested
// mode (auto: neither) fits.
ModeChoice choose_eval_mode(EvalMode requested, const MemoryPlan& plan, size_t available, size_t disk_available,
                            const std::string& store_dir);

// "eval: needs ~X GB: weights A (fp16 B as stored, rtn C, ...), quantization E, activations F;
// this machine has Y GB available (lockstep: why)"
std::string memory_plan_line(const MemoryPlanInputs& in, const MemoryPlan& plan, const ModeChoice& choice,
                             size_t available);
// The run document's "memory_plan" (reports/SCHEMA.md).
nlohmann::json memory_plan_json(const MemoryPlanInputs& in, const MemoryPlan& plan, EvalMode requested,
                                const ModeChoice& choice, size_t available);

}  // namespace qb
