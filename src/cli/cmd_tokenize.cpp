// quantbench tokenize --tokenizer FILE (--text S | --file F) [--no-special]: the token ids of a
// text as a JSON array on one line, for either kind of tokenizer (as llama.cpp's llama-tokenize
// helps debug a tokenizer).
#include <cstdio>

#include "cli/commands.h"
#include "common/files.h"
#include "datasets/tokenizer.h"

namespace {

struct TokenizeArgs {
  std::string tokenizer, text, file;
  bool no_special = false;
};

int run_tokenize(const TokenizeArgs& a) {
  const auto tokenizer = qb::open_tokenizer(a.tokenizer);
  const std::string text = a.file.empty() ? a.text : qb::read_text_file(a.file);
  const std::vector<int> ids = a.no_special ? tokenizer->encode(text) : tokenizer->encode_with_special_tokens(text);
  std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  return 0;
}

qb::cli::CommandRegistration reg{
    "tokenize", "Token ids of a text as a JSON array on one line (SentencePiece tokenizer.model or HF tokenizer.json)",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<TokenizeArgs>();
      app.add_option("--tokenizer", a->tokenizer, "SentencePiece tokenizer.model or HF tokenizer.json")->required();
      auto* text = app.add_option("--text", a->text, "the text to tokenize");
      auto* file = app.add_option("--file", a->file, "a file whose whole content is tokenized");
      text->excludes(file);
      file->excludes(text);
      app.add_flag("--no-special", a->no_special,
                   "no BOS/EOS from the family's template (HF add_special_tokens=False); added tokens written in the "
                   "text are still matched");
      return [a, text, file] {
        if (text->count() == 0 && file->count() == 0) throw qb::cli::UsageError("--text", "give --text or --file");
        return run_tokenize(*a);
      };
    }};

}  // namespace
