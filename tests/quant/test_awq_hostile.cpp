// Hostile AutoAWQ checkpoints (issue 13): a quantization_config of the wrong types is one error
// naming config.json and the field; NaN/Inf in a loaded checkpoint's scales or FP16 weights stops
// the run naming the tensor (check_finite, which prepare_method runs on every loaded checkpoint).
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>

#include "common/error.h"
#include "common/files.h"
#include "common/half.h"
#include "model/safetensors.h"
#include "quant/awq_format.h"
#include "quant/quantize.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// A valid 4-bit g16 checkpoint of the small random model (intermediate 48: storable).
std::string checkpoint(const std::string& tag) {
  LlamaConfig c = test::small_config(false);
  c.intermediate_size = 48;
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.group_size = 16;
  const std::string dir = test::temp_dir(tag) + "/ckpt";
  write_awq_checkpoint(quantize_model(test::random_model(c, 5), o, nullptr).model, dir);
  return dir;
}

void edit_quantization_config(const std::string& dir, const char* field, const nlohmann::json& value) {
  nlohmann::json config = read_json_file(dir + "/config.json");
  config["quantization_config"][field] = value;
  write_file_atomic(dir + "/config.json", config.dump());
}

// Overwrites element `index` of tensor `name` in dir/model.safetensors with the FP16 bits `half`.
void poke_half(const std::string& dir, const std::string& name, size_t index, uint16_t half) {
  const std::string path = dir + "/model.safetensors";
  size_t offset = 0;
  {
    const SafetensorsFile file(path);
    offset = static_cast<size_t>(file.get(name).data - file.mapping()->data()) + index * 2;
  }
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(reinterpret_cast<const char*>(&half), 2);
}

}  // namespace

TEST_CASE("quantization_config fields of the wrong type name config.json and the field") {
  const std::string dir = checkpoint("awq-bits");
  REQUIRE_NOTHROW(load_awq_checkpoint(dir));
  edit_quantization_config(dir, "bits", "four");
  CHECK(error_of([&] { load_awq_checkpoint(dir); }) ==
        dir + "/config.json: quantization_config: field 'bits' is a string \"four\", expected a 32-bit integer");
  edit_quantization_config(dir, "bits", 4);
  edit_quantization_config(dir, "group_size", 16.5);
  CHECK(error_of([&] { load_awq_checkpoint(dir); }) ==
        dir + "/config.json: quantization_config: field 'group_size' is a number 16.5, expected a 32-bit integer");
  edit_quantization_config(dir, "group_size", 16);
  edit_quantization_config(dir, "version", nlohmann::json::array());
  CHECK(error_of([&] { load_awq_checkpoint(dir); }) ==
        dir + "/config.json: quantization_config: field 'version' is an array, expected a string");
  edit_quantization_config(dir, "version", "gemm");
  edit_quantization_config(dir, "quant_method", 1);
  CHECK_FALSE(is_awq_checkpoint(dir));
  CHECK(error_of([&] { load_awq_checkpoint(dir); }) ==
        dir + "/config.json: quantization_config: field 'quant_method' is an integer 1, expected a string");
}

TEST_CASE("NaN or Inf in a loaded checkpoint's scales or FP16 weights names the tensor") {
  SECTION("a NaN scale of a quantized linear") {
    const std::string dir = checkpoint("awq-nan-scale");
    poke_half(dir, "model.layers.1.mlp.down_proj.scales", 7, 0x7E00);
    const Model m = load_awq_checkpoint(dir);
    CHECK(error_of([&] { check_finite(m); }) == "model.layers.1.mlp.down_proj.scales: non-finite scale at element 7");
  }
  SECTION("an Inf in an FP16 norm") {
    const std::string dir = checkpoint("awq-inf-norm");
    poke_half(dir, "model.norm.weight", 3, 0x7C00);
    const Model m = load_awq_checkpoint(dir);
    CHECK(error_of([&] { check_finite(m); }) == "model.norm.weight: non-finite value (inf) at element 3");
  }
}
