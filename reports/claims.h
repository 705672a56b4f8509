#pragma once
// Published claims, re-measured (`quantbench claims`): the claims registry (reports/claims.schema.json,
// reports/claims/*.json), its checker, and the pure evaluation from (claims, run documents, catalog
// facts) to a verdict document, "schema": "quantbench.claims_result". Every claim gets HOLDS, FAILS
// or NOT TESTED (with the reason and what would test it), the numbers measured, the run documents
// used and the tolerance; nothing is skipped silently.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reports/tables.h"

namespace qb::reports {

// reports/claims.schema.json as compiled into this build.
const nlohmann::json& claims_schema();

// Throws qb::Error "<where>: claim <id>: <pointer>: <what>" at the first problem (schema, a
// duplicate id, or a model that is neither "*" nor a `catalog` entry's "model"). `catalog`:
// eval/claims_catalog.h's facts.
void validate_claims(const nlohmann::json& registry, const nlohmann::json& catalog, const std::string& where);
// read_json_file + validate_claims; errors name the file.
nlohmann::json load_claims(const std::string& path, const nlohmann::json& catalog);

struct ClaimsRun {
  std::string path;     // as given, for the evidence
  nlohmann::json run;   // a validated run document (eval or bench)
};

// The verdict document, "schema": "quantbench.claims_result", "schema_version": "1.0":
//   "runs": [{"path", "kind", "evidence"}],
//   "verdicts": [{"id", "kind", "metric", "source", "verdict" (HOLDS | FAILS | NOT TESTED), "measured" (one line),
//                 "numbers" (the values judged), "tolerance" (the claim's), "evidence" (run documents or the
//                 catalog), "caveat" (when measured on another model or device than the claim's),
//                 "reason" and "would_test" (NOT TESTED only)}],
//   "fit": [{"model", "method", "card", "card_memory_bytes", "weight_bytes", "kv_cache_bytes", "fits",
//            "decode_tokens_per_s_bound"}],
//   "summary": {"holds", "fails", "not_tested"}.
// Claims in registry order, registries in the given order.
nlohmann::json evaluate_claims(const std::vector<nlohmann::json>& registries, const std::vector<ClaimsRun>& runs,
                               const nlohmann::json& catalog);

// 1 when a tested claim fails, else 0 (as compare: a nightly job can gate on it).
int claims_exit_code(const nlohmann::json& result);

// Throws qb::Error naming `where` unless `doc` is a claims result this build reads.
void check_claims_result(const nlohmann::json& doc, const std::string& where);

// The verdict table (id, kind, verdict, measured, tolerance, evidence) and the will-it-fit table.
Table claims_table(const nlohmann::json& result, const std::string& id);
Table fit_table(const nlohmann::json& result, const std::string& id);
// Both tables in Markdown, each under its caption: the terminal output and the report's section.
std::string render_claims_markdown(const nlohmann::json& result);

}  // namespace qb::reports
