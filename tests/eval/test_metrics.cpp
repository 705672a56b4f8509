// Perplexity arithmetic on hand-computable cases.
#include <catch2/catch.hpp>

#include <cmath>

#include "eval/cpu_backend.h"
#include "eval/metrics.h"
#include "random_model.h"

using namespace qb;

TEST_CASE("token NLL, KL and argmax on hand-computed rows") {
  const float uniform[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  CHECK(token_nll(uniform, 4, 2) == Approx(std::log(4.0)));
  const float row[2] = {0.0f, static_cast<float>(std::log(3.0))};  // p = (1/4, 3/4)
  CHECK(token_nll(row, 2, 1) == Approx(-std::log(0.75)));
  CHECK(token_nll(row, 2, 0) == Approx(std::log(4.0)));
  const float half[2] = {1.0f, 1.0f};  // p = (1/2, 1/2)
  CHECK(kl_divergence(half, row, 2) == Approx(0.5 * std::log(0.5 / 0.25) + 0.5 * std::log(0.5 / 0.75)));
  CHECK(kl_divergence(row, row, 2) == Approx(0.0).margin(1e-15));
  CHECK(argmax(row, 2) == 1);
  const float big[3] = {1000.0f, 999.0f, -1000.0f};  // stable for large logits
  CHECK(token_nll(big, 3, 0) == Approx(std::log(1.0 + std::exp(-1.0))));
}

TEST_CASE("mean, standard error and percentile") {
  MeanAccumulator acc;
  for (double v : {1.0, 2.0, 3.0, 4.0}) acc.add(v);
  CHECK(acc.mean() == Approx(2.5));
  CHECK(acc.stderr_of_mean() == Approx(std::sqrt((5.0 / 3.0) / 4.0)));
  std::vector<double> v{5, 1, 4, 2, 3, 10, 9, 8, 7, 6};
  CHECK(percentile(v, 0.99) == 10);
  CHECK(percentile(v, 0.5) == 5);
  CHECK(percentile(v, 0.0) == 1);
}

TEST_CASE("a model with a zero lm_head has perplexity equal to its vocabulary size") {
  LlamaConfig c = test::small_config(true);
  Model m = test::random_model(c, 4);
  m.lm_head = Tensor::from_float("lm_head.weight", {c.vocab_size, c.hidden_size},
                                 std::vector<float>(size_t(c.vocab_size) * c.hidden_size, 0.0f), DType::F32);
  auto backend = make_cpu_backend(m);
  std::vector<int> tokens{1, 2, 3, 4, 5, 6, 7, 8};
  backend->run(tokens);
  WindowScores s;
  backend->score(tokens, 1, nullptr, "test", s);
  MeanAccumulator nll;
  for (double v : s.nll) nll.add(v);
  CHECK(s.nll.size() == 7);
  CHECK(std::exp(nll.mean()) == Approx(c.vocab_size));
  CHECK(s.kl.empty());

  // Against itself as the reference: KL 0 and full top-1 agreement (argmax ties resolve alike).
  auto other = make_cpu_backend(m);
  other->run(tokens);
  other->score(tokens, 3, backend.get(), "test", s);
  CHECK(s.nll.size() == 5);
  for (double k : s.kl) CHECK(k == Approx(0.0).margin(1e-12));
  for (auto same : s.top1_same) CHECK(same == 1);
}

TEST_CASE("non-finite logits are an error naming the window") {
  LlamaConfig c = test::small_config(true);
  Model m = test::random_model(c, 4);
  std::vector<float> w(size_t(c.vocab_size) * c.hidden_size, 0.0f);
  w[5] = std::numeric_limits<float>::infinity();
  m.lm_head = Tensor::from_float("lm_head.weight", {c.vocab_size, c.hidden_size}, w, DType::F32);
  auto backend = make_cpu_backend(m);
  std::vector<int> tokens{1, 2, 3};
  backend->run(tokens);
  WindowScores s;
  CHECK_THROWS_WITH(backend->score(tokens, 1, nullptr, "window 7 (fp16)", s),
                    Catch::Contains("window 7 (fp16)") && Catch::Contains("non-finite logits"));
}
