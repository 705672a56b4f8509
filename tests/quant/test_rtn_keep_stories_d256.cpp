// rtn-keep on the shared stories-d256-l2 model (the AWQ paper's Table 1 experiment, quant/rtn_keep.h):
// channels chosen on WikiText-2 validation text by activation, by weight and at random, 1% each,
// w3 g128, measured on held-out WikiText-2 test text as every block linear's output error against
// FP16 (the inputs the FP16 model's blocks see).
#include <catch2/catch.hpp>

#include <cstdio>

#include "datasets/tokenizer.h"
#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "model/load.h"
#include "quant/calibration.h"
#include "quant/quantize.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories-d256-l2/model.safetensors", "models/stories-d256-l2/tokenizer.model",
                        "text/wikitext-2/valid.txt", "text/wikitext-2-raw/wiki.test.raw"})
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  return "";
}

namespace {

// Mean over the block linears of ||X W_hat^T - X W^T||^2 / ||X W^T||^2, X the linear's input in
// the FP16 model on `tokens` (n_seq sequences of seq_len).
double mean_output_error(const Model& fp16, const Model& quantized, const std::vector<int>& tokens, int n_seq,
                         int seq_len) {
  const LlamaConfig& c = fp16.config;
  const std::vector<float> table = fp16.embed_tokens.to_float();
  std::vector<float> x(tokens.size() * c.hidden_size);
  for (size_t r = 0; r < tokens.size(); ++r)
    std::copy_n(table.begin() + static_cast<size_t>(tokens[r]) * c.hidden_size, c.hidden_size,
                x.begin() + r * c.hidden_size);
  double sum = 0.0;
  int count = 0;
  for (int i = 0; i < c.n_layers; ++i) {
    BlockInputs in;
    block_forward(c, widen_layer(fp16.layers[i]), x.data(), n_seq, seq_len, &in);
    const auto inputs = linear_inputs(in);
    const auto ref = block_linears(fp16.layers[i]);
    const auto got = block_linears(quantized.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      const int n = ref[t]->out_features(), k = ref[t]->in_features(), rows = static_cast<int>(inputs[t]->size() / k);
      const std::vector<float> w = widen_linear(*ref[t]), w_hat = widen_linear(*got[t]);
      std::vector<float> y(static_cast<size_t>(rows) * n), y_hat(y.size());
      linear(y.data(), inputs[t]->data(), w.data(), rows, n, k);
      linear(y_hat.data(), inputs[t]->data(), w_hat.data(), rows, n, k);
      double num = 0.0, den = 0.0;
      for (size_t e = 0; e < y.size(); ++e) {
        num += (double(y_hat[e]) - y[e]) * (double(y_hat[e]) - y[e]);
        den += double(y[e]) * y[e];
      }
      sum += num / den;
      ++count;
    }
  }
  return sum / count;
}

}  // namespace

TEST_CASE("stories-d256-l2 w3: keeping 1% of channels by activation beats by weight and at random") {
  const auto tokenizer = open_tokenizer(test::data_file("models/stories-d256-l2/tokenizer.model"));
  const Model fp16 = to_fp16(load_model(test::data_file("models/stories-d256-l2")));
  QuantizeOptions o;
  o.bits = 3;
  o.group_size = 128;
  o.keep_fraction = 0.01;
  o.calib_path = test::data_file("text/wikitext-2/valid.txt");
  o.calib_samples = 16;
  o.calib_seq_len = 512;
  const CalibrationSet held_out =
      load_calibration(test::data_file("text/wikitext-2-raw/wiki.test.raw"), *tokenizer, 8, 512, "", false);
  auto error_of = [&](MethodFamily family, KeepBy by) {
    o.family = family;
    o.keep_by = by;
    const double e = mean_output_error(fp16, quantize_model(fp16, o, tokenizer.get()).model, held_out.tokens,
                                       held_out.n_samples, held_out.seq_len);
    std::printf("%s: mean output error %.6g\n",
                family == MethodFamily::Rtn ? "rtn" : (std::string("rtn-keep ") + keep_by_name(by)).c_str(), e);
    return e;
  };
  const double rtn = error_of(MethodFamily::Rtn, KeepBy::Act);
  const double act = error_of(MethodFamily::RtnKeep, KeepBy::Act);
  const double weight = error_of(MethodFamily::RtnKeep, KeepBy::Weight);
  const double random = error_of(MethodFamily::RtnKeep, KeepBy::Random);
  CHECK(act < rtn);
  CHECK(act < weight);
  CHECK(act < random);
}
