#include "quant/calibration.h"

#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "datasets/dataset.h"

namespace qb {

namespace {
// True when both paths name the same file, or two files with the same contents.
bool same_file(const std::string& a, const std::string& a_sha256, const std::string& b) {
  std::error_code ec;
  if (std::filesystem::equivalent(a, b, ec)) return true;
  return file_exists(b) && sha256_file(b) == a_sha256;
}
}  // namespace

TextDataset read_calibration_text(const std::string& calib_path, const std::string& eval_path, bool force) {
  if (calib_path.empty()) fail("calibration", "AWQ needs a calibration text file; none was given");
  TextDataset text = load_text_dataset(calib_path);
  if (!eval_path.empty() && !force && same_file(calib_path, text.sha256, eval_path))
    fail(calib_path, "is the evaluation file " + eval_path +
                         " (same file or same sha256): calibrating on it would leak the test set; refused unless "
                         "forced");
  return text;
}

CalibrationSet load_calibration(const std::string& calib_path, const Tokenizer& tokenizer, int n_samples, int seq_len,
                                const std::string& eval_path, bool force) {
  if (n_samples < 1) fail(calib_path, "calibration samples " + std::to_string(n_samples) + " must be >= 1");
  if (seq_len < 2) fail(calib_path, "calibration sequence length " + std::to_string(seq_len) + " must be >= 2");
  const TextDataset text = read_calibration_text(calib_path, eval_path, force);
  const std::vector<int> ids = tokenizer.encode(text.text);
  // A family without BOS (bos_id -1, e.g. Qwen2) fills the whole sample with text.
  const bool bos = tokenizer.bos_id() >= 0;
  const int chunk = bos ? seq_len - 1 : seq_len;
  const long n_chunks = static_cast<long>(ids.size()) / chunk;
  if (n_chunks < 1)
    fail(calib_path, std::to_string(ids.size()) + " tokens: fewer than one calibration sample of " +
                         std::to_string(seq_len) + " tokens");
  CalibrationSet set;
  set.seq_len = seq_len;
  set.n_samples = static_cast<int>(std::min<long>(n_samples, n_chunks));
  set.tokens.reserve(static_cast<size_t>(set.n_samples) * seq_len);
  for (int s = 0; s < set.n_samples; ++s) {
    const long c = static_cast<long>(s) * n_chunks / set.n_samples;
    if (bos) set.tokens.push_back(tokenizer.bos_id());
    set.tokens.insert(set.tokens.end(), ids.begin() + c * chunk, ids.begin() + (c + 1) * chunk);
  }
  set.provenance = {{"path", calib_path},
                    {"sha256", text.sha256},
                    {"samples", set.n_samples},
                    {"samples_requested", n_samples},
                    {"seq_len", seq_len},
                    {"tokens", set.tokens.size()},
                    {"file_tokens", ids.size()},
                    {"selection", bos ? "file tokenized once without BOS, cut into chunks of seq_len-1 tokens, samples "
                                        "evenly spaced over the chunks, each BOS + chunk"
                                      : "file tokenized once, cut into chunks of seq_len tokens (the tokenizer has no "
                                        "BOS), samples evenly spaced over the chunks"}};
  if (force && !eval_path.empty() && same_file(calib_path, text.sha256, eval_path))
    set.provenance["forced_on_eval_file"] = true;
  return set;
}

}  // namespace qb
