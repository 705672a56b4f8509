#pragma once
// Shared by the fuzz targets (tests/fuzz/fuzz_*.cpp) and their regression test
// (tests/fuzz_regressions): each target is a function of one input that calls a parser's public
// entry point, catches qb::Error (the parser's way to refuse a file) and lets everything else
// through: another exception, a sanitizer report or a crash is a finding.
//
// Readers that take a path get the input as a file in a per-process scratch folder on tmpfs.
// Inputs of several files are split at kFileSeparator (e.g. an index and its shards).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

namespace qb::fuzz {

inline constexpr std::string_view kFileSeparator = "\n#qb-fuzz-file#\n";

// An empty folder of this process (/dev/shm when it exists, else $TMPDIR or /tmp), emptied on
// every call and removed at exit.
std::string fresh_scratch_dir();
void write_file(const std::string& path, std::string_view bytes);
std::vector<std::string_view> split_files(std::string_view input);

// Refusals so far in this process: the replay test checks that a seed meant to be read is read.
inline size_t& refusal_count() {
  static size_t count = 0;
  return count;
}

// Runs `parse`; a qb::Error is a refusal, which is fine.
template <class F>
void refusal_or_success(F&& parse) {
  try {
    parse();
  } catch (const qb::Error&) {
    ++refusal_count();
  }
}

// The targets: one per parser of downloaded files, named as the fuzz_<name> executables.
void fuzz_safetensors(std::string_view input);
void fuzz_safetensors_index(std::string_view input);
void fuzz_hf_config(std::string_view input);
void fuzz_llama2c(std::string_view input);
void fuzz_awq_checkpoint(std::string_view input);
void fuzz_model_catalog(std::string_view input);
void fuzz_run_document(std::string_view input);
void fuzz_history(std::string_view input);
void fuzz_hf_tokenizer(std::string_view input);
void fuzz_gguf(std::string_view input);
void fuzz_gptq_checkpoint(std::string_view input);

}  // namespace qb::fuzz
