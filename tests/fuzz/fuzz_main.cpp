// libFuzzer's entry point for one target: each fuzz_<name> executable is built from this file with
// QB_FUZZ_TARGET=qb::fuzz::fuzz_<name> and the target's own file.
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  QB_FUZZ_TARGET(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
