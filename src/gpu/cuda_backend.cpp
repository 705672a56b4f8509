#include "gpu/cuda_backend.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/half.h"
#include "common/memory.h"
#include "gpu/cuda_backend_testing.h"
#include "gpu/forward_kernels.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_resources.h"
#include "kernels/gemm_fp16.h"
#include "kernels/w4a16.h"
#include "model/block_linears.h"
#include "quant/awq_format.h"

namespace qb {
namespace {

using kernels::CudaEvent;
using kernels::CudaStream;
using kernels::DeviceBuffer;


int64_t device_used_bytes() {
  size_t free_bytes = 0, total_bytes = 0;
  QB_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return static_cast<int64_t>(total_bytes - free_bytes);
}

// A dense tensor's values as FP16 bits (F16 copied, F32/BF16 rounded to nearest even).
std::vector<uint16_t> fp16_bits(const Tensor& t) {
  std::vector<uint16_t> bits(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < bits.size(); ++i) {
    if (t.dtype == DType::F16) {
      bits[i] = static_cast<const uint16_t*>(t.data)[i];
      continue;
    }
    const float value = t.at(static_cast<int64_t>(i));
    bits[i] = float_to_half(value);
    if (std::isfinite(value) && !std::isfinite(half_to_float(bits[i])))
      fail(t.name, "value " + std::to_string(value) + " at element " + std::to_string(i) +
                       " is outside FP16's range; the CUDA backend keeps dense weights in FP16");
  }
  return bits;
}

void check_tensor_shape(const Tensor& t, std::vector<int64_t> expected) {
  if (t.shape != expected || t.data == nullptr) {
    std::string text;
    for (int64_t d : expected) text += (text.empty() ? "" : ", ") + std::to_string(d);
    fail(t.name, "expected shape [" + text + "] with data for the CUDA backend");
  }
}

// Refuses what the device path cannot run exactly as stored, before anything is allocated.
void check_linear(const Linear& l, int out_features, int in_features) {
  if (l.out_features() != out_features || l.in_features() != in_features)
    fail(l.name, "shape [" + std::to_string(l.out_features()) + ", " + std::to_string(l.in_features()) +
                     "] does not match the config's [" + std::to_string(out_features) + ", " +
                     std::to_string(in_features) + "]");
  if (l.bias.data) check_tensor_shape(l.bias, {out_features});
  if (!l.quant) {
    check_tensor_shape(l.dense, {out_features, in_features});
    return;
  }
  if (l.kept) fail(l.name, "kept FP16 columns are evaluated on the CPU only");
  const QuantizedWeight& q = *l.quant;
  if (!q.g_idx.empty())
    fail(l.name, "act-order groups (a GPTQ g_idx other than i / group_size) are evaluated on the CPU only: the "
                 "W4A16 kernels take contiguous groups");
  if (q.bits != 4 || !kernels::supported_group_size(q.group_size) || q.k % q.group_size != 0 || q.n % 8 != 0)
    fail(l.name, "cannot run on the CUDA backend: the W4A16 kernels take 4-bit weights with group size 32, 64 or "
                 "128 dividing in_features and out_features a multiple of 8; this layer has bits=" +
                     std::to_string(q.bits) + " group_size=" + std::to_string(q.group_size) +
                     " in_features=" + std::to_string(q.k) + " out_features=" + std::to_string(q.n));
  const size_t code_bytes = static_cast<size_t>(q.n) * q.row_bytes(),
               group_params = static_cast<size_t>(q.n_groups()) * q.n;
  if (q.packed_codes().size() != code_bytes || q.scales.size() != group_params || q.zeros.size() != group_params)
    fail(l.name, "quantized weight arrays do not match n=" + std::to_string(q.n) + " k=" + std::to_string(q.k));
}

void check_model(const Model& m) {
  const LlamaConfig& c = m.config;
  if (c.hidden_size < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.hidden_size % c.n_heads != 0 ||
      c.n_heads % c.n_kv_heads != 0 || c.head_dim() % 2 != 0 || c.intermediate_size < 1 || c.vocab_size < 1 ||
      static_cast<int>(m.layers.size()) != c.n_layers)
    fail(m.path, "config not runnable: hidden_size=" + std::to_string(c.hidden_size) + " n_heads=" +
                     std::to_string(c.n_heads) + " n_kv_heads=" + std::to_string(c.n_kv_heads) +
                     " (hidden_size % n_heads, n_heads % n_kv_heads and head_dim % 2 must be 0), layers " +
                     std::to_string(m.layers.size()) + " of " + std::to_string(c.n_layers));
  const auto dims = linear_dims(c);
  check_tensor_shape(m.embed_tokens, {c.vocab_size, c.hidden_size});
  for (const auto& l : m.layers) {
    check_tensor_shape(l.attn_norm, {c.hidden_size});
    check_tensor_shape(l.mlp_norm, {c.hidden_size});
    const auto linears = block_linears(l);
    for (int t = 0; t < kNumLinears; ++t) check_linear(*linears[t], dims[t].first, dims[t].second);
  }
  check_tensor_shape(m.norm, {c.hidden_size});
  if (!c.tie_word_embeddings) check_tensor_shape(m.lm_head, {c.vocab_size, c.hidden_size});
}

// One linear layer on the device, y[m, n] = x[m, k] · W^T: dense FP16 or packed 4-bit.
struct DeviceLinear {
  std::string name;
  int n = 0, k = 0;                      // out_features, in_features
  bool quantized = false;
  DeviceBuffer dense;                    // fp16 [n, k] (dense layers)
  DeviceBuffer qweight, qzeros, scales;  // AutoAWQ layout (layouts/awq_layout.h): int32 [k, n/8],
                                         // int32 [k/g, n/8], fp16 [k/g, n] (quantized layers)
  kernels::AwqWeightView view;           // over qweight/qzeros/scales
  kernels::W4A16Plan plan;               // for the current window length (quantized layers)
  DeviceBuffer bias;                     // fp16 [n], added after the GEMM; empty when none (q/k/v of Qwen2)
};

struct DeviceLayer {
  DeviceBuffer attn_norm, mlp_norm;  // fp16 [dim]
  std::array<DeviceLinear, kNumLinears> linears;  // indexed by LinearIndex
};

// Device bytes a block's weights take as uploaded (dense FP16; 4-bit codes, FP16 scales, 4-bit zeros).
int64_t block_device_bytes(const LayerWeights& l) {
  int64_t bytes = (l.attn_norm.numel() + l.mlp_norm.numel()) * 2;
  for (const Linear* linear : block_linears(l)) {
    bytes += linear->bias.data ? linear->bias.numel() * 2 : 0;
    if (!linear->quant) {
      bytes += linear->dense.numel() * 2;
      continue;
    }
    const QuantizedWeight& q = *linear->quant;
    bytes += static_cast<int64_t>(q.n) * q.k / 2 + static_cast<int64_t>(q.n_groups()) * q.n * 5 / 2;
  }
  return bytes;
}

// Offloaded block weights (CudaWeights::Offload): each layer's uploads back to back in pinned host
// memory, copied on their own stream into one of two device slots.
struct Offload {
  std::array<std::vector<void*>, 2> slot_targets;  // per slot: the device buffer of each upload, in order
  std::vector<size_t> upload_bytes;                // bytes of each upload (every layer alike)
  std::vector<kernels::PinnedHostBuffer> layers;
  std::unique_ptr<CudaStream> copy_stream;         // non-blocking: independent of the compute stream
  std::array<CudaEvent, 2> ready;                  // slot s holds its next layer (copy stream)
  std::array<CudaEvent, 2> released;               // the compute stream is done with slot s
  int64_t host_bytes = 0, slot_bytes = 0;
};

// Activations of one window, sized for `capacity` tokens (rows); reallocated when a longer window
// comes. dim = hidden_size, inner = intermediate_size, q_dim = n_heads * head_dim,
// kv_dim = n_kv_heads * head_dim.
struct WindowBuffers {
  int capacity = 0;
  DeviceBuffer tokens;            // int32 [capacity]
  DeviceBuffer x;                 // fp32 [capacity, dim]     residual stream
  DeviceBuffer xn;                // fp16 [capacity, dim]     RMSNorm output (q/k/v, gate/up, lm_head input)
  DeviceBuffer q, k, v;           // fp16 [capacity, q_dim], [capacity, kv_dim] x2   projections
  DeviceBuffer q_rot, k_rot;      // fp32 [capacity, q_dim], [capacity, kv_dim]     after RoPE
  DeviceBuffer attention;         // fp16 [capacity, q_dim]   attention output (o_proj input)
  DeviceBuffer delta;             // fp16 [capacity, dim]     o_proj / down_proj output
  DeviceBuffer gate, up;          // fp16 [capacity, inner]   gate becomes silu(gate) * up (down_proj input)
  DeviceBuffer logits;            // fp32 [capacity, vocab]
  DeviceBuffer rope_cos, rope_sin;  // fp32 [capacity, head_dim / 2]
  DeviceBuffer nll, kl;           // double [capacity]        per scored target
  DeviceBuffer top1;              // uint8 [capacity]
  DeviceBuffer nonfinite;         // int32 [1]
};

class CudaBackend final : public LogitsBackend {
 public:
  CudaBackend(const Model& model, int device, CudaWeights weights);
  Device device() const override { return Device::Cuda; }
  void run(const std::vector<int>& tokens) override { forward(tokens, nullptr); }
  void score(const std::vector<int>& tokens, int first, const LogitsBackend* reference, const std::string& where,
             WindowScores& out) const override;
  nlohmann::json memory() const override;
  const float* host_logits(std::vector<float>& scratch) const override {
    scratch = copy_logits();
    return scratch.data();
  }

  // residuals (optional, tests): the residual stream before block 0 and after every block.
  void forward(const std::vector<int>& tokens, std::vector<std::vector<float>>* residuals);
  std::vector<float> copy_logits() const;

 private:
  // Runs `work` and adds the change in the device's used memory to this backend's footprint.
  template <typename Work>
  void metered(Work&& work) const {
    const int64_t before = device_used_bytes();
    work();
    footprint_bytes_ += device_used_bytes() - before;
    peak_bytes_ = std::max(peak_bytes_, footprint_bytes_);
  }
  DeviceBuffer upload(const void* host, size_t bytes);
  DeviceLayer upload_layer(const LayerWeights& layer);
  void stage_layers(const Model& model);
  void copy_layer_to_slot(int layer);
  const DeviceLayer& streamed_layer(int layer);
  template <typename T>
  DeviceBuffer upload(const std::vector<T>& host) { return upload(host.data(), host.size() * sizeof(T)); }
  DeviceLinear upload_linear(const Linear& linear);
  void prepare_window(int n_tokens);
  void apply(const DeviceLinear& linear, const __half* x, __half* y, int m);
  void block(const DeviceLayer& layer, int n_tokens);
  void copy_residual(int n_tokens, std::vector<std::vector<float>>* residuals) const;

  LlamaConfig config_;
  int device_;
  std::string device_name_;
  int64_t device_bytes_total_ = 0, device_bytes_free_before_ = 0;
  int64_t weight_bytes_device_ = 0, weight_bytes_requested_ = 0;
  mutable int64_t footprint_bytes_ = 0, peak_bytes_ = 0;
  mutable double gpu_seconds_ = 0.0;
  mutable bool timing_open_ = false;  // run() recorded start_ and score() has not closed it yet

  // A blocking stream (not cudaStreamNonBlocking): the weight uploads, the RoPE tables and the W4A16
  // workspace's one-time zeroing are synchronous cudaMemcpy/cudaMemset on the legacy default stream,
  // which returns before the copy or fill has landed; only a blocking stream waits for them.
  std::unique_ptr<CudaStream> stream_;
  std::unique_ptr<CudaEvent> start_, stop_;
  std::unique_ptr<kernels::CublasHandle> cublas_;
  DeviceBuffer embed_;    // fp16 [vocab, dim]
  std::vector<DeviceLayer> layers_;  // resident blocks; empty when offloaded
  // Offloaded: the two device slots the blocks stream through, and the host side. upload() either
  // allocates on the device (Device), also recording each destination (Slot), or appends the
  // bytes to staged_ instead (Stage); upload_sizes_ lists each upload's bytes in the last two modes.
  std::vector<DeviceLayer> slots_;
  std::unique_ptr<Offload> offload_;
  enum class UploadMode { Device, Slot, Stage } upload_mode_ = UploadMode::Device;
  std::vector<std::pair<void*, size_t>> upload_record_;
  std::vector<uint8_t> staged_;
  DeviceBuffer norm_;     // fp16 [dim]
  DeviceBuffer lm_head_;  // fp16 [vocab, dim]; empty when tied (embed_ is used)
  WindowBuffers window_;
  int planned_tokens_ = 0;          // window length the W4A16 plans are for
  DeviceBuffer w4a16_workspace_;    // zero-filled when allocated (split-K counters), see w4a16.h
  std::vector<int> last_tokens_;    // tokens of the last run
};

CudaBackend::CudaBackend(const Model& model, int device, CudaWeights weights)
    : config_(model.config), device_(device) {
  check_model(model);
  QB_CUDA_CHECK(cudaSetDevice(device));
  QB_CUDA_CHECK(cudaFree(nullptr));  // creates the context now: it is not part of the footprint below
  cudaDeviceProp prop{};
  QB_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  device_name_ = prop.name;
  size_t free_bytes = 0, total_bytes = 0;
  QB_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  device_bytes_free_before_ = static_cast<int64_t>(free_bytes);
  device_bytes_total_ = static_cast<int64_t>(total_bytes);
  metered([&] {
    stream_ = std::make_unique<CudaStream>();
    start_ = std::make_unique<CudaEvent>();
    stop_ = std::make_unique<CudaEvent>();
    cublas_ = std::make_unique<kernels::CublasHandle>();
    QB_CUBLAS_CHECK(cublasSetStream(cublas_->get(), stream_->get()));
    const int64_t before_weights = device_used_bytes();
    embed_ = upload(fp16_bits(model.embed_tokens));
    bool offload = weights == CudaWeights::Offload;
    if (weights == CudaWeights::Auto && !model.layers.empty()) {
      int64_t blocks = 0;
      for (const auto& l : model.layers) blocks += block_device_bytes(l);
      const int64_t reserve = std::max<int64_t>(kOffloadReserveBytes, device_bytes_total_ / 20);
      offload = blocks + reserve > device_bytes_total_ - device_used_bytes();
      if (offload)
        std::fprintf(stderr, "note: %s of block weights do not fit the device's free memory; streaming them per "
                     "layer from pinned host memory (--offload)\n", format_gb(blocks).c_str());
    }
    if (offload && !model.layers.empty())
      stage_layers(model);
    else
      for (const auto& l : model.layers) layers_.push_back(upload_layer(l));
    norm_ = upload(fp16_bits(model.norm));
    if (!config_.tie_word_embeddings) lm_head_ = upload(fp16_bits(model.lm_head));
    weight_bytes_device_ = device_used_bytes() - before_weights;
  });
}

DeviceBuffer CudaBackend::upload(const void* host, size_t bytes) {
  if (upload_mode_ == UploadMode::Stage) {
    const auto* begin = static_cast<const uint8_t*>(host);
    staged_.insert(staged_.end(), begin, begin + bytes);
    upload_record_.push_back({nullptr, bytes});
    weight_bytes_requested_ += static_cast<int64_t>(bytes);
    return DeviceBuffer{};
  }
  DeviceBuffer buffer(bytes);
  QB_CUDA_CHECK(cudaMemcpy(buffer.as<void>(), host, bytes, cudaMemcpyHostToDevice));
  if (upload_mode_ == UploadMode::Slot)
    upload_record_.push_back({buffer.as<void>(), bytes});
  else
    weight_bytes_requested_ += static_cast<int64_t>(bytes);
  return buffer;
}

DeviceLayer CudaBackend::upload_layer(const LayerWeights& l) {
  DeviceLayer d;
  d.attn_norm = upload(fp16_bits(l.attn_norm));
  d.mlp_norm = upload(fp16_bits(l.mlp_norm));
  const auto linears = block_linears(l);
  for (int t = 0; t < kNumLinears; ++t) d.linears[t] = upload_linear(*linears[t]);
  return d;
}

// Two device slots shaped by block 0, then every block's bytes (as upload() would send them) into
// its own pinned buffer. A block whose uploads differ in number or size from block 0's is refused.
void CudaBackend::stage_layers(const Model& model) {
  offload_ = std::make_unique<Offload>();
  Offload& off = *offload_;
  off.copy_stream = std::make_unique<CudaStream>(cudaStreamNonBlocking);
  for (int s = 0; s < 2; ++s) {
    upload_mode_ = UploadMode::Slot;
    upload_record_.clear();
    slots_.push_back(upload_layer(model.layers[0]));
    for (const auto& [target, bytes] : upload_record_) {
      off.slot_targets[s].push_back(target);
      if (s == 0) off.upload_bytes.push_back(bytes);
      off.slot_bytes += static_cast<int64_t>(bytes);
    }
  }
  for (const auto& l : model.layers) {
    upload_mode_ = UploadMode::Stage;
    upload_record_.clear();
    staged_.clear();
    upload_layer(l);  // the device side is discarded: the bytes are in staged_
    bool same = upload_record_.size() == off.upload_bytes.size();
    for (size_t j = 0; same && j < upload_record_.size(); ++j) same = upload_record_[j].second == off.upload_bytes[j];
    if (!same)
      fail(l.q_proj.name, "--offload streams every block through slots shaped like block 0; this block's weights "
                          "have other formats or sizes");
    kernels::PinnedHostBuffer pinned(staged_.size());
    std::copy(staged_.begin(), staged_.end(), pinned.as<uint8_t>());
    off.host_bytes += static_cast<int64_t>(staged_.size());
    off.layers.push_back(std::move(pinned));
  }
  upload_mode_ = UploadMode::Device;
  staged_ = {};
  upload_record_.clear();
}

// Copies block `layer` into slot layer % 2 on the copy stream, once the compute stream has
// released the slot (an event never recorded counts as released).
void CudaBackend::copy_layer_to_slot(int layer) {
  Offload& off = *offload_;
  const int slot = layer % 2;
  const cudaStream_t copy = off.copy_stream->get();
  QB_CUDA_CHECK(cudaStreamWaitEvent(copy, off.released[slot].get(), 0));
  const uint8_t* source = off.layers[layer].as<uint8_t>();
  for (size_t j = 0; j < off.upload_bytes.size(); ++j) {
    QB_CUDA_CHECK(cudaMemcpyAsync(off.slot_targets[slot][j], source, off.upload_bytes[j], cudaMemcpyHostToDevice, copy));
    source += off.upload_bytes[j];
  }
  QB_CUDA_CHECK(cudaEventRecord(off.ready[slot].get(), copy));
}

// Block `layer`'s weights for the compute stream: its copy was started one block earlier (block 0:
// now), the next block's copy starts now, and the compute stream waits for this one's.
const DeviceLayer& CudaBackend::streamed_layer(int layer) {
  Offload& off = *offload_;
  if (layer == 0) copy_layer_to_slot(0);
  if (layer + 1 < static_cast<int>(off.layers.size())) copy_layer_to_slot(layer + 1);
  QB_CUDA_CHECK(cudaStreamWaitEvent(stream_->get(), off.ready[layer % 2].get(), 0));
  return slots_[layer % 2];
}

DeviceLinear CudaBackend::upload_linear(const Linear& linear) {
  DeviceLinear d;
  d.name = linear.name;
  d.n = linear.out_features();
  d.k = linear.in_features();
  if (linear.bias.data) d.bias = upload(fp16_bits(linear.bias));
  if (!linear.quant) {
    d.dense = upload(fp16_bits(linear.dense));
    return d;
  }
  const AwqPackedLinear packed = pack_awq_linear(*linear.quant, linear.name);
  d.quantized = true;
  d.qweight = upload(packed.qweight);
  d.qzeros = upload(packed.qzeros);
  d.scales = upload(packed.scales);
  d.view = {d.qweight.as<int32_t>(), d.qzeros.as<int32_t>(), d.scales.as<__half>(), packed.n, packed.k,
            packed.group_size};
  return d;
}

void CudaBackend::prepare_window(int n_tokens) {
  const LlamaConfig& c = config_;
  if (n_tokens > window_.capacity) {
    window_ = WindowBuffers{};  // free the smaller set first: the footprint never holds both
    const size_t rows = static_cast<size_t>(n_tokens), hd = c.head_dim(), half_dim = hd / 2;
    const size_t q_dim = c.n_heads * hd, kv_dim = c.n_kv_heads * hd;
    WindowBuffers& w = window_;
    w.tokens = DeviceBuffer(rows * sizeof(int));
    w.x = DeviceBuffer(rows * c.hidden_size * sizeof(float));
    w.xn = DeviceBuffer(rows * c.hidden_size * sizeof(__half));
    w.q = DeviceBuffer(rows * q_dim * sizeof(__half));
    w.k = DeviceBuffer(rows * kv_dim * sizeof(__half));
    w.v = DeviceBuffer(rows * kv_dim * sizeof(__half));
    w.q_rot = DeviceBuffer(rows * q_dim * sizeof(float));
    w.k_rot = DeviceBuffer(rows * kv_dim * sizeof(float));
    w.attention = DeviceBuffer(rows * q_dim * sizeof(__half));
    w.delta = DeviceBuffer(rows * c.hidden_size * sizeof(__half));
    w.gate = DeviceBuffer(rows * c.intermediate_size * sizeof(__half));
    w.up = DeviceBuffer(rows * c.intermediate_size * sizeof(__half));
    w.logits = DeviceBuffer(rows * c.vocab_size * sizeof(float));
    w.nll = DeviceBuffer(rows * sizeof(double));
    w.kl = DeviceBuffer(rows * sizeof(double));
    w.top1 = DeviceBuffer(rows * sizeof(uint8_t));
    w.nonfinite = DeviceBuffer(sizeof(int));
    // The angles exactly as the CPU forward pass computes them (double, then rounded to float).
    std::vector<float> cos_table(rows * half_dim), sin_table(rows * half_dim);
    const std::vector<double> inv_freq = rope_inv_freq(c);
    for (size_t i = 0; i < half_dim; ++i) {
      for (size_t pos = 0; pos < rows; ++pos) {
        const double angle = double(pos) * inv_freq[i];
        cos_table[pos * half_dim + i] = static_cast<float>(std::cos(angle));
        sin_table[pos * half_dim + i] = static_cast<float>(std::sin(angle));
      }
    }
    w.rope_cos = DeviceBuffer(cos_table.size() * sizeof(float));
    w.rope_sin = DeviceBuffer(sin_table.size() * sizeof(float));
    QB_CUDA_CHECK(cudaMemcpy(w.rope_cos.as<void>(), cos_table.data(), w.rope_cos.bytes(), cudaMemcpyHostToDevice));
    QB_CUDA_CHECK(cudaMemcpy(w.rope_sin.as<void>(), sin_table.data(), w.rope_sin.bytes(), cudaMemcpyHostToDevice));
    w.capacity = n_tokens;
  }
  if (n_tokens == planned_tokens_) return;
  // Plans are per m (= window length): the dispatcher's kernel choice and split-K depend on it.
  planned_tokens_ = 0;  // until every plan and the workspace are in place: a throw must not leave stale plans
  size_t workspace_bytes = 0;
  for (auto* blocks : {&layers_, &slots_})
    for (auto& layer : *blocks)
      for (DeviceLinear& l : layer.linears)
      if (l.quantized) {
        try {
          l.plan = kernels::plan_w4a16(n_tokens, l.n, l.k, l.view.group_size);
        } catch (const Error& e) {
          fail(l.name, e.what());
        }
        workspace_bytes = std::max(workspace_bytes, l.plan.workspace_bytes);
      }
  if (workspace_bytes > w4a16_workspace_.bytes()) {
    w4a16_workspace_ = DeviceBuffer{};
    w4a16_workspace_ = DeviceBuffer(workspace_bytes);
    QB_CUDA_CHECK(cudaMemset(w4a16_workspace_.as<void>(), 0, workspace_bytes));
  }
  planned_tokens_ = n_tokens;
}

void CudaBackend::apply(const DeviceLinear& linear, const __half* x, __half* y, int m) {
  try {
    if (linear.quantized)
      kernels::w4a16_gemm(linear.plan, x, linear.view, y, w4a16_workspace_.as<void>(), cublas_->get(), stream_->get());
    else
      kernels::gemm_fp16(cublas_->get(), x, linear.dense.as<__half>(), y, m, linear.n, linear.k, stream_->get());
    if (linear.bias.bytes() > 0) gpu::launch_add_bias(y, linear.bias.as<__half>(), m, linear.n, stream_->get());
  } catch (const Error& e) {
    fail(linear.name, e.what());  // the kernels' errors name the kernel; add the layer
  }
}

void CudaBackend::block(const DeviceLayer& layer, int n) {
  const LlamaConfig& c = config_;
  const WindowBuffers& w = window_;
  const cudaStream_t s = stream_->get();
  const size_t residual_count = static_cast<size_t>(n) * c.hidden_size;
  gpu::launch_rmsnorm(w.x.as<float>(), layer.attn_norm.as<__half>(), w.xn.as<__half>(), n, c.hidden_size, c.rms_norm_eps, s);
  apply(layer.linears[kQ], w.xn.as<__half>(), w.q.as<__half>(), n);
  apply(layer.linears[kK], w.xn.as<__half>(), w.k.as<__half>(), n);
  apply(layer.linears[kV], w.xn.as<__half>(), w.v.as<__half>(), n);
  gpu::launch_rope(w.q.as<__half>(), w.q_rot.as<float>(), w.rope_cos.as<float>(), w.rope_sin.as<float>(), n, c.n_heads,
                   c.head_dim(), c.rope_interleaved, s);
  gpu::launch_rope(w.k.as<__half>(), w.k_rot.as<float>(), w.rope_cos.as<float>(), w.rope_sin.as<float>(), n,
                   c.n_kv_heads, c.head_dim(), c.rope_interleaved, s);
  gpu::launch_causal_attention(w.q_rot.as<float>(), w.k_rot.as<float>(), w.v.as<__half>(), w.attention.as<__half>(), n,
                               c.n_heads, c.n_kv_heads, c.head_dim(), s);
  apply(layer.linears[kO], w.attention.as<__half>(), w.delta.as<__half>(), n);
  gpu::launch_residual_add(w.x.as<float>(), w.delta.as<__half>(), residual_count, s);
  gpu::launch_rmsnorm(w.x.as<float>(), layer.mlp_norm.as<__half>(), w.xn.as<__half>(), n, c.hidden_size, c.rms_norm_eps, s);
  apply(layer.linears[kGate], w.xn.as<__half>(), w.gate.as<__half>(), n);
  apply(layer.linears[kUp], w.xn.as<__half>(), w.up.as<__half>(), n);
  gpu::launch_swiglu(w.gate.as<__half>(), w.up.as<__half>(), static_cast<size_t>(n) * c.intermediate_size, s);
  apply(layer.linears[kDown], w.gate.as<__half>(), w.delta.as<__half>(), n);
  gpu::launch_residual_add(w.x.as<float>(), w.delta.as<__half>(), residual_count, s);
}

void CudaBackend::copy_residual(int n, std::vector<std::vector<float>>* residuals) const {
  if (!residuals) return;
  std::vector<float> host(static_cast<size_t>(n) * config_.hidden_size);
  QB_CUDA_CHECK(cudaMemcpyAsync(host.data(), window_.x.as<void>(), host.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                stream_->get()));
  QB_CUDA_CHECK(cudaStreamSynchronize(stream_->get()));
  residuals->push_back(std::move(host));
}

void CudaBackend::forward(const std::vector<int>& tokens, std::vector<std::vector<float>>* residuals) {
  const LlamaConfig& c = config_;
  const int n = static_cast<int>(tokens.size());
  if (n < 1) fail("cuda forward", "empty window");
  check_window_length(c, n, "cuda forward");
  for (int t : tokens)
    if (t < 0 || t >= c.vocab_size)
      fail("embed", "token id " + std::to_string(t) + " outside the vocabulary of " + std::to_string(c.vocab_size));
  QB_CUDA_CHECK(cudaSetDevice(device_));
  last_tokens_.clear();  // invalid until this run has completed
  metered([&] {
    prepare_window(n);
    const cudaStream_t s = stream_->get();
    const WindowBuffers& w = window_;
    QB_CUDA_CHECK(cudaEventRecord(start_->get(), s));
    timing_open_ = true;
    QB_CUDA_CHECK(cudaMemcpyAsync(w.tokens.as<void>(), tokens.data(), n * sizeof(int), cudaMemcpyHostToDevice, s));
    gpu::launch_embed(w.tokens.as<int>(), embed_.as<__half>(), w.x.as<float>(), n, c.hidden_size, s);
    if (residuals) residuals->clear();
    copy_residual(n, residuals);
    for (int i = 0; i < c.n_layers; ++i) {
      block(offload_ ? streamed_layer(i) : layers_[i], n);
      if (offload_) QB_CUDA_CHECK(cudaEventRecord(offload_->released[i % 2].get(), s));
      copy_residual(n, residuals);
    }
    gpu::launch_rmsnorm(w.x.as<float>(), norm_.as<__half>(), w.xn.as<__half>(), n, c.hidden_size, c.rms_norm_eps, s);
    // logits [n, vocab] fp32 = xn [n, dim] · lm_head^T, lm_head [vocab, dim] fp16, FP32 accumulate.
    // Column-major view as in kernels/gemm_fp16.cpp: logits^T [vocab, n] = lm_head^T-as-stored (OP_T)
    // times xn^T (OP_N); only the output type differs (FP32, so scoring never sees FP16 logits).
    const __half* lm_head = config_.tie_word_embeddings ? embed_.as<__half>() : lm_head_.as<__half>();
    const float alpha = 1.0f, beta = 0.0f;
    QB_CUBLAS_CHECK(cublasSetStream(cublas_->get(), s));
    QB_CUBLAS_CHECK(cublasGemmEx(cublas_->get(), CUBLAS_OP_T, CUBLAS_OP_N, c.vocab_size, n, c.hidden_size, &alpha, lm_head,
                                 CUDA_R_16F, c.hidden_size, w.xn.as<__half>(), CUDA_R_16F, c.hidden_size, &beta, w.logits.as<float>(),
                                 CUDA_R_32F, c.vocab_size, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    QB_CUDA_CHECK(cudaStreamSynchronize(s));  // run() is synchronous: host timings are honest
  });
  last_tokens_ = tokens;
}

void CudaBackend::score(const std::vector<int>& tokens, int first, const LogitsBackend* reference,
                        const std::string& where, WindowScores& out) const {
  const int n = static_cast<int>(tokens.size()), vocab = config_.vocab_size;
  if (last_tokens_.empty() || tokens != last_tokens_) fail(where, "score() needs a completed run() over the same tokens");
  if (first < 1 || first > n)
    fail(where, "first scored target " + std::to_string(first) + " outside 1.." + std::to_string(n));
  const CudaBackend* ref = nullptr;
  if (reference) {
    ref = dynamic_cast<const CudaBackend*>(reference);
    if (!ref) fail(where, "the reference backend runs on another device");
    if (ref->device_ != device_)
      fail(where, "the reference backend runs on CUDA device " + std::to_string(ref->device_) + ", this one on " +
                      std::to_string(device_));
    if (ref->last_tokens_ != tokens) fail(where, "the reference backend's last run was over other tokens");
    if (ref->config_.vocab_size != vocab) fail(where, "the reference backend has another vocabulary size");
  }
  const int count = n - first;
  out.nll.assign(count, 0.0);
  out.kl.assign(ref ? count : 0, 0.0);
  out.top1_same.assign(ref ? count : 0, 0);
  int nonfinite = 0;
  QB_CUDA_CHECK(cudaSetDevice(device_));
  metered([&] {
    const cudaStream_t s = stream_->get();
    const WindowBuffers& w = window_;
    if (count > 0) {
      // The reference's logits are complete: its run() synchronised its own stream.
      QB_CUDA_CHECK(cudaMemsetAsync(w.nonfinite.as<void>(), 0, sizeof(int), s));
      gpu::launch_score_rows(w.logits.as<float>(), ref ? ref->window_.logits.as<float>() : nullptr, w.tokens.as<int>(),
                             first, count, vocab, w.nll.as<double>(), w.kl.as<double>(), w.top1.as<uint8_t>(),
                             w.nonfinite.as<int>(), s);
      QB_CUDA_CHECK(cudaMemcpyAsync(out.nll.data(), w.nll.as<void>(), count * sizeof(double), cudaMemcpyDeviceToHost, s));
      if (ref) {
        QB_CUDA_CHECK(cudaMemcpyAsync(out.kl.data(), w.kl.as<void>(), count * sizeof(double), cudaMemcpyDeviceToHost, s));
        QB_CUDA_CHECK(cudaMemcpyAsync(out.top1_same.data(), w.top1.as<void>(), count * sizeof(uint8_t),
                                      cudaMemcpyDeviceToHost, s));
      }
      QB_CUDA_CHECK(cudaMemcpyAsync(&nonfinite, w.nonfinite.as<void>(), sizeof(int), cudaMemcpyDeviceToHost, s));
    }
    QB_CUDA_CHECK(cudaEventRecord(stop_->get(), s));
    QB_CUDA_CHECK(cudaEventSynchronize(stop_->get()));  // score() is synchronous
    if (timing_open_) {
      float ms = 0.0f;
      QB_CUDA_CHECK(cudaEventElapsedTime(&ms, start_->get(), stop_->get()));
      gpu_seconds_ += ms * 1e-3;
      timing_open_ = false;
    }
  });
  if (nonfinite) fail(where, "non-finite logits (NaN or Inf); the window is not averaged in");
}

nlohmann::json CudaBackend::memory() const {
  return {{"device", device_name_},
          {"device_bytes_total", device_bytes_total_},
          {"device_bytes_free_before", device_bytes_free_before_},
          {"weight_bytes_device", weight_bytes_device_},
          {"weight_bytes_requested", weight_bytes_requested_},
          {"peak_bytes", peak_bytes_},
          {"activation_bytes", peak_bytes_ - weight_bytes_device_},
          {"max_window_tokens", window_.capacity},
          {"gpu_seconds", gpu_seconds_},
          {"offload", offload_ ? nlohmann::json{{"layers", offload_->layers.size()},
                                                {"host_pinned_bytes", offload_->host_bytes},
                                                {"device_slot_bytes", offload_->slot_bytes}}
                               : nlohmann::json(nullptr)}};
}

std::vector<float> CudaBackend::copy_logits() const {
  if (last_tokens_.empty()) fail("cuda backend", "no completed run to copy logits from");
  std::vector<float> host(last_tokens_.size() * static_cast<size_t>(config_.vocab_size));
  QB_CUDA_CHECK(cudaSetDevice(device_));
  QB_CUDA_CHECK(cudaMemcpy(host.data(), window_.logits.as<void>(), host.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

}  // namespace

std::unique_ptr<LogitsBackend> make_cuda_backend(const Model& model, int device, CudaWeights weights) {
  return std::make_unique<CudaBackend>(model, device, weights);
}

namespace gpu::testing {

std::vector<float> last_logits(const LogitsBackend& backend) {
  const auto* cuda = dynamic_cast<const CudaBackend*>(&backend);
  if (!cuda) fail("gpu::testing::last_logits", "not a CUDA backend");
  return cuda->copy_logits();
}

std::vector<std::vector<float>> run_with_residuals(LogitsBackend& backend, const std::vector<int>& tokens) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  if (!cuda) fail("gpu::testing::run_with_residuals", "not a CUDA backend");
  std::vector<std::vector<float>> residuals;
  cuda->forward(tokens, &residuals);
  return residuals;
}

}  // namespace gpu::testing
}  // namespace qb
