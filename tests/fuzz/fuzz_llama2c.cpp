// A llama2.c checkpoint: the 7 x int32 header and the file size it implies (model/load.h).
#include "fuzz_support.h"
#include "model/load.h"

namespace qb::fuzz {

void fuzz_llama2c(std::string_view input) {
  const std::string path = fresh_scratch_dir() + "/model.bin";
  write_file(path, input);
  refusal_or_success([&] {
    const Model m = load_llama2c(path);
    for (const Tensor* t : named_dense_tensors(m)) (void)t->to_float();
  });
}

}  // namespace qb::fuzz
