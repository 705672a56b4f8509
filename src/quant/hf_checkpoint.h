#pragma once
// What the quantized HF checkpoint formats share (quant/awq_format.h, quant/gptq_format.h): a
// directory with config.json (+ quantization_config) and model.safetensors (or shards listed in
// model.safetensors.index.json), in which every block linear is stored by the format's packed
// tensors and everything else (embed_tokens, the norms, lm_head unless tied, q/k/v biases) is a
// dense FP16 tensor under its HF name.
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/safetensors.h"

namespace qb {

// dir/config.json parsed; an error naming dir when it is missing.
nlohmann::json read_checkpoint_config(const std::string& dir);

// Reads the quantized linear `base` (e.g. "model.layers.0.self_attn.q_proj") of shape [n, k],
// adding the names of the tensors it used to `used`.
using QuantizedLinearReader = std::function<std::shared_ptr<const QuantizedWeight>(
    const SafetensorsDirectory& files, const std::string& base, int n, int k, std::set<std::string>& used)>;

// The model of a checkpoint directory whose config.json is `config`: dense tensors checked by
// shape, block linears through `read_linear` (or dense `.weight` where the format kept one in
// FP16, modules_to_not_convert); any tensor nobody used is an error. rope_interleaved = false.
Model load_quantized_checkpoint(const std::string& dir, const nlohmann::json& config, const std::string& format,
                                const QuantizedLinearReader& read_linear);

// Appends the packed tensors of the quantized linear `base` (q/k rows already in HF order).
using QuantizedLinearWriter =
    std::function<void(const QuantizedWeight& w, const std::string& base, std::vector<SafetensorsBlob>& blobs)>;

struct CheckpointWrite {
  nlohmann::json quantization_config;  // config.json's quantization_config
  std::string tokenizer_path;          // copied as tokenizer.json (a .json) or tokenizer.model when non-empty
  nlohmann::json report;               // written as quantize_report.json when not null
  std::vector<std::pair<std::string, nlohmann::json>> extra_json;  // more files: {name, contents}
};

// Writes `model` (every block linear quantized, none with kept columns; format_name, e.g. "AutoAWQ",
// names the format in errors) atomically (AtomicDirectory: built beside dir, then renamed to it);
// refuses an existing dir. A model with llama2.c rotary pairs (rope_interleaved) has its q/k rows permuted to
// HF order, as llama2.c's export.py does, so HF loaders compute the same function.
void write_quantized_checkpoint(const Model& model, const std::string& dir, const std::string& format_name,
                                const QuantizedLinearWriter& write_linear, const CheckpointWrite& files);

// A blob of `v`'s bytes with this safetensors dtype and shape.
template <class T>
SafetensorsBlob raw_blob(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                         const std::vector<T>& v) {
  SafetensorsBlob b{name, dtype, std::move(shape), {}};
  b.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
  return b;
}

// The entry's elements copied out (its dtype already checked by the caller).
template <class T>
std::vector<T> copy_entry(const SafetensorsEntry& e) {
  std::vector<T> out(e.nbytes / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), e.data, e.nbytes);
  return out;
}

}  // namespace qb
