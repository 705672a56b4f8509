#include "quant/gptq.h"

#include <cblas.h>
#include <f77blas.h>  // OpenBLAS's LAPACK: dpotrf_, dpotri_

#include <algorithm>
#include <cmath>
#include <numeric>

#include "common/error.h"
#include "common/half.h"

namespace qb {

namespace {

constexpr long kHessianChunkRows = 4096;  // X rows per float32 SYRK, summed into the double H

// LAPACK on a row-major symmetric [k, k] matrix seen as column-major (the same matrix): the
// column-major lower triangle is the row-major upper one. Returns LAPACK's info (0: success).
int lapack_cholesky(std::vector<double>& a, int k) {  // row-major upper U with A = U^T U
  char uplo = 'L';
  blasint n = k, lda = k, info = 0;
  dpotrf_(&uplo, &n, a.data(), &lda, &info);
  return static_cast<int>(info);
}
int lapack_inverse_from_cholesky(std::vector<double>& a, int k) {  // row-major upper triangle of A^-1
  char uplo = 'L';
  blasint n = k, lda = k, info = 0;
  dpotri_(&uplo, &n, a.data(), &lda, &info);
  return static_cast<int>(info);
}

// Columns per lazy batch: options.block_size, rounded so that no group starting inside a block
// ends past it (its scale/zero then see all earlier updates; see gptq.h).
int block_columns(int block_size, int group, int k, bool act_order) {
  if (act_order || group >= k || group % block_size == 0) return block_size;
  return group < block_size ? group * (block_size / group) : group;
}

}  // namespace

std::vector<double> gptq_hessian(const float* x, long rows, int k) {
  if (rows < 1 || k < 1) fail("gptq", "Hessian of an empty calibration set");
  std::vector<double> h(static_cast<size_t>(k) * k, 0.0);
  std::vector<float> part(h.size());
  for (long r0 = 0; r0 < rows; r0 += kHessianChunkRows) {
    const int m = static_cast<int>(std::min(kHessianChunkRows, rows - r0));
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, m, 1.0f, x + r0 * k, k, 0.0f, part.data(), k);
    for (int i = 0; i < k; ++i)
      for (int j = i; j < k; ++j) h[static_cast<size_t>(i) * k + j] += part[static_cast<size_t>(i) * k + j];
  }
  const double scale = 2.0 / static_cast<double>(rows);
  for (int i = 0; i < k; ++i)
    for (int j = i; j < k; ++j) {
      h[static_cast<size_t>(i) * k + j] *= scale;
      h[static_cast<size_t>(j) * k + i] = h[static_cast<size_t>(i) * k + j];
    }
  return h;
}

GptqLayerResult gptq_quantize(const float* w_in, int n, int k, const std::vector<double>& hessian,
                              const GptqOptions& options, const std::string& name) {
  const QuantSpec& spec = options.spec;
  check_quant_spec(spec, name);
  if (hessian.size() != static_cast<size_t>(k) * k)
    fail(name, "Hessian has " + std::to_string(hessian.size()) + " entries, not in_features^2 = " +
                   std::to_string(static_cast<size_t>(k) * k));
  if (!(options.damp_percent >= 0 && std::isfinite(options.damp_percent)))
    fail(name, "GPTQ dampening " + std::to_string(options.damp_percent) + " is not a number >= 0");
  if (options.block_size < 1) fail(name, "GPTQ block size " + std::to_string(options.block_size) + " < 1");
  const bool act_order = options.act_order;
  const int group = spec.group_for(k), max_code = spec.max_code();
  GptqLayerResult result;
  QuantizedWeight& qw = result.weight;
  qw.allocate(n, k, spec.bits, group);
  qw.symmetric = spec.symmetric;
  const int n_groups = qw.n_groups();

  std::vector<double> h = hessian;
  std::vector<float> w(w_in, w_in + static_cast<size_t>(n) * k);  // [n, k], updated in place
  for (int i = 0; i < k; ++i)
    if (h[static_cast<size_t>(i) * k + i] == 0.0) {
      h[static_cast<size_t>(i) * k + i] = 1.0;
      for (int o = 0; o < n; ++o) w[static_cast<size_t>(o) * k + i] = 0.0f;
      ++result.dead_columns;
    }

  // The scale/zero of group g of row o from `len` values of that row.
  auto find_group_params = [&](int o, int g, const float* values, int len) {
    return quantize_group(values, len, spec, 0.0f, nullptr, &qw.scales[static_cast<size_t>(g) * n + o],
                          &qw.zeros[static_cast<size_t>(g) * n + o], nullptr);
  };
  int bad_row = n;
  auto check_rows = [&] {
    if (bad_row < n)
      fail(name, "output channel " + std::to_string(bad_row) + ": a group scale is not a finite FP16 number "
                 "(non-finite weights, or a range beyond FP16)");
  };
  if (act_order) {  // static groups, from the weights before any update
#pragma omp parallel for schedule(static) reduction(min : bad_row)
    for (int o = 0; o < n; ++o)
      for (int g = 0; g < n_groups; ++g)
        if (!find_group_params(o, g, &w[static_cast<size_t>(o) * k + g * group], std::min(group, k - g * group)))
          bad_row = std::min(bad_row, o);
    check_rows();
  }

  // perm[i]: the input channel processed i-th. Act-order: descending diag(H), ties in channel order.
  std::vector<int> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order) {
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) {
      return h[static_cast<size_t>(a) * k + a] > h[static_cast<size_t>(b) * k + b];
    });
    std::vector<float> wp(w.size());
    for (int o = 0; o < n; ++o)
      for (int i = 0; i < k; ++i) wp[static_cast<size_t>(o) * k + i] = w[static_cast<size_t>(o) * k + perm[i]];
    w.swap(wp);
    std::vector<double> hp(h.size());
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) hp[static_cast<size_t>(i) * k + j] = h[static_cast<size_t>(perm[i]) * k + perm[j]];
    h.swap(hp);
  }

  double diag_mean = 0.0;
  for (int i = 0; i < k; ++i) diag_mean += h[static_cast<size_t>(i) * k + i];
  diag_mean /= k;
  for (int i = 0; i < k; ++i) h[static_cast<size_t>(i) * k + i] += options.damp_percent * diag_mean;
  const std::string not_pd = "the dampened Hessian is not positive definite (LAPACK info ";
  const std::string raise = "); raise the GPTQ dampening";
  if (const int info = lapack_cholesky(h, k)) fail(name, not_pd + std::to_string(info) + raise);
  if (const int info = lapack_inverse_from_cholesky(h, k)) fail(name, not_pd + std::to_string(info) + raise);
  if (const int info = lapack_cholesky(h, k)) fail(name, not_pd + std::to_string(info) + raise);
  std::vector<float> u(h.size(), 0.0f);  // [k, k] upper: H^-1 = U^T U
  for (int r = 0; r < k; ++r)
    for (int c = r; c < k; ++c) {
      const size_t at = static_cast<size_t>(r) * k + c;
      u[at] = static_cast<float>(h[at]);
    }

  const int block = block_columns(options.block_size, group, k, act_order);
  std::vector<float> err(static_cast<size_t>(n) * block);  // [n, block] scaled errors of the block's columns
  for (int i1 = 0; i1 < k; i1 += block) {
    const int i2 = std::min(i1 + block, k);
    // Rows are independent (H is shared, updates mix columns only): OpenMP over output channels.
#pragma omp parallel for schedule(static) reduction(min : bad_row)
    for (int o = 0; o < n; ++o) {
      float* row = &w[static_cast<size_t>(o) * k];
      float* e = &err[static_cast<size_t>(o) * block];
      int grid_group = -1;  // the group whose scale/zero are loaded
      float scale = 0.0f;
      int zero = 0;
      for (int i = i1; i < i2; ++i) {
        const int channel = perm[i], g = channel / group;
        if (!act_order && i % group == 0 && !find_group_params(o, g, row + i, std::min(group, k - i))) {
          bad_row = std::min(bad_row, o);
          break;
        }
        if (g != grid_group) {
          scale = half_to_float(qw.scales[static_cast<size_t>(g) * n + o]);
          zero = qw.zeros[static_cast<size_t>(g) * n + o];
          grid_group = g;
        }
        const float code = grid_code(row[i], scale, zero, max_code);
        qw.set_code(o, channel, static_cast<uint8_t>(code));  // rows never share a byte: thread-safe
        const float e_i = (row[i] - (code - static_cast<float>(zero)) * scale) / u[static_cast<size_t>(i) * k + i];
        e[i - i1] = e_i;
        const float* u_row = &u[static_cast<size_t>(i) * k];
        for (int j = i + 1; j < i2; ++j) row[j] -= e_i * u_row[j];
      }
    }
    check_rows();
    // The lazy batch update: W[:, i2:] -= E [n, i2-i1] · U[i1:i2, i2:].
    if (i2 < k)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, k - i2, i2 - i1, -1.0f, err.data(), block,
                  u.data() + static_cast<size_t>(i1) * k + i2, k, 1.0f, w.data() + i2, k);
  }
  return result;
}

}  // namespace qb
