// The streaming, sharded safetensors writer (model/safetensors.h SafetensorsShardWriter): HF's shard
// names, split and index, every tensor byte for byte what write_safetensors writes for it, read
// back by the one reader (SafetensorsDirectory), and misuse refused without leaving files.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "model/safetensors.h"
#include "random_model.h"

using namespace qb;
namespace fs = std::filesystem;

namespace {

// Four tensors of 64, 96, 40 and 16 bytes with distinct byte patterns.
std::vector<SafetensorsBlob> blobs() {
  std::vector<SafetensorsBlob> out = {{"b.weight", "F16", {4, 8}, {}},
                                      {"a.qweight", "I32", {3, 8}, {}},
                                      {"c.scales", "F32", {10}, {}},
                                      {"d.norm", "BF16", {8}, {}}};
  for (size_t t = 0; t < out.size(); ++t) {
    size_t n = safetensors_dtype_size(out[t].dtype);
    for (int64_t d : out[t].shape) n *= d;
    for (size_t i = 0; i < n; ++i) out[t].bytes.push_back(static_cast<uint8_t>(i * 7 + t * 31));
  }
  return out;
}

std::vector<SafetensorsTensorSpec> plan_of(const std::vector<SafetensorsBlob>& b) {
  std::vector<SafetensorsTensorSpec> plan;
  for (const auto& t : b) plan.push_back({t.name, t.dtype, t.shape});
  return plan;
}

// Writes `b` through the stream into a committed directory, each tensor in pieces of `piece` bytes.
std::vector<std::string> write_streamed(const std::string& dir, const std::vector<SafetensorsBlob>& b, uint64_t max_shard,
                                        size_t piece) {
  AtomicDirectory out(dir);
  SafetensorsShardWriter writer(out.file(""), plan_of(b), max_shard);
  for (const auto& t : b)
    for (size_t at = 0; at < t.bytes.size(); at += piece)
      writer.write(t.name, t.bytes.data() + at, std::min(piece, t.bytes.size() - at));
  writer.finish();
  out.commit();
  return writer.shard_names();
}

void check_same_tensors(const std::string& dir, const std::vector<SafetensorsBlob>& b) {
  const SafetensorsDirectory files(dir);
  REQUIRE(files.names().size() == b.size());
  const std::string reference = dir + ".reference.safetensors";
  write_safetensors(reference, b);
  const SafetensorsFile whole(reference);
  for (const auto& t : b) {
    INFO(t.name);
    const SafetensorsEntry& e = files.get(t.name, {t.dtype}, t.shape);
    REQUIRE(e.nbytes == t.bytes.size());
    CHECK(std::memcmp(e.data, t.bytes.data(), e.nbytes) == 0);
    CHECK(std::memcmp(e.data, whole.get(t.name).data, e.nbytes) == 0);
  }
}

}  // namespace

TEST_CASE("one shard is model.safetensors, with no index, and holds write_safetensors' tensors") {
  const std::string root = test::temp_dir("shards-one");
  const auto b = blobs();
  CHECK(write_streamed(root + "/m", b, kDefaultShardBytes, 5) == std::vector<std::string>{"model.safetensors"});
  CHECK_FALSE(file_exists(root + "/m/model.safetensors.index.json"));
  check_same_tensors(root + "/m", b);
  const SafetensorsFile f(root + "/m/model.safetensors");
  CHECK(f.metadata().at("format") == "pt");
}

TEST_CASE("shards follow HF's split and names, and the index maps every tensor") {
  const std::string root = test::temp_dir("shards-many");
  const auto b = blobs();  // 64, 96, 40, 16 bytes
  // Limit 100: {b} (b + a = 160 > 100), {a} (a alone, 96), {c, d} (56).
  const auto names = write_streamed(root + "/m", b, 100, 17);
  CHECK(names == std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors"});
  const nlohmann::json index = read_json_file(root + "/m/model.safetensors.index.json");
  CHECK(index["metadata"]["total_size"] == 64 + 96 + 40 + 16);
  CHECK(index["weight_map"]["b.weight"] == names[0]);
  CHECK(index["weight_map"]["a.qweight"] == names[1]);
  CHECK(index["weight_map"]["c.scales"] == names[2]);
  CHECK(index["weight_map"]["d.norm"] == names[2]);
  check_same_tensors(root + "/m", b);
  // A tensor over the limit gets a shard of its own: {b}, {a}, {c}, {d} at a limit of 50.
  CHECK(write_streamed(root + "/small", b, 50, 1000).size() == 4);
  check_same_tensors(root + "/small", b);
}

TEST_CASE("the stream refuses tensors out of order, overruns and missing bytes, and leaves nothing") {
  const std::string root = test::temp_dir("shards-bad");
  const auto b = blobs();
  auto attempt = [&](const std::function<void(SafetensorsShardWriter&)>& misuse) {
    {
      AtomicDirectory out(root + "/m");
      SafetensorsShardWriter writer(out.file(""), plan_of(b), 100);
      misuse(writer);
    }
  };
  CHECK_THROWS_WITH(attempt([&](SafetensorsShardWriter& w) { w.write(b[1]); }),
                    Catch::Contains("'a.qweight' written out of plan order (expected 'b.weight')"));
  CHECK_THROWS_WITH(attempt([&](SafetensorsShardWriter& w) {
                      w.write(b[0]);
                      w.write("b.weight", b[0].bytes.data(), 1);
                    }),
                    Catch::Contains("'b.weight': 65 bytes written, its shape needs 64"));
  CHECK_THROWS_WITH(attempt([&](SafetensorsShardWriter& w) {
                      w.write("b.weight", b[0].bytes.data(), 40);
                      w.write("b.weight", b[0].bytes.data(), 40);
                    }),
                    Catch::Contains("'b.weight': 80 bytes written, its shape needs 64"));
  CHECK_THROWS_WITH(attempt([&](SafetensorsShardWriter& w) {
                      w.write(b[0]);
                      w.write("a.qweight", b[1].bytes.data(), 8);
                      w.finish();
                    }),
                    Catch::Contains("tensor 'a.qweight' was not written (8 of 96 bytes)"));
  CHECK_THROWS_WITH(attempt([&](SafetensorsShardWriter& w) {
                      SafetensorsBlob wrong = b[0];
                      wrong.shape = {8, 4};
                      w.write(wrong);
                    }),
                    Catch::Contains("'b.weight' is F16 [8, 4], planned as F16 [4, 8]"));
  CHECK(fs::is_empty(root));  // nothing committed, no temporary left
}

TEST_CASE("shard sizes read as HF's max_shard_size") {
  CHECK(parse_byte_size("5GB", "x") == 5'000'000'000ULL);
  CHECK(parse_byte_size("500MB", "x") == 500'000'000ULL);
  CHECK(parse_byte_size("2GiB", "x") == 2ULL << 30);
  CHECK(parse_byte_size("1.5kb", "x") == 1500);
  CHECK(parse_byte_size("4096", "x") == 4096);
  CHECK_THROWS_WITH(parse_byte_size("5 GB", "--shard-size"), Catch::Contains("--shard-size: '5 GB' is not a size"));
  CHECK_THROWS(parse_byte_size("GB", "x"));
  CHECK_THROWS(parse_byte_size("0MB", "x"));
  CHECK_THROWS(parse_byte_size("5PB", "x"));
}
