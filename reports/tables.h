#pragma once
// The report's tables, built once from run documents and rendered as HTML or Markdown: the
// README, the HTML report and compare show the same rows because they share these builders.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb::reports {

struct Table {
  std::string id;       // HTML id, e.g. "table-quality-0"
  std::string caption;  // one line saying what the rows are and where they come from
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // formatted cells, one per column
};

// Eval run: one row per method (ppl ± stderr, delta, KL, agreement, bytes as stored, saving).
Table quality_table(const nlohmann::json& eval_run, const std::string& id);
// A vram.catalog entry's column: its label ("awq w4 g128") when present, else its method.
std::string catalog_column(const nlohmann::json& entry);
// Eval run: projected weight bytes of the catalog models (rows) per method (columns), in GB;
// no rows when the run has no vram.catalog.
Table vram_catalog_table(const nlohmann::json& eval_run, const std::string& id);
// Eval run on a GPU: measured device memory per method (vram.per_method); no rows without it.
Table vram_measured_table(const nlohmann::json& eval_run, const std::string& id);
// Bench run: one row per case.
Table bench_table(const nlohmann::json& bench_run, const std::string& id);
// Several bench runs (devices): one row per case key, per device its time, TFLOP/s and speedup
// over the device at `relative_to` (index into bench_runs).
Table device_comparison_table(const std::vector<nlohmann::json>& bench_runs, size_t relative_to, const std::string& id);
// Provenance: tool, host, device, model, dataset, protocol or bench settings.
Table provenance_table(const nlohmann::json& run, const std::string& id);

// `spec` is a device name or a 0-based index into bench_runs; throws qb::Error naming the
// devices present when it matches none.
size_t find_device(const std::vector<nlohmann::json>& bench_runs, const std::string& spec);

std::string markdown_table(const Table& table);
// The Markdown report of one run: its tables, each under its caption (README and CI summaries).
std::string render_markdown(const nlohmann::json& run);
// Several runs: each run's tables, then the GPUs side by side when there are several bench runs
// (speedups relative to `relative_to`, a device name or index; "" = the first).
std::string render_markdown(const std::vector<nlohmann::json>& runs, const std::string& relative_to);

// Number formatting shared by the renderers.
std::string format_fixed(double value, int decimals);
// Decimal byte units (kB = 10^3 bytes, MB = 10^6, GB = 10^9), chosen so the largest of a set of
// sizes reads well: from a 260K-parameter test model to a 70B one.
struct ByteUnit {
  double bytes;      // bytes per unit
  std::string name;  // "GB"
};
ByteUnit byte_unit_for(double largest_bytes);
std::string format_bytes(double bytes);  // "13.48 GB", "198.42 kB"

}  // namespace qb::reports
