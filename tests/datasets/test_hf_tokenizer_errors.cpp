// tokenizer.json features quantbench does not implement are one-line errors naming the feature
// and the file; a small BPE written here shows the pipeline end to end without shared data.
#include <catch2/catch.hpp>

#include "common/files.h"
#include "datasets/hf_tokenizer.h"
#include "random_model.h"

using namespace qb;

namespace {

// A byte-level BPE over "a", "b", "ab", "Ġ" with one merge.
nlohmann::json tiny_tokenizer() {
  return {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"Ġ", 3}}}, {"merges", {"a b"}}}},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"added_tokens", {{{"id", 4}, {"content", "<eos>"}, {"special", true}}}}};
}

std::string write_tokenizer(const nlohmann::json& j, const std::string& tag) {
  const std::string path = test::temp_dir(tag) + "/tokenizer.json";
  write_file_atomic(path, j.dump());
  return path;
}

}  // namespace

TEST_CASE("a small byte-level BPE encodes, decodes and splits out added tokens") {
  const auto tok = open_tokenizer(write_tokenizer(tiny_tokenizer(), "tiny"));
  CHECK(tok->encode("ab a<eos>b") == std::vector<int>{2, 3, 0, 4, 1});
  CHECK(tok->encode_with_special_tokens("ab") == std::vector<int>{2});
  CHECK(tok->decode({2, 3, 0, 4, 1}) == "ab a<eos>b");
  CHECK(tok->bos_id() == -1);
  CHECK(tok->vocab_size() == 5);
  CHECK_NOTHROW(tok->require_vocab_size(8));
  CHECK_THROWS_WITH(tok->require_vocab_size(4), Catch::Contains("vocab size 5 exceeds the model's vocab_size 4"));
  CHECK_THROWS_WITH(tok->encode("\xff"), Catch::Contains("not valid UTF-8"));
}

TEST_CASE("unimplemented features are errors naming the feature and the file") {
  nlohmann::json unigram = tiny_tokenizer();
  unigram["model"]["type"] = "Unigram";
  const std::string unigram_path = write_tokenizer(unigram, "unigram");
  CHECK_THROWS_WITH(open_tokenizer(unigram_path), unigram_path + ": unsupported model type 'Unigram'");

  nlohmann::json lowercase = tiny_tokenizer();
  lowercase["normalizer"] = {{"type", "Lowercase"}};
  const std::string lowercase_path = write_tokenizer(lowercase, "lowercase");
  CHECK_THROWS_WITH(open_tokenizer(lowercase_path), lowercase_path + ": unsupported normalizer type 'Lowercase'");

  nlohmann::json bert = tiny_tokenizer();
  bert["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  const std::string bert_path = write_tokenizer(bert, "bert");
  CHECK_THROWS_WITH(open_tokenizer(bert_path), bert_path + ": unsupported pre_tokenizer type 'BertPreTokenizer'");

  nlohmann::json no_vocab = tiny_tokenizer();
  no_vocab["model"].erase("vocab");
  const std::string no_vocab_path = write_tokenizer(no_vocab, "novocab");
  CHECK_THROWS_WITH(open_tokenizer(no_vocab_path), Catch::StartsWith(no_vocab_path + ": malformed tokenizer.json: "));
}
