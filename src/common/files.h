#pragma once
// File helpers shared by every stage: whole-file reads, read-only mappings, sha256, and writes
// that never leave a half-written file behind (temporary file, then rename).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace qb {

// A read-only view of a file's bytes, kept alive by shared ownership (mmap underneath).
class MappedFile {
 public:
  static std::shared_ptr<const MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text_file(const std::string& path);
// The file parsed as JSON; a missing or malformed file is an error naming it.
nlohmann::json read_json_file(const std::string& path);
bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

// Lowercase hex sha256 of a byte range or of a file's contents.
std::string sha256_hex(const void* data, size_t n);
std::string sha256_file(const std::string& path);

// Writes `content` to `path` via `path.tmp.<pid>` and rename(2): readers see the old file or the
// whole new one.
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace qb
