#pragma once
// llama.cpp's own SentencePiece-style tokenizer (llm_tokenizer_spm in src/llama-vocab.cpp, b4747,
// commit c392e5094deaf2d1a7c18683214f007fad3fe42b) over a vocabulary as a GGUF file stores it
// (tokenizer.ggml.*). This is what llama-perplexity tokenizes with; it is not libsentencepiece:
// it does not collapse runs of spaces (sentencepiece's remove_extra_whitespaces does), so the two
// differ wherever a text has them.
//
//   1. User-defined tokens (GGUF token type 4) are split out of the text first, longest first;
//      control and unknown tokens are not (llama.cpp's parse_special = false, as common_tokenize
//      calls it), so "<s>" in a text is tokenized as text.
//   2. Each text piece gets a leading space when add_space_prefix is set and it starts the text or
//      follows a split-out token; then every ' ' becomes U+2581.
//   3. The piece is cut into UTF-8 characters (the length from the lead byte alone; a stray
//      continuation byte is one character), and adjacent pairs whose concatenation is a vocabulary
//      token are merged, highest score first (ties: the leftmost pair), until none is left.
//   4. Each final symbol is its token if it is one, else it is split back along the merges that
//      made it, and what is still no token becomes byte tokens <0xXX> (else the one-byte token).
#include <string>
#include <unordered_map>
#include <vector>

#include "datasets/tokenizer.h"

namespace qb {

// A vocabulary as a GGUF file's tokenizer.ggml.* keys give it (llama.cpp's llama_vocab).
struct LlamaVocab {
  // GGUF tokenizer.ggml.token_type values.
  enum TokenType { Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  std::string source;               // the file it came from, for errors and Tokenizer::path()
  std::vector<std::string> tokens;  // pieces by id, spaces as U+2581
  std::vector<float> scores;        // merge priority by id (higher merges first)
  std::vector<int> token_types;     // TokenType by id
  int bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_bos = true;           // tokenizer.ggml.add_bos_token (llama.cpp's default for SPM: true)
  bool add_space_prefix = true;  // tokenizer.ggml.add_space_prefix (default: true)
};

class LlamaSpmTokenizer : public Tokenizer {
 public:
  // Checks that tokens, scores and token_types have one entry per id and that the special ids lie
  // inside the vocabulary; errors name vocab.source.
  explicit LlamaSpmTokenizer(LlamaVocab vocab);
  // llama_tokenize(text, add_special = false, parse_special = false).
  std::vector<int> encode(const std::string& text) const override;
  // As encode, with BOS first when add_bos (llama_tokenize with add_special = true).
  std::vector<int> encode_with_special_tokens(const std::string& text) const override;
  // Pieces joined, U+2581 as ' ', byte tokens as their byte; one leading space dropped when
  // add_space_prefix (as sentencepiece decodes).
  std::string decode(const std::vector<int>& ids) const override;
  int vocab_size() const override { return static_cast<int>(vocab_.tokens.size()); }
  int bos_id() const override { return vocab_.add_bos ? vocab_.bos_id : -1; }
  std::vector<std::string> pieces() const override { return vocab_.tokens; }
  std::string kind() const override { return "llama.cpp-spm (gguf vocab)"; }

 private:
  void encode_piece(const std::string& escaped, std::vector<int>& out) const;
  int byte_token(unsigned char byte) const;
  int find(const std::string& text) const;  // -1 when text is no token

  LlamaVocab vocab_;
  std::unordered_map<std::string, int> ids_;  // a text listed twice maps to its last id, as in llama.cpp
  std::vector<int> user_defined_;             // split out before tokenizing, longest text first
};

}  // namespace qb
