// merge_shards: the shards of one device become one run equal to the unsharded sweep; overlapping,
// mismatched or incomplete shards are refused by name.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "reports/merge.h"
#include "reports/run_schema.h"
#include "reports_fixtures.h"

using nlohmann::json;
using qb::reports::merge_shards;

namespace {

// Splits a whole bench run into `count` shards, case i going to shard i % count (as a
// round-robin `--shard I/N` would), each from its own host.
std::vector<json> split(const json& run, int count) {
  std::vector<json> shards;
  for (int s = 0; s < count; ++s) {
    json shard = run;
    shard["bench"]["shard"] = std::to_string(s) + "/" + std::to_string(count);
    shard["bench"]["cases"] = json::array();
    shard["host"]["hostname"] = "node" + std::to_string(s);
    shard["created"] = "2026-11-20T04:0" + std::to_string(count - s) + ":00Z";
    shards.push_back(shard);
  }
  const json& cases = run["bench"]["cases"];
  for (size_t i = 0; i < cases.size(); ++i) shards[i % count]["bench"]["cases"].push_back(cases[i]);
  return shards;
}

std::string merge_error(const std::vector<json>& runs) {
  try {
    merge_shards(runs);
  } catch (const qb::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("shards of one device merge into the whole sweep; other runs pass through") {
  const json whole = qb::test::h100_fixture();
  const std::vector<json> shards = split(whole, 3);
  // Out of order and interleaved with another device and an eval run.
  const std::vector<json> inputs{shards[2], qb::test::h200_fixture(), shards[0], shards[1], qb::test::eval_fixture()};
  const std::vector<json> merged = merge_shards(inputs);
  REQUIRE(merged.size() == 3);
  const json& h100 = merged[0];
  CHECK(merged[1] == qb::test::h200_fixture());
  CHECK(merged[2] == qb::test::eval_fixture());
  CHECK_NOTHROW(qb::reports::validate_run(h100));
  CHECK(h100["bench"]["shard"] == "0/1");
  CHECK(h100["created"] == "2026-11-20T04:01:00Z");  // the earliest shard
  REQUIRE(h100["bench"]["merged_from"].size() == 3);
  CHECK(h100["bench"]["merged_from"][2]["hostname"] == "node2");
  // Same cases as the unsharded sweep (shard order, not sweep order).
  auto sorted = [](json cases) {
    std::vector<std::string> dumped;
    for (auto& c : cases) dumped.push_back(c.dump());
    std::sort(dumped.begin(), dumped.end());
    return dumped;
  };
  CHECK(sorted(h100["bench"]["cases"]) == sorted(whole["bench"]["cases"]));
}

TEST_CASE("overlapping, mismatched and incomplete shards are refused") {
  const std::vector<json> shards = split(qb::test::h100_fixture(), 2);
  CHECK(merge_error({shards[0], shards[0], shards[1]}) == "NVIDIA H100 80GB HBM3 shards: shard 0/2 given twice (overlapping shards)");
  json overlap = shards[1];
  overlap["bench"]["cases"].push_back(shards[0]["bench"]["cases"][0]);
  CHECK(merge_error({shards[0], overlap}) ==
        "NVIDIA H100 80GB HBM3 shards: case llama-2-7b qkv m=1 n=12288 k=4096 g=-1 fp16-cublas is in shard 0/2 and in "
        "shard 1/2 (overlapping shards)");
  json other_count = shards[1];
  other_count["bench"]["shard"] = "1/3";
  CHECK(merge_error({shards[0], other_count}) ==
        "NVIDIA H100 80GB HBM3 shards: shard 1/3 belongs to a sweep of 3 shards, shard 0/2 to one of 2");
  json other_build = shards[1];
  other_build["tool"]["git_revision"] = "0123456789ab";
  CHECK(merge_error({shards[0], other_build}) ==
        "NVIDIA H100 80GB HBM3 shards: shard 1/2 has /tool/git_revision \"0123456789ab\" but shard 0/2 has \"fixture\"; "
        "merge only shards of one sweep");
  json other_samples = shards[1];
  other_samples["bench"]["samples"] = 20;
  CHECK(merge_error({shards[0], other_samples}).find("/bench/samples 20") != std::string::npos);
  CHECK(merge_error({shards[1]}) == "NVIDIA H100 80GB HBM3 shards: incomplete sweep: shard(s) 0/2 missing");
}
