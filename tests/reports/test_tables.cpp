// The tables the HTML and Markdown share: rows computed from the documents, and the GPUs side by
// side with speedups relative to a chosen device.
#include <catch2/catch.hpp>

#include <cstdio>

#include "common/error.h"
#include "reports/tables.h"
#include "reports_fixtures.h"

using nlohmann::json;
using namespace qb::reports;

namespace {
std::string speedup(double reference_median, double median) {
  return format_fixed(reference_median / median, 2) + "×";
}
}  // namespace

TEST_CASE("quality table: one row per method, numbers from the document") {
  const json run = qb::test::eval_fixture();
  const Table t = quality_table(run, "q");
  REQUIRE(t.rows.size() == run["methods"].size());
  CHECK(t.rows[2][0] == "awq w4 g128");
  CHECK(t.rows[2][2] == "5.6300 ± 0.0343");
  CHECK(t.rows[2][3] == "2.36 %");
  CHECK(t.rows[0][3] == "—");  // fp16 has no delta
  CHECK(t.rows[2][8] == "3889315840 (3.89 GB)");
}

TEST_CASE("vram catalog table pivots models against methods") {
  const Table t = vram_catalog_table(qb::test::eval_fixture(), "v");
  REQUIRE(t.rows.size() == 3);
  CHECK(t.columns == std::vector<std::string>{"model", "fp16", "rtn w4 g128", "awq w4 g128", "rtn w3 g128", "awq w3 g128"});
  CHECK(t.rows[0][0] == "llama-2-7b");
  CHECK(t.rows[0][1] == "13.48");
  json no_catalog = qb::test::eval_fixture();
  no_catalog["vram"] = nullptr;
  CHECK(vram_catalog_table(no_catalog, "v").rows.empty());
}

TEST_CASE("measured vram table from vram.per_method") {
  const Table t = vram_measured_table(qb::test::eval_fixture(), "m");
  REQUIRE(t.rows.size() == 1);
  CHECK(t.rows[0] == std::vector<std::string>{"fp16", "13.48 GB", "15.62 GB"});
}

TEST_CASE("GPUs side by side: same cases in columns per device, speedups relative to the chosen one") {
  const std::vector<json> runs{qb::test::h100_fixture(), qb::test::h200_fixture()};
  const size_t h200 = find_device(runs, "NVIDIA H200");
  CHECK(h200 == 1);
  CHECK(find_device(runs, "0") == 0);
  CHECK_THROWS_WITH(find_device(runs, "NVIDIA A100"),
                    "relative_to: 'NVIDIA A100' names no bench run given (devices: 0 = 'NVIDIA H100 80GB HBM3', 1 = 'NVIDIA H200')");
  const Table t = device_comparison_table(runs, h200, "g");
  REQUIRE(t.columns.size() == 6 + 3 * 2);
  CHECK(t.columns[6] == "NVIDIA H100 80GB HBM3 µs");
  REQUIRE(t.rows.size() == runs[0]["bench"]["cases"].size());
  for (size_t i = 0; i < t.rows.size(); ++i) {
    const double h100_median = runs[0]["bench"]["cases"][i]["time_s"]["median"];
    const double h200_median = runs[1]["bench"]["cases"][i]["time_s"]["median"];
    CHECK(t.rows[i][8] == speedup(h200_median, h100_median));
    CHECK(t.rows[i][11] == "1.00×");
  }
  // A case only one device ran shows a dash for the other.
  std::vector<json> partial = runs;
  partial[1]["bench"]["cases"].erase(0);
  const Table p = device_comparison_table(partial, 0, "g");
  CHECK(p.rows[0][9] == "—");
  CHECK(p.rows[0][11] == "—");
}

TEST_CASE("markdown: the same tables, one header row, one line per row") {
  const std::string md = render_markdown(qb::test::eval_fixture());
  CHECK(md.find("| method | quantization | ppl ± stderr |") != std::string::npos);
  CHECK(md.find("| awq w4 g128 | w4 g128, zero point, clip search, calib 128×512 | 5.6300 ± 0.0343 | 2.36 % |") != std::string::npos);
  CHECK(md.find("| llama-2-70b | 139.00 | 37.66 |") != std::string::npos);
  CHECK(md.find("| dataset sha256 | 173c87a53759e0201f33e0ccf978e510c2042d7f2cb78229d9a50d79b9e7dd08 |") != std::string::npos);
  const std::string bench = render_markdown(qb::test::h100_fixture());
  CHECK(bench.find("| llama-2-7b | qkv | 16 | 12288 | 4096 | w4a16 | awq_w4a16_gemm<128,128,32> | 15.11 | 14.93...15.29 |") !=
        std::string::npos);
  const std::string both = render_markdown({qb::test::h100_fixture(), qb::test::h200_fixture()}, "NVIDIA H200");
  CHECK(both.find("speedup = time on NVIDIA H200 / time on this GPU") != std::string::npos);
  CHECK(render_markdown({qb::test::h100_fixture()}, "").find("speedup = time on") == std::string::npos);
  const Table cells{"t", "c", {"a|b"}, {{"x|y"}}};
  CHECK(markdown_table(cells) == "| a\\|b |\n| --- |\n| x\\|y |\n");
}
