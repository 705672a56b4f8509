#include "model/cpu_forward.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/error.h"
#include "common/interrupt.h"
#include "common/half.h"
#include "layouts/ggml_quants.h"
#include "model/block_linears.h"

namespace qb {

const char* activations_name(Activations a) { return a == Activations::Exact ? "exact" : "llama.cpp"; }

ActivationFormat llama_cpp_activation_format(DType weight) {
  switch (weight) {
    case DType::F32: return ActivationFormat::Exact;
    case DType::F16: return ActivationFormat::F16;
    case DType::BF16: return ActivationFormat::BF16;
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0: return ActivationFormat::Q8_0;
    case DType::Q4_1:
    case DType::Q5_1: return ActivationFormat::Q8_1;
    case DType::Q2_K:
    case DType::Q3_K:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K: return ActivationFormat::Q8_K;
  }
  fail("activations", "no llama.cpp activation format for this dtype");
}

// ggml's GGML_FP32_TO_BF16: round to nearest even, NaN kept quiet.
static float round_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u & 0x7fffffff) > 0x7f800000 ? (u | 0x00400000) & 0xffff0000u : (u + (0x7fff + ((u >> 16) & 1))) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// One row quantized to blocks by `quantize` and widened back: value j of a block = d * qs[j].
template <class Block>
static void round_row_q8(float* x, int k, void (*quantize)(const float*, Block*, int64_t)) {
  constexpr int n = sizeof(Block::qs);
  std::vector<Block> blocks(k / n);
  quantize(x, blocks.data(), k);
  for (int b = 0; b < k / n; ++b) {
    const Block& blk = blocks[b];
    float d;
    if constexpr (std::is_same_v<decltype(blk.d), float>)
      d = blk.d;  // q8_K
    else
      d = half_to_float(blk.d);
    for (int j = 0; j < n; ++j) x[b * n + j] = d * blk.qs[j];
  }
}

void round_activations(float* x, int rows, int k, ActivationFormat format) {
  if (format == ActivationFormat::Exact) return;
  const int block = format == ActivationFormat::Q8_K                                        ? ggml::QK_K
                    : format == ActivationFormat::F16 || format == ActivationFormat::BF16 ? 1
                                                                                          : ggml::QK8_0;
  if (k % block)
    fail("activations", "a row of " + std::to_string(k) + " values is not a whole number of " + std::to_string(block) +
                            "-value blocks");
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    float* row = x + size_t(r) * k;
    switch (format) {
      case ActivationFormat::F16: for (int i = 0; i < k; ++i) row[i] = round_to_half(row[i]); break;
      case ActivationFormat::BF16: for (int i = 0; i < k; ++i) row[i] = round_to_bf16(row[i]); break;
      case ActivationFormat::Q8_0: round_row_q8<ggml::block_q8_0>(row, k, ggml::quantize_row_q8_0_ref); break;
      case ActivationFormat::Q8_1: round_row_q8<ggml::block_q8_1>(row, k, ggml::quantize_row_q8_1_ref); break;
      case ActivationFormat::Q8_K: round_row_q8<ggml::block_q8_K>(row, k, ggml::quantize_row_q8_K_ref); break;
      case ActivationFormat::Exact: break;
    }
  }
}

// ---- Kernels: C = alpha · A · B on B in panels of 32 columns, and exp over float rows -------------
//
// B [k, n] is given as panels of kPanel columns: panel p holds columns p*32 .. p*32+31, row kk of
// it at B + p*panel_stride + kk*ldb (a weight tile is packed so, ldb = 32, zero past column n).
// On CPUs with AVX-512 (this project's machines) a register-blocked micro-kernel (kMr rows of A x
// 32 columns, 2*kMr accumulators) runs it; elsewhere OpenBLAS does, one panel per call. The build
// has no -march flags: the AVX-512 code is compiled for it by target attributes and chosen at run
// time. Sums over k run in order within a block of kKc, blocks added in order: float rounding
// differs from OpenBLAS's order only.
constexpr int kPanel = 32;
constexpr int kMr = 12;
constexpr int kKc = 256;

#if defined(__x86_64__)
static bool have_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

template <int MR>
__attribute__((target("avx512f"))) static void micro_kernel(int k, const float* a, int lda, const float* b, int ldb,
                                                            __mmask16 mask0, __mmask16 mask1, float alpha,
                                                            bool accumulate, float* c, int ldc) {
  __m512 acc0[MR], acc1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int kk = 0; kk < k; ++kk) {
    const __m512 b0 = _mm512_maskz_loadu_ps(mask0, b + size_t(kk) * ldb);
    const __m512 b1 = _mm512_maskz_loadu_ps(mask1, b + size_t(kk) * ldb + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[size_t(i) * lda + kk]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* ci = c + size_t(i) * ldc;
    __m512 r0 = alpha == 1.0f ? acc0[i] : _mm512_mul_ps(va, acc0[i]);
    __m512 r1 = alpha == 1.0f ? acc1[i] : _mm512_mul_ps(va, acc1[i]);
    if (accumulate) {
      r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, ci), r0);
      r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, mask0, r0);
    _mm512_mask_storeu_ps(ci + 16, mask1, r1);
  }
}

template <int... MR>
using MicroKernels = std::integer_sequence<int, MR...>;
using KernelFn = void (*)(int, const float*, int, const float*, int, __mmask16, __mmask16, float, bool, float*, int);
template <int... MR>
static constexpr std::array<KernelFn, sizeof...(MR)> kernel_table(std::integer_sequence<int, MR...>) {
  return {&micro_kernel<MR + 1>...};
}
static constexpr auto kKernels = kernel_table(std::make_integer_sequence<int, kMr>());

__attribute__((target("avx512f"))) static void gemm_panels_avx512(int m, int n, int k, float alpha, const float* a,
                                                                   int lda, const float* b, size_t panel_stride,
                                                                   int ldb, float* c, int ldc) {
  for (int k0 = 0; k0 < k; k0 += kKc) {
    const int kc = std::min(kKc, k - k0);
    for (int p = 0; p * kPanel < n; ++p) {
      const int cols = std::min(kPanel, n - p * kPanel);
      const __mmask16 mask0 = cols >= 16 ? 0xffff : __mmask16((1u << cols) - 1);
      const __mmask16 mask1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : __mmask16((1u << (cols - 16)) - 1);
      const float* bp = b + p * panel_stride + size_t(k0) * ldb;
      for (int i = 0; i < m; i += kMr) {
        const int rows = std::min(kMr, m - i);
        kKernels[rows - 1](kc, a + size_t(i) * lda + k0, lda, bp, ldb, mask0, mask1, alpha, k0 > 0,
                           c + size_t(i) * ldc + p * kPanel, ldc);
      }
    }
  }
}
#endif

// C [m, n] (row stride ldc) = alpha · A [m, k] (row stride lda) · B, B in panels as above.
static void gemm_panels(int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                        size_t panel_stride, int ldb, float* c, int ldc) {
  if (m == 0 || n == 0) return;
#if defined(__x86_64__)
  if (have_avx512()) return gemm_panels_avx512(m, n, k, alpha, a, lda, b, panel_stride, ldb, c, ldc);
#endif
  for (int p = 0; p * kPanel < n; ++p)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, std::min(kPanel, n - p * kPanel), k, alpha, a, lda,
                b + p * panel_stride, ldb, 0.0f, c + p * kPanel, ldc);
}

// Panels (ldb 32, panel stride k*32) of B = W^T for W [n, k] with rows `ld` apart: the layout of
// a weight tile, and of the keys of one head.
static void pack_transposed(const float* w, int ld, int n, int k, float* panels) {
  for (int p = 0; p * kPanel < n; ++p) {
    float* out = panels + size_t(p) * k * kPanel;
    const int cols = std::min(kPanel, n - p * kPanel);
    for (int j = 0; j < cols; ++j) {
      const float* row = w + size_t(p * kPanel + j) * ld;
      for (int kk = 0; kk < k; ++kk) out[size_t(kk) * kPanel + j] = row[kk];
    }
    for (int j = cols; j < kPanel; ++j)
      for (int kk = 0; kk < k; ++kk) out[size_t(kk) * kPanel + j] = 0.0f;
  }
}

// Panels (ldb 32, panel stride k*32) of B [k, n] with rows `ld` apart: the values of one head.
static void pack_rows(const float* b, int ld, int k, int n, float* panels) {
  for (int p = 0; p * kPanel < n; ++p) {
    float* out = panels + size_t(p) * k * kPanel;
    const int cols = std::min(kPanel, n - p * kPanel);
    for (int kk = 0; kk < k; ++kk) {
      std::memcpy(out + size_t(kk) * kPanel, b + size_t(kk) * ld + p * kPanel, sizeof(float) * cols);
      std::fill(out + size_t(kk) * kPanel + cols, out + size_t(kk + 1) * kPanel, 0.0f);
    }
  }
}

#if defined(__x86_64__)
// expf for 16 lanes: Cephes' range reduction (x = n ln2 + r, ln2 in two parts) and degree-6
// polynomial, within about 2 ulp of std::exp; inputs clamped to +-88.376 (beyond, expf is 0 or
// Inf in float anyway, and no caller's input gets there). The masked forms with every lane set
// stand for the plain ones, whose GCC 12 headers warn of an uninitialized operand.
__attribute__((target("avx512f"))) static __m512 exp16(__m512 x) {
  constexpr __mmask16 all = 0xffff;
  x = _mm512_mask_max_ps(x, all, x, _mm512_set1_ps(-88.3762626647949f));
  x = _mm512_mask_min_ps(x, all, x, _mm512_set1_ps(88.3762626647949f));
  const __m512 n = _mm512_mask_roundscale_ps(x, all, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_add_ps(_mm512_fmadd_ps(y, _mm512_mul_ps(x, x), x), _mm512_set1_ps(1.0f));
  return _mm512_mask_scalef_ps(y, all, y, n);
}

__attribute__((target("avx512f"))) static float exp_shifted_sum_avx512(float* x, int n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? 0xffff : __mmask16((1u << (n - i)) - 1);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), s));
    _mm512_mask_storeu_ps(x + i, mask, e);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0.0f;
  for (float lane : lanes) total += lane;
  return total;
}

__attribute__((target("avx512f"))) static void silu_mul_avx512(float* gate, const float* up, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? 0xffff : __mmask16((1u << (n - i)) - 1);
    const __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_mask_storeu_ps(gate + i, mask,
                          _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(mask, up + i)));
  }
}
#endif

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void softmax_prefix_avx512(float* row, int n, int len) {
  __m512 max16 = _mm512_set1_ps(-INFINITY);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? 0xffff : __mmask16((1u << (n - i)) - 1);
    max16 = _mm512_mask_max_ps(max16, mask, max16, _mm512_maskz_loadu_ps(mask, row + i));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, max16);
  const float inv = 1.0f / exp_shifted_sum_avx512(row, n, *std::max_element(lanes, lanes + 16));
  const __m512 inv16 = _mm512_set1_ps(inv);
  for (int i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? 0xffff : __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(row + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + i), inv16));
  }
  std::fill(row + n, row + len, 0.0f);
}
#endif

// row[0, n) <- softmax(row[0, n)), row[n, len) <- 0: a causal attention row, query n-1 of len keys.
static void softmax_prefix(float* row, int n, int len) {
#if defined(__x86_64__)
  if (have_avx512()) return softmax_prefix_avx512(row, n, len);
#endif
  const float max_score = *std::max_element(row, row + n);
  float sum = 0.0f;
  for (int i = 0; i < n; ++i) sum += (row[i] = std::exp(row[i] - max_score));
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) row[i] *= inv;
  std::fill(row + n, row + len, 0.0f);
}

// gate[i] <- silu(gate[i]) * up[i] for i < n.
static void silu_mul(float* gate, const float* up, size_t n) {
#if defined(__x86_64__)
  if (have_avx512()) return silu_mul_avx512(gate, up, n);
#endif
  for (size_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// ---- Run state and weight sources ------------------------------------------------------------------

struct RunState {
  std::vector<float> x, xn, delta;  // [rows, hidden_size]: residual stream, normed input, block output
  std::vector<float> q, k, v, att;  // [rows, q_dim or kv_dim]; att: attention output (o_proj input)
  std::vector<float> gate, up;      // [rows, intermediate_size]
  std::vector<float> rounded;       // a linear's input rounded to its activation format
  std::vector<float> rope_cos, rope_sin;  // [positions, head_dim/2]
  int rope_positions = 0;
  struct Thread {
    std::vector<float> tile, panels;  // a weight tile widened, then packed
    std::vector<float> keys, values;  // one head's K^T and V in panels
    std::vector<float> scores;        // [query block, keys]
  };
  std::vector<Thread> threads;
  Thread& thread() { return threads[omp_get_thread_num()]; }
  // Before a parallel region: one scratch per thread of it.
  void ensure_threads() {
    if (threads.size() < size_t(omp_get_max_threads())) threads.resize(omp_get_max_threads());
  }
};

// v's storage with at least n floats; grows, never shrinks, so later windows allocate nothing.
static float* grown(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// A linear's weight W [n, k], widened a tile of rows at a time: from FP32 rows already widened
// (CpuLayer), a dense tensor (F32/F16/BF16 or GGUF blocks), or quantized codes with kept columns.
struct LinearSource {
  const float* widened = nullptr;
  const Tensor* dense = nullptr;
  const QuantizedWeight* quant = nullptr;
  const KeptColumns* kept = nullptr;
  int n = 0, k = 0;

  // Rows [begin, end) of W into out [end - begin, k].
  void rows(int begin, int end, float* out) const {
    if (widened) {
      std::memcpy(out, widened + size_t(begin) * k, sizeof(float) * size_t(end - begin) * k);
    } else if (dense) {
      dense->rows_to_float(begin, end, out);
    } else {
      quant->dequantize_rows(begin, end, out);
      if (!kept) return;
      const size_t n_kept = kept->cols.size();
      for (int o = begin; o < end; ++o)
        for (size_t j = 0; j < n_kept; ++j)
          out[size_t(o - begin) * k + kept->cols[j]] = half_to_float(kept->values[o * n_kept + j]);
    }
  }
};

static LinearSource source_of(const Linear& linear) {
  LinearSource s;
  s.n = linear.out_features();
  s.k = linear.in_features();
  if (linear.quant) {
    s.quant = linear.quant.get();
    s.kept = linear.kept.get();
  } else {
    s.dense = &linear.dense;
  }
  return s;
}

// One block as the forward pass sees it: norms, biases and activation formats from `small`, the
// linears from `stored` (weights as stored) or, when it is null, from small's widened vectors.
struct BlockWeights {
  const CpuLayer& small;
  const LayerWeights* stored;

  LinearSource linear(const LlamaConfig& c, LinearIndex i) const {
    if (stored) return source_of(*block_linears(*stored)[i]);
    LinearSource s;
    s.widened = block_linears(small)[i]->data();
    std::tie(s.n, s.k) = linear_dims(c)[i];
    return s;
  }
};

// Output rows of W per tile: 2 panels; a tile of a 7B-sized down_proj (k = 11008) widens to 2.8 MB.
constexpr int kTileRows = 2 * kPanel;

// y [m, n] = round(x [m, k]) · W^T: each thread widens a tile of W's rows into its scratch, packs
// it into panels and multiplies all m rows by it. x is rounded in the state, never in place.
static void linear_tiles(RunState& st, float* y, const float* x, int m, const LinearSource& w, ActivationFormat format) {
  const int n = w.n, k = w.k;
  if (format != ActivationFormat::Exact) {
    float* rounded = grown(st.rounded, size_t(m) * k);
    std::memcpy(rounded, x, sizeof(float) * size_t(m) * k);
    round_activations(rounded, m, k, format);
    x = rounded;
  }
  st.ensure_threads();
  const int tiles = (n + kTileRows - 1) / kTileRows;
#pragma omp parallel for schedule(dynamic)
  for (int t = 0; t < tiles; ++t) {
    RunState::Thread& s = st.thread();
    const int begin = t * kTileRows, rows = std::min(kTileRows, n - begin);
    float* tile = grown(s.tile, size_t(kTileRows) * k);
    float* panels = grown(s.panels, size_t(kTileRows) * k);
    w.rows(begin, begin + rows, tile);
    pack_transposed(tile, k, rows, k, panels);
    gemm_panels(m, rows, k, 1.0f, x, k, panels, size_t(k) * kPanel, kPanel, y + begin, n);
  }
}

// ---- The block ---------------------------------------------------------------------------------------

// cos/sin of every (position, frequency) pair up to `positions`, as apply_rope rotates by them.
static void ensure_rope_table(const LlamaConfig& c, RunState& st, int positions) {
  if (positions <= st.rope_positions) return;
  const int half = c.head_dim() / 2;
  const std::vector<double> inv_freq = rope_inv_freq(c);
  float* cs = grown(st.rope_cos, size_t(positions) * half);
  float* sn = grown(st.rope_sin, size_t(positions) * half);
  for (int pos = 0; pos < positions; ++pos)
    for (int i = 0; i < half; ++i) {
      const double angle = pos * inv_freq[i];
      cs[size_t(pos) * half + i] = static_cast<float>(std::cos(angle));
      sn[size_t(pos) * half + i] = static_cast<float>(std::sin(angle));
    }
  st.rope_positions = positions;
}

// Rotates each head of x [rows, n_heads*head_dim] by its position (row % seq_len).
static void apply_rope(const LlamaConfig& c, const RunState& st, float* x, int rows, int seq_len, int n_heads) {
  const int hd = c.head_dim(), half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const float* cs = &st.rope_cos[size_t(r % seq_len) * half];
    const float* sn = &st.rope_sin[size_t(r % seq_len) * half];
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<size_t>(r) * n_heads * hd + static_cast<size_t>(h) * hd;
      for (int i = 0; i < half; ++i) {
        float& a = c.rope_interleaved ? v[2 * i] : v[i];
        float& b = c.rope_interleaved ? v[2 * i + 1] : v[i + half];
        const float a0 = a, b0 = b;
        a = a0 * cs[i] - b0 * sn[i];
        b = a0 * sn[i] + b0 * cs[i];
      }
    }
  }
}

// Queries per block of causal attention: a block's scores cover keys up to its last query only.
constexpr int kQueryBlock = 64;

// Attention of a block: out [rows, hidden_size] = o_proj(attention(xn)); st.att keeps o_proj's input.
static void attention_into(const LlamaConfig& c, const BlockWeights& b, RunState& st, const float* xn, int n_seq,
                           int seq_len, float* out) {
  const int rows = n_seq * seq_len, hd = c.head_dim();
  const int q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, group = c.n_heads / c.n_kv_heads;
  float* q = grown(st.q, size_t(rows) * q_dim);
  float* k = grown(st.k, size_t(rows) * kv_dim);
  float* v = grown(st.v, size_t(rows) * kv_dim);
  float* att = grown(st.att, size_t(rows) * q_dim);
  const CpuLayer& l = b.small;
  linear_tiles(st, q, xn, rows, b.linear(c, kQ), l.act_q);
  linear_tiles(st, k, xn, rows, b.linear(c, kK), l.act_k);
  linear_tiles(st, v, xn, rows, b.linear(c, kV), l.act_v);
  add_bias(q, l.bq, rows, q_dim);
  add_bias(k, l.bk, rows, kv_dim);
  add_bias(v, l.bv, rows, kv_dim);
  ensure_rope_table(c, st, seq_len);
  apply_rope(c, st, q, rows, seq_len, c.n_heads);
  apply_rope(c, st, k, rows, seq_len, c.n_kv_heads);
  if (l.f16_kv) {  // llama.cpp's F16 KV cache; Q meets F16 K as F16
    round_activations(q, rows, q_dim, ActivationFormat::F16);
    round_activations(k, rows, kv_dim, ActivationFormat::F16);
    round_activations(v, rows, kv_dim, ActivationFormat::F16);
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const int key_panels = (seq_len + kPanel - 1) / kPanel, head_panels = (hd + kPanel - 1) / kPanel;
  // One task per (sequence, query head): its K and V packed once, then per block of queries
  // S = Q K^T / sqrt(hd) over the keys up to the block's last query, the causal softmax row by row
  // (query t sees keys 0..t; the rest of its row is zero), and O = P V into the head's columns.
  st.ensure_threads();
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int s = 0; s < n_seq; ++s) {
    for (int h = 0; h < c.n_heads; ++h) {
      RunState::Thread& th = st.thread();
      const int kvh = h / group;
      const float* qh = q + size_t(s) * seq_len * q_dim + size_t(h) * hd;
      const float* kh = k + size_t(s) * seq_len * kv_dim + size_t(kvh) * hd;
      const float* vh = v + size_t(s) * seq_len * kv_dim + size_t(kvh) * hd;
      float* keys = grown(th.keys, size_t(key_panels) * kPanel * hd);
      float* values = grown(th.values, size_t(head_panels) * kPanel * seq_len);
      float* scores = grown(th.scores, size_t(kQueryBlock) * seq_len);
      pack_transposed(kh, kv_dim, seq_len, hd, keys);
      pack_rows(vh, kv_dim, seq_len, hd, values);
      for (int t0 = 0; t0 < seq_len; t0 += kQueryBlock) {
        const int t1 = std::min(seq_len, t0 + kQueryBlock), n_keys = t1;
        gemm_panels(t1 - t0, n_keys, hd, scale, qh + size_t(t0) * q_dim, q_dim, keys, size_t(hd) * kPanel, kPanel,
                    scores, n_keys);
        for (int t = t0; t < t1; ++t) {
          float* row = scores + size_t(t - t0) * n_keys;
          softmax_prefix(row, t + 1, n_keys);
          if (l.f16_kv)  // the probabilities meet F16 V as F16
            for (int u = 0; u <= t; ++u) row[u] = round_to_half(row[u]);
        }
        gemm_panels(t1 - t0, hd, n_keys, 1.0f, scores, n_keys, values, size_t(seq_len) * kPanel, kPanel,
                    att + (size_t(s) * seq_len + t0) * q_dim + size_t(h) * hd, q_dim);
      }
    }
  }
  linear_tiles(st, out, att, rows, b.linear(c, kO), l.act_o);
}

// SwiGLU MLP: out [rows, hidden_size]; st.gate keeps down_proj's input.
static void mlp_into(const LlamaConfig& c, const BlockWeights& b, RunState& st, const float* xn, int rows, float* out) {
  const size_t n = size_t(rows) * c.intermediate_size;
  float* gate = grown(st.gate, n);
  float* up = grown(st.up, n);
  linear_tiles(st, gate, xn, rows, b.linear(c, kGate), b.small.act_gate);
  linear_tiles(st, up, xn, rows, b.linear(c, kUp), b.small.act_up);
  const size_t chunk = 4096;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i += chunk) silu_mul(gate + i, up + i, std::min(chunk, n - i));
  linear_tiles(st, out, gate, rows, b.linear(c, kDown), b.small.act_down);
}

static void block_forward_into(const LlamaConfig& c, const BlockWeights& b, RunState& st, float* x, int n_seq,
                               int seq_len, BlockInputs* capture) {
  const int rows = n_seq * seq_len, dim = c.hidden_size;
  const size_t n = size_t(rows) * dim;
  // A block of a large model takes seconds on a few cores (AWQ calibration: more): Ctrl-C is
  // answered between its two halves.
  throw_if_interrupted();
  float* xn = grown(st.xn, n);
  float* delta = grown(st.delta, n);
  if (capture) capture->x.assign(x, x + n);
  rmsnorm(xn, x, b.small.attn_norm.data(), rows, dim, c.rms_norm_eps);
  if (capture) capture->attn_in.assign(xn, xn + n);
  attention_into(c, b, st, xn, n_seq, seq_len, delta);
  if (capture) capture->o_in.assign(st.att.data(), st.att.data() + size_t(rows) * c.n_heads * c.head_dim());
  for (size_t i = 0; i < n; ++i) x[i] += delta[i];
  throw_if_interrupted();
  rmsnorm(xn, x, b.small.mlp_norm.data(), rows, dim, c.rms_norm_eps);
  if (capture) capture->mlp_in.assign(xn, xn + n);
  mlp_into(c, b, st, xn, rows, delta);
  if (capture) capture->down_in.assign(st.gate.data(), st.gate.data() + size_t(rows) * c.intermediate_size);
  for (size_t i = 0; i < n; ++i) x[i] += delta[i];
}

// ---- Public pieces ---------------------------------------------------------------------------------

std::vector<float> widen_linear(const Linear& linear) {
  const LinearSource s = source_of(linear);
  std::vector<float> w(size_t(s.n) * s.k);
#pragma omp parallel for schedule(static)
  for (int o = 0; o < s.n; o += kTileRows) s.rows(o, std::min(s.n, o + kTileRows), &w[size_t(o) * s.k]);
  return w;
}

// A block's norms and biases widened (its linears left empty).
static CpuLayer widen_norms_and_biases(const LayerWeights& l) {
  CpuLayer out;
  out.attn_norm = l.attn_norm.to_float();
  out.mlp_norm = l.mlp_norm.to_float();
  for (const BlockLinear& linear : kBlockLinears) {
    const Tensor& bias = (l.*linear.weights).bias;
    if (bias.data) {
      if (!linear.widened_bias) fail(bias.name, "a bias on this linear is not supported (only q/k/v biases)");
      out.*linear.widened_bias = bias.to_float();
    }
  }
  return out;
}

CpuLayer widen_layer(const LayerWeights& l) {
  CpuLayer out = widen_norms_and_biases(l);
  for (const BlockLinear& linear : kBlockLinears) out.*linear.widened = widen_linear(l.*linear.weights);
  return out;
}

void use_llama_cpp_arithmetic(CpuLayer& w, const LayerWeights& l) {
  for (const BlockLinear& b : kBlockLinears) {
    const Linear& linear = l.*b.weights;
    w.*b.activation = linear.quant ? ActivationFormat::Exact : llama_cpp_activation_format(linear.dense.dtype);
  }
  w.f16_kv = true;
}

void rmsnorm(float* out, const float* x, const float* w, int rows, int dim, float eps) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    double ss = 0.0;
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
    float* o = out + static_cast<size_t>(r) * dim;
    for (int i = 0; i < dim; ++i) o[i] = xr[i] * inv * w[i];
  }
}

void linear(float* y, const float* x, const float* w, int m, int n, int k) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
}

void add_bias(float* y, const std::vector<float>& bias, int m, int n) {
  if (bias.empty()) return;
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < n; ++i) y[size_t(r) * n + i] += bias[i];
}

// The free functions of a widened block share the forward pass's code, each call with a run
// state of its own (its buffers handed to the caller where it asks for them).
void attention(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int n_seq, int seq_len, float* out,
               std::vector<float>* o_in) {
  RunState st;
  attention_into(c, BlockWeights{layer, nullptr}, st, xn, n_seq, seq_len, out);
  if (o_in) *o_in = std::move(st.att);
}

void mlp(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int rows, float* out,
         std::vector<float>* down_in) {
  RunState st;
  mlp_into(c, BlockWeights{layer, nullptr}, st, xn, rows, out);
  if (down_in) *down_in = std::move(st.gate);
}

void block_forward(const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                   BlockInputs* capture) {
  RunState st;
  block_forward_into(c, BlockWeights{layer, nullptr}, st, x, n_seq, seq_len, capture);
}

// ---- CpuModel --------------------------------------------------------------------------------------

CpuModel::CpuModel(const Model& model, Activations activations)
    : model_(model), norm_(model.norm.to_float()), state_(std::make_unique<RunState>()) {
  for (const auto& l : model.layers) {
    small_.push_back(widen_norms_and_biases(l));
    if (activations == Activations::LlamaCpp) use_llama_cpp_arithmetic(small_.back(), l);
  }
  if (activations == Activations::LlamaCpp)
    head_act_ = llama_cpp_activation_format(model.config.tie_word_embeddings ? model.embed_tokens.dtype
                                                                             : model.lm_head.dtype);
}

CpuModel::~CpuModel() = default;
CpuModel::CpuModel(CpuModel&&) noexcept = default;

void CpuModel::embed(const int* tokens, int n_tokens, float* x) const {
  const LlamaConfig& c = model_.config;
  for (int t = 0; t < n_tokens; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
      fail("embed", "token id " + std::to_string(tokens[t]) + " outside the vocabulary of " +
                        std::to_string(c.vocab_size));
    model_.embed_tokens.rows_to_float(tokens[t], tokens[t] + 1, x + size_t(t) * c.hidden_size);
  }
}

void CpuModel::head(const float* x, int rows, std::vector<float>& logits) const {
  const LlamaConfig& c = model_.config;
  RunState& st = *state_;
  float* xn = grown(st.xn, size_t(rows) * c.hidden_size);
  rmsnorm(xn, x, norm_.data(), rows, c.hidden_size, c.rms_norm_eps);
  logits.resize(size_t(rows) * c.vocab_size);
  LinearSource lm_head;
  lm_head.dense = c.tie_word_embeddings ? &model_.embed_tokens : &model_.lm_head;
  lm_head.n = c.vocab_size;
  lm_head.k = c.hidden_size;
  linear_tiles(st, logits.data(), xn, rows, lm_head, head_act_);
}

void CpuModel::forward(const int* tokens, int n_seq, int seq_len, std::vector<float>& logits) const {
  const LlamaConfig& c = model_.config;
  check_window_length(c, seq_len, "cpu forward");
  const int rows = n_seq * seq_len;
  float* x = grown(state_->x, size_t(rows) * c.hidden_size);
  embed(tokens, rows, x);
  for (size_t i = 0; i < small_.size(); ++i)
    block_forward_into(c, BlockWeights{small_[i], &model_.layers[i]}, *state_, x, n_seq, seq_len, nullptr);
  head(x, rows, logits);
}

}  // namespace qb
