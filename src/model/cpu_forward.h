#pragma once
// The CPU forward pass of a Llama model over whole windows at once (prefill), float32 compute:
// each linear a GEMM per tile of weight rows widened from their stored form, causal attention by
// blocks of queries (only keys up to a block's last query), multithreaded with OpenMP. The GEMM
// micro-kernel and exp are AVX-512 where the CPU has it (OpenBLAS and std::exp elsewhere).
//
// Every activation is row-major with one row per token: a batch is n_seq independent sequences of
// seq_len tokens each (rows = n_seq * seq_len), sequence s occupying rows s*seq_len .. +seq_len-1
// at positions 0 .. seq_len-1. The pieces (rmsnorm, linear, attention, mlp, block_forward) are
// free functions of explicit weights so that AWQ can run one block with candidate weights.
#include <memory>
#include <vector>

#include "model/model.h"

namespace qb {

// The arithmetic of the CPU forward pass. Exact: float32 throughout, weights dequantized. LlamaCpp:
// as llama.cpp's CPU backend (ggml b4747) computes, still with dequantized weights in a float
// GEMM, but each linear's input first rounded to the weight type's vec_dot_type (ggml-cpu.c
// type_traits_cpu): F16 weights meet F16 activations, BF16 meet BF16, Q4_0/Q5_0/Q8_0 meet Q8_0
// blocks, Q4_1/Q5_1 meet Q8_1, the k-quants meet Q8_K; F32 weights and quantbench's own
// quantized weights (RTN/AWQ/GPTQ) take float32. Attention then follows llama.cpp's default F16
// KV cache (no flash attention): K after RoPE and V stored as F16, Q rounded to F16 for the
// K dot products and the softmax probabilities to F16 for the V product.
// Left out (float rounding, far below the effects above): the Q8_1 sum `s` is an FP16-rounded
// copy in ggml (here the exact block sum); ggml's RoPE angles come from a float recurrence
// (theta *= theta_scale; here double); ggml's SIMD exp/silu and summation order; x86 SIMD
// builds quantize Q8_0/Q8_1 activations with 127/amax and round-half-even where the reference
// quantizers used here take 1/(amax/127) and roundf (they differ only where x/d is within about
// an ulp of a half).
enum class Activations { Exact, LlamaCpp };
const char* activations_name(Activations a);  // "exact" | "llama.cpp"

// What a linear's float32 input is rounded to before it meets the weight (Exact: nothing).
enum class ActivationFormat { Exact, F16, BF16, Q8_0, Q8_1, Q8_K };
// llama.cpp's vec_dot_type for a weight stored as `weight` (F32 -> Exact).
ActivationFormat llama_cpp_activation_format(DType weight);
// x [rows, k] rounded in place to `format` row by row (quantized to its blocks and back);
// k must be a multiple of the format's block size (32, or 256 for Q8_K).
void round_activations(float* x, int rows, int k, ActivationFormat format);

// One transformer block's weights widened to float32 (quantized weights dequantized), [out, in].
struct CpuLayer {
  std::vector<float> attn_norm;  // [hidden_size]
  std::vector<float> wq;         // [n_heads*head_dim, hidden_size]
  std::vector<float> wk;         // [n_kv_heads*head_dim, hidden_size]
  std::vector<float> wv;         // [n_kv_heads*head_dim, hidden_size]
  std::vector<float> bq, bk, bv;  // q/k/v biases [out]; empty when the model has none (Qwen2 has)
  std::vector<float> wo;         // [hidden_size, n_heads*head_dim]
  std::vector<float> mlp_norm;   // [hidden_size]
  std::vector<float> w_gate;     // [intermediate_size, hidden_size]
  std::vector<float> w_up;       // [intermediate_size, hidden_size]
  std::vector<float> w_down;     // [hidden_size, intermediate_size]
  // Activations::LlamaCpp only (else all Exact / false): each linear's input format, and
  // llama.cpp's F16 KV cache arithmetic in attention.
  ActivationFormat act_q = ActivationFormat::Exact, act_k = ActivationFormat::Exact, act_v = ActivationFormat::Exact,
                   act_o = ActivationFormat::Exact, act_gate = ActivationFormat::Exact,
                   act_up = ActivationFormat::Exact, act_down = ActivationFormat::Exact;
  bool f16_kv = false;
};

CpuLayer widen_layer(const LayerWeights& layer);
// Sets the act_* formats from each linear's stored dtype, and f16_kv (Activations::LlamaCpp).
void use_llama_cpp_arithmetic(CpuLayer& widened, const LayerWeights& layer);
std::vector<float> widen_linear(const Linear& linear);  // [out, in]

// The inputs each linear group of a block sees, captured for AWQ calibration.
struct BlockInputs {
  std::vector<float> x;        // [rows, hidden_size]        block input (residual stream)
  std::vector<float> attn_in;  // [rows, hidden_size]        q/k/v input: rmsnorm(x) * attn_norm
  std::vector<float> o_in;     // [rows, n_heads*head_dim]   o_proj input: attention output
  std::vector<float> mlp_in;   // [rows, hidden_size]        gate/up input: rmsnorm(x + o) * mlp_norm
  std::vector<float> down_in;  // [rows, intermediate_size]  down_proj input: silu(gate) * up
};

// out[r] = x[r] / rms(x[r]) * w, for `rows` rows of `dim`.
void rmsnorm(float* out, const float* x, const float* w, int rows, int dim, float eps);
// y[m, n] = x[m, k] · W^T with W [n, k].
void linear(float* y, const float* x, const float* w, int m, int n, int k);
// y[m, n] += bias[n] for every row; nothing when bias is empty.
void add_bias(float* y, const std::vector<float>& bias, int m, int n);
// Self-attention of a block: q/k/v projections of xn, RoPE, causal GQA softmax attention, then
// o_proj. out [rows, hidden_size] is the o_proj output; o_in (optional) receives the o_proj input.
void attention(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int n_seq, int seq_len, float* out,
               std::vector<float>* o_in = nullptr);
// SwiGLU MLP: out [rows, hidden_size] = down(silu(gate(xn)) * up(xn)); down_in (optional) receives the
// down_proj input.
void mlp(const LlamaConfig& c, const CpuLayer& layer, const float* xn, int rows, float* out,
         std::vector<float>* down_in = nullptr);
// x [rows, hidden_size] <- block(x), in place. capture (optional) receives every linear group's input.
void block_forward(const LlamaConfig& c, const CpuLayer& layer, float* x, int n_seq, int seq_len,
                   BlockInputs* capture = nullptr);

// The buffers one forward pass works in (llama2.c's RunState): activations, q/k/v, attention scores,
// per-thread weight tiles. Sized for the largest window seen, grown and never shrunk.
struct RunState;

// A model evaluated on the CPU from its weights as stored: every linear (F32/F16/BF16, GGUF blocks,
// quantized codes with kept FP16 columns) is widened a tile of output rows at a time into a scratch
// of the run state and multiplied there, the embedding widens only the rows of the tokens used.
// Holds a copy of the Model (its tensors share the file mapping) and no FP32 copy of any weight
// matrix. One window at a time: the run state is not shared between threads.
class CpuModel {
 public:
  explicit CpuModel(const Model& model, Activations activations = Activations::Exact);
  ~CpuModel();
  CpuModel(CpuModel&&) noexcept;
  const LlamaConfig& config() const { return model_.config; }
  // x [n_tokens, hidden_size] = embedding rows of tokens.
  void embed(const int* tokens, int n_tokens, float* x) const;
  // logits [n_seq*seq_len, vocab] for n_seq sequences of seq_len tokens (tokens row-major).
  void forward(const int* tokens, int n_seq, int seq_len, std::vector<float>& logits) const;
  // The final norm and lm_head on the residual stream x [rows, hidden_size] -> logits [rows, vocab].
  void head(const float* x, int rows, std::vector<float>& logits) const;

 private:
  Model model_;
  // Per layer its norms, biases and activation formats (CpuLayer without widened linears).
  std::vector<CpuLayer> small_;
  std::vector<float> norm_;  // [hidden_size]
  ActivationFormat head_act_ = ActivationFormat::Exact;  // lm_head's input format
  std::unique_ptr<RunState> state_;
};

}  // namespace qb
