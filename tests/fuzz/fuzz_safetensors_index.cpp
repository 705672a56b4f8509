// A sharded safetensors directory: model.safetensors.index.json (the input's first file) and the
// shards model-00001.safetensors, model-00002.safetensors, ... (its following files), read by
// SafetensorsDirectory; then every tensor is fetched as a dense weight of its own shape and
// converted, which reads all of its bytes.
#include <cstdio>

#include "fuzz_support.h"
#include "model/safetensors.h"

namespace qb::fuzz {

void fuzz_safetensors_index(std::string_view input) {
  const std::string dir = fresh_scratch_dir();
  const std::vector<std::string_view> files = split_files(input);
  write_file(dir + "/model.safetensors.index.json", files[0]);
  std::vector<std::string> shards;
  for (size_t i = 1; i < files.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "/model-%05zu.safetensors", i);
    shards.push_back(dir + name);
    write_file(shards.back(), files[i]);
  }
  refusal_or_success([&] {
    const SafetensorsDirectory tensors(dir);
    for (const std::string& shard : shards) {
      const SafetensorsFile file(shard);  // for the shapes: the directory only checks them
      for (const auto& [name, entry] : file.entries())
        if (tensors.has(name) && entry.dtype != "I32") (void)tensors.dense(name, entry.shape).to_float();
    }
  });
}

}  // namespace qb::fuzz
