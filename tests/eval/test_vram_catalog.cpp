// eval/vram_catalog: the catalog models' parameter counts against their published Hugging Face
// totals, stored bytes against hand-computed Llama-2-7B numbers, and the projection of a
// committed run document reproduced entry for entry.
#include <catch2/catch.hpp>

#include <string>

#include "common/files.h"
#include "eval/vram_catalog.h"
#include "random_model.h"

using namespace qb;

static std::string repo_path(const std::string& relative) {
  const std::string here = __FILE__;  // <repo>/tests/eval/test_vram_catalog.cpp
  return here.substr(0, here.rfind("/tests/")) + "/" + relative;
}

static std::vector<CatalogModel> shipped_catalog() { return load_catalog_models(repo_path("bench/model_shapes.json")); }

static const nlohmann::json& entry(const nlohmann::json& catalog, const std::string& model, const std::string& label) {
  for (const auto& e : catalog)
    if (e["model"] == model && e["label"] == label) return e;
  FAIL("no catalog entry for " << model << " / " << label);
  return catalog;
}

TEST_CASE("parameter counts match the published model sizes") {
  const auto catalog = vram_catalog(shipped_catalog(), {{"fp16", 16, 0}});
  REQUIRE(catalog.size() == 12);
  // model.num_parameters() of the HF checkpoints (untied lm_head, no rotary buffers; Qwen2.5's
  // q/k/v biases included), as their model cards and the HF hub report them.
  const std::pair<const char*, int64_t> published[] = {{"llama-2-7b", 6738415616},
                                                       {"llama-2-13b", 13015864320},
                                                       {"llama-2-70b", 68976648192},
                                                       {"llama-3-8b", 8030261248},
                                                       {"mistral-7b", 7241732096},
                                                       {"llama-3.1-8b", 8030261248},
                                                       {"llama-3.1-70b", 70553706496},
                                                       {"qwen2.5-7b", 7615616512},
                                                       {"qwen2.5-14b", 14770033664},
                                                       {"qwen2.5-32b", 32763876352},
                                                       {"qwen2.5-72b", 72706203648},
                                                       {"mistral-7b-v0.3", 7248023552}};
  for (const auto& [model, params] : published) {
    const auto& e = entry(catalog, model, "fp16");
    CHECK(e["parameters"].get<int64_t>() == params);
    CHECK(e["weight_bytes"].get<int64_t>() == 2 * params);
    CHECK(e["bits"] == 16);
    CHECK(e["group_size"].is_null());
  }
}

TEST_CASE("Llama-2-7B quantized bytes, by hand") {
  const auto catalog = vram_catalog(
      shipped_catalog(), {{"fp16", 16, 0}, {"awq w4 g128", 4, 128}, {"rtn w3 g128", 3, 128}, {"rtn w4 g-1", 4, -1}});
  REQUIRE(catalog.size() == 12 * 4);
  // Block linears: 32 layers x (4 x 4096x4096 + 3 x 11008x4096) weights; embed + lm_head
  // (2 x 32000x4096) and the 65 norms of 4096 stay FP16.
  const int64_t linear = 32 * (4 * 4096LL * 4096 + 3 * 11008LL * 4096);
  const int64_t plain = 2 * 32000LL * 4096 + 65 * 4096;
  REQUIRE(linear + plain == 6738415616);
  // w4 g128, every k a multiple of 128: codes k*n/2 + scales (k/128)*n*2 + zeros (k/128)*n/2.
  const int64_t w4g128 = linear / 2 + linear / 128 * 2 + linear / 128 / 2;
  CHECK(w4g128 == 3364487168);
  const auto& awq = entry(catalog, "llama-2-7b", "awq w4 g128");
  CHECK(awq["weight_bytes"].get<int64_t>() == w4g128 + 2 * plain);
  CHECK(awq["parameters"].get<int64_t>() == 6738415616);
  CHECK(awq["method"] == "awq w4 g128");
  // w3 g128: codes 3/8 byte each; zeros 3 bits per (group, column); every tensor's count is a
  // multiple of 8, so no padding byte.
  const int64_t w3g128 = linear * 3 / 8 + linear / 128 * 2 + linear / 128 * 3 / 8;
  CHECK(entry(catalog, "llama-2-7b", "rtn w3 g128")["weight_bytes"].get<int64_t>() == w3g128 + 2 * plain);
  // Per channel: one scale and zero per output row.
  const int64_t rows = 32 * (4 * 4096LL + 2 * 11008 + 4096);
  const int64_t w4_channel = linear / 2 + rows * 2 + rows / 2;
  CHECK(entry(catalog, "llama-2-7b", "rtn w4 g-1")["weight_bytes"].get<int64_t>() == w4_channel + 2 * plain);
  CHECK(entry(catalog, "llama-2-7b", "rtn w4 g-1")["group_size"] == -1);
}

TEST_CASE("the committed run document's vram.catalog is reproduced exactly") {
  const nlohmann::json run = read_json_file(repo_path("reports/runs/stories260k-wikitext2-cpu-2026-11-23.json"));
  const nlohmann::json& committed = run.at("vram").at("catalog");
  // The settings, in order, are those of the first model's entries.
  std::vector<VramSetting> settings;
  for (const auto& e : committed) {
    if (e["model"] != committed[0]["model"]) break;
    settings.push_back({e["label"].get<std::string>(), e["bits"].get<int>(), e["group_size"].is_null() ? 0 : e["group_size"].get<int>()});
  }
  REQUIRE(settings.size() == 5);
  // The run predates the catalog's later models: its five models are the catalog's first five.
  std::vector<CatalogModel> models = shipped_catalog();
  models.resize(5);
  const nlohmann::json projected = vram_catalog(models, settings);
  CHECK(projected.dump() == committed.dump());
  const auto& awq = entry(projected, "llama-2-7b", "awq w4 g128");
  CHECK(awq["parameters"].get<int64_t>() == 6738415616);
  CHECK(awq["weight_bytes"].get<int64_t>() == 3889307648);
  CHECK(entry(projected, "llama-2-7b", "fp16")["weight_bytes"].get<int64_t>() == 13476831232);
}

TEST_CASE("bad catalogs and settings are refused by name") {
  const auto models = shipped_catalog();
  CHECK_THROWS_WITH(vram_catalog(models, {{"", 4, 128}}), Catch::Contains("no label"));
  CHECK_THROWS_WITH(vram_catalog(models, {{"awq w9 g128", 9, 128}}), Catch::Contains("'awq w9 g128'") && Catch::Contains("bits 9"));
  CHECK_THROWS_WITH(vram_catalog(models, {{"rtn w4 g0", 4, 0}}), Catch::Contains("group size 0"));
  const std::string dir = test::temp_dir("vram-catalog");
  write_file_atomic(dir + "/bad.json",
                    R"({"schema": "quantbench.model_shapes", "models": [{"name": "x", "config": {"hidden_size": 8}}]})");
  CHECK_THROWS_WITH(load_catalog_models(dir + "/bad.json"),
                    Catch::Contains("bad.json: model 'x'") && Catch::Contains("intermediate_size"));
  write_file_atomic(dir + "/other.json", R"({"schema": "something else"})");
  CHECK_THROWS_WITH(load_catalog_models(dir + "/other.json"), Catch::Contains("other.json: not a model-shape catalog"));
}
