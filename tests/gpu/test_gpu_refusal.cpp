// What the CUDA backend refuses, checked before any CUDA call (so this runs on machines without a
// GPU): quantized layers the W4A16 kernels cannot take, named, with no silent fallback; weights
// whose shapes disagree with the config.
#include <catch2/catch.hpp>

#include "gpu/cuda_backend.h"
#include "model/load.h"
#include "quant/quantize.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() { return test::require_data("models/stories260K/stories260K.bin"); }

static Model rtn(const Model& fp16, int bits, int group_size) {
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.bits = bits;
  o.group_size = group_size;
  return quantize_model(fp16, o, nullptr).model;
}

static Model random_fp16(int intermediate_size) {
  LlamaConfig c = test::small_config(false);
  c.hidden_size = 256;
  c.intermediate_size = intermediate_size;
  return to_fp16(test::random_model(c, 3));
}

TEST_CASE("stories260K 4-bit: its 172-wide MLP fits neither the packing nor the groups") {
  // gate_proj [172, 64]: 172 outputs are not a multiple of 8 (packed int32 columns), whatever the
  // group; down_proj [64, 172] would fail next (172 inputs are no multiple of 32/64/128).
  const Model fp16 = to_fp16(load_model(test::data_file("models/stories260K/stories260K.bin")));
  CHECK_THROWS_WITH(make_cuda_backend(rtn(fp16, 4, 32)),
                    Catch::StartsWith("model.layers.0.mlp.gate_proj: cannot run on the CUDA backend") &&
                        Catch::Contains("bits=4 group_size=32 in_features=64 out_features=172"));
}

TEST_CASE("bit widths and group sizes the W4A16 kernels do not take are refused by layer") {
  const Model fp16 = random_fp16(384);
  CHECK_THROWS_WITH(make_cuda_backend(rtn(fp16, 3, 128)),
                    Catch::StartsWith("model.layers.0.self_attn.q_proj: cannot run on the CUDA backend") &&
                        Catch::Contains("bits=3 group_size=128"));
  CHECK_THROWS_WITH(make_cuda_backend(rtn(fp16, 4, 16)), Catch::Contains("q_proj") && Catch::Contains("group_size=16"));
  // Per channel: one group of k = 256 inputs.
  CHECK_THROWS_WITH(make_cuda_backend(rtn(fp16, 4, -1)), Catch::Contains("q_proj") && Catch::Contains("group_size=256"));
  // g128 does not divide down_proj's 352 inputs, g32 does.
  const Model odd = random_fp16(352);
  CHECK_THROWS_WITH(make_cuda_backend(rtn(odd, 4, 128)),
                    Catch::StartsWith("model.layers.0.mlp.down_proj") && Catch::Contains("in_features=352"));
}

TEST_CASE("weights that disagree with the config are refused by name") {
  Model m = random_fp16(384);
  m.config.intermediate_size = 352;
  CHECK_THROWS_WITH(make_cuda_backend(m), Catch::StartsWith("model.layers.0.mlp.gate_proj: shape [384, 256] does not "
                                                            "match the config's [352, 256]"));
}

TEST_CASE("kept FP16 columns (rtn-keep) are refused by layer: they run on the CPU only") {
  QuantizeOptions o;
  o.family = MethodFamily::RtnKeep;
  o.keep_by = KeepBy::Weight;
  o.bits = 4;
  o.group_size = 128;  // what the W4A16 kernels take without the kept columns
  CHECK_THROWS_WITH(make_cuda_backend(quantize_model(random_fp16(384), o, nullptr).model),
                    "model.layers.0.self_attn.q_proj: kept FP16 columns are evaluated on the CPU only");
}

TEST_CASE("act-order groups (a GPTQ g_idx) are refused by layer: they run on the CPU only") {
  Model m = rtn(random_fp16(384), 4, 128);
  QuantizedWeight q = *m.layers[0].o_proj.quant;
  q.g_idx.resize(q.k);
  for (int i = 0; i < q.k; ++i) q.g_idx[i] = i % q.n_groups();
  m.layers[0].o_proj.quant = std::make_shared<const QuantizedWeight>(q);
  CHECK_THROWS_WITH(make_cuda_backend(m), Catch::StartsWith("model.layers.0.self_attn.o_proj: act-order groups"));
}
