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

// Outputs are built under a temporary name beside their final one, "<path>.tmp.<host>.<pid>", and
// renamed into place: readers, and a run killed at any moment (kill -9, a full disk, Ctrl-C), see
// the old output or the whole new one, never a part. A temporary name that a killed run left behind
// is removed by the next write of the same path on the same host, once its process is gone.

// Writes `content` to a temporary file, fsyncs it, renames it to `path` and fsyncs the directory.
// A failed write ("<path>: write failed: No space left on device", "File too large") removes the
// temporary file and leaves the old `path` as it was. Throws Interrupted (common/interrupt.h) when
// a signal arrives during a long write.
void write_file_atomic(const std::string& path, const std::string& content);

// A directory of files (a checkpoint) that appears whole or not at all: its files are written into
// file(name) (with write_file_atomic), and commit() renames the temporary directory to `path`. Left
// uncommitted (an error, Ctrl-C), the temporary directory is removed.
class AtomicDirectory {
 public:
  // `path` must not exist; commit() refuses to replace it if it appears meanwhile.
  explicit AtomicDirectory(const std::string& path);
  ~AtomicDirectory();
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;
  // Where the file `name` of the directory is written before commit().
  std::string file(const std::string& name) const { return temp_ + "/" + name; }
  // The temporary directory itself, where files are written before commit().
  const std::string& temp_path() const { return temp_; }
  void commit();

 private:
  std::string path_, temp_;
  bool committed_ = false;
};

}  // namespace qb
