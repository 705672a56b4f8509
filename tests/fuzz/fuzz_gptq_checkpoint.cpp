// A GPTQ checkpoint (src/quant/gptq_format.h): config.json (the input's first file),
// model.safetensors (its second) and, when present, quantize_config.json (its third), loaded
// and unpacked.
#include "fuzz_support.h"
#include "quant/gptq_format.h"

namespace qb::fuzz {

void fuzz_gptq_checkpoint(std::string_view input) {
  const std::string dir = fresh_scratch_dir();
  const std::vector<std::string_view> files = split_files(input);
  write_file(dir + "/config.json", files[0]);
  if (files.size() > 1) write_file(dir + "/model.safetensors", files[1]);
  if (files.size() > 2) write_file(dir + "/quantize_config.json", files[2]);
  refusal_or_success([&] {
    if (is_gptq_checkpoint(dir)) (void)load_gptq_checkpoint(dir);
  });
  refusal_or_success([&] { (void)load_gptq_checkpoint(dir); });
}

}  // namespace qb::fuzz
