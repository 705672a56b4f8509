// append_history: runs, metrics and cases land in SQLite in one transaction; a failing append
// leaves every table as it was; trends read back the last runs of a series.
#include <catch2/catch.hpp>

#include <sqlite3.h>

#include "common/error.h"
#include "common/files.h"
#include "reports/history.h"
#include "reports_fixtures.h"

using nlohmann::json;
using namespace qb::reports;

namespace {

int64_t user_version(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  const int64_t version = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return version;
}

}  // namespace

namespace qb::reports {
// Found by argument-dependent lookup from Catch's comparisons.
bool operator==(const HistoryCounts& a, const HistoryCounts& b) {
  return a.runs == b.runs && a.metrics == b.metrics && a.cases == b.cases;
}
std::ostream& operator<<(std::ostream& os, const HistoryCounts& c) {
  return os << "{runs " << c.runs << ", metrics " << c.metrics << ", cases " << c.cases << "}";
}
}  // namespace qb::reports

TEST_CASE("appends create the schema and store runs, metrics and cases") {
  const std::string db = qb::test::scratch_path("history-append.db");
  const json eval = qb::test::eval_fixture(), h100 = qb::test::h100_fixture();
  CHECK(append_history(db, eval).run_id == 1);
  CHECK(append_history(db, h100).run_id == 2);
  CHECK(user_version(db) == kHistorySchemaVersion);
  const HistoryCounts counts = history_counts(db);
  CHECK(counts.runs == 2);
  // eval: 6 quality metrics + weight_bytes + tokens_per_s per method; bench: 2 per method.
  CHECK(counts.metrics == static_cast<int64_t>(eval["methods"].size()) * 8 + 2 * 2);
  CHECK(counts.cases == static_cast<int64_t>(h100["bench"]["cases"].size()));
  // The same document again is not stored twice; a changed one is.
  const HistoryAppend again = append_history(db, h100);
  CHECK(again.run_id == 2);
  CHECK_FALSE(again.added);
  CHECK(history_counts(db) == counts);
  json rerun = h100;
  rerun["created"] = "2026-11-21T04:00:00Z";
  CHECK(append_history(db, rerun).added);
}

TEST_CASE("an append that fails halfway leaves the database as it was") {
  const std::string db = qb::test::scratch_path("history-interrupted.db");
  append_history(db, qb::test::eval_fixture());
  append_history(db, qb::test::h100_fixture());
  const HistoryCounts before = history_counts(db);
  // The run row, its metrics and the first cases insert fine; the repeated case then violates
  // bench_case's UNIQUE constraint, part-way through the transaction.
  json broken = qb::test::h200_fixture();
  broken["bench"]["cases"].push_back(broken["bench"]["cases"][5]);
  try {
    append_history(db, broken);
    FAIL("the append should have failed");
  } catch (const qb::Error& e) {
    CHECK(std::string(e.what()).rfind(db + ": UNIQUE constraint failed: bench_case.", 0) == 0);
  }
  CHECK(history_counts(db) == before);
  // The database is still usable: the same run without the duplicate appends.
  CHECK(append_history(db, qb::test::h200_fixture()).run_id == 3);
  CHECK(history_counts(db).cases == before.cases + static_cast<int64_t>(qb::test::h200_fixture()["bench"]["cases"].size()));
}

TEST_CASE("an invalid run is refused before the database is touched") {
  const std::string db = qb::test::scratch_path("history-invalid.db");
  json run = qb::test::eval_fixture();
  run["methods"][0]["quality"].erase("ppl");
  CHECK_THROWS_WITH(append_history(db, run), db + ": run to append: /methods/0/quality/ppl: missing (required)");
  CHECK_FALSE(qb::file_exists(db));
}

TEST_CASE("trends: the last runs of the same series, oldest first") {
  const std::string db = qb::test::scratch_path("history-trend.db");
  json eval = qb::test::eval_fixture();
  for (double ppl : {5.70, 5.65, 5.63}) {
    eval["methods"][2]["quality"]["ppl"] = ppl;
    REQUIRE(append_history(db, eval).added);
  }
  json other_dataset = eval;
  other_dataset["dataset"]["sha256"] = std::string(64, 'a');
  append_history(db, other_dataset);  // another series: not in the trend
  append_history(db, qb::test::h100_fixture());
  append_history(db, qb::test::h200_fixture());

  const Trend trend = history_trend(db, eval, 2);
  CHECK(trend.metric == "ppl");
  REQUIRE(trend.series.size() == eval["methods"].size());
  const TrendSeries& awq = trend.series[2];
  CHECK(awq.name == "awq w4 g128");
  CHECK(awq.run_ids == std::vector<int64_t>{2, 3});
  CHECK(awq.values == std::vector<double>{5.65, 5.63});

  const Trend bench = history_trend(db, qb::test::h100_fixture(), 20);
  CHECK(bench.metric == "geomean_tflops");
  REQUIRE(bench.series.size() == 2);  // fp16-cublas, w4a16
  CHECK(bench.series[0].run_ids == std::vector<int64_t>{5});
  CHECK(bench.series[0].values[0] > 0);
}

TEST_CASE("a database of another schema version or not a history is refused") {
  const std::string db = qb::test::scratch_path("history-version.db");
  append_history(db, qb::test::eval_fixture());
  sqlite3* handle = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &handle) == SQLITE_OK);
  REQUIRE(sqlite3_exec(handle, "PRAGMA user_version = 7", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(handle);
  CHECK_THROWS_WITH(append_history(db, qb::test::eval_fixture()),
                    db + ": history schema version 7 is not supported (this quantbench uses 2)");
  const std::string text = qb::test::scratch_path("history-not-a-db.db");
  qb::write_file_atomic(text, std::string(4096, 'x'));
  CHECK_THROWS_AS(append_history(text, qb::test::eval_fixture()), qb::Error);
  CHECK_THROWS_WITH(history_counts(qb::test::scratch_path("absent.db")), Catch::Contains("absent.db: cannot open"));
}

TEST_CASE("a version 1 database (metric.method, bench_case.method) is upgraded by an append, keeping its rows") {
  const std::string db = qb::test::scratch_path("history-v1.db");
  sqlite3* handle = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &handle) == SQLITE_OK);
  // Version 1's schema as quantbench 0.1 created it, with one eval run's ppl.
  const char* v1 = R"sql(
CREATE TABLE run (id INTEGER PRIMARY KEY, created TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('eval', 'bench')),
  tool_version TEXT NOT NULL, git_revision TEXT NOT NULL, hostname TEXT NOT NULL, device TEXT NOT NULL, model TEXT,
  dataset_sha256 TEXT, protocol TEXT, document TEXT NOT NULL, document_sha256 TEXT NOT NULL UNIQUE);
CREATE INDEX run_series ON run (kind, device, model, dataset_sha256, protocol, id);
CREATE TABLE metric (run_id INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE, method TEXT NOT NULL,
  name TEXT NOT NULL, value REAL, PRIMARY KEY (run_id, method, name));
CREATE TABLE bench_case (run_id INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE, model TEXT NOT NULL,
  layer TEXT NOT NULL, m INTEGER NOT NULL, n INTEGER NOT NULL, k INTEGER NOT NULL, group_size INTEGER NOT NULL,
  method TEXT NOT NULL, kernel TEXT NOT NULL, time_median REAL NOT NULL, time_p10 REAL NOT NULL,
  time_p90 REAL NOT NULL, tflops REAL NOT NULL, gbps REAL NOT NULL,
  UNIQUE (run_id, model, layer, m, n, k, group_size, method));
PRAGMA user_version = 1;
)sql";
  REQUIRE(sqlite3_exec(handle, v1, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(handle);
  CHECK_THROWS_WITH(history_counts(db), db + ": history schema version 1 (an older quantbench); appending a run to "
                                               "it upgrades it to 2");
  append_history(db, qb::test::eval_fixture());
  append_history(db, qb::test::h100_fixture());
  CHECK(user_version(db) == 2);
  const HistoryCounts counts = history_counts(db);
  CHECK(counts.runs == 2);
  CHECK(counts.cases == static_cast<int64_t>(qb::test::h100_fixture()["bench"]["cases"].size()));
  CHECK(history_trend(db, qb::test::eval_fixture(), 5).series.size() == qb::test::eval_fixture()["methods"].size());
}
