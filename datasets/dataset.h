#pragma once
// Text datasets: the file as it is on disk, with its provenance for reports.
#include <string>

#include <nlohmann/json.hpp>

namespace qb {

struct TextDataset {
  std::string path;
  // "wikitext-raw" (wiki.*.raw: " = Title = " headings, raw text), "wikitext-tokens"
  // (wiki.*.tokens / test.txt: <unk> and " @-@ " already split), or "text" (any other UTF-8 file).
  std::string format;
  std::string sha256;
  size_t bytes = 0;
  std::string text;  // exactly the file's bytes: the split is tokenized as one string
};

// Reads the file; an empty (or whitespace-only) file is an error naming it.
TextDataset load_text_dataset(const std::string& path);
nlohmann::json dataset_json(const TextDataset& d, size_t n_tokens);

}  // namespace qb
