#include "reports/run_schema.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "common/error.h"
#include "common/files.h"

namespace qb::reports {

extern const char* const kRunSchemaText;

namespace {

using nlohmann::json;

const char* kSchemaFile = "run.schema.json";

std::string type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_float: return "number";
    default: return "integer";
  }
}

bool has_type(const json& v, const std::string& type) {
  if (type == "number") return v.is_number();
  // JSON Schema: 3.0 is an integer too.
  if (type == "integer")
    return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  return type_name(v) == type;
}

std::string join_types(const json& types) {
  if (types.is_string()) return types.get<std::string>();
  std::string out;
  for (size_t i = 0; i < types.size(); ++i) out += (i ? " or " : "") + types[i].get<std::string>();
  return out;
}

std::string shorten(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

// Walks schema and value together; returns the first problem. Keywords are visited in a fixed
// order (type before the rest) so a mistyped field is reported as such rather than by a
// keyword that assumes its type.
class Checker {
 public:
  explicit Checker(const json& root) : root_(root) {}

  std::optional<SchemaProblem> check(const json& schema, const json& value, const std::string& at) const {
    static const std::set<std::string> annotations = {"$schema", "$id", "title", "description", "$comment", "$defs"};
    static const std::set<std::string> keywords = {"$ref", "type", "const", "enum", "minimum", "maximum",
                                                   "pattern", "required", "properties", "additionalProperties",
                                                   "items", "minItems", "allOf", "if", "then"};
    for (auto& [key, _] : schema.items())
      if (!annotations.count(key) && !keywords.count(key))
        fail(kSchemaFile, "keyword '" + key + "' (at schema of " + display(at) + ") is not implemented by the checker");

    if (auto t = schema.find("type"); t != schema.end()) {
      bool ok = false;
      if (t->is_string()) ok = has_type(value, *t);
      else
        for (auto& one : *t) ok = ok || has_type(value, one);
      if (!ok) return SchemaProblem{at, "expected " + join_types(*t) + ", got " + type_name(value)};
    }
    if (auto c = schema.find("const"); c != schema.end() && value != *c)
      return SchemaProblem{at, "expected " + c->dump() + ", got " + shorten(value)};
    if (auto e = schema.find("enum"); e != schema.end()) {
      bool found = false;
      for (auto& allowed : *e) found = found || allowed == value;
      if (!found) return SchemaProblem{at, shorten(value) + " is not one of " + e->dump()};
    }
    if (value.is_number()) {
      const double x = value.get<double>();
      if (auto lo = schema.find("minimum"); lo != schema.end() && x < lo->get<double>())
        return SchemaProblem{at, shorten(value) + " is below the minimum " + lo->dump()};
      if (auto hi = schema.find("maximum"); hi != schema.end() && x > hi->get<double>())
        return SchemaProblem{at, shorten(value) + " is above the maximum " + hi->dump()};
    }
    if (auto p = schema.find("pattern"); p != schema.end() && value.is_string() &&
                                         !std::regex_search(value.get<std::string>(), std::regex(p->get<std::string>())))
      return SchemaProblem{at, shorten(value) + " does not match " + p->get<std::string>()};
    if (value.is_object()) {
      if (auto r = schema.find("required"); r != schema.end())
        for (auto& name : *r)
          if (!value.contains(name.get<std::string>()))
            return SchemaProblem{child(at, name.get<std::string>()), "missing (required)"};
      const json* props = nullptr;
      if (auto p = schema.find("properties"); p != schema.end()) props = &*p;
      auto extra = schema.find("additionalProperties");
      for (auto& [key, member] : value.items()) {
        if (props && props->contains(key)) {
          if (auto problem = check(props->at(key), member, child(at, key))) return problem;
        } else if (extra != schema.end()) {
          if (extra->is_boolean() && !extra->get<bool>())
            return SchemaProblem{child(at, key), "property not allowed here"};
          if (extra->is_object())
            if (auto problem = check(*extra, member, child(at, key))) return problem;
        }
      }
    }
    if (value.is_array()) {
      if (auto n = schema.find("minItems"); n != schema.end() && value.size() < n->get<size_t>())
        return SchemaProblem{at, "expected at least " + n->dump() + " items, got " + std::to_string(value.size())};
      if (auto items = schema.find("items"); items != schema.end())
        for (size_t i = 0; i < value.size(); ++i)
          if (auto problem = check(*items, value[i], at + "/" + std::to_string(i))) return problem;
    }
    if (auto ref = schema.find("$ref"); ref != schema.end())
      if (auto problem = check(resolve(ref->get<std::string>()), value, at)) return problem;
    if (auto all = schema.find("allOf"); all != schema.end())
      for (auto& sub : *all)
        if (auto problem = check(sub, value, at)) return problem;
    if (auto cond = schema.find("if"); cond != schema.end() && !check(*cond, value, at))
      if (auto then = schema.find("then"); then != schema.end())
        if (auto problem = check(*then, value, at)) return problem;
    return std::nullopt;
  }

  static std::string display(const std::string& pointer) { return pointer.empty() ? "(document root)" : pointer; }

 private:
  // RFC 6901 escaping of a member name.
  static std::string child(const std::string& at, const std::string& key) {
    std::string escaped;
    for (char c : key) escaped += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
    return at + "/" + escaped;
  }

  const json& resolve(const std::string& ref) const {
    if (ref.rfind("#", 0) != 0) fail(kSchemaFile, "only local references are supported, got '" + ref + "'");
    try {
      return root_.at(json::json_pointer(ref.substr(1)));
    } catch (const json::exception&) {
      fail(kSchemaFile, "unresolved reference '" + ref + "'");
    }
  }

  const json& root_;
};

// Rules the schema language cannot state (SCHEMA.md, "Rules beyond the schema").
std::optional<SchemaProblem> find_rule_problem(const json& run) {
  if (run.at("kind") == "eval") {
    std::set<std::string> labels;
    const json& methods = run.at("methods");
    for (size_t i = 0; i < methods.size(); ++i)
      if (!labels.insert(methods[i].at("label").get<std::string>()).second)
        return SchemaProblem{"/methods/" + std::to_string(i) + "/label",
                             "duplicate label " + methods[i].at("label").dump() + " (compare matches methods by label)"};
  } else {
    const json& cases = run.at("bench").at("cases");
    for (size_t i = 0; i < cases.size(); ++i) {
      const json& t = cases[i].at("time_s");
      const double order[] = {t.at("min").get<double>(), t.at("p10").get<double>(), t.at("median").get<double>(),
                              t.at("p90").get<double>(), t.at("max").get<double>()};
      if (!std::is_sorted(std::begin(order), std::end(order)))
        return SchemaProblem{"/bench/cases/" + std::to_string(i) + "/time_s",
                             "expected min <= p10 <= median <= p90 <= max, got " + shorten(t)};
    }
  }
  return std::nullopt;
}

}  // namespace

const json& run_schema() {
  static const json schema = json::parse(kRunSchemaText);
  return schema;
}

std::optional<SchemaProblem> find_schema_problem(const json& root, const json& schema, const json& value) {
  return Checker(root).check(schema, value, "");
}

void validate_run(const json& run, const std::string& where) {
  // The version comes first: a future major version may move any field, so its field errors
  // would only mislead.
  if (run.is_object() && run.contains("schema_version") && run["schema_version"].is_string()) {
    const std::string version = run["schema_version"];
    const std::string major = version.substr(0, version.find('.'));
    if (major != std::to_string(kRunSchemaMajor))
      fail(where, "schema_version " + version + " is not supported (this quantbench reads " +
                      std::to_string(kRunSchemaMajor) + ".x)");
  }
  auto problem = find_schema_problem(run_schema(), run_schema(), run);
  if (!problem) problem = find_rule_problem(run);
  if (problem) fail(where, Checker::display(problem->pointer) + ": " + problem->what);
}

json parse_run(const std::string& text, const std::string& where) {
  json run;
  try {
    run = json::parse(text);
  } catch (const json::exception& e) {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at line 1, column 9: ...";
    // a number too large for a double (1e309) is its out_of_range.406 instead.
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    for (char& c : what)
      if (c == '\n') c = ' ';
    fail(where, "not valid JSON (truncated or corrupt file?): " + what);
  }
  validate_run(run, where);
  return run;
}

json load_run(const std::string& path) {
  if (!file_exists(path)) fail(path, "no such file");
  return parse_run(read_text_file(path), path);
}

std::string describe_run(const json& run) {
  if (run.at("kind") == "bench") return run.at("device").at("name").get<std::string>();
  return run.at("model").at("path").get<std::string>();
}

}  // namespace qb::reports
