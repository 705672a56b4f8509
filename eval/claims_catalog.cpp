#include "eval/claims_catalog.h"

#include <cstdint>

#include "eval/vram_catalog.h"

namespace qb {

nlohmann::json claims_catalog(const std::vector<CatalogModel>& models) {
  const std::vector<VramSetting> settings = {{"fp16", 16, 0}, {"w4 g128", 4, 128}, {"w3 g128", 3, 128}};
  const nlohmann::json bytes = vram_catalog(models, settings);
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < models.size(); ++i) {
    const LlamaConfig& c = models[i].config;
    nlohmann::json entry = {{"model", models[i].name},
                            {"parameters", bytes[i * settings.size()]["parameters"]},
                            {"architecture",
                             {{"dim", c.hidden_size},
                              {"hidden_dim", c.intermediate_size},
                              {"n_layers", c.n_layers},
                              {"n_heads", c.n_heads},
                              {"n_kv_heads", c.n_kv_heads},
                              {"vocab_size", c.vocab_size}}},
                            {"kv_bytes_per_token", int64_t(2) * c.n_layers * c.n_kv_heads * c.head_dim() * 2}};
    for (size_t s = 0; s < settings.size(); ++s)
      entry["weight_bytes"][settings[s].label] = bytes[i * settings.size() + s]["weight_bytes"];
    out.push_back(entry);
  }
  return out;
}

}  // namespace qb
