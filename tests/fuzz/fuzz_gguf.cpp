// A GGUF file (src/model/gguf.h): header, metadata and tensor infos (GgufFile), every tensor read
// and dequantized, the vocabulary (read_gguf_vocab) and the llama model (load_gguf_model).
#include "fuzz_support.h"
#include "model/gguf.h"

namespace qb::fuzz {

void fuzz_gguf(std::string_view input) {
  const std::string path = fresh_scratch_dir() + "/model.gguf";
  write_file(path, input);
  refusal_or_success([&] {
    const GgufFile file(path);
    for (const GgufTensorInfo& info : file.tensors())
      refusal_or_success([&] { (void)file.tensor(info.name).to_float(); });
    refusal_or_success([&] { (void)read_gguf_vocab(file); });
    (void)load_gguf_model(file);
  });
}

}  // namespace qb::fuzz
