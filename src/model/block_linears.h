#pragma once
// The seven linear layers of a Llama block, listed once: their order (LinearIndex), HF module
// names, shapes, and where each lives in LayerWeights and in the widened CpuLayer. Everything that
// walks a block's linears (loaders, writers, quantizers, backends) goes through this list.
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "model/cpu_forward.h"
#include "model/model.h"

namespace qb {

enum LinearIndex { kQ, kK, kV, kO, kGate, kUp, kDown, kNumLinears };

struct BlockLinear {
  const char* hf_name;                    // within a layer, e.g. "self_attn.q_proj"
  const char* gguf_name;                  // llama.cpp's, within a layer: "blk.<layer>.<gguf_name>.weight"
  Linear LayerWeights::*weights;          // e.g. &LayerWeights::q_proj
  std::vector<float> CpuLayer::*widened;  // e.g. &CpuLayer::wq
  std::vector<float> CpuLayer::*widened_bias;  // &CpuLayer::bq for q/k/v; null where no bias is carried
  ActivationFormat CpuLayer::*activation;      // e.g. &CpuLayer::act_q: how its input is rounded first
};

// Indexed by LinearIndex.
extern const std::array<BlockLinear, kNumLinears> kBlockLinears;

// "model.layers.<layer>.<kBlockLinears[index].hf_name>"
std::string linear_hf_name(int layer, int index);
// {out_features, in_features} of each linear.
std::array<std::pair<int, int>, kNumLinears> linear_dims(const LlamaConfig& c);

std::array<Linear*, kNumLinears> block_linears(LayerWeights& layer);
std::array<const Linear*, kNumLinears> block_linears(const LayerWeights& layer);
std::array<std::vector<float>*, kNumLinears> block_linears(CpuLayer& layer);
std::array<const std::vector<float>*, kNumLinears> block_linears(const CpuLayer& layer);
// The captured input each linear sees [rows, in_features]: q/k/v attn_in, o o_in, gate/up mlp_in, down down_in.
std::array<const std::vector<float>*, kNumLinears> linear_inputs(const BlockInputs& inputs);

}  // namespace qb
