// GPTQ as a method beside RTN and AWQ in one eval run on stories-d256-l2 (CPU), each quantized
// method's quantization time recorded; and GPTQ checkpoints evaluated with --load: ours (family
// from its report, or from the format without one) and one with act-order groups (g_idx), which
// runs on the CPU.
#include <catch2/catch.hpp>

#include <cmath>

#include "datasets/tokenizer.h"
#include "jobs/eval_job.h"
#include "model/load.h"
#include "quant/gptq_format.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories-d256-l2/config.json", "models/stories-d256-l2/tokenizer.model",
                        "text/tinystories/tinystories_sample.txt", "text/tinystories/tinystories_train_head.txt"})
    if (auto r = test::require_data(f); !r.empty()) return r;
  return "";
}

namespace {
EvalOptions small_eval() {
  EvalOptions o;
  o.model_path = test::data_file("models/stories-d256-l2");
  o.dataset_path = test::data_file("text/tinystories/tinystories_sample.txt");
  o.protocol.ctx = 64;
  o.protocol.max_windows = 2;
  o.device = DeviceChoice::Cpu;
  o.quantize.calib_path = test::data_file("text/tinystories/tinystories_train_head.txt");
  o.quantize.calib_samples = 4;
  o.quantize.calib_seq_len = 64;
  return o;
}
}  // namespace

TEST_CASE("eval: fp16, rtn, awq and gptq in one run, with their quantization seconds") {
  EvalOptions o = small_eval();
  o.methods = parse_methods("fp16,rtn,awq,gptq", 4, 64);
  const nlohmann::json run = run_eval(o);
  REQUIRE(run["methods"].size() == 4);
  const auto& gptq = run["methods"][3];
  CHECK(gptq["method"] == "gptq");
  CHECK(gptq["label"] == "gptq w4 g64");
  CHECK(gptq["quantization"]["calibration"]["chain"] == "quantized");
  CHECK(run["methods"][2]["quantization"]["calibration"]["chain"] == "fp16");
  for (int i = 1; i < 4; ++i) {
    INFO(run["methods"][i]["label"]);
    CHECK(run["methods"][i]["quantization"]["seconds"].get<double>() > 0.0);
    CHECK(std::isfinite(run["methods"][i]["quality"]["ppl"].get<double>()));
  }
  CHECK(gptq["layers"].size() == 2 * 7);
}

TEST_CASE("eval --load: GPTQ checkpoints, with and without a report, and with act-order groups") {
  const EvalOptions base = small_eval();
  const auto tokenizer = open_tokenizer(test::data_file("models/stories-d256-l2/tokenizer.model"));
  QuantizeOptions q = base.quantize;
  q.family = MethodFamily::Gptq;
  q.group_size = 64;
  q.act_order = true;
  const QuantizeResult r = quantize_model(to_fp16(load_model(base.model_path)), q, tokenizer.get());
  const std::string root = test::temp_dir("eval-gptq");
  write_gptq_checkpoint(r.model, root + "/with-report", {"", {{"quantization", r.quantization}}, true, q.gptq_damp});
  write_gptq_checkpoint(r.model, root + "/bare");
  // The same weights with layer 0's down_proj (k = intermediate) groups assigned out of order.
  Model act = r.model;
  QuantizedWeight down = *act.layers[0].down_proj.quant;
  down.g_idx.resize(down.k);
  for (int i = 0; i < down.k; ++i) down.g_idx[i] = (i * 7) % down.n_groups();
  act.layers[0].down_proj.quant = std::make_shared<const QuantizedWeight>(down);
  write_gptq_checkpoint(act, root + "/act-order");
  CHECK(load_gptq_checkpoint(root + "/act-order").layers[0].down_proj.quant->g_idx == down.g_idx);

  EvalOptions o = base;
  o.methods.clear();
  for (const char* dir : {"/with-report", "/bare", "/act-order"}) {
    MethodSpec s;
    s.checkpoint_dir = root + dir;
    o.methods.push_back(s);
  }
  const nlohmann::json run = run_eval(o);
  REQUIRE(run["methods"].size() == 4);
  for (int i = 1; i < 4; ++i) {
    CHECK(run["methods"][i]["method"] == "gptq");
    CHECK(run["methods"][i]["quantization"]["group_size"] == 64);
  }
  // The report records how the checkpoint was made, its quantization time included; a bare
  // checkpoint says only what its weights show.
  CHECK(run["methods"][1]["quantization"]["search"]["desc_act"] == true);
  CHECK(run["methods"][1]["quantization"].contains("seconds"));
  CHECK_FALSE(run["methods"][2]["quantization"].contains("seconds"));
  // Same weights, same logits.
  CHECK(run["methods"][1]["quality"]["ppl"] == run["methods"][2]["quality"]["ppl"]);
  CHECK(run["methods"][3]["quality"]["ppl"] != run["methods"][2]["quality"]["ppl"]);
}
