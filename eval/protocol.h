#pragma once
// Perplexity protocols: which windows of the tokenized split are run, and which of their tokens
// are scored. Stated here once and copied into every report.
//
//   paper    The GPTQ/AWQ protocol (llm-awq entry.py, AutoAWQ eval_utils.py, GPTQ llama.py): the
//            whole split tokenized once with one BOS at its start, cut into non-overlapping
//            windows of ctx tokens, tail dropped; every window's tokens 1..ctx-1 are scored.
//   sliding  Windows of ctx tokens every `stride` tokens; the first window scores tokens 1..ctx-1,
//            each later one only its last `stride` tokens (those past the overlap), so every
//            scored token has at least ctx - stride tokens of context (the HF-style sliding
//            window; llama.cpp's tool is not this, see llama.cpp below).
//
//   llama.cpp  llama-perplexity's protocol (examples/perplexity/perplexity.cpp, b4747): the split
//            tokenized once with BOS, cut into disjoint chunks of ctx tokens (tail dropped; at
//            least 2 * ctx tokens needed), the first token of each chunk OVERWRITTEN with BOS
//            (not prepended), and only the second half scored: logits at positions ctx/2 .. ctx-2
//            predict targets ctx/2 + 1 .. ctx - 1, ctx - 1 - ctx/2 tokens per chunk. max_windows is
//            llama.cpp's --chunks. Its "+/-" (ppl * sqrt((mean(nll^2) - mean(nll)^2) / (n - 1)))
//            is algebraically our ppl_stderr.
//
// BOS: "split" puts one BOS before the split's first token (paper); "window" starts every window
// with BOS followed by ctx - 1 text tokens, and then the first text token of each window is
// scored too. The llama.cpp protocol has its own rule (above) and takes neither.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb {

enum class ProtocolKind { Paper, Sliding, LlamaCpp };
enum class BosPlacement { Split, Window };
const char* protocol_name(ProtocolKind k);  // "paper" | "sliding" | "llama.cpp", as run documents name it
const char* bos_name(BosPlacement b);       // "split" | "window"

struct ProtocolOptions {
  ProtocolKind kind = ProtocolKind::Paper;
  int ctx = 2048;  // tokens per window, BOS included
  int stride = 0;  // sliding only; 0 means ctx / 2
  BosPlacement bos = BosPlacement::Split;  // llama.cpp: Split (its own rule applies)
  int max_windows = 0;  // 0: all windows (llama.cpp: --chunks)
};
// llama-perplexity's default n_ctx, taken by the llama.cpp protocol when no --ctx is given.
constexpr int kLlamaCppDefaultCtx = 512;

struct Window {
  std::vector<int> tokens;  // the model's input, BOS included where the protocol puts one
  int first_scored = 1;     // targets tokens[first_scored .. end) are scored (predicted from j-1)
};

// Checks the options (ctx >= 2, 1 <= stride <= ctx - 1, max_windows >= 0; llama.cpp: ctx >= 4, no
// stride, BOS placement split); errors name the field.
void validate_protocol(const ProtocolOptions& p);
// The windows of `text_tokens` (the split tokenized without BOS). bos_id < 0 means the tokenizer's
// family adds no BOS (e.g. Qwen2): Split placement then inserts none, and Window placement is an
// error (llama.cpp then overwrites nothing, as llama-perplexity without add_bos). `dataset` names
// the file in the errors (also when the split is shorter than one window, or for llama.cpp than
// two).
std::vector<Window> plan_windows(const std::vector<int>& text_tokens, int bos_id, const ProtocolOptions& p,
                                 const std::string& dataset);
// eval --shard I/N: one process of N evaluates a contiguous part of the planned windows (after
// max_windows), windows [I * total / N, (I + 1) * total / N): shards differ by at most one window
// and together take every window once, so their merged sums are the whole run's.
struct ShardSpec {
  int index = 0, count = 1;  // count 1: the whole run
};
struct ShardRange {
  ShardSpec spec;
  size_t begin = 0, end = 0, total = 0;  // windows [begin, end) of total
};
// "I/N" with 0 <= I < N; errors name --shard.
ShardSpec parse_shard(const std::string& text);
// Errors: an index out of range, or an empty shard (more shards than windows).
ShardRange shard_range(ShardSpec spec, size_t total);
// {"name", "ctx", "stride", "bos", "max_windows", "scored"}: the protocol in words for reports;
// bos_id < 0 (a tokenizer with no BOS) is said in "bos".
nlohmann::json protocol_json(const ProtocolOptions& p, int bos_id);

}  // namespace qb
