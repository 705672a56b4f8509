#include "model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"
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

}  // namespace qb
