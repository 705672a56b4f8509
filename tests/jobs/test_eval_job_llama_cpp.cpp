// The eval job with llama.cpp's protocol on the shared GGUF files (written by llama.cpp b4747):
// tokenization with the file's own vocabulary, no context cap, GGUF files loaded beside a model,
// vocabularies that differ refused, llama.cpp's arithmetic recorded.
#include <catch2/catch.hpp>

#include "common/files.h"
#include "jobs/eval_job.h"
#include "random_model.h"
#include "reports/run_schema.h"
#include "test_support.h"

using namespace qb;

namespace {

const char* kGguf = "models/stories260K/gguf/stories260K-F16.gguf";  // metadata context_length 128
const char* kBin = "models/stories260K/stories260K.bin";
const char* kTokenizer = "models/stories260K/tok512.model";
const char* kText = "text/tinystories/tinystories_train_head.txt";
const char* kD256F16 = "models/stories-d256-l2/gguf/stories-d256-l2-F16.gguf";
const char* kD256Q4 = "models/stories-d256-l2/gguf/stories-d256-l2-Q4_K_M.gguf";

EvalOptions llama_cpp_options() {
  EvalOptions o;
  o.dataset_path = test::data_file(kText);
  o.protocol.kind = ProtocolKind::LlamaCpp;
  o.protocol.ctx = 256;
  o.protocol.max_windows = 2;  // --chunks 2
  o.device = DeviceChoice::Cpu;
  return o;
}

}  // namespace

std::string qb_test_skip_reason() {
  for (const char* f : {kGguf, kBin, kTokenizer, kText, kD256F16, kD256Q4})
    if (auto r = test::require_data(f); !r.empty()) return r;
  return "";
}

TEST_CASE("--model x.gguf tokenizes with the file's vocabulary; llama.cpp's ctx is not capped") {
  EvalOptions o = llama_cpp_options();
  o.model_path = test::data_file(kGguf);
  o.protocol.ctx = 512;  // over the file's context_length 128: llama.cpp only warns
  const nlohmann::json run = run_eval(o);
  CHECK_NOTHROW(reports::validate_run(run));
  CHECK(run["tokenizer"]["kind"] == "llama.cpp-spm (gguf vocab)");
  CHECK(run["tokenizer"]["path"] == o.model_path);
  CHECK(run["protocol"]["name"] == "llama.cpp");
  CHECK(run["protocol"]["ctx"] == 512);
  CHECK(run["arithmetic"]["activations"] == "exact");
  // llama.cpp's tokenizer keeps the TinyStories head's 5 extra space tokens (sentencepiece: 100701).
  CHECK(run["dataset"]["tokens"] == 100706);
  CHECK(run["dataset"]["format"] == "text");
  const auto& q = run["methods"][0]["quality"];
  CHECK(q["tokens_scored"] == 2 * 255);
  CHECK(q["windows"] == 2);

  o.protocol.kind = ProtocolKind::Paper;  // the other protocols keep the cap
  CHECK(run_eval(o)["protocol"]["ctx"] == 128);
}

TEST_CASE("--load x.gguf beside the llama2.c model: the same weights, the GGUF's vocabulary or --tokenizer's") {
  EvalOptions o = llama_cpp_options();
  o.model_path = test::data_file(kBin);
  MethodSpec gguf;
  gguf.checkpoint_dir = test::data_file(kGguf);
  o.methods = {gguf};
  const nlohmann::json run = run_eval(o);
  CHECK(run["tokenizer"]["kind"] == "llama.cpp-spm (gguf vocab)");
  CHECK(run["tokenizer"]["path"] == gguf.checkpoint_dir);
  REQUIRE(run["methods"].size() == 2);
  const auto& m = run["methods"][1];
  CHECK(m["method"] == "gguf");
  CHECK(m["label"] == "gguf F16 (" + gguf.checkpoint_dir + ")");
  CHECK(m["quantization"].is_null());
  CHECK(m["quality"]["kl_mean"].get<double>() < 1e-4);  // F16 copies of the same weights
  CHECK(m["quality"]["top1_agreement"].get<double>() > 0.99);

  o.tokenizer_path = test::data_file(kTokenizer);  // named: it wins
  CHECK(run_eval(o)["tokenizer"]["kind"] == "sentencepiece");
}

TEST_CASE("a quantized GGUF is described by its file type and stored types") {
  const std::string q4 = test::data_file(kD256Q4);
  EvalOptions o = llama_cpp_options();
  o.model_path = test::data_file(kD256F16);
  MethodSpec gguf;
  gguf.checkpoint_dir = q4;
  o.methods = {gguf};
  o.protocol.max_windows = 1;
  const nlohmann::json run = run_eval(o);
  CHECK_NOTHROW(reports::validate_run(run));
  const auto& m = run["methods"][1];
  CHECK(m["label"] == "gguf Q4_K_M (" + q4 + ")");
  CHECK(m["quantization"]["type"] == "q4_k_m");
  CHECK(m["quantization"]["bits"] == 4);
  CHECK(m["quantization"]["group_size"] == 256);
  CHECK(m["quantization"]["zero_point"] == true);
  CHECK(m["quantization"]["tensor_types"].contains("Q6_K"));  // llama-quantize's Q4_K_M gives some tensors Q6_K
}

TEST_CASE("a GGUF whose vocabulary differs from the tokenizer in use is refused") {
  // The F16 file with one token changed, "▁t" (id 259) -> "▁T": same length, so the file stays valid.
  std::string bytes = read_text_file(test::data_file(kGguf));
  const std::string piece = std::string("\x04\0\0\0\0\0\0\0", 8) + "\xe2\x96\x81t";
  const size_t at = bytes.find(piece);
  REQUIRE(at != std::string::npos);
  bytes[at + piece.size() - 1] = 'T';
  const std::string patched = test::temp_dir("gguf-vocab") + "/patched.gguf";
  write_file_atomic(patched, bytes);

  EvalOptions o = llama_cpp_options();
  o.model_path = test::data_file(kBin);
  o.tokenizer_path = test::data_file(kTokenizer);
  MethodSpec gguf;
  gguf.checkpoint_dir = patched;
  o.methods = {gguf};
  CHECK_THROWS_WITH(run_eval(o), Catch::Contains("patched.gguf: vocabulary differs from the tokenizer in use (") &&
                                     Catch::Contains("token 259 is '\xe2\x96\x81T' here and '\xe2\x96\x81t' there"));
}

TEST_CASE("llama.cpp arithmetic is recorded, moves the perplexity slightly, and runs on the CPU only") {
  EvalOptions o = llama_cpp_options();
  o.model_path = test::data_file(kGguf);
  const double exact = run_eval(o)["methods"][0]["quality"]["ppl"].get<double>();
  o.activations = Activations::LlamaCpp;
  const nlohmann::json run = run_eval(o);
  CHECK(run["arithmetic"]["activations"] == "llama.cpp");
  const double llama = run["methods"][0]["quality"]["ppl"].get<double>();
  CHECK(llama != exact);
  CHECK(llama == Approx(exact).epsilon(0.01));
  o.device = DeviceChoice::Cuda;
  CHECK_THROWS_WITH(run_eval(o), Catch::Contains("llama.cpp arithmetic runs on the CPU backend only"));
}
