#include "datasets/dataset.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "common/error.h"
#include "common/files.h"

namespace qb {

static bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* dataset_format_name(DatasetFormat f) {
  static constexpr const char* kNames[] = {"auto", "text", "wikitext-raw", "wikitext-tokens"};  // enum order
  return kNames[static_cast<int>(f)];
}

static DatasetFormat detect_format(const std::string& path, const std::string& text) {
  const std::string head = text.substr(0, 1 << 16);
  const bool wiki_heading = head.find(" = ") != std::string::npos && head.find(" = \n") != std::string::npos;
  if (ends_with(path, ".raw")) return DatasetFormat::WikitextRaw;
  if (wiki_heading && (head.find("<unk>") != std::string::npos || head.find(" @-@ ") != std::string::npos))
    return DatasetFormat::WikitextTokens;
  if (wiki_heading) return DatasetFormat::WikitextRaw;
  return DatasetFormat::Text;
}

TextDataset load_text_dataset(const std::string& path, DatasetFormat format) {
  if (is_directory(path)) fail(path, "is a directory; give the dataset's text file (e.g. wiki.test.raw)");
  TextDataset d;
  d.path = path;
  d.text = read_text_file(path);
  d.bytes = d.text.size();
  d.sha256 = sha256_hex(d.text.data(), d.text.size());
  if (std::all_of(d.text.begin(), d.text.end(), [](unsigned char ch) { return std::isspace(ch); }))
    fail(path, "dataset is empty (no text to score)");
  d.format = format == DatasetFormat::Auto ? detect_format(path, d.text) : format;
  if (d.format == DatasetFormat::WikitextRaw) {
    d.text = join_wikitext_rows(d.text);
    d.preprocessing = "lines taken as HF rows (\" \\n\" = empty row) and joined with \"\\n\\n\" (GPTQ/AWQ)";
  } else {
    d.preprocessing = "none: the file's bytes";
  }
  return d;
}

std::string join_wikitext_rows(const std::string& raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  size_t begin = 0;
  bool first = true;
  while (begin < raw.size()) {
    size_t end = raw.find('\n', begin);
    end = end == std::string::npos ? raw.size() : end + 1;
    const std::string_view line(raw.data() + begin, end - begin);
    if (!first) out += "\n\n";
    if (line != " \n") out += line;
    first = false;
    begin = end;
  }
  return out;
}

nlohmann::json dataset_json(const TextDataset& d, size_t n_tokens) {
  return {{"path", d.path},      {"format", dataset_format_name(d.format)}, {"sha256", d.sha256},
          {"bytes", d.bytes},    {"tokens", n_tokens},                       {"preprocessing", d.preprocessing}};
}

}  // namespace qb
