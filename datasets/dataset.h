#pragma once
// Text datasets: the file as it is on disk, with its provenance for reports.
#include <string>

#include <nlohmann/json.hpp>

namespace qb {

// WikitextRaw: wiki.*.raw (" = Title = " headings, raw text); WikitextTokens: wiki.*.tokens /
// test.txt (<unk> and " @-@ " already split); Text: any other UTF-8 file. Auto: chosen by
// load_text_dataset from the file's name and content.
enum class DatasetFormat { Auto, Text, WikitextRaw, WikitextTokens };
const char* dataset_format_name(DatasetFormat f);  // "auto", "text", "wikitext-raw", "wikitext-tokens"

struct TextDataset {
  std::string path;
  DatasetFormat format = DatasetFormat::Text;  // never Auto once loaded
  std::string sha256;
  size_t bytes = 0;
  // The text that is tokenized, as one string. For wikitext-raw it is the file's lines taken as the
  // HF dataset's rows (a line " \n" is an empty row) joined with "\n\n", which is what the
  // GPTQ/AWQ evaluations tokenize; for other formats it is the file's bytes as they are.
  std::string text;
  std::string preprocessing;  // what was done to the file's bytes to get `text`, for reports
};

// "\n\n".join(rows) for the WikiText raw file layout (one HF row per line, empty rows as " \n").
std::string join_wikitext_rows(const std::string& raw);

// Reads the file; an empty (or whitespace-only) file is an error naming it. Auto: *.raw or
// " = Title = " headings -> WikiText (tokens when <unk> or " @-@ " appear), else Text.
TextDataset load_text_dataset(const std::string& path, DatasetFormat format = DatasetFormat::Auto);
nlohmann::json dataset_json(const TextDataset& d, size_t n_tokens);

}  // namespace qb
