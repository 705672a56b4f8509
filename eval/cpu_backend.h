#pragma once
// The CPU LogitsBackend: the reference forward pass (model/cpu_forward.h) scored with eval/metrics.h.
#include <memory>

#include "model/logits_backend.h"

namespace qb {

std::unique_ptr<LogitsBackend> make_cpu_backend(const Model& model);

}  // namespace qb
