// tokenizer.json features quantbench does not implement are one-line errors naming the feature
// and the file; a small BPE written here shows the pipeline end to end without shared data.
#include <catch2/catch.hpp>

#include <functional>

#include "common/error.h"
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

TEST_CASE("hostile vocab, merges and added tokens name the file and the field (issue 13)") {
  auto error_with = [](const std::function<void(nlohmann::json&)>& edit) -> std::string {
    nlohmann::json j = tiny_tokenizer();
    edit(j);
    const std::string path = write_tokenizer(j, "hostile");
    try {
      open_tokenizer(path);
    } catch (const Error& e) {
      const std::string message = e.what();
      CHECK(message.rfind(path + ": ", 0) == 0);
      return message.substr(path.size() + 2);
    }
    return "no error";
  };
  CHECK(error_with([](auto& j) { j["model"]["vocab"]["b"] = "one"; }) ==
        "field 'model.vocab[\"b\"]' is a string \"one\", expected a 32-bit integer");
  // A negative id used to index the id -> token table; a huge one sized it.
  CHECK(error_with([](auto& j) { j["model"]["vocab"]["b"] = -1; }) == "field 'model.vocab[\"b\"]' is -1, outside [0, 2^24)");
  CHECK(error_with([](auto& j) { j["model"]["vocab"]["b"] = 2147483647; }) ==
        "field 'model.vocab[\"b\"]' is 2147483647, outside [0, 2^24)");
  CHECK(error_with([](auto& j) { j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", 1})}); }) ==
        "field 'model.merges[0][1]' is an integer 1, expected a string");
  CHECK(error_with([](auto& j) { j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b", "c"})}); }) == "merge [\"a\",\"b\",\"c\"] is not two tokens");
  CHECK(error_with([](auto& j) { j["added_tokens"][0]["id"] = "4"; }) ==
        "field 'added_tokens[].id' is a string \"4\", expected a 32-bit integer");
}
