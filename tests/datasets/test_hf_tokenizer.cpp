// HF tokenizer.json encoding against reference ids from HF's own `tokenizers` library, for every
// family in the shared data (tokenizers/hf/<family>/reference.jsonl; see the data MANIFEST).
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "datasets/hf_tokenizer.h"
#include "test_support.h"

using namespace qb;

namespace {

const char* const kFamilies[] = {"gpt2", "phi2", "gptneox20b", "falcon", "llama2", "mistral", "phi3mini", "qwen2", "llama3"};

std::string family_dir(const std::string& family) { return "tokenizers/hf/" + family; }

std::string ids_text(const std::vector<int>& ids) { return nlohmann::json(ids).dump(); }

}  // namespace

std::string qb_test_skip_reason() {
  for (const char* family : kFamilies) {
    for (const char* file : {"/tokenizer.json", "/reference.jsonl"}) {
      const std::string why = test::require_data(family_dir(family) + file);
      if (!why.empty()) return why;
    }
  }
  return "";
}

TEST_CASE("every reference id and decoded text matches, for every family") {
  for (const char* family : kFamilies) {
    const std::string dir = test::data_file(family_dir(family));
    const auto tokenizer = open_tokenizer(dir + "/tokenizer.json");
    const auto& hf = dynamic_cast<const HfTokenizer&>(*tokenizer);
    std::ifstream reference(dir + "/reference.jsonl");
    int cases = 0, id_mismatches = 0, decode_mismatches = 0;
    std::ostringstream first;
    for (std::string line; std::getline(reference, line);) {
      const auto ref = nlohmann::json::parse(line);
      const std::string text = ref.at("text");
      const bool special = ref.at("add_special_tokens");
      const std::vector<int> want = ref.at("ids");
      const std::vector<int> got = special ? hf.encode_with_special_tokens(text) : hf.encode(text);
      ++cases;
      const std::string where = std::string(family) + " " + ref.at("case").get<std::string>() + (special ? " +special" : "");
      if (got != want && ++id_mismatches <= 3)
        first << where << ": ids " << ids_text(got) << "\n  want " << ids_text(want) << "\n";
      // The reference decoded with skip_special_tokens exactly when it added special tokens.
      const std::string decoded = hf.decode(want, special);
      if (decoded != ref.at("decoded").get<std::string>() && ++decode_mismatches <= 3)
        first << where << ": decoded " << nlohmann::json(decoded).dump() << "\n  want " << ref.at("decoded").dump() << "\n";
      if (ref.at("roundtrip").get<bool>()) CHECK(decoded == text);
    }
    INFO(first.str());
    CHECK(cases == 94);
    CHECK(id_mismatches == 0);
    CHECK(decode_mismatches == 0);
  }
}

TEST_CASE("the BOS rule follows each family's template and tokenizer_config") {
  const auto bos = [](const char* family) {
    return open_tokenizer(test::data_file(family_dir(family)) + "/tokenizer.json")->bos_id();
  };
  CHECK(bos("llama2") == 1);
  CHECK(bos("mistral") == 1);
  CHECK(bos("llama3") == 128000);
  CHECK(bos("phi3mini") == -1);
  CHECK(bos("qwen2") == -1);
  CHECK(bos("gpt2") == -1);
}
