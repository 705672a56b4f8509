// Block-streamed quantization (quantize_model with a sink into quant/hf_checkpoint.h's
// QuantizedCheckpointStream, as `quantbench quantize` runs it) on a tiny generated model: the
// sharded checkpoint holds, tensor for tensor, the bytes the whole-model writers write; it loads
// back as the model quantized in memory; and the stream leaves nothing behind when it fails.
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "model/generate_model.h"
#include "model/load.h"
#include "quant/awq_format.h"
#include "quant/gptq_format.h"
#include "random_model.h"
#include "streamed_checkpoint.h"

using namespace qb;

namespace {

// Two layers of a GQA shape whose linears pack in both formats at g32.
Model generated_fp16(const std::string& dir) {
  LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.vocab_size = 80;
  c.max_seq_len = 128;
  GenerateOptions g;
  g.seed = 11;
  g.shard_bytes = 30'000;
  generate_model(c, dir, g);
  return to_fp16(load_hf_directory(dir));
}

QuantizeOptions rtn_g32(bool symmetric) {
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.group_size = 32;
  o.symmetric = symmetric;
  return o;
}

constexpr uint64_t kSmallShards = 20'000;  // several shards for a ~60 KB checkpoint

}  // namespace

TEST_CASE("RTN streamed into sharded AutoAWQ shards equals the whole-model checkpoint, tensor for tensor") {
  const std::string root = test::temp_dir("streamed-awq");
  const Model fp16 = generated_fp16(root + "/fp16");
  const QuantizeOptions o = rtn_g32(false);
  const QuantizeResult whole = quantize_model(fp16, o, nullptr);
  write_awq_checkpoint(whole.model, root + "/whole");
  CHECK(file_exists(root + "/whole/model.safetensors"));

  const test::StreamedQuantize streamed = test::quantize_streamed(
      fp16, o, nullptr, root + "/streamed", awq_checkpoint_format(checkpoint_group_size(fp16.config, 32)), kSmallShards);
  CHECK_FALSE(streamed.result.model.layers[0].q_proj.quant);  // handed over, not kept
  CHECK(streamed.result.layers == whole.layers);
  const nlohmann::json index = read_json_file(root + "/streamed/model.safetensors.index.json");
  const std::string first = index["weight_map"]["model.embed_tokens.weight"];
  const std::string last = index["weight_map"]["lm_head.weight"];
  CHECK(first.substr(0, 12) == "model-00001-");
  CHECK(last.substr(6, 5) == last.substr(15, 5));  // model-0000N-of-0000N
  CHECK(std::stoi(last.substr(6, 5)) >= 3);
  test::check_same_tensors(root + "/whole", root + "/streamed");
  CHECK(read_json_file(root + "/whole/config.json") == read_json_file(root + "/streamed/config.json"));
  test::check_same_model(load_awq_checkpoint(root + "/streamed"), whole.model);
  test::check_same_model(streamed.blocks, whole.model);
}

TEST_CASE("RTN streamed into sharded GPTQ shards equals the whole-model checkpoint, tensor for tensor") {
  const std::string root = test::temp_dir("streamed-gptq");
  const Model fp16 = generated_fp16(root + "/fp16");
  const QuantizeOptions o = rtn_g32(true);
  const QuantizeResult whole = quantize_model(fp16, o, nullptr);
  write_gptq_checkpoint(whole.model, root + "/whole");
  const test::StreamedQuantize streamed =
      test::quantize_streamed(fp16, o, nullptr, root + "/streamed",
                              gptq_checkpoint_format(4, checkpoint_group_size(fp16.config, 32), true, {}), kSmallShards);
  CHECK(file_exists(root + "/streamed/model.safetensors.index.json"));
  test::check_same_tensors(root + "/whole", root + "/streamed");
  CHECK(read_json_file(root + "/whole/quantize_config.json") == read_json_file(root + "/streamed/quantize_config.json"));
  test::check_same_model(load_gptq_checkpoint(root + "/streamed"), whole.model);
}

TEST_CASE("a stream that fails or is dropped unfinished leaves no directory") {
  const std::string root = test::temp_dir("streamed-fail");
  const Model fp16 = generated_fp16(root + "/fp16");
  const CheckpointFormat format = awq_checkpoint_format(32);
  {
    QuantizedCheckpointStream stream(fp16.config, root + "/dropped", format, kSmallShards);
    stream.write_embeddings(fp16.embed_tokens);
  }
  CHECK_FALSE(std::filesystem::exists(root + "/dropped"));
  // Block 0 still dense: refused by name, nothing left.
  CHECK_THROWS_WITH(
      [&] {
        QuantizedCheckpointStream stream(fp16.config, root + "/dense", format, kSmallShards);
        stream.write_embeddings(fp16.embed_tokens);
        stream.write_block(0, fp16.layers[0]);
      }(),
      Catch::Contains("model.layers.0.self_attn.q_proj: not quantized"));
  // Blocks out of order.
  const QuantizeResult q = quantize_model(fp16, rtn_g32(false), nullptr);
  CHECK_THROWS_WITH(
      [&] {
        QuantizedCheckpointStream stream(fp16.config, root + "/order", format, kSmallShards);
        stream.write_embeddings(fp16.embed_tokens);
        stream.write_block(1, q.model.layers[1]);
      }(),
      Catch::Contains("'model.layers.1.input_layernorm.weight' written out of plan order"));
  CHECK_THROWS_WITH(QuantizedCheckpointStream(fp16.config, root + "/fp16", format, kSmallShards),
                    Catch::Contains("already exists"));
  for (const auto& entry : std::filesystem::directory_iterator(root)) CHECK(entry.path().filename() == "fp16");
  // A sink is not for gguf, which quantizes whole files.
  QuantizeOptions gguf;
  gguf.family = MethodFamily::Gguf;
  gguf.gguf_type = "q8_0";
  CHECK_THROWS_WITH(quantize_model(fp16, gguf, nullptr, [](int, const LayerWeights&) {}),
                    Catch::Contains("not streamed blocks"));
}

TEST_CASE("the memory plan counts one block, the activations and the embeddings") {
  const std::string root = test::temp_dir("streamed-plan");
  const Model fp16 = generated_fp16(root + "/fp16");
  QuantizeOptions o = rtn_g32(false);
  const QuantizeMemoryPlan rtn = plan_quantize_memory(fp16, o);
  CHECK(rtn.activations == 0);
  CHECK(rtn.fp16_copy == 0);
  CHECK(rtn.embeddings == 80 * 64 * 2);
  // Block as stored: 2 norms of 64 + q 64x64 + k, v 32x64 + o 64x64 + gate, up 96x64 + down 64x96, F16.
  const size_t params = 64 * 64 * 2 + 32 * 64 * 2 + 96 * 64 * 3;
  CHECK(rtn.block == 2 * (2 * 64 + params) + params + 96 * 64 * 12);
  o.family = MethodFamily::Awq;
  o.calib_samples = 4;
  o.calib_seq_len = 32;
  const QuantizeMemoryPlan awq = plan_quantize_memory(fp16, o);
  CHECK(awq.block > rtn.block);
  CHECK(awq.activations == size_t(4) * 32 * 4 * (12 * 64 + 3 * 96));
  CHECK(plan_quantize_memory(test::random_model(fp16.config, 1), o).fp16_copy > 0);  // F32 source
}
