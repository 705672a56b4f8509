// The GGUF reader and ggml's dequantizers without shared data: every block type against blocks
// packed here from the bit diagrams in layouts/ggml_blocks.h (values computed per element from
// the formula, independently of the dequantizer's loops); a small model written as GGUF loads
// with the logits of its HF export; and broken files fail with one line naming file and field.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <functional>
#include <random>

#include "common/error.h"
#include "common/half.h"
#include "gguf_test_writer.h"
#include "layouts/ggml_blocks.h"
#include "model/cpu_forward.h"
#include "model/gguf.h"
#include "model/load.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;
using ggml::Type;

namespace {

// ---- blocks packed from the diagrams ------------------------------------------------------

struct Packed {
  std::vector<uint8_t> bytes;    // the blocks
  std::vector<double> expected;  // x[j] from the type's formula
};

void put_half(std::vector<uint8_t>& b, size_t at, uint16_t h) { std::memcpy(&b[at], &h, 2); }

// A random FP16 scale in [lo, hi), returned as bits and as its exact value.
std::pair<uint16_t, double> half_scale(std::mt19937& rng, double lo, double hi) {
  const uint16_t h = float_to_half(std::uniform_real_distribution<float>(lo, hi)(rng));
  return {h, half_to_float(h)};
}

int uniform(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// One block of each type with random codes, scales and mins; offsets into the block follow the
// struct field order of ggml_blocks.h (asserted there by size).
Packed pack_block(Type type, std::mt19937& rng) {
  Packed p;
  auto& b = p.bytes;
  auto& x = p.expected;
  switch (type) {
    case Type::Q4_0:
    case Type::Q4_1:
    case Type::Q5_0:
    case Type::Q5_1: {
      const bool five = type == Type::Q5_0 || type == Type::Q5_1, affine = type == Type::Q4_1 || type == Type::Q5_1;
      const size_t qh_at = affine ? 4 : 2, qs_at = qh_at + (five ? 4 : 0);
      b.assign(qs_at + 16, 0);
      const auto [dh, d] = half_scale(rng, -0.1, 0.1);
      const auto [mh, m] = half_scale(rng, -0.5, 0.5);
      put_half(b, 0, dh);
      if (affine) put_half(b, 2, mh);
      for (int j = 0; j < 32; ++j) {
        const int q = uniform(rng, 0, five ? 31 : 15);
        b[qs_at + j % 16] |= (q & 15) << (j < 16 ? 0 : 4);  // qs[i] = q[i] | q[i + 16] << 4
        if (five) b[qh_at + j / 8] |= (q >> 4) << (j % 8);  // qh bit j = bit 4 of q[j]
        x.push_back(affine ? d * q + m : d * (q - (five ? 16 : 8)));
      }
      break;
    }
    case Type::Q8_0: {
      b.assign(34, 0);
      const auto [dh, d] = half_scale(rng, -0.1, 0.1);
      put_half(b, 0, dh);
      for (int j = 0; j < 32; ++j) {
        const int q = uniform(rng, -128, 127);
        b[2 + j] = static_cast<uint8_t>(q);
        x.push_back(d * q);
      }
      break;
    }
    case Type::Q2_K: {  // scales[16] qs[64] d dmin
      b.assign(84, 0);
      const auto [dh, d] = half_scale(rng, 0.01, 0.1);
      const auto [mh, dmin] = half_scale(rng, 0.0, 0.05);
      put_half(b, 80, dh);
      put_half(b, 82, mh);
      int sc[16], mn[16];
      for (int i = 0; i < 16; ++i) {
        sc[i] = uniform(rng, 0, 15);
        mn[i] = uniform(rng, 0, 15);
        b[i] = sc[i] | mn[i] << 4;
      }
      for (int j = 0; j < 256; ++j) {
        const int q = uniform(rng, 0, 3), h = j / 128, s = j % 128 / 32, l = j % 32;
        b[16 + 32 * h + l] |= q << (2 * s);
        x.push_back(d * sc[j / 16] * q - dmin * mn[j / 16]);
      }
      break;
    }
    case Type::Q3_K: {  // hmask[32] qs[64] scales[12] d
      b.assign(110, 0);
      const auto [dh, d] = half_scale(rng, 0.01, 0.1);
      put_half(b, 108, dh);
      int sc[16];
      for (int i = 0; i < 16; ++i) {
        sc[i] = uniform(rng, 0, 63);
        b[96 + (i < 8 ? i : i - 8)] |= (sc[i] & 15) << (i < 8 ? 0 : 4);
        b[96 + 8 + i % 4] |= (sc[i] >> 4) << (2 * (i / 4));
      }
      for (int j = 0; j < 256; ++j) {
        const int q = uniform(rng, 0, 7), h = j / 128, s = j % 128 / 32, l = j % 32;
        b[32 + 32 * h + l] |= (q & 3) << (2 * s);
        b[j % 32] |= (q >> 2) << (j / 32);
        x.push_back(d * (sc[j / 16] - 32) * (q - 4));
      }
      break;
    }
    case Type::Q4_K:
    case Type::Q5_K: {  // d dmin scales[12] (qh[32]) qs[128]
      const bool five = type == Type::Q5_K;
      const size_t qh_at = 16, qs_at = five ? 48 : 16;
      b.assign(qs_at + 128, 0);
      const auto [dh, d] = half_scale(rng, 0.001, 0.01);
      const auto [mh, dmin] = half_scale(rng, 0.0, 0.01);
      put_half(b, 0, dh);
      put_half(b, 2, mh);
      int sc[8], mn[8];
      for (int i = 0; i < 8; ++i) {
        sc[i] = uniform(rng, 0, 63);
        mn[i] = uniform(rng, 0, 63);
        if (i < 4) {
          b[4 + i] |= sc[i];
          b[4 + i + 4] |= mn[i];
        } else {
          b[4 + i + 4] |= (sc[i] & 15) | (mn[i] & 15) << 4;
          b[4 + i - 4] |= (sc[i] >> 4) << 6;
          b[4 + i] |= (mn[i] >> 4) << 6;
        }
      }
      for (int j = 0; j < 256; ++j) {
        const int q = uniform(rng, 0, five ? 31 : 15), c = j / 64, r = j % 64;
        b[qs_at + 32 * c + r % 32] |= (q & 15) << (r < 32 ? 0 : 4);
        if (five) b[qh_at + j % 32] |= (q >> 4) << (j / 32);
        x.push_back(d * sc[j / 32] * q - dmin * mn[j / 32]);
      }
      break;
    }
    case Type::Q6_K: {  // ql[128] qh[64] scales[16] d
      b.assign(210, 0);
      const auto [dh, d] = half_scale(rng, 0.001, 0.01);
      put_half(b, 208, dh);
      int sc[16];
      for (int i = 0; i < 16; ++i) {
        sc[i] = uniform(rng, -128, 127);
        b[192 + i] = static_cast<uint8_t>(sc[i]);
      }
      for (int j = 0; j < 256; ++j) {
        const int q = uniform(rng, 0, 63), h = j / 128, s = j % 128 / 32, l = j % 32;
        const int low = q & 15, high = q >> 4;
        b[64 * h + (s % 2) * 32 + l] |= low << (s < 2 ? 0 : 4);
        b[128 + 32 * h + l] |= high << (2 * s);
        x.push_back(d * sc[j / 16] * (q - 32));
      }
      break;
    }
    default: FAIL("no packer for " << ggml::type_name(type));
  }
  REQUIRE(b.size() == ggml::block_bytes(type));
  return p;
}

// ---- errors ----------------------------------------------------------------------------------

std::string write_temp(const std::string& name, const std::string& bytes) {
  static const std::string dir = test::temp_dir("gguf");
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

// The qb::Error message of f, checked to be one line naming `path`; "" when f does not throw.
std::string error_of(const std::string& path, const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find('\n') == std::string::npos);
    CHECK(what.find(path) != std::string::npos);
    return what;
  }
  return "";
}

std::string open_error(const std::string& name, const std::string& bytes) {
  const std::string path = write_temp(name, bytes);
  return error_of(path, [&] { GgufFile{path}; });
}

std::string load_error(const std::string& name, const test::GgufTestFile& f) {
  const std::string path = write_temp(name, f.bytes());
  return error_of(path, [&] { load_gguf_model(path); });
}

template <typename T>
void patch(std::string& bytes, size_t at, T v) {
  std::memcpy(&bytes[at], &v, sizeof(v));
}

Model small_model() { return test::random_model(test::small_config(true), 5); }

}  // namespace

TEST_CASE("every block type dequantizes as its bit diagram says") {
  std::mt19937 rng(11);
  for (Type type : {Type::Q4_0, Type::Q4_1, Type::Q5_0, Type::Q5_1, Type::Q8_0, Type::Q2_K, Type::Q3_K, Type::Q4_K,
                    Type::Q5_K, Type::Q6_K}) {
    INFO(ggml::type_name(type));
    // Three blocks in a row, so that the block stride is checked too.
    std::vector<uint8_t> row;
    std::vector<double> expected;
    for (int i = 0; i < 3; ++i) {
      Packed p = pack_block(type, rng);
      row.insert(row.end(), p.bytes.begin(), p.bytes.end());
      expected.insert(expected.end(), p.expected.begin(), p.expected.end());
    }
    std::vector<float> out(expected.size());
    ggml::dequantize_row(type, row.data(), out.data(), static_cast<int64_t>(out.size()));
    double max_abs = 0, max_err = 0;
    for (size_t j = 0; j < out.size(); ++j) {
      max_abs = std::max(max_abs, std::abs(expected[j]));
      max_err = std::max(max_err, std::abs(out[j] - expected[j]));
    }
    CHECK(max_abs > 0);
    CHECK(max_err <= 1e-6 * max_abs);  // float rounding of the same products
  }
}

TEST_CASE("dense rows widen and block types report ggml's sizes") {
  const std::vector<float> f32{1.5f, -2.25f, 0.0f, -4096.0f};
  std::vector<uint16_t> f16, bf16;
  for (float v : f32) {
    f16.push_back(float_to_half(v));
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    bf16.push_back(static_cast<uint16_t>(bits >> 16));  // exact: these values have 8-bit mantissas
  }
  std::vector<float> out(4);
  for (auto [type, row] : {std::pair<Type, const void*>{Type::F32, f32.data()}, {Type::F16, f16.data()},
                           {Type::BF16, bf16.data()}}) {
    ggml::dequantize_row(type, row, out.data(), 4);
    CHECK(out == f32);
  }
  CHECK(ggml::block_bytes(Type::Q4_K) == 144);
  CHECK(ggml::block_elems(Type::Q4_K) == 256);
  CHECK(std::string(ggml::type_name(Type::Q5_1)) == "Q5_1");
  CHECK(ggml::is_weight_type(12));
  CHECK_FALSE(ggml::is_weight_type(15));  // Q8_K: activations only
  CHECK_FALSE(ggml::is_weight_type(19));  // IQ2_XXS
  CHECK_FALSE(ggml::is_weight_type(4));   // the removed Q4_2
  CHECK_THROWS_AS(ggml::dequantize_row(Type::Q4_0, f32.data(), out.data(), 20), Error);  // not whole blocks
}

TEST_CASE("a model written as GGUF loads with its weights and its HF export's logits") {
  const Model m = small_model();
  const test::GgufTestFile f = test::gguf_of_model(m);
  const std::string path = write_temp("small.gguf", f.bytes());
  const Model g = load_model(path);
  CHECK(g.format == "gguf");
  CHECK(g.path == path);
  CHECK(g.config.rope_interleaved);
  CHECK_FALSE(g.config.tie_word_embeddings);
  CHECK(g.config.hidden_size == m.config.hidden_size);
  CHECK(g.config.intermediate_size == m.config.intermediate_size);
  CHECK(g.config.n_layers == m.config.n_layers);
  CHECK(g.config.n_heads == m.config.n_heads);
  CHECK(g.config.n_kv_heads == m.config.n_kv_heads);
  CHECK(g.config.vocab_size == m.config.vocab_size);
  CHECK(g.config.max_seq_len == m.config.max_seq_len);
  CHECK(g.config.rms_norm_eps == m.config.rms_norm_eps);
  CHECK(g.layers[1].down_proj.name == "model.layers.1.mlp.down_proj");
  CHECK(g.layers[1].down_proj.dense.to_float() == m.layers[1].down_proj.dense.to_float());
  CHECK(g.lm_head.name == "lm_head.weight");

  // The HF export has half-split q/k rows and HF RoPE: the same function.
  const std::string hf = test::temp_dir("gguf-hf");
  test::write_hf_dir(m, hf);
  const std::vector<int> tokens{1, 7, 30, 2, 11, 5, 63, 0, 9};
  std::vector<float> a, b;
  CpuModel(g).forward(tokens.data(), 1, int(tokens.size()), a);
  CpuModel(load_model(hf)).forward(tokens.data(), 1, int(tokens.size()), b);
  CHECK(test::max_rel_diff(a, b) < 1e-5);

  SECTION("without output.weight the head is tied, and the magic alone selects the reader") {
    test::GgufTestFile tied = f;
    tied.tensors.pop_back();
    const std::string p = write_temp("tied-no-suffix", tied.bytes());
    const Model t = load_model(p);
    CHECK(t.format == "gguf");
    CHECK(t.config.tie_word_embeddings);
    CHECK(t.lm_head.data == t.embed_tokens.data);
  }
}

TEST_CASE("metadata of every value type reads back through the typed getters") {
  test::GgufTestFile f;
  auto scalar = [](GgufType type, uint64_t u, int64_t i, double r) {
    GgufValue v;
    v.type = type;
    v.uint = u;
    v.sint = i;
    v.real = r;
    return v;
  };
  f.set("u8", scalar(GgufType::UINT8, 200, 0, 0));
  f.set("i8", scalar(GgufType::INT8, 0, -100, 0));
  f.set("u16", scalar(GgufType::UINT16, 60000, 0, 0));
  f.set("i16", scalar(GgufType::INT16, 0, -30000, 0));
  f.set("u32", GgufValue::u32(4000000000u));
  f.set("i32", GgufValue::i32(-2000000000));
  f.set("u64", GgufValue::u64(uint64_t(1) << 40));
  f.set("i64", scalar(GgufType::INT64, 0, -(int64_t(1) << 50), 0));
  f.set("huge", GgufValue::u64(~uint64_t(0)));
  f.set("f32", GgufValue::f32(0.25f));
  f.set("f64", scalar(GgufType::FLOAT64, 0, 0, 1e-300));
  f.set("yes", GgufValue::boolean(true));
  f.set("s", GgufValue::str("héllo"));
  f.set("strings", GgufValue::strings({"a", "", "c c"}));
  f.set("floats", GgufValue::f32s({1.0f, -2.0f}));
  f.set("ints", GgufValue::i32s({3, -4}));
  f.set("general.alignment", GgufValue::u32(64));
  f.alignment = 64;
  const std::string path = write_temp("metadata.gguf", f.bytes());
  const GgufFile g(path);
  CHECK(g.version() == 3);
  CHECK(g.alignment() == 64);
  CHECK(g.data_start() % 64 == 0);
  CHECK(g.metadata().size() == f.kv.size());
  CHECK(g.get_int("u8") == 200);
  CHECK(g.get_int("i8") == -100);
  CHECK(g.get_int("u16") == 60000);
  CHECK(g.get_int("i16") == -30000);
  CHECK(g.get_int("u32") == 4000000000);
  CHECK(g.get_int("i32") == -2000000000);
  CHECK(g.get_int("u64") == int64_t(1) << 40);
  CHECK(g.get_int("i64") == -(int64_t(1) << 50));
  CHECK(g.get_float("f32") == 0.25);
  CHECK(g.get_float("f64") == 1e-300);
  CHECK(g.get_bool("yes"));
  CHECK(g.get_string("s") == "héllo");
  CHECK(g.get_string_array("strings") == std::vector<std::string>{"a", "", "c c"});
  CHECK(g.get_float_array("floats") == std::vector<float>{1.0f, -2.0f});
  CHECK(g.get_int_array("ints") == std::vector<int64_t>{3, -4});
  CHECK(g.get_int_or("absent", 7) == 7);
  CHECK(g.tensors().empty());

  CHECK_THAT(error_of(path, [&] { g.get_int("s"); }),
             Catch::Contains("metadata key s: expected an integer, found STRING"));
  CHECK_THAT(error_of(path, [&] { g.get_string("strings"); }),
             Catch::Contains("metadata key strings: expected STRING, found ARRAY of STRING"));
  CHECK_THAT(error_of(path, [&] { g.get_float("u32"); }), Catch::Contains("expected FLOAT32 or FLOAT64, found UINT32"));
  CHECK_THAT(error_of(path, [&] { g.get_int("huge"); }), Catch::Contains("metadata key huge"));
  CHECK_THAT(error_of(path, [&] { g.get_bool("nope"); }), Catch::Contains("metadata key nope: missing"));

  SECTION("version 2 reads the same") {
    f.version = 2;
    CHECK(GgufFile(write_temp("v2.gguf", f.bytes())).get_int("u8") == 200);
  }
}

TEST_CASE("the vocabulary comes from tokenizer.ggml.* keys") {
  test::GgufTestFile f = test::gguf_of_model(small_model());
  const int n = small_model().config.vocab_size;
  f.set("tokenizer.ggml.scores", GgufValue::f32s(std::vector<float>(n, -1.5f)));
  f.set("tokenizer.ggml.token_type", GgufValue::i32s(std::vector<int32_t>(n, 1)));
  f.set("tokenizer.ggml.bos_token_id", GgufValue::u32(1));
  f.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  f.set("tokenizer.ggml.add_space_prefix", GgufValue::boolean(false));
  const std::string path = write_temp("vocab.gguf", f.bytes());
  const GgufVocab v = read_gguf_vocab(GgufFile(path));
  CHECK(v.model == "llama");
  CHECK(v.tokens.size() == size_t(n));
  CHECK(v.tokens[5] == "t5");
  CHECK(v.scores == std::vector<float>(n, -1.5f));
  CHECK(v.token_types == std::vector<int32_t>(n, 1));
  CHECK(v.bos_id == 1);
  CHECK(v.eos_id == 2);
  CHECK(v.unk_id == -1);
  CHECK(v.add_bos);
  CHECK_FALSE(v.add_eos);
  CHECK_FALSE(v.add_space_prefix);
  CHECK(v.merges.empty());

  f.set("tokenizer.ggml.eos_token_id", GgufValue::u32(n));
  const std::string bad = write_temp("vocab-bad-eos.gguf", f.bytes());
  CHECK_THAT(error_of(bad, [&] { read_gguf_vocab(GgufFile(bad)); }),
             Catch::Contains("metadata key tokenizer.ggml.eos_token_id: token id"));
  f.set("tokenizer.ggml.scores", GgufValue::f32s({1.0f}));
  const std::string short_scores = write_temp("vocab-short-scores.gguf", f.bytes());
  CHECK_THAT(error_of(short_scores, [&] { read_gguf_vocab(GgufFile(short_scores)); }),
             Catch::Contains("metadata key tokenizer.ggml.scores: 1 scores"));
  f.erase("tokenizer.ggml.model");
  const std::string no_model = write_temp("vocab-no-model.gguf", f.bytes());
  CHECK_THAT(error_of(no_model, [&] { read_gguf_vocab(GgufFile(no_model)); }),
             Catch::Contains("metadata key tokenizer.ggml.model: missing"));
}

TEST_CASE("broken GGUF files fail with one line naming the file and the field") {
  const test::GgufTestFile good = test::gguf_of_model(small_model());
  const std::string bytes = good.bytes();
  REQUIRE(error_of(write_temp("good.gguf", bytes), [&] { load_gguf_model(write_temp("good.gguf", bytes)); }).empty());

  SECTION("truncated anywhere") {
    // Inside the magic, the counts, the first key, the metadata, the tensor infos and the data.
    for (size_t cut : {size_t(0), size_t(3), size_t(10), size_t(20), size_t(30), size_t(200), bytes.size() / 3,
                       bytes.size() / 2, bytes.size() - 1}) {
      INFO("cut at " << cut);
      CHECK_FALSE(open_error("cut" + std::to_string(cut) + ".gguf", bytes.substr(0, cut)).empty());
    }
    CHECK_THAT(open_error("cut-data.gguf", bytes.substr(0, bytes.size() - 1)),
               Catch::Contains("lies outside the data section"));
    CHECK_THAT(open_error("cut-header.gguf", bytes.substr(0, 12)), Catch::Contains("tensor_count: needs 8 bytes"));
  }
  SECTION("magic and version") {
    std::string b = bytes;
    b[0] = 'X';
    CHECK_THAT(open_error("magic.gguf", b), Catch::Contains("magic: not a GGUF file"));
    for (uint32_t version : {1u, 4u, 0x03000000u}) {
      b = bytes;
      patch(b, 4, version);
      CHECK_THAT(open_error("version.gguf", b), Catch::Contains("version: GGUF version " + std::to_string(version)));
    }
  }
  SECTION("absurd counts and lengths") {
    std::string b = bytes;
    patch(b, 8, uint64_t(1) << 40);
    CHECK_THAT(open_error("tensor-count.gguf", b), Catch::Contains("tensor_count 1099511627776 cannot fit"));
    b = bytes;
    patch(b, 16, uint64_t(1) << 60);
    CHECK_THAT(open_error("kv-count.gguf", b), Catch::Contains("kv_count 1152921504606846976 cannot fit"));
    b = bytes;
    patch(b, 24, uint64_t(1) << 60);  // the first key's length
    CHECK_THAT(open_error("key-length.gguf", b), Catch::Contains("metadata key 0: string length 1152921504606846976"));
    test::GgufTestFile f = good;
    f.kv.insert(f.kv.begin(), {"long", GgufValue::str("x")});
    b = f.bytes();
    patch(b, 24 + 8 + 4 + 4, uint64_t(1) << 60);  // after key length, "long", type: the value's length
    CHECK_THAT(open_error("value-length.gguf", b), Catch::Contains("metadata key long: string length"));
    f = good;
    f.kv.insert(f.kv.begin(), {"arr", GgufValue::i32s({1, 2})});
    b = f.bytes();
    patch(b, 24 + 8 + 3 + 4 + 4, uint64_t(1) << 60);  // after key, type, element type: the count
    CHECK_THAT(open_error("array-count.gguf", b), Catch::Contains("metadata key arr array count"));
  }
  SECTION("bad values and tensor infos") {
    test::GgufTestFile f = good;
    GgufValue nested;
    nested.type = GgufType::ARRAY;
    nested.element_type = GgufType::ARRAY;
    f.set("nested", nested);
    CHECK_THAT(open_error("nested.gguf", f.bytes()), Catch::Contains("metadata key nested: arrays of arrays"));
    f = good;
    f.kv.push_back(f.kv.front());
    CHECK_THAT(open_error("dup-key.gguf", f.bytes()), Catch::Contains("metadata key general.architecture: appears twice"));
    f = good;
    f.set("general.alignment", GgufValue::u32(48));
    CHECK_THAT(open_error("alignment.gguf", f.bytes()), Catch::Contains("general.alignment: 48 is not a power of two"));
    for (uint32_t type : {19u, 15u, 1000000u}) {
      f = good;
      f.tensor("blk.0.attn_q.weight")->type = type;
      CHECK_THAT(open_error("type.gguf", f.bytes()),
                 Catch::Contains("tensor 'blk.0.attn_q.weight': ggml type " + std::to_string(type) + " is not supported"));
    }
    f = good;
    f.tensor("blk.0.attn_q.weight")->type = 2;  // Q4_0 on rows of 32 is fine ...
    f.tensor("blk.0.ffn_down.weight")->type = 2;  // ... but not on rows of 44
    CHECK_THAT(open_error("block.gguf", f.bytes()),
               Catch::Contains("tensor 'blk.0.ffn_down.weight': ne[0] = 44 is not a multiple of Q4_0's block of 32"));
    f = good;
    f.tensor("output.weight")->offset = 16;
    CHECK_THAT(open_error("misaligned.gguf", f.bytes()),
               Catch::Contains("tensor 'output.weight': offset 16 is not a multiple of the alignment 32"));
    f = good;
    f.set("general.alignment", GgufValue::u32(1));  // a 1-byte alignment lets F32 data start anywhere
    f.alignment = 1;
    f.tensor("output.weight")->offset = 2;
    CHECK_THAT(open_error("misaligned-f32.gguf", f.bytes()), Catch::Contains("is not 4-byte aligned"));
    f = good;
    f.tensor("output.weight")->offset = uint64_t(1) << 40;
    CHECK_THAT(open_error("out-of-file.gguf", f.bytes()),
               Catch::Contains("tensor 'output.weight': data [1099511627776, +"));
    f = good;
    f.tensor("output.weight")->offset = 0;
    CHECK_THAT(open_error("overlap.gguf", f.bytes()), Catch::Contains("data overlaps tensor"));
    f = good;
    f.tensor("output.weight")->ne = {32, 1, 1, 1, 64};
    CHECK_THAT(open_error("dims.gguf", f.bytes()), Catch::Contains("tensor 'output.weight': n_dims 5"));
    f = good;
    f.tensor("output.weight")->ne = {uint64_t(1) << 62, uint64_t(1) << 62};
    CHECK_THAT(open_error("numel.gguf", f.bytes()), Catch::Contains("tensor 'output.weight': ne[1]"));
    f = good;
    f.tensors.push_back(f.tensors.back());
    CHECK_THAT(open_error("dup-tensor.gguf", f.bytes()), Catch::Contains("tensor 'output.weight': appears twice"));
  }
  SECTION("models that are not llama as this project runs it") {
    test::GgufTestFile f = good;
    f.set("llama.block_count", GgufValue::str("2"));
    CHECK_THAT(load_error("block-count.gguf", f),
               Catch::Contains("metadata key llama.block_count: expected an integer, found STRING"));
    f = good;
    f.set("general.architecture", GgufValue::str("gpt2"));
    CHECK_THAT(load_error("arch.gguf", f), Catch::Contains("general.architecture: 'gpt2' is not supported"));
    f = good;
    f.erase("llama.embedding_length");
    CHECK_THAT(load_error("missing.gguf", f), Catch::Contains("metadata key llama.embedding_length: missing"));
    f = good;
    f.set("llama.rope.dimension_count", GgufValue::u32(4));
    CHECK_THAT(load_error("rope-dims.gguf", f), Catch::Contains("llama.rope.dimension_count: 4 differs"));
    f = good;
    f.set("llama.attention.head_count", GgufValue::u32(0));
    CHECK_THAT(load_error("heads.gguf", f), Catch::Contains("llama.attention.head_count: 0 is not a positive"));
    f = good;
    f.tensor("blk.1.attn_k.weight")->name = "blk.1.attn_k.bias";
    CHECK_THAT(load_error("missing-tensor.gguf", f), Catch::Contains("tensor 'blk.1.attn_k.weight': missing"));
    f = good;
    f.tensors.push_back(f.tensors.back());
    f.tensors.back().name = "rope_freqs.weight";
    CHECK_THAT(load_error("extra-tensor.gguf", f), Catch::Contains("tensor 'rope_freqs.weight': not part of"));
    f = good;
    std::swap(f.tensor("blk.0.ffn_up.weight")->ne, f.tensor("blk.0.ffn_down.weight")->ne);
    CHECK_THAT(load_error("shape.gguf", f), Catch::Contains("tensor 'blk.0.ffn_"));
    f = good;
    f.set("tokenizer.ggml.tokens", GgufValue::strings({"a", "b"}));
    CHECK_THAT(load_error("vocab-size.gguf", f), Catch::Contains("tokenizer.ggml.tokens: 2 tokens"));
  }
}

TEST_CASE("random byte changes give a qb::Error or a model, never another failure") {
  const std::string bytes = test::gguf_of_model(small_model()).bytes();
  std::mt19937 rng(3);
  int errors = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::string b = bytes;
    const int n_changes = uniform(rng, 1, 4);
    for (int c = 0; c < n_changes; ++c) {
      // Mostly the header, keys and tensor infos, where a byte changes the structure.
      const size_t at = uniform(rng, 0, 3) ? uniform(rng, 0, int(std::min<size_t>(b.size(), 2048)) - 1)
                                           : uniform(rng, 0, int(b.size()) - 1);
      b[at] = static_cast<char>(uniform(rng, 0, 3) ? uniform(rng, 0, 255) : (b[at] ^ (1 << uniform(rng, 0, 7))));
    }
    if (uniform(rng, 0, 9) == 0) b.resize(uniform(rng, 0, int(b.size())));
    const std::string path = write_temp("mutated.gguf", b);
    INFO("trial " << trial);
    try {
      const GgufFile f(path);
      load_gguf_model(f);
      read_gguf_vocab(f);
    } catch (const Error&) {
      ++errors;
    }
  }
  CHECK(errors > 100);  // the changes do reach the checks
}
