#include "eval/shard_merge.h"

#include <algorithm>
#include <map>

#include "common/error.h"
#include "common/json_fields.h"
#include "eval/lockstep.h"
#include "eval/run_document.h"

namespace qb {

using nlohmann::json;

namespace {

struct Shard {
  const json* run = nullptr;
  std::string name;  // the file, for errors
  int index = 0, count = 1;
  size_t begin = 0, end = 0, total = 0;
  std::string id() const { return std::to_string(index) + "/" + std::to_string(count); }
};

bool is_eval_shard(const json& run) {
  return run.is_object() && run.value("kind", "") == "eval" && run.contains("shard") && run["shard"].is_object() &&
         run["shard"].value("count", 1) > 1;
}

Shard read_shard(const json& run, const std::string& name) {
  const json& s = run["shard"];
  Shard r;
  r.run = &run;
  r.name = name;
  r.index = json_field<int>(s, name, "index");
  r.count = json_field<int>(s, name, "count");
  r.total = json_field<uint64_t>(s, name, "total_windows");
  const json& windows = s.contains("windows") ? s["windows"] : json();
  if (!windows.is_array() || windows.size() != 2)
    fail(name, "shard.windows: expected [begin, end], got " + json_describe(windows));
  r.begin = json_as<uint64_t>(windows[0], name, "shard.windows[0]");
  r.end = json_as<uint64_t>(windows[1], name, "shard.windows[1]");
  if (r.index < 0 || r.index >= r.count || r.begin >= r.end || r.end > r.total)
    fail(name, "shard " + r.id() + " with windows [" + std::to_string(r.begin) + ", " + std::to_string(r.end) + ") of " +
                   std::to_string(r.total) + " is not a shard of a run");
  return r;
}

// What every shard of one run shares: the build, the inputs, how they were scored, where, and the
// methods with their settings (a quantizer's wall time aside). By JSON pointer, for the errors.
json run_identity(const json& run) {
  json identity = json::object();
  for (const char* field : {"/tool/git_revision", "/model", "/tokenizer", "/dataset", "/protocol", "/arithmetic",
                            "/reference/mode", "/device/name", "/shard/total_windows"})
    identity[field] = run.value(json::json_pointer(field), json());
  const json& methods = run.value("methods", json::array());
  for (size_t i = 0; i < methods.size(); ++i) {
    const json& m = methods[i];
    json quantization = m.value("quantization", json());
    if (quantization.is_object()) quantization.erase("seconds");
    const std::string at = "/methods/" + std::to_string(i);
    identity[at + "/label"] = m.value("label", json());
    identity[at + "/quantization"] = quantization;
    identity[at + "/size"] = m.value("size", json());
    identity[at + "/speed/device"] = m.value(json::json_pointer("/speed/device"), json());
  }
  identity["methods"] = methods.size();
  return identity;
}

void require_same_run(const Shard& first, const Shard& other) {
  const json a = run_identity(*first.run), b = run_identity(*other.run);
  for (const auto& [field, value] : a.items())
    if (b.value(field, json()) != value)
      fail(other.name, "shard " + other.id() + " differs from " + first.name + " (shard " + first.id() + ") in " +
                           field + "; merge only shards of one run");
}

json merge_run(std::vector<Shard> shards) {
  std::sort(shards.begin(), shards.end(), [](const Shard& a, const Shard& b) { return a.index < b.index; });
  const Shard& first = shards.front();
  std::string missing;
  for (int i = 0, next = 0; i < first.count; ++i) {
    if (next < static_cast<int>(shards.size()) && shards[next].index == i) {
      ++next;
      if (next < static_cast<int>(shards.size()) && shards[next].index == i)
        fail(shards[next].name, "shard " + shards[next].id() + " is also " + shards[next - 1].name + " (overlapping shards)");
    } else {
      missing += (missing.empty() ? "" : ", ") + std::to_string(i) + "/" + std::to_string(first.count);
    }
  }
  if (!missing.empty()) fail(first.name, "incomplete run: shard(s) " + missing + " missing");
  size_t covered = 0;  // windows [0, covered) are in the shards so far
  for (const Shard& s : shards) {
    require_same_run(first, s);
    if (s.begin != covered)
      fail(s.name, "shard " + s.id() + " starts at window " + std::to_string(s.begin) + " but the shards before it end at " +
                       std::to_string(covered) + (s.begin < covered ? " (overlapping shards)" : " (a gap)"));
    covered = s.end;
  }
  if (covered != first.total)
    fail(shards.back().name, "the shards end at window " + std::to_string(covered) + " of " + std::to_string(first.total));

  const json& methods = first.run->at("methods");
  std::vector<LockstepSums> sums(methods.size());
  json merged_from = json::array();
  std::string created = first.run->at("created");
  for (const Shard& s : shards) {
    const json& shard_methods = s.run->at("methods");
    double seconds = 0;  // the shard's wall time: all its methods
    for (size_t i = 0; i < sums.size(); ++i) {
      const std::string field = "methods[" + std::to_string(i) + "]";
      const json& m = shard_methods.at(i);
      if (!m.contains("shard_sums")) fail(s.name, field + ": missing field 'shard_sums'");
      const LockstepSums part = sums_from_json(m["shard_sums"], s.name, field + ".shard_sums");
      LockstepSums& total = sums[i];
      total.nll.add(part.nll);
      total.kl.add(part.kl);
      total.kl_values.insert(total.kl_values.end(), part.kl_values.begin(), part.kl_values.end());
      total.top1_same += part.top1_same;
      total.tokens_run += part.tokens_run;
      total.seconds += part.seconds;
      seconds += part.seconds;
    }
    merged_from.push_back({{"shard", s.id()},
                           {"windows", {s.begin, s.end}},
                           {"hostname", s.run->at("host").value("hostname", "")},
                           {"created", s.run->at("created")},
                           {"seconds", seconds}});
    created = std::min(created, s.run->at("created").get<std::string>());  // the run started with its first shard
  }

  json merged = *first.run;
  merged.erase("shard");
  // Sequential runs state a KL error bound per shard: the whole run's mean bound (a weighted mean
  // of the shards') is at most the largest shard's, and its largest token bound is the largest.
  if (const auto reference = merged.find("reference"); reference != merged.end() && reference->is_object())
    for (const char* bound : {"kl_error_bound", "kl_error_bound_max_token"})
      if (reference->contains(bound))
        for (const Shard& s : shards)
          (*reference)[bound] = std::max((*reference)[bound].get<double>(),
                                         s.run->value(json::json_pointer("/reference/" + std::string(bound)), 0.0));
  merged["created"] = created;
  merged["merged_from"] = merged_from;
  for (size_t i = 0; i < sums.size(); ++i) {
    json& m = merged["methods"][i];
    m.erase("shard_sums");
    m["quality"] = quality_json(sums[i], sums[0], i == 0, first.total);
    m["speed"] = speed_json(sums[i], m.value(json::json_pointer("/speed/device"), "cpu"));
  }
  return merged;
}

}  // namespace

std::vector<json> merge_eval_shards(const std::vector<json>& runs, const std::vector<std::string>& names) {
  if (names.size() != runs.size()) fail("eval shard merge", "needs one name per run");
  std::vector<json> out;
  std::map<std::string, std::vector<Shard>> groups;  // run key -> its shards
  std::map<std::string, size_t> slot;                // run key -> position in out
  for (size_t i = 0; i < runs.size(); ++i) {
    const json& run = runs[i];
    if (!is_eval_shard(run)) {
      out.push_back(run);
      continue;
    }
    const Shard shard = read_shard(run, names[i]);
    const std::string key = run.at("model").value("path", "") + "\n" + run.at("dataset").value("sha256", "") + "\n" +
                            std::to_string(shard.count);
    if (!slot.count(key)) {
      slot[key] = out.size();
      out.push_back(nullptr);  // filled with the merged run below
    }
    groups[key].push_back(shard);
  }
  for (auto& [key, shards] : groups) out[slot[key]] = merge_run(shards);
  return out;
}

}  // namespace qb
