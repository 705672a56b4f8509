// eval --mode sequential against --mode lockstep on the embedded default (datasets/embedded: the
// trained stories-d256-l2 and WikiText-2, so CI runs it without ../shared): the same perplexities and
// top-1 agreement bit for bit, KL within the document's stated bound, and the measured KL error of
// the stored reference (eval/reference_store.h) printed for the record.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

#include "jobs/eval_job.h"
#include "random_model.h"
#include "reports/run_schema.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() { return ""; }  // the embedded default is part of the repository

namespace {

EvalOptions options(int ctx, int windows, const std::string& methods) {
  const std::string embedded = QB_EMBEDDED;
  EvalOptions o;
  o.model_path = embedded + "/models/stories-d256-l2";
  o.dataset_path = embedded + "/text/wikitext-2-raw/wiki.test.raw";
  o.protocol.ctx = ctx;
  o.protocol.max_windows = windows;
  o.methods = parse_methods(methods, 4, 128);
  o.quantize.calib_path = embedded + "/text/wikitext-2/valid.txt";
  o.quantize.calib_samples = 4;
  o.quantize.calib_seq_len = 64;
  o.device = DeviceChoice::Cpu;
  return o;
}

// Runs both modes and compares their documents method by method.
void compare_modes(EvalOptions o, const std::string& name) {
  o.mode = EvalMode::Lockstep;
  const nlohmann::json lockstep = run_eval(o);
  o.mode = EvalMode::Sequential;
  o.scratch_dir = test::temp_dir("eval-sequential");
  const nlohmann::json sequential = run_eval(o);
  CHECK(std::filesystem::is_empty(o.scratch_dir));  // the store is removed
  reports::validate_run(sequential);
  reports::validate_run(lockstep);
  CHECK(lockstep["reference"]["mode"] == "lockstep");
  CHECK(lockstep["memory_plan"]["mode"] == "lockstep");
  const nlohmann::json& ref = sequential["reference"];
  CHECK(ref["mode"] == "sequential");
  CHECK(sequential["memory_plan"]["requested"] == "sequential");
  const double bound = ref["kl_error_bound"].get<double>(), bound_max = ref["kl_error_bound_max_token"].get<double>();
  const size_t scored = lockstep["methods"][0]["quality"]["tokens_scored"].get<size_t>();
  CHECK(ref["store_bytes"].get<size_t>() == scored * ref["bytes_per_token"].get<size_t>());

  REQUIRE(sequential["methods"].size() == lockstep["methods"].size());
  for (size_t i = 0; i < lockstep["methods"].size(); ++i) {
    const auto& l = lockstep["methods"][i]["quality"];
    const auto& s = sequential["methods"][i]["quality"];
    INFO(name << " " << lockstep["methods"][i]["label"]);
    CHECK(sequential["methods"][i]["label"] == lockstep["methods"][i]["label"]);
    // NLL does not involve the reference: the same numbers exactly.
    CHECK(s["tokens_scored"] == l["tokens_scored"]);
    CHECK(s["ppl"].get<double>() == l["ppl"].get<double>());
    CHECK(s["mean_nll"].get<double>() == l["mean_nll"].get<double>());
    CHECK(s["nll_stderr"].get<double>() == l["nll_stderr"].get<double>());
    CHECK(s["delta_ppl_pct"] == l["delta_ppl_pct"]);
    if (i == 0) continue;
    // The argmax is stored exactly.
    CHECK(s["top1_agreement"].get<double>() == l["top1_agreement"].get<double>());
    const double kl = l["kl_mean"].get<double>(), error = std::fabs(s["kl_mean"].get<double>() - kl);
    CHECK(error <= bound);
    CHECK(std::fabs(s["kl_p99"].get<double>() - l["kl_p99"].get<double>()) <= bound_max);
    WARN(name << " " << lockstep["methods"][i]["label"].get<std::string>() << ": KL mean " << kl << ", sequential "
              << s["kl_mean"].get<double>() << ", |error| " << error << " (" << 100 * error / kl
              << "%), stated bound " << bound << "; " << ref["bytes_per_token"] << " bytes per scored token");
  }
}

}  // namespace

TEST_CASE("sequential mode gives lockstep's numbers on stories-d256-l2") {
  compare_modes(options(128, 8, "fp16,rtn,awq"), "stories-d256-l2");
}

TEST_CASE("auto picks sequential when only it fits, and refuses when nothing does") {
  EvalOptions o = options(65, 2, "fp16,rtn");
  o.scratch_dir = test::temp_dir("eval-auto");
  // Lockstep holds two backends' activations, sequential one; a budget between the two.
  o.memory_budget_bytes = 1;
  CHECK_THROWS_WITH(run_eval(o), Catch::StartsWith("eval: does not fit: lockstep needs ~"));
  o.mode = EvalMode::Lockstep;
  CHECK_THROWS_WITH(run_eval(o), Catch::StartsWith("eval --mode lockstep: lockstep needs ~"));
  o.mode = EvalMode::Auto;
  o.memory_budget_bytes = 0;
  const nlohmann::json fits = run_eval(o);
  const size_t lockstep = fits["memory_plan"]["lockstep_bytes"], sequential = fits["memory_plan"]["sequential_bytes"];
  CHECK(fits["memory_plan"]["mode"] == "lockstep");
  REQUIRE(sequential < lockstep);
  o.memory_budget_bytes = sequential;
  const nlohmann::json run = run_eval(o);
  CHECK(run["memory_plan"]["mode"] == "sequential");
  CHECK(run["reference"]["mode"] == "sequential");
  CHECK_THAT(run["memory_plan"]["why"].get<std::string>(), Catch::Contains("more than the"));
  CHECK(run["methods"][1]["quality"]["ppl"] == fits["methods"][1]["quality"]["ppl"]);
}
