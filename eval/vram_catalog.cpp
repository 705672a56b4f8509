#include "eval/vram_catalog.h"

#include <cstdint>

#include "common/error.h"
#include "common/files.h"
#include "model/model.h"

namespace qb {
namespace {

// The shapes of one catalog model, from its "config" object.
struct CatalogConfig {
  int64_t hidden, intermediate, heads, kv_heads, head_dim, vocab, layers;
  bool tied_embeddings;  // optional field, false when absent (none of the catalog models ties)
};

CatalogConfig read_config(const nlohmann::json& model, const std::string& where) {
  const auto& c = model.at("config");
  auto field = [&](const char* name) {
    if (!c.contains(name) || !c[name].is_number_integer() || c[name].get<int64_t>() < 1)
      fail(where, "config." + std::string(name) + " is missing or not a positive integer");
    return c[name].get<int64_t>();
  };
  return {field("hidden"),   field("intermediate"), field("heads"),  field("kv_heads"),
          field("head_dim"), field("vocab"),        field("layers"), c.value("tied_embeddings", false)};
}

void check_method(const CatalogMethod& m) {
  const std::string where = "vram catalog method '" + m.name + "'";
  if (m.name == "fp16") {
    if (m.bits != 16) fail(where, "fp16 has 16 bits, got " + std::to_string(m.bits));
    return;
  }
  if (m.name != "rtn" && m.name != "awq") fail(where, "not fp16, rtn or awq");
  if (m.bits < 2 || m.bits > 8) fail(where, "bits " + std::to_string(m.bits) + " outside 2..8");
  if (m.group_size == 0 || m.group_size < -1)
    fail(where, "group size " + std::to_string(m.group_size) + " is not > 0 or -1 (per channel)");
}

std::string label(const CatalogMethod& m) {
  if (m.name == "fp16") return "fp16";
  return m.name + " w" + std::to_string(m.bits) + " g" + std::to_string(m.group_size);
}

// Parameters and stored bytes of one model under one method.
struct Footprint {
  int64_t parameters = 0;
  size_t bytes = 0;
};

Footprint footprint(const CatalogConfig& c, const CatalogMethod& m) {
  Footprint f;
  auto plain = [&](int64_t count) {  // embeddings, norms, lm_head: FP16 under every method
    f.parameters += count;
    f.bytes += static_cast<size_t>(count) * 2;
  };
  auto linear = [&](int64_t out_features, int64_t in_features) {  // W [out, in]
    f.parameters += out_features * in_features;
    if (m.name == "fp16") {
      f.bytes += static_cast<size_t>(out_features * in_features) * 2;
      return;
    }
    // Only the counts matter to stored_bytes; the code/scale vectors stay empty.
    QuantizedWeight shape;
    shape.n = static_cast<int>(out_features);
    shape.k = static_cast<int>(in_features);
    shape.bits = m.bits;
    shape.group_size = m.group_size > 0 ? m.group_size : shape.k;
    f.bytes += shape.stored_bytes();
  };
  const int64_t q_out = c.heads * c.head_dim, kv_out = c.kv_heads * c.head_dim;
  plain(c.vocab * c.hidden);  // embed_tokens
  for (int64_t l = 0; l < c.layers; ++l) {
    plain(c.hidden);  // input_layernorm
    linear(q_out, c.hidden);
    linear(kv_out, c.hidden);  // k_proj
    linear(kv_out, c.hidden);  // v_proj
    linear(c.hidden, q_out);   // o_proj
    plain(c.hidden);           // post_attention_layernorm
    linear(c.intermediate, c.hidden);  // gate_proj
    linear(c.intermediate, c.hidden);  // up_proj
    linear(c.hidden, c.intermediate);  // down_proj
  }
  plain(c.hidden);  // final norm
  if (!c.tied_embeddings) plain(c.vocab * c.hidden);  // lm_head
  return f;
}

}  // namespace

nlohmann::json vram_catalog(const std::string& catalog_path, const std::vector<CatalogMethod>& methods) {
  for (const auto& m : methods) check_method(m);
  const nlohmann::json catalog = read_json_file(catalog_path);
  if (catalog.value("schema", "") != "quantbench.model_shapes" || !catalog.contains("models") ||
      !catalog["models"].is_array())
    fail(catalog_path, "not a model-shape catalog (schema \"quantbench.model_shapes\" with a \"models\" array)");
  nlohmann::json out = nlohmann::json::array();
  for (const auto& model : catalog["models"]) {
    if (!model.contains("name") || !model["name"].is_string() || !model.contains("config"))
      fail(catalog_path, "a model entry lacks \"name\" or \"config\"");
    const std::string name = model["name"];
    const CatalogConfig config = read_config(model, catalog_path + ": model '" + name + "'");
    for (const auto& m : methods) {
      const Footprint f = footprint(config, m);
      out.push_back({{"model", name},
                     {"method", m.name},
                     {"label", label(m)},
                     {"bits", m.bits},
                     {"group_size", m.name == "fp16" ? nlohmann::json(nullptr) : nlohmann::json(m.group_size)},
                     {"parameters", f.parameters},
                     {"weight_bytes", f.bytes}});
    }
  }
  return out;
}

}  // namespace qb
