// llama.cpp's reference quantizers, following ggml/src/ggml-quants.c at b4747 (commit c392e509).
// Byte identity with llama-quantize depends on doing the same float operations in the same order:
// expressions below keep upstream's association (a*b*c is (a*b)*c, ints widened where upstream
// widens them) and this file is built with -ffp-contract=off (src/layouts/CMakeLists.txt).
#include "layouts/ggml_quants.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "common/half.h"

namespace qb::ggml {
namespace {

// ggml's GROUP_MAX_EPS: a group whose largest |x| is below it is all zeros.
constexpr float kGroupMaxEps = 1e-15f;

// The value of largest magnitude in x[0..n), with its sign; the first one on ties, as upstream's
// strict comparison keeps it.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, int n, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// Round to nearest (ties to even) for |fval| <= 2^22, as ggml does it: adding 1.5 * 2^23 leaves
// the rounded integer in the low mantissa bits.
inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int32_t i;
  std::memcpy(&i, &val, sizeof(i));
  return (i & 0x007fffff) - 0x00400000;
}

inline uint16_t to_half(float f) { return float_to_half(f); }
inline float from_half(uint16_t h) { return half_to_float(h); }

// Symmetric levels L in [0, 2 nmax) for n values with a scale search (ggml's make_qx_quants):
// starts from the scale that maps the largest |x| to -nmax, then tries 18 nearby scales and
// keeps the one with the best weighted least-squares fit. rmse_type 1 weighs by x^2 (the only
// use without an importance matrix: q6_K). Returns the scale.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      L[i] = nmax + std::max(-nmax, std::min(nmax - 1, l));
    }
    return 1 / iscale;
  }
  auto weight = [rmse_type](float v) -> float {
    return rmse_type == 1 ? v * v : rmse_type == 2 ? 1 : rmse_type == 3 ? std::fabs(v) : std::sqrt(std::fabs(v));
  };
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = l + nmax;
    float w = weight(x[i]);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      float w = weight(x[i]);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        L[i] = nmax + std::max(-nmax, std::min(nmax - 1, l));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// q3_K's sub-block levels (ggml's make_q3_quants with do_rmse): round with the scale that maps
// the largest |x| to -nmax, then up to 5 passes that move single levels while the x^2-weighted
// fit improves. L in [0, 2 nmax). Returns the scale.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  const float max = signed_absmax(x, n);
  if (std::fabs(max) < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0;
  float suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = l;
    float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = new_l;
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] += nmax;
  return sumlx / suml2;
}

// Affine levels L in [0, nmax] with x ~ scale * L - the_min (ggml's make_qkx2_quants): starts
// from the min/max range, then tries nstep + 1 stretched ranges, each refit by weighted least
// squares for scale and min, keeping the one with the smallest weighted error (|e| when use_mad,
// else e^2). The min is never positive. Returns the scale; *the_min is the (non-negative) offset.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0];
  float max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_mad = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * (x[i] - min));
    L[i] = std::max(0, std::min(nmax, l));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    float w = weights[i];
    best_mad += w * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = l;
      float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float mad = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        float w = weights[i];
        mad += w * diff;
      }
      if (mad < best_mad) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_mad = mad;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Packs sub-block j's 6-bit scale ls and min lm into q4_K / q5_K's 12 scale bytes (the layout
// get_scale_min_k4 reads): j < 4 in the low 6 bits of bytes j and j + 4; j >= 4 as nibbles in
// byte j + 4, their top 2 bits in the high bits of bytes j - 4 and j.
void pack_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t* scales) {
  if (j < 4) {
    scales[j] = ls;
    scales[j + 4] = lm;
  } else {
    scales[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
    scales[j - 4] |= ((ls >> 4) << 6);
    scales[j - 0] |= ((lm >> 4) << 6);
  }
}

// q4_K and q5_K share everything but the level count and search range: 8 sub-blocks of 32
// fitted by make_qkx2_quants with weights av_x + |x|, their scales and mins quantized to 6 bits
// against the block's largest, then every value requantized with the stored (rounded) scales.
// L receives the final levels in [0, nmax].
template <typename Block>
void quantize_k_block_affine(const float* x, Block& y, int nmax, float rmin, int nstep, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32];
  float mins[QK_K / 32];
  float scales[QK_K / 32];
  float max_scale = 0;  // the min is subtracted, so scales are never negative
  float max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t ls = nearest_int(inv_scale * scales[j]);
    uint8_t lm = nearest_int(inv_min * mins[j]);
    ls = std::min<uint8_t>(63, ls);
    lm = std::min<uint8_t>(63, lm);
    pack_scale_min_k4(j, ls, lm, y.scales);
  }
  y.d = to_half(max_scale / 63.f);
  y.dmin = to_half(max_min / 63.f);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, y.scales, &sc, &m);
    const float d = from_half(y.d) * sc;
    if (!d) continue;
    const float dm = from_half(y.dmin) * m;
    for (int ii = 0; ii < 32; ++ii) {
      int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = std::max(0, std::min(nmax, l));
    }
  }
}

// Packs 256 2-bit levels into 64 bytes as q2_K and q3_K store them: byte l of each 32-byte
// quarter-group holds the levels l, l + 32, l + 64, l + 96 of its 128 values, low bits first.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK_K; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6);
    }
  }
}

}  // namespace

// ---- activation side -------------------------------------------------------------------------

void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k) {
  const int64_t nb = k / QK8_0;
  for (int64_t i = 0; i < nb; i++) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; j++) amax = std::max(amax, std::fabs(x[i * QK8_0 + j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    for (int j = 0; j < QK8_0; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[i * QK8_0 + j] * id));
  }
}

void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t k) {
  const int64_t nb = k / QK8_1;
  for (int64_t i = 0; i < nb; i++) {
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; j++) amax = std::max(amax, std::fabs(x[i * QK8_1 + j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::round(x[i * QK8_1 + j] * id));
      sum += y[i].qs[j];
    }
    y[i].s = to_half(sum * d);
  }
}

void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    const float max = signed_absmax(x, QK_K);
    if (!max) {
      y[i].d = 0;
      std::memset(y[i].qs, 0, QK_K);
      std::memset(y[i].bsums, 0, sizeof(y[i].bsums));
      continue;
    }
    // -127 (not -128): upstream keeps q in [-127, 127] so every level has a negation.
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

// ---- legacy weight quants (blocks of 32) -----------------------------------------------------

void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k) {
  constexpr int qk = QK4_0;
  const int64_t nb = k / qk;
  for (int64_t i = 0; i < nb; i++) {
    const float max = signed_absmax(x + i * qk, qk);  // maps to level 0 exactly
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    for (int j = 0; j < qk / 2; ++j) {
      const float x0 = x[i * qk + j] * id;
      const float x1 = x[i * qk + qk / 2 + j] * id;
      const uint8_t xi0 = std::min<int>(15, static_cast<int8_t>(x0 + 8.5f));
      const uint8_t xi1 = std::min<int>(15, static_cast<int8_t>(x1 + 8.5f));
      y[i].qs[j] = xi0 | (xi1 << 4);
    }
  }
}

void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t k) {
  constexpr int qk = QK4_1;
  const int64_t nb = k / qk;
  for (int64_t i = 0; i < nb; i++) {
    float min, max;
    min_max(x + i * qk, qk, min, max);
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    y[i].m = to_half(min);
    for (int j = 0; j < qk / 2; ++j) {
      const float x0 = (x[i * qk + j] - min) * id;
      const float x1 = (x[i * qk + qk / 2 + j] - min) * id;
      const uint8_t xi0 = std::min<int>(15, static_cast<int8_t>(x0 + 0.5f));
      const uint8_t xi1 = std::min<int>(15, static_cast<int8_t>(x1 + 0.5f));
      y[i].qs[j] = xi0 | (xi1 << 4);
    }
  }
}

void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t k) {
  constexpr int qk = QK5_0;
  const int64_t nb = k / qk;
  for (int64_t i = 0; i < nb; i++) {
    const float max = signed_absmax(x + i * qk, qk);
    const float d = max / -16;
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    uint32_t qh = 0;
    for (int j = 0; j < qk / 2; ++j) {
      const float x0 = x[i * qk + j] * id;
      const float x1 = x[i * qk + qk / 2 + j] * id;
      const uint8_t xi0 = std::min<int>(31, static_cast<int8_t>(x0 + 16.5f));
      const uint8_t xi1 = std::min<int>(31, static_cast<int8_t>(x1 + 16.5f));
      y[i].qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
      qh |= ((xi0 & 0x10u) >> 4) << j;
      qh |= ((xi1 & 0x10u) >> 4) << (j + qk / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof(qh));
  }
}

void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t k) {
  constexpr int qk = QK5_1;
  const int64_t nb = k / qk;
  for (int64_t i = 0; i < nb; i++) {
    float min, max;
    min_max(x + i * qk, qk, min, max);
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    y[i].d = to_half(d);
    y[i].m = to_half(min);
    uint32_t qh = 0;
    for (int j = 0; j < qk / 2; ++j) {
      const float x0 = (x[i * qk + j] - min) * id;
      const float x1 = (x[i * qk + qk / 2 + j] - min) * id;
      const uint8_t xi0 = static_cast<uint8_t>(x0 + 0.5f);
      const uint8_t xi1 = static_cast<uint8_t>(x1 + 0.5f);
      y[i].qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
      qh |= ((xi0 & 0x10u) >> 4) << j;
      qh |= ((xi1 & 0x10u) >> 4) << (j + qk / 2);
    }
    std::memcpy(y[i].qh, &qh, sizeof(qh));
  }
}

// ---- k-quants (super-blocks of 256) ----------------------------------------------------------

void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  uint8_t L[QK_K];
  uint8_t Laux[16];
  float weights[16];
  float mins[QK_K / 16];
  float scales[QK_K / 16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float max_scale = 0;
    float max_min = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      float iscale = q4scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      y[i].d = to_half(max_scale / q4scale);
    } else {
      for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = 0;
      y[i].d = to_half(0.f);
    }
    if (max_min > 0) {
      float iscale = q4scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
      y[i].dmin = to_half(max_min / q4scale);
    } else {
      y[i].dmin = to_half(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = from_half(y[i].d) * (y[i].scales[j] & 0xF);
      if (!d) continue;
      const float dm = from_half(y[i].dmin) * (y[i].scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = std::max(0, std::min(3, l));
      }
    }
    pack_2bit(L, y[i].qs);
  }
}

void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float max_scale = 0;  // the signed scale of largest magnitude
    float amax = 0;
    for (int j = 0; j < QK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    // 6-bit scales, offset by 32: low nibbles in bytes 0..7 (j and j - 8 share a byte), the two
    // high bits of scale j in byte 8 + j % 4 at bit 2 * (j / 4).
    std::memset(y[i].scales, 0, 12);
    if (max_scale) {
      float iscale = -32.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        l = static_cast<int8_t>(std::max<int>(-32, std::min<int>(31, l)) + 32);
        if (j < 8) {
          y[i].scales[j] = l & 0xF;
        } else {
          y[i].scales[j - 8] |= ((l & 0xF) << 4);
        }
        l >>= 4;
        y[i].scales[j % 4 + 8] |= (l << (2 * (j / 4)));
      }
      y[i].d = to_half(1 / iscale);
    } else {
      y[i].d = to_half(0.f);
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      const int sc = get_scale_q3_K(j, y[i].scales) - 32;
      float d = from_half(y[i].d) * sc;
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::max(-4, std::min(3, l)) + 4);
      }
    }
    // The third bit of value j goes to hmask[j % 32], bit j / 32.
    std::memset(y[i].hmask, 0, QK_K / 8);
    uint8_t low[QK_K];
    for (int j = 0; j < QK_K; ++j) {
      uint8_t l = static_cast<uint8_t>(L[j]);
      if (l > 3) {
        y[i].hmask[j % (QK_K / 8)] |= static_cast<uint8_t>(1 << (j / (QK_K / 8)));
        l -= 4;
      }
      low[j] = l;
    }
    pack_2bit(low, y[i].qs);
  }
}

void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    quantize_k_block_affine(x, y[i], 15, -1.f, 20, L);
    // Byte l of each 32-byte group: value l of a 64-value chunk (low nibble), value l + 32 (high).
    uint8_t* q = y[i].qs;
    for (int j = 0; j < QK_K; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = L[j + l] | (L[j + l + 32] << 4);
    }
  }
}

void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    quantize_k_block_affine(x, y[i], 31, -0.5f, 15, L);
    // As q4_K for the low 4 bits; the fifth bit of values n + j and n + j + 32 of 64-value chunk
    // n / 64 goes to qh[j], bits 2 (n / 64) and 2 (n / 64) + 1.
    uint8_t* qh = y[i].qh;
    uint8_t* ql = y[i].qs;
    std::memset(qh, 0, QK_K / 8);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j];
        if (l1 > 15) {
          l1 -= 16;
          qh[j] |= m1;
        }
        int l2 = L[n + j + 32];
        if (l2 > 15) {
          l2 -= 16;
          qh[j] |= m2;
        }
        ql[j] = l1 | (l2 << 4);
      }
      m1 <<= 2;
      m2 <<= 2;
    }
  }
}

void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t k) {
  const int64_t nb = k / QK_K;
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float max_scale = 0;
    float max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1);
      scales[ib] = scale;
      const float abs_scale = std::fabs(scale);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[i], 0, sizeof(block_q6_K));
      continue;
    }
    float iscale = -128.f / max_scale;
    y[i].d = to_half(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    }
    for (int j = 0; j < QK_K / 16; ++j) {
      float d = from_half(y[i].d) * y[i].scales[j];
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = static_cast<int8_t>(std::max(-32, std::min(31, l)) + 32);
      }
    }
    // Per 128-value half: ql[l] holds the low nibbles of values l and l + 64, ql[l + 32] those of
    // l + 32 and l + 96; qh[l] their top 2 bits, in that order (l, l+32, l+64, l+96).
    uint8_t* ql = y[i].ql;
    uint8_t* qh = y[i].qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const uint8_t q1 = L[j + l + 0] & 0xF;
        const uint8_t q2 = L[j + l + 32] & 0xF;
        const uint8_t q3 = L[j + l + 64] & 0xF;
        const uint8_t q4 = L[j + l + 96] & 0xF;
        ql[l + 0] = q1 | (q3 << 4);
        ql[l + 32] = q2 | (q4 << 4);
        qh[l] = (L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6);
      }
    }
  }
}

// ---- whole rows --------------------------------------------------------------------------------

bool has_quantizer(Type type) {
  switch (type) {
    case Type::F32: case Type::F16: case Type::Q4_0: case Type::Q4_1: case Type::Q5_0: case Type::Q5_1:
    case Type::Q8_0: case Type::Q2_K: case Type::Q3_K: case Type::Q4_K: case Type::Q5_K: case Type::Q6_K:
      return true;
    default:
      return false;
  }
}

void quantize_rows(Type type, const float* src, void* dst, int64_t n_rows, int64_t row_len) {
  if (!has_quantizer(type)) fail("ggml quantize", std::string("no quantizer for type ") + type_name(type));
  const int64_t qk = block_elems(type);
  if (row_len <= 0 || row_len % qk != 0) {
    fail("ggml quantize", std::string(type_name(type)) + ": row length " + std::to_string(row_len) +
                              " is not a multiple of the block size " + std::to_string(qk));
  }
  const int64_t k = n_rows * row_len;
  switch (type) {
    case Type::F32: std::memcpy(dst, src, static_cast<size_t>(k) * sizeof(float)); break;
    case Type::F16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < k; ++i) out[i] = to_half(src[i]);
      break;
    }
    case Type::Q4_0: quantize_row_q4_0_ref(src, static_cast<block_q4_0*>(dst), k); break;
    case Type::Q4_1: quantize_row_q4_1_ref(src, static_cast<block_q4_1*>(dst), k); break;
    case Type::Q5_0: quantize_row_q5_0_ref(src, static_cast<block_q5_0*>(dst), k); break;
    case Type::Q5_1: quantize_row_q5_1_ref(src, static_cast<block_q5_1*>(dst), k); break;
    case Type::Q8_0: quantize_row_q8_0_ref(src, static_cast<block_q8_0*>(dst), k); break;
    case Type::Q2_K: quantize_row_q2_K_ref(src, static_cast<block_q2_K*>(dst), k); break;
    case Type::Q3_K: quantize_row_q3_K_ref(src, static_cast<block_q3_K*>(dst), k); break;
    case Type::Q4_K: quantize_row_q4_K_ref(src, static_cast<block_q4_K*>(dst), k); break;
    case Type::Q5_K: quantize_row_q5_K_ref(src, static_cast<block_q5_K*>(dst), k); break;
    case Type::Q6_K: quantize_row_q6_K_ref(src, static_cast<block_q6_K*>(dst), k); break;
    default: break;
  }
}

}  // namespace qb::ggml
