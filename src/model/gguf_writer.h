#pragma once
// Writing GGUF v3 files (the layout model/gguf.h describes and reads) as llama.cpp b4747 (commit
// c392e509) writes them: metadata in the caller's order, tensor infos, zero padding to the
// alignment (general.alignment, default 32) before the data section and after every tensor.
// The file appears whole or not at all (write_file_atomic).
//
// Beside the byte writer: the Model's tensors under llama.cpp's names, and the metadata
// convert_hf_to_gguf.py writes for a Llama, so an HF model can become the file llama.cpp's own
// tools would have made from it.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/gguf.h"
#include "model/model.h"

namespace qb {

using GgufMetadata = std::vector<std::pair<std::string, GgufValue>>;

// One tensor to write: its GGUF name, ggml order dimensions (ne[0] the row length) and bytes.
struct GgufTensorOut {
  std::string name;
  Tensor tensor;  // data in tensor.dtype; tensor.shape is PyTorch order (ne reversed)
};

// Writes `path`. Fails naming the tensor when names repeat, a dtype has no ggml type, or a row
// length is not a whole number of blocks; a metadata key may appear only once.
void write_gguf(const std::string& path, const GgufMetadata& metadata, const std::vector<GgufTensorOut>& tensors);

// Sets `key` as llama.cpp's gguf_set_val_* does: an existing entry is removed and the new one
// appended at the end.
void gguf_set(GgufMetadata& metadata, const std::string& key, GgufValue value);

// llama.cpp's GGUF name of an HF tensor name of a Llama ("model.layers.3.mlp.down_proj.weight" ->
// "blk.3.ffn_down.weight", "lm_head.weight" -> "output.weight"); fails for names it has none for.
std::string gguf_tensor_name(const std::string& hf_name);

// llama-quantize's tensor order (its loader's weight map): tensors outside blocks first, then
// block by block, by name within each.
bool gguf_quantize_order(const std::string& gguf_name_a, const std::string& gguf_name_b);

// Every tensor of `model` under its GGUF name, in gguf_quantize_order, as convert_hf_to_gguf.py
// stores a Llama: 1-D tensors (norms) widened to F32, q_proj/k_proj rows permuted into llama.cpp's
// RoPE order (LlamaModel.permute: row (r % 2) * hd/2 + r / 2 of each head moves to row r) when the
// model is in HF order (config.rope_interleaved false), a tied lm_head written once as
// token_embd. Row permutation moves whole rows, so it applies to block-quantized rows as well.
std::vector<GgufTensorOut> gguf_tensors_of(const Model& model);

// The SentencePiece vocabulary as convert_hf_to_gguf.py reads it from tokenizer.model, plus the
// special ids it finds in config.json / tokenizer_config.json (-1 or absent: not written).
struct GgufVocabularyOut {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> token_types;  // llama_token_type: 1 normal, 2 unknown, 3 control, 5 unused, 6 byte
  int bos_id = -1, eos_id = -1, unk_id = -1;
  int add_bos = -1, add_eos = -1;    // -1: not stated (no tokenizer_config.json entry)
};

// The metadata convert_hf_to_gguf.py (b4747) writes for a Llama, in its order: general.* (name,
// size label from the parameter count), llama.* hyper-parameters, general.file_type, the
// tokenizer.ggml.* vocabulary when `vocab` is given, general.quantization_version 2.
GgufMetadata llama_gguf_metadata(const Model& model, const std::string& name, uint32_t file_type,
                                 const GgufVocabularyOut* vocab);

// What llama-quantize changes in the metadata it copies: general.quantization_version = 2 and
// general.file_type = file_type (llama_ftype), each moved to the end (gguf_set).
void set_quantized_file_type(GgufMetadata& metadata, uint32_t file_type);

}  // namespace qb
