// Calibration text must never be the evaluation split: same path, another path to the same file,
// or a copy with the same contents are refused unless forced.
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/error.h"
#include "common/files.h"
#include "quant/calibration.h"
#include "random_model.h"

using namespace qb;

TEST_CASE("calibrating on the evaluation file is refused unless forced") {
  const std::string dir = test::temp_dir("calib");
  write_file_atomic(dir + "/eval.txt", "the evaluation split\n");
  write_file_atomic(dir + "/copy.txt", "the evaluation split\n");
  write_file_atomic(dir + "/train.txt", "some other text\n");
  std::filesystem::create_symlink(dir + "/eval.txt", dir + "/link.txt");

  for (const std::string& calib : {dir + "/eval.txt", dir + "/./eval.txt", dir + "/link.txt", dir + "/copy.txt"}) {
    CHECK_THROWS_WITH(read_calibration_text(calib, dir + "/eval.txt", false),
                      Catch::Contains(calib) && Catch::Contains("is the evaluation file") &&
                          Catch::Contains("refused unless forced"));
    CHECK(read_calibration_text(calib, dir + "/eval.txt", true).text == "the evaluation split\n");
  }
  CHECK(read_calibration_text(dir + "/train.txt", dir + "/eval.txt", false).text == "some other text\n");
  CHECK(read_calibration_text(dir + "/train.txt", "", false).text == "some other text\n");
  CHECK_THROWS_WITH(read_calibration_text("", dir + "/eval.txt", false), Catch::Contains("AWQ needs a calibration text file"));
}
