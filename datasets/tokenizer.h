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
  // Throws, naming this tokenizer's file, when its vocabulary differs from the model's.
  void require_vocab_size(int model_vocab_size) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

// The tokenizer that belongs beside a model: tokenizer.model in the model's directory (or beside
// a llama2.c .bin), else tok<vocab_size>.model (llama2.c's naming); "" when there is none.
std::string tokenizer_beside(const std::string& model_path, int vocab_size);

}  // namespace qb
