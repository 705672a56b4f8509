#pragma once
// Tokenizers: a SentencePiece tokenizer.model (libsentencepiece) or a Hugging Face tokenizer.json
// (datasets/hf_tokenizer.h), behind one interface.
#include <memory>
#include <string>
#include <vector>

namespace qb {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`, with no BOS/EOS added (callers place BOS as their protocol says).
  virtual std::vector<int> encode(const std::string& text) const = 0;
  // Token ids as the family adds special tokens around a text (HF add_special_tokens=True: the
  // post-processor's template; SentencePiece: BOS first).
  virtual std::vector<int> encode_with_special_tokens(const std::string& text) const = 0;
  // The text of `ids`, special tokens included.
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  virtual int vocab_size() const = 0;
  // The token the family puts first in a sequence; -1 when it adds none (e.g. Qwen2).
  virtual int bos_id() const = 0;
  // Throws, naming this tokenizer's file, when its vocabulary differs from the model's.
  virtual void require_vocab_size(int model_vocab_size) const;
  // The pieces by id as the file stores them (SentencePiece: U+2581 for a space), or empty when
  // this tokenizer does not list them; for comparing vocabularies.
  virtual std::vector<std::string> pieces() const { return {}; }
  // Which implementation encodes, for run documents: "sentencepiece", "hf tokenizer.json",
  // "llama.cpp-spm (gguf vocab)".
  virtual std::string kind() const = 0;
  const std::string& path() const { return path_; }

 protected:
  explicit Tokenizer(std::string path) : path_(std::move(path)) {}

 private:
  std::string path_;
};

// The tokenizer in `path`: a tokenizer.json (name ends in .json, or the file is JSON) or a
// SentencePiece model. Errors name the file.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& path);

// The tokenizer that belongs beside a model: tokenizer.json, else tokenizer.model, in the model's
// directory (or beside a llama2.c .bin), else tok<vocab_size>.model (llama2.c's naming); "" when
// there is none.
std::string tokenizer_beside(const std::string& model_path, int vocab_size);

}  // namespace qb
