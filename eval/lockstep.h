#pragma once
// The lockstep run: every backend over the same windows, window by window, the reference first, so
// that KL divergence and top-1 agreement compare the same positions. Returns sums, nothing else:
// what the sums mean in a report is eval/run_document.h's business.
#include <string>
#include <vector>

#include "eval/metrics.h"
#include "eval/protocol.h"
#include "eval/reference_store.h"
#include "model/logits_backend.h"

namespace qb {

// One backend's totals over all windows.
struct LockstepSums {
  MeanAccumulator nll;             // per scored target
  MeanAccumulator kl;              // per scored target; empty for the reference
  std::vector<double> kl_values;   // every KL value, for percentiles
  size_t top1_same = 0;            // targets whose argmax matched the reference's
  size_t tokens_run = 0;           // tokens through the forward pass (scored or not)
  double seconds = 0.0;            // host wall time of run + score (both synchronous)
  // Sequential mode: the sum and the largest of the per-target bounds on the stored reference's KL
  // error (eval/reference_store.h); 0 in lockstep, where KL is exact.
  double kl_error_bound_sum = 0.0, kl_error_bound_max = 0.0;
};

// backends[0] is the reference; labels[i] names backend i in errors ("window 3 (awq w4 g128)").
// Non-finite logits stop the run with that error. Progress shows the reference's running ppl.
std::vector<LockstepSums> run_lockstep(const std::vector<Window>& windows, const std::vector<LogitsBackend*>& backends,
                                       const std::vector<std::string>& labels);

// Sequential mode (--mode sequential): the reference runs alone and its rows go to `store`; then each
// method runs alone and is scored against the stored rows (store.rewind() first). Both give the
// sums run_lockstep gives: NLL and top-1 agreement exactly, KL within the store's bound (recorded
// in kl_error_bound_*). Only one backend, so one method's weights, is alive at a time.
LockstepSums run_reference_to_store(const std::vector<Window>& windows, LogitsBackend& reference,
                                    const std::string& label, ReferenceStore& store);
LockstepSums run_against_store(const std::vector<Window>& windows, LogitsBackend& backend, const std::string& label,
                               ReferenceStore& store);

}  // namespace qb
