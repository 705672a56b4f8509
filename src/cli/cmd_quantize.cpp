// quantbench quantize: RTN or AWQ weights of a model, written as an AutoAWQ gemm checkpoint
// directory (quant/awq_format.h), or GPTQ weights written in the GPTQ format (quant/gptq_format.h),
// with a per-layer report (quantize_report.json); or one of llama.cpp's types and mixes
// (gguf:<type>, quant/gguf_quantize.h) written as the GGUF file llama-quantize would write.
#include <cstdio>
#include <filesystem>
#include <memory>

#include <sentencepiece_processor.h>

#include "cli/commands.h"
#include "common/error.h"
#include "common/files.h"
#include "common/host_info.h"
#include "common/labels.h"
#include "common/memory.h"
#include "datasets/tokenizer.h"
#include "jobs/eval_job.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/block_linears.h"
#include "model/load.h"
#include "quant/awq_format.h"
#include "quant/gguf_quantize.h"
#include "quant/gptq_format.h"
#include "quant/hf_checkpoint.h"
#include "quant/quantize.h"

namespace qb::cli {
namespace {

// The vocabulary convert_hf_to_gguf.py writes for a SentencePiece Llama: every piece with its
// score and type (unknown, control, unused, byte, else normal), padded with "[PAD<i>]" unused
// tokens up to the model's vocab_size; special ids from config.json (bos/eos/unk_token_id) and
// add_bos/add_eos from tokenizer_config.json beside the model, when those files say so.
GgufVocabularyOut sentencepiece_vocabulary(const std::string& tokenizer_model, const std::string& model_dir,
                                           int vocab_size) {
  sentencepiece::SentencePieceProcessor sp;
  if (const auto status = sp.Load(tokenizer_model); !status.ok()) fail(tokenizer_model, status.ToString());
  GgufVocabularyOut v;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    v.token_types.push_back(sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsUnused(i) ? 5 : sp.IsByte(i) ? 6 : 1);
  }
  for (int i = sp.GetPieceSize(); i < vocab_size; ++i) {
    v.tokens.push_back("[PAD" + std::to_string(i) + "]");
    v.scores.push_back(-1000.0f);
    v.token_types.push_back(5);
  }
  if (const std::string config = model_dir + "/config.json"; file_exists(config)) {
    const nlohmann::json j = read_json_file(config);
    auto id = [&](const char* key) { return j.contains(key) && j[key].is_number_integer() ? j[key].get<int>() : -1; };
    v.bos_id = id("bos_token_id");
    v.eos_id = id("eos_token_id");
    v.unk_id = id("unk_token_id");
  }
  if (const std::string tc = model_dir + "/tokenizer_config.json"; file_exists(tc)) {
    const nlohmann::json j = read_json_file(tc);
    if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) v.add_bos = j["add_bos_token"].get<bool>();
    if (j.contains("add_eos_token") && j["add_eos_token"].is_boolean()) v.add_eos = j["add_eos_token"].get<bool>();
  }
  return v;
}

// quantize_report.json: what was quantized, how, and the bytes before and after. The bytes before
// are the quantizer's input: `input` (the FP16 copy) when given, else the source as stored, under
// `input_name`; after: quantized_bytes.
nlohmann::json quantize_report(const std::string& model_path, const Model& source, const std::string& tokenizer_path,
                               const QuantizeResult& result, size_t quantized_bytes, const char* input_name,
                               const Model* input = nullptr) {
  return {{"schema", "quantbench.quantize"},
          {"schema_version", "1.0"},
          {"created", utc_timestamp()},
          {"tool", tool_info()},
          {"host", host_info()},
          {"model", {{"path", model_path}, {"format", source.format}}},
          {"tokenizer", tokenizer_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(tokenizer_path)},
          {"quantization", result.quantization},
          {"weight_bytes", {{input_name, (input ? *input : source).weight_bytes()}, {"quantized", quantized_bytes}}},
          {"layers", result.layers},
          {"blocks", result.blocks}};
}

// gguf:<type>: quantizes as llama-quantize does and writes the GGUF. A GGUF source keeps its
// metadata (llama-quantize's copy); another source gets convert_hf_to_gguf.py's.
int run_quantize_gguf(const QuantizeOptions& options, const std::string& model_path, std::string tokenizer_path,
                      const std::string& out, const std::string& report_path) {
  if (out.empty() && report_path.empty()) fail("quantize", "nothing to write: give --out FILE.gguf and/or --report FILE");
  if (!out.empty() && (file_exists(out) || is_directory(out)))
    fail(out, "already exists; remove it or choose another output file");
  const GgufFileType& ft = gguf_file_type(options.gguf_type);
  std::unique_ptr<GgufFile> gguf_source;
  if (!is_directory(model_path) && std::filesystem::path(model_path).extension() == ".gguf")
    gguf_source = std::make_unique<GgufFile>(model_path);
  const Model source = gguf_source ? load_gguf_model(*gguf_source) : load_model(model_path);
  check_finite(source);
  // llama-quantize widens what the file stores (F32 or F16) and quantizes that: no FP16 step.
  const QuantizeResult result = quantize_model(source, options, nullptr);
  GgufMetadata metadata;
  if (gguf_source) {
    metadata = gguf_source->metadata();
  } else {
    if (tokenizer_path.empty()) tokenizer_path = tokenizer_beside(model_path, source.config.vocab_size);
    const bool spm = std::filesystem::path(tokenizer_path).extension() == ".model";
    GgufVocabularyOut vocab;
    if (spm) {
      const std::string dir = is_directory(model_path) ? model_path : std::filesystem::path(model_path).parent_path().string();
      vocab = sentencepiece_vocabulary(tokenizer_path, dir, source.config.vocab_size);
    } else {
      std::fprintf(stderr, "note: no SentencePiece tokenizer.model: the GGUF has no tokenizer.ggml.* vocabulary\n");
    }
    const std::string name = std::filesystem::path(model_path).filename().string();
    metadata = llama_gguf_metadata(source, name, 1, spm ? &vocab : nullptr);
  }
  set_quantized_file_type(metadata, ft.ftype);
  const nlohmann::json report =
      quantize_report(model_path, source, tokenizer_path, result, result.model.weight_bytes(), "source");
  if (!report_path.empty()) write_file_atomic(report_path, report.dump(2) + "\n");
  if (!out.empty()) write_gguf(out, metadata, gguf_tensors_of(result.model));
  for (const auto& f : result.quantization.at("fallbacks"))
    std::fprintf(stderr, "note: %s: %lld columns are not whole %s blocks: using fallback quantization %s\n",
                 f.at("tensor").get<std::string>().c_str(), f.at("cols").get<long long>(),
                 f.at("wanted").get<std::string>().c_str(), f.at("used").get<std::string>().c_str());
  std::printf("gguf %s: %zu -> %zu weight bytes; wrote %s\n", ft.name, source.weight_bytes(),
              result.model.weight_bytes(),
              (out.empty() ? report_path : report_path.empty() ? out : out + " and " + report_path).c_str());
  return 0;
}

// Gives back the pages of a mapped tensor once it has been used (common/memory.h): the source
// model's tensors are all file mappings (model/load.h), so a later read would only fault them in again.
void release_pages(const Tensor& t) {
  if (t.data) release_mapped_range(t.data, t.nbytes());
}

void release_block_pages(const LayerWeights& l) {
  release_pages(l.attn_norm);
  release_pages(l.mlp_norm);
  for (const Linear* linear : block_linears(l)) {
    release_pages(linear->dense);
    release_pages(linear->bias);
  }
}

// check_finite of the tensors outside the blocks, their pages given back after; each block is
// checked when it is quantized (check_block_finite), while its pages are in memory anyway.
void check_finite_outside_blocks(const Model& source) {
  Model part = source;
  part.layers.clear();
  check_finite(part);
  for (const Tensor* t : {&source.embed_tokens, &source.norm, &source.lm_head}) release_pages(*t);
}

void check_block_finite(const LayerWeights& l) {
  Model part;
  part.layers = {l};
  check_finite(part);
}

// The memory plan, printed; an error before any work when it does not fit.
void check_memory_plan(const Model& source, const QuantizeOptions& options) {
  const QuantizeMemoryPlan plan = plan_quantize_memory(source, options);
  const size_t available = available_memory_bytes();
  std::string line = "quantize: needs ~" + format_gb(plan.total()) + ": one block " + format_gb(plan.block) +
                     ", calibration activations " + format_gb(plan.activations) + ", embeddings " +
                     format_gb(plan.embeddings);
  if (plan.fp16_copy) line += ", FP16 copy of the source " + format_gb(plan.fp16_copy);
  line += "; this machine has " + format_gb(available) + " available";
  std::fprintf(stderr, "%s\n", line.c_str());
  if (available > 0 && plan.total() > available)
    fail("quantize", "needs ~" + format_gb(plan.total()) + " of memory but " + format_gb(available) +
                         " is available (fewer --calib-samples or a shorter --calib-seq-len shrink the activations)");
}

// out: checkpoint directory ("" for none); report_path: the report alone ("" for none). Block by
// block: each quantized block goes to the checkpoint stream and is dropped, with the source
// block's mapped pages, so memory holds about one block (check_memory_plan).
int run_quantize(const QuantizeOptions& options, const std::string& model_path, std::string tokenizer_path,
                 const std::string& out, const std::string& report_path, uint64_t shard_bytes) {
  if (options.family == MethodFamily::Gguf) return run_quantize_gguf(options, model_path, tokenizer_path, out, report_path);
  if (out.empty() && report_path.empty()) fail("quantize", "nothing to write: give --out DIR and/or --report FILE");
  if (!out.empty() && (file_exists(out) || is_directory(out)))
    fail(out, "already exists; remove it or choose another output directory");
  if (is_awq_checkpoint(model_path) || is_gptq_checkpoint(model_path))
    fail(model_path, "is already a quantized checkpoint; quantize needs the FP16 model");
  const bool gptq = options.family == MethodFamily::Gptq;
  const Model source = load_model(model_path);
  check_memory_plan(source, options);
  check_finite_outside_blocks(source);
  // Refuse what the format cannot hold before a long calibration run.
  if (!out.empty() && gptq) check_gptq_storable(source.config, options.bits);
  if (!out.empty() && !gptq) check_awq_storable(source.config, options.bits, options.group_size);
  if (tokenizer_path.empty()) tokenizer_path = tokenizer_beside(model_path, source.config.vocab_size);
  std::unique_ptr<Tokenizer> tokenizer;
  if (options.family == MethodFamily::Awq || gptq) {
    if (tokenizer_path.empty())
      fail(model_path, std::string(family_name(options.family)) +
                           " needs --tokenizer (no tokenizer.json or tokenizer.model beside the model)");
    tokenizer = open_tokenizer(tokenizer_path);
    tokenizer->require_vocab_size(source.config.vocab_size);
  }
  const Model fp16 = to_fp16(source);
  std::unique_ptr<QuantizedCheckpointStream> stream;
  if (!out.empty()) {
    const int group = checkpoint_group_size(fp16.config, options.group_size);
    GptqWriteOptions gptq_settings;
    gptq_settings.desc_act = options.act_order;
    gptq_settings.damp_percent = options.gptq_damp;
    stream = std::make_unique<QuantizedCheckpointStream>(
        fp16.config, out,
        gptq ? gptq_checkpoint_format(options.bits, group, options.symmetric, gptq_settings)
             : awq_checkpoint_format(group),
        shard_bytes);
    stream->write_embeddings(fp16.embed_tokens);
    release_pages(source.embed_tokens);
  }
  size_t block_bytes = 0;  // the quantized blocks' weights as stored, counted as they pass
  const QuantizeResult result =
      quantize_model(fp16, options, tokenizer.get(), [&](int i, const LayerWeights& layer) {
        // Before anything of the block is written: the checkpoint never appears from a
        // non-finite source (an error removes the directory being written).
        check_block_finite(source.layers[i]);
        if (stream) stream->write_block(i, layer);
        Model counted;
        counted.layers = {layer};
        block_bytes += counted.weight_bytes();
        release_block_pages(source.layers[i]);
      });
  const size_t quantized_bytes = result.model.weight_bytes() + block_bytes;
  const nlohmann::json report =
      quantize_report(model_path, source, tokenizer_path, result, quantized_bytes, "fp16", &fp16);
  if (!report_path.empty()) write_file_atomic(report_path, report.dump(2) + "\n");
  if (stream) stream->finish(fp16.norm, fp16.lm_head, {tokenizer_path, report});
  std::printf("%s: %zu -> %zu weight bytes; wrote %s\n",
              method_label(family_name(options.family), options.bits, options.group_size).c_str(),
              fp16.weight_bytes(), quantized_bytes,
              (out.empty() ? report_path : report_path.empty() ? out : out + " and " + report_path).c_str());
  if (stream) {
    const std::vector<std::string>& shards = stream->shard_names();
    std::printf("%s: %zu shard%s\n", out.c_str(), shards.size(), shards.size() == 1 ? "" : "s");
  }
  std::fprintf(stderr, "quantize: peak RSS %s\n", format_gb(static_cast<double>(peak_rss_bytes())).c_str());
  return 0;
}

CommandRegistration reg{
    "quantize",
    "Quantize a model's block linears with RTN or AWQ and write an AutoAWQ-format (gemm, 4-bit) checkpoint\n"
    "(GPTQ: a GPTQ-format checkpoint as AutoGPTQ/GPTQModel write it)\n"
    "directory with quantize_report.json (per-layer alpha, clip ratio, weight and output errors); --report alone\n"
    "writes only the report, for widths and shapes the format cannot hold (3-bit, out_features not a multiple of 8).\n"
    "Example: quantbench quantize --model Llama-2-7b-hf --method awq --bits 4 --group 128 --calib pile-val.txt "
    "--out Llama-2-7b-awq-g128\n"
    "(stories260K's hidden size 172 is no multiple of 8, so it takes --report only.)\n"
    "gguf:<type> (q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_m, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k) quantizes as\n"
    "llama.cpp b4747's llama-quantize does (no imatrix) and writes the GGUF file: quantbench quantize --model M "
    "--method gguf:q4_k_m --out m-q4_k_m.gguf",
    [](CLI::App& app) -> std::function<int()> {
      struct Args {
        QuantizeOptions o;
        std::string model, tokenizer, out, report, shard_size = "5GB";
        bool no_clip = false;
        DeviceChoice device = DeviceChoice::Auto;
      };
      auto a = std::make_shared<Args>();
      app.add_option("--model", a->model, "FP16/FP32 model: an HF directory, a llama2.c .bin or (gguf:) an F16/F32 .gguf")
          ->required();
      app.add_option("--tokenizer", a->tokenizer,
                     "SentencePiece tokenizer.model or HF tokenizer.json (default: tokenizer.json, then tokenizer.model, "
                     "beside the model); copied into the output");
      auto set_method = [o = &a->o](const std::string& text) {
        if (text.rfind("gguf:", 0) == 0) {
          gguf_file_type(text.substr(5));  // fails naming the known types
          o->family = MethodFamily::Gguf;
          o->gguf_type = text.substr(5);
        } else if (text == "rtn" || text == "awq" || text == "gptq") {
          o->family = text == "rtn" ? MethodFamily::Rtn : text == "awq" ? MethodFamily::Awq : MethodFamily::Gptq;
        } else {
          throw CLI::ValidationError("--method", "'" + text + "' is not one of rtn, awq, gptq, gguf:<type>");
        }
      };
      app.add_option_function<std::string>(
             "--method",
             [set_method](const std::string& text) {
               try {
                 set_method(text);
               } catch (const Error& e) {
                 throw CLI::ValidationError("--method", e.what());
               }
             },
             "Quantizer family (rtn, awq, gptq, gguf:<type>; gptq writes the GPTQ format: 2, 4 or 8 bits; gguf a "
             "GGUF file)")
          ->required();
      app.add_option("--bits", a->o.bits, "Bits per weight (the AutoAWQ format holds 4 only)")->capture_default_str();
      app.add_option("--group", a->o.group_size, "Group size along the input dimension (-1: per output channel)")
          ->capture_default_str();
      app.add_flag("--symmetric", a->o.symmetric, "Symmetric quantization (zero point fixed at 2^(bits-1))");
      app.add_option("--calib", a->o.calib_path, "AWQ/GPTQ calibration text file (never the evaluation split)");
      app.add_option("--calib-samples", a->o.calib_samples, "AWQ/GPTQ calibration samples")->capture_default_str();
      app.add_option("--calib-seq-len", a->o.calib_seq_len, "AWQ/GPTQ calibration tokens per sample")
          ->capture_default_str();
      app.add_option("--eval-file", a->o.eval_path, "The evaluation file, refused as calibration text");
      app.add_flag("--no-clip", a->no_clip, "AWQ: skip the clipping search");
      app.add_option("--gptq-damp", a->o.gptq_damp,
                     "GPTQ: dampening, this fraction of the mean of diag(H) added to its diagonal")
          ->check(CLI::Range(0.0, 1.0))
          ->capture_default_str();
      app.add_flag("--act-order", a->o.act_order,
                   "GPTQ: quantize columns by descending diag(H) (desc_act), with static groups");
      app.add_flag("--chain-quantized", a->o.chain_quantized,
                   "AWQ: calibrate each block on the quantized previous blocks' output (default: the FP16 output, "
                   "as llm-awq)");
      app.add_flag("--force-calib", a->o.force_calib, "Allow calibrating on the --eval-file");
      add_choice(app, "--device", a->device,
                 {{"auto", DeviceChoice::Auto}, {"cpu", DeviceChoice::Cpu}, {"cuda", DeviceChoice::Cuda}},
                 "AWQ: where the calibration forwards and the scale and clip searches run (same decisions; auto "
                 "is the GPU when one is usable)");
      app.add_option("--out", a->out, "Output checkpoint directory, or (gguf:) .gguf file (must not exist)");
      app.add_option("--report", a->report, "Also (or only) write the quantize report JSON to this file");
      app.add_option("--shard-size", a->shard_size,
                     "Largest safetensors shard of the checkpoint (HF max_shard_size: 5GB, 500MB, 2GiB)")
          ->capture_default_str();
      app.callback([a]() {
        if (a->o.family == MethodFamily::Awq && a->o.calib_path.empty())
          throw CLI::ValidationError("--calib", "AWQ needs a calibration text (never the evaluation split)");
        if (a->o.family == MethodFamily::Gptq && a->o.calib_path.empty())
          throw CLI::ValidationError("--calib", "GPTQ needs a calibration text (never the evaluation split)");
      });
      return [a]() {
        QuantizeOptions o = a->o;
        o.clip = !a->no_clip;
        if (o.family == MethodFamily::Awq) o.awq_device = awq_device_for(a->device);
        return run_quantize(o, a->model, a->tokenizer, a->out, a->report, shard_size_flag(a->shard_size));
      };
    }};

}  // namespace
}  // namespace qb::cli
