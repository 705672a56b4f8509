#pragma once
// How a quantization setting and an evaluated method are named in logs, run documents, tables and
// charts: one formatter, so "awq w4 g128" means the same everywhere.
#include <string>

namespace qb {

// "w4 g128"; group_size -1 (one group per output channel) is "w4 g-1", as HF configs write it.
inline std::string quant_setting_label(int bits, int group_size) {
  return "w" + std::to_string(bits) + " g" + std::to_string(group_size);
}

// "fp16" for the unquantized reference, else "<family> w<bits> g<group>" (e.g. "awq w4 g128").
inline std::string method_label(const std::string& family, int bits, int group_size) {
  return family == "fp16" ? family : family + " " + quant_setting_label(bits, group_size);
}

}  // namespace qb
