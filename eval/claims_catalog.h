#pragma once
// The catalog facts `quantbench claims` judges memory and hardware-fit claims with, computed
// exactly from the catalog configs (vram_catalog's bytes as stored): reports/claims.h reads this
// JSON and never a model.
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_catalog.h"

namespace qb {

// One entry per model, in catalog order:
//   {"model", "parameters", "architecture" (run-document keys: dim, hidden_dim, n_layers, n_heads,
//    n_kv_heads, vocab_size), "weight_bytes": {"fp16", "w4 g128", "w3 g128"},
//    "kv_bytes_per_token" (FP16 K and V: 2 * n_layers * n_kv_heads * head_dim * 2)}
nlohmann::json claims_catalog(const std::vector<CatalogModel>& models);

}  // namespace qb
