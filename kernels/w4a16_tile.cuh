#pragma once
// Device code shared by the two W4A16 kernels (w4a16_skinny.cu, w4a16_tensor_core.cu): the block
// tile and its shared-memory stage, the cp.async fetch of one stage, the register dequantization
// and the split-K epilogue. Both kernels walk the same tiles; they differ only in how a stage is
// multiplied (FP32 FMAs vs mma.sync).
//
// Block tiling (grid = [n / 256 column blocks, m / block_m row blocks, split_k k slices]):
//
//               n (output columns) ->
//          +------------+------------+-----
//   k      | block x=0  | block x=1  |          each block: 256 columns (32 packed int32 words
//  (input  | 256 cols   | 256 cols   |          per input channel = one 128-byte line) and the
//  chan-   | slice z=0  |            |          k slice [z * k_per_split, (z+1) * k_per_split),
//  nels)   +------------+------------+          walked in stages of 64 input channels.
//   |      | slice z=1  |            |
//   v      +------------+------------+          split_k > 1: every slice writes FP32 partials;
//          | ...        |            |          the last slice to finish a tile sums them in
//                                               slice order (deterministic) and writes y.
//
// One stage in shared memory (kStages of them, a ring):
//   weights  uint32 [64][36]          rows = input channels k0..k0+63, 32 words + 4 words padding
//   x        half   [block_m][72]     rows = activations m0.., 64 channels + 8 halves padding
//   scales   half   [2][256]          the (at most two) groups the 64 channels touch
//   zeros    uint32 [2][32]           packed zero points of those groups
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>

#include "kernels/w4a16_geometry.h"
#include "kernels/w4a16_internal.h"
#include "layouts/awq_layout.h"

namespace qb::kernels::w4a16 {

// ---- Tile constants (shared by both kernels; the block tile itself: w4a16_geometry.h) ----------
// 4 warps: enough independent warps per block to overlap dequantization with the next stage's
// copies, small enough that 3-4 blocks share an SM (every SM has 4 schedulers).
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
// 4-stage ring: 3 stages (24 KiB of weights) in flight per block while one is computed; with 3-4
// blocks per SM that is 70-100 KiB in flight, above the ~40 KiB per SM that Little's law asks for
// at 3-4 TB/s and ~1 us latency on H100/H200.
constexpr int kStages = 4;
// Padding: a word row of 36 (not 32) puts rows 2t (t = 0..3) 8 banks apart, so the tensor-core
// kernel's reads (rows 2t, 2t+1, 2t+8, 2t+9 x 8 word columns) hit 32 distinct banks; 144 bytes
// (not 128) per x row puts the 8 rows of an ldmatrix 8x8 in 8 distinct 16-byte bank groups.
// Both strides stay multiples of 16 bytes, as cp.async needs.
constexpr int kWordRowStride = kBlockWords + 4;  // uint32 per weight row in shared memory
constexpr int kXRowStride = kStageK + 8;          // halves per activation row in shared memory

// Byte layout of one stage for a block of kBlockM activation rows; every part 16-byte aligned.
template <int kBlockM>
struct StageLayout {
  static constexpr int kWeightBytes = kStageK * kWordRowStride * 4;
  static constexpr int kXBytes = kBlockM * kXRowStride * 2;
  static constexpr int kScaleBytes = kMaxGroupsPerStage * kBlockN * 2;
  static constexpr int kZeroBytes = kMaxGroupsPerStage * kBlockWords * 4;
  static constexpr int kBytes = kWeightBytes + kXBytes + kScaleBytes + kZeroBytes;
  static_assert(kWeightBytes % 16 == 0 && kXBytes % 16 == 0 && kScaleBytes % 16 == 0 && kZeroBytes % 16 == 0);
};

// Pointers into one stage of the ring.
struct Stage {
  uint32_t* weights;  // [kStageK][kWordRowStride]
  __half* x;          // [kBlockM][kXRowStride]
  __half* scales;     // [kMaxGroupsPerStage][kBlockN]
  uint32_t* zeros;    // [kMaxGroupsPerStage][kBlockWords]
};

template <int kBlockM>
__device__ inline Stage stage_at(unsigned char* smem, int slot) {
  using L = StageLayout<kBlockM>;
  unsigned char* base = smem + slot * L::kBytes;
  return Stage{reinterpret_cast<uint32_t*>(base), reinterpret_cast<__half*>(base + L::kWeightBytes),
               reinterpret_cast<__half*>(base + L::kWeightBytes + L::kXBytes),
               reinterpret_cast<uint32_t*>(base + L::kWeightBytes + L::kXBytes + L::kScaleBytes)};
}

// ---- Kernel arguments ---------------------------------------------------------------------------
struct Params {
  const __half* x;          // [m, k] row-major activations
  const uint32_t* qweight;  // [k, n_words] packed weights (awq_layout.h)
  const uint32_t* qzeros;   // [k / group_size, n_words] packed zero points
  const __half* scales;     // [k / group_size, n]
  __half* y;                // [m, n] row-major output
  float* partials;          // [split_k, m, n] FP32 slice sums; used when split_k > 1
  int* tile_counters;       // [m_blocks * n_blocks] slices finished per tile; 0 on entry and exit
  int m, n, k, group_size;
  int n_words;              // n / 8
  int k_per_split;          // multiple of kStageK
  int split_k;
  bool words_aligned16;     // n_words % 4 == 0: every 4-word granule of a qweight/qzeros row is 16-byte aligned
};

// Kernel arguments for a validated plan. Workspace: [counter region][partials: split_k * m * n FP32].
inline Params make_params(const W4A16Plan& plan, const __half* x, const AwqWeightView& w, __half* y,
                          void* workspace) {
  Params p;
  p.x = x;
  p.qweight = reinterpret_cast<const uint32_t*>(w.qweight);
  p.qzeros = reinterpret_cast<const uint32_t*>(w.qzeros);
  p.scales = w.scales;
  p.y = y;
  p.tile_counters = static_cast<int*>(workspace);
  p.partials = reinterpret_cast<float*>(static_cast<unsigned char*>(workspace) + detail::kCounterRegionBytes);
  p.m = plan.m;
  p.n = plan.n;
  p.k = plan.k;
  p.group_size = plan.group_size;
  p.n_words = plan.n / awq::kPackFactor;
  p.k_per_split = plan.k_per_split;
  p.split_k = plan.split_k;
  p.words_aligned16 = p.n_words % 4 == 0;
  return p;
}

// ---- cp.async (sm_80+) --------------------------------------------------------------------------
// src_bytes = 0 reads nothing and zero-fills the destination: rows/columns past the matrix edge
// become zeros, which dequantize to 0 (zero word, zero scale) and multiply zero activations.
__device__ inline void cp_async16(void* smem, const void* gmem, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ inline void cp_async4(void* smem, const void* gmem, bool valid) {
  const uint32_t dst = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 4 : 0));
}
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ inline void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

// Four packed words of row `row` of a [rows, n_words] tensor, starting at word column `word`
// (a multiple of 4). Rows of 16-byte-aligned tensors take one granule; otherwise (n % 32 != 0)
// four 4-byte copies, each predicated on its own column.
__device__ inline void copy_four_words(uint32_t* dst, const uint32_t* base, int row, int word, int n_words,
                                       bool row_valid, bool aligned16) {
  if (aligned16) {
    const bool valid = row_valid && word < n_words;  // n_words % 4 == 0: a granule is all in or all out
    cp_async16(dst, valid ? base + static_cast<size_t>(row) * n_words + word : base, valid);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const bool valid = row_valid && word + i < n_words;
      cp_async4(dst + i, valid ? base + static_cast<size_t>(row) * n_words + word + i : base, valid);
    }
  }
}

// ---- Pipeline stage: fetch_to_shared --------------------------------------------------------------
// Issues (does not wait for) the copies of stage rows [k0, k0 + 64) of the block at word column
// wc0 and activation row m0 into `s`. Every thread takes a share; nothing here synchronises.
template <int kBlockM>
__device__ inline void fetch_to_shared(const Params& p, const Stage& s, int k0, int m0, int wc0) {
  const int tid = threadIdx.x;
  constexpr int kGranulesPerRow = kBlockWords / 4;  // 8 x 16 bytes per weight row
  for (int c = tid; c < kStageK * kGranulesPerRow; c += kThreads) {
    const int row = c / kGranulesPerRow, word = (c % kGranulesPerRow) * 4;
    copy_four_words(s.weights + row * kWordRowStride + word, p.qweight, k0 + row, wc0 + word, p.n_words,
                    k0 + row < p.k, p.words_aligned16);
  }
  constexpr int kXGranulesPerRow = kStageK / 8;  // 8 halves per granule
  for (int c = tid; c < kBlockM * kXGranulesPerRow; c += kThreads) {
    const int row = c / kXGranulesPerRow, col = (c % kXGranulesPerRow) * 8;
    const bool valid = m0 + row < p.m && k0 + col < p.k;  // k % 32 == 0: a granule is all in or all out
    cp_async16(s.x + row * kXRowStride + col, valid ? p.x + static_cast<size_t>(m0 + row) * p.k + k0 + col : p.x,
               valid);
  }
  // Groups of this stage: g = 32 -> two (k0 is a multiple of 64); g = 64, 128 -> one.
  const int first_group = k0 / p.group_size;
  const int stage_groups = p.group_size < kStageK ? kStageK / p.group_size : 1;
  const int n_groups = p.k / p.group_size;
  for (int c = tid; c < kMaxGroupsPerStage * kBlockWords; c += kThreads) {  // 8 scales (16 bytes) per word column
    const int local = c / kBlockWords, word = c % kBlockWords;
    const int group = first_group + local;
    const bool valid = local < stage_groups && group < n_groups && wc0 + word < p.n_words;
    cp_async16(s.scales + local * kBlockN + word * 8,
               valid ? p.scales + static_cast<size_t>(group) * p.n + (wc0 + word) * 8 : p.scales, valid);
  }
  for (int c = tid; c < kMaxGroupsPerStage * kGranulesPerRow; c += kThreads) {
    const int local = c / kGranulesPerRow, word = (c % kGranulesPerRow) * 4;
    const int group = first_group + local;
    copy_four_words(s.zeros + local * kBlockWords + word, p.qzeros, group, wc0 + word, p.n_words,
                    local < stage_groups && group < n_groups, p.words_aligned16);
  }
}

// Index of the group of stage row `row` (0..63) among the stage's scale/zero rows.
__device__ inline int stage_group(int k0, int row, int group_size) { return (k0 % group_size + row) / group_size; }

// ---- Register dequantization --------------------------------------------------------------------
__device__ inline __half2 as_half2(uint32_t bits) {
  __half2 h;
  memcpy(&h, &bits, sizeof h);
  return h;
}
__device__ inline uint32_t as_bits(__half2 h) {
  uint32_t bits;
  memcpy(&bits, &h, sizeof bits);
  return bits;
}

// (1024 + v[2i], 1024 + v[2i+1]) for the nibbles of columns 2i, 2i+1 of a packed word: shift, then
// one lop3 ((word & 0x000f000f) | 0x64006400; nvcc fuses the AND and the OR).
__device__ inline __half2 magic_pair(uint32_t word, int i) {
  return as_half2(awq::column_pair_lanes(word, i) | awq::kHalfMagic1024);
}

// Dequantized weights of columns (2i, 2i+1) at one input channel: ((1024 + q) - (1024 + z)) * s.
// The subtraction is exact (both are integers below 2048); the multiply rounds once, exactly like
// the CPU reference's round_to_half((q - z) * s). zero_magic = magic_pair(zero word, i),
// scale = (s[2i], s[2i+1]).
__device__ inline __half2 dequant_pair(uint32_t word, int i, __half2 zero_magic, __half2 scale) {
  return __hmul2(__hsub2(magic_pair(word, i), zero_magic), scale);
}

// The four scale pairs (s[0], s[1]) .. (s[6], s[7]) of one word column, from 16 bytes of shared memory.
__device__ inline void load_scale_pairs(const __half* scales8, __half2 (&pairs)[4]) {
  const uint4 v = *reinterpret_cast<const uint4*>(scales8);
  pairs[0] = as_half2(v.x);
  pairs[1] = as_half2(v.y);
  pairs[2] = as_half2(v.z);
  pairs[3] = as_half2(v.w);
}

// ---- Epilogue: write_result -----------------------------------------------------------------------
__device__ inline void store_half8(__half* dst, const float (&v)[8]) {
  uint4 packed;
  packed.x = as_bits(__floats2half2_rn(v[0], v[1]));
  packed.y = as_bits(__floats2half2_rn(v[2], v[3]));
  packed.z = as_bits(__floats2half2_rn(v[4], v[5]));
  packed.w = as_bits(__floats2half2_rn(v[6], v[7]));
  *reinterpret_cast<uint4*>(dst) = packed;
}

// The block's FP32 result `out` (shared, [kBlockM][kBlockN], natural column order; every thread's
// writes to it visible, i.e. after a __syncthreads) goes to y: directly when split_k == 1, else
// through the partials and the tile counter. Work unit: 8 columns (one word column) of one row.
template <int kBlockM>
__device__ inline void write_result(const Params& p, const float* out, int m0, int wc0, int tile, int split) {
  const int tid = threadIdx.x;
  const int rows = min(kBlockM, p.m - m0);
  constexpr int kUnits = kBlockM * kBlockWords;
  auto unit_valid = [&](int u) { return u / kBlockWords < rows && wc0 + u % kBlockWords < p.n_words; };
  auto y_offset = [&](int u) { return static_cast<size_t>(m0 + u / kBlockWords) * p.n + (wc0 + u % kBlockWords) * 8; };

  if (p.split_k == 1) {
    for (int u = tid; u < kUnits; u += kThreads) {
      if (!unit_valid(u)) continue;
      float v[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = out[u * 8 + j];  // u * 8 == row * kBlockN + word * 8
      store_half8(p.y + y_offset(u), v);
    }
    return;
  }

  // Split-K: publish this slice's sums; the slice that finishes the tile last reduces all of them.
  const size_t slice_elems = static_cast<size_t>(p.m) * p.n;
  float* mine = p.partials + static_cast<size_t>(split) * slice_elems;
  for (int u = tid; u < kUnits; u += kThreads) {
    if (!unit_valid(u)) continue;
    float4* dst = reinterpret_cast<float4*>(mine + y_offset(u));
    dst[0] = make_float4(out[u * 8 + 0], out[u * 8 + 1], out[u * 8 + 2], out[u * 8 + 3]);
    dst[1] = make_float4(out[u * 8 + 4], out[u * 8 + 5], out[u * 8 + 6], out[u * 8 + 7]);
  }
  __threadfence();  // our partials are visible device-wide before the counter says so
  __syncthreads();
  __shared__ int is_last_slice;
  if (tid == 0) is_last_slice = atomicAdd(&p.tile_counters[tile], 1) == p.split_k - 1;
  __syncthreads();
  if (!is_last_slice) return;
  __threadfence();  // and the other slices' partials are visible to us
  for (int u = tid; u < kUnits; u += kThreads) {
    if (!unit_valid(u)) continue;
    float v[8] = {};
    for (int s = 0; s < p.split_k; ++s) {  // slice order: the same sum whichever block is last
      // __ldcg: read at L2, past this SM's L1 (other SMs wrote these lines).
      const float4* src = reinterpret_cast<const float4*>(p.partials + s * slice_elems + y_offset(u));
      const float4 a = __ldcg(src), b = __ldcg(src + 1);
      v[0] += a.x, v[1] += a.y, v[2] += a.z, v[3] += a.w, v[4] += b.x, v[5] += b.y, v[6] += b.z, v[7] += b.w;
    }
    store_half8(p.y + y_offset(u), v);
  }
  if (tid == 0) p.tile_counters[tile] = 0;  // ready for the next launch
}

// ---- Pipeline driver (both kernels) -----------------------------------------------------------------
// Runs the stage ring over this block's k slice: fetch_to_shared for stage t + 3 overlaps
// multiply_stage(stage t). After it returns all copies have landed and shared memory is free.
//   multiply_stage(const Stage& s, int k0): consumes one stage (rows k0..k0+63).
template <int kBlockM, typename MultiplyStage>
__device__ inline void run_pipeline(const Params& p, unsigned char* smem, int m0, int wc0, int k_begin, int k_end,
                                    MultiplyStage&& multiply_stage) {
  const int n_stages = (k_end - k_begin + kStageK - 1) / kStageK;
  // Prologue: the first kStages - 1 stages in flight. One commit group per stage, empty or not, so
  // that "wait until at most kStages - 2 groups are pending" always means "stage t has landed".
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    if (t < n_stages) fetch_to_shared<kBlockM>(p, stage_at<kBlockM>(smem, t), k_begin + t * kStageK, m0, wc0);
    cp_async_commit();
  }
  for (int t = 0; t < n_stages; ++t) {
    // wait_for_stage: stage t landed for this thread; the barrier makes it landed for all threads
    // and guarantees everyone finished multiplying stage t - 1, whose slot is refilled next.
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int next = t + kStages - 1;
    if (next < n_stages)
      fetch_to_shared<kBlockM>(p, stage_at<kBlockM>(smem, next % kStages), k_begin + next * kStageK, m0, wc0);
    cp_async_commit();
    multiply_stage(stage_at<kBlockM>(smem, t % kStages), k_begin + t * kStageK);
  }
  cp_async_wait<0>();
  __syncthreads();
}

}  // namespace qb::kernels::w4a16
