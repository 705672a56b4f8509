// quantbench report RUN.json [RUN2.json ...] [--html FILE] [--markdown FILE] [--history DB] [--claims-result FILE]
//                  [--merged-out FILE]
// Loads run documents (validated; the shards of one eval run, and the bench shards of one device,
// merged), optionally appends them to the SQLite history, writes the merged run document, and
// renders the self-contained HTML report and/or the Markdown tables.
#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"
#include "common/files.h"
#include "eval/shard_merge.h"
#include "reports/claims.h"
#include "reports/history.h"
#include "reports/html_report.h"
#include "reports/merge.h"
#include "reports/run_schema.h"
#include "reports/tables.h"

namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  std::string html, markdown, claims_result, merged_out;
  qb::reports::HtmlOptions html_options;
};

int run_report(ReportArgs args) {
  if (!args.claims_result.empty()) {
    args.html_options.claims_result = qb::read_json_file(args.claims_result);
    qb::reports::check_claims_result(args.html_options.claims_result, args.claims_result);
  }
  std::vector<nlohmann::json> loaded;
  for (auto& path : args.runs) loaded.push_back(qb::reports::load_run(path));
  const std::vector<nlohmann::json> runs = qb::reports::merge_shards(qb::merge_eval_shards(loaded, args.runs));
  for (size_t i = 0; i < runs.size(); ++i)
    qb::reports::validate_run(runs[i], "run " + std::to_string(i + 1) + " after merging");
  if (!args.merged_out.empty()) {
    if (runs.size() != 1)
      qb::fail("--merged-out", "the runs merge into " + std::to_string(runs.size()) +
                                   " documents, not one; give the shards of one run");
    qb::write_file_atomic(args.merged_out, runs[0].dump(2) + "\n");
    std::fprintf(stderr, "wrote %s\n", args.merged_out.c_str());
  }
  if (const std::string& db = args.html_options.history_db; !db.empty()) {
    for (auto& run : runs) {
      const qb::reports::HistoryAppend append = qb::reports::append_history(db, run);
      std::fprintf(stderr, "history: %s run %lld %s %s\n", run["kind"].get<std::string>().c_str(),
                   static_cast<long long>(append.run_id), append.added ? "appended to" : "was already in", db.c_str());
    }
    const qb::reports::HistoryCounts counts = qb::reports::history_counts(db);
    std::fprintf(stderr, "history: %s holds %lld runs, %lld metrics, %lld bench cases\n", db.c_str(),
                 static_cast<long long>(counts.runs), static_cast<long long>(counts.metrics),
                 static_cast<long long>(counts.cases));
  }
  if (!args.html.empty()) {
    qb::write_file_atomic(args.html, qb::reports::render_html(runs, args.html_options));
    std::fprintf(stderr, "wrote %s\n", args.html.c_str());
  }
  std::string markdown = qb::reports::render_markdown(runs, args.html_options.relative_to);
  if (!args.claims_result.empty()) markdown += "\n" + qb::reports::render_claims_markdown(args.html_options.claims_result);
  if (!args.markdown.empty()) qb::write_file_atomic(args.markdown, markdown);
  else if (args.html.empty()) std::fputs(markdown.c_str(), stdout);
  return 0;
}

qb::cli::CommandRegistration reg{
    "report", "Render run documents (eval and bench JSON) as one self-contained HTML report and Markdown tables",
    [](CLI::App& app) -> std::function<int()> {
      auto args = std::make_shared<ReportArgs>();
      app.add_option("runs", args->runs,
                     "run documents (quantbench eval/bench JSON); the shards of one eval run (eval --shard) and the bench "
                     "shards of one device are merged")
          ->required()
          ->check(CLI::ExistingFile);
      app.add_option("--html", args->html, "write the HTML report here");
      app.add_option("--markdown", args->markdown, "write the Markdown tables here (default: stdout when no --html)");
      app.add_option("--relative-to", args->html_options.relative_to,
                     "GPU the side-by-side speedups are relative to: device name or index among the bench runs (default: first)");
      app.add_option("--history", args->html_options.history_db,
                     "SQLite history database: append these runs, and draw trends over the last runs");
      app.add_option("--history-last", args->html_options.history_last, "runs per trend chart")->check(CLI::PositiveNumber);
      app.add_option("--claims-result", args->claims_result,
                     "claims result (quantbench claims --json): add the verdict and will-it-fit tables")
          ->check(CLI::ExistingFile);
      app.add_option("--title", args->html_options.title, "HTML page title");
      app.add_option("--merged-out", args->merged_out,
                     "write the one run document the inputs merge into (e.g. the shards of one eval run) here");
      return [args] { return run_report(*args); };
    }};

}  // namespace
