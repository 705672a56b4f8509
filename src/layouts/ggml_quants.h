#pragma once
// llama.cpp's reference quantizers (quantize_row_*_ref of ggml/src/ggml-quants.c at b4747, commit
// c392e5094deaf2d1a7c18683214f007fad3fe42b): the code llama-quantize runs when it has no
// importance matrix. They reproduce its blocks bit for bit (tests/quant/test_ggml_quants.cpp
// checks every block of the shared stories-d256-l2 GGUF files), so the float operations keep
// upstream's order, and this file is compiled with -ffp-contract=off (no fused multiply-adds,
// as the x86-64 baseline build of ggml-base that made those files).
//
// Each function quantizes k values (k a multiple of the type's block size, layouts/ggml_blocks.h)
// into k / block_size consecutive blocks. Rows are independent: quantizing a [n, k] matrix is
// quantizing its n rows one after another.
//
// Activation side (what ggml's CPU matmul does to the activations before an integer dot product
// with the weight blocks): q8_0 for q4_0/q5_0/q8_0 weights, q8_1 (with the scaled sum `s`) for
// q4_1/q5_1, q8_K (float scale, 16-value sums) for the k-quants.
#include <cstddef>
#include <cstdint>

#include "layouts/ggml_blocks.h"

namespace qb::ggml {

// Activation-side quantizers.
void quantize_row_q8_0_ref(const float* x, block_q8_0* y, int64_t k);
void quantize_row_q8_1_ref(const float* x, block_q8_1* y, int64_t k);
void quantize_row_q8_K_ref(const float* x, block_q8_K* y, int64_t k);

// Weight quantizers (no importance matrix).
void quantize_row_q4_0_ref(const float* x, block_q4_0* y, int64_t k);
void quantize_row_q4_1_ref(const float* x, block_q4_1* y, int64_t k);
void quantize_row_q5_0_ref(const float* x, block_q5_0* y, int64_t k);
void quantize_row_q5_1_ref(const float* x, block_q5_1* y, int64_t k);
void quantize_row_q2_K_ref(const float* x, block_q2_K* y, int64_t k);
void quantize_row_q3_K_ref(const float* x, block_q3_K* y, int64_t k);
void quantize_row_q4_K_ref(const float* x, block_q4_K* y, int64_t k);
void quantize_row_q5_K_ref(const float* x, block_q5_K* y, int64_t k);
void quantize_row_q6_K_ref(const float* x, block_q6_K* y, int64_t k);

// Whether quantize_rows handles `type`: the weight types above plus Q8_0, F16 and F32.
bool has_quantizer(Type type);

// Quantizes n_rows rows of row_len floats (row_len a multiple of block_elems(type)) into `dst`,
// n_rows * row_len / block_elems(type) * block_bytes(type) bytes, as ggml_quantize_chunk does
// with no importance matrix; F16 rounds to nearest even, F32 copies. Throws qb::Error for a type
// without a quantizer or a row length that is not a whole number of blocks.
void quantize_rows(Type type, const float* src, void* dst, int64_t n_rows, int64_t row_len);

}  // namespace qb::ggml
