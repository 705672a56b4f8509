#pragma once
// ggml's tensor types and quantized block layouts, as llama.cpp writes them into GGUF files
// (layouts taken from llama.cpp b4747, commit c392e509, ggml/src/ggml-common.h), defined once for
// the GGUF reader and writer, the dequantizers and the llama.cpp quantizers (quant/ggml_quants.h).
//
// A row of k values is stored as k / block_elems(type) consecutive blocks; k must be a multiple of
// the block size (32 for the legacy quants, QK_K = 256 for the k-quants). Scales `d`, `m`, `dmin`
// are IEEE half bits (ggml_half), little-endian like everything else in a GGUF file.
#include <cstddef>
#include <cstdint>

namespace qb::ggml {

// ggml_type values as stored in GGUF tensor infos (4 and 5 were Q4_2/Q4_3, removed upstream).
enum class Type : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
constexpr int QK_K = 256;
constexpr int K_SCALE_SIZE = 12;

// Bit layouts, element j of a block being x[j]. "q[j]" is the unsigned code; bytes are little-endian.
#pragma pack(push, 1)

// q4_0, 32 values: x[j] = d * (q[j] - 8), q[j] in 0..15.
//   qs[i] (i < 16) = q[i] | q[i + 16] << 4        low nibbles: first half, high nibbles: second half
struct block_q4_0 {
  uint16_t d;
  uint8_t qs[QK4_0 / 2];
};

// q4_1, 32 values: x[j] = d * q[j] + m; qs as in q4_0.
struct block_q4_1 {
  uint16_t d, m;
  uint8_t qs[QK4_1 / 2];
};

// q5_0, 32 values: x[j] = d * (q[j] - 16), q[j] in 0..31.
//   qs[i] = (q[i] & 15) | (q[i + 16] & 15) << 4   as q4_0
//   qh (a little-endian uint32): bit j = bit 4 of q[j]
struct block_q5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};

// q5_1, 32 values: x[j] = d * q[j] + m; qh, qs as in q5_0.
struct block_q5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};

// q8_0, 32 values: x[j] = d * qs[j], qs signed.
struct block_q8_0 {
  uint16_t d;
  int8_t qs[QK8_0];
};

// q8_1: as q8_0 plus s = d * sum(qs), the activation side of q4_1 / q5_1 dot products.
struct block_q8_1 {
  uint16_t d, s;
  int8_t qs[QK8_1];
};

// q2_K, 256 values in 16 sub-blocks of 16: x[j] = d * (scales[j/16] & 15) * q[j] - dmin * (scales[j/16] >> 4),
// q[j] in 0..3. Two halves of 128 values, h = j / 128, each from 32 bytes of qs:
//   q[128h + 32s + l] = (qs[32h + l] >> 2s) & 3      s = 0..3 (bit pair), l = 0..31
struct block_q2_K {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  uint16_t d, dmin;
};

// q3_K, 256 values in 16 sub-blocks of 16: x[j] = d * (sc[j/16] - 32) * (q[j] - 4), q[j] in 0..7.
//   low 2 bits of q: as q2_K's qs (q[128h + 32s + l] from (qs[32h + l] >> 2s) & 3)
//   bit 2 of q[j]:   (hmask[j % 32] >> (j / 32)) & 1
//   sc[i], 6 bits, in the 12 scale bytes b (get_scale_q3_K):
//     low 4 bits:  i < 8 ? b[i] & 15 : b[i - 8] >> 4
//     high 2 bits: (b[8 + i % 4] >> 2 * (i / 4)) & 3
struct block_q3_K {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};

// q4_K, 256 values in 8 sub-blocks of 32: x[j] = d * sc[j/32] * q[j] - dmin * m[j/32], q[j] in 0..15.
//   qs: four chunks of 64 values, c = j / 64, from 32 bytes each:
//     q[64c + l] = qs[32c + l] & 15,  q[64c + 32 + l] = qs[32c + l] >> 4     l = 0..31
//   sc[i], m[i], 6 bits each, in the 12 scale bytes b (get_scale_min_k4):
//     i < 4:  sc = b[i] & 63,                        m = b[i + 4] & 63
//     i >= 4: sc = (b[i + 4] & 15) | (b[i - 4] >> 6) << 4,  m = (b[i + 4] >> 4) | (b[i] >> 6) << 4
struct block_q4_K {
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};

// q5_K, 256 values: as q4_K with q[j] in 0..31; bit 4 of q[j] = (qh[j % 32] >> (j / 32)) & 1.
struct block_q5_K {
  uint16_t d, dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};

// q6_K, 256 values in 16 sub-blocks of 16: x[j] = d * scales[j/16] * (q[j] - 32), q[j] in 0..63,
// scales signed. Two halves of 128 values, h = j / 128, from 64 bytes of ql and 32 of qh each:
//   q[128h + 32s + l] = low | high << 4,  s = 0..3, l = 0..31, where
//     low:  s = 0: ql[64h + l] & 15, s = 1: ql[64h + 32 + l] & 15, s = 2: ql[64h + l] >> 4, s = 3: ql[64h + 32 + l] >> 4
//     high: (qh[32h + l] >> 2s) & 3
struct block_q6_K {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  uint16_t d;
};

// q8_K, 256 values: the activation side of k-quant dot products; float d, bsums[i] = sum of qs[16i .. 16i+15].
struct block_q8_K {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
};
#pragma pack(pop)

static_assert(sizeof(block_q4_0) == 18 && sizeof(block_q4_1) == 20 && sizeof(block_q5_0) == 22 &&
                  sizeof(block_q5_1) == 24 && sizeof(block_q8_0) == 34 && sizeof(block_q8_1) == 36,
              "legacy block sizes as in ggml-common.h");
static_assert(sizeof(block_q2_K) == 84 && sizeof(block_q3_K) == 110 && sizeof(block_q4_K) == 144 &&
                  sizeof(block_q5_K) == 176 && sizeof(block_q6_K) == 210 && sizeof(block_q8_K) == 292,
              "k-quant block sizes as in ggml-common.h");

// Whether a ggml type number is a weight format this project reads (F32, F16, BF16, Q4_0 ...
// Q6_K); false for the activation formats Q8_1 / Q8_K, the IQ and integer types, and numbers
// that are no ggml type at all.
bool is_weight_type(uint32_t type);
// Facts about the enumerated types (a value outside the enum throws qb::Error).
const char* type_name(Type type);  // ggml's names: "F32", "F16", "BF16", "Q4_0" ... "Q6_K", "Q8_K"
int block_elems(Type type);        // values per block: 1 for F32/F16/BF16, 32 or QK_K
size_t block_bytes(Type type);     // bytes per block (per value for F32/F16/BF16)

// The k values of one row (k a multiple of the type's block size) from its blocks, as ggml's
// dequantize_row_* computes them (same float operations in the same order). F32/F16/BF16 rows
// are widened. Q8_1 and Q8_K are activation formats and are not dequantized.
void dequantize_row(Type type, const void* row, float* out, int64_t k);

// The 6-bit scale sc and min m of sub-block j (0..7) of a q4_K / q5_K block from its 12 packed
// scale bytes (layout at block_q4_K).
void get_scale_min_k4(int j, const uint8_t* scales, uint8_t* sc, uint8_t* m);
// The 6-bit scale (0..63, before the -32 offset) of sub-block j (0..15) of a q3_K block from its
// 12 packed scale bytes (layout at block_q3_K).
int get_scale_q3_K(int j, const uint8_t* scales);

}  // namespace qb::ggml
