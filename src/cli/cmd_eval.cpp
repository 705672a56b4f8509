// quantbench eval: perplexity (and KL / top-1 agreement to FP16) of FP16, RTN and AWQ weights of
// one model on one text split, every method on the same windows. See eval/protocol.h for the
// protocols and src/jobs/eval_job.h for the job. Flags become typed options here; a flag the
// libraries would refuse is a usage error (exit 2) before anything is loaded.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "cli/commands.h"
#include "common/error.h"
#include "common/files.h"
#include "jobs/eval_job.h"

namespace qb::cli {
namespace {

// Where the main job's files come from: the folder, and how it was found (for its header line and
// the run document's job.data_folder_source).
struct DataFolder {
  std::string path;  // "" when none was found
  std::string source;
};

// The data folder: --data-dir, else $QUANTBENCH_DATA, else ../shared/data beside the checkout (or
// beside the current directory), else the small default in the sources (datasets/embedded, see its
// README), so that a fresh clone runs the main job. The embedded folder is named as such however
// it was reached.
DataFolder find_data_dir(const std::string& flag) {
  namespace fs = std::filesystem;
  const std::string embedded = std::string(QB_SOURCE_DIR) + "/datasets/embedded";
  DataFolder found;
  if (!flag.empty()) {
    found = {flag, "--data-dir"};
  } else if (const char* env = std::getenv("QUANTBENCH_DATA"); env && *env) {
    found = {env, "QUANTBENCH_DATA"};
  } else {
    for (const std::string& p : {std::string(QB_SOURCE_DIR) + "/../shared/data", std::string("../shared/data")})
      if (is_directory(p)) return {p, "../shared/data"};
    if (is_directory(embedded)) return {embedded, "embedded default"};
    return {};
  }
  std::error_code ec;
  if (fs::exists(found.path, ec) && fs::equivalent(found.path, embedded, ec)) found.source = "embedded default";
  return found;
}

// The largest model under data/models: an HF directory (config.json; its size is the sum of its
// files) or a llama2.c .bin (tok*.bin files are tokenizers). "" when there is none.
std::string find_largest_model(const std::string& data) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::map<std::string, uintmax_t> candidates;
  for (fs::recursive_directory_iterator it(data + "/models", ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const fs::path& path = it->path();
    const fs::path dir = path.parent_path();
    if (fs::exists(dir / "config.json", ec))
      candidates[dir.string()] += it->file_size(ec);
    else if (path.extension() == ".bin" && path.filename().string().rfind("tok", 0) != 0)
      candidates[path.string()] = it->file_size(ec);
  }
  std::string best;
  uintmax_t best_size = 0;
  for (const auto& [path, size] : candidates)
    if (size > best_size) {
      best = path;
      best_size = size;
    }
  return best;
}

std::string first_existing(const std::string& data, std::initializer_list<const char*> relatives) {
  for (const char* r : relatives)
    if (file_exists(data + "/" + r)) return data + "/" + r;
  return "";
}

// The main job's quick defaults, so that it finishes in about a minute on 2 CPU cores (README);
// --full gives the paper's (EvalOptions' defaults), and flags given on the command line win.
constexpr int kQuickCalibSamples = 16;
constexpr int kQuickMaxWindows = 128;

bool runs_awq(const EvalOptions& o) {
  for (const MethodSpec& s : o.methods)
    if (s.family == MethodFamily::Awq) return true;
  return false;
}

// The evaluated windows and AWQ calibration, in words.
std::string settings_text(const EvalOptions& o, int calib_samples, int max_windows) {
  std::string t = max_windows > 0 ? "first " + std::to_string(max_windows) + " windows" : "every window";
  if (runs_awq(o))
    t += ", AWQ calibrated on " + std::to_string(calib_samples) + " samples x " +
         std::to_string(o.quantize.calib_seq_len) + " tokens";
  return t;
}

// run document "job" (reports/SCHEMA.md): where the main job's files came from and whether its
// settings are the paper's.
nlohmann::json main_job_record(const DataFolder& folder, const EvalOptions& o) {
  const EvalOptions paper;
  const bool reduced =
      o.protocol.max_windows > 0 || (runs_awq(o) && o.quantize.calib_samples < paper.quantize.calib_samples);
  return {{"name", "main"},
          {"data_folder", folder.path},
          {"data_folder_source", folder.source},
          {"reduced", reduced},
          {"settings", settings_text(o, o.quantize.calib_samples, o.protocol.max_windows)},
          {"paper_settings", settings_text(o, paper.quantize.calib_samples, paper.protocol.max_windows) +
                                 " (add --full)"}};
}

void print_summary(const nlohmann::json& run) {
  const auto& p = run["protocol"];
  std::printf("model %s, dataset %s (%s, %zu tokens), protocol %s ctx %d stride %d, BOS: %s\n",
              run["model"]["path"].get<std::string>().c_str(), run["dataset"]["path"].get<std::string>().c_str(),
              run["dataset"]["format"].get<std::string>().c_str(), run["dataset"]["tokens"].get<size_t>(),
              p["name"].get<std::string>().c_str(), p["ctx"].get<int>(), p["stride"].get<int>(),
              p["bos"].get<std::string>().c_str());
  for (const auto& m : run["methods"]) {
    const auto& q = m["quality"];
    std::printf("%-14s PPL = %.4f +/- %.4f", m["label"].get<std::string>().c_str(), q["ppl"].get<double>(),
                q["ppl_stderr"].get<double>());
    if (!q["delta_ppl_pct"].is_null())
      std::printf("  (%+.2f%%)  KL %.5f (p99 %.5f)  top-1 %.2f%%", q["delta_ppl_pct"].get<double>(),
                  q["kl_mean"].get<double>(), q["kl_p99"].get<double>(), 100.0 * q["top1_agreement"].get<double>());
    std::printf("  %zu tokens in %zu windows  %.0f weight bytes (%.2fx, %.2f bits/weight)  %.0f tokens/s",
                q["tokens_scored"].get<size_t>(), q["windows"].get<size_t>(), m["size"]["weight_bytes"].get<double>(),
                m["size"]["saving_vs_fp16"].get<double>(), m["size"]["bits_per_weight"].get<double>(),
                m["speed"]["tokens_per_s"].get<double>());
    // Quantized here (not loaded): the quantizer's wall time, calibration included.
    const auto& quantization = m["quantization"];
    if (quantization.is_object() && quantization.contains("seconds"))
      std::printf("  quantized in %.1f s", quantization["seconds"].get<double>());
    std::printf("\n");
  }
  if (run.contains("shard"))
    std::printf("shard %d/%d: windows %zu..%zu of %zu (merge the shards with quantbench report --merged-out)\n",
                run["shard"]["index"].get<int>(), run["shard"]["count"].get<int>(),
                run["shard"]["windows"][0].get<size_t>(), run["shard"]["windows"][1].get<size_t>() - 1,
                run["shard"]["total_windows"].get<size_t>());
  if (run.contains("job") && run["job"]["reduced"].get<bool>())
    std::printf("reduced settings: %s; the paper's: %s\n", run["job"]["settings"].get<std::string>().c_str(),
                run["job"]["paper_settings"].get<std::string>().c_str());
}

CommandRegistration reg{
    "eval",
    "Perplexity of FP16, RTN and AWQ weights of one model on one text split (the main job).\n"
    "With no --model/--dataset it evaluates the largest model and the WikiText-2 test split found in the data\n"
    "folder ($QUANTBENCH_DATA, else ../shared/data beside the checkout, else the small default in the sources,\n"
    "datasets/embedded) at quick settings that --full turns into the paper's.\n"
    "Example: quantbench eval --model stories260K.bin --tokenizer tok512.model --dataset wiki.test.raw --ctx 512 "
    "--methods fp16,rtn,awq --calib valid.txt --out run.json",
    [](CLI::App& app) -> std::function<int()> {
      struct Args {
        EvalOptions o;
        std::string methods, data_dir, shard, out = "quantbench-eval.json";
        std::vector<std::string> load;
        int bits = 4, group = 128;
        bool no_clip = false, full = false;
        CLI::Option *max_windows_flag = nullptr, *calib_samples_flag = nullptr;  // given or not
        CLI::Option *ctx_flag = nullptr, *chunks_flag = nullptr;
        int chunks = 0;
        double memory_budget_gb = 0;
        std::vector<MethodSpec> parsed_methods;  // --methods as given, checked at parse time
      };
      auto a = std::make_shared<Args>();
      app.add_option("--model", a->o.model_path,
                     "Model: an HF directory (config.json + model.safetensors[.index.json]) or a llama2.c .bin");
      app.add_option("--tokenizer", a->o.tokenizer_path,
                     "SentencePiece tokenizer.model or HF tokenizer.json (default: tokenizer.json, then tokenizer.model, "
                     "beside the model)");
      app.add_option("--dataset", a->o.dataset_path,
                     "Text to score: WikiText-2 raw (wiki.test.raw: rows joined with \\n\\n as GPTQ/AWQ do), "
                     "tokenized WikiText-2 (test.txt), or any UTF-8 text file");
      add_choice(app, "--dataset-format", a->o.dataset_format,
                 {{"auto", DatasetFormat::Auto},
                  {"text", DatasetFormat::Text},
                  {"wikitext-raw", DatasetFormat::WikitextRaw},
                  {"wikitext-tokens", DatasetFormat::WikitextTokens}},
                 "How the file is read: auto (by name and content), WikiText raw or tokenized, or plain text");
      app.add_option("--data-dir", a->data_dir, "Data folder searched when --model/--dataset are not given");
      add_choice(app, "--protocol", a->o.protocol.kind,
                 {{"paper", ProtocolKind::Paper}, {"sliding", ProtocolKind::Sliding}, {"llama.cpp", ProtocolKind::LlamaCpp}},
                 "paper: non-overlapping windows, all tokens scored (GPTQ/AWQ); sliding: windows every "
                 "--stride tokens, only tokens past the overlap scored; llama.cpp: llama-perplexity's protocol "
                 "(disjoint chunks, first token overwritten with BOS, second half scored; default --ctx " +
                     std::to_string(kLlamaCppDefaultCtx) + "; the file's bytes; a GGUF's own vocabulary)");
      a->ctx_flag = app.add_option("--ctx", a->o.protocol.ctx,
                                   "Tokens per window, capped at the model's max_seq_len (llama.cpp protocol: not "
                                   "capped, default " + std::to_string(kLlamaCppDefaultCtx) + ")")
                        ->check(at_least(2))
                        ->capture_default_str();
      app.add_option("--stride", a->o.protocol.stride, "sliding: tokens between window starts (default ctx/2)")
          ->check(at_least(0));
      add_choice(app, "--bos", a->o.protocol.bos, {{"split", BosPlacement::Split}, {"window", BosPlacement::Window}},
                 "split: one BOS at the start of the split (paper); window: BOS starts every window");
      a->max_windows_flag =
          app.add_option("--max-windows", a->o.protocol.max_windows,
                         "Evaluate only the first N windows (0: all; the main job's quick default: " +
                             std::to_string(kQuickMaxWindows) + ")")
          ->check(at_least(0))
          ->capture_default_str();
      a->chunks_flag = app.add_option("--chunks", a->chunks,
                                      "llama.cpp's name for --max-windows: evaluate only the first N chunks")
                           ->check(at_least(0));
      app.add_option("--shard", a->shard,
                     "I/N: evaluate only shard I (0..N-1) of N, windows [I*W/N, (I+1)*W/N) of the W planned (after "
                     "--max-windows), for one process per GPU or node; `quantbench report --merged-out` merges the N "
                     "documents into the whole run's, exactly (scripts/slurm-eval.sh)");
      add_choice(app, "--mode", a->o.mode,
                 {{"auto", EvalMode::Auto}, {"lockstep", EvalMode::Lockstep}, {"sequential", EvalMode::Sequential}},
                 "lockstep: every method in memory at once, compared window by window; sequential: FP16 first, its "
                 "log-probabilities kept on disk (~2 bytes x vocab per scored token, --store-dir), then each method "
                 "alone (same perplexities and top-1, KL within the stated bound); auto: lockstep when the memory plan "
                 "fits, else sequential, else a refusal before loading (default: auto)");
      app.add_option("--memory-budget", a->memory_budget_gb,
                     "GB the memory plan may use (default: what this machine has available, MemAvailable or the "
                     "cgroup's limit)")
          ->check(CLI::PositiveNumber);
      app.add_option("--store-dir", a->o.scratch_dir,
                     "Sequential mode: folder of the temporary reference store, removed at the end (default: the --out "
                     "file's folder)");
      add_choice(app, "--activations", a->o.activations,
                 {{"exact", Activations::Exact}, {"llama.cpp", Activations::LlamaCpp}},
                 "CPU arithmetic: exact (float32) or llama.cpp (activations rounded to the weight type's Q8_0/Q8_1/Q8_K "
                 "or F16 blocks, F16 KV cache; CPU only)");
      app.add_option("--methods", a->methods,
                     "Comma-separated: fp16, rtn, awq, gptq, rtn-keep:<act|weight|random>:<percent>%, each optionally "
                     ":w<bits>[g<group>] (e.g. fp16,rtn,awq,rtn:w3,awq:w3,rtn-keep:act:1%:w3), or gguf:<type>, a llama.cpp "
                     "type or mix made as llama-quantize makes it (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_m, q4_k_s, "
                     "q4_k_m, q5_k_s, q5_k_m, q6_k). FP16 is always run as the reference. Default: fp16 with --model, fp16,rtn,awq for the data-folder job");
      app.add_option("--load", a->load,
                     "Also evaluate a quantized checkpoint directory, AutoAWQ (gemm) or GPTQ (AutoGPTQ/GPTQModel; "
                     "detected by its config), or a llama.cpp GGUF file (*.gguf) (repeatable)");
      app.add_option("--bits", a->bits, "Default bits for rtn/awq/gptq (2..8)")->capture_default_str();
      app.add_option("--group", a->group, "Default group size for rtn/awq/gptq (-1: per output channel)")
          ->capture_default_str();
      app.add_flag("--symmetric", a->o.quantize.symmetric, "Symmetric quantization (zero point fixed at 2^(bits-1))");
      app.add_flag("--no-clip", a->no_clip, "AWQ: skip the clipping search");
      app.add_option("--gptq-damp", a->o.quantize.gptq_damp,
                     "GPTQ: dampening, this fraction of the mean of diag(H) added to its diagonal")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      app.add_flag("--act-order", a->o.quantize.act_order,
                   "GPTQ: quantize columns by descending diag(H) (desc_act), with static groups");
      app.add_option("--calib", a->o.quantize.calib_path,
                     "Calibration text of awq, gptq and rtn-keep:act (never the evaluated split)");
      a->calib_samples_flag =
          app.add_option("--calib-samples", a->o.quantize.calib_samples,
                         "AWQ calibration samples (the main job's quick default: " +
                             std::to_string(kQuickCalibSamples) + ")")
              ->capture_default_str();
      app.add_flag("--full", a->full,
                   "Main job (no --model/--dataset): the paper's settings (every window, " +
                       std::to_string(EvalOptions{}.quantize.calib_samples) +
                       " calibration samples) instead of its quick defaults");
      app.add_option("--calib-seq-len", a->o.quantize.calib_seq_len, "AWQ calibration tokens per sample")
          ->capture_default_str();
      app.add_flag("--force-calib", a->o.quantize.force_calib, "Allow calibrating on the evaluated file");
      add_choice(app, "--device", a->o.device,
                 {{"auto", DeviceChoice::Auto}, {"cpu", DeviceChoice::Cpu}, {"cuda", DeviceChoice::Cuda}},
                 "Where to evaluate (and run AWQ's search): auto is the GPU when one is usable");
      app.add_flag("--offload", a->o.offload,
                   "CUDA: keep block weights in pinned host memory and stream them per layer with double buffering "
                   "(a 70B FP16 reference on one 80 GB GPU); without it, only when they do not fit the device");
      app.add_option("--catalog", a->o.catalog_path,
                     "Model-shape catalog for the projected VRAM of 7B..70B models (default: bench/model_shapes.json)");
      app.add_option("--out", a->out, "Run document (JSON), written atomically")->capture_default_str();
      // What depends on several flags (stride against ctx, the method list) is checked once all are
      // parsed, so that it too is a usage error.
      app.callback([a]() {
        try {
          ProtocolOptions& p = a->o.protocol;
          if (p.kind == ProtocolKind::LlamaCpp && !a->ctx_flag->count()) p.ctx = kLlamaCppDefaultCtx;
          if (a->chunks_flag->count() && a->max_windows_flag->count())
            throw CLI::ValidationError("--chunks", "is --max-windows by llama.cpp's name; give one of them");
          if (a->chunks_flag->count()) p.max_windows = a->chunks;
          validate_protocol(p);
          if (!a->shard.empty()) a->o.shard = parse_shard(a->shard);
          if (!a->methods.empty()) a->parsed_methods = parse_methods(a->methods, a->bits, a->group);
          if (a->full && !(a->o.model_path.empty() && a->o.dataset_path.empty()))
            throw CLI::ValidationError("--full", "only the main job (no --model/--dataset) has reduced defaults");
        } catch (const Error& e) {
          throw CLI::ValidationError(e.what());
        }
      });
      return [a]() {
        EvalOptions o = a->o;
        o.quantize.clip = !a->no_clip;
        o.memory_budget_bytes = static_cast<size_t>(a->memory_budget_gb * 1e9);
        if (o.scratch_dir.empty()) o.scratch_dir = std::filesystem::path(std::filesystem::absolute(a->out)).parent_path().string();
        std::string methods = a->methods;
        const bool main_job = o.model_path.empty() && o.dataset_path.empty();
        DataFolder folder;
        if (o.model_path.empty() || o.dataset_path.empty()) {
          folder = find_data_dir(a->data_dir);
          const std::string& data = folder.path;
          if (!data.empty() && o.model_path.empty()) o.model_path = find_largest_model(data);
          if (data.empty() || o.model_path.empty()) {
            std::fprintf(stderr,
                         "quantbench: no model found (no data folder: set QUANTBENCH_DATA or --data-dir); name one: "
                         "quantbench eval --model MODEL_DIR_OR_BIN [--tokenizer tokenizer.model] --dataset "
                         "wiki.test.raw\n");
            return 2;
          }
          if (o.dataset_path.empty())
            o.dataset_path = first_existing(data, {"text/wikitext-2-raw/wiki.test.raw", "text/wikitext-2/test.txt"});
          if (o.dataset_path.empty()) fail(data, "no dataset found (text/wikitext-2-raw/wiki.test.raw); name one with --dataset");
          std::string& calib = o.quantize.calib_path;
          if (calib.empty()) calib = first_existing(data, {"text/wikitext-2/valid.txt"});
          if (methods.empty()) methods = o.quantize.calib_path.empty() ? "fp16,rtn" : "fp16,rtn,awq";
          std::fprintf(stderr, "data folder %s (%s): model %s, dataset %s, methods %s\n", data.c_str(),
                       folder.source.c_str(), o.model_path.c_str(), o.dataset_path.c_str(), methods.c_str());
        }
        o.methods = a->methods.empty() ? parse_methods(methods.empty() ? "fp16" : methods, a->bits, a->group)
                                       : a->parsed_methods;
        for (const MethodSpec& s : o.methods) {
          if (s.family == MethodFamily::Awq && o.quantize.calib_path.empty())
            throw UsageError("--calib", "AWQ needs a calibration text (never the evaluated split)");
          if (s.family == MethodFamily::Gptq && o.quantize.calib_path.empty())
            throw UsageError("--calib", "GPTQ needs a calibration text (never the evaluated split)");
          if (s.family == MethodFamily::RtnKeep && s.keep_by == KeepBy::Act && o.quantize.calib_path.empty())
            throw UsageError("--calib", "rtn-keep:act ranks channels on a calibration text (never the evaluated split)");
        }
        for (const auto& dir : a->load) {
          MethodSpec s;
          s.checkpoint_dir = dir;  // its family and settings come from the checkpoint
          o.methods.push_back(s);
        }
        nlohmann::json job;  // the main job's record in the run document
        if (main_job) {
          if (!a->full) {
            if (!a->calib_samples_flag->count()) o.quantize.calib_samples = kQuickCalibSamples;
            if (!a->max_windows_flag->count() && !a->chunks_flag->count()) o.protocol.max_windows = kQuickMaxWindows;
          }
          job = main_job_record(folder, o);
          if (job["reduced"].get<bool>())
            std::fprintf(stderr, "reduced settings: %s; the paper's: %s\n", job["settings"].get<std::string>().c_str(),
                         job["paper_settings"].get<std::string>().c_str());
          else
            std::fprintf(stderr, "paper settings: %s\n", job["settings"].get<std::string>().c_str());
        }
        nlohmann::json run = run_eval(o);
        if (main_job) run["job"] = job;
        write_file_atomic(a->out, run.dump(2) + "\n");
        print_summary(run);
        std::printf("wrote %s\n", a->out.c_str());
        return 0;
      };
    }};

}  // namespace
}  // namespace qb::cli
