// quantbench quantize: RTN or AWQ weights of a model, written as an AutoAWQ gemm checkpoint
// directory (quant/awq_format.h) with a per-layer report (quantize_report.json).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "common/error.h"
#include "common/files.h"
#include "common/host_info.h"
#include "common/labels.h"
#include "datasets/tokenizer.h"
#include "model/load.h"
#include "quant/awq_format.h"
#include "quant/quantize.h"

namespace qb::cli {
namespace {

// out: checkpoint directory ("" for none); report_path: the report alone ("" for none).
int run_quantize(const QuantizeOptions& options, const std::string& model_path, std::string tokenizer_path,
                 const std::string& out, const std::string& report_path) {
  if (out.empty() && report_path.empty()) fail("quantize", "nothing to write: give --out DIR and/or --report FILE");
  if (!out.empty() && (file_exists(out) || is_directory(out)))
    fail(out, "already exists; remove it or choose another output directory");
  if (is_awq_checkpoint(model_path)) fail(model_path, "is already an AWQ checkpoint; quantize needs the FP16 model");
  const Model source = load_model(model_path);
  check_finite(source);
  // Refuse what the format cannot hold before a long calibration run.
  if (!out.empty()) check_awq_storable(source.config, options.bits, options.group_size);
  if (tokenizer_path.empty()) tokenizer_path = tokenizer_beside(model_path, source.config.vocab_size);
  std::unique_ptr<Tokenizer> tokenizer;
  if (options.family == MethodFamily::Awq) {
    if (tokenizer_path.empty()) fail(model_path, "AWQ needs --tokenizer (no tokenizer.json or tokenizer.model beside the model)");
    tokenizer = open_tokenizer(tokenizer_path);
    tokenizer->require_vocab_size(source.config.vocab_size);
  }
  const Model fp16 = to_fp16(source);
  const QuantizeResult result = quantize_model(fp16, options, tokenizer.get());
  const nlohmann::json report = {{"schema", "quantbench.quantize"},
                                 {"schema_version", "1.0"},
                                 {"created", utc_timestamp()},
                                 {"tool", tool_info()},
                                 {"host", host_info()},
                                 {"model", {{"path", model_path}, {"format", source.format}}},
                                 {"tokenizer", tokenizer_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(tokenizer_path)},
                                 {"quantization", result.quantization},
                                 {"weight_bytes", {{"fp16", fp16.weight_bytes()}, {"quantized", result.model.weight_bytes()}}},
                                 {"layers", result.layers},
                                 {"blocks", result.blocks}};
  if (!report_path.empty()) write_file_atomic(report_path, report.dump(2) + "\n");
  if (!out.empty()) write_awq_checkpoint(result.model, out, {tokenizer_path, report});
  std::printf("%s: %zu -> %zu weight bytes; wrote %s\n",
              method_label(family_name(options.family), options.bits, options.group_size).c_str(),
              fp16.weight_bytes(), result.model.weight_bytes(),
              (out.empty() ? report_path : report_path.empty() ? out : out + " and " + report_path).c_str());
  return 0;
}

CommandRegistration reg{
    "quantize",
    "Quantize a model's block linears with RTN or AWQ and write an AutoAWQ-format (gemm, 4-bit) checkpoint\n"
    "directory with quantize_report.json (per-layer alpha, clip ratio, weight and output errors); --report alone\n"
    "writes only the report, for widths and shapes the format cannot hold (3-bit, out_features not a multiple of 8).\n"
    "Example: quantbench quantize --model Llama-2-7b-hf --method awq --bits 4 --group 128 --calib pile-val.txt "
    "--out Llama-2-7b-awq-g128\n"
    "(stories260K's hidden size 172 is no multiple of 8, so it takes --report only.)",
    [](CLI::App& app) -> std::function<int()> {
      struct Args {
        QuantizeOptions o;
        std::string model, tokenizer, out, report;
        bool no_clip = false;
      };
      auto a = std::make_shared<Args>();
      app.add_option("--model", a->model, "FP16/FP32 model: an HF directory or a llama2.c .bin")->required();
      app.add_option("--tokenizer", a->tokenizer,
                     "SentencePiece tokenizer.model or HF tokenizer.json (default: tokenizer.json, then tokenizer.model, "
                     "beside the model); copied into the output");
      add_choice(app, "--method", a->o.family, {{"rtn", MethodFamily::Rtn}, {"awq", MethodFamily::Awq}},
                 "Quantizer family")
          ->required();
      app.add_option("--bits", a->o.bits, "Bits per weight (the AutoAWQ format holds 4 only)")->capture_default_str();
      app.add_option("--group", a->o.group_size, "Group size along the input dimension (-1: per output channel)")
          ->capture_default_str();
      app.add_flag("--symmetric", a->o.symmetric, "Symmetric quantization (zero point fixed at 2^(bits-1))");
      app.add_option("--calib", a->o.calib_path, "AWQ calibration text file (never the evaluation split)");
      app.add_option("--calib-samples", a->o.calib_samples, "AWQ calibration samples")->capture_default_str();
      app.add_option("--calib-seq-len", a->o.calib_seq_len, "AWQ calibration tokens per sample")->capture_default_str();
      app.add_option("--eval-file", a->o.eval_path, "The evaluation file, refused as calibration text");
      app.add_flag("--no-clip", a->no_clip, "AWQ: skip the clipping search");
      app.add_flag("--chain-quantized", a->o.chain_quantized,
                   "AWQ: calibrate each block on the quantized previous blocks' output (default: the FP16 output, "
                   "as llm-awq)");
      app.add_flag("--force-calib", a->o.force_calib, "Allow calibrating on the --eval-file");
      app.add_option("--out", a->out, "Output checkpoint directory (must not exist)");
      app.add_option("--report", a->report, "Also (or only) write the quantize report JSON to this file");
      app.callback([a]() {
        if (a->o.family == MethodFamily::Awq && a->o.calib_path.empty())
          throw CLI::ValidationError("--calib", "AWQ needs a calibration text (never the evaluation split)");
      });
      return [a]() {
        QuantizeOptions o = a->o;
        o.clip = !a->no_clip;
        return run_quantize(o, a->model, a->tokenizer, a->out, a->report);
      };
    }};

}  // namespace
}  // namespace qb::cli
