// pstool's subcommands register themselves here; each lives in its own cmd_*.cc file compiled
// straight into the pstool executable (so static registration is never dropped by the linker).
// pstool_main.cc makes one CLI11 subcommand per entry: `setup` declares its options (so
// `pstool NAME --help` lists them) and returns what runs it once they are parsed.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace ps {

struct Command {
  using Setup = std::function<std::function<int()>(CLI::App& app)>;
  using RawRun = std::function<int(const std::vector<std::string>& args)>;
  Command() = default;
  Command(std::string s, Setup f) : summary(std::move(s)), setup(std::move(f)) {}
  Command(std::string s, std::nullptr_t, RawRun f) : summary(std::move(s)), run_raw(std::move(f)) {}

  std::string summary;
  // Declares the options on `app`; the returned function runs the command (exit code).
  Setup setup;
  // Commands with their own parser (bench-sparse's GPU benches) get the raw arguments instead.
  RawRun run_raw;
};

std::map<std::string, Command>& Commands();

struct RegisterCommand {
  RegisterCommand(const std::string& name, Command c) { Commands()[name] = std::move(c); }
};

}  // namespace ps
