// bench/ without a GPU: the model-shape catalog (the real file and broken variants), case
// expansion and sharding, benchmark names, work accounting, and the Google Benchmark JSON -> run
// document converter on a hand-written fixture (tests/bench/gbench_fixture.json), validated
// against the run schema.
#include <catch2/catch.hpp>

#include <set>
#include <tuple>

#include "bench/bench_cases.h"
#include "bench/bench_report.h"
#include "common/files.h"
#include "reports/run_schema.h"

using namespace qb;
using nlohmann::json;

namespace {

const nlohmann::json kTool = {{"name", "quantbench"}, {"version", "0.1.0"}, {"git_revision", "abc123"}};
const nlohmann::json kHost = {{"cpu", "test cpu"}, {"threads", 2}, {"hostname", "ci"}};

json fixture() { return json::parse(read_text_file(QB_TEST_BENCH_DIR "/gbench_fixture.json")); }

}  // namespace

// {layer, n, k} of one model's GEMMs, to compare with Hugging Face's published shapes.
std::vector<std::tuple<std::string, int, int>> gemm_list(const bench::Catalog& catalog, size_t model) {
  std::vector<std::tuple<std::string, int, int>> out;
  for (const auto& g : bench::layer_gemms(catalog.models.at(model).config)) out.emplace_back(g.layer, g.n, g.k);
  return out;
}

TEST_CASE("the shipped model-shape catalog loads, in order, with the models' GEMM shapes") {
  const bench::Catalog catalog = bench::load_catalog(QB_BENCH_CATALOG);
  REQUIRE(catalog.models.size() == 12);
  CHECK(catalog.group_size == 128);
  CHECK(catalog.m == std::vector<int>{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096});
  std::vector<std::string> names;
  for (const auto& model : catalog.models) names.push_back(model.name);
  CHECK(names == std::vector<std::string>{"llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "mistral-7b",
                                          "llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "qwen2.5-14b", "qwen2.5-32b",
                                          "qwen2.5-72b", "mistral-7b-v0.3"});
  // The shapes the catalog listed explicitly before they were derived from the configs.
  using G = std::vector<std::tuple<std::string, int, int>>;
  CHECK(gemm_list(catalog, 0) == G{{"qkv", 12288, 4096}, {"o", 4096, 4096}, {"gate_up", 22016, 4096}, {"down", 4096, 11008}});
  CHECK(gemm_list(catalog, 1) == G{{"qkv", 15360, 5120}, {"o", 5120, 5120}, {"gate_up", 27648, 5120}, {"down", 5120, 13824}});
  CHECK(gemm_list(catalog, 2) == G{{"qkv", 10240, 8192}, {"o", 8192, 8192}, {"gate_up", 57344, 8192}, {"down", 8192, 28672}});
  CHECK(gemm_list(catalog, 3) == G{{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}});
  CHECK(gemm_list(catalog, 4) == G{{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096}, {"down", 4096, 14336}});
  CHECK(catalog.models[3].config.vocab_size == 128256);
  // Qwen2.5-7B: 28 query heads and 4 kv heads of 128, MLP 18944 (Qwen/Qwen2.5-7B config.json).
  CHECK(gemm_list(catalog, 7) == G{{"qkv", 4608, 3584}, {"o", 3584, 3584}, {"gate_up", 37888, 3584}, {"down", 3584, 18944}});
  CHECK(bench::expand_cases(catalog).size() == 12 * 4 * 13);
}

TEST_CASE("a broken catalog is refused, naming the field") {
  const std::string good = read_text_file(QB_BENCH_CATALOG);
  std::string no_heads = good;
  no_heads.replace(no_heads.find("\"num_attention_heads\": 32"), 25, "\"num_attention_headz\": 32");
  CHECK_THROWS_WITH(bench::parse_catalog(no_heads, "cat.json"),
                    Catch::Contains("cat.json: model 'llama-2-7b'") && Catch::Contains("num_attention_heads"));
  std::string odd_group = good;
  odd_group.replace(odd_group.find("\"group_size\": 128"), 17, "\"group_size\": 96");
  CHECK_THROWS_WITH(bench::parse_catalog(odd_group, "cat.json"), Catch::Contains("not a multiple of group_size 96"));
  CHECK_THROWS_WITH(bench::parse_catalog("{}", "cat.json"), Catch::Contains("not a model-shape catalog"));
}

TEST_CASE("shards partition the cases deterministically") {
  const auto cases = bench::expand_cases(bench::load_catalog(QB_BENCH_CATALOG));
  std::set<std::string> seen;
  size_t total = 0;
  for (int i = 0; i < 3; ++i) {
    const auto mine = bench::select_shard(cases, bench::parse_shard(std::to_string(i) + "/3"));
    total += mine.size();
    for (const auto& c : mine) CHECK(seen.insert(bench::benchmark_name(c, bench::kKernelW4A16)).second);
  }
  CHECK(total == cases.size());
  CHECK(bench::select_shard(cases, bench::parse_shard("1/3"))[0].m == cases[1].m);
  CHECK_THROWS_WITH(bench::parse_shard("3/3"), Catch::Contains("0 <= I < N"));
  CHECK_THROWS_WITH(bench::parse_shard("1-3"), Catch::Contains("form I/N"));
}

TEST_CASE("benchmark names round-trip, with Google Benchmark's suffixes") {
  const bench::BenchCase c{"llama-3-8b", "gate_up", 33, 28672, 4096, 128};
  const std::string name = bench::benchmark_name(c, bench::kKernelW4A16);
  CHECK(name == "llama-3-8b/gate_up/m=33/w4a16");
  const auto parsed = bench::parse_benchmark_name(name + "/iterations:50/manual_time");
  CHECK(parsed.model == "llama-3-8b");
  CHECK(parsed.layer == "gate_up");
  CHECK(parsed.m == 33);
  CHECK(parsed.kernel == "w4a16");
  CHECK_THROWS(bench::parse_benchmark_name("BM_something"));
}

TEST_CASE("work accounting: flops 2mnk, bytes = weights as stored + x + y") {
  const bench::BenchCase c{"llama-2-7b", "qkv", 1, 12288, 4096, 128};
  CHECK(bench::case_flops(c) == 2.0 * 12288 * 4096);
  CHECK(bench::case_bytes(c, bench::kKernelFp16) == 2.0 * 12288 * 4096 + 2 * 4096 + 2 * 12288);
  // 4-bit weights + fp16 scales and 4-bit zeros for 32 groups
  CHECK(bench::case_bytes(c, bench::kKernelW4A16) == 12288 * 4096 / 2.0 + 32 * 12288 * 2.5 + 2 * 4096 + 2 * 12288);
  CHECK(bench::case_group_size(c, bench::kKernelFp16) == -1);
  const auto r = bench::case_rates(2e12, 3e9, 1e-3, 3000, 700);
  CHECK(r.tflops == Approx(2000));
  CHECK(r.gbps == Approx(3000));
  CHECK(r.pct_peak_bandwidth == Approx(100));
  CHECK(r.pct_peak_flops == Approx(2000.0 / 7));
}

TEST_CASE("the converter turns Google Benchmark JSON into a valid bench run document") {
  const json run = bench::bench_run_document(fixture(), kTool, kHost, "2026-11-23T12:00:00Z");
  REQUIRE_NOTHROW(reports::validate_run(run, "converted fixture"));
  CHECK(run["kind"] == "bench");
  CHECK(run["device"]["name"] == "NVIDIA H100 80GB HBM3");
  CHECK(run["device"]["peak_bandwidth_gbps"] == 3000.0);
  CHECK(run["bench"]["shard"] == "1/4");
  CHECK(run["bench"]["l2"] == "cold");
  CHECK(run["bench"]["warmup"] == 10);
  CHECK(run["bench"]["samples"] == 50);
  const json& cases = run["bench"]["cases"];
  REQUIRE(cases.size() == 3);

  const json& fp16 = cases[0];
  CHECK(fp16["method"] == "fp16-cublas");
  CHECK(fp16["kernel"] == "cublas-gemm-fp16");
  CHECK(fp16["group_size"] == -1);
  CHECK(fp16["speedup_vs_fp16"].is_null());

  const json& w4 = cases[1];
  CHECK(w4["model"] == "llama-2-7b");
  CHECK(w4["layer"] == "qkv");
  CHECK(w4["m"] == 1);
  CHECK(w4["n"] == 12288);
  CHECK(w4["k"] == 4096);
  CHECK(w4["group_size"] == 128);
  CHECK(w4["kernel"] == "w4a16-skinny");
  CHECK(w4["time_s"]["median"] == 1.0e-05);
  CHECK(w4["time_s"]["p90"] == 1.1e-05);
  CHECK(w4["time_s"]["samples"] == 50);
  CHECK(w4["speedup_vs_fp16"].get<double>() == Approx(4.0));  // 40 us / 10 us
  CHECK(w4["gbps"].get<double>() == Approx(26181632 / 1e-5 / 1e9));
  CHECK(w4["pct_peak_bandwidth"].get<double>() == Approx(100.0 * 26181632 / 1e-5 / 1e9 / 3000));
  CHECK(w4["tflops"].get<double>() == Approx(100663296 / 1e-5 / 1e12));

  CHECK(cases[2]["speedup_vs_fp16"].is_null());  // its FP16 partner is not in this output
}

TEST_CASE("the converter refuses failed benchmarks and foreign JSON") {
  json failed = fixture();
  failed["benchmarks"][1]["error_occurred"] = true;
  failed["benchmarks"][1]["error_message"] = "cudaErrorIllegalAddress";
  CHECK_THROWS_WITH(bench::bench_run_document(failed, kTool, kHost, "2026-11-23T12:00:00Z"),
                    Catch::Contains("failed: cudaErrorIllegalAddress"));
  json no_device = fixture();
  no_device["context"].erase("qb_device");
  CHECK_THROWS_WITH(bench::bench_run_document(no_device, kTool, kHost, "2026-11-23T12:00:00Z"),
                    Catch::Contains("qb_device"));
  json no_counter = fixture();
  no_counter["benchmarks"][0].erase("time_median_s");
  CHECK_THROWS_WITH(bench::bench_run_document(no_counter, kTool, kHost, "2026-11-23T12:00:00Z"),
                    Catch::Contains("time_median_s"));
  CHECK_THROWS(bench::bench_run_document(json::array(), kTool, kHost, "2026-11-23T12:00:00Z"));
}
