// Block-streamed quantization of the shared stories-d256-l2 model, RTN and AWQ (a small
// calibration): the sharded checkpoint written block by block holds, tensor for tensor, the bytes
// of the whole-model checkpoint of the same model quantized in memory, and loads back as it.
#include <catch2/catch.hpp>

#include "datasets/tokenizer.h"
#include "model/load.h"
#include "quant/awq_format.h"
#include "random_model.h"
#include "streamed_checkpoint.h"
#include "test_support.h"

using namespace qb;

std::string qb_test_skip_reason() {
  for (const char* f : {"models/stories-d256-l2/model.safetensors", "models/stories-d256-l2/tokenizer.model",
                        "text/wikitext-2/valid.txt"})
    if (const std::string why = test::require_data(f); !why.empty()) return why;
  return "";
}

TEST_CASE("stories-d256-l2 streamed RTN and AWQ checkpoints equal the whole-model ones") {
  const std::string model_dir = test::data_file("models/stories-d256-l2");
  const Model fp16 = to_fp16(load_model(model_dir));
  const auto tokenizer = open_tokenizer(model_dir + "/tokenizer.model");
  for (const MethodFamily family : {MethodFamily::Rtn, MethodFamily::Awq}) {
    INFO(family_name(family));
    const std::string root = test::temp_dir(std::string("streamed-d256-") + family_name(family));
    QuantizeOptions o;
    o.family = family;
    o.group_size = 64;
    o.calib_path = test::data_file("text/wikitext-2/valid.txt");
    o.calib_samples = 4;
    o.calib_seq_len = 64;
    const QuantizeResult whole = quantize_model(fp16, o, tokenizer.get());
    write_awq_checkpoint(whole.model, root + "/whole");
    const test::StreamedQuantize streamed =
        test::quantize_streamed(fp16, o, tokenizer.get(), root + "/streamed",
                                awq_checkpoint_format(checkpoint_group_size(fp16.config, 64)), 300'000);
    CHECK(file_exists(root + "/streamed/model.safetensors.index.json"));
    test::check_same_tensors(root + "/whole", root + "/streamed");
    test::check_same_model(load_awq_checkpoint(root + "/streamed"), whole.model);
  }
}
