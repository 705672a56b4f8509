#include "reports/history.h"

#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "common/error.h"
#include "common/files.h"
#include "reports/run_schema.h"

namespace qb::reports {

using nlohmann::json;

namespace {

const char* const kCreateTables = R"sql(
CREATE TABLE run (
  id INTEGER PRIMARY KEY,
  created TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('eval', 'bench')),
  tool_version TEXT NOT NULL,
  git_revision TEXT NOT NULL,
  hostname TEXT NOT NULL,
  device TEXT NOT NULL,          -- GPU name, or 'cpu' for an eval run without one
  model TEXT,                    -- eval: model.path
  dataset_sha256 TEXT,           -- eval
  protocol TEXT,                 -- eval: "<name> ctx <ctx> stride <stride>"
  document TEXT NOT NULL,        -- the whole run document as validated
  document_sha256 TEXT NOT NULL UNIQUE  -- of `document`: the same run is stored once
);
CREATE INDEX run_series ON run (kind, device, model, dataset_sha256, protocol, id);
CREATE TABLE metric (
  run_id INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE,
  series TEXT NOT NULL,          -- the trend line: eval, the method's label ("awq w4 g128");
                                 -- bench, the kernel family ("w4a16")
  name TEXT NOT NULL,            -- ppl, ppl_stderr, delta_ppl_pct, kl_mean, ..., geomean_tflops
  value REAL,                    -- NULL where the document has null
  PRIMARY KEY (run_id, series, name)
);
CREATE TABLE bench_case (
  run_id INTEGER NOT NULL REFERENCES run (id) ON DELETE CASCADE,
  model TEXT NOT NULL, layer TEXT NOT NULL,
  m INTEGER NOT NULL, n INTEGER NOT NULL, k INTEGER NOT NULL, group_size INTEGER NOT NULL,
  kernel_family TEXT NOT NULL,   -- "fp16-cublas" | "w4a16" (the case's "method" in the document)
  kernel TEXT NOT NULL,          -- the kernel that ran, e.g. "w4a16-skinny"
  time_median REAL NOT NULL, time_p10 REAL NOT NULL, time_p90 REAL NOT NULL,
  tflops REAL NOT NULL, gbps REAL NOT NULL,
  UNIQUE (run_id, model, layer, m, n, k, group_size, kernel_family)
);
)sql";

// Appends from many processes at once (a Slurm array) take turns at the writer lock: SQLite's busy
// handler waits up to kBusyTimeoutMs for it, and a transaction that still finds the database busy
// (or hits a lock conflict the handler cannot wait out) starts over, kAttempts times at most, after
// a random pause that grows with each attempt.
constexpr int kBusyTimeoutMs = 10000;
constexpr int kAttempts = 5;

// The database was busy (SQLITE_BUSY, SQLITE_LOCKED): worth another attempt.
struct DatabaseBusy : Error {
  using Error::Error;
};

// Every SQLite failure is one line naming the database file.
[[noreturn]] void fail_sqlite(const std::string& path, sqlite3* db, const std::string& what) {
  const int code = sqlite3_errcode(db) & 0xff;
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED) throw DatabaseBusy(path + ": " + what);
  fail(path, what);
}

// Owns one connection; every failure throws naming the database file.
class Database {
 public:
  // Only an append may create the file. Readers open it read-write all the same (they only
  // SELECT), so that they can roll back the journal an append killed half-way left behind, which a
  // read-only connection refuses to read past (SQLITE_READONLY).
  Database(const std::string& path, bool writable) : path_(path) {
    const int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READWRITE;
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      const std::string what = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      fail(path, "cannot open the history database: " + what);
    }
    // Rollback journal (SQLite's default), not WAL: WAL's shared-memory index needs every writer
    // on one host, and a Slurm array appends from many nodes to a file on a network filesystem.
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    // A database file may come from someone else: its schema may not run SQL functions with side
    // effects (triggers, views), nor be corrupted on purpose through writable_schema and the like.
    sqlite3_db_config(db_, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(db_, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    exec("PRAGMA foreign_keys = ON");
  }
  ~Database() { sqlite3_close(db_); }
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      const std::string what = message ? message : sqlite3_errmsg(db_);
      sqlite3_free(message);
      fail_sqlite(path_, db_, what);
    }
  }
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Creates the tables in an empty database; upgrades version 1 (whose metric.method and
  // bench_case.method columns meant two things each) when writable; refuses other versions.
  void require_schema(bool create) {
    const int version = static_cast<int>(query_int("PRAGMA user_version"));
    if (version == kHistorySchemaVersion) return;
    if (version == 1) {
      if (!create)
        fail(path_, "history schema version 1 (an older quantbench); appending a run to it upgrades it to " +
                        std::to_string(kHistorySchemaVersion));
      exec("ALTER TABLE metric RENAME COLUMN method TO series; ALTER TABLE bench_case RENAME COLUMN method TO "
           "kernel_family; PRAGMA user_version = " + std::to_string(kHistorySchemaVersion) + ";");
      return;
    }
    if (version != 0)
      fail(path_, "history schema version " + std::to_string(version) + " is not supported (this quantbench uses " +
                      std::to_string(kHistorySchemaVersion) + ")");
    if (query_int("SELECT count(*) FROM sqlite_master") != 0)
      fail(path_, "not a quantbench history database (tables present but user_version is 0)");
    if (!create) fail(path_, "history database is empty");
    exec(std::string(kCreateTables) + "PRAGMA user_version = " + std::to_string(kHistorySchemaVersion) + ";");
  }

  int64_t query_int(const std::string& sql);

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(Database& db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK)
      fail_sqlite(db.path(), db.handle(), std::string(sqlite3_errmsg(db.handle())) + " in: " + sql);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds parameters 1..n from JSON scalars (null, number, string).
  Statement& bind(std::initializer_list<json> values) {
    sqlite3_reset(stmt_);
    int i = 1;
    for (const json& v : values) {
      int rc;
      if (v.is_null()) rc = sqlite3_bind_null(stmt_, i);
      else if (v.is_number_integer()) rc = sqlite3_bind_int64(stmt_, i, v.get<int64_t>());
      else if (v.is_number()) rc = sqlite3_bind_double(stmt_, i, v.get<double>());
      else rc = sqlite3_bind_text(stmt_, i, v.get_ref<const std::string&>().c_str(), -1, SQLITE_TRANSIENT);
      if (rc != SQLITE_OK) fail_sqlite(db_.path(), db_.handle(), sqlite3_errmsg(db_.handle()));
      ++i;
    }
    return *this;
  }
  // Steps once; true while a row is available.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail_sqlite(db_.path(), db_.handle(), sqlite3_errmsg(db_.handle()));
  }
  void run() {
    while (step()) {
    }
  }
  int64_t integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  bool is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string text(int column) const {
    const auto* s = sqlite3_column_text(stmt_, column);
    return s ? reinterpret_cast<const char*>(s) : "";
  }

 private:
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

int64_t Database::query_int(const std::string& sql) {
  Statement s(*this, sql);
  return s.step() ? s.integer(0) : 0;
}

std::string device_key(const json& run) { return run.at("device").is_null() ? "cpu" : run["device"].at("name").get<std::string>(); }

json protocol_key(const json& run) {
  if (run.at("kind") != "eval") return nullptr;
  const json& p = run.at("protocol");
  return p.at("name").get<std::string>() + " ctx " + p.at("ctx").dump() + " stride " + p.at("stride").dump();
}

json eval_only(const json& run, const char* object, const char* field) {
  return run.at("kind") == "eval" ? run.at(object).at(field) : json(nullptr);
}

// Geometric mean TFLOP/s of a bench run's cases per kernel family: one number per family for trends.
std::map<std::string, std::pair<double, int>> geomean_tflops(const json& run) {
  std::map<std::string, std::pair<double, int>> log_sum;  // kernel family -> (sum of ln tflops, cases)
  for (auto& c : run.at("bench").at("cases")) {
    auto& [sum, count] = log_sum[c.at("method").get<std::string>()];
    sum += std::log(std::max(c.at("tflops").get<double>(), 1e-12));
    ++count;
  }
  for (auto& [family, entry] : log_sum) entry.first = std::exp(entry.first / entry.second);
  return log_sum;
}

// `work` (which opens its own connection) again while the database stays busy; see kAttempts.
template <typename Work>
auto with_retries(const std::string& db_path, Work work) {
  std::minstd_rand random(static_cast<unsigned>(::getpid()));
  for (int attempt = 1;; ++attempt) {
    try {
      return work();
    } catch (const DatabaseBusy& e) {
      if (attempt == kAttempts)
        fail(db_path, "still locked after " + std::to_string(kAttempts) + " attempts of " +
                          std::to_string(kBusyTimeoutMs / 1000) + " s (" + e.what() +
                          "); does the filesystem support POSIX locks?");
      const int pause_ms = std::uniform_int_distribution<int>(50, 200)(random) << attempt;
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    }
  }
}

HistoryAppend append_once(const std::string& db_path, const json& run, const std::string& document,
                          const std::string& document_sha256) {
  Database db(db_path, true);
  db.exec("BEGIN IMMEDIATE");
  try {
    db.require_schema(true);
    Statement existing(db, "SELECT id FROM run WHERE document_sha256 = ?");
    if (existing.bind({document_sha256}).step()) {
      const int64_t id = existing.integer(0);
      db.exec("COMMIT");
      return {id, false};
    }
    Statement insert_run(db, "INSERT INTO run (created, kind, tool_version, git_revision, hostname, device, model, "
                             "dataset_sha256, protocol, document, document_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    insert_run.bind({run.at("created"), run.at("kind"), run.at("tool").at("version"), run["tool"].at("git_revision"),
                     run.at("host").at("hostname"), device_key(run), eval_only(run, "model", "path"),
                     eval_only(run, "dataset", "sha256"), protocol_key(run), document, document_sha256})
        .run();
    const int64_t run_id = sqlite3_last_insert_rowid(db.handle());
    Statement insert_metric(db, "INSERT INTO metric (run_id, series, name, value) VALUES (?, ?, ?, ?)");
    if (run.at("kind") == "eval") {
      for (auto& m : run.at("methods")) {
        const json& q = m.at("quality");
        for (const char* name : {"ppl", "ppl_stderr", "delta_ppl_pct", "kl_mean", "kl_p99", "top1_agreement"})
          insert_metric.bind({run_id, m.at("label"), name, q.at(name)}).run();
        insert_metric.bind({run_id, m.at("label"), "weight_bytes", m.at("size").at("weight_bytes")}).run();
        if (m.contains("speed")) insert_metric.bind({run_id, m.at("label"), "tokens_per_s", m["speed"].at("tokens_per_s")}).run();
      }
    } else {
      for (auto& [family, entry] : geomean_tflops(run)) {
        insert_metric.bind({run_id, family, "geomean_tflops", entry.first}).run();
        insert_metric.bind({run_id, family, "cases", entry.second}).run();
      }
      Statement insert_case(db, "INSERT INTO bench_case (run_id, model, layer, m, n, k, group_size, kernel_family, kernel, "
                                "time_median, time_p10, time_p90, tflops, gbps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      for (auto& c : run.at("bench").at("cases")) {
        const json& t = c.at("time_s");
        insert_case.bind({run_id, c.at("model"), c.at("layer"), c.at("m"), c.at("n"), c.at("k"), c.at("group_size"),
                          c.at("method"), c.at("kernel"), t.at("median"), t.at("p10"), t.at("p90"), c.at("tflops"),
                          c.at("gbps")})
            .run();
      }
    }
    db.exec("COMMIT");
    return {run_id, true};
  } catch (...) {
    // Nothing of this run stays: the file is as it was before the append.
    sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

Trend read_trend(const std::string& db_path, const json& run, size_t last_n) {
  Database db(db_path, false);
  db.require_schema(false);
  const bool eval = run.at("kind") == "eval";
  Trend trend;
  trend.metric = eval ? "ppl" : "geomean_tflops";
  trend.title = eval ? run["model"].at("path").get<std::string>() + " on " + run["dataset"].at("path").get<std::string>() +
                           " (" + protocol_key(run).get<std::string>() + "), " + device_key(run)
                     : device_key(run);
  // IS compares NULLs as equal, so bench runs (model NULL) match each other.
  Statement runs(db, "SELECT id, created, git_revision FROM run WHERE kind = ? AND device = ? AND model IS ? AND "
                     "dataset_sha256 IS ? AND protocol IS ? ORDER BY id DESC LIMIT ?");
  runs.bind({run["kind"], device_key(run), eval_only(run, "model", "path"), eval_only(run, "dataset", "sha256"),
             protocol_key(run), static_cast<int64_t>(last_n)});
  std::vector<std::tuple<int64_t, std::string, std::string>> selected;
  while (runs.step()) selected.emplace_back(runs.integer(0), runs.text(1), runs.text(2));
  std::reverse(selected.begin(), selected.end());
  Statement values(db, "SELECT series, value FROM metric WHERE run_id = ? AND name = ? ORDER BY rowid");
  std::map<std::string, size_t> index;  // series name -> its place in trend.series
  for (auto& [id, created, revision] : selected) {
    values.bind({id, trend.metric});
    while (values.step()) {
      if (values.is_null(1)) continue;
      const std::string name = values.text(0);
      if (!index.count(name)) {
        index[name] = trend.series.size();
        trend.series.push_back({name, {}, {}, {}, {}});
      }
      TrendSeries& s = trend.series[index[name]];
      s.run_ids.push_back(id);
      s.created.push_back(created);
      s.git_revisions.push_back(revision);
      s.values.push_back(values.real(1));
    }
  }
  return trend;
}

}  // namespace

HistoryAppend append_history(const std::string& db_path, const json& run) {
  validate_run(run, db_path + ": run to append");
  const std::string document = run.dump();  // object keys sorted: the same run dumps the same
  const std::string document_sha256 = sha256_hex(document.data(), document.size());
  return with_retries(db_path, [&] { return append_once(db_path, run, document, document_sha256); });
}

Trend history_trend(const std::string& db_path, const json& run, size_t last_n) {
  return with_retries(db_path, [&] { return read_trend(db_path, run, last_n); });
}

HistoryCounts history_counts(const std::string& db_path) {
  return with_retries(db_path, [&] {
    Database db(db_path, false);
    db.require_schema(false);
    return HistoryCounts{db.query_int("SELECT count(*) FROM run"), db.query_int("SELECT count(*) FROM metric"),
                         db.query_int("SELECT count(*) FROM bench_case")};
  });
}

}  // namespace qb::reports
