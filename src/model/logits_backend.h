#pragma once
// A backend runs one model's weights over a window and scores the window's targets. The CPU one
// (eval/cpu_backend.h) is the reference and the default; the CUDA one is src/gpu/cuda_backend.h.
// Scoring happens where the logits are, so a GPU backend never copies a window's full logits to
// the host; every backend computes the same per-target quantities, defined here once:
//   nll       -log softmax(logits[j-1])[tokens[j]], in double
//   kl        KL(reference || this) = sum_v p_v (log p_v - log q_v) over the softmax rows, >= 0
//   top1_same whether both rows' first maximal logit is at the same index
// The CPU backend computes them with eval/metrics.h; tests/gpu compares the device's with it.
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

enum class Device { Cpu, Cuda };
const char* device_name(Device d);  // "cpu" | "cuda", as run documents name it

class LogitsBackend {
 public:
  virtual ~LogitsBackend() = default;
  virtual Device device() const = 0;
  // Runs the model over `tokens` as one sequence at positions 0..n-1 and keeps its logits.
  virtual void run(const std::vector<int>& tokens) = 0;
  // Scores targets tokens[first .. n) from the logits of the last run (target j is predicted by
  // the logits at j - 1). `reference`, when given, is a backend of the same device that ran the
  // same tokens; KL and top-1 agreement are measured against it. Non-finite logits are an error
  // naming `where`.
  virtual void score(const std::vector<int>& tokens, int first, const LogitsBackend* reference,
                     const std::string& where, WindowScores& out) const = 0;
  // The logits of the last run, [n_tokens, vocab], on the host: the CPU backend's own; a GPU
  // backend copies them into `scratch`. Sequential eval (eval/reference_store.h) keeps the
  // reference's rows on disk and scores each method's rows against them on the host.
  virtual const float* host_logits(std::vector<float>& scratch) const = 0;
  // Device memory of this backend: null on the CPU; on a GPU {"weight_bytes_device",
  // "peak_bytes", ...} as measured with cudaMemGetInfo (see the run document's "vram").
  virtual nlohmann::json memory() const { return nullptr; }
};

}  // namespace qb
