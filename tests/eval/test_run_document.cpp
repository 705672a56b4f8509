// The run document as a pure function of measured sums: every derived number checked by hand.
#include <catch2/catch.hpp>

#include <cmath>

#include "datasets/dataset.h"
#include "eval/run_document.h"
#include "random_model.h"

using namespace qb;

namespace {

LockstepSums sums_of(std::vector<double> nll, std::vector<double> kl, size_t top1_same, double seconds) {
  LockstepSums s;
  for (double v : nll) s.nll.add(v);
  for (double v : kl) {
    s.kl.add(v);
    s.kl_values.push_back(v);
  }
  s.top1_same = top1_same;
  s.tokens_run = 10;
  s.seconds = seconds;
  return s;
}

}  // namespace

TEST_CASE("eval_run_document derives quality, size and speed from the sums alone") {
  const Model model = test::random_model(test::small_config(false), 3);
  TextDataset dataset;
  dataset.path = "story.txt";
  dataset.format = DatasetFormat::Text;
  dataset.sha256 = "00";
  dataset.bytes = 12;

  EvalResults r;
  r.tool = {{"name", "quantbench"}};
  r.host = {{"cores", 2}};
  r.created = "2026-12-01T00:00:00Z";
  r.device = nullptr;
  r.model = &model;
  r.tokenizer_path = "tok.model";
  r.tokenizer_vocab_size = model.config.vocab_size;
  r.dataset = &dataset;
  r.dataset_tokens = 40;
  r.protocol.ctx = 5;
  r.windows = 2;
  r.methods.push_back({"fp16", "fp16", nullptr, nullptr, {{"F16", 1000}}, Device::Cpu, nullptr,
                       sums_of({1.0, 2.0, 3.0, 2.0}, {}, 0, 0.5)});
  r.methods.push_back({"rtn", "rtn w4 g32", {{"bits", 4}, {"group_size", 32}}, nlohmann::json::array(),
                       {{"F16", 200}, {"Q4", 50}}, Device::Cpu, nullptr,
                       sums_of({2.0, 2.0, 3.0, 3.0}, {0.1, 0.3, 0.2, 0.4}, 3, 2.0)});
  r.vram_catalog = nlohmann::json::array();

  const nlohmann::json doc = eval_run_document(r);
  CHECK(doc["schema"] == "quantbench.run");
  CHECK(doc["kind"] == "eval");
  CHECK(doc["created"] == r.created);
  CHECK(doc["model"]["architecture"]["dim"] == model.config.hidden_size);
  CHECK(doc["model"]["architecture"]["hidden_dim"] == model.config.intermediate_size);
  CHECK(doc["dataset"]["format"] == "text");
  CHECK(doc["protocol"]["name"] == "paper");
  CHECK(doc["tokenizer"]["bos"] == doc["protocol"]["bos"]);

  const auto& ref = doc["methods"][0];
  CHECK(ref["method"] == "fp16");
  CHECK(ref["quality"]["ppl"].get<double>() == Approx(std::exp(2.0)));
  CHECK(ref["quality"]["tokens_scored"] == 4);
  CHECK(ref["quality"]["windows"] == 2);
  for (const char* versus : {"delta_ppl_pct", "kl_mean", "kl_stderr", "kl_p99", "top1_agreement"})
    CHECK(ref["quality"][versus].is_null());
  CHECK(ref["speed"]["device"] == "cpu");
  CHECK(ref["speed"]["tokens_per_s"].get<double>() == Approx(20.0));
  CHECK_FALSE(ref.contains("layers"));

  const auto& rtn = doc["methods"][1];
  CHECK(rtn["label"] == "rtn w4 g32");
  CHECK(rtn["quality"]["ppl"].get<double>() == Approx(std::exp(2.5)));
  CHECK(rtn["quality"]["delta_ppl_pct"].get<double>() == Approx(100.0 * (std::exp(0.5) - 1.0)));
  CHECK(rtn["quality"]["kl_mean"].get<double>() == Approx(0.25));
  CHECK(rtn["quality"]["kl_p99"].get<double>() == Approx(0.4));
  CHECK(rtn["quality"]["top1_agreement"].get<double>() == Approx(0.75));
  CHECK(rtn["quality"]["ppl_stderr"].get<double>() ==
        Approx(std::exp(2.5) * std::sqrt((1.0 / 3.0) / 4.0)));  // sample variance 1/3 of {2,2,3,3}
  CHECK(rtn["size"]["weight_bytes"] == 250);
  CHECK(rtn["size"]["saving_vs_fp16"].get<double>() == Approx(4.0));
  CHECK(rtn["size"]["bits_per_weight"].get<double>() == Approx(8.0 * 250 / double(model.parameter_count())));
  CHECK(rtn["size"]["bytes_by_dtype"]["Q4"] == 50);
  CHECK(rtn["layers"].is_array());
  CHECK(doc["vram"]["catalog"].is_array());
  CHECK_FALSE(doc["vram"].contains("per_method"));
  // The same results give the same document.
  CHECK(eval_run_document(r) == doc);
}
