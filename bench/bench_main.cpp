// quantbench_bench: GEMM time of FP16 (cuBLAS) and W4A16 (kernels/w4a16.h) over the model-shape
// catalog (bench/model_shapes.json), reported against the device's measured peaks.
//
//   quantbench_bench [--shard=I/N] [--catalog=FILE] [Google Benchmark flags, e.g.
//                    --benchmark_filter=REGEX --benchmark_out=out.json --benchmark_out_format=json]
//
// Every benchmark is a small function that declares its work (flops, bytes) and its launch;
// measure() alone owns timing: kWarmup untimed launches, then kSamples launches, each after an L2
// flush (cold), timed with CUDA events, reported through SetIterationTime (manual time) plus
// median/min/max/p10/p90 counters. The device probe goes into the JSON context; `quantbench bench`
// turns the JSON into a run document (bench/bench_report.h).
#include <benchmark/benchmark.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_cases.h"
#include "bench/bench_fill.h"
#include "bench/bench_report.h"
#include "common/error.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_resources.h"
#include "kernels/device_probe.h"
#include "kernels/gemm_fp16.h"
#include "kernels/w4a16.h"

namespace qb::bench {
namespace {

// Untimed launches first: module loading, cuBLAS heuristics and clock ramp-up stay out of the samples.
constexpr int kWarmup = 10;
// Timed launches per case: enough for stable p10/p90 (5 samples beyond each), and the whole sweep
// (~500 cases) stays within minutes.
constexpr int kSamples = 50;
// The L2 flush buffer is this many times the L2 size, so no line of the previous launch survives.
constexpr int kFlushL2Multiple = 2;

// What every benchmark shares: stream, events, flush buffer, cuBLAS handle, the probed device.
struct Harness {
  explicit Harness(kernels::DeviceProbe probe)
      : device(std::move(probe)), flush(static_cast<size_t>(kFlushL2Multiple) * std::max<int64_t>(device.l2_bytes, 1)) {}
  void flush_l2(int sample) {
    QB_CUDA_CHECK(cudaMemsetAsync(flush.as<void>(), sample & 0xff, flush.bytes(), stream));
  }

  kernels::DeviceProbe device;
  kernels::DeviceBuffer flush;
  kernels::CublasHandle cublas;
  kernels::CudaStream owned_stream;
  cudaStream_t stream = owned_stream.get();
  kernels::CudaEvent start, stop;
};

// A benchmark's declaration: the work of one launch and the launch itself (enqueued on the
// harness stream).
struct Work {
  double flops = 0, bytes = 0;
  std::string kernel_name;  // the kernel that runs, e.g. "w4a16-skinny" (the benchmark's label)
  std::function<void()> launch;
};

// Linear-interpolation percentile of sorted values (monotone in q, so min <= p10 <= median <= p90 <= max).
double percentile(const std::vector<double>& sorted, double q) {
  const double at = q * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(at);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
}

// The one timing loop.
void measure(benchmark::State& state, Harness& h, const Work& work) {
  for (int i = 0; i < kWarmup; ++i) {
    h.flush_l2(i);
    work.launch();
  }
  std::vector<double> seconds;
  for (auto _ : state) {
    h.flush_l2(static_cast<int>(seconds.size()));
    QB_CUDA_CHECK(cudaEventRecord(h.start.get(), h.stream));
    work.launch();
    QB_CUDA_CHECK(cudaEventRecord(h.stop.get(), h.stream));
    QB_CUDA_CHECK(cudaEventSynchronize(h.stop.get()));
    float ms = 0;
    QB_CUDA_CHECK(cudaEventElapsedTime(&ms, h.start.get(), h.stop.get()));
    state.SetIterationTime(ms * 1e-3);
    seconds.push_back(ms * 1e-3);
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = percentile(seconds, 0.5);
  const CaseRates rates =
      case_rates(work.flops, work.bytes, median, h.device.peak_bandwidth_gbps, h.device.peak_fp16_tflops);
  state.counters[kCounterFlops] = work.flops;
  state.counters[kCounterBytes] = work.bytes;
  state.counters[kCounterSamples] = static_cast<double>(seconds.size());
  state.counters[kCounterMedian] = median;
  state.counters[kCounterMin] = seconds.front();
  state.counters[kCounterMax] = seconds.back();
  state.counters[kCounterP10] = percentile(seconds, 0.1);
  state.counters[kCounterP90] = percentile(seconds, 0.9);
  // For the console; the run document recomputes them from the median with the same function.
  state.counters["TFLOP/s"] = rates.tflops;
  state.counters["GB/s"] = rates.gbps;
  state.counters["pct_peak_bw"] = rates.pct_peak_bandwidth;
  state.counters["pct_peak_flops"] = rates.pct_peak_flops;
  state.SetLabel(work.kernel_name);
}

// ---- The benchmarks: declare work, allocate, launch ----

void bench_fp16(benchmark::State& state, Harness& h, const BenchCase& c) {
  const size_t m = c.m, n = c.n, k = c.k;
  kernels::DeviceBuffer x(m * k * sizeof(__half)), w(n * k * sizeof(__half)), y(m * n * sizeof(__half));
  fill_random_halves(x.as<__half>(), m * k, -1.0f, 1.0f, 1, h.stream);
  fill_random_halves(w.as<__half>(), n * k, -0.05f, 0.05f, 2, h.stream);
  const Work work{case_flops(c), case_bytes(c, kKernelFp16), "cublas-gemm-fp16", [&] {
                    kernels::gemm_fp16(h.cublas.get(), x.as<__half>(), w.as<__half>(), y.as<__half>(), c.m, c.n, c.k,
                                       h.stream);
                  }};
  measure(state, h, work);
}

void bench_w4a16(benchmark::State& state, Harness& h, const BenchCase& c) {
  const size_t m = c.m, n = c.n, k = c.k, groups = c.k / c.group_size;
  kernels::DeviceBuffer x(m * k * sizeof(__half)), y(m * n * sizeof(__half)), scales(groups * n * sizeof(__half));
  kernels::DeviceBuffer qweight(k * n / 8 * sizeof(int32_t)), qzeros(groups * n / 8 * sizeof(int32_t));
  fill_random_halves(x.as<__half>(), m * k, -1.0f, 1.0f, 1, h.stream);
  fill_random_words(qweight.as<int32_t>(), k * n / 8, 3, h.stream);
  fill_random_words(qzeros.as<int32_t>(), groups * n / 8, 4, h.stream);
  fill_random_halves(scales.as<__half>(), groups * n, 0.002f, 0.02f, 5, h.stream);
  const kernels::AwqWeightView weight{qweight.as<int32_t>(), qzeros.as<int32_t>(), scales.as<__half>(), c.n, c.k, c.group_size};
  const kernels::W4A16Plan plan = kernels::plan_w4a16(c.m, c.n, c.k, c.group_size);
  kernels::DeviceBuffer workspace(plan.workspace_bytes);
  QB_CUDA_CHECK(cudaMemsetAsync(workspace.as<void>(), 0, workspace.bytes(), h.stream));  // once: see w4a16.h
  const Work work{case_flops(c), case_bytes(c, kKernelW4A16), kernels::kernel_name(plan.kernel), [&] {
                    kernels::w4a16_gemm(plan, x.as<__half>(), weight, y.as<__half>(), workspace.as<void>(),
                                        h.cublas.get(), h.stream);
                  }};
  measure(state, h, work);
}

void run_case(benchmark::State& state, Harness& h, const BenchCase& c, const std::string& kernel) {
  try {
    if (kernel == kKernelFp16)
      bench_fp16(state, h, c);
    else
      bench_w4a16(state, h, c);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());  // the converter refuses a run with a failed case
  }
}

// Next to the executable (where the build copies it), else the source tree's.
std::string default_catalog() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = exe.parent_path() / "model_shapes.json";
    if (std::filesystem::exists(beside, ec)) return beside.string();
  }
  return QB_SOURCE_CATALOG;
}

// Takes "--name=value" or "--name value" out of argv (Google Benchmark rejects flags it does not know).
bool take_option(int& argc, char** argv, const std::string& name, std::string& value) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    int used = 0;
    if (arg.rfind(name + "=", 0) == 0) {
      value = arg.substr(name.size() + 1), used = 1;
    } else if (arg == name) {
      if (i + 1 >= argc) fail(name, "needs a value");
      value = argv[i + 1], used = 2;
    }
    if (used > 0) {
      for (int j = i; j + used < argc; ++j) argv[j] = argv[j + used];
      argc -= used;
      return true;
    }
  }
  return false;
}

int run(int argc, char** argv) {
  std::string shard_text = "0/1", catalog_path = default_catalog();
  take_option(argc, argv, "--shard", shard_text);
  take_option(argc, argv, "--catalog", catalog_path);
  const Shard shard = parse_shard(shard_text);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  const std::string no_device = kernels::cuda_unavailable_reason();
  if (!no_device.empty()) {
    std::fprintf(stderr, "quantbench_bench: error: %s\n", no_device.c_str());
    return 1;
  }
  const Catalog catalog = load_catalog(catalog_path);
  std::fprintf(stderr, "quantbench_bench: probing device 0 (copy bandwidth, cuBLAS FP16 peak)...\n");
  Harness harness(kernels::probe_device(0));

  benchmark::AddCustomContext(kContextDevice, kernels::device_json(harness.device).dump());
  benchmark::AddCustomContext(kContextShard, shard.text());
  benchmark::AddCustomContext(kContextL2, "cold");
  benchmark::AddCustomContext(kContextWarmup, std::to_string(kWarmup));
  benchmark::AddCustomContext(kContextSamples, std::to_string(kSamples));
  benchmark::AddCustomContext("qb_catalog", catalog_path);

  for (const BenchCase& c : select_shard(expand_cases(catalog), shard))
    for (const char* family : kKernels) {
      const std::string kernel = family;
      benchmark::RegisterBenchmark(benchmark_name(c, kernel).c_str(),
                                   [&harness, c, kernel](benchmark::State& state) { run_case(state, harness, c, kernel); })
          ->UseManualTime()
          ->Iterations(kSamples)
          ->Unit(benchmark::kMicrosecond);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace
}  // namespace qb::bench

int main(int argc, char** argv) {
  try {
    return qb::bench::run(argc, argv);
  } catch (const qb::Error& e) {
    std::fprintf(stderr, "quantbench_bench: error: %s\n", e.what());
    return 1;
  }
}
