#pragma once
// Shared by every test executable.
#include <string>

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

}  // namespace qb::test
