// The checker against reports/run.schema.json itself: the compiled-in schema is the file; every
// field the schema requires, removed, and every typed field, mistyped, fails naming its pointer.
#include <catch2/catch.hpp>

#include <functional>

#include "common/error.h"
#include "common/files.h"
#include "reports/run_schema.h"
#include "reports_fixtures.h"

using nlohmann::json;
using qb::reports::validate_run;

namespace {

// Message of the qb::Error `f` throws ("" when it does not throw).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qb::Error& e) {
    return e.what();
  }
  return "";
}

struct Target {
  json::json_pointer pointer;
  std::string kind;  // "required" or "type"
  json schema;       // the property's schema (for "type")
};

// Lists the fields of `doc` that the schema requires or types, following properties, items,
// $ref and the allOf/if/then branches that apply to `doc` (decided by the checker itself).
void collect(const json& schema, const json& doc, const json::json_pointer& at, std::vector<Target>& out) {
  const json& root = qb::reports::run_schema();
  std::vector<const json*> parts{&schema};
  if (schema.contains("$ref")) parts.push_back(&root.at(json::json_pointer(schema["$ref"].get<std::string>().substr(1))));
  for (const json* part : parts) {
    if (doc.is_object() && part->contains("required"))
      for (auto& name : part->at("required"))
        if (doc.contains(name.get<std::string>())) out.push_back({at / name.get<std::string>(), "required", {}});
    if (doc.is_object() && part->contains("properties"))
      for (auto& [name, sub] : part->at("properties").items()) {
        if (!doc.contains(name)) continue;
        json resolved = sub;
        if (sub.contains("$ref") && !sub.contains("type"))
          resolved = root.at(json::json_pointer(sub["$ref"].get<std::string>().substr(1)));
        if (resolved.contains("type") || resolved.contains("enum") || resolved.contains("const"))
          out.push_back({at / name, "type", resolved});
        collect(sub, doc[name], at / name, out);
      }
    if (doc.is_array() && part->contains("items"))
      for (size_t i = 0; i < doc.size(); ++i) collect(part->at("items"), doc[i], at / i, out);
    if (part->contains("allOf"))
      for (auto& branch : part->at("allOf"))
        if (!qb::reports::find_schema_problem(root, branch.at("if"), doc)) collect(branch.at("then"), doc, at, out);
  }
}

// A value of a JSON type the property does not allow (or outside its enum/const).
json wrong_value(const json& schema) {
  std::vector<std::string> allowed;
  if (schema.contains("type")) {
    if (schema["type"].is_string()) allowed.push_back(schema["type"]);
    else
      for (auto& t : schema["type"]) allowed.push_back(t);
  }
  auto allows = [&](const std::string& t) { return std::find(allowed.begin(), allowed.end(), t) != allowed.end(); };
  if (allowed.empty() || !allows("string")) return "mistyped";
  return json::array({1});
}

void check_every_field(const json& doc) {
  REQUIRE_NOTHROW(validate_run(doc));
  std::vector<Target> targets;
  collect(qb::reports::run_schema(), doc, json::json_pointer(), targets);
  REQUIRE(targets.size() > 30);
  for (auto& t : targets) {
    json broken = doc;
    if (t.kind == "required") broken.at(t.pointer.parent_pointer()).erase(t.pointer.back());
    else broken.at(t.pointer) = wrong_value(t.schema);
    const std::string message = error_of([&] { validate_run(broken, "doc.json"); });
    INFO(t.kind << " " << t.pointer.to_string() << " -> " << message);
    CHECK(message.rfind("doc.json: " + t.pointer.to_string() + ": ", 0) == 0);
  }
}

}  // namespace

TEST_CASE("the compiled-in schema is reports/run.schema.json") {
  const json on_disk = json::parse(qb::read_text_file(std::string(QB_REPORTS_SOURCE_DIR) + "/run.schema.json"));
  CHECK(on_disk == qb::reports::run_schema());
  CHECK(on_disk.at("properties").at("schema_version").at("pattern") == "^1\\.[0-9]+$");
}

TEST_CASE("fixtures are valid run documents") {
  CHECK_NOTHROW(validate_run(qb::test::eval_fixture()));
  CHECK_NOTHROW(validate_run(qb::test::h100_fixture()));
  CHECK_NOTHROW(validate_run(qb::test::h200_fixture()));
}

TEST_CASE("Llama-3.1 and Qwen2 architecture fields are valid; other RoPE types are not") {
  json doc = qb::test::eval_fixture();
  json& arch = doc["model"]["architecture"];
  arch["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                          {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  arch["attention_bias"] = true;
  arch["sliding_window"] = 4096;
  CHECK_NOTHROW(validate_run(doc));
  arch["rope_scaling"]["rope_type"] = "yarn";
  CHECK_THROWS(validate_run(doc));
}

TEST_CASE("every required field removed and every typed field mistyped fails naming its pointer") {
  SECTION("eval") { check_every_field(qb::test::eval_fixture()); }
  SECTION("bench") { check_every_field(qb::test::h100_fixture()); }
}

TEST_CASE("messages name the pointer and the problem") {
  json doc = qb::test::eval_fixture();
  doc["methods"][2]["quality"]["ppl"] = "5.6";
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /methods/2/quality/ppl: expected number, got string");
  doc = qb::test::eval_fixture();
  doc["methods"][1]["quality"].erase("kl_mean");
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /methods/1/quality/kl_mean: missing (required)");
  doc = qb::test::eval_fixture();
  doc["methods"][0]["method"] = "qat";
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) ==
        "run.json: /methods/0/method: \"qat\" is not one of [\"fp16\",\"rtn\",\"awq\",\"rtn-keep\",\"gptq\","
        "\"gguf\"]");
  doc = qb::test::eval_fixture();
  doc["methods"][3]["quality"]["top1_agreement"] = 1.5;
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /methods/3/quality/top1_agreement: 1.5 is above the maximum 1");
  doc = qb::test::eval_fixture();
  doc["dataset"]["sha256"] = "ABC";
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /dataset/sha256: \"ABC\" does not match ^[0-9a-f]{64}$");
  doc = qb::test::eval_fixture();
  doc["methods"] = json::array();
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /methods: expected at least 1 items, got 0");
  doc = qb::test::eval_fixture();
  doc["model"]["weight_bytes_by_dtype"]["F16"] = -1;  // additionalProperties schema
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /model/weight_bytes_by_dtype/F16: -1 is below the minimum 0");
  doc = qb::test::eval_fixture();
  doc.erase("methods");  // required only for kind "eval" (allOf/if/then)
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /methods: missing (required)");
  doc = qb::test::h100_fixture();
  doc["device"] = nullptr;  // bench needs the device and its measured peaks
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /device: expected object, got null");
  doc = qb::test::h100_fixture();
  doc["device"].erase("peak_fp16_tflops");
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /device/peak_fp16_tflops: missing (required)");
  doc = qb::test::eval_fixture();
  doc["device"] = nullptr;  // an eval on the CPU has no device
  CHECK_NOTHROW(validate_run(doc));
  doc["host"]["threads"] = 4.0;  // JSON Schema: 4.0 is an integer
  CHECK_NOTHROW(validate_run(doc));
  doc["host"]["threads"] = 4.5;
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /host/threads: expected integer, got number");
  doc = qb::test::eval_fixture();
  doc["methods"][0]["layers"] = nullptr;  // optional diagnostics may be written as null
  CHECK_NOTHROW(validate_run(doc));
  doc["methods"][0]["layers"] = json::array({{{"layer", "no name"}}});
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /methods/0/layers/0/name: missing (required)");
  doc = qb::test::eval_fixture();
  doc["a future 1.x field"] = {{"anything", 1}};  // readers ignore unknown fields
  CHECK_NOTHROW(validate_run(doc));
  CHECK(error_of([] { validate_run(json::array()); }) == "run document: (document root): expected object, got array");
}

TEST_CASE("rules beyond the schema") {
  json doc = qb::test::h100_fixture();
  doc["bench"]["cases"][3]["time_s"]["p10"] = 1.0;
  CHECK(error_of([&] { validate_run(doc, "run.json"); }).rfind("run.json: /bench/cases/3/time_s: expected min <= p10 <= median <= p90 <= max", 0) == 0);
  doc = qb::test::eval_fixture();
  doc["methods"][4]["label"] = "awq w4 g128";
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) ==
        "run.json: /methods/4/label: duplicate label \"awq w4 g128\" (compare matches methods by label)");
}

TEST_CASE("unsupported major versions are refused before any field check") {
  json doc = qb::test::eval_fixture();
  doc["schema_version"] = "2.0";
  doc.erase("methods");
  CHECK(error_of([&] { qb::reports::parse_run(doc.dump(), "run.json"); }) ==
        "run.json: schema_version 2.0 is not supported (this quantbench reads 1.x)");
  doc = qb::test::eval_fixture();
  doc["schema_version"] = "1.7";  // a later minor version reads fine
  CHECK_NOTHROW(qb::reports::parse_run(doc.dump(), "run.json"));
  doc["schema"] = "something.else";
  CHECK(error_of([&] { validate_run(doc, "run.json"); }) == "run.json: /schema: expected \"quantbench.run\", got \"something.else\"");
}

TEST_CASE("truncated and missing files give one-line errors naming the file") {
  const std::string text = qb::test::eval_fixture().dump(1);
  const std::string message = error_of([&] { qb::reports::parse_run(text.substr(0, text.size() / 2), "eval.json"); });
  CHECK(message.rfind("eval.json: not valid JSON (truncated or corrupt file?): parse error at line ", 0) == 0);
  CHECK(message.find('\n') == std::string::npos);
  CHECK(error_of([] { qb::reports::load_run("/nonexistent/run.json"); }) == "/nonexistent/run.json: no such file");
}

TEST_CASE("the checker refuses schema keywords it does not implement") {
  const json schema = {{"oneOf", json::array()}};
  CHECK(error_of([&] { qb::reports::find_schema_problem(schema, schema, json(1)); })
            .rfind("run.schema.json: keyword 'oneOf'", 0) == 0);
}
