// quantbench bench: GEMM time of FP16 (cuBLAS) and W4A16 over the model-shape catalog, as a run
// document of kind "bench".
//
// Runs quantbench_bench (built beside this executable; bench/bench_main.cpp) with Google
// Benchmark's JSON output, converts it (bench/bench_report.h), validates it against the run schema
// and writes it atomically. Sample output line of the bench binary:
//   llama-2-7b/qkv/m=1/w4a16/iterations:50/manual_time   9.1 us ... GB/s=2.77T label=w4a16-skinny
#include <functional>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "common/error.h"

#ifdef QB_HAVE_CUDA
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "bench/bench_cases.h"
#include "bench/bench_report.h"
#include "common/files.h"
#include "common/host_info.h"
#include "common/interrupt.h"
#include "kernels/device_probe.h"
#include "reports/run_schema.h"

extern char** environ;
#endif

namespace qb::cli {
namespace {

struct BenchOptions {
  std::string out = "bench.json";
  std::string shard = "0/1";
  std::string filter;   // Google Benchmark regex over "<model>/<layer>/m=<m>/<method>"
  std::string catalog;  // "" = the catalog beside quantbench_bench
};

#ifdef QB_HAVE_CUDA

std::filesystem::path executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) fail("/proc/self/exe", "cannot locate the quantbench executable: " + ec.message());
  return exe.parent_path();
}

// Runs argv[0] with the given arguments, output going to ours; returns its exit status.
int run_process(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (spawn_error != 0) fail(args[0], std::string("cannot start: ") + std::strerror(spawn_error));
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) fail(args[0], "waitpid failed");
  if (WIFSIGNALED(status)) {
    throw_if_interrupted();  // Ctrl-C reached the child too: an interrupt, not a crash
    fail(args[0], "killed by signal " + std::to_string(WTERMSIG(status)));
  }
  return WEXITSTATUS(status);
}

int run_bench(const BenchOptions& o) {
  const bench::Shard shard = bench::parse_shard(o.shard);  // fail on a bad --shard before any GPU work
  const std::string no_device = kernels::cuda_unavailable_reason();
  if (!no_device.empty()) fail("bench", no_device);
  const std::filesystem::path bench_exe = executable_dir() / "quantbench_bench";
  if (!file_exists(bench_exe.string()))
    fail(bench_exe.string(), "not found (it is built beside quantbench: cmake --build <dir> --target quantbench_bench)");

  const std::string gbench_json =
      (std::filesystem::temp_directory_path() / ("quantbench-bench-" + std::to_string(getpid()) + ".json")).string();
  std::vector<std::string> args = {bench_exe.string(), "--shard=" + shard.text(),
                                   "--benchmark_out=" + gbench_json, "--benchmark_out_format=json"};
  if (!o.catalog.empty()) args.push_back("--catalog=" + o.catalog);
  if (!o.filter.empty()) args.push_back("--benchmark_filter=" + o.filter);
  const int status = run_process(args);
  if (status != 0) {
    std::filesystem::remove(gbench_json);
    fail(bench_exe.string(), "exited with status " + std::to_string(status) + " (its message is above)");
  }
  const nlohmann::json gbench = read_json_file(gbench_json);
  std::filesystem::remove(gbench_json);
  const nlohmann::json run = bench::bench_run_document(gbench, tool_info(), host_info(), utc_timestamp(), bench_exe.string());
  reports::validate_run(run, o.out);
  write_file_atomic(o.out, run.dump(2) + "\n");
  std::printf("quantbench: wrote %s (%zu cases, shard %s)\n", o.out.c_str(), run["bench"]["cases"].size(),
              shard.text().c_str());
  return 0;
}

#else

int run_bench(const BenchOptions&) {
  fail("bench", "this quantbench was built without CUDA support (reconfigure where nvcc is available, "
                "-DQUANTBENCH_CUDA=ON)");
}

#endif

std::function<int()> setup(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  app.add_option("--out", o->out, "run document to write (kind \"bench\")")->capture_default_str();
  app.add_option("--shard", o->shard, "run shard I of N (cases with index % N == I), e.g. 0/4")->capture_default_str();
  app.add_option("--filter", o->filter, "only benchmarks matching this regex over <model>/<layer>/m=<m>/<method>");
  app.add_option("--catalog", o->catalog, "model-shape catalog (default: model_shapes.json beside quantbench_bench)");
  return [o] { return run_bench(*o); };
}

CommandRegistration reg{"bench", "GEMM speed of FP16 (cuBLAS) and W4A16 kernels over the model-shape catalog (CUDA GPU)",
                        setup};

}  // namespace
}  // namespace qb::cli
