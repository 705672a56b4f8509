#include <cstdlib>

#include "common/files.h"
#include "test_support.h"

namespace qb::test {

std::string data_dir() {
  if (const char* env = std::getenv("QUANTBENCH_DATA"); env && *env) return is_directory(env) ? env : "";
  return is_directory(QB_DEFAULT_DATA_DIR) ? QB_DEFAULT_DATA_DIR : "";
}

std::string data_file(const std::string& relative) {
  const std::string dir = data_dir();
  if (dir.empty()) return "";
  const std::string path = dir + "/" + relative;
  return file_exists(path) ? path : "";
}

std::string require_data(const std::string& relative) {
  if (!data_file(relative).empty()) return "";
  return "shared data file '" + relative + "' not found (set QUANTBENCH_DATA to the data folder)";
}

}  // namespace qb::test
