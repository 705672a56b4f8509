#include "reports/tables.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/error.h"
#include "common/labels.h"

namespace qb::reports {

using nlohmann::json;

std::string format_fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

ByteUnit byte_unit_for(double largest_bytes) {
  if (largest_bytes >= 1e9) return {1e9, "GB"};
  if (largest_bytes >= 1e6) return {1e6, "MB"};
  if (largest_bytes >= 1e3) return {1e3, "kB"};
  return {1, "bytes"};
}

std::string format_bytes(double bytes) {
  const ByteUnit unit = byte_unit_for(bytes);
  return format_fixed(bytes / unit.bytes, 2) + " " + unit.name;
}

namespace {

const std::string kNone = "—";

std::string optional_fixed(const json& v, int decimals, const std::string& suffix = "") {
  return v.is_number() ? format_fixed(v.get<double>(), decimals) + suffix : kNone;
}

std::string text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string quantization_text(const json& q) {
  if (q.is_null()) return "none (fp16)";
  std::string s = quant_setting_label(q.at("bits").get<int>(), q.at("group_size").get<int>());
  s += q.at("zero_point").get<bool>() ? ", zero point" : ", symmetric";
  if (q.contains("clip")) s += q["clip"].get<bool>() ? ", clip search" : "";
  if (q.contains("calibration") && q["calibration"].is_object())
    s += ", calib " + std::to_string(q["calibration"].at("samples").get<int>()) + "×" +
         std::to_string(q["calibration"].at("seq_len").get<int>());
  if (q.contains("seconds") && q["seconds"].is_number())  // the quantizer's wall time, when quantized in the run
    s += ", quantized in " + format_fixed(q["seconds"].get<double>(), 1) + " s";
  return s;
}

// The key a bench case is known by across runs and devices.
std::string case_key(const json& c) {
  return text(c.at("model")) + "|" + text(c.at("layer")) + "|" + c.at("m").dump() + "|" + c.at("n").dump() + "|" +
         c.at("k").dump() + "|" + c.at("group_size").dump() + "|" + text(c.at("method"));
}

std::string micros(double seconds) { return format_fixed(seconds * 1e6, 2); }

}  // namespace

Table quality_table(const json& run, const std::string& id) {
  Table t{id,
          "Quality and size: " + text(run.at("model").at("path")) + " on " + text(run.at("dataset").at("path")) + " (" +
              text(run.at("protocol").at("name")) + " protocol, ctx " + run.at("protocol").at("ctx").dump() + ", stride " +
              run.at("protocol").at("stride").dump() + ")",
          {"method", "quantization", "ppl ± stderr", "Δ ppl", "KL mean", "KL p99", "top-1 agreement", "tokens scored",
           "weight bytes", "saving vs fp16"},
          {}};
  for (auto& m : run.at("methods")) {
    const json& q = m.at("quality");
    t.rows.push_back({text(m.at("label")), quantization_text(m.at("quantization")),
                      format_fixed(q.at("ppl"), 4) + " ± " + format_fixed(q.at("ppl_stderr"), 4),
                      optional_fixed(q.at("delta_ppl_pct"), 2, " %"), optional_fixed(q.at("kl_mean"), 4),
                      optional_fixed(q.at("kl_p99"), 4),
                      q.at("top1_agreement").is_number() ? format_fixed(q["top1_agreement"].get<double>() * 100, 2) + " %" : kNone,
                      q.at("tokens_scored").dump(), m.at("size").at("weight_bytes").dump() + " (" +
                      format_bytes(m["size"]["weight_bytes"]) + ")", format_fixed(m["size"].at("saving_vs_fp16"), 2) + "×"});
  }
  return t;
}

std::string catalog_column(const json& entry) {
  return (entry.contains("label") ? entry["label"] : entry.at("method")).get<std::string>();
}

Table vram_catalog_table(const json& run, const std::string& id) {
  Table t{id, "", {"model"}, {}};
  if (!run.contains("vram") || !run["vram"].is_object() || !run["vram"].contains("catalog")) return t;
  double largest = 0;
  for (auto& e : run["vram"]["catalog"]) largest = std::max(largest, e.at("weight_bytes").get<double>());
  const ByteUnit unit = byte_unit_for(largest);
  t.caption = "Projected weight memory of the catalog models per method, in " + unit.name + " (decimal units; weights only, no KV cache)";
  std::vector<std::string> models, methods;
  std::map<std::pair<std::string, std::string>, double> bytes;
  for (auto& e : run["vram"]["catalog"]) {
    const std::string model = e.at("model"), method = catalog_column(e);
    if (std::find(models.begin(), models.end(), model) == models.end()) models.push_back(model);
    if (std::find(methods.begin(), methods.end(), method) == methods.end()) methods.push_back(method);
    bytes[{model, method}] = e.at("weight_bytes").get<double>();
  }
  t.columns.insert(t.columns.end(), methods.begin(), methods.end());
  for (auto& model : models) {
    std::vector<std::string> row{model};
    for (auto& method : methods) {
      auto it = bytes.find({model, method});
      row.push_back(it == bytes.end() ? kNone : format_fixed(it->second / unit.bytes, 2));
    }
    t.rows.push_back(row);
  }
  return t;
}

Table vram_measured_table(const json& run, const std::string& id) {
  Table t{id, "Device memory measured during the run", {"method", "weights on device", "peak allocated"}, {}};
  if (!run.contains("vram") || !run["vram"].is_object() || !run["vram"].contains("per_method")) return t;
  if (run["vram"].contains("device_bytes_free_before"))
    t.caption += "; free before the run: " + format_bytes(run["vram"]["device_bytes_free_before"]);
  for (auto& e : run["vram"]["per_method"])
    t.rows.push_back({text(e.at("method")), format_bytes(e.at("weight_bytes_device")), format_bytes(e.at("peak_bytes"))});
  return t;
}

Table bench_table(const json& run, const std::string& id) {
  const json& b = run.at("bench");
  Table t{id,
          "GEMM cases on " + text(run.at("device").at("name")) + " (L2 " + text(b.at("l2")) + ", " + b.at("samples").dump() +
              " samples; time median and p10..p90 in µs; % of the measured peaks " +
              format_fixed(run["device"].at("peak_bandwidth_gbps"), 0) + " GB/s and " +
              format_fixed(run["device"].at("peak_fp16_tflops"), 0) + " TFLOP/s)",
          {"model", "layer", "m", "n", "k", "method", "kernel", "median µs", "p10..p90 µs", "TFLOP/s", "GB/s", "% peak BW",
           "% peak FLOP/s", "speedup vs fp16"},
          {}};
  for (auto& c : b.at("cases")) {
    const json& ts = c.at("time_s");
    t.rows.push_back({text(c.at("model")), text(c.at("layer")), c.at("m").dump(), c.at("n").dump(), c.at("k").dump(),
                      text(c.at("method")), text(c.at("kernel")), micros(ts.at("median")),
                      micros(ts.at("p10")) + "..." + micros(ts.at("p90")), format_fixed(c.at("tflops"), 2),
                      format_fixed(c.at("gbps"), 1), format_fixed(c.at("pct_peak_bandwidth"), 1),
                      format_fixed(c.at("pct_peak_flops"), 1), optional_fixed(c.at("speedup_vs_fp16"), 2, "×")});
  }
  return t;
}

size_t find_device(const std::vector<json>& bench_runs, const std::string& spec) {
  std::string names;
  for (size_t i = 0; i < bench_runs.size(); ++i) {
    const std::string name = bench_runs[i].at("device").at("name");
    if (name == spec || std::to_string(i) == spec) return i;
    names += (i ? ", " : "") + std::to_string(i) + " = '" + name + "'";
  }
  fail("relative_to", "'" + spec + "' names no bench run given (devices: " + names + ")");
}

Table device_comparison_table(const std::vector<json>& runs, size_t relative_to, const std::string& id) {
  const std::string reference = runs.at(relative_to).at("device").at("name");
  Table t{id, "The same cases on each GPU: time median (µs), TFLOP/s, and speedup = time on " + reference + " / time on this GPU",
          {"model", "layer", "m", "n", "k", "method"}, {}};
  for (auto& r : runs) {
    const std::string name = r.at("device").at("name");
    t.columns.insert(t.columns.end(), {name + " µs", name + " TFLOP/s", name + " speedup"});
  }
  // Rows in first-seen order over all devices; per device a key -> case index.
  std::vector<const json*> keys;
  std::vector<std::map<std::string, const json*>> by_device(runs.size());
  for (size_t d = 0; d < runs.size(); ++d)
    for (auto& c : runs[d].at("bench").at("cases")) {
      const std::string key = case_key(c);
      bool seen = false;
      for (auto& other : by_device) seen = seen || other.count(key);
      if (!seen) keys.push_back(&c);
      by_device[d][key] = &c;
    }
  for (const json* first : keys) {
    const std::string key = case_key(*first);
    std::vector<std::string> row{text(first->at("model")), text(first->at("layer")), first->at("m").dump(),
                                 first->at("n").dump(), first->at("k").dump(), text(first->at("method"))};
    auto ref = by_device[relative_to].find(key);
    for (size_t d = 0; d < runs.size(); ++d) {
      auto it = by_device[d].find(key);
      if (it == by_device[d].end()) {
        row.insert(row.end(), {kNone, kNone, kNone});
        continue;
      }
      const double median = it->second->at("time_s").at("median");
      row.push_back(micros(median));
      row.push_back(format_fixed(it->second->at("tflops"), 2));
      row.push_back(ref == by_device[relative_to].end()
                        ? kNone
                        : format_fixed(ref->second->at("time_s").at("median").get<double>() / median, 2) + "×");
    }
    t.rows.push_back(row);
  }
  return t;
}

Table provenance_table(const json& run, const std::string& id) {
  Table t{id, "Provenance of this " + text(run.at("kind")) + " run", {"field", "value"}, {}};
  auto add = [&](const std::string& field, const std::string& value) { t.rows.push_back({field, value}); };
  add("created", text(run.at("created")));
  add("tool", text(run.at("tool").at("name")) + " " + text(run["tool"].at("version")) + " (git " +
                  text(run["tool"].at("git_revision")) + "), schema " + text(run.at("schema_version")));
  add("host", text(run.at("host").at("hostname")) + ": " + text(run["host"].at("cpu")) + ", " +
                  run["host"].at("threads").dump() + " threads");
  const json& d = run.at("device");
  if (d.is_null()) {
    add("device", "none (CPU run)");
  } else {
    add("device", text(d.at("name")) + ", sm_" + text(d.at("compute_capability")) + ", " + d.at("sm_count").dump() + " SMs, " +
                      format_bytes(d.at("memory_bytes")) + ", L2 " + format_fixed(d.at("l2_bytes").get<double>() / (1 << 20), 0) +
                      " MiB, driver " + text(d.at("driver_version")) + ", runtime " + text(d.at("runtime_version")));
    if (d.contains("peak_bandwidth_gbps"))
      add("measured peaks", format_fixed(d["peak_bandwidth_gbps"], 1) + " GB/s (device copy), " +
                                format_fixed(d.at("peak_fp16_tflops"), 1) + " TFLOP/s (cuBLAS FP16 GEMM)");
  }
  if (run.at("kind") == "eval") {
    const json& m = run.at("model");
    add("model", text(m.at("path")) + " (" + text(m.at("format")) + ", " + m.at("parameters").dump() + " parameters)");
    add("tokenizer", text(run.at("tokenizer").at("path")) + " (vocab " + run["tokenizer"].at("vocab_size").dump() + ")");
    const json& ds = run.at("dataset");
    add("dataset", text(ds.at("path")) + " (" + text(ds.at("format")) + ", " + ds.at("bytes").dump() + " bytes, " +
                       ds.at("tokens").dump() + " tokens)");
    add("dataset sha256", text(ds.at("sha256")));
    const json& p = run.at("protocol");
    add("protocol", text(p.at("name")) + ": ctx " + p.at("ctx").dump() + ", stride " + p.at("stride").dump() +
                        ", max windows " + p.at("max_windows").dump() + "; BOS: " + text(p.at("bos")) + "; scored: " +
                        text(p.at("scored")));
  } else {
    const json& b = run.at("bench");
    add("bench", "L2 " + text(b.at("l2")) + ", " + b.at("warmup").dump() + " warm-up, " + b.at("samples").dump() +
                     " samples, shard " + text(b.at("shard")) + ", " + std::to_string(b.at("cases").size()) + " cases");
    if (b.contains("merged_from"))
      for (auto& s : b["merged_from"])
        add("shard " + text(s.at("shard")), text(s.at("hostname")) + " at " + text(s.at("created")) + ", peaks " +
                                                format_fixed(s.at("peak_bandwidth_gbps"), 1) + " GB/s, " +
                                                format_fixed(s.at("peak_fp16_tflops"), 1) + " TFLOP/s");
  }
  return t;
}

std::string markdown_table(const Table& table) {
  auto cell = [](std::string s) {
    for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.replace(p, 1, "\\|");
    return s;
  };
  std::string md = "| ";
  for (auto& c : table.columns) md += cell(c) + " | ";
  md.pop_back();
  md += "\n|";
  for (size_t i = 0; i < table.columns.size(); ++i) md += " --- |";
  md += "\n";
  for (auto& row : table.rows) {
    md += "| ";
    for (auto& c : row) md += cell(c) + " | ";
    md.pop_back();
    md += "\n";
  }
  return md;
}

std::string render_markdown(const json& run) {
  std::vector<Table> tables;
  if (run.at("kind") == "eval") {
    tables.push_back(quality_table(run, "table-quality"));
    for (Table vram : {vram_catalog_table(run, "table-vram"), vram_measured_table(run, "table-vram-measured")})
      if (!vram.rows.empty()) tables.push_back(vram);
  } else {
    tables.push_back(bench_table(run, "table-bench"));
  }
  tables.push_back(provenance_table(run, "table-provenance"));
  std::string md;
  for (auto& t : tables) md += "**" + t.caption + "**\n\n" + markdown_table(t) + "\n";
  return md;
}

std::string render_markdown(const std::vector<json>& runs, const std::string& relative_to) {
  std::string md;
  std::vector<json> bench_runs;
  for (auto& run : runs) {
    md += render_markdown(run);
    if (run.at("kind") == "bench") bench_runs.push_back(run);
  }
  if (bench_runs.size() > 1) {
    const Table gpus = device_comparison_table(bench_runs, relative_to.empty() ? 0 : find_device(bench_runs, relative_to), "table-gpus");
    md += "**" + gpus.caption + "**\n\n" + markdown_table(gpus) + "\n";
  }
  return md;
}

}  // namespace qb::reports
