// Text datasets: format detection, the WikiText row join, provenance, and empty files.
#include <catch2/catch.hpp>

#include "common/files.h"
#include "datasets/dataset.h"
#include "random_model.h"

using namespace qb;

TEST_CASE("WikiText raw lines become HF rows joined with blank lines") {
  CHECK(join_wikitext_rows(" \n = Title = \n \n Text one .\n") == "\n\n = Title = \n\n\n\n\n Text one .\n");
}

TEST_CASE("formats are detected and provenance recorded") {
  const std::string dir = test::temp_dir("ds");
  write_file_atomic(dir + "/wiki.test.raw", " \n = Robert = \n \n Robert is an actor .\n");
  const TextDataset raw = load_text_dataset(dir + "/wiki.test.raw");
  CHECK(raw.format == DatasetFormat::WikitextRaw);
  CHECK(raw.bytes == 39);
  CHECK(raw.sha256 == sha256_file(dir + "/wiki.test.raw"));
  CHECK(raw.text.rfind("\n\n = Robert = \n", 0) == 0);
  write_file_atomic(dir + "/test.txt", " = Robert = \n Robert @-@ Boulter is an <unk> actor .\n");
  CHECK(load_text_dataset(dir + "/test.txt").format == DatasetFormat::WikitextTokens);
  write_file_atomic(dir + "/story.txt", "Once upon a time.\n");
  const TextDataset story = load_text_dataset(dir + "/story.txt");
  CHECK(story.format == DatasetFormat::Text);
  CHECK(story.text == "Once upon a time.\n");
  CHECK(load_text_dataset(dir + "/wiki.test.raw", DatasetFormat::Text).text == read_text_file(dir + "/wiki.test.raw"));
  write_file_atomic(dir + "/empty.txt", "\n \n");
  CHECK_THROWS_WITH(load_text_dataset(dir + "/empty.txt"), Catch::Contains("empty.txt: dataset is empty"));
  CHECK_THROWS_WITH(load_text_dataset(dir + "/none.txt"), Catch::Contains("none.txt: cannot open"));
  CHECK(dataset_json(story, 7)["format"] == "text");
}
