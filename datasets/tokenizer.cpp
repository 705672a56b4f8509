#include "datasets/tokenizer.h"

#include <sentencepiece_processor.h>

#include <fstream>

#include "common/error.h"
#include "common/files.h"
#include "datasets/hf_tokenizer.h"

namespace qb {

namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path) : Tokenizer(model_path) {
    const auto status = sp_.Load(model_path);
    if (!status.ok()) fail(model_path, "not a sentencepiece model: " + status.ToString());
  }
  std::vector<int> encode(const std::string& text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) fail(path(), "encoding failed: " + status.ToString());
    return ids;
  }
  std::vector<int> encode_with_special_tokens(const std::string& text) const override {
    std::vector<int> ids = encode(text);
    if (bos_id() >= 0) ids.insert(ids.begin(), bos_id());
    return ids;
  }
  std::string decode(const std::vector<int>& ids) const override {
    std::string text;
    const auto status = sp_.Decode(ids, &text);
    if (!status.ok()) fail(path(), "decoding failed: " + status.ToString());
    return text;
  }
  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  std::vector<std::string> pieces() const override {
    std::vector<std::string> out;
    for (int i = 0; i < sp_.GetPieceSize(); ++i) out.push_back(sp_.IdToPiece(i));
    return out;
  }
  std::string kind() const override { return "sentencepiece"; }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A SentencePiece model is a protobuf, whose first byte is never '{'.
bool looks_like_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c) && (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
  }
  return c == '{';
}

}  // namespace

void Tokenizer::require_vocab_size(int model_vocab_size) const {
  if (vocab_size() != model_vocab_size)
    fail(path_, "vocab size " + std::to_string(vocab_size()) + " does not match the model's vocab_size " +
                    std::to_string(model_vocab_size));
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path) {
  if (!file_exists(path)) fail(path, "tokenizer model not found");
  if (ends_with(path, ".json") || looks_like_json(path)) return std::make_unique<HfTokenizer>(path);
  return std::make_unique<SentencePieceTokenizer>(path);
}

std::string tokenizer_beside(const std::string& model_path, int vocab_size) {
  const size_t slash = model_path.find_last_of('/');
  const std::string dir = is_directory(model_path) ? model_path
                          : slash == std::string::npos ? "."
                                                       : model_path.substr(0, slash);
  for (const std::string& name : {std::string("tokenizer.json"), std::string("tokenizer.model"),
                                  "tok" + std::to_string(vocab_size) + ".model"})
    if (file_exists(dir + "/" + name)) return dir + "/" + name;
  return "";
}

}  // namespace qb
