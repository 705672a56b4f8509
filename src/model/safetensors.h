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
  // The entry as stored, whatever its dtype and shape; an error naming the directory when missing.
  const SafetensorsEntry& entry(const std::string& name) const { return file_of(name).get(name); }
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

// A tensor planned before its bytes exist.
struct SafetensorsTensorSpec {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  size_t nbytes() const;  // shape x dtype size; an error for an unknown dtype
};

// HF save_pretrained's default max_shard_size "5GB" (decimal, as HF counts "GB"; "GiB" is binary).
constexpr uint64_t kDefaultShardBytes = 5'000'000'000ULL;
// "5GB", "500MB", "2GiB", "100KB", "123" (bytes), as HF's max_shard_size; an error naming `where`.
uint64_t parse_byte_size(const std::string& text, const std::string& where);

// Writes an HF safetensors directory as a stream, so that a checkpoint larger than memory never
// exists in memory: every tensor (name, dtype, shape) is planned up front and assigned, in plan
// order, to shards of at most max_shard_bytes of tensor data (HF's split: a shard is closed when
// the next tensor would overflow it; a tensor larger than the limit gets a shard of its own).
// One shard is "model.safetensors"; several are "model-00001-of-0000N.safetensors" with
// "model.safetensors.index.json" ({"metadata": {"total_size"}, "weight_map"}), as HF writes them.
// Each shard's header is written when the shard is opened; then the tensors' bytes arrive in plan
// order, each in as many pieces as the caller likes. Files are written into `dir`, which should be
// an AtomicDirectory's temporary directory (common/files.h): a failed or interrupted run then
// leaves nothing behind.
class SafetensorsShardWriter {
 public:
  SafetensorsShardWriter(std::string dir, std::vector<SafetensorsTensorSpec> plan, uint64_t max_shard_bytes,
                         std::map<std::string, std::string> metadata = {{"format", "pt"}});
  ~SafetensorsShardWriter();
  SafetensorsShardWriter(const SafetensorsShardWriter&) = delete;
  SafetensorsShardWriter& operator=(const SafetensorsShardWriter&) = delete;

  // The next `bytes` of tensor `name`, which must be the planned tensor now being written (the
  // next one in the plan once the previous one is complete); an error names the tensor otherwise,
  // or when the bytes overrun its size.
  void write(const std::string& name, const void* data, size_t bytes);
  // The whole tensor at once (write() with all its bytes).
  void write(const SafetensorsBlob& blob);
  // Checks that every planned tensor is complete, closes (fsyncs) the last shard and writes the
  // index when there are several shards.
  void finish();
  // The shard file names, in order.
  const std::vector<std::string>& shard_names() const { return shard_names_; }

 private:
  void open_shard(size_t shard);
  void close_shard();
  void write_bytes(const void* data, size_t bytes);  // to the open shard

  std::string dir_;
  std::vector<SafetensorsTensorSpec> plan_;
  std::map<std::string, std::string> metadata_;
  std::vector<size_t> shard_of_;          // plan index -> shard index
  std::vector<std::string> shard_names_;  // shard index -> file name
  size_t next_ = 0;     // plan index of the tensor being written
  size_t written_ = 0;  // bytes of it written so far
  int fd_ = -1;
  size_t open_shard_ = 0;
  std::string open_path_;
  bool finished_ = false;
};

}  // namespace qb
