// Every seed and every crash input of the fuzz targets (tests/fuzz/README.md), fed to the same
// target function as libFuzzer feeds it: the parser refuses it with a qb::Error or reads it, and
// the seeds are read as intended (so a seed that broke cannot quietly make the fuzzing shallow).
// A crash input is checked in under tests/fuzz/regressions/<target>/ when its fix lands, so the
// test fails without the fix.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace fs = std::filesystem;

namespace {

struct Target {
  const char* name;
  void (*run)(std::string_view);
};

const Target kTargets[] = {
    {"safetensors", qb::fuzz::fuzz_safetensors},       {"safetensors_index", qb::fuzz::fuzz_safetensors_index},
    {"hf_config", qb::fuzz::fuzz_hf_config},           {"llama2c", qb::fuzz::fuzz_llama2c},
    {"awq_checkpoint", qb::fuzz::fuzz_awq_checkpoint}, {"model_catalog", qb::fuzz::fuzz_model_catalog},
    {"run_document", qb::fuzz::fuzz_run_document},     {"history", qb::fuzz::fuzz_history},
    {"hf_tokenizer", qb::fuzz::fuzz_hf_tokenizer},     {"gguf", qb::fuzz::fuzz_gguf},
    {"gptq_checkpoint", qb::fuzz::fuzz_gptq_checkpoint},
};

std::vector<fs::path> inputs_of(const std::string& folder) {
  std::vector<fs::path> out;
  if (fs::is_directory(folder))
    for (const auto& entry : fs::directory_iterator(folder))
      if (entry.is_regular_file()) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("every fuzz target has a seed corpus") {
  for (const Target& t : kTargets) {
    INFO(t.name);
    CHECK(!inputs_of(std::string(QB_FUZZ_DIR) + "/corpus/" + t.name).empty());
  }
}

TEST_CASE("seeds are read, except those named refused-*") {
  for (const Target& t : kTargets)
    for (const fs::path& input : inputs_of(std::string(QB_FUZZ_DIR) + "/corpus/" + t.name)) {
      INFO(t.name << ": " << input.string());
      const size_t refusals_before = qb::fuzz::refusal_count();
      CHECK_NOTHROW(t.run(read_bytes(input)));
      const bool refused = qb::fuzz::refusal_count() != refusals_before;
      CHECK(refused == (input.filename().string().rfind("refused-", 0) == 0));
    }
}

TEST_CASE("crash inputs are refused with qb::Error or read") {
  for (const Target& t : kTargets)
    for (const fs::path& input : inputs_of(std::string(QB_FUZZ_DIR) + "/regressions/" + t.name)) {
      INFO(t.name << ": " << input.string());
      CHECK_NOTHROW(t.run(read_bytes(input)));
    }
}
