#pragma once
// Small Llama models with random weights, built in memory or written to disk in both source
// formats, so loader and forward tests run without the shared data.
#include <string>

#include "model/model.h"

namespace qb::test {

// F32 weights ~ N(0, 0.02^2)·scale-ish, norms near 1; deterministic in `seed`. q/k/v biases
// ~ N(0, 0.5^2) when c.attention_bias; lm_head shares embed_tokens when c.tie_word_embeddings.
Model random_model(const LlamaConfig& c, unsigned seed);
// A config with GQA, an odd intermediate_size, and untied head: hidden_size 32, intermediate_size 44,
// 2 layers, 4 heads, 2 kv heads.
LlamaConfig small_config(bool rope_interleaved);

// c with Llama 3's RoPE: theta 500000 and rope_scaling "llama3" (low_freq_factor 1,
// high_freq_factor 4) with this factor and original context.
LlamaConfig with_llama3_rope(LlamaConfig c, float factor, int original_max_position_embeddings);

// llama2.c .bin (needs rope_interleaved; writes the legacy freq_cis block too).
void write_llama2c(const Model& m, const std::string& path);
// HF directory (config.json + model.safetensors, F32). A model with interleaved RoPE has its q/k
// rows permuted to HF's half-split order (HF's convert_llama_weights_to_hf permute).
void write_hf_dir(const Model& m, const std::string& dir);

// A fresh empty temporary directory.
std::string temp_dir(const std::string& tag);

}  // namespace qb::test
