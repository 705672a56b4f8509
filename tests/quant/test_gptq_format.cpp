// The GPTQ checkpoint format (quant/gptq_format.h): the packed layout against hand-computed int32
// words (v1 zero offset included), a round trip through a directory, hand-built gptq_v2 and
// act-order (non-trivial g_idx) checkpoints, and bad configs and tensors refused in one line.
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "common/half.h"
#include "model/block_linears.h"
#include "model/safetensors.h"
#include "quant/gptq_format.h"
#include "quant/quantize.h"
#include "random_model.h"

using namespace qb;

namespace {

// n = 8 outputs, k = 8 inputs, one 4-bit group: q[o][i] = (o + i) % 16, zero[o] = o.
QuantizedWeight hand_weight() {
  QuantizedWeight w;
  w.allocate(8, 8, 4, 8);
  for (int o = 0; o < 8; ++o) {
    for (int i = 0; i < 8; ++i) w.set_code(o, i, static_cast<uint8_t>((o + i) % 16));
    w.scales[o] = float_to_half(0.5f + o);
    w.zeros[o] = static_cast<uint8_t>(o);
  }
  return w;
}

// A config whose linears pack at 4 bits (every dimension a multiple of 8), GQA, untied head.
LlamaConfig packable_config() {
  LlamaConfig c = test::small_config(false);
  c.intermediate_size = 48;
  return c;
}

// Quantized with RTN at g16 (GPTQ's output is the same kind of QuantizedWeight).
Model quantized_model(int bits, bool symmetric) {
  QuantizeOptions q;
  q.family = MethodFamily::Rtn;
  q.bits = bits;
  q.group_size = 16;
  q.symmetric = symmetric;
  return quantize_model(to_fp16(test::random_model(packable_config(), 5)), q, nullptr).model;
}

void check_same_weights(const Model& a, const Model& b) {
  REQUIRE(a.layers.size() == b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const auto la = block_linears(a.layers[i]);
    const auto lb = block_linears(b.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      INFO(linear_hf_name(static_cast<int>(i), t));
      const QuantizedWeight &x = *la[t]->quant, &y = *lb[t]->quant;
      CHECK(x.n == y.n);
      CHECK(x.k == y.k);
      CHECK(x.bits == y.bits);
      CHECK(x.group_size == y.group_size);
      CHECK(x.symmetric == y.symmetric);
      CHECK(x.packed_codes() == y.packed_codes());
      CHECK(x.scales == y.scales);
      CHECK(x.zeros == y.zeros);
      CHECK(x.g_idx == y.g_idx);
    }
  }
}

// Copies checkpoint `from` to `to`, letting `edit_config` change config.json and `edit` each tensor.
void rewrite_checkpoint(const std::string& from, const std::string& to,
                        const std::function<void(nlohmann::json&)>& edit_config,
                        const std::function<void(SafetensorsBlob&)>& edit = {}) {
  std::filesystem::create_directories(to);
  nlohmann::json config = read_json_file(from + "/config.json");
  edit_config(config);
  write_file_atomic(to + "/config.json", config.dump(2));
  const SafetensorsFile file(from + "/model.safetensors");
  std::vector<SafetensorsBlob> blobs;
  for (const auto& [name, e] : file.entries()) {
    SafetensorsBlob b{name, e.dtype, e.shape, std::vector<uint8_t>(e.data, e.data + e.nbytes)};
    if (edit) edit(b);
    blobs.push_back(std::move(b));
  }
  write_safetensors(to + "/model.safetensors", blobs);
}

int32_t* words(SafetensorsBlob& b) { return reinterpret_cast<int32_t*>(b.bytes.data()); }

std::string load_error(const std::string& dir) {
  try {
    load_gptq_checkpoint(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

TEST_CASE("GPTQ packing: codes along the input dimension, v1 zero points minus one") {
  const GptqPackedLinear p = pack_gptq_linear(hand_weight(), "hand");
  REQUIRE(p.qweight.size() == 8);  // [k/8 = 1, n = 8]
  // Output 0 holds inputs 0..7 = codes 0..7 in slots 0..7; output 1 codes 1..8; output 7 codes 7..14.
  CHECK(static_cast<uint32_t>(p.qweight[0]) == 0x76543210u);
  CHECK(static_cast<uint32_t>(p.qweight[1]) == 0x87654321u);
  CHECK(static_cast<uint32_t>(p.qweight[7]) == 0xEDCBA987u);
  REQUIRE(p.qzeros.size() == 1);  // [1 group, n/8 = 1]
  // Zeros 0..7 stored as zero - 1 mod 16: 15, 0, 1, ..., 6.
  CHECK(static_cast<uint32_t>(p.qzeros[0]) == 0x6543210Fu);
  CHECK(p.g_idx == std::vector<int32_t>(8, 0));
  CHECK(unpack_gptq_linear(p, false, "hand").zeros == hand_weight().zeros);
  // Read as gptq_v2, the same words are the zeros themselves.
  CHECK(unpack_gptq_linear(p, true, "hand").zeros == std::vector<uint8_t>{15, 0, 1, 2, 3, 4, 5, 6});

  QuantizedWeight w8;  // 8-bit: four values per word
  w8.allocate(4, 4, 8, 4);
  const uint8_t codes8[4][4] = {{1, 2, 3, 4}, {10, 20, 30, 40}, {0, 0, 0, 255}, {9, 9, 9, 9}};
  for (int o = 0; o < 4; ++o) w8.set_row_codes(o, codes8[o]);
  w8.scales.assign(4, float_to_half(1.0f));
  w8.zeros = {128, 0, 1, 255};
  const GptqPackedLinear p8 = pack_gptq_linear(w8, "w8");
  CHECK(static_cast<uint32_t>(p8.qweight[0]) == 0x04030201u);
  CHECK(static_cast<uint32_t>(p8.qweight[1]) == 0x281E140Au);
  CHECK(static_cast<uint32_t>(p8.qweight[2]) == 0xFF000000u);
  CHECK(static_cast<uint32_t>(p8.qzeros[0]) == 0xFE00FF7Fu);  // 127, 255 (0 - 1), 0, 254
  CHECK(unpack_gptq_linear(p8, false, "w8").packed_codes() == w8.packed_codes());

  QuantizedWeight w3 = hand_weight();
  w3.bits = 3;
  CHECK_THROWS_WITH(pack_gptq_linear(w3, "layer"), Catch::StartsWith("layer: 3-bit weights cannot be stored"));
}

TEST_CASE("a GPTQ checkpoint round-trips bit-exactly, with its config and quantize_config.json") {
  for (bool symmetric : {false, true}) {
    const Model m = quantized_model(4, symmetric);
    const std::string dir = test::temp_dir("gptq-rt") + "/ckpt";
    write_gptq_checkpoint(m, dir, {"", nullptr, true, 0.02});
    CHECK(is_gptq_checkpoint(dir));
    const nlohmann::json qc = read_json_file(dir + "/config.json")["quantization_config"];
    CHECK(qc["quant_method"] == "gptq");
    CHECK(qc["bits"] == 4);
    CHECK(qc["group_size"] == 16);
    CHECK(qc["desc_act"] == true);
    CHECK(qc["sym"] == symmetric);
    CHECK(qc["damp_percent"] == 0.02);
    CHECK(qc["checkpoint_format"] == "gptq");
    CHECK(read_json_file(dir + "/quantize_config.json") == qc);
    const Model back = load_gptq_checkpoint(dir);
    CHECK(back.format == "gptq-safetensors");
    check_same_weights(m, back);
  }
  const Model m8 = quantized_model(8, false);
  const std::string dir8 = test::temp_dir("gptq-rt8") + "/ckpt";
  write_gptq_checkpoint(m8, dir8);
  check_same_weights(m8, load_gptq_checkpoint(dir8));
}

TEST_CASE("hand-built checkpoints: gptq_v2 zeros, quantize_config.json only, act-order g_idx") {
  const Model m = quantized_model(4, false);
  const std::string root = test::temp_dir("gptq-hand");
  write_gptq_checkpoint(m, root + "/v1");

  SECTION("gptq_v2 stores the zero points as they are") {
    const auto v2_config = [](nlohmann::json& c) { c["quantization_config"]["checkpoint_format"] = "gptq_v2"; };
    rewrite_checkpoint(root + "/v1", root + "/v2", v2_config, [](SafetensorsBlob& b) {
      if (b.name.find(".qzeros") == std::string::npos) return;
      for (size_t i = 0; i < b.bytes.size() / 4; ++i) {
        uint32_t v1 = static_cast<uint32_t>(words(b)[i]), v2 = 0;
        for (int s = 0; s < 8; ++s) v2 |= ((((v1 >> (4 * s)) & 15u) + 1u) & 15u) << (4 * s);
        words(b)[i] = static_cast<int32_t>(v2);
      }
    });
    check_same_weights(m, load_gptq_checkpoint(root + "/v2"));
  }
  SECTION("an older AutoGPTQ directory: settings in quantize_config.json alone") {
    rewrite_checkpoint(root + "/v1", root + "/old", [](nlohmann::json& c) { c.erase("quantization_config"); });
    write_file_atomic(root + "/old/quantize_config.json", R"({"bits": 4, "group_size": 16, "desc_act": false})");
    CHECK(is_gptq_checkpoint(root + "/old"));
    check_same_weights(m, load_gptq_checkpoint(root + "/old"));
  }
  SECTION("act-order without static groups: g_idx out of order is kept and dequantized by it") {
    // Layer 0's q_proj (k = 32, two groups of 16): channel i in group (i % 2), as act-order files
    // assign groups in processing order.
    const std::string q_gidx = "model.layers.0.self_attn.q_proj.g_idx";
    rewrite_checkpoint(root + "/v1", root + "/act", [](nlohmann::json&) {}, [&](SafetensorsBlob& b) {
      if (b.name != q_gidx) return;
      for (size_t i = 0; i < b.bytes.size() / 4; ++i) words(b)[i] = static_cast<int32_t>(i % 2);
    });
    const Model act = load_gptq_checkpoint(root + "/act");
    const QuantizedWeight& w = *act.layers[0].q_proj.quant;
    REQUIRE(w.g_idx.size() == 32);
    CHECK(w.g_idx[1] == 1);
    CHECK(w.stored_bytes() == m.layers[0].q_proj.quant->stored_bytes() + 32 * 4);
    const std::vector<float> deq = w.dequantize();
    for (int o = 0; o < w.n; ++o)
      for (int i = 0; i < w.k; ++i) {
        const int g = i % 2;
        const float expected =
            (float(w.code(o, i)) - float(w.zeros[g * w.n + o])) * half_to_float(w.scales[g * w.n + o]);
        REQUIRE(deq[o * w.k + i] == expected);
      }
    CHECK(act.layers[0].k_proj.quant->g_idx.empty());  // i / group_size stays implicit
  }
}

TEST_CASE("bad GPTQ checkpoints are refused in one line naming the file and the field or tensor") {
  const Model m = quantized_model(4, false);
  const std::string root = test::temp_dir("gptq-bad");
  write_gptq_checkpoint(m, root + "/good");
  int case_no = 0;
  auto error_of = [&](const std::function<void(nlohmann::json&)>& edit_config,
                      const std::function<void(SafetensorsBlob&)>& edit = {}) {
    const std::string dir = root + "/bad" + std::to_string(case_no++);
    rewrite_checkpoint(root + "/good", dir, edit_config, edit);
    const std::string msg = load_error(dir);
    CHECK(msg.find('\n') == std::string::npos);
    return std::make_pair(dir, msg);
  };
  auto config_field = [](const char* key, nlohmann::json value) {
    return [=](nlohmann::json& c) { c["quantization_config"][key] = value; };
  };
  {
    const auto [dir, msg] = error_of(config_field("bits", 5));
    CHECK_THAT(msg, Catch::StartsWith(dir + "/config.json: field 'quantization_config.bits' is 5"));
  }
  {
    const auto [dir, msg] = error_of(config_field("group_size", 0));
    CHECK_THAT(msg, Catch::StartsWith(dir + "/config.json: field 'quantization_config.group_size' is 0"));
  }
  {
    const auto [dir, msg] = error_of(config_field("group_size", 2147483647));
    CHECK_THAT(msg, Catch::StartsWith(dir + "/config.json: field 'quantization_config.group_size' is 2147483647"));
  }
  {
    const auto [dir, msg] = error_of(config_field("desc_act", "yes"));
    CHECK_THAT(msg, Catch::StartsWith(dir + "/config.json: field 'quantization_config.desc_act'"));
  }
  {
    const auto [dir, msg] = error_of(config_field("quant_method", "awq"));
    CHECK_THAT(msg, Catch::StartsWith(dir + "/config.json: field 'quantization_config.quant_method' is \"awq\""));
  }
  {
    const auto [dir, msg] = error_of(config_field("checkpoint_format", "marlin"));
    CHECK_THAT(msg, Catch::Contains("quantization_config.checkpoint_format"));
  }
  {
    const auto [dir, msg] = error_of([](nlohmann::json&) {}, [](SafetensorsBlob& b) {
      if (b.name != "model.layers.0.mlp.up_proj.qweight") return;
      b.shape = {b.shape[1], b.shape[0]};  // [n, k/8] instead of [k/8, n]
    });
    CHECK_THAT(msg, Catch::Contains("model.layers.0.mlp.up_proj.qweight"));
    CHECK_THAT(msg, Catch::Contains("model.safetensors"));
  }
  {
    const auto [dir, msg] = error_of([](nlohmann::json&) {}, [](SafetensorsBlob& b) {
      if (b.name == "model.layers.0.self_attn.o_proj.g_idx") words(b)[3] = 2;  // k = 32: groups 0 and 1
    });
    CHECK_THAT(msg, Catch::StartsWith("model.layers.0.self_attn.o_proj.g_idx: entry 3 is 2, outside 0..1"));
  }
  {  // neither a quantization_config nor quantize_config.json
    const auto [dir, msg] = error_of([](nlohmann::json& c) { c.erase("quantization_config"); });
    CHECK_THAT(msg, Catch::StartsWith(dir + ": config.json has no quantization_config"));
    CHECK_FALSE(is_gptq_checkpoint(dir));
  }
  CHECK_THROWS_WITH(check_gptq_storable(test::small_config(false), 4),
                    Catch::Contains("multiples of 8"));  // intermediate_size 44
  CHECK_THROWS_WITH(check_gptq_storable(packable_config(), 3), Catch::Contains("3-bit weights cannot be stored"));
}
