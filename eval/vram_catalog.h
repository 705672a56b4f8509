#pragma once
// Weight memory the catalog models (bench/model_shapes.json: Llama-2-7B/13B/70B, Llama-3-8B,
// Mistral-7B) would need for each evaluated method, computed exactly from their configs: every
// tensor counted by shape, bytes as this project stores them (model.h): FP16 = 2 bytes per
// parameter; a quantized block linear = QuantizedWeight::stored_bytes (packed codes + FP16 scales
// + packed zero points). Embeddings, norms and lm_head stay FP16 under quantization (AWQ paper).
// Weights only: no KV cache, activations or CUDA context.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qb {

struct CatalogMethod {
  std::string name;    // "fp16" | "rtn" | "awq"
  int bits = 16;       // 16 for fp16; 2..8 for rtn/awq
  int group_size = 0;  // rtn/awq: > 0, or -1 for one group per output channel; ignored for fp16
};

// One entry per (model, method), models in catalog order, methods in the given order:
//   {"model", "method", "label" ("awq w4 g128", as MethodSpec::label), "bits",
//    "group_size" (null for fp16), "parameters", "weight_bytes"}
// Throws qb::Error naming the catalog file (unreadable, wrong schema, missing config field) or the
// method (unknown name, bits or group size out of range).
nlohmann::json vram_catalog(const std::string& catalog_path, const std::vector<CatalogMethod>& methods);

}  // namespace qb
