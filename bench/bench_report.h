#pragma once
// Google Benchmark JSON (quantbench_bench --benchmark_out=...) -> the quantbench run document of
// kind "bench" (reports/run.schema.json). No CUDA: the CPU-only build converts and tests it.
//
// The bench binary and this converter agree through the names below: the context keys it adds
// (strings, as Google Benchmark stores them) and the per-benchmark counters.
#include <nlohmann/json.hpp>
#include <string>

namespace qb::bench {

// Context keys.
inline constexpr const char* kContextDevice = "qb_device";    // JSON text of kernels::device_json
inline constexpr const char* kContextShard = "qb_shard";      // "I/N"
inline constexpr const char* kContextL2 = "qb_l2";            // "cold": L2 flushed before every sample
inline constexpr const char* kContextWarmup = "qb_warmup";    // untimed launches before the samples
inline constexpr const char* kContextSamples = "qb_samples";  // timed launches per benchmark

// Counters of every benchmark (plain numbers).
inline constexpr const char* kCounterN = "n";
inline constexpr const char* kCounterK = "k";
inline constexpr const char* kCounterGroupSize = "group_size";
inline constexpr const char* kCounterFlops = "flops";
inline constexpr const char* kCounterBytes = "bytes";
inline constexpr const char* kCounterSamples = "samples";
inline constexpr const char* kCounterMedian = "time_median_s";
inline constexpr const char* kCounterMin = "time_min_s";
inline constexpr const char* kCounterMax = "time_max_s";
inline constexpr const char* kCounterP10 = "time_p10_s";
inline constexpr const char* kCounterP90 = "time_p90_s";

// Converts one Google Benchmark JSON document. tool/host/created are the run's provenance
// (qb::tool_info(), qb::host_info(), qb::utc_timestamp()). Throws qb::Error (naming `where`) on a
// failed benchmark, a missing context key or counter, or a name not made by benchmark_name().
nlohmann::json bench_run_document(const nlohmann::json& gbench, const nlohmann::json& tool,
                                  const nlohmann::json& host, const std::string& created,
                                  const std::string& where = "benchmark output");

}  // namespace qb::bench
