#include "gpu/awq_search_cuda.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/interrupt.h"
#include "gpu/awq_search_kernels.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_resources.h"
#include "kernels/fake_quant.h"
#include "kernels/gemm_fp16.h"
#include "model/block_linears.h"

namespace qb {
namespace {

using kernels::DeviceBuffer;

// Bounds on the two batched scratch products, so that a 70B block with 128 x 512 calibration
// tokens stays within a few GB: attention scores of a batch of sequences, and the clip search's
// E = X_g D_g^T of a batch of groups.
constexpr size_t kScoreBytes = size_t(1) << 30;
constexpr size_t kErrorBytes = size_t(1) << 30;

// Grows `buffer` to at least `bytes` (contents not kept): every block of a model has the same
// shapes, so after the first block nothing is allocated.
void reserve(DeviceBuffer& buffer, size_t bytes) {
  if (buffer.bytes() >= bytes) return;
  buffer = DeviceBuffer{};
  buffer = DeviceBuffer(bytes);
}

class CudaAwqSearch {
 public:
  explicit CudaAwqSearch(int device) : device_(device) {
    QB_CUDA_CHECK(cudaSetDevice(device));
    stream_ = std::make_unique<kernels::CudaStream>();
    cublas_ = std::make_unique<kernels::CublasHandle>();
    QB_CUBLAS_CHECK(cublasSetStream(cublas_->get(), stream_->get()));
    partials_ = DeviceBuffer(gpu::kSquaredDifferencePartials * sizeof(double));
    loss_ = DeviceBuffer(sizeof(double));
    bad_row_ = DeviceBuffer(sizeof(int));
  }

  AwqBlockResult search(const LlamaConfig& c, const CpuLayer& fp16, const BlockInputs& in, int n_seq, int seq_len,
                        const AwqOptions& options);
  void block_forward(const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                     BlockInputs* capture);

 private:
  // Weights the module forwards read: fp16_ (the block as given) or candidate_ for the searched group.
  using WeightSet = std::array<const float*, kNumLinears>;

  cudaStream_t stream() const { return stream_->get(); }
  void upload(DeviceBuffer& buffer, const float* host, size_t count);
  void upload(DeviceBuffer& buffer, const std::vector<float>& host) { upload(buffer, host.data(), host.size()); }
  std::vector<float> download(const DeviceBuffer& buffer, size_t count);
  // Scratch and RoPE tables for n_seq x seq_len tokens of config c, then the block's weights.
  void prepare_shapes(const LlamaConfig& c, int n_seq, int seq_len);
  void upload_weights(const CpuLayer& layer);
  // y[m, n] = x[m, k] · W^T (row-major, W [n, k]), FP32.
  void linear(float* y, const float* x, const float* w, int m, int n, int k);
  // The module output of each scalable group into out_ [rows, dim].
  void attention_out(const WeightSet& w);
  void mlp_out(const WeightSet& w);
  void o_out(const WeightSet& w);
  void down_out(const WeightSet& w);
  double mean_squared_error(const float* a, const float* b, size_t count);
  void reset_bad_row(int n);
  void check_bad_row(int n, const std::string& where);
  // One group's scale search (llm-awq _search_module_scale).
  std::vector<float> search_scales(const std::vector<int>& members, const std::vector<float>& x, int k,
                                   void (CudaAwqSearch::*forward)(const WeightSet&), const AwqOptions& options,
                                   double* alpha);
  // One linear's clip search (llm-awq auto_clip_layer) on the scaled weight.
  std::vector<float> search_clip(const std::vector<float>& w, int n, int k, const std::vector<float>& x, int t,
                                 const AwqOptions& options, double* ratio_mean);

  int device_;
  std::unique_ptr<kernels::CudaStream> stream_;
  std::unique_ptr<kernels::CublasHandle> cublas_;
  DeviceBuffer partials_, loss_, bad_row_;
  // The block being searched.
  LlamaConfig config_;
  int n_seq_ = 0, seq_len_ = 0, rows_ = 0;
  DeviceBuffer attn_in_, o_in_, mlp_in_, down_in_;               // captured inputs [rows, *]
  DeviceBuffer x_, attn_norm_, mlp_norm_;                         // block_forward: residual stream, norms
  std::array<DeviceBuffer, kNumLinears> fp16_, candidate_;        // [n, k] fp32
  DeviceBuffer bq_, bk_, bv_;                                     // q/k/v biases, when present
  DeviceBuffer q_, k_, v_, att_, scores_, gate_, up_;             // module scratch
  DeviceBuffer out_, reference_;                                  // [rows, dim]
  DeviceBuffer rope_cos_, rope_sin_;                              // [seq_len, head_dim / 2]
  DeviceBuffer scale_;                                            // s [k]
  DeviceBuffer clip_w_, clip_x_, clip_d_, clip_e_, threshold_, best_err_, best_max_, best_ratio_;
  WeightSet fp16_set_{};
};

void CudaAwqSearch::upload(DeviceBuffer& buffer, const float* host, size_t count) {
  reserve(buffer, count * sizeof(float));
  if (count > 0)
    QB_CUDA_CHECK(cudaMemcpyAsync(buffer.as<void>(), host, count * sizeof(float), cudaMemcpyHostToDevice, stream()));
}

std::vector<float> CudaAwqSearch::download(const DeviceBuffer& buffer, size_t count) {
  std::vector<float> host(count);
  QB_CUDA_CHECK(cudaMemcpyAsync(host.data(), buffer.as<void>(), count * sizeof(float), cudaMemcpyDeviceToHost, stream()));
  QB_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return host;
}

void CudaAwqSearch::upload_weights(const CpuLayer& layer) {
  if (layer.f16_kv || layer.act_q != ActivationFormat::Exact)
    fail("awq (cuda)", "the block carries llama.cpp arithmetic; the device path runs float32 only");
  const auto weights = block_linears(layer);
  for (int t = 0; t < kNumLinears; ++t) {
    upload(fp16_[t], *weights[t]);
    reserve(candidate_[t], weights[t]->size() * sizeof(float));
    fp16_set_[t] = fp16_[t].as<float>();
  }
  for (auto [buffer, bias] : {std::pair{&bq_, &layer.bq}, std::pair{&bk_, &layer.bk}, std::pair{&bv_, &layer.bv}}) {
    if (bias->empty()) *buffer = DeviceBuffer{};  // attention_out adds a bias where one is held
    upload(*buffer, *bias);
  }
}

void CudaAwqSearch::prepare_shapes(const LlamaConfig& c, int n_seq, int seq_len) {
  config_ = c;
  n_seq_ = n_seq;
  seq_len_ = seq_len;
  rows_ = n_seq * seq_len;
  const size_t rows = rows_, hd = c.head_dim(), q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
  const size_t dim = c.hidden_size, inner = c.intermediate_size;
  reserve(attn_in_, rows * dim * sizeof(float));
  reserve(o_in_, rows * q_dim * sizeof(float));
  reserve(mlp_in_, rows * dim * sizeof(float));
  reserve(down_in_, rows * inner * sizeof(float));
  reserve(q_, rows * q_dim * sizeof(float));
  reserve(k_, rows * kv_dim * sizeof(float));
  reserve(v_, rows * kv_dim * sizeof(float));
  reserve(att_, rows * q_dim * sizeof(float));
  reserve(gate_, rows * inner * sizeof(float));
  reserve(up_, rows * inner * sizeof(float));
  reserve(out_, rows * dim * sizeof(float));
  reserve(reference_, rows * dim * sizeof(float));
  const size_t seqs_per_batch =
      std::clamp<size_t>(kScoreBytes / (sizeof(float) * seq_len * seq_len), 1, static_cast<size_t>(n_seq));
  reserve(scores_, seqs_per_batch * seq_len * seq_len * sizeof(float));
  // The angles as the CPU forward pass computes them: double, rounded to float.
  const size_t half = hd / 2;
  std::vector<float> cos_table(seq_len * half), sin_table(seq_len * half);
  const std::vector<double> inv_freq = rope_inv_freq(c);
  for (size_t pos = 0; pos < static_cast<size_t>(seq_len); ++pos)
    for (size_t i = 0; i < half; ++i) {
      const double angle = pos * inv_freq[i];
      cos_table[pos * half + i] = static_cast<float>(std::cos(angle));
      sin_table[pos * half + i] = static_cast<float>(std::sin(angle));
    }
  upload(rope_cos_, cos_table);
  upload(rope_sin_, sin_table);
  QB_CUDA_CHECK(cudaStreamSynchronize(stream()));  // the tables are locals
}

void CudaAwqSearch::block_forward(const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                                  BlockInputs* capture) {
  QB_CUDA_CHECK(cudaSetDevice(device_));
  prepare_shapes(c, n_seq, seq_len);
  upload_weights(layer);
  const size_t rows = rows_, dim = c.hidden_size, count = rows * dim;
  upload(x_, x, count);
  upload(attn_norm_, layer.attn_norm);
  upload(mlp_norm_, layer.mlp_norm);
  if (capture) capture->x.assign(x, x + count);
  float* xd = x_.as<float>();
  gpu::launch_rmsnorm_f32(xd, attn_norm_.as<float>(), attn_in_.as<float>(), rows_, c.hidden_size, c.rms_norm_eps,
                          stream());
  attention_out(fp16_set_);  // o_proj input in att_
  gpu::launch_add_f32(xd, out_.as<float>(), count, stream());
  gpu::launch_rmsnorm_f32(xd, mlp_norm_.as<float>(), mlp_in_.as<float>(), rows_, c.hidden_size, c.rms_norm_eps,
                          stream());
  mlp_out(fp16_set_);  // down_proj input in gate_
  gpu::launch_add_f32(xd, out_.as<float>(), count, stream());
  QB_CUDA_CHECK(cudaMemcpyAsync(x, xd, count * sizeof(float), cudaMemcpyDeviceToHost, stream()));
  if (capture) {
    const size_t q_dim = static_cast<size_t>(c.n_heads) * c.head_dim();
    capture->attn_in = download(attn_in_, count);
    capture->o_in = download(att_, rows * q_dim);
    capture->mlp_in = download(mlp_in_, count);
    capture->down_in = download(gate_, rows * c.intermediate_size);
  }
  QB_CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void CudaAwqSearch::linear(float* y, const float* x, const float* w, int m, int n, int k) {
  // Column-major view: y^T [n, m] = (W as stored, [k, n] col-major)^T · x^T [k, m].
  const float one = 1.0f, zero = 0.0f;
  QB_CUBLAS_CHECK(cublasSgemm(cublas_->get(), CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, k, x, k, &zero, y, n));
}

void CudaAwqSearch::attention_out(const WeightSet& w) {
  const LlamaConfig& c = config_;
  const int rows = rows_, dim = c.hidden_size, hd = c.head_dim();
  const int q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd, group = c.n_heads / c.n_kv_heads;
  float *q = q_.as<float>(), *k = k_.as<float>(), *v = v_.as<float>(), *att = att_.as<float>();
  linear(q, attn_in_.as<float>(), w[kQ], rows, q_dim, dim);
  linear(k, attn_in_.as<float>(), w[kK], rows, kv_dim, dim);
  linear(v, attn_in_.as<float>(), w[kV], rows, kv_dim, dim);
  if (bq_.bytes()) gpu::launch_add_bias_f32(q, bq_.as<float>(), rows, q_dim, stream());
  if (bk_.bytes()) gpu::launch_add_bias_f32(k, bk_.as<float>(), rows, kv_dim, stream());
  if (bv_.bytes()) gpu::launch_add_bias_f32(v, bv_.as<float>(), rows, kv_dim, stream());
  gpu::launch_rope_f32(q, rope_cos_.as<float>(), rope_sin_.as<float>(), rows, seq_len_, c.n_heads, hd,
                       c.rope_interleaved, stream());
  gpu::launch_rope_f32(k, rope_cos_.as<float>(), rope_sin_.as<float>(), rows, seq_len_, c.n_kv_heads, hd,
                       c.rope_interleaved, stream());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd)), one = 1.0f, zero = 0.0f;
  const long long sq = static_cast<long long>(seq_len_) * seq_len_;
  const int seqs_per_batch = static_cast<int>(scores_.bytes() / (sizeof(float) * sq));
  float* scores = scores_.as<float>();
  for (int s0 = 0; s0 < n_seq_; s0 += seqs_per_batch) {
    const int batch = std::min(seqs_per_batch, n_seq_ - s0);
    const size_t first_row = static_cast<size_t>(s0) * seq_len_;
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / group;
      const float* qh = q + first_row * q_dim + static_cast<size_t>(h) * hd;
      const float* kh = k + first_row * kv_dim + static_cast<size_t>(kvh) * hd;
      const float* vh = v + first_row * kv_dim + static_cast<size_t>(kvh) * hd;
      // S [t, u] = scale * Q_h K_h^T per sequence; column-major: S^T = K_h (op T of its stored view) · Q_h^T.
      QB_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_->get(), CUBLAS_OP_T, CUBLAS_OP_N, seq_len_, seq_len_, hd, &scale,
                                                kh, kv_dim, static_cast<long long>(seq_len_) * kv_dim, qh, q_dim,
                                                static_cast<long long>(seq_len_) * q_dim, &zero, scores, seq_len_, sq,
                                                batch));
      gpu::launch_causal_softmax_f32(scores, batch * seq_len_, seq_len_, stream());
      // O_h [t, d] = P V_h; column-major: O_h^T [d, t] = V_h^T · P^T.
      QB_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_->get(), CUBLAS_OP_N, CUBLAS_OP_N, hd, seq_len_, seq_len_, &one,
                                                vh, kv_dim, static_cast<long long>(seq_len_) * kv_dim, scores, seq_len_,
                                                sq, &zero, att + first_row * q_dim + static_cast<size_t>(h) * hd,
                                                q_dim, static_cast<long long>(seq_len_) * q_dim, batch));
    }
  }
  linear(out_.as<float>(), att, w[kO], rows, dim, q_dim);
}

void CudaAwqSearch::mlp_out(const WeightSet& w) {
  const int rows = rows_, dim = config_.hidden_size, inner = config_.intermediate_size;
  linear(gate_.as<float>(), mlp_in_.as<float>(), w[kGate], rows, inner, dim);
  linear(up_.as<float>(), mlp_in_.as<float>(), w[kUp], rows, inner, dim);
  gpu::launch_swiglu_f32(gate_.as<float>(), up_.as<float>(), static_cast<size_t>(rows) * inner, stream());
  linear(out_.as<float>(), gate_.as<float>(), w[kDown], rows, dim, inner);
}

void CudaAwqSearch::o_out(const WeightSet& w) {
  const int q_dim = config_.n_heads * config_.head_dim();
  linear(out_.as<float>(), o_in_.as<float>(), w[kO], rows_, config_.hidden_size, q_dim);
}

void CudaAwqSearch::down_out(const WeightSet& w) {
  linear(out_.as<float>(), down_in_.as<float>(), w[kDown], rows_, config_.hidden_size, config_.intermediate_size);
}

double CudaAwqSearch::mean_squared_error(const float* a, const float* b, size_t count) {
  gpu::launch_sum_squared_difference(a, b, count, partials_.as<double>(), loss_.as<double>(), stream());
  double sum = 0.0;
  QB_CUDA_CHECK(cudaMemcpyAsync(&sum, loss_.as<void>(), sizeof(double), cudaMemcpyDeviceToHost, stream()));
  QB_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return sum / static_cast<double>(count);
}

void CudaAwqSearch::reset_bad_row(int n) {
  QB_CUDA_CHECK(cudaMemcpyAsync(bad_row_.as<void>(), &n, sizeof(int), cudaMemcpyHostToDevice, stream()));
  QB_CUDA_CHECK(cudaStreamSynchronize(stream()));  // `n` is a local
}

void CudaAwqSearch::check_bad_row(int n, const std::string& where) {
  int bad = n;
  QB_CUDA_CHECK(cudaMemcpyAsync(&bad, bad_row_.as<void>(), sizeof(int), cudaMemcpyDeviceToHost, stream()));
  QB_CUDA_CHECK(cudaStreamSynchronize(stream()));
  if (bad < n)  // the CPU's fake_quantize message
    fail(where, "output channel " + std::to_string(bad) + ": a group scale is not a finite FP16 number "
                "(non-finite weights, or a range beyond FP16)");
}

std::vector<float> CudaAwqSearch::search_scales(const std::vector<int>& members, const std::vector<float>& x, int k,
                                                void (CudaAwqSearch::*forward)(const WeightSet&),
                                                const AwqOptions& options, double* alpha_out) {
  const std::string where = std::string(kBlockLinears[members[0]].hf_name) + " scale search";
  const size_t out_count = static_cast<size_t>(rows_) * config_.hidden_size;
  const std::vector<float> x_mean = awq_input_mean(x, k);
  (this->*forward)(fp16_set_);
  QB_CUDA_CHECK(cudaMemcpyAsync(reference_.as<void>(), out_.as<void>(), out_count * sizeof(float),
                                cudaMemcpyDeviceToDevice, stream()));
  WeightSet candidate = fp16_set_;
  for (int m : members) candidate[m] = candidate_[m].as<float>();
  const int group = options.spec.group_for(k);
  double best_loss = INFINITY, best_alpha = 0.0;
  std::vector<float> best;
  reset_bad_row(INT32_MAX);
  for (int step = 0; step < options.n_grid; ++step) {
    throw_if_interrupted();
    const double alpha = static_cast<double>(step) / options.n_grid;
    const std::vector<float> s = awq_alpha_scales(x_mean, alpha);
    upload(scale_, s);
    for (int m : members) {
      const int n = linear_dims(config_)[m].first;
      const kernels::FakeQuantShape shape{n, k, options.spec.bits, group, options.spec.symmetric};
      kernels::launch_fake_quantize(fp16_[m].as<float>(), scale_.as<float>(), nullptr, shape,
                                    kernels::FakeQuantOutput::Dequantized, candidate_[m].as<float>(),
                                    bad_row_.as<int>(), stream());
    }
    (this->*forward)(candidate);
    const double loss = mean_squared_error(out_.as<float>(), reference_.as<float>(), out_count);  // synchronises: `s` may go
    if (loss < best_loss) {
      best_loss = loss;
      best_alpha = alpha;
      best = s;
    }
  }
  check_bad_row(INT32_MAX, where);
  if (best.empty()) fail(where, "scale search found no finite loss (non-finite activations?)");
  *alpha_out = best_alpha;
  return best;
}

std::vector<float> CudaAwqSearch::search_clip(const std::vector<float>& w, int n, int k, const std::vector<float>& x,
                                              int t, const AwqOptions& options, double* ratio_mean) {
  const int group = options.spec.group_for(k), n_groups = (k + group - 1) / group, full_groups = k / group;
  const int n_ratios = static_cast<int>(options.max_shrink * options.n_grid);
  const size_t cells = static_cast<size_t>(n) * n_groups;
  const kernels::FakeQuantShape shape{n, k, options.spec.bits, group, options.spec.symmetric};
  upload(clip_w_, w);
  upload(clip_x_, x);
  reserve(clip_d_, w.size() * sizeof(float));
  const size_t product_bytes = static_cast<size_t>(t) * n * sizeof(float);  // one group's E
  const int groups_per_batch = static_cast<int>(std::clamp<size_t>(kErrorBytes / product_bytes, 1, n_groups));
  reserve(clip_e_, groups_per_batch * product_bytes);
  reserve(threshold_, cells * sizeof(float));
  reserve(best_err_, cells * sizeof(double));
  reserve(best_max_, cells * sizeof(float));
  reserve(best_ratio_, cells * sizeof(float));
  const float* wd = clip_w_.as<float>();
  const float* xd = clip_x_.as<float>();
  float* d = clip_d_.as<float>();
  float* e = clip_e_.as<float>();
  const float one = 1.0f, zero = 0.0f;
  kernels::launch_group_clip_thresholds(wd, shape, 1.0f, threshold_.as<float>(), stream());
  gpu::launch_clip_search_init(threshold_.as<float>(), static_cast<int>(cells), best_err_.as<double>(),
                               best_max_.as<float>(), best_ratio_.as<float>(), stream());
  reset_bad_row(n);
  // E_g [t, n] = X_g D_g^T for groups [first, first + batch) of length len; column-major:
  // E_g^T [n, t] = (D_g as stored)^T · X_g^T, consecutive groups `len` columns apart.
  auto error_products = [&](int first, int batch, int len, float ratio) {
    QB_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_->get(), CUBLAS_OP_T, CUBLAS_OP_N, n, t, len, &one,
                                              d + static_cast<size_t>(first) * group, k, group,
                                              xd + static_cast<size_t>(first) * group, k, group, &zero, e, n,
                                              static_cast<long long>(t) * n, batch));
    gpu::launch_clip_error_update(e, t, n, first, batch, n_groups, ratio, threshold_.as<float>(),
                                  best_err_.as<double>(), best_max_.as<float>(), best_ratio_.as<float>(), stream());
  };
  for (int step = 0; step < n_ratios; ++step) {
    throw_if_interrupted();
    const float ratio = 1.0f - static_cast<float>(step) / options.n_grid;  // as the CPU computes it
    kernels::launch_group_clip_thresholds(wd, shape, ratio, threshold_.as<float>(), stream());
    kernels::launch_fake_quantize(wd, nullptr, threshold_.as<float>(), shape, kernels::FakeQuantOutput::Error, d,
                                  bad_row_.as<int>(), stream());
    for (int first = 0; first < full_groups; first += groups_per_batch)
      error_products(first, std::min(groups_per_batch, full_groups - first), group, ratio);
    if (full_groups < n_groups) error_products(full_groups, 1, k - full_groups * group, ratio);
  }
  check_bad_row(n, "clip search");
  std::vector<float> clip_max = download(best_max_, cells), ratios = download(best_ratio_, cells);
  double ratio_sum = 0.0;
  for (float r : ratios) ratio_sum += r;
  *ratio_mean = ratio_sum / static_cast<double>(cells);
  return clip_max;
}

AwqBlockResult CudaAwqSearch::search(const LlamaConfig& c, const CpuLayer& fp16, const BlockInputs& in, int n_seq,
                                     int seq_len, const AwqOptions& options) {
  QB_CUDA_CHECK(cudaSetDevice(device_));
  const auto scale_start = std::chrono::steady_clock::now();
  prepare_shapes(c, n_seq, seq_len);
  upload_weights(fp16);
  upload(attn_in_, in.attn_in);
  upload(o_in_, in.o_in);
  upload(mlp_in_, in.mlp_in);
  upload(down_in_, in.down_in);
  const auto dims = linear_dims(c);
  const int dim = c.hidden_size, q_dim = dims[kO].second, inner = c.intermediate_size;
  AwqBlockResult result;
  result.alpha.fill(-1.0);
  result.clip_ratio_mean.fill(-1.0);
  auto search_group = [&](const std::vector<int>& members, const std::vector<float>& x, int k,
                          void (CudaAwqSearch::*forward)(const WeightSet&), std::vector<float>& scales_out) {
    double alpha = 0.0;
    scales_out = search_scales(members, x, k, forward, options, &alpha);
    for (int m : members) result.alpha[m] = alpha;
  };
  search_group({kQ, kK, kV}, in.attn_in, dim, &CudaAwqSearch::attention_out, result.scales.qkv);
  if (dims[kV] == dims[kO]) search_group({kO}, in.o_in, q_dim, &CudaAwqSearch::o_out, result.scales.o);
  search_group({kGate, kUp}, in.mlp_in, dim, &CudaAwqSearch::mlp_out, result.scales.gate_up);
  search_group({kDown}, in.down_in, inner, &CudaAwqSearch::down_out, result.scales.down);

  result.scaled = fp16;
  apply_block_scales(result.scaled, result.scales);
  const auto clip_start = std::chrono::steady_clock::now();
  result.scale_seconds = std::chrono::duration<double>(clip_start - scale_start).count();
  if (options.clip) {
    const auto weights = block_linears(result.scaled);
    const auto inputs = linear_inputs(in);
    for (int t : {kV, kO, kGate, kUp, kDown}) {
      const auto [n, k] = dims[t];
      int n_tokens = 0;
      const std::vector<float> x =
          every_nth_row(*inputs[t], k, options.clip_sample_tokens, input_scale(result.scales, t), &n_tokens);
      result.clip_max[t] = search_clip(*weights[t], n, k, x, n_tokens, options, &result.clip_ratio_mean[t]);
    }
  }
  result.clip_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - clip_start).count();
  return result;
}

}  // namespace

AwqDevice make_cuda_awq(int device) {
  auto state = std::make_shared<CudaAwqSearch>(device);
  AwqDevice d;
  d.block_forward = [state](const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                            BlockInputs* capture) { state->block_forward(c, layer, x, n_seq, seq_len, capture); };
  d.search = [state](const LlamaConfig& c, const CpuLayer& fp16, const BlockInputs& in, int n_seq, int seq_len,
                     const AwqOptions& options) { return state->search(c, fp16, in, n_seq, seq_len, options); };
  return d;
}

}  // namespace qb
