#pragma once
// Random device data for the benchmark (values do not change the kernels' speed much, but all-zero
// inputs would let the tensor cores draw less power than real data does). Plain C++ header.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace qb::bench {

// Uniform in [lo, hi), a hash of (seed, index): reproducible, no RNG state.
void fill_random_halves(__half* out, size_t count, float lo, float hi, uint32_t seed, cudaStream_t stream);
// Uniform random bits: any int32 is a valid packed 4-bit word.
void fill_random_words(int32_t* out, size_t count, uint32_t seed, cudaStream_t stream);

}  // namespace qb::bench
