// A quantized checkpoint evaluated with the FP16 model it came from: the run document names its
// family from the checkpoint (an RTN checkpoint is "rtn", not "awq") and its settings.
#include <catch2/catch.hpp>

#include "jobs/eval_job.h"
#include "model/load.h"
#include "quant/awq_format.h"
#include "random_model.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories-d256-l2/config.json", "models/stories-d256-l2/tokenizer.model",
                        "text/tinystories/tinystories_sample.txt"})
    if (auto r = test::require_data(f); !r.empty()) return r;
  return "";
}

TEST_CASE("an RTN checkpoint is evaluated as rtn, with the settings its report records") {
  const std::string model_dir = test::data_file("models/stories-d256-l2");
  QuantizeOptions q;
  q.family = MethodFamily::Rtn;
  q.group_size = 64;
  const QuantizeResult rtn = quantize_model(to_fp16(load_model(model_dir)), q, nullptr);
  const std::string checkpoint = test::temp_dir("eval-ckpt") + "/rtn";
  write_awq_checkpoint(rtn.model, checkpoint, {"", {{"quantization", rtn.quantization}}});

  EvalOptions o;
  o.model_path = model_dir;
  o.dataset_path = test::data_file("text/tinystories/tinystories_sample.txt");
  o.protocol.ctx = 64;
  o.protocol.max_windows = 2;
  o.device = DeviceChoice::Cpu;
  MethodSpec from_checkpoint;
  from_checkpoint.checkpoint_dir = checkpoint;
  o.methods = {from_checkpoint};
  const nlohmann::json run = run_eval(o);
  REQUIRE(run["methods"].size() == 2);
  const auto& m = run["methods"][1];
  CHECK(m["method"] == "rtn");
  CHECK(m["label"] == "rtn (" + checkpoint + ")");
  CHECK(m["quantization"]["checkpoint"] == checkpoint);
  CHECK(m["quantization"]["group_size"] == 64);
  CHECK(m["quality"]["kl_mean"].get<double>() > 0.0);
  // The catalog projection names the setting, not the directory.
  bool projected = false;
  for (const auto& e : run["vram"]["catalog"]) projected = projected || e["label"] == "rtn w4 g64";
  CHECK(projected);
}
