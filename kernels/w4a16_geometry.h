#pragma once
// The block tile of the two W4A16 kernels (w4a16_tile.cuh), which the host planner (w4a16.cpp)
// also sizes grids and split-K slices by. Plain C++.
#include "layouts/awq_layout.h"

namespace qb::kernels::w4a16 {

// 32 packed words = 256 output columns per block: one full 128-byte line of qweight per input
// channel, fetched as eight 16-byte cp.async granules.
constexpr int kBlockWords = 32;
constexpr int kBlockN = kBlockWords * awq::kPackFactor;  // 256 output columns
// 64 input channels per stage: 8 KiB of packed weights (512 granules, 4 per thread); a multiple of
// the mma k16 step and of the skinny kernel's 4 warps x 16 rows; 32 | 64 | 128, so a stage holds
// exactly two groups (g = 32) or lies inside one (g = 64, 128).
constexpr int kStageK = 64;
constexpr int kMaxGroupsPerStage = 2;  // kStageK / smallest group size

}  // namespace qb::kernels::w4a16
