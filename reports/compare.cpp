#include "reports/compare.h"

#include <cmath>
#include <cstdlib>
#include <map>

#include "common/error.h"
#include "reports/run_schema.h"
#include "reports/tables.h"

namespace qb::reports {

using nlohmann::json;

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::same: return "SAME";
    case Verdict::fast: return "FAST";
    case Verdict::slow: return "SLOW";
    case Verdict::ambiguous: return "AMBIGUOUS";
    case Verdict::better: return "BETTER";
    case Verdict::worse: return "WORSE";
    case Verdict::missing: return "MISSING";
    case Verdict::added: return "NEW";
    case Verdict::changed: return "CHANGED";
  }
  return "?";
}

double parse_percent(const std::string& text, const std::string& option) {
  std::string number = text;
  if (!number.empty() && number.back() == '%') number.pop_back();
  char* end = nullptr;
  const double value = std::strtod(number.c_str(), &end);
  if (number.empty() || *end != '\0' || !std::isfinite(value) || value < 0)
    fail(option, "expected a non-negative percentage such as 0.5% or 5, got '" + text + "'");
  return value / 100;
}

namespace {

// Changes are shown with two decimals in percent; smaller ones read as none, and an ungated
// metric that moved less than that (float summation order across builds) is SAME.
constexpr double kShownResolutionPct = 0.005;

bool same_within_shown_resolution(const json& base, const json& current) {
  if (base == current) return true;
  if (!base.is_number() || !current.is_number()) return false;
  const double b = base.get<double>(), c = current.get<double>();
  return b != 0 && std::fabs((c / b - 1) * 100) < kShownResolutionPct;
}

std::string percent_change(double base, double current) {
  if (base == 0) return current == 0 ? "0.00 %" : "n/a";
  const double change = (current / base - 1) * 100;
  if (std::fabs(change) < kShownResolutionPct) return "0.00 %";  // no "-0.00 %" for rounding noise
  return (change > 0 ? "+" : "") + format_fixed(change, 2) + " %";
}

std::string shown(const json& v, int decimals) { return v.is_number() ? format_fixed(v.get<double>(), decimals) : "—"; }

// Runs whose numbers cannot be set against each other: the caller gets exit code 2.
void require_comparable(const json& base, const json& current) {
  const std::string where = "compare";
  auto same = [&](const char* pointer, const std::string& what) {
    const json::json_pointer p(pointer);
    if (base.at(p) != current.at(p))
      fail(where, "runs of different " + what + " (baseline " + base.at(p).dump() + ", current " + current.at(p).dump() + ")");
  };
  same("/kind", "kinds");
  if (base.at("kind") == "eval") {
    // The weights' hash when both runs recorded one (a checkout may move), else the path.
    same(base["model"].contains("sha256") && current["model"].contains("sha256") ? "/model/sha256" : "/model/path", "models");
    same("/model/parameters", "models");
    same("/dataset/sha256", "datasets");
    same("/protocol/name", "protocols");
    same("/protocol/ctx", "protocols");
    same("/protocol/stride", "protocols");
    same("/protocol/max_windows", "protocols");
  } else {
    same("/device/name", "devices");
    same("/bench/l2", "L2 modes");
  }
}

struct Collector {
  CompareResult result;
  void add(CompareRow row) {
    if (row.regression) ++result.regressions;
    result.rows.push_back(std::move(row));
  }
};

Verdict quality_verdict(double base_ppl, double current_ppl, double threshold) {
  const double change = current_ppl / base_ppl - 1;
  if (change > threshold) return Verdict::worse;
  if (change < -threshold) return Verdict::better;
  return Verdict::same;
}

void compare_eval(const json& base, const json& current, const Thresholds& th, Collector& out) {
  std::map<std::string, const json*> current_methods;
  for (auto& m : current.at("methods")) current_methods[m.at("label")] = &m;
  for (auto& b : base.at("methods")) {
    const std::string label = b.at("label");
    auto it = current_methods.find(label);
    if (it == current_methods.end()) {
      out.add({label, "ppl", shown(b["quality"]["ppl"], 4), "—", "—", Verdict::missing, true});
      continue;
    }
    const json& c = *it->second;
    const double bp = b["quality"]["ppl"], cp = c["quality"]["ppl"];
    const Verdict v = quality_verdict(bp, cp, th.max_ppl_increase);
    out.add({label, "ppl", format_fixed(bp, 4), format_fixed(cp, 4), percent_change(bp, cp), v, v == Verdict::worse});
    // Reported with their change, gated by nothing: ppl carries the verdict.
    auto info = [&](const std::string& metric, const json& bv, const json& cv, int decimals) {
      const bool equal = same_within_shown_resolution(bv, cv);
      out.add({label, metric, shown(bv, decimals), shown(cv, decimals),
               bv.is_number() && cv.is_number() ? percent_change(bv.get<double>(), cv.get<double>()) : "—",
               equal ? Verdict::same : Verdict::changed, false});
    };
    for (const char* metric : {"delta_ppl_pct", "kl_mean", "kl_p99", "top1_agreement"})
      info(metric, b["quality"][metric], c["quality"][metric], 4);
    info("weight_bytes", b["size"]["weight_bytes"], c["size"]["weight_bytes"], 0);
    if (b.contains("speed") && c.contains("speed"))
      info("tokens_per_s (no spread recorded: not gated)", b["speed"]["tokens_per_s"], c["speed"]["tokens_per_s"], 1);
    current_methods.erase(it);
  }
  for (auto& [label, c] : current_methods)
    out.add({label, "ppl", "—", shown(c->at("quality").at("ppl"), 4), "—", Verdict::added, false});
}

std::string case_key(const json& c) {
  return c.at("model").get<std::string>() + " " + c.at("layer").get<std::string>() + " m=" + c.at("m").dump() +
         " n=" + c.at("n").dump() + " k=" + c.at("k").dump() + " g=" + c.at("group_size").dump() + " " +
         c.at("method").get<std::string>();
}

void compare_bench(const json& base, const json& current, const Thresholds& th, Collector& out) {
  std::map<std::string, const json*> current_cases;
  for (auto& c : current.at("bench").at("cases")) current_cases[case_key(c)] = &c;
  auto micros = [](const json& t) {
    return format_fixed(t.at("median").get<double>() * 1e6, 2) + " (" + format_fixed(t.at("p10").get<double>() * 1e6, 2) +
           ".." + format_fixed(t.at("p90").get<double>() * 1e6, 2) + ")";
  };
  for (auto& b : base.at("bench").at("cases")) {
    const std::string key = case_key(b);
    auto it = current_cases.find(key);
    if (it == current_cases.end()) {
      out.add({key, "time µs", micros(b["time_s"]), "—", "—", Verdict::missing, true});
      continue;
    }
    const json &bt = b["time_s"], &ct = it->second->at("time_s");
    const double bm = bt["median"], cm = ct["median"];
    auto inside = [](double x, const json& t) { return x >= t["p10"].get<double>() && x <= t["p90"].get<double>(); };
    const bool overlap = ct["p10"].get<double>() <= bt["p90"].get<double>() && bt["p10"].get<double>() <= ct["p90"].get<double>();
    Verdict v = inside(cm, bt) || inside(bm, ct) ? Verdict::same
                : overlap                        ? Verdict::ambiguous
                : cm < bm                        ? Verdict::fast
                                                 : Verdict::slow;
    const bool regression = v == Verdict::slow && cm / bm - 1 > th.max_slowdown;
    out.add({key, regression || v != Verdict::slow ? "time µs" : "time µs (slower, within threshold)", micros(bt),
             micros(ct), percent_change(bm, cm), v, regression});
    current_cases.erase(it);
  }
  for (auto& [key, c] : current_cases) out.add({key, "time µs", "—", micros(c->at("time_s")), "—", Verdict::added, false});
}

std::string run_line(const char* role, const json& run) {
  return "- " + std::string(role) + ": " + describe_run(run) + ", created " + run.at("created").get<std::string>() +
         ", quantbench " + run.at("tool").at("version").get<std::string>() + " (git " +
         run["tool"].at("git_revision").get<std::string>() + ")\n";
}

}  // namespace

CompareResult compare_runs(const json& base, const json& current, const Thresholds& th) {
  validate_run(base, "baseline");
  validate_run(current, "current");
  require_comparable(base, current);
  Collector out;
  if (base.at("kind") == "eval") compare_eval(base, current, th, out);
  else compare_bench(base, current, th, out);
  CompareResult& r = out.result;
  r.exit_code = r.regressions ? 1 : 0;
  Table table{"compare", "", {"subject", "metric", "baseline", "current", "delta", "verdict"}, {}};
  for (auto& row : r.rows)
    table.rows.push_back({row.subject, row.metric, row.baseline, row.current, row.delta,
                          std::string(verdict_name(row.verdict)) + (row.regression ? " (regression)" : "")});
  r.markdown = "## quantbench compare (" + base.at("kind").get<std::string>() + ")\n\n" + run_line("baseline", base) +
               run_line("current", current) + "- thresholds: perplexity +" + format_fixed(th.max_ppl_increase * 100, 2) +
               " % per method, slowdown " + format_fixed(th.max_slowdown * 100, 2) +
               " % beyond the p10..p90 spread of either run\n\n" + markdown_table(table) + "\n" +
               (r.regressions ? "**" + std::to_string(r.regressions) + " regression(s)**\n" : "**No regression.**\n");
  return r;
}

}  // namespace qb::reports
