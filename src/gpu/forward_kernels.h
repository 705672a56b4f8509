#pragma once
// The element-wise, normalization, attention and scoring kernels of the CUDA forward pass
// (forward_kernels.cu); the GEMMs are cuBLAS and the W4A16 kernels. Plain C++ header.
//
// All activations are row-major with one row per token of ONE sequence (a window): row r is
// position r. Launchers check their launch with QB_CUDA_CHECK_LAUNCH; they do not synchronise.
// The kernels favour obviously-correct indexing over speed (one block per row, a chunked
// online-softmax attention with one block per (query, head)); the GEMMs dominate the time.
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace qb::gpu {

// x[r][d] = float(embed[tokens[r]][d]).
//   tokens [rows] int32 (validated on the host: 0 <= id < vocab), embed [vocab, dim] fp16,
//   x [rows, dim] fp32
void launch_embed(const int* tokens, const __half* embed, float* x, int rows, int dim, cudaStream_t stream);

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w, in FP32, rounded once to fp16.
//   x [rows, dim] fp32, w [dim] fp16, out [rows, dim] fp16. One block per row.
void launch_rmsnorm(const float* x, const __half* w, __half* out, int rows, int dim, float eps, cudaStream_t stream);

// Rotary position embedding of every head of `in` at position r = its row, widened to FP32.
//   in  [rows, n_heads * head_dim] fp16 (q or k projection output)
//   out [rows, n_heads * head_dim] fp32
//   cos_table, sin_table [>= rows, head_dim/2] fp32: angle(r, i) = r * rope_inv_freq(config)[i]
//   interleaved: pair i is (2i, 2i+1) (llama2.c / Meta); else (i, i + head_dim/2) (HF)
void launch_rope(const __half* in, float* out, const float* cos_table, const float* sin_table, int rows, int n_heads,
                 int head_dim, bool interleaved, cudaStream_t stream);

// Causal grouped-query attention over one sequence of seq_len tokens:
//   out[t, h] = sum_{u <= t} softmax_u(q[t, h] . k[u, h / group] / sqrt(head_dim)) v[u, h / group]
//   q   [seq_len, n_heads * head_dim]     fp32 (after RoPE)
//   k   [seq_len, n_kv_heads * head_dim]  fp32 (after RoPE)
//   v   [seq_len, n_kv_heads * head_dim]  fp16
//   out [seq_len, n_heads * head_dim]     fp16 (o_proj input)
// group = n_heads / n_kv_heads. Scores, softmax and the weighted sum in FP32.
void launch_causal_attention(const float* q, const float* k, const __half* v, __half* out, int seq_len, int n_heads,
                             int n_kv_heads, int head_dim, cudaStream_t stream);

// gate[i] = silu(gate[i]) * up[i] in FP32, rounded to fp16; gate, up [count] fp16 ([rows, intermediate_size]).
void launch_swiglu(__half* gate, const __half* up, size_t count, cudaStream_t stream);

// x[i] += float(delta[i]); x [count] fp32 (residual stream), delta [count] fp16 (o_proj/down_proj output).
void launch_residual_add(float* x, const __half* delta, size_t count, cudaStream_t stream);

// y[r][i] += bias[i] in FP32, rounded to fp16; y [rows, n] fp16 (a q/k/v projection), bias [n] fp16.
void launch_add_bias(__half* y, const __half* bias, int rows, int n, cudaStream_t stream);

// Per scored target j = first + i (i = 0 .. count-1), from logits row j - 1, in double as
// eval/metrics.cpp does on the CPU:
//   nll[i]  = logsumexp(row) - row[tokens[j]]
//   kl[i]   = KL(softmax(ref_row) || softmax(row)), clamped at 0       (only when ref_logits)
//   top1[i] = argmax(ref_row) == argmax(row), first maximum on ties   (only when ref_logits)
//   *nonfinite = 1 if any logit of a scored row of `logits` is NaN/Inf (set, never cleared)
// logits, ref_logits [>= first + count - 1, vocab] fp32; tokens [>= first + count] int32;
// nll, kl [count] double; top1 [count] uint8. One block per scored row; count >= 1.
void launch_score_rows(const float* logits, const float* ref_logits, const int* tokens, int first, int count,
                       int vocab, double* nll, double* kl, uint8_t* top1, int* nonfinite, cudaStream_t stream);

}  // namespace qb::gpu
