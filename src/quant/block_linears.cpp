#include "quant/block_linears.h"

namespace qb {

const std::array<const char*, kNumLinears> kLinearHfNames = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                              "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                                              "mlp.down_proj"};

std::string linear_hf_name(int layer, int index) {
  return "model.layers." + std::to_string(layer) + "." + kLinearHfNames[index];
}

std::array<std::pair<int, int>, kNumLinears> linear_dims(const LlamaConfig& c) {
  const int q = c.n_heads * c.head_dim(), kv = c.n_kv_heads * c.head_dim();
  return {{{q, c.dim}, {kv, c.dim}, {kv, c.dim}, {c.dim, q}, {c.hidden_dim, c.dim}, {c.hidden_dim, c.dim},
           {c.dim, c.hidden_dim}}};
}

std::array<Linear*, kNumLinears> block_linears(LayerWeights& l) {
  return {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj};
}
std::array<const Linear*, kNumLinears> block_linears(const LayerWeights& l) {
  return {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj};
}
std::array<std::vector<float>*, kNumLinears> block_linears(CpuLayer& l) {
  return {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down};
}
std::array<const std::vector<float>*, kNumLinears> block_linears(const CpuLayer& l) {
  return {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down};
}

}  // namespace qb
