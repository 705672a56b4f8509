// The faults of a nightly job, on the real quantbench binary run as a child process: kill -9 at
// any moment, a full disk (a file-size limit, ulimit -f), Ctrl-C and SIGTERM, and a Slurm array's
// processes appending to one history database at once. Each asserts the exact outcome: the old
// output intact or the whole new one, the exit code, the one-line message, no temporary left.
// Model: the embedded stories-d256-l2 (datasets/embedded); text: the head of its WikiText-2 test split.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "quant/awq_format.h"
#include "random_model.h"
#include "reports/run_schema.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kModel = std::string(QB_EMBEDDED) + "/models/stories-d256-l2";

// One quantbench child: arguments, where its output goes, and an optional RLIMIT_FSIZE.
struct Invocation {
  std::vector<std::string> args;
  std::string stderr_path = "/dev/null";
  long file_size_limit = -1;  // bytes; -1: none
};

// stderr_fd: where the child's stderr goes (a pipe), else inv.stderr_path.
pid_t spawn(const Invocation& inv, int stderr_fd = -1) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid > 0) return pid;
  if (inv.file_size_limit >= 0) {
    const rlimit limit{static_cast<rlim_t>(inv.file_size_limit), static_cast<rlim_t>(inv.file_size_limit)};
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  const int out = open("/dev/null", O_WRONLY);
  const int err = stderr_fd >= 0 ? stderr_fd : open(inv.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  setenv("OMP_NUM_THREADS", "2", 0);
  setenv("OMP_WAIT_POLICY", "passive", 0);
  std::vector<char*> argv{const_cast<char*>(QB_QUANTBENCH)};
  for (const std::string& a : inv.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(QB_QUANTBENCH, argv.data());
  _exit(127);
}

// The exit code as a shell reports it: 128 + signal for a killed process.
int wait_exit(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

struct Outcome {
  int code;
  std::vector<std::string> stderr_lines;
  double seconds;
};

// Runs `inv` to its end; its stderr through a pipe, which a file-size limit does not cut.
Outcome run(const Invocation& inv) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const auto start = Clock::now();
  const pid_t pid = spawn(inv, fds[1]);
  close(fds[1]);
  std::string err;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  const int code = wait_exit(pid);
  Outcome o{code, {}, std::chrono::duration<double>(Clock::now() - start).count()};
  std::istringstream lines(err);
  for (std::string line; std::getline(lines, line);) o.stderr_lines.push_back(line);
  return o;
}

// A run document that quantbench itself accepts (schema-valid JSON): a complete file.
bool is_complete_run(const std::string& path) {
  try {
    qb::reports::load_run(path);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// Names in `dir` other than `expected`: the temporaries a killed run left.
std::set<std::string> leftovers(const std::string& dir, const std::set<std::string>& expected) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (!expected.count(e.path().filename().string())) names.insert(e.path().filename().string());
  return names;
}

// "<name>.tmp.<host>.<pid>": the temporary write_file_atomic and AtomicDirectory use.
std::string temp_name(const std::string& name, pid_t pid) {
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  return name + ".tmp." + host + "." + std::to_string(pid);
}

// The first `bytes` of the WikiText-2 test split: tokenized in milliseconds.
std::string small_text(const std::string& dir, size_t bytes) {
  const std::string text = qb::read_text_file(std::string(QB_EMBEDDED) + "/text/wikitext-2-raw/wiki.test.raw");
  const std::string path = dir + "/text.raw";
  qb::write_file_atomic(path, text.substr(0, bytes));
  return path;
}

std::vector<std::string> eval_args(const std::string& text, const std::string& out) {
  return {"eval", "--model", kModel, "--dataset", text, "--methods", "fp16,rtn", "--ctx", "128", "--max-windows", "12",
          "--out", out};
}

// Read-write, as the next quantbench to open the database: it rolls back a killed append's journal.
struct SqliteDb {
  explicit SqliteDb(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  }
  ~SqliteDb() { sqlite3_close(db); }
  std::string text(const std::string& sql) const {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    const std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  }
  sqlite3* db = nullptr;
};

int64_t run_count(const std::string& db) { return std::stoll(SqliteDb(db).text("SELECT count(*) FROM run")); }
std::string integrity(const std::string& db) { return SqliteDb(db).text("PRAGMA integrity_check"); }

// The eval fixture made distinct (the database stores a document once) by its creation time.
std::string fixture_run(const std::string& dir, const std::string& tag, int second) {
  nlohmann::json run = qb::read_json_file(std::string(QB_REPORTS_FIXTURES) + "/eval-fixture.json");
  char created[32];
  std::snprintf(created, sizeof created, "2026-01-%02dT%02d:%02d:%02dZ", 1 + second / 86400 % 28, second / 3600 % 24,
                second / 60 % 60, second % 60);
  run["created"] = created;
  const std::string path = dir + "/" + tag + ".json";
  qb::write_file_atomic(path, run.dump(2) + "\n");
  return path;
}

// Kills a fresh child of `inv` with SIGKILL at `n` moments spread over [0, 1.2 * seconds] (a fixed
// seed jitters them) and calls check(names of the temporaries the killed runs may have left) after each.
// Whether `name` is the temporary of `output` of one of the `killed` runs.
bool is_killed_temp(const std::string& name, const std::string& output, const std::set<pid_t>& killed) {
  for (const pid_t pid : killed)
    if (name == temp_name(output, pid)) return true;
  return false;
}

template <typename Check>
void kill_at_random_points(const Invocation& inv, double seconds, int n, unsigned seed, Check check) {
  std::mt19937 random(seed);
  std::set<pid_t> killed;
  for (int i = 0; i < n; ++i) {
    const double at = 1.2 * seconds * (i + std::uniform_real_distribution<double>(0.0, 1.0)(random)) / n;
    const pid_t pid = spawn(inv);
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    kill(pid, SIGKILL);
    wait_exit(pid);
    killed.insert(pid);
    check(killed);
  }
}

}  // namespace

TEST_CASE("kill -9 during eval --out leaves the old run document or the whole new one") {
  const std::string dir = qb::test::temp_dir("faults-eval-kill");
  const std::string text = small_text(dir, 40000), out = dir + "/run.json";
  const Invocation inv{eval_args(text, out)};
  const Outcome first = run(inv);
  REQUIRE(first.code == 0);
  REQUIRE(is_complete_run(out));
  std::string previous = qb::read_text_file(out);
  int kept_old = 0, got_new = 0;
  kill_at_random_points(inv, first.seconds, 10, 1, [&](const std::set<pid_t>& killed) {
    const std::string now = qb::read_text_file(out);
    CHECK((now == previous || is_complete_run(out)));
    (now == previous ? kept_old : got_new) += 1;
    previous = now;
    // At most the killed runs' temporaries; the next write of run.json removes them.
    for (const std::string& name : leftovers(dir, {"run.json", "text.raw"}))
      CHECK(is_killed_temp(name, "run.json", killed));
  });
  std::printf("eval kill -9: %d kills kept the old document, %d found the new one whole (run %.2f s)\n", kept_old,
              got_new, first.seconds);
  REQUIRE(run(inv).code == 0);
  CHECK(leftovers(dir, {"run.json", "text.raw"}).empty());
  fs::remove_all(dir);
}

TEST_CASE("kill -9 during quantize --out leaves no checkpoint or a whole one") {
  const std::string dir = qb::test::temp_dir("faults-quantize-kill");
  const std::string out = dir + "/ckpt";
  const Invocation inv{{"quantize", "--model", kModel, "--method", "rtn", "--out", out}};
  const Outcome first = run(inv);
  REQUIRE(first.code == 0);
  REQUIRE(qb::is_awq_checkpoint(out));
  fs::remove_all(out);
  int absent = 0, whole = 0;
  kill_at_random_points(inv, first.seconds, 10, 2, [&](const std::set<pid_t>& killed) {
    if (fs::exists(out)) {
      // Whole: every file, each complete, and the checkpoint loads.
      CHECK(qb::is_awq_checkpoint(out));
      CHECK_NOTHROW(qb::load_awq_checkpoint(out));
      CHECK_NOTHROW(qb::read_json_file(out + "/quantize_report.json"));
      CHECK(fs::exists(out + "/tokenizer.model"));
      fs::remove_all(out);
      ++whole;
    } else {
      ++absent;
    }
    for (const std::string& name : leftovers(dir, {})) CHECK(is_killed_temp(name, "ckpt", killed));
  });
  std::printf("quantize kill -9: %d kills left no checkpoint, %d a whole one (run %.2f s)\n", absent, whole,
              first.seconds);
  // The next quantize of the same path removes the temporaries of killed runs.
  REQUIRE(run(inv).code == 0);
  CHECK(leftovers(dir, {"ckpt"}).empty());
  fs::remove_all(dir);
}

TEST_CASE("kill -9 during report --history keeps the database whole and the HTML old or new") {
  const std::string dir = qb::test::temp_dir("faults-report-kill");
  const std::string db = dir + "/history.db", html = dir + "/report.html";
  auto report = [&](int i) {
    return Invocation{{"report", fixture_run(dir, "run", i), "--history", db, "--html", html}};
  };
  const Outcome first = run(report(0));
  REQUIRE(first.code == 0);
  int64_t runs = run_count(db);
  REQUIRE(runs == 1);
  std::string previous_html = qb::read_text_file(html);
  std::mt19937 random(3);
  const int n = 20;
  int appended = 0;
  std::set<pid_t> killed;
  for (int i = 1; i <= n; ++i) {
    const Invocation inv = report(i);
    const double at = 1.2 * first.seconds * (i - 1 + std::uniform_real_distribution<double>(0.0, 1.0)(random)) / n;
    const pid_t pid = spawn(inv);
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    kill(pid, SIGKILL);
    wait_exit(pid);
    killed.insert(pid);
    CHECK(integrity(db) == "ok");
    const int64_t now = run_count(db);
    CHECK((now == runs || now == runs + 1));
    appended += static_cast<int>(now - runs);
    runs = now;
    const std::string html_now = qb::read_text_file(html);
    CHECK((html_now == previous_html || html_now.size() >= 15 && html_now.substr(html_now.size() - 15) == "</body></html>\n"));
    previous_html = html_now;
    for (const std::string& name : leftovers(dir, {"history.db", "report.html", "run.json"})) {
      // SQLite's rollback journal of an interrupted append (rolled back by the next opener) or
      // this run's temporary HTML.
      CHECK((name == "history.db-journal" || is_killed_temp(name, "report.html", killed)));
    }
  }
  std::printf("report --history kill -9: %d of %d killed runs had appended (run %.2f s)\n", appended, n, first.seconds);
  fs::remove_all(dir);
}

TEST_CASE("a file-size limit fails the write with one line naming the file; the old output stays") {
  const std::string dir = qb::test::temp_dir("faults-full-disk");
  SECTION("eval --out") {
    const std::string text = small_text(dir, 20000), out = dir + "/run.json";
    Invocation inv{eval_args(text, out)};
    REQUIRE(run(inv).code == 0);
    const std::string old = qb::read_text_file(out);
    inv.file_size_limit = 1000;  // the run document is several kB
    const Outcome o = run(inv);
    CHECK(o.code == 1);
    REQUIRE_FALSE(o.stderr_lines.empty());
    CHECK(o.stderr_lines.back() == "quantbench: error: " + out + ": write failed: File too large");
    CHECK(qb::read_text_file(out) == old);
    CHECK(leftovers(dir, {"run.json", "text.raw"}).empty());
  }
  SECTION("quantize --out") {
    const std::string out = dir + "/ckpt";
    Invocation inv{{"quantize", "--model", kModel, "--method", "rtn", "--out", out}};
    inv.file_size_limit = 100000;  // model.safetensors is about 1.3 MB
    const Outcome o = run(inv);
    CHECK(o.code == 1);
    // The memory plan line comes first; the error is the one last line.
    REQUIRE(o.stderr_lines.size() == 2);
    CHECK(o.stderr_lines[0].rfind("quantize: needs ~", 0) == 0);
    // The failing file inside the checkpoint's temporary directory, which is removed.
    CHECK_THAT(o.stderr_lines[1], Catch::Matches("quantbench: error: " + dir +
                                                 "/ckpt\\.tmp\\.[^/]+/model\\.safetensors: write failed: File too large"));
    CHECK_FALSE(fs::exists(out));
    CHECK(leftovers(dir, {}).empty());
  }
  SECTION("report --html") {
    const std::string html = dir + "/report.html", run_json = fixture_run(dir, "run", 0);
    Invocation inv{{"report", run_json, "--html", html}};
    REQUIRE(run(inv).code == 0);
    const std::string old = qb::read_text_file(html);
    inv.file_size_limit = 4096;
    const Outcome o = run(inv);
    CHECK(o.code == 1);
    REQUIRE(o.stderr_lines.size() == 1);
    CHECK(o.stderr_lines[0] == "quantbench: error: " + html + ": write failed: File too large");
    CHECK(qb::read_text_file(html) == old);
    CHECK(leftovers(dir, {"report.html", "run.json"}).empty());
  }
  SECTION("report --history") {
    const std::string db = dir + "/history.db";
    REQUIRE(run({{"report", fixture_run(dir, "run0", 0), "--history", db}}).code == 0);
    Invocation inv{{"report", fixture_run(dir, "run1", 1), "--history", db}};
    inv.file_size_limit = static_cast<long>(fs::file_size(db));  // the append must grow the file
    const Outcome o = run(inv);
    CHECK(o.code == 1);
    REQUIRE(o.stderr_lines.size() == 1);
    // SQLite's words for a failed write(2) other than ENOSPC (which it calls "database or disk is full").
    CHECK(o.stderr_lines[0] == "quantbench: error: " + db + ": disk I/O error");
    CHECK(integrity(db) == "ok");
    CHECK(run_count(db) == 1);
  }
  fs::remove_all(dir);
}

TEST_CASE("Ctrl-C and SIGTERM during a long eval stop within a second and write nothing") {
  const std::string dir = qb::test::temp_dir("faults-interrupt");
  const std::string text = small_text(dir, 40000), out = dir + "/run.json";
  const std::string old = "{\"previous\": \"run\"}\n";
  qb::write_file_atomic(out, old);
  // The time to the first window: the same eval with one window.
  Invocation probe{eval_args(text, dir + "/probe.json")};
  probe.args[probe.args.size() - 3] = "1";
  const Outcome startup = run(probe);
  REQUIRE(startup.code == 0);
  fs::remove(dir + "/probe.json");
  // Sliding windows with stride 4: thousands of windows, minutes of work.
  const Invocation inv{{"eval", "--model", kModel, "--dataset", text, "--methods", "fp16,rtn", "--protocol", "sliding",
                        "--ctx", "256", "--stride", "4", "--out", out}};
  for (const int signal : {SIGINT, SIGTERM}) {
    Invocation i = inv;
    i.stderr_path = dir + "/interrupted.err";
    const pid_t pid = spawn(i);
    std::this_thread::sleep_for(std::chrono::duration<double>(startup.seconds + 0.5));
    int status = 0;
    REQUIRE(waitpid(pid, &status, WNOHANG) == 0);  // still evaluating
    const auto sent = Clock::now();
    kill(pid, signal);
    const int code = wait_exit(pid);
    const double latency = std::chrono::duration<double>(Clock::now() - sent).count();
    std::printf("signal %d at %.2f s into the eval: exit %d after %.3f s\n", signal, startup.seconds + 0.5, code, latency);
    CHECK(code == 128 + signal);
    // One window of this model and context takes milliseconds; 1 s leaves room for a loaded machine.
    CHECK(latency < 1.0);
    std::ifstream err(i.stderr_path);
    std::string line, last;
    while (std::getline(err, line)) last = line;
    CHECK(last == "quantbench: interrupted");
    CHECK(qb::read_text_file(out) == old);
    CHECK(leftovers(dir, {"run.json", "text.raw", "interrupted.err"}).empty());
  }
  // A second Ctrl-C exits at once.
  const pid_t pid = spawn(inv);
  std::this_thread::sleep_for(std::chrono::duration<double>(startup.seconds + 0.5));
  kill(pid, SIGINT);
  kill(pid, SIGINT);
  CHECK(wait_exit(pid) == 130);
  CHECK(qb::read_text_file(out) == old);
  CHECK(leftovers(dir, {"run.json", "text.raw", "interrupted.err"}).empty());
  fs::remove_all(dir);
}

TEST_CASE("Ctrl-C while the dataset is tokenized (no loop polls there) still stops within a second") {
  const std::string dir = qb::test::temp_dir("faults-interrupt-startup");
  const std::string out = dir + "/run.json";
  // The whole WikiText-2 test split: one tokenizer call of over a second of CPU on this model.
  Invocation inv{{"eval", "--model", kModel, "--dataset",
                  std::string(QB_EMBEDDED) + "/text/wikitext-2-raw/wiki.test.raw", "--methods", "fp16",
                  "--max-windows", "1", "--out", out}};
  inv.stderr_path = dir + "/interrupted.err";
  const pid_t pid = spawn(inv);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto sent = Clock::now();
  kill(pid, SIGINT);
  const int code = wait_exit(pid);
  const double latency = std::chrono::duration<double>(Clock::now() - sent).count();
  std::printf("SIGINT 0.5 s after the start: exit %d after %.3f s\n", code, latency);
  CHECK(code == 130);
  // The hard exit follows 0.5 s after the signal: 0.5 s of margin for a loaded machine.
  CHECK(latency < 1.0);
  std::ifstream err(inv.stderr_path);
  std::string line, last;
  while (std::getline(err, line)) last = line;
  CHECK(last == "quantbench: interrupted");
  CHECK(leftovers(dir, {"interrupted.err"}).empty());
  fs::remove_all(dir);
}

TEST_CASE("8 processes appending to one history database at once lose no run") {
  const std::string dir = qb::test::temp_dir("faults-history-writers");
  const std::string db = dir + "/history.db";
  constexpr int kWriters = 8, kRunsEach = 5;
  std::vector<std::vector<std::string>> runs(kWriters);
  for (int w = 0; w < kWriters; ++w)
    for (int r = 0; r < kRunsEach; ++r)
      runs[w].push_back(fixture_run(dir, "w" + std::to_string(w) + "r" + std::to_string(r), w * kRunsEach + r));
  // Each writer (as a Slurm array task) appends its runs one quantbench process after another; the
  // database does not exist yet, so the writers also race to create the schema.
  std::vector<pid_t> writers;
  for (int w = 0; w < kWriters; ++w) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int failures = 0;
      for (const std::string& run_path : runs[w]) {
        Invocation inv{{"report", run_path, "--history", db}};
        inv.stderr_path = dir + "/w" + std::to_string(w) + ".err";
        failures += wait_exit(spawn(inv)) != 0;
      }
      _exit(failures);
    }
    writers.push_back(pid);
  }
  for (const pid_t pid : writers) CHECK(wait_exit(pid) == 0);
  CHECK(integrity(db) == "ok");
  CHECK(run_count(db) == kWriters * kRunsEach);
  const nlohmann::json fixture = qb::read_json_file(std::string(QB_REPORTS_FIXTURES) + "/eval-fixture.json");
  // eval: 6 quality metrics + weight_bytes (+ tokens_per_s where measured) per method.
  int64_t metrics_per_run = 0;
  for (const auto& m : fixture["methods"]) metrics_per_run += 7 + (m.contains("speed") ? 1 : 0);
  CHECK(std::stoll(SqliteDb(db).text("SELECT count(*) FROM metric")) == kWriters * kRunsEach * metrics_per_run);
  CHECK(std::stoll(SqliteDb(db).text("SELECT count(DISTINCT document_sha256) FROM run")) == kWriters * kRunsEach);
  fs::remove_all(dir);
}
