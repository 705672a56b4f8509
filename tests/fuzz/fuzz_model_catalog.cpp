// The model-shape catalog (bench/model_shapes.json) as parse_catalog_models reads it.
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "model/model_catalog.h"

namespace qb::fuzz {

void fuzz_model_catalog(std::string_view input) {
  // read_json_file turns a JSON syntax error into a qb::Error; this is the same refusal.
  const nlohmann::json j = nlohmann::json::parse(input.begin(), input.end(), nullptr, false);
  if (j.is_discarded()) return;
  refusal_or_success([&] { (void)parse_catalog_models(j, "model_shapes.json"); });
}

}  // namespace qb::fuzz
