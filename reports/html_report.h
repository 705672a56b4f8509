#pragma once
// The self-contained HTML report: inline CSS and SVG, no script, no network. Everything on the
// page is rendered from run documents (and the history database when given).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb::reports {

struct HtmlOptions {
  std::string title = "quantbench report";
  // Reference GPU for the side-by-side speedups: a device name or an index among the bench runs;
  // "" = the first bench run.
  std::string relative_to;
  // SQLite history (append_history) to draw trends from; "" = no history section.
  std::string history_db;
  size_t history_last = 20;  // runs per trend
  // A claims result (reports/claims.h, quantbench claims --json); null = no claims section.
  nlohmann::json claims_result;
};

// `runs`: validated documents with shards already merged (merge_shards). Throws qb::Error when
// options name a device that is not there or the history database is unreadable.
std::string render_html(const std::vector<nlohmann::json>& runs, const HtmlOptions& options);

}  // namespace qb::reports
