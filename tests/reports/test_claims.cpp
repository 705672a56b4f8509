// quantbench claims: the registry validates against its schema, the memory numbers match hand
// arithmetic, and each evaluator gives HOLDS / FAILS / NOT TESTED on fixtures, at its band's edges.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "common/files.h"
#include "eval/claims_catalog.h"
#include "model/model_catalog.h"
#include "reports/claims.h"
#include "reports_fixtures.h"

using nlohmann::json;
using qb::reports::ClaimsRun;
using qb::reports::evaluate_claims;

namespace {

const json& catalog() {
  static const json facts = qb::claims_catalog(qb::load_catalog_models(std::string(QB_SOURCE_ROOT) + "/bench/model_shapes.json"));
  return facts;
}

const json& registry() {
  static const json r = qb::reports::load_claims(std::string(QB_REPORTS_SOURCE_DIR) + "/claims/awq-public-claims.json", catalog());
  return r;
}

json claim(const std::string& id) {
  for (const json& c : registry().at("claims"))
    if (c.at("id") == id) return c;
  FAIL("no claim " << id);
  throw;
}

// The verdict of one claim (possibly edited) on the given runs.
json verdict(const json& one_claim, const std::vector<ClaimsRun>& runs = {}) {
  json r = registry();
  r["claims"] = json::array({one_claim});
  return evaluate_claims({r}, runs, catalog()).at("verdicts").at(0);
}

const json& entry(const std::string& model) {
  for (const json& e : catalog())
    if (e.at("model") == model) return e;
  FAIL("no catalog model " << model);
  throw;
}

std::string error_of(const json& bad) {
  try {
    qb::reports::validate_claims(bad, catalog(), "bad.json");
  } catch (const qb::Error& e) {
    return e.what();
  }
  return "";
}

// An eval run with FP16 (ppl 5.5 +- 0.0336), RTN w4 and the three rtn-keep choices at the given
// perplexities (stderr 0.01).
json keep_run(double rtn, double act, double weight, double random) {
  json run = qb::test::eval_fixture();
  json fp16 = run["methods"][0], base = run["methods"][1];
  REQUIRE(base["label"] == "rtn w4 g128");
  base["quality"]["ppl"] = rtn, base["quality"]["ppl_stderr"] = 0.01;
  json methods = {fp16, base};
  for (const auto& [by, ppl] : std::vector<std::pair<std::string, double>>{{"act", act}, {"weight", weight}, {"random", random}}) {
    json m = base;
    m["method"] = "rtn-keep", m["label"] = "rtn-keep " + by + " 1% w4 g128";
    m["quantization"]["keep"] = {{"by", by}, {"fraction", 0.01}};
    m["quality"]["ppl"] = ppl;
    methods.push_back(m);
  }
  run["methods"] = methods;
  return run;
}

// The eval fixture's AWQ w4 g128 (KL 0.0271, now +- 0.0003; 3,889,315,840 bytes; 10 s) with a copy of
// it as `label`: the given KL (+- 0.0004), weight bytes and quantization seconds.
json with_method(json run, const std::string& label, double kl, double bytes, double seconds) {
  json& awq = run["methods"][2];
  REQUIRE(awq["label"] == "awq w4 g128");
  awq["quality"]["kl_stderr"] = 0.0003, awq["quantization"]["seconds"] = 10.0;
  json m = awq;
  m["method"] = label.substr(0, label.find(' ')), m["label"] = label;
  m["quality"]["kl_mean"] = kl, m["quality"]["kl_stderr"] = 0.0004;
  m["size"]["weight_bytes"] = bytes, m["quantization"]["seconds"] = seconds;
  run["methods"].push_back(m);
  return run;
}

json with_method(const std::string& label, double kl, double bytes = 3889315840.0, double seconds = 25.0) {
  return with_method(qb::test::eval_fixture(), label, kl, bytes, seconds);
}

}  // namespace

TEST_CASE("the shipped registry validates against claims.schema.json") {
  CHECK(qb::reports::claims_schema().at("title") == "quantbench claims registry");
  // The nine, claims 2 and 4 as two quotes each, the GGUF/GPTQ sentence as five.
  CHECK(registry().at("claims").size() == 15);
  for (const json& c : registry().at("claims")) CHECK(c.at("tolerance").at("band").get<std::string>().size() > 10);
}

TEST_CASE("memory claims: catalog bytes match hand arithmetic") {
  const json& e = entry("llama-2-70b");
  // 70B: 68,976,648,192 parameters; FP16 2 bytes each (README: 137.95 GB); AWQ w4 g128 36.61 GB.
  CHECK(e.at("parameters") == 68976648192LL);
  CHECK(e.at("weight_bytes").at("fp16") == 2 * 68976648192LL);
  CHECK(e.at("weight_bytes").at("w4 g128").get<double>() / 1e9 == Approx(36.61).margin(0.005));
  // Llama-2-7B KV cache: 2 (K, V) * 32 layers * 32 kv heads * 128 head dim * 2 bytes per token.
  CHECK(entry("llama-2-7b").at("kv_bytes_per_token") == 2 * 32 * 32 * 128 * 2);

  const json v = verdict(claim("70b-memory"));
  CHECK(v.at("verdict") == "HOLDS");
  CHECK(v.at("numbers").at("llama-2-70b").at("fp16_bytes").get<double>() / 1e9 == Approx(137.95).margin(0.005));
  json tight = claim("70b-memory");
  tight["tolerance"]["relative"] = 0.01;  // 137.95 GB is 1.5% under 140 GB
  CHECK(verdict(tight).at("verdict") == "FAILS");
}

TEST_CASE("memory ratio: the band's edges are inclusive") {
  const double r7 = entry("llama-2-7b").at("weight_bytes").at("fp16").get<double>() /
                    entry("llama-2-7b").at("weight_bytes").at("w4 g128").get<double>();
  CHECK(r7 == Approx(13476831232.0 / 3889307648.0));
  json c = claim("4x-memory");
  c["models"] = {"llama-2-7b"};
  c["tolerance"]["min"] = r7, c["tolerance"]["max"] = r7;
  CHECK(verdict(c).at("verdict") == "HOLDS");
  c["tolerance"]["min"] = r7 * 1.0001, c["tolerance"]["max"] = 4.5;
  CHECK(verdict(c).at("verdict") == "FAILS");
}

TEST_CASE("AWQ vs RTN: HOLDS on the fixture, FAILS when one metric is worse, NOT TESTED without a run") {
  const json run = qb::test::eval_fixture();
  const json v = verdict(claim("awq-beats-rtn"), {{"eval.json", run}});
  CHECK(v.at("verdict") == "HOLDS");
  CHECK(v.at("evidence").at(0).get<std::string>().find("eval.json (") == 0);
  CHECK_FALSE(v.contains("caveat"));  // a 6.7B-parameter model is the claim's scale
  json worse = run;
  worse["methods"][2]["quality"]["top1_agreement"] = 0.935;  // a tie with RTN is not better
  CHECK(verdict(claim("awq-beats-rtn"), {{"eval.json", worse}}).at("verdict") == "FAILS");
  json tie = run;  // AWQ ppl above RTN's by the combined standard error hypot(0.0343, 0.0351) = 0.0491: a tie
  tie["methods"][2]["quality"]["ppl"] = 5.76 + 0.049;
  CHECK(verdict(claim("awq-beats-rtn"), {{"eval.json", tie}}).at("verdict") == "HOLDS");
  tie["methods"][2]["quality"]["ppl"] = 5.76 + 0.050;
  CHECK(verdict(claim("awq-beats-rtn"), {{"eval.json", tie}}).at("verdict") == "FAILS");
  const json none = verdict(claim("awq-beats-rtn"));
  CHECK(none.at("verdict") == "NOT TESTED");
  CHECK(none.at("reason").get<std::string>().find("no eval run") != std::string::npos);
}

TEST_CASE("quality loss: the bound is inclusive and small models are labelled") {
  json run = qb::test::eval_fixture();
  json c = claim("2pct-quality-loss");
  c["tolerance"]["max"] = 2.364;  // the fixture's AWQ w4 delta
  CHECK(verdict(c, {{"e.json", run}}).at("verdict") == "HOLDS");
  c["tolerance"]["max"] = 2.36;
  CHECK(verdict(c, {{"e.json", run}}).at("verdict") == "FAILS");
  run["model"]["parameters"] = 260032;
  CHECK(verdict(c, {{"e.json", run}}).at("caveat").get<std::string>().find("has 260,032 parameters") != std::string::npos);
  const json top1 = verdict(claim("95-99pct-accuracy"), {{"e.json", qb::test::eval_fixture()}});
  CHECK(top1.at("verdict") == "HOLDS");  // 0.951 >= 0.95
}

TEST_CASE("salient channels: act must recover 2x the others and beyond their standard errors") {
  const json c = claim("salient-1pct-channels");
  CHECK(verdict(c, {{"k.json", keep_run(6.0, 5.6, 5.9, 5.95)}}).at("verdict") == "HOLDS");   // 0.4 vs 0.1, 0.05
  CHECK(verdict(c, {{"k.json", keep_run(6.0, 5.6, 5.79, 5.95)}}).at("verdict") == "FAILS");  // 0.4 < 2 x 0.21
  CHECK(verdict(c, {{"k.json", keep_run(6.0, 5.985, 5.995, 6.0)}}).at("verdict") == "FAILS");  // 3x, but 0.01 < 0.014
  const json none = verdict(c, {{"e.json", qb::test::eval_fixture()}});
  CHECK(none.at("verdict") == "NOT TESTED");
  CHECK(none.at("would_test").get<std::string>().find("rtn-keep:act:1%") != std::string::npos);
  // RTN 0.03 above FP16 is inside hypot(0.01, 0.0336) = 0.035: no loss to recover.
  const json no_loss = verdict(c, {{"k.json", keep_run(5.53, 5.50, 5.52, 5.525)}});
  CHECK(no_loss.at("verdict") == "NOT TESTED");
  CHECK(no_loss.at("reason").get<std::string>().find("no loss to recover") != std::string::npos);
}

// Combined KL standard error of the fixtures: hypot(0.0003, 0.0004) = 0.0005.
TEST_CASE("AWQ vs GGUF Q4_0: KL lower beyond the combined standard error") {
  const json c = claim("awq-beats-gguf-q4");
  const json v = verdict(c, {{"e.json", with_method("gguf q4_0", 0.0300)}});
  CHECK(v.at("verdict") == "HOLDS");
  CHECK(v.at("numbers").at("e.json").at("combined_stderr").get<double>() == Approx(0.0005));
  CHECK(v.at("measured").get<std::string>().find("KL awq w4 g128 0.02710 ± 0.00030 vs gguf q4_0 0.03000 ± 0.00040") !=
        std::string::npos);
  const json close = verdict(c, {{"e.json", with_method("gguf q4_0", 0.0275)}});  // 0.0004 lower, inside 0.0005
  CHECK(close.at("verdict") == "FAILS");
  CHECK(close.at("measured").get<std::string>().find("lower, but within the combined standard error") != std::string::npos);
  const json none = verdict(c, {{"e.json", with_method("gguf q4_k_m", 0.0300)}});  // Q4_K_M is not Q4_0
  CHECK(none.at("verdict") == "NOT TESTED");
  CHECK(none.at("reason").get<std::string>().find("no eval run") != std::string::npos);
  CHECK(none.at("would_test").get<std::string>().find("'gguf q4_0'") != std::string::npos);
}

TEST_CASE("AWQ vs GGUF Q4_K_M: size ratio in the band, KL not higher (a tie holds)") {
  const json size = claim("awq-size-like-gguf-q4km");
  const double awq = 3889315840.0;
  CHECK(verdict(size, {{"e.json", with_method("gguf q4_k_m", 0.02, awq / 1.10)}}).at("verdict") == "HOLDS");
  const json big = verdict(size, {{"e.json", with_method("gguf q4_k_m", 0.02, awq / 1.20)}});
  CHECK(big.at("verdict") == "FAILS");
  CHECK(big.at("numbers").at("e.json").at("ratio").get<double>() == Approx(1.20));
  json edge = size;  // the band's edges are inclusive
  edge["tolerance"]["max"] = awq / 3e9;
  CHECK(verdict(edge, {{"e.json", with_method("gguf q4_k_m", 0.02, 3e9)}}).at("verdict") == "HOLDS");
  edge["tolerance"]["max"] = awq / 3e9 * 0.9999;
  CHECK(verdict(edge, {{"e.json", with_method("gguf q4_k_m", 0.02, 3e9)}}).at("verdict") == "FAILS");

  const json quality = claim("awq-quality-vs-gguf-q4km");
  CHECK(verdict(quality, {{"e.json", with_method("gguf q4_k_m", 0.0300)}}).at("verdict") == "HOLDS");
  const json tie = verdict(quality, {{"e.json", with_method("gguf q4_k_m", 0.0267)}});  // AWQ 0.0004 higher: a tie
  CHECK(tie.at("verdict") == "HOLDS");
  CHECK(tie.at("measured").get<std::string>().find("(a tie)") != std::string::npos);
  CHECK(verdict(quality, {{"e.json", with_method("gguf q4_k_m", 0.0265)}}).at("verdict") == "FAILS");  // 0.0006 higher
  CHECK(verdict(quality, {{"e.json", qb::test::eval_fixture()}}).at("verdict") == "NOT TESTED");
}

TEST_CASE("AWQ vs GPTQ: quantization time on the same calibration, KL at the same bits and group") {
  const json speed = claim("awq-quantizes-faster-than-gptq");
  CHECK(verdict(speed, {{"e.json", with_method("gptq w4 g128", 0.03, 3889315840.0, 25.0)}}).at("verdict") == "HOLDS");
  const json slower = verdict(speed, {{"e.json", with_method("gptq w4 g128", 0.03, 3889315840.0, 9.0)}});
  CHECK(slower.at("verdict") == "FAILS");
  CHECK(slower.at("measured").get<std::string>().find("quantization time awq w4 g128 10.00 s vs gptq w4 g128 9.00 s (1.111x): not lower") !=
        std::string::npos);
  json other_text = with_method("gptq w4 g128", 0.03);
  other_text["methods"].back()["quantization"]["calibration"]["sha256"] = std::string(64, '2');
  const json other = verdict(speed, {{"e.json", other_text}});
  CHECK(other.at("verdict") == "NOT TESTED");
  CHECK(other.at("reason").get<std::string>().find("e.json: awq w4 g128 and gptq w4 g128 calibrated on different text") == 0);

  const json quality = claim("awq-quality-vs-gptq");
  CHECK(verdict(quality, {{"e.json", with_method("gptq w4 g128", 0.0300)}}).at("verdict") == "HOLDS");
  CHECK(verdict(quality, {{"e.json", with_method("gptq w4 g128", 0.0200)}}).at("verdict") == "FAILS");
  json no_kl = with_method("gptq w4 g128", 0.03);
  no_kl["methods"].back()["quality"]["kl_mean"] = nullptr;
  CHECK(verdict(quality, {{"e.json", no_kl}}).at("reason").get<std::string>().find("KL not recorded for gptq w4 g128") !=
        std::string::npos);
  const json none = verdict(quality, {{"e.json", qb::test::eval_fixture()}});
  CHECK(none.at("verdict") == "NOT TESTED");
  CHECK(none.at("would_test").get<std::string>().find("'gptq w4 g128'") != std::string::npos);
}

// reports/runs/stories-d256-l2-formats-tinystories-cpu-2026-12-02.json: the numbers below are read off
// the document by hand (quality.kl_mean / kl_stderr, size.weight_bytes, quantization.seconds).
TEST_CASE("GGUF/GPTQ claims on the stories-d256-l2 formats run") {
  const std::string path = std::string(QB_SOURCE_ROOT) + "/reports/runs/stories-d256-l2-formats-tinystories-cpu-2026-12-02.json";
  const std::vector<ClaimsRun> runs = {{"formats.json", qb::read_json_file(path)}};
  auto judged = [&](const std::string& id) { return verdict(claim(id), runs); };
  // AWQ KL 0.009266 +- 0.000042 vs Q4_0 0.011504 +- 0.000057.
  const json q4_0 = judged("awq-beats-gguf-q4");
  CHECK(q4_0.at("verdict") == "HOLDS");
  CHECK(q4_0.at("caveat").get<std::string>().find("has 1,836,288 parameters") != std::string::npos);
  // 1,344,000 bytes (FP16 embeddings and lm_head) vs 1,127,680: 1.19x.
  const json size = judged("awq-size-like-gguf-q4km");
  CHECK(size.at("verdict") == "FAILS");
  CHECK(size.at("numbers").at("formats.json").at("ratio").get<double>() == Approx(1344000.0 / 1127680.0));
  CHECK(judged("awq-quality-vs-gguf-q4km").at("verdict") == "FAILS");  // KL 0.009266 vs Q4_K_M 0.006111
  const json speed = judged("awq-quantizes-faster-than-gptq");  // 72.46 s vs 25.28 s, same calibration
  CHECK(speed.at("verdict") == "FAILS");
  CHECK(speed.at("numbers").at("formats.json").at("method").get<double>() == Approx(72.457353729));
  CHECK(judged("awq-quality-vs-gptq").at("verdict") == "FAILS");  // KL 0.009266 vs GPTQ 0.005190
}

TEST_CASE("W4A16 throughput: worst ratio over M 16..256 against the 5% band") {
  const json c = claim("w4a16-throughput");
  const json v = verdict(c, {{"h100.json", qb::test::h100_fixture()}});
  CHECK(v.at("verdict") == "FAILS");  // qkv m=128: 53.42 / 47.69 us = 1.120x
  CHECK(v.at("numbers").at("h100.json").at("worst_ratio").get<double>() == Approx(5.342e-05 / 4.769e-05));
  CHECK(v.at("numbers").at("h100.json").at("pairs") == 4);  // m = 16 and 128, two layers; m = 1 and 1024 left out
  CHECK_FALSE(v.contains("caveat"));
  json loose = c;
  loose["tolerance"]["max"] = 5.342e-05 / 4.769e-05;
  CHECK(verdict(loose, {{"h100.json", qb::test::h100_fixture()}}).at("verdict") == "HOLDS");
  const json none = verdict(c, {{"e.json", qb::test::eval_fixture()}});
  CHECK(none.at("verdict") == "NOT TESTED");
  CHECK(none.at("reason") == "needs a bench run on a GPU");
  CHECK(verdict(c, {{"h200.json", qb::test::h200_fixture()}}).at("caveat").get<std::string>().find("not on a device the claim names") !=
        std::string::npos);
}

TEST_CASE("paper perplexities: only a run of the paper's model and protocol tests them") {
  const json c = claim("awq-paper-table4-5");
  json run = qb::test::eval_fixture();  // Llama-2-7B's architecture, paper protocol, ctx 2048
  CHECK(verdict(c, {{"e.json", run}}).at("verdict") == "HOLDS");
  run["methods"][2]["quality"]["ppl"] = 5.70;  // 0.10 off 5.60 > 0.005 + 0.056
  CHECK(verdict(c, {{"e.json", run}}).at("verdict") == "FAILS");
  run["protocol"]["ctx"] = 4096;
  const json other = verdict(c, {{"e.json", run}});
  CHECK(other.at("verdict") == "NOT TESTED");
  CHECK(other.at("reason").get<std::string>().find("no weights sha256") != std::string::npos);
}

TEST_CASE("hardware fit: weights + KV against each card, plus the GPU of a run") {
  const json result = evaluate_claims({registry()}, {{"h100.json", qb::test::h100_fixture()}}, catalog());
  auto row = [&](const std::string& model, const std::string& method, const std::string& card) {
    for (const json& f : result.at("fit"))
      if (f.at("model") == model && f.at("method") == method && f.at("card") == card) return f;
    FAIL("no fit row " << model << " " << method << " " << card);
    throw;
  };
  const json small = row("llama-2-7b", "awq w4 g128", "16 GB card");
  CHECK(small.at("fits") == true);
  CHECK(small.at("kv_cache_bytes") == 524288.0 * 4096);
  CHECK(small.at("decode_tokens_per_s_bound").get<double>() == Approx(960e9 / 3889307648.0));
  CHECK(row("llama-2-7b", "fp16", "16 GB card").at("fits") == true);     // 13.48 + 2.15 GB <= 17.18 GB (16 GiB)
  CHECK(row("llama-2-13b", "fp16", "24 GB card").at("fits") == false);   // 26.03 GB of weights alone
  CHECK(row("llama-2-70b", "awq w4 g128", "NVIDIA H100 80GB HBM3").at("fits") == true);
  CHECK(row("llama-2-70b", "fp16", "NVIDIA H100 80GB HBM3").at("fits") == false);
}

TEST_CASE("exit code: 1 when a tested claim fails") {
  json r = registry();
  const json result = evaluate_claims({r}, {}, catalog());
  CHECK(result.at("schema") == "quantbench.claims_result");
  // Llama-2-7B: 13.48 / 3.89 GB = 3.47x, under the "~4x" band's 3.5 (FP16 embeddings and lm_head).
  CHECK(result.at("verdicts").at(1).at("verdict") == "FAILS");
  CHECK(qb::reports::claims_exit_code(result) == 1);
  r["claims"] = json::array({claim("awq-quality-vs-gptq")});  // NOT TESTED without runs
  CHECK(qb::reports::claims_exit_code(evaluate_claims({r}, {}, catalog())) == 0);
}

TEST_CASE("bad claims files: one line naming the file and the claim") {
  json missing = registry();
  missing["claims"][1].erase("tolerance");
  CHECK(error_of(missing) == "bad.json: claim 4x-memory: /claims/1/tolerance: missing (required)");
  json metric = registry();
  metric["claims"][0]["metric"] = "vibes";
  CHECK(error_of(metric).find("bad.json: claim 70b-memory: /claims/0/metric: \"vibes\" is not one of") == 0);
  json model = registry();
  model["claims"][0]["models"] = {"llama-9-1t"};
  CHECK(error_of(model) == "bad.json: claim 70b-memory: /models: unknown model \"llama-9-1t\" (not in the model catalog)");
  json band = registry();
  band["claims"][1]["tolerance"].erase("min");
  CHECK(error_of(band) == "bad.json: claim 4x-memory: /claims/1/tolerance/min: missing (required)");
  json within = registry();  // a size band needs both edges
  within["claims"][8]["tolerance"].erase("max");
  CHECK(error_of(within) == "bad.json: claim awq-size-like-gguf-q4km: /claims/8/tolerance/max: missing (required)");
  json measure = registry();
  measure["claims"][7]["claimed"]["measure"] = "vibes";
  CHECK(error_of(measure).find("bad.json: claim awq-beats-gguf-q4: /claims/7/claimed/measure: \"vibes\" is not one of") == 0);
  json no_versus = registry();
  no_versus["claims"][10]["claimed"].erase("versus");
  CHECK(error_of(no_versus) == "bad.json: claim awq-quantizes-faster-than-gptq: /claims/10/claimed/versus: missing (required)");
}
