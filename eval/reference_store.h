#pragma once
// The FP16 reference of a sequential eval (--mode sequential), kept on disk between its run and the
// methods' runs: per scored target, what KL divergence and top-1 agreement need, compactly.
//
// Record per scored target (4 + 2 x vocab bytes; Llama-2's 32000 tokens: 64 KB, so a WikiText-2
// run at ctx 512, ~330k targets, stores ~21 GB):
//   int32   argmax   the reference's first maximal logit, exact (top-1 agreement is exact)
//   uint16  code[v]  log p_v quantized in steps of kStoredRangeNats / 65535 over
//                    [log p_max - kStoredRangeNats, log p_max]: code 65535 is the maximum, code 0
//                    marks a token below that range, which scoring leaves out (p < e^-32)
// This is llama.cpp's KL base file (llama-perplexity --kl-divergence-base, b4747: uint16 log-probs
// over a clamped range) with a wider range (32 nats instead of 16, so that a 128k vocabulary's
// tail stays below 1e-9 of mass) and without the per-row scale and minimum: the decoded row is
// renormalised over the kept tokens, so the offset cancels.
//
// Error bound (per target, exact arithmetic in double): with delta = half a step (2.44e-4 nats),
// m the mass left out (< n0 e^-32), eta = 2 delta + 2 m, S = sum_v p'_v |log p'_v - log q_v| over
// the decoded row p' and the method's row q:
//   |KL(p'||q) - KL(p||q)| <= (e^eta - 1) e^eta (S + eta) + (e^(eta + 2m) - 1)^2 + 2m
//                             + f (n0 |log f| + sum_{code 0} |log q_v|),   f = e^-(32 - delta)
// (the first term is the rounding of log p; the second the renormalisation; the last the tokens left
// out, each below f). It is about a step (4.9e-4 nats) times E_p|log p/q|: ~0.5% of KL at KL 0.01,
// less for larger KL. Sequential sums keep the mean bound, which bounds the error of the KL mean.
// Measured (tests/jobs/test_eval_sequential.cpp, CPU, 4-bit, against exact lockstep KL):
//   stories-d256-l2, ctx 128, 8 windows: rtn g128 KL 0.01482, error 1.5e-7 (0.001%); awq g128
//   KL 0.01214, error 1.5e-7; stated bound 5.5e-5. stories260K, ctx 257, 6 windows: rtn g32 KL
//   0.1165, error 4.4e-7; awq g32 error 7.5e-8; bound 1.4e-4. The rounding errors mostly cancel
//   over a row, so the error is ~100x below the bound.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace qb {

inline constexpr double kStoredRangeNats = 32.0;

// What a method's rows scored against stored reference rows give, per target.
struct StoredScores {
  std::vector<double> kl;          // KL(reference || method) from the decoded reference row
  std::vector<uint8_t> top1_same;  // exact: the stored argmax against the method's first maximum
  std::vector<double> kl_error_bound;  // the bound above, per target
};

// The folder a store goes to: `dir`, or "" -> $TMPDIR, else /tmp.
std::string reference_store_dir(const std::string& dir);

// One record (4 + 2 x vocab bytes) from one logits row of the reference.
void encode_reference_row(const float* logits, int vocab, uint8_t* record);

class ReferenceStore {
 public:
  // An empty store file in reference_store_dir(dir), removed by the destructor (also when
  // the run stops with an error or an interrupt). A scratch file, not a result: written in place.
  ReferenceStore(const std::string& dir, int vocab);
  ~ReferenceStore();
  ReferenceStore(const ReferenceStore&) = delete;
  ReferenceStore& operator=(const ReferenceStore&) = delete;

  static size_t record_bytes(int vocab) { return 4 + 2 * static_cast<size_t>(vocab); }
  // Appends `count` records from the reference's logits rows [count, vocab].
  void append(const float* logits, int count);
  // Reading starts again at the first record: once before each method's pass.
  void rewind();
  // Reads the next `count` records and scores a method's logits rows [count, vocab] for the same
  // targets against them. `where` names the window in errors (a short or unreadable file).
  void score(const float* logits, int count, const std::string& where, StoredScores& out);

  int vocab() const { return vocab_; }
  const std::string& path() const { return path_; }
  size_t records() const { return records_; }
  size_t bytes() const { return records_ * record_bytes(vocab_); }
  // In words, for the run document's reference.store.
  static std::string description();

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  int vocab_;
  size_t records_ = 0;
  bool reading_ = false;
  std::vector<uint8_t> buffer_;        // one window's records
  std::vector<double> prob_of_code_;   // e^((code - 65535) step): the unnormalised decoded p
};

}  // namespace qb
