#include "reports/claims.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/files.h"
#include "reports/run_schema.h"

namespace qb::reports {

extern const char* const kClaimsSchemaText;

namespace {

using nlohmann::json;

const char* kHolds = "HOLDS";
const char* kFails = "FAILS";
const char* kNotTested = "NOT TESTED";
// Below this a model is not the 7B-class model public quality claims are about.
constexpr double kClaimScaleParameters = 1e9;

std::string pct(double fraction, int decimals = 2) { return format_fixed(fraction * 100, decimals) + "%"; }
std::string gb(double bytes) { return format_fixed(bytes / 1e9, 2) + " GB"; }

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

// "path (created; model <path>, <n> parameters)" or "path (created; <GPU>)": what a verdict rests on.
std::string evidence(const ClaimsRun& r) {
  const json& run = r.run;
  std::string what = r.path + " (" + run.at("created").get<std::string>() + "; ";
  if (run.at("kind") == "bench") return what + run.at("device").at("name").get<std::string>() + ")";
  return what + "model " + run.at("model").at("path").get<std::string>() + ", " +
         with_commas(run.at("model").at("parameters").get<int64_t>()) + " parameters)";
}

// The labelled-verdict caveat: a quality verdict on a small model is about that model only.
std::string scale_caveat(const json& run) {
  const double params = run.at("model").at("parameters").get<double>();
  if (params >= kClaimScaleParameters) return "";
  return run.at("model").at("path").get<std::string>() + " has " + with_commas(static_cast<int64_t>(params)) +
         " parameters: a verdict on that model, not on the 7B-class models the claim is about";
}

struct Verdict {
  std::string verdict = kNotTested, measured, reason, would_test, caveat;
  std::vector<std::string> evidence;
  json numbers = json::object();
};

const json* find_method(const json& run, const std::string& method, int bits, int group_size) {
  for (const json& m : run.at("methods")) {
    if (m.at("method") != method) continue;
    if (method == "fp16") return &m;
    const json& q = m.at("quantization");
    if (q.is_object() && q.value("bits", 0) == bits && (group_size == 0 || q.value("group_size", 0) == group_size))
      return &m;
  }
  return nullptr;
}

std::vector<const ClaimsRun*> runs_of_kind(const std::vector<ClaimsRun>& runs, const std::string& kind) {
  std::vector<const ClaimsRun*> out;
  for (const auto& r : runs)
    if (r.run.at("kind") == kind) out.push_back(&r);
  return out;
}

const json& catalog_entry(const json& catalog, const std::string& model) {
  for (const json& e : catalog)
    if (e.at("model") == model) return e;
  fail("claims", "no catalog model '" + model + "'");
}

std::vector<std::string> claim_models(const json& claim, const json& catalog) {
  std::vector<std::string> out;
  for (const json& m : claim.at("models")) {
    if (m != "*") {
      out.push_back(m);
      continue;
    }
    for (const json& e : catalog) out.push_back(e.at("model"));
  }
  return out;
}

std::string setting(const json& claimed) {
  return "w" + std::to_string(claimed.at("bits").get<int>()) + " g" + std::to_string(claimed.at("group_size").get<int>());
}

void add_line(std::string& text, const std::string& line) { text += (text.empty() ? "" : "; ") + line; }

// Memory claim 1: stated FP16 and AWQ sizes of the named catalog models, each within `relative`.
Verdict weight_bytes(const json& claim, const json& catalog) {
  Verdict v;
  const json& c = claim.at("claimed");
  const double rel = claim.at("tolerance").at("relative");
  bool all = true;
  for (const std::string& name : claim_models(claim, catalog)) {
    const json& e = catalog_entry(catalog, name);
    const double fp16 = e.at("weight_bytes").at("fp16"), quant = e.at("weight_bytes").value(setting(c), -1.0);
    const bool ok = std::abs(fp16 - c.at("fp16_bytes").get<double>()) <= rel * c.at("fp16_bytes").get<double>() &&
                    std::abs(quant - c.at("quantized_bytes").get<double>()) <= rel * c.at("quantized_bytes").get<double>();
    all = all && ok;
    add_line(v.measured, name + ": fp16 " + gb(fp16) + ", awq " + setting(c) + " " + gb(quant));
    v.numbers[name] = {{"fp16_bytes", fp16}, {"quantized_bytes", quant}, {"within_band", ok}};
  }
  v.verdict = all ? kHolds : kFails;
  v.evidence.push_back("model catalog (bench/model_shapes.json), bytes as stored");
  return v;
}

// Memory claim 2: FP16 bytes / quantized bytes of every named catalog model within [min, max].
Verdict memory_ratio(const json& claim, const json& catalog) {
  Verdict v;
  const json& t = claim.at("tolerance");
  const double lo = t.at("min"), hi = t.at("max");
  std::vector<std::string> outside;
  double rmin = INFINITY, rmax = 0;
  for (const std::string& name : claim_models(claim, catalog)) {
    const json& e = catalog_entry(catalog, name);
    const double r = e.at("weight_bytes").at("fp16").get<double>() / e.at("weight_bytes").at(setting(claim.at("claimed"))).get<double>();
    v.numbers[name] = r;
    rmin = std::min(rmin, r), rmax = std::max(rmax, r);
    if (r < lo || r > hi) outside.push_back(name + " " + format_fixed(r, 2) + "x");
  }
  v.verdict = outside.empty() ? kHolds : kFails;
  v.measured = "ratio " + format_fixed(rmin, 2) + "x .. " + format_fixed(rmax, 2) + "x over " +
               std::to_string(v.numbers.size()) + " catalog models";
  if (!outside.empty()) {
    std::string list;
    for (auto& o : outside) add_line(list, o);
    v.measured += "; outside the band: " + list;
  }
  v.evidence.push_back("model catalog (bench/model_shapes.json), bytes as stored");
  return v;
}

// Runs an eval-run evaluator over every eval run; FAILS if any measured pair fails.
template <typename PerRun>
Verdict over_eval_runs(const std::vector<ClaimsRun>& runs, const std::string& would_test, PerRun per_run) {
  Verdict v;
  bool any = false, all = true;
  std::string skipped;
  for (const ClaimsRun* r : runs_of_kind(runs, "eval")) {
    std::string measured;
    const std::optional<bool> ok = per_run(r->run, measured, v.numbers[r->path]);
    if (!ok) {  // `measured` says why this run cannot test the claim, if it has the methods
      v.numbers.erase(r->path);
      if (!measured.empty()) add_line(skipped, r->path + ": " + measured);
      continue;
    }
    any = true, all = all && *ok;
    add_line(v.measured, r->run.at("model").at("path").get<std::string>() + ": " + measured);
    v.evidence.push_back(evidence(*r));
    if (const std::string c = scale_caveat(r->run); !c.empty()) add_line(v.caveat, c);
  }
  if (!any) {
    v.reason = skipped.empty() ? "no eval run document given with the methods this claim needs" : skipped;
    v.would_test = would_test;
    return v;
  }
  v.verdict = all ? kHolds : kFails;
  return v;
}

std::string metric_cell(double x, double se, int decimals) {
  return format_fixed(x, decimals) + " ± " + format_fixed(se, decimals);
}

// Claim 3: AWQ better than RTN at the same bits and group size on ppl, KL and top-1 agreement.
Verdict awq_vs_rtn(const json& claim, const std::vector<ClaimsRun>& runs) {
  const int bits = claim.at("claimed").at("bits");
  return over_eval_runs(runs, "quantbench eval --methods fp16,rtn,awq on any model",
                        [&](const json& run, std::string& measured, json& numbers) -> std::optional<bool> {
    bool any = false, all = true;
    for (const json& awq : run.at("methods")) {
      if (awq.at("method") != "awq" || awq.at("quantization").value("bits", 0) != bits) continue;
      const int g = awq.at("quantization").at("group_size");
      const json* rtn = find_method(run, "rtn", bits, g);
      if (!rtn) continue;
      const json &a = awq.at("quality"), &r = rtn->at("quality");
      // Perplexity within the two standard errors is a tie, not a loss; KL and top-1, measured token
      // by token against the same FP16 logits, must be strictly better.
      const double ppl_gap = a.at("ppl").get<double>() - r.at("ppl").get<double>();
      const bool ppl_tie = ppl_gap >= 0 && ppl_gap <= std::hypot(a.at("ppl_stderr").get<double>(), r.at("ppl_stderr").get<double>());
      const bool ok = (ppl_gap < 0 || ppl_tie) && a.at("kl_mean") < r.at("kl_mean") &&
                      a.at("top1_agreement") > r.at("top1_agreement");
      any = true, all = all && ok;
      const std::string pair = "w" + std::to_string(bits) + " g" + std::to_string(g);
      add_line(measured, pair + " ppl awq " + metric_cell(a.at("ppl"), a.at("ppl_stderr"), 3) + " vs rtn " +
                             metric_cell(r.at("ppl"), r.at("ppl_stderr"), 3) + (ppl_tie ? " (a tie)" : "") + ", KL " + format_fixed(a.at("kl_mean"), 4) +
                             " vs " + format_fixed(r.at("kl_mean"), 4) + ", top-1 " +
                             pct(a.at("top1_agreement")) + " vs " + pct(r.at("top1_agreement")));
      numbers[pair] = {{"awq", a}, {"rtn", r}, {"better", ok}};
    }
    if (!any) return std::nullopt;
    return all;
  });
}

// Claims 4: one quality number of AWQ at `bits` against a bound.
Verdict awq_quality(const json& claim, const std::vector<ClaimsRun>& runs, const std::string& metric) {
  const int bits = claim.at("claimed").at("bits");
  const json& t = claim.at("tolerance");
  return over_eval_runs(runs, "quantbench eval --methods fp16,awq (the claim's own model: a 7B chat model)",
                        [&](const json& run, std::string& measured, json& numbers) -> std::optional<bool> {
    bool any = false, all = true;
    for (const json& m : run.at("methods")) {
      if (m.at("method") != "awq" || m.at("quantization").value("bits", 0) != bits) continue;
      const json& x = m.at("quality").at(metric);
      if (!x.is_number()) continue;
      const double value = x;
      const bool ok = (!t.contains("max") || value <= t["max"].get<double>()) &&
                      (!t.contains("min") || value >= t["min"].get<double>());
      any = true, all = all && ok;
      add_line(measured, m.at("label").get<std::string>() + " " +
                             (metric == "top1_agreement" ? "top-1 agreement with FP16 " + pct(value)
                                                         : "ppl " + std::string(value >= 0 ? "+" : "") +
                                                               format_fixed(value, 2) + "% vs FP16"));
      numbers[m.at("label").get<std::string>()] = value;
    }
    if (!any) return std::nullopt;
    return all;
  });
}

// Claim 5 (AWQ paper Table 1): recovered RTN loss by the 1% kept channels, chosen by activation
// vs by weight magnitude vs at random.
Verdict salient_channels(const json& claim, const std::vector<ClaimsRun>& runs) {
  const int bits = claim.at("claimed").at("bits");
  const double factor = claim.at("tolerance").at("factor");
  return over_eval_runs(runs,
                        "quantbench eval --methods rtn,rtn-keep:act:1%,rtn-keep:weight:1%,rtn-keep:random:1% (the rtn-keep methods)",
                        [&](const json& run, std::string& measured, json& numbers) -> std::optional<bool> {
    const json* rtn = nullptr;
    std::map<std::string, const json*> keep;
    for (const json& m : run.at("methods")) {
      const json& q = m.at("quantization");
      if (!q.is_object() || q.value("bits", 0) != bits) continue;
      if (m.at("method") == "rtn" && !rtn) rtn = &m;
      if (m.at("method") == "rtn-keep" && q.contains("keep") && q["keep"].contains("by"))
        keep.emplace(q["keep"]["by"].get<std::string>(), &m);
    }
    const json* fp16 = find_method(run, "fp16", 16, 0);
    if (!fp16 || !rtn || !keep.count("act") || !keep.count("weight") || !keep.count("random")) return std::nullopt;
    const double base = rtn->at("quality").at("ppl"), base_se = rtn->at("quality").at("ppl_stderr");
    const double loss = base - fp16->at("quality").at("ppl").get<double>();
    if (loss <= std::hypot(base_se, fp16->at("quality").at("ppl_stderr").get<double>())) {
      measured = "RTN w" + std::to_string(bits) + " perplexity is not above FP16's beyond their standard errors (" +
                 format_fixed(base, 3) + " vs " + format_fixed(fp16->at("quality").at("ppl"), 3) +
                 "): no loss to recover on this model";
      return std::nullopt;
    }
    auto recovered = [&](const std::string& by) { return base - keep[by]->at("quality").at("ppl").get<double>(); };
    auto se = [&](const std::string& by) { return keep[by]->at("quality").at("ppl_stderr").get<double>(); };
    const double act = recovered("act");
    bool ok = act > 0;
    for (const std::string other : {"weight", "random"}) {
      const double r = recovered(other);
      ok = ok && act >= factor * r && act - r > std::hypot(se("act"), se(other));
    }
    measured = "RTN ppl " + metric_cell(base, base_se, 3) + "; recovered by act " + format_fixed(act, 3) + ", weight " +
               format_fixed(recovered("weight"), 3) + ", random " + format_fixed(recovered("random"), 3);
    numbers = {{"rtn_ppl", base}, {"recovered_act", act}, {"recovered_weight", recovered("weight")},
               {"recovered_random", recovered("random")}};
    return ok;
  });
}

const json* find_label(const json& run, const std::string& label) {
  for (const json& m : run.at("methods"))
    if (m.at("label") == label) return &m;
  return nullptr;
}

// The number a method_vs_method claim compares and its standard error (0 where the run has none:
// bytes, seconds, and KL in documents written before kl_stderr); nothing when the run left it null.
std::optional<std::pair<double, double>> measure_of(const json& method, const std::string& measure) {
  const json &q = method.at("quality"), &quant = method.at("quantization");
  json value, se;
  if (measure == "weight_bytes") value = method.at("size").at("weight_bytes");
  else if (measure == "quantization_seconds") value = quant.is_object() ? quant.value("seconds", json()) : json();
  else value = q.value(measure, json()), se = q.value(measure == "ppl" ? "ppl_stderr" : "kl_stderr", json());
  if (!value.is_number()) return std::nullopt;
  return std::make_pair(value.get<double>(), se.is_number() ? se.get<double>() : 0.0);
}

std::string measure_cell(const std::string& measure, double x, double se) {
  if (measure == "weight_bytes") return with_commas(static_cast<int64_t>(x)) + " bytes";
  if (measure == "quantization_seconds") return format_fixed(x, 2) + " s";
  return metric_cell(x, se, measure == "ppl" ? 3 : 5);
}

// Calibration text, sample count and length, when both calibrate: what makes two quantization
// times (calibration included) comparable.
bool same_calibration(const json& a, const json& b) {
  const json ca = a.at("quantization").value("calibration", json()), cb = b.at("quantization").value("calibration", json());
  if (!ca.is_object() || !cb.is_object()) return true;
  for (const char* key : {"sha256", "samples", "seq_len"})
    if (ca.value(key, json()) != cb.value(key, json())) return false;
  return true;
}

std::string measure_name(const std::string& measure) {
  if (measure == "kl_mean") return "KL";
  if (measure == "quantization_seconds") return "quantization time";
  if (measure == "weight_bytes") return "weight bytes";
  return measure;
}

// Glossary claims against GPTQ and GGUF: one number of two methods (run document labels) in the
// same run. "lower": below the other's beyond the two standard errors combined; "not_higher": at
// most the other's plus them (a tie holds); "within": method / versus in [min, max].
Verdict method_vs_method(const json& claim, const std::vector<ClaimsRun>& runs) {
  const json& c = claim.at("claimed");
  const json& t = claim.at("tolerance");
  const std::string method = c.at("method"), versus = c.at("versus"), measure = c.at("measure"), direction = c.at("direction");
  return over_eval_runs(runs, "one quantbench eval run with both '" + method + "' and '" + versus + "' (e.g. --methods awq,gptq,gguf:q4_0,gguf:q4_k_m)",
                        [&](const json& run, std::string& measured, json& numbers) -> std::optional<bool> {
    const json *a = find_label(run, method), *b = find_label(run, versus);
    if (!a || !b) return std::nullopt;
    const auto x = measure_of(*a, measure), y = measure_of(*b, measure);
    if (!x || !y) {
      measured = measure_name(measure) + " not recorded for " + (x ? versus : method);
      return std::nullopt;
    }
    if (measure == "quantization_seconds" && !same_calibration(*a, *b)) {
      measured = method + " and " + versus + " calibrated on different text, sample counts or lengths";
      return std::nullopt;
    }
    const double noise = std::hypot(x->second, y->second), ratio = x->first / y->first;
    bool ok;
    std::string how;
    if (direction == "lower") {
      ok = x->first + noise < y->first;
      how = ok ? "lower" : x->first < y->first ? "lower, but within the combined standard error" : "not lower";
    } else if (direction == "not_higher") {
      ok = x->first <= y->first + noise;
      how = !ok ? "higher" : x->first <= y->first ? "not higher" : "higher, within the combined standard error (a tie)";
    } else {  // within: the schema admits no other direction
      ok = ratio >= t.at("min").get<double>() && ratio <= t.at("max").get<double>();
      how = ok ? "within the band" : "outside the band";
    }
    if (noise > 0) how += " (combined standard error " + format_fixed(noise, measure == "ppl" ? 3 : 5) + ")";
    measured = measure_name(measure) + " " + method + " " + measure_cell(measure, x->first, x->second) + " vs " + versus +
               " " + measure_cell(measure, y->first, y->second) + " (" + format_fixed(ratio, 3) + "x): " + how;
    numbers = {{"method", x->first}, {"versus", y->first}, {"combined_stderr", noise}, {"ratio", ratio}, {"holds", ok}};
    return ok;
  });
}

// Claim 7: W4A16 vs FP16 cuBLAS median time on the same shape for M in [m_min, m_max].
Verdict throughput_ratio(const json& claim, const std::vector<ClaimsRun>& runs) {
  Verdict v;
  const json& c = claim.at("claimed");
  const int m_min = c.at("m_min"), m_max = c.at("m_max");
  const double max_ratio = claim.at("tolerance").at("max");
  bool any = false, all = true;
  for (const ClaimsRun* r : runs_of_kind(runs, "bench")) {
    const json& cases = r->run.at("bench").at("cases");
    double worst = 0;
    std::string worst_case;
    int pairs = 0;
    for (const json& w : cases) {
      const int m = w.at("m");
      if (w.at("method") != "w4a16" || m < m_min || m > m_max) continue;
      for (const json& f : cases) {
        if (f.at("method") != "fp16-cublas" || f.at("model") != w.at("model") || f.at("layer") != w.at("layer") ||
            f.at("m") != w.at("m") || f.at("n") != w.at("n") || f.at("k") != w.at("k"))
          continue;
        const double ratio = w.at("time_s").at("median").get<double>() / f.at("time_s").at("median").get<double>();
        ++pairs;
        if (ratio > worst)
          worst = ratio, worst_case = w.at("model").get<std::string>() + " " + w.at("layer").get<std::string>() +
                                      " m=" + std::to_string(m);
      }
    }
    if (pairs == 0) continue;
    any = true;
    const bool ok = worst <= max_ratio;
    all = all && ok;
    const std::string device = r->run.at("device").at("name");
    add_line(v.measured, device + ": " + std::to_string(pairs) + " shapes, worst W4A16/FP16 time " +
                             format_fixed(worst, 3) + "x (" + worst_case + ")");
    v.numbers[r->path] = {{"pairs", pairs}, {"worst_ratio", worst}, {"worst_case", worst_case}};
    v.evidence.push_back(evidence(*r));
    bool named = false;
    for (const json& d : c.value("devices", json::array())) named = named || device.find(d.get<std::string>()) != std::string::npos;
    if (c.contains("devices") && !named) add_line(v.caveat, "measured on " + device + ", not on a device the claim names");
  }
  if (!any) {
    v.reason = "needs a bench run on a GPU";
    v.would_test = "quantbench bench on an A100 or H100 (fp16-cublas and w4a16 cases with M in " +
                   std::to_string(m_min) + ".." + std::to_string(m_max) + "), then pass its document";
    return v;
  }
  v.verdict = all ? kHolds : kFails;
  return v;
}

// Claim 8: the paper's perplexities, only from runs of the same model (architecture) and protocol.
Verdict paper_ppl(const json& claim, const std::vector<ClaimsRun>& runs, const json& catalog) {
  Verdict v;
  const json& c = claim.at("claimed");
  const json& t = claim.at("tolerance");
  bool any = false, all = true;
  for (const ClaimsRun* r : runs_of_kind(runs, "eval")) {
    const json& run = r->run;
    const json& p = run.at("protocol");
    if (p.at("name") != c.at("protocol") || p.at("ctx") != c.at("ctx") || run.at("dataset").at("format") != c.at("dataset_format"))
      continue;
    for (const json& e : catalog) {
      bool same = true;
      for (auto& [key, value] : e.at("architecture").items()) same = same && run.at("model").at("architecture").value(key, json()) == value;
      if (!same) continue;
      for (const json& row : c.at("table")) {
        if (row.at("model") != e.at("model")) continue;
        const json* m = find_method(run, row.at("method"), row.value("bits", 16), 128);
        if (!m) continue;
        const double paper = row.at("ppl"), got = m->at("quality").at("ppl");
        const bool ok = std::abs(got - paper) <= t.at("rounding").get<double>() + t.at("relative").get<double>() * paper;
        any = true, all = all && ok;
        add_line(v.measured, e.at("model").get<std::string>() + " " + m->at("label").get<std::string>() + " " +
                                 format_fixed(got, 3) + " (paper " + format_fixed(paper, 2) + ")");
      }
      v.evidence.push_back(evidence(*r));
    }
  }
  if (!any) {
    v.reason = "no run document of the paper's models under its protocol (run documents record no weights sha256, so a "
               "model is matched on model.architecture against the catalog config; ctx " +
               std::to_string(c.at("ctx").get<int>()) + ", protocol " + c.at("protocol").get<std::string>() + ", " +
               c.at("dataset_format").get<std::string>() + ")";
    v.would_test = claim.at("needs").value("protocol", "") + " with Llama-2-7B/13B/70B or Mistral-7B weights";
    return v;
  }
  v.verdict = all ? kHolds : kFails;
  return v;
}

struct Card {
  std::string name;
  double memory_bytes, bandwidth;
};

// The cards of the claim, then the GPU of every run given that names one.
std::vector<Card> cards(const json& claim, const std::vector<ClaimsRun>& runs) {
  std::vector<Card> out;
  for (const json& c : claim.at("claimed").at("cards"))
    out.push_back({c.at("name"), c.at("memory_bytes"), c.at("bandwidth_bytes_per_s")});
  std::set<std::string> seen;
  for (const auto& r : runs) {
    const json& d = r.run.at("device");
    if (!d.is_object() || !d.contains("memory_bytes") || !d.contains("peak_bandwidth_gbps")) continue;
    if (!seen.insert(d.at("name").get<std::string>()).second) continue;
    out.push_back({d.at("name"), d.at("memory_bytes"), d.at("peak_bandwidth_gbps").get<double>() * 1e9});
  }
  return out;
}

// Claim 9: will it fit, for every catalog model x (fp16, the claim's setting) x card.
Verdict hardware_fit(const json& claim, const std::vector<ClaimsRun>& runs, const json& catalog, json& fit) {
  Verdict v;
  const json& c = claim.at("claimed");
  const int64_t tokens = c.at("context").get<int64_t>() * c.at("batch").get<int64_t>();
  const std::string quant = setting(c);
  const std::vector<Card> all_cards = cards(claim, runs);
  const std::vector<std::string> named = claim_models(claim, catalog);
  std::vector<std::string> misfits;
  for (const json& e : catalog) {
    const double kv = e.at("kv_bytes_per_token").get<double>() * tokens;
    for (const std::string& method : {std::string("fp16"), quant}) {
      const double weights = e.at("weight_bytes").at(method);
      for (size_t k = 0; k < all_cards.size(); ++k) {
        const Card& card = all_cards[k];
        const bool fits = weights + kv <= card.memory_bytes;
        fit.push_back({{"model", e.at("model")}, {"method", method == "fp16" ? "fp16" : "awq " + method},
                       {"card", card.name}, {"card_memory_bytes", card.memory_bytes},
                       {"weight_bytes", weights}, {"kv_cache_bytes", kv}, {"fits", fits},
                       {"decode_tokens_per_s_bound", card.bandwidth / weights}});
        const bool claimed_card = k < c.at("cards").size();  // not a run's GPU
        if (method == quant && claimed_card && !fits &&
            std::find(named.begin(), named.end(), e.at("model").get<std::string>()) != named.end())
          misfits.push_back(e.at("model").get<std::string>() + " on " + card.name);
      }
    }
  }
  v.verdict = misfits.empty() ? kHolds : kFails;
  v.measured = std::to_string(named.size()) + " models, awq " + quant + " + KV at " + std::to_string(tokens) +
               " tokens: " + (misfits.empty() ? "all fit both cards" : "do not fit: ");
  for (auto& m : misfits) v.measured += m + " ";
  v.numbers = {{"context", c.at("context")}, {"batch", c.at("batch")}};
  v.evidence.push_back("model catalog (bench/model_shapes.json); the fit table below");
  return v;
}

json verdict_json(const json& claim, const Verdict& v) {
  json out = {{"id", claim.at("id")},
              {"kind", claim.at("kind")},
              {"metric", claim.at("metric")},
              {"source", claim.at("source")},
              {"verdict", v.verdict},
              {"measured", v.measured},
              {"numbers", v.numbers},
              {"tolerance", claim.at("tolerance")},
              {"evidence", v.evidence}};
  if (!v.caveat.empty()) out["caveat"] = v.caveat;
  if (v.verdict == kNotTested) out["reason"] = v.reason, out["would_test"] = v.would_test;
  return out;
}

std::string claim_id_at(const json& registry, const std::string& pointer) {
  const std::string prefix = "/claims/";
  if (pointer.rfind(prefix, 0) != 0 || !registry.contains("claims") || !registry["claims"].is_array()) return "";
  const size_t index = std::stoul(pointer.substr(prefix.size()));
  const json& claim = registry["claims"][index];
  if (claim.is_object() && claim.contains("id") && claim["id"].is_string()) return claim["id"];
  return "#" + std::to_string(index);
}

}  // namespace

const json& claims_schema() {
  static const json schema = json::parse(kClaimsSchemaText);
  return schema;
}

void validate_claims(const json& registry, const json& catalog, const std::string& where) {
  if (auto problem = find_schema_problem(claims_schema(), claims_schema(), registry)) {
    const std::string id = claim_id_at(registry, problem->pointer);
    fail(where, (id.empty() ? "" : "claim " + id + ": ") + (problem->pointer.empty() ? "(document root)" : problem->pointer) +
                    ": " + problem->what);
  }
  std::set<std::string> ids;
  for (const json& claim : registry.at("claims")) {
    const std::string id = claim.at("id");
    if (!ids.insert(id).second) fail(where, "claim " + id + ": id given twice");
    for (const json& model : claim.at("models")) {
      bool known = model == "*";
      for (const json& e : catalog) known = known || e.at("model") == model;
      if (!known) fail(where, "claim " + id + ": /models: unknown model " + model.dump() + " (not in the model catalog)");
    }
  }
}

json load_claims(const std::string& path, const json& catalog) {
  if (!file_exists(path)) fail(path, "no such file");
  const json registry = read_json_file(path);
  validate_claims(registry, catalog, path);
  return registry;
}

json evaluate_claims(const std::vector<json>& registries, const std::vector<ClaimsRun>& runs, const json& catalog) {
  json result = {{"schema", "quantbench.claims_result"}, {"schema_version", "1.0"}};
  result["runs"] = json::array();
  for (const auto& r : runs) result["runs"].push_back({{"path", r.path}, {"kind", r.run.at("kind")}, {"evidence", evidence(r)}});
  result["verdicts"] = json::array();
  result["fit"] = json::array();
  std::map<std::string, int> summary = {{kHolds, 0}, {kFails, 0}, {kNotTested, 0}};
  for (const json& registry : registries) {
    for (const json& claim : registry.at("claims")) {
      const std::string metric = claim.at("metric");
      Verdict v;
      if (metric == "weight_bytes") v = weight_bytes(claim, catalog);
      else if (metric == "memory_ratio") v = memory_ratio(claim, catalog);
      else if (metric == "awq_vs_rtn") v = awq_vs_rtn(claim, runs);
      else if (metric == "delta_ppl_pct" || metric == "top1_agreement") v = awq_quality(claim, runs, metric);
      else if (metric == "salient_channels") v = salient_channels(claim, runs);
      else if (metric == "throughput_ratio") v = throughput_ratio(claim, runs);
      else if (metric == "paper_ppl") v = paper_ppl(claim, runs, catalog);
      else if (metric == "hardware_fit") v = hardware_fit(claim, runs, catalog, result["fit"]);
      else v = method_vs_method(claim, runs);  // the schema admits no other metric
      ++summary[v.verdict];
      result["verdicts"].push_back(verdict_json(claim, v));
    }
  }
  result["summary"] = {{"holds", summary[kHolds]}, {"fails", summary[kFails]}, {"not_tested", summary[kNotTested]}};
  return result;
}

int claims_exit_code(const json& result) { return result.at("summary").at("fails").get<int>() > 0 ? 1 : 0; }

void check_claims_result(const json& doc, const std::string& where) {
  if (!doc.is_object() || doc.value("schema", json()) != "quantbench.claims_result")
    fail(where, "not a claims result (\"schema\": \"quantbench.claims_result\" expected; write one with quantbench claims --json)");
  const json version = doc.value("schema_version", json());
  if (!version.is_string() || version.get<std::string>().rfind("1.", 0) != 0)
    fail(where, "claims result schema_version is not 1.x");
  // The tables are what reads the rest: rendering them once here turns a missing or mistyped
  // field into an error naming this file, before any output is written.
  try {
    render_claims_markdown(doc);
  } catch (const json::exception& e) {
    fail(where, std::string("malformed claims result: ") + e.what());
  }
}

Table claims_table(const json& result, const std::string& id) {
  Table t{id, "Published claims, re-measured: verdict, numbers measured, the band that makes the claim hold, and the evidence",
          {"claim", "kind", "verdict", "measured", "tolerance", "evidence"}, {}};
  for (const json& v : result.at("verdicts")) {
    std::string verdict = v.at("verdict"), measured = v.at("measured"), evidence;
    if (v.contains("reason")) measured = v["reason"].get<std::string>() + " (would test: " + v["would_test"].get<std::string>() + ")";
    if (v.contains("caveat")) measured += " [" + v["caveat"].get<std::string>() + "]";
    for (const json& e : v.at("evidence")) add_line(evidence, e);
    t.rows.push_back({v.at("id"), v.at("kind"), verdict, measured, v.at("tolerance").at("band"), evidence.empty() ? "none" : evidence});
  }
  return t;
}

Table fit_table(const json& result, const std::string& id) {
  Table t{id, "Will it fit: weights as stored + FP16 KV cache (context x batch of the fit claim) against card memory; decode bound = bandwidth / stored weight bytes",
          {"model", "method", "card", "weights", "KV cache", "fits", "decode bound (tokens/s)"}, {}};
  for (const json& f : result.at("fit"))
    t.rows.push_back({f.at("model"), f.at("method"), f.at("card"), gb(f.at("weight_bytes")), gb(f.at("kv_cache_bytes")),
                      f.at("fits").get<bool>() ? "yes" : "no", format_fixed(f.at("decode_tokens_per_s_bound"), 1)});
  return t;
}

std::string render_claims_markdown(const json& result) {
  std::string md;
  for (const Table& t : {claims_table(result, "table-claims"), fit_table(result, "table-fit")}) {
    if (t.rows.empty()) continue;
    md += "**" + t.caption + "**\n\n" + markdown_table(t) + "\n";
  }
  const json& s = result.at("summary");
  md += "Claims: " + std::to_string(s.at("holds").get<int>()) + " hold, " + std::to_string(s.at("fails").get<int>()) +
        " fail, " + std::to_string(s.at("not_tested").get<int>()) + " not tested.\n";
  return md;
}

}  // namespace qb::reports
