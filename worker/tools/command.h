// pstool's subcommands register themselves here; each lives in its own cmd_*.cc file compiled
// straight into the pstool executable (so static registration is never dropped by the linker).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ps {

struct Command {
  std::string summary;
  // argv without the program and subcommand names; returns the exit code.
  std::function<int(const std::vector<std::string>& args)> run;
};

std::map<std::string, Command>& Commands();

struct RegisterCommand {
  RegisterCommand(const std::string& name, Command c) { Commands()[name] = std::move(c); }
};

}  // namespace ps
