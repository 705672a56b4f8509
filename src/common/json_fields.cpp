#include "common/json_fields.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "common/error.h"

namespace qb {

std::string json_describe(const nlohmann::json& v) {
  std::string shown = v.dump();
  if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string " + shown;
    case nlohmann::json::value_t::boolean: return "a boolean " + shown;
    case nlohmann::json::value_t::number_float: return "a number " + shown;
    default: return "an integer " + shown;
  }
}

namespace {

[[noreturn]] void wrong(const nlohmann::json& v, const std::string& where, const std::string& field,
                        const char* expected) {
  fail(where, "field '" + field + "' is " + json_describe(v) + ", expected " + expected);
}

template <typename Int>
Int integer(const nlohmann::json& v, const std::string& where, const std::string& field, const char* expected) {
  if (!v.is_number_integer()) wrong(v, where, field, expected);
  // Compared as the stored type, before any conversion can wrap.
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<Int>::max())) wrong(v, where, field, expected);
  } else {
    const int64_t x = v.get<int64_t>();
    if (x < 0 && !std::numeric_limits<Int>::is_signed) wrong(v, where, field, expected);
    if (std::numeric_limits<Int>::is_signed &&
        (x < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
         x > static_cast<int64_t>(std::numeric_limits<Int>::max())))
      wrong(v, where, field, expected);
  }
  return v.get<Int>();
}

template <typename Real>
Real real(const nlohmann::json& v, const std::string& where, const std::string& field) {
  if (!v.is_number()) wrong(v, where, field, "a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || std::fabs(x) > static_cast<double>(std::numeric_limits<Real>::max()))
    wrong(v, where, field, "a finite number");
  return static_cast<Real>(x);
}

}  // namespace

template <>
std::string json_as<std::string>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  if (!v.is_string()) wrong(v, where, field, "a string");
  return v.get<std::string>();
}

template <>
bool json_as<bool>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  if (!v.is_boolean()) wrong(v, where, field, "true or false");
  return v.get<bool>();
}

template <>
int json_as<int>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  return integer<int>(v, where, field, "a 32-bit integer");
}

template <>
int64_t json_as<int64_t>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  return integer<int64_t>(v, where, field, "a 64-bit integer");
}

template <>
uint64_t json_as<uint64_t>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  return integer<uint64_t>(v, where, field, "a non-negative integer");
}

template <>
float json_as<float>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  return real<float>(v, where, field);
}

template <>
double json_as<double>(const nlohmann::json& v, const std::string& where, const std::string& field) {
  return real<double>(v, where, field);
}

template <typename T>
T json_field(const nlohmann::json& obj, const std::string& where, const std::string& key) {
  if (!obj.is_object()) fail(where, "expected an object with field '" + key + "', got " + json_describe(obj));
  const auto it = obj.find(key);
  if (it == obj.end()) fail(where, "missing field '" + key + "'");
  return json_as<T>(*it, where, key);
}

template <typename T>
T json_field_or(const nlohmann::json& obj, const std::string& where, const std::string& key, T fallback) {
  if (!obj.is_object()) fail(where, "expected an object with field '" + key + "', got " + json_describe(obj));
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return fallback;
  return json_as<T>(*it, where, key);
}

#define QB_JSON_FIELD(T)                                                                         \
  template T json_field<T>(const nlohmann::json&, const std::string&, const std::string&); \
  template T json_field_or<T>(const nlohmann::json&, const std::string&, const std::string&, T);
QB_JSON_FIELD(std::string)
QB_JSON_FIELD(bool)
QB_JSON_FIELD(int)
QB_JSON_FIELD(int64_t)
QB_JSON_FIELD(uint64_t)
QB_JSON_FIELD(float)
QB_JSON_FIELD(double)
#undef QB_JSON_FIELD

}  // namespace qb
