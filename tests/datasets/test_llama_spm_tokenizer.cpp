// llama.cpp's SPM tokenizer on a hand-built vocabulary: every expected id sequence below is
// derived by hand from the vocabulary's scores (llm_tokenizer_spm's rules, b4747).
#include <catch2/catch.hpp>

#include "common/error.h"
#include "datasets/llama_spm_tokenizer.h"

using namespace qb;

namespace {

const std::string kSpace = "\xe2\x96\x81";  // U+2581

// ids: 0 <unk>, 1 <s>, 2 </s>, 3 + b: the byte token <0xBB>, then the pieces below from 259 on,
// then the user-defined token "<x>".
LlamaVocab hand_vocab() {
  LlamaVocab v;
  v.source = "hand-built";
  auto add = [&v](const std::string& text, float score, int type) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.token_types.push_back(type);
  };
  add("<unk>", 0, LlamaVocab::Unknown);
  add("<s>", 0, LlamaVocab::Control);
  add("</s>", 0, LlamaVocab::Control);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    add(name, 0, LlamaVocab::Byte);
  }
  add(kSpace, -1, LlamaVocab::Normal);  // 259
  for (const char* c : {"h", "e", "l", "o", "a", "b", "c", "\xc3\xa9"}) add(c, -2, LlamaVocab::Normal);  // 260..267
  add("ll", -3, LlamaVocab::Normal);                // 268
  add(kSpace + "h", -4, LlamaVocab::Normal);        // 269
  add(kSpace + "he", -5, LlamaVocab::Normal);       // 270
  add("llo", -6, LlamaVocab::Normal);               // 271
  add(kSpace + "hello", -7, LlamaVocab::Normal);    // 272
  add("ab", -8, LlamaVocab::Normal);                // 273
  add("bc", -8, LlamaVocab::Normal);                // 274
  add("<x>", 0, LlamaVocab::UserDefined);           // 275
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  return v;
}

constexpr int kSp = 259, kH = 260, kA = 264, kB = 265, kC = 266, kEAcute = 267;
int byte_id(unsigned char b) { return 3 + b; }

}  // namespace

TEST_CASE("merges run highest score first and build words through their pieces") {
  const LlamaSpmTokenizer t(hand_vocab());
  // ▁ h e l l o: ll (-3), ▁h (-4), ▁he (-5), llo (-6), ▁hello (-7).
  CHECK(t.encode("hello") == std::vector<int>{272});
  CHECK(t.encode_with_special_tokens("hello") == std::vector<int>{1, 272});
  CHECK(t.encode("") == std::vector<int>{});
  CHECK(t.encode_with_special_tokens("") == std::vector<int>{1});
}

TEST_CASE("equal scores merge the leftmost pair first") {
  // ▁ a b c: ab and bc both score -8; ab is further left, and then bc has lost its b.
  CHECK(LlamaSpmTokenizer(hand_vocab()).encode("abc") == std::vector<int>{kSp, 273, kC});
  LlamaVocab no_prefix = hand_vocab();
  no_prefix.add_space_prefix = false;
  CHECK(LlamaSpmTokenizer(no_prefix).encode("abc") == std::vector<int>{273, kC});
}

TEST_CASE("runs of spaces are kept, one U+2581 each") {
  // sentencepiece's remove_extra_whitespaces would make this "▁a▁b"; llama.cpp keeps both spaces.
  const LlamaSpmTokenizer t(hand_vocab());
  CHECK(t.encode("a  b") == std::vector<int>{kSp, kA, kSp, kSp, kB});
  CHECK(t.encode(" a") == std::vector<int>{kSp, kSp, kA});
  CHECK(t.encode("a ") == std::vector<int>{kSp, kA, kSp});
}

TEST_CASE("characters outside the vocabulary fall back to byte tokens") {
  const LlamaSpmTokenizer t(hand_vocab());
  CHECK(t.encode("h\xc3\xa9") == std::vector<int>{269, kEAcute});                        // é is a piece
  CHECK(t.encode("h\xc3\xa8") == std::vector<int>{269, byte_id(0xc3), byte_id(0xa8)});  // è is not
  CHECK(t.encode("\xf0\x9f\x99\x82") ==
        std::vector<int>{kSp, byte_id(0xf0), byte_id(0x9f), byte_id(0x99), byte_id(0x82)});  // one 4-byte character
  CHECK(t.encode("\xa9") == std::vector<int>{kSp, byte_id(0xa9)});  // a stray continuation byte
  CHECK(t.encode("\n") == std::vector<int>{kSp, byte_id('\n')});
}

TEST_CASE("user-defined tokens are split out; control tokens are text") {
  const LlamaSpmTokenizer t(hand_vocab());
  // The fragment after a split-out token gets the space prefix again.
  CHECK(t.encode("a<x>b") == std::vector<int>{kSp, kA, 275, kSp, kB});
  CHECK(t.encode("<x>") == std::vector<int>{275});
  CHECK(t.encode("<s>") == std::vector<int>{kSp, byte_id('<'), byte_id('s'), byte_id('>')});
}

TEST_CASE("decode inverts encode") {
  const LlamaSpmTokenizer t(hand_vocab());
  for (const std::string text : {"hello", "a  b", "h\xc3\xa8 abc"}) CHECK(t.decode(t.encode(text)) == text);
  CHECK(t.decode({1, kH}) == "<s>h");
}

TEST_CASE("BOS follows add_bos; malformed vocabularies are refused") {
  LlamaVocab v = hand_vocab();
  v.add_bos = false;
  const LlamaSpmTokenizer t(v);
  CHECK(t.bos_id() == -1);
  CHECK(t.encode_with_special_tokens("hello") == std::vector<int>{272});
  CHECK(t.kind() == "llama.cpp-spm (gguf vocab)");
  CHECK(t.pieces().size() == 276);

  LlamaVocab short_scores = hand_vocab();
  short_scores.scores.pop_back();
  CHECK_THROWS_WITH(LlamaSpmTokenizer(short_scores), Catch::Contains("hand-built: tokenizer.ggml.scores has 275 entries for 276 tokens"));
  LlamaVocab bad_bos = hand_vocab();
  bad_bos.bos_id = 999;
  CHECK_THROWS_WITH(LlamaSpmTokenizer(bad_bos), Catch::Contains("bos_token_id 999 is outside the vocabulary"));
  LlamaVocab no_bytes = hand_vocab();
  no_bytes.tokens[byte_id(0xa8)] = "unused";
  CHECK_THROWS_WITH(LlamaSpmTokenizer(no_bytes).encode("\xa8"), Catch::Contains("no token for byte <0xA8>"));
}
