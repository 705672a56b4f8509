// safetensors: round trip, and every malformed header named in its one-line error.
#include <catch2/catch.hpp>

#include <cstring>

#include "common/error.h"
#include "common/files.h"
#include "model/safetensors.h"
#include "test_support.h"
#include "random_model.h"

using namespace qb;

static std::string write_raw(const std::string& dir, const std::string& header, size_t data_bytes) {
  std::string out;
  const uint64_t n = header.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += header;
  out.append(data_bytes, '\0');
  const std::string path = dir + "/bad.safetensors";
  write_file_atomic(path, out);
  return path;
}

static std::string error_of(const std::string& path) {
  try {
    SafetensorsFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("safetensors round trip keeps names, dtypes, shapes and bytes") {
  const std::string dir = test::temp_dir("st");
  SafetensorsBlob a{"b.weight", "F32", {2, 3}, std::vector<uint8_t>(24)};
  SafetensorsBlob b{"a.qweight", "I32", {1, 1}, {1, 2, 3, 4}};
  for (size_t i = 0; i < a.bytes.size(); ++i) a.bytes[i] = uint8_t(i);
  write_safetensors(dir + "/x.safetensors", {a, b}, {{"format", "pt"}});
  SafetensorsFile f(dir + "/x.safetensors");
  REQUIRE(f.entries().size() == 2);
  CHECK(f.get("b.weight").dtype == "F32");
  CHECK(f.get("b.weight").shape == std::vector<int64_t>{2, 3});
  CHECK(std::memcmp(f.get("b.weight").data, a.bytes.data(), 24) == 0);
  CHECK(std::memcmp(f.get("a.qweight").data, b.bytes.data(), 4) == 0);
  CHECK(f.metadata().at("format") == "pt");
  CHECK_THROWS_WITH(f.get("missing"), Catch::Contains("missing tensor 'missing'"));
}

TEST_CASE("malformed safetensors files are refused naming the file and the field") {
  const std::string dir = test::temp_dir("st-bad");
  SECTION("truncated before the header length") {
    write_file_atomic(dir + "/t.safetensors", "abc");
    const std::string e = error_of(dir + "/t.safetensors");
    CHECK_THAT(e, Catch::Contains("t.safetensors") && Catch::Contains("truncated"));
  }
  SECTION("header length past the end") {
    std::string out(8, '\0');
    out[0] = 100;
    write_file_atomic(dir + "/h.safetensors", out + "{}");
    CHECK_THAT(error_of(dir + "/h.safetensors"), Catch::Contains("header length 100 exceeds"));
  }
  SECTION("malformed JSON") {
    CHECK_THAT(error_of(write_raw(dir, "{\"a\": [", 0)), Catch::Contains("malformed safetensors header JSON"));
  }
  SECTION("offsets out of range") {
    const auto p = write_raw(dir, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'w'") && Catch::Contains("out of range"));
  }
  SECTION("unknown dtype") {
    const auto p = write_raw(dir, R"({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'w'") && Catch::Contains("unsupported dtype F8_E4M3"));
  }
  SECTION("offsets that disagree with the shape") {
    const auto p = write_raw(dir, R"({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 4]}})", 4);
    CHECK_THAT(error_of(p), Catch::Contains("tensor 'w'") && Catch::Contains("needs 8"));
  }
  SECTION("missing file") {
    CHECK_THAT(error_of(dir + "/nope.safetensors"), Catch::Contains("nope.safetensors: cannot open"));
  }
}
