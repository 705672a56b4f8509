// compare_runs: identical runs come out SAME (exit 0), planted regressions exit 1, runs that
// cannot be compared throw (the CLI's exit 2). Bench verdicts follow the p10..p90 noise rule.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "reports/compare.h"
#include "reports_fixtures.h"

using nlohmann::json;
using qb::reports::compare_runs;
using qb::reports::Verdict;

namespace {

const qb::reports::CompareRow& row_of(const qb::reports::CompareResult& r, const std::string& subject, const std::string& metric) {
  for (auto& row : r.rows)
    if (row.subject == subject && row.metric.rfind(metric, 0) == 0) return row;
  FAIL("no row " << subject << " / " << metric);
  throw;
}

const std::string kCase = "llama-2-7b qkv m=16 n=12288 k=4096 g=128 w4a16";

// Sets the time statistics of the case at `index` (min/max follow the spread).
void set_time(json& run, size_t index, double median, double p10, double p90) {
  json& t = run["bench"]["cases"][index]["time_s"];
  t["median"] = median, t["p10"] = p10, t["p90"] = p90, t["min"] = p10 * 0.99, t["max"] = p90 * 1.01;
}

}  // namespace

TEST_CASE("identical runs are SAME everywhere and exit 0") {
  for (const json& run : {qb::test::eval_fixture(), qb::test::h100_fixture()}) {
    const auto r = compare_runs(run, run, {});
    CHECK(r.exit_code == 0);
    CHECK(r.regressions == 0);
    REQUIRE(!r.rows.empty());
    for (auto& row : r.rows) CHECK(row.verdict == Verdict::same);
    CHECK(r.markdown.find("**No regression.**") != std::string::npos);
  }
}

TEST_CASE("eval: a perplexity increase beyond the threshold is a regression") {
  const json base = qb::test::eval_fixture();
  json current = base;
  current["methods"][2]["quality"]["ppl"] = 5.63 * 1.006;  // awq w4 g128: +0.6 %
  auto r = compare_runs(base, current, {0.005, 0.05});
  CHECK(r.exit_code == 1);
  CHECK(r.regressions == 1);
  CHECK(row_of(r, "awq w4 g128", "ppl").verdict == Verdict::worse);
  CHECK(row_of(r, "awq w4 g128", "ppl").delta == "+0.60 %");
  CHECK(row_of(r, "rtn w4 g128", "ppl").verdict == Verdict::same);
  CHECK(r.markdown.find("| awq w4 g128 | ppl | 5.6300 | 5.6638 | +0.60 % | WORSE (regression) |") != std::string::npos);

  r = compare_runs(base, current, {0.01, 0.05});  // within a 1 % threshold
  CHECK(r.exit_code == 0);
  CHECK(row_of(r, "awq w4 g128", "ppl").verdict == Verdict::same);

  current["methods"][2]["quality"]["ppl"] = 5.5;  // better by more than the threshold
  r = compare_runs(base, current, {0.005, 0.05});
  CHECK(r.exit_code == 0);
  CHECK(row_of(r, "awq w4 g128", "ppl").verdict == Verdict::better);
}

TEST_CASE("eval: a method missing in current is a regression, a new one is not") {
  const json base = qb::test::eval_fixture();
  json current = base;
  current["methods"].erase(4);
  auto r = compare_runs(base, current, {});
  CHECK(r.exit_code == 1);
  CHECK(row_of(r, "awq w3 g128", "ppl").verdict == Verdict::missing);
  r = compare_runs(current, base, {});
  CHECK(r.exit_code == 0);
  CHECK(row_of(r, "awq w3 g128", "ppl").verdict == Verdict::added);
}

TEST_CASE("eval: ungated metrics are reported with their change") {
  const json base = qb::test::eval_fixture();
  json current = base;
  current["methods"][1]["quality"]["kl_mean"] = 0.05;
  const auto r = compare_runs(base, current, {});
  CHECK(r.exit_code == 0);
  CHECK(row_of(r, "rtn w4 g128", "kl_mean").verdict == Verdict::changed);
  CHECK(row_of(r, "rtn w4 g128", "kl_mean").delta == "+21.36 %");
  // Summation-order noise below the shown resolution (0.005 %) is no change.
  current = base;
  current["methods"][1]["quality"]["kl_p99"] = 0.39 * (1 - 1e-7);
  const auto noise = compare_runs(base, current, {});
  CHECK(row_of(noise, "rtn w4 g128", "kl_p99").verdict == Verdict::same);
  CHECK(row_of(noise, "rtn w4 g128", "kl_p99").delta == "0.00 %");
}

TEST_CASE("bench: verdicts from the p10..p90 spread of both runs") {
  const json base = qb::test::h100_fixture();
  const size_t index = 3;  // kCase; its fixture spread is +-1.2 % around 1.511e-05
  REQUIRE(base["bench"]["cases"][index]["time_s"]["median"] == 1.511e-05);
  json current = base;
  const double m = 1.511e-05;

  SECTION("inside the baseline spread: SAME") {
    set_time(current, index, m * 1.008, m * 0.996, m * 1.02);
    const auto r = compare_runs(base, current, {});
    CHECK(row_of(r, kCase, "time").verdict == Verdict::same);
    CHECK(r.exit_code == 0);
  }
  SECTION("baseline median inside a noisier current spread: SAME") {
    set_time(current, index, m * 1.10, m * 0.95, m * 1.3);
    CHECK(row_of(compare_runs(base, current, {}), kCase, "time").verdict == Verdict::same);
  }
  SECTION("spreads overlap, neither median inside the other: AMBIGUOUS, not a regression") {
    set_time(current, index, m * 1.03, m * 1.005, m * 1.06);
    const auto r = compare_runs(base, current, {});
    CHECK(row_of(r, kCase, "time").verdict == Verdict::ambiguous);
    CHECK(r.exit_code == 0);
  }
  SECTION("disjoint and 20 % slower: SLOW, a regression") {
    set_time(current, index, m * 1.2, m * 1.18, m * 1.22);
    const auto r = compare_runs(base, current, {0.005, 0.05});
    CHECK(row_of(r, kCase, "time").verdict == Verdict::slow);
    CHECK(row_of(r, kCase, "time").regression);
    CHECK(r.exit_code == 1);
  }
  SECTION("disjoint but 3 % slower, under a 5 % threshold: SLOW, not a regression") {
    set_time(current, index, m * 1.03, m * 1.02, m * 1.04);
    const auto r = compare_runs(base, current, {0.005, 0.05});
    CHECK(row_of(r, kCase, "time").verdict == Verdict::slow);
    CHECK(r.exit_code == 0);
    CHECK(compare_runs(base, current, {0.005, 0.02}).exit_code == 1);
  }
  SECTION("disjoint and faster: FAST") {
    set_time(current, index, m * 0.8, m * 0.79, m * 0.81);
    const auto r = compare_runs(base, current, {});
    CHECK(row_of(r, kCase, "time").verdict == Verdict::fast);
    CHECK(r.exit_code == 0);
  }
  SECTION("a case missing in current: a regression") {
    current["bench"]["cases"].erase(index);
    const auto r = compare_runs(base, current, {});
    CHECK(row_of(r, kCase, "time").verdict == Verdict::missing);
    CHECK(r.exit_code == 1);
  }
}

TEST_CASE("runs that cannot be compared are refused with one-line messages") {
  const json eval = qb::test::eval_fixture();
  auto message = [](const json& a, const json& b) {
    try {
      compare_runs(a, b, {});
    } catch (const qb::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  json other = eval;
  other["model"]["path"] = "models/other";
  CHECK(message(eval, other) == "compare: runs of different models (baseline \"fixtures/llama-2-7b-fixture\", current \"models/other\")");
  // With the weights' sha256 on both sides, the hash decides and the path may differ.
  json hashed = eval;
  hashed["model"]["sha256"] = std::string(64, 'a');
  other = hashed;
  other["model"]["path"] = "/elsewhere/llama-2-7b-fixture";
  CHECK(message(hashed, other).empty());
  other["model"]["sha256"] = std::string(64, 'b');
  CHECK(message(hashed, other).rfind("compare: runs of different models (baseline \"aaaa", 0) == 0);
  other = eval;
  other["dataset"]["sha256"] = std::string(64, '0');
  CHECK(message(eval, other).rfind("compare: runs of different datasets", 0) == 0);
  other = eval;
  other["protocol"]["ctx"] = 512;
  CHECK(message(eval, other) == "compare: runs of different protocols (baseline 2048, current 512)");
  CHECK(message(eval, qb::test::h100_fixture()) == "compare: runs of different kinds (baseline \"eval\", current \"bench\")");
  CHECK(message(qb::test::h100_fixture(), qb::test::h200_fixture()) ==
        "compare: runs of different devices (baseline \"NVIDIA H100 80GB HBM3\", current \"NVIDIA H200\")");
  other = eval;
  other["schema_version"] = "2.0";
  CHECK(message(eval, other) == "current: schema_version 2.0 is not supported (this quantbench reads 1.x)");
}

TEST_CASE("thresholds are percentages") {
  CHECK(qb::reports::parse_percent("0.5%", "--max-ppl-increase") == Approx(0.005));
  CHECK(qb::reports::parse_percent("5", "--max-slowdown") == Approx(0.05));
  CHECK_THROWS_WITH(qb::reports::parse_percent("five", "--max-slowdown"),
                    "--max-slowdown: expected a non-negative percentage such as 0.5% or 5, got 'five'");
  CHECK_THROWS_AS(qb::reports::parse_percent("-1%", "--max-slowdown"), qb::Error);
}
