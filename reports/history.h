#pragma once
// Run history in SQLite: every run appended to one database file (tables run, metric,
// bench_case; PRAGMA user_version = kHistorySchemaVersion), and the trends the HTML report
// draws from it. Appends are all-or-nothing, so an interrupted run (Ctrl-C, kill -9, a full
// disk) leaves the file as it was.
// Many writers at once (a Slurm array appending from many nodes) take turns: SQLite's rollback
// journal, not WAL, since WAL's shared-memory index only works with every writer on one host;
// each append is one BEGIN IMMEDIATE transaction, waiting for the lock and retried a bounded
// number of times while the database is busy. The filesystem must support POSIX advisory locks
// (NFSv4, or NFSv3 with lockd; Lustre mounted with -o flock); where it does not, keep the database
// on a local disk and append the run documents from one job at the end.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb::reports {

// 2: metric.series and bench_case.kernel_family (version 1 called both "method"; appends upgrade it).
inline constexpr int kHistorySchemaVersion = 2;

struct HistoryAppend {
  int64_t run_id = 0;
  bool added = false;  // false: this very document (same sha256) was already stored as run_id
};

// Validates `run` (validate_run), creates the database and its tables if needed, and inserts
// the run, its metrics and its bench cases in one BEGIN IMMEDIATE ... COMMIT transaction (rolled
// back on any error). A document already in the database is not added again, so re-rendering a
// report with --history does not double-count. Throws qb::Error naming the database.
HistoryAppend append_history(const std::string& db_path, const nlohmann::json& run);

// One line of a trend chart: a metric of one method (eval) or kernel family (bench) over the last
// runs of the same model, dataset, protocol and device.
struct TrendSeries {
  std::string name;  // the method's label (eval, "awq w4 g128") or the kernel family (bench, "w4a16")
  std::vector<int64_t> run_ids;
  std::vector<std::string> created, git_revisions;
  std::vector<double> values;
};

struct Trend {
  std::string title;   // which series: model + dataset + device, or device
  std::string metric;  // "ppl" (eval) or "geomean_tflops" (bench)
  std::vector<TrendSeries> series;
};

// The last `last_n` runs in the database of the same kind, device and (eval) model, dataset and
// protocol as `run`, oldest first, per method.
Trend history_trend(const std::string& db_path, const nlohmann::json& run, size_t last_n);

// Row counts of the run, metric and bench_case tables (tests and `report --history` summaries).
struct HistoryCounts {
  int64_t runs = 0, metrics = 0, cases = 0;
};
HistoryCounts history_counts(const std::string& db_path);

}  // namespace qb::reports
