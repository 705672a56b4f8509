#pragma once
// Hand-written fixture run documents (tests/reports/fixtures): test data, not measurements.
#include <string>

#include <nlohmann/json.hpp>

#include "common/files.h"

namespace qb::test {

inline nlohmann::json fixture(const std::string& name) {
  return nlohmann::json::parse(read_text_file(std::string(QB_REPORTS_FIXTURES) + "/" + name));
}
inline nlohmann::json eval_fixture() { return fixture("eval-fixture.json"); }
inline nlohmann::json h100_fixture() { return fixture("bench-h100-fixture.json"); }
inline nlohmann::json h200_fixture() { return fixture("bench-h200-fixture.json"); }

// A scratch path under the test's build folder, removed first.
inline std::string scratch_path(const std::string& name) {
  const std::string path = std::string(QB_REPORTS_TEST_OUTPUT) + "/" + name;
  std::remove(path.c_str());
  return path;
}

}  // namespace qb::test
