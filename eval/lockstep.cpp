#include "eval/lockstep.h"

#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/progress.h"

namespace qb {

std::vector<LockstepSums> run_lockstep(const std::vector<Window>& windows, const std::vector<LogitsBackend*>& backends,
                                       const std::vector<std::string>& labels) {
  if (backends.empty() || labels.size() != backends.size())
    fail("lockstep", "needs one label per backend and at least the reference");
  std::vector<LockstepSums> sums(backends.size());
  Progress progress("eval", static_cast<long>(windows.size()));
  for (size_t w = 0; w < windows.size(); ++w) {
    const Window& win = windows[w];
    for (size_t b = 0; b < backends.size(); ++b) {
      throw_if_interrupted();
      LockstepSums& s = sums[b];
      const auto t0 = std::chrono::steady_clock::now();
      backends[b]->run(win.tokens);
      WindowScores scores;
      backends[b]->score(win.tokens, win.first_scored, b == 0 ? nullptr : backends[0],
                         "window " + std::to_string(w) + " (" + labels[b] + ")", scores);
      s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      s.tokens_run += win.tokens.size();
      for (double v : scores.nll) s.nll.add(v);
      for (double v : scores.kl) {
        s.kl.add(v);
        s.kl_values.push_back(v);
      }
      for (uint8_t same : scores.top1_same) s.top1_same += same;
    }
    progress.advance(1, "ppl " + std::to_string(std::exp(sums[0].nll.mean())));
  }
  progress.finish();
  return sums;
}

}  // namespace qb
