// The shared trained stories260K model: its architecture as loaded, and the batched forward pass
// against the naive reference.
#include <catch2/catch.hpp>

#include "datasets/tokenizer.h"
#include "forward_check.h"
#include "model/load.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  auto r = test::require_data("models/stories260K/stories260K.bin");
  return r.empty() ? test::require_data("models/stories260K/tok512.model") : r;
}

TEST_CASE("stories260K: batched logits equal the naive single-token path within 1e-4") {
  const Model m = load_model(test::data_file("models/stories260K/stories260K.bin"));
  const auto tok_owner = open_tokenizer(test::data_file("models/stories260K/tok512.model"));
  const Tokenizer& tok = *tok_owner;
  std::vector<int> tokens{tok.bos_id()};
  for (int id : tok.encode("Once upon a time, there was a little girl named Lily. She loved to play outside."))
    tokens.push_back(id);
  REQUIRE(tokens.size() > 16);
  CHECK(test::batched_vs_naive_rel_error(m, tokens) < 1e-4);
}

TEST_CASE("shared stories260K loads with the manifest's architecture") {
  const Model m = load_model(test::data_file("models/stories260K/stories260K.bin"));
  CHECK(m.config.hidden_size == 64);
  CHECK(m.config.intermediate_size == 172);
  CHECK(m.config.n_layers == 5);
  CHECK(m.config.n_heads == 8);
  CHECK(m.config.n_kv_heads == 4);
  CHECK(m.config.vocab_size == 512);
  CHECK(m.config.max_seq_len == 512);
  CHECK(m.config.tie_word_embeddings);
  CHECK(m.parameter_count() == 260032);
}
