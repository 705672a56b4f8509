#pragma once
// Runs beyond one machine: `quantbench eval --shard I/N` evaluates windows [I*W/N, (I+1)*W/N) of a
// run's W windows and writes a shard document carrying its exact sums ("shard" and each method's
// "shard_sums", eval/run_document.h). Merging adds the sums and computes every number as the
// unsharded run does, so the merged document equals the whole run's in PPL, stderr, KL mean and
// p99, top-1 and tokens, bit for bit; only timing and host fields differ.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb {

// Returns `runs` with the shards of each eval run merged into one document in place of its first
// shard (no "shard" nor "shard_sums"; "merged_from" lists each shard's windows, host, time and
// seconds; "created" is the earliest shard's; speed sums the shards' seconds). Shards of one run
// are those with the same model path, dataset and shard count; they must also agree on the build
// (git revision), tokenizer, protocol, arithmetic, device and methods (labels and settings).
// Other runs pass through unchanged. names[i] names runs[i] (its file) in the errors, one line
// each: shards that overlap or leave a gap, a shard missing, or a disagreement.
std::vector<nlohmann::json> merge_eval_shards(const std::vector<nlohmann::json>& runs,
                                              const std::vector<std::string>& names);

}  // namespace qb
