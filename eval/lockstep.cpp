#include "eval/lockstep.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/error.h"
#include "common/interrupt.h"
#include "common/progress.h"

namespace qb {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string window_name(size_t w, const std::string& label) { return "window " + std::to_string(w) + " (" + label + ")"; }

// One window's scores into the sums, in target order (the same order in every mode, so that the
// sums are the same numbers).
void add_scores(const WindowScores& scores, size_t tokens_run, LockstepSums& s) {
  s.tokens_run += tokens_run;
  for (double v : scores.nll) s.nll.add(v);
  for (double v : scores.kl) {
    s.kl.add(v);
    s.kl_values.push_back(v);
  }
  for (uint8_t same : scores.top1_same) s.top1_same += same;
}

// One backend alone over every window; `each` gets the window's index, the window and its scores
// (NLL only) after run() and score(), inside the timed part.
template <typename Each>
LockstepSums run_alone(const std::vector<Window>& windows, LogitsBackend& backend, const std::string& label,
                       const std::string& progress_name, Each&& each) {
  LockstepSums s;
  Progress progress(progress_name, static_cast<long>(windows.size()));
  for (size_t w = 0; w < windows.size(); ++w) {
    throw_if_interrupted();
    const Window& win = windows[w];
    const auto t0 = Clock::now();
    backend.run(win.tokens);
    WindowScores scores;
    backend.score(win.tokens, win.first_scored, nullptr, window_name(w, label), scores);
    each(w, win, scores);
    s.seconds += seconds_since(t0);
    add_scores(scores, win.tokens.size(), s);
    progress.advance(1, "ppl " + std::to_string(std::exp(s.nll.mean())));
  }
  progress.finish();
  return s;
}

}  // namespace

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
      const auto t0 = Clock::now();
      backends[b]->run(win.tokens);
      WindowScores scores;
      backends[b]->score(win.tokens, win.first_scored, b == 0 ? nullptr : backends[0], window_name(w, labels[b]),
                         scores);
      sums[b].seconds += seconds_since(t0);
      add_scores(scores, win.tokens.size(), sums[b]);
    }
    progress.advance(1, "ppl " + std::to_string(std::exp(sums[0].nll.mean())));
  }
  progress.finish();
  return sums;
}

LockstepSums run_reference_to_store(const std::vector<Window>& windows, LogitsBackend& reference,
                                    const std::string& label, ReferenceStore& store) {
  std::vector<float> scratch;
  return run_alone(windows, reference, label, "eval " + label,
                   [&](size_t, const Window& win, const WindowScores&) {
                     const float* logits = reference.host_logits(scratch);
                     // Target j is predicted by row j - 1.
                     store.append(logits + size_t(win.first_scored - 1) * store.vocab(),
                                  static_cast<int>(win.tokens.size()) - win.first_scored);
                   });
}

LockstepSums run_against_store(const std::vector<Window>& windows, LogitsBackend& backend, const std::string& label,
                               ReferenceStore& store) {
  store.rewind();
  std::vector<float> scratch;
  StoredScores stored;
  double bound_sum = 0.0, bound_max = 0.0;
  LockstepSums s = run_alone(windows, backend, label, "eval " + label,
                             [&](size_t w, const Window& win, WindowScores& scores) {
                               const float* logits = backend.host_logits(scratch);
                               store.score(logits + size_t(win.first_scored - 1) * store.vocab(),
                                           static_cast<int>(win.tokens.size()) - win.first_scored,
                                           window_name(w, label), stored);
                               scores.kl = stored.kl;
                               scores.top1_same = stored.top1_same;
                               for (double b : stored.kl_error_bound) {
                                 bound_sum += b;
                                 bound_max = std::max(bound_max, b);
                               }
                             });
  s.kl_error_bound_sum = bound_sum;
  s.kl_error_bound_max = bound_max;
  return s;
}

}  // namespace qb
