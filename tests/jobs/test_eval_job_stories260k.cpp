// The eval job (src/jobs) end to end on the shared stories260K model: the manifest's reference perplexities
// (float64 numpy forward, 256-token windows with BOS each, first 20 windows) and bad inputs.
#include <catch2/catch.hpp>

#include "common/files.h"
#include "jobs/eval_job.h"
#include "random_model.h"
#include "reports/run_schema.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories260K/stories260K.bin", "models/stories260K/tok512.model",
                        "tokenizers/llama2/tokenizer.model", "text/tinystories/tinystories_train_head.txt",
                        "text/wikitext-2-raw/wiki.test.raw"})
    if (auto r = test::require_data(f); !r.empty()) return r;
  return "";
}

static EvalOptions manifest_options(const std::string& dataset) {
  EvalOptions o;
  o.model_path = test::data_file("models/stories260K/stories260K.bin");
  o.tokenizer_path = test::data_file("models/stories260K/tok512.model");
  o.dataset_path = test::data_file(dataset);
  o.protocol.ctx = 257;  // BOS + 256 text tokens, all 256 scored
  o.protocol.bos = BosPlacement::Window;
  o.protocol.max_windows = 20;
  return o;
}

TEST_CASE("stories260K reproduces the manifest's reference perplexities") {
  const auto run = run_eval(manifest_options("text/tinystories/tinystories_train_head.txt"));
  const auto& q = run["methods"][0]["quality"];
  CHECK(q["tokens_scored"] == 5120);
  CHECK(q["windows"] == 20);
  CHECK(q["ppl"].get<double>() == Approx(4.878).epsilon(0.0005));
  CHECK(run["dataset"]["sha256"] == "727e8b228375be3075114c20729c93ed6e81ae5d8fe7faf7cb54b304f0322d70");

  EvalOptions wiki = manifest_options("text/wikitext-2-raw/wiki.test.raw");
  wiki.dataset_format = DatasetFormat::Text;  // the manifest scored the file's bytes, not the HF-row join
  CHECK(run_eval(wiki)["methods"][0]["quality"]["ppl"].get<double>() == Approx(132.7).epsilon(0.001));
}

TEST_CASE("bad inputs give one-line errors naming the file") {
  EvalOptions o = manifest_options("text/tinystories/tinystories_train_head.txt");
  const std::string dir = test::temp_dir("eval-bad");
  SECTION("tokenizer vocab does not match the model") {
    o.tokenizer_path = test::data_file("tokenizers/llama2/tokenizer.model");
    CHECK_THROWS_WITH(run_eval(o), Catch::Contains("tokenizer.model: vocab size 32000 does not match the model's "
                                                   "vocab_size 512"));
  }
  SECTION("empty dataset") {
    write_file_atomic(dir + "/empty.txt", " \n\n");
    o.dataset_path = dir + "/empty.txt";
    CHECK_THROWS_WITH(run_eval(o), Catch::Contains("empty.txt: dataset is empty"));
  }
  SECTION("dataset shorter than one window") {
    write_file_atomic(dir + "/short.txt", "Once upon a time.");
    o.dataset_path = dir + "/short.txt";
    CHECK_THROWS_WITH(run_eval(o), Catch::Contains("short.txt") && Catch::Contains("shorter than one window"));
  }
  SECTION("missing dataset") {
    o.dataset_path = dir + "/missing.txt";
    CHECK_THROWS_WITH(run_eval(o), Catch::Contains("missing.txt: cannot open"));
  }
  SECTION("missing tokenizer") {
    o.tokenizer_path = dir + "/none.model";
    CHECK_THROWS_WITH(run_eval(o), Catch::Contains("none.model: tokenizer model not found"));
  }
  SECTION("not a tokenizer") {
    write_file_atomic(dir + "/bogus.model", "not a protobuf");
    o.tokenizer_path = dir + "/bogus.model";
    CHECK_THROWS_WITH(run_eval(o), Catch::Contains("bogus.model: not a sentencepiece model"));
  }
}

TEST_CASE("the run document carries provenance and per-method quality") {
  EvalOptions o = manifest_options("text/tinystories/tinystories_train_head.txt");
  o.protocol.max_windows = 2;
  o.methods = parse_methods("fp16,rtn:w4g32", 4, 128);
  const auto run = run_eval(o);
  CHECK_NOTHROW(reports::validate_run(run));
  CHECK(run["schema"] == "quantbench.run");
  CHECK(run["kind"] == "eval");
  CHECK(run["model"]["parameters"] == 260032);
  CHECK(run["model"]["weight_bytes_by_dtype"]["F32"] == 1040128);
  REQUIRE(run["methods"].size() == 2);
  const auto& rtn = run["methods"][1];
  CHECK(rtn["label"] == "rtn w4 g32");
  CHECK(rtn["quality"]["kl_mean"].get<double>() > 0.0);
  CHECK(rtn["quality"]["top1_agreement"].get<double>() > 0.5);
  CHECK(rtn["size"]["saving_vs_fp16"].get<double>() > 1.0);
  CHECK(run["methods"][0]["size"]["weight_bytes"] == 520064);
}
