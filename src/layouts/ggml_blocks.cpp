#include "layouts/ggml_blocks.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "common/half.h"

// Each dequantizer follows ggml's dequantize_row_* of llama.cpp b4747 (ggml/src/ggml-quants.c):
// the same float operations in the same order, so results match ggml's scalar path bit for bit
// (as long as neither side contracts a * b - c into an FMA).

namespace qb::ggml {

namespace {

template <typename Block>
const Block* blocks(const void* row) {
  return static_cast<const Block*>(row);
}

void dequantize_f32(const void* row, float* y, int64_t k) { std::memcpy(y, row, static_cast<size_t>(k) * 4); }

void dequantize_f16(const void* row, float* y, int64_t k) {
  const auto* h = static_cast<const uint16_t*>(row);
  for (int64_t i = 0; i < k; ++i) y[i] = half_to_float(h[i]);
}

void dequantize_bf16(const void* row, float* y, int64_t k) {
  const auto* h = static_cast<const uint16_t*>(row);
  for (int64_t i = 0; i < k; ++i) y[i] = bf16_to_float(h[i]);
}

void dequantize_q4_0(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q4_0>(row);
  for (int64_t i = 0; i < k / QK4_0; ++i, y += QK4_0) {
    const float d = half_to_float(x[i].d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = ((x[i].qs[j] & 0x0F) - 8) * d;
      y[j + QK4_0 / 2] = ((x[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q4_1>(row);
  for (int64_t i = 0; i < k / QK4_1; ++i, y += QK4_1) {
    const float d = half_to_float(x[i].d), m = half_to_float(x[i].m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = (x[i].qs[j] & 0x0F) * d + m;
      y[j + QK4_1 / 2] = (x[i].qs[j] >> 4) * d + m;
    }
  }
}

// The 5-bit codes of a q5_0 / q5_1 block: low nibbles from qs, bit 4 of code j from bit j of qh.
template <typename Block>
void q5_codes(const Block& b, int* q) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, sizeof(qh));
  for (int j = 0; j < 16; ++j) {
    q[j] = (b.qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10);
    q[j + 16] = (b.qs[j] >> 4) | ((qh >> (j + 12)) & 0x10);
  }
}

void dequantize_q5_0(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q5_0>(row);
  int q[QK5_0];
  for (int64_t i = 0; i < k / QK5_0; ++i, y += QK5_0) {
    const float d = half_to_float(x[i].d);
    q5_codes(x[i], q);
    for (int j = 0; j < QK5_0; ++j) y[j] = (q[j] - 16) * d;
  }
}

void dequantize_q5_1(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q5_1>(row);
  int q[QK5_1];
  for (int64_t i = 0; i < k / QK5_1; ++i, y += QK5_1) {
    const float d = half_to_float(x[i].d), m = half_to_float(x[i].m);
    q5_codes(x[i], q);
    for (int j = 0; j < QK5_1; ++j) y[j] = q[j] * d + m;
  }
}

void dequantize_q8_0(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q8_0>(row);
  for (int64_t i = 0; i < k / QK8_0; ++i, y += QK8_0) {
    const float d = half_to_float(x[i].d);
    for (int j = 0; j < QK8_0; ++j) y[j] = x[i].qs[j] * d;
  }
}

void dequantize_q2_K(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q2_K>(row);
  for (int64_t i = 0; i < k / QK_K; ++i) {
    const float d = half_to_float(x[i].d), dmin = half_to_float(x[i].dmin);
    const uint8_t* q = x[i].qs;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; ++part) {  // two sub-blocks of 16 per bit pair
          const uint8_t sc = x[i].scales[is++];
          const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * ((q[16 * part + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void dequantize_q3_K(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q3_K>(row);
  for (int64_t i = 0; i < k / QK_K; ++i) {
    const float d_all = half_to_float(x[i].d);
    const uint8_t* q = x[i].qs;
    const uint8_t* hm = x[i].hmask;
    uint8_t m = 1;
    int is = 0;
    for (int half = 0; half < 2; ++half, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (int part = 0; part < 2; ++part) {
          const float dl = d_all * (get_scale_q3_K(is++, x[i].scales) - 32);
          for (int l = 16 * part; l < 16 * part + 16; ++l)
            *y++ = dl * (((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        }
      }
    }
  }
}

void dequantize_q4_K(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q4_K>(row);
  for (int64_t i = 0; i < k / QK_K; ++i) {
    const float d = half_to_float(x[i].d), dmin = half_to_float(x[i].dmin);
    const uint8_t* q = x[i].qs;
    for (int is = 0; is < 8; is += 2, q += 32) {
      uint8_t sc, m;
      get_scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_K(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q5_K>(row);
  for (int64_t i = 0; i < k / QK_K; ++i) {
    const float d = half_to_float(x[i].d), dmin = half_to_float(x[i].dmin);
    const uint8_t* ql = x[i].qs;
    const uint8_t* qh = x[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      get_scale_min_k4(is, x[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      get_scale_min_k4(is + 1, x[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

void dequantize_q6_K(const void* row, float* y, int64_t k) {
  const auto* x = blocks<block_q6_K>(row);
  for (int64_t i = 0; i < k / QK_K; ++i) {
    const float d = half_to_float(x[i].d);
    const uint8_t* ql = x[i].ql;
    const uint8_t* qh = x[i].qh;
    const int8_t* sc = x[i].scales;
    for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

struct TypeInfo {
  Type type;
  const char* name;
  int block_elems;
  size_t block_bytes;
  void (*dequantize)(const void* row, float* out, int64_t k);  // null: not a weight format
};

constexpr TypeInfo kTypes[] = {
    {Type::F32, "F32", 1, 4, dequantize_f32},
    {Type::F16, "F16", 1, 2, dequantize_f16},
    {Type::BF16, "BF16", 1, 2, dequantize_bf16},
    {Type::Q4_0, "Q4_0", QK4_0, sizeof(block_q4_0), dequantize_q4_0},
    {Type::Q4_1, "Q4_1", QK4_1, sizeof(block_q4_1), dequantize_q4_1},
    {Type::Q5_0, "Q5_0", QK5_0, sizeof(block_q5_0), dequantize_q5_0},
    {Type::Q5_1, "Q5_1", QK5_1, sizeof(block_q5_1), dequantize_q5_1},
    {Type::Q8_0, "Q8_0", QK8_0, sizeof(block_q8_0), dequantize_q8_0},
    {Type::Q8_1, "Q8_1", QK8_1, sizeof(block_q8_1), nullptr},
    {Type::Q2_K, "Q2_K", QK_K, sizeof(block_q2_K), dequantize_q2_K},
    {Type::Q3_K, "Q3_K", QK_K, sizeof(block_q3_K), dequantize_q3_K},
    {Type::Q4_K, "Q4_K", QK_K, sizeof(block_q4_K), dequantize_q4_K},
    {Type::Q5_K, "Q5_K", QK_K, sizeof(block_q5_K), dequantize_q5_K},
    {Type::Q6_K, "Q6_K", QK_K, sizeof(block_q6_K), dequantize_q6_K},
    {Type::Q8_K, "Q8_K", QK_K, sizeof(block_q8_K), nullptr},
};

const TypeInfo* find(uint32_t type) {
  for (const TypeInfo& t : kTypes)
    if (static_cast<uint32_t>(t.type) == type) return &t;
  return nullptr;
}

const TypeInfo& info(Type type) {
  const TypeInfo* t = find(static_cast<uint32_t>(type));
  if (!t) fail("ggml type " + std::to_string(static_cast<uint32_t>(type)), "not a type of layouts/ggml_blocks.h");
  return *t;
}

}  // namespace

bool is_weight_type(uint32_t type) {
  const TypeInfo* t = find(type);
  return t && t->dequantize;
}
const char* type_name(Type type) { return info(type).name; }
int block_elems(Type type) { return info(type).block_elems; }
size_t block_bytes(Type type) { return info(type).block_bytes; }

void dequantize_row(Type type, const void* row, float* out, int64_t k) {
  const TypeInfo& t = info(type);
  if (!t.dequantize) fail(t.name, "an activation format; there is no dequantizer for it");
  if (k % t.block_elems != 0)
    fail(t.name, "a row of " + std::to_string(k) + " values is not a whole number of " +
                     std::to_string(t.block_elems) + "-value blocks");
  t.dequantize(row, out, k);
}

void get_scale_min_k4(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

int get_scale_q3_K(int j, const uint8_t* scales) {
  const int low = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return low | high << 4;
}

}  // namespace qb::ggml
