// An HF config.json as parse_hf_config reads it (model/load.h), and the config written back.
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "model/load.h"

namespace qb::fuzz {

void fuzz_hf_config(std::string_view input) {
  // read_json_file turns a JSON syntax error into a qb::Error; this is the same refusal.
  const nlohmann::json j = nlohmann::json::parse(input.begin(), input.end(), nullptr, false);
  if (j.is_discarded()) return;
  refusal_or_success([&] { (void)hf_config_json(parse_hf_config(j, "config.json")).dump(); });
}

}  // namespace qb::fuzz
