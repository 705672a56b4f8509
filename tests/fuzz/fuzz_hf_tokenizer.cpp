// An HF tokenizer.json (datasets/hf_tokenizer.h): loaded, then a mixed text encoded (with and
// without special tokens) and decoded.
#include "datasets/hf_tokenizer.h"
#include "fuzz_support.h"

namespace qb::fuzz {

void fuzz_hf_tokenizer(std::string_view input) {
  const std::string path = fresh_scratch_dir() + "/tokenizer.json";
  write_file(path, input);
  refusal_or_success([&] {
    const HfTokenizer tokenizer(path);
    const std::string text = "Once upon a time, 123 caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87\n\t  <s></s><|endoftext|> x";
    const std::vector<int> ids = tokenizer.encode(text);
    (void)tokenizer.encode_with_special_tokens(text);
    (void)tokenizer.decode(ids, false);
    (void)tokenizer.decode(ids, true);
  });
}

}  // namespace qb::fuzz
