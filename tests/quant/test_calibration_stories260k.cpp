// load_calibration with the real stories260K tokenizer: on a small generated text (sizes, BOS
// placement, which chunks are taken, provenance, refusals) and on TinyStories training text.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/files.h"
#include "datasets/tokenizer.h"
#include "quant/calibration.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories260K/tok512.model", "text/tinystories/tinystories_train_head.txt"})
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  return "";
}

namespace {

const std::string kTokenizer = "models/stories260K/tok512.model";
const std::string kCalib = "text/tinystories/tinystories_train_head.txt";

// A text of `n` numbered sentences: no two stretches of a few tokens alike, so every sample can be
// found in the tokenized text at one place.
std::string numbered_sentences(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) text += "Sentence " + std::to_string(i) + " is about a cat.\n";
  return text;
}

// The chunk index (in chunks of seq_len - 1 tokens of `ids`, the file tokenized without BOS) of
// every sample of `set`, searched in order; -1 for a sample that is no chunk.
std::vector<long> sample_chunks(const CalibrationSet& set, const std::vector<int>& ids) {
  const long chunk = set.seq_len - 1, n_chunks = static_cast<long>(ids.size()) / chunk;
  std::vector<long> found;
  long next = 0;
  for (int s = 0; s < set.n_samples; ++s) {
    const auto sample = set.tokens.begin() + static_cast<long>(s) * set.seq_len + 1;
    long at = -1;
    for (long c = next; c < n_chunks && at < 0; ++c)
      if (std::equal(sample, sample + chunk, ids.begin() + c * chunk)) at = c;
    found.push_back(at);
    if (at >= 0) next = at + 1;
  }
  return found;
}

// Samples are BOS followed by a chunk, with no BOS inside.
void check_bos_first_only(const CalibrationSet& set, const Tokenizer& tok) {
  for (int s = 0; s < set.n_samples; ++s) {
    CHECK(set.tokens[static_cast<size_t>(s) * set.seq_len] == tok.bos_id());
    for (int i = 1; i < set.seq_len; ++i) CHECK(set.tokens[static_cast<size_t>(s) * set.seq_len + i] != tok.bos_id());
  }
}

// The chunks taken are spread evenly over the whole file: the first chunk, then steps of
// n_chunks / n_samples chunks (rounded down or up), the last within one step of the end.
void check_evenly_spaced(const std::vector<long>& chunks, long n_chunks) {
  const long n = static_cast<long>(chunks.size());
  const long step_down = n_chunks / n, step_up = (n_chunks + n - 1) / n;
  CHECK(chunks[0] == 0);
  for (long s = 1; s < n; ++s) {
    INFO("sample " << s << " at chunk " << chunks[s] << ", previous at " << chunks[s - 1]);
    CHECK(chunks[s] - chunks[s - 1] >= step_down);
    CHECK(chunks[s] - chunks[s - 1] <= step_up);
  }
  CHECK(chunks[n - 1] >= n_chunks - step_up);
}

}  // namespace

TEST_CASE("calibration on a generated text: sizes, BOS + chunk, evenly spaced chunks, provenance") {
  const auto tok_owner = open_tokenizer(test::data_file(kTokenizer));
  const Tokenizer& tok = *tok_owner;
  const std::string dir = test::temp_dir("calib_load");
  const std::string path = dir + "/calib.txt";
  write_file_atomic(path, numbered_sentences(200));
  const std::vector<int> ids = tok.encode(read_calibration_text(path, "", false).text);
  const int n_samples = 8, seq_len = 33;
  const long n_chunks = static_cast<long>(ids.size()) / (seq_len - 1);
  REQUIRE(n_chunks >= 4 * n_samples);  // enough that the samples are spread, not consecutive

  const CalibrationSet set = load_calibration(path, tok, n_samples, seq_len, "", false);
  CHECK(set.n_samples == n_samples);
  CHECK(set.seq_len == seq_len);
  REQUIRE(set.tokens.size() == static_cast<size_t>(n_samples) * seq_len);
  check_bos_first_only(set, tok);
  const std::vector<long> chunks = sample_chunks(set, ids);
  for (long c : chunks) CHECK(c >= 0);
  check_evenly_spaced(chunks, n_chunks);

  const nlohmann::json& p = set.provenance;
  CHECK(p["path"] == path);
  CHECK(p["sha256"] == sha256_file(path));
  CHECK(p["samples"] == n_samples);
  CHECK(p["samples_requested"] == n_samples);
  CHECK(p["seq_len"] == seq_len);
  CHECK(p["tokens"] == set.tokens.size());
  CHECK(p["file_tokens"] == ids.size());
  CHECK(p["selection"].is_string());
  CHECK(!p.contains("forced_on_eval_file"));
}

TEST_CASE("calibration with fewer chunks than samples takes every chunk, in order, and records the real count") {
  const auto tok_owner = open_tokenizer(test::data_file(kTokenizer));
  const Tokenizer& tok = *tok_owner;
  const std::string path = test::temp_dir("calib_few") + "/calib.txt";
  write_file_atomic(path, numbered_sentences(10));
  const std::vector<int> ids = tok.encode(read_calibration_text(path, "", false).text);
  const int seq_len = 17;
  const long n_chunks = static_cast<long>(ids.size()) / (seq_len - 1);
  REQUIRE(n_chunks >= 2);
  REQUIRE(n_chunks < 1000);

  const CalibrationSet set = load_calibration(path, tok, 1000, seq_len, "", false);
  CHECK(set.n_samples == n_chunks);
  CHECK(set.tokens.size() == static_cast<size_t>(n_chunks) * seq_len);
  check_bos_first_only(set, tok);
  const std::vector<long> chunks = sample_chunks(set, ids);
  for (long s = 0; s < n_chunks; ++s) CHECK(chunks[s] == s);
  CHECK(set.provenance["samples"] == n_chunks);
  CHECK(set.provenance["samples_requested"] == 1000);
}

TEST_CASE("calibration refuses bad sizes, a text shorter than one sample, and the evaluation file unless forced") {
  const auto tok_owner = open_tokenizer(test::data_file(kTokenizer));
  const Tokenizer& tok = *tok_owner;
  const std::string dir = test::temp_dir("calib_refuse");
  const std::string path = dir + "/calib.txt", eval = dir + "/eval.txt";
  write_file_atomic(path, numbered_sentences(20));
  write_file_atomic(eval, numbered_sentences(20));  // the same contents: refused like the same file

  CHECK_THROWS_WITH(load_calibration(path, tok, 0, 16, "", false), Catch::Contains("must be >= 1"));
  CHECK_THROWS_WITH(load_calibration(path, tok, 4, 1, "", false), Catch::Contains("must be >= 2"));
  const size_t file_tokens = tok.encode(read_calibration_text(path, "", false).text).size();
  const int too_long = static_cast<int>(file_tokens) + 2;  // a chunk of file_tokens + 1 tokens
  CHECK_THROWS_WITH(load_calibration(path, tok, 1, too_long, "", false),
                    Catch::Contains(path) && Catch::Contains("fewer than one calibration sample"));
  CHECK(load_calibration(path, tok, 1, too_long - 1, "", false).n_samples == 1);  // exactly one chunk

  CHECK_THROWS_WITH(load_calibration(path, tok, 2, 16, eval, false), Catch::Contains("is the evaluation file"));
  const CalibrationSet forced = load_calibration(path, tok, 2, 16, eval, true);
  CHECK(forced.n_samples == 2);
  CHECK(forced.provenance["forced_on_eval_file"] == true);
}

TEST_CASE("TinyStories calibration samples: BOS first, none inside, evenly spaced, real counts recorded") {
  const auto tok_owner = open_tokenizer(test::data_file(kTokenizer));
  const Tokenizer& tok = *tok_owner;
  const std::string path = test::data_file(kCalib);
  const std::vector<int> ids = tok.encode(read_calibration_text(path, "", false).text);
  const CalibrationSet set = load_calibration(path, tok, 16, 128, "", false);
  CHECK(set.n_samples == 16);
  REQUIRE(set.tokens.size() == 16 * 128);
  check_bos_first_only(set, tok);
  CHECK(set.provenance["tokens"] == 16 * 128);
  CHECK(set.provenance["file_tokens"] == ids.size());
  const std::vector<long> chunks = sample_chunks(set, ids);
  for (long c : chunks) CHECK(c >= 0);
  check_evenly_spaced(chunks, static_cast<long>(ids.size()) / 127);
  // More samples than the file holds: all of it, and the real number recorded.
  const CalibrationSet all = load_calibration(path, tok, 100000, 512, "", false);
  CHECK(all.n_samples < 100000);
  CHECK(all.provenance["samples"] == all.n_samples);
  CHECK(all.provenance["samples_requested"] == 100000);
  CHECK(all.n_samples == all.provenance["file_tokens"].get<long>() / 511);
}
