// RTN with FP16 kept input channels (rtn-keep, quant/rtn_keep.h): the kept columns are the FP16
// originals bit for bit and every other column is plain RTN; the channel choices; the bytes; and
// the places that cannot take such a linear (the AutoAWQ writer; the CUDA backend: tests/gpu).
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "common/error.h"
#include "common/half.h"
#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "quant/awq_format.h"
#include "quant/quantize.h"
#include "quant/rtn_keep.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() { return ""; }

namespace {

QuantizeOptions keep_options(MethodFamily family, KeepBy by) {
  QuantizeOptions o;
  o.family = family;
  o.bits = 3;
  o.group_size = 16;
  o.keep_by = by;
  o.keep_fraction = 0.1;  // 4 of 32 and 5 of 44 input channels
  return o;
}

const Model& small_fp16() {
  static const Model m = to_fp16(test::random_model(test::small_config(false), 5));
  return m;
}

}  // namespace

TEST_CASE("kept columns are the FP16 originals bit for bit; the others are plain RTN") {
  const Model& fp16 = small_fp16();
  const Model rtn = quantize_model(fp16, keep_options(MethodFamily::Rtn, KeepBy::Weight), nullptr).model;
  for (KeepBy by : {KeepBy::Weight, KeepBy::Random}) {
    const QuantizeResult keep = quantize_model(fp16, keep_options(MethodFamily::RtnKeep, by), nullptr);
    for (size_t i = 0; i < fp16.layers.size(); ++i) {
      const auto original = block_linears(fp16.layers[i]);
      const auto plain = block_linears(rtn.layers[i]);
      const auto kept = block_linears(keep.model.layers[i]);
      for (int t = 0; t < kNumLinears; ++t) {
        const Linear& l = *kept[t];
        REQUIRE(l.kept);
        const int n = l.out_features(), k = l.in_features();
        CHECK(static_cast<int>(l.kept->cols.size()) == kept_channel_count(k, 0.1));
        CHECK(l.quant->packed_codes() == plain[t]->quant->packed_codes());  // W is quantized whole, kept columns included
        const std::vector<float> w = original[t]->dense.to_float(), w_rtn = widen_linear(*plain[t]),
                                 w_keep = widen_linear(l);
        std::vector<bool> is_kept(k, false);
        for (int32_t c : l.kept->cols) is_kept[c] = true;
        for (int o = 0; o < n; ++o)
          for (int j = 0; j < k; ++j) {
            const size_t e = static_cast<size_t>(o) * k + j;
            if (is_kept[j])
              REQUIRE(float_to_half(w_keep[e]) == float_to_half(w[e]));
            else
              REQUIRE(w_keep[e] == w_rtn[e]);
          }
      }
    }
  }
}

TEST_CASE("act and weight keep the channels of largest mean |x| and mean |w|") {
  const int rows = 50, k = 40;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * k);
  for (float& v : x) v = normal(rng);
  for (int r = 0; r < rows; ++r)
    for (int c : {3, 17, 38}) x[r * k + c] *= 100.0f;  // planted outlier channels
  CHECK(top_channels(mean_abs_columns(x.data(), rows, k), 3) == std::vector<int32_t>{3, 17, 38});
  CHECK(top_channels(mean_abs_columns(x.data(), rows, k), 1).size() == 1);
  // weight: the same ranking over the columns of W [out, in].
  const Model& fp16 = small_fp16();
  const QuantizeResult keep = quantize_model(fp16, keep_options(MethodFamily::RtnKeep, KeepBy::Weight), nullptr);
  const Linear& up = keep.model.layers[1].up_proj;
  const std::vector<float> w = fp16.layers[1].up_proj.dense.to_float();
  CHECK(up.kept->cols == top_channels(mean_abs_columns(w.data(), up.out_features(), up.in_features()), 4));
}

TEST_CASE("the count rounds 1% up; the random choice is fixed by its recorded seed") {
  CHECK(kept_channel_count(4096, 0.01) == 41);
  CHECK(kept_channel_count(11008, 0.01) == 111);
  CHECK(kept_channel_count(256, 0.01) == 3);
  CHECK(kept_channel_count(100, 0.01) == 1);
  CHECK(kept_channel_count(32, 0.005) == 1);
  std::mt19937_64 a(kKeepSeed), b(kKeepSeed);
  const std::vector<int32_t> cols = random_channels(50, 10, a);
  CHECK(cols == random_channels(50, 10, b));
  REQUIRE(cols.size() == 10);
  for (size_t i = 0; i < cols.size(); ++i) {
    CHECK(cols[i] >= 0);
    CHECK(cols[i] < 50);
    if (i > 0) CHECK(cols[i] > cols[i - 1]);  // distinct, ascending
  }
  const QuantizeResult r = quantize_model(small_fp16(), keep_options(MethodFamily::RtnKeep, KeepBy::Random), nullptr);
  CHECK(r.quantization["method"] == "rtn-keep");
  CHECK(r.quantization["keep"]["by"] == "random");
  CHECK(r.quantization["keep"]["fraction"] == 0.1);
  CHECK(r.quantization["keep"]["seed"] == kKeepSeed);
  CHECK(r.quantization["keep"]["channels_per_linear"]["mlp.down_proj"] == 5);
  CHECK(r.quantization["keep"]["channels_per_linear"]["self_attn.q_proj"] == 4);
  CHECK(r.quantization["calibration"].is_null());
  const QuantizeResult w = quantize_model(small_fp16(), keep_options(MethodFamily::RtnKeep, KeepBy::Weight), nullptr);
  CHECK(w.quantization["keep"]["seed"].is_null());
  // By act, the calibration needs a tokenizer.
  CHECK_THROWS_WITH(quantize_model(small_fp16(), keep_options(MethodFamily::RtnKeep, KeepBy::Act), nullptr),
                    Catch::StartsWith("rtn-keep: needs a tokenizer"));
}

TEST_CASE("kept columns are counted as FP16 values plus int32 indices") {
  const Model& fp16 = small_fp16();
  const Model rtn = quantize_model(fp16, keep_options(MethodFamily::Rtn, KeepBy::Weight), nullptr).model;
  const Model keep = quantize_model(fp16, keep_options(MethodFamily::RtnKeep, KeepBy::Weight), nullptr).model;
  size_t kept_bytes = 0;
  for (size_t i = 0; i < keep.layers.size(); ++i) {
    const auto plain = block_linears(rtn.layers[i]);
    const auto kept = block_linears(keep.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      const size_t n = kept[t]->out_features(), count = kept[t]->kept->cols.size();
      CHECK(kept[t]->stored_bytes() == plain[t]->stored_bytes() + n * count * 2 + count * 4);
      kept_bytes += n * count * 2 + count * 4;
    }
  }
  auto bytes = [](const Model& m) {
    std::map<std::string, size_t> by;
    for (const auto& [dtype, n] : m.weight_bytes_by_dtype()) by[dtype] = n;
    return by;
  };
  CHECK(bytes(keep)["F16"] == bytes(rtn)["F16"] + kept_bytes);
  CHECK(bytes(keep)["Q3"] == bytes(rtn)["Q3"]);
  CHECK(keep.weight_bytes() == rtn.weight_bytes() + kept_bytes);
}

TEST_CASE("a non-finite kept value is named; the AutoAWQ writer refuses kept columns") {
  Model keep = quantize_model(small_fp16(), keep_options(MethodFamily::RtnKeep, KeepBy::Weight), nullptr).model;
  const std::string dir = (std::filesystem::temp_directory_path() / "qb_rtn_keep_never_written").string();
  CHECK_THROWS_WITH(write_awq_checkpoint(keep, dir, {}),
                    "model.layers.0.self_attn.q_proj: has kept FP16 columns, which the AutoAWQ format cannot store");
  CHECK_FALSE(std::filesystem::exists(dir));
  KeptColumns bad = *keep.layers[1].o_proj.kept;
  bad.values[2] = float_to_half(std::numeric_limits<float>::infinity());
  keep.layers[1].o_proj.kept = std::make_shared<const KeptColumns>(bad);
  CHECK_THROWS_WITH(check_finite(keep), Catch::StartsWith("model.layers.1.self_attn.o_proj.kept: non-finite"));
}
