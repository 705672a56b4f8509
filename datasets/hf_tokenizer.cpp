#include "datasets/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "common/error.h"
#include "common/files.h"
#include "common/json_fields.h"

namespace qb {

namespace {

using nlohmann::json;
using Range = std::pair<size_t, size_t>;  // byte offsets [first, second)

// A token id read from the file, in [0, 2^24) (above any published vocabulary): the id -> token
// table is sized by the largest id.
int read_token_id(const json& v, const std::string& where, const std::string& field) {
  const int id = json_as<int>(v, where, field);
  if (id < 0 || id >= (1 << 24)) fail(where, "field '" + field + "' is " + std::to_string(id) + ", outside [0, 2^24)");
  return id;
}

// ---- UTF-8 ----------------------------------------------------------------------------------

// The code point at s[i] and its length in bytes (text is validated UTF-8).
std::pair<int32_t, size_t> next_char(const std::string& s, size_t i) {
  utf8proc_int32_t cp = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), s.size() - i, &cp);
  return {cp, n > 0 ? static_cast<size_t>(n) : 1};
}

std::string utf8(int32_t cp) {
  utf8proc_uint8_t buf[4];
  return std::string(reinterpret_cast<char*>(buf), utf8proc_encode_char(cp, buf));
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), s.size() - i, &cp);
    if (n <= 0) return false;
    i += static_cast<size_t>(n);
  }
  return true;
}

// Bytes as text, each invalid sequence replaced by U+FFFD per maximal subpart (Rust's
// String::from_utf8_lossy, which HF's byte-level decoder uses).
std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
    const unsigned char c = b(i);
    size_t need = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
    if (need == 9) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    size_t k = 1;
    for (; k <= need && i + k < bytes.size(); ++k) {
      unsigned char lo = 0x80, hi = 0xBF;
      if (k == 1 && c == 0xE0) lo = 0xA0;
      if (k == 1 && c == 0xED) hi = 0x9F;
      if (k == 1 && c == 0xF0) lo = 0x90;
      if (k == 1 && c == 0xF4) hi = 0x8F;
      if (b(i + k) < lo || b(i + k) > hi) break;
    }
    if (k == need + 1) {
      out.append(bytes, i, k);
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += k == need + 1 ? k : std::max<size_t>(k, 1);
  }
  return out;
}

// Rust's char::is_whitespace (Unicode White_Space), which HF uses for lstrip/rstrip.
bool is_whitespace(int32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// HF's Punctuation pre-tokenizer: ASCII punctuation or a Unicode P* category.
bool is_punctuation(int32_t c) {
  if (c < 0x80) return c > 0x20 && c < 0x7F && !std::isalnum(c);
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS: case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF: case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

// GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the others
// map to U+0100 onwards so that every byte is a visible character.
struct ByteLevelTable {
  std::string byte_char[256];
  std::unordered_map<int32_t, unsigned char> char_byte;
  ByteLevelTable() {
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int32_t cp = printable ? b : next++;
      byte_char[b] = utf8(cp);
      char_byte[cp] = static_cast<unsigned char>(b);
    }
  }
};
const ByteLevelTable& byte_level() {
  static const ByteLevelTable table;
  return table;
}

// ---- patterns ---------------------------------------------------------------------------------

// A Unicode regex (PCRE2 with UTF and UCP: \p{L}, \s etc. follow Unicode properties).
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &offset, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      fail(where, "regex '" + pattern + "' at offset " + std::to_string(offset) + ": " + reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
  }
  ~Regex() { pcre2_code_free(code_); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-empty, non-overlapping matches left to right; `s` is valid UTF-8.
  std::vector<Range> find_all(const std::string& s) const {
    std::vector<Range> out;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    for (size_t at = 0; at <= s.size();) {
      if (pcre2_match(code_, subject, s.size(), at, PCRE2_NO_UTF_CHECK, md, nullptr) < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[1] > ov[0]) {
        out.emplace_back(ov[0], ov[1]);
        at = ov[1];
      } else {
        if (ov[0] >= s.size()) break;
        at = ov[0] + next_char(s, ov[0]).second;
      }
    }
    pcre2_match_data_free(md);
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
};

// {"String": s} or {"Regex": r}, as Split and Replace give a pattern.
class Pattern {
 public:
  Pattern(const json& j, const std::string& where) {
    if (j.contains("Regex")) {
      regex_ = std::make_shared<Regex>(j.at("Regex").get<std::string>(), where);
    } else if (j.contains("String")) {
      literal_ = j.at("String").get<std::string>();
    } else {
      fail(where, "unsupported pattern " + j.dump());
    }
  }
  std::vector<Range> find_all(const std::string& s) const {
    if (regex_) return regex_->find_all(s);
    std::vector<Range> out;
    if (literal_.empty()) return out;
    for (size_t at = s.find(literal_); at != std::string::npos; at = s.find(literal_, at + literal_.size()))
      out.emplace_back(at, at + literal_.size());
    return out;
  }
  std::string replace_all(const std::string& s, const std::string& content) const {
    std::string out;
    size_t prev = 0;
    for (const Range& m : find_all(s)) {
      out.append(s, prev, m.first - prev);
      out += content;
      prev = m.second;
    }
    out.append(s, prev, std::string::npos);
    return out;
  }

 private:
  std::shared_ptr<Regex> regex_;
  std::string literal_;
};

// ---- pre-tokenization -------------------------------------------------------------------------

// A piece of text between splits; at_start: it begins at offset 0 of the original text (what
// Metaspace's prepend_scheme "first" asks).
struct Piece {
  std::string text;
  bool at_start = false;
};

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j, const std::string& where) {
  const std::string b = j.get<std::string>();
  if (b == "Removed") return Behavior::Removed;
  if (b == "Isolated") return Behavior::Isolated;
  if (b == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::MergedWithNext;
  if (b == "Contiguous") return Behavior::Contiguous;
  fail(where, "unsupported split behavior '" + b + "'");
}

// Splits `p` around `matches` the way HF's NormalizedString::split treats each behavior.
void split_piece(const Piece& p, const std::vector<Range>& matches, Behavior behavior, bool invert,
                 std::vector<Piece>& out) {
  std::vector<std::pair<Range, bool>> parts;  // the whole text, as alternating (range, is_match)
  size_t prev = 0;
  for (const Range& m : matches) {
    if (prev < m.first) parts.push_back({{prev, m.first}, invert});
    parts.push_back({m, !invert});
    prev = m.second;
  }
  if (prev < p.text.size()) parts.push_back({{prev, p.text.size()}, invert});

  std::vector<Range> pieces;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::Removed:
      for (const auto& [r, is_match] : parts)
        if (!is_match) pieces.push_back(r);
      break;
    case Behavior::Isolated:
      for (const auto& part : parts) pieces.push_back(part.first);
      break;
    case Behavior::MergedWithPrevious:
      for (const auto& [r, is_match] : parts) {
        if (is_match && !previous_match && !pieces.empty()) pieces.back().second = r.second;
        else pieces.push_back(r);
        previous_match = is_match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->second && !previous_match && !pieces.empty()) pieces.back().first = it->first.first;
        else pieces.push_back(it->first);
        previous_match = it->second;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
    case Behavior::Contiguous:
      for (const auto& [r, is_match] : parts) {
        if (is_match == previous_match && !pieces.empty()) pieces.back().second = r.second;
        else pieces.push_back(r);
        previous_match = is_match;
      }
      break;
  }
  for (const Range& r : pieces)
    if (r.second > r.first) out.push_back({p.text.substr(r.first, r.second - r.first), p.at_start && r.first == 0});
}

// Each character for which `pred` holds is one match.
std::vector<Range> char_matches(const std::string& s, const std::function<bool(int32_t)>& pred) {
  std::vector<Range> out;
  for (size_t i = 0; i < s.size();) {
    const auto [cp, n] = next_char(s, i);
    if (pred(cp)) out.emplace_back(i, i + n);
    i += n;
  }
  return out;
}

using PreTokenizer = std::function<void(std::vector<Piece>&)>;
using Normalizer = std::function<std::string(const std::string&)>;
using Decoder = std::function<void(std::vector<std::string>&)>;

PreTokenizer split_each(std::function<void(const Piece&, std::vector<Piece>&)> f) {
  return [f](std::vector<Piece>& pieces) {
    std::vector<Piece> out;
    for (const Piece& p : pieces) f(p, out);
    pieces = std::move(out);
  };
}

const char* const kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

std::string json_type(const json& j) { return j.value("type", std::string("(no type)")); }

PreTokenizer make_pre_tokenizer(const json& j, const std::string& where) {
  const std::string type = json_type(j);
  if (type == "Sequence") {
    std::vector<PreTokenizer> steps;
    for (const json& s : j.at("pretokenizers")) steps.push_back(make_pre_tokenizer(s, where));
    return [steps](std::vector<Piece>& pieces) {
      for (const auto& step : steps) step(pieces);
    };
  }
  if (type == "ByteLevel") {
    const bool add_prefix_space = j.value("add_prefix_space", true);
    const auto regex = j.value("use_regex", true) ? std::make_shared<Regex>(kGpt2Regex, where) : nullptr;
    return split_each([=](const Piece& p, std::vector<Piece>& out) {
      Piece spaced = p;
      if (add_prefix_space && (spaced.text.empty() || spaced.text[0] != ' ')) spaced.text.insert(0, " ");
      std::vector<Piece> parts;
      if (regex) split_piece(spaced, regex->find_all(spaced.text), Behavior::Isolated, false, parts);
      else parts.push_back(spaced);
      for (Piece& part : parts) {
        std::string mapped;
        for (const char c : part.text) mapped += byte_level().byte_char[static_cast<unsigned char>(c)];
        out.push_back({std::move(mapped), part.at_start});
      }
    });
  }
  if (type == "Split") {
    const auto pattern = std::make_shared<Pattern>(j.at("pattern"), where);
    const Behavior behavior = parse_behavior(j.at("behavior"), where);
    const bool invert = j.value("invert", false);
    return split_each([=](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, pattern->find_all(p.text), behavior, invert, out);
    });
  }
  if (type == "Digits") {
    const Behavior behavior = j.value("individual_digits", false) ? Behavior::Isolated : Behavior::Contiguous;
    return split_each([=](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, char_matches(p.text, [](int32_t c) { return c >= '0' && c <= '9'; }), behavior, false, out);
    });
  }
  if (type == "Punctuation") {
    const Behavior behavior = j.contains("behavior") ? parse_behavior(j.at("behavior"), where) : Behavior::Isolated;
    return split_each([=](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, char_matches(p.text, is_punctuation), behavior, false, out);
    });
  }
  if (type == "Metaspace") {
    const std::string replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    std::string scheme = j.value("prepend_scheme", std::string(j.value("add_prefix_space", true) ? "always" : "never"));
    if (scheme != "always" && scheme != "first" && scheme != "never")
      fail(where, "unsupported Metaspace prepend_scheme '" + scheme + "'");
    const bool split = j.value("split", true);
    return split_each([=](const Piece& p, std::vector<Piece>& out) {
      Piece q{"", p.at_start};
      for (const char c : p.text) q.text += c == ' ' ? replacement : std::string(1, c);
      const bool prepend = scheme == "always" || (scheme == "first" && p.at_start);
      if (prepend && q.text.compare(0, replacement.size(), replacement) != 0) q.text.insert(0, replacement);
      if (!split) {
        if (!q.text.empty()) out.push_back(std::move(q));
        return;
      }
      std::vector<Range> matches;
      for (size_t at = q.text.find(replacement); at != std::string::npos; at = q.text.find(replacement, at + 1))
        matches.emplace_back(at, at + replacement.size());
      split_piece(q, matches, Behavior::MergedWithNext, false, out);
    });
  }
  fail(where, "unsupported pre_tokenizer type '" + type + "'");
}

// ---- normalizers ------------------------------------------------------------------------------

Normalizer unicode_form(utf8proc_option_t options) {
  return [options](const std::string& s) {
    utf8proc_uint8_t* dst = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                                &dst, static_cast<utf8proc_option_t>(options | UTF8PROC_STABLE));
    if (n < 0) fail("normalizer", std::string("Unicode normalization failed: ") + utf8proc_errmsg(n));
    std::string out(reinterpret_cast<char*>(dst), static_cast<size_t>(n));
    std::free(dst);
    return out;
  };
}

Normalizer make_normalizer(const json& j, const std::string& where) {
  const std::string type = json_type(j);
  if (type == "Sequence") {
    std::vector<Normalizer> steps;
    for (const json& s : j.at("normalizers")) steps.push_back(make_normalizer(s, where));
    return [steps](const std::string& s) {
      std::string out = s;
      for (const auto& step : steps) out = step(out);
      return out;
    };
  }
  if (type == "NFC") return unicode_form(UTF8PROC_COMPOSE);
  if (type == "NFD") return unicode_form(UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return unicode_form(static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD") return unicode_form(static_cast<utf8proc_option_t>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Prepend") {
    const std::string prepend = j.at("prepend").get<std::string>();
    return [prepend](const std::string& s) { return s.empty() ? s : prepend + s; };
  }
  if (type == "Replace") {
    const auto pattern = std::make_shared<Pattern>(j.at("pattern"), where);
    const std::string content = j.at("content").get<std::string>();
    return [pattern, content](const std::string& s) { return pattern->replace_all(s, content); };
  }
  fail(where, "unsupported normalizer type '" + type + "'");
}

// ---- decoders ---------------------------------------------------------------------------------

// The byte of a "<0xXX>" byte-fallback token, or -1.
int fallback_byte(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  const auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

Decoder make_decoder(const json& j, const std::string& where) {
  const std::string type = json_type(j);
  if (type == "Sequence") {
    std::vector<Decoder> steps;
    for (const json& s : j.at("decoders")) steps.push_back(make_decoder(s, where));
    return [steps](std::vector<std::string>& tokens) {
      for (const auto& step : steps) step(tokens);
    };
  }
  if (type == "ByteLevel") {
    return [](std::vector<std::string>& tokens) {
      std::string bytes;
      for (const std::string& t : tokens) {
        // A token with a character outside the byte table (an added token) stands for itself.
        std::string mapped;
        bool all_mapped = true;
        for (size_t i = 0; i < t.size() && all_mapped;) {
          const auto [cp, n] = next_char(t, i);
          const auto it = byte_level().char_byte.find(cp);
          if (it == byte_level().char_byte.end()) all_mapped = false;
          else mapped += static_cast<char>(it->second);
          i += n;
        }
        bytes += all_mapped ? mapped : t;
      }
      tokens = {utf8_lossy(bytes)};
    };
  }
  if (type == "Replace") {
    const auto pattern = std::make_shared<Pattern>(j.at("pattern"), where);
    const std::string content = j.at("content").get<std::string>();
    return [pattern, content](std::vector<std::string>& tokens) {
      for (std::string& t : tokens) t = pattern->replace_all(t, content);
    };
  }
  if (type == "ByteFallback") {
    return [](std::vector<std::string>& tokens) {
      std::vector<std::string> out;
      std::string bytes;
      const auto flush = [&] {
        if (bytes.empty()) return;
        if (valid_utf8(bytes)) out.push_back(bytes);
        else
          for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
        bytes.clear();
      };
      for (const std::string& t : tokens) {
        const int b = fallback_byte(t);
        if (b >= 0) {
          bytes += static_cast<char>(b);
        } else {
          flush();
          out.push_back(t);
        }
      }
      flush();
      tokens = std::move(out);
    };
  }
  if (type == "Fuse") {
    return [](std::vector<std::string>& tokens) {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens = {all};
    };
  }
  if (type == "Strip") {
    const std::string content = j.at("content").get<std::string>();
    const size_t start = j.value("start", 0), stop = j.value("stop", 0);
    return [content, start, stop](std::vector<std::string>& tokens) {
      for (std::string& t : tokens) {
        size_t s = 0, e = t.size();
        for (size_t k = 0; k < start && t.compare(s, content.size(), content) == 0; ++k) s += content.size();
        for (size_t k = 0; k < stop && e >= s + content.size() && t.compare(e - content.size(), content.size(), content) == 0; ++k)
          e -= content.size();
        t = t.substr(s, e - s);
      }
    };
  }
  if (type == "Metaspace") {
    const std::string replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    const bool strip_first = j.value("prepend_scheme", std::string(j.value("add_prefix_space", true) ? "always" : "never")) != "never";
    return [replacement, strip_first](std::vector<std::string>& tokens) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string out;
        for (size_t at = 0; at < tokens[i].size();) {
          if (tokens[i].compare(at, replacement.size(), replacement) == 0) {
            out += ' ';
            at += replacement.size();
          } else {
            out += tokens[i][at++];
          }
        }
        if (i == 0 && strip_first && !out.empty() && out[0] == ' ') out.erase(0, 1);
        tokens[i] = std::move(out);
      }
    };
  }
  fail(where, "unsupported decoder type '" + type + "'");
}

// ---- BPE ---------------------------------------------------------------------------------------

struct Bpe {
  std::unordered_map<std::string, int> vocab;
  std::unordered_map<uint64_t, std::pair<int, int>> merges;  // (left id, right id) -> (rank, merged id)
  int unk = -1;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;

  static uint64_t key(int a, int b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

  void load(const json& m, const std::string& where) {
    const std::string type = json_type(m);
    if (type != "BPE") fail(where, "unsupported model type '" + type + "'");
    if (!m.value("dropout", json()).is_null()) fail(where, "unsupported BPE feature 'dropout'");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (m.contains(affix) && m[affix].is_string() && !m[affix].get<std::string>().empty())
        fail(where, std::string("unsupported BPE feature '") + affix + "'");
    for (const auto& [token, id] : m.at("vocab").items())
      vocab[token] = read_token_id(id, where, "model.vocab[\"" + token + "\"]");
    fuse_unk = m.value("fuse_unk", false);
    byte_fallback = m.value("byte_fallback", false);
    ignore_merges = m.value("ignore_merges", false);
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      const auto it = vocab.find(m["unk_token"].get<std::string>());
      if (it == vocab.end()) fail(where, "unk_token '" + m["unk_token"].get<std::string>() + "' is not in the vocab");
      unk = it->second;
    }
    int rank = 0;
    for (const json& merge : m.at("merges")) {
      std::string left, right;
      if (merge.is_array()) {
        if (merge.size() != 2) fail(where, "merge " + merge.dump() + " is not two tokens");
        left = json_as<std::string>(merge[0], where, "model.merges[" + std::to_string(rank) + "][0]");
        right = json_as<std::string>(merge[1], where, "model.merges[" + std::to_string(rank) + "][1]");
      } else {
        const std::string s = json_as<std::string>(merge, where, "model.merges[" + std::to_string(rank) + "]");
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos) fail(where, "merge '" + s + "' is not two tokens");
        left = s.substr(0, space);
        right = s.substr(space + 1);
      }
      const auto a = vocab.find(left), b = vocab.find(right), ab = vocab.find(left + right);
      if (a == vocab.end() || b == vocab.end() || ab == vocab.end())
        fail(where, "merge '" + left + " " + right + "' uses a token that is not in the vocab");
      merges.emplace(key(a->second, b->second), std::make_pair(rank++, ab->second));
    }
  }

  // HF's BPE::merge_word + Word::merge_all: characters (or byte-fallback / unk tokens), then the
  // lowest-ranked merge first, leftmost among equals.
  void encode_word(const std::string& word, std::vector<int>& out) const {
    if (ignore_merges) {
      const auto it = vocab.find(word);
      if (it != vocab.end()) {
        out.push_back(it->second);
        return;
      }
    }
    std::vector<int> ids;
    int pending_unk = -1;
    for (size_t i = 0; i < word.size();) {
      const size_t n = next_char(word, i).second;
      const std::string c = word.substr(i, n);
      i += n;
      const auto it = vocab.find(c);
      if (it != vocab.end()) {
        if (pending_unk >= 0) ids.push_back(pending_unk);
        pending_unk = -1;
        ids.push_back(it->second);
        continue;
      }
      if (byte_fallback) {
        std::vector<int> bytes;
        for (const char b : c) {
          char name[8];
          std::snprintf(name, sizeof name, "<0x%02X>", static_cast<unsigned char>(b));
          const auto bt = vocab.find(name);
          if (bt == vocab.end()) break;
          bytes.push_back(bt->second);
        }
        if (bytes.size() == c.size()) {
          ids.insert(ids.end(), bytes.begin(), bytes.end());
          continue;
        }
      }
      if (unk >= 0) {
        if (pending_unk >= 0 && !fuse_unk) ids.push_back(pending_unk);
        pending_unk = unk;
      }
    }
    if (pending_unk >= 0) ids.push_back(pending_unk);

    struct Symbol {
      int id, prev, next;
      bool removed;
    };
    std::vector<Symbol> sym(ids.size());
    for (size_t k = 0; k < ids.size(); ++k)
      sym[k] = {ids[k], static_cast<int>(k) - 1, k + 1 < ids.size() ? static_cast<int>(k) + 1 : -1, false};
    struct Candidate {
      int rank, pos, merged;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    const auto push = [&](int pos) {
      if (pos < 0 || sym[pos].next < 0) return;
      const auto m = merges.find(key(sym[pos].id, sym[sym[pos].next].id));
      if (m != merges.end()) queue.push({m->second.first, pos, m->second.second});
    };
    for (size_t k = 0; k + 1 < ids.size(); ++k) push(static_cast<int>(k));
    while (!queue.empty()) {
      const Candidate top = queue.top();
      queue.pop();
      Symbol& left = sym[top.pos];
      if (left.removed || left.next < 0) continue;
      const auto m = merges.find(key(left.id, sym[left.next].id));
      if (m == merges.end() || m->second.second != top.merged) continue;  // stale: a neighbour changed
      Symbol& right = sym[left.next];
      right.removed = true;
      left.id = top.merged;
      left.next = right.next;
      if (right.next >= 0) sym[right.next].prev = top.pos;
      push(left.prev);
      push(top.pos);
    }
    for (const Symbol& s : sym)
      if (!s.removed) out.push_back(s.id);
  }
};

// ---- added tokens -----------------------------------------------------------------------------

struct AddedToken {
  int id = -1;
  std::string content;  // as matched and decoded: a normalized token holds its normalized form
  bool special = false, lstrip = false, rstrip = false;
};

// Leftmost-longest matching of a set of added tokens, then lstrip/rstrip widening as HF's
// AddedVocabulary::find_matches does.
class AddedMatcher {
 public:
  void add(const AddedToken& t) {
    if (t.content.empty()) return;
    auto& bucket = by_first_byte_[static_cast<unsigned char>(t.content[0])];
    bucket.push_back(t);
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  }
  // (range, id) of each match in `s`, in order.
  std::vector<std::pair<Range, int>> find(const std::string& s) const {
    std::vector<std::pair<Range, int>> out;
    size_t start_offset = 0;
    for (size_t i = 0; i < s.size();) {
      const auto& bucket = by_first_byte_[static_cast<unsigned char>(s[i])];
      const AddedToken* hit = nullptr;
      for (const AddedToken& t : bucket)
        if (s.compare(i, t.content.size(), t.content) == 0) {
          hit = &t;
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      size_t start = i, stop = i + hit->content.size();
      i = stop;
      if (hit->lstrip) {
        size_t k = start;
        while (k > start_offset) {
          size_t b = k - 1;
          while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
          if (!is_whitespace(next_char(s, b).first)) break;
          k = b;
        }
        start = k;
      }
      if (hit->rstrip)
        while (stop < s.size() && is_whitespace(next_char(s, stop).first)) stop += next_char(s, stop).second;
      out.push_back({{start, stop}, hit->id});
      start_offset = stop;
      i = std::max(i, stop);
    }
    return out;
  }
 private:
  std::vector<AddedToken> by_first_byte_[256];
};

}  // namespace

// ---- the tokenizer ----------------------------------------------------------------------------

struct HfTokenizer::Impl {
  std::string path;
  Bpe bpe;
  Normalizer normalizer;      // empty: none
  PreTokenizer pre_tokenizer; // empty: none (the whole piece is one word)
  Decoder decoder;            // empty: tokens joined with spaces, as HF does
  AddedMatcher raw_added, normalized_added;
  std::unordered_map<int, AddedToken> added_by_id;
  std::unordered_set<std::string> special_contents;  // as written in the file, before normalization
  std::vector<std::string> id_to_token;
  std::vector<int> prefix, suffix;  // the post-processor's special tokens around one sequence
  int vocab_size = 0;

  int token_id(const std::string& token) const {
    for (const auto& [id, t] : added_by_id)
      if (t.content == token) return id;
    const auto it = bpe.vocab.find(token);
    return it == bpe.vocab.end() ? -1 : it->second;
  }

  void load_post_processor(const json& j) {
    const std::string type = json_type(j);
    if (type == "Sequence") {
      for (const json& p : j.at("processors")) load_post_processor(p);
    } else if (type == "TemplateProcessing") {
      std::vector<int> before, after;
      bool seen_a = false;
      for (const json& item : j.at("single")) {
        if (item.contains("Sequence")) {
          seen_a = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        const json& special = j.at("special_tokens").at(name);
        for (const json& id : special.at("ids"))
          (seen_a ? after : before).push_back(read_token_id(id, path, "post_processor.special_tokens[\"" + name + "\"].ids"));
      }
      prefix.insert(prefix.begin(), before.begin(), before.end());
      suffix.insert(suffix.end(), after.begin(), after.end());
    } else if (type != "ByteLevel") {  // ByteLevel only adjusts offsets
      fail(path, "unsupported post_processor type '" + type + "'");
    }
  }

  // transformers' Llama tokenizers rebuild the template from add_bos_token / add_eos_token.
  void apply_config(const std::string& config_path) {
    if (!file_exists(config_path)) return;
    const json config = read_json_file(config_path);
    const auto token_of = [&](const char* key) {
      const json& t = config.value(key, json());
      const std::string content = t.is_object() ? t.value("content", "") : t.is_string() ? t.get<std::string>() : "";
      const int id = content.empty() ? -1 : token_id(content);
      if (id < 0) fail(config_path, std::string(key) + " '" + content + "' is not a token of " + path);
      return id;
    };
    if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
      prefix = config["add_bos_token"].get<bool>() ? std::vector<int>{token_of("bos_token")} : std::vector<int>{};
    if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
      suffix = config["add_eos_token"].get<bool>() ? std::vector<int>{token_of("eos_token")} : std::vector<int>{};
  }

  void encode_plain(const std::string& piece, bool at_start, std::vector<int>& out) const {
    std::vector<Piece> words{{piece, at_start}};
    if (pre_tokenizer) pre_tokenizer(words);
    for (const Piece& w : words) bpe.encode_word(w.text, out);
  }

  // Normalizes a piece between raw added tokens, then splits out the normalized added tokens.
  void encode_normalized(const std::string& raw, bool at_start, std::vector<int>& out) const {
    const std::string text = normalizer ? normalizer(raw) : raw;
    size_t prev = 0;
    for (const auto& [r, id] : normalized_added.find(text)) {
      if (r.first > prev) encode_plain(text.substr(prev, r.first - prev), at_start && prev == 0, out);
      out.push_back(id);
      prev = r.second;
    }
    if (prev < text.size()) encode_plain(text.substr(prev), at_start && prev == 0, out);
  }

  std::vector<int> encode(const std::string& text) const {
    if (!valid_utf8(text)) fail(path, "text to encode is not valid UTF-8");
    std::vector<int> out;
    size_t prev = 0;
    for (const auto& [r, id] : raw_added.find(text)) {
      if (r.first > prev) encode_normalized(text.substr(prev, r.first - prev), prev == 0, out);
      out.push_back(id);
      prev = r.second;
    }
    if (prev < text.size()) encode_normalized(text.substr(prev), prev == 0, out);
    return out;
  }
};

HfTokenizer::HfTokenizer(const std::string& json_path) : Tokenizer(json_path), impl_(std::make_unique<Impl>()) {
  try {
    load(json_path);
  } catch (const nlohmann::json::exception& e) {  // a missing or mistyped field
    fail(json_path, std::string("malformed tokenizer.json: ") + e.what());
  }
}

void HfTokenizer::load(const std::string& json_path) {
  Impl& t = *impl_;
  t.path = json_path;
  const json j = read_json_file(json_path);
  if (!j.contains("model")) fail(json_path, "not a tokenizer.json: no \"model\"");
  t.bpe.load(j.at("model"), json_path);
  if (j.contains("normalizer") && !j["normalizer"].is_null()) t.normalizer = make_normalizer(j["normalizer"], json_path);
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null())
    t.pre_tokenizer = make_pre_tokenizer(j["pre_tokenizer"], json_path);
  if (j.contains("decoder") && !j["decoder"].is_null()) t.decoder = make_decoder(j["decoder"], json_path);
  for (const char* unsupported : {"truncation", "padding"})
    if (j.contains(unsupported) && !j[unsupported].is_null()) fail(json_path, std::string("unsupported feature '") + unsupported + "'");

  for (const auto& [token, id] : t.bpe.vocab) t.vocab_size = std::max(t.vocab_size, id + 1);
  for (const json& a : j.value("added_tokens", json::array())) {
    AddedToken token;
    token.id = read_token_id(a.at("id"), json_path, "added_tokens[].id");
    token.content = json_field<std::string>(a, json_path + ": added_tokens[" + std::to_string(token.id) + "]", "content");
    token.special = a.value("special", false);
    token.lstrip = a.value("lstrip", false);
    token.rstrip = a.value("rstrip", false);
    if (a.value("single_word", false)) fail(json_path, "unsupported added token feature 'single_word' ('" + token.content + "')");
    if (token.special) t.special_contents.insert(token.content);
    // HF matches a normalized token by its normalized content and decodes it to that form too, so
    // skip_special_tokens keeps it when normalization changed it (Llama-2's "<s>" -> "▁<s>").
    const bool normalized = a.value("normalized", !token.special);
    if (normalized && t.normalizer) token.content = t.normalizer(token.content);
    (normalized ? t.normalized_added : t.raw_added).add(token);
    t.added_by_id[token.id] = token;
    t.vocab_size = std::max(t.vocab_size, token.id + 1);
  }
  t.id_to_token.resize(static_cast<size_t>(t.vocab_size));
  for (const auto& [token, id] : t.bpe.vocab) t.id_to_token[static_cast<size_t>(id)] = token;

  if (j.contains("post_processor") && !j["post_processor"].is_null()) t.load_post_processor(j["post_processor"]);
  const size_t slash = json_path.find_last_of('/');
  t.apply_config((slash == std::string::npos ? std::string(".") : json_path.substr(0, slash)) + "/tokenizer_config.json");
}

HfTokenizer::~HfTokenizer() = default;

std::vector<int> HfTokenizer::encode(const std::string& text) const { return impl_->encode(text); }

std::vector<int> HfTokenizer::encode_with_special_tokens(const std::string& text) const {
  std::vector<int> ids = impl_->prefix;
  const std::vector<int> body = impl_->encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), impl_->suffix.begin(), impl_->suffix.end());
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  for (const int id : ids) {
    const auto added = impl_->added_by_id.find(id);
    if (added != impl_->added_by_id.end()) {
      if (!skip_special_tokens || !impl_->special_contents.count(added->second.content))
        tokens.push_back(added->second.content);
      continue;
    }
    if (id < 0 || id >= impl_->vocab_size || impl_->id_to_token[static_cast<size_t>(id)].empty())
      fail(path(), "token id " + std::to_string(id) + " is not in the vocabulary");
    tokens.push_back(impl_->id_to_token[static_cast<size_t>(id)]);
  }
  if (!impl_->decoder) {
    std::string text;
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
    return text;
  }
  impl_->decoder(tokens);
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

int HfTokenizer::vocab_size() const { return impl_->vocab_size; }

int HfTokenizer::bos_id() const { return impl_->prefix.empty() ? -1 : impl_->prefix.front(); }

void HfTokenizer::require_vocab_size(int model_vocab_size) const {
  if (vocab_size() > model_vocab_size)
    fail(path(), "vocab size " + std::to_string(vocab_size()) + " exceeds the model's vocab_size " +
                     std::to_string(model_vocab_size));
}

}  // namespace qb
