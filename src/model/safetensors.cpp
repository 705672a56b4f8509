#include "model/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/json_fields.h"

namespace qb {

size_t safetensors_dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(MappedFile::open(path)) {
  const size_t size = file_->size();
  if (size < 8) fail(path, "truncated safetensors file: " + std::to_string(size) + " bytes, no header length");
  uint64_t header_len = 0;
  std::memcpy(&header_len, file_->data(), 8);
  if (header_len > size - 8)
    fail(path, "safetensors header length " + std::to_string(header_len) + " exceeds the file (" +
                   std::to_string(size) + " bytes)");
  // The reference reader's limit: parsing JSON takes several times its size in memory.
  constexpr uint64_t kMaxHeaderBytes = 100'000'000;
  if (header_len > kMaxHeaderBytes)
    fail(path, "safetensors header length " + std::to_string(header_len) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file_->data() + 8, file_->data() + 8 + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed safetensors header JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "safetensors header is not a JSON object");
  const uint8_t* data = file_->data() + 8 + header_len;
  const size_t data_size = size - 8 - header_len;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (v.is_object())
        for (const auto& [k, val] : v.items())
          if (val.is_string()) metadata_[k] = val.get<std::string>();
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(where, "needs dtype, shape and data_offsets");
    SafetensorsEntry e;
    if (!v["dtype"].is_string()) fail(where, "dtype is not a string");
    e.dtype = v["dtype"].get<std::string>();
    const size_t elem = safetensors_dtype_size(e.dtype);
    if (elem == 0) fail(where, "unsupported dtype " + e.dtype + " (F32, F16, BF16, I32 are read)");
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(where, "data_offsets must be two non-negative integers");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail(where, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                      ") out of range (data section is " + std::to_string(data_size) + " bytes)");
    if (!v["shape"].is_array()) fail(where, "shape is not an array");
    // Multiplied with overflow checks: a shape claiming 2^64 elements must not wrap to the span.
    uint64_t nbytes = elem;
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(where, "shape has a non-integer, negative or oversized dimension " + d.dump());
      e.shape.push_back(d.get<int64_t>());
      overflow = overflow || __builtin_mul_overflow(nbytes, d.get<uint64_t>(), &nbytes);
    }
    if (overflow || nbytes != end - begin)
      fail(where, "data_offsets span " + std::to_string(end - begin) + " bytes but shape x " + e.dtype + " needs " +
                      (overflow ? std::string("more than 2^64") : std::to_string(nbytes)));
    e.data = data + begin;
    e.nbytes = end - begin;
    entries_[name] = e;
  }
  // Tensors may not share bytes (the format forbids it; a writer that overlaps them is broken).
  std::vector<std::pair<const uint8_t*, const std::string*>> starts;
  for (const auto& [name, e] : entries_) starts.push_back({e.data, &name});
  std::sort(starts.begin(), starts.end());
  for (size_t i = 1; i < starts.size(); ++i) {
    const SafetensorsEntry& before = entries_.at(*starts[i - 1].second);
    if (before.data + before.nbytes > starts[i].first)
      fail(path + ": tensor '" + *starts[i].second + "'", "data_offsets overlap tensor '" + *starts[i - 1].second + "'");
  }
}

const SafetensorsEntry& SafetensorsFile::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path(), "missing tensor '" + name + "'");
  return it->second;
}

// `dir`/`shard`, refused unless it stays inside the model directory: no absolute name, no '..',
// no symlink out. In an HF hub cache (.../models--org--name/snapshots/<revision>/) the files are
// links into the entry's blobs/, so there the entry is the directory they must stay inside.
static std::string confined_shard_path(const std::string& dir, const std::string& shard, const std::string& where) {
  namespace fs = std::filesystem;
  const fs::path name(shard);
  auto refuse = [&](const std::string& why) {
    fail(where, "shard \"" + shard + "\" " + why + "; shards must be files inside " + dir);
  };
  if (shard.empty() || name.is_absolute() || name.has_root_name()) refuse("is not a relative file name");
  for (const auto& part : name)
    if (part == "..") refuse("leaves the directory");
  std::error_code ec;
  fs::path root = fs::canonical(dir, ec);
  if (ec) fail(dir, "cannot resolve the model directory: " + ec.message());
  if (root.parent_path().filename() == "snapshots") root = root.parent_path().parent_path();
  const fs::path resolved = fs::canonical(fs::path(dir) / name, ec);
  if (ec) return dir + "/" + shard;  // missing: opening it gives the error naming it
  const fs::path inside = resolved.lexically_relative(root);
  if (inside.empty() || *inside.begin() == "..") refuse("resolves to " + resolved.string() + ", outside it");
  return dir + "/" + shard;
}

SafetensorsDirectory::SafetensorsDirectory(const std::string& dir) : dir_(dir) {
  const std::string index_path = dir + "/model.safetensors.index.json";
  std::map<std::string, std::string> shard_of;  // the index's weight_map: tensor -> file name
  std::set<std::string> shards;
  if (file_exists(index_path)) {
    const nlohmann::json index = read_json_file(index_path);
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      fail(index_path, "missing object 'weight_map'");
    for (const auto& [name, shard] : index["weight_map"].items()) {
      shard_of[name] = json_as<std::string>(shard, index_path, "weight_map[\"" + name + "\"]");
      shards.insert(shard_of[name]);
    }
  } else if (file_exists(dir + "/model.safetensors")) {
    shards.insert("model.safetensors");
  } else {
    fail(dir, "no model.safetensors or model.safetensors.index.json");
  }
  std::map<std::string, std::shared_ptr<const SafetensorsFile>> files;
  const std::string listed_in = shard_of.empty() ? dir : index_path;
  for (const std::string& shard : shards) {
    auto file = std::make_shared<const SafetensorsFile>(confined_shard_path(dir, shard, listed_in));
    for (const auto& [name, entry] : file->entries()) {
      auto [it, added] = file_of_.emplace(name, file);
      if (!added) fail(file->path(), "tensor '" + name + "' is also in " + it->second->path());
    }
    files[shard] = file;
  }
  for (const auto& [name, shard] : shard_of)
    if (!files[shard]->has(name))
      fail(files[shard]->path(), "missing tensor '" + name + "', which " + index_path + " places in this file");
}

std::vector<std::string> SafetensorsDirectory::names() const {
  std::vector<std::string> out;
  for (const auto& [name, file] : file_of_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsDirectory::file_of(const std::string& name) const {
  auto it = file_of_.find(name);
  if (it == file_of_.end()) fail(dir_, "missing tensor '" + name + "'");
  return *it->second;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

const SafetensorsEntry& SafetensorsDirectory::get(const std::string& name, const std::vector<std::string>& dtypes,
                                                  const std::vector<int64_t>& shape) const {
  const SafetensorsFile& file = file_of(name);
  const SafetensorsEntry& e = file.get(name);
  if (std::find(dtypes.begin(), dtypes.end(), e.dtype) == dtypes.end()) {
    std::string expected;
    for (size_t i = 0; i < dtypes.size(); ++i)
      expected += (i == 0 ? "" : i + 1 == dtypes.size() ? " or " : ", ") + dtypes[i];
    fail(file.path(), "tensor '" + name + "' has dtype " + e.dtype + ", expected " + expected);
  }
  if (e.shape != shape)
    fail(file.path(), "tensor '" + name + "' has shape " + shape_str(e.shape) + ", expected " + shape_str(shape));
  return e;
}

Tensor SafetensorsDirectory::dense(const std::string& name, const std::vector<int64_t>& shape) const {
  const SafetensorsEntry& e = get(name, {"F32", "F16", "BF16"}, shape);
  Tensor t;
  t.name = name;
  t.dtype = e.dtype == "F32" ? DType::F32 : e.dtype == "F16" ? DType::F16 : DType::BF16;
  t.shape = shape;
  t.data = e.data;
  t.owner = std::shared_ptr<const void>(file_of(name).mapping(), e.data);
  return t;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsBlob>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsBlob*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const auto* t : sorted) {
    int64_t numel = 1;
    for (int64_t d : t->shape) numel *= d;
    if (static_cast<size_t>(numel) * safetensors_dtype_size(t->dtype) != t->bytes.size())
      fail(path, "tensor '" + t->name + "': " + std::to_string(t->bytes.size()) + " bytes do not match its shape");
    header[t->name] = {{"dtype", t->dtype}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->bytes.size()}}};
    offset += t->bytes.size();
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  std::string out;
  out.reserve(8 + h.size() + offset);
  const uint64_t n = h.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += h;
  for (const auto* t : sorted) out.append(reinterpret_cast<const char*>(t->bytes.data()), t->bytes.size());
  write_file_atomic(path, out);
}

size_t SafetensorsTensorSpec::nbytes() const {
  const size_t elem = safetensors_dtype_size(dtype);
  if (elem == 0) fail(name, "unsupported safetensors dtype " + dtype);
  size_t n = elem;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

uint64_t parse_byte_size(const std::string& text, const std::string& where) {
  size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.'))
    ++digits;
  std::string unit = text.substr(digits);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  static const std::pair<const char*, double> kUnits[] = {{"", 1},     {"B", 1},          {"KB", 1e3},
                                                          {"MB", 1e6}, {"GB", 1e9},       {"TB", 1e12},
                                                          {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  double value = 0;
  try {
    size_t used = 0;
    value = digits ? std::stod(text.substr(0, digits), &used) : -1;
    if (used != digits) value = -1;
  } catch (const std::exception&) {
    value = -1;
  }
  for (const auto& [name, scale] : kUnits)
    if (unit == name && value > 0) return static_cast<uint64_t>(value * scale);
  fail(where, "'" + text + "' is not a size such as 5GB, 500MB or 2GiB");
}

SafetensorsShardWriter::SafetensorsShardWriter(std::string dir, std::vector<SafetensorsTensorSpec> plan,
                                               uint64_t max_shard_bytes, std::map<std::string, std::string> metadata)
    : dir_(std::move(dir)), plan_(std::move(plan)), metadata_(std::move(metadata)) {
  if (max_shard_bytes == 0) fail(dir_, "the maximum shard size must be positive");
  std::set<std::string> names;
  size_t shard = 0, in_shard = 0, used = 0;  // used: bytes of the shard being filled
  for (const SafetensorsTensorSpec& t : plan_) {
    if (!names.insert(t.name).second) fail(dir_, "tensor '" + t.name + "' is planned twice");
    const size_t bytes = t.nbytes();
    // HF's split, in plan order: a tensor that would overflow the shard starts the next one (a
    // tensor over the limit fills one alone).
    if (in_shard > 0 && (used + bytes > max_shard_bytes || bytes > max_shard_bytes)) {
      ++shard;
      in_shard = used = 0;
    }
    shard_of_.push_back(shard);
    ++in_shard;
    used += bytes;
  }
  const size_t n_shards = plan_.empty() ? 1 : shard + 1;
  for (size_t i = 0; i < n_shards; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, n_shards);
    shard_names_.push_back(n_shards == 1 ? "model.safetensors" : name);
  }
  open_shard(0);
}

SafetensorsShardWriter::~SafetensorsShardWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void SafetensorsShardWriter::open_shard(size_t shard) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  size_t offset = 0;
  for (size_t i = 0; i < plan_.size(); ++i) {
    if (shard_of_[i] != shard) continue;
    const size_t bytes = plan_[i].nbytes();
    header[plan_[i].name] = {{"dtype", plan_[i].dtype}, {"shape", plan_[i].shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned, as write_safetensors
  const uint64_t n = h.size();
  open_path_ = dir_ + "/" + shard_names_[shard];
  fd_ = ::open(open_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) fail(open_path_, std::string("cannot write: ") + std::strerror(errno));
  open_shard_ = shard;
  write_bytes(&n, 8);
  write_bytes(h.data(), h.size());
}

void SafetensorsShardWriter::close_shard() {
  int error = ::fsync(fd_) != 0 ? errno : 0;
  if (::close(fd_) != 0 && !error) error = errno;
  fd_ = -1;
  if (error) fail(open_path_, std::string("write failed: ") + std::strerror(error));
}

void SafetensorsShardWriter::write(const std::string& name, const void* data, size_t bytes) {
  if (finished_) fail(dir_, "tensor '" + name + "' written after finish()");
  while (next_ < plan_.size() && written_ == plan_[next_].nbytes() && plan_[next_].name != name) {
    ++next_;
    written_ = 0;
  }
  if (next_ >= plan_.size() || plan_[next_].name != name)
    fail(dir_, "tensor '" + name + "' written out of plan order (expected '" +
                   (next_ < plan_.size() ? plan_[next_].name : std::string("nothing more")) + "')");
  if (written_ + bytes > plan_[next_].nbytes())
    fail(dir_, "tensor '" + name + "': " + std::to_string(written_ + bytes) + " bytes written, its shape needs " +
                   std::to_string(plan_[next_].nbytes()));
  if (shard_of_[next_] != open_shard_) {
    close_shard();
    open_shard(shard_of_[next_]);
  }
  write_bytes(data, bytes);
  written_ += bytes;
}

void SafetensorsShardWriter::write_bytes(const void* data, size_t bytes) {
  throw_if_interrupted();
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t done = 0; done < bytes;) {
    const ssize_t w = ::write(fd_, p + done, bytes - done);
    if (w < 0 && errno == EINTR) {
      throw_if_interrupted();
      continue;
    }
    if (w < 0) fail(open_path_, std::string("write failed: ") + std::strerror(errno));
    done += static_cast<size_t>(w);
  }
}

void SafetensorsShardWriter::write(const SafetensorsBlob& blob) {
  const auto planned = std::find_if(plan_.begin() + static_cast<std::ptrdiff_t>(next_), plan_.end(),
                                    [&](const SafetensorsTensorSpec& t) { return t.name == blob.name; });
  if (planned != plan_.end() && (planned->dtype != blob.dtype || planned->shape != blob.shape))
    fail(dir_, "tensor '" + blob.name + "' is " + blob.dtype + " " + shape_str(blob.shape) + ", planned as " +
                   planned->dtype + " " + shape_str(planned->shape));
  write(blob.name, blob.bytes.data(), blob.bytes.size());
}

void SafetensorsShardWriter::finish() {
  if (finished_) return;
  while (next_ < plan_.size() && written_ == plan_[next_].nbytes()) {
    ++next_;
    written_ = 0;
  }
  if (next_ < plan_.size())
    fail(dir_, "tensor '" + plan_[next_].name + "' was not written (" + std::to_string(written_) + " of " +
                   std::to_string(plan_[next_].nbytes()) + " bytes)");
  close_shard();
  finished_ = true;
  if (shard_names_.size() == 1) return;
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  size_t total = 0;
  for (size_t i = 0; i < plan_.size(); ++i) {
    total += plan_[i].nbytes();
    index["weight_map"][plan_[i].name] = shard_names_[shard_of_[i]];
  }
  index["metadata"]["total_size"] = total;
  write_file_atomic(dir_ + "/model.safetensors.index.json", index.dump(2) + "\n");
}

}  // namespace qb
