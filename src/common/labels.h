#pragma once
// How a quantization setting and an evaluated method are named in logs, run documents, tables and
// charts: one formatter, so "awq w4 g128" means the same everywhere.
#include <cstdio>
#include <string>

namespace qb {

// "w4 g128"; group_size -1 (one group per output channel) is "w4 g-1", as HF configs write it.
inline std::string quant_setting_label(int bits, int group_size) {
  return "w" + std::to_string(bits) + " g" + std::to_string(group_size);
}

// "act 1%": the input channels rtn-keep keeps in FP16, chosen by `by`, as a percentage of each
// linear's (fraction 0.005 -> "0.5%").
inline std::string keep_label(const std::string& by, double fraction) {
  char percent[32];
  std::snprintf(percent, sizeof(percent), "%g%%", fraction * 100);
  return by + " " + percent;
}

// "fp16" for the unquantized reference, else "<family> [<variant> ]w<bits> g<group>" (e.g.
// "awq w4 g128", "rtn-keep act 1% w4 g128" with variant keep_label(...)).
inline std::string method_label(const std::string& family, int bits, int group_size, const std::string& variant = "") {
  if (family == "fp16") return family;
  return family + " " + (variant.empty() ? "" : variant + " ") + quant_setting_label(bits, group_size);
}

}  // namespace qb
