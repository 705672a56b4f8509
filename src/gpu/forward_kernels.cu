#include "gpu/forward_kernels.h"

#include <climits>
#include <cmath>

#include "kernels/cuda_check.h"

namespace qb::gpu {
namespace {

constexpr int kRowThreads = 256;         // one block per row: rmsnorm, embed, scoring
constexpr int kElementThreads = 256;     // grid-stride element-wise kernels
constexpr int kMaxElementBlocks = 65535;  // grid-stride beyond this
constexpr int kAttentionThreads = 128;   // = keys per chunk of the attention kernel
constexpr unsigned kFullMask = 0xffffffffu;

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

template <typename T, typename Op>
__device__ T warp_reduce(T value, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) value = op(value, __shfl_down_sync(kFullMask, value, offset));
  return value;  // complete in lane 0
}

// Reduces one value per thread over the whole block and returns the result to every thread.
// blockDim.x must be a multiple of 32; every thread of the block must call it (it synchronises).
// scratch: __shared__ T[32].
template <typename T, typename Op>
__device__ T block_reduce(T value, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  value = warp_reduce(value, op);
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  if (warp == 0) {
    T v = lane < n_warps ? scratch[lane] : identity;
    v = warp_reduce(v, op);
    __syncwarp();
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const T result = scratch[0];
  __syncthreads();  // scratch may be reused right after
  return result;
}

// (value, index) maximum; ties go to the smaller index (std::max_element's first maximum).
struct ArgMax {
  float value;
  int index;
};
__device__ ArgMax better(ArgMax a, ArgMax b) {
  if (a.value > b.value) return a;
  if (b.value > a.value) return b;
  return a.index <= b.index ? a : b;
}
__device__ ArgMax block_argmax(ArgMax a, ArgMax* scratch /* __shared__ [32] */) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  auto warp_argmax = [](ArgMax x) {
    for (int offset = 16; offset > 0; offset /= 2) {
      const ArgMax other{__shfl_down_sync(kFullMask, x.value, offset), __shfl_down_sync(kFullMask, x.index, offset)};
      x = better(x, other);
    }
    return x;
  };
  a = warp_argmax(a);
  if (lane == 0) scratch[warp] = a;
  __syncthreads();
  if (warp == 0) {
    ArgMax v = lane < n_warps ? scratch[lane] : ArgMax{-INFINITY, INT_MAX};
    v = warp_argmax(v);
    __syncwarp();
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  const ArgMax result = scratch[0];
  __syncthreads();
  return result;
}

unsigned element_blocks(size_t count) {
  const size_t blocks = (count + kElementThreads - 1) / kElementThreads;
  return static_cast<unsigned>(blocks < kMaxElementBlocks ? blocks : kMaxElementBlocks);
}

// grid (rows), block kRowThreads.
__global__ void embed_kernel(const int* tokens, const __half* embed, float* x, int dim) {
  const size_t r = blockIdx.x;
  const __half* src = embed + static_cast<size_t>(tokens[r]) * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) x[r * dim + d] = __half2float(src[d]);
}

// grid (rows), block kRowThreads.
__global__ void rmsnorm_kernel(const float* x, const __half* w, __half* out, int dim, float eps) {
  __shared__ float scratch[32];
  const size_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float sum_sq = 0.0f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) sum_sq += xr[d] * xr[d];
  sum_sq = block_reduce(sum_sq, SumOp{}, 0.0f, scratch);
  const float inv_rms = 1.0f / sqrtf(sum_sq / dim + eps);
  for (int d = threadIdx.x; d < dim; d += blockDim.x) out[r * dim + d] = __float2half(xr[d] * inv_rms * __half2float(w[d]));
}

// One thread per (row, head, pair): grid-stride over rows * n_heads * head_dim/2.
__global__ void rope_kernel(const __half* in, float* out, const float* cos_table, const float* sin_table, int rows,
                            int n_heads, int head_dim, bool interleaved) {
  const int half_dim = head_dim / 2;
  const size_t total = static_cast<size_t>(rows) * n_heads * half_dim;
  for (size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half_dim);
    const size_t row_head = idx / half_dim;  // r * n_heads + h
    const size_t r = row_head / n_heads;
    const size_t base = row_head * head_dim;  // start of head h of row r
    const size_t ia = base + (interleaved ? 2 * i : i), ib = base + (interleaved ? 2 * i + 1 : i + half_dim);
    const float a = __half2float(in[ia]), b = __half2float(in[ib]);
    const float cs = cos_table[r * half_dim + i], sn = sin_table[r * half_dim + i];
    out[ia] = a * cs - b * sn;
    out[ib] = a * sn + b * cs;
  }
}

// grid (seq_len, n_heads), block kAttentionThreads; dynamic shared 2 * head_dim floats.
// Keys are processed in chunks of kAttentionThreads with an online softmax (running max and sum,
// accumulator rescaled when the max grows), which is exact up to rounding and needs no
// seq_len-sized scratch. Warp w computes the scores of keys w, w + 4, ... of a chunk (lanes over
// head_dim, coalesced); then thread j owns key j for the max/exp/sum, and thread d owns output
// dimensions d, d + 128, ... for the weighted sum of v (lanes over head_dim, coalesced).
__global__ void causal_attention_kernel(const float* q, const float* k, const __half* v, __half* out, int n_heads,
                                        int n_kv_heads, int head_dim, float scale) {
  extern __shared__ float shared[];
  float* q_s = shared;               // [head_dim] this query
  float* acc_s = shared + head_dim;  // [head_dim] un-normalised output
  __shared__ float p_s[kAttentionThreads];  // scores, then exp weights, of one chunk
  __shared__ float scratch[32];
  const int t = blockIdx.x, h = blockIdx.y, kvh = h / (n_heads / n_kv_heads);
  const size_t q_dim = static_cast<size_t>(n_heads) * head_dim, kv_dim = static_cast<size_t>(n_kv_heads) * head_dim;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, n_warps = blockDim.x / 32;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    q_s[d] = q[t * q_dim + static_cast<size_t>(h) * head_dim + d];
    acc_s[d] = 0.0f;
  }
  __syncthreads();
  float running_max = -INFINITY, running_sum = 0.0f;
  for (int chunk = 0; chunk <= t; chunk += kAttentionThreads) {
    const int n_keys = min(kAttentionThreads, t + 1 - chunk);  // keys chunk .. chunk + n_keys - 1 <= t
    for (int j = warp; j < kAttentionThreads; j += n_warps) {   // warp-uniform loop
      float dot = 0.0f;
      if (j < n_keys) {
        const float* key = k + static_cast<size_t>(chunk + j) * kv_dim + static_cast<size_t>(kvh) * head_dim;
        for (int d = lane; d < head_dim; d += 32) dot += q_s[d] * key[d];
      }
      dot = warp_reduce(dot, SumOp{});
      if (lane == 0) p_s[j] = j < n_keys ? dot * scale : -INFINITY;
    }
    __syncthreads();
    const float score = p_s[threadIdx.x];
    const float new_max = fmaxf(running_max, block_reduce(score, MaxOp{}, -INFINITY, scratch));
    const float weight = threadIdx.x < n_keys ? expf(score - new_max) : 0.0f;
    p_s[threadIdx.x] = weight;  // only this thread read p_s[threadIdx.x]; the reduction below syncs
    const float chunk_sum = block_reduce(weight, SumOp{}, 0.0f, scratch);
    const float rescale = expf(running_max - new_max);  // 0 for the first chunk (running_max = -inf)
    running_sum = running_sum * rescale + chunk_sum;
    running_max = new_max;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
      float acc = acc_s[d] * rescale;
      const __half* value = v + static_cast<size_t>(chunk) * kv_dim + static_cast<size_t>(kvh) * head_dim + d;
      for (int j = 0; j < n_keys; ++j) acc += p_s[j] * __half2float(value[j * kv_dim]);
      acc_s[d] = acc;
    }
    __syncthreads();  // p_s is rewritten by the next chunk
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x)
    out[t * q_dim + static_cast<size_t>(h) * head_dim + d] = __float2half(acc_s[d] / running_sum);
}

__global__ void swiglu_kernel(__half* gate, const __half* up, size_t count) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float g = __half2float(gate[i]);
    gate[i] = __float2half(g / (1.0f + expf(-g)) * __half2float(up[i]));
  }
}

__global__ void residual_add_kernel(float* x, const __half* delta, size_t count) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    x[i] += __half2float(delta[i]);
}

__global__ void add_bias_kernel(__half* y, const __half* bias, size_t count, int n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x)
    y[i] = __float2half(__half2float(y[i]) + __half2float(bias[i % n]));
}

// grid (count), block kRowThreads. Three passes over the row(s): max/argmax/finiteness, the
// log-sum-exp, and (with a reference) the KL sum.
__global__ void score_rows_kernel(const float* logits, const float* ref_logits, const int* tokens, int first, int vocab,
                                  double* nll, double* kl, uint8_t* top1, int* nonfinite) {
  __shared__ double scratch_d[32];
  __shared__ int scratch_i[32];
  __shared__ ArgMax scratch_a[32];
  const int i = blockIdx.x, j = first + i;
  const float* row = logits + static_cast<size_t>(j - 1) * vocab;
  const float* ref = ref_logits ? ref_logits + static_cast<size_t>(j - 1) * vocab : nullptr;

  ArgMax best{-INFINITY, INT_MAX}, ref_best{-INFINITY, INT_MAX};
  int bad = 0;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) {  // c increases: strict > keeps the first max
    const float x = row[c];
    if (!isfinite(x)) bad = 1;
    if (x > best.value) best = {x, c};
    if (ref && ref[c] > ref_best.value) ref_best = {ref[c], c};
  }
  if (block_reduce(bad, MaxOp{}, 0, scratch_i)) {  // uniform across the block
    if (threadIdx.x == 0) {
      atomicExch(nonfinite, 1);
      nll[i] = NAN;
    }
    return;
  }
  best = block_argmax(best, scratch_a);
  if (ref) ref_best = block_argmax(ref_best, scratch_a);

  double sum = 0.0, ref_sum = 0.0;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
    sum += exp(static_cast<double>(row[c]) - best.value);
    if (ref) ref_sum += exp(static_cast<double>(ref[c]) - ref_best.value);
  }
  const double log_z = best.value + log(block_reduce(sum, SumOp{}, 0.0, scratch_d));
  if (threadIdx.x == 0) nll[i] = log_z - row[tokens[j]];
  if (!ref) return;  // uniform

  const double ref_log_z = ref_best.value + log(block_reduce(ref_sum, SumOp{}, 0.0, scratch_d));
  double kl_sum = 0.0;
  for (int c = threadIdx.x; c < vocab; c += blockDim.x) {
    const double log_p = ref[c] - ref_log_z, log_q = row[c] - log_z;
    kl_sum += exp(log_p) * (log_p - log_q);
  }
  kl_sum = block_reduce(kl_sum, SumOp{}, 0.0, scratch_d);
  if (threadIdx.x == 0) {
    kl[i] = kl_sum > 0.0 ? kl_sum : 0.0;  // rounding can give -1e-17 for identical rows
    top1[i] = best.index == ref_best.index;
  }
}

}  // namespace

void launch_embed(const int* tokens, const __half* embed, float* x, int rows, int dim, cudaStream_t stream) {
  embed_kernel<<<rows, kRowThreads, 0, stream>>>(tokens, embed, x, dim);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_rmsnorm(const float* x, const __half* w, __half* out, int rows, int dim, float eps, cudaStream_t stream) {
  rmsnorm_kernel<<<rows, kRowThreads, 0, stream>>>(x, w, out, dim, eps);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_rope(const __half* in, float* out, const float* cos_table, const float* sin_table, int rows, int n_heads,
                 int head_dim, bool interleaved, cudaStream_t stream) {
  const size_t pairs = static_cast<size_t>(rows) * n_heads * (head_dim / 2);
  rope_kernel<<<element_blocks(pairs), kElementThreads, 0, stream>>>(in, out, cos_table, sin_table, rows, n_heads,
                                                                      head_dim, interleaved);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_causal_attention(const float* q, const float* k, const __half* v, __half* out, int seq_len, int n_heads,
                             int n_kv_heads, int head_dim, cudaStream_t stream) {
  const dim3 grid(seq_len, n_heads);
  const size_t shared_bytes = 2 * static_cast<size_t>(head_dim) * sizeof(float);
  causal_attention_kernel<<<grid, kAttentionThreads, shared_bytes, stream>>>(
      q, k, v, out, n_heads, n_kv_heads, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim)));
  QB_CUDA_CHECK_LAUNCH();
}

void launch_swiglu(__half* gate, const __half* up, size_t count, cudaStream_t stream) {
  swiglu_kernel<<<element_blocks(count), kElementThreads, 0, stream>>>(gate, up, count);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_residual_add(float* x, const __half* delta, size_t count, cudaStream_t stream) {
  residual_add_kernel<<<element_blocks(count), kElementThreads, 0, stream>>>(x, delta, count);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_add_bias(__half* y, const __half* bias, int rows, int n, cudaStream_t stream) {
  const size_t count = static_cast<size_t>(rows) * n;
  add_bias_kernel<<<element_blocks(count), kElementThreads, 0, stream>>>(y, bias, count, n);
  QB_CUDA_CHECK_LAUNCH();
}

void launch_score_rows(const float* logits, const float* ref_logits, const int* tokens, int first, int count,
                       int vocab, double* nll, double* kl, uint8_t* top1, int* nonfinite, cudaStream_t stream) {
  score_rows_kernel<<<count, kRowThreads, 0, stream>>>(logits, ref_logits, tokens, first, vocab, nll, kl, top1,
                                                       nonfinite);
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace qb::gpu
