#include "eval/run_document.h"

#include <cmath>

#include "common/error.h"
#include "common/json_fields.h"
#include "common/run_document.h"
#include "model/load.h"

namespace qb {
namespace {

// {"F16": bytes, "Q4": bytes, ...}: weight bytes as stored, by dtype.
nlohmann::json bytes_by_dtype_json(const std::vector<std::pair<std::string, size_t>>& by_dtype) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, bytes] : by_dtype) out[name] = bytes;
  return out;
}

size_t total_bytes(const std::vector<std::pair<std::string, size_t>>& by_dtype) {
  size_t total = 0;
  for (const auto& [name, bytes] : by_dtype) total += bytes;
  return total;
}

nlohmann::json model_json(const Model& m) {
  const LlamaConfig& c = m.config;
  nlohmann::json architecture = {
      {"dim", c.hidden_size}, {"hidden_dim", c.intermediate_size}, {"n_layers", c.n_layers},
      {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
      {"max_seq_len", c.max_seq_len}, {"rope_theta", c.rope_theta}, {"norm_eps", c.rms_norm_eps},
      {"tied_embeddings", c.tie_word_embeddings}};
  // Only where a model has them, so that Llama 1/2 documents stay as they were.
  if (c.rope_llama3) architecture["rope_scaling"] = rope_scaling_json(c);
  if (c.attention_bias) architecture["attention_bias"] = true;
  if (c.sliding_window > 0) architecture["sliding_window"] = c.sliding_window;
  return {{"path", m.path},
          {"format", m.format},
          {"architecture", architecture},
          {"parameters", m.parameter_count()},
          {"weight_bytes_by_dtype", bytes_by_dtype_json(m.weight_bytes_by_dtype())}};
}

nlohmann::json accumulator_json(const MeanAccumulator& a) {
  return {{"n", a.n}, {"sum", fixed_to_decimal(a.sum_fixed)}, {"sum_sq", fixed_to_decimal(a.sum_sq_fixed)}};
}

// obj[key], which must be an object or array as `kind` says; `field` is obj's path for errors.
const nlohmann::json& json_member(const nlohmann::json& obj, const std::string& where, const std::string& field,
                                  const std::string& key, nlohmann::json::value_t kind) {
  if (!obj.is_object() || !obj.contains(key)) fail(where, field + ": missing field '" + key + "'");
  const nlohmann::json& v = obj[key];
  if (v.type() != kind)
    fail(where, field + "." + key + ": expected " + (kind == nlohmann::json::value_t::array ? "an array" : "an object") +
                    ", got " + json_describe(v));
  return v;
}

MeanAccumulator accumulator_from_json(const nlohmann::json& j, const std::string& where, const std::string& field) {
  MeanAccumulator a;
  a.n = json_field<uint64_t>(j, where, "n");
  a.sum_fixed = fixed_from_decimal(json_field<std::string>(j, where, "sum"), where + ": " + field + ".sum");
  a.sum_sq_fixed = fixed_from_decimal(json_field<std::string>(j, where, "sum_sq"), where + ": " + field + ".sum_sq");
  return a;
}

// parameters: the model's trainable parameters, for the bits each weight costs as stored.
nlohmann::json method_json(const EvaluatedMethod& m, const EvaluatedMethod& reference, size_t windows,
                           int64_t parameters, bool sharded) {
  const size_t bytes = total_bytes(m.bytes_by_dtype), ref_bytes = total_bytes(reference.bytes_by_dtype);
  nlohmann::json entry = {
      {"method", m.family},
      {"label", m.label},
      {"quantization", m.quantization},
      {"quality", quality_json(m.sums, reference.sums, &m == &reference, windows)},
      {"size",
       {{"weight_bytes", bytes},
        {"saving_vs_fp16", double(ref_bytes) / bytes},
        {"bits_per_weight", 8.0 * double(bytes) / double(parameters)},
        {"bytes_by_dtype", bytes_by_dtype_json(m.bytes_by_dtype)}}},
      {"speed", speed_json(m.sums, device_name(m.device))}};
  if (!m.layers.is_null()) entry["layers"] = m.layers;
  if (sharded) entry["shard_sums"] = sums_json(m.sums);
  return entry;
}

// Measured device memory per method (GPU backends only) and the catalog projection.
nlohmann::json vram_json(const EvalResults& r) {
  nlohmann::json vram = nlohmann::json::object();
  nlohmann::json per_method = nlohmann::json::array();
  for (const EvaluatedMethod& m : r.methods) {
    if (m.memory.is_null()) continue;
    if (!vram.contains("device_bytes_free_before")) vram["device_bytes_free_before"] = m.memory["device_bytes_free_before"];
    nlohmann::json entry = m.memory;
    entry["method"] = m.label;
    per_method.push_back(entry);
  }
  if (!per_method.empty()) vram["per_method"] = per_method;
  vram["catalog"] = r.vram_catalog;
  return vram;
}

// How the CPU computed: float32, or llama.cpp's arithmetic (model/cpu_forward.h).
nlohmann::json arithmetic_json(Activations a) {
  return {{"activations", activations_name(a)},
          {"description",
           a == Activations::Exact
               ? "float32 throughout, weights dequantized"
               : "llama.cpp's CPU arithmetic (ggml b4747): each linear's input rounded to its weight type's "
                 "vec_dot_type (F16 for F16, Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for k-quants; F32 "
                 "weights and quantbench's own quantized weights take float32); K, V, Q and the attention "
                 "probabilities rounded to F16 (its F16 KV cache)"}};
}

}  // namespace

nlohmann::json quality_json(const LockstepSums& s, const LockstepSums& reference, bool is_ref, size_t windows) {
  const double ppl = std::exp(s.nll.mean()), ref_ppl = std::exp(reference.nll.mean());
  // Against the reference only: null for the reference itself.
  auto versus = [is_ref](double v) { return is_ref ? nlohmann::json(nullptr) : nlohmann::json(v); };
  std::vector<double> kl_values = s.kl_values;  // percentile reorders
  return {{"ppl", ppl},
          {"ppl_stderr", ppl * s.nll.stderr_of_mean()},  // delta method: d exp(m) = exp(m) dm
          {"mean_nll", s.nll.mean()},
          {"nll_stderr", s.nll.stderr_of_mean()},
          {"tokens_scored", s.nll.n},
          {"windows", windows},
          {"delta_ppl_pct", versus(100.0 * (ppl / ref_ppl - 1.0))},
          {"kl_mean", versus(s.kl.mean())},
          {"kl_stderr", versus(s.kl.stderr_of_mean())},
          {"kl_p99", versus(is_ref ? 0.0 : percentile(kl_values, 0.99))},
          {"top1_agreement", versus(is_ref ? 0.0 : double(s.top1_same) / s.kl.n)}};
}

nlohmann::json speed_json(const LockstepSums& s, const std::string& device) {
  return {{"device", device}, {"tokens_per_s", s.tokens_run / s.seconds}, {"seconds", s.seconds}};
}

nlohmann::json sums_json(const LockstepSums& s) {
  return {{"nll", accumulator_json(s.nll)},
          {"kl", accumulator_json(s.kl)},
          {"kl_values", s.kl_values},  // doubles: nlohmann writes the shortest text that reads back the same
          {"top1_same", s.top1_same},
          {"tokens_run", s.tokens_run},
          {"seconds", s.seconds}};
}

LockstepSums sums_from_json(const nlohmann::json& j, const std::string& where, const std::string& field) {
  using Kind = nlohmann::json::value_t;
  LockstepSums s;
  s.nll = accumulator_from_json(json_member(j, where, field, "nll", Kind::object), where, field + ".nll");
  s.kl = accumulator_from_json(json_member(j, where, field, "kl", Kind::object), where, field + ".kl");
  const nlohmann::json& kl_values = json_member(j, where, field, "kl_values", Kind::array);
  for (const nlohmann::json& v : kl_values) s.kl_values.push_back(json_as<double>(v, where, field + ".kl_values[]"));
  if (s.kl_values.size() != s.kl.n)
    fail(where, field + ": kl_values holds " + std::to_string(s.kl_values.size()) + " values for kl.n " +
                    std::to_string(s.kl.n));
  s.top1_same = json_field<uint64_t>(j, where, "top1_same");
  s.tokens_run = json_field<uint64_t>(j, where, "tokens_run");
  s.seconds = json_field<double>(j, where, "seconds");
  return s;
}

nlohmann::json eval_run_document(const EvalResults& r) {
  if (!r.model || !r.dataset || r.methods.empty()) fail("eval run document", "needs the model, the dataset and methods");
  const EvaluatedMethod& reference = r.methods.front();
  nlohmann::json methods = nlohmann::json::array();
  const bool sharded = r.shard.spec.count > 1;
  for (const EvaluatedMethod& m : r.methods)
    methods.push_back(method_json(m, reference, r.windows, r.model->parameter_count(), sharded));
  const nlohmann::json protocol = protocol_json(r.protocol, r.tokenizer_bos_id);
  nlohmann::json doc = {{"schema", kRunSchemaName},
                        {"schema_version", kRunSchemaVersion},
                        {"kind", "eval"},
                        {"created", r.created},
                        {"tool", r.tool},
                        {"host", r.host},
                        {"device", r.device},
                        {"model", model_json(*r.model)},
                        {"tokenizer",
                         {{"path", r.tokenizer_path},
                          {"vocab_size", r.tokenizer_vocab_size},
                          {"bos", protocol["bos"]},
                          {"kind", r.tokenizer_kind}}},
                        {"dataset", dataset_json(*r.dataset, r.dataset_tokens)},
                        {"protocol", protocol},
                        {"arithmetic", arithmetic_json(r.activations)},
                        {"methods", methods},
                        {"vram", vram_json(r)}};
  if (sharded)
    doc["shard"] = {{"index", r.shard.spec.index},
                    {"count", r.shard.spec.count},
                    {"windows", {r.shard.begin, r.shard.end}},
                    {"total_windows", r.shard.total}};
  return doc;
}

}  // namespace qb
