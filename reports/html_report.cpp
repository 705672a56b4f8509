#include "reports/html_report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/error.h"
#include "common/host_info.h"
#include "common/labels.h"
#include "reports/claims.h"
#include "reports/history.h"
#include "reports/run_schema.h"
#include "reports/svg_chart.h"
#include "reports/tables.h"

namespace qb::reports {

using nlohmann::json;

namespace {

const char* const kStyle = R"css(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; max-width: 1400px; color: #222; }
h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 36px; border-bottom: 1px solid #ccc; } h3 { font-size: 15px; }
svg.chart { width: 100%; max-width: 960px; height: auto; display: block; margin: 12px 0; }
.chart-title { font-size: 15px; font-weight: 600; } .tick, .legend, .point-label { font-size: 11px; }
.axis-title { font-size: 12px; } .grid { stroke: #e5e5e5; } .plot-frame { fill: none; stroke: #999; } .axis { stroke: #999; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 3px 5px; text-align: right; white-space: nowrap; } th { background: #f3f3f3; }
.table-wrap { overflow-x: auto; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: 4px; }
table[id^="table-provenance"] td { text-align: left; white-space: normal; }
nav li { margin: 2px 0; } .note { color: #555; }
)css";

std::string html_table(const Table& t) {
  std::string s = "<div class=\"table-wrap\"><table id=\"" + escape_html(t.id) + "\"><caption>" + escape_html(t.caption) + "</caption><thead><tr>";
  for (auto& c : t.columns) s += "<th>" + escape_html(c) + "</th>";
  s += "</tr></thead><tbody>";
  for (auto& row : t.rows) {
    s += "<tr>";
    for (auto& c : row) s += "<td>" + escape_html(c) + "</td>";
    s += "</tr>";
  }
  return s + "</tbody></table></div>";
}

std::string quantization_label(const json& m) {
  const json& q = m.at("quantization");
  if (q.is_null()) return "fp16";
  return quant_setting_label(q.at("bits").get<int>(), q.at("group_size").get<int>());
}

// Perplexity against bytes as stored: one line per method family over its bit widths.
XYChart quality_size_chart(const json& run, const std::string& id) {
  double largest = 0;
  for (auto& m : run.at("methods")) largest = std::max(largest, m.at("size").at("weight_bytes").get<double>());
  const ByteUnit unit = byte_unit_for(largest);
  XYChart chart{id, "Perplexity against weight bytes as stored: " + run.at("model").at("path").get<std::string>(),
                {"weight bytes as stored (" + unit.name + ")", Scale::linear, true},
                {"perplexity (lower is better)", Scale::linear, false}, {}};
  std::map<std::string, std::vector<const json*>> families;  // method -> its entries
  std::vector<std::string> order;
  for (auto& m : run.at("methods")) {
    const std::string family = m.at("method");
    if (!families.count(family)) order.push_back(family);
    families[family].push_back(&m);
  }
  for (auto& family : order) {
    auto& entries = families[family];
    std::sort(entries.begin(), entries.end(), [](const json* a, const json* b) {
      return a->at("size").at("weight_bytes").get<double>() < b->at("size").at("weight_bytes").get<double>();
    });
    Series s{family, SeriesStyle::line_markers, {}, {}, {}};
    for (const json* m : entries) {
      const json& q = m->at("quality");
      s.x.push_back(m->at("size").at("weight_bytes").get<double>() / unit.bytes);
      s.y.push_back(q.at("ppl"));
      s.labels.push_back(quantization_label(*m) + (q.at("delta_ppl_pct").is_number()
                                                       ? " (" + format_fixed(q["delta_ppl_pct"], 1) + " %)"
                                                       : ""));
    }
    chart.series.push_back(s);
  }
  return chart;
}

BarChart vram_chart(const json& run, const std::string& id) {
  double largest = 0;
  for (auto& e : run["vram"]["catalog"]) largest = std::max(largest, e.at("weight_bytes").get<double>());
  const ByteUnit unit = byte_unit_for(largest);
  BarChart chart{id, "Projected weight memory of the catalog models", "weights (" + unit.name + ")", {}, {}, {}};
  for (auto& e : run["vram"]["catalog"]) {
    const std::string model = e.at("model"), method = catalog_column(e);
    auto g = std::find(chart.group_names.begin(), chart.group_names.end(), model);
    if (g == chart.group_names.end()) {
      chart.group_names.push_back(model);
      chart.values.emplace_back();
      g = chart.group_names.end() - 1;
    }
    auto b = std::find(chart.bar_names.begin(), chart.bar_names.end(), method);
    if (b == chart.bar_names.end()) {
      chart.bar_names.push_back(method);
      b = chart.bar_names.end() - 1;
    }
    auto& row = chart.values[g - chart.group_names.begin()];
    const size_t bar = b - chart.bar_names.begin();
    if (row.size() <= bar) row.resize(bar + 1, NAN);
    row[bar] = e.at("weight_bytes").get<double>() / unit.bytes;
  }
  return chart;
}

// One series per method and GEMM shape: (x, y) taken from each case by the two accessors.
template <typename X, typename Y>
std::vector<Series> case_series(const json& run, X x_of, Y y_of) {
  std::vector<Series> out;
  std::map<std::string, size_t> index;
  for (auto& c : run.at("bench").at("cases")) {
    const std::string name = c.at("method").get<std::string>() + " " + c.at("layer").get<std::string>() + " " +
                             c.at("n").dump() + "×" + c.at("k").dump();
    if (!index.count(name)) {
      index[name] = out.size();
      out.push_back({name, SeriesStyle::line_markers, {}, {}, {}});
    }
    out[index[name]].x.push_back(x_of(c));
    out[index[name]].y.push_back(y_of(c));
  }
  return out;
}

std::pair<double, double> m_range(const json& run) {
  double lo = INFINITY, hi = 0;
  for (auto& c : run.at("bench").at("cases")) lo = std::min(lo, c.at("m").get<double>()), hi = std::max(hi, c.at("m").get<double>());
  return {lo, hi};
}

std::vector<XYChart> bench_charts(const json& run, size_t index) {
  const json& d = run.at("device");
  const std::string device = d.at("name");
  const double peak_tflops = d.at("peak_fp16_tflops"), peak_gbps = d.at("peak_bandwidth_gbps");
  const auto [m_lo, m_hi] = m_range(run);
  auto m_of = [](const json& c) { return c.at("m").get<double>(); };
  const std::string suffix = std::to_string(index);

  XYChart throughput{"chart-throughput-" + suffix, "Throughput against M on " + device,
                     {"M (tokens per GEMM)", Scale::log2, false}, {"TFLOP/s", Scale::log10, false},
                     case_series(run, m_of, [](const json& c) { return c.at("tflops").get<double>(); })};
  throughput.series.push_back({"measured peak FP16 " + format_fixed(peak_tflops, 0) + " TFLOP/s", SeriesStyle::reference_line,
                               {m_lo, m_hi}, {peak_tflops, peak_tflops}, {}});

  XYChart bandwidth{"chart-bandwidth-" + suffix, "Memory bandwidth against M on " + device,
                    {"M (tokens per GEMM)", Scale::log2, false}, {"GB/s (bytes moved / median time)", Scale::linear, true},
                    case_series(run, m_of, [](const json& c) { return c.at("gbps").get<double>(); })};
  bandwidth.series.push_back({"measured peak " + format_fixed(peak_gbps, 0) + " GB/s", SeriesStyle::reference_line,
                              {m_lo, m_hi}, {peak_gbps, peak_gbps}, {}});

  // Roofline: attainable TFLOP/s = min(peak FLOP/s, intensity × peak bandwidth), both measured.
  auto intensity = [](const json& c) { return c.at("flops").get<double>() / std::max(c.at("bytes").get<double>(), 1.0); };
  XYChart roofline{"chart-roofline-" + suffix, "Measured roofline on " + device,
                   {"arithmetic intensity (FLOP per byte moved)", Scale::log10, false}, {"TFLOP/s", Scale::log10, false},
                   case_series(run, intensity, [](const json& c) { return c.at("tflops").get<double>(); })};
  for (auto& s : roofline.series) s.style = SeriesStyle::markers;
  double ai_lo = INFINITY, ai_hi = 0;
  for (auto& c : run["bench"]["cases"]) ai_lo = std::min(ai_lo, intensity(c)), ai_hi = std::max(ai_hi, intensity(c));
  const double ridge = peak_tflops * 1e3 / std::max(peak_gbps, 1e-9);  // FLOP/byte where the two limits meet
  ai_lo = std::min(ai_lo, ridge) / 2, ai_hi = std::max(ai_hi, ridge) * 2;
  roofline.series.push_back({"roofline: " + format_fixed(peak_gbps, 0) + " GB/s, " + format_fixed(peak_tflops, 0) + " TFLOP/s",
                             SeriesStyle::reference_line,
                             {ai_lo, ridge, ai_hi},
                             {ai_lo * peak_gbps / 1e3, peak_tflops, peak_tflops},
                             {}});
  return {throughput, bandwidth, roofline};
}

// Speedup of each other GPU over the reference against M, one line per device, method and shape.
XYChart device_speedup_chart(const std::vector<json>& bench_runs, size_t reference) {
  const json& ref = bench_runs[reference];
  const std::string ref_name = ref.at("device").at("name");
  std::map<std::string, double> ref_median;  // case key -> median time on the reference GPU
  auto key = [](const json& c) {
    return c.at("model").get<std::string>() + " " + c.at("layer").get<std::string>() + " " + c.at("n").dump() + "×" +
           c.at("k").dump() + " g" + c.at("group_size").dump() + " " + c.at("method").get<std::string>() + " m" + c.at("m").dump();
  };
  for (auto& c : ref.at("bench").at("cases")) ref_median[key(c)] = c.at("time_s").at("median");
  XYChart chart{"chart-gpus", "Speedup over " + ref_name + " against M (time on " + ref_name + " / time on the GPU)",
                {"M (tokens per GEMM)", Scale::log2, false}, {"speedup (×)", Scale::linear, true}, {}};
  for (size_t d = 0; d < bench_runs.size(); ++d) {
    if (d == reference) continue;
    const std::string device = bench_runs[d].at("device").at("name");
    auto m_of = [](const json& c) { return c.at("m").get<double>(); };
    // A case the reference GPU did not run has no speedup (NaN: not drawn).
    auto speedup_of = [&](const json& c) {
      auto it = ref_median.find(key(c));
      return it == ref_median.end() ? NAN : it->second / c.at("time_s").at("median").get<double>();
    };
    for (auto& s : case_series(bench_runs[d], m_of, speedup_of)) {
      s.name = device + ": " + s.name;
      chart.series.push_back(s);
    }
  }
  return chart;
}

std::string history_section(const std::vector<json>& runs, const HtmlOptions& options) {
  std::string s = "<section id=\"history\"><h2>History</h2><p class=\"note\">From " + escape_html(options.history_db) +
                  ": the last " + std::to_string(options.history_last) +
                  " runs of the same model, dataset, protocol and device (eval: perplexity per method) or of the same "
                  "device (bench: geometric mean TFLOP/s over each run's cases, per method).</p>";
  for (size_t i = 0; i < runs.size(); ++i) {
    const Trend trend = history_trend(options.history_db, runs[i], options.history_last);
    const std::string id = "chart-trend-" + std::to_string(i);
    XYChart chart{id, "Trend: " + trend.title, {"run id in the history database", Scale::linear, false},
                  {trend.metric, Scale::linear, false}, {}};
    Table table{"table-trend-" + std::to_string(i), "Trend values: " + trend.metric,
                {"method", "run id", "created", "git revision", trend.metric}, {}};
    for (auto& t : trend.series) {
      Series series{t.name, SeriesStyle::line_markers, {}, t.values, {}};
      for (size_t k = 0; k < t.values.size(); ++k) {
        series.x.push_back(static_cast<double>(t.run_ids[k]));
        table.rows.push_back({t.name, std::to_string(t.run_ids[k]), t.created[k], t.git_revisions[k], format_fixed(t.values[k], 4)});
      }
      chart.series.push_back(series);
    }
    s += "<h3>" + escape_html(trend.title) + "</h3>" + render_svg(chart) + html_table(table);
  }
  return s + "</section>";
}

}  // namespace

std::string render_html(const std::vector<json>& runs, const HtmlOptions& options) {
  std::vector<json> bench_runs;
  for (auto& r : runs)
    if (r.at("kind") == "bench") bench_runs.push_back(r);
  const size_t reference = bench_runs.empty() || options.relative_to.empty() ? 0 : find_device(bench_runs, options.relative_to);

  std::string nav, body;
  size_t eval_index = 0, bench_index = 0;
  for (auto& run : runs) {
    if (run.at("kind") == "eval") {
      const std::string i = std::to_string(eval_index++), anchor = "eval-" + i;
      const std::string heading = "Quality against size: " + run["model"]["path"].get<std::string>();
      nav += "<li><a href=\"#" + anchor + "\">" + escape_html(heading) + "</a></li>";
      body += "<section id=\"" + anchor + "\"><h2>" + escape_html(heading) + "</h2>";
      body += render_svg(quality_size_chart(run, "chart-quality-size-" + i)) + html_table(quality_table(run, "table-quality-" + i));
      const Table vram = vram_catalog_table(run, "table-vram-" + i);
      if (!vram.rows.empty()) body += "<h3>Projected VRAM</h3>" + render_svg(vram_chart(run, "chart-vram-" + i)) + html_table(vram);
      const Table measured = vram_measured_table(run, "table-vram-measured-" + i);
      if (!measured.rows.empty()) body += html_table(measured);
      body += "<h3>Provenance</h3>" + html_table(provenance_table(run, "table-provenance-eval-" + i)) + "</section>";
    } else {
      const size_t index = bench_index++;
      const std::string i = std::to_string(index), anchor = "bench-" + i;
      const std::string heading = "GEMM throughput and bandwidth: " + run["device"]["name"].get<std::string>();
      nav += "<li><a href=\"#" + anchor + "\">" + escape_html(heading) + "</a></li>";
      body += "<section id=\"" + anchor + "\"><h2>" + escape_html(heading) + "</h2>";
      for (auto& chart : bench_charts(run, index)) body += render_svg(chart);
      body += html_table(bench_table(run, "table-bench-" + i));
      body += "<h3>Provenance</h3>" + html_table(provenance_table(run, "table-provenance-bench-" + i)) + "</section>";
    }
  }
  if (bench_runs.size() > 1) {
    nav += "<li><a href=\"#gpus\">GPUs side by side</a></li>";
    body += "<section id=\"gpus\"><h2>GPUs side by side (relative to " +
            escape_html(bench_runs[reference]["device"]["name"].get<std::string>()) + ")</h2>" +
            render_svg(device_speedup_chart(bench_runs, reference)) +
            html_table(device_comparison_table(bench_runs, reference, "table-gpus")) + "</section>";
  }
  if (!options.claims_result.is_null()) {
    nav += "<li><a href=\"#claims\">Published claims, re-measured</a></li>";
    // Claims cells are sentences: wrapped, left-aligned (a style here keeps pages without claims as they were).
    body += "<section id=\"claims\"><style>#table-claims td { text-align: left; white-space: normal; }</style>"
            "<h2>Published claims, re-measured</h2>" +
            html_table(claims_table(options.claims_result, "table-claims")) + "<h3>Will it fit</h3>" +
            html_table(fit_table(options.claims_result, "table-fit")) + "</section>";
  }
  if (!options.history_db.empty()) {
    nav += "<li><a href=\"#history\">History</a></li>";
    body += history_section(runs, options);
  }
  const json tool = tool_info();
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape_html(options.title) +
         "</title><style>" + kStyle + "</style></head><body><h1>" + escape_html(options.title) + "</h1>" +
         "<p class=\"note\">Rendered by " + escape_html(tool["name"].get<std::string>() + " " + tool["version"].get<std::string>() +
                                                         " (git " + tool["git_revision"].get<std::string>() + ")") +
         " at " + utc_timestamp() + " from " + std::to_string(runs.size()) + " run document(s), schema " + kRunSchemaVersion +
         ". Every number on this page comes from those documents.</p><nav><ul>" + nav + "</ul></nav>" + body +
         "</body></html>\n";
}

}  // namespace qb::reports
