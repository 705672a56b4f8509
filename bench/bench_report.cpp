#include "bench/bench_report.h"

#include <map>
#include <tuple>

#include "bench/bench_cases.h"
#include "common/error.h"
#include "common/run_document.h"

namespace qb::bench {
namespace {

using nlohmann::json;

const std::string& context_string(const json& context, const char* key, const std::string& where) {
  if (!context.contains(key) || !context[key].is_string())
    fail(where, std::string("context has no '") + key + "' (not written by quantbench_bench?)");
  return context[key].get_ref<const std::string&>();
}

int context_int(const json& context, const char* key, const std::string& where) {
  const std::string& text = context_string(context, key, where);
  try {
    return std::stoi(text);
  } catch (const std::exception&) {
    fail(where, std::string("context '") + key + "' = '" + text + "' is not an integer");
  }
}

double counter(const json& entry, const char* key, const std::string& where) {
  if (!entry.contains(key) || !entry[key].is_number())
    fail(where, std::string("benchmark has no counter '") + key + "'");
  return entry[key].get<double>();
}

}  // namespace

json bench_run_document(const json& gbench, const json& tool, const json& host, const std::string& created,
                        const std::string& where) {
  if (!gbench.is_object() || !gbench.contains("context") || !gbench.contains("benchmarks") ||
      !gbench["benchmarks"].is_array())
    fail(where, "not Google Benchmark JSON (no 'context' or 'benchmarks')");
  const json& context = gbench["context"];
  json device;
  try {
    device = json::parse(context_string(context, kContextDevice, where));
  } catch (const json::exception& e) {
    fail(where, std::string("context '") + kContextDevice + "' is not JSON: " + e.what());
  }
  const double peak_bw = device.value("peak_bandwidth_gbps", 0.0);
  const double peak_tflops = device.value("peak_fp16_tflops", 0.0);

  json cases = json::array();
  // (model, layer, m) -> index of the FP16 case, for the speedups.
  std::map<std::tuple<std::string, std::string, int>, size_t> fp16_case;
  std::map<std::tuple<std::string, std::string, int, std::string>, bool> seen;
  for (const json& entry : gbench["benchmarks"]) {
    const std::string name = entry.value("name", "");
    const std::string at = where + ": benchmark '" + name + "'";
    if (entry.value("run_type", "iteration") != "iteration") continue;  // aggregates of repetitions
    if (entry.value("error_occurred", false))
      fail(at, "failed: " + entry.value("error_message", std::string("no message")));
    const ParsedName parsed = parse_benchmark_name(name);
    if (!seen.emplace(std::make_tuple(parsed.model, parsed.layer, parsed.m, parsed.kernel), true).second)
      fail(at, "appears twice (run with --benchmark_repetitions=1)");
    const std::string kernel_name = entry.value("label", "");  // the family's kernel that ran, e.g. "w4a16-skinny"
    if (kernel_name.empty()) fail(at, "has no label (the kernel name)");

    const double flops = counter(entry, kCounterFlops, at), bytes = counter(entry, kCounterBytes, at);
    const double median = counter(entry, kCounterMedian, at);
    const CaseRates rates = case_rates(flops, bytes, median, peak_bw, peak_tflops);
    json c{{"model", parsed.model},
           {"layer", parsed.layer},
           {"m", parsed.m},
           {"n", static_cast<long long>(counter(entry, kCounterN, at))},
           {"k", static_cast<long long>(counter(entry, kCounterK, at))},
           {"group_size", static_cast<long long>(counter(entry, kCounterGroupSize, at))},
           {"method", parsed.kernel},  // documents call the kernel family "method"
           {"kernel", kernel_name},
           {"time_s",
            {{"median", median},
             {"min", counter(entry, kCounterMin, at)},
             {"max", counter(entry, kCounterMax, at)},
             {"p10", counter(entry, kCounterP10, at)},
             {"p90", counter(entry, kCounterP90, at)},
             {"samples", static_cast<long long>(counter(entry, kCounterSamples, at))}}},
           {"flops", flops},
           {"bytes", bytes},
           {"tflops", rates.tflops},
           {"gbps", rates.gbps},
           {"pct_peak_bandwidth", rates.pct_peak_bandwidth},
           {"pct_peak_flops", rates.pct_peak_flops},
           {"speedup_vs_fp16", nullptr}};
    if (parsed.kernel == kKernelFp16) fp16_case[{parsed.model, parsed.layer, parsed.m}] = cases.size();
    cases.push_back(std::move(c));
  }
  // Speedup = FP16 median / this median at the same model, layer and m (null for FP16 itself and
  // where the FP16 case was filtered out).
  for (json& c : cases) {
    if (c["method"] == kKernelFp16) continue;
    const auto it = fp16_case.find({c["model"].get<std::string>(), c["layer"].get<std::string>(), c["m"].get<int>()});
    if (it == fp16_case.end()) continue;
    const double mine = c["time_s"]["median"].get<double>();
    if (mine > 0) c["speedup_vs_fp16"] = cases[it->second]["time_s"]["median"].get<double>() / mine;
  }

  json bench{{"l2", context_string(context, kContextL2, where)},
             {"warmup", context_int(context, kContextWarmup, where)},
             {"samples", context_int(context, kContextSamples, where)},
             {"shard", context_string(context, kContextShard, where)},
             {"cases", std::move(cases)}};
  return json{{"schema", kRunSchemaName}, {"schema_version", kRunSchemaVersion},
              {"kind", "bench"},
              {"created", created},
              {"tool", tool},
              {"host", host},
              {"device", device},
              {"bench", std::move(bench)}};
}

}  // namespace qb::bench
