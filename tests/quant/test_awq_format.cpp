// The AutoAWQ gemm format: the packing order on known words, a hand-made checkpoint whose values
// are known, a write/load round trip that keeps the model's function, and bad checkpoints.
#include <catch2/catch.hpp>

#include "test_support.h"

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <random>

#include "common/error.h"
#include "common/files.h"
#include "common/half.h"
#include "layouts/awq_layout.h"
#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "model/load.h"
#include "model/safetensors.h"
#include "quant/awq_format.h"
#include "quant/quantize.h"
#include "random_model.h"

using namespace qb;

TEST_CASE("pack puts column j of eight in nibble slot_of_column(j): 0..7 -> 0x75316420") {
  const uint8_t values[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  CHECK(awq::pack(values) == 0x75316420u);
  for (int j = 0; j < 8; ++j) CHECK(awq::unpack(0x75316420u, j) == static_cast<uint32_t>(j));
}

TEST_CASE("pack/unpack round trip is bit-exact on random codes") {
  std::mt19937 rng(1);
  QuantizedWeight w;
  w.allocate(24, 64, 4, 32);
  std::vector<uint8_t> codes(w.n * w.k);  // [n, k]
  for (auto& v : codes) v = rng() % 16;
  for (int o = 0; o < w.n; ++o) w.set_row_codes(o, &codes[o * w.k]);
  for (auto& v : w.zeros) v = rng() % 16;
  for (auto& v : w.scales) v = float_to_half(0.001f * (1 + rng() % 100));
  const AwqPackedLinear p = pack_awq_linear(w, "x");
  CHECK(p.qweight.size() == 64 * 3);
  CHECK(p.qzeros.size() == 2 * 3);
  const QuantizedWeight back = unpack_awq_linear(p, "x");
  for (int o = 0; o < w.n; ++o)
    for (int i = 0; i < w.k; ++i) REQUIRE(back.code(o, i) == codes[o * w.k + i]);
  CHECK(back.packed_codes() == w.packed_codes());
  CHECK(back.zeros == w.zeros);
  CHECK(back.scales == w.scales);
}

namespace {

// A one-block model, dim = hidden = 8, one head, tied embeddings, group size 4, in AutoAWQ's layout:
// every linear has qweight rows alternating 0x75316420 / 0x89ABCDEF, qzeros 0x76543210 / 0x88888888,
// scales[g][j] = (j + 1) * (g + 1) / 2. `mutate` may edit the tensors or config before writing.
using Mutation = std::function<void(std::vector<SafetensorsBlob>&, nlohmann::json&)>;

template <class T>
SafetensorsBlob blob(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                     const std::vector<T>& v) {
  SafetensorsBlob b{name, dtype, std::move(shape), std::vector<uint8_t>(v.size() * sizeof(T))};
  std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
  return b;
}

std::string hand_made_checkpoint(const std::string& tag, const Mutation& mutate = {}) {
  const std::string dir = test::temp_dir(tag);
  nlohmann::json config = {{"architectures", {"LlamaForCausalLM"}},
                           {"model_type", "llama"},
                           {"hidden_size", 8},
                           {"intermediate_size", 8},
                           {"num_hidden_layers", 1},
                           {"num_attention_heads", 1},
                           {"num_key_value_heads", 1},
                           {"vocab_size", 8},
                           {"max_position_embeddings", 16},
                           {"rms_norm_eps", 1e-5},
                           {"tie_word_embeddings", true},
                           {"torch_dtype", "float16"},
                           {"quantization_config",
                            {{"quant_method", "awq"}, {"bits", 4}, {"group_size", 4}, {"zero_point", true},
                             {"version", "gemm"}, {"modules_to_not_convert", nullptr}}}};
  std::vector<SafetensorsBlob> blobs;
  const std::vector<uint16_t> ones(8, float_to_half(1.0f)), embed(64, float_to_half(0.5f));
  blobs.push_back(blob("model.embed_tokens.weight", "F16", {8, 8}, embed));
  blobs.push_back(blob("model.norm.weight", "F16", {8}, ones));
  blobs.push_back(blob("model.layers.0.input_layernorm.weight", "F16", {8}, ones));
  blobs.push_back(blob("model.layers.0.post_attention_layernorm.weight", "F16", {8}, ones));
  std::vector<int32_t> qweight(8), qzeros = {0x76543210, static_cast<int32_t>(0x88888888u)};
  for (int r = 0; r < 8; ++r) qweight[r] = r % 2 == 0 ? 0x75316420 : static_cast<int32_t>(0x89ABCDEFu);
  std::vector<uint16_t> scales(16);
  for (int g = 0; g < 2; ++g)
    for (int j = 0; j < 8; ++j) scales[g * 8 + j] = float_to_half((j + 1) * (g + 1) * 0.5f);
  for (int t = 0; t < kNumLinears; ++t) {
    const std::string base = linear_hf_name(0, t);
    blobs.push_back(blob(base + ".qweight", "I32", {8, 1}, qweight));
    blobs.push_back(blob(base + ".qzeros", "I32", {2, 1}, qzeros));
    blobs.push_back(blob(base + ".scales", "F16", {2, 8}, scales));
  }
  if (mutate) mutate(blobs, config);
  write_safetensors(dir + "/model.safetensors", blobs);
  write_file_atomic(dir + "/config.json", config.dump());
  return dir;
}

void erase(std::vector<SafetensorsBlob>& blobs, const std::string& name) {
  blobs.erase(std::remove_if(blobs.begin(), blobs.end(), [&](const SafetensorsBlob& b) { return b.name == name; }),
              blobs.end());
}
SafetensorsBlob& find(std::vector<SafetensorsBlob>& blobs, const std::string& name) {
  for (auto& b : blobs)
    if (b.name == name) return b;
  throw std::runtime_error("no " + name);
}

}  // namespace

TEST_CASE("a hand-made AutoAWQ checkpoint loads to the known weights") {
  const std::string dir = hand_made_checkpoint("awq-hand");
  REQUIRE(is_awq_checkpoint(dir));
  const Model m = load_awq_checkpoint(dir);
  CHECK(m.format == "awq-safetensors");
  CHECK_FALSE(m.config.rope_interleaved);
  REQUIRE(m.layers.size() == 1);
  const QuantizedWeight& w = *m.layers[0].down_proj.quant;
  CHECK(w.n == 8);
  CHECK(w.k == 8);
  CHECK(w.bits == 4);
  CHECK(w.group_size == 4);
  // Odd rows 0x89ABCDEF: slots 0..7 hold F E D C B A 9 8 for columns 0 2 4 6 1 3 5 7.
  const uint8_t odd_codes[8] = {15, 11, 14, 10, 13, 9, 12, 8};
  const uint8_t zeros_group0[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // 0x76543210
  const std::vector<float> deq = w.dequantize();
  for (int j = 0; j < 8; ++j)
    for (int r = 0; r < 8; ++r) {
      const int code = r % 2 == 0 ? j : odd_codes[j];
      const int g = r / 4, zero = g == 0 ? zeros_group0[j] : 8;
      CHECK(w.code(j, r) == code);
      CHECK(w.zeros[g * 8 + j] == zero);
      CHECK(deq[j * 8 + r] == (code - zero) * (j + 1) * (g + 1) * 0.5f);
    }
  CHECK(m.lm_head.data == m.embed_tokens.data);  // tied
  CHECK(w.stored_bytes() == 8 * 8 / 2 + 2 * 8 * 2 + 2 * 8 / 2);
}

TEST_CASE("a sharded checkpoint (model.safetensors.index.json) loads the same weights") {
  const std::string one = hand_made_checkpoint("awq-one");
  // The same tensors split over two shards as HF's save_pretrained writes them: the MLP in shard 2.
  const std::string dir = test::temp_dir("awq-sharded");
  const SafetensorsFile source(one + "/model.safetensors");
  std::vector<SafetensorsBlob> shards[2];
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  for (const auto& [name, e] : source.entries()) {
    const int shard = name.find(".mlp.") != std::string::npos ? 1 : 0;
    shards[shard].push_back({name, e.dtype, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
    index["weight_map"][name] = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
  }
  write_safetensors(dir + "/model-00001-of-00002.safetensors", shards[0]);
  write_safetensors(dir + "/model-00002-of-00002.safetensors", shards[1]);
  write_file_atomic(dir + "/model.safetensors.index.json", index.dump());
  write_file_atomic(dir + "/config.json", read_text_file(one + "/config.json"));
  const Model a = load_awq_checkpoint(one), b = load_awq_checkpoint(dir);
  CHECK(a.layers[0].up_proj.quant->packed_codes() == b.layers[0].up_proj.quant->packed_codes());
  CHECK(a.layers[0].up_proj.quant->scales == b.layers[0].up_proj.quant->scales);
  CHECK(a.layers[0].q_proj.quant->zeros == b.layers[0].q_proj.quant->zeros);
}

namespace {

// Splits dir/model.safetensors into two shards (the MLP in the second, as HF's save_pretrained may)
// and an index; `mutate` may edit the shards and the index before they are written.
using ShardMutation = std::function<void(std::vector<SafetensorsBlob>(&)[2], nlohmann::json&)>;

void shard(const std::string& dir, const ShardMutation& mutate) {
  std::vector<SafetensorsBlob> shards[2];
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  {
    const SafetensorsFile source(dir + "/model.safetensors");
    for (const auto& [name, e] : source.entries()) {
      const int i = name.find(".mlp.") != std::string::npos ? 1 : 0;
      shards[i].push_back({name, e.dtype, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)});
      index["weight_map"][name] = "model-0000" + std::to_string(i + 1) + "-of-00002.safetensors";
    }
  }
  std::filesystem::remove(dir + "/model.safetensors");
  mutate(shards, index);
  for (int i = 0; i < 2; ++i)
    write_safetensors(dir + "/model-0000" + std::to_string(i + 1) + "-of-00002.safetensors", shards[i]);
  write_file_atomic(dir + "/model.safetensors.index.json", index.dump());
}

// The error of `load` on `dir`, with the directory written as <dir>.
std::string sharded_error(const std::string& dir, const std::function<Model(const std::string&)>& load) {
  try {
    load(dir);
  } catch (const Error& e) {
    std::string msg = e.what();
    for (size_t at; (at = msg.find(dir)) != std::string::npos;) msg.replace(at, dir.size(), "<dir>");
    return msg;
  }
  return "no error";
}

}  // namespace

TEST_CASE("sharded HF and AWQ directories are validated by one reader with the same errors") {
  const ShardMutation cases[] = {
      [](auto&, auto& index) { index["weight_map"]["model.norm.weight"] = 3; },
      [](auto&, auto& index) { index["weight_map"]["model.norm.weight"] = "model-00003-of-00003.safetensors"; },
      [](auto& shards, auto&) { shards[1].push_back(find(shards[0], "model.embed_tokens.weight")); },
      [](auto&, auto& index) { index["weight_map"]["model.norm.weight"] = "model-00002-of-00002.safetensors"; },
      [](auto&, auto& index) { index.erase("weight_map"); },
  };
  const std::string expected[] = {
      "<dir>/model.safetensors.index.json: field 'weight_map[\"model.norm.weight\"]' is an integer 3, expected a string",
      "<dir>/model-00003-of-00003.safetensors: cannot open",
      "<dir>/model-00002-of-00002.safetensors: tensor 'model.embed_tokens.weight' is also in "
      "<dir>/model-00001-of-00002.safetensors",
      "<dir>/model-00002-of-00002.safetensors: missing tensor 'model.norm.weight', which "
      "<dir>/model.safetensors.index.json places in this file",
      "<dir>/model.safetensors.index.json: missing object 'weight_map'",
  };
  const Model fp32 = test::random_model(test::small_config(false), 8);
  for (size_t i = 0; i < std::size(cases); ++i) {
    const std::string hf = test::temp_dir("hf-sharded");
    test::write_hf_dir(fp32, hf);
    shard(hf, cases[i]);
    const std::string awq = hand_made_checkpoint("awq-sharded-bad");
    shard(awq, cases[i]);
    const std::string hf_error = sharded_error(hf, load_hf_directory);
    CHECK_THAT(hf_error, Catch::StartsWith(expected[i]));
    CHECK(hf_error.find('\n') == std::string::npos);
    CHECK(sharded_error(awq, load_awq_checkpoint) == hf_error);
  }
}

TEST_CASE("bad AWQ checkpoints are refused with one line naming the tensor") {
  auto load_error = [](const std::string& tag, const Mutation& mutate) {
    try {
      load_awq_checkpoint(hand_made_checkpoint(tag, mutate));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string q = "model.layers.0.self_attn.q_proj";
  SECTION("wrong qweight shape") {
    const std::string msg = load_error("awq-shape", [&](auto& blobs, auto&) {
      auto& b = find(blobs, q + ".qweight");
      b.shape = {4, 2};
    });
    CHECK_THAT(msg, Catch::Contains(q + ".qweight") && Catch::Contains("shape [4, 2], expected [8, 1]"));
  }
  SECTION("missing scales") {
    const std::string msg = load_error("awq-missing", [&](auto& blobs, auto&) { erase(blobs, "model.layers.0.mlp.up_proj.scales"); });
    CHECK_THAT(msg, Catch::Contains("missing tensor 'model.layers.0.mlp.up_proj.scales'"));
  }
  SECTION("scales not F16") {
    const std::string msg = load_error("awq-dtype", [&](auto& blobs, auto&) {
      auto& b = find(blobs, q + ".scales");
      b.dtype = "I32";
      b.shape = {2, 4};
    });
    CHECK_THAT(msg, Catch::Contains(q + ".scales") && Catch::Contains("dtype I32"));
  }
  SECTION("group size that does not divide the input dimension") {
    const std::string msg = load_error("awq-group", [&](auto&, auto& config) { config["quantization_config"]["group_size"] = 3; });
    CHECK_THAT(msg, Catch::Contains(q) && Catch::Contains("group size 3 does not divide in_features 8"));
  }
  SECTION("bits other than 4") {
    const std::string msg = load_error("awq-bits", [&](auto&, auto& config) { config["quantization_config"]["bits"] = 3; });
    CHECK_THAT(msg, Catch::Contains("config.json") && Catch::Contains("bits 3"));
  }
  SECTION("gemv layout") {
    const std::string msg = load_error("awq-gemv", [&](auto&, auto& config) { config["quantization_config"]["version"] = "gemv"; });
    CHECK_THAT(msg, Catch::Contains("\"gemv\" not supported"));
  }
  SECTION("unexpected tensor") {
    const std::string msg = load_error("awq-extra", [&](auto& blobs, auto&) {
      blobs.push_back(blob("model.layers.0.mlp.extra", "F16", {1}, std::vector<uint16_t>{0}));
    });
    CHECK_THAT(msg, Catch::Contains("unexpected tensor 'model.layers.0.mlp.extra'"));
  }
}

namespace {
LlamaConfig writable_config(bool interleaved) {
  LlamaConfig c = test::small_config(interleaved);  // dim 32, 4 heads, 2 kv heads
  c.intermediate_size = 48;                                // multiple of 8 and of the group size 16
  return c;
}

std::vector<float> logits_of(const Model& m) {
  const std::vector<int> tokens = {1, 5, 9, 33, 2, 95, 0, 17, 64, 3, 3, 40};
  std::vector<float> logits;
  CpuModel(m).forward(tokens.data(), 1, static_cast<int>(tokens.size()), logits);
  return logits;
}

}  // namespace

TEST_CASE("write then load keeps every code and the model's logits (both RoPE layouts)") {
  for (bool interleaved : {true, false}) {
    const Model fp16 = to_fp16(test::random_model(writable_config(interleaved), 21));
    QuantizeOptions o;
    o.family = MethodFamily::Rtn;
    o.group_size = 16;
    const QuantizeResult q = quantize_model(fp16, o, nullptr);
    const std::string dir = test::temp_dir("awq-roundtrip") + "/out";
    write_awq_checkpoint(q.model, dir, {"", {{"hello", 1}}});
    CHECK(file_exists(dir + "/quantize_report.json"));
    CHECK_FALSE(file_exists(dir + ".tmp." + std::to_string(::getpid())));
    const Model back = load_awq_checkpoint(dir);
    CHECK_FALSE(back.config.rope_interleaved);
    const QuantizedWeight& v0 = *q.model.layers[1].v_proj.quant;
    const QuantizedWeight& v1 = *back.layers[1].v_proj.quant;
    CHECK(v0.packed_codes() == v1.packed_codes());
    CHECK(v0.zeros == v1.zeros);
    CHECK(v0.scales == v1.scales);
    CHECK(back.weight_bytes() == q.model.weight_bytes());
    CHECK(qb::test::max_rel_diff(logits_of(back), logits_of(q.model)) < 1e-5);
    CHECK_THROWS_WITH(write_awq_checkpoint(q.model, dir), Catch::Contains("already exists"));
  }
}

TEST_CASE("Qwen2 biases stay FP16 and unquantized through RTN and the checkpoint; llama3 RoPE and tied heads too") {
  LlamaConfig qwen2 = writable_config(false);
  qwen2.attention_bias = true;
  LlamaConfig llama32 = test::with_llama3_rope(writable_config(false), 32.0f, 8);
  llama32.tie_word_embeddings = true;
  for (const LlamaConfig& c : {qwen2, llama32}) {
    INFO("attention_bias " << c.attention_bias << ", llama3 RoPE " << c.rope_llama3);
    const Model fp16 = to_fp16(test::random_model(c, 23));
    QuantizeOptions o;
    o.family = MethodFamily::Rtn;
    o.group_size = 16;
    const Model q = quantize_model(fp16, o, nullptr).model;
    const std::string dir = test::temp_dir("awq-arch") + "/out";
    write_awq_checkpoint(q, dir);
    const nlohmann::json config = read_json_file(dir + "/config.json");
    CHECK(config["model_type"] == (c.attention_bias ? "qwen2" : "llama"));
    CHECK(config.contains("rope_scaling") == c.rope_llama3);
    const Model back = load_awq_checkpoint(dir);
    CHECK(back.config.attention_bias == c.attention_bias);
    CHECK(back.config.rope_llama3 == c.rope_llama3);
    CHECK(back.config.tie_word_embeddings == c.tie_word_embeddings);
    for (int l = 0; l < c.n_layers; ++l)
      for (LinearIndex t : {kQ, kK, kV}) {
        const Tensor& before = (fp16.layers[l].*kBlockLinears[t].weights).bias;
        const Tensor& quantized = (q.layers[l].*kBlockLinears[t].weights).bias;
        const Tensor& loaded = (back.layers[l].*kBlockLinears[t].weights).bias;
        REQUIRE(bool(loaded.data) == c.attention_bias);
        if (!c.attention_bias) continue;
        CHECK(quantized.dtype == DType::F16);
        CHECK(loaded.dtype == DType::F16);
        CHECK(quantized.to_float() == before.to_float());
        CHECK(loaded.to_float() == before.to_float());
      }
    CHECK(back.parameter_count() == fp16.parameter_count());
    CHECK(back.weight_bytes() == q.weight_bytes());
    CHECK(logits_of(back) == logits_of(q));
  }
}

TEST_CASE("the writer refuses widths and group sizes the format cannot hold, naming the tensor") {
  const Model fp16 = to_fp16(test::random_model(writable_config(false), 4));
  const std::string dir = test::temp_dir("awq-refuse");
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.group_size = 16;
  o.bits = 3;
  CHECK_THROWS_WITH(write_awq_checkpoint(quantize_model(fp16, o, nullptr).model, dir + "/a"),
                    Catch::Contains("model.layers.0.self_attn.q_proj") && Catch::Contains("3-bit"));
  o.bits = 4;
  LlamaConfig c = writable_config(false);
  c.intermediate_size = 40;  // 40 % 16 != 0: down_proj's last group is shorter
  CHECK_THROWS_WITH(write_awq_checkpoint(quantize_model(to_fp16(test::random_model(c, 5)), o, nullptr).model, dir + "/b"),
                    Catch::Contains("model.layers.0.mlp.down_proj") && Catch::Contains("does not divide in_features 40"));
  CHECK_FALSE(std::filesystem::exists(dir + "/a"));
  CHECK_FALSE(std::filesystem::exists(dir + "/b"));
}
