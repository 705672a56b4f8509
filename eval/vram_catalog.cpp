#include "eval/vram_catalog.h"

#include <cstdint>

#include "common/error.h"
#include "model/block_linears.h"
#include "model/model.h"

namespace qb {
namespace {

constexpr int kFp16Bits = 16;

void check_setting(const VramSetting& s) {
  const std::string where = "vram catalog setting '" + s.label + "'";
  if (s.label.empty()) fail(where, "has no label");
  if (s.bits == kFp16Bits) return;
  if (s.bits < 2 || s.bits > 8) fail(where, "bits " + std::to_string(s.bits) + " is not 16 (fp16) or 2..8");
  if (s.group_size == 0 || s.group_size < -1)
    fail(where, "group size " + std::to_string(s.group_size) + " is not > 0 or -1 (per channel)");
}

// Parameters and stored bytes of one model in one setting.
struct Footprint {
  int64_t parameters = 0;
  size_t bytes = 0;
};

Footprint footprint(const LlamaConfig& c, const VramSetting& s) {
  Footprint f;
  auto plain = [&](int64_t count) {  // embeddings, norms, biases, lm_head: FP16 in every setting
    f.parameters += count;
    f.bytes += static_cast<size_t>(count) * 2;
  };
  const int64_t hidden = c.hidden_size, vocab = c.vocab_size;
  plain(vocab * hidden);  // embed_tokens
  for (int l = 0; l < c.n_layers; ++l) {
    plain(2 * hidden);  // input_layernorm, post_attention_layernorm
    if (c.attention_bias) plain(int64_t(c.n_heads + 2 * c.n_kv_heads) * c.head_dim());  // q/k/v biases (Qwen2)
    for (const auto& [out_features, in_features] : linear_dims(c)) {
      const int64_t n = out_features, k = in_features;
      f.parameters += n * k;
      f.bytes += s.bits == kFp16Bits ? static_cast<size_t>(n * k) * 2
                                     : quantized_stored_bytes(n, k, s.bits, s.group_size > 0 ? s.group_size : k);
    }
  }
  plain(hidden);                                       // final norm
  if (!c.tie_word_embeddings) plain(vocab * hidden);  // lm_head
  return f;
}

}  // namespace

nlohmann::json vram_catalog(const std::vector<CatalogModel>& models, const std::vector<VramSetting>& settings) {
  for (const auto& s : settings) check_setting(s);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& model : models) {
    for (const auto& s : settings) {
      const Footprint f = footprint(model.config, s);
      out.push_back({{"model", model.name},
                     {"method", s.label},
                     {"label", s.label},
                     {"bits", s.bits},
                     {"group_size", s.bits == kFp16Bits ? nlohmann::json(nullptr) : nlohmann::json(s.group_size)},
                     {"parameters", f.parameters},
                     {"weight_bytes", f.bytes}});
    }
  }
  return out;
}

}  // namespace qb
