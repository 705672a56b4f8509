// llama.cpp's SPM tokenizer against libsentencepiece on the shared texts, both over tok512's
// vocabulary. They must agree token for token once runs of spaces are collapsed as sentencepiece's
// remove_extra_whitespaces does; on the texts as they are, the differing tokens are counted and
// printed (the figure: 5 in about 100k on the TinyStories head).
#include <sentencepiece_processor.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "common/files.h"
#include "datasets/llama_spm_tokenizer.h"
#include "model/gguf.h"
#include "test_support.h"

using namespace qb;

namespace {

const char* kTokenizer = "models/stories260K/tok512.model";
// Converted by llama.cpp b4747 (convert_hf_to_gguf.py) from the same tok512 vocabulary.
const char* kGguf = "models/stories-d256-l2/gguf/stories-d256-l2-Q4_0.gguf";
const char* kTexts[] = {"text/tinystories/tinystories_train_head.txt", "text/wikitext-2-raw/wiki.test.raw"};

// The vocabulary as a GGUF converter takes it from a sentencepiece model (pieces, scores, piece
// types), so that the only difference left is the encoder.
LlamaVocab vocab_of(const sentencepiece::SentencePieceProcessor& sp, const std::string& path) {
  LlamaVocab v;
  v.source = path;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    v.tokens.push_back(sp.IdToPiece(i));
    v.scores.push_back(sp.GetScore(i));
    v.token_types.push_back(sp.IsUnknown(i)   ? LlamaVocab::Unknown
                            : sp.IsControl(i) ? LlamaVocab::Control
                            : sp.IsByte(i)    ? LlamaVocab::Byte
                            : sp.IsUnused(i)  ? LlamaVocab::Unused
                                              : LlamaVocab::Normal);
  }
  v.bos_id = sp.bos_id();
  v.eos_id = sp.eos_id();
  v.unk_id = sp.unk_id();
  return v;
}

// sentencepiece's remove_extra_whitespaces: no leading or trailing spaces, inner runs as one.
std::string collapse_spaces(const std::string& text) {
  std::string out;
  for (char c : text)
    if (c != ' ' || (!out.empty() && out.back() != ' ')) out += c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Tokens of a not matched in b or of b not matched in a, for sequences that differ in a few
// short places: at each mismatch, the smallest skip (in a, in b, or in both) after which 16
// tokens agree again.
size_t differing_tokens(const std::vector<int>& a, const std::vector<int>& b) {
  constexpr size_t kAgree = 16, kMaxSkip = 256;
  auto agree = [&](size_t i, size_t j) {
    for (size_t k = 0; k < kAgree; ++k) {
      if (i + k >= a.size() || j + k >= b.size()) return i + k >= a.size() && j + k >= b.size();
      if (a[i + k] != b[j + k]) return false;
    }
    return true;
  };
  size_t i = 0, j = 0, differing = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) {
      ++i, ++j;
      continue;
    }
    size_t skip_a = 0, skip_b = 0;
    for (size_t d = 1; d <= kMaxSkip && skip_a + skip_b == 0; ++d) {
      if (agree(i + d, j)) skip_a = d;
      else if (agree(i, j + d)) skip_b = d;
      else if (agree(i + d, j + d)) skip_a = skip_b = d;
    }
    REQUIRE(skip_a + skip_b > 0);  // the sequences resynchronised
    i += skip_a;
    j += skip_b;
    differing += skip_a + skip_b;
  }
  return differing + (a.size() - i) + (b.size() - j);
}

}  // namespace

std::string qb_test_skip_reason() {
  for (const char* f : kTexts)
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  if (const std::string why = test::require_data(kGguf); !why.empty()) return why;
  return test::require_data(kTokenizer);
}

TEST_CASE("the GGUF's vocabulary is tok512's, as llama.cpp's converter wrote it") {
  const std::string model = test::data_file(kTokenizer);
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(model).ok());
  const LlamaVocab from_sp = vocab_of(sp, model);
  const GgufVocab gguf = read_gguf_vocab(GgufFile(test::data_file(kGguf)));
  CHECK(gguf.model == "llama");
  CHECK(gguf.tokens == from_sp.tokens);
  CHECK(gguf.scores == from_sp.scores);
  CHECK(std::vector<int>(gguf.token_types.begin(), gguf.token_types.end()) == from_sp.token_types);
  CHECK(gguf.bos_id == from_sp.bos_id);
  CHECK(gguf.eos_id == from_sp.eos_id);
  CHECK(gguf.add_bos);
  CHECK(gguf.add_space_prefix);
}

TEST_CASE("llama.cpp SPM equals sentencepiece except for runs of spaces") {
  const std::string model = test::data_file(kTokenizer);
  sentencepiece::SentencePieceProcessor sp;
  REQUIRE(sp.Load(model).ok());
  const LlamaSpmTokenizer llama(vocab_of(sp, model));
  for (const char* name : kTexts) {
    SECTION(name) {
      std::string text = read_text_file(test::data_file(name));
      if (!text.empty() && text.back() == '\n') text.pop_back();  // as llama-perplexity -f reads it
      std::vector<int> sp_ids;
      REQUIRE(sp.Encode(text, &sp_ids).ok());
      const std::vector<int> llama_ids = llama.encode(text);
      CHECK(llama.encode(collapse_spaces(text)) == sp_ids);
      const size_t differing = differing_tokens(llama_ids, sp_ids);
      std::printf("%s: %zu llama.cpp tokens, %zu sentencepiece tokens, %zu differing\n", name, llama_ids.size(),
                  sp_ids.size(), differing);
      if (text == collapse_spaces(text)) CHECK(differing == 0);
      CHECK(differing <= llama_ids.size() / 100);
      CHECK(llama.decode(llama_ids) == text);
    }
  }
}
