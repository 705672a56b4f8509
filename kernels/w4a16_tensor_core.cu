// W4A16 tensor-core kernel: mma.sync.m16n8k16 (fp16 x fp16 -> FP32) with the dequantization fused
// into the shared-memory -> register path, a 4-stage cp.async ring, split-K over the SMs.
//
// The packed layout stores 8 neighbouring OUTPUT columns of one input channel per int32, but an
// mma B fragment wants 2 neighbouring INPUT channels of one column per register. Instead of
// repacking the weights offline (Marlin's way), each thread reads the words of the input channels
// its B fragment needs and renames the mma's columns:
//
//   mma tile j (j = 0..7) of a warp, logical column g (0..7)  <->  output column 8 * (wc + g) + j
//   where wc = the warp's first word column.
//
// So thread (g = lane / 4, t = lane % 4) reads word column wc + g at input channels 2t, 2t+1,
// 2t+8, 2t+9 of a k16 step: four words = the B fragments of all 8 mma tiles (64 columns), after
// dequant_pair (columns 2i, 2i+1 of one channel per half2) and one prmt per fragment register
// (channels 2t, 2t+1 of one column per half2). The C fragments come back in the same renamed
// order and are put right when the block's result goes through shared memory (store_fragments).
//
// Block and warp tiling (block_m = 16, 32 or 64 rows; 4 warps side by side in n):
//
//              256 output columns of the block
//         +-----------+-----------+-----------+-----------+
//   m     |  warp 0   |  warp 1   |  warp 2   |  warp 3   |   warp w: word columns 8w .. 8w+7
//  block  | 64 cols   | 64 cols   | 64 cols   | 64 cols   |   = 64 output columns, every row of
//  rows   | x block_m | x block_m | x block_m | x block_m |   the block: block_m / 16 x 8 mma tiles
//         +-----------+-----------+-----------+-----------+   (dequantized B reused by each m tile)
//
// Per 64-row stage: 4 k16 steps; per step and warp: one ldmatrix.x4 per m tile (A), four 32-bit
// shared loads + 16 dequant_pair + 16 prmt (B), then block_m / 16 x 8 mma.
#include <algorithm>
#include <string>

#include "common/error.h"
#include "kernels/cuda_check.h"
#include "kernels/w4a16_internal.h"
#include "kernels/w4a16_tile.cuh"

namespace qb::kernels {
namespace w4a16 {
namespace {

// Shared memory: the stage ring, later reused for the block result [kBlockM][kBlockN] FP32.
template <int kMTiles>
constexpr int tensor_core_smem_bytes() {
  return std::max(kStages * StageLayout<16 * kMTiles>::kBytes, 16 * kMTiles * kBlockN * 4);
}

// A fragment of a 16x16 fp16 tile at `tile` (row stride kXRowStride halves): lanes 0-15 point at
// rows 0-15 of channels 0-7, lanes 16-31 at rows 0-15 of channels 8-15, giving the 4 registers
// in mma order (rows 0-7 | 8-15) x (channels 0-7 | 8-15).
__device__ inline void ldmatrix_a(uint32_t (&a)[4], const __half* tile, int lane) {
  const __half* row = tile + (lane % 16) * kXRowStride + (lane / 16) * 8;
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(addr));
}

// c += a (16x16, row) * b (16x8, col), FP32 accumulators.
__device__ inline void mma_16816(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <int kMTiles>
__global__ void __launch_bounds__(kThreads) w4a16_tensor_core_kernel(Params p) {
  constexpr int kBlockM = 16 * kMTiles;
  extern __shared__ __align__(16) unsigned char smem[];
  const int wc0 = blockIdx.x * kBlockWords;  // first word column of this block
  const int m0 = blockIdx.y * kBlockM;       // first row of x
  const int split = blockIdx.z;
  const int k_begin = split * p.k_per_split;
  const int k_end = min(p.k, k_begin + p.k_per_split);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;  // mma groupID / threadID_in_group
  const int wc = warp * 8 + g;           // the block-local word column this thread dequantizes

  // acc[mt][j]: C fragment of m tile mt, mma tile j: rows g, g+8 x logical columns 2t, 2t+1.
  float acc[kMTiles][8][4] = {};

  // multiply_stage: four k16 steps over the stage's 64 channels.
  auto multiply_stage = [&](const Stage& s, int k0) {
#pragma unroll
    for (int kk = 0; kk < kStageK / 16; ++kk) {
      uint32_t a[kMTiles][4];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) ldmatrix_a(a[mt], s.x + mt * 16 * kXRowStride + kk * 16, lane);

      // B fragments: channels 2t, 2t+1 (register 0) and 2t+8, 2t+9 (register 1) of the step.
      const int row = kk * 16 + 2 * t;
      const uint32_t w0 = s.weights[row * kWordRowStride + wc];
      const uint32_t w1 = s.weights[(row + 1) * kWordRowStride + wc];
      const uint32_t w8 = s.weights[(row + 8) * kWordRowStride + wc];
      const uint32_t w9 = s.weights[(row + 9) * kWordRowStride + wc];
      const int group = stage_group(k0, kk * 16, p.group_size);  // 16 | group size: one group per step
      const uint32_t zero_word = s.zeros[group * kBlockWords + wc];
      __half2 scale[4];
      load_scale_pairs(s.scales + group * kBlockN + wc * 8, scale);
      uint32_t b[8][2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const __half2 zero_magic = magic_pair(zero_word, i);
        const uint32_t d0 = as_bits(dequant_pair(w0, i, zero_magic, scale[i]));  // channel 2t:   (col 2i, col 2i+1)
        const uint32_t d1 = as_bits(dequant_pair(w1, i, zero_magic, scale[i]));  // channel 2t+1
        const uint32_t d8 = as_bits(dequant_pair(w8, i, zero_magic, scale[i]));  // channel 2t+8
        const uint32_t d9 = as_bits(dequant_pair(w9, i, zero_magic, scale[i]));  // channel 2t+9
        // prmt 0x5410 takes the low halves of (lo, hi) -> column 2i; 0x7632 the high halves -> 2i+1.
        b[2 * i][0] = __byte_perm(d0, d1, 0x5410);
        b[2 * i][1] = __byte_perm(d8, d9, 0x5410);
        b[2 * i + 1][0] = __byte_perm(d0, d1, 0x7632);
        b[2 * i + 1][1] = __byte_perm(d8, d9, 0x7632);
      }
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int j = 0; j < 8; ++j) mma_16816(acc[mt][j], a[mt], b[j]);
    }
  };
  run_pipeline<kBlockM>(p, smem, m0, wc0, k_begin, k_end, multiply_stage);

  // store_fragments: C fragments -> out [kBlockM][kBlockN] in natural column order. Logical column
  // 2t (+1) of mma tile j is word column warp * 8 + 2t (+1), output column 8 * that + j.
  float* out = reinterpret_cast<float*>(smem);
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int r = mt * 16 + g;
      const int c = (warp * 8 + 2 * t) * 8 + j;
      out[r * kBlockN + c] = acc[mt][j][0];
      out[r * kBlockN + c + 8] = acc[mt][j][1];
      out[(r + 8) * kBlockN + c] = acc[mt][j][2];
      out[(r + 8) * kBlockN + c + 8] = acc[mt][j][3];
    }
  __syncthreads();
  write_result<kBlockM>(p, out, m0, wc0, blockIdx.y * gridDim.x + blockIdx.x, split);
}

using KernelPtr = void (*)(Params);
struct TensorCoreKernel {
  KernelPtr kernel;
  int smem_bytes;
};

// block_m = 16 * kMTiles: 16 for m <= 16 (decode-sized batches: no padded rows beyond 16), 32 up
// to 32, else 64 (each dequantized B fragment feeds 4 m tiles; 64 x 256 x 4 mma accumulators are
// 128 registers per thread, the most that keeps two blocks per SM).
TensorCoreKernel tensor_core_kernel_for(int block_m) {
  TensorCoreKernel k{nullptr, 0};
  switch (block_m) {
    case 16: k = {w4a16_tensor_core_kernel<1>, tensor_core_smem_bytes<1>()}; break;
    case 32: k = {w4a16_tensor_core_kernel<2>, tensor_core_smem_bytes<2>()}; break;
    case 64: k = {w4a16_tensor_core_kernel<4>, tensor_core_smem_bytes<4>()}; break;
    default: fail("w4a16 tensor core", "no kernel for block_m = " + std::to_string(block_m));
  }
  QB_CUDA_CHECK(cudaFuncSetAttribute(k.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem_bytes));
  return k;
}

}  // namespace
}  // namespace w4a16

namespace detail {

int tensor_core_block_m(int m) { return m <= 16 ? 16 : m <= 32 ? 32 : 64; }

int tensor_core_blocks_per_sm(int block_m) {
  const w4a16::TensorCoreKernel k = w4a16::tensor_core_kernel_for(block_m);
  int blocks = 0;
  QB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, k.kernel, w4a16::kThreads, k.smem_bytes));
  return std::max(blocks, 1);
}

void launch_tensor_core(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y, void* workspace,
                        cudaStream_t stream) {
  const int block_m = tensor_core_block_m(plan.m);
  const w4a16::TensorCoreKernel k = w4a16::tensor_core_kernel_for(block_m);
  const w4a16::Params p = w4a16::make_params(plan, x, w, y, workspace);
  const dim3 grid((p.n_words + w4a16::kBlockWords - 1) / w4a16::kBlockWords, (plan.m + block_m - 1) / block_m,
                  plan.split_k);
  k.kernel<<<grid, w4a16::kThreads, k.smem_bytes, stream>>>(p);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace qb::kernels
