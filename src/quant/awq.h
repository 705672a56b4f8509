#pragma once
// Activation-aware weight quantization (Lin et al. 2024), the search of llm-awq's auto_scale.py and
// auto_clip.py for one transformer block, on the inputs its linear groups saw in the FP16 model.
//
// Scale search, for each scalable group (q/k/v after the attention norm; o after v, only when v
// and o have the same shape, as llm-awq; gate/up after the MLP norm; down after up):
//   s_x = mean |x| per input channel over all calibration tokens
//   for alpha in {0, 1/n_grid, ..., (n_grid-1)/n_grid}:
//     s = max(s_x^alpha, 1e-4); s /= sqrt(max(s) * min(s))
//     W_eff = Q(W diag(s)) diag(s)^-1 for every linear of the group
//     loss = mean squared error of the module output against FP16 (q/k/v: the whole attention
//            output, o_proj in FP16; gate/up: the whole MLP output; o and down: their own output)
//   keep the alpha with the lowest loss (alpha 0 is plain RTN, so the search never loses to it).
// This is the paper's s = s_x^alpha (llm-awq), not AutoAWQ's duo_scaling variant.
//
// Clip search, after the scales are folded in (scaled weights, inputs divided by s), for v, o, gate,
// up and down (q and k are skipped, as llm-awq: the q·k product makes their error hard to measure):
//   per output channel and group, max_val = r * max|w| for r in 1.0, 0.95, ..., 0.55
//   (llm-awq: n_grid 20, max_shrink 0.5 -> 10 ratios), w clamped to [-max_val, max_val],
//   error = mean over sampled tokens of (x_g · (Q(w_clamped) - w))^2 with x_g the group's slice;
//   the tokens are every (rows / 512)-th row, as llm-awq's input_feat[:, 0::n // 512].
// Both searches are GEMM-bound. Scale: each candidate forward is the CPU forward pass on a chunk of
// whole sequences (AwqOptions::forward_rows bounds the [rows, intermediate] temporaries), the
// losses summed over chunks. Clip: per ratio, the differences D = Q(clamp(W)) - W of a tile of
// output channels in one group meet the group's tokens in one GEMM, E = D_g X_g^T [rows, t], and the
// error is the row's sum of squares of E (a float GEMM against the scalar dot of llm-awq: the same
// sums in another order; tests/quant/test_awq_clip.cpp compares the choices to a scalar search).
// OpenMP: the candidate forwards use the multithreaded CPU forward pass; the weight updates
// between them run OpenMP over output channels; the clip search runs OpenMP over (tile, group)
// with one single-threaded GEMM per task.
#include <array>
#include <string>
#include <vector>

#include "model/block_linears.h"
#include "model/cpu_forward.h"
#include "quant/rtn.h"

namespace qb {

struct AwqOptions {
  QuantSpec spec;
  bool clip = true;
  int n_grid = 20;              // alpha candidates i / n_grid, and clip ratios 1 - i / n_grid
  double max_shrink = 0.5;      // clip ratios down to 1 - max_shrink (exclusive)
  int clip_sample_tokens = 512;
  // Rows (whole sequences, at least one) per candidate forward in the scale search: its
  // temporaries are [forward_rows, intermediate_size] floats; the search's result does not depend on it.
  int forward_rows = 8192;
};

// Per-input-channel scales of each scalable group; an empty vector means the group is not scaled.
struct BlockScales {
  std::vector<float> qkv;      // [hidden_size]
  std::vector<float> o;        // [n_heads*head_dim], empty when v/o shapes differ (GQA)
  std::vector<float> gate_up;  // [hidden_size]
  std::vector<float> down;     // [intermediate_size]
};

// The steps that decide the grid, shared by the CPU search and the GPU one (src/gpu) so both see
// bit-identical candidates: s_x = mean |x| per input channel of x [rows, k] (summed in double);
// an alpha's scales s = max(s_x^alpha, 1e-4) / sqrt(max(s) * min(s)); and the clip search's
// tokens, every_nth_row(x, cols, clip_sample_tokens, s), as llm-awq's input_feat[:, 0::n // n_sample_token].
std::vector<float> awq_input_mean(const std::vector<float>& x, int k);
std::vector<float> awq_alpha_scales(const std::vector<float>& x_mean, double alpha);
// Every (rows / n_rows)-th row of x [rows, cols] (step at least 1), divided by col_scale (may be
// null); n_sampled receives how many. Also the quantizers' samples for their error reports.
std::vector<float> every_nth_row(const std::vector<float>& x, int cols, int n_rows, const std::vector<float>* col_scale,
                                 int* n_sampled);

// Folds the scales into the block; the block's function is unchanged up to float rounding:
// attn_norm /= s_qkv and q/k/v columns *= s_qkv; v rows /= s_o and o columns *= s_o;
// mlp_norm /= s_gu and gate/up columns *= s_gu; up rows /= s_down and down columns *= s_down.
void apply_block_scales(CpuLayer& layer, const BlockScales& scales);

// Input scale (columns) and output scale (rows) of linear `index` under `scales`; nullptr for none.
const std::vector<float>* input_scale(const BlockScales& scales, int index);
const std::vector<float>* output_scale(const BlockScales& scales, int index);

struct AwqBlockResult {
  BlockScales scales;
  std::array<double, kNumLinears> alpha;  // chosen alpha per linear; -1 when its group was not scaled
  CpuLayer scaled;                        // the block with scales folded in, FP32, before quantization
  // [out, n_groups] clip thresholds on the scaled weights; empty: not clipped.
  std::array<std::vector<float>, kNumLinears> clip_max;
  std::array<double, kNumLinears> clip_ratio_mean;  // mean chosen ratio; -1 when not clipped
  double scale_seconds = 0.0, clip_seconds = 0.0;   // wall time of the two searches
};

// GEMM floating-point operations (2mnk each; attention's score and value products counted over
// whole seq_len x seq_len squares, as computed) of AWQ's work on one block: the projection of
// `quantize` and the achieved rates of the report and the benchmark are stated in them.
struct AwqBlockFlops {
  double calibration = 0.0;  // one block forward (the FP16 forward that captures the inputs)
  double scale = 0.0;        // per scaled group: the FP16 reference and n_grid candidate forwards
  double clip = 0.0;         // per clipped linear: n_ratios x 2 n k t
  double search() const { return scale + clip; }
};
AwqBlockFlops awq_block_flops(const LlamaConfig& c, int n_seq, int seq_len, const AwqOptions& options);

// llm-awq auto_clip_layer for w [n, k] (scaled) on sampled inputs x [t, k] (scaled): per output
// channel and group, the clip threshold max_abs * (1 - i / n_grid), i < max_shrink * n_grid, with
// the lowest mean over the tokens of (x_g · (Q(w_clamped) - w))^2; the first of equal errors, and
// no clipping when every error is above 1e9 or not a number (llm-awq's initial min_errs).
// Returns [n, n_groups] thresholds; *ratio_mean receives the mean chosen ratio.
std::vector<float> awq_search_clip(const float* w, int n, int k, const float* x, int t, const AwqOptions& options,
                                   double* ratio_mean);

// Searches scales (and clips when options.clip) for one block from `inputs`, the linear inputs
// captured from the FP16 block for n_seq sequences of seq_len tokens.
AwqBlockResult awq_search_block(const LlamaConfig& c, const CpuLayer& fp16, const BlockInputs& inputs, int n_seq,
                                int seq_len, const AwqOptions& options);

}  // namespace qb
