// quantbench_scale_bench: what a 7B..70B run costs on this machine's CPU, measured on generated
// models of each catalog shape with a few layers and projected to the full layer count.
//
// Per shape (bench/model_shapes.json name), each step a child process timed with wait4 (peak RSS
// is its ru_maxrss, file-backed mapped weights included):
//   generate  quantbench generate --layers L            random F16 weights (never committed)
//   eval      quantbench eval --methods <methods>       one window of ctx tokens: tokens/s per
//                                                       method, peak RSS against the stored bytes
//   rtn       quantbench quantize --method rtn          seconds per block, peak RSS
//   awq       quantbench quantize --method awq          seconds per block (and per phase), peak RSS,
//                                                       with S calibration samples of 512 tokens
// next to this machine's sgemm GFLOP/s (model/sgemm_rate.h). Projections: time per block x the
// catalog's layer count (AWQ's search scales linearly with calibration tokens: x 128 / S for the
// paper's 128 samples); quantize memory is the measured peak (it streams one block at a time);
// eval memory adds the stored bytes of the missing layers of every evaluated method.
// Writes one JSON document ("quantbench.scale_bench"); the README's scale table is read from it.
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/host_info.h"
#include "model/block_linears.h"
#include "model/model_catalog.h"
#include "model/sgemm_rate.h"

extern char** environ;

namespace qb {
namespace {

struct ChildRun {
  double seconds = 0;
  size_t peak_rss_bytes = 0;
};

// Runs args (args[0] a path) to completion, its output going to ours; fails unless it exits 0.
ChildRun run_child(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::string line;
  for (const auto& a : args) line += a + " ";
  std::fprintf(stderr, "scale-bench: %s\n", line.c_str());
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) fail(args[0], "cannot be started");
  int status = 0;
  rusage usage{};
  if (wait4(pid, &status, 0, &usage) != pid) fail(args[0], "wait4 failed");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail(args[0], "failed: " + line);
  ChildRun r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.peak_rss_bytes = static_cast<size_t>(usage.ru_maxrss) * 1024;
  return r;
}

struct Options {
  std::string quantbench;  // "" -> beside this executable
  std::vector<std::string> shapes = {"llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b"};
  int layers = 2;
  int calib_samples = 1;
  int ctx = 512;
  std::string eval_methods = "fp16,rtn,awq";
  std::string data;  // QUANTBENCH_DATA layout: tokenizers/, text/
  std::string catalog = QB_DEFAULT_CATALOG;
  std::string workdir = "/tmp/quantbench-scale-bench";
  std::string out = "scale-bench.json";
};

// The tokenizer whose vocabulary the shape has: Llama-2's SentencePiece model for 32000, Llama-3's
// tokenizer.json for 128256 (both under the data folder).
std::string tokenizer_for(const std::string& data, int vocab) {
  if (vocab == 32000) return data + "/tokenizers/llama2/tokenizer.model";
  if (vocab == 128256) return data + "/tokenizers/hf/llama3/tokenizer.json";
  fail("scale-bench", "no tokenizer in the data folder has a vocabulary of " + std::to_string(vocab));
}

// Bytes of one block's seven linears as stored: F16 (bits 16) or group-quantized.
size_t layer_stored_bytes(const LlamaConfig& c, int bits, int group_size) {
  size_t bytes = 0;
  for (const auto& [n, k] : linear_dims(c))
    bytes += bits == 16 ? size_t{2} * n * k : quantized_stored_bytes(n, k, bits, group_size < 0 ? k : group_size);
  return bytes;
}

nlohmann::json bench_shape(const Options& o, const CatalogModel& shape, const std::string& exe) {
  namespace fs = std::filesystem;
  const std::string dir = o.workdir + "/" + shape.name;
  fs::remove_all(dir);
  fs::create_directories(o.workdir);
  const std::string tokenizer = tokenizer_for(o.data, shape.config.vocab_size);
  const std::string eval_text = o.data + "/text/wikitext-2-raw/wiki.test.raw";
  const std::string calib_text = o.data + "/text/wikitext-2/valid.txt";
  const std::string layers = std::to_string(o.layers), samples = std::to_string(o.calib_samples);
  nlohmann::json r = {{"shape", shape.name}, {"layers_measured", o.layers}, {"layers_full", shape.config.n_layers}};

  const ChildRun gen = run_child({exe, "generate", "--shape", shape.name, "--layers", layers, "--out", dir,
                                  "--catalog", o.catalog});
  r["generate"] = {{"seconds", gen.seconds}, {"peak_rss_bytes", gen.peak_rss_bytes}};

  const std::string eval_doc = dir + ".eval.json";
  const ChildRun ev = run_child({exe, "eval", "--model", dir, "--tokenizer", tokenizer, "--dataset", eval_text,
                                 "--methods", o.eval_methods, "--ctx", std::to_string(o.ctx), "--max-windows", "1",
                                 "--calib", calib_text, "--calib-samples", samples, "--device", "cpu", "--out",
                                 eval_doc});
  const nlohmann::json doc = read_json_file(eval_doc);
  nlohmann::json methods = nlohmann::json::array();
  size_t stored = 0;
  for (const nlohmann::json& m : doc.at("methods")) {
    const size_t bytes = m.at("size").at("weight_bytes").get<size_t>();
    stored += bytes;
    const nlohmann::json& q = m.at("quantization");
    methods.push_back({{"label", m.at("label")},
                       {"weight_bytes", bytes},
                       {"tokens_per_s", m.at("speed").at("tokens_per_s")},
                       {"bytes_per_layer", layer_stored_bytes(shape.config, q.is_null() ? 16 : q.at("bits").get<int>(),
                                                              q.is_null() ? 0 : q.at("group_size").get<int>())}});
  }
  size_t missing_layers_bytes = 0;
  for (const nlohmann::json& m : methods)
    missing_layers_bytes += m["bytes_per_layer"].get<size_t>() * static_cast<size_t>(shape.config.n_layers - o.layers);
  r["eval"] = {{"methods", methods},
               {"seconds", ev.seconds},
               {"peak_rss_bytes", ev.peak_rss_bytes},
               {"stored_weight_bytes", stored},
               {"peak_over_stored", static_cast<double>(ev.peak_rss_bytes) / static_cast<double>(stored)},
               {"projected_full_model_peak_rss_bytes", ev.peak_rss_bytes + missing_layers_bytes}};

  for (const std::string method : {"rtn", "awq"}) {
    const std::string out = dir + "." + method;
    fs::remove_all(out);
    std::vector<std::string> args = {exe, "quantize", "--model", dir, "--method", method, "--out", out};
    if (method == "awq")
      args.insert(args.end(), {"--tokenizer", tokenizer, "--calib", calib_text, "--calib-samples", samples});
    const ChildRun q = run_child(args);
    const nlohmann::json report = read_json_file(out + "/quantize_report.json");
    nlohmann::json entry = {{"seconds", q.seconds}, {"peak_rss_bytes", q.peak_rss_bytes},
                            {"seconds_per_block", q.seconds / o.layers}};
    if (report.contains("blocks") && report["blocks"].is_array() && !report["blocks"].empty()) {
      double block_seconds = 0;
      for (const nlohmann::json& b : report["blocks"]) block_seconds += b.at("seconds").get<double>();
      entry["seconds_per_block"] = block_seconds / report["blocks"].size();
      entry["blocks"] = report["blocks"];
    }
    const double per_block = entry["seconds_per_block"].get<double>();
    const double samples_scale = method == "awq" ? 128.0 / o.calib_samples : 1.0;
    entry["projected_full_model_seconds"] = per_block * shape.config.n_layers * samples_scale;
    r[method] = entry;
    fs::remove_all(out);
  }
  fs::remove_all(dir);
  fs::remove(eval_doc);
  return r;
}

int run(int argc, char** argv) {
  Options o;
  if (const char* d = std::getenv("QUANTBENCH_DATA")) o.data = d;
  CLI::App app{"Peak RSS and speed of eval and quantize at 7B..70B block shapes on this CPU"};
  app.add_option("--quantbench", o.quantbench, "The quantbench executable (default: beside this one)");
  app.add_option("--shapes", o.shapes, "Catalog model names, comma-separated")->delimiter(',')->capture_default_str();
  app.add_option("--layers", o.layers, "Layers of each generated model")->capture_default_str();
  app.add_option("--calib-samples", o.calib_samples, "AWQ calibration samples of 512 tokens")->capture_default_str();
  app.add_option("--ctx", o.ctx, "Eval window")->capture_default_str();
  app.add_option("--eval-methods", o.eval_methods, "Methods of the eval step")->capture_default_str();
  app.add_option("--data", o.data, "Data folder (QUANTBENCH_DATA): tokenizers and text");
  app.add_option("--catalog", o.catalog, "Model-shape catalog")->capture_default_str();
  app.add_option("--workdir", o.workdir, "Where generated models go (removed after each shape)")->capture_default_str();
  app.add_option("--out", o.out, "Result document")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (o.data.empty()) fail("scale-bench", "name the data folder with --data or QUANTBENCH_DATA");
  const std::string exe = o.quantbench.empty()
                              ? (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "quantbench").string()
                              : o.quantbench;
  const std::vector<CatalogModel> catalog = load_catalog_models(o.catalog);
  nlohmann::json doc = {{"schema", "quantbench.scale_bench"}, {"version", 1}, {"tool", tool_info()},
                        {"host", host_info()}, {"created", utc_timestamp()}};
  // The yardstick at an eval-like shape: a 512-token window through a 4096 x 4096 linear.
  doc["sgemm"] = {{"m", 512}, {"n", 4096}, {"k", 4096}, {"gflops", measured_sgemm_gflops(512, 4096, 4096)}};
  nlohmann::json shapes = nlohmann::json::array();
  for (const std::string& name : o.shapes) {
    const CatalogModel* shape = nullptr;
    for (const CatalogModel& m : catalog)
      if (m.name == name) shape = &m;
    if (!shape) fail(o.catalog, "no model named '" + name + "'");
    shapes.push_back(bench_shape(o, *shape, exe));
    doc["shapes"] = shapes;
    write_file_atomic(o.out, doc.dump(2) + "\n");  // after every shape: a long sweep keeps what it has
  }
  std::fprintf(stderr, "scale-bench: wrote %s\n", o.out.c_str());
  return 0;
}

}  // namespace
}  // namespace qb

int main(int argc, char** argv) {
  try {
    return qb::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
