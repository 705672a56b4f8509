#pragma once
// Shared by every test executable.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

// A test file may define this to say why it cannot run here (no GPU, no shared data); a
// non-empty reason makes the executable print "SKIPPED: <reason>" and exit 77 (ctest: Skipped).
// Files that always run do not define it.
std::string qb_test_skip_reason();

namespace qb::test {

// The shared data folder: $QUANTBENCH_DATA, else ../shared/data beside the checkout; "" if absent.
std::string data_dir();
// data_dir() + "/" + relative, or "" when the folder or the file is missing.
std::string data_file(const std::string& relative);
// A skip reason naming the missing data file, or "" when present.
std::string require_data(const std::string& relative);

// max |a - b| / max |b| over all elements: the error of a relative to the reference b.
inline double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0.0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  return num / den;
}

}  // namespace qb::test
