#include "bench/bench_cases.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "model/block_linears.h"

namespace qb::bench {

using nlohmann::json;

std::vector<GemmShape> layer_gemms(const LlamaConfig& config) {
  const auto dims = linear_dims(config);  // {out_features, in_features}
  return {{"qkv", dims[kQ].first + dims[kK].first + dims[kV].first, dims[kQ].second},
          {"o", dims[kO].first, dims[kO].second},
          {"gate_up", dims[kGate].first + dims[kUp].first, dims[kGate].second},
          {"down", dims[kDown].first, dims[kDown].second}};
}

Catalog parse_catalog(const std::string& text, const std::string& where) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail(where, std::string("invalid JSON: ") + e.what());
  }
  Catalog catalog;
  catalog.models = parse_catalog_models(doc, where);
  if (!doc.contains("group_size") || !doc["group_size"].is_number_integer() || doc["group_size"].get<long long>() < 1)
    fail(where, "'group_size' must be a positive integer");
  catalog.group_size = doc["group_size"].get<int>();
  if (!doc.contains("m") || !doc["m"].is_array() || doc["m"].empty()) fail(where, "'m' must be a non-empty array");
  for (const json& m : doc["m"]) {
    if (!m.is_number_integer() || m.get<long long>() < 1) fail(where, "'m' holds " + m.dump() + ", not an integer >= 1");
    catalog.m.push_back(m.get<int>());
  }
  for (const CatalogModel& model : catalog.models)
    for (const GemmShape& g : layer_gemms(model.config))
      if (g.k % catalog.group_size != 0)
        fail(where + ": model '" + model.name + "'", "layer " + g.layer + ": k=" + std::to_string(g.k) +
                                                         " is not a multiple of group_size " +
                                                         std::to_string(catalog.group_size));
  return catalog;
}

Catalog load_catalog(const std::string& path) { return parse_catalog(read_text_file(path), path); }

std::vector<BenchCase> expand_cases(const Catalog& catalog) {
  std::vector<BenchCase> cases;
  for (const CatalogModel& model : catalog.models)
    for (const GemmShape& g : layer_gemms(model.config))
      for (int m : catalog.m) cases.push_back({model.name, g.layer, m, g.n, g.k, catalog.group_size});
  return cases;
}

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  Shard s;
  try {
    size_t used = 0;
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    s.index = std::stoi(text.substr(0, slash), &used);
    if (used != slash) throw std::invalid_argument("index");
    const std::string count = text.substr(slash + 1);
    s.count = std::stoi(count, &used);
    if (used != count.size()) throw std::invalid_argument("count");
  } catch (const std::exception&) {
    fail("shard", "'" + text + "' is not of the form I/N (e.g. 0/4)");
  }
  if (s.count < 1 || s.index < 0 || s.index >= s.count)
    fail("shard", "'" + text + "': need 0 <= I < N");
  return s;
}

std::vector<BenchCase> select_shard(const std::vector<BenchCase>& cases, const Shard& shard) {
  std::vector<BenchCase> mine;
  for (size_t i = 0; i < cases.size(); ++i)
    if (static_cast<int>(i % shard.count) == shard.index) mine.push_back(cases[i]);
  return mine;
}

std::string benchmark_name(const BenchCase& c, const std::string& kernel) {
  return c.model + "/" + c.layer + "/m=" + std::to_string(c.m) + "/" + kernel;
}

ParsedName parse_benchmark_name(const std::string& name) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() < 4) {
    const size_t slash = name.find('/', start);
    parts.push_back(name.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (parts.size() < 4 || parts[2].rfind("m=", 0) != 0)
    fail("benchmark '" + name + "'", "name is not <model>/<layer>/m=<m>/<kernel family>");
  ParsedName p{parts[0], parts[1], parts[3], 0};
  try {
    p.m = std::stoi(parts[2].substr(2));
  } catch (const std::exception&) {
    fail("benchmark '" + name + "'", "bad m");
  }
  return p;
}

double case_flops(const BenchCase& c) { return 2.0 * c.m * static_cast<double>(c.n) * c.k; }

double case_bytes(const BenchCase& c, const std::string& kernel) {
  const double n = c.n, k = c.k, m = c.m;
  const double io = 2.0 * m * k + 2.0 * m * n;  // fp16 x and y
  if (kernel == kKernelFp16) return 2.0 * n * k + io;
  if (kernel == kKernelW4A16) {
    const double groups = k / c.group_size;
    return n * k / 2.0 + groups * n * 2.0 /* fp16 scales */ + groups * n / 2.0 /* 4-bit zeros */ + io;
  }
  fail("case_bytes", "unknown kernel family '" + kernel + "'");
}

int case_group_size(const BenchCase& c, const std::string& kernel) {
  return kernel == kKernelW4A16 ? c.group_size : -1;
}

CaseRates case_rates(double flops, double bytes, double seconds, double peak_bandwidth_gbps,
                     double peak_fp16_tflops) {
  CaseRates r;
  if (seconds <= 0) return r;
  r.tflops = flops / seconds / 1e12;
  r.gbps = bytes / seconds / 1e9;
  r.pct_peak_bandwidth = peak_bandwidth_gbps > 0 ? 100.0 * r.gbps / peak_bandwidth_gbps : 0;
  r.pct_peak_flops = peak_fp16_tflops > 0 ? 100.0 * r.tflops / peak_fp16_tflops : 0;
  return r;
}

}  // namespace qb::bench
