// Offloaded block weights (make_cuda_backend with CudaWeights::Offload: pinned host memory,
// streamed per layer through two device slots with double buffering) against resident weights
// on stories-d256-l2, FP16 and RTN 4-bit g128: the same kernels on the same bytes, so the
// residual stream after every block, the logits and the scores must be bit-identical, over
// several windows of different lengths (the slots are reused across windows and the events must
// order every reuse). Also the memory report and the refusal of blocks with different formats.
#include <catch2/catch.hpp>

#include <cstring>

#include "gpu/cuda_backend.h"
#include "gpu/cuda_backend_testing.h"
#include "gpu_compare.h"
#include "kernels/device_probe.h"
#include "model/load.h"
#include "quant/quantize.h"
#include "test_support.h"

using namespace qb;

static const char* const kModel = "models/stories-d256-l2";

std::string qb_test_skip_reason() {
  if (auto r = kernels::cuda_unavailable_reason(); !r.empty()) return r;
  return test::require_data(kModel);
}

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

void check_offload_equals_resident(const Model& model) {
  auto resident = make_cuda_backend(model, 0, CudaWeights::Resident);
  auto streamed = make_cuda_backend(model, 0, CudaWeights::Offload);
  CHECK(resident->memory()["offload"].is_null());
  const nlohmann::json offload = streamed->memory()["offload"];
  REQUIRE(offload.is_object());
  CHECK(offload["layers"] == model.config.n_layers);
  CHECK(offload["host_pinned_bytes"].get<int64_t>() > 0);
  for (int length : {300, 17, 512, 300}) {
    INFO("window of " << length << " tokens");
    const std::vector<int> tokens = test::test_tokens(length, model.config.vocab_size, 40 + length);
    const auto a = gpu::testing::run_with_residuals(*resident, tokens);
    const auto b = gpu::testing::run_with_residuals(*streamed, tokens);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) CHECK(same_bits(a[i], b[i]));
    CHECK(same_bits(gpu::testing::last_logits(*resident), gpu::testing::last_logits(*streamed)));
    WindowScores sa, sb;
    resident->score(tokens, 1, nullptr, "resident", sa);
    streamed->score(tokens, 1, resident.get(), "offloaded", sb);
    CHECK(sa.nll == sb.nll);
    for (double kl : sb.kl) CHECK(kl == 0.0);
  }
}

}  // namespace

TEST_CASE("offloaded FP16 weights give the resident backend's numbers exactly") {
  check_offload_equals_resident(to_fp16(load_model(test::data_file(kModel))));
}

TEST_CASE("offloaded 4-bit weights give the resident backend's numbers exactly") {
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.group_size = 128;
  check_offload_equals_resident(quantize_model(to_fp16(load_model(test::data_file(kModel))), o, nullptr).model);
}

TEST_CASE("offload refuses blocks whose formats differ from block 0's") {
  const Model fp16 = to_fp16(load_model(test::data_file(kModel)));
  QuantizeOptions o;
  o.family = MethodFamily::Rtn;
  o.group_size = 128;
  Model mixed = quantize_model(fp16, o, nullptr).model;
  mixed.layers[0] = fp16.layers[0];  // block 0 dense, block 1 4-bit
  CHECK_THROWS_WITH(make_cuda_backend(mixed, 0, CudaWeights::Offload), Catch::Contains("shaped like block 0"));
}
