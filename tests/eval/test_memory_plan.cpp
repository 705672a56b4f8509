// The eval memory plan's arithmetic on Llama-2-7B's config, every figure worked out by hand in the
// comments, and the choice between lockstep and sequential it drives.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "eval/memory_plan.h"

using namespace qb;

namespace {

// Llama-2-7B (HF config.json): hidden 4096, intermediate 11008, 32 layers, 32 heads (no GQA),
// vocab 32000.
LlamaConfig llama2_7b() {
  LlamaConfig c;
  c.hidden_size = 4096;
  c.intermediate_size = 11008;
  c.n_layers = 32;
  c.n_heads = 32;
  c.n_kv_heads = 32;
  c.vocab_size = 32000;
  c.max_seq_len = 4096;
  return c;
}

}  // namespace

TEST_CASE("the plan's terms on Llama-2-7B") {
  const LlamaConfig c = llama2_7b();
  // w4 g128 with zero points: per weight 1/2 B of code, per group of 128 one FP16 scale (2 B) and
  // one 4-bit zero (1/2 B): n k (1/2 + 2/128 + 1/256) = n k 133/256. Attention linear:
  // 16,777,216 / 256 x 133 = 8,716,288; MLP linear: 45,088,768 / 256 x 133 = 23,425,024. Block:
  // 4 x 8,716,288 + 3 x 23,425,024 = 105,140,224; 32 blocks: 3,364,487,168.
  CHECK(quantized_linear_bytes(c, 4, 128) == 3364487168ull);
  // rtn-keep 1% of each linear's input channels in FP16: llround(0.01 x 4096) = 41 channels x 4096
  // rows x 2 B = 335,872 for q, k, v, o (1,343,488) and gate, up (41 x 11008 x 2 = 902,656 each);
  // down: llround(110.08) = 110 x 4096 x 2 = 901,120. Per block 1,343,488 + 1,805,312 + 901,120 =
  // 4,049,920; 32 blocks 129,597,440 on top of the 3,364,487,168.
  CHECK(quantized_linear_bytes(c, 4, 128, 0.01) == 3364487168ull + 129597440ull);
  // ctx 512: per token hidden 4096 + q/k/v 3 x 4096 + 2 x 11008 + 32000 = 70,400 floats (281,600 B);
  // x 512 = 144,179,200; attention scores 32 x 512 x 512 x 4 = 33,554,432. Sum 177,733,632.
  CHECK(forward_activation_bytes(c, 512) == 177733632ull);
}

TEST_CASE("lockstep holds every method, sequential the largest") {
  MemoryPlanInputs in;
  in.config = llama2_7b();
  // 6,738,415,616 parameters x 2 B (F16 as stored).
  in.fp16_weight_bytes = 13476831232ull;
  in.methods = {{"rtn w4 g128", 3364487168ull}, {"awq w4 g128", 3364487168ull}};
  in.quantization_bytes = 7990149120ull;  // as the quantizer plans it (quant/quantize.h)
  in.ctx = 512;
  in.scored_tokens = 1000;
  const MemoryPlan p = plan_eval_memory(in);
  CHECK(p.weights_lockstep == 13476831232ull + 2 * 3364487168ull);  // 20,205,805,568
  CHECK(p.weights_sequential == 13476831232ull + 3364487168ull);    // 16,841,318,400
  CHECK(p.quantization == 809500672ull + 7180648448ull);             // 7,990,149,120
  CHECK(p.activations_lockstep == 3 * 177733632ull);               // 533,200,896: one per backend
  // One backend + one window of store records, 512 x (4 + 2 x 32000) = 32,770,048.
  CHECK(p.activations_sequential == 177733632ull + 32770048ull);
  CHECK(p.lockstep_bytes == 20205805568ull + 7990149120ull + 533200896ull);    // 28,729,155,584
  CHECK(p.sequential_bytes == 16841318400ull + 7990149120ull + 210503680ull);  // 25,041,971,200
  CHECK(p.store_bytes == 64004000ull);  // 1000 x 64,004

  SECTION("auto takes lockstep when it fits") {
    const ModeChoice m = choose_eval_mode(EvalMode::Auto, p, 30e9, 1e12, "/tmp");
    CHECK(m.mode == EvalMode::Lockstep);
    CHECK(memory_plan_line(in, p, m, 30e9) ==
          "eval: needs ~28.7 GB: weights 20.2 GB (fp16 13.5 GB as stored, rtn w4 g128 3.4 GB, awq w4 g128 3.4 GB), "
          "quantization 8.0 GB, activations 0.5 GB; this machine has 30.0 GB available (lockstep: auto: the lockstep "
          "plan fits)");
  }
  SECTION("auto takes sequential when only it fits, and says why") {
    const ModeChoice m = choose_eval_mode(EvalMode::Auto, p, 26e9, 1e12, "/tmp");
    CHECK(m.mode == EvalMode::Sequential);
    CHECK_THAT(m.why, Catch::Contains("lockstep needs ~28.7 GB, more than the 26.0 GB available"));
    const auto doc = memory_plan_json(in, p, EvalMode::Auto, m, 26e9);
    CHECK(doc["mode"] == "sequential");
    CHECK(doc["needed_bytes"] == p.sequential_bytes);
  }
  SECTION("nothing fits: one line, before anything is loaded") {
    CHECK_THROWS_WITH(choose_eval_mode(EvalMode::Auto, p, 20e9, 1e12, "/tmp"),
                      Catch::StartsWith("eval: does not fit: lockstep needs ~28.7 GB, sequential needs ~25.0 GB"));
    CHECK_THROWS_WITH(choose_eval_mode(EvalMode::Auto, p, 26e9, 1e6, "/tmp"), Catch::Contains("(1.0 MB free there)"));
  }
  SECTION("an explicit mode that does not fit is refused, naming the one that would") {
    CHECK_THROWS_WITH(choose_eval_mode(EvalMode::Lockstep, p, 26e9, 1e12, "/tmp"),
                      Catch::Contains("--mode sequential fits"));
    CHECK(choose_eval_mode(EvalMode::Sequential, p, 26e9, 1e12, "/tmp").mode == EvalMode::Sequential);
  }
}
