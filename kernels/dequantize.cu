// Standalone dequantization: packed AWQ weight -> fp16 W [n, k] (PyTorch) or W^T [k, n], bit-identical
// to the CPU reference. Used by the large-m path (dequantize, then cuBLAS) and by GPU forward passes.
//
// One thread per (16 input channels, one word column = 8 output columns):
//
//            word column c ->  (8 output columns 8c..8c+7)
//   channels +-----+-----+--
//   16r..    | t   | t+1 |     reads: 16 words, consecutive threads -> consecutive words (coalesced)
//   16r+15   |     |     |     writes [k, n]: 16 rows x 16 bytes; [n, k]: 8 rows x 32 bytes (one
//            +-----+-----+--   full sector each)
//
// 16 channels lie in one group (16 | 32, 64, 128), so one zero word and 8 scales serve them all.
#include "kernels/cuda_check.h"
#include "kernels/w4a16_internal.h"
#include "kernels/w4a16_tile.cuh"

namespace qb::kernels {
namespace {

constexpr int kChannelsPerThread = 16;
constexpr int kDequantThreads = 256;

template <WeightLayout kLayout>
__global__ void __launch_bounds__(kDequantThreads)
    dequantize_awq_kernel(const uint32_t* __restrict__ qweight,  // [k, n_words]
                          const uint32_t* __restrict__ qzeros,   // [k / group_size, n_words]
                          const __half* __restrict__ scales,     // [k / group_size, n]
                          __half* __restrict__ out,              // [n, k] or [k, n]
                          int n, int k, int group_size) {
  using namespace w4a16;
  const int n_words = n / awq::kPackFactor;
  const int unit = blockIdx.x * kDequantThreads + threadIdx.x;
  if (unit >= n_words * (k / kChannelsPerThread)) return;
  const int word = unit % n_words;  // consecutive threads: consecutive word columns
  const int k0 = (unit / n_words) * kChannelsPerThread;
  const int group = k0 / group_size;

  const uint32_t zero_word = qzeros[static_cast<size_t>(group) * n_words + word];
  __half2 zero_magic[4], scale[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) zero_magic[i] = magic_pair(zero_word, i);
  const uint4 s = *reinterpret_cast<const uint4*>(scales + static_cast<size_t>(group) * n + word * 8);
  scale[0] = as_half2(s.x), scale[1] = as_half2(s.y), scale[2] = as_half2(s.z), scale[3] = as_half2(s.w);

  // w[r][i]: channel k0 + r, columns (8 * word + 2i, 8 * word + 2i + 1).
  uint32_t w[kChannelsPerThread][4];
#pragma unroll
  for (int r = 0; r < kChannelsPerThread; ++r) {
    const uint32_t packed = qweight[static_cast<size_t>(k0 + r) * n_words + word];
#pragma unroll
    for (int i = 0; i < 4; ++i) w[r][i] = as_bits(dequant_pair(packed, i, zero_magic[i], scale[i]));
  }

  if constexpr (kLayout == WeightLayout::kKN) {
#pragma unroll
    for (int r = 0; r < kChannelsPerThread; ++r)
      *reinterpret_cast<uint4*>(out + static_cast<size_t>(k0 + r) * n + word * 8) =
          make_uint4(w[r][0], w[r][1], w[r][2], w[r][3]);
  } else {
    // Row 8 * word + j of W [n, k] gets channels k0..k0+15: half j % 2 of w[r][j / 2] for each r.
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const uint32_t select = j % 2 == 0 ? 0x5410 : 0x7632;  // low or high halves of two words
      uint32_t row[kChannelsPerThread / 2];
#pragma unroll
      for (int r = 0; r < kChannelsPerThread; r += 2) row[r / 2] = __byte_perm(w[r][j / 2], w[r + 1][j / 2], select);
      uint4* dst = reinterpret_cast<uint4*>(out + static_cast<size_t>(word * 8 + j) * k + k0);
      dst[0] = make_uint4(row[0], row[1], row[2], row[3]);
      dst[1] = make_uint4(row[4], row[5], row[6], row[7]);
    }
  }
}

}  // namespace

namespace detail {

void launch_dequantize(const AwqWeightView& w, __half* out, WeightLayout layout, cudaStream_t stream) {
  const int units = (w.n / awq::kPackFactor) * (w.k / kChannelsPerThread);
  const int blocks = (units + kDequantThreads - 1) / kDequantThreads;
  const auto* qweight = reinterpret_cast<const uint32_t*>(w.qweight);
  const auto* qzeros = reinterpret_cast<const uint32_t*>(w.qzeros);
  if (layout == WeightLayout::kKN)
    dequantize_awq_kernel<WeightLayout::kKN>
        <<<blocks, kDequantThreads, 0, stream>>>(qweight, qzeros, w.scales, out, w.n, w.k, w.group_size);
  else
    dequantize_awq_kernel<WeightLayout::kNK>
        <<<blocks, kDequantThreads, 0, stream>>>(qweight, qzeros, w.scales, out, w.n, w.k, w.group_size);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace qb::kernels
