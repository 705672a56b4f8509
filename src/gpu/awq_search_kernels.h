#pragma once
// The FP32 element-wise, softmax and reduction kernels of the GPU AWQ search
// (src/gpu/awq_search_cuda.h); the GEMMs are cuBLAS sgemm. Unlike forward_kernels.h (FP16
// activations, the inference path), everything here is float32 as the CPU forward pass
// (model/cpu_forward.h) that the CPU search runs, so that both searches see the same losses up to
// summation order. Launchers check their launch; they do not synchronise. Plain C++ header.
#include <cuda_runtime_api.h>

#include <cstddef>

namespace qb::gpu {

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (sum of squares in double, as the CPU's rmsnorm);
// x, out [rows, dim], w [dim].
void launch_rmsnorm_f32(const float* x, const float* w, float* out, int rows, int dim, float eps, cudaStream_t stream);

// x[i] += delta[i]; x, delta [count].
void launch_add_f32(float* x, const float* delta, size_t count, cudaStream_t stream);

// y[r][i] += bias[i]; y [rows, n].
void launch_add_bias_f32(float* y, const float* bias, int rows, int n, cudaStream_t stream);

// RoPE in place on x [rows, n_heads * head_dim], row r at position r % seq_len (n_seq sequences
// back to back); cos_table, sin_table [seq_len, head_dim / 2] (angles as the CPU computes them).
void launch_rope_f32(float* x, const float* cos_table, const float* sin_table, int rows, int seq_len, int n_heads,
                     int head_dim, bool interleaved, cudaStream_t stream);

// Causal softmax of score rows [batch * seq_len, seq_len] (batch blocks of seq_len x seq_len): row r
// is query t = r % seq_len; entries 0..t become softmax, entries past t zero (CPU attention()).
void launch_causal_softmax_f32(float* scores, int rows, int seq_len, cudaStream_t stream);

// gate[i] = silu(gate[i]) * up[i]; gate, up [count].
void launch_swiglu_f32(float* gate, const float* up, size_t count, cudaStream_t stream);

// *sum = sum_i (a[i] - b[i])^2 in double, deterministic (fixed per-block partials, then one block
// adds them in order). partials: kSquaredDifferencePartials doubles of scratch.
constexpr int kSquaredDifferencePartials = 1024;
void launch_sum_squared_difference(const float* a, const float* b, size_t count, double* partials, double* sum,
                                   cudaStream_t stream);

// The clip search's bookkeeping, per (output channel o, group g), index o * n_groups + g.
// init: best_err = 1e9 (llm-awq's initial min_errs), best_max = threshold_at_1 (max|w|), ratio 1.
void launch_clip_search_init(const float* threshold_at_1, int count, double* best_err, float* best_max,
                             float* best_ratio, cudaStream_t stream);
// err[o, g] = sum_r e[b][r][o]^2 / t for the batch b = g - first_group of error products
// e [batch][t][n] (e[b] = X_g D_g^T); where err < best_err: best_err = err, best_max = threshold[o, g],
// best_ratio = ratio (strictly less: the first ratio wins ties, as on the CPU).
void launch_clip_error_update(const float* e, int t, int n, int first_group, int batch, int n_groups, float ratio,
                              const float* threshold, double* best_err, float* best_max, float* best_ratio,
                              cudaStream_t stream);

}  // namespace qb::gpu
