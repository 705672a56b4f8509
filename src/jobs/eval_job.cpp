#include "jobs/eval_job.h"

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <regex>

#include "common/error.h"
#include "common/files.h"
#include "common/host_info.h"
#include "common/json_fields.h"
#include "common/labels.h"
#include "common/memory.h"
#include "datasets/llama_spm_tokenizer.h"
#include "datasets/tokenizer.h"
#include "eval/cpu_backend.h"
#include "eval/lockstep.h"
#include "eval/memory_plan.h"
#include "eval/reference_store.h"
#include "eval/run_document.h"
#include "eval/vram_catalog.h"
#include "model/gguf.h"
#include "model/load.h"
#include "model/model_catalog.h"
#include "quant/awq_format.h"
#include "quant/gguf_quantize.h"
#include "quant/gptq_format.h"
#ifdef QB_HAVE_CUDA
#include "gpu/awq_search_cuda.h"
#include "gpu/cuda_backend.h"
#include "kernels/device_probe.h"
#endif

namespace qb {

std::vector<MethodSpec> parse_methods(const std::string& list, int default_bits, int default_group) {
  static const std::regex spec_re(
      R"(^(fp16|rtn|awq|gptq|rtn-keep)(?::(act|weight|random):([0-9]+(?:\.[0-9]+)?)%)?(?::w([0-9]+)(?:g(-1|[0-9]+))?)?$)");
  static const std::regex gguf_re(R"(^gguf:([a-z0-9_]+)$)");
  std::vector<MethodSpec> out;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(begin, end - begin);
    begin = end + 1;
    std::smatch m;
    if (std::regex_match(item, m, gguf_re)) {
      MethodSpec s;
      s.family = MethodFamily::Gguf;
      s.gguf_type = m[1];
      out.push_back(s);
      continue;
    }
    const bool matched = std::regex_match(item, m, spec_re);
    if (!matched || m[2].matched != (m[1] == "rtn-keep"))
      fail("methods", "'" + item + "' is not fp16, rtn, awq, gptq, rtn-keep:<act|weight|random>:<percent>% (optionally "
                      "with :w<bits>[g<group>], e.g. awq:w3g128, rtn-keep:act:1%:w3) or gguf:<type> (e.g. gguf:q4_k_m)");
    MethodSpec s;
    s.family = m[1] == "fp16"   ? MethodFamily::Fp16
               : m[1] == "rtn"  ? MethodFamily::Rtn
               : m[1] == "awq"  ? MethodFamily::Awq
               : m[1] == "gptq" ? MethodFamily::Gptq
                                : MethodFamily::RtnKeep;
    if (m[2].matched) {
      s.keep_by = m[2] == "act" ? KeepBy::Act : m[2] == "weight" ? KeepBy::Weight : KeepBy::Random;
      s.keep_fraction = std::stod(m[3]) / 100;
      if (!(s.keep_fraction > 0 && s.keep_fraction <= 1))
        fail("methods", "'" + item + "': the kept percentage must be in (0, 100]");
    }
    s.bits = m[4].matched ? std::stoi(m[4]) : default_bits;
    s.group_size = m[5].matched ? std::stoi(m[5]) : default_group;
    out.push_back(s);
  }
  return out;
}

namespace {

// ---- plan: inputs checked and loaded, windows cut, device chosen -------------------------------

struct EvalPlan {
  Model source;  // as loaded, in its own dtypes
  std::string tokenizer_path;
  std::unique_ptr<Tokenizer> tokenizer;
  TextDataset dataset;
  size_t dataset_tokens = 0;
  ProtocolOptions protocol;  // as run: ctx capped at the model's max_seq_len
  std::vector<Window> windows;  // this shard's (all of them without --shard)
  ShardRange shard;
  Device device = Device::Cpu;
  std::vector<MethodSpec> specs;  // the FP16 reference first, then every other method once
};

// The device for --device cpu|cuda|auto: auto takes the GPU when one is usable.
Device resolve_device(DeviceChoice requested) {
  if (requested == DeviceChoice::Cpu) return Device::Cpu;
#ifdef QB_HAVE_CUDA
  const std::string why = kernels::cuda_unavailable_reason();
  if (why.empty()) return Device::Cuda;
  if (requested == DeviceChoice::Cuda) fail("device", why);
  std::fprintf(stderr, "note: evaluating on the CPU (%s)\n", why.c_str());
#else
  if (requested == DeviceChoice::Cuda)
    fail("device", "this build has no CUDA backend (configure with -DQUANTBENCH_CUDA=ON)");
#endif
  return Device::Cpu;
}

bool is_gguf_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

// The vocabulary a GGUF file stores, tokenized as llama.cpp does (only SentencePiece-style
// "llama" vocabularies; another is an error that asks for --tokenizer).
std::unique_ptr<Tokenizer> gguf_tokenizer(const std::string& path) {
  GgufVocab g = read_gguf_vocab(GgufFile(path));
  if (g.model != "llama")
    fail(path, "tokenizer.ggml.model is '" + g.model +
                   "'; only SentencePiece ('llama') vocabularies are tokenized as llama.cpp does; name a tokenizer "
                   "with --tokenizer");
  LlamaVocab v;
  v.source = path;
  const size_t n = g.tokens.size();
  v.tokens = std::move(g.tokens);
  // llama.cpp's defaults for what a file leaves out: scores 0, every token normal, and the SPM
  // special ids <unk> 0, <s> 1, </s> 2.
  v.scores = g.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(g.scores);
  v.token_types.assign(g.token_types.begin(), g.token_types.end());
  if (v.token_types.empty()) v.token_types.assign(n, LlamaVocab::Normal);
  v.bos_id = g.bos_id >= 0 ? g.bos_id : 1;
  v.eos_id = g.eos_id >= 0 ? g.eos_id : 2;
  v.unk_id = g.unk_id >= 0 ? g.unk_id : 0;
  v.add_bos = g.add_bos;
  v.add_space_prefix = g.add_space_prefix;
  return std::make_unique<LlamaSpmTokenizer>(std::move(v));
}

// A GGUF loaded beside another model must share the vocabulary its tokens are scored against.
void require_same_vocab(const std::string& gguf_path, const Tokenizer& tokenizer) {
  const std::vector<std::string> gguf_tokens = read_gguf_vocab(GgufFile(gguf_path)).tokens;
  const std::string against = " differs from the tokenizer in use (" + tokenizer.path() + ")";
  if (static_cast<int>(gguf_tokens.size()) != tokenizer.vocab_size())
    fail(gguf_path, "vocabulary of " + std::to_string(gguf_tokens.size()) + " tokens" + against + ", which has " +
                        std::to_string(tokenizer.vocab_size()));
  const std::vector<std::string> pieces = tokenizer.pieces();
  for (size_t i = 0; i < pieces.size(); ++i)
    if (pieces[i] != gguf_tokens[i])
      fail(gguf_path, "vocabulary" + against + ": token " + std::to_string(i) + " is '" + gguf_tokens[i] +
                          "' here and '" + pieces[i] + "' there");
}

EvalPlan plan_eval(const EvalOptions& o) {
  validate_protocol(o.protocol);
  EvalPlan p;
  p.source = load_model(o.model_path);
  check_finite(p.source);
  const LlamaConfig& c = p.source.config;
  const bool llama_cpp = o.protocol.kind == ProtocolKind::LlamaCpp;
  // A GGUF carries its own vocabulary: --model x.gguf tokenizes with it in any protocol, and the
  // llama.cpp protocol with the first GGUF among --model and --load, unless --tokenizer names one.
  std::string gguf_vocab = o.tokenizer_path.empty() && p.source.format == "gguf" ? o.model_path : "";
  if (o.tokenizer_path.empty() && gguf_vocab.empty() && llama_cpp)
    for (const MethodSpec& s : o.methods)
      if (is_gguf_path(s.checkpoint_dir)) {
        gguf_vocab = s.checkpoint_dir;
        break;
      }
  if (!gguf_vocab.empty()) {
    p.tokenizer_path = gguf_vocab;
    p.tokenizer = gguf_tokenizer(gguf_vocab);
  } else {
    p.tokenizer_path = o.tokenizer_path.empty() ? tokenizer_beside(o.model_path, c.vocab_size) : o.tokenizer_path;
    if (p.tokenizer_path.empty()) fail(o.model_path, "no tokenizer.json or tokenizer.model beside the model; name one with --tokenizer");
    p.tokenizer = open_tokenizer(p.tokenizer_path);
  }
  p.tokenizer->require_vocab_size(c.vocab_size);
  for (const MethodSpec& s : o.methods)
    if (is_gguf_path(s.checkpoint_dir)) require_same_vocab(s.checkpoint_dir, *p.tokenizer);

  // llama-perplexity -f reads the file's bytes and drops one trailing newline.
  p.dataset = load_text_dataset(o.dataset_path, llama_cpp && o.dataset_format == DatasetFormat::Auto
                                                    ? DatasetFormat::Text
                                                    : o.dataset_format);
  if (llama_cpp && p.dataset.format == DatasetFormat::Text && p.dataset.text.back() == '\n') {
    p.dataset.text.pop_back();
    p.dataset.preprocessing = "the file's bytes, one trailing newline removed (as llama-perplexity -f reads it)";
  }
  const std::vector<int> text_tokens = p.tokenizer->encode(p.dataset.text);
  p.dataset_tokens = text_tokens.size();
  p.protocol = o.protocol;
  if (p.protocol.ctx > c.max_seq_len && llama_cpp) {
    // As llama-perplexity, which only warns ("model was trained on only N context tokens").
    std::fprintf(stderr, "note: --ctx %d exceeds the model's max_seq_len %d; not capped (llama.cpp protocol)\n",
                 p.protocol.ctx, c.max_seq_len);
  } else if (p.protocol.ctx > c.max_seq_len) {
    std::fprintf(stderr, "note: --ctx %d capped at the model's max_seq_len %d\n", p.protocol.ctx, c.max_seq_len);
    p.protocol.ctx = c.max_seq_len;
    if (p.protocol.stride >= p.protocol.ctx) p.protocol.stride = 0;
  }
  check_window_length(c, p.protocol.ctx, o.model_path);
  p.windows = plan_windows(text_tokens, p.tokenizer->bos_id(), p.protocol, p.dataset.path);
  p.shard = shard_range(o.shard, p.windows.size());
  p.windows.erase(p.windows.begin() + p.shard.end, p.windows.end());
  p.windows.erase(p.windows.begin(), p.windows.begin() + p.shard.begin);
  // llama.cpp's CPU arithmetic is emulated by the CPU backend only.
  if (o.activations == Activations::LlamaCpp && o.device == DeviceChoice::Cuda)
    fail("activations", "llama.cpp arithmetic runs on the CPU backend only; use --device cpu or auto");
  p.device = o.activations == Activations::LlamaCpp ? Device::Cpu : resolve_device(o.device);  // after the inputs are known to be good

  p.specs.push_back(MethodSpec{});  // the FP16 reference
  for (const MethodSpec& s : o.methods)
    if (s.family != MethodFamily::Fp16 || !s.checkpoint_dir.empty()) p.specs.push_back(s);
  return p;
}

// ---- methods: each weight format built -------------------------------------------------------

struct PreparedMethod {
  std::string family, label;
  int bits = 16, group_size = 0;  // the setting, for the catalog projection
  Model model;
  nlohmann::json quantization;    // null for fp16
  nlohmann::json layers;          // per-layer quantization report, or null
  std::unique_ptr<LogitsBackend> backend;
};

// A quantized checkpoint's family and settings: those its quantize_report.json records when
// quantbench wrote it, else what its format and weights show (an AutoAWQ checkpoint: AWQ, a GPTQ
// one: GPTQ; clip and calibration unknown).
void describe_checkpoint(const std::string& dir, PreparedMethod& r) {
  const std::string report_path = dir + "/quantize_report.json", where = report_path + ": quantization";
  nlohmann::json q;
  if (file_exists(report_path)) {
    const nlohmann::json report = read_json_file(report_path);
    if (report.contains("quantization") && report["quantization"].is_object()) {
      q = report["quantization"];
      // Checked here, where the file is named: prepare_method reads them back.
      json_field<int>(q, where, "bits");
      json_field<int>(q, where, "group_size");
    }
  }
  if (q.is_null()) {
    const Linear& first = r.model.layers.at(0).q_proj;
    if (!first.quant) fail(dir, "model.layers.0.self_attn.q_proj is not quantized");
    const QuantizedWeight& w = *first.quant;
    q = {{"bits", w.bits}, {"group_size", w.group_size == w.k ? -1 : w.group_size}, {"zero_point", true}};
  }
  q["checkpoint"] = dir;
  r.family = json_field_or<std::string>(q, where, "method", r.model.format == "gptq-safetensors" ? "gptq" : "awq");
  r.label = r.family + " (" + dir + ")";
  r.quantization = q;
}

// A GGUF file's family and settings: its llama.cpp file type (general.file_type, named as
// llama-quantize names it) and how many tensors each ggml type stores; an unquantized file (F32,
// F16, BF16) carries no quantization.
void describe_gguf(const GgufFile& file, PreparedMethod& r) {
  const std::string& path = file.path();
  const int64_t ftype = file.get_int_or("general.file_type", -1);
  nlohmann::json tensor_types = nlohmann::json::object();
  for (const GgufTensorInfo& t : file.tensors()) {
    nlohmann::json& count = tensor_types[ggml::type_name(t.type)];
    count = count.is_null() ? 1 : count.get<int>() + 1;
  }
  std::string type = ftype == 0 ? "f32" : ftype == 1 ? "f16" : ftype == 32 ? "bf16" : "";
  for (const GgufFileType& t : gguf_file_types())
    if (static_cast<int64_t>(t.ftype) == ftype) {
      type = t.name;
      const ggml::Type d = t.default_type;  // its blocks store a minimum (an affine zero point) or not
      const bool zero_point = d == ggml::Type::Q4_1 || d == ggml::Type::Q5_1 || d == ggml::Type::Q2_K ||
                              d == ggml::Type::Q4_K || d == ggml::Type::Q5_K;
      r.quantization = {{"method", family_name(MethodFamily::Gguf)}, {"type", t.name}, {"ftype", ftype},
                        {"bits", t.bits}, {"group_size", ggml::block_elems(d)}, {"zero_point", zero_point},
                        {"symmetric", !zero_point}, {"checkpoint", path}, {"tensor_types", tensor_types}};
    }
  if (type.empty()) type = "ftype " + std::to_string(ftype);
  for (char& ch : type) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  r.family = family_name(MethodFamily::Gguf);
  r.label = "gguf " + type + " (" + path + ")";
}

// A loaded model (a GGUF file, a quantized checkpoint) must be the evaluated model's shape.
void require_same_shape(const std::string& path, const std::string& what, const LlamaConfig& got,
                        const LlamaConfig& want) {
  if (got.hidden_size != want.hidden_size || got.n_layers != want.n_layers || got.vocab_size != want.vocab_size)
    fail(path, what + "'s config does not match the model being evaluated");
}

PreparedMethod prepare_method(const MethodSpec& spec, const Model& fp16, const EvalOptions& o,
                              const Tokenizer& tokenizer) {
  PreparedMethod r;
  if (is_gguf_path(spec.checkpoint_dir)) {
    std::fprintf(stderr, "preparing gguf %s\n", spec.checkpoint_dir.c_str());
    const GgufFile file(spec.checkpoint_dir);  // parsed once for the weights and the description
    r.model = load_gguf_model(file);
    require_same_shape(spec.checkpoint_dir, "GGUF model", r.model.config, fp16.config);
    describe_gguf(file, r);
  } else if (!spec.checkpoint_dir.empty()) {
    std::fprintf(stderr, "preparing checkpoint %s\n", spec.checkpoint_dir.c_str());
    // The format by its config: quant_method "gptq" (or a quantize_config.json) is GPTQ, else AutoAWQ.
    r.model = is_gptq_checkpoint(spec.checkpoint_dir) ? load_gptq_checkpoint(spec.checkpoint_dir)
                                                      : load_awq_checkpoint(spec.checkpoint_dir);
    require_same_shape(spec.checkpoint_dir, "quantized checkpoint", r.model.config, fp16.config);
    describe_checkpoint(spec.checkpoint_dir, r);
  } else if (spec.family == MethodFamily::Fp16) {
    r.family = family_name(spec.family);
    r.label = r.family;
    std::fprintf(stderr, "preparing %s\n", r.label.c_str());
    r.model = fp16;
  } else if (spec.family == MethodFamily::Gguf) {
    r.family = family_name(spec.family);
    r.label = r.family + " " + spec.gguf_type;  // "gguf q4_k_m": the mix names bits and blocks
    std::fprintf(stderr, "preparing %s\n", r.label.c_str());
    QuantizeOptions q = o.quantize;
    q.family = spec.family;
    q.gguf_type = spec.gguf_type;
    QuantizeResult res = quantize_model(fp16, q, nullptr);
    r.model = std::move(res.model);
    r.quantization = std::move(res.quantization);
    r.layers = std::move(res.layers);
  } else {
    r.family = family_name(spec.family);
    const bool keep = spec.family == MethodFamily::RtnKeep;
    r.label = method_label(r.family, spec.bits, spec.group_size,
                           keep ? keep_label(keep_by_name(spec.keep_by), spec.keep_fraction) : "");
    std::fprintf(stderr, "preparing %s\n", r.label.c_str());
    QuantizeOptions q = o.quantize;
    q.family = spec.family;
    q.keep_by = spec.keep_by;
    q.keep_fraction = spec.keep_fraction;
    q.bits = spec.bits;
    q.group_size = spec.group_size;
    q.eval_path = o.dataset_path;
    if (q.family == MethodFamily::Awq && !q.awq_device.search) q.awq_device = awq_device_for(o.device);
    QuantizeResult res = quantize_model(fp16, q, &tokenizer);
    r.model = std::move(res.model);
    r.quantization = std::move(res.quantization);
    r.layers = std::move(res.layers);
  }
  if (!r.quantization.is_null()) {
    r.bits = r.quantization.at("bits").get<int>();
    r.group_size = r.quantization.at("group_size").get<int>();
  }
  check_finite(r.model);
  return r;
}

// ---- run: backends in lockstep ----------------------------------------------------------------

std::unique_ptr<LogitsBackend> make_backend(Device device, const Model& m, Activations activations, bool offload) {
#ifdef QB_HAVE_CUDA
  if (device == Device::Cuda) return make_cuda_backend(m, 0, offload ? CudaWeights::Offload : CudaWeights::Auto);
#else
  (void)device;  // resolve_device never picks CUDA without the CUDA backend
  (void)offload;
#endif
  return make_cpu_backend(m, activations);
}

// Every method on one device (KL compares logits where they are). With --device auto, weights the
// GPU kernels cannot take (e.g. 3-bit, or out_features not a multiple of 8) send the whole run to
// the CPU, said in one line; with --device cuda they are an error. Returns the device used.
Device make_backends(std::vector<PreparedMethod>& methods, Device device, DeviceChoice requested,
                     Activations activations, bool offload) {
  try {
    for (auto& r : methods) r.backend = make_backend(device, r.model, activations, offload);
  } catch (const Error& e) {
    if (requested != DeviceChoice::Auto || device == Device::Cpu) throw;
    std::fprintf(stderr, "note: evaluating on the CPU: %s\n", e.what());
    device = Device::Cpu;
    for (auto& r : methods) r.backend = make_backend(device, r.model, activations, offload);
  }
  return device;
}

// One evaluated method for the run document, and its setting for the catalog projection.
void record_method(PreparedMethod& r, LockstepSums sums, std::vector<EvaluatedMethod>& evaluated,
                   std::vector<VramSetting>& settings) {
  evaluated.push_back({r.family, r.label, r.quantization, r.layers, r.model.weight_bytes_by_dtype(),
                       r.backend->device(), r.backend->memory(), std::move(sums)});
  // The catalog projection counts plain quantized linears; it has no model of kept FP16 columns,
  // nor of llama.cpp's per-tensor type mixes (gguf).
  if (r.family != family_name(MethodFamily::RtnKeep) && r.family != family_name(MethodFamily::Gguf))
    settings.push_back({method_label(r.family, r.bits, r.group_size), r.bits, r.group_size});
}

// Bytes of a checkpoint as stored: a GGUF file, or a directory's safetensors files.
size_t checkpoint_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (is_gguf_path(path)) return static_cast<size_t>(fs::file_size(path, ec));
  size_t total = 0;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".safetensors") total += static_cast<size_t>(it->file_size(ec));
  return total;
}

// What eval/memory_plan.h needs, from the plan's config, windows and methods.
MemoryPlanInputs memory_plan_inputs(const EvalPlan& plan, const EvalOptions& o) {
  MemoryPlanInputs in;
  const Model& source = plan.source;
  in.config = source.config;
  // The reference as stored; an F32 source gets an F16 copy too (to_fp16).
  in.fp16_weight_bytes = source.weight_bytes();
  for (const auto& [dtype, bytes] : source.weight_bytes_by_dtype())
    if (dtype == "F32") {
      in.fp16_weight_bytes += static_cast<size_t>(source.parameter_count()) * 2;
      break;
    }
  // What the quantizer needs beside the weights, as `quantize` plans it: the largest over methods.
  auto plan_quantizer = [&](const MethodSpec& s) {
    QuantizeOptions q = o.quantize;
    q.family = s.family;
    q.bits = s.bits;
    q.group_size = s.group_size;
    q.keep_by = s.keep_by;
    const QuantizeMemoryPlan plan = plan_quantize_memory(source, q);
    in.quantization_bytes = std::max(in.quantization_bytes, plan.block + plan.activations);
  };
  for (size_t i = 1; i < plan.specs.size(); ++i) {
    const MethodSpec& s = plan.specs[i];
    PlannedMethod m;
    if (!s.checkpoint_dir.empty()) {
      m = {s.checkpoint_dir, checkpoint_bytes(s.checkpoint_dir)};
    } else if (s.family == MethodFamily::Gguf) {
      const GgufFileType& t = gguf_file_type(s.gguf_type);
      m = {"gguf " + s.gguf_type, quantized_linear_bytes(in.config, t.bits, ggml::block_elems(t.default_type))};
      plan_quantizer(s);
    } else {
      const bool keep = s.family == MethodFamily::RtnKeep;
      m.label = method_label(family_name(s.family), s.bits, s.group_size,
                             keep ? keep_label(keep_by_name(s.keep_by), s.keep_fraction) : "");
      m.weight_bytes = quantized_linear_bytes(in.config, s.bits, s.group_size, keep ? s.keep_fraction : 0);
      plan_quantizer(s);
    }
    in.methods.push_back(m);
  }
  for (const Window& w : plan.windows) {
    in.ctx = std::max(in.ctx, static_cast<int>(w.tokens.size()));
    in.scored_tokens += w.tokens.size() - w.first_scored;
  }
  return in;
}

// The run document's reference fields of a sequential run: the store and its KL error bound (the
// largest over methods of the mean per-target bound, which bounds the error of each kl_mean; and
// the largest per-target bound, which bounds any percentile's).
nlohmann::json stored_reference_json(const ReferenceStore& store, const std::vector<EvaluatedMethod>& evaluated) {
  double mean_bound = 0.0, max_bound = 0.0;
  for (const EvaluatedMethod& m : evaluated)
    if (m.sums.kl.n) {
      mean_bound = std::max(mean_bound, m.sums.kl_error_bound_sum / m.sums.kl.n);
      max_bound = std::max(max_bound, m.sums.kl_error_bound_max);
    }
  return {{"store", ReferenceStore::description()},
          {"store_bytes", store.bytes()},
          {"bytes_per_token", ReferenceStore::record_bytes(store.vocab())},
          {"kl_error_bound", mean_bound},
          {"kl_error_bound_max_token", max_bound}};
}

// The GPU's probe (measured peaks included) for the run document, or null on the CPU.
nlohmann::json device_json_for(Device device) {
#ifdef QB_HAVE_CUDA
  if (device == Device::Cuda) return kernels::device_json(kernels::probe_device(0));
#else
  (void)device;
#endif
  return nullptr;
}

}  // namespace

AwqDevice awq_device_for(DeviceChoice device) {
  if (device == DeviceChoice::Cpu) return {};
#ifdef QB_HAVE_CUDA
  const std::string why = kernels::cuda_unavailable_reason();
  if (why.empty()) {
    std::fprintf(stderr, "awq: block forwards and searches on the GPU\n");
    return make_cuda_awq(0);
  }
  if (device == DeviceChoice::Cuda) fail("device", why);
#else
  if (device == DeviceChoice::Cuda)
    fail("device", "this build has no CUDA backend (configure with -DQUANTBENCH_CUDA=ON)");
#endif
  return {};
}

nlohmann::json run_eval(const EvalOptions& o) {
  // Measured before the source is loaded: what the plan below may use.
  const size_t available = o.memory_budget_bytes ? o.memory_budget_bytes : available_memory_bytes();
  EvalPlan plan = plan_eval(o);
  const MemoryPlanInputs plan_inputs = memory_plan_inputs(plan, o);
  const MemoryPlan memory = plan_eval_memory(plan_inputs);
  const std::string store_dir = reference_store_dir(o.scratch_dir);
  std::error_code ec;
  const std::filesystem::space_info disk = std::filesystem::space(store_dir, ec);
  const ModeChoice choice = choose_eval_mode(o.mode, memory, available, ec ? 0 : disk.available, store_dir);
  std::fprintf(stderr, "%s\n", memory_plan_line(plan_inputs, memory, choice, available).c_str());

  // The FP16 reference always runs first: deltas, KL and agreement are measured against it.
  const Model fp16 = to_fp16(plan.source);
  std::vector<EvaluatedMethod> evaluated;
  std::vector<VramSetting> settings;
  Device device = plan.device;
  nlohmann::json reference = {{"mode", eval_mode_name(choice.mode)}};
  if (choice.mode == EvalMode::Lockstep) {
    std::vector<PreparedMethod> methods;
    for (const MethodSpec& s : plan.specs) methods.push_back(prepare_method(s, fp16, o, *plan.tokenizer));
    device = make_backends(methods, plan.device, o.device, o.activations, o.offload);

    std::vector<LogitsBackend*> backends;
    std::vector<std::string> labels;
    for (auto& r : methods) {
      backends.push_back(r.backend.get());
      labels.push_back(r.label);
    }
    std::vector<LockstepSums> sums = run_lockstep(plan.windows, backends, labels);
    for (size_t i = 0; i < methods.size(); ++i) record_method(methods[i], std::move(sums[i]), evaluated, settings);
  } else {
    // One method at a time: prepared, run over every window, recorded and dropped before the next.
    // Each method takes the GPU if it can (make_backends' fallback, per method): KL is scored on
    // the host against the stored reference, so methods need not share a device.
    ReferenceStore store(store_dir, plan.source.config.vocab_size);
    bool on_gpu = false;
    for (size_t i = 0; i < plan.specs.size(); ++i) {
      std::vector<PreparedMethod> one;
      one.push_back(prepare_method(plan.specs[i], fp16, o, *plan.tokenizer));
      on_gpu = make_backends(one, plan.device, o.device, o.activations, o.offload) == Device::Cuda || on_gpu;
      PreparedMethod& r = one.front();
      LockstepSums sums = i == 0 ? run_reference_to_store(plan.windows, *r.backend, r.label, store)
                                 : run_against_store(plan.windows, *r.backend, r.label, store);
      record_method(r, std::move(sums), evaluated, settings);
    }
    device = on_gpu ? Device::Cuda : Device::Cpu;
    reference.update(stored_reference_json(store, evaluated));
  }

  EvalResults results;
  results.tool = tool_info();
  results.host = host_info();
  results.created = utc_timestamp();
  results.device = device_json_for(device);
  results.model = &plan.source;
  results.tokenizer_path = plan.tokenizer_path;
  results.tokenizer_vocab_size = plan.tokenizer->vocab_size();
  results.tokenizer_bos_id = plan.tokenizer->bos_id();
  results.tokenizer_kind = plan.tokenizer->kind();
  results.activations = o.activations;
  results.dataset = &plan.dataset;
  results.dataset_tokens = plan.dataset_tokens;
  results.protocol = plan.protocol;
  results.windows = plan.windows.size();
  results.shard = plan.shard;
  results.methods = std::move(evaluated);
  results.vram_catalog =
      vram_catalog(load_catalog_models(o.catalog_path.empty() ? QB_DEFAULT_CATALOG : o.catalog_path), settings);
  nlohmann::json document = eval_run_document(results);
  // How the reference was compared and the plan that chose it (reports/SCHEMA.md, 1.1).
  document["reference"] = reference;
  document["memory_plan"] = memory_plan_json(plan_inputs, memory, o.mode, choice, available);
  return document;
}

}  // namespace qb
