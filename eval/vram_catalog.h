#pragma once
// Weight memory the catalog models (bench/model_shapes.json: Llama-2-7B/13B/70B, Llama-3-8B,
// Mistral-7B) would need for each evaluated setting, computed exactly from their configs: every
// tensor counted by shape, bytes as this project stores them (model.h): FP16 = 2 bytes per
// parameter; a quantized block linear = quantized_stored_bytes (packed codes + FP16 scales +
// packed zero points). Embeddings, norms and lm_head stay FP16 under quantization (AWQ paper).
// Weights only: no KV cache, activations or CUDA context.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_catalog.h"

namespace qb {

// One evaluated weight format.
struct VramSetting {
  std::string label;   // "fp16", "awq w4 g128": the run document's "method" and "label"
  int bits = 16;       // 16: FP16; 2..8: the block linears quantized
  int group_size = 0;  // quantized: > 0, or -1 for one group per output channel; ignored for FP16
};

// One entry per (model, setting), models in catalog order, settings in the given order:
//   {"model", "method" (= label), "label", "bits", "group_size" (null for FP16), "parameters",
//    "weight_bytes"}
// Throws qb::Error naming the setting (no label, bits or group size out of range).
nlohmann::json vram_catalog(const std::vector<CatalogModel>& models, const std::vector<VramSetting>& settings);

}  // namespace qb
