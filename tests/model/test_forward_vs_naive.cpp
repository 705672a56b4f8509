// The batched forward pass (BLAS, OpenMP, whole window) against the naive single-token KV-cache
// reference on random models: logits within 1e-4 relative (float32 vs double accumulation).
#include <catch2/catch.hpp>

#include "forward_check.h"
#include "random_model.h"

using namespace qb;

TEST_CASE("batched logits equal the naive single-token path on random models") {
  for (bool interleaved : {true, false}) {
    LlamaConfig c = test::small_config(interleaved);
    c.tie_word_embeddings = !interleaved;
    const Model m = test::random_model(c, interleaved ? 11 : 12);
    std::vector<int> tokens;
    for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 5) % c.vocab_size);
    CHECK(test::batched_vs_naive_rel_error(m, tokens) < 1e-4);
  }
}
