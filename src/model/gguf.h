#pragma once
// GGUF files as llama.cpp writes them (format versions 2 and 3; llama.cpp b4747,
// ggml/src/gguf.cpp and docs/gguf.md), read from a read-only mapping. Everything little-endian:
//
//   "GGUF" | u32 version | u64 tensor_count | u64 kv_count
//   kv_count x     { string key | u32 value_type | value }
//   tensor_count x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
//   padding to `alignment` (metadata general.alignment, default 32, a power of two)
//   data section: each tensor at data_start + offset (offset a multiple of alignment)
//
//   string = u64 length | bytes (no terminator);  array = u32 element_type | u64 count | elements
//
// ne[0] is the row length (the fastest-varying dimension): a GGUF tensor of ne = {k, n} is the
// PyTorch/HF tensor of shape [n, k]. Rows of block types (layouts/ggml_blocks.h) are ne[0] /
// block_elems consecutive blocks.
//
// Every count, length, offset and type is checked against the file size and sane limits before
// anything is allocated or read; a bad file throws one qb::Error line naming the file and the field
// (key, tensor) at fault. Version 1 (32-bit counts) and big-endian files are refused.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/files.h"
#include "layouts/ggml_blocks.h"
#include "model/model.h"

namespace qb {

// gguf_type: the type of a metadata value.
enum class GgufType : uint32_t {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
};
const char* gguf_type_name(GgufType t);  // "UINT8" ... "FLOAT64"; "type <n>" for other numbers
// Bytes of a scalar value of type t in the file (0 for STRING and ARRAY, whose size varies).
size_t gguf_scalar_size(GgufType t);

// One metadata value. Scalars keep their type and are widened into one of three fields; arrays
// hold elements of one scalar or STRING type (arrays of arrays are refused, as llama.cpp does).
struct GgufValue {
  GgufType type = GgufType::UINT32;
  uint64_t uint = 0;   // UINT8 / UINT16 / UINT32 / UINT64, BOOL (0 or 1)
  int64_t sint = 0;    // INT8 / INT16 / INT32 / INT64
  double real = 0;     // FLOAT32 / FLOAT64
  std::string string;  // STRING
  GgufType element_type = GgufType::UINT32;  // ARRAY
  std::vector<GgufValue> array;              // ARRAY

  bool is_integer() const;  // any of the eight integer types (not BOOL)
  bool is_float() const { return type == GgufType::FLOAT32 || type == GgufType::FLOAT64; }
  // "UINT32", or "ARRAY of STRING" for arrays: what the error messages print.
  std::string type_description() const;

  // Constructors for writers and tests.
  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue strings(const std::vector<std::string>& v);
  static GgufValue f32s(const std::vector<float>& v);
  static GgufValue i32s(const std::vector<int32_t>& v);
};

// One tensor info, checked: a type this project reads (F32, F16, BF16, Q4_0 ... Q6_K), ne[0] a
// multiple of its block size, data aligned and inside the file.
struct GgufTensorInfo {
  std::string name;          // GGUF name, e.g. "blk.0.attn_q.weight"
  ggml::Type type = ggml::Type::F32;
  DType dtype = DType::F32;  // the same storage as a Tensor dtype
  std::vector<int64_t> ne;     // ggml order: ne[0] is the row length
  std::vector<int64_t> shape;  // PyTorch order: ne reversed
  uint64_t offset = 0;         // from the start of the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the mapping
};

class GgufFile {
 public:
  // Maps and parses the file; throws qb::Error on any malformed field.
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_start() const { return data_start_; }  // file offset of the data section
  std::shared_ptr<const MappedFile> mapping() const { return file_; }

  // Metadata in file order; keys are unique.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;  // null when absent
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters. A missing key fails "<file>: metadata key <key>: missing"; a value of another
  // type fails "<file>: metadata key <key>: expected <type>, found <type>". Integer getters take
  // any integer type whose value fits; float getters take FLOAT32 or FLOAT64.
  int64_t get_int(const std::string& key) const;
  int64_t get_int_or(const std::string& key, int64_t fallback) const;
  double get_float(const std::string& key) const;
  double get_float_or(const std::string& key, double fallback) const;
  bool get_bool(const std::string& key) const;
  bool get_bool_or(const std::string& key, bool fallback) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<std::string> get_string_array(const std::string& key) const;
  std::vector<float> get_float_array(const std::string& key) const;    // FLOAT32 / FLOAT64 elements
  std::vector<int64_t> get_int_array(const std::string& key) const;    // integer elements

  // Tensors in file order; names are unique.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;  // null when absent
  // The tensor as a qb::Tensor in its stored dtype and PyTorch shape, sharing the mapping (no
  // copy), named `name` (the GGUF name). Fails naming the file and tensor when absent.
  Tensor tensor(const std::string& name) const;

 private:
  [[noreturn]] void fail_key(const std::string& key, const std::string& what) const;
  const GgufValue& get(const std::string& key) const;
  const GgufValue& get_typed(const std::string& key, bool ok, const char* expected) const;

  std::shared_ptr<const MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

// A llama-architecture GGUF (general.architecture "llama") as the one in-memory Model:
//   config from llama.* keys (context_length, embedding_length, block_count, feed_forward_length,
//   attention.head_count, attention.head_count_kv (default head_count), rope.freq_base (default
//   10000), attention.layer_norm_rms_epsilon, rope.dimension_count (must equal the head dim));
//   vocab_size from token_embd.weight's rows (and tokenizer.ggml.tokens' count when present);
//   tensors token_embd, output_norm, output (absent: tied to token_embd), blk.N.{attn_norm,
//   attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}.weight under their
//   HF names, in their stored dtype (F32, F16, BF16 or a ggml block type), sharing the mapping.
// RoPE: llama.cpp's convert_hf_to_gguf.py permutes the rows of HF q_proj/k_proj within each head
// (GGUF row r of a head of dim hd is HF row (r % 2) * hd/2 + r / 2) so that llama.cpp's RoPE
// rotates adjacent pairs (x[2i], x[2i+1]), as Meta's and llama2.c's checkpoints do. The weights
// are kept as stored and config.rope_interleaved is true.
// Model.format = "gguf", Model.path = path.
Model load_gguf_model(const std::string& path);
Model load_gguf_model(const GgufFile& file);

// The tokenizer stored in a GGUF's tokenizer.ggml.* keys.
struct GgufVocab {
  std::string model;  // tokenizer.ggml.model: "llama" (SentencePiece), "gpt2" (byte-level BPE), ...
  std::string pre;    // tokenizer.ggml.pre: BPE pre-tokenizer name; empty when absent
  std::vector<std::string> tokens;   // tokenizer.ggml.tokens
  std::vector<float> scores;         // tokenizer.ggml.scores; empty when absent
  std::vector<int32_t> token_types;  // tokenizer.ggml.token_type (llama_token_type); empty when absent
  std::vector<std::string> merges;   // tokenizer.ggml.merges ("a b" per merge, BPE); empty when absent
  int bos_id = -1, eos_id = -1, unk_id = -1;  // tokenizer.ggml.{bos,eos,unknown}_token_id; -1 when absent
  bool add_bos = true, add_eos = false;  // tokenizer.ggml.add_bos_token / add_eos_token
  bool add_space_prefix = true;          // tokenizer.ggml.add_space_prefix
};
// Fails naming the key when tokenizer.ggml.model or .tokens is missing, any present key has the
// wrong type, scores / token_type differ in length from tokens, or a token id is out of range.
GgufVocab read_gguf_vocab(const GgufFile& file);

}  // namespace qb
