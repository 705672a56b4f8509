#include "eval/eval_job.h"

#include <chrono>
#include <cstdio>
#include <regex>

#include "common/error.h"
#include "common/files.h"
#include "common/host_info.h"
#include "common/progress.h"
#include "datasets/dataset.h"
#include "datasets/tokenizer.h"
#include "eval/backend.h"
#include "eval/metrics.h"
#include "model/load.h"
#include "eval/vram_catalog.h"
#include "quant/awq_format.h"
#include "quant/quantize.h"
#ifdef QB_HAVE_CUDA
#include "bench/bench_report.h"
#include "gpu/cuda_backend.h"
#include "kernels/device_probe.h"
#endif

namespace qb {

std::string MethodSpec::label() const {
  if (!load_dir.empty()) return method + " (" + load_dir + ")";
  if (method == "fp16") return "fp16";
  return method + " w" + std::to_string(bits) + " g" + std::to_string(group_size);
}

std::vector<MethodSpec> parse_methods(const std::string& list, int default_bits, int default_group) {
  static const std::regex spec_re(R"(^(fp16|rtn|awq)(?::w([0-9]+)(?:g(-1|[0-9]+))?)?$)");
  std::vector<MethodSpec> out;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(begin, end - begin);
    std::smatch m;
    if (!std::regex_match(item, m, spec_re))
      fail("--methods", "'" + item + "' is not fp16, rtn or awq (optionally with :w<bits>[g<group>], e.g. awq:w3g128)");
    MethodSpec s;
    s.method = m[1];
    s.bits = m[2].matched ? std::stoi(m[2]) : default_bits;
    s.group_size = m[3].matched ? std::stoi(m[3]) : default_group;
    out.push_back(s);
    begin = end + 1;
  }
  return out;
}

// {"F16": bytes, "Q4": bytes, ...}: the model's weight bytes as stored, by dtype.
static nlohmann::json bytes_by_dtype_json(const Model& m) {
  nlohmann::json by_dtype = nlohmann::json::object();
  for (const auto& [name, bytes] : m.weight_bytes_by_dtype()) by_dtype[name] = bytes;
  return by_dtype;
}

static nlohmann::json model_json(const Model& m) {
  const LlamaConfig& c = m.config;
  return {{"path", m.path},
          {"format", m.format},
          {"architecture",
           {{"dim", c.dim}, {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size}, {"max_seq_len", c.max_seq_len},
            {"rope_theta", c.rope_theta}, {"norm_eps", c.norm_eps}, {"tied_embeddings", c.tied_embeddings}}},
          {"parameters", m.parameter_count()},
          {"weight_bytes_by_dtype", bytes_by_dtype_json(m)}};
}

// One evaluated weight format: its model, backend and running sums.
struct MethodRun {
  MethodSpec spec;
  Model model;
  nlohmann::json quantization;  // null for FP16
  nlohmann::json layers;        // per-layer quantization report, or null
  std::unique_ptr<LogitsBackend> backend;
  MeanAccumulator nll, kl;
  std::vector<double> kl_values;
  size_t top1_same = 0, tokens_run = 0;
  double seconds = 0.0;
};

// The quantization settings of a loaded checkpoint: those its quantize_report.json records when
// quantbench wrote it, else what its weights show (clip and calibration are then unknown).
static nlohmann::json loaded_quantization_json(const Model& m, const std::string& dir) {
  const std::string report_path = dir + "/quantize_report.json";
  if (file_exists(report_path)) {
    const nlohmann::json report = read_json_file(report_path);
    if (report.contains("quantization") && report["quantization"].is_object()) {
      nlohmann::json q = report["quantization"];
      q["checkpoint"] = dir;
      return q;
    }
  }
  const Linear& first = m.layers.at(0).q_proj;
  if (!first.quant) fail(dir, "model.layers.0.self_attn.q_proj is not quantized");
  const QuantizedWeight& q = *first.quant;
  return {{"bits", q.bits},
          {"group_size", q.group_size == q.k ? -1 : q.group_size},
          {"zero_point", true},
          {"checkpoint", dir}};
}

static MethodRun build_method(const MethodSpec& spec, const Model& fp16, const EvalOptions& o,
                              const Tokenizer& tokenizer) {
  MethodRun r;
  r.spec = spec;
  if (!spec.load_dir.empty()) {
    r.model = load_awq_checkpoint(spec.load_dir);
    if (r.model.config.dim != fp16.config.dim || r.model.config.n_layers != fp16.config.n_layers ||
        r.model.config.vocab_size != fp16.config.vocab_size)
      fail(spec.load_dir, "quantized checkpoint's config does not match the model being evaluated");
    r.quantization = loaded_quantization_json(r.model, spec.load_dir);
  } else if (spec.method == "fp16") {
    r.model = fp16;
  } else {
    QuantizeOptions q;
    q.method = spec.method;
    q.bits = spec.bits;
    q.group_size = spec.group_size;
    q.symmetric = o.symmetric;
    q.clip = o.clip;
    q.calib_path = o.calib_path;
    q.calib_samples = o.calib_samples;
    q.calib_seq_len = o.calib_seq_len;
    q.force_calib = o.force_calib;
    q.eval_path = o.dataset_path;
    QuantizeResult res = quantize_model(fp16, q, &tokenizer);
    r.model = std::move(res.model);
    r.quantization = std::move(res.quantization);
    r.layers = std::move(res.layers);
  }
  check_finite(r.model);
  return r;
}

// "cpu" or "cuda" for --device cpu|cuda|auto: auto takes the GPU when one is usable.
static std::string resolve_device(const std::string& requested) {
  if (requested == "cpu") return "cpu";
#ifdef QB_HAVE_CUDA
  const std::string why = kernels::cuda_unavailable_reason();
  if (why.empty()) return "cuda";
  if (requested == "cuda") fail("--device", why);
  std::fprintf(stderr, "note: evaluating on the CPU (%s)\n", why.c_str());
#else
  if (requested == "cuda") fail("--device", "this build has no CUDA backend (configure with -DQUANTBENCH_CUDA=ON)");
#endif
  return "cpu";
}

static std::unique_ptr<LogitsBackend> make_backend(const std::string& device, const Model& m) {
#ifdef QB_HAVE_CUDA
  if (device == "cuda") return make_cuda_backend(m, 0);
#endif
  return make_cpu_backend(m);
}

// The GPU's probe (measured peaks included) for the run document, or null on the CPU.
static nlohmann::json device_json_for(const std::string& device) {
#ifdef QB_HAVE_CUDA
  if (device == "cuda") return bench::device_json(kernels::probe_device(0));
#endif
  return nullptr;
}

nlohmann::json run_eval(const EvalOptions& o) {
  validate_protocol(o.protocol);
  if (o.device != "cpu" && o.device != "cuda" && o.device != "auto")
    fail("--device", "'" + o.device + "' is not cpu, cuda or auto");
  const Model source = load_model(o.model_path);
  check_finite(source);
  const LlamaConfig& c = source.config;
  const std::string tokenizer_path =
      o.tokenizer_path.empty() ? tokenizer_beside(o.model_path, c.vocab_size) : o.tokenizer_path;
  if (tokenizer_path.empty()) fail(o.model_path, "no tokenizer.model beside the model; name one with --tokenizer");
  const Tokenizer tokenizer(tokenizer_path);
  tokenizer.require_vocab_size(c.vocab_size);

  const TextDataset dataset = load_text_dataset(o.dataset_path, o.dataset_format);
  const std::vector<int> text_tokens = tokenizer.encode(dataset.text);
  ProtocolOptions protocol = o.protocol;
  if (protocol.ctx > c.max_seq_len) {
    std::fprintf(stderr, "note: --ctx %d capped at the model's max_seq_len %d\n", protocol.ctx, c.max_seq_len);
    protocol.ctx = c.max_seq_len;
    if (protocol.stride >= protocol.ctx) protocol.stride = 0;
  }
  const std::vector<Window> windows = plan_windows(text_tokens, tokenizer.bos_id(), protocol, dataset.path);

  std::string device = resolve_device(o.device);  // after the inputs are known to be good

  // The FP16 reference always runs first: deltas, KL and agreement are measured against it.
  const Model fp16 = to_fp16(source);
  std::vector<MethodSpec> specs{MethodSpec{"fp16", 16, 0, ""}};
  for (const auto& s : o.methods)
    if (s.method != "fp16" || !s.load_dir.empty()) specs.push_back(s);
  std::vector<MethodRun> runs;
  for (const auto& s : specs) {
    std::fprintf(stderr, "preparing %s\n", s.label().c_str());
    runs.push_back(build_method(s, fp16, o, tokenizer));
  }
  // Every method on one device (KL compares logits where they are). With --device auto, weights
  // the GPU kernels cannot take (e.g. 3-bit, or out_features not a multiple of 8) send the whole
  // run to the CPU, said in one line; with --device cuda they are an error.
  try {
    for (auto& r : runs) r.backend = make_backend(device, r.model);
  } catch (const Error& e) {
    if (o.device != "auto" || device == "cpu") throw;
    std::fprintf(stderr, "note: evaluating on the CPU: %s\n", e.what());
    device = "cpu";
    for (auto& r : runs) r.backend = make_backend(device, r.model);
  }

  Progress progress("eval", static_cast<long>(windows.size()));
  for (size_t w = 0; w < windows.size(); ++w) {
    const Window& win = windows[w];
    for (auto& r : runs) {
      const auto t0 = std::chrono::steady_clock::now();
      r.backend->run(win.tokens);
      WindowScores scores;
      const LogitsBackend* reference = &r == &runs.front() ? nullptr : runs.front().backend.get();
      r.backend->score(win.tokens, win.first_scored, reference,
                       "window " + std::to_string(w) + " (" + r.spec.label() + ")", scores);
      r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      r.tokens_run += win.tokens.size();
      for (double v : scores.nll) r.nll.add(v);
      for (double v : scores.kl) {
        r.kl.add(v);
        r.kl_values.push_back(v);
      }
      for (uint8_t same : scores.top1_same) r.top1_same += same;
    }
    progress.advance(1, "ppl " + std::to_string(std::exp(runs.front().nll.mean())));
  }
  progress.finish();

  const double ref_ppl = std::exp(runs.front().nll.mean());
  const size_t ref_bytes = runs.front().model.weight_bytes();
  nlohmann::json methods = nlohmann::json::array();
  for (auto& r : runs) {
    const double ppl = std::exp(r.nll.mean());
    const bool is_ref = &r == &runs.front();
    nlohmann::json entry = {{"method", r.spec.method},
         {"label", r.spec.label()},
         {"quantization", r.quantization},
         {"quality",
          {{"ppl", ppl},
           // delta method: d exp(m) = exp(m) dm
           {"ppl_stderr", ppl * r.nll.stderr_of_mean()},
           {"mean_nll", r.nll.mean()},
           {"nll_stderr", r.nll.stderr_of_mean()},
           {"tokens_scored", r.nll.n},
           {"windows", windows.size()},
           {"delta_ppl_pct", is_ref ? nlohmann::json(nullptr) : nlohmann::json(100.0 * (ppl / ref_ppl - 1.0))},
           {"kl_mean", is_ref ? nlohmann::json(nullptr) : nlohmann::json(r.kl.mean())},
           {"kl_stderr", is_ref ? nlohmann::json(nullptr) : nlohmann::json(r.kl.stderr_of_mean())},
           {"kl_p99", is_ref ? nlohmann::json(nullptr) : nlohmann::json(percentile(r.kl_values, 0.99))},
           {"top1_agreement", is_ref ? nlohmann::json(nullptr) : nlohmann::json(double(r.top1_same) / r.kl.n)}}},
         {"size",
          {{"weight_bytes", r.model.weight_bytes()},
           {"saving_vs_fp16", double(ref_bytes) / r.model.weight_bytes()},
           {"bytes_by_dtype", bytes_by_dtype_json(r.model)}}},
         {"speed", {{"device", r.backend->device()}, {"tokens_per_s", r.tokens_run / r.seconds}, {"seconds", r.seconds}}}};
    if (!r.layers.is_null()) entry["layers"] = r.layers;
    methods.push_back(std::move(entry));
  }

  // VRAM: measured per method on a GPU; projected for the catalog models on every device.
  nlohmann::json vram = nlohmann::json::object();
  std::vector<CatalogMethod> catalog_methods;
  nlohmann::json per_method = nlohmann::json::array();
  for (auto& r : runs) {
    if (r.spec.method == "fp16") {
      catalog_methods.push_back({"fp16", 16, 0});
    } else {
      catalog_methods.push_back({r.spec.method, r.quantization.at("bits").get<int>(),
                                 r.quantization.at("group_size").get<int>()});
    }
    const nlohmann::json mem = r.backend->memory();
    if (mem.is_null()) continue;
    if (!vram.contains("device_bytes_free_before")) vram["device_bytes_free_before"] = mem["device_bytes_free_before"];
    nlohmann::json entry = mem;
    entry["method"] = r.spec.label();
    per_method.push_back(entry);
  }
  if (!per_method.empty()) vram["per_method"] = per_method;
  nlohmann::json catalog = vram_catalog(o.catalog_path.empty() ? QB_DEFAULT_CATALOG : o.catalog_path, catalog_methods);
  for (auto& e : catalog) e["method"] = e["label"];  // one column per evaluated setting (w3 and w4 apart)
  vram["catalog"] = catalog;

  const nlohmann::json protocol_doc = protocol_json(protocol);
  return {{"schema", "quantbench.run"},
          {"schema_version", "1.0"},
          {"kind", "eval"},
          {"created", utc_timestamp()},
          {"tool", tool_info()},
          {"host", host_info()},
          {"device", device_json_for(device)},
          {"model", model_json(source)},
          {"tokenizer",
           {{"path", tokenizer_path},
            {"vocab_size", tokenizer.vocab_size()},
            {"bos", protocol_doc["bos"]}}},
          {"dataset", dataset_json(dataset, text_tokens.size())},
          {"protocol", protocol_doc},
          {"methods", methods},
          {"vram", vram}};
}

}  // namespace qb
