#pragma once
// Fleet runs: `quantbench bench --shard I/N` writes one run per shard (I = 0..N-1); merging puts
// the shards of one device back into one run.
#include <vector>

#include <nlohmann/json.hpp>

namespace qb::reports {

// Returns the runs with the shards of each device (bench runs whose bench.shard is "I/N", N > 1)
// merged into one run in place of the first shard: cases in shard order, bench.shard "0/1",
// bench.merged_from listing each shard's host, time and measured peaks (each case keeps the
// percentages its own shard computed against its own peaks). Eval runs and whole bench runs
// pass through unchanged. Throws qb::Error for shards that overlap (same index twice, or the
// same case in two shards), disagree (N, git revision, device model or bench settings), or are
// incomplete (an index missing).
std::vector<nlohmann::json> merge_shards(const std::vector<nlohmann::json>& runs);

}  // namespace qb::reports
