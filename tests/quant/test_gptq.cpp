// GPTQ (quant/gptq.h) against a naive float64 implementation of the same algorithm (no lazy
// batches, its own Cholesky and inverse), and against RTN on the objective GPTQ minimizes,
// ||X W^T - X W_q^T||^2 on the calibration inputs: on random data and, with the shared data, on
// every linear of stories-d256-l2 calibrated on TinyStories training text.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "common/error.h"
#include "common/half.h"
#include "datasets/tokenizer.h"
#include "model/load.h"
#include "quant/gptq.h"
#include "quant/quantize.h"
#include "test_support.h"

using namespace qb;

namespace {

using Matrix = std::vector<double>;  // row-major

// Lower L with A = L L^T (A [k, k] symmetric positive definite).
Matrix cholesky_lower(const Matrix& a, int k) {
  Matrix l(a.size(), 0.0);
  for (int j = 0; j < k; ++j) {
    double d = a[j * k + j];
    for (int p = 0; p < j; ++p) d -= l[j * k + p] * l[j * k + p];
    REQUIRE(d > 0);
    l[j * k + j] = std::sqrt(d);
    for (int i = j + 1; i < k; ++i) {
      double s = a[i * k + j];
      for (int p = 0; p < j; ++p) s -= l[i * k + p] * l[j * k + p];
      l[i * k + j] = s / l[j * k + j];
    }
  }
  return l;
}

// A^-1 by Gauss-Jordan elimination with partial pivoting.
Matrix inverse(Matrix a, int k) {
  Matrix inv(a.size(), 0.0);
  for (int i = 0; i < k; ++i) inv[i * k + i] = 1.0;
  for (int c = 0; c < k; ++c) {
    int pivot = c;
    for (int r = c + 1; r < k; ++r)
      if (std::fabs(a[r * k + c]) > std::fabs(a[pivot * k + c])) pivot = r;
    for (int j = 0; j < k; ++j) {
      std::swap(a[c * k + j], a[pivot * k + j]);
      std::swap(inv[c * k + j], inv[pivot * k + j]);
    }
    const double p = a[c * k + c];
    for (int j = 0; j < k; ++j) {
      a[c * k + j] /= p;
      inv[c * k + j] /= p;
    }
    for (int r = 0; r < k; ++r) {
      if (r == c) continue;
      const double f = a[r * k + c];
      for (int j = 0; j < k; ++j) {
        a[r * k + j] -= f * a[c * k + j];
        inv[r * k + j] -= f * inv[c * k + j];
      }
    }
  }
  return inv;
}

// The algorithm of gptq.h column by column, every update applied at once, in float64. The grid is
// RTN's (quantize_group / grid_code), shared by design.
QuantizedWeight naive_gptq(const std::vector<float>& w_in, int n, int k, const std::vector<float>& x, int rows,
                           const QuantSpec& spec, double damp, bool act_order) {
  Matrix h(static_cast<size_t>(k) * k, 0.0);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < k; ++j) h[i * k + j] += 2.0 * x[r * k + i] * x[r * k + j] / rows;
  Matrix w(w_in.begin(), w_in.end());
  for (int i = 0; i < k; ++i)
    if (h[i * k + i] == 0.0) {
      h[i * k + i] = 1.0;
      for (int o = 0; o < n; ++o) w[o * k + i] = 0.0;
    }
  const int group = spec.group_for(k), n_groups = (k + group - 1) / group;
  QuantizedWeight q;
  q.allocate(n, k, spec.bits, group);
  q.symmetric = spec.symmetric;
  auto params = [&](int o, int g, const std::vector<float>& values) {
    REQUIRE(quantize_group(values.data(), static_cast<int>(values.size()), spec, 0.0f, nullptr, &q.scales[g * n + o],
                           &q.zeros[g * n + o], nullptr));
  };
  if (act_order)
    for (int o = 0; o < n; ++o)
      for (int g = 0; g < n_groups; ++g) {
        std::vector<float> values;
        for (int i = g * group; i < std::min(k, (g + 1) * group); ++i)
          values.push_back(static_cast<float>(w[o * k + i]));
        params(o, g, values);
      }
  std::vector<int> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int a, int b) { return h[a * k + a] > h[b * k + b]; });
  Matrix hp(h.size()), wp(w.size());
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) hp[i * k + j] = h[perm[i] * k + perm[j]];
  for (int o = 0; o < n; ++o)
    for (int i = 0; i < k; ++i) wp[o * k + i] = w[o * k + perm[i]];
  double mean = 0.0;
  for (int i = 0; i < k; ++i) mean += hp[i * k + i] / k;
  for (int i = 0; i < k; ++i) hp[i * k + i] += damp * mean;
  const Matrix l = cholesky_lower(inverse(hp, k), k);  // H^-1 = L L^T = U^T U with U = L^T
  auto u = [&](int i, int j) { return l[j * k + i]; };
  for (int i = 0; i < k; ++i) {
    const int channel = perm[i], g = channel / group;
    for (int o = 0; o < n; ++o) {
      if (!act_order && i % group == 0) {
        std::vector<float> values;
        for (int j = i; j < std::min(k, i + group); ++j) values.push_back(static_cast<float>(wp[o * k + j]));
        params(o, g, values);
      }
      const float scale = half_to_float(q.scales[g * n + o]);
      const int zero = q.zeros[g * n + o];
      const float code = grid_code(static_cast<float>(wp[o * k + i]), scale, zero, spec.max_code());
      q.set_code(o, channel, static_cast<uint8_t>(code));
      const double err = (wp[o * k + i] - (code - zero) * static_cast<double>(scale)) / u(i, i);
      for (int j = i + 1; j < k; ++j) wp[o * k + j] -= err * u(i, j);
    }
  }
  return q;
}

// ||X W^T - X W_hat^T||^2 in float64.
double objective(const std::vector<float>& x, int rows, const std::vector<float>& w, const std::vector<float>& w_hat,
                 int n, int k) {
  double sum = 0.0;
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < n; ++o) {
      double d = 0.0;
      for (int i = 0; i < k; ++i) d += static_cast<double>(x[r * k + i]) * (w[o * k + i] - w_hat[o * k + i]);
      sum += d * d;
    }
  return sum;
}

// Correlated inputs with uneven channel scales (what makes GPTQ's error feedback pay off), one
// channel never active (a dead column), and weights ~ N(0, 1).
struct Layer {
  int n, k, rows;
  std::vector<float> x, w;
};
Layer random_layer(int n, int k, int rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Layer l{n, k, rows, std::vector<float>(static_cast<size_t>(rows) * k),
          std::vector<float>(static_cast<size_t>(n) * k)};
  const int latent = k / 3;
  std::vector<float> mix(static_cast<size_t>(latent) * k), scale(k);
  for (float& v : mix) v = normal(rng);
  for (int i = 0; i < k; ++i) scale[i] = std::exp(normal(rng));
  for (int r = 0; r < rows; ++r) {
    std::vector<float> z(latent);
    for (float& v : z) v = normal(rng);
    for (int i = 0; i < k; ++i) {
      float s = 0.3f * normal(rng);
      for (int p = 0; p < latent; ++p) s += z[p] * mix[p * k + i];
      l.x[static_cast<size_t>(r) * k + i] = i == 5 ? 0.0f : s * scale[i];
    }
  }
  for (float& v : l.w) v = normal(rng);
  return l;
}

void check_against_naive(const Layer& l, const GptqOptions& options) {
  const std::vector<double> h = gptq_hessian(l.x.data(), l.rows, l.k);
  const GptqLayerResult fast = gptq_quantize(l.w.data(), l.n, l.k, h, options, "test");
  const QuantizedWeight naive = naive_gptq(l.w, l.n, l.k, l.x, l.rows, options.spec, options.damp_percent,
                                           options.act_order);
  CHECK(fast.dead_columns == 1);
  CHECK(fast.weight.g_idx.empty());
  int differ = 0, far = 0;
  for (int o = 0; o < l.n; ++o)
    for (int i = 0; i < l.k; ++i) {
      const int d = std::abs(int(fast.weight.code(o, i)) - int(naive.code(o, i)));
      differ += d != 0;
      far += d > 1;
    }
  const int codes = l.n * l.k;
  INFO("codes differing from the float64 reference: " << differ << " of " << codes);
  CHECK(far == 0);
  CHECK(differ <= codes / 100);
  const double obj_fast = objective(l.x, l.rows, l.w, fast.weight.dequantize(), l.n, l.k);
  const double obj_naive = objective(l.x, l.rows, l.w, naive.dequantize(), l.n, l.k);
  INFO("objective: fast " << obj_fast << ", float64 reference " << obj_naive);
  CHECK(std::fabs(obj_fast - obj_naive) <= 0.01 * obj_naive);
}

}  // namespace

TEST_CASE("GPTQ matches a naive float64 implementation (out 24, in 96, group 32; group 48 straddles blocks of 64)") {
  const Layer l = random_layer(24, 96, 300, 7);
  GptqOptions o;
  o.spec = {4, 32, false};
  SECTION("asymmetric") { check_against_naive(l, o); }
  SECTION("symmetric, 3-bit") {
    o.spec = {3, 32, true};
    check_against_naive(l, o);
  }
  SECTION("act-order, static groups") {
    o.act_order = true;
    check_against_naive(l, o);
  }
  SECTION("group 48, blocks of 64: rounded to whole groups") {
    o.spec = {4, 48, false};
    o.block_size = 64;
    check_against_naive(l, o);
  }
  SECTION("per output channel") {
    o.spec = {4, -1, false};
    o.block_size = 40;
    check_against_naive(l, o);
  }
}

TEST_CASE("GPTQ's objective is lower than RTN's on the calibration inputs") {
  const Layer l = random_layer(24, 96, 300, 11);
  for (bool act_order : {false, true}) {
    GptqOptions o;
    o.spec = {3, 32, false};
    o.act_order = act_order;
    const GptqLayerResult g = gptq_quantize(l.w.data(), l.n, l.k, gptq_hessian(l.x.data(), l.rows, l.k), o, "test");
    std::vector<float> rtn(l.w.size());
    fake_quantize(l.w.data(), l.n, l.k, o.spec, rtn.data());
    const double obj_gptq = objective(l.x, l.rows, l.w, g.weight.dequantize(), l.n, l.k);
    const double obj_rtn = objective(l.x, l.rows, l.w, rtn, l.n, l.k);
    INFO("act_order " << act_order << ": gptq " << obj_gptq << ", rtn " << obj_rtn);
    CHECK(obj_gptq < 0.8 * obj_rtn);
  }
}

TEST_CASE("GPTQ refuses what it cannot do, in one line naming the layer") {
  const Layer l = random_layer(8, 16, 4, 3);  // 4 rows < 16 channels: H singular
  GptqOptions o;
  o.damp_percent = 0.0;
  const std::vector<double> h = gptq_hessian(l.x.data(), l.rows, l.k);
  CHECK_THROWS_WITH(gptq_quantize(l.w.data(), l.n, l.k, h, o, "layers.0.q"),
                    Catch::StartsWith("layers.0.q: the dampened Hessian is not positive definite"));
  o.damp_percent = 0.01;
  CHECK_NOTHROW(gptq_quantize(l.w.data(), l.n, l.k, h, o, "layers.0.q"));
  CHECK_THROWS_WITH(gptq_quantize(l.w.data(), l.n, l.k, std::vector<double>(10), o, "layers.0.q"),
                    Catch::StartsWith("layers.0.q: Hessian has 10 entries"));
}

TEST_CASE("stories-d256-l2: GPTQ beats RTN on every linear's calibration outputs, and states its chain") {
  for (const char* f : {"models/stories-d256-l2/config.json", "models/stories-d256-l2/tokenizer.model",
                        "text/tinystories/tinystories_train_head.txt"})
    if (const std::string why = test::require_data(f); !why.empty()) {
      WARN("SKIPPED: " << why);
      return;
    }
  const auto tok = open_tokenizer(test::data_file("models/stories-d256-l2/tokenizer.model"));
  const Model fp16 = to_fp16(load_model(test::data_file("models/stories-d256-l2")));
  QuantizeOptions o;
  o.bits = 3;
  o.group_size = 64;
  o.calib_path = test::data_file("text/tinystories/tinystories_train_head.txt");
  o.calib_samples = 16;
  o.calib_seq_len = 128;
  for (MethodFamily f : {MethodFamily::Rtn, MethodFamily::Awq, MethodFamily::Gptq}) {
    o.family = f;
    const QuantizeResult r = quantize_model(fp16, o, tok.get());
    CHECK(r.quantization["seconds"].get<double>() > 0.0);
    if (f == MethodFamily::Awq) {  // for comparison; AWQ's inputs are the FP16 chain's
      double rtn = 0.0, awq = 0.0;
      for (const auto& l : r.layers) {
        rtn += l["output_error_rtn"].get<double>();
        awq += l["output_error"].get<double>();
      }
      WARN("awq: mean relative output error over linears: rtn " << rtn / 14 << ", awq " << awq / 14 << "; "
                                                                << r.quantization["seconds"] << " s");
    }
    if (f != MethodFamily::Gptq) {
      if (f == MethodFamily::Rtn) WARN("rtn: " << r.quantization["seconds"] << " s");
      continue;
    }
    CHECK(r.quantization["calibration"]["chain"] == "quantized");
    CHECK(r.layers.size() == 2 * 7);
    double rtn = 0.0, gptq = 0.0;
    for (const auto& l : r.layers) {
      INFO(l.dump());
      CHECK(l["output_error"].get<double>() < l["output_error_rtn"].get<double>());
      rtn += l["output_error_rtn"].get<double>();
      gptq += l["output_error"].get<double>();
    }
    WARN("gptq: mean relative output error over linears: rtn " << rtn / 14 << ", gptq " << gptq / 14 << "; "
                                                                 << r.quantization["seconds"] << " s");
    for (const auto& b : r.blocks) CHECK(b["output_error"].get<double>() < b["output_error_rtn"].get<double>());
  }
}
