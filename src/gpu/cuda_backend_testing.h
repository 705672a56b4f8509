#pragma once
// Test-only views into a CUDA backend (tests/gpu compare them with the CPU forward pass). The eval
// job never calls these: a window's full logits stay on the device.
#include <vector>

#include "model/logits_backend.h"

namespace qb::gpu::testing {

// The logits of the backend's last run, [n_tokens, vocab] row-major, copied to the host.
// Throws qb::Error if `backend` is not a CUDA backend or has not run.
std::vector<float> last_logits(const LogitsBackend& backend);

// Runs `tokens` like run() and returns the residual stream [n_tokens, dim] (row-major, FP32) before
// block 0 (the embeddings) and after every block: n_layers + 1 entries.
std::vector<std::vector<float>> run_with_residuals(LogitsBackend& backend, const std::vector<int>& tokens);

}  // namespace qb::gpu::testing
