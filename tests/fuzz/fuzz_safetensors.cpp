// One safetensors file: the u64 header length, the JSON header, every entry's dtype, shape and
// offsets against the data section (model/safetensors.h).
#include "fuzz_support.h"
#include "model/safetensors.h"

namespace qb::fuzz {

void fuzz_safetensors(std::string_view input) {
  const std::string path = fresh_scratch_dir() + "/model.safetensors";
  write_file(path, input);
  refusal_or_success([&] {
    const SafetensorsFile file(path);
    // Touch every byte an entry claims, so an offset past the mapping is an ASan report.
    unsigned sum = 0;
    for (const auto& [name, entry] : file.entries())
      for (size_t i = 0; i < entry.nbytes; ++i) sum += entry.data[i];
    (void)sum;
  });
}

}  // namespace qb::fuzz
