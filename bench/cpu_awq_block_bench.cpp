// AWQ's search on one transformer block of a given shape (default Llama-2-7B: hidden 4096, inner
// 11008, 32 heads, MHA) with random FP16-representable weights N(0, 0.02) and random block inputs,
// on the CPU: seconds and achieved GFLOP/s of the calibration forward, the scale grid and the clip
// grid, next to this machine's cblas_sgemm GFLOP/s measured at the search's GEMM shape with the
// same threads. No model file: the block is built here. Prints one JSON object.
//
//   cpu_awq_block_bench [--n-seq 8] [--seq-len 512] [--hidden 4096] [--inner 11008] [--heads 32]
//                       [--kv-heads 32] [--bits 4] [--group 128] [--no-clip] [--no-scale]
// (--no-scale runs the clip grid alone, on unscaled weights and inputs.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/half.h"
#include "common/memory.h"
#include "model/cpu_forward.h"
#include "model/sgemm_rate.h"
#include "quant/awq.h"

using namespace qb;

namespace {

std::vector<float> normal_f16(size_t n, std::mt19937& rng, float sd) {
  std::normal_distribution<float> dist(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = round_to_half(dist(rng));
  return v;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  int n_seq = 8, seq_len = 512, bits = 4, group = 128;
  LlamaConfig c;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.n_heads = c.n_kv_heads = 32;
  c.n_layers = 1;
  c.max_seq_len = 4096;
  bool no_clip = false, no_scale = false;
  CLI::App app("AWQ search of one block on the CPU: seconds and GFLOP/s per phase against measured sgemm");
  app.add_option("--n-seq", n_seq, "calibration sequences");
  app.add_option("--seq-len", seq_len, "tokens per sequence");
  app.add_option("--hidden", c.hidden_size);
  app.add_option("--inner", c.intermediate_size);
  app.add_option("--heads", c.n_heads);
  app.add_option("--kv-heads", c.n_kv_heads);
  app.add_option("--bits", bits);
  app.add_option("--group", group);
  app.add_flag("--no-clip", no_clip, "skip the clip grid");
  app.add_flag("--no-scale", no_scale, "skip the scale grid (clip alone, on the unscaled block)");
  CLI11_PARSE(app, argc, argv);

  std::mt19937 rng(1);
  const auto dims = linear_dims(c);
  CpuLayer layer;
  layer.attn_norm.assign(c.hidden_size, 1.0f);
  layer.mlp_norm.assign(c.hidden_size, 1.0f);
  const auto weights = block_linears(layer);
  for (int t = 0; t < kNumLinears; ++t)
    *weights[t] = normal_f16(static_cast<size_t>(dims[t].first) * dims[t].second, rng, 0.02f);
  const int rows = n_seq * seq_len;
  std::vector<float> x = normal_f16(static_cast<size_t>(rows) * c.hidden_size, rng, 1.0f);

  AwqOptions options;
  options.spec = {bits, group, false};
  options.clip = !no_clip;
  // The rate the search is held to: sgemm at the candidate forwards' shape (a chunk of rows
  // against a hidden x hidden weight), the threads as the search runs them; measured before and
  // after the search, the higher taken (on a shared machine the rate moves with the load).
  auto sgemm_now = [&] {
    return measured_sgemm_gflops(std::min(rows, options.forward_rows), c.hidden_size, c.hidden_size);
  };
  const double sgemm_before = sgemm_now();

  auto start = std::chrono::steady_clock::now();
  BlockInputs inputs;
  block_forward(c, layer, x.data(), n_seq, seq_len, &inputs);
  const double calibration_seconds = seconds_since(start);
  const AwqBlockFlops flops = awq_block_flops(c, n_seq, seq_len, options);

  double scale_seconds = 0.0, clip_seconds = 0.0;
  if (no_scale) {  // the clip grid alone: awq_search_block's clip loop on unscaled weights
    AwqOptions clip_only = options;
    start = std::chrono::steady_clock::now();
    const std::vector<float>* in[kNumLinears] = {&inputs.attn_in, &inputs.attn_in, &inputs.attn_in, &inputs.o_in,
                                                 &inputs.mlp_in,  &inputs.mlp_in,  &inputs.down_in};
    for (int t : {kV, kO, kGate, kUp, kDown}) {
      const auto [n, k] = dims[t];
      const size_t step = std::max<size_t>(1, static_cast<size_t>(rows) / clip_only.clip_sample_tokens);
      std::vector<float> sample;
      for (size_t r = 0; r < static_cast<size_t>(rows); r += step)
        sample.insert(sample.end(), in[t]->begin() + r * k, in[t]->begin() + (r + 1) * k);
      double mean = 0.0;
      awq_search_clip(weights[t]->data(), n, k, sample.data(), static_cast<int>(sample.size() / k), clip_only, &mean);
    }
    clip_seconds = seconds_since(start);
  } else {
    const AwqBlockResult r = awq_search_block(c, layer, inputs, n_seq, seq_len, options);
    scale_seconds = r.scale_seconds;
    clip_seconds = r.clip_seconds;
  }
  const double sgemm_after = sgemm_now(), sgemm = std::max(sgemm_before, sgemm_after);
  auto rate = [](double f, double s) { return s > 0 ? f / s / 1e9 : 0.0; };
  const double search_seconds = scale_seconds + clip_seconds;
  const double search_flops = (no_scale ? 0.0 : flops.scale) + (no_clip ? 0.0 : flops.clip);
  const nlohmann::json out = {
      {"shape", {{"hidden", c.hidden_size}, {"inner", c.intermediate_size}, {"heads", c.n_heads},
                 {"kv_heads", c.n_kv_heads}}},
      {"calibration", {{"n_seq", n_seq}, {"seq_len", seq_len}}},
      {"spec", {{"bits", bits}, {"group", group}}},
      {"sgemm_gflops", sgemm},
      {"sgemm_gflops_before_after", {sgemm_before, sgemm_after}},
      {"sgemm_shape", {std::min(rows, options.forward_rows), c.hidden_size, c.hidden_size}},
      {"calibration_forward", {{"seconds", calibration_seconds}, {"gflop", flops.calibration / 1e9},
                               {"gflops", rate(flops.calibration, calibration_seconds)}}},
      {"scale_search", {{"seconds", scale_seconds}, {"gflop", no_scale ? 0.0 : flops.scale / 1e9},
                        {"gflops", rate(flops.scale, scale_seconds)}}},
      {"clip_search", {{"seconds", clip_seconds}, {"gflop", no_clip ? 0.0 : flops.clip / 1e9},
                       {"gflops", rate(flops.clip, clip_seconds)}}},
      {"search", {{"seconds", search_seconds}, {"gflops", rate(search_flops, search_seconds)},
                  {"fraction_of_sgemm", rate(search_flops, search_seconds) / sgemm}}},
      {"peak_rss_gb", peak_rss_bytes() / 1e9}};
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
