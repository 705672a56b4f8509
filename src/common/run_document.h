#pragma once
// What every run document writer puts in "schema" and "schema_version" (reports/SCHEMA.md).
// Readers accept any 1.x: a minor version only adds fields.

namespace qb {

inline constexpr const char* kRunSchemaName = "quantbench.run";
inline constexpr const char* kRunSchemaVersion = "1.1";
inline constexpr int kRunSchemaMajor = 1;

}  // namespace qb
