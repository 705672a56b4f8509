#include "model/model_catalog.h"

#include "common/error.h"
#include "common/files.h"
#include "model/load.h"

namespace qb {

std::vector<CatalogModel> parse_catalog_models(const nlohmann::json& catalog, const std::string& where) {
  if (!catalog.is_object() || catalog.value("schema", nlohmann::json()) != "quantbench.model_shapes")
    fail(where, "not a model-shape catalog (schema must be \"quantbench.model_shapes\")");
  if (!catalog.contains("models") || !catalog["models"].is_array() || catalog["models"].empty())
    fail(where, "'models' must be a non-empty array");
  std::vector<CatalogModel> models;
  for (const auto& entry : catalog["models"]) {
    CatalogModel model;
    if (entry.is_object() && entry.contains("name") && entry["name"].is_string()) model.name = entry["name"];
    if (model.name.empty() || model.name.find('/') != std::string::npos)
      fail(where, "a model has no name or a '/' in it");
    const std::string at = where + ": model '" + model.name + "'";
    if (!entry.contains("config") || !entry["config"].is_object()) fail(at, "'config' missing");
    model.config = parse_hf_config(entry["config"], at + ": config");
    models.push_back(std::move(model));
  }
  return models;
}

std::vector<CatalogModel> load_catalog_models(const std::string& path) {
  return parse_catalog_models(read_json_file(path), path);
}

}  // namespace qb
