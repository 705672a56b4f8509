// The SQLite history database (reports/history.h) as a downloaded or damaged file: a run appended
// (QB_FUZZ_HISTORY_RUN, a checked-in document), then the file counted and its trends read.
#include <nlohmann/json.hpp>

#include "fuzz_support.h"
#include "reports/history.h"
#include "reports/run_schema.h"

namespace qb::fuzz {

void fuzz_history(std::string_view input) {
  static const nlohmann::json run = reports::load_run(QB_FUZZ_HISTORY_RUN);
  const std::string path = fresh_scratch_dir() + "/history.sqlite";
  write_file(path, input);
  // As `report --history` does: append (creating the tables, or upgrading a version-1 file), then
  // read back; on a file the append refused, the readers meet it as it came.
  refusal_or_success([&] { (void)reports::append_history(path, run); });
  refusal_or_success([&] { (void)reports::history_counts(path); });
  refusal_or_success([&] { (void)reports::history_trend(path, run, 5); });
}

}  // namespace qb::fuzz
