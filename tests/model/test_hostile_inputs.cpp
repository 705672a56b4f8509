// Hostile model files (issue 13): every reader of the model stage turns a file that lies about its
// types, sizes or paths into one qb::Error line naming the file and the field. No other exception
// may escape (Catch reports one as a failure), and no line break is in the message.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>

#include "common/error.h"
#include "common/files.h"
#include "model/load.h"
#include "model/model_catalog.h"
#include "model/safetensors.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;
namespace fs = std::filesystem;

namespace {

// The qb::Error message of `f`; "no error" if it returns. Any other exception escapes to Catch.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(message.find('\n') == std::string::npos);
    return message;
  }
  return "no error";
}

std::string write_safetensors_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::string out;
  const uint64_t n = header.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += header + std::string(data_bytes, '\0');
  write_file_atomic(path, out);
  return path;
}

// An HF directory of the small random model with an index that places model.norm.weight in `shard`.
std::string hf_dir_with_index(const std::string& tag, const nlohmann::json& shard) {
  const std::string dir = test::temp_dir(tag);
  test::write_hf_dir(test::random_model(test::small_config(false), 3), dir);
  write_file_atomic(dir + "/model.safetensors.index.json",
                    nlohmann::json{{"weight_map", {{"model.embed_tokens.weight", "model.safetensors"},
                                                   {"model.norm.weight", shard}}}}
                        .dump());
  return dir;
}

nlohmann::json small_hf_config() { return hf_config_json(test::small_config(false)); }

}  // namespace

TEST_CASE("index shard names: a number, '..', an absolute path and a symlink out are refused") {
  SECTION("a number instead of a file name (the hand-found case)") {
    const std::string dir = hf_dir_with_index("idx-number", 3);
    CHECK(error_of([&] { load_model(dir); }) ==
          dir + "/model.safetensors.index.json: field 'weight_map[\"model.norm.weight\"]' is an integer 3, expected a string");
  }
  SECTION("a name that climbs out with '..'") {
    const std::string dir = hf_dir_with_index("idx-dotdot", "../x.safetensors");
    CHECK(error_of([&] { load_model(dir); }) ==
          dir + "/model.safetensors.index.json: shard \"../x.safetensors\" leaves the directory; shards must be files inside " + dir);
  }
  SECTION("an absolute path") {
    const std::string dir = hf_dir_with_index("idx-abs", "/etc/passwd");
    CHECK(error_of([&] { load_model(dir); }) ==
          dir + "/model.safetensors.index.json: shard \"/etc/passwd\" is not a relative file name; shards must be files inside " + dir);
  }
  SECTION("a symlink to a valid file outside the directory") {
    const std::string outside = test::temp_dir("idx-outside");
    test::write_hf_dir(test::random_model(test::small_config(false), 3), outside);
    const std::string dir = hf_dir_with_index("idx-link", "link.safetensors");
    fs::remove(dir + "/model.safetensors");
    fs::create_symlink(outside + "/model.safetensors", dir + "/link.safetensors");
    const std::string e = error_of([&] { load_model(dir); });
    CHECK_THAT(e, Catch::StartsWith(dir + "/model.safetensors.index.json: shard \"link.safetensors\" resolves to ") &&
                      Catch::EndsWith("/model.safetensors, outside it; shards must be files inside " + dir));
  }
  SECTION("model.safetensors itself linked out of the directory (no index)") {
    const std::string outside = test::temp_dir("st-outside");
    test::write_hf_dir(test::random_model(test::small_config(false), 3), outside);
    const std::string dir = test::temp_dir("st-link");
    fs::copy_file(outside + "/config.json", dir + "/config.json");
    fs::create_symlink(outside + "/model.safetensors", dir + "/model.safetensors");
    CHECK_THAT(error_of([&] { load_model(dir); }),
               Catch::StartsWith(dir + ": shard \"model.safetensors\" resolves to "));
  }
}

TEST_CASE("an HF hub cache snapshot, whose files link into the entry's blobs/, loads") {
  const std::string cache = test::temp_dir("hub");
  const std::string entry = cache + "/models--org--tiny", snapshot = entry + "/snapshots/0123abcd";
  fs::create_directories(entry + "/blobs");
  fs::create_directories(snapshot);
  const Model m = test::random_model(test::small_config(false), 3);
  test::write_hf_dir(m, entry + "/blobs");
  fs::rename(entry + "/blobs/model.safetensors", entry + "/blobs/9f86d081");
  fs::rename(entry + "/blobs/config.json", entry + "/blobs/2c26b46b");
  fs::create_symlink("../../blobs/9f86d081", snapshot + "/model.safetensors");
  fs::create_symlink("../../blobs/2c26b46b", snapshot + "/config.json");
  const Model loaded = load_model(snapshot);
  CHECK(loaded.config.hidden_size == m.config.hidden_size);
}

TEST_CASE("safetensors headers that lie about sizes are refused before anything is allocated") {
  const std::string dir = test::temp_dir("st-hostile");
  const std::string path = dir + "/h.safetensors";
  SECTION("header length past the end of the file") {
    std::string out(8, '\0');
    out[0] = 100;
    write_file_atomic(path, out + "{}");
    CHECK(error_of([&] { SafetensorsFile f(path); }) == path + ": safetensors header length 100 exceeds the file (10 bytes)");
  }
  SECTION("header length above the 100 MB limit (sparse file)") {
    const uint64_t n = 200'000'000;
    write_file_atomic(path, std::string(reinterpret_cast<const char*>(&n), 8));
    fs::resize_file(path, 8 + n);
    CHECK(error_of([&] { SafetensorsFile f(path); }) ==
          path + ": safetensors header length 200000000 exceeds the limit of 100000000 bytes");
  }
  SECTION("a shape of 2^60 elements") {
    write_safetensors_raw(path, R"({"w":{"dtype":"F16","shape":[1073741824,1073741824],"data_offsets":[0,8]}})", 8);
    CHECK(error_of([&] { SafetensorsFile f(path); }) ==
          path + ": tensor 'w': data_offsets span 8 bytes but shape x F16 needs 2305843009213693952");
  }
  SECTION("a shape whose byte count wraps 2^64 to the span (0)") {
    write_safetensors_raw(path, R"({"w":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
    CHECK(error_of([&] { SafetensorsFile f(path); }) ==
          path + ": tensor 'w': data_offsets span 0 bytes but shape x F16 needs more than 2^64");
  }
  SECTION("a dimension above int64") {
    write_safetensors_raw(path, R"({"w":{"dtype":"F16","shape":[9223372036854775808],"data_offsets":[0,0]}})", 0);
    CHECK(error_of([&] { SafetensorsFile f(path); }) ==
          path + ": tensor 'w': shape has a non-integer, negative or oversized dimension 9223372036854775808");
  }
  SECTION("offsets past the data section") {
    write_safetensors_raw(path, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8);
    CHECK(error_of([&] { SafetensorsFile f(path); }) ==
          path + ": tensor 'w': data_offsets [0, 16) out of range (data section is 8 bytes)");
  }
  SECTION("overlapping tensors") {
    write_safetensors_raw(path,
                          R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                          12);
    CHECK(error_of([&] { SafetensorsFile f(path); }) == path + ": tensor 'b': data_offsets overlap tensor 'a'");
  }
  SECTION("an unknown dtype") {
    write_safetensors_raw(path, R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2);
    CHECK(error_of([&] { SafetensorsFile f(path); }) ==
          path + ": tensor 'w': unsupported dtype F8_E4M3 (F32, F16, BF16, I32 are read)");
  }
  SECTION("a dtype of the wrong JSON type") {
    write_safetensors_raw(path, R"({"w":{"dtype":16,"shape":[2],"data_offsets":[0,4]}})", 4);
    CHECK(error_of([&] { SafetensorsFile f(path); }) == path + ": tensor 'w': dtype is not a string");
  }
}

TEST_CASE("config.json fields of the wrong type or an absurd size name the field") {
  const std::string where = "dir/config.json";
  auto error_with = [&](const char* field, const nlohmann::json& value) {
    nlohmann::json j = small_hf_config();
    j[field] = value;
    return error_of([&] { parse_hf_config(j, where); });
  };
  CHECK(error_with("hidden_size", "4096") == where + ": field 'hidden_size' is a string \"4096\", expected a 32-bit integer");
  CHECK(error_with("hidden_size", -32) == where + ": hidden_size must be positive, got -32");
  CHECK(error_with("hidden_size", int64_t(1) << 40) ==
        where + ": field 'hidden_size' is an integer 1099511627776, expected a 32-bit integer");
  CHECK(error_with("hidden_size", 32.5) == where + ": field 'hidden_size' is a number 32.5, expected a 32-bit integer");
  CHECK(error_with("hidden_size", 1 << 21) == where + ": hidden_size 2097152 exceeds the limit 1048576");
  CHECK(error_with("num_hidden_layers", true) ==
        where + ": field 'num_hidden_layers' is a boolean true, expected a 32-bit integer");
  CHECK(error_with("head_dim", "eight") == where + ": field 'head_dim' is a string \"eight\", expected a 32-bit integer");
  CHECK(error_with("rope_theta", "big") == where + ": field 'rope_theta' is a string \"big\", expected a number");
  CHECK(error_with("rms_norm_eps", 1e300) == where + ": field 'rms_norm_eps' is a number 1e+300, expected a finite number");
  CHECK(error_with("tie_word_embeddings", "yes") ==
        where + ": field 'tie_word_embeddings' is a string \"yes\", expected true or false");
  CHECK(error_with("rope_scaling", {{"rope_type", "llama3"}, {"factor", "8"}}) ==
        where + ": rope_scaling: field 'factor' is a string \"8\", expected a number");
  CHECK(error_of([&] { parse_hf_config(nlohmann::json::array(), where); }) == where + ": config is not a JSON object");
}

TEST_CASE("a llama2.c header with absurd dimensions is refused before any size is computed") {
  const std::string dir = test::temp_dir("l2c-hostile");
  auto header_error = [&](std::vector<int32_t> h) {
    const std::string path = dir + "/m.bin";
    write_file_atomic(path, std::string(reinterpret_cast<const char*>(h.data()), h.size() * 4));
    return error_of([&] { load_llama2c(path); });
  };
  CHECK(header_error({1 << 30, 1 << 30, 1 << 30, 8, 8, 512, 512}) ==
        dir + "/m.bin: header: hidden_size 1073741824 exceeds the limit 1048576");
  CHECK(header_error({256, 768, 2, 8, 4, INT32_MIN, 512}) ==
        dir + "/m.bin: header: vocab_size 2147483647 exceeds the limit 16777216");
  CHECK(header_error({256, 768, 2, 8, 4, 512, -1}) == dir + "/m.bin: header: max_seq_len must be positive, got -1");
  // Dimensions in range but more bytes than the file has.
  CHECK_THAT(header_error({1 << 20, 1 << 22, 1 << 12, 1 << 10, 1 << 10, 1 << 24, 1 << 26}),
             Catch::StartsWith(dir + "/m.bin: file is 28 bytes but the header (dim 1048576"));
}

TEST_CASE("a shape catalog with a missing or mistyped field names the model and the field") {
  auto catalog_with = [](nlohmann::json config) {
    return nlohmann::json{{"schema", "quantbench.model_shapes"}, {"models", {{{"name", "tiny"}, {"config", config}}}}};
  };
  nlohmann::json no_hidden = small_hf_config();
  no_hidden.erase("hidden_size");
  CHECK(error_of([&] { parse_catalog_models(catalog_with(no_hidden), "shapes.json"); }) ==
        "shapes.json: model 'tiny': config: missing field 'hidden_size'");
  nlohmann::json typed = small_hf_config();
  typed["vocab_size"] = nlohmann::json::array();
  CHECK(error_of([&] { parse_catalog_models(catalog_with(typed), "shapes.json"); }) ==
        "shapes.json: model 'tiny': config: field 'vocab_size' is an array, expected a 32-bit integer");
  CHECK(error_of([&] { parse_catalog_models({{"schema", 3}}, "shapes.json"); }) ==
        "shapes.json: not a model-shape catalog (schema must be \"quantbench.model_shapes\")");
}
