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

TEST_CASE("sums are exact: any order and any split of the values give the same bits") {
  // 1e9 + 0.1 loses the 0.1's low bits in a double; exact sums get 10 x 0.1 back after -1e9.
  const std::vector<double> values{1e9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, -1e9, 3.25, 1e-20};
  MeanAccumulator forward, backward, left, right;
  for (double v : values) forward.add(v);
  for (auto it = values.rbegin(); it != values.rend(); ++it) backward.add(*it);
  for (size_t i = 0; i < values.size(); ++i) (i % 3 ? left : right).add(values[i]);
  left.add(right);
  CHECK(forward.n == values.size());
  CHECK(forward.sum() == 1.0 + 3.25);  // 10 x double(0.1) = 1 + 5.6e-17, rounded back to 1
  for (const MeanAccumulator* a : {&backward, &left}) {
    CHECK(a->n == forward.n);
    CHECK(a->sum_fixed == forward.sum_fixed);
    CHECK(a->sum_sq_fixed == forward.sum_sq_fixed);
    CHECK(a->stderr_of_mean() == forward.stderr_of_mean());
  }
  MeanAccumulator one;
  one.add(1e-20);  // below 2^-64: rounds to 0
  one.add(0x1p-64);
  CHECK(one.sum_fixed == 1);
  CHECK_THROWS_WITH(one.add(3e9), Catch::Contains("outside the exact-sum range"));
  MeanAccumulator big;
  for (int i = 0; i < 2; ++i) big.add(0x1.fp30);  // squares of 3.75 * 2^60 each: the third passes 2^63
  CHECK_THROWS_WITH(big.add(0x1.fp30), Catch::Contains("sum outside the exact-sum range"));
}

TEST_CASE("fixed-point sums as decimal text and back") {
  using Fixed = MeanAccumulator::Fixed;
  const Fixed max = ~(Fixed(1) << 127), min = -max - 1;
  CHECK(fixed_to_decimal(0) == "0");
  CHECK(fixed_to_decimal(-42) == "-42");
  CHECK(fixed_to_decimal(Fixed(1) << 64) == "18446744073709551616");
  CHECK(fixed_to_decimal(max) == "170141183460469231731687303715884105727");
  CHECK(fixed_to_decimal(min) == "-170141183460469231731687303715884105728");
  for (Fixed v : {Fixed(0), Fixed(-42), max, min, Fixed(123456789) * Fixed(1000000007) * Fixed(998244353)})
    CHECK(fixed_from_decimal(fixed_to_decimal(v), "f") == v);
  for (const char* bad : {"", "-", "1.5", "12a", "170141183460469231731687303715884105728", "+3"})
    CHECK_THROWS_WITH(fixed_from_decimal(bad, "run.json: nll.sum"), Catch::Contains("run.json: nll.sum"));
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
