// llama.cpp's own files as the reference: the shared stories-d256-l2 GGUFs were written by
// llama.cpp b4747 (convert_hf_to_gguf.py for F16, then llama-quantize F16 -> each type, no
// imatrix). From the F16 file's tensors, quantbench's type choice (quant/gguf_quantize.h) and
// quantizers (layouts/ggml_quants.h) must give every tensor's type and every block's bytes; the
// GGUF writer must give the whole file; and the HF safetensors directory, through q/k permutation,
// quantization and the writer, must give the same tensors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/files.h"
#include "layouts/ggml_quants.h"
#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "model/load.h"
#include "quant/gguf_quantize.h"
#include "quant/quantize.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

namespace {

const char* const kDir = "models/stories-d256-l2/gguf/";
const std::vector<std::string> kTypes = {"Q2_K", "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M", "Q4_K_S",
                                         "Q5_0", "Q5_1", "Q5_K_M", "Q6_K", "Q8_0"};

std::string gguf_path(const std::string& type) {
  return test::data_file(std::string(kDir) + "stories-d256-l2-" + type + ".gguf");
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

LlamaConfig config_of(const GgufFile& f) {
  LlamaConfig c;
  c.n_layers = static_cast<int>(f.get_int("llama.block_count"));
  c.n_heads = static_cast<int>(f.get_int("llama.attention.head_count"));
  c.n_kv_heads = static_cast<int>(f.get_int("llama.attention.head_count_kv"));
  return c;
}

}  // namespace

std::string qb_test_skip_reason() {
  std::vector<std::string> files = {"models/stories-d256-l2/model.safetensors", std::string(kDir) + "stories-d256-l2-F16.gguf"};
  for (const std::string& t : kTypes) files.push_back(std::string(kDir) + "stories-d256-l2-" + t + ".gguf");
  for (const std::string& f : files)
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  return "";
}

TEST_CASE("every tensor type and every block of llama-quantize's files is reproduced", "[gguf][llama.cpp]") {
  const GgufFile f16(gguf_path("F16"));
  std::map<std::string, std::pair<int64_t, int64_t>> blocks;  // ggml type -> {matching, total}
  for (const std::string& type_name : kTypes) {
    INFO(type_name);
    const GgufFile q(gguf_path(type_name));
    const GgufFileType& ft = gguf_file_type(lower(type_name));
    CHECK(q.get_int("general.file_type") == ft.ftype);

    // llama-quantize writes its loader's order.
    std::vector<std::string> names;
    for (const GgufTensorInfo& t : f16.tensors()) names.push_back(t.name);
    std::sort(names.begin(), names.end(), gguf_quantize_order);
    REQUIRE(names.size() == q.tensors().size());
    for (size_t i = 0; i < names.size(); ++i) CHECK(q.tensors()[i].name == names[i]);

    GgufTypeChooser chooser(ft, config_of(f16), f16.find_tensor("output.weight") != nullptr);
    for (const GgufTensorInfo& t : q.tensors()) {
      INFO(t.name);
      const GgufTensorInfo* src = f16.find_tensor(t.name);
      REQUIRE(src);
      const ggml::Type chosen = chooser.choose(t.name, src->ne, src->type);
      CHECK(ggml::type_name(chosen) == std::string(ggml::type_name(t.type)));
      if (chosen != t.type) continue;
      if (chosen == src->type) {
        CHECK((t.nbytes == src->nbytes && std::memcmp(t.data, src->data, t.nbytes) == 0));
        continue;
      }
      const std::vector<float> x = f16.tensor(t.name).to_float();
      const int64_t cols = t.ne[0], rows = static_cast<int64_t>(x.size()) / cols;
      std::vector<uint8_t> mine(t.nbytes);
      ggml::quantize_rows(chosen, x.data(), mine.data(), rows, cols);
      const size_t bb = ggml::block_bytes(chosen);
      auto& [same, total] = blocks[ggml::type_name(chosen)];
      int64_t differing = 0;
      for (size_t off = 0; off < t.nbytes; off += bb) {
        ++total;
        if (std::memcmp(mine.data() + off, t.data + off, bb) == 0)
          ++same;
        else
          ++differing;
      }
      CHECK(differing == 0);
    }
    CHECK(chooser.fallbacks().empty());
  }
  for (const auto& [type, counts] : blocks)
    std::printf("llama.cpp b4747 blocks reproduced: %-5s %6lld of %6lld\n", type.c_str(),
                static_cast<long long>(counts.first), static_cast<long long>(counts.second));
}

TEST_CASE("quantize gguf:<type> from the F16 GGUF writes llama-quantize's file byte for byte", "[gguf][llama.cpp]") {
  const GgufFile f16(gguf_path("F16"));
  const Model source = load_gguf_model(f16);
  const std::string dir = test::temp_dir("gguf_stories_d256");
  for (const std::string& type_name : kTypes) {
    INFO(type_name);
    QuantizeOptions o;
    o.family = MethodFamily::Gguf;
    o.gguf_type = lower(type_name);
    const QuantizeResult q = quantize_model(source, o, nullptr);
    CHECK(q.quantization.at("method") == "gguf");
    CHECK(q.quantization.at("fallbacks").empty());
    GgufMetadata meta = f16.metadata();
    set_quantized_file_type(meta, gguf_file_type(o.gguf_type).ftype);
    const std::string path = dir + "/" + type_name + ".gguf";
    write_gguf(path, meta, gguf_tensors_of(q.model));
    CHECK(sha256_file(path) == sha256_file(gguf_path(type_name)));
  }
}

TEST_CASE("gguf:q4_k_m from the HF safetensors directory gives the tensors of llama.cpp's Q4_K_M file",
          "[gguf][llama.cpp]") {
  const Model hf = to_fp16(load_hf_directory(test::data_file("models/stories-d256-l2")));
  REQUIRE_FALSE(hf.config.rope_interleaved);
  QuantizeOptions o;
  o.family = MethodFamily::Gguf;
  o.gguf_type = "q4_k_m";
  const QuantizeResult q = quantize_model(hf, o, nullptr);
  CHECK(q.quantization.at("tensor_types").at("Q4_K") == 13);
  CHECK(q.quantization.at("tensor_types").at("Q6_K") == 3);
  CHECK(q.quantization.at("tensor_types").at("F32") == 5);

  const GgufFile ref(gguf_path("Q4_K_M"));
  const std::vector<GgufTensorOut> tensors = gguf_tensors_of(q.model);
  REQUIRE(tensors.size() == ref.tensors().size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const GgufTensorOut& t = tensors[i];
    const GgufTensorInfo& r = ref.tensors()[i];
    INFO(t.name);
    CHECK(t.name == r.name);
    CHECK(dtype_ggml_type(t.tensor.dtype) == r.type);
    CHECK(t.tensor.shape == r.shape);
    CHECK((t.tensor.nbytes() == r.nbytes && std::memcmp(t.tensor.data, r.data, r.nbytes) == 0));
  }

  // convert_hf_to_gguf.py's hyper-parameters, then llama-quantize's two keys at the end.
  GgufMetadata meta = llama_gguf_metadata(q.model, "stories-d256-l2", 1, nullptr);
  set_quantized_file_type(meta, 15);
  for (const auto& [key, value] : meta) {
    INFO(key);
    if (key == "general.name") continue;
    const GgufValue* want = ref.find(key);
    REQUIRE(want);
    CHECK(value.type == want->type);
    CHECK(value.uint == want->uint);
    CHECK(value.real == want->real);
    CHECK(value.string == want->string);
  }
}
