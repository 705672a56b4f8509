#pragma once
// A minimal GGUF writer for tests: builds files field by field (model/gguf.h describes the
// format) so that tests can also build broken ones. Not the project's writer.
#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "model/gguf.h"
#include "model/model.h"

namespace qb::test {

struct GgufTestTensor {
  std::string name;
  uint32_t type = 0;           // ggml type number
  std::vector<uint64_t> ne;    // ggml order
  std::vector<uint8_t> bytes;  // the data
  std::optional<uint64_t> offset;  // forced offset (its data is then not written); default: the next aligned one
};

struct GgufTestFile {
  uint32_t version = 3;
  std::vector<std::pair<std::string, GgufValue>> kv;
  std::vector<GgufTestTensor> tensors;
  uint64_t alignment = 32;  // padding used; write general.alignment in kv to change the reader's

  void set(const std::string& key, GgufValue v) {
    for (auto& [k, old] : kv)
      if (k == key) {
        old = std::move(v);
        return;
      }
    kv.emplace_back(key, std::move(v));
  }
  void erase(const std::string& key) {
    for (size_t i = 0; i < kv.size(); ++i)
      if (kv[i].first == key) kv.erase(kv.begin() + i);
  }
  GgufTestTensor* tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }

  std::string bytes() const {
    std::string out = "GGUF";
    put(out, version);
    put(out, uint64_t(tensors.size()));
    put(out, uint64_t(kv.size()));
    for (const auto& [key, value] : kv) {
      put_string(out, key);
      put(out, uint32_t(value.type));
      put_value(out, value);
    }
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const auto& t : tensors) {
      offsets.push_back(t.offset ? *t.offset : next);
      next = round_up(offsets.back() + t.bytes.size());
      put_string(out, t.name);
      put(out, uint32_t(t.ne.size()));
      for (uint64_t n : t.ne) put(out, n);
      put(out, t.type);
      put(out, offsets.back());
    }
    out.resize(round_up(out.size()), '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].offset) continue;  // a forced offset: its data is not written
      const size_t at = data_start + offsets[i];
      out.resize(std::max(out.size(), at + tensors[i].bytes.size()), '\0');
      std::memcpy(&out[at], tensors[i].bytes.data(), tensors[i].bytes.size());
    }
    return out;
  }

 private:
  uint64_t round_up(uint64_t x) const { return (x + alignment - 1) / alignment * alignment; }
  template <typename T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  static void put_string(std::string& out, const std::string& s) {
    put(out, uint64_t(s.size()));
    out += s;
  }
  static void put_scalar(std::string& out, const GgufValue& v) {
    switch (v.type) {
      case GgufType::UINT8: put(out, uint8_t(v.uint)); break;
      case GgufType::INT8: put(out, int8_t(v.sint)); break;
      case GgufType::UINT16: put(out, uint16_t(v.uint)); break;
      case GgufType::INT16: put(out, int16_t(v.sint)); break;
      case GgufType::UINT32: put(out, uint32_t(v.uint)); break;
      case GgufType::INT32: put(out, int32_t(v.sint)); break;
      case GgufType::UINT64: put(out, uint64_t(v.uint)); break;
      case GgufType::INT64: put(out, int64_t(v.sint)); break;
      case GgufType::FLOAT32: put(out, float(v.real)); break;
      case GgufType::FLOAT64: put(out, double(v.real)); break;
      case GgufType::BOOL: put(out, uint8_t(v.uint)); break;
      case GgufType::STRING: put_string(out, v.string); break;
      case GgufType::ARRAY: break;
    }
  }
  static void put_value(std::string& out, const GgufValue& v) {
    if (v.type != GgufType::ARRAY) return put_scalar(out, v);
    put(out, uint32_t(v.element_type));
    put(out, uint64_t(v.array.size()));
    for (const GgufValue& e : v.array) put_scalar(out, e);
  }
};

// The GGUF a llama.cpp converter would write for m (interleaved RoPE, so q/k rows are stored as
// they are): llama.* keys, F32 tensors under llama.cpp's names, a 2-token vocabulary per row of
// the embedding.
inline GgufTestFile gguf_of_model(const Model& m) {
  const LlamaConfig& c = m.config;
  GgufTestFile f;
  f.set("general.architecture", GgufValue::str("llama"));
  f.set("llama.context_length", GgufValue::u32(c.max_seq_len));
  f.set("llama.embedding_length", GgufValue::u32(c.hidden_size));
  f.set("llama.block_count", GgufValue::u32(c.n_layers));
  f.set("llama.feed_forward_length", GgufValue::u32(c.intermediate_size));
  f.set("llama.attention.head_count", GgufValue::u32(c.n_heads));
  f.set("llama.attention.head_count_kv", GgufValue::u32(c.n_kv_heads));
  f.set("llama.rope.freq_base", GgufValue::f32(c.rope_theta));
  f.set("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(c.rms_norm_eps));
  f.set("llama.rope.dimension_count", GgufValue::u32(c.head_dim()));
  std::vector<std::string> tokens;
  for (int i = 0; i < c.vocab_size; ++i) tokens.push_back("t" + std::to_string(i));
  f.set("tokenizer.ggml.model", GgufValue::str("llama"));
  f.set("tokenizer.ggml.tokens", GgufValue::strings(tokens));
  auto add = [&](const std::string& name, const Tensor& t) {
    const std::vector<float> v = t.to_float();
    GgufTestTensor g;
    g.name = name;
    g.type = 0;
    g.ne.assign(t.shape.rbegin(), t.shape.rend());
    g.bytes.resize(v.size() * 4);
    std::memcpy(g.bytes.data(), v.data(), g.bytes.size());
    f.tensors.push_back(std::move(g));
  };
  add("token_embd.weight", m.embed_tokens);
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const std::string blk = "blk." + std::to_string(l) + ".";
    const LayerWeights& w = m.layers[l];
    add(blk + "attn_norm.weight", w.attn_norm);
    add(blk + "attn_q.weight", w.q_proj.dense);
    add(blk + "attn_k.weight", w.k_proj.dense);
    add(blk + "attn_v.weight", w.v_proj.dense);
    add(blk + "attn_output.weight", w.o_proj.dense);
    add(blk + "ffn_norm.weight", w.mlp_norm);
    add(blk + "ffn_gate.weight", w.gate_proj.dense);
    add(blk + "ffn_up.weight", w.up_proj.dense);
    add(blk + "ffn_down.weight", w.down_proj.dense);
  }
  add("output_norm.weight", m.norm);
  if (!c.tie_word_embeddings) add("output.weight", m.lm_head);
  return f;
}

}  // namespace qb::test
