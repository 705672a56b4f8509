#include "bench/bench_fill.h"

#include "kernels/cuda_check.h"

namespace qb::bench {
namespace {

constexpr int kFillThreads = 256;

// splitmix64-style finalizer of (seed, index): 32 well-mixed bits.
__device__ inline uint32_t hash_bits(uint32_t seed, size_t index) {
  uint64_t z = (static_cast<uint64_t>(seed) << 40) ^ index;
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return static_cast<uint32_t>((z ^ (z >> 31)) >> 32);
}

__global__ void fill_halves_kernel(__half* out, size_t count, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = __float2half(lo + (hi - lo) * (hash_bits(seed, i) >> 8) * (1.0f / 16777216.0f));
}

__global__ void fill_words_kernel(int32_t* out, size_t count, uint32_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    out[i] = static_cast<int32_t>(hash_bits(seed, i));
}

unsigned grid_for(size_t count) {
  const size_t blocks = (count + kFillThreads - 1) / kFillThreads;
  return static_cast<unsigned>(blocks < 65536 ? blocks : 65536);  // grid-stride loops cover the rest
}

}  // namespace

void fill_random_halves(__half* out, size_t count, float lo, float hi, uint32_t seed, cudaStream_t stream) {
  if (count == 0) return;
  fill_halves_kernel<<<grid_for(count), kFillThreads, 0, stream>>>(out, count, lo, hi, seed);
  QB_CUDA_CHECK_LAUNCH();
}

void fill_random_words(int32_t* out, size_t count, uint32_t seed, cudaStream_t stream) {
  if (count == 0) return;
  fill_words_kernel<<<grid_for(count), kFillThreads, 0, stream>>>(out, count, seed);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::bench
