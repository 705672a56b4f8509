#pragma once
// Calibration samples for AWQ: token windows cut from a calibration text file that must not be
// the evaluation split.
//
// Protocol: the whole file is tokenized once (no BOS/EOS added), cut into consecutive
// non-overlapping chunks of seq_len - 1 tokens, and n_samples chunks are taken evenly spaced over
// the file (chunk i * n_chunks / n_samples), so the samples cover the whole text rather than its
// beginning. Each sample is BOS followed by its chunk: one BOS at position 0, as the evaluation
// windows start, and none inside. With fewer than n_samples chunks every chunk is used and the
// real count is recorded.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "datasets/dataset.h"
#include "datasets/tokenizer.h"

namespace qb {

struct CalibrationSet {
  std::vector<int> tokens;  // [n_samples, seq_len] row-major
  int n_samples = 0;
  int seq_len = 0;
  // {"path", "sha256", "samples", "seq_len", "tokens", "file_tokens", "selection"}: the
  // "calibration" object of the run document.
  nlohmann::json provenance;
};

// Reads the calibration text; throws qb::Error when it is the evaluation file (the same file, or a
// file with the same sha256) unless force. eval_path "" disables the check.
TextDataset read_calibration_text(const std::string& calib_path, const std::string& eval_path, bool force);

// Throws qb::Error when calib_path is eval_path (same file, or same sha256) unless force, when the
// file yields no complete chunk, or on bad sizes. eval_path "" disables the check.
CalibrationSet load_calibration(const std::string& calib_path, const Tokenizer& tokenizer, int n_samples, int seq_len,
                                const std::string& eval_path, bool force);

}  // namespace qb
