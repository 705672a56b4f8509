#include "quant/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "common/error.h"
#include "common/half.h"
#include "common/interrupt.h"
#include "common/progress.h"
#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "model/sgemm_rate.h"
#include "quant/awq.h"
#include "quant/calibration.h"
#include "quant/gguf_quantize.h"
#include "quant/gptq.h"
#include "quant/rtn.h"
#include "quant/rtn_keep.h"

namespace qb {

namespace {

// Rows of x [rows, cols] that per-layer output errors are measured on: at most this many, evenly
// spaced (all of them for small calibration sets).
constexpr int kErrorSampleTokens = 4096;

// The fraction of the measured sgemm rate AWQ's block work reaches on the CPU
// (bench/cpu_awq_block_bench on a Llama-2-7B-shaped block, bench/README.md): the projection's.
constexpr double kAwqSgemmFraction = 0.7;

double sum_squares(const std::vector<float>& v) {
  double s = 0.0;
  for (float x : v) s += static_cast<double>(x) * x;
  return s;
}

// ||a - b||^2 / ||b||^2 (0 when b is all zeros and a == b).
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
  }
  const double den = sum_squares(b);
  return den > 0 ? num / den : num;
}

// output_error of each of w_hats against w, with X W^T computed once.
std::vector<double> output_errors(const std::vector<float>& x, const std::vector<float>& w,
                                  const std::vector<const std::vector<float>*>& w_hats, int n, int k) {
  const int t = static_cast<int>(x.size() / k);
  std::vector<float> y(static_cast<size_t>(t) * n), y_hat(y.size());
  linear(y.data(), x.data(), w.data(), t, n, k);
  std::vector<double> errors;
  for (const std::vector<float>* w_hat : w_hats) {
    linear(y_hat.data(), x.data(), w_hat->data(), t, n, k);
    errors.push_back(relative_error(y_hat, y));
  }
  return errors;
}

// Rows of x [rows, cols] that per-layer output errors are measured on (quant/awq.h every_nth_row).
std::vector<float> error_sample(const std::vector<float>& x, int cols) {
  int n_sampled = 0;
  return every_nth_row(x, cols, kErrorSampleTokens, nullptr, &n_sampled);
}

// ||X W_hat^T - X W^T||^2 / ||X W^T||^2 for X [t, k], W and W_hat [n, k].
double output_error(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& w_hat, int n,
                    int k) {
  return output_errors(x, w, {&w_hat}, n, k)[0];
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<float> fake_quantized(const std::vector<float>& w, int n, int k, const QuantSpec& spec,
                                  const float* clip_max, const std::string& name) {
  std::vector<float> out(w.size());
  fake_quantize(w.data(), n, k, spec, out.data(), clip_max, name);
  return out;
}

std::vector<float> dense_weights(const Linear& linear, const std::string& name) {
  if (linear.quant) fail(name, "is already quantized; quantize_model needs the FP16 model");
  return linear.dense.to_float();
}

nlohmann::json number_or_null(double v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); }

QuantSpec spec_of(const QuantizeOptions& o) {
  QuantSpec spec{o.bits, o.group_size, o.symmetric};
  check_quant_spec(spec, "quantize");
  return spec;
}

// Hands block i to the sink, if any, and drops it from the result.
void hand_over_block(int i, QuantizeResult& result, const QuantizedBlockSink& sink) {
  if (!sink) return;
  sink(i, result.model.layers[i]);
  result.model.layers[i] = LayerWeights{};
}

void quantize_rtn_model(const Model& fp16, const QuantSpec& spec, QuantizeResult& result,
                        const QuantizedBlockSink& sink) {
  Progress progress("rtn", fp16.config.n_layers);
  for (int i = 0; i < fp16.config.n_layers; ++i) {
    const auto dims = linear_dims(fp16.config);
    const auto linears = block_linears(result.model.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      throw_if_interrupted();
      const std::string name = linear_hf_name(i, t);
      const auto [n, k] = dims[t];
      const std::vector<float> w = dense_weights(*linears[t], name);
      const double weight_error = relative_error(fake_quantized(w, n, k, spec, nullptr, name), w);
      linears[t]->quant = std::make_shared<const QuantizedWeight>(quantize_rtn(w.data(), n, k, spec, nullptr, name));
      linears[t]->dense = Tensor{};
      result.layers.push_back({{"name", name},
                               {"alpha", nullptr},
                               {"clip_ratio", nullptr},
                               {"weight_error_rtn", weight_error},
                               {"weight_error", weight_error},
                               {"output_error_rtn", nullptr},
                               {"output_error", nullptr}});
    }
    hand_over_block(i, result, sink);
    progress.advance();
  }
  progress.finish();
}

// x [n_seq*seq_len, dim]: the embedding rows of the calibration tokens.
std::vector<float> embed_tokens(const Model& m, const std::vector<int>& tokens) {
  const int dim = m.config.hidden_size;
  std::vector<float> x(tokens.size() * dim);
  for (size_t r = 0; r < tokens.size(); ++r) {
    if (tokens[r] < 0 || tokens[r] >= m.config.vocab_size)
      fail("calibration", "token id " + std::to_string(tokens[r]) + " outside the model's vocabulary");
    m.embed_tokens.rows_to_float(tokens[r], tokens[r] + 1, x.data() + r * dim);  // never the whole table
  }
  return x;
}

// ||y - reference||^2 / ||reference - x||^2: a block's output error relative to its residual update.
double block_error(const std::vector<float>& y, const std::vector<float>& reference, const std::vector<float>& x) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double d = static_cast<double>(y[i]) - reference[i], u = static_cast<double>(reference[i]) - x[i];
    num += d * d;
    den += u * u;
  }
  return den > 0 ? num / den : num;
}

// The calibration samples of options, checked against the model; `method` names the quantizer in errors.
CalibrationSet load_model_calibration(const Model& fp16, const QuantizeOptions& options, const Tokenizer* tokenizer,
                                      const std::string& method) {
  if (!tokenizer) fail(method, "needs a tokenizer for the calibration text");
  const LlamaConfig& c = fp16.config;
  if (options.calib_seq_len > c.max_seq_len)
    fail(method, "calibration sequence length " + std::to_string(options.calib_seq_len) +
                     " exceeds the model's max_seq_len " + std::to_string(c.max_seq_len));
  check_window_length(c, options.calib_seq_len, method + " calibration");
  return load_calibration(options.calib_path, *tokenizer, options.calib_samples, options.calib_seq_len,
                          options.eval_path, options.force_calib);
}

void quantize_awq_model(const Model& fp16, const QuantizeOptions& options, const QuantSpec& spec,
                        const Tokenizer* tokenizer, QuantizeResult& result, const QuantizedBlockSink& sink) {
  const LlamaConfig& c = fp16.config;
  const CalibrationSet calib = load_model_calibration(fp16, options, tokenizer, "awq");
  result.quantization["calibration"] = calib.provenance;
  result.quantization["calibration"]["chain"] = options.chain_quantized ? "quantized" : "fp16";
  const auto dims = linear_dims(c);
  const bool o_scaled = dims[kV] == dims[kO];
  result.quantization["search"] = {
      {"scale", "paper/llm-awq: s = max(mean|x|^alpha, 1e-4) / sqrt(max*min), alpha = i/20, i = 0..19; MSE of the "
                "module output (q/k/v: attention, gate/up: MLP, o and down: own output)"},
      {"clip", options.clip ? "llm-awq: per output channel and group, max|w| * (1 - i/20), i = 0..9, every "
                              "(tokens/512)-th token; v, o, gate, up, down (q, k skipped)"
                            : "off"},
      {"o_proj", o_scaled ? "scaled against v_proj"
                          : "skipped: v_proj [" + std::to_string(dims[kV].first) + ", " +
                                std::to_string(dims[kV].second) + "] and o_proj [" + std::to_string(dims[kO].first) +
                                ", " + std::to_string(dims[kO].second) + "] shapes differ (llm-awq scales o only when "
                                "they match)"},
      {"next_block_input", options.chain_quantized ? "the AWQ-quantized block's output"
                                                   : "the FP16 block's output (llm-awq run_awq)"},
      {"duo_scaling", false}};

  AwqOptions awq;
  awq.spec = spec;
  awq.clip = options.clip;
  const int n_seq = calib.n_samples, seq_len = calib.seq_len;
  std::vector<float> x = embed_tokens(fp16, calib.tokens);
  std::fprintf(stderr, "awq: %d calibration samples x %d tokens from %s; %d blocks\n", n_seq, seq_len,
               options.calib_path.c_str(), c.n_layers);
  // The projection: a block's GEMM flops (the calibration forward, the two grids, and the two block
  // forwards of the error report) at the sgemm rate measured now, times the fraction of it the
  // search reaches (kAwqSgemmFraction, measured by bench/cpu_awq_block_bench).
  const AwqBlockFlops block_flops = awq_block_flops(c, n_seq, seq_len, awq);
  const double sgemm_gflops =
      measured_sgemm_gflops(std::min(n_seq * seq_len, awq.forward_rows), c.hidden_size, c.hidden_size);
  const double flops_per_block = 3 * block_flops.calibration + block_flops.search();
  std::fprintf(stderr, "awq: %d blocks, ~%.1f min on this machine (sgemm %.0f GFLOP/s measured, %.0f GFLOP per block)\n",
               c.n_layers, c.n_layers * flops_per_block / (sgemm_gflops * 1e9 * kAwqSgemmFraction) / 60.0,
               sgemm_gflops, flops_per_block / 1e9);
  const AwqBlockForward forward = options.awq_device.block_forward ? options.awq_device.block_forward
                                                                   : AwqBlockForward(block_forward);
  Progress progress("awq", c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    const auto start = std::chrono::steady_clock::now();
    CpuLayer fp = widen_layer(fp16.layers[i]);
    BlockInputs inputs;
    std::vector<float> y_fp = x;
    forward(c, fp, y_fp.data(), n_seq, seq_len, &inputs);
    const double calibration_seconds = seconds_since(start);
    AwqBlockResult search = options.awq_device.search ? options.awq_device.search(c, fp, inputs, n_seq, seq_len, awq)
                                                            : awq_search_block(c, fp, inputs, n_seq, seq_len, awq);

    LayerWeights& out = result.model.layers[i];
    const auto linears = block_linears(out);
    const auto fp_weights = block_linears(fp);
    const auto scaled_weights = block_linears(search.scaled);
    const auto captured = linear_inputs(inputs);
    // Once a linear's errors are measured, its FP16 and scaled weights are not needed again: the two
    // blocks become the RTN and AWQ blocks in place, linear by linear (two FP32 block copies fewer).
    CpuLayer& rtn_layer = fp;
    CpuLayer& awq_layer = search.scaled;
    const auto errors_start = std::chrono::steady_clock::now();
    double quantize_seconds = 0.0;
    for (int t = 0; t < kNumLinears; ++t) {
      const std::string name = linear_hf_name(i, t);
      const auto [n, k] = dims[t];
      const std::vector<float>& w = *fp_weights[t];
      const float* clip = search.clip_max[t].empty() ? nullptr : search.clip_max[t].data();
      const auto quantize_start = std::chrono::steady_clock::now();
      linears[t]->quant =
          std::make_shared<const QuantizedWeight>(quantize_rtn(scaled_weights[t]->data(), n, k, spec, clip, name));
      linears[t]->dense = Tensor{};
      quantize_seconds += seconds_since(quantize_start);
      std::vector<float> w_rtn = fake_quantized(w, n, k, spec, nullptr, name);
      std::vector<float> w_awq = fake_quantized(*scaled_weights[t], n, k, spec, clip, name);
      // The AWQ layer's weight in the FP16 model's coordinates: diag(s_out) Q(W') diag(s_in)^-1.
      std::vector<float> awq_effective = w_awq;
      const std::vector<float>* s_in = input_scale(search.scales, t);
      const std::vector<float>* s_out = output_scale(search.scales, t);
      for (int o = 0; o < n; ++o)
        for (int j = 0; j < k; ++j)
          awq_effective[static_cast<size_t>(o) * k + j] *= (s_out ? (*s_out)[o] : 1.0f) / (s_in ? (*s_in)[j] : 1.0f);
      const std::vector<float> x_sample = error_sample(*captured[t], k);
      const std::vector<double> out_errors = output_errors(x_sample, w, {&w_rtn, &awq_effective}, n, k);
      nlohmann::json entry = {{"name", name},
                              {"alpha", number_or_null(search.alpha[t])},
                              {"clip_ratio", number_or_null(search.clip_ratio_mean[t])},
                              {"weight_error_rtn", relative_error(w_rtn, w)},
                              {"weight_error", relative_error(awq_effective, w)},
                              {"output_error_rtn", out_errors[0]},
                              {"output_error", out_errors[1]}};
      if (t == kO && !o_scaled) entry["scaling"] = "skipped (v_proj and o_proj shapes differ)";
      result.layers.push_back(entry);
      *fp_weights[t] = std::move(w_rtn);
      *scaled_weights[t] = std::move(w_awq);
    }
    // Norms hold the folded 1/s, stored in the source dtype.
    out.attn_norm = Tensor::from_float(out.attn_norm.name, out.attn_norm.shape, search.scaled.attn_norm,
                                       out.attn_norm.dtype);
    out.mlp_norm = Tensor::from_float(out.mlp_norm.name, out.mlp_norm.shape, search.scaled.mlp_norm,
                                      out.mlp_norm.dtype);
    awq_layer.attn_norm = out.attn_norm.to_float();
    awq_layer.mlp_norm = out.mlp_norm.to_float();
    // Biases stay FP16 and unquantized; those on scaled output rows hold the folded 1/s.
    for (int t = 0; t < kNumLinears; ++t) {
      Tensor& bias = linears[t]->bias;
      if (!bias.data) continue;
      bias = Tensor::from_float(bias.name, bias.shape, search.scaled.*kBlockLinears[t].widened_bias, DType::F16);
      awq_layer.*kBlockLinears[t].widened_bias = bias.to_float();
    }

    std::vector<float> y_rtn = x, y_awq = x;
    forward(c, rtn_layer, y_rtn.data(), n_seq, seq_len, nullptr);
    forward(c, awq_layer, y_awq.data(), n_seq, seq_len, nullptr);
    const double err_rtn = block_error(y_rtn, y_fp, x), err_awq = block_error(y_awq, y_fp, x);
    const double seconds = seconds_since(start);
    const double search_seconds = search.scale_seconds + search.clip_seconds;
    result.blocks.push_back({{"block", i},
                             {"seconds", seconds},
                             // Where the time went: the errors are the RTN/AWQ weight and output errors
                             // per linear and the RTN and AWQ block forwards of output_error(_rtn).
                             {"seconds_by_phase", {{"calibration_forward", calibration_seconds},
                                                   {"scale_search", search.scale_seconds},
                                                   {"clip_search", search.clip_seconds},
                                                   {"quantize", quantize_seconds},
                                                   {"errors", seconds_since(errors_start) - quantize_seconds}}},
                             {"search_gflops", search_seconds > 0 ? block_flops.search() / search_seconds / 1e9 : 0.0},
                             {"alpha_qkv", search.alpha[kQ]},
                             {"alpha_o", number_or_null(search.alpha[kO])},
                             {"alpha_gate_up", search.alpha[kGate]},
                             {"alpha_down", search.alpha[kDown]},
                             {"output_error_rtn", err_rtn},
                             {"output_error", err_awq}});
    char alpha_o[16] = "skipped", line[256];
    if (o_scaled) std::snprintf(alpha_o, sizeof(alpha_o), "%.2f", search.alpha[kO]);
    std::snprintf(line, sizeof(line),
                  "awq: block %d/%d: alpha qkv %.2f o %s gate/up %.2f down %.2f; block output error (relative to its "
                  "update) rtn %.4g awq %.4g; %.2f s",
                  i + 1, c.n_layers, search.alpha[kQ], alpha_o, search.alpha[kGate], search.alpha[kDown], err_rtn,
                  err_awq, seconds);
    progress.note(line);
    x.swap(options.chain_quantized ? y_awq : y_fp);
    hand_over_block(i, result, sink);
    progress.advance();
  }
  progress.finish();
}

// RTN with options.keep_fraction of each linear's input channels kept in FP16 (quant/rtn_keep.h).
// By act, the channels are ranked on the inputs the FP16 model's blocks see, as AWQ calibrates;
// then the per-layer output errors are measured on them too.
void quantize_rtn_keep_model(const Model& fp16, const QuantizeOptions& options, const QuantSpec& spec,
                             const Tokenizer* tokenizer, QuantizeResult& result, const QuantizedBlockSink& sink) {
  const LlamaConfig& c = fp16.config;
  const auto dims = linear_dims(c);
  const bool by_act = options.keep_by == KeepBy::Act;
  if (!(options.keep_fraction > 0 && options.keep_fraction <= 1))
    fail("rtn-keep", "the kept fraction " + std::to_string(options.keep_fraction) + " is not in (0, 1]");
  nlohmann::json per_linear = nlohmann::json::object();
  for (int t = 0; t < kNumLinears; ++t)
    per_linear[kBlockLinears[t].hf_name] = kept_channel_count(dims[t].second, options.keep_fraction);
  result.quantization["keep"] = {{"by", keep_by_name(options.keep_by)},
                                 {"fraction", options.keep_fraction},
                                 {"channels_per_linear", per_linear},
                                 {"seed", options.keep_by == KeepBy::Random ? nlohmann::json(kKeepSeed) : nullptr}};
  CalibrationSet calib;
  std::vector<float> x;
  if (by_act) {
    calib = load_model_calibration(fp16, options, tokenizer, "rtn-keep");
    result.quantization["calibration"] = calib.provenance;
    x = embed_tokens(fp16, calib.tokens);
  }
  std::mt19937_64 rng(kKeepSeed);
  Progress progress("rtn-keep", c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    BlockInputs inputs;
    if (by_act) block_forward(c, widen_layer(fp16.layers[i]), x.data(), calib.n_samples, calib.seq_len, &inputs);
    const auto captured = linear_inputs(inputs);
    const auto linears = block_linears(result.model.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      const std::string name = linear_hf_name(i, t);
      const auto [n, k] = dims[t];
      const std::vector<float> w = dense_weights(*linears[t], name);
      const int count = kept_channel_count(k, options.keep_fraction);
      std::vector<int32_t> cols;
      if (by_act)
        cols = top_channels(mean_abs_columns(captured[t]->data(), captured[t]->size() / k, k), count);
      else if (options.keep_by == KeepBy::Weight)
        cols = top_channels(mean_abs_columns(w.data(), n, k), count);
      else
        cols = random_channels(k, count, rng);
      linears[t]->quant = std::make_shared<const QuantizedWeight>(quantize_rtn(w.data(), n, k, spec, nullptr, name));
      linears[t]->kept = std::make_shared<const KeptColumns>(keep_columns(w.data(), n, k, std::move(cols)));
      linears[t]->dense = Tensor{};
      const std::vector<float> w_rtn = fake_quantized(w, n, k, spec, nullptr, name), w_keep = widen_linear(*linears[t]);
      nlohmann::json entry = {{"name", name},
                              {"alpha", nullptr},
                              {"clip_ratio", nullptr},
                              {"weight_error_rtn", relative_error(w_rtn, w)},
                              {"weight_error", relative_error(w_keep, w)},
                              {"output_error_rtn", nullptr},
                              {"output_error", nullptr}};
      if (by_act) {
        const std::vector<float> x_sample = error_sample(*captured[t], k);
        entry["output_error_rtn"] = output_error(x_sample, w, w_rtn, n, k);
        entry["output_error"] = output_error(x_sample, w, w_keep, n, k);
      }
      result.layers.push_back(entry);
    }
    hand_over_block(i, result, sink);
    progress.advance();
  }
  progress.finish();
}

// GPTQ (quant/gptq.h) block by block on the quantized chain: each group of linears that shares an
// input (q/k/v, o, gate/up, down) gets one Hessian from the inputs the block produces with the
// groups before it already quantized (AutoGPTQ's true_sequential), and the next block's input is
// this block's output with all seven linears quantized.
void quantize_gptq_model(const Model& fp16, const QuantizeOptions& options, const QuantSpec& spec,
                         const Tokenizer* tokenizer, QuantizeResult& result, const QuantizedBlockSink& sink) {
  const LlamaConfig& c = fp16.config;
  const CalibrationSet calib = load_model_calibration(fp16, options, tokenizer, "gptq");
  result.quantization["calibration"] = calib.provenance;
  result.quantization["calibration"]["chain"] = "quantized";
  GptqOptions gptq;
  gptq.spec = spec;
  gptq.damp_percent = options.gptq_damp;
  gptq.act_order = options.act_order;
  result.quantization["search"] = {
      {"hessian", "H = 2/N X^T X over the calibration tokens of each linear's input; dead columns (H_ii = 0) "
                  "zeroed"},
      {"damp_percent", gptq.damp_percent},
      {"desc_act", gptq.act_order},
      {"static_groups", gptq.act_order},
      {"true_sequential", true},
      {"block_size", gptq.block_size},
      {"grid", "RTN's (scale from the group's min/max, FP16-rounded), found on the updated weights when a group "
               "starts (static groups: before any update)"}};
  const auto dims = linear_dims(c);
  const int n_seq = calib.n_samples, seq_len = calib.seq_len;
  const long rows = static_cast<long>(n_seq) * seq_len;
  std::vector<float> x = embed_tokens(fp16, calib.tokens);
  std::fprintf(stderr, "gptq: %d calibration samples x %d tokens from %s; %d blocks\n", n_seq, seq_len,
               options.calib_path.c_str(), c.n_layers);
  const std::vector<std::vector<int>> stages = {{kQ, kK, kV}, {kO}, {kGate, kUp}, {kDown}};
  Progress progress("gptq", c.n_layers);
  for (int i = 0; i < c.n_layers; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const CpuLayer fp = widen_layer(fp16.layers[i]);
    CpuLayer gptq_layer = fp, rtn_layer = fp;  // linears replaced by their dequantized weights
    const auto fp_weights = block_linears(fp);
    const auto gptq_weights = block_linears(gptq_layer);
    const auto rtn_weights = block_linears(rtn_layer);
    const auto linears = block_linears(result.model.layers[i]);
    int dead = 0;
    for (const std::vector<int>& stage : stages) {
      BlockInputs inputs;
      std::vector<float> y = x;
      block_forward(c, gptq_layer, y.data(), n_seq, seq_len, &inputs);
      const std::vector<float>& stage_in = *linear_inputs(inputs)[stage[0]];
      const int k = dims[stage[0]].second;
      const std::vector<double> hessian = gptq_hessian(stage_in.data(), rows, k);
      const std::vector<float> x_sample = error_sample(stage_in, k);
      for (int t : stage) {
        const std::string name = linear_hf_name(i, t);
        const int n = dims[t].first;
        const std::vector<float>& w = *fp_weights[t];
        GptqLayerResult q = gptq_quantize(w.data(), n, k, hessian, gptq, name);
        dead = std::max(dead, q.dead_columns);
        *gptq_weights[t] = q.weight.dequantize();
        *rtn_weights[t] = fake_quantized(w, n, k, spec, nullptr, name);
        linears[t]->quant = std::make_shared<const QuantizedWeight>(std::move(q.weight));
        linears[t]->dense = Tensor{};
        result.layers.push_back({{"name", name},
                                 {"alpha", nullptr},
                                 {"clip_ratio", nullptr},
                                 {"dead_columns", q.dead_columns},
                                 {"weight_error_rtn", relative_error(*rtn_weights[t], w)},
                                 {"weight_error", relative_error(*gptq_weights[t], w)},
                                 {"output_error_rtn", output_error(x_sample, w, *rtn_weights[t], n, k)},
                                 {"output_error", output_error(x_sample, w, *gptq_weights[t], n, k)}});
      }
    }
    std::vector<float> y_fp = x, y_rtn = x, y_gptq = x;
    block_forward(c, fp, y_fp.data(), n_seq, seq_len);
    block_forward(c, rtn_layer, y_rtn.data(), n_seq, seq_len);
    block_forward(c, gptq_layer, y_gptq.data(), n_seq, seq_len);
    const double err_rtn = block_error(y_rtn, y_fp, x), err_gptq = block_error(y_gptq, y_fp, x);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.blocks.push_back(
        {{"block", i}, {"seconds", seconds}, {"output_error_rtn", err_rtn}, {"output_error", err_gptq}});
    char line[256];
    std::snprintf(line, sizeof(line),
                  "gptq: block %d/%d: block output error (relative to its update) rtn %.4g gptq %.4g; %d dead input "
                  "channels at most; %.2f s",
                  i + 1, c.n_layers, err_rtn, err_gptq, dead, seconds);
    progress.note(line);
    x.swap(y_gptq);
    hand_over_block(i, result, sink);
    progress.advance();
  }
  progress.finish();
}

}  // namespace

const char* family_name(MethodFamily f) {
  static constexpr const char* kNames[] = {"fp16", "rtn", "awq", "rtn-keep", "gptq", "gguf"};  // MethodFamily's order
  return kNames[static_cast<int>(f)];
}

QuantizeResult quantize_model(const Model& fp16_model, const QuantizeOptions& options, const Tokenizer* tokenizer,
                              const QuantizedBlockSink& sink) {
  if (options.family == MethodFamily::Fp16) fail("quantize", "fp16 is the unquantized reference, not a quantizer");
  if (options.family == MethodFamily::Gguf) {  // llama.cpp's own types and mixes: no bits / group options
    if (sink) fail("quantize", "gguf quantizes whole files, not streamed blocks");
    QuantizeResult result;
    result.layers = nlohmann::json::array();
    result.blocks = nlohmann::json::array();
    quantize_gguf_model(fp16_model, options, result);
    return result;
  }
  const QuantSpec spec = spec_of(options);
  const bool awq = options.family == MethodFamily::Awq;
  QuantizeResult result;
  result.model = fp16_model;
  result.quantization = {{"method", family_name(options.family)},
                         {"bits", spec.bits},
                         {"group_size", spec.group_size},
                         {"zero_point", true},
                         {"symmetric", spec.symmetric},
                         {"clip", awq && options.clip},
                         {"calibration", nullptr},
                         {"search", nullptr}};
  result.layers = nlohmann::json::array();
  result.blocks = nlohmann::json::array();
  const auto start = std::chrono::steady_clock::now();
  if (awq)
    quantize_awq_model(fp16_model, options, spec, tokenizer, result, sink);
  else if (options.family == MethodFamily::RtnKeep)
    quantize_rtn_keep_model(fp16_model, options, spec, tokenizer, result, sink);
  else if (options.family == MethodFamily::Gptq)
    quantize_gptq_model(fp16_model, options, spec, tokenizer, result, sink);
  else
    quantize_rtn_model(fp16_model, spec, result, sink);
  // Calibration (tokenizing, block forwards) included: what a user waits for, per method.
  result.quantization["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

QuantizeMemoryPlan plan_quantize_memory(const Model& source, const QuantizeOptions& options) {
  const LlamaConfig& c = source.config;
  QuantizeMemoryPlan plan;
  size_t params = 0, largest = 0, stored = 0;
  int64_t widest_input = 0;
  auto count_fp16_copy = [&](const Tensor& t) {
    if (t.data && t.dtype == DType::F32) plan.fp16_copy += static_cast<size_t>(t.numel()) * 2;
  };
  for (const auto& [n, k] : linear_dims(c)) {
    params += static_cast<size_t>(n) * k;
    largest = std::max(largest, static_cast<size_t>(n) * k);
    widest_input = std::max<int64_t>(widest_input, k);
  }
  if (!source.layers.empty()) {
    const LayerWeights& l = source.layers[0];
    stored = l.attn_norm.nbytes() + l.mlp_norm.nbytes();
    for (const Linear* linear : block_linears(l)) stored += linear->dense.nbytes() + linear->bias.nbytes();
  }
  for (const LayerWeights& l : source.layers) {
    count_fp16_copy(l.attn_norm);
    count_fp16_copy(l.mlp_norm);
    for (const Linear* linear : block_linears(l)) {
      count_fp16_copy(linear->dense);
      count_fp16_copy(linear->bias);
    }
  }
  count_fp16_copy(source.embed_tokens);
  count_fp16_copy(source.norm);
  if (!c.tie_word_embeddings) count_fp16_copy(source.lm_head);
  // Per parameter: one byte of codes, and the FP32 copies of the block each quantizer keeps (AWQ:
  // the FP16 block and the search's working copy, which become the RTN and AWQ blocks it compares,
  // + one linear's; GPTQ: three of them);
  // per largest linear: its transient FP32 copies; GPTQ: the double Hessian of the widest input.
  const MethodFamily f = options.family;
  const size_t fp32_copies = f == MethodFamily::Awq ? 3 : f == MethodFamily::Gptq ? 3 : f == MethodFamily::RtnKeep ? 1 : 0;
  plan.block = stored + params * (1 + 4 * fp32_copies) + largest * 12;
  if (f == MethodFamily::Gptq) plan.block += static_cast<size_t>(widest_input * widest_input) * sizeof(double);
  const bool calibrated = f == MethodFamily::Awq || f == MethodFamily::Gptq ||
                          (f == MethodFamily::RtnKeep && options.keep_by == KeepBy::Act);
  if (calibrated) {
    // Per token: the block input and its outputs (FP16, RTN, quantized: 5 rows of hidden_size at
    // most), the captured linear inputs (4 x hidden + intermediate) and the forward pass's
    // q/k/v and gate/up (3 x hidden + 2 x intermediate), FP32.
    const size_t tokens = static_cast<size_t>(options.calib_samples) * options.calib_seq_len;
    plan.activations = tokens * sizeof(float) * (12 * static_cast<size_t>(c.hidden_size) + 3 * static_cast<size_t>(c.intermediate_size));
  }
  plan.embeddings = std::max(source.embed_tokens.nbytes(), c.tie_word_embeddings ? 0 : source.lm_head.nbytes());
  return plan;
}

Model to_fp16(const Model& model) {
  Model out = model;
  // BF16 stays as stored: its values are the released model's, and widening BF16 to F16 would
  // round small weights (below F16's normal range) and copy the whole model.
  auto convert = [](Tensor& t) {
    if (t.data && t.dtype == DType::F32) t = Tensor::from_float(t.name, t.shape, t.to_float(), DType::F16);
  };
  convert(out.embed_tokens);
  for (LayerWeights& l : out.layers) {
    convert(l.attn_norm);
    convert(l.mlp_norm);
    for (Linear* linear : block_linears(l)) {
      convert(linear->dense);
      convert(linear->bias);
    }
  }
  convert(out.norm);
  if (out.config.tie_word_embeddings) {
    const std::string name = out.lm_head.name;
    out.lm_head = out.embed_tokens;
    out.lm_head.name = name;
  } else {
    convert(out.lm_head);
  }
  return out;
}

}  // namespace qb
