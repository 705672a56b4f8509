#include "model/block_linears.h"

namespace qb {

const std::array<BlockLinear, kNumLinears> kBlockLinears = {{
    {"self_attn.q_proj", "attn_q", &LayerWeights::q_proj, &CpuLayer::wq, &CpuLayer::bq, &CpuLayer::act_q},
    {"self_attn.k_proj", "attn_k", &LayerWeights::k_proj, &CpuLayer::wk, &CpuLayer::bk, &CpuLayer::act_k},
    {"self_attn.v_proj", "attn_v", &LayerWeights::v_proj, &CpuLayer::wv, &CpuLayer::bv, &CpuLayer::act_v},
    {"self_attn.o_proj", "attn_output", &LayerWeights::o_proj, &CpuLayer::wo, nullptr, &CpuLayer::act_o},
    {"mlp.gate_proj", "ffn_gate", &LayerWeights::gate_proj, &CpuLayer::w_gate, nullptr, &CpuLayer::act_gate},
    {"mlp.up_proj", "ffn_up", &LayerWeights::up_proj, &CpuLayer::w_up, nullptr, &CpuLayer::act_up},
    {"mlp.down_proj", "ffn_down", &LayerWeights::down_proj, &CpuLayer::w_down, nullptr, &CpuLayer::act_down},
}};

std::string linear_hf_name(int layer, int index) {
  return "model.layers." + std::to_string(layer) + "." + kBlockLinears[index].hf_name;
}

std::array<std::pair<int, int>, kNumLinears> linear_dims(const LlamaConfig& c) {
  const int q = c.n_heads * c.head_dim(), kv = c.n_kv_heads * c.head_dim();
  const int hidden = c.hidden_size, inner = c.intermediate_size;
  return {{{q, hidden}, {kv, hidden}, {kv, hidden}, {hidden, q}, {inner, hidden}, {inner, hidden}, {hidden, inner}}};
}

// Pointers to the seven members `member` of kBlockLinears names in `layer`, const when layer is.
template <typename Layer, typename Member>
static auto members(Layer& layer, Member BlockLinear::*member) {
  std::array<decltype(&(layer.*(kBlockLinears[0].*member))), kNumLinears> out{};
  for (int t = 0; t < kNumLinears; ++t) out[t] = &(layer.*(kBlockLinears[t].*member));
  return out;
}

std::array<Linear*, kNumLinears> block_linears(LayerWeights& l) { return members(l, &BlockLinear::weights); }
std::array<const Linear*, kNumLinears> block_linears(const LayerWeights& l) { return members(l, &BlockLinear::weights); }
std::array<std::vector<float>*, kNumLinears> block_linears(CpuLayer& l) { return members(l, &BlockLinear::widened); }
std::array<const std::vector<float>*, kNumLinears> block_linears(const CpuLayer& l) {
  return members(l, &BlockLinear::widened);
}

std::array<const std::vector<float>*, kNumLinears> linear_inputs(const BlockInputs& inputs) {
  return {&inputs.attn_in, &inputs.attn_in, &inputs.attn_in, &inputs.o_in,
          &inputs.mlp_in,  &inputs.mlp_in,  &inputs.down_in};
}

}  // namespace qb
