// AWQ's clip search as GEMMs on the shared stories-d256-l2 model: on every clipped linear of both
// blocks, with the scales the search chose and the activations the FP16 blocks see on TinyStories
// text, awq_search_block's thresholds are the scalar llm-awq search's (awq_clip_reference.h), or
// near-ties within test_awq_clip.cpp's tolerance.
#include <catch2/catch.hpp>

#include <cstdio>

#include "awq_clip_reference.h"
#include "datasets/tokenizer.h"
#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "model/load.h"
#include "quant/awq.h"
#include "quant/calibration.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories-d256-l2/model.safetensors", "models/stories-d256-l2/tokenizer.model",
                        "text/tinystories/tinystories_train_head.txt"})
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  return "";
}

TEST_CASE("stories-d256-l2 w4 g128 and w3 g64: the GEMM clip search chooses the scalar search's thresholds") {
  const auto tokenizer = open_tokenizer(test::data_file("models/stories-d256-l2/tokenizer.model"));
  const Model model = load_model(test::data_file("models/stories-d256-l2"));
  const LlamaConfig& c = model.config;
  const int n_seq = 8, seq_len = 256;
  const CalibrationSet calib = load_calibration(test::data_file("text/tinystories/tinystories_train_head.txt"),
                                                *tokenizer, n_seq, seq_len, "", false);
  const std::vector<float> table = model.embed_tokens.to_float();
  for (const QuantSpec spec : {QuantSpec{4, 128, false}, QuantSpec{3, 64, false}}) {
    AwqOptions options;
    options.spec = spec;
    std::vector<float> x(calib.tokens.size() * c.hidden_size);
    for (size_t r = 0; r < calib.tokens.size(); ++r)
      std::copy_n(table.begin() + static_cast<size_t>(calib.tokens[r]) * c.hidden_size, c.hidden_size,
                  x.begin() + r * c.hidden_size);
    const auto dims = linear_dims(c);
    size_t differing = 0, beyond = 0, cells = 0;
    for (int i = 0; i < c.n_layers; ++i) {
      const CpuLayer layer = widen_layer(model.layers[i]);
      BlockInputs in;
      block_forward(c, layer, x.data(), n_seq, seq_len, &in);
      const AwqBlockResult r = awq_search_block(c, layer, in, n_seq, seq_len, options);
      const auto inputs = linear_inputs(in);
      const auto weights = block_linears(r.scaled);
      for (int t : {kV, kO, kGate, kUp, kDown}) {
        const auto [n, k] = dims[t];
        // llm-awq's token sample: every (rows / 512)-th row, on the scaled inputs.
        const std::vector<float>& captured = *inputs[t];
        const size_t rows = captured.size() / k, step = std::max<size_t>(1, rows / options.clip_sample_tokens);
        const std::vector<float>* s = input_scale(r.scales, t);
        std::vector<float> sample;
        for (size_t row = 0; row < rows; row += step)
          for (int j = 0; j < k; ++j) sample.push_back(captured[row * k + j] / (s ? (*s)[j] : 1.0f));
        const int tokens = static_cast<int>(sample.size() / k);
        const test::ReferenceClip ref =
            test::reference_search_clip(weights[t]->data(), n, k, sample.data(), tokens, options);
        size_t linear_beyond = 0;
        double worst = 0.0;
        differing += test::differing_choices(ref, r.clip_max[t], options.n_grid, 1e-5, &linear_beyond, &worst);
        beyond += linear_beyond;
        cells += ref.clip_max.size();
      }
    }
    std::printf("w%d g%d: %zu of %zu thresholds differ from the scalar search, %zu beyond the tie tolerance\n",
                spec.bits, spec.group_size, differing, cells, beyond);
    CHECK(beyond == 0);
    CHECK(differing * 100 <= cells);
  }
}
