#pragma once
// What the streamed-quantization tests share: `quantbench quantize`'s flow (quantize_model handing
// each block to a QuantizedCheckpointStream), and the comparisons of checkpoints and models.
#include <catch2/catch.hpp>

#include <cstring>

#include "model/block_linears.h"
#include "model/safetensors.h"
#include "quant/hf_checkpoint.h"
#include "quant/quantize.h"

namespace qb::test {

struct StreamedQuantize {
  QuantizeResult result;  // its model's layers are empty: each went to the stream
  Model blocks;           // fp16 with the layers the sink received (shared, not copied)
};

// Quantizes `fp16` block by block into `dir` (format, shard_bytes) as `quantize` does.
inline StreamedQuantize quantize_streamed(const Model& fp16, const QuantizeOptions& o, const Tokenizer* tokenizer,
                                          const std::string& dir, const CheckpointFormat& format,
                                          uint64_t shard_bytes) {
  StreamedQuantize out;
  out.blocks = fp16;
  QuantizedCheckpointStream stream(fp16.config, dir, format, shard_bytes);
  stream.write_embeddings(fp16.embed_tokens);
  int expected = 0;
  out.result = quantize_model(fp16, o, tokenizer, [&](int i, const LayerWeights& l) {
    REQUIRE(i == expected++);
    stream.write_block(i, l);
    out.blocks.layers[i] = l;
  });
  stream.finish(fp16.norm, fp16.lm_head, {"", {{"quantization", out.result.quantization}}});
  return out;
}

// Every tensor of the two checkpoint directories, byte for byte (shards may differ).
inline void check_same_tensors(const std::string& a, const std::string& b) {
  const SafetensorsDirectory da(a), db(b);
  REQUIRE(da.names() == db.names());
  for (const std::string& name : da.names()) {
    INFO(name);
    const SafetensorsEntry &ea = da.entry(name), &eb = db.entry(name);
    CHECK(ea.dtype == eb.dtype);
    CHECK(ea.shape == eb.shape);
    REQUIRE(ea.nbytes == eb.nbytes);
    CHECK(std::memcmp(ea.data, eb.data, ea.nbytes) == 0);
  }
}

// The quantized linears (dequantized values, stored bytes) and the norms of two models, equal.
inline void check_same_model(const Model& a, const Model& b) {
  REQUIRE(a.layers.size() == b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const auto la = block_linears(a.layers[i]), lb = block_linears(b.layers[i]);
    for (int t = 0; t < kNumLinears; ++t) {
      INFO(linear_hf_name(static_cast<int>(i), t));
      REQUIRE(la[t]->quant);
      REQUIRE(lb[t]->quant);
      CHECK(la[t]->quant->stored_bytes() == lb[t]->quant->stored_bytes());
      CHECK(la[t]->quant->dequantize() == lb[t]->quant->dequantize());
    }
    CHECK(a.layers[i].attn_norm.to_float() == b.layers[i].attn_norm.to_float());
    CHECK(a.layers[i].mlp_norm.to_float() == b.layers[i].mlp_norm.to_float());
  }
}

}  // namespace qb::test
