#include "fuzz_support.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace qb::fuzz {
namespace fs = std::filesystem;

namespace {

// Allocated once and never freed, so the exit handler can still use it.
const fs::path& scratch_root() {
  static const fs::path* root = [] {
    const char* tmpdir = std::getenv("TMPDIR");
    const fs::path base = fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::path(tmpdir ? tmpdir : "/tmp");
    return new fs::path(base / ("qb-fuzz-" + std::to_string(getpid())));
  }();
  static const bool cleanup_registered = [] {
    return std::atexit([] {
      std::error_code ignored;
      fs::remove_all(*root, ignored);
    }) == 0;
  }();
  (void)cleanup_registered;
  return *root;
}

}  // namespace

std::string fresh_scratch_dir() {
  const fs::path dir = scratch_root();
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("fuzz harness: cannot write " + path);
}

std::vector<std::string_view> split_files(std::string_view input) {
  std::vector<std::string_view> parts;
  for (size_t at; (at = input.find(kFileSeparator)) != std::string_view::npos;) {
    parts.push_back(input.substr(0, at));
    input.remove_prefix(at + kFileSeparator.size());
  }
  parts.push_back(input);
  return parts;
}

}  // namespace qb::fuzz
