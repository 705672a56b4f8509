#pragma once
// The CPU LogitsBackend: the reference forward pass (model/cpu_forward.h) scored with eval/metrics.h.
#include <memory>

#include "model/cpu_forward.h"
#include "model/logits_backend.h"

namespace qb {

// activations: float32 throughout, or llama.cpp's CPU arithmetic (model/cpu_forward.h).
std::unique_ptr<LogitsBackend> make_cpu_backend(const Model& model, Activations activations = Activations::Exact);

}  // namespace qb
