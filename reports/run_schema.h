#pragma once
// The run document (reports/SCHEMA.md, reports/run.schema.json): its schema, a checker for the
// subset of JSON Schema that run.schema.json uses, and the one way every reader loads a run.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/run_document.h"

namespace qb::reports {

// reports/run.schema.json as compiled into this build (the checker reads nothing else).
const nlohmann::json& run_schema();

// The first place where `value` breaks `schema` (a JSON Schema using only the keywords listed in
// run.schema.json's description; `root` resolves "#/..." references).
struct SchemaProblem {
  std::string pointer;  // JSON pointer into the checked document, "" for the document itself
  std::string what;     // e.g. "expected number, got string"
};
std::optional<SchemaProblem> find_schema_problem(const nlohmann::json& root, const nlohmann::json& schema,
                                                 const nlohmann::json& value);

// Throws qb::Error "<where>: <pointer>: <what>" at the first problem: an unsupported major
// version (checked first, so a 2.x document gets that message rather than a field error), a
// schema violation, or one of the rules the schema cannot say (SCHEMA.md, "Rules beyond the
// schema").
void validate_run(const nlohmann::json& run, const std::string& where = "run document");

// Parses `text` (one-line error naming `where` for invalid or truncated JSON), then validate_run.
nlohmann::json parse_run(const std::string& text, const std::string& where);
// read_text_file + parse_run; every error names the file.
nlohmann::json load_run(const std::string& path);

// "model.path | dataset.sha256" style one-line identity of a run for messages and tables:
// the device name for a bench run, the model path for an eval run.
std::string describe_run(const nlohmann::json& run);

}  // namespace qb::reports
