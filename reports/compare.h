#pragma once
// Regression compare of two runs of the same kind (nightly CI): every metric with its delta and
// a verdict; exit code 0 (no regression), 1 (a threshold crossed or a method/case missing).
// Unusable input (different models, datasets, protocols, devices or kinds) throws qb::Error;
// the CLI maps that to exit code 2.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb::reports {

struct Thresholds {
  double max_ppl_increase = 0.005;  // relative, per method: 0.005 = +0.5 % perplexity
  double max_slowdown = 0.05;       // relative median time increase of a bench case beyond its noise
};

// Bench verdicts follow nvbench's compare: a change inside the p10..p90 spread of either run is
// SAME; spreads that overlap without containing the other median are AMBIGUOUS; otherwise FAST
// or SLOW. Quality verdicts: SAME within the threshold, BETTER, WORSE beyond it.
enum class Verdict { same, fast, slow, ambiguous, better, worse, missing, added, changed };
const char* verdict_name(Verdict v);

struct CompareRow {
  std::string subject;  // method label (eval) or case key (bench)
  std::string metric;
  std::string baseline, current, delta;  // formatted
  Verdict verdict;
  bool regression;  // counts towards exit code 1
};

struct CompareResult {
  std::vector<CompareRow> rows;
  size_t regressions = 0;
  int exit_code = 0;  // 0 or 1
  std::string markdown;
};

CompareResult compare_runs(const nlohmann::json& baseline, const nlohmann::json& current, const Thresholds& thresholds);

// "0.5%" or "0.5" -> 0.005 (the value is a percentage); throws qb::Error naming `option`.
double parse_percent(const std::string& text, const std::string& option);

}  // namespace qb::reports
