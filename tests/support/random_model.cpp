#include "random_model.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <cmath>
#include <cstring>
#include <random>

#include "common/files.h"
#include "model/block_linears.h"
#include "model/load.h"
#include "model/safetensors.h"

namespace qb::test {

LlamaConfig small_config(bool rope_interleaved) {
  LlamaConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 44;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 96;
  c.max_seq_len = 64;
  c.rope_theta = 10000.0f;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = false;
  c.rope_interleaved = rope_interleaved;
  return c;
}

LlamaConfig with_llama3_rope(LlamaConfig c, float factor, int original_max_position_embeddings) {
  c.rope_theta = 500000.0f;
  c.rope_llama3 = true;
  c.rope_factor = factor;
  c.rope_low_freq_factor = 1.0f;
  c.rope_high_freq_factor = 4.0f;
  c.rope_original_max_position_embeddings = original_max_position_embeddings;
  return c;
}

Model random_model(const LlamaConfig& c, unsigned seed) {
  std::mt19937 rng(seed);
  auto tensor = [&](const std::string& name, std::vector<int64_t> shape, float mean, float sd) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::normal_distribution<float> dist(mean, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng);
    return Tensor::from_float(name, shape, v, DType::F32);
  };
  Model m;
  m.config = c;
  m.path = "random";
  m.format = "random";
  const int64_t dim = c.hidden_size;
  const auto dims = linear_dims(c);
  m.embed_tokens = tensor("model.embed_tokens.weight", {c.vocab_size, dim}, 0.0f, 1.0f);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.attn_norm = tensor(pre + "input_layernorm.weight", {dim}, 1.0f, 0.1f);
    const auto linears = block_linears(w);
    for (int t = 0; t < kNumLinears; ++t) {
      // Drawn in storage order: the MLP norm sits between the attention and MLP linears.
      if (t == kGate) w.mlp_norm = tensor(pre + "post_attention_layernorm.weight", {dim}, 1.0f, 0.1f);
      const auto [out, in] = dims[t];
      linears[t]->name = linear_hf_name(l, t);
      linears[t]->dense = tensor(linears[t]->name + ".weight", {out, in}, 0.0f, 1.0f / std::sqrt(float(in)));
    }
    if (c.attention_bias)  // after the weights, so that models without biases draw what they always drew
      for (LinearIndex t : {kQ, kK, kV})
        linears[t]->bias = tensor(linears[t]->name + ".bias", {dims[t].first}, 0.0f, 0.5f);
    m.layers.push_back(w);
  }
  m.norm = tensor("model.norm.weight", {dim}, 1.0f, 0.1f);
  m.lm_head = c.tie_word_embeddings ? m.embed_tokens : tensor("lm_head.weight", {c.vocab_size, dim}, 0.0f, 0.2f);
  return m;
}

static void append(std::string& out, const Tensor& t) {
  const auto v = t.to_float();
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

void write_llama2c(const Model& m, const std::string& path) {
  const LlamaConfig& c = m.config;
  std::string out;
  const int32_t h[7] = {c.hidden_size, c.intermediate_size, c.n_layers, c.n_heads, c.n_kv_heads,
                        c.tie_word_embeddings ? c.vocab_size : -c.vocab_size, c.max_seq_len};
  out.append(reinterpret_cast<const char*>(h), sizeof(h));
  append(out, m.embed_tokens);
  auto append_linears = [&](LinearIndex t) {
    for (auto& l : m.layers) append(out, (l.*kBlockLinears[t].weights).dense);
  };
  for (auto& l : m.layers) append(out, l.attn_norm);
  for (LinearIndex t : {kQ, kK, kV, kO}) append_linears(t);
  for (auto& l : m.layers) append(out, l.mlp_norm);
  for (LinearIndex t : {kGate, kDown, kUp}) append_linears(t);  // run.c's w1, w2, w3
  append(out, m.norm);
  out.append(size_t(c.max_seq_len) * c.head_dim() * 4, '\0');  // legacy freq_cis, unused
  if (!c.tie_word_embeddings) append(out, m.lm_head);
  write_file_atomic(path, out);
}

// Meta's interleaved rotary rows -> HF's half-split rows: HF row j*(hd/2) + i = Meta row 2i + j.
static std::vector<float> permute_to_hf(const Tensor& t, int n_heads, int hd) {
  const auto v = t.to_float();
  const int64_t in = t.shape[1];
  std::vector<float> out(v.size());
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < hd / 2; ++i)
      for (int j = 0; j < 2; ++j)
        for (int64_t col = 0; col < in; ++col)
          out[(int64_t(h) * hd + j * (hd / 2) + i) * in + col] = v[(int64_t(h) * hd + 2 * i + j) * in + col];
  return out;
}

void write_hf_dir(const Model& m, const std::string& dir) {
  mkdir(dir.c_str(), 0755);
  const LlamaConfig& c = m.config;
  std::vector<SafetensorsBlob> blobs;
  auto add = [&](const Tensor& t, std::vector<float> values) {
    SafetensorsBlob b{t.name, "F32", t.shape, {}};
    b.bytes.resize(values.size() * 4);
    std::memcpy(b.bytes.data(), values.data(), b.bytes.size());
    blobs.push_back(std::move(b));
  };
  for (const Tensor* t : named_dense_tensors(m)) {
    const bool rotary = t->name.find("q_proj") != std::string::npos || t->name.find("k_proj") != std::string::npos;
    if (rotary && c.rope_interleaved) {
      const int heads = t->name.find("q_proj") != std::string::npos ? c.n_heads : c.n_kv_heads;
      add(*t, permute_to_hf(*t, heads, c.head_dim()));
    } else {
      add(*t, t->to_float());
    }
  }
  write_safetensors(dir + "/model.safetensors", blobs);
  write_file_atomic(dir + "/config.json", hf_config_json(c).dump(2));
}

std::string temp_dir(const std::string& tag) {
  std::string tmpl = "/tmp/qbtest-" + tag + "-XXXXXX";
  char* p = mkdtemp(tmpl.data());
  return p ? std::string(p) : std::string();
}

}  // namespace qb::test
