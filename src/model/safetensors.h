#pragma once
// The safetensors format, read and written here by hand (it is three fields):
//   u64 little-endian N | N bytes of JSON header | data
// header: {"<name>": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end)}, ...,
//          "__metadata__": {"k": "v"}}; offsets are relative to the start of the data section.
// Reading maps the file and checks every entry (dtype known, offsets in range and matching
// shape x dtype size); a bad file throws naming the file and the tensor.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/files.h"
#include "model/model.h"

namespace qb {

struct SafetensorsEntry {
  std::string dtype;            // "F32" | "F16" | "BF16" | "I32"
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_->path(); }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }
  // The entry, or an error naming the file and the missing tensor.
  const SafetensorsEntry& get(const std::string& name) const;
  std::shared_ptr<const MappedFile> mapping() const { return file_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<const MappedFile> file_;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// The tensors of an HF model directory: model.safetensors, or the shards that
// model.safetensors.index.json's weight_map names. Every file is opened and checked on
// construction: weight_map is an object of file names, every shard opens and parses (the error
// names it), no tensor is in two files, and every indexed tensor is in the shard the index names.
class SafetensorsDirectory {
 public:
  explicit SafetensorsDirectory(const std::string& dir);
  bool has(const std::string& name) const { return file_of_.count(name) != 0; }
  std::vector<std::string> names() const;  // every tensor of every file, sorted
  // The entry, checked to be one of `dtypes` with exactly `shape`; errors name the file (or the
  // directory, for a missing tensor) and the tensor.
  const SafetensorsEntry& get(const std::string& name, const std::vector<std::string>& dtypes,
                              const std::vector<int64_t>& shape) const;
  // A dense F32/F16/BF16 weight of exactly `shape`, in its dtype, sharing the file's mapping.
  Tensor dense(const std::string& name, const std::vector<int64_t>& shape) const;

 private:
  const SafetensorsFile& file_of(const std::string& name) const;

  std::string dir_;
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> file_of_;
};

// A tensor to write: bytes in `dtype`, row-major.
struct SafetensorsBlob {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

size_t safetensors_dtype_size(const std::string& dtype);  // 0 for an unknown dtype
// Writes atomically (temporary file, then rename); tensors sorted by name, as safetensors does.
void write_safetensors(const std::string& path, const std::vector<SafetensorsBlob>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace qb
