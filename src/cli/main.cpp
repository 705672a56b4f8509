// quantbench: FP16 / RTN / AWQ weights of one model, side by side in quality, size and speed.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "cli/commands.h"
#include "common/error.h"
#include "common/interrupt.h"
#include "common/version.h"
#include "model/safetensors.h"

namespace qb::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

uint64_t shard_size_flag(const std::string& text) {
  try {
    return qb::parse_byte_size(text, "--shard-size");
  } catch (const qb::Error&) {
    throw UsageError("--shard-size", "'" + text + "' is not a size such as 5GB, 500MB or 2GiB");
  }
}
}  // namespace qb::cli

int main(int argc, char** argv) {
  using namespace qb::cli;
  qb::install_interrupt_handlers();
  CLI::App app{"quantbench " QB_VERSION " (" QB_GIT_REVISION "): FP16, RTN and AWQ weights of the same model, "
               "compared in perplexity, KL divergence, bytes and GEMM speed"};
  app.set_version_flag("--version", "quantbench " QB_VERSION " (" QB_GIT_REVISION ")");
  std::sort(commands().begin(), commands().end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  std::map<CLI::App*, std::function<int()>> actions;
  for (auto& c : commands()) {
    CLI::App* sub = app.add_subcommand(c.name, c.description);
    actions[sub] = c.setup(*sub);
  }
  app.require_subcommand(0, 1);
  // Usage errors in one line, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return "quantbench: usage: " + std::string(e.what()) + " (see --help)\n";
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; every usage error exits 2, the code for unusable input.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    for (auto& [sub, action] : actions)
      if (sub->parsed()) return action();
    // No subcommand: the main job, `eval` on whatever the data folder holds.
    for (auto& [sub, action] : actions)
      if (sub->get_name() == "eval") return action();
    std::fprintf(stderr, "%s\n", app.help().c_str());
    return 2;
  } catch (const qb::Interrupted& e) {
    // Unwound: the temporary outputs are gone and the previous ones untouched. 130 for Ctrl-C.
    std::fprintf(stderr, "quantbench: interrupted\n");
    return 128 + e.signal;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "quantbench: usage: %s (see --help)\n", e.what());
    return 2;
  } catch (const qb::Error& e) {
    std::fprintf(stderr, "quantbench: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // A library's own exception that no reader turned into a qb::Error: still one line, never a
    // terminate. Each one found is a reader to fix (it should name the file and the field).
    std::fprintf(stderr, "quantbench: internal error: %s\n", e.what());
    return 1;
  } catch (...) {
    std::fprintf(stderr, "quantbench: internal error: an exception that is not a std::exception\n");
    return 1;
  }
}
