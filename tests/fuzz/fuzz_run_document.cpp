// Run documents as `quantbench report` and `compare` read them (reports/): each of the input's
// files is parsed and validated (parse_run); the valid ones are merged, rendered as Markdown and
// HTML, and the first two compared, as the commands do.
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "reports/compare.h"
#include "reports/html_report.h"
#include "reports/merge.h"
#include "reports/run_schema.h"
#include "reports/tables.h"

namespace qb::fuzz {

void fuzz_run_document(std::string_view input) {
  std::vector<nlohmann::json> runs;
  for (std::string_view file : split_files(input))
    refusal_or_success([&] { runs.push_back(reports::parse_run(std::string(file), "run.json")); });
  if (runs.empty()) return;
  for (const nlohmann::json& run : runs) refusal_or_success([&] { (void)reports::describe_run(run); });
  refusal_or_success([&] {
    const std::vector<nlohmann::json> merged = reports::merge_shards(runs);
    (void)reports::render_markdown(merged, "");
    (void)reports::render_html(merged, reports::HtmlOptions{});
  });
  refusal_or_success([&] { (void)reports::compare_runs(runs.front(), runs.back(), reports::Thresholds{}); });
}

}  // namespace qb::fuzz
