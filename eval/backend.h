#pragma once
// A backend runs one model's weights over a window and scores the window's targets; the CPU one
// is the reference and the default, a CUDA one lives beside the kernels. Scoring happens where
// the logits are, so a GPU backend never copies a window's full logits to the host.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace qb {

// Per scored target of one window, in order.
struct WindowScores {
  std::vector<double> nll;       // -log p(target)
  std::vector<double> kl;        // KL(reference || this), when a reference was given
  std::vector<uint8_t> top1_same;  // 1 where this model's argmax equals the reference's
};

class LogitsBackend {
 public:
  virtual ~LogitsBackend() = default;
  virtual std::string device() const = 0;  // "cpu" | "cuda"
  // Runs the model over `tokens` as one sequence at positions 0..n-1 and keeps its logits.
  virtual void run(const std::vector<int>& tokens) = 0;
  // Scores targets tokens[first .. n) from the logits of the last run (target j is predicted by
  // the logits at j - 1). `reference`, when given, is a backend of the same device that ran the
  // same tokens; KL and top-1 agreement are measured against it. Non-finite logits are an error
  // naming `where`.
  virtual void score(const std::vector<int>& tokens, int first, const LogitsBackend* reference,
                     const std::string& where, WindowScores& out) const = 0;
  // Device memory of this backend: null on the CPU; on a GPU {"weight_bytes_device",
  // "peak_bytes", ...} as measured with cudaMemGetInfo (see the run document's "vram").
  virtual nlohmann::json memory() const { return nullptr; }
};

std::unique_ptr<LogitsBackend> make_cpu_backend(const Model& model);

}  // namespace qb
