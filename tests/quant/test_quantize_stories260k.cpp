// RTN and AWQ on the shared stories260K model, calibrated on TinyStories training text: the
// recorded search, and errors that are finite and ordered as expected (the calibration samples
// themselves: test_calibration_stories260k.cpp).
#include <catch2/catch.hpp>

#include "common/error.h"
#include "datasets/tokenizer.h"
#include "model/load.h"
#include "quant/quantize.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories260K/stories260K.bin", "models/stories260K/tok512.model",
                        "text/tinystories/tinystories_train_head.txt"})
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  return "";
}

namespace {
// AWQ at g32 calibrated on TinyStories training text (samples x seq_len tokens).
QuantizeOptions tinystories_awq(int bits, int samples, int seq_len) {
  QuantizeOptions o;
  o.family = MethodFamily::Awq;
  o.bits = bits;
  o.group_size = 32;
  o.calib_path = test::data_file("text/tinystories/tinystories_train_head.txt");
  o.calib_samples = samples;
  o.calib_seq_len = seq_len;
  return o;
}
}  // namespace

TEST_CASE("stories260K: AWQ w3 g32 records its search and beats RTN on the block outputs") {
  const auto tok_owner = open_tokenizer(test::data_file("models/stories260K/tok512.model"));
  const Tokenizer& tok = *tok_owner;
  const Model fp16 = to_fp16(load_model(test::data_file("models/stories260K/stories260K.bin")));
  QuantizeOptions o = tinystories_awq(3, 16, 256);
  o.eval_path = test::data_file("text/tinystories/tinystories_sample.txt");
  const QuantizeResult r = quantize_model(fp16, o, &tok);
  CHECK(r.layers.size() == 5 * 7);
  CHECK(r.quantization["calibration"]["samples"] == 16);
  CHECK(r.quantization["search"]["o_proj"].get<std::string>().find("skipped") == 0);  // GQA: 4 kv heads of 8
  for (const auto& l : r.layers) {
    CHECK(std::isfinite(l["weight_error"].get<double>()));
    CHECK(std::isfinite(l["output_error"].get<double>()));
  }
  CHECK(r.layers[3]["alpha"].is_null());  // model.layers.0.self_attn.o_proj
  double rtn = 0.0, awq = 0.0;
  for (const auto& b : r.blocks) {
    rtn += b["output_error_rtn"].get<double>();
    awq += b["output_error"].get<double>();
  }
  CHECK(awq < rtn);
  const size_t q3 = r.model.weight_bytes();
  CHECK(q3 < fp16.weight_bytes());

  o.eval_path = o.calib_path;
  CHECK_THROWS_WITH(quantize_model(fp16, o, &tok), Catch::Contains("is the evaluation file"));
}

TEST_CASE("stories260K: chain_quantized changes the inputs of later blocks only") {
  const auto tok_owner = open_tokenizer(test::data_file("models/stories260K/tok512.model"));
  const Tokenizer& tok = *tok_owner;
  const Model fp16 = to_fp16(load_model(test::data_file("models/stories260K/stories260K.bin")));
  QuantizeOptions o = tinystories_awq(4, 8, 128);
  const QuantizeResult a = quantize_model(fp16, o, &tok);
  o.chain_quantized = true;
  const QuantizeResult b = quantize_model(fp16, o, &tok);
  CHECK(a.quantization["search"]["next_block_input"] != b.quantization["search"]["next_block_input"]);
  CHECK(a.blocks[0]["output_error"] == b.blocks[0]["output_error"]);  // block 0 sees the embeddings in both
  CHECK(a.blocks[1]["output_error_rtn"] != b.blocks[1]["output_error_rtn"]);
}
