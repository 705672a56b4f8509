#pragma once
// SentencePiece tokenization (libsentencepiece); the model file is the HF/llama2.c tokenizer.model.
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace qb {

class Tokenizer {
 public:
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  // Token ids of `text`, with no BOS/EOS added (callers place BOS as their protocol says).
  std::vector<int> encode(const std::string& text) const;
  int vocab_size() const;
  int bos_id() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace qb
