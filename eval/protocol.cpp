#include "eval/protocol.h"

#include "common/error.h"

namespace qb {

const char* protocol_name(ProtocolKind k) {
  return k == ProtocolKind::Paper ? "paper" : k == ProtocolKind::Sliding ? "sliding" : "llama.cpp";
}
const char* bos_name(BosPlacement b) { return b == BosPlacement::Split ? "split" : "window"; }

static int effective_stride(const ProtocolOptions& p) {
  const int text_len = p.bos == BosPlacement::Window ? p.ctx - 1 : p.ctx;
  if (p.kind != ProtocolKind::Sliding) return text_len;
  return p.stride > 0 ? p.stride : p.ctx / 2;
}

void validate_protocol(const ProtocolOptions& p) {
  if (p.ctx < 2) fail("protocol", "ctx must be at least 2, got " + std::to_string(p.ctx));
  if (p.max_windows < 0) fail("protocol", "max_windows must be >= 0, got " + std::to_string(p.max_windows));
  if (p.kind == ProtocolKind::LlamaCpp) {
    // ctx/2 - 1 scored tokens per chunk must be at least one.
    if (p.ctx < 4) fail("protocol", "llama.cpp: ctx must be at least 4, got " + std::to_string(p.ctx));
    if (p.stride != 0) fail("protocol", "llama.cpp: chunks are disjoint; a stride is the sliding protocol's");
    if (p.bos != BosPlacement::Split)
      fail("protocol", "llama.cpp: BOS is its own (each chunk's first token overwritten); BOS placement 'window' is not");
  }
  if (p.kind == ProtocolKind::Sliding && (effective_stride(p) < 1 || effective_stride(p) > p.ctx - 1))
    fail("protocol", "stride must be between 1 and ctx - 1 (" + std::to_string(p.ctx - 1) + "), got " +
                         std::to_string(effective_stride(p)));
}

std::vector<Window> plan_windows(const std::vector<int>& text_tokens, int bos_id, const ProtocolOptions& p,
                                 const std::string& dataset) {
  validate_protocol(p);
  // The stream windows are cut from, and how many of its tokens each window takes.
  if (bos_id < 0 && p.bos == BosPlacement::Window)
    fail(dataset, "BOS placement 'window' needs a BOS token; this tokenizer adds none");
  std::vector<int> stream;
  if (p.bos == BosPlacement::Split && bos_id >= 0) stream.push_back(bos_id);
  stream.insert(stream.end(), text_tokens.begin(), text_tokens.end());
  const int prefix = p.bos == BosPlacement::Window ? 1 : 0;
  const size_t len = static_cast<size_t>(p.ctx - prefix);
  const size_t stride = static_cast<size_t>(effective_stride(p));
  if (stream.size() < len)
    fail(dataset, std::to_string(text_tokens.size()) + " tokens is shorter than one window of " +
                      std::to_string(p.ctx) + " (ctx)");
  if (p.kind == ProtocolKind::LlamaCpp && stream.size() < 2 * len)  // llama-perplexity refuses it too
    fail(dataset, std::to_string(stream.size()) + " tokens (BOS included); the llama.cpp protocol needs at least 2 * ctx = " +
                      std::to_string(2 * p.ctx));
  std::vector<Window> windows;
  for (size_t begin = 0; begin + len <= stream.size(); begin += stride) {
    if (p.max_windows > 0 && windows.size() == static_cast<size_t>(p.max_windows)) break;
    Window w;
    if (prefix) w.tokens.push_back(bos_id);
    w.tokens.insert(w.tokens.end(), stream.begin() + begin, stream.begin() + begin + len);
    if (p.kind == ProtocolKind::LlamaCpp) {
      if (bos_id >= 0) w.tokens.front() = bos_id;
      w.first_scored = p.ctx / 2 + 1;
    } else {
      w.first_scored = (begin == 0 || p.kind == ProtocolKind::Paper) ? 1 : static_cast<int>(p.ctx - stride);
    }
    windows.push_back(std::move(w));
  }
  return windows;
}

ShardSpec parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  const auto number = [&](const std::string& digits) {
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos)
      fail("--shard", "expected I/N (e.g. 0/8), got '" + text + "'");
    return std::stoi(digits);
  };
  if (slash == std::string::npos) fail("--shard", "expected I/N (e.g. 0/8), got '" + text + "'");
  const ShardSpec s{number(text.substr(0, slash)), number(text.substr(slash + 1))};
  if (s.count < 1 || s.index >= s.count)
    fail("--shard", "'" + text + "': the index must be 0 .. N-1 and N at least 1");
  return s;
}

ShardRange shard_range(ShardSpec spec, size_t total) {
  if (spec.count < 1 || spec.index < 0 || spec.index >= spec.count)
    fail("--shard", std::to_string(spec.index) + "/" + std::to_string(spec.count) + ": the index must be 0 .. N-1");
  const size_t n = static_cast<size_t>(spec.count), i = static_cast<size_t>(spec.index);
  const ShardRange r{spec, i * total / n, (i + 1) * total / n, total};
  if (r.begin == r.end)
    fail("--shard", std::to_string(spec.index) + "/" + std::to_string(spec.count) + " of " + std::to_string(total) +
                        " windows is empty; use at most " + std::to_string(total) + " shards");
  return r;
}

nlohmann::json protocol_json(const ProtocolOptions& p, int bos_id) {
  const int stride = effective_stride(p);
  const std::string ctx = std::to_string(p.ctx);
  std::string scored, bos;
  if (p.kind == ProtocolKind::Paper)
    scored = "non-overlapping windows of " + ctx + " tokens, tail dropped; every token after a window's first is scored";
  else if (p.kind == ProtocolKind::Sliding)
    scored = "windows of " + ctx + " tokens every " + std::to_string(stride) +
             " tokens; the first window scores all its tokens after the first, later ones only their last " +
             std::to_string(stride);
  else
    scored = "llama-perplexity (b4747): disjoint chunks of " + ctx + " tokens, tail dropped; only the second half is "
             "scored, targets " + std::to_string(p.ctx / 2 + 1) + ".." + std::to_string(p.ctx - 1) + " of each chunk (" +
             std::to_string(p.ctx - 1 - p.ctx / 2) + " per chunk); ppl_stderr equals its \"+/-\"";
  if (bos_id < 0)
    bos = "none: the tokenizer adds no BOS (its post-processor has none)";
  else if (p.kind == ProtocolKind::LlamaCpp)
    bos = "one BOS at the start of the split, and the first token of every chunk overwritten with BOS (not prepended)";
  else if (p.bos == BosPlacement::Split)
    bos = "one BOS at the start of the split (HF tokenizer add_bos)";
  else
    bos = "every window starts with BOS followed by ctx - 1 text tokens";
  return {{"name", protocol_name(p.kind)}, {"ctx", p.ctx},  {"stride", stride}, {"max_windows", p.max_windows},
          {"bos", bos},                    {"scored", scored}};
}

}  // namespace qb
