#pragma once
// The seven linear layers of a Llama block, enumerated once for the quantizers and the checkpoint
// format: index, HF name and shape.
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "model/cpu_forward.h"
#include "model/model.h"

namespace qb {

enum LinearIndex { kQ, kK, kV, kO, kGate, kUp, kDown, kNumLinears };

// "self_attn.q_proj", "self_attn.k_proj", ..., "mlp.down_proj"
extern const std::array<const char*, kNumLinears> kLinearHfNames;
// "model.layers.<layer>.<kLinearHfNames[index]>"
std::string linear_hf_name(int layer, int index);
// {out_features, in_features} of each linear.
std::array<std::pair<int, int>, kNumLinears> linear_dims(const LlamaConfig& c);

std::array<Linear*, kNumLinears> block_linears(LayerWeights& layer);
std::array<const Linear*, kNumLinears> block_linears(const LayerWeights& layer);
std::array<std::vector<float>*, kNumLinears> block_linears(CpuLayer& layer);
std::array<const std::vector<float>*, kNumLinears> block_linears(const CpuLayer& layer);

}  // namespace qb
