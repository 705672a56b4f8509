#include "quant/gptq_format.h"

#include <memory>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "layouts/gptq_layout.h"
#include "model/block_linears.h"
#include "model/safetensors.h"
#include "quant/hf_checkpoint.h"

namespace qb {

namespace {

int n_groups_of(int k, int group_size) { return (k + group_size - 1) / group_size; }

void check_packable(int n, int k, int bits, const std::string& name) {
  if (!gptq::packable(bits))
    fail(name, std::to_string(bits) + "-bit weights cannot be stored in the GPTQ format here (2, 4 or 8 bits; "
                                      "its 3-bit layout straddles words)");
  const int per_word = gptq::pack_factor(bits);
  if (k % per_word != 0 || n % per_word != 0)
    fail(name, "in_features " + std::to_string(k) + " and out_features " + std::to_string(n) +
                   " must be multiples of " + std::to_string(per_word) + " (" + std::to_string(bits) +
                   "-bit values per int32)");
}

// quantization_config (config.json) or quantize_config.json, checked.
struct GptqSettings {
  int bits = 4;
  int group_size = 128;  // -1: one group per output channel
  bool desc_act = false;
  bool sym = true;
  bool zeros_v2 = false;  // checkpoint_format "gptq_v2"
};

GptqSettings read_settings(const std::string& dir) {
  const nlohmann::json config = read_checkpoint_config(dir);
  std::string where = dir + "/config.json", prefix = "quantization_config.";
  nlohmann::json qc;
  if (config.contains("quantization_config") && !config["quantization_config"].is_null()) {
    qc = config["quantization_config"];
  } else {
    where = dir + "/quantize_config.json";
    prefix = "";
    if (!file_exists(where))
      fail(dir, "config.json has no quantization_config and there is no quantize_config.json: not a GPTQ checkpoint");
    qc = read_json_file(where);
  }
  if (!qc.is_object()) fail(where, "'" + (prefix.empty() ? std::string("quantize_config") : "quantization_config") +
                                       "' is " + json_describe(qc) + ", expected an object");
  const auto optional = [&](const char* key, auto fallback) {
    const auto it = qc.find(key);
    return it == qc.end() || it->is_null() ? fallback : json_as<decltype(fallback)>(*it, where, prefix + key);
  };
  const auto required_int = [&](const char* key) {
    if (!qc.contains(key)) fail(where, "missing field '" + prefix + key + "'");
    return json_as<int>(qc[key], where, prefix + key);
  };
  // AutoGPTQ's quantize_config.json before v0.7 has no quant_method.
  const std::string method = optional("quant_method", std::string("gptq"));
  if (method != "gptq") fail(where, "field '" + prefix + "quant_method' is \"" + method + "\", not \"gptq\"");
  GptqSettings s;
  s.bits = required_int("bits");
  if (!gptq::packable(s.bits))
    fail(where, "field '" + prefix + "bits' is " + std::to_string(s.bits) +
                    ": the GPTQ format is read for 2, 4 and 8 bits (its 3-bit layout straddles words)");
  s.group_size = required_int("group_size");
  constexpr int kMaxGroupSize = 1 << 20;  // wider than any linear's input: beyond it the arithmetic would overflow
  if (s.group_size == 0 || s.group_size < -1 || s.group_size > kMaxGroupSize)
    fail(where, "field '" + prefix + "group_size' is " + std::to_string(s.group_size) +
                    ", expected a positive size up to 2^20 or -1 (one group per output channel)");
  s.desc_act = optional("desc_act", false);
  s.sym = optional("sym", true);
  const std::string format = optional("checkpoint_format", std::string("gptq"));
  if (format != "gptq" && format != "gptq_v2")
    fail(where, "field '" + prefix + "checkpoint_format' is \"" + format + "\", expected \"gptq\" or \"gptq_v2\"");
  s.zeros_v2 = format == "gptq_v2";
  return s;
}

std::shared_ptr<const QuantizedWeight> read_gptq_linear(const SafetensorsDirectory& files, const std::string& base,
                                                        int n, int k, const GptqSettings& s,
                                                        std::set<std::string>& used) {
  check_packable(n, k, s.bits, base);
  const int per_word = gptq::pack_factor(s.bits);
  GptqPackedLinear p;
  p.n = n;
  p.k = k;
  p.bits = s.bits;
  p.group_size = s.group_size > 0 ? s.group_size : k;
  const int n_groups = n_groups_of(k, p.group_size);
  for (const char* part : {".qweight", ".qzeros", ".scales"}) used.insert(base + part);
  p.qweight = copy_entry<int32_t>(files.get(base + ".qweight", {"I32"}, {k / per_word, n}));
  p.qzeros = copy_entry<int32_t>(files.get(base + ".qzeros", {"I32"}, {n_groups, n / per_word}));
  p.scales = copy_entry<uint16_t>(files.get(base + ".scales", {"F16"}, {n_groups, n}));
  if (files.has(base + ".g_idx")) {
    used.insert(base + ".g_idx");
    p.g_idx = copy_entry<int32_t>(files.get(base + ".g_idx", {"I32"}, {k}));
  }
  return std::make_shared<const QuantizedWeight>(unpack_gptq_linear(p, s.zeros_v2, base));
}

}  // namespace

GptqPackedLinear pack_gptq_linear(const QuantizedWeight& w, const std::string& name) {
  check_packable(w.n, w.k, w.bits, name);
  const int bits = w.bits, per_word = gptq::pack_factor(bits), n_groups = w.n_groups();
  GptqPackedLinear p;
  p.n = w.n;
  p.k = w.k;
  p.bits = bits;
  p.group_size = w.group_size;
  p.qweight.assign(static_cast<size_t>(w.k / per_word) * w.n, 0);
  p.qzeros.assign(static_cast<size_t>(n_groups) * (w.n / per_word), 0);
  p.scales = w.scales;  // both [n_groups, n]
  p.g_idx.resize(w.k);
  std::vector<uint8_t> codes(static_cast<size_t>(w.k));
  for (int o = 0; o < w.n; ++o) {
    w.row_codes(o, codes.data());
    for (int i = 0; i < w.k; ++i) {
      int32_t& word = p.qweight[static_cast<size_t>(i / per_word) * w.n + o];
      word = static_cast<int32_t>(static_cast<uint32_t>(word) | gptq::in_slot(codes[i], i % per_word, bits));
    }
  }
  for (int g = 0; g < n_groups; ++g)
    for (int o = 0; o < w.n; ++o) {
      int32_t& word = p.qzeros[static_cast<size_t>(g) * (w.n / per_word) + o / per_word];
      word = static_cast<int32_t>(static_cast<uint32_t>(word) |
                                  gptq::in_slot(gptq::zero_to_v1(w.zeros[static_cast<size_t>(g) * w.n + o], bits),
                                                o % per_word, bits));
    }
  for (int i = 0; i < w.k; ++i) p.g_idx[i] = w.group_of(i);
  return p;
}

QuantizedWeight unpack_gptq_linear(const GptqPackedLinear& p, bool zeros_v2, const std::string& name) {
  check_packable(p.n, p.k, p.bits, name);
  if (p.group_size < 1) fail(name, "group size " + std::to_string(p.group_size) + " < 1");
  const int bits = p.bits, per_word = gptq::pack_factor(bits), n_groups = n_groups_of(p.k, p.group_size);
  if (p.qweight.size() != static_cast<size_t>(p.k / per_word) * p.n ||
      p.qzeros.size() != static_cast<size_t>(n_groups) * (p.n / per_word) ||
      p.scales.size() != static_cast<size_t>(n_groups) * p.n || (!p.g_idx.empty() && p.g_idx.size() != size_t(p.k)))
    fail(name, "packed tensor sizes do not match n=" + std::to_string(p.n) + " k=" + std::to_string(p.k));
  QuantizedWeight w;
  w.allocate(p.n, p.k, bits, p.group_size);
  w.scales = p.scales;
  std::vector<uint8_t> codes(static_cast<size_t>(p.k));
  for (int o = 0; o < p.n; ++o) {
    for (int i = 0; i < p.k; ++i) {
      const auto word = static_cast<uint32_t>(p.qweight[static_cast<size_t>(i / per_word) * p.n + o]);
      codes[i] = static_cast<uint8_t>(gptq::unpack(word, i % per_word, bits));
    }
    w.set_row_codes(o, codes.data());
  }
  bool all_mid = true;  // every zero point at 2^(bits-1): symmetric
  for (int g = 0; g < n_groups; ++g)
    for (int o = 0; o < p.n; ++o) {
      const auto word = static_cast<uint32_t>(p.qzeros[static_cast<size_t>(g) * (p.n / per_word) + o / per_word]);
      const uint32_t stored = gptq::unpack(word, o % per_word, bits);
      const uint32_t zero = zeros_v2 ? stored : gptq::zero_from_v1(stored, bits);
      w.zeros[static_cast<size_t>(g) * p.n + o] = static_cast<uint8_t>(zero);
      all_mid = all_mid && zero == (1u << (bits - 1));
    }
  w.symmetric = all_mid;
  bool trivial = true;
  for (int i = 0; i < static_cast<int>(p.g_idx.size()); ++i) {
    if (p.g_idx[i] < 0 || p.g_idx[i] >= n_groups)
      fail(name + ".g_idx", "entry " + std::to_string(i) + " is " + std::to_string(p.g_idx[i]) + ", outside 0.." +
                                std::to_string(n_groups - 1) + " (the groups of scales and qzeros)");
    trivial = trivial && p.g_idx[i] == i / p.group_size;
  }
  if (!trivial) w.g_idx = p.g_idx;
  return w;
}

bool is_gptq_checkpoint(const std::string& dir) {
  if (!is_directory(dir) || !file_exists(dir + "/config.json")) return false;
  const nlohmann::json j = read_checkpoint_config(dir);
  if (j.contains("quantization_config") && j["quantization_config"].is_object())
    return j["quantization_config"].value("quant_method", nlohmann::json()) == "gptq";
  return file_exists(dir + "/quantize_config.json");
}

Model load_gptq_checkpoint(const std::string& dir) {
  const GptqSettings s = read_settings(dir);
  return load_quantized_checkpoint(
      dir, read_checkpoint_config(dir), "gptq-safetensors",
      [&](const SafetensorsDirectory& files, const std::string& base, int n, int k, std::set<std::string>& used) {
        return read_gptq_linear(files, base, n, k, s, used);
      });
}

void check_gptq_storable(const LlamaConfig& c, int bits) {
  const auto dims = linear_dims(c);
  for (int t = 0; t < kNumLinears; ++t) check_packable(dims[t].first, dims[t].second, bits, linear_hf_name(0, t));
}

CheckpointFormat gptq_checkpoint_format(int bits, int group_size, bool sym, const GptqWriteOptions& options) {
  CheckpointFormat f;
  f.name = "GPTQ";
  f.plan_linear = [bits, group_size](const std::string& base, int n, int k) {
    const int64_t group = group_size == -1 ? k : group_size;
    const int64_t per_word = gptq::pack_factor(bits), n_groups = (k + group - 1) / group;
    return std::vector<SafetensorsTensorSpec>{{base + ".qweight", "I32", {k / per_word, n}},
                                              {base + ".qzeros", "I32", {n_groups, n / per_word}},
                                              {base + ".scales", "F16", {n_groups, n}},
                                              {base + ".g_idx", "I32", {k}}};
  };
  f.write_linear = [bits, group_size](const QuantizedWeight& w, const std::string& base,
                                      std::vector<SafetensorsBlob>& blobs) {
    if (w.bits != bits || w.group_size != (group_size == -1 ? w.k : group_size))
      fail(base, "w" + std::to_string(w.bits) + " g" + std::to_string(w.group_size) + " differs from the other " +
                     "layers' w" + std::to_string(bits) + " g" + std::to_string(group_size) +
                     " (the format has one setting)");
    const GptqPackedLinear p = pack_gptq_linear(w, base);
    const int64_t per_word = gptq::pack_factor(w.bits), n_groups = w.n_groups();
    blobs.push_back(raw_blob(base + ".qweight", "I32", {w.k / per_word, w.n}, p.qweight));
    blobs.push_back(raw_blob(base + ".qzeros", "I32", {n_groups, w.n / per_word}, p.qzeros));
    blobs.push_back(raw_blob(base + ".scales", "F16", {n_groups, w.n}, p.scales));
    blobs.push_back(raw_blob(base + ".g_idx", "I32", {w.k}, p.g_idx));
  };
  f.quantization_config = {{"quant_method", "gptq"},
                           {"bits", bits},
                           {"group_size", group_size},
                           {"desc_act", options.desc_act},
                           {"static_groups", options.desc_act},
                           {"sym", sym},
                           {"true_sequential", true},
                           {"damp_percent", options.damp_percent},
                           {"checkpoint_format", "gptq"},
                           {"meta", {{"quantizer", "quantbench"}}}};
  f.extra_json = {{"quantize_config.json", f.quantization_config}};
  return f;
}

void write_gptq_checkpoint(const Model& model, const std::string& dir, const GptqWriteOptions& options) {
  // One bits and group size for the whole model, as the config states them (-1: every layer
  // per-channel); symmetric only when every layer is.
  int bits = 0, group_size = -1;
  bool sym = true;
  for (const LayerWeights& l : model.layers)
    for (const Linear* linear : block_linears(l))
      if (linear->quant) {
        if (bits == 0) bits = linear->quant->bits;
        if (linear->quant->group_size != linear->quant->k && group_size == -1) group_size = linear->quant->group_size;
        sym = sym && linear->quant->symmetric;
      }
  write_quantized_checkpoint(model, dir, gptq_checkpoint_format(bits, group_size, sym, options),
                             {options.tokenizer_path, options.report}, options.shard_bytes);
}

}  // namespace qb
