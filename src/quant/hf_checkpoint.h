#pragma once
// What the quantized HF checkpoint formats share (quant/awq_format.h, quant/gptq_format.h): a
// directory with config.json (+ quantization_config) and model.safetensors (or shards listed in
// model.safetensors.index.json), in which every block linear is stored by the format's packed
// tensors and everything else (embed_tokens, the norms, lm_head unless tied, q/k/v biases) is a
// dense FP16 tensor under its HF name.
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "model/safetensors.h"

namespace qb {

// dir/config.json parsed; an error naming dir when it is missing.
nlohmann::json read_checkpoint_config(const std::string& dir);

// Reads the quantized linear `base` (e.g. "model.layers.0.self_attn.q_proj") of shape [n, k],
// adding the names of the tensors it used to `used`.
using QuantizedLinearReader = std::function<std::shared_ptr<const QuantizedWeight>(
    const SafetensorsDirectory& files, const std::string& base, int n, int k, std::set<std::string>& used)>;

// The model of a checkpoint directory whose config.json is `config`: dense tensors checked by
// shape, block linears through `read_linear` (or dense `.weight` where the format kept one in
// FP16, modules_to_not_convert); any tensor nobody used is an error. rope_interleaved = false.
Model load_quantized_checkpoint(const std::string& dir, const nlohmann::json& config, const std::string& format,
                                const QuantizedLinearReader& read_linear);

// Appends the packed tensors of the quantized linear `base` (q/k rows already in HF order).
using QuantizedLinearWriter =
    std::function<void(const QuantizedWeight& w, const std::string& base, std::vector<SafetensorsBlob>& blobs)>;
// The tensors (name, dtype, shape) that the writer appends for a linear [n, k], in its order:
// what a streaming writer plans before any weight is quantized.
using QuantizedLinearPlan =
    std::function<std::vector<SafetensorsTensorSpec>(const std::string& base, int n, int k)>;

// A quantized checkpoint format (quant/awq_format.h, quant/gptq_format.h).
struct CheckpointFormat {
  std::string name;  // "AutoAWQ", "GPTQ": names the format in errors
  QuantizedLinearPlan plan_linear;
  QuantizedLinearWriter write_linear;
  nlohmann::json quantization_config;                              // config.json's quantization_config
  std::vector<std::pair<std::string, nlohmann::json>> extra_json;  // more files: {name, contents}
};

struct CheckpointWrite {
  std::string tokenizer_path;  // copied as tokenizer.json (a .json) or tokenizer.model when non-empty
  nlohmann::json report;       // written as quantize_report.json when not null
};

// The group size a checkpoint of `c` quantized at group_size (-1: per output channel) records:
// -1 when every layer's group is its whole input, as the writers find it in a quantized model.
int checkpoint_group_size(const LlamaConfig& c, int group_size);

// A quantized checkpoint written as its model is made, block by block, so that no more than one
// quantized block is ever in memory: every tensor is planned from the config when the stream is
// opened (embed_tokens; per block the two norms, then each linear's packed tensors and bias; norm;
// lm_head unless tied, HF's order), the shards are written as the tensors arrive (model/
// safetensors.h SafetensorsShardWriter), and the directory appears only when finish() succeeds
// (AtomicDirectory); destroyed unfinished (an error, Ctrl-C), it leaves nothing. Refuses an
// existing dir. Dense tensors are stored as FP16 (converted row by row). A model with llama2.c
// rotary pairs (rope_interleaved) has its q/k rows permuted to HF order, as llama2.c's export.py
// does, so HF loaders compute the same function.
class QuantizedCheckpointStream {
 public:
  QuantizedCheckpointStream(const LlamaConfig& c, const std::string& dir, CheckpointFormat format,
                            uint64_t shard_bytes = kDefaultShardBytes);
  void write_embeddings(const Tensor& embed_tokens);  // first
  // Block i (all its linears quantized, none with kept columns), in block order.
  void write_block(int i, const LayerWeights& layer);
  // The final norm and lm_head (ignored when tied), then config.json, the format's files, the
  // tokenizer copy and the report; then the directory appears.
  void finish(const Tensor& norm, const Tensor& lm_head, const CheckpointWrite& files);
  const std::vector<std::string>& shard_names() const { return writer_.shard_names(); }

 private:
  void write_dense(const Tensor& t, const std::string& name);

  LlamaConfig config_;
  CheckpointFormat format_;
  AtomicDirectory out_;
  SafetensorsShardWriter writer_;
};

// The whole of `model` (every block linear quantized, none with kept columns) through a
// QuantizedCheckpointStream.
void write_quantized_checkpoint(const Model& model, const std::string& dir, const CheckpointFormat& format,
                                const CheckpointWrite& files, uint64_t shard_bytes = kDefaultShardBytes);

// A blob of `v`'s bytes with this safetensors dtype and shape.
template <class T>
SafetensorsBlob raw_blob(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                         const std::vector<T>& v) {
  SafetensorsBlob b{name, dtype, std::move(shape), {}};
  b.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
  return b;
}

// The entry's elements copied out (its dtype already checked by the caller).
template <class T>
std::vector<T> copy_entry(const SafetensorsEntry& e) {
  std::vector<T> out(e.nbytes / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), e.data, e.nbytes);
  return out;
}

}  // namespace qb
