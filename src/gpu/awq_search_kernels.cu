#include "gpu/awq_search_kernels.h"

#include <cmath>

#include "kernels/cuda_check.h"

namespace qb::gpu {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 65535;  // grid-stride beyond this
constexpr int kSoftmaxThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;

unsigned blocks_for(size_t count) {
  const size_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < kMaxBlocks ? blocks : kMaxBlocks);
}

#define QB_GRID_STRIDE(i, count)                                                                    \
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<size_t>(gridDim.x) * blockDim.x)

// Sum or maximum over the block; blockDim.x a multiple of 32, scratch __shared__ [32]; every
// thread gets the result.
template <typename T, bool kMax>
__device__ T block_reduce(T v, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    const T other = __shfl_down_sync(kFullMask, v, offset);
    v = kMax ? (other > v ? other : v) : v + other;
  }
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    T r = scratch[0];
    for (int w = 1; w < n_warps; ++w) r = kMax ? (scratch[w] > r ? scratch[w] : r) : r + scratch[w];
    scratch[0] = r;
  }
  __syncthreads();
  const T result = scratch[0];
  __syncthreads();
  return result;
}

// grid (rows), block kThreads.
__global__ void rmsnorm_kernel(const float* x, const float* w, float* out, int dim, float eps) {
  __shared__ double scratch[32];
  const float* xr = x + blockIdx.x * static_cast<size_t>(dim);
  double sum_sq = 0.0;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum_sq += static_cast<double>(xr[i]) * xr[i];
  sum_sq = block_reduce<double, false>(sum_sq, scratch);
  const float inv = static_cast<float>(1.0 / sqrt(sum_sq / dim + eps));
  float* o = out + blockIdx.x * static_cast<size_t>(dim);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = __fmul_rn(__fmul_rn(xr[i], inv), w[i]);
}

__global__ void add_kernel(float* x, const float* delta, size_t count) {
  QB_GRID_STRIDE(i, count) x[i] += delta[i];
}

__global__ void add_bias_kernel(float* y, const float* bias, size_t count, int n) {
  QB_GRID_STRIDE(i, count) y[i] += bias[i % n];
}

__global__ void rope_kernel(float* x, const float* cos_table, const float* sin_table, int rows, int seq_len,
                            int n_heads, int head_dim, bool interleaved) {
  const int half = head_dim / 2;
  const size_t total = static_cast<size_t>(rows) * n_heads * half;
  QB_GRID_STRIDE(idx, total) {
    const int i = static_cast<int>(idx % half);
    const size_t row_head = idx / half;
    const size_t pos = (row_head / n_heads) % seq_len;
    float* v = x + row_head * head_dim;
    float& a = interleaved ? v[2 * i] : v[i];
    float& b = interleaved ? v[2 * i + 1] : v[i + half];
    const float cs = cos_table[pos * half + i], sn = sin_table[pos * half + i];
    const float a0 = a, b0 = b;
    a = __fsub_rn(__fmul_rn(a0, cs), __fmul_rn(b0, sn));  // no FMA: as the CPU rounds
    b = __fadd_rn(__fmul_rn(a0, sn), __fmul_rn(b0, cs));
  }
}

// grid (rows), block kSoftmaxThreads.
__global__ void causal_softmax_kernel(float* scores, int seq_len) {
  __shared__ float scratch[32];
  const size_t r = blockIdx.x;
  const int t = static_cast<int>(r % seq_len);
  float* row = scores + r * seq_len;
  float max_score = -INFINITY;
  for (int u = threadIdx.x; u <= t; u += blockDim.x) max_score = fmaxf(max_score, row[u]);
  max_score = block_reduce<float, true>(max_score, scratch);
  float sum = 0.0f;
  for (int u = threadIdx.x; u <= t; u += blockDim.x) {
    const float e = expf(row[u] - max_score);
    row[u] = e;
    sum += e;
  }
  const float inv = 1.0f / block_reduce<float, false>(sum, scratch);
  for (int u = threadIdx.x; u < seq_len; u += blockDim.x) row[u] = u <= t ? row[u] * inv : 0.0f;
}

__global__ void swiglu_kernel(float* gate, const float* up, size_t count) {
  QB_GRID_STRIDE(i, count) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

// grid kSquaredDifferencePartials, block kThreads.
__global__ void squared_difference_partials_kernel(const float* a, const float* b, size_t count, double* partials) {
  __shared__ double scratch[32];
  double sum = 0.0;
  QB_GRID_STRIDE(i, count) {
    const double d = static_cast<double>(a[i]) - b[i];
    sum += d * d;
  }
  sum = block_reduce<double, false>(sum, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// grid 1, block kThreads.
__global__ void sum_partials_kernel(const double* partials, int count, double* sum) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  s = block_reduce<double, false>(s, scratch);
  if (threadIdx.x == 0) *sum = s;
}

__global__ void clip_search_init_kernel(const float* threshold_at_1, int count, double* best_err, float* best_max,
                                        float* best_ratio) {
  QB_GRID_STRIDE(i, static_cast<size_t>(count)) {
    best_err[i] = 1e9;
    best_max[i] = threshold_at_1[i];
    best_ratio[i] = 1.0f;
  }
}

// One thread per (batch entry b, output channel o), o fastest: reads of e[b][r][o] coalesce.
__global__ void clip_error_update_kernel(const float* e, int t, int n, int first_group, int batch, int n_groups,
                                         float ratio, const float* threshold, double* best_err, float* best_max,
                                         float* best_ratio) {
  QB_GRID_STRIDE(idx, static_cast<size_t>(batch) * n) {
    const int o = static_cast<int>(idx % n), b = static_cast<int>(idx / n);
    const float* col = e + static_cast<size_t>(b) * t * n + o;
    double err = 0.0;
    for (int r = 0; r < t; ++r) {
      const double dot = col[static_cast<size_t>(r) * n];
      err += dot * dot;
    }
    err /= t;
    const size_t at = static_cast<size_t>(o) * n_groups + first_group + b;
    if (err < best_err[at]) {
      best_err[at] = err;
      best_max[at] = threshold[at];
      best_ratio[at] = ratio;
    }
  }
}

}  // namespace

void launch_rmsnorm_f32(const float* x, const float* w, float* out, int rows, int dim, float eps, cudaStream_t stream) {
  rmsnorm_kernel<<<rows, kThreads, 0, stream>>>(x, w, out, dim, eps);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_add_f32(float* x, const float* delta, size_t count, cudaStream_t stream) {
  add_kernel<<<blocks_for(count), kThreads, 0, stream>>>(x, delta, count);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_add_bias_f32(float* y, const float* bias, int rows, int n, cudaStream_t stream) {
  const size_t count = static_cast<size_t>(rows) * n;
  add_bias_kernel<<<blocks_for(count), kThreads, 0, stream>>>(y, bias, count, n);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_rope_f32(float* x, const float* cos_table, const float* sin_table, int rows, int seq_len, int n_heads,
                     int head_dim, bool interleaved, cudaStream_t stream) {
  const size_t pairs = static_cast<size_t>(rows) * n_heads * (head_dim / 2);
  rope_kernel<<<blocks_for(pairs), kThreads, 0, stream>>>(x, cos_table, sin_table, rows, seq_len, n_heads, head_dim,
                                                          interleaved);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_causal_softmax_f32(float* scores, int rows, int seq_len, cudaStream_t stream) {
  causal_softmax_kernel<<<rows, kSoftmaxThreads, 0, stream>>>(scores, seq_len);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_swiglu_f32(float* gate, const float* up, size_t count, cudaStream_t stream) {
  swiglu_kernel<<<blocks_for(count), kThreads, 0, stream>>>(gate, up, count);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_sum_squared_difference(const float* a, const float* b, size_t count, double* partials, double* sum,
                                   cudaStream_t stream) {
  squared_difference_partials_kernel<<<kSquaredDifferencePartials, kThreads, 0, stream>>>(a, b, count, partials);
  QB_CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(partials, kSquaredDifferencePartials, sum);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_clip_search_init(const float* threshold_at_1, int count, double* best_err, float* best_max,
                             float* best_ratio, cudaStream_t stream) {
  clip_search_init_kernel<<<blocks_for(count), kThreads, 0, stream>>>(threshold_at_1, count, best_err, best_max,
                                                                      best_ratio);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_clip_error_update(const float* e, int t, int n, int first_group, int batch, int n_groups, float ratio,
                              const float* threshold, double* best_err, float* best_max, float* best_ratio,
                              cudaStream_t stream) {
  const size_t count = static_cast<size_t>(batch) * n;
  clip_error_update_kernel<<<blocks_for(count), kThreads, 0, stream>>>(e, t, n, first_group, batch, n_groups, ratio,
                                                                       threshold, best_err, best_max, best_ratio);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::gpu
