#pragma once
// A Hugging Face tokenizer.json, encoded as HF `tokenizers` does for BPE models: byte-level (GPT-2,
// Llama-3, Qwen2, Falcon, GPT-NeoX) and byte-fallback SentencePiece-style (Llama-2, Mistral,
// Phi-3). Added tokens are split out first; the normalizer, pre-tokenizer, BPE merges,
// post-processor template and decoder follow the file. A feature it does not implement (another
// model type, an unknown normalizer ...) is an error naming the feature and the file.
// tokenizer_config.json beside the file, when it sets add_bos_token / add_eos_token, decides the
// BOS/EOS rule as transformers' Llama tokenizers do.
#include <memory>
#include <string>
#include <vector>

#include "datasets/tokenizer.h"

namespace qb {

class HfTokenizer : public Tokenizer {
 public:
  explicit HfTokenizer(const std::string& json_path);
  ~HfTokenizer() override;
  std::vector<int> encode(const std::string& text) const override;
  std::vector<int> encode_with_special_tokens(const std::string& text) const override;
  std::string decode(const std::vector<int>& ids) const override { return decode(ids, false); }
  // skip_special_tokens drops special added tokens, as HF decode(..., skip_special_tokens=True).
  std::string decode(const std::vector<int>& ids, bool skip_special_tokens) const;
  int vocab_size() const override;
  int bos_id() const override;
  // HF checkpoints often pad the embedding past the tokenizer (Qwen2: 151646 ids, 151936 rows):
  // every id must fit, equality is not required.
  void require_vocab_size(int model_vocab_size) const override;
  std::string kind() const override { return "hf tokenizer.json"; }

 private:
  void load(const std::string& json_path);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qb
