#include "model/logits_backend.h"

namespace qb {

const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

}  // namespace qb
