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
int Tokenizer::bos_id() const { return sp_->bos_id(); }

}  // namespace qb
