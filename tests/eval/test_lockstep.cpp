// The lockstep run against the backends driven by hand: the same sums, the reference first.
#include <catch2/catch.hpp>

#include "eval/cpu_backend.h"
#include "eval/lockstep.h"
#include "random_model.h"

using namespace qb;

TEST_CASE("run_lockstep sums exactly what each backend scores, against backends[0]") {
  const Model a = test::random_model(test::small_config(false), 1), b = test::random_model(test::small_config(false), 2);
  ProtocolOptions p;
  p.ctx = 6;
  const std::vector<int> text = {5, 9, 33, 2, 95, 0, 17, 64, 3, 3, 40, 7, 8};
  const std::vector<Window> windows = plan_windows(text, 1, p, "text");
  REQUIRE(windows.size() == 2);
  auto ref = make_cpu_backend(a), other = make_cpu_backend(b);
  const std::vector<LockstepSums> sums = run_lockstep(windows, {ref.get(), other.get()}, {"a", "b"});
  REQUIRE(sums.size() == 2);

  MeanAccumulator nll_a, nll_b, kl;
  size_t same = 0;
  for (const Window& w : windows) {
    WindowScores sa, sb;
    ref->run(w.tokens);
    ref->score(w.tokens, w.first_scored, nullptr, "a", sa);
    other->run(w.tokens);
    other->score(w.tokens, w.first_scored, ref.get(), "b", sb);
    for (double v : sa.nll) nll_a.add(v);
    for (double v : sb.nll) nll_b.add(v);
    for (double v : sb.kl) kl.add(v);
    for (uint8_t s : sb.top1_same) same += s;
  }
  CHECK(sums[0].nll.n == 10);
  CHECK(sums[0].nll.sum() == Approx(nll_a.sum()).epsilon(1e-12));
  CHECK(sums[0].kl.n == 0);
  CHECK(sums[1].nll.sum() == Approx(nll_b.sum()).epsilon(1e-12));
  CHECK(sums[1].kl.sum() == Approx(kl.sum()).epsilon(1e-12));
  CHECK(sums[1].kl_values.size() == 10);
  CHECK(sums[1].top1_same == same);
  CHECK(sums[1].tokens_run == 12);
  CHECK_THROWS_WITH(run_lockstep(windows, {ref.get()}, {}), Catch::Contains("one label per backend"));
}
