// Loaders: llama2.c .bin and HF directories give the same model; bad configs, shapes and
// truncated checkpoints are refused with one-line errors naming the file and the field.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "common/files.h"
#include "model/cpu_forward.h"
#include "model/load.h"
#include "model/safetensors.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

static std::vector<float> logits_of(const Model& m, const std::vector<int>& tokens) {
  std::vector<float> logits;
  CpuModel(m).forward(tokens.data(), 1, static_cast<int>(tokens.size()), logits);
  return logits;
}

TEST_CASE("a llama2.c checkpoint and its HF export compute the same logits") {
  const std::string dir = test::temp_dir("loaders");
  const Model m = test::random_model(test::small_config(true), 7);
  test::write_llama2c(m, dir + "/m.bin");
  test::write_hf_dir(m, dir + "/hf");
  const Model a = load_model(dir + "/m.bin");
  const Model b = load_model(dir + "/hf");
  CHECK(a.format == "llama2c");
  CHECK(b.format == "safetensors");
  CHECK(a.config.rope_interleaved);
  CHECK_FALSE(b.config.rope_interleaved);
  CHECK(a.parameter_count() == b.parameter_count());
  CHECK(a.config.n_kv_heads == 2);
  const std::vector<int> tokens{1, 5, 9, 33, 2, 95, 0, 17, 64, 3, 3, 40};
  CHECK(qb::test::max_rel_diff(logits_of(a, tokens), logits_of(b, tokens)) < 1e-5);
}

TEST_CASE("an HF model split into shards by model.safetensors.index.json loads the same weights") {
  const std::string dir = test::temp_dir("shards");
  const Model m = test::random_model(test::small_config(false), 21);
  test::write_hf_dir(m, dir);
  // Re-write the single file as two shards: the embedding alone, everything else.
  std::vector<SafetensorsBlob> first, second;
  nlohmann::json weight_map = nlohmann::json::object();
  {
    SafetensorsFile f(dir + "/model.safetensors");
    for (const auto& [name, e] : f.entries()) {
      const bool in_first = name == "model.embed_tokens.weight";
      (in_first ? first : second).push_back({name, e.dtype, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
      weight_map[name] = in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
  }
  std::remove((dir + "/model.safetensors").c_str());
  write_safetensors(dir + "/model-00001-of-00002.safetensors", first);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", second);
  write_file_atomic(dir + "/model.safetensors.index.json", nlohmann::json{{"weight_map", weight_map}}.dump());
  const Model sharded = load_model(dir);
  const std::vector<int> tokens{1, 2, 3, 50, 7};
  CHECK(qb::test::max_rel_diff(logits_of(sharded, tokens), logits_of(m, tokens)) == 0.0);

  std::remove((dir + "/model-00002-of-00002.safetensors").c_str());
  CHECK_THROWS_WITH(load_model(dir), Catch::Contains("model-00002-of-00002.safetensors: cannot open"));
}

TEST_CASE("HF loader refuses bad configs and shapes, naming file and field") {
  const std::string dir = test::temp_dir("hf-bad");
  Model m = test::random_model(test::small_config(false), 3);
  test::write_hf_dir(m, dir);
  auto config = nlohmann::json::parse(read_text_file(dir + "/config.json"));

  SECTION("shape that does not match the config") {
    config["intermediate_size"] = 48;
    write_file_atomic(dir + "/config.json", config.dump());
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("model.safetensors") &&
                                           Catch::Contains("model.layers.0.mlp.gate_proj.weight") &&
                                           Catch::Contains("[44, 32]") && Catch::Contains("[48, 32]"));
  }
  SECTION("missing config field") {
    config.erase("hidden_size");
    write_file_atomic(dir + "/config.json", config.dump());
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("config.json") && Catch::Contains("'hidden_size'"));
  }
  SECTION("malformed config.json") {
    write_file_atomic(dir + "/config.json", "{\"hidden_size\": ");
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("config.json: malformed JSON"));
  }
  SECTION("missing tensor") {
    std::vector<SafetensorsBlob> blobs;
    SafetensorsFile f(dir + "/model.safetensors");
    for (const auto& [name, e] : f.entries())
      if (name != "model.norm.weight")
        blobs.push_back({name, e.dtype, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
    write_safetensors(dir + "/model.safetensors", blobs);
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("missing tensor 'model.norm.weight'"));
  }
  SECTION("I32 where a weight belongs") {
    std::vector<SafetensorsBlob> blobs;
    SafetensorsFile f(dir + "/model.safetensors");
    for (const auto& [name, e] : f.entries())
      blobs.push_back({name, name == "model.norm.weight" ? "I32" : e.dtype, e.shape,
                       std::vector<uint8_t>(e.data, e.data + e.nbytes)});
    write_safetensors(dir + "/model.safetensors", blobs);
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("'model.norm.weight' has dtype I32"));
  }
  SECTION("no weights file") {
    std::remove((dir + "/model.safetensors").c_str());
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("no model.safetensors"));
  }
}

TEST_CASE("llama2.c loader refuses truncated files and bad headers") {
  const std::string dir = test::temp_dir("l2c-bad");
  const Model m = test::random_model(test::small_config(true), 5);
  test::write_llama2c(m, dir + "/m.bin");
  const std::string full = read_text_file(dir + "/m.bin");
  write_file_atomic(dir + "/short.bin", full.substr(0, full.size() - 4));
  CHECK_THROWS_WITH(load_model(dir + "/short.bin"), Catch::Contains("short.bin") && Catch::Contains("needs"));
  write_file_atomic(dir + "/tiny.bin", full.substr(0, 10));
  CHECK_THROWS_WITH(load_model(dir + "/tiny.bin"), Catch::Contains("tiny.bin: truncated"));
  std::string bad = full;
  const int32_t heads = 5;  // dim 32 is not a multiple of 5
  std::memcpy(&bad[12], &heads, 4);
  write_file_atomic(dir + "/heads.bin", bad);
  CHECK_THROWS_WITH(load_model(dir + "/heads.bin"), Catch::Contains("heads.bin: header") && Catch::Contains("n_heads"));
  CHECK_THROWS_WITH(load_model(dir + "/none.bin"), Catch::Contains("none.bin: no such file"));
}

TEST_CASE("non-finite weights are refused naming the tensor") {
  Model m = test::random_model(test::small_config(true), 9);
  std::vector<float> v = m.layers[1].up_proj.dense.to_float();
  v[17] = std::numeric_limits<float>::quiet_NaN();
  m.layers[1].up_proj.dense = Tensor::from_float("model.layers.1.mlp.up_proj.weight", {44, 32}, v, DType::F32);
  CHECK_THROWS_WITH(check_finite(m), Catch::Contains("model.layers.1.mlp.up_proj.weight") && Catch::Contains("element 17"));
}
