#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <map>

#include "common/error.h"
#include "common/half.h"
#include "layouts/ggml_blocks.h"
#include "model/block_linears.h"

namespace qb {

namespace {

// The ggml type of each DType, in DType's order; names and block sizes are ggml's (ggml_blocks.h).
constexpr ggml::Type kGgmlTypes[] = {
    ggml::Type::F32,  ggml::Type::F16,  ggml::Type::BF16, ggml::Type::Q4_0, ggml::Type::Q4_1,
    ggml::Type::Q5_0, ggml::Type::Q5_1, ggml::Type::Q8_0, ggml::Type::Q2_K, ggml::Type::Q3_K,
    ggml::Type::Q4_K, ggml::Type::Q5_K, ggml::Type::Q6_K,
};

}  // namespace

ggml::Type dtype_ggml_type(DType t) { return kGgmlTypes[static_cast<int>(t)]; }
std::optional<DType> dtype_of_ggml_type(ggml::Type t) {
  for (size_t d = 0; d < std::size(kGgmlTypes); ++d)
    if (kGgmlTypes[d] == t) return static_cast<DType>(d);
  return std::nullopt;
}
const char* dtype_name(DType t) { return ggml::type_name(dtype_ggml_type(t)); }
bool is_block_dtype(DType t) { return dtype_block_elems(t) > 1; }
int dtype_block_elems(DType t) { return ggml::block_elems(dtype_ggml_type(t)); }
size_t dtype_block_bytes(DType t) { return ggml::block_bytes(dtype_ggml_type(t)); }

size_t dtype_row_bytes(DType t, int64_t row_len) {
  const int block_elems = dtype_block_elems(t);
  if (row_len % block_elems != 0)
    fail(dtype_name(t), "a row of " + std::to_string(row_len) + " values is not a whole number of " +
                            std::to_string(block_elems) + "-value blocks");
  return static_cast<size_t>(row_len / block_elems) * dtype_block_bytes(t);
}

std::vector<double> rope_inv_freq(const LlamaConfig& c) {
  const int hd = c.head_dim(), half = hd / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(double(c.rope_theta), -2.0 * i / hd);
  if (!c.rope_llama3) return inv_freq;
  // transformers' _compute_llama3_parameters: wavelengths longer than the original context /
  // low_freq_factor are slowed by factor, shorter than context / high_freq_factor kept, and the
  // band between blended linearly in context / wavelen.
  const double context = c.rope_original_max_position_embeddings, factor = c.rope_factor;
  const double low = c.rope_low_freq_factor, high = c.rope_high_freq_factor;
  const double low_freq_wavelen = context / low, high_freq_wavelen = context / high;
  for (double& f : inv_freq) {
    const double wavelen = 2.0 * M_PI / f;
    if (wavelen > low_freq_wavelen) {
      f /= factor;
    } else if (wavelen >= high_freq_wavelen) {
      const double smooth = (context / wavelen - low) / (high - low);
      f = (1.0 - smooth) * f / factor + smooth * f;
    }
  }
  return inv_freq;
}

void check_window_length(const LlamaConfig& c, int n_tokens, const std::string& where) {
  if (c.sliding_window > 0 && n_tokens > c.sliding_window)
    fail(where, "window of " + std::to_string(n_tokens) + " tokens exceeds the config's sliding_window " +
                    std::to_string(c.sliding_window) + "; only windows up to it (exact full attention) are supported");
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return shape.empty() ? 0 : n;
}

size_t Tensor::nbytes() const {
  if (shape.empty()) return 0;
  const int64_t row_len = shape.back();
  return static_cast<size_t>(row_len == 0 ? 0 : numel() / row_len) * dtype_row_bytes(dtype, row_len);
}

float Tensor::at(int64_t i) const {
  switch (dtype) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::F16: return half_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return bf16_to_float(static_cast<const uint16_t*>(data)[i]);
    default: break;
  }
  const int block_elems = dtype_block_elems(dtype);
  const int64_t block = i / block_elems;
  float values[ggml::QK_K];
  ggml::dequantize_row(dtype_ggml_type(dtype), static_cast<const uint8_t*>(data) + block * dtype_block_bytes(dtype),
                       values, block_elems);
  return values[i % block_elems];
}

std::vector<float> Tensor::to_float() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  // A zero dimension (GGUF and safetensors files may hold one): no buffer to copy, no row length.
  if (out.empty()) return out;
  if (dtype == DType::F32) {
    std::memcpy(out.data(), data, out.size() * 4);
  } else if (is_block_dtype(dtype)) {
    const int64_t row_len = shape.back(), rows = numel() / row_len;
    const size_t row_bytes = dtype_row_bytes(dtype, row_len);
    const ggml::Type type = dtype_ggml_type(dtype);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      ggml::dequantize_row(type, static_cast<const uint8_t*>(data) + r * row_bytes, &out[r * row_len], row_len);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < numel(); ++i) out[i] = at(i);
  }
  return out;
}

void Tensor::rows_to_float(int64_t row_begin, int64_t row_end, float* out) const {
  const int64_t row_len = shape.back();
  if (is_block_dtype(dtype)) {
    const size_t row_bytes = dtype_row_bytes(dtype, row_len);
    for (int64_t r = row_begin; r < row_end; ++r)
      ggml::dequantize_row(dtype_ggml_type(dtype), static_cast<const uint8_t*>(data) + r * row_bytes,
                           out + (r - row_begin) * row_len, row_len);
  } else if (dtype == DType::F32) {
    std::memcpy(out, static_cast<const float*>(data) + row_begin * row_len, sizeof(float) * (row_end - row_begin) * row_len);
  } else {
    const uint16_t* first = static_cast<const uint16_t*>(data) + row_begin * row_len;
    const size_t n = static_cast<size_t>((row_end - row_begin) * row_len);
    dtype == DType::F16 ? halves_to_float(first, out, n) : bf16s_to_float(first, out, n);
  }
}

Tensor Tensor::from_float(std::string name, std::vector<int64_t> shape, const std::vector<float>& values,
                          DType dtype) {
  Tensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = std::move(shape);
  if (static_cast<size_t>(t.numel()) != values.size())
    fail(t.name, "from_float: " + std::to_string(values.size()) + " values for shape of " +
                     std::to_string(t.numel()));
  auto buf = std::shared_ptr<uint8_t[]>(new uint8_t[t.nbytes()]);
  if (dtype == DType::F32) {
    std::memcpy(buf.get(), values.data(), t.nbytes());
  } else if (dtype == DType::F16) {
    auto* h = reinterpret_cast<uint16_t*>(buf.get());
    for (size_t i = 0; i < values.size(); ++i) h[i] = float_to_half(values[i]);
  } else {
    fail(t.name, "from_float: BF16 output is not supported");
  }
  t.data = buf.get();
  t.owner = std::shared_ptr<const void>(buf, buf.get());
  return t;
}

static size_t packed_bytes(size_t count, int bits) { return (count * static_cast<size_t>(bits) + 7) / 8; }

size_t quantized_stored_bytes(int64_t n, int64_t k, int bits, int group_size) {
  const size_t g = static_cast<size_t>((k + group_size - 1) / group_size * n);
  return packed_bytes(static_cast<size_t>(n * k), bits) + g * 2 + packed_bytes(g, bits);
}

size_t QuantizedWeight::stored_bytes() const {
  return quantized_stored_bytes(n, k, bits, group_size) + g_idx.size() * sizeof(int32_t);
}

namespace {

// Calls emit(i, code) for the k codes packed `bits` wide, LSB first, from src.
template <class Emit>
void for_each_packed_code(const uint8_t* src, int k, int bits, Emit emit) {
  const uint32_t mask = (1u << bits) - 1;
  uint32_t pending = 0;  // bits read from src and not yet emitted, lowest first
  int n_pending = 0;
  for (int i = 0; i < k; ++i) {
    if (n_pending < bits) {
      pending |= static_cast<uint32_t>(*src++) << n_pending;
      n_pending += 8;
    }
    emit(i, static_cast<uint8_t>(pending & mask));
    pending >>= bits;
    n_pending -= bits;
  }
}

// out[i] = (code i - zero) * scale for the `len` 4-bit codes in src, two a byte, low nibble first.
// The float arithmetic is the same as the generic path's, so both give identical values.
void dequantize_nibbles(const uint8_t* src, int len, float scale, float zero, float* out) {
  const int pairs = len / 2;
  for (int j = 0; j < pairs; ++j) {
    const uint8_t b = src[j];
    out[2 * j] = (static_cast<float>(b & 15) - zero) * scale;
    out[2 * j + 1] = (static_cast<float>(b >> 4) - zero) * scale;
  }
  if (len % 2) out[len - 1] = (static_cast<float>(src[pairs] & 15) - zero) * scale;
}

}  // namespace

void QuantizedWeight::allocate(int n_out, int k_in, int code_bits, int group) {
  if (n_out < 0 || k_in < 0 || code_bits < 1 || code_bits > 8 || group < 1)
    fail("QuantizedWeight", "cannot allocate n=" + std::to_string(n_out) + " k=" + std::to_string(k_in) +
                                " bits=" + std::to_string(code_bits) + " group_size=" + std::to_string(group));
  n = n_out;
  k = k_in;
  bits = code_bits;
  group_size = group;
  codes_.assign(static_cast<size_t>(n) * row_bytes(), 0);
  scales.assign(static_cast<size_t>(n_groups()) * n, 0);
  zeros.assign(static_cast<size_t>(n_groups()) * n, 0);
  g_idx.clear();
}

uint8_t QuantizedWeight::code(int o, int i) const {
  const size_t bit = static_cast<size_t>(i) * bits;
  const uint8_t* b = &codes_[static_cast<size_t>(o) * row_bytes() + bit / 8];
  const int shift = static_cast<int>(bit % 8);
  uint32_t v = b[0] >> shift;
  if (shift + bits > 8) v |= static_cast<uint32_t>(b[1]) << (8 - shift);  // straddles two bytes
  return static_cast<uint8_t>(v & ((1u << bits) - 1));
}

void QuantizedWeight::set_code(int o, int i, uint8_t v) {
  const size_t bit = static_cast<size_t>(i) * bits;
  uint8_t* b = &codes_[static_cast<size_t>(o) * row_bytes() + bit / 8];
  const int shift = static_cast<int>(bit % 8);
  const uint32_t mask = (1u << bits) - 1, value = v & mask;
  b[0] = static_cast<uint8_t>((b[0] & ~(mask << shift)) | (value << shift));
  if (shift + bits > 8)
    b[1] = static_cast<uint8_t>((b[1] & ~(mask >> (8 - shift))) | (value >> (8 - shift)));
}

void QuantizedWeight::row_codes(int o, uint8_t* out) const {
  const uint8_t* src = &codes_[static_cast<size_t>(o) * row_bytes()];
  if (bits == 8) {
    std::memcpy(out, src, static_cast<size_t>(k));
  } else if (bits == 4) {
    const int pairs = k / 2;  // a local: byte stores may alias k, which would stop vectorization
    for (int j = 0; j < pairs; ++j) {
      out[2 * j] = src[j] & 15;
      out[2 * j + 1] = src[j] >> 4;
    }
    if (k % 2) out[k - 1] = src[pairs] & 15;
  } else {
    for_each_packed_code(src, k, bits, [&](int i, uint8_t c) { out[i] = c; });
  }
}

void QuantizedWeight::set_row_codes(int o, const uint8_t* in) {
  uint8_t* dst = &codes_[static_cast<size_t>(o) * row_bytes()];
  const uint32_t mask = (1u << bits) - 1;
  if (bits == 8) {
    std::memcpy(dst, in, static_cast<size_t>(k));
  } else if (bits == 4) {
    const int pairs = k / 2;  // a local: byte stores may alias k, which would stop vectorization
    for (int j = 0; j < pairs; ++j) dst[j] = static_cast<uint8_t>((in[2 * j] & 15) | (in[2 * j + 1] & 15) << 4);
    if (k % 2) dst[pairs] = in[k - 1] & 15;
  } else {
    uint32_t pending = 0;  // bits not yet written to dst, lowest first
    int n_pending = 0;
    for (int i = 0; i < k; ++i) {
      pending |= (in[i] & mask) << n_pending;
      for (n_pending += bits; n_pending >= 8; n_pending -= 8) {
        *dst++ = static_cast<uint8_t>(pending);
        pending >>= 8;
      }
    }
    if (n_pending > 0) *dst = static_cast<uint8_t>(pending);
  }
}

std::vector<float> QuantizedWeight::dequantize() const {
  std::vector<float> w(static_cast<size_t>(n) * k);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < n; ++o) dequantize_rows(o, o + 1, &w[static_cast<size_t>(o) * k]);
  return w;
}

void QuantizedWeight::dequantize_rows(int row_begin, int row_end, float* out) const {
  const int n_group = n_groups();
  // 4-bit codes in contiguous groups that start on a byte: a group's scale and zero loaded once.
  const bool nibble_groups = bits == 4 && g_idx.empty() && group_size % 2 == 0;
  for (int o = row_begin; o < row_end; ++o) {
    const uint8_t* src = &codes_[static_cast<size_t>(o) * row_bytes()];
    float* row = out + static_cast<size_t>(o - row_begin) * k;
    if (nibble_groups) {
      for (int g = 0; g < n_group; ++g) {
        const size_t at = static_cast<size_t>(g) * n + o;
        const int begin = g * group_size;
        dequantize_nibbles(src + begin / 2, std::min(group_size, k - begin), half_to_float(scales[at]),
                           static_cast<float>(zeros[at]), row + begin);
      }
      continue;
    }
    if (bits == 8) {
      for (int i = 0; i < k; ++i) row[i] = static_cast<float>(src[i]);
    } else {
      for_each_packed_code(src, k, bits, [&](int i, uint8_t c) { row[i] = static_cast<float>(c); });
    }
    for (int begin = 0, end; begin < k; begin = end) {  // runs of input channels in one group
      const int g = group_of(begin);
      if (g_idx.empty()) {
        end = std::min(k, begin + group_size);
      } else {
        for (end = begin + 1; end < k && g_idx[end] == g;) ++end;
      }
      const size_t at = static_cast<size_t>(g) * n + o;
      const float scale = half_to_float(scales[at]), zero = static_cast<float>(zeros[at]);
      for (int i = begin; i < end; ++i) row[i] = (row[i] - zero) * scale;
    }
  }
}

int Linear::out_features() const { return quant ? quant->n : static_cast<int>(dense.shape.at(0)); }
int Linear::in_features() const { return quant ? quant->k : static_cast<int>(dense.shape.at(1)); }
size_t Linear::stored_bytes() const {
  return quant ? quant->stored_bytes() + (kept ? kept->stored_bytes() : 0) : dense.nbytes();
}

template <typename F>
static void for_each_linear(const Model& m, F&& f) {
  for (const auto& l : m.layers)
    for (const Linear* lin : block_linears(l)) f(*lin);
}

// Every unquantized tensor beside the linears' weights: embeddings, norms, biases, lm_head.
template <typename F>
static void for_each_plain_tensor(const Model& m, F&& f) {
  f(m.embed_tokens);
  for (const auto& l : m.layers) {
    f(l.attn_norm);
    f(l.mlp_norm);
    for (const Linear* lin : block_linears(l))
      if (lin->bias.data) f(lin->bias);
  }
  f(m.norm);
  if (!m.config.tie_word_embeddings) f(m.lm_head);
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for_each_plain_tensor(*this, [&](const Tensor& t) { n += t.numel(); });
  for_each_linear(*this, [&](const Linear& l) { n += int64_t(l.out_features()) * l.in_features(); });
  return n;
}

std::vector<std::pair<std::string, size_t>> Model::weight_bytes_by_dtype() const {
  std::map<std::string, size_t> by;
  for_each_plain_tensor(*this, [&](const Tensor& t) { by[dtype_name(t.dtype)] += t.nbytes(); });
  for_each_linear(*this, [&](const Linear& l) {
    if (l.quant) {
      by["Q" + std::to_string(l.quant->bits)] += l.quant->stored_bytes();
      if (l.kept) by["F16"] += l.kept->stored_bytes();
    } else
      by[dtype_name(l.dense.dtype)] += l.dense.nbytes();
  });
  return {by.begin(), by.end()};
}

size_t Model::weight_bytes() const {
  size_t total = 0;
  for (const auto& [name, bytes] : weight_bytes_by_dtype()) total += bytes;
  return total;
}

static void check_tensor_finite(const Tensor& t) {
  auto check = [&](float v, int64_t i) {
    if (!std::isfinite(v)) fail(t.name, "non-finite value (" + std::to_string(v) + ") at element " + std::to_string(i));
  };
  if (!is_block_dtype(t.dtype)) {
    for (int64_t i = 0; i < t.numel(); ++i) check(t.at(i), i);
    return;
  }
  // Row by row: at() would dequantize a whole block per element.
  const int64_t row_len = t.shape.back(), rows = t.numel() / row_len;
  const size_t row_bytes = dtype_row_bytes(t.dtype, row_len);
  std::vector<float> row(static_cast<size_t>(row_len));
  for (int64_t r = 0; r < rows; ++r) {
    ggml::dequantize_row(dtype_ggml_type(t.dtype), static_cast<const uint8_t*>(t.data) + r * row_bytes, row.data(), row_len);
    for (int64_t i = 0; i < row_len; ++i) check(row[i], r * row_len + i);
  }
}

void check_finite(const Model& m) {
  for_each_plain_tensor(m, check_tensor_finite);
  for_each_linear(m, [](const Linear& l) {
    if (!l.quant) {
      check_tensor_finite(l.dense);
      return;
    }
    for (size_t i = 0; i < l.quant->scales.size(); ++i)
      if (!std::isfinite(half_to_float(l.quant->scales[i])))
        fail(l.name + ".scales", "non-finite scale at element " + std::to_string(i));
    if (l.kept)
      for (size_t i = 0; i < l.kept->values.size(); ++i)
        if (!std::isfinite(half_to_float(l.kept->values[i])))
          fail(l.name + ".kept", "non-finite kept FP16 value at element " + std::to_string(i));
  });
}

}  // namespace qb
