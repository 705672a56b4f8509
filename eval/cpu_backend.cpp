#include "eval/cpu_backend.h"

#include <cmath>

#include "common/error.h"
#include "eval/metrics.h"
#include "model/cpu_forward.h"

namespace qb {
namespace {

class CpuBackend final : public LogitsBackend {
 public:
  CpuBackend(const Model& model, Activations activations) : model_(model, activations) {}
  Device device() const override { return Device::Cpu; }

  void run(const std::vector<int>& tokens) override {
    model_.forward(tokens.data(), 1, static_cast<int>(tokens.size()), logits_);
  }

  void score(const std::vector<int>& tokens, int first, const LogitsBackend* reference, const std::string& where,
             WindowScores& out) const override {
    const int vocab = model_.config().vocab_size, n = static_cast<int>(tokens.size());
    const auto* ref = dynamic_cast<const CpuBackend*>(reference);
    if (reference && !ref) fail(where, "the reference backend runs on another device");
    const int count = n - first;
    out.nll.assign(count, 0.0);
    out.kl.assign(ref ? count : 0, 0.0);
    out.top1_same.assign(ref ? count : 0, 0);
    bool finite = true;
#pragma omp parallel for schedule(static) reduction(&& : finite)
    for (int i = 0; i < count; ++i) {
      const int j = first + i;
      const float* row = &logits_[size_t(j - 1) * vocab];
      for (int v = 0; v < vocab; ++v) finite = finite && std::isfinite(row[v]);
      out.nll[i] = token_nll(row, vocab, tokens[j]);
      if (ref) {
        const float* ref_row = &ref->logits_[size_t(j - 1) * vocab];
        out.kl[i] = kl_divergence(ref_row, row, vocab);
        out.top1_same[i] = argmax(ref_row, vocab) == argmax(row, vocab);
      }
    }
    if (!finite) fail(where, "non-finite logits (NaN or Inf); the window is not averaged in");
  }

  const float* host_logits(std::vector<float>&) const override { return logits_.data(); }

 private:
  CpuModel model_;
  std::vector<float> logits_;  // [n_tokens, vocab] of the last run
};

}  // namespace

std::unique_ptr<LogitsBackend> make_cpu_backend(const Model& model, Activations activations) {
  return std::make_unique<CpuBackend>(model, activations);
}

}  // namespace qb
