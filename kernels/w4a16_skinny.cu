// W4A16 skinny kernel for decode, m = 1..8: CUDA cores, FP32 accumulation, split-K over the SMs.
//
// At m <= 8 the GEMM is a stream over the packed weights (n * k / 2 bytes) with m FMAs per weight;
// the kernel's job is to keep enough 16-byte cp.async granules in flight to saturate HBM and to
// spend as few instructions per weight as possible: one lop3 + hsub2 + hmul2 per two weights
// (dequant_pair), then one conversion and m FMAs per weight.
//
// Work of one block (256 output columns x one k slice), per 64-row stage:
//
//          word column (lane) 0    1    2   ...  31        lane l owns columns 8l .. 8l+7
//                           +----+----+----+---+----+
//   stage rows  0..15       |      warp 0              |   warp w multiplies rows 16w..16w+15
//   stage rows 16..31       |      warp 1              |   (all in one group: 16 | group size)
//   stage rows 32..47       |      warp 2              |   and keeps acc[m][8] in registers;
//   stage rows 48..63       |      warp 3              |   the 4 warps' sums meet in shared
//                           +--------------------------+   memory at the end (reduce_warps).
//
// Shared-memory reads are conflict-free: a warp reads 32 consecutive words of one row; x and the
// scale/zero rows are broadcasts or consecutive 16-byte vectors.
#include <algorithm>
#include <string>
#include <utility>

#include "common/error.h"
#include "kernels/cuda_check.h"
#include "kernels/w4a16_internal.h"
#include "kernels/w4a16_tile.cuh"

namespace qb::kernels {
namespace w4a16 {
namespace {

constexpr int kRowsPerWarp = kStageK / kWarps;  // 16
static_assert(kRowsPerWarp <= 32 && 32 % kRowsPerWarp == 0, "a warp's rows must lie in one group (g >= 32)");

// Shared memory: the stage ring, later reused for the cross-warp reduction [kWarps][kM][kBlockN].
template <int kM>
constexpr int skinny_smem_bytes() {
  return std::max(kStages * StageLayout<kM>::kBytes, kWarps * kM * kBlockN * 4);
}

// kM = m exactly (1..8): one block covers every row, so the weights are read once.
template <int kM>
__global__ void __launch_bounds__(kThreads) w4a16_skinny_kernel(Params p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int wc0 = blockIdx.x * kBlockWords;  // first word column of this block
  const int split = blockIdx.z;
  const int k_begin = split * p.k_per_split;
  const int k_end = min(p.k, k_begin + p.k_per_split);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = warp * kRowsPerWarp;  // this warp's first row within a stage

  float acc[kM][8] = {};  // [row of x][column 8 * lane + j]

  // multiply_stage: acc += x[:, rows] * W[rows, columns of this lane] for this warp's 16 rows.
  auto multiply_stage = [&](const Stage& s, int k0) {
    const int group = stage_group(k0, row0, p.group_size);
    const uint32_t zero_word = s.zeros[group * kBlockWords + lane];
    __half2 zero_magic[4], scale[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) zero_magic[i] = magic_pair(zero_word, i);
    load_scale_pairs(s.scales + group * kBlockN + lane * 8, scale);
#pragma unroll 4
    for (int r = row0; r < row0 + kRowsPerWarp; ++r) {
      const uint32_t word = s.weights[r * kWordRowStride + lane];
      float xr[kM];
#pragma unroll
      for (int mi = 0; mi < kM; ++mi) xr[mi] = __half2float(s.x[mi * kXRowStride + r]);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 w = __half22float2(dequant_pair(word, i, zero_magic[i], scale[i]));  // columns 2i, 2i+1
#pragma unroll
        for (int mi = 0; mi < kM; ++mi) {
          acc[mi][2 * i] = fmaf(xr[mi], w.x, acc[mi][2 * i]);
          acc[mi][2 * i + 1] = fmaf(xr[mi], w.y, acc[mi][2 * i + 1]);
        }
      }
    }
  };
  run_pipeline<kM>(p, smem, 0, wc0, k_begin, k_end, multiply_stage);

  // reduce_warps: out[mi][c] = sum over warps, in place over warp 0's slice of the buffer.
  float* red = reinterpret_cast<float*>(smem);  // [kWarps][kM][kBlockN]
#pragma unroll
  for (int mi = 0; mi < kM; ++mi)
#pragma unroll
    for (int j = 0; j < 8; ++j) red[(warp * kM + mi) * kBlockN + lane * 8 + j] = acc[mi][j];
  __syncthreads();
  for (int e = threadIdx.x; e < kM * kBlockN; e += kThreads) {
    float sum = red[e];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) sum += red[w * kM * kBlockN + e];
    red[e] = sum;  // only this thread reads or writes element e of warp 0's slice
  }
  __syncthreads();
  write_result<kM>(p, red, 0, wc0, blockIdx.x, split);
}

// The instantiation for m rows: kM = 1..kSkinnyMaxM, one per m (the FMA loop is unrolled over kM).
using KernelPtr = void (*)(Params);
struct SkinnyKernel {
  KernelPtr kernel;
  int smem_bytes;
};
template <int... kMs>
SkinnyKernel pick(int m, std::integer_sequence<int, kMs...>) {
  SkinnyKernel chosen{nullptr, 0};
  ((m == kMs ? (chosen = SkinnyKernel{w4a16_skinny_kernel<kMs>, skinny_smem_bytes<kMs>()}, 0) : 0), ...);
  return chosen;
}
SkinnyKernel skinny_kernel_for(int m) {
  static_assert(kSkinnyMaxM == 8, "instantiate one skinny kernel per m");
  const SkinnyKernel k = pick(m, std::integer_sequence<int, 1, 2, 3, 4, 5, 6, 7, 8>{});
  if (!k.kernel) fail("w4a16 skinny", "m = " + std::to_string(m) + " outside 1.." + std::to_string(kSkinnyMaxM));
  QB_CUDA_CHECK(cudaFuncSetAttribute(k.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem_bytes));
  return k;
}

}  // namespace
}  // namespace w4a16

namespace detail {

int skinny_blocks_per_sm(int m) {
  const w4a16::SkinnyKernel k = w4a16::skinny_kernel_for(m);
  int blocks = 0;
  QB_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, k.kernel, w4a16::kThreads, k.smem_bytes));
  return std::max(blocks, 1);
}

void launch_skinny(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y, void* workspace,
                   cudaStream_t stream) {
  const w4a16::SkinnyKernel k = w4a16::skinny_kernel_for(plan.m);
  const w4a16::Params p = w4a16::make_params(plan, x, w, y, workspace);
  const dim3 grid((p.n_words + w4a16::kBlockWords - 1) / w4a16::kBlockWords, 1, plan.split_k);
  k.kernel<<<grid, w4a16::kThreads, k.smem_bytes, stream>>>(p);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace qb::kernels
