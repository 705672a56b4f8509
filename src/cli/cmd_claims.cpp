// quantbench claims [RUN.json ...] [--claims FILE] [--catalog FILE] [--json OUT] [--html OUT]:
// published claims re-measured from run documents and the model catalog. Prints the verdict and
// will-it-fit tables; exit 0 when every tested claim holds, 1 when one fails, 2 on unusable input
// (a run document, claims file or catalog that cannot be read or validated).
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "common/files.h"
#include "eval/claims_catalog.h"
#include "model/model_catalog.h"
#include "reports/claims.h"
#include "reports/html_report.h"
#include "reports/run_schema.h"

namespace {

constexpr int kExitUnusable = 2;

struct ClaimsArgs {
  std::vector<std::string> runs;
  std::vector<std::string> claims = {std::string(QB_SOURCE_DIR) + "/reports/claims/awq-public-claims.json"};
  std::string catalog = std::string(QB_SOURCE_DIR) + "/bench/model_shapes.json";
  std::string json, html;
};

int run_claims(const ClaimsArgs& args) {
  nlohmann::json result;
  try {
    const nlohmann::json catalog = qb::claims_catalog(qb::load_catalog_models(args.catalog));
    std::vector<nlohmann::json> registries;
    for (const auto& path : args.claims) registries.push_back(qb::reports::load_claims(path, catalog));
    std::vector<qb::reports::ClaimsRun> runs;
    for (const auto& path : args.runs) runs.push_back({path, qb::reports::load_run(path)});
    result = qb::reports::evaluate_claims(registries, runs, catalog);
    if (!args.json.empty()) qb::write_file_atomic(args.json, result.dump(2) + "\n");
    if (!args.html.empty()) {
      qb::reports::HtmlOptions options;
      options.title = "quantbench claims";
      options.claims_result = result;
      qb::write_file_atomic(args.html, qb::reports::render_html({}, options));
    }
  } catch (const qb::Error& e) {
    std::fprintf(stderr, "quantbench: error: %s\n", e.what());
    return kExitUnusable;
  }
  std::fputs(qb::reports::render_claims_markdown(result).c_str(), stdout);
  return qb::reports::claims_exit_code(result);
}

qb::cli::CommandRegistration reg{
    "claims", "Re-measure published claims (AWQ memory, quality, speed) from run documents: HOLDS, FAILS or NOT TESTED with evidence",
    [](CLI::App& app) -> std::function<int()> {
      auto args = std::make_shared<ClaimsArgs>();
      app.add_option("runs", args->runs, "run documents (quantbench eval/bench JSON) to measure the claims on");
      app.add_option("--claims", args->claims, "claims registry file(s) (reports/claims.schema.json)")->capture_default_str();
      app.add_option("--catalog", args->catalog, "model-shape catalog for the memory and fit claims")->capture_default_str();
      app.add_option("--json", args->json, "write the verdict document (quantbench.claims_result) here");
      app.add_option("--html", args->html, "write the verdicts as a self-contained HTML page here");
      return [args] { return run_claims(*args); };
    }};

}  // namespace
