#include "datasets/llama_spm_tokenizer.h"

#include <algorithm>
#include <map>
#include <queue>

#include "common/error.h"

namespace qb {
namespace {

const std::string kSpaceMark = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space

// Bytes of the UTF-8 character starting with `lead`, from its top four bits alone (a continuation
// byte counts as a character of one byte), as llama.cpp's unicode_len_utf8.
size_t utf8_len(unsigned char lead) {
  static constexpr size_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to) {
  std::string out;
  out.reserve(s.size());
  size_t begin = 0;
  for (size_t at; (at = s.find(from, begin)) != std::string::npos; begin = at + from.size()) {
    out.append(s, begin, at - begin);
    out += to;
  }
  out.append(s, begin, std::string::npos);
  return out;
}

// The id of a vocabulary text, -1 when it is no token (llama.cpp's text_to_token).
int find_token(const std::unordered_map<std::string, int>& ids, const std::string& text) {
  const auto it = ids.find(text);
  return it == ids.end() ? -1 : it->second;
}

// One symbol of the text being merged: a byte range, linked to its live neighbours.
struct Symbol {
  int prev, next;
  size_t offset, size;  // size 0: merged into its left neighbour
};

// A candidate merge of two adjacent symbols. The queue pops the highest score first and, between
// equal scores, the smaller left index (llm_bigram_spm::comparator).
struct Bigram {
  int left, right;
  float score;
  size_t size;  // bytes of the merged text, to detect candidates made stale by other merges
};
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

// llama.cpp's tokenizer state for one text piece.
class MergeSession {
 public:
  MergeSession(const std::string& text, const std::vector<float>& scores,
               const std::unordered_map<std::string, int>& ids)
      : text_(text), scores_(scores), ids_(ids) {}

  // Merges until no candidate is left; returns the final symbols' indices, left to right.
  std::vector<int> merge() {
    for (size_t offset = 0; offset < text_.size();) {
      const size_t size = std::min(utf8_len(static_cast<unsigned char>(text_[offset])), text_.size() - offset);
      const int index = static_cast<int>(symbols_.size());
      symbols_.push_back({index - 1, offset + size == text_.size() ? -1 : index + 1, offset, size});
      offset += size;
    }
    for (int i = 1; i < static_cast<int>(symbols_.size()); ++i) try_add(i - 1, i);
    while (!queue_.empty()) {
      const Bigram b = queue_.top();
      queue_.pop();
      Symbol& left = symbols_[b.left];
      Symbol& right = symbols_[b.right];
      if (left.size == 0 || right.size == 0 || left.size + right.size != b.size) continue;
      left.size += right.size;
      right.size = 0;
      left.next = right.next;
      if (right.next >= 0) symbols_[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }
    std::vector<int> final_symbols;
    if (!symbols_.empty())
      for (int i = 0; i != -1; i = symbols_[i].next) final_symbols.push_back(i);
    return final_symbols;
  }

  // The symbol's token, else its two halves (the last merge recorded for its text), recursively;
  // text that is no token and no merge comes back as bytes (byte_token).
  template <class ByteToken>
  void resegment(int index, std::vector<int>& out, const ByteToken& byte_token) const {
    const Symbol& s = symbols_[index];
    const std::string piece = text_.substr(s.offset, s.size);
    const int id = find_token(ids_, piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
    const auto merge = merges_.find(piece);
    if (merge == merges_.end()) {
      for (char c : piece) out.push_back(byte_token(static_cast<unsigned char>(c)));
      return;
    }
    resegment(merge->second.first, out, byte_token);
    resegment(merge->second.second, out, byte_token);
  }

 private:
  void try_add(int left, int right) {
    if (left == -1 || right == -1) return;
    const std::string piece = text_.substr(symbols_[left].offset, symbols_[left].size + symbols_[right].size);
    const int id = find_token(ids_, piece);
    if (id < 0) return;
    queue_.push({left, right, scores_[id], piece.size()});
    merges_[piece] = {left, right};  // the latest pair wins, as llama.cpp's rev_merge
  }

  const std::string& text_;
  const std::vector<float>& scores_;
  const std::unordered_map<std::string, int>& ids_;
  std::vector<Symbol> symbols_;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue_;
  std::map<std::string, std::pair<int, int>> merges_;
};

}  // namespace

LlamaSpmTokenizer::LlamaSpmTokenizer(LlamaVocab vocab) : Tokenizer(vocab.source), vocab_(std::move(vocab)) {
  const size_t n = vocab_.tokens.size();
  if (n == 0) fail(path(), "tokenizer.ggml.tokens is empty");
  if (vocab_.scores.size() != n)
    fail(path(), "tokenizer.ggml.scores has " + std::to_string(vocab_.scores.size()) + " entries for " +
                     std::to_string(n) + " tokens");
  if (vocab_.token_types.size() != n)
    fail(path(), "tokenizer.ggml.token_type has " + std::to_string(vocab_.token_types.size()) + " entries for " +
                     std::to_string(n) + " tokens");
  for (const auto& [name, id] : {std::pair<const char*, int>{"bos_token_id", vocab_.bos_id},
                                 {"eos_token_id", vocab_.eos_id}, {"unknown_token_id", vocab_.unk_id}})
    if (id >= static_cast<int>(n)) fail(path(), std::string("tokenizer.ggml.") + name + " " + std::to_string(id) + " is outside the vocabulary");
  if (vocab_.add_bos && vocab_.bos_id < 0) fail(path(), "tokenizer.ggml.add_bos_token is set but there is no bos_token_id");
  for (size_t i = 0; i < n; ++i) {
    ids_[vocab_.tokens[i]] = static_cast<int>(i);
    if (vocab_.token_types[i] == LlamaVocab::UserDefined && !vocab_.tokens[i].empty())
      user_defined_.push_back(static_cast<int>(i));
  }
  std::stable_sort(user_defined_.begin(), user_defined_.end(),
                   [this](int a, int b) { return vocab_.tokens[a].size() > vocab_.tokens[b].size(); });
}

int LlamaSpmTokenizer::find(const std::string& text) const { return find_token(ids_, text); }

int LlamaSpmTokenizer::byte_token(unsigned char byte) const {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const std::string name = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
  int id = find(name);
  if (id < 0) id = find(std::string(1, static_cast<char>(byte)));
  if (id < 0) fail(path(), "no token for byte " + name + " (neither a byte token nor the byte itself)");
  return id;
}

void LlamaSpmTokenizer::encode_piece(const std::string& escaped, std::vector<int>& out) const {
  MergeSession session(escaped, vocab_.scores, ids_);
  for (int index : session.merge())
    session.resegment(index, out, [this](unsigned char b) { return byte_token(b); });
}

std::vector<int> LlamaSpmTokenizer::encode(const std::string& text) const {
  // Split out user-defined tokens (longest first), leaving text fragments between them.
  struct Fragment {
    int token;  // -1: text
    std::string text;
  };
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, text});
  for (int special : user_defined_) {
    const std::string& needle = vocab_.tokens[special];
    std::vector<Fragment> next;
    for (Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(std::move(f));
        continue;
      }
      size_t begin = 0;
      for (size_t at; (at = f.text.find(needle, begin)) != std::string::npos; begin = at + needle.size()) {
        if (at > begin) next.push_back({-1, f.text.substr(begin, at - begin)});
        next.push_back({special, ""});
      }
      if (begin < f.text.size()) next.push_back({-1, f.text.substr(begin)});
    }
    fragments = std::move(next);
  }

  std::vector<int> ids;
  bool after_special = true;  // the text's start counts as following a special token
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      ids.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string piece = (vocab_.add_space_prefix && after_special ? " " : "") + f.text;
    encode_piece(replace_all(piece, " ", kSpaceMark), ids);
    after_special = false;
  }
  return ids;
}

std::vector<int> LlamaSpmTokenizer::encode_with_special_tokens(const std::string& text) const {
  std::vector<int> ids = encode(text);
  if (vocab_.add_bos) ids.insert(ids.begin(), vocab_.bos_id);
  return ids;
}

std::string LlamaSpmTokenizer::decode(const std::vector<int>& ids) const {
  std::string text;
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) fail(path(), "token id " + std::to_string(id) + " outside the vocabulary");
    const std::string& piece = vocab_.tokens[id];
    if (vocab_.token_types[id] == LlamaVocab::Byte && piece.size() == 6 && piece.compare(0, 3, "<0x") == 0)
      text += static_cast<char>(std::stoi(piece.substr(3, 2), nullptr, 16));
    else
      text += replace_all(piece, kSpaceMark, " ");
  }
  if (vocab_.add_space_prefix && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

}  // namespace qb
