// An AutoAWQ gemm checkpoint (quant/awq_format.h): config.json with its quantization_config (the
// input's first file) and model.safetensors (its second), loaded and unpacked.
#include "fuzz_support.h"
#include "quant/awq_format.h"

namespace qb::fuzz {

void fuzz_awq_checkpoint(std::string_view input) {
  const std::string dir = fresh_scratch_dir();
  const std::vector<std::string_view> files = split_files(input);
  write_file(dir + "/config.json", files[0]);
  if (files.size() > 1) write_file(dir + "/model.safetensors", files[1]);
  refusal_or_success([&] {
    if (is_awq_checkpoint(dir)) (void)load_awq_checkpoint(dir);
  });
  refusal_or_success([&] { (void)load_awq_checkpoint(dir); });
}

}  // namespace qb::fuzz
