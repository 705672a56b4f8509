#pragma once
// Random-weight HF model directories with a real model's shapes (the catalog's, model_catalog.h)
// and any number of layers: what benchmarks and scale tests load, quantize and evaluate when the
// real weights are too large to keep here or do not matter. Nothing they measure depends on the
// values being trained ones, and nothing such a directory holds may be committed or published as
// a model: config.json says "quantbench_generated": true and GENERATED.md says why it exists.
//
// The weights are written as a stream (model/safetensors.h SafetensorsShardWriter), a few MB at a
// time, so a 70B-shaped directory needs no more memory than a 1-layer one. Every value is a pure
// function of (seed, tensor name, element index): the output is the same for any thread count.
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/safetensors.h"

namespace qb {

struct GenerateOptions {
  DType dtype = DType::F16;  // F16 or BF16
  uint64_t seed = 0;
  uint64_t shard_bytes = kDefaultShardBytes;  // HF's max_shard_size
};

// Every tensor of an HF Llama directory for `c`, in HF's order (embed_tokens; per layer
// input_layernorm, q/k/v (+ biases when attention_bias), o, post_attention_layernorm, gate, up,
// down; norm; lm_head unless tied), all in `dtype` ("F16", "BF16").
std::vector<SafetensorsTensorSpec> hf_tensor_plan(const LlamaConfig& c, const std::string& dtype);

// Writes `dir` (which must not exist; it appears whole, common/files.h AtomicDirectory):
// config.json (hf_config_json of `c`, which holds the number of layers wanted, plus
// "quantbench_generated": true), GENERATED.md and the safetensors shards. Values: linears,
// embeddings, lm_head and biases ~ N(0, 0.02) (a sum of four uniforms, scaled); norms ~ N(1, 0.05),
// except about one channel in kSalientChannelEvery of each norm, set near kSalientNormGain, so the
// linears that read the normed input have a few salient input channels, as trained LLMs do (what
// AWQ protects). No tokenizer is written.
void generate_model(const LlamaConfig& c, const std::string& dir, const GenerateOptions& options);

constexpr int kSalientChannelEvery = 128;
constexpr float kSalientNormGain = 8.0f;

// Value `index` of the tensor `name` for `seed` (what generate_model writes before the dtype
// rounding): exposed so that tests can check the files against an independent evaluation.
float generated_value(uint64_t seed, const std::string& name, int64_t index);

}  // namespace qb
