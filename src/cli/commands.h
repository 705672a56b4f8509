#pragma once
// Subcommand registry: each cmd_*.cpp defines one subcommand and registers it at start-up with a
// static CommandRegistration, so main.cpp lists none of them by hand.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>
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

}  // namespace qb::cli
