#pragma once
// The benchmark sweep, declared by data: the model-shape catalog (bench/model_shapes.json), the
// cases it expands to, their names, shards and work (flops, bytes). No CUDA: shared by the bench
// binary and the report converter, and tested on the CPU.
#include <string>
#include <vector>

#include "model/model_catalog.h"

namespace qb::bench {

// Kernel families, named as run documents' "method" and benchmark names carry them.
inline constexpr const char* kKernelFp16 = "fp16-cublas";
inline constexpr const char* kKernelW4A16 = "w4a16";
inline constexpr const char* kKernels[] = {kKernelFp16, kKernelW4A16};

struct GemmShape {
  std::string layer;  // "qkv", "o", "gate_up", "down"
  int n = 0, k = 0;   // W [n, k]
};

// The GEMMs of one transformer layer, from the block's linears (model/block_linears.h): q/k/v
// fused (they share the input), o, gate/up fused, down.
std::vector<GemmShape> layer_gemms(const LlamaConfig& config);

// The sweep: the catalog's models (read by model/model_catalog.h) and the bench axes beside them.
struct Catalog {
  std::vector<int> m;  // rows of x swept for every shape
  int group_size = 0;  // W4A16 group size
  std::vector<CatalogModel> models;
};

// Parses and checks a catalog: its models (parse_catalog_models), every m >= 1, the group size
// dividing every GEMM's k. Errors name the file and field.
Catalog load_catalog(const std::string& path);
Catalog parse_catalog(const std::string& text, const std::string& where);

// One shape at one m; each case runs every kernel family, so the speedup over FP16 is always
// measured in the same shard.
struct BenchCase {
  std::string model, layer;
  int m = 0, n = 0, k = 0, group_size = 0;
};
// Models x layer_gemms x m, in catalog order: a case's index is stable for a given catalog.
std::vector<BenchCase> expand_cases(const Catalog& catalog);

// "I/N": shard I (0-based) of N. Throws on anything else or I >= N.
struct Shard {
  int index = 0, count = 1;
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};
Shard parse_shard(const std::string& text);
// Cases whose index % count == index: a deterministic, balanced slice for fleet runs.
std::vector<BenchCase> select_shard(const std::vector<BenchCase>& cases, const Shard& shard);

// Benchmark name "<model>/<layer>/m=<m>/<kernel family>" and back (Google Benchmark may append
// "/iterations:N/manual_time"; parse ignores what follows the fourth part).
std::string benchmark_name(const BenchCase& c, const std::string& kernel);
struct ParsedName {
  std::string model, layer, kernel;  // kernel: the family, kKernels
  int m = 0;
};
ParsedName parse_benchmark_name(const std::string& name);

// Work of one launch: flops = 2 m n k; bytes = weights as stored + activations (m k fp16) +
// outputs (m n fp16). W4A16 stores n k / 2 bytes of weights plus fp16 scales and packed zeros per
// group; FP16 stores n k * 2.
double case_flops(const BenchCase& c);
double case_bytes(const BenchCase& c, const std::string& kernel);
// group_size as reports carry it: the catalog's for w4a16, -1 (no groups) for fp16.
int case_group_size(const BenchCase& c, const std::string& kernel);

// Rates of one measured time against the device's measured peaks.
struct CaseRates {
  double tflops = 0, gbps = 0, pct_peak_bandwidth = 0, pct_peak_flops = 0;
};
CaseRates case_rates(double flops, double bytes, double seconds, double peak_bandwidth_gbps, double peak_fp16_tflops);

}  // namespace qb::bench
