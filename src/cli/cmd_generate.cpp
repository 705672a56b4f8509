// quantbench generate: a random-weight HF directory with a catalog model's shapes and any number of
// layers (model/generate_model.h), for benchmarks and tests at 7B..70B scale. Never a model to
// publish: its config.json says "quantbench_generated": true.
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "common/memory.h"
#include "model/generate_model.h"
#include "model/model_catalog.h"

namespace qb::cli {
namespace {

struct GenerateArgs {
  std::string shape, out, shard_size = "5GB";
  std::string catalog = std::string(QB_SOURCE_DIR) + "/bench/model_shapes.json";
  int layers = 0;
  GenerateOptions options;
};

int run_generate(const GenerateArgs& a) {
  LlamaConfig config;
  std::string names;
  bool found = false;
  for (const CatalogModel& m : load_catalog_models(a.catalog)) {
    names += (names.empty() ? "" : ", ") + m.name;
    if (m.name == a.shape) {
      config = m.config;
      found = true;
    }
  }
  if (!found) throw UsageError("--shape", "'" + a.shape + "' is not in " + a.catalog + " (" + names + ")");
  if (a.layers > 0) config.n_layers = a.layers;
  GenerateOptions options = a.options;
  options.shard_bytes = shard_size_flag(a.shard_size);
  const auto start = std::chrono::steady_clock::now();
  generate_model(config, a.out, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t bytes = 0;
  for (const SafetensorsTensorSpec& t : hf_tensor_plan(config, dtype_name(options.dtype))) bytes += t.nbytes();
  std::printf("generate %s: %d layers, %s of random %s weights in %s; %.1f s, peak RSS %.0f MB\n", a.shape.c_str(),
              config.n_layers, format_gb(static_cast<double>(bytes)).c_str(), dtype_name(options.dtype), a.out.c_str(),
              seconds, static_cast<double>(peak_rss_bytes()) / 1e6);
  return 0;
}

CommandRegistration reg{
    "generate",
    "Write a random-weight HF model directory (config.json + safetensors shards) with a catalog model's shapes and\n"
    "any number of layers, streaming (memory stays small at any size): for benchmarks and scale tests, never to\n"
    "publish (config.json says \"quantbench_generated\": true). No tokenizer is written: pass the real model's.\n"
    "Example: quantbench generate --shape llama-2-7b --layers 2 --out /tmp/llama-2-7b-l2",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<GenerateArgs>();
      app.add_option("--shape", a->shape, "Model name in the catalog (llama-2-7b, llama-2-13b, llama-2-70b, llama-3-8b, ...)")
          ->required();
      app.add_option("--layers", a->layers, "Number of layers (default: the model's own)")->check(at_least(1));
      app.add_option("--out", a->out, "Output directory (must not exist)")->required();
      add_choice<DType>(app, "--dtype", a->options.dtype, {{"f16", DType::F16}, {"bf16", DType::BF16}},
                        "Weight dtype");
      app.add_option("--seed", a->options.seed, "Seed of the random weights")->capture_default_str();
      app.add_option("--shard-size", a->shard_size, "Largest shard (HF max_shard_size: 5GB, 500MB, 2GiB)")
          ->capture_default_str();
      app.add_option("--catalog", a->catalog, "Model-shape catalog")->capture_default_str();
      return [a] { return run_generate(*a); };
    }};

}  // namespace
}  // namespace qb::cli
