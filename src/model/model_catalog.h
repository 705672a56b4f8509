#pragma once
// The model-shape catalog (bench/model_shapes.json): named Llama-architecture configs in Hugging
// Face config.json form, for models too large to load here. Read once, here, by the GEMM sweep
// (bench/) and the projected VRAM (eval/vram_catalog.h).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace qb {

struct CatalogModel {
  std::string name;    // "llama-2-7b"; no '/' (it leads benchmark names "<model>/<layer>/...")
  LlamaConfig config;  // the entry's "config", read by parse_hf_config
};

// The "models" of a parsed catalog document, in file order. Throws qb::Error naming `where` (and
// the model and field) for another "schema", no models, a nameless model or a bad config.
std::vector<CatalogModel> parse_catalog_models(const nlohmann::json& catalog, const std::string& where);
// read_json_file + parse_catalog_models; errors name the file.
std::vector<CatalogModel> load_catalog_models(const std::string& path);

}  // namespace qb
