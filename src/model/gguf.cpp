#include "model/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include "common/error.h"
#include "model/block_linears.h"

namespace qb {

namespace {

constexpr uint64_t kMaxDims = 4;               // GGML_MAX_DIMS
constexpr uint64_t kMaxTensorName = 63;        // GGML_MAX_NAME (64) less the terminator
constexpr uint64_t kMaxArrayElements = 1 << 22;  // ~4M: a 256k vocabulary with its merges fits
// Smallest file footprint of a key/value (key length, type, a one-byte value) and of a tensor
// info (name length, n_dims, one ne, type, offset): counts beyond remaining / these are absurd.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// A bounds-checked little-endian cursor over the mapping; every read names the field it is for.
class Reader {
 public:
  Reader(const uint8_t* data, uint64_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  const uint8_t* take(uint64_t n, const std::string& field) {
    if (n > remaining())
      fail(path_, field + ": needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                      " but the file ends at " + std::to_string(size_) + " (truncated?)");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T scalar(const std::string& field) {
    T v;
    std::memcpy(&v, take(sizeof(T), field), sizeof(T));
    return v;
  }
  uint32_t u32(const std::string& field) { return scalar<uint32_t>(field); }
  uint64_t u64(const std::string& field) { return scalar<uint64_t>(field); }
  std::string string(const std::string& field) {
    const uint64_t n = u64(field + " length");
    if (n > remaining())
      fail(path_, field + ": string length " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
                      " bytes left in the file");
    const uint8_t* p = take(n, field);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  // A count of items of at least min_bytes each, checked against what is left of the file.
  uint64_t count(const std::string& field, uint64_t min_bytes) {
    const uint64_t n = u64(field);
    if (n > remaining() / min_bytes)
      fail(path_, field + " " + std::to_string(n) + " cannot fit in the " + std::to_string(remaining()) +
                      " bytes left in the file");
    return n;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  const std::string& path_;
};

bool is_valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::FLOAT64); }

GgufValue read_scalar(Reader& in, GgufType type, const std::string& field, const std::string& path) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::UINT8: v.uint = in.scalar<uint8_t>(field); break;
    case GgufType::INT8: v.sint = in.scalar<int8_t>(field); break;
    case GgufType::UINT16: v.uint = in.scalar<uint16_t>(field); break;
    case GgufType::INT16: v.sint = in.scalar<int16_t>(field); break;
    case GgufType::UINT32: v.uint = in.scalar<uint32_t>(field); break;
    case GgufType::INT32: v.sint = in.scalar<int32_t>(field); break;
    case GgufType::UINT64: v.uint = in.scalar<uint64_t>(field); break;
    case GgufType::INT64: v.sint = in.scalar<int64_t>(field); break;
    case GgufType::FLOAT32: v.real = in.scalar<float>(field); break;
    case GgufType::FLOAT64: v.real = in.scalar<double>(field); break;
    case GgufType::BOOL: {
      const uint8_t b = in.scalar<uint8_t>(field);
      if (b > 1) fail(path, field + ": BOOL value " + std::to_string(b) + " is neither 0 nor 1");
      v.uint = b;
      break;
    }
    case GgufType::STRING: v.string = in.string(field); break;
    case GgufType::ARRAY: fail(path, field + ": arrays of arrays are not supported");
  }
  return v;
}

GgufValue read_value(Reader& in, const std::string& field, const std::string& path) {
  const uint32_t type = in.u32(field + " type");
  if (!is_valid_type(type)) fail(path, field + ": unknown value type " + std::to_string(type));
  if (static_cast<GgufType>(type) != GgufType::ARRAY) return read_scalar(in, static_cast<GgufType>(type), field, path);
  GgufValue v;
  v.type = GgufType::ARRAY;
  const uint32_t element = in.u32(field + " array element type");
  if (!is_valid_type(element)) fail(path, field + ": unknown array element type " + std::to_string(element));
  v.element_type = static_cast<GgufType>(element);
  if (v.element_type == GgufType::ARRAY) fail(path, field + ": arrays of arrays are not supported");
  const uint64_t scalar_size = gguf_scalar_size(v.element_type);
  const uint64_t n = in.count(field + " array count", scalar_size ? scalar_size : 8);
  if (n > kMaxArrayElements)
    fail(path, field + ": array count " + std::to_string(n) + " exceeds the limit of " +
                   std::to_string(kMaxArrayElements));
  v.array.reserve(n);
  for (uint64_t i = 0; i < n; ++i)
    v.array.push_back(read_scalar(in, v.element_type, field + "[" + std::to_string(i) + "]", path));
  return v;
}

// An integer value as int64, or an error naming the key when it does not fit.
int64_t integer_of(const GgufValue& v, const std::string& path, const std::string& key) {
  const bool is_unsigned = v.type == GgufType::UINT8 || v.type == GgufType::UINT16 || v.type == GgufType::UINT32 ||
                           v.type == GgufType::UINT64;
  if (!is_unsigned) return v.sint;
  if (v.uint > uint64_t(std::numeric_limits<int64_t>::max()))
    fail(path, "metadata key " + key + ": " + std::to_string(v.uint) + " does not fit a signed 64-bit integer");
  return int64_t(v.uint);
}

uint64_t round_up(uint64_t x, uint64_t alignment) { return x + (alignment - x % alignment) % alignment; }

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const kNames[] = {"UINT8",  "INT8",  "UINT16", "INT16",  "UINT32", "INT32", "FLOAT32",
                                       "BOOL",   "STRING", "ARRAY", "UINT64", "INT64",  "FLOAT64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "unknown type";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: case GgufType::ARRAY: return 0;
  }
  return 0;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16:
    case GgufType::UINT32: case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64: return true;
    default: return false;
  }
}

std::string GgufValue::type_description() const {
  if (type != GgufType::ARRAY) return gguf_type_name(type);
  return std::string("ARRAY of ") + gguf_type_name(element_type);
}

GgufValue GgufValue::u32(uint32_t v) {
  GgufValue g;
  g.type = GgufType::UINT32;
  g.uint = v;
  return g;
}
GgufValue GgufValue::i32(int32_t v) {
  GgufValue g;
  g.type = GgufType::INT32;
  g.sint = v;
  return g;
}
GgufValue GgufValue::u64(uint64_t v) {
  GgufValue g;
  g.type = GgufType::UINT64;
  g.uint = v;
  return g;
}
GgufValue GgufValue::f32(float v) {
  GgufValue g;
  g.type = GgufType::FLOAT32;
  g.real = v;
  return g;
}
GgufValue GgufValue::boolean(bool v) {
  GgufValue g;
  g.type = GgufType::BOOL;
  g.uint = v;
  return g;
}
GgufValue GgufValue::str(std::string v) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.string = std::move(v);
  return g;
}
template <typename T, typename Make>
static GgufValue array_of(GgufType element, const std::vector<T>& values, Make make) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.element_type = element;
  g.array.reserve(values.size());
  for (const T& v : values) g.array.push_back(make(v));
  return g;
}
GgufValue GgufValue::strings(const std::vector<std::string>& v) { return array_of(GgufType::STRING, v, str); }
GgufValue GgufValue::f32s(const std::vector<float>& v) { return array_of(GgufType::FLOAT32, v, f32); }
GgufValue GgufValue::i32s(const std::vector<int32_t>& v) { return array_of(GgufType::INT32, v, i32); }

// ---- GgufFile ------------------------------------------------------------------------------

GgufFile::GgufFile(const std::string& path) : file_(MappedFile::open(path)) {
  Reader in(file_->data(), file_->size(), path);
  const uint8_t* magic = in.take(4, "magic");
  if (std::memcmp(magic, "GGUF", 4) != 0) fail(path, "magic: not a GGUF file (the first 4 bytes are not \"GGUF\")");
  version_ = in.u32("version");
  if (version_ == 1) fail(path, "version: GGUF version 1 (32-bit counts) is not supported; re-convert with a newer llama.cpp");
  if (version_ != 2 && version_ != 3) {
    const bool swapped = (version_ & 0xFFFF) == 0 && version_ != 0;
    fail(path, "version: GGUF version " + std::to_string(version_) + " is not supported (2 and 3 are)" +
                   (swapped ? "; a big-endian file?" : ""));
  }
  const uint64_t n_tensors = in.count("tensor_count", kMinTensorInfoBytes);
  const uint64_t n_kv = in.count("kv_count", kMinKvBytes);

  std::set<std::string> keys;
  metadata_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = in.string("metadata key " + std::to_string(i));
    if (!keys.insert(key).second) fail(path, "metadata key " + key + ": appears twice");
    GgufValue value = read_value(in, "metadata key " + key, path);
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* a = find("general.alignment")) {
    const int64_t alignment = integer_of(get_typed("general.alignment", a->is_integer(), "an integer"), path, "general.alignment");
    if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
      fail_key("general.alignment", std::to_string(alignment) + " is not a power of two");
    alignment_ = static_cast<uint64_t>(alignment);
  }

  std::set<std::string> names;
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = in.string("tensor " + std::to_string(i) + " name");
    const std::string field = "tensor '" + t.name + "'";
    if (t.name.size() > kMaxTensorName)
      fail(path, field + ": name of " + std::to_string(t.name.size()) + " bytes exceeds ggml's limit of " +
                     std::to_string(kMaxTensorName));
    if (!names.insert(t.name).second) fail(path, field + ": appears twice");
    const uint32_t n_dims = in.u32(field + " n_dims");
    if (n_dims < 1 || n_dims > kMaxDims)
      fail(path, field + ": n_dims " + std::to_string(n_dims) + " is not in 1.." + std::to_string(kMaxDims));
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = in.u64(field + " ne[" + std::to_string(d) + "]");
      if (ne > uint64_t(std::numeric_limits<int64_t>::max()) ||
          (ne != 0 && numel > std::numeric_limits<int64_t>::max() / int64_t(ne)))
        fail(path, field + ": ne[" + std::to_string(d) + "] = " + std::to_string(ne) + " overflows the element count");
      numel *= int64_t(ne);
      t.ne.push_back(int64_t(ne));
    }
    t.shape.assign(t.ne.rbegin(), t.ne.rend());
    const uint32_t type = in.u32(field + " type");
    const std::optional<DType> dtype =
        ggml::is_weight_type(type) ? dtype_of_ggml_type(static_cast<ggml::Type>(type)) : std::nullopt;
    if (!dtype)
      fail(path, field + ": ggml type " + std::to_string(type) +
                     " is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K)");
    t.type = static_cast<ggml::Type>(type);
    t.dtype = *dtype;
    const int block = ggml::block_elems(t.type);
    if (t.ne[0] % block != 0)
      fail(path, field + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of " + ggml::type_name(t.type) +
                     "'s block of " + std::to_string(block));
    // numel / block blocks of block_bytes (<= 292) each: no overflow once numel fits int64 and
    // the product is checked.
    if (__builtin_mul_overflow(uint64_t(numel / block), ggml::block_bytes(t.type), &t.nbytes))
      fail(path, field + ": byte size overflows");
    t.offset = in.u64(field + " offset");
    if (t.offset % alignment_ != 0)
      fail(path, field + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                     std::to_string(alignment_));
    tensors_.push_back(std::move(t));
  }

  data_start_ = round_up(in.pos(), alignment_);
  const uint64_t size = file_->size();
  if (n_tensors > 0 && data_start_ > size)
    fail(path, "data section: starts at " + std::to_string(data_start_) + ", past the end of the file (" +
                   std::to_string(size) + " bytes)");
  for (GgufTensorInfo& t : tensors_) {
    if (t.offset > size - data_start_ || t.nbytes > size - data_start_ - t.offset)
      fail(path, "tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                     ") lies outside the data section of " + std::to_string(size - data_start_) + " bytes (truncated?)");
    // Dense values are read as float / uint16_t in place (block structs are byte-packed).
    const uint64_t natural = ggml::block_elems(t.type) == 1 ? ggml::block_bytes(t.type) : 1;
    if ((data_start_ + t.offset) % natural != 0)
      fail(path, "tensor '" + t.name + "': " + ggml::type_name(t.type) + " data at file offset " +
                     std::to_string(data_start_ + t.offset) + " is not " + std::to_string(natural) + "-byte aligned");
    t.data = file_->data() + data_start_ + t.offset;
  }
  std::vector<const GgufTensorInfo*> by_offset;
  for (const GgufTensorInfo& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i - 1]->offset + by_offset[i - 1]->nbytes > by_offset[i]->offset)
      fail(path, "tensor '" + by_offset[i]->name + "': data overlaps tensor '" + by_offset[i - 1]->name + "'");
}

void GgufFile::fail_key(const std::string& key, const std::string& what) const {
  fail(path(), "metadata key " + key + ": " + what);
}

const GgufValue* GgufFile::find(const std::string& key) const {
  for (const auto& [k, v] : metadata_)
    if (k == key) return &v;
  return nullptr;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) fail_key(key, "missing");
  return *v;
}

const GgufValue& GgufFile::get_typed(const std::string& key, bool ok, const char* expected) const {
  const GgufValue& v = get(key);
  if (!ok) fail_key(key, std::string("expected ") + expected + ", found " + v.type_description());
  return v;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  return integer_of(get_typed(key, v && v->is_integer(), "an integer"), path(), key);
}
int64_t GgufFile::get_int_or(const std::string& key, int64_t fallback) const {
  return has(key) ? get_int(key) : fallback;
}
double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  return get_typed(key, v && v->is_float(), "FLOAT32 or FLOAT64").real;
}
double GgufFile::get_float_or(const std::string& key, double fallback) const {
  return has(key) ? get_float(key) : fallback;
}
bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  return get_typed(key, v && v->type == GgufType::BOOL, "BOOL").uint != 0;
}
bool GgufFile::get_bool_or(const std::string& key, bool fallback) const { return has(key) ? get_bool(key) : fallback; }
const std::string& GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  return get_typed(key, v && v->type == GgufType::STRING, "STRING").string;
}
std::vector<std::string> GgufFile::get_string_array(const std::string& key) const {
  const GgufValue* v = find(key);
  const GgufValue& a =
      get_typed(key, v && v->type == GgufType::ARRAY && v->element_type == GgufType::STRING, "ARRAY of STRING");
  std::vector<std::string> out;
  out.reserve(a.array.size());
  for (const GgufValue& e : a.array) out.push_back(e.string);
  return out;
}
std::vector<float> GgufFile::get_float_array(const std::string& key) const {
  const GgufValue* v = find(key);
  const bool ok = v && v->type == GgufType::ARRAY &&
                  (v->element_type == GgufType::FLOAT32 || v->element_type == GgufType::FLOAT64);
  const GgufValue& a = get_typed(key, ok, "ARRAY of FLOAT32");
  std::vector<float> out;
  out.reserve(a.array.size());
  for (const GgufValue& e : a.array) out.push_back(static_cast<float>(e.real));
  return out;
}
std::vector<int64_t> GgufFile::get_int_array(const std::string& key) const {
  const GgufValue* v = find(key);
  GgufValue element;
  if (v) element.type = v->element_type;
  const GgufValue& a = get_typed(key, v && v->type == GgufType::ARRAY && element.is_integer(), "ARRAY of integers");
  std::vector<int64_t> out;
  out.reserve(a.array.size());
  for (const GgufValue& e : a.array) out.push_back(integer_of(e, path(), key));
  return out;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  for (const GgufTensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

Tensor GgufFile::tensor(const std::string& name) const {
  const GgufTensorInfo* info = find_tensor(name);
  if (!info) fail(path(), "tensor '" + name + "': missing");
  Tensor t;
  t.name = name;
  t.dtype = info->dtype;
  t.shape = info->shape;
  t.data = info->data;
  t.owner = std::shared_ptr<const void>(file_, file_->data());
  return t;
}

// ---- llama models --------------------------------------------------------------------------

// A config field from an integer key: 1 .. INT32_MAX, or an error naming the key.
static int positive_int(const GgufFile& f, const std::string& key, int64_t value) {
  if (value < 1 || value > std::numeric_limits<int32_t>::max())
    fail(f.path(), "metadata key " + key + ": " + std::to_string(value) + " is not a positive 32-bit count");
  return static_cast<int>(value);
}
static int positive_int(const GgufFile& f, const std::string& key) { return positive_int(f, key, f.get_int(key)); }

Model load_gguf_model(const std::string& path) { return load_gguf_model(GgufFile(path)); }

Model load_gguf_model(const GgufFile& f) {
  const std::string& path = f.path();
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama") fail(path, "metadata key general.architecture: '" + arch + "' is not supported (supported: llama)");
  if (f.get_int_or("llama.expert_count", 0) > 0)
    fail(path, "metadata key llama.expert_count: mixture-of-experts models are not supported");
  if (f.has("llama.rope.scaling.type") && f.get_string("llama.rope.scaling.type") != "none")
    fail(path, "metadata key llama.rope.scaling.type: '" + f.get_string("llama.rope.scaling.type") +
                   "' is not supported (only plain RoPE)");

  Model m;
  m.path = path;
  m.format = "gguf";
  LlamaConfig& c = m.config;
  c.max_seq_len = positive_int(f, "llama.context_length");
  c.hidden_size = positive_int(f, "llama.embedding_length");
  c.n_layers = positive_int(f, "llama.block_count");
  c.intermediate_size = positive_int(f, "llama.feed_forward_length");
  c.n_heads = positive_int(f, "llama.attention.head_count");
  c.n_kv_heads = positive_int(f, "llama.attention.head_count_kv", f.get_int_or("llama.attention.head_count_kv", c.n_heads));
  c.rope_theta = static_cast<float>(f.get_float_or("llama.rope.freq_base", 10000.0));
  c.rms_norm_eps = static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon"));
  c.rope_interleaved = true;  // see load_gguf_model in gguf.h
  if (c.hidden_size % c.n_heads != 0)
    fail(path, "metadata key llama.embedding_length: " + std::to_string(c.hidden_size) +
                   " is not a multiple of llama.attention.head_count " + std::to_string(c.n_heads));
  if (c.n_heads % c.n_kv_heads != 0)
    fail(path, "metadata key llama.attention.head_count_kv: " + std::to_string(c.n_kv_heads) +
                   " does not divide llama.attention.head_count " + std::to_string(c.n_heads));
  if (c.head_dim() % 2 != 0) fail(path, "metadata key llama.attention.head_count: head dim must be even for RoPE");
  if (f.has("llama.rope.dimension_count") && f.get_int("llama.rope.dimension_count") != c.head_dim())
    fail(path, "metadata key llama.rope.dimension_count: " + std::to_string(f.get_int("llama.rope.dimension_count")) +
                   " differs from the head dim " + std::to_string(c.head_dim()) + " (partial RoPE is not supported)");

  std::set<std::string> used;
  // The tensor `gguf_name`, checked to have exactly `shape`, under `hf_name`.
  auto take = [&](const std::string& gguf_name, const std::string& hf_name, const std::vector<int64_t>& shape) {
    Tensor t = f.tensor(gguf_name);
    if (t.shape != shape) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string out = "[";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
        return out + "]";
      };
      fail(path, "tensor '" + gguf_name + "': shape " + str(t.shape) + " (PyTorch order), expected " + str(shape));
    }
    t.name = hf_name;
    used.insert(gguf_name);
    return t;
  };

  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  if (!embd) fail(path, "tensor 'token_embd.weight': missing");
  if (embd->shape.size() != 2) fail(path, "tensor 'token_embd.weight': expected 2 dimensions");
  if (embd->shape[0] < 1 || embd->shape[0] > std::numeric_limits<int32_t>::max())
    fail(path, "tensor 'token_embd.weight': " + std::to_string(embd->shape[0]) + " rows is not a vocabulary size");
  c.vocab_size = static_cast<int>(embd->shape[0]);
  if (f.has("tokenizer.ggml.tokens") && f.find("tokenizer.ggml.tokens")->array.size() != size_t(c.vocab_size))
    fail(path, "metadata key tokenizer.ggml.tokens: " + std::to_string(f.find("tokenizer.ggml.tokens")->array.size()) +
                   " tokens but token_embd.weight has " + std::to_string(c.vocab_size) + " rows");

  // Before sizing anything by it: each block has 9 tensors.
  if (int64_t(c.n_layers) * 9 > int64_t(f.tensors().size()))
    fail(path, "metadata key llama.block_count: " + std::to_string(c.n_layers) + " blocks need " +
                   std::to_string(int64_t(c.n_layers) * 9) + " tensors, the file has " + std::to_string(f.tensors().size()));
  const int64_t dim = c.hidden_size, V = c.vocab_size;
  const auto dims = linear_dims(c);
  m.embed_tokens = take("token_embd.weight", "model.embed_tokens.weight", {V, dim});
  m.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".", hf = "model.layers." + std::to_string(l) + ".";
    LayerWeights& w = m.layers[l];
    w.attn_norm = take(blk + "attn_norm.weight", hf + "input_layernorm.weight", {dim});
    w.mlp_norm = take(blk + "ffn_norm.weight", hf + "post_attention_layernorm.weight", {dim});
    const auto linears = block_linears(w);
    for (int t = 0; t < kNumLinears; ++t) {
      linears[t]->name = linear_hf_name(l, t);
      linears[t]->dense = take(blk + kBlockLinears[t].gguf_name + ".weight", linears[t]->name + ".weight",
                               {dims[t].first, dims[t].second});
    }
  }
  m.norm = take("output_norm.weight", "model.norm.weight", {dim});
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  m.lm_head = c.tie_word_embeddings ? m.embed_tokens : take("output.weight", "lm_head.weight", {V, dim});
  // Anything else (biases, rope_freqs for llama3 scaling, experts) would change the model.
  for (const GgufTensorInfo& t : f.tensors())
    if (!used.count(t.name)) fail(path, "tensor '" + t.name + "': not part of a llama model this loader reads");
  return m;
}

// ---- vocabulary ----------------------------------------------------------------------------

GgufVocab read_gguf_vocab(const GgufFile& f) {
  GgufVocab v;
  v.model = f.get_string("tokenizer.ggml.model");
  v.tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (f.has("tokenizer.ggml.pre")) v.pre = f.get_string("tokenizer.ggml.pre");
  if (f.has("tokenizer.ggml.scores")) v.scores = f.get_float_array("tokenizer.ggml.scores");
  if (f.has("tokenizer.ggml.token_type"))
    for (int64_t t : f.get_int_array("tokenizer.ggml.token_type")) v.token_types.push_back(static_cast<int32_t>(t));
  if (f.has("tokenizer.ggml.merges")) v.merges = f.get_string_array("tokenizer.ggml.merges");
  const int64_t n = static_cast<int64_t>(v.tokens.size());
  if (!v.scores.empty() && int64_t(v.scores.size()) != n)
    fail(f.path(), "metadata key tokenizer.ggml.scores: " + std::to_string(v.scores.size()) + " scores for " +
                       std::to_string(n) + " tokens");
  if (!v.token_types.empty() && int64_t(v.token_types.size()) != n)
    fail(f.path(), "metadata key tokenizer.ggml.token_type: " + std::to_string(v.token_types.size()) + " types for " +
                       std::to_string(n) + " tokens");
  auto token_id = [&](const std::string& key) {
    if (!f.has(key)) return -1;
    const int64_t id = f.get_int(key);
    if (id < 0 || id >= n)
      fail(f.path(), "metadata key " + key + ": token id " + std::to_string(id) + " is not in 0.." + std::to_string(n - 1));
    return static_cast<int>(id);
  };
  v.bos_id = token_id("tokenizer.ggml.bos_token_id");
  v.eos_id = token_id("tokenizer.ggml.eos_token_id");
  v.unk_id = token_id("tokenizer.ggml.unknown_token_id");
  v.add_bos = f.get_bool_or("tokenizer.ggml.add_bos_token", true);
  v.add_eos = f.get_bool_or("tokenizer.ggml.add_eos_token", false);
  v.add_space_prefix = f.get_bool_or("tokenizer.ggml.add_space_prefix", true);
  return v;
}

}  // namespace qb
