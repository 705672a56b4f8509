#pragma once
// GPTQ (Frantar et al. 2023), the per-layer quantizer of IST-DASLab/gptq gptq.py (fasterquant) and
// AutoGPTQ v0.7 quantization/gptq.py, for a linear layer W [n, k] whose calibration inputs X
// [N, k] give the Hessian of the layer's output error ||X W^T - X W_q^T||^2:
//
//   H = 2/N X^T X                         (the result does not depend on H's scale)
//   dead columns (H[i][i] == 0): H[i][i] = 1, W[:, i] = 0
//   act-order (desc_act): columns in descending H[i][i] order; static groups: every group's
//     scale/zero computed first from the un-updated W, so g_idx stays i / group_size
//   H += damp * mean(diag H) * I          (damp_percent 1%)
//   U = cholesky(H^-1), upper (H^-1 = U^T U)
//   for each column i, in blocks of 128 columns (lazy batch updates):
//     at a group start (no act-order): scale/zero of the group from the current, updated W
//     q = Q(W[:, i]);  err = (W[:, i] - q) / U[i][i];  W[:, j>i] -= err * U[i][j]
//     (inside a block at once; columns after the block by one GEMM when the block ends)
//
// The grid is RTN's (quant/rtn.h: scale from the group's [min, max] rounded to FP16, asymmetric by
// default, or symmetric), so a GPTQ weight is a plain QuantizedWeight and GPTQ vs RTN isolates the
// error feedback. The reference's own quantizer differs: its range always includes 0.
// One more difference: when a group starts inside a block (group_size < 128), the reference finds
// its scale/zero from W before the block's pending updates; here blocks are sized so that groups
// never straddle a block end (blocks of 128 rounded to whole groups), and the scale/zero come from
// the fully updated weights, as in the plain (unblocked) algorithm. For group_size 128 or any
// multiple of it the two agree.
// The Hessian accumulation and Cholesky factorizations run in double (OpenBLAS LAPACK); the
// weight updates in float, as the reference does on the GPU.
#include <string>
#include <vector>

#include "quant/rtn.h"

namespace qb {

struct GptqOptions {
  QuantSpec spec;
  double damp_percent = 0.01;  // of the mean of diag(H), added to the diagonal
  bool act_order = false;      // desc_act, with static groups (g_idx stays i / group_size)
  int block_size = 128;        // columns per lazy batch update (rounded to whole groups)
};

// H [k, k] (row-major, symmetric) = 2/rows X^T X for X [rows, k].
std::vector<double> gptq_hessian(const float* x, long rows, int k);

struct GptqLayerResult {
  QuantizedWeight weight;
  int dead_columns = 0;  // input channels no calibration token activates
};

// Quantizes W [n, k] (row-major) against `hessian` [k, k] (from gptq_hessian). Throws qb::Error
// naming `name` when H + damp is not positive definite or a group scale is not a finite FP16 number.
GptqLayerResult gptq_quantize(const float* w, int n, int k, const std::vector<double>& hessian,
                              const GptqOptions& options, const std::string& name);

}  // namespace qb
