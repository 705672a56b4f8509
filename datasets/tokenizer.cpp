#include "datasets/tokenizer.h"

#include <sentencepiece_processor.h>

#include "common/error.h"
#include "common/files.h"

namespace qb {

Tokenizer::Tokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  if (!file_exists(model_path)) fail(model_path, "tokenizer model not found");
  const auto status = sp_->Load(model_path);
  if (!status.ok()) fail(model_path, "not a sentencepiece model: " + status.ToString());
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

std::vector<int> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  if (!status.ok()) fail(path_, "encoding failed: " + status.ToString());
  return ids;
}

int Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

void Tokenizer::require_vocab_size(int model_vocab_size) const {
  if (vocab_size() != model_vocab_size)
    fail(path_, "vocab size " + std::to_string(vocab_size()) + " does not match the model's vocab_size " +
                    std::to_string(model_vocab_size));
}

std::string tokenizer_beside(const std::string& model_path, int vocab_size) {
  const size_t slash = model_path.find_last_of('/');
  const std::string dir = is_directory(model_path) ? model_path
                          : slash == std::string::npos ? "."
                                                       : model_path.substr(0, slash);
  for (const std::string& name : {std::string("tokenizer.model"), "tok" + std::to_string(vocab_size) + ".model"})
    if (file_exists(dir + "/" + name)) return dir + "/" + name;
  return "";
}
int Tokenizer::bos_id() const { return sp_->bos_id(); }

}  // namespace qb
