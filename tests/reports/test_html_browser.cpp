// The HTML report in a real browser: Debian's chromium, headless, loads the file with the network
// cut off, and its DOM must hold every chart; the file must reference nothing outside itself.
// Also writes a full-page screenshot (reports/README.md uses one made this way).
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <regex>

#include "common/files.h"
#include "reports/history.h"
#include "reports/html_report.h"
#include "reports/merge.h"
#include "reports_fixtures.h"

using nlohmann::json;

namespace {

std::string chromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"})
    if (qb::file_exists(path)) return path;
  return "";
}

// Flags that keep chromium from reaching any network service on its own.
std::string chromium_command(const std::string& profile, const std::string& action, const std::string& html) {
  return "timeout 120 " + chromium() +
         " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
         " --disable-component-update --disable-sync --user-data-dir=" + profile + " " + action + " file://" + html;
}

std::string run_capture(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  REQUIRE(pipe);
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  CHECK(pclose(pipe) == 0);
  return out;
}

std::string fresh_dir(const std::string& name) {
  const std::string dir = std::string(QB_REPORTS_TEST_OUTPUT) + "/" + name;
  REQUIRE(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()) == 0);
  return dir;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = 0; (p = text.find(needle, p)) != std::string::npos; p += needle.size()) ++n;
  return n;
}

}  // namespace

std::string qb_test_skip_reason() {
  return chromium().empty() ? "chromium not installed (/usr/bin/chromium): cannot test the HTML report in a browser" : "";
}

TEST_CASE("the HTML report renders every chart in headless chromium and is self-contained") {
  const std::string dir = fresh_dir("html-browser");
  const std::string db = dir + "/history.db";
  // Eval + two GPUs, the H100 one as two shards, and a history of two eval runs.
  json h100_shard0 = qb::test::h100_fixture(), h100_shard1 = qb::test::h100_fixture();
  h100_shard0["bench"]["shard"] = "0/2", h100_shard1["bench"]["shard"] = "1/2";
  json& cases0 = h100_shard0["bench"]["cases"];
  json& cases1 = h100_shard1["bench"]["cases"];
  cases0.erase(cases0.begin() + cases0.size() / 2, cases0.end());
  cases1.erase(cases1.begin(), cases1.begin() + cases1.size() / 2);
  const std::vector<json> runs =
      qb::reports::merge_shards({qb::test::eval_fixture(), h100_shard0, h100_shard1, qb::test::h200_fixture()});
  REQUIRE(runs.size() == 3);
  for (const char* created : {"2026-11-19T01:00:00Z", "2026-11-20T01:00:00Z"})  // two nights
    for (json run : runs) {
      run["created"] = created;
      REQUIRE(qb::reports::append_history(db, run).added);
    }

  qb::reports::HtmlOptions options;
  options.relative_to = "NVIDIA H100 80GB HBM3";
  options.history_db = db;
  const std::string html = qb::reports::render_html(runs, options);
  const std::string path = dir + "/report.html";
  qb::write_file_atomic(path, html);

  // No external URL: the only http(s) string is the SVG namespace name (not fetched).
  const std::regex url("https?://[^\"' <>]*");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), url); it != std::sregex_iterator(); ++it)
    CHECK(it->str() == "http://www.w3.org/2000/svg");
  for (const char* reference : {"src=", "<link", "<script", "@import", "url("}) CHECK(html.find(reference) == std::string::npos);

  const std::string dom = run_capture(chromium_command(dir + "/profile-dom", "--dump-dom", path));
  REQUIRE(dom.find("</html>") != std::string::npos);
  const std::vector<std::string> charts = {
      "chart-quality-size-0", "chart-vram-0",     "chart-throughput-0", "chart-bandwidth-0", "chart-roofline-0",
      "chart-throughput-1",   "chart-bandwidth-1", "chart-roofline-1",  "chart-trend-0",     "chart-trend-1",
      "chart-trend-2",        "chart-gpus"};
  for (auto& id : charts) {
    INFO(id);
    CHECK(dom.find("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"" + id + "\"") != std::string::npos);
  }
  CHECK(count(dom, "<svg ") == charts.size());
  for (const char* table : {"table-quality-0", "table-vram-0", "table-bench-0", "table-bench-1", "table-gpus", "table-trend-0"})
    CHECK(dom.find(std::string("<table id=\"") + table + "\"") != std::string::npos);
  // Data made it into the charts: the five methods' points and the two roofline lines.
  CHECK(count(dom, "<circle") > 5 + 2 * 16);
  CHECK(dom.find("roofline: 3000 GB/s, 790 TFLOP/s") != std::string::npos);
  CHECK(dom.find("GPUs side by side (relative to NVIDIA H100 80GB HBM3)") != std::string::npos);
  CHECK(dom.find("shard 1/2") != std::string::npos);

  const std::string png = dir + "/report.png";
  run_capture(chromium_command(dir + "/profile-shot", "--screenshot=" + png + " --window-size=1280,2400", path));
  REQUIRE(qb::file_exists(png));
  const std::string bytes = qb::read_text_file(png);
  CHECK(bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  CHECK(bytes.size() > 50000);  // a page of charts, not a blank one
}
