#include "quant/awq_format.h"

#include <algorithm>
#include <array>
#include <memory>
#include <set>
#include <vector>

#include "common/error.h"
#include "common/files.h"
#include "common/json_fields.h"
#include "layouts/awq_layout.h"
#include "model/block_linears.h"
#include "model/safetensors.h"
#include "quant/hf_checkpoint.h"

namespace qb {

AwqPackedLinear pack_awq_linear(const QuantizedWeight& w, const std::string& name) {
  if (w.bits != awq::kBits)
    fail(name, std::to_string(w.bits) + "-bit weights cannot be stored in the AutoAWQ format (4-bit only)");
  if (w.k % w.group_size != 0)
    fail(name, "group size " + std::to_string(w.group_size) + " does not divide in_features " + std::to_string(w.k) +
                   " (AutoAWQ's format requires k % group_size == 0)");
  if (w.n % awq::kPackFactor != 0)
    fail(name, "out_features " + std::to_string(w.n) + " is not a multiple of 8");
  if (!w.g_idx.empty())
    fail(name, "has input channels in act-order groups (GPTQ g_idx), which the AutoAWQ layout cannot hold");
  const int words = w.n / awq::kPackFactor, n_groups = w.k / w.group_size;
  AwqPackedLinear p;
  p.n = w.n;
  p.k = w.k;
  p.group_size = w.group_size;
  p.qweight.resize(static_cast<size_t>(w.k) * words);
  p.qzeros.resize(static_cast<size_t>(n_groups) * words);
  p.scales = w.scales;  // both [n_groups, n]
  uint8_t values[awq::kPackFactor];
  std::vector<uint8_t> codes(static_cast<size_t>(awq::kPackFactor) * w.k);  // [8, k]: output rows 8c .. 8c+7
  for (int c = 0; c < words; ++c) {
    for (int j = 0; j < awq::kPackFactor; ++j) w.row_codes(c * 8 + j, &codes[static_cast<size_t>(j) * w.k]);
    for (int r = 0; r < w.k; ++r) {
      for (int j = 0; j < awq::kPackFactor; ++j) values[j] = codes[static_cast<size_t>(j) * w.k + r];
      p.qweight[static_cast<size_t>(r) * words + c] = static_cast<int32_t>(awq::pack(values));
    }
  }
  for (int g = 0; g < n_groups; ++g)
    for (int c = 0; c < words; ++c) {
      for (int j = 0; j < awq::kPackFactor; ++j) values[j] = w.zeros[static_cast<size_t>(g) * w.n + c * 8 + j];
      p.qzeros[static_cast<size_t>(g) * words + c] = static_cast<int32_t>(awq::pack(values));
    }
  return p;
}

QuantizedWeight unpack_awq_linear(const AwqPackedLinear& p, const std::string& name) {
  if (p.group_size <= 0 || p.k % p.group_size != 0 || p.n % awq::kPackFactor != 0)
    fail(name, "invalid packed shape n=" + std::to_string(p.n) + " k=" + std::to_string(p.k) +
                   " group_size=" + std::to_string(p.group_size));
  const int words = p.n / awq::kPackFactor, n_groups = p.k / p.group_size;
  if (p.qweight.size() != static_cast<size_t>(p.k) * words || p.qzeros.size() != static_cast<size_t>(n_groups) * words ||
      p.scales.size() != static_cast<size_t>(n_groups) * p.n)
    fail(name, "packed tensor sizes do not match n=" + std::to_string(p.n) + " k=" + std::to_string(p.k));
  QuantizedWeight w;
  w.allocate(p.n, p.k, awq::kBits, p.group_size);
  w.symmetric = false;
  w.scales = p.scales;
  std::vector<uint8_t> codes(static_cast<size_t>(awq::kPackFactor) * p.k);  // [8, k]: output rows 8c .. 8c+7
  for (int c = 0; c < words; ++c) {
    for (int r = 0; r < p.k; ++r) {
      const uint32_t word = static_cast<uint32_t>(p.qweight[static_cast<size_t>(r) * words + c]);
      for (int j = 0; j < awq::kPackFactor; ++j)
        codes[static_cast<size_t>(j) * p.k + r] = static_cast<uint8_t>(awq::unpack(word, j));
    }
    for (int j = 0; j < awq::kPackFactor; ++j) w.set_row_codes(c * 8 + j, &codes[static_cast<size_t>(j) * p.k]);
  }
  for (int g = 0; g < n_groups; ++g)
    for (int c = 0; c < words; ++c) {
      const uint32_t word = static_cast<uint32_t>(p.qzeros[static_cast<size_t>(g) * words + c]);
      for (int j = 0; j < awq::kPackFactor; ++j)
        w.zeros[static_cast<size_t>(g) * p.n + c * 8 + j] = static_cast<uint8_t>(awq::unpack(word, j));
    }
  return w;
}

namespace {

std::shared_ptr<const QuantizedWeight> read_awq_linear(const SafetensorsDirectory& files, const std::string& base,
                                                       int n, int k, int group_size, std::set<std::string>& used) {
  const int group = group_size > 0 ? group_size : k;
  if (k % group != 0)
    fail(base, "group size " + std::to_string(group) + " does not divide in_features " + std::to_string(k));
  if (n % awq::kPackFactor != 0) fail(base, "out_features " + std::to_string(n) + " is not a multiple of 8");
  const int words = n / awq::kPackFactor, n_groups = k / group;
  for (const char* part : {".qweight", ".qzeros", ".scales"}) used.insert(base + part);
  AwqPackedLinear p;
  p.n = n;
  p.k = k;
  p.group_size = group;
  p.qweight = copy_entry<int32_t>(files.get(base + ".qweight", {"I32"}, {k, words}));
  p.qzeros = copy_entry<int32_t>(files.get(base + ".qzeros", {"I32"}, {n_groups, words}));
  p.scales = copy_entry<uint16_t>(files.get(base + ".scales", {"F16"}, {n_groups, n}));
  return std::make_shared<const QuantizedWeight>(unpack_awq_linear(p, base));
}

}  // namespace

void check_awq_storable(const LlamaConfig& c, int bits, int group_size) {
  const auto dims = linear_dims(c);
  for (int t = 0; t < kNumLinears; ++t) {
    const auto [n, k] = dims[t];
    QuantizedWeight shape_only;  // pack_awq_linear checks only these fields before packing
    shape_only.n = n;
    shape_only.k = k;
    shape_only.bits = bits;
    shape_only.group_size = group_size > 0 ? group_size : k;
    if (bits != awq::kBits || k % shape_only.group_size != 0 || n % awq::kPackFactor != 0)
      pack_awq_linear(shape_only, linear_hf_name(0, t));
  }
}

bool is_awq_checkpoint(const std::string& dir) {
  if (!is_directory(dir) || !file_exists(dir + "/config.json")) return false;
  const nlohmann::json j = read_checkpoint_config(dir);
  return j.contains("quantization_config") && j["quantization_config"].is_object() &&
         j["quantization_config"].value("quant_method", nlohmann::json()) == "awq";
}

Model load_awq_checkpoint(const std::string& dir) {
  const nlohmann::json j = read_checkpoint_config(dir);
  const std::string config_path = dir + "/config.json";
  if (!j.contains("quantization_config") || !j["quantization_config"].is_object())
    fail(config_path, "no quantization_config: not an AWQ checkpoint");
  const nlohmann::json& qc = j["quantization_config"];
  const std::string qc_where = config_path + ": quantization_config";
  if (json_field_or<std::string>(qc, qc_where, "quant_method", "") != "awq")
    fail(config_path, "quantization_config.quant_method is not \"awq\"");
  const std::string version = json_field_or<std::string>(qc, qc_where, "version", "gemm");
  if (version != "gemm" && version != "GEMM")
    fail(config_path, "quantization_config.version \"" + version + "\" not supported (only \"gemm\")");
  const int bits = json_field_or<int>(qc, qc_where, "bits", json_field_or<int>(qc, qc_where, "w_bit", 0));
  if (bits != awq::kBits) fail(config_path, "quantization_config.bits " + std::to_string(bits) + " (only 4)");
  const int group_size =
      json_field_or<int>(qc, qc_where, "group_size", json_field_or<int>(qc, qc_where, "q_group_size", 0));
  if (group_size == 0 || group_size < -1)
    fail(config_path, "quantization_config.group_size " + std::to_string(group_size) + " invalid");
  return load_quantized_checkpoint(
      dir, j, "awq-safetensors",
      [&](const SafetensorsDirectory& files, const std::string& base, int n, int k, std::set<std::string>& used) {
        return read_awq_linear(files, base, n, k, group_size, used);
      });
}

CheckpointFormat awq_checkpoint_format(int group_size) {
  CheckpointFormat f;
  f.name = "AutoAWQ";
  f.plan_linear = [group_size](const std::string& base, int n, int k) {
    const int64_t words = n / awq::kPackFactor, n_groups = k / (group_size == -1 ? k : group_size);
    return std::vector<SafetensorsTensorSpec>{{base + ".qweight", "I32", {k, words}},
                                              {base + ".qzeros", "I32", {n_groups, words}},
                                              {base + ".scales", "F16", {n_groups, n}}};
  };
  f.write_linear = [group_size](const QuantizedWeight& w, const std::string& base,
                                std::vector<SafetensorsBlob>& blobs) {
    if (w.group_size != (group_size == -1 ? w.k : group_size))
      fail(base, "group size " + std::to_string(w.group_size) + " differs from the other layers' " +
                     std::to_string(group_size) + " (the format has one group size)");
    const AwqPackedLinear packed = pack_awq_linear(w, base);
    const int64_t words = w.n / awq::kPackFactor, n_groups = w.k / w.group_size;
    blobs.push_back(raw_blob(base + ".qweight", "I32", {w.k, words}, packed.qweight));
    blobs.push_back(raw_blob(base + ".qzeros", "I32", {n_groups, words}, packed.qzeros));
    blobs.push_back(raw_blob(base + ".scales", "F16", {n_groups, w.n}, packed.scales));
  };
  f.quantization_config = {{"quant_method", "awq"}, {"bits", awq::kBits},   {"group_size", group_size},
                           {"zero_point", true},    {"version", "gemm"},    {"modules_to_not_convert", nullptr}};
  return f;
}

void write_awq_checkpoint(const Model& model, const std::string& dir, const AwqWriteOptions& options) {
  // The format has one group size: that of the layers whose group is shorter than k, or -1 (one
  // group per output channel) when every layer is per-channel.
  int group_size = -1;
  for (const LayerWeights& l : model.layers)
    for (const Linear* linear : block_linears(l))
      if (linear->quant && linear->quant->group_size != linear->quant->k && group_size == -1)
        group_size = linear->quant->group_size;
  write_quantized_checkpoint(model, dir, awq_checkpoint_format(group_size), {options.tokenizer_path, options.report},
                             options.shard_bytes);
}

}  // namespace qb
