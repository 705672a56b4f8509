#pragma once
// Typed reads of JSON fields from files people download (config.json, index files, catalogs,
// tokenizer.json): the type, and for integers the range, is checked before the value is used, and
// a wrong one is a qb::Error naming the file and the field's JSON path, never a nlohmann
// exception escaping with neither.
#include <string>

#include <nlohmann/json.hpp>

namespace qb {

// `v` as T, for T = std::string, bool, float, double (finite numbers), int, int64_t, uint64_t
// (integers in T's range; 4096.0, true and 2^40 for an int are refused). `where` names the file,
// `field` the value's path in it ("rope_scaling.factor", "weight_map['x']").
template <typename T>
T json_as(const nlohmann::json& v, const std::string& where, const std::string& field);

// obj[key] as T; a missing key is "missing field '<key>'". `obj` that is not an object is an error too.
template <typename T>
T json_field(const nlohmann::json& obj, const std::string& where, const std::string& key);

// obj[key] as T, or `fallback` when the key is missing or null.
template <typename T>
T json_field_or(const nlohmann::json& obj, const std::string& where, const std::string& key, T fallback);

// "a string \"abc\"", "an integer 7", "an object": a value as an error message shows it (shortened).
std::string json_describe(const nlohmann::json& v);

}  // namespace qb
