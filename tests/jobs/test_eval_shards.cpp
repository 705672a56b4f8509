// eval --shard I/N on the embedded default (datasets/embedded: stories-d256-l2 and WikiText-2, so CI
// runs it without ../shared): the shards' documents, merged, give exactly the
// unsharded run's numbers (==, not approximately); shards that overlap, leave a gap, are missing or
// come from another run are refused, naming the file.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "eval/shard_merge.h"
#include "jobs/eval_job.h"
#include "reports/run_schema.h"
#include "test_support.h"

using namespace qb;
using nlohmann::json;

std::string qb_test_skip_reason() { return ""; }  // the embedded default is part of the repository

namespace {

constexpr int kWindows = 5;  // uneven for 2 and 3 shards

EvalOptions options(int max_windows = kWindows) {
  EvalOptions o;
  o.model_path = std::string(QB_EMBEDDED) + "/models/stories-d256-l2";
  o.dataset_path = std::string(QB_EMBEDDED) + "/text/wikitext-2-raw/wiki.test.raw";
  o.protocol.ctx = 257;
  o.protocol.bos = BosPlacement::Window;
  o.protocol.max_windows = max_windows;
  o.methods = parse_methods("fp16,rtn:w4g32", 4, 128);
  o.device = DeviceChoice::Cpu;
  return o;
}

json run_shard(int index, int count, int max_windows = kWindows) {
  EvalOptions o = options(max_windows);
  o.shard = {index, count};
  return run_eval(o);
}

// The document less what may differ between runs: when and where it ran, how fast, and the memory
// plan (each shard's process plans its own windows on its own machine).
json without_timing(json run) {
  for (const char* field : {"created", "host", "merged_from", "memory_plan"}) run.erase(field);
  for (json& m : run["methods"]) {
    m.erase("speed");
    if (m["quantization"].is_object()) m["quantization"].erase("seconds");  // the quantizer's wall time
  }
  return run;
}

std::string merge_error(const std::vector<json>& runs, const std::vector<std::string>& names) {
  try {
    merge_eval_shards(runs, names);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("eval shards merge into exactly the unsharded run") {
  const json whole = run_eval(options());
  CHECK_FALSE(whole.contains("shard"));  // normal documents carry no raw sums
  CHECK_FALSE(whole["methods"][0].contains("shard_sums"));
  REQUIRE(whole["methods"][0]["quality"]["windows"] == kWindows);

  for (int count : {2, 3}) {
    DYNAMIC_SECTION(count << " shards") {
      std::vector<json> shards;
      std::vector<std::string> names;
      for (int i = 0; i < count; ++i) {
        shards.push_back(run_shard(i, count));
        names.push_back("shard-" + std::to_string(i) + ".json");
        CHECK_NOTHROW(reports::validate_run(shards.back(), names.back()));
        const json& s = shards.back()["shard"];
        // windows [i*W/N, (i+1)*W/N): 2 shards take 0..1 and 2..4, 3 shards 0, 1..2 and 3..4.
        CHECK(s["windows"] == json::array({i * kWindows / count, (i + 1) * kWindows / count}));
        CHECK(s["total_windows"] == kWindows);
        CHECK(shards.back()["methods"][1]["quality"]["windows"] == (i + 1) * kWindows / count - i * kWindows / count);
      }
      // Given out of order, beside an unsharded run that passes through.
      std::vector<json> inputs(shards.rbegin(), shards.rend());
      std::vector<std::string> input_names(names.rbegin(), names.rend());
      inputs.push_back(whole);
      input_names.push_back("whole.json");
      const std::vector<json> merged = merge_eval_shards(inputs, input_names);
      REQUIRE(merged.size() == 2);
      CHECK(merged[1] == whole);
      const json& m = merged[0];
      CHECK_NOTHROW(reports::validate_run(m, "merged"));
      REQUIRE(m["merged_from"].size() == size_t(count));
      CHECK(m["merged_from"][0]["shard"] == "0/" + std::to_string(count));
      for (size_t i = 0; i < whole["methods"].size(); ++i) {
        const json &got = m["methods"][i]["quality"], &want = whole["methods"][i]["quality"];
        INFO("method " << whole["methods"][i]["label"] << ": merged " << got.dump() << " unsharded " << want.dump());
        for (const char* metric : {"ppl", "ppl_stderr", "mean_nll", "nll_stderr", "tokens_scored", "windows",
                                   "delta_ppl_pct", "kl_mean", "kl_stderr", "kl_p99", "top1_agreement"})
          CHECK(got.at(metric) == want.at(metric));  // doubles compared exactly
        CHECK(m["methods"][i]["speed"]["device"] == "cpu");
      }
      CHECK(whole["methods"][1]["quality"]["kl_mean"].get<double>() > 0);  // the comparison is not trivially 0 == 0
      // Every other field as the unsharded run wrote it.
      INFO("differences: " << json::diff(without_timing(whole), without_timing(m)).dump());
      CHECK(without_timing(m) == without_timing(whole));
    }
  }
}

TEST_CASE("sequential eval shards merge into exactly the unsharded sequential run") {
  EvalOptions o = options();
  o.mode = EvalMode::Sequential;
  const json whole = run_eval(o);
  std::vector<json> shards;
  for (int i = 0; i < 2; ++i) {
    o.shard = {i, 2};
    shards.push_back(run_eval(o));
  }
  const json merged = merge_eval_shards(shards, {"a.json", "b.json"}).at(0);
  for (size_t i = 0; i < whole["methods"].size(); ++i)
    CHECK(merged["methods"][i]["quality"] == whole["methods"][i]["quality"]);
  // The stated KL error bound still bounds the run: at least the whole run's mean bound.
  CHECK(merged["reference"]["kl_error_bound"].get<double>() >= whole["reference"]["kl_error_bound"].get<double>());
  CHECK(merged["reference"]["kl_error_bound_max_token"] == whole["reference"]["kl_error_bound_max_token"]);
}

TEST_CASE("eval shards that do not make one run are refused, naming the file") {
  const json s0 = run_shard(0, 2), s1 = run_shard(1, 2);
  SECTION("a shard missing") {
    CHECK_THAT(merge_error({s1}, {"b.json"}), Catch::Contains("b.json") && Catch::Contains("shard(s) 0/2 missing"));
  }
  SECTION("the same shard twice") {
    CHECK_THAT(merge_error({s0, s1, s0}, {"a.json", "b.json", "c.json"}),
               Catch::Contains("c.json") && Catch::Contains("a.json") && Catch::Contains("overlapping"));
  }
  SECTION("windows that overlap or leave a gap") {
    json gap = s1;
    gap["shard"]["windows"][0] = 3;
    CHECK_THAT(merge_error({s0, gap}, {"a.json", "b.json"}), Catch::Contains("b.json") && Catch::Contains("a gap"));
    json overlap = s1;
    overlap["shard"]["windows"][0] = 1;
    CHECK_THAT(merge_error({s0, overlap}, {"a.json", "b.json"}),
               Catch::Contains("b.json") && Catch::Contains("overlapping"));
  }
  SECTION("a shard of another run") {
    json other_methods = s1;
    other_methods["methods"][1]["label"] = "rtn w4 g64";
    CHECK_THAT(merge_error({s0, other_methods}, {"a.json", "b.json"}),
               Catch::Contains("b.json: shard 1/2 differs from a.json (shard 0/2) in /methods/1/label"));
    json other_build = s1;
    other_build["tool"]["git_revision"] = "0123abc";
    CHECK_THAT(merge_error({s0, other_build}, {"a.json", "b.json"}), Catch::Contains("in /tool/git_revision"));
    // Another --max-windows: another set of windows to split.
    CHECK_THAT(merge_error({s0, run_shard(1, 2, kWindows + 1)}, {"a.json", "b.json"}),
               Catch::Contains("b.json: shard 1/2 differs from a.json (shard 0/2) in /protocol"));
  }
  SECTION("a shard without its sums") {
    json bare = s1;
    bare["methods"][1].erase("shard_sums");
    CHECK_THAT(merge_error({s0, bare}, {"a.json", "b.json"}),
               Catch::Contains("b.json: methods[1]: missing field 'shard_sums'"));
    json bad = s1;
    bad["methods"][0]["shard_sums"]["nll"]["sum"] = "12.5";
    CHECK_THAT(merge_error({s0, bad}, {"a.json", "b.json"}),
               Catch::Contains("b.json") && Catch::Contains("nll.sum") && Catch::Contains("decimal integer"));
  }
}

TEST_CASE("--shard is I/N with I < N and no more shards than windows") {
  CHECK(parse_shard("3/8").index == 3);
  CHECK(parse_shard("3/8").count == 8);
  for (const char* bad : {"8/8", "1", "a/2", "-1/2", "1/0", "1/2/3", ""})
    CHECK_THROWS_WITH(parse_shard(bad), Catch::Contains("--shard"));
  const ShardRange r = shard_range({2, 3}, 5);
  CHECK(r.begin == 3);
  CHECK(r.end == 5);
  CHECK(shard_range({5, 6}, 5).begin == 4);
  CHECK_THROWS_WITH(run_shard(0, 6), Catch::Contains("--shard: 0/6 of 5 windows is empty; use at most 5 shards"));
}
