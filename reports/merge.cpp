#include "reports/merge.h"

#include <algorithm>
#include <map>
#include <set>

#include "common/error.h"
#include "reports/run_schema.h"

namespace qb::reports {

using nlohmann::json;

namespace {

struct ShardId {
  int index = 0, count = 1;
};

ShardId parse_shard(const json& run) {
  const std::string text = run.at("bench").at("shard");  // pattern checked by the schema: I/N
  const size_t slash = text.find('/');
  return {std::stoi(text.substr(0, slash)), std::stoi(text.substr(slash + 1))};
}

std::string shard_where(const json& run) { return run.at("device").at("name").get<std::string>() + " shards"; }

// Fields every shard of one sweep must share: the build, the GPU model and the measurement.
void require_same(const json& first, const json& other, const json::json_pointer& field) {
  if (first.at(field) != other.at(field))
    fail(shard_where(first), "shard " + other["bench"]["shard"].get<std::string>() + " has " + field.to_string() + " " +
                                 other.at(field).dump() + " but shard " + first["bench"]["shard"].get<std::string>() +
                                 " has " + first.at(field).dump() + "; merge only shards of one sweep");
}

json merge_group(std::vector<const json*> shards) {
  std::sort(shards.begin(), shards.end(),
            [](const json* a, const json* b) { return parse_shard(*a).index < parse_shard(*b).index; });
  const json& first = *shards.front();
  const int count = parse_shard(first).count;
  std::set<int> indices;
  std::map<std::string, std::string> case_owner;  // case key -> shard that measured it
  json merged = first;
  merged["bench"]["shard"] = "0/1";
  merged["bench"]["cases"] = json::array();
  merged["bench"]["merged_from"] = json::array();
  for (const json* s : shards) {
    const ShardId id = parse_shard(*s);
    const std::string name = s->at("bench").at("shard");
    if (id.count != count)
      fail(shard_where(first), "shard " + name + " belongs to a sweep of " + std::to_string(id.count) + " shards, shard " +
                                   first["bench"]["shard"].get<std::string>() + " to one of " + std::to_string(count));
    if (id.index >= count) fail(shard_where(first), "shard " + name + ": index out of range");
    if (!indices.insert(id.index).second) fail(shard_where(first), "shard " + name + " given twice (overlapping shards)");
    for (const char* field : {"/tool/git_revision", "/device/compute_capability", "/device/memory_bytes", "/bench/l2",
                              "/bench/warmup", "/bench/samples"})
      require_same(first, *s, json::json_pointer(field));
    for (auto& c : s->at("bench").at("cases")) {
      const std::string key = c.at("model").get<std::string>() + " " + c.at("layer").get<std::string>() + " m=" +
                              c.at("m").dump() + " n=" + c.at("n").dump() + " k=" + c.at("k").dump() + " g=" +
                              c.at("group_size").dump() + " " + c.at("method").get<std::string>();
      if (auto [it, added] = case_owner.emplace(key, name); !added)
        fail(shard_where(first), "case " + key + " is in shard " + it->second + " and in shard " + name + " (overlapping shards)");
      merged["bench"]["cases"].push_back(c);
    }
    merged["bench"]["merged_from"].push_back({{"shard", name},
                                              {"hostname", s->at("host").at("hostname")},
                                              {"created", s->at("created")},
                                              {"peak_bandwidth_gbps", s->at("device").at("peak_bandwidth_gbps")},
                                              {"peak_fp16_tflops", s->at("device").at("peak_fp16_tflops")}});
    // The sweep started when its first shard did.
    if (s->at("created").get<std::string>() < merged["created"].get<std::string>()) merged["created"] = s->at("created");
  }
  std::string missing;
  for (int i = 0; i < count; ++i)
    if (!indices.count(i)) missing += (missing.empty() ? "" : ", ") + std::to_string(i) + "/" + std::to_string(count);
  if (!missing.empty()) fail(shard_where(first), "incomplete sweep: shard(s) " + missing + " missing");
  validate_run(merged, shard_where(first) + " merged");
  return merged;
}

}  // namespace

std::vector<json> merge_shards(const std::vector<json>& runs) {
  std::vector<json> out;
  std::map<std::string, std::vector<const json*>> groups;  // device name -> its shards
  std::map<std::string, size_t> slot;                      // device name -> position in out
  for (const json& run : runs) {
    if (run.at("kind") != "bench" || parse_shard(run).count == 1) {
      out.push_back(run);
      continue;
    }
    const std::string device = run.at("device").at("name");
    if (!slot.count(device)) {
      slot[device] = out.size();
      out.push_back(nullptr);  // filled with the merged run below
    }
    groups[device].push_back(&run);
  }
  for (auto& [device, shards] : groups) out[slot[device]] = merge_group(shards);
  return out;
}

}  // namespace qb::reports
