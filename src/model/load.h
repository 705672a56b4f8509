#pragma once
// Loading models from disk into the one in-memory Model (model/model.h).
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace qb {

// A llama2.c checkpoint (.bin: 7 int32 header dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: unshared classifier), seq_len; then float32 weights in run.c's order).
Model load_llama2c(const std::string& path);

// An HF-style directory: config.json + model.safetensors (or shards listed in
// model.safetensors.index.json). Dense F32/F16/BF16 weights, kept in their dtype and mapped.
Model load_hf_directory(const std::string& dir);

// Any of the above, by what `path` is: directory -> HF; a file named *.gguf or starting with the
// GGUF magic -> load_gguf_model (model/gguf.h); another file -> llama2.c.
Model load_model(const std::string& path);

// config.json <-> LlamaConfig (HF LlamaForCausalLM field names); errors name `where` and the field.
LlamaConfig parse_hf_config(const nlohmann::json& j, const std::string& where);
nlohmann::json hf_config_json(const LlamaConfig& c);
// HF's rope_scaling object for a llama3-scaled config; null for plain RoPE.
nlohmann::json rope_scaling_json(const LlamaConfig& c);

// Every tensor of a dense model by its HF name, in storage order (embed, layers, norm, lm_head);
// lm_head is omitted when tied. Used by writers (quantized checkpoints keep these as they are).
std::vector<const Tensor*> named_dense_tensors(const Model& m);

}  // namespace qb
