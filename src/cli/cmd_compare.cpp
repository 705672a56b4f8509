// quantbench compare BASELINE.json CURRENT.json: nightly regression gate. Prints a Markdown table
// of every metric with its delta and verdict; exit 0 = no regression, 1 = a regression, 2 =
// unusable input (unreadable or truncated JSON, another schema version, different models,
// datasets, devices or kinds).
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "common/files.h"
#include "reports/compare.h"
#include "reports/run_schema.h"

namespace {

constexpr int kExitUnusable = 2;

struct CompareArgs {
  std::string baseline, current, markdown;
  std::string max_ppl_increase = "0.5%", max_slowdown = "5%";
};

int run_compare(const CompareArgs& args) {
  qb::reports::CompareResult result;
  try {
    const qb::reports::Thresholds thresholds{qb::reports::parse_percent(args.max_ppl_increase, "--max-ppl-increase"),
                                             qb::reports::parse_percent(args.max_slowdown, "--max-slowdown")};
    result = qb::reports::compare_runs(qb::reports::load_run(args.baseline), qb::reports::load_run(args.current), thresholds);
    if (!args.markdown.empty()) qb::write_file_atomic(args.markdown, result.markdown);
  } catch (const qb::Error& e) {
    std::fprintf(stderr, "quantbench: error: %s\n", e.what());
    return kExitUnusable;
  }
  std::fputs(result.markdown.c_str(), stdout);
  return result.exit_code;
}

qb::cli::CommandRegistration reg{
    "compare", "Compare two runs (baseline, current): Markdown verdicts; exit 1 on a regression, 2 on unusable input",
    [](CLI::App& app) -> std::function<int()> {
      auto args = std::make_shared<CompareArgs>();
      app.add_option("baseline", args->baseline, "baseline run document")->required();
      app.add_option("current", args->current, "current run document")->required();
      app.add_option("--max-ppl-increase", args->max_ppl_increase,
                     "largest allowed relative perplexity increase per method, in percent (\"0.5%\" or \"0.5\")")
          ->capture_default_str();
      app.add_option("--max-slowdown", args->max_slowdown,
                     "largest allowed median time increase of a bench case outside the noise, in percent")
          ->capture_default_str();
      app.add_option("--markdown", args->markdown, "also write the Markdown table to this file");
      return [args] { return run_compare(*args); };
    }};

}  // namespace
