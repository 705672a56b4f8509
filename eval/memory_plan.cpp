#include "eval/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/error.h"
#include "common/memory.h"
#include "eval/reference_store.h"
#include "model/block_linears.h"

namespace qb {

namespace {

// format_gb, or MB below 0.1 GB, so that a small model's plan does not read "0.0 GB".
std::string format_size(size_t bytes) {
  if (bytes >= 100000000) return format_gb(static_cast<double>(bytes));
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", bytes / 1e6);
  return text;
}

}  // namespace

const char* eval_mode_name(EvalMode m) {
  return m == EvalMode::Lockstep ? "lockstep" : m == EvalMode::Sequential ? "sequential" : "auto";
}

size_t quantized_linear_bytes(const LlamaConfig& c, int bits, int group_size, double keep_fraction) {
  size_t block = 0;
  for (const auto& [n, k] : linear_dims(c)) {
    block += quantized_stored_bytes(n, k, bits, group_size > 0 ? group_size : k);
    block += static_cast<size_t>(std::llround(keep_fraction * k)) * n * 2;
  }
  return block * c.n_layers;
}

size_t forward_activation_bytes(const LlamaConfig& c, int ctx) {
  const size_t kv = static_cast<size_t>(c.n_kv_heads) * c.head_dim();
  const size_t per_token = c.hidden_size + static_cast<size_t>(c.n_heads) * c.head_dim() + 2 * kv +
                           2 * static_cast<size_t>(c.intermediate_size) + c.vocab_size;
  const size_t scores = static_cast<size_t>(c.n_heads) * ctx * ctx;
  return (static_cast<size_t>(ctx) * per_token + scores) * 4;
}

MemoryPlan plan_eval_memory(const MemoryPlanInputs& in) {
  MemoryPlan p;
  size_t all = 0, largest = 0;
  for (const PlannedMethod& m : in.methods) {
    all += m.weight_bytes;
    largest = std::max(largest, m.weight_bytes);
  }
  p.weights_lockstep = in.fp16_weight_bytes + all;
  p.weights_sequential = in.fp16_weight_bytes + largest;
  p.quantization = in.quantization_bytes;
  p.activations_window = forward_activation_bytes(in.config, in.ctx);
  p.activations_lockstep = p.activations_window * (1 + in.methods.size());
  p.activations_sequential = p.activations_window + in.ctx * ReferenceStore::record_bytes(in.config.vocab_size);
  p.lockstep_bytes = p.weights_lockstep + p.quantization + p.activations_lockstep;
  p.sequential_bytes = p.weights_sequential + p.quantization + p.activations_sequential;
  p.store_bytes = in.scored_tokens * ReferenceStore::record_bytes(in.config.vocab_size);
  return p;
}

ModeChoice choose_eval_mode(EvalMode requested, const MemoryPlan& p, size_t available, size_t disk_available,
                            const std::string& store_dir) {
  const std::string have = format_size(available) + " available";
  const std::string lockstep = "lockstep needs ~" + format_size(p.lockstep_bytes);
  const std::string sequential = "sequential needs ~" + format_size(p.sequential_bytes) + " and " +
                                 format_size(p.store_bytes) + " of disk in " + store_dir;
  const bool lockstep_fits = p.lockstep_bytes <= available;
  const bool sequential_fits = p.sequential_bytes <= available && p.store_bytes <= disk_available;
  const std::string disk = p.store_bytes > disk_available ? " (" + format_size(disk_available) + " free there)" : "";
  switch (requested) {
    case EvalMode::Lockstep:
      if (!lockstep_fits)
        fail("eval --mode lockstep", lockstep + ", this machine has " + have +
                                         (sequential_fits ? "; --mode sequential fits (" + sequential + ")" : ""));
      return {EvalMode::Lockstep, "as asked"};
    case EvalMode::Sequential:
      if (!sequential_fits) fail("eval --mode sequential", sequential + disk + ", this machine has " + have);
      return {EvalMode::Sequential, "as asked"};
    case EvalMode::Auto:
      if (lockstep_fits) return {EvalMode::Lockstep, "auto: the lockstep plan fits"};
      if (sequential_fits) return {EvalMode::Sequential, "auto: " + lockstep + ", more than the " + have + "; " + sequential};
      fail("eval", "does not fit: " + lockstep + ", " + sequential + disk + ", this machine has " + have +
                       " (fewer methods, a shorter --ctx or fewer --calib-samples need less)");
  }
  fail("eval", "unknown mode");
}

std::string memory_plan_line(const MemoryPlanInputs& in, const MemoryPlan& p, const ModeChoice& choice,
                             size_t available) {
  const bool seq = choice.mode == EvalMode::Sequential;
  std::string weights = "fp16 " + format_size(in.fp16_weight_bytes) + " as stored";
  for (const PlannedMethod& m : in.methods) weights += ", " + m.label + " " + format_size(m.weight_bytes);
  if (seq) weights += "; one method at a time";
  return "eval: needs ~" + format_size(seq ? p.sequential_bytes : p.lockstep_bytes) + ": weights " +
         format_size(seq ? p.weights_sequential : p.weights_lockstep) + " (" + weights + "), quantization " +
         format_size(p.quantization) + ", activations " +
         format_size(seq ? p.activations_sequential : p.activations_lockstep) + "; this machine has " +
         format_size(available) + " available (" + eval_mode_name(choice.mode) + ": " + choice.why + ")";
}

nlohmann::json memory_plan_json(const MemoryPlanInputs& in, const MemoryPlan& p, EvalMode requested,
                                const ModeChoice& choice, size_t available) {
  nlohmann::json methods = nlohmann::json::array();
  for (const PlannedMethod& m : in.methods) methods.push_back({{"label", m.label}, {"weight_bytes", m.weight_bytes}});
  const bool seq = choice.mode == EvalMode::Sequential;
  return {{"requested", eval_mode_name(requested)},
          {"mode", eval_mode_name(choice.mode)},
          {"why", choice.why},
          {"needed_bytes", seq ? p.sequential_bytes : p.lockstep_bytes},
          {"available_bytes", available},
          {"lockstep_bytes", p.lockstep_bytes},
          {"sequential_bytes", p.sequential_bytes},
          {"fp16_weight_bytes", in.fp16_weight_bytes},
          {"methods", methods},
          {"quantization_bytes", p.quantization},
          {"activation_bytes_per_window", p.activations_window},
          {"store_bytes", p.store_bytes}};
}

}  // namespace qb
