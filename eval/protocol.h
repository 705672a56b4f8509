#pragma once
// Perplexity protocols: which windows of the tokenized split are run, and which of their tokens
// are scored. Stated here once and copied into every report.
//
//   paper    The GPTQ/AWQ protocol (llm-awq entry.py, AutoAWQ eval_utils.py, GPTQ llama.py): the
//            whole split tokenized once with one BOS at its start, cut into non-overlapping
//            windows of ctx tokens, tail dropped; every window's tokens 1..ctx-1 are scored.
//   sliding  Windows of ctx tokens every `stride` tokens; the first window scores tokens 1..ctx-1,
//            each later one only its last `stride` tokens (those past the overlap), so every
//            scored token has at least ctx - stride tokens of context. stride = ctx / 2 scores
//            the second half of each window, as llama.cpp's perplexity tool does.
//
// BOS: "split" puts one BOS before the split's first token (paper); "window" starts every window
// with BOS followed by ctx - 1 text tokens (llama.cpp forces BOS at each chunk's start), and then
// the first text token of each window is scored too.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb {

enum class ProtocolKind { Paper, Sliding };
enum class BosPlacement { Split, Window };
const char* protocol_name(ProtocolKind k);  // "paper" | "sliding", as run documents name it
const char* bos_name(BosPlacement b);       // "split" | "window"

struct ProtocolOptions {
  ProtocolKind kind = ProtocolKind::Paper;
  int ctx = 2048;  // tokens per window, BOS included
  int stride = 0;  // sliding only; 0 means ctx / 2
  BosPlacement bos = BosPlacement::Split;
  int max_windows = 0;  // 0: all windows
};

struct Window {
  std::vector<int> tokens;  // the model's input, BOS included where the protocol puts one
  int first_scored = 1;     // targets tokens[first_scored .. end) are scored (predicted from j-1)
};

// Checks the options (ctx >= 2, 1 <= stride <= ctx - 1, max_windows >= 0); errors name the field.
void validate_protocol(const ProtocolOptions& p);
// The windows of `text_tokens` (the split tokenized without BOS). bos_id < 0 means the tokenizer's
// family adds no BOS (e.g. Qwen2): Split placement then inserts none, and Window placement is an
// error. `dataset` names the file in the errors (also when the split is shorter than one window).
std::vector<Window> plan_windows(const std::vector<int>& text_tokens, int bos_id, const ProtocolOptions& p,
                                 const std::string& dataset);
// {"name", "ctx", "stride", "bos", "max_windows", "scored"}: the protocol in words for reports;
// bos_id < 0 (a tokenizer with no BOS) is said in "bos".
nlohmann::json protocol_json(const ProtocolOptions& p, int bos_id);

}  // namespace qb
