#pragma once
// Subcommand registry: each cmd_*.cpp defines one subcommand and registers it at start-up with a
// static CommandRegistration, so main.cpp lists none of them by hand.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace qb::cli {

// Declares the subcommand's options on `app` and returns the action to run once parsed; the
// action returns the process exit code.
using CommandSetup = std::function<std::function<int()>(CLI::App& app)>;

struct Command {
  std::string name, description;
  CommandSetup setup;
};

std::vector<Command>& commands();

struct CommandRegistration {
  CommandRegistration(std::string name, std::string description, CommandSetup setup) {
    commands().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

// A usage error found after parsing (e.g. once the data folder filled in defaults): main prints it
// like CLI11's own ("quantbench: usage: <flag>: <what>") and exits 2.
struct UsageError : std::runtime_error {
  UsageError(const std::string& flag, const std::string& what) : std::runtime_error(flag + ": " + what) {}
};

// A flag whose text names one value of an enum: converted here, at the edge, so libraries see only
// the enum. Another text is a usage error (exit 2) listing the choices; the first choice is the
// default shown in --help.
template <typename E>
CLI::Option* add_choice(CLI::App& app, const std::string& flag, E& value,
                        std::vector<std::pair<std::string, E>> choices, const std::string& help) {
  std::string names;
  for (const auto& [name, e] : choices) names += (names.empty() ? "" : ", ") + name;
  auto set = [&value, choices, names, flag](const std::string& text) {
    for (const auto& [name, e] : choices)
      if (name == text) {
        value = e;
        return;
      }
    throw CLI::ValidationError(flag, "'" + text + "' is not one of " + names);
  };
  return app.add_option_function<std::string>(flag, set, help + " (" + names + ")")
      ->default_str(choices.front().first);
}

// An integer flag that must be at least `min`.
inline CLI::Validator at_least(long min) {
  return CLI::Validator(
      [min](std::string& text) -> std::string {
        long v = 0;
        if (!CLI::detail::lexical_cast(text, v)) return "'" + text + "' is not an integer";
        return v < min ? "must be at least " + std::to_string(min) + ", got " + text : "";
      },
      "INT>=" + std::to_string(min));
}

// A --shard-size value (HF's max_shard_size: "5GB", "500MB", "2GiB") in bytes; another text is a
// usage error.
uint64_t shard_size_flag(const std::string& text);

}  // namespace qb::cli
